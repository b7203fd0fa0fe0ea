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
    let options = StartOptions { client_token: Some("t1".into()), force: false };

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
    let other = StartOptions { client_token: Some("t2".into()), force: false };
    let (third, _) = sim.start_with(&other).await;
    let Ok(StartOutcome::Built(third)) = third else { panic!("third start: {third:?}") };
    assert!(third.started);
    assert_eq!(third.build.build_number, 2);
}
