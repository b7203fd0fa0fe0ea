//! A scripted HTTP/1.1 server on 127.0.0.1: the test says, for the n-th
//! request to arrive (from 0), what it gets; the server counts the
//! connections it accepted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// What one request gets.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// A response, after `delay`.
    Answer { status: u16, headers: Vec<(&'static str, String)>, body: String, delay: Duration },
    /// The connection is closed without a response.
    Close,
}

impl Action {
    /// 200 with `X-Image-Id: <image>`.
    pub(crate) fn image(image: &str) -> Action {
        Action::Answer {
            status: 200,
            headers: vec![("X-Image-Id", image.to_owned())],
            body: "<html>Welcome<html>\n".to_owned(),
            delay: Duration::ZERO,
        }
    }

    /// A status with no image header.
    pub(crate) fn status(status: u16) -> Action {
        Action::Answer { status, headers: Vec::new(), body: String::new(), delay: Duration::ZERO }
    }

    /// 200 with this body and no header.
    pub(crate) fn body(body: &str) -> Action {
        Action::Answer {
            status: 200,
            headers: Vec::new(),
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }

    /// The same answer, after `delay`.
    pub(crate) fn after(self, pause: Duration) -> Action {
        match self {
            Action::Answer { status, headers, body, .. } => {
                Action::Answer { status, headers, body, delay: pause }
            }
            Action::Close => Action::Close,
        }
    }
}

type Script = Arc<dyn Fn(u64) -> Action + Send + Sync>;

pub(crate) struct ScriptedServer {
    pub(crate) addr: SocketAddr,
    connections: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl ScriptedServer {
    pub(crate) async fn start(script: impl Fn(u64) -> Action + Send + Sync + 'static) -> Self {
        let script: Script = Arc::new(script);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let connections = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let connections = connections.clone();
            let requests = requests.clone();
            async move {
                // Connection tasks live in this set: aborting the accept task
                // closes every connection too.
                let mut tasks = JoinSet::new();
                loop {
                    let (stream, _) = listener.accept().await.expect("accept");
                    connections.fetch_add(1, Ordering::SeqCst);
                    let script = script.clone();
                    let requests = requests.clone();
                    tasks.spawn(async move {
                        let service = service_fn(move |_request: Request<Incoming>| {
                            let action = script(requests.fetch_add(1, Ordering::SeqCst));
                            async move { answer(action).await }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        ScriptedServer { addr, connections, requests, task }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests received so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An error from the service makes hyper close the connection unanswered.
#[derive(Debug)]
struct CloseConnection;

impl std::fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the script closes this connection")
    }
}

impl std::error::Error for CloseConnection {}

async fn answer(action: Action) -> Result<Response<Full<Bytes>>, CloseConnection> {
    match action {
        Action::Close => Err(CloseConnection),
        Action::Answer { status, headers, body, delay } => {
            tokio::time::sleep(delay).await;
            let mut response = Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(name, value);
            }
            Ok(response.body(Full::new(Bytes::from(body))).expect("a valid scripted response"))
        }
    }
}

/// The address of a port nothing listens on (bound, then released).
pub(crate) async fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("the bound address");
    drop(listener);
    format!("http://{addr}/")
}
