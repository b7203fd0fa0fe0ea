//! Recovery on the real engine: what a process killed mid-way left (an
//! update check's container, a build's container and row) is finished by
//! `Builder::recover`, the function `pipeline start`, `build list`, `build
//! show` and `build cancel` run; a live process's containers are kept.

use std::collections::BTreeMap;
use std::time::Duration;

use autopatch_engine::{ContainerInfo, ContainerSpec, ContainerState, Engine};
use autopatch_imagebuilder::{
    NAMESPACE_LABEL, OWNER_LABEL, ROLE_LABEL, Sources, StartOptions, StartOutcome,
};
use autopatch_model::ImageState;
use tokio_util::sync::CancellationToken;

use crate::support::{Fixture, GOLDEN, dead_pid, detailed_output, single_component_pipeline};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_ends_a_build_whose_runner_died_and_completes_its_detailed_output() {
    let fixture = Fixture::new().await;
    single_component_pipeline(
        &fixture,
        r#"
name: probe
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Greets
        action: ExecuteBash
        inputs:
          commands: [ "echo hello" ]
      - name: Sleeps
        action: ExecuteBash
        inputs:
          commands: [ "sleep 60" ]
"#,
        true,
    )
    .await;

    // The runner dies while Sleeps runs: its future is dropped (no cleanup,
    // no final write), and its pid is one that has exited.
    let (options, cancel) = (StartOptions::default(), CancellationToken::new());
    let start = autopatch_imagebuilder::start_pipeline(
        &fixture.builder,
        "probe",
        &options,
        &autopatch_imagebuilder::NoProgress,
        &cancel,
    );
    let sleeping = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Some(build) = fixture.builder.store.builds().unwrap().pop() else { continue };
            let path = std::path::Path::new(&build.artifact_dir).join("detailedoutput.json");
            let Ok(text) = std::fs::read_to_string(path) else { continue };
            let output: serde_json::Value = serde_json::from_str(&text).unwrap();
            if output["phases"][0]["steps"][1]["status"] == "running" {
                return build;
            }
        }
    };
    let build = tokio::select! {
        outcome = start => match outcome {
            Ok(StartOutcome::Built(outcome)) => panic!("the build ended: {:?}", outcome.build),
            other => panic!("the start ended: {other:?}"),
        },
        build = sleeping => build,
    };
    let runner = dead_pid();
    fixture.builder.store.set_build_owner(&build.id, runner).unwrap();
    assert!(!fixture.leftover_containers().await.is_empty(), "the dead runner left its container");

    assert_eq!(fixture.builder.recover().await.unwrap(), std::slice::from_ref(&build.id));

    let build = fixture.builder.store.build(&build.id).unwrap().unwrap();
    let reason =
        format!("the process running the build (pid {runner}) exited before the build finished");
    assert_eq!((build.state, build.reason.as_deref()), (ImageState::Failed, Some(reason.as_str())));
    let output = detailed_output(&build);
    assert_eq!(
        (&output["state"], &output["reason"], &output["ended_by_recovery"]),
        (&"FAILED".into(), &reason.as_str().into(), &true.into()),
        "{output}"
    );
    assert!(output["finished_at"].is_string(), "{output}");
    let phase = &output["phases"][0];
    assert_eq!(phase["status"], "failed");
    let steps: Vec<(&str, &str)> = phase["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| (step["name"].as_str().unwrap(), step["status"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, [("Greets", "success"), ("Sleeps", "failed")]);
    let sleeps = &phase["steps"][1];
    assert_eq!(sleeps["failure_message"], reason.as_str());
    // What the runner knew when the step started: its attempt and its log,
    // which holds that attempt; and how long it ran until recovery.
    assert_eq!(sleeps["attempts"], 1, "{sleeps}");
    let log = sleeps["log"].as_str().expect("the step's log");
    assert!(log.ends_with("/logs/build/probe/build/Sleeps.log"), "{log}");
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("autopatch: step Sleeps attempt 1 (ExecuteBash)"), "{text}");
    let (started, finished) = (sleeps["started_at"].as_str(), output["finished_at"].as_str());
    assert!(started.is_some_and(|started| Some(started) < finished), "{sleeps}");
    assert!(sleeps["duration_ms"].as_u64().is_some_and(|ms| ms > 0), "{sleeps}");
    assert!(phase["duration_ms"].as_u64() >= sleeps["duration_ms"].as_u64(), "{phase}");
    assert_eq!(fixture.leftover_containers().await, Vec::<String>::new());
}
