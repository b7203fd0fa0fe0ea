//! Shared set-up: the engine, the golden image, a fresh state per test, and
//! helpers to register documents from text and run pipelines.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use autopatch_documents::SourceFile;
use autopatch_engine::{ContainerSpec, DockerEngine, Engine, ExecSpec};
use autopatch_imagebuilder::{
    BUILD_LABEL, BootstrapRequest, Builder, CollectProgress, NETWORK, StartOptions, StartOutcome,
};
use autopatch_store::Store;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

pub(crate) const GOLDEN: &str = "localhost/autopatch-test/golden:bookworm";

static GOLDEN_READY: OnceCell<()> = OnceCell::const_new();

/// A test's own state directory, store and builder. Dropping it removes
/// the engine images the test made, whether it passed or failed.
pub(crate) struct Fixture {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) root: PathBuf,
    pub(crate) builder: Builder<DockerEngine>,
    /// Images made outside the store ([`derive_from_golden`]), in order.
    derived: Mutex<Vec<String>>,
}

impl Fixture {
    pub(crate) async fn new() -> Fixture {
        let engine = Arc::new(
            DockerEngine::connect().await.expect("a container engine (run scripts/setup-host.sh)"),
        );
        ensure_golden(&engine).await;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let store = Arc::new(Store::open(&root.join("autopatch.db")).unwrap());
        let builder = Builder { engine, store, artifacts_root: root.join("builds") };
        Fixture { _dir: dir, root, builder, derived: Mutex::default() }
    }

    pub(crate) fn component(&self, name: &str, text: &str) {
        let file = SourceFile::new(format!("{name}.yml"), text);
        autopatch_imagebuilder::create_component(&self.builder.store, &file, Some(name), None)
            .unwrap();
    }

    pub(crate) fn shipped_component(&self, name: &str) {
        let path = repo_root().join("components").join(format!("{name}.yml"));
        let text = std::fs::read_to_string(&path).unwrap();
        self.component(name, &text);
    }

    pub(crate) async fn recipe(&self, text: &str) {
        let file = SourceFile::new("recipe.yml", text);
        autopatch_imagebuilder::create_recipe(&self.builder.store, &self.builder.engine, &file)
            .await
            .unwrap();
    }

    pub(crate) fn pipeline(&self, text: &str) {
        let file = SourceFile::new("pipeline.yml", text);
        autopatch_imagebuilder::create_pipeline(&self.builder.store, &file).unwrap();
    }

    pub(crate) async fn start(&self, pipeline: &str) -> (StartOutcome, CollectProgress) {
        let progress = CollectProgress::default();
        let outcome = autopatch_imagebuilder::start_pipeline(
            &self.builder,
            pipeline,
            &StartOptions::default(),
            &progress,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        (outcome, progress)
    }

    /// Containers any build of this fixture left behind.
    pub(crate) async fn leftover_containers(&self) -> Vec<String> {
        let mut leftovers = Vec::new();
        for build in self.builder.store.builds().unwrap() {
            let label = [(BUILD_LABEL.to_owned(), build.id.clone())];
            for container in self.builder.engine.container_list(&label).await.unwrap() {
                leftovers.push(format!("{} ({})", container.name, build.id));
            }
        }
        leftovers
    }
}

impl Drop for Fixture {
    /// Removes the images this fixture published (newest first: children
    /// before parents), then the ones it derived. Drop cannot await and the
    /// test's runtime may be unwinding, so this runs on a thread with its
    /// own runtime and engine connection.
    fn drop(&mut self) {
        let published = self.builder.store.images().unwrap_or_default();
        let mut references: Vec<String> =
            published.into_iter().map(|image| image.engine_reference).collect();
        let derived = std::mem::take(&mut *self.derived.lock().unwrap_or_else(|e| e.into_inner()));
        references.extend(derived.into_iter().rev());
        if references.is_empty() {
            return;
        }
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

/// Makes the engine image `reference` from the golden image: a container
/// gets `files` (path in the container, bytes), runs `setup` with `sh -c`,
/// and is committed with `CMD ["/bin/sh"]`. The fixture removes it when
/// dropped.
pub(crate) async fn derive_from_golden(
    fixture: &Fixture,
    files: &[(&str, Vec<u8>)],
    setup: &str,
    reference: &str,
) {
    fixture.derived.lock().unwrap().push(reference.to_owned());
    let engine = &fixture.builder.engine;
    engine.network_ensure(NETWORK).await.unwrap();
    let spec = ContainerSpec {
        image: GOLDEN.into(),
        cmd: vec!["sleep".into(), "infinity".into()],
        init: true,
        network: Some(NETWORK.into()),
        ..ContainerSpec::default()
    };
    let container = engine.container_create(&spec).await.unwrap();
    engine.container_start(&container.id).await.unwrap();
    for (path, bytes) in files {
        engine.put_file(&container.id, path, bytes, 0o644).await.unwrap();
    }
    let exec =
        ExecSpec { cmd: vec!["sh".into(), "-c".into(), setup.into()], ..ExecSpec::default() };
    let result = engine.exec(&container.id, &exec, &mut ()).await.unwrap();
    assert_eq!(result.exit_code, 0, "{}", result.stderr_text());
    engine.commit(&container.id, reference, &[r#"CMD ["/bin/sh"]"#.to_owned()]).await.unwrap();
    engine.container_remove(&container.id).await.unwrap();
}

/// The pid of a process that has exited: spawned, then reaped here.
pub(crate) fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// A build's `detailedoutput.json`.
pub(crate) fn detailed_output(build: &autopatch_store::BuildRow) -> serde_json::Value {
    let path = std::path::Path::new(&build.artifact_dir).join("detailedoutput.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Registers the component `probe` from `component`, a recipe `probe`
/// 1.0.0 on the golden image running it, and a pipeline `probe`.
pub(crate) async fn single_component_pipeline(
    fixture: &Fixture,
    component: &str,
    tests_enabled: bool,
) {
    fixture.component("probe", component);
    fixture
        .recipe(&format!("name: probe\nsemanticVersion: 1.0.0\nparentImage: {GOLDEN}\ncomponents:\n  - componentArn: probe\n"))
        .await;
    fixture.pipeline(&format!(
        "name: probe\nimageRecipeArn: probe\nimageTestsConfiguration:\n  imageTestsEnabled: {tests_enabled}\n"
    ));
}

pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Makes sure the golden test image exists, bootstrapping it once if not.
async fn ensure_golden(engine: &Arc<DockerEngine>) {
    GOLDEN_READY
        .get_or_init(|| async {
            if engine.image_inspect(GOLDEN).await.unwrap().is_some() {
                return;
            }
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(Store::open(&dir.path().join("bootstrap.db")).unwrap());
            let request = BootstrapRequest {
                suite: "bookworm".into(),
                mirror: "http://deb.debian.org/debian".into(),
                // Unique per process: nextest runs tests as processes, and
                // two may bootstrap at once on a fresh machine.
                name: format!("golden-test-{}", std::process::id()),
                version: "1.0.0".into(),
                include: Vec::new(),
                work_dir: dir.path().to_owned(),
            };
            let image = autopatch_imagebuilder::bootstrap(
                engine,
                &store,
                &request,
                &CollectProgress::default(),
            )
            .await
            .expect("bootstrap the golden test image with mmdebstrap");
            engine.image_tag(&image.engine_image_id, GOLDEN).await.unwrap();
            engine.image_remove(&image.engine_reference).await.unwrap();
        })
        .await;
}
