//! [`serve`]: the control plane's whole life. Take the state directory's
//! lock, bind the API's socket and `--listen` address, open the store, bind
//! the load balancer ports its stacks serve on, connect the engine, open the
//! stack service (which recovers: re-adopts running instances, reopens
//! listeners on the ports bound earlier, removes orphans, resumes
//! operations), serve the API until a signal or `autopatch/Shutdown`, then
//! stop the service and let go of everything.
//!
//! Design note: whatever can refuse the start without waiting for anyone
//! (the configuration, the lock, the API's addresses) is done before the
//! engine and recovery, so a daemon that cannot serve exits having changed
//! nothing. A client that connects while the daemon recovers waits in the
//! socket's backlog and is answered once recovery is done. So does a client
//! of a load balancer: its port is bound before the engine is connected
//! ([`autopatch_stacks::reserve_listeners`]), and its listener starts
//! accepting on that socket once recovery has put the adopted targets in.
//!
//! Stopping the daemon stops the control plane only: listeners close and
//! fleet controllers stop, but instances keep running, to be re-adopted by
//! the next daemon.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autopatch_engine::{DockerEngine, Engine, EngineError};
use autopatch_stacks::api::ApiError;
use autopatch_stacks::{
    ListenerPorts, ReservedListeners, ServiceConfig, StackService, reserve_listeners,
};
use autopatch_store::{Store, StoreError};

use crate::instance::{InstanceError, InstanceLock};
use crate::log::{Level, install, log};
use crate::protocol::socket_path;
use crate::server::{ApiSockets, ServeError, Server, ServerConfig, StopReason};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub state_dir: PathBuf,
    /// Which local port each load balancer listener gets.
    pub listener_ports: ListenerPorts,
    /// Also serve the API on this loopback TCP address.
    pub listen: Option<SocketAddr>,
}

/// Why the daemon could not start (or stop cleanly).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("failed to create the state directory {}", .path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Instance(InstanceError),
    #[error("failed to open the store {}", .path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("failed to read the load balancers whose ports to reserve from the store {}", .path.display())]
    Reserve {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Engine(EngineError),
    #[error("failed to open the stack service")]
    Service(#[source] ApiError),
    #[error(transparent)]
    Serve(ServeError),
    #[error("failed to listen for signals")]
    Signals(#[source] std::io::Error),
}

impl DaemonError {
    /// What to do about it, when there is something to say.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            DaemonError::Instance(InstanceError::AlreadyRunning { .. }) => {
                Some("stop it with `autopatch down`, or use another --state-dir")
            }
            _ => None,
        }
    }
}

/// Runs the daemon on the real engine ([`DockerEngine::connect`]) until
/// SIGTERM, SIGINT or `autopatch/Shutdown`.
pub async fn serve(config: DaemonConfig) -> Result<StopReason, DaemonError> {
    starting(&config);
    let lock = prepare(&config)?;
    let stop = signals()?;
    let early = before_engine(&config).await?;
    let engine = DockerEngine::connect().await.map_err(DaemonError::Engine)?;
    let endpoint = engine.endpoint().to_owned();
    run(config, lock, early, Arc::new(engine), endpoint, stop).await
}

/// Runs the daemon on `engine` until `stop` completes or a client calls
/// `autopatch/Shutdown`.
pub async fn serve_with_engine<E: Engine + 'static>(
    config: DaemonConfig,
    engine: Arc<E>,
    engine_endpoint: String,
    stop: impl Future<Output = ()>,
) -> Result<StopReason, DaemonError> {
    serve_connecting(config, std::future::ready(Ok((engine, engine_endpoint))), stop).await
}

/// Runs the daemon on the engine `connect` gives (and its endpoint, for
/// `Ping`), awaited where [`serve`] connects to the engine: after the lock,
/// the API's sockets, the store and the load balancers' ports, before
/// recovery. Runs until `stop` completes or a client calls
/// `autopatch/Shutdown`.
pub async fn serve_connecting<E: Engine + 'static>(
    config: DaemonConfig,
    connect: impl Future<Output = Result<(Arc<E>, String), EngineError>>,
    stop: impl Future<Output = ()>,
) -> Result<StopReason, DaemonError> {
    starting(&config);
    let lock = prepare(&config)?;
    let early = before_engine(&config).await?;
    let (engine, endpoint) = connect.await.map_err(DaemonError::Engine)?;
    run(config, lock, early, engine, endpoint, stop).await
}

/// What the daemon holds before it connects to the engine.
struct Early {
    sockets: ApiSockets,
    store: Arc<Store>,
    listeners: ReservedListeners,
}

/// Everything that needs no engine: the API's sockets (a taken address
/// fails the start before the store is even opened), the store, and the
/// ports of the load balancers its stacks serve on, so their clients wait
/// in the backlog while the engine is connected and recovery runs.
async fn before_engine(config: &DaemonConfig) -> Result<Early, DaemonError> {
    let sockets = bind(config).await?;
    let path = config.state_dir.join("autopatch.db");
    let store =
        Store::open(&path).map_err(|source| DaemonError::Store { path: path.clone(), source })?;
    let listeners =
        reserve_listeners(&store).map_err(|source| DaemonError::Reserve { path, source })?;
    if !listeners.is_empty() {
        let addresses = listeners.addresses();
        let ports: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        log(
            Level::Info,
            "load balancer ports reserved",
            &[("count", &addresses.len()), ("addresses", &ports.join(","))],
        );
    }
    Ok(Early { sockets, store: Arc::new(store), listeners })
}

/// The daemon's first log line, before anything can fail (so the log of a
/// daemon that could not start says it tried), with the `log` facade's
/// records of the stack service and the fleet going to the same log.
fn starting(config: &DaemonConfig) {
    install();
    log(
        Level::Info,
        "starting",
        &[("pid", &std::process::id()), ("state_dir", &config.state_dir.display())],
    );
}

/// Checks the configuration and takes the state directory's lock, before
/// anything slower.
fn prepare(config: &DaemonConfig) -> Result<InstanceLock, DaemonError> {
    if let Some(address) = config.listen
        && !address.ip().is_loopback()
    {
        return Err(DaemonError::Serve(ServeError::NotLoopback { address }));
    }
    std::fs::create_dir_all(&config.state_dir)
        .map_err(|source| DaemonError::StateDir { path: config.state_dir.clone(), source })?;
    InstanceLock::acquire(&config.state_dir).map_err(DaemonError::Instance)
}

/// The API's configuration: the state directory's socket, `--listen`, and
/// the engine `Ping` reports.
fn server_config(config: &DaemonConfig, engine_endpoint: String) -> ServerConfig {
    ServerConfig {
        socket_path: socket_path(&config.state_dir),
        listen: config.listen,
        state_dir: config.state_dir.clone(),
        engine_endpoint,
        drain_timeout: Duration::from_secs(10),
    }
}

/// Binds the API's socket and `--listen` address before anything that
/// changes state (recovery), so a taken address changes nothing.
async fn bind(config: &DaemonConfig) -> Result<ApiSockets, DaemonError> {
    // The engine is not known yet; binding does not need it.
    ApiSockets::bind(&server_config(config, String::new())).await.map_err(DaemonError::Serve)
}

/// Completes on SIGTERM or SIGINT.
fn signals() -> Result<impl Future<Output = ()>, DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        log(Level::Info, "signal received", &[("signal", &name)]);
    })
}

async fn run<E: Engine + 'static>(
    config: DaemonConfig,
    lock: InstanceLock,
    early: Early,
    engine: Arc<E>,
    engine_endpoint: String,
    stop: impl Future<Output = ()>,
) -> Result<StopReason, DaemonError> {
    let Early { sockets, store, listeners } = early;
    let state_dir = config.state_dir.clone();
    log(Level::Info, "engine connected", &[("engine", &engine_endpoint)]);
    let service_config = ServiceConfig {
        state_dir: state_dir.clone(),
        region: "local".into(),
        account_id: "000000000000".into(),
        listener_ports: config.listener_ports,
        load_balancer_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        fleet_interval: Duration::from_secs(1),
    };
    let service = StackService::open_with_listeners(service_config, engine, store, listeners)
        .await
        .map_err(DaemonError::Service)?;
    // (A stack whose template cannot be loaded is logged by the service.)
    for note in &service.pending_readoptions() {
        log(Level::Warn, "not recovered yet; trying again until it works", &[("what", note)]);
    }
    let server_config = server_config(&config, engine_endpoint);
    let server = match Server::on(sockets, server_config, Arc::clone(&service)) {
        Ok(server) => server,
        Err(error) => {
            service.shutdown().await;
            return Err(DaemonError::Serve(error));
        }
    };
    let listen = server.tcp_address().map(|address| address.to_string());
    log(
        Level::Info,
        "listening",
        &[
            ("socket", &server.socket_path().display()),
            ("listen", &listen.as_deref().unwrap_or("-")),
            ("pid", &std::process::id()),
        ],
    );
    let reason = server.run(stop).await;
    log(
        Level::Info,
        "stopping: the API is closed; stopping listeners and fleet controllers (instances keep running)",
        &[(
            "reason",
            &match reason {
                StopReason::Requested => "shutdown requested",
                StopReason::Stopped => "signal",
            },
        )],
    );
    service.shutdown().await;
    drop(lock);
    log(Level::Info, "stopped", &[("pid", &std::process::id())]);
    Ok(reason)
}
