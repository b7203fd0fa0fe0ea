//! A group's life around the daemon's: deletion, restart adoption, orphan
//! removal, and signals that outlive their instances.

use std::collections::BTreeMap;
use std::time::Duration;

use autopatch_engine::{ContainerSpec, Engine};
use autopatch_fleet::SignalStatus;
use autopatch_store::LifecycleState;

use crate::harness::{FakeTargetGroup, Sim};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn delete_group_drains_then_leaves_no_container_and_rows_terminated() {
    let sim = Sim::new();
    let target_group = FakeTargetGroup::with_delay();
    sim.fleet.start_group(sim.spec("web", 3), target_group.handle()).await.expect("started");
    sim.until("three in service", |sim| sim.in_service("web").len() == 3).await;
    let ids: Vec<String> = sim.live("web").into_iter().map(|row| row.instance_id).collect();

    // The target group never lets go: the drain timeout ends the wait.
    let started = tokio::time::Instant::now();
    sim.fleet.delete_group("web", Duration::from_secs(30)).await.expect("deleted");
    assert!(
        tokio::time::Instant::now() >= started + Duration::from_secs(30),
        "it waited for the drain"
    );
    assert!(sim.engine.containers().is_empty(), "{:?}", sim.engine.containers());
    assert!(sim.live("web").is_empty());
    for row in sim.all_rows("web") {
        assert_eq!(row.lifecycle, LifecycleState::Terminated);
        assert!(row.reason.is_some_and(|reason| reason.contains("being deleted")));
    }
    for id in &ids {
        assert!(!sim.fleet.instance_dir(id).exists());
    }
    let mut deregistered = target_group.deregistrations.lock().expect("lock").clone();
    deregistered.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(deregistered, expected);
    assert!(sim.fleet.group_status("web").is_none(), "the controller is gone");

    // Nothing comes back, and deleting again is fine.
    let creates = sim.creates();
    sim.wait(Duration::from_secs(30)).await;
    assert_eq!(sim.creates(), creates);
    sim.fleet.delete_group("web", Duration::from_secs(30)).await.expect("idempotent");

    // With a target group that lets go at once, there is no wait.
    let target_group = FakeTargetGroup::without_delay();
    sim.fleet.start_group(sim.spec("quick", 1), target_group.handle()).await.expect("started");
    sim.until("one in service", |sim| sim.in_service("quick").len() == 1).await;
    let started = tokio::time::Instant::now();
    sim.fleet.delete_group("quick", Duration::from_secs(300)).await.expect("deleted");
    assert!(tokio::time::Instant::now() < started + Duration::from_secs(1));
    assert!(sim.engine.containers().is_empty());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_restarted_fleet_adopts_running_instances_and_replaces_dead_ones() {
    let sim = Sim::new();
    let target_group = FakeTargetGroup::with_delay();
    sim.fleet.start_group(sim.spec("web", 3), target_group.handle()).await.expect("started");
    sim.until("three in service", |sim| sim.in_service("web").len() == 3).await;
    sim.fleet.stop().await;
    let before: Vec<String> = sim.live("web").into_iter().map(|row| row.instance_id).collect();
    assert_eq!(sim.running_containers().len(), 3, "stopping the fleet keeps instances");

    // While the daemon is down, one instance dies.
    let dead = sim.live("web").remove(2);
    sim.engine.kill(dead.container_id.as_deref().expect("container"), 1).expect("killed");
    sim.wait(Duration::from_secs(30)).await;
    assert_eq!(sim.creates(), 3, "a stopped fleet launches nothing");

    let fleet = sim.restarted();
    let target_group = FakeTargetGroup::with_delay();
    fleet.start_group(sim.spec("web", 3), target_group.handle()).await.expect("restarted");
    // Adoption registers the running ones before the first tick.
    let mut registered = target_group.known();
    registered.sort();
    let mut survivors: Vec<String> =
        before.iter().filter(|id| **id != dead.instance_id).cloned().collect();
    survivors.sort();
    assert_eq!(registered, survivors);
    sim.until("the dead one replaced", |sim| {
        sim.in_service("web").len() == 3
            && sim.live("web").iter().all(|row| row.instance_id != dead.instance_id)
    })
    .await;
    sim.wait(Duration::from_secs(30)).await;
    assert_eq!(sim.creates(), 4, "exactly one launch: no duplicate, none lost");
    let after: Vec<String> =
        fleet.instances("web").expect("rows").into_iter().map(|row| row.instance_id).collect();
    for survivor in &survivors {
        assert!(after.contains(survivor), "{survivor} adopted");
    }
    assert_eq!(sim.running_containers().len(), 3);
    fleet.stop().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_launch_interrupted_after_the_start_is_completed_on_adoption() {
    let sim = Sim::new();
    sim.fleet.start_group(sim.spec("web", 1), Vec::new()).await.expect("started");
    sim.until("one in service", |sim| sim.in_service("web").len() == 1).await;
    sim.fleet.stop().await;
    // As if the daemon died between the start and `InService`.
    let row = sim.live("web").remove(0);
    let mut pending = row.clone();
    pending.instance_id = "i-0000000000000abcd".into();
    pending.lifecycle = LifecycleState::Pending;
    pending.private_ip = None;
    pending.host_port = None;
    sim.store.insert_instance(&pending).expect("row");
    let spec = ContainerSpec {
        name: Some("autopatch-i-0000000000000abcd".into()),
        image: sim.engine_image_id.clone(),
        labels: BTreeMap::from([
            ("autopatch.role".into(), "instance".into()),
            ("autopatch.instance".into(), pending.instance_id.clone()),
            ("autopatch.group".into(), "web".into()),
        ]),
        network: Some("autopatch".into()),
        publish: vec![autopatch_engine::PortBinding {
            container_port: 80,
            host_ip: "127.0.0.1".into(),
            host_port: 0,
        }],
        ..ContainerSpec::default()
    };
    let container = sim.engine.container_create(&spec).await.expect("created");
    sim.engine.container_start(&container.id).await.expect("started");
    fs_err::create_dir_all(
        sim.fleet.instance_dir(&pending.instance_id).join("imds/latest/meta-data"),
    )
    .expect("folder");

    let fleet = sim.restarted();
    let mut spec = sim.spec("web", 2);
    spec.launch.instance_type = row.instance_type.clone();
    fleet.start_group(spec, Vec::new()).await.expect("restarted");
    let adopted = sim.store.instance(&pending.instance_id).expect("read").expect("row");
    assert_eq!(adopted.lifecycle, LifecycleState::InService);
    assert!(adopted.private_ip.is_some() && adopted.host_port.is_some(), "{adopted:?}");
    sim.wait(Duration::from_secs(10)).await;
    assert_eq!(fleet.instances("web").expect("rows").len(), 2, "both count: nothing launched");
    fleet.stop().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn remove_orphans_removes_what_no_live_row_of_a_known_group_accounts_for() {
    let sim = Sim::new();
    sim.fleet.start_group(sim.spec("web", 1), Vec::new()).await.expect("started");
    sim.fleet.start_group(sim.spec("old", 1), Vec::new()).await.expect("started");
    sim.until("both in service", |sim| {
        sim.in_service("web").len() == 1 && sim.in_service("old").len() == 1
    })
    .await;
    sim.fleet.stop().await;
    let web = sim.live("web").remove(0);
    let old = sim.live("old").remove(0);

    // A container with no row at all, one whose row is terminated, and a
    // known group's instance whose container vanished.
    let owner = sim.fleet.instance_dir("x").parent().expect("the instances folder").to_owned();
    let owned_by = |owner: &str, instance_id: &str, group: &str| ContainerSpec {
        name: Some(format!("autopatch-{instance_id}")),
        image: sim.engine_image_id.clone(),
        labels: BTreeMap::from([
            ("autopatch.role".into(), "instance".into()),
            ("autopatch.instance".into(), instance_id.into()),
            ("autopatch.group".into(), group.into()),
            ("autopatch.fleet".into(), owner.into()),
        ]),
        ..ContainerSpec::default()
    };
    let instance_container =
        |instance_id: &str, group: &str| owned_by(&owner.display().to_string(), instance_id, group);
    sim.engine
        .container_create(&instance_container("i-00000000000000001", "web"))
        .await
        .expect("created");
    let mut terminated = web.clone();
    terminated.instance_id = "i-00000000000000002".into();
    terminated.lifecycle = LifecycleState::Terminated;
    sim.store.insert_instance(&terminated).expect("row");
    sim.engine
        .container_create(&instance_container("i-00000000000000002", "web"))
        .await
        .expect("created");
    let mut vanished = web.clone();
    vanished.instance_id = "i-00000000000000003".into();
    vanished.container_id = Some("gone".into());
    sim.store.insert_instance(&vanished).expect("row");
    fs_err::create_dir_all(sim.fleet.instance_dir("i-00000000000000003")).expect("folder");
    fs_err::create_dir_all(sim.fleet.instance_dir("i-00000000000000004")).expect("stray folder");
    // Another state directory's instance (another daemon's): left alone.
    let foreign = sim
        .engine
        .container_create(&owned_by("/elsewhere/instances", "i-00000000000000005", "old"))
        .await
        .expect("created");
    // Not an instance: left alone.
    let other = sim
        .engine
        .container_create(&ContainerSpec {
            image: sim.engine_image_id.clone(),
            ..ContainerSpec::default()
        })
        .await
        .expect("created");

    let fleet = sim.restarted();
    let mut removed = fleet.remove_orphans(&["web".to_string()]).await.expect("removed");
    removed.sort();
    let mut expected = vec![
        "autopatch-i-00000000000000001".to_string(),
        "autopatch-i-00000000000000002".to_string(),
        format!("autopatch-{}", old.instance_id),
    ];
    expected.sort();
    assert_eq!(removed, expected);
    let remaining: Vec<String> =
        sim.engine.containers().into_iter().map(|container| container.id).collect();
    assert_eq!(
        remaining,
        [web.container_id.clone().expect("container"), foreign.id, other.id]
            .map(|id| id.to_string())
    );
    let row = |id: &str| sim.store.instance(id).expect("read").expect("row");
    assert_eq!(row(&web.instance_id).lifecycle, LifecycleState::InService, "kept");
    assert_eq!(row(&old.instance_id).lifecycle, LifecycleState::Terminated, "unknown group");
    assert_eq!(row("i-00000000000000003").lifecycle, LifecycleState::Terminated, "vanished");
    assert!(sim.fleet.instance_dir(&web.instance_id).exists());
    for id in [old.instance_id.as_str(), "i-00000000000000003", "i-00000000000000004"] {
        assert!(!sim.fleet.instance_dir(id).exists(), "{id}");
    }
    assert!(fleet.remove_orphans(&["web".to_string()]).await.expect("again").is_empty());
}

/// A group its stack retains (QA s10 M2) is let go: no controller, out of
/// its target groups, its containers running on, marked retained; no
/// orphan sweep removes them until they are gone.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_released_group_leaves_its_instances_running_unmanaged_and_unswept() {
    let sim = Sim::new();
    let target_group = FakeTargetGroup::without_delay();
    sim.fleet.start_group(sim.spec("kept", 2), target_group.handle()).await.expect("started");
    sim.until("two in service", |sim| sim.in_service("kept").len() == 2).await;
    let ids: Vec<String> = sim.live("kept").into_iter().map(|row| row.instance_id).collect();

    let reason = "retained by stack app (DeletionPolicy: Retain)";
    let mut released = sim.fleet.release_group("kept", reason).await.expect("released");
    released.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(released, expected);
    assert!(sim.fleet.group_status("kept").is_none(), "the controller is gone");
    assert!(sim.live("kept").is_empty(), "the fleet no longer counts them");
    for row in sim.all_rows("kept") {
        assert_eq!(row.lifecycle, LifecycleState::Terminated);
        assert_eq!(row.reason.as_deref(), Some(reason));
    }
    let mut deregistered = target_group.deregistrations.lock().expect("lock").clone();
    deregistered.sort();
    assert_eq!(deregistered, expected, "they left the target group");
    assert_eq!(sim.running_containers().len(), 2, "they run on");
    for id in &ids {
        let marker = sim.fleet.instance_dir(id).join("retained");
        let text = fs_err::read_to_string(&marker).expect("marked retained");
        assert!(text.contains(reason), "{text}");
    }
    // Nothing replaces them, and no restart's sweep removes them.
    sim.wait(Duration::from_secs(60)).await;
    assert_eq!(sim.creates(), 2);
    let fleet = sim.restarted();
    assert!(fleet.remove_orphans(&[]).await.expect("swept").is_empty());
    assert_eq!(sim.running_containers().len(), 2);

    // Once a container is gone, the next sweep removes its folder.
    let first = sim.engine.containers().remove(0);
    sim.engine.container_remove(&first.id).await.expect("removed by hand");
    let gone = first.labels["autopatch.instance"].clone();
    assert!(fleet.remove_orphans(&[]).await.expect("swept").is_empty());
    assert!(!sim.fleet.instance_dir(&gone).exists(), "its folder goes with it");
    let other = ids.iter().find(|id| **id != gone).expect("the other");
    assert!(sim.fleet.instance_dir(other).join("retained").exists());
}

/// Runs the instance's own cfn-signal script against its folder, as the
/// instance would.
fn signal_from(sim: &Sim, instance_id: &str, arguments: &[&str]) {
    let folder = sim.fleet.instance_dir(instance_id);
    let status = std::process::Command::new("sh")
        .arg(folder.join("bin/cfn-signal"))
        .args(arguments)
        .env("AUTOPATCH_INSTANCE_DIR", &folder)
        .status()
        .expect("sh runs");
    assert!(status.success());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn signals_are_read_from_folders_and_outlive_terminated_instances() {
    let sim = Sim::new();
    sim.fleet.start_group(sim.spec("web", 2), Vec::new()).await.expect("started");
    sim.until("two in service", |sim| sim.in_service("web").len() == 2).await;
    let rows = sim.live("web");
    signal_from(
        &sim,
        &rows[1].instance_id,
        &["-e", "1", "--stack", "s", "--resource", "Group", "-r", "it\nbroke"],
    );
    signal_from(&sim, &rows[0].instance_id, &["-e", "0", "--stack", "s", "--resource", "Group"]);
    // File times order signals: date the second instance's a minute later,
    // though it was written first.
    let signals_dir = sim.fleet.instance_dir(&rows[1].instance_id).join("signals");
    for entry in fs_err::read_dir(&signals_dir).expect("signals") {
        let file =
            std::fs::File::options().write(true).open(entry.expect("entry").path()).expect("open");
        file.set_modified(std::time::SystemTime::now() + Duration::from_secs(60))
            .expect("set time");
    }
    let signals = sim.fleet.signals("web").expect("signals");
    let seen: Vec<(String, SignalStatus, Option<String>)> = signals
        .iter()
        .map(|signal| (signal.instance_id.clone(), signal.status, signal.reason.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (rows[0].instance_id.clone(), SignalStatus::Success, None),
            (rows[1].instance_id.clone(), SignalStatus::Failure, Some("it broke".into())),
        ]
    );

    // The failed instance dies and is replaced: its signal is still there.
    sim.engine.kill(rows[1].container_id.as_deref().expect("container"), 1).expect("killed");
    sim.until("replaced", |sim| sim.all_rows("web").len() == 3 && sim.in_service("web").len() == 2)
        .await;
    assert!(!sim.fleet.instance_dir(&rows[1].instance_id).exists());
    assert_eq!(sim.fleet.signals("web").expect("signals"), signals);
    // A restarted daemon reads the same.
    assert_eq!(sim.restarted().signals("web").expect("signals"), signals);
    assert!(sim.fleet.signals("absent").expect("none").is_empty());
}
