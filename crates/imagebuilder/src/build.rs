//! The build lifecycle, with Image Builder's state names:
//! `PENDING → BUILDING → TESTING → AVAILABLE`, or `FAILED` / `CANCELLED`.
//!
//! 1. Build stage: a container from the parent runs every component's
//!    `build` then `validate` phase. The parent's package manifest is read
//!    in it first, unless the parent is a registered image (its row has it).
//! 2. Snapshot: the container is committed to a build-private tag.
//! 3. Test stage: a fresh container from the snapshot runs the `test`
//!    phases. Meanwhile the result's manifest (and the upgraded packages'
//!    changelogs) are read in the build container, whose files are the
//!    snapshot's.
//! 4. Publish: the snapshot gets its version tag and the image row is written.
//!
//! Architecture invariant: a build that does not reach `AVAILABLE` publishes
//! nothing and leaves no container behind. Every container a build makes
//! carries the label `autopatch.build=<id>`, so [`Builder::recover`] can
//! remove what a dead runner left. A published image carries none of the
//! build container's ownership labels (they are committed empty), so
//! containers run from it are nobody's build containers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use autopatch_documents::PhaseName;
use autopatch_engine::{ContainerSpec, Engine, EngineError};
use autopatch_model::{ImageState, StepStatus, Timestamp};
use autopatch_store::{BuildComponentRow, BuildRow, ImageRow, NewBuild, Store};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::catalog;
use crate::clock;
use crate::error::BuildError;
use crate::evidence;
use crate::progress::{BuildEvent, Progress};
use crate::provenance::{BuildProvenance, BuiltBy, Checks, ComponentVersion};
use crate::toe::{self, ComponentRun, PhaseRecord, StageContext};
pub use autopatch_model::error_chain;

/// Label on every container and snapshot a build creates.
pub const BUILD_LABEL: &str = "autopatch.build";

/// Label on every container autopatch creates, with the pid of the process
/// that owns it, so [`Builder::recover`] can remove what a dead process left.
pub const OWNER_LABEL: &str = "autopatch.owner-pid";

/// Label on every container autopatch creates, with its role (`build`,
/// `test`, `check-updates`, `diff`, `bootstrap`, `instance`).
pub const ROLE_LABEL: &str = "autopatch.role";

/// Label on the containers a state directory's builds and update checks
/// create, with that state directory's engine namespace
/// ([`Store::engine_namespace`]): [`Builder::recover`] leaves another state
/// directory's containers to that directory's own recovery.
pub const NAMESPACE_LABEL: &str = "autopatch.namespace";

/// The labels every container autopatch creates carries: its role and its
/// owner process. [`Builder::ownership_labels`] adds the state directory.
pub fn ownership_labels(role: &str) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([
        (ROLE_LABEL.to_owned(), role.to_owned()),
        (OWNER_LABEL.to_owned(), std::process::id().to_string()),
    ])
}

/// [`ownership_labels`] and [`NAMESPACE_LABEL`]: the labels of a container
/// the work of the state directory whose engine namespace is `namespace`
/// creates.
pub(crate) fn namespaced_labels(
    role: &str,
    namespace: &str,
) -> std::collections::BTreeMap<String, String> {
    let mut labels = ownership_labels(role);
    labels.insert(NAMESPACE_LABEL.to_owned(), namespace.to_owned());
    labels
}

/// A label's value; an empty value counts as absent (a published image has
/// its build container's ownership labels committed empty, since a commit
/// cannot delete a label, and containers inherit its labels).
pub fn label_value<'a>(
    labels: &'a std::collections::BTreeMap<String, String>,
    key: &str,
) -> Option<&'a str> {
    labels.get(key).map(String::as_str).filter(|value| !value.is_empty())
}

/// The roles whose containers [`Builder::recover`] removes when their owner
/// process is gone.
const RECOVERED_ROLES: [&str; 5] = ["build", "test", "check-updates", "diff", "bootstrap"];

/// Whether `container` is one this code created for `role`. Build and test
/// containers are also named `autopatch-<role>-<build id>`: images published
/// before their ownership labels were cleared still carry
/// `autopatch.role=build` and a dead owner pid, and a container someone runs
/// from one (with an engine-chosen name) must not read as a build's.
fn created_for_role(container: &autopatch_engine::ContainerInfo, role: &str) -> bool {
    match role {
        "build" | "test" => {
            let name = container.name.trim_start_matches('/');
            name.strip_prefix(&format!("autopatch-{role}-"))
                .is_some_and(|build| build.starts_with("b-"))
        }
        _ => true,
    }
}

/// The engine network builds and instances use.
pub const NETWORK: &str = "autopatch";

/// The parent image, resolved to something the engine can run.
#[derive(Debug, Clone)]
pub struct ResolvedParent {
    /// As the recipe named it.
    pub requested: String,
    /// The autopatch image version, when the parent is one.
    pub image_version: Option<String>,
    /// What the engine runs (a tag or image id).
    pub engine_reference: String,
    pub engine_image_id: String,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// The parent's package manifest (`dpkg-query` output) as its image row
    /// stores it, when the parent is a registered image: the build uses it
    /// instead of reading the manifest in the build container.
    pub manifest: Option<String>,
}

/// Everything a build needs, resolved and validated beforehand.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub pipeline: Option<String>,
    pub recipe_name: String,
    pub recipe_version: String,
    /// The documents as run, saved in the artifact folder: (file name, text).
    pub documents: Vec<(String, String)>,
    pub components: Vec<ComponentRun>,
    pub parent: ResolvedParent,
    pub tests_enabled: bool,
    pub test_timeout: Duration,
    pub build_timeout: Duration,
    pub cpus: Option<f64>,
    pub memory_bytes: Option<u64>,
    /// Idempotency token: a second start with the same token returns the first build.
    pub client_token: Option<String>,
    /// Why the start condition built (what changed, or the updates
    /// pending), recorded as the build's `start-condition` event.
    pub start_reason: Option<String>,
    /// Who runs the build, recorded in its detailed output and evidence.
    pub built_by: BuiltBy,
    /// Why the caller would cancel the build (the signal it received), for
    /// the reason of a build its `cancel` token ended.
    pub cancel_cause: CancelCause,
}

/// Why a caller cancelled a build's token (`SIGTERM received by ...`): set
/// it before cancelling, and a build that ends `CANCELLED` says it in its
/// reason. Clones share the cause.
#[derive(Debug, Clone, Default)]
pub struct CancelCause(Arc<std::sync::OnceLock<String>>);

impl CancelCause {
    /// Records the cause; the first one set stays.
    pub fn set(&self, cause: impl Into<String>) {
        let _ = self.0.set(cause.into());
    }

    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// How a build ended.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub build: BuildRow,
    /// The published image, when the build reached `AVAILABLE`.
    pub image: Option<ImageRow>,
    /// False when the client token named an earlier build.
    pub started: bool,
}

/// Runs builds against an engine and a store.
pub struct Builder<E: Engine> {
    pub engine: Arc<E>,
    pub store: Arc<Store>,
    /// Root of the per-build artifact folders.
    pub artifacts_root: PathBuf,
}

/// Durations of the parts of a build that are not step commands, each its
/// own elapsed time. `total_ms` is the whole build's: the evidence runs
/// while the test stage does, so the parts add up to more.
#[derive(Debug, Default, Clone, Serialize)]
struct Timings {
    build_container_create_ms: u64,
    /// Reading the parent's manifest; about 0 when its image row has it.
    parent_manifest_ms: u64,
    build_stage_ms: u64,
    /// Overlaps `test_container_create_ms` and `test_stage_ms`.
    evidence_ms: u64,
    commit_ms: u64,
    test_container_create_ms: u64,
    test_stage_ms: u64,
    publish_ms: u64,
    cleanup_ms: u64,
    total_ms: u64,
}

/// `detailedoutput.json`: written as each step starts and ends (the
/// build's current state, `finished_at` null), then once more when the build
/// ends, by its runner or, when the runner died, by [`Builder::recover`]
/// (`ended_by_recovery`).
#[derive(Debug, Serialize)]
struct DetailedOutput<'a> {
    build_id: &'a str,
    image_version: String,
    pipeline: Option<&'a str>,
    /// The parent as the recipe names it (`webapp`, an engine reference).
    parent: &'a str,
    /// What it resolved to when the build started: the parent's image
    /// version (`webapp/1.0.0/2`), or the engine reference when it is not a
    /// registered image.
    parent_resolved: &'a str,
    parent_engine_image_id: &'a str,
    /// The component versions the build runs, in recipe order (those
    /// without a phase in a stage too).
    components: Vec<ComponentVersion>,
    /// The local account and host running the build (not an AWS identity).
    built_by: &'a BuiltBy,
    /// Where the parent's manifest came from: `image row` (a registered
    /// parent's stored manifest) or `build container` (read before the
    /// first step).
    parent_manifest_source: &'static str,
    state: &'static str,
    reason: Option<&'a str>,
    started_at: String,
    finished_at: Option<String>,
    ended_by_recovery: bool,
    timings: &'a Timings,
    phases: &'a [PhaseRecord],
}

/// The name of a build's detailed output in its artifact folder.
const DETAILED_OUTPUT: &str = "detailedoutput.json";

impl<E: Engine + 'static> Builder<E> {
    /// The labels of a container this state directory's work creates:
    /// [`ownership_labels`] and [`NAMESPACE_LABEL`].
    pub fn ownership_labels(&self, role: &str) -> std::collections::BTreeMap<String, String> {
        namespaced_labels(role, self.store.engine_namespace())
    }

    /// Runs a build to its end. `cancel` (or a cancel request in the store)
    /// stops it, ending `CANCELLED`.
    pub async fn run(
        &self,
        request: &BuildRequest,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<BuildOutcome, BuildError> {
        let build_id = new_build_id();
        let artifacts_root = self.artifacts_root.display().to_string();
        let (build, created) = self.store.create_build(&NewBuild {
            id: &build_id,
            pipeline: request.pipeline.as_deref(),
            recipe: &request.recipe_name,
            recipe_version: &request.recipe_version,
            client_token: request.client_token.as_deref(),
            parent_image: &request.parent.requested,
            artifact_dir_root: &artifacts_root,
            owner_pid: Some(std::process::id()),
            now: clock::now(),
        })?;
        if !created {
            let image = self.store.image(&build.image_version())?;
            return Ok(BuildOutcome { build, image, started: false });
        }
        progress.event(BuildEvent::State { state: ImageState::Pending, reason: None });

        // Watch the store for a cancel request from another process.
        let watcher_cancel = cancel.child_token();
        let watcher = {
            let store = Arc::clone(&self.store);
            let token = watcher_cancel.clone();
            let id = build.id.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                    if store.cancel_requested(&id).unwrap_or(false) {
                        token.cancel();
                        return;
                    }
                }
            })
        };

        let started_at = clock::now();
        let mut record = RunRecord {
            started_at,
            timings: Timings::default(),
            phases: Vec::new(),
            pending_removal: None,
        };
        let total = tokio::time::Instant::now();
        let result = self.execute(&build, request, progress, &watcher_cancel, &mut record).await;

        // Whatever happened, leave no container and no unpublished snapshot.
        let cleanup = tokio::time::Instant::now();
        // The build container's removal (started when the evidence was
        // read) goes on while the rest is removed.
        let pending = record.pending_removal.take();
        let removing = pending.as_ref().map(|removal| removal.container.clone());
        let (removed, rest) = tokio::join!(
            async {
                match pending {
                    Some(removal) => matches!(removal.task.await, Ok(Ok(()))),
                    None => true,
                }
            },
            self.remove_build_resources(&build.id, removing.as_deref()),
        );
        // A failed removal is retried with the rest.
        let mut cleanup_result = match (removed, rest) {
            (true, rest) => rest,
            (false, _) => self.remove_build_resources(&build.id, None).await,
        };
        if !matches!(result, Ok(Published::Image(_))) {
            // A failed build publishes nothing, not even a tag: publishing
            // may have tagged the snapshot (or the engine did and the answer
            // was lost) before the build failed.
            let reference = engine_reference(
                self.store.engine_namespace(),
                &request.recipe_name,
                &request.recipe_version,
                build.build_number,
            );
            let untagged = self.engine.image_remove(&reference).await;
            cleanup_result = cleanup_result.and(untagged);
        }
        record.timings.cleanup_ms = toe::millis(cleanup.elapsed());
        record.timings.total_ms = toe::millis(total.elapsed());
        watcher_cancel.cancel();
        let _ = watcher.await;

        let (state, reason, image) = match result {
            Ok(Published::Image(image)) => (ImageState::Available, None, Some(*image)),
            Ok(Published::Failed(reason)) => (ImageState::Failed, Some(reason), None),
            Err(BuildError::Cancelled) => {
                (ImageState::Cancelled, Some(self.cancel_reason(&build, request, cancel)), None)
            }
            Err(error) => (ImageState::Failed, Some(error_chain(&error)), None),
        };
        if let Err(error) = cleanup_result {
            progress.event(BuildEvent::Note {
                message: format!("cleanup incomplete: {}", error_chain(&error)),
            });
        }
        let finished_at = clock::now();
        // Written first: when the store cannot record the end (a full
        // disk), recovery reads the cause here.
        self.write_detailed_output(
            &build,
            request,
            state,
            reason.as_deref(),
            (started_at, Some(finished_at)),
            &record.timings,
            &record.phases,
        );
        if let Err(source) =
            self.store.set_build_state(&build.id, state, reason.as_deref(), finished_at)
        {
            // The reason's first line, unless it is this same refusal (a
            // full disk fails the build, then its end): said once, as the
            // cause.
            let first_line = reason.as_deref().and_then(|reason| reason.lines().next());
            let ended = match first_line {
                Some(line) if line != error_chain(&source) => format!("{state}: {line}"),
                _ => state.to_string(),
            };
            return Err(BuildError::EndNotRecorded {
                id: build.id.clone(),
                ended,
                source: Box::new(source),
            });
        }
        // The state is recorded: an event the store refuses now is noted,
        // not an error.
        if let Err(error) = self.event(
            &build,
            "state",
            &format!("{state}{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()),
        ) {
            progress.event(BuildEvent::Note {
                message: format!("the build's end event was not recorded: {}", error_chain(&error)),
            });
        }
        progress.event(BuildEvent::State { state, reason: reason.clone() });
        let build = self
            .store
            .build(&build.id)?
            .ok_or_else(|| BuildError::NotFound { id: build.id.clone() })?;
        Ok(BuildOutcome { build, image, started: true })
    }

    /// Why a cancelled build was cancelled: its caller's token (with the
    /// cause it gave, such as a signal) or a cancel request in the store
    /// (`autopatch build cancel`, from any process).
    fn cancel_reason(
        &self,
        build: &BuildRow,
        request: &BuildRequest,
        cancel: &CancellationToken,
    ) -> String {
        if cancel.is_cancelled() {
            return match request.cancel_cause.get() {
                Some(cause) => format!("cancelled: {cause}"),
                None => format!(
                    "cancelled by the process running the build (pid {})",
                    std::process::id()
                ),
            };
        }
        if self.store.cancel_requested(&build.id).unwrap_or(false) {
            return "cancelled by `autopatch build cancel`".to_owned();
        }
        "cancelled".to_owned()
    }

    fn event(&self, build: &BuildRow, kind: &str, detail: &str) -> Result<(), BuildError> {
        self.store.append_event(&format!("build/{}", build.id), kind, detail, clock::now())?;
        Ok(())
    }

    fn set_state(
        &self,
        build: &BuildRow,
        state: ImageState,
        progress: &dyn Progress,
    ) -> Result<(), BuildError> {
        self.store.set_build_state(&build.id, state, None, clock::now())?;
        self.event(build, "state", state.as_str())?;
        progress.event(BuildEvent::State { state, reason: None });
        Ok(())
    }

    async fn execute(
        &self,
        build: &BuildRow,
        request: &BuildRequest,
        progress: &dyn Progress,
        cancel: &CancellationToken,
        record: &mut RunRecord,
    ) -> Result<Published, BuildError> {
        let RunRecord { started_at, timings, phases, pending_removal } = record;
        let started_at = *started_at;
        // From the build's row on, a store error ends it as any error does:
        // `FAILED` with the cause, or left for recovery saying why.
        self.event(build, "state", ImageState::Pending.as_str())?;
        // What the start condition compares the next start with.
        self.store.record_build_components(&build.id, &component_rows(&request.components))?;
        // The parent as resolved now (the recipe may name it by a filter):
        // `build list` and `build show` read it here.
        self.event(build, PARENT_EVENT, parent_name(request))?;
        if let Some(reason) = &request.start_reason {
            self.event(build, "start-condition", reason)?;
        }
        let artifact_dir = PathBuf::from(&build.artifact_dir);
        write_documents(&artifact_dir, &request.documents)?;
        let log_dir = artifact_dir.join("logs");
        let image_version = build.image_version();

        // Build stage.
        self.set_state(build, ImageState::Building, progress)?;
        self.write_progress(build, request, ImageState::Building, started_at, timings, phases);
        self.engine.network_ensure(NETWORK).await?;
        let started = tokio::time::Instant::now();
        let container = self
            .create_container(build, request, &request.parent.engine_reference, "build")
            .await?;
        timings.build_container_create_ms = toe::millis(started.elapsed());
        progress.event(BuildEvent::StageStarted { stage: "build", container: container.clone() });
        progress.event(BuildEvent::Timing {
            what: "build container create".into(),
            duration_ms: timings.build_container_create_ms,
        });

        // A registered parent's manifest is in its row, read from the same
        // files when it was built; any other parent's is read here, before
        // the first step.
        let started = tokio::time::Instant::now();
        let parent_manifest = match &request.parent.manifest {
            Some(text) => evidence::stored_manifest(text, parent_name(request))?,
            None => evidence::read_manifest(self.engine.as_ref(), &container).await?,
        };
        timings.parent_manifest_ms = toe::millis(started.elapsed());

        let mut reboots = 0;
        let started = tokio::time::Instant::now();
        let stage = {
            let timings = &*timings;
            let checkpoint = |phases: &[PhaseRecord]| {
                self.write_progress(
                    build,
                    request,
                    ImageState::Building,
                    started_at,
                    timings,
                    phases,
                );
            };
            let mut ctx = StageContext {
                engine: self.engine.as_ref(),
                container: &container,
                role: "build",
                checkpoint: &checkpoint,
                log_dir: &log_dir.join("build"),
                progress,
                cancel,
                reboots: &mut reboots,
            };
            let run = toe::run_stage(
                &mut ctx,
                &request.components,
                &[PhaseName::Build, PhaseName::Validate],
                phases,
            );
            match tokio::time::timeout(request.build_timeout, run).await {
                Ok(stage) => stage?,
                Err(_) => {
                    let reason = format!(
                        "the build stage ran past the build timeout of {}",
                        minutes(request.build_timeout)
                    );
                    toe::close_running(phases, StepStatus::Failed, &reason);
                    return Ok(Published::Failed(reason));
                }
            }
        };
        timings.build_stage_ms = toe::millis(started.elapsed());
        if let Some(failure) = stage.failure {
            return Ok(Published::Failed(failure));
        }
        let (apt_plan, plan_notes) = evidence::apt_plans(phases);

        // Snapshot. Nothing runs in the build container any more but its
        // init and `sleep`.
        if cancel.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        let started = tokio::time::Instant::now();
        let snapshot_reference = snapshot_reference(&build.id);
        let changes = image_changes(build, request, &image_version);
        let snapshot = self.engine.commit(&container, &snapshot_reference, &changes).await?;
        timings.commit_ms = toe::millis(started.elapsed());
        progress.event(BuildEvent::Timing {
            what: "snapshot (commit)".into(),
            duration_ms: timings.commit_ms,
        });

        // The evidence is read in the build container while the test stage
        // runs in its own: the build container's files are the snapshot's
        // (nothing has written to them since the last step, and the
        // evidence's commands only read). Not during the commit: Podman
        // holds a container's lock while it commits it, so an exec in it
        // waits for the commit to end.
        self.set_state(build, ImageState::Testing, progress)?;
        let evidence = async {
            let started = tokio::time::Instant::now();
            let mut image_evidence = evidence::collect(
                self.engine.as_ref(),
                &container,
                &parent_manifest,
                &image_version,
                parent_name(request),
                &apt_plan,
            )
            .await?;
            image_evidence.notes.extend(plan_notes);
            let evidence_ms = toe::millis(started.elapsed());
            progress
                .event(BuildEvent::Timing { what: "evidence".into(), duration_ms: evidence_ms });
            // The build container is done with: remove it while the test
            // stage runs. `run` awaits this before its cleanup.
            let engine = Arc::clone(&self.engine);
            let removed_container = container.clone();
            *pending_removal = Some(PendingRemoval {
                container: container.clone(),
                task: tokio::spawn(
                    async move { engine.container_remove(&removed_container).await },
                ),
            });
            Ok::<_, BuildError>((image_evidence, evidence_ms))
        };
        let timings_now = timings.clone();
        let tests = async {
            let has_tests = request
                .components
                .iter()
                .any(|c| c.document.phases.iter().any(|p| p.name == PhaseName::Test));
            if !(request.tests_enabled && has_tests) {
                let why = if request.tests_enabled {
                    "no component has a test phase"
                } else {
                    "image tests are disabled"
                };
                progress.event(BuildEvent::Note { message: format!("test stage skipped: {why}") });
                return Ok(TestStage { skipped: Some(why), ..TestStage::default() });
            }
            let started = tokio::time::Instant::now();
            let test_container =
                self.create_container(build, request, &snapshot.id, "test").await?;
            write_instance_metadata(self.engine.as_ref(), &test_container, &image_version, build)
                .await?;
            let container_create_ms = toe::millis(started.elapsed());
            progress.event(BuildEvent::StageStarted {
                stage: "test",
                container: test_container.clone(),
            });
            let started = tokio::time::Instant::now();
            let checkpoint = |phases: &[PhaseRecord]| {
                self.write_progress(
                    build,
                    request,
                    ImageState::Testing,
                    started_at,
                    &timings_now,
                    phases,
                );
            };
            let mut ctx = StageContext {
                engine: self.engine.as_ref(),
                container: &test_container,
                role: "test",
                checkpoint: &checkpoint,
                log_dir: &log_dir.join("test"),
                progress,
                cancel,
                reboots: &mut reboots,
            };
            let run = toe::run_stage(&mut ctx, &request.components, &[PhaseName::Test], phases);
            // The final cleanup removes the test container (by its label).
            let failure = match tokio::time::timeout(request.test_timeout, run).await {
                Ok(stage) => stage?.failure,
                Err(_) => {
                    let reason = format!(
                        "the test stage ran past its timeout of {}",
                        minutes(request.test_timeout)
                    );
                    toe::close_running(phases, StepStatus::Failed, &reason);
                    Some(reason)
                }
            };
            Ok(TestStage {
                failure,
                skipped: None,
                container_create_ms,
                stage_ms: toe::millis(started.elapsed()),
            })
        };
        let ((mut image_evidence, evidence_ms), tests) = match tokio::try_join!(evidence, tests) {
            Ok(done) => done,
            Err(error) => {
                // When the evidence failed, the test stage was dropped
                // where it was: what it was running ends with the build (a
                // test stage that failed by itself has closed its records).
                let status = match error {
                    BuildError::Cancelled => StepStatus::Cancelled,
                    _ => StepStatus::Failed,
                };
                toe::close_running(phases, status, &error_chain(&error));
                return Err(error);
            }
        };
        timings.evidence_ms = evidence_ms;
        timings.test_container_create_ms = tests.container_create_ms;
        timings.test_stage_ms = tests.stage_ms;
        if let Some(failure) = tests.failure {
            return Ok(Published::Failed(failure));
        }

        // Publish: tag, then the row. The row makes it visible; until it is
        // written, recovery treats the tag as an unpublished leftover.
        if cancel.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        let started = tokio::time::Instant::now();
        let reference = engine_reference(
            self.store.engine_namespace(),
            &request.recipe_name,
            &request.recipe_version,
            build.build_number,
        );
        self.engine.image_tag(&snapshot.id, &reference).await?;
        // The evidence names what built the image, so that evidence.json
        // stands alone.
        let created_at = clock::now();
        image_evidence.created_at = Some(created_at.to_string());
        image_evidence.built_by = Some(request.built_by.clone());
        image_evidence.build = Some(BuildProvenance {
            id: build.id.clone(),
            pipeline: request.pipeline.clone(),
            recipe: request.recipe_name.clone(),
            recipe_version: request.recipe_version.clone(),
            parent_image: request.parent.requested.clone(),
            parent_engine_image_id: request.parent.engine_image_id.clone(),
            engine_image_id: snapshot.id.clone(),
            started_at: started_at.to_string(),
            components: component_versions(&request.components),
            checks: Checks::from_phases(phases, tests.skipped),
        });
        let evidence_json =
            serde_json::to_string(&image_evidence).unwrap_or_else(|_| "{}".to_owned());
        fs_err::write(
            artifact_dir.join("evidence.json"),
            serde_json::to_vec_pretty(&image_evidence).unwrap_or_default(),
        )
        .map_err(|source| BuildError::Artifacts { source })?;
        let image = ImageRow {
            version: image_version.clone(),
            recipe: request.recipe_name.clone(),
            recipe_version: request.recipe_version.clone(),
            build_number: build.build_number,
            build_id: Some(build.id.clone()),
            pipeline: request.pipeline.clone(),
            engine_image_id: snapshot.id.clone(),
            engine_reference: reference,
            parent: Some(
                request
                    .parent
                    .image_version
                    .clone()
                    .unwrap_or_else(|| request.parent.requested.clone()),
            ),
            parent_engine_image_id: Some(request.parent.engine_image_id.clone()),
            manifest: image_evidence.manifest_text.clone(),
            evidence: evidence_json,
            created_at,
        };
        self.store.insert_image(&image)?;
        timings.publish_ms = toe::millis(started.elapsed());
        Ok(Published::Image(Box::new(image)))
    }

    async fn create_container(
        &self,
        build: &BuildRow,
        request: &BuildRequest,
        image: &str,
        role: &str,
    ) -> Result<String, BuildError> {
        let mut spec = ContainerSpec {
            name: Some(format!("autopatch-{role}-{}", build.id)),
            image: image.to_owned(),
            cmd: vec!["sleep".into(), "infinity".into()],
            network: Some(NETWORK.to_owned()),
            hostname: Some(format!("{role}-{}", build.build_number)),
            init: true,
            cpus: request.cpus,
            memory_bytes: request.memory_bytes,
            ..ContainerSpec::default()
        };
        if request.parent.entrypoint.is_some() {
            spec.entrypoint = Some(vec!["sleep".into()]);
            spec.cmd = vec!["infinity".into()];
        }
        spec.labels = self.ownership_labels(role);
        spec.labels.insert(BUILD_LABEL.to_owned(), build.id.clone());
        let container = self.engine.container_create(&spec).await?;
        self.engine.container_start(&container.id).await?;
        Ok(container.id)
    }

    /// Removes a build's containers and its private snapshot tag. For a
    /// published build the version tag keeps the image; otherwise removing
    /// the snapshot tag removes the image itself.
    /// Removes the build's containers (but `removing`, whose removal is
    /// under way) and its unpublished snapshot.
    async fn remove_build_resources(
        &self,
        build_id: &str,
        removing: Option<&str>,
    ) -> Result<(), EngineError> {
        let label = [(BUILD_LABEL.to_owned(), build_id.to_owned())];
        for container in self.engine.container_list(&label).await? {
            if Some(container.id.as_str()) != removing {
                self.engine.container_remove(&container.id).await?;
            }
        }
        self.engine.image_remove(&snapshot_reference(build_id)).await
    }

    /// Finishes what a dead runner left: builds still in progress whose owner
    /// process is gone end `FAILED`, and their containers and unpublished
    /// snapshots are removed. Returns the ids of the builds it ended.
    pub async fn recover(&self) -> Result<Vec<String>, BuildError> {
        // Containers of any role (build, test, check, diff, bootstrap) whose
        // owner died. Another live process keeps its containers, whatever
        // the state of a build they name (a check container from an image
        // published with its build's labels names a finished build). This
        // process's own build and test containers of a finished build are
        // leftovers of a cleanup that failed. Another state directory's
        // containers are left to its own recovery; a container without the
        // state directory's label (made by code that does not name one, or
        // by an earlier version) counts as this one's.
        let namespace = self.store.engine_namespace();
        for role in RECOVERED_ROLES {
            let label = [(ROLE_LABEL.to_owned(), role.to_owned())];
            for container in self.engine.container_list(&label).await? {
                let elsewhere = label_value(&container.labels, NAMESPACE_LABEL)
                    .is_some_and(|owner| owner != namespace);
                if elsewhere || !created_for_role(&container, role) {
                    continue;
                }
                let Some(owner) = label_value(&container.labels, OWNER_LABEL)
                    .and_then(|pid| pid.parse::<u32>().ok())
                else {
                    continue;
                };
                let leftover = if owner == std::process::id() {
                    let build = match label_value(&container.labels, BUILD_LABEL) {
                        Some(id) => self.store.build(id)?,
                        None => None,
                    };
                    matches!(role, "build" | "test")
                        && build.is_some_and(|build| build.state.is_terminal())
                } else {
                    !crate::bootstrap::process_running(owner)
                };
                if leftover {
                    self.engine.container_remove(&container.id).await?;
                }
            }
        }
        let mut ended = Vec::new();
        for build in self.store.builds()? {
            if !runner_gone(&build) {
                continue;
            }
            self.remove_build_resources(&build.id, None).await?;
            // The image row is the publish's commit point: written after the
            // tests passed and the tag was made. A runner that died after it
            // (while removing its containers, before it recorded the end)
            // built an AVAILABLE image.
            let published = self.store.image(&build.image_version())?.is_some();
            // A tag made just before the runner died, without its row.
            if !published {
                self.engine
                    .image_remove(&engine_reference(
                        self.store.engine_namespace(),
                        &build.recipe,
                        &build.recipe_version,
                        build.build_number,
                    ))
                    .await?;
            }
            // The runner may have ended the build and failed to record it
            // (a full disk): its detailed output then says how it ended.
            let artifact_dir = Path::new(&build.artifact_dir);
            let previous = read_detailed_output(artifact_dir);
            let runner =
                build.owner_pid.map(|pid| pid.to_string()).unwrap_or_else(|| "unknown".into());
            let reason = match previous.as_ref().and_then(runner_end) {
                _ if published => format!(
                    "the process running the build (pid {runner}) exited after it published \
                     the image, before the store recorded the build's end"
                ),
                Some(ended) => format!(
                    "the process running the build (pid {runner}) exited before the store \
                     recorded the build's end; it had ended {ended}"
                ),
                None => format!(
                    "the process running the build (pid {runner}) exited before the build finished"
                ),
            };
            let finished_at = clock::now();
            let state = if published { ImageState::Available } else { ImageState::Failed };
            if !self.store.set_build_state(&build.id, state, Some(&reason), finished_at)? {
                // Another recovery (or the runner, late) ended it meanwhile.
                continue;
            }
            write_artifact_json(
                artifact_dir,
                DETAILED_OUTPUT,
                &recovered_detailed_output(&build, previous, state, &reason, finished_at),
            );
            self.event(&build, "state", &format!("{state}: {reason}"))?;
            ended.push(build.id);
        }
        Ok(ended)
    }

    /// `detailedoutput.json` of a build in progress, as far as it got.
    fn write_progress(
        &self,
        build: &BuildRow,
        request: &BuildRequest,
        state: ImageState,
        started_at: Timestamp,
        timings: &Timings,
        phases: &[PhaseRecord],
    ) {
        self.write_detailed_output(
            build,
            request,
            state,
            None,
            (started_at, None),
            timings,
            phases,
        );
    }

    /// `detailedoutput.json`; `times` is when the build started and, once
    /// it has, ended.
    #[expect(clippy::too_many_arguments, reason = "plain data for the report, two call sites")]
    fn write_detailed_output(
        &self,
        build: &BuildRow,
        request: &BuildRequest,
        state: ImageState,
        reason: Option<&str>,
        times: (Timestamp, Option<Timestamp>),
        timings: &Timings,
        phases: &[PhaseRecord],
    ) {
        let output = DetailedOutput {
            build_id: &build.id,
            image_version: build.image_version(),
            pipeline: request.pipeline.as_deref(),
            parent: &request.parent.requested,
            parent_resolved: parent_name(request),
            parent_engine_image_id: &request.parent.engine_image_id,
            components: component_versions(&request.components),
            built_by: &request.built_by,
            parent_manifest_source: if request.parent.manifest.is_some() {
                "image row"
            } else {
                "build container"
            },
            state: state.as_str(),
            reason,
            started_at: times.0.to_string(),
            finished_at: times.1.map(|at| at.to_string()),
            ended_by_recovery: false,
            timings,
            phases,
        };
        // Best effort: the state in the store is the record of truth.
        if let Ok(json) = serde_json::to_value(&output) {
            write_artifact_json(Path::new(&build.artifact_dir), DETAILED_OUTPUT, &json);
        }
    }
}

/// A build's `detailedoutput.json`, if it has one that can be read.
fn read_detailed_output(artifact_dir: &Path) -> Option<serde_json::Value> {
    let text = fs_err::read_to_string(artifact_dir.join(DETAILED_OUTPUT)).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok().filter(serde_json::Value::is_object)
}

/// How the runner ended a build, from the detailed output it wrote (its
/// final state and reason), unless recovery wrote it.
fn runner_end(output: &serde_json::Value) -> Option<String> {
    if output["ended_by_recovery"].as_bool() == Some(true) {
        return None;
    }
    let state = output["state"].as_str()?;
    if !matches!(state, "AVAILABLE" | "FAILED" | "CANCELLED") {
        return None;
    }
    Some(match output["reason"].as_str() {
        Some(reason) => format!("{state}: {reason}"),
        None => state.to_owned(),
    })
}

/// The detailed output of a build recovery ended: what its runner wrote as
/// it went (or, without it, what the store knows), ended `state` (`FAILED`,
/// or `AVAILABLE` when the image was published) with `reason`; the phases
/// and steps that were running failed with it.
fn recovered_detailed_output(
    build: &BuildRow,
    previous: Option<serde_json::Value>,
    state: ImageState,
    reason: &str,
    finished_at: Timestamp,
) -> serde_json::Value {
    let mut output = previous.unwrap_or_else(|| {
        serde_json::json!({
            "build_id": build.id,
            "image_version": build.image_version(),
            "pipeline": build.pipeline,
            "parent": build.parent_image,
            "parent_engine_image_id": null,
            "started_at": build.created_at.to_string(),
            "timings": null,
            "phases": [],
        })
    });
    output["state"] = state.as_str().into();
    output["reason"] = reason.into();
    output["finished_at"] = finished_at.to_string().into();
    output["ended_by_recovery"] = true.into();
    let running = StepStatus::Running.as_str();
    let failed = StepStatus::Failed.as_str();
    // What was running ran until the runner died, at the latest: until now,
    // from when it started, if the runner wrote that.
    let ran = |record: &serde_json::Value| {
        let started = record["started_at"].as_str()?.parse::<Timestamp>().ok()?;
        u64::try_from(finished_at.since(started)).ok()
    };
    for phase in output["phases"].as_array_mut().into_iter().flatten() {
        if phase["status"] != running {
            continue;
        }
        phase["status"] = failed.into();
        if let Some(duration_ms) = ran(phase) {
            phase["duration_ms"] = duration_ms.into();
        }
        for step in phase["steps"].as_array_mut().into_iter().flatten() {
            if step["status"] == running {
                step["status"] = failed.into();
                step["failure_message"] = reason.into();
                if let Some(duration_ms) = ran(step) {
                    step["duration_ms"] = duration_ms.into();
                }
            }
        }
    }
    output
}

/// Writes `name` in `directory` whole or not at all (a temporary file
/// renamed): a runner killed while writing leaves the previous version.
/// Best effort: a full disk loses the write, not the build.
fn write_artifact_json(directory: &Path, name: &str, value: &serde_json::Value) -> bool {
    let Ok(json) = serde_json::to_vec_pretty(value) else { return false };
    let temporary = directory.join(format!(".{name}.tmp"));
    let written = fs_err::create_dir_all(directory).is_ok()
        && fs_err::write(&temporary, json).is_ok()
        && fs_err::rename(&temporary, directory.join(name)).is_ok();
    if !written {
        let _ = fs_err::remove_file(&temporary);
    }
    written
}

/// What the test stage did: how it ended and how long its parts took (all
/// zero when it did not run).
#[derive(Debug, Default)]
struct TestStage {
    /// The first failure, if it failed.
    failure: Option<String>,
    /// Why it did not run, when it did not.
    skipped: Option<&'static str>,
    container_create_ms: u64,
    stage_ms: u64,
}

/// What a run accumulates as it goes, whatever way it ends.
struct RunRecord {
    started_at: Timestamp,
    timings: Timings,
    phases: Vec<PhaseRecord>,
    /// The build container's removal, running while the test stage does.
    pending_removal: Option<PendingRemoval>,
}

/// A container's removal running in the background.
struct PendingRemoval {
    container: String,
    task: tokio::task::JoinHandle<Result<(), EngineError>>,
}

enum Published {
    Image(Box<ImageRow>),
    Failed(String),
}

/// The parent as the evidence names it: its image version, or the engine
/// reference the recipe gave.
fn parent_name(request: &BuildRequest) -> &str {
    request.parent.image_version.as_deref().unwrap_or(&request.parent.requested)
}

/// The component versions a build of `components` runs, as the store
/// records them: a registered component version has one build.
pub(crate) fn component_rows(components: &[ComponentRun]) -> Vec<BuildComponentRow> {
    components
        .iter()
        .map(|component| BuildComponentRow {
            name: component.name.clone(),
            version: component.version.clone(),
            build_number: catalog::COMPONENT_BUILD,
        })
        .collect()
}

/// [`component_rows`] as the evidence and the detailed output name them.
fn component_versions(components: &[ComponentRun]) -> Vec<ComponentVersion> {
    component_rows(components)
        .into_iter()
        .map(|row| ComponentVersion {
            name: row.name,
            version: row.version,
            build: row.build_number,
        })
        .collect()
}

/// The kind of the build event that names the parent as resolved when the
/// build started (its detail: [`parent_name`]).
pub const PARENT_EVENT: &str = "parent";

/// The engine tag of a published image, under its state directory's
/// namespace ([`Store::engine_namespace`]): another state directory on the
/// host publishing the same recipe version never moves or removes it.
pub fn engine_reference(namespace: &str, recipe: &str, version: &str, build_number: u32) -> String {
    format!("localhost/autopatch/{namespace}/{recipe}:{version}-{build_number}")
}

/// The build-private tag of a snapshot that is not published yet.
fn snapshot_reference(build_id: &str) -> String {
    format!("localhost/autopatch-snapshot/{build_id}:snapshot")
}

/// Dockerfile instructions applied at commit: restore the parent's command
/// (the build container ran `sleep`) and label the image with its identity.
fn image_changes(build: &BuildRow, request: &BuildRequest, image_version: &str) -> Vec<String> {
    let json = |list: &Vec<String>| serde_json::to_string(list).unwrap_or_else(|_| "[]".into());
    let mut changes = Vec::new();
    match &request.parent.cmd {
        Some(cmd) if !cmd.is_empty() => changes.push(format!("CMD {}", json(cmd))),
        _ => changes.push(r#"CMD ["/bin/sh"]"#.to_owned()),
    }
    if let Some(entrypoint) = &request.parent.entrypoint {
        changes.push(format!("ENTRYPOINT {}", json(entrypoint)));
    }
    changes.push(format!("LABEL autopatch.image-version={image_version}"));
    changes.push(format!("LABEL autopatch.recipe={}", request.recipe_name));
    changes.push(format!("LABEL autopatch.built-by={}", build.id));
    // The build container's ownership labels would otherwise be inherited by
    // every container run from the image, making each look like an orphaned
    // build container. A commit cannot delete a label: clear them.
    for owned in [ROLE_LABEL, OWNER_LABEL, BUILD_LABEL, NAMESPACE_LABEL] {
        changes.push(format!("LABEL {owned}="));
    }
    changes.push(format!("LABEL autopatch.parent={}", request.parent.engine_image_id));
    changes
}

/// Instance metadata for the test container, in the IMDS layout, so pages
/// that show the image id work in tests as on instances.
async fn write_instance_metadata<E: Engine>(
    engine: &E,
    container: &str,
    image_version: &str,
    build: &BuildRow,
) -> Result<(), BuildError> {
    let root = "/var/lib/autopatch/imds/latest/meta-data";
    let entries = [
        ("ami-id", image_version.to_owned()),
        ("instance-id", format!("test-{}", build.id)),
        ("instance-type", "build".to_owned()),
        ("local-ipv4", "127.0.0.1".to_owned()),
        ("placement/availability-zone", "local-a".to_owned()),
    ];
    for (key, value) in entries {
        engine.put_file(container, &format!("{root}/{key}"), value.as_bytes(), 0o644).await?;
    }
    Ok(())
}

fn write_documents(artifact_dir: &Path, documents: &[(String, String)]) -> Result<(), BuildError> {
    let directory = artifact_dir.join("documents");
    fs_err::create_dir_all(&directory).map_err(|source| BuildError::Artifacts { source })?;
    for (name, text) in documents {
        fs_err::write(directory.join(name), text)
            .map_err(|source| BuildError::Artifacts { source })?;
    }
    Ok(())
}

/// A build id: time-ordered and unique across processes, and safe in tags
/// and file names.
fn new_build_id() -> String {
    new_id("b")
}

/// A time-ordered id unique across processes: `<prefix>-<time>-<random>`.
pub(crate) fn new_id(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let random = hasher.finish() & 0xff_ffff;
    let millis = clock::now().millis();
    format!("{prefix}-{millis:x}-{random:06x}")
}

/// Whether a build in progress has lost the process running it (what
/// [`Builder::recover`] ends).
pub fn runner_gone(build: &BuildRow) -> bool {
    !build.state.is_terminal() && !build.owner_pid.is_some_and(crate::bootstrap::process_running)
}

/// "1 minute", "90 minutes".
fn minutes(timeout: Duration) -> String {
    match timeout.as_secs() / 60 {
        1 => "1 minute".to_owned(),
        count => format!("{count} minutes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_timeouts_read_in_whole_minutes_with_the_right_plural() {
        assert_eq!(minutes(Duration::from_secs(60)), "1 minute");
        assert_eq!(minutes(Duration::from_secs(90 * 60)), "90 minutes");
        assert_eq!(minutes(Duration::from_secs(720 * 60)), "720 minutes");
    }
}
