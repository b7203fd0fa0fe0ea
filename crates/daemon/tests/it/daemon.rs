//! The daemon's whole life on a fake engine: it takes the state directory,
//! answers Ping, refuses a second daemon, and lets go of everything when
//! asked to stop.

use std::sync::Arc;
use std::time::Duration;

use autopatch_daemon::{
    Client, DaemonConfig, DaemonError, InstanceError, InstanceLock, StopReason, read_pid,
    serve_with_engine,
};
use autopatch_engine::{ContainerSpec, Engine as _, FakeEngine};
use autopatch_stacks::ListenerPorts;

fn config(state: &std::path::Path) -> DaemonConfig {
    DaemonConfig {
        state_dir: state.to_path_buf(),
        listener_ports: ListenerPorts::Free,
        listen: None,
    }
}

/// Waits until the daemon answers (it binds after opening the store and the
/// service).
async fn wait_for_ping(client: &Client) -> autopatch_daemon::PingOutput {
    for _ in 0..600 {
        if let Ok(ping) = client.ping().await {
            return ping;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the daemon never answered on {}", client.socket_path().display());
}

#[tokio::test]
async fn the_daemon_serves_its_state_directory_alone_and_lets_go_of_it_when_shut_down() {
    let state = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::new());
    let daemon = tokio::spawn(serve_with_engine(
        config(state.path()),
        Arc::clone(&engine),
        "fake://engine".into(),
        std::future::pending(),
    ));
    let client = Client::new(state.path());
    let ping = wait_for_ping(&client).await;
    assert_eq!(ping.engine_endpoint, "fake://engine");
    assert_eq!(ping.pid, std::process::id());
    assert_eq!(read_pid(state.path()), Some(std::process::id()));
    assert!(state.path().join("autopatch.db").exists(), "the store is opened in the state dir");

    let second = serve_with_engine(
        config(state.path()),
        Arc::clone(&engine),
        "fake://engine".into(),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&second, DaemonError::Instance(InstanceError::AlreadyRunning { pid: Some(pid), .. }) if *pid == std::process::id()),
        "{second:?}"
    );
    assert_eq!(second.hint(), Some("stop it with `autopatch down`, or use another --state-dir"));
    assert!(client.ping().await.is_ok(), "the refused daemon touched nothing of the running one");

    client.shutdown().await.unwrap();
    assert_eq!(daemon.await.unwrap().unwrap(), StopReason::Requested);
    assert!(!autopatch_daemon::socket_path(state.path()).exists());
    assert_eq!(read_pid(state.path()), None);
    drop(InstanceLock::acquire(state.path()).expect("the lock is free again"));
}

#[tokio::test]
async fn a_non_loopback_listen_address_is_refused_before_anything_is_touched() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().join("fresh");
    let mut config = config(&dir);
    config.listen = Some("0.0.0.0:9000".parse().unwrap());
    let error = serve_with_engine(
        config,
        Arc::new(FakeEngine::new()),
        "fake://engine".into(),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().starts_with("refusing to listen on 0.0.0.0:9000"), "{error}");
    assert!(!dir.exists());
}

#[tokio::test]
async fn a_taken_listen_address_fails_the_start_before_recovery_changes_anything() {
    let state = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::new());
    engine.add_image("localhost/app:1");
    // An instance container of this state directory that no row knows:
    // recovery removes such an orphan.
    let instances = std::path::absolute(state.path().join("instances")).unwrap();
    let labels = [
        ("autopatch.role", "instance"),
        ("autopatch.instance", "i-0000000000000beef"),
        ("autopatch.group", "gone-Group-1"),
        ("autopatch.fleet", &instances.display().to_string()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    let spec = ContainerSpec {
        name: Some("autopatch-i-0000000000000beef".into()),
        image: "localhost/app:1".into(),
        labels,
        ..ContainerSpec::default()
    };
    let orphan = engine.container_create(&spec).await.unwrap().id;
    let calls_before = engine.calls().len();

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let mut config = config(state.path());
    config.listen = Some(address);
    let error = serve_with_engine(
        config,
        Arc::clone(&engine),
        "fake://engine".into(),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.to_string(), format!("failed to listen on {address}"));

    // Nothing was recovered: the engine was not even asked, and the store
    // was not opened.
    assert_eq!(engine.calls().len(), calls_before, "{:?}", &engine.calls()[calls_before..]);
    assert!(engine.containers().iter().any(|container| container.id == orphan));
    assert!(!state.path().join("autopatch.db").exists());
    // And nothing of a daemon is left behind.
    assert!(!autopatch_daemon::socket_path(state.path()).exists());
    assert_eq!(read_pid(state.path()), None);
    drop(InstanceLock::acquire(state.path()).expect("the lock is free again"));
}
