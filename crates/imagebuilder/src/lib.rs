//! The local image pipeline, doing what EC2 Image Builder does in the lab:
//! a recipe's components (AWSTOE documents) run in a build container from the
//! parent image, the result is snapshotted, tested in a fresh container and
//! published as an immutable, versioned image with its evidence (package
//! manifest, upgrades, CVEs fixed).
//!
//! Also here: golden images bootstrapped from Debian packages
//! ([`bootstrap`]) and pending-update checks ([`check_updates`]).
//!
//! Design notes:
//! - The engine is any [`autopatch_engine::Engine`]: Podman or Docker for
//!   real, the recording fake in simulations.
//! - The decisions (what follows a step attempt; whether a start condition
//!   holds) are pure functions in [`decide`], tested as tables.

mod apt;
mod bootstrap;
mod build;
mod catalog;
mod clock;
mod decide;
mod error;
mod evidence;
mod progress;
mod provenance;
mod start;
mod toe;
mod updates;

pub use bootstrap::{BootstrapError, BootstrapRequest, bootstrap, bootstrap_cancellable};
pub use build::{
    BUILD_LABEL, BuildOutcome, BuildRequest, Builder, CancelCause, NAMESPACE_LABEL, NETWORK,
    OWNER_LABEL, PARENT_EVENT, ROLE_LABEL, ResolvedParent, engine_reference, error_chain,
    label_value, ownership_labels, runner_gone,
};
pub use catalog::{
    CheckedComponent, LoadedPipeline, Registered, Registration, Unresolved, create_component,
    create_pipeline, create_recipe, find_image, load_pipeline, resolve_parent, validate_component,
};
pub use error::{BuildError, RegistryError};
pub use evidence::{ImageEvidence, PackageVersion, VersionChange, diff_in_container};
pub use progress::{BuildEvent, CollectProgress, NoProgress, Progress};
pub use provenance::{BuildProvenance, BuiltBy, CheckStep, Checks, ComponentVersion};
pub use start::{StartOptions, StartOutcome, start_pipeline};
pub use toe::ComponentRun;
pub use updates::{PendingUpdates, Sources, check_updates};
