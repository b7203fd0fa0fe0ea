//! The shared state of one target group: the pure health state machine, one
//! [`Backend`] per registered target (its in-flight count and idle upstream
//! connections) and the routing snapshot the data plane reads.
//!
//! Design note: requests never take the health lock. Every change to the
//! state machine goes through [`Registry::update`], which rebuilds the
//! snapshot of healthy backends; the data plane only clones that snapshot
//! (an `Arc`) under a read lock and advances an atomic round-robin cursor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::health::{Target, TargetGroupHealth, TargetId};
use crate::upstream::UpstreamConnection;

/// Idle upstream connections kept per target; more are closed when returned.
const MAX_IDLE_PER_TARGET: usize = 256;

/// How long new requests pass a target by after a connection to it could
/// not be made, while other targets are routable (nginx's `fail_timeout`).
/// The health checks decide whether it is unhealthy; this only keeps
/// requests from queueing behind a dead address until they do.
pub(crate) const PASS_BY_AFTER_CONNECT_FAILURE: Duration = Duration::from_secs(10);

/// One registered target as the data plane sees it.
pub(crate) struct Backend {
    pub(crate) target: Target,
    in_flight: AtomicU64,
    /// Idle connections, one pool per worker: a connection is driven by the
    /// runtime of the worker that opened it.
    idle: Box<[Mutex<Vec<UpstreamConnection>>]>,
    drained: Notify,
    /// The registry's epoch, for the two fields below.
    epoch: Instant,
    /// Until when (nanoseconds after `epoch`) new requests pass this target
    /// by, after a connection to it could not be made; 0 when none failed.
    passed_by_until: AtomicU64,
    /// Connections to this target that could not be made (refused, timed
    /// out, or failed before HTTP started): ALB's `TargetConnectionErrorCount`.
    connection_errors: AtomicU64,
}

impl Backend {
    fn new(target: Target, workers: usize, epoch: Instant) -> Self {
        let idle = (0..workers.max(1)).map(|_| Mutex::new(Vec::new())).collect();
        Self {
            target,
            in_flight: AtomicU64::new(0),
            idle,
            drained: Notify::new(),
            epoch,
            passed_by_until: AtomicU64::new(0),
            connection_errors: AtomicU64::new(0),
        }
    }

    /// Records a connection that could not be made: new requests pass this
    /// target by for [`PASS_BY_AFTER_CONNECT_FAILURE`] when others can take them.
    pub(crate) fn connection_failed(&self) {
        self.connection_errors.fetch_add(1, Ordering::Relaxed);
        let until = self.epoch.elapsed() + PASS_BY_AFTER_CONNECT_FAILURE;
        let until = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX);
        self.passed_by_until.fetch_max(until, Ordering::Relaxed);
    }

    /// Whether a connection to this target failed recently. Reads the clock
    /// only when one ever failed, so the usual request pays one atomic load.
    pub(crate) fn passed_by(&self) -> bool {
        let until = self.passed_by_until.load(Ordering::Relaxed);
        until != 0 && u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX) < until
    }

    pub(crate) fn connection_errors(&self) -> u64 {
        self.connection_errors.load(Ordering::Relaxed)
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Waits until the in-flight count may have dropped to zero. Create the
    /// future before reading the count so that no wake-up is missed.
    pub(crate) fn drained(&self) -> tokio::sync::futures::Notified<'_> {
        self.drained.notified()
    }

    pub(crate) fn take_idle(&self, worker: usize) -> Option<UpstreamConnection> {
        lock(&self.idle[worker % self.idle.len()]).pop()
    }

    pub(crate) fn put_idle(&self, worker: usize, connection: UpstreamConnection) {
        let mut idle = lock(&self.idle[worker % self.idle.len()]);
        if idle.len() < MAX_IDLE_PER_TARGET {
            idle.push(connection);
        }
    }
}

/// Counts one request in flight to a backend until dropped.
pub(crate) struct InFlight {
    backend: Arc<Backend>,
}

impl InFlight {
    pub(crate) fn start(backend: Arc<Backend>) -> Self {
        backend.in_flight.fetch_add(1, Ordering::AcqRel);
        Self { backend }
    }

    pub(crate) fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.backend.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.backend.drained.notify_waiters();
        }
    }
}

/// Target group state shared by the proxy, the health checker and the API.
pub(crate) struct Registry {
    workers: usize,
    /// How long a target may take to start its response.
    pub(crate) idle_timeout: Duration,
    epoch: Instant,
    health: Mutex<TargetGroupHealth>,
    backends: Mutex<HashMap<TargetId, Arc<Backend>>>,
    routes: RwLock<Arc<[Arc<Backend>]>>,
    cursor: AtomicUsize,
    changes: watch::Sender<u64>,
}

impl Registry {
    /// A registry whose backends keep one idle pool for each of `workers`.
    pub(crate) fn new(health: TargetGroupHealth, workers: usize, idle_timeout: Duration) -> Self {
        Self {
            workers,
            idle_timeout,
            epoch: Instant::now(),
            health: Mutex::new(health),
            backends: Mutex::new(HashMap::new()),
            routes: RwLock::new(Arc::from(Vec::new())),
            cursor: AtomicUsize::new(0),
            changes: watch::Sender::new(0),
        }
    }

    /// Time since the load balancer started: the pure layer's `now`.
    pub(crate) fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Reads the health state.
    pub(crate) fn read<R>(&self, read: impl FnOnce(&TargetGroupHealth) -> R) -> R {
        read(&lock(&self.health))
    }

    /// Changes the health state at `now`, then rebuilds the backends and the
    /// routing snapshot and tells subscribers.
    pub(crate) fn update<R>(
        &self,
        change: impl FnOnce(&mut TargetGroupHealth, Duration) -> R,
    ) -> R {
        let mut health = lock(&self.health);
        let result = change(&mut health, self.now());
        let mut backends = lock(&self.backends);
        backends.retain(|id, backend| {
            health.targets().any(|target| &target.id == id && target.addr == backend.target.addr)
        });
        for target in health.targets() {
            backends.entry(target.id.clone()).or_insert_with(|| {
                Arc::new(Backend::new(target.clone(), self.workers, self.epoch))
            });
        }
        let routes: Vec<Arc<Backend>> =
            health.routable().filter_map(|target| backends.get(&target.id).cloned()).collect();
        *self.routes.write().unwrap_or_else(PoisonError::into_inner) = Arc::from(routes);
        drop(backends);
        drop(health);
        self.changes.send_modify(|generation| *generation += 1);
        result
    }

    pub(crate) fn backend(&self, id: &TargetId) -> Option<Arc<Backend>> {
        lock(&self.backends).get(id).cloned()
    }

    /// The healthy backends and where round robin starts this time.
    pub(crate) fn pick(&self) -> (Arc<[Arc<Backend>]>, usize) {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner).clone();
        let start = if routes.is_empty() {
            0
        } else {
            self.cursor.fetch_add(1, Ordering::Relaxed) % routes.len()
        };
        (routes, start)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// Locks a mutex, ignoring poison: every critical section leaves the data
/// consistent before anything that could panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
