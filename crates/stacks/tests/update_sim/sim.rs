//! The simulation driver: a scenario (an update, and what is injected at
//! which step), the step counter every durable write, act and poll goes
//! through (`point`: invariants are checked there, then a crash, a fault or
//! a cancel is injected), the fleet's operations as the executor sees them,
//! and the daemon restart (`StackService::open`: re-adopt, sweep orphans,
//! resume from the store).

use std::collections::BTreeSet;

use autopatch_model::{ResourceStatus, StackStatus};
use autopatch_stacks::update::GroupPolicy;

use crate::invariants::Checker;
use crate::world::{
    ASG_TYPE, Fleet, GroupSpec, Image, Lifecycle, ORDER, POLL, RESTART_TAKES, Template, World,
};

/// A run that has not ended after this many steps is a livelock.
pub(crate) const STEP_BUDGET: usize = 1500;

/// A fault, injected at one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The next act fails (resolving an image, starting, updating or
    /// deleting a group, terminating an instance).
    ActFails,
    /// The newest instance launched by the update dies (its container exits).
    InstanceDies,
    /// The newest instance launched by the update that has not signalled
    /// yet signals FAILURE.
    FailureSignal,
}

/// What happens at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// `kill -9` of the daemon, then a restart.
    Crash,
    Fault(Fault),
    /// `CancelUpdateStack`: compare-and-set UPDATE_IN_PROGRESS →
    /// UPDATE_ROLLBACK_IN_PROGRESS.
    Cancel,
}

/// One simulated update.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    pub(crate) policy: GroupPolicy,
    /// The update's new image (the stack runs A before).
    pub(crate) image: Image,
    /// Step → what happens after it.
    pub(crate) events: Vec<(usize, Event)>,
    /// The group controllers tick every other poll only (a slow
    /// controller: the executor may look before it acted).
    pub(crate) lagging_controller: bool,
    /// `AutoScalingRollingUpdate.MinInstancesInService`.
    pub(crate) min_in_service: u32,
}

impl Scenario {
    pub(crate) fn new(policy: GroupPolicy, image: Image) -> Scenario {
        Scenario { policy, image, events: Vec::new(), lagging_controller: false, min_in_service: 1 }
    }

    pub(crate) fn at(mut self, step: usize, event: Event) -> Scenario {
        self.events.push((step, event));
        self
    }
}

/// Why the executor stopped before the operation's end.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The daemon died: every non-durable thing is dropped.
    Crash,
    /// An invariant was violated, or the planner asked for something
    /// impossible: the run is a failure (with the reason).
    Broken(String),
}

/// A failed run: why, and the trace of its steps.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) scenario: Scenario,
    pub(crate) message: String,
    pub(crate) trace: Vec<String>,
    /// What had just happened when each crash came.
    pub(crate) crashed_after: Vec<String>,
    /// The desired capacity the group's controller held at the failure.
    pub(crate) group_desired: Option<u32>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A long run (a livelock) shows how it began and how it goes on.
        let trace = if self.trace.len() <= 120 {
            self.trace.join("\n")
        } else {
            let tail = &self.trace[self.trace.len() - 20..];
            format!("{}\n...\n{}", self.trace[..100].join("\n"), tail.join("\n"))
        };
        write!(
            formatter,
            "{}\nscenario: {:?}\ncrashed after: {:?}\nthe group's desired capacity at the end: {:?}\ntrace (step, virtual time, stack status, what happened):\n{trace}",
            self.message, self.scenario, self.crashed_after, self.group_desired,
        )
    }
}

/// What a run did, for the terminal checks and the expectations.
#[derive(Debug, Default, Clone)]
pub(crate) struct Effects {
    /// A cancel's compare-and-set succeeded.
    pub(crate) cancelled: bool,
    /// The statuses in which a fault actually did something.
    pub(crate) faults: Vec<(Fault, StackStatus)>,
    /// What had just happened when each crash came.
    pub(crate) crashed_after: Vec<String>,
    /// Groups whose deletion failed (CloudFormation reports and goes on).
    pub(crate) failed_deletes: BTreeSet<String>,
}

pub(crate) struct Sim {
    pub(crate) scenario: Scenario,
    pub(crate) world: World,
    /// The daemon's fleet: replaced by an empty one on a crash.
    pub(crate) fleet: Fleet,
    pub(crate) step: usize,
    /// An `ActFails` fault waits for the next act.
    armed: bool,
    polls: u64,
    pub(crate) effects: Effects,
    pub(crate) checker: Checker,
    trace: Vec<String>,
}

impl Sim {
    /// A `CREATE_COMPLETE` stack on image A, and `UpdateStack` to the
    /// scenario's image (the store's part of it: the new template is
    /// current, the previous one kept, `UPDATE_IN_PROGRESS`).
    pub(crate) fn start(scenario: Scenario) -> Sim {
        let old = Template { image: Image::A, policy: scenario.policy };
        let (mut world, fleet) = World::created(old);
        let checker = Checker::new(&world, &fleet, &scenario);
        world.store.previous = Some(old);
        world.store.template = Template { image: scenario.image, policy: scenario.policy };
        world.store.status = StackStatus::UpdateInProgress;
        Sim {
            scenario,
            world,
            fleet,
            step: 0,
            armed: false,
            polls: 0,
            effects: Effects::default(),
            checker,
            trace: Vec::new(),
        }
    }

    /// Runs the operation to its end, restarting after each crash.
    pub(crate) fn run(&mut self) -> Result<StackStatus, Failure> {
        loop {
            let stopped = match self.run_operation() {
                Ok(status) => return Ok(status),
                Err(Stop::Crash) => match self.restart() {
                    Ok(()) => continue,
                    Err(stop) => stop,
                },
                Err(stop) => stop,
            };
            let message = match stopped {
                Stop::Broken(message) => message,
                Stop::Crash => "a crash during recovery".into(),
            };
            return Err(self.failure(message));
        }
    }

    /// The step right after which `what` first happened.
    pub(crate) fn step_of(&self, what: &str) -> Option<usize> {
        self.trace
            .iter()
            .find(|line| line.ends_with(what))
            .and_then(|line| line.split_whitespace().next().and_then(|step| step.parse().ok()))
    }

    /// A failure of this run, with its trace.
    pub(crate) fn failure(&self, message: String) -> Failure {
        Failure {
            scenario: self.scenario.clone(),
            message,
            trace: self.trace.clone(),
            crashed_after: self.effects.crashed_after.clone(),
            group_desired: self
                .world
                .store
                .row("ASG")
                .physical
                .and_then(|group| self.fleet.controllers.get(&group))
                .map(|spec| spec.desired),
        }
    }

    pub(crate) fn note(&mut self, what: String) {
        let line = format!(
            "{:>4} {:>4}s {:<44} {what}",
            self.step,
            self.world.now.as_secs(),
            self.world.store.status.as_str()
        );
        self.trace.push(line);
    }

    /// After every durable write, act or poll: the invariants hold; then
    /// what the scenario injects at this step happens.
    pub(crate) fn point(&mut self, what: impl Into<String>) -> Result<(), Stop> {
        self.step += 1;
        let what = what.into();
        self.note(what.clone());
        if let Err(violation) = self.checker.check(&self.world, &self.fleet, &self.effects) {
            return Err(Stop::Broken(format!("invariant violated: {violation}")));
        }
        if self.step > STEP_BUDGET {
            return Err(Stop::Broken(format!("no end after {STEP_BUDGET} steps: a livelock")));
        }
        let events: Vec<Event> = self
            .scenario
            .events
            .iter()
            .filter(|(step, _)| *step == self.step)
            .map(|(_, event)| *event)
            .collect();
        let mut crash = false;
        for event in events {
            match event {
                Event::Crash => crash = true,
                Event::Cancel => self.cancel(),
                Event::Fault(fault) => self.inject(fault),
            }
        }
        if crash {
            self.effects.crashed_after.push(what);
            self.note("CRASH: the daemon is killed".into());
            return Err(Stop::Crash);
        }
        Ok(())
    }

    fn cancel(&mut self) {
        let store = &mut self.world.store;
        if store.status == StackStatus::UpdateInProgress {
            store.status = StackStatus::UpdateRollbackInProgress;
            self.effects.cancelled = true;
            self.note("CANCEL: UPDATE_IN_PROGRESS → UPDATE_ROLLBACK_IN_PROGRESS".into());
        } else {
            self.note("CANCEL refused (not UPDATE_IN_PROGRESS)".into());
        }
    }

    fn inject(&mut self, fault: Fault) {
        let status = self.world.store.status;
        // Instances the update launched (the old group's stay untouched).
        let newest = |world: &World, unsignalled: bool| {
            world
                .instances
                .values()
                .filter(|instance| instance.is_live() && instance.died_at.is_none())
                .filter(|instance| !self.checker.is_original(&instance.id))
                .filter(|instance| !unsignalled || world.signal(instance).is_none())
                .map(|instance| instance.id.clone())
                .next_back()
        };
        match fault {
            Fault::ActFails => {
                self.armed = true;
                self.note("FAULT armed: the next act fails".into());
            }
            Fault::InstanceDies => {
                if let Some(id) = newest(&self.world, false) {
                    let now = self.world.now;
                    let instance = self.world.instances.get_mut(&id).expect("known");
                    instance.died_at = Some(now);
                    instance.ended_at = Some(now);
                    self.effects.faults.push((fault, status));
                    self.note(format!("FAULT: instance {id} dies"));
                }
            }
            Fault::FailureSignal => {
                if let Some(id) = newest(&self.world, true) {
                    self.world.instances.get_mut(&id).expect("known").forced_failure = true;
                    self.effects.faults.push((fault, status));
                    self.note(format!("FAULT: instance {id} signals FAILURE"));
                }
            }
        }
    }

    /// An act consults this: an armed `ActFails` fault makes it fail.
    pub(crate) fn act_fails(&mut self, act: &str) -> bool {
        if std::mem::take(&mut self.armed) {
            self.effects.faults.push((Fault::ActFails, self.world.store.status));
            self.note(format!("FAULT: {act} fails"));
            return true;
        }
        false
    }

    /// The executor's sleep: virtual time passes, the controllers tick.
    pub(crate) fn sleep(&mut self, what: &str) -> Result<(), Stop> {
        self.world.now += POLL;
        self.polls += 1;
        if !self.scenario.lagging_controller || self.polls.is_multiple_of(2) {
            for did in self.world.tick(&self.fleet) {
                self.note(did);
            }
        }
        self.point(what.to_owned())
    }

    // The fleet's operations (controller.rs), as the executor calls them.

    /// Starts the group's controller (idempotent); it adopts the group's
    /// running instances (registers them with the target group).
    pub(crate) fn start_group(&mut self, name: &str, spec: GroupSpec) -> Result<(), String> {
        if self.act_fails("starting the group") {
            return Err(format!("start Auto Scaling group {name}: engine error"));
        }
        if self.fleet.controllers.contains_key(name) {
            return Ok(());
        }
        self.fleet.controllers.insert(name.to_owned(), spec);
        let ids: Vec<String> = self.world.live_of(name).map(|i| i.id.clone()).collect();
        for id in ids {
            self.world.instances.get_mut(&id).expect("known").registered = true;
        }
        Ok(())
    }

    /// `UpdateAutoScalingGroup`: only a group whose controller runs here.
    pub(crate) fn update_group(&mut self, name: &str, spec: GroupSpec) -> Result<(), String> {
        if self.act_fails("updating the group") {
            return Err(format!("update Auto Scaling group {name}: engine error"));
        }
        match self.fleet.controllers.get_mut(name) {
            Some(current) => {
                *current = spec;
                Ok(())
            }
            None => Err(format!(
                "update Auto Scaling group {name}: Auto Scaling group {name} is not running here"
            )),
        }
    }

    /// `TerminateInstanceInAutoScalingGroup`.
    pub(crate) fn terminate_instance(
        &mut self,
        name: &str,
        id: &str,
        decrement: bool,
    ) -> Result<(), String> {
        if self.act_fails("terminating an instance") {
            return Err(format!("Auto Scaling group {name}: engine error"));
        }
        let Some(spec) = self.fleet.controllers.get_mut(name) else {
            return Err(format!("Auto Scaling group {name} is not running here"));
        };
        let live = self.world.instances.get(id).is_some_and(|i| i.group == name && i.is_live());
        if !live {
            return Err(format!("instance {id} of Auto Scaling group {name} is not InService"));
        }
        if decrement {
            spec.desired -= 1;
        }
        self.world.begin_termination(id);
        Ok(())
    }

    /// `kill -9` and a new daemon: the target groups adopt the targets that
    /// were healthy (the others are unknown until their group's controller
    /// observes them), then `StackService::open`'s recovery.
    pub(crate) fn restart(&mut self) -> Result<(), Stop> {
        let healthy: Vec<(String, bool)> = self
            .world
            .instances
            .values()
            .map(|instance| (instance.id.clone(), self.world.is_healthy(instance)))
            .collect();
        for (id, healthy) in healthy {
            self.world.instances.get_mut(&id).expect("known").registered = healthy;
        }
        self.fleet = Fleet::default();
        self.world.now += RESTART_TAKES;
        self.recover();
        self.note("restarted: recovery done, the operation resumes".into());
        self.checker.check(&self.world, &self.fleet, &self.effects).map_err(|violation| {
            Stop::Broken(format!("invariant violated after the restart: {violation}"))
        })
    }

    /// service.rs `recover`: adopt what an update replaced (it is the one
    /// serving), then what exists; remove instances of groups no row names.
    pub(crate) fn recover(&mut self) {
        let mut groups = Vec::new();
        for name in ORDER {
            let Some(row) = self.world.store.rows.get(name).cloned() else { continue };
            let is_group = row.resource_type == ASG_TYPE;
            if let Some(replaced) = &row.replaced
                && !replaced.deleting
                && let Some(physical) = &replaced.physical
            {
                if is_group {
                    groups.push(physical.clone());
                }
                self.adopt(row.resource_type, physical, &replaced.attributes);
            }
            let Some(physical) = &row.physical else { continue };
            if is_group && row.status.may_exist() {
                groups.push(physical.clone());
            }
            let exists = match row.status {
                ResourceStatus::CreateComplete | ResourceStatus::UpdateComplete => true,
                ResourceStatus::UpdateInProgress | ResourceStatus::UpdateFailed => {
                    row.replaced.as_ref().is_none_or(|replaced| replaced.restored)
                }
                _ => false,
            };
            if exists {
                self.adopt(row.resource_type, physical, &row.attributes);
            }
        }
        // fleet.remove_orphans(groups)
        let orphans: Vec<String> = self
            .world
            .instances
            .values()
            .filter(|instance| instance.lifecycle != Lifecycle::Terminated)
            .filter(|instance| !groups.contains(&instance.group))
            .filter(|instance| !self.fleet.controllers.contains_key(&instance.group))
            .map(|instance| instance.id.clone())
            .collect();
        for id in orphans {
            self.world.end(&id);
            self.note(format!("recovery: orphan {id} removed"));
        }
    }

    fn adopt(&mut self, resource_type: &str, physical: &str, attributes: &serde_json::Value) {
        if resource_type != ASG_TYPE {
            return;
        }
        match GroupSpec::from_json(attributes) {
            // Adoption does not go through faults: a fault is the executor's.
            Some(spec) => {
                if !self.fleet.controllers.contains_key(physical) {
                    self.fleet.controllers.insert(physical.to_owned(), spec);
                    let ids: Vec<String> =
                        self.world.live_of(physical).map(|i| i.id.clone()).collect();
                    for id in ids {
                        self.world.instances.get_mut(&id).expect("known").registered = true;
                    }
                }
                self.note(format!("recovery: group {physical} adopted"));
            }
            None => self.note(format!("recovery note: group {physical} has no record to adopt")),
        }
    }
}
