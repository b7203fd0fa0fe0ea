//! The recording fake engine: images, containers and networks kept in memory,
//! every call recorded, `exec` answered by a handler the test supplies, and
//! faults injected on demand. For simulations of the pure logic; the real
//! path is proven against Podman in `tests/it`.
//!
//! Design notes:
//!
//! - It mirrors what the real engines were seen to do where callers could
//!   notice: host ports are chosen at create time, `start` on a running
//!   container and `stop` on a stopped one are no-ops, removals of absent
//!   objects succeed, and a commit inherits the container's configuration
//!   (its command, environment and labels, including the container's own
//!   labels) before applying `changes`.
//! - Images and containers carry the files written with `put_file`; a commit
//!   copies them into the new image, and containers created from that image
//!   start with them. Exec handlers see them, so a handler can answer `cat`.
//! - Ids come from one counter, so a run is deterministic: container ids are
//!   64 hex digits, image ids `sha256:` and 64 hex digits.
//! - `image_import` never reads the tarball: the fake does no I/O.
//! - The exec handler, fault predicates and the sink run without the internal
//!   lock held, so they may call back into the fake (e.g. `kill`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::reference::normalize_reference;
use crate::{
    ContainerInfo, ContainerSpec, ContainerState, Engine, EngineError, EngineInfo, ExecResult,
    ExecSpec, ImageInfo, OutputSink, OutputStream, PortBinding,
};

/// Decides what an `exec` in the fake prints and returns.
pub type ExecHandler = Arc<dyn Fn(&ExecContext) -> ExecReply + Send + Sync>;

/// Decides whether a call fails, from the call itself.
pub type FaultPredicate = Arc<dyn Fn(&Call) -> Option<FaultKind> + Send + Sync>;

/// What an exec handler knows when asked to answer a command.
#[derive(Debug, Clone)]
pub struct ExecContext {
    /// The container the command runs in (id, name, image reference, labels).
    pub container: ContainerInfo,
    /// The image the container was created from, unless removed since.
    pub image: Option<ImageInfo>,
    /// The files the fake knows to be in the container (from its image and
    /// `put_file`), by absolute path.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The command.
    pub exec: ExecSpec,
}

impl ExecContext {
    /// The command line joined with spaces, for matching in handlers.
    pub fn command_line(&self) -> String {
        self.exec.cmd.join(" ")
    }
}

/// A handler's answer: output chunks in the order they are streamed, and the
/// exit code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecReply {
    pub output: Vec<(OutputStream, Vec<u8>)>,
    pub exit_code: i64,
}

impl ExecReply {
    /// No output, the given exit code.
    pub fn exit(exit_code: i64) -> ExecReply {
        ExecReply { output: Vec::new(), exit_code }
    }

    /// Adds a chunk of standard output.
    pub fn stdout(mut self, bytes: impl Into<Vec<u8>>) -> ExecReply {
        self.output.push((OutputStream::Stdout, bytes.into()));
        self
    }

    /// Adds a chunk of standard error.
    pub fn stderr(mut self, bytes: impl Into<Vec<u8>>) -> ExecReply {
        self.output.push((OutputStream::Stderr, bytes.into()));
        self
    }
}

/// The [`Engine`] operations, for naming which one a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    Info,
    ImageInspect,
    ImageImport,
    ImageTag,
    ImageRemove,
    ContainerCreate,
    ContainerStart,
    ContainerStop,
    ContainerRemove,
    ContainerInspect,
    ContainerList,
    Exec,
    PutFile,
    Commit,
    NetworkEnsure,
    NetworkRemove,
}

impl Operation {
    /// The operation as it reads in an error, `engine failed to {verb}
    /// {object}`: the object names its kind (`container 3f2a`), so the verb
    /// does not repeat it.
    fn verb(self) -> &'static str {
        match self {
            Operation::Info => "query",
            Operation::ImageInspect | Operation::ContainerInspect => "inspect",
            Operation::ImageImport => "import",
            Operation::ImageTag => "tag",
            Operation::ImageRemove | Operation::ContainerRemove | Operation::NetworkRemove => {
                "remove"
            }
            Operation::ContainerCreate | Operation::NetworkEnsure => "create",
            Operation::ContainerStart => "start",
            Operation::ContainerStop => "stop",
            Operation::ContainerList => "list containers",
            Operation::Exec => "run a command in",
            Operation::PutFile => "write a file into",
            Operation::Commit => "commit",
        }
    }
}

/// One call made to the fake, with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Info,
    ImageInspect { reference: String },
    ImageImport { tarball: PathBuf, reference: String, changes: Vec<String> },
    ImageTag { image: String, reference: String },
    ImageRemove { reference: String },
    ContainerCreate { spec: ContainerSpec },
    ContainerStart { id: String },
    ContainerStop { id: String, grace: Duration },
    ContainerRemove { id: String },
    ContainerInspect { id: String },
    ContainerList { labels: Vec<(String, String)> },
    Exec { id: String, spec: ExecSpec },
    PutFile { id: String, path: String, contents: Vec<u8>, mode: u32 },
    Commit { id: String, reference: String, changes: Vec<String> },
    NetworkEnsure { name: String },
    NetworkRemove { name: String },
}

impl Call {
    pub fn operation(&self) -> Operation {
        match self {
            Call::Info => Operation::Info,
            Call::ImageInspect { .. } => Operation::ImageInspect,
            Call::ImageImport { .. } => Operation::ImageImport,
            Call::ImageTag { .. } => Operation::ImageTag,
            Call::ImageRemove { .. } => Operation::ImageRemove,
            Call::ContainerCreate { .. } => Operation::ContainerCreate,
            Call::ContainerStart { .. } => Operation::ContainerStart,
            Call::ContainerStop { .. } => Operation::ContainerStop,
            Call::ContainerRemove { .. } => Operation::ContainerRemove,
            Call::ContainerInspect { .. } => Operation::ContainerInspect,
            Call::ContainerList { .. } => Operation::ContainerList,
            Call::Exec { .. } => Operation::Exec,
            Call::PutFile { .. } => Operation::PutFile,
            Call::Commit { .. } => Operation::Commit,
            Call::NetworkEnsure { .. } => Operation::NetworkEnsure,
            Call::NetworkRemove { .. } => Operation::NetworkRemove,
        }
    }

    /// What the call is about, as errors name it.
    fn object(&self) -> String {
        match self {
            Call::Info => "the version".to_string(),
            Call::ImageInspect { reference }
            | Call::ImageImport { reference, .. }
            | Call::ImageRemove { reference } => format!("image {reference}"),
            Call::ImageTag { image, .. } => format!("image {image}"),
            Call::ContainerCreate { spec } => {
                format!("container {}", spec.name.as_deref().unwrap_or(&spec.image))
            }
            Call::ContainerStart { id }
            | Call::ContainerStop { id, .. }
            | Call::ContainerRemove { id }
            | Call::ContainerInspect { id }
            | Call::Exec { id, .. }
            | Call::PutFile { id, .. }
            | Call::Commit { id, .. } => format!("container {id}"),
            Call::ContainerList { labels } => {
                let labels: Vec<String> =
                    labels.iter().map(|(key, value)| format!("{key}={value}")).collect();
                format!("with labels {}", labels.join(","))
            }
            Call::NetworkEnsure { name } | Call::NetworkRemove { name } => {
                format!("network {name}")
            }
        }
    }
}

/// How an injected fault fails a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The engine does not answer; nothing happens.
    Unreachable,
    /// The object is reported absent; nothing happens.
    NotFound,
    /// The engine refuses the request; nothing happens.
    Api,
    /// The operation takes effect, then the connection drops before the answer:
    /// the caller gets `Unreachable` (for testing idempotent retries).
    LostResponse,
}

/// An engine in memory. Clones share the same state.
#[derive(Clone, Default)]
pub struct FakeEngine {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeEngine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        formatter
            .debug_struct("FakeEngine")
            .field("images", &state.images.len())
            .field("containers", &state.containers.len())
            .field("calls", &state.calls.len())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// By image id.
    images: BTreeMap<String, FakeImage>,
    /// By container id.
    containers: BTreeMap<String, FakeContainer>,
    networks: BTreeSet<String>,
    /// The labels each network was created with.
    network_labels: BTreeMap<String, BTreeMap<String, String>>,
    calls: Vec<Call>,
    counted_faults: Vec<CountedFault>,
    fault_predicates: Vec<FaultPredicate>,
    exec_handler: Option<ExecHandler>,
    /// The last id handed out.
    serial: u64,
    /// The last host port handed out (from 32768 up).
    last_host_port: u16,
}

struct FakeImage {
    info: ImageInfo,
    files: BTreeMap<String, FakeFile>,
}

struct FakeContainer {
    info: ContainerInfo,
    /// The address it gets while running.
    ip_address: String,
    image_id: String,
    spec: ContainerSpec,
    files: BTreeMap<String, FakeFile>,
}

#[derive(Clone)]
struct FakeFile {
    contents: Vec<u8>,
    mode: u32,
}

/// Fails the `calls_to_skip + 1`-th next call of `operation`.
struct CountedFault {
    operation: Operation,
    calls_to_skip: usize,
    kind: FaultKind,
}

impl FakeEngine {
    pub fn new() -> FakeEngine {
        FakeEngine::default()
    }

    /// Adds an image tagged `reference` (as if imported), with no command or
    /// labels, and returns it.
    pub fn add_image(&self, reference: &str) -> ImageInfo {
        self.add_image_with(reference, BTreeMap::new(), None)
    }

    /// Adds an image tagged `reference` with labels and a command.
    pub fn add_image_with(
        &self,
        reference: &str,
        labels: BTreeMap<String, String>,
        cmd: Option<Vec<String>>,
    ) -> ImageInfo {
        let mut state = self.lock();
        let id = state.next_image_id();
        let info = ImageInfo {
            id: id.clone(),
            digests: Vec::new(),
            tags: Vec::new(),
            size_bytes: 0,
            labels,
            cmd,
            entrypoint: None,
            env: Vec::new(),
        };
        state.images.insert(id.clone(), FakeImage { info, files: BTreeMap::new() });
        state.move_tag(&id, reference);
        state.images[&id].info.clone()
    }

    /// Sets the handler that answers `exec`. Without one, every command exits
    /// with 127 and says so on stderr.
    pub fn set_exec_handler(
        &self,
        handler: impl Fn(&ExecContext) -> ExecReply + Send + Sync + 'static,
    ) {
        self.lock().exec_handler = Some(Arc::new(handler));
    }

    /// Every call so far, in order (including those that failed).
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls of one operation so far, in order.
    pub fn calls_of(&self, operation: Operation) -> Vec<Call> {
        self.lock().calls.iter().filter(|call| call.operation() == operation).cloned().collect()
    }

    /// Fails the next call of `operation`.
    pub fn fail_next(&self, operation: Operation, kind: FaultKind) {
        self.fail_nth(operation, 1, kind);
    }

    /// Fails the `n`-th call of `operation` from now (1 is the next one; 0 is
    /// taken as 1).
    pub fn fail_nth(&self, operation: Operation, n: usize, kind: FaultKind) {
        let calls_to_skip = n.saturating_sub(1);
        self.lock().counted_faults.push(CountedFault { operation, calls_to_skip, kind });
    }

    /// Fails every call for which `predicate` returns a kind, until
    /// [`FakeEngine::clear_faults`].
    pub fn fail_when(
        &self,
        predicate: impl Fn(&Call) -> Option<FaultKind> + Send + Sync + 'static,
    ) {
        self.lock().fault_predicates.push(Arc::new(predicate));
    }

    /// Forgets every pending fault.
    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.counted_faults.clear();
        state.fault_predicates.clear();
    }

    /// Makes a container exit with `exit_code`, as if its process died.
    pub fn kill(&self, container_id: &str, exit_code: i64) -> Result<(), EngineError> {
        let mut state = self.lock();
        let container = state.container_mut(container_id)?;
        container.info.state = ContainerState::Exited;
        container.info.exit_code = Some(exit_code);
        container.info.ip_address = None;
        Ok(())
    }

    /// The files written into a container (and inherited from its image), by
    /// absolute path; empty when the container is absent.
    pub fn files(&self, container_id: &str) -> BTreeMap<String, Vec<u8>> {
        let state = self.lock();
        state
            .find_container(container_id)
            .map(|id| file_contents(&state.containers[&id].files))
            .unwrap_or_default()
    }

    /// The mode a file was written with, when the fake knows the file.
    pub fn file_mode(&self, container_id: &str, path: &str) -> Option<u32> {
        let state = self.lock();
        let id = state.find_container(container_id)?;
        state.containers[&id].files.get(path).map(|file| file.mode)
    }

    /// Every image, by id.
    pub fn images(&self) -> Vec<ImageInfo> {
        self.lock().images.values().map(|image| image.info.clone()).collect()
    }

    /// Every container, in creation order.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        self.lock().containers.values().map(|container| container.info.clone()).collect()
    }

    /// Every network created with `network_ensure` and not removed since.
    pub fn networks(&self) -> BTreeSet<String> {
        self.lock().networks.clone()
    }

    /// The labels a network was created with; `None` for no such network.
    pub fn network_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.lock().network_labels.get(name).cloned()
    }

    /// The spec a container was created from (by id or name), e.g. to find
    /// the host directories it mounts; `None` when the container is absent.
    pub fn container_spec(&self, container_id: &str) -> Option<ContainerSpec> {
        let state = self.lock();
        let id = state.find_container(container_id)?;
        Some(state.containers[&id].spec.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state as consistent as
        // any single step: keep going rather than poison every later test call.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the call and decides whether an injected fault applies.
    fn begin(&self, call: Call) -> Result<Option<FaultKind>, EngineError> {
        let operation = call.operation();
        let (counted, predicates) = {
            let mut state = self.lock();
            state.calls.push(call.clone());
            let mut counted = None;
            state.counted_faults.retain_mut(|fault| {
                if fault.operation != operation {
                    return true;
                }
                if fault.calls_to_skip == 0 {
                    counted = counted.or(Some(fault.kind));
                    return false;
                }
                fault.calls_to_skip -= 1;
                true
            });
            (counted, state.fault_predicates.clone())
        };
        let kind = counted.or_else(|| predicates.iter().find_map(|predicate| predicate(&call)));
        match kind {
            None => Ok(None),
            Some(FaultKind::LostResponse) => Ok(Some(FaultKind::LostResponse)),
            Some(kind) => Err(fault_error(kind, &call)),
        }
    }

    /// Runs one operation: records it, applies faults, and acts with the lock held.
    fn run<T>(
        &self,
        call: Call,
        act: impl FnOnce(&mut State) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let lost_response = self.begin(call.clone())?;
        let result = act(&mut self.lock());
        match lost_response {
            Some(kind) => result.and(Err(fault_error(kind, &call))),
            None => result,
        }
    }
}

fn fault_error(kind: FaultKind, call: &Call) -> EngineError {
    let object = call.object();
    match kind {
        FaultKind::Unreachable => EngineError::Unreachable {
            endpoint: FAKE_ENDPOINT.to_string(),
            source: Some("injected fault: the engine does not answer".into()),
        },
        FaultKind::LostResponse => EngineError::Unreachable {
            endpoint: FAKE_ENDPOINT.to_string(),
            source: Some(
                "injected fault: the connection dropped after the operation took effect".into(),
            ),
        },
        FaultKind::NotFound => EngineError::NotFound { object },
        FaultKind::Api => EngineError::Api {
            operation: call.operation().verb(),
            object,
            source: "injected fault: the engine refused the request".into(),
        },
    }
}

const FAKE_ENDPOINT: &str = "fake://";

fn file_contents(files: &BTreeMap<String, FakeFile>) -> BTreeMap<String, Vec<u8>> {
    files.iter().map(|(path, file)| (path.clone(), file.contents.clone())).collect()
}

fn refused(
    operation: Operation,
    object: impl Into<String>,
    reason: impl Into<String>,
) -> EngineError {
    EngineError::Api {
        operation: operation.verb(),
        object: object.into(),
        source: reason.into().into(),
    }
}

impl State {
    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    fn next_image_id(&mut self) -> String {
        format!("sha256:{:064x}", self.next_serial())
    }

    fn next_host_port(&mut self) -> u16 {
        self.last_host_port = match self.last_host_port {
            0 | u16::MAX => 32768,
            port => port + 1,
        };
        self.last_host_port
    }

    /// Resolves an image id (with or without `sha256:`) or a reference.
    fn find_image(&self, reference: &str) -> Option<String> {
        let as_id = if reference.starts_with("sha256:") {
            reference.to_string()
        } else {
            format!("sha256:{reference}")
        };
        if self.images.contains_key(&as_id) {
            return Some(as_id);
        }
        let reference = normalize_reference(reference);
        self.images
            .iter()
            .find(|(_, image)| image.info.tags.contains(&reference))
            .map(|(id, _)| id.clone())
    }

    /// Resolves a container id or name.
    fn find_container(&self, id_or_name: &str) -> Option<String> {
        if self.containers.contains_key(id_or_name) {
            return Some(id_or_name.to_string());
        }
        self.containers
            .values()
            .find(|container| container.info.name == id_or_name)
            .map(|container| container.info.id.clone())
    }

    fn container_mut(&mut self, id_or_name: &str) -> Result<&mut FakeContainer, EngineError> {
        let id = self
            .find_container(id_or_name)
            .ok_or_else(|| EngineError::NotFound { object: format!("container {id_or_name}") })?;
        self.containers
            .get_mut(&id)
            .ok_or_else(|| EngineError::NotFound { object: format!("container {id_or_name}") })
    }

    /// Points `reference` at image `id`, taking it from any other image.
    fn move_tag(&mut self, id: &str, reference: &str) {
        let reference = normalize_reference(reference);
        for image in self.images.values_mut() {
            image.info.tags.retain(|tag| *tag != reference);
        }
        if let Some(image) = self.images.get_mut(id) {
            image.info.tags.push(reference);
        }
    }

    /// Stores a new image built from `base` with `changes` applied, tagged
    /// `reference`.
    fn create_image(
        &mut self,
        operation: Operation,
        mut base: ImageInfo,
        files: BTreeMap<String, FakeFile>,
        reference: &str,
        changes: &[String],
    ) -> Result<ImageInfo, EngineError> {
        for change in changes {
            apply_change(&mut base, change)
                .map_err(|reason| refused(operation, format!("image {reference}"), reason))?;
        }
        let id = self.next_image_id();
        base.id = id.clone();
        base.tags = Vec::new();
        base.digests = Vec::new();
        self.images.insert(id.clone(), FakeImage { info: base, files });
        self.move_tag(&id, reference);
        Ok(self.images[&id].info.clone())
    }
}

/// Applies one Dockerfile instruction to an image's configuration.
fn apply_change(image: &mut ImageInfo, change: &str) -> Result<(), String> {
    let change = change.trim();
    let (instruction, argument) =
        change.split_once(char::is_whitespace).map_or((change, ""), |(i, a)| (i, a.trim()));
    match instruction.to_ascii_uppercase().as_str() {
        "CMD" => image.cmd = Some(command_form(argument)),
        "ENTRYPOINT" => image.entrypoint = Some(command_form(argument)),
        "LABEL" => {
            for (key, value) in key_value_pairs(argument)? {
                image.labels.insert(key, value);
            }
        }
        "ENV" => {
            let pairs = if argument.contains('=') {
                key_value_pairs(argument)?
            } else {
                // The legacy `ENV key value` form.
                let (key, value) = argument
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| format!("ENV needs a value: {change:?}"))?;
                vec![(key.to_string(), value.trim().to_string())]
            };
            for (key, value) in pairs {
                image.env.retain(|entry| entry.split_once('=').map(|(k, _)| k) != Some(&key));
                image.env.push(format!("{key}={value}"));
            }
        }
        "EXPOSE" | "USER" | "WORKDIR" | "STOPSIGNAL" | "VOLUME" | "ONBUILD" => {}
        _ => return Err(format!("unsupported change {change:?}")),
    }
    Ok(())
}

/// `["a", "b"]` (exec form) or `a b` (shell form, run by `/bin/sh -c`).
fn command_form(argument: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(argument) {
        Ok(command) => command,
        Err(_) => vec!["/bin/sh".to_string(), "-c".to_string(), argument.to_string()],
    }
}

/// `k=v k2="v 2"` into pairs.
fn key_value_pairs(argument: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut rest = argument.trim_start();
    while !rest.is_empty() {
        let (key, after_key) =
            rest.split_once('=').ok_or_else(|| format!("expected key=value in {argument:?}"))?;
        let (value, after_value) = match after_key.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted
                    .find('"')
                    .ok_or_else(|| format!("unterminated quote in {argument:?}"))?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => {
                after_key.split_at(after_key.find(char::is_whitespace).unwrap_or(after_key.len()))
            }
        };
        pairs.push((unquote(key.trim()), value.to_string()));
        rest = after_value.trim_start();
    }
    Ok(pairs)
}

fn unquote(text: &str) -> String {
    text.strip_prefix('"').and_then(|inner| inner.strip_suffix('"')).unwrap_or(text).to_string()
}

impl Engine for FakeEngine {
    async fn info(&self) -> Result<EngineInfo, EngineError> {
        self.run(Call::Info, |_| {
            Ok(EngineInfo {
                product: "fake".to_string(),
                version: "0".to_string(),
                api_version: "1.41".to_string(),
                endpoint: FAKE_ENDPOINT.to_string(),
            })
        })
    }

    async fn image_inspect(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        let call = Call::ImageInspect { reference: reference.to_string() };
        self.run(call, |state| {
            Ok(state.find_image(reference).map(|id| state.images[&id].info.clone()))
        })
    }

    async fn image_import(
        &self,
        tarball: &Path,
        reference: &str,
        changes: &[String],
    ) -> Result<ImageInfo, EngineError> {
        let call = Call::ImageImport {
            tarball: tarball.to_path_buf(),
            reference: reference.to_string(),
            changes: changes.to_vec(),
        };
        self.run(call, |state| {
            let base = ImageInfo {
                id: String::new(),
                digests: Vec::new(),
                tags: Vec::new(),
                size_bytes: 0,
                labels: BTreeMap::new(),
                cmd: None,
                entrypoint: None,
                env: Vec::new(),
            };
            state.create_image(Operation::ImageImport, base, BTreeMap::new(), reference, changes)
        })
    }

    async fn image_tag(&self, image: &str, reference: &str) -> Result<(), EngineError> {
        let call = Call::ImageTag { image: image.to_string(), reference: reference.to_string() };
        self.run(call, |state| {
            let id = state
                .find_image(image)
                .ok_or_else(|| EngineError::NotFound { object: format!("image {image}") })?;
            state.move_tag(&id, reference);
            Ok(())
        })
    }

    async fn image_remove(&self, reference: &str) -> Result<(), EngineError> {
        let call = Call::ImageRemove { reference: reference.to_string() };
        self.run(call, |state| {
            let Some(id) = state.find_image(reference) else { return Ok(()) };
            let tag = normalize_reference(reference);
            let image = state
                .images
                .get_mut(&id)
                .ok_or_else(|| EngineError::NotFound { object: format!("image {reference}") })?;
            // Removing one of several tags only untags.
            if image.info.tags.len() > 1 && image.info.tags.contains(&tag) {
                image.info.tags.retain(|existing| *existing != tag);
                return Ok(());
            }
            if let Some(user) = state.containers.values().find(|container| container.image_id == id)
            {
                return Err(refused(
                    Operation::ImageRemove,
                    format!("image {reference}"),
                    format!("image is in use by container {}", user.info.id),
                ));
            }
            state.images.remove(&id);
            Ok(())
        })
    }

    async fn container_create(&self, spec: &ContainerSpec) -> Result<ContainerInfo, EngineError> {
        let call = Call::ContainerCreate { spec: spec.clone() };
        self.run(call, |state| {
            let object = format!("container {}", spec.name.as_deref().unwrap_or(&spec.image));
            let image_id = state.find_image(&spec.image).ok_or_else(|| {
                refused(
                    Operation::ContainerCreate,
                    &object,
                    format!("image {} not found", spec.image),
                )
            })?;
            if let Some(network) = &spec.network
                && !state.networks.contains(network)
            {
                return Err(refused(
                    Operation::ContainerCreate,
                    &object,
                    format!("network {network} not found"),
                ));
            }
            if let Some(name) = &spec.name
                && state.find_container(name).is_some()
            {
                return Err(refused(
                    Operation::ContainerCreate,
                    &object,
                    format!("the name {name} is already in use"),
                ));
            }
            let serial = state.next_serial();
            let id = format!("{serial:064x}");
            let ports = spec
                .publish
                .iter()
                .map(|binding| PortBinding {
                    container_port: binding.container_port,
                    host_ip: binding.host_ip.clone(),
                    host_port: match binding.host_port {
                        0 => state.next_host_port(),
                        port => port,
                    },
                })
                .collect();
            let image = &state.images[&image_id];
            let mut labels = image.info.labels.clone();
            labels.extend(spec.labels.clone());
            let info = ContainerInfo {
                id: id.clone(),
                name: spec.name.clone().unwrap_or_else(|| format!("fake-{serial}")),
                image: spec.image.clone(),
                state: ContainerState::Created,
                exit_code: None,
                labels,
                ports,
                ip_address: None,
            };
            let files = image.files.clone();
            state.containers.insert(
                id,
                FakeContainer {
                    info: info.clone(),
                    ip_address: format!("10.89.{}.{}", serial / 250 % 250, serial % 250 + 2),
                    image_id,
                    spec: spec.clone(),
                    files,
                },
            );
            Ok(info)
        })
    }

    async fn container_start(&self, id: &str) -> Result<(), EngineError> {
        self.run(Call::ContainerStart { id: id.to_string() }, |state| {
            let container = state.container_mut(id)?;
            if container.info.state != ContainerState::Running {
                container.info.state = ContainerState::Running;
                container.info.exit_code = None;
                container.info.ip_address = Some(container.ip_address.clone());
            }
            Ok(())
        })
    }

    async fn container_stop(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        self.run(Call::ContainerStop { id: id.to_string(), grace }, |state| {
            let container = state.container_mut(id)?;
            if matches!(
                container.info.state,
                ContainerState::Running | ContainerState::Paused | ContainerState::Restarting
            ) {
                container.info.state = ContainerState::Exited;
                container.info.exit_code = Some(0);
                container.info.ip_address = None;
            }
            Ok(())
        })
    }

    async fn container_remove(&self, id: &str) -> Result<(), EngineError> {
        self.run(Call::ContainerRemove { id: id.to_string() }, |state| {
            if let Some(id) = state.find_container(id) {
                state.containers.remove(&id);
            }
            Ok(())
        })
    }

    async fn container_inspect(&self, id: &str) -> Result<Option<ContainerInfo>, EngineError> {
        self.run(Call::ContainerInspect { id: id.to_string() }, |state| {
            Ok(state.find_container(id).map(|id| state.containers[&id].info.clone()))
        })
    }

    async fn container_list(
        &self,
        labels: &[(String, String)],
    ) -> Result<Vec<ContainerInfo>, EngineError> {
        self.run(Call::ContainerList { labels: labels.to_vec() }, |state| {
            Ok(state
                .containers
                .values()
                .filter(|container| {
                    labels.iter().all(|(key, value)| container.info.labels.get(key) == Some(value))
                })
                .map(|container| container.info.clone())
                .collect())
        })
    }

    async fn exec(
        &self,
        id: &str,
        spec: &ExecSpec,
        sink: &mut (dyn OutputSink + Send),
    ) -> Result<ExecResult, EngineError> {
        let call = Call::Exec { id: id.to_string(), spec: spec.clone() };
        let (context, handler, lost_response) = {
            let lost_response = self.begin(call.clone())?;
            let mut state = self.lock();
            let container = state.container_mut(id)?;
            if container.info.state != ContainerState::Running {
                return Err(refused(
                    Operation::Exec,
                    format!("container {id}"),
                    "the container is not running",
                ));
            }
            let container_info = container.info.clone();
            let files = file_contents(&container.files);
            let image_id = container.image_id.clone();
            let context = ExecContext {
                container: container_info,
                image: state.images.get(&image_id).map(|image| image.info.clone()),
                files,
                exec: spec.clone(),
            };
            (context, state.exec_handler.clone(), lost_response)
        };
        let reply = match handler {
            Some(handler) => handler(&context),
            None => ExecReply::exit(127).stderr(format!(
                "fake engine: no exec handler set for {:?}\n",
                context.command_line()
            )),
        };
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        for (stream, bytes) in reply.output {
            sink.output(stream, &bytes);
            match stream {
                OutputStream::Stdout => stdout.extend_from_slice(&bytes),
                OutputStream::Stderr => stderr.extend_from_slice(&bytes),
            }
            // Let other tasks run between chunks, as a real stream would.
            tokio::task::yield_now().await;
        }
        if let Some(kind) = lost_response {
            return Err(fault_error(kind, &call));
        }
        Ok(ExecResult { exit_code: reply.exit_code, stdout, stderr })
    }

    async fn put_file(
        &self,
        id: &str,
        path: &str,
        contents: &[u8],
        mode: u32,
    ) -> Result<(), EngineError> {
        let call = Call::PutFile {
            id: id.to_string(),
            path: path.to_string(),
            contents: contents.to_vec(),
            mode,
        };
        self.run(call, |state| {
            if !path.starts_with('/') || path.ends_with('/') {
                return Err(refused(
                    Operation::PutFile,
                    format!("container {id} ({path})"),
                    "the path is not an absolute file path",
                ));
            }
            let container = state.container_mut(id)?;
            container
                .files
                .insert(path.to_string(), FakeFile { contents: contents.to_vec(), mode });
            Ok(())
        })
    }

    async fn commit(
        &self,
        id: &str,
        reference: &str,
        changes: &[String],
    ) -> Result<ImageInfo, EngineError> {
        let call = Call::Commit {
            id: id.to_string(),
            reference: reference.to_string(),
            changes: changes.to_vec(),
        };
        self.run(call, |state| {
            let container = state.container_mut(id)?;
            let files = container.files.clone();
            let spec = container.spec.clone();
            let container_labels = container.info.labels.clone();
            let image_id = container.image_id.clone();
            // The container's configuration: its image's, overridden by the spec.
            let mut base = match state.images.get(&image_id) {
                Some(image) => image.info.clone(),
                None => {
                    return Err(refused(
                        Operation::Commit,
                        format!("container {id}"),
                        "the container's image is gone",
                    ));
                }
            };
            base.labels = container_labels;
            if !spec.cmd.is_empty() {
                base.cmd = Some(spec.cmd.clone());
            }
            if let Some(entrypoint) = spec.entrypoint {
                base.entrypoint = Some(entrypoint);
            }
            base.env.extend(spec.env);
            state.create_image(Operation::Commit, base, files, reference, changes)
        })
    }

    async fn network_ensure(&self, name: &str) -> Result<(), EngineError> {
        self.network_ensure_labelled(name, &BTreeMap::new()).await
    }

    async fn network_ensure_labelled(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        self.run(Call::NetworkEnsure { name: name.to_string() }, |state| {
            if state.networks.insert(name.to_string()) {
                state.network_labels.insert(name.to_string(), labels.clone());
            }
            Ok(())
        })
    }

    async fn network_remove(&self, name: &str) -> Result<(), EngineError> {
        self.run(Call::NetworkRemove { name: name.to_string() }, |state| {
            // Like Podman: a network any container (running or not) is on stays.
            if let Some(user) = state
                .containers
                .values()
                .find(|container| container.spec.network.as_deref() == Some(name))
            {
                return Err(refused(
                    Operation::NetworkRemove,
                    format!("network {name}"),
                    format!("the network is in use by container {}", user.info.id),
                ));
            }
            state.networks.remove(name);
            state.network_labels.remove(name);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    /// Collects what `exec` streams.
    #[derive(Default)]
    struct Recorder(Vec<(OutputStream, Vec<u8>)>);

    impl OutputSink for Recorder {
        fn output(&mut self, stream: OutputStream, bytes: &[u8]) {
            self.0.push((stream, bytes.to_vec()));
        }
    }

    async fn running_container(engine: &FakeEngine, image: &str) -> ContainerInfo {
        engine.network_ensure("fleet").await.expect("network");
        let spec = ContainerSpec {
            image: image.to_string(),
            network: Some("fleet".to_string()),
            labels: BTreeMap::from([("autopatch.fleet".to_string(), "web".to_string())]),
            publish: vec![PortBinding {
                container_port: 80,
                host_ip: "127.0.0.1".to_string(),
                host_port: 0,
            }],
            ..Default::default()
        };
        let container = engine.container_create(&spec).await.expect("create");
        engine.container_start(&container.id).await.expect("start");
        engine.container_inspect(&container.id).await.expect("inspect").expect("present")
    }

    #[tokio::test]
    async fn container_lifecycle_and_calls_are_recorded() {
        let engine = FakeEngine::new();
        engine.add_image("localhost/golden:bookworm");
        let container = running_container(&engine, "localhost/golden:bookworm").await;
        assert_eq!(container.state, ContainerState::Running);
        assert_eq!(container.ports[0].host_port, 32768);
        assert!(container.ip_address.is_some());

        let labels = vec![("autopatch.fleet".to_string(), "web".to_string())];
        assert_eq!(engine.container_list(&labels).await.expect("list").len(), 1);
        let other = vec![("autopatch.fleet".to_string(), "db".to_string())];
        assert!(engine.container_list(&other).await.expect("list").is_empty());

        engine.container_stop(&container.id, Duration::from_secs(5)).await.expect("stop");
        let stopped = engine.container_inspect(&container.id).await.expect("inspect");
        assert_eq!(
            stopped.map(|c| (c.state, c.exit_code)),
            Some((ContainerState::Exited, Some(0)))
        );
        engine.container_remove(&container.id).await.expect("remove");
        engine.container_remove(&container.id).await.expect("removing again is fine");
        assert_eq!(engine.container_inspect(&container.id).await.expect("inspect"), None);

        assert_eq!(engine.calls_of(Operation::ContainerRemove).len(), 2);
        assert_eq!(engine.calls()[0], Call::NetworkEnsure { name: "fleet".to_string() });
    }

    #[tokio::test]
    async fn exec_streams_the_handler_reply_and_sees_image_labels() {
        let engine = FakeEngine::new();
        engine.add_image_with(
            "localhost/app:patched",
            BTreeMap::from([("patched".to_string(), "yes".to_string())]),
            None,
        );
        engine.set_exec_handler(|context| {
            let patched = context.image.as_ref().and_then(|image| image.labels.get("patched"));
            match (context.command_line().as_str(), patched) {
                ("apt-get -s dist-upgrade", Some(_)) => ExecReply::exit(0).stdout("0 upgraded\n"),
                ("apt-get -s dist-upgrade", None) => {
                    ExecReply::exit(0).stdout("Inst a\n").stdout("Inst b\n")
                }
                _ => ExecReply::exit(1).stderr("unknown command\n"),
            }
        });
        let container = running_container(&engine, "localhost/app:patched").await;
        let mut recorder = Recorder::default();
        let spec =
            ExecSpec { cmd: strings(&["apt-get", "-s", "dist-upgrade"]), ..Default::default() };
        let result = engine.exec(&container.id, &spec, &mut recorder).await.expect("exec");
        assert_eq!(result.stdout_text(), "0 upgraded\n");
        assert_eq!(recorder.0, vec![(OutputStream::Stdout, b"0 upgraded\n".to_vec())]);

        engine.kill(&container.id, 137).expect("kill");
        let error = engine.exec(&container.id, &spec, &mut ()).await.expect_err("not running");
        assert!(matches!(error, EngineError::Api { .. }), "{error:?}");
        let died =
            engine.container_inspect(&container.id).await.expect("inspect").expect("present");
        assert_eq!((died.state, died.exit_code), (ContainerState::Exited, Some(137)));
    }

    #[tokio::test]
    async fn an_exec_handler_can_kill_its_container_midway() {
        let engine = FakeEngine::new();
        engine.add_image("localhost/golden:bookworm");
        let handle = engine.clone();
        engine.set_exec_handler(move |context| {
            // The handler runs without the lock held, so it may call back.
            let killed = handle.kill(&context.container.id, 137);
            assert!(killed.is_ok(), "{killed:?}");
            ExecReply::exit(137).stdout("partial output")
        });
        let container = running_container(&engine, "localhost/golden:bookworm").await;
        let spec = ExecSpec { cmd: strings(&["apt-get", "upgrade"]), ..Default::default() };
        let result = engine.exec(&container.id, &spec, &mut ()).await.expect("exec");
        assert_eq!((result.exit_code, result.stdout_text().as_str()), (137, "partial output"));
        let died = engine.container_inspect(&container.id).await.expect("inspect");
        assert_eq!(died.map(|c| c.state), Some(ContainerState::Exited));
    }

    #[tokio::test]
    async fn commit_inherits_files_and_config_and_applies_changes() {
        let engine = FakeEngine::new();
        engine.add_image("localhost/golden:bookworm");
        let container = running_container(&engine, "localhost/golden:bookworm").await;
        engine.put_file(&container.id, "/etc/app.conf", b"x=1\n", 0o640).await.expect("put");
        assert_eq!(engine.file_mode(&container.id, "/etc/app.conf"), Some(0o640));
        let changes = strings(&[r#"CMD ["sleep","infinity"]"#, r#"LABEL a=b c="d e""#, "ENV X=1"]);
        let image =
            engine.commit(&container.id, "localhost/app:v1", &changes).await.expect("commit");
        assert_eq!(image.cmd, Some(strings(&["sleep", "infinity"])));
        assert_eq!(image.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(image.labels.get("c").map(String::as_str), Some("d e"));
        // Like Podman: the container's own labels end up in the image.
        assert_eq!(image.labels.get("autopatch.fleet").map(String::as_str), Some("web"));
        assert_eq!(image.env, strings(&["X=1"]));
        assert_eq!(image.tags, strings(&["localhost/app:v1"]));

        let again = engine.commit(&container.id, "localhost/app:v1", &[]).await.expect("commit");
        assert_ne!(again.id, image.id, "each commit makes a new image");
        let old = engine.image_inspect(&image.id).await.expect("inspect").expect("still present");
        assert!(old.tags.is_empty(), "the tag moved to the new image");

        let child = running_container(&engine, "localhost/app:v1").await;
        assert_eq!(engine.files(&child.id).get("/etc/app.conf"), Some(&b"x=1\n".to_vec()));

        let error = engine.image_remove("localhost/app:v1").await.expect_err("in use");
        assert!(matches!(error, EngineError::Api { .. }), "{error:?}");
        engine.container_remove(&child.id).await.expect("remove");
        engine.image_remove("localhost/app:v1").await.expect("remove");
        engine.image_remove("localhost/app:v1").await.expect("absent is fine");
        assert_eq!(engine.image_inspect("localhost/app:v1").await.expect("inspect"), None);
    }

    #[test]
    fn an_injected_refusal_names_its_object_once() {
        let id = "3f2a".to_string();
        let calls = [
            Call::Info,
            Call::ImageInspect { reference: "web:1".into() },
            Call::ImageImport {
                tarball: "/t.tar".into(),
                reference: "web:1".into(),
                changes: vec![],
            },
            Call::ImageTag { image: "5323".into(), reference: "web:1".into() },
            Call::ImageRemove { reference: "web:1".into() },
            Call::ContainerCreate {
                spec: ContainerSpec { image: "web:1".into(), ..Default::default() },
            },
            Call::ContainerStart { id: id.clone() },
            Call::ContainerStop { id: id.clone(), grace: Duration::ZERO },
            Call::ContainerRemove { id: id.clone() },
            Call::ContainerInspect { id: id.clone() },
            Call::ContainerList { labels: vec![("a".into(), "b".into())] },
            Call::Exec { id: id.clone(), spec: ExecSpec::default() },
            Call::PutFile { id: id.clone(), path: "/x".into(), contents: vec![], mode: 0o644 },
            Call::Commit { id: id.clone(), reference: "web:1".into(), changes: vec![] },
            Call::NetworkEnsure { name: "fleet".into() },
            Call::NetworkRemove { name: "fleet".into() },
        ];
        for call in calls {
            let message = fault_error(FaultKind::Api, &call).to_string();
            let words: Vec<&str> = message.split_whitespace().collect();
            assert!(words.windows(2).all(|pair| pair[0] != pair[1]), "{message}");
        }
    }

    #[tokio::test]
    async fn faults_hit_the_chosen_call() {
        let engine = FakeEngine::new();
        engine.add_image("localhost/golden:bookworm");
        let container = running_container(&engine, "localhost/golden:bookworm").await;
        engine.fail_nth(Operation::Commit, 2, FaultKind::Api);
        engine.commit(&container.id, "localhost/app:1", &[]).await.expect("first commit works");
        let error = engine.commit(&container.id, "localhost/app:2", &[]).await.expect_err("2nd");
        assert!(matches!(error, EngineError::Api { operation: "commit", .. }));
        assert_eq!(engine.image_inspect("localhost/app:2").await.expect("inspect"), None);
        engine.commit(&container.id, "localhost/app:3", &[]).await.expect("third works");

        engine.fail_next(Operation::Commit, FaultKind::LostResponse);
        let error = engine.commit(&container.id, "localhost/app:4", &[]).await.expect_err("lost");
        assert!(matches!(error, EngineError::Unreachable { .. }));
        assert!(engine.image_inspect("localhost/app:4").await.expect("inspect").is_some());

        engine.fail_when(|call| match call {
            Call::PutFile { path, .. } if path.starts_with("/etc/") => Some(FaultKind::NotFound),
            _ => None,
        });
        let error = engine.put_file(&container.id, "/etc/x", b"", 0o644).await.expect_err("fault");
        assert!(matches!(error, EngineError::NotFound { .. }));
        engine.put_file(&container.id, "/srv/x", b"", 0o644).await.expect("not matched");
        engine.clear_faults();
        engine.put_file(&container.id, "/etc/x", b"", 0o644).await.expect("cleared");
        assert_eq!(engine.calls_of(Operation::Commit).len(), 4, "failed calls are recorded too");
    }

    #[tokio::test]
    async fn specs_are_kept_and_networks_in_use_stay() {
        let engine = FakeEngine::new();
        engine.add_image("localhost/golden:bookworm");
        let container = running_container(&engine, "localhost/golden:bookworm").await;
        let spec = engine.container_spec(&container.name).expect("the spec is kept");
        assert_eq!(spec.network.as_deref(), Some("fleet"));
        let error = engine.network_remove("fleet").await.expect_err("in use");
        assert!(matches!(error, EngineError::Api { operation: "remove", .. }));
        assert_eq!(error.to_string(), "engine failed to remove network fleet");
        engine.container_remove(&container.id).await.expect("remove");
        assert_eq!(engine.container_spec(&container.id), None);
        engine.network_remove("fleet").await.expect("unused now");
        engine.network_remove("fleet").await.expect("absent is fine");
        assert!(engine.networks().is_empty());
    }

    #[test]
    fn changes_parse_like_dockerfile_instructions() {
        let mut image = FakeEngine::new().add_image("x");
        apply_change(&mut image, "CMD sleep 1").expect("shell form");
        assert_eq!(image.cmd, Some(strings(&["/bin/sh", "-c", "sleep 1"])));
        apply_change(&mut image, "ENV A b").expect("legacy env");
        apply_change(&mut image, "ENV A=c").expect("env replaces");
        assert_eq!(image.env, strings(&["A=c"]));
        apply_change(&mut image, "EXPOSE 80").expect("accepted");
        assert!(apply_change(&mut image, "RUN true").is_err());
    }
}
