//! A package source that cannot be reached is a failure, never "nothing to
//! update": plain `apt-get update` only warns, and what follows would find
//! nothing pending. The pending-update check fails (and with it a start that
//! builds only when updates are available), and UpdateOS fails its build,
//! which publishes nothing. The source is `127.0.0.1:9` inside the
//! container, where nothing listens, so nothing here depends on the mirror.

use autopatch_engine::Engine;
use autopatch_imagebuilder::{BuildError, CollectProgress, Sources, StartOptions, StartOutcome};
use autopatch_model::ImageState;
use tokio_util::sync::CancellationToken;

use crate::support::{Fixture, derive_from_golden};

const SOURCE: &str = "http://127.0.0.1:9/debian";

/// `localhost/autopatch-test/unreachable-parent:<pid>`: golden with one
/// package source, on a port where nothing listens.
async fn unreachable_parent(fixture: &Fixture) -> String {
    let setup = format!(
        "set -e\nrm -f /etc/apt/sources.list /etc/apt/sources.list.d/*\necho 'deb {SOURCE} bookworm main' > /etc/apt/sources.list"
    );
    let reference = format!("localhost/autopatch-test/unreachable-parent:{}", std::process::id());
    derive_from_golden(fixture, &[], &setup, &reference).await;
    reference
}

/// Containers of the update check this process left behind for this
/// fixture's state directory (or for none: the check without a builder),
/// not another test's running meanwhile.
async fn leftover_check_containers(fixture: &Fixture) -> Vec<String> {
    let labels = [
        ("autopatch.role".to_owned(), "check-updates".to_owned()),
        (autopatch_imagebuilder::OWNER_LABEL.to_owned(), std::process::id().to_string()),
    ];
    let containers = fixture.builder.engine.container_list(&labels).await.unwrap();
    let namespace = fixture.builder.store.engine_namespace();
    containers
        .into_iter()
        .filter(|container| {
            autopatch_imagebuilder::label_value(
                &container.labels,
                autopatch_imagebuilder::NAMESPACE_LABEL,
            )
            .is_none_or(|owner| owner == namespace)
        })
        .map(|container| container.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_source_fails_the_update_check_and_the_conditional_start() {
    let fixture = Fixture::new().await;
    let parent = unreachable_parent(&fixture).await;

    let error = autopatch_imagebuilder::check_updates(
        fixture.builder.engine.as_ref(),
        &parent,
        &parent,
        Sources::Image,
    )
    .await
    .expect_err("an unreachable source must not read as no updates");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("cannot check {parent} for pending updates")),
        "the error says what could not be done: {text}"
    );
    assert!(
        text.contains(&format!("Failed to fetch {SOURCE}/")),
        "and why, in apt's words: {text}"
    );
    assert_eq!(leftover_check_containers(&fixture).await, Vec::<String>::new());

    // A pipeline that builds only when updates are available, whose latest
    // image has that source: the second start cannot know, so it fails
    // instead of skipping.
    fixture.component(
        "noop",
        "name: noop\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: Say\n        action: ExecuteBash\n        inputs:\n          commands: [ \"echo built\" ]\n",
    );
    fixture
        .recipe(&format!(
            "name: offline\nsemanticVersion: 1.0.0\nparentImage: {parent}\ncomponents:\n  - componentArn: noop\n"
        ))
        .await;
    fixture.pipeline(
        "name: offline\nimageRecipeArn: offline\nimageTestsConfiguration:\n  imageTestsEnabled: false\nschedule:\n  scheduleExpression: rate(1 day)\n  startCondition: updates-available\n",
    );
    let (outcome, _) = fixture.start("offline").await;
    let StartOutcome::Built(first) = outcome else {
        panic!("the first run has nothing to compare with")
    };
    assert_eq!(first.build.state, ImageState::Available, "{:?}", first.build.reason);

    let second = autopatch_imagebuilder::start_pipeline(
        &fixture.builder,
        "offline",
        &StartOptions::default(),
        &CollectProgress::default(),
        &CancellationToken::new(),
    )
    .await;
    match second {
        Err(BuildError::UpdateCheck { image, message }) => {
            assert_eq!(image, "offline/1.0.0/1", "the latest image, by its version");
            assert!(message.contains(&format!("Failed to fetch {SOURCE}/")), "{message}");
        }
        other => panic!("the start must fail on the check, got {other:?}"),
    }
    assert_eq!(fixture.builder.store.builds().unwrap().len(), 1, "no second build was started");
    assert_eq!(fixture.builder.store.images().unwrap().len(), 1);
    assert_eq!(leftover_check_containers(&fixture).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_os_with_an_unreachable_source_fails_the_build_and_publishes_nothing() {
    let fixture = Fixture::new().await;
    let parent = unreachable_parent(&fixture).await;
    fixture.component(
        "offline-update",
        "name: offline-update\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: UpdateOS\n        action: UpdateOS\n",
    );
    fixture
        .recipe(&format!(
            "name: offline-patched\nsemanticVersion: 1.0.0\nparentImage: {parent}\ncomponents:\n  - componentArn: offline-update\n"
        ))
        .await;
    fixture.pipeline(
        "name: offline-patched\nimageRecipeArn: offline-patched\nimageTestsConfiguration:\n  imageTestsEnabled: false\n",
    );

    let (outcome, _) = fixture.start("offline-patched").await;
    let StartOutcome::Built(outcome) = outcome else {
        panic!("a pipeline without a schedule builds")
    };
    assert_eq!(outcome.build.state, ImageState::Failed, "an unpatched image is not a patched one");
    let reason = outcome.build.reason.clone().unwrap();
    assert!(reason.contains("step UpdateOS of component offline-update"), "{reason}");
    assert!(reason.contains("UpdateOS: apt-get update failed 3 times"), "{reason}");
    assert!(outcome.image.is_none());
    assert!(fixture.builder.store.images().unwrap().is_empty());
    assert_eq!(fixture.leftover_containers().await, Vec::<String>::new());
    let log = std::fs::read_to_string(
        std::path::Path::new(&outcome.build.artifact_dir)
            .join("logs/build/offline-update/build/UpdateOS.log"),
    )
    .unwrap();
    assert!(
        log.contains("Could not connect to 127.0.0.1:9"),
        "the step log has apt's reason: {log}"
    );
}
