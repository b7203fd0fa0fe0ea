//! CloudFormation stacks, run locally.
//!
//! [`StackService`] carries out the CloudFormation operations (and the
//! Elastic Load Balancing and Auto Scaling reads a runbook needs) with the
//! request and response shapes of [`api`]. Resources have real local effects
//! (see [`resources`]): load balancers are autopatch's proxy on loopback,
//! Auto Scaling groups are fleets of containers.
//!
//! Design notes:
//! - The [`planner`] is pure: the stack's status and its resources'
//!   statuses give the next step. The executor (`operation.rs`) writes each
//!   new status to the store before acting, so a restarted daemon resumes.
//! - Everything running (listeners, target groups, fleets) is rebuilt from
//!   the store by [`StackService::open`]; a daemon binds the listeners'
//!   ports first ([`reserve_listeners`]) and hands them over with
//!   [`StackService::open_with_listeners`].

pub mod api;
mod clock;
mod context;
mod operation;
pub mod planner;
mod props;
mod reserve;
pub mod resources;
mod runtime;
mod service;
pub mod update;

pub use reserve::{ReservedListeners, reserve_listeners};
pub use runtime::{VPC_LABEL, VPC_ROLE};
pub use service::{ListenerPorts, ServiceConfig, StackService};
