//! Capacity: reaching the desired capacity across zones, what each instance
//! is (container, row, folder, target), and scaling up and down.

use std::collections::BTreeMap;
use std::time::Duration;

use autopatch_engine::ContainerState;
use autopatch_fleet::FleetError;
use autopatch_store::{HealthStatus, LifecycleState};

use crate::harness::{FakeTargetGroup, Sim};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_group_reaches_desired_capacity_spread_over_two_zones() {
    let sim = Sim::new();
    let target_group = FakeTargetGroup::without_delay();
    sim.fleet.start_group(sim.spec("web", 4), target_group.handle()).await.expect("started");
    sim.until("four instances in service", |sim| sim.in_service("web").len() == 4).await;

    let rows = sim.live("web");
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &rows {
        *per_zone.entry(row.zone.as_str()).or_default() += 1;
    }
    assert_eq!(per_zone, BTreeMap::from([("local-1a", 2), ("local-1b", 2)]));
    assert_eq!(sim.running_containers().len(), 4);

    for row in &rows {
        // The row says what runs and where.
        assert_eq!(row.health, HealthStatus::Healthy);
        assert_eq!(row.image, "webapp/1.0.0/1");
        assert_eq!(row.engine_image_id, sim.engine_image_id);
        assert_eq!(row.launch_config, "app-LaunchConfig-1");
        assert_eq!(
            row.subnet.as_deref(),
            Some(if row.zone == "local-1a" { "subnet-a" } else { "subnet-b" })
        );
        let container_id = row.container_id.as_deref().expect("container recorded");
        let container = sim
            .engine
            .containers()
            .into_iter()
            .find(|container| container.id == container_id)
            .expect("the container exists");
        assert_eq!(container.state, ContainerState::Running);
        assert_eq!(container.name, format!("autopatch-{}", row.instance_id));
        assert_eq!(container.labels.get("autopatch.role").map(String::as_str), Some("instance"));
        assert_eq!(container.labels.get("autopatch.instance"), Some(&row.instance_id));
        assert_eq!(container.labels.get("autopatch.group").map(String::as_str), Some("web"));
        assert_eq!(
            container.labels.get("autopatch.tag.Name").map(String::as_str),
            Some("web-instance")
        );
        assert!(!container.labels.contains_key("autopatch.owner-pid"));
        assert_eq!(row.private_ip, container.ip_address);
        assert_eq!(row.host_port, Some(container.ports[0].host_port));
        // The target group knows it at its published loopback port.
        let addr = target_group.addr(&row.instance_id).expect("registered");
        assert_eq!(addr.to_string(), format!("127.0.0.1:{}", container.ports[0].host_port));
        assert_eq!(row.target_health.as_deref(), Some("initial"));

        // The container mounts the instance folder, which holds its metadata.
        let spec = sim.engine.container_spec(container_id).expect("spec kept");
        assert_eq!(spec.image, sim.engine_image_id);
        assert_eq!(spec.mounts.len(), 1);
        assert_eq!(spec.mounts[0].target, "/var/lib/autopatch");
        let folder = &spec.mounts[0].source;
        assert_eq!(folder, &sim.fleet.instance_dir(&row.instance_id));
        let read = |path: &str| fs_err::read_to_string(folder.join(path)).expect(path);
        assert_eq!(read("imds/latest/meta-data/instance-id"), row.instance_id);
        assert_eq!(read("imds/latest/meta-data/ami-id"), "webapp/1.0.0/1");
        assert_eq!(read("imds/latest/meta-data/placement/availability-zone"), row.zone);
        assert_eq!(Some(read("imds/latest/meta-data/local-ipv4")), container.ip_address);
        assert_eq!(read("imds/latest/user-data"), "#!/bin/sh\necho hello\n");
        assert_eq!(
            spec.entrypoint.as_deref(),
            Some(&["/bin/sh".to_string(), "/var/lib/autopatch/bin/boot".to_string()][..])
        );
        assert_eq!(spec.cmd, ["--"], "the image's bare shell is not run");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn desired_capacity_goes_up_and_down_within_the_group_size() {
    let sim = Sim::new();
    let target_group = FakeTargetGroup::with_delay();
    sim.fleet.start_group(sim.spec("web", 2), target_group.handle()).await.expect("started");
    sim.until("two in service", |sim| sim.in_service("web").len() == 2).await;
    let first_two: Vec<String> = sim.live("web").into_iter().map(|row| row.instance_id).collect();

    sim.fleet.set_desired_capacity("web", 4).expect("within 0..=4");
    sim.until("four in service", |sim| sim.in_service("web").len() == 4).await;
    let zones: Vec<String> = sim.live("web").into_iter().map(|row| row.zone).collect();
    assert_eq!(zones.iter().filter(|zone| *zone == "local-1a").count(), 2, "{zones:?}");

    // Scale in to 1: zones stay balanced and the oldest go first, so one of
    // the two later launches stays; they drain first.
    sim.fleet.set_desired_capacity("web", 1).expect("within 0..=4");
    sim.until("three terminating", |sim| {
        sim.live("web").iter().filter(|row| row.lifecycle == LifecycleState::Terminating).count()
            == 3
    })
    .await;
    let terminating: Vec<String> = sim
        .live("web")
        .into_iter()
        .filter(|row| row.lifecycle == LifecycleState::Terminating)
        .map(|row| row.instance_id)
        .collect();
    for oldest in &first_two {
        assert!(terminating.contains(oldest), "the oldest instances go: {oldest}");
    }
    let rows = sim.live("web");
    let row = rows.iter().find(|row| row.instance_id == terminating[0]).expect("row");
    assert_eq!(row.health, HealthStatus::Healthy, "scale in is no health failure");
    assert!(
        row.reason
            .as_deref()
            .is_some_and(|reason| reason.contains("shrinking the capacity from 4 to 1")),
        "{row:?}"
    );
    sim.wait(Duration::from_secs(10)).await;
    assert_eq!(sim.running_containers().len(), 4, "draining instances keep running");
    for instance_id in &terminating {
        target_group.drained(instance_id);
    }
    sim.until("one left", |sim| sim.live("web").len() == 1 && sim.running_containers().len() == 1)
        .await;
    assert_eq!(sim.engine.containers().len(), 1, "terminated containers are removed");
    for instance_id in &terminating {
        assert!(!sim.fleet.instance_dir(instance_id).exists(), "folder of {instance_id} removed");
    }

    let error = sim.fleet.set_desired_capacity("web", 5).expect_err("above max size");
    assert!(
        matches!(error, FleetError::DesiredCapacityOutOfRange { desired: 5, max_size: 4, .. }),
        "{error}"
    );
    let error = sim.fleet.set_desired_capacity("absent", 1).expect_err("no such group");
    assert!(matches!(error, FleetError::UnknownGroup { .. }), "{error}");
    assert_eq!(sim.fleet.group_status("web").expect("running").spec.desired_capacity, 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn starting_a_group_twice_changes_nothing_and_invalid_groups_are_refused() {
    let sim = Sim::new();
    sim.fleet.start_group(sim.spec("web", 2), Vec::new()).await.expect("started");
    sim.until("two in service", |sim| sim.in_service("web").len() == 2).await;
    sim.fleet.start_group(sim.spec("web", 3), Vec::new()).await.expect("idempotent");
    sim.wait(Duration::from_secs(5)).await;
    assert_eq!(sim.live("web").len(), 2, "the running group is left as it is");

    let mut unknown_type = sim.spec("other", 1);
    unknown_type.launch.instance_type = "m1.gigantic".into();
    let error = sim.fleet.start_group(unknown_type, Vec::new()).await.expect_err("unknown type");
    assert!(error.to_string().contains("known types: t2.nano"), "{error}");
    let target_group = FakeTargetGroup::without_delay();
    let mut no_port = sim.spec("other", 1);
    no_port.target_port = None;
    let error = sim.fleet.start_group(no_port, target_group.handle()).await.expect_err("no port");
    assert!(matches!(error, FleetError::InvalidGroup { .. }), "{error}");
    assert!(sim.fleet.group_status("other").is_none());
}
