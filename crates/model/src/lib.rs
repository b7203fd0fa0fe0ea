//! The nouns of autopatch: typed identifiers, semantic and image versions, and
//! the state names that mirror AWS (`PENDING`, `BUILDING`, `AVAILABLE`...);
//! and how an error reads on one line ([`error_chain`]).
//!
//! Architecture invariant: this crate is pure. It depends on nothing that does
//! I/O (no tokio, no SQLite, no engine, no AWS SDK) and it never reads a clock.
//! Serialization lives at the boundaries (store, API), which convert by hand.

mod error;
mod image;
mod version;

pub use error::error_chain;
pub use image::{BuildId, ImageState, ImageVersion, StepStatus};
pub use version::{SemanticVersion, VersionError};
mod time;
pub use time::{ParseTimestampError, Timestamp};
mod stack;
pub use stack::{ResourceStatus, StackStatus, UnknownStatus};
