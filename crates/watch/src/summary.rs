//! The summary of a run, computed from its responses alone: counts, failures
//! by kind, the longest gap without a success, latency percentiles, and which
//! image answered when. Pure: [`summarize`] is a function of the responses
//! and the run's length.
//!
//! Definitions (docs/watch.md repeats them for users):
//! - A response's *completion* is its start plus its latency.
//! - The *longest gap* is the largest interval between consecutive successful
//!   completions, counting the start of the run and its end as the outer
//!   edges: a run with no success has one gap, the whole run. Of equal gaps,
//!   the earliest is reported.
//! - Percentiles are nearest-rank over every response, failures included:
//!   p99 of n latencies is the ⌈0.99·n⌉-th smallest.
//! - Images count successful responses only; failures are counted by kind.
//!   So `sum(images) + failures = requests`.
//! - The timeline has one bucket per second of completion, from 0 to the
//!   end of the run, empty seconds included.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::response::{FailureKind, Response, round_millis};

/// The image name used for responses that did not say which image served them.
pub const UNKNOWN_IMAGE: &str = "-";

/// What a run proved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Responses (and failures) recorded.
    pub requests: u64,
    /// Responses with a 2xx or 3xx status.
    pub successes: u64,
    /// Requests that failed, whatever the kind.
    pub failures: u64,
    /// Failures by kind; every kind is present.
    pub failures_by_kind: BTreeMap<FailureKind, u64>,
    /// Requests still waiting for their answer when the run was stopped
    /// early (Ctrl-C); not counted in `requests`. Always 0 from [`summarize`].
    pub abandoned: u64,
    /// Connections opened (a keep-alive run opens about one per worker).
    /// Always 0 from [`summarize`]; [`crate::run`] sets it.
    pub connections: u64,
    /// The run's length in milliseconds.
    pub elapsed_ms: f64,
    /// `requests` per second of the run (to three decimals).
    pub rps: f64,
    /// The longest interval without a successful response.
    pub longest_gap: Gap,
    /// Latency over every response, failures included.
    pub latency_ms: Latency,
    /// The images that served successful responses, in the order first seen.
    pub images: Vec<ImageCount>,
    /// One bucket per second.
    pub timeline: Vec<Second>,
}

/// An interval without a successful response, in milliseconds since the start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Gap {
    /// Its length.
    pub ms: f64,
    /// The completion of the success before it, or 0 (the start).
    pub from_ms: f64,
    /// The completion of the success after it, or the end of the run.
    pub to_ms: f64,
}

/// Latency percentiles in milliseconds; `None` when there was no response.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// How many successful responses one image served, and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageCount {
    /// The image, or [`UNKNOWN_IMAGE`].
    pub image: String,
    pub requests: u64,
    /// The first and last completion served by it, in milliseconds.
    pub first_ms: f64,
    pub last_ms: f64,
}

/// The responses completed during one second of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Second {
    /// Seconds since the start: this bucket holds completions in
    /// `[second, second + 1)`.
    pub second: u64,
    pub requests: u64,
    pub failures: u64,
    /// Successful responses by image (images with none are left out).
    pub images: BTreeMap<String, u64>,
    /// The p99 latency of the responses completed in this second.
    pub p99_ms: Option<f64>,
}

/// Summarizes a run of length `elapsed` from its responses (in any order).
/// Completions after `elapsed` extend the run to the last of them.
pub fn summarize(responses: &[Response], elapsed: Duration) -> Summary {
    let last_completion = responses.iter().map(Response::completed).max().unwrap_or_default();
    let elapsed = elapsed.max(last_completion);
    let successes = responses.iter().filter(|r| r.is_success()).count() as u64;
    let mut failures_by_kind: BTreeMap<FailureKind, u64> =
        FailureKind::ALL.iter().map(|&kind| (kind, 0)).collect();
    for response in responses {
        if let Some(kind) = response.error {
            *failures_by_kind.entry(kind).or_default() += 1;
        }
    }
    let requests = responses.len() as u64;
    let seconds = elapsed.as_secs_f64();
    Summary {
        requests,
        successes,
        failures: requests - successes,
        failures_by_kind,
        abandoned: 0,
        connections: 0,
        elapsed_ms: millis(elapsed),
        rps: if seconds > 0.0 { round_millis(requests as f64 / seconds) } else { 0.0 },
        longest_gap: longest_gap(responses, elapsed),
        latency_ms: latency(responses.iter().map(|r| r.latency).collect()),
        images: images(responses),
        timeline: timeline(responses, elapsed),
    }
}

/// The largest interval between consecutive successful completions, with
/// the run's start and end as outer edges.
fn longest_gap(responses: &[Response], elapsed: Duration) -> Gap {
    let mut edges: Vec<Duration> =
        responses.iter().filter(|r| r.is_success()).map(Response::completed).collect();
    edges.push(Duration::ZERO);
    edges.push(elapsed);
    edges.sort_unstable();
    // Reversed, so that of equal gaps the earliest is reported.
    let (from, to) = edges
        .windows(2)
        .rev()
        .map(|pair| (pair[0], pair[1]))
        .max_by_key(|(from, to)| *to - *from)
        .expect("at least the two edges");
    Gap { ms: millis(to - from), from_ms: millis(from), to_ms: millis(to) }
}

fn latency(mut latencies: Vec<Duration>) -> Latency {
    latencies.sort_unstable();
    Latency {
        p50: percentile(&latencies, 0.50).map(millis),
        p99: percentile(&latencies, 0.99).map(millis),
        max: latencies.last().copied().map(millis),
    }
}

/// The nearest-rank percentile of sorted values: the ⌈p·n⌉-th smallest.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn images(responses: &[Response]) -> Vec<ImageCount> {
    let mut counts: Vec<ImageCount> = Vec::new();
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut successes: Vec<&Response> = responses.iter().filter(|r| r.is_success()).collect();
    successes.sort_by_key(|r| r.completed());
    for response in successes {
        let image = image_name(response);
        let completed = millis(response.completed());
        match index.get(image) {
            Some(&position) => {
                let count = &mut counts[position];
                count.requests += 1;
                count.last_ms = completed;
            }
            None => {
                index.insert(image, counts.len());
                counts.push(ImageCount {
                    image: image.to_owned(),
                    requests: 1,
                    first_ms: completed,
                    last_ms: completed,
                });
            }
        }
    }
    counts
}

/// The name a response's image is counted under.
pub(crate) fn image_name(response: &Response) -> &str {
    response.image.as_deref().unwrap_or(UNKNOWN_IMAGE)
}

fn timeline(responses: &[Response], elapsed: Duration) -> Vec<Second> {
    // Seconds 0 ..= the last one the run reached (a run of exactly 3 s has
    // buckets 0, 1 and 2).
    let n_seconds = (elapsed.as_secs_f64().ceil() as u64).max(1);
    let mut seconds: Vec<Second> = (0..n_seconds)
        .map(|second| Second {
            second,
            requests: 0,
            failures: 0,
            images: BTreeMap::new(),
            p99_ms: None,
        })
        .collect();
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); seconds.len()];
    for response in responses {
        let index = (response.completed().as_secs() as usize).min(seconds.len() - 1);
        let bucket = &mut seconds[index];
        bucket.requests += 1;
        if response.is_success() {
            *bucket.images.entry(image_name(response).to_owned()).or_default() += 1;
        } else {
            bucket.failures += 1;
        }
        latencies[index].push(response.latency);
    }
    for (bucket, mut latencies) in seconds.iter_mut().zip(latencies) {
        latencies.sort_unstable();
        bucket.p99_ms = percentile(&latencies, 0.99).map(millis);
    }
    seconds
}

fn millis(duration: Duration) -> f64 {
    round_millis(duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn ok(t: u64, latency: u64, image: &str) -> Response {
        Response {
            t: ms(t),
            status: Some(200),
            latency: ms(latency),
            image: Some(image.to_owned()),
            error: None,
        }
    }

    fn failed(t: u64, latency: u64, status: Option<u16>, kind: FailureKind) -> Response {
        Response { t: ms(t), status, latency: ms(latency), image: None, error: Some(kind) }
    }

    #[test]
    fn the_longest_gap_is_between_successes() {
        let responses = [
            ok(0, 100, "A"),                                  // completes at 100
            failed(200, 10, Some(503), FailureKind::Http5xx), // not a success
            ok(1000, 500, "A"),                               // completes at 1500
            ok(1600, 100, "A"),                               // 1700
        ];
        let summary = summarize(&responses, ms(2000));
        assert_eq!(summary.longest_gap, Gap { ms: 1400.0, from_ms: 100.0, to_ms: 1500.0 });
    }

    #[test]
    fn the_longest_gap_counts_the_start_and_the_end() {
        // The first success comes late: the gap is from the start.
        let late_start = [ok(900, 100, "A"), ok(1000, 100, "A")];
        assert_eq!(
            summarize(&late_start, ms(1500)).longest_gap,
            Gap { ms: 1000.0, from_ms: 0.0, to_ms: 1000.0 }
        );
        // The last success is long before the end: the gap runs to the end.
        let early_end = [ok(0, 100, "A"), failed(200, 5000, None, FailureKind::Timeout)];
        assert_eq!(
            summarize(&early_end, ms(3000)).longest_gap,
            // The timeout completed at 5.2 s, which extends the run.
            Gap { ms: 5100.0, from_ms: 100.0, to_ms: 5200.0 }
        );
        // No success at all: the whole run.
        let none = [failed(0, 1, None, FailureKind::Connect)];
        assert_eq!(
            summarize(&none, ms(2000)).longest_gap,
            Gap { ms: 2000.0, from_ms: 0.0, to_ms: 2000.0 }
        );
        assert_eq!(summarize(&[], ms(0)).longest_gap, Gap { ms: 0.0, from_ms: 0.0, to_ms: 0.0 });
    }

    #[test]
    fn percentiles_are_nearest_rank_over_every_response() {
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 0.50), Some(ms(50)));
        assert_eq!(percentile(&sorted, 0.99), Some(ms(99)));
        assert_eq!(percentile(&sorted[..1], 0.99), Some(ms(1)));
        assert_eq!(percentile(&sorted[..3], 0.50), Some(ms(2)));
        assert_eq!(percentile(&[], 0.5), None);

        // Failures count: a slow timeout is the max.
        let responses = [
            ok(0, 3, "A"),
            ok(0, 1, "A"),
            ok(0, 2, "A"),
            failed(0, 5000, None, FailureKind::Timeout),
        ];
        let latency = summarize(&responses, ms(6000)).latency_ms;
        assert_eq!(latency, Latency { p50: Some(2.0), p99: Some(5000.0), max: Some(5000.0) });
        assert_eq!(
            summarize(&[], ms(1000)).latency_ms,
            Latency { p50: None, p99: None, max: None }
        );
    }

    #[test]
    fn failures_are_counted_by_kind() {
        let responses = [
            ok(0, 1, "A"),
            failed(0, 1, None, FailureKind::Connect),
            failed(0, 1, None, FailureKind::Connect),
            failed(0, 1, Some(503), FailureKind::Http5xx),
            failed(0, 1, Some(404), FailureKind::Http4xx),
            failed(0, 1, None, FailureKind::Timeout),
        ];
        let summary = summarize(&responses, ms(1000));
        assert_eq!((summary.requests, summary.successes, summary.failures), (6, 1, 5));
        let by_kind: Vec<(&str, u64)> =
            summary.failures_by_kind.iter().map(|(kind, n)| (kind.name(), *n)).collect();
        assert_eq!(
            by_kind,
            [("connect", 2), ("timeout", 1), ("http_5xx", 1), ("http_4xx", 1), ("other", 0)]
        );
        assert_eq!(summary.rps, 6.0);
    }

    #[test]
    fn images_are_counted_in_order_first_seen_and_per_second() {
        let responses = [
            ok(2100, 100, "B"),                                // 2.2 s
            ok(0, 100, "A"),                                   // 0.1 s
            ok(900, 50, "A"),                                  // 0.95 s
            ok(1000, 100, "A"),                                // 1.1 s
            ok(1500, 100, "B"),                                // 1.6 s
            failed(1500, 10, Some(502), FailureKind::Http5xx), // 1.51 s
            Response { image: None, ..ok(3000, 100, "") },     // 3.1 s, no image
        ];
        let summary = summarize(&responses, ms(3500));
        let images: Vec<(&str, u64, f64, f64)> = summary
            .images
            .iter()
            .map(|i| (i.image.as_str(), i.requests, i.first_ms, i.last_ms))
            .collect();
        assert_eq!(
            images,
            [("A", 3, 100.0, 1100.0), ("B", 2, 1600.0, 2200.0), ("-", 1, 3100.0, 3100.0)]
        );
        let per_second: Vec<String> = summary
            .timeline
            .iter()
            .map(|s| {
                let images: Vec<String> =
                    s.images.iter().map(|(image, n)| format!("{image}={n}")).collect();
                format!(
                    "{}: {} requests, {} failed, {}",
                    s.second,
                    s.requests,
                    s.failures,
                    images.join(" ")
                )
            })
            .collect();
        assert_eq!(
            per_second,
            [
                "0: 2 requests, 0 failed, A=2",
                "1: 3 requests, 1 failed, A=1 B=1",
                "2: 1 requests, 0 failed, B=1",
                "3: 1 requests, 0 failed, -=1",
            ]
        );
        // Successes by image plus failures make every request.
        let by_image: u64 = summary.images.iter().map(|i| i.requests).sum();
        assert_eq!(by_image + summary.failures, summary.requests);
    }

    #[test]
    fn the_timeline_keeps_empty_seconds() {
        let responses = [ok(0, 10, "A"), ok(4000, 10, "A")];
        let summary = summarize(&responses, ms(5000));
        let requests: Vec<u64> = summary.timeline.iter().map(|s| s.requests).collect();
        assert_eq!(requests, [1, 0, 0, 0, 1]);
        assert_eq!(summary.timeline[1].p99_ms, None);
        assert_eq!(summary.timeline[0].p99_ms, Some(10.0));
    }
}
