//! `autopatch watch`: loads a URL with `autopatch_watch::run` and shows it
//! live (a line per response, or a line per second when more than ten
//! responses a second arrive), then the summary; writes the JSON lines and
//! SVG files. Lines go to stdout, or to stderr under `--output json` so
//! stdout holds only the summary object.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use autopatch_model::Timestamp;
use autopatch_watch::{FailureKind, Response, Summary, UNKNOWN_IMAGE, WatchConfig};
use clap::Args;

use crate::render::{self, CliError};

/// More responses than this in a second switch the live output from a line
/// per response to a line per second.
const LINES_PER_SECOND: u64 = 10;

/// Load a URL and prove it stays up: each response's status, latency and image, then a summary
///
/// Like the lab's watch script by default: one request a second, one line per
/// response (`<UTC time> <status or 000> <latency> <image>`), but it ends
/// (after --duration, 60 s by default, or --requests) and prints a summary:
/// requests, failures by kind, the longest gap without a successful response,
/// p50/p99/max latency, requests per second, and which image answered when.
/// Ctrl-C ends it early and still prints the summary and writes the files.
///
/// With --concurrency N, N workers each keep one connection alive and send
/// as fast as responses come (or at --rate in total); when more than 10
/// responses a second arrive, one line a second replaces the line per response.
///
/// The image that served a response is the response header --image-header
/// (X-Image-Id, set by the shipped webapp component), else the first word
/// after `Amazon Image Id:` in the body (the lab's /details.php), else `-`.
///
/// A success is a 2xx or 3xx status. Failures: connect (refused, reset or
/// closed before a response), timeout, http_5xx, http_4xx, other (protocol
/// errors, unreadable bodies). No request is ever retried.
///
///   autopatch watch 127.0.0.1:41000                           # the lab's watch, for 60 s
///   autopatch watch http://127.0.0.1:41000/ --concurrency 8 --duration 2m \
///       --jsonl watch.jsonl --svg watch.svg
///   autopatch watch http://127.0.0.1:41000/details.php --requests 20 -o json
///
/// With --output json, stdout holds only the summary (one JSON object) and
/// the live lines go to stderr.
///
/// Exit status: 0 when every request succeeded, 1 when any failed (or none
/// succeeded), 2 for usage errors and files that cannot be written. Both
/// files are opened before the first request; a chart that still cannot be
/// written at the end goes to the temporary directory (the error says where).
/// See docs/watch.md.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct WatchArgs {
    /// The URL: http://HOST[:PORT][/PATH], PORT from 1 to 65535 (80 when
    /// absent); HOST:PORT alone means http:// (a load balancer's DNSName).
    /// https is not supported.
    url: String,
    /// Workers, each with its own keep-alive connection, sending as fast as
    /// responses come unless --rate is given. Without it (and without
    /// --rate): one request a second.
    #[arg(long, short = 'c', value_name = "N")]
    concurrency: Option<usize>,
    /// Requests per second over all workers.
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,
    /// How long to send requests (`500ms`, `60s`, `5m`, `1h`, or seconds);
    /// 60s unless --requests is given; 0 means until Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many requests (at least 1).
    #[arg(long, short = 'n', value_name = "N")]
    requests: Option<u64>,
    /// Per request, from its start (including a new connection's connect) to
    /// the end of its body; a request that takes longer is a `timeout` failure.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    timeout: Duration,
    /// The response header that names the image that served the response.
    #[arg(long, value_name = "NAME", default_value = autopatch_watch::DEFAULT_IMAGE_HEADER)]
    image_header: String,
    /// A line per response, however many arrive.
    #[arg(long, conflicts_with = "quiet")]
    each: bool,
    /// No live lines: only the summary.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Write one JSON object per response to FILE as they arrive: t_ms (start
    /// since the run's start), status, latency_ms, image, error. FILE is
    /// created before the first request.
    #[arg(long, value_name = "FILE")]
    jsonl: Option<PathBuf>,
    /// Write a timeline chart to FILE at the end (SVG): requests per second by
    /// image, failures, p99 latency. FILE is opened before the first request,
    /// so a path that cannot be written is refused at once.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

/// How the live lines are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lines {
    /// A line per response until more than [`LINES_PER_SECOND`] arrive in a
    /// second, then a line per second.
    Auto,
    Each,
    Quiet,
}

pub(crate) async fn watch(args: WatchArgs, json: bool) -> Result<ExitCode, CliError> {
    let config = config(&args);
    // Nothing is prepared (no file created) for a run that cannot start.
    config.check().map_err(usage_error)?;
    let lines = match (args.each, args.quiet) {
        (_, true) => Lines::Quiet,
        (true, _) => Lines::Each,
        _ => Lines::Auto,
    };
    let jsonl = match &args.jsonl {
        Some(path) => {
            Some(std::io::BufWriter::new(fs_err::File::create(path).map_err(|error| {
                CliError::new(format!("failed to create the JSON lines file: {error}"))
                    .with_hint("give --jsonl a path in a writable directory")
            })?))
        }
        None => None,
    };
    let chart = args.svg.as_deref().map(Chart::open).transpose()?;
    let live = Arc::new(Mutex::new(Live::new(lines, json, jsonl)));
    let started_at = SystemTime::now();
    let ticker = tokio::spawn({
        let live = Arc::clone(&live);
        async move {
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.tick().await;
            loop {
                interval.tick().await;
                live.lock().unwrap_or_else(PoisonError::into_inner).tick();
            }
        }
    });
    let sink = {
        let live = Arc::clone(&live);
        move |response: &Response| {
            live.lock().unwrap_or_else(PoisonError::into_inner).response(started_at, response);
        }
    };
    let stop = async {
        // Without a signal handler, run until the other bounds.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let result = autopatch_watch::run(&config, sink, stop).await;
    ticker.abort();
    let outcome = result.map_err(usage_error)?;
    let jsonl_error = live.lock().unwrap_or_else(PoisonError::into_inner).finish();

    let summary = &outcome.summary;
    if json {
        let mut value = serde_json::to_value(summary)
            .map_err(|error| CliError::new(format!("failed to encode the summary: {error}")))?;
        value["url"] = serde_json::Value::String(args.url.clone());
        render::json(&value);
    } else {
        for line in summary_text(summary) {
            render::line(&line);
        }
    }
    // The chart is written even when the JSON lines failed.
    let chart_error =
        chart.and_then(|chart| chart.write(&autopatch_watch::svg(&outcome.responses)).err());
    if let Some(error) = jsonl_error {
        if let Some(chart_error) = chart_error {
            render::report(&chart_error);
        }
        return Err(CliError::new(format!("failed to write the JSON lines file: {error}")));
    }
    if let Some(error) = chart_error {
        return Err(error);
    }
    let proved = summary.failures == 0 && summary.successes > 0;
    Ok(if proved { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn usage_error(error: autopatch_watch::WatchError) -> CliError {
    CliError::from_error(error).with_hint("see `autopatch watch --help` for the accepted values")
}

/// The `--svg` file, opened before the run so that a path that cannot be
/// written is refused before the first request, not after a long run.
/// It is emptied and written only at the end, so an existing file keeps its
/// content until then; a file opened here that is dropped unwritten (the
/// run did not finish) is removed again.
struct Chart {
    path: PathBuf,
    /// `None` once written.
    file: Option<fs_err::File>,
    /// The file did not exist before: it is removed when not written.
    created: bool,
}

impl Chart {
    fn open(path: &Path) -> Result<Chart, CliError> {
        let existed = std::fs::symlink_metadata(path).is_ok();
        let file =
            fs_err::OpenOptions::new().write(true).create(true).open(path).map_err(|error| {
                CliError::new(format!("failed to open the chart file: {error}"))
                    .with_hint("give --svg a file path in a writable directory")
            })?;
        Ok(Chart { path: path.to_owned(), file: Some(file), created: !existed })
    }

    /// Writes `svg` to the file. When that fails (a full disk, say), the
    /// chart is written to the temporary directory instead and the error
    /// says where.
    fn write(mut self, svg: &str) -> Result<(), CliError> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let error = match replace_contents(file, svg) {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        if self.created {
            // Not a half chart that looks like a whole one.
            let _ignored = std::fs::remove_file(&self.path);
        }
        let message = format!("failed to write the chart: {error}");
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let fallback = std::env::temp_dir()
            .join(format!("autopatch-watch-{seconds}-{}.svg", std::process::id()));
        Err(match fs_err::write(&fallback, svg) {
            Ok(()) => CliError::new(message).with_hint(format!(
                "the chart was written to {} instead: move it where you want it",
                fallback.display()
            )),
            Err(second) => CliError::new(format!(
                "{message}; and to the temporary directory: {second}"
            ))
            .with_hint(
                "the chart is lost, the summary above is not; next time give --svg a path with \
                     free space (and --jsonl to keep every response as it arrives)",
            ),
        })
    }
}

/// Empties a regular file (a device cannot be) and writes `text` to it.
fn replace_contents(mut file: fs_err::File, text: &str) -> std::io::Result<()> {
    if file.metadata()?.is_file() {
        file.set_len(0)?;
    }
    file.write_all(text.as_bytes())?;
    file.flush()
}

impl Drop for Chart {
    fn drop(&mut self) {
        if self.created && self.file.take().is_some() {
            // Best effort: the run is failing already.
            let _ignored = std::fs::remove_file(&self.path);
        }
    }
}

fn config(args: &WatchArgs) -> WatchConfig {
    let (concurrency, rate) = match (args.concurrency, args.rate) {
        // The lab's watch script: one request a second.
        (None, None) => (1, Some(1.0)),
        (concurrency, rate) => (concurrency.unwrap_or(1), rate),
    };
    let duration = match (args.duration, args.requests) {
        (Some(duration), _) if duration.is_zero() => None,
        (Some(duration), _) => Some(duration),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(60)),
    };
    WatchConfig {
        url: args.url.clone(),
        concurrency,
        rate,
        duration,
        requests: args.requests,
        timeout: args.timeout,
        image_header: args.image_header.clone(),
    }
}

/// `500ms`, `1.5s`, `60s`, `5m`, `1h`, or a number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 500ms, 60s, 5m or 1h, got {text:?}"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {text:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("duration {text:?} is out of range"))
}

/// The live state the sink and the one-second ticker share.
struct Live {
    lines: Lines,
    /// Lines go to stderr (stdout is for the JSON summary).
    to_stderr: bool,
    /// Switched on (for good) in [`Lines::Auto`] once a second had more than
    /// [`LINES_PER_SECOND`] responses.
    per_second: bool,
    jsonl: Option<std::io::BufWriter<fs_err::File>>,
    jsonl_error: Option<std::io::Error>,
    seconds: u64,
    requests: u64,
    failures: u64,
    /// Latencies so far in microseconds, for the p99 so far (reordered in place).
    latencies: Vec<u32>,
    /// This second's responses and failures, and its successes by image.
    second_requests: u64,
    second_failures: u64,
    second_images: Vec<(String, u64)>,
}

impl Live {
    fn new(lines: Lines, to_stderr: bool, jsonl: Option<std::io::BufWriter<fs_err::File>>) -> Live {
        Live {
            lines,
            to_stderr,
            per_second: false,
            jsonl,
            jsonl_error: None,
            seconds: 0,
            requests: 0,
            failures: 0,
            latencies: Vec::new(),
            second_requests: 0,
            second_failures: 0,
            second_images: Vec::new(),
        }
    }

    fn print(&self, line: &str) {
        if self.to_stderr { render::note(line) } else { render::line(line) }
    }

    fn response(&mut self, started_at: SystemTime, response: &Response) {
        self.requests += 1;
        self.second_requests += 1;
        self.latencies.push(u32::try_from(response.latency.as_micros()).unwrap_or(u32::MAX));
        if response.is_success() {
            let image = response.image.as_deref().unwrap_or(UNKNOWN_IMAGE);
            match self.second_images.iter_mut().find(|(name, _)| name == image) {
                Some((_, count)) => *count += 1,
                None => self.second_images.push((image.to_owned(), 1)),
            }
        } else {
            self.failures += 1;
            self.second_failures += 1;
        }
        if let Some(writer) = &mut self.jsonl
            && self.jsonl_error.is_none()
        {
            let written = serde_json::to_writer(&mut *writer, response)
                .map_err(std::io::Error::from)
                .and_then(|()| writer.write_all(b"\n"));
            if let Err(error) = written {
                self.jsonl_error = Some(error);
            }
        }
        if self.lines == Lines::Auto && self.second_requests > LINES_PER_SECOND {
            self.per_second = true;
        }
        let each = match self.lines {
            Lines::Each => true,
            Lines::Auto => !self.per_second,
            Lines::Quiet => false,
        };
        if each {
            let completed = started_at + response.completed();
            self.print(&response_line(completed, response));
            self.flush_jsonl();
        }
    }

    /// Once a second: the per-second line, and the JSON lines flushed.
    fn tick(&mut self) {
        self.seconds += 1;
        if self.lines == Lines::Auto && self.per_second {
            let p99 = p99_micros(&mut self.latencies)
                .map(|micros| format!("{:.1} ms", f64::from(micros) / 1000.0))
                .unwrap_or_else(|| "-".to_owned());
            let mut images: Vec<String> =
                self.second_images.iter().map(|(image, n)| format!("{image}={n}")).collect();
            if self.second_failures > 0 {
                images.push(format!("failed={}", self.second_failures));
            }
            self.print(&format!(
                "{:>4}s  requests {}  failed {}  rps {}  p99 {p99}  {}",
                self.seconds,
                self.requests,
                self.failures,
                self.second_requests,
                images.join(" ")
            ));
        }
        self.second_requests = 0;
        self.second_failures = 0;
        self.second_images.clear();
        self.flush_jsonl();
    }

    fn flush_jsonl(&mut self) {
        if let Some(writer) = &mut self.jsonl
            && self.jsonl_error.is_none()
            && let Err(error) = writer.flush()
        {
            self.jsonl_error = Some(error);
        }
    }

    /// Flushes the JSON lines; their first write error, if any.
    fn finish(&mut self) -> Option<std::io::Error> {
        self.flush_jsonl();
        self.jsonl = None;
        self.jsonl_error.take()
    }
}

/// The nearest-rank p99 of `latencies` (reordered in place).
fn p99_micros(latencies: &mut [u32]) -> Option<u32> {
    if latencies.is_empty() {
        return None;
    }
    let rank = (latencies.len() as f64 * 0.99).ceil() as usize;
    let index = rank.clamp(1, latencies.len()) - 1;
    Some(*latencies.select_nth_unstable(index).1)
}

/// `<UTC time> <status or 000> <latency> <image>[ <failure kind>]`.
fn response_line(completed: SystemTime, response: &Response) -> String {
    let millis = completed.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    let time = Timestamp::from_millis(i64::try_from(millis).unwrap_or(i64::MAX));
    let status = response.status.map_or_else(|| "000".to_owned(), |status| status.to_string());
    let latency = response.latency.as_secs_f64() * 1000.0;
    let image = response.image.as_deref().unwrap_or(UNKNOWN_IMAGE);
    match response.error {
        Some(kind) => format!("{time} {status} {latency:.1} ms {image} {kind}"),
        None => format!("{time} {status} {latency:.1} ms {image}"),
    }
}

/// The text summary, one string per line.
fn summary_text(summary: &Summary) -> Vec<String> {
    let mut lines = Vec::new();
    let kinds: Vec<String> = FailureKind::ALL
        .iter()
        .map(|kind| format!("{kind} {}", summary.failures_by_kind.get(kind).copied().unwrap_or(0)))
        .collect();
    lines.push(format!(
        "requests {}  succeeded {}  failed {} ({})",
        summary.requests,
        summary.successes,
        summary.failures,
        kinds.join(", ")
    ));
    if summary.abandoned > 0 {
        lines.push(format!(
            "abandoned {} requests still waiting for an answer when the run was stopped",
            summary.abandoned
        ));
    }
    let gap = &summary.longest_gap;
    lines.push(format!(
        "longest gap without a success {:.1} ms (from {:.3} s to {:.3} s)",
        gap.ms,
        gap.from_ms / 1000.0,
        gap.to_ms / 1000.0
    ));
    let latency = &summary.latency_ms;
    let ms = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"));
    lines.push(format!(
        "latency p50 {}  p99 {}  max {}",
        ms(latency.p50),
        ms(latency.p99),
        ms(latency.max)
    ));
    lines.push(format!(
        "{:.1} requests/s over {} on {} connection{}",
        summary.rps,
        seconds(summary.elapsed_ms),
        summary.connections,
        if summary.connections == 1 { "" } else { "s" }
    ));
    if summary.images.is_empty() {
        lines.push("images: no successful response".to_owned());
        return lines;
    }
    let mut rows = vec![vec![
        "IMAGE".to_owned(),
        "SUCCEEDED".to_owned(),
        "FIRST".to_owned(),
        "LAST".to_owned(),
    ]];
    for image in &summary.images {
        rows.push(vec![
            image.image.clone(),
            image.requests.to_string(),
            seconds(image.first_ms),
            seconds(image.last_ms),
        ]);
    }
    lines.push("images (successful responses, first and last seen):".to_owned());
    lines.extend(aligned(&rows).into_iter().map(|row| format!("  {row}")));

    // The timeline in at most about a dozen rows.
    let width = [5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600]
        .into_iter()
        .find(|width| summary.timeline.len().div_ceil(*width) <= 12)
        .unwrap_or(3600);
    let mut header = vec!["SECONDS".to_owned(), "REQUESTS".to_owned(), "FAILED".to_owned()];
    header.extend(summary.images.iter().map(|image| image.image.clone()));
    let mut rows = vec![header];
    for chunk in summary.timeline.chunks(width) {
        let first = chunk.first().map_or(0, |second| second.second);
        let mut row = vec![
            format!("{first}-{}", first + chunk.len() as u64),
            chunk.iter().map(|second| second.requests).sum::<u64>().to_string(),
            chunk.iter().map(|second| second.failures).sum::<u64>().to_string(),
        ];
        for image in &summary.images {
            let count: u64 = chunk
                .iter()
                .map(|second| second.images.get(&image.image).copied().unwrap_or(0))
                .sum();
            row.push(count.to_string());
        }
        rows.push(row);
    }
    lines.push(format!("timeline ({width} s rows; successes by image):"));
    lines.extend(aligned(&rows).into_iter().map(|row| format!("  {row}")));
    lines
}

fn seconds(millis: f64) -> String {
    format!("{:.1} s", millis / 1000.0)
}

/// Rows with aligned columns, no trailing spaces.
fn aligned(rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (index, cell) in row.iter().enumerate() {
            if widths.len() <= index {
                widths.push(0);
            }
            widths[index] = widths[index].max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let cells: Vec<String> =
                row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_parsed() {
        let table = [
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            ("60s", Duration::from_secs(60)),
            ("60", Duration::from_secs(60)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("0", Duration::ZERO),
        ];
        for (text, expected) in table {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
        assert!(parse_duration("5 days").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn a_response_line_has_time_status_latency_and_image() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        let ok = Response {
            t: Duration::ZERO,
            status: Some(200),
            latency: Duration::from_micros(3_140),
            image: Some("webapp/1.0.0/1".to_owned()),
            error: None,
        };
        assert_eq!(response_line(at, &ok), "2026-11-18T11:06:40.123Z 200 3.1 ms webapp/1.0.0/1");
        let refused =
            Response { status: None, image: None, error: Some(FailureKind::Connect), ..ok.clone() };
        assert_eq!(response_line(at, &refused), "2026-11-18T11:06:40.123Z 000 3.1 ms - connect");
    }

    #[test]
    fn the_p99_so_far_is_nearest_rank() {
        let mut latencies: Vec<u32> = (1..=200).rev().collect();
        assert_eq!(p99_micros(&mut latencies), Some(198));
        assert_eq!(p99_micros(&mut []), None);
    }

    #[test]
    fn the_default_is_the_labs_watch_and_the_bounds_combine() {
        let args = |extra: &[&str]| {
            let mut argv = vec!["watch", "127.0.0.1:1"];
            argv.extend_from_slice(extra);
            #[derive(Debug, clap::Parser)]
            struct Cli {
                #[command(flatten)]
                args: WatchArgs,
            }
            <Cli as clap::Parser>::parse_from(argv).args
        };
        let lab = config(&args(&[]));
        assert_eq!(
            (lab.concurrency, lab.rate, lab.duration, lab.requests),
            (1, Some(1.0), Some(Duration::from_secs(60)), None)
        );
        let closed = config(&args(&["--concurrency", "8", "--requests", "100"]));
        assert_eq!((closed.concurrency, closed.rate, closed.duration), (8, None, None));
        let forever = config(&args(&["--duration", "0"]));
        assert_eq!((forever.duration, forever.requests), (None, None));
        let paced = config(&args(&["--rate", "500", "-c", "4", "--duration", "2m"]));
        assert_eq!(
            (paced.concurrency, paced.rate, paced.duration),
            (4, Some(500.0), Some(Duration::from_secs(120)))
        );
    }

    #[test]
    fn the_summary_text_shows_images_and_a_compact_timeline() {
        let response = |t_ms: u64, image: &str, error: Option<FailureKind>| Response {
            t: Duration::from_millis(t_ms),
            status: Some(if error.is_some() { 503 } else { 200 }),
            latency: Duration::from_millis(2),
            image: Some(image.to_owned()),
            error,
        };
        let mut responses: Vec<Response> =
            (0..12).map(|second| response(second * 1000, "A", None)).collect();
        responses.extend((6..12).map(|second| response(second * 1000 + 500, "B", None)));
        responses.push(response(3000, "A", Some(FailureKind::Http5xx)));
        let summary = autopatch_watch::summarize(&responses, Duration::from_secs(12));
        let text = summary_text(&summary).join("\n");
        expect_test::expect![[r#"
            requests 19  succeeded 18  failed 1 (connect 0, timeout 0, http_5xx 1, http_4xx 0, other 0)
            longest gap without a success 1000.0 ms (from 0.002 s to 1.002 s)
            latency p50 2.0 ms  p99 2.0 ms  max 2.0 ms
            1.6 requests/s over 12.0 s on 0 connections
            images (successful responses, first and last seen):
              IMAGE  SUCCEEDED  FIRST  LAST
              A      12         0.0 s  11.0 s
              B      6          6.5 s  11.5 s
            timeline (5 s rows; successes by image):
              SECONDS  REQUESTS  FAILED  A  B
              0-5      6         1       5  0
              5-10     9         0       5  4
              10-12    4         0       2  2"#]]
        .assert_eq(&text);
    }
}
