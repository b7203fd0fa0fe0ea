//! A fault at every engine call of a build, one run per call: whatever call
//! fails, the build ends terminal, publishes nothing and leaves nothing
//! behind (Architecture invariant of `build.rs`, design invariant 4).
//!
//! The sweep first records the calls of a successful build (the baseline),
//! then for each N in 0..count runs the same build with the N-th call
//! failing. Runs are deterministic, so the N-th call of a faulted run is the
//! N-th call of the baseline, which names the fault in failure messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use autopatch_engine::{Call, FaultKind, Operation};
use autopatch_imagebuilder::{StartOptions, StartOutcome, error_chain};
use autopatch_model::ImageState;

use crate::harness::{Sim, bash, component, notes, update_and_smoke, update_os};

/// A fresh host with the usual pipeline (build, validate and test phases).
async fn sim() -> Sim {
    Sim::with_pipeline(&update_and_smoke(), "").await
}

/// The engine calls a successful start of the pipeline makes.
async fn baseline() -> Vec<Call> {
    let sim = sim().await;
    let before = sim.engine.calls().len();
    let (outcome, _) = sim.build().await;
    assert_eq!(outcome.build.state, ImageState::Available, "the baseline build must succeed");
    sim.engine.calls()[before..].to_vec()
}

/// Fails the `n`-th engine call (0-based) from now with `kind`, once.
fn fail_call(sim: &Sim, n: usize, kind: FaultKind) {
    let seen = Arc::new(AtomicUsize::new(0));
    sim.engine.fail_when(move |_call| (seen.fetch_add(1, Ordering::SeqCst) == n).then_some(kind));
}

/// Runs the build with the `n`-th call failing and returns what went wrong
/// (empty when every expectation held).
async fn run_with_fault(
    n: usize,
    faulted: &Call,
    published_at: usize,
    build_container: &str,
    kind: FaultKind,
) -> Vec<String> {
    let sim = sim().await;
    fail_call(&sim, n, kind);
    let (outcome, progress) = sim.start_with(&StartOptions::default()).await;
    let mut problems = Vec::new();
    let store = &sim.builder.store;
    let builds = store.builds().unwrap();
    let images = store.images().unwrap();
    let tags = sim.tags_besides_parent();
    let containers = sim.container_names();

    let build = match outcome {
        Err(error) => {
            // Refused before the build row: nothing may exist.
            if !builds.is_empty() {
                problems.push(format!(
                    "start failed ({}) but left builds {builds:?}",
                    error_chain(&error)
                ));
            }
            None
        }
        Ok(StartOutcome::Built(outcome)) => Some(outcome),
        Ok(StartOutcome::Skipped { reason, .. }) => {
            problems.push(format!("skipped: {reason}"));
            None
        }
    };

    match build {
        None => {
            if !images.is_empty() || !tags.is_empty() || !containers.is_empty() {
                problems.push(format!(
                    "no build, yet images {images:?}, tags {tags:?}, containers {containers:?}"
                ));
            }
        }
        // Faults after the image row was written hit the post-publish
        // cleanup (the private snapshot tag). Failing the build then would
        // unpublish an image, so the build stays AVAILABLE, says the cleanup
        // was incomplete, and the private tag is left.
        // FIXME: known gap: the snapshot tag `localhost/autopatch-snapshot/<build>:snapshot`
        // stays on the published image; recover() skips terminal builds, so
        // nothing ever removes it (it costs no space: the image is published).
        // The build container is removed in the background once committed
        // and its evidence read (before or after the publish, as the tasks
        // are scheduled); a failure there is not the image's: the build
        // publishes and the final cleanup removes the container.
        Some(outcome) if matches!(faulted, Call::ContainerRemove { id } if id == build_container) =>
        {
            if outcome.build.state != ImageState::Available {
                problems.push(format!(
                    "a failed build-container removal ended {:?} ({:?})",
                    outcome.build.state, outcome.build.reason
                ));
            }
            if images.len() != 1 || tags != [sim.published(1)] {
                problems.push(format!("removal fault: images {images:?}, tags {tags:?}"));
            }
            if !containers.is_empty() {
                problems.push(format!("removal fault: containers left {containers:?}"));
            }
        }
        Some(outcome) if n > published_at => {
            if outcome.build.state != ImageState::Available {
                problems.push(format!("post-publish fault ended {:?}", outcome.build.state));
            }
            if images.len() != 1 {
                problems.push(format!("post-publish fault: image rows {images:?}"));
            }
            // The snapshot tag stays unless its removal took effect (the
            // answer was lost after it).
            let snapshot_removed =
                kind == FaultKind::LostResponse && matches!(faulted, Call::ImageRemove { .. });
            let mut expected_tags = vec![sim.published(1)];
            if !snapshot_removed {
                expected_tags
                    .push(format!("localhost/autopatch-snapshot/{}:snapshot", outcome.build.id));
            }
            expected_tags.sort();
            if tags != expected_tags {
                problems.push(format!("post-publish fault: tags {tags:?}"));
            }
            if !notes(&progress).iter().any(|note| note.starts_with("cleanup incomplete")) {
                problems.push("post-publish fault: no 'cleanup incomplete' note".to_owned());
            }
            // A container the failed cleanup left (the test container) is
            // removed by the next recovery, which every start runs first.
            if !containers.is_empty() {
                sim.engine.clear_faults();
                if let Err(error) = sim.builder.recover().await {
                    problems.push(format!("recover() failed: {}", error_chain(&error)));
                }
                let left = sim.container_names();
                if !left.is_empty() {
                    problems.push(format!("containers left after recover(): {left:?}"));
                }
            }
        }
        Some(outcome) => {
            let build = &outcome.build;
            if build.state != ImageState::Failed {
                problems.push(format!("ended {:?} ({:?})", build.state, build.reason));
            }
            let reason = build.reason.clone().unwrap_or_default();
            if !reason.contains("injected fault") && kind == FaultKind::Api {
                problems.push(format!("the reason does not name the fault: {reason:?}"));
            }
            if !images.is_empty() || outcome.image.is_some() {
                problems.push(format!("a failed build published {images:?}"));
            }
            if !tags.is_empty() {
                problems.push(format!("tags left: {tags:?}"));
            }
            if !containers.is_empty() {
                problems.push(format!("containers left: {containers:?}"));
            }
            // The build is terminal: recovery has nothing to do for it.
            match sim.builder.recover().await {
                Ok(ended) if ended.is_empty() => {}
                other => problems.push(format!("recover() after the build: {other:?}")),
            }
        }
    }
    problems
        .into_iter()
        .map(|problem| format!("fault {kind:?} at call {n} ({faulted:?}): {problem}"))
        .collect()
}

async fn sweep(kind: FaultKind) {
    let baseline = baseline().await;
    let published_at = baseline
        .iter()
        .position(|call| matches!(call, Call::ImageTag { .. }))
        .expect("the baseline publishes");
    // The sweep must cover every stage; a shorter baseline means the
    // simulation stopped exercising part of the build.
    for operation in [
        Operation::ImageInspect,
        Operation::NetworkEnsure,
        Operation::ContainerCreate,
        Operation::ContainerStart,
        Operation::Exec,
        Operation::PutFile,
        Operation::Commit,
        Operation::ContainerRemove,
        Operation::ImageTag,
        Operation::ContainerList,
        Operation::ImageRemove,
    ] {
        assert!(
            baseline.iter().any(|call| call.operation() == operation),
            "{operation:?} not in the baseline"
        );
    }
    // The first container started is the build container (ids repeat from
    // run to run).
    let build_container = baseline
        .iter()
        .find_map(|call| match call {
            Call::ContainerStart { id } => Some(id.clone()),
            _ => None,
        })
        .expect("the baseline starts a build container");
    let mut problems = Vec::new();
    for (n, call) in baseline.iter().enumerate() {
        problems.extend(run_with_fault(n, call, published_at, &build_container, kind).await);
    }
    assert!(
        problems.is_empty(),
        "{} of {} faulted runs went wrong:\n{}",
        problems.len(),
        baseline.len(),
        problems.join("\n")
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_refused_engine_call_anywhere_fails_the_build_cleanly() {
    sweep(FaultKind::Api).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_lost_engine_response_anywhere_fails_the_build_cleanly() {
    // The call takes effect, then the answer is lost: the build must still
    // undo what it cannot know it did (a created container, a tag).
    sweep(FaultKind::LostResponse).await;
}

/// When the cleanup's own `container_remove` fails, the build still ends
/// terminal (`FAILED`) and its container stays until the next
/// `Builder::recover()` (every pipeline start runs one), which removes
/// containers of finished builds whose owner (here: this process) is gone or
/// is the recovering process itself.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failed_cleanup_is_finished_by_the_next_recovery() {
    let components = vec![
        component("update")
            .phase("build", vec![update_os("UpdateOS"), bash("Breaks", &["exit 3"])]),
    ];
    let sim = Sim::with_pipeline(&components, "").await;
    sim.engine
        .fail_when(|call| matches!(call, Call::ContainerRemove { .. }).then_some(FaultKind::Api));
    let (outcome, progress) = sim.build().await;

    assert_eq!(outcome.build.state, ImageState::Failed);
    assert!(outcome.image.is_none());
    assert!(sim.builder.store.images().unwrap().is_empty());
    assert!(
        notes(&progress).iter().any(|note| note.starts_with("cleanup incomplete")),
        "the leftover is reported: {:?}",
        notes(&progress)
    );
    let build_container = format!("autopatch-build-{}", outcome.build.id);
    assert_eq!(sim.container_names(), [build_container.as_str()]);

    sim.engine.clear_faults();
    assert_eq!(sim.builder.recover().await.unwrap(), Vec::<String>::new(), "the build is terminal");
    assert!(sim.container_names().is_empty(), "recover() removes the finished build's container");
}
