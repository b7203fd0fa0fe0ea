//! The reconcile planner: what a group's controller should do next, from
//! what it observed. Pure: no I/O and no clock; `now` is an argument.
//!
//! Rules, in the order they are applied:
//!
//! 1. **Finishing terminations.** An instance already `Terminating` is
//!    finished (stopped, removed, `Terminated`) once it cannot serve (its
//!    container is not running), once every target group has let it go
//!    (no target state, or `unused`), or once `drain_timeout` has passed
//!    since termination began.
//! 2. **Health.** An instance whose container is not running (exited,
//!    stopped, or gone) fails the EC2 health check at once. With `ELB` health
//!    checks, an instance a target group reports `unhealthy` fails too, but
//!    only once the grace period since its launch (or adoption) has passed.
//!    Unhealthy instances are terminated; a dead one is finished in the same
//!    plan, since there is nothing to drain.
//! 3. **Capacity.** The group keeps `desired_capacity` (clamped to
//!    `min_size..=max_size`) healthy instances, counting `Pending` and
//!    `InService` ones but not `Terminating` ones. Missing instances are
//!    launched unless launches are backed off (`launch_allowed_at`), never
//!    taking the group above `max_size`; each goes to the zone with the fewest
//!    instances, ties going to the zone listed first.
//! 4. **Scale in.** Surplus instances are terminated one at a time, by a
//!    termination policy close to AWS's default: from the zone with the most
//!    instances (ties: the zone listed last, mirroring launches), then
//!    instances whose launch configuration or image differs from the group's
//!    current one (AWS's "oldest launch template or configuration": after an
//!    update, the old fleet goes first), then the oldest launch (AWS's next
//!    criterion, closeness to the next billing hour, means nothing here),
//!    then the lowest instance id, so plans are deterministic.
//!
//! Design note: the plan is specific enough that the executor makes no
//! choices, and it is recomputed from fresh observations every tick, so a
//! failed or interrupted action is simply planned again.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use autopatch_model::Timestamp;
use autopatch_store::LifecycleState;

use crate::HealthCheckType;

/// What the controller observed of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupView {
    pub desired_capacity: u32,
    pub min_size: u32,
    pub max_size: u32,
    /// Availability zones, in the group's order.
    pub zones: Vec<String>,
    /// The launch configuration new instances get.
    pub launch_config: String,
    /// The image id new instances get (the launch template's `image_id`).
    pub image: String,
    pub health_check_type: HealthCheckType,
    pub health_check_grace_period: Duration,
    /// How long a terminating instance may drain before it is stopped anyway.
    pub drain_timeout: Duration,
    /// Launches wait until then (backoff after failed launches).
    pub launch_allowed_at: Duration,
    /// The group's instances that are not `Terminated`.
    pub instances: Vec<InstanceView>,
}

/// What the controller observed of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceView {
    pub instance_id: String,
    pub zone: String,
    pub launch_config: String,
    /// The image id it was launched from.
    pub image: String,
    pub lifecycle: LifecycleState,
    pub container: ContainerStatus,
    /// The target groups' combined view (see [`combine_target_states`]);
    /// `None` when no target group knows the instance.
    pub target_state: Option<String>,
    /// When it was launched, or adopted by this controller.
    pub launched_at: Duration,
    /// When it was launched, by the wall clock (from its row): orders
    /// instances adopted at the same moment.
    pub launch_time: Timestamp,
    /// When its termination began (for `Terminating` instances).
    pub terminating_since: Option<Duration>,
}

/// What the engine says of an instance's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerStatus {
    Running,
    /// Created, exited, paused or dead: anything but running.
    Stopped {
        exit_code: Option<i64>,
    },
    /// No such container.
    Missing,
}

/// One step for the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Launch an instance in `zone`.
    Launch { zone: String },
    /// Begin terminating: record `Terminating` (and `Unhealthy` when the
    /// reason is a failed health check), deregister from the target groups.
    Terminate { instance_id: String, reason: TerminationReason },
    /// Stop and remove the container, remove the folder, record `Terminated`.
    FinishTermination { instance_id: String },
}

/// Why an instance is terminated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminationReason {
    /// The container exited or was stopped (EC2 health check).
    ContainerStopped { exit_code: Option<i64> },
    /// The container is gone (EC2 health check).
    ContainerMissing,
    /// A target group reports it unhealthy after the grace period (ELB health check).
    TargetUnhealthy,
    /// More instances than desired.
    ScaleIn { from: u32, to: u32 },
}

impl TerminationReason {
    /// Whether the instance failed a health check (so it is recorded `Unhealthy`).
    pub fn is_health_failure(&self) -> bool {
        !matches!(self, TerminationReason::ScaleIn { .. })
    }
}

impl fmt::Display for TerminationReason {
    /// Worded like Auto Scaling's activity causes.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TerminationReason::ContainerStopped { exit_code: Some(code) } => write!(
                formatter,
                "an EC2 health check indicated the instance stopped (its container exited with {code})"
            ),
            TerminationReason::ContainerStopped { exit_code: None } => {
                formatter.write_str("an EC2 health check indicated the instance stopped")
            }
            TerminationReason::ContainerMissing => formatter
                .write_str("an EC2 health check indicated the instance is gone (no container)"),
            TerminationReason::TargetUnhealthy => {
                formatter.write_str("an ELB health check failure (the target is unhealthy)")
            }
            TerminationReason::ScaleIn { from, to } => write!(
                formatter,
                "a difference between desired and actual capacity, shrinking the capacity from {from} to {to}"
            ),
        }
    }
}

/// Plans the next actions for a group (see the module documentation).
pub fn plan(group: &GroupView, now: Duration) -> Vec<Action> {
    let mut actions = Vec::new();
    // Instances counted towards capacity after health checks.
    let mut serving: Vec<&InstanceView> = Vec::new();
    for instance in &group.instances {
        match instance.lifecycle {
            LifecycleState::Terminated => {}
            LifecycleState::Terminating => {
                if termination_can_finish(group, instance, now) {
                    actions.push(Action::FinishTermination {
                        instance_id: instance.instance_id.clone(),
                    });
                }
            }
            LifecycleState::Pending | LifecycleState::InService => {
                match health_failure(group, instance, now) {
                    None => serving.push(instance),
                    Some(reason) => {
                        actions.push(Action::Terminate {
                            instance_id: instance.instance_id.clone(),
                            reason,
                        });
                        if instance.container != ContainerStatus::Running {
                            actions.push(Action::FinishTermination {
                                instance_id: instance.instance_id.clone(),
                            });
                        }
                    }
                }
            }
        }
    }

    let target = group.desired_capacity.clamp(group.min_size, group.max_size.max(group.min_size));
    let count = u32::try_from(serving.len()).unwrap_or(u32::MAX);
    if count > target {
        let mut remaining = serving.clone();
        for _ in target..count {
            let Some(victim) = scale_in_victim(group, &remaining) else { break };
            remaining.retain(|instance| instance.instance_id != victim.instance_id);
            actions.push(Action::Terminate {
                instance_id: victim.instance_id.clone(),
                reason: TerminationReason::ScaleIn { from: count, to: target },
            });
        }
    } else if count < target && now >= group.launch_allowed_at && !group.zones.is_empty() {
        let mut per_zone = zone_counts(group, &serving);
        for _ in count..target.min(group.max_size) {
            // The zone with the fewest instances; `min_by_key` keeps the first of equals.
            let Some(zone) = group.zones.iter().min_by_key(|zone| per_zone[zone.as_str()]) else {
                break;
            };
            *per_zone.entry(zone.as_str()).or_default() += 1;
            actions.push(Action::Launch { zone: zone.clone() });
        }
    }
    actions
}

/// Combines what several target groups say of one instance: `unhealthy` if
/// any says so (as Auto Scaling does), else the first of `draining`,
/// `initial`, `healthy`, `unused` that any reports; `None` when none knows it.
pub fn combine_target_states<'a>(states: impl IntoIterator<Item = &'a str>) -> Option<String> {
    const PRECEDENCE: [&str; 5] = ["unhealthy", "draining", "initial", "healthy", "unused"];
    let states: Vec<&str> = states.into_iter().collect();
    PRECEDENCE
        .iter()
        .find(|state| states.contains(state))
        .map(|state| state.to_string())
        .or_else(|| states.first().map(|state| state.to_string()))
}

fn termination_can_finish(group: &GroupView, instance: &InstanceView, now: Duration) -> bool {
    let drained = matches!(instance.target_state.as_deref(), None | Some("unused"));
    let timed_out = instance
        .terminating_since
        .is_none_or(|since| now >= since.saturating_add(group.drain_timeout));
    instance.container != ContainerStatus::Running || drained || timed_out
}

fn health_failure(
    group: &GroupView,
    instance: &InstanceView,
    now: Duration,
) -> Option<TerminationReason> {
    match instance.container {
        ContainerStatus::Missing => return Some(TerminationReason::ContainerMissing),
        ContainerStatus::Stopped { exit_code } => {
            return Some(TerminationReason::ContainerStopped { exit_code });
        }
        ContainerStatus::Running => {}
    }
    let grace_over = now >= instance.launched_at.saturating_add(group.health_check_grace_period);
    (group.health_check_type == HealthCheckType::Elb
        && grace_over
        && instance.target_state.as_deref() == Some("unhealthy"))
    .then_some(TerminationReason::TargetUnhealthy)
}

/// Instances per zone of the group (instances in zones the group no longer
/// lists are not counted).
fn zone_counts<'a>(group: &'a GroupView, instances: &[&InstanceView]) -> BTreeMap<&'a str, usize> {
    let mut counts: BTreeMap<&str, usize> =
        group.zones.iter().map(|zone| (zone.as_str(), 0)).collect();
    for instance in instances {
        if let Some(count) = counts.get_mut(instance.zone.as_str()) {
            *count += 1;
        }
    }
    counts
}

fn scale_in_victim<'a>(
    group: &GroupView,
    instances: &[&'a InstanceView],
) -> Option<&'a InstanceView> {
    // The zone with the most instances; instances outside the listed zones
    // go first of all.
    let counts = zone_counts(group, instances);
    let zone_rank = |zone: &str| -> (usize, usize) {
        match group.zones.iter().position(|listed| listed == zone) {
            Some(position) => (counts[zone], position),
            None => (usize::MAX, usize::MAX),
        }
    };
    instances.iter().copied().max_by(|left, right| {
        zone_rank(&left.zone)
            .cmp(&zone_rank(&right.zone))
            .then_with(|| {
                let old = |instance: &InstanceView| {
                    instance.launch_config != group.launch_config || instance.image != group.image
                };
                old(left).cmp(&old(right))
            })
            // The oldest launch is the greatest.
            .then_with(|| right.launched_at.cmp(&left.launched_at))
            .then_with(|| right.launch_time.cmp(&left.launch_time))
            .then_with(|| right.instance_id.cmp(&left.instance_id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn group(desired: u32, instances: Vec<InstanceView>) -> GroupView {
        GroupView {
            desired_capacity: desired,
            min_size: 0,
            max_size: 4,
            zones: vec!["a".into(), "b".into()],
            launch_config: "lc-2".into(),
            image: "app/1.0.0/2".into(),
            health_check_type: HealthCheckType::Elb,
            health_check_grace_period: 60 * SECOND,
            drain_timeout: 300 * SECOND,
            launch_allowed_at: Duration::ZERO,
            instances,
        }
    }

    /// An in-service, running, healthy instance launched at `launched_at` seconds.
    fn running(id: &str, zone: &str, launched_at: u64) -> InstanceView {
        InstanceView {
            instance_id: id.into(),
            zone: zone.into(),
            launch_config: "lc-2".into(),
            image: "app/1.0.0/2".into(),
            lifecycle: LifecycleState::InService,
            container: ContainerStatus::Running,
            target_state: Some("healthy".into()),
            launched_at: Duration::from_secs(launched_at),
            launch_time: Timestamp(1000 * i64::try_from(launched_at).expect("small")),
            terminating_since: None,
        }
    }

    fn with(mut instance: InstanceView, change: impl FnOnce(&mut InstanceView)) -> InstanceView {
        change(&mut instance);
        instance
    }

    /// The plan at `now` seconds, one action per line.
    fn check(group: &GroupView, now: u64) -> Vec<String> {
        plan(group, Duration::from_secs(now))
            .into_iter()
            .map(|action| match action {
                Action::Launch { zone } => format!("launch in {zone}"),
                Action::Terminate { instance_id, reason } => {
                    format!("terminate {instance_id}: {reason}")
                }
                Action::FinishTermination { instance_id } => format!("finish {instance_id}"),
            })
            .collect()
    }

    #[test]
    fn an_empty_group_is_filled_across_zones() {
        assert_eq!(check(&group(3, vec![]), 0), ["launch in a", "launch in b", "launch in a"]);
        let one_in_a = group(3, vec![running("i-1", "a", 0)]);
        assert_eq!(check(&one_in_a, 0), ["launch in b", "launch in a"]);
        let two_in_b = group(3, vec![running("i-1", "b", 0), running("i-2", "b", 0)]);
        assert_eq!(check(&two_in_b, 0), ["launch in a"]);
        assert!(
            check(&group(2, vec![running("i-1", "a", 0), running("i-2", "b", 0)]), 0).is_empty()
        );
    }

    #[test]
    fn launches_stop_at_max_size_and_wait_for_the_backoff() {
        let mut above_max = group(9, vec![running("i-1", "a", 0)]);
        above_max.max_size = 2;
        assert_eq!(check(&above_max, 0), ["launch in b"]);
        let mut backed_off = group(2, vec![]);
        backed_off.launch_allowed_at = 30 * SECOND;
        assert!(check(&backed_off, 29).is_empty());
        assert_eq!(check(&backed_off, 30), ["launch in a", "launch in b"]);
        let mut no_zones = group(1, vec![]);
        no_zones.zones.clear();
        assert!(check(&no_zones, 0).is_empty());
    }

    #[test]
    fn a_dead_container_is_terminated_at_once_and_replaced() {
        let exited = with(running("i-1", "a", 0), |i| {
            i.container = ContainerStatus::Stopped { exit_code: Some(137) };
        });
        let gone = with(running("i-2", "b", 0), |i| i.container = ContainerStatus::Missing);
        assert_eq!(
            check(&group(2, vec![exited, gone]), 1),
            [
                "terminate i-1: an EC2 health check indicated the instance stopped (its container exited with 137)",
                "finish i-1",
                "terminate i-2: an EC2 health check indicated the instance is gone (no container)",
                "finish i-2",
                "launch in a",
                "launch in b",
            ]
        );
        // A pending instance whose launch never created its container is the same.
        let half_launched = with(running("i-3", "a", 0), |i| {
            i.lifecycle = LifecycleState::Pending;
            i.container = ContainerStatus::Missing;
        });
        assert_eq!(check(&group(1, vec![half_launched]), 0)[1], "finish i-3");
    }

    #[test]
    fn an_unhealthy_target_is_replaced_only_after_the_grace_period() {
        let unhealthy =
            with(running("i-1", "a", 100), |i| i.target_state = Some("unhealthy".into()));
        let view = group(1, vec![unhealthy]);
        assert!(check(&view, 159).is_empty(), "within the grace period");
        assert_eq!(
            check(&view, 160),
            ["terminate i-1: an ELB health check failure (the target is unhealthy)", "launch in a"],
            "still running: it drains before it is finished"
        );
        let mut ec2_checks = view.clone();
        ec2_checks.health_check_type = HealthCheckType::Ec2;
        assert!(check(&ec2_checks, 1000).is_empty(), "EC2 checks ignore the load balancer");
        for state in ["initial", "draining", "unused"] {
            let view = group(
                1,
                vec![with(running("i-1", "a", 0), |i| i.target_state = Some(state.into()))],
            );
            assert!(check(&view, 1000).is_empty(), "{state} is not unhealthy");
        }
    }

    #[test]
    fn terminating_instances_finish_once_drained_dead_or_timed_out() {
        let terminating = |target_state: Option<&str>, container: ContainerStatus| {
            with(running("i-1", "a", 0), |i| {
                i.lifecycle = LifecycleState::Terminating;
                i.terminating_since = Some(100 * SECOND);
                i.target_state = target_state.map(str::to_string);
                i.container = container;
            })
        };
        let draining = group(0, vec![terminating(Some("draining"), ContainerStatus::Running)]);
        assert!(check(&draining, 399).is_empty());
        assert_eq!(check(&draining, 400), ["finish i-1"], "the drain timed out");
        for (state, container) in [
            (None, ContainerStatus::Running),
            (Some("unused"), ContainerStatus::Running),
            (Some("draining"), ContainerStatus::Missing),
        ] {
            assert_eq!(check(&group(0, vec![terminating(state, container)]), 101), ["finish i-1"]);
        }
        // Terminating instances do not count: a replacement is launched meanwhile.
        let replaced = group(1, vec![terminating(Some("draining"), ContainerStatus::Running)]);
        assert_eq!(check(&replaced, 101), ["launch in a"]);
    }

    #[test]
    fn scale_in_follows_the_termination_policy() {
        // Zone with the most instances first, then the oldest launch.
        let view = group(
            2,
            vec![
                running("i-1", "a", 1),
                running("i-2", "a", 2),
                running("i-3", "b", 3),
                running("i-4", "a", 0),
            ],
        );
        let scale_in =
            "a difference between desired and actual capacity, shrinking the capacity from 4 to 2";
        assert_eq!(
            check(&view, 10),
            [format!("terminate i-4: {scale_in}"), format!("terminate i-1: {scale_in}")]
        );
        // Balanced zones: the zone listed last gives first.
        let balanced = group(1, vec![running("i-1", "a", 1), running("i-2", "b", 2)]);
        assert_eq!(check(&balanced, 10).len(), 1);
        assert!(check(&balanced, 10)[0].starts_with("terminate i-2"));
        // An old launch configuration, or an old image, goes before an older launch.
        let old_config = with(running("i-3", "a", 5), |i| i.launch_config = "lc-1".into());
        let mixed = group(1, vec![running("i-1", "a", 0), old_config]);
        assert!(check(&mixed, 10)[0].starts_with("terminate i-3"));
        let old_image = with(running("i-3", "a", 5), |i| i.image = "app/1.0.0/1".into());
        let mixed = group(1, vec![running("i-1", "a", 0), old_image]);
        assert!(check(&mixed, 10)[0].starts_with("terminate i-3"));
        // After an update that doubled the group, scaling back in retires the old half.
        let old = |id: &str, zone: &str, at: u64| {
            with(running(id, zone, at), |i| {
                i.launch_config = "lc-1".into();
                i.image = "app/1.0.0/1".into();
            })
        };
        let updated = group(
            2,
            vec![
                old("i-1", "a", 0),
                old("i-2", "b", 0),
                running("i-3", "a", 9),
                running("i-4", "b", 9),
            ],
        );
        assert_eq!(
            check(&updated, 10),
            [format!("terminate i-2: {scale_in}"), format!("terminate i-1: {scale_in}")]
        );
        // Zones the group no longer lists go first of all.
        let moved =
            group(2, vec![running("i-1", "a", 0), running("i-2", "b", 0), running("i-3", "z", 0)]);
        assert!(check(&moved, 10)[0].starts_with("terminate i-3"));
        // Adopted together (same controller time): the earlier wall-clock launch.
        let adopted = group(
            1,
            vec![
                with(running("i-1", "a", 0), |i| i.launch_time = Timestamp(2000)),
                with(running("i-2", "a", 0), |i| i.launch_time = Timestamp(1000)),
            ],
        );
        assert!(check(&adopted, 10)[0].starts_with("terminate i-2"));
        // Ties everywhere: the lowest instance id.
        let twins = group(1, vec![running("i-2", "a", 0), running("i-1", "a", 0)]);
        assert!(check(&twins, 10)[0].starts_with("terminate i-1"));
    }

    #[test]
    fn desired_capacity_is_clamped_to_the_group_size() {
        let mut view = group(0, vec![]);
        view.min_size = 1;
        assert_eq!(check(&view, 0), ["launch in a"]);
        let mut over =
            group(5, vec![running("i-1", "a", 0), running("i-2", "b", 0), running("i-3", "a", 0)]);
        over.max_size = 2;
        assert_eq!(check(&over, 0).len(), 1, "one above max_size is terminated");
    }

    #[test]
    fn target_states_combine_with_unhealthy_first() {
        assert_eq!(combine_target_states(["healthy", "unhealthy"]), Some("unhealthy".into()));
        assert_eq!(combine_target_states(["healthy", "initial"]), Some("initial".into()));
        assert_eq!(combine_target_states(["unused", "healthy"]), Some("healthy".into()));
        assert_eq!(combine_target_states(["draining", "healthy"]), Some("draining".into()));
        assert_eq!(combine_target_states(["odd"]), Some("odd".into()));
        assert_eq!(combine_target_states([]), None);
    }
}
