//! The active health checker: one task per target group that probes every
//! registered target at the interval, bounds each probe by the timeout and
//! feeds the results into the pure state machine.
//!
//! Probing goes through the narrow [`Prober`] trait: [`HttpProber`] makes real
//! HTTP GETs, [`ScriptedProber`] answers from a script for tests. Time is
//! `tokio::time` only, so tests can pause and advance it.
//!
//! Design note: a target's first check starts as soon as it is registered;
//! the next starts one interval after the previous one started. A target is
//! never probed twice at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::header::{CONNECTION, HOST, HeaderValue, USER_AGENT};
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::health::{ProbeResult, TargetId};
use crate::registry::Registry;
use crate::settings::HealthCheckPort;

/// What to probe: a target's health-check address and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRequest {
    /// The target being checked.
    pub target: TargetId,
    /// Its address with the health-check port applied.
    pub addr: SocketAddr,
    /// `HealthCheckPath`.
    pub path: String,
}

/// A boxed probe in progress.
pub type ProbeFuture = Pin<Box<dyn Future<Output = ProbeResult> + Send + 'static>>;

/// Performs one health check. The checker applies the timeout, so a probe
/// that never finishes counts as [`ProbeResult::Timeout`].
pub trait Prober: Send + Sync + 'static {
    /// Starts a probe of `request`.
    fn probe(&self, request: ProbeRequest) -> ProbeFuture;
}

/// Real HTTP health checks: `GET <path>` on a new connection, like ELB's
/// `ELB-HealthChecker/2.0`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpProber;

impl Prober for HttpProber {
    fn probe(&self, request: ProbeRequest) -> ProbeFuture {
        Box::pin(http_probe(request))
    }
}

async fn http_probe(request: ProbeRequest) -> ProbeResult {
    let stream = match TcpStream::connect(request.addr).await {
        Ok(stream) => stream,
        Err(error) => return ProbeResult::Failed(format!("connect to {}: {error}", request.addr)),
    };
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
            Ok(handshake) => handshake,
            Err(error) => {
                return ProbeResult::Failed(format!("handshake with {}: {error}", request.addr));
            }
        };
    let connection = tokio::spawn(connection);
    let host = HeaderValue::try_from(request.addr.to_string())
        .unwrap_or(HeaderValue::from_static("localhost"));
    let built = Request::builder()
        .method(Method::GET)
        .uri(request.path.as_str())
        .header(HOST, host)
        .header(USER_AGENT, "ELB-HealthChecker/2.0")
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new());
    let result = match built {
        Err(error) => ProbeResult::Failed(format!("build request for {}: {error}", request.path)),
        Ok(built) => match sender.send_request(built).await {
            Err(error) => ProbeResult::Failed(format!("request to {}: {error}", request.addr)),
            Ok(response) => {
                let status = response.status().as_u16();
                // The body is read and dropped, as ELB does; its errors do not matter.
                let _ = response.into_body().collect().await;
                ProbeResult::Status(status)
            }
        },
    };
    connection.abort();
    result
}

/// One scripted answer of [`ScriptedProber`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptedAnswer {
    /// Answer at once with this result.
    Result(ProbeResult),
    /// Never answer, so the checker's timeout fires.
    Hang,
}

/// A fake prober answering from per-target scripts and recording every probe.
/// When a target's script runs out, its last answer repeats; a target with no
/// script gets `200`.
#[derive(Debug, Default)]
pub struct ScriptedProber {
    scripts: Mutex<HashMap<TargetId, VecDeque<ScriptedAnswer>>>,
    last: Mutex<HashMap<TargetId, ScriptedAnswer>>,
    probes: Mutex<Vec<(Instant, ProbeRequest)>>,
}

impl ScriptedProber {
    /// A prober with no scripts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends answers to a target's script.
    pub fn script(&self, target: &TargetId, answers: impl IntoIterator<Item = ScriptedAnswer>) {
        let mut scripts = self.scripts.lock().unwrap_or_else(PoisonError::into_inner);
        scripts.entry(target.clone()).or_default().extend(answers);
    }

    /// Every probe so far with the (tokio) time it started.
    pub fn probes(&self) -> Vec<(Instant, ProbeRequest)> {
        self.probes.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn next_answer(&self, target: &TargetId) -> ScriptedAnswer {
        let next = self
            .scripts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(target)
            .and_then(VecDeque::pop_front);
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match next {
            Some(answer) => {
                last.insert(target.clone(), answer.clone());
                answer
            }
            None => last
                .get(target)
                .cloned()
                .unwrap_or(ScriptedAnswer::Result(ProbeResult::Status(200))),
        }
    }
}

impl Prober for ScriptedProber {
    fn probe(&self, request: ProbeRequest) -> ProbeFuture {
        let answer = self.next_answer(&request.target);
        self.probes.lock().unwrap_or_else(PoisonError::into_inner).push((Instant::now(), request));
        match answer {
            ScriptedAnswer::Result(result) => Box::pin(std::future::ready(result)),
            ScriptedAnswer::Hang => Box::pin(std::future::pending()),
        }
    }
}

impl<P: Prober + ?Sized> Prober for Arc<P> {
    fn probe(&self, request: ProbeRequest) -> ProbeFuture {
        (**self).probe(request)
    }
}

/// Runs the health checks of one target group until `shutdown` turns true.
pub(crate) async fn run(
    registry: Arc<Registry>,
    prober: Arc<dyn Prober>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changes = registry.subscribe();
    let mut next_due: HashMap<TargetId, Instant> = HashMap::new();
    let mut probing: HashMap<tokio::task::Id, TargetId> = HashMap::new();
    let mut probes: JoinSet<ProbeResult> = JoinSet::new();
    loop {
        let now = Instant::now();
        let (checkable, settings) = registry.read(|health| {
            let checkable: Vec<_> = health.checkable().cloned().collect();
            (checkable, health.settings().clone())
        });
        let checkable_ids: HashSet<&TargetId> = checkable.iter().map(|target| &target.id).collect();
        next_due.retain(|id, _| checkable_ids.contains(id));
        let busy: HashSet<TargetId> = probing.values().cloned().collect();
        for target in &checkable {
            let due = *next_due.entry(target.id.clone()).or_insert(now);
            if busy.contains(&target.id) || due > now {
                continue;
            }
            next_due.insert(target.id.clone(), now + settings.interval);
            let addr = match settings.port {
                HealthCheckPort::TrafficPort => target.addr,
                HealthCheckPort::Port(port) => SocketAddr::new(target.addr.ip(), port),
            };
            let probe = prober.probe(ProbeRequest {
                target: target.id.clone(),
                addr,
                path: settings.path.clone(),
            });
            let timeout = settings.timeout;
            let handle = probes.spawn(async move {
                tokio::time::timeout(timeout, probe).await.unwrap_or(ProbeResult::Timeout)
            });
            probing.insert(handle.id(), target.id.clone());
        }
        let wake = next_due.iter().filter(|(id, _)| !busy.contains(*id)).map(|(_, due)| *due).min();
        let wake = wake.filter(|due| *due > now);
        tokio::select! {
            _ = crate::proxy::stopped(&mut shutdown) => {
                probes.abort_all();
                return;
            }
            Some(joined) = probes.join_next_with_id(), if !probes.is_empty() => {
                let (task, result) = match joined {
                    Ok((task, result)) => (task, result),
                    Err(error) => (error.id(), ProbeResult::Failed("health check task failed".to_owned())),
                };
                if let Some(id) = probing.remove(&task) {
                    registry.update(|health, now| health.record_check(&id, &result, now));
                }
            }
            _ = changes.changed() => {}
            _ = sleep_until_some(wake) => {}
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
