//! The runner: `concurrency` workers, each with its own HTTP/1.1 keep-alive
//! connection (made again only when the server closed it or a request on it
//! failed), sending GETs in a closed loop, optionally paced to a total rate.
//!
//! Design notes:
//! - No retries, ever: every failed request is a response with a
//!   [`FailureKind`], because the point is to prove that none failed. A
//!   connection found closed *before* a request is written (the server's
//!   keep-alive ended) is replaced without counting anything, since no
//!   request was lost.
//! - The body is always read to its end (so the connection stays reusable),
//!   but it is kept and searched for the image only when the image header is
//!   absent.
//! - Pacing shares one schedule among the workers: each takes the next slot
//!   `1/rate` after the previous one, never earlier than now (a late request
//!   does not cause a burst to catch up).
//! - A worker whose request failed to connect waits a little before its next
//!   one ([`ConnectBackoff`]): a refused connect fails in microseconds, and a
//!   closed loop of them would take the CPU from the server being measured
//!   (the daemon recovering, say). Each attempt is still a counted failure.
//! - Time is `tokio::time`, so tests can pause it.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, USER_AGENT};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, sleep_until, timeout};

use crate::config::{Target, WatchConfig, WatchError};
use crate::response::{FailureKind, Response, classify_status, image_from_body};
use crate::summary::{Summary, summarize};

/// How much of a body is kept to search for the image.
const MAX_KEPT_BODY: usize = 1 << 20;
const USER_AGENT_VALUE: &str = concat!("autopatch-watch/", env!("CARGO_PKG_VERSION"));

/// A finished run: its summary and every response, in the order they were
/// seen.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub summary: Summary,
    pub responses: Vec<Response>,
}

/// Loads `config.url` until the duration or request count is reached, or
/// until `stop` resolves (then requests in flight are abandoned and counted
/// in [`Summary::abandoned`]). `sink` sees each response as it arrives, on
/// the caller's task.
///
/// Needs a tokio runtime with the time and io drivers. Fails only when the
/// configuration is invalid; failed requests are in the outcome.
pub async fn run<S, F>(config: &WatchConfig, mut sink: S, stop: F) -> Result<Outcome, WatchError>
where
    S: FnMut(&Response),
    F: Future,
{
    let target = Target::check(config)?;
    let start = Instant::now();
    let shared = Arc::new(Shared {
        target,
        start,
        deadline: config.duration.map(|duration| start + duration),
        limit: config.requests,
        timeout: config.timeout,
        pacer: config.rate.map(|rate| Pacer {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: Mutex::new(start),
        }),
        tickets: AtomicU64::new(0),
        started: AtomicU64::new(0),
        connections: AtomicU64::new(0),
    });
    let (sender, mut receiver) = mpsc::unbounded_channel();
    let mut workers = JoinSet::new();
    for _ in 0..config.concurrency {
        workers.spawn(worker(Arc::clone(&shared), sender.clone()));
    }
    drop(sender);

    let mut responses = Vec::new();
    let mut stop = std::pin::pin!(stop);
    let mut stopped = false;
    loop {
        tokio::select! {
            // The stop comes first, so a busy channel cannot starve it.
            biased;
            _ = &mut stop => {
                stopped = true;
                break;
            }
            response = receiver.recv() => match response {
                Some(response) => {
                    sink(&response);
                    responses.push(response);
                }
                None => break,
            },
        }
    }
    let elapsed = start.elapsed();
    if stopped {
        workers.abort_all();
    }
    while let Some(result) = workers.join_next().await {
        if let Err(error) = result
            && error.is_panic()
        {
            std::panic::resume_unwind(error.into_panic());
        }
    }
    // Responses that arrived while the workers were being stopped.
    while let Ok(response) = receiver.try_recv() {
        sink(&response);
        responses.push(response);
    }
    let mut summary = summarize(&responses, elapsed);
    summary.abandoned = shared.started.load(Ordering::Relaxed) - responses.len() as u64;
    summary.connections = shared.connections.load(Ordering::Relaxed);
    Ok(Outcome { summary, responses })
}

/// What the workers share.
struct Shared {
    target: Target,
    start: Instant,
    deadline: Option<Instant>,
    limit: Option<u64>,
    timeout: Duration,
    pacer: Option<Pacer>,
    /// Requests claimed under `limit`.
    tickets: AtomicU64,
    /// Requests started (and so owed a response).
    started: AtomicU64,
    /// Connections opened.
    connections: AtomicU64,
}

impl Shared {
    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|deadline| Instant::now() >= deadline)
    }
}

/// The shared request schedule of `--rate`.
struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    fn next_slot(&self) -> Instant {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = (*next).max(now);
        *next = slot + self.interval;
        slot
    }
}

/// One keep-alive connection; its driver task ends with it.
struct Connection {
    sender: SendRequest<Empty<Bytes>>,
    _driver: AbortOnDrop,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A complete response.
struct Answer {
    status: u16,
    image: Option<String>,
}

/// A failed request: its kind, and the status when a head had arrived.
struct Failure {
    kind: FailureKind,
    status: Option<u16>,
    image: Option<String>,
}

impl Failure {
    fn before_head(kind: FailureKind) -> Failure {
        Failure { kind, status: None, image: None }
    }
}

/// How long a worker waits before its next request after requests that
/// failed to connect (`connect` failures: refused, reset or closed before a
/// response head): [`ConnectBackoff::FIRST`] after the first, doubling up to
/// [`ConnectBackoff::MAX`], and no wait again after any other outcome (a
/// response, even a 503, or a timeout, which spun nothing). So a closed loop
/// against a port nobody listens on sends about 20 requests a second per
/// worker instead of spinning, and a server that comes back is reached at
/// most `MAX` later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct ConnectBackoff {
    /// The wait before the next request (zero: none).
    pause: Duration,
}

impl ConnectBackoff {
    const FIRST: Duration = Duration::from_millis(1);
    const MAX: Duration = Duration::from_millis(50);

    /// Takes a request's outcome (its failure kind, `None` for a success).
    fn record(&mut self, error: Option<FailureKind>) {
        self.pause = match error {
            Some(FailureKind::Connect) if self.pause.is_zero() => Self::FIRST,
            Some(FailureKind::Connect) => (self.pause * 2).min(Self::MAX),
            _ => Duration::ZERO,
        };
    }

    /// The wait before the next request, if any.
    fn pause(&self) -> Option<Duration> {
        (!self.pause.is_zero()).then_some(self.pause)
    }
}

async fn worker(shared: Arc<Shared>, responses: mpsc::UnboundedSender<Response>) {
    let mut connection: Option<Connection> = None;
    let mut backoff = ConnectBackoff::default();
    loop {
        if shared.past_deadline() {
            return;
        }
        if let Some(limit) = shared.limit
            && shared.tickets.fetch_add(1, Ordering::Relaxed) >= limit
        {
            return;
        }
        if let Some(pause) = backoff.pause() {
            let until = Instant::now() + pause;
            sleep_until(shared.deadline.map_or(until, |deadline| until.min(deadline))).await;
        }
        if let Some(pacer) = &shared.pacer {
            let slot = pacer.next_slot();
            if let Some(deadline) = shared.deadline
                && slot >= deadline
            {
                sleep_until(deadline).await;
                return;
            }
            sleep_until(slot).await;
        }
        let begin = Instant::now();
        // The start itself is checked, so no request starts at or after it.
        if shared.deadline.is_some_and(|deadline| begin >= deadline) {
            return;
        }
        shared.started.fetch_add(1, Ordering::Relaxed);
        let result = timeout(shared.timeout, exchange(&shared, &mut connection)).await;
        let latency = begin.elapsed();
        let t = begin - shared.start;
        let response = match result {
            Ok(Ok(answer)) => Response {
                t,
                status: Some(answer.status),
                latency,
                image: answer.image,
                error: classify_status(answer.status),
            },
            Ok(Err(failure)) => {
                connection = None;
                Response {
                    t,
                    status: failure.status,
                    latency,
                    image: failure.image,
                    error: Some(failure.kind),
                }
            }
            Err(_elapsed) => {
                // The connection is in an unknown state: do not reuse it.
                connection = None;
                Response {
                    t,
                    status: None,
                    latency,
                    image: None,
                    error: Some(FailureKind::Timeout),
                }
            }
        };
        backoff.record(response.error);
        if responses.send(response).is_err() {
            return;
        }
    }
}

/// One request on the worker's connection (made first when needed), its
/// body read to the end.
async fn exchange(shared: &Shared, connection: &mut Option<Connection>) -> Result<Answer, Failure> {
    let target = &shared.target;
    let reusable = match connection.as_mut() {
        Some(existing) => existing.sender.ready().await.is_ok(),
        None => false,
    };
    if !reusable {
        *connection = None;
        *connection = Some(connect(shared).await?);
    }
    let sender =
        &mut connection.as_mut().expect("a connection was just found ready or made").sender;
    let request = http::Request::get(target.path_and_query.as_str())
        .header(HOST, target.authority.as_str())
        .header(USER_AGENT, USER_AGENT_VALUE)
        .body(Empty::<Bytes>::new())
        .expect("a GET of a checked url is a valid request");
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| Failure::before_head(classify_hyper_error(&error)))?;
    let status = response.status().as_u16();
    let header_image = response
        .headers()
        .get(&target.image_header)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned);
    let mut kept = header_image.is_none().then(Vec::new);
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Failure {
            kind: FailureKind::Other,
            status: Some(status),
            image: header_image.clone(),
        })?;
        if let (Some(kept), Ok(data)) = (kept.as_mut(), frame.into_data())
            && kept.len() < MAX_KEPT_BODY
        {
            kept.extend_from_slice(&data);
        }
    }
    let image = header_image.or_else(|| kept.and_then(|body| image_from_body(&body)));
    Ok(Answer { status, image })
}

async fn connect(shared: &Shared) -> Result<Connection, Failure> {
    let connect_failed = |_| Failure::before_head(FailureKind::Connect);
    let stream = TcpStream::connect(&shared.target.address).await.map_err(connect_failed)?;
    shared.connections.fetch_add(1, Ordering::Relaxed);
    // Small requests: do not wait to fill a segment.
    let _ = stream.set_nodelay(true);
    let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Failure::before_head(FailureKind::Connect))?;
    let driver = tokio::spawn(async move {
        // Its errors reach the request that was in flight.
        let _ = driver.await;
    });
    Ok(Connection { sender, _driver: AbortOnDrop(driver) })
}

/// A request error before a response head: the connection went away
/// (`connect`) or the peer spoke something else than HTTP (`other`).
fn classify_hyper_error(error: &hyper::Error) -> FailureKind {
    if error.is_canceled() || error.is_incomplete_message() || error.is_closed() {
        return FailureKind::Connect;
    }
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return match io.kind() {
                ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected | UnexpectedEof => {
                    FailureKind::Connect
                }
                _ => FailureKind::Other,
            };
        }
        cause = error.source();
    }
    FailureKind::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The waits after each of `outcomes`, in milliseconds (0: none).
    fn waits(outcomes: &[Option<FailureKind>]) -> Vec<u128> {
        let mut backoff = ConnectBackoff::default();
        outcomes
            .iter()
            .map(|outcome| {
                backoff.record(*outcome);
                backoff.pause().map_or(0, |pause| pause.as_millis())
            })
            .collect()
    }

    #[test]
    fn connect_failures_back_off_from_1_ms_doubling_to_50_ms() {
        let refused = Some(FailureKind::Connect);
        assert_eq!(waits(&[refused; 9]), [1, 2, 4, 8, 16, 32, 50, 50, 50]);
        assert_eq!(ConnectBackoff::default().pause(), None, "no wait before the first request");
    }

    #[test]
    fn a_request_that_reaches_a_server_ends_the_backoff() {
        let refused = Some(FailureKind::Connect);
        for reached in [None, Some(FailureKind::Http5xx), Some(FailureKind::Timeout)] {
            assert_eq!(
                waits(&[refused, refused, refused, reached, refused]),
                [1, 2, 4, 0, 1],
                "after {reached:?}"
            );
        }
        // Other failures never make a worker wait: they took the server's time.
        let others = [Some(FailureKind::Http4xx), Some(FailureKind::Other), None];
        assert_eq!(waits(&others), [0, 0, 0]);
    }
}
