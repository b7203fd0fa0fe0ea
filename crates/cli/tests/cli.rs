//! The `autopatch` binary as a user runs it: exit codes, messages on
//! stderr, data on stdout, and bad input changing nothing.

use std::process::{Command, Output};

struct Cli {
    state: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        Cli { state: tempfile::tempdir().unwrap() }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_env(args, &[])
    }

    fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_autopatch"));
        command.arg("--state-dir").arg(self.state.path()).args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.state.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

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

    let list = cli.run(&["--output", "json", "component", "list"]);
    assert!(list.status.success());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&list.stdout).unwrap(),
        serde_json::json!([])
    );
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
    assert!(errors.contains("podman system service"), "{errors}");
}

#[test]
fn unknown_images_and_builds_are_clear_errors() {
    let cli = Cli::new();
    let output = cli.run(&["image", "show", "nothing/1.0.0/1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("image \"nothing/1.0.0/1\" not found"), "{}", stderr(&output));
    assert!(stderr(&output).contains("hint: list images with `autopatch image list`"));

    let output = cli.run(&["build", "cancel", "b-nothing"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("build b-nothing is not running"), "{}", stderr(&output));
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
