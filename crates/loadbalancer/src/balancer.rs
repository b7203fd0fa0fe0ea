//! [`LoadBalancer`]: one listener and one target group, with the API the
//! daemon uses (register, deregister, describe target health, history).
//!
//! Invariant 7: the listener and every target are on loopback addresses;
//! anything else is refused.
//!
//! Design note: the data plane runs either on the caller's tokio runtime
//! (`worker_threads: 0`, what tests under virtual time use) or on its own
//! worker threads, each with a single-threaded runtime, its own
//! `SO_REUSEPORT` listener on the same address and its own upstream pools,
//! as nginx runs worker processes. Workers never wake each other; the kernel
//! spreads client connections across them. Measured on the 2-core benchmark
//! machine, this served about 40% more requests per second than one
//! multi-threaded runtime (docs/benchmarks.md). Health checks, draining and
//! the API stay on the caller's runtime.
//!
//! Design note on handing a listener over: a daemon that must tell a load
//! balancer's address (its `DNSName`) before the load balancer runs reserves
//! the port with [`LoadBalancer::reserve_listener`] and later passes the
//! socket to [`LoadBalancer::start_on`], so no other process can take the
//! port in between. With worker threads, the handed-over socket serves the
//! first worker and the others bind `SO_REUSEPORT` sockets on its address,
//! which needs `SO_REUSEPORT` on the handed-over socket too
//! (`reserve_listener` sets it). A listener without it, such as one from
//! `std::net::TcpListener::bind`, still works: every worker then accepts from
//! the same socket (as nginx workers do without `reuseport`), and the
//! workers compete for connections instead of the kernel spreading them.
//!
//! Design note on claiming a port: a socket with `SO_REUSEPORT` joins any
//! listening `SO_REUSEPORT` socket of the same user on its address, so two
//! load balancers (two stacks, or two daemons of different state
//! directories) would silently share a port and the kernel would split
//! their clients between unrelated fleets. So the first socket of a load
//! balancer (or a reserved one) is bound only after a plain bind, without
//! `SO_REUSEPORT`, has shown the port free: it fails while any socket
//! listens there ([`LoadBalancerError::PortTaken`]). The probe and the
//! bind run under a host-wide file lock, so two autopatch processes cannot
//! both pass the probe before either binds. Only the other sockets of the
//! same load balancer join the first one; the data plane is unchanged (one
//! `SO_REUSEPORT` listener per worker).

use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::checker::{self, HttpProber, Prober};
use crate::health::{
    History, Target, TargetGroupHealth, TargetHealthDescription, TargetId, TargetState,
};
use crate::proxy;
use crate::registry::Registry;
use crate::settings::{HealthCheckSettings, SettingsError};

/// How long [`LoadBalancer::shutdown`] lets open client connections finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A target group's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerConfig {
    /// The health checks.
    pub health_check: HealthCheckSettings,
    /// `deregistration_delay.timeout_seconds` (AWS's default is 300 s).
    pub deregistration_delay: Duration,
    /// Data-plane threads: 0 serves on the caller's runtime; n starts n
    /// worker threads (one per core is what a daemon wants).
    pub worker_threads: usize,
    /// `idle_timeout.timeout_seconds` (AWS's default is 60 s): a target that
    /// has not started its response by then gets the client a 504.
    pub idle_timeout: Duration,
}

impl Default for LoadBalancerConfig {
    fn default() -> Self {
        Self {
            health_check: HealthCheckSettings::default(),
            deregistration_delay: Duration::from_secs(300),
            worker_threads: 0,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// What the load balancer refuses.
#[derive(Debug, thiserror::Error)]
pub enum LoadBalancerError {
    /// Only loopback addresses are allowed (invariant 7).
    #[error("use {addr}: only loopback addresses are allowed")]
    NotLoopback { addr: SocketAddr },
    /// The listener could not be bound.
    #[error("bind listener on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Another socket listens on the port: another load balancer (of this
    /// process or another), or any other program. Load balancers never
    /// share a port.
    #[error(
        "bind listener on {addr}: port {} is taken by another socket (another load balancer here, or another process)",
        .addr.port()
    )]
    PortTaken {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A data-plane worker thread could not be started.
    #[error("start load balancer worker thread")]
    Worker {
        #[source]
        source: std::io::Error,
    },
    /// A handed-over listener could not be taken over.
    #[error("take over listener on {addr}")]
    TakeOver {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The health-check settings are invalid.
    #[error("apply health check settings")]
    Settings {
        #[source]
        source: SettingsError,
    },
}

/// Targets a load balancer starts with: in its target group before its
/// listener accepts the first connection, so a load balancer started with
/// healthy targets never answers 503 for want of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitialTargets {
    /// Registered as [`LoadBalancer::register_targets`] does: `initial`,
    /// in service once their health checks pass.
    pub registered: Vec<Target>,
    /// Adopted as [`LoadBalancer::adopt_targets`] does: `healthy` and in
    /// service at once (a target also in `registered` is adopted).
    pub adopted: Vec<Target>,
}

impl InitialTargets {
    fn ensure_loopback(&self) -> Result<(), LoadBalancerError> {
        for target in self.registered.iter().chain(&self.adopted) {
            ensure_loopback(target.addr)?;
        }
        Ok(())
    }
}

/// A running load balancer: a listener forwarding to one target group.
/// Dropping it stops it; [`LoadBalancer::shutdown`] also waits for the tasks.
pub struct LoadBalancer {
    local_addr: SocketAddr,
    registry: Arc<Registry>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    workers: Vec<oneshot::Receiver<()>>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for LoadBalancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadBalancer").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl LoadBalancer {
    /// Starts a load balancer on `listen` (port 0 picks a free port) with
    /// AWS's default target group settings and real HTTP health checks.
    /// Must be called inside a tokio runtime.
    pub async fn start(listen: SocketAddr) -> Result<Self, LoadBalancerError> {
        Self::start_with(listen, LoadBalancerConfig::default(), Arc::new(HttpProber)).await
    }

    /// Starts a load balancer with the given settings and prober.
    pub async fn start_with(
        listen: SocketAddr,
        config: LoadBalancerConfig,
        prober: Arc<dyn Prober>,
    ) -> Result<Self, LoadBalancerError> {
        Self::start_with_targets(listen, config, prober, InitialTargets::default()).await
    }

    /// [`LoadBalancer::start_with`], with `initial` targets in the target
    /// group before the listener accepts a connection. Nothing starts if any
    /// target's address is not loopback.
    pub async fn start_with_targets(
        listen: SocketAddr,
        config: LoadBalancerConfig,
        prober: Arc<dyn Prober>,
        initial: InitialTargets,
    ) -> Result<Self, LoadBalancerError> {
        ensure_loopback(listen)?;
        initial.ensure_loopback()?;
        config.health_check.validate().map_err(|source| LoadBalancerError::Settings { source })?;
        let bind_error = |source| LoadBalancerError::Bind { addr: listen, source };
        let (local_addr, listeners) = if config.worker_threads == 0 {
            // No SO_REUSEPORT: a taken port fails the bind, and no other
            // socket can join this one.
            let listener =
                TcpListener::bind(listen).await.map_err(|source| bind_failed(listen, source))?;
            (listener.local_addr().map_err(bind_error)?, Listeners::Caller(listener))
        } else {
            // The first socket claims the port (any free one when `listen`
            // asks for any port); the others join it with SO_REUSEPORT.
            let first = claim_port(listen)?;
            let local_addr = first.local_addr().map_err(bind_error)?;
            let mut sockets = vec![WorkerListener::Listening(first)];
            for _ in 1..config.worker_threads {
                sockets.push(WorkerListener::Bound(
                    reuse_port_socket(local_addr).map_err(bind_error)?,
                ));
            }
            (local_addr, Listeners::Workers(sockets))
        };
        Self::launch(local_addr, listeners, config, prober, initial)
    }

    /// Reserves a loopback address for a load balancer started later with
    /// [`LoadBalancer::start_on`]: a listening socket with `SO_REUSEADDR` and
    /// `SO_REUSEPORT`, so that worker threads can join it (port 0 picks a
    /// free port; `local_addr` tells which). A port another socket listens
    /// on is refused ([`LoadBalancerError::PortTaken`]), whether or not that
    /// socket has `SO_REUSEPORT`: see the module's design note on claiming a
    /// port. Connections made before the load balancer starts wait in the
    /// socket's backlog. Must be called inside a tokio runtime.
    pub fn reserve_listener(
        listen: SocketAddr,
    ) -> Result<std::net::TcpListener, LoadBalancerError> {
        ensure_loopback(listen)?;
        claim_port(listen)
    }

    /// Starts a load balancer on a listener the caller bound earlier, such as
    /// one from [`LoadBalancer::reserve_listener`]; it must be listening on a
    /// loopback address. With worker threads, see the module's design note
    /// on `SO_REUSEPORT`. Must be called inside a tokio runtime.
    pub async fn start_on(
        listener: std::net::TcpListener,
        config: LoadBalancerConfig,
        prober: Arc<dyn Prober>,
    ) -> Result<Self, LoadBalancerError> {
        Self::start_on_with_targets(listener, config, prober, InitialTargets::default()).await
    }

    /// [`LoadBalancer::start_on`], with `initial` targets in the target
    /// group before the listener accepts a connection (connections waiting
    /// in a reserved listener's backlog included). Nothing starts if any
    /// target's address is not loopback.
    pub async fn start_on_with_targets(
        listener: std::net::TcpListener,
        config: LoadBalancerConfig,
        prober: Arc<dyn Prober>,
        initial: InitialTargets,
    ) -> Result<Self, LoadBalancerError> {
        initial.ensure_loopback()?;
        // The address is unknown when it cannot be read; any address stands in.
        let local_addr = listener.local_addr().map_err(|source| LoadBalancerError::TakeOver {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        ensure_loopback(local_addr)?;
        config.health_check.validate().map_err(|source| LoadBalancerError::Settings { source })?;
        let take_over_error = |source| LoadBalancerError::TakeOver { addr: local_addr, source };
        listener.set_nonblocking(true).map_err(take_over_error)?;
        let listeners = if config.worker_threads == 0 {
            Listeners::Caller(TcpListener::from_std(listener).map_err(take_over_error)?)
        } else {
            let mut others = Vec::new();
            for _ in 1..config.worker_threads {
                match reuse_port_socket(local_addr) {
                    Ok(socket) => others.push(WorkerListener::Bound(socket)),
                    // The handed-over socket has no SO_REUSEPORT: share it.
                    Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
                        others.clear();
                        break;
                    }
                    Err(source) => {
                        return Err(LoadBalancerError::Bind { addr: local_addr, source });
                    }
                }
            }
            let mut sockets = Vec::with_capacity(config.worker_threads);
            if others.is_empty() {
                for _ in 1..config.worker_threads {
                    sockets.push(WorkerListener::Listening(
                        listener.try_clone().map_err(take_over_error)?,
                    ));
                }
            }
            sockets.insert(0, WorkerListener::Listening(listener));
            sockets.extend(others);
            Listeners::Workers(sockets)
        };
        Self::launch(local_addr, listeners, config, prober, initial)
    }

    /// Puts the `initial` targets in the target group, then serves on
    /// `listeners`, bound to `local_addr`, and starts the health checks; the
    /// settings are already validated and the addresses checked.
    fn launch(
        local_addr: SocketAddr,
        listeners: Listeners,
        config: LoadBalancerConfig,
        prober: Arc<dyn Prober>,
        initial: InitialTargets,
    ) -> Result<Self, LoadBalancerError> {
        let registry = Arc::new(Registry::new(
            TargetGroupHealth::new(config.health_check, config.deregistration_delay),
            config.worker_threads,
            config.idle_timeout,
        ));
        registry.update(|health, now| {
            for target in initial.adopted {
                health.adopt(target, now);
            }
            for target in initial.registered {
                health.register(target, now);
            }
        });
        let (shutdown, shutdown_receiver) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut workers = Vec::new();
        match listeners {
            Listeners::Caller(listener) => {
                let serve = proxy::serve(
                    listener,
                    registry.clone(),
                    0,
                    shutdown_receiver.clone(),
                    SHUTDOWN_GRACE,
                );
                tasks.push(tokio::spawn(serve));
            }
            Listeners::Workers(sockets) => {
                for (worker, socket) in sockets.into_iter().enumerate() {
                    let registry = registry.clone();
                    let shutdown = shutdown_receiver.clone();
                    let (done, done_receiver) = oneshot::channel();
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|source| LoadBalancerError::Worker { source })?;
                    std::thread::Builder::new()
                        .name(format!("autopatch-lb-{worker}"))
                        .spawn(move || {
                            runtime.block_on(async move {
                                // Registers the socket with this thread's runtime.
                                if let Ok(listener) = socket.into_listener() {
                                    proxy::serve(
                                        listener,
                                        registry,
                                        worker,
                                        shutdown,
                                        SHUTDOWN_GRACE,
                                    )
                                    .await;
                                }
                            });
                            let _ = done.send(());
                        })
                        .map_err(|source| LoadBalancerError::Worker { source })?;
                    workers.push(done_receiver);
                }
            }
        }
        tasks.push(tokio::spawn(checker::run(registry.clone(), prober, shutdown_receiver)));
        Ok(Self {
            local_addr,
            registry,
            shutdown,
            tasks,
            workers,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `RegisterTargets`: each target starts `initial` and gets traffic only
    /// once healthy. Nothing is registered if any address is not loopback.
    pub fn register_targets(&self, targets: &[Target]) -> Result<(), LoadBalancerError> {
        for target in targets {
            ensure_loopback(target.addr)?;
        }
        self.registry.update(|health, now| {
            for target in targets {
                health.register(target.clone(), now);
            }
        });
        Ok(())
    }

    /// Re-adoption after a daemon restart: each target, which the previous
    /// daemon process had seen pass its health checks, is registered as
    /// `healthy` at once and gets traffic; the history records the adoption
    /// (reason [`crate::Reason::Adopted`]). Adopted targets are checked as
    /// usual from then on. Targets already registered are left as they are.
    /// Nothing is adopted if any address is not loopback.
    pub fn adopt_targets(&self, targets: &[Target]) -> Result<(), LoadBalancerError> {
        for target in targets {
            ensure_loopback(target.addr)?;
        }
        self.registry.update(|health, now| {
            for target in targets {
                health.adopt(target.clone(), now);
            }
        });
        Ok(())
    }

    /// `DeregisterTargets`: each target stops getting new requests and is
    /// removed once its in-flight requests finish or the deregistration delay
    /// ends. Unknown ids are ignored.
    pub fn deregister_targets(&self, ids: &[TargetId]) {
        let started: Vec<TargetId> = self.registry.update(|health, now| {
            ids.iter().filter(|id| health.deregister(id, now)).cloned().collect()
        });
        for id in started {
            let registry = self.registry.clone();
            let mut shutdown = self.shutdown.subscribe();
            self.runtime.spawn(async move {
                tokio::select! {
                    _ = drain(registry, id) => {}
                    _ = crate::proxy::stopped(&mut shutdown) => {}
                }
            });
        }
    }

    /// `DescribeTargetHealth` for every registered target (draining ones included).
    pub fn describe_target_health(&self) -> Vec<TargetHealthDescription> {
        self.registry.read(|health| health.describe())
    }

    /// `ModifyTargetGroup` for the health-check settings.
    pub fn set_health_check(&self, settings: HealthCheckSettings) -> Result<(), LoadBalancerError> {
        settings.validate().map_err(|source| LoadBalancerError::Settings { source })?;
        self.registry.update(|health, _| health.set_settings(settings));
        Ok(())
    }

    /// `ModifyTargetGroupAttributes` for `deregistration_delay.timeout_seconds`.
    pub fn set_deregistration_delay(&self, delay: Duration) {
        self.registry.update(|health, _| health.set_deregistration_delay(delay));
    }

    /// Every state transition so far, with times since [`LoadBalancer::epoch`].
    pub fn history(&self) -> History {
        self.registry.read(|health| health.history().clone())
    }

    /// The (tokio) instant the history's times count from.
    pub fn epoch(&self) -> tokio::time::Instant {
        self.registry.epoch()
    }

    /// Requests in flight to a registered target.
    pub fn in_flight(&self, id: &TargetId) -> Option<u64> {
        self.registry.backend(id).map(|backend| backend.in_flight())
    }

    /// Connections to a registered target that could not be made (refused,
    /// timed out) since it was registered: ALB's `TargetConnectionErrorCount`.
    /// After one, new requests pass the target by for a while when other
    /// targets are routable.
    pub fn target_connection_errors(&self, id: &TargetId) -> Option<u64> {
        self.registry.backend(id).map(|backend| backend.connection_errors())
    }

    /// A receiver that changes whenever target states or settings change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.registry.subscribe()
    }

    /// Waits until `target` is in `state` (`unused` waits for removal).
    pub async fn wait_for_state(&self, target: &TargetId, state: TargetState) {
        let mut changes = self.registry.subscribe();
        loop {
            if self.registry.read(|health| health.state(target)) == state {
                return;
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stops accepting connections and health checks, lets open client
    /// connections finish their current requests (for up to 5 s), and waits
    /// for the tasks to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        for worker in self.workers.drain(..) {
            let _ = worker.await;
        }
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Removes a draining target once it has no requests in flight or its
/// delay ends. A request that picked the target from the routing snapshot
/// just before deregistration may start after the count was read as zero; it
/// still completes, since the backend lives as long as its requests.
async fn drain(registry: Arc<Registry>, id: TargetId) {
    let Some(backend) = registry.backend(&id) else { return };
    loop {
        let drained = backend.drained();
        tokio::pin!(drained);
        drained.as_mut().enable();
        let in_flight = backend.in_flight();
        let ended = registry.update(|health, now| health.finish_draining(&id, in_flight, now));
        let deadline = registry.read(|health| health.drain_deadline(&id));
        let (None, Some(deadline)) = (ended, deadline) else { return };
        tokio::select! {
            _ = drained => {}
            _ = tokio::time::sleep_until(registry.epoch() + deadline) => {}
        }
    }
}

/// The listen backlog of every socket the load balancer binds.
const LISTEN_BACKLOG: u32 = 1024;

/// What the data plane accepts connections on.
enum Listeners {
    /// `worker_threads: 0`: one listener on the caller's runtime.
    Caller(TcpListener),
    /// One socket per worker thread, registered with the worker's runtime
    /// once the thread runs.
    Workers(Vec<WorkerListener>),
}

enum WorkerListener {
    /// Bound with `SO_REUSEPORT`, not yet listening.
    Bound(TcpSocket),
    /// Listening already: a handed-over listener, or a clone of it.
    Listening(std::net::TcpListener),
}

impl WorkerListener {
    /// The tokio listener, registered with the current runtime.
    fn into_listener(self) -> std::io::Result<TcpListener> {
        match self {
            Self::Bound(socket) => socket.listen(LISTEN_BACKLOG),
            Self::Listening(listener) => TcpListener::from_std(listener),
        }
    }
}

/// A bind that failed: [`LoadBalancerError::PortTaken`] when another socket
/// holds the port.
fn bind_failed(addr: SocketAddr, source: std::io::Error) -> LoadBalancerError {
    if source.kind() == std::io::ErrorKind::AddrInUse {
        LoadBalancerError::PortTaken { addr, source }
    } else {
        LoadBalancerError::Bind { addr, source }
    }
}

/// Binds the first socket of a load balancer's `SO_REUSEPORT` group on
/// `listen` and starts it listening, once a plain bind (no `SO_REUSEPORT`)
/// has shown that no socket listens on the port; all of it under the
/// host-wide [`PortLock`], so that no other autopatch process claims the
/// port between the probe and the bind. Must be called inside a tokio
/// runtime.
fn claim_port(listen: SocketAddr) -> Result<std::net::TcpListener, LoadBalancerError> {
    let _lock = PortLock::acquire();
    let bind_error = |source| LoadBalancerError::Bind { addr: listen, source };
    // SO_REUSEADDR, as every listener here has: connections of an earlier
    // listener left in TIME_WAIT do not hold the port, a listening socket
    // does (SO_REUSEPORT ones included).
    let probe = if listen.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
        .map_err(bind_error)?;
    probe.set_reuseaddr(true).map_err(bind_error)?;
    probe.bind(listen).map_err(|source| bind_failed(listen, source))?;
    let addr = probe.local_addr().map_err(bind_error)?;
    drop(probe);
    let socket = reuse_port_socket(addr).map_err(|source| bind_failed(addr, source))?;
    let listener = socket.listen(LISTEN_BACKLOG).map_err(bind_error)?;
    listener.into_std().map_err(bind_error)
}

/// The host-wide lock autopatch processes hold while they claim a
/// listener port ([`claim_port`]): an exclusive `flock` on
/// `/run/lock/autopatch-ports.lock` (else the same file in the system's
/// temporary directory), released when dropped. Without a lock file (none
/// can be opened) the probe alone guards the port.
struct PortLock {
    _file: Option<std::fs::File>,
}

impl PortLock {
    fn acquire() -> PortLock {
        let directories = [PathBuf::from("/run/lock"), std::env::temp_dir()];
        for directory in directories {
            let path = directory.join("autopatch-ports.lock");
            // Anyone may lock it: a lock needs no write access, so a file
            // another user made is opened for reading.
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o666)
                .open(&path)
                .or_else(|_| std::fs::File::open(&path));
            if let Ok(file) = file
                && file.lock().is_ok()
            {
                return PortLock { _file: Some(file) };
            }
        }
        PortLock { _file: None }
    }
}

fn reuse_port_socket(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

fn ensure_loopback(addr: SocketAddr) -> Result<(), LoadBalancerError> {
    if addr.ip().is_loopback() { Ok(()) } else { Err(LoadBalancerError::NotLoopback { addr }) }
}
