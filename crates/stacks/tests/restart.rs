//! A restart of the control plane on real Podman with the shipped lab
//! templates (`StackService::shutdown`, then `StackService::open` on the
//! same store, as `autopatch down` and `up` do; instances keep running):
//! - requests that arrive while the new process recovers, and as soon as the
//!   listener accepts them, are served by the targets the previous process
//!   had seen healthy: never a 503;
//! - a connection made to a load balancer's port after the ports were
//!   reserved again (`reserve_listeners`, what the daemon does before it
//!   connects to the engine) and before recovery is not refused: it waits in
//!   the backlog and is answered 200 by an adopted target once the listener
//!   starts on the reserved socket (`StackService::open_with_listeners`);
//! - an instance launched after the restart (a replacement for one removed
//!   with `podman rm -f`) carries the `autopatch.stack` label like every
//!   other instance of the stack;
//! - a stack whose stored template cannot be loaded keeps its instances
//!   (they are not orphans) and its load balancer keeps serving; recovery
//!   says why (a note, a log record).

mod support;

use std::time::Duration;

use autopatch_engine::Engine;
use autopatch_stacks::api::*;
use autopatch_stacks::{StackService, reserve_listeners};
use autopatch_store::LifecycleState;
use autopatch_watch::{FailureKind, WatchConfig};
use support::{Fixture, WEBAPP, config};

/// The base and app stacks on the webapp image, both targets healthy;
/// returns the app's URL and its stack id.
async fn lab(fixture: &Fixture) -> (String, String) {
    let base = fixture.create("pattern3-base", "pattern3-base.yml", &[]).await;
    assert_eq!(base.stack_status, "CREATE_COMPLETE", "{base:?}");
    let parameters = [("BaselineVpcStack", "pattern3-base"), ("AmazonMachineImage", WEBAPP)];
    let app = fixture.create("pattern3-app", "pattern3-app.yml", &parameters).await;
    assert_eq!(app.stack_status, "CREATE_COMPLETE", "{app:?}");
    let dns = app
        .outputs
        .iter()
        .find(|output| output.output_key == "OutputPattern3ALBDNSName")
        .unwrap()
        .output_value
        .clone();
    let group = group(fixture);
    fixture.wait_healthy(&group.target_group_arns[0], 2).await;
    (format!("http://{dns}/"), app.stack_id)
}

fn group(fixture: &Fixture) -> AutoScalingGroup {
    let mut groups = fixture.service.describe_auto_scaling_groups(Default::default()).unwrap();
    assert_eq!(groups.auto_scaling_groups.len(), 1, "{groups:?}");
    groups.auto_scaling_groups.remove(0)
}

/// Waits (bounded) until the store records every live instance healthy in
/// its target group: what the next process reads to adopt them.
async fn wait_recorded_healthy(fixture: &Fixture, count: usize) {
    for _ in 0..100 {
        let live = fixture.store.live_instances().unwrap();
        let healthy = live
            .iter()
            .filter(|instance| instance.target_health.as_deref() == Some("healthy"))
            .count();
        if live.len() == count && healthy == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the store never recorded {count} healthy instances");
}

/// The daemon stops; a new one opens the same store.
async fn restart(fixture: &mut Fixture, load_balancer_threads: usize) {
    fixture.service.shutdown().await;
    let mut config = config(fixture.dir.path());
    config.load_balancer_threads = load_balancer_threads;
    fixture.service =
        StackService::open(config, fixture.engine.clone(), fixture.store.clone()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_control_plane_serves_the_first_requests_from_the_targets_it_adopts() {
    let mut fixture = Fixture::new().await;
    let (url, _) = lab(&fixture).await;
    wait_recorded_healthy(&fixture, 2).await;

    // The control plane stops. Load starts before the new one opens: its
    // connections are refused until the load balancer's port is reserved
    // again, then wait in its backlog, then are served.
    fixture.service.shutdown().await;
    let watch = WatchConfig {
        concurrency: 2,
        rate: Some(1000.0),
        duration: None,
        timeout: Duration::from_secs(10),
        ..WatchConfig::new(&url)
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let load = tokio::spawn(async move {
        autopatch_watch::run(&watch, |_| {}, async {
            let _ = stopped.await;
        })
        .await
        .expect("the load runs")
    });
    // The daemon runs one data-plane thread per core; so does this one.
    let mut config = config(fixture.dir.path());
    config.load_balancer_threads = 2;
    fixture.service =
        StackService::open(config, fixture.engine.clone(), fixture.store.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop.send(());
    let outcome = load.await.unwrap();

    let answered: Vec<_> =
        outcome.responses.iter().filter(|response| response.status.is_some()).collect();
    assert!(answered.len() > 100, "the load ran: {:?}", outcome.summary);
    let unavailable = answered.iter().filter(|response| response.status == Some(503)).count();
    assert_eq!(
        unavailable, 0,
        "the recovered listener answered 503 before its adopted targets served: {:?}",
        outcome.summary
    );
    assert_eq!(outcome.summary.failures_by_kind[&FailureKind::Http5xx], 0, "{:?}", outcome.summary);
    assert!(answered.iter().all(|response| response.status == Some(200)), "{:?}", outcome.summary);

    fixture.delete("pattern3-app").await;
    fixture.delete("pattern3-base").await;
    assert!(fixture.instance_containers().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_made_before_recovery_waits_on_the_reserved_port_and_is_served() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let mut fixture = Fixture::new().await;
    let (url, _) = lab(&fixture).await;
    wait_recorded_healthy(&fixture, 2).await;
    let address = url.trim_start_matches("http://").trim_end_matches('/').to_owned();

    // No control plane: the port is closed.
    fixture.service.shutdown().await;
    let refused = tokio::net::TcpStream::connect(&address).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "{refused}");

    // The next one reserves the ports first: a client connects and sends its
    // request before recovery has even started.
    let reserved = reserve_listeners(&fixture.store).unwrap();
    assert_eq!(reserved.addresses(), vec![address.parse().unwrap()]);
    let mut client =
        tokio::net::TcpStream::connect(&address).await.expect("a reserved port is not refused");
    let request = format!("GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    client.write_all(request.as_bytes()).await.unwrap();

    // Recovery opens the listener on that socket, adopted targets in: the
    // waiting request is answered by one of them.
    let mut config = config(fixture.dir.path());
    config.load_balancer_threads = 2;
    fixture.service = StackService::open_with_listeners(
        config,
        fixture.engine.clone(),
        fixture.store.clone(),
        reserved,
    )
    .await
    .unwrap();
    let mut response = Vec::new();
    client.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(fixture.service.recovery_notes().is_empty(), "{:?}", fixture.service.recovery_notes());

    fixture.delete("pattern3-app").await;
    fixture.delete("pattern3-base").await;
    assert!(fixture.instance_containers().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_launched_after_a_restart_carries_the_stack_label() {
    let mut fixture = Fixture::new().await;
    let (_, stack_id) = lab(&fixture).await;
    restart(&mut fixture, 0).await;

    // `podman rm -f` of one instance: the group replaces it.
    let before = group(&fixture).instances;
    let removed = before[0].instance_id.clone();
    let label = [("autopatch.instance".to_owned(), removed.clone())];
    let container = fixture.engine.container_list(&label).await.unwrap().remove(0);
    fixture.engine.container_remove(&container.id).await.unwrap();
    let mut replacement = None;
    for _ in 0..120 {
        let instances = group(&fixture).instances;
        replacement = instances
            .iter()
            .find(|instance| {
                instance.lifecycle_state == "InService"
                    && before.iter().all(|old| old.instance_id != instance.instance_id)
            })
            .map(|instance| instance.instance_id.clone());
        if replacement.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let replacement = replacement.expect("a replacement in service within 30 s");

    let label = [("autopatch.instance".to_owned(), replacement.clone())];
    let container = fixture.engine.container_list(&label).await.unwrap().remove(0);
    assert_eq!(
        container.labels.get("autopatch.stack"),
        Some(&stack_id),
        "the replacement's labels: {:?}",
        container.labels
    );
    let row = fixture.store.instance(&replacement).unwrap().unwrap();
    assert_eq!(row.stack_id.as_deref(), Some(stack_id.as_str()));
    assert_eq!(row.lifecycle, LifecycleState::InService);

    fixture.delete("pattern3-app").await;
    fixture.delete("pattern3-base").await;
    assert!(fixture.instance_containers().await.is_empty());
}

/// The stack service's `log` records (`msg stack=...`), as the daemon's
/// log would have them.
static RECORDS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let stack = record.key_values().get(log::kv::Key::from("stack"));
        let stack = stack.map(|value| value.to_string()).unwrap_or_default();
        RECORDS.lock().unwrap().push(format!("{} stack={stack}", record.args()));
    }

    fn flush(&self) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_whose_template_cannot_be_loaded_keeps_its_instances_and_keeps_serving() {
    if log::set_logger(&Capture).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    let mut fixture = Fixture::new().await;
    let (url, stack_id) = lab(&fixture).await;
    wait_recorded_healthy(&fixture, 2).await;
    let instances = fixture.instance_containers().await;
    assert_eq!(instances.len(), 2);

    // The stored template no longer parses (a store edited by hand, a
    // template an older autopatch accepted).
    let stack = fixture.store.stack(&stack_id).unwrap().unwrap();
    let now = autopatch_model::Timestamp(stack.updated_at.0 + 1);
    let store = fixture.store.clone();
    let write = |body: &str, status| {
        store
            .begin_stack_update(
                &stack_id,
                body,
                &stack.template_source,
                &stack.parameters,
                status,
                now,
            )
            .unwrap();
        store.end_stack_update(&stack_id, false, now).unwrap();
    };
    write("Resources: [", stack.status);

    restart(&mut fixture, 2).await;
    let mut left = fixture.instance_containers().await;
    left.sort();
    let mut kept = instances.clone();
    kept.sort();
    assert_eq!(left, kept, "the stack's instances are not orphans");
    let notes = fixture.service.recovery_notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].starts_with("stack pattern3-app: its stored template cannot be loaded (")
            && notes[0].ends_with("): its resources run as recorded, but it cannot be updated or deleted until it loads"),
        "{notes:?}"
    );
    let logged = RECORDS.lock().unwrap().clone();
    assert!(
        logged.iter().any(|record| record
            == "stack template cannot be loaded: its resources are recovered as recorded and keep running, but no operation can run on it stack=pattern3-app"),
        "{logged:?}"
    );
    // Its load balancer serves from the adopted instances.
    for _ in 0..4 {
        let page = support::curl(&url);
        assert!(page.contains("Welcome"), "{page}");
    }

    // With its template back, the stack can be deleted as usual.
    write(&stack.template_body, stack.status);
    fixture.delete("pattern3-app").await;
    fixture.delete("pattern3-base").await;
    assert!(fixture.instance_containers().await.is_empty());
}
