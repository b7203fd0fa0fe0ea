//! Auto Scaling groups of real containers from the golden test image.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use autopatch_engine::{ContainerSpec, ContainerState, DockerEngine, Engine, ExecSpec};
use autopatch_fleet::{
    GROUP_LABEL, GroupSpec, HealthCheckType, LaunchTemplate, SignalStatus, Zone,
};
use autopatch_store::LifecycleState;

use crate::support::{Cleanup, Fixture, GOLDEN, engine, golden, unique, wait_for};

fn group(
    name: &str,
    network: &str,
    engine_image_id: &str,
    desired: u32,
    user_data: &str,
) -> GroupSpec {
    GroupSpec {
        name: name.to_string(),
        stack_id: None,
        launch: LaunchTemplate {
            name: format!("{name}-lc"),
            image: GOLDEN.to_string(),
            image_id: "golden/1.0.0/1".to_string(),
            engine_image_id: engine_image_id.to_string(),
            instance_type: "t3.nano".to_string(),
            user_data: Some(user_data.to_string()),
            security_groups: vec!["web".to_string()],
        },
        min_size: 0,
        max_size: 2,
        desired_capacity: desired,
        zones: vec![
            Zone { name: "local-1a".to_string(), subnet_id: None },
            Zone { name: "local-1b".to_string(), subnet_id: None },
        ],
        network: network.to_string(),
        target_port: Some(80),
        health_check_type: HealthCheckType::Ec2,
        health_check_grace_period: Duration::from_secs(60),
        tags: BTreeMap::new(),
        region: "local".to_string(),
    }
}

async fn read_in(engine: &DockerEngine, container: &str, command: &str) -> String {
    let spec = ExecSpec {
        cmd: vec!["sh".to_string(), "-c".to_string(), command.to_string()],
        ..ExecSpec::default()
    };
    let result = engine.exec(container, &spec, &mut ()).await.expect("exec");
    assert_eq!(result.exit_code, 0, "{command}: {}", result.stderr_text());
    result.stdout_text()
}

#[tokio::test]
async fn instances_signal_see_their_metadata_are_replaced_adopted_and_deleted() {
    let Some(engine) = engine().await else { return };
    let image_id = golden(&engine).await;
    let name = unique("group");
    let network = unique("network");
    let _cleanup = Cleanup {
        engine: Arc::clone(&engine),
        group: name.clone(),
        network: network.clone(),
        images: Vec::new(),
    };
    let fixture = Fixture::new(Arc::clone(&engine));
    let user_data =
        "#!/bin/sh\n/opt/aws/bin/cfn-signal -e 0 --stack s --resource Group --region local\n";
    let spec = group(&name, &network, &image_id, 2, user_data);
    fixture.fleet.start_group(spec.clone(), Vec::new()).await.expect("started");

    wait_for("two signals", Duration::from_secs(60), async || {
        fixture.fleet.signals(&name).expect("signals").len() == 2
    })
    .await;
    let rows = fixture.fleet.instances(&name).expect("rows");
    assert_eq!(rows.len(), 2);
    let mut signalled: Vec<String> = Vec::new();
    for signal in fixture.fleet.signals(&name).expect("signals") {
        assert_eq!(signal.status, SignalStatus::Success);
        assert_eq!((signal.stack.as_str(), signal.resource.as_str()), ("s", "Group"));
        assert_eq!(signal.region.as_deref(), Some("local"));
        assert_eq!(signal.unique_id, signal.instance_id);
        signalled.push(signal.instance_id);
    }
    signalled.sort();
    let mut ids: Vec<String> = rows.iter().map(|row| row.instance_id.clone()).collect();
    ids.sort();
    assert_eq!(signalled, ids);

    for row in &rows {
        assert_eq!(row.lifecycle, LifecycleState::InService);
        let container = row.container_id.as_deref().expect("container");
        let meta = "/var/lib/autopatch/imds/latest/meta-data";
        assert_eq!(
            read_in(&engine, container, &format!("cat {meta}/instance-id")).await,
            row.instance_id
        );
        assert_eq!(
            read_in(&engine, container, &format!("cat {meta}/ami-id")).await,
            "golden/1.0.0/1"
        );
        assert_eq!(
            Some(read_in(&engine, container, &format!("cat {meta}/local-ipv4")).await),
            row.private_ip,
            "local-ipv4 is the container's address"
        );
        assert_eq!(
            read_in(&engine, container, &format!("cat {meta}/placement/availability-zone")).await,
            row.zone
        );
        assert_eq!(read_in(&engine, container, "hostname").await.trim(), row.instance_id);
        assert_eq!(
            read_in(&engine, container, "cat /var/lib/autopatch/user-data.exit").await,
            "0\n"
        );
        // The container keeps running after its user data, under an init.
        let inspected =
            engine.container_inspect(container).await.expect("inspect").expect("present");
        assert_eq!(inspected.state, ContainerState::Running);
        let port =
            inspected.ports.iter().find(|binding| binding.container_port == 80).expect("published");
        assert_eq!(port.host_ip, "127.0.0.1");
        assert_eq!(row.host_port, Some(port.host_port));
        assert!(fixture.instances_dir.join(&row.instance_id).join("log/user-data.log").exists());
    }

    // An instance stopped behind the fleet's back is replaced.
    let stopped = rows[0].clone();
    engine
        .container_stop(
            stopped.container_id.as_deref().expect("container"),
            Duration::from_secs(10),
        )
        .await
        .expect("stopped");
    wait_for("the stopped instance replaced", Duration::from_secs(60), async || {
        let live = fixture.fleet.instances(&name).expect("rows");
        live.len() == 2
            && live.iter().all(|row| {
                row.instance_id != stopped.instance_id && row.lifecycle == LifecycleState::InService
            })
    })
    .await;
    let dead = fixture.store.instance(&stopped.instance_id).expect("read").expect("row");
    assert_eq!(dead.lifecycle, LifecycleState::Terminated);
    assert!(
        engine
            .container_inspect(&format!("autopatch-{}", stopped.instance_id))
            .await
            .expect("inspect")
            .is_none()
    );
    assert!(!fixture.instances_dir.join(&stopped.instance_id).exists());
    wait_for("the replacement signals", Duration::from_secs(60), async || {
        fixture.fleet.signals(&name).expect("signals").len() == 3
    })
    .await;

    // A restarted fleet adopts the two running instances: no new container.
    fixture.fleet.stop().await;
    let before: Vec<String> = fixture
        .fleet
        .instances(&name)
        .expect("rows")
        .into_iter()
        .map(|row| row.instance_id)
        .collect();
    let fleet = fixture.restarted();
    fleet.start_group(spec, Vec::new()).await.expect("restarted");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: Vec<String> =
        fleet.instances(&name).expect("rows").into_iter().map(|row| row.instance_id).collect();
    assert_eq!(after, before);
    let label = [(GROUP_LABEL.to_string(), name.clone())];
    assert_eq!(engine.container_list(&label).await.expect("list").len(), 2);

    fleet.delete_group(&name, Duration::from_secs(5)).await.expect("deleted");
    assert!(
        engine.container_list(&label).await.expect("list").is_empty(),
        "no container of the group remains"
    );
    for id in before.iter().chain(ids.iter()) {
        assert!(!fixture.instances_dir.join(id).exists(), "folder of {id} removed");
    }
    assert!(fleet.instances(&name).expect("rows").is_empty());
    assert_eq!(fleet.signals(&name).expect("signals").len(), 3, "signals outlive their instances");
    engine.network_remove(&network).await.expect("the network is free again");
}

#[tokio::test]
async fn a_failing_user_data_signals_failure_with_its_exit_code() {
    let Some(engine) = engine().await else { return };
    let image_id = golden(&engine).await;
    let name = unique("failing");
    let network = unique("failing-network");
    let _cleanup = Cleanup {
        engine: Arc::clone(&engine),
        group: name.clone(),
        network: network.clone(),
        images: Vec::new(),
    };
    let fixture = Fixture::new(Arc::clone(&engine));
    // Like the lab's: bash -x, a failing step, then cfn-signal -e $?.
    let user_data = "#!/bin/bash -x\nsh -c 'exit 3'\n/opt/aws/bin/cfn-signal -e $? --stack s --resource Group --reason 'setup\nfailed'\n";
    fixture
        .fleet
        .start_group(group(&name, &network, &image_id, 1, user_data), Vec::new())
        .await
        .expect("started");
    wait_for("a signal", Duration::from_secs(60), async || {
        !fixture.fleet.signals(&name).expect("signals").is_empty()
    })
    .await;
    let signals = fixture.fleet.signals(&name).expect("signals");
    assert_eq!(signals.len(), 1);
    assert_eq!(signals[0].status, SignalStatus::Failure);
    assert_eq!(signals[0].reason.as_deref(), Some("setup failed"));
    let row = fixture.fleet.instances(&name).expect("rows").remove(0);
    let log = fs_err::read_to_string(
        fixture.instances_dir.join(&row.instance_id).join("log/user-data.log"),
    )
    .expect("the log");
    assert!(log.contains("+ sh -c 'exit 3'"), "bash -x traced the script: {log}");
    fixture.fleet.delete_group(&name, Duration::from_secs(5)).await.expect("deleted");
    let label = [(GROUP_LABEL.to_string(), name.clone())];
    assert!(engine.container_list(&label).await.expect("list").is_empty());
}

/// A new image: the golden one with `/etc/app-version` saying `version`.
async fn golden_with_version(engine: &DockerEngine, reference: &str, version: &str) -> String {
    let spec = ContainerSpec { image: GOLDEN.to_string(), ..ContainerSpec::default() };
    let container = engine.container_create(&spec).await.expect("created");
    engine
        .put_file(&container.id, "/etc/app-version", version.as_bytes(), 0o644)
        .await
        .expect("written");
    let image = engine.commit(&container.id, reference, &[]).await.expect("committed");
    engine.container_remove(&container.id).await.expect("removed");
    image.id
}

#[tokio::test]
async fn terminate_instance_after_update_group_replaces_it_with_the_new_image() {
    let Some(engine) = engine().await else { return };
    let old_image = golden(&engine).await;
    let name = unique("update");
    let network = unique("update-network");
    let new_reference = format!("localhost/autopatch-test/{name}:2");
    let _cleanup = Cleanup {
        engine: Arc::clone(&engine),
        group: name.clone(),
        network: network.clone(),
        images: vec![new_reference.clone()],
    };
    let new_image = golden_with_version(&engine, &new_reference, "2").await;
    let fixture = Fixture::new(Arc::clone(&engine));
    let spec = group(
        &name,
        &network,
        &old_image,
        1,
        "#!/bin/sh
true
",
    );
    fixture.fleet.start_group(spec.clone(), Vec::new()).await.expect("started");
    let in_service = async || {
        let rows = fixture.fleet.instances(&name).expect("rows");
        rows.len() == 1 && rows[0].lifecycle == LifecycleState::InService
    };
    wait_for("one in service", Duration::from_secs(60), in_service).await;
    let old = fixture.fleet.instances(&name).expect("rows").remove(0);
    let old_container = old.container_id.clone().expect("container");
    let version = "cat /etc/app-version 2>/dev/null || echo none";
    assert_eq!(read_in(&engine, &old_container, version).await, "none\n");

    let mut updated = spec;
    updated.launch.name = format!("{name}-lc-2");
    updated.launch.image = new_reference.clone();
    updated.launch.image_id = "golden/1.0.0/2".to_string();
    updated.launch.engine_image_id = new_image.clone();
    fixture.fleet.update_group(updated).expect("updated");
    fixture.fleet.terminate_instance(&name, &old.instance_id, false).expect("terminating");

    wait_for("the instance replaced", Duration::from_secs(60), async || {
        let rows = fixture.fleet.instances(&name).expect("rows");
        rows.len() == 1
            && rows[0].instance_id != old.instance_id
            && rows[0].lifecycle == LifecycleState::InService
    })
    .await;
    let new = fixture.fleet.instances(&name).expect("rows").remove(0);
    assert_eq!(new.launch_config, format!("{name}-lc-2"));
    assert_eq!(
        (new.image.as_str(), new.engine_image_id.as_str()),
        ("golden/1.0.0/2", new_image.as_str())
    );
    let container = new.container_id.as_deref().expect("container");
    assert_eq!(read_in(&engine, container, version).await, "2");
    assert_eq!(
        read_in(&engine, container, "cat /var/lib/autopatch/imds/latest/meta-data/ami-id").await,
        "golden/1.0.0/2"
    );
    let gone = fixture.store.instance(&old.instance_id).expect("read").expect("row");
    assert_eq!(gone.lifecycle, LifecycleState::Terminated);
    assert!(gone.reason.is_some_and(|reason| reason.contains("user request")));
    assert!(engine.container_inspect(&old_container).await.expect("inspect").is_none());
    assert!(!fixture.instances_dir.join(&old.instance_id).exists());

    fixture.fleet.delete_group(&name, Duration::from_secs(5)).await.expect("deleted");
    engine.network_remove(&network).await.expect("the network is free again");
}
