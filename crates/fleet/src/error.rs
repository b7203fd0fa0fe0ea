//! Fleet errors: what failed, on which group or instance, and why.

use std::path::PathBuf;

use autopatch_engine::EngineError;
pub use autopatch_model::error_chain;
use autopatch_store::{LifecycleState, StoreError};

/// A fleet operation that failed. `Display` says what failed; the cause is in
/// `source()` (see [`error_chain`]).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("unknown instance type {name}; known types: {known}")]
    UnknownInstanceType { name: String, known: String },
    #[error("invalid Auto Scaling group {group}: {reason}")]
    InvalidGroup { group: String, reason: String },
    #[error("no Auto Scaling group {group} is running")]
    UnknownGroup { group: String },
    #[error(
        "desired capacity {desired} of Auto Scaling group {group} is outside its size {min_size}..={max_size}"
    )]
    DesiredCapacityOutOfRange { group: String, desired: u32, min_size: u32, max_size: u32 },
    #[error("instance {instance_id} is not in Auto Scaling group {group}")]
    InstanceNotInGroup { group: String, instance_id: String },
    #[error("instance {instance_id} of Auto Scaling group {group} is {lifecycle}, not InService")]
    InstanceNotInService { group: String, instance_id: String, lifecycle: LifecycleState },
    #[error(
        "terminating instance {instance_id} with a decrement would take the desired capacity of Auto Scaling group {group} from {desired} below its min size {min_size}"
    )]
    DecrementBelowMinSize { group: String, instance_id: String, desired: u32, min_size: u32 },
    #[error("image {image} not found in the container engine")]
    ImageNotFound { image: String },
    #[error(
        "container of instance {instance_id} is not running after its start{}",
        exit_code.map(|code| format!(" (it exited with {code})")).unwrap_or_default()
    )]
    NotRunning { instance_id: String, exit_code: Option<i64> },
    #[error("container of instance {instance_id} did not publish port {port}")]
    PortNotPublished { instance_id: String, port: u16 },
    #[error("instance {instance_id} was terminated while it launched")]
    TerminatedDuringLaunch { instance_id: String },
    #[error("failed to launch instance {instance_id} of group {group}")]
    Launch {
        group: String,
        instance_id: String,
        #[source]
        source: Box<FleetError>,
    },
    #[error("container engine failed while {action} {object}")]
    Engine {
        action: &'static str,
        object: String,
        #[source]
        source: EngineError,
    },
    #[error("state store failed while {action} {object}")]
    Store {
        action: &'static str,
        object: String,
        /// Boxed: SQLite errors are large and this path is rare.
        #[source]
        source: Box<StoreError>,
    },
    #[error("instance folder {path} could not be written or read")]
    InstanceFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Wraps engine errors with what the fleet was doing.
pub(crate) trait EngineContext<T> {
    fn engine_context(self, action: &'static str, object: &str) -> Result<T, FleetError>;
}

impl<T> EngineContext<T> for Result<T, EngineError> {
    fn engine_context(self, action: &'static str, object: &str) -> Result<T, FleetError> {
        self.map_err(|source| FleetError::Engine { action, object: object.to_string(), source })
    }
}

/// Wraps store errors with what the fleet was doing.
pub(crate) trait StoreContext<T> {
    fn store_context(self, action: &'static str, object: &str) -> Result<T, FleetError>;
}

impl<T> StoreContext<T> for Result<T, StoreError> {
    fn store_context(self, action: &'static str, object: &str) -> Result<T, FleetError> {
        self.map_err(|source| FleetError::Store {
            action,
            object: object.to_string(),
            source: Box::new(source),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_object_and_chains_join_causes() {
        let exited = FleetError::NotRunning { instance_id: "i-1".into(), exit_code: Some(127) };
        assert_eq!(
            exited.to_string(),
            "container of instance i-1 is not running after its start (it exited with 127)"
        );
        let unknown = FleetError::NotRunning { instance_id: "i-1".into(), exit_code: None };
        assert_eq!(unknown.to_string(), "container of instance i-1 is not running after its start");
        let launch = FleetError::Launch {
            group: "web".into(),
            instance_id: "i-1".into(),
            source: Box::new(FleetError::ImageNotFound { image: "app:1".into() }),
        };
        assert_eq!(
            error_chain(&launch),
            "failed to launch instance i-1 of group web: image app:1 not found in the container engine"
        );
    }
}
