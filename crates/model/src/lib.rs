//! The nouns of autopatch: typed identifiers, semantic and image versions, and
//! the state names that mirror AWS (`PENDING`, `BUILDING`, `AVAILABLE`...).
//!
//! Architecture invariant: this crate is pure. It depends on nothing that does
//! I/O (no tokio, no SQLite, no engine, no AWS SDK) and it never reads a clock.
//! Serialization lives at the boundaries (store, API), which convert by hand.

mod image;
mod version;

pub use image::{BuildId, ImageState, ImageVersion, StepStatus};
pub use version::{SemanticVersion, VersionError};
mod time;
pub use time::Timestamp;
mod stack;
pub use stack::{ResourceStatus, StackStatus, UnknownStatus};
