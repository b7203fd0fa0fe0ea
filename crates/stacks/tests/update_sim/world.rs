//! The model world: a durable store (the stack's status, its templates and
//! resource rows), a durable engine (instances, which outlive the daemon),
//! the daemon's non-durable fleet (the group controllers) and a virtual
//! clock. Small on purpose: a target group `TG`, a launch configuration `LC`
//! and an Auto Scaling group `ASG` of two instances behind `TG`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use autopatch_fleet::{Signal, SignalStatus};
use autopatch_model::{ResourceStatus, StackStatus};
use autopatch_stacks::update::GroupPolicy;
use serde_json::{Value as Json, json};

pub(crate) const STACK: &str = "app";
pub(crate) const STACK_ID: &str = "arn:aws:cloudformation:local:000000000000:stack/app/1";
/// The template's resources in dependency order.
pub(crate) const ORDER: [&str; 3] = ["TG", "LC", "ASG"];
pub(crate) const TG_TYPE: &str = "AWS::ElasticLoadBalancingV2::TargetGroup";
pub(crate) const LC_TYPE: &str = "AWS::AutoScaling::LaunchConfiguration";
pub(crate) const ASG_TYPE: &str = "AWS::AutoScaling::AutoScalingGroup";
/// The group's `DesiredCapacity` (and the `CreationPolicy`'s `Count`).
pub(crate) const DESIRED: u32 = 2;
pub(crate) const MAX_SIZE: u32 = 4;
/// The executor's sleep between two looks while it waits.
pub(crate) const POLL: Duration = Duration::from_secs(5);
/// A booting instance runs its user data, then `cfn-signal`.
pub(crate) const SIGNAL_AFTER: Duration = Duration::from_secs(5);
/// Healthy threshold × interval: a good instance turns `healthy` then.
pub(crate) const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// Unhealthy threshold × interval: a broken one turns `unhealthy` then.
pub(crate) const UNHEALTHY_AFTER: Duration = Duration::from_secs(10);
/// `HealthCheckGracePeriod` (the lab's groups use ELB health checks).
pub(crate) const GRACE: Duration = Duration::from_secs(20);
/// `CreationPolicy.ResourceSignal.Timeout`.
pub(crate) const SIGNAL_TIMEOUT: Duration = Duration::from_secs(60);
/// The target group's deregistration delay.
pub(crate) const DRAIN: Duration = Duration::from_secs(5);
/// How long the daemon is down after a crash (no controller runs).
pub(crate) const RESTART_TAKES: Duration = Duration::from_secs(5);
/// `AutoScalingRollingUpdate.PauseTime` (signals are awaited that long).
pub(crate) const PAUSE: Duration = Duration::from_secs(60);

/// The images a launch configuration can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Image {
    /// The image the stack runs before the update.
    A,
    /// A good new image.
    B,
    /// A broken new image whose user data fails: `cfn-signal` sends FAILURE,
    /// the web server never answers.
    BrokenSignalsFailure,
    /// A broken new image whose user data "succeeds": SUCCESS is signalled
    /// but the web server never answers the health checks.
    BrokenNeverHealthy,
}

impl Image {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Image::A => "A",
            Image::B => "B",
            Image::BrokenSignalsFailure => "B-signals-failure",
            Image::BrokenNeverHealthy => "B-never-healthy",
        }
    }

    fn from_name(name: &str) -> Option<Image> {
        [Image::A, Image::B, Image::BrokenSignalsFailure, Image::BrokenNeverHealthy]
            .into_iter()
            .find(|image| image.name() == name)
    }

    pub(crate) fn is_good(self) -> bool {
        matches!(self, Image::A | Image::B)
    }

    fn signals_success(self) -> bool {
        self != Image::BrokenSignalsFailure
    }
}

/// What a template says, as far as the simulations care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Template {
    pub(crate) image: Image,
    pub(crate) policy: GroupPolicy,
}

impl Template {
    /// The evaluated properties of `name`; `context` holds the physical ids
    /// of the resources usable for `Ref` (as `Loaded::refresh` builds it).
    pub(crate) fn desired(
        &self,
        name: &str,
        context: &BTreeMap<String, String>,
    ) -> Result<Json, String> {
        let reference = |target: &str| {
            context.get(target).cloned().ok_or_else(|| {
                format!("template.yml: Ref {target}: resource {target} is not available")
            })
        };
        Ok(match name {
            "TG" => json!({"Port": 80, "Protocol": "HTTP", "HealthCheckPath": "/"}),
            "LC" => json!({"ImageId": self.image.name(), "InstanceType": "t3.micro"}),
            "ASG" => json!({
                "LaunchConfigurationName": reference("LC")?,
                "MinSize": "0",
                "MaxSize": MAX_SIZE.to_string(),
                "DesiredCapacity": DESIRED.to_string(),
                "TargetGroupARNs": [reference("TG")?],
                "HealthCheckType": "ELB",
                "HealthCheckGracePeriod": GRACE.as_secs(),
            }),
            other => return Err(format!("resource {other} is not in the template")),
        })
    }

    /// The resource's group update policy (only the group has one).
    pub(crate) fn policy_of(&self, name: &str) -> GroupPolicy {
        if name == "ASG" { self.policy } else { GroupPolicy::None }
    }
}

/// What a row keeps of the physical resource it replaced (or, once a
/// rollback restored that one, of the replacement) until cleanup.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Replaced {
    pub(crate) physical: Option<String>,
    pub(crate) properties: Json,
    pub(crate) attributes: Json,
    pub(crate) restored: bool,
    /// The cleanup is deleting it.
    pub(crate) deleting: bool,
}

/// A stack resource row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) resource_type: &'static str,
    pub(crate) status: ResourceStatus,
    pub(crate) physical: Option<String>,
    pub(crate) properties: Json,
    pub(crate) attributes: Json,
    pub(crate) replaced: Option<Replaced>,
    /// When the row was last written (a replacement's gate counts from it).
    pub(crate) updated_at: Duration,
}

/// The durable store (SQLite in the real thing).
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub(crate) status: StackStatus,
    pub(crate) template: Template,
    /// Kept during an update for its rollback.
    pub(crate) previous: Option<Template>,
    pub(crate) rows: BTreeMap<String, Row>,
    /// Physical ids are random in the real thing: only uniqueness matters.
    next_physical: u32,
}

impl Store {
    pub(crate) fn row(&self, name: &str) -> Row {
        self.rows.get(name).cloned().unwrap_or_else(|| panic!("the store has no row {name}"))
    }

    pub(crate) fn new_physical(&mut self, name: &str) -> String {
        self.next_physical += 1;
        format!("{}-{}", name.to_lowercase(), self.next_physical)
    }

    /// The template an operation in `status` converges on: the previous one
    /// while rolling back.
    pub(crate) fn target(&self, rolling_back: bool) -> Template {
        match (rolling_back, self.previous) {
            (true, Some(previous)) => previous,
            _ => self.template,
        }
    }

    /// Physical ids usable for `Ref`: as `Loaded::refresh` in operation.rs,
    /// a resource changed in place keeps its id while it changes, a
    /// replacement counts once complete.
    pub(crate) fn context(&self) -> BTreeMap<String, String> {
        self.rows
            .iter()
            .filter(|(_, row)| match row.status {
                ResourceStatus::CreateComplete | ResourceStatus::UpdateComplete => true,
                ResourceStatus::UpdateInProgress | ResourceStatus::UpdateFailed => {
                    row.replaced.is_none()
                }
                _ => false,
            })
            .filter_map(|(name, row)| Some((name.clone(), row.physical.clone()?)))
            .collect()
    }

    /// Every physical id a row names, current or replaced.
    pub(crate) fn named(&self) -> BTreeSet<String> {
        let mut named = BTreeSet::new();
        for row in self.rows.values() {
            named.extend(row.physical.clone());
            named.extend(row.replaced.as_ref().and_then(|replaced| replaced.physical.clone()));
        }
        named
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// Launched (`InService` once its container runs: at once here).
    Live,
    /// Deregistered, draining since then.
    Terminating { since: Duration },
    /// Container removed.
    Terminated,
}

/// An instance: a container, which outlives the daemon.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Instance {
    pub(crate) id: String,
    pub(crate) group: String,
    /// The launch configuration (physical id) it was launched from.
    pub(crate) launch: String,
    pub(crate) image: Image,
    pub(crate) launched_at: Duration,
    pub(crate) lifecycle: Lifecycle,
    /// Its container exited (a fault) at this time.
    pub(crate) died_at: Option<Duration>,
    /// When its container went away (died or removed): no signal after.
    pub(crate) ended_at: Option<Duration>,
    /// A fault made it signal FAILURE.
    pub(crate) forced_failure: bool,
    /// The target group knows it (rebuilt by a restarted daemon).
    pub(crate) registered: bool,
}

impl Instance {
    pub(crate) fn is_live(&self) -> bool {
        self.lifecycle == Lifecycle::Live
    }
}

/// What a group's controller runs with (in memory only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupSpec {
    pub(crate) launch: String,
    pub(crate) image: Image,
    pub(crate) desired: u32,
    pub(crate) max: u32,
}

impl GroupSpec {
    /// The record a group's attributes keep (`autopatch:Local.Group`).
    pub(crate) fn to_json(&self) -> Json {
        json!({"Group": {
            "launch": self.launch, "image": self.image.name(),
            "desired": self.desired, "max": self.max,
        }})
    }

    pub(crate) fn from_json(attributes: &Json) -> Option<GroupSpec> {
        let group = attributes.get("Group")?;
        Some(GroupSpec {
            launch: group["launch"].as_str()?.to_owned(),
            image: Image::from_name(group["image"].as_str()?)?,
            desired: u32::try_from(group["desired"].as_u64()?).ok()?,
            max: u32::try_from(group["max"].as_u64()?).ok()?,
        })
    }
}

/// The daemon's fleet: group controllers, gone with the process.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fleet {
    pub(crate) controllers: BTreeMap<String, GroupSpec>,
}

/// The durable world: store, engine, clock.
#[derive(Debug, Clone)]
pub(crate) struct World {
    pub(crate) store: Store,
    pub(crate) instances: BTreeMap<String, Instance>,
    next_instance: u32,
    pub(crate) now: Duration,
}

impl World {
    /// A stack created from `template` (`CREATE_COMPLETE`): its group's two
    /// instances on image A have signalled and are healthy; returns the
    /// world and the running fleet.
    pub(crate) fn created(template: Template) -> (World, Fleet) {
        let mut store = Store {
            status: StackStatus::CreateComplete,
            template,
            previous: None,
            rows: BTreeMap::new(),
            next_physical: 0,
        };
        let mut context = BTreeMap::new();
        for (name, resource_type) in ORDER.into_iter().zip([TG_TYPE, LC_TYPE, ASG_TYPE]) {
            let physical = store.new_physical(name);
            let properties = template.desired(name, &context).expect("resolvable");
            let attributes = match name {
                "LC" => json!({"Launch": {"image": template.image.name()}}),
                "ASG" => GroupSpec {
                    launch: context["LC"].clone(),
                    image: template.image,
                    desired: DESIRED,
                    max: MAX_SIZE,
                }
                .to_json(),
                _ => json!({}),
            };
            context.insert(name.to_owned(), physical.clone());
            let row = Row {
                resource_type,
                status: ResourceStatus::CreateComplete,
                physical: Some(physical),
                properties,
                attributes,
                replaced: None,
                updated_at: Duration::ZERO,
            };
            store.rows.insert(name.to_owned(), row);
        }
        let mut world =
            World { store, instances: BTreeMap::new(), next_instance: 0, now: Duration::ZERO };
        let group = world.store.row("ASG");
        let spec = GroupSpec::from_json(&group.attributes).expect("a group record");
        let mut fleet = Fleet::default();
        fleet.controllers.insert(group.physical.expect("a physical id"), spec);
        world.tick(&fleet);
        world.now = Duration::from_secs(60);
        (world, fleet)
    }

    /// The instance's `cfn-signal`, if it has sent one by now.
    pub(crate) fn signal(&self, instance: &Instance) -> Option<bool> {
        if instance.forced_failure {
            return Some(false);
        }
        let at = instance.launched_at + SIGNAL_AFTER;
        let sent = self.now >= at && instance.ended_at.is_none_or(|ended| ended >= at);
        sent.then_some(instance.image.signals_success())
    }

    /// The target group routes to it.
    pub(crate) fn is_healthy(&self, instance: &Instance) -> bool {
        instance.is_live()
            && instance.registered
            && instance.died_at.is_none()
            && instance.image.is_good()
            && self.now >= instance.launched_at + HEALTHY_AFTER
    }

    /// The target group reports it `unhealthy`.
    fn is_unhealthy(&self, instance: &Instance) -> bool {
        instance.is_live()
            && instance.registered
            && (!instance.image.is_good() || instance.died_at.is_some())
            && self.now >= instance.launched_at + UNHEALTHY_AFTER
    }

    /// The targets the load balancer routes to.
    pub(crate) fn healthy_targets(&self) -> Vec<&Instance> {
        self.instances.values().filter(|instance| self.is_healthy(instance)).collect()
    }

    /// The group's instances that are not terminated, oldest first.
    pub(crate) fn instances_of<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a Instance> {
        self.instances.values().filter(move |instance| {
            instance.group == group && instance.lifecycle != Lifecycle::Terminated
        })
    }

    /// The group's live (neither terminating nor terminated) instances.
    pub(crate) fn live_of<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a Instance> {
        self.instances_of(group).filter(|instance| instance.is_live())
    }

    /// Every `cfn-signal` the group's instances sent, terminated ones too.
    pub(crate) fn signals(&self, group: &str) -> Vec<Signal> {
        self.instances
            .values()
            .filter(|instance| instance.group == group)
            .filter_map(|instance| {
                let success = self.signal(instance)?;
                Some(Signal {
                    instance_id: instance.id.clone(),
                    stack: STACK.into(),
                    resource: "ASG".into(),
                    status: if success { SignalStatus::Success } else { SignalStatus::Failure },
                    reason: None,
                    unique_id: instance.id.clone(),
                    region: None,
                })
            })
            .collect()
    }

    /// Groups that exist in the engine or the fleet: a controller runs, or
    /// some container is left.
    pub(crate) fn groups(&self, fleet: &Fleet) -> BTreeSet<String> {
        let mut groups: BTreeSet<String> = fleet.controllers.keys().cloned().collect();
        groups.extend(
            self.instances
                .values()
                .filter(|instance| instance.lifecycle != Lifecycle::Terminated)
                .map(|instance| instance.group.clone()),
        );
        groups
    }

    pub(crate) fn end(&mut self, id: &str) {
        let now = self.now;
        let instance = self.instances.get_mut(id).expect("a known instance");
        instance.lifecycle = Lifecycle::Terminated;
        instance.registered = false;
        instance.ended_at.get_or_insert(now);
    }

    pub(crate) fn begin_termination(&mut self, id: &str) {
        let now = self.now;
        let instance = self.instances.get_mut(id).expect("a known instance");
        instance.lifecycle = Lifecycle::Terminating { since: now };
        instance.registered = false;
    }

    fn launch(&mut self, group: &str, spec: &GroupSpec) -> String {
        self.next_instance += 1;
        let id = format!("i-{:03}", self.next_instance);
        let instance = Instance {
            id: id.clone(),
            group: group.to_owned(),
            launch: spec.launch.clone(),
            image: spec.image,
            launched_at: self.now,
            lifecycle: Lifecycle::Live,
            died_at: None,
            ended_at: None,
            forced_failure: false,
            registered: true,
        };
        self.instances.insert(id.clone(), instance);
        id
    }

    /// One tick of every running controller (fleet's plan.rs, small):
    /// finish drained terminations, replace dead and ELB-unhealthy
    /// instances (after the grace period), keep the desired capacity,
    /// scale in old launches first. Returns what it did.
    pub(crate) fn tick(&mut self, fleet: &Fleet) -> Vec<String> {
        let now = self.now;
        let mut did = Vec::new();
        for (group, spec) in &fleet.controllers {
            let ids: Vec<String> = self.instances_of(group).map(|i| i.id.clone()).collect();
            for id in ids {
                let instance = &self.instances[&id];
                match instance.lifecycle {
                    Lifecycle::Terminating { since } if now >= since + DRAIN => self.end(&id),
                    Lifecycle::Live if instance.died_at.is_some() => {
                        self.end(&id);
                        did.push(format!("{group}: dead {id} removed"));
                    }
                    Lifecycle::Live
                        if self.is_unhealthy(instance) && now >= instance.launched_at + GRACE =>
                    {
                        self.begin_termination(&id);
                        did.push(format!(
                            "{group}: {id} unhealthy after its grace period, terminating"
                        ));
                    }
                    _ => {}
                }
            }
            let serving: Vec<Instance> = self.live_of(group).cloned().collect();
            let target = spec.desired.min(spec.max) as usize;
            if serving.len() < target {
                for _ in serving.len()..target {
                    let id = self.launch(group, spec);
                    did.push(format!(
                        "{group}: {id} launched ({} {})",
                        spec.launch,
                        spec.image.name()
                    ));
                }
            } else if serving.len() > target {
                let mut victims = serving;
                victims.sort_by_key(|instance| {
                    let current = instance.launch == spec.launch && instance.image == spec.image;
                    (current, instance.launched_at, instance.id.clone())
                });
                for victim in victims.iter().take(victims.len() - target) {
                    self.begin_termination(&victim.id);
                    did.push(format!("{group}: {} scaled in", victim.id));
                }
            }
        }
        did
    }
}
