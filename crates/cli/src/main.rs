//! The `autopatch` command.
fn main() {}
