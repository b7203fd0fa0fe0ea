//! The operations' requests and responses, in AWS's shapes and field names
//! (CloudFormation, Elastic Load Balancing v2, Auto Scaling), so runbooks can
//! select from them with the same JSONPath as on AWS
//! (`$.Stacks[0].StackStatus`). Times are RFC 3339 strings.
//!
//! Fields autopatch does not use are accepted where AWS has them (so a
//! request written for AWS parses) and documented as ignored.

use serde::{Deserialize, Serialize};

/// Why an operation was refused: AWS's error `Code`, a message and the HTTP
/// status the API answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
#[serde(rename_all = "PascalCase")]
pub struct ApiError {
    /// AWS's error code: `ValidationError`, `AlreadyExistsException`, ...
    pub code: String,
    /// What is wrong and, where it helps, what to do. May span lines
    /// (template diagnostics, one per line, `file:line:col: error: ...`).
    pub message: String,
    /// The HTTP status: 400 for the caller's mistakes, 404 for unknown
    /// operations, 500 for our faults.
    #[serde(skip)]
    pub status: u16,
}

impl ApiError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into(), status }
    }

    /// The request is wrong (CloudFormation's `ValidationError`).
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "ValidationError", message)
    }

    /// A stack with that name already exists.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(400, "AlreadyExistsException", message)
    }

    /// An operation autopatch does not implement: refused by name, never faked.
    pub fn not_implemented(service: &str, operation: &str) -> Self {
        Self::new(
            404,
            "UnsupportedOperation",
            format!("operation {operation} of service {service} is not implemented by autopatch"),
        )
    }

    /// Something failed on our side (the store, the engine).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalFailure", message)
    }
}

/// `Parameter` of CreateStack / UpdateStack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Parameter {
    pub parameter_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_previous_value: Option<bool>,
}

/// `CreateStack`. The template is `TemplateBody`, or `TemplateURL` with a
/// `file://` URL the daemon reads (diagnostics then name the file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateStackInput {
    pub stack_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_body: Option<String>,
    #[serde(default, rename = "TemplateURL", skip_serializing_if = "Option::is_none")]
    pub template_url: Option<String>,
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// Keep what was created when the create fails (no rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_rollback: Option<bool>,
    /// `ROLLBACK` (the default), `DO_NOTHING` or `DELETE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    /// Idempotency: a retried request with the same token is the same create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
    /// Accepted and ignored (there is no IAM locally).
    #[serde(default)]
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateStackOutput {
    pub stack_id: String,
}

/// `UpdateStack`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStackInput {
    pub stack_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_body: Option<String>,
    #[serde(default, rename = "TemplateURL", skip_serializing_if = "Option::is_none")]
    pub template_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_previous_template: Option<bool>,
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_rollback: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStackOutput {
    pub stack_id: String,
}

/// `CancelUpdateStack`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CancelUpdateStackInput {
    pub stack_name: String,
}

/// `ContinueUpdateRollback`: a stack left `UPDATE_ROLLBACK_FAILED` rolls
/// back again, from where its rollback stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContinueUpdateRollbackInput {
    pub stack_name: String,
    /// Logical ids of resources whose rollback is skipped: each must be
    /// `UPDATE_FAILED` because the rollback failed it. They are marked
    /// `UPDATE_COMPLETE` and recorded with the previous template's
    /// properties; the resources themselves are left as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources_to_skip: Vec<String>,
    /// Accepted and ignored (there is no IAM locally).
    #[serde(default, rename = "RoleARN", skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
}

/// `ContinueUpdateRollback`'s answer: empty, as on AWS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContinueUpdateRollbackOutput {}

/// `DeleteStack`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteStackInput {
    pub stack_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
    /// Logical ids of resources to keep (`DELETE_SKIPPED`) instead of
    /// deleting; only for a stack in `DELETE_FAILED`, as on AWS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retain_resources: Vec<String>,
}

/// `DescribeStacks`: one stack by name or id, or every live stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStacksInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStacksOutput {
    pub stacks: Vec<Stack>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stack {
    pub stack_id: String,
    pub stack_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    pub creation_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_time: Option<String>,
    pub stack_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_status_reason: Option<String>,
    pub disable_rollback: bool,
    #[serde(default)]
    pub outputs: Vec<Output>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub output_key: String,
    pub output_value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_name: Option<String>,
}

/// `DescribeStackEvents`: newest first, as AWS returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStackEventsInput {
    pub stack_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStackEventsOutput {
    pub stack_events: Vec<StackEvent>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StackEvent {
    pub stack_id: String,
    pub event_id: String,
    pub stack_name: String,
    pub logical_resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_resource_id: Option<String>,
    pub resource_type: String,
    pub timestamp: String,
    pub resource_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_status_reason: Option<String>,
}

/// `DescribeStackResources`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStackResourcesInput {
    pub stack_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStackResourcesOutput {
    pub stack_resources: Vec<StackResource>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StackResource {
    pub stack_name: String,
    pub stack_id: String,
    pub logical_resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_resource_id: Option<String>,
    pub resource_type: String,
    pub timestamp: String,
    pub resource_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_status_reason: Option<String>,
}

/// `ListStacks`: every stack, deleted ones included, optionally filtered by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStacksInput {
    #[serde(default)]
    pub stack_status_filter: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStacksOutput {
    pub stack_summaries: Vec<StackSummary>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StackSummary {
    pub stack_id: String,
    pub stack_name: String,
    pub creation_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_time: Option<String>,
    pub stack_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_status_reason: Option<String>,
}

/// `ListExports`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListExportsInput {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListExportsOutput {
    pub exports: Vec<Export>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Export {
    pub exporting_stack_id: String,
    pub name: String,
    pub value: String,
}

/// Elastic Load Balancing v2 `DescribeTargetHealth`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTargetHealthInput {
    pub target_group_arn: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTargetHealthOutput {
    pub target_health_descriptions: Vec<TargetHealthDescription>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetHealthDescription {
    pub target: TargetDescription,
    pub health_check_port: String,
    pub target_health: TargetHealth,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetDescription {
    pub id: String,
    pub port: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetHealth {
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Auto Scaling `DescribeAutoScalingGroups`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAutoScalingGroupsInput {
    #[serde(default)]
    pub auto_scaling_group_names: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAutoScalingGroupsOutput {
    pub auto_scaling_groups: Vec<AutoScalingGroup>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AutoScalingGroup {
    pub auto_scaling_group_name: String,
    pub min_size: u32,
    pub max_size: u32,
    pub desired_capacity: u32,
    pub health_check_type: String,
    pub health_check_grace_period: u32,
    #[serde(rename = "TargetGroupARNs")]
    pub target_group_arns: Vec<String>,
    pub availability_zones: Vec<String>,
    pub instances: Vec<AutoScalingInstance>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AutoScalingInstance {
    pub instance_id: String,
    pub availability_zone: String,
    /// `Pending`, `InService`, `Terminating`, `Terminated`.
    pub lifecycle_state: String,
    /// `Healthy` or `Unhealthy`.
    pub health_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_configuration_name: Option<String>,
    /// autopatch: the image the instance runs (its `ami-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}
