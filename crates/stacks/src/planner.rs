//! The stack operation planner: given a stack's status and its resources'
//! statuses, the one next thing to do. Pure: no I/O and no clock, so every
//! interleaving of a crash and a restart is a table row in the tests.
//!
//! The executor asks [`next_step`], does the step (writing the new resource
//! status before and after acting), and asks again, so an operation resumed
//! after a crash continues from what the store says.
//!
//! Updates converge: each resource of the target template (the new one, or
//! the previous one while rolling back) is compared with what the store
//! says it is ([`crate::update::classify`] gives a [`Change`]), and the
//! first one in dependency order that differs is worked on. Replaced
//! resources stay until the cleanup phase deletes them; a rollback swaps
//! them back.

use std::collections::{BTreeMap, BTreeSet};

use autopatch_fleet::{Signal, SignalStatus};
use autopatch_model::{ResourceStatus, StackStatus};

pub use crate::update::Change;

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create the resource (or finish creating it: handlers are idempotent).
    Create(String),
    /// Delete the resource.
    Delete(String),
    /// Keep the resource (`DeletionPolicy: Retain`) and record `DELETE_SKIPPED`.
    Retain(String),
    /// Bring an existing resource to its desired properties (updates).
    Update(String, Change),
    /// Delete what a resource replaced (update cleanup): the old physical
    /// resource after an update, the replacement after a rollback.
    Cleanup(String),
    /// Every resource is created or converged: evaluate the outputs, then
    /// complete (or, in an update, move on to the cleanup).
    Outputs,
    /// The operation moves the stack to this status (a failure starting a
    /// rollback, or the end of the operation), with a reason when failed.
    Transition(StackStatus, Option<String>),
    /// Nothing to do: the stack is not in an operation.
    Idle,
}

/// The facts the planner needs.
#[derive(Debug, Clone, Default)]
pub struct StackView {
    pub status: Option<StackStatus>,
    /// The template's resources that exist under its conditions, in
    /// dependency (create) order.
    pub order: Vec<String>,
    /// Resources the store knows, with their status.
    pub resources: BTreeMap<String, ResourceStatus>,
    /// Resources with `DeletionPolicy: Retain` (or `RetainExceptOnCreate`):
    /// kept by DeleteStack and by an update's cleanup when the template no
    /// longer names them; a rollback deletes them.
    pub retain: BTreeSet<String>,
    /// `DisableRollback` / `OnFailure: DO_NOTHING`.
    pub disable_rollback: bool,
    /// Updates: how each resource of `order` differs from the store, in
    /// order up to the first that does (later ones are not evaluated: they
    /// may depend on it).
    pub changes: BTreeMap<String, Change>,
    /// Resources that hold a replaced physical resource until cleanup.
    pub replaced: BTreeSet<String>,
}

/// The next step of the stack's operation.
pub fn next_step(view: &StackView) -> Step {
    let Some(status) = view.status else { return Step::Idle };
    match status {
        StackStatus::CreateInProgress => next_create_step(view),
        StackStatus::RollbackInProgress => next_delete_step(view, false)
            .unwrap_or(Step::Transition(StackStatus::RollbackComplete, None)),
        StackStatus::DeleteInProgress => next_delete_step(view, true)
            .unwrap_or(Step::Transition(StackStatus::DeleteComplete, None)),
        StackStatus::UpdateInProgress | StackStatus::UpdateRollbackInProgress => {
            next_converge_step(view, status == StackStatus::UpdateRollbackInProgress)
        }
        StackStatus::UpdateCompleteCleanupInProgress => next_cleanup_step(view, true)
            .unwrap_or(Step::Transition(StackStatus::UpdateComplete, None)),
        StackStatus::UpdateRollbackCompleteCleanupInProgress => next_cleanup_step(view, false)
            .unwrap_or(Step::Transition(StackStatus::UpdateRollbackComplete, None)),
        _ => Step::Idle,
    }
}

/// An update (or its rollback) works on the first resource, in dependency
/// order, that is not yet what the target template says. A resource that
/// failed during the update starts the rollback; a failure during the
/// rollback ends it (the executor moves the stack to
/// `UPDATE_ROLLBACK_FAILED` itself, since resources failed by the update
/// are expected while rolling back).
fn next_converge_step(view: &StackView, rolling_back: bool) -> Step {
    if !rolling_back {
        let failed: Vec<&str> = view
            .resources
            .iter()
            .filter(|(_, status)| {
                matches!(status, ResourceStatus::CreateFailed | ResourceStatus::UpdateFailed)
            })
            .map(|(name, _)| name.as_str())
            .collect();
        if !failed.is_empty() {
            let reason =
                format!("The following resource(s) failed to update: [{}].", failed.join(", "));
            return Step::Transition(StackStatus::UpdateRollbackInProgress, Some(reason));
        }
    }
    for name in &view.order {
        // The executor evaluates every resource up to the first change.
        match view.changes.get(name) {
            Some(Change::None) | None => continue,
            Some(Change::Create) => return Step::Create(name.clone()),
            Some(change) => return Step::Update(name.clone(), change.clone()),
        }
    }
    Step::Outputs
}

/// After an update (or its rollback): delete what was replaced, newest
/// dependents first, then the resources the target template no longer
/// names; after an update (`honour_retain`), those with `DeletionPolicy:
/// Retain` are kept. A rollback deletes what the update made, whatever
/// its policy.
///
/// Each delete is tried once, as CloudFormation does: a resource that is
/// `DELETE_FAILED` stays so (with its reason) and the cleanup goes on and
/// ends complete; a later DeleteStack tries it again. (A replaced resource
/// is let go of by [`Step::Cleanup`] whatever its delete's outcome.)
fn next_cleanup_step(view: &StackView, honour_retain: bool) -> Option<Step> {
    for name in view.order.iter().rev() {
        if view.replaced.contains(name) {
            return Some(Step::Cleanup(name.clone()));
        }
    }
    let in_order: BTreeSet<&String> = view.order.iter().collect();
    let to_delete =
        |status: &ResourceStatus| status.may_exist() && *status != ResourceStatus::DeleteFailed;
    view.resources.iter().find(|(name, status)| !in_order.contains(name) && to_delete(status)).map(
        |(name, _)| {
            if view.replaced.contains(name) {
                Step::Cleanup(name.clone())
            } else if honour_retain && view.retain.contains(name) {
                Step::Retain(name.clone())
            } else {
                Step::Delete(name.clone())
            }
        },
    )
}

fn next_create_step(view: &StackView) -> Step {
    let failed: Vec<&str> = view
        .resources
        .iter()
        .filter(|(_, status)| **status == ResourceStatus::CreateFailed)
        .map(|(name, _)| name.as_str())
        .collect();
    if !failed.is_empty() {
        let reason =
            format!("The following resource(s) failed to create: [{}].", failed.join(", "));
        let next = if view.disable_rollback {
            StackStatus::CreateFailed
        } else {
            StackStatus::RollbackInProgress
        };
        return Step::Transition(next, Some(reason));
    }
    for name in &view.order {
        match view.resources.get(name) {
            Some(ResourceStatus::CreateComplete) => continue,
            _ => return Step::Create(name.clone()),
        }
    }
    Step::Outputs
}

/// The next resource to delete, in reverse create order (resources the
/// store knows but the template no longer names go first), or `None` when
/// nothing is left. A failed delete ends the operation.
fn next_delete_step(view: &StackView, honour_retain: bool) -> Option<Step> {
    let failed: Vec<&str> = view
        .resources
        .iter()
        .filter(|(_, status)| **status == ResourceStatus::DeleteFailed)
        .map(|(name, _)| name.as_str())
        .collect();
    if !failed.is_empty() {
        let (status, verb) = if honour_retain {
            (StackStatus::DeleteFailed, "delete")
        } else {
            (StackStatus::RollbackFailed, "delete during rollback")
        };
        let reason =
            format!("The following resource(s) failed to {verb}: [{}].", failed.join(", "));
        return Some(Step::Transition(status, Some(reason)));
    }
    let in_order: BTreeSet<&String> = view.order.iter().collect();
    let unordered = view.resources.keys().filter(|name| !in_order.contains(name));
    let reverse = unordered.chain(view.order.iter().rev());
    for name in reverse {
        let Some(status) = view.resources.get(name) else { continue };
        if !status.may_exist() {
            continue;
        }
        if honour_retain && view.retain.contains(name) {
            return Some(Step::Retain(name.clone()));
        }
        return Some(Step::Delete(name.clone()));
    }
    None
}

/// What the `cfn-signal` calls received so far mean for a resource's
/// `CreationPolicy.ResourceSignal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalVerdict {
    /// `Count` distinct instances signalled success.
    Satisfied,
    /// A failure signal arrived: the resource fails at once, with this reason.
    Failed(String),
    /// Not enough yet: `received` distinct successes.
    Waiting { received: usize },
}

/// Judges `signals` for `resource` of the stack named by either of `stack`
/// (its name or its id, as `cfn-signal --stack` accepts both). Signals for
/// other resources or stacks are ignored; one instance counts once.
pub fn signal_verdict(
    signals: &[Signal],
    stack: [&str; 2],
    resource: &str,
    count: u32,
) -> SignalVerdict {
    let mut successes = BTreeSet::new();
    for signal in signals
        .iter()
        .filter(|signal| signal.resource == resource && stack.contains(&signal.stack.as_str()))
    {
        match signal.status {
            SignalStatus::Success => {
                successes.insert(signal.unique_id.as_str());
            }
            SignalStatus::Failure => {
                let reason = signal
                    .reason
                    .as_deref()
                    .map(|reason| format!(": {reason}"))
                    .unwrap_or_default();
                return SignalVerdict::Failed(format!(
                    "Received FAILURE signal with UniqueId {}{reason}",
                    signal.unique_id
                ));
            }
        }
    }
    if successes.len() >= count as usize {
        SignalVerdict::Satisfied
    } else {
        SignalVerdict::Waiting { received: successes.len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ResourceStatus as R;
    use StackStatus as S;

    fn view(status: S, resources: &[(&str, R)]) -> StackView {
        StackView {
            status: Some(status),
            order: vec!["Vpc".into(), "Subnet".into(), "Group".into()],
            resources: resources.iter().map(|(name, status)| (name.to_string(), *status)).collect(),
            ..StackView::default()
        }
    }

    #[test]
    fn create_goes_in_dependency_order_and_resumes_in_progress_resources() {
        assert_eq!(next_step(&view(S::CreateInProgress, &[])), Step::Create("Vpc".into()));
        let partway = view(S::CreateInProgress, &[("Vpc", R::CreateComplete)]);
        assert_eq!(next_step(&partway), Step::Create("Subnet".into()));
        // A crash while Subnet was being created: the executor finishes it.
        let crashed = view(
            S::CreateInProgress,
            &[("Vpc", R::CreateComplete), ("Subnet", R::CreateInProgress)],
        );
        assert_eq!(next_step(&crashed), Step::Create("Subnet".into()));
        let all = view(
            S::CreateInProgress,
            &[
                ("Vpc", R::CreateComplete),
                ("Subnet", R::CreateComplete),
                ("Group", R::CreateComplete),
            ],
        );
        assert_eq!(next_step(&all), Step::Outputs);
    }

    #[test]
    fn a_failed_create_rolls_back_unless_rollback_is_disabled() {
        let failed =
            view(S::CreateInProgress, &[("Vpc", R::CreateComplete), ("Subnet", R::CreateFailed)]);
        let reason = Some("The following resource(s) failed to create: [Subnet].".to_owned());
        assert_eq!(next_step(&failed), Step::Transition(S::RollbackInProgress, reason.clone()));
        let kept = StackView { disable_rollback: true, ..failed };
        assert_eq!(next_step(&kept), Step::Transition(S::CreateFailed, reason));
    }

    #[test]
    fn rollback_deletes_in_reverse_order_including_failed_and_half_made_resources() {
        let rolling = view(
            S::RollbackInProgress,
            &[
                ("Vpc", R::CreateComplete),
                ("Subnet", R::CreateFailed),
                ("Group", R::DeleteComplete),
            ],
        );
        assert_eq!(next_step(&rolling), Step::Delete("Subnet".into()));
        let later = view(
            S::RollbackInProgress,
            &[("Vpc", R::DeleteInProgress), ("Subnet", R::DeleteComplete)],
        );
        assert_eq!(next_step(&later), Step::Delete("Vpc".into()));
        let done = view(
            S::RollbackInProgress,
            &[("Vpc", R::DeleteComplete), ("Subnet", R::DeleteComplete)],
        );
        assert_eq!(next_step(&done), Step::Transition(S::RollbackComplete, None));
    }

    #[test]
    fn rollback_ignores_retain_but_delete_honours_it() {
        let mut rolling = view(S::RollbackInProgress, &[("Vpc", R::CreateComplete)]);
        rolling.retain.insert("Vpc".into());
        assert_eq!(next_step(&rolling), Step::Delete("Vpc".into()));
        let deleting = StackView { status: Some(S::DeleteInProgress), ..rolling };
        assert_eq!(next_step(&deleting), Step::Retain("Vpc".into()));
        let skipped =
            StackView { resources: [("Vpc".to_owned(), R::DeleteSkipped)].into(), ..deleting };
        assert_eq!(next_step(&skipped), Step::Transition(S::DeleteComplete, None));
    }

    /// QA s10 M2: a resource an update removes is kept when its policy
    /// says so; a rollback's cleanup deletes what the update made.
    #[test]
    fn an_update_keeps_a_retained_resource_it_removes_and_a_rollback_does_not() {
        let mut cleanup = view(
            S::UpdateCompleteCleanupInProgress,
            &[
                ("Vpc", R::UpdateComplete),
                ("Subnet", R::UpdateComplete),
                ("Group", R::UpdateComplete),
                ("Keep", R::CreateComplete),
            ],
        );
        cleanup.retain.insert("Keep".into());
        assert_eq!(next_step(&cleanup), Step::Retain("Keep".into()));
        cleanup.resources.insert("Keep".into(), R::DeleteSkipped);
        assert_eq!(next_step(&cleanup), Step::Transition(S::UpdateComplete, None));
        let mut rollback =
            StackView { status: Some(S::UpdateRollbackCompleteCleanupInProgress), ..cleanup };
        rollback.resources.insert("Keep".into(), R::CreateComplete);
        assert_eq!(next_step(&rollback), Step::Delete("Keep".into()));
        // A replaced resource is cleaned up whatever its deletion policy.
        rollback.status = Some(S::UpdateCompleteCleanupInProgress);
        rollback.replaced.insert("Keep".into());
        assert_eq!(next_step(&rollback), Step::Cleanup("Keep".into()));
    }

    /// A delete the cleanup of an update (or of its rollback) could not do
    /// is not tried again (it would be in a tight loop): the operation
    /// completes, also when resumed from the store after a restart.
    #[test]
    fn a_cleanup_tries_each_delete_once_and_completes() {
        for (status, done) in [
            (S::UpdateCompleteCleanupInProgress, S::UpdateComplete),
            (S::UpdateRollbackCompleteCleanupInProgress, S::UpdateRollbackComplete),
        ] {
            let mut cleanup = view(
                status,
                &[
                    ("Vpc", R::UpdateComplete),
                    ("Subnet", R::UpdateComplete),
                    ("Group", R::UpdateComplete),
                    ("Old", R::DeleteFailed),
                    ("Older", R::CreateComplete),
                    ("Kept", R::DeleteFailed),
                ],
            );
            cleanup.retain.insert("Kept".into());
            assert_eq!(next_step(&cleanup), Step::Delete("Older".into()));
            // A restart while it was being deleted: the delete resumes.
            cleanup.resources.insert("Older".into(), R::DeleteInProgress);
            assert_eq!(next_step(&cleanup), Step::Delete("Older".into()));
            cleanup.resources.insert("Older".into(), R::DeleteFailed);
            assert_eq!(next_step(&cleanup), Step::Transition(done, None));
        }
    }

    #[test]
    fn a_failed_delete_ends_the_operation_failed() {
        let deleting =
            view(S::DeleteInProgress, &[("Vpc", R::CreateComplete), ("Subnet", R::DeleteFailed)]);
        assert!(matches!(next_step(&deleting), Step::Transition(S::DeleteFailed, Some(_))));
        let rolling = StackView { status: Some(S::RollbackInProgress), ..deleting };
        assert!(matches!(next_step(&rolling), Step::Transition(S::RollbackFailed, Some(_))));
    }

    #[test]
    fn resources_the_template_no_longer_names_are_deleted_first() {
        let deleting =
            view(S::DeleteInProgress, &[("Vpc", R::CreateComplete), ("Old", R::CreateComplete)]);
        assert_eq!(next_step(&deleting), Step::Delete("Old".into()));
    }

    #[test]
    fn stable_stacks_are_idle() {
        for status in [S::CreateComplete, S::RollbackComplete, S::DeleteComplete, S::CreateFailed] {
            assert_eq!(next_step(&view(status, &[("Vpc", R::CreateComplete)])), Step::Idle);
        }
    }
    fn signal(stack: &str, resource: &str, id: &str, status: SignalStatus) -> Signal {
        Signal {
            instance_id: id.into(),
            stack: stack.into(),
            resource: resource.into(),
            status,
            reason: Some("exit 1".into()),
            unique_id: id.into(),
            region: None,
        }
    }

    #[test]
    fn signals_count_distinct_instances_of_this_stack_and_resource_and_a_failure_ends_the_wait() {
        let stack = ["app", "arn:aws:cloudformation:local:0:stack/app/1"];
        let ok = SignalStatus::Success;
        let signals = vec![
            signal("app", "Group", "i-1", ok),
            signal("app", "Group", "i-1", ok),
            signal("other", "Group", "i-2", ok),
            signal("app", "Config", "i-3", ok),
        ];
        assert_eq!(
            signal_verdict(&signals, stack, "Group", 2),
            SignalVerdict::Waiting { received: 1 }
        );
        let mut more = signals.clone();
        more.push(signal("arn:aws:cloudformation:local:0:stack/app/1", "Group", "i-4", ok));
        assert_eq!(signal_verdict(&more, stack, "Group", 2), SignalVerdict::Satisfied);
        more.push(signal("app", "Group", "i-5", SignalStatus::Failure));
        assert_eq!(
            signal_verdict(&more, stack, "Group", 3),
            SignalVerdict::Failed("Received FAILURE signal with UniqueId i-5: exit 1".into())
        );
    }
}
