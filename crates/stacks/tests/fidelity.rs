//! CloudFormation fidelity of stack operations (QA s10), against the
//! recording fake engine and the real service, store and fleet:
//! - H1: a rolling or blue/green update of a group whose target group no
//!   listener uses gates on its signals (the targets are `unused`, as on
//!   AWS), and completes;
//! - M2: `DeletionPolicy: RetainExceptOnCreate` deletes on the rollback of
//!   the create and keeps on delete; `Retain` keeps what an update removes;
//!   `UpdateReplacePolicy: Retain` keeps what an update replaces; a kept
//!   group's containers run on and outlive a restart's orphan sweep;
//! - M3: an update that changes a resource's `Type` is refused whole;
//! - L5: a recorded-only type is replaced where AWS replaces it (a new
//!   physical id), so an export made from it that another stack imports
//!   cannot change;
//! - L6: `Received SUCCESS signal with UniqueId ...` events, and a rolling
//!   update's batches in CloudFormation's words;
//! - L7: `MinInstancesInService` not below `MaxSize` is refused at the
//!   request.
//!
//! Every instance signals as soon as its folder exists, as the image's user
//! data would: SUCCESS, FAILURE from the broken image.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autopatch_stacks::api::*;
use autopatch_store::Store;

mod fake;

use fake::FakeStacks;

const IMAGE_A: &str = "localhost/app:1";
const IMAGE_B: &str = "localhost/app:2";
/// An image whose instances signal FAILURE.
const BROKEN: &str = "localhost/app:broken";

/// The shared fake-engine stacks, and the instances signalling as their
/// images would.
struct Harness {
    stacks: FakeStacks,
    signaller: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.signaller.abort();
    }
}

impl std::ops::Deref for Harness {
    type Target = FakeStacks;

    fn deref(&self) -> &FakeStacks {
        &self.stacks
    }
}

impl std::ops::DerefMut for Harness {
    fn deref_mut(&mut self) -> &mut FakeStacks {
        &mut self.stacks
    }
}

impl Harness {
    async fn new() -> Harness {
        let stacks = FakeStacks::new(&[IMAGE_A, IMAGE_B, BROKEN]).await;
        let signaller =
            tokio::spawn(signal_success(stacks.store.clone(), stacks.dir.path().join("instances")));
        Harness { stacks, signaller }
    }

    /// The images the group's live instances run.
    fn images_of(&self, group: &str) -> Vec<String> {
        self.store
            .instances_of_group(group, false)
            .unwrap()
            .into_iter()
            .map(|instance| instance.image)
            .collect()
    }

    fn physical_id(&self, stack_id: &str, logical_id: &str) -> String {
        let rows = self.store.stack_resources(stack_id).unwrap();
        let row = rows.into_iter().find(|row| row.logical_id == logical_id).unwrap();
        row.physical_id.unwrap()
    }

    /// The instance containers the engine holds, by group.
    fn containers_of(&self, group: &str) -> BTreeSet<String> {
        self.engine
            .containers()
            .into_iter()
            .filter(|container| {
                container.labels.get("autopatch.group").map(String::as_str) == Some(group)
            })
            .map(|container| container.name)
            .collect()
    }
}

/// Writes one `cfn-signal` file per live instance, once, for the resource
/// that made its group (`<stack>-<logical id>-<suffix>`): FAILURE from the
/// broken image, SUCCESS from the others.
async fn signal_success(store: Arc<Store>, instances: PathBuf) {
    let mut signalled = BTreeSet::new();
    loop {
        for row in store.live_instances().unwrap_or_default() {
            if signalled.contains(&row.instance_id) || !instances.join(&row.instance_id).exists() {
                continue;
            }
            let status = if row.image == BROKEN { "FAILURE" } else { "SUCCESS" };
            let resource = row
                .group_name
                .rsplit_once('-')
                .and_then(|(named, _)| named.split_once('-'))
                .map_or("Group", |(_, logical_id)| logical_id);
            let text = format!(
                "version=1\ninstance_id={id}\nstack={stack}\nresource={resource}\nstatus={status}\nunique_id={id}\n",
                id = row.instance_id,
                stack = row.stack_id.clone().unwrap_or_default(),
            );
            let folder = instances.join(&row.instance_id).join("signals");
            let written = std::fs::create_dir_all(&folder)
                .and_then(|()| std::fs::write(folder.join(".tmp-1"), &text))
                .and_then(|()| std::fs::rename(folder.join(".tmp-1"), folder.join("1-1.signal")));
            if written.is_ok() {
                signalled.insert(row.instance_id);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A target group no listener uses, and a group of two in it, created once
/// both signalled; `POLICY` is replaced by the update policy.
const NO_LISTENER: &str = r#"
Parameters:
  Image:
    Type: String
Resources:
  TG:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Port: 80
      Protocol: HTTP
      HealthCheckIntervalSeconds: 5
      HealthyThresholdCount: 2
  LC:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: !Ref Image
      InstanceType: t3.micro
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    CreationPolicy:
      ResourceSignal:
        Count: 2
        Timeout: PT20S
    UpdatePolicy:
POLICY
    Properties:
      LaunchConfigurationName: !Ref LC
      MinSize: 0
      MaxSize: 3
      DesiredCapacity: 2
      TargetGroupARNs: [!Ref TG]
"#;

const ROLLING: &str = "      AutoScalingRollingUpdate:
        MinInstancesInService: 1
        MaxBatchSize: 1
        PauseTime: PT20S
        WaitOnResourceSignals: true";

const REPLACING: &str = "      AutoScalingReplacingUpdate:
        WillReplace: true";

/// QA s10 H1: every new instance signalled, and its targets are `unused`
/// (no listener): the update completes, every instance on the new image.
async fn update_without_a_listener(policy: &str) -> (Harness, Stack, Vec<String>) {
    let harness = Harness::new().await;
    let body = NO_LISTENER.replace("POLICY", policy);
    let stack = harness.create("app", &body, &[("Image", IMAGE_A)]).await;
    assert_eq!(stack.stack_status, "CREATE_COMPLETE", "{:#?}", harness.events(&stack.stack_id));
    let updated = harness.update("app", &body, &[("Image", IMAGE_B)]).await.unwrap();
    let events = harness.events(&stack.stack_id);
    assert_eq!(updated.stack_status, "UPDATE_COMPLETE", "{events:#?}");
    let group = harness.physical_id(&stack.stack_id, "Group");
    assert_eq!(harness.images_of(&group), [IMAGE_B, IMAGE_B], "{events:#?}");
    (harness, stack, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_behind_no_listener_gates_on_signals_and_completes() {
    let (harness, stack, events) = update_without_a_listener(ROLLING).await;
    // The same group, rolled: nothing replaced it.
    assert!(
        !events.iter().any(|event| event.starts_with("Group UPDATE_IN_PROGRESS")
            && event.contains("requires the creation of a new physical resource")),
        "{events:#?}"
    );
    let group = harness.physical_id(&stack.stack_id, "Group");
    assert_eq!(harness.containers_of(&group).len(), 2, "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blue_green_update_behind_no_listener_gates_on_signals_and_completes() {
    let (harness, stack, events) = update_without_a_listener(REPLACING).await;
    let group = harness.physical_id(&stack.stack_id, "Group");
    assert_eq!(harness.containers_of(&group).len(), 2, "{events:#?}");
    assert_eq!(harness.engine.containers().len(), 2, "the old group is gone: {events:#?}");
}

/// QA s10 L6: the signals received are events, and so are the batches of
/// a rolling update, in CloudFormation's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_and_rolling_batches_are_reported_as_cloudformation_does() {
    let (harness, stack, events) = update_without_a_listener(ROLLING).await;
    let group = harness.physical_id(&stack.stack_id, "Group");
    let reasons = |status: &str| -> Vec<String> {
        let prefix = format!("Group {status} [{group}] ");
        events.iter().filter_map(|event| event.strip_prefix(&prefix)).map(str::to_owned).collect()
    };
    let created = reasons("CREATE_IN_PROGRESS");
    let signals = created
        .iter()
        .filter(|reason| reason.starts_with("Received SUCCESS signal with UniqueId i-"));
    assert_eq!(signals.count(), 2, "one per instance: {events:#?}");
    let updated: Vec<String> = reasons("UPDATE_IN_PROGRESS")
        .into_iter()
        .map(|reason| {
            // Instance ids vary: keep the words.
            reason
                .split(' ')
                .map(|word| if word.contains("i-") { "<ids>" } else { word })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let expected = [
        "",
        "Rolling update initiated. Terminating 2 obsolete instance(s) in batches of 1, while keeping at least 1 instance(s) in service. Waiting on resource signals with a timeout of PT20S when new instances are added to the autoscaling group.",
        "Terminating instance(s) <ids> replacing with 1 new instance(s).",
        "New instance(s) added to autoscaling group - Waiting on 1 resource signal(s) with a timeout of PT20S.",
        "Received SUCCESS signal with UniqueId <ids>",
        "Successfully terminated instance(s) <ids> (Progress 50%).",
        "Terminating instance(s) <ids> replacing with 1 new instance(s).",
        "New instance(s) added to autoscaling group - Waiting on 1 resource signal(s) with a timeout of PT20S.",
        "Received SUCCESS signal with UniqueId <ids>",
        "Successfully terminated instance(s) <ids> (Progress 100%).",
    ];
    // The order of what happens at once may differ (a new instance can
    // signal before the old one is gone): the same events, each once.
    let mut sorted_updated = updated.clone();
    sorted_updated.sort();
    let mut sorted_expected: Vec<String> = expected.iter().map(|line| line.to_string()).collect();
    sorted_expected.sort();
    assert_eq!(sorted_updated, sorted_expected, "{events:#?}");
    assert_eq!(updated[1], expected[1]);
    let at = |progress: &str| updated.iter().position(|reason| reason.contains(progress));
    assert!(at("(Progress 50%)") < at("(Progress 100%)"), "{updated:#?}");
}

/// QA s10 L7: AWS fails a rolling update that would keep MaxSize or more
/// instances in service; here the request is refused, naming where.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_instances_in_service_not_below_max_size_is_refused_at_the_request() {
    let harness = Harness::new().await;
    let body = NO_LISTENER.replace("POLICY", ROLLING);
    let stack = harness.create("app", &body, &[("Image", IMAGE_A)]).await;
    assert_eq!(stack.stack_status, "CREATE_COMPLETE");
    let events = harness.events(&stack.stack_id).len();
    let bad = body.replace("MinInstancesInService: 1", "MinInstancesInService: 3");
    let refused = harness.update("app", &bad, &[("Image", IMAGE_B)]).await.unwrap_err();
    assert!(
        refused.message.contains("property UpdatePolicy.AutoScalingRollingUpdate.MinInstancesInService of Group: found \"3\", not below MaxSize 3")
            && refused.message.contains("MinInstancesInService must be less than the autoscaling group's MaxSize"),
        "{refused}"
    );
    assert_eq!(harness.describe("app").stack_status, "CREATE_COMPLETE");
    assert_eq!(harness.events(&stack.stack_id).len(), events, "nothing happened");
    let group = harness.physical_id(&stack.stack_id, "Group");
    assert_eq!(harness.images_of(&group), [IMAGE_A, IMAGE_A]);
}

/// QA s10 M3: changing a resource's type is refused before anything
/// changes, with AWS's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_changes_a_resource_type_is_refused_whole() {
    let harness = Harness::new().await;
    let body = "Resources:\n  SG:\n    Type: AWS::EC2::SecurityGroup\n    Properties:\n      GroupDescription: x\n";
    let stack = harness.create("app", body, &[]).await;
    assert_eq!(stack.stack_status, "CREATE_COMPLETE");
    let events = harness.events(&stack.stack_id).len();
    let retyped = "Resources:\n  SG:\n    Type: AWS::EC2::EIP\n  Other:\n    Type: AWS::EC2::InternetGateway\n";
    let refused = harness.update("app", retyped, &[]).await.unwrap_err();
    assert!(
        refused.message.contains("3:11: error: Update of resource type is not permitted. The new template modifies resource type of the following resources: [SG] (from AWS::EC2::SecurityGroup to AWS::EC2::EIP)"),
        "{refused}"
    );
    assert_eq!(harness.describe("app").stack_status, "CREATE_COMPLETE");
    assert_eq!(harness.events(&stack.stack_id).len(), events, "nothing happened");
    let rows = harness.store.stack_resources(&stack.stack_id).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].resource_type, "AWS::EC2::SecurityGroup");
}

const EXPORTER: &str = r#"
Parameters:
  Description:
    Type: String
Resources:
  SG:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: !Ref Description
Outputs:
  Group:
    Value: !Ref SG
    Export:
      Name: !Sub "${AWS::StackName}-sg"
"#;

const IMPORTER: &str = r#"
Resources:
  SG:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: !ImportValue exp-sg
"#;

/// QA s10 L5: a new GroupDescription replaces the security group (a new
/// id), as on AWS: the export made from it changes, which an importing
/// stack forbids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_resource_is_replaced_where_aws_replaces_it() {
    let harness = Harness::new().await;
    let exporter = harness.create("exp", EXPORTER, &[("Description", "one")]).await;
    assert_eq!(exporter.stack_status, "CREATE_COMPLETE");
    let first = harness.physical_id(&exporter.stack_id, "SG");
    let updated = harness.update("exp", EXPORTER, &[("Description", "two")]).await.unwrap();
    let events = harness.events(&exporter.stack_id);
    assert_eq!(updated.stack_status, "UPDATE_COMPLETE", "{events:#?}");
    let second = harness.physical_id(&exporter.stack_id, "SG");
    assert_ne!(first, second, "a new security group");
    assert!(second.starts_with("sg-"), "{second}");
    assert_eq!(updated.outputs[0].output_value, second);
    assert!(events.contains(&format!("SG DELETE_COMPLETE [{first}] ")), "{events:#?}");

    // Imported, the export may not change: the update rolls back.
    let importer = harness.create("imp", IMPORTER, &[]).await;
    assert_eq!(importer.stack_status, "CREATE_COMPLETE");
    let refused = harness.update("exp", EXPORTER, &[("Description", "three")]).await.unwrap();
    let events = harness.events(&exporter.stack_id);
    assert_eq!(refused.stack_status, "UPDATE_ROLLBACK_COMPLETE", "{events:#?}");
    assert!(
        events
            .iter()
            .any(|event| event.ends_with("Export exp-sg cannot be updated as it is in use by imp")),
        "{events:#?}"
    );
    assert_eq!(harness.physical_id(&exporter.stack_id, "SG"), second);
    // In place where AWS changes in place: the id stays.
    let ingress = EXPORTER.replace(
        "      GroupDescription: !Ref Description\n",
        "      GroupDescription: !Ref Description\n      SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 0.0.0.0/0}]\n",
    );
    let changed = harness.update("exp", &ingress, &[]).await.unwrap();
    assert_eq!(
        changed.stack_status,
        "UPDATE_COMPLETE",
        "{:#?}",
        harness.events(&exporter.stack_id)
    );
    assert_eq!(harness.physical_id(&exporter.stack_id, "SG"), second);
}

/// A VPC and a group, kept on delete but not by the rollback of the create
/// that made them; `Second` fails when its image is the broken one.
const RETAINED_EXCEPT_ON_CREATE: &str = r#"
Parameters:
  Image:
    Type: String
  SecondImage:
    Type: String
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    DeletionPolicy: RetainExceptOnCreate
    Properties:
      CidrBlock: 10.7.0.0/16
  Subnet:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: 10.7.1.0/24
  LC:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: !Ref Image
      InstanceType: t3.micro
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    DeletionPolicy: RetainExceptOnCreate
    CreationPolicy:
      ResourceSignal:
        Count: 2
        Timeout: PT20S
    Properties:
      LaunchConfigurationName: !Ref LC
      MinSize: 0
      MaxSize: 2
      DesiredCapacity: 2
      VPCZoneIdentifier: [!Ref Subnet]
  SecondLC:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: !Ref SecondImage
      InstanceType: t3.micro
  Second:
    Type: AWS::AutoScaling::AutoScalingGroup
    DependsOn: Group
    CreationPolicy:
      ResourceSignal:
        Count: 1
        Timeout: PT20S
    Properties:
      LaunchConfigurationName: !Ref SecondLC
      MinSize: 0
      MaxSize: 1
      DesiredCapacity: 1
      VPCZoneIdentifier: [!Ref Subnet]
"#;

/// QA s10 M2: RetainExceptOnCreate deletes in the create's rollback, and
/// keeps on delete: the network stays, the group's containers run on,
/// unmanaged, and a restarted daemon's orphan sweep leaves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_except_on_create_deletes_on_the_creates_rollback_and_keeps_on_delete() {
    let mut harness = Harness::new().await;
    let failed = harness
        .create("app", RETAINED_EXCEPT_ON_CREATE, &[("Image", IMAGE_A), ("SecondImage", BROKEN)])
        .await;
    let events = harness.events(&failed.stack_id);
    assert_eq!(failed.stack_status, "ROLLBACK_COMPLETE", "{events:#?}");
    assert!(events.iter().any(|event| event.starts_with("Group DELETE_COMPLETE")), "{events:#?}");
    assert!(events.iter().any(|event| event.starts_with("Vpc DELETE_COMPLETE")), "{events:#?}");
    assert!(harness.engine.containers().is_empty(), "the rollback deleted the group");
    assert!(harness.engine.networks().is_empty(), "and the network");
    harness.delete(&failed.stack_id).await;

    let stack = harness
        .create("app", RETAINED_EXCEPT_ON_CREATE, &[("Image", IMAGE_A), ("SecondImage", IMAGE_B)])
        .await;
    assert_eq!(stack.stack_status, "CREATE_COMPLETE", "{:#?}", harness.events(&stack.stack_id));
    let group = harness.physical_id(&stack.stack_id, "Group");
    let vpc = harness.physical_id(&stack.stack_id, "Vpc");
    let kept = harness.containers_of(&group);
    assert_eq!(kept.len(), 2);
    let deleted = harness.delete(&stack.stack_id).await;
    let events = harness.events(&stack.stack_id);
    assert_eq!(deleted.stack_status, "DELETE_COMPLETE", "{events:#?}");
    assert!(
        events.iter().any(|event| event.starts_with(&format!(
            "Group DELETE_SKIPPED [{group}] Retained: 2 instance(s) keep running"
        ))),
        "{events:#?}"
    );
    assert!(
        events.contains(&format!(
            "Vpc DELETE_SKIPPED [{vpc}] Retained: engine network autopatch-{vpc} kept"
        )),
        "{events:#?}"
    );
    assert!(events.iter().any(|event| event.starts_with("Second DELETE_COMPLETE")), "{events:#?}");
    assert_eq!(harness.containers_of(&group), kept, "the retained group's containers run on");
    assert!(harness.engine.networks().contains(&format!("autopatch-{vpc}")));
    assert!(harness.store.instances_of_group(&group, false).unwrap().is_empty(), "unmanaged");

    harness.restart().await;
    assert_eq!(harness.containers_of(&group), kept, "no orphan sweep removes them");
    assert_eq!(harness.engine.containers().len(), 2, "only they are left");
}

/// A group replaced by a blue/green update and a launch configuration
/// replaced by any update, both kept by `UpdateReplacePolicy`; a security
/// group and another group the update removes, kept by `DeletionPolicy`.
const KEPT_ON_UPDATE: &str = r#"
Parameters:
  Image:
    Type: String
Resources:
  LC:
    Type: AWS::AutoScaling::LaunchConfiguration
    UpdateReplacePolicy: Retain
    Properties:
      ImageId: !Ref Image
      InstanceType: t3.micro
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    UpdateReplacePolicy: Retain
    UpdatePolicy:
      AutoScalingReplacingUpdate:
        WillReplace: true
    CreationPolicy:
      ResourceSignal:
        Count: 1
        Timeout: PT20S
    Properties:
      LaunchConfigurationName: !Ref LC
      MinSize: 0
      MaxSize: 1
      DesiredCapacity: 1
REMOVED
"#;

const REMOVED: &str = r#"  Keep:
    Type: AWS::EC2::SecurityGroup
    DeletionPolicy: Retain
    Properties:
      GroupDescription: k
  KeptGroup:
    Type: AWS::AutoScaling::AutoScalingGroup
    DeletionPolicy: Retain
    Properties:
      LaunchConfigurationName: !Ref LC
      MinSize: 0
      MaxSize: 1
      DesiredCapacity: 1
  Gone:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: g
"#;

/// QA s10 M2: an update keeps what it removes with `DeletionPolicy:
/// Retain` and what it replaces with `UpdateReplacePolicy: Retain`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_keeps_what_it_removes_or_replaces_when_the_policy_says_so() {
    let mut harness = Harness::new().await;
    let before = KEPT_ON_UPDATE.replace("REMOVED", REMOVED);
    let stack = harness.create("app", &before, &[("Image", IMAGE_A)]).await;
    assert_eq!(stack.stack_status, "CREATE_COMPLETE", "{:#?}", harness.events(&stack.stack_id));
    let id = |name: &str| harness.physical_id(&stack.stack_id, name);
    let (old_lc, old_group, keep, kept_group, gone) =
        (id("LC"), id("Group"), id("Keep"), id("KeptGroup"), id("Gone"));
    let old_containers = harness.containers_of(&old_group);
    let kept_containers = harness.containers_of(&kept_group);
    assert_eq!((old_containers.len(), kept_containers.len()), (1, 1));

    let after = KEPT_ON_UPDATE.replace("REMOVED", "");
    let updated = harness.update("app", &after, &[("Image", IMAGE_B)]).await.unwrap();
    let events = harness.events(&stack.stack_id);
    assert_eq!(updated.stack_status, "UPDATE_COMPLETE", "{events:#?}");
    let new_group = harness.physical_id(&stack.stack_id, "Group");
    assert_ne!(new_group, old_group);
    for kept in [format!("LC DELETE_SKIPPED [{old_lc}] "), format!("Keep DELETE_SKIPPED [{keep}] ")]
    {
        assert!(events.contains(&kept), "{kept}: {events:#?}");
    }
    for kept in [
        format!("Group DELETE_SKIPPED [{old_group}] Retained: 1 instance(s) keep running"),
        format!("KeptGroup DELETE_SKIPPED [{kept_group}] Retained: 1 instance(s) keep running"),
    ] {
        assert!(events.iter().any(|event| event.starts_with(&kept)), "{kept}: {events:#?}");
    }
    assert!(events.contains(&format!("Gone DELETE_COMPLETE [{gone}] ")), "{events:#?}");
    assert!(
        !events.iter().any(|event| event.contains("DELETE_IN_PROGRESS")
            && (event.contains(&old_group) || event.contains(&kept_group))),
        "{events:#?}"
    );
    // The kept groups' containers run on, next to the new group's.
    assert_eq!(harness.containers_of(&old_group), old_containers);
    assert_eq!(harness.containers_of(&kept_group), kept_containers);
    assert_eq!(harness.containers_of(&new_group).len(), 1);
    assert_eq!(harness.images_of(&new_group), [IMAGE_B]);
    harness.restart().await;
    assert_eq!(harness.engine.containers().len(), 3, "a restart keeps them all");
    let deleted = harness.delete(&stack.stack_id).await;
    assert_eq!(deleted.stack_status, "DELETE_COMPLETE");
    let left: BTreeSet<String> = harness.engine.containers().into_iter().map(|c| c.name).collect();
    let kept: BTreeSet<String> = old_containers.union(&kept_containers).cloned().collect();
    assert_eq!(left, kept, "the stack's delete deletes only what it still manages");
}
