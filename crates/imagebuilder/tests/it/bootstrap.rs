//! Golden-image bootstraps killed mid-way, on the real engine: an image
//! imported but not registered is known only by its bootstrap's temporary
//! tag, and the next bootstrap in the state directory removes it (and its
//! manifest container, and a version tag without a row), never a registered
//! image or a running bootstrap's.

use std::fs::File;
use std::sync::Arc;

use autopatch_engine::{ContainerSpec, DockerEngine, Engine};
use autopatch_imagebuilder::{
    BootstrapError, BootstrapRequest, BuildEvent, CollectProgress, Progress, engine_reference,
};
use autopatch_store::ImageRow;

use crate::support::{Fixture, dead_pid, derive_from_golden};

/// Where a bootstrap imports its image until it registers it.
fn temporary_reference(namespace: &str, stem: &str) -> String {
    format!("localhost/autopatch-bootstrap/{namespace}/{stem}:import")
}

/// The label on a bootstrap's manifest container naming its stem.
const STEM_LABEL: &str = "autopatch.bootstrap-stem";

fn bootstrap_request(fixture: &Fixture, name: &str, mirror: &str) -> BootstrapRequest {
    BootstrapRequest {
        suite: "bookworm".into(),
        mirror: mirror.into(),
        name: name.into(),
        version: "1.0.0".into(),
        include: Vec::new(),
        work_dir: fixture.root.join("work"),
    }
}

/// A bootstrap that fails at once (mmdebstrap finds no archive there),
/// after it removed what dead bootstraps left; what it said.
async fn failing_bootstrap(fixture: &Fixture, name: &str) -> Vec<String> {
    let progress = CollectProgress::default();
    let request = bootstrap_request(fixture, name, "file:///nonexistent/debian");
    let error = autopatch_imagebuilder::bootstrap(
        &fixture.builder.engine,
        &fixture.builder.store,
        &request,
        &progress,
    )
    .await
    .expect_err("no archive at file:///nonexistent");
    assert!(matches!(error, BootstrapError::Mmdebstrap { .. }), "{error}");
    notes(&progress)
}

fn work_files(fixture: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture.root.join("work"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Removes engine images by reference or id when the test ends, passed or
/// not (those a failed test would leave).
struct RemoveImages(Vec<String>);

impl Drop for RemoveImages {
    fn drop(&mut self) {
        let references = std::mem::take(&mut self.0);
        let removal = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build()
            else {
                return;
            };
            runtime.block_on(async {
                let Ok(engine) = DockerEngine::connect().await else { return };
                for reference in references {
                    let _ = engine.image_remove(&reference).await;
                }
            });
        });
        let _ = removal.join();
    }
}

/// Dies (a panic ends the bootstrap's task without any of its cleanup, as
/// SIGKILL ends the process) as soon as the image is imported.
struct KilledAfterImport;

impl Progress for KilledAfterImport {
    fn event(&self, event: BuildEvent) {
        if matches!(&event, BuildEvent::Timing { what, .. } if what == "import") {
            panic!("killed once the import has ended (simulated SIGKILL)");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_killed_after_its_import_leaves_an_image_the_next_bootstrap_removes() {
    let fixture = Fixture::new().await;
    let engine = Arc::clone(&fixture.builder.engine);
    let store = Arc::clone(&fixture.builder.store);
    let namespace = store.engine_namespace().to_owned();
    let name = format!("killed-import-{}", std::process::id());
    let published = engine_reference(&namespace, &name, "1.0.0", 1);
    let mut made = RemoveImages(vec![published.clone()]);

    let request = bootstrap_request(&fixture, &name, "http://deb.debian.org/debian");
    let killed = tokio::spawn({
        let (engine, store) = (Arc::clone(&engine), Arc::clone(&store));
        async move {
            autopatch_imagebuilder::bootstrap(&engine, &store, &request, &KilledAfterImport).await
        }
    })
    .await;
    assert!(killed.is_err_and(|error| error.is_panic()), "the bootstrap ran to its end");

    // What the killed process left: its lock file, and an image only its
    // stem's temporary tag names: no version tag, no row.
    let left = work_files(&fixture);
    let stem = match left.as_slice() {
        [lock] => lock.strip_suffix(".lock").expect("its lock file").to_owned(),
        other => panic!("left in the work directory: {other:?}"),
    };
    let temporary = temporary_reference(&namespace, &stem);
    made.0.push(temporary.clone());
    let image = engine.image_inspect(&temporary).await.unwrap().expect("the imported image");
    made.0.push(image.id.clone());
    assert_eq!(image.tags, std::slice::from_ref(&temporary));
    assert!(engine.image_inspect(&published).await.unwrap().is_none(), "{published}");
    assert!(store.images().unwrap().is_empty());

    // An autopatch from before temporary tags, killed the same way, left
    // its image under the version tag, without a row.
    let stale = image_tagged(&fixture, &[&published]).await;
    made.0.push(stale.clone());

    // The next bootstrap removes both, with the stem's files, and
    // registers its own image under that version.
    let progress = CollectProgress::default();
    let request = bootstrap_request(&fixture, &name, "http://deb.debian.org/debian");
    let row = autopatch_imagebuilder::bootstrap(&engine, &store, &request, &progress)
        .await
        .expect("a bootstrap");
    let said = notes(&progress);
    assert!(engine.image_inspect(&image.id).await.unwrap().is_none(), "{said:#?}");
    assert!(engine.image_inspect(&stale).await.unwrap().is_none(), "{said:#?}");
    assert!(
        said.contains(&format!(
            "removed the image an earlier bootstrap (autopatch pid {}, gone) had imported but \
             not registered ({temporary}, {})",
            std::process::id(),
            image.id
        )),
        "{said:#?}"
    );
    assert!(
        said.contains(&format!(
            "removed {published}, an image no row names (an earlier bootstrap's, killed before \
             it registered it)"
        )),
        "{said:#?}"
    );
    assert_eq!(
        (row.version.as_str(), row.engine_reference.as_str()),
        (&*format!("{name}/1.0.0/1"), &*published)
    );
    assert_eq!(tags_of(&engine, &row.engine_image_id).await, Some(vec![published.clone()]));
    assert_eq!(store.images().unwrap().len(), 1);
    assert_eq!(work_files(&fixture), Vec::<String>::new(), "{said:#?}");
}

fn notes(progress: &CollectProgress) -> Vec<String> {
    progress
        .events()
        .into_iter()
        .filter_map(|event| match event {
            BuildEvent::Note { message } => Some(message),
            _ => None,
        })
        .collect()
}

/// A lock file of `stem` naming `pid`; locked (a running bootstrap's) when
/// the returned file is kept.
fn lock_file(fixture: &Fixture, stem: &str, pid: u32) -> File {
    let path = fixture.root.join("work").join(format!("{stem}.lock"));
    std::fs::write(&path, format!("autopatch {pid}\nimport x\n")).unwrap();
    File::options().write(true).open(path).unwrap()
}

/// A new image of its own (from the golden image) tagged `tags` only.
async fn image_tagged(fixture: &Fixture, tags: &[&str]) -> String {
    let pid = std::process::id();
    let scratch = format!("localhost/autopatch-test/bootstrap-leftover-{pid}:{}", tags.len());
    derive_from_golden(fixture, &[], "true", &scratch).await;
    let engine = &fixture.builder.engine;
    let id = engine.image_inspect(&scratch).await.unwrap().unwrap().id;
    for tag in tags {
        engine.image_tag(&id, tag).await.unwrap();
    }
    engine.image_remove(&scratch).await.unwrap();
    id
}

async fn tags_of(engine: &DockerEngine, id: &str) -> Option<Vec<String>> {
    engine.image_inspect(id).await.unwrap().map(|image| {
        let mut tags = image.tags;
        tags.sort();
        tags
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_bootstraps_images_go_but_not_a_registered_one_nor_a_running_bootstraps() {
    let fixture = Fixture::new().await;
    let engine = &fixture.builder.engine;
    let store = &fixture.builder.store;
    let namespace = store.engine_namespace().to_owned();
    let pid = std::process::id();
    let dead = dead_pid();
    std::fs::create_dir_all(fixture.root.join("work")).unwrap();
    let name = format!("leftover-{pid}");
    let stem = |which: &str| format!("{name}-{which}");
    let version = |build: u32| engine_reference(&namespace, &name, "1.0.0", build);
    let temporary = |which: &str| temporary_reference(&namespace, &stem(which));

    // Killed between its version tag and its row.
    let _tagged = lock_file(&fixture, &stem("tagged"), dead);
    let tagged = image_tagged(&fixture, &[&temporary("tagged"), &version(1)]).await;
    // Killed while it read the manifest: its container runs from the image.
    let _reading = lock_file(&fixture, &stem("reading"), dead);
    let reading = image_tagged(&fixture, &[&temporary("reading")]).await;
    let mut labels = autopatch_imagebuilder::ownership_labels("bootstrap");
    labels.insert(STEM_LABEL.to_owned(), stem("reading"));
    labels.insert(autopatch_imagebuilder::NAMESPACE_LABEL.to_owned(), namespace.clone());
    let spec = ContainerSpec {
        image: reading.clone(),
        cmd: vec!["sleep".into(), "infinity".into()],
        init: true,
        labels,
        ..ContainerSpec::default()
    };
    let container = engine.container_create(&spec).await.unwrap();
    engine.container_start(&container.id).await.unwrap();
    // Killed after its row, before it removed its temporary tag.
    let _registered = lock_file(&fixture, &stem("registered"), dead);
    let registered = image_tagged(&fixture, &[&temporary("registered"), &version(2)]).await;
    store
        .insert_image(&ImageRow {
            version: format!("{name}/1.0.0/2"),
            recipe: name.clone(),
            recipe_version: "1.0.0".into(),
            build_number: 2,
            build_id: None,
            pipeline: None,
            engine_image_id: registered.clone(),
            engine_reference: version(2),
            parent: None,
            parent_engine_image_id: None,
            manifest: String::new(),
            evidence: "{}".into(),
            created_at: autopatch_model::Timestamp::from_millis(0),
        })
        .unwrap();
    // Running: its lock is held (here, by this test).
    let running_lock = lock_file(&fixture, &stem("running"), pid);
    running_lock.lock().unwrap();
    let running = image_tagged(&fixture, &[&temporary("running")]).await;
    let _made = RemoveImages(vec![tagged.clone(), reading.clone(), running.clone()]);

    let said = failing_bootstrap(&fixture, &name).await;

    assert_eq!(tags_of(engine, &tagged).await, None, "{said:#?}");
    assert_eq!(engine.image_inspect(&version(1)).await.unwrap().map(|image| image.id), None);
    assert_eq!(tags_of(engine, &reading).await, None, "{said:#?}");
    assert!(engine.container_inspect(&container.id).await.unwrap().is_none(), "{said:#?}");
    assert_eq!(tags_of(engine, &registered).await, Some(vec![version(2)]), "{said:#?}");
    assert!(store.image(&format!("{name}/1.0.0/2")).unwrap().is_some());
    assert_eq!(tags_of(engine, &running).await, Some(vec![temporary("running")]), "{said:#?}");
    assert_eq!(work_files(&fixture), [format!("{}.lock", stem("running"))], "{said:#?}");
    let removed = |which: &str, id: &str| {
        format!(
            "removed the image an earlier bootstrap (autopatch pid {dead}, gone) had imported \
             but not registered ({}, {id})",
            temporary(which)
        )
    };
    for message in [
        removed("reading", &reading),
        format!(
            "removed the temporary tag {} of {name}/1.0.0/2, which an earlier bootstrap \
             (autopatch pid {dead}, gone) had registered",
            temporary("registered")
        ),
        removed("tagged", &tagged),
    ] {
        assert!(said.contains(&message), "{message}\nnot in {said:#?}");
    }
    drop(running_lock);
}
