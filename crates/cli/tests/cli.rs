//! The `autopatch` binary as a user runs it: exit codes, messages on
//! stderr, data on stdout, and bad input changing nothing.

#[path = "support/binary.rs"]
#[allow(dead_code)]
mod binary;

use std::process::{Command, Output};

use binary::{Cli, stderr, stdout};

#[test]
fn an_invalid_component_reports_every_problem_with_its_position_and_registers_nothing() {
    let cli = Cli::new();
    let path = cli.write(
        "bad.yml",
        "name: bad\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: One\n        action: Reboot\n      - name: One\n        action: ExecuteBash\n        inputs:\n          commands: [ \"echo {{ Missing }}\" ]\n",
    );
    let output = cli.run(&["component", "create", "--file", &path]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let errors = stderr(&output);
    assert!(errors.starts_with(&format!("{path}:")), "diagnostics print as they are: {errors}");
    assert!(
        errors.contains(&format!("{path}:7:17: error:")) && errors.contains("Reboot"),
        "{errors}"
    );
    assert!(
        errors.contains(&format!("{path}:8:")) && errors.contains("One"),
        "duplicate step: {errors}"
    );
    assert!(
        errors.contains(&format!("{path}:11:")) && errors.contains("Missing"),
        "undefined reference: {errors}"
    );

    // Registered nothing, in a state directory with a database as in one
    // without (where none is made).
    assert!(!cli.state.path().join("autopatch.db").exists(), "a state database was made");
    let good = cli.write(
        "good.yml",
        "name: good\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: One\n        action: ExecuteBash\n        inputs:\n          commands: [ \"echo one\" ]\n",
    );
    assert!(cli.run(&["component", "create", "--file", &good]).status.success());
    let output = cli.run(&["component", "create", "--file", &path]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let list = cli.run(&["--output", "json", "component", "list"]);
    assert!(list.status.success());
    let listed = serde_json::from_slice::<serde_json::Value>(&list.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["name"], "good", "{listed}");
}

#[test]
fn with_json_output_an_invalid_document_gives_its_problems_on_stdout() {
    let cli = Cli::new();
    let component = cli.write(
        "bad.yml",
        "name: bad\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: One\n        action: Reboot\n      - name: One\n        action: ExecuteBash\n        inputs:\n          commands: [ \"echo hi\" ]\n",
    );
    let recipe = cli.write(
        "bad.recipe.yml",
        "name: web\nsemanticVersion: x\nparentImage: localhost/autopatch-test/golden:bookworm\ncomponents:\n  - componentArn: nothing\n",
    );
    let pipeline = cli.write("bad.pipeline.yml", "name: web\nimageRecipeArn: web\nbogus: 1\n");
    let cases: [(&[&str], &String, (u64, u64)); 4] = [
        (&["component", "validate"], &component, (7, 17)),
        (&["component", "create"], &component, (7, 17)),
        (&["recipe", "create"], &recipe, (2, 18)),
        (&["pipeline", "create"], &pipeline, (2, 17)),
    ];
    for (command, file, (line, column)) in cases {
        let args = [&["--output", "json"], command, &["--file", file]].concat();
        let output = cli.run(&args);
        assert_eq!(output.status.code(), Some(2), "{command:?}: {}", stderr(&output));
        let answer: serde_json::Value =
            serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
                panic!("{command:?}: stdout is not JSON ({error}): {}", stdout(&output))
            });
        assert_eq!(answer["file"], file.as_str(), "{command:?}: {answer}");
        assert_eq!(answer["valid"], false, "{command:?}: {answer}");
        let problems = answer["problems"].as_array().expect("a list of problems");
        assert!(problems.len() >= 2, "{command:?}: every problem, not the first: {answer}");
        assert_eq!(problems[0]["file"], file.as_str(), "{command:?}: {answer}");
        assert_eq!(
            (problems[0]["line"].as_u64(), problems[0]["column"].as_u64()),
            (Some(line), Some(column)),
            "{command:?}: {answer}"
        );
        assert!(
            problems.iter().all(|p| p["message"].as_str().is_some_and(|m| !m.is_empty())),
            "{answer}"
        );
        // The diagnostics still go to stderr, as without --output json, and
        // the error is there as for any other error.
        assert!(
            stderr(&output).starts_with(&format!("{file}:{line}:{column}: error: ")),
            "{}",
            stderr(&output)
        );
        assert_eq!(answer["error"]["message"], stderr(&output).trim_end(), "{command:?}");
        assert_eq!(answer["error"]["code"], 2, "{command:?}: {answer}");
    }
}

/// `{"error": {"message", "hint", "code"}}` on stdout (and nothing else
/// there), the same error on stderr as without JSON, the same exit code.
fn assert_json_error(cli: &Cli, args: &[&str], message: &str, hint: Option<&str>) {
    let text = cli.run(args);
    let output = cli.run(&[&["-o", "json"], args].concat());
    let code = text.status.code().expect("an exit code");
    assert_ne!(code, 0, "{args:?}: {}", stdout(&text));
    assert_eq!(output.status.code(), Some(code), "{args:?}: the same exit code");
    assert_eq!(stderr(&output), stderr(&text), "{args:?}: stderr is the same");
    assert!(stdout(&text).is_empty(), "{args:?}: {}", stdout(&text));
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{args:?}: not JSON ({error}): {}", stdout(&output)));
    let hint = hint.map_or(serde_json::Value::Null, serde_json::Value::from);
    assert_eq!(
        answer,
        serde_json::json!({"error": {"message": message, "hint": hint, "code": code}}),
        "{args:?}"
    );
    assert!(stderr(&text).starts_with(&format!("error: {message}")), "{args:?}: {}", stderr(&text));
}

#[test]
fn with_json_output_every_error_is_a_json_object_on_stdout() {
    let cli = Cli::new();
    let text = "name: hello\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: Hi\n        action: ExecuteBash\n        inputs:\n          commands: [ \"echo hi\" ]\n";
    let path = cli.write("hello.yml", text);
    let made = cli.run(&["component", "create", "--file", &path]);
    assert!(made.status.success(), "{}", stderr(&made));

    assert_json_error(
        &cli,
        &["image", "show", "nothing/1.0.0/1"],
        "image \"nothing/1.0.0/1\" not found",
        Some("list images with `autopatch image list`"),
    );
    assert_json_error(
        &cli,
        &["build", "show", "b-nothing"],
        "build b-nothing not found",
        Some("list builds with `autopatch build list`"),
    );
    assert_json_error(
        &cli,
        &["pipeline", "start", "nothing"],
        "pipeline nothing is not registered",
        None,
    );
    let missing = cli.state.path().join("missing.yml").display().to_string();
    let said = stderr(&cli.run(&["component", "create", "--file", &missing]));
    let message = said.trim_end().strip_prefix("error: ").expect("an error").to_owned();
    assert!(message.contains(&missing), "{message}");
    assert_json_error(&cli, &["component", "create", "--file", &missing], &message, None);

    // A version conflict: other text under a registered version.
    cli.write("hello.yml", &text.replace("echo hi", "echo bye"));
    let said = stderr(&cli.run(&["component", "create", "--file", &path]));
    assert!(said.contains("versions are immutable"), "{said}");
    let first = said.lines().next().unwrap().strip_prefix("error: ").unwrap().to_owned();
    let hint = said.lines().find_map(|line| line.strip_prefix("hint: ")).map(str::to_owned);
    assert_json_error(&cli, &["component", "create", "--file", &path], &first, hint.as_deref());

    // Arguments the parser refuses: its message (the hint is clap's tip,
    // when it has one), exit 2.
    for args in [
        &["-o", "json", "image", "bootstrap", "--suite", "Bookworm"][..],
        &["image", "bootstrap", "--suite", "Bookworm", "--output=json"],
    ] {
        let output = cli.run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let answer: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("{args:?}: not JSON ({error}): {}", stdout(&output)));
        assert_eq!(
            answer["error"]["message"],
            "invalid value 'Bookworm' for '--suite <SUITE>': expected a Debian codename or suite \
             in lowercase, like bookworm or stable",
            "{answer}"
        );
        assert_eq!(answer["error"]["code"], 2, "{answer}");
        assert!(
            stderr(&output).starts_with("error: invalid value 'Bookworm'"),
            "{}",
            stderr(&output)
        );
    }
    // Help is not an error.
    let help = cli.run(&["-o", "json", "image", "--help"]);
    assert!(help.status.success());
    assert!(stdout(&help).starts_with("Images:"), "{}", stdout(&help));
}

#[test]
fn registering_the_same_component_twice_is_a_no_op_and_a_changed_one_needs_a_new_version() {
    let cli = Cli::new();
    let text = "name: hello\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: Hi\n        action: ExecuteBash\n        inputs:\n          commands: [ \"echo hi\" ]\n";
    let path = cli.write("hello.yml", text);
    let first = cli.run(&["component", "create", "--file", &path]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(stdout(&first).trim(), "component hello/1.0.0: registered");
    let again = cli.run(&["component", "create", "--file", &path]);
    assert_eq!(stdout(&again).trim(), "component hello/1.0.0: unchanged (already registered)");

    cli.write("hello.yml", &text.replace("echo hi", "echo bye"));
    let changed = cli.run(&["component", "create", "--file", &path]);
    assert_eq!(changed.status.code(), Some(2));
    assert!(stderr(&changed).contains("versions are immutable"), "{}", stderr(&changed));
    let bumped = cli.run(&["component", "create", "--file", &path, "--version", "1.0.1"]);
    assert!(bumped.status.success(), "{}", stderr(&bumped));
}

#[test]
fn a_missing_engine_says_how_to_start_one() {
    let cli = Cli::new();
    let output = cli.run_with_env(&["image", "list-updates-of-nothing"], &[]);
    assert_eq!(output.status.code(), Some(2), "clap rejects unknown subcommands");

    // A state directory with a database: a start reads what is registered.
    let path = cli.write("hello.yml", "name: hello\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: Hi\n        action: ExecuteBash\n        inputs:\n          commands: [ \"echo hi\" ]\n");
    let made = cli.run(&["component", "create", "--file", &path]);
    assert!(made.status.success(), "{}", stderr(&made));
    let output = cli.run_with_env(
        &["pipeline", "start", "webapp"],
        &[("DOCKER_HOST", "unix:///nonexistent/engine.sock")],
    );
    assert_eq!(output.status.code(), Some(2));
    let errors = stderr(&output);
    assert!(
        errors.starts_with("error: no container engine answers at unix:///nonexistent/engine.sock"),
        "{errors}"
    );
    assert!(
        errors.contains(
            "start one with `podman system service --time=0 unix:///nonexistent/engine.sock &`"
        ),
        "the hint names the socket that was tried: {errors}"
    );
    assert!(!errors.contains("/run/podman/podman.sock"), "{errors}");
}

#[test]
fn unknown_images_and_builds_are_clear_errors() {
    let cli = Cli::new();
    // A state directory with a database (read commands refuse one without).
    let path = cli.write("hello.yml", "name: hello\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: Hi\n        action: ExecuteBash\n        inputs:\n          commands: [ \"echo hi\" ]\n");
    let made = cli.run(&["component", "create", "--file", &path]);
    assert!(made.status.success(), "{}", stderr(&made));
    let output = cli.run(&["image", "show", "nothing/1.0.0/1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("image \"nothing/1.0.0/1\" not found"), "{}", stderr(&output));
    assert!(stderr(&output).contains("hint: list images with `autopatch image list`"));

    let output = cli.run(&["build", "cancel", "b-nothing"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output)
            .starts_with("error: build b-nothing not found\nhint: `autopatch build list`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_shipped_components_and_documents_validate() {
    let cli = Cli::new();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../components");
    for name in ["update-os", "webapp", "webapp-test"] {
        let path = format!("{root}/{name}.yml");
        let output = cli.run(&["component", "validate", "--file", &path]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        assert!(stdout(&output).contains(": valid ("), "{}", stdout(&output));
    }
}

/// `localhost/autopatch-test/unreachable-source:<pid>`: the golden test image
/// with one package source, on a port where nothing listens.
fn unreachable_source_image() -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        autopatch_testkit::ensure_golden(&autopatch_testkit::engine().await).await;
    });
    let pid = std::process::id();
    let reference = format!("localhost/autopatch-test/unreachable-source:{pid}");
    let container = format!("autopatch-test-unreachable-source-{pid}");
    let podman = |args: &[&str]| {
        let output = Command::new("podman").args(args).output().expect("run podman");
        assert!(output.status.success(), "podman {args:?}: {}", stderr(&output));
    };
    podman(&[
        "run",
        "--name",
        &container,
        autopatch_testkit::GOLDEN,
        "sh",
        "-c",
        "rm -f /etc/apt/sources.list /etc/apt/sources.list.d/* && \
         echo 'deb http://127.0.0.1:9/debian bookworm main' > /etc/apt/sources.list",
    ]);
    podman(&["commit", "-q", &container, &reference]);
    podman(&["rm", &container]);
    reference
}

/// Engine images a test made, removed when it ends, passed or not: the
/// references given, and every tag of the recipes given (published under the
/// state directory's namespace, `localhost/autopatch/<namespace>/<recipe>`).
struct RemoveImages {
    references: Vec<String>,
    recipes: Vec<String>,
}

impl Drop for RemoveImages {
    fn drop(&mut self) {
        let listed = Command::new("podman")
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .unwrap_or_default();
        let published = listed.lines().filter(|reference| {
            self.recipes.iter().any(|recipe| {
                reference.starts_with("localhost/autopatch/")
                    && reference.contains(&format!("/{recipe}:"))
            })
        });
        for reference in published.map(str::to_owned).chain(self.references.iter().cloned()) {
            let _ = Command::new("podman").args(["rmi", &reference]).output();
        }
    }
}

#[test]
fn a_package_source_that_cannot_be_reached_is_an_error_not_no_updates() {
    let cli = Cli::new();
    let image = unreachable_source_image();
    let recipe = format!("unreachable-cli-{}", std::process::id());
    let _made = RemoveImages { references: vec![image.clone()], recipes: vec![recipe.clone()] };

    let output = cli.run(&["image", "check-updates", &image, "--image-sources-only"]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let errors = stderr(&output);
    assert!(
        errors.starts_with(&format!("error: cannot check {image} for pending updates")),
        "{errors}"
    );
    assert!(errors.contains("Failed to fetch http://127.0.0.1:9/debian/"), "{errors}");

    // "Only if updates are available" cannot decide, so it does not skip.
    let component = cli.write(
        "say.yml",
        "name: say\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: Say\n        action: ExecuteBash\n        inputs:\n          commands: [ \"echo built\" ]\n",
    );
    let recipe_file = cli.write(
        "recipe.yml",
        &format!("name: {recipe}\nsemanticVersion: 1.0.0\nparentImage: {image}\ncomponents:\n  - componentArn: say\n"),
    );
    let pipeline_file = cli.write(
        "pipeline.yml",
        &format!("name: {recipe}\nimageRecipeArn: {recipe}\nimageTestsConfiguration:\n  imageTestsEnabled: false\nschedule:\n  scheduleExpression: rate(1 day)\n  startCondition: updates-available\n"),
    );
    for args in [
        ["component", "create", "--file", &component],
        ["recipe", "create", "--file", &recipe_file],
        ["pipeline", "create", "--file", &pipeline_file],
    ] {
        let output = cli.run(&args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }
    let first = cli.run(&["pipeline", "start", &recipe]);
    assert!(first.status.success(), "the first run builds: {}", stderr(&first));

    let second = cli.run(&["pipeline", "start", &recipe]);
    assert_eq!(second.status.code(), Some(2), "{}", stdout(&second));
    let errors = stderr(&second);
    assert!(
        errors.contains(&format!("error: cannot check {recipe}/1.0.0/1 for pending updates")),
        "the latest image, by its version: {errors}"
    );
    assert!(errors.contains("hint: nothing was built") && errors.contains("--force"), "{errors}");

    let forced = cli.run(&["pipeline", "start", &recipe, "--force"]);
    assert!(forced.status.success(), "--force builds anyway: {}", stderr(&forced));
    let images = cli.run(&["--output", "json", "image", "list"]);
    let images: serde_json::Value = serde_json::from_slice(&images.stdout).unwrap();
    assert_eq!(images.as_array().map(Vec::len), Some(2), "{images}");
}

#[test]
fn a_bootstrap_from_a_mirror_that_cannot_be_reached_says_why_and_leaves_nothing() {
    let cli = Cli::new();
    let name = format!("unreachable-mirror-{}", std::process::id());
    let output =
        cli.run(&["image", "bootstrap", "--name", &name, "--mirror", "http://127.0.0.1:9/debian"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let errors = stderr(&output);
    assert!(errors.contains("error: mmdebstrap failed (exit 25); its last output:"), "{errors}");
    // apt's reason, not only that apt-get update failed.
    assert!(errors.contains("Could not connect to 127.0.0.1:9"), "{errors}");
    assert!(!errors.contains("\nI: "), "mmdebstrap's progress is not the reason: {errors}");
    let left: Vec<_> = std::fs::read_dir(cli.state.path().join("work"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in the work directory: {left:?}");
    let images = cli.run(&["--output", "json", "image", "list"]);
    assert_eq!(stdout(&images).trim(), "[]", "{}", stderr(&images));
}

#[test]
fn a_failed_start_prints_its_reason_once_on_stderr_and_its_result_on_stdout() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        autopatch_testkit::ensure_golden(&autopatch_testkit::engine().await).await;
    });
    let cli = Cli::new();
    let component = cli.write(
        "failing.yml",
        "name: failing\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: Run\n        action: ExecuteBash\n        inputs:\n          commands: [ \"for i in $(seq 40); do echo output line $i; done; exit 3\" ]\n",
    );
    let recipe = cli.write(
        "failing.recipe.yml",
        &format!("name: failing\nsemanticVersion: 1.0.0\nparentImage: {}\ncomponents:\n  - componentArn: failing\n", autopatch_testkit::GOLDEN),
    );
    let pipeline = cli.write(
        "failing.pipeline.yml",
        "name: failing\nimageRecipeArn: failing\nimageTestsConfiguration:\n  imageTestsEnabled: false\n",
    );
    for args in [
        ["component", "create", "--file", &component],
        ["recipe", "create", "--file", &recipe],
        ["pipeline", "create", "--file", &pipeline],
    ] {
        let output = cli.run(&args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }

    let output = cli.run(&["pipeline", "start", "failing"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let (out, errors) = (stdout(&output), stderr(&output));
    let builds = cli.run(&["-o", "json", "build", "list"]);
    let builds: serde_json::Value = serde_json::from_slice(&builds.stdout).unwrap();
    let id = builds[0]["id"].as_str().expect("the build's id");
    assert_eq!(out, format!("build {id} FAILED\n"), "the result alone on stdout");
    let all = format!("{out}{errors}");
    assert_eq!(all.matches("exit code 3").count(), 1, "the reason once: {all}");
    assert_eq!(all.matches("output line 40").count(), 1, "the reason once: {all}");
    assert!(errors.contains("==> FAILED: step Run of component failing"), "{errors}");
    // A finished build has nothing to cancel, and the refusal says how it ended.
    let output = cli.run(&["build", "cancel", id]);
    assert_eq!(output.status.code(), Some(2));
    let said = stderr(&output);
    assert!(
        said.starts_with(&format!("error: build {id} is not running: it ended FAILED at ")),
        "{said}"
    );
    assert!(
        said.contains(&format!("hint: `autopatch build show {id}` shows how it ended")),
        "{said}"
    );

    // With -o json, stdout holds the JSON (the reason a field of it).
    let output = cli.run(&["-o", "json", "pipeline", "start", "failing"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", stdout(&output)));
    assert_eq!(answer["state"], "FAILED", "{answer}");
    assert!(answer["reason"].as_str().is_some_and(|r| r.contains("exit code 3")), "{answer}");
    assert_eq!(stderr(&output).matches("exit code 3").count(), 1, "{}", stderr(&output));
}

// The control plane: `serve`, `up`, `down`, and the clients of its API.

impl Cli {
    fn socket(&self) -> std::path::PathBuf {
        self.state.path().join("autopatch.sock")
    }

    fn daemon_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.state.path().join("autopatch.pid")).ok()?.trim().parse().ok()
    }
}

impl Drop for Cli {
    /// A test that failed halfway leaves no daemon behind.
    fn drop(&mut self) {
        if let Some(pid) = self.daemon_pid() {
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        }
    }
}

/// Whether a process runs (a zombie has ended).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !matches!(
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()),
            Some("Z" | "X")
        )
    })
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}{}", stdout(output), stderr(output)))
}

#[test]
fn stack_commands_without_a_daemon_say_how_to_start_one() {
    let cli = Cli::new();
    let template = cli.write("empty.yml", "Resources: {}\n");
    let expected = format!(
        "error: no autopatch daemon is running on {}\nhint: start it with `autopatch up`\n",
        cli.socket().display()
    );
    for args in [
        vec!["stack", "list"],
        vec!["stack", "create", "web", "--template", &template],
        vec!["stack", "delete", "web"],
        vec!["stack", "outputs", "web"],
        vec!["targets", "--target-group", "arn:x"],
        vec!["fleet"],
    ] {
        let output = cli.run(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", stderr(&output));
        assert_eq!(stderr(&output), expected, "{args:?}");
        assert_eq!(stdout(&output), "", "{args:?}");
    }
    assert!(!cli.state.path().join("autopatch.db").exists(), "clients do not open the store");

    let down = cli.run(&["down"]);
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
    assert_eq!(
        stdout(&down),
        format!("no autopatch daemon is running on {}\n", cli.socket().display())
    );
}

#[test]
fn a_template_that_does_not_exist_is_refused_before_calling_the_daemon() {
    let cli = Cli::new();
    let output = cli.run(&["stack", "create", "web", "--template", "/nonexistent/web.yml"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output), "error: template /nonexistent/web.yml not found\n");
}

#[test]
fn a_directory_given_as_the_template_is_called_a_directory() {
    let cli = Cli::new();
    let directory = cli.state.path().display().to_string();
    for args in [
        vec!["stack", "create", "web", "--template", &directory],
        vec!["stack", "update", "web", "--template", &directory],
    ] {
        let output = cli.run(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(
            stderr(&output),
            format!("error: template {directory} is a directory, not a template file\n"),
            "{args:?}"
        );
    }
}

#[test]
fn a_parameter_given_twice_is_refused_naming_it_before_calling_the_daemon() {
    let cli = Cli::new();
    let template = cli.write("empty.yml", "Resources: {}\n");
    let cases = [
        (
            vec!["stack", "create", "web", "--template", &template],
            vec!["--parameter", "Size=2", "--parameter", "Size=3"],
            "--parameter Size=2 and --parameter Size=3",
        ),
        (
            vec!["stack", "update", "web", "--use-previous-template"],
            vec!["--parameter", "Image=a", "--parameter", "Size=2", "--parameter", "Size=2"],
            "--parameter Size=2 and --parameter Size=2",
        ),
        (
            vec!["stack", "update", "web", "--use-previous-template"],
            vec!["--use-previous", "Size", "--parameter", "Size=2"],
            "--parameter Size=2 and --use-previous Size",
        ),
    ];
    for (command, parameters, options) in cases {
        let args: Vec<&str> = command.into_iter().chain(parameters).collect();
        let output = cli.run(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert_eq!(
            stderr(&output),
            format!(
                "error: parameter Size is given twice ({options})\nhint: give each parameter once\n"
            ),
            "{args:?}"
        );
    }
}

#[test]
fn up_starts_one_daemon_down_stops_it_and_instances_are_left_to_the_next_up() {
    let cli = Cli::new();
    let up = cli.run(&["up"]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    let pid = cli.daemon_pid().expect("the daemon wrote its pid file");
    assert!(running(pid));
    assert_eq!(
        stdout(&up),
        format!("autopatch daemon started (pid {pid}) on {}\n", cli.socket().display())
    );
    assert!(
        std::fs::read_to_string(cli.state.path().join("daemon.log"))
            .unwrap()
            .contains("msg=listening")
    );

    let again = cli.run(&["--output", "json", "up"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let ping = json(&again);
    assert_eq!(ping["Pid"], pid);
    assert_eq!(ping["AlreadyRunning"], true);
    assert_eq!(ping["StateDir"], cli.state.path().display().to_string());
    assert!(ping["EngineEndpoint"].as_str().is_some_and(|e| !e.is_empty()), "{ping}");

    // A second daemon on the same state directory is refused, naming the first.
    let second = cli.run(&["serve"]);
    assert_eq!(second.status.code(), Some(1));
    let errors = stderr(&second);
    assert!(
        errors.contains(&format!(
            "error: another autopatch daemon (pid {pid}) is already serving {}\n",
            cli.state.path().display()
        )),
        "{errors}"
    );
    assert!(errors.contains("hint: stop it with `autopatch down`"), "{errors}");
    assert!(running(pid), "the refused daemon left the running one alone");

    // The API answers in AWS's shapes: a fresh state directory has no stacks.
    let list = cli.run(&["--output", "json", "stack", "list"]);
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    assert_eq!(json(&list), serde_json::json!({"StackSummaries": []}));
    let list = cli.run(&["stack", "list"]);
    assert_eq!(stdout(&list), "NAME  STATUS  CREATED  UPDATED  REASON\n");
    // A refusal is the daemon's message and code, exit 1.
    let describe = cli.run(&["stack", "describe", "nothing"]);
    assert_eq!(describe.status.code(), Some(1));
    assert_eq!(
        stderr(&describe),
        "error: Stack with id nothing does not exist (ValidationError)\n"
    );

    let down = cli.run(&["down"]);
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
    assert!(stdout(&down).starts_with(&format!("autopatch daemon (pid {pid}) stopped;")));
    assert!(!running(pid), "down returns once the process has ended");
    assert!(!cli.socket().exists());
    assert_eq!(cli.daemon_pid(), None);
    let log = std::fs::read_to_string(cli.state.path().join("daemon.log")).unwrap();
    assert!(log.contains("reason=\"shutdown requested\""), "{log}");
    assert!(log.contains("msg=stopped"), "{log}");

    let list = cli.run(&["stack", "list"]);
    assert_eq!(list.status.code(), Some(1));
    assert!(stderr(&list).starts_with("error: no autopatch daemon is running"));
}

#[test]
fn a_killed_daemon_leaves_a_stale_socket_that_the_next_up_replaces() {
    let cli = Cli::new();
    let up = cli.run(&["up"]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    let pid = cli.daemon_pid().unwrap();
    assert!(Command::new("kill").arg("-KILL").arg(pid.to_string()).status().unwrap().success());
    wait_until("the killed daemon has ended", || !running(pid));
    assert!(cli.socket().exists(), "kill -9 leaves the socket file");

    let list = cli.run(&["stack", "list"]);
    assert_eq!(list.status.code(), Some(1));
    assert!(
        stderr(&list).starts_with("error: no autopatch daemon is running"),
        "{}",
        stderr(&list)
    );

    let up = cli.run(&["up"]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    let new_pid = cli.daemon_pid().unwrap();
    assert_ne!(new_pid, pid);
    assert!(stdout(&up).starts_with(&format!("autopatch daemon started (pid {new_pid})")));
    let down = cli.run(&["down"]);
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
    assert!(!running(new_pid));
}

#[test]
fn serve_stops_on_sigterm_and_removes_its_socket() {
    let cli = Cli::new();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_autopatch"))
        .arg("--state-dir")
        .arg(cli.state.path())
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let socket = cli.socket();
    wait_until("serve listens", || {
        if let Some(status) = serve.try_wait().unwrap() {
            let mut log = String::new();
            std::io::Read::read_to_string(serve.stderr.as_mut().unwrap(), &mut log).unwrap();
            panic!("serve ended ({status}): {log}");
        }
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    assert_eq!(cli.daemon_pid(), Some(serve.id()));
    assert!(
        Command::new("kill").arg("-TERM").arg(serve.id().to_string()).status().unwrap().success()
    );
    let output = serve.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(log.contains("msg=\"signal received\" signal=SIGTERM"), "{log}");
    assert!(log.contains("msg=stopped"), "{log}");
    assert!(!socket.exists());
    assert_eq!(cli.daemon_pid(), None);
}

#[test]
fn up_reports_a_daemon_that_could_not_start_with_its_log() {
    let cli = Cli::new();
    let up = cli.run_with_env(&["up"], &[("DOCKER_HOST", "unix:///nonexistent/engine.sock")]);
    assert_eq!(up.status.code(), Some(1));
    let errors = stderr(&up);
    assert!(
        errors.contains("no container engine answers at unix:///nonexistent/engine.sock"),
        "{errors}"
    );
    assert!(errors.contains("error: the daemon did not start (exit status: 1)"), "{errors}");
    assert!(
        errors
            .contains(&format!("hint: its log: {}", cli.state.path().join("daemon.log").display())),
        "{errors}"
    );
    assert_eq!(cli.daemon_pid(), None);

    // Failing again for another reason (its TCP address is taken), it shows
    // only this run's log lines.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let up = cli.run(&["up", "--listen", &address]);
    assert_eq!(up.status.code(), Some(1));
    let errors = stderr(&up);
    assert!(errors.contains(&format!("failed to listen on {address}")), "{errors}");
    assert!(!errors.contains("no container engine answers"), "only this run's log lines: {errors}");
}

// Following stack operations, against a scripted daemon (no containers).

#[path = "support/scripted.rs"]
mod scripted;

use scripted::{Scripted, event, serve, step};

const STACK: &str = "AWS::CloudFormation::Stack";
const GROUP: &str = "AWS::AutoScaling::AutoScalingGroup";

#[test]
fn stack_create_prints_each_event_once_oldest_first_and_exits_0_on_create_complete() {
    let cli = Cli::new();
    let template = cli.write("web.yml", "Resources: {}\n");
    let (scripted, _daemon) = serve(
        cli.state.path(),
        Scripted::new(vec![
            step("REVIEW_IN_PROGRESS", vec![]),
            step(
                "CREATE_IN_PROGRESS",
                vec![event("01", "web", STACK, "CREATE_IN_PROGRESS", Some("User Initiated"))],
            ),
            step(
                "CREATE_IN_PROGRESS",
                vec![
                    event("02", "Group", GROUP, "CREATE_IN_PROGRESS", None),
                    event("03", "Group", GROUP, "CREATE_COMPLETE", None),
                ],
            ),
            step("CREATE_COMPLETE", vec![event("04", "web", STACK, "CREATE_COMPLETE", None)]),
        ]),
    );
    let output = cli.run(&[
        "stack",
        "create",
        "web",
        "--template",
        &template,
        "--parameter",
        "ImageId=webapp/1.0.0/1",
        "--parameter",
        "Url=http://x/?a=b",
        "--disable-rollback",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "stack web CREATE_COMPLETE\n");
    let progress = stderr(&output);
    let lines: Vec<&str> = progress.lines().collect();
    assert_eq!(lines[0], format!("creating stack web ({})", scripted::STACK_ID));
    let events: Vec<&str> =
        lines[1..].iter().map(|line| line.split_whitespace().take(4).last().unwrap()).collect();
    assert_eq!(
        lines[1..].iter().map(|line| line.split("  ").next().unwrap()).collect::<Vec<_>>(),
        [
            "2026-11-24T12:00:01.000Z",
            "2026-11-24T12:00:02.000Z",
            "2026-11-24T12:00:03.000Z",
            "2026-11-24T12:00:04.000Z"
        ],
        "every event once, oldest first: {progress}"
    );
    assert_eq!(
        events,
        ["CREATE_IN_PROGRESS", "CREATE_IN_PROGRESS", "CREATE_COMPLETE", "CREATE_COMPLETE"]
    );
    assert!(lines[1].ends_with("CREATE_IN_PROGRESS    User Initiated"), "{}", lines[1]);

    let (operation, input) = &scripted.calls()[0];
    assert_eq!(operation, "CreateStack");
    assert_eq!(
        input,
        &serde_json::json!({
            "StackName": "web",
            "TemplateURL": format!("file://{template}"),
            "Parameters": [
                {"ParameterKey": "ImageId", "ParameterValue": "webapp/1.0.0/1"},
                {"ParameterKey": "Url", "ParameterValue": "http://x/?a=b"},
            ],
            "DisableRollback": true,
            "Capabilities": [],
        })
    );
}

#[test]
fn a_stack_create_that_rolls_back_exits_1_with_the_reason() {
    let cli = Cli::new();
    let template = cli.write("web.yml", "Resources: {}\n");
    let mut rolled_back =
        step("ROLLBACK_COMPLETE", vec![event("04", "web", STACK, "ROLLBACK_COMPLETE", None)]);
    rolled_back.reason = Some("The following resource(s) failed to create: [Group]");
    let (_scripted, _daemon) = serve(
        cli.state.path(),
        Scripted::new(vec![
            step("REVIEW_IN_PROGRESS", vec![]),
            step("CREATE_IN_PROGRESS", vec![event("01", "web", STACK, "CREATE_IN_PROGRESS", None)]),
            step(
                "ROLLBACK_IN_PROGRESS",
                vec![
                    event(
                        "02",
                        "Group",
                        GROUP,
                        "CREATE_FAILED",
                        Some("2 of 2 instances did not signal within PT1M"),
                    ),
                    event("03", "web", STACK, "ROLLBACK_IN_PROGRESS", None),
                ],
            ),
            rolled_back,
        ]),
    );
    let output = cli.run(&["stack", "create", "web", "--template", &template]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    let errors = stderr(&output);
    assert!(
        errors.contains("CREATE_FAILED         2 of 2 instances did not signal within PT1M"),
        "{errors}"
    );
    assert!(
        errors.ends_with("error: stack web ROLLBACK_COMPLETE: The following resource(s) failed to create: [Group]\n"),
        "{errors}"
    );
}

#[test]
fn a_template_the_daemon_refuses_prints_its_diagnostics_as_they_are() {
    let cli = Cli::new();
    let template = cli.write("web.yml", "Resources: {}\n");
    let diagnostics = format!(
        "{template}:3:5: error: unknown key \"Typo\"\n{template}:9:1: error: no resource \"Nope\""
    );
    let mut scripted = Scripted::new(vec![step("REVIEW_IN_PROGRESS", vec![])]);
    scripted.refusal = Some(autopatch_stacks::api::ApiError::validation(diagnostics.clone()));
    let (scripted, _daemon) = serve(cli.state.path(), scripted);
    let output = cli.run(&["stack", "create", "web", "--template", &template]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!("{diagnostics}\nValidationError: stack web was not created (2 problems)\n")
    );
    assert_eq!(scripted.operations(), ["CreateStack"], "nothing followed");

    let mut other = Scripted::new(vec![step("REVIEW_IN_PROGRESS", vec![])]);
    other.refusal =
        Some(autopatch_stacks::api::ApiError::already_exists("Stack [web] already exists"));
    let cli = Cli::new();
    let template = cli.write("web.yml", "Resources: {}\n");
    let (_other, _daemon) = serve(cli.state.path(), other);
    let output = cli.run(&["stack", "create", "web", "--template", &template]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output), "error: Stack [web] already exists (AlreadyExistsException)\n");
}

#[test]
fn no_wait_prints_the_aws_response_and_does_not_follow() {
    let cli = Cli::new();
    let template = cli.write("web.yml", "Resources: {}\n");
    let (scripted, _daemon) = serve(
        cli.state.path(),
        Scripted::new(vec![step("REVIEW_IN_PROGRESS", vec![]), step("CREATE_IN_PROGRESS", vec![])]),
    );
    let output = cli.run(&[
        "--output",
        "json",
        "stack",
        "create",
        "web",
        "--template",
        &template,
        "--no-wait",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(json(&output), serde_json::json!({"StackId": scripted::STACK_ID}));
    assert_eq!(scripted.operations(), ["CreateStack"]);
}

#[test]
fn stack_update_prints_only_its_own_events_and_tells_failure_and_nothing_to_do_apart() {
    let old = || {
        vec![
            event("01", "web", STACK, "CREATE_IN_PROGRESS", None),
            event("02", "web", STACK, "CREATE_COMPLETE", None),
        ]
    };
    // An update that rolls back.
    let cli = Cli::new();
    let (scripted, _daemon) = serve(
        cli.state.path(),
        Scripted::new(vec![
            step("CREATE_COMPLETE", old()),
            step("UPDATE_IN_PROGRESS", vec![event("03", "web", STACK, "UPDATE_IN_PROGRESS", None)]),
            step(
                "UPDATE_ROLLBACK_COMPLETE",
                vec![event("04", "web", STACK, "UPDATE_ROLLBACK_COMPLETE", None)],
            ),
        ]),
    );
    let output = cli.run(&[
        "stack",
        "update",
        "web",
        "--use-previous-template",
        "--parameter",
        "ImageId=webapp/1.0.0/2",
        "--use-previous",
        "Size",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(!errors.contains("CREATE_"), "events from before the update: {errors}");
    assert!(
        errors.contains("UPDATE_IN_PROGRESS") && errors.contains("UPDATE_ROLLBACK_COMPLETE"),
        "{errors}"
    );
    assert!(
        errors.ends_with("error: stack web UPDATE_ROLLBACK_COMPLETE: no reason given\n"),
        "{errors}"
    );
    let update =
        scripted.calls().into_iter().find(|(operation, _)| operation == "UpdateStack").unwrap().1;
    assert_eq!(update["UsePreviousTemplate"], true);
    assert_eq!(
        update["Parameters"],
        serde_json::json!([
            {"ParameterKey": "ImageId", "ParameterValue": "webapp/1.0.0/2"},
            {"ParameterKey": "Size", "UsePreviousValue": true},
        ])
    );

    // An update with nothing to do (the daemon answers as CloudFormation
    // does): success, unless the script asks otherwise.
    let cli = Cli::new();
    let mut scripted = Scripted::new(vec![step("UPDATE_COMPLETE", old())]);
    scripted.refusal =
        Some(autopatch_stacks::api::ApiError::validation("No updates are to be performed."));
    let (scripted, _daemon) = serve(cli.state.path(), scripted);
    let output = cli.run(&["stack", "update", "web", "--use-previous-template"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "stack web is already current: no updates to perform\n");
    let output = cli.run(&["stack", "update", "web", "--use-previous-template", "--fail-on-empty"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(
        scripted.operations().iter().filter(|op| *op == "UpdateStack").count(),
        2,
        "{:?}",
        scripted.operations()
    );
    // Any other refusal is an error.
    let cli = Cli::new();
    let mut refused = Scripted::new(vec![step("UPDATE_COMPLETE", old())]);
    refused.refusal = Some(autopatch_stacks::api::ApiError::validation(
        "template:4:20: error: image localhost/nope:1 does not exist",
    ));
    let (_refused, _daemon) = serve(cli.state.path(), refused);
    let output = cli.run(&["stack", "update", "web", "--use-previous-template"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("image localhost/nope:1 does not exist"),
        "{}",
        stderr(&output)
    );

    // Clap: a template or the previous one, not neither.
    let output = cli.run(&["stack", "update", "web"]);
    assert_eq!(output.status.code(), Some(2));
}

/// A failure at the stack's level (an export in use, an output that does
/// not evaluate) has its reason on the stack's rollback event, not on a
/// resource's: the last line gives it.
#[test]
fn a_rollback_for_a_stack_level_reason_ends_with_that_reason() {
    let cli = Cli::new();
    let template = cli.write("web.yml", "Resources: {}\n");
    let reason = "Export with name shared-x is already exported by stack exp1";
    let (_scripted, _daemon) = serve(
        cli.state.path(),
        Scripted::new(vec![
            step("REVIEW_IN_PROGRESS", vec![]),
            step("CREATE_IN_PROGRESS", vec![event("01", "web", STACK, "CREATE_IN_PROGRESS", None)]),
            step(
                "ROLLBACK_IN_PROGRESS",
                vec![event("02", "web", STACK, "ROLLBACK_IN_PROGRESS", Some(reason))],
            ),
            step("ROLLBACK_COMPLETE", vec![event("03", "web", STACK, "ROLLBACK_COMPLETE", None)]),
        ]),
    );
    let output = cli.run(&["stack", "create", "web", "--template", &template]);
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(
        errors.ends_with(&format!("error: stack web ROLLBACK_COMPLETE: web: {reason}\n")),
        "{errors}"
    );
}

/// A daemon that stops while a command follows its operation has not failed
/// the operation (it resumes when the daemon starts again): the command
/// says so, with its own exit code, not the 1 of a failed update.
#[test]
fn a_follower_whose_daemon_stops_says_the_operation_resumes_and_exits_4() {
    let cli = Cli::new();
    let (scripted, daemon) = serve(
        cli.state.path(),
        Scripted::new(vec![
            step("UPDATE_COMPLETE", vec![]),
            step("UPDATE_IN_PROGRESS", vec![event("01", "web", STACK, "UPDATE_IN_PROGRESS", None)]),
        ]),
    );
    let follower =
        binary::command(cli.state.path(), &["stack", "update", "web", "--use-previous-template"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    // Following: the update was started and the stack read since.
    wait_until("the update is followed", || {
        scripted.operations().iter().filter(|operation| *operation == "DescribeStacks").count() >= 2
    });
    drop(daemon);
    let output = follower.wait_with_output().unwrap();
    let errors = stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{errors}");
    assert!(
        errors.contains(
            "error: the autopatch daemon stopped while stack web was UPDATE_IN_PROGRESS: the \
             operation did not end, and resumes when the daemon starts again\nhint: start it with \
             `autopatch up`"
        ),
        "{errors}"
    );
}

/// SIGTERM and SIGINT stop the following, not the operation, each saying
/// so and exiting as the shell reports the signal (143, 130).
#[test]
fn a_signal_stops_following_and_says_the_operation_goes_on() {
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let cli = Cli::new();
        let (scripted, _daemon) = serve(
            cli.state.path(),
            Scripted::new(vec![
                step("UPDATE_COMPLETE", vec![]),
                step(
                    "UPDATE_IN_PROGRESS",
                    vec![event("01", "web", STACK, "UPDATE_IN_PROGRESS", None)],
                ),
            ]),
        );
        let follower = binary::command(
            cli.state.path(),
            &["stack", "update", "web", "--use-previous-template"],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
        wait_until("the update is followed", || {
            scripted.operations().iter().filter(|operation| *operation == "DescribeStacks").count()
                >= 2
        });
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(follower.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success());
        let output = follower.wait_with_output().unwrap();
        let errors = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "SIG{signal}: {errors}");
        assert!(
            errors.contains(&format!(
                "SIG{signal}: stopped following; the operation goes on in the daemon"
            )),
            "SIG{signal}: {errors}"
        );
        assert!(!scripted.operations().iter().any(|operation| operation == "CancelUpdateStack"));
    }
}

#[test]
fn stack_cancel_update_follows_the_rollback_and_a_refusal_is_an_error() {
    let cli = Cli::new();
    let (scripted, _daemon) = serve(
        cli.state.path(),
        Scripted::new(vec![
            step("UPDATE_IN_PROGRESS", vec![event("01", "web", STACK, "UPDATE_IN_PROGRESS", None)]),
            step(
                "UPDATE_ROLLBACK_IN_PROGRESS",
                vec![
                    event("02", "Group", GROUP, "UPDATE_FAILED", Some("Resource update cancelled")),
                    event(
                        "03",
                        "web",
                        STACK,
                        "UPDATE_ROLLBACK_IN_PROGRESS",
                        Some("Stack update cancelled"),
                    ),
                ],
            ),
            step(
                "UPDATE_ROLLBACK_COMPLETE",
                vec![event("04", "web", STACK, "UPDATE_ROLLBACK_COMPLETE", None)],
            ),
        ]),
    );
    let output = cli.run(&["stack", "cancel-update", "web"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "stack web UPDATE_ROLLBACK_COMPLETE\n");
    let errors = stderr(&output);
    assert!(errors.contains("Resource update cancelled"), "{errors}");
    assert!(!errors.contains("UPDATE_IN_PROGRESS"), "events from before the cancel: {errors}");
    let cancel = scripted
        .calls()
        .into_iter()
        .find(|(operation, _)| operation == "CancelUpdateStack")
        .expect("CancelUpdateStack called")
        .1;
    assert_eq!(cancel["StackName"], scripted::STACK_ID);

    let cli = Cli::new();
    let mut idle = Scripted::new(vec![step("UPDATE_COMPLETE", vec![])]);
    idle.refusal = Some(autopatch_stacks::api::ApiError::validation(
        "CancelUpdateStack cannot be called from current stack status UPDATE_COMPLETE",
    ));
    let (_idle, _daemon) = serve(cli.state.path(), idle);
    let output = cli.run(&["stack", "cancel-update", "web"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot be called from current stack status"));
}

#[test]
fn stack_delete_follows_to_delete_complete_and_a_missing_stack_is_nothing_to_delete() {
    let cli = Cli::new();
    let (scripted, _daemon) = serve(
        cli.state.path(),
        Scripted::new(vec![
            step("CREATE_COMPLETE", vec![event("01", "web", STACK, "CREATE_COMPLETE", None)]),
            step("DELETE_IN_PROGRESS", vec![event("02", "web", STACK, "DELETE_IN_PROGRESS", None)]),
            step("DELETE_COMPLETE", vec![event("03", "web", STACK, "DELETE_COMPLETE", None)]),
        ]),
    );
    let output = cli.run(&["stack", "delete", "web"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "stack web DELETE_COMPLETE\n");
    assert!(!stderr(&output).contains("CREATE_COMPLETE"), "{}", stderr(&output));
    let delete =
        scripted.calls().into_iter().find(|(operation, _)| operation == "DeleteStack").unwrap().1;
    assert_eq!(delete, serde_json::json!({"StackName": scripted::STACK_ID}), "deleted by id");

    let cli = Cli::new();
    let mut missing = Scripted::new(vec![step("DELETE_COMPLETE", vec![])]);
    missing.missing = true;
    let (missing, _daemon) = serve(cli.state.path(), missing);
    let output = cli.run(&["stack", "delete", "web"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "stack web does not exist: nothing to delete\n");
    assert_eq!(missing.operations(), ["DescribeStacks"]);
}

#[test]
fn the_lab_base_stack_is_created_read_and_deleted_through_the_daemon() {
    let cli = Cli::new();
    let up = cli.run(&["up"]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    let template = concat!(env!("CARGO_MANIFEST_DIR"), "/../../templates/pattern3-base.yml");

    let create = cli.run(&["stack", "create", "base", "--template", template]);
    assert_eq!(create.status.code(), Some(0), "{}", stderr(&create));
    assert_eq!(stdout(&create), "stack base CREATE_COMPLETE\n");
    let progress = stderr(&create);
    assert!(progress.lines().nth(1).unwrap().contains("base"), "{progress}");
    assert!(progress.lines().last().unwrap().ends_with("CREATE_COMPLETE"), "{progress}");

    let outputs = cli.run(&["stack", "outputs", "base"]);
    let text = stdout(&outputs);
    let vpc = text.lines().find(|line| line.starts_with("OutputPattern3VPC ")).expect(&text);
    assert!(vpc.ends_with("export base-VpcId"), "{vpc}");
    let exports = json(&cli.run(&["--output", "json", "stack", "exports"]));
    let names: Vec<&str> = exports["Exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"base-VpcId") && names.contains(&"base-PrivateSubnet2"), "{names:?}");

    let delete = cli.run(&["stack", "delete", "base"]);
    assert_eq!(delete.status.code(), Some(0), "{}", stderr(&delete));
    assert_eq!(stdout(&delete), "stack base DELETE_COMPLETE\n");
    let list = json(&cli.run(&["--output", "json", "stack", "list"]));
    assert_eq!(list, serde_json::json!({"StackSummaries": []}), "deleted stacks are hidden");
    let all = json(&cli.run(&["--output", "json", "stack", "list", "--all"]));
    assert_eq!(all["StackSummaries"][0]["StackStatus"], "DELETE_COMPLETE");

    let down = cli.run(&["down"]);
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
}

/// Makes sure the webapp test image exists (baked once per machine).
fn webapp_image() -> &'static str {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let engine = autopatch_testkit::engine().await;
        autopatch_testkit::ensure_webapp(&engine).await;
    });
    autopatch_testkit::WEBAPP
}

/// The body of `url`, or the failure, with curl (an external oracle).
fn curl(url: &str) -> Result<String, String> {
    let output =
        Command::new("curl").args(["-sS", "--fail", "--max-time", "5", url]).output().unwrap();
    if output.status.success() { Ok(stdout(&output)) } else { Err(stderr(&output)) }
}

/// The instance ids of every group, sorted.
fn instance_ids(cli: &Cli) -> Vec<String> {
    let fleet = json(&cli.run(&["--output", "json", "fleet"]));
    let mut ids: Vec<String> = fleet["AutoScalingGroups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["Instances"].as_array().unwrap().iter())
        .map(|instance| instance["InstanceId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Instance containers (any state) carrying this group's label.
fn group_containers(group: &str) -> Vec<String> {
    let output = Command::new("podman")
        .args([
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("label=autopatch.group={group}"),
        ])
        .output()
        .unwrap();
    stdout(&output).lines().map(str::to_owned).collect()
}

#[test]
fn a_daemon_killed_with_the_lab_stacks_up_is_restarted_and_the_url_keeps_working() {
    let image = webapp_image();
    let cli = Cli::new();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../templates");
    assert_eq!(cli.run(&["up"]).status.code(), Some(0));
    let base =
        cli.run(&["stack", "create", "base", "--template", &format!("{root}/pattern3-base.yml")]);
    assert_eq!(base.status.code(), Some(0), "{}", stderr(&base));
    let parameters = ["--parameter", "BaselineVpcStack=base", "--parameter"];
    let image_parameter = format!("AmazonMachineImage={image}");
    let template = format!("{root}/pattern3-app.yml");
    let mut args = vec!["stack", "create", "app", "--template", &template];
    args.extend(parameters);
    args.push(&image_parameter);
    let app = cli.run(&args);
    assert_eq!(app.status.code(), Some(0), "{}", stderr(&app));

    let described = json(&cli.run(&["--output", "json", "stack", "describe", "app"]));
    let stack = if described["Stacks"].is_array() { &described["Stacks"][0] } else { &described };
    let dns = stack["Outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|output| output["OutputKey"] == "OutputPattern3ALBDNSName")
        .and_then(|output| output["OutputValue"].as_str())
        .expect("the DNS name output")
        .to_owned();
    let url = format!("http://{dns}/details.php");
    wait_until("the page is served", || curl(&url).is_ok());
    let before = instance_ids(&cli);
    assert_eq!(before.len(), 2, "{before:?}");
    let group = json(&cli.run(&["--output", "json", "fleet"]))["AutoScalingGroups"][0]["AutoScalingGroupName"]
        .as_str()
        .unwrap()
        .to_owned();

    // kill -9: no chance to clean up or save anything.
    let pid = cli.daemon_pid().unwrap();
    assert!(Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
    wait_until("the daemon is dead", || !running(pid));
    assert!(curl(&url).is_err(), "the load balancer lives in the daemon: it is down with it");
    assert_eq!(group_containers(&group).len(), 2, "instances outlive the daemon");

    let up = cli.run(&["up"]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    // The listener is back on the same address, and the re-adopted targets
    // serve at once: no health-check wait, no new instances.
    let page = curl(&url).unwrap_or_else(|error| panic!("right after the restart: {error}"));
    assert!(
        page.contains(&format!("Amazon Image Id:</b> {}", autopatch_testkit::WEBAPP)),
        "{page}"
    );
    for _ in 0..10 {
        curl(&url).unwrap();
    }
    // A few controller rounds later the fleet is the same two instances.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(instance_ids(&cli), before, "no instance duplicated or lost");
    assert_eq!(group_containers(&group).len(), 2);

    let delete = cli.run(&["stack", "delete", "app"]);
    assert_eq!(delete.status.code(), Some(0), "{}", stderr(&delete));
    assert!(group_containers(&group).is_empty(), "delete leaves no container");
    assert_eq!(cli.run(&["stack", "delete", "base"]).status.code(), Some(0));
    assert_eq!(cli.run(&["down"]).status.code(), Some(0));
}
