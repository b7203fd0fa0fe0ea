//! The `stack`, `targets` and `fleet` commands: thin clients of the
//! daemon's API. Requests and responses are AWS's shapes (`--output json`
//! prints the response as the daemon sent it); the text output is for
//! people. Following an operation polls `DescribeStacks` and
//! `DescribeStackEvents` every half second and prints each new event once,
//! oldest first, on stderr.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use autopatch_daemon::Client;
use autopatch_stacks::api::{
    CancelUpdateStackInput, ContinueUpdateRollbackInput, CreateStackInput, CreateStackOutput,
    DeleteStackInput, DescribeAutoScalingGroupsInput, DescribeAutoScalingGroupsOutput,
    DescribeStackEventsInput, DescribeStackEventsOutput, DescribeStackResourcesInput,
    DescribeStackResourcesOutput, DescribeStacksInput, DescribeStacksOutput,
    DescribeTargetHealthInput, DescribeTargetHealthOutput, ListExportsInput, ListExportsOutput,
    ListStacksInput, ListStacksOutput, Parameter, Stack, StackEvent, UpdateStackInput,
    UpdateStackOutput,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::StackCommand;
use crate::render::{self, CliError};

/// How often an operation in progress is looked at.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The daemon's API, with its failures turned into the CLI's errors.
struct Api {
    client: Client,
    state_dir: PathBuf,
}

impl Api {
    fn new(state_dir: &Path) -> Api {
        Api { client: Client::new(state_dir), state_dir: state_dir.to_path_buf() }
    }

    async fn call<I: Serialize, O: DeserializeOwned>(
        &self,
        service: &str,
        operation: &str,
        input: &I,
    ) -> Result<O, CliError> {
        self.client
            .call(service, operation, input)
            .await
            .map_err(|error| CliError::from_client(error, &self.state_dir))
    }

    async fn cloudformation<I: Serialize, O: DeserializeOwned>(
        &self,
        operation: &str,
        input: &I,
    ) -> Result<O, CliError> {
        self.call("cloudformation", operation, input).await
    }

    /// `DescribeStacks` of one stack, or `None` when it does not exist.
    async fn stack(&self, name: &str) -> Result<Option<Stack>, CliError> {
        let input = DescribeStacksInput { stack_name: Some(name.to_owned()) };
        match self
            .client
            .call::<_, DescribeStacksOutput>("cloudformation", "DescribeStacks", &input)
            .await
        {
            Ok(output) => Ok(output.stacks.into_iter().next()),
            Err(error) if error.api_error().is_some_and(is_no_such_stack) => Ok(None),
            Err(error) => Err(CliError::from_client(error, &self.state_dir)),
        }
    }
}

/// CloudFormation's answer for an unknown stack: `ValidationError`, "Stack
/// with id NAME does not exist" (the code alone does not tell it apart).
fn is_no_such_stack(error: &autopatch_stacks::api::ApiError) -> bool {
    error.code == "ValidationError" && error.message.ends_with("does not exist")
}

/// CloudFormation's answer to an update that changes nothing.
fn is_no_updates(error: &autopatch_stacks::api::ApiError) -> bool {
    error.code == "ValidationError" && error.message == "No updates are to be performed."
}

fn print_json<T: Serialize>(value: &T) {
    render::json(&serde_json::to_value(value).unwrap_or_default());
}

pub(crate) async fn stack(
    state_dir: &Path,
    command: StackCommand,
    json: bool,
) -> Result<ExitCode, CliError> {
    let api = Api::new(state_dir);
    match command {
        StackCommand::Create { name, template, parameters, disable_rollback, no_wait } => {
            let input = CreateStackInput {
                stack_name: name.clone(),
                template_url: Some(template_url(&template)?),
                parameters: input_parameters(parameters, Vec::new())?,
                disable_rollback: disable_rollback.then_some(true),
                ..CreateStackInput::default()
            };
            let outcome = format!("stack {name} was not created");
            let output: CreateStackOutput = api
                .client
                .call("cloudformation", "CreateStack", &input)
                .await
                .map_err(|error| refusal(error, &api.state_dir, &outcome))?;
            if json {
                print_json(&output);
            } else {
                render::note(&format!("creating stack {name} ({})", output.stack_id));
            }
            if no_wait {
                return Ok(ExitCode::SUCCESS);
            }
            let mut columns = Columns::new(&name);
            columns.fit_template(&template);
            let seen = HashSet::new();
            follow(&api, &name, &output.stack_id, seen, Goal::Create, columns, json).await
        }
        StackCommand::Update {
            name,
            template,
            use_previous_template,
            parameters,
            use_previous,
            fail_on_empty,
            no_wait,
        } => {
            let input_parameters = input_parameters(parameters, use_previous)?;
            let input = UpdateStackInput {
                stack_name: name.clone(),
                template_url: template.as_deref().map(template_url).transpose()?,
                use_previous_template: use_previous_template.then_some(true),
                parameters: input_parameters,
                ..UpdateStackInput::default()
            };
            // Events from before the update are not this update's.
            let seen = if no_wait { HashSet::new() } else { event_ids(&api, &name).await? };
            let output: UpdateStackOutput = match api
                .client
                .call("cloudformation", "UpdateStack", &input)
                .await
            {
                Ok(output) => output,
                Err(error) if error.api_error().is_some_and(is_no_updates) => {
                    if json {
                        render::json(&json!({"StackName": name, "NoUpdates": true}));
                    } else {
                        render::line(&format!(
                            "stack {name} is already current: no updates to perform"
                        ));
                    }
                    return Ok(if fail_on_empty { ExitCode::from(3) } else { ExitCode::SUCCESS });
                }
                Err(error) => {
                    let outcome = format!("stack {name} was not changed");
                    return Err(refusal(error, &api.state_dir, &outcome));
                }
            };
            if json {
                print_json(&output);
            } else {
                render::note(&format!("updating stack {name} ({})", output.stack_id));
            }
            if no_wait {
                return Ok(ExitCode::SUCCESS);
            }
            let mut columns = Columns::for_stack(&api, &name).await;
            if let Some(template) = &template {
                columns.fit_template(template);
            }
            follow(&api, &name, &output.stack_id, seen, Goal::Update, columns, json).await
        }
        StackCommand::CancelUpdate { name, no_wait } => {
            let seen = if no_wait { HashSet::new() } else { event_ids(&api, &name).await? };
            let stack = api.stack(&name).await?.ok_or_else(|| {
                CliError::new(format!("stack {name} does not exist")).with_code(1)
            })?;
            let input = CancelUpdateStackInput { stack_name: stack.stack_id.clone() };
            let output: serde_json::Value = api.cloudformation("CancelUpdateStack", &input).await?;
            if json {
                render::json(&output);
            } else {
                render::note(&format!("cancelling the update of stack {name}"));
            }
            if no_wait {
                return Ok(ExitCode::SUCCESS);
            }
            let columns = Columns::for_stack(&api, &name).await;
            follow(&api, &name, &stack.stack_id, seen, Goal::CancelUpdate, columns, json).await
        }
        StackCommand::ContinueUpdateRollback { name, resources_to_skip, no_wait } => {
            let resources_to_skip = resources_to_skip_of(resources_to_skip)?;
            let seen = if no_wait { HashSet::new() } else { event_ids(&api, &name).await? };
            let stack = api.stack(&name).await?.ok_or_else(|| {
                CliError::new(format!("stack {name} does not exist")).with_code(1)
            })?;
            let input = ContinueUpdateRollbackInput {
                stack_name: stack.stack_id.clone(),
                resources_to_skip: resources_to_skip.clone(),
                ..ContinueUpdateRollbackInput::default()
            };
            let outcome = format!("the update rollback of stack {name} was not continued");
            let output: serde_json::Value = api
                .client
                .call("cloudformation", "ContinueUpdateRollback", &input)
                .await
                .map_err(|error| refusal(error, &api.state_dir, &outcome))?;
            if json {
                render::json(&output);
            } else if resources_to_skip.is_empty() {
                render::note(&format!("continuing the update rollback of stack {name}"));
            } else {
                render::note(&format!(
                    "continuing the update rollback of stack {name}, skipping {}",
                    resources_to_skip.join(", ")
                ));
            }
            if no_wait {
                return Ok(ExitCode::SUCCESS);
            }
            let columns = Columns::for_stack(&api, &name).await;
            let goal = Goal::ContinueUpdateRollback;
            follow(&api, &name, &stack.stack_id, seen, goal, columns, json).await
        }
        StackCommand::Delete { name, no_wait, retain_resources } => {
            let Some(stack) = api.stack(&name).await? else {
                if json {
                    render::json(&json!({}));
                } else {
                    render::line(&format!("stack {name} does not exist: nothing to delete"));
                }
                return Ok(ExitCode::SUCCESS);
            };
            let seen =
                if no_wait { HashSet::new() } else { event_ids(&api, &stack.stack_id).await? };
            let input = DeleteStackInput {
                stack_name: stack.stack_id.clone(),
                retain_resources,
                ..DeleteStackInput::default()
            };
            let output: serde_json::Value = api.cloudformation("DeleteStack", &input).await?;
            if json {
                render::json(&output);
            } else {
                render::note(&format!("deleting stack {name} ({})", stack.stack_id));
            }
            if no_wait {
                return Ok(ExitCode::SUCCESS);
            }
            let columns = Columns::for_stack(&api, &name).await;
            follow(&api, &name, &stack.stack_id, seen, Goal::Delete, columns, json).await
        }
        StackCommand::Describe { name } => {
            let input = DescribeStacksInput { stack_name: Some(name) };
            let output: DescribeStacksOutput = api.cloudformation("DescribeStacks", &input).await?;
            if json {
                print_json(&output);
            } else {
                for stack in &output.stacks {
                    print_stack(stack);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        StackCommand::Events { name } => {
            let input = DescribeStackEventsInput { stack_name: name };
            let output: DescribeStackEventsOutput =
                api.cloudformation("DescribeStackEvents", &input).await?;
            if json {
                print_json(&output);
            } else {
                let rows: Vec<Vec<String>> = oldest_first(output.stack_events.iter().collect())
                    .into_iter()
                    .map(|event| {
                        vec![
                            event.timestamp.clone(),
                            event.logical_resource_id.clone(),
                            event.resource_type.clone(),
                            event.resource_status.clone(),
                            event.resource_status_reason.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                render::table(&["TIME", "LOGICAL ID", "TYPE", "STATUS", "REASON"], &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        StackCommand::Resources { name } => {
            let input = DescribeStackResourcesInput { stack_name: name };
            let output: DescribeStackResourcesOutput =
                api.cloudformation("DescribeStackResources", &input).await?;
            if json {
                print_json(&output);
            } else {
                let rows: Vec<Vec<String>> = output
                    .stack_resources
                    .iter()
                    .map(|resource| {
                        vec![
                            resource.logical_resource_id.clone(),
                            resource.physical_resource_id.clone().unwrap_or_else(|| "-".into()),
                            resource.resource_type.clone(),
                            resource.resource_status.clone(),
                            resource.resource_status_reason.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                render::table(&["LOGICAL ID", "PHYSICAL ID", "TYPE", "STATUS", "REASON"], &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        StackCommand::Outputs { name } => {
            let input = DescribeStacksInput { stack_name: Some(name) };
            let output: DescribeStacksOutput = api.cloudformation("DescribeStacks", &input).await?;
            let outputs: Vec<_> =
                output.stacks.into_iter().flat_map(|stack| stack.outputs).collect();
            if json {
                render::json(&json!({ "Outputs": outputs }));
            } else {
                let rows: Vec<Vec<String>> = outputs
                    .iter()
                    .map(|output| {
                        vec![
                            output.output_key.clone(),
                            output.output_value.clone(),
                            output
                                .export_name
                                .as_ref()
                                .map(|name| format!("export {name}"))
                                .unwrap_or_default(),
                        ]
                    })
                    .collect();
                render::rows(&rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        StackCommand::List { all } => {
            let mut output: ListStacksOutput =
                api.cloudformation("ListStacks", &ListStacksInput::default()).await?;
            if !all {
                output.stack_summaries.retain(|summary| summary.stack_status != "DELETE_COMPLETE");
            }
            if json {
                print_json(&output);
            } else {
                let rows: Vec<Vec<String>> = output
                    .stack_summaries
                    .iter()
                    .map(|summary| {
                        vec![
                            summary.stack_name.clone(),
                            summary.stack_status.clone(),
                            summary.creation_time.clone(),
                            summary.last_updated_time.clone().unwrap_or_else(|| "-".into()),
                            first_line(summary.stack_status_reason.as_deref()),
                        ]
                    })
                    .collect();
                render::table(&["NAME", "STATUS", "CREATED", "UPDATED", "REASON"], &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        StackCommand::Exports => {
            let output: ListExportsOutput =
                api.cloudformation("ListExports", &ListExportsInput::default()).await?;
            if json {
                print_json(&output);
            } else {
                let rows: Vec<Vec<String>> = output
                    .exports
                    .iter()
                    .map(|export| {
                        vec![
                            export.name.clone(),
                            export.value.clone(),
                            export.exporting_stack_id.clone(),
                        ]
                    })
                    .collect();
                render::table(&["NAME", "VALUE", "EXPORTING STACK"], &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) async fn targets(
    state_dir: &Path,
    target_group: String,
    json: bool,
) -> Result<ExitCode, CliError> {
    let api = Api::new(state_dir);
    let input = DescribeTargetHealthInput { target_group_arn: target_group };
    let output: DescribeTargetHealthOutput =
        api.call("elasticloadbalancingv2", "DescribeTargetHealth", &input).await?;
    if json {
        print_json(&output);
    } else {
        let rows: Vec<Vec<String>> = output
            .target_health_descriptions
            .iter()
            .map(|description| {
                vec![
                    format!("{}:{}", description.target.id, description.target.port),
                    description.health_check_port.clone(),
                    description.target_health.state.clone(),
                    description.target_health.reason.clone().unwrap_or_default(),
                    description.target_health.description.clone().unwrap_or_default(),
                ]
            })
            .collect();
        render::table(&["TARGET", "HEALTH CHECK PORT", "STATE", "REASON", "DESCRIPTION"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn fleet(
    state_dir: &Path,
    groups: Vec<String>,
    json: bool,
) -> Result<ExitCode, CliError> {
    let api = Api::new(state_dir);
    let input = DescribeAutoScalingGroupsInput { auto_scaling_group_names: groups };
    let output: DescribeAutoScalingGroupsOutput =
        api.call("autoscaling", "DescribeAutoScalingGroups", &input).await?;
    if json {
        print_json(&output);
        return Ok(ExitCode::SUCCESS);
    }
    if output.auto_scaling_groups.is_empty() {
        render::note("no Auto Scaling groups");
    }
    for (index, group) in output.auto_scaling_groups.iter().enumerate() {
        if index > 0 {
            render::line("");
        }
        render::line(&format!(
            "group {}: desired {} (min {}, max {}); health check {}, grace {} s",
            group.auto_scaling_group_name,
            group.desired_capacity,
            group.min_size,
            group.max_size,
            group.health_check_type,
            group.health_check_grace_period
        ));
        if !group.target_group_arns.is_empty() {
            render::line(&format!("target groups: {}", group.target_group_arns.join(" ")));
        }
        let rows: Vec<Vec<String>> = group
            .instances
            .iter()
            .map(|instance| {
                vec![
                    instance.instance_id.clone(),
                    instance.availability_zone.clone(),
                    instance.lifecycle_state.clone(),
                    instance.health_status.clone(),
                    instance.image_id.clone().unwrap_or_else(|| "-".into()),
                    instance.launch_configuration_name.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        render::table(
            &["INSTANCE", "ZONE", "LIFECYCLE", "HEALTH", "IMAGE", "LAUNCH CONFIG"],
            &rows,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `file:///absolute/path` of a template the daemon reads (its diagnostics
/// then name the file as given here).
fn template_url(template: &Path) -> Result<String, CliError> {
    let path = std::path::absolute(template).map_err(|error| {
        CliError::new(format!("failed to resolve {}: {error}", template.display())).with_code(1)
    })?;
    if path.is_dir() {
        return Err(CliError::new(format!(
            "template {} is a directory, not a template file",
            template.display()
        ))
        .with_code(1));
    }
    if !path.is_file() {
        return Err(
            CliError::new(format!("template {} not found", template.display())).with_code(1)
        );
    }
    Ok(format!("file://{}", path.display()))
}

/// The request's parameters from `--parameter KEY=VALUE` and `--use-previous
/// KEY`. A key named twice is a usage error: the daemon would keep one of
/// the values without a word.
fn input_parameters(
    given: Vec<(String, String)>,
    use_previous: Vec<String>,
) -> Result<Vec<Parameter>, CliError> {
    let given = given.into_iter().map(|(key, value)| Parameter {
        parameter_key: key,
        parameter_value: Some(value),
        use_previous_value: None,
    });
    let previous = use_previous.into_iter().map(|key| Parameter {
        parameter_key: key,
        parameter_value: None,
        use_previous_value: Some(true),
    });
    let mut parameters: Vec<Parameter> = Vec::new();
    for parameter in given.chain(previous) {
        if let Some(first) =
            parameters.iter().find(|first| first.parameter_key == parameter.parameter_key)
        {
            return Err(CliError::new(format!(
                "parameter {} is given twice ({} and {})",
                parameter.parameter_key,
                parameter_option(first),
                parameter_option(&parameter)
            ))
            .with_hint("give each parameter once"));
        }
        parameters.push(parameter);
    }
    Ok(parameters)
}

/// `--resources-to-skip`'s logical ids, each once, in the order given;
/// empty items (`A,,B`, a trailing comma) are dropped. Naming none at all
/// is a usage error: continuing without skipping is another request.
fn resources_to_skip_of(given: Vec<String>) -> Result<Vec<String>, CliError> {
    let mut resources: Vec<String> = Vec::new();
    for resource in &given {
        let resource = resource.trim();
        if !resource.is_empty() && !resources.iter().any(|seen| seen == resource) {
            resources.push(resource.to_owned());
        }
    }
    if resources.is_empty() && !given.is_empty() {
        return Err(CliError::new("--resources-to-skip names no resource")
            .with_hint(
                "name the resource whose failure ended the rollback (see `autopatch stack events NAME`), or leave the option out to skip nothing",
            ));
    }
    Ok(resources)
}

/// The option that gave `parameter`.
fn parameter_option(parameter: &Parameter) -> String {
    match &parameter.parameter_value {
        Some(value) => format!("--parameter {}={value}", parameter.parameter_key),
        None => format!("--use-previous {}", parameter.parameter_key),
    }
}

fn first_line(text: Option<&str>) -> String {
    text.and_then(|text| text.lines().next()).unwrap_or("").to_owned()
}

/// The ids of a stack's events so far.
async fn event_ids(api: &Api, stack: &str) -> Result<HashSet<String>, CliError> {
    let input = DescribeStackEventsInput { stack_name: stack.to_owned() };
    let output: DescribeStackEventsOutput =
        api.cloudformation("DescribeStackEvents", &input).await?;
    Ok(output.stack_events.into_iter().map(|event| event.event_id).collect())
}

/// Events in the order they happened (AWS lists them newest first).
fn oldest_first(mut events: Vec<&StackEvent>) -> Vec<&StackEvent> {
    events.reverse();
    events.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
    events
}

/// What a followed operation should end in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    Create,
    Update,
    CancelUpdate,
    ContinueUpdateRollback,
    Delete,
}

impl Goal {
    fn success(self) -> &'static str {
        match self {
            Goal::Create => "CREATE_COMPLETE",
            Goal::Update => "UPDATE_COMPLETE",
            Goal::CancelUpdate | Goal::ContinueUpdateRollback => "UPDATE_ROLLBACK_COMPLETE",
            Goal::Delete => "DELETE_COMPLETE",
        }
    }
}

/// A status no operation is working towards any more.
fn is_terminal(status: &str) -> bool {
    !status.ends_with("_IN_PROGRESS")
}

/// Exit code of a follower whose daemon stopped before the operation ended:
/// the operation is not failed, it resumes when the daemon starts again.
const DAEMON_STOPPED: u8 = 4;

/// Prints the stack's new events until it reaches a terminal status; exit 0
/// when that is the goal's, 1 otherwise; 128 + the signal's number on
/// SIGINT, SIGTERM or SIGHUP, and [`DAEMON_STOPPED`] when the daemon stops
/// answering (in both cases the operation goes on, or resumes, in the
/// daemon).
async fn follow(
    api: &Api,
    name: &str,
    stack_id: &str,
    mut seen: HashSet<String>,
    goal: Goal,
    mut columns: Columns,
    json: bool,
) -> Result<ExitCode, CliError> {
    let cancel = tokio_util::sync::CancellationToken::new();
    let interrupt = crate::commands::Interrupt::listen(&cancel)?;
    let mut first_failure: Option<String> = None;
    let mut last_status: Option<String> = None;
    loop {
        let daemon_stopped = |error: &autopatch_daemon::ClientError| {
            use autopatch_daemon::ClientError;
            matches!(
                error,
                ClientError::NotRunning { .. }
                    | ClientError::Connect { .. }
                    | ClientError::Transport { .. }
            )
        };
        let stopped = |last_status: &Option<String>| {
            let status = last_status.as_deref().unwrap_or("in progress");
            CliError::new(format!(
                "the autopatch daemon stopped while stack {name} was {status}: the operation \
                 did not end, and resumes when the daemon starts again"
            ))
            .with_hint(format!(
                "start it with `autopatch up`, then follow the stack with `autopatch stack \
                 events {name}` or `autopatch stack describe {name}`"
            ))
            .with_code(DAEMON_STOPPED)
        };
        // The status first: events written before it are then all listed.
        let input = DescribeStacksInput { stack_name: Some(stack_id.to_owned()) };
        let described = match api
            .client
            .call::<_, DescribeStacksOutput>("cloudformation", "DescribeStacks", &input)
            .await
        {
            Ok(output) => output.stacks.into_iter().next(),
            Err(error) if error.api_error().is_some_and(is_no_such_stack) => None,
            Err(error) if daemon_stopped(&error) => return Err(stopped(&last_status)),
            Err(error) => return Err(CliError::from_client(error, &api.state_dir)),
        };
        let status = match described {
            Some(stack) => Some((stack.stack_status, stack.stack_status_reason)),
            None if goal == Goal::Delete => Some((Goal::Delete.success().to_owned(), None)),
            None => None,
        };
        let input = DescribeStackEventsInput { stack_name: stack_id.to_owned() };
        let events = match api
            .client
            .call::<_, DescribeStackEventsOutput>("cloudformation", "DescribeStackEvents", &input)
            .await
        {
            Ok(output) => output.stack_events,
            Err(error) if error.api_error().is_some_and(is_no_such_stack) => Vec::new(),
            Err(error) if daemon_stopped(&error) => return Err(stopped(&last_status)),
            Err(error) => return Err(CliError::from_client(error, &api.state_dir)),
        };
        let new: Vec<&StackEvent> =
            events.iter().filter(|event| !seen.contains(&event.event_id)).collect();
        for event in oldest_first(new) {
            render::note(&columns.line(event));
            // The first failure's reason: a resource's, or the stack's own
            // (an export in use, an output that does not evaluate), which
            // comes on its rollback event.
            let failed = event.resource_status.ends_with("_FAILED")
                || (event.resource_type == STACK_TYPE
                    && event.resource_status.ends_with("ROLLBACK_IN_PROGRESS"));
            if first_failure.is_none()
                && failed
                && let Some(reason) = &event.resource_status_reason
            {
                first_failure = Some(format!("{}: {reason}", event.logical_resource_id));
            }
            seen.insert(event.event_id.clone());
        }
        last_status = status.as_ref().map(|(status, _)| status.clone());
        let Some((status, reason)) = status else {
            return Err(
                CliError::new(format!("stack {name} ({stack_id}) no longer exists")).with_code(1)
            );
        };
        if is_terminal(&status) {
            if status == goal.success() {
                if !json {
                    render::line(&format!("stack {name} {status}"));
                }
                return Ok(ExitCode::SUCCESS);
            }
            let reason = reason.or(first_failure).unwrap_or_else(|| "no reason given".into());
            return Err(CliError::new(format!("stack {name} {status}: {reason}")).with_code(1));
        }
        tokio::select! {
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            () = cancel.cancelled() => {
                render::note(&format!(
                    "{}: stopped following; the operation goes on in the daemon (see `autopatch stack events {name}`)",
                    interrupt.name()
                ));
                return Ok(interrupt.exit_code());
            }
        }
    }
}

/// The widths of followed events' columns (logical id, type, status), so
/// that they line up: as wide as the logical ids and types known when
/// following starts (the stack's and its template's resources), and wider
/// from the first longer one on (events are printed as they come).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Columns {
    logical_id: usize,
    resource_type: usize,
    status: usize,
}

/// The stack's own events' type.
const STACK_TYPE: &str = "AWS::CloudFormation::Stack";

impl Columns {
    /// Widths for the stack `name`'s own events.
    fn new(name: &str) -> Columns {
        Columns {
            logical_id: name.chars().count(),
            resource_type: STACK_TYPE.len(),
            status: "ROLLBACK_IN_PROGRESS".len(),
        }
    }

    /// Widths for the stack `name` and the resources it has now (none
    /// known when the daemon does not answer).
    async fn for_stack(api: &Api, name: &str) -> Columns {
        let mut columns = Columns::new(name);
        let input = DescribeStackResourcesInput { stack_name: name.to_owned() };
        if let Ok(output) = api
            .client
            .call::<_, DescribeStackResourcesOutput>(
                "cloudformation",
                "DescribeStackResources",
                &input,
            )
            .await
        {
            for resource in &output.stack_resources {
                columns.fit(&resource.logical_resource_id, &resource.resource_type, "");
            }
        }
        columns
    }

    /// Wide enough for the resources of the template file at `path` (as
    /// far as it can be read: the daemon says what is wrong with it).
    fn fit_template(&mut self, path: &Path) {
        let Ok(text) = std::fs::read_to_string(path) else { return };
        let file = autopatch_documents::SourceFile::new(path.display().to_string(), text);
        let (template, _) = autopatch_documents::cloudformation::parse_template_lenient(&file);
        for resource in template.iter().flat_map(|template| template.resources.values()) {
            self.fit(resource.name.as_str(), &resource.resource_type.value, "");
        }
    }

    fn fit(&mut self, logical_id: &str, resource_type: &str, status: &str) {
        self.logical_id = self.logical_id.max(logical_id.chars().count());
        self.resource_type = self.resource_type.max(resource_type.chars().count());
        self.status = self.status.max(status.chars().count());
    }

    /// One event as a line: time, logical id, type, status, reason.
    fn line(&mut self, event: &StackEvent) -> String {
        self.fit(&event.logical_resource_id, &event.resource_type, &event.resource_status);
        let line = format!(
            "{}  {:<id$}  {:<kind$}  {:<status$}  {}",
            event.timestamp,
            event.logical_resource_id,
            event.resource_type,
            event.resource_status,
            event.resource_status_reason.as_deref().unwrap_or(""),
            id = self.logical_id,
            kind = self.resource_type,
            status = self.status,
        );
        line.trim_end().to_owned()
    }
}

/// A refused CreateStack, UpdateStack or ContinueUpdateRollback. A list of
/// problems (more than one line, any with a position, or a single problem
/// of a part of the request) prints one problem per line: the template's
/// as they are (`file:line:col: error: ...`), the request's own (which are
/// nowhere in the template) as `error: ...`, then the code and `outcome` on
/// a line of their own. Any other refusal (a stack in the wrong status, one
/// that does not exist) prints as every other does (`error: <message>
/// (<Code>)`).
fn refusal(error: autopatch_daemon::ClientError, state_dir: &Path, outcome: &str) -> CliError {
    if let Some(refused) = error.api_error() {
        let lines: Vec<&str> = refused.message.lines().collect();
        let problems = lines.len() > 1
            || lines.iter().any(|line| render::is_diagnostics(line))
            || (refused.code == "ValidationError"
                && lines.iter().all(|line| is_request_problem(line)));
        if problems {
            let mut text: Vec<String> = lines
                .iter()
                .map(|line| {
                    if render::is_diagnostics(line) {
                        (*line).to_owned()
                    } else {
                        format!("error: {line}")
                    }
                })
                .collect();
            let count = match lines.len() {
                1 => "1 problem".to_owned(),
                n => format!("{n} problems"),
            };
            text.push(format!("{}: {outcome} ({count})", refused.code));
            return CliError { diagnostics: true, ..CliError::new(text.join("\n")) }.with_code(1);
        }
    }
    CliError::from_client(error, state_dir)
}

/// Whether a line of a refusal is a problem at a named part of the
/// request: a parameter (`parameter `Size`: ...`) or a field
/// (`ResourcesToSkip: resource [Nope] does not exist ...`), as the stack
/// service reports them.
fn is_request_problem(line: &str) -> bool {
    if line.starts_with("parameter `") {
        return true;
    }
    line.split_once(": ").is_some_and(|(field, _)| {
        field.starts_with(|c: char| c.is_ascii_uppercase())
            && field.chars().all(|c| c.is_ascii_alphanumeric())
    })
}

fn print_stack(stack: &Stack) {
    render::line(&format!("stack        {}", stack.stack_name));
    render::line(&format!("id           {}", stack.stack_id));
    render::line(&format!("status       {}", stack.stack_status));
    if let Some(reason) = &stack.stack_status_reason {
        render::line(&format!("reason       {reason}"));
    }
    if let Some(description) = &stack.description {
        render::line(&format!("description  {description}"));
    }
    render::line(&format!("created      {}", stack.creation_time));
    if let Some(updated) = &stack.last_updated_time {
        render::line(&format!("updated      {updated}"));
    }
    if let Some(deleted) = &stack.deletion_time {
        render::line(&format!("deleted      {deleted}"));
    }
    render::line(&format!(
        "rollback     {}",
        if stack.disable_rollback { "disabled" } else { "on failure" }
    ));
    if !stack.parameters.is_empty() {
        render::line("parameters:");
        let rows: Vec<Vec<String>> = stack
            .parameters
            .iter()
            .map(|parameter| {
                vec![
                    format!("  {}", parameter.parameter_key),
                    parameter.parameter_value.clone().unwrap_or_default(),
                ]
            })
            .collect();
        render::rows(&rows);
    }
    if !stack.outputs.is_empty() {
        render::line("outputs:");
        let rows: Vec<Vec<String>> = stack
            .outputs
            .iter()
            .map(|output| {
                vec![
                    format!("  {}", output.output_key),
                    output.output_value.clone(),
                    output
                        .export_name
                        .as_ref()
                        .map(|name| format!("export {name}"))
                        .unwrap_or_default(),
                ]
            })
            .collect();
        render::rows(&rows);
    }
}
