//! Engine faults during launches: a failed launch is recorded, leaves no
//! container or folder behind, and is retried with backoff. Faults while
//! terminating, and a group deletion the engine fails, are finished later.

use std::time::Duration;

use autopatch_engine::{Call, FaultKind, Operation};
use autopatch_store::LifecycleState;

use crate::harness::Sim;

/// The group's launches that failed, with their reasons.
fn failed_launches(sim: &Sim, group: &str) -> Vec<String> {
    sim.all_rows(group)
        .into_iter()
        .filter(|row| row.lifecycle == LifecycleState::Terminated)
        .map(|row| row.reason.unwrap_or_default())
        .collect()
}

/// Every container belongs to a live row, and every live row's folder exists.
fn assert_no_orphans(sim: &Sim, group: &str) {
    let live = sim.live(group);
    for container in sim.engine.containers() {
        let instance_id =
            container.labels.get("autopatch.instance").expect("an instance container");
        assert!(
            live.iter().any(|row| &row.instance_id == instance_id),
            "orphan {}",
            container.name
        );
    }
    for row in sim.all_rows(group) {
        let folder = sim.fleet.instance_dir(&row.instance_id);
        assert_eq!(folder.exists(), row.lifecycle != LifecycleState::Terminated, "{folder:?}");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_fault_at_any_launch_step_leaves_no_orphan_and_is_retried() {
    for (operation, kind) in [
        (Operation::ImageInspect, FaultKind::Api),
        (Operation::NetworkEnsure, FaultKind::Unreachable),
        (Operation::ContainerCreate, FaultKind::Api),
        (Operation::ContainerCreate, FaultKind::LostResponse),
        (Operation::ContainerStart, FaultKind::Api),
        (Operation::ContainerInspect, FaultKind::NotFound),
    ] {
        let sim = Sim::new();
        sim.engine.fail_next(operation, kind);
        sim.fleet.start_group(sim.spec("web", 2), Vec::new()).await.expect("started");
        sim.until("two in service", |sim| sim.in_service("web").len() == 2).await;
        let failures = failed_launches(&sim, "web");
        assert_eq!(failures.len(), 1, "{operation:?} {kind:?}: {failures:?}");
        assert!(failures[0].starts_with("failed to launch instance"), "{}", failures[0]);
        let cause = if kind == FaultKind::NotFound { "not found" } else { "injected fault" };
        assert!(failures[0].contains(cause), "{}", failures[0]);
        assert_no_orphans(&sim, "web");
        assert_eq!(sim.engine.containers().len(), 2, "{operation:?} {kind:?}");
        let status = sim.fleet.group_status("web").expect("running");
        assert_eq!((status.launch_failures, status.last_error), (0, None), "cleared by a success");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_broken_image_backs_off_instead_of_spinning() {
    let sim = Sim::new();
    sim.engine.fail_when(|call| match call {
        Call::ContainerCreate { .. } => Some(FaultKind::Api),
        _ => None,
    });
    sim.fleet.start_group(sim.spec("web", 2), Vec::new()).await.expect("started");
    sim.wait(Duration::from_secs(60)).await;
    // One attempt a tick would be 60; doubling from 1 s gives attempts at
    // about 0, 1, 3, 7, 15, 31 s.
    let attempts = sim.creates();
    assert!((4..=8).contains(&attempts), "{attempts} attempts in a minute");
    let status = sim.fleet.group_status("web").expect("running");
    assert_eq!(status.launch_failures as usize, attempts);
    assert!(status.last_error.is_some_and(|error| error.contains("creating the container of")));
    assert!(sim.engine.containers().is_empty());
    assert!(sim.live("web").is_empty());

    sim.engine.clear_faults();
    sim.until("two in service once the engine recovers", |sim| sim.in_service("web").len() == 2)
        .await;
    assert_no_orphans(&sim, "web");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_missing_image_fails_the_launch_with_the_reason() {
    let sim = Sim::new();
    let mut spec = sim.spec("web", 1);
    spec.launch.engine_image_id = String::new();
    spec.launch.image = "localhost/autopatch/absent:1".into();
    sim.fleet.start_group(spec, Vec::new()).await.expect("started");
    sim.until("a failed launch recorded", |sim| !failed_launches(sim, "web").is_empty()).await;
    let failures = failed_launches(&sim, "web");
    assert!(
        failures[0].contains("image localhost/autopatch/absent:1 not found"),
        "{}",
        failures[0]
    );
    assert!(sim.engine.containers().is_empty());
    assert_no_orphans(&sim, "web");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_fault_while_terminating_is_retried_until_the_instance_is_gone() {
    for (operation, kind) in [
        (Operation::ContainerInspect, FaultKind::Unreachable),
        (Operation::ContainerRemove, FaultKind::Api),
        (Operation::ContainerRemove, FaultKind::LostResponse),
    ] {
        let sim = Sim::new();
        sim.fleet.start_group(sim.spec("web", 1), Vec::new()).await.expect("started");
        sim.until("one in service", |sim| sim.in_service("web").len() == 1).await;
        let victim = sim.live("web").remove(0);
        sim.engine.fail_next(operation, kind);
        sim.engine.kill(victim.container_id.as_deref().expect("container"), 137).expect("killed");
        sim.until("the dead one gone and replaced", |sim| {
            let row = sim.store.instance(&victim.instance_id).expect("read").expect("row");
            row.lifecycle == LifecycleState::Terminated && sim.in_service("web").len() == 1
        })
        .await;
        assert_eq!(sim.engine.containers().len(), 1, "{operation:?} {kind:?}");
        assert_no_orphans(&sim, "web");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_delete_the_engine_fails_is_finished_once_the_engine_answers_again() {
    let sim = Sim::new();
    sim.fleet.start_group(sim.spec("web", 2), Vec::new()).await.expect("started");
    sim.until("two in service", |sim| sim.in_service("web").len() == 2).await;
    let victims: Vec<String> = sim.live("web").into_iter().map(|row| row.instance_id).collect();

    // The engine stops answering: the delete fails and says why.
    sim.engine.fail_when(|_| Some(FaultKind::Unreachable));
    let error = sim.fleet.delete_group("web", Duration::from_secs(30)).await.expect_err("fails");
    assert!(error.to_string().contains("web"), "{error}");
    assert_eq!(sim.engine.containers().len(), 2, "nothing could be removed");
    assert!(sim.fleet.group_status("web").is_none(), "the controller is gone");

    // Still down a while later: nothing is lost, nothing relaunched.
    let creates = sim.creates();
    sim.wait(Duration::from_secs(20)).await;
    assert_eq!(sim.engine.containers().len(), 2);

    // Back: the deletion finishes without another request.
    sim.engine.clear_faults();
    sim.until("the deleted group's instances gone", |sim| {
        sim.engine.containers().is_empty() && sim.live("web").is_empty()
    })
    .await;
    assert_eq!(sim.creates(), creates);
    for id in &victims {
        let row = sim.store.instance(id).expect("read").expect("row");
        assert_eq!(row.lifecycle, LifecycleState::Terminated);
        assert!(!sim.fleet.instance_dir(id).exists());
    }
    assert_no_orphans(&sim, "web");
}
