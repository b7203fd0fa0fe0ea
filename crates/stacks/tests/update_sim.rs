//! Deterministic simulations of stack updates (issue 4, item 4).
//!
//! A small model world (`update_sim/world.rs`: a store, an engine whose
//! instances outlive the daemon, the daemon's group controllers, a virtual
//! clock) and an executor that mirrors operation.rs step by step
//! (`update_sim/executor.rs`) drive the public pure functions of the crate:
//! [`next_step`](autopatch_stacks::planner::next_step),
//! [`classify`](autopatch_stacks::update::classify),
//! [`rolling_step`](autopatch_stacks::update::rolling_step) and
//! [`signal_verdict`](autopatch_stacks::planner::signal_verdict).
//!
//! Each update (a replacing, a rolling and a policy-less one; to a good
//! image, to one that signals FAILURE, to one that never turns healthy) is
//! run once clean, then once for every step k with a crash (and a restart
//! from the store, as `StackService::open`), a fault (the act fails, a new
//! instance dies, a new instance signals FAILURE) or a cancel injected at
//! k. After every step the invariants of ../shared/design.md section 4 are
//! checked (`update_sim/invariants.rs`); at the end, the end state; then a
//! restart must change nothing. No engine, no real time: a run is a pure
//! function of its scenario.

#[path = "update_sim/executor.rs"]
mod executor;
#[path = "update_sim/invariants.rs"]
mod invariants;
#[path = "update_sim/sim.rs"]
mod sim;
#[path = "update_sim/tables.rs"]
mod tables;
#[path = "update_sim/world.rs"]
mod world;

use autopatch_model::StackStatus;
use autopatch_stacks::update::GroupPolicy;

use sim::{Effects, Event, Failure, Fault, Scenario, Sim};
use world::{DESIRED, Image, Lifecycle};

/// What is injected at each step k.
const INJECTIONS: [Event; 5] = [
    Event::Crash,
    Event::Fault(Fault::ActFails),
    Event::Fault(Fault::InstanceDies),
    Event::Fault(Fault::FailureSignal),
    Event::Cancel,
];

/// The end of a run.
struct Run {
    status: StackStatus,
    steps: usize,
    effects: Effects,
}

/// The statuses the run may end in, from what it injected.
fn expected_ends(scenario: &Scenario, effects: &Effects) -> Vec<StackStatus> {
    use StackStatus::{UpdateComplete, UpdateRollbackComplete, UpdateRollbackFailed};
    let faults_in_rollback =
        effects.faults.iter().any(|(_, status)| *status == StackStatus::UpdateRollbackInProgress);
    let gated = scenario.policy != GroupPolicy::None;
    let mut ends = if effects.cancelled || (gated && !scenario.image.is_good()) {
        vec![UpdateRollbackComplete]
    } else if effects.faults.is_empty() {
        vec![UpdateComplete]
    } else {
        vec![UpdateComplete, UpdateRollbackComplete]
    };
    // A fault while rolling back (a failed act, a FAILURE signal from a
    // relaunched instance) may fail the rollback (CloudFormation then wants
    // ContinueUpdateRollback).
    if faults_in_rollback {
        ends.push(UpdateRollbackFailed);
    }
    ends
}

/// Runs a scenario to its end and checks the end; then restarts the daemon
/// once more: the operation is idle, the store does not change, and the
/// orphan sweep leaves only groups that rows name.
fn simulate(scenario: Scenario) -> Result<Run, Failure> {
    let mut sim = Sim::start(scenario.clone());
    let status = sim.run()?;
    let ends = expected_ends(&scenario, &sim.effects);
    if !ends.contains(&status) {
        return Err(sim.failure(format!("the update ended {status}, expected one of {ends:?}")));
    }
    if status != StackStatus::UpdateRollbackFailed
        && let Err(violation) = sim.checker.check_end(&sim.world, &sim.fleet, &sim.effects, status)
    {
        return Err(sim.failure(format!("at the end ({status}): {violation}")));
    }
    let steps = sim.step;
    let rows = sim.world.store.rows.clone();
    sim.note("a last restart after the end".into());
    sim.scenario.events.clear();
    let again = sim.restart().and_then(|()| sim.run_operation());
    match again {
        Ok(again) if again == status && sim.world.store.rows == rows => {}
        Ok(again) => {
            return Err(sim.failure(format!("a restart after {status} went on to {again}")));
        }
        Err(stop) => return Err(sim.failure(format!("the restart after the end: {stop:?}"))),
    }
    let named = sim.world.store.named();
    let left: Vec<String> =
        sim.world.groups(&sim.fleet).into_iter().filter(|group| !named.contains(group)).collect();
    if !left.is_empty() {
        return Err(sim.failure(format!("groups {left:?} outlived a restart's orphan sweep")));
    }
    Ok(Run { status, steps, effects: sim.effects })
}

fn clean(policy: GroupPolicy, image: Image) -> Run {
    simulate(Scenario::new(policy, image)).unwrap_or_else(|failure| panic!("{failure}"))
}

/// Fails with every failed run listed.
fn assert_all_pass(runs: usize, failures: Vec<Failure>) {
    let unknown: Vec<&Failure> = failures.iter().collect();
    if let Some(first) = unknown.first() {
        let all: Vec<String> =
            unknown.iter().map(|f| format!("{:?}: {}", f.scenario.events, f.message)).collect();
        panic!("{} of {runs} runs failed:\n{}\nthe first:\n{first}", unknown.len(), all.join("\n"));
    }
}

/// The clean run, then every injection at every step of it (and one past);
/// returns the number of runs.
fn sweep(scenario: Scenario) -> usize {
    let steps = match simulate(scenario.clone()) {
        Ok(run) => run.steps + 1,
        Err(failure) => panic!("{failure}"),
    };
    let mut runs = 1;
    let mut failures = Vec::new();
    for step in 1..=steps {
        for event in INJECTIONS {
            runs += 1;
            if let Err(failure) = simulate(scenario.clone().at(step, event)) {
                failures.push(failure);
            }
        }
    }
    assert_all_pass(runs, failures);
    runs
}

fn matrix(policy: GroupPolicy, image: Image) -> usize {
    sweep(Scenario::new(policy, image))
}

#[test]
fn replacing_update_to_a_good_image_completes_or_rolls_back_at_every_step() {
    let run = clean(GroupPolicy::Replacing, Image::B);
    assert_eq!(run.status, StackStatus::UpdateComplete);
    assert!(matrix(GroupPolicy::Replacing, Image::B) > 100);
}

#[test]
fn replacing_update_to_an_image_that_signals_failure_rolls_back_at_every_step() {
    let run = clean(GroupPolicy::Replacing, Image::BrokenSignalsFailure);
    assert_eq!(run.status, StackStatus::UpdateRollbackComplete);
    matrix(GroupPolicy::Replacing, Image::BrokenSignalsFailure);
}

#[test]
fn replacing_update_to_an_image_that_never_turns_healthy_rolls_back_at_every_step() {
    let run = clean(GroupPolicy::Replacing, Image::BrokenNeverHealthy);
    assert_eq!(run.status, StackStatus::UpdateRollbackComplete);
    matrix(GroupPolicy::Replacing, Image::BrokenNeverHealthy);
}

#[test]
fn rolling_update_to_a_good_image_keeps_one_in_service_at_every_step() {
    let run = clean(GroupPolicy::Rolling, Image::B);
    assert_eq!(run.status, StackStatus::UpdateComplete);
    matrix(GroupPolicy::Rolling, Image::B);
}

#[test]
fn rolling_update_to_an_image_that_signals_failure_rolls_back_at_every_step() {
    let run = clean(GroupPolicy::Rolling, Image::BrokenSignalsFailure);
    assert_eq!(run.status, StackStatus::UpdateRollbackComplete);
    matrix(GroupPolicy::Rolling, Image::BrokenSignalsFailure);
}

#[test]
fn updates_without_a_policy_change_the_group_in_place_at_every_step() {
    for image in [Image::B, Image::BrokenSignalsFailure, Image::BrokenNeverHealthy] {
        let run = clean(GroupPolicy::None, image);
        assert_eq!(run.status, StackStatus::UpdateComplete, "{image:?}");
        matrix(GroupPolicy::None, image);
    }
}

/// A cancel at step c, then a crash at every later step (and so a restart
/// in the middle of every part of the rollback).
#[test]
fn a_crash_at_every_step_of_a_cancelled_update() {
    for policy in [GroupPolicy::Replacing, GroupPolicy::Rolling, GroupPolicy::None] {
        let steps = clean(policy, Image::B).steps;
        let mut runs = 0;
        let mut failures = Vec::new();
        for cancel in 1..=steps {
            let cancelled = Scenario::new(policy, Image::B).at(cancel, Event::Cancel);
            let Ok(run) = simulate(cancelled.clone()) else { continue };
            for crash in cancel..=run.steps {
                runs += 1;
                if let Err(failure) = simulate(cancelled.clone().at(crash, Event::Crash)) {
                    failures.push(failure);
                }
            }
        }
        assert_all_pass(runs, failures);
    }
}

/// Two crashes: a restart interrupted again at every later step.
#[test]
fn a_second_crash_at_every_step_after_the_first() {
    for (policy, image) in [
        (GroupPolicy::Replacing, Image::B),
        (GroupPolicy::Replacing, Image::BrokenSignalsFailure),
        (GroupPolicy::Rolling, Image::B),
    ] {
        let steps = clean(policy, image).steps;
        let mut runs = 0;
        let mut failures = Vec::new();
        for first in 1..=steps {
            for second in first + 1..=steps + 8 {
                runs += 1;
                let scenario =
                    Scenario::new(policy, image).at(first, Event::Crash).at(second, Event::Crash);
                if let Err(failure) = simulate(scenario) {
                    failures.push(failure);
                }
            }
        }
        assert_all_pass(runs, failures);
    }
}

/// A cancel at any step of a rolling update to a never-healthy image (until
/// the batch's deadline fails it by itself) ends it in
/// UPDATE_ROLLBACK_COMPLETE with one instance in service throughout.
#[test]
fn a_cancel_at_every_step_ends_a_rolling_update_to_an_image_that_never_turns_healthy() {
    let mut cancelled = 0;
    for step in 1..=60 {
        let scenario =
            Scenario::new(GroupPolicy::Rolling, Image::BrokenNeverHealthy).at(step, Event::Cancel);
        let run = simulate(scenario).unwrap_or_else(|failure| panic!("{failure}"));
        assert_eq!(run.status, StackStatus::UpdateRollbackComplete, "cancel at step {step}");
        if run.effects.cancelled {
            cancelled += 1;
        } else {
            assert!(step > 5, "a cancel at step {step} came after the update had failed");
        }
    }
    assert!(cancelled >= 5, "{cancelled} runs were cancelled");
}

/// Found by the simulations (fixed: the deadline is the batch's): with ELB health checks the group replaces a new instance
/// that never turns healthy after its grace period, and `rolling_step`
/// measures the batch's deadline from each instance's own launch, so the
/// replacements restart the clock: the update waits forever instead of
/// failing and rolling back.
#[test]
fn rolling_update_to_an_image_that_never_turns_healthy() {
    let run = clean(GroupPolicy::Rolling, Image::BrokenNeverHealthy);
    assert_eq!(run.status, StackStatus::UpdateRollbackComplete);
    matrix(GroupPolicy::Rolling, Image::BrokenNeverHealthy);
}

/// Found by the simulations (fixed: a restored row's group is adopted): the replacing update to a broken image rolls back; the
/// daemon dies right after `restore_step`'s first write (the group's row
/// names the old group again, `UPDATE_IN_PROGRESS`, with the replacement
/// kept as `replaced` with `restored: true`). Recovery treats the row as a
/// replacement still being made, so it does not adopt the old group (only
/// the replacement); the resumed rollback classifies the row `InPlace`,
/// whose `UpdateAutoScalingGroup` finds no controller for the old group:
/// UPDATE_ROLLBACK_FAILED instead of UPDATE_ROLLBACK_COMPLETE.
#[test]
fn a_crash_in_the_middle_of_restoring_the_old_group_fails_the_rollback() {
    let window = "ASG: restored: the replaced one is current, UPDATE_IN_PROGRESS";
    let rollback = simulate(Scenario::new(GroupPolicy::Replacing, Image::BrokenSignalsFailure))
        .unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(rollback.status, StackStatus::UpdateRollbackComplete);
    // Find the step of the window, then crash right after it.
    let mut sim = Sim::start(Scenario::new(GroupPolicy::Replacing, Image::BrokenSignalsFailure));
    sim.run().unwrap_or_else(|failure| panic!("{failure}"));
    let step = sim.step_of(window).expect("the rollback restores the group");
    let scenario =
        Scenario::new(GroupPolicy::Replacing, Image::BrokenSignalsFailure).at(step, Event::Crash);
    let run = simulate(scenario).unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(run.status, StackStatus::UpdateRollbackComplete);
}

/// Found by the simulations (fixed: `rolling_step` sees the group's real capacity): with `MinInstancesInService` equal to the desired
/// capacity every batch grows the group first; the new instance signals
/// FAILURE, the rolling update fails and sets the group back to the
/// template's capacity (2), and the rollback's first look sees three
/// instances: `rolling_step` takes the surplus for its own growth and
/// answers `Terminate { decrement: true }`, which takes the group's desired
/// capacity to 1. The group then never again has the template's two
/// instances that `rolling_step` waits for: the rollback never ends. The
/// same happens after a restart (the adopted group has the stored capacity
/// 2 while three instances run) and when the group was grown because its
/// controller had not yet replaced a terminated instance.
#[test]
fn a_rolling_update_that_grew_and_failed_rolls_back() {
    let mut scenario = Scenario::new(GroupPolicy::Rolling, Image::BrokenSignalsFailure);
    scenario.min_in_service = 2;
    let run = simulate(scenario).unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(run.status, StackStatus::UpdateRollbackComplete);
    // Also: a crash right after the first termination (step 8) of the
    // rolling update with MinInstancesInService 1.
    let crashed =
        Scenario::new(GroupPolicy::Rolling, Image::BrokenSignalsFailure).at(8, Event::Crash);
    let run = simulate(crashed).unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(run.status, StackStatus::UpdateRollbackComplete);
}

/// `MinInstancesInService` equal to the desired capacity: every batch
/// grows the group first, and the update keeps two instances in service.
#[test]
fn rolling_update_keeping_every_instance_in_service() {
    for image in [Image::B, Image::BrokenSignalsFailure] {
        let mut scenario = Scenario::new(GroupPolicy::Rolling, image);
        scenario.min_in_service = DESIRED;
        sweep(scenario);
    }
}

/// A slow group controller (it ticks every other poll): the rolling update
/// may look before the replacement of the instance it terminated exists.
#[test]
fn rolling_update_with_a_slow_controller_keeps_one_in_service() {
    for image in [Image::B, Image::BrokenSignalsFailure] {
        let mut scenario = Scenario::new(GroupPolicy::Rolling, image);
        scenario.lagging_controller = true;
        sweep(scenario);
    }
}

/// The old group of a replacing update is deleted only after the gate, and
/// a failed delete is reported, leaves the group not serving, and the next
/// restart's sweep removes it.
#[test]
fn a_failed_cleanup_delete_leaves_nothing_serving_and_the_next_restart_sweeps_it() {
    let steps = clean(GroupPolicy::Replacing, Image::B).steps;
    let mut failed_deletes = 0;
    for step in 1..=steps {
        let scenario =
            Scenario::new(GroupPolicy::Replacing, Image::B).at(step, Event::Fault(Fault::ActFails));
        let run = simulate(scenario).unwrap_or_else(|failure| panic!("{failure}"));
        if !run.effects.failed_deletes.is_empty() {
            failed_deletes += 1;
            assert_eq!(
                run.status,
                StackStatus::UpdateComplete,
                "a failed cleanup is reported only"
            );
        }
    }
    assert!(failed_deletes > 0, "some step's act is the old group's deletion");
}

/// Sanity of the model itself: the world before the update serves, and an
/// instance that dies is replaced by its group.
#[test]
fn the_model_world_serves_before_the_update_and_heals_its_group() {
    let mut sim = Sim::start(Scenario::new(GroupPolicy::Replacing, Image::B));
    assert_eq!(sim.world.healthy_targets().len(), 2);
    let id = sim.world.healthy_targets()[0].id.clone();
    sim.world.instances.get_mut(&id).expect("known").died_at = Some(sim.world.now);
    assert_eq!(sim.world.healthy_targets().len(), 1);
    let did = sim.world.tick(&sim.fleet);
    assert_eq!(sim.world.instances[&id].lifecycle, Lifecycle::Terminated);
    assert_eq!(did.len(), 2, "{did:?}");
    sim.world.now += world::HEALTHY_AFTER;
    assert!(sim.world.tick(&sim.fleet).is_empty());
    assert_eq!(sim.world.healthy_targets().len(), 2);
}
