//! The invariants of ../shared/design.md section 4, as the simulations check
//! them: after every step ([`Checker::check`]) and at the end of a run
//! ([`Checker::check_end`]).

use std::collections::{BTreeMap, BTreeSet};

use autopatch_model::{ResourceStatus, StackStatus};
use autopatch_stacks::update::GroupPolicy;
use serde_json::Value as Json;

use crate::sim::{Effects, Fault, Scenario};
use crate::world::{DESIRED, Fleet, GroupSpec, Image, Template, World};

/// What the stack was before the update, and what the update must keep.
#[derive(Debug, Clone)]
pub(crate) struct Checker {
    policy: GroupPolicy,
    new_image: Image,
    /// Healthy targets the update never goes below: the desired capacity,
    /// or `MinInstancesInService` for a rolling update.
    floor: usize,
    rows_before: BTreeMap<String, (Option<String>, Json)>,
    template_before: Template,
    old_group: String,
    old_instances: BTreeSet<String>,
    old_spec: GroupSpec,
    last_healthy: usize,
    instance_faults_seen: usize,
}

impl Checker {
    pub(crate) fn new(world: &World, fleet: &Fleet, scenario: &Scenario) -> Checker {
        let policy = scenario.policy;
        let store = &world.store;
        let old_group = store.row("ASG").physical.expect("the group's physical id");
        let old_instances: BTreeSet<String> =
            world.live_of(&old_group).map(|instance| instance.id.clone()).collect();
        assert_eq!(old_instances.len(), DESIRED as usize, "the stack serves before the update");
        Checker {
            policy,
            new_image: scenario.image,
            floor: if policy == GroupPolicy::Rolling {
                scenario.min_in_service as usize
            } else {
                DESIRED as usize
            },
            rows_before: store
                .rows
                .iter()
                .map(|(name, row)| (name.clone(), (row.physical.clone(), row.properties.clone())))
                .collect(),
            template_before: store.template,
            old_spec: fleet.controllers[&old_group].clone(),
            old_group,
            old_instances,
            last_healthy: world.healthy_targets().len(),
            instance_faults_seen: 0,
        }
    }

    /// The instance served before the update.
    pub(crate) fn is_original(&self, id: &str) -> bool {
        self.old_instances.contains(id)
    }

    /// The old group still runs exactly its original instances, all
    /// healthy, with its original settings.
    fn old_group_intact(&self, world: &World, fleet: &Fleet) -> bool {
        let live: BTreeSet<String> =
            world.live_of(&self.old_group).map(|instance| instance.id.clone()).collect();
        live == self.old_instances
            && world.live_of(&self.old_group).all(|instance| world.is_healthy(instance))
            && fleet.controllers.get(&self.old_group).is_none_or(|spec| *spec == self.old_spec)
    }

    /// After every step.
    pub(crate) fn check(
        &mut self,
        world: &World,
        fleet: &Fleet,
        effects: &Effects,
    ) -> Result<(), String> {
        let status = world.store.status;
        let healthy = world.healthy_targets().len();
        let instance_faults =
            effects.faults.iter().filter(|(fault, _)| *fault == Fault::InstanceDies).count();
        let killed_since_last = instance_faults > self.instance_faults_seen;
        let last_healthy = std::mem::replace(&mut self.last_healthy, healthy);
        self.instance_faults_seen = instance_faults;

        // Capacity: the target group routes to at least the floor. An
        // instance killed by a fault may take it lower; the update itself
        // never does.
        if healthy < self.floor {
            if instance_faults == 0 {
                return Err(format!("{healthy} healthy target(s), fewer than {}", self.floor));
            }
            let replacing_after_gate = self.policy == GroupPolicy::Replacing
                && matches!(
                    status,
                    StackStatus::UpdateCompleteCleanupInProgress | StackStatus::UpdateComplete
                );
            if healthy < last_healthy && !killed_since_last && !replacing_after_gate {
                return Err(format!(
                    "the update took the healthy targets from {last_healthy} to {healthy}, below {}",
                    self.floor
                ));
            }
        }

        match self.policy {
            // Invariant 1: the old group serves, untouched, until the new
            // group has met its gate (only the cleanup after it deletes it).
            GroupPolicy::Replacing => {
                let after_gate = matches!(
                    status,
                    StackStatus::UpdateCompleteCleanupInProgress | StackStatus::UpdateComplete
                );
                if !after_gate && !self.old_group_intact(world, fleet) {
                    return Err(format!(
                        "the old group {} is not intact in {status} (its original instances {:?}, healthy, its settings {:?})",
                        self.old_group, self.old_instances, self.old_spec
                    ));
                }
            }
            // Without an update policy the instances are never replaced.
            GroupPolicy::None => {
                let live: BTreeSet<String> =
                    world.live_of(&self.old_group).map(|instance| instance.id.clone()).collect();
                if live != self.old_instances {
                    return Err(format!(
                        "an update without an UpdatePolicy replaced instances: {live:?}"
                    ));
                }
            }
            // A rolling update keeps its group; the capacity rule above is
            // invariant 2 (floor 1).
            GroupPolicy::Rolling => {
                let row = world.store.row("ASG");
                if row.physical.as_deref() != Some(self.old_group.as_str())
                    || row.replaced.is_some()
                {
                    return Err(format!("a rolling update replaced the group: {row:?}"));
                }
            }
        }

        // No orphans: every group is some row's, current or replaced (a
        // group whose deletion failed is reported and may stay, not serving).
        let named = world.store.named();
        for group in world.groups(fleet) {
            if named.contains(&group) {
                continue;
            }
            if !effects.failed_deletes.contains(&group) {
                return Err(format!("group {group} is named by no row (an orphan)"));
            }
            if world.instances_of(&group).any(|instance| instance.registered) {
                return Err(format!("group {group}, left by a failed delete, still serves"));
            }
        }
        Ok(())
    }

    /// At the end of a run: invariants 3, 4 and 5.
    pub(crate) fn check_end(
        &self,
        world: &World,
        fleet: &Fleet,
        effects: &Effects,
        status: StackStatus,
    ) -> Result<(), String> {
        let store = &world.store;
        for (name, row) in &store.rows {
            if row.replaced.is_some() {
                return Err(format!("{name} still holds a replaced resource: {row:?}"));
            }
            if !matches!(
                row.status,
                ResourceStatus::CreateComplete | ResourceStatus::UpdateComplete
            ) {
                return Err(format!("{name} is not settled: {row:?}"));
            }
        }
        if store.previous.is_some() {
            return Err("the previous template is still kept".into());
        }
        let groups: BTreeSet<String> = world
            .groups(fleet)
            .into_iter()
            .filter(|group| !effects.failed_deletes.contains(group))
            .collect();
        let group_row = store.row("ASG");
        let group = group_row.physical.clone().unwrap_or_default();
        if groups != BTreeSet::from([group.clone()]) {
            return Err(format!("groups {groups:?} remain, expected exactly {group}"));
        }
        let Some(spec) = fleet.controllers.get(&group) else {
            return Err(format!("no controller runs group {group}"));
        };
        let live: Vec<_> = world.live_of(&group).collect();
        let live_ids: BTreeSet<String> = live.iter().map(|instance| instance.id.clone()).collect();
        match status {
            // Invariant 3: exactly the old group, as it was.
            StackStatus::UpdateRollbackComplete => {
                if store.template != self.template_before {
                    return Err(format!("the template is {:?} after the rollback", store.template));
                }
                let rows: BTreeMap<String, (Option<String>, Json)> = store
                    .rows
                    .iter()
                    .map(|(name, row)| {
                        (name.clone(), (row.physical.clone(), row.properties.clone()))
                    })
                    .collect();
                if rows != self.rows_before {
                    return Err(format!(
                        "the rows differ from before the update:\n  before {:?}\n  after  {rows:?}",
                        self.rows_before
                    ));
                }
                if *spec != self.old_spec {
                    return Err(format!(
                        "the old group runs with {spec:?}, not {:?}",
                        self.old_spec
                    ));
                }
                if self.policy == GroupPolicy::Rolling {
                    // A rolled back rolling update relaunches on A.
                    let on_a = live
                        .iter()
                        .all(|i| i.image == Image::A && i.launch == self.old_spec.launch);
                    if live.len() != DESIRED as usize || !on_a {
                        return Err(format!("the rolled back group runs {live:?}"));
                    }
                } else if live_ids != self.old_instances {
                    return Err(format!(
                        "the old group runs {live_ids:?}, not its original instances {:?}",
                        self.old_instances
                    ));
                }
            }
            // Invariant 4: one group, every instance on the new image.
            StackStatus::UpdateComplete => {
                let launch = store.row("LC").physical.unwrap_or_default();
                if store.template.image != self.new_image {
                    return Err(format!("the template is {:?} after the update", store.template));
                }
                if spec.launch != launch || spec.image != self.new_image {
                    return Err(format!("the group runs with {spec:?}, not launch {launch}"));
                }
                if self.policy == GroupPolicy::None {
                    // CloudFormation leaves the instances; new ones get B.
                    if live_ids != self.old_instances {
                        return Err(format!("instances {live_ids:?} changed without a policy"));
                    }
                } else {
                    let on_new =
                        live.iter().all(|i| i.image == self.new_image && i.launch == launch);
                    if live.len() != DESIRED as usize || !on_new {
                        return Err(format!("the updated group runs {live:?}"));
                    }
                }
                if self.policy == GroupPolicy::Replacing && group == self.old_group {
                    return Err("a replacing update kept the old group".into());
                }
            }
            other => return Err(format!("the update ended {other}")),
        }
        Ok(())
    }
}
