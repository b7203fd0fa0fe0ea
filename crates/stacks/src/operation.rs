//! The executor of stack operations: asks the [`planner`](crate::planner)
//! for the next step, writes the new status to the store, acts, writes the
//! outcome, and asks again. Because every step starts from the store, a
//! daemon restarted after `kill -9` resumes an operation where it stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use autopatch_documents::SourceFile;
use autopatch_documents::cloudformation::{
    DeletionPolicy, StaticContext, Template, Value, dependency_order, evaluate,
    evaluate_conditions, parse_template,
};
use autopatch_engine::Engine;
use autopatch_model::{ResourceStatus, StackStatus, Timestamp};
use autopatch_store::{StackEventRow, StackResourceRow, StackRow, Store, StoreError};
use serde_json::Value as Json;

use crate::api::Output;
use crate::clock;
use crate::context::{StackIdentity, add_resource, stack_context, to_json};
use crate::planner::{StackView, Step, next_step};
use crate::resources::{Request, physical_id, uuid};
use crate::runtime::Runtime;

/// The type CloudFormation gives a stack's own events.
pub(crate) const STACK_TYPE: &str = "AWS::CloudFormation::Stack";

/// Why an operation could not go on (the store failed): the operation stays
/// in progress and is resumed by the next daemon start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OperationError {
    #[error("stack {0} is gone")]
    Gone(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A parsed stack: its template and evaluation context. The template,
/// parameters, conditions and exports do not change during an operation, so
/// they are read once; the row and the resources are refreshed per step.
pub(crate) struct Loaded {
    pub(crate) row: StackRow,
    pub(crate) template: Template,
    /// Parameters, pseudo parameters, conditions, exports: no resources.
    base: StaticContext,
    /// `base` plus the resources created so far.
    pub(crate) context: StaticContext,
    pub(crate) order: Vec<String>,
    /// Resources with `DeletionPolicy: Retain`.
    retain: BTreeSet<String>,
}

impl Loaded {
    /// Takes the stack's current row and resources into the context.
    fn refresh(&mut self, row: StackRow, resources: &[StackResourceRow]) {
        self.row = row;
        self.context = self.base.clone();
        for resource in resources {
            if let (
                Some(physical),
                ResourceStatus::CreateComplete | ResourceStatus::UpdateComplete,
            ) = (&resource.physical_id, resource.status)
            {
                let attributes: Json =
                    serde_json::from_str(&resource.attributes).unwrap_or_default();
                add_resource(&mut self.context, &resource.logical_id, physical, &attributes);
            }
        }
    }
}

/// Every live stack's exports but `except`'s: name → value.
pub(crate) fn exports(
    store: &Store,
    except: Option<&str>,
) -> Result<BTreeMap<String, (String, String)>, StoreError> {
    let mut exports = BTreeMap::new();
    for stack in store.stacks(false)? {
        if Some(stack.stack_id.as_str()) == except {
            continue;
        }
        let outputs: Vec<Output> = serde_json::from_str(&stack.outputs).unwrap_or_default();
        for output in outputs {
            if let Some(name) = output.export_name {
                exports.insert(name, (output.output_value, stack.stack_id.clone()));
            }
        }
    }
    Ok(exports)
}

/// Parses a stored stack and builds its context (without resources: see
/// [`Loaded::refresh`]).
pub(crate) fn load(
    store: &Store,
    stack_id: &str,
    region: &str,
    account: &str,
) -> Result<Loaded, OperationError> {
    let row = store.stack(stack_id)?.ok_or_else(|| OperationError::Gone(stack_id.to_owned()))?;
    // The template was validated before the stack was written; a failure
    // here means the store was edited by hand.
    let template =
        parse_template(&SourceFile::new(row.template_source.clone(), row.template_body.clone()))
            .map_err(|_| {
                OperationError::Gone(format!("{stack_id} (its stored template no longer parses)"))
            })?;
    let parameters: BTreeMap<String, String> =
        serde_json::from_str(&row.parameters).unwrap_or_default();
    let identity = StackIdentity {
        stack_name: &row.name,
        stack_id: &row.stack_id,
        region,
        account_id: account,
    };
    let exports = exports(store, Some(stack_id))?
        .into_iter()
        .map(|(name, (value, _))| (name, value))
        .collect();
    let mut base = stack_context(&template, &parameters, &identity, exports);
    let conditions = evaluate_conditions(&template, &base).unwrap_or_default();
    base.conditions = conditions.clone();
    let order = dependency_order(&template, &conditions)
        .map(|order| order.into_iter().map(|name| name.0).collect())
        .unwrap_or_default();
    let retain = template
        .resources
        .iter()
        .filter(|(_, resource)| {
            resource
                .deletion_policy
                .as_ref()
                .is_some_and(|policy| policy.value == DeletionPolicy::Retain)
        })
        .map(|(name, _)| name.0.clone())
        .collect();
    Ok(Loaded { row, template, context: base.clone(), base, order, retain })
}

impl<E: Engine + 'static> Runtime<E> {
    /// Runs the stack's operation until it ends (or the store fails).
    pub(crate) async fn run_operation(
        self: &Arc<Self>,
        stack_id: &str,
    ) -> Result<StackStatus, OperationError> {
        let mut loaded = load(&self.store, stack_id, &self.config.region, &self.config.account_id)?;
        loop {
            let row = self
                .store
                .stack(stack_id)?
                .ok_or_else(|| OperationError::Gone(stack_id.to_owned()))?;
            let resources = self.store.stack_resources(stack_id)?;
            loaded.refresh(row, &resources);
            let view = StackView {
                status: Some(loaded.row.status),
                order: loaded.order.clone(),
                resources: resources
                    .iter()
                    .map(|row| (row.logical_id.clone(), row.status))
                    .collect(),
                retain: loaded.retain.clone(),
                disable_rollback: loaded.row.disable_rollback,
            };
            let existing =
                |name: &str| resources.iter().find(|row| row.logical_id == name).cloned();
            match next_step(&view) {
                Step::Idle => return Ok(loaded.row.status),
                Step::Create(name) => self.create_step(&loaded, &name, existing(&name)).await?,
                Step::Delete(name) => {
                    if let Some(row) = existing(&name) {
                        self.delete_step(&loaded.row, row).await?;
                    }
                }
                Step::Retain(name) => {
                    if let Some(row) = existing(&name) {
                        self.set_resource(
                            &loaded.row,
                            row,
                            ResourceStatus::DeleteSkipped,
                            None,
                            None,
                        )?;
                    }
                }
                Step::Outputs => match self.outputs(&loaded) {
                    Ok(outputs) => {
                        let json = serde_json::to_string(&outputs).unwrap_or_else(|_| "[]".into());
                        self.store.set_stack_outputs(
                            stack_id,
                            &json,
                            &loaded.row.imports,
                            clock::now(),
                        )?;
                        self.set_stack_status(&loaded.row, StackStatus::CreateComplete, None)?;
                    }
                    Err(reason) => {
                        let next = if loaded.row.disable_rollback {
                            StackStatus::CreateFailed
                        } else {
                            StackStatus::RollbackInProgress
                        };
                        self.set_stack_status(&loaded.row, next, Some(&reason))?;
                    }
                },
                Step::Transition(status, reason) => {
                    self.set_stack_status(&loaded.row, status, reason.as_deref())?;
                }
            }
        }
    }

    async fn create_step(
        &self,
        loaded: &Loaded,
        name: &str,
        existing: Option<StackResourceRow>,
    ) -> Result<(), OperationError> {
        let stack = &loaded.row;
        let Some((_, resource)) = loaded.template.resources.iter().find(|(key, _)| key.0 == name)
        else {
            return Ok(());
        };
        let resource_type = resource.resource_type.value.clone();
        // The physical id is chosen once and written before anything is made.
        let row = match existing {
            Some(row)
                if row.status == ResourceStatus::CreateInProgress && row.physical_id.is_some() =>
            {
                row
            }
            _ => {
                let physical = physical_id(
                    &resource_type,
                    &stack.name,
                    name,
                    &self.config.region,
                    &self.config.account_id,
                );
                let row = StackResourceRow {
                    stack_id: stack.stack_id.clone(),
                    logical_id: name.to_owned(),
                    resource_type: resource_type.clone(),
                    physical_id: Some(physical),
                    status: ResourceStatus::CreateInProgress,
                    status_reason: None,
                    properties: "{}".into(),
                    attributes: "{}".into(),
                    replaced: None,
                    updated_at: clock::now(),
                };
                self.store.put_stack_resource(&row)?;
                self.event(stack, &row, ResourceStatus::CreateInProgress.as_str(), None)?;
                row
            }
        };
        let physical = row.physical_id.clone().unwrap_or_default();
        let properties = match &resource.properties {
            Some(expr) => evaluate(expr, &loaded.context),
            None => Ok(Value::Map(BTreeMap::new())),
        };
        let signals = resource
            .creation_policy
            .as_ref()
            .and_then(|policy| policy.resource_signal.as_ref())
            .map(|signal| {
                let count = signal.count.resolve(&loaded.context)?;
                let timeout = signal.timeout.resolve(&loaded.context)?;
                Ok((count, Duration::from_secs(timeout.seconds)))
            })
            .transpose();
        let outcome = match (properties, signals) {
            (Ok(properties), Ok(signals)) => {
                let request = Request {
                    stack_id: &stack.stack_id,
                    stack_name: &stack.name,
                    logical_id: name,
                    resource_type: &resource_type,
                    physical_id: &physical,
                    properties: &properties,
                    signals,
                    started_at: row.updated_at,
                };
                let json = to_json(&properties).to_string();
                let with_properties = StackResourceRow { properties: json, ..row.clone() };
                self.store.put_stack_resource(&with_properties)?;
                self.create_resource(&request).await.map(|attributes| (attributes, with_properties))
            }
            (Err(error), _) | (_, Err(error)) => {
                Err(format!("{}:{}: {}", stack.template_source, error.span.start, error.kind))
            }
        };
        match outcome {
            Ok((attributes, row)) => {
                self.set_resource(
                    stack,
                    row,
                    ResourceStatus::CreateComplete,
                    None,
                    Some(attributes),
                )?;
            }
            Err(reason) => {
                self.set_resource(stack, row, ResourceStatus::CreateFailed, Some(&reason), None)?;
            }
        }
        Ok(())
    }

    async fn delete_step(
        &self,
        stack: &StackRow,
        row: StackResourceRow,
    ) -> Result<(), OperationError> {
        let row = if row.status == ResourceStatus::DeleteInProgress {
            row
        } else {
            self.set_resource(stack, row, ResourceStatus::DeleteInProgress, None, None)?
        };
        let attributes: Json = serde_json::from_str(&row.attributes).unwrap_or_default();
        let outcome = match &row.physical_id {
            Some(physical) => self.delete_resource(&row.resource_type, physical, &attributes).await,
            None => Ok(()),
        };
        match outcome {
            Ok(()) => self.set_resource(stack, row, ResourceStatus::DeleteComplete, None, None)?,
            Err(reason) => {
                self.set_resource(stack, row, ResourceStatus::DeleteFailed, Some(&reason), None)?
            }
        };
        Ok(())
    }

    /// Evaluates the outputs; an export name another stack already uses is an error.
    fn outputs(&self, loaded: &Loaded) -> Result<Vec<Output>, String> {
        let taken =
            exports(&self.store, Some(&loaded.row.stack_id)).map_err(|error| error.to_string())?;
        let mut outputs = Vec::new();
        let mut names = BTreeSet::new();
        for (key, output) in &loaded.template.outputs {
            if let Some(condition) = &output.condition
                && loaded.context.conditions.get(&condition.value) != Some(&true)
            {
                continue;
            }
            let at = |error: autopatch_documents::cloudformation::EvalError| {
                format!(
                    "{}:{}: output {key}: {}",
                    loaded.row.template_source, error.span.start, error.kind
                )
            };
            let value = evaluate(&output.value, &loaded.context).map_err(at)?;
            let export_name = match &output.export_name {
                Some(expr) => Some(evaluate(expr, &loaded.context).map_err(at)?),
                None => None,
            };
            let export_name = export_name.map(|name| name.as_scalar_text().unwrap_or_default());
            if let Some(name) = &export_name {
                if let Some((_, exporter)) = taken.get(name) {
                    return Err(format!(
                        "Export with name {name} is already exported by stack {exporter}"
                    ));
                }
                if !names.insert(name.clone()) {
                    return Err(format!(
                        "Export with name {name} is exported twice by this template"
                    ));
                }
            }
            outputs.push(Output {
                output_key: key.clone(),
                output_value: output_text(&value),
                description: output.description.clone(),
                export_name,
            });
        }
        Ok(outputs)
    }

    fn set_resource(
        &self,
        stack: &StackRow,
        row: StackResourceRow,
        status: ResourceStatus,
        reason: Option<&str>,
        attributes: Option<Json>,
    ) -> Result<StackResourceRow, OperationError> {
        let row = StackResourceRow {
            status,
            status_reason: reason.map(str::to_owned),
            attributes: attributes.map(|json| json.to_string()).unwrap_or(row.attributes.clone()),
            updated_at: clock::now(),
            ..row
        };
        self.store.put_stack_resource(&row)?;
        self.event(stack, &row, status.as_str(), reason)?;
        Ok(row)
    }

    pub(crate) fn set_stack_status(
        &self,
        stack: &StackRow,
        status: StackStatus,
        reason: Option<&str>,
    ) -> Result<(), OperationError> {
        let now = clock::now();
        self.store.set_stack_status(&stack.stack_id, status, reason, now)?;
        stack_event(&self.store, stack, status, reason, now)?;
        Ok(())
    }

    fn event(
        &self,
        stack: &StackRow,
        row: &StackResourceRow,
        status: &str,
        reason: Option<&str>,
    ) -> Result<(), OperationError> {
        self.store.append_stack_event(&StackEventRow {
            seq: 0,
            event_id: uuid(),
            stack_id: stack.stack_id.clone(),
            stack_name: stack.name.clone(),
            logical_id: row.logical_id.clone(),
            physical_id: row.physical_id.clone(),
            resource_type: row.resource_type.clone(),
            status: status.to_owned(),
            reason: reason.map(str::to_owned),
            at: clock::now(),
        })?;
        Ok(())
    }
}

/// Appends an event about the stack itself.
pub(crate) fn stack_event(
    store: &Store,
    stack: &StackRow,
    status: StackStatus,
    reason: Option<&str>,
    at: Timestamp,
) -> Result<(), StoreError> {
    store.append_stack_event(&StackEventRow {
        seq: 0,
        event_id: uuid(),
        stack_id: stack.stack_id.clone(),
        stack_name: stack.name.clone(),
        logical_id: stack.name.clone(),
        physical_id: Some(stack.stack_id.clone()),
        resource_type: STACK_TYPE.to_owned(),
        status: status.as_str().to_owned(),
        reason: reason.map(str::to_owned),
        at,
    })?;
    Ok(())
}

/// An output's value as DescribeStacks shows it: lists joined by commas.
fn output_text(value: &Value) -> String {
    match value {
        Value::List(items) => items.iter().map(output_text).collect::<Vec<_>>().join(","),
        other => other.as_scalar_text().unwrap_or_else(|| other.to_string()),
    }
}
