//! The simulation harness: a fleet over the recording `FakeEngine`, a real
//! SQLite store and instance folders in a temporary directory, and a fake
//! target group the test steers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autopatch_engine::{ContainerInfo, ContainerState, FakeEngine, Operation};
use autopatch_fleet::{Fleet, GroupSpec, HealthCheckType, LaunchTemplate, TargetGroupHandle, Zone};
use autopatch_store::{InstanceRow, LifecycleState, Store};

pub(crate) const IMAGE: &str = "localhost/autopatch/webapp:1.0.0-1";
/// The image of [`Sim::new_launch`], as an update brings it.
pub(crate) const NEW_IMAGE: &str = "localhost/autopatch/webapp:1.0.1-1";
pub(crate) const INTERVAL: Duration = Duration::from_secs(1);

pub(crate) struct Sim {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) engine: Arc<FakeEngine>,
    pub(crate) store: Arc<Store>,
    pub(crate) fleet: Fleet<FakeEngine>,
    pub(crate) engine_image_id: String,
    pub(crate) new_engine_image_id: String,
}

impl Sim {
    pub(crate) fn new() -> Sim {
        let dir = tempfile::tempdir().expect("temporary directory");
        let engine = Arc::new(FakeEngine::new());
        let image = engine.add_image_with(IMAGE, BTreeMap::new(), Some(vec!["/bin/bash".into()]));
        let new_image =
            engine.add_image_with(NEW_IMAGE, BTreeMap::new(), Some(vec!["/bin/bash".into()]));
        let store = Arc::new(Store::open(&dir.path().join("autopatch.db")).expect("store"));
        let fleet = Fleet::new(
            Arc::clone(&engine),
            Arc::clone(&store),
            dir.path().join("instances"),
            INTERVAL,
        );
        Sim {
            dir,
            engine,
            store,
            fleet,
            engine_image_id: image.id,
            new_engine_image_id: new_image.id,
        }
    }

    /// Another fleet over the same engine, store and folders (a restarted daemon).
    pub(crate) fn restarted(&self) -> Fleet<FakeEngine> {
        Fleet::new(
            Arc::clone(&self.engine),
            Arc::clone(&self.store),
            self.instances_dir(),
            INTERVAL,
        )
    }

    pub(crate) fn instances_dir(&self) -> PathBuf {
        self.dir.path().join("instances")
    }

    /// A group of `desired` instances (max 4) over zones a and b, EC2 checks.
    pub(crate) fn spec(&self, name: &str, desired: u32) -> GroupSpec {
        GroupSpec {
            name: name.into(),
            stack_id: Some("arn:aws:cloudformation:local:000000000000:stack/app/1".into()),
            launch: LaunchTemplate {
                name: "app-LaunchConfig-1".into(),
                image: IMAGE.into(),
                image_id: "webapp/1.0.0/1".into(),
                engine_image_id: self.engine_image_id.clone(),
                instance_type: "m1.large".into(),
                user_data: Some("#!/bin/sh\necho hello\n".into()),
                security_groups: vec!["web".into()],
            },
            min_size: 0,
            max_size: 4,
            desired_capacity: desired,
            zones: vec![
                Zone { name: "local-1a".into(), subnet_id: Some("subnet-a".into()) },
                Zone { name: "local-1b".into(), subnet_id: Some("subnet-b".into()) },
            ],
            network: "autopatch".into(),
            target_port: Some(80),
            health_check_type: HealthCheckType::Ec2,
            health_check_grace_period: Duration::from_secs(60),
            tags: BTreeMap::from([("Name".into(), format!("{name}-instance"))]),
            region: "local-1".into(),
        }
    }

    /// The launch template an update brings: another name and image.
    pub(crate) fn new_launch(&self) -> LaunchTemplate {
        LaunchTemplate {
            name: "app-LaunchConfig-2".into(),
            image: NEW_IMAGE.into(),
            image_id: "webapp/1.0.1/1".into(),
            engine_image_id: self.new_engine_image_id.clone(),
            ..self.spec("any", 0).launch
        }
    }

    /// The group's live rows.
    pub(crate) fn live(&self, group: &str) -> Vec<InstanceRow> {
        self.fleet.instances(group).expect("rows")
    }

    /// Every row of the group, terminated ones too.
    pub(crate) fn all_rows(&self, group: &str) -> Vec<InstanceRow> {
        self.store.instances_of_group(group, true).expect("rows")
    }

    pub(crate) fn in_service(&self, group: &str) -> Vec<InstanceRow> {
        self.live(group)
            .into_iter()
            .filter(|row| row.lifecycle == LifecycleState::InService)
            .collect()
    }

    /// The engine's containers that run.
    pub(crate) fn running_containers(&self) -> Vec<ContainerInfo> {
        self.engine
            .containers()
            .into_iter()
            .filter(|container| container.state == ContainerState::Running)
            .collect()
    }

    pub(crate) fn creates(&self) -> usize {
        self.engine.calls_of(Operation::ContainerCreate).len()
    }

    /// Lets virtual time pass until `condition` holds (at most ten minutes).
    pub(crate) async fn until(&self, what: &str, condition: impl Fn(&Sim) -> bool) {
        for _ in 0..6000 {
            if condition(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{what} did not happen within ten virtual minutes; rows: {:#?}; containers: {:#?}",
            self.store.live_instances().expect("rows"),
            self.engine.containers()
        );
    }

    /// Lets `duration` of virtual time pass.
    pub(crate) async fn wait(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A target group the test steers: registered targets start `initial`;
/// deregistration drains until the test lets go (or at once, if so set).
#[derive(Default)]
pub(crate) struct FakeTargetGroup {
    targets: Mutex<BTreeMap<String, (SocketAddr, String)>>,
    drain_at_once: bool,
    pub(crate) registrations: Mutex<Vec<(String, SocketAddr)>>,
    pub(crate) deregistrations: Mutex<Vec<String>>,
}

impl FakeTargetGroup {
    /// Deregistered targets are gone at once (no deregistration delay).
    pub(crate) fn without_delay() -> Arc<FakeTargetGroup> {
        Arc::new(FakeTargetGroup { drain_at_once: true, ..FakeTargetGroup::default() })
    }

    /// Deregistered targets drain until [`FakeTargetGroup::drained`].
    pub(crate) fn with_delay() -> Arc<FakeTargetGroup> {
        Arc::new(FakeTargetGroup::default())
    }

    pub(crate) fn set_state(&self, instance_id: &str, state: &str) {
        if let Some(target) = self.targets.lock().expect("lock").get_mut(instance_id) {
            target.1 = state.to_string();
        }
    }

    /// Every registered target's state becomes `state`.
    pub(crate) fn set_all(&self, state: &str) {
        for target in self.targets.lock().expect("lock").values_mut() {
            target.1 = state.to_string();
        }
    }

    /// The draining target is let go.
    pub(crate) fn drained(&self, instance_id: &str) {
        self.targets.lock().expect("lock").remove(instance_id);
    }

    pub(crate) fn addr(&self, instance_id: &str) -> Option<SocketAddr> {
        self.targets.lock().expect("lock").get(instance_id).map(|target| target.0)
    }

    pub(crate) fn known(&self) -> Vec<String> {
        self.targets.lock().expect("lock").keys().cloned().collect()
    }

    pub(crate) fn handle(self: &Arc<Self>) -> Vec<Arc<dyn TargetGroupHandle>> {
        vec![Arc::clone(self) as Arc<dyn TargetGroupHandle>]
    }
}

impl TargetGroupHandle for FakeTargetGroup {
    fn register(&self, instance_id: &str, addr: SocketAddr) {
        self.registrations.lock().expect("lock").push((instance_id.to_string(), addr));
        self.targets
            .lock()
            .expect("lock")
            .entry(instance_id.to_string())
            .or_insert((addr, "initial".to_string()));
    }

    fn deregister(&self, instance_id: &str) {
        self.deregistrations.lock().expect("lock").push(instance_id.to_string());
        let mut targets = self.targets.lock().expect("lock");
        if self.drain_at_once {
            targets.remove(instance_id);
        } else if let Some(target) = targets.get_mut(instance_id) {
            target.1 = "draining".to_string();
        }
    }

    fn state(&self, instance_id: &str) -> Option<String> {
        self.targets.lock().expect("lock").get(instance_id).map(|target| target.1.clone())
    }
}
