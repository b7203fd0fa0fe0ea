//! A scripted daemon for the CLI's stack commands: a real
//! [`autopatch_daemon::Server`] on the test's state directory whose
//! operations play a stack's timeline, so following, exit codes and output
//! are tested without containers.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autopatch_daemon::{Operations, Server, ServerConfig, encode};
use autopatch_stacks::api::{
    ApiError, DescribeStackEventsOutput, DescribeStacksOutput, Stack, StackEvent,
};
use serde_json::{Value, json};

pub(crate) const STACK_ID: &str =
    "arn:aws:cloudformation:local:000000000000:stack/web/0123456789abcdef";

/// One step of a stack's timeline: its status then, and the events that
/// happened up to it.
pub(crate) struct Step {
    pub(crate) status: &'static str,
    pub(crate) reason: Option<&'static str>,
    pub(crate) events: Vec<StackEvent>,
}

pub(crate) fn step(status: &'static str, events: Vec<StackEvent>) -> Step {
    Step { status, reason: None, events }
}

pub(crate) fn event(
    id: &str,
    logical: &str,
    kind: &str,
    status: &str,
    reason: Option<&str>,
) -> StackEvent {
    StackEvent {
        stack_id: STACK_ID.into(),
        event_id: id.into(),
        stack_name: "web".into(),
        logical_resource_id: logical.into(),
        physical_resource_id: None,
        resource_type: kind.into(),
        timestamp: format!("2026-11-24T12:00:{id:0>2}.000Z"),
        resource_status: status.into(),
        resource_status_reason: reason.map(str::to_owned),
    }
}

/// The stack `web`. Step 0 is the stack before the test's command; a
/// `CreateStack`, `UpdateStack`, `CancelUpdateStack`, `ContinueUpdateRollback`
/// or `DeleteStack` starts the operation at step `after_change` (1 unless
/// set; 0: nothing changes), as the real service marks it in progress
/// before answering. Each later
/// `DescribeStacks` moves one step along (staying on the last), and
/// `DescribeStackEvents` lists the events of the steps so far, newest
/// first. `refusal`, if set, is the answer to the operation.
pub(crate) struct Scripted {
    pub(crate) timeline: Vec<Step>,
    pub(crate) after_change: usize,
    pub(crate) refusal: Option<ApiError>,
    /// `DescribeStacks` of `web` says it does not exist.
    pub(crate) missing: bool,
    state: Mutex<State>,
    calls: Mutex<Vec<(String, Value)>>,
}

#[derive(Default)]
struct State {
    shown: usize,
    changed: bool,
    described_since_change: bool,
}

impl Scripted {
    pub(crate) fn new(timeline: Vec<Step>) -> Scripted {
        Scripted {
            timeline,
            after_change: 1,
            refusal: None,
            missing: false,
            state: Mutex::new(State::default()),
            calls: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap().clone()
    }

    pub(crate) fn operations(&self) -> Vec<String> {
        self.calls().into_iter().map(|(operation, _)| operation).collect()
    }

    fn stack(&self, step: &Step) -> Stack {
        Stack {
            stack_id: STACK_ID.into(),
            stack_name: "web".into(),
            creation_time: "2026-11-24T12:00:00.000Z".into(),
            stack_status: step.status.into(),
            stack_status_reason: step.reason.map(str::to_owned),
            ..Stack::default()
        }
    }
}

impl Operations for Scripted {
    async fn call(&self, service: &str, operation: &str, input: Value) -> Result<Value, ApiError> {
        self.calls.lock().unwrap().push((operation.to_owned(), input));
        let mut state = self.state.lock().unwrap();
        let last = self.timeline.len() - 1;
        match (service, operation) {
            (
                "cloudformation",
                "CreateStack"
                | "UpdateStack"
                | "DeleteStack"
                | "CancelUpdateStack"
                | "ContinueUpdateRollback",
            ) => {
                if let Some(refusal) = &self.refusal {
                    return Err(refusal.clone());
                }
                *state = State { shown: self.after_change, changed: true, ..State::default() };
                if matches!(
                    operation,
                    "DeleteStack" | "CancelUpdateStack" | "ContinueUpdateRollback"
                ) {
                    Ok(json!({}))
                } else {
                    Ok(json!({"StackId": STACK_ID}))
                }
            }
            ("cloudformation", "DescribeStacks") => {
                if self.missing {
                    return Err(ApiError::validation("Stack with id web does not exist"));
                }
                if state.changed {
                    if state.described_since_change {
                        state.shown = (state.shown + 1).min(last);
                    }
                    state.described_since_change = true;
                }
                encode(&DescribeStacksOutput {
                    stacks: vec![self.stack(&self.timeline[state.shown])],
                })
            }
            ("cloudformation", "DescribeStackEvents") => {
                let mut events: Vec<StackEvent> = self.timeline[..=state.shown]
                    .iter()
                    .flat_map(|step| step.events.iter().cloned())
                    .collect();
                events.reverse();
                encode(&DescribeStackEventsOutput { stack_events: events })
            }
            _ => Err(ApiError::not_implemented(service, operation)),
        }
    }
}

/// Serves `scripted` on `state`'s socket until the [`Daemon`] is dropped;
/// the [`Scripted`] is kept to read the calls it got.
pub(crate) fn serve(state: &Path, scripted: Scripted) -> (Arc<Scripted>, Daemon) {
    let scripted = Arc::new(scripted);
    let daemon = Daemon::start(state, Arc::clone(&scripted));
    (scripted, daemon)
}

/// Serves `operations` on `state`'s socket until dropped.
pub(crate) struct Daemon {
    _runtime: tokio::runtime::Runtime,
}

impl Daemon {
    pub(crate) fn start(state: &Path, operations: Arc<Scripted>) -> Daemon {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let config = ServerConfig {
            socket_path: autopatch_daemon::socket_path(state),
            listen: None,
            state_dir: state.to_path_buf(),
            engine_endpoint: "scripted://".into(),
            drain_timeout: Duration::from_secs(5),
        };
        let server = runtime.block_on(Server::bind(config, operations)).unwrap();
        runtime.spawn(server.run(std::future::pending()));
        Daemon { _runtime: runtime }
    }
}
