//! The AWSTOE step machine inside whole builds: `onFailure` Abort, Continue
//! and Ignore, `maxAttempts` retries, and exit-194 reboots.

use autopatch_engine::{Call, Operation};
use autopatch_model::ImageState;

use crate::harness::{Component, Sim, bash, component, detailed_output, states, step_table};

/// One build component: a step that passes, a step `Flaky` built by the
/// test, and a step after it.
fn around(flaky: crate::harness::StepSpec) -> Vec<Component> {
    vec![component("probe").phase(
        "build",
        vec![bash("Before", &["echo before"]), flaky, bash("After", &["echo after"])],
    )]
}

fn runs(sim: &Sim, step: &str) -> u32 {
    let path = format!("/tmp/autopatch-toe/probe-{step}.sh");
    sim.world().script_runs.get(&path).copied().unwrap_or(0)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn on_failure_abort_fails_the_build_and_skips_the_rest() {
    let sim = Sim::with_pipeline(&around(bash("Flaky", &["echo broken", "exit 3"])), "").await;
    let (outcome, progress) = sim.build().await;

    assert_eq!(outcome.build.state, ImageState::Failed);
    let reason = outcome.build.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("step Flaky of component probe (build phase) failed: exit code 3"),
        "{reason}"
    );
    assert!(reason.contains("broken"), "{reason}");
    assert_eq!(
        step_table(&detailed_output(&outcome.build)),
        [
            "build probe Before: success attempts=1 reboots=0",
            "build probe Flaky: failed attempts=1 reboots=0",
            "build probe After: skipped attempts=0 reboots=0",
        ]
    );
    assert_eq!(runs(&sim, "After"), 0);
    assert_eq!(sim.engine.calls_of(Operation::Commit), [], "no snapshot of a failed build");
    assert_eq!(states(&progress), [ImageState::Pending, ImageState::Building, ImageState::Failed]);
    sim.assert_nothing_left("abort");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn on_failure_continue_runs_the_rest_then_fails_the_build() {
    let flaky = bash("Flaky", &["exit 3"]).on_failure("Continue");
    let sim = Sim::with_pipeline(&around(flaky), "").await;
    let (outcome, _) = sim.build().await;

    assert_eq!(outcome.build.state, ImageState::Failed);
    let reason = outcome.build.reason.clone().unwrap_or_default();
    assert!(reason.contains("component probe failed its build phase"), "{reason}");
    assert_eq!(
        step_table(&detailed_output(&outcome.build)),
        [
            "build probe Before: success attempts=1 reboots=0",
            "build probe Flaky: failed attempts=1 reboots=0",
            "build probe After: success attempts=1 reboots=0",
        ]
    );
    assert_eq!(runs(&sim, "After"), 1);
    assert_eq!(sim.engine.calls_of(Operation::Commit), []);
    sim.assert_nothing_left("continue");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn on_failure_ignore_publishes() {
    let flaky = bash("Flaky", &["exit 3"]).on_failure("Ignore");
    let sim = Sim::with_pipeline(&around(flaky), "").await;
    let (outcome, _) = sim.build().await;

    assert_eq!(outcome.build.state, ImageState::Available, "reason: {:?}", outcome.build.reason);
    assert_eq!(
        step_table(&detailed_output(&outcome.build)),
        [
            "build probe Before: success attempts=1 reboots=0",
            "build probe Flaky: ignored attempts=1 reboots=0",
            "build probe After: success attempts=1 reboots=0",
        ]
    );
    assert!(outcome.image.is_some());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn max_attempts_retries_until_the_step_succeeds() {
    let flaky =
        bash("Flaky", &["# sim: fail 2 times with exit 1", "echo third time"]).max_attempts(3);
    let sim = Sim::with_pipeline(&around(flaky), "").await;
    let (outcome, _) = sim.build().await;

    assert_eq!(outcome.build.state, ImageState::Available, "reason: {:?}", outcome.build.reason);
    assert_eq!(runs(&sim, "Flaky"), 3);
    assert_eq!(
        step_table(&detailed_output(&outcome.build))[1],
        "build probe Flaky: success attempts=3 reboots=0"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn max_attempts_exhausted_fails_with_the_attempt_count() {
    let flaky = bash("Flaky", &["# sim: fail 5 times with exit 1"]).max_attempts(3);
    let sim = Sim::with_pipeline(&around(flaky), "").await;
    let (outcome, _) = sim.build().await;

    assert_eq!(outcome.build.state, ImageState::Failed);
    assert_eq!(runs(&sim, "Flaky"), 3, "no fourth attempt");
    let reason = outcome.build.reason.unwrap_or_default();
    assert!(reason.contains("exit code 1 after 3 attempts"), "{reason}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn exit_194_restarts_the_container_and_runs_the_step_again() {
    let flaky = bash("Flaky", &["# sim: fail 1 times with exit 194", "echo rebooted"]);
    let sim = Sim::with_pipeline(&around(flaky), "").await;
    let (outcome, _) = sim.build().await;

    assert_eq!(outcome.build.state, ImageState::Available, "reason: {:?}", outcome.build.reason);
    assert_eq!(runs(&sim, "Flaky"), 2);
    assert_eq!(
        step_table(&detailed_output(&outcome.build))[1],
        "build probe Flaky: success attempts=1 reboots=1"
    );

    // Create+start, then stop+start for the reboot, all on the build container.
    let container_calls: Vec<(&'static str, String)> = sim
        .engine
        .calls()
        .into_iter()
        .filter_map(|call| match call {
            Call::ContainerStart { id } => Some(("start", id)),
            Call::ContainerStop { id, .. } => Some(("stop", id)),
            _ => None,
        })
        .collect();
    let verbs: Vec<&str> = container_calls.iter().map(|(verb, _)| *verb).collect();
    assert_eq!(verbs, ["start", "stop", "start"]);
    assert!(
        container_calls.iter().all(|(_, id)| *id == container_calls[0].1),
        "{container_calls:?}"
    );
    sim.assert_nothing_left_but_the_image();
}

impl Sim {
    /// After a successful build: the one image and nothing else.
    fn assert_nothing_left_but_the_image(&self) {
        assert_eq!(self.builder.store.images().unwrap().len(), 1);
        assert_eq!(self.tags_besides_parent(), [self.published(1)]);
        assert_eq!(self.container_names(), Vec::<String>::new());
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_action_the_engine_cannot_carry_out_is_a_step_failure_under_on_failure() {
    // The engine refuses to write the step's script: the action fails at
    // run time, which `onFailure: Continue` handles like a non-zero exit.
    let sim =
        Sim::with_pipeline(&around(bash("Flaky", &["echo ok"]).on_failure("Continue")), "").await;
    sim.engine.fail_when(|call| {
        matches!(call, Call::PutFile { path, .. } if path.ends_with("probe-Flaky.sh"))
            .then_some(autopatch_engine::FaultKind::Api)
    });
    let (outcome, _) = sim.build().await;

    assert_eq!(outcome.build.state, ImageState::Failed, "{:?}", outcome.build.reason);
    let output = detailed_output(&outcome.build);
    assert_eq!(
        step_table(&output),
        [
            "build probe Before: success attempts=1 reboots=0",
            "build probe Flaky: failed attempts=1 reboots=0",
            "build probe After: success attempts=1 reboots=0",
        ]
    );
    let message = output["phases"][0]["steps"][1]["failure_message"].as_str().unwrap_or_default();
    assert!(message.contains("failed to write a file"), "the engine's error: {message}");
    assert_eq!(runs(&sim, "After"), 1);
    sim.assert_nothing_left("a step the engine failed");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_cancel_mid_phase_keeps_the_steps_that_ran_in_the_detailed_output() {
    let sim =
        Sim::with_pipeline(&around(bash("Flaky", &["# sim: cancel", "echo running"])), "").await;
    let (outcome, _) = sim.build().await;

    assert_eq!(outcome.build.state, ImageState::Cancelled, "{:?}", outcome.build.reason);
    let output = detailed_output(&outcome.build);
    assert_eq!(
        step_table(&output),
        [
            "build probe Before: success attempts=1 reboots=0",
            // Its first attempt had started (and was recorded) when the
            // cancel came.
            "build probe Flaky: cancelled attempts=1 reboots=0",
        ]
    );
    assert_eq!(output["phases"][0]["status"], "cancelled");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_killed_container_fails_its_step_and_ends_the_stage_whatever_on_failure_says() {
    let killed = bash("Flaky", &["echo start", "# sim: the container is killed"])
        .on_failure("Ignore")
        .max_attempts(3);
    let sim = Sim::with_pipeline(&around(killed), "").await;
    let (outcome, _) = sim.build().await;

    assert_eq!(outcome.build.state, ImageState::Failed);
    let reason = outcome.build.reason.clone().unwrap_or_default();
    assert_eq!(
        reason,
        "step Flaky of component probe (build phase) failed: the build container exited \
         (killed by SIGKILL, exit 137) while the step ran; last output:\nstart"
    );
    let output = detailed_output(&outcome.build);
    assert_eq!(
        step_table(&output),
        [
            "build probe Before: success attempts=1 reboots=0",
            "build probe Flaky: failed attempts=1 reboots=0",
            "build probe After: skipped attempts=0 reboots=0",
        ],
        "no retry and no next step in a dead container"
    );
    assert_eq!(output["phases"][0]["steps"][1]["exit_code"], 137);
    assert_eq!((runs(&sim, "Flaky"), runs(&sim, "After")), (1, 0));
    sim.assert_nothing_left("killed container");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn exit_137_before_the_step_timeout_is_a_kill_not_a_timeout() {
    let sim = Sim::with_pipeline(&around(bash("Flaky", &["echo start", "exit 137"])), "").await;
    let (outcome, _) = sim.build().await;

    assert_eq!(outcome.build.state, ImageState::Failed);
    let reason = outcome.build.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with(
            "step Flaky of component probe (build phase) failed: exit code 137 (killed by SIGKILL)"
        ),
        "{reason}"
    );
    let output = detailed_output(&outcome.build);
    assert_eq!(output["phases"][0]["steps"][1]["exit_code"], 137, "{output}");
}
