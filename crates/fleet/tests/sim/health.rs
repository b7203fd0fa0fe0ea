//! Health: a dead or vanished container fails the EC2 check at once; with
//! ELB checks, an unhealthy target is replaced only after the grace period.

use std::time::Duration;

use autopatch_engine::Engine;
use autopatch_fleet::HealthCheckType;
use autopatch_store::{HealthStatus, LifecycleState};

use crate::harness::{FakeTargetGroup, Sim};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_instance_whose_container_dies_is_replaced_and_capacity_kept() {
    let sim = Sim::new();
    let target_group = FakeTargetGroup::with_delay();
    sim.fleet.start_group(sim.spec("web", 2), target_group.handle()).await.expect("started");
    sim.until("two in service", |sim| sim.in_service("web").len() == 2).await;
    let victim = sim.live("web").remove(0);
    let container_id = victim.container_id.clone().expect("container");

    sim.engine.kill(&container_id, 137).expect("killed");
    sim.until("the dead one replaced", |sim| {
        let live = sim.in_service("web");
        live.len() == 2 && live.iter().all(|row| row.instance_id != victim.instance_id)
    })
    .await;
    let rows = sim.all_rows("web");
    let dead = rows.iter().find(|row| row.instance_id == victim.instance_id).expect("row kept");
    assert_eq!(dead.lifecycle, LifecycleState::Terminated);
    assert_eq!(dead.health, HealthStatus::Unhealthy);
    let reason = dead.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("EC2 health check") && reason.contains("exited with 137"), "{reason}");
    assert!(dead.terminated_at.is_some());
    assert!(!sim.engine.containers().iter().any(|container| container.id == container_id));
    assert!(!sim.fleet.instance_dir(&victim.instance_id).exists());
    assert!(target_group.deregistrations.lock().expect("lock").contains(&victim.instance_id));
    // The replacement went to the zone the dead one left.
    let replacement = sim
        .live("web")
        .into_iter()
        .find(|row| row.zone == victim.zone)
        .expect("same zone refilled");
    assert_ne!(replacement.instance_id, victim.instance_id);

    // A container removed behind the fleet's back is the same.
    let gone = sim.live("web").remove(0);
    sim.engine
        .container_remove(gone.container_id.as_deref().expect("container"))
        .await
        .expect("removed");
    sim.until("the vanished one replaced", |sim| {
        let live = sim.in_service("web");
        live.len() == 2 && live.iter().all(|row| row.instance_id != gone.instance_id)
    })
    .await;
    let reason = sim.store.instance(&gone.instance_id).expect("read").expect("row").reason;
    assert!(reason.is_some_and(|reason| reason.contains("no container")));
    assert_eq!(sim.running_containers().len(), 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_unhealthy_target_is_replaced_after_the_grace_period_not_before() {
    let sim = Sim::new();
    let target_group = FakeTargetGroup::without_delay();
    let mut spec = sim.spec("web", 2);
    spec.health_check_type = HealthCheckType::Elb;
    spec.health_check_grace_period = Duration::from_secs(60);
    sim.fleet.start_group(spec, target_group.handle()).await.expect("started");
    sim.until("two in service", |sim| sim.in_service("web").len() == 2).await;
    target_group.set_all("healthy");
    let launched = tokio::time::Instant::now();
    let sick = sim.live("web").remove(0);

    // Unhealthy early: the grace period protects it.
    sim.wait(Duration::from_secs(5)).await;
    target_group.set_state(&sick.instance_id, "unhealthy");
    sim.until("the store sees the target unhealthy", |sim| {
        sim.store.instance(&sick.instance_id).expect("read").expect("row").target_health.as_deref()
            == Some("unhealthy")
    })
    .await;
    // Up to just before the grace period ends (counted from the launch tick).
    tokio::time::sleep_until(launched + Duration::from_secs(55)).await;
    let row = sim.store.instance(&sick.instance_id).expect("read").expect("row");
    assert_eq!(row.lifecycle, LifecycleState::InService, "within the grace period");
    assert_eq!(row.health, HealthStatus::Healthy);

    sim.until("the unhealthy one replaced", |sim| {
        let gone = sim.store.instance(&sick.instance_id).expect("read").expect("row").lifecycle
            == LifecycleState::Terminated;
        gone && sim.in_service("web").len() == 2
    })
    .await;
    let row = sim.store.instance(&sick.instance_id).expect("read").expect("row");
    assert_eq!((row.lifecycle, row.health), (LifecycleState::Terminated, HealthStatus::Unhealthy));
    assert!(row.reason.is_some_and(|reason| reason.contains("ELB health check")));
    assert_eq!(sim.running_containers().len(), 2);

    // EC2 checks ignore the load balancer.
    let sim = Sim::new();
    let target_group = FakeTargetGroup::without_delay();
    sim.fleet.start_group(sim.spec("ec2", 1), target_group.handle()).await.expect("started");
    sim.until("one in service", |sim| sim.in_service("ec2").len() == 1).await;
    target_group.set_all("unhealthy");
    sim.wait(Duration::from_secs(300)).await;
    assert_eq!(sim.all_rows("ec2").len(), 1, "never replaced");
}
