//! Shared set-up for the tests against the recording fake engine: the real
//! service, store and fleet over a fresh state directory, and helpers to
//! run stack operations to their end and read what they recorded.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use autopatch_engine::FakeEngine;
use autopatch_stacks::api::*;
use autopatch_stacks::{ListenerPorts, ServiceConfig, StackService};
use autopatch_store::Store;

/// How long an operation may take before the test gives up: a watchdog
/// against an operation that never ends, not a measure of anything.
pub(crate) const WATCHDOG: Duration = Duration::from_secs(120);

pub(crate) struct FakeStacks {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) engine: Arc<FakeEngine>,
    pub(crate) store: Arc<Store>,
    pub(crate) service: Arc<StackService<FakeEngine>>,
}

pub(crate) fn config(dir: &Path) -> ServiceConfig {
    ServiceConfig {
        state_dir: dir.to_owned(),
        region: "local".into(),
        account_id: "000000000000".into(),
        listener_ports: ListenerPorts::Free,
        load_balancer_threads: 0,
        fleet_interval: Duration::from_millis(50),
    }
}

pub(crate) fn parameter(key: &str, value: &str) -> Parameter {
    Parameter {
        parameter_key: key.into(),
        parameter_value: Some(value.into()),
        use_previous_value: None,
    }
}

impl FakeStacks {
    /// A service over a fresh state directory, the engine holding `images`.
    pub(crate) async fn new(images: &[&str]) -> FakeStacks {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(FakeEngine::new());
        for image in images {
            engine.add_image(image);
        }
        let store = Arc::new(Store::open(&dir.path().join("autopatch.db")).unwrap());
        let service =
            StackService::open(config(dir.path()), engine.clone(), store.clone()).await.unwrap();
        FakeStacks { dir, engine, store, service }
    }

    /// The daemon stops; a new one opens the same store and engine (and
    /// sweeps orphaned instance containers).
    pub(crate) async fn restart(&mut self) {
        self.service.shutdown().await;
        self.service =
            StackService::open(config(self.dir.path()), self.engine.clone(), self.store.clone())
                .await
                .unwrap();
    }

    /// Waits until the stack's operation ends; panics with its last events
    /// when it does not.
    pub(crate) async fn wait(&self, stack_id: &str) -> Stack {
        if tokio::time::timeout(WATCHDOG, self.service.wait_idle(stack_id)).await.is_err() {
            let events = self.events(stack_id);
            panic!(
                "the operation did not end ({}); {} events, the last:\n{}",
                self.describe(stack_id).stack_status,
                events.len(),
                events[events.len().saturating_sub(20)..].join("\n")
            );
        }
        self.describe(stack_id)
    }

    pub(crate) async fn create(
        &self,
        name: &str,
        body: &str,
        parameters: &[(&str, &str)],
    ) -> Stack {
        let input = CreateStackInput {
            stack_name: name.into(),
            template_body: Some(body.into()),
            parameters: parameters.iter().map(|(key, value)| parameter(key, value)).collect(),
            ..Default::default()
        };
        let created = self.service.create_stack(input).await.unwrap();
        self.wait(&created.stack_id).await
    }

    /// Updates the stack to `body` with `parameters` (the others keep their
    /// values) and waits for the update to end; `Err` when the request is
    /// refused.
    pub(crate) async fn update(
        &self,
        name: &str,
        body: &str,
        parameters: &[(&str, &str)],
    ) -> Result<Stack, ApiError> {
        let input = UpdateStackInput {
            stack_name: name.into(),
            template_body: Some(body.into()),
            parameters: parameters.iter().map(|(key, value)| parameter(key, value)).collect(),
            ..Default::default()
        };
        let updated = self.service.update_stack(input).await?;
        Ok(self.wait(&updated.stack_id).await)
    }

    pub(crate) async fn delete(&self, stack_id: &str) -> Stack {
        let input = DeleteStackInput { stack_name: stack_id.into(), ..Default::default() };
        self.service.delete_stack(input).await.unwrap();
        self.wait(stack_id).await
    }

    pub(crate) fn describe(&self, name: &str) -> Stack {
        self.service
            .describe_stacks(DescribeStacksInput { stack_name: Some(name.into()) })
            .unwrap()
            .stacks
            .remove(0)
    }

    /// Every event, oldest first, as `logical id status [physical id] reason`.
    pub(crate) fn events(&self, stack_id: &str) -> Vec<String> {
        self.store
            .stack_events(stack_id)
            .unwrap()
            .into_iter()
            .map(|event| {
                format!(
                    "{} {} [{}] {}",
                    event.logical_id,
                    event.status,
                    event.physical_id.unwrap_or_default(),
                    event.reason.unwrap_or_default()
                )
            })
            .collect()
    }
}
