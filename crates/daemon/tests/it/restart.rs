//! A daemon restart on real Podman, with a stack's load balancer in front
//! of a webapp instance: while the new daemon connects to the engine (held
//! by the test until it has connected to the load balancer), the load
//! balancer's port is already bound, so the client is not refused; its
//! request waits in the backlog and is answered 200 by the adopted target
//! once recovery opens the listener on that socket.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use autopatch_daemon::{Client, DaemonConfig, serve_connecting, serve_with_engine};
use autopatch_engine::{DockerEngine, EngineError};
use autopatch_stacks::ListenerPorts;
use autopatch_stacks::api::{
    CreateStackInput, CreateStackOutput, DeleteStackInput, DescribeStacksInput,
};
use autopatch_store::Store;
use autopatch_testkit::WEBAPP;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A load balancer in front of one webapp instance, health checked every
/// 2 s.
fn template() -> String {
    format!(
        r#"
Resources:
  Balancer:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
  Targets:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Port: 80
      Protocol: HTTP
      HealthCheckIntervalSeconds: 2
      HealthCheckTimeoutSeconds: 2
      HealthyThresholdCount: 2
      TargetGroupAttributes:
        - Key: deregistration_delay.timeout_seconds
          Value: "1"
  Listener:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Balancer
      Port: 80
      Protocol: HTTP
      DefaultActions:
        - Type: forward
          TargetGroupArn: !Ref Targets
  Launch:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: {WEBAPP}
      InstanceType: t3.micro
      UserData:
        Fn::Base64: |
          #!/bin/bash
          apache2ctl start
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      LaunchConfigurationName: !Ref Launch
      MinSize: 1
      MaxSize: 1
      DesiredCapacity: 1
      TargetGroupARNs: [!Ref Targets]
Outputs:
  Url:
    Value: !GetAtt Balancer.DNSName
"#
    )
}

fn config(state: &Path) -> DaemonConfig {
    DaemonConfig {
        state_dir: state.to_path_buf(),
        listener_ports: ListenerPorts::Free,
        listen: None,
    }
}

/// Waits (bounded) until the daemon answers.
async fn ready(client: &Client) {
    for _ in 0..600 {
        if client.ping().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the daemon never answered on {}", client.socket_path().display());
}

/// Waits (bounded) until the stack's operation ends; returns the stack.
async fn settled(client: &Client, stack_id: &str) -> Value {
    for _ in 0..1200 {
        let input = DescribeStacksInput { stack_name: Some(stack_id.into()) };
        let mut stacks: Value =
            client.call("cloudformation", "DescribeStacks", &input).await.unwrap();
        let stack = stacks["Stacks"][0].take();
        if !stack["StackStatus"].as_str().unwrap().ends_with("_IN_PROGRESS") {
            return stack;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("stack {stack_id} never settled");
}

/// Waits (bounded) until the store records the instance healthy in its
/// target group: what the next daemon reads to put it in service at once.
async fn recorded_healthy(state: &Path) {
    let store = Store::open(&state.join("autopatch.db")).unwrap();
    for _ in 0..300 {
        let live = store.live_instances().unwrap();
        if live.len() == 1 && live[0].target_health.as_deref() == Some("healthy") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the store never recorded the instance healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_balancer_client_waits_while_the_restarted_daemon_connects_to_the_engine() {
    let engine = autopatch_testkit::engine().await;
    autopatch_testkit::ensure_webapp(&engine).await;
    let state = tempfile::tempdir().unwrap();
    let client = Client::new(state.path());

    let daemon = tokio::spawn(serve_with_engine(
        config(state.path()),
        Arc::clone(&engine),
        "podman".into(),
        std::future::pending(),
    ));
    ready(&client).await;
    let input = CreateStackInput {
        stack_name: "restart-web".into(),
        template_body: Some(template()),
        ..Default::default()
    };
    let created: CreateStackOutput =
        client.call("cloudformation", "CreateStack", &input).await.unwrap();
    let stack = settled(&client, &created.stack_id).await;
    assert_eq!(stack["StackStatus"], "CREATE_COMPLETE", "{stack}");
    let address = stack["Outputs"][0]["OutputValue"].as_str().unwrap().to_owned();
    recorded_healthy(state.path()).await;
    client.shutdown().await.unwrap();
    daemon.await.unwrap().unwrap();
    let refused = tokio::net::TcpStream::connect(&address).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "no daemon: {refused}");

    // The next daemon gets to the engine connection, which the test holds.
    let (connecting, connecting_seen) = tokio::sync::oneshot::channel::<()>();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let connect = {
        let engine = Arc::clone(&engine);
        async move {
            let _ = connecting.send(());
            let _ = released.await;
            Ok::<_, EngineError>((engine, "podman".to_owned()))
        }
    };
    let daemon = tokio::spawn(serve_connecting::<DockerEngine>(
        config(state.path()),
        connect,
        std::future::pending(),
    ));
    connecting_seen.await.expect("the daemon connects to the engine");
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("the load balancer's port is bound before the engine is connected");
    let request = format!("GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();

    // Recovery runs once the engine is there, and the waiting request is
    // served by the adopted target.
    release.send(()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    ready(&client).await;
    assert!(client.ping().await.unwrap().problems.is_empty());

    let input = DeleteStackInput { stack_name: "restart-web".into(), ..Default::default() };
    let _: Value = client.call("cloudformation", "DeleteStack", &input).await.unwrap();
    let deleted = settled(&client, &created.stack_id).await;
    assert_eq!(deleted["StackStatus"], "DELETE_COMPLETE", "{deleted}");
    client.shutdown().await.unwrap();
    daemon.await.unwrap().unwrap();
}
