//! autopatch's control plane: `autopatch serve` and the client of its API.
//!
//! - [`serve`] runs the daemon: one per state directory ([`InstanceLock`]),
//!   the store, the engine, the [`StackService`](autopatch_stacks::StackService),
//!   and the HTTP API on `<state_dir>/autopatch.sock`.
//! - [`Server`] is the HTTP/1.1 API, generic over [`Operations`]:
//!   `POST /<service>/<Operation>` with AWS's JSON request shape, answered
//!   with the response shape or `{"Error": {"Code": ..., "Message": ...}}`.
//!   Its [`ApiSockets`] can be bound first ([`serve`] binds them, and the
//!   load balancers' ports, before the engine and recovery) and served
//!   later ([`Server::on`]).
//! - [`Operations`] is the dispatch from `(service, operation, JSON)` to
//!   typed methods; [`StackService`](autopatch_stacks::StackService)
//!   implements it.
//! - [`Client`] calls operations over the socket (the CLI's `stack`
//!   commands, `up` and `down` use it).
//! - The daemon logs in logfmt on stderr (or to [`log_to`]'s writer): its
//!   own events, and the `log` records of the stack service and the fleet
//!   (resource failures, stack statuses, instance launches, replacements,
//!   adoption, orphan removal, recovery).

mod client;
mod daemon;
mod instance;
mod log;
mod operations;
pub mod protocol;
mod server;

pub use crate::log::log_to;
pub use client::{Client, ClientError, DEFAULT_TIMEOUT};
pub use daemon::{DaemonConfig, DaemonError, serve, serve_connecting, serve_with_engine};
pub use instance::{InstanceError, InstanceLock, process_running, read_pid};
pub use operations::{Operations, decode, encode};
pub use protocol::{PingOutput, ShutdownOutput, socket_path};
pub use server::{ApiSockets, ServeError, Server, ServerConfig, StopReason};
