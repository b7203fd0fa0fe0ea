//! Integration tests of the daemon crate: the server over a real unix
//! socket with a test [`Operations`](autopatch_daemon::Operations), the
//! client, single-instance locking, and the daemon's life and log on a fake
//! engine; a restart on real Podman.

mod daemon;
mod instance;
mod log;
mod restart;
mod server;
mod support;
