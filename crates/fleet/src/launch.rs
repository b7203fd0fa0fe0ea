//! Launching and terminating one instance: the group's description, the
//! container an instance is, and the order of writes and engine calls.
//!
//! Launch: the instance row is written `Pending` before anything else exists;
//! then the folder (metadata, scripts), the container (created, its id
//! recorded, started), its address and port (recorded, `local-ipv4`
//! written), and `InService` last. A failure at any step removes what was
//! made (the container by its name, so one whose creation answer was lost
//! goes too) and records the row `Terminated` with the reason.
//!
//! Termination: `Terminating` (and `Unhealthy` for failed health checks) is
//! written and the target groups are told before anything is stopped; the
//! container is stopped and removed, the signals are archived, then
//! `Terminated` is written and the folder removed.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use autopatch_engine::{
    ContainerInfo, ContainerSpec, ContainerState, Engine, ImageInfo, Mount, PortBinding,
};
use autopatch_store::{HealthStatus, InstanceRow, LifecycleState, Store};

use crate::error::{EngineContext, StoreContext, error_chain};
use crate::metadata::{INSTANCE_MOUNT, InstanceFolder, InstanceMetadata};
use crate::signal_store::archive_signals;
use crate::{FleetError, TargetGroupHandle, clock, instance_types};

/// The label every instance container carries: `autopatch.role=instance`.
pub const ROLE_LABEL: &str = "autopatch.role";
/// The value of [`ROLE_LABEL`] on instance containers.
pub const INSTANCE_ROLE: &str = "instance";
/// The instance id label.
pub const INSTANCE_LABEL: &str = "autopatch.instance";
/// The Auto Scaling group label.
pub const GROUP_LABEL: &str = "autopatch.group";
/// Which fleet owns the instance: its instances folder (one per state
/// directory), so a daemon's orphan sweep never touches another state
/// directory's instances.
pub const OWNER_LABEL: &str = "autopatch.fleet";
/// The stack id label (when the group belongs to a stack).
pub const STACK_LABEL: &str = "autopatch.stack";
/// Tags become labels `autopatch.tag.<key>`.
pub const TAG_LABEL_PREFIX: &str = "autopatch.tag.";

/// How long a stopping instance gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What instances are launched from: a launch configuration or template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchTemplate {
    /// The launch configuration's (or template's) physical id.
    pub name: String,
    /// The engine reference containers are created from.
    pub image: String,
    /// What the instance metadata's `ami-id` says.
    pub image_id: String,
    /// The engine's image id; when set, containers are created from exactly
    /// this image, whatever `image` points at by then.
    pub engine_image_id: String,
    pub instance_type: String,
    /// The user data, decoded (not base64).
    pub user_data: Option<String>,
    pub security_groups: Vec<String>,
}

/// An availability zone a group launches into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub subnet_id: Option<String>,
}

/// Which health checks replace instances: `EC2` (the container runs) or
/// `ELB` (also the target groups' view, after the grace period).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum HealthCheckType {
    #[default]
    Ec2,
    Elb,
}

/// An Auto Scaling group, as its controller runs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupSpec {
    /// The group's name (unique among groups).
    pub name: String,
    pub stack_id: Option<String>,
    pub launch: LaunchTemplate,
    pub min_size: u32,
    pub max_size: u32,
    pub desired_capacity: u32,
    /// The zones instances are spread over, in order.
    pub zones: Vec<Zone>,
    /// The engine network instances join.
    pub network: String,
    /// The container port published on `127.0.0.1:<free port>` and
    /// registered with the target groups.
    pub target_port: Option<u16>,
    pub health_check_type: HealthCheckType,
    pub health_check_grace_period: Duration,
    /// Tags, propagated to instances as labels `autopatch.tag.<key>`.
    pub tags: BTreeMap<String, String>,
    /// What the instance metadata's `placement/region` says; when empty, the
    /// region is read from the zone's name (`ap-southeast-2a` and
    /// `local-a` give `ap-southeast-2` and `local`).
    pub region: String,
}

impl GroupSpec {
    /// Checks what a controller needs before it launches anything.
    pub(crate) fn validate(&self, has_target_groups: bool) -> Result<(), FleetError> {
        let invalid = |reason: &str| {
            Err(FleetError::InvalidGroup { group: self.name.clone(), reason: reason.to_string() })
        };
        if self.name.is_empty() {
            return invalid("the name is empty");
        }
        instance_types::instance_type(&self.launch.instance_type)?;
        if self.launch.image.is_empty() && self.launch.engine_image_id.is_empty() {
            return invalid("the launch configuration names no image");
        }
        if self.min_size > self.max_size {
            return invalid(&format!(
                "min size {} is above max size {}",
                self.min_size, self.max_size
            ));
        }
        if !(self.min_size..=self.max_size).contains(&self.desired_capacity) {
            return Err(FleetError::DesiredCapacityOutOfRange {
                group: self.name.clone(),
                desired: self.desired_capacity,
                min_size: self.min_size,
                max_size: self.max_size,
            });
        }
        if self.zones.is_empty() {
            return invalid("no availability zone is given");
        }
        if self.network.is_empty() {
            return invalid("no network is given");
        }
        if has_target_groups && self.target_port.is_none() {
            return invalid("target groups need a target port");
        }
        Ok(())
    }
}

/// What launching and terminating need.
pub(crate) struct Context<'a, E> {
    pub(crate) engine: &'a E,
    pub(crate) store: &'a Store,
    pub(crate) instances_dir: &'a Path,
    pub(crate) host_cores: usize,
}

/// A new instance id: `i-` and 17 lowercase hex digits, like EC2's.
pub(crate) fn new_instance_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let random = |salt: u64| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(salt);
        hasher.write_u32(std::process::id());
        hasher.write_i64(clock::now().millis());
        hasher.finish()
    };
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format_instance_id((u128::from(random(count)) << 64) | u128::from(random(!count)))
}

/// `i-` and the low 68 bits of `bits` as 17 hex digits.
fn format_instance_id(bits: u128) -> String {
    format!("i-{:017x}", bits & ((1u128 << 68) - 1))
}

/// The region an availability zone is in, by AWS's naming: the zone without
/// its letter (`us-east-1a`), or without `-<letter>` (`local-a`); a name
/// that follows neither is its own region.
pub(crate) fn region_of_zone(zone: &str) -> &str {
    let Some(without_letter) = zone.strip_suffix(|c: char| c.is_ascii_lowercase()) else {
        return zone;
    };
    if let Some(region) = without_letter.strip_suffix('-') {
        return region;
    }
    if without_letter.ends_with(|c: char| c.is_ascii_digit()) { without_letter } else { zone }
}

/// The container's name for an instance.
pub(crate) fn container_name(instance_id: &str) -> String {
    format!("autopatch-{instance_id}")
}

/// The image's own command (ENTRYPOINT then CMD), or nothing when it has
/// none or it is only a shell (which would exit at once without a terminal).
pub(crate) fn image_command(image: &ImageInfo) -> Vec<String> {
    let mut command: Vec<String> = image.entrypoint.clone().unwrap_or_default();
    command.extend(image.cmd.clone().unwrap_or_default());
    let is_shell = |word: &String| {
        let name = word.rsplit('/').next().unwrap_or(word);
        matches!(name, "sh" | "bash" | "dash" | "ash" | "zsh" | "ksh" | "mksh")
    };
    let bare_shell = command.first().is_some_and(is_shell)
        && command.iter().skip(1).all(|argument| argument.starts_with('-') && argument != "-c");
    if bare_shell { Vec::new() } else { command }
}

/// The labels of an instance container.
pub(crate) fn instance_labels(spec: &GroupSpec, instance_id: &str) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = spec
        .tags
        .iter()
        .map(|(key, value)| (format!("{TAG_LABEL_PREFIX}{key}"), value.clone()))
        .collect();
    labels.insert(ROLE_LABEL.to_string(), INSTANCE_ROLE.to_string());
    labels.insert(INSTANCE_LABEL.to_string(), instance_id.to_string());
    labels.insert(GROUP_LABEL.to_string(), spec.name.clone());
    if let Some(stack_id) = &spec.stack_id {
        labels.insert(STACK_LABEL.to_string(), stack_id.clone());
    }
    labels
}

/// The container an instance is.
pub(crate) fn container_spec(
    spec: &GroupSpec,
    instance_id: &str,
    image: &ImageInfo,
    folder: &InstanceFolder,
    host_cores: usize,
) -> Result<ContainerSpec, FleetError> {
    let instance_type = instance_types::instance_type(&spec.launch.instance_type)?;
    let mut cmd = vec!["--".to_string()];
    cmd.extend(image_command(image));
    Ok(ContainerSpec {
        name: Some(container_name(instance_id)),
        image: image.id.clone(),
        entrypoint: Some(vec!["/bin/sh".to_string(), format!("{INSTANCE_MOUNT}/bin/boot")]),
        cmd,
        env: Vec::new(),
        labels: {
            let mut labels = instance_labels(spec, instance_id);
            let owner = folder.path().parent().unwrap_or(folder.path());
            labels.insert(OWNER_LABEL.to_string(), owner.display().to_string());
            labels
        },
        network: Some(spec.network.clone()),
        hostname: Some(instance_id.to_string()),
        publish: spec
            .target_port
            .map(|port| PortBinding {
                container_port: port,
                host_ip: "127.0.0.1".to_string(),
                host_port: 0,
            })
            .into_iter()
            .collect(),
        init: true,
        cpus: Some(instance_type.container_cpus(host_cores)),
        memory_bytes: Some(instance_type.memory_bytes()),
        mounts: vec![Mount {
            source: folder.path().to_path_buf(),
            target: INSTANCE_MOUNT.to_string(),
            read_only: false,
        }],
    })
}

/// Launches one instance of `spec` in `zone` (see the module notes). On
/// failure, what was made is removed and the row is `Terminated` with the reason.
pub(crate) async fn launch<E: Engine>(
    context: &Context<'_, E>,
    spec: &GroupSpec,
    zone: &Zone,
) -> Result<InstanceRow, FleetError> {
    let instance_id = new_instance_id();
    let reference = if spec.launch.engine_image_id.is_empty() {
        &spec.launch.image
    } else {
        &spec.launch.engine_image_id
    };
    // Inspecting changes nothing: it may come before the row.
    let image = context.engine.image_inspect(reference).await;
    let now = clock::now();
    let engine_image_id = match &image {
        Ok(Some(image)) => image.id.clone(),
        _ => reference.clone(),
    };
    let row = InstanceRow {
        instance_id: instance_id.clone(),
        group_name: spec.name.clone(),
        stack_id: spec.stack_id.clone(),
        launch_config: spec.launch.name.clone(),
        image: spec.launch.image_id.clone(),
        engine_image_id,
        instance_type: spec.launch.instance_type.clone(),
        zone: zone.name.clone(),
        subnet: zone.subnet_id.clone(),
        lifecycle: LifecycleState::Pending,
        health: HealthStatus::Healthy,
        target_health: None,
        container_id: None,
        private_ip: None,
        host_port: None,
        reason: None,
        launched_at: now,
        updated_at: now,
        terminated_at: None,
    };
    context.store.insert_instance(&row).store_context("recording instance", &instance_id)?;
    let folder = InstanceFolder::new(context.instances_dir, &instance_id);
    let started = async {
        let image = image
            .engine_context("inspecting image", reference)?
            .ok_or_else(|| FleetError::ImageNotFound { image: reference.clone() })?;
        let metadata = InstanceMetadata {
            instance_id: instance_id.clone(),
            ami_id: spec.launch.image_id.clone(),
            instance_type: spec.launch.instance_type.clone(),
            hostname: instance_id.clone(),
            availability_zone: zone.name.clone(),
            region: if spec.region.is_empty() {
                region_of_zone(&zone.name).to_string()
            } else {
                spec.region.clone()
            },
            security_groups: spec.launch.security_groups.clone(),
        };
        folder.create(&metadata, spec.launch.user_data.as_deref())?;
        let container_spec =
            container_spec(spec, &instance_id, &image, &folder, context.host_cores)?;
        context
            .engine
            .network_ensure(&spec.network)
            .await
            .engine_context("creating network", &spec.network)?;
        let container = context
            .engine
            .container_create(&container_spec)
            .await
            .engine_context("creating the container of", &instance_id)?;
        context
            .store
            .set_instance_runtime(&instance_id, Some(&container.id), None, None, clock::now())
            .store_context("recording the container of", &instance_id)?;
        context
            .engine
            .container_start(&container.id)
            .await
            .engine_context("starting the container of", &instance_id)?;
        let running = context
            .engine
            .container_inspect(&container.id)
            .await
            .engine_context("inspecting the container of", &instance_id)?;
        let running = match running {
            Some(running) if running.state == ContainerState::Running => running,
            other => {
                return Err(FleetError::NotRunning {
                    instance_id: instance_id.clone(),
                    exit_code: other.and_then(|container| container.exit_code),
                });
            }
        };
        complete_launch(context, spec, &instance_id, &running).await
    }
    .await;
    match started {
        Ok(row) => Ok(row),
        Err(error) => {
            let error = FleetError::Launch {
                group: spec.name.clone(),
                instance_id: instance_id.clone(),
                source: Box::new(error),
            };
            // Best effort: a container left behind has no live row, so the
            // next tick removes it; a folder left behind is swept by
            // `remove_orphans`.
            let _ = context.engine.container_remove(&container_name(&instance_id)).await;
            let _ = folder.remove();
            context
                .store
                .set_instance_lifecycle(
                    &instance_id,
                    LifecycleState::Terminated,
                    Some(&error_chain(&error)),
                    clock::now(),
                )
                .store_context("recording the failed launch of", &instance_id)?;
            Err(error)
        }
    }
}

/// Records a running container's address and port, writes `local-ipv4`, and
/// puts the instance in service. Also completes a launch interrupted by a
/// restart (a `Pending` row whose container runs).
pub(crate) async fn complete_launch<E: Engine>(
    context: &Context<'_, E>,
    spec: &GroupSpec,
    instance_id: &str,
    running: &ContainerInfo,
) -> Result<InstanceRow, FleetError> {
    let host_port = match spec.target_port {
        Some(port) => Some(
            running
                .ports
                .iter()
                .find(|binding| binding.container_port == port)
                .map(|binding| binding.host_port)
                .ok_or_else(|| FleetError::PortNotPublished {
                    instance_id: instance_id.to_string(),
                    port,
                })?,
        ),
        None => None,
    };
    let folder = InstanceFolder::new(context.instances_dir, instance_id);
    if let Some(address) = &running.ip_address {
        folder.write_local_ipv4(address)?;
    }
    let now = clock::now();
    let recorded = context
        .store
        .set_instance_runtime(
            instance_id,
            Some(&running.id),
            running.ip_address.as_deref(),
            host_port,
            now,
        )
        .store_context("recording the address of", instance_id)?
        && context
            .store
            .set_instance_lifecycle(instance_id, LifecycleState::InService, None, now)
            .store_context("putting in service", instance_id)?;
    if !recorded {
        return Err(FleetError::TerminatedDuringLaunch { instance_id: instance_id.to_string() });
    }
    context
        .store
        .instance(instance_id)
        .store_context("reading", instance_id)?
        .ok_or_else(|| FleetError::TerminatedDuringLaunch { instance_id: instance_id.to_string() })
}

/// Begins a termination: records it, then deregisters from the target groups.
pub(crate) fn begin_termination(
    store: &Store,
    instance_id: &str,
    reason: &str,
    health_failure: bool,
    target_groups: &[std::sync::Arc<dyn TargetGroupHandle>],
) -> Result<(), FleetError> {
    let now = clock::now();
    if health_failure {
        store
            .set_instance_health(instance_id, HealthStatus::Unhealthy, now)
            .store_context("recording the health of", instance_id)?;
    }
    store
        .set_instance_lifecycle(instance_id, LifecycleState::Terminating, Some(reason), now)
        .store_context("recording the termination of", instance_id)?;
    for target_group in target_groups {
        target_group.deregister(instance_id);
    }
    Ok(())
}

/// Finishes a termination: stops and removes the container, archives the
/// signals, records `Terminated`, removes the folder.
pub(crate) async fn finish_termination<E: Engine>(
    context: &Context<'_, E>,
    instance_id: &str,
    reason: Option<&str>,
) -> Result<(), FleetError> {
    let name = container_name(instance_id);
    // Stopping first lets the instance's processes end gracefully.
    if let Some(container) =
        context.engine.container_inspect(&name).await.engine_context("inspecting", &name)?
    {
        if container.state == ContainerState::Running {
            context
                .engine
                .container_stop(&container.id, STOP_GRACE)
                .await
                .engine_context("stopping", &name)?;
        }
        context.engine.container_remove(&container.id).await.engine_context("removing", &name)?;
    }
    let folder = InstanceFolder::new(context.instances_dir, instance_id);
    archive_signals(context.store, &folder, instance_id)?;
    context
        .store
        .set_instance_lifecycle(instance_id, LifecycleState::Terminated, reason, clock::now())
        .store_context("recording the end of", instance_id)?;
    folder.remove()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_look_like_ec2s() {
        assert_eq!(format_instance_id(0), "i-00000000000000000");
        assert_eq!(format_instance_id(u128::MAX), "i-fffffffffffffffff");
        let first = new_instance_id();
        let second = new_instance_id();
        assert_ne!(first, second);
        for id in [first, second] {
            assert_eq!(id.len(), 19, "{id}");
            assert!(id.starts_with("i-"), "{id}");
            assert!(
                id[2..].chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
                "{id}"
            );
        }
    }

    fn image(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageInfo {
        let words = |words: &[&str]| words.iter().map(|word| word.to_string()).collect();
        ImageInfo {
            id: "sha256:1".into(),
            digests: Vec::new(),
            tags: Vec::new(),
            size_bytes: 0,
            labels: BTreeMap::new(),
            cmd: cmd.map(words),
            entrypoint: entrypoint.map(words),
            env: Vec::new(),
        }
    }

    #[test]
    fn regions_are_read_from_zone_names() {
        for (zone, region) in [
            ("ap-southeast-2a", "ap-southeast-2"),
            ("us-east-1f", "us-east-1"),
            ("local-a", "local"),
            ("local-1b", "local-1"),
            ("lab", "lab"),
            ("zone-A", "zone-A"),
        ] {
            assert_eq!(region_of_zone(zone), region, "{zone}");
        }
    }

    #[test]
    fn the_image_command_is_kept_unless_it_is_a_bare_shell() {
        type Words<'a> = &'a [&'a str];
        let cases: [(Option<Words>, Option<Words>, Words); 7] = [
            (None, None, &[]),
            (None, Some(&["/bin/bash"]), &[]),
            (None, Some(&["sh", "-l"]), &[]),
            (
                None,
                Some(&["/bin/sh", "-c", "apache2ctl -D FOREGROUND"]),
                &["/bin/sh", "-c", "apache2ctl -D FOREGROUND"],
            ),
            (None, Some(&["nginx", "-g", "daemon off;"]), &["nginx", "-g", "daemon off;"]),
            (Some(&["/entrypoint.sh"]), Some(&["serve"]), &["/entrypoint.sh", "serve"]),
            (Some(&["/bin/bash"]), Some(&["/start.sh"]), &["/bin/bash", "/start.sh"]),
        ];
        for (entrypoint, cmd, expected) in cases {
            assert_eq!(image_command(&image(entrypoint, cmd)), expected, "{entrypoint:?} {cmd:?}");
        }
    }

    fn group() -> GroupSpec {
        GroupSpec {
            name: "web".into(),
            stack_id: Some("stack-1".into()),
            launch: LaunchTemplate {
                name: "lc-1".into(),
                image: "localhost/autopatch/webapp:1.0.0-1".into(),
                image_id: "webapp/1.0.0/1".into(),
                engine_image_id: "sha256:1".into(),
                instance_type: "m1.large".into(),
                user_data: None,
                security_groups: Vec::new(),
            },
            min_size: 0,
            max_size: 2,
            desired_capacity: 2,
            zones: vec![Zone { name: "local-1a".into(), subnet_id: None }],
            network: "autopatch".into(),
            target_port: Some(80),
            health_check_type: HealthCheckType::Elb,
            health_check_grace_period: Duration::from_secs(60),
            tags: BTreeMap::from([("Name".to_string(), "web-instance".to_string())]),
            region: "local-1".into(),
        }
    }

    #[test]
    fn the_container_is_labelled_limited_published_and_mounted() {
        let folder = InstanceFolder::new(Path::new("/state/instances"), "i-1");
        let spec = container_spec(&group(), "i-1", &image(None, Some(&["/bin/bash"])), &folder, 2)
            .expect("a valid group");
        assert_eq!(spec.name.as_deref(), Some("autopatch-i-1"));
        assert_eq!(spec.image, "sha256:1");
        assert_eq!(
            spec.entrypoint,
            Some(vec!["/bin/sh".to_string(), "/var/lib/autopatch/bin/boot".to_string()])
        );
        assert_eq!(spec.cmd, ["--"]);
        let labels: Vec<(&str, &str)> =
            spec.labels.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
        assert_eq!(
            labels,
            [
                ("autopatch.fleet", "/state/instances"),
                ("autopatch.group", "web"),
                ("autopatch.instance", "i-1"),
                ("autopatch.role", "instance"),
                ("autopatch.stack", "stack-1"),
                ("autopatch.tag.Name", "web-instance"),
            ]
        );
        assert!(!spec.labels.contains_key("autopatch.owner-pid"), "instances outlive the daemon");
        assert_eq!((spec.cpus, spec.memory_bytes), (Some(2.0), Some(7680 << 20)));
        assert_eq!(
            spec.publish,
            [PortBinding { container_port: 80, host_ip: "127.0.0.1".into(), host_port: 0 }]
        );
        assert!(spec.init);
        assert_eq!(spec.hostname.as_deref(), Some("i-1"));
        assert_eq!(
            spec.mounts,
            [Mount {
                source: "/state/instances/i-1".into(),
                target: "/var/lib/autopatch".into(),
                read_only: false
            }]
        );
    }

    #[test]
    fn invalid_groups_are_refused_with_the_reason() {
        type Change = fn(&mut GroupSpec);
        let cases: [(Change, &str); 6] = [
            (|g| g.launch.instance_type = "x9.huge".into(), "unknown instance type x9.huge"),
            (
                |g| g.desired_capacity = 3,
                "desired capacity 3 of Auto Scaling group web is outside its size 0..=2",
            ),
            (|g| g.min_size = 3, "invalid Auto Scaling group web: min size 3 is above max size 2"),
            (|g| g.zones.clear(), "invalid Auto Scaling group web: no availability zone is given"),
            (
                |g| g.target_port = None,
                "invalid Auto Scaling group web: target groups need a target port",
            ),
            (|g| g.network.clear(), "invalid Auto Scaling group web: no network is given"),
        ];
        for (change, expected) in cases {
            let mut spec = group();
            change(&mut spec);
            let error = spec.validate(true).expect_err(expected);
            assert!(error.to_string().starts_with(expected), "{error}");
        }
        group().validate(true).expect("the base group is valid");
        let mut no_port = group();
        no_port.target_port = None;
        no_port.validate(false).expect("no target groups need no port");
    }
}
