//! Command-line values are checked where they are given: a bad version, name,
//! suite, mirror or listen address is refused by the argument parser naming
//! the flag (exit 2), before anything is read, written or started.

#[path = "support/binary.rs"]
#[allow(dead_code)]
mod binary;

use binary::{autopatch, stderr};

/// `args` is refused by the parser: exit 2, clap's message naming the flag
/// and value with `reason`, nothing on stdout.
fn assert_refused(state: &std::path::Path, args: &[&str], flag: &str, value: &str, reason: &str) {
    let output = autopatch(state, args);
    let said = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {said}");
    let expected = format!("error: invalid value '{value}' for '{flag}': {reason}");
    assert!(said.starts_with(&expected), "{args:?}:\n{said}\nexpected:\n{expected}");
    assert!(output.stdout.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&output.stdout));
}

const COMPONENT: &str = "name: c1\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: One\n        action: ExecuteBash\n        inputs:\n          commands: [ \"echo hi\" ]\n";

const NAME_RULE: &str = "expected a name made of letters, digits, `-` and `_`";

#[test]
fn component_create_refuses_a_bad_version_or_name_as_a_flag_not_a_place_in_the_file() {
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("c1.yml");
    std::fs::write(&file, COMPONENT).unwrap();
    let file = file.to_str().unwrap();

    for (version, reason) in [
        ("1.0", "expected three numbers separated by dots, like 1.0.0"),
        ("1.0.0.0", "expected three numbers separated by dots, like 1.0.0"),
        ("v1.0.0", "each part must be a non-negative integer"),
        ("01.0.0", "a part must not have leading zeros"),
    ] {
        let args = ["component", "create", "--file", file, "--version", version];
        assert_refused(state.path(), &args, "--version <VERSION>", version, reason);
        let said = stderr(&autopatch(state.path(), &args));
        assert!(!said.contains("c1.yml"), "not a problem of the file: {said}");
    }
    for name in ["../../evil", "my component", ""] {
        assert_refused(
            state.path(),
            &["component", "create", "--file", file, "--name", name],
            "--name <NAME>",
            name,
            NAME_RULE,
        );
    }

    // Nothing was opened, let alone registered; good values still are.
    assert!(!state.path().join("autopatch.db").exists(), "the state was opened");
    let output = autopatch(
        state.path(),
        &["component", "create", "--file", file, "--name", "my-step_2", "--version", "1.2.3"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "component my-step_2/1.2.3: registered"
    );
}

#[test]
fn image_bootstrap_checks_its_version_name_suite_and_mirror_before_running_mmdebstrap() {
    let state = tempfile::tempdir().unwrap();
    // An unreachable mirror: were a value let through, mmdebstrap would fail
    // there instead, after a few seconds, with another message.
    let bootstrap = |flag: &str, value: &str| -> Vec<String> {
        let mut args: Vec<String> = ["image", "bootstrap", "--mirror", "http://127.0.0.1:9/debian"]
            .map(String::from)
            .into();
        if flag == "--mirror" {
            args.truncate(2);
        }
        args.extend([flag.to_owned(), value.to_owned()]);
        args
    };
    let cases = [
        ("--version", "1.0", "expected three numbers separated by dots, like 1.0.0"),
        ("--version", "1.0.x", "each part must be a non-negative integer"),
        (
            "--name",
            "../../evil",
            "expected lowercase letters, digits, `-` and `_` (it names the image's engine repository)",
        ),
        (
            "--name",
            "Golden",
            "expected lowercase letters, digits, `-` and `_` (it names the image's engine repository)",
        ),
        ("--suite", "bookworm contrib", SUITE_RULE),
        // The archive's names are lowercase: the mirror would answer 404.
        ("--suite", "Bookworm", SUITE_RULE),
        ("--suite", "", SUITE_RULE),
        ("--mirror", "http://deb.debian.org/debian bookworm", MIRROR_RULE),
        ("--mirror", "deb.debian.org/debian", MIRROR_RULE),
        // apt's ftp method is disabled; other schemes have none.
        ("--mirror", "ftp://ftp.debian.org/debian", MIRROR_RULE),
        ("--mirror", "gopher://deb.debian.org/debian", MIRROR_RULE),
        ("--mirror", "http://", MIRROR_RULE),
        // Package names as Debian policy has them.
        ("--include", "", PACKAGE_RULE),
        ("--include", "Apache2", PACKAGE_RULE),
        ("--include", "a", PACKAGE_RULE),
        ("--include", "+x", PACKAGE_RULE),
        ("--include", "php;rm", PACKAGE_RULE),
    ];
    for (flag, value, reason) in cases {
        let args = bootstrap(flag, value);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let shown = format!("{flag} <{}>", flag.trim_start_matches('-').to_uppercase());
        assert_refused(state.path(), &args, &shown, value, reason);
    }
    // A list is checked name by name: an empty one between commas too.
    let args = bootstrap("--include", "apache2,,php");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_refused(state.path(), &args, "--include <INCLUDE>", "", PACKAGE_RULE);
    let work = state.path().join("work");
    assert!(!work.exists(), "nothing was started");
}

const SUITE_RULE: &str =
    "expected a Debian codename or suite in lowercase, like bookworm or stable";

const MIRROR_RULE: &str = "expected an http://, https://, file:/ or copy:/ URL without spaces, \
     like http://deb.debian.org/debian (apt's ftp method is disabled)";

const PACKAGE_RULE: &str = "expected Debian package names separated by commas, like apache2,php: \
     lowercase letters, digits, `+`, `-` and `.`, at least two characters, starting with a \
     letter or digit";

#[test]
fn image_bootstrap_takes_the_suites_mirrors_and_packages_mmdebstrap_takes() {
    // Accepted by the parser: the bootstrap then fails at once, on the
    // missing local archive, not on the argument.
    let state = tempfile::tempdir().unwrap();
    let output = autopatch(
        state.path(),
        &[
            "image",
            "bootstrap",
            "--name",
            &format!("accepted-{}", std::process::id()),
            "--suite",
            "bookworm-backports",
            "--mirror",
            "file:///nonexistent/debian",
            "--include",
            "libstdc++6,g++-12,apache2,php8.2",
        ],
    );
    let said = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("mmdebstrap failed"), "{said}");
    assert!(!said.contains("invalid value"), "{said}");
}

#[test]
fn pipeline_start_refuses_a_name_no_pipeline_can_have() {
    let state = tempfile::tempdir().unwrap();
    assert_refused(state.path(), &["pipeline", "start", "../x"], "<NAME>", "../x", NAME_RULE);
}

#[test]
fn listen_says_what_address_it_expects() {
    let state = tempfile::tempdir().unwrap();
    for command in ["up", "serve"] {
        assert_refused(
            state.path(),
            &[command, "--listen", "example.org:7070"],
            "--listen <ADDRESS:PORT>",
            "example.org:7070",
            "expected an IP address and a port, like 127.0.0.1:7070 or [::1]:7070 (host names \
             other than localhost are not resolved)",
        );
        assert_refused(
            state.path(),
            &[command, "--listen", "0.0.0.0:7070"],
            "--listen <ADDRESS:PORT>",
            "0.0.0.0:7070",
            "0.0.0.0 is not a loopback address: the API has no authentication, so it listens on \
             loopback only, like 127.0.0.1:7070",
        );
        assert_refused(
            state.path(),
            &[command, "--listen", "localhost:http"],
            "--listen <ADDRESS:PORT>",
            "localhost:http",
            "invalid port \"http\": expected a number from 0 to 65535",
        );
    }
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0, "no daemon was started");
}

#[test]
fn component_validate_makes_every_check_create_makes() {
    // A document whose only problem is its name: validate refuses it as
    // create would, and registers nothing.
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("bad-name.yml");
    std::fs::write(&file, COMPONENT.replace("name: c1", "name: Bad Comp")).unwrap();
    let file = file.to_str().unwrap();
    for command in ["validate", "create"] {
        let output = autopatch(state.path(), &["component", command, "--file", file]);
        let said = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{command}: {said}");
        assert!(
            said.contains(&format!("{file}:1:7: error: found the component name \"Bad Comp\"")),
            "{command}: {said}"
        );
    }
    // Nothing was registered: not even a state database was made.
    assert!(!state.path().join("autopatch.db").exists(), "create made a state database");
    // Given a good name to register it under, it is valid.
    let output =
        autopatch(state.path(), &["component", "validate", "--file", file, "--name", "good"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(said.contains("valid (1 phases, 1 steps)"), "{said}");
}
