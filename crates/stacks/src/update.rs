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
//! | types with no local effect | the rest | `REPLACEMENT_KEYS` (a new physical id, recorded) |
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
        // Recorded only: a new physical id where CloudFormation replaces.
        recorded => {
            let replaced_by = REPLACEMENT_KEYS
                .iter()
                .find(|(resource_type, _)| *resource_type == recorded)
                .map_or(&[][..], |(_, keys)| *keys);
            if changed.iter().any(|key| replaced_by.contains(&key.as_str())) {
                Change::Replace
            } else {
                Change::InPlace
            }
        }
    }
}

/// The properties of the types local stacks only record whose change
/// CloudFormation makes by replacement ("Update requires: Replacement" in
/// each type's reference; the resource schema's `createOnlyProperties`):
/// the resource gets a new physical id (and new attributes), so `Ref`s and
/// exports made from it change. Every other property of these types is
/// changed in place; `AWS::EC2::InternetGateway` and `AWS::IAM::Policy`
/// have no such property.
const REPLACEMENT_KEYS: &[(&str, &[&str])] = &[
    (
        "AWS::EC2::EIP",
        &["Address", "Domain", "IpamPoolId", "NetworkBorderGroup", "TransferAddress"],
    ),
    (
        "AWS::EC2::NatGateway",
        &[
            "AllocationId",
            "AvailabilityMode",
            "ConnectivityType",
            "PrivateIpAddress",
            "SubnetId",
            "VpcId",
        ],
    ),
    (
        "AWS::EC2::Route",
        &[
            "DestinationCidrBlock",
            "DestinationIpv6CidrBlock",
            "DestinationPrefixListId",
            "RouteTableId",
        ],
    ),
    ("AWS::EC2::RouteTable", &["VpcId"]),
    ("AWS::EC2::SecurityGroup", &["GroupDescription", "GroupName", "VpcId"]),
    ("AWS::EC2::SubnetRouteTableAssociation", &["RouteTableId", "SubnetId"]),
    ("AWS::EC2::VPCGatewayAttachment", &["VpcId"]),
    ("AWS::IAM::InstanceProfile", &["InstanceProfileName", "Path"]),
    ("AWS::IAM::Role", &["Path", "RoleName"]),
];

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
    /// Passes the health gate ([`passes_health_gate`]): running, and
    /// healthy in every target group of the group that a listener uses.
    pub in_service: bool,
    /// Its `cfn-signal`: `Some(true)` success, `Some(false)` failure.
    pub signal: Option<bool>,
    /// When it was launched (the executor's clock).
    pub launched_at: Duration,
}

/// Whether an instance passes an update's health gate (a rolling batch's,
/// a replacing update's new group's): it runs (`running`) and is `healthy`
/// in every target group it is registered with that a listener uses.
/// `states` are its target states, one per target group of its group
/// (`None`: not registered yet). A target group no listener uses reports
/// its targets `unused`, as on AWS: nothing checks their health and no
/// traffic reaches them, so such a target group does not gate.
pub fn passes_health_gate(running: bool, states: &[Option<&str>]) -> bool {
    running && states.iter().all(|state| matches!(state, Some("healthy" | "unused")))
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

/// Why a batch did not finish in time, naming what did not happen: the
/// signals not received (with `WaitOnResourceSignals`), the instances that
/// did not pass their health checks (signalled or not waiting for signals),
/// or the capacity not reached.
fn batch_failure(
    policy: &RollingPolicy,
    pending: &[&RollingInstance],
    limit: Duration,
    capacity: usize,
    live: usize,
) -> String {
    let seconds = limit.as_secs();
    if pending.is_empty() {
        return format!(
            "The group did not reach its capacity of {capacity} within {seconds} s ({live} running)"
        );
    }
    let ids = |instances: &[&&RollingInstance]| {
        instances.iter().map(|instance| instance.id.as_str()).collect::<Vec<_>>().join(", ")
    };
    let (unsignalled, unhealthy): (Vec<&&RollingInstance>, Vec<&&RollingInstance>) = pending
        .iter()
        .partition(|instance| policy.wait_on_resource_signals && instance.signal.is_none());
    let mut reasons = Vec::new();
    if !unsignalled.is_empty() {
        reasons.push(format!(
            "Failed to receive {} resource signal(s) for the current batch within {seconds} s ({}). Each resource signal timeout is counted as a FAILURE.",
            unsignalled.len(),
            ids(&unsignalled)
        ));
    }
    if !unhealthy.is_empty() {
        let signalled = if policy.wait_on_resource_signals { " signalled SUCCESS but" } else { "" };
        reasons.push(format!(
            "New instance(s) {}{signalled} did not pass the target group health checks within {seconds} s",
            ids(&unhealthy)
        ));
    }
    reasons.join(" ")
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
    // New instances not ready yet (a FAILURE signal is counted above).
    let pending: Vec<&RollingInstance> = new
        .iter()
        .copied()
        .filter(|instance| !ready(instance) && instance.signal != Some(false))
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
        return RollingMove::Fail(batch_failure(policy, &pending, limit, capacity, live));
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

/// The progress events of a rolling update, in CloudFormation's words
/// ("Rolling update initiated. ...", "Terminating instance(s) [...]",
/// "Successfully terminated instance(s) [...] (Progress 50%).", ...): the
/// executor shows it each look at the group ([`RollingProgress::observe`])
/// and each move it makes ([`RollingProgress::moved`]), and records what
/// they return as the group's `UPDATE_IN_PROGRESS` events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollingProgress {
    started: bool,
    /// Old instances when the update began (what 100% is).
    obsolete: usize,
    /// Old instances terminated so far.
    terminated: usize,
    /// Batches terminating, until their instances are gone.
    terminating: Vec<Vec<String>>,
    /// New instances already reported.
    seen: BTreeSet<String>,
}

impl RollingProgress {
    /// What to report after a look at the group: `view` as [`rolling_step`]
    /// gets it, `remaining` the ids of every instance not yet terminated
    /// (terminating ones included).
    pub fn observe(&mut self, view: &RollingView, remaining: &BTreeSet<String>) -> Vec<String> {
        let policy = &view.policy;
        let mut events = Vec::new();
        let current: BTreeSet<String> = view
            .instances
            .iter()
            .filter(|instance| instance.current)
            .map(|instance| instance.id.clone())
            .collect();
        if !self.started {
            self.started = true;
            self.seen.clone_from(&current);
            self.obsolete = view.instances.len() - current.len();
            if self.obsolete > 0 {
                let keeping = match policy.min_instances_in_service {
                    0 => String::new(),
                    min => format!(", while keeping at least {min} instance(s) in service"),
                };
                let waiting = if policy.wait_on_resource_signals {
                    format!(
                        " Waiting on resource signals with a timeout of {} when new instances are added to the autoscaling group.",
                        iso_duration(policy.pause_time)
                    )
                } else {
                    String::new()
                };
                events.push(format!(
                    "Rolling update initiated. Terminating {} obsolete instance(s) in batches of {}{keeping}.{waiting}",
                    self.obsolete,
                    policy.max_batch_size.max(1)
                ));
            }
        }
        let (gone, still): (Vec<Vec<String>>, Vec<Vec<String>>) =
            std::mem::take(&mut self.terminating)
                .into_iter()
                .partition(|batch| batch.iter().all(|id| !remaining.contains(id)));
        self.terminating = still;
        for batch in gone {
            self.terminated += batch.len();
            let progress = match self.obsolete {
                0 => 100,
                total => ((self.terminated * 100 + total / 2) / total).min(100),
            };
            events.push(format!(
                "Successfully terminated instance(s) [{}] (Progress {progress}%).",
                batch.join(",")
            ));
        }
        let added: Vec<String> = current.difference(&self.seen).cloned().collect();
        if !added.is_empty() {
            self.seen.extend(added.iter().cloned());
            if policy.wait_on_resource_signals {
                events.push(format!(
                    "New instance(s) added to autoscaling group - Waiting on {} resource signal(s) with a timeout of {}.",
                    added.len(),
                    iso_duration(policy.pause_time)
                ));
            }
        }
        events
    }

    /// What to report of a move the executor makes.
    pub fn moved(&mut self, rolling_move: &RollingMove) -> Vec<String> {
        match rolling_move {
            RollingMove::Grow(capacity) => vec![format!(
                "Temporarily setting autoscaling group MinSize and DesiredCapacity to {capacity}."
            )],
            RollingMove::Terminate { ids, decrement } => {
                self.terminating.push(ids.clone());
                let replacing = if *decrement { 0 } else { ids.len() };
                vec![format!(
                    "Terminating instance(s) [{}]; replacing with {replacing} new instance(s).",
                    ids.join(",")
                )]
            }
            RollingMove::Done | RollingMove::Wait | RollingMove::Fail(_) => Vec::new(),
        }
    }
}

/// A duration as an ISO 8601 duration, as templates write `PauseTime`
/// (`PT5M`, `PT1M30S`, `PT0S`).
pub fn iso_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (hours, minutes, rest) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut text = String::from("PT");
    if hours > 0 {
        text.push_str(&format!("{hours}H"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}M"));
    }
    if rest > 0 || seconds == 0 {
        text.push_str(&format!("{rest}S"));
    }
    text
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

    /// QA s10 L5: a recorded-only type is replaced (a new physical id)
    /// where CloudFormation replaces it, and changed in place elsewhere.
    #[test]
    fn recorded_types_are_replaced_where_cloudformation_replaces_them() {
        let sg = "AWS::EC2::SecurityGroup";
        let old = json!({"GroupDescription": "a", "SecurityGroupIngress": []});
        for (changed, expected) in [
            (json!({"GroupDescription": "b", "SecurityGroupIngress": []}), Change::Replace),
            (
                json!({"GroupDescription": "a", "GroupName": "n", "SecurityGroupIngress": []}),
                Change::Replace,
            ),
            (
                json!({"GroupDescription": "a", "VpcId": "vpc-1", "SecurityGroupIngress": []}),
                Change::Replace,
            ),
            (
                json!({"GroupDescription": "a", "SecurityGroupIngress": [{"IpProtocol": "tcp"}]}),
                Change::InPlace,
            ),
            (
                json!({"GroupDescription": "a", "SecurityGroupIngress": [], "Tags": []}),
                Change::InPlace,
            ),
        ] {
            assert_eq!(classify(&facts(sg, &old, &changed)), expected, "{changed}");
        }
        let role = "AWS::IAM::Role";
        let path = (json!({"Path": "/"}), json!({"Path": "/app/"}));
        assert_eq!(classify(&facts(role, &path.0, &path.1)), Change::Replace);
        let policies = (json!({"Path": "/"}), json!({"Path": "/", "Policies": []}));
        assert_eq!(classify(&facts(role, &policies.0, &policies.1)), Change::InPlace);
        let eip = "AWS::EC2::EIP";
        let domain = (json!({"Domain": "vpc"}), json!({"Domain": "standard"}));
        assert_eq!(classify(&facts(eip, &domain.0, &domain.1)), Change::Replace);
        let gateway = "AWS::EC2::InternetGateway";
        let tags = (json!({}), json!({"Tags": [{"Key": "k", "Value": "v"}]}));
        assert_eq!(classify(&facts(gateway, &tags.0, &tags.1)), Change::InPlace);
        // A rollback does not replace, as for every type.
        let back = Facts { rolling_back: true, ..facts(sg, &old, &domain.0) };
        assert!(matches!(classify(&back), Change::Unsupported(_)));
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

    /// QA s10 H1: an instance that signalled SUCCESS but is not in service
    /// (not yet healthy behind a listener) is not blamed on its signal.
    #[test]
    fn a_batch_timeout_names_what_did_not_happen() {
        let mut batch = view(
            vec![
                instance("b", false, true, 1),
                instance("c", true, false, 10),
                instance("d", true, true, 10),
            ],
            71,
        );
        batch.capacity = 3;
        batch.desired = 3;
        batch.policy.wait_on_resource_signals = true;
        batch.policy.pause_time = Duration::from_secs(60);
        batch.instances[1].signal = Some(true);
        let RollingMove::Fail(reason) = rolling_step(&batch) else { panic!("the batch timed out") };
        assert_eq!(
            reason,
            "Failed to receive 1 resource signal(s) for the current batch within 60 s (d). Each resource signal timeout is counted as a FAILURE. New instance(s) c signalled SUCCESS but did not pass the target group health checks within 60 s"
        );
        batch.instances[2].signal = Some(true);
        let RollingMove::Fail(reason) = rolling_step(&batch) else { panic!("the batch timed out") };
        assert_eq!(
            reason,
            "New instance(s) c signalled SUCCESS but did not pass the target group health checks within 60 s"
        );
    }

    #[test]
    fn only_target_groups_a_listener_uses_gate_on_health() {
        // Registered with a target group no listener uses: `unused`.
        assert!(passes_health_gate(true, &[Some("unused")]));
        assert!(passes_health_gate(true, &[Some("healthy"), Some("unused")]));
        assert!(passes_health_gate(true, &[]), "no target group: running is enough");
        assert!(!passes_health_gate(false, &[Some("unused")]), "not running");
        assert!(!passes_health_gate(false, &[]));
        for state in ["initial", "unhealthy", "draining"] {
            assert!(!passes_health_gate(true, &[Some(state), Some("unused")]), "{state}");
        }
        assert!(!passes_health_gate(true, &[None]), "not registered yet");
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

    /// QA s10 L6: a rolling update reports its batches as CloudFormation
    /// does (the wording of AWS's events for the same update).
    #[test]
    fn a_rolling_update_reports_its_batches_in_cloudformations_words() {
        let ids = |ids: &[&str]| ids.iter().map(|id| id.to_string()).collect::<BTreeSet<_>>();
        let mut progress = RollingProgress::default();
        let mut start =
            view(vec![instance("a", false, true, 0), instance("b", false, true, 1)], 10);
        start.policy.wait_on_resource_signals = true;
        start.policy.pause_time = Duration::from_secs(300);
        assert_eq!(
            progress.observe(&start, &ids(&["a", "b"])),
            [
                "Rolling update initiated. Terminating 2 obsolete instance(s) in batches of 1, while keeping at least 1 instance(s) in service. Waiting on resource signals with a timeout of PT5M when new instances are added to the autoscaling group."
            ]
        );
        let terminate = RollingMove::Terminate { ids: vec!["a".into()], decrement: false };
        assert_eq!(
            progress.moved(&terminate),
            ["Terminating instance(s) [a]; replacing with 1 new instance(s)."]
        );
        let mut batch = start.clone();
        batch.instances = vec![instance("b", false, true, 1), instance("c", true, false, 11)];
        assert_eq!(
            progress.observe(&batch, &ids(&["a", "b", "c"])),
            [
                "New instance(s) added to autoscaling group - Waiting on 1 resource signal(s) with a timeout of PT5M."
            ]
        );
        assert!(progress.observe(&batch, &ids(&["a", "b", "c"])).is_empty(), "said once");
        assert_eq!(
            progress.observe(&batch, &ids(&["b", "c"])),
            ["Successfully terminated instance(s) [a] (Progress 50%)."]
        );
        assert_eq!(
            progress.moved(&RollingMove::Grow(3)),
            ["Temporarily setting autoscaling group MinSize and DesiredCapacity to 3."]
        );
        let last = RollingMove::Terminate { ids: vec!["b".into()], decrement: true };
        assert_eq!(
            progress.moved(&last),
            ["Terminating instance(s) [b]; replacing with 0 new instance(s)."]
        );
        let mut done = batch.clone();
        done.instances = vec![instance("c", true, true, 11), instance("d", true, true, 20)];
        assert_eq!(
            progress.observe(&done, &ids(&["c", "d"])),
            [
                "Successfully terminated instance(s) [b] (Progress 100%).",
                "New instance(s) added to autoscaling group - Waiting on 1 resource signal(s) with a timeout of PT5M."
            ]
        );
        // Without signals and with none kept in service, AWS says less.
        let mut plain = RollingProgress::default();
        let mut quiet = start.clone();
        quiet.policy.wait_on_resource_signals = false;
        quiet.policy.min_instances_in_service = 0;
        assert_eq!(
            plain.observe(&quiet, &ids(&["a", "b"])),
            ["Rolling update initiated. Terminating 2 obsolete instance(s) in batches of 1."]
        );
        assert_eq!(iso_duration(Duration::from_secs(90)), "PT1M30S");
        assert_eq!(iso_duration(Duration::from_secs(3600)), "PT1H");
        assert_eq!(iso_duration(Duration::ZERO), "PT0S");
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
