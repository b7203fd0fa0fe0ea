//! Pending changes from apt's simulation (`apt-get -s dist-upgrade`, `apt-get -s upgrade`,
//! `apt-get -s install`), and whether each comes from a security archive.
//!
//! apt prints one action per line (apt-pkg `pkgSimulate`):
//!
//! ```text
//! Inst libc6 [2.36-9+deb12u4] (2.36-9+deb12u10 Debian:12.11/oldstable, Debian-Security:12/oldstable-security [amd64])
//! Inst libssl3 (3.0.22-1~deb12u2 Debian-Security:12/oldstable-security [amd64])
//! Inst perl [5.36.0-7+deb12u3] (5.36.0-7+deb12u4 Debian-Security:12/oldstable-security [amd64]) []
//! Conf libc6 (2.36-9+deb12u10 Debian:12.11/oldstable [amd64])
//! Remv tzdata [2026b-0+deb12u1]
//! Purg tzdata [2026b-0+deb12u1]
//! ```
//!
//! `Inst` gives installs and version changes, `Remv` and `Purg` removals; `Conf` repeats an `Inst`
//! and is ignored, as is every line that is not an action (progress, summaries).
//!
//! Design note: a line that starts like an action but cannot be read is an error, not ignored,
//! because dropping it would hide a pending (maybe security) update from the caller.

use std::collections::BTreeMap;

use crate::debversion::{DebianVersion, DebianVersionError};

/// One package apt would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChange {
    /// The name as apt prints it (`libc6`; a foreign architecture adds `:i386`).
    pub package: String,
    /// The installed version, if any.
    pub current: Option<String>,
    /// The version apt would install; for a removal, the version being removed.
    pub candidate: String,
    /// Where the candidate comes from, e.g. `Debian:12.11/oldstable` and
    /// `Debian-Security:12/oldstable-security`; empty for removals.
    pub origins: Vec<String>,
    /// The candidate's architecture; `None` for removals.
    pub architecture: Option<String>,
    pub kind: PendingChangeKind,
}

/// What apt would do to a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PendingChangeKind {
    /// Not installed yet.
    Install,
    /// The candidate is newer than the installed version.
    Upgrade,
    /// The candidate is older than the installed version (pinning, `install pkg=version`).
    Downgrade,
    /// The candidate is the installed version (`--reinstall`).
    Reinstall,
    /// `Remv` or `Purg`.
    Remove,
}

impl PendingChange {
    /// Whether any origin is a security archive: its label (before `:`) contains `security` in
    /// any case (`Debian-Security:12/oldstable-security`), or its suite (after the last `/`) ends
    /// with `-security` (`Ubuntu:22.04/jammy-security`).
    pub fn is_security(&self) -> bool {
        self.origins.iter().any(|origin| origin_is_security(origin))
    }
}

fn origin_is_security(origin: &str) -> bool {
    let label = origin.split_once(':').map_or(origin, |(label, _)| label);
    let suite = origin.rsplit_once('/').map_or(origin, |(_, suite)| suite);
    label.to_ascii_lowercase().contains("security") || suite.ends_with("-security")
}

/// Why apt's output could not be read. Line numbers count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AptParseError {
    #[error("line {line}: malformed `{action}` line")]
    Malformed { line: usize, action: String },
    #[error("line {line}: invalid version of package `{package}`")]
    Version {
        line: usize,
        package: String,
        #[source]
        source: DebianVersionError,
    },
}

/// Parses the output of an `apt-get -s` run into one change per package, sorted by package name.
/// The first `Inst`, `Remv` or `Purg` line for a package wins.
pub fn parse_apt_simulation(text: &str) -> Result<Vec<PendingChange>, AptParseError> {
    let mut changes: BTreeMap<String, PendingChange> = BTreeMap::new();
    for (line_idx, line) in text.lines().enumerate() {
        let line_number = line_idx + 1;
        let Some((action, rest)) = line.split_once(' ') else {
            continue;
        };
        let change = match action {
            "Inst" => parse_inst(rest, line_number)?,
            "Remv" | "Purg" => parse_remove(rest, line_number, action)?,
            _ => continue,
        };
        changes.entry(change.package.clone()).or_insert(change);
    }
    Ok(changes.into_values().collect())
}

/// `NAME [CURRENT] (CANDIDATE ORIGIN, ORIGIN [ARCH]) [TRAILER]`, with `[CURRENT]` and the
/// trailer optional.
fn parse_inst(rest: &str, line: usize) -> Result<PendingChange, AptParseError> {
    let malformed = || AptParseError::Malformed { line, action: "Inst".to_owned() };
    let (package, rest) = split_word(rest).ok_or_else(malformed)?;
    let (current, rest) = match rest.strip_prefix('[') {
        Some(bracketed) => {
            let (current, rest) = bracketed.split_once(']').ok_or_else(malformed)?;
            (Some(current.trim()), rest.trim_start())
        }
        None => (None, rest),
    };
    let inside =
        rest.strip_prefix('(').and_then(|rest| rest.split_once(')')).ok_or_else(malformed)?.0;
    let (candidate, release) = split_word(inside.trim()).ok_or_else(malformed)?;
    let (origins_text, architecture) = match release.trim_end().strip_suffix(']') {
        Some(without_bracket) => {
            let (origins, architecture) = without_bracket.rsplit_once('[').ok_or_else(malformed)?;
            (origins, Some(architecture.trim().to_owned()))
        }
        None => (release, None),
    };
    let origins: Vec<String> = origins_text
        .split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(str::to_owned)
        .collect();
    let parse_version = |text: &str| {
        DebianVersion::parse(text).map_err(|source| AptParseError::Version {
            line,
            package: package.to_owned(),
            source,
        })
    };
    let candidate_version = parse_version(candidate)?;
    let kind = match current {
        None => PendingChangeKind::Install,
        Some(current) => match parse_version(current)?.cmp(&candidate_version) {
            std::cmp::Ordering::Less => PendingChangeKind::Upgrade,
            std::cmp::Ordering::Greater => PendingChangeKind::Downgrade,
            std::cmp::Ordering::Equal => PendingChangeKind::Reinstall,
        },
    };
    Ok(PendingChange {
        package: package.to_owned(),
        current: current.map(str::to_owned),
        candidate: candidate.to_owned(),
        origins,
        architecture,
        kind,
    })
}

/// `NAME [CURRENT]`, possibly followed by a trailer.
fn parse_remove(rest: &str, line: usize, action: &str) -> Result<PendingChange, AptParseError> {
    let malformed = || AptParseError::Malformed { line, action: action.to_owned() };
    let (package, rest) = split_word(rest).ok_or_else(malformed)?;
    let current = rest
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .map(|(current, _)| current.trim())
        .filter(|current| !current.is_empty())
        .ok_or_else(malformed)?;
    DebianVersion::parse(current).map_err(|source| AptParseError::Version {
        line,
        package: package.to_owned(),
        source,
    })?;
    Ok(PendingChange {
        package: package.to_owned(),
        current: Some(current.to_owned()),
        candidate: current.to_owned(),
        origins: Vec::new(),
        architecture: None,
        kind: PendingChangeKind::Remove,
    })
}

/// Splits off the first whitespace-separated word; `None` when there is none.
fn split_word(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    if text.is_empty() {
        return None;
    }
    Some(match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (text, ""),
    })
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/apt/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    fn check(text: &str, expect: Expect) {
        let changes = parse_apt_simulation(text).unwrap_or_else(|error| panic!("{error}"));
        let mut out = String::new();
        for change in &changes {
            out += &format!(
                "{:?} {} [{}] -> {} [{}] security={} ({})\n",
                change.kind,
                change.package,
                change.current.as_deref().unwrap_or("-"),
                change.candidate,
                change.architecture.as_deref().unwrap_or("-"),
                change.is_security(),
                change.origins.join(" | "),
            );
        }
        expect.assert_eq(&out);
    }

    #[test]
    fn real_bookworm_dist_upgrade() {
        check(
            &fixture("bookworm-dist-upgrade.txt"),
            expect![[r#"
                Upgrade apt [2.6.1] -> 2.6.2 [amd64] security=true (Debian-Security:12/oldstable-security)
                Upgrade libapt-pkg6.0 [2.6.1] -> 2.6.2 [amd64] security=true (Debian-Security:12/oldstable-security)
                Upgrade liblzma5 [5.4.1-1+deb12u1] -> 5.4.1-1+deb12u2 [amd64] security=true (Debian-Security:12/oldstable-security)
                Upgrade libpcre2-8-0 [10.42-1] -> 10.42-1+deb12u2 [amd64] security=true (Debian-Security:12/oldstable-security)
                Upgrade libperl5.36 [5.36.0-7+deb12u3] -> 5.36.0-7+deb12u4 [amd64] security=true (Debian-Security:12/oldstable-security)
                Upgrade perl [5.36.0-7+deb12u3] -> 5.36.0-7+deb12u4 [amd64] security=true (Debian-Security:12/oldstable-security)
                Upgrade perl-base [5.36.0-7+deb12u3] -> 5.36.0-7+deb12u4 [amd64] security=true (Debian-Security:12/oldstable-security)
                Upgrade perl-modules-5.36 [5.36.0-7+deb12u3] -> 5.36.0-7+deb12u4 [all] security=true (Debian-Security:12/oldstable-security)
                Upgrade tzdata [2026b-0+deb12u1] -> 2026f-0+deb12u1 [all] security=true (Debian-Security:12/oldstable-security)
            "#]],
        );
    }

    #[test]
    fn upgrade_and_dist_upgrade_agree_on_this_image() {
        assert_eq!(
            parse_apt_simulation(&fixture("bookworm-upgrade.txt")),
            parse_apt_simulation(&fixture("bookworm-dist-upgrade.txt"))
        );
    }

    #[test]
    fn real_new_installs_mix_point_release_and_security() {
        check(
            &fixture("bookworm-install-curl.txt"),
            expect![[r#"
                Install ca-certificates [-] -> 20250419~deb12u2 [all] security=true (Debian-Security:12/oldstable-security)
                Install curl [-] -> 7.88.1-10+deb12u15 [amd64] security=false (Debian:12.15/oldstable)
                Install krb5-locales [-] -> 1.20.1-2+deb12u5 [all] security=true (Debian:12.15/oldstable | Debian-Security:12/oldstable-security)
                Install libbrotli1 [-] -> 1.0.9-2+deb12u1 [amd64] security=true (Debian-Security:12/oldstable-security)
                Install libcurl4 [-] -> 7.88.1-10+deb12u15 [amd64] security=false (Debian:12.15/oldstable)
                Install libgssapi-krb5-2 [-] -> 1.20.1-2+deb12u5 [amd64] security=true (Debian:12.15/oldstable | Debian-Security:12/oldstable-security)
                Install libk5crypto3 [-] -> 1.20.1-2+deb12u5 [amd64] security=true (Debian:12.15/oldstable | Debian-Security:12/oldstable-security)
                Install libkeyutils1 [-] -> 1.6.3-2 [amd64] security=false (Debian:12.15/oldstable)
                Install libkrb5-3 [-] -> 1.20.1-2+deb12u5 [amd64] security=true (Debian:12.15/oldstable | Debian-Security:12/oldstable-security)
                Install libkrb5support0 [-] -> 1.20.1-2+deb12u5 [amd64] security=true (Debian:12.15/oldstable | Debian-Security:12/oldstable-security)
                Install libldap-2.5-0 [-] -> 2.5.13+dfsg-5 [amd64] security=false (Debian:12.15/oldstable)
                Install libldap-common [-] -> 2.5.13+dfsg-5 [all] security=false (Debian:12.15/oldstable)
                Install libnghttp2-14 [-] -> 1.52.0-1+deb12u3 [amd64] security=true (Debian:12.15/oldstable | Debian-Security:12/oldstable-security)
                Install libpsl5 [-] -> 0.21.2-1 [amd64] security=false (Debian:12.15/oldstable)
                Install librtmp1 [-] -> 2.4+20151223.gitfa8646d.1-2+b2 [amd64] security=false (Debian:12.15/oldstable)
                Install libsasl2-2 [-] -> 2.1.28+dfsg-10+deb12u1 [amd64] security=true (Debian-Security:12/oldstable-security)
                Install libsasl2-modules [-] -> 2.1.28+dfsg-10+deb12u1 [amd64] security=true (Debian-Security:12/oldstable-security)
                Install libsasl2-modules-db [-] -> 2.1.28+dfsg-10+deb12u1 [amd64] security=true (Debian-Security:12/oldstable-security)
                Install libssh2-1 [-] -> 1.10.0-3+deb12u1 [amd64] security=true (Debian-Security:12/oldstable-security)
                Install libssl3 [-] -> 3.0.22-1~deb12u2 [amd64] security=true (Debian-Security:12/oldstable-security)
                Install openssl [-] -> 3.0.22-1~deb12u2 [amd64] security=true (Debian-Security:12/oldstable-security)
                Install publicsuffix [-] -> 20230209.2326-1 [all] security=false (Debian:12.15/oldstable)
            "#]],
        );
    }

    #[test]
    fn real_purge() {
        check(
            &fixture("bookworm-purge-tzdata.txt"),
            expect![[r#"
                Remove tzdata [2026b-0+deb12u1] -> 2026b-0+deb12u1 [-] security=false ()
            "#]],
        );
    }

    #[test]
    fn removals_purges_and_other_distributions() {
        let text = "\
NOTE: This is only a simulation!
The following packages will be REMOVED:
  tzdata*
Remv tzdata [2026b-0+deb12u1]
Purg oldlib [1.0-1] [foo ]
Inst libc6 [2.35-0ubuntu3.1] (2.35-0ubuntu3.4 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])
Inst libfoo [2.0] (2.0 Debian:12.11/oldstable [amd64])
Inst pinned [2.0-1] (1.9-1 Debian:12.11/oldstable [all])
Inst local (2.0-1 localhost [amd64])
Inst bare (2.0-1)
Conf libc6 (2.35-0ubuntu3.4 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])
Inst libc6 [2.35-0ubuntu3.1] (9.9 Other:1/stable [amd64])
";
        check(
            text,
            expect![[r#"
                Install bare [-] -> 2.0-1 [-] security=false ()
                Upgrade libc6 [2.35-0ubuntu3.1] -> 2.35-0ubuntu3.4 [amd64] security=true (Ubuntu:22.04/jammy-updates | Ubuntu:22.04/jammy-security)
                Reinstall libfoo [2.0] -> 2.0 [amd64] security=false (Debian:12.11/oldstable)
                Install local [-] -> 2.0-1 [amd64] security=false (localhost)
                Remove oldlib [1.0-1] -> 1.0-1 [-] security=false ()
                Downgrade pinned [2.0-1] -> 1.9-1 [all] security=false (Debian:12.11/oldstable)
                Remove tzdata [2026b-0+deb12u1] -> 2026b-0+deb12u1 [-] security=false ()
            "#]],
        );
    }

    #[test]
    fn security_origins() {
        let cases = [
            ("Debian-Security:12/oldstable-security", true),
            ("Debian-Security:12/stable-security", true),
            ("Ubuntu:22.04/jammy-security", true),
            ("Debian:12.11/oldstable", false),
            ("Ubuntu:22.04/jammy-updates", false),
            ("localhost", false),
            ("Debian:12.11/bookworm-updates", false),
        ];
        for (origin, security) in cases {
            assert_eq!(origin_is_security(origin), security, "{origin}");
        }
    }

    #[test]
    fn malformed_action_lines_are_errors() {
        let cases = [
            ("Inst\n", None),
            ("Reading package lists...\nInst libc6 [2.36\n", Some("line 2: malformed `Inst` line")),
            ("Inst libc6 [2.36] 2.37\n", Some("line 1: malformed `Inst` line")),
            ("Inst libc6 (2.37 Debian:12/stable amd64])\n", Some("line 1: malformed `Inst` line")),
            ("Remv libc6\n", Some("line 1: malformed `Remv` line")),
            (
                "Inst libc6 (2.37_x Debian [amd64])\n",
                Some("line 1: invalid version of package `libc6`"),
            ),
        ];
        for (text, message) in cases {
            let result = parse_apt_simulation(text).map_err(|error| error.to_string());
            match message {
                Some(message) => assert_eq!(result, Err(message.to_owned()), "{text}"),
                // A bare word is not an action line.
                None => assert_eq!(result, Ok(Vec::new()), "{text}"),
            }
        }
    }
}
