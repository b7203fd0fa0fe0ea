//! autopatch's state: one SQLite file in the state directory.
//!
//! Architecture invariant: every state transition is written here before it
//! is acted on, so a restarted process can tell what was in progress. Rows are
//! plain data (`*Row`); the store knows nothing of engines or documents beyond
//! their text.
//!
//! Design note: SQLite runs in WAL mode with a busy timeout, so a CLI command
//! and a long build in another process can share the file.

mod error;
mod instances;
mod rows;
mod schema;
mod stacks;
mod store;

pub use error::StoreError;
pub use instances::{HealthStatus, InstanceRow, LifecycleState};
pub use rows::{
    BuildComponentRow, BuildRow, ComponentRow, EventRow, ImageRow, PipelineRow, RecipeRow,
};
pub use stacks::{InsertStack, StackEventRow, StackResourceRow, StackRow};
pub use store::{NewBuild, Store};
