//! Structured log lines on stderr, one event per line in logfmt:
//! `ts=2026-11-24T12:54:56.789Z level=info msg="listening" socket=/x/autopatch.sock`.
//!
//! This module is also the one place the daemon crate reads the wall clock
//! (for the `ts` field).

#![expect(clippy::print_stderr, reason = "this module is the daemon's log")]

use std::fmt::Write as _;

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

fn now() -> Timestamp {
    let since_epoch =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
}

/// Writes one log line: the event `message` and its fields.
pub(crate) fn log(level: Level, message: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
    eprintln!("{}", line(now(), level, message, fields));
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
}
