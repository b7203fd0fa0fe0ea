//! What every command needs: the state directory, the store, the engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use autopatch_engine::DockerEngine;
use autopatch_imagebuilder::Builder;
use autopatch_store::Store;

use crate::render::CliError;

pub(crate) struct Context {
    pub(crate) state_dir: PathBuf,
    pub(crate) store: Arc<Store>,
}

/// What a command needs of the state directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// It reads (lists, shows, compares) or acts on what is recorded there:
    /// a state directory without a database is an error, and nothing is
    /// created (a mistyped `--state-dir` is not a new, empty state).
    Existing,
    /// It registers, builds or bootstraps: the directory and its database
    /// are made when missing.
    Create,
}

/// The database's file name in the state directory.
const DATABASE: &str = "autopatch.db";

/// `$XDG_STATE_HOME/autopatch`, else `~/.local/state/autopatch`: where state
/// goes without `--state-dir` (`--help` shows it).
pub(crate) fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("autopatch");
    }
    let home =
        std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".local/state/autopatch")
}

impl Context {
    pub(crate) fn open(state_dir: PathBuf, access: Access) -> Result<Context, CliError> {
        let database = state_dir.join(DATABASE);
        match access {
            Access::Existing => {
                if !database.exists() {
                    return Err(no_state(&state_dir));
                }
            }
            Access::Create => {
                fs_err::create_dir_all(&state_dir).map_err(|error| {
                    CliError::new(format!("failed to create the state directory: {error}"))
                })?;
            }
        }
        let store = Store::open(&database).map_err(|error| open_failed(&state_dir, error))?;
        Ok(Context { state_dir, store: Arc::new(store) })
    }

    /// Whether the state directory has a database (is not a new state).
    pub(crate) fn has_state(state_dir: &Path) -> bool {
        state_dir.join(DATABASE).exists()
    }

    /// The state directory's store when it has a database, else `None`
    /// (nothing is made).
    pub(crate) fn open_if_present(state_dir: PathBuf) -> Result<Option<Context>, CliError> {
        if !Context::has_state(&state_dir) {
            return Ok(None);
        }
        Context::open(state_dir, Access::Existing).map(Some)
    }

    pub(crate) async fn engine(&self) -> Result<Arc<DockerEngine>, CliError> {
        DockerEngine::connect().await.map(Arc::new).map_err(CliError::from_error)
    }

    pub(crate) fn artifacts_root(&self) -> PathBuf {
        self.state_dir.join("builds")
    }

    pub(crate) fn work_dir(&self) -> PathBuf {
        self.state_dir.join("work")
    }

    pub(crate) async fn builder(&self) -> Result<Builder<DockerEngine>, CliError> {
        Ok(Builder {
            engine: self.engine().await?,
            store: Arc::clone(&self.store),
            artifacts_root: self.artifacts_root(),
        })
    }
}

/// An empty store in memory, to register a document in before a state
/// directory is made for it: where there is no state yet, a document the
/// registry refuses (a syntax error, a reference to nothing registered)
/// must leave none behind, since bad input changes nothing.
pub(crate) fn scratch_store() -> Result<Store, CliError> {
    Store::open_in_memory().map_err(CliError::from_error)
}

/// A command that reads state, run where there is none.
fn no_state(state_dir: &Path) -> CliError {
    let why = if state_dir.is_dir() {
        format!("it has no {DATABASE}")
    } else {
        "the directory does not exist".to_owned()
    };
    CliError::new(format!("no autopatch state in {}: {why}", state_dir.display())).with_hint(
        "check --state-dir (or AUTOPATCH_STATE_DIR; `autopatch --help` shows the default); \
         commands that register or build (component create, image bootstrap, ...) make a state \
         directory, commands that read one do not",
    )
}

/// The store did not open. SQLite writes next to its database even to read
/// it (the write-ahead log `autopatch.db-wal` and its index `-shm`), so a
/// state directory or database this process cannot write fails to open with
/// only "unable to open database file": say which, and what to do.
fn open_failed(state_dir: &Path, error: autopatch_store::StoreError) -> CliError {
    let database = state_dir.join(DATABASE);
    let (what, path, reason) = match (writable_dir(state_dir), writable_file(&database)) {
        (Err(reason), _) => ("state directory", state_dir, reason),
        (Ok(()), Err(reason)) => ("state database", database.as_path(), reason),
        (Ok(()), Ok(())) => return CliError::from_error(error),
    };
    CliError::new(format!(
        "the {what} {} is not writable ({reason}): autopatch writes there even to read, since \
         SQLite keeps its write-ahead log next to the database",
        path.display()
    ))
    .with_hint(format!(
        "make it writable for this user, or run autopatch as the user who owns it; to read it \
         as it is, copy the state directory somewhere writable and pass the copy with \
         --state-dir (the error was: {})",
        CliError::from_error(error).message
    ))
}

/// Whether this process can create a file in `dir`: tried, not guessed from
/// mode bits (read-only mounts, root, ACLs).
fn writable_dir(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".autopatch-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            // Best effort: a leftover probe is an empty hidden file.
            let _ignored = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(error) => access_problem(&error),
    }
}

/// Whether this process can open `file` for writing (a missing file is no
/// problem of this kind).
fn writable_file(file: &Path) -> Result<(), String> {
    match std::fs::OpenOptions::new().write(true).open(file) {
        Ok(_) => Ok(()),
        Err(error) => access_problem(&error),
    }
}

/// A permission or read-only file system error as a reason; any other error
/// is not this problem.
fn access_problem(error: &std::io::Error) -> Result<(), String> {
    match error.kind() {
        std::io::ErrorKind::ReadOnlyFilesystem => Err("read-only file system".to_owned()),
        std::io::ErrorKind::PermissionDenied => Err("permission denied".to_owned()),
        _ => Ok(()),
    }
}

pub(crate) fn read_source(path: &Path) -> Result<autopatch_documents::SourceFile, CliError> {
    let text = fs_err::read_to_string(path).map_err(|error| CliError::new(error.to_string()))?;
    Ok(autopatch_documents::SourceFile::new(path.display().to_string(), text))
}
