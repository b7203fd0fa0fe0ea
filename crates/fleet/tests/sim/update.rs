//! Updates of a running group, as stack updates drive them: `update_group`
//! (a new launch template, sizes, health checks), `terminate_instance` with
//! and without a decrement, and scale in that retires old launches first.

use std::collections::BTreeMap;
use std::time::Duration;

use autopatch_fleet::{FleetError, TargetGroupHandle};
use autopatch_store::{InstanceRow, LifecycleState};

use crate::harness::{FakeTargetGroup, Sim};

/// The live instances of `group` launched from `launch_config`, by id.
fn launched_from(sim: &Sim, group: &str, launch_config: &str) -> Vec<String> {
    sim.live(group)
        .into_iter()
        .filter(|row| row.launch_config == launch_config)
        .map(|row| row.instance_id)
        .collect()
}

fn row(sim: &Sim, instance_id: &str) -> InstanceRow {
    sim.store.instance(instance_id).expect("read").expect("row")
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn update_group_launches_from_the_new_template_and_leaves_old_instances_running() {
    let sim = Sim::new();
    let target_group = FakeTargetGroup::with_delay();
    sim.fleet.start_group(sim.spec("web", 2), target_group.handle()).await.expect("started");
    sim.until("two in service", |sim| sim.in_service("web").len() == 2).await;
    let old = sim.live("web");
    target_group.set_all("healthy");

    let mut changes = sim.fleet.subscribe();
    changes.mark_unchanged();
    let mut updated = sim.spec("web", 3);
    updated.launch = sim.new_launch();
    updated.tags = BTreeMap::from([("Name".into(), "web-v2".into())]);
    sim.fleet.update_group(updated.clone()).expect("updated");
    assert!(changes.has_changed().expect("open"), "an update is a change");
    assert_eq!(sim.fleet.group_status("web").expect("running").spec, updated);

    sim.until("three in service", |sim| sim.in_service("web").len() == 3).await;
    let new = launched_from(&sim, "web", "app-LaunchConfig-2");
    assert_eq!(new.len(), 1, "{:#?}", sim.live("web"));
    let new = row(&sim, &new[0]);
    assert_eq!(new.image, "webapp/1.0.1/1");
    assert_eq!(new.engine_image_id, sim.new_engine_image_id);
    let container = new.container_id.as_deref().expect("container");
    let container_spec = sim.engine.container_spec(container).expect("spec kept");
    assert_eq!(container_spec.image, sim.new_engine_image_id);
    assert_eq!(container_spec.labels.get("autopatch.tag.Name").map(String::as_str), Some("web-v2"));
    let ami_id = sim.fleet.instance_dir(&new.instance_id).join("imds/latest/meta-data/ami-id");
    assert_eq!(fs_err::read_to_string(ami_id).expect("metadata"), "webapp/1.0.1/1");
    assert!(target_group.known().contains(&new.instance_id), "registered like any launch");

    // The old instances run on, as they were, still taking traffic.
    for before in &old {
        let after = row(&sim, &before.instance_id);
        assert_eq!(after.lifecycle, LifecycleState::InService);
        assert_eq!(
            (after.launch_config.as_str(), after.image.as_str(), &after.container_id),
            ("app-LaunchConfig-1", "webapp/1.0.0/1", &before.container_id)
        );
        assert_eq!(target_group.state(&before.instance_id).as_deref(), Some("healthy"));
    }
    assert!(target_group.deregistrations.lock().expect("lock").is_empty());
    assert_eq!(sim.running_containers().len(), 3);

    // Refused updates change nothing.
    let mut too_many = updated.clone();
    too_many.desired_capacity = 5;
    let error = sim.fleet.update_group(too_many).expect_err("above max size");
    assert!(
        matches!(error, FleetError::DesiredCapacityOutOfRange { desired: 5, max_size: 4, .. }),
        "{error}"
    );
    let mut inverted = updated.clone();
    (inverted.min_size, inverted.max_size) = (3, 2);
    let error = sim.fleet.update_group(inverted).expect_err("min above max");
    assert!(matches!(error, FleetError::InvalidGroup { .. }), "{error}");
    let mut no_port = updated.clone();
    no_port.target_port = None;
    let error = sim.fleet.update_group(no_port).expect_err("the target groups need a port");
    assert!(matches!(error, FleetError::InvalidGroup { .. }), "{error}");
    let error = sim.fleet.update_group(sim.spec("absent", 1)).expect_err("no such group");
    assert!(matches!(error, FleetError::UnknownGroup { .. }), "{error}");
    assert_eq!(sim.fleet.group_status("web").expect("running").spec, updated);
    let creates = sim.creates();
    sim.wait(Duration::from_secs(30)).await;
    assert_eq!((sim.creates(), sim.live("web").len()), (creates, 3));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_new_launch_template_ends_the_backoff_of_a_broken_one() {
    let sim = Sim::new();
    let mut broken = sim.spec("web", 1);
    broken.launch.engine_image_id = String::new();
    broken.launch.image = "localhost/autopatch/absent:1".into();
    sim.fleet.start_group(broken, Vec::new()).await.expect("started");
    sim.until("seven failed launches", |sim| {
        sim.fleet.group_status("web").expect("running").launch_failures >= 7
    })
    .await;

    let mut fixed = sim.spec("web", 1);
    fixed.launch = sim.new_launch();
    sim.fleet.update_group(fixed.clone()).expect("updated");
    assert_eq!(sim.fleet.group_status("web").expect("running").launch_failures, 0);
    sim.until("in service", |sim| sim.in_service("web").len() == 1).await;
    assert_eq!(sim.in_service("web")[0].launch_config, "app-LaunchConfig-2");

    // Other changes keep a backoff: an unchanged template would fail again.
    let mut broken_again = fixed;
    broken_again.launch.engine_image_id = String::new();
    broken_again.launch.image = "localhost/autopatch/absent:1".into();
    broken_again.desired_capacity = 2;
    sim.fleet.update_group(broken_again.clone()).expect("updated");
    sim.until("failing again", |sim| {
        sim.fleet.group_status("web").expect("running").launch_failures >= 2
    })
    .await;
    broken_again.desired_capacity = 3;
    sim.fleet.update_group(broken_again).expect("updated");
    assert!(sim.fleet.group_status("web").expect("running").launch_failures >= 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn scale_in_after_an_update_retires_the_old_launches_first() {
    let sim = Sim::new();
    sim.fleet.start_group(sim.spec("web", 2), Vec::new()).await.expect("started");
    sim.until("two in service", |sim| sim.in_service("web").len() == 2).await;
    let mut old = launched_from(&sim, "web", "app-LaunchConfig-1");

    // As a rolling update does: the group doubles on the new template...
    let mut doubled = sim.spec("web", 4);
    doubled.launch = sim.new_launch();
    sim.fleet.update_group(doubled.clone()).expect("doubled");
    sim.until("four in service", |sim| sim.in_service("web").len() == 4).await;
    let mut new = launched_from(&sim, "web", "app-LaunchConfig-2");
    assert_eq!(new.len(), 2);

    // ...then shrinks back: the old ones go.
    let mut back = doubled.clone();
    back.desired_capacity = 2;
    sim.fleet.update_group(back).expect("shrunk");
    sim.until("two left", |sim| sim.live("web").len() == 2).await;
    let mut left: Vec<String> = sim.live("web").into_iter().map(|row| row.instance_id).collect();
    left.sort();
    new.sort();
    assert_eq!(left, new);
    old.sort();
    for id in &old {
        let gone = row(&sim, id);
        assert_eq!(gone.lifecycle, LifecycleState::Terminated);
        assert!(
            gone.reason.as_deref().is_some_and(|reason| reason.contains("from 4 to 2")),
            "{gone:?}"
        );
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn terminate_instance_drains_it_then_replaces_it_from_the_current_template() {
    let sim = Sim::new();
    let target_group = FakeTargetGroup::with_delay();
    sim.fleet.start_group(sim.spec("web", 2), target_group.handle()).await.expect("started");
    sim.until("two in service", |sim| sim.in_service("web").len() == 2).await;
    target_group.set_all("healthy");
    let mut updated = sim.spec("web", 2);
    updated.launch = sim.new_launch();
    sim.fleet.update_group(updated).expect("updated");
    sim.wait(Duration::from_secs(10)).await;
    assert_eq!(sim.creates(), 2, "an update alone replaces nothing");

    let victim = sim.live("web").remove(0);
    let mut changes = sim.fleet.subscribe();
    changes.mark_unchanged();
    sim.fleet.terminate_instance("web", &victim.instance_id, false).expect("terminating");
    // Recorded and deregistered before it returns.
    assert!(changes.has_changed().expect("open"));
    let terminating = row(&sim, &victim.instance_id);
    assert_eq!(terminating.lifecycle, LifecycleState::Terminating);
    assert!(
        terminating.reason.as_deref().is_some_and(|reason| reason.contains("user request")),
        "{terminating:?}"
    );
    assert_eq!(
        *target_group.deregistrations.lock().expect("lock"),
        std::slice::from_ref(&victim.instance_id)
    );
    assert_eq!(target_group.state(&victim.instance_id).as_deref(), Some("draining"));
    let error = sim
        .fleet
        .terminate_instance("web", &victim.instance_id, false)
        .expect_err("already terminating");
    assert!(
        matches!(
            error,
            FleetError::InstanceNotInService { lifecycle: LifecycleState::Terminating, .. }
        ),
        "{error}"
    );
    assert!(error.to_string().contains(&victim.instance_id), "{error}");

    // A replacement from the new template starts while the victim drains.
    sim.until("a replacement in service", |sim| {
        launched_from(sim, "web", "app-LaunchConfig-2")
            .iter()
            .any(|id| row(sim, id).lifecycle == LifecycleState::InService)
    })
    .await;
    let replacement = row(&sim, &launched_from(&sim, "web", "app-LaunchConfig-2")[0]);
    assert_eq!(replacement.zone, victim.zone, "into the zone the victim leaves");
    assert_eq!(replacement.engine_image_id, sim.new_engine_image_id);
    sim.wait(Duration::from_secs(10)).await;
    let draining = victim.container_id.as_deref().expect("container");
    assert!(
        sim.running_containers().iter().any(|container| container.id == draining),
        "a draining instance keeps running"
    );
    assert_eq!(row(&sim, &victim.instance_id).lifecycle, LifecycleState::Terminating);

    // Once the target group lets go, the loop removes it.
    target_group.drained(&victim.instance_id);
    sim.until("the victim terminated", |sim| {
        row(sim, &victim.instance_id).lifecycle == LifecycleState::Terminated
    })
    .await;
    assert!(!sim.engine.containers().iter().any(|container| container.id == draining));
    assert!(!sim.fleet.instance_dir(&victim.instance_id).exists());
    assert_eq!(sim.running_containers().len(), 2);
    assert_eq!(sim.fleet.group_status("web").expect("running").spec.desired_capacity, 2);
    let error = sim
        .fleet
        .terminate_instance("web", &victim.instance_id, true)
        .expect_err("already terminated");
    assert!(
        matches!(
            error,
            FleetError::InstanceNotInService { lifecycle: LifecycleState::Terminated, .. }
        ),
        "{error}"
    );
    sim.wait(Duration::from_secs(30)).await;
    assert_eq!(sim.creates(), 3, "exactly one replacement");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn terminate_instance_with_a_decrement_shrinks_the_group_but_not_below_min_size() {
    let sim = Sim::new();
    let target_group = FakeTargetGroup::without_delay();
    let mut spec = sim.spec("web", 2);
    spec.min_size = 1;
    sim.fleet.start_group(spec, target_group.handle()).await.expect("started");
    sim.fleet.start_group(sim.spec("other", 1), Vec::new()).await.expect("started");
    sim.until("all in service", |sim| {
        sim.in_service("web").len() == 2 && sim.in_service("other").len() == 1
    })
    .await;
    let [first, second]: [InstanceRow; 2] = sim.live("web").try_into().expect("two");

    sim.fleet.terminate_instance("web", &first.instance_id, true).expect("terminating");
    assert_eq!(sim.fleet.group_status("web").expect("running").spec.desired_capacity, 1);
    let reason = row(&sim, &first.instance_id).reason.unwrap_or_default();
    assert!(reason.contains("user request, shrinking the capacity from 2 to 1"), "{reason}");
    assert!(target_group.deregistrations.lock().expect("lock").contains(&first.instance_id));
    sim.until("it is gone", |sim| {
        row(sim, &first.instance_id).lifecycle == LifecycleState::Terminated
    })
    .await;
    sim.wait(Duration::from_secs(30)).await;
    assert_eq!(sim.creates(), 3, "no replacement (two of web, one of other)");
    assert_eq!(sim.live("web").len(), 1);

    // The last one: a decrement would go below min size 1.
    let error =
        sim.fleet.terminate_instance("web", &second.instance_id, true).expect_err("below min");
    assert!(
        matches!(error, FleetError::DecrementBelowMinSize { desired: 1, min_size: 1, .. }),
        "{error}"
    );
    assert!(error.to_string().contains(&second.instance_id), "{error}");
    assert_eq!(row(&sim, &second.instance_id).lifecycle, LifecycleState::InService);
    assert!(!target_group.deregistrations.lock().expect("lock").contains(&second.instance_id));
    assert_eq!(sim.fleet.group_status("web").expect("running").spec.desired_capacity, 1);

    // Instances of another group, unknown ones, unknown groups.
    let other = sim.live("other").remove(0);
    let error = sim
        .fleet
        .terminate_instance("web", &other.instance_id, false)
        .expect_err("another group's");
    assert!(matches!(error, FleetError::InstanceNotInGroup { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        format!("instance {} is not in Auto Scaling group web", other.instance_id)
    );
    let error = sim
        .fleet
        .terminate_instance("web", "i-00000000000000099", false)
        .expect_err("unknown instance");
    assert!(matches!(error, FleetError::InstanceNotInGroup { .. }), "{error}");
    let error = sim
        .fleet
        .terminate_instance("absent", &second.instance_id, false)
        .expect_err("unknown group");
    assert!(matches!(error, FleetError::UnknownGroup { .. }), "{error}");
    assert_eq!(row(&sim, &other.instance_id).lifecycle, LifecycleState::InService);

    // An instance still launching is refused (as a scaling activity in progress).
    let mut pending = second.clone();
    pending.instance_id = "i-0000000000000abcd".into();
    pending.lifecycle = LifecycleState::Pending;
    sim.store.insert_instance(&pending).expect("row");
    let error =
        sim.fleet.terminate_instance("web", &pending.instance_id, false).expect_err("pending");
    assert!(
        matches!(
            error,
            FleetError::InstanceNotInService { lifecycle: LifecycleState::Pending, .. }
        ),
        "{error}"
    );
}
