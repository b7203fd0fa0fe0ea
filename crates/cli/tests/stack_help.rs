//! What `--help` of the stack commands that act on an operation in progress
//! (or its failure) says about when they apply.

use std::process::Command;

fn help(command: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_autopatch"))
        .args(["stack", command, "--help"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn cancel_update_help_says_it_applies_only_while_an_update_runs() {
    let help = help("cancel-update");
    for phrase in
        ["Only while an update runs (UPDATE_IN_PROGRESS", "it is refused and\nnothing changes"]
    {
        assert!(help.contains(phrase), "{phrase:?} not in:\n{help}");
    }
}

#[test]
fn delete_help_says_it_is_refused_while_an_operation_is_in_progress() {
    let help = help("delete");
    for phrase in [
        "Refused while another operation is in progress on the stack",
        "autopatch stack cancel-update NAME",
        "UPDATE_ROLLBACK_FAILED and DELETE_FAILED included",
    ] {
        assert!(help.contains(phrase), "{phrase:?} not in:\n{help}");
    }
}
