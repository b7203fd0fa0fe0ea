//! Resource handlers: what creating, deleting and re-adopting each
//! supported resource type does locally.
//!
//! | type | local effect |
//! |------|--------------|
//! | `AWS::EC2::VPC` | an engine network `autopatch-<vpc id>` |
//! | `AWS::EC2::Subnet` | a zone label: instances in it run in its availability zone |
//! | `AWS::ElasticLoadBalancingV2::LoadBalancer` | a loopback address (port reserved) |
//! | `AWS::ElasticLoadBalancingV2::TargetGroup` | health-check settings, targets |
//! | `AWS::ElasticLoadBalancingV2::Listener` | autopatch's proxy on that address |
//! | `AWS::AutoScaling::LaunchConfiguration`, `AWS::EC2::LaunchTemplate` | a resolved image, instance type and user data |
//! | `AWS::AutoScaling::AutoScalingGroup` | a fleet of containers kept at capacity |
//! | the rest of [`ACCEPTED_TYPES`] | recorded with their attributes, no local effect |
//!
//! Handlers are idempotent: the executor writes a resource's physical id
//! before calling them, and calls them again after a crash.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use autopatch_documents::cloudformation::Value;
use autopatch_engine::Engine;
use autopatch_fleet::{GroupSpec, HealthCheckType, LaunchTemplate, Zone, error_chain as chain};
use autopatch_imagebuilder::Unresolved;
use autopatch_loadbalancer::{
    HealthCheckPort, HealthCheckSettings, HttpProber, LoadBalancer, LoadBalancerConfig, Matcher,
};
use autopatch_model::{ResourceStatus, StackStatus, Timestamp};
use autopatch_store::LifecycleState;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::clock;
use crate::planner::{SignalVerdict, signal_verdict};
use crate::props::Props;
use crate::runtime::{Runtime, TargetGroupRuntime, lock};
use crate::service::ListenerPorts;
use crate::update::{
    RollingInstance, RollingMove, RollingPolicy, RollingProgress, RollingView, passes_health_gate,
    rolling_step,
};

/// Types with a local effect.
pub const LIVE_TYPES: &[&str] = &[
    "AWS::AutoScaling::AutoScalingGroup",
    "AWS::AutoScaling::LaunchConfiguration",
    "AWS::EC2::LaunchTemplate",
    "AWS::EC2::Subnet",
    "AWS::EC2::VPC",
    "AWS::ElasticLoadBalancingV2::Listener",
    "AWS::ElasticLoadBalancingV2::LoadBalancer",
    "AWS::ElasticLoadBalancingV2::TargetGroup",
];

/// Types accepted and recorded with their attributes, with no local effect
/// (networking and IAM have no meaning on one host; security groups are not
/// enforced: every instance port is published on 127.0.0.1 only).
pub const ACCEPTED_TYPES: &[&str] = &[
    "AWS::EC2::EIP",
    "AWS::EC2::InternetGateway",
    "AWS::EC2::NatGateway",
    "AWS::EC2::Route",
    "AWS::EC2::RouteTable",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::IAM::InstanceProfile",
    "AWS::IAM::Policy",
    "AWS::IAM::Role",
];

/// Why a launch configuration's image does not resolve, naming the image as
/// the template gives it.
pub(crate) fn image_problem(image: &str, reason: &Unresolved) -> String {
    match reason.expected() {
        Some(expected) => format!("image {image} does not exist: {expected}"),
        None => reason.to_string(),
    }
}

/// Whether stacks can create `resource_type`.
pub fn supported(resource_type: &str) -> bool {
    LIVE_TYPES.contains(&resource_type) || ACCEPTED_TYPES.contains(&resource_type)
}

/// Every type stacks can create, for messages.
pub fn supported_types() -> Vec<&'static str> {
    let mut types: Vec<&str> = LIVE_TYPES.iter().chain(ACCEPTED_TYPES).copied().collect();
    types.sort_unstable();
    types
}

/// The facts a handler gets.
pub(crate) struct Request<'a> {
    pub(crate) stack_id: &'a str,
    pub(crate) stack_name: &'a str,
    pub(crate) logical_id: &'a str,
    pub(crate) resource_type: &'a str,
    pub(crate) physical_id: &'a str,
    pub(crate) properties: &'a Value,
    /// `CreationPolicy.ResourceSignal`: count and timeout.
    pub(crate) signals: Option<(u32, Duration)>,
    /// When creation started (persisted, so a resumed wait keeps its deadline).
    pub(crate) started_at: Timestamp,
    /// A new Auto Scaling group must also pass its target groups' health
    /// checks (a replacing update's gate).
    pub(crate) health_gate: bool,
    /// The stack's status while this runs: a change (a cancel) ends waits.
    pub(crate) operation: StackStatus,
    /// The resource's status while this runs (`CREATE_IN_PROGRESS`,
    /// `UPDATE_IN_PROGRESS`): the status of its progress events.
    pub(crate) in_progress: ResourceStatus,
}

/// How long a replacing update's gate may take without a `CreationPolicy`.
const DEFAULT_GATE_TIMEOUT: Duration = Duration::from_secs(300);

/// A new physical id for a resource, in the shape AWS gives that type.
pub(crate) fn physical_id(
    resource_type: &str,
    stack_name: &str,
    logical_id: &str,
    region: &str,
    account: &str,
) -> String {
    let hex = |n: usize| random_hex(n);
    let named = || format!("{stack_name}-{logical_id}-{}", hex(12).to_uppercase());
    match resource_type {
        "AWS::EC2::VPC" => format!("vpc-{}", hex(17)),
        "AWS::EC2::Subnet" => format!("subnet-{}", hex(17)),
        "AWS::EC2::InternetGateway" => format!("igw-{}", hex(17)),
        "AWS::EC2::NatGateway" => format!("nat-{}", hex(17)),
        "AWS::EC2::RouteTable" => format!("rtb-{}", hex(17)),
        "AWS::EC2::SubnetRouteTableAssociation" => format!("rtbassoc-{}", hex(17)),
        "AWS::EC2::SecurityGroup" => format!("sg-{}", hex(17)),
        "AWS::EC2::LaunchTemplate" => format!("lt-{}", hex(17)),
        // EIP's Ref is its public address: one from the documentation range.
        "AWS::EC2::EIP" => {
            let n = u8::from_str_radix(&hex(2), 16).unwrap_or(1).max(1);
            format!("198.51.100.{n}")
        }
        "AWS::ElasticLoadBalancingV2::LoadBalancer" => {
            format!(
                "arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/app/{}/{}",
                short(stack_name, logical_id),
                hex(16)
            )
        }
        "AWS::ElasticLoadBalancingV2::TargetGroup" => {
            format!(
                "arn:aws:elasticloadbalancing:{region}:{account}:targetgroup/{}/{}",
                short(stack_name, logical_id),
                hex(16)
            )
        }
        "AWS::ElasticLoadBalancingV2::Listener" => {
            format!(
                "arn:aws:elasticloadbalancing:{region}:{account}:listener/app/{}/{}/{}",
                short(stack_name, logical_id),
                hex(16),
                hex(16)
            )
        }
        _ => named(),
    }
}

/// ALB and target group names: at most 32 characters.
fn short(stack_name: &str, logical_id: &str) -> String {
    let mut name = format!("{stack_name}-{logical_id}");
    name.truncate(25);
    format!("{}-{}", name.trim_end_matches('-'), random_hex(6))
}

/// A random id in UUID form (stack ids, event ids).
pub(crate) fn uuid() -> String {
    let hex = random_hex(32);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

pub(crate) fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out.truncate(n);
    out
}

/// What a launch configuration or launch template resolved to, kept in its
/// attributes so groups (and a restarted daemon) can use it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LaunchRecord {
    image: String,
    image_id: String,
    engine_image_id: String,
    instance_type: String,
    user_data: Option<String>,
    security_groups: Vec<String>,
}

/// What an Auto Scaling group runs with, kept in its attributes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct GroupRecord {
    launch_name: String,
    launch: LaunchRecord,
    min_size: u32,
    max_size: u32,
    desired_capacity: u32,
    zones: Vec<(String, Option<String>)>,
    network: String,
    target_port: Option<u16>,
    health_check_elb: bool,
    grace_seconds: u64,
    target_groups: Vec<String>,
    tags: std::collections::BTreeMap<String, String>,
}

const LOCAL: &str = "autopatch:Local";

/// The loopback address a load balancer or listener row says its resource
/// serves on: a load balancer's reserved port (with free ports), a
/// listener's address. What a restarted daemon binds again for it.
pub(crate) fn recorded_address(resource_type: &str, attributes: &Json) -> Option<SocketAddr> {
    match resource_type {
        "AWS::ElasticLoadBalancingV2::LoadBalancer" => {
            let port = u16::try_from(attributes[LOCAL]["Port"].as_u64()?).ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)))
        }
        "AWS::ElasticLoadBalancingV2::Listener" => {
            attributes[LOCAL]["Address"].as_str()?.parse().ok()
        }
        _ => None,
    }
}

impl<E: Engine + 'static> Runtime<E> {
    /// Creates (or finishes creating) a resource; returns its attributes.
    pub(crate) async fn create_resource(&self, request: &Request<'_>) -> Result<Json, String> {
        let props = Props::new(request.properties);
        let physical = request.physical_id;
        match request.resource_type {
            "AWS::EC2::VPC" => {
                let network = format!("autopatch-{physical}");
                let labels = self.vpc_labels(request.stack_id, physical);
                self.engine.network_ensure_labelled(&network, &labels).await.map_err(|error| {
                    format!("create engine network {network}: {}", chain(&error))
                })?;
                let cidr = props.text("CidrBlock")?.unwrap_or_else(|| "10.0.0.0/16".into());
                Ok(json!({
                    "VpcId": physical, "CidrBlock": cidr, "CidrBlockAssociations": [],
                    "DefaultNetworkAcl": format!("acl-{}", random_hex(17)),
                    "DefaultSecurityGroup": format!("sg-{}", random_hex(17)),
                    "Ipv6CidrBlocks": [], LOCAL: {"Network": network},
                }))
            }
            "AWS::EC2::Subnet" => {
                let zones = crate::context::zones(&self.config.region);
                let zone = match props.text("AvailabilityZone")? {
                    Some(zone) => zone,
                    None => zones[0].clone(),
                };
                let vpc = props.text("VpcId")?.unwrap_or_default();
                Ok(json!({
                    "SubnetId": physical, "AvailabilityZone": zone,
                    "AvailabilityZoneId": zone, "VpcId": vpc,
                    "CidrBlock": props.text("CidrBlock")?.unwrap_or_default(),
                    "Ipv6CidrBlocks": [], "NetworkAclAssociationId": format!("aclassoc-{}", random_hex(17)),
                    "OutpostArn": "",
                }))
            }
            "AWS::ElasticLoadBalancingV2::LoadBalancer" => self.create_load_balancer(physical),
            "AWS::ElasticLoadBalancingV2::TargetGroup" => {
                let (config, port) = target_group_config(&props)?;
                let runtime = Arc::new(TargetGroupRuntime::new(
                    physical.to_owned(),
                    config,
                    port,
                    BTreeSet::new(),
                    self.store.clone(),
                ));
                lock(&self.target_groups).entry(physical.to_owned()).or_insert(runtime);
                let name = physical.rsplit('/').nth(1).unwrap_or(physical).to_owned();
                Ok(json!({
                    "TargetGroupArn": physical, "TargetGroupName": name,
                    "TargetGroupFullName": physical.split(':').next_back().unwrap_or(physical),
                    "LoadBalancerArns": [], LOCAL: {"Port": port},
                }))
            }
            "AWS::ElasticLoadBalancingV2::Listener" => {
                let attributes = self.create_listener(physical, &props, None).await?;
                Ok(attributes)
            }
            "AWS::AutoScaling::LaunchConfiguration" => {
                let launch = self
                    .resolve_launch(
                        props.text("ImageId")?,
                        props.text("InstanceType")?,
                        props.text("UserData")?,
                        props.texts("SecurityGroups")?,
                    )
                    .await?;
                Ok(json!({ LOCAL: {"Launch": launch} }))
            }
            "AWS::EC2::LaunchTemplate" => {
                let launch = self.resolve_launch_template(&props).await?;
                let name = props.text("LaunchTemplateName")?.unwrap_or_else(|| physical.to_owned());
                Ok(json!({
                    "LaunchTemplateId": physical, "LatestVersionNumber": "1",
                    "DefaultVersionNumber": "1", LOCAL: {"Launch": launch, "Name": name},
                }))
            }
            "AWS::AutoScaling::AutoScalingGroup" => self.create_group(request, &props).await,
            other if ACCEPTED_TYPES.contains(&other) => {
                Ok(accepted_attributes(other, physical, &props, request))
            }
            other => Err(format!("resource type {other} is not supported locally")),
        }
    }

    /// Deletes a resource; a thing already gone counts as deleted.
    pub(crate) async fn delete_resource(
        &self,
        resource_type: &str,
        physical: &str,
        attributes: &Json,
    ) -> Result<(), String> {
        match resource_type {
            "AWS::EC2::VPC" => {
                let network = format!("autopatch-{physical}");
                self.engine
                    .network_remove(&network)
                    .await
                    .map_err(|error| format!("remove engine network {network}: {}", chain(&error)))
            }
            "AWS::ElasticLoadBalancingV2::LoadBalancer" => {
                lock(&self.reserved_ports).remove(physical);
                Ok(())
            }
            "AWS::ElasticLoadBalancingV2::TargetGroup" => {
                let removed = lock(&self.target_groups).remove(physical);
                if let Some(balancer) = removed.and_then(|group| group.detach()) {
                    balancer.shutdown().await;
                }
                Ok(())
            }
            "AWS::ElasticLoadBalancingV2::Listener" => {
                let group = attributes[LOCAL]["TargetGroupArn"].as_str().unwrap_or_default();
                if let Some(balancer) = self.target_group(group).and_then(|group| group.detach()) {
                    balancer.shutdown().await;
                }
                Ok(())
            }
            "AWS::AutoScaling::AutoScalingGroup" => {
                let drain = match attributes[LOCAL]["DrainSeconds"].as_u64() {
                    Some(seconds) => seconds,
                    None => self.registered_drain_seconds(physical)?,
                };
                self.fleet.delete_group(physical, Duration::from_secs(drain)).await.map_err(
                    |error| format!("delete Auto Scaling group {physical}: {}", chain(&error)),
                )
            }
            _ => Ok(()),
        }
    }

    /// Keeps a resource its stack stops managing (`why`: the policy that
    /// keeps it, `DeletionPolicy` or `UpdateReplacePolicy`), as far as that
    /// means anything locally; returns what was kept, for the event:
    /// - an Auto Scaling group is released: its controller stops, its
    ///   instances leave their target groups and their containers run on,
    ///   unmanaged, marked retained (no orphan sweep removes them);
    /// - a VPC's engine network stays;
    /// - a load balancer's port, a target group's health checks and a
    ///   listener's proxy are the daemon's own, and it serves only what a
    ///   stack manages (a restart rebuilds only that): they stop, as when
    ///   deleted;
    /// - the other types have no local effect: nothing to keep.
    pub(crate) async fn retain_resource(
        &self,
        stack: &autopatch_store::StackRow,
        resource_type: &str,
        physical: &str,
        attributes: &Json,
        why: &str,
    ) -> Result<Option<String>, String> {
        match resource_type {
            "AWS::AutoScaling::AutoScalingGroup" => {
                let reason = format!(
                    "retained by stack {} ({why}: Retain): no longer in Auto Scaling group {physical}, its container runs on, unmanaged",
                    stack.name
                );
                let kept = self.fleet.release_group(physical, &reason).await.map_err(|error| {
                    format!("release Auto Scaling group {physical}: {}", chain(&error))
                })?;
                Ok(Some(match kept.as_slice() {
                    [] => "Retained: the group had no instance running".to_owned(),
                    ids => format!(
                        "Retained: {} instance(s) keep running, no longer managed: [{}]",
                        ids.len(),
                        ids.join(",")
                    ),
                }))
            }
            "AWS::EC2::VPC" => {
                Ok(Some(format!("Retained: engine network autopatch-{physical} kept")))
            }
            "AWS::ElasticLoadBalancingV2::LoadBalancer"
            | "AWS::ElasticLoadBalancingV2::TargetGroup"
            | "AWS::ElasticLoadBalancingV2::Listener" => {
                self.delete_resource(resource_type, physical, attributes).await?;
                Ok(Some(
                    "Retained as a record: the local load balancer serves only resources a stack manages, so it stopped serving this one"
                        .to_owned(),
                ))
            }
            _ => Ok(None),
        }
    }

    /// How long a group's targets may drain when its attributes do not say
    /// (a group no row names, a row whose creation never recorded them): the
    /// longest deregistration delay of the target groups its live instances
    /// are registered with here, 0 when none (nothing to drain). It only
    /// bounds the wait: draining ends as soon as no request is in flight.
    fn registered_drain_seconds(&self, group: &str) -> Result<u64, String> {
        let instances = self.store.instances_of_group(group, false).map_err(|error| {
            format!("list the instances of Auto Scaling group {group}: {}", chain(&error))
        })?;
        let target_groups: Vec<Arc<TargetGroupRuntime>> =
            lock(&self.target_groups).values().cloned().collect();
        Ok(target_groups
            .iter()
            .filter(|target_group| {
                instances.iter().any(|instance| {
                    autopatch_fleet::TargetGroupHandle::state(
                        target_group.as_ref(),
                        &instance.instance_id,
                    )
                    .is_some()
                })
            })
            .map(|target_group| target_group.config().deregistration_delay.as_secs())
            .max()
            .unwrap_or(0))
    }

    /// Brings a created resource of the stack `stack_id` back to life in a
    /// new daemon process.
    pub(crate) async fn adopt_resource(
        &self,
        stack_id: &str,
        resource_type: &str,
        physical: &str,
        properties: &Value,
        attributes: &Json,
    ) -> Result<(), String> {
        let props = Props::new(properties);
        match resource_type {
            "AWS::ElasticLoadBalancingV2::LoadBalancer" => {
                if let Some(addr) = recorded_address(resource_type, attributes) {
                    // The socket the daemon bound before recovery, if it did.
                    let early = lock(&self.early_sockets).remove(&addr);
                    if let Some(listener) =
                        early.or_else(|| LoadBalancer::reserve_listener(addr).ok())
                    {
                        lock(&self.reserved_ports).insert(physical.to_owned(), listener);
                    }
                }
                Ok(())
            }
            "AWS::ElasticLoadBalancingV2::TargetGroup" => {
                let (config, port) = target_group_config(&props)?;
                let adoptable = self
                    .store
                    .live_instances()
                    .map_err(|error| chain(&error))?
                    .into_iter()
                    .filter(|instance| instance.target_health.as_deref() == Some("healthy"))
                    .map(|instance| instance.instance_id)
                    .collect();
                let runtime = Arc::new(TargetGroupRuntime::new(
                    physical.to_owned(),
                    config,
                    port,
                    adoptable,
                    self.store.clone(),
                ));
                lock(&self.target_groups).insert(physical.to_owned(), runtime);
                Ok(())
            }
            "AWS::ElasticLoadBalancingV2::Listener" => {
                let address =
                    attributes[LOCAL]["Address"].as_str().and_then(|text| text.parse().ok());
                self.create_listener(physical, &props, address).await.map(|_| ())
            }
            "AWS::AutoScaling::AutoScalingGroup" => {
                let record: GroupRecord =
                    serde_json::from_value(attributes[LOCAL]["Group"].clone())
                        .map_err(|error| format!("read the group's record: {error}"))?;
                self.start_group(physical, stack_id, &record).await
            }
            _ => Ok(()),
        }
    }

    fn create_load_balancer(&self, physical: &str) -> Result<Json, String> {
        let name = physical.rsplit('/').nth(1).unwrap_or(physical).to_owned();
        let mut attributes = json!({
            "LoadBalancerName": name,
            "LoadBalancerFullName": physical.split_once(":loadbalancer/").map(|(_, rest)| rest).unwrap_or(physical),
            "CanonicalHostedZoneID": "Z0000000LOCAL",
            "SecurityGroups": [],
        });
        let dns = match self.config.listener_ports {
            ListenerPorts::Template => "127.0.0.1".to_owned(),
            ListenerPorts::Free => {
                let existing = lock(&self.reserved_ports)
                    .get(physical)
                    .and_then(|listener| listener.local_addr().ok());
                let addr = match existing {
                    Some(addr) => addr,
                    None => {
                        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
                        let listener = LoadBalancer::reserve_listener(any).map_err(|error| {
                            format!("reserve a loopback port: {}", chain(&error))
                        })?;
                        let addr = listener.local_addr().map_err(|error| chain(&error))?;
                        lock(&self.reserved_ports).insert(physical.to_owned(), listener);
                        addr
                    }
                };
                attributes[LOCAL] = json!({"Port": addr.port()});
                addr.to_string()
            }
        };
        attributes["DNSName"] = Json::String(dns);
        Ok(attributes)
    }

    /// Starts the proxy for a listener: on `address` when re-adopting, else
    /// on the load balancer's reserved port (or the template's port).
    async fn create_listener(
        &self,
        physical: &str,
        props: &Props<'_>,
        address: Option<SocketAddr>,
    ) -> Result<Json, String> {
        let group_arn = forward_target_group(props)?;
        let group = self.target_group(&group_arn).ok_or_else(|| {
            format!("target group {group_arn} is not known here: listeners forward to target groups of stacks on this host")
        })?;
        if group.is_attached() {
            // Created before a crash: already serving.
            return Ok(listener_attributes(physical, &group_arn, address));
        }
        let load_balancer = props.required_text("LoadBalancerArn")?;
        let template_port = props.number("Port")?.unwrap_or(80) as u16;
        // The load balancer's reserved socket is handed over when it is the
        // address wanted (always, with free ports), so no other process can
        // take the port in between.
        let reserved = lock(&self.reserved_ports).remove(&load_balancer);
        let reserved_addr = reserved.as_ref().and_then(|listener| listener.local_addr().ok());
        let listen = match (address, self.config.listener_ports) {
            (Some(address), _) => address,
            (None, ListenerPorts::Template) => {
                SocketAddr::from((Ipv4Addr::LOCALHOST, template_port))
            }
            (None, ListenerPorts::Free) => {
                reserved_addr.unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            }
        };
        let mut config = group.config();
        config.worker_threads = self.config.load_balancer_threads;
        let prober = Arc::new(HttpProber);
        // Known targets are in before the first connection is accepted.
        let initial = group.initial_targets();
        let socket = match reserved {
            Some(listener) if reserved_addr == Some(listen) => Some(listener),
            other => {
                if let Some(listener) = other {
                    lock(&self.reserved_ports).insert(load_balancer.clone(), listener);
                }
                // Re-adopting: the socket the daemon bound before recovery
                // (with the template's ports, the load balancer reserves none).
                lock(&self.early_sockets).remove(&listen)
            }
        };
        let started = match socket {
            Some(listener) => {
                LoadBalancer::start_on_with_targets(listener, config, prober, initial.clone()).await
            }
            None => LoadBalancer::start_with_targets(listen, config, prober, initial.clone()).await,
        };
        let balancer = started
            .map_err(|error| format!("start the load balancer on {listen}: {}", chain(&error)))?;
        let local = balancer.local_addr();
        group.attach(balancer, &initial);
        Ok(listener_attributes(physical, &group_arn, Some(local)))
    }

    /// A launch template's `LaunchTemplateData`, resolved as a launch.
    async fn resolve_launch_template(&self, props: &Props<'_>) -> Result<LaunchRecord, String> {
        let data =
            props.object("LaunchTemplateData").ok_or("property LaunchTemplateData is required")?;
        self.resolve_launch(
            data.text("ImageId")?,
            data.text("InstanceType")?,
            data.text("UserData")?,
            data.texts("SecurityGroupIds")?,
        )
        .await
    }

    async fn resolve_launch(
        &self,
        image: Option<String>,
        instance_type: Option<String>,
        user_data: Option<String>,
        security_groups: Vec<String>,
    ) -> Result<LaunchRecord, String> {
        let image = image.ok_or("property ImageId is required")?;
        let resolved =
            autopatch_imagebuilder::resolve_parent(&self.store, self.engine.as_ref(), &image)
                .await
                .map_err(|error| format!("look up image {image}: {}", chain(&error)))?
                .map_err(|reason| image_problem(&image, &reason))?;
        let instance_type = instance_type.unwrap_or_else(|| "m1.small".into());
        if let Err(error) = autopatch_fleet::instance_type(&instance_type) {
            return Err(chain(&error));
        }
        let user_data = user_data.map(|text| decode_user_data(&text));
        Ok(LaunchRecord {
            image_id: resolved.image_version.clone().unwrap_or_else(|| image.clone()),
            image: resolved.engine_reference,
            engine_image_id: resolved.engine_image_id,
            instance_type,
            user_data,
            security_groups,
        })
    }

    async fn create_group(&self, request: &Request<'_>, props: &Props<'_>) -> Result<Json, String> {
        let (record, drain) = self.group_record(props)?;
        self.start_group(request.physical_id, request.stack_id, &record).await?;
        let arn = format!(
            "arn:aws:autoscaling:{}:{}:autoScalingGroup:{}:autoScalingGroupName/{}",
            self.config.region,
            self.config.account_id,
            random_hex(8),
            request.physical_id
        );
        let attributes = with_group_record(json!({ "AutoScalingGroupARN": arn }), &record, drain);
        // The gate's deadline: the signal timeout, from when creation began.
        let timeout = request.signals.map_or(DEFAULT_GATE_TIMEOUT, |(_, timeout)| timeout);
        let elapsed = Duration::from_millis(clock::now().since(request.started_at).max(0) as u64);
        let deadline = tokio::time::Instant::now() + timeout.saturating_sub(elapsed);
        if let Some((count, _)) = request.signals {
            self.wait_for_signals(request, count, deadline).await?;
        }
        if request.health_gate {
            self.wait_for_health(request, &record, deadline, timeout).await?;
        }
        Ok(attributes)
    }

    /// What an Auto Scaling group's properties ask for, and the longest
    /// deregistration delay of its target groups (seconds).
    fn group_record(&self, props: &Props<'_>) -> Result<(GroupRecord, u64), String> {
        let launch_name = match props.text("LaunchConfigurationName")? {
            Some(name) => name,
            None => {
                let template = props
                    .object("LaunchTemplate")
                    .ok_or("one of LaunchConfigurationName and LaunchTemplate is required")?;
                template
                    .text("LaunchTemplateId")?
                    .or(template.text("LaunchTemplateName")?)
                    .ok_or("LaunchTemplate needs LaunchTemplateId or LaunchTemplateName")?
            }
        };
        let launch = self.find_launch(&launch_name)?;
        let min_size = props.number("MinSize")?.ok_or("property MinSize is required")? as u32;
        let max_size = props.number("MaxSize")?.ok_or("property MaxSize is required")? as u32;
        let desired = props.number("DesiredCapacity")?.map(|n| n as u32).unwrap_or(min_size);
        if min_size > max_size || desired < min_size || desired > max_size {
            return Err(format!(
                "MinSize {min_size}, DesiredCapacity {desired} and MaxSize {max_size} must satisfy min <= desired <= max"
            ));
        }
        let subnets = props.texts("VPCZoneIdentifier")?;
        let mut zones = Vec::new();
        let mut network = None;
        for subnet in &subnets {
            let (zone, vpc_network) = self.subnet_zone(subnet)?;
            network = network.or(vpc_network);
            zones.push((zone, Some(subnet.clone())));
        }
        if zones.is_empty() {
            let named = props.texts("AvailabilityZones")?;
            let named =
                if named.is_empty() { crate::context::zones(&self.config.region) } else { named };
            zones = named.into_iter().map(|zone| (zone, None)).collect();
        }
        let target_groups = props.texts("TargetGroupARNs")?;
        let mut target_port = None;
        let mut drain = 0;
        for arn in &target_groups {
            let group = self
                .target_group(arn)
                .ok_or_else(|| format!("target group {arn} is not known here"))?;
            target_port = target_port.or(Some(group.port));
            drain = drain.max(group.config().deregistration_delay.as_secs());
        }
        let health_check_elb = match props.text("HealthCheckType")?.as_deref() {
            None | Some("EC2") => false,
            Some("ELB") => true,
            Some(other) => {
                return Err(format!(
                    "property HealthCheckType: expected EC2 or ELB, found {other:?}"
                ));
            }
        };
        let mut tags = std::collections::BTreeMap::new();
        for tag in props.objects("Tags") {
            if tag.boolean("PropagateAtLaunch")?.unwrap_or(false) {
                tags.insert(tag.required_text("Key")?, tag.text("Value")?.unwrap_or_default());
            }
        }
        let record = GroupRecord {
            launch_name,
            launch,
            min_size,
            max_size,
            desired_capacity: desired,
            zones,
            network: network.unwrap_or_else(|| "autopatch".into()),
            target_port,
            health_check_elb,
            grace_seconds: props.number("HealthCheckGracePeriod")?.unwrap_or(0),
            target_groups,
            tags,
        };
        Ok((record, drain))
    }

    async fn start_group(
        &self,
        name: &str,
        stack_id: &str,
        record: &GroupRecord,
    ) -> Result<(), String> {
        let mut target_groups: Vec<Arc<dyn autopatch_fleet::TargetGroupHandle>> = Vec::new();
        for arn in &record.target_groups {
            let group = self
                .target_group(arn)
                .ok_or_else(|| format!("target group {arn} is not known here"))?;
            target_groups.push(group);
        }
        let spec = self.group_spec(name, stack_id, record);
        self.fleet
            .start_group(spec, target_groups)
            .await
            .map_err(|error| format!("start Auto Scaling group {name}: {}", chain(&error)))
    }

    /// The fleet's view of a group record. Every group is a stack's, so every
    /// instance it launches carries the stack's id (`autopatch.stack`), after
    /// a restart too.
    fn group_spec(&self, name: &str, stack_id: &str, record: &GroupRecord) -> GroupSpec {
        GroupSpec {
            name: name.to_owned(),
            stack_id: Some(stack_id.to_owned()),
            launch: LaunchTemplate {
                name: record.launch_name.clone(),
                image: record.launch.image.clone(),
                image_id: record.launch.image_id.clone(),
                engine_image_id: record.launch.engine_image_id.clone(),
                instance_type: record.launch.instance_type.clone(),
                user_data: record.launch.user_data.clone(),
                security_groups: record.launch.security_groups.clone(),
            },
            min_size: record.min_size,
            max_size: record.max_size,
            desired_capacity: record.desired_capacity,
            zones: record
                .zones
                .iter()
                .map(|(name, subnet)| Zone { name: name.clone(), subnet_id: subnet.clone() })
                .collect(),
            network: record.network.clone(),
            target_port: record.target_port,
            health_check_type: if record.health_check_elb {
                HealthCheckType::Elb
            } else {
                HealthCheckType::Ec2
            },
            health_check_grace_period: Duration::from_secs(record.grace_seconds),
            tags: record.tags.clone(),
            region: self.config.region.clone(),
        }
    }

    /// Waits for `count` success signals from the group's instances; a
    /// failure signal or the timeout fails the resource.
    async fn wait_for_signals(
        &self,
        request: &Request<'_>,
        count: u32,
        deadline: tokio::time::Instant,
    ) -> Result<(), String> {
        let mut announced = self.announced(request)?;
        loop {
            self.check_interrupted(request)?;
            let signals = self
                .fleet
                .signals(request.physical_id)
                .map_err(|error| format!("read signals: {}", chain(&error)))?;
            self.announce_signals(request, &signals, None, &mut announced)?;
            let received = match signal_verdict(
                &signals,
                [request.stack_name, request.stack_id],
                request.logical_id,
                count,
            ) {
                SignalVerdict::Satisfied => return Ok(()),
                SignalVerdict::Failed(reason) => return Err(reason),
                SignalVerdict::Waiting { received } => received,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "Failed to receive {count} resource signal(s) within the specified duration ({received} received)"
                ));
            }
            tokio::time::sleep(self.config.fleet_interval.min(Duration::from_millis(500))).await;
        }
    }

    /// The gate of a replacing update: every instance of the new group
    /// passes its target groups' health checks (so it takes traffic) before
    /// the old group goes. Only target groups a listener uses check health:
    /// in the others, a running instance's target is `unused` and passes.
    async fn wait_for_health(
        &self,
        request: &Request<'_>,
        record: &GroupRecord,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<(), String> {
        if record.target_groups.is_empty() {
            return Ok(());
        }
        let groups: Vec<Arc<TargetGroupRuntime>> =
            record.target_groups.iter().filter_map(|arn| self.target_group(arn)).collect();
        loop {
            self.check_interrupted(request)?;
            let healthy = self
                .fleet
                .instances(request.physical_id)
                .map_err(|error| format!("list the group's instances: {}", chain(&error)))?
                .iter()
                .filter(|row| gate_passed(&groups, row))
                .count();
            if healthy >= record.desired_capacity as usize {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "{healthy} of {} new instance(s) passed the target group health checks within {} s",
                    record.desired_capacity,
                    timeout.as_secs()
                ));
            }
            tokio::time::sleep(self.config.fleet_interval.min(Duration::from_millis(250))).await;
        }
    }

    /// Records `Received SUCCESS signal with UniqueId ...` (CloudFormation's
    /// event) once for each SUCCESS signal for the resource not recorded
    /// yet (`announced`: the reasons its events already give), from any of
    /// the group's instances, or only from those of `from`.
    fn announce_signals(
        &self,
        request: &Request<'_>,
        signals: &[autopatch_fleet::Signal],
        from: Option<&BTreeSet<&str>>,
        announced: &mut BTreeSet<String>,
    ) -> Result<(), String> {
        for signal in signals {
            let ours = signal.resource == request.logical_id
                && [request.stack_name, request.stack_id].contains(&signal.stack.as_str())
                && signal.status == autopatch_fleet::SignalStatus::Success
                && from.is_none_or(|from| from.contains(signal.instance_id.as_str()));
            let reason = format!("Received SUCCESS signal with UniqueId {}", signal.unique_id);
            if ours && !announced.contains(&reason) {
                self.progress(request, &reason)?;
                announced.insert(reason);
            }
        }
        Ok(())
    }

    /// An operation's wait ends early when the stack's status changed under
    /// it (`CancelUpdateStack`).
    fn check_interrupted(&self, request: &Request<'_>) -> Result<(), String> {
        let status = self
            .store
            .stack(request.stack_id)
            .map_err(|error| format!("read the stack: {}", chain(&error)))?
            .map(|stack| stack.status);
        match status {
            Some(status) if status == request.operation => Ok(()),
            Some(StackStatus::UpdateRollbackInProgress) => Err("Resource update cancelled".into()),
            _ => Err("Resource operation cancelled".into()),
        }
    }

    /// Changes a resource in place (same physical id); returns its new
    /// attributes (`stored`: the properties it has so far, `previous`: its
    /// attributes so far).
    pub(crate) async fn update_resource(
        &self,
        request: &Request<'_>,
        stored: &Json,
        previous: &Json,
    ) -> Result<Json, String> {
        let props = Props::new(request.properties);
        match request.resource_type {
            "AWS::AutoScaling::AutoScalingGroup" => {
                let (record, drain) = self.group_record(&props)?;
                let spec = self.group_spec(request.physical_id, request.stack_id, &record);
                self.fleet.update_group(spec).map_err(|error| {
                    format!("update Auto Scaling group {}: {}", request.physical_id, chain(&error))
                })?;
                Ok(with_group_record(previous.clone(), &record, drain))
            }
            "AWS::EC2::LaunchTemplate" => {
                // The image is looked up again in every case: a launch
                // template whose image is gone cannot launch, and says so.
                let launch = self.resolve_launch_template(&props).await?;
                let desired = crate::context::to_json(request.properties);
                let rolling_back = request.operation == StackStatus::UpdateRollbackInProgress;
                let mut attributes = if &desired == stored {
                    // The same data again (a change interrupted, or the
                    // rollback of one that failed): no new version.
                    previous.clone()
                } else if let Some(rolled_back) =
                    rolling_back.then(|| launch_template_rolled_back(previous, &desired)).flatten()
                {
                    rolled_back
                } else {
                    new_launch_template_version(previous, stored)
                };
                attributes[LOCAL]["Launch"] = json!(launch);
                Ok(attributes)
            }
            "AWS::ElasticLoadBalancingV2::TargetGroup" => {
                let (config, _) = target_group_config(&props)?;
                let group = self.target_group(request.physical_id).ok_or_else(|| {
                    format!("target group {} is not known here", request.physical_id)
                })?;
                group.reconfigure(config)?;
                Ok(previous.clone())
            }
            // Tags, and types with no local effect: recorded only.
            _ => Ok(previous.clone()),
        }
    }

    /// `AutoScalingRollingUpdate`: replaces the group's instances in batches
    /// with ones from the new launch, as [`rolling_step`] decides; returns
    /// the group's new attributes (`previous`: its attributes so far).
    pub(crate) async fn roll_group(
        &self,
        request: &Request<'_>,
        previous: &Json,
        mut policy: RollingPolicy,
    ) -> Result<Json, String> {
        let props = Props::new(request.properties);
        let (record, drain) = self.group_record(&props)?;
        if policy.min_instances_in_service >= record.max_size {
            // AWS's words; the request refuses what it knows before.
            return Err(
                "MinInstancesInService must be less than the autoscaling group's MaxSize".into()
            );
        }
        let name = request.physical_id;
        let target_groups: Vec<Arc<TargetGroupRuntime>> =
            record.target_groups.iter().filter_map(|arn| self.target_group(arn)).collect();
        // A new instance gets its grace period, a minute to boot, and its
        // healthy checks before it counts as failed.
        let checks = target_groups
            .iter()
            .map(|group| {
                let check = group.config().health_check;
                check.interval * (check.healthy_threshold + 1)
            })
            .max()
            .unwrap_or_default();
        policy.health_timeout =
            Duration::from_secs(record.grace_seconds) + Duration::from_secs(60) + checks;
        let template_spec = self.group_spec(name, request.stack_id, &record);
        let fleet_error = |error: autopatch_fleet::FleetError| {
            format!("Auto Scaling group {name}: {}", chain(&error))
        };
        // The new launch for every instance launched from now on; a capacity
        // the update had grown to before a restart is kept.
        let mut spec = template_spec.clone();
        if let Some(status) = self.fleet.group_status(name)
            && status.spec.desired_capacity > spec.desired_capacity
        {
            spec.desired_capacity = status.spec.desired_capacity;
            spec.max_size = spec.max_size.max(spec.desired_capacity);
        }
        self.fleet.update_group(spec).map_err(fleet_error)?;
        let now = || Duration::from_millis(clock::now().0.max(0) as u64);
        let mut batch_started = now();
        let mut progress = RollingProgress::default();
        let mut announced = self.announced(request)?;
        let outcome = loop {
            if let Err(reason) = self.check_interrupted(request) {
                break Err(reason);
            }
            let rows = self.fleet.instances(name).map_err(fleet_error)?;
            let signals = self.fleet.signals(name).map_err(fleet_error)?;
            let current_spec = self
                .fleet
                .group_status(name)
                .map(|status| status.spec)
                .ok_or_else(|| format!("Auto Scaling group {name} is not running here"))?;
            let instances = rows
                .iter()
                .filter(|row| row.lifecycle != LifecycleState::Terminating)
                .map(|row| RollingInstance {
                    id: row.instance_id.clone(),
                    current: row.launch_config == record.launch_name
                        && row.image == record.launch.image_id,
                    in_service: gate_passed(&target_groups, row),
                    signal: signals
                        .iter()
                        .rfind(|signal| {
                            signal.instance_id == row.instance_id
                                && signal.resource == request.logical_id
                                && [request.stack_name, request.stack_id]
                                    .contains(&signal.stack.as_str())
                        })
                        .map(|signal| signal.status == autopatch_fleet::SignalStatus::Success),
                    launched_at: Duration::from_millis(row.launched_at.0.max(0) as u64),
                })
                .collect();
            let view = RollingView {
                desired: record.desired_capacity,
                capacity: current_spec.desired_capacity,
                instances,
                policy: policy.clone(),
                now: now(),
                batch_started,
            };
            let remaining = rows.iter().map(|row| row.instance_id.clone()).collect();
            for reason in progress.observe(&view, &remaining) {
                self.progress(request, &reason)?;
            }
            let new: BTreeSet<&str> = view
                .instances
                .iter()
                .filter(|instance| instance.current)
                .map(|instance| instance.id.as_str())
                .collect();
            self.announce_signals(request, &signals, Some(&new), &mut announced)?;
            let step = rolling_step(&view);
            for reason in progress.moved(&step) {
                self.progress(request, &reason)?;
            }
            match step {
                RollingMove::Done => break Ok(()),
                // The group is left as it is: the rollback rolls it back
                // from there.
                RollingMove::Fail(reason) => break Err(reason),
                RollingMove::Wait => {}
                RollingMove::Grow(capacity) => {
                    let grown = GroupSpec {
                        desired_capacity: capacity,
                        max_size: current_spec.max_size.max(capacity),
                        ..current_spec
                    };
                    self.fleet.update_group(grown).map_err(fleet_error)?;
                    batch_started = now();
                }
                RollingMove::Terminate { ids, decrement } => {
                    for id in ids {
                        self.fleet.terminate_instance(name, &id, decrement).map_err(fleet_error)?;
                    }
                    batch_started = now();
                }
            }
            tokio::time::sleep(self.config.fleet_interval.min(Duration::from_millis(250))).await;
        };
        if outcome.is_ok() {
            // Back to the template's capacity and size.
            self.fleet.update_group(template_spec).map_err(fleet_error)?;
        }
        outcome?;
        Ok(with_group_record(previous.clone(), &record, drain))
    }

    /// A launch configuration or template of any stack, by physical id or
    /// (templates) name.
    fn find_launch(&self, name: &str) -> Result<LaunchRecord, String> {
        let found = self
            .store
            .stack_resource_by_physical_id(name)
            .map_err(|error| chain(&error))?
            .or_else(|| self.store.launch_template_by_name(name).ok().flatten());
        let Some(row) = found else {
            return Err(format!("launch configuration or template {name} does not exist"));
        };
        let attributes: Json = serde_json::from_str(&row.attributes).unwrap_or_default();
        serde_json::from_value(attributes[LOCAL]["Launch"].clone())
            .map_err(|error| format!("launch configuration {name} has no launch record: {error}"))
    }

    /// The zone of a subnet of any stack, and its VPC's engine network.
    fn subnet_zone(&self, subnet: &str) -> Result<(String, Option<String>), String> {
        let row = self
            .store
            .stack_resource_by_physical_id(subnet)
            .map_err(|error| chain(&error))?
            .ok_or_else(|| {
                format!("subnet {subnet} does not exist (create the stack that declares it first)")
            })?;
        let attributes: Json = serde_json::from_str(&row.attributes).unwrap_or_default();
        let zone = attributes["AvailabilityZone"].as_str().unwrap_or_default().to_owned();
        let vpc = attributes["VpcId"].as_str().unwrap_or_default();
        let network = self
            .store
            .stack_resource_by_physical_id(vpc)
            .ok()
            .flatten()
            .map(|_| format!("autopatch-{vpc}"));
        Ok((zone, network))
    }
}

/// A launch template's attributes with a new version current (the next
/// `LatestVersionNumber`), remembering the version it replaces (`stored`:
/// that version's properties) for a rollback.
fn new_launch_template_version(previous: &Json, stored: &Json) -> Json {
    let version = previous["LatestVersionNumber"]
        .as_str()
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(1)
        + 1;
    let mut attributes = previous.clone();
    attributes["LatestVersionNumber"] = json!(version.to_string());
    attributes["DefaultVersionNumber"] = json!(version.to_string());
    attributes[LOCAL]["Prior"] = json!({
        "LatestVersionNumber": previous["LatestVersionNumber"],
        "DefaultVersionNumber": previous["DefaultVersionNumber"],
        "Launch": previous[LOCAL]["Launch"],
        "Properties": stored,
    });
    attributes
}

/// A launch template rolled back to `desired` (the previous template's
/// properties): when the version its last update replaced has exactly those
/// properties, that version is current again, as CloudFormation's rollback
/// makes it (it makes no new version; the one the update made is left
/// unused). So `GetAtt LatestVersionNumber` is what it was before the
/// update, and the group launched from it is what the rollback restores,
/// not a group to replace. `None` when the remembered version is not that.
/// The launch is the remembered version's (the caller may resolve it anew).
pub(crate) fn launch_template_rolled_back(attributes: &Json, desired: &Json) -> Option<Json> {
    let prior = &attributes[LOCAL]["Prior"];
    if prior.is_null() || &prior["Properties"] != desired {
        return None;
    }
    let mut rolled_back = attributes.clone();
    rolled_back["LatestVersionNumber"] = prior["LatestVersionNumber"].clone();
    rolled_back["DefaultVersionNumber"] = prior["DefaultVersionNumber"].clone();
    rolled_back[LOCAL]["Launch"] = prior["Launch"].clone();
    if let Some(local) = rolled_back[LOCAL].as_object_mut() {
        local.remove("Prior");
    }
    Some(rolled_back)
}

/// Whether the instance passes an update's health gate
/// ([`passes_health_gate`]): in service, and `healthy` in every one of
/// `groups` that a listener uses (the others report it `unused`).
fn gate_passed(groups: &[Arc<TargetGroupRuntime>], row: &autopatch_store::InstanceRow) -> bool {
    let states: Vec<Option<String>> = groups
        .iter()
        .map(|group| autopatch_fleet::TargetGroupHandle::state(group.as_ref(), &row.instance_id))
        .collect();
    let states: Vec<Option<&str>> = states.iter().map(Option::as_deref).collect();
    passes_health_gate(row.lifecycle == LifecycleState::InService, &states)
}

/// A group's attributes with its record (`previous`: the ARN and whatever
/// else it had).
fn with_group_record(mut attributes: Json, record: &GroupRecord, drain: u64) -> Json {
    attributes[LOCAL] = json!({"Group": record, "DrainSeconds": drain});
    attributes
}

fn listener_attributes(physical: &str, group_arn: &str, address: Option<SocketAddr>) -> Json {
    json!({
        "ListenerArn": physical,
        LOCAL: {"TargetGroupArn": group_arn, "Address": address.map(|a| a.to_string())},
    })
}

/// The target group a listener's default action forwards to.
fn forward_target_group(props: &Props<'_>) -> Result<String, String> {
    for action in props.objects("DefaultActions") {
        if action.text("Type")?.as_deref() != Some("forward") {
            continue;
        }
        if let Some(arn) = action.text("TargetGroupArn")? {
            return Ok(arn);
        }
        if let Some(config) = action.object("ForwardConfig")
            && let Some(first) = config.objects("TargetGroups").first()
        {
            return first.required_text("TargetGroupArn");
        }
    }
    Err("DefaultActions: a forward action to a target group is required (the only kind supported locally)".into())
}

/// A target group's settings from its properties, AWS's defaults where
/// omitted (HTTP target groups: 30 s interval, 5 s timeout, thresholds 5
/// and 2, matcher 200, deregistration delay 300 s).
fn target_group_config(props: &Props<'_>) -> Result<(LoadBalancerConfig, u16), String> {
    if let Some(protocol) = props.text("Protocol")?
        && protocol != "HTTP"
    {
        return Err(format!("property Protocol: only HTTP is supported locally, found {protocol}"));
    }
    let port = props.number("Port")?.unwrap_or(80) as u16;
    let defaults = HealthCheckSettings::default();
    let seconds = |key: &str, default: Duration| -> Result<Duration, String> {
        Ok(props.number(key)?.map(Duration::from_secs).unwrap_or(default))
    };
    let interval = seconds("HealthCheckIntervalSeconds", Duration::from_secs(30))?;
    let health_check = HealthCheckSettings {
        path: props.text("HealthCheckPath")?.unwrap_or(defaults.path),
        port: match props.text("HealthCheckPort")? {
            Some(text) => HealthCheckPort::parse(&text)
                .map_err(|error| format!("property HealthCheckPort: {error}"))?,
            None => HealthCheckPort::TrafficPort,
        },
        interval,
        // AWS's default is 5 s; a shorter interval (a local timing) caps it.
        timeout: seconds("HealthCheckTimeoutSeconds", Duration::from_secs(5).min(interval))?,
        healthy_threshold: props.number("HealthyThresholdCount")?.map(|n| n as u32).unwrap_or(5),
        unhealthy_threshold: props
            .number("UnhealthyThresholdCount")?
            .map(|n| n as u32)
            .unwrap_or(2),
        matcher: match props.object("Matcher").map(|m| m.text("HttpCode")).transpose()?.flatten() {
            Some(code) => Matcher::parse(&code)
                .map_err(|error| format!("property Matcher.HttpCode: {error}"))?,
            None => Matcher::default(),
        },
    };
    health_check.validate().map_err(|error| format!("health check settings: {error}"))?;
    let mut deregistration_delay = Duration::from_secs(300);
    for attribute in props.objects("TargetGroupAttributes") {
        if attribute.text("Key")?.as_deref() == Some("deregistration_delay.timeout_seconds") {
            let value = attribute.required_text("Value")?;
            let seconds: u64 = value.parse().map_err(|_| {
                format!("deregistration_delay.timeout_seconds: expected seconds, found {value:?}")
            })?;
            deregistration_delay = Duration::from_secs(seconds);
        }
    }
    let config =
        LoadBalancerConfig { health_check, deregistration_delay, ..LoadBalancerConfig::default() };
    Ok((config, port))
}

/// User data as the instance runs it: base64 (what `Fn::Base64` gives, as
/// on AWS) is decoded; anything else is taken as plain text.
fn decode_user_data(text: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| text.to_owned())
}

/// The attributes of a type with no local effect, with plausible values.
fn accepted_attributes(
    resource_type: &str,
    physical: &str,
    props: &Props<'_>,
    request: &Request<'_>,
) -> Json {
    let arn =
        |service: &str, kind: &str| format!("arn:aws:{service}::000000000000:{kind}/{physical}");
    match resource_type {
        "AWS::EC2::EIP" => {
            json!({"PublicIp": physical, "AllocationId": format!("eipalloc-{}", random_hex(17))})
        }
        "AWS::EC2::InternetGateway" => json!({"InternetGatewayId": physical}),
        "AWS::EC2::NatGateway" => {
            json!({"NatGatewayId": physical, "EniId": format!("eni-{}", random_hex(17))})
        }
        "AWS::EC2::Route" => {
            json!({"CidrBlock": props.text("DestinationCidrBlock").ok().flatten()})
        }
        "AWS::EC2::RouteTable" => json!({"RouteTableId": physical}),
        "AWS::EC2::SecurityGroup" => json!({
            "GroupId": physical, "Id": physical,
            "VpcId": props.text("VpcId").ok().flatten(),
        }),
        "AWS::EC2::SubnetRouteTableAssociation" => json!({"Id": physical}),
        "AWS::EC2::VPCGatewayAttachment" => json!({"AttachmentType": "InternetGateway"}),
        "AWS::IAM::Role" => {
            json!({"Arn": arn("iam", "role"), "RoleId": format!("AROA{}", random_hex(17).to_uppercase())})
        }
        "AWS::IAM::InstanceProfile" => json!({"Arn": arn("iam", "instance-profile")}),
        "AWS::IAM::Policy" => json!({"Id": physical}),
        _ => json!({"LogicalId": request.logical_id}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_ids_have_aws_shapes() {
        let vpc = physical_id("AWS::EC2::VPC", "base", "Vpc", "local", "000000000000");
        assert!(vpc.starts_with("vpc-") && vpc.len() == 21, "{vpc}");
        let tg = physical_id(
            "AWS::ElasticLoadBalancingV2::TargetGroup",
            "app",
            "TG",
            "local",
            "000000000000",
        );
        assert!(
            tg.starts_with("arn:aws:elasticloadbalancing:local:000000000000:targetgroup/app-TG-"),
            "{tg}"
        );
        let group =
            physical_id("AWS::AutoScaling::AutoScalingGroup", "app", "Pattern3ASG", "local", "0");
        assert!(group.starts_with("app-Pattern3ASG-"), "{group}");
        assert_ne!(
            physical_id("AWS::EC2::VPC", "s", "V", "r", "a"),
            physical_id("AWS::EC2::VPC", "s", "V", "r", "a")
        );
    }

    #[test]
    fn user_data_is_decoded_when_base64() {
        assert_eq!(decode_user_data("IyEvYmluL3NoCmVjaG8gaGk="), "#!/bin/sh\necho hi");
        assert_eq!(decode_user_data("#!/bin/sh\necho hi"), "#!/bin/sh\necho hi");
    }

    #[test]
    fn target_group_defaults_are_aws_and_properties_override_them() {
        let value = Value::Map(
            [
                ("Port".to_owned(), Value::Number("8080".into())),
                ("HealthCheckIntervalSeconds".to_owned(), Value::Number("2".into())),
                ("HealthyThresholdCount".to_owned(), Value::Number("2".into())),
                (
                    "TargetGroupAttributes".to_owned(),
                    Value::List(vec![Value::Map(
                        [
                            (
                                "Key".to_owned(),
                                Value::String("deregistration_delay.timeout_seconds".into()),
                            ),
                            ("Value".to_owned(), Value::String("5".into())),
                        ]
                        .into(),
                    )]),
                ),
            ]
            .into(),
        );
        let (config, port) = target_group_config(&Props::new(&value)).unwrap();
        assert_eq!(port, 8080);
        assert_eq!(config.health_check.interval, Duration::from_secs(2));
        assert_eq!(config.health_check.timeout, Duration::from_secs(2), "capped by the interval");
        assert_eq!(config.health_check.healthy_threshold, 2);
        assert_eq!(config.health_check.unhealthy_threshold, 2);
        assert_eq!(config.deregistration_delay, Duration::from_secs(5));
        let https = Value::Map([("Protocol".to_owned(), Value::String("HTTPS".into()))].into());
        assert!(target_group_config(&Props::new(&https)).unwrap_err().contains("only HTTP"));
    }
}
