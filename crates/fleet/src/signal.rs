//! cfn-signal: the script every instance carries and the parser for what it
//! writes.
//!
//! `scripts/cfn-signal.sh` takes the AWS helper's options and writes one file
//! per call into the instance folder's `signals/` directory, atomically
//! (temporary file, then rename), as `key=value` lines. [`parse_signal`]
//! reads such a file back. The format is versioned (`version=1`); unknown
//! keys are ignored so the script can say more later.

use std::fmt;

/// The script installed as `bin/cfn-signal` in every instance folder.
pub(crate) const CFN_SIGNAL_SCRIPT: &str = include_str!("scripts/cfn-signal.sh");

/// A CloudFormation resource signal's status (`SignalResource`'s `Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalStatus {
    Success,
    Failure,
}

impl SignalStatus {
    /// `SUCCESS` or `FAILURE`, as CloudFormation names them.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalStatus::Success => "SUCCESS",
            SignalStatus::Failure => "FAILURE",
        }
    }
}

impl fmt::Display for SignalStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One cfn-signal call made by an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// The instance that sent it (from its metadata).
    pub instance_id: String,
    /// `--stack`: the stack name or id.
    pub stack: String,
    /// `--resource`: the logical id of the signalled resource.
    pub resource: String,
    pub status: SignalStatus,
    /// `--reason`, with newlines flattened to spaces.
    pub reason: Option<String>,
    /// `--id`, by default the instance id.
    pub unique_id: String,
    /// `--region`.
    pub region: Option<String>,
}

/// Why a signal file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalParseError {
    #[error("line {line} of the signal is not key=value")]
    MalformedLine { line: usize },
    #[error("the signal has {key} twice")]
    DuplicateKey { key: String },
    #[error("the signal has no {key}")]
    MissingKey { key: &'static str },
    #[error("the signal's status {status:?} is neither SUCCESS nor FAILURE")]
    UnknownStatus { status: String },
    #[error("the signal's format version {version:?} is not supported (expected 1)")]
    UnsupportedVersion { version: String },
}

/// Parses a signal file written by the cfn-signal script.
pub fn parse_signal(text: &str) -> Result<Signal, SignalParseError> {
    let mut fields: Vec<(&str, &str)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let (key, value) =
            line.split_once('=').ok_or(SignalParseError::MalformedLine { line: index + 1 })?;
        if fields.iter().any(|(existing, _)| *existing == key) {
            return Err(SignalParseError::DuplicateKey { key: key.to_string() });
        }
        fields.push((key, value));
    }
    let field = |key: &str| fields.iter().find(|(name, _)| *name == key).map(|(_, value)| *value);
    let required = |key: &'static str| {
        field(key)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
            .ok_or(SignalParseError::MissingKey { key })
    };
    if let Some(version) = field("version")
        && version != "1"
    {
        return Err(SignalParseError::UnsupportedVersion { version: version.to_string() });
    }
    let status = match field("status") {
        Some("SUCCESS") => SignalStatus::Success,
        Some("FAILURE") => SignalStatus::Failure,
        Some(other) => return Err(SignalParseError::UnknownStatus { status: other.to_string() }),
        None => return Err(SignalParseError::MissingKey { key: "status" }),
    };
    let optional = |key: &str| field(key).filter(|value| !value.is_empty()).map(str::to_string);
    Ok(Signal {
        instance_id: required("instance_id")?,
        stack: required("stack")?,
        resource: required("resource")?,
        status,
        reason: optional("reason"),
        unique_id: required("unique_id")?,
        region: optional("region"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Signal, SignalParseError> {
        parse_signal(text)
    }

    #[test]
    fn a_full_signal_parses() {
        let text = "version=1\ninstance_id=i-0123456789abcdef0\nstack=arn:aws:cloudformation:local:0:stack/app/1\n\
                    resource=Group\nstatus=FAILURE\nunique_id=custom\nregion=local\n\
                    reason=exit=3: a = b\nexit_code=3\ntime=2026-11-24T14:06:25Z\n";
        assert_eq!(
            check(text),
            Ok(Signal {
                instance_id: "i-0123456789abcdef0".into(),
                stack: "arn:aws:cloudformation:local:0:stack/app/1".into(),
                resource: "Group".into(),
                status: SignalStatus::Failure,
                reason: Some("exit=3: a = b".into()),
                unique_id: "custom".into(),
                region: Some("local".into()),
            })
        );
    }

    #[test]
    fn optional_keys_may_be_absent_and_unknown_keys_are_ignored() {
        let signal = check(
            "instance_id=i-1\nstack=s\nresource=R\nstatus=SUCCESS\nunique_id=i-1\nfuture=yes",
        )
        .expect("parses");
        assert_eq!(
            (signal.status, signal.reason, signal.region),
            (SignalStatus::Success, None, None)
        );
    }

    /// Runs the real cfn-signal script with `sh`, in an instance folder of
    /// its own; returns the exit code, stderr and the signals it wrote.
    fn run_script(arguments: &[&str]) -> (i32, String, Vec<Signal>) {
        let folder = tempfile::tempdir().expect("temporary directory");
        let meta_data = folder.path().join("imds/latest/meta-data");
        fs_err::create_dir_all(&meta_data).expect("meta-data directory");
        fs_err::write(meta_data.join("instance-id"), "i-0123456789abcdef0").expect("instance id");
        let script = folder.path().join("cfn-signal");
        fs_err::write(&script, CFN_SIGNAL_SCRIPT).expect("script");
        let output = std::process::Command::new("sh")
            .arg(&script)
            .args(arguments)
            .env("AUTOPATCH_INSTANCE_DIR", folder.path())
            .output()
            .expect("sh runs");
        let mut names: Vec<String> = fs_err::read_dir(folder.path().join("signals"))
            .map(|entries| {
                entries
                    .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let signals = names
            .iter()
            .map(|name| {
                assert!(name.ends_with(".signal"), "only complete files remain: {name}");
                let text =
                    fs_err::read_to_string(folder.path().join("signals").join(name)).expect("read");
                parse_signal(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
            })
            .collect();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code().unwrap_or(-1), stderr, signals)
    }

    #[test]
    fn the_script_writes_what_the_parser_reads() {
        let (code, stderr, signals) =
            run_script(&["-e", "0", "--stack", "s", "--resource", "Group", "--region", "local"]);
        assert_eq!((code, stderr.as_str()), (0, ""));
        assert_eq!(
            signals,
            [Signal {
                instance_id: "i-0123456789abcdef0".into(),
                stack: "s".into(),
                resource: "Group".into(),
                status: SignalStatus::Success,
                reason: None,
                unique_id: "i-0123456789abcdef0".into(),
                region: Some("local".into()),
            }]
        );
    }

    #[test]
    fn the_script_decides_the_status_like_the_aws_helper() {
        let cases: [(&[&str], SignalStatus); 8] = [
            (&["-e", "3"], SignalStatus::Failure),
            (&["-e3"], SignalStatus::Failure),
            (&["--exit-code=0"], SignalStatus::Success),
            (&[], SignalStatus::Success),
            (&["--success", "false"], SignalStatus::Failure),
            (&["-s", "TRUE"], SignalStatus::Success),
            (&["--success=False"], SignalStatus::Failure),
            (&["-e", "0", "--success", "false"], SignalStatus::Success),
        ];
        for (options, expected) in cases {
            let mut arguments = vec!["--stack", "s", "--resource", "R"];
            arguments.extend_from_slice(options);
            let (code, stderr, signals) = run_script(&arguments);
            assert_eq!(code, 0, "{options:?}: {stderr}");
            let statuses: Vec<SignalStatus> = signals.iter().map(|signal| signal.status).collect();
            assert_eq!(statuses, [expected], "{options:?}");
        }
    }

    #[test]
    fn odd_reasons_and_ids_round_trip_flattened() {
        let reasons = [
            (r"a literal \n stays", r"a literal \n stays"),
            ("multi\nline\r\nreason", "multi line  reason"),
            ("a=b = c", "a=b = c"),
            ("$(whoami) `id` ${HOME}", "$(whoami) `id` ${HOME}"),
            ("%s %d %% \\ \"quoted\" 'single'", "%s %d %% \\ \"quoted\" 'single'"),
            ("-n leading dash", "-n leading dash"),
            ("  spaced\tand tabbed  ", "  spaced\tand tabbed  "),
            ("unicode é ✓", "unicode é ✓"),
        ];
        for (given, expected) in reasons {
            let (code, stderr, signals) = run_script(&[
                "--stack",
                "arn:aws:cloudformation:local:0:stack/app/1",
                "--resource",
                "Group",
                "-e",
                "1",
                "--reason",
                given,
                "-i",
                "custom id=1",
            ]);
            assert_eq!(code, 0, "{given:?}: {stderr}");
            assert_eq!(signals.len(), 1, "{given:?}");
            assert_eq!(signals[0].reason.as_deref(), Some(expected), "{given:?}");
            assert_eq!(signals[0].unique_id, "custom id=1");
            assert_eq!(signals[0].stack, "arn:aws:cloudformation:local:0:stack/app/1");
        }
    }

    #[test]
    fn the_script_refuses_bad_options_with_its_usage_and_writes_nothing() {
        let cases: [&[&str]; 6] = [
            &["--stack", "s", "--resource", "R", "--bogus"],
            &["--resource", "R"],
            &["--stack", "s"],
            &["--stack", "s", "--resource", "R", "--success", "maybe"],
            &["--stack", "s", "--resource", "R", "-e"],
            &["https://cloudformation-waitcondition.example/handle"],
        ];
        for arguments in cases {
            let (code, stderr, signals) = run_script(arguments);
            assert_eq!(code, 1, "{arguments:?}");
            assert!(stderr.starts_with("cfn-signal: error: "), "{arguments:?}: {stderr}");
            assert!(stderr.contains("usage: cfn-signal"), "{arguments:?}: {stderr}");
            assert!(signals.is_empty(), "{arguments:?}");
        }
        let (code, stderr, signals) = run_script(&["-h"]);
        assert_eq!((code, stderr.as_str(), signals.len()), (0, "", 0));
        let ignored = [
            "--url",
            "https://x",
            "--access-key",
            "a",
            "--secret-key",
            "b",
            "--role",
            "r",
            "-f",
            "/x",
            "--http-proxy",
            "p",
            "--https-proxy",
            "q",
            "-d",
            "data",
        ];
        let mut arguments = vec!["--stack", "s", "--resource", "R"];
        arguments.extend_from_slice(&ignored);
        let (code, stderr, signals) = run_script(&arguments);
        assert_eq!((code, stderr.as_str(), signals.len()), (0, "", 1), "accepted and ignored");
    }

    #[test]
    fn broken_signals_say_what_is_wrong() {
        let base = "instance_id=i-1\nstack=s\nresource=R\nunique_id=i-1\n";
        let cases = [
            (format!("{base}status=OK\n"), SignalParseError::UnknownStatus { status: "OK".into() }),
            (base.to_string(), SignalParseError::MissingKey { key: "status" }),
            (
                "status=SUCCESS\nstack=s\nresource=R\nunique_id=u\n".to_string(),
                SignalParseError::MissingKey { key: "instance_id" },
            ),
            (
                format!("{base}status=SUCCESS\nstack=other\n"),
                SignalParseError::DuplicateKey { key: "stack".into() },
            ),
            (format!("{base}status=SUCCESS\njunk\n"), SignalParseError::MalformedLine { line: 6 }),
            (
                format!("version=2\n{base}status=SUCCESS\n"),
                SignalParseError::UnsupportedVersion { version: "2".into() },
            ),
            (
                "instance_id=i-1\nstack=\nresource=R\nunique_id=u\nstatus=SUCCESS\n".to_string(),
                SignalParseError::MissingKey { key: "stack" },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(check(&text), Err(expected), "{text:?}");
        }
    }
}
