//! Compliance evidence for patched Debian-based images: which packages a build upgraded, and which
//! CVEs each upgrade fixes, read from the Debian changelogs inside the image.
//!
//! Architecture invariant: this crate is pure. It does no I/O and runs no commands; it builds the
//! commands a caller runs in a container (`dpkg-query`, a changelog bundle script) and parses the
//! text they print. Only the report types ([`UpgradeEvidence`], [`CveId`]) derive serde: they are
//! stored as JSON by other crates.

#![forbid(unsafe_code)]

mod apt;
mod changelog;
mod debversion;
mod manifest;
mod report;

pub use apt::{AptParseError, PendingChange, PendingChangeKind, parse_apt_simulation};
pub use changelog::{
    Changelog, ChangelogEntry, CveId, CveIdError, cves_fixed, entries_between, parse_changelog,
};
pub use debversion::{DebianVersion, DebianVersionError, DebianVersionErrorKind};
pub use manifest::{
    Change, DPKG_QUERY_FORMAT, Manifest, ManifestDiff, ManifestError, Package, diff,
    dpkg_query_command, parse_dpkg_query,
};
pub use report::{
    ChangelogRequest, UpgradeEvidence, changelog_bundle_script, changelog_paths, docs_excluded,
    mark_security, parse_changelog_bundle, summarize,
};
