//! Engine errors: what failed, on which object, and the underlying cause.

/// An engine operation that failed. `Display` says what failed; the cause is
/// in `source()` (print the chain with an error-chain adapter).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No engine answers: the message says how to start one on the
    /// endpoint that was tried (`DOCKER_HOST`'s, else the standard socket).
    #[error(
        "no container engine answers at {endpoint}; start one with `podman system service --time=0 {endpoint} &` (or run scripts/setup-host.sh), or point DOCKER_HOST at a running Docker or Podman socket"
    )]
    Unreachable {
        endpoint: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("{object} not found")]
    NotFound { object: String },
    /// The engine refused or failed the request.
    #[error("engine failed to {operation} {object}")]
    Api {
        operation: &'static str,
        object: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("failed to read {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
