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

/// `--state-dir`, else `$XDG_STATE_HOME/autopatch`, else `~/.local/state/autopatch`.
pub(crate) fn state_dir(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir;
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("autopatch");
    }
    let home =
        std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".local/state/autopatch")
}

impl Context {
    pub(crate) fn open(state_dir: PathBuf) -> Result<Context, CliError> {
        fs_err::create_dir_all(&state_dir).map_err(|error| {
            CliError::new(format!("failed to create the state directory: {error}"))
        })?;
        let store = Store::open(&state_dir.join("autopatch.db")).map_err(CliError::from_error)?;
        Ok(Context { state_dir, store: Arc::new(store) })
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

pub(crate) fn read_source(path: &Path) -> Result<autopatch_documents::SourceFile, CliError> {
    let text = fs_err::read_to_string(path).map_err(|error| CliError::new(error.to_string()))?;
    Ok(autopatch_documents::SourceFile::new(path.display().to_string(), text))
}
