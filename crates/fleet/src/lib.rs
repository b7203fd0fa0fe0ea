//! Instances and Auto Scaling groups on a container engine.
//!
//! (Being written: see issue 3.)
