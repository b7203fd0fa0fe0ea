//! Build lifecycle on the real engine: failures publish nothing and leave
//! nothing behind; retries, timeouts and exit-194 reboots behave as AWSTOE's.

use autopatch_engine::Engine;
use autopatch_imagebuilder::{BuildEvent, StartOutcome, engine_reference};
use autopatch_model::ImageState;

use crate::support::{Fixture, detailed_output, single_component_pipeline};

async fn run(fixture: &Fixture) -> autopatch_imagebuilder::BuildOutcome {
    match fixture.start("probe").await.0 {
        StartOutcome::Built(outcome) => outcome,
        other => panic!("expected a build, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_build_step_publishes_nothing_and_leaves_no_container() {
    let fixture = Fixture::new().await;
    single_component_pipeline(
        &fixture,
        r#"
name: probe
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Breaks
        action: ExecuteBash
        inputs:
          commands:
            - echo "about to fail"
            - exit 3
      - name: NeverRuns
        action: ExecuteBash
        inputs:
          commands: [ "touch /never" ]
"#,
        true,
    )
    .await;
    let outcome = run(&fixture).await;
    assert_eq!(outcome.build.state, ImageState::Failed);
    let reason = outcome.build.reason.clone().unwrap();
    assert!(reason.contains("step Breaks of component probe"), "{reason}");
    assert!(
        reason.contains("exit code 3") && reason.contains("about to fail"),
        "the reason carries the output: {reason}"
    );
    assert!(outcome.image.is_none());
    assert!(fixture.builder.store.images().unwrap().is_empty());
    let namespace = fixture.builder.store.engine_namespace();
    let reference = engine_reference(namespace, "probe", "1.0.0", 1);
    assert!(
        fixture.builder.engine.image_inspect(&reference).await.unwrap().is_none(),
        "no image is tagged for a failed build"
    );
    assert_eq!(fixture.leftover_containers().await, Vec::<String>::new());
    let log = std::fs::read_to_string(
        std::path::Path::new(&outcome.build.artifact_dir).join("logs/build/probe/build/Breaks.log"),
    )
    .unwrap();
    assert!(log.contains("about to fail"), "the step log keeps the output: {log}");
    let detail = detailed_output(&outcome.build);
    assert_eq!(detail["state"], "FAILED");
    assert_eq!(detail["phases"][0]["steps"][0]["exit_code"], 3);
    assert_eq!(detail["phases"][0]["steps"][1]["status"], "skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_test_phase_removes_the_snapshot() {
    let fixture = Fixture::new().await;
    single_component_pipeline(
        &fixture,
        r#"
name: probe
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Marks
        action: ExecuteBash
        inputs:
          commands: [ "echo built > /built" ]
  - name: test
    steps:
      - name: ChecksSomethingMissing
        action: ExecuteBash
        inputs:
          commands: [ "test -e /not-there" ]
"#,
        true,
    )
    .await;
    let outcome = run(&fixture).await;
    assert_eq!(outcome.build.state, ImageState::Failed);
    assert!(outcome.build.reason.unwrap().contains("ChecksSomethingMissing"));
    let snapshot = format!("localhost/autopatch-snapshot/{}:snapshot", outcome.build.id);
    assert!(
        fixture.builder.engine.image_inspect(&snapshot).await.unwrap().is_none(),
        "the snapshot is removed"
    );
    assert!(fixture.builder.store.images().unwrap().is_empty());
    assert_eq!(fixture.leftover_containers().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_reboots_outputs_and_timeouts_behave_like_awstoe() {
    let fixture = Fixture::new().await;
    single_component_pipeline(
        &fixture,
        r#"
name: probe
schemaVersion: 1.0
parameters:
  - Greeting:
      type: string
      default: hello
phases:
  - name: build
    steps:
      - name: FailsTwice
        action: ExecuteBash
        maxAttempts: 3
        inputs:
          commands:
            - n=$(cat /attempts 2>/dev/null || echo 0); n=$((n+1)); echo $n > /attempts
            - test "$n" -ge 3
      - name: Reboots
        action: ExecuteBash
        inputs:
          commands:
            - if [ ! -e /rebooted ]; then touch /rebooted; exit 194; fi
            - echo "after reboot"
      - name: Says
        action: ExecuteBash
        inputs:
          commands: [ "echo {{ Greeting }} world" ]
      - name: Repeats
        action: CreateFile
        inputs:
          - path: /etc/probe.txt
            permissions: "0600"
            content: "{{ build.Says.outputs.stdout }}"
      - name: SlowButIgnored
        action: ExecuteBash
        timeoutSeconds: 1
        onFailure: Ignore
        inputs:
          commands: [ "sleep 20" ]
  - name: validate
    steps:
      - name: FileIsThere
        action: ExecuteBash
        inputs:
          commands:
            - test "$(cat /etc/probe.txt)" = "hello world"
            - test "$(stat -c %a /etc/probe.txt)" = 600
"#,
        false,
    )
    .await;
    let (outcome, progress) = fixture.start("probe").await;
    let StartOutcome::Built(outcome) = outcome else { panic!("expected a build") };
    assert_eq!(outcome.build.state, ImageState::Available, "{:?}", outcome.build.reason);
    let events = progress.events();
    assert!(
        events.iter().any(|e| matches!(e, BuildEvent::Rebooting { step } if step == "Reboots"))
    );
    let detail = detailed_output(&outcome.build);
    let steps = &detail["phases"][0]["steps"];
    assert_eq!(steps[0]["attempts"], 3, "FailsTwice succeeded on its third attempt");
    assert_eq!(steps[1]["reboots"], 1);
    assert_eq!(steps[2]["outputs"]["stdout"], "hello world");
    assert_eq!(steps[4]["status"], "ignored", "the timed-out step was ignored: {}", steps[4]);
    assert!(steps[4]["exit_code"].is_null(), "a timed-out step has no exit code: {}", steps[4]);
    assert_eq!(fixture.leftover_containers().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_ends_the_build_cancelled_and_clean() {
    let fixture = Fixture::new().await;
    single_component_pipeline(
        &fixture,
        r#"
name: probe
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Long
        action: ExecuteBash
        inputs:
          commands: [ "sleep 60" ]
"#,
        true,
    )
    .await;
    let store = std::sync::Arc::clone(&fixture.builder.store);
    let canceller = tokio::spawn(async move {
        // Cancel from "another process": through the store, once the build runs.
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if let Some(build) = store.builds().unwrap().first()
                && build.state == ImageState::Building
            {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                assert!(store.request_cancel(&build.id).unwrap());
                return;
            }
        }
    });
    let (outcome, progress) = fixture.start("probe").await;
    let StartOutcome::Built(outcome) = outcome else { panic!("expected a build") };
    canceller.await.unwrap();
    assert_eq!(outcome.build.state, ImageState::Cancelled);
    assert!(
        !progress
            .events()
            .iter()
            .any(|e| matches!(e, BuildEvent::StepFinished { step, .. } if step == "Long")),
        "the cancel stopped the running step instead of waiting for it"
    );
    assert!(fixture.builder.store.images().unwrap().is_empty());
    assert_eq!(fixture.leftover_containers().await, Vec::<String>::new());
}

/// The build (the only one of this fixture) once its step `step` has
/// printed `text` to its log.
async fn once_step_printed(fixture: &Fixture, step: &str, text: &str) -> autopatch_store::BuildRow {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let Some(build) = fixture.builder.store.builds().unwrap().pop() else { continue };
        let log = std::path::Path::new(&build.artifact_dir)
            .join(format!("logs/build/probe/build/{step}.log"));
        if std::fs::read_to_string(log).is_ok_and(|log| log.contains(text)) {
            return build;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_container_killed_during_a_step_is_reported_killed_not_timed_out() {
    let fixture = Fixture::new().await;
    single_component_pipeline(
        &fixture,
        r#"
name: probe
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Sleeps
        action: ExecuteBash
        inputs:
          commands: [ "echo start", "sleep 40" ]
"#,
        true,
    )
    .await;
    let killer = async {
        let build = once_step_printed(&fixture, "Sleeps", "start").await;
        // What QA ran: `podman kill` of the build container.
        let killed = std::process::Command::new("podman")
            .args(["kill", &format!("autopatch-build-{}", build.id)])
            .output()
            .unwrap();
        assert!(killed.status.success(), "{}", String::from_utf8_lossy(&killed.stderr));
    };
    let ((outcome, _), ()) = tokio::join!(fixture.start("probe"), killer);
    let StartOutcome::Built(outcome) = outcome else { panic!("expected a build") };

    assert_eq!(outcome.build.state, ImageState::Failed);
    let said = "the build container exited (killed by SIGKILL, exit 137) while the step ran; \
                last output:\nstart";
    assert_eq!(
        outcome.build.reason.as_deref(),
        Some(format!("step Sleeps of component probe (build phase) failed: {said}").as_str())
    );
    let step = &detailed_output(&outcome.build)["phases"][0]["steps"][0];
    assert_eq!((&step["status"], &step["failure_message"]), (&"failed".into(), &said.into()));
    assert!(fixture.builder.store.images().unwrap().is_empty());
    assert_eq!(fixture.leftover_containers().await, Vec::<String>::new());
}
