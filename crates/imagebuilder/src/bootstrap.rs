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
//!
//! A bootstrap whose process was killed (SIGKILL) cannot clean up: its
//! mmdebstrap, in a process group of its own, goes on alone, and its files
//! stay. Each bootstrap's files are therefore claimed by a lock file
//! (`<stem>.lock`, flocked, and mmdebstrap's stdout, so the lock is held as
//! long as autopatch or any mmdebstrap process of that bootstrap runs), and
//! every bootstrap first removes the files of earlier ones whose lock is
//! free: never a running one's, and never a directory something is still
//! mounted under (that is reported instead). mmdebstrap's output goes to a
//! file (`<stem>.log`), not a pipe, so that one left alone is not killed by
//! SIGPIPE half-way (with its file systems still mounted) but ends as it
//! would have, or cleans up when interrupted.
//!
//! The image goes the same way: it is imported under a temporary tag named
//! after the bootstrap's stem (`localhost/autopatch-bootstrap/<namespace>/
//! <stem>:import`), its manifest is read in a container labelled with the
//! stem, and only then is it registered, with the work directory locked:
//! its version tag, its image row (the commit point), and the temporary tag
//! removed. A bootstrap killed before that leaves an image only a dead
//! stem's temporary tag names; the next bootstrap removes it with the
//! stem's files (and its container, and a version tag it had without a
//! row), and only untags an image that was registered.

use std::collections::BTreeSet;
use std::fs::{File, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use autopatch_engine::{ContainerSpec, Engine};
use autopatch_store::{ImageRow, Store};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::build::{NAMESPACE_LABEL, engine_reference, namespaced_labels};
use crate::clock;
use crate::error::BuildError;
use crate::evidence;
use crate::progress::{BuildEvent, Progress};

/// How long an interrupted mmdebstrap gets to clean up (unmount, remove its
/// root) before its process group is killed.
const STOP_GRACE: Duration = Duration::from_secs(60);

/// How many lines of mmdebstrap's output a failure shows.
const OUTPUT_LINES: usize = 20;

/// Label on the container a bootstrap reads its image's manifest in: the
/// bootstrap's stem, so that a later bootstrap removes it once that stem is
/// dead.
const STEM_LABEL: &str = "autopatch.bootstrap-stem";

/// The temporary tag a bootstrap imports its image under, until it is
/// registered: named after the bootstrap's stem, in its state directory's
/// namespace.
fn import_reference(namespace: &str, stem: &str) -> String {
    format!("localhost/autopatch-bootstrap/{namespace}/{stem}:import")
}

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
    /// Another bootstrap of the same name and version registered the build
    /// number this one had imported its image as, while this one ran.
    #[error(
        "image {version} was registered by another bootstrap while this one ran; nothing was registered: run it again for the next build number"
    )]
    VersionTaken { version: String },
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
    let work_dir = &request.work_dir;
    fs_err::create_dir_all(work_dir).map_err(|source| BuildError::Artifacts { source })?;
    let files = {
        let _work_dir = lock_work_dir(work_dir)?;
        // The images of bootstraps that died first: a stem whose image could
        // not be removed keeps its files (its lock file names it), for a
        // later bootstrap to try again.
        let mut kept = BTreeSet::new();
        for (stem, owner) in dead_stems(work_dir) {
            let whose = whose(owner);
            match remove_stem_image(engine.as_ref(), store, &stem, &whose).await {
                Ok(Some(message)) => progress.event(BuildEvent::Note { message }),
                Ok(None) => {}
                Err(error) => {
                    progress.event(BuildEvent::Note {
                        message: format!(
                            "could not remove the image an earlier bootstrap{whose} imported \
                             ({}); a later bootstrap tries again: {}",
                            import_reference(store.engine_namespace(), &stem),
                            crate::build::error_chain(&error)
                        ),
                    });
                    kept.insert(stem);
                }
            }
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for message in remove_leftovers(work_dir, &mountinfo, &kept) {
            progress.event(BuildEvent::Note { message });
        }
        Files::claim(work_dir, &request.name)?
    };
    let result = bootstrap_claimed(engine, store, request, &files, progress, cancel).await;
    files.release();
    result
}

/// [`bootstrap_cancellable`] once its files are claimed.
async fn bootstrap_claimed<E: Engine>(
    engine: &Arc<E>,
    store: &Arc<Store>,
    request: &BootstrapRequest,
    files: &Files,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<ImageRow, BootstrapError> {
    let tarball = &files.tarball;
    let scratch = &files.scratch;
    fs_err::create_dir_all(scratch).map_err(|source| BuildError::Artifacts { source })?;
    let started = tokio::time::Instant::now();
    progress.event(BuildEvent::Note {
        message: format!("mmdebstrap {} from {} (main only)", request.suite, request.mirror),
    });
    let built = run_mmdebstrap(request, files, cancel).await;
    // mmdebstrap has ended, however: what it leaves in its scratch directory
    // goes, and the tarball unless it is complete.
    let cleaned = remove_scratch(scratch).and_then(|()| remove_file(&files.log));
    if built.is_err() {
        remove_file(tarball)?;
    }
    built?;
    if let Err(error) = cleaned {
        remove_file(tarball)?;
        return Err(error);
    }
    if cancel.is_cancelled() {
        remove_file(tarball)?;
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
    let namespace = store.engine_namespace();
    // Imported under the stem's temporary tag: until it is registered, a
    // later bootstrap knows it by the stem, and removes it once the stem is
    // dead (this process killed).
    let temporary = import_reference(namespace, &files.stem);
    let started = tokio::time::Instant::now();
    let changes = vec![
        r#"CMD ["/bin/bash"]"#.to_owned(),
        format!("LABEL autopatch.image-version={version}"),
        format!("LABEL autopatch.bootstrap={}", request.suite),
    ];
    files.record(&format!("import {temporary}"));
    let imported = engine.image_import(tarball, &temporary, &changes).await;
    remove_file(tarball)?;
    let imported = match imported {
        Ok(imported) => imported,
        Err(error) => {
            // The engine may have made it all the same.
            discard(engine.as_ref(), files, &temporary).await;
            return Err(error.into());
        }
    };
    if cancel.is_cancelled() {
        discard(engine.as_ref(), files, &temporary).await;
        return Err(BootstrapError::Cancelled);
    }
    progress.event(BuildEvent::Timing {
        what: "import".into(),
        duration_ms: crate::toe::millis(started.elapsed()),
    });

    // Read the manifest in a throwaway container, labelled with the stem.
    let mut spec = ContainerSpec {
        image: imported.id.clone(),
        cmd: vec!["sleep".into(), "infinity".into()],
        init: true,
        ..ContainerSpec::default()
    };
    spec.labels = namespaced_labels("bootstrap", namespace);
    spec.labels.insert(STEM_LABEL.to_owned(), files.stem.clone());
    let reading = async {
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
        reading
    };
    let reading = match reading.await {
        Ok(reading) => reading,
        Err(error) => {
            discard(engine.as_ref(), files, &temporary).await;
            return Err(error);
        }
    };
    let created_at = clock::now();
    let image_evidence = evidence::root_evidence(
        &version,
        &reading,
        created_at,
        crate::provenance::BuiltBy::current(),
    );
    let row = ImageRow {
        version,
        recipe: request.name.clone(),
        recipe_version: request.version.clone(),
        build_number,
        build_id: None,
        pipeline: None,
        engine_image_id: imported.id,
        engine_reference: engine_reference(
            namespace,
            &request.name,
            &request.version,
            build_number,
        ),
        parent: None,
        parent_engine_image_id: None,
        manifest: reading.text,
        evidence: serde_json::to_string(&image_evidence).unwrap_or_else(|_| "{}".into()),
        created_at,
    };
    register(engine.as_ref(), store, files, &temporary, &row, progress).await?;
    Ok(row)
}

/// Registers an imported image (`row`), with the work directory locked so
/// that bootstraps register one at a time: its version tag, then its row
/// (from then on it is registered), then its temporary tag goes. A version
/// tag that names another image without a row (what an autopatch killed
/// before there were temporary tags left) is removed first; a version that
/// is registered meanwhile is [`BootstrapError::VersionTaken`]. Whatever
/// fails before the row is written removes the image.
async fn register<E: Engine>(
    engine: &E,
    store: &Store,
    files: &Files,
    temporary: &str,
    row: &ImageRow,
    progress: &dyn Progress,
) -> Result<(), BootstrapError> {
    let _work_dir = lock_work_dir(&files.work_dir)?;
    let registered = async {
        if store.image(&row.version)?.is_some() {
            return Err(BootstrapError::VersionTaken { version: row.version.clone() });
        }
        if let Some(stale) = engine.image_inspect(&row.engine_reference).await?
            && stale.id != row.engine_image_id
        {
            // No row names the tag (the version has none); a row naming
            // the image under another tag keeps it, as that tag does.
            let rows = store.images()?;
            if !rows.iter().any(|other| same_image(&other.engine_image_id, &stale.id)) {
                engine.image_remove(&row.engine_reference).await?;
                progress.event(BuildEvent::Note {
                    message: format!(
                        "removed {}, an image no row names (an earlier bootstrap's, killed \
                         before it registered it)",
                        row.engine_reference
                    ),
                });
            }
        }
        engine.image_tag(&row.engine_image_id, &row.engine_reference).await?;
        if let Err(error) = store.insert_image(row) {
            let _ = engine.image_remove(&row.engine_reference).await;
            return Err(error.into());
        }
        Ok(())
    };
    if let Err(error) = registered.await {
        discard(engine, files, temporary).await;
        return Err(error);
    }
    // Registered: a temporary tag left behind (the engine failed) is only
    // untagged by the next bootstrap, which finds it by the lock file kept.
    if let Err(error) = engine.image_remove(temporary).await {
        files.image_left.store(true, Ordering::SeqCst);
        progress.event(BuildEvent::Note {
            message: format!(
                "{} is registered, but its temporary tag {temporary} could not be removed (the \
                 next bootstrap removes it): {}",
                row.version,
                crate::build::error_chain(&error)
            ),
        });
    }
    Ok(())
}

/// Removes an imported image that will not be registered, by its temporary
/// tag; when the engine fails, the bootstrap's lock file is kept, so that
/// the next bootstrap removes it.
async fn discard<E: Engine>(engine: &E, files: &Files, temporary: &str) {
    if engine.image_remove(temporary).await.is_err() {
        files.image_left.store(true, Ordering::SeqCst);
    }
}

/// Whether two engine image ids name the same image (with or without the
/// `sha256:` prefix).
fn same_image(one: &str, other: &str) -> bool {
    one.trim_start_matches("sha256:") == other.trim_start_matches("sha256:")
}

/// " (autopatch pid N, gone)" for a message about a dead bootstrap.
fn whose(owner: Option<u32>) -> String {
    owner.map(|pid| format!(" (autopatch pid {pid}, gone)")).unwrap_or_default()
}

/// The stems in `work_dir` whose lock file is not locked: no process of
/// those bootstraps runs. With the work directory locked, none of them can
/// be locked again or claimed meanwhile. Each with the pid its lock file
/// names.
fn dead_stems(work_dir: &Path) -> Vec<(String, Option<u32>)> {
    stems(work_dir, &[".lock"])
        .into_iter()
        .filter_map(|stem| {
            let path = FilePaths::of(work_dir, &stem).lock;
            let lock = std::fs::OpenOptions::new().write(true).open(&path).ok()?;
            lock.try_lock().ok()?;
            Some((stem, lock_owner(&path, "autopatch")))
        })
        .collect()
}

/// Removes what a dead bootstrap (`stem`) left in the engine: the container
/// it read the manifest in, and the image its temporary tag names, with any
/// version tag of it no image row names. An image that was registered (a
/// row names it) only loses its temporary tag. Returns what to tell the
/// user, if anything was there.
async fn remove_stem_image<E: Engine>(
    engine: &E,
    store: &Store,
    stem: &str,
    whose: &str,
) -> Result<Option<String>, BootstrapError> {
    let namespace = store.engine_namespace();
    let labels = [
        (STEM_LABEL.to_owned(), stem.to_owned()),
        (NAMESPACE_LABEL.to_owned(), namespace.to_owned()),
    ];
    for container in engine.container_list(&labels).await? {
        engine.container_remove(&container.id).await?;
    }
    let temporary = import_reference(namespace, stem);
    let Some(image) = engine.image_inspect(&temporary).await? else {
        return Ok(None);
    };
    let rows = store.images()?;
    let registered = rows.iter().find(|row| same_image(&row.engine_image_id, &image.id));
    let published = format!("localhost/autopatch/{namespace}/");
    for tag in &image.tags {
        let unregistered = !rows.iter().any(|row| &row.engine_reference == tag);
        if tag.starts_with(&published) && unregistered {
            engine.image_remove(tag).await?;
        }
    }
    if let Some(row) = registered
        && !image.tags.contains(&row.engine_reference)
    {
        // Its version tag is gone: put it back, or untagging would remove a
        // registered image.
        engine.image_tag(&image.id, &row.engine_reference).await?;
    }
    engine.image_remove(&temporary).await?;
    Ok(Some(match registered {
        Some(row) => format!(
            "removed the temporary tag {temporary} of {}, which an earlier bootstrap{whose} had \
             registered",
            row.version
        ),
        None => format!(
            "removed the image an earlier bootstrap{whose} had imported but not registered \
             ({temporary}, {})",
            image.id
        ),
    }))
}

/// Runs mmdebstrap to its end, or until `cancel` (then stops it and answers
/// [`BootstrapError::Cancelled`]).
async fn run_mmdebstrap(
    request: &BootstrapRequest,
    files: &Files,
    cancel: &CancellationToken,
) -> Result<(), BootstrapError> {
    // The lock file as its stdout (it writes the tarball to a file, so
    // nothing else comes there): every mmdebstrap process then holds the
    // bootstrap's lock, which stays held if autopatch is killed.
    let lock = files.lock.try_clone().map_err(BootstrapError::Spawn)?;
    let log = fs_err::File::create(&files.log)
        .map_err(|source| BuildError::Artifacts { source })?
        .into_parts()
        .0;
    let mut command = Command::new("mmdebstrap");
    // Not --quiet: its output says why it failed (apt's "Could not
    // connect", a package that did not install).
    command.arg("--variant=minbase");
    if !request.include.is_empty() {
        command.arg(format!("--include={}", request.include.join(",")));
    }
    command
        .arg(&request.suite)
        .arg(&files.tarball)
        .arg(format!("deb {} {} main", request.mirror, request.suite))
        // Its temporary root, and the mounts in it, in the work directory.
        .env("TMPDIR", &files.scratch)
        // Its own process group: a terminal's Ctrl-C reaches autopatch
        // alone, which stops mmdebstrap the one way every signal does.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::from(lock))
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(BootstrapError::MissingTool);
        }
        Err(error) => return Err(BootstrapError::Spawn(error)),
    };
    if let Some(pid) = child.id() {
        // For a later bootstrap that finds it running without autopatch:
        // its process group, to name in the report.
        files.record(&format!("mmdebstrap {pid}"));
    }
    let (status, cancelled) = tokio::select! {
        status = child.wait() => (status, false),
        () = cancel.cancelled() => (stop(&mut child).await, true),
    };
    let status = status.map_err(BootstrapError::Spawn)?;
    if cancelled {
        return Err(BootstrapError::Cancelled);
    }
    if !status.success() {
        return Err(BootstrapError::Mmdebstrap {
            code: status.code().unwrap_or(-1),
            // What could be read is enough for an error message.
            output: why_it_failed(&String::from_utf8_lossy(
                &std::fs::read(&files.log).unwrap_or_default(),
            )),
        });
    }
    Ok(())
}

/// The last lines of mmdebstrap's output that say why it failed: its own
/// `I:` progress lines, apt's `Ign:` lines (retried, then reported as
/// `Err:`) and the warning that downloads run unsandboxed as root say
/// nothing about it and are left out, unless nothing else is there.
fn why_it_failed(output: &str) -> String {
    let noise = |line: &&str| {
        line.starts_with("I: ")
            || line.starts_with("Ign:")
            || line.starts_with("W: Download is performed unsandboxed")
            || line.trim().is_empty()
    };
    let mut lines: Vec<&str> = output.lines().filter(|line| !noise(line)).collect();
    if lines.is_empty() {
        lines = output.lines().collect();
    }
    lines[lines.len().saturating_sub(OUTPUT_LINES)..].join("\n")
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

/// A bootstrap's files in the work directory, named by one stem
/// (`<name>-<pid>`): `<stem>.lock`, flocked while it runs (its first line
/// `autopatch <pid>`, then `mmdebstrap <pid>` once that started),
/// mmdebstrap's output `<stem>.log`, the tarball `<stem>.tar` and
/// mmdebstrap's temporary root `<stem>.tmp/`.
struct Files {
    work_dir: PathBuf,
    stem: String,
    lock_path: PathBuf,
    /// Held: the lock lives as long as this and mmdebstrap's processes.
    lock: File,
    log: PathBuf,
    tarball: PathBuf,
    scratch: PathBuf,
    /// An image under the temporary tag could not be removed: the lock
    /// file stays, so the next bootstrap removes it.
    image_left: AtomicBool,
}

impl Files {
    /// Makes and locks this bootstrap's lock file, under a stem no files
    /// have (a leftover that could not be removed keeps its own). Called with
    /// the work directory locked, so no one looks for leftovers meanwhile.
    fn claim(work_dir: &Path, name: &str) -> Result<Files, BootstrapError> {
        let artifacts = |source| BootstrapError::Build(BuildError::Artifacts { source });
        // Absolute: mmdebstrap makes its root in it and changes directory.
        let work_dir = std::path::absolute(work_dir).map_err(artifacts)?;
        let pid = std::process::id();
        for attempt in 1u32.. {
            let stem = match attempt {
                1 => format!("{name}-{pid}"),
                n => format!("{name}-{pid}-{n}"),
            };
            let files = FilePaths::of(&work_dir, &stem);
            if files.tarball.exists() || files.scratch.exists() || files.log.exists() {
                continue;
            }
            let lock =
                match std::fs::OpenOptions::new().write(true).create_new(true).open(&files.lock) {
                    Ok(lock) => lock,
                    Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(error) => return Err(artifacts(error)),
                };
            let claimed = Files {
                work_dir: work_dir.clone(),
                stem,
                lock_path: files.lock,
                lock,
                log: files.log,
                tarball: files.tarball,
                scratch: files.scratch,
                image_left: AtomicBool::new(false),
            };
            let locked = match claimed.lock.try_lock() {
                Ok(()) => Ok(()),
                Err(TryLockError::WouldBlock) => {
                    Err(std::io::Error::other("the new lock file is locked already"))
                }
                Err(TryLockError::Error(error)) => Err(error),
            };
            if let Err(error) = locked.and_then(|()| writeln!(&claimed.lock, "autopatch {pid}")) {
                let _ = std::fs::remove_file(&claimed.lock_path);
                return Err(artifacts(error));
            }
            return Ok(claimed);
        }
        unreachable!("the attempts go on until a stem is free")
    }

    /// Appends a line to the lock file (best effort: it only informs).
    fn record(&self, line: &str) {
        let _ = writeln!(&self.lock, "{line}");
    }

    /// Removes the lock file once the other files are gone (when they are
    /// not, a later bootstrap finds them by it), with the work directory
    /// locked. Best effort: a lock file left behind alone is removed by the
    /// next bootstrap.
    fn release(self) {
        let Ok(_work_dir) = lock_work_dir(&self.work_dir) else {
            return;
        };
        let files_left = self.tarball.exists() || self.scratch.exists() || self.log.exists();
        if !files_left && !self.image_left.load(Ordering::SeqCst) {
            let _ = std::fs::remove_file(&self.lock_path);
        }
        drop(self.lock);
    }
}

/// The paths of the files of a bootstrap's stem.
struct FilePaths {
    lock: PathBuf,
    log: PathBuf,
    tarball: PathBuf,
    scratch: PathBuf,
}

impl FilePaths {
    fn of(work_dir: &Path, stem: &str) -> FilePaths {
        FilePaths {
            lock: work_dir.join(format!("{stem}.lock")),
            log: work_dir.join(format!("{stem}.log")),
            tarball: work_dir.join(format!("{stem}.tar")),
            scratch: work_dir.join(format!("{stem}.tmp")),
        }
    }
}

/// Locks the work directory itself (flock on the directory), waiting for
/// it: held while a bootstrap claims its files, looks for leftovers or
/// releases its files, so that those never cross.
fn lock_work_dir(work_dir: &Path) -> Result<File, BootstrapError> {
    let artifacts = |source| BootstrapError::Build(BuildError::Artifacts { source });
    let dir = File::open(work_dir).map_err(artifacts)?;
    dir.lock().map_err(artifacts)?;
    Ok(dir)
}

/// Removes what earlier bootstraps left in `work_dir` (a process killed
/// before it could clean up): the files of every stem whose lock file is
/// not locked (no process of that bootstrap runs), or, for files without a
/// lock file (made before there were lock files), whose process, named by
/// the stem's last part, is gone. A running bootstrap's files are never
/// touched, nor a scratch directory something is mounted under. Returns
/// what to tell the user: what was removed, and what was not and why.
fn remove_leftovers(work_dir: &Path, mountinfo: &str, kept: &BTreeSet<String>) -> Vec<String> {
    let mut said = Vec::new();
    for stem in stems(work_dir, &[".lock", ".log", ".tar", ".tmp"]).difference(kept) {
        let stem = stem.as_str();
        let files = FilePaths::of(work_dir, stem);
        // Held until the files are removed: no one can start using them.
        let (owner, _lock) = match std::fs::OpenOptions::new().write(true).open(&files.lock) {
            Ok(lock) => {
                let owner = lock_owner(&files.lock, "autopatch");
                match lock.try_lock() {
                    Ok(()) => (owner, Some(lock)),
                    Err(TryLockError::WouldBlock) => {
                        if let Some(pid) = owner.filter(|pid| !process_running(*pid)) {
                            let group = lock_owner(&files.lock, "mmdebstrap")
                                .map(|pid| format!(" (`kill -INT -- -{pid}` stops it)"))
                                .unwrap_or_default();
                            said.push(format!(
                                "an earlier bootstrap's mmdebstrap is still running after its \
                                 autopatch (pid {pid}) ended{group}; its files in {} are removed \
                                 by a later bootstrap once it has ended",
                                work_dir.display()
                            ));
                        }
                        continue;
                    }
                    Err(TryLockError::Error(_)) => continue,
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                // No lock file: an older autopatch's files, named `<name>-<pid>`.
                let pid = stem.rsplit_once('-').and_then(|(_, pid)| pid.parse::<u32>().ok());
                match pid {
                    Some(pid) if !process_running(pid) => (Some(pid), None),
                    _ => continue,
                }
            }
            Err(_) => continue,
        };
        let whose = whose(owner);
        let scratch = std::fs::canonicalize(&files.scratch).unwrap_or(files.scratch.clone());
        if mounted_under(mountinfo, &scratch) {
            said.push(format!(
                "an earlier bootstrap{whose} left file systems mounted under {}; unmount them \
                 (`umount -R {}`), then the next bootstrap removes its files",
                scratch.display(),
                scratch.display()
            ));
            continue;
        }
        let removed = remove_scratch(&files.scratch)
            .and_then(|()| remove_file(&files.tarball))
            .and_then(|()| remove_file(&files.log))
            .and_then(|()| remove_file(&files.lock));
        match removed {
            Ok(()) => said.push(format!(
                "removed what an earlier bootstrap{whose} left in {}: {stem}.*",
                work_dir.display()
            )),
            Err(error) => said.push(format!(
                "could not remove what an earlier bootstrap{whose} left: {}",
                crate::build::error_chain(&error)
            )),
        }
    }
    said
}

/// The stems of the files in `work_dir` whose names end in one of
/// `suffixes`, in order (none when it cannot be read).
fn stems(work_dir: &Path, suffixes: &[&str]) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return BTreeSet::new();
    };
    entries
        .map_while(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter_map(|name| {
            suffixes.iter().find_map(|suffix| name.strip_suffix(suffix).map(str::to_owned))
        })
        .collect()
}

/// The pid on the lock file's `<what> <pid>` line, if there is one.
fn lock_owner(lock: &Path, what: &str) -> Option<u32> {
    let text = std::fs::read_to_string(lock).ok()?;
    text.lines().find_map(|line| line.strip_prefix(what)?.trim().parse().ok())
}

/// Whether a process with that id is running: a zombie has ended (it only
/// waits for its parent to read its status). A reused pid makes a dead
/// owner look alive, which only delays recovery until that process ends.
pub(crate) fn process_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state ...`: the state is the first field after the last `)`.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X" | "x") | None)
}

/// Removes mmdebstrap's scratch directory, unless something is still
/// mounted under it (an mmdebstrap killed before it could unmount).
fn remove_scratch(scratch: &Path) -> Result<(), BootstrapError> {
    let absolute = std::fs::canonicalize(scratch).unwrap_or_else(|_| scratch.to_path_buf());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if mounted_under(&mountinfo, &absolute) {
        return Err(BootstrapError::LeftMounted { path: absolute.display().to_string() });
    }
    gone(scratch, std::fs::remove_dir_all(scratch))
}

fn remove_file(path: &Path) -> Result<(), BootstrapError> {
    gone(path, std::fs::remove_file(path))
}

/// The result of removing `path`: one that was not there is gone too.
fn gone(path: &Path, removed: std::io::Result<()>) -> Result<(), BootstrapError> {
    match removed {
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
    fn a_failure_shows_the_lines_that_say_why() {
        let output = "\
I: automatically chosen mode: root
I: using /w/golden-7.tmp/mmdebstrap.3ryx as tempdir
W: Download is performed unsandboxed as root as file /w/golden-7.tmp/mmdebstrap.3ryx/var/lib/apt/lists/partial couldn't be accessed by user _apt
I: running apt-get update...
Ign:1 http://127.0.0.1:9/debian bookworm InRelease
Err:1 http://127.0.0.1:9/debian bookworm InRelease
  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)
Reading package lists...
E: Failed to fetch http://127.0.0.1:9/debian/dists/bookworm/InRelease  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)
E: Some index files failed to download. They have been ignored, or old ones used instead.
E: apt-get update --error-on=any -oAPT::Status-Fd=<$fd> -oDpkg::Use-Pty=false failed
I: main() received signal PIPE: waiting for setup...
I: removing tempdir /w/golden-7.tmp/mmdebstrap.3ryx...
E: mmdebstrap failed to run
";
        assert_eq!(
            why_it_failed(output),
            "\
Err:1 http://127.0.0.1:9/debian bookworm InRelease
  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)
Reading package lists...
E: Failed to fetch http://127.0.0.1:9/debian/dists/bookworm/InRelease  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)
E: Some index files failed to download. They have been ignored, or old ones used instead.
E: apt-get update --error-on=any -oAPT::Status-Fd=<$fd> -oDpkg::Use-Pty=false failed
E: mmdebstrap failed to run"
        );
        // Only the last lines; and progress alone is still shown.
        let long: String = (1..=30).map(|n| format!("E: line {n}\n")).collect();
        assert!(why_it_failed(&long).starts_with("E: line 11\n"), "{}", why_it_failed(&long));
        assert_eq!(why_it_failed("I: killed\n"), "I: killed");
    }

    /// A pid no process has (one that has just ended).
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        child.id()
    }

    fn touch(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn leftovers_of_ended_bootstraps_go_but_not_a_running_ones_or_a_mounted_directory() {
        let dir = tempfile::tempdir().unwrap();
        let work = std::fs::canonicalize(dir.path()).unwrap();
        let me = std::process::id();
        let (dead, dead2) = (dead_pid(), dead_pid());

        // Ended: its lock is free.
        touch(&work.join(format!("golden-{dead}.lock")), &format!("autopatch {dead}\n"));
        touch(&work.join(format!("golden-{dead}.tar")), "partial");
        touch(&work.join(format!("golden-{dead}.log")), "I: running apt-get update...");
        std::fs::create_dir_all(work.join(format!("golden-{dead}.tmp/mmdebstrap.x/etc"))).unwrap();
        // Running: its lock is held (here by this test).
        let live = work.join(format!("golden-{me}.lock"));
        touch(&live, &format!("autopatch {me}\n"));
        let live_lock = File::options().write(true).open(&live).unwrap();
        live_lock.lock().unwrap();
        std::fs::create_dir(work.join(format!("golden-{me}.tmp"))).unwrap();
        // Running without its autopatch (killed): mmdebstrap holds the lock.
        let orphan = work.join(format!("web-{dead}.lock"));
        touch(&orphan, &format!("autopatch {dead}\nmmdebstrap 4242\n"));
        let orphan_lock = File::options().write(true).open(&orphan).unwrap();
        orphan_lock.lock().unwrap();
        touch(&work.join(format!("web-{dead}.tar")), "");
        // Ended, but something is still mounted in its root.
        touch(&work.join(format!("mounted-{dead2}.lock")), &format!("autopatch {dead2}\n"));
        std::fs::create_dir_all(work.join(format!("mounted-{dead2}.tmp/root/proc"))).unwrap();
        let mountinfo = format!(
            "27 1 0:26 / / rw - overlay overlay rw\n\
             118 27 0:76 / {}/mounted-{dead2}.tmp/root/proc rw - proc proc rw\n",
            work.display()
        );
        // From before lock files: named by their process.
        touch(&work.join(format!("old-{dead}.tar")), "");
        touch(&work.join(format!("old-{me}.tar")), "");

        let said = remove_leftovers(&work, &mountinfo, &BTreeSet::new());
        let mut left: Vec<String> = std::fs::read_dir(&work)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut expected = vec![
            format!("golden-{me}.lock"),
            format!("golden-{me}.tmp"),
            format!("mounted-{dead2}.lock"),
            format!("mounted-{dead2}.tmp"),
            format!("old-{me}.tar"),
            format!("web-{dead}.lock"),
            format!("web-{dead}.tar"),
        ];
        expected.sort();
        assert_eq!(left, expected, "{said:#?}");
        let work = work.display();
        assert_eq!(
            said,
            [
                format!(
                    "removed what an earlier bootstrap (autopatch pid {dead}, gone) left in {work}: golden-{dead}.*"
                ),
                format!(
                    "an earlier bootstrap (autopatch pid {dead2}, gone) left file systems mounted under {work}/mounted-{dead2}.tmp; unmount them (`umount -R {work}/mounted-{dead2}.tmp`), then the next bootstrap removes its files"
                ),
                format!(
                    "removed what an earlier bootstrap (autopatch pid {dead}, gone) left in {work}: old-{dead}.*"
                ),
                format!(
                    "an earlier bootstrap's mmdebstrap is still running after its autopatch (pid {dead}) ended (`kill -INT -- -4242` stops it); its files in {work} are removed by a later bootstrap once it has ended"
                ),
            ],
        );
    }

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
