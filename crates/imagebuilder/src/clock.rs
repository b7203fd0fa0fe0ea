//! The one place this crate reads the wall clock. Decisions take `now` as an
//! argument; only the executor's shell calls this.

use autopatch_model::Timestamp;

pub(crate) fn now() -> Timestamp {
    let since_epoch =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
}
