//! Output: data to stdout as text or JSON, errors and progress to stderr.
//! No meaning by colour alone; no colour at all for now.
//!
//! A closed output never panics: progress and errors that cannot be written
//! to stderr are dropped (the work goes on: a build is never orphaned because
//! its terminal went away), and when stdout is closed (`... | head -1`) the
//! process ends at once with 141, as if killed by SIGPIPE. Commands print to
//! stdout only once their work is done, so nothing is left running.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use autopatch_imagebuilder::{BuildEvent, Progress};
use autopatch_model::StepStatus;

/// An error for the user: what failed, and optionally what to do.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
    pub(crate) code: u8,
    /// The message is diagnostics (`file:line:col: error: ...` lines) and
    /// is printed as it is, without another `error:` prefix.
    pub(crate) diagnostics: bool,
    /// The problems of an invalid document, for `-o json` (see [`problems_json`]).
    pub(crate) problems: Option<autopatch_documents::Diagnostics>,
}

impl CliError {
    pub(crate) fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            hint: None,
            code: 2,
            diagnostics: false,
            problems: None,
        }
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }

    /// Every problem of an invalid document, one per line.
    pub(crate) fn from_diagnostics(diagnostics: autopatch_documents::Diagnostics) -> CliError {
        CliError {
            diagnostics: true,
            problems: Some(diagnostics.clone()),
            ..CliError::new(diagnostics.to_string())
        }
    }

    pub(crate) fn from_registry(error: autopatch_imagebuilder::RegistryError) -> CliError {
        match error {
            autopatch_imagebuilder::RegistryError::Invalid(diagnostics) => {
                CliError::from_diagnostics(diagnostics)
            }
            error => CliError::from_error(error),
        }
    }

    pub(crate) fn with_code(mut self, code: u8) -> CliError {
        self.code = code;
        self
    }

    /// A failed call to the daemon (exit 1). The daemon's refusals print their
    /// message (template diagnostics as they are, one per line); everything
    /// else prints its cause chain and, when there is one, what to do.
    pub(crate) fn from_client(error: autopatch_daemon::ClientError, state_dir: &Path) -> CliError {
        use autopatch_daemon::ClientError;
        let error = match error {
            ClientError::Api { error, .. } if is_diagnostics(&error.message) => {
                CliError { diagnostics: true, ..CliError::new(error.message) }
            }
            ClientError::Api { error, .. } => {
                CliError::new(format!("{} ({})", error.message, error.code))
            }
            ClientError::NotRunning { .. } => {
                let hint = error.hint().unwrap_or_default();
                CliError::new(error.to_string()).with_hint(hint)
            }
            error @ (ClientError::Connect { .. }
            | ClientError::Transport { .. }
            | ClientError::Timeout { .. }) => CliError::from_error(error).with_hint(format!(
                "see the daemon's log: {}",
                state_dir.join("daemon.log").display()
            )),
            error => CliError::from_error(error),
        };
        error.with_code(1)
    }

    /// The error with its whole cause chain.
    pub(crate) fn from_error(error: impl std::error::Error) -> CliError {
        CliError::new(autopatch_imagebuilder::error_chain(&error))
    }
}

/// Whether a message is template diagnostics: its first line is
/// `file:line:col: error: ...`.
pub(crate) fn is_diagnostics(message: &str) -> bool {
    let first = message.lines().next().unwrap_or("");
    let Some((location, _)) = first.split_once(": error: ") else {
        return false;
    };
    let mut parts = location.rsplitn(3, ':');
    let column = parts.next().unwrap_or("");
    let line = parts.next().unwrap_or("");
    let file = parts.next().unwrap_or("");
    let number = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    !file.is_empty() && number(line) && number(column)
}

/// An error as `-o json` prints it on stdout: `{"error": {"message",
/// "hint", "code"}}`, where `message` is what stderr says after `error: `
/// (or the diagnostics, one per line), `hint` the `hint:` line or null, and
/// `code` the exit code. An invalid document adds its problems beside it,
/// in the shape of a valid document's `validate` answer with `"valid":
/// false`: `{"file", "valid": false, "problems": [{"file", "line",
/// "column", "message"}], "error": {...}}`.
pub(crate) fn error_json(error: &CliError) -> serde_json::Value {
    let mut value = match &error.problems {
        Some(diagnostics) => problems_json(diagnostics),
        None => serde_json::json!({}),
    };
    value["error"] = serde_json::json!({
        "message": error.message,
        "hint": error.hint,
        "code": error.code,
    });
    value
}

/// An invalid document's problems: `{"file", "valid": false, "problems":
/// [{"file", "line", "column", "message"}]}`.
fn problems_json(diagnostics: &autopatch_documents::Diagnostics) -> serde_json::Value {
    let file = diagnostics.iter().next().map(|diagnostic| diagnostic.file.clone());
    let problems: Vec<serde_json::Value> = diagnostics
        .iter()
        .map(|diagnostic| {
            serde_json::json!({
                "file": diagnostic.file,
                "line": diagnostic.span.start.line,
                "column": diagnostic.span.start.column,
                "message": diagnostic.message,
            })
        })
        .collect();
    serde_json::json!({"file": file, "valid": false, "problems": problems})
}

/// Reports a failed command: the error always goes to stderr; with `-o
/// json`, stdout gets it too, as one JSON object ([`error_json`]), so a
/// script always has something to parse.
pub(crate) fn report_as(error: &CliError, json: bool) -> ExitCode {
    if json {
        self::json(&error_json(error));
    }
    report(error)
}

pub(crate) fn report(error: &CliError) -> ExitCode {
    if error.diagnostics {
        note(&error.message);
    } else {
        note(&format!("error: {}", error.message));
    }
    if let Some(hint) = &error.hint {
        note(&format!("hint: {hint}"));
    }
    ExitCode::from(error.code)
}

/// The exit code when stdout is closed under the command: 128 + SIGPIPE, what
/// a shell reports for a process SIGPIPE ended.
pub(crate) const STDOUT_CLOSED: i32 = 141;

pub(crate) fn json(value: &serde_json::Value) {
    line(&serde_json::to_string_pretty(value).unwrap_or_default());
}

/// One line of data on stdout. A closed stdout ends the process (141); any
/// other write error too (2), with a message on stderr.
pub(crate) fn line(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(STDOUT_CLOSED);
        }
        note(&format!("error: cannot write to stdout: {error}"));
        std::process::exit(2);
    }
}

/// One line of progress or of an error on stderr; dropped when stderr is
/// closed or broken.
pub(crate) fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Prints a table with aligned columns.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    for text in table_lines(header, rows) {
        line(&text);
    }
}

/// The lines of a table with aligned columns.
pub(crate) fn table_lines(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    aligned(Some(&header), rows)
}

/// Prints rows with aligned columns and no header (trailing empty cells
/// leave no trailing spaces).
pub(crate) fn rows(rows: &[Vec<String>]) {
    for text in aligned(None, rows) {
        line(&text);
    }
}

fn aligned(header: Option<&Vec<String>>, rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = Vec::new();
    for row in header.into_iter().chain(rows) {
        for (index, cell) in row.iter().enumerate() {
            if widths.len() <= index {
                widths.push(0);
            }
            widths[index] = widths[index].max(cell.chars().count());
        }
    }
    let render = |cells: &Vec<String>| {
        let mut out = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.trim_end().to_owned()
    };
    header.into_iter().chain(rows).map(render).collect()
}

/// Live build progress on stderr: a line per state, step start and end.
pub(crate) struct ProgressPrinter {
    verbose: bool,
    /// Set by the first build state: a build row exists from then on.
    build_started: AtomicBool,
    /// Set once a final state was printed with its reason: the result need
    /// not print the reason (often many lines) again.
    end_shown: AtomicBool,
}

impl ProgressPrinter {
    pub(crate) fn new(verbose: bool) -> ProgressPrinter {
        ProgressPrinter {
            verbose,
            build_started: AtomicBool::new(false),
            end_shown: AtomicBool::new(false),
        }
    }

    /// Whether a build was created (its first state reported).
    pub(crate) fn build_started(&self) -> bool {
        self.build_started.load(Ordering::SeqCst)
    }

    /// Whether a final state was printed, with its reason if it had one.
    pub(crate) fn end_shown(&self) -> bool {
        self.end_shown.load(Ordering::SeqCst)
    }
}

/// `eprintln!` that drops what a closed or broken stderr cannot take.
macro_rules! progress {
    ($($arg:tt)*) => { note(&format!($($arg)*)) };
}

impl Progress for ProgressPrinter {
    fn event(&self, event: BuildEvent) {
        match event {
            BuildEvent::State { state, reason } => {
                self.build_started.store(true, Ordering::SeqCst);
                if state.is_terminal() {
                    self.end_shown.store(true, Ordering::SeqCst);
                }
                match reason {
                    Some(reason) => progress!("==> {state}: {reason}"),
                    None => progress!("==> {state}"),
                }
            }
            BuildEvent::StageStarted { stage, container } => {
                progress!(
                    "    {stage} stage in container {}",
                    &container[..container.len().min(12)]
                )
            }
            BuildEvent::StepStarted { component, phase, step, action, attempt } => {
                let attempt =
                    if attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
                progress!("    {component} {phase} {step} [{action}]{attempt} ...");
            }
            BuildEvent::StepOutput { text } => {
                if self.verbose {
                    for line in text.lines() {
                        progress!("      | {line}");
                    }
                }
            }
            BuildEvent::StepFinished { component, phase, step, status, exit_code, duration_ms } => {
                let mark = match status {
                    StepStatus::Success => "ok",
                    StepStatus::Ignored => "ignored",
                    _ => "FAILED",
                };
                let code = exit_code.map(|c| format!(", exit {c}")).unwrap_or_default();
                progress!(
                    "    {component} {phase} {step}: {mark} ({:.1} s{code})",
                    duration_ms as f64 / 1000.0
                );
            }
            BuildEvent::Rebooting { step } => {
                progress!("    {step} asked for a reboot (exit 194): restarting the container")
            }
            BuildEvent::Timing { what, duration_ms } => {
                progress!("    {what}: {:.1} s", duration_ms as f64 / 1000.0)
            }
            BuildEvent::Note { message } => progress!("    {message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_diagnostics;

    #[test]
    fn diagnostics_are_told_from_other_messages() {
        assert!(is_diagnostics(
            "/t/web.yml:3:5: error: unknown key \"Typo\"\n/t/web.yml:9:1: error: x"
        ));
        assert!(is_diagnostics("web.yml:10:12: error: x"));
        assert!(!is_diagnostics("Stack with id web does not exist"));
        assert!(!is_diagnostics("template: error: x"));
        assert!(!is_diagnostics("a:b:c: error: x"));
        assert!(!is_diagnostics(""));
    }
}
