//! Stack updates, the pure part: how a resource gets from what the store
//! says it is to what the target template says ([`classify`]), and the next
//! move of an Auto Scaling rolling update ([`rolling_step`]). No I/O and no
//! clock: the executor gathers the facts and acts on the answer, so every
//! case is a table row in the tests below and in the simulations.
//!
//! The rules follow CloudFormation's "update behaviours" of each property:
//!
//! | type | in place | needs a new physical resource |
//! |------|----------|-------------------------------|
//! | `AWS::AutoScaling::LaunchConfiguration` | — | every property |
//! | `AWS::EC2::LaunchTemplate` | `LaunchTemplateData` (a new version), tags | `LaunchTemplateName` |
//! | `AWS::AutoScaling::AutoScalingGroup` | sizes, health checks, tags; the launch configuration, launch template and subnets without an `UpdatePolicy` (new instances only) | the launch configuration, launch template or subnets with `AutoScalingReplacingUpdate`; `AutoScalingGroupName` |
//! | `AWS::ElasticLoadBalancingV2::TargetGroup` | health check settings, attributes, tags | the rest (not done locally) |
//! | VPC, subnet, load balancer, listener | tags | the rest (not done locally) |
//! | types with no local effect | everything | — |
//!
//! With `AutoScalingRollingUpdate` a change of launch or subnets replaces
//! the group's instances in batches instead.

use std::collections::BTreeSet;
use std::time::Duration;

use autopatch_model::ResourceStatus;
use serde_json::Value as Json;

/// How a resource gets to its desired properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Already there: the stored properties are the desired ones and the
    /// resource is settled.
    None,
    /// Not there yet: create it.
    Create,
    /// Change it, keeping its physical id.
    InPlace,
    /// Create a new physical resource; the old one is deleted at cleanup.
    Replace,
    /// Auto Scaling group: replace its instances in batches.
    Rolling,
    /// Rolling back: the resource it replaced becomes current again; the
    /// replacement is deleted at cleanup.
    Restore,
    /// Cannot be done locally: the update fails with this reason.
    Unsupported(String),
}

/// An Auto Scaling group's `UpdatePolicy`, as far as the kind of update goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupPolicy {
    #[default]
    None,
    /// `AutoScalingReplacingUpdate` with `WillReplace: true`.
    Replacing,
    /// `AutoScalingRollingUpdate`.
    Rolling,
}

/// What a resource's row holds besides the physical resource it names,
/// until the cleanup deletes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Held {
    /// Nothing.
    #[default]
    Nothing,
    /// The physical resource the update replaced: the row names the
    /// update's replacement.
    Replaced,
    /// The update's replacement, after the rollback made the replaced
    /// resource current again.
    Restored,
}

/// What [`classify`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub resource_type: &'a str,
    /// The stored status; `None` when the store has no row.
    pub status: Option<ResourceStatus>,
    /// The stored (evaluated) properties.
    pub stored: &'a Json,
    /// The properties the target template gives now.
    pub desired: &'a Json,
    /// What the row holds until the cleanup.
    pub held: Held,
    /// The operation is a rollback (the target is the previous template).
    pub rolling_back: bool,
    /// For Auto Scaling groups.
    pub policy: GroupPolicy,
}

/// Properties of an Auto Scaling group whose change gives its instances a
/// new launch (what `AutoScalingReplacingUpdate` and
/// `AutoScalingRollingUpdate` act on).
const GROUP_LAUNCH_KEYS: &[&str] = &[
    "LaunchConfigurationName",
    "LaunchTemplate",
    "MixedInstancesPolicy",
    "VPCZoneIdentifier",
    "AvailabilityZones",
    "PlacementGroup",
    "InstanceId",
];

const TARGET_GROUP_IN_PLACE: &[&str] = &[
    "HealthCheckEnabled",
    "HealthCheckIntervalSeconds",
    "HealthCheckPath",
    "HealthCheckPort",
    "HealthCheckProtocol",
    "HealthCheckTimeoutSeconds",
    "HealthyThresholdCount",
    "UnhealthyThresholdCount",
    "Matcher",
    "TargetGroupAttributes",
    "Targets",
    "Tags",
];

/// How the resource described by `facts` gets to its desired properties.
///
/// Every answer brings the row closer to the target: a rollback restores a
/// replaced resource once (the row then holds the replacement, which is
/// never restored again), and a row never gets a second replacement while
/// it holds a physical resource for the cleanup: that replacement would
/// lose it (and, in a rollback, undo the restore, which would restore it
/// again, without end). Such a change is [`Change::Unsupported`], which
/// fails the update or the rollback with the reason.
pub fn classify(facts: &Facts<'_>) -> Change {
    let change = classify_change(facts);
    if change != Change::Replace {
        return change;
    }
    let settled = matches!(
        facts.status,
        Some(ResourceStatus::CreateComplete | ResourceStatus::UpdateComplete)
    );
    let keys = || {
        let keys: Vec<String> = changed_keys(facts.stored, facts.desired).into_iter().collect();
        keys.join(", ")
    };
    match (facts.held, facts.rolling_back) {
        // The update's own replacement, being made: finish it.
        (Held::Replaced, false) if !settled => Change::Replace,
        (Held::Replaced | Held::Restored, false) => Change::Unsupported(format!(
            "changing {} needs a second new physical resource in one update, whose first replacement is not deleted yet",
            keys()
        )),
        (_, true) => Change::Unsupported(format!(
            "rolling back needs a new physical resource ({} of the previous template differ from the resource it is rolled back to), and a rollback does not replace resources; skip this resource (ContinueUpdateRollback's ResourcesToSkip) to keep it as it is",
            keys()
        )),
        (Held::Nothing, false) => Change::Replace,
    }
}

fn classify_change(facts: &Facts<'_>) -> Change {
    let settled = matches!(
        facts.status,
        Some(ResourceStatus::CreateComplete | ResourceStatus::UpdateComplete)
    );
    match facts.status {
        None | Some(ResourceStatus::DeleteComplete | ResourceStatus::DeleteSkipped) => {
            return Change::Create;
        }
        Some(ResourceStatus::CreateInProgress | ResourceStatus::CreateFailed) => {
            return Change::Create;
        }
        _ => {}
    }
    if facts.held == Held::Replaced {
        if facts.rolling_back {
            return Change::Restore;
        }
        if !settled {
            // A replacement was started: finish it.
            return Change::Replace;
        }
    }
    let changed = changed_keys(facts.stored, facts.desired);
    if changed.is_empty() {
        if settled {
            return Change::None;
        }
        // Interrupted (or failed) while being changed in place: do it again.
        return match (facts.resource_type, facts.policy) {
            ("AWS::AutoScaling::AutoScalingGroup", GroupPolicy::Rolling) => Change::Rolling,
            _ => Change::InPlace,
        };
    }
    let only = |allowed: &[&str]| changed.iter().all(|key| allowed.contains(&key.as_str()));
    let unsupported = || {
        let keys: Vec<&str> =
            changed.iter().map(String::as_str).filter(|key| *key != "Tags").collect();
        Change::Unsupported(format!(
            "changing {} of {} needs a new physical resource, which local stacks do not make for this type (delete the stack and create it again)",
            keys.join(", "),
            facts.resource_type
        ))
    };
    match facts.resource_type {
        "AWS::AutoScaling::LaunchConfiguration" => Change::Replace,
        "AWS::EC2::LaunchTemplate" => {
            if changed.contains("LaunchTemplateName") {
                Change::Replace
            } else {
                Change::InPlace
            }
        }
        "AWS::AutoScaling::AutoScalingGroup" => {
            if changed.contains("AutoScalingGroupName") {
                return Change::Replace;
            }
            let new_launch = changed.iter().any(|key| GROUP_LAUNCH_KEYS.contains(&key.as_str()));
            match (new_launch, facts.policy) {
                (true, GroupPolicy::Replacing) => Change::Replace,
                (true, GroupPolicy::Rolling) => Change::Rolling,
                _ => Change::InPlace,
            }
        }
        "AWS::ElasticLoadBalancingV2::TargetGroup" => {
            if only(TARGET_GROUP_IN_PLACE) {
                Change::InPlace
            } else {
                unsupported()
            }
        }
        "AWS::EC2::VPC"
        | "AWS::EC2::Subnet"
        | "AWS::ElasticLoadBalancingV2::LoadBalancer"
        | "AWS::ElasticLoadBalancingV2::Listener" => {
            if only(&["Tags"]) {
                Change::InPlace
            } else {
                unsupported()
            }
        }
        // Recorded only: nothing local to replace.
        _ => Change::InPlace,
    }
}

/// The top-level properties whose values differ (a property present on one
/// side only counts).
pub fn changed_keys(stored: &Json, desired: &Json) -> BTreeSet<String> {
    let empty = serde_json::Map::new();
    let stored = stored.as_object().unwrap_or(&empty);
    let desired = desired.as_object().unwrap_or(&empty);
    stored
        .keys()
        .chain(desired.keys())
        .filter(|key| stored.get(*key) != desired.get(*key))
        .cloned()
        .collect()
}

/// `AutoScalingRollingUpdate`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollingPolicy {
    /// At most this many instances are replaced at once (at least 1).
    pub max_batch_size: u32,
    /// Never fewer than this many instances in service.
    pub min_instances_in_service: u32,
    /// The share of new instances that must succeed (0 to 100).
    pub min_successful_instances_percent: u32,
    /// How long after a batch starts to wait (for signals, when
    /// `wait_on_resource_signals`).
    pub pause_time: Duration,
    pub wait_on_resource_signals: bool,
    /// How long a new instance may take to pass its health checks (the
    /// group's grace period plus the checks; not a CloudFormation setting:
    /// autopatch gates every batch on health).
    pub health_timeout: Duration,
}

/// One live (not terminating) instance of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollingInstance {
    pub id: String,
    /// It runs the target launch (image, instance type, user data, subnets).
    pub current: bool,
    /// Healthy in every target group of the group (running, without one).
    pub in_service: bool,
    /// Its `cfn-signal`: `Some(true)` success, `Some(false)` failure.
    pub signal: Option<bool>,
    /// When it was launched (the executor's clock).
    pub launched_at: Duration,
}

/// What a rolling update looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollingView {
    /// The group's desired capacity as the template says.
    pub desired: u32,
    /// The group's desired capacity right now (above `desired` while the
    /// update has grown it).
    pub capacity: u32,
    /// The live (not terminating) instances.
    pub instances: Vec<RollingInstance>,
    pub policy: RollingPolicy,
    pub now: Duration,
    /// When the current batch began (the update's last change to the group,
    /// or its start): the batch must be done within the pause time (with
    /// signals) or the health timeout, however many times the group
    /// replaces an instance that failed its checks meanwhile.
    pub batch_started: Duration,
}

/// The next move of a rolling update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollingMove {
    /// Every instance runs the target launch and is ready.
    Done,
    /// A batch is on its way (launching, signalling, passing checks, or the
    /// pause after it), or the group is still reaching its capacity.
    Wait,
    /// Terminate these old instances; with `decrement` the group's desired
    /// capacity drops by one each (undoing a [`RollingMove::Grow`]), else the
    /// group launches replacements with the target launch.
    Terminate { ids: Vec<String>, decrement: bool },
    /// Raise the desired capacity to this (temporarily above the template's)
    /// so new instances come up before old ones go: terminating first would
    /// leave fewer than `MinInstancesInService` in service.
    Grow(u32),
    /// The update fails, with CloudFormation's kind of reason.
    Fail(String),
}

/// The next move of a rolling update towards every instance running the
/// target launch, never taking the group below `MinInstancesInService`
/// instances in service and never below the template's capacity.
pub fn rolling_step(view: &RollingView) -> RollingMove {
    let policy = &view.policy;
    let desired = view.desired as usize;
    let capacity = view.capacity as usize;
    let live = view.instances.len();
    let (new, old): (Vec<&RollingInstance>, Vec<&RollingInstance>) =
        view.instances.iter().partition(|instance| instance.current);
    let ready = |instance: &RollingInstance| {
        instance.in_service && (!policy.wait_on_resource_signals || instance.signal == Some(true))
    };
    // Failures allowed by MinSuccessfulInstancesPercent, over the group.
    let must_succeed = (desired * policy.min_successful_instances_percent as usize).div_ceil(100);
    let allowed = desired.saturating_sub(must_succeed);
    let failed = new.iter().filter(|instance| instance.signal == Some(false)).count();
    if failed > allowed {
        return RollingMove::Fail(format!(
            "Received {failed} FAILURE signal(s) out of {desired}. Unable to satisfy {}% MinSuccessfulInstancesPercent requirement",
            policy.min_successful_instances_percent
        ));
    }
    let pending: Vec<&str> = new
        .iter()
        .filter(|instance| !ready(instance) && instance.signal != Some(false))
        .map(|instance| instance.id.as_str())
        .collect();
    if !pending.is_empty() || live != capacity {
        let limit = if policy.wait_on_resource_signals {
            policy.pause_time
        } else {
            policy.pause_time.max(policy.health_timeout)
        };
        if view.now < view.batch_started + limit {
            return RollingMove::Wait;
        }
        let seconds = limit.as_secs();
        return RollingMove::Fail(if pending.is_empty() {
            format!(
                "The group did not reach its capacity of {capacity} within {seconds} s ({live} running)"
            )
        } else if policy.wait_on_resource_signals {
            format!(
                "Failed to receive {} resource signal(s) for the current batch within {seconds} s ({}). Each resource signal timeout is counted as a FAILURE.",
                pending.len(),
                pending.join(", ")
            )
        } else {
            format!(
                "New instance(s) {} did not pass the target group health checks within {seconds} s",
                pending.join(", ")
            )
        });
    }
    // Without signals, CloudFormation pauses PauseTime after each batch.
    if !policy.wait_on_resource_signals
        && !old.is_empty()
        && view.now < view.batch_started + policy.pause_time
    {
        return RollingMove::Wait;
    }
    if old.is_empty() {
        return RollingMove::Done;
    }
    let batch = (policy.max_batch_size.max(1) as usize).min(old.len());
    // Out-of-service old instances first: terminating them costs nothing.
    let mut candidates: Vec<&&RollingInstance> = old.iter().collect();
    candidates.sort_by_key(|instance| (instance.in_service, instance.launched_at));
    if capacity > desired {
        // Grown earlier: the extra new instances are ready, the old go and
        // take the extra capacity with them.
        let ids =
            candidates.iter().take(batch.min(capacity - desired)).map(|i| i.id.clone()).collect();
        return RollingMove::Terminate { ids, decrement: true };
    }
    let in_service = view.instances.iter().filter(|instance| instance.in_service).count();
    let spare = in_service.saturating_sub(policy.min_instances_in_service as usize);
    let mut ids = Vec::new();
    let mut spent = 0;
    for instance in candidates {
        if ids.len() == batch {
            break;
        }
        if instance.in_service {
            if spent == spare {
                continue;
            }
            spent += 1;
        }
        ids.push(instance.id.clone());
    }
    if ids.is_empty() {
        RollingMove::Grow((capacity + batch) as u32)
    } else {
        RollingMove::Terminate { ids, decrement: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ResourceStatus as R;
    use serde_json::json;

    fn facts<'a>(resource_type: &'a str, stored: &'a Json, desired: &'a Json) -> Facts<'a> {
        Facts {
            resource_type,
            status: Some(R::CreateComplete),
            stored,
            desired,
            held: Held::Nothing,
            rolling_back: false,
            policy: GroupPolicy::None,
        }
    }

    const ASG: &str = "AWS::AutoScaling::AutoScalingGroup";

    #[test]
    fn unchanged_settled_resources_need_nothing_and_missing_ones_are_created() {
        let props = json!({"MinSize": "1"});
        assert_eq!(classify(&facts(ASG, &props, &props)), Change::None);
        let missing = Facts { status: None, ..facts(ASG, &props, &props) };
        assert_eq!(classify(&missing), Change::Create);
        let deleted = Facts { status: Some(R::DeleteComplete), ..facts(ASG, &props, &props) };
        assert_eq!(classify(&deleted), Change::Create);
    }

    #[test]
    fn a_new_launch_replaces_the_group_under_a_replacing_policy_and_rolls_under_a_rolling_one() {
        let old =
            json!({"LaunchConfigurationName": "lc-a", "MinSize": "0", "DesiredCapacity": "2"});
        let new =
            json!({"LaunchConfigurationName": "lc-b", "MinSize": "0", "DesiredCapacity": "2"});
        let base = facts(ASG, &old, &new);
        let replacing = Facts { policy: GroupPolicy::Replacing, ..base };
        assert_eq!(classify(&replacing), Change::Replace);
        assert_eq!(classify(&Facts { policy: GroupPolicy::Rolling, ..base }), Change::Rolling);
        // No policy: new instances get the new launch, old ones stay.
        assert_eq!(classify(&base), Change::InPlace);
        // A size change is in place whatever the policy.
        let bigger =
            json!({"LaunchConfigurationName": "lc-a", "MinSize": "0", "DesiredCapacity": "3"});
        let sized = Facts { desired: &bigger, ..replacing };
        assert_eq!(classify(&sized), Change::InPlace);
        let subnets = json!({"LaunchConfigurationName": "lc-a", "MinSize": "0", "DesiredCapacity": "2", "VPCZoneIdentifier": ["subnet-1"]});
        assert_eq!(classify(&Facts { desired: &subnets, ..replacing }), Change::Replace);
    }

    #[test]
    fn interrupted_work_is_resumed_and_a_rollback_restores_replaced_resources() {
        let old = json!({"LaunchConfigurationName": "lc-a"});
        let new = json!({"LaunchConfigurationName": "lc-b"});
        let replacing = Facts {
            status: Some(R::UpdateInProgress),
            held: Held::Replaced,
            policy: GroupPolicy::Replacing,
            ..facts(ASG, &new, &new)
        };
        assert_eq!(classify(&replacing), Change::Replace, "a replacement half made is finished");
        let failed = Facts { status: Some(R::UpdateFailed), rolling_back: true, ..replacing };
        assert_eq!(classify(&failed), Change::Restore);
        let done = Facts { status: Some(R::UpdateComplete), rolling_back: true, ..replacing };
        assert_eq!(classify(&done), Change::Restore, "a finished replacement is undone too");
        let settled = Facts { status: Some(R::UpdateComplete), ..replacing };
        assert_eq!(classify(&settled), Change::None, "replaced and done: cleanup deletes the old");
        // An in-place change interrupted: stored still old, desired new.
        let in_place = Facts { status: Some(R::UpdateInProgress), ..facts(ASG, &old, &new) };
        assert_eq!(classify(&in_place), Change::InPlace);
        // Rolled back while half rolled: stored equals the target, not settled.
        let rolling = Facts {
            status: Some(R::UpdateFailed),
            rolling_back: true,
            policy: GroupPolicy::Rolling,
            ..facts(ASG, &old, &old)
        };
        assert_eq!(classify(&rolling), Change::Rolling);
    }

    #[test]
    fn a_row_holding_a_resource_for_the_cleanup_is_never_replaced_again() {
        let v1 = json!({"LaunchTemplate": {"LaunchTemplateId": "lt-1", "Version": "1"}});
        let v3 = json!({"LaunchTemplate": {"LaunchTemplateId": "lt-1", "Version": "3"}});
        let replacing = GroupPolicy::Replacing;
        // Restored by the rollback, and the previous template now asks for
        // another launch: replacing it would lose the replacement the
        // cleanup must delete, and the next look would restore again.
        let restored = Facts {
            held: Held::Restored,
            rolling_back: true,
            policy: replacing,
            ..facts(ASG, &v1, &v3)
        };
        let Change::Unsupported(reason) = classify(&restored) else {
            panic!("a restored group was replaced again")
        };
        assert!(
            reason.starts_with("rolling back needs a new physical resource (LaunchTemplate of")
        );
        assert!(reason.contains("ResourcesToSkip"), "{reason}");
        // Nothing held: a rollback does not replace either.
        let plain = Facts { held: Held::Nothing, ..restored };
        assert!(matches!(classify(&plain), Change::Unsupported(_)));
        // Restored and the same launch: nothing to do; in place is fine.
        assert_eq!(classify(&Facts { desired: &v1, ..restored }), Change::None);
        let sized =
            json!({"LaunchTemplate": {"LaunchTemplateId": "lt-1", "Version": "1"}, "MaxSize": "3"});
        assert_eq!(classify(&Facts { desired: &sized, ..restored }), Change::InPlace);
        // An update whose replacement is done but whose launch changes again.
        let again = Facts {
            held: Held::Replaced,
            rolling_back: false,
            status: Some(R::UpdateComplete),
            policy: replacing,
            ..facts(ASG, &v1, &v3)
        };
        assert!(
            matches!(classify(&again), Change::Unsupported(reason) if reason.contains("second new physical resource"))
        );
        // The update's replacement, while rolling back: restored, once.
        assert_eq!(classify(&Facts { rolling_back: true, ..again }), Change::Restore);
    }

    #[test]
    fn each_type_follows_its_update_behaviour() {
        let a = json!({"ImageId": "a", "InstanceType": "t3.micro"});
        let b = json!({"ImageId": "b", "InstanceType": "t3.micro"});
        let lc = "AWS::AutoScaling::LaunchConfiguration";
        assert_eq!(classify(&facts(lc, &a, &b)), Change::Replace);
        let lt_a = json!({"LaunchTemplateData": a});
        let lt_b = json!({"LaunchTemplateData": b});
        assert_eq!(classify(&facts("AWS::EC2::LaunchTemplate", &lt_a, &lt_b)), Change::InPlace);
        let tg = "AWS::ElasticLoadBalancingV2::TargetGroup";
        let checks = (
            json!({"Port": 80, "HealthCheckPath": "/"}),
            json!({"Port": 80, "HealthCheckPath": "/health"}),
        );
        assert_eq!(classify(&facts(tg, &checks.0, &checks.1)), Change::InPlace);
        let port = json!({"Port": 8080, "HealthCheckPath": "/"});
        let Change::Unsupported(reason) = classify(&facts(tg, &checks.0, &port)) else {
            panic!("a port change needs a new target group")
        };
        assert!(reason.contains("Port of AWS::ElasticLoadBalancingV2::TargetGroup"), "{reason}");
        let vpc = "AWS::EC2::VPC";
        let tagged =
            (json!({"CidrBlock": "10.0.0.0/16"}), json!({"CidrBlock": "10.0.0.0/16", "Tags": []}));
        assert_eq!(classify(&facts(vpc, &tagged.0, &tagged.1)), Change::InPlace);
        let cidr = json!({"CidrBlock": "10.1.0.0/16"});
        assert!(matches!(classify(&facts(vpc, &tagged.0, &cidr)), Change::Unsupported(_)));
        assert_eq!(classify(&facts("AWS::IAM::Role", &a, &b)), Change::InPlace);
    }

    fn policy() -> RollingPolicy {
        RollingPolicy {
            max_batch_size: 1,
            min_instances_in_service: 1,
            min_successful_instances_percent: 100,
            pause_time: Duration::ZERO,
            wait_on_resource_signals: false,
            health_timeout: Duration::from_secs(60),
        }
    }

    fn instance(id: &str, current: bool, in_service: bool, at: u64) -> RollingInstance {
        RollingInstance {
            id: id.into(),
            current,
            in_service,
            signal: None,
            launched_at: Duration::from_secs(at),
        }
    }

    /// A group at its template capacity of 2 whose batch began at 10 s.
    fn view(instances: Vec<RollingInstance>, now: u64) -> RollingView {
        RollingView {
            desired: 2,
            capacity: 2,
            instances,
            policy: policy(),
            now: Duration::from_secs(now),
            batch_started: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_rolling_update_terminates_first_when_enough_stay_in_service() {
        let start = view(vec![instance("a", false, true, 0), instance("b", false, true, 1)], 10);
        assert_eq!(
            rolling_step(&start),
            RollingMove::Terminate { ids: vec!["a".into()], decrement: false }
        );
        // The replacement comes up: wait for it before the next batch.
        let batch = view(vec![instance("b", false, true, 1), instance("c", true, false, 10)], 11);
        assert_eq!(rolling_step(&batch), RollingMove::Wait);
        let ready = view(vec![instance("b", false, true, 1), instance("c", true, true, 10)], 14);
        assert_eq!(
            rolling_step(&ready),
            RollingMove::Terminate { ids: vec!["b".into()], decrement: false }
        );
        let done = view(vec![instance("c", true, true, 10), instance("d", true, true, 14)], 20);
        assert_eq!(rolling_step(&done), RollingMove::Done);
        let short = view(vec![instance("c", true, true, 10)], 20);
        assert_eq!(rolling_step(&short), RollingMove::Wait, "the group is still launching");
    }

    #[test]
    fn a_rolling_update_grows_first_when_terminating_would_break_min_in_service() {
        let mut start =
            view(vec![instance("a", false, true, 0), instance("b", false, true, 1)], 10);
        start.policy.min_instances_in_service = 2;
        assert_eq!(rolling_step(&start), RollingMove::Grow(3));
        let mut grown = start.clone();
        grown.capacity = 3;
        grown.instances.push(instance("c", true, true, 10));
        assert_eq!(
            rolling_step(&grown),
            RollingMove::Terminate { ids: vec!["a".into()], decrement: true }
        );
        // One in service only: an out-of-service old instance may go, a
        // healthy one may not.
        let mut sick =
            view(vec![instance("a", false, true, 0), instance("b", false, false, 1)], 10);
        sick.policy.max_batch_size = 2;
        assert_eq!(
            rolling_step(&sick),
            RollingMove::Terminate { ids: vec!["b".into()], decrement: false }
        );
    }

    #[test]
    fn signals_failures_and_timeouts_fail_the_rolling_update() {
        let mut waiting =
            view(vec![instance("b", false, true, 1), instance("c", true, true, 10)], 12);
        waiting.policy.wait_on_resource_signals = true;
        waiting.policy.pause_time = Duration::from_secs(300);
        assert_eq!(rolling_step(&waiting), RollingMove::Wait, "healthy but not signalled");
        let mut late = waiting.clone();
        late.now = Duration::from_secs(310);
        assert!(
            matches!(rolling_step(&late), RollingMove::Fail(reason) if reason.contains("Failed to receive 1 resource signal"))
        );
        let mut failed = waiting.clone();
        failed.instances[1].signal = Some(false);
        assert!(
            matches!(rolling_step(&failed), RollingMove::Fail(reason) if reason.contains("Received 1 FAILURE signal(s) out of 2"))
        );
        // 50% may fail: one failure of two is allowed.
        failed.policy.min_successful_instances_percent = 50;
        assert_eq!(
            rolling_step(&failed),
            RollingMove::Terminate { ids: vec!["b".into()], decrement: false }
        );
        let mut unhealthy =
            view(vec![instance("b", false, true, 1), instance("c", true, false, 10)], 71);
        unhealthy.policy.pause_time = Duration::ZERO;
        assert!(
            matches!(rolling_step(&unhealthy), RollingMove::Fail(reason) if reason.contains("did not pass the target group health checks"))
        );
    }

    #[test]
    fn a_group_not_at_its_capacity_is_waited_for_never_shrunk_below_the_template() {
        // One short right after a terminate: the group launches the
        // replacement; growing now would launch two.
        let short = view(vec![instance("b", false, true, 1)], 12);
        assert_eq!(rolling_step(&short), RollingMove::Wait);
        // One more than the capacity (a failed batch left it, or the group
        // is scaling in): not the update's growth, nothing to decrement.
        let over = view(
            vec![
                instance("a", true, true, 0),
                instance("b", true, true, 1),
                instance("c", false, false, 11),
            ],
            12,
        );
        assert_eq!(rolling_step(&over), RollingMove::Wait);
        // Grown by one: exactly one old instance goes with a decrement.
        let mut grown = view(
            vec![
                instance("a", false, true, 0),
                instance("b", false, true, 1),
                instance("c", true, true, 11),
            ],
            14,
        );
        grown.capacity = 3;
        grown.policy.max_batch_size = 2;
        assert_eq!(
            rolling_step(&grown),
            RollingMove::Terminate { ids: vec!["a".into()], decrement: true }
        );
    }

    #[test]
    fn the_batch_deadline_holds_however_often_the_group_replaces_a_sick_instance() {
        // The group replaced the never-healthy new instance at 65 s; the
        // batch began at 10 s and the health timeout is 60 s.
        let sick = view(vec![instance("b", false, true, 1), instance("d", true, false, 65)], 71);
        assert!(
            matches!(rolling_step(&sick), RollingMove::Fail(reason) if reason.contains("d did not pass"))
        );
        // A group that cannot launch at all fails the same way.
        let stuck = view(vec![instance("b", false, true, 1)], 71);
        assert!(
            matches!(rolling_step(&stuck), RollingMove::Fail(reason) if reason.contains("did not reach its capacity of 2"))
        );
    }

    #[test]
    fn without_signals_each_batch_is_followed_by_the_pause() {
        let mut paused =
            view(vec![instance("b", false, true, 1), instance("c", true, true, 10)], 12);
        paused.policy.pause_time = Duration::from_secs(5);
        assert_eq!(rolling_step(&paused), RollingMove::Wait);
        paused.now = Duration::from_secs(15);
        assert_eq!(
            rolling_step(&paused),
            RollingMove::Terminate { ids: vec!["b".into()], decrement: false }
        );
    }
}
