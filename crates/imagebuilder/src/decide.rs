//! Pure decisions of the AWSTOE step machine: what to do after a step attempt
//! ends. No I/O, no clock: the executor feeds outcomes in and acts on the
//! answer, so every path is tested as a table.

use autopatch_documents::OnFailure;
use autopatch_model::StepStatus;

/// How one attempt of a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptOutcome {
    Succeeded,
    /// Exited with this code (not 0, not 194).
    Failed,
    /// Ran past `timeoutSeconds`.
    TimedOut,
    /// Exited 194: AWSTOE's "reboot, then run this step again".
    RebootRequested,
    /// The stage's container stopped running (killed, removed) during the
    /// attempt: nothing more can run in it.
    ContainerStopped,
}

/// What the executor does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepDecision {
    /// Run the step again (attempt number given, 1-based).
    Retry { attempt: u32 },
    /// Restart the container, then run the step again (same attempt).
    Reboot,
    /// The step is over with this status; go on to the next step.
    Continue { status: StepStatus },
    /// The step is over with this status and the document (and build) fails now.
    Abort { status: StepStatus },
}

/// At most this many reboots in one build, so a step that always exits 194
/// cannot loop forever.
pub(crate) const MAX_REBOOTS: u32 = 10;

/// Decides what follows attempt `attempt` (1-based) of a step.
pub(crate) fn after_attempt(
    outcome: AttemptOutcome,
    attempt: u32,
    max_attempts: u32,
    on_failure: OnFailure,
    reboots_so_far: u32,
) -> StepDecision {
    match outcome {
        AttemptOutcome::Succeeded => StepDecision::Continue { status: StepStatus::Success },
        // No retry, reboot or next step in a container that is gone,
        // whatever the step's maxAttempts and onFailure say.
        AttemptOutcome::ContainerStopped => StepDecision::Abort { status: StepStatus::Failed },
        AttemptOutcome::RebootRequested if reboots_so_far < MAX_REBOOTS => StepDecision::Reboot,
        AttemptOutcome::RebootRequested | AttemptOutcome::Failed | AttemptOutcome::TimedOut => {
            if attempt < max_attempts {
                return StepDecision::Retry { attempt: attempt + 1 };
            }
            match on_failure {
                OnFailure::Abort => StepDecision::Abort { status: StepStatus::Failed },
                // AWSTOE: Continue fails the step (and so the document) but
                // runs the remaining steps; Ignore does not count it at all.
                OnFailure::Continue => StepDecision::Continue { status: StepStatus::Failed },
                OnFailure::Ignore => StepDecision::Continue { status: StepStatus::Ignored },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AttemptOutcome::*;

    #[test]
    fn decision_table() {
        let cases = [
            // (outcome, attempt, max, onFailure, reboots) -> decision
            (
                (Succeeded, 1, 1, OnFailure::Abort, 0),
                StepDecision::Continue { status: StepStatus::Success },
            ),
            (
                (Failed, 1, 1, OnFailure::Abort, 0),
                StepDecision::Abort { status: StepStatus::Failed },
            ),
            ((Failed, 1, 3, OnFailure::Abort, 0), StepDecision::Retry { attempt: 2 }),
            (
                (Failed, 3, 3, OnFailure::Abort, 0),
                StepDecision::Abort { status: StepStatus::Failed },
            ),
            ((TimedOut, 1, 2, OnFailure::Abort, 0), StepDecision::Retry { attempt: 2 }),
            (
                (TimedOut, 2, 2, OnFailure::Continue, 0),
                StepDecision::Continue { status: StepStatus::Failed },
            ),
            (
                (Failed, 1, 1, OnFailure::Ignore, 0),
                StepDecision::Continue { status: StepStatus::Ignored },
            ),
            ((RebootRequested, 1, 1, OnFailure::Abort, 0), StepDecision::Reboot),
            (
                (RebootRequested, 1, 1, OnFailure::Abort, MAX_REBOOTS),
                StepDecision::Abort { status: StepStatus::Failed },
            ),
            (
                (RebootRequested, 1, 2, OnFailure::Abort, MAX_REBOOTS),
                StepDecision::Retry { attempt: 2 },
            ),
            (
                (ContainerStopped, 1, 3, OnFailure::Ignore, 0),
                StepDecision::Abort { status: StepStatus::Failed },
            ),
        ];
        for ((outcome, attempt, max, on_failure, reboots), expected) in cases {
            assert_eq!(
                after_attempt(outcome, attempt, max, on_failure, reboots),
                expected,
                "{outcome:?} attempt {attempt}/{max} {on_failure:?} after {reboots} reboots"
            );
        }
    }
}
