//! The state directory: commands that read refuse a directory with no state
//! (a mistyped `--state-dir`) without making one, commands that write make
//! it, a directory this user cannot write is named with what to do, and
//! `--help` shows the default.

#[path = "support/binary.rs"]
#[allow(dead_code)]
mod binary;

use std::process::Command;

use binary::{autopatch, stderr};

const COMPONENT: &str = "name: hello\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: Hi\n        action: ExecuteBash\n        inputs:\n          commands: [ \"echo hi\" ]\n";

/// Every command that only reads state (or acts on what is registered
/// there: a build, a pipeline).
const READ_COMMANDS: [&[&str]; 10] = [
    &["component", "list"],
    &["recipe", "list"],
    &["pipeline", "list"],
    &["pipeline", "start", "webapp"],
    &["image", "list"],
    &["image", "show", "golden"],
    &["image", "diff", "golden", "webapp"],
    &["build", "list"],
    &["build", "show", "b-1"],
    &["build", "cancel", "b-1"],
];

#[test]
fn read_commands_where_there_is_no_state_say_so_and_make_nothing() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("typo");
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let cases = [(&missing, "the directory does not exist"), (&empty, "it has no autopatch.db")];
    for (state, why) in cases {
        for args in READ_COMMANDS {
            let text = autopatch(state, args);
            let json = autopatch(state, &[&["-o", "json"], args].concat());
            assert!(text.stdout.is_empty(), "{args:?}");
            // With -o json, the error is on stdout too, for scripts.
            let answer: serde_json::Value = serde_json::from_slice(&json.stdout)
                .unwrap_or_else(|error| panic!("{args:?}: not JSON ({error})"));
            let message = format!("no autopatch state in {}: {why}", state.display());
            assert_eq!(answer["error"]["message"], message.as_str(), "{args:?}: {answer}");
            assert_eq!(answer["error"]["code"], 2, "{args:?}: {answer}");
            assert!(
                answer["error"]["hint"]
                    .as_str()
                    .is_some_and(|hint| hint.starts_with("check --state-dir")),
                "{args:?}: {answer}"
            );
            for output in [text, json] {
                let said = stderr(&output);
                assert_eq!(output.status.code(), Some(2), "{args:?}: {said}");
                assert!(
                    said.starts_with(&format!(
                        "error: no autopatch state in {}: {why}\nhint: check --state-dir",
                        state.display()
                    )),
                    "{args:?}: {said}"
                );
            }
        }
    }
    // An update check takes an engine image as well, so it runs without
    // state (and makes none), saying so when the image is not found.
    let output = autopatch(&missing, &["image", "check-updates", "nothing-here"]);
    let said = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(
        said.starts_with(&format!(
            "error: image \"nothing-here\" not found\nhint: there is no autopatch state in {}, so \
             only the engine's images are known",
            missing.display()
        )),
        "{said}"
    );
    assert!(!missing.exists(), "a read command made the state directory");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "a read command wrote in it");

    // A document alone needs no state at all.
    let file = root.path().join("hello.yml");
    std::fs::write(&file, COMPONENT).unwrap();
    let file = file.to_str().unwrap();
    let output = autopatch(&missing, &["component", "validate", "--file", file]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!missing.exists(), "validate made the state directory");

    // A command that writes makes it; then reading works.
    let output = autopatch(&missing, &["component", "create", "--file", file]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = autopatch(&missing, &["component", "list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("hello"));
}

/// Whether this process runs as root (which writes anywhere the mode bits
/// say it may not).
fn root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status.lines().find_map(|line| line.strip_prefix("Uid:")).unwrap();
    uid.split_whitespace().nth(1) == Some("0")
}

/// A registration the registry refuses where there is no state yet leaves
/// no state behind: bad input changes nothing. Each is refused for what the
/// document says (its position, the reference it makes), not for the
/// missing state.
#[test]
fn a_refused_registration_makes_no_state_directory() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("new-state");
    let write = |name: &str, text: &str| {
        let path = root.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let bad_component = write("bad.yml", &COMPONENT.replace("ExecuteBash", "ExecuteBsh"));
    let recipe = write(
        "recipe.yml",
        "name: web\nsemanticVersion: 1.0.0\nparentImage: golden/1.0.0\ncomponents:\n  - componentArn: hello/1.0.0\n",
    );
    let pipeline = write("pipeline.yml", "name: web\nimageRecipeArn: web/1.0.0\n");
    let cases: [(&[&str], String); 3] = [
        (
            &["component", "create", "--file", &bad_component],
            format!("{bad_component}:7:17: error: found the unknown action `ExecuteBsh`"),
        ),
        (&["recipe", "create", "--file", &recipe], "hello/1.0.0".to_owned()),
        (&["pipeline", "create", "--file", &pipeline], "web/1.0.0".to_owned()),
    ];
    for (args, said) in cases {
        let output = autopatch(&missing, args);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(&said), "{args:?}: expected {said:?} in {text}");
        assert!(!text.contains("no autopatch state"), "{args:?}: {text}");
        assert!(!missing.exists(), "{args:?} made the state directory");
    }
    // The same component, valid, is registered: the state is made then.
    let good = write("good.yml", COMPONENT);
    let output = autopatch(&missing, &["component", "create", "--file", &good]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(missing.join("autopatch.db").exists());
}

#[test]
fn a_state_directory_this_user_cannot_write_is_named_with_what_to_do() {
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("hello.yml");
    std::fs::write(&file, COMPONENT).unwrap();
    let made = autopatch(state.path(), &["component", "create", "--file", file.to_str().unwrap()]);
    assert!(made.status.success(), "{}", stderr(&made));
    let dir = state.path().display().to_string();
    let binary = env!("CARGO_BIN_EXE_autopatch");

    // Another user's directory: readable, not writable.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    // As another user than the directory's owner (root writes anyway).
    let other_user = || {
        if root() {
            let mut command = Command::new("setpriv");
            command.args(["--reuid=65534", "--regid=65534", "--clear-groups", binary]);
            command
        } else {
            Command::new(binary)
        }
    };
    for args in [["component", "list"], ["build", "list"]] {
        let output = other_user().args(["--state-dir", &dir]).args(args).output().unwrap();
        let said = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {said}");
        assert!(
            said.starts_with(&format!(
                "error: the state directory {dir} is not writable (permission denied): autopatch \
                 writes there even to read"
            )),
            "{args:?}: {said}"
        );
        assert!(said.contains("\nhint: make it writable for this user"), "{said}");
    }
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // A read-only mount (root only can make one, in a mount namespace of its own).
    if root() {
        let output = Command::new("unshare")
            .args([
                "--mount",
                "sh",
                "-c",
                "mount --bind -o ro \"$1\" \"$1\" && exec \"$0\" --state-dir \"$1\" image list",
            ])
            .args([binary, &dir])
            .output()
            .unwrap();
        let said = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{said}");
        assert!(
            said.starts_with(&format!(
                "error: the state directory {dir} is not writable (read-only file system)"
            )),
            "{said}"
        );
    }
    // Writable again, it opens as before.
    let output = autopatch(state.path(), &["component", "list"]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn help_shows_the_default_state_directory() {
    let help = |env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_autopatch"));
        command.arg("--help").env_remove("AUTOPATCH_STATE_DIR").env_remove("XDG_STATE_HOME");
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let text = help(&[("HOME", "/home/ada")]);
    assert!(text.contains("[default: /home/ada/.local/state/autopatch]"), "{text}");
    let text = help(&[("HOME", "/home/ada"), ("XDG_STATE_HOME", "/var/lib/ada")]);
    assert!(text.contains("[default: /var/lib/ada/autopatch]"), "{text}");
}
