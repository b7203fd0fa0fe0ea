//! Progress of long work (builds, bootstraps, checks), as events the caller
//! renders: the CLI prints them live, tests collect them.

use std::sync::Mutex;

use autopatch_model::{ImageState, StepStatus};

/// One thing that happened during a build.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildEvent {
    /// The build moved to a new state.
    State { state: ImageState, reason: Option<String> },
    /// A stage (`build` or `test`) started in a container.
    StageStarted { stage: &'static str, container: String },
    StepStarted {
        component: String,
        phase: &'static str,
        step: String,
        action: &'static str,
        attempt: u32,
    },
    /// Output of the running step (a chunk, not necessarily whole lines).
    StepOutput { text: String },
    StepFinished {
        component: String,
        phase: &'static str,
        step: String,
        status: StepStatus,
        exit_code: Option<i64>,
        duration_ms: u64,
    },
    /// The step asked for a reboot (exit 194): the container restarts.
    Rebooting { step: String },
    /// A timed piece of the build outside the steps (container create, commit...).
    Timing { what: String, duration_ms: u64 },
    /// Anything else worth a line.
    Note { message: String },
}

/// Receives build events. Implementations must be cheap: they run inline.
pub trait Progress: Send + Sync {
    fn event(&self, event: BuildEvent);
}

/// Ignores every event.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: BuildEvent) {}
}

/// Keeps every event, for tests and reports.
#[derive(Debug, Default)]
pub struct CollectProgress {
    events: Mutex<Vec<BuildEvent>>,
}

impl CollectProgress {
    pub fn events(&self) -> Vec<BuildEvent> {
        self.events.lock().map(|events| events.clone()).unwrap_or_default()
    }
}

impl Progress for CollectProgress {
    fn event(&self, event: BuildEvent) {
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }
}
