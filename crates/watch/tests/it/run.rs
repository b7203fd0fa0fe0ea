//! The runner against scripted servers: counts, failure kinds, images,
//! gaps, keep-alive, and the bounds that end a run. No timing is asserted
//! beyond what the script forces (a pause is a lower bound of the gap).

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use autopatch_watch::{FailureKind, Outcome, Summary, WatchConfig, run, svg};

use crate::support::{Action, ScriptedServer, refused_url};

fn config(url: String) -> WatchConfig {
    WatchConfig { rate: None, duration: None, ..WatchConfig::new(url) }
}

async fn watch(config: &WatchConfig) -> Outcome {
    let mut seen = 0;
    let outcome = run(config, |_| seen += 1, pending::<()>()).await.expect("a valid configuration");
    assert_eq!(seen, outcome.responses.len(), "the sink saw every response");
    outcome
}

fn kinds(summary: &Summary) -> Vec<(&'static str, u64)> {
    summary.failures_by_kind.iter().filter(|(_, n)| **n > 0).map(|(k, n)| (k.name(), *n)).collect()
}

fn images(summary: &Summary) -> Vec<(String, u64)> {
    summary.images.iter().map(|image| (image.image.clone(), image.requests)).collect()
}

#[tokio::test]
async fn images_switch_and_every_failure_is_counted_over_kept_alive_connections() {
    // Image A for the first 30 requests, then B; requests 10, 11 and 12 get
    // a 503 without an image.
    let server = ScriptedServer::start(|n| match n {
        10..=12 => Action::status(503),
        0..30 => Action::image("webapp/1.0.0/1"),
        _ => Action::image("webapp/1.0.0/2"),
    })
    .await;
    let config = WatchConfig { concurrency: 4, requests: Some(60), ..config(server.url()) };
    let outcome = watch(&config).await;
    let summary = &outcome.summary;

    assert_eq!((summary.requests, summary.successes, summary.failures), (60, 57, 3));
    assert_eq!(kinds(summary), [("http_5xx", 3)]);
    assert_eq!(
        images(summary),
        [("webapp/1.0.0/1".to_owned(), 27), ("webapp/1.0.0/2".to_owned(), 30)]
    );
    let statuses: Vec<u16> = outcome
        .responses
        .iter()
        .filter(|r| r.error == Some(FailureKind::Http5xx))
        .filter_map(|r| r.status)
        .collect();
    assert_eq!(statuses, [503, 503, 503]);
    assert_eq!(server.requests(), 60, "exactly the requested number was sent");
    // Keep-alive: one connection per worker (a 503 does not close it).
    assert!(server.connections() <= 4, "{} connections for 4 workers", server.connections());
    assert_eq!(summary.connections, server.connections());
    assert_eq!(summary.abandoned, 0);

    // The timeline holds every request, and its images add up.
    let per_second: u64 = summary.timeline.iter().map(|s| s.requests).sum();
    assert_eq!(per_second, 60);
    let by_image: u64 = summary.timeline.iter().flat_map(|s| s.images.values()).sum();
    assert_eq!(by_image, 57);

    // The chart of the run: XML, one series per image and one for failures.
    let chart = svg(&outcome.responses);
    let document = roxmltree::Document::parse(&chart).expect("the chart parses as XML");
    let series: Vec<&str> = document
        .descendants()
        .filter(|node| node.attribute("class") == Some("series"))
        .filter_map(|node| node.attribute("data-series"))
        .collect();
    assert_eq!(series, ["image:webapp/1.0.0/1", "image:webapp/1.0.0/2", "failures"]);
}

#[tokio::test]
async fn a_pause_is_the_longest_gap() {
    let pause = Duration::from_millis(600);
    let server = ScriptedServer::start(move |n| {
        let answer = Action::image("A");
        if n == 5 { answer.after(pause) } else { answer }
    })
    .await;
    let outcome = watch(&WatchConfig { requests: Some(10), ..config(server.url()) }).await;
    let summary = &outcome.summary;
    assert_eq!((summary.requests, summary.failures), (10, 0));
    assert!(
        summary.longest_gap.ms >= pause.as_millis() as f64,
        "the longest gap {:?} is shorter than the pause",
        summary.longest_gap
    );
}

#[tokio::test]
async fn timeouts_and_closed_connections_are_failures_of_their_kind() {
    let server = ScriptedServer::start(|n| match n {
        2 => Action::Close,
        4 => Action::image("A").after(Duration::from_secs(30)),
        _ => Action::image("A"),
    })
    .await;
    let config =
        WatchConfig { requests: Some(7), timeout: Duration::from_secs(2), ..config(server.url()) };
    let outcome = watch(&config).await;
    let summary = &outcome.summary;
    assert_eq!((summary.requests, summary.successes), (7, 5));
    assert_eq!(kinds(summary), [("connect", 1), ("timeout", 1)]);
    let errors: Vec<Option<FailureKind>> = outcome.responses.iter().map(|r| r.error).collect();
    assert_eq!(
        errors,
        [None, None, Some(FailureKind::Connect), None, Some(FailureKind::Timeout), None, None]
    );
    // A failed connection is replaced: the first, then one after the close,
    // then one after the timeout.
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_failure() {
    let url = refused_url().await;
    let outcome = watch(&WatchConfig { requests: Some(3), ..config(url) }).await;
    assert_eq!(kinds(&outcome.summary), [("connect", 3)]);
    assert_eq!(outcome.summary.connections, 0);
    assert!(outcome.responses.iter().all(|r| r.status.is_none() && r.image.is_none()));
    // No success at all: the whole run is one gap.
    assert_eq!(outcome.summary.longest_gap.from_ms, 0.0);
    assert_eq!(outcome.summary.longest_gap.to_ms, outcome.summary.elapsed_ms);
}

#[tokio::test]
async fn a_worker_waits_after_refused_connections_instead_of_spinning() {
    let url = refused_url().await;
    let outcome = watch(&WatchConfig { requests: Some(9), ..config(url) }).await;
    assert_eq!(kinds(&outcome.summary), [("connect", 9)], "every attempt is counted");
    // Each request starts at least the backoff after the previous one
    // started: 1 ms, doubling to 50 ms.
    let starts: Vec<Duration> = outcome.responses.iter().map(|r| r.t).collect();
    let waits = [1, 2, 4, 8, 16, 32, 50, 50].map(Duration::from_millis);
    for (index, wait) in waits.iter().enumerate() {
        let between = starts[index + 1] - starts[index];
        assert!(between >= *wait, "request {} started {between:?} after the one before", index + 1);
    }
}

#[tokio::test]
async fn without_the_header_the_image_comes_from_the_details_page() {
    let page =
        "<br><b>Amazon Image Id:</b> webapp/1.0.0/3<hr><b>Installed Packages:</b><br>apache2";
    let server = ScriptedServer::start(move |n| match n % 3 {
        0 => Action::body(page),
        1 => Action::body("<html>no id here<html>"),
        _ => Action::Answer {
            status: 200,
            headers: vec![("X-Served-By", "b/2.0.0/1".to_owned())],
            body: page.to_owned(),
            delay: Duration::ZERO,
        },
    })
    .await;
    let config = WatchConfig {
        requests: Some(6),
        image_header: "x-served-by".to_owned(),
        ..config(server.url())
    };
    let outcome = watch(&config).await;
    let images: Vec<Option<&str>> = outcome.responses.iter().map(|r| r.image.as_deref()).collect();
    assert_eq!(
        images,
        [
            Some("webapp/1.0.0/3"),
            None,
            Some("b/2.0.0/1"),
            Some("webapp/1.0.0/3"),
            None,
            Some("b/2.0.0/1")
        ]
    );
    assert_eq!(images_of(&outcome.summary), [("webapp/1.0.0/3", 2), ("-", 2), ("b/2.0.0/1", 2)]);
}

fn images_of(summary: &Summary) -> Vec<(&str, u64)> {
    summary.images.iter().map(|image| (image.image.as_str(), image.requests)).collect()
}

#[tokio::test]
async fn the_duration_ends_the_run() {
    let server = ScriptedServer::start(|_| Action::image("A")).await;
    let duration = Duration::from_millis(300);
    let config = WatchConfig { concurrency: 2, duration: Some(duration), ..config(server.url()) };
    let outcome = watch(&config).await;
    assert!(outcome.summary.requests > 0);
    assert_eq!(outcome.summary.failures, 0);
    // No request starts at or after the deadline.
    assert!(outcome.responses.iter().all(|r| r.t < duration), "a request started late");
    assert!(server.connections() <= 2);
}

#[tokio::test]
async fn the_rate_paces_all_workers_together() {
    let server = ScriptedServer::start(|_| Action::image("A")).await;
    // Slots at 0, 50, ..., 450 ms: at most 10 requests before the deadline,
    // however many workers.
    let config = WatchConfig {
        concurrency: 4,
        rate: Some(20.0),
        duration: Some(Duration::from_millis(500)),
        ..config(server.url())
    };
    let outcome = watch(&config).await;
    let requests = outcome.summary.requests;
    assert!((1..=10).contains(&requests), "{requests} requests at 20/s in 0.5 s");
    // Each request starts at or after its slot.
    let mut starts: Vec<Duration> = outcome.responses.iter().map(|r| r.t).collect();
    starts.sort();
    for (index, start) in starts.iter().enumerate() {
        assert!(*start >= Duration::from_millis(50) * index as u32, "request {index} at {start:?}");
    }
}

#[tokio::test]
async fn the_stop_future_ends_the_run_and_abandons_requests_in_flight() {
    // The third request hangs; the run is stopped once the server has it.
    let third_arrived = Arc::new(Notify::new());
    let server = ScriptedServer::start({
        let third_arrived = third_arrived.clone();
        move |n| {
            if n < 2 {
                return Action::image("A");
            }
            third_arrived.notify_one();
            Action::image("A").after(Duration::from_secs(60))
        }
    })
    .await;
    let config = WatchConfig { concurrency: 1, ..config(server.url()) };
    let outcome =
        run(&config, |_| {}, third_arrived.notified()).await.expect("a valid configuration");
    let summary = &outcome.summary;
    assert_eq!((summary.requests, summary.successes, summary.abandoned), (2, 2, 1));
}

#[tokio::test]
async fn an_invalid_configuration_is_refused_before_any_request() {
    let error = run(&WatchConfig::new("https://127.0.0.1:1/"), |_| {}, pending::<()>())
        .await
        .expect_err("https is refused");
    assert!(error.to_string().contains("only http:// is supported"), "{error}");
}
