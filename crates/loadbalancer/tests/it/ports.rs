//! Load balancers never share a port: every listener's sockets have
//! `SO_REUSEPORT` (one per worker), which would let a second load balancer
//! join the first one's port and split its clients between two fleets. The
//! port is claimed with a plain bind first, so a second load balancer, a
//! second reservation, or claims racing for one port from many threads get
//! `PortTaken` (all but one), while each load balancer still has one
//! listening socket per worker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use autopatch_loadbalancer::{
    LoadBalancer, LoadBalancerConfig, LoadBalancerError, ScriptedProber, Target, TargetState,
};
use hyper::StatusCode;

use crate::support::{TestBackend, fast_checks, get, wait_for};

const LOOPBACK_ANY_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

fn config(worker_threads: usize) -> LoadBalancerConfig {
    LoadBalancerConfig {
        health_check: fast_checks(),
        deregistration_delay: Duration::from_secs(1),
        worker_threads,
        ..LoadBalancerConfig::default()
    }
}

async fn start(addr: SocketAddr, worker_threads: usize) -> Result<LoadBalancer, LoadBalancerError> {
    LoadBalancer::start_with(addr, config(worker_threads), Arc::new(ScriptedProber::new())).await
}

/// How many sockets listen on 127.0.0.1:`port` (the kernel's own table).
fn listening_sockets(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, then rem_address, then st (0A: LISTEN).
            fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A")
        })
        .count()
}

fn assert_taken(result: Result<impl std::fmt::Debug, LoadBalancerError>, addr: SocketAddr) {
    match result {
        Err(LoadBalancerError::PortTaken { addr: taken, source }) => {
            assert_eq!(taken, addr);
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse, "{source}");
        }
        other => panic!("expected port {} to be refused as taken, got {other:?}", addr.port()),
    }
}

#[tokio::test]
async fn a_second_load_balancer_on_a_port_one_serves_is_refused_and_the_first_keeps_every_client() {
    let a = TestBackend::start("a").await;
    let first = start(LOOPBACK_ANY_PORT, 2).await.unwrap();
    let addr = first.local_addr();
    first.register_targets(&[Target::new("a", a.addr)]).unwrap();
    wait_for(&first, "a", TargetState::Healthy).await;

    for worker_threads in [2, 0] {
        assert_taken(start(addr, worker_threads).await, addr);
    }
    assert_taken(LoadBalancer::reserve_listener(addr), addr);
    wait_listening(addr.port(), 2).await;

    // Every client reaches the first load balancer's target.
    for _ in 0..20 {
        assert_eq!(get(addr, "/").await.0, StatusCode::OK);
    }
    assert_eq!(a.hits(), 20);
    first.shutdown().await;
}

#[tokio::test]
async fn a_reserved_port_or_one_a_plain_socket_holds_is_refused() {
    let reserved = LoadBalancer::reserve_listener(LOOPBACK_ANY_PORT).unwrap();
    let addr = reserved.local_addr().unwrap();
    assert_taken(LoadBalancer::reserve_listener(addr), addr);
    assert_taken(start(addr, 2).await, addr);

    let plain = std::net::TcpListener::bind(LOOPBACK_ANY_PORT).unwrap();
    let addr = plain.local_addr().unwrap();
    assert_taken(LoadBalancer::reserve_listener(addr), addr);
    assert_taken(start(addr, 2).await, addr);
}

/// Waits (bounded) until `count` sockets listen on 127.0.0.1:`port`: each
/// worker thread starts listening on its socket once it runs.
async fn wait_listening(port: u16, count: usize) {
    for _ in 0..500 {
        if listening_sockets(port) == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} sockets listen on port {port}, not {count}", listening_sockets(port));
}

#[tokio::test]
async fn each_worker_listens_on_a_socket_of_its_own() {
    let lb = start(LOOPBACK_ANY_PORT, 3).await.unwrap();
    wait_listening(lb.local_addr().port(), 3).await;
    lb.shutdown().await;

    let reserved = LoadBalancer::reserve_listener(LOOPBACK_ANY_PORT).unwrap();
    let addr = reserved.local_addr().unwrap();
    assert_eq!(listening_sockets(addr.port()), 1);
    let lb =
        LoadBalancer::start_on(reserved, config(3), Arc::new(ScriptedProber::new())).await.unwrap();
    wait_listening(addr.port(), 3).await;
    lb.shutdown().await;
}

#[tokio::test]
async fn the_port_of_a_load_balancer_that_stopped_can_be_claimed_again() {
    // Its connections closed on its side (TIME_WAIT) do not hold the port.
    let a = TestBackend::start("a").await;
    let lb = start(LOOPBACK_ANY_PORT, 2).await.unwrap();
    let addr = lb.local_addr();
    lb.register_targets(&[Target::new("a", a.addr)]).unwrap();
    wait_for(&lb, "a", TargetState::Healthy).await;
    assert_eq!(get(addr, "/").await.0, StatusCode::OK);
    lb.shutdown().await;

    let again = start(addr, 2).await.expect("the port is free again");
    assert_eq!(again.local_addr(), addr);
    again.shutdown().await;
}

#[test]
fn of_claims_racing_for_one_port_exactly_one_wins() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for _ in 0..20 {
        // A port that was free a moment ago.
        let addr = std::net::TcpListener::bind(LOOPBACK_ANY_PORT).unwrap().local_addr().unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let claims: Vec<_> = (0..8)
            .map(|_| {
                let barrier = barrier.clone();
                let handle = runtime.handle().clone();
                std::thread::spawn(move || {
                    let _runtime = handle.enter();
                    barrier.wait();
                    LoadBalancer::reserve_listener(addr)
                })
            })
            .collect();
        let results: Vec<_> = claims.into_iter().map(|claim| claim.join().unwrap()).collect();
        let won = results.iter().filter(|result| result.is_ok()).count();
        assert_eq!(won, 1, "{results:?}");
        assert_eq!(listening_sockets(addr.port()), 1);
        for result in results.into_iter().filter(Result::is_err) {
            assert_taken(result, addr);
        }
    }
}
