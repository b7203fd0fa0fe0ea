//! Deterministic patch evidence: a parent image with our own package at
//! version 1 and a local apt repository holding version 2, whose changelog
//! names two CVEs. Nothing here depends on the Debian mirror's state.

use std::process::Command;

use autopatch_imagebuilder::{ImageEvidence, Sources, StartOutcome};
use autopatch_model::ImageState;

use crate::support::{Fixture, derive_from_golden, repo_root};

/// Builds `localhost/autopatch-test/demo-parent:<pid>`: golden + autopatch-demo
/// 1.0-1 installed + only the local repository as a package source.
async fn demo_parent(fixture: &Fixture) -> String {
    let repo = fixture.root.join("apt");
    let script = repo_root().join("crates/imagebuilder/tests/fixtures/make-apt-repo.sh");
    let status = Command::new("bash").arg(&script).arg(&repo).status().unwrap();
    assert!(status.success(), "make-apt-repo.sh failed");

    let files: Vec<(&str, Vec<u8>)> = [
        ("v1/autopatch-demo_1.0-1_all.deb", "/srv/v1/autopatch-demo_1.0-1_all.deb"),
        ("repo/autopatch-demo_2.0-1_all.deb", "/srv/demo-repo/autopatch-demo_2.0-1_all.deb"),
        ("repo/Packages", "/srv/demo-repo/Packages"),
        ("repo/Packages.gz", "/srv/demo-repo/Packages.gz"),
        ("repo/Release", "/srv/demo-repo/Release"),
    ]
    .into_iter()
    .map(|(local, remote)| (remote, std::fs::read(repo.join(local)).unwrap()))
    .collect();
    let setup = "set -e
dpkg -i /srv/v1/autopatch-demo_1.0-1_all.deb
rm -rf /srv/v1 /etc/apt/sources.list /etc/apt/sources.list.d/*
echo 'deb [trusted=yes] file:/srv/demo-repo ./' > /etc/apt/sources.list.d/demo.list";
    let reference = format!("localhost/autopatch-test/demo-parent:{}", std::process::id());
    derive_from_golden(fixture, &files, setup, &reference).await;
    reference
}

/// A component that upgrades every package.
const LOCAL_UPDATE: &str = "name: local-update\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: UpdateOS\n        action: UpdateOS\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_repository_upgrade_is_reported_with_its_cves() {
    let fixture = Fixture::new().await;
    let parent = demo_parent(&fixture).await;

    // Before: the parent has exactly our update pending, marked security.
    let pending = autopatch_imagebuilder::check_updates(
        fixture.builder.engine.as_ref(),
        &parent,
        &parent,
        Sources::Image,
    )
    .await
    .unwrap();
    assert!(pending.supported);
    let names: Vec<(&str, Option<&str>, &str)> = pending
        .updates
        .iter()
        .map(|u| (u.package.as_str(), u.current.as_deref(), u.candidate.as_str()))
        .collect();
    assert_eq!(names, [("autopatch-demo", Some("1.0-1"), "2.0-1")]);
    assert_eq!(pending.security_count(), 1, "the repository's Label is Demo-Security");

    fixture.component("local-update", LOCAL_UPDATE);
    fixture
        .recipe(&format!("name: demo\nsemanticVersion: 2.1.0\nparentImage: {parent}\ncomponents:\n  - componentArn: local-update\n"))
        .await;
    fixture.pipeline(
        "name: demo\nimageRecipeArn: demo\nschedule:\n  scheduleExpression: rate(1 day)\n  startCondition: updates-available\n",
    );
    let (outcome, _) = fixture.start("demo").await;
    let StartOutcome::Built(outcome) = outcome else { panic!("the first run must build") };
    assert_eq!(outcome.build.state, ImageState::Available, "{:?}", outcome.build.reason);
    let image = outcome.image.unwrap();
    assert_eq!(image.version, "demo/2.1.0/1");
    let evidence: ImageEvidence = serde_json::from_str(&image.evidence).unwrap();
    let upgraded: Vec<(&str, &str, &str)> = evidence
        .upgraded
        .iter()
        .map(|u| (u.name.as_str(), u.from.as_str(), u.to.as_str()))
        .collect();
    assert_eq!(upgraded, [("autopatch-demo", "1.0-1", "2.0-1")]);
    // As the update check said before the build: apt took 2.0-1 from a
    // security archive (the repository's Label), recorded by the build.
    let security: Vec<Option<bool>> = evidence.upgraded.iter().map(|u| u.security).collect();
    assert_eq!(security, [Some(true)], "{:?}", evidence.notes);
    assert_eq!(evidence.cves, ["CVE-2026-0001", "CVE-2026-0002"]);
    assert!(evidence.added.is_empty() && evidence.removed.is_empty());

    // The image itself now has nothing pending: a rerun publishes nothing.
    let (outcome, _) = fixture.start("demo").await;
    assert!(matches!(outcome, StartOutcome::Skipped { .. }), "{outcome:?}");
    assert_eq!(fixture.builder.store.images().unwrap().len(), 1);

    // A newer version of the component the recipe names without a version
    // (`x.x.x`) is a dependency update, as on AWS: the next start builds,
    // though the image has no package update pending.
    let file = autopatch_documents::SourceFile::new("local-update.yml", LOCAL_UPDATE);
    autopatch_imagebuilder::create_component(
        &fixture.builder.store,
        &file,
        Some("local-update"),
        Some("1.0.1"),
    )
    .unwrap();
    let (outcome, progress) = fixture.start("demo").await;
    let StartOutcome::Built(outcome) = outcome else {
        panic!("a newer component version must build: {outcome:?}")
    };
    assert_eq!(outcome.build.state, ImageState::Available, "{:?}", outcome.build.reason);
    assert_eq!(outcome.image.map(|image| image.version).as_deref(), Some("demo/2.1.0/2"));
    let notes: Vec<String> = progress
        .events()
        .into_iter()
        .filter_map(|event| match event {
            autopatch_imagebuilder::BuildEvent::Note { message } => Some(message),
            _ => None,
        })
        .collect();
    assert!(
        notes.contains(&"building: component local-update 1.0.0/1 → 1.0.1/1".to_owned()),
        "{notes:?}"
    );

    assert_eq!(fixture.leftover_containers().await, Vec::<String>::new());
}
