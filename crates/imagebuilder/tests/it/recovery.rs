//! Recovery on the real engine: what a process killed mid-way left (an
//! update check's container) is finished by
//! `Builder::recover`, the function `pipeline start`, `build list`, `build
//! show` and `build cancel` run; a live process's containers are kept.

use std::collections::BTreeMap;
use std::time::Duration;

use autopatch_engine::{ContainerInfo, ContainerSpec, ContainerState, Engine};
use autopatch_imagebuilder::{NAMESPACE_LABEL, OWNER_LABEL, ROLE_LABEL, Sources};

use crate::support::{Fixture, GOLDEN, dead_pid};

/// This state directory's update-check containers.
async fn check_containers(fixture: &Fixture) -> Vec<ContainerInfo> {
    let labels = [
        (ROLE_LABEL.to_owned(), "check-updates".to_owned()),
        (NAMESPACE_LABEL.to_owned(), fixture.builder.store.engine_namespace().to_owned()),
    ];
    fixture.builder.engine.container_list(&labels).await.unwrap()
}

/// A running container named `name` with `labels`, as a check makes it.
async fn left_container(fixture: &Fixture, name: &str, labels: BTreeMap<String, String>) -> String {
    let engine = &fixture.builder.engine;
    let spec = ContainerSpec {
        name: Some(name.to_owned()),
        image: GOLDEN.to_owned(),
        cmd: vec!["sleep".into(), "infinity".into()],
        init: true,
        labels,
        ..ContainerSpec::default()
    };
    let container = engine.container_create(&spec).await.unwrap();
    engine.container_start(&container.id).await.unwrap();
    container.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_check_container_whose_owner_died_is_removed_and_a_live_ones_kept() {
    let fixture = Fixture::new().await;
    let engine = &fixture.builder.engine;

    // A check this process stops mid-way without its cleanup, as a SIGKILL
    // would: its future is dropped once its container runs.
    let live = {
        let mut check = Box::pin(fixture.builder.check_updates(GOLDEN, "golden", Sources::Image));
        loop {
            tokio::select! {
                biased;
                result = &mut check => panic!("the check ended before it was stopped: {result:?}"),
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            let running = check_containers(&fixture)
                .await
                .into_iter()
                .find(|container| container.state == ContainerState::Running);
            if let Some(container) = running {
                break container;
            }
        }
    };
    let name = live.name.trim_start_matches('/').to_owned();
    assert!(name.starts_with("autopatch-check-updates-c-"), "a deterministic name: {name}");
    assert_eq!(live.labels.get(OWNER_LABEL), Some(&std::process::id().to_string()));

    // The same check left by a process that has exited, and one left by a
    // dead process of another state directory.
    let mut labels = live.labels.clone();
    labels.insert(OWNER_LABEL.to_owned(), dead_pid().to_string());
    let dead = left_container(&fixture, &format!("{name}-dead"), labels.clone()).await;
    labels.insert(NAMESPACE_LABEL.to_owned(), "elsewhere".to_owned());
    let elsewhere = left_container(&fixture, &format!("{name}-elsewhere"), labels).await;

    assert_eq!(fixture.builder.recover().await.unwrap(), Vec::<String>::new());

    assert!(engine.container_inspect(&dead).await.unwrap().is_none(), "the dead owner's is gone");
    let kept = engine.container_inspect(&live.id).await.unwrap().expect("the live owner's");
    assert_eq!(kept.state, ContainerState::Running);
    assert!(
        engine.container_inspect(&elsewhere).await.unwrap().is_some(),
        "another state directory's is left to it"
    );
    for id in [&live.id, &elsewhere] {
        engine.container_remove(id).await.unwrap();
    }
}
