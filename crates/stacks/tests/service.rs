//! The stack service against the recording fake engine: bad input is
//! refused whole and changes nothing; creates, deletes and rollbacks write
//! CloudFormation's statuses and events; an operation left in progress by a
//! dead daemon is resumed by the next one.

use std::sync::Arc;
use std::time::Duration;

use autopatch_engine::{FakeEngine, FaultKind, Operation};
use autopatch_model::{ResourceStatus, StackStatus, Timestamp};
use autopatch_stacks::api::*;
use autopatch_stacks::{ListenerPorts, ServiceConfig, StackService};
use autopatch_store::{StackResourceRow, StackRow, Store};

struct Sim {
    _dir: tempfile::TempDir,
    engine: Arc<FakeEngine>,
    service: Arc<StackService<FakeEngine>>,
}

fn config(dir: &std::path::Path) -> ServiceConfig {
    ServiceConfig {
        state_dir: dir.to_owned(),
        region: "local".into(),
        account_id: "000000000000".into(),
        listener_ports: ListenerPorts::Free,
        load_balancer_threads: 0,
        fleet_interval: Duration::from_millis(100),
    }
}

impl Sim {
    async fn new() -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(FakeEngine::new());
        let store = Arc::new(Store::open(&dir.path().join("autopatch.db")).unwrap());
        let service =
            StackService::open(config(dir.path()), engine.clone(), store.clone()).await.unwrap();
        Sim { _dir: dir, engine, service }
    }

    async fn create(
        &self,
        name: &str,
        body: &str,
        parameters: &[(&str, &str)],
    ) -> Result<Stack, ApiError> {
        let input = CreateStackInput {
            stack_name: name.into(),
            template_body: Some(body.into()),
            parameters: parameters
                .iter()
                .map(|(key, value)| Parameter {
                    parameter_key: (*key).into(),
                    parameter_value: Some((*value).into()),
                    use_previous_value: None,
                })
                .collect(),
            ..Default::default()
        };
        let created = self.service.create_stack(input).await?;
        self.service.wait_idle(&created.stack_id).await;
        Ok(self.describe(&created.stack_id))
    }

    fn describe(&self, name: &str) -> Stack {
        self.service
            .describe_stacks(DescribeStacksInput { stack_name: Some(name.into()) })
            .unwrap()
            .stacks
            .remove(0)
    }

    /// `(logical id, status)` of every event, oldest first.
    fn events(&self, name: &str) -> Vec<(String, String)> {
        let mut events = self
            .service
            .describe_stack_events(DescribeStackEventsInput { stack_name: name.into() })
            .unwrap()
            .stack_events;
        events.reverse();
        events.into_iter().map(|event| (event.logical_resource_id, event.resource_status)).collect()
    }

    fn nothing_created(&self) {
        assert!(self.service.list_stacks(Default::default()).unwrap().stack_summaries.is_empty());
        let reads = ["ContainerList", "ContainerInspect", "ImageInspect", "Info"];
        let changes: Vec<String> = self
            .engine
            .calls()
            .iter()
            .map(|call| format!("{call:?}"))
            .filter(|call| !reads.iter().any(|read| call.starts_with(read)))
            .collect();
        assert!(changes.is_empty(), "engine changes: {changes:?}");
    }
}

const NETWORK: &str = r#"
Parameters:
  Env:
    Type: String
    AllowedValues: [dev, prod]
    Default: dev
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: 172.31.0.0/16
  Subnet:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: 172.31.1.0/24
      AvailabilityZone: !Select [1, !GetAZs '']
Outputs:
  SubnetZone:
    Value: !GetAtt Subnet.AvailabilityZone
  SubnetId:
    Value: !Ref Subnet
    Export:
      Name: !Sub '${AWS::StackName}-${Env}-Subnet'
"#;

#[tokio::test]
async fn bad_templates_are_refused_whole_with_positions_and_create_nothing() {
    let sim = Sim::new().await;
    let cases = [
        (
            "Resources:\n  Bucket:\n    Type: AWS::SQS::Queue\n",
            "template:3:11: error: found the unsupported resource type `AWS::SQS::Queue`",
        ),
        (
            // Known to the template frontend, not (yet) to local stacks.
            "Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n",
            "template:3:11: error: resource type AWS::S3::Bucket is not supported by local stacks; supported: AWS::AutoScaling::AutoScalingGroup",
        ),
        (
            "Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: !Ref Nowhere\n",
            "template:5:",
        ),
        (
            "Resources:\n  A:\n    Type: AWS::EC2::VPC\n    DependsOn: B\n  B:\n    Type: AWS::EC2::VPC\n    DependsOn: A\n",
            "circular",
        ),
        (
            "Resources:\n  Sg:\n    Type: AWS::EC2::SecurityGroup\n    Properties:\n      GroupDescription: x\n      VpcId: !ImportValue base-VpcId\n",
            "template:6:14: error: No export named base-VpcId found",
        ),
    ];
    for (body, expected) in cases {
        let error = sim.create("bad", body, &[]).await.unwrap_err();
        assert_eq!(error.code, "ValidationError");
        assert!(
            error.message.to_lowercase().contains(&expected.to_lowercase()),
            "{expected:?} not in:\n{}",
            error.message
        );
    }
    let error = sim.create("bad", NETWORK, &[("Env", "staging")]).await.unwrap_err();
    assert!(error.message.contains("Env") && error.message.contains("dev"), "{}", error.message);
    let error = sim.create("bad", NETWORK, &[("Nope", "x")]).await.unwrap_err();
    assert!(error.message.contains("Nope"), "{}", error.message);
    let error = sim.create("9bad", NETWORK, &[]).await.unwrap_err();
    assert!(error.message.contains("stackName"), "{}", error.message);
    sim.nothing_created();
}

#[tokio::test]
async fn create_then_delete_writes_cloudformation_statuses_events_and_exports() {
    let sim = Sim::new().await;
    let stack = sim.create("net", NETWORK, &[]).await.unwrap();
    assert_eq!(stack.stack_status, "CREATE_COMPLETE", "{stack:?}");
    let output =
        |key: &str| stack.outputs.iter().find(|output| output.output_key == key).unwrap().clone();
    assert_eq!(output("SubnetZone").output_value, "local-b");
    assert!(output("SubnetId").output_value.starts_with("subnet-"));
    assert_eq!(output("SubnetId").export_name.as_deref(), Some("net-dev-Subnet"));
    let exports = sim.service.list_exports(ListExportsInput {}).unwrap().exports;
    assert_eq!(exports.len(), 1);
    assert_eq!(exports[0].exporting_stack_id, stack.stack_id);
    let networks = sim.engine.calls_of(Operation::NetworkEnsure);
    assert_eq!(networks.len(), 1, "one engine network for the VPC");

    let again = sim.create("net", NETWORK, &[]).await.unwrap_err();
    assert_eq!(again.code, "AlreadyExistsException");

    sim.service
        .delete_stack(DeleteStackInput { stack_name: "net".into(), ..Default::default() })
        .await
        .unwrap();
    sim.service.wait_idle(&stack.stack_id).await;
    assert_eq!(sim.describe(&stack.stack_id).stack_status, "DELETE_COMPLETE");
    assert_eq!(sim.engine.calls_of(Operation::NetworkRemove).len(), 1);
    let expected: Vec<(String, String)> = [
        ("net", "CREATE_IN_PROGRESS"),
        ("Vpc", "CREATE_IN_PROGRESS"),
        ("Vpc", "CREATE_COMPLETE"),
        ("Subnet", "CREATE_IN_PROGRESS"),
        ("Subnet", "CREATE_COMPLETE"),
        ("net", "CREATE_COMPLETE"),
        ("net", "DELETE_IN_PROGRESS"),
        ("Subnet", "DELETE_IN_PROGRESS"),
        ("Subnet", "DELETE_COMPLETE"),
        ("Vpc", "DELETE_IN_PROGRESS"),
        ("Vpc", "DELETE_COMPLETE"),
        ("net", "DELETE_COMPLETE"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(sim.events(&stack.stack_id), expected);
    // The name is free again; the deleted stack stays listed.
    assert!(
        sim.service
            .describe_stacks(DescribeStacksInput { stack_name: Some("net".into()) })
            .is_err()
    );
    let listed = sim.service.list_stacks(Default::default()).unwrap().stack_summaries;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].deletion_time.is_some());
}

#[tokio::test]
async fn a_client_token_makes_a_retried_create_the_same_create() {
    let sim = Sim::new().await;
    let input = CreateStackInput {
        stack_name: "net".into(),
        template_body: Some(NETWORK.into()),
        client_request_token: Some("token-1".into()),
        ..Default::default()
    };
    let first = sim.service.create_stack(input.clone()).await.unwrap();
    let second = sim.service.create_stack(input).await.unwrap();
    assert_eq!(first.stack_id, second.stack_id);
    assert_eq!(sim.service.list_stacks(Default::default()).unwrap().stack_summaries.len(), 1);
}

#[tokio::test]
async fn a_failed_resource_rolls_the_stack_back_or_stays_when_rollback_is_disabled() {
    let sim = Sim::new().await;
    sim.engine.fail_nth(Operation::NetworkEnsure, 1, FaultKind::Api);
    let stack = sim.create("net", NETWORK, &[]).await.unwrap();
    assert_eq!(stack.stack_status, "ROLLBACK_COMPLETE");
    let events = sim.events(&stack.stack_id);
    assert!(events.contains(&("Vpc".into(), "CREATE_FAILED".into())), "{events:?}");
    assert!(events.contains(&("net".into(), "ROLLBACK_IN_PROGRESS".into())), "{events:?}");
    assert!(events.contains(&("Vpc".into(), "DELETE_COMPLETE".into())), "{events:?}");
    // DisableRollback keeps what was made.
    sim.engine.fail_nth(Operation::NetworkEnsure, 1, FaultKind::Api);
    let input = CreateStackInput {
        stack_name: "kept".into(),
        template_body: Some(NETWORK.into()),
        disable_rollback: Some(true),
        ..Default::default()
    };
    let created = sim.service.create_stack(input).await.unwrap();
    sim.service.wait_idle(&created.stack_id).await;
    let kept = sim.describe(&created.stack_id);
    assert_eq!(kept.stack_status, "CREATE_FAILED");
    assert_eq!(
        kept.stack_status_reason.as_deref(),
        Some("The following resource(s) failed to create: [Vpc].")
    );
}

#[tokio::test]
async fn an_operation_left_in_progress_by_a_dead_daemon_is_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("autopatch.db")).unwrap());
    // What a daemon killed while creating the subnet leaves in the store.
    let now = Timestamp::from_millis(1_795_524_896_789);
    let stack_id = "arn:aws:cloudformation:local:000000000000:stack/net/1".to_owned();
    store
        .insert_stack(&StackRow {
            stack_id: stack_id.clone(),
            name: "net".into(),
            status: StackStatus::CreateInProgress,
            status_reason: None,
            template_body: NETWORK.into(),
            template_source: "net.yml".into(),
            parameters: r#"{"Env":"dev"}"#.into(),
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
    let resource =
        |logical: &str, kind: &str, physical: &str, status, attributes: &str| StackResourceRow {
            stack_id: stack_id.clone(),
            logical_id: logical.into(),
            resource_type: kind.into(),
            physical_id: Some(physical.into()),
            status,
            status_reason: None,
            properties: "{}".into(),
            attributes: attributes.into(),
            replaced: None,
            updated_at: now,
        };
    store
        .put_stack_resource(&resource(
            "Vpc",
            "AWS::EC2::VPC",
            "vpc-00000000000000001",
            ResourceStatus::CreateComplete,
            r#"{"VpcId":"vpc-00000000000000001"}"#,
        ))
        .unwrap();
    store
        .put_stack_resource(&resource(
            "Subnet",
            "AWS::EC2::Subnet",
            "subnet-00000000000000001",
            ResourceStatus::CreateInProgress,
            "{}",
        ))
        .unwrap();
    let engine = Arc::new(FakeEngine::new());
    let service =
        StackService::open(config(dir.path()), engine.clone(), store.clone()).await.unwrap();
    service.wait_idle(&stack_id).await;
    let stack = service
        .describe_stacks(DescribeStacksInput { stack_name: Some("net".into()) })
        .unwrap()
        .stacks
        .remove(0);
    assert_eq!(stack.stack_status, "CREATE_COMPLETE");
    let resources = service
        .describe_stack_resources(DescribeStackResourcesInput { stack_name: "net".into() })
        .unwrap();
    let subnet =
        resources.stack_resources.iter().find(|r| r.logical_resource_id == "Subnet").unwrap();
    assert_eq!(
        subnet.physical_resource_id.as_deref(),
        Some("subnet-00000000000000001"),
        "the id chosen before the crash is kept"
    );
    assert_eq!(
        engine.calls_of(Operation::NetworkEnsure).len(),
        0,
        "the VPC made before the crash is not made again"
    );
    let _ = dir;
}
