//! `Builder::recover`: builds whose runner process died end `FAILED`, and
//! their containers, snapshot and unpublished tag are removed; builds whose
//! runner lives are left alone.

use std::collections::BTreeMap;

use autopatch_engine::{ContainerSpec, Engine};
use autopatch_imagebuilder::{
    BUILD_LABEL, NETWORK, OWNER_LABEL, ROLE_LABEL, label_value, ownership_labels,
};
use autopatch_model::{ImageState, Timestamp};
use autopatch_store::{ImageRow, NewBuild};

use crate::harness::{PARENT, RECIPE, Sim, detailed_output, update_and_smoke};

/// A pid no process can have (above Linux's `pid_max` limit of 2^22).
const DEAD_PID: u32 = 999_999_999;

/// Records a build in `BUILDING` owned by `owner_pid`, with a running
/// container labelled for it, as a runner would have left it.
async fn build_in_progress(sim: &Sim, id: &str, owner_pid: u32) -> (u32, String) {
    let root = sim.builder.artifacts_root.display().to_string();
    let (build, created) = sim
        .builder
        .store
        .create_build(&NewBuild {
            id,
            pipeline: Some("pipe"),
            recipe: RECIPE,
            recipe_version: "1.0.0",
            client_token: None,
            parent_image: PARENT,
            artifact_dir_root: &root,
            owner_pid: Some(owner_pid),
            now: Timestamp(1),
        })
        .unwrap();
    assert!(created);
    sim.builder.store.set_build_state(id, ImageState::Building, None, Timestamp(2)).unwrap();
    sim.engine.network_ensure(NETWORK).await.unwrap();
    let mut spec = ContainerSpec {
        name: Some(format!("autopatch-build-{id}")),
        image: PARENT.to_owned(),
        network: Some(NETWORK.to_owned()),
        ..ContainerSpec::default()
    };
    spec.labels.insert(BUILD_LABEL.to_owned(), id.to_owned());
    let container = sim.engine.container_create(&spec).await.unwrap();
    sim.engine.container_start(&container.id).await.unwrap();
    (build.build_number, container.id)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn recover_fails_builds_of_dead_runners_and_removes_what_they_left() {
    let sim = Sim::new();
    let (number, container) = build_in_progress(&sim, "b-dead", DEAD_PID).await;
    // The dead runner got as far as a snapshot and its version tag, but not
    // the image row: a half-published image.
    let snapshot = sim
        .engine
        .commit(&container, "localhost/autopatch-snapshot/b-dead:snapshot", &[])
        .await
        .unwrap();
    let half_published = sim.published(number);
    sim.engine.image_tag(&snapshot.id, &half_published).await.unwrap();
    // A build whose runner is this very test process: alive, not touched.
    let (_, live_container) = build_in_progress(&sim, "b-live", std::process::id()).await;

    let ended = sim.builder.recover().await.unwrap();

    assert_eq!(ended, ["b-dead"]);
    let dead = sim.builder.store.build("b-dead").unwrap().unwrap();
    assert_eq!(dead.state, ImageState::Failed);
    let reason = dead.reason.unwrap_or_default();
    assert!(reason.contains(&format!("pid {DEAD_PID}")), "{reason}");
    assert!(dead.finished_at.is_some());
    let events = sim.builder.store.events("build/b-dead").unwrap();
    assert!(events.iter().any(|e| e.detail.starts_with("FAILED: ")), "{events:?}");
    // The runner left no detailed output: recovery writes what the store knows.
    let output = detailed_output(&sim.builder.store.build("b-dead").unwrap().unwrap());
    assert_eq!(
        (&output["build_id"], &output["state"], &output["reason"], &output["ended_by_recovery"]),
        (&"b-dead".into(), &"FAILED".into(), &reason.as_str().into(), &true.into()),
        "{output}"
    );
    assert_eq!(output["phases"], serde_json::json!([]));

    assert_eq!(
        sim.engine.containers().into_iter().map(|c| c.id).collect::<Vec<_>>(),
        [live_container]
    );
    assert_eq!(sim.tags(), [PARENT], "the snapshot and the unpublished tag are gone");
    let live = sim.builder.store.build("b-live").unwrap().unwrap();
    assert_eq!(live.state, ImageState::Building);

    // Idempotent: nothing more to do.
    assert_eq!(sim.builder.recover().await.unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_runner_that_died_after_publishing_leaves_an_available_build() {
    // The image row is written once the tests passed; a runner killed
    // after it (removing its containers) published a whole image: the
    // build ends AVAILABLE and the image stays.
    let sim = Sim::new();
    let (number, container) = build_in_progress(&sim, "b-late", DEAD_PID).await;
    let published = sim.published(number);
    let image = sim.engine.commit(&container, &published, &[]).await.unwrap();
    sim.builder
        .store
        .insert_image(&ImageRow {
            version: format!("{RECIPE}/1.0.0/{number}"),
            recipe: RECIPE.to_owned(),
            recipe_version: "1.0.0".to_owned(),
            build_number: number,
            build_id: Some("b-late".to_owned()),
            pipeline: Some("pipe".to_owned()),
            engine_image_id: image.id,
            engine_reference: published.clone(),
            parent: Some(PARENT.to_owned()),
            parent_engine_image_id: None,
            manifest: "[]".to_owned(),
            evidence: "{}".to_owned(),
            created_at: Timestamp(3),
        })
        .unwrap();

    assert_eq!(sim.builder.recover().await.unwrap(), ["b-late"]);

    let build = sim.builder.store.build("b-late").unwrap().unwrap();
    assert_eq!(build.state, ImageState::Available, "{build:?}");
    assert!(sim.engine.containers().is_empty(), "the build container is removed");
    assert_eq!(sim.tags(), [published, PARENT.to_owned()], "the published image stays");
    let output = detailed_output(&build);
    assert_eq!(
        (&output["state"], &output["ended_by_recovery"]),
        (&"AVAILABLE".into(), &true.into())
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn recover_removes_containers_of_any_role_whose_owner_died() {
    let sim = Sim::new();
    let mut orphan = ContainerSpec { image: PARENT.into(), ..ContainerSpec::default() };
    orphan.labels = autopatch_imagebuilder::ownership_labels("check-updates");
    orphan.labels.insert(autopatch_imagebuilder::OWNER_LABEL.into(), DEAD_PID.to_string());
    let mut live = ContainerSpec { image: PARENT.into(), ..ContainerSpec::default() };
    live.labels = autopatch_imagebuilder::ownership_labels("diff");
    let orphan = sim.engine.container_create(&orphan).await.unwrap();
    let live = sim.engine.container_create(&live).await.unwrap();

    sim.builder.recover().await.unwrap();

    let left: Vec<String> = sim.engine.containers().into_iter().map(|c| c.id).collect();
    assert!(!left.contains(&orphan.id), "the dead owner's check container is removed");
    assert!(left.contains(&live.id), "a container of a live process is left alone");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn containers_run_from_a_published_image_are_nobodys_build_containers() {
    let sim = Sim::with_pipeline(&crate::harness::update_and_smoke(), "").await;
    let (outcome, _) = sim.build().await;
    assert_eq!(outcome.build.state, ImageState::Available, "{:?}", outcome.build.reason);
    let image = outcome.image.expect("published");
    let info = sim.engine.image_inspect(&image.engine_image_id).await.unwrap().unwrap();
    for key in [ROLE_LABEL, OWNER_LABEL, BUILD_LABEL] {
        assert_eq!(label_value(&info.labels, key), None, "{key} on the published image");
    }

    // What a user's `podman run`, and a check container, make from it.
    let user = ContainerSpec { image: image.engine_reference.clone(), ..Default::default() };
    let user = sim.engine.container_create(&user).await.unwrap();
    let mut check = ContainerSpec { image: image.engine_reference, ..Default::default() };
    check.labels = ownership_labels("check-updates");
    let check = sim.engine.container_create(&check).await.unwrap();

    sim.builder.recover().await.unwrap();

    let left: Vec<String> = sim.engine.containers().into_iter().map(|c| c.id).collect();
    assert_eq!(left, [user.id, check.id]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn recover_leaves_containers_from_images_published_with_build_labels() {
    let sim = Sim::new();
    // An image published before the fix: the build container's labels, a
    // dead owner and a finished build.
    sim.builder
        .store
        .create_build(&NewBuild {
            id: "b-old",
            pipeline: None,
            recipe: RECIPE,
            recipe_version: "1.0.0",
            client_token: None,
            parent_image: PARENT,
            artifact_dir_root: &sim.builder.artifacts_root.display().to_string(),
            owner_pid: Some(DEAD_PID),
            now: Timestamp(1),
        })
        .unwrap();
    sim.builder.store.set_build_state("b-old", ImageState::Available, None, Timestamp(2)).unwrap();
    let old = "localhost/autopatch/old/recipe:1.0.0-1";
    sim.engine.add_image_with(
        old,
        BTreeMap::from([
            (ROLE_LABEL.to_owned(), "build".to_owned()),
            (OWNER_LABEL.to_owned(), DEAD_PID.to_string()),
            (BUILD_LABEL.to_owned(), "b-old".to_owned()),
        ]),
        None,
    );
    let user = ContainerSpec {
        name: Some("quirky_turing".into()),
        image: old.into(),
        ..Default::default()
    };
    let user = sim.engine.container_create(&user).await.unwrap();
    // A live process's check container names the finished build too.
    let mut check = ContainerSpec { image: old.into(), ..Default::default() };
    check.labels = ownership_labels("check-updates");
    let check = sim.engine.container_create(&check).await.unwrap();
    // A build container this code made, whose runner died: removed.
    let mut orphan = ContainerSpec {
        name: Some("autopatch-build-b-old".into()),
        image: old.into(),
        ..Default::default()
    };
    orphan.labels = ownership_labels("build");
    orphan.labels.insert(OWNER_LABEL.into(), DEAD_PID.to_string());
    sim.engine.container_create(&orphan).await.unwrap();

    sim.builder.recover().await.unwrap();

    let left: Vec<String> = sim.engine.containers().into_iter().map(|c| c.id).collect();
    assert_eq!(left, [user.id, check.id]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn recover_leaves_the_dead_containers_of_another_state_directory_to_it() {
    let sim = Sim::new();
    let other = sim.beside();
    let check = |builder: &autopatch_imagebuilder::Builder<_>, owner: u32| {
        let mut spec = ContainerSpec { image: PARENT.into(), ..ContainerSpec::default() };
        spec.labels = builder.ownership_labels("check-updates");
        spec.labels.insert(OWNER_LABEL.into(), owner.to_string());
        spec
    };
    let ours_dead = sim.engine.container_create(&check(&sim.builder, DEAD_PID)).await.unwrap();
    let ours_live =
        sim.engine.container_create(&check(&sim.builder, std::process::id())).await.unwrap();
    let theirs_dead = sim.engine.container_create(&check(&other.builder, DEAD_PID)).await.unwrap();

    sim.builder.recover().await.unwrap();

    let left: Vec<String> = sim.engine.containers().into_iter().map(|c| c.id).collect();
    assert_eq!(left, [ours_live.id, theirs_dead.id.clone()]);

    other.builder.recover().await.unwrap();
    let left: Vec<String> = sim.engine.containers().into_iter().map(|c| c.id).collect();
    assert!(!left.contains(&theirs_dead.id), "its own state directory removes it");
    assert!(!left.contains(&ours_dead.id));
}

/// Runs `sql` on the database file with the sqlite3 shell (installed by
/// scripts/setup-host.sh), beside the store's own connection.
fn sqlite(database: &std::path::Path, sql: &str) {
    let output = std::process::Command::new("sqlite3")
        .arg(database)
        .arg(sql)
        .output()
        .expect("the sqlite3 shell (scripts/setup-host.sh installs it)");
    assert!(output.status.success(), "sqlite3: {}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_build_whose_end_the_store_refuses_is_left_for_recovery_saying_why() {
    let sim = Sim::on_disk();
    sim.register_all(&update_and_smoke(), "").await;
    // The disk fills up once the build runs: the store takes the build's
    // first states (and the parent it resolved), then refuses every write
    // (SQLite's own words).
    sqlite(
        &sim.database(),
        "CREATE TRIGGER full_builds BEFORE UPDATE OF state ON builds \
           WHEN NEW.state NOT IN ('PENDING', 'BUILDING') \
           BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END; \
         CREATE TRIGGER full_events BEFORE INSERT ON events \
           WHEN NEW.detail NOT IN ('PENDING', 'BUILDING') AND NEW.kind != 'parent' \
           BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
    );

    let (outcome, _) = sim.start_with(&autopatch_imagebuilder::StartOptions::default()).await;

    let error = match outcome {
        Err(error) => autopatch_imagebuilder::error_chain(&error),
        Ok(other) => panic!("expected an error, got {other:?}"),
    };
    let build = sim.builder.store.builds().unwrap().pop().expect("the build's row");
    // SQLite's words, then rusqlite's code for them.
    let cause = "state database query failed: update a build: database or disk is full: ";
    let said = format!(
        "build {} ended FAILED, but it is left for recovery (it ends FAILED after this process \
         exits; `autopatch build list` runs the recovery): the store could not record its end: \
         {cause}",
        build.id
    );
    assert!(error.starts_with(&said), "{error}");
    assert_eq!(build.state, ImageState::Building, "the store kept what it had");
    // The build cleaned up all the same.
    assert_eq!(sim.container_names(), Vec::<String>::new());
    assert_eq!(sim.tags_besides_parent(), Vec::<String>::new());

    // The runner exits; space is freed; recovery ends the build, saying
    // how it had ended (from its detailed output).
    sqlite(&sim.database(), "DROP TRIGGER full_builds; DROP TRIGGER full_events;");
    sim.builder.store.set_build_owner(&build.id, DEAD_PID).unwrap();
    assert_eq!(sim.builder.recover().await.unwrap(), std::slice::from_ref(&build.id));
    let build = sim.builder.store.build(&build.id).unwrap().unwrap();
    assert_eq!(build.state, ImageState::Failed);
    let reason = build.reason.unwrap_or_default();
    assert!(
        reason.starts_with(&format!(
            "the process running the build (pid {DEAD_PID}) exited before the store recorded \
             the build's end; it had ended FAILED: {cause}"
        )),
        "{reason}"
    );
}
