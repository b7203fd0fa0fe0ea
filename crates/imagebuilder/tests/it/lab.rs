//! The lab's pipeline with the shipped components and the real Debian
//! archives: golden (bookworm point release) + webapp, then + update-os.
//! Depends on the Debian mirror being reachable (it is on these machines).

use autopatch_imagebuilder::{ImageEvidence, StartOutcome};
use autopatch_model::ImageState;

use crate::support::{Fixture, GOLDEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_plus_webapp_plus_update_os_is_available_with_cves_and_reruns_skip() {
    let fixture = Fixture::new().await;
    for component in ["webapp", "webapp-test", "update-os"] {
        fixture.shipped_component(component);
    }
    fixture
        .recipe(&format!(
            "name: webapp\nsemanticVersion: 1.0.0\nparentImage: {GOLDEN}\ncomponents:\n  - componentArn: webapp\n  - componentArn: webapp-test\n"
        ))
        .await;
    fixture.pipeline("name: webapp\nimageRecipeArn: webapp\n");
    let (outcome, _) = fixture.start("webapp").await;
    let StartOutcome::Built(webapp) = outcome else { panic!("the first run must build") };
    assert_eq!(
        webapp.build.state,
        ImageState::Available,
        "webapp build: {:?}",
        webapp.build.reason
    );
    let webapp_image = webapp.image.expect("an AVAILABLE build has an image");
    assert_eq!(webapp_image.version, "webapp/1.0.0/1");
    let evidence: ImageEvidence = serde_json::from_str(&webapp_image.evidence).unwrap();
    assert!(evidence.added.iter().any(|p| p.name == "apache2"), "the webapp image adds apache2");

    // The lab's patch pipeline on the latest webapp image.
    fixture
        .recipe("name: webapp-patched\nsemanticVersion: 1.0.0\nparentImage: webapp\ncomponents:\n  - componentArn: update-os\n  - componentArn: webapp-test\n")
        .await;
    fixture.pipeline(
        "name: webapp-patched\nimageRecipeArn: webapp-patched\nschedule:\n  scheduleExpression: cron(0 3 * * ? *)\n  pipelineExecutionStartCondition: EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE\n",
    );
    let (outcome, _) = fixture.start("webapp-patched").await;
    let StartOutcome::Built(patched) = outcome else { panic!("the first patch run must build") };
    assert_eq!(
        patched.build.state,
        ImageState::Available,
        "patch build: {:?}",
        patched.build.reason
    );
    let patched_image = patched.image.unwrap();
    let evidence: ImageEvidence = serde_json::from_str(&patched_image.evidence).unwrap();
    assert!(!evidence.upgraded.is_empty(), "a point-release image has security updates pending");
    assert!(evidence.changelogs_available, "minbase images keep their changelogs");
    assert!(
        evidence.cves.iter().any(|cve| cve.starts_with("CVE-")),
        "at least one upgrade names a CVE: {:?}",
        evidence.upgraded
    );
    assert_eq!(patched_image.parent.as_deref(), Some("webapp/1.0.0/1"));
    // apt's plan during the build says where each new version came from:
    // none is unknown, and a point-release image's updates include
    // security updates (some without a CVE id, such as tzdata's).
    let unknown: Vec<&str> = evidence
        .upgraded
        .iter()
        .filter(|upgrade| upgrade.security.is_none())
        .map(|upgrade| upgrade.name.as_str())
        .collect();
    assert_eq!(unknown, Vec::<&str>::new(), "{:?}", evidence.notes);
    assert!(evidence.upgraded.iter().any(|upgrade| upgrade.security == Some(true)));

    // Nothing pending any more: the start condition skips, nothing published.
    let images_before = fixture.builder.store.images().unwrap().len();
    let (outcome, _) = fixture.start("webapp-patched").await;
    assert!(
        matches!(outcome, StartOutcome::Skipped { .. }),
        "a rerun with no updates must skip: {outcome:?}"
    );
    assert_eq!(fixture.builder.store.images().unwrap().len(), images_before);

    assert_eq!(fixture.leftover_containers().await, Vec::<String>::new());
}
