//! Installed-package manifests: the `dpkg-query` command that lists them, its parser, and the
//! diff between two manifests (what a build upgraded, downgraded, added and removed).
//!
//! The caller runs [`dpkg_query_command`] inside a container and hands the output text to
//! [`parse_dpkg_query`]. Packages are keyed by `${binary:Package}`, which carries an architecture
//! qualifier (`libc6:amd64`) only when multi-arch needs one, so both manifests of a diff must come
//! from the same command.

use std::collections::BTreeMap;

use crate::debversion::{DebianVersion, DebianVersionError};

/// The `dpkg-query --showformat` format: one tab-separated line per package with binary package
/// name, version, architecture, source package name, source version and status abbreviation.
/// dpkg-query expands the `\t` and `\n` escapes itself, so the text is safe to pass as one argument.
pub const DPKG_QUERY_FORMAT: &str = r"${binary:Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\t${db:Status-Abbrev}\n";

/// The argument vector that lists every package dpkg knows about, in [`DPKG_QUERY_FORMAT`].
/// Run it without a shell (exec argv); no quoting is needed.
pub fn dpkg_query_command() -> Vec<String> {
    vec!["dpkg-query".to_owned(), "-W".to_owned(), format!("--showformat={DPKG_QUERY_FORMAT}")]
}

/// The packages installed in an image, keyed by [`Package::name`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub packages: BTreeMap<String, Package>,
}

/// One installed binary package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `${binary:Package}`: the name, with `:arch` only when multi-arch requires it.
    pub name: String,
    pub version: DebianVersion,
    /// `amd64`, `all`, ...
    pub architecture: String,
    /// The source package; dpkg fills in the binary name when they are the same.
    pub source_name: String,
    /// The source version, which is what changelog entries carry. It differs from
    /// [`Package::version`] after a binNMU (`+b1`) and for some sources that version binaries apart.
    pub source_version: DebianVersion,
}

impl Package {
    /// The name without an architecture qualifier (`libc6:amd64` gives `libc6`), as used in
    /// `/usr/share/doc` paths and in apt's output for native packages.
    pub fn name_without_architecture(&self) -> &str {
        strip_architecture(&self.name)
    }
}

/// Removes a `:arch` qualifier from a binary package name.
pub(crate) fn strip_architecture(name: &str) -> &str {
    name.split_once(':').map_or(name, |(name, _)| name)
}

/// Why `dpkg-query` output could not be read. Line numbers count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("line {line}: expected 6 tab-separated fields, found {found}")]
    FieldCount { line: usize, found: usize },
    #[error("line {line}: package name is empty")]
    EmptyName { line: usize },
    #[error("line {line}: status abbreviation `{status}` of package `{package}` is malformed")]
    Status { line: usize, package: String, status: String },
    #[error("line {line}: invalid version of package `{package}`")]
    Version {
        line: usize,
        package: String,
        #[source]
        source: DebianVersionError,
    },
    #[error("line {line}: invalid source version of package `{package}`")]
    SourceVersion {
        line: usize,
        package: String,
        #[source]
        source: DebianVersionError,
    },
    #[error("line {line}: package `{package}` is listed twice")]
    Duplicate { line: usize, package: String },
}

/// Parses `dpkg-query` output made with [`DPKG_QUERY_FORMAT`], keeping only installed packages
/// (status abbreviation whose second character is `i`, as in `ii` and `hi`).
/// Blank lines are ignored. An empty source name or version falls back to the binary's own.
pub fn parse_dpkg_query(text: &str) -> Result<Manifest, ManifestError> {
    let mut manifest = Manifest::default();
    for (line_idx, line) in text.lines().enumerate() {
        let line_number = line_idx + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, version, architecture, source_name, source_version, status] = fields[..] else {
            return Err(ManifestError::FieldCount { line: line_number, found: fields.len() });
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(ManifestError::EmptyName { line: line_number });
        }
        // `${db:Status-Abbrev}` is three characters (want, status, error flag); the last is often
        // a space.
        let mut status_characters = status.chars();
        let (Some(_want), Some(current)) = (status_characters.next(), status_characters.next())
        else {
            return Err(ManifestError::Status {
                line: line_number,
                package: name.to_owned(),
                status: status.to_owned(),
            });
        };
        if current != 'i' {
            continue;
        }
        let version = DebianVersion::parse(version.trim()).map_err(|source| {
            ManifestError::Version { line: line_number, package: name.to_owned(), source }
        })?;
        let source_name = match source_name.trim() {
            "" => strip_architecture(name),
            source_name => source_name,
        };
        let source_version = match source_version.trim() {
            "" => version.clone(),
            text => DebianVersion::parse(text).map_err(|source| ManifestError::SourceVersion {
                line: line_number,
                package: name.to_owned(),
                source,
            })?,
        };
        let package = Package {
            name: name.to_owned(),
            version,
            architecture: architecture.trim().to_owned(),
            source_name: source_name.to_owned(),
            source_version,
        };
        if manifest.packages.insert(name.to_owned(), package).is_some() {
            return Err(ManifestError::Duplicate { line: line_number, package: name.to_owned() });
        }
    }
    Ok(manifest)
}

/// The differences between two manifests, each list sorted by package name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestDiff {
    pub upgraded: Vec<Change>,
    pub downgraded: Vec<Change>,
    /// Packages only in the new manifest, as they are there.
    pub added: Vec<Package>,
    /// Packages only in the old manifest, as they were there.
    pub removed: Vec<Package>,
}

/// A package present in both manifests at different versions (by Debian ordering).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The manifest key, [`Package::name`].
    pub name: String,
    pub from: DebianVersion,
    pub to: DebianVersion,
    /// The architecture in the new manifest.
    pub architecture: String,
    /// The source package in the new manifest.
    pub source_name: String,
    pub from_source_version: DebianVersion,
    pub to_source_version: DebianVersion,
}

/// Compares two manifests by package name and Debian version order. Versions that dpkg
/// considers equal (`1.0` and `1.0-0`) are not a change.
pub fn diff(old: &Manifest, new: &Manifest) -> ManifestDiff {
    let mut result = ManifestDiff::default();
    for (name, old_package) in &old.packages {
        let Some(new_package) = new.packages.get(name) else {
            result.removed.push(old_package.clone());
            continue;
        };
        let change = || Change {
            name: name.clone(),
            from: old_package.version.clone(),
            to: new_package.version.clone(),
            architecture: new_package.architecture.clone(),
            source_name: new_package.source_name.clone(),
            from_source_version: old_package.source_version.clone(),
            to_source_version: new_package.source_version.clone(),
        };
        match old_package.version.cmp(&new_package.version) {
            std::cmp::Ordering::Less => result.upgraded.push(change()),
            std::cmp::Ordering::Greater => result.downgraded.push(change()),
            std::cmp::Ordering::Equal => {}
        }
    }
    result.added = new
        .packages
        .iter()
        .filter(|(name, _)| !old.packages.contains_key(*name))
        .map(|(_, package)| package.clone())
        .collect();
    // Iterating BTreeMaps keeps every list sorted by name.
    result
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    const GOLDEN: &str = include_str!("../tests/fixtures/manifest/golden-bookworm.tsv");
    const UPGRADED: &str = include_str!("../tests/fixtures/manifest/upgraded-bookworm.tsv");

    fn line(name: &str, version: &str, status: &str) -> String {
        format!("{name}\t{version}\tamd64\t{name}\t{version}\t{status}\n")
    }

    fn render(diff: &ManifestDiff) -> String {
        let mut out = String::new();
        for (label, changes) in [("upgraded", &diff.upgraded), ("downgraded", &diff.downgraded)] {
            for change in changes {
                out += &format!(
                    "{label} {} {} -> {} (source {} {} -> {})\n",
                    change.name,
                    change.from,
                    change.to,
                    change.source_name,
                    change.from_source_version,
                    change.to_source_version
                );
            }
        }
        for (label, packages) in [("added", &diff.added), ("removed", &diff.removed)] {
            for package in packages {
                out += &format!("{label} {} {}\n", package.name, package.version);
            }
        }
        out
    }

    #[test]
    fn command_uses_the_format_verbatim() {
        let command = dpkg_query_command();
        assert_eq!(command[..2], ["dpkg-query", "-W"]);
        assert_eq!(
            command[2],
            r"--showformat=${binary:Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\t${db:Status-Abbrev}\n"
        );
    }

    #[test]
    fn parses_a_real_golden_image() {
        let manifest = parse_dpkg_query(GOLDEN).expect("fixture parses");
        assert_eq!(manifest.packages.len(), 96);
        let libc = &manifest.packages["libc6:amd64"];
        assert_eq!(libc.version.as_str(), "2.36-9+deb12u14");
        assert_eq!(libc.source_name, "glibc");
        assert_eq!(libc.architecture, "amd64");
        let tzdata = &manifest.packages["tzdata"];
        assert_eq!(
            (tzdata.architecture.as_str(), tzdata.version.as_str()),
            ("all", "2026b-0+deb12u1")
        );
        // A binary whose source has another name and version layout.
        let bsdutils = &manifest.packages["bsdutils"];
        assert_eq!(bsdutils.source_name, "util-linux");
        assert_eq!(
            (bsdutils.version.as_str(), bsdutils.source_version.as_str()),
            ("1:2.38.1-5+deb12u3", "2.38.1-5+deb12u3")
        );
    }

    #[test]
    fn keeps_only_installed_packages() {
        let text = [
            line("held", "1.0", "hi "),
            line("installed", "1.0", "ii "),
            line("configfiles", "1.0", "rc "),
            line("unpacked", "1.0", "iU "),
            line("reinstreq", "1.0", "iiR"),
        ]
        .concat();
        let manifest = parse_dpkg_query(&text).expect("parses");
        let names: Vec<&str> = manifest.packages.keys().map(String::as_str).collect();
        assert_eq!(names, ["held", "installed", "reinstreq"]);
    }

    #[test]
    fn architecture_qualifier_and_empty_source_fields() {
        let text = "libc6:amd64\t2.36-9\tamd64\t\t\tii \n";
        let manifest = parse_dpkg_query(text).expect("parses");
        let package = &manifest.packages["libc6:amd64"];
        assert_eq!(package.name_without_architecture(), "libc6");
        assert_eq!(package.source_name, "libc6");
        assert_eq!(package.source_version.as_str(), "2.36-9");
    }

    #[test]
    fn errors_name_the_line() {
        let good = line("good", "1.0", "ii ");
        let cases = [
            (format!("{good}\nbad\t1.0\n"), "line 3: expected 6 tab-separated fields, found 2"),
            (
                format!("{good}{}", line("bad", "1.0_x", "ii ")),
                "line 2: invalid version of package `bad`",
            ),
            ("x\t1\tall\tx\t1:\tii \n".to_owned(), "line 1: invalid source version of package `x`"),
            (
                "x\t1\tall\tx\t1\ti\n".to_owned(),
                "line 1: status abbreviation `i` of package `x` is malformed",
            ),
            (format!("{good}{good}"), "line 2: package `good` is listed twice"),
            ("\t1\tall\tx\t1\tii \n".to_owned(), "line 1: package name is empty"),
        ];
        for (text, message) in cases {
            assert_eq!(parse_dpkg_query(&text).expect_err(message).to_string(), message);
        }
        // The version error keeps its cause as the source.
        let error = parse_dpkg_query(&line("bad", "1.0_x", "ii ")).expect_err("bad version");
        let source = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(
            source.as_deref(),
            Some(
                "invalid debian version `1.0_x`: character `_` is not allowed in the upstream version"
            )
        );
    }

    #[test]
    fn diff_uses_debian_ordering() {
        let old = parse_dpkg_query(
            &[
                line("curl", "7.88.1-10+deb12u5", "ii "),
                line("libc6", "2.36-9+deb12u4", "ii "),
                line("gone", "1.0", "ii "),
                line("pinned", "2.0", "ii "),
                line("same", "1.0", "ii "),
                line("tilde", "1.0~rc1", "ii "),
            ]
            .concat(),
        )
        .expect("parses");
        let new = parse_dpkg_query(
            &[
                line("curl", "7.88.1-10+deb12u12", "ii "),
                line("libc6", "2.36-9+deb12u10", "ii "),
                line("fresh", "0.1", "ii "),
                line("pinned", "1.9", "ii "),
                line("same", "1.0-0", "ii "),
                line("tilde", "1.0", "ii "),
            ]
            .concat(),
        )
        .expect("parses");
        expect![[r#"
            upgraded curl 7.88.1-10+deb12u5 -> 7.88.1-10+deb12u12 (source curl 7.88.1-10+deb12u5 -> 7.88.1-10+deb12u12)
            upgraded libc6 2.36-9+deb12u4 -> 2.36-9+deb12u10 (source libc6 2.36-9+deb12u4 -> 2.36-9+deb12u10)
            upgraded tilde 1.0~rc1 -> 1.0 (source tilde 1.0~rc1 -> 1.0)
            downgraded pinned 2.0 -> 1.9 (source pinned 2.0 -> 1.9)
            added fresh 0.1
            removed gone 1.0
        "#]]
        .assert_eq(&render(&diff(&old, &new)));
        assert_eq!(diff(&new, &new), ManifestDiff::default());
    }

    #[test]
    fn diff_of_a_real_upgrade() {
        // Before and after `apt-get dist-upgrade` with bookworm-security enabled, in a container
        // of the golden image (the same upgrade as tests/fixtures/apt/bookworm-dist-upgrade.txt).
        let old = parse_dpkg_query(GOLDEN).expect("fixture parses");
        let new = parse_dpkg_query(UPGRADED).expect("fixture parses");
        expect![[r#"
            upgraded apt 2.6.1 -> 2.6.2 (source apt 2.6.1 -> 2.6.2)
            upgraded libapt-pkg6.0:amd64 2.6.1 -> 2.6.2 (source apt 2.6.1 -> 2.6.2)
            upgraded liblzma5:amd64 5.4.1-1+deb12u1 -> 5.4.1-1+deb12u2 (source xz-utils 5.4.1-1+deb12u1 -> 5.4.1-1+deb12u2)
            upgraded libpcre2-8-0:amd64 10.42-1 -> 10.42-1+deb12u2 (source pcre2 10.42-1 -> 10.42-1+deb12u2)
            upgraded libperl5.36:amd64 5.36.0-7+deb12u3 -> 5.36.0-7+deb12u4 (source perl 5.36.0-7+deb12u3 -> 5.36.0-7+deb12u4)
            upgraded perl 5.36.0-7+deb12u3 -> 5.36.0-7+deb12u4 (source perl 5.36.0-7+deb12u3 -> 5.36.0-7+deb12u4)
            upgraded perl-base 5.36.0-7+deb12u3 -> 5.36.0-7+deb12u4 (source perl 5.36.0-7+deb12u3 -> 5.36.0-7+deb12u4)
            upgraded perl-modules-5.36 5.36.0-7+deb12u3 -> 5.36.0-7+deb12u4 (source perl 5.36.0-7+deb12u3 -> 5.36.0-7+deb12u4)
            upgraded tzdata 2026b-0+deb12u1 -> 2026f-0+deb12u1 (source tzdata 2026b-0+deb12u1 -> 2026f-0+deb12u1)
        "#]]
        .assert_eq(&render(&diff(&old, &new)));
    }
}
