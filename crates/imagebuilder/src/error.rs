//! Errors of the image pipeline, by operation. Messages say what failed;
//! causes are chained as sources.

use autopatch_documents::Diagnostics;
use autopatch_engine::EngineError;
use autopatch_store::StoreError;

/// Registering or resolving documents (components, recipes, pipelines).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The document is invalid: every problem, with file:line:col.
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error("failed to read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An image reference shaped like an image version but not one.
    #[error("image reference {reference:?} is invalid: {message}")]
    BadReference { reference: String, message: String },
    #[error("{kind} {name} is not registered{hint}")]
    NotFound { kind: &'static str, name: String, hint: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A build that could not run to its end. A failing step is not an error
/// here (the build ends `FAILED`); these are the faults around it.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the build was cancelled")]
    Cancelled,
    #[error("failed to write the build's artifacts")]
    Artifacts {
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("build {id} not found")]
    NotFound { id: String },
    /// The build ended (`ended`: its state and the first line of its reason)
    /// but the store refused to record it, for instance a full disk: the
    /// row still says the build runs, so recovery ends it once this process
    /// has exited. Its cause is in the build's `detailedoutput.json` when
    /// the artifact folder could be written.
    #[error(
        "build {id} ended {ended}, but it is left for recovery (it ends FAILED after this \
         process exits; `autopatch build list` runs the recovery): the store could not \
         record its end"
    )]
    EndNotRecorded {
        id: String,
        ended: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("failed to read the package manifest of {image}: {message}")]
    Manifest { image: String, message: String },
    /// The pending-update check could not run to the end, for example
    /// because a package source could not be reached: nothing is known, so
    /// nothing may be skipped.
    #[error("cannot check {image} for pending updates: {message}")]
    UpdateCheck { image: String, message: String },
    /// A client token names one start of one pipeline (AWS's
    /// `IdempotentParameterMismatch`).
    #[error(
        "client token {token:?} was already used to start pipeline {pipeline} (build {build}), not {requested} (IdempotentParameterMismatch)"
    )]
    ClientTokenMismatch { token: String, pipeline: String, build: String, requested: String },
}
