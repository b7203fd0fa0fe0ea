//! The AWSTOE executor: runs component documents' phases inside a container,
//! step by step, the way AWS Task Orchestrator and Executor does on an
//! Image Builder instance.
//!
//! Design notes:
//! - Phases run phase-major within a stage: every component's `build`, then
//!   every component's `validate` (build stage); every component's `test`
//!   (test stage).
//! - `ExecuteBash` runs its commands as one bash script (no `set -e`, like
//!   AWSTOE), under coreutils `timeout` for `timeoutSeconds`; exit 124 or 137
//!   from it once the time is up means the step timed out.
//! - An attempt that fails because the stage's container stopped (killed,
//!   removed) says so, and ends the stage: nothing more can run in it.
//! - What follows an attempt is decided by the pure [`crate::decide`] table.
//! - Every step's output goes to its own log file as it arrives.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use autopatch_documents::{
    Action, ComponentDocument, CreateFileInput, FileEncoding, PhaseName, Segment, Step, Template,
};
use autopatch_engine::{ContainerState, Engine, ExecSpec, OutputSink, OutputStream};
use autopatch_model::{StepStatus, Timestamp};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::apt::APT_UPDATE_FUNCTION;
use crate::decide::{AttemptOutcome, MAX_REBOOTS, StepDecision, after_attempt};
use crate::error::BuildError;
use crate::progress::{BuildEvent, Progress};

/// A component as a build runs it: its document and the recipe's parameter values.
#[derive(Debug, Clone)]
pub struct ComponentRun {
    pub name: String,
    pub version: String,
    pub document: ComponentDocument,
    pub parameters: BTreeMap<String, String>,
}

/// The record of one step, written to the detailed output JSON.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StepRecord {
    pub(crate) name: String,
    pub(crate) action: &'static str,
    pub(crate) status: &'static str,
    /// When the step started (wall clock); none for a step that never ran.
    #[serde(serialize_with = "optional_timestamp")]
    pub(crate) started_at: Option<Timestamp>,
    pub(crate) exit_code: Option<i64>,
    pub(crate) attempts: u32,
    pub(crate) reboots: u32,
    pub(crate) duration_ms: u64,
    pub(crate) outputs: BTreeMap<String, String>,
    pub(crate) log: String,
    pub(crate) failure_message: Option<String>,
    /// The step machine's last decision was to abort: the stage ends here
    /// (`onFailure: Abort`, or the stage's container stopped).
    #[serde(skip)]
    pub(crate) aborted: bool,
    /// When the step started, on the runtime's clock: the duration of a step
    /// [`close_running`] ends.
    #[serde(skip)]
    pub(crate) started: Option<tokio::time::Instant>,
}

/// The record of one phase of one component.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PhaseRecord {
    pub(crate) component: String,
    pub(crate) component_version: String,
    pub(crate) phase: &'static str,
    pub(crate) status: &'static str,
    /// When the phase started (wall clock).
    #[serde(serialize_with = "timestamp")]
    pub(crate) started_at: Timestamp,
    pub(crate) duration_ms: u64,
    pub(crate) steps: Vec<StepRecord>,
    /// When the phase started, on the runtime's clock.
    #[serde(skip)]
    pub(crate) started: Option<tokio::time::Instant>,
}

/// A timestamp in the detailed output: RFC 3339, as the build's own.
fn timestamp<S: serde::Serializer>(at: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(at)
}

fn optional_timestamp<S: serde::Serializer>(
    at: &Option<Timestamp>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serializer.collect_str(at),
        None => serializer.serialize_none(),
    }
}

/// Where and how a stage runs.
pub(crate) struct StageContext<'a, E: Engine> {
    pub(crate) engine: &'a E,
    pub(crate) container: &'a str,
    /// The container's role (`build`, `test`), for messages.
    pub(crate) role: &'static str,
    /// Called with the records whenever a step starts or ends, so a runner
    /// that dies leaves what it knew ([`crate::build`] writes it to
    /// `detailedoutput.json`).
    pub(crate) checkpoint: &'a (dyn Fn(&[PhaseRecord]) + Send + Sync),
    pub(crate) log_dir: &'a Path,
    pub(crate) progress: &'a dyn Progress,
    pub(crate) cancel: &'a CancellationToken,
    /// Restarts left in this build for exit-194 reboots.
    pub(crate) reboots: &'a mut u32,
}

/// The outcome of a stage.
pub(crate) struct StageOutcome {
    /// The first failure, if the stage failed.
    pub(crate) failure: Option<String>,
}

/// Runs `phases` of every component, phase-major, in the stage's container.
///
/// Each phase and step is recorded in `records` as it starts (status
/// `running`), so however the stage ends (a failure, a cancel, an error, or
/// its future dropped by a timeout) the steps that ran stay in the record;
/// [`close_running`] gives what was still running its final status.
pub(crate) async fn run_stage<E: Engine>(
    ctx: &mut StageContext<'_, E>,
    components: &[ComponentRun],
    phases: &[PhaseName],
    records: &mut Vec<PhaseRecord>,
) -> Result<StageOutcome, BuildError> {
    // Step outputs per component, for `{{ phase.Step.outputs.stdout }}`.
    let mut outputs: HashMap<(usize, PhaseName, String), String> = HashMap::new();
    for phase_name in phases {
        for (component_index, component) in components.iter().enumerate() {
            let Some(phase) =
                component.document.phases.iter().find(|phase| phase.name == *phase_name)
            else {
                continue;
            };
            let started = tokio::time::Instant::now();
            records.push(PhaseRecord {
                component: component.name.clone(),
                component_version: component.version.clone(),
                phase: phase_name.as_str(),
                status: StepStatus::Running.as_str(),
                started_at: crate::clock::now(),
                duration_ms: 0,
                steps: Vec::new(),
                started: Some(started),
            });
            let record_index = records.len() - 1;
            let mut phase_failed = false;
            let mut abort = None;
            for step in &phase.steps {
                if abort.is_some() {
                    records[record_index].steps.push(skipped(step));
                    continue;
                }
                let lookup = |phase: PhaseName, step: &str| {
                    outputs.get(&(component_index, phase, step.to_owned())).cloned()
                };
                let mut running = skipped(step);
                running.status = StepStatus::Running.as_str();
                running.started_at = Some(crate::clock::now());
                running.started = Some(tokio::time::Instant::now());
                records[record_index].steps.push(running);
                // Each attempt is recorded (its number, its log) as it
                // starts: a runner killed during it leaves them.
                let checkpoint = ctx.checkpoint;
                let mut attempt_started = |attempt: u32, log: &Path| {
                    if let Some(running) = records[record_index].steps.last_mut() {
                        running.attempts = attempt;
                        running.log = log.display().to_string();
                    }
                    checkpoint(records);
                };
                let run =
                    run_step(ctx, component, *phase_name, step, &lookup, &mut attempt_started);
                let mut record = match run.await {
                    Ok(record) => record,
                    Err(error) => {
                        records[record_index].duration_ms = millis(started.elapsed());
                        let status = match error {
                            BuildError::Cancelled => StepStatus::Cancelled,
                            _ => StepStatus::Failed,
                        };
                        close_running(records, status, &crate::build::error_chain(&error));
                        return Err(error);
                    }
                };
                if record.status == StepStatus::Failed.as_str() {
                    phase_failed = true;
                    if record.aborted {
                        abort = Some(format!(
                            "step {} of component {} ({} phase) failed: {}",
                            step.name,
                            component.name,
                            phase_name.as_str(),
                            record.failure_message.clone().unwrap_or_default()
                        ));
                    }
                }
                if let Some(stdout) = record.outputs.get("stdout") {
                    outputs
                        .insert((component_index, *phase_name, step.name.clone()), stdout.clone());
                }
                if let Some(last) = records[record_index].steps.last_mut() {
                    (record.started_at, record.started) = (last.started_at, last.started);
                    *last = record;
                }
                (ctx.checkpoint)(records);
            }
            let status = if phase_failed { StepStatus::Failed } else { StepStatus::Success };
            records[record_index].status = status.as_str();
            records[record_index].duration_ms = millis(started.elapsed());
            if phase_failed {
                let failure = abort.unwrap_or_else(|| {
                    format!(
                        "component {} failed its {} phase (a step with onFailure: Continue failed)",
                        component.name,
                        phase_name.as_str()
                    )
                });
                return Ok(StageOutcome { failure: Some(failure) });
            }
        }
    }
    Ok(StageOutcome { failure: None })
}

/// Gives every phase and step still `running` in `records` its final
/// `status`, with `message` on the step and the time it ran as its
/// duration; steps after it stay absent (they never started).
pub(crate) fn close_running(records: &mut [PhaseRecord], status: StepStatus, message: &str) {
    let running = StepStatus::Running.as_str();
    let ran = |started: Option<tokio::time::Instant>| started.map_or(0, |at| millis(at.elapsed()));
    for phase in records.iter_mut().filter(|phase| phase.status == running) {
        phase.status = status.as_str();
        phase.duration_ms = phase.duration_ms.max(ran(phase.started));
        for step in phase.steps.iter_mut().filter(|step| step.status == running) {
            step.status = status.as_str();
            step.failure_message = Some(message.to_owned());
            step.duration_ms = step.duration_ms.max(ran(step.started));
        }
    }
}

fn skipped(step: &Step) -> StepRecord {
    StepRecord {
        name: step.name.clone(),
        action: step.action.name(),
        status: StepStatus::Skipped.as_str(),
        started_at: None,
        exit_code: None,
        attempts: 0,
        reboots: 0,
        duration_ms: 0,
        outputs: BTreeMap::new(),
        log: String::new(),
        failure_message: None,
        aborted: false,
        started: None,
    }
}

async fn run_step<E: Engine>(
    ctx: &mut StageContext<'_, E>,
    component: &ComponentRun,
    phase: PhaseName,
    step: &Step,
    lookup: &dyn Fn(PhaseName, &str) -> Option<String>,
    attempt_started: &mut (dyn FnMut(u32, &Path) + Send),
) -> Result<StepRecord, BuildError> {
    let log_path =
        ctx.log_dir.join(&component.name).join(phase.as_str()).join(format!("{}.log", step.name));
    if let Some(parent) = log_path.parent() {
        fs_err::create_dir_all(parent).map_err(|source| BuildError::Artifacts { source })?;
    }
    let mut log = LogSink::create(&log_path, ctx.progress)?;
    let started = tokio::time::Instant::now();
    let mut attempt = 1;
    let mut reboots = 0;
    loop {
        if ctx.cancel.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        ctx.progress.event(BuildEvent::StepStarted {
            component: component.name.clone(),
            phase: phase.as_str(),
            step: step.name.clone(),
            action: step.action.name(),
            attempt,
        });
        log.line(&format!(
            "autopatch: step {} attempt {attempt} ({})",
            step.name,
            step.action.name()
        ));
        attempt_started(attempt, &log_path);
        // An action that cannot do its work (a file the engine refuses to
        // write, an exec that fails) is a failed attempt like a non-zero
        // exit, handled by `maxAttempts` and `onFailure`; only a cancel
        // ends the stage here.
        let (result, engine_failed) = match run_action(ctx, component, step, lookup, &mut log).await
        {
            Ok(result) => (result, false),
            Err(BuildError::Cancelled) => return Err(BuildError::Cancelled),
            Err(error) => {
                let message = crate::build::error_chain(&error);
                log.line(&format!("autopatch: {message}"));
                (ActionResult::Invalid { message }, true)
            }
        };
        // An attempt that did not succeed may have ended because the
        // container did (killed, stopped, out of memory): the exec then ends
        // with the killed process's code (137 for SIGKILL, which would read
        // as a timeout) or an error. Say so, and run nothing more in it.
        let killed = engine_failed
            || matches!(result, ActionResult::Exited { code, .. } if signal_code(code));
        let result = match result {
            ActionResult::Exited { code: 0, .. } => result,
            result => match stopped_container(ctx.engine, ctx.container, ctx.role, killed).await {
                Some(message) => {
                    log.line(&format!("autopatch: {message}"));
                    ActionResult::ContainerStopped { message, exec_code: result.exit_code() }
                }
                None => result,
            },
        };
        let outcome = match &result {
            ActionResult::Exited { code, .. } if *code == 0 => AttemptOutcome::Succeeded,
            ActionResult::Exited { code: 194, .. } => AttemptOutcome::RebootRequested,
            ActionResult::Exited { .. } => AttemptOutcome::Failed,
            ActionResult::TimedOut => AttemptOutcome::TimedOut,
            ActionResult::Invalid { .. } => AttemptOutcome::Failed,
            ActionResult::ContainerStopped { .. } => AttemptOutcome::ContainerStopped,
        };
        let decision =
            after_attempt(outcome, attempt, step.max_attempts, step.on_failure, *ctx.reboots);
        // Exit 194 once the build has had all its reboots: a failed attempt,
        // whose message says why the step did not run again.
        let described =
            if outcome == AttemptOutcome::RebootRequested && decision != StepDecision::Reboot {
                log.line(&format!(
                    "autopatch: exit code 194, but the build has rebooted {MAX_REBOOTS} times \
                 already (the limit): not restarting the container"
                ));
                reboot_limit_reached()
            } else {
                result.describe()
            };
        match decision {
            StepDecision::Reboot => {
                *ctx.reboots += 1;
                reboots += 1;
                log.line(
                    "autopatch: exit code 194, restarting the container and running the step again",
                );
                ctx.progress.event(BuildEvent::Rebooting { step: step.name.clone() });
                ctx.engine.container_stop(ctx.container, Duration::from_secs(10)).await?;
                ctx.engine.container_start(ctx.container).await?;
            }
            StepDecision::Retry { attempt: next } => {
                log.line(&format!("autopatch: attempt {attempt} failed ({described}), retrying"));
                attempt = next;
            }
            StepDecision::Continue { status } | StepDecision::Abort { status } => {
                let exit_code = result.exit_code();
                let duration_ms = millis(started.elapsed());
                ctx.progress.event(BuildEvent::StepFinished {
                    component: component.name.clone(),
                    phase: phase.as_str(),
                    step: step.name.clone(),
                    status,
                    exit_code,
                    duration_ms,
                });
                let mut outputs = BTreeMap::new();
                if let ActionResult::Exited { stdout, .. } = &result {
                    outputs.insert("stdout".to_owned(), stdout.trim_end_matches('\n').to_owned());
                }
                let failure_message = (status != StepStatus::Success).then(|| {
                    let tail = log.tail();
                    let attempts = if attempt > 1 {
                        format!(" after {attempt} attempts")
                    } else {
                        String::new()
                    };
                    format!("{described}{attempts}; last output:\n{tail}")
                });
                return Ok(StepRecord {
                    name: step.name.clone(),
                    action: step.action.name(),
                    status: status.as_str(),
                    exit_code,
                    attempts: attempt,
                    reboots,
                    duration_ms,
                    outputs,
                    log: log_path.display().to_string(),
                    failure_message,
                    aborted: matches!(decision, StepDecision::Abort { .. }),
                    // The caller keeps the times it recorded at the start.
                    started_at: None,
                    started: None,
                });
            }
        }
    }
}

/// Why a step that exited 194 did not run again: the build's reboots are
/// used up.
fn reboot_limit_reached() -> String {
    format!(
        "exit code 194 (reboot, then run this step again), but the build had already \
         rebooted {MAX_REBOOTS} times, the most a build may"
    )
}

enum ActionResult {
    Exited {
        code: i64,
        stdout: String,
    },
    TimedOut,
    /// The step could not run at all (bad interpolation, no package manager...).
    Invalid {
        message: String,
    },
    /// The stage's container stopped running (or was removed) during the
    /// attempt; `exec_code` is what the step's process ended with, if known.
    ContainerStopped {
        message: String,
        exec_code: Option<i64>,
    },
}

impl ActionResult {
    fn exit_code(&self) -> Option<i64> {
        match self {
            ActionResult::Exited { code, .. } => Some(*code),
            ActionResult::ContainerStopped { exec_code, .. } => *exec_code,
            ActionResult::TimedOut | ActionResult::Invalid { .. } => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            ActionResult::Exited { code: 137, .. } => {
                "exit code 137 (killed by SIGKILL)".to_owned()
            }
            ActionResult::Exited { code, .. } => format!("exit code {code}"),
            ActionResult::TimedOut => "timed out".to_owned(),
            ActionResult::Invalid { message } | ActionResult::ContainerStopped { message, .. } => {
                message.clone()
            }
        }
    }
}

/// How often, and how far apart, [`stopped_container`] looks at a container
/// whose step was killed: Podman reports a killed container `exited` only
/// once its cleanup has run, a moment after the exec has ended (meanwhile
/// `stopped`, a state the engine driver cannot read, or still `running`).
const KILLED_LOOKS: u32 = 10;
const KILLED_LOOK_INTERVAL: Duration = Duration::from_millis(200);

/// Why the stage's container no longer runs the step, if it does not:
/// "the build container exited (killed by SIGKILL, exit 137) while the step
/// ran". `None` while it runs, and when the engine cannot tell. `killed`
/// (the step's process died of a signal, or the engine failed to run it)
/// looks again for a while before believing it runs.
async fn stopped_container<E: Engine>(
    engine: &E,
    container: &str,
    role: &str,
    killed: bool,
) -> Option<String> {
    let looks = if killed { KILLED_LOOKS } else { 1 };
    for look in 0..looks {
        if look > 0 {
            tokio::time::sleep(KILLED_LOOK_INTERVAL).await;
        }
        let info = match engine.container_inspect(container).await {
            Ok(Some(info)) => info,
            Ok(None) => {
                return Some(format!("the {role} container was removed while the step ran"));
            }
            Err(_) => continue,
        };
        let how = match info.state {
            ContainerState::Running | ContainerState::Unknown => continue,
            ContainerState::Exited | ContainerState::Dead => match info.exit_code {
                Some(code) => match signal_name(code) {
                    Some(signal) => format!("exited (killed by {signal}, exit {code})"),
                    None => format!("exited (exit {code})"),
                },
                None => "exited".to_owned(),
            },
            state => format!("stopped running (it is {})", format!("{state:?}").to_lowercase()),
        };
        return Some(format!("the {role} container {how} while the step ran"));
    }
    None
}

/// Whether an exit code says a signal ended the process (128 + n).
fn signal_code(code: i64) -> bool {
    (129..=192).contains(&code)
}

/// The signal an exit code of 128 + n stands for, for the usual ones.
fn signal_name(code: i64) -> Option<&'static str> {
    match code {
        129 => Some("SIGHUP"),
        130 => Some("SIGINT"),
        131 => Some("SIGQUIT"),
        134 => Some("SIGABRT"),
        137 => Some("SIGKILL"),
        139 => Some("SIGSEGV"),
        143 => Some("SIGTERM"),
        _ => None,
    }
}

/// Renders a template with the component's parameters and earlier outputs.
fn render(
    template: &Template,
    component: &ComponentRun,
    lookup: &dyn Fn(PhaseName, &str) -> Option<String>,
) -> Result<String, String> {
    let mut text = String::new();
    for segment in &template.segments {
        match segment {
            Segment::Literal(literal) => text.push_str(literal),
            Segment::Parameter(name) => match component.parameters.get(name) {
                Some(value) => text.push_str(value),
                None => return Err(format!("parameter {name} has no value")),
            },
            Segment::StepOutput { phase, step } => match lookup(*phase, step) {
                Some(value) => text.push_str(&value),
                None => {
                    return Err(format!(
                        "step {}.{step} has no output (it did not run)",
                        phase.as_str()
                    ));
                }
            },
        }
    }
    Ok(text)
}

/// The in-container directory for step scripts.
const SCRIPT_DIR: &str = "/tmp/autopatch-toe";

async fn run_action<E: Engine>(
    ctx: &mut StageContext<'_, E>,
    component: &ComponentRun,
    step: &Step,
    lookup: &dyn Fn(PhaseName, &str) -> Option<String>,
    log: &mut LogSink<'_>,
) -> Result<ActionResult, BuildError> {
    let script = match &step.action {
        Action::ExecuteBash { commands } => {
            let mut script = String::new();
            for command in commands {
                match render(command, component, lookup) {
                    Ok(command) => {
                        script.push_str(&command);
                        script.push('\n');
                    }
                    Err(message) => return Ok(ActionResult::Invalid { message }),
                }
            }
            script
        }
        Action::UpdateOs { include, exclude } => {
            let render_all = |templates: &[Template]| -> Result<Vec<String>, String> {
                templates.iter().map(|template| render(template, component, lookup)).collect()
            };
            match (render_all(include), render_all(exclude)) {
                (Ok(include), Ok(exclude)) => update_os_script(&include, &exclude),
                (Err(message), _) | (_, Err(message)) => {
                    return Ok(ActionResult::Invalid { message });
                }
            }
        }
        Action::CreateFile { files } => {
            return create_files(ctx, component, files, lookup, log).await;
        }
    };
    let script_path = format!("{SCRIPT_DIR}/{}-{}.sh", component.name, step.name);
    ctx.engine.put_file(ctx.container, &script_path, script.as_bytes(), 0o700).await?;
    let mut cmd = Vec::new();
    if let Some(seconds) = step.timeout_seconds {
        cmd.extend(["timeout", "-k", "10"].map(String::from));
        cmd.push(format!("{seconds}s"));
    }
    cmd.extend(["bash".to_owned(), script_path]);
    let spec = ExecSpec {
        cmd,
        env: vec!["DEBIAN_FRONTEND=noninteractive".to_owned()],
        ..ExecSpec::default()
    };
    // The in-container timeout ends the step; this host-side limit only
    // guards against an exec that never returns.
    let host_limit = step.timeout_seconds.map(|seconds| Duration::from_secs(seconds + 60));
    let started = tokio::time::Instant::now();
    let exec = ctx.engine.exec(ctx.container, &spec, log);
    // Biased: a cancel that arrives as the step ends wins, so the step
    // that was running when the build was cancelled is the one recorded
    // `cancelled`, whichever future the runtime would have polled first.
    let result = tokio::select! {
        biased;
        _ = ctx.cancel.cancelled() => return Err(BuildError::Cancelled),
        result = with_limit(host_limit, exec) => result,
    };
    match result {
        None => Ok(ActionResult::TimedOut),
        Some(result) => {
            let result = result?;
            // `timeout` exits 124 (137 when it had to SIGKILL) once the
            // time is up; the same codes earlier are the script's own, or
            // a kill (the container's, or of the step's processes).
            let timed_out = step.timeout_seconds.is_some_and(|seconds| {
                matches!(result.exit_code, 124 | 137)
                    && started.elapsed() >= Duration::from_secs(seconds)
            });
            if timed_out {
                Ok(ActionResult::TimedOut)
            } else {
                Ok(ActionResult::Exited { code: result.exit_code, stdout: result.stdout_text() })
            }
        }
    }
}

async fn with_limit<F: std::future::Future>(
    limit: Option<Duration>,
    future: F,
) -> Option<F::Output> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, future).await.ok(),
        None => Some(future.await),
    }
}

/// The UpdateOS action as a script: apt-get on Debian and Ubuntu, dnf or yum
/// on RPM distributions, and a clear failure when none exists.
pub(crate) fn update_os_script(include: &[String], exclude: &[String]) -> String {
    let quote =
        |packages: &[String]| packages.iter().map(|p| shell_quote(p)).collect::<Vec<_>>().join(" ");
    let include = quote(include);
    let exclude = quote(exclude);
    let apt_update = APT_UPDATE_FUNCTION;
    let plan_begin = crate::evidence::APT_PLAN_BEGIN;
    let plan_end = crate::evidence::APT_PLAN_END;
    format!(
        r#"set -eu
include="{include}"
exclude="{exclude}"
{apt_update}if command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  # A stalled mirror connection must not hang the build: bounded, retried;
  # a source that cannot be reached fails the step (see apt.rs).
  for try in 1 2 3; do
    if apt_update; then break; fi
    if [ "$try" = 3 ]; then
      echo "UpdateOS: apt-get update failed 3 times: a package source could not be reached or answered with an error (above)" >&2
      exit 100
    fi
    sleep 5
  done
  if [ -n "$exclude" ]; then apt-mark hold $exclude; fi
  # apt's plan, with the archive each new version comes from, between
  # markers: the evidence reads which upgrades are security updates here.
  echo "{plan_begin}"
  if [ -n "$include" ]; then
    apt-get -s -o Debug::NoLocking=1 install --only-upgrade $include | grep -E '^(Inst|Remv|Purg) ' || true
  else
    apt-get -s -o Debug::NoLocking=1 dist-upgrade | grep -E '^(Inst|Remv|Purg) ' || true
  fi
  echo "{plan_end}"
  if [ -n "$include" ]; then
    apt-get install -y --only-upgrade -o Dpkg::Options::=--force-confold $include
  else
    apt-get dist-upgrade -y -o Dpkg::Options::=--force-confold
  fi
  if [ -n "$exclude" ]; then apt-mark unhold $exclude; fi
  # Keep images small (and snapshots quick): no package cache, no indexes.
  apt-get clean
  rm -rf /var/lib/apt/lists/*
elif command -v dnf >/dev/null 2>&1; then
  dnf -y upgrade ${{exclude:+$(printf -- '--exclude=%s ' $exclude)}} $include
  dnf clean all
elif command -v yum >/dev/null 2>&1; then
  yum -y update ${{exclude:+$(printf -- '--exclude=%s ' $exclude)}} $include
  yum clean all
else
  echo "UpdateOS: no known package manager (apt-get, dnf, yum) in this image" >&2
  exit 3
fi
"#
    )
}

fn shell_quote(text: &str) -> String {
    if text.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-._:=/".contains(&b)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

async fn create_files<E: Engine>(
    ctx: &mut StageContext<'_, E>,
    component: &ComponentRun,
    files: &[CreateFileInput],
    lookup: &dyn Fn(PhaseName, &str) -> Option<String>,
    log: &mut LogSink<'_>,
) -> Result<ActionResult, BuildError> {
    for file in files {
        let path = match render(&file.path, component, lookup) {
            Ok(path) => path,
            Err(message) => return Ok(ActionResult::Invalid { message }),
        };
        if !path.starts_with('/') {
            // A parameter can make a path relative after registration.
            return Ok(ActionResult::Invalid {
                message: format!("the path {path:?} is not absolute"),
            });
        }
        let content = match file
            .content
            .as_ref()
            .map(|content| render(content, component, lookup))
            .transpose()
        {
            Ok(content) => content.unwrap_or_default(),
            Err(message) => return Ok(ActionResult::Invalid { message }),
        };
        if !file.overwrite {
            let check = ExecSpec {
                cmd: vec!["test".into(), "-e".into(), path.clone()],
                ..ExecSpec::default()
            };
            if ctx.engine.exec(ctx.container, &check, &mut ()).await?.exit_code == 0 {
                log.line(&format!(
                    "autopatch: {path} exists and overwrite is false: left as it is"
                ));
                continue;
            }
        }
        let bytes = match file.encoding {
            FileEncoding::Utf8 => content.into_bytes(),
            FileEncoding::Base64 => {
                use base64::Engine as _;
                let compact: String = content.split_whitespace().collect();
                match base64::engine::general_purpose::STANDARD.decode(compact) {
                    Ok(bytes) => bytes,
                    Err(error) => {
                        return Ok(ActionResult::Invalid {
                            message: format!("the content of {path} is not valid base64: {error}"),
                        });
                    }
                }
            }
        };
        let mode = file.permissions.unwrap_or(0o644);
        ctx.engine.put_file(ctx.container, &path, &bytes, mode).await?;
        if file.owner.is_some() || file.group.is_some() {
            let render_optional = |template: &Option<Template>| {
                template
                    .as_ref()
                    .map(|template| render(template, component, lookup))
                    .transpose()
                    .map(Option::unwrap_or_default)
            };
            let (owner, group) = match (render_optional(&file.owner), render_optional(&file.group))
            {
                (Ok(owner), Ok(group)) => (owner, group),
                (Err(message), _) | (_, Err(message)) => {
                    return Ok(ActionResult::Invalid { message });
                }
            };
            let owner = format!("{owner}:{group}");
            let chown = ExecSpec {
                cmd: vec!["chown".into(), owner.trim_end_matches(':').to_owned(), path.clone()],
                ..ExecSpec::default()
            };
            let result = ctx.engine.exec(ctx.container, &chown, log).await?;
            if result.exit_code != 0 {
                return Ok(ActionResult::Exited { code: result.exit_code, stdout: String::new() });
            }
        }
        log.line(&format!("autopatch: wrote {path} ({} bytes, mode {mode:04o})", bytes.len()));
    }
    Ok(ActionResult::Exited { code: 0, stdout: String::new() })
}

/// Streams a step's output to its log file and to progress, and keeps the
/// last lines for the failure message.
struct LogSink<'a> {
    file: std::fs::File,
    progress: &'a dyn Progress,
    tail: Vec<u8>,
}

const TAIL_BYTES: usize = 2000;

impl<'a> LogSink<'a> {
    fn create(path: &Path, progress: &'a dyn Progress) -> Result<LogSink<'a>, BuildError> {
        let file = fs_err::File::create(path).map_err(|source| BuildError::Artifacts { source })?;
        Ok(LogSink { file: file.into_parts().0, progress, tail: Vec::new() })
    }

    fn line(&mut self, text: &str) {
        // Log writes are best effort: a full disk must not fail the build
        // halfway through a step; the detailed output still records it.
        let _ = writeln!(self.file, "{text}");
    }

    fn tail(&self) -> String {
        String::from_utf8_lossy(&self.tail).trim_end().to_owned()
    }
}

impl OutputSink for LogSink<'_> {
    fn output(&mut self, _stream: OutputStream, bytes: &[u8]) {
        let _ = self.file.write_all(bytes);
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > TAIL_BYTES {
            let cut = self.tail.len() - TAIL_BYTES;
            self.tail.drain(..cut);
        }
        self.progress
            .event(BuildEvent::StepOutput { text: String::from_utf8_lossy(bytes).into_owned() });
    }
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use autopatch_engine::{ContainerSpec, ExecReply, FakeEngine};

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_step_that_always_exits_194_fails_naming_the_reboot_limit() {
        let source = autopatch_documents::SourceFile::new(
            "reboots.yml",
            "name: reboots\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      \
             - name: Again\n        action: ExecuteBash\n        inputs:\n          \
             commands: [ \"exit 194\" ]\n",
        );
        let document = autopatch_documents::parse_component(&source).expect("a valid component");
        let component = ComponentRun {
            name: "reboots".into(),
            version: "1.0.0".into(),
            document,
            parameters: BTreeMap::new(),
        };
        let engine = FakeEngine::new();
        engine.add_image("localhost/golden:bookworm");
        engine.set_exec_handler(|_| ExecReply::exit(194));
        let spec =
            ContainerSpec { image: "localhost/golden:bookworm".into(), ..Default::default() };
        let container = engine.container_create(&spec).await.expect("create");
        engine.container_start(&container.id).await.expect("start");
        let logs = tempfile::tempdir().expect("a temporary directory");
        let cancel = CancellationToken::new();
        let mut reboots = 0;
        let mut ctx = StageContext {
            engine: &engine,
            container: &container.id,
            role: "build",
            checkpoint: &|_| {},
            log_dir: logs.path(),
            progress: &crate::progress::NoProgress,
            cancel: &cancel,
            reboots: &mut reboots,
        };
        let mut records = Vec::new();
        let outcome = run_stage(&mut ctx, &[component], &[PhaseName::Build], &mut records)
            .await
            .expect("the stage runs to its end");

        assert_eq!(reboots, MAX_REBOOTS);
        let failure = outcome.failure.expect("the step failed");
        assert!(
            failure.contains(&format!(
                "exit code 194 (reboot, then run this step again), but the build had already \
                 rebooted {MAX_REBOOTS} times, the most a build may"
            )),
            "{failure}"
        );
        let log = std::fs::read_to_string(logs.path().join("reboots/build/Again.log"))
            .expect("the step's log");
        assert!(log.contains(&format!("rebooted {MAX_REBOOTS} times already")), "{log}");
    }

    #[test]
    fn update_os_script_quotes_and_covers_package_managers() {
        let script =
            update_os_script(&["openssl".into()], &["linux-image-amd64".into(), "it's".into()]);
        assert!(script.contains(r#"include="openssl""#));
        assert!(script.contains(r#"exclude="linux-image-amd64 'it'\''s'""#));
        assert!(script.contains("apt-get dist-upgrade -y"));
        // apt's plan comes first, between the markers the evidence reads.
        let begin = script.find(crate::evidence::APT_PLAN_BEGIN).expect("the plan's start");
        let end = script.find(crate::evidence::APT_PLAN_END).expect("the plan's end");
        let upgrade = script.find("apt-get dist-upgrade -y").expect("the upgrade");
        assert!(begin < end && end < upgrade, "{script}");
        assert!(script[begin..end].contains("apt-get -s -o Debug::NoLocking=1 dist-upgrade"));
        assert!(script.contains("dnf -y upgrade"));
        assert!(script.contains("no known package manager (apt-get, dnf, yum)"));
    }
}
