//! How autopatch's own scripts (the UpdateOS action, the pending-update
//! check) refresh apt's package indexes.
//!
//! `apt-get update` exits 0 when a source cannot be reached: it only warns
//! ("Failed to fetch", "Some index files failed to download") and keeps the
//! old indexes, or none. A `dist-upgrade` after it then finds nothing to do,
//! which for a patching tool reads as "already current": an unreachable
//! mirror would publish a "patched" image that is not, or skip a build that
//! was due. So here every failed source is an error: apt 2.1.16 and later
//! (Debian 12, Ubuntu 22.04) honour `APT::Update::Error-Mode=any`; older apt
//! ignores the option, and the warning lines it prints instead are caught.

/// A POSIX sh function, `apt_update [apt-get option]...`: one `apt-get
/// update` bounded by 180 s, its diagnostics on stderr, exiting non-zero
/// (100, apt's code) when any source failed. Callers define it at the top of
/// their script and redirect its stdout as they need.
pub(crate) const APT_UPDATE_FUNCTION: &str = r#"apt_update() {
  apt_log=$(mktemp)
  apt_status=0
  timeout 180 apt-get -o Acquire::Retries=3 -o APT::Update::Error-Mode=any "$@" update 2>"$apt_log" || apt_status=$?
  cat "$apt_log" >&2
  if [ "$apt_status" = 0 ] && grep -Eq '^[WE]: (Failed to fetch|Some index files failed to download)' "$apt_log"; then
    apt_status=100
  fi
  rm -f "$apt_log"
  return "$apt_status"
}
"#;

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use super::APT_UPDATE_FUNCTION;

    /// Runs `apt_update -qq` with a fake `apt-get` first on PATH that writes
    /// `stderr`, exits `exit`, and records its arguments. Returns the exit
    /// status, what the caller saw on stderr, and the arguments.
    fn run_with_fake_apt(stderr: &str, exit: i32) -> (i32, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("apt-get");
        let args = dir.path().join("args");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho \"$@\" > '{}'\nprintf '%s' '{stderr}' >&2\nexit {exit}\n",
                args.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap());
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!("set -eu\n{APT_UPDATE_FUNCTION}apt_update -qq"))
            .env("PATH", path)
            .output()
            .unwrap();
        let recorded = std::fs::read_to_string(&args).unwrap_or_default();
        (
            output.status.code().unwrap(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
            recorded.trim().to_owned(),
        )
    }

    #[test]
    fn a_clean_update_succeeds_and_asks_apt_to_fail_on_any_source() {
        let (status, _, args) = run_with_fake_apt("", 0);
        assert_eq!(status, 0);
        assert_eq!(
            args, "-o Acquire::Retries=3 -o APT::Update::Error-Mode=any -qq update",
            "the caller's options come before the command"
        );
    }

    #[test]
    fn an_old_apt_that_only_warns_about_an_unreachable_source_fails() {
        let warning = "W: Failed to fetch http://127.0.0.1:9/debian/dists/bookworm/InRelease  \
                       Could not connect to 127.0.0.1:9\n\
                       W: Some index files failed to download. They have been ignored, or old ones used instead.\n";
        let (status, stderr, _) = run_with_fake_apt(warning, 0);
        assert_eq!(status, 100);
        assert!(
            stderr.contains("Could not connect to 127.0.0.1:9"),
            "the reason is shown: {stderr}"
        );
    }

    #[test]
    fn apt_s_own_failure_is_passed_on() {
        let (status, stderr, _) = run_with_fake_apt("E: Failed to fetch http://x/InRelease\n", 100);
        assert_eq!(status, 100);
        assert!(stderr.contains("E: Failed to fetch"));
    }

    #[test]
    fn other_warnings_do_not_fail_the_update() {
        let warning =
            "W: http://x/dists/bookworm/InRelease: Key is stored in legacy trusted.gpg keyring\n";
        let (status, _, _) = run_with_fake_apt(warning, 0);
        assert_eq!(status, 0);
    }
}
