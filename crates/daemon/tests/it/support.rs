//! A test implementation of `Operations` and a raw HTTP client, so the
//! server is tested without the stack service and with requests the real
//! client would never send.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autopatch_daemon::{Operations, Server, ServerConfig, StopReason, decode, encode};
use autopatch_stacks::api::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{Notify, oneshot};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EchoInput {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) count: u32,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EchoOutput {
    pub(crate) greeting: String,
}

/// `test/Echo` greets, `test/Exists` and `test/Invalid` fail the AWS way,
/// `test/Slow` waits for the test to release it; everything else is not
/// implemented. Every call is recorded.
#[derive(Default)]
pub(crate) struct TestOperations {
    pub(crate) calls: Mutex<Vec<(String, String, Value)>>,
    pub(crate) slow_started: Notify,
    pub(crate) slow_release: Notify,
    pub(crate) slow_finished: Notify,
    /// What `problems` answers (recovery's open problems).
    pub(crate) problems: Mutex<Vec<String>>,
}

impl Operations for TestOperations {
    async fn call(&self, service: &str, operation: &str, input: Value) -> Result<Value, ApiError> {
        self.calls.lock().unwrap().push((service.into(), operation.into(), input.clone()));
        match (service, operation) {
            ("test", "Echo") => {
                let input: EchoInput = decode(operation, input)?;
                encode(&EchoOutput { greeting: format!("hello {} x{}", input.name, input.count) })
            }
            ("test", "Exists") => Err(ApiError::already_exists("stack web already exists")),
            ("test", "Invalid") => Err(ApiError::validation(
                "/t/web.yml:3:5: error: unknown key \"Typo\"\n/t/web.yml:9:1: error: no resource \"Nope\"",
            )),
            ("test", "Slow") => {
                self.slow_started.notify_one();
                self.slow_release.notified().await;
                self.slow_finished.notify_one();
                Ok(serde_json::json!({"Done": true}))
            }
            _ => Err(ApiError::not_implemented(service, operation)),
        }
    }

    fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap().clone()
    }
}

impl TestOperations {
    pub(crate) fn calls(&self) -> Vec<(String, String, Value)> {
        self.calls.lock().unwrap().clone()
    }
}

/// A server on a fresh state directory, running in a task until the test
/// drops `stop` or a client calls Shutdown.
pub(crate) struct Running {
    pub(crate) state: tempfile::TempDir,
    pub(crate) socket: PathBuf,
    pub(crate) tcp: Option<std::net::SocketAddr>,
    pub(crate) operations: Arc<TestOperations>,
    pub(crate) stop: Option<oneshot::Sender<()>>,
    pub(crate) task: tokio::task::JoinHandle<StopReason>,
}

pub(crate) fn config(state: &Path) -> ServerConfig {
    ServerConfig {
        socket_path: autopatch_daemon::socket_path(state),
        listen: None,
        state_dir: state.to_path_buf(),
        engine_endpoint: "unix:///test/engine.sock".into(),
        drain_timeout: Duration::from_secs(30),
    }
}

pub(crate) async fn start() -> Running {
    start_with(|_| {}).await
}

pub(crate) async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> Running {
    let state = tempfile::tempdir().unwrap();
    let mut config = config(state.path());
    adjust(&mut config);
    let operations = Arc::new(TestOperations::default());
    let server = Server::bind(config, Arc::clone(&operations)).await.unwrap();
    let socket = server.socket_path().to_path_buf();
    let tcp = server.tcp_address();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running { state, socket, tcp, operations, stop: Some(stop), task }
}

/// A response as read off the wire.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: Value,
}

/// Sends `request` (a whole HTTP/1.1 request, `Connection: close`) and
/// reads the answer to the end.
pub(crate) async fn raw<S>(mut stream: S, request: &str) -> RawResponse
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // The server may answer (413) and close before reading a whole body
    // that is too large: the answer is still there to read.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    RawResponse { status, head: head.to_owned(), body: serde_json::from_str(body).unwrap() }
}

pub(crate) async fn raw_unix(socket: &Path, request: &str) -> RawResponse {
    raw(tokio::net::UnixStream::connect(socket).await.unwrap(), request).await
}

/// `POST path` with `body` and any extra header lines.
pub(crate) fn post(path: &str, body: &str, headers: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
}
