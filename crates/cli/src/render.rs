//! Output: data to stdout as text or JSON, errors and progress to stderr.
//! No meaning by colour alone; no colour at all for now.

#![expect(clippy::print_stdout, clippy::print_stderr, reason = "this module is the CLI's output")]

use std::process::ExitCode;

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
}

impl CliError {
    pub(crate) fn new(message: impl Into<String>) -> CliError {
        CliError { message: message.into(), hint: None, code: 2, diagnostics: false }
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }

    /// Every problem of an invalid document, one per line.
    pub(crate) fn from_diagnostics(diagnostics: autopatch_documents::Diagnostics) -> CliError {
        CliError { diagnostics: true, ..CliError::new(diagnostics.to_string()) }
    }

    pub(crate) fn from_registry(error: autopatch_imagebuilder::RegistryError) -> CliError {
        match error {
            autopatch_imagebuilder::RegistryError::Invalid(diagnostics) => {
                CliError::from_diagnostics(diagnostics)
            }
            error => CliError::from_error(error),
        }
    }

    /// The error with its whole cause chain.
    pub(crate) fn from_error(error: impl std::error::Error) -> CliError {
        CliError::new(autopatch_imagebuilder::error_chain(&error))
    }
}

pub(crate) fn fail(message: &str, hint: Option<&str>) -> ExitCode {
    eprintln!("error: {message}");
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
    ExitCode::from(2)
}

pub(crate) fn report(error: &CliError) -> ExitCode {
    if error.diagnostics {
        eprintln!("{}", error.message);
    } else {
        eprintln!("error: {}", error.message);
    }
    if let Some(hint) = &error.hint {
        eprintln!("hint: {hint}");
    }
    ExitCode::from(error.code)
}

pub(crate) fn json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

pub(crate) fn line(text: &str) {
    println!("{text}");
}

pub(crate) fn note(text: &str) {
    eprintln!("{text}");
}

/// Prints a table with aligned columns.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let render = |cells: Vec<String>| {
        let mut out = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        out
    };
    println!("{}", render(header.iter().map(|h| h.to_string()).collect()));
    for row in rows {
        println!("{}", render(row.clone()));
    }
}

/// Live build progress on stderr: a line per state, step start and end.
pub(crate) struct ProgressPrinter {
    pub(crate) verbose: bool,
}

impl Progress for ProgressPrinter {
    fn event(&self, event: BuildEvent) {
        match event {
            BuildEvent::State { state, reason } => match reason {
                Some(reason) => eprintln!("==> {state}: {reason}"),
                None => eprintln!("==> {state}"),
            },
            BuildEvent::StageStarted { stage, container } => {
                eprintln!(
                    "    {stage} stage in container {}",
                    &container[..container.len().min(12)]
                )
            }
            BuildEvent::StepStarted { component, phase, step, action, attempt } => {
                let attempt =
                    if attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
                eprintln!("    {component} {phase} {step} [{action}]{attempt} ...");
            }
            BuildEvent::StepOutput { text } => {
                if self.verbose {
                    for line in text.lines() {
                        eprintln!("      | {line}");
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
                eprintln!(
                    "    {component} {phase} {step}: {mark} ({:.1} s{code})",
                    duration_ms as f64 / 1000.0
                );
            }
            BuildEvent::Rebooting { step } => {
                eprintln!("    {step} asked for a reboot (exit 194): restarting the container")
            }
            BuildEvent::Timing { what, duration_ms } => {
                eprintln!("    {what}: {:.1} s", duration_ms as f64 / 1000.0)
            }
            BuildEvent::Note { message } => eprintln!("    {message}"),
        }
    }
}
