//! The autopatch load balancer as a stand-alone process for benchmarks.
//! Usage: `bench_proxy <listen address> <target address>...`; it waits until
//! every target is healthy, says `ready` on stderr, and runs until Ctrl-C.
//! The data plane gets one worker thread per core; this main runtime only
//! runs the health checks.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use autopatch_loadbalancer::{
    HealthCheckSettings, HttpProber, LoadBalancer, LoadBalancerConfig, Target, TargetState,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr =
        args.next().ok_or("usage: bench_proxy <listen> <target>...")?.parse()?;
    let targets = args
        .enumerate()
        .map(|(index, addr)| Ok(Target::new(format!("target-{index}"), addr.parse()?)))
        .collect::<Result<Vec<_>, std::net::AddrParseError>>()?;
    let config = LoadBalancerConfig {
        health_check: HealthCheckSettings {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            ..HealthCheckSettings::default()
        },
        deregistration_delay: Duration::from_secs(5),
        // One data-plane worker per core, like nginx's `worker_processes auto`.
        worker_threads: std::thread::available_parallelism().map_or(1, usize::from),
        ..LoadBalancerConfig::default()
    };
    let lb = LoadBalancer::start_with(listen, config, Arc::new(HttpProber)).await?;
    lb.register_targets(&targets)?;
    for target in &targets {
        lb.wait_for_state(&target.id, TargetState::Healthy).await;
    }
    writeln!(
        std::io::stderr(),
        "bench_proxy: ready on {} with {} healthy targets",
        lb.local_addr(),
        targets.len()
    )?;
    tokio::signal::ctrl_c().await?;
    lb.shutdown().await;
    Ok(())
}
