//! The real engine: the Docker Engine API over a unix or TCP socket, through
//! `bollard`, served by Podman's compatible API or by Docker.
//!
//! Design notes, from probing Podman 4.3's compatible API with bollard 0.21:
//!
//! - Dockerfile `changes` for import and commit are sent as repeated
//!   `changes=` query parameters, one instruction each, which is what the
//!   docker CLI sends. bollard encodes import changes as one newline-joined
//!   value, which Podman 4.3's import does not split (the whole text becomes a
//!   shell-form CMD), and its commit options take a single string. So both
//!   calls leave `changes` out of bollard's options and a request modifier
//!   appends the parameters (see [`with_changes`]). A change containing a
//!   newline is refused, since engines split on newlines inconsistently.
//! - Podman's import ignores the `tag` parameter: the whole `repo:tag` goes in
//!   `repo`. Afterwards the image is looked up by that reference and tagged
//!   explicitly if the engine did not name it (Docker may not).
//! - Podman's commit ignores the JSON config body: everything goes in
//!   `changes`, and the reference is split into `repo` and `tag`.
//! - `put_file` uploads a tar holding only the file: the engine creates missing
//!   parent directories (mode 0755). Directory entries for parents are left out
//!   on purpose, because extracting them re-applies their metadata to existing
//!   directories (seen: `/tmp` went from 1777 to 0755).
//! - bollard's request timeout covers the wait for response headers, not a
//!   streamed response body; import and commit get a long one because the
//!   engine answers only when the image is written.
//! - Bind mounts go in `HostConfig.Binds` as `source:target:rw|ro`, the form
//!   both engines accept; a path holding `:` or `,` is refused rather than
//!   split wrongly.
//! - Dropping an `exec` future closes the connection: nothing panics, but the
//!   command keeps running in the container (the API cannot signal it).
//! - Podman 4.3 can answer "no such image" or "no such container" (a 404, or
//!   a 500 naming another image that vanished while it inspected) for one
//!   that exists, while other images or containers are created or removed:
//!   its lookups race with its own store reloads. Seen in the test suite and
//!   reproduced with curl (docs/engine.md). An answer of "absent" is believed
//!   only when it repeats after [`ABSENCE_RECHECKS`]; a removal that meets one
//!   checks that the object is really gone, so nothing is left behind.
//! - Podman lists a container whose process ended but whose cleanup has not
//!   run yet with the state `stopped` (not a Docker state); bollard refuses
//!   the whole listing for it, so the listing is one raw request of its own
//!   that reads only the ids ([`DockerEngine::list_container_ids`]).
//! - An import or a commit whose content matches a stored layer reuses it;
//!   if another image holding that layer is removed meanwhile, Podman fails
//!   with a 500 "layer not known". It is tried again ([`LAYER_RACE_RETRIES`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, ExecConfig,
    HostConfig, ImageInspect, NetworkCreateRequest,
};
use bollard::query_parameters::{
    CommitContainerOptions, CreateContainerOptions, CreateImageOptions, InspectNetworkOptions,
    RemoveContainerOptions, RemoveImageOptions, StartContainerOptions, StopContainerOptions,
    TagImageOptions,
};
use bollard::{API_DEFAULT_VERSION, ClientVersion, Docker};
use futures_util::StreamExt;
use tokio_util::io::ReaderStream;

use crate::reference::split_reference;
use crate::{
    ContainerInfo, ContainerSpec, ContainerState, Engine, EngineError, EngineInfo, ExecResult,
    ExecSpec, ImageInfo, OutputSink, OutputStream, PortBinding,
};

/// Where `connect` looks when `DOCKER_HOST` is not set, in order (after these,
/// `$XDG_RUNTIME_DIR/podman/podman.sock`).
const SYSTEM_SOCKETS: [&str; 2] = ["/run/podman/podman.sock", "/var/run/docker.sock"];

/// The request timeout for ordinary calls (the time to the response headers).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// How long `connect` waits for the engine's first answer.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// The request timeout for calls that write an image: the engine answers only
/// when the whole image is stored.
const IMAGE_WRITE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How long `exec` waits for the engine to report an exit code once the output
/// stream has ended.
const EXEC_EXIT_CODE_WAIT: Duration = Duration::from_secs(10);

/// The pauses before asking again when the engine says an image or a
/// container is absent (see the module notes): an object really absent costs
/// about 0.1 s more to look up, one that exists is found.
const ABSENCE_RECHECKS: [Duration; 2] = [Duration::from_millis(20), Duration::from_millis(80)];

/// The pauses before an import or a commit is tried again after the engine
/// answered "layer not known": Podman reuses a stored layer with the same
/// content, and removing another image can delete that layer before the new
/// image is written (module notes). No pause: the next try stores the layer.
const LAYER_RACE_RETRIES: [Duration; 2] = [Duration::ZERO, Duration::ZERO];

/// The pauses before listing again after a container vanished under the
/// listing (Podman fails the whole listing for it).
const LISTING_RETRIES: [Duration; 4] = [
    Duration::from_millis(20),
    Duration::from_millis(40),
    Duration::from_millis(60),
    Duration::from_millis(80),
];

/// How many times a removal is tried when the engine answers "absent" but
/// the object is still there afterwards.
const REMOVE_ATTEMPTS: u32 = 3;

/// A container engine reached through the Docker Engine API.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    endpoint: String,
}

impl DockerEngine {
    /// Connects to the engine named by `DOCKER_HOST` (`unix://` or `tcp://`),
    /// else to the first existing of `/run/podman/podman.sock`,
    /// `/var/run/docker.sock` and `$XDG_RUNTIME_DIR/podman/podman.sock`.
    pub async fn connect() -> Result<DockerEngine, EngineError> {
        if let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|host| !host.is_empty()) {
            return DockerEngine::connect_to(&host).await;
        }
        let mut candidates: Vec<String> =
            SYSTEM_SOCKETS.iter().map(|path| path.to_string()).collect();
        if let Some(runtime_dir) = std::env::var_os("XDG_RUNTIME_DIR") {
            candidates
                .push(Path::new(&runtime_dir).join("podman/podman.sock").display().to_string());
        }
        match candidates.iter().find(|path| Path::new(path).exists()) {
            Some(path) => DockerEngine::connect_to(&format!("unix://{path}")).await,
            None => Err(EngineError::Unreachable {
                endpoint: format!("unix://{}", SYSTEM_SOCKETS[0]),
                source: Some(
                    format!("DOCKER_HOST is not set and none of {} exists", candidates.join(", "))
                        .into(),
                ),
            }),
        }
    }

    /// Connects to the engine at `endpoint` (`unix:///path` or `tcp://host:port`),
    /// checks that it answers and agrees on an API version.
    pub async fn connect_to(endpoint: &str) -> Result<DockerEngine, EngineError> {
        let unreachable = |source: BollardError| EngineError::Unreachable {
            endpoint: endpoint.to_string(),
            source: Some(Box::new(source)),
        };
        if !["unix://", "tcp://", "http://"].iter().any(|scheme| endpoint.starts_with(scheme)) {
            return Err(EngineError::Unreachable {
                endpoint: endpoint.to_string(),
                source: Some(
                    "unsupported address: expected unix:///path or tcp://host:port".into(),
                ),
            });
        }
        // A short wait for the first answer: a silent TCP peer is no engine.
        // The ping's `Api-Version` header is the engine's API version: asking
        // `GET /version` instead costs Podman a third of a second, on every
        // command that talks to the engine.
        let (status, headers, _) =
            tokio::time::timeout(PING_TIMEOUT, raw_request(endpoint, "/_ping"))
                .await
                .map_err(|_| unreachable(BollardError::RequestTimeoutError))?
                .map_err(unreachable)?;
        if !(200..300).contains(&status) {
            return Err(unreachable(server_error(status, b"")));
        }
        let announced = headers
            .get("api-version")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_api_version);
        let negotiation_failed = |source| EngineError::Api {
            operation: "negotiate an API version with",
            object: endpoint.to_string(),
            source: Box::new(source),
        };
        let docker = match announced {
            Some(version) => {
                let version =
                    if version < *API_DEFAULT_VERSION { version } else { *API_DEFAULT_VERSION };
                let seconds = DEFAULT_TIMEOUT.as_secs();
                match endpoint.strip_prefix("unix://") {
                    Some(_) => Docker::connect_with_unix(endpoint, seconds, &version),
                    None => Docker::connect_with_http(endpoint, seconds, &version),
                }
                .map_err(unreachable)?
            }
            // An engine that does not say it on a ping.
            None => Docker::connect_with_host(endpoint)
                .map_err(unreachable)?
                .with_timeout(DEFAULT_TIMEOUT)
                .negotiate_version()
                .await
                .map_err(negotiation_failed)?,
        };
        Ok(DockerEngine { docker, endpoint: endpoint.to_string() })
    }

    /// Where the engine was reached, e.g. `unix:///run/podman/podman.sock`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Classifies a bollard error: connection failures mean the engine is
    /// unreachable, anything else is the engine refusing `operation`.
    /// The message reads `engine failed to {operation} {object}`: when the
    /// object names its kind (`container 3f2a`), the operation is the bare
    /// verb (`start`), so the noun is not said twice.
    fn error(
        &self,
        operation: &'static str,
        object: impl Into<String>,
        error: BollardError,
    ) -> EngineError {
        if is_unreachable(&error) {
            EngineError::Unreachable {
                endpoint: self.endpoint.clone(),
                source: Some(Box::new(error)),
            }
        } else {
            EngineError::Api { operation, object: object.into(), source: Box::new(error) }
        }
    }

    /// Like [`DockerEngine::error`], but a 404 becomes `NotFound { object }`.
    fn error_or_not_found(
        &self,
        operation: &'static str,
        object: impl Into<String>,
        error: BollardError,
    ) -> EngineError {
        if is_not_found(&error) {
            EngineError::NotFound { object: object.into() }
        } else {
            self.error(operation, object, error)
        }
    }
}

impl Engine for DockerEngine {
    async fn info(&self) -> Result<EngineInfo, EngineError> {
        let version = self
            .docker
            .version()
            .await
            .map_err(|error| self.error("query", "the version", error))?;
        let component_names = version.components.iter().flatten().map(|component| &component.name);
        let platform_name = version.platform.as_ref().map(|platform| &platform.name);
        let is_podman =
            component_names.chain(platform_name).any(|name| name.to_lowercase().contains("podman"));
        Ok(EngineInfo {
            product: if is_podman { "podman" } else { "docker" }.to_string(),
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            endpoint: self.endpoint.clone(),
        })
    }

    async fn image_inspect(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        match ask_again(&ABSENCE_RECHECKS, is_vanished_image, || {
            self.docker.inspect_image(reference)
        })
        .await
        {
            Ok(image) => Ok(Some(image_info(image))),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(self.error("inspect image", reference, error)),
        }
    }

    async fn image_import(
        &self,
        tarball: &Path,
        reference: &str,
        changes: &[String],
    ) -> Result<ImageInfo, EngineError> {
        const OPERATION: &str = "import image";
        check_changes(OPERATION, reference, changes)?;
        // Not `ask_again`: reading the tarball fails apart from the engine.
        let mut retries = LAYER_RACE_RETRIES.iter();
        let image_id = loop {
            match self.import_stream(tarball, reference, changes).await? {
                Ok(image_id) => break image_id,
                Err(error) if is_vanished_layer(&error) && retries.next().is_some() => {}
                Err(error) => return Err(self.error(OPERATION, reference, error)),
            }
        };
        if let Some(image) = self.image_inspect(reference).await?
            && image_id.as_deref().is_none_or(|id| same_image_id(id, &image.id))
        {
            return Ok(image);
        }
        // The engine did not name the image after the reference: tag it.
        let Some(image_id) = image_id else {
            return Err(EngineError::Api {
                operation: OPERATION,
                object: reference.to_string(),
                source: "the engine reported no image id".into(),
            });
        };
        self.image_tag(&image_id, reference).await?;
        self.image_inspect(reference)
            .await?
            .ok_or_else(|| EngineError::NotFound { object: format!("image {reference}") })
    }

    async fn image_tag(&self, image: &str, reference: &str) -> Result<(), EngineError> {
        let (repo, tag) = split_reference(reference);
        let options = TagImageOptions { repo: Some(repo.to_string()), tag: Some(tag.to_string()) };
        self.docker
            .tag_image(image, Some(options))
            .await
            .map_err(|error| self.error_or_not_found("tag", format!("image {image}"), error))
    }

    async fn image_remove(&self, reference: &str) -> Result<(), EngineError> {
        let options = RemoveImageOptions { force: false, noprune: false, platforms: None };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.docker.remove_image(reference, Some(options.clone()), None).await
            {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            // "Absent" may be the lookup race: gone only if it stays absent.
            if !is_not_found(&error) || attempt == REMOVE_ATTEMPTS {
                return Err(self.error("remove image", reference, error));
            }
            if self.image_inspect(reference).await?.is_none() {
                return Ok(());
            }
        }
    }

    async fn container_create(&self, spec: &ContainerSpec) -> Result<ContainerInfo, EngineError> {
        let object = spec.name.as_deref().unwrap_or(&spec.image).to_string();
        check_mounts(spec).map_err(|source| EngineError::Api {
            operation: "create container",
            object: object.clone(),
            source: source.into(),
        })?;
        let options = CreateContainerOptions { name: spec.name.clone(), platform: String::new() };
        let response = self
            .docker
            .create_container(Some(options), container_create_body(spec))
            .await
            // A 404 stays an API error: its message says whether the image or
            // the network is missing.
            .map_err(|error| self.error("create container", object, error))?;
        self.container_inspect(&response.id)
            .await?
            .ok_or_else(|| EngineError::NotFound { object: format!("container {}", response.id) })
    }

    async fn container_start(&self, id: &str) -> Result<(), EngineError> {
        self.docker
            .start_container(id, None::<StartContainerOptions>)
            .await
            .map_err(|error| self.error_or_not_found("start", format!("container {id}"), error))
    }

    async fn container_stop(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        let grace_seconds = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        let options = StopContainerOptions {
            signal: None,
            t: Some(i32::try_from(grace_seconds).unwrap_or(i32::MAX)),
        };
        // The engine answers once the container has stopped, up to `grace` later.
        let docker = self.docker.clone().with_timeout(DEFAULT_TIMEOUT + grace);
        docker
            .stop_container(id, Some(options))
            .await
            .map_err(|error| self.error_or_not_found("stop", format!("container {id}"), error))
    }

    async fn container_remove(&self, id: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptions { v: true, force: true, link: false };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.docker.remove_container(id, Some(options.clone())).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            // "Absent" may be the lookup race: gone only if it stays absent.
            if !is_vanished_container(&error) || attempt == REMOVE_ATTEMPTS {
                return Err(self.error("remove container", id, error));
            }
            if self.container_inspect(id).await?.is_none() {
                return Ok(());
            }
        }
    }

    async fn container_inspect(&self, id: &str) -> Result<Option<ContainerInfo>, EngineError> {
        match ask_again(&ABSENCE_RECHECKS, is_vanished_container, || self.inspect_raw(id)).await {
            Ok(response) => Ok(Some(container_info(response))),
            Err(error) if is_vanished_container(&error) => Ok(None),
            Err(error) => Err(self.error("inspect container", id, error)),
        }
    }

    async fn container_list(
        &self,
        labels: &[(String, String)],
    ) -> Result<Vec<ContainerInfo>, EngineError> {
        let label_filters: Vec<String> =
            labels.iter().map(|(key, value)| format!("{key}={value}")).collect();
        let object = format!("with labels {}", label_filters.join(","));
        let mut filters = HashMap::new();
        if !label_filters.is_empty() {
            filters.insert("label".to_string(), label_filters);
        }
        // A container removed while the engine lists can fail the whole
        // listing (Podman): list again, a few times.
        let ids = ask_again(&LISTING_RETRIES, is_vanished_container, || {
            self.list_container_ids(&filters)
        })
        .await
        .map_err(|error| self.error("list containers", object, error))?;
        let mut containers = Vec::new();
        for id in ids {
            // Inspect each, so the answer matches `container_inspect`; one
            // removed in between is skipped.
            let Some(container) = self.container_inspect(&id).await? else { continue };
            // Engines have differed on how several label filters combine:
            // check every label here too.
            if labels.iter().all(|(key, value)| container.labels.get(key) == Some(value)) {
                containers.push(container);
            }
        }
        Ok(containers)
    }

    async fn exec(
        &self,
        id: &str,
        spec: &ExecSpec,
        sink: &mut (dyn OutputSink + Send),
    ) -> Result<ExecResult, EngineError> {
        const OPERATION: &str = "run a command in";
        let object = format!("container {id}");
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            cmd: Some(spec.cmd.clone()),
            env: (!spec.env.is_empty()).then(|| spec.env.clone()),
            user: spec.user.clone(),
            working_dir: spec.working_dir.clone(),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(id, config)
            .await
            .map_err(|error| self.error_or_not_found(OPERATION, object.clone(), error))?;
        let options = StartExecOptions { detach: false, tty: false, output_capacity: None };
        let started = self
            .docker
            .start_exec(&created.id, Some(options))
            .await
            .map_err(|error| self.error_or_not_found(OPERATION, object.clone(), error))?;
        let StartExecResults::Attached { mut output, input } = started else {
            return Err(EngineError::Api {
                operation: OPERATION,
                object,
                source: "the engine did not attach to the command's output".into(),
            });
        };
        // Nothing is sent on stdin: closing it lets commands that read it finish.
        drop(input);
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        while let Some(chunk) = output.next().await {
            let chunk = chunk.map_err(|error| self.error(OPERATION, object.clone(), error))?;
            let (stream, bytes) = match chunk {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    (OutputStream::Stdout, message)
                }
                LogOutput::StdErr { message } => (OutputStream::Stderr, message),
                LogOutput::StdIn { .. } => continue,
            };
            sink.output(stream, &bytes);
            match stream {
                OutputStream::Stdout => stdout.extend_from_slice(&bytes),
                OutputStream::Stderr => stderr.extend_from_slice(&bytes),
            }
        }
        let exit_code = self.exec_exit_code(&created.id, &object).await?;
        Ok(ExecResult { exit_code, stdout, stderr })
    }

    async fn put_file(
        &self,
        id: &str,
        path: &str,
        contents: &[u8],
        mode: u32,
    ) -> Result<(), EngineError> {
        const OPERATION: &str = "write a file into";
        let object = format!("container {id} ({path})");
        let archive = file_archive(path, contents, mode).map_err(|source| EngineError::Api {
            operation: OPERATION,
            object: object.clone(),
            source,
        })?;
        let options = bollard::query_parameters::UploadToContainerOptions {
            path: "/".to_string(),
            ..Default::default()
        };
        self.docker
            .upload_to_container(id, Some(options), bollard::body_full(archive.into()))
            .await
            .map_err(|error| {
                if is_not_found(&error) {
                    EngineError::NotFound { object: format!("container {id}") }
                } else {
                    self.error(OPERATION, object, error)
                }
            })
    }

    async fn commit(
        &self,
        id: &str,
        reference: &str,
        changes: &[String],
    ) -> Result<ImageInfo, EngineError> {
        const OPERATION: &str = "commit container";
        let object = format!("{id} as {reference}");
        check_changes(OPERATION, &object, changes)?;
        let (repo, tag) = split_reference(reference);
        let options = CommitContainerOptions {
            container: Some(id.to_string()),
            repo: Some(repo.to_string()),
            tag: Some(tag.to_string()),
            pause: true,
            ..Default::default()
        };
        let docker = with_changes(&self.docker, changes).with_timeout(IMAGE_WRITE_TIMEOUT);
        // Podman ignores the config body: `changes` carries everything.
        let committed = ask_again(&LAYER_RACE_RETRIES, is_vanished_layer, || {
            docker.commit_container(options.clone(), bollard::models::ContainerConfig::default())
        })
        .await
        .map_err(|error| {
            if is_not_found(&error) {
                EngineError::NotFound { object: format!("container {id}") }
            } else {
                self.error(OPERATION, object, error)
            }
        })?;
        let image_id = committed.id;
        self.image_inspect(&image_id)
            .await?
            .ok_or_else(|| EngineError::NotFound { object: format!("image {image_id}") })
    }

    async fn network_ensure(&self, name: &str) -> Result<(), EngineError> {
        self.network_ensure_labelled(name, &BTreeMap::new()).await
    }

    async fn network_ensure_labelled(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        const OPERATION: &str = "create network";
        match self.docker.inspect_network(name, None::<InspectNetworkOptions>).await {
            Ok(_) => return Ok(()),
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(self.error("inspect network", name, error)),
        }
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".to_string()),
            labels: (!labels.is_empty())
                .then(|| labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => Ok(()),
            // Someone else created it meanwhile.
            Err(BollardError::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(error) => Err(self.error(OPERATION, name, error)),
        }
    }

    async fn network_remove(&self, name: &str) -> Result<(), EngineError> {
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(self.error("remove network", name, error)),
        }
    }
}

impl DockerEngine {
    /// The ids of all containers matching `filters`, by a request of its own
    /// rather than bollard's typed listing: Podman lists a container whose
    /// process has ended but whose cleanup has not run yet with the state
    /// `stopped`, which is no Docker state, and bollard refuses the whole
    /// listing for it. Only the ids are read; the caller inspects each.
    async fn list_container_ids(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<String>, BollardError> {
        let filters = serde_json::to_string(filters)?;
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("all", "true")
            .append_pair("filters", &filters)
            .finish();
        let body = self.api_get(&format!("/containers/json?{query}")).await?;
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&body)?;
        Ok(listed
            .iter()
            .filter_map(|container| container.get("Id")?.as_str().map(str::to_owned))
            .collect())
    }

    /// `GET /containers/{id}/json`, read by hand: Podman answers `stopped`
    /// for a container whose process has ended and whose cleanup has not run
    /// yet, a state the Docker API (and bollard's types, which then refuse
    /// the whole answer) does not have. It is read as `exited`, which it
    /// becomes a moment later: the process is gone and its exit code known.
    async fn inspect_raw(&self, id: &str) -> Result<ContainerInspectResponse, BollardError> {
        let id: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
        read_inspect(&self.api_get(&format!("/containers/{id}/json")).await?)
    }

    /// `GET /v{version}{path}` on a connection of its own, within
    /// [`DEFAULT_TIMEOUT`]: the body of a success, else the engine's refusal.
    async fn api_get(&self, path: &str) -> Result<bytes::Bytes, BollardError> {
        let version = self.docker.client_version();
        let path = format!("/v{}.{}{path}", version.major_version, version.minor_version);
        let (status, _, body) =
            tokio::time::timeout(DEFAULT_TIMEOUT, raw_request(&self.endpoint, &path))
                .await
                .map_err(|_| BollardError::RequestTimeoutError)??;
        if !(200..300).contains(&status) {
            return Err(server_error(status, &body));
        }
        Ok(body)
    }

    /// Streams `tarball` to the engine's import. The outer error is reading
    /// the file; the inner one is the engine's answer, for the caller to
    /// retry or report. Returns the image id if the engine said it.
    async fn import_stream(
        &self,
        tarball: &Path,
        reference: &str,
        changes: &[String],
    ) -> Result<Result<Option<String>, BollardError>, EngineError> {
        let file = fs_err::tokio::File::open(tarball)
            .await
            .map_err(|source| EngineError::Io { path: tarball.display().to_string(), source })?;
        // Streamed: root filesystems are hundreds of megabytes.
        let body = bollard::body_try_stream(ReaderStream::with_capacity(file, 256 * 1024));
        let options = CreateImageOptions {
            from_src: Some("-".to_string()),
            // Podman ignores `tag`: the whole reference goes in `repo`.
            repo: Some(reference.to_string()),
            ..Default::default()
        };
        let docker = with_changes(&self.docker, changes).with_timeout(IMAGE_WRITE_TIMEOUT);
        let mut progress = docker.create_image(Some(options), Some(body), None);
        let mut image_id = None;
        while let Some(item) = progress.next().await {
            let item = match item {
                Ok(item) => item,
                Err(error) => return Ok(Err(error)),
            };
            // Podman reports the id in `id`; Docker only in the final `status`.
            if let Some(id) = item.id.or(item.status).filter(|id| id.starts_with("sha256:")) {
                image_id = Some(id);
            }
        }
        Ok(Ok(image_id))
    }

    /// Reads an exec's exit code, waiting briefly if the engine has not yet
    /// noticed that the command ended.
    async fn exec_exit_code(&self, exec_id: &str, object: &str) -> Result<i64, EngineError> {
        const POLL: Duration = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        loop {
            let inspected =
                self.docker.inspect_exec(exec_id).await.map_err(|error| {
                    self.error("read the exit code of a command in", object, error)
                })?;
            if inspected.running != Some(true)
                && let Some(exit_code) = inspected.exit_code
            {
                return Ok(exit_code);
            }
            if waited >= EXEC_EXIT_CODE_WAIT {
                return Err(EngineError::Api {
                    operation: "read the exit code of a command in",
                    object: object.to_string(),
                    source: "the command's output ended but the engine reports no exit code".into(),
                });
            }
            tokio::time::sleep(POLL).await;
            waited += POLL;
        }
    }
}

/// Returns a handle whose requests carry `changes` as repeated `changes=`
/// query parameters (see the module's design notes).
fn with_changes(docker: &Docker, changes: &[String]) -> Docker {
    if changes.is_empty() {
        return docker.clone();
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    for change in changes {
        query.append_pair("changes", change);
    }
    let extra_query = query.finish();
    docker.clone().with_request_modifier(move |mut request| {
        let separator = if request.uri().query().is_some() { '&' } else { '?' };
        let uri = format!("{}{separator}{extra_query}", request.uri());
        // Form-encoded pairs only hold characters valid in a query, so
        // appending them to a valid URI always gives a valid URI.
        if let Ok(uri) = uri.parse() {
            *request.uri_mut() = uri;
        }
        request
    })
}

/// Calls `call` until it answers anything but an error `again` accepts,
/// pausing before each new call as `pauses` says (so at most
/// `pauses.len() + 1` calls), and returns the last answer.
async fn ask_again<T, F, Fut>(
    pauses: &[Duration],
    again: fn(&BollardError) -> bool,
    mut call: F,
) -> Result<T, BollardError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BollardError>>,
{
    let mut pauses = pauses.iter();
    loop {
        match call().await {
            Err(error) if again(&error) => match pauses.next() {
                Some(pause) => tokio::time::sleep(*pause).await,
                None => return Err(error),
            },
            answer => return answer,
        }
    }
}

/// Whether the engine answered `status_code` with a message holding
/// `phrase` (case-insensitive).
fn answered(error: &BollardError, status_code: u16, phrase: &str) -> bool {
    matches!(
        error,
        BollardError::DockerResponseServerError { status_code: status, message }
            if *status == status_code && message.to_ascii_lowercase().contains(phrase)
    )
}

/// An engine's refusal as bollard reports one: the status and the answer's
/// `message` (or the whole body).
fn server_error(status: u16, body: &[u8]) -> BollardError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|answer| answer.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    BollardError::DockerResponseServerError { status_code: status, message }
}

/// A container inspect answer, with Podman's container states the Docker
/// API does not have read as Docker's: `stopped` (ended, cleanup pending) is
/// `exited`.
fn read_inspect(body: &[u8]) -> Result<ContainerInspectResponse, BollardError> {
    let mut answer: serde_json::Value = serde_json::from_slice(body)?;
    if let Some(status) = answer.pointer_mut("/State/Status")
        && status == "stopped"
    {
        *status = "exited".into();
    }
    Ok(serde_json::from_value(answer)?)
}

/// One GET to the engine at `endpoint` (`unix:///path` or `tcp://host:port`)
/// on a connection of its own: the status, the headers and the whole body.
async fn raw_request(
    endpoint: &str,
    path: &str,
) -> Result<(u16, hyper::HeaderMap, bytes::Bytes), BollardError> {
    let io_error = |err: std::io::Error| BollardError::IOError { err };
    match endpoint.strip_prefix("unix://") {
        Some(socket) => {
            get_on(tokio::net::UnixStream::connect(socket).await.map_err(io_error)?, path).await
        }
        None => {
            let address = endpoint
                .strip_prefix("tcp://")
                .or_else(|| endpoint.strip_prefix("http://"))
                .unwrap_or(endpoint);
            get_on(tokio::net::TcpStream::connect(address).await.map_err(io_error)?, path).await
        }
    }
}

/// An API version as engines write it (`1.41`).
fn parse_api_version(text: &str) -> Option<ClientVersion> {
    let (major, minor) = text.trim().split_once('.')?;
    Some(ClientVersion { major_version: major.parse().ok()?, minor_version: minor.parse().ok()? })
}

/// [`raw_request`] on a connected stream.
async fn get_on<S>(
    stream: S,
    path: &str,
) -> Result<(u16, hyper::HeaderMap, bytes::Bytes), BollardError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt as _;

    let failed = |error: &dyn std::fmt::Display| BollardError::IOError {
        err: std::io::Error::other(format!("engine connection: {error}")),
    };
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|error| failed(&error))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|error| failed(&error))?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(|error| failed(&error))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.map_err(|error| failed(&error))?.to_bytes();
    Ok((status, headers, body))
}

/// Refuses changes the engines would split differently (see the module notes).
fn check_changes(
    operation: &'static str,
    object: &str,
    changes: &[String],
) -> Result<(), EngineError> {
    match changes.iter().find(|change| change.contains('\n')) {
        Some(change) => Err(EngineError::Api {
            operation,
            object: object.to_string(),
            source: format!("change {change:?} contains a newline").into(),
        }),
        None => Ok(()),
    }
}

/// Refuses mounts the `Binds` syntax cannot express (see the module notes).
fn check_mounts(spec: &ContainerSpec) -> Result<(), String> {
    for mount in &spec.mounts {
        let source = mount
            .source
            .to_str()
            .ok_or_else(|| format!("mount source {} is not valid UTF-8", mount.source.display()))?;
        for (what, path) in [("source", source), ("target", mount.target.as_str())] {
            if !path.starts_with('/') {
                return Err(format!("mount {what} {path:?} is not an absolute path"));
            }
            if path.contains([':', ',']) {
                return Err(format!("mount {what} {path:?} contains ':' or ','"));
            }
        }
    }
    Ok(())
}

fn is_not_found(error: &BollardError) -> bool {
    matches!(error, BollardError::DockerResponseServerError { status_code: 404, .. })
}

/// Podman's answer when the stored layer an import or a commit reused was
/// deleted (with another image) before the new image was written:
/// `... creating image "<id>": layer not known`.
fn is_vanished_layer(error: &BollardError) -> bool {
    answered(error, 500, "layer not known")
}

/// An answer that an image is absent: a 404, or Podman's 500 when an image
/// vanished while it inspected this one (`... reading image "<id>": locating
/// image with ID "<id>": image not known`, where the id may be another
/// image's). Either may be the lookup race (see the module notes).
fn is_vanished_image(error: &BollardError) -> bool {
    is_not_found(error) || answered(error, 500, "image not known")
}

/// Podman answers a listing or an inspect that meets a container being
/// removed at that moment with a 500 "no such container" rather than
/// skipping it or a 404: the container is gone, which is no error (once it
/// repeats: see the module notes).
fn is_vanished_container(error: &BollardError) -> bool {
    is_not_found(error) || answered(error, 500, "no such container")
}

/// Whether the error means nothing answered (as opposed to the engine refusing).
fn is_unreachable(error: &BollardError) -> bool {
    match error {
        BollardError::SocketNotFoundError(_) | BollardError::RequestTimeoutError => true,
        BollardError::HyperLegacyError { err } => err.is_connect(),
        BollardError::IOError { err } => matches!(
            err.kind(),
            std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::NotFound
                | std::io::ErrorKind::BrokenPipe
        ),
        _ => false,
    }
}

/// Compares image ids, with or without the `sha256:` prefix.
fn same_image_id(left: &str, right: &str) -> bool {
    left.trim_start_matches("sha256:") == right.trim_start_matches("sha256:")
}

fn image_info(image: ImageInspect) -> ImageInfo {
    let config = image.config.unwrap_or_default();
    ImageInfo {
        id: image.id.unwrap_or_default(),
        digests: image.repo_digests.unwrap_or_default(),
        tags: image.repo_tags.unwrap_or_default(),
        size_bytes: image.size.and_then(|size| u64::try_from(size).ok()).unwrap_or(0),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        cmd: config.cmd,
        entrypoint: config.entrypoint,
        env: config.env.unwrap_or_default(),
    }
}

fn container_create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let mut port_bindings = HashMap::new();
    for binding in &spec.publish {
        let bindings: &mut Option<Vec<bollard::models::PortBinding>> =
            port_bindings.entry(format!("{}/tcp", binding.container_port)).or_default();
        bindings.get_or_insert_with(Vec::new).push(bollard::models::PortBinding {
            host_ip: (!binding.host_ip.is_empty()).then(|| binding.host_ip.clone()),
            host_port: Some(binding.host_port.to_string()),
        });
    }
    let exposed_ports: Vec<String> = port_bindings.keys().cloned().collect();
    let host_config = HostConfig {
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        network_mode: spec.network.clone(),
        init: spec.init.then_some(true),
        nano_cpus: spec.cpus.map(|cpus| (cpus * 1e9).round() as i64),
        memory: spec.memory_bytes.map(|bytes| i64::try_from(bytes).unwrap_or(i64::MAX)),
        binds: (!spec.mounts.is_empty()).then(|| {
            spec.mounts
                .iter()
                .map(|mount| {
                    let mode = if mount.read_only { "ro" } else { "rw" };
                    format!("{}:{}:{mode}", mount.source.display(), mount.target)
                })
                .collect()
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
        entrypoint: spec.entrypoint.clone(),
        env: (!spec.env.is_empty()).then(|| spec.env.clone()),
        labels: (!spec.labels.is_empty())
            .then(|| spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        hostname: spec.hostname.clone(),
        exposed_ports: (!exposed_ports.is_empty()).then_some(exposed_ports),
        host_config: Some(host_config),
        ..Default::default()
    }
}

fn container_info(response: ContainerInspectResponse) -> ContainerInfo {
    let state = response.state.unwrap_or_default();
    let container_state = match state.status {
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
        Some(ContainerStateStatusEnum::REMOVING) => ContainerState::Removing,
        Some(ContainerStateStatusEnum::EXITED) => ContainerState::Exited,
        Some(ContainerStateStatusEnum::DEAD) => ContainerState::Dead,
        Some(ContainerStateStatusEnum::STOPPING) if state.running == Some(true) => {
            ContainerState::Running
        }
        Some(ContainerStateStatusEnum::STOPPING | ContainerStateStatusEnum::EMPTY) | None => {
            ContainerState::Unknown
        }
    };
    let exit_code = match container_state {
        ContainerState::Exited | ContainerState::Dead => state.exit_code,
        _ => None,
    };
    let config = response.config.unwrap_or_default();
    let network_settings = response.network_settings.unwrap_or_default();
    let mut ports = Vec::new();
    let port_map: BTreeMap<_, _> = network_settings.ports.unwrap_or_default().into_iter().collect();
    for (key, bindings) in port_map {
        let Some(container_port) =
            key.strip_suffix("/tcp").and_then(|port| port.parse::<u16>().ok())
        else {
            continue;
        };
        for binding in bindings.into_iter().flatten() {
            let Some(host_port) = binding.host_port.and_then(|port| port.parse::<u16>().ok())
            else {
                continue;
            };
            ports.push(PortBinding {
                container_port,
                host_ip: binding.host_ip.unwrap_or_default(),
                host_port,
            });
        }
    }
    let networks: BTreeMap<_, _> =
        network_settings.networks.unwrap_or_default().into_iter().collect();
    let ip_address = networks
        .into_values()
        .filter_map(|endpoint| endpoint.ip_address)
        .find(|address| !address.is_empty());
    ContainerInfo {
        id: response.id.unwrap_or_default(),
        name: response.name.unwrap_or_default().trim_start_matches('/').to_string(),
        image: config.image.or(response.image).unwrap_or_default(),
        state: container_state,
        exit_code,
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        ports,
        ip_address,
    }
}

/// A tar archive holding one regular file at `path` (relative to `/`), owned
/// by root. Parent directories are deliberately absent (see the module notes).
fn file_archive(
    path: &str,
    contents: &[u8],
    mode: u32,
) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    let relative = path.strip_prefix('/').ok_or("the path is not absolute")?;
    if relative.is_empty() || relative.ends_with('/') {
        return Err("the path names a directory".into());
    }
    if relative.split('/').any(|component| matches!(component, "" | "." | "..")) {
        return Err("the path is not normalized".into());
    }
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(contents.len() as u64);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_data(&mut header, relative, contents)?;
    Ok(builder.into_inner()?)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// An engine's error answer.
    fn answer(status_code: u16, message: &str) -> BollardError {
        BollardError::DockerResponseServerError { status_code, message: message.into() }
    }

    /// Serves HTTP on a unix socket at `path`: each request's head is read,
    /// and `answer` gives the whole response for its target (`/_ping`).
    fn serve_on_socket(path: &Path, answer: impl Fn(&str) -> String + Send + Sync + 'static) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::UnixListener::bind(path).expect("bind the socket");
        let answer = Arc::new(answer);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let answer = Arc::clone(&answer);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => request.extend_from_slice(&buffer[..read]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let target = text.split(' ').nth(1).unwrap_or_default();
                    let _ = stream.write_all(answer(target).as_bytes()).await;
                });
            }
        });
    }

    /// An engine on a unix socket that answers every request with a 500.
    async fn refusing_engine(dir: &Path) -> DockerEngine {
        let path = dir.join("engine.sock");
        serve_on_socket(&path, |_| {
            let body = r#"{"message":"refused"}"#;
            format!(
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        });
        let endpoint = format!("unix://{}", path.display());
        let docker = Docker::connect_with_host(&endpoint).expect("a client for the socket");
        DockerEngine { docker, endpoint }
    }

    /// An engine on a unix socket that answers a ping with `Api-Version:
    /// 1.40` and anything else with a 500; returns the paths asked for.
    async fn pinging_engine(dir: &Path) -> (String, Arc<Mutex<Vec<String>>>) {
        let path = dir.join("engine.sock");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&asked);
        serve_on_socket(&path, move |target| {
            record.lock().unwrap().push(target.to_owned());
            if target == "/_ping" {
                "HTTP/1.1 200 OK\r\nApi-Version: 1.40\r\nContent-Length: 2\r\n\
                 Connection: close\r\n\r\nOK"
                    .to_owned()
            } else {
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
                    .to_owned()
            }
        });
        (format!("unix://{}", path.display()), asked)
    }

    #[tokio::test]
    async fn the_api_version_comes_from_the_ping_not_a_version_request() {
        let dir = tempfile::tempdir().unwrap();
        let (endpoint, asked) = pinging_engine(dir.path()).await;
        let engine = DockerEngine::connect_to(&endpoint).await.expect("connected");
        let version = engine.docker.client_version();
        assert_eq!((version.major_version, version.minor_version), (1, 40));
        assert_eq!(*asked.lock().unwrap(), ["/_ping"], "one ping, no GET /version");
        assert_eq!(
            parse_api_version("1.41").map(|v| (v.major_version, v.minor_version)),
            Some((1, 41))
        );
        assert!(parse_api_version("v1").is_none());
    }

    #[test]
    fn podman_s_stopped_state_reads_as_exited() {
        // What Podman answers between a container's end and its cleanup;
        // bollard's own types refuse the whole answer for `stopped`.
        let body = br#"{"Id":"3f2a","Name":"/build","State":{"Status":"stopped","Running":false,"ExitCode":137},"Config":{"Labels":{"autopatch.role":"build"}}}"#;
        assert!(serde_json::from_slice::<ContainerInspectResponse>(body).is_err());
        let info = container_info(read_inspect(body).expect("read as exited"));
        assert_eq!((info.state, info.exit_code), (ContainerState::Exited, Some(137)));
        assert_eq!(info.labels.get("autopatch.role").map(String::as_str), Some("build"));
        // Docker's states are read as they are.
        let running = br#"{"Id":"3f2a","State":{"Status":"running","Running":true}}"#;
        assert_eq!(container_info(read_inspect(running).unwrap()).state, ContainerState::Running);
    }

    #[tokio::test]
    async fn a_refused_operation_names_its_object_once() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let engine = refusing_engine(dir.path()).await;
        let messages = [
            engine.container_start("3f2a").await,
            engine.container_stop("3f2a", Duration::ZERO).await,
            engine.image_tag("5323", "localhost/web:1").await,
        ]
        .map(|result| result.expect_err("the engine refuses").to_string());
        assert_eq!(
            messages,
            [
                "engine failed to start container 3f2a",
                "engine failed to stop container 3f2a",
                "engine failed to tag image 5323",
            ]
        );
    }

    #[test]
    fn a_container_removed_under_a_listing_counts_as_gone_not_as_an_error() {
        assert!(is_vanished_container(&answer(404, "no such container")));
        assert!(is_vanished_container(&answer(500, "container 3f2a: no such container")));
        assert!(!is_vanished_container(&answer(500, "database is locked")));
        assert!(!is_vanished_container(&answer(409, "no such container")));
    }

    #[test]
    fn an_image_vanishing_under_an_inspect_reads_as_absent_not_as_an_error() {
        assert!(is_vanished_image(&answer(404, "failed to find image a:1: No such image")));
        assert!(is_vanished_image(&answer(
            500,
            "reading image \"5323\": locating image with ID \"5323\": image not known"
        )));
        assert!(!is_vanished_image(&answer(500, "database is locked")));
        assert!(!is_vanished_image(&answer(409, "image not known")));
    }

    #[test]
    fn only_a_vanished_layer_makes_an_import_or_commit_try_again() {
        assert!(is_vanished_layer(&answer(
            500,
            "unable to import tarball: committing the finished image: creating image \"f815\": layer not known"
        )));
        assert!(!is_vanished_layer(&answer(500, "no space left on device")));
        assert!(!is_vanished_layer(&answer(404, "layer not known")));
    }

    #[test]
    fn file_archive_holds_only_the_file() {
        let archive = file_archive("/etc/app/config.yml", b"key: value\n", 0o640)
            .expect("a normal path is archived");
        let mut archive = tar::Archive::new(archive.as_slice());
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .expect("the archive is readable")
            .map(|entry| {
                let entry = entry.expect("the entry is readable");
                let header = entry.header();
                (
                    entry.path().expect("the path is valid").display().to_string(),
                    header.mode().expect("the mode is valid"),
                    header.size().expect("the size is valid"),
                )
            })
            .collect();
        assert_eq!(entries, vec![("etc/app/config.yml".to_string(), 0o640, 11)]);
    }

    #[test]
    fn file_archive_refuses_relative_and_directory_paths() {
        for path in ["etc/x", "/", "/etc/", "/etc/../x", "/etc//x"] {
            assert!(file_archive(path, b"", 0o644).is_err(), "{path} should be refused");
        }
    }

    #[test]
    fn changes_with_newlines_are_refused() {
        let changes = ["CMD [\"a\"]\nLABEL a=b".to_string()];
        let error = check_changes("commit container", "x", &changes).expect_err("refused");
        assert!(matches!(error, EngineError::Api { .. }));
        check_changes("commit container", "x", &["LABEL a=b".to_string()]).expect("accepted");
    }

    #[test]
    fn mounts_the_binds_syntax_cannot_express_are_refused() {
        for (source, target) in [("relative", "/x"), ("/a:b", "/x"), ("/a", "x"), ("/a", "/x,y")] {
            let spec = ContainerSpec {
                mounts: vec![crate::Mount {
                    source: source.into(),
                    target: target.to_string(),
                    read_only: false,
                }],
                ..Default::default()
            };
            assert!(check_mounts(&spec).is_err(), "{source} -> {target} should be refused");
        }
    }

    #[test]
    fn create_body_publishes_ports_and_limits() {
        let spec = ContainerSpec {
            image: "localhost/app:1".to_string(),
            publish: vec![PortBinding {
                container_port: 80,
                host_ip: "127.0.0.1".to_string(),
                host_port: 0,
            }],
            init: true,
            cpus: Some(0.5),
            memory_bytes: Some(256 << 20),
            network: Some("autopatch".to_string()),
            mounts: vec![
                crate::Mount {
                    source: "/srv/instances/i-1".into(),
                    target: "/var/lib/autopatch".to_string(),
                    read_only: false,
                },
                crate::Mount {
                    source: "/srv/shared".into(),
                    target: "/shared".to_string(),
                    read_only: true,
                },
            ],
            ..Default::default()
        };
        check_mounts(&spec).expect("plain absolute paths are accepted");
        let body = container_create_body(&spec);
        assert_eq!(body.exposed_ports, Some(vec!["80/tcp".to_string()]));
        let host_config = body.host_config.expect("host config is set");
        assert_eq!(host_config.init, Some(true));
        assert_eq!(host_config.nano_cpus, Some(500_000_000));
        assert_eq!(host_config.memory, Some(256 << 20));
        assert_eq!(host_config.network_mode.as_deref(), Some("autopatch"));
        assert_eq!(
            host_config.binds,
            Some(vec![
                "/srv/instances/i-1:/var/lib/autopatch:rw".to_string(),
                "/srv/shared:/shared:ro".to_string(),
            ])
        );
        let bindings = host_config.port_bindings.expect("ports are bound");
        assert_eq!(
            bindings.get("80/tcp"),
            Some(&Some(vec![bollard::models::PortBinding {
                host_ip: Some("127.0.0.1".to_string()),
                host_port: Some("0".to_string()),
            }]))
        );
    }
}
