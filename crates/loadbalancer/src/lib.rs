//! autopatch's L7 load balancer: the local stand-in for an Application Load
//! Balancer, its listener and one target group.
//!
//! - [`health`] is the pure state machine: AWS's target states (`initial`,
//!   `healthy`, `unhealthy`, `draining`, `unused`), thresholds, draining and
//!   a history of every transition. No I/O, no clock.
//! - [`settings`] holds the health-check settings with AWS's defaults.
//! - The checker probes targets through the [`Prober`] trait ([`HttpProber`]
//!   for real, [`ScriptedProber`] for tests) on `tokio::time`.
//! - The proxy forwards HTTP/1.1 round robin to healthy targets over pooled
//!   keep-alive connections, retrying connect failures on another target. It
//!   runs on the caller's runtime or on one worker thread per core
//!   ([`LoadBalancerConfig::worker_threads`]).
//! - [`LoadBalancer`] ties them together with the daemon's API. Two entry
//!   points serve the daemon's life cycle: [`LoadBalancer::start_on`] serves
//!   on a listener reserved earlier ([`LoadBalancer::reserve_listener`]), so
//!   a load balancer's address is known before it runs, and
//!   [`LoadBalancer::adopt_targets`] puts back, after a restart, targets the
//!   previous daemon process had seen healthy. Both have a `_with_targets`
//!   form that puts [`InitialTargets`] in the target group before the
//!   listener accepts a connection, so a restarted daemon's listener never
//!   answers 503 while the targets it adopts are on their way.
//!
//! Not supported yet: HTTPS listeners, HTTP/2, protocol upgrades
//! (WebSocket), the idle timeout while a response body streams (it covers
//! only the wait for the response head), more than one target group
//! per listener, and listener rules.

#![forbid(unsafe_code)]

mod balancer;
mod checker;
pub mod health;
mod proxy;
mod registry;
pub mod settings;
mod upstream;

pub use balancer::{InitialTargets, LoadBalancer, LoadBalancerConfig, LoadBalancerError};
pub use checker::{HttpProber, ProbeFuture, ProbeRequest, Prober, ScriptedAnswer, ScriptedProber};
pub use health::{
    DrainEnd, History, ProbeResult, Reason, Target, TargetGroupHealth, TargetHealthDescription,
    TargetId, TargetState, Transition,
};
pub use settings::{HealthCheckPort, HealthCheckSettings, Matcher, SettingsError};
