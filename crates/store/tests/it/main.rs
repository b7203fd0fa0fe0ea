//! Store behaviour against a real SQLite file in a temporary directory.

use autopatch_model::{ImageState, Timestamp};
use autopatch_store::{ComponentRow, ImageRow, NewBuild, Store, StoreError};

fn component(name: &str, version: &str, document: &str) -> ComponentRow {
    ComponentRow {
        name: name.into(),
        version: version.into(),
        source_name: format!("{name}.yml"),
        document: document.into(),
        sha256: format!("sha-of-{document}"),
        created_at: Timestamp(1),
    }
}

fn new_build<'a>(id: &'a str, token: Option<&'a str>) -> NewBuild<'a> {
    NewBuild {
        id,
        pipeline: Some("webapp"),
        recipe: "webapp",
        recipe_version: "1.0.0",
        client_token: token,
        parent_image: "golden/1.0.0/1",
        artifact_dir_root: "/state/builds",
        owner_pid: Some(42),
        now: Timestamp(10),
    }
}

#[test]
fn component_versions_are_immutable_and_idempotent() {
    let store = Store::open_in_memory().unwrap();
    assert!(
        store.put_component(&component("update-os", "1.0.0", "a")).unwrap(),
        "first registration inserts"
    );
    assert!(
        !store.put_component(&component("update-os", "1.0.0", "a")).unwrap(),
        "same text again is a no-op"
    );
    let error = store.put_component(&component("update-os", "1.0.0", "b")).unwrap_err();
    assert!(matches!(error, StoreError::AlreadyExists { kind: "component", .. }), "{error}");
    assert_eq!(store.component("update-os", Some("1.0.0")).unwrap().unwrap().document, "a");
}

#[test]
fn latest_component_is_the_highest_semantic_version() {
    let store = Store::open_in_memory().unwrap();
    store.put_component(&component("webapp", "1.10.0", "ten")).unwrap();
    store.put_component(&component("webapp", "1.9.0", "nine")).unwrap();
    assert_eq!(store.component("webapp", None).unwrap().unwrap().version, "1.10.0");
    assert!(store.component("absent", None).unwrap().is_none());
}

#[test]
fn builds_are_numbered_per_recipe_version_and_tokens_are_idempotent() {
    let store = Store::open_in_memory().unwrap();
    let (first, created) = store.create_build(&new_build("b1", Some("token-1"))).unwrap();
    assert!(created);
    assert_eq!(first.build_number, 1);
    assert_eq!(first.state, ImageState::Pending);
    assert_eq!(first.image_version(), "webapp/1.0.0/1");
    assert_eq!(first.artifact_dir, "/state/builds/b1");

    let (again, created) = store.create_build(&new_build("b2", Some("token-1"))).unwrap();
    assert!(!created, "a reused client token returns the first build");
    assert_eq!(again.id, "b1");

    let (second, _) = store.create_build(&new_build("b3", None)).unwrap();
    assert_eq!(second.build_number, 2);
    assert_eq!(store.builds().unwrap().len(), 2);
}

#[test]
fn terminal_build_states_are_final() {
    let store = Store::open_in_memory().unwrap();
    store.create_build(&new_build("b1", None)).unwrap();
    assert!(store.set_build_state("b1", ImageState::Building, None, Timestamp(20)).unwrap());
    assert!(
        store
            .set_build_state("b1", ImageState::Failed, Some("step Broken failed"), Timestamp(30))
            .unwrap()
    );
    assert!(!store.set_build_state("b1", ImageState::Available, None, Timestamp(40)).unwrap());
    let build = store.build("b1").unwrap().unwrap();
    assert_eq!(build.state, ImageState::Failed);
    assert_eq!(build.reason.as_deref(), Some("step Broken failed"));
    assert_eq!(build.finished_at, Some(Timestamp(30)));
    assert!(!store.request_cancel("b1").unwrap(), "a finished build cannot be cancelled");
}

#[test]
fn cancel_requests_are_recorded() {
    let store = Store::open_in_memory().unwrap();
    store.create_build(&new_build("b1", None)).unwrap();
    assert!(!store.cancel_requested("b1").unwrap());
    assert!(store.request_cancel("b1").unwrap());
    assert!(store.cancel_requested("b1").unwrap());
}

#[test]
fn images_are_written_once() {
    let store = Store::open_in_memory().unwrap();
    let image = ImageRow {
        version: "webapp/1.0.0/1".into(),
        recipe: "webapp".into(),
        recipe_version: "1.0.0".into(),
        build_number: 1,
        build_id: Some("b1".into()),
        pipeline: Some("webapp".into()),
        engine_image_id: "sha256:abc".into(),
        engine_reference: "localhost/autopatch/webapp:1.0.0-1".into(),
        parent: Some("golden/1.0.0/1".into()),
        parent_engine_image_id: Some("sha256:def".into()),
        manifest: "{}".into(),
        evidence: "{}".into(),
        created_at: Timestamp(5),
    };
    store.insert_image(&image).unwrap();
    let error = store
        .insert_image(&ImageRow { engine_image_id: "sha256:other".into(), ..image.clone() })
        .unwrap_err();
    assert!(matches!(error, StoreError::AlreadyExists { kind: "image", .. }), "{error}");
    assert_eq!(store.image("webapp/1.0.0/1").unwrap().unwrap(), image);
}

#[test]
fn state_survives_reopening_the_file() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("state.db");
    {
        let store = Store::open(&path).unwrap();
        store.put_component(&component("update-os", "1.0.0", "a")).unwrap();
        store.append_event("build/b1", "state", "PENDING", Timestamp(1)).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.components().unwrap().len(), 1);
    let events = store.events("build/b1").unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].detail, "PENDING");
}
