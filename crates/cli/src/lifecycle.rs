//! The control plane's life: `serve` (in the foreground), `up` (start it
//! detached and wait until it answers) and `down` (stop it and wait until
//! its process has ended).

use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use autopatch_daemon::{Client, ClientError, DaemonConfig, PingOutput, process_running, read_pid};
use autopatch_stacks::ListenerPorts;
use serde_json::json;

use crate::render::{self, CliError};
use crate::{ListenerPortsArg, ServeArgs};

/// How long `up` waits for the daemon to answer, and `down` for it to end.
const WAIT: Duration = Duration::from_secs(30);
/// How many of the log's last lines `up` prints when the daemon did not start.
const LOG_TAIL_LINES: usize = 20;

/// The state directory as an absolute path: the daemon reports it, and `up`
/// starts the daemon in `/`.
fn absolute(state_dir: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(state_dir).map_err(|error| {
        CliError::new(format!(
            "failed to resolve the state directory {}: {error}",
            state_dir.display()
        ))
        .with_code(1)
    })
}

/// `--listener-ports` as the daemon's option and as `Ping` names it.
fn listener_ports(arg: ListenerPortsArg) -> (ListenerPorts, &'static str) {
    match arg {
        ListenerPortsArg::Free => (ListenerPorts::Free, "free"),
        ListenerPortsArg::Template => (ListenerPorts::Template, "template"),
    }
}

pub(crate) async fn serve(state_dir: &Path, args: ServeArgs) -> Result<ExitCode, CliError> {
    let config = DaemonConfig {
        state_dir: absolute(state_dir)?,
        listener_ports: listener_ports(args.listener_ports.unwrap_or(ListenerPortsArg::Free)).0,
        listen: args.listen,
    };
    match autopatch_daemon::serve(config).await {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            let hint = error.hint();
            let mut error = CliError::from_error(error).with_code(1);
            if let Some(hint) = hint {
                error = error.with_hint(hint);
            }
            Err(error)
        }
    }
}

fn print_running(ping: &PingOutput, json: bool, already: bool) {
    if json {
        let mut value = serde_json::to_value(ping).unwrap_or_default();
        value["AlreadyRunning"] = json!(already);
        render::json(&value);
        return;
    }
    let what = if already { "already running" } else { "started" };
    render::line(&format!("autopatch daemon {what} (pid {}) on {}", ping.pid, ping.socket));
    if let Some(listen) = &ping.listen {
        render::line(&format!("also listening on http://{listen}"));
    }
    for problem in &ping.problems {
        render::note(&format!("warning: not recovered yet: {problem}"));
    }
    if !ping.problems.is_empty() {
        render::note("the daemon keeps trying each of these; `autopatch up` shows what is left");
    }
}

/// A daemon already answers: says so, and what of the options asked for it
/// does not have (it keeps its own until `autopatch down`).
fn already_running(ping: &PingOutput, args: &ServeArgs, json: bool) -> ExitCode {
    print_running(ping, json, true);
    let wanted = args.listen.map(|address| address.to_string());
    if wanted.is_some() && wanted != ping.listen {
        render::note(&format!(
            "note: the running daemon does not listen on {}; `autopatch down` first to change its options",
            wanted.unwrap_or_default()
        ));
    }
    let wanted = args.listener_ports.map(|arg| listener_ports(arg).1);
    if let (Some(wanted), Some(running)) = (wanted, ping.listener_ports.as_deref())
        && wanted != running
    {
        render::note(&format!(
            "note: the running daemon uses --listener-ports {running}, not {wanted}; `autopatch down` first to change its options"
        ));
    }
    ExitCode::SUCCESS
}

/// Whether a daemon answers: `Some` with its answer; `None` when none runs
/// (nothing listens, only a stale socket file, or a daemon killed a moment
/// ago whose socket still resets); an error when something is there that
/// does not answer properly (starting another would only be refused by its
/// lock).
async fn answering(client: &Client, state_dir: &Path) -> Result<Option<PingOutput>, CliError> {
    match client.ping().await {
        Ok(ping) => Ok(Some(ping)),
        Err(ClientError::NotRunning { .. }) => Ok(None),
        // The socket resets: a daemon killed a moment ago whose last threads
        // are still going away. Its pid says so; start one (the new daemon
        // waits for the lock).
        Err(ClientError::Connect { .. } | ClientError::Transport { .. })
            if read_pid(state_dir).is_none_or(|pid| !process_running(pid)) =>
        {
            Ok(None)
        }
        Err(error) => Err(CliError::from_client(error, state_dir)),
    }
}

pub(crate) async fn up(
    state_dir: &Path,
    args: ServeArgs,
    json: bool,
) -> Result<ExitCode, CliError> {
    let state_dir = absolute(state_dir)?;
    let client = Client::new(&state_dir).with_timeout(Duration::from_secs(5));
    if let Some(ping) = answering(&client, &state_dir).await? {
        return Ok(already_running(&ping, &args, json));
    }
    let failed = |message: String| CliError::new(message).with_code(1);
    std::fs::create_dir_all(&state_dir).map_err(|error| {
        failed(format!("failed to create the state directory {}: {error}", state_dir.display()))
    })?;
    let log_path = state_dir.join("daemon.log");
    // One `up` at a time starts the daemon: `up`s at once wait here for the
    // one starting it (a lock on the log, in a descriptor of its own that
    // the daemon does not inherit), then find it running, instead of
    // starting daemons that its lock refuses.
    let _starting = lock_for_start(&log_path)
        .await
        .map_err(|error| failed(format!("failed to lock {}: {error}", log_path.display())))?;
    if let Some(ping) = answering(&client, &state_dir).await? {
        return Ok(already_running(&ping, &args, json));
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|error| failed(format!("failed to open {}: {error}", log_path.display())))?;
    let log_start = log.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    let log_error = log
        .try_clone()
        .map_err(|error| failed(format!("failed to open {}: {error}", log_path.display())))?;
    let executable = std::env::current_exe()
        .map_err(|error| failed(format!("failed to find the autopatch executable: {error}")))?;

    let mut command = std::process::Command::new(&executable);
    command.arg("--state-dir").arg(&state_dir).arg("serve");
    command
        .arg("--listener-ports")
        .arg(listener_ports(args.listener_ports.unwrap_or(ListenerPortsArg::Free)).1);
    if let Some(listen) = args.listen {
        command.arg("--listen").arg(listen.to_string());
    }
    command
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_error)
        // Its own process group: Ctrl-C in this terminal is not for it.
        .process_group(0);
    let mut child = command.spawn().map_err(|error| {
        failed(format!("failed to start {} serve: {error}", executable.display()))
    })?;
    let pid = child.id();

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(ping) = client.ping().await {
            // Another daemon (a `serve` started by hand meanwhile) may have
            // won the state directory's lock: this one then exits.
            if ping.pid != pid {
                return Ok(already_running(&ping, &args, json));
            }
            print_running(&ping, json, false);
            return Ok(ExitCode::SUCCESS);
        }
        let exited = child.try_wait().map_err(|error| {
            failed(format!("failed to check on the daemon (pid {pid}): {error}"))
        })?;
        // A daemon that exits 0 started and was stopped (`autopatch down`,
        // SIGTERM) before it answered here: it did start, so no log is shown.
        if let Some(status) = exited.filter(std::process::ExitStatus::success) {
            return Err(failed(format!(
                "the daemon (pid {pid}) started, but was stopped before it answered here ({status}): `autopatch down` or a signal stopped it"
            ))
            .with_hint(format!(
                "`autopatch up` starts it again; its log: {}",
                log_path.display()
            )));
        }
        if let Some(status) = exited {
            print_log_tail(&log_path, log_start);
            return Err(failed(format!("the daemon did not start ({status})"))
                .with_hint(format!("its log: {}", log_path.display())));
        }
        if tokio::time::Instant::now() >= deadline {
            print_log_tail(&log_path, log_start);
            return Err(failed(format!(
                "the daemon (pid {pid}) did not answer on {} within {} s",
                client.socket_path().display(),
                WAIT.as_secs()
            ))
            .with_hint(format!(
                "it may still be starting: its log is {}; stop it with `kill {pid}`",
                log_path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Takes the lock `up` holds while it starts the daemon: an exclusive
/// `flock` on the daemon's log, opened on its own (released when dropped,
/// never inherited by the daemon). Waits while another `up` holds it.
async fn lock_for_start(log_path: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log_path)?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(std::io::Error::other)?
}

/// Prints the last lines the daemon wrote to its log since `start`.
fn print_log_tail(log_path: &Path, start: u64) {
    let mut text = String::new();
    let read = std::fs::File::open(log_path).and_then(|mut file| {
        file.seek(SeekFrom::Start(start))?;
        file.read_to_string(&mut text)
    });
    if read.is_err() || text.trim().is_empty() {
        return;
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    render::note(&format!("the daemon's log ({}):", log_path.display()));
    for line in tail {
        render::note(&format!("  | {line}"));
    }
}

pub(crate) async fn down(state_dir: &Path, json: bool) -> Result<ExitCode, CliError> {
    let state_dir = absolute(state_dir)?;
    let client = Client::new(&state_dir).with_timeout(Duration::from_secs(10));
    let pid = match client.shutdown().await {
        Ok(answer) => answer.pid,
        Err(error @ ClientError::NotRunning { .. }) => {
            if json {
                render::json(&json!({"Stopped": false}));
            } else {
                render::line(&error.to_string());
            }
            return Ok(ExitCode::SUCCESS);
        }
        Err(error) => return Err(CliError::from_client(error, &state_dir)),
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while process_running(pid) {
        if tokio::time::Instant::now() >= deadline {
            return Err(CliError::new(format!(
                "the daemon (pid {pid}) is still running {} s after it was asked to stop",
                WAIT.as_secs()
            ))
            .with_hint(format!(
                "its log is {}; `kill {pid}` stops it too",
                state_dir.join("daemon.log").display()
            ))
            .with_code(1));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if json {
        render::json(&json!({"Stopped": true, "Pid": pid}));
    } else {
        render::line(&format!(
            "autopatch daemon (pid {pid}) stopped; instances keep running and the next `autopatch up` re-adopts them"
        ));
    }
    Ok(ExitCode::SUCCESS)
}
