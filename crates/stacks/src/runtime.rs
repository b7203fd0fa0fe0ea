//! The live side of stacks: load balancers listening, target groups with
//! their targets, fleets of instances. Everything here can be rebuilt from
//! the store after a restart ([`crate::resources`]' adopt).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use autopatch_engine::Engine;
use autopatch_fleet::{Fleet, TargetGroupHandle};
use autopatch_loadbalancer::{
    InitialTargets, LoadBalancer, LoadBalancerConfig, Target, TargetId, TargetState,
};
use autopatch_store::Store;

use crate::service::ServiceConfig;

/// Locks a std mutex, ignoring poisoning: every critical section here
/// leaves the data consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Everything running for the service's stacks.
pub(crate) struct Runtime<E: Engine> {
    pub(crate) engine: Arc<E>,
    pub(crate) store: Arc<Store>,
    pub(crate) fleet: Fleet<E>,
    pub(crate) config: ServiceConfig,
    /// Target groups by ARN.
    pub(crate) target_groups: Mutex<BTreeMap<String, Arc<TargetGroupRuntime>>>,
    /// Ports reserved for load balancers (by ARN) until a listener takes them.
    pub(crate) reserved_ports: Mutex<BTreeMap<String, std::net::TcpListener>>,
    /// Sockets the daemon bound before recovery ([`crate::reserve_listeners`]),
    /// by address, until recovery hands each to its load balancer or
    /// listener; those it does not take are closed once it ends.
    pub(crate) early_sockets: Mutex<BTreeMap<SocketAddr, std::net::TcpListener>>,
}

impl<E: Engine + 'static> Runtime<E> {
    pub(crate) fn target_group(&self, arn: &str) -> Option<Arc<TargetGroupRuntime>> {
        lock(&self.target_groups).get(arn).cloned()
    }

    /// The labels of a VPC's engine network: the ownership labels its
    /// instances carry (the fleet's state directory, the stack), what it is
    /// (`autopatch.role=vpc`) and which VPC (`autopatch.vpc`).
    pub(crate) fn vpc_labels(&self, stack_id: &str, vpc_id: &str) -> BTreeMap<String, String> {
        let mut labels = self.fleet.ownership_labels();
        labels.insert(autopatch_fleet::ROLE_LABEL.to_owned(), VPC_ROLE.to_owned());
        labels.insert(autopatch_fleet::STACK_LABEL.to_owned(), stack_id.to_owned());
        labels.insert(VPC_LABEL.to_owned(), vpc_id.to_owned());
        labels
    }
}

/// The value of `autopatch.role` on a VPC's engine network.
pub const VPC_ROLE: &str = "vpc";
/// The label naming the VPC an engine network stands for.
pub const VPC_LABEL: &str = "autopatch.vpc";

/// A target group: its settings, its targets, and the load balancer that
/// serves it once a listener forwards to it. Before that its targets are
/// `unused`, as on AWS.
pub(crate) struct TargetGroupRuntime {
    pub(crate) arn: String,
    /// Settings: health checks, deregistration delay (changed in place by
    /// updates).
    config: Mutex<LoadBalancerConfig>,
    /// The port targets receive traffic on (`Port`): instances publish it.
    pub(crate) port: u16,
    targets: Mutex<BTreeMap<String, SocketAddr>>,
    balancer: Mutex<Option<LoadBalancer>>,
    /// Instances the previous daemon saw healthy: re-registered as healthy
    /// once (re-adoption after a restart), so traffic does not stop.
    adoptable: Mutex<BTreeSet<String>>,
    store: Arc<Store>,
}

impl std::fmt::Debug for TargetGroupRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetGroupRuntime").field("arn", &self.arn).finish_non_exhaustive()
    }
}

impl TargetGroupRuntime {
    pub(crate) fn new(
        arn: String,
        config: LoadBalancerConfig,
        port: u16,
        adoptable: BTreeSet<String>,
        store: Arc<Store>,
    ) -> Self {
        Self {
            arn,
            config: Mutex::new(config),
            port,
            targets: Mutex::new(BTreeMap::new()),
            balancer: Mutex::new(None),
            adoptable: Mutex::new(adoptable),
            store,
        }
    }

    pub(crate) fn config(&self) -> LoadBalancerConfig {
        lock(&self.config).clone()
    }

    /// Applies new health check settings and deregistration delay, to the
    /// running load balancer too.
    pub(crate) fn reconfigure(&self, config: LoadBalancerConfig) -> Result<(), String> {
        if let Some(balancer) = lock(&self.balancer).as_ref() {
            balancer
                .set_health_check(config.health_check.clone())
                .map_err(|error| format!("health check settings: {error}"))?;
            balancer.set_deregistration_delay(config.deregistration_delay);
        }
        *lock(&self.config) = config;
        Ok(())
    }

    /// The targets a load balancer for this group starts with: every known
    /// target, the ones the previous daemon saw healthy adopted (in service
    /// at once), the others registered (`initial`).
    pub(crate) fn initial_targets(&self) -> InitialTargets {
        let adoptable = lock(&self.adoptable);
        let mut initial = InitialTargets::default();
        for (id, addr) in lock(&self.targets).iter() {
            let target = Target::new(id, *addr);
            if adoptable.contains(id) {
                initial.adopted.push(target);
            } else {
                initial.registered.push(target);
            }
        }
        initial
    }

    /// A listener starts serving this group, with a load balancer started
    /// with `initial` ([`TargetGroupRuntime::initial_targets`]): targets
    /// registered or deregistered since are brought up to date.
    pub(crate) fn attach(self: &Arc<Self>, balancer: LoadBalancer, initial: &InitialTargets) {
        {
            let mut adoptable = lock(&self.adoptable);
            for target in &initial.adopted {
                adoptable.remove(target.id.as_str());
            }
        }
        let mut changes = balancer.subscribe();
        {
            // Under the balancer's lock, which `register` and `deregister`
            // take after changing `targets`: a change made meanwhile is
            // either seen here or applies to the attached balancer itself.
            let mut attached = lock(&self.balancer);
            let targets: Vec<(String, SocketAddr)> =
                lock(&self.targets).iter().map(|(id, addr)| (id.clone(), *addr)).collect();
            for (id, addr) in &targets {
                self.register_with(&balancer, id, *addr);
            }
            let gone: Vec<TargetId> = initial
                .registered
                .iter()
                .chain(&initial.adopted)
                .filter(|target| !targets.iter().any(|(id, _)| id == target.id.as_str()))
                .map(|target| target.id.clone())
                .collect();
            balancer.deregister_targets(&gone);
            log::info!(
                target_group = self.name(),
                address:% = balancer.local_addr(),
                targets = targets.len(),
                adopted = initial.adopted.len();
                "load balancer listening"
            );
            for target in &initial.adopted {
                self.log_adopted(target.id.as_str());
            }
            *attached = Some(balancer);
        }
        // The adopted targets are healthy again in the store too.
        self.record_health();
        // Record target health in the store, so a restarted daemon knows
        // which targets had passed their checks.
        let group = Arc::downgrade(self);
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let Some(group) = group.upgrade() else { return };
                group.record_health();
            }
        });
    }

    /// The listener goes away: the load balancer stops.
    pub(crate) fn detach(&self) -> Option<LoadBalancer> {
        lock(&self.balancer).take()
    }

    /// Every target state transition since the listener started.
    pub(crate) fn history(&self) -> Option<autopatch_loadbalancer::History> {
        lock(&self.balancer).as_ref().map(LoadBalancer::history)
    }

    pub(crate) fn is_attached(&self) -> bool {
        lock(&self.balancer).is_some()
    }

    /// `DescribeTargetHealth`.
    pub(crate) fn describe(&self) -> Vec<crate::api::TargetHealthDescription> {
        let balancer = lock(&self.balancer);
        match balancer.as_ref() {
            Some(balancer) => balancer
                .describe_target_health()
                .into_iter()
                .map(|target| crate::api::TargetHealthDescription {
                    target: crate::api::TargetDescription {
                        id: target.id.as_str().to_owned(),
                        port: target.port,
                    },
                    health_check_port: target.health_check_port.to_string(),
                    target_health: crate::api::TargetHealth {
                        state: target.state.as_str().to_owned(),
                        reason: target.reason.map(|reason| reason.as_str().to_owned()),
                        description: target.description,
                    },
                })
                .collect(),
            None => lock(&self.targets)
                .iter()
                .map(|(id, addr)| crate::api::TargetHealthDescription {
                    target: crate::api::TargetDescription { id: id.clone(), port: addr.port() },
                    health_check_port: addr.port().to_string(),
                    target_health: crate::api::TargetHealth {
                        state: "unused".into(),
                        reason: Some("Target.NotInUse".into()),
                        description: Some(
                            "Target group is not configured to receive traffic from the load balancer"
                                .into(),
                        ),
                    },
                })
                .collect(),
        }
    }

    fn register_with(&self, balancer: &LoadBalancer, id: &str, addr: SocketAddr) {
        let target = Target::new(id, addr);
        let adopt = lock(&self.adoptable).remove(id);
        // A refused (non-loopback) target stays unregistered; instance ports
        // are always published on 127.0.0.1.
        if adopt {
            if balancer.adopt_targets(&[target]).is_ok() {
                self.log_adopted(id);
            }
        } else {
            let _ = balancer.register_targets(&[target]);
        }
    }

    /// The target group's name (its ARN is `...:targetgroup/<name>/<id>`).
    fn name(&self) -> &str {
        self.arn.rsplit('/').nth(1).unwrap_or(&self.arn)
    }

    fn log_adopted(&self, instance_id: &str) {
        log::info!(
            target_group = self.name(),
            instance = instance_id;
            "target adopted: the previous daemon saw it healthy, so it serves at once"
        );
    }

    fn record_health(&self) {
        let states: Vec<(String, TargetState)> = match lock(&self.balancer).as_ref() {
            Some(balancer) => balancer
                .describe_target_health()
                .into_iter()
                .map(|target| (target.id.as_str().to_owned(), target.state))
                .collect(),
            None => return,
        };
        for (id, state) in states {
            let _ = self.store.set_instance_target_health(
                &id,
                Some(state.as_str()),
                crate::clock::now(),
            );
        }
    }
}

impl TargetGroupHandle for TargetGroupRuntime {
    fn register(&self, instance_id: &str, addr: SocketAddr) {
        lock(&self.targets).insert(instance_id.to_owned(), addr);
        if let Some(balancer) = lock(&self.balancer).as_ref() {
            self.register_with(balancer, instance_id, addr);
        }
    }

    fn deregister(&self, instance_id: &str) {
        lock(&self.targets).remove(instance_id);
        if let Some(balancer) = lock(&self.balancer).as_ref() {
            balancer.deregister_targets(&[TargetId::new(instance_id)]);
        }
    }

    fn state(&self, instance_id: &str) -> Option<String> {
        match lock(&self.balancer).as_ref() {
            Some(balancer) => balancer
                .describe_target_health()
                .into_iter()
                .find(|target| target.id.as_str() == instance_id)
                .map(|target| target.state.as_str().to_owned()),
            None => lock(&self.targets).contains_key(instance_id).then(|| "unused".to_owned()),
        }
    }
}
