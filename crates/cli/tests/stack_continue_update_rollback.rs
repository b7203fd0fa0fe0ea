//! `autopatch stack continue-update-rollback` as a user runs it, against a
//! scripted daemon (no containers): the request it sends, following the
//! rollback to its end, exit codes, JSON output and what `--help` teaches.

#[path = "support/binary.rs"]
#[allow(dead_code)]
mod binary;

#[path = "support/scripted.rs"]
#[allow(dead_code)]
mod scripted;

use autopatch_stacks::api::ApiError;
use binary::{Cli, stderr, stdout};
use scripted::{STACK_ID, Scripted, Step, event, serve, step};

const STACK: &str = "AWS::CloudFormation::Stack";
const LAUNCH: &str = "AWS::EC2::LaunchTemplate";

/// The stack as its update's rollback left it: UPDATE_ROLLBACK_FAILED.
fn rollback_failed() -> Step {
    Step {
        status: "UPDATE_ROLLBACK_FAILED",
        reason: Some("The following resource(s) failed to update: [First]."),
        events: vec![
            event("01", "web", STACK, "UPDATE_IN_PROGRESS", Some("User Initiated")),
            event("02", "web", STACK, "UPDATE_ROLLBACK_IN_PROGRESS", None),
            event("03", "First", LAUNCH, "UPDATE_FAILED", Some("look up image localhost/app:1")),
            event("04", "web", STACK, "UPDATE_ROLLBACK_FAILED", None),
        ],
    }
}

/// The continued rollback, started by the request.
fn continued(skipped: bool) -> Step {
    let mut events =
        vec![event("05", "web", STACK, "UPDATE_ROLLBACK_IN_PROGRESS", Some("User Initiated"))];
    if skipped {
        events.push(event("06", "First", LAUNCH, "UPDATE_COMPLETE", Some("Resource skipped")));
    } else {
        events.push(event("06", "First", LAUNCH, "UPDATE_IN_PROGRESS", None));
    }
    step("UPDATE_ROLLBACK_IN_PROGRESS", events)
}

#[test]
fn continue_update_rollback_follows_the_rollback_to_update_rollback_complete() {
    let cli = Cli::new();
    let (scripted, _daemon) = serve(
        cli.state.path(),
        Scripted::new(vec![
            rollback_failed(),
            continued(true),
            step(
                "UPDATE_ROLLBACK_COMPLETE",
                vec![event("07", "web", STACK, "UPDATE_ROLLBACK_COMPLETE", None)],
            ),
        ]),
    );
    let output = cli.run(&[
        "stack",
        "continue-update-rollback",
        "web",
        "--resources-to-skip",
        "First",
        "Second",
        "--resources-to-skip",
        "Third,Fourth",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "stack web UPDATE_ROLLBACK_COMPLETE\n");
    let errors = stderr(&output);
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(
        lines[0],
        "continuing the update rollback of stack web, skipping First, Second, Third, Fourth"
    );
    assert!(!errors.contains("UPDATE_FAILED"), "events from before the request: {errors}");
    assert!(errors.contains("Resource skipped"), "{errors}");
    assert!(lines.last().unwrap().contains("UPDATE_ROLLBACK_COMPLETE"), "{errors}");
    let (_, input) = scripted
        .calls()
        .into_iter()
        .find(|(operation, _)| operation == "ContinueUpdateRollback")
        .expect("ContinueUpdateRollback called");
    assert_eq!(
        input,
        serde_json::json!({
            "StackName": STACK_ID,
            "ResourcesToSkip": ["First", "Second", "Third", "Fourth"],
        }),
        "the stack by id, the resources as given"
    );
}

#[test]
fn a_rollback_that_fails_again_exits_1_with_the_reason_and_json_prints_the_answer() {
    let cli = Cli::new();
    let mut failed_again = rollback_failed();
    failed_again.events = vec![
        event("07", "First", LAUNCH, "UPDATE_FAILED", Some("the engine does not answer")),
        event("08", "web", STACK, "UPDATE_ROLLBACK_FAILED", None),
    ];
    let (scripted, _daemon) = serve(
        cli.state.path(),
        Scripted::new(vec![rollback_failed(), continued(false), failed_again]),
    );
    let output = cli.run(&["-o", "json", "stack", "continue-update-rollback", "web"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    // The operation's answer as the daemon sent it, then (as every error
    // under `-o json`) the error.
    let documents: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&output.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(documents.len(), 2, "{}", stdout(&output));
    assert_eq!(documents[0], serde_json::json!({}), "the operation's answer");
    assert_eq!(documents[1]["error"]["code"], 1, "{}", stdout(&output));
    let errors = stderr(&output);
    assert!(errors.contains("the engine does not answer"), "{errors}");
    assert!(
        errors.ends_with(
            "error: stack web UPDATE_ROLLBACK_FAILED: The following resource(s) failed to update: [First].\n"
        ),
        "{errors}"
    );
    let (_, input) = scripted
        .calls()
        .into_iter()
        .find(|(operation, _)| operation == "ContinueUpdateRollback")
        .unwrap();
    assert_eq!(input, serde_json::json!({"StackName": STACK_ID}), "nothing to skip");
}

#[test]
fn a_refused_continue_update_rollback_is_an_error_and_follows_nothing() {
    let cli = Cli::new();
    let mut idle = Scripted::new(vec![step("UPDATE_COMPLETE", vec![])]);
    idle.refusal = Some(ApiError::validation(
        "ContinueUpdateRollback cannot be called from current stack status UPDATE_COMPLETE",
    ));
    let (idle, _daemon) = serve(cli.state.path(), idle);
    let output = cli.run(&["stack", "continue-update-rollback", "web"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(
            "ContinueUpdateRollback cannot be called from current stack status UPDATE_COMPLETE"
        ),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        idle.operations().last().map(String::as_str),
        Some("ContinueUpdateRollback"),
        "nothing followed after the refusal"
    );
}

/// The stack service's refusal of resources it cannot skip.
const NO_SUCH_RESOURCE: &str = "ResourcesToSkip: resource [Nope] does not exist in stack [web]";
const NOT_FAILED_BY_THE_ROLLBACK: &str = "ResourcesToSkip: resource [Pattern3ALB] is in the UPDATE_COMPLETE state; you can specify only resources that are in the UPDATE_FAILED state because a rollback failed";

#[test]
fn refused_resources_to_skip_print_one_problem_a_line_then_the_code_on_its_own() {
    let cli = Cli::new();
    let mut refusing = Scripted::new(vec![rollback_failed()]);
    refusing.refusal =
        Some(ApiError::validation(format!("{NO_SUCH_RESOURCE}\n{NOT_FAILED_BY_THE_ROLLBACK}")));
    let (refusing, _daemon) = serve(cli.state.path(), refusing);
    let output = cli.run(&[
        "stack",
        "continue-update-rollback",
        "web",
        "--resources-to-skip",
        "Nope,Pattern3ALB",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "error: {NO_SUCH_RESOURCE}\n\
             error: {NOT_FAILED_BY_THE_ROLLBACK}\n\
             ValidationError: the update rollback of stack web was not continued (2 problems)\n"
        )
    );
    assert_eq!(refusing.operations().last().map(String::as_str), Some("ContinueUpdateRollback"));

    // One is a list of one.
    let cli = Cli::new();
    let mut refusing = Scripted::new(vec![rollback_failed()]);
    refusing.refusal = Some(ApiError::validation(NO_SUCH_RESOURCE));
    let (_refusing, _daemon) = serve(cli.state.path(), refusing);
    let output =
        cli.run(&["stack", "continue-update-rollback", "web", "--resources-to-skip", "Nope"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "error: {NO_SUCH_RESOURCE}\n\
             ValidationError: the update rollback of stack web was not continued (1 problem)\n"
        )
    );
}

#[test]
fn resources_to_skip_are_sent_once_each_without_empty_items() {
    let cli = Cli::new();
    let (scripted, _daemon) = serve(
        cli.state.path(),
        Scripted::new(vec![
            rollback_failed(),
            continued(true),
            step(
                "UPDATE_ROLLBACK_COMPLETE",
                vec![event("07", "web", STACK, "UPDATE_ROLLBACK_COMPLETE", None)],
            ),
        ]),
    );
    let output = cli.run(&[
        "stack",
        "continue-update-rollback",
        "web",
        "--resources-to-skip",
        "First,First,",
        "--resources-to-skip",
        ",Second,First",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output)
            .starts_with("continuing the update rollback of stack web, skipping First, Second\n"),
        "{}",
        stderr(&output)
    );
    let (_, input) = scripted
        .calls()
        .into_iter()
        .find(|(operation, _)| operation == "ContinueUpdateRollback")
        .expect("ContinueUpdateRollback called");
    assert_eq!(input["ResourcesToSkip"], serde_json::json!(["First", "Second"]));

    // Only empty items: a usage error, not a rollback that skips nothing.
    let cli = Cli::new();
    let (scripted, _daemon) = serve(cli.state.path(), Scripted::new(vec![rollback_failed()]));
    let output = cli.run(&["stack", "continue-update-rollback", "web", "--resources-to-skip", ","]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).starts_with("error: --resources-to-skip names no resource\n"));
    assert!(scripted.operations().is_empty(), "nothing was asked: {:?}", scripted.operations());
}

#[test]
fn continue_update_rollback_help_says_when_to_use_it_and_what_skipping_costs() {
    let output = Cli::new().run(&["stack", "continue-update-rollback", "--help"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let help = stdout(&output);
    for phrase in [
        "UPDATE_ROLLBACK_FAILED",
        "autopatch stack events NAME",
        "UPDATE_ROLLBACK_COMPLETE",
        "--resources-to-skip",
        "UPDATE_FAILED because the rollback failed",
        "left as it is",
        "--no-wait",
        "just before the stack's\nUPDATE_ROLLBACK_FAILED",
        "autopatch stack delete pattern3-app",
    ] {
        assert!(help.contains(phrase), "{phrase:?} not in:\n{help}");
    }
    // The lab's new group is failed by the update, never by its rollback:
    // skipping it is refused, so it is no example.
    assert!(!help.contains("--resources-to-skip Pattern3ASG"), "{help}");
}
