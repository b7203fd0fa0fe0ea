//! Store errors.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to open the state database {path}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state database query failed: {what}")]
    Query {
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{kind} {name} already exists")]
    AlreadyExists { kind: &'static str, name: String },
    #[error(
        "the state database {path} has schema version {found}, newer than this autopatch understands ({supported})"
    )]
    NewerSchema { path: String, found: i64, supported: i64 },
}

pub(crate) trait QueryContext<T> {
    fn context(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> QueryContext<T> for Result<T, rusqlite::Error> {
    fn context(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { what, source })
    }
}
