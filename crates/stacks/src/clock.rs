//! The one place stacks read the wall clock (for timestamps in the store
//! and the API). Decisions take time as an argument.

use autopatch_model::Timestamp;

pub(crate) fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0);
    Timestamp::from_millis(millis)
}
