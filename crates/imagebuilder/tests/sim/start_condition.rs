//! The pipeline start condition "only if updates are available": the first
//! run builds; later runs on the same recipe and parent check the latest
//! image for pending updates in a throwaway container and build only when
//! there are some.

use autopatch_engine::{Call, Operation};
use autopatch_imagebuilder::{StartOptions, StartOutcome};
use autopatch_model::ImageState;

use crate::harness::{Sim, update_and_smoke};

const SCHEDULE: &str = "\
schedule:
  scheduleExpression: cron(0 3 * * ? *)
  pipelineExecutionStartCondition: EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE
";

const SECURITY_UPDATE: &str = "Inst openssl [3.0.11-1~deb12u2] (3.0.11-1~deb12u3 Debian-Security:12/stable-security [amd64])\nConf openssl (3.0.11-1~deb12u3 Debian-Security:12/stable-security [amd64])\n";

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_run_without_pending_updates_builds_nothing() {
    let sim = Sim::with_pipeline(&update_and_smoke(), SCHEDULE).await;

    // First run: no image yet, so it builds without checking.
    let (first, _) = sim.build().await;
    assert_eq!(first.build.state, ImageState::Available, "reason: {:?}", first.build.reason);
    let latest = first.image.expect("the first image");
    assert_eq!(latest.version, "recipe/1.0.0/1");
    let check_containers = || {
        sim.engine
            .calls_of(Operation::ContainerCreate)
            .into_iter()
            .filter_map(|call| match call {
                Call::ContainerCreate { spec } => Some(spec),
                _ => None,
            })
            .filter(|spec| {
                spec.labels.get("autopatch.role").map(String::as_str) == Some("check-updates")
            })
            .map(|spec| spec.image)
            .collect::<Vec<_>>()
    };
    assert_eq!(check_containers(), Vec::<String>::new(), "the first run does not check");

    // Second run: the latest image has nothing pending.
    sim.world().pending_updates =
        "0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n".into();
    let (second, _) = sim.start_with(&StartOptions::default()).await;
    match second {
        Ok(StartOutcome::Skipped { reason, latest: skipped_latest }) => {
            assert_eq!(skipped_latest.version, latest.version);
            assert!(reason.contains("no updates are available for recipe/1.0.0/1"), "{reason}");
        }
        other => panic!("expected Skipped, got {other:?}"),
    }
    assert_eq!(check_containers(), [latest.engine_image_id.as_str()], "checked the latest image");
    // Named and labelled as a build's containers are: recovery finds it by
    // its owner and its state directory if this process dies mid-check.
    let check = sim.containers_created("check-updates").pop().expect("a check container");
    let name = check.name.unwrap_or_default();
    assert!(name.starts_with("autopatch-check-updates-c-"), "{name}");
    assert_eq!(
        check.labels.get(autopatch_imagebuilder::OWNER_LABEL),
        Some(&std::process::id().to_string())
    );
    assert_eq!(
        check.labels.get(autopatch_imagebuilder::NAMESPACE_LABEL).map(String::as_str),
        Some(sim.builder.store.engine_namespace())
    );
    assert_eq!(sim.builder.store.builds().unwrap().len(), 1, "no build row");
    assert_eq!(sim.builder.store.images().unwrap().len(), 1);
    assert_eq!(sim.tags_besides_parent(), [sim.published(1)]);
    assert_eq!(sim.container_names(), Vec::<String>::new(), "the check container is removed");

    // Third run: a security update is pending, so it builds build 2.
    sim.world().pending_updates = SECURITY_UPDATE.into();
    let (third, progress) = sim.build().await;
    assert_eq!(third.build.state, ImageState::Available, "reason: {:?}", third.build.reason);
    assert_eq!(third.build.build_number, 2);
    assert_eq!(third.image.map(|image| image.version).as_deref(), Some("recipe/1.0.0/2"));
    assert!(
        crate::harness::notes(&progress)
            .iter()
            .any(|n| n == "1 update(s) pending (1 security): building"),
        "{:?}",
        crate::harness::notes(&progress)
    );
    assert_eq!(check_containers().len(), 2);
    assert_eq!(sim.tags_besides_parent(), [sim.published(1), sim.published(2)]);
    assert_eq!(sim.container_names(), Vec::<String>::new());

    // `force` builds even with nothing pending, without checking.
    sim.world().pending_updates = String::new();
    let forced = StartOptions { force: true, ..StartOptions::default() };
    let (fourth, progress) = sim.start_with(&forced).await;
    let Ok(StartOutcome::Built(fourth)) = fourth else { panic!("forced start: {fourth:?}") };
    assert_eq!(fourth.build.build_number, 3);
    assert_eq!(check_containers().len(), 2, "a forced run does not check");
    // ... and says why it built, as a note and as the build's event.
    assert!(
        crate::harness::notes(&progress).contains(&"building: forced (--force)".to_owned()),
        "{:?}",
        crate::harness::notes(&progress)
    );
    let events = sim.builder.store.events(&format!("build/{}", fourth.build.id)).unwrap();
    let reasons: Vec<&str> =
        events.iter().filter(|e| e.kind == "start-condition").map(|e| e.detail.as_str()).collect();
    assert_eq!(reasons, ["forced (--force)"]);
    sim.assert_commands_understood();
}

/// AWS counts a newer component version that the recipe's reference
/// matches as a dependency update: the recipe names `update` with no version
/// (`x.x.x`), so registering `update` 1.0.1 after the first image makes the
/// next start build, without an update check, saying why.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_newer_component_version_the_recipe_matches_builds() {
    let sim = Sim::with_pipeline(&update_and_smoke(), SCHEDULE).await;
    let (first, progress) = sim.build().await;
    assert_eq!(first.build.state, ImageState::Available, "reason: {:?}", first.build.reason);
    assert!(
        crate::harness::notes(&progress)
            .contains(&"building: the pipeline has no image yet".to_owned()),
        "{:?}",
        crate::harness::notes(&progress)
    );
    let components = |build: &str| -> Vec<String> {
        sim.builder
            .store
            .build_components(build)
            .unwrap()
            .into_iter()
            .map(|c| format!("{} {}/{}", c.name, c.version, c.build_number))
            .collect()
    };
    assert_eq!(components(&first.build.id), ["update 1.0.0/1", "smoke 1.0.0/1"]);

    // Nothing is pending: only the component version differs.
    sim.world().pending_updates =
        "0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n".into();
    let update = update_and_smoke().remove(0);
    let file = autopatch_documents::SourceFile::new("update.yml", update.yaml());
    autopatch_imagebuilder::create_component(&sim.builder.store, &file, None, Some("1.0.1"))
        .unwrap();
    let (second, progress) = sim.build().await;
    assert_eq!(second.build.state, ImageState::Available, "reason: {:?}", second.build.reason);
    assert_eq!(second.build.build_number, 2);
    let notes = crate::harness::notes(&progress);
    assert!(
        notes.contains(&"building: component update 1.0.0/1 → 1.0.1/1".to_owned()),
        "{notes:?}"
    );
    assert!(!notes.iter().any(|note| note.starts_with("checking")), "no update check: {notes:?}");
    assert!(sim.containers_created("check-updates").is_empty(), "no check container");
    assert_eq!(components(&second.build.id), ["update 1.0.1/1", "smoke 1.0.0/1"]);
    let events: Vec<(String, String)> = sim
        .builder
        .store
        .events(&format!("build/{}", second.build.id))
        .unwrap()
        .into_iter()
        .map(|event| (event.kind, event.detail))
        .collect();
    assert!(
        events.contains(&(
            "start-condition".to_owned(),
            "component update 1.0.0/1 → 1.0.1/1".to_owned()
        )),
        "the build records why it started: {events:?}"
    );

    // Built from 1.0.1 now: the next start checks that image and skips.
    let (third, _) = sim.start_with(&StartOptions::default()).await;
    match third {
        Ok(StartOutcome::Skipped { reason, latest }) => {
            assert_eq!(latest.version, "recipe/1.0.0/2");
            assert!(
                reason.contains("same recipe version, parent image and component versions"),
                "{reason}"
            );
        }
        other => panic!("expected Skipped, got {other:?}"),
    }
    assert_eq!(sim.containers_created("check-updates").len(), 1);
    sim.assert_commands_understood();
}
