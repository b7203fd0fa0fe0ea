//! `autopatch watch` as a user runs it, against a small keep-alive HTTP/1.1
//! server on 127.0.0.1 whose answers the test scripts: the JSON summary, the
//! JSON lines and SVG files, and the exit codes.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A server answering the n-th request (from 0) with `script(n)`: a status
/// and an optional `X-Image-Id`. Connections are kept alive.
struct Server {
    url: String,
    connections: Arc<AtomicU64>,
}

impl Server {
    fn start(script: fn(u64) -> (u16, Option<&'static str>)) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}/", listener.local_addr().expect("the bound address"));
        let connections = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let accepted = connections.clone();
        // The thread ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                accepted.fetch_add(1, Ordering::SeqCst);
                let requests = requests.clone();
                std::thread::spawn(move || serve(stream, script, &requests));
            }
        });
        Server { url, connections }
    }
}

fn serve(stream: TcpStream, script: fn(u64) -> (u16, Option<&'static str>), requests: &AtomicU64) {
    let mut writer = stream.try_clone().expect("a second handle on the stream");
    let mut reader = BufReader::new(stream);
    loop {
        // A GET without a body: read the head up to its empty line.
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let (status, image) = script(requests.fetch_add(1, Ordering::SeqCst));
        let header = image.map(|image| format!("X-Image-Id: {image}\r\n")).unwrap_or_default();
        let body = "<html>Welcome<html>\n";
        let response = format!(
            "HTTP/1.1 {status} Scripted\r\n{header}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn watch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autopatch"))
        .arg("watch")
        .args(args)
        .output()
        .expect("run autopatch")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_clean_run_exits_0_with_the_summary_and_both_files() {
    let server =
        Server::start(|n| (200, Some(if n < 10 { "webapp/1.0.0/1" } else { "webapp/1.0.0/2" })));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let jsonl = dir.path().join("watch.jsonl");
    let svg = dir.path().join("watch.svg");
    let output = watch(&[
        &server.url,
        "--requests",
        "20",
        "--concurrency",
        "4",
        "--jsonl",
        jsonl.to_str().expect("a utf-8 path"),
        "--svg",
        svg.to_str().expect("a utf-8 path"),
        "-o",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    // stdout is exactly one JSON object: the summary.
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the summary is one JSON object");
    assert_eq!(summary["requests"], 20);
    assert_eq!(summary["successes"], 20);
    assert_eq!(summary["failures"], 0);
    assert_eq!(summary["failures_by_kind"]["connect"], 0);
    assert_eq!(summary["url"], server.url.as_str());
    let images: Vec<(String, u64)> = summary["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|image| {
            (
                image["image"].as_str().expect("a name").to_owned(),
                image["requests"].as_u64().expect("a count"),
            )
        })
        .collect();
    assert_eq!(images, [("webapp/1.0.0/1".to_owned(), 10), ("webapp/1.0.0/2".to_owned(), 10)]);
    let connections = summary["connections"].as_u64().expect("a connection count");
    assert!((1..=4).contains(&connections), "{connections} connections for 4 workers");
    assert_eq!(server.connections.load(Ordering::SeqCst), connections);
    assert!(summary["longest_gap"]["ms"].is_number());
    assert!(summary["latency_ms"]["p99"].is_number());
    assert!(summary["timeline"].as_array().is_some_and(|seconds| !seconds.is_empty()));

    // One JSON object per response.
    let lines = std::fs::read_to_string(&jsonl).expect("the JSON lines file");
    let records: Vec<serde_json::Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is a JSON object"))
        .collect();
    assert_eq!(records.len(), 20);
    for record in &records {
        assert_eq!(record["status"], 200);
        assert!(record["error"].is_null());
        assert!(record["t_ms"].is_number() && record["latency_ms"].is_number());
    }
    let served_by_2 = records.iter().filter(|r| r["image"] == "webapp/1.0.0/2").count();
    assert_eq!(served_by_2, 10);

    // The chart names both images.
    let chart = std::fs::read_to_string(&svg).expect("the chart");
    assert!(chart.starts_with("<svg"), "{chart}");
    assert!(chart.contains(r#"data-series="image:webapp/1.0.0/1""#));
    assert!(chart.contains(r#"data-series="image:webapp/1.0.0/2""#));
}

#[test]
fn a_failed_request_makes_the_exit_code_1() {
    let server = Server::start(|n| if n == 2 { (500, None) } else { (200, Some("A")) });
    let output = watch(&[&server.url, "--requests", "5", "--concurrency", "2", "-o", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!((summary["requests"].as_u64(), summary["failures"].as_u64()), (Some(5), Some(1)));
    assert_eq!(summary["failures_by_kind"]["http_5xx"], 1);
}

#[test]
fn the_text_output_has_a_line_per_response_then_the_summary() {
    let server = Server::start(|_| (200, Some("webapp/1.0.0/1")));
    let output = watch(&[&server.url, "--requests", "3", "--rate", "50"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines[..3] {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 5, "{line}");
        assert!(fields[0].ends_with('Z'), "a UTC time: {line}");
        assert_eq!((fields[1], fields[3], fields[4]), ("200", "ms", "webapp/1.0.0/1"), "{line}");
    }
    assert!(lines[3].starts_with("requests 3  succeeded 3  failed 0"), "{text}");
}

#[test]
fn usage_errors_and_unsupported_urls_exit_2_and_say_what_to_fix() {
    let output = watch(&["http://127.0.0.1:1/", "--concurrency", "many"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--concurrency"), "{}", stderr(&output));

    let output = watch(&["https://127.0.0.1:1/", "--requests", "1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("only http:// is supported"), "{}", stderr(&output));
    assert!(output.stdout.is_empty());

    let output = watch(&["http://127.0.0.1:1/", "--duration", "5 days"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("unknown unit"), "{}", stderr(&output));
}

#[test]
fn a_numeric_option_that_allows_no_request_is_a_usage_error() {
    let server = Server::start(|_| (200, Some("webapp/1.0.0/1")));
    let cases = [
        (["-n", "0"], "error: invalid number of requests 0: at least one request is needed"),
        (
            ["--requests", "0"],
            "error: invalid number of requests 0: at least one request is needed",
        ),
        (["--concurrency", "0"], "error: invalid concurrency 0: at least one worker is needed"),
        (["--rate", "0"], "error: invalid rate 0: requests per second must be a number"),
        (["--timeout", "0"], "error: invalid timeout 0: a request needs some time"),
    ];
    for (option, message) in cases {
        let output = watch(&[&server.url, "--duration", "1s", option[0], option[1]]);
        assert_eq!(output.status.code(), Some(2), "{option:?}: {}", stderr(&output));
        assert!(stderr(&output).starts_with(message), "{option:?}: {}", stderr(&output));
        assert!(output.stdout.is_empty(), "{option:?}: no run, so no summary");
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 0, "no request was sent");
}

#[test]
fn a_port_out_of_range_is_a_usage_error_naming_it_not_port_80() {
    for port in ["99999", "70000", "0"] {
        let url = format!("http://127.0.0.1:{port}/");
        let output = watch(&[&url, "-n", "1", "-q"]);
        assert_eq!(output.status.code(), Some(2), "{url}: {}", stderr(&output));
        assert!(
            stderr(&output).starts_with(&format!("error: invalid port \"{port}\" in \"{url}\"")),
            "{}",
            stderr(&output)
        );
        assert!(output.stdout.is_empty(), "no request was made, so no summary");
    }
}

#[test]
fn ctrl_c_ends_the_run_with_the_summary_and_the_files() {
    let server = Server::start(|_| (200, Some("A")));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let jsonl = dir.path().join("watch.jsonl");
    let svg = dir.path().join("watch.svg");
    let child = Command::new(env!("CARGO_BIN_EXE_autopatch"))
        .args(["watch", &server.url, "--duration", "0", "--rate", "20", "-o", "json"])
        .arg("--jsonl")
        .arg(&jsonl)
        .arg("--svg")
        .arg(&svg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start autopatch watch");
    // Once a response is recorded, the run (and its Ctrl-C handler) is on.
    let started = (0..600).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::read_to_string(&jsonl).is_ok_and(|text| text.lines().count() >= 2)
    });
    assert!(started, "no response recorded within 30 s");
    let interrupted =
        Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("run kill");
    assert!(interrupted.success());
    let output = child.wait_with_output().expect("wait for autopatch watch");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the summary is one JSON object");
    let requests = summary["requests"].as_u64().expect("a count");
    assert!(requests >= 2);
    assert_eq!(summary["failures"], 0);
    let lines = std::fs::read_to_string(&jsonl).expect("the JSON lines file");
    assert_eq!(lines.lines().count() as u64, requests, "every response is in the file");
    assert!(std::fs::read_to_string(&svg).expect("the chart").contains("image:A"));
}

#[test]
fn an_svg_path_that_cannot_be_written_is_refused_before_the_first_request() {
    let server = Server::start(|_| (200, Some("A")));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let missing = dir.path().join("missing").join("watch.svg");
    for path in [missing.as_path(), dir.path()] {
        let path = path.to_str().expect("a utf-8 path");
        let output = watch(&[&server.url, "-n", "1", "-q", "--svg", path]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(
            stderr(&output).starts_with("error: failed to open the chart file")
                && stderr(&output).contains(path),
            "{}",
            stderr(&output)
        );
        assert!(stderr(&output).contains("hint: give --svg a file path"), "{}", stderr(&output));
        assert!(output.stdout.is_empty(), "no run, so no summary");
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 0, "no request was sent");
}

#[test]
fn a_run_that_cannot_start_leaves_no_files_behind() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let jsonl = dir.path().join("watch.jsonl");
    let svg = dir.path().join("watch.svg");
    let output = watch(&[
        "http://127.0.0.1:0/",
        "-n",
        "1",
        "--jsonl",
        jsonl.to_str().expect("a utf-8 path"),
        "--svg",
        svg.to_str().expect("a utf-8 path"),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("invalid port"), "{}", stderr(&output));
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("the directory").collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_chart_that_cannot_be_written_at_the_end_is_kept_in_the_temporary_directory() {
    let server = Server::start(|_| (200, Some("webapp/1.0.0/1")));
    let temporary = tempfile::tempdir().expect("a temporary directory");
    // /dev/full opens for writing and fails every write (ENOSPC), like a
    // disk that filled up during the run.
    let output = Command::new(env!("CARGO_BIN_EXE_autopatch"))
        .args([
            "watch",
            &server.url,
            "-n",
            "3",
            "-c",
            "1",
            "-q",
            "-o",
            "json",
            "--svg",
            "/dev/full",
        ])
        .env("TMPDIR", temporary.path())
        .output()
        .expect("run autopatch");
    assert_eq!(output.status.code(), Some(2), "a file that could not be written");
    // With -o json, stdout gets the summary, then the error object every
    // failed command prints there.
    let printed: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&output.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("JSON objects on stdout");
    assert_eq!(printed.len(), 2, "{printed:?}");
    let summary = &printed[0];
    assert_eq!((summary["requests"].as_u64(), summary["failures"].as_u64()), (Some(3), Some(0)));
    assert_eq!(printed[1]["error"]["code"], 2, "{printed:?}");
    let errors = stderr(&output);
    assert!(errors.starts_with("error: failed to write the chart"), "{errors}");
    let kept: Vec<PathBuf> = std::fs::read_dir(temporary.path())
        .expect("the temporary directory")
        .map(|entry| entry.expect("an entry").path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        errors.contains(&format!(
            "hint: the chart was written to {} instead: move it where you want it",
            kept[0].display()
        )),
        "{errors}"
    );
    let chart = std::fs::read_to_string(&kept[0]).expect("the chart");
    assert!(chart.starts_with("<svg") && chart.contains("image:webapp/1.0.0/1"), "{chart}");
}
