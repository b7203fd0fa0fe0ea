//! Golden images from Debian packages: `mmdebstrap` builds a root filesystem
//! from the release's main archive only (the point release, none of the
//! security updates since), the engine imports it, and it is registered as
//! an image with its package manifest.
//!
//! Everything a bootstrap writes on the host is under its work directory:
//! the tarball, and mmdebstrap's temporary root (its `TMPDIR`), where it
//! mounts `/dev`, `/proc` and `/sys` while it installs. A cancelled bootstrap
//! (Ctrl-C, SIGTERM: the caller's token) stops mmdebstrap the way a
//! terminal's Ctrl-C would, with SIGINT to its whole process group: its
//! processes unmount what they mounted and it removes its root. Then the
//! tarball and whatever is left of the scratch directory are removed, and an
//! image already imported is removed again: a cancelled bootstrap leaves no
//! file, process, image or row.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use autopatch_engine::{ContainerSpec, Engine};
use autopatch_store::{ImageRow, Store};
use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::build::{engine_reference, ownership_labels};
use crate::clock;
use crate::error::BuildError;
use crate::evidence;
use crate::progress::{BuildEvent, Progress};

/// How long an interrupted mmdebstrap gets to clean up (unmount, remove its
/// root) before its process group is killed.
const STOP_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct BootstrapRequest {
    /// The Debian codename, e.g. `bookworm`.
    pub suite: String,
    pub mirror: String,
    /// The image name (recipe name of the version), e.g. `golden`.
    pub name: String,
    pub version: String,
    /// Extra packages to include.
    pub include: Vec<String>,
    /// Where the temporary root filesystem tarball goes.
    pub work_dir: PathBuf,
}

/// Why a bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(
        "mmdebstrap is not installed; install it with `apt-get install mmdebstrap` (or run scripts/setup-host.sh)"
    )]
    MissingTool,
    #[error("mmdebstrap failed (exit {code}); its last output:\n{output}")]
    Mmdebstrap { code: i32, output: String },
    #[error("failed to run mmdebstrap")]
    Spawn(#[source] std::io::Error),
    /// The caller's token was cancelled: nothing was made, nothing is left.
    #[error("the bootstrap was cancelled")]
    Cancelled,
    /// mmdebstrap was killed before it unmounted what it had mounted in its
    /// root: removing the directory would reach into what the mounts show.
    #[error(
        "mmdebstrap left file systems mounted under {path}; unmount them (`umount -R {path}`), then remove the directory"
    )]
    LeftMounted { path: String },
    #[error("failed to remove {path}")]
    Cleanup {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Build(#[from] BuildError),
}

impl From<autopatch_engine::EngineError> for BootstrapError {
    fn from(error: autopatch_engine::EngineError) -> BootstrapError {
        BootstrapError::Build(BuildError::Engine(error))
    }
}

impl From<autopatch_store::StoreError> for BootstrapError {
    fn from(error: autopatch_store::StoreError) -> BootstrapError {
        BootstrapError::Build(BuildError::Store(error))
    }
}

/// Builds, imports and registers a golden image. Returns its image row.
/// Runs to its end; [`bootstrap_cancellable`] stops when asked.
pub async fn bootstrap<E: Engine>(
    engine: &Arc<E>,
    store: &Arc<Store>,
    request: &BootstrapRequest,
    progress: &dyn Progress,
) -> Result<ImageRow, BootstrapError> {
    bootstrap_cancellable(engine, store, request, progress, &CancellationToken::new()).await
}

/// [`bootstrap`], stopped by `cancel`: mmdebstrap is interrupted and waited
/// for, its files are removed, an image already imported is removed, and the
/// answer is [`BootstrapError::Cancelled`]. An import under way is let finish
/// first (an upload dropped half-way may still end in a tagged image the
/// engine makes after the caller has looked), then removed.
pub async fn bootstrap_cancellable<E: Engine>(
    engine: &Arc<E>,
    store: &Arc<Store>,
    request: &BootstrapRequest,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<ImageRow, BootstrapError> {
    fs_err::create_dir_all(&request.work_dir).map_err(|source| BuildError::Artifacts { source })?;
    let stem = format!("{}-{}", request.name, std::process::id());
    let tarball = request.work_dir.join(format!("{stem}.tar"));
    // Absolute: mmdebstrap makes its root in it and changes directory.
    let scratch = std::path::absolute(request.work_dir.join(format!("{stem}.tmp")))
        .map_err(|source| BuildError::Artifacts { source })?;
    fs_err::create_dir_all(&scratch).map_err(|source| BuildError::Artifacts { source })?;
    let started = tokio::time::Instant::now();
    progress.event(BuildEvent::Note {
        message: format!("mmdebstrap {} from {} (main only)", request.suite, request.mirror),
    });
    let built = run_mmdebstrap(request, &tarball, &scratch, cancel).await;
    // mmdebstrap has ended, however: what it leaves in its scratch directory
    // goes, and the tarball unless it is complete.
    let cleaned = remove_scratch(&scratch);
    if built.is_err() {
        remove_file(&tarball)?;
    }
    built?;
    if let Err(error) = cleaned {
        remove_file(&tarball)?;
        return Err(error);
    }
    if cancel.is_cancelled() {
        remove_file(&tarball)?;
        return Err(BootstrapError::Cancelled);
    }
    progress.event(BuildEvent::Timing {
        what: "mmdebstrap".into(),
        duration_ms: crate::toe::millis(started.elapsed()),
    });

    let build_number = store
        .images()?
        .iter()
        .filter(|image| image.recipe == request.name && image.recipe_version == request.version)
        .map(|image| image.build_number)
        .max()
        .unwrap_or(0)
        + 1;
    let version = format!("{}/{}/{build_number}", request.name, request.version);
    let reference =
        engine_reference(store.engine_namespace(), &request.name, &request.version, build_number);
    let started = tokio::time::Instant::now();
    let changes = vec![
        r#"CMD ["/bin/bash"]"#.to_owned(),
        format!("LABEL autopatch.image-version={version}"),
        format!("LABEL autopatch.bootstrap={}", request.suite),
    ];
    let imported = engine.image_import(&tarball, &reference, &changes).await;
    remove_file(&tarball)?;
    let imported = imported?;
    if cancel.is_cancelled() {
        engine.image_remove(&reference).await?;
        return Err(BootstrapError::Cancelled);
    }
    progress.event(BuildEvent::Timing {
        what: "import".into(),
        duration_ms: crate::toe::millis(started.elapsed()),
    });

    // Read the manifest in a throwaway container.
    let mut spec = ContainerSpec {
        image: imported.id.clone(),
        cmd: vec!["sleep".into(), "infinity".into()],
        init: true,
        ..ContainerSpec::default()
    };
    spec.labels = ownership_labels("bootstrap");
    let container = engine.container_create(&spec).await?;
    let reading = async {
        engine.container_start(&container.id).await?;
        evidence::read_manifest(engine.as_ref(), &container.id).await
    };
    let reading = tokio::select! {
        biased;
        () = cancel.cancelled() => Err(BootstrapError::Cancelled),
        reading = reading => reading.map_err(BootstrapError::from),
    };
    engine.container_remove(&container.id).await?;
    let reading = match reading {
        Ok(reading) => reading,
        Err(error) => {
            engine.image_remove(&reference).await?;
            return Err(error);
        }
    };
    let image_evidence = evidence::root_evidence(&version, &reading);
    let row = ImageRow {
        version,
        recipe: request.name.clone(),
        recipe_version: request.version.clone(),
        build_number,
        build_id: None,
        pipeline: None,
        engine_image_id: imported.id,
        engine_reference: reference,
        parent: None,
        parent_engine_image_id: None,
        manifest: reading.text,
        evidence: serde_json::to_string(&image_evidence).unwrap_or_else(|_| "{}".into()),
        created_at: clock::now(),
    };
    store.insert_image(&row)?;
    Ok(row)
}

/// Runs mmdebstrap to its end, or until `cancel` (then stops it and answers
/// [`BootstrapError::Cancelled`]).
async fn run_mmdebstrap(
    request: &BootstrapRequest,
    tarball: &Path,
    scratch: &Path,
    cancel: &CancellationToken,
) -> Result<(), BootstrapError> {
    let mut command = Command::new("mmdebstrap");
    command.arg("--variant=minbase").arg("--quiet");
    if !request.include.is_empty() {
        command.arg(format!("--include={}", request.include.join(",")));
    }
    command
        .arg(&request.suite)
        .arg(tarball)
        .arg(format!("deb {} {} main", request.mirror, request.suite))
        // Its temporary root, and the mounts in it, in the work directory.
        .env("TMPDIR", scratch)
        // Its own process group: a terminal's Ctrl-C reaches autopatch
        // alone, which stops mmdebstrap the one way every signal does.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(BootstrapError::MissingTool);
        }
        Err(error) => return Err(BootstrapError::Spawn(error)),
    };
    let mut stderr = child.stderr.take();
    let read_stderr = async move {
        let mut text = Vec::new();
        if let Some(stderr) = stderr.as_mut() {
            // What could be read is enough for an error message.
            let _ = stderr.read_to_end(&mut text).await;
        }
        text
    };
    let wait = async {
        tokio::select! {
            status = child.wait() => (status, false),
            () = cancel.cancelled() => (stop(&mut child).await, true),
        }
    };
    let ((status, cancelled), stderr) = tokio::join!(wait, read_stderr);
    let status = status.map_err(BootstrapError::Spawn)?;
    if cancelled {
        return Err(BootstrapError::Cancelled);
    }
    if !status.success() {
        let text = String::from_utf8_lossy(&stderr);
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        return Err(BootstrapError::Mmdebstrap {
            code: status.code().unwrap_or(-1),
            output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(())
}

/// Stops mmdebstrap as a terminal's Ctrl-C does: SIGINT to its whole process
/// group (its worker processes handle it: they unmount what they mounted and
/// the main process removes its root), then waits; after [`STOP_GRACE`] the
/// group is killed.
async fn stop(child: &mut Child) -> std::io::Result<ExitStatus> {
    signal_group(child, rustix::process::Signal::INT);
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            signal_group(child, rustix::process::Signal::KILL);
            child.wait().await
        }
    }
}

/// Signals the process group `child` leads. Only while `child` has not been
/// waited for: until then its pid, the group's id, cannot be reused.
fn signal_group(child: &Child, signal: rustix::process::Signal) {
    let pid = child.id().and_then(|pid| i32::try_from(pid).ok());
    if let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) {
        // The group may be gone already: nothing to stop then.
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Removes mmdebstrap's scratch directory, unless something is still
/// mounted under it (an mmdebstrap killed before it could unmount).
fn remove_scratch(scratch: &Path) -> Result<(), BootstrapError> {
    let absolute = std::fs::canonicalize(scratch).unwrap_or_else(|_| scratch.to_path_buf());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if mounted_under(&mountinfo, &absolute) {
        return Err(BootstrapError::LeftMounted { path: absolute.display().to_string() });
    }
    match std::fs::remove_dir_all(scratch) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(BootstrapError::Cleanup { path: scratch.display().to_string(), source }),
    }
}

fn remove_file(path: &Path) -> Result<(), BootstrapError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(BootstrapError::Cleanup { path: path.display().to_string(), source }),
    }
}

/// Whether `/proc/self/mountinfo` text lists a mount point at or under `dir`.
/// Its fifth field is the mount point, with space, tab, newline and backslash
/// written as octal escapes.
fn mounted_under(mountinfo: &str, dir: &Path) -> bool {
    let dir = dir.to_string_lossy();
    let dir = dir.trim_end_matches('/');
    mountinfo.lines().filter_map(|line| line.split(' ').nth(4)).map(unescape_octal).any(|point| {
        point == dir || point.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
    })
}

fn unescape_octal(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(index) = rest.find('\\') {
        out.push_str(&rest[..index]);
        let digits = rest.get(index + 1..index + 4);
        match digits.and_then(|digits| u8::from_str_radix(digits, 8).ok()) {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[index + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[index + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_under_the_scratch_directory_are_found() {
        let mountinfo = "\
27 1 0:26 / / rw,relatime - overlay overlay rw
105 27 0:75 / /w/golden-7.tmp/mmdebstrap.AID/dev/pts rw - devpts none rw
118 27 0:76 / /w/my\\040dir.tmp/proc ro - proc proc ro
";
        assert!(mounted_under(mountinfo, Path::new("/w/golden-7.tmp")));
        assert!(mounted_under(mountinfo, Path::new("/w/golden-7.tmp/")));
        assert!(mounted_under(mountinfo, Path::new("/w/my dir.tmp")));
        assert!(!mounted_under(mountinfo, Path::new("/w/golden-7")));
        assert!(!mounted_under(mountinfo, Path::new("/w/golden-8.tmp")));
    }
}
