//! The server over a real unix socket: routing, the error shape, bad
//! requests, Ping and Shutdown, the socket file's life.

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::sync::Arc;
use std::time::Duration;

use autopatch_daemon::{Client, ClientError, ServeError, Server, StopReason};
use serde_json::json;

use crate::support::{
    EchoInput, EchoOutput, TestOperations, config, post, raw, raw_unix, start, start_with,
};

#[tokio::test]
async fn an_operation_gets_its_json_body_and_answers_its_response_shape() {
    let server = start().await;
    let client = Client::new(server.state.path());
    let output: EchoOutput =
        client.call("test", "Echo", &EchoInput { name: "web".into(), count: 2 }).await.unwrap();
    assert_eq!(output, EchoOutput { greeting: "hello web x2".into() });
    assert_eq!(
        server.operations.calls(),
        vec![("test".into(), "Echo".into(), json!({"Name": "web", "Count": 2}))]
    );

    let response = raw_unix(&server.socket, &post("/test/Echo", r#"{"Name": "raw"}"#, "")).await;
    assert_eq!(response.status, 200);
    assert!(response.head.contains("content-type: application/json"), "{}", response.head);
    assert_eq!(response.body, json!({"Greeting": "hello raw x0"}));
}

#[tokio::test]
async fn an_empty_body_is_an_empty_request() {
    let server = start().await;
    let response = raw_unix(&server.socket, &post("/test/Other", "", "")).await;
    assert_eq!(response.status, 404);
    assert_eq!(server.operations.calls(), vec![("test".into(), "Other".into(), json!({}))]);
}

#[tokio::test]
async fn a_refusal_has_the_aws_error_shape_and_its_status() {
    let server = start().await;
    let response = raw_unix(&server.socket, &post("/test/Exists", "{}", "")).await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.body,
        json!({"Error": {"Code": "AlreadyExistsException", "Message": "stack web already exists"}})
    );

    let client = Client::new(server.state.path());
    let error =
        client.call::<_, serde_json::Value>("test", "Invalid", &json!({})).await.unwrap_err();
    let api = error.api_error().expect("the daemon's refusal");
    assert_eq!((api.status, api.code.as_str()), (400, "ValidationError"));
    assert_eq!(
        api.message,
        "/t/web.yml:3:5: error: unknown key \"Typo\"\n/t/web.yml:9:1: error: no resource \"Nope\"",
        "multi-line diagnostics arrive whole"
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused_with_its_line_and_column_and_runs_nothing() {
    let server = start().await;
    let body = "{\n  \"StackName\": \"web\",\n  \"Parameters\": [,]\n}";
    let response = raw_unix(&server.socket, &post("/cloudformation/CreateStack", body, "")).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.body["Error"]["Code"], "ValidationError");
    assert_eq!(
        response.body["Error"]["Message"],
        "the request body is not valid JSON: expected value at line 3 column 18"
    );
    assert!(server.operations.calls().is_empty());
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_refused_naming_the_field() {
    let server = start().await;
    let response =
        raw_unix(&server.socket, &post("/test/Echo", r#"{"Name": "web", "Count": "two"}"#, ""))
            .await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.body["Error"],
        json!({
            "Code": "ValidationError",
            "Message": "request of Echo is not valid: Count: invalid type: string \"two\", expected u32"
        })
    );
}

#[tokio::test]
async fn unknown_operations_are_refused_by_name() {
    let server = start().await;
    for (path, service, operation) in [
        ("/cloudformation/CreateChangeSet", "cloudformation", "CreateChangeSet"),
        ("/autopatch/Restart", "autopatch", "Restart"),
    ] {
        let response = raw_unix(&server.socket, &post(path, "{}", "")).await;
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(
            response.body["Error"],
            json!({
                "Code": "UnsupportedOperation",
                "Message": format!("operation {operation} of service {service} is not implemented by autopatch"),
            })
        );
    }
}

#[tokio::test]
async fn what_is_not_an_operation_call_is_refused_before_any_operation_runs() {
    let server = start().await;
    let response = raw_unix(
        &server.socket,
        "GET /cloudformation/ListStacks HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(response.status, 405);
    assert!(response.head.contains("allow: POST"), "{}", response.head);
    assert_eq!(response.body["Error"]["Code"], "MethodNotAllowed");

    let response = raw_unix(&server.socket, &post("/cloudformation", "{}", "")).await;
    assert_eq!(response.status, 404);
    assert_eq!(response.body["Error"]["Code"], "NotFound");

    let response =
        raw_unix(&server.socket, &post("/test/Echo", "{}", "Origin: http://evil.example\r\n"))
            .await;
    assert_eq!(response.status, 403);
    assert_eq!(response.body["Error"]["Code"], "AccessDenied");

    let big =
        format!("{{\"Name\": \"{}\"}}", "x".repeat(autopatch_daemon::protocol::MAX_REQUEST_BYTES));
    let response = raw_unix(&server.socket, &post("/test/Echo", &big, "")).await;
    assert_eq!(response.status, 413);

    assert!(server.operations.calls().is_empty());
}

#[tokio::test]
async fn ping_says_who_serves() {
    let server = start().await;
    let ping = Client::new(server.state.path()).ping().await.unwrap();
    assert_eq!(ping.pid, std::process::id());
    assert_eq!(ping.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(ping.state_dir, server.state.path().display().to_string());
    assert_eq!(ping.socket, server.socket.display().to_string());
    assert_eq!(ping.engine_endpoint, "unix:///test/engine.sock");
    assert_eq!(ping.listen, None);
    assert!(ping.problems.is_empty());
    assert!(server.operations.calls().is_empty(), "Ping is the server's own");

    // Recovery's open problems, as they stand at each Ping.
    let problem = "stack lb resource Listener: bind listener on 127.0.0.1:8080: in use".to_owned();
    server.operations.problems.lock().unwrap().push(problem.clone());
    let ping = Client::new(server.state.path()).ping().await.unwrap();
    assert_eq!(ping.problems, [problem]);
    server.operations.problems.lock().unwrap().clear();
    let ping = Client::new(server.state.path()).ping().await.unwrap();
    assert!(ping.problems.is_empty());
}

#[tokio::test]
async fn shutdown_answers_then_stops_the_server_and_removes_the_socket() {
    let server = start().await;
    let client = Client::new(server.state.path());
    let answer = client.shutdown().await.unwrap();
    assert_eq!(answer.pid, std::process::id());
    assert_eq!(server.task.await.unwrap(), StopReason::Requested);
    assert!(!server.socket.exists());
    let error = client.ping().await.unwrap_err();
    assert!(matches!(error, ClientError::NotRunning { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("no autopatch daemon is running on {}", server.socket.display())
    );
    assert_eq!(error.hint(), Some("start it with `autopatch up`"));
}

#[tokio::test]
async fn the_stop_future_stops_the_server() {
    let mut server = start().await;
    drop(server.stop.take());
    assert_eq!(server.task.await.unwrap(), StopReason::Stopped);
    assert!(!server.socket.exists());
}

#[tokio::test]
async fn a_request_in_flight_at_shutdown_is_answered() {
    let server = start().await;
    let operations = Arc::clone(&server.operations);
    let socket = server.socket.clone();
    let slow = tokio::spawn(async move { raw_unix(&socket, &post("/test/Slow", "{}", "")).await });
    operations.slow_started.notified().await;
    Client::new(server.state.path()).shutdown().await.unwrap();
    operations.slow_release.notify_one();
    let response = slow.await.unwrap();
    assert_eq!((response.status, response.body), (200, json!({"Done": true})));
    assert_eq!(server.task.await.unwrap(), StopReason::Requested);
}

#[tokio::test]
async fn a_client_that_hangs_up_does_not_cancel_its_operation() {
    let server = start().await;
    let operations = Arc::clone(&server.operations);
    let mut stream = tokio::net::UnixStream::connect(&server.socket).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, post("/test/Slow", "{}", "").as_bytes())
        .await
        .unwrap();
    operations.slow_started.notified().await;
    drop(stream);
    operations.slow_release.notify_one();
    // Completes only if the operation ran to its end.
    tokio::time::timeout(Duration::from_secs(60), operations.slow_finished.notified())
        .await
        .expect("the operation was cancelled with its connection");
}

#[tokio::test]
async fn the_socket_is_for_its_owner_only() {
    let server = start().await;
    let metadata = std::fs::symlink_metadata(&server.socket).unwrap();
    assert!(metadata.file_type().is_socket());
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(server.state.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, vec!["autopatch.sock".to_owned()], "no temporary socket left");
}

#[tokio::test]
async fn a_stale_socket_is_replaced_but_a_live_one_or_another_file_is_not() {
    let state = tempfile::tempdir().unwrap();
    let socket = autopatch_daemon::socket_path(state.path());
    let operations = Arc::new(TestOperations::default());

    // A live socket: someone answers on it.
    let live = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let error = Server::bind(config(state.path()), Arc::clone(&operations)).await.unwrap_err();
    assert!(matches!(error, ServeError::SocketInUse { .. }), "{error:?}");
    // A stale one: the file of a listener that is gone.
    drop(live);
    assert!(socket.exists());
    let server = Server::bind(config(state.path()), Arc::clone(&operations)).await.unwrap();
    let task = tokio::spawn(server.run(std::future::pending()));
    let ping = Client::new(state.path()).ping().await.unwrap();
    assert_eq!(ping.pid, std::process::id());
    Client::new(state.path()).shutdown().await.unwrap();
    task.await.unwrap();

    std::fs::write(&socket, "not a socket").unwrap();
    let error = Server::bind(config(state.path()), operations).await.unwrap_err();
    assert!(matches!(error, ServeError::NotASocket { .. }), "{error:?}");
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "not a socket");
}

#[tokio::test]
async fn a_socket_path_too_long_for_unix_sockets_is_refused_clearly() {
    let state = tempfile::tempdir().unwrap();
    let deep = state.path().join("d".repeat(110));
    std::fs::create_dir(&deep).unwrap();
    let error = Server::bind(config(&deep), Arc::new(TestOperations::default())).await.unwrap_err();
    assert!(matches!(error, ServeError::SocketPathTooLong { .. }), "{error:?}");
    assert!(error.to_string().contains("use a shorter --state-dir"), "{error}");
}

#[tokio::test]
async fn listen_serves_on_loopback_tcp_too_and_refuses_other_addresses() {
    let server = start_with(|config| config.listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let address = server.tcp.expect("a bound TCP address");
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let response = raw(stream, &post("/autopatch/Ping", "", "")).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body["Listen"], address.to_string());
    assert_eq!(response.body["Pid"], std::process::id());

    for address in ["0.0.0.0:0", "192.0.2.1:8080", "[::]:0"] {
        let state = tempfile::tempdir().unwrap();
        let mut config = config(state.path());
        config.listen = Some(address.parse().unwrap());
        let error = Server::bind(config, Arc::new(TestOperations::default())).await.unwrap_err();
        assert!(matches!(error, ServeError::NotLoopback { .. }), "{address}: {error:?}");
        assert!(!autopatch_daemon::socket_path(state.path()).exists(), "{address}");
    }
}
