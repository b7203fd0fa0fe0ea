//! The executor, mirroring operation.rs step by step: read the stack row,
//! ask the real planner (`next_step`, with `classify` for each resource in
//! dependency order up to the first change), then carry the step out as
//! operation.rs and resources.rs do, every durable write and every act
//! followed by a `point` (where a crash, a fault or a cancel can come).
//! Waits (the replacement's gate, the rolling loop, draining) poll against
//! the virtual clock.

use std::collections::BTreeMap;
use std::time::Duration;

use autopatch_model::{ResourceStatus, StackStatus};
use autopatch_stacks::planner::{SignalVerdict, StackView, Step, next_step, signal_verdict};
use autopatch_stacks::update::{
    Change, Facts, Held, RollingInstance, RollingMove, RollingPolicy, RollingView, classify,
    rolling_step,
};
use serde_json::{Value as Json, json};

use crate::sim::{Sim, Stop};
use crate::world::{
    ASG_TYPE, DESIRED, DRAIN, GRACE, GroupSpec, HEALTHY_AFTER, Image, LC_TYPE, Lifecycle, MAX_SIZE,
    ORDER, PAUSE, Replaced, Row, SIGNAL_TIMEOUT, STACK, STACK_ID, Template,
};

/// The operation as one iteration read it.
struct Operation {
    /// The stack's status when the step was planned (transitions
    /// compare-and-set from it).
    status: StackStatus,
    /// The target template: the previous one while rolling back.
    template: Template,
    rolling_back: bool,
}

/// The act's outcome: `Err` is a resource failure (a reason).
type Outcome<T> = Result<T, String>;

impl Sim {
    /// `Runtime::run_operation`.
    pub(crate) fn run_operation(&mut self) -> Result<StackStatus, Stop> {
        loop {
            let status = self.world.store.status;
            let rolling_back = matches!(
                status,
                StackStatus::UpdateRollbackInProgress
                    | StackStatus::UpdateRollbackCompleteCleanupInProgress
            );
            let operation =
                Operation { status, template: self.world.store.target(rolling_back), rolling_back };
            let updating = matches!(
                status,
                StackStatus::UpdateInProgress | StackStatus::UpdateRollbackInProgress
            );
            let rows = &self.world.store.rows;
            let view = StackView {
                status: Some(status),
                order: ORDER.map(String::from).to_vec(),
                resources: rows.iter().map(|(name, row)| (name.clone(), row.status)).collect(),
                changes: if updating { self.changes(&operation) } else { BTreeMap::new() },
                replaced: rows
                    .iter()
                    .filter(|(_, row)| row.replaced.is_some())
                    .map(|(name, _)| name.clone())
                    .collect(),
                ..StackView::default()
            };
            let step = next_step(&view);
            self.point(format!("plan: {step:?}"))?;
            match step {
                Step::Idle => return Ok(status),
                Step::Update(name, change) => self.update_step(&operation, &name, change)?,
                Step::Cleanup(name) => self.cleanup_step(&name)?,
                Step::Outputs => {
                    let done = match status {
                        StackStatus::UpdateInProgress => {
                            StackStatus::UpdateCompleteCleanupInProgress
                        }
                        _ => StackStatus::UpdateRollbackCompleteCleanupInProgress,
                    };
                    self.transition(status, done)?;
                }
                Step::Transition(to, _reason) => self.end_step(status, to)?,
                other => {
                    return Err(Stop::Broken(format!(
                        "the planner asked for {other:?} in an update of resources that all exist"
                    )));
                }
            }
        }
    }

    /// How each resource differs from the target template, in dependency
    /// order up to the first that does.
    fn changes(&self, operation: &Operation) -> BTreeMap<String, Change> {
        let store = &self.world.store;
        let context = store.context();
        let mut changes = BTreeMap::new();
        for name in ORDER {
            let change = match (store.rows.get(name), operation.template.desired(name, &context)) {
                (None, _) => Change::Create,
                (Some(_), Err(reason)) => Change::Unsupported(reason),
                (Some(row), Ok(desired)) => classify(&Facts {
                    resource_type: row.resource_type,
                    status: Some(row.status),
                    stored: &row.properties,
                    desired: &desired,
                    held: match &row.replaced {
                        None => Held::Nothing,
                        Some(replaced) if replaced.restored => Held::Restored,
                        Some(_) => Held::Replaced,
                    },
                    rolling_back: operation.rolling_back,
                    policy: operation.template.policy_of(name),
                }),
            };
            let stop = change != Change::None;
            changes.insert(name.to_owned(), change);
            if stop {
                break;
            }
        }
        changes
    }

    /// Writes a row, then a point.
    fn put(&mut self, name: &str, row: Row, what: &str) -> Result<(), Stop> {
        let row = Row { updated_at: self.world.now, ..row };
        self.world.store.rows.insert(name.to_owned(), row);
        self.point(format!("{name}: {what}"))
    }

    /// `transition`: an update's end makes its template final (or the
    /// previous one current) first, then compare-and-set from the status
    /// the step read: a cancel that came in between wins.
    fn transition(&mut self, from: StackStatus, to: StackStatus) -> Result<(), Stop> {
        let store = &mut self.world.store;
        match to {
            StackStatus::UpdateComplete => {
                store.previous = None;
                self.point("end of the update: the new template is final")?;
            }
            StackStatus::UpdateRollbackComplete => {
                if let Some(previous) = store.previous.take() {
                    store.template = previous;
                }
                self.point("end of the rollback: the previous template is current again")?;
            }
            _ => {}
        }
        let store = &mut self.world.store;
        if store.status == from {
            store.status = to;
            self.point(format!("stack: {from} → {to}"))
        } else {
            self.point(format!("stack: {from} → {to} refused (the status changed)"))
        }
    }

    /// `end_step`: an update's or a rollback's end first deletes every
    /// group that runs but that no row names (current or held); a failed
    /// delete is reported and the operation ends.
    fn end_step(&mut self, from: StackStatus, to: StackStatus) -> Result<(), Stop> {
        if matches!(to, StackStatus::UpdateComplete | StackStatus::UpdateRollbackComplete) {
            let named = self.world.store.named();
            let unnamed: Vec<String> = self
                .world
                .groups(&self.fleet)
                .into_iter()
                .filter(|group| !named.contains(group))
                .collect();
            for group in unnamed {
                self.note(format!("end: {group} runs and no row names it: deleted"));
                if let Err(reason) = self.delete_resource(ASG_TYPE, &group)? {
                    self.effects.failed_deletes.insert(group.clone());
                    self.note(format!("end: {group} DELETE_FAILED: {reason}"));
                }
            }
        }
        self.transition(from, to)
    }

    /// `fail_update`: `UPDATE_FAILED`; during a rollback the rollback fails.
    fn fail_update(&mut self, operation: &Operation, name: &str, reason: &str) -> Result<(), Stop> {
        let row = Row { status: ResourceStatus::UpdateFailed, ..self.world.store.row(name) };
        self.put(name, row, &format!("UPDATE_FAILED: {reason}"))?;
        if operation.rolling_back {
            self.transition(operation.status, StackStatus::UpdateRollbackFailed)?;
        }
        Ok(())
    }

    /// `update_step`.
    fn update_step(
        &mut self,
        operation: &Operation,
        name: &str,
        change: Change,
    ) -> Result<(), Stop> {
        match change {
            Change::None | Change::Create => Ok(()),
            Change::Unsupported(reason) => self.fail_update(operation, name, &reason),
            Change::Restore => self.restore_step(name),
            Change::Replace => self.replace_step(operation, name),
            Change::InPlace | Change::Rolling => {
                let context = self.world.store.context();
                let properties = match operation.template.desired(name, &context) {
                    Ok(properties) => properties,
                    Err(reason) => return self.fail_update(operation, name, &reason),
                };
                let row = self.world.store.row(name);
                if row.status != ResourceStatus::UpdateInProgress {
                    let row = Row { status: ResourceStatus::UpdateInProgress, ..row };
                    self.put(name, row, "UPDATE_IN_PROGRESS (same physical id)")?;
                }
                let row = self.world.store.row(name);
                let physical = row.physical.clone().unwrap_or_default();
                let outcome = if change == Change::Rolling {
                    self.roll_group(operation, &physical, &properties)?
                } else {
                    self.update_resource(
                        row.resource_type,
                        &physical,
                        &properties,
                        &row.attributes,
                    )?
                };
                match outcome {
                    Ok(attributes) => {
                        let row = Row {
                            status: ResourceStatus::UpdateComplete,
                            properties,
                            attributes,
                            ..self.world.store.row(name)
                        };
                        self.put(name, row, "UPDATE_COMPLETE")
                    }
                    Err(reason) => self.fail_update(operation, name, &reason),
                }
            }
        }
    }

    /// `replace_step`: the new physical id and what it replaces are written
    /// before anything is made; a group must pass its gate.
    fn replace_step(&mut self, operation: &Operation, name: &str) -> Result<(), Stop> {
        let context = self.world.store.context();
        let properties = match operation.template.desired(name, &context) {
            Ok(properties) => properties,
            Err(reason) => return self.fail_update(operation, name, &reason),
        };
        let row = self.world.store.row(name);
        let resuming = row.replaced.as_ref().is_some_and(|replaced| !replaced.restored)
            && row.status == ResourceStatus::UpdateInProgress;
        if !resuming {
            let old = Replaced {
                physical: row.physical.clone(),
                properties: row.properties.clone(),
                attributes: row.attributes.clone(),
                restored: false,
                deleting: false,
            };
            let physical = self.world.store.new_physical(name);
            let row = Row {
                status: ResourceStatus::UpdateInProgress,
                physical: Some(physical.clone()),
                properties: properties.clone(),
                attributes: json!({}),
                replaced: Some(old),
                ..row
            };
            self.put(name, row, &format!("replacement {physical} written, UPDATE_IN_PROGRESS"))?;
        }
        let row = self.world.store.row(name);
        let physical = row.physical.clone().unwrap_or_default();
        match self.create_resource(
            operation,
            row.resource_type,
            &physical,
            &properties,
            row.updated_at,
        )? {
            Ok(attributes) => {
                let row = Row { status: ResourceStatus::UpdateComplete, attributes, ..row };
                self.put(name, row, "replacement UPDATE_COMPLETE")
            }
            Err(reason) => self.fail_update(operation, name, &reason),
        }
    }

    /// `restore_step`: the replaced resource, still running, is current
    /// again; the replacement waits for the cleanup.
    fn restore_step(&mut self, name: &str) -> Result<(), Stop> {
        let row = self.world.store.row(name);
        let Some(old) = row.replaced.clone() else { return Ok(()) };
        let replacement = Replaced {
            physical: row.physical.clone(),
            properties: row.properties.clone(),
            attributes: row.attributes.clone(),
            restored: true,
            deleting: false,
        };
        let row = Row {
            status: ResourceStatus::UpdateInProgress,
            physical: old.physical,
            properties: old.properties,
            attributes: old.attributes,
            replaced: Some(replacement),
            ..row
        };
        self.put(name, row.clone(), "restored: the replaced one is current, UPDATE_IN_PROGRESS")?;
        let row = Row { status: ResourceStatus::UpdateComplete, ..row };
        self.put(name, row, "restored: UPDATE_COMPLETE")
    }

    /// `cleanup_step`: deletes what was replaced; a failed delete is
    /// reported and the cleanup goes on.
    fn cleanup_step(&mut self, name: &str) -> Result<(), Stop> {
        let row = self.world.store.row(name);
        let Some(replaced) = row.replaced.clone() else { return Ok(()) };
        let row = if replaced.deleting {
            row
        } else {
            let marked = Replaced { deleting: true, ..replaced.clone() };
            let row = Row { replaced: Some(marked), ..row };
            self.put(name, row.clone(), "cleanup: the replaced one marked deleting")?;
            row
        };
        if let Some(physical) = &replaced.physical {
            let outcome = self.delete_resource(row.resource_type, physical)?;
            if let Err(reason) = outcome {
                self.effects.failed_deletes.insert(physical.clone());
                self.note(format!("{name}: cleanup of {physical} DELETE_FAILED: {reason}"));
            }
        }
        self.put(name, Row { replaced: None, ..row }, "cleanup done: the replaced one forgotten")
    }

    /// `create_resource` for the two types an update replaces here.
    fn create_resource(
        &mut self,
        operation: &Operation,
        resource_type: &str,
        physical: &str,
        properties: &Json,
        started_at: Duration,
    ) -> Result<Outcome<Json>, Stop> {
        match resource_type {
            LC_TYPE => {
                let failed = self.act_fails("resolving the launch configuration's image");
                self.point(format!("launch configuration {physical} resolved"))?;
                if failed {
                    return Ok(Err(format!(
                        "image {} could not be resolved",
                        properties["ImageId"]
                    )));
                }
                Ok(Ok(json!({"Launch": {"image": properties["ImageId"]}})))
            }
            ASG_TYPE => self.create_group(operation, physical, properties, started_at),
            other => Err(Stop::Broken(format!("the simulation does not replace {other}"))),
        }
    }

    /// `group_record`: the launch configuration must be some row's current
    /// physical id (`find_launch`).
    fn group_record(&self, properties: &Json) -> Outcome<GroupSpec> {
        let launch = properties["LaunchConfigurationName"].as_str().unwrap_or_default();
        let row = self
            .world
            .store
            .rows
            .values()
            .find(|row| row.physical.as_deref() == Some(launch))
            .ok_or_else(|| format!("launch configuration or template {launch} does not exist"))?;
        let image = row.attributes["Launch"]["image"].as_str().unwrap_or_default();
        let image = [Image::A, Image::B, Image::BrokenSignalsFailure, Image::BrokenNeverHealthy]
            .into_iter()
            .find(|known| known.name() == image)
            .ok_or_else(|| format!("launch configuration {launch} has no launch record"))?;
        Ok(GroupSpec { launch: launch.to_owned(), image, desired: DESIRED, max: MAX_SIZE })
    }

    /// `create_group` with the replacement's gate: `Count` success signals,
    /// then every new instance healthy in the target group, both before the
    /// deadline counted from when the replacement was written.
    fn create_group(
        &mut self,
        operation: &Operation,
        physical: &str,
        properties: &Json,
        started_at: Duration,
    ) -> Result<Outcome<Json>, Stop> {
        let spec = match self.group_record(properties) {
            Ok(spec) => spec,
            Err(reason) => return Ok(Err(reason)),
        };
        let started = self.start_group(physical, spec.clone());
        self.point(format!("group {physical} started"))?;
        if let Err(reason) = started {
            return Ok(Err(reason));
        }
        let deadline = started_at + SIGNAL_TIMEOUT;
        loop {
            if let Err(reason) = self.check_interrupted(operation) {
                return Ok(Err(reason));
            }
            let signals = self.world.signals(physical);
            match signal_verdict(&signals, [STACK, STACK_ID], "ASG", DESIRED) {
                SignalVerdict::Satisfied => break,
                SignalVerdict::Failed(reason) => return Ok(Err(reason)),
                SignalVerdict::Waiting { received } if self.world.now >= deadline => {
                    return Ok(Err(format!(
                        "Failed to receive {DESIRED} resource signal(s) within the specified duration ({received} received)"
                    )));
                }
                SignalVerdict::Waiting { .. } => {}
            }
            self.sleep("gate: waiting for signals")?;
        }
        loop {
            if let Err(reason) = self.check_interrupted(operation) {
                return Ok(Err(reason));
            }
            let healthy = self.world.live_of(physical).filter(|i| self.world.is_healthy(i)).count();
            if healthy >= spec.desired as usize {
                break;
            }
            if self.world.now >= deadline {
                return Ok(Err(format!(
                    "{healthy} of {} new instance(s) passed the target group health checks within {} s",
                    spec.desired,
                    SIGNAL_TIMEOUT.as_secs()
                )));
            }
            self.sleep("gate: waiting for target health")?;
        }
        Ok(Ok(spec.to_json()))
    }

    /// `check_interrupted`: a wait ends when the stack's status changed.
    fn check_interrupted(&self, operation: &Operation) -> Outcome<()> {
        match self.world.store.status {
            status if status == operation.status => Ok(()),
            StackStatus::UpdateRollbackInProgress => Err("Resource update cancelled".into()),
            _ => Err("Resource operation cancelled".into()),
        }
    }

    /// `update_resource`: a group gets its new spec (instances stay).
    fn update_resource(
        &mut self,
        resource_type: &str,
        physical: &str,
        properties: &Json,
        previous: &Json,
    ) -> Result<Outcome<Json>, Stop> {
        if resource_type != ASG_TYPE {
            return Ok(Ok(previous.clone()));
        }
        let spec = match self.group_record(properties) {
            Ok(spec) => spec,
            Err(reason) => return Ok(Err(reason)),
        };
        let updated = self.update_group(physical, spec.clone());
        self.point(format!("group {physical} updated in place ({})", spec.launch))?;
        Ok(updated.map(|()| spec.to_json()))
    }

    /// `roll_group`: batches as `rolling_step` decides; the template's
    /// capacity again at the end (a fleet error returns at once, as the
    /// `?`s in resources.rs do).
    fn roll_group(
        &mut self,
        operation: &Operation,
        physical: &str,
        properties: &Json,
    ) -> Result<Outcome<Json>, Stop> {
        let record = match self.group_record(properties) {
            Ok(spec) => spec,
            Err(reason) => return Ok(Err(reason)),
        };
        // MaxBatchSize 1, WaitOnResourceSignals, PauseTime; the health
        // timeout as roll_group computes it.
        let policy = RollingPolicy {
            max_batch_size: 1,
            min_instances_in_service: self.scenario.min_in_service,
            min_successful_instances_percent: 100,
            pause_time: PAUSE,
            wait_on_resource_signals: true,
            health_timeout: GRACE + Duration::from_secs(60) + HEALTHY_AFTER,
        };
        // A capacity the update had grown to before a restart is kept.
        let mut spec = record.clone();
        if let Some(current) = self.fleet.controllers.get(physical)
            && current.desired > spec.desired
        {
            spec.desired = current.desired;
            spec.max = spec.max.max(spec.desired);
        }
        let updated = self.update_group(physical, spec.clone());
        self.point(format!("rolling: group {physical} launches from {}", spec.launch))?;
        if let Err(reason) = updated {
            return Ok(Err(reason));
        }
        let mut batch_started = self.world.now;
        let outcome = loop {
            if let Err(reason) = self.check_interrupted(operation) {
                break Err(reason);
            }
            let Some(current) = self.fleet.controllers.get(physical).cloned() else {
                break Err(format!("Auto Scaling group {physical} is not running here"));
            };
            let instances = self
                .world
                .live_of(physical)
                .map(|instance| RollingInstance {
                    id: instance.id.clone(),
                    current: instance.launch == record.launch && instance.image == record.image,
                    in_service: self.world.is_healthy(instance),
                    signal: self.world.signal(instance),
                    launched_at: instance.launched_at,
                })
                .collect();
            let view = RollingView {
                desired: record.desired,
                capacity: current.desired,
                instances,
                policy: policy.clone(),
                now: self.world.now,
                batch_started,
            };
            let next = rolling_step(&view);
            self.note(format!("rolling_step: {next:?}"));
            match next {
                RollingMove::Done => break Ok(()),
                RollingMove::Fail(reason) => break Err(reason),
                RollingMove::Wait => {}
                RollingMove::Grow(capacity) => {
                    let grown =
                        GroupSpec { desired: capacity, max: current.max.max(capacity), ..current };
                    let grown = self.update_group(physical, grown);
                    self.point(format!("rolling: group {physical} grows to {capacity}"))?;
                    if let Err(reason) = grown {
                        return Ok(Err(reason));
                    }
                    batch_started = self.world.now;
                }
                RollingMove::Terminate { ids, decrement } => {
                    for id in ids {
                        let terminated = self.terminate_instance(physical, &id, decrement);
                        self.point(format!("rolling: {id} terminated (decrement {decrement})"))?;
                        if let Err(reason) = terminated {
                            return Ok(Err(reason));
                        }
                    }
                    batch_started = self.world.now;
                }
            }
            self.sleep("rolling: waiting")?;
        };
        if outcome.is_ok() {
            let restored = self.update_group(physical, record.clone());
            self.point(format!("rolling: group {physical} back to the template's capacity"))?;
            if let Err(reason) = restored {
                return Ok(Err(reason));
            }
        }
        Ok(outcome.map(|()| record.to_json()))
    }

    /// `delete_resource`: a group is deleted by the fleet (controller
    /// stopped, instances deregistered, drained, removed).
    fn delete_resource(
        &mut self,
        resource_type: &str,
        physical: &str,
    ) -> Result<Outcome<()>, Stop> {
        if resource_type != ASG_TYPE {
            return Ok(Ok(()));
        }
        self.fleet.controllers.remove(physical);
        let ids: Vec<String> = self.world.live_of(physical).map(|i| i.id.clone()).collect();
        for id in &ids {
            self.world.begin_termination(id);
        }
        self.point(format!("delete group {physical}: deregistered, draining"))?;
        loop {
            let now = self.world.now;
            let draining = self.world.instances_of(physical).any(|instance| {
                matches!(instance.lifecycle, Lifecycle::Terminating { since } if now < since + DRAIN)
            });
            if !draining {
                break;
            }
            self.sleep("delete group: draining")?;
        }
        let failed = self.act_fails("removing the group's containers");
        if !failed {
            let ids: Vec<String> =
                self.world.instances_of(physical).map(|i| i.id.clone()).collect();
            for id in &ids {
                self.world.end(id);
            }
        }
        self.point(format!("delete group {physical}: containers removed"))?;
        if failed {
            return Ok(Err(format!("delete Auto Scaling group {physical}: engine error")));
        }
        Ok(Ok(()))
    }
}
