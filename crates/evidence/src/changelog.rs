//! Debian changelogs (`/usr/share/doc/<pkg>/changelog.Debian.gz`, gunzipped by the caller):
//! a lenient parser, and the CVE identifiers named by the entries an upgrade brought in.
//!
//! The format is deb-changelog(5):
//!
//! ```text
//! package (version) distribution(s); urgency=urgency
//!
//!   * change details
//!
//!  -- Maintainer Name <email@address>  Mon, 01 Jan 2024 00:00:00 +0000
//! ```
//!
//! Design notes: parsing never fails, because a changelog is evidence we report on, not input we
//! act on. Following dpkg's own parser (`Dpkg::Changelog::Debian`):
//! - an entry without its trailer line (cut by a new header or the end of the text) is dropped
//!   and its lines are counted in [`Changelog::skipped_lines`];
//! - stray non-blank lines between entries are counted too; `# ` comment lines are ignored;
//! - parsing stops cleanly at the old formats that close many long-lived changelogs
//!   (`Old Changelog:`, `Local variables:`, `vim:`, and pre-1997 date-first entries), recording
//!   the line in [`Changelog::stopped_at_line`]; lines after it are not counted.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

use crate::debversion::{DebianVersion, DebianVersionError};

/// A parsed changelog, newest entry first as in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changelog {
    pub entries: Vec<ChangelogEntry>,
    /// Non-blank lines that belong to no well-formed entry.
    pub skipped_lines: usize,
    /// The line (from 1) where an old-format tail began and parsing stopped, if it did.
    pub stopped_at_line: Option<usize>,
}

/// One entry: header, body and trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogEntry {
    /// The source package name in the header.
    pub package: String,
    /// The version text in the header; see [`ChangelogEntry::debian_version`].
    pub version: String,
    /// `bookworm`, `bookworm-security`, `unstable`...
    pub distributions: Vec<String>,
    /// The `urgency=` value, if the header has one.
    pub urgency: Option<String>,
    /// The lines between header and trailer, verbatim (indentation kept), without leading or
    /// trailing blank lines.
    pub body: String,
    /// `Name <email>` from the trailer.
    pub maintainer: String,
    /// The date text from the trailer, as written (RFC 2822 in well-formed entries).
    pub date: String,
    /// The header's line number, from 1.
    pub line: usize,
}

impl ChangelogEntry {
    /// The header's version, parsed.
    pub fn debian_version(&self) -> Result<DebianVersion, DebianVersionError> {
        DebianVersion::parse(&self.version)
    }

    /// The CVE identifiers named in the body, sorted and deduplicated.
    pub fn cves(&self) -> Vec<CveId> {
        let mut cves: Vec<CveId> = cve_regex()
            .find_iter(&self.body)
            .filter_map(|found| found.as_str().parse().ok())
            .collect();
        cves.sort();
        cves.dedup();
        cves
    }
}

/// A CVE identifier such as `CVE-2024-45490`, normalised to upper case.
/// Ordered by year, then number (so `CVE-2024-9999` sorts before `CVE-2024-10000`).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct CveId {
    year: u16,
    number: u64,
}

/// Why a text is not a CVE identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a cve identifier (CVE-YYYY-NNNN)")]
pub struct CveIdError {
    pub text: String,
}

impl CveId {
    pub fn year(&self) -> u16 {
        self.year
    }

    pub fn number(&self) -> u64 {
        self.number
    }
}

impl fmt::Display for CveId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CVE-{}-{:04}", self.year, self.number)
    }
}

impl FromStr for CveId {
    type Err = CveIdError;

    /// Accepts `CVE-YYYY-NNNN...` in any case; the number has at least four digits.
    fn from_str(text: &str) -> Result<CveId, CveIdError> {
        let error = || CveIdError { text: text.to_owned() };
        let mut parts = text.splitn(3, '-');
        let (Some(prefix), Some(year), Some(number)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(error());
        };
        let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
        if !prefix.eq_ignore_ascii_case("cve")
            || year.len() != 4
            || !all_digits(year)
            || number.len() < 4
            || !all_digits(number)
        {
            return Err(error());
        }
        Ok(CveId {
            year: year.parse().map_err(|_| error())?,
            number: number.parse().map_err(|_| error())?,
        })
    }
}

impl TryFrom<String> for CveId {
    type Error = CveIdError;

    fn try_from(text: String) -> Result<CveId, CveIdError> {
        text.parse()
    }
}

impl From<CveId> for String {
    fn from(cve: CveId) -> String {
        cve.to_string()
    }
}

fn cve_regex() -> &'static Regex {
    static CVE: LazyLock<Regex> = LazyLock::new(|| {
        // Invariant: a constant pattern that is known to compile.
        Regex::new(r"(?i)CVE-\d{4}-\d{4,}").expect("cve pattern compiles")
    });
    &CVE
}

/// The header regex of dpkg's `Dpkg::Changelog::Entry::Debian`.
fn header_regex() -> &'static Regex {
    static HEADER: LazyLock<Regex> = LazyLock::new(|| {
        // Invariant: a constant pattern that is known to compile.
        Regex::new(r"(?i)^(\w[-+0-9a-z.]*) \(([^() \t]+)\)((?:\s+[-+0-9a-z.]+)+);(.*?)\s*$")
            .expect("header pattern compiles")
    });
    &HEADER
}

/// Lines after which dpkg stops parsing: the file continues in some older format.
fn old_format_regex() -> &'static Regex {
    static OLD_FORMAT: LazyLock<Regex> = LazyLock::new(|| {
        let patterns = [
            r"^\s*Old Changelog:",
            r"^(?:;;\s*)?Local variables:",
            r"^vim?:",
            // `Thu Jul 18 01:30:22 MDT 1996  Name  <email>`
            r"^\w+\s+\w+\s+\d{1,2} \d{1,2}:\d{1,2}:\d{1,2}\s+[\w\s]*\d{4}\s+.*\s+[<(].*[)>]",
            // `Wed Jan 17 1996  Name  <email>` and `Jan 17, 1996  Name  <email>`
            r"^\w+\s+\w+\s+\d{1,2},?\s*\d{4}\s+.*\s+[<(].*[)>]",
            r"^\w+\s+\d{1,2},?\s*\d{4}\s+.*\s+[<(].*[)>]",
        ];
        // Invariant: constant patterns that are known to compile.
        Regex::new(&format!("(?i)(?:{})", patterns.join("|"))).expect("old format pattern compiles")
    });
    &OLD_FORMAT
}

/// An entry whose header has been read and whose trailer has not.
struct OpenEntry {
    package: String,
    version: String,
    distributions: Vec<String>,
    urgency: Option<String>,
    body: Vec<String>,
    line: usize,
    /// Non-blank lines so far, header included, to count if the entry is dropped.
    n_lines: usize,
}

/// Parses a changelog. Never fails; see the module notes for what is skipped.
pub fn parse_changelog(text: &str) -> Changelog {
    let mut changelog = Changelog::default();
    let mut open: Option<OpenEntry> = None;
    for (line_idx, line) in text.lines().enumerate() {
        let line_number = line_idx + 1;
        if let Some(captures) = header_regex().captures(line) {
            if let Some(unfinished) = open.take() {
                changelog.skipped_lines += unfinished.n_lines;
            }
            let mut urgency = None;
            for keyword in captures[4].split(',') {
                if let Some((key, value)) = keyword.split_once('=')
                    && key.trim().eq_ignore_ascii_case("urgency")
                {
                    urgency = Some(value.trim().to_owned());
                }
            }
            open = Some(OpenEntry {
                package: captures[1].to_owned(),
                version: captures[2].to_owned(),
                distributions: captures[3].split_whitespace().map(str::to_owned).collect(),
                urgency,
                body: Vec::new(),
                line: line_number,
                n_lines: 1,
            });
            continue;
        }
        if let Some(trailer) = line.strip_prefix(" -- ") {
            match open.take() {
                Some(entry) => changelog.entries.push(close_entry(entry, trailer)),
                None => changelog.skipped_lines += 1,
            }
            continue;
        }
        if old_format_regex().is_match(line) {
            if let Some(unfinished) = open.take() {
                changelog.skipped_lines += unfinished.n_lines;
            }
            changelog.stopped_at_line = Some(line_number);
            break;
        }
        match &mut open {
            Some(entry) => {
                // Unindented text inside an entry is badly formatted but still part of it.
                if !line.trim().is_empty() {
                    entry.n_lines += 1;
                }
                entry.body.push(line.to_owned());
            }
            None => {
                let ignored = line.trim().is_empty() || line.starts_with("# ");
                if !ignored {
                    changelog.skipped_lines += 1;
                }
            }
        }
    }
    if let Some(unfinished) = open {
        changelog.skipped_lines += unfinished.n_lines;
    }
    changelog
}

fn close_entry(entry: OpenEntry, trailer: &str) -> ChangelogEntry {
    // ` -- Name <email>  date`: the maintainer ends at the last `>` before the two spaces.
    let (maintainer, date) = match trailer.split_once(">  ").or_else(|| trailer.split_once("> ")) {
        Some((maintainer, date)) => (format!("{maintainer}>"), date.trim().to_owned()),
        None => (trailer.trim().to_owned(), String::new()),
    };
    let first = entry.body.iter().position(|line| !line.trim().is_empty());
    let last = entry.body.iter().rposition(|line| !line.trim().is_empty());
    let body = match (first, last) {
        (Some(first), Some(last)) => entry.body[first..=last].join("\n"),
        _ => String::new(),
    };
    ChangelogEntry {
        package: entry.package,
        version: entry.version,
        distributions: entry.distributions,
        urgency: entry.urgency,
        body,
        maintainer: maintainer.trim().to_owned(),
        date,
        line: entry.line,
    }
}

/// The entries an upgrade from `from` to `to` brought in: those whose version `v` satisfies
/// `from < v <= to`, in file order. Entries whose version does not parse are left out.
pub fn entries_between<'a>(
    changelog: &'a Changelog,
    from: &DebianVersion,
    to: &DebianVersion,
) -> Vec<&'a ChangelogEntry> {
    changelog
        .entries
        .iter()
        .filter(|entry| {
            entry.debian_version().is_ok_and(|version| *from < version && version <= *to)
        })
        .collect()
}

/// The CVE identifiers named by [`entries_between`], sorted and deduplicated.
pub fn cves_fixed(changelog: &Changelog, from: &DebianVersion, to: &DebianVersion) -> Vec<CveId> {
    let mut cves: Vec<CveId> =
        entries_between(changelog, from, to).into_iter().flat_map(ChangelogEntry::cves).collect();
    cves.sort();
    cves.dedup();
    cves
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/changelogs/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    fn version(text: &str) -> DebianVersion {
        DebianVersion::parse(text).unwrap_or_else(|error| panic!("{error}"))
    }

    fn cves(changelog: &Changelog, from: &str, to: &str) -> Vec<String> {
        cves_fixed(changelog, &version(from), &version(to))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Renders the headers, trailers and counters of a changelog.
    fn check_outline(text: &str, expect: Expect) {
        let changelog = parse_changelog(text);
        let mut out = String::new();
        for entry in &changelog.entries {
            out += &format!(
                "{}: {} ({}) {}; urgency={} | {} | {} | {} body lines\n",
                entry.line,
                entry.package,
                entry.version,
                entry.distributions.join(" "),
                entry.urgency.as_deref().unwrap_or("-"),
                entry.maintainer,
                entry.date,
                entry.body.lines().count(),
            );
        }
        out += &format!(
            "skipped_lines={} stopped_at_line={:?}\n",
            changelog.skipped_lines, changelog.stopped_at_line
        );
        expect.assert_eq(&out);
    }

    #[test]
    fn openssl_security_uploads() {
        let changelog = parse_changelog(&fixture("openssl.changelog"));
        assert_eq!(changelog.skipped_lines, 0);
        let newest = &changelog.entries[0];
        assert_eq!(newest.package, "openssl");
        assert_eq!(newest.version, "3.0.19-1~deb12u2");
        assert_eq!(newest.distributions, ["bookworm-security"]);
        assert_eq!(newest.urgency.as_deref(), Some("medium"));
        assert_eq!(newest.maintainer, "Sebastian Andrzej Siewior <sebastian@breakpoint.cc>");
        // Checked against `grep -o CVE-...` over the entries above 3.0.17-1~deb12u3.
        expect![[r#"["CVE-2025-15467", "CVE-2025-68160", "CVE-2025-69418", "CVE-2025-69419", "CVE-2025-69420", "CVE-2025-69421", "CVE-2026-22795", "CVE-2026-22796", "CVE-2026-28387", "CVE-2026-28389", "CVE-2026-28390", "CVE-2026-31789", "CVE-2026-31790"]"#]]
        .assert_eq(&format!("{:?}", cves(&changelog, "3.0.17-1~deb12u3", "3.0.19-1~deb12u2")));
        // The lower bound is exclusive, the upper inclusive.
        assert_eq!(cves(&changelog, "3.0.19-1~deb12u2", "3.0.19-1~deb12u2"), Vec::<String>::new());
        let between =
            entries_between(&changelog, &version("3.0.18-1~deb12u2"), &version("3.0.19-1~deb12u2"));
        let versions: Vec<&str> = between.iter().map(|entry| entry.version.as_str()).collect();
        assert_eq!(versions, ["3.0.19-1~deb12u2", "3.0.19-1~deb12u1"]);
    }

    #[test]
    fn glibc_point_release_and_security_entries() {
        let changelog = parse_changelog(&fixture("glibc.changelog"));
        check_outline(
            &fixture("glibc.changelog"),
            expect![[r#"
                1: glibc (2.36-9+deb12u14) bookworm; urgency=medium | Aurelien Jarno <aurel32@debian.org> | Mon, 27 Apr 2026 22:14:33 +0200 | 30 body lines
                36: glibc (2.36-9+deb12u13) bookworm; urgency=medium | Aurelien Jarno <aurel32@debian.org> | Mon, 25 Aug 2025 21:11:05 +0200 | 4 body lines
                45: glibc (2.36-9+deb12u12) bookworm; urgency=medium | Aurelien Jarno <aurel32@debian.org> | Mon, 02 Jun 2025 22:53:56 +0200 | 4 body lines
                54: glibc (2.36-9+deb12u11) bookworm; urgency=medium | Aurelien Jarno <aurel32@debian.org> | Thu, 29 May 2025 11:41:11 +0200 | 6 body lines
                65: glibc (2.36-9+deb12u10) bookworm; urgency=medium | Aurelien Jarno <aurel32@debian.org> | Thu, 06 Mar 2025 23:46:53 +0100 | 13 body lines
                83: glibc (2.36-9+deb12u9) bookworm; urgency=medium | Aurelien Jarno <aurel32@debian.org> | Fri, 01 Nov 2024 13:42:20 +0100 | 19 body lines
                107: glibc (2.36-9+deb12u8) bookworm; urgency=medium | Aurelien Jarno <aurel32@debian.org> | Thu, 15 Aug 2024 11:10:46 +0200 | 30 body lines
                142: glibc (2.36-9+deb12u7) bookworm-security; urgency=medium | Aurelien Jarno <aurel32@debian.org> | Tue, 30 Apr 2024 23:07:28 +0200 | 9 body lines
                156: glibc (2.36-9+deb12u6) bookworm-security; urgency=medium | Aurelien Jarno <aurel32@debian.org> | Fri, 19 Apr 2024 18:34:04 +0200 | 3 body lines
                164: glibc (2.36-9+deb12u5) bookworm; urgency=medium | Aurelien Jarno <aurel32@debian.org> | Sun, 24 Mar 2024 13:07:31 +0100 | 11 body lines
                180: glibc (2.36-9+deb12u4) bookworm-security; urgency=medium | Aurelien Jarno <aurel32@debian.org> | Tue, 23 Jan 2024 21:57:06 +0100 | 8 body lines
                193: glibc (2.36-9+deb12u3) bookworm-security; urgency=medium | Aurelien Jarno <aurel32@debian.org> | Sat, 30 Sep 2023 10:31:05 +0200 | 3 body lines
                skipped_lines=0 stopped_at_line=None
            "#]],
        );
        assert!(changelog.entries.iter().any(|entry| entry.distributions == ["bookworm-security"]));
        // Checked against `grep -o CVE-...` over the entries deb12u5 to deb12u10 of the fixture.
        assert_eq!(
            cves(&changelog, "2.36-9+deb12u4", "2.36-9+deb12u10"),
            [
                "CVE-2023-4911",
                "CVE-2023-6246",
                "CVE-2023-6779",
                "CVE-2023-6780",
                "CVE-2024-2961",
                "CVE-2024-33599",
                "CVE-2024-33600",
                "CVE-2024-33601",
                "CVE-2024-33602",
                "CVE-2025-0395",
            ]
        );
    }

    #[test]
    fn curl_double_digit_deb12u_versions() {
        let changelog = parse_changelog(&fixture("curl.changelog"));
        // Checked against `grep -o CVE-...` over the entries deb12u6 to deb12u12.
        expect![[r#"["CVE-2024-2004", "CVE-2024-2398", "CVE-2024-7264", "CVE-2024-8096", "CVE-2024-9681", "CVE-2024-11053", "CVE-2025-0167"]"#]].assert_eq(&format!(
            "{:?}",
            cves(&changelog, "7.88.1-10+deb12u5", "7.88.1-10+deb12u12")
        ));
        // deb12u5 < deb12u12 numerically; a string comparison would find nothing here.
        assert!(!cves(&changelog, "7.88.1-10+deb12u5", "7.88.1-10+deb12u12").is_empty());
    }

    #[test]
    fn perl_and_systemd_security_entries() {
        let perl = parse_changelog(&fixture("perl.changelog"));
        expect![[r#"["CVE-2023-47038", "CVE-2024-56406"]"#]]
            .assert_eq(&format!("{:?}", cves(&perl, "5.36.0-7", "5.36.0-7+deb12u2")));
        let systemd = parse_changelog(&fixture("systemd.changelog"));
        expect![[r#"["CVE-2025-4598"]"#]]
            .assert_eq(&format!("{:?}", cves(&systemd, "252.36-1~deb12u1", "252.38-1~deb12u1")));
        assert_eq!(systemd.entries[0].distributions, ["bookworm-security"]);
    }

    #[test]
    fn tar_nmu_and_trailing_comment() {
        check_outline(
            &fixture("tar.changelog"),
            expect![[r#"
                1: tar (1.34+dfsg-1.2+deb12u1) bookworm; urgency=medium | Salvatore Bonaccorso <carnil@debian.org> | Sat, 20 Jan 2024 10:27:07 +0100 | 4 body lines
                10: tar (1.34+dfsg-1.2) unstable; urgency=medium | Paul Gevers <elbrus@debian.org> | Thu, 06 Apr 2023 16:25:47 +0200 | 3 body lines
                18: tar (1.34+dfsg-1.1) unstable; urgency=medium | Mechtilde Stehmann <mechtilde@debian.org> | Sun, 20 Nov 2022 15:52:41 +0100 | 5 body lines
                28: tar (1.34+dfsg-1) unstable; urgency=medium | Janos Lenart <ocsi@debian.org> | Wed, 17 Feb 2021 09:55:26 +0000 | 1 body lines
                34: tar (1.33+dfsg-1) unstable; urgency=medium | Janos Lenart <ocsi@debian.org> | Fri, 12 Feb 2021 15:15:21 +0000 | 3 body lines
                42: tar (1.32+dfsg-1) unstable; urgency=medium | Janos Lenart <ocsi@debian.org> | Fri, 20 Nov 2020 09:52:51 +0000 | 2 body lines
                49: tar (1.30+dfsg-7) unstable; urgency=medium | Bdale Garbee <bdale@gag.com> | Sat, 14 Mar 2020 14:24:29 -0600 | 1 body lines
                skipped_lines=0 stopped_at_line=None
            "#]],
        );
    }

    #[test]
    fn gzip_stops_at_date_first_entries() {
        check_outline(
            &fixture("gzip-old-format-tail.changelog"),
            expect![[r#"
                1: gzip (1.12-1) sid; urgency=high | Milan Kupcevic <milan@debian.org> | Sat, 09 Apr 2022 22:22:26 -0400 | 10 body lines
                16: gzip (1.10-4) sid; urgency=medium | Milan Kupcevic <milan@debian.org> | Tue, 02 Mar 2021 18:30:16 -0500 | 1 body lines
                22: gzip (1.10-3) sid; urgency=medium | Milan Kupcevic <milan@debian.org> | Fri, 26 Feb 2021 21:11:52 -0500 | 5 body lines
                32: gzip (1.10-2) unstable; urgency=medium | Bdale Garbee <bdale@gag.com> | Thu, 19 Mar 2020 11:01:46 -0600 | 1 body lines
                38: gzip (1.10-1) unstable; urgency=medium | Bdale Garbee <bdale@gag.com> | Tue, 25 Feb 2020 14:56:28 -0700 | 3 body lines
                46: gzip (1.9-3) unstable; urgency=medium | Bdale Garbee <bdale@gag.com> | Sat, 05 Jan 2019 16:03:32 -0700 | 3 body lines
                54: gzip (1.2.4-17) unstable; urgency=low | Bdale Garbee <bdale@gag.com> | Fri,  5 Sep 1997 15:06:35 -0600 | 1 body lines
                60: gzip (1.2.4-16) stable frozen unstable; urgency=low | Bdale Garbee <bdale@gag.com> | Thu,  4 Sep 1997 22:46:28 -0600 | 2 body lines
                67: gzip (1.2.4-15) stable frozen unstable; urgency=low | Bdale Garbee <bdale@gag.com> | Fri, 14 Mar 1997 21:14:44 -0700 | 2 body lines
                74: gzip (1.2.4-14) stable frozen unstable; urgency=medium | Bdale Garbee <bdale@gag.com> | Thu, 28 Nov 1996 11:37:31 -0700 | 1 body lines
                80: gzip (1.2.4-13) stable frozen unstable; urgency=medium | Bdale Garbee <bdale@gag.com> | Tue, 19 Nov 1996 09:14:14 -0700 | 2 body lines
                87: gzip (1.2.4-12) unstable; urgency=low | Bdale Garbee <bdale@gag.com> | Sat, 02 Nov 1996 14:47:42 -0800 | 1 body lines
                skipped_lines=0 stopped_at_line=Some(94)
            "#]],
        );
    }

    #[test]
    fn time_stops_at_old_changelog() {
        check_outline(
            &fixture("time-old-changelog.changelog"),
            expect![[r#"
                1: time (1.9-0.2) unstable; urgency=medium | Holger Levsen <holger@debian.org> | Thu, 22 Sep 2022 21:35:24 +0200 | 3 body lines
                9: time (1.9-0.1) unstable; urgency=medium | Matthias Klose <doko@debian.org> | Sun, 10 Jan 2021 20:28:43 +0100 | 17 body lines
                31: time (1.7-8) unstable; urgency=low | Dirk Eddelbuettel <edd@debian.org> | Tue, 23 Nov 1999 19:30:32 -0500 | 1 body lines
                37: time (1.7-7) unstable; urgency=low | Dirk Eddelbuettel <edd@debian.org> | Fri, 15 Oct 1999 22:27:50 -0400 | 3 body lines
                45: time (1.7-6) unstable; urgency=low | Dirk Eddelbuettel <edd@debian.org> | Mon,  4 Oct 1999 20:48:32 -0400 | 1 body lines
                51: time (1.7-5) unstable; urgency=low | Dirk Eddelbuettel <edd@debian.org> | Sat,  2 Oct 1999 16:00:28 -0400 | 4 body lines
                skipped_lines=0 stopped_at_line=Some(60)
            "#]],
        );
    }

    #[test]
    fn malformed_entries_are_skipped_and_counted() {
        let text = "\
hello (2.0-1) bookworm-security; urgency=high

  * Fix CVE-2024-0002 and cve-2024-10001.

 -- Jane Doe <jane@example.org>  Mon, 01 Jan 2024 00:00:00 +0000
stray text between entries

hello (1.9-1) unstable; urgency=low

  * No trailer: CVE-2023-0001 must not count.

hello (1.8-1) unstable
  * Header without the semicolon is not a header.
hello (1.7-1) unstable; urgency=low, binary-only=yes

  * Fix CVE-2022-9999.
 -- John Roe <john@example.org>  Tue, 02 Jan 2024 00:00:00 +0000
 -- a second trailer with no entry
hello (1.6-1) unstable; urgency=low

  * Cut off by the end of the file: CVE-2021-0001.
";
        check_outline(
            text,
            expect![[r#"
                1: hello (2.0-1) bookworm-security; urgency=high | Jane Doe <jane@example.org> | Mon, 01 Jan 2024 00:00:00 +0000 | 1 body lines
                14: hello (1.7-1) unstable; urgency=low | John Roe <john@example.org> | Tue, 02 Jan 2024 00:00:00 +0000 | 1 body lines
                skipped_lines=8 stopped_at_line=None
            "#]],
        );
        let changelog = parse_changelog(text);
        assert_eq!(
            cves(&changelog, "1.0", "2.0-1"),
            ["CVE-2022-9999", "CVE-2024-0002", "CVE-2024-10001"]
        );
        assert_eq!(cves(&changelog, "1.7-1", "1.9-1"), Vec::<String>::new());
    }

    #[test]
    fn cve_ids_parse_normalise_and_order() {
        let parse = |text: &str| text.parse::<CveId>();
        assert_eq!(parse("cve-2014-0160").map(|cve| cve.to_string()), Ok("CVE-2014-0160".into()));
        let id = |text: &str| parse(text).unwrap_or_else(|error| panic!("{error}"));
        assert!(id("CVE-2024-9999") < id("CVE-2024-10000"));
        assert!(id("CVE-2023-99999") < id("CVE-2024-0001"));
        for bad in ["CVE-2024-123", "CVE-24-1234", "XSA-2024-1234", "CVE-2024-12a4", "CVE-2024"] {
            assert_eq!(
                parse(bad).map_err(|error| error.to_string()),
                Err(format!("`{bad}` is not a cve identifier (CVE-YYYY-NNNN)"))
            );
        }
        let json =
            serde_json::to_string(&parse("CVE-2024-45490").expect("valid")).expect("serialises");
        assert_eq!(json, r#""CVE-2024-45490""#);
        assert!(serde_json::from_str::<CveId>(r#""nope""#).is_err());
    }
}
