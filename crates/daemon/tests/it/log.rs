//! The daemon's log on a fake engine: what happens to stacks and instances
//! is in it, with its fields (a resource failure with its reason, an
//! instance replaced after its container exited), not only the requests.
//!
//! The log is the process's: these lines are read from [`log_to`]'s writer,
//! which every test of this binary writes to from then on, so each test
//! picks its lines out by its stack names.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use autopatch_daemon::{Client, DaemonConfig, DaemonError, StopReason, log_to, serve_with_engine};
use autopatch_engine::{ContainerSpec, ContainerState, Engine, FakeEngine, FaultKind, Operation};
use autopatch_model::Timestamp;
use autopatch_stacks::ListenerPorts;
use autopatch_stacks::api::{CreateStackInput, CreateStackOutput, DescribeStacksInput};
use autopatch_store::{HealthStatus, InstanceRow, LifecycleState};
use serde_json::Value;

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process's log, captured from the first call on.
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        log_to(capture.clone());
        capture
    })
}

impl Capture {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap()).lines().map(str::to_owned).collect()
    }

    /// Waits (bounded) until a line has every one of `parts`; returns it.
    async fn wait_for(&self, parts: &[&str]) -> String {
        self.wait_for_lines(parts, 1).await.remove(0)
    }

    /// Waits (bounded) until `count` lines have every one of `parts`;
    /// returns them, oldest first.
    async fn wait_for_lines(&self, parts: &[&str], count: usize) -> Vec<String> {
        for _ in 0..600 {
            let lines: Vec<String> = self
                .lines()
                .into_iter()
                .filter(|line| parts.iter().all(|part| line.contains(part)))
                .collect();
            if lines.len() >= count {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "fewer than {count} log lines have all of {parts:?}; the log:\n{}",
            self.lines().join("\n")
        );
    }
}

/// A VPC: its engine network fails when the test says so.
const NETWORK: &str = r#"
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: 10.9.0.0/16
"#;

/// One instance, replaced when its container exits.
const ONE_INSTANCE: &str = r#"
Resources:
  Launch:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: localhost/app:1
      InstanceType: t3.micro
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      LaunchConfigurationName: !Ref Launch
      MinSize: 1
      MaxSize: 1
      DesiredCapacity: 1
      HealthCheckType: EC2
"#;

/// A daemon on `state` and `engine`, running until a client asks it to stop.
fn start(
    state: &Path,
    engine: &Arc<FakeEngine>,
) -> tokio::task::JoinHandle<Result<StopReason, DaemonError>> {
    let config = DaemonConfig {
        state_dir: state.to_path_buf(),
        listener_ports: ListenerPorts::Free,
        listen: None,
    };
    tokio::spawn(serve_with_engine(
        config,
        Arc::clone(engine),
        "fake://engine".into(),
        std::future::pending(),
    ))
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

async fn create(client: &Client, name: &str, body: &str) -> String {
    let input = CreateStackInput {
        stack_name: name.into(),
        template_body: Some(body.into()),
        ..Default::default()
    };
    let created: CreateStackOutput =
        client.call("cloudformation", "CreateStack", &input).await.unwrap();
    created.stack_id
}

/// Waits (bounded) until the stack's operation ends; returns its status.
async fn settled(client: &Client, stack_id: &str) -> String {
    for _ in 0..600 {
        let input = DescribeStacksInput { stack_name: Some(stack_id.into()) };
        let stacks: Value = client.call("cloudformation", "DescribeStacks", &input).await.unwrap();
        let status = stacks["Stacks"][0]["StackStatus"].as_str().unwrap().to_owned();
        if !status.ends_with("_IN_PROGRESS") {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("stack {stack_id} never settled");
}

/// The fake's running instance containers.
fn running_instances(engine: &FakeEngine) -> Vec<(String, String)> {
    engine
        .containers()
        .into_iter()
        .filter(|container| container.state == ContainerState::Running)
        .filter_map(|container| {
            let instance = container.labels.get("autopatch.instance")?.clone();
            Some((container.id, instance))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_failures_and_instance_replacements_are_in_the_log() {
    let capture = capture();
    let state = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::new());
    engine.add_image("localhost/app:1");
    let daemon = start(state.path(), &engine);
    let client = Client::new(state.path());
    ready(&client).await;
    // The first line, before the engine: a daemon that cannot start says it tried.
    let state_dir = format!("state_dir={}", state.path().display());
    let starting = capture.wait_for(&["msg=starting", &state_dir]).await;
    assert!(starting.contains(" level=info "), "{starting}");
    assert!(starting.contains(&format!("pid={}", std::process::id())), "{starting}");
    let socket = format!("socket={}", client.socket_path().display());
    capture.wait_for(&["msg=listening", &socket]).await;

    // A resource fails: the line names the stack, the resource and the whole reason.
    engine.fail_next(Operation::NetworkEnsure, FaultKind::Unreachable);
    let broken = create(&client, "log-broken", NETWORK).await;
    assert_eq!(settled(&client, &broken).await, "ROLLBACK_COMPLETE");
    let failed = capture
        .wait_for(&["level=warn msg=\"resource failed\" stack=log-broken logical_id=Vpc"])
        .await;
    assert!(failed.contains("status=CREATE_FAILED"), "{failed}");
    assert!(failed.contains("reason=\"create engine network autopatch-vpc-"), "{failed}");
    capture.wait_for(&["msg=\"stack status\" stack=log-broken status=ROLLBACK_COMPLETE"]).await;

    // An instance launches; its container exits; the group replaces it.
    let web = create(&client, "log-web", ONE_INSTANCE).await;
    assert_eq!(settled(&client, &web).await, "CREATE_COMPLETE");
    let launched = capture.wait_for(&["msg=\"instance launched\" stack=log-web"]).await;
    let (container, first) = loop {
        if let Some(running) = running_instances(&engine).into_iter().next() {
            break running;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(launched.contains(&format!("instance={first}")), "{launched}");
    engine.kill(&container, 137).unwrap();
    let unhealthy = capture
        .wait_for(&["level=warn", "stack=log-web", &format!("instance={first}"), "unhealthy"])
        .await;
    assert!(unhealthy.contains("reason=\"an EC2 health check indicated the instance stopped (its container exited with 137)\""), "{unhealthy}");
    capture
        .wait_for(&["msg=\"instance terminated\" stack=log-web", &format!("instance={first}")])
        .await;
    let launches = capture.wait_for_lines(&["msg=\"instance launched\" stack=log-web"], 2).await;
    let replacement = &launches[1];
    assert!(!replacement.contains(&format!("instance={first}")), "{replacement}");

    client.shutdown().await.unwrap();
    daemon.await.unwrap().unwrap();
}

/// A load balancer in front of one instance.
const BALANCED: &str = r#"
Resources:
  Balancer:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
  Targets:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Port: 80
      Protocol: HTTP
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
      ImageId: localhost/app:1
      InstanceType: t3.micro
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
"#;

/// An instance row in service in `group`, its container `container_id`.
fn in_service(instance_id: &str, group: &str, container_id: &str) -> InstanceRow {
    InstanceRow {
        instance_id: instance_id.into(),
        group_name: group.into(),
        stack_id: None,
        launch_config: "log-recovered-Launch-1".into(),
        image: "localhost/app:1".into(),
        engine_image_id: "sha256:0".into(),
        instance_type: "t3.micro".into(),
        zone: "local-a".into(),
        subnet: None,
        lifecycle: LifecycleState::InService,
        health: HealthStatus::Healthy,
        target_health: None,
        container_id: Some(container_id.into()),
        private_ip: None,
        host_port: None,
        reason: None,
        launched_at: Timestamp(0),
        updated_at: Timestamp(0),
        terminated_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_is_in_the_log_adoption_orphans_and_a_listener_that_binds_later() {
    let capture = capture();
    let state = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::new());
    engine.add_image("localhost/app:1");
    let daemon = start(state.path(), &engine);
    let client = Client::new(state.path());
    ready(&client).await;
    let stack = create(&client, "log-recovered", BALANCED).await;
    assert_eq!(settled(&client, &stack).await, "CREATE_COMPLETE");
    let input = DescribeStacksInput { stack_name: Some(stack.clone()) };
    let stacks: Value = client.call("cloudformation", "DescribeStacks", &input).await.unwrap();
    let address = stacks["Stacks"][0]["Outputs"][0]["OutputValue"].as_str().unwrap().to_owned();
    let launched = capture.wait_for(&["msg=\"instance launched\" stack=log-recovered"]).await;
    let instance = launched.split(' ').find(|field| field.starts_with("instance=")).unwrap();
    client.shutdown().await.unwrap();
    daemon.await.unwrap().unwrap();

    // While no daemon runs: another process takes the listener's port, and an
    // instance container of this state directory appears that no row knows.
    let squatter = std::net::TcpListener::bind(&address).unwrap();
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("autopatch.role".to_owned(), "instance".to_owned());
    labels.insert("autopatch.instance".to_owned(), "i-0000000000000dead".to_owned());
    labels.insert("autopatch.group".to_owned(), "log-recovered-Gone-1".to_owned());
    let instances = std::path::absolute(state.path().join("instances")).unwrap();
    labels.insert("autopatch.fleet".to_owned(), instances.display().to_string());
    let spec = ContainerSpec {
        name: Some("autopatch-i-0000000000000dead".into()),
        image: "localhost/app:1".into(),
        labels,
        ..ContainerSpec::default()
    };
    engine.container_create(&spec).await.unwrap();
    // And an instance the store has in service in a group that is gone: its
    // container is removed and its row terminated.
    let mut labels = spec.labels.clone();
    labels.insert("autopatch.instance".to_owned(), "i-0000000000000beef".to_owned());
    labels.insert("autopatch.group".to_owned(), "log-recovered-Gone-2".to_owned());
    let spec = ContainerSpec { name: Some("autopatch-i-0000000000000beef".into()), labels, ..spec };
    let container = engine.container_create(&spec).await.unwrap();
    let store = autopatch_store::Store::open(&state.path().join("autopatch.db")).unwrap();
    store
        .insert_instance(&in_service("i-0000000000000beef", "log-recovered-Gone-2", &container.id))
        .unwrap();
    drop(store);

    let daemon = start(state.path(), &engine);
    let client = Client::new(state.path());
    ready(&client).await;
    let adopted =
        capture.wait_for(&["msg=\"instance adopted\" stack=log-recovered", instance]).await;
    assert!(adopted.starts_with("ts=") && adopted.contains(" level=info "), "{adopted}");
    capture
        .wait_for(&[
            "msg=\"orphaned instance container removed\"",
            "instance=i-0000000000000dead",
            "reason=",
        ])
        .await;
    let removed = capture
        .wait_for(&["msg=\"orphaned instance removed\"", "instance=i-0000000000000beef"])
        .await;
    assert!(removed.contains(" container=autopatch-i-0000000000000beef "), "{removed}");
    assert!(
        removed.contains("reason=\"its Auto Scaling group log-recovered-Gone-2 is gone\""),
        "{removed}"
    );
    // Every termination ends with `instance terminated`, this one too.
    let lines = capture.lines();
    let removed_at = lines.iter().position(|line| *line == removed).unwrap();
    let terminated =
        capture.wait_for(&["msg=\"instance terminated\"", "instance=i-0000000000000beef"]).await;
    assert!(terminated.contains(" group=log-recovered-Gone-2 "), "{terminated}");
    let terminated_at = capture.lines().iter().position(|line| *line == terminated).unwrap();
    assert!(terminated_at > removed_at, "terminated after removed:\n{removed}\n{terminated}");
    let pending = capture
        .wait_for(&["level=warn", "not recovered yet", "stack log-recovered resource Listener"])
        .await;
    assert!(pending.contains(&address), "{pending}");

    // The port is free again: the listener binds, and the log says so.
    drop(squatter);
    capture
        .wait_for(&[
            "msg=\"resource recovered\" stack=log-recovered logical_id=Listener",
            "resource_type=AWS::ElasticLoadBalancingV2::Listener",
        ])
        .await;
    capture.wait_for(&["msg=\"load balancer listening\"", &format!("address={address}")]).await;
    assert!(client.ping().await.unwrap().problems.is_empty());

    client.shutdown().await.unwrap();
    daemon.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_resumed_after_a_crash_is_in_the_log() {
    let capture = capture();
    let state = tempfile::tempdir().unwrap();
    // What a daemon killed (kill -9) while creating the VPC leaves: the
    // stack in progress, the resource's physical id chosen.
    let store = autopatch_store::Store::open(&state.path().join("autopatch.db")).unwrap();
    let now = Timestamp::from_millis(1_795_524_896_789);
    let stack_id = "arn:aws:cloudformation:local:000000000000:stack/log-resumed/1".to_owned();
    store
        .insert_stack(&autopatch_store::StackRow {
            stack_id: stack_id.clone(),
            name: "log-resumed".into(),
            status: autopatch_model::StackStatus::CreateInProgress,
            status_reason: Some("User Initiated".into()),
            template_body: NETWORK.into(),
            template_source: "net.yml".into(),
            parameters: "{}".into(),
            outputs: "[]".into(),
            imports: "[]".into(),
            disable_rollback: false,
            client_token: None,
            previous_template_body: None,
            previous_template_source: None,
            previous_parameters: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        })
        .unwrap();
    store
        .put_stack_resource(&autopatch_store::StackResourceRow {
            stack_id: stack_id.clone(),
            logical_id: "Vpc".into(),
            resource_type: "AWS::EC2::VPC".into(),
            physical_id: Some("vpc-00000000000000001".into()),
            status: autopatch_model::ResourceStatus::CreateInProgress,
            status_reason: None,
            properties: "{}".into(),
            attributes: "{}".into(),
            replaced: None,
            updated_at: now,
        })
        .unwrap();
    drop(store);

    let engine = Arc::new(FakeEngine::new());
    let daemon = start(state.path(), &engine);
    let client = Client::new(state.path());
    ready(&client).await;
    let resumed = capture
        .wait_for(&[
            "level=info msg=\"resuming the operation the previous daemon left in progress\"",
            "stack=log-resumed",
        ])
        .await;
    assert!(resumed.contains(" operation=create status=CREATE_IN_PROGRESS"), "{resumed}");
    assert_eq!(settled(&client, &stack_id).await, "CREATE_COMPLETE");
    capture.wait_for(&["msg=\"stack status\" stack=log-resumed status=CREATE_COMPLETE"]).await;
    // Said once, before the operation's own lines.
    let lines = capture.lines();
    let at = |parts: &[&str]| {
        lines.iter().position(|line| parts.iter().all(|part| line.contains(part))).unwrap()
    };
    assert!(
        at(&["msg=\"resuming", "stack=log-resumed"])
            < at(&["stack=log-resumed status=CREATE_COMPLETE"])
    );
    assert_eq!(
        lines
            .iter()
            .filter(|line| line.contains("msg=\"resuming"))
            .filter(|line| line.contains("stack=log-resumed"))
            .count(),
        1
    );

    client.shutdown().await.unwrap();
    daemon.await.unwrap().unwrap();
}
