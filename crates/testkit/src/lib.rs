//! Test support shared by autopatch's integration tests (a dev-dependency
//! only): the test images every real-engine test starts from, made once per
//! machine and kept in the engine.
//!
//! - [`GOLDEN`]: Debian bookworm's point release, bootstrapped with mmdebstrap.
//! - [`WEBAPP`]: the shipped `webapp` and `webapp-test` components baked on
//!   the golden image by the real image pipeline. Its tag ends with a hash
//!   of the two component documents, so changing either bakes a new image
//!   (an image is only made when its reference is missing).
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

/// The events of a blue/green update of pattern3-app
/// (`AutoScalingReplacingUpdate`), from the stack's UPDATE_IN_PROGRESS on,
/// as (who, status): "old" is the replaced Auto Scaling group, and repeated
/// `_IN_PROGRESS` events of one resource count once.
pub const REPLACING_UPDATE_STORY: &[(&str, &str)] = &[
    ("pattern3-app", "UPDATE_IN_PROGRESS"),
    ("Pattern3ASG", "UPDATE_IN_PROGRESS"),
    ("Pattern3ASG", "UPDATE_COMPLETE"),
    ("pattern3-app", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"),
    ("old", "DELETE_IN_PROGRESS"),
    ("old", "DELETE_COMPLETE"),
    ("pattern3-app", "UPDATE_COMPLETE"),
];

/// The golden test image.
pub const GOLDEN: &str = "localhost/autopatch-test/golden:bookworm";
/// The lab's web application image, for stacks:
/// `localhost/autopatch-test/webapp:bookworm-<8 hex digits>`, the digits a
/// hash of `components/webapp.yml` and `components/webapp-test.yml`.
pub const WEBAPP: &str = match std::str::from_utf8(&WEBAPP_REFERENCE) {
    Ok(reference) => reference,
    Err(_) => panic!("the webapp reference is ASCII"),
};

const WEBAPP_PREFIX: &str = "localhost/autopatch-test/webapp:bookworm-";
const WEBAPP_COMPONENTS: [&[u8]; 2] = [
    include_bytes!("../../../components/webapp.yml"),
    include_bytes!("../../../components/webapp-test.yml"),
];

/// [`WEBAPP_PREFIX`] and the components' hash in hex, built at compile time
/// (`include_bytes!` makes a changed component rebuild this crate).
const WEBAPP_REFERENCE: [u8; WEBAPP_PREFIX.len() + 8] = {
    let mut reference = [0u8; WEBAPP_PREFIX.len() + 8];
    let prefix = WEBAPP_PREFIX.as_bytes();
    let mut index = 0;
    while index < prefix.len() {
        reference[index] = prefix[index];
        index += 1;
    }
    let hash = fnv1a(&WEBAPP_COMPONENTS);
    let mut digit = 0;
    while digit < 8 {
        let nibble = (hash >> (28 - 4 * digit)) & 0xf;
        reference[prefix.len() + digit] = b"0123456789abcdef"[nibble as usize];
        digit += 1;
    }
    reference
};

/// 32-bit FNV-1a over the documents, each followed by a zero byte (so moving
/// text from one to the other changes the hash).
const fn fnv1a(documents: &[&[u8]]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    let mut document = 0;
    while document < documents.len() {
        let bytes = documents[document];
        let mut index = 0;
        while index <= bytes.len() {
            let byte = if index < bytes.len() { bytes[index] } else { 0 };
            hash = (hash ^ byte as u32).wrapping_mul(0x0100_0193);
            index += 1;
        }
        document += 1;
    }
    hash
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webapp_reference_names_the_components_hash() {
        let hash =
            WEBAPP.strip_prefix("localhost/autopatch-test/webapp:bookworm-").expect("prefix");
        assert_eq!(hash.len(), 8);
        assert!(hash.bytes().all(|byte| byte.is_ascii_hexdigit() && !byte.is_ascii_uppercase()));
        // FNV-1a's offset basis for nothing; "a" then the separator, by hand:
        // ((0x811c9dc5 ^ 0x61) * 0x01000193 = 0xe40c292c, then ^ 0) * 0x01000193.
        assert_eq!(fnv1a(&[]), 0x811c_9dc5);
        assert_eq!(fnv1a(&[b"a"]), 0xe40c_292c_u32.wrapping_mul(0x0100_0193));
        assert_ne!(fnv1a(&[b"a", b"b"]), fnv1a(&[b"ab", b""]));
        assert_eq!(format!("{:08x}", fnv1a(&WEBAPP_COMPONENTS)), hash);
    }
}
