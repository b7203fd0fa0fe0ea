//! A retained Auto Scaling group on real Podman (QA s10 M2): deleting the
//! stack of a group with `DeletionPolicy: Retain` leaves its instance's
//! container running, unmanaged and marked retained, and a restarted
//! control plane's orphan sweep leaves it alone; once someone removes the
//! container, the next start removes its folder.

mod support;

use std::time::Duration;

use autopatch_engine::{ContainerState, Engine};
use autopatch_stacks::StackService;
use autopatch_store::LifecycleState;
use support::{Fixture, WEBAPP, config};

fn template() -> String {
    format!(
        r#"
Resources:
  LC:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: {WEBAPP}
      InstanceType: t3.micro
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    DeletionPolicy: Retain
    Properties:
      LaunchConfigurationName: !Ref LC
      MinSize: 0
      MaxSize: 1
      DesiredCapacity: 1
"#
    )
}

async fn restart(fixture: &mut Fixture) {
    fixture.service.shutdown().await;
    fixture.service = StackService::open(
        config(fixture.dir.path()),
        fixture.engine.clone(),
        fixture.store.clone(),
    )
    .await
    .unwrap();
}

async fn state(fixture: &Fixture, container: &str) -> Option<ContainerState> {
    fixture.engine.container_inspect(container).await.unwrap().map(|info| info.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_group_runs_on_after_its_stack_is_deleted_and_a_restart() {
    let mut fixture = Fixture::new().await;
    let stack = fixture.create_from_body("kept", &template()).await;
    assert_eq!(stack.stack_status, "CREATE_COMPLETE", "{stack:?}");
    let rows = fixture.store.stack_resources(&stack.stack_id).unwrap();
    let group = rows.iter().find(|row| row.logical_id == "Group").unwrap();
    let group = group.physical_id.clone().unwrap();
    let mut instance = None;
    for _ in 0..240 {
        let live = fixture.store.instances_of_group(&group, false).unwrap();
        if let Some(row) = live.iter().find(|row| row.lifecycle == LifecycleState::InService) {
            instance = Some(row.instance_id.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let instance = instance.expect("the group's instance came into service");
    let container = format!("autopatch-{instance}");

    fixture.delete(&stack.stack_id).await;
    let events = fixture.store.stack_events(&stack.stack_id).unwrap();
    let skipped = events
        .iter()
        .find(|event| event.logical_id == "Group" && event.status == "DELETE_SKIPPED")
        .expect("the group was kept");
    let reason = skipped.reason.clone().unwrap_or_default();
    assert!(
        reason.contains(&format!("1 instance(s) keep running, no longer managed: [{instance}]")),
        "{reason}"
    );
    assert_eq!(state(&fixture, &container).await, Some(ContainerState::Running));
    let row = fixture.store.instance(&instance).unwrap().unwrap();
    assert_eq!(row.lifecycle, LifecycleState::Terminated, "the fleet let it go");
    let marker = fixture.exec(&instance, "cat /var/lib/autopatch/retained").await;
    assert!(
        marker.contains(&format!("group={group}")) && marker.contains("stack kept"),
        "{marker}"
    );

    restart(&mut fixture).await;
    assert_eq!(
        state(&fixture, &container).await,
        Some(ContainerState::Running),
        "a restart's orphan sweep leaves a retained instance"
    );

    // Removed by hand: the next start removes its folder too.
    let folder = fixture.dir.path().join("instances").join(&instance);
    assert!(folder.join("retained").exists());
    let id = fixture.engine.container_inspect(&container).await.unwrap().unwrap().id;
    fixture.engine.container_stop(&id, Duration::from_secs(1)).await.unwrap();
    fixture.engine.container_remove(&id).await.unwrap();
    restart(&mut fixture).await;
    assert!(!folder.exists(), "{folder:?}");
    fixture.service.shutdown().await;
}
