//! The data plane: an HTTP/1.1 listener with keep-alive that forwards each
//! request round robin to a healthy target.
//!
//! - `X-Forwarded-For` gets the client's address appended; `X-Forwarded-Proto`
//!   and `X-Forwarded-Port` are set to the listener's.
//! - A request whose connection to the chosen target cannot be made is sent to
//!   the next healthy target; a request is never sent twice.
//! - No healthy target: 503. A target that fails after the request was sent,
//!   before the response head: 502. A target that has not started its
//!   response within the idle timeout: 504. A failure after the head aborts the
//!   client's connection, since the status is already on its way.
//! - Each forwarded request counts as in flight to its target until the
//!   response body is finished or dropped, so draining can wait for it.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::registry::{Backend, InFlight, Registry};
use crate::upstream::{self, AttemptError, Exchange, UpstreamConnection};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Accepts connections until `shutdown` turns true, then lets open
/// connections finish their current request for up to `grace`. `worker`
/// picks the upstream pools this worker uses.
pub(crate) async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    worker: usize,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let listen_port = listener.local_addr().map(|addr| addr.port()).unwrap_or_default();
    let listen_port = HeaderValue::from(listen_port);
    // Every connection task holds a sender; `recv` returns `None` once all are done.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut shutdown) => break,
        };
        // Accept errors (such as running out of file descriptors) are transient.
        let Ok((stream, client)) = accepted else { continue };
        // Rendered once per connection for X-Forwarded-For; an IP address is
        // always a valid header value.
        let client_ip = HeaderValue::try_from(client.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        let _ = stream.set_nodelay(true);
        let registry = registry.clone();
        let listen_port = listen_port.clone();
        let mut shutdown = shutdown.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let registry = registry.clone();
                let listen_port = listen_port.clone();
                let client_ip = client_ip.clone();
                async move {
                    Ok::<_, Infallible>(
                        forward(request, &registry, worker, &client_ip, listen_port).await,
                    )
                }
            });
            let connection = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopped(&mut shutdown) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(open);
        });
    }
    drop(listener);
    drop(open_tx);
    let _ = tokio::time::timeout(grace, open_rx.recv()).await;
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn forward(
    request: Request<Incoming>,
    registry: &Registry,
    worker: usize,
    client_ip: &HeaderValue,
    listen_port: HeaderValue,
) -> Response<ProxyBody> {
    let (routes, start) = registry.pick();
    if routes.is_empty() {
        return short_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Temporarily Unavailable\n",
        );
    }
    let mut request = prepare_request(request, client_ip, listen_port);
    let count = routes.len();
    // Which targets a connection recently failed to, read once per request
    // so that each target is tried once (beyond 64 targets, none is).
    let passed: u64 = (0..count.min(64))
        .filter(|&index| routes[index].passed_by())
        .fold(0, |mask, index| mask | 1 << index);
    let mut attempts = 0;
    // Round robin over the targets no connection recently failed to, then
    // over those it did: a target is passed by, never dropped, so a request
    // still reaches one when every connection failed lately.
    for passed_by in [false, true] {
        for offset in 0..count {
            let index = (start + offset) % count;
            if (index < 64 && passed & 1 << index != 0) != passed_by {
                continue;
            }
            let backend = &routes[index];
            attempts += 1;
            // The last target left may take as long to connect as it needs.
            let connect_timeout = if attempts == count {
                upstream::CONNECT_TIMEOUT
            } else {
                upstream::FAILOVER_CONNECT_TIMEOUT
            };
            match attempt(backend, worker, request, connect_timeout, registry.idle_timeout).await {
                Attempted::Done(response) => return response,
                Attempted::NotSent(unsent) => request = unsent,
            }
        }
    }
    short_response(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n")
}

/// What one attempt on one target came to.
enum Attempted {
    /// The response to give the client (the target's, or 502 / 504).
    Done(Response<ProxyBody>),
    /// The request was not sent: another target may take it.
    NotSent(Request<Incoming>),
}

async fn attempt(
    backend: &Arc<Backend>,
    worker: usize,
    request: Request<Incoming>,
    connect_timeout: Duration,
    idle_timeout: Duration,
) -> Attempted {
    let in_flight = InFlight::start(backend.clone());
    let sent = upstream::send(backend, worker, request, connect_timeout);
    let Ok(sent) = tokio::time::timeout(idle_timeout, sent).await else {
        return Attempted::Done(short_response(
            StatusCode::GATEWAY_TIMEOUT,
            "504 Gateway Time-out\n",
        ));
    };
    match sent {
        Ok(Exchange { response, connection }) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let body = ProxyBody::Upstream(UpstreamBody {
                body,
                in_flight,
                worker,
                connection: Some(connection),
                done: false,
            });
            Attempted::Done(Response::from_parts(parts, body))
        }
        Err(AttemptError::NotSent(unsent)) => Attempted::NotSent(*unsent),
        Err(AttemptError::Failed) => {
            Attempted::Done(short_response(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n"))
        }
    }
}

fn prepare_request(
    request: Request<Incoming>,
    client_ip: &HeaderValue,
    listen_port: HeaderValue,
) -> Request<Incoming> {
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let forwarded_for =
        match parts.headers.get(&X_FORWARDED_FOR).and_then(|value| value.to_str().ok()) {
            Some(previous) => {
                let client_ip = String::from_utf8_lossy(client_ip.as_bytes());
                HeaderValue::try_from(format!("{previous}, {client_ip}")).ok()
            }
            None => Some(client_ip.clone()),
        };
    if let Some(value) = forwarded_for {
        parts.headers.insert(X_FORWARDED_FOR, value);
    }
    parts.headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    parts.headers.insert(X_FORWARDED_PORT, listen_port);
    // Targets get origin-form request targets, as from any client.
    if parts.uri.scheme().is_some()
        && let Some(Ok(uri)) = parts.uri.path_and_query().map(|path| path.as_str().parse())
    {
        parts.uri = uri;
    }
    parts.version = http::Version::HTTP_11;
    Request::from_parts(parts, body)
}

/// Removes the headers that describe one hop (RFC 9110, section 7.6.1),
/// including those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        KEEP_ALIVE,
        PROXY_CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

fn short_response(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut response =
        Response::new(ProxyBody::Local(Full::new(Bytes::from_static(body.as_bytes()))));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// A response body: from a target, or made here.
pub(crate) enum ProxyBody {
    Upstream(UpstreamBody),
    Local(Full<Bytes>),
}

/// A target's response body, counted in flight until done or dropped. Its
/// connection is driven while the body is read and goes back to the pool
/// when the body ends cleanly.
pub(crate) struct UpstreamBody {
    body: Incoming,
    in_flight: InFlight,
    worker: usize,
    connection: Option<UpstreamConnection>,
    done: bool,
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if (self.done || self.body.is_end_stream())
            && let Some(connection) = self.connection.take()
            && connection.is_open()
        {
            self.in_flight.backend().put_idle(self.worker, connection);
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Upstream(upstream) => {
                if let Some(connection) = &mut upstream.connection {
                    connection.drive(cx);
                }
                let polled = Pin::new(&mut upstream.body).poll_frame(cx);
                if let Poll::Ready(None) = polled {
                    upstream.done = true;
                }
                polled
            }
            Self::Local(full) => match Pin::new(full).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Upstream(upstream) => upstream.body.is_end_stream(),
            Self::Local(full) => full.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Upstream(upstream) => upstream.body.size_hint(),
            Self::Local(full) => full.size_hint(),
        }
    }
}
