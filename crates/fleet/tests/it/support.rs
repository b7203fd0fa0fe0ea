//! Shared set-up: the engine (or a clear skip), the golden test image
//! (bootstrapped with mmdebstrap when missing), a fresh store and instance
//! folder per test, and a guard that removes what a test's group left.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autopatch_engine::{DockerEngine, Engine, EngineError};
use autopatch_fleet::{Fleet, GROUP_LABEL};
use autopatch_store::Store;

/// The golden test image every crate's integration tests share.
pub(crate) const GOLDEN: &str = "localhost/autopatch-test/golden:bookworm";

/// Connects like the product does; `None` (after saying why) when no engine
/// answers, so the tests skip rather than fail on a machine without one.
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
pub(crate) async fn engine() -> Option<Arc<DockerEngine>> {
    match DockerEngine::connect().await {
        Ok(engine) => Some(Arc::new(engine)),
        Err(error @ EngineError::Unreachable { .. }) => {
            eprintln!("skipping: {error} (run scripts/setup-host.sh to start Podman)");
            None
        }
        Err(error) => panic!("the engine answered but failed: {error:?}"),
    }
}

/// Makes sure the engine has [`GOLDEN`] (a minbase bookworm root filesystem,
/// `CMD ["/bin/bash"]`), building it with mmdebstrap when absent (about 20 s).
pub(crate) async fn golden(engine: &DockerEngine) -> String {
    static READY: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);
    let mut ready = READY.lock().await;
    if !*ready && engine.image_inspect(GOLDEN).await.expect("inspect").is_none() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let tarball = directory.path().join("golden.tar");
        let status = tokio::process::Command::new("mmdebstrap")
            .args(["--quiet", "--variant=minbase", "--format=tar", "bookworm"])
            .arg(&tarball)
            .arg("deb http://deb.debian.org/debian bookworm main")
            .status()
            .await
            .expect("mmdebstrap runs");
        assert!(status.success(), "mmdebstrap exited with {status}");
        engine
            .image_import(&tarball, GOLDEN, &[r#"CMD ["/bin/bash"]"#.to_string()])
            .await
            .expect("import the golden image");
    }
    *ready = true;
    engine.image_inspect(GOLDEN).await.expect("inspect").expect("the golden image").id
}

/// A name no other test (or test run) uses.
pub(crate) fn unique(kind: &str) -> String {
    format!("fleet-it-{}-{kind}", std::process::id())
}

/// A test's own store, instance folders and fleet (1 s interval).
pub(crate) struct Fixture {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) engine: Arc<DockerEngine>,
    pub(crate) store: Arc<Store>,
    pub(crate) instances_dir: PathBuf,
    pub(crate) fleet: Fleet<DockerEngine>,
}

impl Fixture {
    pub(crate) fn new(engine: Arc<DockerEngine>) -> Fixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Arc::new(Store::open(&dir.path().join("autopatch.db")).expect("store"));
        let instances_dir = dir.path().join("instances");
        let fleet = Fleet::new(
            Arc::clone(&engine),
            Arc::clone(&store),
            instances_dir.clone(),
            Duration::from_secs(1),
        );
        Fixture { _dir: dir, engine, store, instances_dir, fleet }
    }

    /// A fleet over the same engine, store and folders (a restarted daemon).
    pub(crate) fn restarted(&self) -> Fleet<DockerEngine> {
        Fleet::new(
            Arc::clone(&self.engine),
            Arc::clone(&self.store),
            self.instances_dir.clone(),
            Duration::from_secs(1),
        )
    }
}

/// Waits (real time, at most `limit`) until `condition` holds.
pub(crate) async fn wait_for(
    what: &str,
    limit: Duration,
    mut condition: impl AsyncFnMut() -> bool,
) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Removes a test group's containers, its network and the images the test
/// made when dropped, also when the test fails.
pub(crate) struct Cleanup {
    pub(crate) engine: Arc<DockerEngine>,
    pub(crate) group: String,
    pub(crate) network: String,
    pub(crate) images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let engine = Arc::clone(&self.engine);
        let label = [(GROUP_LABEL.to_string(), self.group.clone())];
        let network = self.network.clone();
        let images = self.images.clone();
        // Drop cannot await: remove from a thread with its own runtime.
        let removal = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(containers) = engine.container_list(&label).await {
                    for container in containers {
                        let _ = engine.container_remove(&container.id).await;
                    }
                }
                let _ = engine.network_remove(&network).await;
                for image in images {
                    let _ = engine.image_remove(&image).await;
                }
            });
        });
        let _ = removal.join();
    }
}
