//! The daemon killed with `kill -9` in the middle of a blue/green stack
//! update, on real Podman with the shipped lab templates, the real daemon and
//! `autopatch watch` loading the load balancer all along:
//! - killed while the new group is being created, the restarted daemon
//!   resumes the update to UPDATE_COMPLETE;
//! - killed during UPDATE_COMPLETE_CLEANUP_IN_PROGRESS, it finishes the
//!   cleanup.
//!
//! Either way every instance ends on image B, no container of image A and no
//! container the store does not know is left, and the only failed requests
//! are those that met the dead listener: started before the restart was done
//! and ended after the kill.

#[path = "support/lab.rs"]
mod lab;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lab::{Lab, containers, wait_until};

/// One lab at a time in this process: two fleets updating at once on two
/// cores would only slow each other down. (Each test has its own image B:
/// the test runner may run them in separate processes at once.)
static SERIAL: Mutex<()> = Mutex::new(());

/// When the daemon is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    /// Once the new group's UPDATE_IN_PROGRESS (with its new physical id)
    /// is recorded: the replacement is being created.
    NewGroupCreating,
    /// Once the stack is UPDATE_COMPLETE_CLEANUP_IN_PROGRESS: the new group
    /// serves, the old one is being deleted.
    Cleanup,
}

#[test]
fn a_daemon_killed_while_the_new_group_is_created_resumes_the_update_and_requests_fail_only_while_it_is_down()
 {
    kill_mid_update(Moment::NewGroupCreating);
}

#[test]
fn a_daemon_killed_during_the_cleanup_finishes_it_and_requests_fail_only_while_it_is_down() {
    kill_mid_update(Moment::Cleanup);
}

fn kill_mid_update(moment: Moment) {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // One image B per test: the tests may run at once in separate processes.
    let image_b = format!("localhost/autopatch-test/webapp-b:restart-{moment:?}").to_lowercase();
    let image_b = image_b.as_str();
    let image_a = lab::webapp_image();
    lab::derive_image(image_a, image_b);
    let (id_a, id_b) = (lab::image_id(image_a), lab::image_id(image_b));
    assert_ne!(id_a, id_b);
    let lab = Lab::new();
    lab.up();
    let stacks = lab.create_stacks(image_a);
    let old_group = only_group(&lab)["AutoScalingGroupName"].as_str().unwrap().to_owned();

    let watch = Watch::start(&lab, &stacks.url);
    // Load on the old group before the update starts.
    wait_until("the load reaches image A", Duration::from_secs(30), || {
        watch.responses().iter().filter(|r| r.image.as_deref() == Some(image_a)).count() >= 100
    });
    let parameter = format!("AmazonMachineImage={image_b}");
    lab.ok(&[
        "stack",
        "update",
        "pattern3-app",
        "--use-previous-template",
        "--parameter",
        &parameter,
        "--no-wait",
    ]);
    let reached = |event: &serde_json::Value| match moment {
        Moment::NewGroupCreating => {
            event["LogicalResourceId"] == "Pattern3ASG"
                && event["ResourceStatus"] == "UPDATE_IN_PROGRESS"
                && event["PhysicalResourceId"].as_str().is_some_and(|id| id != old_group)
        }
        Moment::Cleanup => {
            event["ResourceType"] == "AWS::CloudFormation::Stack"
                && event["ResourceStatus"] == "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
        }
    };
    // As often as the CLI answers: the cleanup lasts about a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !lab.events("pattern3-app").iter().any(reached) {
        let late = std::time::Instant::now() > deadline;
        assert!(!late, "the update never reached {moment:?}: {}", lab.daemon_log());
    }

    // kill -9: no chance to save anything; then at once a new daemon.
    let killed_ms = now_ms();
    lab.kill_daemon();
    lab.up();
    let restarted_ms = now_ms();

    let status = lab.wait_settled("pattern3-app", Duration::from_secs(240));
    let settled_ms = now_ms();
    assert_eq!(status, "UPDATE_COMPLETE", "{}", lab.daemon_log());
    // Load on the new group after the update.
    let on_b = || watch.responses().iter().filter(|r| r.image.as_deref() == Some(image_b)).count();
    let settled_on_b = on_b();
    wait_until("the load goes on on image B", Duration::from_secs(30), || {
        on_b() >= settled_on_b + 100
    });
    let run = watch.stop();

    // The kill met the moment it aimed at: what it interrupted was finished
    // by the restarted daemon.
    let events = lab.events("pattern3-app");
    let at = |event: &serde_json::Value| parse_timestamp(event["Timestamp"].as_str().unwrap());
    let finished = match moment {
        Moment::NewGroupCreating => events.iter().find(|event| {
            event["LogicalResourceId"] == "Pattern3ASG"
                && event["ResourceStatus"] == "UPDATE_COMPLETE"
        }),
        Moment::Cleanup => events.iter().rev().find(|event| {
            event["ResourceType"] == "AWS::CloudFormation::Stack"
                && event["ResourceStatus"] == "UPDATE_COMPLETE"
        }),
    };
    let finished = finished.expect("the interrupted step's completion event");
    assert!(at(finished) > killed_ms, "the kill came after {finished}");

    // CloudFormation's story: the new group, then the old one deleted in the
    // cleanup. A step the kill interrupted says it is in progress again when
    // it is resumed; every other event is there once.
    let mut story: Vec<(String, String)> = events
        .iter()
        .filter(|event| {
            event["LogicalResourceId"] == "Pattern3ASG"
                || event["ResourceType"] == "AWS::CloudFormation::Stack"
        })
        .map(|event| {
            let who = if event["PhysicalResourceId"] == old_group.as_str() {
                "old"
            } else {
                event["LogicalResourceId"].as_str().unwrap()
            };
            (who.to_owned(), event["ResourceStatus"].as_str().unwrap().to_owned())
        })
        .skip_while(|(_, status)| status != "UPDATE_IN_PROGRESS")
        .collect();
    story.dedup_by(|later, earlier| later == earlier && later.1.ends_with("_IN_PROGRESS"));
    let expected: Vec<(String, String)> = autopatch_testkit::REPLACING_UPDATE_STORY
        .iter()
        .map(|(who, status)| (who.to_string(), status.to_string()))
        .collect();
    assert_eq!(story, expected, "{events:#?}");

    // Every instance on B, in a new group; the containers are exactly the
    // store's instances: none of A, no orphan.
    let group = only_group(&lab);
    let new_group = group["AutoScalingGroupName"].as_str().unwrap();
    assert_ne!(new_group, old_group);
    let instances = group["Instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2, "{group}");
    for instance in instances {
        assert_eq!(instance["ImageId"], image_b, "{instance}");
        assert_eq!(instance["LifecycleState"], "InService", "{instance}");
    }
    let known: BTreeSet<&str> =
        instances.iter().map(|instance| instance["InstanceId"].as_str().unwrap()).collect();
    let containers = containers(&stacks.app_id);
    let found: BTreeSet<&str> = containers.iter().map(|c| c.instance.as_str()).collect();
    assert_eq!(found, known, "{containers:#?}");
    for container in &containers {
        assert_eq!(container.image_id, id_b, "{container:?}");
        assert_eq!(container.group, new_group, "{container:?}");
        assert_eq!(container.state, "running", "{container:?}");
    }
    for _ in 0..4 {
        let page = lab::curl(&format!("{}details.php", stacks.url)).unwrap();
        assert!(page.contains(&format!("Amazon Image Id:</b> {image_b}")), "{page}");
    }

    // The load: the only failures met the dead listener.
    let kill_t = (killed_ms - run.start_ms) as f64;
    let restart_t = (restarted_ms - run.start_ms) as f64;
    note(&format!(
        "{moment:?}: killed at {kill_t:.0} ms, restarted at {restart_t:.0} ms, settled at {} ms; {} requests, {} failed, longest gap {}",
        settled_ms - run.start_ms,
        run.responses.len(),
        run.summary["failures"],
        run.summary["longest_gap"]
    ));
    // The calibration of the run's clock is exact to the millisecond.
    let slack = 2.0;
    let outside: Vec<&Seen> = run
        .responses
        .iter()
        .filter(|r| r.error.is_some())
        .filter(|r| r.t_ms > restart_t + slack || r.t_ms + r.latency_ms < kill_t - slack)
        .collect();
    assert!(
        outside.is_empty(),
        "{} failed requests outside the restart ({kill_t:.0} ms to {restart_t:.0} ms): {outside:#?}",
        outside.len()
    );
    assert_eq!(
        run.summary["failures"].as_u64(),
        Some(run.responses.iter().filter(|r| r.error.is_some()).count() as u64),
        "the summary counts the same failures: {}",
        run.summary
    );
    // Both images served; once the update was over, only B.
    let settled_t = (settled_ms - run.start_ms) as f64;
    let images: BTreeSet<&str> = run.responses.iter().filter_map(|r| r.image.as_deref()).collect();
    assert!(images.contains(image_a) && images.contains(image_b), "{images:?}");
    let late_a: Vec<&Seen> = run
        .responses
        .iter()
        .filter(|r| r.t_ms > settled_t && r.image.as_deref() != Some(image_b))
        .collect();
    assert!(late_a.is_empty(), "served after UPDATE_COMPLETE by another image: {late_a:#?}");

    lab.tear_down();
    lab::remove_image(image_b);
}

/// A line for whoever runs the test with `--nocapture`.
#[expect(clippy::print_stderr, reason = "what the load saw, when asked")]
fn note(line: &str) {
    eprintln!("{line}");
}

/// The one Auto Scaling group of the lab.
fn only_group(lab: &Lab) -> serde_json::Value {
    let fleet = lab.json(&["fleet"]);
    let groups = fleet["AutoScalingGroups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{fleet}");
    groups[0].clone()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// `2026-11-24T12:00:01.123Z` in milliseconds since the epoch.
fn parse_timestamp(text: &str) -> i64 {
    text.parse::<autopatch_model::Timestamp>().unwrap_or_else(|error| panic!("{error}")).millis()
}

/// One response from watch's JSON lines.
#[derive(Debug, Clone, serde::Deserialize)]
struct Seen {
    t_ms: f64,
    latency_ms: f64,
    #[allow(dead_code, reason = "shown when a failure is reported")]
    status: Option<u16>,
    image: Option<String>,
    error: Option<String>,
}

/// `autopatch watch` running as a child process.
struct Watch {
    child: Option<Child>,
    jsonl: PathBuf,
    lines: PathBuf,
    summary: PathBuf,
}

/// What a stopped watch saw.
struct Run {
    summary: serde_json::Value,
    responses: Vec<Seen>,
    /// The run's start (its `t_ms` 0) in milliseconds since the epoch.
    start_ms: i64,
}

impl Watch {
    /// 100 requests a second on 4 keep-alive connections, a line per
    /// response on stderr (they carry wall-clock times).
    fn start(lab: &Lab, url: &str) -> Watch {
        let jsonl = lab.path().join("watch.jsonl");
        let lines = lab.path().join("watch.lines");
        let summary = lab.path().join("watch.json");
        let child = lab
            .command()
            .args(["watch", url, "--concurrency", "4", "--rate", "100", "--duration", "300s"])
            .args(["--each", "-o", "json", "--jsonl"])
            .arg(&jsonl)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&summary).unwrap())
            .stderr(std::fs::File::create(&lines).unwrap())
            .spawn()
            .expect("start autopatch watch");
        let watch = Watch { child: Some(child), jsonl, lines, summary };
        // Once a response is recorded, the run (and its Ctrl-C handler) is on.
        wait_until("watch records a response", Duration::from_secs(30), || {
            !watch.responses().is_empty()
        });
        watch
    }

    /// The complete lines so far.
    fn responses(&self) -> Vec<Seen> {
        let text = std::fs::read_to_string(&self.jsonl).unwrap_or_default();
        text.lines()
            .filter(|line| line.ends_with('}'))
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Ctrl-C, then the summary, the responses and the run's clock.
    fn stop(mut self) -> Run {
        let mut child = self.child.take().expect("running");
        let interrupted =
            Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
        assert!(interrupted.success());
        let status = child.wait().expect("wait for autopatch watch");
        let lines = std::fs::read_to_string(&self.lines).unwrap();
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&self.summary).unwrap())
                .unwrap_or_else(|error| panic!("{error}: {lines}"));
        let responses = self.responses();
        assert_eq!(summary["requests"].as_u64(), Some(responses.len() as u64), "{summary}");
        assert_eq!(status.success(), summary["failures"] == 0, "{status}: {summary}");
        // The first line on stderr is the first response's, ending at
        // `<UTC time>`: the run started its t_ms + latency_ms before that.
        let first = lines.lines().next().expect("a line per response");
        let ended = parse_timestamp(first.split(' ').next().unwrap());
        let start_ms = ended - (responses[0].t_ms + responses[0].latency_ms).floor() as i64;
        Run { summary, responses, start_ms }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
