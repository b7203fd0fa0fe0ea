//! One daemon per state directory: [`InstanceLock`] holds an exclusive lock
//! on `<state_dir>/autopatch.lock` and writes `<state_dir>/autopatch.pid`.
//!
//! Design note: the lock is the truth, the pid file only names the holder.
//! The kernel releases the lock when the process ends, however it ends, so a
//! daemon killed with `kill -9` never blocks the next one; its pid file and
//! socket are then stale, and the next daemon overwrites the one and
//! replaces the other. The lock file itself is never removed (removing it
//! would let two daemons lock two different files).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::protocol::{LOCK_FILE, PID_FILE};

/// Why this process cannot be the state directory's daemon.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("another autopatch daemon{} is already serving {}", pid_text(*.pid), .state_dir.display())]
    AlreadyRunning { state_dir: PathBuf, pid: Option<u32> },
    #[error("failed to {action} {}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn pid_text(pid: Option<u32>) -> String {
    pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
}

/// Held while this process is the state directory's daemon; dropping it
/// removes the pid file, then releases the lock.
#[derive(Debug)]
pub struct InstanceLock {
    pid_path: PathBuf,
    /// Kept open: the lock lives as long as this handle.
    _file: File,
}

impl InstanceLock {
    /// Takes the state directory's lock and writes this process's pid, or
    /// says which daemon already holds it.
    pub fn acquire(state_dir: &Path) -> Result<InstanceLock, InstanceError> {
        let lock_path = state_dir.join(LOCK_FILE);
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| InstanceError::Io { action, path, source }
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open the lock file", &lock_path))?;
        // A daemon killed a moment ago holds the lock until its last thread
        // is gone: when the pid file names a process that has ended, wait
        // (a few seconds at most) for the lock to come free.
        let mut attempts = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let holder = read_pid(state_dir);
                    let ending = holder.is_some_and(|pid| !process_running(pid));
                    attempts += 1;
                    if !ending || attempts > 50 {
                        return Err(InstanceError::AlreadyRunning {
                            state_dir: state_dir.to_path_buf(),
                            pid: holder,
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(TryLockError::Error(source)) => {
                    return Err(InstanceError::Io { action: "lock", path: lock_path, source });
                }
            }
        }
        let pid_path = state_dir.join(PID_FILE);
        let temporary = state_dir.join(format!(".{PID_FILE}.{}", std::process::id()));
        (|| {
            let mut pid_file = File::create(&temporary)?;
            writeln!(pid_file, "{}", std::process::id())?;
            std::fs::rename(&temporary, &pid_path)
        })()
        .map_err(io("write the pid file", &pid_path))?;
        Ok(InstanceLock { pid_path, _file: file })
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        // Before the lock is released (the file closes after this), so a
        // pid file never names a process that no longer holds the lock
        // while a new daemon holds it.
        let _ = std::fs::remove_file(&self.pid_path);
    }
}

/// The pid in `<state_dir>/autopatch.pid`, if it is there and readable.
pub fn read_pid(state_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(state_dir.join(PID_FILE)).ok()?.trim().parse().ok()
}

/// Whether a process with that id is running (a zombie is not: it has ended
/// and only waits for its parent to read its status).
pub fn process_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so the
    // state is the first field after the last `)`.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X" | "x") | None)
}
