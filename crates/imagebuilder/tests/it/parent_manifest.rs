//! The manifest an image row stores is what `dpkg-query` prints in a
//! container of that image, so a build on a registered parent takes the
//! parent's manifest from its row instead of reading it in the build
//! container, and its evidence is what reading it would give.

use autopatch_engine::{ContainerSpec, Engine, ExecSpec};
use autopatch_imagebuilder::{ImageEvidence, NETWORK, StartOutcome};
use autopatch_model::ImageState;

use crate::support::{Fixture, detailed_output, single_component_pipeline};

/// A component that changes a file, not a package, and has a test phase.
const PROBE: &str = r#"
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
      - name: FindsTheMark
        action: ExecuteBash
        inputs:
          commands: [ "test -e /built" ]
"#;

async fn built(fixture: &Fixture, pipeline: &str) -> autopatch_imagebuilder::BuildOutcome {
    match fixture.start(pipeline).await.0 {
        StartOutcome::Built(outcome) => {
            assert_eq!(outcome.build.state, ImageState::Available, "{:?}", outcome.build.reason);
            outcome
        }
        other => panic!("expected a build, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_parent_s_stored_manifest_is_what_its_image_holds() {
    let fixture = Fixture::new().await;
    single_component_pipeline(&fixture, PROBE, true).await;
    let first = built(&fixture, "probe").await;
    assert_eq!(detailed_output(&first.build)["parent_manifest_source"], "build container");
    let parent = first.image.expect("an AVAILABLE build has an image");

    // What dpkg-query prints in a container of the published image is the
    // stored manifest, byte for byte: the evidence read in the build
    // container describes the committed snapshot.
    let engine = &fixture.builder.engine;
    let spec = ContainerSpec {
        image: parent.engine_reference.clone(),
        cmd: vec!["sleep".into(), "infinity".into()],
        init: true,
        network: Some(NETWORK.into()),
        ..ContainerSpec::default()
    };
    let container = engine.container_create(&spec).await.unwrap();
    engine.container_start(&container.id).await.unwrap();
    let query = ExecSpec { cmd: autopatch_evidence::dpkg_query_command(), ..ExecSpec::default() };
    let read = engine.exec(&container.id, &query, &mut ()).await;
    engine.container_remove(&container.id).await.unwrap();
    let read = read.unwrap();
    assert_eq!(read.exit_code, 0, "{}", read.stderr_text());
    assert!(!parent.manifest.is_empty());
    assert_eq!(read.stdout_text(), parent.manifest, "the stored manifest is dpkg-query's output");

    // A build on it by version takes the parent's manifest from its row;
    // the packages did not change, and the evidence says so.
    fixture
        .recipe(&format!(
            "name: child\nsemanticVersion: 1.0.0\nparentImage: {}\ncomponents:\n  - componentArn: probe\n",
            parent.version
        ))
        .await;
    fixture.pipeline("name: child\nimageRecipeArn: child\n");
    let child = built(&fixture, "child").await;
    assert_eq!(detailed_output(&child.build)["parent_manifest_source"], "image row");
    let child_image = child.image.expect("the child image");
    let evidence: ImageEvidence = serde_json::from_str(&child_image.evidence).unwrap();
    let parent_evidence: ImageEvidence = serde_json::from_str(&parent.evidence).unwrap();
    assert_eq!(evidence.parent.as_deref(), Some(parent.version.as_str()));
    assert_eq!(evidence.package_count, parent_evidence.package_count);
    assert!(
        evidence.upgraded.is_empty()
            && evidence.downgraded.is_empty()
            && evidence.added.is_empty()
            && evidence.removed.is_empty(),
        "the same packages as the parent: {evidence:?}"
    );
    assert_eq!(child_image.manifest, parent.manifest);
    assert_eq!(fixture.leftover_containers().await, Vec::<String>::new());
}
