//! Sending one request to one backend over a pooled HTTP/1.1 keep-alive
//! connection, and telling "never sent" apart from "failed after sending".
//!
//! Design note: the pool is ours rather than hyper-util's legacy client so
//! that a request whose connection could not be made comes back to the
//! caller, who retries it on another target. A pooled connection that turns
//! out closed before the request was written (hyper's `TrySendError` hands
//! the request back) is retried on a fresh connection to the same target.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::registry::Backend;

/// How long a connect to a target may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why an attempt on one backend did not produce a response.
pub(crate) enum AttemptError {
    /// Nothing was sent: the request may go to another target.
    NotSent(Box<Request<Incoming>>),
    /// The request was sent (at least in part) and the exchange failed.
    Failed,
}

/// A response and the connection to return to the pool once its body is done.
pub(crate) struct Exchange {
    pub(crate) response: Response<Incoming>,
    pub(crate) sender: SendRequest<Incoming>,
}

/// Sends `request` to `backend`, reusing an idle connection when one works.
pub(crate) async fn send(
    backend: &Backend,
    mut request: Request<Incoming>,
) -> Result<Exchange, AttemptError> {
    while let Some(mut sender) = backend.take_idle() {
        if sender.is_closed() || sender.ready().await.is_err() {
            continue;
        }
        match sender.try_send_request(request).await {
            Ok(response) => return Ok(Exchange { response, sender }),
            Err(mut error) => match error.take_message() {
                Some(unsent) => request = unsent,
                None => return Err(AttemptError::Failed),
            },
        }
    }
    let connected =
        tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend.target.addr)).await;
    let Ok(Ok(stream)) = connected else { return Err(AttemptError::NotSent(Box::new(request))) };
    // Nagle only adds latency to small request/response exchanges.
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, connection)) = http1::handshake(TokioIo::new(stream)).await else {
        return Err(AttemptError::NotSent(Box::new(request)));
    };
    tokio::spawn(async move {
        // The connection ends when the target closes it or every sender is dropped.
        let _ = connection.await;
    });
    match sender.try_send_request(request).await {
        Ok(response) => Ok(Exchange { response, sender }),
        Err(mut error) => match error.take_message() {
            Some(unsent) => Err(AttemptError::NotSent(Box::new(unsent))),
            None => Err(AttemptError::Failed),
        },
    }
}
