//! What an image's evidence and its build's records say about how it was
//! made: which upgrades are security updates (apt's plan, as the UpdateOS
//! action printed it), the build, its component versions, the checks that
//! ran, who ran it, the parent as resolved, and why a cancelled build was
//! cancelled.

use autopatch_imagebuilder::{CancelCause, ImageEvidence, StartOptions, StartOutcome};
use autopatch_model::ImageState;

use crate::harness::{Sim, bash, component, detailed_output, update_and_smoke, update_os};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn upgrades_apt_took_from_a_security_archive_are_marked_security() {
    let sim = Sim::with_pipeline(&update_and_smoke(), "").await;
    let (outcome, _) = sim.build().await;
    let image = outcome.image.expect("published");
    let evidence: ImageEvidence = serde_json::from_str(&image.evidence).unwrap();
    let marks: Vec<(&str, Option<bool>)> =
        evidence.upgraded.iter().map(|u| (u.name.as_str(), u.security)).collect();
    assert_eq!(marks, [("libssl3:amd64", Some(true)), ("openssl", Some(true))]);
    assert!(
        !evidence.notes.iter().any(|note| note.contains("security updates is unknown")),
        "{:?}",
        evidence.notes
    );
    // The plan is in the step's log too, for whoever audits the build.
    let log = std::path::Path::new(&outcome.build.artifact_dir)
        .join("logs/build/update/build/UpdateOS.log");
    let log = fs_err::read_to_string(log).unwrap();
    assert!(log.contains("Inst openssl [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn upgrades_no_update_os_plan_lists_are_unknown_and_said_so() {
    // The upgrade happens, but the UpdateOS step prints no plan (as a
    // script written before the plan existed, or apt that printed none).
    let sim = Sim::with_pipeline(&update_and_smoke(), "").await;
    sim.world().plan_withheld = true;
    let (outcome, _) = sim.build().await;
    let evidence: ImageEvidence =
        serde_json::from_str(&outcome.image.expect("published").evidence).unwrap();
    assert!(evidence.upgraded.iter().all(|u| u.security.is_none()), "{:?}", evidence.upgraded);
    assert!(
        evidence.notes.contains(
            &"2 upgraded package(s) are not in apt's plan of an UpdateOS step at the version \
              installed: whether they are security updates is unknown"
                .to_owned()
        ),
        "{:?}",
        evidence.notes
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_evidence_names_the_build_its_components_checks_and_who_ran_it() {
    let sim = Sim::with_pipeline(&update_and_smoke(), "").await;
    let (outcome, _) = sim.build().await;
    let build = &outcome.build;
    let image = outcome.image.expect("published");
    let evidence: ImageEvidence = serde_json::from_str(&image.evidence).unwrap();

    assert_eq!(evidence.image, "recipe/1.0.0/1");
    assert_eq!(evidence.parent.as_deref(), Some(crate::harness::PARENT));
    assert_eq!(evidence.created_at, Some(image.created_at.to_string()));
    let built_by = evidence.built_by.as_ref().expect("who built it");
    assert_eq!(built_by.uid, rustix::process::getuid().as_raw());
    let provenance = evidence.build.as_ref().expect("the build that made it");
    assert_eq!(provenance.id, build.id);
    assert_eq!(provenance.pipeline.as_deref(), Some("pipe"));
    assert_eq!(
        (provenance.recipe.as_str(), provenance.recipe_version.as_str()),
        ("recipe", "1.0.0")
    );
    assert_eq!(provenance.engine_image_id, image.engine_image_id);
    assert_eq!(Some(&provenance.parent_engine_image_id), image.parent_engine_image_id.as_ref());
    assert_eq!(provenance.started_at, detailed_output(build)["started_at"]);
    let components: Vec<String> = provenance
        .components
        .iter()
        .map(|c| format!("{} {}/{}", c.name, c.version, c.build))
        .collect();
    assert_eq!(components, ["update 1.0.0/1", "smoke 1.0.0/1"]);
    let checks: Vec<String> = provenance
        .checks
        .steps
        .iter()
        .map(|s| format!("{} {} {}: {}", s.phase, s.component, s.step, s.status))
        .collect();
    assert_eq!(checks, ["validate update Validate: success", "test smoke Smoke: success"]);
    assert_eq!(provenance.checks.test_stage_skipped, None);

    // evidence.json in the artifact folder is the same document, whole.
    let file = std::path::Path::new(&build.artifact_dir).join("evidence.json");
    let file: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(file).unwrap()).unwrap();
    let row: serde_json::Value = serde_json::from_str(&image.evidence).unwrap();
    assert_eq!(file, row);
    assert_eq!(file["build"]["id"], build.id.as_str());

    // The detailed output names the components (with their build
    // numbers) and who ran the build, whatever phases they have.
    let output = detailed_output(build);
    assert_eq!(
        output["components"],
        serde_json::json!([
            {"name": "update", "version": "1.0.0", "build": 1},
            {"name": "smoke", "version": "1.0.0", "build": 1},
        ])
    );
    assert_eq!(output["built_by"], serde_json::to_value(built_by).unwrap());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_skipped_test_stage_is_in_the_checks_with_its_reason() {
    let components = vec![component("update").phase("build", vec![update_os("UpdateOS")])];
    let sim = Sim::with_pipeline(&components, "").await;
    let (outcome, _) = sim.build().await;
    let evidence: ImageEvidence =
        serde_json::from_str(&outcome.image.expect("published").evidence).unwrap();
    let checks = evidence.build.expect("provenance").checks;
    assert!(checks.steps.is_empty());
    assert_eq!(checks.test_stage_skipped.as_deref(), Some("no component has a test phase"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_build_on_a_registered_parent_records_the_version_it_resolved() {
    let sim = Sim::with_pipeline(&update_and_smoke(), "").await;
    for _ in 0..2 {
        let (outcome, _) = sim.build().await;
        assert_eq!(outcome.build.state, ImageState::Available);
    }
    // A recipe on `recipe` (its latest image, recipe/1.0.0/2).
    sim.register_recipe(
        "name: child\nsemanticVersion: 1.0.0\nparentImage: recipe\ncomponents:\n  - componentArn: smoke\n",
    )
    .await;
    sim.register_pipeline("name: child-pipe\nimageRecipeArn: child\n");
    let progress = autopatch_imagebuilder::CollectProgress::default();
    let outcome = autopatch_imagebuilder::start_pipeline(
        &sim.builder,
        "child-pipe",
        &StartOptions::default(),
        &progress,
        &sim.cancel,
    )
    .await
    .unwrap();
    let StartOutcome::Built(outcome) = outcome else { panic!("{outcome:?}") };
    let build = &outcome.build;
    assert_eq!(build.parent_image, "recipe", "the row keeps the recipe's reference");
    let events = sim.builder.store.events(&format!("build/{}", build.id)).unwrap();
    let parent: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == autopatch_imagebuilder::PARENT_EVENT)
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(parent, ["recipe/1.0.0/2"]);
    let output = detailed_output(build);
    assert_eq!(output["parent"], "recipe");
    assert_eq!(output["parent_resolved"], "recipe/1.0.0/2");
    let image = outcome.image.expect("published");
    assert_eq!(image.parent.as_deref(), Some("recipe/1.0.0/2"));
    let evidence: ImageEvidence = serde_json::from_str(&image.evidence).unwrap();
    assert_eq!(evidence.build.expect("provenance").parent_image, "recipe");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_cancelled_build_says_what_cancelled_it() {
    let components = vec![
        component("update")
            .phase("build", vec![bash("Long", &["# sim: cancel", "echo still running"])]),
    ];
    // The caller cancelled its token and said why (a signal).
    let sim = Sim::with_pipeline(&components, "").await;
    let cause = CancelCause::default();
    cause.set("SIGTERM received by autopatch (pid 4242)");
    let options = StartOptions { cancel_cause: cause, ..StartOptions::default() };
    let (outcome, _) = sim.start_with(&options).await;
    let Ok(StartOutcome::Built(outcome)) = outcome else { panic!("{outcome:?}") };
    assert_eq!(outcome.build.state, ImageState::Cancelled);
    assert_eq!(
        outcome.build.reason.as_deref(),
        Some("cancelled: SIGTERM received by autopatch (pid 4242)")
    );
    assert_eq!(
        detailed_output(&outcome.build)["reason"],
        "cancelled: SIGTERM received by autopatch (pid 4242)"
    );

    // A caller that gave no cause: the process that cancelled is named.
    let sim = Sim::with_pipeline(&components, "").await;
    let (outcome, _) = sim.build().await;
    assert_eq!(
        outcome.build.reason,
        Some(format!("cancelled by the process running the build (pid {})", std::process::id()))
    );
}
