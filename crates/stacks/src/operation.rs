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
use crate::update::{Change, Facts, GroupPolicy, Held, RollingPolicy, classify};

/// The type CloudFormation gives a stack's own events.
pub(crate) const STACK_TYPE: &str = "AWS::CloudFormation::Stack";

const GROUP_TYPE: &str = "AWS::AutoScaling::AutoScalingGroup";

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
    /// Resources kept when deleted (`DeletionPolicy: Retain` or
    /// `RetainExceptOnCreate`): by a stack delete, and by an update's
    /// cleanup when the new template no longer names them (with the
    /// previous template's policy). A create's rollback deletes them all.
    retain: BTreeSet<String>,
    /// Resources whose replaced physical resource an update keeps
    /// (`UpdateReplacePolicy: Retain`) instead of deleting it at cleanup.
    replace_retain: BTreeSet<String>,
    /// The operation is an update's rollback: `template` is the previous one.
    pub(crate) rolling_back: bool,
    /// Where `template` came from (the previous template's while rolling
    /// back), for positions in messages.
    source: String,
}

impl Loaded {
    /// The template's resource named `name`.
    fn resource(&self, name: &str) -> Option<&autopatch_documents::cloudformation::Resource> {
        self.template.resources.iter().find(|(key, _)| key.0 == name).map(|(_, resource)| resource)
    }

    /// An evaluation error as `file:line:col: what`.
    fn located(&self, error: &autopatch_documents::cloudformation::EvalError) -> String {
        format!("{}:{}: {}", self.source, error.span.start, error.kind)
    }

    /// Takes the stack's current row and resources into the context.
    fn refresh(&mut self, row: StackRow, resources: &[StackResourceRow]) {
        self.row = row;
        self.context = self.base.clone();
        for resource in resources {
            // A resource changed in place keeps its physical id while it
            // changes; a replacement counts once it is complete.
            if let (Some(physical), true) = (&resource.physical_id, current_exists(resource)) {
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

/// The exports of `stack` that other live stacks import: name → (its
/// value now, the first importing stack's name).
pub(crate) fn exports_in_use(
    store: &Store,
    stack: &StackRow,
) -> Result<BTreeMap<String, (String, String)>, StoreError> {
    let outputs: Vec<Output> = serde_json::from_str(&stack.outputs).unwrap_or_default();
    let mut in_use = BTreeMap::new();
    for other in store.stacks(false)? {
        if other.stack_id == stack.stack_id {
            continue;
        }
        let imports: Vec<String> = serde_json::from_str(&other.imports).unwrap_or_default();
        for output in &outputs {
            if let Some(name) = &output.export_name
                && imports.contains(name)
                && !in_use.contains_key(name)
            {
                in_use.insert(name.clone(), (output.output_value.clone(), other.name.clone()));
            }
        }
    }
    Ok(in_use)
}

/// What an update would do to an export another stack imports, as
/// CloudFormation refuses it; `None` when it keeps the export as it is.
/// `new` is the export's value under the new template (`None`: no longer
/// exported).
pub(crate) fn export_change_refused(
    name: &str,
    (value, importer): &(String, String),
    new: Option<&str>,
) -> Option<String> {
    match new {
        None => Some(format!("Export {name} cannot be deleted as it is in use by {importer}")),
        Some(new) if new != value => {
            Some(format!("Export {name} cannot be updated as it is in use by {importer}"))
        }
        Some(_) => None,
    }
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
    // A rollback converges on what the stack ran with before the update.
    let rolling_back = matches!(
        row.status,
        StackStatus::UpdateRollbackInProgress
            | StackStatus::UpdateRollbackCompleteCleanupInProgress
    );
    let (source, body, parameters) = match (
        rolling_back,
        &row.previous_template_source,
        &row.previous_template_body,
        &row.previous_parameters,
    ) {
        (true, Some(source), Some(body), Some(parameters)) => (source, body, parameters),
        _ => (&row.template_source, &row.template_body, &row.parameters),
    };
    // The template was validated before the stack was written; a failure
    // here means the store was edited by hand.
    let template =
        parse_template(&SourceFile::new(source.clone(), body.clone())).map_err(|_| {
            OperationError::Gone(format!("{stack_id} (its stored template no longer parses)"))
        })?;
    let parameters: BTreeMap<String, String> = serde_json::from_str(parameters).unwrap_or_default();
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
    // Policies written with Fn::If, as the conditions choose them.
    let mut template = template;
    template.choose_policies(&conditions);
    base.conditions = conditions.clone();
    let order = dependency_order(&template, &conditions)
        .map(|order| order.into_iter().map(|name| name.0).collect())
        .unwrap_or_default();
    // A resource an update removes keeps the policy its previous template
    // gave it (the new template no longer says).
    let previous = match (&row.previous_template_source, &row.previous_template_body) {
        (Some(source), Some(body)) if !rolling_back => {
            parse_template(&SourceFile::new(source.clone(), body.clone())).ok()
        }
        _ => None,
    };
    let mut retain = kept(&template, |resource| &resource.deletion_policy);
    if let Some(previous) = &previous {
        let declared = |name: &String| template.resources.keys().any(|key| &key.0 == name);
        retain.extend(
            kept(previous, |resource| &resource.deletion_policy)
                .into_iter()
                .filter(|name| !declared(name)),
        );
    }
    let replace_retain = kept(&template, |resource| &resource.update_replace_policy);
    let source = source.clone();
    Ok(Loaded {
        row,
        template,
        context: base.clone(),
        base,
        order,
        retain,
        replace_retain,
        rolling_back,
        source,
    })
}

/// The resources of `template` whose policy (`DeletionPolicy` or
/// `UpdateReplacePolicy`, as `policy` reads it) keeps them: `Retain`, or
/// `RetainExceptOnCreate` (which deletes only in the rollback of the
/// operation that created the resource: a create's rollback, which ignores
/// this set, or an update's rollback cleanup, which deletes what the update
/// made).
fn kept(
    template: &Template,
    policy: impl Fn(
        &autopatch_documents::cloudformation::Resource,
    ) -> &Option<autopatch_documents::cloudformation::Spanned<DeletionPolicy>>,
) -> BTreeSet<String> {
    template
        .resources
        .iter()
        .filter(|(_, resource)| {
            policy(resource).as_ref().is_some_and(|policy| {
                matches!(
                    policy.value,
                    DeletionPolicy::Retain | DeletionPolicy::RetainExceptOnCreate
                )
            })
        })
        .map(|(name, _)| name.0.clone())
        .collect()
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
            let rolling_back = matches!(
                row.status,
                StackStatus::UpdateRollbackInProgress
                    | StackStatus::UpdateRollbackCompleteCleanupInProgress
            );
            if rolling_back != loaded.rolling_back {
                // An update turned into its rollback: converge on the
                // previous template from now on.
                loaded = load(&self.store, stack_id, &self.config.region, &self.config.account_id)?;
            }
            let resources = self.store.stack_resources(stack_id)?;
            loaded.refresh(row, &resources);
            let updating = matches!(
                loaded.row.status,
                StackStatus::UpdateInProgress | StackStatus::UpdateRollbackInProgress
            );
            let view = StackView {
                status: Some(loaded.row.status),
                order: loaded.order.clone(),
                resources: resources
                    .iter()
                    .map(|row| (row.logical_id.clone(), row.status))
                    .collect(),
                retain: loaded.retain.clone(),
                disable_rollback: loaded.row.disable_rollback,
                changes: if updating { self.changes(&loaded, &resources) } else { BTreeMap::new() },
                replaced: resources
                    .iter()
                    .filter(|row| row.replaced.is_some())
                    .map(|row| row.logical_id.clone())
                    .collect(),
            };
            let existing =
                |name: &str| resources.iter().find(|row| row.logical_id == name).cloned();
            match next_step(&view) {
                Step::Idle => return Ok(loaded.row.status),
                Step::Create(name) => self.create_step(&loaded, &name, existing(&name)).await?,
                Step::Update(name, change) => {
                    if let Some(row) = existing(&name) {
                        self.update_step(&loaded, &name, change, row).await?;
                    }
                }
                Step::Cleanup(name) => {
                    if let Some(row) = existing(&name) {
                        self.cleanup_step(&loaded, row).await?;
                    }
                }
                Step::Delete(name) => {
                    if let Some(row) = existing(&name) {
                        self.delete_step(&loaded.row, row).await?;
                    }
                }
                Step::Retain(name) => {
                    if let Some(row) = existing(&name) {
                        self.retain_step(&loaded.row, row, "DeletionPolicy").await?;
                    }
                }
                Step::Outputs => self.outputs_step(&loaded)?,
                Step::Transition(status, reason) => {
                    self.end_step(&loaded.row, &resources, status, reason.as_deref()).await?;
                }
            }
        }
    }

    /// `ContinueUpdateRollback`'s `ResourcesToSkip`: each resource named is
    /// marked `UPDATE_COMPLETE` and recorded with the properties the
    /// previous template gives it, so the rollback finds nothing left to do
    /// for it; the resource itself is not touched (it may differ from what
    /// the stack records until an update or a hand fixes it). Called once
    /// the stack is `UPDATE_ROLLBACK_IN_PROGRESS` again, before its
    /// operation runs.
    pub(crate) fn skip_rollback(
        &self,
        stack_id: &str,
        skip: &BTreeSet<String>,
    ) -> Result<(), OperationError> {
        let mut loaded = load(&self.store, stack_id, &self.config.region, &self.config.account_id)?;
        let resources = self.store.stack_resources(stack_id)?;
        loaded.refresh(loaded.row.clone(), &resources);
        let reason = "Resource skipped by ContinueUpdateRollback: recorded with the previous template's properties, left as it is";
        for row in resources.into_iter().filter(|row| skip.contains(&row.logical_id)) {
            // A resource whose previous properties do not evaluate keeps the
            // ones it has: the rollback then reports why.
            let desired = match self.desired(&loaded, &row.logical_id) {
                Ok((properties, _)) => to_json(&properties),
                Err(_) => serde_json::from_str(&row.properties).unwrap_or_default(),
            };
            // Counted as rolled back, attributes too: a launch template is
            // the version the update started from again (nothing is made or
            // looked up), so what depends on it (a group's `Version`) is
            // evaluated against what it was before the update.
            let attributes = match row.resource_type.as_str() {
                "AWS::EC2::LaunchTemplate" => {
                    let attributes: Json =
                        serde_json::from_str(&row.attributes).unwrap_or_default();
                    crate::resources::launch_template_rolled_back(&attributes, &desired)
                }
                _ => None,
            };
            let row = StackResourceRow { properties: desired.to_string(), ..row };
            self.set_resource(
                &loaded.row,
                row,
                ResourceStatus::UpdateComplete,
                Some(reason),
                attributes,
            )?;
        }
        Ok(())
    }

    /// Moves the stack to `status`. An operation that ends with the
    /// stack's resources deleted or final (a delete, a create's rollback,
    /// an update's or a rollback's cleanup) first deletes every group of the
    /// stack that still runs but that no row names (current or held for a
    /// cleanup): no group outlives the resource that made it. A delete or a
    /// create's rollback that cannot delete one fails with the reason; an
    /// update's cleanup reports it and ends, as a failed cleanup does.
    async fn end_step(
        &self,
        stack: &StackRow,
        resources: &[StackResourceRow],
        status: StackStatus,
        reason: Option<&str>,
    ) -> Result<(), OperationError> {
        let failed = match status {
            StackStatus::DeleteComplete => Some(StackStatus::DeleteFailed),
            StackStatus::RollbackComplete => Some(StackStatus::RollbackFailed),
            StackStatus::UpdateComplete | StackStatus::UpdateRollbackComplete => None,
            _ => return self.transition(stack, status, reason),
        };
        let named = named_groups(resources);
        let mut problems = Vec::new();
        for (group, logical_id) in self.stack_groups(&stack.stack_id)? {
            if named.contains(&group) {
                continue;
            }
            if let Err(problem) = self.sweep_group(stack, &group, logical_id.as_deref()).await? {
                problems.push(problem);
            }
        }
        match (problems.is_empty(), failed) {
            (false, Some(failed)) => self.transition(stack, failed, Some(&problems.join("; "))),
            _ => self.transition(stack, status, reason),
        }
    }

    /// Every Auto Scaling group the stack ever made that may still run:
    /// those its events name (each was announced before it was made) and
    /// those whose instances carry its id; with the logical id that made
    /// it, when an event says.
    pub(crate) fn stack_groups(
        &self,
        stack_id: &str,
    ) -> Result<BTreeMap<String, Option<String>>, StoreError> {
        let mut groups = BTreeMap::new();
        for event in self.store.stack_events(stack_id)? {
            if event.resource_type == GROUP_TYPE
                && let Some(physical) = event.physical_id
            {
                groups.insert(physical, Some(event.logical_id));
            }
        }
        for instance in self.store.live_instances()? {
            if instance.stack_id.as_deref() == Some(stack_id) {
                groups.entry(instance.group_name).or_insert(None);
            }
        }
        groups.retain(|group, _| self.group_runs(group).unwrap_or(true));
        Ok(groups)
    }

    /// Whether a group's controller runs here or any of its instances lives.
    pub(crate) fn group_runs(&self, group: &str) -> Result<bool, StoreError> {
        Ok(self.fleet.group_status(group).is_some()
            || !self.store.instances_of_group(group, false)?.is_empty())
    }

    /// Deletes a group of the stack that no row names; `Err` is why it
    /// could not be.
    async fn sweep_group(
        &self,
        stack: &StackRow,
        group: &str,
        logical_id: Option<&str>,
    ) -> Result<Result<(), String>, OperationError> {
        log::warn!(
            stack = stack.name.as_str(),
            group = group,
            logical_id = logical_id.unwrap_or("-");
            "deleting an Auto Scaling group of the stack that no resource names"
        );
        // Its own events, under the logical id that made it.
        let row = logical_id.map(|logical_id| StackResourceRow {
            stack_id: stack.stack_id.clone(),
            logical_id: logical_id.to_owned(),
            resource_type: GROUP_TYPE.to_owned(),
            physical_id: Some(group.to_owned()),
            status: ResourceStatus::DeleteInProgress,
            status_reason: None,
            properties: "{}".into(),
            attributes: "{}".into(),
            replaced: None,
            updated_at: clock::now(),
        });
        if let Some(row) = &row {
            let reason = "An Auto Scaling group of this stack that no resource names any more";
            self.event(stack, row, ResourceStatus::DeleteInProgress.as_str(), Some(reason))?;
        }
        // No record of its own: its targets drain for its target groups'
        // delays at most, and only while requests to them are in flight.
        let outcome = self.delete_resource(GROUP_TYPE, group, &Json::Null).await;
        if let Some(row) = &row {
            match &outcome {
                Ok(()) => self.event(stack, row, ResourceStatus::DeleteComplete.as_str(), None)?,
                Err(reason) => {
                    self.event(stack, row, ResourceStatus::DeleteFailed.as_str(), Some(reason))?
                }
            }
        }
        Ok(outcome)
    }

    /// Evaluates the outputs and moves on: a create completes; an update
    /// (or its rollback) goes to its cleanup.
    fn outputs_step(&self, loaded: &Loaded) -> Result<(), OperationError> {
        let stack = &loaded.row;
        let (done, failed) = match stack.status {
            StackStatus::UpdateInProgress => (
                StackStatus::UpdateCompleteCleanupInProgress,
                StackStatus::UpdateRollbackInProgress,
            ),
            StackStatus::UpdateRollbackInProgress => (
                StackStatus::UpdateRollbackCompleteCleanupInProgress,
                StackStatus::UpdateRollbackFailed,
            ),
            _ if stack.disable_rollback => (StackStatus::CreateComplete, StackStatus::CreateFailed),
            _ => (StackStatus::CreateComplete, StackStatus::RollbackInProgress),
        };
        match self.outputs(loaded) {
            Ok(outputs) => {
                let json = serde_json::to_string(&outputs).unwrap_or_else(|_| "[]".into());
                self.store.set_stack_outputs(
                    &stack.stack_id,
                    &json,
                    &stack.imports,
                    clock::now(),
                )?;
                self.transition(stack, done, None)
            }
            Err(reason) => self.transition(stack, failed, Some(&reason)),
        }
    }

    /// Moves the stack from the status this step read to `status`; a cancel
    /// that came in between wins. An update's end makes its template final
    /// (or, after a rollback, the previous one current again) first, so a
    /// crash in between resumes a cleanup whose work is already done.
    fn transition(
        &self,
        stack: &StackRow,
        status: StackStatus,
        reason: Option<&str>,
    ) -> Result<(), OperationError> {
        match status {
            StackStatus::UpdateComplete => {
                self.store.end_stack_update(&stack.stack_id, false, clock::now())?
            }
            StackStatus::UpdateRollbackComplete => {
                self.store.end_stack_update(&stack.stack_id, true, clock::now())?
            }
            _ => {}
        }
        let now = clock::now();
        if self.store.set_stack_status_from(&stack.stack_id, stack.status, status, reason, now)? {
            stack_event(&self.store, stack, status, reason, now)?;
        }
        Ok(())
    }

    /// How each resource of the target template differs from the store, in
    /// dependency order up to the first that does.
    fn changes(&self, loaded: &Loaded, resources: &[StackResourceRow]) -> BTreeMap<String, Change> {
        let mut changes = BTreeMap::new();
        for name in &loaded.order {
            let row = resources.iter().find(|row| &row.logical_id == name);
            let change = match (row, self.desired(loaded, name)) {
                (None, _) => Change::Create,
                (Some(_), Err(reason)) => Change::Unsupported(reason),
                (Some(row), Ok((properties, policy))) => {
                    let stored: Json = serde_json::from_str(&row.properties).unwrap_or_default();
                    classify(&Facts {
                        resource_type: &row.resource_type,
                        status: Some(row.status),
                        stored: &stored,
                        desired: &to_json(&properties),
                        held: held(row),
                        rolling_back: loaded.rolling_back,
                        policy,
                    })
                }
            };
            let stop = change != Change::None;
            changes.insert(name.clone(), change);
            if stop {
                break;
            }
        }
        changes
    }

    /// A resource's properties under the target template, and its group
    /// update policy.
    fn desired(&self, loaded: &Loaded, name: &str) -> Result<(Value, GroupPolicy), String> {
        let Some(resource) = loaded.resource(name) else {
            return Err(format!("resource {name} is not in the template"));
        };
        let at = |error| loaded.located(&error);
        let properties = match &resource.properties {
            Some(expr) => evaluate(expr, &loaded.context).map_err(at)?,
            None => Value::Map(BTreeMap::new()),
        };
        let mut policy = GroupPolicy::None;
        if let Some(update) = &resource.update_policy {
            let replacing = match &update.replacing_update {
                Some(replacing) => replacing.will_replace.resolve(&loaded.context).map_err(at)?,
                None => false,
            };
            policy = if replacing {
                GroupPolicy::Replacing
            } else if update.rolling_update.is_some() {
                GroupPolicy::Rolling
            } else {
                GroupPolicy::None
            };
        }
        Ok((properties, policy))
    }

    async fn create_step(
        &self,
        loaded: &Loaded,
        name: &str,
        existing: Option<StackResourceRow>,
    ) -> Result<(), OperationError> {
        let stack = &loaded.row;
        let Some(resource) = loaded.resource(name) else {
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
            // Tried again (a continued rollback): the same physical id, so
            // whatever the failed attempt made is finished, not left behind.
            Some(row)
                if row.status == ResourceStatus::CreateFailed && row.physical_id.is_some() =>
            {
                self.set_resource(stack, row, ResourceStatus::CreateInProgress, None, None)?
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
        let signals = creation_signals(resource, &loaded.context);
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
                    health_gate: false,
                    operation: stack.status,
                    in_progress: ResourceStatus::CreateInProgress,
                };
                let json = to_json(&properties).to_string();
                let with_properties = StackResourceRow { properties: json, ..row.clone() };
                self.store.put_stack_resource(&with_properties)?;
                self.create_resource(&request).await.map(|attributes| (attributes, with_properties))
            }
            (Err(error), _) | (_, Err(error)) => Err(loaded.located(&error)),
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
                // A rollback stops at its first failure (the update's own
                // failures start the rollback through the planner).
                if loaded.rolling_back {
                    let reason = format!("The following resource(s) failed to create: [{name}].");
                    self.transition(stack, StackStatus::UpdateRollbackFailed, Some(&reason))?;
                }
            }
        }
        Ok(())
    }

    /// Brings an existing resource to its target properties.
    async fn update_step(
        &self,
        loaded: &Loaded,
        name: &str,
        change: Change,
        row: StackResourceRow,
    ) -> Result<(), OperationError> {
        match change {
            Change::None | Change::Create => Ok(()),
            Change::Unsupported(reason) => self.fail_update(loaded, row, &reason),
            Change::Restore => self.restore_step(&loaded.row, row),
            Change::Replace => self.replace_step(loaded, name, row).await,
            Change::InPlace | Change::Rolling => {
                let (properties, _) = match self.desired(loaded, name) {
                    Ok(desired) => desired,
                    Err(reason) => return self.fail_update(loaded, row, &reason),
                };
                let row = if row.status == ResourceStatus::UpdateInProgress {
                    row
                } else {
                    self.set_resource(
                        &loaded.row,
                        row,
                        ResourceStatus::UpdateInProgress,
                        None,
                        None,
                    )?
                };
                let physical = row.physical_id.clone().unwrap_or_default();
                let request = Request {
                    stack_id: &loaded.row.stack_id,
                    stack_name: &loaded.row.name,
                    logical_id: name,
                    resource_type: &row.resource_type,
                    physical_id: &physical,
                    properties: &properties,
                    signals: None,
                    started_at: row.updated_at,
                    health_gate: false,
                    operation: loaded.row.status,
                    in_progress: ResourceStatus::UpdateInProgress,
                };
                let previous: Json = serde_json::from_str(&row.attributes).unwrap_or_default();
                let outcome = if change == Change::Rolling {
                    match self.rolling_policy(loaded, name) {
                        Ok(policy) => self.roll_group(&request, &previous, policy).await,
                        Err(reason) => Err(reason),
                    }
                } else {
                    let stored: Json = serde_json::from_str(&row.properties).unwrap_or_default();
                    self.update_resource(&request, &stored, &previous).await
                };
                let mut row = row;
                if outcome.is_ok() {
                    row.properties = to_json(&properties).to_string();
                }
                self.finish_update(loaded, row, outcome)
            }
        }
    }

    /// The resource's `AutoScalingRollingUpdate`, resolved (CloudFormation's
    /// defaults: batches of 1, none kept in service, 100% must succeed, no
    /// pause, or `PT5M` when waiting on signals). The health timeout is set
    /// by the group's handler.
    fn rolling_policy(&self, loaded: &Loaded, name: &str) -> Result<RollingPolicy, String> {
        let rolling = loaded
            .resource(name)
            .and_then(|resource| resource.update_policy.as_ref())
            .and_then(|policy| policy.rolling_update.as_ref())
            .ok_or_else(|| format!("resource {name} has no AutoScalingRollingUpdate policy"))?;
        let at = |error| loaded.located(&error);
        let context = &loaded.context;
        let wait_on_resource_signals =
            rolling.wait_on_resource_signals.resolve(context).map_err(at)?;
        let pause_time = match &rolling.pause_time {
            Some(setting) => Duration::from_secs(setting.resolve(context).map_err(at)?.seconds),
            None if wait_on_resource_signals => Duration::from_secs(300),
            None => Duration::ZERO,
        };
        Ok(RollingPolicy {
            max_batch_size: rolling.max_batch_size.resolve(context).map_err(at)?.max(1),
            min_instances_in_service: rolling
                .min_instances_in_service
                .resolve(context)
                .map_err(at)?,
            min_successful_instances_percent: rolling
                .min_successful_instances_percent
                .resolve(context)
                .map_err(at)?
                .min(100),
            pause_time,
            wait_on_resource_signals,
            health_timeout: Duration::ZERO,
        })
    }

    /// The end of a resource's update: UPDATE_COMPLETE with the attributes
    /// it has now, or the failure that starts the rollback.
    fn finish_update(
        &self,
        loaded: &Loaded,
        row: StackResourceRow,
        outcome: Result<Json, String>,
    ) -> Result<(), OperationError> {
        match outcome {
            Ok(attributes) => {
                self.set_resource(
                    &loaded.row,
                    row,
                    ResourceStatus::UpdateComplete,
                    None,
                    Some(attributes),
                )?;
                Ok(())
            }
            Err(reason) => self.fail_update(loaded, row, &reason),
        }
    }

    /// A resource could not be updated: `UPDATE_FAILED` (the planner then
    /// starts the rollback); during a rollback the rollback fails.
    fn fail_update(
        &self,
        loaded: &Loaded,
        row: StackResourceRow,
        reason: &str,
    ) -> Result<(), OperationError> {
        let name = row.logical_id.clone();
        self.set_resource(&loaded.row, row, ResourceStatus::UpdateFailed, Some(reason), None)?;
        if loaded.rolling_back {
            let reason = format!("The following resource(s) failed to update: [{name}].");
            self.transition(&loaded.row, StackStatus::UpdateRollbackFailed, Some(&reason))?;
        }
        Ok(())
    }

    /// Creates the new physical resource that replaces the current one,
    /// which keeps running (and serving) until the cleanup. A new Auto
    /// Scaling group must meet its `CreationPolicy` and pass its target
    /// groups' health checks first.
    async fn replace_step(
        &self,
        loaded: &Loaded,
        name: &str,
        row: StackResourceRow,
    ) -> Result<(), OperationError> {
        let stack = &loaded.row;
        let Some(resource) = loaded.resource(name) else {
            return Ok(());
        };
        let (properties, _) = match self.desired(loaded, name) {
            Ok(desired) => desired,
            Err(reason) => return self.fail_update(loaded, row, &reason),
        };
        // The new physical id is written, with what it replaces, before
        // anything is made: a crash leaves nothing unnamed.
        let row = if replaced_of(&row).is_some_and(|replaced| !replaced.restored)
            && row.status == ResourceStatus::UpdateInProgress
        {
            row
        } else {
            let old = Replaced::of(&row, false);
            // A new physical id, never the one it replaces (an EIP's
            // address is drawn from a small range).
            let physical = loop {
                let physical = physical_id(
                    &row.resource_type,
                    &stack.name,
                    name,
                    &self.config.region,
                    &self.config.account_id,
                );
                if row.physical_id.as_ref() != Some(&physical) {
                    break physical;
                }
            };
            let reason = "Requested update requires the creation of a new physical resource; hence creating one.";
            let row = StackResourceRow {
                physical_id: Some(physical),
                status: ResourceStatus::UpdateInProgress,
                status_reason: Some(reason.to_owned()),
                properties: to_json(&properties).to_string(),
                attributes: "{}".into(),
                replaced: Some(serde_json::to_string(&old).unwrap_or_default()),
                updated_at: clock::now(),
                ..row
            };
            self.store.put_stack_resource(&row)?;
            self.event(stack, &row, ResourceStatus::UpdateInProgress.as_str(), Some(reason))?;
            row
        };
        let physical = row.physical_id.clone().unwrap_or_default();
        let signals = match creation_signals(resource, &loaded.context) {
            Ok(signals) => signals,
            Err(error) => return self.fail_update(loaded, row, &loaded.located(&error)),
        };
        let request = Request {
            stack_id: &stack.stack_id,
            stack_name: &stack.name,
            logical_id: name,
            resource_type: &row.resource_type,
            physical_id: &physical,
            properties: &properties,
            signals,
            started_at: row.updated_at,
            health_gate: true,
            operation: stack.status,
            in_progress: ResourceStatus::UpdateInProgress,
        };
        let outcome = self.create_resource(&request).await;
        self.finish_update(loaded, row, outcome)
    }

    /// Rolling back a replacement: the replaced resource, still running,
    /// becomes current again; the replacement waits for the cleanup.
    fn restore_step(&self, stack: &StackRow, row: StackResourceRow) -> Result<(), OperationError> {
        let Some(old) = replaced_of(&row) else { return Ok(()) };
        let replacement = Replaced::of(&row, true);
        let row = StackResourceRow {
            physical_id: old.physical_id,
            properties: old.properties,
            attributes: old.attributes,
            replaced: Some(serde_json::to_string(&replacement).unwrap_or_default()),
            ..row
        };
        let row = self.set_resource(stack, row, ResourceStatus::UpdateInProgress, None, None)?;
        self.set_resource(stack, row, ResourceStatus::UpdateComplete, None, None)?;
        Ok(())
    }

    /// Deletes what a resource replaced (after an update: the old physical
    /// resource, unless `UpdateReplacePolicy: Retain` keeps it; after a
    /// rollback: the replacement), with its own events.
    async fn cleanup_step(
        &self,
        loaded: &Loaded,
        row: StackResourceRow,
    ) -> Result<(), OperationError> {
        let stack = &loaded.row;
        let Some(replaced) = replaced_of(&row) else {
            // Unreadable (edited by hand): nothing to delete by it, and the
            // cleanup must not come back to it.
            self.store.put_stack_resource(&StackResourceRow { replaced: None, ..row })?;
            return Ok(());
        };
        let gone = |row: &StackResourceRow| StackResourceRow {
            physical_id: replaced.physical_id.clone(),
            status_reason: None,
            ..row.clone()
        };
        // The old physical resource of an update, kept by its policy: let go
        // of (a group's instances run on, unmanaged), `DELETE_SKIPPED`.
        let retained = !loaded.rolling_back
            && !replaced.restored
            && loaded.replace_retain.contains(&row.logical_id);
        // Marked before anything goes: a daemon restarted from here on
        // neither re-adopts it nor relaunches its instances (and a resumed
        // cleanup does not announce the delete twice).
        let row = if replaced.deleting {
            row
        } else {
            let marked = Replaced { deleting: true, ..replaced.clone() };
            let row = StackResourceRow {
                replaced: Some(serde_json::to_string(&marked).unwrap_or_default()),
                ..row
            };
            self.store.put_stack_resource(&row)?;
            if !retained {
                self.event(stack, &gone(&row), ResourceStatus::DeleteInProgress.as_str(), None)?;
            }
            row
        };
        let gone = gone(&row);
        let attributes: Json = serde_json::from_str(&replaced.attributes).unwrap_or_default();
        if retained {
            let kept = match &replaced.physical_id {
                Some(physical) => {
                    let why = "UpdateReplacePolicy";
                    self.retain_resource(stack, &row.resource_type, physical, &attributes, why)
                        .await
                }
                None => Ok(None),
            };
            match &kept {
                Ok(note) => {
                    let status = ResourceStatus::DeleteSkipped.as_str();
                    self.event(stack, &gone, status, note.as_deref())?;
                }
                Err(reason) => {
                    self.event(stack, &gone, ResourceStatus::DeleteFailed.as_str(), Some(reason))?
                }
            }
            self.store.put_stack_resource(&StackResourceRow { replaced: None, ..row })?;
            return Ok(());
        }
        let outcome = match &replaced.physical_id {
            Some(physical) => self.delete_resource(&row.resource_type, physical, &attributes).await,
            None => Ok(()),
        };
        match &outcome {
            Ok(()) => self.event(stack, &gone, ResourceStatus::DeleteComplete.as_str(), None)?,
            // CloudFormation reports a failed cleanup and goes on; the
            // daemon's orphan sweep removes what is left of it.
            Err(reason) => {
                self.event(stack, &gone, ResourceStatus::DeleteFailed.as_str(), Some(reason))?
            }
        }
        self.store.put_stack_resource(&StackResourceRow { replaced: None, ..row })?;
        Ok(())
    }

    /// Keeps a resource its stack deletes or no longer names
    /// (`DeletionPolicy: Retain`, `RetainExceptOnCreate`): it is let go of
    /// as [`Runtime::retain_resource`] says, with what the row holds for a
    /// cleanup that never came, and recorded `DELETE_SKIPPED`. The row is
    /// `DELETE_IN_PROGRESS` (without an event) while that happens, so a
    /// restarted daemon neither brings it back to life nor sweeps it.
    async fn retain_step(
        &self,
        stack: &StackRow,
        row: StackResourceRow,
        why: &str,
    ) -> Result<(), OperationError> {
        let row = StackResourceRow { status: ResourceStatus::DeleteInProgress, ..row };
        self.store.put_stack_resource(&row)?;
        let mut kept = Ok(None);
        if let Some(held) = replaced_of(&row)
            && let Some(physical) = &held.physical_id
        {
            let attributes: Json = serde_json::from_str(&held.attributes).unwrap_or_default();
            kept =
                self.retain_resource(stack, &row.resource_type, physical, &attributes, why).await;
        }
        if let (Ok(_), Some(physical)) = (&kept, &row.physical_id) {
            let attributes: Json = serde_json::from_str(&row.attributes).unwrap_or_default();
            kept =
                self.retain_resource(stack, &row.resource_type, physical, &attributes, why).await;
        }
        match kept {
            Ok(note) => {
                let row = StackResourceRow { replaced: None, ..row };
                let status = ResourceStatus::DeleteSkipped;
                self.set_resource(stack, row, status, note.as_deref(), None)?
            }
            Err(reason) => {
                self.set_resource(stack, row, ResourceStatus::DeleteFailed, Some(&reason), None)?
            }
        };
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
        // What the row holds for a cleanup that never came (an update whose
        // rollback failed): deleted first, and forgotten only once gone.
        let row = match replaced_of(&row) {
            Some(held) => {
                if let Some(physical) = &held.physical_id {
                    let attributes: Json =
                        serde_json::from_str(&held.attributes).unwrap_or_default();
                    let deleted =
                        self.delete_resource(&row.resource_type, physical, &attributes).await;
                    if let Err(reason) = deleted {
                        let status = ResourceStatus::DeleteFailed;
                        self.set_resource(stack, row, status, Some(&reason), None)?;
                        return Ok(());
                    }
                }
                let row = StackResourceRow { replaced: None, ..row };
                self.store.put_stack_resource(&row)?;
                row
            }
            None => row,
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
        let taken = exports(&self.store, Some(&loaded.row.stack_id))
            .map_err(|error| autopatch_fleet::error_chain(&error))?;
        let mut outputs = Vec::new();
        let mut names = BTreeSet::new();
        for (key, output) in &loaded.template.outputs {
            if let Some(condition) = &output.condition
                && loaded.context.conditions.get(&condition.value) != Some(&true)
            {
                continue;
            }
            let at = |error: autopatch_documents::cloudformation::EvalError| {
                format!("{}:{}: output {key}: {}", loaded.source, error.span.start, error.kind)
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
        // An update may not change or remove an export another stack
        // imports. Validation refused what it could know (names and values
        // from parameters); values made from resources are known only now,
        // so the update fails here and rolls back.
        if loaded.row.status == StackStatus::UpdateInProgress {
            let in_use = exports_in_use(&self.store, &loaded.row)
                .map_err(|error| autopatch_fleet::error_chain(&error))?;
            for (name, used) in &in_use {
                let new = outputs
                    .iter()
                    .find(|output| output.export_name.as_deref() == Some(name))
                    .map(|output| output.output_value.as_str());
                if let Some(refused) = export_change_refused(name, used, new) {
                    return Err(refused);
                }
            }
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

    fn event(
        &self,
        stack: &StackRow,
        row: &StackResourceRow,
        status: &str,
        reason: Option<&str>,
    ) -> Result<(), OperationError> {
        resource_event(&self.store, stack, row, status, reason, clock::now())?;
        Ok(())
    }
}

impl<E: Engine + 'static> Runtime<E> {
    /// Records a progress event of the resource `request` makes or changes
    /// (a signal received, a rolling update's batch), with its in-progress
    /// status and CloudFormation's wording in `reason`.
    pub(crate) fn progress(&self, request: &Request<'_>, reason: &str) -> Result<(), String> {
        self.store
            .append_stack_event(&StackEventRow {
                seq: 0,
                event_id: uuid(),
                stack_id: request.stack_id.to_owned(),
                stack_name: request.stack_name.to_owned(),
                logical_id: request.logical_id.to_owned(),
                physical_id: Some(request.physical_id.to_owned()),
                resource_type: request.resource_type.to_owned(),
                status: request.in_progress.as_str().to_owned(),
                reason: Some(reason.to_owned()),
                at: clock::now(),
            })
            .map(drop)
            .map_err(|error| format!("record an event: {}", autopatch_fleet::error_chain(&error)))
    }

    /// The reasons the events of `request`'s resource already give (so a
    /// resumed wait does not report a signal twice).
    pub(crate) fn announced(&self, request: &Request<'_>) -> Result<BTreeSet<String>, String> {
        let events = self.store.stack_events(request.stack_id).map_err(|error| {
            format!("read the events: {}", autopatch_fleet::error_chain(&error))
        })?;
        Ok(events
            .into_iter()
            .filter(|event| event.logical_id == request.logical_id)
            .filter_map(|event| event.reason)
            .collect())
    }
}

/// Appends an event about one of the stack's resources.
fn resource_event(
    store: &Store,
    stack: &StackRow,
    row: &StackResourceRow,
    status: &str,
    reason: Option<&str>,
    at: Timestamp,
) -> Result<(), StoreError> {
    if status.ends_with("_FAILED") {
        log::warn!(
            stack = stack.name.as_str(),
            logical_id = row.logical_id.as_str(),
            resource_type = row.resource_type.as_str(),
            physical_id = row.physical_id.as_deref().unwrap_or("-"),
            status,
            reason = reason.unwrap_or("-");
            "resource failed"
        );
    }
    store.append_stack_event(&StackEventRow {
        seq: 0,
        event_id: uuid(),
        stack_id: stack.stack_id.clone(),
        stack_name: stack.name.clone(),
        logical_id: row.logical_id.clone(),
        physical_id: row.physical_id.clone(),
        resource_type: row.resource_type.clone(),
        status: status.to_owned(),
        reason: reason.map(str::to_owned),
        at,
    })?;
    Ok(())
}

/// Appends an event about the stack itself.
pub(crate) fn stack_event(
    store: &Store,
    stack: &StackRow,
    status: StackStatus,
    reason: Option<&str>,
    at: Timestamp,
) -> Result<(), StoreError> {
    // A stack that failed or rolls back is a warning; the reason names why.
    let name = status.as_str();
    let failing = name.contains("FAILED") || name.contains("ROLLBACK");
    let level = if failing { log::Level::Warn } else { log::Level::Info };
    log::log!(
        level,
        stack = stack.name.as_str(),
        status = name,
        reason = reason.unwrap_or("-");
        "stack status"
    );
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

/// A new DeleteStack tries again what an earlier operation failed to
/// delete: each `DELETE_FAILED` resource goes back to `DELETE_IN_PROGRESS`
/// (the executor then deletes it; a failure in this operation ends it
/// `DELETE_FAILED` again), and each of `retain` is kept (`DELETE_SKIPPED`).
/// Called once per DeleteStack request, after the stack became
/// `DELETE_IN_PROGRESS`.
pub(crate) fn retry_failed_deletes(
    store: &Store,
    stack: &StackRow,
    retain: &BTreeSet<String>,
) -> Result<(), StoreError> {
    for row in store.stack_resources(&stack.stack_id)? {
        let status = if retain.contains(&row.logical_id) && row.status.may_exist() {
            ResourceStatus::DeleteSkipped
        } else if row.status == ResourceStatus::DeleteFailed {
            ResourceStatus::DeleteInProgress
        } else {
            continue;
        };
        let now = clock::now();
        let row = StackResourceRow { status, status_reason: None, updated_at: now, ..row };
        store.put_stack_resource(&row)?;
        resource_event(store, stack, &row, status.as_str(), None, now)?;
    }
    Ok(())
}

/// The resource whose failure ended the stack's last update rollback, if
/// it is still `UPDATE_FAILED`: the rollback stops at its first failure and
/// records the resource's `UPDATE_FAILED` and the stack's
/// `UPDATE_ROLLBACK_FAILED` one right after the other. A resource the update
/// failed (or a cancel interrupted) and the rollback never reached is
/// `UPDATE_FAILED` too, but not because the rollback failed.
pub(crate) fn failed_by_rollback(
    store: &Store,
    stack: &StackRow,
) -> Result<Option<String>, StoreError> {
    let events = store.stack_events(&stack.stack_id)?;
    let ended = events.iter().rposition(|event| {
        event.resource_type == STACK_TYPE
            && event.status == StackStatus::UpdateRollbackFailed.as_str()
    });
    let Some(failed) =
        ended.and_then(|at| at.checked_sub(1)).map(|at| &events[at]).filter(|event| {
            event.resource_type != STACK_TYPE
                && event.status == ResourceStatus::UpdateFailed.as_str()
        })
    else {
        return Ok(None);
    };
    let still_failed = store.stack_resources(&stack.stack_id)?.into_iter().any(|row| {
        row.logical_id == failed.logical_id && row.status == ResourceStatus::UpdateFailed
    });
    Ok(still_failed.then(|| failed.logical_id.clone()))
}

/// The physical ids the rows name: current ones, and those held for a
/// cleanup.
fn named_groups(resources: &[StackResourceRow]) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for row in resources.iter().filter(|row| row.resource_type == GROUP_TYPE) {
        named.extend(row.physical_id.clone());
        named.extend(replaced_of(row).and_then(|replaced| replaced.physical_id));
    }
    named
}

/// What a row holds for the cleanup, as [`classify`] sees it.
pub(crate) fn held(row: &StackResourceRow) -> Held {
    match replaced_of(row) {
        None => Held::Nothing,
        Some(replaced) if replaced.restored => Held::Restored,
        Some(_) => Held::Replaced,
    }
}

/// What a resource's row keeps of the physical resource it replaced (or,
/// after a rollback restored that one, of the replacement) until cleanup.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Replaced {
    pub(crate) physical_id: Option<String>,
    pub(crate) properties: String,
    pub(crate) attributes: String,
    /// A rollback swapped it back: this is the replacement, to delete.
    pub(crate) restored: bool,
    /// The cleanup is deleting it: a restarted daemon must not bring it
    /// back to life (its containers are orphans to sweep).
    #[serde(default)]
    pub(crate) deleting: bool,
}

impl Replaced {
    /// What `row` names now, kept as replaced (`restored`: by a rollback).
    fn of(row: &StackResourceRow, restored: bool) -> Replaced {
        Replaced {
            physical_id: row.physical_id.clone(),
            properties: row.properties.clone(),
            attributes: row.attributes.clone(),
            restored,
            deleting: false,
        }
    }
}

pub(crate) fn replaced_of(row: &StackResourceRow) -> Option<Replaced> {
    row.replaced.as_deref().and_then(|text| serde_json::from_str(text).ok())
}

/// Whether the row's physical id names a resource that exists and serves:
/// a created or updated one, one being changed in place, or one a rollback
/// has made current again — not a replacement still being made.
pub(crate) fn current_exists(row: &StackResourceRow) -> bool {
    match row.status {
        ResourceStatus::CreateComplete | ResourceStatus::UpdateComplete => true,
        ResourceStatus::UpdateInProgress | ResourceStatus::UpdateFailed => {
            replaced_of(row).is_none_or(|replaced| replaced.restored)
        }
        _ => false,
    }
}

/// `CreationPolicy.ResourceSignal`: count and timeout.
fn creation_signals(
    resource: &autopatch_documents::cloudformation::Resource,
    context: &StaticContext,
) -> Result<Option<(u32, Duration)>, autopatch_documents::cloudformation::EvalError> {
    resource
        .creation_policy
        .as_ref()
        .and_then(|policy| policy.resource_signal.as_ref())
        .map(|signal| {
            let count = signal.count.resolve(context)?;
            let timeout = signal.timeout.resolve(context)?;
            Ok((count, Duration::from_secs(timeout.seconds)))
        })
        .transpose()
}

/// An output's value as DescribeStacks shows it: lists joined by commas.
pub(crate) fn output_text(value: &Value) -> String {
    match value {
        Value::List(items) => items.iter().map(output_text).collect::<Vec<_>>().join(","),
        other => other.as_scalar_text().unwrap_or_else(|| other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_failure_that_ended_the_rollback_was_failed_by_it() {
        let store = Store::open_in_memory().unwrap();
        let at = Timestamp::from_millis(1_795_524_896_789);
        let stack = StackRow {
            stack_id: "arn:aws:cloudformation:local:000000000000:stack/app/1".into(),
            name: "app".into(),
            status: StackStatus::UpdateRollbackFailed,
            status_reason: None,
            template_body: String::new(),
            template_source: "app.yml".into(),
            parameters: "{}".into(),
            outputs: "[]".into(),
            imports: "[]".into(),
            disable_rollback: false,
            client_token: None,
            previous_template_body: None,
            previous_template_source: None,
            previous_parameters: None,
            created_at: at,
            updated_at: at,
            deleted_at: None,
        };
        store.insert_stack(&stack).unwrap();
        let row = |name: &str| StackResourceRow {
            stack_id: stack.stack_id.clone(),
            logical_id: name.into(),
            resource_type: "AWS::EC2::LaunchTemplate".into(),
            physical_id: Some(format!("lt-{name}")),
            status: ResourceStatus::UpdateFailed,
            status_reason: None,
            properties: "{}".into(),
            attributes: "{}".into(),
            replaced: None,
            updated_at: at,
        };
        let resource = |name: &str, status: ResourceStatus| {
            let row = row(name);
            store.put_stack_resource(&row).unwrap();
            resource_event(&store, &stack, &row, status.as_str(), None, at).unwrap();
        };
        let stack_status =
            |status: StackStatus| stack_event(&store, &stack, status, None, at).unwrap();
        // A cancel: B, being updated, fails after the rollback started;
        // the rollback then fails on A, before it reaches B.
        stack_status(StackStatus::UpdateInProgress);
        resource("B", ResourceStatus::UpdateInProgress);
        stack_status(StackStatus::UpdateRollbackInProgress);
        resource("B", ResourceStatus::UpdateFailed);
        resource("A", ResourceStatus::UpdateInProgress);
        assert_eq!(failed_by_rollback(&store, &stack).unwrap(), None, "not ended yet");
        resource("A", ResourceStatus::UpdateFailed);
        stack_status(StackStatus::UpdateRollbackFailed);
        assert_eq!(failed_by_rollback(&store, &stack).unwrap().as_deref(), Some("A"));
        // A rollback that failed computing the outputs failed no resource.
        stack_status(StackStatus::UpdateRollbackInProgress);
        resource("A", ResourceStatus::UpdateComplete);
        resource("B", ResourceStatus::UpdateComplete);
        stack_status(StackStatus::UpdateRollbackFailed);
        assert_eq!(failed_by_rollback(&store, &stack).unwrap(), None);
    }
}
