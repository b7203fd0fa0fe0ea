//! Store behaviour against a real SQLite file in a temporary directory.

use autopatch_model::{ImageState, Timestamp};
use autopatch_store::{BuildComponentRow, ComponentRow, ImageRow, NewBuild, Store, StoreError};

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
fn a_build_s_components_are_recorded_once_in_recipe_order() {
    let store = Store::open_in_memory().unwrap();
    store.create_build(&new_build("b1", None)).unwrap();
    store.create_build(&new_build("b2", None)).unwrap();
    assert_eq!(store.build_components("b1").unwrap(), [], "nothing recorded yet");
    let row = |name: &str, version: &str| BuildComponentRow {
        name: name.into(),
        version: version.into(),
        build_number: 1,
    };
    // Recipe order, not name order.
    let components = [row("webapp", "1.0.0"), row("update-os", "1.0.1")];
    store.record_build_components("b1", &components).unwrap();
    assert_eq!(store.build_components("b1").unwrap(), components);
    assert_eq!(store.build_components("b2").unwrap(), [], "another build's are its own");

    let error = store.record_build_components("b1", &[row("webapp", "2.0.0")]).unwrap_err();
    assert!(
        matches!(error, StoreError::AlreadyExists { kind: "components of build", .. }),
        "{error}"
    );
    assert_eq!(store.build_components("b1").unwrap(), components, "unchanged");
    assert!(
        store.record_build_components("no-such-build", &components).is_err(),
        "only a build's components are recorded"
    );
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

#[test]
fn each_database_has_its_own_engine_namespace_and_keeps_it() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("state.db");
    let namespace = Store::open(&path).unwrap().engine_namespace().to_owned();
    assert_eq!(namespace.len(), 8, "{namespace}");
    assert!(namespace.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(Store::open(&path).unwrap().engine_namespace(), namespace);
    let other = Store::open(&directory.path().join("other.db")).unwrap();
    assert_ne!(other.engine_namespace(), namespace);
}

fn stack(name: &str) -> autopatch_store::StackRow {
    autopatch_store::StackRow {
        stack_id: format!("arn:stack/{name}/1"),
        name: name.into(),
        status: autopatch_model::StackStatus::CreateComplete,
        status_reason: None,
        template_body: "v1".into(),
        template_source: "t1.yml".into(),
        parameters: r#"{"Image":"a"}"#.into(),
        outputs: "[]".into(),
        imports: "[]".into(),
        disable_rollback: false,
        client_token: None,
        previous_template_body: None,
        previous_template_source: None,
        previous_parameters: None,
        created_at: Timestamp(1),
        updated_at: Timestamp(1),
        deleted_at: None,
    }
}

#[test]
fn a_status_transition_from_a_stale_status_is_refused() {
    use autopatch_model::StackStatus as S;
    let store = Store::open_in_memory().unwrap();
    let row = stack("app");
    store.insert_stack(&row).unwrap();
    let id = row.stack_id.as_str();
    store.set_stack_status(id, S::UpdateInProgress, None, Timestamp(2)).unwrap();
    // A cancel wins the race: the operation's own transition then fails.
    assert!(
        store
            .set_stack_status_from(
                id,
                S::UpdateInProgress,
                S::UpdateRollbackInProgress,
                None,
                Timestamp(3)
            )
            .unwrap()
    );
    assert!(
        !store
            .set_stack_status_from(
                id,
                S::UpdateInProgress,
                S::UpdateCompleteCleanupInProgress,
                None,
                Timestamp(4)
            )
            .unwrap()
    );
    assert_eq!(store.stack(id).unwrap().unwrap().status, S::UpdateRollbackInProgress);
}

#[test]
fn of_two_updates_begun_from_one_read_only_the_first_starts() {
    use autopatch_model::StackStatus as S;
    let store = Store::open_in_memory().unwrap();
    let row = stack("app");
    store.insert_stack(&row).unwrap();
    let seen = store.stack(&row.stack_id).unwrap().unwrap();
    assert!(
        store.begin_stack_update_from(&seen, "v2", "t2.yml", "{}", "[]", Timestamp(2)).unwrap()
    );
    assert!(
        !store.begin_stack_update_from(&seen, "v3", "t3.yml", "{}", "[]", Timestamp(3)).unwrap()
    );
    let updating = store.stack(&row.stack_id).unwrap().unwrap();
    assert_eq!(updating.status, S::UpdateInProgress);
    assert_eq!(
        (updating.template_body.as_str(), updating.previous_template_body.as_deref()),
        ("v2", Some("v1"))
    );
    // Back in the status it was read in, but changed since: still refused.
    store.set_stack_status(&row.stack_id, seen.status, None, Timestamp(4)).unwrap();
    assert!(
        !store.begin_stack_update_from(&seen, "v3", "t3.yml", "{}", "[]", Timestamp(5)).unwrap()
    );
    assert_eq!(store.stack(&row.stack_id).unwrap().unwrap().template_body, "v2");
}

#[test]
fn an_update_keeps_the_previous_template_until_it_ends_and_a_rollback_restores_it() {
    use autopatch_model::StackStatus as S;
    let store = Store::open_in_memory().unwrap();
    let row = stack("app");
    store.insert_stack(&row).unwrap();
    let id = row.stack_id.as_str();
    store
        .begin_stack_update(
            id,
            "v2",
            "t2.yml",
            r#"{"Image":"b"}"#,
            S::UpdateInProgress,
            Timestamp(2),
        )
        .unwrap();
    let updating = store.stack(id).unwrap().unwrap();
    assert_eq!(
        (updating.template_body.as_str(), updating.previous_template_body.as_deref()),
        ("v2", Some("v1"))
    );
    assert_eq!(updating.previous_parameters.as_deref(), Some(r#"{"Image":"a"}"#));
    store.end_stack_update(id, true, Timestamp(3)).unwrap();
    let rolled_back = store.stack(id).unwrap().unwrap();
    assert_eq!(rolled_back.template_body, "v1");
    assert_eq!(rolled_back.template_source, "t1.yml");
    assert_eq!(rolled_back.parameters, r#"{"Image":"a"}"#);
    assert_eq!(rolled_back.previous_template_body, None);
    store
        .begin_stack_update(
            id,
            "v3",
            "t3.yml",
            r#"{"Image":"c"}"#,
            S::UpdateInProgress,
            Timestamp(4),
        )
        .unwrap();
    store.end_stack_update(id, false, Timestamp(5)).unwrap();
    let updated = store.stack(id).unwrap().unwrap();
    assert_eq!((updated.template_body.as_str(), updated.previous_template_body), ("v3", None));
}

#[test]
fn processes_opening_a_new_database_at_once_all_get_it_migrated() {
    // `autopatch up` and the commands beside it may open a database no one
    // has migrated yet at the same moment: each migration runs once.
    let directory = tempfile::tempdir().unwrap();
    for round in 0..20 {
        let path = directory.path().join(format!("state-{round}.db"));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let (path, barrier) = (path.clone(), std::sync::Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    Store::open(&path).map(|store| store.engine_namespace().to_owned())
                })
            })
            .collect();
        let namespaces: Vec<String> = openers
            .into_iter()
            .map(|opener| {
                opener.join().unwrap().unwrap_or_else(|error| {
                    panic!("{error}: {:?}", std::error::Error::source(&error))
                })
            })
            .collect();
        assert!(namespaces.iter().all(|namespace| namespace == &namespaces[0]), "{namespaces:?}");
    }
}

/// Runs `each(store, index)` on `count` threads at once, each with its own
/// store (its own SQLite connection, as separate processes have) over the
/// same database file, and returns their results in index order.
fn at_once<T: Send>(
    path: &std::path::Path,
    count: usize,
    each: impl Fn(&Store, usize) -> T + Sync,
) -> Vec<T> {
    let stores: Vec<Store> = (0..count).map(|_| Store::open(path).unwrap()).collect();
    let start = std::sync::Barrier::new(count);
    std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(index, store)| {
                let (start, each) = (&start, &each);
                scope.spawn(move || {
                    start.wait();
                    each(store, index)
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    })
}

/// Registrations and build starts racing from several processes wait for
/// each other instead of failing: the same document registered at once is
/// registered once and "unchanged" for the others, another text under the
/// same version is refused as immutable, and every start gets its own build
/// number.
#[test]
fn concurrent_writers_wait_for_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("autopatch.db");
    drop(Store::open(&path).unwrap());
    for round in 0..5 {
        let version = format!("1.{round}.0");
        let results = at_once(&path, 6, |store, _| {
            store.put_component(&component("update-os", &version, "same text"))
        });
        let inserted = results.iter().filter(|result| matches!(result, Ok(true))).count();
        assert_eq!(inserted, 1, "round {round}: {results:?}");
        assert!(results.iter().all(Result::is_ok), "round {round}: {results:?}");

        let results = at_once(&path, 6, |store, index| {
            store.put_recipe(&component("webapp", &version, &format!("text {index}")))
        });
        let inserted = results.iter().filter(|result| matches!(result, Ok(true))).count();
        assert_eq!(inserted, 1, "round {round}: {results:?}");
        assert!(
            results.iter().all(|result| matches!(
                result,
                Ok(true) | Err(StoreError::AlreadyExists { kind: "recipe", .. })
            )),
            "round {round}: {results:?}"
        );
    }
    let ids: Vec<String> = (0..12).map(|index| format!("b-{index}")).collect();
    let results =
        at_once(&path, 12, |store, index| store.create_build(&new_build(&ids[index], None)));
    let mut numbers: Vec<u32> = results
        .iter()
        .map(|result| result.as_ref().map(|(build, _)| build.build_number).unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=12).collect::<Vec<u32>>());
    // One client token started from several processes is one build.
    let ids: Vec<String> = (0..6).map(|index| format!("t-{index}")).collect();
    let results =
        at_once(&path, 6, |store, index| store.create_build(&new_build(&ids[index], Some("tok"))));
    let started: Vec<_> = results.iter().map(|result| result.as_ref().unwrap()).collect();
    assert_eq!(started.iter().filter(|(_, created)| *created).count(), 1, "{started:?}");
    let first = &started.iter().find(|(_, created)| *created).unwrap().0.id;
    assert!(started.iter().all(|(build, _)| &build.id == first), "{started:?}");
}

/// Lists are by name, then by semantic version, not in the order versions
/// were registered (nor as strings: 1.2.10 after 1.2.5).
#[test]
fn documents_are_listed_by_name_and_version() {
    let store = Store::open_in_memory().unwrap();
    for (name, version) in
        [("web", "1.2.10"), ("os", "2.0.0"), ("web", "1.0.0"), ("web", "1.10.0"), ("web", "1.2.5")]
    {
        store.put_component(&component(name, version, version)).unwrap();
    }
    let listed: Vec<(String, String)> =
        store.components().unwrap().into_iter().map(|row| (row.name, row.version)).collect();
    let expected =
        [("os", "2.0.0"), ("web", "1.0.0"), ("web", "1.2.5"), ("web", "1.2.10"), ("web", "1.10.0")];
    assert_eq!(listed, expected.map(|(n, v)| (n.to_owned(), v.to_owned())));
}
