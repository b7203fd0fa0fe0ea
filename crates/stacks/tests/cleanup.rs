//! An update's cleanup that cannot delete what the update removed (the
//! engine refuses to remove the old group's containers and the old VPC's
//! network, every time) tries each delete once, as CloudFormation does: the
//! resource is `DELETE_FAILED` with the engine's reason and the stack still
//! ends `UPDATE_COMPLETE` (`UPDATE_ROLLBACK_COMPLETE` for a rollback's
//! cleanup), also when a restarted daemon resumes the cleanup; a later
//! DeleteStack, the fault gone, deletes it. Against the recording fake
//! engine and the real service, store and fleet.

mod fake;

use std::time::Duration;

use autopatch_engine::{Call, FaultKind, Operation};
use autopatch_model::{StackStatus, Timestamp};
use autopatch_stacks::api::*;

use fake::{FakeStacks, WATCHDOG};

const IMAGE: &str = "localhost/app:1";

/// A group of one and a VPC, next to a launch configuration that stays.
const BEFORE: &str = r#"
Resources:
  LC:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: localhost/app:1
      InstanceType: t3.micro
  OldGroup:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      LaunchConfigurationName: !Ref LC
      MinSize: 0
      MaxSize: 1
      DesiredCapacity: 1
  OldVpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: 10.0.0.0/16
"#;

/// The update removes the group and the VPC.
const AFTER: &str = r#"
Resources:
  LC:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: localhost/app:1
      InstanceType: t3.micro
"#;

/// The update adds two VPCs; the engine refuses the second one's network,
/// so the update fails and its rollback's cleanup deletes both.
const FAILING: &str = r#"
Resources:
  LC:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: localhost/app:1
      InstanceType: t3.micro
  NewVpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: 10.1.0.0/16
  BadVpc:
    Type: AWS::EC2::VPC
    DependsOn: NewVpc
    Properties:
      CidrBlock: 10.2.0.0/16
"#;

/// The shared fake-engine stacks, with what these tests add.
struct Harness(FakeStacks);

impl std::ops::Deref for Harness {
    type Target = FakeStacks;

    fn deref(&self) -> &FakeStacks {
        &self.0
    }
}

impl std::ops::DerefMut for Harness {
    fn deref_mut(&mut self) -> &mut FakeStacks {
        &mut self.0
    }
}

impl Harness {
    async fn new() -> Harness {
        Harness(FakeStacks::new(&[IMAGE]).await)
    }

    /// The engine refuses, every time, to remove a container or a network.
    fn refuse_removals(&self) {
        self.engine.fail_when(|call: &Call| {
            matches!(call.operation(), Operation::ContainerRemove | Operation::NetworkRemove)
                .then_some(FaultKind::Api)
        });
    }

    /// Waits until `done` holds (a watchdog, not a timing).
    async fn until(&self, done: impl Fn() -> bool) {
        let polled = async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(WATCHDOG, polled).await.expect("the condition never held");
    }

    /// Creates the stack `app` from `body`, which must complete.
    async fn create_app(&self, body: &str) -> Stack {
        let stack = self.create("app", body, &[]).await;
        assert_eq!(stack.stack_status, "CREATE_COMPLETE", "{:#?}", self.events(&stack.stack_id));
        stack
    }

    /// Updates the stack `app` to `body` and waits for the update to end.
    async fn update_app(&self, body: &str) -> Stack {
        self.update("app", body, &[]).await.unwrap()
    }

    /// The engine networks of the stack's VPCs.
    fn vpc_networks(&self) -> Vec<String> {
        let networks = self.engine.networks().into_iter();
        networks.filter(|name| name.starts_with("autopatch-vpc-")).collect()
    }

    /// The resource's status and reason, as the store records them.
    fn resource(&self, stack_id: &str, logical_id: &str) -> (String, Option<String>) {
        let rows = self.store.stack_resources(stack_id).unwrap();
        let row = rows.into_iter().find(|row| row.logical_id == logical_id).unwrap();
        (row.status.as_str().to_owned(), row.status_reason)
    }

    /// How many times a resource went `DELETE_IN_PROGRESS`.
    fn delete_attempts(&self, stack_id: &str, logical_id: &str) -> usize {
        let prefix = format!("{logical_id} DELETE_IN_PROGRESS ");
        self.events(stack_id).iter().filter(|event| event.starts_with(&prefix)).count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleanup_that_cannot_delete_tries_once_completes_and_a_later_delete_retries() {
    let mut harness = Harness::new().await;
    let stack = harness.create_app(BEFORE).await;
    let id = stack.stack_id.clone();
    // The group's instance runs.
    harness.until(|| harness.engine.containers().len() == 1).await;
    assert_eq!(harness.vpc_networks().len(), 1, "{:?}", harness.engine.networks());

    harness.refuse_removals();
    let updated = harness.update_app(AFTER).await;
    let events = harness.events(&id);
    assert_eq!(updated.stack_status, "UPDATE_COMPLETE", "{events:#?}");
    for logical_id in ["OldGroup", "OldVpc"] {
        let (status, reason) = harness.resource(&id, logical_id);
        assert_eq!(status, "DELETE_FAILED", "{logical_id}: {events:#?}");
        let reason = reason.unwrap_or_default();
        assert!(reason.contains("injected fault"), "{logical_id}: the engine's reason: {reason}");
        assert_eq!(harness.delete_attempts(&id, logical_id), 1, "{logical_id}: {events:#?}");
    }
    assert_eq!(harness.engine.calls_of(Operation::NetworkRemove).len(), 1, "{events:#?}");

    // A daemon that stopped after the failed delete was recorded, before
    // the stack's transition: the resumed cleanup does not try it again.
    let cleanup = StackStatus::UpdateCompleteCleanupInProgress;
    harness
        .store
        .set_stack_status(&id, cleanup, None, Timestamp::from_millis(1_795_524_896_789))
        .unwrap();
    harness.restart().await;
    let resumed = harness.wait(&id).await;
    assert_eq!(resumed.stack_status, "UPDATE_COMPLETE", "{:#?}", harness.events(&id));
    assert_eq!(harness.delete_attempts(&id, "OldVpc"), 1, "{:#?}", harness.events(&id));
    assert_eq!(harness.engine.calls_of(Operation::NetworkRemove).len(), 1);
    assert_eq!(harness.resource(&id, "OldVpc").0, "DELETE_FAILED");

    // The fault gone, DeleteStack deletes what the cleanup could not.
    harness.engine.clear_faults();
    let deleted = harness.delete(&id).await;
    let events = harness.events(&id);
    assert_eq!(deleted.stack_status, "DELETE_COMPLETE", "{events:#?}");
    for logical_id in ["OldGroup", "OldVpc"] {
        assert_eq!(harness.resource(&id, logical_id).0, "DELETE_COMPLETE", "{events:#?}");
    }
    assert_eq!(harness.delete_attempts(&id, "OldVpc"), 2, "{events:#?}");
    assert!(harness.engine.containers().is_empty(), "{events:#?}");
    assert!(harness.vpc_networks().is_empty(), "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_cleanup_that_cannot_delete_tries_once_and_completes() {
    let harness = Harness::new().await;
    let stack = harness.create_app(AFTER).await;
    let id = stack.stack_id.clone();

    harness.refuse_removals();
    harness.engine.fail_nth(Operation::NetworkEnsure, 2, FaultKind::Api);
    let rolled_back = harness.update_app(FAILING).await;
    let events = harness.events(&id);
    assert_eq!(rolled_back.stack_status, "UPDATE_ROLLBACK_COMPLETE", "{events:#?}");
    let (status, reason) = harness.resource(&id, "NewVpc");
    assert_eq!(status, "DELETE_FAILED", "{events:#?}");
    assert!(reason.unwrap_or_default().contains("injected fault"), "{events:#?}");
    assert_eq!(harness.delete_attempts(&id, "NewVpc"), 1, "{events:#?}");

    harness.engine.clear_faults();
    let deleted = harness.delete(&id).await;
    let events = harness.events(&id);
    assert_eq!(deleted.stack_status, "DELETE_COMPLETE", "{events:#?}");
    assert_eq!(harness.resource(&id, "NewVpc").0, "DELETE_COMPLETE", "{events:#?}");
    assert!(harness.vpc_networks().is_empty(), "{events:#?}");
}
