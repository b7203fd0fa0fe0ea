//! [`Client`]: calls the daemon's operations over its unix socket, one
//! connection per call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use autopatch_stacks::api::ApiError;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::protocol::{
    DAEMON_SERVICE, ErrorBody, PingOutput, ShutdownOutput, parse_route, socket_path,
};

/// How long a call waits for its answer unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a call got no answer in its operation's shape.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket (no file, or a stale one).
    #[error("no autopatch daemon is running on {}", .socket.display())]
    NotRunning {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The daemon refused the operation.
    #[error("{service}/{operation} failed: {error}")]
    Api { service: String, operation: String, error: ApiError },
    #[error("failed to connect to the autopatch daemon on {}", .socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to call {service}/{operation} on {}", .socket.display())]
    Transport {
        socket: PathBuf,
        service: String,
        operation: String,
        #[source]
        source: hyper::Error,
    },
    #[error("{service:?}/{operation:?} is not an operation name (letters, digits and `-` only)")]
    InvalidName { service: String, operation: String },
    #[error("{service}/{operation} did not answer within {} s", .timeout.as_secs())]
    Timeout { service: String, operation: String, timeout: Duration },
    #[error("failed to encode the request of {service}/{operation}")]
    Encode {
        service: String,
        operation: String,
        #[source]
        source: serde_json::Error,
    },
    /// The answer is not the operation's response shape (or, with a failure
    /// status, not the error shape).
    #[error("the answer to {service}/{operation} (HTTP {status}) is not in the expected shape")]
    Decode {
        service: String,
        operation: String,
        status: u16,
        #[source]
        source: serde_json::Error,
    },
}

impl ClientError {
    /// What to do about it, when there is something to say.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            ClientError::NotRunning { .. } => Some("start it with `autopatch up`"),
            _ => None,
        }
    }

    /// Whether no daemon answers on the socket.
    pub fn is_not_running(&self) -> bool {
        matches!(self, ClientError::NotRunning { .. })
    }

    /// The daemon's refusal, if that is what this is.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A client of the daemon serving a state directory.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
}

impl Client {
    /// The client of the daemon of `state_dir` (`<state_dir>/autopatch.sock`).
    pub fn new(state_dir: &Path) -> Client {
        Client::with_socket(socket_path(state_dir))
    }

    pub fn with_socket(socket: PathBuf) -> Client {
        Client { socket, timeout: DEFAULT_TIMEOUT }
    }

    /// How long each call waits for its answer ([`DEFAULT_TIMEOUT`] unless set).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Calls `service`/`operation` with `input` (AWS's request shape) and
    /// reads the answer as `O` (its response shape).
    pub async fn call<I: Serialize, O: DeserializeOwned>(
        &self,
        service: &str,
        operation: &str,
        input: &I,
    ) -> Result<O, ClientError> {
        let path = format!("/{service}/{operation}");
        if parse_route(&path).is_none() {
            return Err(ClientError::InvalidName {
                service: service.to_owned(),
                operation: operation.to_owned(),
            });
        }
        let body = serde_json::to_vec(input).map_err(|source| ClientError::Encode {
            service: service.to_owned(),
            operation: operation.to_owned(),
            source,
        })?;
        let exchange = self.exchange(service, operation, &path, body);
        let (status, bytes) =
            tokio::time::timeout(self.timeout, exchange).await.map_err(|_| {
                ClientError::Timeout {
                    service: service.to_owned(),
                    operation: operation.to_owned(),
                    timeout: self.timeout,
                }
            })??;
        let decode_error = |source| ClientError::Decode {
            service: service.to_owned(),
            operation: operation.to_owned(),
            status: status.as_u16(),
            source,
        };
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(decode_error);
        }
        let ErrorBody { mut error } = serde_json::from_slice(&bytes).map_err(decode_error)?;
        error.status = status.as_u16();
        Err(ClientError::Api {
            service: service.to_owned(),
            operation: operation.to_owned(),
            error,
        })
    }

    /// `autopatch/Ping`: who serves, or [`ClientError::NotRunning`].
    pub async fn ping(&self) -> Result<PingOutput, ClientError> {
        self.call(DAEMON_SERVICE, "Ping", &serde_json::json!({})).await
    }

    /// `autopatch/Shutdown`: asks the daemon to stop; answers its pid at
    /// once, before it has stopped.
    pub async fn shutdown(&self) -> Result<ShutdownOutput, ClientError> {
        self.call(DAEMON_SERVICE, "Shutdown", &serde_json::json!({})).await
    }

    async fn exchange(
        &self,
        service: &str,
        operation: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|source| {
            use std::io::ErrorKind;
            match source.kind() {
                ErrorKind::NotFound | ErrorKind::ConnectionRefused => {
                    ClientError::NotRunning { socket: self.socket.clone(), source }
                }
                _ => ClientError::Connect { socket: self.socket.clone(), source },
            }
        })?;
        let transport = |source| ClientError::Transport {
            socket: self.socket.clone(),
            service: service.to_owned(),
            operation: operation.to_owned(),
            source,
        };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(transport)?;
        let driver = tokio::spawn(connection);
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = hyper::Uri::try_from(path)
            .expect("parse_route accepted the path: letters, digits, `-` and `/` only");
        request.headers_mut().insert(HOST, HeaderValue::from_static("localhost"));
        request.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let result = async {
            let response = sender.send_request(request).await?;
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            Ok((status, bytes))
        }
        .await
        .map_err(transport);
        driver.abort();
        result
    }
}
