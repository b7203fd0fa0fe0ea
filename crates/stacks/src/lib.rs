//! CloudFormation stacks, run locally.
//!
//! [`StackService`] carries out the CloudFormation operations (and the
//! Elastic Load Balancing and Auto Scaling reads a runbook needs) with the
//! request and response shapes of [`api`]. Resources have real local effects:
//! load balancers are autopatch's proxy on loopback, Auto Scaling groups are
//! fleets of containers.

pub mod api;
mod service;

pub use service::{ListenerPorts, ServiceConfig, StackService};
