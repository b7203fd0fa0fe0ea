//! Connecting: finding the socket, reporting the engine, and saying how to
//! start one when nothing answers.

use autopatch_engine::{DockerEngine, Engine, EngineError};

use crate::support::{TestResult, engine};

#[tokio::test]
async fn connect_finds_the_engine_and_reports_what_it_is() -> TestResult {
    let engine = engine().await?;
    let info = engine.info().await?;
    assert!(["podman", "docker"].contains(&info.product.as_str()), "{info:?}");
    assert!(!info.version.is_empty() && !info.api_version.is_empty(), "{info:?}");
    assert_eq!(info.endpoint, engine.endpoint());
    assert!(info.endpoint.starts_with("unix://") || info.endpoint.starts_with("tcp://"));
    Ok(())
}

#[tokio::test]
async fn a_missing_socket_is_unreachable_and_says_how_to_start_podman() {
    let error = DockerEngine::connect_to("unix:///nonexistent.sock").await.expect_err("no engine");
    assert!(matches!(error, EngineError::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("podman system service"), "{message}");
    assert!(message.contains("unix:///nonexistent.sock"), "{message}");
}

#[tokio::test]
async fn a_closed_tcp_port_is_unreachable() {
    let error = DockerEngine::connect_to("tcp://127.0.0.1:1").await.expect_err("no engine");
    assert!(matches!(error, EngineError::Unreachable { .. }), "{error:?}");
}
