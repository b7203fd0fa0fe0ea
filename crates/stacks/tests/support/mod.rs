//! Shared set-up for the Podman tests: the engine, the webapp test image
//! (baked once by the real pipeline), a service over a fresh state
//! directory, and helpers to create, delete and inspect stacks.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use autopatch_engine::{DockerEngine, Engine, ExecSpec};
use autopatch_stacks::api::*;
use autopatch_stacks::{ListenerPorts, ServiceConfig, StackService};
use autopatch_store::Store;

pub(crate) use autopatch_testkit::{WEBAPP, repo_root};

pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) engine: Arc<DockerEngine>,
    pub(crate) store: Arc<Store>,
    pub(crate) service: Arc<StackService<DockerEngine>>,
}

/// A test that fails part-way leaves no instance and no network behind: the
/// service stops (its fleets would replace what is removed), then what its
/// fleets labelled with this state directory is removed, as deleting the
/// stacks would have done. A test that deleted its stacks finds nothing.
impl Drop for Fixture {
    fn drop(&mut self) {
        use tokio::runtime::{Handle, RuntimeFlavor};
        if let Ok(handle) = Handle::try_current() {
            // On one thread no other task runs while this drop does; on
            // several, the fleets are stopped first.
            if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
                let service = Arc::clone(&self.service);
                tokio::task::block_in_place(|| handle.block_on(service.shutdown()));
            }
        }
        let label =
            format!("label=autopatch.fleet={}", self.dir.path().join("instances").display());
        let podman = |args: &[&str]| {
            std::process::Command::new("podman")
                .args(args)
                .output()
                .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
                .unwrap_or_default()
        };
        for id in podman(&["ps", "-aq", "--filter", &label]).split_whitespace() {
            podman(&["rm", "-f", "-t", "0", id]);
        }
        for name in podman(&["network", "ls", "-q", "--filter", &label]).split_whitespace() {
            podman(&["network", "rm", "-f", name]);
        }
    }
}

impl Fixture {
    pub(crate) async fn new() -> Fixture {
        let engine = autopatch_testkit::engine().await;
        autopatch_testkit::ensure_webapp(&engine).await;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("autopatch.db")).unwrap());
        let service =
            StackService::open(config(dir.path()), engine.clone(), store.clone()).await.unwrap();
        Fixture { dir, engine, store, service }
    }

    /// Creates a stack from a shipped template and waits for the operation.
    pub(crate) async fn create(
        &self,
        name: &str,
        template: &str,
        parameters: &[(&str, &str)],
    ) -> Stack {
        let path = repo_root().join("templates").join(template);
        let input = CreateStackInput {
            stack_name: name.into(),
            template_url: Some(format!("file://{}", path.display())),
            parameters: parameters.iter().map(|(key, value)| parameter(key, value)).collect(),
            ..Default::default()
        };
        self.create_with(input).await
    }

    pub(crate) async fn create_from_body(&self, name: &str, body: &str) -> Stack {
        let input = CreateStackInput {
            stack_name: name.into(),
            template_body: Some(body.into()),
            ..Default::default()
        };
        self.create_with(input).await
    }

    async fn create_with(&self, input: CreateStackInput) -> Stack {
        let created = self.service.create_stack(input).await.unwrap();
        self.service.wait_idle(&created.stack_id).await;
        self.describe(&created.stack_id)
    }

    pub(crate) fn describe(&self, name: &str) -> Stack {
        let mut stacks = self
            .service
            .describe_stacks(DescribeStacksInput { stack_name: Some(name.into()) })
            .unwrap()
            .stacks;
        stacks.remove(0)
    }

    pub(crate) async fn delete(&self, name: &str) {
        let id = self.describe(name).stack_id;
        self.service
            .delete_stack(DeleteStackInput { stack_name: name.into(), ..Default::default() })
            .await
            .unwrap();
        self.service.wait_idle(&id).await;
        assert_eq!(self.describe(&id).stack_status, "DELETE_COMPLETE");
    }

    /// Waits (bounded) until `count` targets of the group are healthy.
    pub(crate) async fn wait_healthy(&self, target_group: &str, count: usize) {
        for _ in 0..120 {
            let health = self
                .service
                .describe_target_health(DescribeTargetHealthInput {
                    target_group_arn: target_group.into(),
                })
                .unwrap();
            let healthy = health
                .target_health_descriptions
                .iter()
                .filter(|target| target.target_health.state == "healthy")
                .count();
            if healthy >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("fewer than {count} healthy targets in {target_group} after 30 s");
    }

    /// Runs a shell command in an instance's container.
    pub(crate) async fn exec(&self, instance_id: &str, command: &str) -> String {
        let label = [("autopatch.instance".to_owned(), instance_id.to_owned())];
        let containers = self.engine.container_list(&label).await.unwrap();
        let container = containers.first().expect("the instance's container");
        let spec =
            ExecSpec { cmd: vec!["sh".into(), "-c".into(), command.into()], ..ExecSpec::default() };
        let result = self.engine.exec(&container.id, &spec, &mut ()).await.unwrap();
        result.stdout_text()
    }

    /// Instance containers of this fixture's stacks.
    pub(crate) async fn instance_containers(&self) -> Vec<String> {
        let label = [("autopatch.role".to_owned(), "instance".to_owned())];
        let mut names = Vec::new();
        for container in self.engine.container_list(&label).await.unwrap() {
            let ours = self
                .store
                .instance(
                    container.labels.get("autopatch.instance").map(String::as_str).unwrap_or(""),
                )
                .ok()
                .flatten()
                .is_some();
            if ours {
                names.push(container.name);
            }
        }
        names
    }
}

/// A parameter value as a request gives it.
pub(crate) fn parameter(key: &str, value: &str) -> Parameter {
    Parameter {
        parameter_key: key.into(),
        parameter_value: Some(value.into()),
        use_previous_value: None,
    }
}

pub(crate) fn config(state_dir: &std::path::Path) -> ServiceConfig {
    ServiceConfig {
        state_dir: state_dir.to_owned(),
        region: "local".into(),
        account_id: "000000000000".into(),
        listener_ports: ListenerPorts::Free,
        load_balancer_threads: 0,
        fleet_interval: Duration::from_millis(500),
    }
}

/// GET `url` with curl (an external oracle): the body, or a panic with curl's error.
pub(crate) fn curl(url: &str) -> String {
    let output = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", url])
        .output()
        .expect("run curl");
    assert!(output.status.success(), "curl {url}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}
