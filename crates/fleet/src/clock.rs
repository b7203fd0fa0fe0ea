//! The one place this crate reads the wall clock: timestamps for store rows
//! and events. Decisions never read it; they take `now` (tokio time) as an
//! argument.

use autopatch_model::Timestamp;

pub(crate) fn now() -> Timestamp {
    let since_epoch =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
}

/// A file time as a timestamp (for ordering signals).
pub(crate) fn timestamp_of(time: std::time::SystemTime) -> Timestamp {
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
}
