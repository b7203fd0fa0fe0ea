//! The fleet controller: one reconcile loop per Auto Scaling group.
//!
//! Every `interval` (or at once when woken), a group's loop observes (its
//! containers by the `autopatch.group` label, its live rows, what its target
//! groups say), asks [`plan`](crate::plan::plan) what to do, and applies the
//! actions, writing each transition to the store before acting. A failed
//! action is recorded and planned again on a later tick; failed launches
//! back off (the loop's interval, doubling, up to five minutes).
//!
//! Design notes:
//!
//! - Observation also repairs what a restart interrupted: a `Pending` row
//!   whose container runs is put in service, a running in-service instance
//!   unknown to a target group is registered again, and a container of the
//!   group without a live row is removed.
//! - Only a group's own loop launches and finishes terminations while it
//!   runs; `delete_group` and `stop` end the loop (letting its current tick
//!   finish) before acting, and `remove_orphans` leaves running groups alone.
//!   A deletion the engine failed part way is finished by a retry task of its
//!   own; it only touches rows already terminating and containers of a group
//!   whose loop has ended.
//!   [`Fleet::terminate_instance`] only begins a termination (recorded,
//!   deregistered) under the group's state lock, like the loop does; the loop
//!   finishes it.
//! - A tick's plan may go stale while it is applied: an operation that
//!   changes the group (`set_desired_capacity`, `update_group`,
//!   `terminate_instance`) bumps the group's generation, and the tick then
//!   skips its remaining launches and scale-in terminations (the operation
//!   woke the loop, which plans again at once). The plan's view is built under
//!   the state lock and counts instances a caller began terminating as
//!   terminating, so a decrement and the instance it removes are seen
//!   together.
//! - Time is `tokio::time` only, measured from the fleet's creation, so tests
//!   can pause it. An adopted instance's grace period starts at adoption: a
//!   restarted daemon's target groups put the targets the previous one saw
//!   healthy back in service at once, but check every target from then on.
//! - Every change to an instance (launched, adopted, terminating,
//!   terminated, removed as an orphan) and every failed launch is a `log`
//!   record with the fields `stack`, `group`, `instance` and `reason` where
//!   they apply (the daemon writes them to its log). A loop's other failures
//!   are logged when they differ from the previous one, so an engine that
//!   stays down is one line, not one a second.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use autopatch_engine::{ContainerInfo, ContainerState, Engine};
use autopatch_store::{InstanceRow, LifecycleState, Store};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{EngineContext, StoreContext, error_chain};
use crate::launch::{
    Context, GROUP_LABEL, GroupSpec, INSTANCE_LABEL, INSTANCE_ROLE, OWNER_LABEL, ROLE_LABEL,
    begin_termination, complete_launch, finish_termination, launch,
};
use crate::metadata::InstanceFolder;
use crate::plan::{Action, ContainerStatus, GroupView, InstanceView, combine_target_states, plan};
use crate::signal::Signal;
use crate::signal_store::{archive_signals, signals_of};
use crate::{FleetError, clock};

/// How long a terminating instance may drain in the loop before it is
/// stopped anyway: the longest deregistration delay an ALB allows (3600 s).
/// The target group normally lets it go much sooner.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3600);

/// The longest wait between launch attempts after failures.
const MAX_LAUNCH_BACKOFF: Duration = Duration::from_secs(300);

/// The shortest loop interval (a zero interval would spin).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// How often `delete_group` asks the target groups whether draining ended.
const DRAIN_POLL: Duration = Duration::from_millis(200);

/// The first and the longest wait between attempts to finish a group
/// deletion that failed part way (the engine did not answer, say).
const FIRST_REAP_RETRY: Duration = Duration::from_secs(1);
const MAX_REAP_RETRY: Duration = Duration::from_secs(30);

/// What a fleet needs of a load balancer target group.
pub trait TargetGroupHandle: Send + Sync {
    /// Starts sending the instance traffic (after its health checks pass).
    fn register(&self, instance_id: &str, addr: SocketAddr);
    /// Stops sending the instance new requests; it drains, then is forgotten.
    fn deregister(&self, instance_id: &str);
    /// "initial", "healthy", "unhealthy", "draining", "unused"; None when not registered at all.
    fn state(&self, instance_id: &str) -> Option<String>;
}

/// A running group's controller state, as [`Fleet::group_status`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStatus {
    /// The spec the controller runs, with the current desired capacity.
    pub spec: GroupSpec,
    /// Launches that failed in a row (0 after a success).
    pub launch_failures: u32,
    /// The last failure (of a launch, a termination or an observation),
    /// until the next successful launch.
    pub last_error: Option<String>,
}

/// Instances and Auto Scaling groups on a container engine. Cheap to clone:
/// clones share the same controllers.
pub struct Fleet<E: Engine> {
    inner: Arc<Inner<E>>,
}

impl<E: Engine> Clone for Fleet<E> {
    fn clone(&self) -> Self {
        Fleet { inner: Arc::clone(&self.inner) }
    }
}

impl<E: Engine> std::fmt::Debug for Fleet<E> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups: Vec<String> = lock(&self.inner.groups).keys().cloned().collect();
        formatter
            .debug_struct("Fleet")
            .field("instances_dir", &self.inner.shared.instances_dir)
            .field("groups", &groups)
            .finish_non_exhaustive()
    }
}

struct Inner<E> {
    shared: Arc<Shared<E>>,
    groups: Mutex<BTreeMap<String, GroupHandle>>,
    /// Deleted groups whose instances could not all be terminated: a task
    /// per group tries again until they are (see [`Fleet::delete_group`]).
    reapers: Mutex<BTreeMap<String, JoinHandle<()>>>,
}

impl<E> Drop for Inner<E> {
    /// A fleet dropped without [`Fleet::stop`] still ends its loops.
    fn drop(&mut self) {
        for handle in lock(&self.groups).values() {
            handle.group.stop.send_replace(true);
        }
        for reaper in lock(&self.reapers).values() {
            reaper.abort();
        }
    }
}

/// What every group's loop shares.
struct Shared<E> {
    engine: Arc<E>,
    store: Arc<Store>,
    instances_dir: PathBuf,
    interval: Duration,
    epoch: Instant,
    host_cores: usize,
    changes: watch::Sender<u64>,
}

impl<E: Engine> Shared<E> {
    /// Time since the fleet was created, in tokio time.
    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.epoch)
    }

    fn context(&self) -> Context<'_, E> {
        Context {
            engine: self.engine.as_ref(),
            store: self.store.as_ref(),
            instances_dir: &self.instances_dir,
            host_cores: self.host_cores,
        }
    }

    fn changed(&self) {
        self.changes.send_modify(|generation| *generation += 1);
    }
}

struct GroupHandle {
    group: Arc<Group>,
    task: Option<JoinHandle<()>>,
}

impl GroupHandle {
    /// Ends the loop, letting its current tick finish.
    async fn stop(self) {
        self.group.stop.send_replace(true);
        if let Some(task) = self.task {
            // A panicked loop has nothing left to stop.
            let _ = task.await;
        }
    }
}

/// One group's controller.
struct Group {
    state: Mutex<GroupState>,
    wake: Notify,
    stop: watch::Sender<bool>,
}

struct GroupState {
    spec: GroupSpec,
    target_groups: Vec<Arc<dyn TargetGroupHandle>>,
    /// When each live instance was launched or adopted (fleet time).
    launched_at: BTreeMap<String, Duration>,
    /// When each terminating instance began terminating (fleet time).
    terminating_since: BTreeMap<String, Duration>,
    launch_failures: u32,
    launch_allowed_at: Duration,
    last_error: Option<String>,
    /// Bumped by every operation that changes the group from outside its
    /// loop (see the module notes).
    generation: u64,
}

impl Group {
    fn state(&self) -> MutexGuard<'_, GroupState> {
        lock(&self.state)
    }

    /// Records a failure of the loop, and logs it unless it repeats the last one.
    fn record_error(&self, error: &FleetError) {
        let message = error_chain(error);
        let mut state = self.state();
        if state.last_error.as_ref() != Some(&message) {
            log::warn!(
                stack = stack_name(state.spec.stack_id.as_deref()),
                group = state.spec.name.as_str(),
                reason = message.as_str();
                "Auto Scaling group reconcile failed"
            );
        }
        state.last_error = Some(message);
    }
}

/// The stack's name for log lines: a stack id is
/// `arn:aws:cloudformation:<region>:<account>:stack/<name>/<id>`; "-" when
/// the group belongs to no stack.
fn stack_name(stack_id: Option<&str>) -> &str {
    match stack_id {
        Some(stack_id) => stack_id
            .split_once(":stack/")
            .and_then(|(_, rest)| rest.split('/').next())
            .unwrap_or(stack_id),
        None => "-",
    }
}

/// Locks a mutex; a panic while it was held leaves plain data that is still
/// usable, so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<E: Engine + 'static> Fleet<E> {
    /// A fleet over `engine` and `store`, keeping instance folders in
    /// `instances_dir` (made absolute, since containers mount them), whose
    /// group loops look at their instances every `interval` (at least 10 ms).
    pub fn new(
        engine: Arc<E>,
        store: Arc<Store>,
        instances_dir: PathBuf,
        interval: Duration,
    ) -> Self {
        // Bind mounts need an absolute path; `absolute` fails only on an
        // empty path, which the current directory stands for.
        let instances_dir = std::path::absolute(&instances_dir).unwrap_or(instances_dir);
        let host_cores = std::thread::available_parallelism().map_or(1, usize::from);
        // A zero interval would make every loop spin.
        let interval = interval.max(MIN_INTERVAL);
        let shared = Shared {
            engine,
            store,
            instances_dir,
            interval,
            epoch: Instant::now(),
            host_cores,
            changes: watch::Sender::new(0),
        };
        Fleet {
            inner: Arc::new(Inner {
                shared: Arc::new(shared),
                groups: Mutex::new(BTreeMap::new()),
                reapers: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The labels that say this fleet owns an engine object: the
    /// [`crate::OWNER_LABEL`] every instance container carries (its
    /// instances folder, one per state directory). For the other objects
    /// made for its stacks, such as their networks, so that they can be found
    /// by label and attributed to a state directory like its instances.
    pub fn ownership_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(
            crate::OWNER_LABEL.to_owned(),
            self.inner.shared.instances_dir.display().to_string(),
        )])
    }

    /// Starts the group's controller. Instances of this group already in the
    /// store whose containers still run are ADOPTED (re-registered with the
    /// target groups, not relaunched); dead ones are replaced. Idempotent per
    /// group name: a group already running is left as it is.
    pub async fn start_group(
        &self,
        spec: GroupSpec,
        target_groups: Vec<Arc<dyn TargetGroupHandle>>,
    ) -> Result<(), FleetError> {
        spec.validate(!target_groups.is_empty())?;
        let name = spec.name.clone();
        let group = {
            let mut groups = lock(&self.inner.groups);
            if groups.contains_key(&name) {
                return Ok(());
            }
            let group = Arc::new(Group {
                state: Mutex::new(GroupState {
                    spec,
                    target_groups,
                    launched_at: BTreeMap::new(),
                    terminating_since: BTreeMap::new(),
                    launch_failures: 0,
                    launch_allowed_at: Duration::ZERO,
                    last_error: None,
                    generation: 0,
                }),
                wake: Notify::new(),
                stop: watch::Sender::new(false),
            });
            groups.insert(name.clone(), GroupHandle { group: Arc::clone(&group), task: None });
            group
        };
        // Adoption: the first observation, before the first tick, so target
        // groups know running instances at once.
        let adopted = match observe(&self.inner.shared, &group).await {
            Ok(views) => views,
            Err(error) => {
                lock(&self.inner.groups).remove(&name);
                return Err(error);
            }
        };
        {
            let state = group.state();
            for instance in adopted.iter().filter(|instance| {
                instance.lifecycle == LifecycleState::InService
                    && instance.container == ContainerStatus::Running
            }) {
                log::info!(
                    stack = stack_name(state.spec.stack_id.as_deref()),
                    group = name.as_str(),
                    instance = instance.instance_id.as_str(),
                    zone = instance.zone.as_str(),
                    image = instance.image.as_str();
                    "instance adopted"
                );
            }
        }
        let task = tokio::spawn(run(Arc::clone(&self.inner.shared), Arc::clone(&group)));
        match lock(&self.inner.groups).get_mut(&name) {
            Some(handle) if Arc::ptr_eq(&handle.group, &group) => handle.task = Some(task),
            // Deleted or stopped meanwhile: the stop flag is already set.
            _ => {
                group.stop.send_replace(true);
            }
        }
        self.inner.shared.changed();
        Ok(())
    }

    /// Sets a running group's desired capacity (within its min and max size)
    /// and wakes its loop.
    pub fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<(), FleetError> {
        let groups = lock(&self.inner.groups);
        let handle = groups
            .get(group)
            .ok_or_else(|| FleetError::UnknownGroup { group: group.to_string() })?;
        {
            let mut state = handle.group.state();
            let (min_size, max_size) = (state.spec.min_size, state.spec.max_size);
            if !(min_size..=max_size).contains(&desired) {
                return Err(FleetError::DesiredCapacityOutOfRange {
                    group: group.to_string(),
                    desired,
                    min_size,
                    max_size,
                });
            }
            state.spec.desired_capacity = desired;
            state.generation += 1;
        }
        handle.group.wake.notify_one();
        self.inner.shared.changed();
        Ok(())
    }

    /// Replaces a running group's spec, like `UpdateAutoScalingGroup`: the
    /// group is `spec.name`; its launch template, sizes, desired capacity,
    /// health checks, tags and zones become `spec`'s. Validated like
    /// [`Fleet::start_group`] (the desired capacity within the new min and
    /// max size). Instances keep running as they are: only instances
    /// launched from now on use the new launch template (a launch already
    /// under way finishes with the one it began with). The target groups stay
    /// as they were. A new launch template also ends a launch backoff, so a
    /// fixed image is tried at once. Wakes the loop.
    pub fn update_group(&self, spec: GroupSpec) -> Result<(), FleetError> {
        let groups = lock(&self.inner.groups);
        let handle = groups
            .get(&spec.name)
            .ok_or_else(|| FleetError::UnknownGroup { group: spec.name.clone() })?;
        {
            let mut state = handle.group.state();
            spec.validate(!state.target_groups.is_empty())?;
            if spec.launch != state.spec.launch {
                state.launch_failures = 0;
                state.launch_allowed_at = Duration::ZERO;
            }
            state.spec = spec;
            state.generation += 1;
        }
        handle.group.wake.notify_one();
        self.inner.shared.changed();
        Ok(())
    }

    /// Terminates one in-service instance of a running group, like
    /// `TerminateInstanceInAutoScalingGroup`. The termination is recorded
    /// (`Terminating`) and the instance deregistered from the group's target
    /// groups before this returns; the loop then stops and removes it once
    /// the target groups let it go (their deregistration delay), as for the
    /// instances it terminates itself. With
    /// `should_decrement_desired_capacity` the desired capacity drops by one
    /// (refused when it would go below the min size); otherwise the loop
    /// launches a replacement from the current launch template. Refused for
    /// an instance of another group or none, and for one that is not
    /// `InService` (still launching, or already terminating).
    pub fn terminate_instance(
        &self,
        group: &str,
        instance_id: &str,
        should_decrement_desired_capacity: bool,
    ) -> Result<(), FleetError> {
        let groups = lock(&self.inner.groups);
        let handle = groups
            .get(group)
            .ok_or_else(|| FleetError::UnknownGroup { group: group.to_string() })?;
        let shared = &self.inner.shared;
        {
            // The state lock orders this against the loop's own terminations
            // and its view (see the module notes).
            let mut state = handle.group.state();
            let row = shared.store.instance(instance_id).store_context("reading", instance_id)?;
            let row = row.filter(|row| row.group_name == group).ok_or_else(|| {
                FleetError::InstanceNotInGroup {
                    group: group.to_string(),
                    instance_id: instance_id.to_string(),
                }
            })?;
            let lifecycle = if state.terminating_since.contains_key(instance_id) {
                LifecycleState::Terminating
            } else {
                row.lifecycle
            };
            if lifecycle != LifecycleState::InService {
                return Err(FleetError::InstanceNotInService {
                    group: group.to_string(),
                    instance_id: instance_id.to_string(),
                    lifecycle,
                });
            }
            let desired = state.spec.desired_capacity;
            let reason = if should_decrement_desired_capacity {
                if desired <= state.spec.min_size {
                    return Err(FleetError::DecrementBelowMinSize {
                        group: group.to_string(),
                        instance_id: instance_id.to_string(),
                        desired,
                        min_size: state.spec.min_size,
                    });
                }
                format!("a user request, shrinking the capacity from {desired} to {}", desired - 1)
            } else {
                "a user request (a replacement is launched)".to_string()
            };
            begin_termination(&shared.store, instance_id, &reason, false, &state.target_groups)?;
            log::info!(
                stack = stack_name(state.spec.stack_id.as_deref()),
                group = group,
                instance = instance_id,
                reason = reason.as_str();
                "instance terminating"
            );
            state.terminating_since.insert(instance_id.to_string(), shared.now());
            if should_decrement_desired_capacity {
                state.spec.desired_capacity = desired - 1;
            }
            state.generation += 1;
        }
        handle.group.wake.notify_one();
        shared.changed();
        Ok(())
    }

    /// The group's live (not terminated) instances, oldest launch first,
    /// whether or not its controller runs.
    pub fn instances(&self, group: &str) -> Result<Vec<InstanceRow>, FleetError> {
        self.inner.shared.store.instances_of_group(group, false).store_context("listing", group)
    }

    /// cfn-signal calls made by the group's instances, oldest first (read
    /// from their folders, and from the store for terminated instances; they
    /// survive daemon restarts since they are files and rows).
    pub fn signals(&self, group: &str) -> Result<Vec<Signal>, FleetError> {
        let shared = &self.inner.shared;
        let rows = shared.store.instances_of_group(group, true).store_context("listing", group)?;
        signals_of(&shared.store, &shared.instances_dir, &rows)
    }

    /// The host folder of an instance (metadata, signals, logs).
    pub fn instance_dir(&self, instance_id: &str) -> PathBuf {
        self.inner.shared.instances_dir.join(instance_id)
    }

    /// A running group's controller state; `None` when its controller does
    /// not run here.
    pub fn group_status(&self, group: &str) -> Option<GroupStatus> {
        let groups = lock(&self.inner.groups);
        let state = groups.get(group)?.group.state();
        Some(GroupStatus {
            spec: state.spec.clone(),
            launch_failures: state.launch_failures,
            last_error: state.last_error.clone(),
        })
    }

    /// A receiver that changes whenever a group's instances or settings do
    /// (a generation number), to wait for changes without polling.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.shared.changes.subscribe()
    }

    /// Stops managing `group`: ends a delete's retry left for it and its
    /// controller. Returns the target groups its instances were in.
    async fn stop_managing(&self, group: &str) -> Vec<Arc<dyn TargetGroupHandle>> {
        let reaper = lock(&self.inner.reapers).remove(group);
        if let Some(reaper) = reaper {
            reaper.abort();
            let _ = reaper.await;
        }
        let handle = lock(&self.inner.groups).remove(group);
        match handle {
            Some(handle) => {
                let target_groups = handle.group.state().target_groups.clone();
                handle.stop().await;
                target_groups
            }
            None => Vec::new(),
        }
    }

    /// Terminates every instance (deregister, wait until the target is gone
    /// or `drain_timeout`, stop, remove, folder removed), stops the
    /// controller, leaves nothing. Works for groups whose controller does not
    /// run (after a restart) too; deleting a group with no instances is fine.
    ///
    /// When an instance cannot be stopped or removed (the engine does not
    /// answer), the error is returned and a task keeps trying, backing off
    /// from 1 s to 30 s, until every instance is gone; deleting the group
    /// again takes over from it, and [`Fleet::stop`] ends it (the next
    /// start's [`Fleet::remove_orphans`] finishes the job).
    pub async fn delete_group(
        &self,
        group: &str,
        drain_timeout: Duration,
    ) -> Result<(), FleetError> {
        // A retry left by an earlier delete of this group gives way to this one.
        let target_groups = self.stop_managing(group).await;
        let shared = &self.inner.shared;
        let rows = shared.store.instances_of_group(group, false).store_context("listing", group)?;
        for row in &rows {
            if row.lifecycle == LifecycleState::Terminating {
                for target_group in &target_groups {
                    target_group.deregister(&row.instance_id);
                }
            } else {
                let reason = "the Auto Scaling group is being deleted";
                begin_termination(&shared.store, &row.instance_id, reason, false, &target_groups)?;
                log::info!(
                    stack = stack_name(row.stack_id.as_deref()),
                    group = group,
                    instance = row.instance_id.as_str(),
                    reason = reason;
                    "instance terminating"
                );
            }
        }
        shared.changed();
        let deadline = Instant::now() + drain_timeout;
        loop {
            let draining = rows.iter().any(|row| {
                target_groups.iter().any(|target_group| {
                    target_group.state(&row.instance_id).is_some_and(|state| state != "unused")
                })
            });
            let now = Instant::now();
            if !draining || now >= deadline {
                break;
            }
            tokio::time::sleep(DRAIN_POLL.min(deadline - now)).await;
        }
        let finished = terminate_the_rest(shared, group).await;
        shared.changed();
        if let Err(error) = &finished {
            log::warn!(
                group = group,
                reason:% = error_chain(error);
                "Auto Scaling group deletion incomplete; trying again until its instances are gone"
            );
            // The stack records the failure; the instances must not outlive it
            // until the next daemon start's orphan sweep.
            let shared = Arc::clone(shared);
            let name = group.to_owned();
            let reaper = tokio::spawn(async move {
                let mut wait = FIRST_REAP_RETRY;
                loop {
                    tokio::time::sleep(wait).await;
                    if terminate_the_rest(&shared, &name).await.is_ok() {
                        shared.changed();
                        log::info!(group = name.as_str(); "Auto Scaling group deletion finished");
                        return;
                    }
                    wait = (wait * 2).min(MAX_REAP_RETRY);
                }
            });
            if let Some(previous) = lock(&self.inner.reapers).insert(group.to_owned(), reaper) {
                previous.abort();
            }
        }
        finished
    }

    /// Lets a group go without deleting it (its stack retains it:
    /// `DeletionPolicy: Retain`): the controller stops, the instances leave
    /// their target groups, and their containers keep running, unmanaged.
    /// Each instance's row ends `Terminated` with `reason` (the fleet no
    /// longer has it: nothing replaces, checks or counts it) and its folder
    /// is marked retained, so [`Fleet::remove_orphans`] leaves the container
    /// and the folder alone until the container is gone. Instances that were
    /// already terminating are terminated as usual. Returns the ids of the
    /// instances retained.
    pub async fn release_group(
        &self,
        group: &str,
        reason: &str,
    ) -> Result<Vec<String>, FleetError> {
        // A retry left by an earlier delete of this group stops terminating.
        let target_groups = self.stop_managing(group).await;
        let shared = &self.inner.shared;
        let context = shared.context();
        let rows = shared.store.instances_of_group(group, false).store_context("listing", group)?;
        let mut retained = Vec::new();
        for row in &rows {
            for target_group in &target_groups {
                target_group.deregister(&row.instance_id);
            }
            let stack = stack_name(row.stack_id.as_deref());
            if row.lifecycle == LifecycleState::Terminating {
                finish_termination(&context, &row.instance_id, None).await?;
                log::info!(stack, group = group, instance = row.instance_id.as_str(); "instance terminated");
                continue;
            }
            let folder = InstanceFolder::new(&shared.instances_dir, &row.instance_id);
            folder.mark_retained(&format!("group={group}\nreason={reason}"))?;
            shared
                .store
                .set_instance_lifecycle(
                    &row.instance_id,
                    LifecycleState::Terminated,
                    Some(reason),
                    clock::now(),
                )
                .store_context("recording the release of", &row.instance_id)?;
            log::info!(
                stack,
                group = group,
                instance = row.instance_id.as_str(),
                reason = reason;
                "instance retained: it runs on, no longer managed"
            );
            retained.push(row.instance_id.clone());
        }
        shared.changed();
        Ok(retained)
    }

    /// Daemon shutdown: stops every controller (each finishes its current
    /// tick), keeps the instances running for the next start to adopt.
    pub async fn stop(&self) {
        let handles: Vec<GroupHandle> =
            std::mem::take(&mut *lock(&self.inner.groups)).into_values().collect();
        for handle in handles {
            handle.stop().await;
        }
        // What they had left to terminate the next start's orphan sweep finds.
        let reapers: Vec<JoinHandle<()>> =
            std::mem::take(&mut *lock(&self.inner.reapers)).into_values().collect();
        for reaper in reapers {
            reaper.abort();
            let _ = reaper.await;
        }
    }

    /// Removes this fleet's containers (labelled `autopatch.role=instance`
    /// and `autopatch.fleet=<its instances folder>`: other state
    /// directories' instances are never touched) whose instance
    /// row is missing or `Terminated`, or whose group is not in
    /// `known_groups`; marks rows of vanished containers `Terminated`; removes
    /// instance folders without a live row. Groups whose controller runs here
    /// are left to it, and so are retained instances
    /// ([`Fleet::release_group`]) while their containers exist. Returns the
    /// names of the containers it removed.
    pub async fn remove_orphans(&self, known_groups: &[String]) -> Result<Vec<String>, FleetError> {
        let shared = &self.inner.shared;
        let running_groups: Vec<String> = lock(&self.inner.groups).keys().cloned().collect();
        let owned =
            |group: Option<&String>| group.is_some_and(|group| running_groups.contains(group));
        let containers = shared
            .engine
            .container_list(&[
                (ROLE_LABEL.to_string(), INSTANCE_ROLE.to_string()),
                (OWNER_LABEL.to_string(), shared.instances_dir.display().to_string()),
            ])
            .await
            .engine_context("listing", "instance containers")?;
        let context = shared.context();
        let mut removed = Vec::new();
        let mut present = Vec::new();
        // Instances a retained group left running: not orphans.
        let mut retained = Vec::new();
        for container in &containers {
            let group = container.labels.get(GROUP_LABEL);
            if owned(group) {
                continue;
            }
            let instance_id = container.labels.get(INSTANCE_LABEL);
            if let Some(id) = instance_id
                && InstanceFolder::new(&shared.instances_dir, id).is_retained()
            {
                retained.push(id.clone());
                continue;
            }
            let row = match instance_id {
                Some(id) => shared.store.instance(id).store_context("reading", id)?,
                None => None,
            };
            let known = group.is_some_and(|group| known_groups.contains(group));
            match row {
                Some(row) if row.lifecycle != LifecycleState::Terminated && known => {
                    present.push(row.instance_id);
                }
                Some(row) if row.lifecycle != LifecycleState::Terminated => {
                    let reason = format!("its Auto Scaling group {} is gone", row.group_name);
                    begin_termination(&shared.store, &row.instance_id, &reason, false, &[])?;
                    finish_termination(&context, &row.instance_id, None).await?;
                    let stack = stack_name(row.stack_id.as_deref());
                    log::info!(
                        stack,
                        group = row.group_name.as_str(),
                        instance = row.instance_id.as_str(),
                        container = container.name.as_str(),
                        reason = reason.as_str();
                        "orphaned instance removed"
                    );
                    // Its row is Terminated now: every termination ends with this line.
                    log::info!(
                        stack,
                        group = row.group_name.as_str(),
                        instance = row.instance_id.as_str();
                        "instance terminated"
                    );
                    removed.push(container.name.clone());
                }
                row => {
                    shared
                        .engine
                        .container_remove(&container.id)
                        .await
                        .engine_context("removing", &container.name)?;
                    let reason = if row.is_some() {
                        "its instance was terminated"
                    } else {
                        "no instance of this state directory is recorded for it"
                    };
                    log::info!(
                        group = group.map_or("-", String::as_str),
                        instance = instance_id.map_or("-", String::as_str),
                        container = container.name.as_str(),
                        reason = reason;
                        "orphaned instance container removed"
                    );
                    removed.push(container.name.clone());
                }
            }
        }
        // Rows whose containers vanished.
        let live = shared.store.live_instances().store_context("listing", "live instances")?;
        for row in live {
            if owned(Some(&row.group_name)) || present.contains(&row.instance_id) {
                continue;
            }
            let reason = "its container vanished";
            begin_termination(&shared.store, &row.instance_id, reason, false, &[])?;
            finish_termination(&context, &row.instance_id, None).await?;
            log::warn!(
                stack = stack_name(row.stack_id.as_deref()),
                group = row.group_name.as_str(),
                instance = row.instance_id.as_str(),
                reason = reason;
                "instance terminated"
            );
        }
        // Folders without a live row.
        if let Ok(entries) = fs_err::read_dir(&shared.instances_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with("i-") {
                    continue;
                }
                let row = shared.store.instance(&name).store_context("reading", &name)?;
                if row.as_ref().is_some_and(|row| row.lifecycle != LifecycleState::Terminated)
                    || retained.contains(&name)
                {
                    continue;
                }
                let folder = InstanceFolder::new(&shared.instances_dir, &name);
                if row.is_some() {
                    archive_signals(&shared.store, &folder, &name)?;
                }
                folder.remove()?;
            }
        }
        shared.changed();
        Ok(removed)
    }
}

/// Finishes the termination of every instance of a deleted group not yet
/// terminated (already deregistered and drained) and removes any container
/// of the group left without a row. Tries everything; returns the first error.
async fn terminate_the_rest<E: Engine>(shared: &Shared<E>, group: &str) -> Result<(), FleetError> {
    let context = shared.context();
    let mut first_error = None;
    let rows = shared.store.instances_of_group(group, false).store_context("listing", group)?;
    for row in &rows {
        match finish_termination(&context, &row.instance_id, None).await {
            Ok(()) => log::info!(
                stack = stack_name(row.stack_id.as_deref()),
                group = group,
                instance = row.instance_id.as_str();
                "instance terminated"
            ),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    let leftovers = shared
        .engine
        .container_list(&[(GROUP_LABEL.to_string(), group.to_string())])
        .await
        .engine_context("listing the containers of", group)?;
    for container in leftovers {
        if let Err(error) = shared
            .engine
            .container_remove(&container.id)
            .await
            .engine_context("removing", &container.name)
        {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A group's loop: tick, then sleep until the interval passes, a wake-up,
/// or the stop.
async fn run<E: Engine>(shared: Arc<Shared<E>>, group: Arc<Group>) {
    let mut stop = group.stop.subscribe();
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        if let Err(error) = tick(&shared, &group).await {
            group.record_error(&error);
        }
        tokio::select! {
            () = tokio::time::sleep(shared.interval) => {}
            () = group.wake.notified() => {}
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
}

/// One activation: observe, plan, apply.
async fn tick<E: Engine>(shared: &Shared<E>, group: &Group) -> Result<(), FleetError> {
    let mut instances = observe(shared, group).await?;
    let now = shared.now();
    let (view, spec, target_groups, generation) = {
        let state = group.state();
        // Terminations a caller began after the observation.
        for instance in &mut instances {
            if let Some(since) = state.terminating_since.get(&instance.instance_id)
                && instance.lifecycle != LifecycleState::Terminating
            {
                instance.lifecycle = LifecycleState::Terminating;
                instance.terminating_since = Some(*since);
            }
        }
        let spec = &state.spec;
        let view = GroupView {
            desired_capacity: spec.desired_capacity,
            min_size: spec.min_size,
            max_size: spec.max_size,
            zones: spec.zones.iter().map(|zone| zone.name.clone()).collect(),
            launch_config: spec.launch.name.clone(),
            image: spec.launch.image_id.clone(),
            health_check_type: spec.health_check_type,
            health_check_grace_period: spec.health_check_grace_period,
            drain_timeout: DRAIN_TIMEOUT,
            launch_allowed_at: state.launch_allowed_at,
            instances,
        };
        (view, state.spec.clone(), state.target_groups.clone(), state.generation)
    };
    let actions = plan(&view, now);
    if actions.is_empty() {
        return Ok(());
    }
    let context = shared.context();
    let mut launch_failed = false;
    for action in actions {
        match action {
            Action::Terminate { instance_id, reason } => {
                // Under the state lock, so a caller's termination of the
                // same instance is either seen here or sees this one.
                let mut state = group.state();
                let stale = state.terminating_since.contains_key(&instance_id)
                    || (!reason.is_health_failure() && state.generation != generation);
                if stale {
                    continue;
                }
                let result = begin_termination(
                    &shared.store,
                    &instance_id,
                    &reason.to_string(),
                    reason.is_health_failure(),
                    &target_groups,
                );
                match result {
                    Ok(()) => {
                        let stack = stack_name(spec.stack_id.as_deref());
                        let instance = instance_id.as_str();
                        if reason.is_health_failure() {
                            log::warn!(
                                stack, group = spec.name.as_str(), instance, reason:% = reason;
                                "instance unhealthy: terminating it, a replacement follows"
                            );
                        } else {
                            log::info!(
                                stack, group = spec.name.as_str(), instance, reason:% = reason;
                                "instance terminating"
                            );
                        }
                        state.terminating_since.insert(instance_id, now);
                    }
                    Err(error) => state.last_error = Some(error_chain(&error)),
                }
            }
            Action::FinishTermination { instance_id } => {
                match finish_termination(&context, &instance_id, None).await {
                    Ok(()) => {
                        log::info!(
                            stack = stack_name(spec.stack_id.as_deref()),
                            group = spec.name.as_str(),
                            instance = instance_id.as_str();
                            "instance terminated"
                        );
                        let mut state = group.state();
                        state.launched_at.remove(&instance_id);
                        state.terminating_since.remove(&instance_id);
                    }
                    Err(error) => group.record_error(&error),
                }
            }
            Action::Launch { zone } => {
                if launch_failed || group.state().generation != generation {
                    continue;
                }
                let Some(zone) = spec.zones.iter().find(|candidate| candidate.name == zone) else {
                    continue;
                };
                match launch(&context, &spec, zone).await {
                    Ok(row) => {
                        log::info!(
                            stack = stack_name(spec.stack_id.as_deref()),
                            group = spec.name.as_str(),
                            instance = row.instance_id.as_str(),
                            zone = row.zone.as_str(),
                            image = row.image.as_str(),
                            launch_config = row.launch_config.as_str();
                            "instance launched"
                        );
                        register_unless_terminating(group, &target_groups, &row);
                        if let Err(error) = record_target_health(shared, &target_groups, &row) {
                            group.record_error(&error);
                        }
                        let mut state = group.state();
                        state.launched_at.insert(row.instance_id, now);
                        state.launch_failures = 0;
                        state.launch_allowed_at = Duration::ZERO;
                        state.last_error = None;
                    }
                    Err(error) => {
                        launch_failed = true;
                        let mut state = group.state();
                        state.launch_failures += 1;
                        let backoff = launch_backoff(shared.interval, state.launch_failures);
                        state.launch_allowed_at = shared.now() + backoff;
                        let reason = error_chain(&error);
                        log::warn!(
                            stack = stack_name(spec.stack_id.as_deref()),
                            group = spec.name.as_str(),
                            zone = zone.name.as_str(),
                            failures = state.launch_failures,
                            retry_in_s = backoff.as_secs(),
                            reason = reason.as_str();
                            "instance launch failed"
                        );
                        state.last_error = Some(reason);
                    }
                }
            }
        }
    }
    shared.changed();
    Ok(())
}

/// How long to wait before the next launch after `failures` failed ones in
/// a row: the interval, doubling, up to five minutes (or the interval, if
/// longer).
fn launch_backoff(interval: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    interval.saturating_mul(1 << doublings).min(MAX_LAUNCH_BACKOFF.max(interval))
}

/// Registers an in-service instance with every target group.
fn register(target_groups: &[Arc<dyn TargetGroupHandle>], row: &InstanceRow) {
    let Some(port) = row.host_port else { return };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    for target_group in target_groups {
        target_group.register(&row.instance_id, addr);
    }
}

/// Registers an in-service instance with every target group, unless a
/// caller began terminating it meanwhile (checked under the state lock, which
/// [`Fleet::terminate_instance`] holds while it deregisters).
fn register_unless_terminating(
    group: &Group,
    target_groups: &[Arc<dyn TargetGroupHandle>],
    row: &InstanceRow,
) {
    let state = group.state();
    if !state.terminating_since.contains_key(&row.instance_id) {
        register(target_groups, row);
    }
}

/// Records what the target groups say of an instance, when it changed, and
/// returns it.
fn record_target_health<E: Engine>(
    shared: &Shared<E>,
    target_groups: &[Arc<dyn TargetGroupHandle>],
    row: &InstanceRow,
) -> Result<Option<String>, FleetError> {
    let states: Vec<String> = target_groups
        .iter()
        .filter_map(|target_group| target_group.state(&row.instance_id))
        .collect();
    let target_state = combine_target_states(states.iter().map(String::as_str));
    if target_state != row.target_health {
        shared
            .store
            .set_instance_target_health(&row.instance_id, target_state.as_deref(), clock::now())
            .store_context("recording the target health of", &row.instance_id)?;
    }
    Ok(target_state)
}

/// Observes a group, repairs what a restart interrupted (see the module
/// notes), records target health, and returns the planner's view of each
/// live instance.
async fn observe<E: Engine>(
    shared: &Shared<E>,
    group: &Group,
) -> Result<Vec<InstanceView>, FleetError> {
    let (spec, target_groups) = {
        let state = group.state();
        (state.spec.clone(), state.target_groups.clone())
    };
    let name = &spec.name;
    let containers = shared
        .engine
        .container_list(&[(GROUP_LABEL.to_string(), name.clone())])
        .await
        .engine_context("listing the containers of", name)?;
    let mut by_instance: BTreeMap<String, ContainerInfo> = BTreeMap::new();
    for container in containers {
        match container.labels.get(INSTANCE_LABEL) {
            Some(instance_id) => {
                by_instance.insert(instance_id.clone(), container);
            }
            None => {
                shared
                    .engine
                    .container_remove(&container.id)
                    .await
                    .engine_context("removing", &container.name)?;
                log::info!(
                    group = name.as_str(),
                    container = container.name.as_str(),
                    reason = "it has no instance id label";
                    "stray container removed"
                );
            }
        }
    }
    let rows = shared.store.instances_of_group(name, false).store_context("listing", name)?;
    // Containers of the group without a live row: a removal that failed, or
    // an instance given up while its container was made.
    for (instance_id, container) in &by_instance {
        if !rows.iter().any(|row| &row.instance_id == instance_id) {
            shared
                .engine
                .container_remove(&container.id)
                .await
                .engine_context("removing", &container.name)?;
            log::info!(
                stack = stack_name(spec.stack_id.as_deref()),
                group = name.as_str(),
                instance = instance_id.as_str(),
                reason = "the instance is not live (a removal that failed, or a launch given up)";
                "stray container removed"
            );
        }
    }
    let now = shared.now();
    let context = shared.context();
    let mut views = Vec::with_capacity(rows.len());
    for mut row in rows {
        let container = by_instance.get(&row.instance_id);
        let running = container.filter(|container| container.state == ContainerState::Running);
        if row.lifecycle == LifecycleState::Pending
            && let Some(running) = running
        {
            match complete_launch(&context, &spec, &row.instance_id, running).await {
                Ok(completed) => row = completed,
                Err(error) => group.record_error(&error),
            }
        }
        if row.lifecycle == LifecycleState::InService && running.is_some() {
            let unknown_to_some = target_groups
                .iter()
                .any(|target_group| target_group.state(&row.instance_id).is_none());
            if unknown_to_some {
                register_unless_terminating(group, &target_groups, &row);
            }
        }
        let target_state = record_target_health(shared, &target_groups, &row)?;
        let container_status = match container {
            None => ContainerStatus::Missing,
            Some(container) if container.state == ContainerState::Running => {
                ContainerStatus::Running
            }
            Some(container) => ContainerStatus::Stopped { exit_code: container.exit_code },
        };
        let (launched_at, terminating_since) = {
            let mut state = group.state();
            let launched_at = *state.launched_at.entry(row.instance_id.clone()).or_insert(now);
            (launched_at, state.terminating_since.get(&row.instance_id).copied())
        };
        views.push(InstanceView {
            instance_id: row.instance_id.clone(),
            zone: row.zone.clone(),
            launch_config: row.launch_config.clone(),
            image: row.image.clone(),
            lifecycle: row.lifecycle,
            container: container_status,
            target_state,
            launched_at,
            launch_time: row.launched_at,
            terminating_since,
        });
    }
    // Forget the times of instances no longer live.
    {
        let mut state = group.state();
        state.launched_at.retain(|id, _| views.iter().any(|view| &view.instance_id == id));
        state.terminating_since.retain(|id, _| views.iter().any(|view| &view.instance_id == id));
    }
    Ok(views)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_backoff_doubles_from_the_interval_up_to_a_cap() {
        let second = Duration::from_secs(1);
        let backoffs: Vec<u64> =
            (1..=11).map(|failures| launch_backoff(second, failures).as_secs()).collect();
        assert_eq!(backoffs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(launch_backoff(600 * second, 3), 600 * second, "never below the interval");
    }
}
