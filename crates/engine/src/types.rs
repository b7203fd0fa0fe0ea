//! Plain data exchanged with the engine: container specs, exec requests and
//! results, and what inspection returns.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the engine is, as reported by its version endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    /// `podman` or `docker`.
    pub product: String,
    pub version: String,
    pub api_version: String,
    /// Where it was reached, e.g. `unix:///run/podman/podman.sock`.
    pub endpoint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The engine's image id (`sha256:...`).
    pub id: String,
    /// Repository digests, when the engine knows any.
    pub digests: Vec<String>,
    pub tags: Vec<String>,
    pub size_bytes: u64,
    pub labels: BTreeMap<String, String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
}

/// A port to publish: `container_port`/tcp on `host_ip:host_port`
/// (`host_port` 0 lets the engine pick a free one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBinding {
    pub container_port: u16,
    pub host_ip: String,
    pub host_port: u16,
}

/// A host directory bind-mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The host directory (absolute; it must exist).
    pub source: PathBuf,
    /// Where it appears in the container (absolute).
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSpec {
    pub name: Option<String>,
    pub image: String,
    /// Replaces the image's CMD when not empty.
    pub cmd: Vec<String>,
    /// Replaces the image's ENTRYPOINT when set.
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub network: Option<String>,
    pub hostname: Option<String>,
    pub publish: Vec<PortBinding>,
    /// Run an init process as PID 1 (so SIGTERM stops the container gracefully).
    pub init: bool,
    /// CPU limit in cores (fractions allowed).
    pub cpus: Option<f64>,
    pub memory_bytes: Option<u64>,
    /// Host directories bind-mounted into the container.
    pub mounts: Vec<Mount>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Removing,
    Dead,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    pub exit_code: Option<i64>,
    pub labels: BTreeMap<String, String>,
    /// Published ports as actually bound (host_port filled in).
    pub ports: Vec<PortBinding>,
    /// The container's address on its network, when running.
    pub ip_address: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Receives exec output as it arrives (for live logs and progress).
pub trait OutputSink {
    fn output(&mut self, stream: OutputStream, bytes: &[u8]);
}

impl OutputSink for () {
    fn output(&mut self, _stream: OutputStream, _bytes: &[u8]) {}
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecResult {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}
