//! Sending one request to one backend over a pooled HTTP/1.1 keep-alive
//! connection, and telling "never sent" apart from "failed after sending".
//!
//! Design notes:
//! - The pool is ours rather than hyper-util's legacy client so that a
//!   request whose connection could not be made comes back to the caller,
//!   who retries it on another target. A pooled connection found closed
//!   before the request was written (hyper's `TrySendError` hands the request
//!   back) is retried on a fresh connection to the same target.
//! - Upstream connections are not spawned as tasks: the client connection's
//!   task drives them ([`UpstreamConnection::drive`]) while it waits for the
//!   response and streams the body, as nginx handles both sockets in one
//!   event loop. That saves a task wake-up (often a thread wake-up) per
//!   request each way. An idle pooled connection is not polled at all; it is
//!   polled once when taken, which notices if the target closed it.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::registry::Backend;

/// How long a connect to a target may take before it counts as failed, when
/// no other target is left to try.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a connect may take when another target could take the request
/// instead. Targets are on this host (a container's published port): a
/// connect completes in well under a millisecond or its address has gone
/// (a killed container's port forward leads nowhere and the connect would
/// hang for seconds). Nothing was sent yet, so moving on is safe.
pub(crate) const FAILOVER_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);

type Driver = http1::Connection<TokioIo<TcpStream>, Incoming>;

/// One HTTP/1.1 connection to a target: the handle to send on and the
/// connection state machine, which whoever uses it must poll.
pub(crate) struct UpstreamConnection {
    sender: SendRequest<Incoming>,
    /// `None` once the connection has ended.
    driver: Option<Pin<Box<Driver>>>,
}

impl UpstreamConnection {
    /// Lets the connection do its I/O; registers `cx` for its readiness.
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(driver) = &mut self.driver
            && driver.as_mut().poll(cx).is_ready()
        {
            self.driver = None;
        }
    }

    /// Whether the connection can carry another request after this one.
    pub(crate) fn is_open(&self) -> bool {
        self.driver.is_some() && !self.sender.is_closed()
    }

    /// Waits until the connection can take a request; false if it has ended.
    async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            self.drive(cx);
            if self.driver.is_none() {
                return Poll::Ready(false);
            }
            self.sender.poll_ready(cx).map(|ready| ready.is_ok())
        })
        .await
    }

    /// Sends a request and waits for the response head, driving the connection.
    async fn exchange(
        &mut self,
        request: Request<Incoming>,
    ) -> Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<Incoming>>> {
        let response = self.sender.try_send_request(request);
        let mut response = std::pin::pin!(response);
        let driver = &mut self.driver;
        poll_fn(|cx| {
            if let Some(running) = driver
                && running.as_mut().poll(cx).is_ready()
            {
                // Dropping the ended connection fails a response still
                // waiting for it, so the poll below cannot hang.
                *driver = None;
            }
            response.as_mut().poll(cx)
        })
        .await
    }
}

/// Why an attempt on one backend did not produce a response.
pub(crate) enum AttemptError {
    /// Nothing was sent: the request may go to another target.
    NotSent(Box<Request<Incoming>>),
    /// The request was sent (at least in part) and the exchange failed.
    Failed,
}

/// A response and the connection it came on, to be driven while the body is
/// read and returned to the pool after.
pub(crate) struct Exchange {
    pub(crate) response: Response<Incoming>,
    pub(crate) connection: UpstreamConnection,
}

/// Sends `request` to `backend`, reusing an idle connection when one works,
/// else connecting within `connect_timeout`. A connection that cannot be
/// made is recorded on the backend ([`Backend::connection_failed`]).
pub(crate) async fn send(
    backend: &Backend,
    worker: usize,
    mut request: Request<Incoming>,
    connect_timeout: Duration,
) -> Result<Exchange, AttemptError> {
    while let Some(mut connection) = backend.take_idle(worker) {
        if !connection.ready().await {
            continue;
        }
        match connection.exchange(request).await {
            Ok(response) => return Ok(Exchange { response, connection }),
            Err(mut error) => match error.take_message() {
                Some(unsent) => request = unsent,
                None => return Err(AttemptError::Failed),
            },
        }
    }
    let connected =
        tokio::time::timeout(connect_timeout, TcpStream::connect(backend.target.addr)).await;
    let Ok(Ok(stream)) = connected else {
        backend.connection_failed();
        return Err(AttemptError::NotSent(Box::new(request)));
    };
    // Nagle only adds latency to small request/response exchanges.
    let _ = stream.set_nodelay(true);
    let Ok((sender, driver)) = http1::handshake(TokioIo::new(stream)).await else {
        backend.connection_failed();
        return Err(AttemptError::NotSent(Box::new(request)));
    };
    let mut connection = UpstreamConnection { sender, driver: Some(Box::pin(driver)) };
    match connection.exchange(request).await {
        Ok(response) => Ok(Exchange { response, connection }),
        Err(mut error) => match error.take_message() {
            Some(unsent) => Err(AttemptError::NotSent(Box::new(unsent))),
            None => Err(AttemptError::Failed),
        },
    }
}
