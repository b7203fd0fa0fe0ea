//! How `autopatch stack create|update` show what the daemon says, against a
//! scripted daemon (no containers): a refused request's problems, one per
//! line with the code on its own line, and followed events in columns that
//! line up whatever the length of the logical ids.

#[path = "support/binary.rs"]
#[allow(dead_code)]
mod binary;

#[path = "support/scripted.rs"]
#[allow(dead_code)]
mod scripted;

use autopatch_stacks::api::ApiError;
use binary::{Cli, stderr};
use scripted::{Scripted, event, serve, step};

const STACK: &str = "AWS::CloudFormation::Stack";
const ROLE: &str = "AWS::IAM::Role";
const LAUNCH: &str = "AWS::AutoScaling::LaunchConfiguration";
const LONG_ID: &str = "AVeryLongLogicalIdForTheInstanceRoleOfTheWebServers";

/// A daemon that refuses every change with `refusal`.
fn refusing(refusal: ApiError) -> Scripted {
    let mut scripted = Scripted::new(vec![step("CREATE_COMPLETE", vec![])]);
    scripted.refusal = Some(refusal);
    scripted
}

#[test]
fn a_refused_request_prints_each_problem_once_and_the_code_on_a_line_of_its_own() {
    let cli = Cli::new();
    let template = cli.write("bad.yml", "Resources: {}\n");
    // What the daemon answers: the request's own problem first, without a
    // position, then the template's.
    let problems = format!(
        "parameter `Extra`: found a value for a parameter the template does not declare; expected one of `Size`\n\
         {template}:8:11: error: found the resource type `AWS::SQS::Queue`, which local stacks do not run; expected one of AWS::EC2::VPC\n\
         {template}:13:21: error: property InstanceType of LC: found \"z9.huge\"; expected one of the instance types local stacks run: t3.micro"
    );
    let (scripted, _daemon) = serve(cli.state.path(), refusing(ApiError::validation(problems)));
    let output =
        cli.run(&["stack", "create", "bad", "--template", &template, "--parameter", "Extra=1"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "error: parameter `Extra`: found a value for a parameter the template does not declare; expected one of `Size`\n\
             {template}:8:11: error: found the resource type `AWS::SQS::Queue`, which local stacks do not run; expected one of AWS::EC2::VPC\n\
             {template}:13:21: error: property InstanceType of LC: found \"z9.huge\"; expected one of the instance types local stacks run: t3.micro\n\
             ValidationError: stack bad was not created (3 problems)\n"
        )
    );
    assert_eq!(scripted.operations(), ["CreateStack"], "nothing followed");

    // An update: only request problems, several of them.
    let cli = Cli::new();
    let problems = "parameter `A`: found a value for a parameter the template does not declare; expected one of `Size`\nparameter `B`: found a value for a parameter the template does not declare; expected one of `Size`";
    let (_scripted, _daemon) = serve(cli.state.path(), refusing(ApiError::validation(problems)));
    let output = cli.run(&[
        "stack",
        "update",
        "web",
        "--use-previous-template",
        "--parameter",
        "A=1",
        "--parameter",
        "B=2",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: parameter `A`: found a value for a parameter the template does not declare; expected one of `Size`\n\
         error: parameter `B`: found a value for a parameter the template does not declare; expected one of `Size`\n\
         ValidationError: stack web was not changed (2 problems)\n"
    );

    // One problem of the template is a list of one.
    let cli = Cli::new();
    let template = cli.write("web.yml", "Resources: {}\n");
    let problem = format!("{template}:4:20: error: image localhost/nope:1 does not exist");
    let (_scripted, _daemon) =
        serve(cli.state.path(), refusing(ApiError::validation(problem.clone())));
    let output = cli.run(&["stack", "update", "web", "--template", &template]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!("{problem}\nValidationError: stack web was not changed (1 problem)\n")
    );

    // One problem of the request is a list of one too.
    let cli = Cli::new();
    let problem = "parameter `Bogus`: found a value for a parameter the template does not declare; expected one of `Size`";
    let (_scripted, _daemon) = serve(cli.state.path(), refusing(ApiError::validation(problem)));
    let output =
        cli.run(&["stack", "update", "web", "--use-previous-template", "--parameter", "Bogus=1"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!("error: {problem}\nValidationError: stack web was not changed (1 problem)\n")
    );

    // Any other refusal is one line, as before.
    let cli = Cli::new();
    let refusal = ApiError::validation(
        "Stack:web is in UPDATE_ROLLBACK_FAILED state and can not be updated.",
    );
    let (_scripted, _daemon) = serve(cli.state.path(), refusing(refusal));
    let output = cli.run(&["stack", "update", "web", "--use-previous-template"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: Stack:web is in UPDATE_ROLLBACK_FAILED state and can not be updated. (ValidationError)\n"
    );
}

#[test]
fn followed_events_line_up_whatever_the_length_of_the_logical_ids() {
    let cli = Cli::new();
    let template = cli.write(
        "web.yml",
        &format!(
            "Resources:\n  {LONG_ID}:\n    Type: {ROLE}\n    Properties: {{AssumeRolePolicyDocument: {{}}}}\n  LC:\n    Type: {LAUNCH}\n    Properties: {{ImageId: x, InstanceType: t3.micro}}\n"
        ),
    );
    let (_scripted, _daemon) = serve(
        cli.state.path(),
        Scripted::new(vec![
            step("REVIEW_IN_PROGRESS", vec![]),
            step(
                "CREATE_IN_PROGRESS",
                vec![
                    event("01", "web", STACK, "CREATE_IN_PROGRESS", Some("User Initiated")),
                    event("02", LONG_ID, ROLE, "CREATE_IN_PROGRESS", None),
                ],
            ),
            step(
                "CREATE_IN_PROGRESS",
                vec![
                    event("03", LONG_ID, ROLE, "CREATE_COMPLETE", None),
                    event("04", "LC", LAUNCH, "CREATE_IN_PROGRESS", None),
                    event("05", "LC", LAUNCH, "CREATE_COMPLETE", Some("done")),
                ],
            ),
            step("CREATE_COMPLETE", vec![event("06", "web", STACK, "CREATE_COMPLETE", None)]),
        ]),
    );
    let output = cli.run(&["stack", "create", "web", "--template", &template]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let errors = stderr(&output);
    let lines: Vec<&str> = errors.lines().skip(1).collect();
    assert_eq!(lines.len(), 6, "{errors}");
    // Where each line's type and status start: the same on every line.
    let starts = |line: &str| {
        let kind = line.find("AWS::").unwrap();
        let status = kind + line[kind..].find("CREATE_").unwrap();
        (kind, status)
    };
    let first = starts(lines[0]);
    for line in &lines {
        assert_eq!(starts(line), first, "columns line up:\n{errors}");
    }
    assert!(lines[4].ends_with(&format!("{LAUNCH}  CREATE_COMPLETE       done")), "{errors}");
}
