//! Real HTTP through the proxy on 127.0.0.1, with tiny hyper backends started
//! by each test. Assertions are on behaviour (who served what, statuses),
//! never on timings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use autopatch_loadbalancer::{
    HttpProber, InitialTargets, LoadBalancer, LoadBalancerConfig, ProbeResult, ScriptedAnswer,
    ScriptedProber, Target, TargetId, TargetState,
};
use hyper::StatusCode;

use crate::support::{TestBackend, broken_backend, connect, fast_checks, get, send, wait_for};

const LOOPBACK_ANY_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

async fn start_lb(
    prober: Arc<dyn autopatch_loadbalancer::Prober>,
    deregistration_delay: Duration,
) -> LoadBalancer {
    start_lb_on(prober, deregistration_delay, 0).await
}

async fn start_lb_on(
    prober: Arc<dyn autopatch_loadbalancer::Prober>,
    deregistration_delay: Duration,
    worker_threads: usize,
) -> LoadBalancer {
    let config = LoadBalancerConfig {
        health_check: fast_checks(),
        deregistration_delay,
        worker_threads,
        ..LoadBalancerConfig::default()
    };
    LoadBalancer::start_with(LOOPBACK_ANY_PORT, config, prober).await.unwrap()
}

#[tokio::test]
async fn round_robin_across_two_healthy_backends() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let lb = start_lb(Arc::new(HttpProber), Duration::from_secs(1)).await;
    lb.register_targets(&[Target::new("a", a.addr), Target::new("b", b.addr)]).unwrap();
    wait_for(&lb, "a", TargetState::Healthy).await;
    wait_for(&lb, "b", TargetState::Healthy).await;
    let mut client = connect(lb.local_addr()).await;
    for _ in 0..200 {
        let (status, _) = send(&mut client, "/").await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!((a.hits(), b.hits()), (100, 100));
    lb.shutdown().await;
}

#[tokio::test]
async fn worker_threads_serve_round_robin_and_retry_refused_connections() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let lb = start_lb_on(Arc::new(ScriptedProber::new()), Duration::from_secs(1), 2).await;
    lb.register_targets(&[Target::new("a", a.addr), Target::new("b", b.addr)]).unwrap();
    wait_for(&lb, "a", TargetState::Healthy).await;
    wait_for(&lb, "b", TargetState::Healthy).await;
    // Several client connections, so both workers get some.
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(connect(lb.local_addr()).await);
    }
    for _ in 0..25 {
        for client in &mut clients {
            assert_eq!(send(client, "/").await.0, StatusCode::OK);
        }
    }
    assert_eq!(a.hits() + b.hits(), 200);
    assert_eq!(a.hits(), 100);
    a.shut_down().await;
    for client in &mut clients {
        let (status, body) = send(client, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.starts_with("b "), "{body}");
    }
    lb.shutdown().await;
}

#[tokio::test]
async fn request_bodies_are_forwarded() {
    let a = TestBackend::start("a").await;
    let lb = start_lb(Arc::new(ScriptedProber::new()), Duration::from_secs(1)).await;
    lb.register_targets(&[Target::new("a", a.addr)]).unwrap();
    wait_for(&lb, "a", TargetState::Healthy).await;
    let payload = "x".repeat(100_000);
    let (status, body) = crate::support::post(lb.local_addr(), "/echo", payload.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), payload.len());
    assert!(body == payload);
    lb.shutdown().await;
}

#[tokio::test]
async fn responds_503_only_when_no_target_is_healthy() {
    let lb = start_lb(Arc::new(HttpProber), Duration::from_secs(1)).await;
    let (status, body) = get(lb.local_addr(), "/").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "503 Service Temporarily Unavailable\n")
    );

    // A registered target that refuses connections turns unhealthy: still 503.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    lb.register_targets(&[Target::new("gone", closed_addr)]).unwrap();
    wait_for(&lb, "gone", TargetState::Unhealthy).await;
    assert_eq!(get(lb.local_addr(), "/").await.0, StatusCode::SERVICE_UNAVAILABLE);

    let a = TestBackend::start("a").await;
    lb.register_targets(&[Target::new("a", a.addr)]).unwrap();
    wait_for(&lb, "a", TargetState::Healthy).await;
    let (status, body) = get(lb.local_addr(), "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("a "), "{body}");
    lb.shutdown().await;
}

#[tokio::test]
async fn initial_target_gets_no_traffic() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let prober = Arc::new(ScriptedProber::new());
    // b flaps: never two passes in a row (the healthy threshold) nor two
    // failures in a row (the unhealthy threshold), so it stays `initial`
    // whatever the machine's speed.
    let flapping = (0..2000).map(|check| {
        ScriptedAnswer::Result(ProbeResult::Status(if check % 2 == 0 { 200 } else { 500 }))
    });
    prober.script(&TargetId::new("b"), flapping);
    let lb = start_lb(prober, Duration::from_secs(1)).await;
    lb.register_targets(&[Target::new("a", a.addr), Target::new("b", b.addr)]).unwrap();
    wait_for(&lb, "a", TargetState::Healthy).await;
    let mut client = connect(lb.local_addr()).await;
    for _ in 0..20 {
        let (status, body) = send(&mut client, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.starts_with("a "), "{body}");
    }
    assert_eq!(b.hits(), 0);
    let history = lb.history();
    assert!(
        history
            .transitions()
            .iter()
            .all(|t| t.target.as_str() != "b" || t.to == TargetState::Initial)
    );
    lb.shutdown().await;
}

#[tokio::test]
async fn draining_target_finishes_its_in_flight_request_and_gets_no_new_ones() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let lb = start_lb(Arc::new(ScriptedProber::new()), Duration::from_secs(60)).await;
    lb.register_targets(&[Target::new("a", a.addr), Target::new("b", b.addr)]).unwrap();
    wait_for(&lb, "a", TargetState::Healthy).await;
    wait_for(&lb, "b", TargetState::Healthy).await;

    // Round robin starts with the first target in id order: a.
    let listen = lb.local_addr();
    let slow = tokio::spawn(async move { get(listen, "/slow").await });
    let a_id = TargetId::new("a");
    while lb.in_flight(&a_id) != Some(1) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    lb.deregister_targets(std::slice::from_ref(&a_id));
    assert_eq!(lb.describe_target_health()[0].state, TargetState::Draining);

    let mut client = connect(lb.local_addr()).await;
    for _ in 0..10 {
        let (status, body) = send(&mut client, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.starts_with("b "), "{body}");
    }
    assert_eq!(a.hits(), 1);
    assert_eq!(lb.describe_target_health()[0].state, TargetState::Draining);

    a.release_slow();
    let (status, body) = slow.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("a "), "{body}");
    // Removed once its last request finished, long before the 60 s delay.
    wait_for(&lb, "a", TargetState::Unused).await;
    let a_transitions: Vec<(TargetState, TargetState)> = lb
        .history()
        .transitions()
        .iter()
        .filter(|t| t.target == a_id)
        .map(|t| (t.from, t.to))
        .collect();
    assert_eq!(
        a_transitions,
        [
            (TargetState::Unused, TargetState::Initial),
            (TargetState::Initial, TargetState::Healthy),
            (TargetState::Healthy, TargetState::Draining),
            (TargetState::Draining, TargetState::Unused),
        ]
    );
    lb.shutdown().await;
}

#[tokio::test]
async fn refused_connection_is_retried_on_the_other_target() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    // The scripted prober keeps a "healthy" after it dies, so every request
    // routed to a must take the retry path.
    let lb = start_lb(Arc::new(ScriptedProber::new()), Duration::from_secs(1)).await;
    lb.register_targets(&[Target::new("a", a.addr), Target::new("b", b.addr)]).unwrap();
    wait_for(&lb, "a", TargetState::Healthy).await;
    wait_for(&lb, "b", TargetState::Healthy).await;
    let mut client = connect(lb.local_addr()).await;
    for _ in 0..10 {
        assert_eq!(send(&mut client, "/").await.0, StatusCode::OK);
    }
    assert_eq!((a.hits(), b.hits()), (5, 5));
    a.shut_down().await;
    let mut failed = 0;
    for _ in 0..100 {
        let (status, body) = send(&mut client, "/").await;
        if status != StatusCode::OK || !body.starts_with("b ") {
            failed += 1;
        }
    }
    assert_eq!(failed, 0);
    assert_eq!(b.hits(), 105);
    // One refused connect, then a is passed by instead of tried again for
    // every other request.
    assert_eq!(lb.target_connection_errors(&TargetId::new("a")), Some(1));
    assert_eq!(lb.target_connection_errors(&TargetId::new("b")), Some(0));
    lb.shutdown().await;
}

/// A target whose address swallows connects, as a killed container's
/// published port does while its forward still points at the gone address,
/// must not hold requests for the whole connect timeout: each request moves
/// on to the other target, and after the first the target is passed by.
#[tokio::test]
async fn a_target_whose_connects_hang_is_passed_by() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let lb = start_lb(Arc::new(ScriptedProber::new()), Duration::from_secs(1)).await;
    lb.register_targets(&[Target::new("a", a.addr), Target::new("b", b.addr)]).unwrap();
    wait_for(&lb, "a", TargetState::Healthy).await;
    wait_for(&lb, "b", TargetState::Healthy).await;
    let a_addr = a.addr;
    a.shut_down().await;
    let _hanging = hanging_listener(a_addr).await;
    let mut client = connect(lb.local_addr()).await;
    for _ in 0..40 {
        let (status, body) = send(&mut client, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.starts_with("b "), "{body}");
    }
    assert_eq!(b.hits(), 40);
    assert_eq!(lb.target_connection_errors(&TargetId::new("a")), Some(1));
    lb.shutdown().await;
}

/// A listener on `addr` that never accepts, its accept queue filled, so that
/// further connects get no answer (Linux drops their SYNs) and hang.
async fn hanging_listener(
    addr: SocketAddr,
) -> (tokio::net::TcpListener, Vec<tokio::net::TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    let listener = socket.listen(0).unwrap();
    let mut queued = Vec::new();
    // Connects complete until the queue is full; the first that does not
    // shows that it is.
    loop {
        match tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(addr))
            .await
        {
            Ok(Ok(stream)) => queued.push(stream),
            Ok(Err(error)) => panic!("connect to the hanging listener: {error}"),
            Err(_) => break,
        }
        assert!(queued.len() < 64, "the accept queue never filled");
    }
    (listener, queued)
}

#[tokio::test]
async fn keep_alive_and_forwarded_headers() {
    let a = TestBackend::start("a").await;
    let lb = start_lb(Arc::new(HttpProber), Duration::from_secs(1)).await;
    lb.register_targets(&[Target::new("a", a.addr)]).unwrap();
    wait_for(&lb, "a", TargetState::Healthy).await;
    // Several requests on one client connection.
    let mut client = connect(lb.local_addr()).await;
    let port = lb.local_addr().port();
    for _ in 0..5 {
        let (status, body) = send(&mut client, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, format!("a xff=127.0.0.1 proto=http port={port}"));
    }
    // An X-Forwarded-For from the client gets the client's address appended.
    let (_, body) =
        crate::support::send_with(&mut client, "/", &[("x-forwarded-for", "203.0.113.7")]).await;
    assert_eq!(body, format!("a xff=203.0.113.7, 127.0.0.1 proto=http port={port}"));
    assert!(!client.is_closed());
    assert_eq!(a.hits(), 6);
    lb.shutdown().await;
}

#[tokio::test]
async fn target_breaking_mid_response_gives_502() {
    let (addr, task) = broken_backend().await;
    let lb = start_lb(Arc::new(ScriptedProber::new()), Duration::from_secs(1)).await;
    lb.register_targets(&[Target::new("broken", addr)]).unwrap();
    wait_for(&lb, "broken", TargetState::Healthy).await;
    let (status, body) = get(lb.local_addr(), "/").await;
    assert_eq!((status, body.as_str()), (StatusCode::BAD_GATEWAY, "502 Bad Gateway\n"));
    task.abort();
    lb.shutdown().await;
}

#[tokio::test]
async fn replacing_targets_under_load_fails_no_request() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let c = TestBackend::start("c").await;
    let lb = start_lb(Arc::new(HttpProber), Duration::from_secs(5)).await;
    lb.register_targets(&[Target::new("a", a.addr), Target::new("b", b.addr)]).unwrap();
    wait_for(&lb, "a", TargetState::Healthy).await;
    wait_for(&lb, "b", TargetState::Healthy).await;

    // Eight paced keep-alive clients, at most 500 requests in all.
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (done, failed, stop) = (done.clone(), failed.clone(), stop.clone());
        let listen = lb.local_addr();
        clients.push(tokio::spawn(async move {
            let mut client = connect(listen).await;
            while !stop.load(Ordering::SeqCst) && done.fetch_add(1, Ordering::SeqCst) < 500 {
                if send(&mut client, "/").await.0 != StatusCode::OK {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    let wait_for_requests = |count: usize| {
        let done = done.clone();
        async move {
            while done.load(Ordering::SeqCst) < count {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    wait_for_requests(50).await;
    let cutover_start = lb.epoch().elapsed();
    lb.register_targets(&[Target::new("c", c.addr)]).unwrap();
    wait_for(&lb, "c", TargetState::Healthy).await;
    lb.deregister_targets(&[TargetId::new("a"), TargetId::new("b")]);
    wait_for(&lb, "a", TargetState::Unused).await;
    wait_for(&lb, "b", TargetState::Unused).await;
    let old_hits = (a.hits(), b.hits());
    let requests_at_removal = done.load(Ordering::SeqCst);
    // More requests after the removal (bounded by the cap of 500).
    wait_for_requests((requests_at_removal + 40).min(500)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }

    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert_eq!((a.hits(), b.hits()), old_hits, "removed targets got requests");
    assert!(c.hits() > 0);
    assert_eq!(lb.history().min_healthy_since(cutover_start), Some(1));
    lb.shutdown().await;
}

#[tokio::test]
async fn real_health_checks_report_aws_reasons() {
    use autopatch_loadbalancer::{HealthCheckSettings, Reason};

    let a = TestBackend::start("a").await;
    let lb = start_lb(Arc::new(HttpProber), Duration::from_secs(1)).await;
    lb.register_targets(&[Target::new("a", a.addr)]).unwrap();
    wait_for(&lb, "a", TargetState::Healthy).await;

    let cases = [
        (
            "/health/500",
            Reason::ResponseCodeMismatch,
            "Health checks failed with these codes: [500]",
        ),
        ("/health/hang", Reason::Timeout, "Request timed out"),
    ];
    for (path, reason, description) in cases {
        lb.set_health_check(HealthCheckSettings { path: path.to_owned(), ..fast_checks() })
            .unwrap();
        wait_for(&lb, "a", TargetState::Unhealthy).await;
        let health = &lb.describe_target_health()[0];
        assert_eq!(
            (health.reason, health.description.as_deref()),
            (Some(reason), Some(description))
        );
        assert_eq!(get(lb.local_addr(), "/").await.0, StatusCode::SERVICE_UNAVAILABLE);
        lb.set_health_check(fast_checks()).unwrap();
        wait_for(&lb, "a", TargetState::Healthy).await;
    }
    lb.shutdown().await;
}

#[tokio::test]
async fn target_that_never_answers_gets_504_after_the_idle_timeout() {
    let a = TestBackend::start("a").await;
    let config = LoadBalancerConfig {
        health_check: fast_checks(),
        idle_timeout: Duration::from_millis(300),
        ..LoadBalancerConfig::default()
    };
    let lb = LoadBalancer::start_with(LOOPBACK_ANY_PORT, config, Arc::new(ScriptedProber::new()))
        .await
        .unwrap();
    lb.register_targets(&[Target::new("a", a.addr)]).unwrap();
    wait_for(&lb, "a", TargetState::Healthy).await;
    let (status, body) = get(lb.local_addr(), "/slow").await;
    assert_eq!((status, body.as_str()), (StatusCode::GATEWAY_TIMEOUT, "504 Gateway Time-out\n"));
    // The request no longer counts as in flight, and the target keeps serving.
    assert_eq!(lb.in_flight(&TargetId::new("a")), Some(0));
    assert_eq!(get(lb.local_addr(), "/").await.0, StatusCode::OK);
    lb.shutdown().await;
}

/// Starts a load balancer on `listener` with backends `a` and `b` healthy,
/// then sends 40 requests over 8 connections plus one on `early`, a
/// connection made before the load balancer started. Returns the hits of
/// `a` and `b`.
async fn serve_on_handed_over_listener(
    listener: std::net::TcpListener,
    worker_threads: usize,
) -> (usize, usize) {
    let addr = listener.local_addr().unwrap();
    // The port is reserved: a client can connect before anything serves it.
    let mut early = connect(addr).await;
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let config = LoadBalancerConfig {
        health_check: fast_checks(),
        deregistration_delay: Duration::from_secs(1),
        worker_threads,
        ..LoadBalancerConfig::default()
    };
    let lb =
        LoadBalancer::start_on(listener, config, Arc::new(ScriptedProber::new())).await.unwrap();
    assert_eq!(lb.local_addr(), addr);
    lb.register_targets(&[Target::new("a", a.addr), Target::new("b", b.addr)]).unwrap();
    wait_for(&lb, "a", TargetState::Healthy).await;
    wait_for(&lb, "b", TargetState::Healthy).await;
    assert_eq!(send(&mut early, "/").await.0, StatusCode::OK);
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(connect(addr).await);
    }
    for _ in 0..5 {
        for client in &mut clients {
            assert_eq!(send(client, "/").await.0, StatusCode::OK);
        }
    }
    lb.shutdown().await;
    (a.hits(), b.hits())
}

#[tokio::test]
async fn start_on_serves_a_listener_bound_earlier() {
    let reserved = LoadBalancer::reserve_listener(LOOPBACK_ANY_PORT).unwrap();
    assert_eq!(serve_on_handed_over_listener(reserved, 0).await, (21, 20));
    let plain = std::net::TcpListener::bind(LOOPBACK_ANY_PORT).unwrap();
    assert_eq!(serve_on_handed_over_listener(plain, 0).await, (21, 20));
}

#[tokio::test]
async fn start_on_with_worker_threads_joins_or_shares_the_listener() {
    // With SO_REUSEPORT (reserve_listener) the other workers join the port;
    // without it (std's bind) they share the one socket. Both serve every
    // request, round robin across the workers.
    let reserved = LoadBalancer::reserve_listener(LOOPBACK_ANY_PORT).unwrap();
    assert_eq!(serve_on_handed_over_listener(reserved, 2).await, (21, 20));
    let plain = std::net::TcpListener::bind(LOOPBACK_ANY_PORT).unwrap();
    assert_eq!(serve_on_handed_over_listener(plain, 2).await, (21, 20));
}

#[tokio::test]
async fn reserving_a_listener_refuses_other_addresses() {
    let outside = SocketAddr::from(([192, 0, 2, 1], 80));
    assert!(matches!(
        LoadBalancer::reserve_listener(outside),
        Err(autopatch_loadbalancer::LoadBalancerError::NotLoopback { .. })
    ));
}

#[tokio::test]
async fn requests_waiting_in_the_backlog_go_to_the_targets_it_starts_with() {
    // What a restarted daemon does: the port is reserved (clients connect
    // and send), then the load balancer starts with the targets it adopts.
    for worker_threads in [0, 2] {
        let listener = LoadBalancer::reserve_listener(LOOPBACK_ANY_PORT).unwrap();
        let addr = listener.local_addr().unwrap();
        let adopted = TestBackend::start("adopted").await;
        let registered = TestBackend::start("registered").await;
        let mut waiting = Vec::new();
        for _ in 0..4 {
            let mut client = connect(addr).await;
            waiting.push(tokio::spawn(async move { send(&mut client, "/").await }));
        }
        let config = LoadBalancerConfig {
            health_check: fast_checks(),
            worker_threads,
            ..LoadBalancerConfig::default()
        };
        let initial = InitialTargets {
            registered: vec![Target::new("registered", registered.addr)],
            adopted: vec![Target::new("adopted", adopted.addr)],
        };
        let lb = LoadBalancer::start_on_with_targets(
            listener,
            config,
            Arc::new(ScriptedProber::new()),
            initial,
        )
        .await
        .unwrap();
        for request in waiting {
            let (status, body) = request.await.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(body.starts_with("adopted "), "only the adopted target is in service: {body}");
        }
        let states: Vec<(String, TargetState)> = lb
            .describe_target_health()
            .into_iter()
            .map(|target| (target.id.as_str().to_owned(), target.state))
            .collect();
        assert!(states.contains(&("adopted".to_owned(), TargetState::Healthy)), "{states:?}");
        assert!(
            states.contains(&("registered".to_owned(), TargetState::Initial))
                || states.contains(&("registered".to_owned(), TargetState::Healthy)),
            "{states:?}"
        );
        lb.shutdown().await;
    }
}

#[tokio::test]
async fn initial_targets_off_loopback_are_refused_before_anything_starts() {
    let initial = InitialTargets {
        adopted: vec![Target::new("outside", SocketAddr::from(([192, 0, 2, 1], 80)))],
        ..InitialTargets::default()
    };
    let started = LoadBalancer::start_with_targets(
        LOOPBACK_ANY_PORT,
        LoadBalancerConfig::default(),
        Arc::new(ScriptedProber::new()),
        initial,
    )
    .await;
    assert!(matches!(
        started,
        Err(autopatch_loadbalancer::LoadBalancerError::NotLoopback { addr })
            if addr == SocketAddr::from(([192, 0, 2, 1], 80))
    ));
}
