//! Whole builds: the happy path with its evidence and artifacts, a failing
//! test stage, cancellation in either stage, and idempotent starts.

use autopatch_engine::Operation;
use autopatch_imagebuilder::{ImageEvidence, StartOptions, StartOutcome};
use autopatch_model::ImageState;

use crate::harness::{
    FIXED_CVES, Sim, UPGRADED_VERSION, bash, component, detailed_output, states, step_table,
    update_and_smoke, update_os,
};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_build_publishes_a_versioned_image_with_evidence_and_leaves_nothing_else() {
    let sim = Sim::with_pipeline(&update_and_smoke(), "").await;
    let (outcome, progress) = sim.build().await;
    let build = &outcome.build;

    assert_eq!(build.state, ImageState::Available, "reason: {:?}", build.reason);
    assert!(outcome.started);
    assert_eq!(
        states(&progress),
        [ImageState::Pending, ImageState::Building, ImageState::Testing, ImageState::Available]
    );

    // The image row, its engine tag, and nothing else in the engine.
    let image = sim.builder.store.image("recipe/1.0.0/1").unwrap().expect("the image row");
    assert_eq!(outcome.image.as_ref(), Some(&image));
    assert_eq!(image.build_id.as_deref(), Some(build.id.as_str()));
    let published = sim.published(1);
    assert_eq!(image.engine_reference, published);
    assert_eq!(sim.tags_besides_parent(), [published.as_str()], "the snapshot tag is gone");
    let snapshot = format!("localhost/autopatch-snapshot/{}:snapshot", build.id);
    assert!(!sim.tags().contains(&snapshot));
    let engine_image = sim.engine.images().into_iter().find(|i| i.tags.contains(&published));
    assert_eq!(engine_image.map(|i| i.id), Some(image.engine_image_id.clone()));
    assert_eq!(sim.container_names(), Vec::<String>::new(), "every container was removed");
    assert_eq!(sim.containers_created("build").len(), 1);
    assert_eq!(sim.containers_created("test").len(), 1);
    sim.assert_commands_understood();

    // Evidence: the openssl upgrade and the CVEs its changelog names since
    // the parent's version (not the older CVE-2023-4807).
    let evidence: ImageEvidence = serde_json::from_str(&image.evidence).expect("evidence JSON");
    let upgrades: Vec<String> =
        evidence.upgraded.iter().map(|u| format!("{} {} -> {}", u.name, u.from, u.to)).collect();
    assert_eq!(
        upgrades,
        [
            format!("libssl3:amd64 3.0.11-1~deb12u1 -> {UPGRADED_VERSION}"),
            format!("openssl 3.0.11-1~deb12u1 -> {UPGRADED_VERSION}"),
        ]
    );
    assert_eq!(evidence.cves, FIXED_CVES);
    assert!(evidence.changelogs_available);
    assert_eq!(evidence.package_count, 3);
    assert!(
        image.manifest.contains(&format!("openssl\t{UPGRADED_VERSION}\t")),
        "{}",
        image.manifest
    );

    // Artifacts: every step with its status, the documents, a log per step.
    let artifacts = std::path::Path::new(&build.artifact_dir);
    let output = detailed_output(build);
    assert_eq!(output["state"], "AVAILABLE");
    assert_eq!(output["image_version"], "recipe/1.0.0/1");
    assert_eq!(
        step_table(&output),
        [
            "build update UpdateOS: success attempts=1 reboots=0",
            "validate update Validate: success attempts=1 reboots=0",
            "test smoke Smoke: success attempts=1 reboots=0",
        ]
    );
    let mut documents: Vec<String> = fs_err::read_dir(artifacts.join("documents"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    documents.sort();
    assert_eq!(
        documents,
        [
            "component-smoke-1.0.0.yml",
            "component-update-1.0.0.yml",
            "pipeline-pipe.yml",
            "recipe-recipe-1.0.0.yml",
        ]
    );
    for (log, expected) in [
        ("logs/build/update/build/UpdateOS.log", "Setting up openssl"),
        ("logs/build/update/validate/Validate.log", "validated"),
        ("logs/test/smoke/test/Smoke.log", "smoke ok"),
    ] {
        let text = fs_err::read_to_string(artifacts.join(log)).unwrap();
        assert!(text.contains(expected), "{log}: {text}");
    }
    assert!(artifacts.join("evidence.json").exists());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failing_test_stage_publishes_nothing_and_removes_the_snapshot() {
    let components = vec![
        component("update").phase("build", vec![update_os("UpdateOS")]),
        component("smoke").phase("test", vec![bash("Smoke", &["echo page missing", "exit 1"])]),
    ];
    let sim = Sim::with_pipeline(&components, "").await;
    let (outcome, progress) = sim.build().await;

    assert_eq!(outcome.build.state, ImageState::Failed);
    let reason = outcome.build.reason.unwrap_or_default();
    assert!(reason.contains("step Smoke of component smoke (test phase) failed"), "{reason}");
    assert!(reason.contains("page missing"), "the reason carries the output: {reason}");
    assert_eq!(states(&progress).last(), Some(&ImageState::Failed));
    assert!(states(&progress).contains(&ImageState::Testing));
    // The snapshot existed (the test container ran from it), then went.
    assert_eq!(sim.engine.calls_of(Operation::Commit).len(), 1);
    assert_eq!(sim.containers_created("test").len(), 1);
    assert!(outcome.image.is_none());
    sim.assert_nothing_left("failed test stage");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn another_state_directory_building_the_same_version_leaves_this_ones_image() {
    let here = Sim::with_pipeline(&update_and_smoke(), "").await;
    let (outcome, _) = here.build().await;
    let image = outcome.image.expect("published here");
    // Two other state directories on the host build the same recipe
    // version: one fails its test stage (and removes its version tag), one
    // publishes.
    let failing = here.beside();
    let failing_smoke = bash("Smoke", &["echo page missing", "exit 1"]);
    failing
        .register_all(
            &[
                component("update").phase("build", vec![update_os("UpdateOS")]),
                component("smoke").phase("test", vec![failing_smoke]),
            ],
            "",
        )
        .await;
    assert_eq!(failing.build().await.0.build.state, ImageState::Failed);
    let publishing = here.beside();
    publishing.register_all(&update_and_smoke(), "").await;
    assert_eq!(publishing.build().await.0.build.state, ImageState::Available);

    let tagged =
        here.engine.images().into_iter().find(|i| i.tags.contains(&image.engine_reference));
    assert_eq!(tagged.map(|i| i.id), Some(image.engine_image_id), "this directory's tag");
    let mut expected = vec![here.published(1), publishing.published(1)];
    expected.sort();
    assert_eq!(here.tags_besides_parent(), expected);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cancelling_while_a_build_step_runs_ends_cancelled_with_nothing_left() {
    let components = vec![
        component("update").phase(
            "build",
            vec![
                update_os("UpdateOS"),
                bash("Long", &["# sim: cancel", "echo still running"]),
                bash("After", &["echo never"]),
            ],
        ),
        component("smoke").phase("test", vec![bash("Smoke", &["echo smoke ok"])]),
    ];
    let sim = Sim::with_pipeline(&components, "").await;
    let (outcome, progress) = sim.build().await;

    assert_eq!(outcome.build.state, ImageState::Cancelled, "reason: {:?}", outcome.build.reason);
    assert_eq!(states(&progress).last(), Some(&ImageState::Cancelled));
    assert_eq!(sim.world().script_runs.get("/tmp/autopatch-toe/update-After.sh"), None);
    assert_eq!(sim.engine.calls_of(Operation::Commit).len(), 0, "no snapshot after a cancel");
    sim.assert_nothing_left("cancelled in the build stage");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cancelling_while_a_test_step_runs_removes_the_snapshot_and_test_container() {
    let components = vec![
        component("update").phase("build", vec![update_os("UpdateOS")]),
        component("smoke").phase("test", vec![bash("Smoke", &["# sim: cancel", "echo ok"])]),
    ];
    let sim = Sim::with_pipeline(&components, "").await;
    let (outcome, _) = sim.build().await;

    assert_eq!(outcome.build.state, ImageState::Cancelled, "reason: {:?}", outcome.build.reason);
    assert_eq!(sim.engine.calls_of(Operation::Commit).len(), 1);
    assert_eq!(sim.engine.calls_of(Operation::ImageTag).len(), 0, "never tagged for publishing");
    sim.assert_nothing_left("cancelled in the test stage");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_client_token_starts_one_build() {
    let sim = Sim::with_pipeline(&update_and_smoke(), "").await;
    let options = StartOptions { client_token: Some("t1".into()), ..StartOptions::default() };

    let (first, _) = sim.start_with(&options).await;
    let Ok(StartOutcome::Built(first)) = first else { panic!("first start: {first:?}") };
    let (second, second_progress) = sim.start_with(&options).await;
    let Ok(StartOutcome::Built(second)) = second else { panic!("second start: {second:?}") };

    assert!(first.started);
    assert_eq!(first.build.state, ImageState::Available);
    assert!(!second.started, "the token named an earlier build");
    assert_eq!(second.build.id, first.build.id);
    assert_eq!(second.image, first.image, "the earlier build's image is returned");
    assert_eq!(states(&second_progress), [], "the second start ran nothing");
    assert_eq!(sim.builder.store.builds().unwrap().len(), 1);
    assert_eq!(sim.containers_created("build").len(), 1, "one build container");

    // Another token is another build.
    let other = StartOptions { client_token: Some("t2".into()), ..StartOptions::default() };
    let (third, _) = sim.start_with(&other).await;
    let Ok(StartOutcome::Built(third)) = third else { panic!("third start: {third:?}") };
    assert!(third.started);
    assert_eq!(third.build.build_number, 2);
}

/// The engine commands a run sent, in order, as command lines, from the
/// `from`-th engine call on.
fn exec_lines(sim: &Sim, from: usize) -> Vec<String> {
    sim.engine.calls()[from..]
        .iter()
        .filter_map(|call| match call {
            autopatch_engine::Call::Exec { spec, .. } => Some(spec.cmd.join(" ")),
            _ => None,
        })
        .collect()
}

/// A registered parent's manifest is in its image row (read from the same
/// files when it was built): a build on it reads only the result's
/// manifest; a parent named by engine reference is read in the build
/// container before the first step. The evidence is the same either way.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_registered_parent_s_manifest_comes_from_its_image_row() {
    let marker = component("marker").phase("build", vec![bash("Mark", &["echo marked"])]);
    let sim = Sim::with_pipeline(std::slice::from_ref(&marker), "").await;
    let dpkg_query = autopatch_evidence::dpkg_query_command().join(" ");
    let is_step = |line: &String| line.contains("/tmp/autopatch-toe/");

    let before = sim.engine.calls().len();
    let (first, _) = sim.build().await;
    assert_eq!(first.build.state, ImageState::Available, "reason: {:?}", first.build.reason);
    let lines = exec_lines(&sim, before);
    let first_step = lines.iter().position(is_step).expect("the step ran");
    assert_eq!(
        lines[..first_step].iter().filter(|line| **line == dpkg_query).count(),
        1,
        "the engine-reference parent's manifest is read before the first step: {lines:#?}"
    );
    assert_eq!(detailed_output(&first.build)["parent_manifest_source"], "build container");
    let parent = first.image.expect("the parent image");

    // A second recipe on the image just published, by its version.
    sim.register_recipe(&format!(
        "name: child\nsemanticVersion: 1.0.0\nparentImage: {}\ncomponents:\n  - componentArn: marker\n",
        parent.version
    ))
    .await;
    sim.register_pipeline("name: child\nimageRecipeArn: child\n");
    let before = sim.engine.calls().len();
    let progress = autopatch_imagebuilder::CollectProgress::default();
    let outcome = autopatch_imagebuilder::start_pipeline(
        &sim.builder,
        "child",
        &StartOptions::default(),
        &progress,
        &sim.cancel,
    )
    .await
    .expect("the child starts");
    let StartOutcome::Built(child) = outcome else { panic!("expected a build: {outcome:?}") };
    assert_eq!(child.build.state, ImageState::Available, "reason: {:?}", child.build.reason);
    let lines = exec_lines(&sim, before);
    let first_step = lines.iter().position(is_step).expect("the step ran");
    assert_eq!(
        lines.iter().filter(|line| **line == dpkg_query).count(),
        1,
        "only the result's manifest is read: {lines:#?}"
    );
    assert!(
        lines[..first_step].is_empty(),
        "nothing runs in the build container before the first step: {lines:#?}"
    );
    assert_eq!(detailed_output(&child.build)["parent_manifest_source"], "image row");

    let evidence: ImageEvidence =
        serde_json::from_str(&child.image.expect("the child image").evidence).unwrap();
    assert_eq!(evidence.parent.as_deref(), Some(parent.version.as_str()));
    assert_eq!(evidence.package_count, 3);
    assert!(
        evidence.upgraded.is_empty()
            && evidence.downgraded.is_empty()
            && evidence.added.is_empty()
            && evidence.removed.is_empty(),
        "the same packages as the parent: {evidence:?}"
    );
    sim.assert_commands_understood();
}

/// The snapshot is committed as the last step left the build container:
/// nothing runs in it between the last step and the commit. The evidence is
/// read in it after the commit (while the test stage runs in its own
/// container), so nothing the evidence's commands do can be in the image,
/// and it reads the files the snapshot has.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_evidence_is_read_in_the_build_container_after_the_commit() {
    let sim = Sim::with_pipeline(&update_and_smoke(), "").await;
    let (outcome, _) = sim.build().await;
    assert_eq!(outcome.build.state, ImageState::Available, "reason: {:?}", outcome.build.reason);
    let calls = sim.engine.calls();
    let build_container = calls
        .iter()
        .find_map(|call| match call {
            autopatch_engine::Call::ContainerStart { id } => Some(id.clone()),
            _ => None,
        })
        .expect("a build container");
    let in_build_container: Vec<(usize, String)> = calls
        .iter()
        .enumerate()
        .filter_map(|(index, call)| match call {
            autopatch_engine::Call::Exec { id, spec } if *id == build_container => {
                Some((index, spec.cmd.join(" ")))
            }
            _ => None,
        })
        .collect();
    let commit = calls
        .iter()
        .position(|call| matches!(call, autopatch_engine::Call::Commit { .. }))
        .expect("a commit");
    let last_step = in_build_container
        .iter()
        .rev()
        .find(|(_, line)| line.contains("/tmp/autopatch-toe/"))
        .map(|(index, _)| *index)
        .expect("the build stage's steps");
    let between: Vec<&String> = in_build_container
        .iter()
        .filter(|(index, _)| (last_step + 1..commit).contains(index))
        .map(|(_, line)| line)
        .collect();
    assert_eq!(between, Vec::<&String>::new(), "nothing runs between the last step and the commit");
    let dpkg_query = autopatch_evidence::dpkg_query_command().join(" ");
    let evidence: Vec<&String> = in_build_container
        .iter()
        .filter(|(index, _)| *index > commit)
        .map(|(_, line)| line)
        .collect();
    assert!(
        evidence.contains(&&dpkg_query),
        "the result's manifest is read after the commit: {evidence:#?}"
    );
    assert!(
        evidence.iter().any(|line| line.contains("autopatch_changelog")),
        "and the upgrades' changelogs: {evidence:#?}"
    );
}
