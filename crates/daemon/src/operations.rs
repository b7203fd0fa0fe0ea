//! [`Operations`]: the dispatch from `(service, operation, JSON)` to a typed
//! method, and its implementation for [`StackService`].
//!
//! Design note: dispatch is a plain function of names and JSON, with no HTTP
//! in it, so the same handlers serve the HTTP API, the CLI (through the API)
//! and, later, a runbook's `aws:executeAwsApi` steps. An operation that is
//! not implemented is refused by name ([`ApiError::not_implemented`]), never
//! answered with a made-up success.

use std::future::Future;

use autopatch_engine::Engine;
use autopatch_stacks::api::ApiError;
use autopatch_stacks::{ListenerPorts, StackService};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Carries out one operation named the AWS way.
///
/// `input` is the request body (already valid JSON); the answer is the
/// response body. Implementations convert `input` to the operation's typed
/// request with [`decode`] and the typed response back with [`encode`].
pub trait Operations: Send + Sync + 'static {
    fn call(
        &self,
        service: &str,
        operation: &str,
        input: Value,
    ) -> impl Future<Output = Result<Value, ApiError>> + Send;

    /// What the service could not bring back after a restart and is still
    /// trying to: `Ping` reports it, so `autopatch up` can tell the user.
    fn problems(&self) -> Vec<String> {
        Vec::new()
    }

    /// How load balancer listeners get their ports (`free`, `template`), if
    /// the service has load balancers: `Ping` reports it, so `autopatch up`
    /// can tell when the running daemon was started with other options.
    fn listener_ports(&self) -> Option<&'static str> {
        None
    }
}

/// Converts a request body to `T`; a body that does not fit is a
/// `ValidationError` naming the field (`Parameters[0].ParameterKey: invalid
/// type: integer `3`, expected a string`).
pub fn decode<T: DeserializeOwned>(operation: &str, input: Value) -> Result<T, ApiError> {
    let kind = match &input {
        Value::Object(_) => None,
        Value::Null => Some("null"),
        Value::Bool(_) => Some("a boolean"),
        Value::Number(_) => Some("a number"),
        Value::String(_) => Some("a string"),
        Value::Array(_) => Some("an array"),
    };
    if let Some(kind) = kind {
        return Err(ApiError::validation(format!(
            "request of {operation} is not valid: expected a JSON object, got {kind}"
        )));
    }
    serde_path_to_error::deserialize(input).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "." {
            ApiError::validation(format!("request of {operation} is not valid: {inner}"))
        } else {
            ApiError::validation(format!("request of {operation} is not valid: {path}: {inner}"))
        }
    })
}

/// Converts a typed response to its JSON body.
pub fn encode<T: Serialize>(output: &T) -> Result<Value, ApiError> {
    serde_json::to_value(output)
        .map_err(|error| ApiError::internal(format!("failed to encode the response: {error}")))
}

/// Decodes the input, runs a synchronous operation, encodes its output.
fn sync_call<I: DeserializeOwned, O: Serialize>(
    operation: &str,
    input: Value,
    run: impl FnOnce(I) -> Result<O, ApiError>,
) -> Result<Value, ApiError> {
    encode(&run(decode(operation, input)?)?)
}

impl<E: Engine + 'static> Operations for StackService<E> {
    async fn call(&self, service: &str, operation: &str, input: Value) -> Result<Value, ApiError> {
        match (service, operation) {
            ("cloudformation", "CreateStack") => {
                encode(&self.create_stack(decode(operation, input)?).await?)
            }
            ("cloudformation", "UpdateStack") => {
                encode(&self.update_stack(decode(operation, input)?).await?)
            }
            ("cloudformation", "CancelUpdateStack") => {
                self.cancel_update_stack(decode(operation, input)?).await?;
                Ok(Value::Object(serde_json::Map::new()))
            }
            ("cloudformation", "ContinueUpdateRollback") => {
                encode(&self.continue_update_rollback(decode(operation, input)?).await?)
            }
            ("cloudformation", "DeleteStack") => {
                self.delete_stack(decode(operation, input)?).await?;
                Ok(Value::Object(serde_json::Map::new()))
            }
            ("cloudformation", "DescribeStacks") => {
                sync_call(operation, input, |input| self.describe_stacks(input))
            }
            ("cloudformation", "DescribeStackEvents") => {
                sync_call(operation, input, |input| self.describe_stack_events(input))
            }
            ("cloudformation", "DescribeStackResources") => {
                sync_call(operation, input, |input| self.describe_stack_resources(input))
            }
            ("cloudformation", "ListStacks") => {
                sync_call(operation, input, |input| self.list_stacks(input))
            }
            ("cloudformation", "ListExports") => {
                sync_call(operation, input, |input| self.list_exports(input))
            }
            ("elasticloadbalancingv2", "DescribeTargetHealth") => {
                sync_call(operation, input, |input| self.describe_target_health(input))
            }
            ("autoscaling", "DescribeAutoScalingGroups") => {
                sync_call(operation, input, |input| self.describe_auto_scaling_groups(input))
            }
            _ => Err(ApiError::not_implemented(service, operation)),
        }
    }

    fn problems(&self) -> Vec<String> {
        self.recovery_notes()
    }

    fn listener_ports(&self) -> Option<&'static str> {
        Some(match StackService::listener_ports(self) {
            ListenerPorts::Free => "free",
            ListenerPorts::Template => "template",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autopatch_stacks::api::{CreateStackInput, ListStacksInput};
    use serde_json::json;

    /// Every operation the stack service's dispatch knows.
    const STACK_OPERATIONS: &[(&str, &str)] = &[
        ("cloudformation", "CreateStack"),
        ("cloudformation", "UpdateStack"),
        ("cloudformation", "CancelUpdateStack"),
        ("cloudformation", "ContinueUpdateRollback"),
        ("cloudformation", "DeleteStack"),
        ("cloudformation", "DescribeStacks"),
        ("cloudformation", "DescribeStackEvents"),
        ("cloudformation", "DescribeStackResources"),
        ("cloudformation", "ListStacks"),
        ("cloudformation", "ListExports"),
        ("elasticloadbalancingv2", "DescribeTargetHealth"),
        ("autoscaling", "DescribeAutoScalingGroups"),
    ];

    async fn stack_service() -> std::sync::Arc<StackService<autopatch_engine::FakeEngine>> {
        let state = tempfile::tempdir().unwrap();
        let config = autopatch_stacks::ServiceConfig {
            state_dir: state.keep(),
            region: "local".into(),
            account_id: "000000000000".into(),
            listener_ports: autopatch_stacks::ListenerPorts::Free,
            load_balancer_threads: 0,
            fleet_interval: std::time::Duration::from_secs(1),
        };
        let engine = std::sync::Arc::new(autopatch_engine::FakeEngine::new());
        let store = std::sync::Arc::new(autopatch_store::Store::open_in_memory().unwrap());
        StackService::open(config, engine, store).await.unwrap()
    }

    #[tokio::test]
    async fn every_stack_operation_reaches_its_typed_method_and_others_are_refused_by_name() {
        let service = stack_service().await;
        // A body of the wrong shape is refused by the typed request of the
        // operation it reached, so this shows the route without running it.
        for (name, operation) in STACK_OPERATIONS {
            let error = service.call(name, operation, json!("not an object")).await.unwrap_err();
            assert_eq!(error.code, "ValidationError", "{name}/{operation}: {error}");
            assert!(
                error.message.starts_with(&format!("request of {operation} is not valid: ")),
                "{name}/{operation}: {error}"
            );
        }
        for (name, operation) in [
            ("cloudformation", "CreateChangeSet"),
            ("cloudformation", "createstack"),
            ("ec2", "DescribeInstances"),
            ("autoscaling", "DescribeTargetHealth"),
        ] {
            let error = service.call(name, operation, json!({})).await.unwrap_err();
            assert_eq!(error, ApiError::not_implemented(name, operation));
            assert_eq!(error.status, 404);
        }
    }

    #[test]
    fn continue_update_rollback_reads_aws_field_names() {
        let input = decode::<autopatch_stacks::api::ContinueUpdateRollbackInput>(
            "ContinueUpdateRollback",
            json!({
                "StackName": "web",
                "ResourcesToSkip": ["Group", "Config"],
                "RoleARN": "arn:aws:iam::000000000000:role/cfn",
                "ClientRequestToken": "t-1",
            }),
        )
        .unwrap();
        assert_eq!(input.stack_name, "web");
        assert_eq!(input.resources_to_skip, ["Group", "Config"]);
        assert_eq!(input.role_arn.as_deref(), Some("arn:aws:iam::000000000000:role/cfn"));
        let error = decode::<autopatch_stacks::api::ContinueUpdateRollbackInput>(
            "ContinueUpdateRollback",
            json!({"StackName": "web", "ResourcesToSkip": "Group"}),
        )
        .unwrap_err();
        assert_eq!(
            error.message,
            "request of ContinueUpdateRollback is not valid: ResourcesToSkip: invalid type: string \"Group\", expected a sequence"
        );
    }

    #[test]
    fn a_body_that_does_not_fit_names_the_field() {
        let error = decode::<CreateStackInput>(
            "CreateStack",
            json!({"StackName": "web", "Parameters": [{"ParameterKey": 3}]}),
        )
        .unwrap_err();
        assert_eq!(error.status, 400);
        assert_eq!(error.code, "ValidationError");
        assert_eq!(
            error.message,
            "request of CreateStack is not valid: Parameters[0].ParameterKey: invalid type: integer `3`, expected a string"
        );

        let error = decode::<CreateStackInput>("CreateStack", json!({})).unwrap_err();
        assert_eq!(error.message, "request of CreateStack is not valid: missing field `StackName`");

        let error = decode::<ListStacksInput>("ListStacks", json!([])).unwrap_err();
        assert_eq!(
            error.message,
            "request of ListStacks is not valid: expected a JSON object, got an array"
        );
    }
}
