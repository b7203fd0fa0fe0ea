//! The stack service against the recording fake engine: bad input is
//! refused whole and changes nothing; creates, deletes and rollbacks write
//! CloudFormation's statuses and events; an operation left in progress by a
//! dead daemon is resumed by the next one.

use std::sync::Arc;
use std::time::Duration;

use autopatch_engine::{Call, Engine, FakeEngine, FaultKind, Operation};
use autopatch_model::{ResourceStatus, StackStatus, Timestamp};
use autopatch_stacks::api::*;
use autopatch_stacks::{ListenerPorts, ServiceConfig, StackService};
use autopatch_store::{StackResourceRow, StackRow, Store};

struct Sim {
    _dir: tempfile::TempDir,
    engine: Arc<FakeEngine>,
    store: Arc<Store>,
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
        Sim { _dir: dir, engine, store, service }
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
            parameters: given(parameters),
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

/// Parameter values as a request gives them.
fn given(parameters: &[(&str, &str)]) -> Vec<Parameter> {
    parameters
        .iter()
        .map(|(key, value)| Parameter {
            parameter_key: (*key).into(),
            parameter_value: Some((*value).into()),
            use_previous_value: None,
        })
        .collect()
}

/// `(logical id, status)` pairs as [`Sim::events`] gives them.
fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
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
            "template:3:11: error: found the resource type `AWS::SQS::Queue`, which local stacks do not run",
        ),
        (
            // Known to the template frontend, not (yet) to local stacks.
            "Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n",
            "template:3:11: error: found the resource type `AWS::S3::Bucket`, which local stacks do not run; expected one of AWS::AutoScaling::AutoScalingGroup",
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
async fn a_type_local_stacks_do_not_run_is_one_problem_and_request_problems_name_no_file() {
    let sim = Sim::new().await;
    let body = "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n  Vpc:\n    Type: AWS::EC2::VPC\n";
    let error = sim.create("bad", body, &[("Extra", "1")]).await.unwrap_err();
    assert_eq!(error.code, "ValidationError");
    let lines: Vec<&str> = error.message.lines().collect();
    assert_eq!(lines.len(), 2, "{}", error.message);
    assert!(
        lines[0].starts_with(
            "parameter `Extra`: found a value for a parameter the template does not declare"
        ),
        "a request problem is a plain message: {}",
        lines[0]
    );
    let types = autopatch_stacks::resources::supported_types().join(", ");
    assert_eq!(
        lines[1],
        format!(
            "template:3:11: error: found the resource type `AWS::SQS::Queue`, which local stacks do not run; expected one of {types}"
        )
    );
    assert!(!lines[1].contains("AWS::ImageBuilder::") && !lines[1].contains("AWS::S3::Bucket"));
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
    // Labelled as the stack's instances are, so it can be attributed.
    let resources = sim
        .service
        .describe_stack_resources(DescribeStackResourcesInput { stack_name: "net".into() })
        .unwrap()
        .stack_resources;
    let vpc = resources.iter().find(|resource| resource.logical_resource_id == "Vpc").unwrap();
    let vpc = vpc.physical_resource_id.clone().unwrap();
    let fleet = sim._dir.path().join("instances").display().to_string();
    assert_eq!(
        sim.engine.network_labels(&format!("autopatch-{vpc}")),
        Some(
            [
                ("autopatch.fleet", fleet.as_str()),
                ("autopatch.role", "vpc"),
                ("autopatch.stack", stack.stack_id.as_str()),
                ("autopatch.vpc", vpc.as_str()),
            ]
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect()
        )
    );

    let again = sim.create("net", NETWORK, &[]).await.unwrap_err();
    assert_eq!(again.code, "AlreadyExistsException");

    sim.service
        .delete_stack(DeleteStackInput { stack_name: "net".into(), ..Default::default() })
        .await
        .unwrap();
    sim.service.wait_idle(&stack.stack_id).await;
    assert_eq!(sim.describe(&stack.stack_id).stack_status, "DELETE_COMPLETE");
    assert_eq!(sim.engine.calls_of(Operation::NetworkRemove).len(), 1);
    let expected = pairs(&[
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
    ]);
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

impl Sim {
    async fn update(
        &self,
        name: &str,
        body: Option<&str>,
        parameters: &[(&str, &str)],
    ) -> Result<Stack, ApiError> {
        let input = UpdateStackInput {
            stack_name: name.into(),
            template_body: body.map(str::to_owned),
            use_previous_template: body.is_none().then_some(true),
            parameters: given(parameters),
            ..Default::default()
        };
        let updated = self.service.update_stack(input).await?;
        self.service.wait_idle(&updated.stack_id).await;
        Ok(self.describe(&updated.stack_id))
    }

    fn resource_ids(&self, name: &str) -> Vec<(String, String, Option<String>)> {
        self.service
            .describe_stack_resources(DescribeStackResourcesInput { stack_name: name.into() })
            .unwrap()
            .stack_resources
            .into_iter()
            .map(|r| (r.logical_resource_id, r.resource_status, r.physical_resource_id))
            .collect()
    }
}

/// NETWORK plus a security group, whose description is a parameter.
const NETWORK_WITH_GROUP: &str = r#"
Parameters:
  Env:
    Type: String
    AllowedValues: [dev, prod]
    Default: dev
  Purpose:
    Type: String
    Default: web
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
  Group:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: !Ref Purpose
      VpcId: !Ref Vpc
Outputs:
  SubnetId:
    Value: !Ref Subnet
    Export:
      Name: !Sub '${AWS::StackName}-${Env}-Subnet'
"#;

/// What the request's values make of the template is checked before
/// anything is made (documents' `check_values`): every problem at once, at
/// its place, a NoEcho value masked; on create and on update.
#[tokio::test]
async fn intrinsic_functions_that_fail_on_the_request_values_refuse_it_whole() {
    let sim = Sim::new().await;
    let body = r#"
Parameters:
  Secret: {Type: String, NoEcho: true}
  Env: {Type: String, Default: dev}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
Mappings:
  M: {k1: {Name: one}}
Resources:
  ProdSg:
    Type: AWS::EC2::SecurityGroup
    Condition: IsProd
    Properties: {GroupDescription: prod}
  Sg:
    Type: AWS::EC2::SecurityGroup
    DependsOn: ProdSg
    Properties:
      GroupDescription: !Select [5, [a, b]]
      Tags: [{Key: k, Value: !FindInMap [M, !Ref Secret, Name]}]
Outputs:
  O: {Value: !Split [",", "a,b"]}
"#;
    let error = sim.create("bad", body, &[("Secret", "TopSecretValue")]).await.unwrap_err();
    assert_eq!(error.code, "ValidationError");
    let expected = [
        "template:16:16: error: found DependsOn `ProdSg`, a resource that is not created",
        "template:18:25: error: found the index 5 in Fn::Select",
        "template:19:45: error: found the key `****`, which mapping `M` does not have",
        "template:21:14: error: found a list as the value of output `O`",
    ];
    for line in expected {
        assert!(error.message.contains(line), "{line:?} not in:\n{}", error.message);
    }
    assert!(!error.message.contains("TopSecret"), "{}", error.message);
    sim.nothing_created();

    let stack = sim.create("net", NETWORK, &[]).await.unwrap();
    let before = sim.events(&stack.stack_id);
    let added = NETWORK.replace(
        "Outputs:",
        "  Sg2:\n    Type: AWS::EC2::SecurityGroup\n    Properties: {GroupDescription: !Select [2, [a, b]]}\nOutputs:",
    );
    let error = sim.update("net", Some(&added), &[]).await.unwrap_err();
    assert_eq!(error.code, "ValidationError");
    assert!(error.message.contains("found the index 2 in Fn::Select"), "{}", error.message);
    assert_eq!(sim.events(&stack.stack_id), before);
    assert_eq!(sim.describe("net").stack_status, "CREATE_COMPLETE");
}

#[tokio::test]
async fn an_update_that_changes_nothing_is_refused_and_changes_nothing() {
    let sim = Sim::new().await;
    let stack = sim.create("net", NETWORK, &[("Env", "prod")]).await.unwrap();
    let before = sim.events(&stack.stack_id);
    // Env keeps its previous value (prod), not the default (dev).
    let error = sim.update("net", None, &[]).await.unwrap_err();
    assert_eq!(
        (error.code.as_str(), error.message.as_str()),
        ("ValidationError", "No updates are to be performed.")
    );
    let error = sim.update("net", Some(NETWORK), &[("Env", "prod")]).await.unwrap_err();
    assert_eq!(error.message, "No updates are to be performed.");
    assert_eq!(sim.events(&stack.stack_id), before, "no event written");
    assert_eq!(sim.describe("net").stack_status, "CREATE_COMPLETE");
}

#[tokio::test]
async fn bad_updates_are_refused_whole_and_change_nothing() {
    let sim = Sim::new().await;
    let stack = sim.create("net", NETWORK, &[]).await.unwrap();
    let before = sim.events(&stack.stack_id);
    type Case<'a> = (Option<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (Some("Resources:\n  Vpc:\n    Type: AWS::SQS::Queue\n"), vec![], "template:3:11:"),
        (None, vec![("Env", "staging")], "Env"),
        (None, vec![("Nope", "x")], "Nope"),
    ];
    for (body, parameters, expected) in cases {
        let error = sim.update("net", body, &parameters).await.unwrap_err();
        assert_eq!(error.code, "ValidationError");
        assert!(error.message.contains(expected), "{expected}: {}", error.message);
    }
    let unknown = sim.update("nowhere", None, &[]).await.unwrap_err();
    assert!(unknown.message.contains("does not exist"), "{unknown}");
    let previous = sim
        .service
        .update_stack(UpdateStackInput {
            stack_name: "net".into(),
            use_previous_template: Some(true),
            parameters: vec![Parameter {
                parameter_key: "Missing".into(),
                parameter_value: None,
                use_previous_value: Some(true),
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(previous.message.contains("usePreviousValue"), "{previous}");
    let cancel = sim
        .service
        .cancel_update_stack(CancelUpdateStackInput { stack_name: "net".into() })
        .await
        .unwrap_err();
    assert!(
        cancel.message.contains(
            "CancelUpdateStack cannot be called from current stack status CREATE_COMPLETE"
        ),
        "{cancel}"
    );
    assert_eq!(sim.events(&stack.stack_id), before);
    assert_eq!(sim.describe("net").stack_status, "CREATE_COMPLETE");
}

#[tokio::test]
async fn an_update_creates_changes_in_place_and_cleans_up_removed_resources() {
    let sim = Sim::new().await;
    let stack = sim.create("net", NETWORK, &[("Env", "prod")]).await.unwrap();
    let ids = sim.resource_ids("net");
    // A new resource and a new parameter; Env keeps prod.
    let updated = sim.update("net", Some(NETWORK_WITH_GROUP), &[("Purpose", "db")]).await.unwrap();
    assert_eq!(updated.stack_status, "UPDATE_COMPLETE", "{updated:?}");
    let parameter = |stack: &Stack, key: &str| {
        stack.parameters.iter().find(|p| p.parameter_key == key).unwrap().parameter_value.clone()
    };
    assert_eq!(parameter(&updated, "Env").as_deref(), Some("prod"));
    assert_eq!(parameter(&updated, "Purpose").as_deref(), Some("db"));
    let after = sim.resource_ids("net");
    assert_eq!(&after[..2], &ids[..], "unchanged resources keep their ids and status");
    assert_eq!(after[2].0, "Group");
    // Changing the group's description replaces it, as on AWS (QA s10
    // L5: GroupDescription "Update requires: Replacement"): a new id.
    let group_id = after[2].2.clone();
    let changed = sim.update("net", None, &[("Purpose", "cache")]).await.unwrap();
    assert_eq!(changed.stack_status, "UPDATE_COMPLETE");
    let group = sim.resource_ids("net").into_iter().find(|r| r.0 == "Group").unwrap();
    assert_eq!(group.1, "UPDATE_COMPLETE");
    assert_ne!(group.2, group_id, "a new security group");
    // Back to the template without the group: it is deleted at cleanup.
    let removed = sim.update("net", Some(NETWORK), &[]).await.unwrap();
    assert_eq!(removed.stack_status, "UPDATE_COMPLETE");
    let events = sim.events(&stack.stack_id);
    let tail: Vec<(String, String)> = events[events.len() - 5..].to_vec();
    let expected = pairs(&[
        ("net", "UPDATE_IN_PROGRESS"),
        ("net", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"),
        ("Group", "DELETE_IN_PROGRESS"),
        ("Group", "DELETE_COMPLETE"),
        ("net", "UPDATE_COMPLETE"),
    ]);
    assert_eq!(tail, expected);
}

#[tokio::test]
async fn a_change_that_cannot_be_made_rolls_the_update_back_to_the_previous_template() {
    let sim = Sim::new().await;
    let stack = sim.create("net", NETWORK, &[]).await.unwrap();
    let ids = sim.resource_ids("net");
    // The new security group is created, then the subnet's CIDR (a
    // replacement, not made locally) fails: the group is deleted again.
    let body =
        NETWORK_WITH_GROUP.replace("CidrBlock: 172.31.1.0/24", "CidrBlock: 172.31.9.0/24").replace(
            "  Subnet:\n    Type: AWS::EC2::Subnet\n",
            "  Subnet:\n    Type: AWS::EC2::Subnet\n    DependsOn: Group\n",
        );
    assert!(body.contains("DependsOn: Group"));
    let updated = sim.update("net", Some(&body), &[]).await.unwrap();
    assert_eq!(updated.stack_status, "UPDATE_ROLLBACK_COMPLETE", "{updated:?}");
    let events = sim.events(&stack.stack_id);
    let update: Vec<(String, String)> =
        events.iter().skip_while(|e| e.1 != "UPDATE_IN_PROGRESS").cloned().collect();
    let expected = pairs(&[
        ("net", "UPDATE_IN_PROGRESS"),
        ("Group", "CREATE_IN_PROGRESS"),
        ("Group", "CREATE_COMPLETE"),
        ("Subnet", "UPDATE_FAILED"),
        ("net", "UPDATE_ROLLBACK_IN_PROGRESS"),
        // The failed resource is brought back to its previous properties.
        ("Subnet", "UPDATE_IN_PROGRESS"),
        ("Subnet", "UPDATE_COMPLETE"),
        ("net", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"),
        ("Group", "DELETE_IN_PROGRESS"),
        ("Group", "DELETE_COMPLETE"),
        ("net", "UPDATE_ROLLBACK_COMPLETE"),
    ]);
    assert_eq!(update, expected);
    let reason = sim.describe("net").stack_status_reason;
    assert_eq!(reason, None, "UPDATE_ROLLBACK_COMPLETE carries no reason");
    let failed = sim
        .service
        .describe_stack_events(DescribeStackEventsInput { stack_name: "net".into() })
        .unwrap()
        .stack_events
        .into_iter()
        .find(|e| e.resource_status == "UPDATE_FAILED")
        .unwrap();
    assert!(
        failed
            .resource_status_reason
            .unwrap()
            .contains("CidrBlock of AWS::EC2::Subnet needs a new physical resource"),
    );
    // All is as before the update (the group's row is DELETE_COMPLETE).
    let after: Vec<(String, Option<String>)> = sim
        .resource_ids("net")
        .into_iter()
        .filter(|r| r.1 != "DELETE_COMPLETE")
        .map(|r| (r.0, r.2))
        .collect();
    let before: Vec<(String, Option<String>)> = ids.into_iter().map(|r| (r.0, r.2)).collect();
    assert_eq!(after, before);
    // The previous template is current again: the same update is no no-op.
    let again = sim.update("net", Some(NETWORK), &[]).await.unwrap_err();
    assert_eq!(again.message, "No updates are to be performed.");
}

impl Sim {
    async fn delete(&self, name: &str, retain: &[&str]) -> Result<Stack, ApiError> {
        let stack_id = self.describe(name).stack_id;
        let input = DeleteStackInput {
            stack_name: name.into(),
            retain_resources: retain.iter().map(|name| name.to_string()).collect(),
            ..Default::default()
        };
        self.service.delete_stack(input).await?;
        self.service.wait_idle(&stack_id).await;
        Ok(self.describe(&stack_id))
    }
}

#[tokio::test]
async fn a_new_delete_tries_failed_resources_again_once() {
    let sim = Sim::new().await;
    let stack = sim.create("net", NETWORK, &[]).await.unwrap();
    let removals = || sim.engine.calls_of(Operation::NetworkRemove).len();
    sim.engine.fail_nth(Operation::NetworkRemove, 1, FaultKind::Api);
    sim.engine.fail_nth(Operation::NetworkRemove, 2, FaultKind::Api);
    let failed = sim.delete("net", &[]).await.unwrap();
    assert_eq!(failed.stack_status, "DELETE_FAILED");
    assert_eq!(removals(), 1);
    // The next delete tries the VPC again; failing again within this
    // operation ends it DELETE_FAILED (no loop).
    let again = sim.delete(&stack.stack_id, &[]).await.unwrap();
    assert_eq!(again.stack_status, "DELETE_FAILED");
    assert_eq!(
        again.stack_status_reason.as_deref(),
        Some("The following resource(s) failed to delete: [Vpc].")
    );
    assert_eq!(removals(), 2, "the failed VPC was tried once more");
    let before = sim.events(&stack.stack_id).len();
    let deleted = sim.delete(&stack.stack_id, &[]).await.unwrap();
    assert_eq!(deleted.stack_status, "DELETE_COMPLETE");
    assert_eq!(removals(), 3);
    let tail: Vec<(String, String)> = sim.events(&stack.stack_id)[before..].to_vec();
    let expected = pairs(&[
        ("net", "DELETE_IN_PROGRESS"),
        ("Vpc", "DELETE_IN_PROGRESS"),
        ("Vpc", "DELETE_COMPLETE"),
        ("net", "DELETE_COMPLETE"),
    ]);
    assert_eq!(tail, expected);
}

#[tokio::test]
async fn a_stack_left_rollback_failed_can_be_deleted() {
    let sim = Sim::new().await;
    // The VPC fails to create; the rollback then fails to remove its network.
    sim.engine.fail_nth(Operation::NetworkEnsure, 1, FaultKind::Api);
    sim.engine.fail_nth(Operation::NetworkRemove, 1, FaultKind::Api);
    let stack = sim.create("net", NETWORK, &[]).await.unwrap();
    assert_eq!(stack.stack_status, "ROLLBACK_FAILED");
    let deleted = sim.delete("net", &[]).await.unwrap();
    assert_eq!(deleted.stack_status, "DELETE_COMPLETE");
    assert_eq!(sim.engine.calls_of(Operation::NetworkRemove).len(), 2);
}

#[tokio::test]
async fn retain_resources_keeps_named_resources_of_a_delete_failed_stack_only() {
    let sim = Sim::new().await;
    let stack = sim.create("net", NETWORK, &[]).await.unwrap();
    let error = sim.delete("net", &["Vpc"]).await.unwrap_err();
    assert_eq!(error.code, "ValidationError");
    assert!(error.message.contains("DELETE_FAILED"), "{error}");
    assert_eq!(sim.describe("net").stack_status, "CREATE_COMPLETE", "the refusal changed nothing");
    sim.engine.fail_nth(Operation::NetworkRemove, 1, FaultKind::Api);
    assert_eq!(sim.delete("net", &[]).await.unwrap().stack_status, "DELETE_FAILED");
    let unknown = sim.delete("net", &["Nowhere"]).await.unwrap_err();
    assert!(unknown.message.contains("Nowhere"), "{unknown}");
    let deleted = sim.delete("net", &["Vpc"]).await.unwrap();
    assert_eq!(deleted.stack_status, "DELETE_COMPLETE");
    assert_eq!(sim.engine.calls_of(Operation::NetworkRemove).len(), 1, "the VPC was kept");
    let events = sim.events(&stack.stack_id);
    assert!(events.contains(&("Vpc".into(), "DELETE_SKIPPED".into())), "{events:?}");
}

#[tokio::test]
async fn a_resource_failure_reason_carries_the_whole_engine_error_chain() {
    let sim = Sim::new().await;
    sim.engine.fail_nth(Operation::NetworkRemove, 1, FaultKind::Unreachable);
    let stack = sim.create("net", NETWORK, &[]).await.unwrap();
    assert_eq!(sim.delete("net", &[]).await.unwrap().stack_status, "DELETE_FAILED");
    let failed = sim
        .service
        .describe_stack_events(DescribeStackEventsInput { stack_name: stack.stack_id.clone() })
        .unwrap()
        .stack_events
        .into_iter()
        .find(|event| {
            event.logical_resource_id == "Vpc" && event.resource_status == "DELETE_FAILED"
        })
        .unwrap();
    let reason = failed.resource_status_reason.unwrap();
    assert!(reason.starts_with("remove engine network autopatch-vpc-"), "{reason}");
    // The engine's own words and, after ": ", the cause under them.
    assert!(
        reason.contains("no container engine answers at fake://")
            && reason.ends_with(": injected fault: the engine does not answer"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_image_that_does_not_exist_is_named_as_the_stack_knows_it() {
    let sim = Sim::new().await;
    let body = "Parameters:\n  Image:\n    Type: String\nResources:\n  Config:\n    Type: AWS::AutoScaling::LaunchConfiguration\n    Properties:\n      ImageId: !Ref Image\n      InstanceType: t3.micro\n";
    let error = sim.create("app", body, &[("Image", "webapp/9.9.9/1")]).await.unwrap_err();
    assert!(
        error.message.starts_with(
            "template:8:16: error: image webapp/9.9.9/1 does not exist: expected an autopatch image"
        ),
        "{}",
        error.message
    );
    assert!(!error.message.contains("parent"), "{}", error.message);
    sim.nothing_created();
}

/// A base stack exporting its VPC and a label (from a parameter).
const BASE: &str = r#"
Parameters:
  Label:
    Type: String
    Default: blue
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
      AvailabilityZone: !Select [0, !GetAZs '']
Outputs:
  VpcId:
    Value: !Ref Vpc
    Export:
      Name: !Sub '${AWS::StackName}-VpcId'
  Label:
    Value: !Ref Label
    Export:
      Name: !Sub '${AWS::StackName}-Label'
"#;

/// Imports both of BASE's exports.
const APP: &str = r#"
Resources:
  Group:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: !ImportValue base-Label
      VpcId: !ImportValue base-VpcId
"#;

#[tokio::test]
async fn an_update_may_not_remove_or_change_an_export_another_stack_imports() {
    let sim = Sim::new().await;
    let base = sim.create("base", BASE, &[]).await.unwrap();
    assert_eq!(sim.create("app", APP, &[]).await.unwrap().stack_status, "CREATE_COMPLETE");
    let before = sim.events(&base.stack_id);
    // Renamed: the imported name is gone. Refused before anything changes.
    let renamed = BASE.replace("-VpcId'", "-Vpc'");
    let error = sim.update("base", Some(&renamed), &[]).await.unwrap_err();
    assert_eq!(error.code, "ValidationError");
    assert!(
        error.message.contains("Export base-VpcId cannot be deleted as it is in use by app"),
        "{error}"
    );
    // A value known from the parameters: refused, with the output's position.
    let error = sim.update("base", None, &[("Label", "green")]).await.unwrap_err();
    assert_eq!(
        error.message,
        "template:23:12: error: Export base-Label cannot be updated as it is in use by app"
    );
    assert_eq!(sim.events(&base.stack_id), before, "the refusals changed nothing");
    // A value made from a resource is known only when the update computes
    // its outputs: the update fails there and rolls back.
    let moved = BASE.replace("    Value: !Ref Vpc\n", "    Value: !Ref Subnet\n");
    let updated = sim.update("base", Some(&moved), &[]).await.unwrap();
    assert_eq!(updated.stack_status, "UPDATE_ROLLBACK_COMPLETE", "{updated:?}");
    let events = sim
        .service
        .describe_stack_events(DescribeStackEventsInput { stack_name: "base".into() })
        .unwrap()
        .stack_events;
    let rollback = events.iter().find(|e| e.resource_status == "UPDATE_ROLLBACK_IN_PROGRESS");
    assert_eq!(
        rollback.and_then(|e| e.resource_status_reason.as_deref()),
        Some("Export base-VpcId cannot be updated as it is in use by app")
    );
    assert_eq!(updated.outputs, base.outputs, "the exports are what they were");
    // Exports no other stack imports may change.
    sim.service
        .delete_stack(DeleteStackInput { stack_name: "app".into(), ..Default::default() })
        .await
        .unwrap();
    sim.service.wait_idle(&sim.describe("app").stack_id).await;
    let free = sim.update("base", Some(&renamed), &[("Label", "green")]).await.unwrap();
    assert_eq!(free.stack_status, "UPDATE_COMPLETE", "{free:?}");
}

/// Each line of a refusal: its `file:line:col` (or the whole line when it
/// has no position) and whether it contains `phrase`.
fn problem_lines(message: &str) -> Vec<String> {
    message
        .lines()
        .map(|line| match line.split_once(": error: ") {
            Some((at, _)) => at.to_owned(),
            None => line.to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn validation_reports_every_stage_s_problems_together_in_line_order() {
    let sim = Sim::new().await;
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            // A type local stacks do not run, and an unknown property.
            "Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: 10.0.0.0/16\n      Bogus: x\n",
            vec![],
            vec![
                ("template:3:11", "`AWS::S3::Bucket`, which local stacks do not run"),
                ("template:8:7", "Bogus"),
            ],
        ),
        (
            // A dependency cycle, and a parameter value not allowed.
            "Parameters:\n  Env:\n    Type: String\n    AllowedValues: [dev]\nResources:\n  A:\n    Type: AWS::EC2::VPC\n    DependsOn: B\n  B:\n    Type: AWS::EC2::VPC\n    DependsOn: A\n",
            vec![("Env", "prod")],
            vec![("template:2:3", "Env"), ("template:6:3", "circular")],
        ),
        (
            // An unknown top-level key, and imports of exports that do not
            // exist (found in name order Alpha, Zeta, outputs; reported in
            // line order).
            "Bogus: 1\nResources:\n  Zeta:\n    Type: AWS::EC2::SecurityGroup\n    Properties:\n      GroupDescription: !ImportValue z-Export\n  Alpha:\n    Type: AWS::EC2::SecurityGroup\n    Properties:\n      GroupDescription: !ImportValue a-Export\nOutputs:\n  Out:\n    Value: !ImportValue o-Export\n",
            vec![],
            vec![
                ("template:1:1", "Bogus"),
                ("template:6:25", "No export named z-Export found"),
                ("template:10:25", "No export named a-Export found"),
                ("template:13:12", "No export named o-Export found"),
            ],
        ),
    ];
    for (body, parameters, expected) in cases {
        let error = sim.create("bad", body, &parameters).await.unwrap_err();
        let lines: Vec<&str> = error.message.lines().collect();
        assert_eq!(
            problem_lines(&error.message),
            expected.iter().map(|(at, _)| at.to_string()).collect::<Vec<_>>(),
            "{}",
            error.message
        );
        for (line, (_, phrase)) in lines.iter().zip(&expected) {
            assert!(line.contains(phrase), "{phrase:?} not in {line:?}");
        }
    }
    sim.nothing_created();
    // An update too: a parameter value, a bad type and its properties.
    let stack = sim.create("net", NETWORK, &[]).await.unwrap();
    let before = sim.events(&stack.stack_id);
    let body = NETWORK.replace("Type: AWS::EC2::VPC", "Type: AWS::S3::Bucket");
    let error = sim.update("net", Some(&body), &[("Env", "staging")]).await.unwrap_err();
    assert_eq!(
        problem_lines(&error.message),
        ["template:3:3", "template:9:11", "template:11:7"],
        "{error}"
    );
    assert_eq!(sim.events(&stack.stack_id), before);
}

/// Parameters with every kind of CloudFormation constraint.
const CONSTRAINED: &str = r#"
Parameters:
  Count:
    Type: Number
    MinValue: 1
    MaxValue: 2
    Default: 1
  Name:
    Type: String
    AllowedPattern: "[a-z]+"
    MinLength: 2
    MaxLength: 8
    ConstraintDescription: lowercase letters, 2 to 8 of them
    Default: web
  Env:
    Type: String
    AllowedValues: [dev, prod]
    Default: dev
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {}
      Description: !Sub "${Name} ${Env} ${Count}"
"#;

#[tokio::test]
async fn parameter_constraints_refuse_an_update_before_it_starts() {
    let sim = Sim::new().await;
    let stack = sim.create("app", CONSTRAINED, &[]).await.unwrap();
    let before = sim.events(&stack.stack_id);
    let cases = [
        (
            ("Count", "abc"),
            "template:3:3: error: parameter `Count`: found \"abc\"; expected a number",
        ),
        (("Count", "3"), "template:3:3: error: parameter `Count`: found \"3\"; expected at most 2"),
        (
            ("Count", "0"),
            "template:3:3: error: parameter `Count`: found \"0\"; expected at least 1",
        ),
        (
            ("Name", "Web"),
            "template:8:3: error: parameter `Name`: found \"Web\"; expected a value matching the pattern \"[a-z]+\" (lowercase letters, 2 to 8 of them)",
        ),
        (
            ("Name", "webserver"),
            "template:8:3: error: parameter `Name`: found 9 characters; expected at most 8 (lowercase letters, 2 to 8 of them)",
        ),
        (
            ("Env", "qa"),
            "template:15:3: error: parameter `Env`: found \"qa\"; expected one of the allowed values \"dev\", \"prod\"",
        ),
    ];
    for (parameter, expected) in cases {
        let error = sim.update("app", None, &[parameter]).await.unwrap_err();
        assert_eq!((error.code.as_str(), error.message.as_str()), ("ValidationError", expected));
    }
    assert_eq!(sim.events(&stack.stack_id), before, "no event written");
    assert_eq!(sim.describe("app").stack_status, "CREATE_COMPLETE");
    // On create too: no stack is made.
    let error = sim.create("other", CONSTRAINED, &[("Count", "abc")]).await.unwrap_err();
    assert_eq!(error.message, cases[0].1);
    assert_eq!(sim.service.list_stacks(Default::default()).unwrap().stack_summaries.len(), 1);
}

/// Launch configurations and a group whose values come from literals and
/// parameters; `Spare` is never made (its condition is false).
const SIZED: &str = r#"
Parameters:
  Type:
    Type: String
    Default: t3.micro
  Size:
    Type: String
    Default: "0"
  Max:
    Type: String
    Default: "2"
Conditions:
  Never: !Equals [a, b]
Resources:
  Literal:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: localhost/app:1
      InstanceType: m1.large
  FromParameter:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: localhost/app:1
      InstanceType: !Ref Type
  Spare:
    Type: AWS::AutoScaling::LaunchConfiguration
    Condition: Never
    Properties:
      ImageId: localhost/app:1
      InstanceType: z9.spare
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      LaunchConfigurationName: !Ref FromParameter
      MinSize: 0
      MaxSize: !Ref Max
      DesiredCapacity: !Ref Size
      HealthCheckType: EC2
"#;

#[tokio::test]
async fn values_a_resource_would_refuse_are_problems_of_the_request_at_their_place() {
    let sim = Sim::new().await;
    sim.engine.add_image("localhost/app:1");
    // A literal at its position; a parameter's value at the parameter,
    // naming the property it is for; a policy setting too.
    let body = SIZED.replace("InstanceType: m1.large", "InstanceType: z9.huge").replace(
        "      HealthCheckType: EC2\n",
        "      HealthCheckType: elb\n    CreationPolicy:\n      ResourceSignal:\n        Count: !Ref Size\n",
    );
    let error =
        sim.create("bad", &body, &[("Type", "z9.huge"), ("Size", "abc")]).await.unwrap_err();
    assert_eq!(error.code, "ValidationError");
    let known = autopatch_fleet::instance_types()
        .iter()
        .map(|spec| spec.name)
        .collect::<Vec<_>>()
        .join(", ");
    let message = error.message.replace(&known, "<known>");
    expect_test::expect![[r#"
        template:3:3: error: parameter `Type`: found "z9.huge" for InstanceType of FromParameter (at 24:21); expected one of the instance types local stacks run: <known>
        template:6:3: error: parameter `Size`: found "abc" for DesiredCapacity of Group (at 37:24); expected a whole number
        template:6:3: error: parameter `Size`: found "abc" for CreationPolicy.ResourceSignal.Count of Group (at 41:16); expected a whole number from 0
        template:19:21: error: property InstanceType of Literal: found "z9.huge"; expected one of the instance types local stacks run: <known>
        template:38:24: error: property HealthCheckType of Group: found "elb"; expected one of EC2, ELB (what local stacks run)"#]]
    .assert_eq(&message);
    sim.nothing_created();

    // An update, with the previous template: refused, and nothing changes.
    let stack = sim.create("app", SIZED, &[]).await.unwrap();
    assert_eq!(stack.stack_status, "CREATE_COMPLETE", "{stack:?}");
    let before = sim.events(&stack.stack_id);
    let cases = [
        (
            vec![("Size", "abc")],
            "template:6:3: error: parameter `Size`: found \"abc\" for DesiredCapacity of Group (at 37:24); expected a whole number",
        ),
        (
            // MaxSize comes from a parameter as well: the message names it.
            vec![("Size", "3")],
            "template:6:3: error: parameter `Size`: found \"3\" for DesiredCapacity of Group (at 37:24), above MaxSize 2 (parameter `Max`); expected MinSize <= DesiredCapacity <= MaxSize",
        ),
        (
            vec![("Max", "1"), ("Size", "2")],
            "template:6:3: error: parameter `Size`: found \"2\" for DesiredCapacity of Group (at 37:24), above MaxSize 1 (parameter `Max`); expected MinSize <= DesiredCapacity <= MaxSize",
        ),
        (
            vec![("Type", "z9.huge")],
            "template:3:3: error: parameter `Type`: found \"z9.huge\" for InstanceType of FromParameter (at 24:21); expected one of the instance types local stacks run:",
        ),
    ];
    for (parameters, expected) in cases {
        let error = sim.update("app", None, &parameters).await.unwrap_err();
        assert_eq!(error.code, "ValidationError");
        assert!(error.message.starts_with(expected), "{expected}\n{}", error.message);
        assert_eq!(error.message.lines().count(), 1, "{}", error.message);
    }
    assert_eq!(sim.events(&stack.stack_id), before, "no event written");
    assert_eq!(sim.describe("app").stack_status, "CREATE_COMPLETE");
    let updated = sim.update("app", None, &[("Size", "1")]).await.unwrap();
    assert_eq!(updated.stack_status, "UPDATE_COMPLETE", "{updated:?}");
}

/// A load balancer, its target group and a listener, no instances.
const BALANCER: &str = r#"
Resources:
  Balancer:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties:
      Scheme: internet-facing
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
Outputs:
  Url:
    Value: !GetAtt Balancer.DNSName
"#;

/// Whether something answers HTTP on `address` (any status).
async fn answers(address: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else { return false };
    let request = format!("GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).await.is_ok() && head.starts_with(b"HTTP/1.1 ")
}

#[tokio::test]
async fn a_listener_whose_port_is_taken_at_restart_is_reopened_once_it_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::new());
    let store = Arc::new(Store::open(&dir.path().join("autopatch.db")).unwrap());
    let service =
        StackService::open(config(dir.path()), engine.clone(), store.clone()).await.unwrap();
    let input = CreateStackInput {
        stack_name: "lb".into(),
        template_body: Some(BALANCER.into()),
        ..Default::default()
    };
    let created = service.create_stack(input).await.unwrap();
    service.wait_idle(&created.stack_id).await;
    let stack = service
        .describe_stacks(DescribeStacksInput { stack_name: Some("lb".into()) })
        .unwrap()
        .stacks
        .remove(0);
    assert_eq!(stack.stack_status, "CREATE_COMPLETE");
    let address = stack.outputs[0].output_value.clone();
    assert!(answers(&address).await, "the listener serves on {address}");

    // The daemon stops; another process takes the port before it starts again.
    service.shutdown().await;
    drop(service);
    let squatter = std::net::TcpListener::bind(&address).unwrap();
    let service =
        StackService::open(config(dir.path()), engine.clone(), store.clone()).await.unwrap();
    let notes = service.recovery_notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0]
            .starts_with("stack lb resource Listener (AWS::ElasticLoadBalancingV2::Listener): ")
            && notes[0].contains(&address),
        "{notes:?}"
    );

    // Once the port is free the listener is opened again, with no restart.
    drop(squatter);
    for _ in 0..300 {
        if service.recovery_notes().is_empty() && answers(&address).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(service.recovery_notes().is_empty(), "{:?}", service.recovery_notes());
    assert!(answers(&address).await, "the listener serves on {address} again");
    service.shutdown().await;
}

/// Two launch templates (the second waits for the first) and a security
/// group no update touches.
const LAUNCHES: &str = r#"
Parameters:
  Image:
    Type: String
  SecondImage:
    Type: String
Resources:
  Sg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: web
  First:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateData:
        ImageId: !Ref Image
        InstanceType: t3.micro
  Second:
    Type: AWS::EC2::LaunchTemplate
    DependsOn: First
    Properties:
      LaunchTemplateData:
        ImageId: !Ref SecondImage
        InstanceType: t3.micro
"#;

const IMAGE_A: &str = "localhost/app:1";
const IMAGE_B: &str = "localhost/app:2";
const IMAGE_C: &str = "localhost/app:3";

impl Sim {
    /// The stack `app` of LAUNCHES on image A, left UPDATE_ROLLBACK_FAILED
    /// by an update of First to image B and Second to image C: First is
    /// changed to B, Second fails (image C is removed once the update has
    /// been accepted), and the rollback fails to change First back because
    /// the engine does not answer about image A (which it keeps doing until
    /// the test clears the faults). Returns the stack and its resource rows
    /// from before the update.
    async fn rollback_failed(&self) -> (Stack, Vec<StackResourceRow>) {
        self.engine.add_image(IMAGE_A);
        self.engine.add_image(IMAGE_B);
        self.engine.add_image(IMAGE_C);
        let created = self
            .create("app", LAUNCHES, &[("Image", IMAGE_A), ("SecondImage", IMAGE_A)])
            .await
            .unwrap();
        assert_eq!(created.stack_status, "CREATE_COMPLETE", "{created:?}");
        let before = self.store.stack_resources(&created.stack_id).unwrap();
        self.engine.fail_when(|call| match call {
            Call::ImageInspect { reference } if reference == IMAGE_A => {
                Some(FaultKind::Unreachable)
            }
            _ => None,
        });
        let input = UpdateStackInput {
            stack_name: "app".into(),
            use_previous_template: Some(true),
            parameters: given(&[("Image", IMAGE_B), ("SecondImage", IMAGE_C)]),
            ..Default::default()
        };
        // Accepted (image C exists); the operation runs once this task
        // waits, by which time image C is gone.
        let updated = self.service.update_stack(input).await.unwrap();
        self.engine.image_remove(IMAGE_C).await.unwrap();
        self.service.wait_idle(&updated.stack_id).await;
        let failed = self.describe(&updated.stack_id);
        assert_eq!(failed.stack_status, "UPDATE_ROLLBACK_FAILED", "{failed:?}");
        assert_eq!(
            failed.stack_status_reason.as_deref(),
            Some("The following resource(s) failed to update: [First].")
        );
        (failed, before)
    }

    async fn continue_rollback(&self, name: &str, skip: &[&str]) -> Result<Stack, ApiError> {
        let stack_id = self.describe(name).stack_id;
        let input = ContinueUpdateRollbackInput {
            stack_name: name.into(),
            resources_to_skip: skip.iter().map(|name| name.to_string()).collect(),
            ..Default::default()
        };
        self.service.continue_update_rollback(input).await?;
        self.service.wait_idle(&stack_id).await;
        Ok(self.describe(&stack_id))
    }

    fn row(&self, stack_id: &str, logical_id: &str) -> StackResourceRow {
        let rows = self.store.stack_resources(stack_id).unwrap();
        rows.into_iter().find(|row| row.logical_id == logical_id).unwrap()
    }

    /// The image a launch template's engine resource was last made with.
    fn launch_image(&self, stack_id: &str, logical_id: &str) -> String {
        let attributes: serde_json::Value =
            serde_json::from_str(&self.row(stack_id, logical_id).attributes).unwrap();
        attributes["autopatch:Local"]["Launch"]["image"].as_str().unwrap().to_owned()
    }

    fn inspections_of(&self, image: &str) -> usize {
        let inspections = self.engine.calls_of(Operation::ImageInspect);
        inspections
            .iter()
            .filter(|call| matches!(call, Call::ImageInspect { reference } if reference == image))
            .count()
    }
}

#[tokio::test]
async fn continue_update_rollback_retries_the_failed_rollback_until_it_completes() {
    let sim = Sim::new().await;
    let (stack, before) = sim.rollback_failed().await;
    assert_eq!(sim.launch_image(&stack.stack_id, "First"), IMAGE_B);
    // Such a stack cannot be updated; ContinueUpdateRollback is the way out.
    let error = sim.update("app", None, &[("Image", IMAGE_A)]).await.unwrap_err();
    assert!(error.message.contains("UPDATE_ROLLBACK_FAILED state and can not be updated"));

    // While the engine still fails, the rollback fails again, at First.
    let again = sim.continue_rollback("app", &[]).await.unwrap();
    assert_eq!(again.stack_status, "UPDATE_ROLLBACK_FAILED", "{again:?}");
    assert_eq!(
        again.stack_status_reason.as_deref(),
        Some("The following resource(s) failed to update: [First].")
    );

    // Once it answers, the rollback gets to the end.
    sim.engine.clear_faults();
    let events_before = sim.events(&stack.stack_id).len();
    let done = sim.continue_rollback("app", &[]).await.unwrap();
    assert_eq!(done.stack_status, "UPDATE_ROLLBACK_COMPLETE", "{done:?}");
    let tail = sim.events(&stack.stack_id)[events_before..].to_vec();
    let expected = pairs(&[
        ("app", "UPDATE_ROLLBACK_IN_PROGRESS"),
        ("First", "UPDATE_IN_PROGRESS"),
        ("First", "UPDATE_COMPLETE"),
        // Failed by the update, never reached by the failed rollbacks.
        ("Second", "UPDATE_IN_PROGRESS"),
        ("Second", "UPDATE_COMPLETE"),
        ("app", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"),
        ("app", "UPDATE_ROLLBACK_COMPLETE"),
    ]);
    assert_eq!(tail, expected);
    // Every resource is what it was before the update, engine side too:
    // First is its first version again (`LatestVersionNumber` 1), and
    // re-applying Second's unchanged data made no version.
    let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
    for row in &before {
        let now = sim.row(&stack.stack_id, &row.logical_id);
        assert_eq!(now.physical_id, row.physical_id, "{}", row.logical_id);
        assert_eq!(now.properties, row.properties, "{}", row.logical_id);
        assert_eq!(json(&now.attributes), json(&row.attributes), "{}", row.logical_id);
    }
    assert_eq!(sim.launch_image(&stack.stack_id, "First"), IMAGE_A);
    assert_eq!(sim.launch_image(&stack.stack_id, "Second"), IMAGE_A);
    let parameter = |key: &str| {
        done.parameters.iter().find(|p| p.parameter_key == key).unwrap().parameter_value.clone()
    };
    assert_eq!(parameter("Image").as_deref(), Some(IMAGE_A));
    assert_eq!(parameter("SecondImage").as_deref(), Some(IMAGE_A));
    // The stack takes updates again, and there is no rollback to continue.
    let refused = sim.continue_rollback("app", &[]).await.unwrap_err();
    assert_eq!(
        refused.message,
        "ContinueUpdateRollback cannot be called from current stack status UPDATE_ROLLBACK_COMPLETE"
    );
    let updated = sim.update("app", None, &[("Image", IMAGE_B)]).await.unwrap();
    assert_eq!(updated.stack_status, "UPDATE_COMPLETE", "{updated:?}");
}

#[tokio::test]
async fn resources_to_skip_records_a_resource_the_rollback_failed_as_the_previous_template_says() {
    let sim = Sim::new().await;
    let (stack, before) = sim.rollback_failed().await;
    let events_before = sim.events(&stack.stack_id);
    // Only a resource the rollback failed may be skipped: not one the
    // update failed (Second), nor one that did not fail, nor one that is
    // not there. Each is named; nothing changes.
    let refused = sim.continue_rollback("app", &["Second", "Sg", "Nowhere"]).await.unwrap_err();
    assert_eq!(refused.code, "ValidationError");
    assert_eq!(
        refused.message.lines().collect::<Vec<_>>(),
        [
            "ResourcesToSkip: resource [Second] is UPDATE_FAILED because the update failed, not its rollback; you can specify only resources that are in the UPDATE_FAILED state because a rollback failed",
            "ResourcesToSkip: resource [Sg] is in the CREATE_COMPLETE state; you can specify only resources that are in the UPDATE_FAILED state because a rollback failed",
            "ResourcesToSkip: resource [Nowhere] does not exist in stack [app]",
        ]
    );
    assert_eq!(sim.events(&stack.stack_id), events_before, "the refusal changed nothing");
    assert_eq!(sim.describe("app").stack_status, "UPDATE_ROLLBACK_FAILED");

    // Skipping First: nothing is made or looked up for it (it counts as
    // rolled back: the version the update started from); Second is rolled
    // back.
    sim.engine.clear_faults();
    let inspections = sim.inspections_of(IMAGE_A);
    let done = sim.continue_rollback("app", &["First"]).await.unwrap();
    assert_eq!(done.stack_status, "UPDATE_ROLLBACK_COMPLETE", "{done:?}");
    assert_eq!(sim.inspections_of(IMAGE_A) - inspections, 1, "only Second was rolled back");
    let first = sim.row(&stack.stack_id, "First");
    assert_eq!(first.status, ResourceStatus::UpdateComplete);
    let previous = before.iter().find(|row| row.logical_id == "First").unwrap();
    assert_eq!(first.properties, previous.properties, "recorded as the previous template says");
    // Its first version again, which launches image A, as before the update.
    let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
    assert_eq!(json(&first.attributes), json(&previous.attributes));
    assert_eq!(sim.launch_image(&stack.stack_id, "First"), IMAGE_A);
    assert_eq!(sim.launch_image(&stack.stack_id, "Second"), IMAGE_A);
    let tail = sim.events(&stack.stack_id)[events_before.len()..].to_vec();
    let expected = pairs(&[
        ("app", "UPDATE_ROLLBACK_IN_PROGRESS"),
        ("First", "UPDATE_COMPLETE"),
        ("Second", "UPDATE_IN_PROGRESS"),
        ("Second", "UPDATE_COMPLETE"),
        ("app", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"),
        ("app", "UPDATE_ROLLBACK_COMPLETE"),
    ]);
    assert_eq!(tail, expected);
    let skipped = sim
        .service
        .describe_stack_events(DescribeStackEventsInput { stack_name: "app".into() })
        .unwrap()
        .stack_events
        .into_iter()
        .find(|event| event.logical_resource_id == "First")
        .unwrap();
    assert!(
        skipped
            .resource_status_reason
            .unwrap()
            .starts_with("Resource skipped by ContinueUpdateRollback"),
    );
}

#[tokio::test]
async fn continue_update_rollback_is_refused_in_any_other_state_and_changes_nothing() {
    let sim = Sim::new().await;
    let stack = sim.create("net", NETWORK, &[]).await.unwrap();
    let before = sim.events(&stack.stack_id);
    for skip in [&[][..], &["Vpc"][..]] {
        let error = sim.continue_rollback("net", skip).await.unwrap_err();
        assert_eq!(
            (error.code.as_str(), error.message.as_str()),
            (
                "ValidationError",
                "ContinueUpdateRollback cannot be called from current stack status CREATE_COMPLETE"
            )
        );
    }
    assert_eq!(sim.events(&stack.stack_id), before);
    assert_eq!(sim.describe("net").stack_status, "CREATE_COMPLETE");
    let input = ContinueUpdateRollbackInput { stack_name: "nowhere".into(), ..Default::default() };
    let missing = sim.service.continue_update_rollback(input).await.unwrap_err();
    assert_eq!(missing.message, "Stack with id nowhere does not exist");
}

#[tokio::test]
async fn a_group_still_being_created_is_described_with_its_settings() {
    // A group waiting for its signals (the new group of a blue/green update,
    // or a create) has no attributes in the store yet: its settings come
    // from its controller, not zeros.
    let sim = Sim::new().await;
    sim.engine.add_image("localhost/app:1");
    let body = SIZED.replace(
        "      HealthCheckType: EC2\n",
        "      HealthCheckType: EC2\n    CreationPolicy:\n      ResourceSignal:\n        Count: 2\n        Timeout: PT1H\n",
    );
    let input = CreateStackInput {
        stack_name: "app".into(),
        template_body: Some(body),
        parameters: given(&[("Size", "2")]),
        ..Default::default()
    };
    let created = sim.service.create_stack(input).await.unwrap();
    let group = loop {
        let mut groups = sim
            .service
            .describe_auto_scaling_groups(Default::default())
            .unwrap()
            .auto_scaling_groups;
        if let Some(group) = groups.pop()
            && group.instances.len() == 2
        {
            break group;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(sim.describe(&created.stack_id).stack_status, "CREATE_IN_PROGRESS");
    assert_eq!(
        (group.min_size, group.desired_capacity, group.max_size, group.health_check_type.as_str()),
        (0, 2, 2, "EC2"),
        "{group:?}"
    );
    assert!(!group.availability_zones.is_empty(), "{group:?}");
}
