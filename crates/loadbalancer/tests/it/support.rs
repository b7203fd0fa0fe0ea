//! Test helpers: tiny hyper backends on 127.0.0.1 and a minimal HTTP client.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use autopatch_loadbalancer::{HealthCheckSettings, LoadBalancer, TargetId, TargetState};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

/// A backend answering `<name> xff=<X-Forwarded-For> proto=<..> port=<..>`;
/// `/slow` waits for a permit from [`TestBackend::release_slow`].
pub(crate) struct TestBackend {
    pub(crate) addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    slow_gate: Arc<Semaphore>,
    task: JoinHandle<()>,
}

impl TestBackend {
    pub(crate) async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let slow_gate = Arc::new(Semaphore::new(0));
        let task = tokio::spawn({
            let hits = hits.clone();
            let slow_gate = slow_gate.clone();
            async move {
                // Connection tasks live in this set, so aborting the accept
                // task closes every connection too.
                let mut connections = JoinSet::new();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let hits = hits.clone();
                    let slow_gate = slow_gate.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |request: Request<Incoming>| {
                            let hits = hits.clone();
                            let slow_gate = slow_gate.clone();
                            async move {
                                if request.uri().path() == "/health" {
                                    return Ok::<_, Infallible>(Response::new(Full::new(
                                        Bytes::from_static(b"ok"),
                                    )));
                                }
                                if request.uri().path() == "/health/500" {
                                    let mut response = Response::new(Full::new(Bytes::new()));
                                    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                                    return Ok(response);
                                }
                                if request.uri().path() == "/health/hang" {
                                    std::future::pending::<()>().await;
                                }
                                hits.fetch_add(1, Ordering::SeqCst);
                                if request.uri().path() == "/echo" {
                                    let body =
                                        request.into_body().collect().await.unwrap().to_bytes();
                                    return Ok(Response::new(Full::new(body)));
                                }
                                if request.uri().path() == "/slow" {
                                    slow_gate.acquire().await.unwrap().forget();
                                }
                                let header = |name: &str| {
                                    request
                                        .headers()
                                        .get(name)
                                        .and_then(|value| value.to_str().ok())
                                        .unwrap_or("-")
                                        .to_owned()
                                };
                                let body = format!(
                                    "{name} xff={} proto={} port={}",
                                    header("x-forwarded-for"),
                                    header("x-forwarded-proto"),
                                    header("x-forwarded-port")
                                );
                                Ok(Response::new(Full::new(Bytes::from(body))))
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Self { addr, hits, slow_gate, task }
    }

    /// Requests served, health checks excluded.
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub(crate) fn release_slow(&self) {
        self.slow_gate.add_permits(1);
    }

    /// Closes the listener and every connection: connects are refused from now on.
    pub(crate) async fn shut_down(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// A backend that reads a request, writes half a response head and closes.
pub(crate) async fn broken_backend() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = [0_u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Len").await;
        }
    });
    (addr, task)
}

/// One request on a new connection: status and body.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let mut sender = connect(addr).await;
    send(&mut sender, path).await
}

/// A POST with a body on a new connection: status and body.
pub(crate) async fn post(addr: SocketAddr, path: &str, body: String) -> (StatusCode, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request =
        Request::post(path).header("host", "app.test").body(Full::new(Bytes::from(body))).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A client connection with keep-alive.
pub(crate) async fn connect(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    sender
}

pub(crate) async fn send(
    sender: &mut SendRequest<Empty<Bytes>>,
    path: &str,
) -> (StatusCode, String) {
    send_with(sender, path, &[]).await
}

/// A GET with extra headers on an existing connection.
pub(crate) async fn send_with(
    sender: &mut SendRequest<Empty<Bytes>>,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    sender.ready().await.unwrap();
    let mut request = Request::get(path).header("host", "app.test");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Empty::new()).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Fast health checks for real-time tests: every 200 ms, 2 passes to turn
/// healthy. The timeout is generous so that a loaded machine does not turn a
/// healthy backend unhealthy in the middle of a test.
pub(crate) fn fast_checks() -> HealthCheckSettings {
    HealthCheckSettings {
        path: "/health".to_owned(),
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(200),
        healthy_threshold: 2,
        unhealthy_threshold: 2,
        ..HealthCheckSettings::default()
    }
}

/// Waits for a state, failing the test after 10 s (a hang, not a timing assertion).
pub(crate) async fn wait_for(lb: &LoadBalancer, id: &str, state: TargetState) {
    let id = TargetId::new(id);
    tokio::time::timeout(Duration::from_secs(10), lb.wait_for_state(&id, state))
        .await
        .unwrap_or_else(|_| panic!("{id} never became {state}: {:?}", lb.describe_target_health()));
}
