//! The health checker under virtual time with a scripted prober: intervals,
//! timeouts and thresholds without waiting for real time to pass.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use autopatch_loadbalancer::{
    HealthCheckPort, HealthCheckSettings, LoadBalancer, LoadBalancerConfig, ProbeResult, Reason,
    ScriptedAnswer, ScriptedProber, Target, TargetId, TargetState,
};
use hyper::StatusCode;

use crate::support::{TestBackend, get};

fn settings() -> HealthCheckSettings {
    HealthCheckSettings {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        healthy_threshold: 3,
        unhealthy_threshold: 2,
        ..HealthCheckSettings::default()
    }
}

async fn start(prober: Arc<ScriptedProber>, health_check: HealthCheckSettings) -> LoadBalancer {
    let config = LoadBalancerConfig {
        health_check,
        deregistration_delay: Duration::from_secs(60),
        ..LoadBalancerConfig::default()
    };
    LoadBalancer::start_with(SocketAddr::from(([127, 0, 0, 1], 0)), config, prober).await.unwrap()
}

/// The rendered history: `t=<s> <target> <from> -> <to> (<reason>)`.
fn history(lb: &LoadBalancer) -> Vec<String> {
    lb.history()
        .transitions()
        .iter()
        .map(|transition| {
            let reason = transition.reason.map(|reason| format!(" ({reason})")).unwrap_or_default();
            format!(
                "t={:?} {} {} -> {}{reason}",
                transition.at, transition.target, transition.from, transition.to
            )
        })
        .collect()
}

// Targets on port 9 of 127.0.0.1: the scripted prober never connects anywhere.
fn target(id: &str) -> Target {
    Target::new(id, SocketAddr::from(([127, 0, 0, 1], 9)))
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn target_turns_healthy_at_the_third_check_one_interval_apart() {
    let prober = Arc::new(ScriptedProber::new());
    let lb = start(prober.clone(), settings()).await;
    lb.register_targets(&[target("a")]).unwrap();
    lb.wait_for_state(&TargetId::new("a"), TargetState::Healthy).await;
    assert_eq!(
        history(&lb),
        ["t=0ns a unused -> initial (Elb.InitialHealthChecking)", "t=20s a initial -> healthy"]
    );
    let starts: Vec<Duration> =
        prober.probes().iter().map(|(at, _)| at.duration_since(lb.epoch())).collect();
    assert_eq!(starts, [Duration::ZERO, Duration::from_secs(10), Duration::from_secs(20)]);
    lb.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn probes_that_never_answer_time_out_and_make_the_target_unhealthy() {
    let prober = Arc::new(ScriptedProber::new());
    let a = TargetId::new("a");
    let pass = ScriptedAnswer::Result(ProbeResult::Status(200));
    prober.script(&a, [pass.clone(), pass.clone(), pass, ScriptedAnswer::Hang]);
    let lb = start(prober.clone(), settings()).await;
    lb.register_targets(&[target("a")]).unwrap();
    lb.wait_for_state(&a, TargetState::Unhealthy).await;
    // Checks start at 0, 10, 20 (healthy), 30 and 40; the last two time out
    // 5 s after they start.
    assert_eq!(
        history(&lb),
        [
            "t=0ns a unused -> initial (Elb.InitialHealthChecking)",
            "t=20s a initial -> healthy",
            "t=45s a healthy -> unhealthy (Target.Timeout)",
        ]
    );
    let description = &lb.describe_target_health()[0];
    assert_eq!(
        (description.state, description.reason),
        (TargetState::Unhealthy, Some(Reason::Timeout))
    );
    assert_eq!(description.description.as_deref(), Some("Request timed out"));
    lb.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn matcher_and_port_settings_are_applied_to_probes() {
    let prober = Arc::new(ScriptedProber::new());
    let a = TargetId::new("a");
    prober.script(&a, [ScriptedAnswer::Result(ProbeResult::Status(302))]);
    let health_check = HealthCheckSettings {
        path: "/ping".to_owned(),
        port: HealthCheckPort::Port(8081),
        matcher: autopatch_loadbalancer::Matcher::parse("200,302").unwrap(),
        ..settings()
    };
    let lb = start(prober.clone(), health_check.clone()).await;
    lb.register_targets(&[target("a")]).unwrap();
    lb.wait_for_state(&a, TargetState::Healthy).await;
    let (_, request) = &prober.probes()[0];
    assert_eq!((request.addr.port(), request.path.as_str()), (8081, "/ping"));
    let description = &lb.describe_target_health()[0];
    assert_eq!((description.port, description.health_check_port), (9, 8081));

    // A stricter matcher turns the same answers into failures.
    let strict =
        HealthCheckSettings { matcher: autopatch_loadbalancer::Matcher::default(), ..health_check };
    lb.set_health_check(strict).unwrap();
    lb.wait_for_state(&a, TargetState::Unhealthy).await;
    assert_eq!(lb.describe_target_health()[0].reason, Some(Reason::ResponseCodeMismatch));
    lb.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn draining_target_without_requests_is_removed_and_no_longer_checked() {
    let prober = Arc::new(ScriptedProber::new());
    let lb = start(prober.clone(), settings()).await;
    let a = TargetId::new("a");
    lb.register_targets(&[target("a")]).unwrap();
    lb.wait_for_state(&a, TargetState::Healthy).await;
    lb.deregister_targets(std::slice::from_ref(&a));
    lb.wait_for_state(&a, TargetState::Unused).await;
    let probes_after_removal = prober.probes().len();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(prober.probes().len(), probes_after_removal);
    assert!(lb.describe_target_health().is_empty());
    assert_eq!(
        history(&lb)[2..],
        [
            "t=20s a healthy -> draining (Target.DeregistrationInProgress)",
            "t=20s a draining -> unused (Target.NotRegistered)"
        ]
    );
    lb.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn adopted_target_gets_traffic_at_once() {
    let backend = TestBackend::start("a").await;
    let prober = Arc::new(ScriptedProber::new());
    let lb = start(prober, settings()).await;
    // Registered, it would need three passing checks (20 s) before traffic.
    lb.adopt_targets(&[Target::new("a", backend.addr)]).unwrap();
    let description = &lb.describe_target_health()[0];
    assert_eq!((description.state, description.reason), (TargetState::Healthy, None));
    let (status, body) = get(lb.local_addr(), "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("a "), "{body}");
    assert_eq!(backend.hits(), 1);
    // Served by the adoption itself: no other transition happened.
    assert_eq!(history(&lb), ["t=0ns a unused -> healthy (Autopatch.Adopted)"]);
    lb.shutdown().await;
    backend.shut_down().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn adopted_target_failing_its_checks_turns_unhealthy_at_the_threshold() {
    let prober = Arc::new(ScriptedProber::new());
    let a = TargetId::new("a");
    prober.script(&a, [ScriptedAnswer::Result(ProbeResult::Status(500))]);
    let lb = start(prober.clone(), settings()).await;
    lb.adopt_targets(&[target("a")]).unwrap();
    lb.wait_for_state(&a, TargetState::Unhealthy).await;
    // Checks at 0 and 10 s: the second failure reaches UnhealthyThresholdCount 2.
    assert_eq!(
        history(&lb),
        [
            "t=0ns a unused -> healthy (Autopatch.Adopted)",
            "t=10s a healthy -> unhealthy (Target.ResponseCodeMismatch)",
        ]
    );
    assert_eq!(prober.probes().len(), 2);
    // Adopting it again does not lift it; other addresses are refused whole.
    lb.adopt_targets(&[target("a")]).unwrap();
    assert_eq!(lb.describe_target_health()[0].state, TargetState::Unhealthy);
    let outside = Target::new("b", SocketAddr::from(([192, 0, 2, 1], 80)));
    assert!(lb.adopt_targets(&[target("c"), outside]).is_err());
    assert_eq!(lb.describe_target_health().len(), 1);
    lb.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn non_loopback_addresses_and_invalid_settings_are_refused() {
    let prober = Arc::new(ScriptedProber::new());
    let outside = SocketAddr::from(([192, 0, 2, 1], 80));
    let refused =
        LoadBalancer::start_with(outside, LoadBalancerConfig::default(), prober.clone()).await;
    assert!(refused.is_err());
    let lb = start(prober, settings()).await;
    assert!(lb.register_targets(&[Target::new("a", outside)]).is_err());
    assert!(lb.describe_target_health().is_empty());
    assert!(
        lb.set_health_check(HealthCheckSettings { healthy_threshold: 1, ..settings() }).is_err()
    );
    lb.shutdown().await;
}
