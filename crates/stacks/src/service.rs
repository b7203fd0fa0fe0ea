//! [`StackService`]: the operations, one method each.
//!
//! Mutating operations validate the whole request first (template,
//! parameters, imports, resource types, the property values known before
//! anything is made) and change nothing when it is wrong; then they write
//! the stack's new status and run the operation in the background. Reads
//! answer from the store.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autopatch_documents::cloudformation::{
    Expr, ExprKind, Runner, StaticContext, Template, check_values, dependency_order, evaluate,
    evaluate_conditions, parse_template, parse_template_lenient_for, resolve_parameters,
};
use autopatch_documents::{Diagnostic, Position, SourceFile};
use autopatch_engine::Engine;
use autopatch_fleet::{Fleet, HealthCheckType};
use autopatch_model::{ResourceStatus, StackStatus, Timestamp};
use autopatch_store::{InsertStack, StackRow, Store, StoreError};

use crate::api::*;
use crate::clock;
use crate::context::{StackIdentity, stack_context};
use crate::operation::{self, stack_event};
use crate::props;
use crate::reserve::ReservedListeners;
use crate::resources::{self, uuid};
use crate::runtime::{Runtime, lock};

/// Which local port a listener gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListenerPorts {
    /// A free port on 127.0.0.1, kept for the stack's life (the default:
    /// templates say port 80, which needs privileges and may be taken).
    #[default]
    Free,
    /// The template's own port on 127.0.0.1.
    Template,
}

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where instance folders (metadata, signals, logs) live.
    pub state_dir: PathBuf,
    /// What `AWS::Region` gives.
    pub region: String,
    /// What `AWS::AccountId` gives.
    pub account_id: String,
    pub listener_ports: ListenerPorts,
    /// Data-plane threads per load balancer (0: the caller's runtime).
    pub load_balancer_threads: usize,
    /// How often fleet controllers look at their instances.
    pub fleet_interval: Duration,
}

/// The stack operations over one engine and one store.
pub struct StackService<E: Engine> {
    runtime: Arc<Runtime<E>>,
    /// Stacks whose operation runs in this process.
    running: Arc<Mutex<BTreeSet<String>>>,
    /// Stacks whose template recovery could not load (their resources are
    /// recovered all the same), for `Ping`.
    recovery_notes: Vec<String>,
    /// Resources whose re-adoption failed (a listener's port taken by
    /// another process, say), by "stack S resource R (type)", with the last
    /// reason; each is tried again until it works.
    readoptions: Arc<Mutex<BTreeMap<String, String>>>,
    /// The tasks trying them again, ended by [`StackService::shutdown`].
    readopting: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The longest wait between attempts to re-adopt a resource.
const MAX_READOPT_WAIT: Duration = Duration::from_secs(10);

impl<E: Engine> std::fmt::Debug for StackService<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackService").finish_non_exhaustive()
    }
}

/// The operation a stack in progress is in, for the log: `create` (its
/// rollback too), `update` (its cleanup and rollback too) or `delete`.
fn operation_of(status: StackStatus) -> &'static str {
    match status {
        StackStatus::DeleteInProgress => "delete",
        StackStatus::CreateInProgress | StackStatus::RollbackInProgress => "create",
        _ => "update",
    }
}

fn store_error(error: StoreError) -> ApiError {
    ApiError::internal(autopatch_fleet::error_chain(&error))
}

impl<E: Engine + 'static> StackService<E> {
    /// Opens the service and recovers: re-adopts running instances, reopens
    /// listeners, removes orphaned instance containers, and resumes the
    /// operations left in progress.
    pub async fn open(
        config: ServiceConfig,
        engine: Arc<E>,
        store: Arc<Store>,
    ) -> Result<Arc<Self>, ApiError> {
        Self::open_with_listeners(config, engine, store, ReservedListeners::default()).await
    }

    /// [`StackService::open`], with sockets bound earlier by
    /// [`crate::reserve_listeners`] on the same store: recovery reopens each
    /// load balancer and listener on its socket, so connections waiting in
    /// it are served (by the adopted targets) rather than refused. Sockets
    /// recovery does not take are closed once it ends.
    pub async fn open_with_listeners(
        config: ServiceConfig,
        engine: Arc<E>,
        store: Arc<Store>,
        reserved: ReservedListeners,
    ) -> Result<Arc<Self>, ApiError> {
        let fleet = Fleet::new(
            engine.clone(),
            store.clone(),
            config.state_dir.join("instances"),
            config.fleet_interval,
        );
        let runtime = Arc::new(Runtime {
            engine,
            store,
            fleet,
            config,
            target_groups: Mutex::new(BTreeMap::new()),
            reserved_ports: Mutex::new(BTreeMap::new()),
            early_sockets: Mutex::new(reserved.sockets),
        });
        let mut service = StackService {
            runtime,
            running: Arc::new(Mutex::new(BTreeSet::new())),
            recovery_notes: Vec::new(),
            readoptions: Arc::new(Mutex::new(BTreeMap::new())),
            readopting: Mutex::new(Vec::new()),
        };
        let recovered = service.recover().await;
        lock(&service.runtime.early_sockets).clear();
        recovered?;
        let service = Arc::new(service);
        for stack in service.runtime.store.stacks(false).map_err(store_error)? {
            if stack.status.in_progress() {
                log::info!(
                    stack = stack.name.as_str(),
                    operation = operation_of(stack.status),
                    status = stack.status.as_str();
                    "resuming the operation the previous daemon left in progress"
                );
                service.spawn_operation(&stack.stack_id);
            }
        }
        Ok(service)
    }

    /// What recovery could not bring back, as it stands now: stacks whose
    /// template it could not load, and resources whose re-adoption is still
    /// being tried again (each line names the stack and resource, and why).
    pub fn recovery_notes(&self) -> Vec<String> {
        let pending = lock(&self.readoptions);
        self.recovery_notes.iter().chain(pending.values()).cloned().collect()
    }

    /// The resources whose re-adoption is still being tried again (the part
    /// of [`StackService::recovery_notes`] that may still come back by
    /// itself).
    pub fn pending_readoptions(&self) -> Vec<String> {
        lock(&self.readoptions).values().cloned().collect()
    }

    /// Which local port each load balancer listener gets.
    pub fn listener_ports(&self) -> ListenerPorts {
        self.runtime.config.listener_ports
    }

    async fn recover(&mut self) -> Result<(), ApiError> {
        let runtime = self.runtime.clone();
        let mut groups = Vec::new();
        // Listeners start last, once the groups have registered their running
        // instances: a listener that accepted before would answer 503 while
        // targets the previous daemon saw healthy are on their way.
        let mut listeners = Vec::new();
        for stack in runtime.store.stacks(false).map_err(store_error)? {
            // The template gives the dependency order. A stack whose stored
            // template cannot be loaded (no operation can run on it) still
            // has its resources recovered from their rows, which hold all
            // they need: its instances keep running and its load balancers
            // keep serving, instead of being removed as orphans.
            let order = match operation::load(
                &runtime.store,
                &stack.stack_id,
                &runtime.config.region,
                &runtime.config.account_id,
            ) {
                Ok(loaded) => Some(loaded.order),
                Err(error) => {
                    let reason = autopatch_fleet::error_chain(&error);
                    log::warn!(
                        stack = stack.name.as_str(),
                        reason = reason.as_str();
                        "stack template cannot be loaded: its resources are recovered as recorded and keep running, but no operation can run on it"
                    );
                    self.recovery_notes.push(format!(
                        "stack {}: its stored template cannot be loaded ({reason}): its resources run as recorded, but it cannot be updated or deleted until it loads",
                        stack.name
                    ));
                    None
                }
            };
            let rows = runtime.store.stack_resources(&stack.stack_id).map_err(store_error)?;
            let is_group = |row: &autopatch_store::StackResourceRow| {
                row.resource_type == "AWS::AutoScaling::AutoScalingGroup"
            };
            // Dependency order first, then anything else the store holds.
            let known = order.as_deref().unwrap_or_default();
            let mut ordered: Vec<_> = known
                .iter()
                .filter_map(|name| rows.iter().find(|row| &row.logical_id == name))
                .collect();
            ordered.extend(rows.iter().filter(|row| !known.contains(&row.logical_id)));
            if order.is_none() {
                // Without the template: groups after the target groups they
                // register their instances with (listeners come last anyway).
                ordered.sort_by_key(|row| is_group(row));
            }
            for row in ordered {
                // What an update replaced runs until the cleanup: adopt it
                // (first: it is the one that was serving).
                // (The cleanup is deleting it: its instances are orphans.)
                if let Some(replaced) = operation::replaced_of(row)
                    && !replaced.deleting
                    && let Some(physical) = &replaced.physical_id
                {
                    if is_group(row) {
                        groups.push(physical.clone());
                    }
                    self.adopt(row, physical, &replaced.properties, &replaced.attributes).await;
                }
                let Some(physical) = &row.physical_id else { continue };
                if is_group(row) && row.status.may_exist() {
                    groups.push(physical.clone());
                }
                // Created, being changed in place (same physical id), or made
                // current again by a rollback. A replacement still being
                // created is finished by the resumed operation.
                if operation::current_exists(row) {
                    if row.resource_type == "AWS::ElasticLoadBalancingV2::Listener" {
                        listeners.push((row.clone(), physical.clone()));
                        continue;
                    }
                    self.adopt(row, physical, &row.properties, &row.attributes).await;
                }
            }
        }
        for (row, physical) in &listeners {
            self.adopt(row, physical, &row.properties, &row.attributes).await;
        }
        runtime.fleet.remove_orphans(&groups).await.map_err(|error| {
            ApiError::internal(format!(
                "remove orphaned instances: {}",
                autopatch_fleet::error_chain(&error)
            ))
        })?;
        Ok(())
    }

    /// Re-adopts one physical resource. A failure becomes a recovery note,
    /// and a task tries again (1 s, doubling up to 10 s) until it works.
    async fn adopt(
        &mut self,
        row: &autopatch_store::StackResourceRow,
        physical: &str,
        properties: &str,
        attributes: &str,
    ) {
        let properties: serde_json::Value = serde_json::from_str(properties).unwrap_or_default();
        let attributes: serde_json::Value = serde_json::from_str(attributes).unwrap_or_default();
        let properties = crate::context::from_json(&properties);
        if let Err(reason) = self
            .runtime
            .adopt_resource(&row.stack_id, &row.resource_type, physical, &properties, &attributes)
            .await
        {
            let stack = row.stack_id.rsplit('/').nth(1).unwrap_or(&row.stack_id);
            let what = format!("stack {stack} resource {} ({})", row.logical_id, row.resource_type);
            // Keyed by the physical id too: an update's replaced resource and
            // its replacement share the logical id.
            let key = format!("{what} {physical}");
            lock(&self.readoptions).insert(key.clone(), format!("{what}: {reason}"));
            let runtime = self.runtime.clone();
            let pending = self.readoptions.clone();
            let stack_id = row.stack_id.clone();
            let (stack_name, logical_id) = (stack.to_owned(), row.logical_id.clone());
            let resource_type = row.resource_type.clone();
            let physical = physical.to_owned();
            let retry = tokio::spawn(async move {
                let mut wait = Duration::from_secs(1);
                loop {
                    tokio::time::sleep(wait).await;
                    match runtime
                        .adopt_resource(
                            &stack_id,
                            &resource_type,
                            &physical,
                            &properties,
                            &attributes,
                        )
                        .await
                    {
                        Ok(()) => {
                            lock(&pending).remove(&key);
                            log::info!(
                                stack = stack_name.as_str(),
                                logical_id = logical_id.as_str(),
                                resource_type = resource_type.as_str(),
                                physical_id = physical.as_str();
                                "resource recovered"
                            );
                            return;
                        }
                        Err(reason) => {
                            lock(&pending).insert(key.clone(), format!("{what}: {reason}"));
                        }
                    }
                    wait = (wait * 2).min(MAX_READOPT_WAIT);
                }
            });
            lock(&self.readopting).push(retry);
        }
    }

    fn spawn_operation(&self, stack_id: &str) {
        if !lock(&self.running).insert(stack_id.to_owned()) {
            return;
        }
        let runtime = self.runtime.clone();
        let running = self.running.clone();
        let stack_id = stack_id.to_owned();
        tokio::spawn(async move {
            // A store failure leaves the operation in progress; the next
            // daemon start resumes it.
            while runtime.run_operation(&stack_id).await.is_ok() {
                // A request that started a new operation (a ContinueUpdateRollback
                // or a DeleteStack right after this one failed) while this
                // task was ending found it still running: run that one too.
                let mut running = lock(&running);
                let restarted = runtime
                    .store
                    .stack(&stack_id)
                    .is_ok_and(|stack| stack.is_some_and(|stack| stack.status.in_progress()));
                if !restarted {
                    running.remove(&stack_id);
                    return;
                }
            }
            lock(&running).remove(&stack_id);
        });
    }

    /// Waits until the stack's operation (if any) ends in this process.
    pub async fn wait_idle(&self, stack_id: &str) {
        while lock(&self.running).contains(stack_id) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `CreateStack`: validates everything first, then creates in the background.
    pub async fn create_stack(
        &self,
        input: CreateStackInput,
    ) -> Result<CreateStackOutput, ApiError> {
        let store = &self.runtime.store;
        check_stack_name(&input.stack_name)?;
        if let Some(existing) = store.stack(&input.stack_name).map_err(store_error)? {
            if input.client_request_token.is_some()
                && existing.client_token == input.client_request_token
            {
                return Ok(CreateStackOutput { stack_id: existing.stack_id });
            }
            return Err(ApiError::already_exists(format!(
                "Stack [{}] already exists",
                input.stack_name
            )));
        }
        let (source, body) = template_text(input.template_body, input.template_url)?;
        let stack_id = format!(
            "arn:aws:cloudformation:{}:{}:stack/{}/{}",
            self.runtime.config.region,
            self.runtime.config.account_id,
            input.stack_name,
            uuid()
        );
        let mut problems = Problems::default();
        let checked = self.check_request(
            Request { source: &source, body: &body, parameters: &input.parameters },
            &input.stack_name,
            &stack_id,
            None,
            &mut problems,
        )?;
        if let Some(checked) = &checked {
            self.check_images(&checked.template, &source, &checked.context, &mut problems).await?;
        }
        let Some(Checked { parameters, imports, .. }) = checked.filter(|_| problems.is_empty())
        else {
            return Err(problems.into_error());
        };
        let disable_rollback = input.disable_rollback.unwrap_or(false)
            || input.on_failure.as_deref() == Some("DO_NOTHING");
        let now = clock::now();
        let row = StackRow {
            stack_id: stack_id.clone(),
            name: input.stack_name.clone(),
            status: StackStatus::CreateInProgress,
            status_reason: Some("User Initiated".into()),
            template_body: body,
            template_source: source,
            parameters: serde_json::to_string(&parameters).unwrap_or_else(|_| "{}".into()),
            outputs: "[]".into(),
            imports: serde_json::to_string(&imports).unwrap_or_else(|_| "[]".into()),
            disable_rollback,
            client_token: input.client_request_token.clone(),
            previous_template_body: None,
            previous_template_source: None,
            previous_parameters: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        match store.insert_stack(&row).map_err(store_error)? {
            InsertStack::Inserted => {}
            InsertStack::NameTaken(existing) => {
                return Err(ApiError::already_exists(format!(
                    "Stack [{}] already exists",
                    existing.name
                )));
            }
        }
        stack_event(store, &row, StackStatus::CreateInProgress, Some("User Initiated"), now)
            .map_err(store_error)?;
        self.spawn_operation(&stack_id);
        Ok(CreateStackOutput { stack_id })
    }

    /// Every check of a request that can run on what is known, each
    /// adding to `problems`: the template (as far as it parses), the
    /// resource types, the parameters, the conditions, the imports, the
    /// property values already known that a resource would refuse
    /// ([`props::check_known_values`]) and, for an update (`previous`: the
    /// stack and its parameter values), the exports other stacks import.
    /// `None` when no template could be read at all (then only the parse
    /// diagnostics and the request's own problems are known).
    fn check_request(
        &self,
        request: Request<'_>,
        stack_name: &str,
        stack_id: &str,
        previous: Option<(&StackRow, &BTreeMap<String, String>)>,
        problems: &mut Problems,
    ) -> Result<Option<Checked>, ApiError> {
        let Request { source, body, parameters: requested } = request;
        let types = resources::supported_types();
        let runner = Runner { name: "local stacks", types: &types };
        let (template, diagnostics) = parse_template_lenient_for(
            &SourceFile::new(source.to_owned(), body.to_owned()),
            &runner,
        );
        let parsed = diagnostics.is_empty();
        problems.diagnostics(diagnostics);
        let given = given_parameters(requested, previous.map(|(_, values)| values), problems);
        let Some(template) = template else { return Ok(None) };
        let given = match previous {
            Some((_, values)) => with_previous_values(given, &template, values),
            None => given,
        };
        let parameters = match resolve_parameters(&template, &given, None, &BTreeSet::new()) {
            Ok(values) => values,
            Err(errors) => {
                let failed: BTreeSet<&str> =
                    errors.iter().map(|error| error.parameter.as_str()).collect();
                for error in &errors {
                    match template.parameters.get(&error.parameter) {
                        Some(declared) => problems.at(source, declared.span.start, error),
                        None => problems.request(error.to_string()),
                    }
                }
                // The values that are fine, for the checks below.
                template
                    .parameters
                    .iter()
                    .filter(|(name, _)| !failed.contains(name.as_str()))
                    .filter_map(|(name, declared)| {
                        let value = given.get(name).or(declared.default.as_ref())?;
                        Some((name.clone(), value.clone()))
                    })
                    .collect()
            }
        };
        // Conditions that do not evaluate because of a problem reported
        // above would only repeat it.
        let report = parsed && problems.is_empty();
        let context = self.request_context(
            &template,
            source,
            &parameters,
            (stack_name, stack_id),
            report.then_some(&mut *problems),
        );
        // Policies written with Fn::If as the conditions choose them, then
        // what the values known now make of the template (documents'
        // check_values: intrinsic functions, resources not created, outputs,
        // rules).
        let mut template = template;
        template.choose_policies(&context.conditions);
        problems.diagnostics(check_values(source, &template, &context));
        let imports = self.check_imports(&template, source, &context, problems)?;
        for (at, message) in props::check_known_values(&template, &context) {
            problems.at(source, at, message);
        }
        if let Some((stack, _)) = previous {
            self.check_exports_in_use(stack, &template, source, &context, problems)?;
            let rows = self.runtime.store.stack_resources(&stack.stack_id).map_err(store_error)?;
            let existing = rows
                .iter()
                .filter(|row| row.status.may_exist())
                .map(|row| (row.logical_id.as_str(), row.resource_type.as_str()));
            for (at, message) in props::check_update(&template, &context, existing) {
                problems.at(source, at, message);
            }
        }
        Ok(Some(Checked { template, parameters, context, imports }))
    }

    /// What the template's intrinsics can see before anything exists
    /// (parameters, pseudo parameters, conditions). Conditions that do not
    /// evaluate, and a dependency cycle, go to `problems` when given.
    fn request_context(
        &self,
        template: &Template,
        source: &str,
        parameters: &BTreeMap<String, String>,
        (stack_name, stack_id): (&str, &str),
        problems: Option<&mut Problems>,
    ) -> StaticContext {
        let identity = StackIdentity {
            stack_name,
            stack_id,
            region: &self.runtime.config.region,
            account_id: &self.runtime.config.account_id,
        };
        let mut context = stack_context(template, parameters, &identity, BTreeMap::new());
        match (evaluate_conditions(template, &context), problems) {
            (Ok(conditions), problems) => {
                if let (Err(cycle), Some(problems)) =
                    (dependency_order(template, &conditions), problems)
                {
                    match cycle.cycle.first().and_then(|first| template.resources.get(first)) {
                        Some(first) => problems.at(source, first.span.start, &cycle),
                        None => problems.request(cycle.to_string()),
                    }
                }
                context.conditions = conditions;
            }
            (Err(error), Some(problems)) => problems.at(source, error.span.start, &error.kind),
            (Err(_), None) => {}
        }
        context
    }

    /// Every `Fn::ImportValue` whose name can be known before anything is
    /// created must name an existing export.
    fn check_imports(
        &self,
        template: &Template,
        source: &str,
        context: &StaticContext,
        problems: &mut Problems,
    ) -> Result<Vec<String>, ApiError> {
        let exports = operation::exports(&self.runtime.store, None).map_err(store_error)?;
        let mut imports = BTreeSet::new();
        let mut visit = |expr: &Expr| {
            if let ExprKind::ImportValue(name) = &expr.kind
                && let Ok(name) = evaluate(name, context)
            {
                {
                    let name = name.as_scalar_text().unwrap_or_default();
                    if !exports.contains_key(&name) {
                        problems.at(
                            source,
                            expr.span.start,
                            format_args!(
                                "No export named {name} found (create the stack that exports it first)"
                            ),
                        );
                    }
                    imports.insert(name);
                }
            }
        };
        for resource in template.resources.values() {
            if let Some(properties) = &resource.properties {
                properties.walk(&mut visit);
            }
        }
        for output in template.outputs.values() {
            output.value.walk(&mut visit);
        }
        Ok(imports.into_iter().collect())
    }

    /// An update may not remove or change an export another stack imports
    /// (CloudFormation: "Export X cannot be updated as it is in use by Y").
    /// Refused here where the new template's export names and values are
    /// known before anything changes (parameters, pseudo parameters,
    /// conditions); a value made from resources is checked when the update
    /// computes its outputs, which then fails and rolls back.
    fn check_exports_in_use(
        &self,
        stack: &StackRow,
        template: &Template,
        source: &str,
        context: &StaticContext,
        problems: &mut Problems,
    ) -> Result<(), ApiError> {
        let in_use = operation::exports_in_use(&self.runtime.store, stack).map_err(store_error)?;
        if in_use.is_empty() {
            return Ok(());
        }
        // Export name → its value and where it is, when known now.
        let mut exported = BTreeMap::new();
        let mut all_names_known = true;
        for output in template.outputs.values() {
            if let Some(condition) = &output.condition
                && context.conditions.get(&condition.value) != Some(&true)
            {
                continue;
            }
            let Some(name) = &output.export_name else { continue };
            match evaluate(name, context).ok().and_then(|name| name.as_scalar_text()) {
                Some(name) => {
                    let value = evaluate(&output.value, context)
                        .ok()
                        .map(|value| operation::output_text(&value));
                    exported.insert(name, (value, output.value.span.start));
                }
                None => all_names_known = false,
            }
        }
        for (name, used) in &in_use {
            match exported.get(name) {
                // Removed (unless an export name not known yet may be it).
                None if all_names_known => {
                    if let Some(message) = operation::export_change_refused(name, used, None) {
                        problems.request(message);
                    }
                }
                Some((Some(value), at)) => {
                    if let Some(message) = operation::export_change_refused(name, used, Some(value))
                    {
                        problems.at(source, *at, message);
                    }
                }
                // Known only once the update has made its resources.
                _ => {}
            }
        }
        Ok(())
    }

    /// `UpdateStack`: validates everything first (template, parameters,
    /// imports, that every image named exists), then updates in the
    /// background. Parameters not given keep their previous values (AWS
    /// resets them to defaults; autopatch does not, see ARCHITECTURE.md). An
    /// update that changes nothing is refused with AWS's "No updates are to
    /// be performed." and changes nothing.
    pub async fn update_stack(
        &self,
        input: UpdateStackInput,
    ) -> Result<UpdateStackOutput, ApiError> {
        let store = &self.runtime.store;
        let stack = self.find_stack(&input.stack_name)?;
        if input.disable_rollback == Some(true) {
            return Err(ApiError::validation(
                "DisableRollback is not supported for updates locally: a failed update always rolls back, leaving the previous resources serving",
            ));
        }
        if !updatable(stack.status) {
            return Err(cannot_update(&stack));
        }
        let (source, body) = if input.use_previous_template == Some(true) {
            if input.template_body.is_some() || input.template_url.is_some() {
                return Err(ApiError::validation(
                    "Specify only one of TemplateBody, TemplateURL and UsePreviousTemplate",
                ));
            }
            (stack.template_source.clone(), stack.template_body.clone())
        } else {
            template_text(input.template_body, input.template_url)?
        };
        let previous: BTreeMap<String, String> =
            serde_json::from_str(&stack.parameters).unwrap_or_default();
        let mut problems = Problems::default();
        let checked = self.check_request(
            Request { source: &source, body: &body, parameters: &input.parameters },
            &stack.name,
            &stack.stack_id,
            Some((&stack, &previous)),
            &mut problems,
        )?;
        if let Some(checked) = &checked
            && problems.is_empty()
            && body == stack.template_body
            && checked.parameters == previous
        {
            return Err(ApiError::validation("No updates are to be performed."));
        }
        if let Some(checked) = &checked {
            self.check_images(&checked.template, &source, &checked.context, &mut problems).await?;
        }
        let Some(Checked { parameters, imports, .. }) = checked.filter(|_| problems.is_empty())
        else {
            return Err(problems.into_error());
        };
        let now = clock::now();
        let parameters_json = serde_json::to_string(&parameters).unwrap_or_else(|_| "{}".into());
        let imports_json = serde_json::to_string(&imports).unwrap_or_else(|_| "[]".into());
        // Compare-and-set on the stack as it was read before the checks
        // (which wait for the engine): of two requests at once (two
        // updates, an update and a delete), exactly one starts.
        let started = store
            .begin_stack_update_from(&stack, &body, &source, &parameters_json, &imports_json, now)
            .map_err(store_error)?;
        if !started {
            return Err(self.update_refused(&stack)?);
        }
        stack_event(store, &stack, StackStatus::UpdateInProgress, Some("User Initiated"), now)
            .map_err(store_error)?;
        self.spawn_operation(&stack.stack_id);
        Ok(UpdateStackOutput { stack_id: stack.stack_id })
    }

    /// The refusal of an update whose compare-and-set failed: the stack
    /// moved on while the request was checked. AWS's "can not be updated"
    /// in the status it is in now, or, when that status would allow an
    /// update (the stack went through an operation and back), a request to
    /// try again: the checks were made against what it was before.
    fn update_refused(&self, seen: &StackRow) -> Result<ApiError, ApiError> {
        let now = self.find_stack(&seen.stack_id)?;
        Ok(if updatable(now.status) {
            ApiError::validation(format!(
                "Stack [{}] changed while the update was being requested; try again",
                seen.name
            ))
        } else {
            cannot_update(&now)
        })
    }

    /// Every image a launch configuration or template names through
    /// parameters only must exist: a typo is refused before anything
    /// starts, not found by a failing create or update.
    async fn check_images(
        &self,
        template: &Template,
        source: &str,
        context: &StaticContext,
        problems: &mut Problems,
    ) -> Result<(), ApiError> {
        for resource in template.resources.values() {
            let image = match (resource.resource_type.value.as_str(), &resource.properties) {
                ("AWS::AutoScaling::LaunchConfiguration", Some(properties)) => {
                    properties.get("ImageId")
                }
                ("AWS::EC2::LaunchTemplate", Some(properties)) => {
                    properties.get("LaunchTemplateData").and_then(|data| data.get("ImageId"))
                }
                _ => None,
            };
            // Images that depend on other resources are checked when used.
            let Some(expr) = image else { continue };
            let Some(name) = evaluate(expr, context).ok().and_then(|v| v.as_scalar_text()) else {
                continue;
            };
            let found = autopatch_imagebuilder::resolve_parent(
                &self.runtime.store,
                self.runtime.engine.as_ref(),
                &name,
            )
            .await
            .map_err(|error| {
                ApiError::internal(format!(
                    "look up image {name}: {}",
                    autopatch_fleet::error_chain(&error)
                ))
            })?;
            if let Err(reason) = found {
                problems.at(source, expr.span.start, resources::image_problem(&name, &reason));
            }
        }
        Ok(())
    }

    /// `CancelUpdateStack`: the update stops waiting and rolls back; the
    /// old resources keep serving.
    pub async fn cancel_update_stack(&self, input: CancelUpdateStackInput) -> Result<(), ApiError> {
        let stack = self.find_stack(&input.stack_name)?;
        let cancelled = self.transition_from(
            &stack,
            StackStatus::UpdateInProgress,
            StackStatus::UpdateRollbackInProgress,
            "Stack update cancelled",
        )?;
        if !cancelled {
            return Err(ApiError::validation(format!(
                "CancelUpdateStack cannot be called from current stack status {}",
                stack.status
            )));
        }
        // The running operation notices at its next look; after a restart
        // the resumed operation rolls back.
        self.spawn_operation(&stack.stack_id);
        Ok(())
    }

    /// `ContinueUpdateRollback`: a stack whose update rollback failed
    /// (`UPDATE_ROLLBACK_FAILED`) rolls back again from where it stopped
    /// (`UPDATE_ROLLBACK_IN_PROGRESS`, then `UPDATE_ROLLBACK_COMPLETE`, or
    /// `UPDATE_ROLLBACK_FAILED` again): the resources that failed are tried
    /// again, except those `ResourcesToSkip` names. Only a resource the
    /// rollback left `UPDATE_FAILED` may be skipped, as on AWS; it is marked
    /// `UPDATE_COMPLETE` with the previous template's properties and left
    /// as it is. Any other status, or any other resource to skip, is
    /// refused and changes nothing.
    pub async fn continue_update_rollback(
        &self,
        input: ContinueUpdateRollbackInput,
    ) -> Result<ContinueUpdateRollbackOutput, ApiError> {
        let store = &self.runtime.store;
        let stack = self.find_stack(&input.stack_name)?;
        if stack.status != StackStatus::UpdateRollbackFailed {
            return Err(ApiError::validation(format!(
                "ContinueUpdateRollback cannot be called from current stack status {}",
                stack.status
            )));
        }
        let mut skip = BTreeSet::new();
        if !input.resources_to_skip.is_empty() {
            let rows = store.stack_resources(&stack.stack_id).map_err(store_error)?;
            let failed = operation::failed_by_rollback(store, &stack).map_err(store_error)?;
            let mut problems = Vec::new();
            for name in &input.resources_to_skip {
                if !skip.insert(name.clone()) {
                    continue;
                }
                let Some(row) = rows.iter().find(|row| &row.logical_id == name) else {
                    problems.push(format!(
                        "ResourcesToSkip: resource [{name}] does not exist in stack [{}]",
                        stack.name
                    ));
                    continue;
                };
                if failed.as_ref() == Some(name) {
                    continue;
                }
                let why = if row.status == ResourceStatus::UpdateFailed {
                    "UPDATE_FAILED because the update failed, not its rollback".to_owned()
                } else {
                    format!("in the {} state", row.status)
                };
                problems.push(format!(
                    "ResourcesToSkip: resource [{name}] is {why}; you can specify only resources that are in the UPDATE_FAILED state because a rollback failed"
                ));
            }
            if !problems.is_empty() {
                return Err(ApiError::validation(problems.join("\n")));
            }
        }
        // Of two requests at once, one continues the rollback (and alone
        // skips what it names).
        let started = self.transition_from(
            &stack,
            StackStatus::UpdateRollbackFailed,
            StackStatus::UpdateRollbackInProgress,
            "User Initiated",
        )?;
        if !started {
            return Err(ApiError::validation(format!(
                "Stack [{}] changed while ContinueUpdateRollback was being requested; try again",
                stack.name
            )));
        }
        // A crash before the skips are written leaves those resources
        // UPDATE_FAILED: the resumed rollback tries them again (and, failing,
        // ends UPDATE_ROLLBACK_FAILED, where a new request skips them).
        let skipped = self.runtime.skip_rollback(&stack.stack_id, &skip);
        // The rollback runs even when the skips could not be written: the
        // stack must not stay in progress with nothing working on it.
        self.spawn_operation(&stack.stack_id);
        skipped.map_err(|error| ApiError::internal(autopatch_fleet::error_chain(&error)))?;
        Ok(ContinueUpdateRollbackOutput {})
    }

    /// `DeleteStack`: refused while another stack imports one of its
    /// exports. Deleting a stack that does not exist succeeds, as on AWS.
    /// A stack an earlier delete or rollback left `DELETE_FAILED` or
    /// `ROLLBACK_FAILED` is deleted again: its `DELETE_FAILED` resources are
    /// tried again (once per request), and `RetainResources` (only for a
    /// stack in `DELETE_FAILED`, as on AWS) keeps the named ones.
    pub async fn delete_stack(&self, input: DeleteStackInput) -> Result<(), ApiError> {
        let store = &self.runtime.store;
        let Some(stack) = store.stack(&input.stack_name).map_err(store_error)? else {
            return Ok(());
        };
        if stack.status == StackStatus::DeleteComplete
            || stack.status == StackStatus::DeleteInProgress
        {
            return Ok(());
        }
        if stack.status.in_progress() {
            return Err(cannot_delete(&stack));
        }
        let retain: BTreeSet<String> = input.retain_resources.iter().cloned().collect();
        if !retain.is_empty() {
            if stack.status != StackStatus::DeleteFailed {
                return Err(ApiError::validation(format!(
                    "Invalid operation on stack [{}]: RetainResources can only be specified when the stack is in the DELETE_FAILED state (it is {})",
                    stack.name, stack.status
                )));
            }
            let rows = store.stack_resources(&stack.stack_id).map_err(store_error)?;
            let unknown: Vec<&str> = retain
                .iter()
                .filter(|name| !rows.iter().any(|row| &&row.logical_id == name))
                .map(String::as_str)
                .collect();
            if !unknown.is_empty() {
                return Err(ApiError::validation(format!(
                    "RetainResources names resources stack [{}] does not have: [{}]",
                    stack.name,
                    unknown.join(", ")
                )));
            }
        }
        let in_use = operation::exports_in_use(store, &stack).map_err(store_error)?;
        if let Some(refused) = in_use
            .iter()
            .find_map(|(name, used)| operation::export_change_refused(name, used, None))
        {
            return Err(ApiError::validation(refused));
        }
        // Of two requests at once, one starts the delete (and alone retries
        // the failed resources).
        let started = self.transition_from(
            &stack,
            stack.status,
            StackStatus::DeleteInProgress,
            "User Initiated",
        )?;
        if !started {
            // Another request moved the stack first: a delete (this one is
            // then the same request again, as on AWS), or another operation.
            let now = self.find_stack(&stack.stack_id)?;
            return match now.status {
                StackStatus::DeleteInProgress | StackStatus::DeleteComplete => Ok(()),
                status if status.in_progress() => Err(cannot_delete(&now)),
                _ => Err(ApiError::validation(format!(
                    "Stack [{}] changed while the delete was being requested; try again",
                    stack.name
                ))),
            };
        }
        // A crash before this line leaves the failed resources as they were:
        // the resumed delete ends DELETE_FAILED again and a new request
        // retries them.
        operation::retry_failed_deletes(store, &stack, &retain).map_err(store_error)?;
        self.spawn_operation(&stack.stack_id);
        Ok(())
    }

    /// `DescribeStacks`.
    pub fn describe_stacks(
        &self,
        input: DescribeStacksInput,
    ) -> Result<DescribeStacksOutput, ApiError> {
        let stacks = match &input.stack_name {
            Some(name) => vec![self.find_stack(name)?],
            None => self.runtime.store.stacks(false).map_err(store_error)?,
        };
        Ok(DescribeStacksOutput { stacks: stacks.iter().map(describe_stack).collect() })
    }

    /// `DescribeStackEvents`: newest first.
    pub fn describe_stack_events(
        &self,
        input: DescribeStackEventsInput,
    ) -> Result<DescribeStackEventsOutput, ApiError> {
        let stack = self.find_stack(&input.stack_name)?;
        let mut events: Vec<StackEvent> = self
            .runtime
            .store
            .stack_events(&stack.stack_id)
            .map_err(store_error)?
            .into_iter()
            .map(|event| StackEvent {
                stack_id: event.stack_id,
                event_id: event.event_id,
                stack_name: event.stack_name,
                logical_resource_id: event.logical_id,
                physical_resource_id: event.physical_id,
                resource_type: event.resource_type,
                timestamp: event.at.to_string(),
                resource_status: event.status,
                resource_status_reason: event.reason,
            })
            .collect();
        events.reverse();
        Ok(DescribeStackEventsOutput { stack_events: events })
    }

    /// `DescribeStackResources`.
    pub fn describe_stack_resources(
        &self,
        input: DescribeStackResourcesInput,
    ) -> Result<DescribeStackResourcesOutput, ApiError> {
        let stack = self.find_stack(&input.stack_name)?;
        let resources = self
            .runtime
            .store
            .stack_resources(&stack.stack_id)
            .map_err(store_error)?
            .into_iter()
            .map(|row| StackResource {
                stack_name: stack.name.clone(),
                stack_id: stack.stack_id.clone(),
                logical_resource_id: row.logical_id,
                physical_resource_id: row.physical_id,
                resource_type: row.resource_type,
                timestamp: row.updated_at.to_string(),
                resource_status: row.status.as_str().to_owned(),
                resource_status_reason: row.status_reason,
            })
            .collect();
        Ok(DescribeStackResourcesOutput { stack_resources: resources })
    }

    /// `ListStacks`: every stack, deleted ones included, newest first.
    pub fn list_stacks(&self, input: ListStacksInput) -> Result<ListStacksOutput, ApiError> {
        let filter: BTreeSet<&str> = input.stack_status_filter.iter().map(String::as_str).collect();
        let mut summaries: Vec<StackSummary> = self
            .runtime
            .store
            .stacks(true)
            .map_err(store_error)?
            .iter()
            .filter(|stack| filter.is_empty() || filter.contains(stack.status.as_str()))
            .map(|stack| {
                let described = describe_stack(stack);
                StackSummary {
                    stack_id: described.stack_id,
                    stack_name: described.stack_name,
                    creation_time: described.creation_time,
                    last_updated_time: described.last_updated_time,
                    deletion_time: described.deletion_time,
                    stack_status: described.stack_status,
                    stack_status_reason: described.stack_status_reason,
                }
            })
            .collect();
        summaries.reverse();
        Ok(ListStacksOutput { stack_summaries: summaries })
    }

    /// `ListExports`.
    pub fn list_exports(&self, _input: ListExportsInput) -> Result<ListExportsOutput, ApiError> {
        let exports = operation::exports(&self.runtime.store, None)
            .map_err(store_error)?
            .into_iter()
            .map(|(name, (value, stack))| Export { exporting_stack_id: stack, name, value })
            .collect();
        Ok(ListExportsOutput { exports })
    }

    /// Elastic Load Balancing `DescribeTargetHealth`.
    pub fn describe_target_health(
        &self,
        input: DescribeTargetHealthInput,
    ) -> Result<DescribeTargetHealthOutput, ApiError> {
        let group = self.runtime.target_group(&input.target_group_arn).ok_or_else(|| {
            ApiError::new(
                400,
                "TargetGroupNotFound",
                format!("One or more target groups not found: {}", input.target_group_arn),
            )
        })?;
        Ok(DescribeTargetHealthOutput { target_health_descriptions: group.describe() })
    }

    /// Every target state transition of a target group's load balancer since
    /// its listener started (the proof behind "never fewer than N healthy
    /// targets"); `None` for an unknown group or one with no listener.
    pub fn target_health_history(
        &self,
        target_group_arn: &str,
    ) -> Option<autopatch_loadbalancer::History> {
        self.runtime.target_group(target_group_arn)?.history()
    }

    /// Auto Scaling `DescribeAutoScalingGroups`.
    pub fn describe_auto_scaling_groups(
        &self,
        input: DescribeAutoScalingGroupsInput,
    ) -> Result<DescribeAutoScalingGroupsOutput, ApiError> {
        let store = &self.runtime.store;
        let mut groups = Vec::new();
        for stack in store.stacks(false).map_err(store_error)? {
            // (name, attributes, properties) of each group that may run:
            // every group of the stack that runs is shown, whatever state
            // the stack or the resource that made it is in.
            let mut candidates = Vec::new();
            let runs = |name: &str| self.runtime.group_runs(name).map_err(store_error);
            for row in store.stack_resources(&stack.stack_id).map_err(store_error)? {
                if row.resource_type != "AWS::AutoScaling::AutoScalingGroup" {
                    continue;
                }
                // During an update, the group being replaced (or, rolling
                // back, the replacement) runs too, and keeps running while
                // a rollback that failed waits to be continued.
                if let Some(replaced) = operation::replaced_of(&row)
                    && let Some(name) = replaced.physical_id
                    && (!replaced.deleting || runs(&name)?)
                {
                    candidates.push((name, replaced.attributes, "{}".to_owned()));
                }
                let Some(name) = row.physical_id else { continue };
                let current = matches!(
                    row.status,
                    ResourceStatus::CreateComplete
                        | ResourceStatus::CreateInProgress
                        | ResourceStatus::UpdateComplete
                        | ResourceStatus::UpdateInProgress
                );
                // A failed one (its gate failed, its delete did not finish)
                // is shown while it runs.
                if current || (row.status.may_exist() && runs(&name)?) {
                    candidates.push((name, row.attributes, row.properties));
                }
            }
            // Groups the stack made that no row names any more (a store
            // from before rows kept every group) but that still run.
            let named: BTreeSet<String> =
                candidates.iter().map(|(name, ..)| name.clone()).collect();
            for (name, _) in self.runtime.stack_groups(&stack.stack_id).map_err(store_error)? {
                if !named.contains(&name) {
                    candidates.push((name, "{}".to_owned(), "{}".to_owned()));
                }
            }
            for (name, attributes, properties) in candidates {
                if !input.auto_scaling_group_names.is_empty()
                    && !input.auto_scaling_group_names.contains(&name)
                {
                    continue;
                }
                groups.push(self.describe_group(name, &attributes, &properties)?);
            }
        }
        Ok(DescribeAutoScalingGroupsOutput { auto_scaling_groups: groups })
    }

    /// One group as `DescribeAutoScalingGroups` shows it. Its settings come
    /// from its controller when one runs here: a group still being created
    /// (the new group of a blue/green update, until its signals and health
    /// gate pass) has no attributes in the store yet. Otherwise they come
    /// from the record kept in its attributes, and its target groups from
    /// its properties when the record has none.
    fn describe_group(
        &self,
        name: String,
        attributes: &str,
        properties: &str,
    ) -> Result<AutoScalingGroup, ApiError> {
        let attributes: serde_json::Value = serde_json::from_str(attributes).unwrap_or_default();
        let properties: serde_json::Value = serde_json::from_str(properties).unwrap_or_default();
        let record = &attributes["autopatch:Local"]["Group"];
        let texts = |value: &serde_json::Value| -> Vec<String> {
            value
                .as_array()
                .map(|items| {
                    items.iter().filter_map(|item| item.as_str().map(str::to_owned)).collect()
                })
                .unwrap_or_default()
        };
        let mut target_group_arns = texts(&record["target_groups"]);
        if target_group_arns.is_empty() {
            target_group_arns = texts(&properties["TargetGroupARNs"]);
        }
        let instances = self
            .runtime
            .store
            .instances_of_group(&name, false)
            .map_err(store_error)?
            .into_iter()
            .map(|instance| AutoScalingInstance {
                instance_id: instance.instance_id,
                availability_zone: instance.zone,
                lifecycle_state: instance.lifecycle.as_str().to_owned(),
                health_status: instance.health.as_str().to_owned(),
                launch_configuration_name: Some(instance.launch_config),
                image_id: Some(instance.image),
            })
            .collect();
        let mut group = AutoScalingGroup {
            auto_scaling_group_name: name,
            min_size: 0,
            max_size: 0,
            desired_capacity: 0,
            health_check_type: String::new(),
            health_check_grace_period: 0,
            target_group_arns,
            availability_zones: Vec::new(),
            instances,
        };
        let elb = match self.runtime.fleet.group_status(&group.auto_scaling_group_name) {
            Some(status) => {
                let spec = status.spec;
                group.min_size = spec.min_size;
                group.max_size = spec.max_size;
                group.desired_capacity = spec.desired_capacity;
                group.health_check_grace_period =
                    u32::try_from(spec.health_check_grace_period.as_secs()).unwrap_or(u32::MAX);
                group.availability_zones = spec.zones.into_iter().map(|zone| zone.name).collect();
                spec.health_check_type == HealthCheckType::Elb
            }
            None => {
                let number = |key: &str| {
                    record[key].as_u64().map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
                };
                group.min_size = number("min_size");
                group.max_size = number("max_size");
                group.desired_capacity = number("desired_capacity");
                group.health_check_grace_period = number("grace_seconds");
                group.availability_zones = record["zones"]
                    .as_array()
                    .map(|zones| {
                        zones
                            .iter()
                            .filter_map(|zone| zone[0].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                record["health_check_elb"].as_bool() == Some(true)
            }
        };
        group.health_check_type = if elb { "ELB" } else { "EC2" }.into();
        Ok(group)
    }

    /// Stops listeners and fleet controllers; instances keep running, to be
    /// re-adopted by the next [`StackService::open`].
    pub async fn shutdown(&self) {
        let retries: Vec<_> = std::mem::take(&mut *lock(&self.readopting));
        for retry in retries {
            retry.abort();
            let _ = retry.await;
        }
        self.runtime.fleet.stop().await;
        let groups: Vec<_> = lock(&self.runtime.target_groups).values().cloned().collect();
        for group in groups {
            if let Some(balancer) = group.detach() {
                balancer.shutdown().await;
            }
        }
        lock(&self.runtime.reserved_ports).clear();
        lock(&self.runtime.early_sockets).clear();
    }

    /// Moves `stack` from `from` to `to` and records the stack event, if
    /// it is still `from` (compare-and-set: of two requests at once, one
    /// moves it, and a cancel and the operation's own transition cannot
    /// overwrite each other); `false`, with nothing written, when it is not.
    fn transition_from(
        &self,
        stack: &StackRow,
        from: StackStatus,
        to: StackStatus,
        reason: &str,
    ) -> Result<bool, ApiError> {
        let store = &self.runtime.store;
        let now = clock::now();
        let moved = store
            .set_stack_status_from(&stack.stack_id, from, to, Some(reason), now)
            .map_err(store_error)?;
        if moved {
            stack_event(store, stack, to, Some(reason), now).map_err(store_error)?;
        }
        Ok(moved)
    }

    fn find_stack(&self, name: &str) -> Result<StackRow, ApiError> {
        self.runtime
            .store
            .stack(name)
            .map_err(store_error)?
            .ok_or_else(|| ApiError::validation(format!("Stack with id {name} does not exist")))
    }
}

/// Whether `UpdateStack` may start from `status`.
fn updatable(status: StackStatus) -> bool {
    matches!(
        status,
        StackStatus::CreateComplete
            | StackStatus::UpdateComplete
            | StackStatus::UpdateRollbackComplete
    )
}

/// CloudFormation's refusal of `UpdateStack` in a status that does not allow it.
fn cannot_update(stack: &StackRow) -> ApiError {
    ApiError::validation(format!(
        "Stack:{} is in {} state and can not be updated.",
        stack.stack_id, stack.status
    ))
}

/// CloudFormation's refusal of `DeleteStack` while another operation runs.
fn cannot_delete(stack: &StackRow) -> ApiError {
    ApiError::validation(format!(
        "Stack [{}] cannot be deleted while in status {}",
        stack.name, stack.status
    ))
}

fn describe_stack(stack: &StackRow) -> Stack {
    let parameters: BTreeMap<String, String> =
        serde_json::from_str(&stack.parameters).unwrap_or_default();
    let template = parse_template(&SourceFile::new(
        stack.template_source.clone(),
        stack.template_body.clone(),
    ))
    .ok();
    let no_echo = |name: &str| {
        template.as_ref().and_then(|t| t.parameters.get(name)).is_some_and(|p| p.no_echo)
    };
    Stack {
        stack_id: stack.stack_id.clone(),
        stack_name: stack.name.clone(),
        description: template.as_ref().and_then(|t| t.description.clone()),
        parameters: parameters
            .into_iter()
            .map(|(key, value)| Parameter {
                parameter_value: Some(if no_echo(&key) { "****".into() } else { value }),
                parameter_key: key,
                use_previous_value: None,
            })
            .collect(),
        creation_time: stack.created_at.to_string(),
        last_updated_time: (stack.updated_at != stack.created_at)
            .then(|| stack.updated_at.to_string()),
        deletion_time: stack.deleted_at.map(|at: Timestamp| at.to_string()),
        stack_status: stack.status.as_str().to_owned(),
        stack_status_reason: stack.status_reason.clone(),
        disable_rollback: stack.disable_rollback,
        outputs: serde_json::from_str(&stack.outputs).unwrap_or_default(),
    }
}

/// Stack names: a letter, then letters, digits and hyphens, at most 128.
fn check_stack_name(name: &str) -> Result<(), ApiError> {
    let valid = name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "1 validation error detected: Value '{name}' at 'stackName' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*"
        )))
    }
}

/// The template's name (for diagnostics) and text.
fn template_text(body: Option<String>, url: Option<String>) -> Result<(String, String), ApiError> {
    match (body, url) {
        (Some(body), None) => Ok(("template".into(), body)),
        (None, Some(url)) => {
            let path = url.strip_prefix("file://").ok_or_else(|| {
                ApiError::validation(format!(
                    "TemplateURL {url}: only file:// URLs are supported locally"
                ))
            })?;
            let text = std::fs::read_to_string(path)
                .map_err(|error| ApiError::validation(format!("read template {path}: {error}")))?;
            Ok((path.to_owned(), text))
        }
        (Some(_), Some(_)) => {
            Err(ApiError::validation("Specify exactly one of TemplateBody and TemplateURL"))
        }
        (None, None) => {
            Err(ApiError::validation("Either TemplateBody or TemplateURL must be specified"))
        }
    }
}

/// A request's template text and parameters.
#[derive(Clone, Copy)]
struct Request<'a> {
    /// The template's name in messages.
    source: &'a str,
    body: &'a str,
    parameters: &'a [Parameter],
}

/// What [`StackService::check_request`] found usable.
struct Checked {
    template: Template,
    parameters: BTreeMap<String, String>,
    context: StaticContext,
    imports: Vec<String>,
}

/// Everything wrong with a request, reported together, one line each:
/// problems of the request itself first, as plain messages (no file, no
/// position: a parameter the template does not declare is nowhere in it),
/// then the template's as `file:line:col: error: message`, in position
/// order (stable: problems at one place keep the order they were found in).
#[derive(Debug, Default)]
struct Problems(Vec<(Option<Position>, String)>);

impl Problems {
    fn at(&mut self, source: &str, position: Position, message: impl std::fmt::Display) {
        self.0.push((Some(position), format!("{source}:{position}: error: {message}")));
    }

    fn request(&mut self, message: String) {
        self.0.push((None, message));
    }

    fn diagnostics(&mut self, diagnostics: Vec<Diagnostic>) {
        for diagnostic in diagnostics {
            self.0.push((Some(diagnostic.span.start), diagnostic.to_string()));
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn into_error(mut self) -> ApiError {
        self.0.sort_by_key(|(position, _)| *position);
        let lines: Vec<String> = self.0.into_iter().map(|(_, line)| line).collect();
        ApiError::validation(lines.join("\n"))
    }
}

/// An update's parameter values: the given ones, `UsePreviousValue` ones,
/// and (autopatch's choice) the previous value of every other parameter the
/// template still declares.
fn with_previous_values(
    mut given: BTreeMap<String, String>,
    template: &Template,
    previous: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    for (key, value) in previous {
        if template.parameters.contains_key(key) && !given.contains_key(key) {
            given.insert(key.clone(), value.clone());
        }
    }
    given
}

/// The values a request gives; `previous` (updates only) answers
/// `UsePreviousValue`. A parameter given wrongly is a problem and left out.
fn given_parameters(
    parameters: &[Parameter],
    previous: Option<&BTreeMap<String, String>>,
    problems: &mut Problems,
) -> BTreeMap<String, String> {
    let mut given = BTreeMap::new();
    for parameter in parameters {
        let key = &parameter.parameter_key;
        let value = match (parameter.use_previous_value == Some(true), previous) {
            (true, None) => {
                Err(format!("UsePreviousValue is only valid for updates (parameter {key})"))
            }
            (true, Some(previous)) => previous.get(key).cloned().ok_or_else(|| {
                format!(
                    "Invalid input for parameter key {key}. Cannot specify usePreviousValue as true for a parameter key not in the previous template"
                )
            }),
            (false, _) => parameter
                .parameter_value
                .clone()
                .ok_or_else(|| format!("Parameter {key} has no ParameterValue")),
        };
        match value {
            Ok(value) => {
                given.insert(key.clone(), value);
            }
            Err(problem) => problems.request(problem),
        }
    }
    given
}
