//! The [`Store`]: typed reads and writes over the SQLite connection.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use autopatch_model::{ImageState, SemanticVersion, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use crate::error::{QueryContext, StoreError};
use crate::rows::{
    BuildComponentRow, BuildRow, ComponentRow, EventRow, ImageRow, PipelineRow, RecipeRow,
};
use crate::schema::MIGRATIONS;

/// The state database. Cheap to share behind an `Arc`; calls are serialized.
#[derive(Debug)]
pub struct Store {
    connection: Mutex<Connection>,
    /// Made once with the database and never changed: read at open.
    engine_namespace: String,
}

/// A new build as the caller asks for it; the store assigns its number.
#[derive(Debug, Clone)]
pub struct NewBuild<'a> {
    pub id: &'a str,
    pub pipeline: Option<&'a str>,
    pub recipe: &'a str,
    pub recipe_version: &'a str,
    pub client_token: Option<&'a str>,
    pub parent_image: &'a str,
    pub artifact_dir_root: &'a str,
    pub owner_pid: Option<u32>,
    pub now: Timestamp,
}

const BUILD_COLUMNS: &str = "id, pipeline, recipe, recipe_version, build_number, state, reason, \
     client_token, parent_image, artifact_dir, owner_pid, cancel_requested, created_at, \
     updated_at, finished_at";

const IMAGE_COLUMNS: &str = "version, recipe, recipe_version, build_number, build_id, pipeline, \
     engine_image_id, engine_reference, parent, parent_engine_image_id, manifest, evidence, \
     created_at";

/// How long an open or a write waits for another process's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let display = path.display().to_string();
        let open_error = |source| StoreError::Open { path: display.clone(), source };
        let connection = Connection::open(path).map_err(open_error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        // WAL is kept in the file, so only a new database changes to it; the
        // change needs an exclusive lock that SQLite does not wait for, so
        // processes opening a new database at the same moment try again.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match connection.execute_batch("PRAGMA journal_mode = WAL") {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(failure, _))
                    if failure.code == rusqlite::ErrorCode::DatabaseBusy
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(error) => return Err(open_error(error)),
            }
        }
        connection
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(open_error)?;
        Store::migrate(&connection, &display)?;
        Store::with(connection)
    }

    /// An empty in-memory database: for tests, and to try a registration
    /// where there is no state directory yet.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let connection = Connection::open_in_memory()
            .map_err(|source| StoreError::Open { path: ":memory:".into(), source })?;
        Store::migrate(&connection, ":memory:")?;
        Store::with(connection)
    }

    /// The store over a migrated connection.
    fn with(connection: Connection) -> Result<Store, StoreError> {
        let engine_namespace = connection
            .query_row("SELECT value FROM settings WHERE key = 'engine_namespace'", [], |row| {
                row.get(0)
            })
            .context("read the engine namespace")?;
        Ok(Store { connection: Mutex::new(connection), engine_namespace })
    }

    fn migrate(connection: &Connection, path: &str) -> Result<(), StoreError> {
        let supported = MIGRATIONS.len() as i64;
        let version = |connection: &Connection| -> Result<i64, StoreError> {
            let found: i64 = connection
                .query_row("PRAGMA user_version", [], |row| row.get(0))
                .context("read schema version")?;
            if found > supported {
                return Err(StoreError::NewerSchema { path: path.to_owned(), found, supported });
            }
            Ok(found)
        };
        if version(connection)? == supported {
            return Ok(());
        }
        // Each step reads the version again under the write lock: another
        // process opening the same new database at the same moment waits
        // here, then finds the step done instead of running it twice.
        loop {
            connection.execute_batch("BEGIN IMMEDIATE").context("migrate the schema")?;
            let step = version(connection).and_then(|found| {
                let Some(migration) = MIGRATIONS.get(found as usize) else {
                    return Ok(false);
                };
                connection
                    .execute_batch(&format!("{migration}; PRAGMA user_version = {};", found + 1))
                    .context("migrate the schema")?;
                Ok(true)
            });
            match step {
                Ok(more) => {
                    connection.execute_batch("COMMIT").context("migrate the schema")?;
                    if !more {
                        return Ok(());
                    }
                }
                Err(error) => {
                    let _ = connection.execute_batch("ROLLBACK");
                    return Err(error);
                }
            }
        }
    }

    /// This state directory's namespace in the container engine: 8 hex
    /// digits made with the database. Published images are tagged under it
    /// (`localhost/autopatch/<namespace>/...`), so two state directories on
    /// one host never move or remove each other's tags.
    pub fn engine_namespace(&self) -> &str {
        &self.engine_namespace
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite itself consistent
        // (statements are atomic), so a poisoned lock is still usable.
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // Components and recipes: immutable per (name, version).

    /// Registers a component version. Registering the same text again is a
    /// no-op; different text under an existing version is refused, because
    /// versions are immutable.
    pub fn put_component(&self, row: &ComponentRow) -> Result<bool, StoreError> {
        self.put_versioned("components", "component", row)
    }

    pub fn put_recipe(&self, row: &RecipeRow) -> Result<bool, StoreError> {
        self.put_versioned("recipes", "recipe", row)
    }

    fn put_versioned(
        &self,
        table: &str,
        kind: &'static str,
        row: &ComponentRow,
    ) -> Result<bool, StoreError> {
        let mut connection = self.lock();
        let transaction = write_transaction(&mut connection, "begin registering a document")?;
        let existing: Option<String> = transaction
            .query_row(
                &format!("SELECT sha256 FROM {table} WHERE name = ?1 AND version = ?2"),
                params![row.name, row.version],
                |r| r.get(0),
            )
            .optional()
            .context("look up a document")?;
        match existing {
            Some(sha256) if sha256 == row.sha256 => Ok(false),
            Some(_) => Err(StoreError::AlreadyExists {
                kind,
                name: format!(
                    "{}/{} (with different content; versions are immutable, bump the version)",
                    row.name, row.version
                ),
            }),
            None => {
                transaction
                    .execute(
                        &format!("INSERT INTO {table} (name, version, source_name, document, sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                        params![row.name, row.version, row.source_name, row.document, row.sha256, row.created_at.millis()],
                    )
                    .context("insert a document")?;
                transaction.commit().context("register a document")?;
                Ok(true)
            }
        }
    }

    /// A component at `version`, or its highest version when `version` is `None`.
    pub fn component(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<ComponentRow>, StoreError> {
        self.versioned("components", name, version)
    }

    pub fn recipe(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<RecipeRow>, StoreError> {
        self.versioned("recipes", name, version)
    }

    pub fn components(&self) -> Result<Vec<ComponentRow>, StoreError> {
        self.documents("components", None)
    }

    pub fn recipes(&self) -> Result<Vec<RecipeRow>, StoreError> {
        self.documents("recipes", None)
    }

    fn versioned(
        &self,
        table: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<ComponentRow>, StoreError> {
        let rows = self.documents(table, Some(name))?;
        Ok(match version {
            Some(version) => rows.into_iter().find(|row| row.version == version),
            // Highest semantic version, not the latest registered.
            None => rows.into_iter().max_by_key(|row| row.version.parse::<SemanticVersion>().ok()),
        })
    }

    /// The rows of `table`, all of them or those of one name.
    fn documents(&self, table: &str, name: Option<&str>) -> Result<Vec<ComponentRow>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(&format!(
                "SELECT name, version, source_name, document, sha256, created_at FROM {table}
                 WHERE ?1 IS NULL OR name = ?1"
            ))
            .context("list documents")?;
        let rows = statement
            .query_map([name], |r| {
                Ok(ComponentRow {
                    name: r.get(0)?,
                    version: r.get(1)?,
                    source_name: r.get(2)?,
                    document: r.get(3)?,
                    sha256: r.get(4)?,
                    created_at: Timestamp(r.get(5)?),
                })
            })
            .context("list documents")?
            .collect::<Result<Vec<ComponentRow>, _>>()
            .context("read documents")?;
        // By name, then by semantic version (1.2.5 before 1.2.10), whatever
        // the order they were registered in.
        let mut rows = rows;
        rows.sort_by_cached_key(|row| {
            (row.name.clone(), row.version.parse::<SemanticVersion>().ok())
        });
        Ok(rows)
    }

    // Pipelines: mutable (UpdateImagePipeline).

    /// Creates or replaces a pipeline. Returns whether it existed before.
    pub fn put_pipeline(&self, row: &PipelineRow) -> Result<bool, StoreError> {
        let mut connection = self.lock();
        let transaction = write_transaction(&mut connection, "begin writing a pipeline")?;
        let existed = transaction
            .query_row("SELECT 1 FROM pipelines WHERE name = ?1", [&row.name], |_| Ok(()))
            .optional()
            .context("look up a pipeline")?
            .is_some();
        transaction
            .execute(
                "INSERT INTO pipelines (name, source_name, document, sha256, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (name) DO UPDATE SET source_name = excluded.source_name, document = excluded.document,
                 sha256 = excluded.sha256, updated_at = excluded.updated_at",
                params![row.name, row.source_name, row.document, row.sha256, row.created_at.millis(), row.updated_at.millis()],
            )
            .context("write a pipeline")?;
        transaction.commit().context("write a pipeline")?;
        Ok(existed)
    }

    pub fn pipeline(&self, name: &str) -> Result<Option<PipelineRow>, StoreError> {
        Ok(self.pipeline_rows(Some(name))?.pop())
    }

    pub fn pipelines(&self) -> Result<Vec<PipelineRow>, StoreError> {
        self.pipeline_rows(None)
    }

    fn pipeline_rows(&self, name: Option<&str>) -> Result<Vec<PipelineRow>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(
                "SELECT name, source_name, document, sha256, created_at, updated_at FROM pipelines
                 WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
            )
            .context("list pipelines")?;
        let rows = statement
            .query_map([name], |r| {
                Ok(PipelineRow {
                    name: r.get(0)?,
                    source_name: r.get(1)?,
                    document: r.get(2)?,
                    sha256: r.get(3)?,
                    created_at: Timestamp(r.get(4)?),
                    updated_at: Timestamp(r.get(5)?),
                })
            })
            .context("list pipelines")?
            .collect::<Result<Vec<_>, _>>()
            .context("read pipelines")?;
        Ok(rows)
    }

    // Builds.

    /// Records a new build in `PENDING`, assigning the next build number for
    /// its recipe version. If `client_token` was used before, returns that
    /// build instead (idempotent start) and `false`.
    pub fn create_build(&self, new: &NewBuild<'_>) -> Result<(BuildRow, bool), StoreError> {
        let mut connection = self.lock();
        let transaction = write_transaction(&mut connection, "begin a build")?;
        if let Some(token) = new.client_token {
            let existing = transaction
                .query_row(
                    &format!("SELECT {BUILD_COLUMNS} FROM builds WHERE client_token = ?1"),
                    [token],
                    build_from_row,
                )
                .optional()
                .context("look up a client token")?;
            if let Some(existing) = existing {
                return Ok((existing, false));
            }
        }
        let last_build: Option<u32> = transaction
            .query_row(
                "SELECT MAX(build_number) FROM builds WHERE recipe = ?1 AND recipe_version = ?2",
                params![new.recipe, new.recipe_version],
                |r| r.get(0),
            )
            .context("number a build")?;
        let build_number = last_build.unwrap_or(0) + 1;
        let artifact_dir = format!("{}/{}", new.artifact_dir_root, new.id);
        transaction
            .execute(
                &format!("INSERT INTO builds ({BUILD_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8, ?9, ?10, 0, ?11, ?11, NULL)"),
                params![
                    new.id,
                    new.pipeline,
                    new.recipe,
                    new.recipe_version,
                    build_number,
                    ImageState::Pending.as_str(),
                    new.client_token,
                    new.parent_image,
                    artifact_dir,
                    new.owner_pid,
                    new.now.millis()
                ],
            )
            .context("insert a build")?;
        let row = transaction
            .query_row(
                &format!("SELECT {BUILD_COLUMNS} FROM builds WHERE id = ?1"),
                [new.id],
                build_from_row,
            )
            .context("read back a build")?;
        transaction.commit().context("commit a build")?;
        Ok((row, true))
    }

    /// The build a client token started, if any.
    pub fn build_with_client_token(&self, token: &str) -> Result<Option<BuildRow>, StoreError> {
        self.lock()
            .query_row(
                &format!("SELECT {BUILD_COLUMNS} FROM builds WHERE client_token = ?1"),
                [token],
                build_from_row,
            )
            .optional()
            .context("look up a client token")
    }

    pub fn build(&self, id: &str) -> Result<Option<BuildRow>, StoreError> {
        self.lock()
            .query_row(
                &format!("SELECT {BUILD_COLUMNS} FROM builds WHERE id = ?1"),
                [id],
                build_from_row,
            )
            .optional()
            .context("read a build")
    }

    /// Builds, newest first.
    pub fn builds(&self) -> Result<Vec<BuildRow>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(&format!(
                "SELECT {BUILD_COLUMNS} FROM builds ORDER BY created_at DESC, id DESC"
            ))
            .context("list builds")?;
        let rows = statement
            .query_map([], build_from_row)
            .context("list builds")?
            .collect::<Result<Vec<_>, _>>()
            .context("read builds")?;
        Ok(rows)
    }

    /// Records the component versions build `id` runs, in recipe order.
    /// Written once: recording a build's components again is refused.
    pub fn record_build_components(
        &self,
        id: &str,
        components: &[BuildComponentRow],
    ) -> Result<(), StoreError> {
        let mut connection = self.lock();
        let transaction = write_transaction(&mut connection, "begin recording build components")?;
        for (position, component) in components.iter().enumerate() {
            let inserted = transaction.execute(
                "INSERT INTO build_components (build_id, position, name, version, build_number)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    id,
                    position as i64,
                    component.name,
                    component.version,
                    component.build_number
                ],
            );
            match inserted {
                Ok(_) => {}
                Err(rusqlite::Error::SqliteFailure(error, _))
                    if error.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
                {
                    return Err(StoreError::AlreadyExists {
                        kind: "components of build",
                        name: id.to_owned(),
                    });
                }
                Err(source) => {
                    return Err(StoreError::Query { what: "record build components", source });
                }
            }
        }
        transaction.commit().context("commit build components")?;
        Ok(())
    }

    /// The component versions build `id` ran, in recipe order; empty when
    /// none were recorded (a build made before they were, or no build `id`).
    pub fn build_components(&self, id: &str) -> Result<Vec<BuildComponentRow>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(
                "SELECT name, version, build_number FROM build_components
                 WHERE build_id = ?1 ORDER BY position",
            )
            .context("read build components")?;
        let rows = statement
            .query_map([id], |r| {
                Ok(BuildComponentRow {
                    name: r.get(0)?,
                    version: r.get(1)?,
                    build_number: r.get(2)?,
                })
            })
            .context("read build components")?
            .collect::<Result<Vec<_>, _>>()
            .context("read build components")?;
        Ok(rows)
    }

    /// Moves a build to `state`. Terminal states are final: a build already in
    /// one is left as it is and `false` is returned.
    pub fn set_build_state(
        &self,
        id: &str,
        state: ImageState,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let finished_at = state.is_terminal().then_some(now.millis());
        let changed = self
            .lock()
            .execute(
                "UPDATE builds SET state = ?2, reason = COALESCE(?3, reason), updated_at = ?4, finished_at = ?5
                 WHERE id = ?1 AND state NOT IN ('AVAILABLE', 'FAILED', 'CANCELLED', 'DELETED')",
                params![id, state.as_str(), reason, now.millis(), finished_at],
            )
            .context("update a build")?;
        Ok(changed == 1)
    }

    /// Records the process now running a build.
    pub fn set_build_owner(&self, id: &str, owner_pid: u32) -> Result<(), StoreError> {
        self.lock()
            .execute("UPDATE builds SET owner_pid = ?2 WHERE id = ?1", params![id, owner_pid])
            .context("claim a build")?;
        Ok(())
    }

    /// Asks the runner of a build to cancel it. Returns false if the build is
    /// unknown or already finished.
    pub fn request_cancel(&self, id: &str) -> Result<bool, StoreError> {
        let changed = self
            .lock()
            .execute(
                "UPDATE builds SET cancel_requested = 1 WHERE id = ?1 AND state NOT IN ('AVAILABLE', 'FAILED', 'CANCELLED', 'DELETED')",
                [id],
            )
            .context("request a cancel")?;
        Ok(changed == 1)
    }

    pub fn cancel_requested(&self, id: &str) -> Result<bool, StoreError> {
        let requested: Option<bool> = self
            .lock()
            .query_row("SELECT cancel_requested FROM builds WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .context("read a cancel request")?;
        Ok(requested.unwrap_or(false))
    }

    // Images.

    /// Publishes an image. Images are immutable: a version is written once.
    pub fn insert_image(&self, row: &ImageRow) -> Result<(), StoreError> {
        let result = self.lock().execute(
            &format!("INSERT INTO images ({IMAGE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
            params![
                row.version,
                row.recipe,
                row.recipe_version,
                row.build_number,
                row.build_id,
                row.pipeline,
                row.engine_image_id,
                row.engine_reference,
                row.parent,
                row.parent_engine_image_id,
                row.manifest,
                row.evidence,
                row.created_at.millis()
            ],
        );
        match result {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(error, _))
                if error.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::AlreadyExists { kind: "image", name: row.version.clone() })
            }
            Err(source) => Err(StoreError::Query { what: "insert an image", source }),
        }
    }

    pub fn image(&self, version: &str) -> Result<Option<ImageRow>, StoreError> {
        self.lock()
            .query_row(
                &format!("SELECT {IMAGE_COLUMNS} FROM images WHERE version = ?1"),
                [version],
                image_from_row,
            )
            .optional()
            .context("read an image")
    }

    /// Images, newest first.
    pub fn images(&self) -> Result<Vec<ImageRow>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(&format!(
                "SELECT {IMAGE_COLUMNS} FROM images ORDER BY created_at DESC, version DESC"
            ))
            .context("list images")?;
        let rows = statement
            .query_map([], image_from_row)
            .context("list images")?
            .collect::<Result<Vec<_>, _>>()
            .context("read images")?;
        Ok(rows)
    }

    // Events: append-only.

    pub fn append_event(
        &self,
        subject: &str,
        kind: &str,
        detail: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "INSERT INTO events (at, subject, kind, detail) VALUES (?1, ?2, ?3, ?4)",
                params![now.millis(), subject, kind, detail],
            )
            .context("append an event")?;
        Ok(())
    }

    pub fn events(&self, subject: &str) -> Result<Vec<EventRow>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(
                "SELECT seq, at, subject, kind, detail FROM events WHERE subject = ?1 ORDER BY seq",
            )
            .context("list events")?;
        let rows = statement
            .query_map([subject], |r| {
                Ok(EventRow {
                    seq: r.get(0)?,
                    at: Timestamp(r.get(1)?),
                    subject: r.get(2)?,
                    kind: r.get(3)?,
                    detail: r.get(4)?,
                })
            })
            .context("list events")?
            .collect::<Result<Vec<_>, _>>()
            .context("read events")?;
        Ok(rows)
    }
}

fn build_from_row(r: &Row<'_>) -> rusqlite::Result<BuildRow> {
    let state: String = r.get(5)?;
    Ok(BuildRow {
        id: r.get(0)?,
        pipeline: r.get(1)?,
        recipe: r.get(2)?,
        recipe_version: r.get(3)?,
        build_number: r.get(4)?,
        state: state.parse().map_err(|message: String| {
            rusqlite::Error::FromSqlConversionFailure(
                5,
                rusqlite::types::Type::Text,
                message.into(),
            )
        })?,
        reason: r.get(6)?,
        client_token: r.get(7)?,
        parent_image: r.get(8)?,
        artifact_dir: r.get(9)?,
        owner_pid: r.get(10)?,
        cancel_requested: r.get(11)?,
        created_at: Timestamp(r.get(12)?),
        updated_at: Timestamp(r.get(13)?),
        finished_at: r.get::<_, Option<i64>>(14)?.map(Timestamp),
    })
}

fn image_from_row(r: &Row<'_>) -> rusqlite::Result<ImageRow> {
    Ok(ImageRow {
        version: r.get(0)?,
        recipe: r.get(1)?,
        recipe_version: r.get(2)?,
        build_number: r.get(3)?,
        build_id: r.get(4)?,
        pipeline: r.get(5)?,
        engine_image_id: r.get(6)?,
        engine_reference: r.get(7)?,
        parent: r.get(8)?,
        parent_engine_image_id: r.get(9)?,
        manifest: r.get(10)?,
        evidence: r.get(11)?,
        created_at: Timestamp(r.get(12)?),
    })
}

/// A transaction that takes SQLite's write lock at its start, for a read
/// that decides a write (a version's text, the next build number, a name in
/// use). A deferred transaction would read under a snapshot that another
/// process's write can make stale; SQLite then refuses the upgrade to a
/// writer with "database is locked" at once, without waiting out the busy
/// timeout. Taken at the start, the lock is waited for like any other.
pub(crate) fn write_transaction<'c>(
    connection: &'c mut Connection,
    what: &'static str,
) -> Result<Transaction<'c>, StoreError> {
    connection.transaction_with_behavior(TransactionBehavior::Immediate).context(what)
}
