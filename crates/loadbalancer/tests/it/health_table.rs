//! The pure health state machine as tables: each test is a script of events
//! and the rendered transition history it must produce.

use std::fmt::Write as _;
use std::time::Duration;

use autopatch_loadbalancer::{
    DrainEnd, HealthCheckPort, HealthCheckSettings, Matcher, ProbeResult, Target,
    TargetGroupHealth, TargetId, TargetState,
};
use expect_test::{Expect, expect};

/// One scripted event at a time in seconds.
enum Event {
    Register(&'static str),
    Adopt(&'static str),
    Deregister(&'static str),
    Check(&'static str, ProbeResult),
    FinishDraining(&'static str, u64),
}
use Event::*;

fn pass() -> ProbeResult {
    ProbeResult::Status(200)
}

fn fail() -> ProbeResult {
    ProbeResult::Status(500)
}

fn settings(healthy_threshold: u32, unhealthy_threshold: u32) -> HealthCheckSettings {
    HealthCheckSettings { healthy_threshold, unhealthy_threshold, ..HealthCheckSettings::default() }
}

fn addr(id: &str) -> std::net::SocketAddr {
    let port = 8000 + u16::from(id.as_bytes()[0] - b'a');
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

/// Runs the events (`(seconds, event)`) and renders the history, plus any
/// draining outcomes, one line each.
fn run(
    settings: HealthCheckSettings,
    delay_seconds: u64,
    events: Vec<(u64, Event)>,
) -> (TargetGroupHealth, String) {
    let mut group = TargetGroupHealth::new(settings, Duration::from_secs(delay_seconds));
    let mut notes = String::new();
    for (seconds, event) in events {
        let now = Duration::from_secs(seconds);
        match event {
            Register(id) => group.register(Target::new(id, addr(id)), now),
            Adopt(id) => {
                if !group.adopt(Target::new(id, addr(id)), now) {
                    writeln!(notes, "t={seconds}s adopt {id}: ignored").unwrap();
                }
            }
            Deregister(id) => {
                let started = group.deregister(&TargetId::new(id), now);
                if !started {
                    writeln!(notes, "t={seconds}s deregister {id}: ignored").unwrap();
                }
            }
            Check(id, result) => {
                group.record_check(&TargetId::new(id), &result, now);
            }
            FinishDraining(id, in_flight) => {
                let end = group.finish_draining(&TargetId::new(id), in_flight, now);
                writeln!(
                    notes,
                    "t={seconds}s finish draining {id} with {in_flight} in flight: {end:?}"
                )
                .unwrap();
            }
        }
    }
    let mut out = String::new();
    for transition in group.history().transitions() {
        let reason = transition.reason.map(|reason| format!(" ({reason})")).unwrap_or_default();
        writeln!(
            out,
            "t={}s {} {} -> {}{reason}",
            transition.at.as_secs(),
            transition.target,
            transition.from,
            transition.to
        )
        .unwrap();
    }
    out.push_str(&notes);
    (group, out)
}

fn check(
    settings: HealthCheckSettings,
    delay_seconds: u64,
    events: Vec<(u64, Event)>,
    expect: Expect,
) {
    let (_, out) = run(settings, delay_seconds, events);
    expect.assert_eq(&out);
}

#[test]
fn healthy_only_after_healthy_threshold_consecutive_passes() {
    check(
        settings(3, 2),
        300,
        vec![
            (0, Register("a")),
            (0, Check("a", pass())),
            (10, Check("a", pass())),
            (20, Check("a", pass())),
        ],
        expect![[r#"
            t=0s a unused -> initial (Elb.InitialHealthChecking)
            t=20s a initial -> healthy
        "#]],
    );
}

#[test]
fn initial_target_turns_unhealthy_after_unhealthy_threshold_failures() {
    check(
        settings(3, 2),
        300,
        vec![
            (0, Register("a")),
            (0, Check("a", pass())),
            (10, Check("a", fail())),
            (20, Check("a", ProbeResult::Timeout)),
        ],
        expect![[r#"
            t=0s a unused -> initial (Elb.InitialHealthChecking)
            t=20s a initial -> unhealthy (Target.Timeout)
        "#]],
    );
}

#[test]
fn adopted_target_is_healthy_at_once_and_then_checked_as_usual() {
    let (group, _) = run(settings(3, 2), 300, vec![(0, Adopt("a"))]);
    assert_eq!(group.routable().map(|target| target.id.as_str()).collect::<Vec<_>>(), ["a"]);
    let description = &group.describe()[0];
    assert_eq!((description.state, description.reason), (TargetState::Healthy, None));
    assert_eq!(description.description, None);
    assert_eq!(group.history().min_healthy_since(Duration::ZERO), Some(1));

    // Failures count from the adoption; adopting a registered target (here
    // `initial` and `unhealthy` ones) changes nothing.
    check(
        settings(3, 2),
        300,
        vec![
            (0, Adopt("a")),
            (0, Register("b")),
            (0, Adopt("b")),
            (0, Check("a", pass())),
            (10, Check("a", fail())),
            (20, Check("a", fail())),
            (25, Adopt("a")),
            (30, Check("a", pass())),
            (40, Check("a", pass())),
            (50, Check("a", pass())),
        ],
        expect![[r#"
            t=0s a unused -> healthy (Autopatch.Adopted)
            t=0s b unused -> initial (Elb.InitialHealthChecking)
            t=20s a healthy -> unhealthy (Target.ResponseCodeMismatch)
            t=50s a unhealthy -> healthy
            t=0s adopt b: ignored
            t=25s adopt a: ignored
        "#]],
    );
}

#[test]
fn flapping_never_reaches_a_threshold() {
    // Alternating results reset the other counter each time: a healthy
    // target stays healthy and an unhealthy one stays unhealthy.
    let mut events = vec![(0, Register("a")), (0, Check("a", pass())), (10, Check("a", pass()))];
    for step in 0..6 {
        let result = if step % 2 == 0 { fail() } else { pass() };
        events.push((20 + step * 10, Check("a", result)));
    }
    events.extend([(80, Check("a", fail())), (90, Check("a", fail()))]);
    for step in 0..6 {
        let result = if step % 2 == 0 { pass() } else { fail() };
        events.push((100 + step * 10, Check("a", result)));
    }
    events.extend([(160, Check("a", pass())), (170, Check("a", pass()))]);
    check(
        settings(2, 2),
        300,
        events,
        expect![[r#"
            t=0s a unused -> initial (Elb.InitialHealthChecking)
            t=10s a initial -> healthy
            t=90s a healthy -> unhealthy (Target.ResponseCodeMismatch)
            t=170s a unhealthy -> healthy
        "#]],
    );
}

#[test]
fn draining_waits_for_in_flight_requests_until_the_delay_ends() {
    check(
        settings(2, 2),
        60,
        vec![
            (0, Register("a")),
            (0, Register("b")),
            (0, Check("a", pass())),
            (0, Check("b", pass())),
            (10, Check("a", pass())),
            (10, Check("b", pass())),
            (15, Deregister("a")),
            (15, Deregister("b")),
            (16, Check("a", fail())),
            (16, Check("a", fail())),
            (17, FinishDraining("a", 1)),
            (18, FinishDraining("a", 0)),
            (30, FinishDraining("b", 3)),
            (75, FinishDraining("b", 3)),
            (76, Deregister("b")),
        ],
        expect![[r#"
            t=0s a unused -> initial (Elb.InitialHealthChecking)
            t=0s b unused -> initial (Elb.InitialHealthChecking)
            t=10s a initial -> healthy
            t=10s b initial -> healthy
            t=15s a healthy -> draining (Target.DeregistrationInProgress)
            t=15s b healthy -> draining (Target.DeregistrationInProgress)
            t=18s a draining -> unused (Target.NotRegistered)
            t=75s b draining -> unused (Target.NotRegistered)
            t=17s finish draining a with 1 in flight: None
            t=18s finish draining a with 0 in flight: Some(Drained)
            t=30s finish draining b with 3 in flight: None
            t=75s finish draining b with 3 in flight: Some(DelayElapsed)
            t=76s deregister b: ignored
        "#]],
    );
}

#[test]
fn registering_a_draining_target_starts_over_from_initial() {
    check(
        settings(2, 2),
        60,
        vec![
            (0, Register("a")),
            (0, Check("a", pass())),
            (10, Check("a", pass())),
            (20, Deregister("a")),
            (21, Register("a")),
            (22, Register("a")),
            (23, Check("a", pass())),
            (33, Check("a", pass())),
        ],
        expect![[r#"
            t=0s a unused -> initial (Elb.InitialHealthChecking)
            t=10s a initial -> healthy
            t=20s a healthy -> draining (Target.DeregistrationInProgress)
            t=21s a draining -> initial (Elb.InitialHealthChecking)
            t=33s a initial -> healthy
        "#]],
    );
}

#[test]
fn only_healthy_targets_are_routable() {
    let (group, _) = run(
        settings(2, 2),
        60,
        vec![
            (0, Register("a")),
            (0, Register("b")),
            (0, Register("c")),
            (0, Check("a", pass())),
            (1, Check("a", pass())),
            (0, Check("b", pass())),
            (1, Check("b", pass())),
            (2, Deregister("b")),
            (0, Check("c", ProbeResult::Failed("connection refused".to_owned()))),
            (1, Check("c", ProbeResult::Failed("connection refused".to_owned()))),
        ],
    );
    let routable: Vec<&str> = group.routable().map(|target| target.id.as_str()).collect();
    assert_eq!(routable, ["a"]);
    let states: Vec<(String, TargetState, Option<&str>)> = group
        .describe()
        .iter()
        .map(|description| {
            (
                description.id.to_string(),
                description.state,
                description.reason.map(|reason| reason.as_str()),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("a".to_owned(), TargetState::Healthy, None),
            ("b".to_owned(), TargetState::Draining, Some("Target.DeregistrationInProgress")),
            ("c".to_owned(), TargetState::Unhealthy, Some("Target.FailedHealthChecks")),
        ]
    );
}

#[test]
fn history_gives_the_fewest_healthy_targets_over_time() {
    let (group, _) = run(
        settings(2, 2),
        60,
        vec![
            (0, Register("a")),
            (0, Register("b")),
            (0, Check("a", pass())),
            (0, Check("b", pass())),
            (10, Check("a", pass())),
            (10, Check("b", pass())),
            (20, Register("c")),
            (20, Check("c", pass())),
            (30, Check("c", pass())),
            (40, Deregister("a")),
            (41, FinishDraining("a", 0)),
            (50, Check("b", fail())),
            (60, Check("b", fail())),
        ],
    );
    let history = group.history();
    assert_eq!(
        history
            .healthy_counts()
            .iter()
            .map(|(at, count)| (at.as_secs(), *count))
            .collect::<Vec<_>>(),
        [(0, 0), (0, 0), (10, 1), (10, 2), (20, 2), (30, 3), (40, 2), (41, 2), (60, 1)]
    );
    assert_eq!(history.min_healthy_since(Duration::from_secs(10)), Some(1));
    assert_eq!(history.min_healthy_since(Duration::from_secs(15)), Some(1));
    assert_eq!(history.min_healthy_since(Duration::from_secs(30)), Some(1));
    assert_eq!(history.min_healthy_since(Duration::from_secs(0)), Some(0));
}

#[test]
fn matcher_accepts_codes_ranges_and_lists() {
    let table: [(&str, &[(u16, bool)]); 4] = [
        ("200", &[(200, true), (201, false), (302, false)]),
        ("200-299", &[(199, false), (200, true), (250, true), (299, true), (300, false)]),
        ("200,302", &[(200, true), (302, true), (301, false)]),
        ("200,300-399", &[(200, true), (350, true), (400, false)]),
    ];
    for (text, cases) in table {
        let matcher = Matcher::parse(text).unwrap();
        for (status, expected) in cases {
            assert_eq!(matcher.matches(*status), *expected, "{text} against {status}");
        }
    }
    for bad in ["", "abc", "600", "199", "300-200", "200,", "200-"] {
        assert!(Matcher::parse(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn defaults_are_aws_http_target_group_defaults() {
    let defaults = HealthCheckSettings::default();
    assert_eq!(defaults.path, "/");
    assert_eq!(defaults.port, HealthCheckPort::TrafficPort);
    assert_eq!(defaults.interval, Duration::from_secs(30));
    assert_eq!(defaults.timeout, Duration::from_secs(6));
    assert_eq!((defaults.healthy_threshold, defaults.unhealthy_threshold), (5, 2));
    assert_eq!(defaults.matcher.as_str(), "200");
    assert_eq!(defaults.validate(), Ok(()));
    assert_eq!(HealthCheckPort::parse("traffic-port"), Ok(HealthCheckPort::TrafficPort));
    assert_eq!(HealthCheckPort::parse("8080"), Ok(HealthCheckPort::Port(8080)));
    assert!(HealthCheckPort::parse("0").is_err());
}

#[test]
fn settings_outside_aws_limits_are_refused() {
    let base = HealthCheckSettings::default();
    let bad = [
        HealthCheckSettings { healthy_threshold: 1, ..base.clone() },
        HealthCheckSettings { unhealthy_threshold: 11, ..base.clone() },
        HealthCheckSettings { path: "health".to_owned(), ..base.clone() },
        HealthCheckSettings { timeout: Duration::from_secs(31), ..base.clone() },
        HealthCheckSettings { interval: Duration::ZERO, ..base.clone() },
    ];
    for settings in bad {
        assert!(settings.validate().is_err(), "{settings:?} should be refused");
    }
    let drained = DrainEnd::Drained;
    assert_ne!(drained, DrainEnd::DelayElapsed);
}
