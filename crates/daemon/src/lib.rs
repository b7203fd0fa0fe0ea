//! autopatch's control plane daemon and its client.
//!
//! (Being written: see issue 3.)
