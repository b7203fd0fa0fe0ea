//! Rollbacks of replacing updates of a group launched from a launch
//! template, against the recording fake engine (QA s9b): the rollback makes
//! the old group current again and ends, however it was interrupted;
//! `ContinueUpdateRollback` with skips converges without making groups; and
//! no group of the stack outlives it, whatever state it is deleted in.
//!
//! Instances signal as the image they run would: a test writes each new
//! instance's `cfn-signal` file, FAILURE for the broken image (its user data
//! fails, as the golden image without Apache does), SUCCESS for the others.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use autopatch_engine::{Call, FaultKind};
use autopatch_model::ResourceStatus;
use autopatch_stacks::api::*;
use autopatch_store::{StackResourceRow, Store};

mod fake;

use fake::{FakeStacks, WATCHDOG, parameter};

const IMAGE_A: &str = "localhost/app:1";
/// An image whose instances signal FAILURE.
const BROKEN: &str = "localhost/app:broken";

/// The QA template's shape: a launch template, and a group of two launched
/// from its latest version, replaced (blue/green) when it changes, created
/// once both instances signalled.
const TEMPLATE: &str = r#"
Parameters:
  Image:
    Type: String
Resources:
  Launch:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateData:
        ImageId: !Ref Image
        InstanceType: t3.micro
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    CreationPolicy:
      ResourceSignal:
        Count: 2
        Timeout: PT1H
    UpdatePolicy:
      AutoScalingReplacingUpdate:
        WillReplace: true
    Properties:
      LaunchTemplate:
        LaunchTemplateId: !Ref Launch
        Version: !GetAtt Launch.LatestVersionNumber
      MinSize: 0
      MaxSize: 2
      DesiredCapacity: 2
      HealthCheckType: EC2
"#;

/// The shared fake-engine stacks, and the instances signalling as their
/// images would.
struct Sim {
    stacks: FakeStacks,
    signaller: tokio::task::JoinHandle<()>,
    /// While false, instances of the broken image do not signal yet.
    broken_signals: Arc<AtomicBool>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.signaller.abort();
    }
}

impl std::ops::Deref for Sim {
    type Target = FakeStacks;

    fn deref(&self) -> &FakeStacks {
        &self.stacks
    }
}

impl Sim {
    async fn new() -> Sim {
        let stacks = FakeStacks::new(&[IMAGE_A, BROKEN]).await;
        let broken_signals = Arc::new(AtomicBool::new(true));
        let signaller = tokio::spawn(signal_as_the_images_would(
            stacks.store.clone(),
            stacks.dir.path().join("instances"),
            broken_signals.clone(),
        ));
        Sim { stacks, signaller, broken_signals }
    }

    /// Creates the stack `app` on image A, which must complete.
    async fn create_app(&self) -> Stack {
        let stack = self.create("app", TEMPLATE, &[("Image", IMAGE_A)]).await;
        assert_eq!(stack.stack_status, "CREATE_COMPLETE", "{:?}", self.events(&stack.stack_id));
        stack
    }

    /// Starts an update of the image; returns at once.
    async fn start_update(&self, image: &str) {
        let input = UpdateStackInput {
            stack_name: "app".into(),
            use_previous_template: Some(true),
            parameters: vec![parameter("Image", image)],
            ..Default::default()
        };
        self.service.update_stack(input).await.unwrap();
    }

    async fn continue_rollback(&self, stack_id: &str, skip: &[&str]) -> Stack {
        let input = ContinueUpdateRollbackInput {
            stack_name: "app".into(),
            resources_to_skip: skip.iter().map(|name| name.to_string()).collect(),
            ..Default::default()
        };
        self.service.continue_update_rollback(input).await.unwrap();
        self.wait(stack_id).await
    }

    /// The events after the `n` first.
    fn events_after(&self, stack_id: &str, n: usize) -> Vec<String> {
        self.events(stack_id).split_off(n)
    }

    fn row(&self, stack_id: &str, logical_id: &str) -> StackResourceRow {
        let rows = self.store.stack_resources(stack_id).unwrap();
        rows.into_iter().find(|row| row.logical_id == logical_id).unwrap()
    }

    fn attributes(&self, stack_id: &str, logical_id: &str) -> serde_json::Value {
        serde_json::from_str(&self.row(stack_id, logical_id).attributes).unwrap()
    }

    /// The groups whose instance containers run (or exist at all).
    fn groups_with_containers(&self) -> BTreeSet<String> {
        self.engine
            .containers()
            .into_iter()
            .filter_map(|container| container.labels.get("autopatch.group").cloned())
            .collect()
    }

    /// The groups DescribeAutoScalingGroups shows.
    fn described_groups(&self) -> BTreeSet<String> {
        self.service
            .describe_auto_scaling_groups(Default::default())
            .unwrap()
            .auto_scaling_groups
            .into_iter()
            .map(|group| group.auto_scaling_group_name)
            .collect()
    }

    /// The stack, after a replacing update to the broken image whose
    /// rollback failed at the launch template: the engine stops answering
    /// about image A (until the test clears the faults), so the launch
    /// template cannot be changed back. The group still names the update's
    /// failed group, and holds the old one.
    async fn rollback_failed_at_the_launch_template(&self) -> (Stack, String, String) {
        let stack = self.create_app().await;
        let old_group = self.row(&stack.stack_id, "Group").physical_id.unwrap();
        self.engine.fail_when(|call| match call {
            Call::ImageInspect { reference } if reference == IMAGE_A => {
                Some(FaultKind::Unreachable)
            }
            _ => None,
        });
        self.start_update(BROKEN).await;
        let failed = self.wait(&stack.stack_id).await;
        assert_eq!(
            failed.stack_status,
            "UPDATE_ROLLBACK_FAILED",
            "{}",
            self.events(&stack.stack_id).join("\n")
        );
        assert_eq!(
            failed.stack_status_reason.as_deref(),
            Some("The following resource(s) failed to update: [Launch].")
        );
        let group = self.row(&stack.stack_id, "Group");
        let new_group = group.physical_id.unwrap();
        assert_ne!(new_group, old_group);
        (failed, old_group, new_group)
    }
}

/// Writes one `cfn-signal` file per live instance, once: FAILURE from the
/// broken image, SUCCESS from any other.
async fn signal_as_the_images_would(
    store: Arc<Store>,
    instances: PathBuf,
    broken_signals: Arc<AtomicBool>,
) {
    let mut signalled = BTreeSet::new();
    loop {
        for row in store.live_instances().unwrap_or_default() {
            if signalled.contains(&row.instance_id) || !instances.join(&row.instance_id).exists() {
                continue;
            }
            if row.image == BROKEN && !broken_signals.load(Ordering::SeqCst) {
                continue;
            }
            let status = if row.image == BROKEN { "FAILURE" } else { "SUCCESS" };
            let text = format!(
                "version=1\ninstance_id={id}\nstack={stack}\nresource=Group\nstatus={status}\nunique_id={id}\n",
                id = row.instance_id,
                stack = row.stack_id.clone().unwrap_or_default(),
            );
            if write_signal(&instances.join(&row.instance_id), &text).is_ok() {
                signalled.insert(row.instance_id);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn write_signal(folder: &Path, text: &str) -> std::io::Result<()> {
    let signals = folder.join("signals");
    std::fs::create_dir_all(&signals)?;
    let partial = signals.join(".tmp-1");
    std::fs::write(&partial, text)?;
    std::fs::rename(partial, signals.join("1-1.signal"))
}

/// Ends the test process when the test it guards has not ended in twice
/// the watchdog's time: an operation that loops without awaiting anything
/// hangs its runtime, timers and all.
struct ProcessWatchdog(Arc<AtomicBool>);

impl ProcessWatchdog {
    #[expect(clippy::print_stderr, reason = "a test process ended by its watchdog says why")]
    fn start(test: &'static str) -> ProcessWatchdog {
        let done = Arc::new(AtomicBool::new(false));
        let seen = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(WATCHDOG * 2);
            if !seen.load(Ordering::SeqCst) {
                eprintln!("{test}: the operation never yields; ending the test process");
                std::process::exit(101);
            }
        });
        ProcessWatchdog(done)
    }
}

impl Drop for ProcessWatchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

const NEW_PHYSICAL: &str = "Requested update requires the creation of a new physical resource";

#[tokio::test]
async fn a_failed_replacing_update_of_a_launch_template_group_rolls_back_to_the_old_group() {
    let sim = Sim::new().await;
    let stack = sim.create_app().await;
    let before = sim.store.stack_resources(&stack.stack_id).unwrap();
    let old_group = sim.row(&stack.stack_id, "Group").physical_id.unwrap();
    assert_eq!(sim.attributes(&stack.stack_id, "Launch")["LatestVersionNumber"], "1");
    let created = sim.events(&stack.stack_id).len();

    sim.start_update(BROKEN).await;
    let done = sim.wait(&stack.stack_id).await;
    let events = sim.events_after(&stack.stack_id, created);
    assert_eq!(done.stack_status, "UPDATE_ROLLBACK_COMPLETE", "{}", events.join("\n"));

    // One replacement, made by the update; the rollback made none.
    let replacements: Vec<&String> =
        events.iter().filter(|event| event.contains(NEW_PHYSICAL)).collect();
    assert_eq!(replacements.len(), 1, "{}", events.join("\n"));
    let new_group = replacements[0].split(['[', ']']).nth(1).unwrap().to_owned();
    // The launch template is its first version again, the group the old
    // one, every row what it was before the update.
    assert_eq!(sim.attributes(&stack.stack_id, "Launch")["LatestVersionNumber"], "1");
    for row in &before {
        let now = sim.row(&stack.stack_id, &row.logical_id);
        assert_eq!(now.physical_id, row.physical_id, "{}", row.logical_id);
        assert_eq!(now.properties, row.properties, "{}", row.logical_id);
        assert_eq!(now.replaced, None, "{}", row.logical_id);
    }
    // The failed group was deleted by the rollback's cleanup: only the old
    // group runs, and it is the only one described.
    assert!(
        events.contains(&format!("Group DELETE_COMPLETE [{new_group}] ")),
        "{}",
        events.join("\n")
    );
    assert_eq!(sim.groups_with_containers(), BTreeSet::from([old_group.clone()]));
    assert_eq!(sim.described_groups(), BTreeSet::from([old_group]));
}

#[tokio::test]
async fn resources_to_skip_converges_without_making_a_group() {
    let sim = Sim::new().await;
    let (stack, old_group, new_group) = sim.rollback_failed_at_the_launch_template().await;
    // Both groups run, and both are described: the old one (still serving)
    // and the update's failed one (deleted by the rollback's cleanup).
    assert_eq!(
        sim.groups_with_containers(),
        BTreeSet::from([old_group.clone(), new_group.clone()])
    );
    assert_eq!(sim.described_groups(), BTreeSet::from([old_group.clone(), new_group.clone()]));

    let failed = sim.events(&stack.stack_id).len();
    let done = sim.continue_rollback(&stack.stack_id, &["Launch"]).await;
    let events = sim.events_after(&stack.stack_id, failed);
    assert_eq!(done.stack_status, "UPDATE_ROLLBACK_COMPLETE", "{}", events.join("\n"));
    assert!(
        !events.iter().any(|event| event.contains(NEW_PHYSICAL)),
        "the continued rollback made a group:\n{}",
        events.join("\n")
    );
    // The skipped launch template counts as rolled back: its first version,
    // which the old group, current again, was launched from.
    let launch = sim.attributes(&stack.stack_id, "Launch");
    assert_eq!(launch["LatestVersionNumber"], "1");
    assert_eq!(launch["autopatch:Local"]["Launch"]["image"], IMAGE_A);
    assert_eq!(sim.row(&stack.stack_id, "Group").physical_id.as_deref(), Some(old_group.as_str()));
    assert_eq!(sim.groups_with_containers(), BTreeSet::from([old_group.clone()]));
    assert_eq!(sim.described_groups(), BTreeSet::from([old_group]));
}

#[tokio::test]
async fn a_rollback_that_would_replace_the_restored_group_fails_and_skipping_the_group_ends_it() {
    // A launch template row from before rows remembered the version an
    // update replaced (a store written by an older autopatch): its rollback
    // makes a new version, and the previous template then asks for a group
    // launched from it. The restored old group is not replaced (that was
    // the endless loop): the rollback fails, naming why.
    let sim = Sim::new().await;
    let stack = sim.create_app().await;
    let old_group = sim.row(&stack.stack_id, "Group").physical_id.unwrap();
    sim.broken_signals.store(false, Ordering::SeqCst);
    sim.start_update(BROKEN).await;
    let replacing = async {
        while !sim.events(&stack.stack_id).iter().any(|event| event.contains(NEW_PHYSICAL)) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WATCHDOG, replacing).await.expect("the update replaces the group");
    let launch = sim.row(&stack.stack_id, "Launch");
    let mut attributes: serde_json::Value = serde_json::from_str(&launch.attributes).unwrap();
    attributes["autopatch:Local"].as_object_mut().unwrap().remove("Prior").unwrap();
    let attributes = attributes.to_string();
    sim.store.put_stack_resource(&StackResourceRow { attributes, ..launch }).unwrap();
    sim.broken_signals.store(true, Ordering::SeqCst);
    let failed = sim.wait(&stack.stack_id).await;
    let events = sim.events(&stack.stack_id);
    assert_eq!(failed.stack_status, "UPDATE_ROLLBACK_FAILED", "{}", events.join("\n"));
    assert_eq!(
        failed.stack_status_reason.as_deref(),
        Some("The following resource(s) failed to update: [Group].")
    );
    let group = sim.row(&stack.stack_id, "Group");
    assert_eq!(group.status, ResourceStatus::UpdateFailed);
    let reason = group.status_reason.unwrap();
    assert!(
        reason.starts_with("rolling back needs a new physical resource (LaunchTemplate"),
        "{reason}"
    );
    assert_eq!(events.iter().filter(|event| event.contains(NEW_PHYSICAL)).count(), 1);
    assert_eq!(group.physical_id.as_deref(), Some(old_group.as_str()), "restored");

    // Skipping the group keeps the old one, and the cleanup deletes the
    // update's failed group.
    let done = sim.continue_rollback(&stack.stack_id, &["Group"]).await;
    assert_eq!(
        done.stack_status,
        "UPDATE_ROLLBACK_COMPLETE",
        "{}",
        sim.events(&stack.stack_id).join("\n")
    );
    assert_eq!(sim.row(&stack.stack_id, "Group").physical_id.as_deref(), Some(old_group.as_str()));
    assert_eq!(sim.groups_with_containers(), BTreeSet::from([old_group.clone()]));
    assert_eq!(sim.described_groups(), BTreeSet::from([old_group]));
}

#[tokio::test]
async fn a_stack_whose_rollback_failed_is_deleted_with_every_group() {
    let sim = Sim::new().await;
    let (stack, _, _) = sim.rollback_failed_at_the_launch_template().await;
    sim.engine.clear_faults();
    let deleted = sim.delete(&stack.stack_id).await;
    assert_eq!(
        deleted.stack_status,
        "DELETE_COMPLETE",
        "{}",
        sim.events(&stack.stack_id).join("\n")
    );
    assert_eq!(sim.groups_with_containers(), BTreeSet::new());
    assert_eq!(sim.described_groups(), BTreeSet::new());
    assert!(sim.store.live_instances().unwrap().is_empty());
}

#[tokio::test]
async fn delete_stack_deletes_a_group_of_the_stack_that_no_row_names() {
    // A store written before the rows kept every group (the failed group a
    // rollback replaced was forgotten): the stack's group runs, named by
    // nothing but its instances' stack label and the stack's events.
    let sim = Sim::new().await;
    let (stack, old_group, _) = sim.rollback_failed_at_the_launch_template().await;
    let group = sim.row(&stack.stack_id, "Group");
    sim.store.put_stack_resource(&StackResourceRow { replaced: None, ..group }).unwrap();
    assert!(sim.groups_with_containers().contains(&old_group));
    sim.engine.clear_faults();
    let deleted = sim.delete(&stack.stack_id).await;
    assert_eq!(deleted.stack_status, "DELETE_COMPLETE");
    assert_eq!(sim.groups_with_containers(), BTreeSet::new());
    assert!(sim.store.live_instances().unwrap().is_empty());
}

#[tokio::test]
async fn a_create_that_fails_while_rolling_back_fails_the_rollback() {
    // A rollback that retried the create without end never yields: the
    // runtime (and its timers) would hang with it.
    let _watchdog =
        ProcessWatchdog::start("a_create_that_fails_while_rolling_back_fails_the_rollback");
    // The launch template must be made again by the rollback (a crash left
    // it being created); the engine does not answer about its image.
    let sim = Sim::new().await;
    let (stack, _, _) = sim.rollback_failed_at_the_launch_template().await;
    let launch = sim.row(&stack.stack_id, "Launch");
    let physical = launch.physical_id.clone();
    let row = StackResourceRow { status: ResourceStatus::CreateInProgress, ..launch };
    sim.store.put_stack_resource(&row).unwrap();
    let again = sim.continue_rollback(&stack.stack_id, &[]).await;
    assert_eq!(again.stack_status, "UPDATE_ROLLBACK_FAILED");
    assert_eq!(sim.row(&stack.stack_id, "Launch").status, ResourceStatus::CreateFailed);

    // Once the engine answers, the next continue makes it, with the same
    // physical id, and the rollback ends.
    sim.engine.clear_faults();
    let done = sim.continue_rollback(&stack.stack_id, &[]).await;
    assert_eq!(
        done.stack_status,
        "UPDATE_ROLLBACK_COMPLETE",
        "{}",
        sim.events(&stack.stack_id).join("\n")
    );
    assert_eq!(sim.row(&stack.stack_id, "Launch").physical_id, physical);
    assert_eq!(sim.groups_with_containers().len(), 1);
    let _ = &sim.dir;
}
