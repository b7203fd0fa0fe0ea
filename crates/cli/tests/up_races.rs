//! `autopatch up` racing other commands, with the real binary and Podman:
//! - `up`s at once start one daemon: one says `started`, the others
//!   `already running` with its pid, and no refused daemon writes an error
//!   into the log;
//! - a daemon stopped (SIGTERM, as `down` does) while it starts, before it
//!   answers, exits 0: `up` says it started and was stopped, not that it did
//!   not start, and prints no log;
//! - `up --listener-ports` with another mode than the running daemon's says
//!   so, as `--listen` does.

#[path = "support/binary.rs"]
#[allow(dead_code)]
mod binary;

use std::io::{Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use binary::{Cli, command, stderr, stdout};

/// Podman's API socket (scripts/setup-host.sh).
const PODMAN: &str = "/run/podman/podman.sock";

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !matches!(
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()),
            Some("Z" | "X")
        )
    })
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn daemon_pid(state: &Path) -> Option<u32> {
    std::fs::read_to_string(state.join("autopatch.pid")).ok()?.trim().parse().ok()
}

fn down(cli: &Cli) {
    let pid = daemon_pid(cli.state.path());
    let down = cli.run(&["down"]);
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
    if let Some(pid) = pid {
        assert!(!running(pid));
    }
}

/// A unix socket standing in for the engine: it holds every connection
/// until released, then passes bytes both ways between it and Podman.
struct HeldEngine {
    _dir: tempfile::TempDir,
    path: PathBuf,
    released: Arc<(Mutex<bool>, Condvar)>,
    accepted: mpsc::Receiver<()>,
}

impl HeldEngine {
    fn start() -> HeldEngine {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let released = Arc::new((Mutex::new(false), Condvar::new()));
        let (accepted_sender, accepted) = mpsc::channel();
        let gate = released.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let _ = accepted_sender.send(());
                let gate = gate.clone();
                std::thread::spawn(move || {
                    let (lock, condvar) = &*gate;
                    let mut open = lock.lock().unwrap();
                    while !*open {
                        open = condvar.wait(open).unwrap();
                    }
                    drop(open);
                    let Ok(engine) = UnixStream::connect(PODMAN) else { return };
                    pipe(client, engine);
                });
            }
        });
        HeldEngine { _dir: dir, path, released, accepted }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    fn release(&self) {
        let (lock, condvar) = &*self.released;
        *lock.lock().unwrap() = true;
        condvar.notify_all();
    }
}

/// Copies bytes both ways until either side closes.
fn pipe(client: UnixStream, engine: UnixStream) {
    let (mut client_reader, mut engine_writer) =
        (client.try_clone().unwrap(), engine.try_clone().unwrap());
    let upstream = std::thread::spawn(move || {
        let _ = copy(&mut client_reader, &mut engine_writer);
        let _ = engine_writer.shutdown(std::net::Shutdown::Write);
    });
    let (mut engine_reader, mut client_writer) = (engine, client);
    let _ = copy(&mut engine_reader, &mut client_writer);
    let _ = client_writer.shutdown(std::net::Shutdown::Write);
    let _ = upstream.join();
}

fn copy(from: &mut UnixStream, to: &mut UnixStream) -> std::io::Result<()> {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let read = from.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        to.write_all(&buffer[..read])?;
    }
}

fn spawn_up(state: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    let mut arguments = vec!["up"];
    arguments.extend_from_slice(args);
    command(state, &arguments)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start autopatch up")
}

#[test]
fn ups_at_once_start_one_daemon_and_the_others_find_it_running() {
    let cli = Cli::new();
    let ups: Vec<_> = (0..3).map(|_| spawn_up(cli.state.path(), &[], &[])).collect();
    let outputs: Vec<Output> = ups.into_iter().map(|up| up.wait_with_output().unwrap()).collect();
    let pid = daemon_pid(cli.state.path()).expect("a daemon runs");
    let mut said: Vec<String> = outputs
        .iter()
        .map(|output| {
            assert_eq!(output.status.code(), Some(0), "{}", stderr(output));
            stdout(output)
        })
        .collect();
    said.sort();
    let socket = cli.state.path().join("autopatch.sock");
    let line =
        |what: &str| format!("autopatch daemon {what} (pid {pid}) on {}\n", socket.display());
    assert_eq!(said, [line("already running"), line("already running"), line("started")]);
    let log = std::fs::read_to_string(cli.state.path().join("daemon.log")).unwrap();
    assert!(!log.contains("error"), "no refused daemon wrote into the log:\n{log}");
    assert_eq!(log.matches("msg=starting").count(), 1, "one daemon was started:\n{log}");
    down(&cli);
}

#[test]
fn a_daemon_stopped_while_it_starts_is_reported_as_started_and_stopped() {
    let cli = Cli::new();
    let engine = HeldEngine::start();
    let host = engine.host();
    let up = spawn_up(cli.state.path(), &[], &[("DOCKER_HOST", &host)]);
    // The daemon asks the engine whether it answers: it holds its lock and
    // its socket, and SIGTERM is handled, but it serves nothing yet.
    engine
        .accepted
        .recv_timeout(Duration::from_secs(30))
        .expect("the daemon connects to the engine");
    let pid = daemon_pid(cli.state.path()).expect("the daemon wrote its pid");
    let kill = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
    assert!(kill.success());
    engine.release();

    let output = up.wait_with_output().unwrap();
    let errors = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{errors}");
    assert_eq!(stdout(&output), "");
    assert!(
        errors.starts_with(&format!(
            "error: the daemon (pid {pid}) started, but was stopped before it answered here (exit status: 0)"
        )),
        "{errors}"
    );
    assert!(!errors.contains("did not start"), "{errors}");
    assert!(
        !errors.contains("the daemon's log"),
        "no log is printed for a daemon that started: {errors}"
    );
    wait_until("the stopped daemon has ended", || !running(pid));
    let log = std::fs::read_to_string(cli.state.path().join("daemon.log")).unwrap();
    assert!(log.contains("msg=\"signal received\" signal=SIGTERM"), "{log}");
    assert!(log.contains("msg=stopped"), "{log}");
}

#[test]
fn up_with_other_listener_ports_than_the_running_daemon_says_so() {
    let cli = Cli::new();
    let up = cli.run(&["up"]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));

    let other = cli.run(&["up", "--listener-ports", "template"]);
    assert_eq!(other.status.code(), Some(0), "{}", stderr(&other));
    assert!(stdout(&other).starts_with("autopatch daemon already running"), "{}", stdout(&other));
    assert_eq!(
        stderr(&other),
        "note: the running daemon uses --listener-ports free, not template; `autopatch down` first to change its options\n"
    );
    for same in [&["up"][..], &["up", "--listener-ports", "free"]] {
        let output = cli.run(same);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert_eq!(stderr(&output), "", "{same:?}");
    }
    let ping = cli.run(&["--output", "json", "up"]);
    let ping: serde_json::Value = serde_json::from_slice(&ping.stdout).unwrap();
    assert_eq!(ping["ListenerPorts"], "free", "{ping}");
    down(&cli);
}
