//! A minimal HTTP/1.1 backend for benchmarks: answers every request with 200
//! and the lab's fixed page. Usage: `bench_backend <listen address>`.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const PAGE: &[u8] = b"<html>Welcome to Re:Invent 2020 The Well Architected Way<html>\n";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen: SocketAddr =
        std::env::args().nth(1).ok_or("usage: bench_backend <listen address>")?.parse()?;
    let listener = TcpListener::bind(listen).await?;
    writeln!(std::io::stderr(), "bench_backend: listening on {}", listener.local_addr()?)?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_request| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(PAGE))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
