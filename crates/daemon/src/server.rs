//! [`Server`]: the HTTP/1.1 API on a unix socket (and optionally a loopback
//! TCP address), generic over the [`Operations`] it dispatches to.
//!
//! Every request is `POST /<service>/<Operation>` with a JSON body. The
//! server itself answers `autopatch/Ping` and `autopatch/Shutdown`, refuses
//! what is not a request (wrong path or method, a body too large or not
//! JSON, a request from a web page), and hands everything else to
//! [`Operations::call`] in a task of its own, so a client that hangs up
//! never cancels an operation halfway.
//!
//! Design notes:
//! - The socket is bound under a temporary name, made owner-only (0600),
//!   then renamed into place: no other user can ever connect, and an old
//!   socket file left by a killed daemon is replaced atomically. A socket
//!   file that still answers is never replaced.
//! - Browsers send `Origin` with every POST; no legitimate client of this
//!   API does, so a request carrying it is refused. That keeps web pages
//!   from driving the daemon through `--listen`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use autopatch_stacks::api::ApiError;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue, ORIGIN};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::log::{Level, log};
use crate::operations::{Operations, encode};
use crate::protocol::{
    DAEMON_SERVICE, ErrorBody, MAX_REQUEST_BYTES, PingOutput, ShutdownOutput, is_read_only,
    parse_route,
};

/// The longest path a unix socket address holds on Linux (108 bytes with
/// the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Where and as what the server listens.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The unix socket (`<state_dir>/autopatch.sock`).
    pub socket_path: PathBuf,
    /// Also listen on this TCP address; loopback addresses only.
    pub listen: Option<SocketAddr>,
    /// Reported by `Ping`.
    pub state_dir: PathBuf,
    /// Reported by `Ping`.
    pub engine_endpoint: String,
    /// How long requests in flight get to finish once the server stops.
    pub drain_timeout: Duration,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {address}: the API has no authentication, so it listens on loopback addresses only (127.0.0.1, ::1)"
    )]
    NotLoopback { address: SocketAddr },
    #[error(
        "socket path {} is too long ({length} bytes, unix sockets allow {MAX_SOCKET_PATH}); use a shorter --state-dir",
        .path.display()
    )]
    SocketPathTooLong { path: PathBuf, length: usize },
    #[error("{} exists and is not a socket; refusing to replace it", .path.display())]
    NotASocket { path: PathBuf },
    #[error("another process already serves on {}", .path.display())]
    SocketInUse { path: PathBuf },
    #[error("failed to {action} {target}")]
    Io {
        action: &'static str,
        target: String,
        #[source]
        source: std::io::Error,
    },
}

/// Why [`Server::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A client called `autopatch/Shutdown`.
    Requested,
    /// The `stop` future given to [`Server::run`] completed (a signal).
    Stopped,
}

/// The API's sockets, bound but not yet served: connections made now wait
/// in their backlogs until [`Server::run`] accepts them. The daemon binds
/// them before anything slower (the engine, recovery), so an address that
/// is taken fails the start before anything has changed.
pub struct ApiSockets {
    unix: UnixListener,
    socket: SocketFile,
    tcp: Option<TcpListener>,
}

impl std::fmt::Debug for ApiSockets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSockets")
            .field("socket", &self.socket.path)
            .field("tcp", &self.tcp_address())
            .finish_non_exhaustive()
    }
}

impl ApiSockets {
    /// Binds `config`'s socket (replacing a stale one) and its TCP address,
    /// if any; nothing is left bound when either fails.
    ///
    /// The caller must be the state directory's daemon (hold its
    /// [`crate::InstanceLock`]): a socket file that does not answer is taken
    /// to be stale and replaced.
    pub async fn bind(config: &ServerConfig) -> Result<ApiSockets, ServeError> {
        if let Some(address) = config.listen
            && !address.ip().is_loopback()
        {
            return Err(ServeError::NotLoopback { address });
        }
        let (unix, socket) = bind_unix(&config.socket_path)?;
        let tcp = match config.listen {
            Some(address) => Some(TcpListener::bind(address).await.map_err(|source| {
                ServeError::Io { action: "listen on", target: address.to_string(), source }
            })?),
            None => None,
        };
        Ok(ApiSockets { unix, socket, tcp })
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket.path
    }

    /// The TCP address actually bound (port 0 resolved), if any.
    pub fn tcp_address(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|tcp| tcp.local_addr().ok())
    }
}

/// A bound, not yet serving, API server.
pub struct Server<O: Operations> {
    sockets: ApiSockets,
    shared: Arc<Shared<O>>,
    drain_timeout: Duration,
}

impl<O: Operations> std::fmt::Debug for Server<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("socket", &self.sockets.socket.path)
            .field("tcp", &self.sockets.tcp_address())
            .finish_non_exhaustive()
    }
}

struct Shared<O> {
    operations: Arc<O>,
    ping: PingOutput,
    shutdown: Notify,
}

impl<O: Operations> Server<O> {
    /// Binds the socket (replacing a stale one) and the TCP address, if any
    /// ([`ApiSockets::bind`]), to serve `operations` on.
    pub async fn bind(config: ServerConfig, operations: Arc<O>) -> Result<Server<O>, ServeError> {
        let sockets = ApiSockets::bind(&config).await?;
        Server::on(sockets, config, operations)
    }

    /// Serves `operations` on sockets bound earlier from `config`
    /// ([`ApiSockets::bind`]); `Ping` reports `config`'s state directory and
    /// engine endpoint and the sockets' addresses.
    pub fn on(
        sockets: ApiSockets,
        config: ServerConfig,
        operations: Arc<O>,
    ) -> Result<Server<O>, ServeError> {
        let listen = match &sockets.tcp {
            Some(tcp) => Some(
                tcp.local_addr()
                    .map_err(|source| ServeError::Io {
                        action: "read the address of",
                        target: "the TCP listener".into(),
                        source,
                    })?
                    .to_string(),
            ),
            None => None,
        };
        let ping = PingOutput {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            state_dir: config.state_dir.display().to_string(),
            socket: sockets.socket.path.display().to_string(),
            listen,
            engine_endpoint: config.engine_endpoint,
            problems: Vec::new(),
            listener_ports: None,
        };
        Ok(Server {
            sockets,
            shared: Arc::new(Shared { operations, ping, shutdown: Notify::new() }),
            drain_timeout: config.drain_timeout,
        })
    }

    pub fn socket_path(&self) -> &Path {
        self.sockets.socket_path()
    }

    /// The TCP address actually bound (port 0 resolved), if any.
    pub fn tcp_address(&self) -> Option<SocketAddr> {
        self.sockets.tcp_address()
    }

    /// Serves until `stop` completes or a client calls `autopatch/Shutdown`;
    /// then stops accepting, removes the socket file, lets requests in
    /// flight finish (up to the drain timeout) and returns.
    pub async fn run(self, stop: impl Future<Output = ()>) -> StopReason {
        let Server { sockets: ApiSockets { unix, socket, tcp }, shared, drain_timeout } = self;
        let (stopping, stopping_receiver) = watch::channel(false);
        let mut connections = JoinSet::new();
        let mut stop = std::pin::pin!(stop);
        let reason = loop {
            tokio::select! {
                // A stop comes before new connections: a daemon told to stop
                // while it was starting (SIGTERM during recovery) stops
                // without serving the requests waiting in its backlog.
                biased;
                () = &mut stop => break StopReason::Stopped,
                () = shared.shutdown.notified() => break StopReason::Requested,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = unix.accept() => match accepted {
                    Ok((stream, _)) => {
                        serve_connection(&mut connections, stream, &shared, &stopping_receiver)
                    }
                    Err(error) => accept_failed(&socket.path.display().to_string(), &error).await,
                },
                accepted = accept_tcp(tcp.as_ref()) => match accepted {
                    Ok((stream, _)) => {
                        serve_connection(&mut connections, stream, &shared, &stopping_receiver)
                    }
                    Err(error) => accept_failed("the TCP listener", &error).await,
                },
            }
        };
        drop(unix);
        drop(tcp);
        drop(socket);
        let _ = stopping.send(true);
        let drained = tokio::time::timeout(drain_timeout, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            log(
                Level::Warn,
                "requests still in flight after the drain timeout; closing their connections",
                &[("connections", &connections.len())],
            );
        }
        reason
    }
}

/// The socket file this server bound, removed when the server stops if it
/// is still the same file.
struct SocketFile {
    path: PathBuf,
    device: u64,
    inode: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(metadata) = std::fs::symlink_metadata(&self.path)
            && metadata.dev() == self.device
            && metadata.ino() == self.inode
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn bind_unix(path: &Path) -> Result<(UnixListener, SocketFile), ServeError> {
    let length = path.as_os_str().len();
    if length > MAX_SOCKET_PATH {
        return Err(ServeError::SocketPathTooLong { path: path.to_path_buf(), length });
    }
    let io = |action, target: &Path| {
        let target = target.display().to_string();
        move |source| ServeError::Io { action, target, source }
    };
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if !metadata.file_type().is_socket() => {
            return Err(ServeError::NotASocket { path: path.to_path_buf() });
        }
        Ok(_) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServeError::SocketInUse { path: path.to_path_buf() });
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io("inspect", path)(error)),
    }
    // Never longer than `autopatch.sock` in the same folder, so it fits too.
    let temporary = path.with_file_name(format!(".{}.sock", std::process::id()));
    match std::fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io("remove", &temporary)(error)),
    }
    let listener = UnixListener::bind(&temporary).map_err(io("listen on", &temporary))?;
    let placed = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
        .map_err(io("restrict the permissions of", &temporary))
        .and_then(|()| std::fs::rename(&temporary, path).map_err(io("move the socket to", path)))
        .and_then(|()| std::fs::symlink_metadata(path).map_err(io("inspect", path)));
    match placed {
        Ok(metadata) => Ok((
            listener,
            SocketFile { path: path.to_path_buf(), device: metadata.dev(), inode: metadata.ino() },
        )),
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            Err(error)
        }
    }
}

async fn accept_tcp(
    tcp: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match tcp {
        Some(tcp) => tcp.accept().await,
        None => std::future::pending().await,
    }
}

async fn accept_failed(listener: &str, error: &std::io::Error) {
    log(
        Level::Error,
        "failed to accept a connection",
        &[("listener", &listener), ("error", error)],
    );
    // Out of file descriptors, most likely: give connections in flight a
    // moment to end instead of spinning.
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn serve_connection<S, O>(
    connections: &mut JoinSet<()>,
    stream: S,
    shared: &Arc<Shared<O>>,
    stopping: &watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    O: Operations,
{
    let shared = Arc::clone(shared);
    let mut stopping = stopping.clone();
    connections.spawn(async move {
        let service = service_fn(move |request| {
            let shared = Arc::clone(&shared);
            async move { Ok::<_, Infallible>(handle(shared, request).await) }
        });
        let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            _ = connection.as_mut() => {}
            () = async { drop(stopping.wait_for(|stopping| *stopping).await) } => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    });
}

async fn handle<O: Operations>(
    shared: Arc<Shared<O>>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let started = tokio::time::Instant::now();
    let path = request.uri().path().to_owned();
    let result = answer(&shared, request).await;
    let (service, operation) = parse_route(&path).unwrap_or(("-", "-"));
    let milliseconds = started.elapsed().as_millis();
    match &result {
        Ok(_) if is_read_only(operation) => {}
        Ok(_) => log(
            Level::Info,
            "request",
            &[("service", &service), ("operation", &operation), ("ms", &milliseconds)],
        ),
        Err(error) => log(
            if error.status >= 500 { Level::Error } else { Level::Warn },
            "request refused",
            &[
                ("path", &path),
                ("status", &error.status),
                ("code", &error.code),
                ("message", &error.message),
                ("ms", &milliseconds),
            ],
        ),
    }
    match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(error) => error_response(error),
    }
}

/// The request's answer: a response body, or why it was refused.
async fn answer<O: Operations>(
    shared: &Arc<Shared<O>>,
    request: Request<Incoming>,
) -> Result<Value, ApiError> {
    let path = request.uri().path().to_owned();
    let Some((service, operation)) = parse_route(&path) else {
        return Err(ApiError::new(
            404,
            "NotFound",
            format!("no operation at {path}: requests are POST /<service>/<Operation>"),
        ));
    };
    if request.method() != Method::POST {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{} {path}: operations are called with POST", request.method()),
        ));
    }
    if request.headers().contains_key(ORIGIN) {
        return Err(ApiError::new(
            403,
            "AccessDenied",
            "requests from web pages (with an Origin header) are refused",
        ));
    }
    let input = read_body(request.into_body()).await?;
    if service == DAEMON_SERVICE {
        return match operation {
            "Ping" => {
                let mut ping = shared.ping.clone();
                ping.problems = shared.operations.problems();
                ping.listener_ports = shared.operations.listener_ports().map(str::to_owned);
                encode(&ping)
            }
            "Shutdown" => {
                shared.shutdown.notify_one();
                encode(&ShutdownOutput { pid: shared.ping.pid })
            }
            _ => Err(ApiError::not_implemented(service, operation)),
        };
    }
    let (service, operation) = (service.to_owned(), operation.to_owned());
    let task = {
        let shared = Arc::clone(shared);
        let (service, operation) = (service.clone(), operation.clone());
        tokio::spawn(async move { shared.operations.call(&service, &operation, input).await })
    };
    task.await.unwrap_or_else(|error| {
        Err(ApiError::internal(format!(
            "operation {operation} of service {service} failed: {error}"
        )))
    })
}

/// The body as JSON; an empty body is `{}`.
async fn read_body(body: Incoming) -> Result<Value, ApiError> {
    let bytes = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("the request body is larger than {MAX_REQUEST_BYTES} bytes"),
            ));
        }
        Err(error) => {
            return Err(ApiError::validation(format!("failed to read the request body: {error}")));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::validation(format!("the request body is not valid JSON: {error}"))
    })
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut text = serde_json::to_vec(body).unwrap_or_default();
    text.push(b'\n');
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error_response(error: ApiError) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(error.status)
        .ok()
        .filter(|status| status.is_client_error() || status.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_value(ErrorBody { error }).unwrap_or_default();
    let mut response = json_response(status, &body);
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
    }
    response
}
