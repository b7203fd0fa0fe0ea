//! Shared test support: connecting, unique names, the golden image and a
//! guard that removes what a test created.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use autopatch_engine::{
    ContainerSpec, DockerEngine, Engine, EngineError, OutputSink, OutputStream,
};

/// The golden image the container tests run: created once from Debian
/// packages with mmdebstrap when the engine does not have it yet.
pub(crate) const GOLDEN: &str = "localhost/autopatch-test/golden:bookworm";

/// The network every test container joins (left in place: it is shared).
pub(crate) const NETWORK: &str = "autopatch-engine-it";

/// The label every test container carries, so leftovers are easy to find.
pub(crate) const TEST_LABEL: &str = "autopatch-engine-it";

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Connects like the product does (`DOCKER_HOST`, then the standard sockets).
pub(crate) async fn engine() -> Result<DockerEngine, EngineError> {
    DockerEngine::connect().await
}

/// A name no other test (or test run) uses.
pub(crate) fn unique_name(kind: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("autopatch-engine-it-{}-{n}-{kind}", std::process::id())
}

/// Makes sure the engine has [`GOLDEN`], building it when absent (about 20 s),
/// and returns its reference.
pub(crate) async fn golden(
    engine: &DockerEngine,
) -> Result<&'static str, Box<dyn std::error::Error>> {
    static READY: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);
    let mut ready = READY.lock().await;
    if !*ready {
        if engine.image_inspect(GOLDEN).await?.is_none() {
            let tarball = golden_tarball().await?;
            engine.image_import(&tarball, GOLDEN, &[]).await?;
        }
        *ready = true;
    }
    Ok(GOLDEN)
}

/// A minbase bookworm root filesystem, cached in the target directory.
async fn golden_tarball() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let directory = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let tarball = directory.join("autopatch-engine-golden-bookworm.tar");
    if tarball.exists() {
        return Ok(tarball);
    }
    let partial =
        directory.join(format!("autopatch-engine-golden-{}.tar.partial", std::process::id()));
    let status = tokio::process::Command::new("mmdebstrap")
        .args(["--quiet", "--variant=minbase", "--format=tar", "bookworm"])
        .arg(&partial)
        .arg("deb http://deb.debian.org/debian bookworm main")
        .status()
        .await?;
    if !status.success() {
        return Err(format!("mmdebstrap exited with {status}").into());
    }
    fs_err::rename(&partial, &tarball)?;
    Ok(tarball)
}

/// A container spec on the test network, labelled as a test container,
/// running `sleep infinity` under an init.
pub(crate) fn sleeper(image: &str, name: &str) -> ContainerSpec {
    ContainerSpec {
        name: Some(name.to_string()),
        image: image.to_string(),
        cmd: vec!["sleep".to_string(), "infinity".to_string()],
        labels: [(TEST_LABEL.to_string(), name.to_string())].into(),
        network: Some(NETWORK.to_string()),
        init: true,
        ..Default::default()
    }
}

/// Removes the containers and images a test registered when dropped, also
/// when the test fails. Containers go first, so their images are free.
pub(crate) struct Cleanup {
    engine: DockerEngine,
    containers: Vec<String>,
    images: Vec<String>,
}

impl Cleanup {
    pub(crate) fn new(engine: &DockerEngine) -> Cleanup {
        Cleanup { engine: engine.clone(), containers: Vec::new(), images: Vec::new() }
    }

    pub(crate) fn container(&mut self, id_or_name: &str) {
        self.containers.push(id_or_name.to_string());
    }

    pub(crate) fn image(&mut self, reference: &str) {
        self.images.push(reference.to_string());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let engine = self.engine.clone();
        let containers = std::mem::take(&mut self.containers);
        let images = std::mem::take(&mut self.images);
        // Drop cannot await: remove from a thread with its own runtime.
        let removal = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build()
            else {
                return;
            };
            runtime.block_on(async {
                for container in containers.iter().rev() {
                    let _ = engine.container_remove(container).await;
                }
                for image in images.iter().rev() {
                    let _ = engine.image_remove(image).await;
                }
            });
        });
        let _ = removal.join();
    }
}

/// An output sink that keeps every chunk in order.
#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) chunks: Vec<(OutputStream, Vec<u8>)>,
}

impl Recorder {
    pub(crate) fn text(&self, stream: OutputStream) -> String {
        let bytes: Vec<u8> = self
            .chunks
            .iter()
            .filter(|(chunk_stream, _)| *chunk_stream == stream)
            .flat_map(|(_, bytes)| bytes.iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl OutputSink for Recorder {
    fn output(&mut self, stream: OutputStream, bytes: &[u8]) {
        self.chunks.push((stream, bytes.to_vec()));
    }
}

pub(crate) fn command(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|part| part.to_string()).collect()
}
