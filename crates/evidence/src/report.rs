//! The evidence an image build produces (which packages it upgraded and which CVEs each upgrade
//! fixes), and the in-image commands that fetch the changelogs it is read from.
//!
//! Flow: diff two manifests ([`crate::diff`]), fetch the upgraded packages' changelogs with one
//! exec of [`changelog_bundle_script`], split the output with [`parse_changelog_bundle`], then
//! [`summarize`]. [`docs_excluded`] tells whether an image was built without `/usr/share/doc`,
//! in which case missing changelogs mean "unknown", not "no CVEs".
//!
//! Architecture invariant: [`UpgradeEvidence`] is a boundary type, stored as JSON by other crates;
//! its field names are part of the stored format.

use std::collections::BTreeMap;

use crate::apt::PendingChange;
use crate::changelog::{CveId, cves_fixed, parse_changelog};
use crate::debversion::DebianVersion;
use crate::manifest::{Change, ManifestDiff, Package, strip_architecture};

/// What one upgraded package contributes to an image's evidence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpgradeEvidence {
    /// The manifest key (`${binary:Package}`, e.g. `libc6:amd64`).
    pub name: String,
    /// Binary versions before and after.
    pub from: String,
    pub to: String,
    pub source_name: String,
    /// Whether apt took the new version from a security archive (an origin whose label
    /// contains `security` or whose suite ends in `-security`, as `image check-updates` marks
    /// updates), read from apt's plan when the build upgraded (see [`mark_security`]); `None`
    /// when not known (no plan listed the package at that version, e.g. a step ran `apt-get
    /// install` itself).
    pub security: Option<bool>,
    /// CVEs named in the changelog entries between the old and new source versions.
    pub cves: Vec<CveId>,
    /// Whether a changelog with at least one readable entry was found. When false, an empty
    /// `cves` means "unknown", not "none".
    pub changelog_available: bool,
}

/// Builds the evidence for every upgraded package of `diff`, in the diff's order.
///
/// `changelogs` maps a [`Change::name`] (or the name without its `:arch` qualifier) to the
/// changelog text, `None` when it was missing; a package absent from the map counts as missing.
/// CVEs are taken from entries `v` with `from_source_version < v <= to_source_version`, because
/// changelog entries carry source versions (a binNMU-only upgrade therefore fixes none).
/// `security` is left `None`; see [`mark_security`].
pub fn summarize(
    diff: &ManifestDiff,
    changelogs: &BTreeMap<String, Option<String>>,
) -> Vec<UpgradeEvidence> {
    diff.upgraded
        .iter()
        .map(|change| {
            let text = changelogs
                .get(&change.name)
                .or_else(|| changelogs.get(strip_architecture(&change.name)))
                .and_then(Option::as_deref);
            let changelog = text.map(parse_changelog);
            let changelog_available =
                changelog.as_ref().is_some_and(|changelog| !changelog.entries.is_empty());
            let cves = changelog
                .map(|changelog| {
                    cves_fixed(&changelog, &change.from_source_version, &change.to_source_version)
                })
                .unwrap_or_default();
            UpgradeEvidence {
                name: change.name.clone(),
                from: change.from.to_string(),
                to: change.to.to_string(),
                source_name: change.source_name.clone(),
                security: None,
                cves,
                changelog_available,
            }
        })
        .collect()
}

/// Fills [`UpgradeEvidence::security`] from apt's plans for the upgrade (`apt-get -s` output,
/// parsed with [`crate::parse_apt_simulation`]; several plans may be given, in any order): an
/// upgrade is a security update when apt took its new version from a security archive, as
/// [`PendingChange::is_security`] says for `image check-updates`. Only a planned change whose
/// candidate is the version the upgrade installed (`to`) counts: the origins apt lists are those
/// of the candidate, so a plan for another version says nothing about this one. Names are
/// matched without their `:arch` qualifiers. Evidence for packages no plan listed at that
/// version is left unchanged (`None`: unknown).
pub fn mark_security(evidence: &mut [UpgradeEvidence], pending: &[PendingChange]) {
    for item in evidence {
        let Ok(installed) = DebianVersion::parse(&item.to) else { continue };
        let mut matching = pending
            .iter()
            .filter(|change| {
                strip_architecture(&change.package) == strip_architecture(&item.name)
                    && DebianVersion::parse(&change.candidate)
                        .is_ok_and(|candidate| candidate == installed)
            })
            .peekable();
        if matching.peek().is_some() {
            item.security = Some(matching.any(PendingChange::is_security));
        }
    }
}

/// Where a binary package's changelog may be, in order: `/usr/share/doc/<pkg>/changelog.Debian.gz`,
/// then the binNMU file `/usr/share/doc/<pkg>/changelog.Debian.<arch>.gz` (not for `all`, which is
/// never binNMU'd), then `/usr/share/doc/<pkg>/changelog.gz`, where native packages such as `apt`
/// keep their Debian changelog (for other packages that file is the upstream changelog, in which
/// [`crate::parse_changelog`] finds no entries). A `:arch` qualifier on `package` is removed.
pub fn changelog_paths(package: &str, architecture: &str) -> Vec<String> {
    let package = strip_architecture(package);
    let mut paths = vec![format!("/usr/share/doc/{package}/changelog.Debian.gz")];
    if !architecture.is_empty() && architecture != "all" {
        paths.push(format!("/usr/share/doc/{package}/changelog.Debian.{architecture}.gz"));
    }
    paths.push(format!("/usr/share/doc/{package}/changelog.gz"));
    paths
}

/// The candidates of one request: the Debian changelogs of the package, then of its source
/// package, and only then the native `changelog.gz` of each, so an upstream changelog never
/// hides the source package's Debian changelog.
fn request_paths(request: &ChangelogRequest) -> Vec<String> {
    let package = strip_architecture(&request.package);
    let mut names = vec![package];
    if !request.source_name.is_empty() && request.source_name != package {
        names.push(&request.source_name);
    }
    let all: Vec<String> =
        names.iter().flat_map(|name| changelog_paths(name, &request.architecture)).collect();
    let (native, debian): (Vec<String>, Vec<String>) =
        all.into_iter().partition(|path| path.ends_with("/changelog.gz"));
    debian.into_iter().chain(native).collect()
}

/// A package whose changelog [`changelog_bundle_script`] should fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogRequest {
    /// The key the text comes back under in [`parse_changelog_bundle`] (use [`Change::name`]).
    pub package: String,
    pub architecture: String,
    /// Tried when the package's own doc directory has no changelog.
    pub source_name: String,
}

impl From<&Change> for ChangelogRequest {
    fn from(change: &Change) -> ChangelogRequest {
        ChangelogRequest {
            package: change.name.clone(),
            architecture: change.architecture.clone(),
            source_name: change.source_name.clone(),
        }
    }
}

impl From<&Package> for ChangelogRequest {
    fn from(package: &Package) -> ChangelogRequest {
        ChangelogRequest {
            package: package.name.clone(),
            architecture: package.architecture.clone(),
            source_name: package.source_name.clone(),
        }
    }
}

const SECTION_MARKER: &str = "@@autopatch-changelog ";
const END_MARKER: &str = "@@autopatch-end ";
const MISSING_MARKER: &str = "@@autopatch-missing ";

/// The shell function the bundle script calls once per package: print a section header, then
/// the first candidate file that exists (gunzipped) and an end marker, or a missing marker.
/// `[ -f ]` and gzip follow the doc-directory symlinks that binaries of one source share.
const BUNDLE_FUNCTION: &str = r#"autopatch_changelog() {
    autopatch_name=$1
    shift
    printf '@@autopatch-changelog %s\n' "$autopatch_name"
    for autopatch_path in "$@"; do
        if [ -f "$autopatch_path" ]; then
            if gzip -dc -- "$autopatch_path"; then
                printf '\n@@autopatch-end %s\n' "$autopatch_name"
            else
                printf '\n@@autopatch-unreadable %s\n' "$autopatch_name"
            fi
            return 0
        fi
    done
    printf '@@autopatch-missing %s\n' "$autopatch_name"
}
"#;

/// One POSIX `sh` script that prints the changelogs of all `requests`, each between delimiter
/// lines, so a single exec fetches them all. Candidates per package, first found wins: the
/// Debian changelogs ([`changelog_paths`]) of the package, then of its source package when the
/// names differ, then their native `changelog.gz`. Every argument is single-quoted.
/// Read the output with [`parse_changelog_bundle`].
pub fn changelog_bundle_script(requests: &[ChangelogRequest]) -> String {
    let mut script = String::from(BUNDLE_FUNCTION);
    for request in requests {
        script += "autopatch_changelog ";
        script += &shell_quote(&request.package);
        for path in &request_paths(request) {
            script.push(' ');
            script += &shell_quote(path);
        }
        script.push('\n');
    }
    script += "exit 0\n";
    script
}

/// Quotes a word for POSIX `sh`: `'...'`, with each `'` written as `'\''`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Splits the output of [`changelog_bundle_script`] into package name and changelog text.
/// A package gets `None` when its changelog was missing, unreadable, or cut off before its end
/// marker; a package whose section is absent (the script died first) is not in the map.
pub fn parse_changelog_bundle(text: &str) -> BTreeMap<String, Option<String>> {
    // Section headers as (name, byte offset where the header line starts, offset after it).
    let mut headers: Vec<(&str, usize, usize)> = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some(name) = line.strip_prefix(SECTION_MARKER) {
            headers.push((name.trim_end_matches(['\n', '\r']), offset, offset + line.len()));
        }
        offset += line.len();
    }
    let mut bundle = BTreeMap::new();
    for (header_idx, (name, _, content_start)) in headers.iter().enumerate() {
        let content_end = headers.get(header_idx + 1).map_or(text.len(), |next| next.1);
        let content = &text[*content_start..content_end];
        let end_line = format!("\n{END_MARKER}{name}");
        let changelog = content
            .strip_suffix('\n')
            .unwrap_or(content)
            .strip_suffix(&end_line)
            .filter(|_| !content.starts_with(MISSING_MARKER))
            .map(str::to_owned);
        bundle.insert((*name).to_owned(), changelog);
    }
    bundle
}

/// Whether dpkg's configuration (the concatenated text of `/etc/dpkg/dpkg.cfg.d/*`) keeps
/// changelogs out of `/usr/share/doc`. The `path-exclude`/`path-include` filters are applied in
/// order to a typical changelog path and the last match wins, as dpkg does, so
/// `path-exclude=/usr/share/doc/*` followed by `path-include=/usr/share/doc/*/copyright`
/// (Docker's slim images) still counts as excluded.
pub fn docs_excluded(dpkg_cfg_text: &str) -> bool {
    const PROBE: &str = "/usr/share/doc/autopatch-probe/changelog.Debian.gz";
    let mut excluded = false;
    for line in dpkg_cfg_text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("--").unwrap_or(line);
        let split = line.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(line.len());
        let (option, value) = line.split_at(split);
        let value = value.trim_start_matches(|c: char| c == '=' || c.is_whitespace()).trim_end();
        let value =
            value.strip_prefix('"').and_then(|value| value.strip_suffix('"')).unwrap_or(value);
        let exclude = match option {
            "path-exclude" => true,
            "path-include" => false,
            _ => continue,
        };
        if fnmatch(value.as_bytes(), PROBE.as_bytes()) {
            excluded = exclude;
        }
    }
    excluded
}

/// `fnmatch(3)` without flags, as dpkg calls it: `*` and `?` also match `/`; `[...]` with ranges
/// and `!`/`^` negation; backslash escapes the next character.
fn fnmatch(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| fnmatch(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && fnmatch(rest, &text[1..]),
        Some((b'[', rest)) => match (text.split_first(), bracket(rest)) {
            (Some((character, text_rest)), Some((set, negated, after))) => {
                set_contains(set, *character) != negated && fnmatch(after, text_rest)
            }
            // An unclosed `[` is an ordinary character.
            (Some((character, text_rest)), None) => *character == b'[' && fnmatch(rest, text_rest),
            (None, _) => false,
        },
        Some((b'\\', [escaped, rest @ ..])) => {
            text.first() == Some(escaped) && fnmatch(rest, &text[1..])
        }
        Some((literal, rest)) => text.first() == Some(literal) && fnmatch(rest, &text[1..]),
    }
}

/// Splits a bracket expression after its `[`: the set, whether it is negated, and the pattern
/// after the closing `]`. A `]` right after the opening (or after `!`) is a member.
fn bracket(pattern: &[u8]) -> Option<(&[u8], bool, &[u8])> {
    let (negated, body) = match pattern.first() {
        Some(b'!' | b'^') => (true, &pattern[1..]),
        _ => (false, pattern),
    };
    let close = body.iter().skip(1).position(|byte| *byte == b']')? + 1;
    Some((&body[..close], negated, &body[close + 1..]))
}

fn set_contains(set: &[u8], character: u8) -> bool {
    let mut idx = 0;
    while idx < set.len() {
        if idx + 2 < set.len() && set[idx + 1] == b'-' {
            if (set[idx]..=set[idx + 2]).contains(&character) {
                return true;
            }
            idx += 3;
        } else {
            if set[idx] == character {
                return true;
            }
            idx += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;
    use crate::manifest::{diff, parse_dpkg_query};

    #[test]
    fn changelog_paths_include_binnmu_files() {
        assert_eq!(
            changelog_paths("libc6:amd64", "amd64"),
            [
                "/usr/share/doc/libc6/changelog.Debian.gz",
                "/usr/share/doc/libc6/changelog.Debian.amd64.gz",
                "/usr/share/doc/libc6/changelog.gz",
            ]
        );
        assert_eq!(
            changelog_paths("tzdata", "all"),
            ["/usr/share/doc/tzdata/changelog.Debian.gz", "/usr/share/doc/tzdata/changelog.gz"]
        );
    }

    #[test]
    fn bundle_script_lists_candidates_and_quotes_them() {
        let requests = [
            ChangelogRequest {
                package: "libc6:amd64".into(),
                architecture: "amd64".into(),
                source_name: "glibc".into(),
            },
            ChangelogRequest {
                package: "tzdata".into(),
                architecture: "all".into(),
                source_name: "tzdata".into(),
            },
            ChangelogRequest {
                package: "it's".into(),
                architecture: "all".into(),
                source_name: String::new(),
            },
        ];
        let script = changelog_bundle_script(&requests);
        let calls: String = script
            .lines()
            .filter(|line| !line.starts_with(' '))
            .skip(2)
            .collect::<Vec<_>>()
            .join("\n");
        expect![[r#"
            autopatch_changelog 'libc6:amd64' '/usr/share/doc/libc6/changelog.Debian.gz' '/usr/share/doc/libc6/changelog.Debian.amd64.gz' '/usr/share/doc/glibc/changelog.Debian.gz' '/usr/share/doc/glibc/changelog.Debian.amd64.gz' '/usr/share/doc/libc6/changelog.gz' '/usr/share/doc/glibc/changelog.gz'
            autopatch_changelog 'tzdata' '/usr/share/doc/tzdata/changelog.Debian.gz' '/usr/share/doc/tzdata/changelog.gz'
            autopatch_changelog 'it'\''s' '/usr/share/doc/it'\''s/changelog.Debian.gz' '/usr/share/doc/it'\''s/changelog.gz'
            exit 0"#]].assert_eq(&calls);
        assert!(script.starts_with(BUNDLE_FUNCTION));
    }

    #[test]
    fn bundle_parse_handles_found_missing_unreadable_and_cut_off() {
        let output = "\
@@autopatch-changelog libc6:amd64
glibc (2.36-9+deb12u10) bookworm; urgency=medium
  * fixes CVE-2025-4802

@@autopatch-end libc6:amd64
@@autopatch-changelog nonewline
no trailing newline
@@autopatch-end nonewline
@@autopatch-changelog gone
@@autopatch-missing gone
@@autopatch-changelog corrupt
partial
@@autopatch-unreadable corrupt
@@autopatch-changelog cut
half a changel";
        let bundle = parse_changelog_bundle(output);
        expect![[r#"
            {
                "corrupt": None,
                "cut": None,
                "gone": None,
                "libc6:amd64": Some(
                    "glibc (2.36-9+deb12u10) bookworm; urgency=medium\n  * fixes CVE-2025-4802\n",
                ),
                "nonewline": Some(
                    "no trailing newline",
                ),
            }"#]]
        .assert_eq(&format!("{bundle:#?}"));
    }

    #[test]
    fn docs_excluded_follows_dpkg_filter_order() {
        let cases = [
            ("", false),
            ("force-unsafe-io\n", false),
            ("path-exclude=/usr/share/doc/*\n", true),
            (
                "# slim\npath-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n",
                true,
            ),
            ("path-exclude=/usr/share/doc/*\npath-include=/usr/share/doc/*\n", false),
            ("path-exclude=/usr/share/doc/*/changelog*\n", true),
            ("path-exclude=/usr/share/man/*\npath-exclude=/usr/share/locale/*\n", false),
            ("path-exclude=\"/usr/share/doc/*\"\n", true),
            ("path-exclude=/usr/share/doc/[a-z]*/*.gz\n", true),
            ("path-exclude=/usr/share/doc/[!a]*\n", false),
            ("#path-exclude=/usr/share/doc/*\n", false),
        ];
        for (text, excluded) in cases {
            assert_eq!(docs_excluded(text), excluded, "{text:?}");
        }
    }

    #[test]
    fn fnmatch_basics() {
        let cases = [
            ("*", "", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a\\*c", "a*c", true),
            ("a\\*c", "abc", false),
            ("[]x]", "]", true),
            ("[a", "[a", true),
            ("/usr/*/doc", "/usr/share/local/doc", true),
        ];
        for (pattern, text, matches) in cases {
            assert_eq!(fnmatch(pattern.as_bytes(), text.as_bytes()), matches, "{pattern} {text}");
        }
    }

    #[test]
    fn summarize_reads_cves_between_source_versions() {
        let line = |name: &str, version: &str, source: &str, source_version: &str| {
            format!("{name}\t{version}\tamd64\t{source}\t{source_version}\tii \n")
        };
        let old = parse_dpkg_query(
            &[
                line("libfoo1:amd64", "1.0-1", "foo", "1.0-1"),
                line("foo-bin", "1:1.0-1", "foo", "1.0-1"),
                line("nodocs", "1.0", "nodocs", "1.0"),
                line("rebuilt", "2.0-1", "rebuilt", "2.0-1"),
            ]
            .concat(),
        )
        .expect("parses");
        let new = parse_dpkg_query(
            &[
                line("libfoo1:amd64", "1.0-3", "foo", "1.0-3"),
                line("foo-bin", "1:1.0-3", "foo", "1.0-3"),
                line("nodocs", "1.1", "nodocs", "1.1"),
                line("rebuilt", "2.0-1+b1", "rebuilt", "2.0-1"),
            ]
            .concat(),
        )
        .expect("parses");
        let foo_changelog = "\
foo (1.0-3) bookworm-security; urgency=high

  * Fix CVE-2024-1111 and CVE-2024-2222.

 -- Jane Doe <jane@example.org>  Mon, 01 Jan 2024 00:00:00 +0000

foo (1.0-2) bookworm; urgency=medium

  * Fix cve-2023-3333.

 -- Jane Doe <jane@example.org>  Sun, 31 Dec 2023 00:00:00 +0000

foo (1.0-1) unstable; urgency=medium

  * Initial release, with CVE-2020-0001 already fixed.

 -- Jane Doe <jane@example.org>  Sat, 30 Dec 2023 00:00:00 +0000
";
        let rebuilt_changelog = "\
rebuilt (2.0-1) unstable; urgency=medium

  * Fix CVE-2019-0001.

 -- Jane Doe <jane@example.org>  Sat, 30 Dec 2023 00:00:00 +0000
";
        let changelogs = BTreeMap::from([
            // Looked up by the name without its qualifier too.
            ("libfoo1".to_owned(), Some(foo_changelog.to_owned())),
            ("foo-bin".to_owned(), Some(foo_changelog.to_owned())),
            ("nodocs".to_owned(), None),
            ("rebuilt".to_owned(), Some(rebuilt_changelog.to_owned())),
        ]);
        let mut evidence = summarize(&diff(&old, &new), &changelogs);
        let pending = crate::apt::parse_apt_simulation(
            "Inst libfoo1 [1.0-1] (1.0-3 Debian-Security:12/oldstable-security [amd64])\n\
             Inst nodocs [1.0] (1.1 Debian:12.11/oldstable [amd64])\n",
        )
        .expect("parses");
        mark_security(&mut evidence, &pending);
        let json = serde_json::to_string_pretty(&evidence).expect("serialises");
        expect![[r#"
            [
              {
                "name": "foo-bin",
                "from": "1:1.0-1",
                "to": "1:1.0-3",
                "source_name": "foo",
                "security": null,
                "cves": [
                  "CVE-2023-3333",
                  "CVE-2024-1111",
                  "CVE-2024-2222"
                ],
                "changelog_available": true
              },
              {
                "name": "libfoo1:amd64",
                "from": "1.0-1",
                "to": "1.0-3",
                "source_name": "foo",
                "security": true,
                "cves": [
                  "CVE-2023-3333",
                  "CVE-2024-1111",
                  "CVE-2024-2222"
                ],
                "changelog_available": true
              },
              {
                "name": "nodocs",
                "from": "1.0",
                "to": "1.1",
                "source_name": "nodocs",
                "security": false,
                "cves": [],
                "changelog_available": false
              },
              {
                "name": "rebuilt",
                "from": "2.0-1",
                "to": "2.0-1+b1",
                "source_name": "rebuilt",
                "security": null,
                "cves": [],
                "changelog_available": true
              }
            ]"#]]
        .assert_eq(&json);
        let back: Vec<UpgradeEvidence> = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, evidence);
    }

    #[test]
    fn security_comes_from_the_plan_for_the_installed_version_only() {
        let upgrade = |name: &str, from: &str, to: &str| UpgradeEvidence {
            name: name.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            source_name: name.to_owned(),
            security: None,
            cves: Vec::new(),
            changelog_available: true,
        };
        let mut evidence = vec![
            // A security upload without a CVE id: security all the same.
            upgrade("liblzma5:amd64", "5.4.1-1+deb12u1", "5.4.1-1+deb12u2"),
            // From the point release: not security.
            upgrade("base-files", "12.4+deb12u10", "12.4+deb12u11"),
            // apt planned another version than the one installed: unknown.
            upgrade("tzdata", "2026b-0+deb12u1", "2026f-0+deb12u1"),
            // No plan lists it (a step installed it by hand): unknown.
            upgrade("openssl", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2"),
            // In two plans (two UpdateOS steps): one says security.
            upgrade("libc6:amd64", "2.36-9+deb12u4", "1:2.36-9+deb12u10"),
        ];
        let first = crate::apt::parse_apt_simulation(
            "Inst liblzma5 [5.4.1-1+deb12u1] (5.4.1-1+deb12u2 Debian-Security:12/oldstable-security [amd64])\n\
             Inst base-files [12.4+deb12u10] (12.4+deb12u11 Debian:12.11/oldstable [amd64])\n\
             Inst tzdata [2026b-0+deb12u1] (2026e-0+deb12u1 Debian-Security:12/oldstable-security [all])\n\
             Inst libc6 [2.36-9+deb12u4] (1:2.36-9+deb12u10 Debian:12.11/oldstable [amd64])\n",
        )
        .expect("parses");
        let second = crate::apt::parse_apt_simulation(
            "Inst libc6 [2.36-9+deb12u4] (1:2.36-9+deb12u10 Debian-Security:12/oldstable-security [amd64])\n",
        )
        .expect("parses");
        mark_security(&mut evidence, &[first, second].concat());
        let marks: Vec<(&str, Option<bool>)> =
            evidence.iter().map(|item| (item.name.as_str(), item.security)).collect();
        assert_eq!(
            marks,
            [
                ("liblzma5:amd64", Some(true)),
                ("base-files", Some(false)),
                ("tzdata", None),
                ("openssl", None),
                ("libc6:amd64", Some(true)),
            ]
        );
    }

    #[test]
    fn real_bookworm_upgrade_end_to_end() {
        // Manifests before and after a real dist-upgrade of the golden image, the bundle the
        // script printed in that container (each changelog trimmed after the old version's entry,
        // plus a request for a package that is not installed), and apt's simulation beforehand.
        let fixture = |name: &str| {
            let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
            std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
        };
        let old = parse_dpkg_query(&fixture("manifest/golden-bookworm.tsv")).expect("parses");
        let new = parse_dpkg_query(&fixture("manifest/upgraded-bookworm.tsv")).expect("parses");
        let diff = diff(&old, &new);
        let requests: Vec<ChangelogRequest> =
            diff.upgraded.iter().map(ChangelogRequest::from).collect();
        let script = changelog_bundle_script(&requests);
        expect![[r#"
            autopatch_changelog 'apt' '/usr/share/doc/apt/changelog.Debian.gz' '/usr/share/doc/apt/changelog.Debian.amd64.gz' '/usr/share/doc/apt/changelog.gz'
            autopatch_changelog 'libapt-pkg6.0:amd64' '/usr/share/doc/libapt-pkg6.0/changelog.Debian.gz' '/usr/share/doc/libapt-pkg6.0/changelog.Debian.amd64.gz' '/usr/share/doc/apt/changelog.Debian.gz' '/usr/share/doc/apt/changelog.Debian.amd64.gz' '/usr/share/doc/libapt-pkg6.0/changelog.gz' '/usr/share/doc/apt/changelog.gz'
            autopatch_changelog 'liblzma5:amd64' '/usr/share/doc/liblzma5/changelog.Debian.gz' '/usr/share/doc/liblzma5/changelog.Debian.amd64.gz' '/usr/share/doc/xz-utils/changelog.Debian.gz' '/usr/share/doc/xz-utils/changelog.Debian.amd64.gz' '/usr/share/doc/liblzma5/changelog.gz' '/usr/share/doc/xz-utils/changelog.gz'
            autopatch_changelog 'libpcre2-8-0:amd64' '/usr/share/doc/libpcre2-8-0/changelog.Debian.gz' '/usr/share/doc/libpcre2-8-0/changelog.Debian.amd64.gz' '/usr/share/doc/pcre2/changelog.Debian.gz' '/usr/share/doc/pcre2/changelog.Debian.amd64.gz' '/usr/share/doc/libpcre2-8-0/changelog.gz' '/usr/share/doc/pcre2/changelog.gz'
            autopatch_changelog 'libperl5.36:amd64' '/usr/share/doc/libperl5.36/changelog.Debian.gz' '/usr/share/doc/libperl5.36/changelog.Debian.amd64.gz' '/usr/share/doc/perl/changelog.Debian.gz' '/usr/share/doc/perl/changelog.Debian.amd64.gz' '/usr/share/doc/libperl5.36/changelog.gz' '/usr/share/doc/perl/changelog.gz'
            autopatch_changelog 'perl' '/usr/share/doc/perl/changelog.Debian.gz' '/usr/share/doc/perl/changelog.Debian.amd64.gz' '/usr/share/doc/perl/changelog.gz'
            autopatch_changelog 'perl-base' '/usr/share/doc/perl-base/changelog.Debian.gz' '/usr/share/doc/perl-base/changelog.Debian.amd64.gz' '/usr/share/doc/perl/changelog.Debian.gz' '/usr/share/doc/perl/changelog.Debian.amd64.gz' '/usr/share/doc/perl-base/changelog.gz' '/usr/share/doc/perl/changelog.gz'
            autopatch_changelog 'perl-modules-5.36' '/usr/share/doc/perl-modules-5.36/changelog.Debian.gz' '/usr/share/doc/perl/changelog.Debian.gz' '/usr/share/doc/perl-modules-5.36/changelog.gz' '/usr/share/doc/perl/changelog.gz'
            autopatch_changelog 'tzdata' '/usr/share/doc/tzdata/changelog.Debian.gz' '/usr/share/doc/tzdata/changelog.gz'
            exit 0
        "#]]
        .assert_eq(script.strip_prefix(BUNDLE_FUNCTION).expect("function comes first"));
        let bundle = parse_changelog_bundle(&fixture("report/bookworm-upgrade-changelogs.txt"));
        assert_eq!(bundle.get("ghost"), Some(&None));
        assert_eq!(bundle.values().filter(|text| text.is_some()).count(), requests.len());
        let mut evidence = summarize(&diff, &bundle);
        let pending = crate::apt::parse_apt_simulation(&fixture("apt/bookworm-dist-upgrade.txt"))
            .expect("parses");
        mark_security(&mut evidence, &pending);
        let rendered: Vec<String> = evidence
            .iter()
            .map(|item| {
                format!(
                    "{} {} -> {} source={} security={:?} changelog={} cves={}",
                    item.name,
                    item.from,
                    item.to,
                    item.source_name,
                    item.security,
                    item.changelog_available,
                    item.cves.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        expect![[r#"
            apt 2.6.1 -> 2.6.2 source=apt security=Some(true) changelog=true cves=CVE-2026-109518
            libapt-pkg6.0:amd64 2.6.1 -> 2.6.2 source=apt security=Some(true) changelog=true cves=CVE-2026-109518
            liblzma5:amd64 5.4.1-1+deb12u1 -> 5.4.1-1+deb12u2 source=xz-utils security=Some(true) changelog=true cves=
            libpcre2-8-0:amd64 10.42-1 -> 10.42-1+deb12u2 source=pcre2 security=Some(true) changelog=true cves=CVE-2026-103111
            libperl5.36:amd64 5.36.0-7+deb12u3 -> 5.36.0-7+deb12u4 source=perl security=Some(true) changelog=true cves=CVE-2025-15649,CVE-2026-7010,CVE-2026-7017,CVE-2026-8376,CVE-2026-12087,CVE-2026-13221,CVE-2026-19487,CVE-2026-42496,CVE-2026-42497,CVE-2026-48959,CVE-2026-48962,CVE-2026-57432,CVE-2026-57433
            perl 5.36.0-7+deb12u3 -> 5.36.0-7+deb12u4 source=perl security=Some(true) changelog=true cves=CVE-2025-15649,CVE-2026-7010,CVE-2026-7017,CVE-2026-8376,CVE-2026-12087,CVE-2026-13221,CVE-2026-19487,CVE-2026-42496,CVE-2026-42497,CVE-2026-48959,CVE-2026-48962,CVE-2026-57432,CVE-2026-57433
            perl-base 5.36.0-7+deb12u3 -> 5.36.0-7+deb12u4 source=perl security=Some(true) changelog=true cves=CVE-2025-15649,CVE-2026-7010,CVE-2026-7017,CVE-2026-8376,CVE-2026-12087,CVE-2026-13221,CVE-2026-19487,CVE-2026-42496,CVE-2026-42497,CVE-2026-48959,CVE-2026-48962,CVE-2026-57432,CVE-2026-57433
            perl-modules-5.36 5.36.0-7+deb12u3 -> 5.36.0-7+deb12u4 source=perl security=Some(true) changelog=true cves=CVE-2025-15649,CVE-2026-7010,CVE-2026-7017,CVE-2026-8376,CVE-2026-12087,CVE-2026-13221,CVE-2026-19487,CVE-2026-42496,CVE-2026-42497,CVE-2026-48959,CVE-2026-48962,CVE-2026-57432,CVE-2026-57433
            tzdata 2026b-0+deb12u1 -> 2026f-0+deb12u1 source=tzdata security=Some(true) changelog=true cves="#]].assert_eq(&rendered.join("\n"));
    }
}
