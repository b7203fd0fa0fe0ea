//! Instances and Auto Scaling groups on a container engine.
//!
//! An instance is a container: created from the launch configuration's
//! image, limited to its instance type's CPUs and memory, on the group's
//! network, its target port published on `127.0.0.1`, with a host folder
//! mounted at `/var/lib/autopatch` that holds its instance metadata (the IMDS
//! layout), its user data, a `boot` entrypoint that runs the user data like
//! cloud-init, and a `cfn-signal` compatible with the AWS helper whose calls
//! land back in the folder. An Auto Scaling group is a [`Fleet`] controller
//! loop that keeps the desired capacity across zones and replaces instances
//! that fail EC2 (container) or ELB (target group) health checks.
//!
//! Modules, from pure to effectful:
//!
//! - [`instance_types`]: the instance type table (vCPUs, memory).
//! - [`signal`]: the cfn-signal file format and its parser.
//! - [`plan`]: the pure reconcile planner (`(group view, now) -> actions`).
//! - `metadata`: the instance folder. `launch`: one instance's launch and
//!   termination, in the order that keeps the store ahead of the engine.
//! - `controller`: [`Fleet`], the loops, adoption after restarts, updates
//!   ([`Fleet::update_group`], [`Fleet::terminate_instance`]), deletion,
//!   orphan removal.
//!
//! Invariants:
//!
//! - **The store leads.** An instance row is written `Pending` before its
//!   container exists and `Terminating` before anything is stopped;
//!   `Terminated` is final. So a restart always knows what was in progress.
//! - **Instances outlive the daemon.** Instance containers carry
//!   `autopatch.role=instance`, `autopatch.instance`, `autopatch.group` (and
//!   `autopatch.stack`, `autopatch.tag.*`) labels but no owner pid: stopping
//!   a fleet keeps them running, and the next [`Fleet::start_group`] adopts
//!   them instead of launching duplicates. Image Builder's recovery removes
//!   only build roles.
//! - **Nothing is left behind.** A failed launch removes its container and
//!   folder; [`Fleet::delete_group`] removes every container of the group;
//!   [`Fleet::remove_orphans`] removes instance containers and folders that no
//!   live row accounts for. The exception is asked for: a group its stack
//!   retains is released ([`Fleet::release_group`]), and its instances run
//!   on, unmanaged, marked `retained` in their folders, until someone
//!   removes their containers.
//! - **Published ports are loopback only** (`127.0.0.1`).
//!
//! Design notes: decisions are pure ([`plan::plan`] takes `now`); the loops
//! use `tokio::time` only, so simulations with
//! [`FakeEngine`](autopatch_engine::FakeEngine) run under paused time. Signals
//! are files an instance writes (so they survive daemon restarts) and are
//! archived in the store's event log when an instance's folder is removed.

#![forbid(unsafe_code)]

mod clock;
mod controller;
mod error;
pub mod instance_types;
mod launch;
mod metadata;
pub mod plan;
pub mod signal;
mod signal_store;

pub use controller::{Fleet, GroupStatus, TargetGroupHandle};
pub use error::{FleetError, error_chain};
pub use instance_types::{InstanceTypeSpec, instance_type, instance_types};
pub use launch::{
    GROUP_LABEL, GroupSpec, HealthCheckType, INSTANCE_LABEL, INSTANCE_ROLE, LaunchTemplate,
    OWNER_LABEL, ROLE_LABEL, STACK_LABEL, TAG_LABEL_PREFIX, Zone,
};
pub use metadata::INSTANCE_MOUNT;
pub use signal::{Signal, SignalParseError, SignalStatus, parse_signal};
