//! Structured log lines, one event per line in logfmt:
//! `ts=2026-11-24T12:54:56.789Z level=info msg="listening" socket=/x/autopatch.sock`.
//!
//! Two sources write them: the daemon's own events ([`log`]), and the `log`
//! facade's records of autopatch's crates (the stack service's resource
//! failures and stack statuses, the fleet's launches, terminations, adoption
//! and orphan removal, the load balancers' adopted targets), whose key-value
//! pairs become fields. [`install`] makes this module the facade's logger;
//! records of other crates (the engine client's libraries) and below `info`
//! are left out. Lines go to stderr (which `autopatch up` sends to
//! `daemon.log`), or to the writer given to [`log_to`].
//!
//! This module is also the one place the daemon crate reads the wall clock
//! (for the `ts` field).

#![expect(clippy::print_stderr, reason = "this module is the daemon's log")]

use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Mutex, PoisonError};

use autopatch_model::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Where lines go instead of stderr, when set.
static SINK: Mutex<Option<Box<dyn Write + Send>>> = Mutex::new(None);

/// Sends every log line of the daemon to `writer` instead of stderr, from
/// now on and for the whole process (the log is the process's, as stderr
/// is). For tests, and for a program that runs the daemon in process and
/// keeps its own log.
pub fn log_to(writer: impl Write + Send + 'static) {
    *SINK.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(writer));
}

/// Makes this module the `log` facade's logger, for `info` and above; a
/// logger set before (by the program that runs the daemon) is kept.
pub(crate) fn install() {
    if ::log::set_logger(&FACADE).is_ok() {
        ::log::set_max_level(::log::LevelFilter::Info);
    }
}

fn now() -> Timestamp {
    let since_epoch =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
}

/// Writes one log line: the event `message` and its fields.
pub(crate) fn log(level: Level, message: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
    write_line(&line(now(), level, message, fields));
}

fn write_line(line: &str) {
    let mut sink = SINK.lock().unwrap_or_else(PoisonError::into_inner);
    match sink.as_mut() {
        Some(writer) => {
            // A log that cannot be written has nowhere to say so.
            let _ = writeln!(writer, "{line}");
            let _ = writer.flush();
        }
        None => eprintln!("{line}"),
    }
}

fn line(
    at: Timestamp,
    level: Level,
    message: &str,
    fields: &[(&str, &dyn std::fmt::Display)],
) -> String {
    let mut out = format!("ts={at} level={} msg={}", level.as_str(), quote(message));
    for (key, value) in fields {
        let _ = write!(out, " {key}={}", quote(&value.to_string()));
    }
    out
}

/// The `log` facade's records of autopatch's crates, as lines.
struct Facade;

static FACADE: Facade = Facade;

impl ::log::Log for Facade {
    fn enabled(&self, metadata: &::log::Metadata<'_>) -> bool {
        metadata.level() <= ::log::Level::Info && metadata.target().starts_with("autopatch")
    }

    fn log(&self, record: &::log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        write_line(&record_line(now(), record));
    }

    fn flush(&self) {}
}

/// A record as a line: its message, then its key-value pairs in order.
fn record_line(at: Timestamp, record: &::log::Record<'_>) -> String {
    let level = match record.level() {
        ::log::Level::Error => Level::Error,
        ::log::Level::Warn => Level::Warn,
        _ => Level::Info,
    };
    let mut pairs = Pairs(Vec::new());
    // Visiting collects into a vector: it cannot fail.
    let _ = record.key_values().visit(&mut pairs);
    let fields: Vec<(&str, &dyn std::fmt::Display)> = pairs
        .0
        .iter()
        .map(|(key, value)| (key.as_str(), value as &dyn std::fmt::Display))
        .collect();
    line(at, level, &record.args().to_string(), &fields)
}

struct Pairs(Vec<(String, String)>);

impl<'kvs> ::log::kv::VisitSource<'kvs> for Pairs {
    fn visit_pair(
        &mut self,
        key: ::log::kv::Key<'kvs>,
        value: ::log::kv::Value<'kvs>,
    ) -> Result<(), ::log::kv::Error> {
        self.0.push((key.as_str().to_owned(), value.to_string()));
        Ok(())
    }
}

/// A logfmt value: bare when it is one plain word, else in double quotes
/// with `"`, `\` and line breaks escaped.
fn quote(value: &str) -> String {
    let bare = !value.is_empty()
        && value.chars().all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=');
    if bare {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_logfmt() {
        let text = line(
            Timestamp(1_795_524_896_789),
            Level::Warn,
            "request failed",
            &[
                ("operation", &"CreateStack"),
                ("status", &400),
                ("message", &"a.yml:1:2: error: \"x\" is\nwrong"),
                ("empty", &""),
            ],
        );
        assert_eq!(
            text,
            r#"ts=2026-11-24T12:54:56.789Z level=warn msg="request failed" operation=CreateStack status=400 message="a.yml:1:2: error: \"x\" is\nwrong" empty="""#
        );
    }

    #[test]
    fn facade_records_are_lines_with_their_pairs_as_fields() {
        let reason = String::from("create engine network autopatch-vpc-1: no engine");
        let pairs: [(&str, ::log::kv::Value<'_>); 3] = [
            ("stack", ::log::kv::Value::from("net")),
            ("logical_id", ::log::kv::Value::from("Vpc")),
            ("reason", ::log::kv::Value::from(reason.as_str())),
        ];
        let record = ::log::Record::builder()
            .level(::log::Level::Warn)
            .target("autopatch_stacks::operation")
            .args(format_args!("resource failed"))
            .key_values(&pairs)
            .build();
        assert_eq!(
            record_line(Timestamp(1_795_524_896_789), &record),
            r#"ts=2026-11-24T12:54:56.789Z level=warn msg="resource failed" stack=net logical_id=Vpc reason="create engine network autopatch-vpc-1: no engine""#
        );
        let enabled = |target: &str, level: ::log::Level| {
            ::log::Log::enabled(
                &Facade,
                &::log::Metadata::builder().target(target).level(level).build(),
            )
        };
        assert!(enabled("autopatch_fleet::controller", ::log::Level::Info));
        assert!(!enabled("autopatch_fleet::controller", ::log::Level::Debug));
        assert!(!enabled("hyper_util::client", ::log::Level::Warn), "other crates' records");
    }
}
