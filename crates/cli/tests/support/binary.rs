//! The `autopatch` binary under test, run on a state directory of the test's
//! own, and what it printed.

use std::path::Path;
use std::process::{Command, Output};

/// A temporary state directory the binary runs on.
pub(crate) struct Cli {
    pub(crate) state: tempfile::TempDir,
}

impl Cli {
    pub(crate) fn new() -> Cli {
        Cli { state: tempfile::tempdir().expect("a temporary state directory") }
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        autopatch(self.state.path(), args)
    }

    pub(crate) fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = command(self.state.path(), args);
        command.envs(env.iter().copied());
        command.output().expect("run autopatch")
    }

    /// Writes `text` to the file `name` in the state directory; its path.
    pub(crate) fn write(&self, name: &str, text: &str) -> String {
        let path = self.state.path().join(name);
        std::fs::write(&path, text).expect("write a test file");
        path.display().to_string()
    }
}

/// `autopatch --state-dir STATE ARGS...`, not started yet.
pub(crate) fn command(state: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_autopatch"));
    command.arg("--state-dir").arg(state).args(args);
    command
}

/// Runs `autopatch --state-dir STATE ARGS...` to its end.
pub(crate) fn autopatch(state: &Path, args: &[&str]) -> Output {
    command(state, args).output().expect("run autopatch")
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}
