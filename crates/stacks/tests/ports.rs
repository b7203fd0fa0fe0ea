//! Load balancers of stacks never share a listener port (each listener has
//! one `SO_REUSEPORT` socket per data-plane thread, which another load
//! balancer's sockets could otherwise join):
//! - with `--listener-ports template`, a second stack whose listener names
//!   the port of the first fails (`CREATE_FAILED` naming the port, then
//!   rolls back) and the first keeps serving on it alone;
//! - a port another load balancer (another state directory's daemon, say)
//!   took while the daemon was down is reported by recovery and retried,
//!   not joined, and is served again once it is free.
//!
//! No instances: the fake engine is never asked anything.

use std::sync::Arc;
use std::time::Duration;

use autopatch_engine::FakeEngine;
use autopatch_loadbalancer::LoadBalancer;
use autopatch_stacks::api::*;
use autopatch_stacks::{ListenerPorts, ServiceConfig, StackService, reserve_listeners};
use autopatch_store::Store;

/// A load balancer, its target group and a listener on `Port`.
const BALANCER: &str = r#"
Parameters:
  Port:
    Type: Number
Resources:
  Balancer:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
  Targets:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Port: 80
      Protocol: HTTP
  Listener:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Balancer
      Port: !Ref Port
      Protocol: HTTP
      DefaultActions:
        - Type: forward
          TargetGroupArn: !Ref Targets
"#;

fn config(dir: &std::path::Path, listener_ports: ListenerPorts) -> ServiceConfig {
    ServiceConfig {
        state_dir: dir.to_owned(),
        region: "local".into(),
        account_id: "000000000000".into(),
        listener_ports,
        // As the daemon runs them: several data-plane threads.
        load_balancer_threads: 2,
        fleet_interval: Duration::from_millis(100),
    }
}

struct Sim {
    dir: tempfile::TempDir,
    engine: Arc<FakeEngine>,
    store: Arc<Store>,
    service: Arc<StackService<FakeEngine>>,
}

impl Sim {
    async fn new(listener_ports: ListenerPorts) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(FakeEngine::new());
        let store = Arc::new(Store::open(&dir.path().join("autopatch.db")).unwrap());
        let service =
            StackService::open(config(dir.path(), listener_ports), engine.clone(), store.clone())
                .await
                .unwrap();
        Sim { dir, engine, store, service }
    }

    async fn create(&self, name: &str, port: u16) -> Stack {
        let input = CreateStackInput {
            stack_name: name.into(),
            template_body: Some(BALANCER.into()),
            parameters: vec![Parameter {
                parameter_key: "Port".into(),
                parameter_value: Some(port.to_string()),
                use_previous_value: None,
            }],
            ..Default::default()
        };
        let created = self.service.create_stack(input).await.unwrap();
        self.service.wait_idle(&created.stack_id).await;
        self.describe(&created.stack_id)
    }

    fn describe(&self, name: &str) -> Stack {
        let input = DescribeStacksInput { stack_name: Some(name.into()) };
        self.service.describe_stacks(input).unwrap().stacks.remove(0)
    }

    /// The address the stack's listener serves on.
    fn listener_address(&self, name: &str) -> String {
        let input = DescribeStackResourcesInput { stack_name: name.into() };
        let resources = self.service.describe_stack_resources(input).unwrap().stack_resources;
        let listener =
            resources.iter().find(|resource| resource.logical_resource_id == "Listener").unwrap();
        assert_eq!(listener.resource_status, "CREATE_COMPLETE", "{listener:?}");
        let row = self
            .store
            .stack_resources(&listener.stack_id)
            .unwrap()
            .into_iter()
            .find(|row| row.logical_id == "Listener")
            .unwrap();
        let attributes: serde_json::Value = serde_json::from_str(&row.attributes).unwrap();
        attributes["autopatch:Local"]["Address"].as_str().unwrap().to_owned()
    }

    async fn delete(&self, name: &str) {
        let id = self.describe(name).stack_id;
        let input = DeleteStackInput { stack_name: name.into(), ..Default::default() };
        self.service.delete_stack(input).await.unwrap();
        self.service.wait_idle(&id).await;
        assert_eq!(self.describe(&id).stack_status, "DELETE_COMPLETE");
    }
}

/// Whether something answers HTTP on `address` (any status: these load
/// balancers have no targets and answer 503).
async fn answers(address: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else { return false };
    let request = format!("GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).await.is_ok() && head.starts_with(b"HTTP/1.1 ")
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
            fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A")
        })
        .count()
}

/// Waits (bounded) until `count` sockets listen on the port: each
/// data-plane thread starts listening on its socket once it runs.
async fn wait_listening(port: u16, count: usize) {
    for _ in 0..500 {
        if listening_sockets(port) == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} sockets listen on port {port}, not {count}", listening_sockets(port));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_stack_whose_listener_names_a_port_in_use_fails_and_the_first_keeps_it() {
    let sim = Sim::new(ListenerPorts::Template).await;
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let first = sim.create("first", port).await;
    assert_eq!(first.stack_status, "CREATE_COMPLETE", "{first:?}");
    assert_eq!(sim.listener_address("first"), address);
    wait_listening(port, 2).await;

    let second = sim.create("second", port).await;
    assert_eq!(second.stack_status, "ROLLBACK_COMPLETE", "{second:?}");
    let input = DescribeStackEventsInput { stack_name: second.stack_id.clone() };
    let events = sim.service.describe_stack_events(input).unwrap().stack_events;
    let failed = events
        .iter()
        .find(|event| {
            event.logical_resource_id == "Listener" && event.resource_status == "CREATE_FAILED"
        })
        .expect("the listener failed");
    assert_eq!(
        failed.resource_status_reason.as_deref(),
        Some(
            format!(
                "start the load balancer on {address}: bind listener on {address}: port {port} is taken by another socket (another load balancer here, or another process): Address already in use (os error 98)"
            )
            .as_str()
        )
    );

    // The first stack's load balancer alone listens there, and still serves.
    wait_listening(port, 2).await;
    assert!(answers(&address).await);
    sim.delete("first").await;
    assert_eq!(listening_sockets(port), 0);
    sim.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_another_load_balancer_took_while_the_daemon_was_down_is_reported_not_shared() {
    let mut sim = Sim::new(ListenerPorts::Free).await;
    let stack = sim.create("app", 80).await;
    assert_eq!(stack.stack_status, "CREATE_COMPLETE", "{stack:?}");
    let address = sim.listener_address("app");
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    assert!(answers(&address).await);

    // The daemon stops; another load balancer (another state directory's
    // daemon) takes the port, with SO_REUSEPORT as every one has.
    sim.service.shutdown().await;
    let thief = LoadBalancer::reserve_listener(address.parse().unwrap()).unwrap();
    let reserved = reserve_listeners(&sim.store).unwrap();
    assert!(reserved.is_empty(), "the taken port is not reserved: {reserved:?}");
    sim.service = StackService::open_with_listeners(
        config(sim.dir.path(), ListenerPorts::Free),
        sim.engine.clone(),
        sim.store.clone(),
        reserved,
    )
    .await
    .unwrap();
    assert_eq!(
        sim.service.recovery_notes(),
        [format!(
            "stack app resource Listener (AWS::ElasticLoadBalancingV2::Listener): start the load balancer on {address}: bind listener on {address}: port {port} is taken by another socket (another load balancer here, or another process): Address already in use (os error 98)"
        )]
    );
    assert_eq!(listening_sockets(port), 1, "only the other load balancer listens");

    // Once the port is free the listener is opened again, with no restart.
    drop(thief);
    for _ in 0..300 {
        if sim.service.recovery_notes().is_empty() && answers(&address).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sim.service.recovery_notes().is_empty(), "{:?}", sim.service.recovery_notes());
    assert!(answers(&address).await, "the listener serves on {address} again");
    wait_listening(port, 2).await;
    sim.delete("app").await;
    sim.service.shutdown().await;
}
