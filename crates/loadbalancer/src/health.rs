//! The pure target-health state machine of one target group: AWS's target
//! states, thresholds, draining, and a history of every transition.
//!
//! No I/O and no clock reads: every operation takes `now`, the time since the
//! load balancer started, as an argument.
//!
//! Design notes:
//! - A registered target starts `initial` and gets traffic only once it is
//!   `healthy`, after `healthy_threshold` consecutive passing checks
//!   (invariant 2). `unhealthy_threshold` consecutive failures make an
//!   `initial` or `healthy` target `unhealthy`; `healthy_threshold`
//!   consecutive passes bring it back.
//! - Deregistration makes a target `draining`: no new requests, in-flight ones
//!   continue. Like ELB, draining ends early when the target has no in-flight
//!   requests left, and at the latest when the deregistration delay ends; the
//!   target is then removed and its last transition is to `unused`.
//! - Unregistered targets are `unused`, so a registration is recorded as a
//!   transition from `unused` to `initial`.
//! - Adoption is the one way to `healthy` without passing checks here: after
//!   a daemon restart, a target the previous process had seen pass its checks
//!   is adopted straight to `healthy` (recorded as `unused` to `healthy` with
//!   the reason [`Reason::Adopted`]) so that it keeps serving. It is then
//!   checked as usual: `unhealthy_threshold` failures make it `unhealthy`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::settings::HealthCheckSettings;

/// A target's id (the instance id in the lab).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetId(String);

impl TargetId {
    /// Wraps an id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A target: an id and the address it receives traffic on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The target's id.
    pub id: TargetId,
    /// The traffic address (loopback, invariant 7).
    pub addr: SocketAddr,
}

impl Target {
    /// A target.
    pub fn new(id: impl Into<String>, addr: SocketAddr) -> Self {
        Self { id: TargetId::new(id), addr }
    }
}

/// AWS's target health states (`TargetHealth.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetState {
    /// Registered, health checks not yet passed `healthy_threshold` times.
    Initial,
    /// Passing health checks; the only state that gets traffic.
    Healthy,
    /// Failed `unhealthy_threshold` consecutive checks.
    Unhealthy,
    /// Deregistered, finishing in-flight requests.
    Draining,
    /// Not registered.
    Unused,
}

impl TargetState {
    /// The AWS spelling: `initial`, `healthy`, `unhealthy`, `draining`, `unused`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
            Self::Draining => "draining",
            Self::Unused => "unused",
        }
    }
}

impl fmt::Display for TargetState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// AWS's reason codes (`TargetHealth.Reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// `Elb.InitialHealthChecking`.
    InitialHealthChecking,
    /// `Target.ResponseCodeMismatch`.
    ResponseCodeMismatch,
    /// `Target.Timeout`.
    Timeout,
    /// `Target.FailedHealthChecks`.
    FailedHealthChecks,
    /// `Target.DeregistrationInProgress`.
    DeregistrationInProgress,
    /// `Target.NotRegistered`.
    NotRegistered,
    /// `Autopatch.Adopted`: not an AWS code. It appears only in the history,
    /// on the transition of an adopted target to `healthy`; a healthy target
    /// has no reason in `DescribeTargetHealth`.
    Adopted,
}

impl Reason {
    /// The AWS spelling, such as `Elb.InitialHealthChecking`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InitialHealthChecking => "Elb.InitialHealthChecking",
            Self::ResponseCodeMismatch => "Target.ResponseCodeMismatch",
            Self::Timeout => "Target.Timeout",
            Self::FailedHealthChecks => "Target.FailedHealthChecks",
            Self::DeregistrationInProgress => "Target.DeregistrationInProgress",
            Self::NotRegistered => "Target.NotRegistered",
            Self::Adopted => "Autopatch.Adopted",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one health check observed, before the matcher is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// The target answered with this HTTP status.
    Status(u16),
    /// No response within the timeout.
    Timeout,
    /// The connection or the exchange failed; the text says how.
    Failed(String),
}

/// One line of `DescribeTargetHealth`'s `TargetHealthDescriptions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealthDescription {
    /// `Target.Id`.
    pub id: TargetId,
    /// `Target.Port`.
    pub port: u16,
    /// `HealthCheckPort`, resolved.
    pub health_check_port: u16,
    /// `TargetHealth.State`.
    pub state: TargetState,
    /// `TargetHealth.Reason`; none when healthy.
    pub reason: Option<Reason>,
    /// `TargetHealth.Description`; none when healthy.
    pub description: Option<String>,
}

/// A recorded state change of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// When, as time since the load balancer started.
    pub at: Duration,
    /// Which target.
    pub target: TargetId,
    /// The state before (`unused` for a registration).
    pub from: TargetState,
    /// The state after (`unused` for a removal).
    pub to: TargetState,
    /// The reason code of the new state, if any; [`Reason::Adopted`] for an
    /// adoption.
    pub reason: Option<Reason>,
}

/// Every transition of a target group, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    transitions: Vec<Transition>,
}

impl History {
    /// The transitions in the order they happened.
    pub fn transitions(&self) -> &[Transition] {
        &self.transitions
    }

    /// The number of healthy targets after each transition, as `(at, count)`.
    pub fn healthy_counts(&self) -> Vec<(Duration, usize)> {
        let mut count = 0_usize;
        self.transitions
            .iter()
            .map(|transition| {
                if transition.from == TargetState::Healthy {
                    count -= 1;
                }
                if transition.to == TargetState::Healthy {
                    count += 1;
                }
                (transition.at, count)
            })
            .collect()
    }

    /// The fewest healthy targets at any moment from `since` on (the count in
    /// force at `since` included), or `None` when nothing was recorded by then.
    pub fn min_healthy_since(&self, since: Duration) -> Option<usize> {
        let counts = self.healthy_counts();
        let in_force = counts.iter().rev().find(|(at, _)| *at <= since).map(|(_, count)| *count);
        let later = counts.iter().filter(|(at, _)| *at > since).map(|(_, count)| *count);
        in_force.into_iter().chain(later).min()
    }

    fn push(&mut self, transition: Transition) {
        self.transitions.push(transition);
    }
}

#[derive(Debug, Clone)]
struct TargetRecord {
    target: Target,
    state: TargetState,
    reason: Option<Reason>,
    description: Option<String>,
    consecutive_passes: u32,
    consecutive_failures: u32,
    draining_since: Option<Duration>,
}

/// Why draining ended, when [`TargetGroupHealth::finish_draining`] removes a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainEnd {
    /// No in-flight requests were left.
    Drained,
    /// The deregistration delay ended with requests still in flight.
    DelayElapsed,
}

/// The health state of one target group's targets.
#[derive(Debug, Clone)]
pub struct TargetGroupHealth {
    settings: HealthCheckSettings,
    deregistration_delay: Duration,
    targets: BTreeMap<TargetId, TargetRecord>,
    history: History,
}

impl TargetGroupHealth {
    /// An empty target group.
    pub fn new(settings: HealthCheckSettings, deregistration_delay: Duration) -> Self {
        Self {
            settings,
            deregistration_delay,
            targets: BTreeMap::new(),
            history: History::default(),
        }
    }

    /// The health-check settings in force.
    pub fn settings(&self) -> &HealthCheckSettings {
        &self.settings
    }

    /// Replaces the settings; counters carry over and are judged by the new thresholds at the next check.
    pub fn set_settings(&mut self, settings: HealthCheckSettings) {
        self.settings = settings;
    }

    /// `deregistration_delay.timeout_seconds`.
    pub fn deregistration_delay(&self) -> Duration {
        self.deregistration_delay
    }

    /// Changes the deregistration delay; targets already draining use the new value.
    pub fn set_deregistration_delay(&mut self, delay: Duration) {
        self.deregistration_delay = delay;
    }

    /// Registers a target: a new one (or one draining) becomes `initial`.
    /// Registering a target again while it is registered changes nothing.
    pub fn register(&mut self, target: Target, now: Duration) {
        let previous = self.targets.get(&target.id).map(|record| record.state);
        match previous {
            Some(state) if state != TargetState::Draining => {}
            _ => {
                let from = previous.unwrap_or(TargetState::Unused);
                let id = target.id.clone();
                self.targets.insert(
                    id.clone(),
                    TargetRecord {
                        target,
                        state: TargetState::Initial,
                        reason: Some(Reason::InitialHealthChecking),
                        description: Some("Initial health checking in progress".to_owned()),
                        consecutive_passes: 0,
                        consecutive_failures: 0,
                        draining_since: None,
                    },
                );
                self.record(
                    now,
                    id,
                    from,
                    TargetState::Initial,
                    Some(Reason::InitialHealthChecking),
                );
            }
        }
    }

    /// Adopts a target that a previous process of the daemon had seen pass
    /// its health checks: an unregistered one becomes `healthy` at once, as if
    /// it had just passed `healthy_threshold` checks. Returns false, changing
    /// nothing, when the target is already registered (draining included):
    /// adoption only fills a target group that starts empty after a restart,
    /// and never lifts a target this process is checking or draining.
    pub fn adopt(&mut self, target: Target, now: Duration) -> bool {
        if self.targets.contains_key(&target.id) {
            return false;
        }
        let id = target.id.clone();
        self.targets.insert(
            id.clone(),
            TargetRecord {
                target,
                state: TargetState::Healthy,
                reason: None,
                description: None,
                consecutive_passes: self.settings.healthy_threshold,
                consecutive_failures: 0,
                draining_since: None,
            },
        );
        self.record(now, id, TargetState::Unused, TargetState::Healthy, Some(Reason::Adopted));
        true
    }

    /// Starts draining a registered target. Returns false when it is not
    /// registered or already draining.
    pub fn deregister(&mut self, id: &TargetId, now: Duration) -> bool {
        let Some(record) = self.targets.get_mut(id) else { return false };
        if record.state == TargetState::Draining {
            return false;
        }
        let from = record.state;
        record.state = TargetState::Draining;
        record.reason = Some(Reason::DeregistrationInProgress);
        record.description = Some("Target deregistration is in progress".to_owned());
        record.draining_since = Some(now);
        self.record(
            now,
            id.clone(),
            from,
            TargetState::Draining,
            Some(Reason::DeregistrationInProgress),
        );
        true
    }

    /// When a draining target's delay ends.
    pub fn drain_deadline(&self, id: &TargetId) -> Option<Duration> {
        let since = self.targets.get(id)?.draining_since?;
        Some(since + self.deregistration_delay)
    }

    /// Removes a draining target when it has no in-flight requests or its
    /// delay has ended; says why, or `None` when it stays.
    pub fn finish_draining(
        &mut self,
        id: &TargetId,
        in_flight: u64,
        now: Duration,
    ) -> Option<DrainEnd> {
        let deadline = self.drain_deadline(id)?;
        let end = if in_flight == 0 {
            DrainEnd::Drained
        } else if now >= deadline {
            DrainEnd::DelayElapsed
        } else {
            return None;
        };
        self.targets.remove(id);
        self.record(
            now,
            id.clone(),
            TargetState::Draining,
            TargetState::Unused,
            Some(Reason::NotRegistered),
        );
        Some(end)
    }

    /// Feeds one health check's result into the target's state. Results for
    /// targets that are draining or gone are ignored. Returns the new state if
    /// it changed.
    pub fn record_check(
        &mut self,
        id: &TargetId,
        result: &ProbeResult,
        now: Duration,
    ) -> Option<TargetState> {
        let settings = &self.settings;
        let record = self.targets.get_mut(id)?;
        let from = record.state;
        if !matches!(from, TargetState::Initial | TargetState::Healthy | TargetState::Unhealthy) {
            return None;
        }
        let failure = match result {
            ProbeResult::Status(status) if settings.matcher.matches(*status) => None,
            ProbeResult::Status(status) => Some((
                Reason::ResponseCodeMismatch,
                format!("Health checks failed with these codes: [{status}]"),
            )),
            ProbeResult::Timeout => Some((Reason::Timeout, "Request timed out".to_owned())),
            ProbeResult::Failed(why) => {
                Some((Reason::FailedHealthChecks, format!("Health checks failed: {why}")))
            }
        };
        let to = match failure {
            None => {
                record.consecutive_passes = record.consecutive_passes.saturating_add(1);
                record.consecutive_failures = 0;
                if from != TargetState::Healthy
                    && record.consecutive_passes >= settings.healthy_threshold
                {
                    record.reason = None;
                    record.description = None;
                    TargetState::Healthy
                } else {
                    from
                }
            }
            Some((reason, description)) => {
                record.consecutive_failures = record.consecutive_failures.saturating_add(1);
                record.consecutive_passes = 0;
                if from != TargetState::Unhealthy
                    && record.consecutive_failures >= settings.unhealthy_threshold
                {
                    record.reason = Some(reason);
                    record.description = Some(description);
                    TargetState::Unhealthy
                } else {
                    if from == TargetState::Unhealthy {
                        record.reason = Some(reason);
                        record.description = Some(description);
                    }
                    from
                }
            }
        };
        if to == from {
            return None;
        }
        record.state = to;
        let reason = record.reason;
        self.record(now, id.clone(), from, to, reason);
        Some(to)
    }

    /// The state of a target; `unused` when it is not registered.
    pub fn state(&self, id: &TargetId) -> TargetState {
        self.targets.get(id).map_or(TargetState::Unused, |record| record.state)
    }

    /// The targets that may get new requests: the healthy ones, in id order.
    pub fn routable(&self) -> impl Iterator<Item = &Target> {
        self.in_states(&[TargetState::Healthy])
    }

    /// The targets to health-check: registered and not draining.
    pub fn checkable(&self) -> impl Iterator<Item = &Target> {
        self.in_states(&[TargetState::Initial, TargetState::Healthy, TargetState::Unhealthy])
    }

    /// The draining targets.
    pub fn draining(&self) -> impl Iterator<Item = &Target> {
        self.in_states(&[TargetState::Draining])
    }

    /// Every registered target, draining ones included.
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.targets.values().map(|record| &record.target)
    }

    /// `DescribeTargetHealth` for every registered target, in id order.
    pub fn describe(&self) -> Vec<TargetHealthDescription> {
        self.targets
            .values()
            .map(|record| TargetHealthDescription {
                id: record.target.id.clone(),
                port: record.target.addr.port(),
                health_check_port: match self.settings.port {
                    crate::settings::HealthCheckPort::TrafficPort => record.target.addr.port(),
                    crate::settings::HealthCheckPort::Port(port) => port,
                },
                state: record.state,
                reason: record.reason,
                description: record.description.clone(),
            })
            .collect()
    }

    /// Every transition so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    fn in_states<'a>(&'a self, states: &'a [TargetState]) -> impl Iterator<Item = &'a Target> + 'a {
        self.targets
            .values()
            .filter(move |record| states.contains(&record.state))
            .map(|record| &record.target)
    }

    fn record(
        &mut self,
        at: Duration,
        target: TargetId,
        from: TargetState,
        to: TargetState,
        reason: Option<Reason>,
    ) {
        self.history.push(Transition { at, target, from, to, reason });
    }
}
