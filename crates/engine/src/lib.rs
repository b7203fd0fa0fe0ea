//! The container engine driver: everything autopatch asks of Podman or Docker,
//! behind one narrow trait, [`Engine`].
//!
//! - [`DockerEngine`] speaks the Docker Engine API (through `bollard`) to
//!   Podman's compatible socket or to Docker. [`DockerEngine::connect`] finds
//!   the socket from `DOCKER_HOST` or the standard paths.
//! - [`FakeEngine`] keeps containers and images in memory, records every
//!   call ([`Call`]), answers `exec` from a handler the test supplies
//!   ([`ExecHandler`]), and fails chosen calls ([`FakeEngine::fail_nth`]).
//!   It is for the pure logic's simulations, never a stand-in for proving
//!   the real path.
//!
//! Design note: the trait speaks in plain data ([`ContainerSpec`],
//! [`ExecResult`]...), never in bollard types, so callers and the fake do not
//! depend on the wire format.

mod docker;
mod error;
mod fake;
mod reference;
mod types;

pub use docker::DockerEngine;
pub use error::EngineError;
pub use fake::{
    Call, ExecContext, ExecHandler, ExecReply, FakeEngine, FaultKind, FaultPredicate, Operation,
};
pub use types::{
    ContainerInfo, ContainerSpec, ContainerState, EngineInfo, ExecResult, ExecSpec, ImageInfo,
    Mount, OutputSink, OutputStream, PortBinding,
};

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

/// What autopatch needs from a container engine. Every method is one engine
/// operation; none retries (callers decide).
pub trait Engine: Send + Sync {
    /// Checks that the engine answers and says what it is.
    fn info(&self) -> impl Future<Output = Result<EngineInfo, EngineError>> + Send;

    /// Looks an image up by id, digest or reference; `None` when absent.
    fn image_inspect(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Option<ImageInfo>, EngineError>> + Send;

    /// Imports a root filesystem tarball as a new image tagged `reference`
    /// (`repo:tag`). `changes` are Dockerfile instructions (`CMD [...]`, `LABEL k=v`).
    fn image_import(
        &self,
        tarball: &Path,
        reference: &str,
        changes: &[String],
    ) -> impl Future<Output = Result<ImageInfo, EngineError>> + Send;

    /// Adds the tag `reference` (`repo:tag`) to an existing image.
    fn image_tag(
        &self,
        image: &str,
        reference: &str,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Removes an image (by id or reference). Absent is not an error.
    fn image_remove(&self, reference: &str)
    -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Creates (does not start) a container.
    fn container_create(
        &self,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<ContainerInfo, EngineError>> + Send;

    fn container_start(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Stops a container: SIGTERM, then SIGKILL after `grace`.
    fn container_stop(
        &self,
        id: &str,
        grace: Duration,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Removes a container, killing it if it runs. Absent is not an error.
    fn container_remove(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Inspects a container; `None` when absent.
    fn container_inspect(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<ContainerInfo>, EngineError>> + Send;

    /// Lists containers (running or not) carrying every given label `key=value`.
    fn container_list(
        &self,
        labels: &[(String, String)],
    ) -> impl Future<Output = Result<Vec<ContainerInfo>, EngineError>> + Send;

    /// Runs a command in a running container, streaming output to `sink` as it
    /// arrives, and returns the exit code with the collected output.
    /// Dropping the future stops the reading, not the command.
    fn exec(
        &self,
        id: &str,
        spec: &ExecSpec,
        sink: &mut (dyn OutputSink + Send),
    ) -> impl Future<Output = Result<ExecResult, EngineError>> + Send;

    /// Writes one file (owned by root) into a container, creating missing
    /// parent directories (mode 0755); existing directories are left as they are.
    fn put_file(
        &self,
        id: &str,
        path: &str,
        contents: &[u8],
        mode: u32,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Commits a container's filesystem as a new image `reference` (`repo:tag`),
    /// applying `changes` (`CMD [...]`, `LABEL k=v`, `ENV k=v`, `EXPOSE 80`).
    /// The image starts from the container's configuration, so the container's
    /// command, environment and labels carry over unless `changes` replace them.
    fn commit(
        &self,
        id: &str,
        reference: &str,
        changes: &[String],
    ) -> impl Future<Output = Result<ImageInfo, EngineError>> + Send;

    /// Creates the named network unless it exists.
    fn network_ensure(&self, name: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Creates the named network with `labels` unless it exists (an
    /// existing network keeps the labels it has): who owns it, so that a
    /// network can be found by label and attributed like a container.
    fn network_ensure_labelled(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Removes the named network. Absent is not an error; a network still
    /// used by containers is refused.
    fn network_remove(&self, name: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
}
