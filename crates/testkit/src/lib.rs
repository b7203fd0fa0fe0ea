//! Test support shared by autopatch's integration tests (a dev-dependency
//! only): the test images every real-engine test starts from, made once per
//! machine and kept in the engine.
//!
//! - [`GOLDEN`]: Debian bookworm's point release, bootstrapped with mmdebstrap.
//! - [`WEBAPP`]: the shipped `webapp` and `webapp-test` components baked on
//!   the golden image by the real image pipeline.
//!
//! A lock file serializes test processes that find an image missing, so a
//! fresh machine bakes each image once.

use std::path::PathBuf;
use std::sync::Arc;

use autopatch_documents::SourceFile;
use autopatch_engine::{DockerEngine, Engine};
use autopatch_imagebuilder::{
    BootstrapRequest, Builder, CollectProgress, StartOptions, StartOutcome,
};
use autopatch_store::Store;
use tokio_util::sync::CancellationToken;

/// The golden test image.
pub const GOLDEN: &str = "localhost/autopatch-test/golden:bookworm";
/// The lab's web application image, for stacks.
pub const WEBAPP: &str = "localhost/autopatch-test/webapp:bookworm";

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// Connects to the engine, or panics saying how to start one.
pub async fn engine() -> Arc<DockerEngine> {
    Arc::new(DockerEngine::connect().await.expect("a container engine (run scripts/setup-host.sh)"))
}

/// Makes sure [`GOLDEN`] exists.
pub async fn ensure_golden(engine: &Arc<DockerEngine>) {
    if !exists(engine, GOLDEN).await {
        let _lock = machine_lock();
        bootstrap_golden(engine).await;
    }
}

/// Makes sure [`WEBAPP`] (and so [`GOLDEN`]) exists.
pub async fn ensure_webapp(engine: &Arc<DockerEngine>) {
    if exists(engine, WEBAPP).await {
        return;
    }
    let _lock = machine_lock();
    if exists(engine, WEBAPP).await {
        return;
    }
    bootstrap_golden(engine).await;
    bake_webapp(engine).await;
}

async fn exists(engine: &Arc<DockerEngine>, reference: &str) -> bool {
    engine.image_inspect(reference).await.expect("inspect a test image").is_some()
}

/// Held while a test process makes an image; released on drop.
fn machine_lock() -> std::fs::File {
    let lock = std::fs::File::create(std::env::temp_dir().join("autopatch-test-images.lock"))
        .expect("create the test image lock file");
    lock.lock().expect("lock the test image lock file");
    lock
}

async fn bootstrap_golden(engine: &Arc<DockerEngine>) {
    if exists(engine, GOLDEN).await {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(Store::open(&dir.path().join("golden.db")).expect("a store"));
    let request = BootstrapRequest {
        suite: "bookworm".into(),
        mirror: "http://deb.debian.org/debian".into(),
        name: format!("golden-test-{}", std::process::id()),
        version: "1.0.0".into(),
        include: Vec::new(),
        work_dir: dir.path().to_owned(),
    };
    let image =
        autopatch_imagebuilder::bootstrap(engine, &store, &request, &CollectProgress::default())
            .await
            .expect("bootstrap the golden test image with mmdebstrap");
    engine.image_tag(&image.engine_image_id, GOLDEN).await.expect("tag the golden test image");
    engine.image_remove(&image.engine_reference).await.expect("untag the bootstrap");
}

async fn bake_webapp(engine: &Arc<DockerEngine>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(Store::open(&dir.path().join("webapp.db")).expect("a store"));
    for name in ["webapp", "webapp-test"] {
        let path = repo_root().join("components").join(format!("{name}.yml"));
        let text = std::fs::read_to_string(&path).expect("a shipped component");
        let file = SourceFile::new(format!("{name}.yml"), text);
        autopatch_imagebuilder::create_component(&store, &file, Some(name), None)
            .expect("register a shipped component");
    }
    let recipe = format!(
        "name: webapp-test-image\nsemanticVersion: 1.0.0\nparentImage: {GOLDEN}\n\
         components:\n  - componentArn: webapp\n  - componentArn: webapp-test\n"
    );
    autopatch_imagebuilder::create_recipe(&store, engine, &SourceFile::new("recipe.yml", recipe))
        .await
        .expect("register the webapp test recipe");
    let pipeline = "name: webapp-test-image\nimageRecipeArn: webapp-test-image/1.0.0\n";
    autopatch_imagebuilder::create_pipeline(&store, &SourceFile::new("pipeline.yml", pipeline))
        .expect("register the webapp test pipeline");
    let builder = Builder {
        engine: engine.clone(),
        store: store.clone(),
        artifacts_root: dir.path().join("builds"),
    };
    let outcome = autopatch_imagebuilder::start_pipeline(
        &builder,
        "webapp-test-image",
        &StartOptions::default(),
        &CollectProgress::default(),
        &CancellationToken::new(),
    )
    .await
    .expect("bake the webapp test image");
    let StartOutcome::Built(built) = outcome else { panic!("the webapp test image was skipped") };
    let image = built
        .image
        .unwrap_or_else(|| panic!("the webapp test image failed: {:?}", built.build.reason));
    engine.image_tag(&image.engine_image_id, WEBAPP).await.expect("tag the webapp test image");
    engine.image_remove(&image.engine_reference).await.expect("untag the baked image");
}
