//! The lab's stacks run by the real `autopatch` binary and daemon on Podman:
//! a state directory per test, CLI runs, the daemon's pid, the webapp test
//! image, and a clean-up that leaves no daemon, container or network behind
//! when a test fails halfway.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One state directory, and what its stacks made (for the clean-up).
pub(crate) struct Lab {
    pub(crate) state: tempfile::TempDir,
    /// Stack ids whose instance containers carry `autopatch.stack=<id>`.
    stack_ids: Mutex<Vec<String>>,
    /// Engine networks of the base stack's VPC.
    networks: Mutex<Vec<String>>,
}

/// The lab's two stacks on image A.
pub(crate) struct Stacks {
    /// The load balancer's URL (`http://127.0.0.1:<port>/`).
    pub(crate) url: String,
    /// pattern3-app's stack id.
    pub(crate) app_id: String,
}

impl Lab {
    pub(crate) fn new() -> Lab {
        Lab {
            state: tempfile::tempdir().expect("a temporary state directory"),
            stack_ids: Mutex::new(Vec::new()),
            networks: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.state.path()
    }

    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_autopatch"));
        command.arg("--state-dir").arg(self.state.path());
        command
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run autopatch")
    }

    /// Runs `args` and asserts exit 0.
    pub(crate) fn ok(&self, args: &[&str]) -> Output {
        let output = self.run(args);
        assert_eq!(output.status.code(), Some(0), "autopatch {args:?}: {}", stderr(&output));
        output
    }

    /// Runs `args` with `--output json` and parses stdout.
    pub(crate) fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let output = self.ok(&all);
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("{error}: {}{}", stdout(&output), stderr(&output)))
    }

    pub(crate) fn daemon_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.state.path().join("autopatch.pid")).ok()?.trim().parse().ok()
    }

    /// `kill -9` of the daemon; returns once nothing listens on its socket
    /// (its last thread has closed its files, not only its main one).
    pub(crate) fn kill_daemon(&self) {
        let pid = self.daemon_pid().expect("the daemon's pid");
        let killed = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        assert!(killed.expect("run kill").success());
        let socket = self.state.path().join("autopatch.sock");
        wait_until("the killed daemon's socket refuses", Duration::from_secs(10), || {
            !running(pid)
                && std::os::unix::net::UnixStream::connect(&socket)
                    .is_err_and(|error| error.kind() == std::io::ErrorKind::ConnectionRefused)
        });
    }

    pub(crate) fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.state.path().join("daemon.log")).unwrap_or_default()
    }

    /// `autopatch up`, asserting that it started a daemon.
    pub(crate) fn up(&self) {
        let output = self.run(&["up"]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "autopatch up: {}\ndaemon.log:\n{}",
            stderr(&output),
            self.daemon_log()
        );
        assert!(self.daemon_pid().is_some_and(running), "up left a running daemon");
    }

    /// pattern3-base, then pattern3-app on `image`, with the shipped
    /// templates; returns once both are CREATE_COMPLETE and the page is served.
    pub(crate) fn create_stacks(&self, image: &str) -> Stacks {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../templates");
        let base = format!("{root}/pattern3-base.yml");
        self.ok(&["stack", "create", "pattern3-base", "--template", &base]);
        let resources = self.json(&["stack", "resources", "pattern3-base"]);
        for resource in resources["StackResources"].as_array().expect("resources") {
            if resource["ResourceType"] == "AWS::EC2::VPC"
                && let Some(vpc) = resource["PhysicalResourceId"].as_str()
            {
                lock(&self.networks).push(format!("autopatch-{vpc}"));
            }
        }
        let app = format!("{root}/pattern3-app.yml");
        let image = format!("AmazonMachineImage={image}");
        let mut args = vec!["stack", "create", "pattern3-app", "--template", &app];
        args.extend(["--parameter", "BaselineVpcStack=pattern3-base", "--parameter", &image]);
        // The stack id is known once the create is accepted; remember it
        // before following, so that a failed create is cleaned up too.
        let mut no_wait = args.clone();
        no_wait.push("--no-wait");
        let created = self.json(&no_wait);
        let app_id = created["StackId"].as_str().expect("a stack id").to_owned();
        lock(&self.stack_ids).push(app_id.clone());
        let status = self.wait_settled("pattern3-app", Duration::from_secs(120));
        assert_eq!(status, "CREATE_COMPLETE", "{}", self.daemon_log());
        let stack = self.stack("pattern3-app");
        let dns = stack["Outputs"]
            .as_array()
            .expect("outputs")
            .iter()
            .find(|output| output["OutputKey"] == "OutputPattern3ALBDNSName")
            .and_then(|output| output["OutputValue"].as_str())
            .expect("the DNS name output")
            .to_owned();
        let url = format!("http://{dns}/");
        // CREATE_COMPLETE means signalled; in service is two health checks later.
        wait_until("the page is served", Duration::from_secs(60), || curl(&url).is_ok());
        Stacks { url, app_id }
    }

    /// The stack as DescribeStacks shows it (`Null` when there is none).
    pub(crate) fn stack(&self, name: &str) -> serde_json::Value {
        let output = self.run(&["--output", "json", "stack", "describe", name]);
        if output.status.code() != Some(0) {
            return serde_json::Value::Null;
        }
        let described: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("a JSON stack");
        if described["Stacks"].is_array() { described["Stacks"][0].clone() } else { described }
    }

    /// Waits until the stack's status no longer ends in `_IN_PROGRESS`; returns it.
    pub(crate) fn wait_settled(&self, name: &str, timeout: Duration) -> String {
        let mut status = String::new();
        wait_until(&format!("stack {name} settles"), timeout, || {
            status = self.stack(name)["StackStatus"].as_str().unwrap_or_default().to_owned();
            !status.is_empty() && !status.ends_with("_IN_PROGRESS")
        });
        status
    }

    /// The stack's events, oldest first.
    pub(crate) fn events(&self, name: &str) -> Vec<serde_json::Value> {
        let mut events = self.json(&["stack", "events", name])["StackEvents"]
            .as_array()
            .expect("events")
            .clone();
        events.reverse();
        events
    }

    /// Deletes the app and base stacks and stops the daemon.
    pub(crate) fn tear_down(&self) {
        for name in ["pattern3-app", "pattern3-base"] {
            let output = self.ok(&["stack", "delete", name]);
            assert!(stdout(&output).ends_with("DELETE_COMPLETE\n"), "{}", stdout(&output));
        }
        for id in lock(&self.stack_ids).iter() {
            assert!(containers(id).is_empty(), "the deleted stack left containers");
        }
        lock(&self.stack_ids).clear();
        lock(&self.networks).clear();
        self.ok(&["down"]);
    }
}

impl Drop for Lab {
    /// A test that failed halfway leaves no daemon, container or network.
    fn drop(&mut self) {
        if let Some(pid) = self.daemon_pid() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        for id in lock(&self.stack_ids).iter() {
            let names = containers(id).into_iter().map(|c| c.name);
            let _ = Command::new("podman")
                .args(["rm", "-f", "-t", "0"])
                .args(names)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for network in lock(&self.networks).iter() {
            let _ = Command::new("podman")
                .args(["network", "rm", "-f", network])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An instance container, as `podman ps -a` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Container {
    pub(crate) name: String,
    pub(crate) instance: String,
    pub(crate) group: String,
    /// The engine's image id.
    pub(crate) image_id: String,
    /// `running`, `exited`, ...
    pub(crate) state: String,
}

/// Every instance container (any state) of stack `stack_id`, by its labels.
pub(crate) fn containers(stack_id: &str) -> Vec<Container> {
    let listed = Command::new("podman")
        .args(["ps", "-a", "-q", "--no-trunc"])
        .args(["--filter", "label=autopatch.role=instance"])
        .args(["--filter", &format!("label=autopatch.stack={stack_id}")])
        .output()
        .expect("run podman ps");
    assert!(listed.status.success(), "podman ps: {}", stderr(&listed));
    let ids: Vec<String> = stdout(&listed).lines().map(str::to_owned).collect();
    if ids.is_empty() {
        return Vec::new();
    }
    // The image by the engine's id: names can share an id; the id cannot lie.
    let format = "{{.Name}}\t{{index .Config.Labels \"autopatch.instance\"}}\t{{index .Config.Labels \"autopatch.group\"}}\t{{.Image}}\t{{.State.Status}}";
    let inspected = Command::new("podman")
        .args(["container", "inspect", "--format", format])
        .args(&ids)
        .output()
        .expect("run podman inspect");
    assert!(inspected.status.success(), "podman inspect: {}", stderr(&inspected));
    stdout(&inspected)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 5, "{line}");
            Container {
                name: fields[0].to_owned(),
                instance: fields[1].to_owned(),
                group: fields[2].to_owned(),
                image_id: fields[3].to_owned(),
                state: fields[4].to_owned(),
            }
        })
        .collect()
}

/// The engine's id of an image.
pub(crate) fn image_id(reference: &str) -> String {
    let output = Command::new("podman")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .output()
        .expect("run podman image inspect");
    assert!(output.status.success(), "podman image inspect {reference}: {}", stderr(&output));
    stdout(&output).trim().to_owned()
}

/// Whether a process runs (a zombie has ended).
pub(crate) fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !matches!(
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()),
            Some("Z" | "X")
        )
    })
}

pub(crate) fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The body of `url`, or the failure, with curl (an external oracle).
pub(crate) fn curl(url: &str) -> Result<String, String> {
    let output = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "5", url])
        .output()
        .expect("run curl");
    if output.status.success() { Ok(stdout(&output)) } else { Err(stderr(&output)) }
}

/// Makes sure the webapp test image (image A) exists (baked once per machine).
pub(crate) fn webapp_image() -> &'static str {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let engine = autopatch_testkit::engine().await;
        autopatch_testkit::ensure_webapp(&engine).await;
    });
    autopatch_testkit::WEBAPP
}

/// Image B: image A with one more label, so another image (another id)
/// that serves the same pages.
pub(crate) fn derive_image(image: &str, reference: &str) {
    remove_image(reference);
    let created = Command::new("podman").args(["create", image]).output().expect("run podman");
    assert!(created.status.success(), "podman create {image}: {}", stderr(&created));
    let container = stdout(&created).trim().to_owned();
    let committed = Command::new("podman")
        .args(["commit", "-q", "--change", &format!("LABEL autopatch.test.derived={reference}")])
        .args([&container, reference])
        .output()
        .expect("run podman commit");
    let _ = Command::new("podman").args(["rm", &container]).stdout(Stdio::null()).status();
    assert!(committed.status.success(), "podman commit: {}", stderr(&committed));
}

/// Removes an image made by [`derive_image`].
pub(crate) fn remove_image(reference: &str) {
    let _ = Command::new("podman")
        .args(["rmi", reference])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
