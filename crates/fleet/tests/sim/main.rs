//! Deterministic simulations of Auto Scaling groups against the recording
//! `FakeEngine` under paused tokio time: capacity and zone spreading, EC2 and
//! ELB health replacement, scaling, deletion, restart adoption, orphan
//! removal, engine faults during launches, signals, and updates
//! (`update_group`, `terminate_instance`).
//!
//! No container engine: containers are the fake's; instance folders and the
//! store are real files in a temporary directory.

mod harness;

mod capacity;
mod faults;
mod health;
mod lifecycle;
mod update;
