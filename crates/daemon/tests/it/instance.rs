//! One daemon per state directory: the lock, the pid file, and telling a
//! running process from an ended one.

use autopatch_daemon::{InstanceError, InstanceLock, process_running, read_pid};

#[test]
fn a_second_daemon_is_refused_naming_the_running_pid_until_the_first_lets_go() {
    let state = tempfile::tempdir().unwrap();
    let first = InstanceLock::acquire(state.path()).unwrap();
    assert_eq!(read_pid(state.path()), Some(std::process::id()));

    // The lock belongs to the open file, so a second acquire in this same
    // process conflicts exactly as another process's would.
    let error = InstanceLock::acquire(state.path()).unwrap_err();
    assert!(
        matches!(error, InstanceError::AlreadyRunning { pid: Some(pid), .. } if pid == std::process::id()),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "another autopatch daemon (pid {}) is already serving {}",
            std::process::id(),
            state.path().display()
        )
    );

    drop(first);
    assert_eq!(read_pid(state.path()), None, "the pid file goes with the daemon");
    let second = InstanceLock::acquire(state.path()).unwrap();
    assert_eq!(read_pid(state.path()), Some(std::process::id()));
    drop(second);
}

#[test]
fn a_stale_pid_file_does_not_block_a_new_daemon() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("autopatch.pid"), "999999999\n").unwrap();
    let lock = InstanceLock::acquire(state.path()).unwrap();
    assert_eq!(read_pid(state.path()), Some(std::process::id()));
    drop(lock);
}

#[test]
fn an_ended_process_is_not_running_even_before_it_is_reaped() {
    assert!(process_running(std::process::id()));
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    // Not waited for yet: once it exits it is a zombie, which has ended.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while process_running(pid) {
        assert!(std::time::Instant::now() < deadline, "`true` did not end");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "a zombie until reaped");
    child.wait().unwrap();
    assert!(!process_running(pid));
}
