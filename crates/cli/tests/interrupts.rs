//! `pipeline start`, `image check-updates`, `image bootstrap` and `build
//! cancel` when the process is signalled, killed or loses its outputs: a
//! build never stays BUILDING with its container running, a check leaves no
//! container, and a bootstrap leaves no process, file or image.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

struct Cli {
    state: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            autopatch_testkit::ensure_golden(&autopatch_testkit::engine().await).await;
        });
        Cli { state: tempfile::tempdir().unwrap() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_autopatch"));
        command.arg("--state-dir").arg(self.state.path()).args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let output = self.run(&[&["--output", "json"], args].concat());
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.state.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// Registers a component running `command`, and a recipe and a pipeline
    /// named `name` on `parent` (tests disabled).
    fn pipeline(&self, name: &str, parent: &str, command: &str, condition: &str) {
        let component = self.write(
            &format!("{name}.yml"),
            &format!("name: {name}-step\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: Run\n        action: ExecuteBash\n        inputs:\n          commands: [ \"{command}\" ]\n"),
        );
        let recipe = self.write(
            &format!("{name}.recipe.yml"),
            &format!("name: {name}\nsemanticVersion: 1.0.0\nparentImage: {parent}\ncomponents:\n  - componentArn: {name}-step\n"),
        );
        let pipeline = self.write(
            &format!("{name}.pipeline.yml"),
            &format!("name: {name}\nimageRecipeArn: {name}\nimageTestsConfiguration:\n  imageTestsEnabled: false\nschedule:\n  scheduleExpression: rate(1 day)\n  startCondition: {condition}\n"),
        );
        for args in [
            ["component", "create", "--file", &component],
            ["recipe", "create", "--file", &recipe],
            ["pipeline", "create", "--file", &pipeline],
        ] {
            let output = self.run(&args);
            assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        }
    }

    fn builds(&self) -> Vec<Value> {
        self.json(&["build", "list"]).as_array().unwrap().clone()
    }

    /// Starts `pipeline start NAME` and returns once its build step runs.
    fn start_until_step_runs(&self, name: &str) -> Child {
        let mut child =
            self.command(&["pipeline", "start", name]).stderr(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("pipeline start ended before its step ran").unwrap();
            if line.contains("Run [ExecuteBash] ...") {
                break;
            }
        }
        // Keep reading (and dropping) progress so the child never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        child
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn podman(args: &[&str]) -> String {
    let output = Command::new("podman").args(args).output().expect("run podman");
    assert!(output.status.success(), "podman {args:?}: {}", stderr(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Containers (any state) carrying every label given.
fn containers(labels: &[String]) -> Vec<String> {
    let mut args = vec!["ps".to_owned(), "-a".to_owned(), "-q".to_owned()];
    for label in labels {
        args.extend(["--filter".to_owned(), format!("label={label}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    podman(&args).lines().map(str::to_owned).collect()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status();
    assert!(status.unwrap().success(), "kill -{name}");
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Tags the tests published, removed when the test ends, passed or not.
struct RemoveImages(Vec<String>);

impl Drop for RemoveImages {
    fn drop(&mut self) {
        let listed = Command::new("podman")
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .unwrap_or_default();
        for reference in listed.lines() {
            let ours = self.0.iter().any(|name| {
                reference == name
                    || (reference.starts_with("localhost/autopatch/")
                        && reference.contains(&format!("/{name}:")))
            });
            if ours {
                let _ = Command::new("podman").args(["rmi", reference]).output();
            }
        }
    }
}

fn assert_build_ended(cli: &Cli, expected: &str) -> String {
    let builds = cli.builds();
    assert_eq!(builds.len(), 1, "{builds:?}");
    let id = builds[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(builds[0]["state"], expected, "{builds:?}");
    assert!(
        containers(&[format!("autopatch.build={id}")]).is_empty(),
        "build {id} left a container"
    );
    id
}

#[test]
fn sigterm_and_sighup_cancel_the_build_like_ctrl_c() {
    for (name, code) in [("TERM", 143), ("HUP", 129), ("INT", 130)] {
        let cli = Cli::new();
        cli.pipeline("slow", autopatch_testkit::GOLDEN, "sleep 600", "always");
        let mut child = cli.start_until_step_runs("slow");
        signal(&child, name);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "SIG{name}");
        let id = assert_build_ended(&cli, "CANCELLED");
        // The reason says which signal stopped it, and which process got it.
        let shown = cli.json(&["build", "show", &id]);
        assert_eq!(
            shown["reason"],
            format!("cancelled: SIG{name} received by autopatch (pid {})", child.id()),
            "{shown}"
        );
    }
}

#[test]
fn closed_outputs_neither_panic_nor_orphan_the_build() {
    let cli = Cli::new();
    let name = format!("closed-{}", std::process::id());
    let _made = RemoveImages(vec![name.clone()]);
    cli.pipeline(&name, autopatch_testkit::GOLDEN, "echo built", "always");

    // Both outputs a pipe whose reader is gone: progress is dropped, the build
    // runs to its end, and the result line ends the process as SIGPIPE would.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = cli
        .command(&["pipeline", "start", &name])
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(141));
    assert_build_ended(&cli, "AVAILABLE");

    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = cli
        .command(&["image", "show", &name])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(141), "{}", stderr(&output));
    assert_eq!(stderr(&output), "", "a closed stdout is no error to report");
}

#[test]
fn cancelling_a_build_whose_runner_was_killed_finishes_it_at_once() {
    let cli = Cli::new();
    cli.pipeline("slow", autopatch_testkit::GOLDEN, "sleep 600", "always");

    let mut child = cli.start_until_step_runs("slow");
    signal(&child, "KILL");
    child.wait().unwrap();
    // Its artifact folder names it (`build list` would already end it).
    let folders = std::fs::read_dir(cli.state.path().join("builds")).unwrap();
    let id = folders.map(|f| f.unwrap().file_name().into_string().unwrap()).next().unwrap();
    let cancel = cli.run(&["build", "cancel", &id]);
    assert!(cancel.status.success(), "{}", stderr(&cancel));
    let said = String::from_utf8_lossy(&cancel.stdout).into_owned();
    assert!(said.contains("had lost its runner") && said.contains("FAILED"), "{said}");
    let shown = cli.json(&["build", "show", &id]);
    assert_eq!(shown["state"], "FAILED", "{shown}");
    assert!(containers(&[format!("autopatch.build={id}")]).is_empty(), "{id} left a container");

    // Listing shows an orphan as what it is, not BUILDING.
    let mut child = cli.start_until_step_runs("slow");
    signal(&child, "KILL");
    child.wait().unwrap();
    let builds = cli.builds();
    assert_eq!(builds.len(), 2);
    assert!(builds.iter().all(|b| b["state"] == "FAILED"), "{builds:?}");
    let id = builds.iter().map(|b| b["id"].as_str().unwrap()).find(|b| *b != id).unwrap();
    assert!(containers(&[format!("autopatch.build={id}")]).is_empty(), "{id} left a container");
}

/// The golden test image with an `apt-get` first on PATH that hangs: an
/// update check in it runs until it is stopped.
fn hanging_apt_image() -> String {
    let pid = std::process::id();
    let reference = format!("localhost/autopatch-test/hanging-apt:{pid}");
    let container = format!("autopatch-test-hanging-apt-{pid}");
    podman(&[
        "run",
        "--name",
        &container,
        autopatch_testkit::GOLDEN,
        "sh",
        "-c",
        "printf '#!/bin/sh\\nsleep 600\\nexec /usr/bin/apt-get \"$@\"\\n' > /usr/local/bin/apt-get && \
         chmod 755 /usr/local/bin/apt-get",
    ]);
    podman(&["commit", "-q", &container, &reference]);
    podman(&["rm", &container]);
    reference
}

#[test]
fn an_interrupted_update_check_stops_at_once_and_leaves_no_container() {
    let cli = Cli::new();
    let image = hanging_apt_image();
    let name = format!("hanging-{}", std::process::id());
    let _made = RemoveImages(vec![image.clone(), name.clone()]);
    let check_containers =
        |child: &Child| containers(&[format!("autopatch.owner-pid={}", child.id())]);

    let child = cli.command(&["image", "check-updates", &image]).stderr(Stdio::piped()).spawn();
    let child = child.unwrap();
    let pid = child.id();
    wait_until("the check container exists", || !check_containers(&child).is_empty());
    signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    assert!(stderr(&output).contains("interrupted (SIGINT)"), "{}", stderr(&output));
    assert!(containers(&[format!("autopatch.owner-pid={pid}")]).is_empty(), "a check container");

    // A pipeline's start condition: the first run builds without a check, the
    // second checks the published image and is interrupted there.
    cli.pipeline(&name, &image, "echo built", "updates-available");
    let first = cli.run(&["pipeline", "start", &name]);
    assert!(first.status.success(), "{}", stderr(&first));
    // With state, the check's container carries the state directory's
    // namespace (so that directory's recovery removes it if this dies).
    let namespace = namespace(&cli);
    let child = cli.command(&["image", "check-updates", &image]).stderr(Stdio::piped()).spawn();
    let child = child.unwrap();
    wait_until("the check container exists", || !check_containers(&child).is_empty());
    let labelled =
        [format!("autopatch.owner-pid={}", child.id()), format!("autopatch.namespace={namespace}")];
    assert_eq!(containers(&labelled).len(), 1, "the check container is this directory's");
    signal(&child, "INT");
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(130));

    let child = cli.command(&["pipeline", "start", &name]).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    wait_until("the check container exists", || !check_containers(&child).is_empty());
    signal(&child, "TERM");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143), "{}", stderr(&output));
    assert!(stderr(&output).contains("nothing was built"), "{}", stderr(&output));
    assert!(containers(&[format!("autopatch.owner-pid={pid}")]).is_empty());
    assert_eq!(cli.builds().len(), 1, "no second build was created");

    // Killed outright, the start leaves its check container (no build names
    // it); the next `build list` of this state directory removes it.
    let mut child =
        cli.command(&["pipeline", "start", &name]).stderr(Stdio::null()).spawn().unwrap();
    let pid = child.id();
    wait_until("the check container exists", || !check_containers(&child).is_empty());
    signal(&child, "KILL");
    child.wait().unwrap();
    assert_eq!(containers(&[format!("autopatch.owner-pid={pid}")]).len(), 1, "left by the kill");
    assert_eq!(cli.builds().len(), 1, "no second build was created");
    assert!(
        containers(&[format!("autopatch.owner-pid={pid}")]).is_empty(),
        "removed by build list"
    );
}

/// The state directory's engine namespace (its images' tags, its
/// containers' `autopatch.namespace` label).
fn namespace(cli: &Cli) -> String {
    let store = autopatch_store::Store::open(&cli.state.path().join("autopatch.db")).unwrap();
    store.engine_namespace().to_owned()
}

#[test]
fn an_image_diff_container_is_the_state_directorys_and_its_recovery_removes_it_when_killed() {
    let cli = Cli::new();
    let pid = std::process::id();
    let (plain, hangs) = (format!("diff-plain-{pid}"), format!("diff-hangs-{pid}"));
    let _made = RemoveImages(vec![plain.clone(), hangs.clone()]);
    cli.pipeline(&plain, autopatch_testkit::GOLDEN, "echo plain", "always");
    // An image whose dpkg-query hangs outside its build container (named
    // build-N): its evidence is read, a diff from it stops there.
    let component = cli.write(
        "hangs.yml",
        &format!(
            "name: {hangs}-step\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      \
             - name: Wrap\n        action: CreateFile\n        inputs:\n          \
             - path: /usr/local/bin/dpkg-query\n            permissions: \"0755\"\n            \
             content: |\n              #!/bin/sh\n              \
             case \"$(uname -n)\" in build-*) exec /usr/bin/dpkg-query \"$@\";; esac\n              \
             sleep 600\n"
        ),
    );
    let recipe = cli.write(
        "hangs.recipe.yml",
        &format!(
            "name: {hangs}\nsemanticVersion: 1.0.0\nparentImage: {}\ncomponents:\n  - componentArn: {hangs}-step\n",
            autopatch_testkit::GOLDEN
        ),
    );
    let pipeline = cli.write(
        "hangs.pipeline.yml",
        &format!("name: {hangs}\nimageRecipeArn: {hangs}\nimageTestsConfiguration:\n  imageTestsEnabled: false\n"),
    );
    for args in [
        ["component", "create", "--file", &component],
        ["recipe", "create", "--file", &recipe],
        ["pipeline", "create", "--file", &pipeline],
        ["pipeline", "start", &plain, "--force"],
        ["pipeline", "start", &hangs, "--force"],
    ] {
        let output = cli.run(&args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }

    let mut child = cli.command(&["image", "diff", &plain, &hangs]).stderr(Stdio::null()).spawn();
    let child = child.as_mut().unwrap();
    let diff = [format!("autopatch.owner-pid={}", child.id()), "autopatch.role=diff".to_owned()];
    wait_until("the diff container exists", || !containers(&diff).is_empty());
    let labelled = [diff[0].clone(), format!("autopatch.namespace={}", namespace(&cli))];
    assert_eq!(containers(&labelled).len(), 1, "the diff container is this directory's");

    // Killed, the diff leaves its container; this directory's recovery
    // (`build list` runs it) removes it.
    signal(child, "KILL");
    child.wait().unwrap();
    assert_eq!(containers(&diff).len(), 1, "left by the kill");
    assert_eq!(cli.builds().len(), 2);
    assert!(containers(&diff).is_empty(), "removed by build list");
}

#[test]
fn a_client_token_names_one_start_of_one_pipeline_and_a_retry_follows_the_running_build() {
    let cli = Cli::new();
    cli.pipeline("slow", autopatch_testkit::GOLDEN, "sleep 600", "always");
    cli.pipeline("other", autopatch_testkit::GOLDEN, "echo other", "always");

    let mut first = cli
        .command(&["pipeline", "start", "slow", "--client-token", "t-1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(first.stderr.take().unwrap()).lines();
    while !lines.next().unwrap().unwrap().contains("Run [ExecuteBash] ...") {}
    std::thread::spawn(move || for _ in lines {});

    let other = cli.run(&["pipeline", "start", "other", "--client-token", "t-1"]);
    assert_eq!(other.status.code(), Some(2), "{}", stderr(&other));
    assert!(stderr(&other).contains("IdempotentParameterMismatch"), "{}", stderr(&other));

    // The retry follows the running build to its end: here, a cancel.
    let retry = cli
        .command(&["pipeline", "start", "slow", "--client-token", "t-1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let folders = std::fs::read_dir(cli.state.path().join("builds")).unwrap();
    let id = folders.map(|f| f.unwrap().file_name().into_string().unwrap()).next().unwrap();
    let cancel = cli.run(&["build", "cancel", &id]);
    assert!(cancel.status.success(), "{}", stderr(&cancel));
    let retry = retry.wait_with_output().unwrap();
    assert_eq!(retry.status.code(), Some(130), "{}", stderr(&retry));
    let said = String::from_utf8_lossy(&retry.stdout).into_owned();
    assert_eq!(said.trim(), format!("build {id} CANCELLED"));
    assert!(
        stderr(&retry).contains("==> CANCELLED: cancelled by `autopatch build cancel`"),
        "the reason says what cancelled it: {}",
        stderr(&retry)
    );
    assert_eq!(first.wait().unwrap().code(), Some(130));
    assert_eq!(cli.builds().len(), 1, "one build for one token");
}

/// Processes (other than `except`) whose command line mentions `path`: an
/// mmdebstrap writing under it, its workers, the commands they run in its root.
fn processes_mentioning(path: &std::path::Path, except: u32) -> Vec<(u32, String)> {
    let needle = path.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().map_while(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if pid != except && cmdline.contains(&needle) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Mount points at or under `path`.
fn mounts_under(path: &std::path::Path) -> Vec<String> {
    let needle = path.display().to_string();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| point.starts_with(&needle))
        .map(str::to_owned)
        .collect()
}

#[test]
fn an_interrupted_bootstrap_stops_mmdebstrap_and_leaves_nothing_behind() {
    for (name, code) in [("INT", 130), ("TERM", 143)] {
        let cli = Cli::new();
        let state = std::fs::canonicalize(cli.state.path()).unwrap();
        let image = format!("interrupted-{}-{}", name.to_lowercase(), std::process::id());
        let _made = RemoveImages(vec![image.clone()]);
        let mut child = cli
            .command(&["image", "bootstrap", "--name", &image])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().expect("a progress line").unwrap();
        assert!(first.contains("mmdebstrap bookworm from"), "{first}");
        let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
        // Mid-install: mmdebstrap has mounted /dev (and more) in its root.
        wait_until("mmdebstrap mounts in its root", || !mounts_under(&state).is_empty());
        let running = processes_mentioning(&state, child.id());
        assert!(running.iter().any(|(_, cmdline)| cmdline.contains("mmdebstrap")), "{running:?}");

        // The signal goes to autopatch alone, not its process group.
        signal(&child, name);
        let status = child.wait().unwrap();
        let said = rest.join().unwrap().join("\n");
        assert_eq!(status.code(), Some(code), "SIG{name}: {said}");
        assert!(said.contains(&format!("interrupted (SIG{name})")), "{said}");
        assert_eq!(processes_mentioning(&state, child.id()), [], "SIG{name}: still running");
        assert_eq!(mounts_under(&state), Vec::<String>::new(), "SIG{name}: left mounted");
        let left: Vec<_> = std::fs::read_dir(state.join("work"))
            .map(|entries| entries.map(|entry| entry.unwrap().path()).collect())
            .unwrap_or_default();
        assert_eq!(left, Vec::<std::path::PathBuf>::new(), "SIG{name}: left in the work directory");
        let tags = podman(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        assert!(!tags.contains(&format!("/{image}:")), "SIG{name} left an image: {tags}");
        assert_eq!(cli.json(&["image", "list"]), serde_json::json!([]), "SIG{name}");
    }
}

/// The process groups of the processes (other than `except`) whose command
/// line mentions `path`.
fn groups_mentioning(path: &std::path::Path, except: u32) -> Vec<u32> {
    let mut groups: Vec<u32> = processes_mentioning(path, except)
        .into_iter()
        .filter_map(|(pid, _)| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid pgrp ...`
            stat.rsplit_once(')')?.1.split_whitespace().nth(2)?.parse().ok()
        })
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// Signals a process group; it may have ended already.
fn signal_group(group: u32, name: &str) {
    let _ = Command::new("kill").args([&format!("-{name}"), "--", &format!("-{group}")]).status();
}

/// Unmounts what is left mounted under a directory when the test ends,
/// passed or not (a killed mmdebstrap's /dev, /proc, /sys).
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let mut points = mounts_under(&self.0);
        points.sort_by_key(|point| std::cmp::Reverse(point.len()));
        for point in points {
            let _ = Command::new("umount").args(["-l", &point]).status();
        }
    }
}

#[test]
fn a_bootstrap_removes_what_a_killed_one_left_once_nothing_of_it_runs() {
    let cli = Cli::new();
    let state = std::fs::canonicalize(cli.state.path()).unwrap();
    let work = state.join("work");
    let _unmount = Unmount(state.clone());
    let image = format!("killed-{}", std::process::id());
    let _made = RemoveImages(vec![image.clone()]);
    // A bootstrap that fails at once: no such mirror.
    let failing = || {
        let args =
            ["image", "bootstrap", "--name", &image, "--mirror", "file:///nonexistent/debian"];
        let output = cli.run(&args);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains("File not found"), "{}", stderr(&output));
        stderr(&output)
    };
    let left = || -> Vec<String> {
        let entries = std::fs::read_dir(&work).unwrap();
        let mut names: Vec<String> =
            entries.map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    };

    let mut child = cli
        .command(&["image", "bootstrap", "--name", &image])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    std::thread::spawn(move || for _ in lines {});
    wait_until("mmdebstrap mounts in its root", || !mounts_under(&state).is_empty());
    let running = left();
    let stem = running.iter().find_map(|name| name.strip_suffix(".lock")).unwrap().to_owned();
    assert!(running.contains(&format!("{stem}.tmp")), "{running:?}");

    let groups = groups_mentioning(&work, child.id());
    assert_eq!(groups.len(), 1, "mmdebstrap's process group: {groups:?}");

    // A running bootstrap's files are never touched (its lock is held).
    let said = failing();
    assert!(!said.contains(&stem), "{said}");

    // Killed, autopatch cannot clean up; mmdebstrap, in its own process
    // group, goes on alone until stopped as the interrupt path stops it.
    signal(&child, "KILL");
    child.wait().unwrap();
    signal_group(groups[0], "INT");
    wait_until("mmdebstrap has ended", || groups_mentioning(&work, 0).is_empty());
    assert_eq!(mounts_under(&state), Vec::<String>::new(), "mmdebstrap left mounts");
    let killed = left();
    assert!(killed.contains(&format!("{stem}.lock")), "{killed:?}");
    assert!(killed.contains(&format!("{stem}.tmp")), "{killed:?}");

    // The next bootstrap removes them, and its own files too.
    let said = failing();
    assert!(
        said.contains(&format!(
            "removed what an earlier bootstrap (autopatch pid {}, gone) left in {}: {stem}.*",
            child.id(),
            work.display()
        )),
        "{said}"
    );
    assert_eq!(left(), Vec::<String>::new());
    assert_eq!(cli.json(&["image", "list"]), serde_json::json!([]));
}
