//! Evidence for an image: its package manifest, what changed against its
//! parent, the CVEs each upgrade fixes, read from the Debian changelogs
//! inside the image, and which upgrades are security updates, read from
//! apt's plan as the UpdateOS action printed it. Gathered with a few
//! `exec`s in the build container.

use std::collections::BTreeMap;

use autopatch_engine::{Engine, ExecSpec};
use autopatch_evidence::{ChangelogRequest, Manifest, PendingChange, UpgradeEvidence};
use serde::{Deserialize, Serialize};

use crate::error::BuildError;
use crate::provenance::{BuildProvenance, BuiltBy};
use crate::toe::PhaseRecord;

/// The line before apt's plan in an UpdateOS step's output.
pub(crate) const APT_PLAN_BEGIN: &str =
    "@@autopatch-apt-plan-begin (apt's plan: the archive of each new version)";
/// The line after it.
pub(crate) const APT_PLAN_END: &str = "@@autopatch-apt-plan-end";

/// The evidence report stored with every image (JSON, `evidence.json` in
/// its build's artifact folder). Keys are snake_case; the keys added after
/// the first release are absent from evidence written before them (and from
/// an `image diff`, which compares two images and builds nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageEvidence {
    /// The image version (`recipe/x.y.z/N`).
    pub image: String,
    /// The parent's image version, or the engine reference the recipe gave
    /// when the parent is not a registered image; null for a bootstrapped
    /// image.
    pub parent: Option<String>,
    /// When the image was published (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// The local account and host that built it (not an AWS identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_by: Option<BuiltBy>,
    /// The build that made it; absent for a bootstrapped image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildProvenance>,
    pub package_count: usize,
    pub upgraded: Vec<UpgradeEvidence>,
    pub downgraded: Vec<VersionChange>,
    pub added: Vec<PackageVersion>,
    pub removed: Vec<PackageVersion>,
    /// Every CVE fixed by the upgrades, sorted.
    pub cves: Vec<String>,
    /// False when the image has no changelogs to read (docs excluded), so
    /// "no CVEs" must not be read as "none fixed".
    pub changelogs_available: bool,
    pub notes: Vec<String>,
    /// The `dpkg-query` output the manifest was parsed from.
    #[serde(skip)]
    pub manifest_text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageVersion {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionChange {
    pub name: String,
    pub from: String,
    pub to: String,
}

/// A manifest with the text it came from.
#[derive(Debug, Clone)]
pub(crate) struct ManifestReading {
    pub(crate) manifest: Manifest,
    pub(crate) text: String,
}

/// Reads the package manifest of a running container. An image without dpkg
/// has an empty manifest.
pub(crate) async fn read_manifest<E: Engine>(
    engine: &E,
    container: &str,
) -> Result<ManifestReading, BuildError> {
    let command = autopatch_evidence::dpkg_query_command();
    let probe = ExecSpec {
        cmd: vec!["sh".into(), "-c".into(), "command -v dpkg-query >/dev/null 2>&1".into()],
        ..ExecSpec::default()
    };
    if engine.exec(container, &probe, &mut ()).await?.exit_code != 0 {
        return Ok(ManifestReading { manifest: Manifest::default(), text: String::new() });
    }
    let result =
        engine.exec(container, &ExecSpec { cmd: command, ..ExecSpec::default() }, &mut ()).await?;
    let text = result.stdout_text();
    if result.exit_code != 0 {
        return Err(BuildError::Manifest {
            image: container.to_owned(),
            message: format!(
                "dpkg-query exited {}: {}",
                result.exit_code,
                result.stderr_text().trim()
            ),
        });
    }
    let manifest = autopatch_evidence::parse_dpkg_query(&text).map_err(|error| {
        BuildError::Manifest { image: container.to_owned(), message: error.to_string() }
    })?;
    Ok(ManifestReading { manifest, text })
}

/// A manifest as an image row stores it (the `dpkg-query` output it was
/// read as), for the image `image`.
pub(crate) fn stored_manifest(text: &str, image: &str) -> Result<ManifestReading, BuildError> {
    let manifest = autopatch_evidence::parse_dpkg_query(text).map_err(|error| {
        BuildError::Manifest { image: image.to_owned(), message: error.to_string() }
    })?;
    Ok(ManifestReading { manifest, text: text.to_owned() })
}

/// apt's plans as the UpdateOS steps of `phases` printed them (between
/// [`APT_PLAN_BEGIN`] and [`APT_PLAN_END`]), parsed; a plan that cannot be
/// read is left out and said in the returned notes. Only UpdateOS steps
/// are read: another step's output is the component's own.
pub(crate) fn apt_plans(phases: &[PhaseRecord]) -> (Vec<PendingChange>, Vec<String>) {
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    let steps = phases.iter().flat_map(|phase| phase.steps.iter().map(move |step| (phase, step)));
    for (phase, step) in steps.filter(|(_, step)| step.action == "UpdateOS") {
        let Some(stdout) = step.outputs.get("stdout") else { continue };
        for plan in plan_sections(stdout) {
            match autopatch_evidence::parse_apt_simulation(plan) {
                Ok(plan) => changes.extend(plan),
                Err(error) => notes.push(format!(
                    "apt's plan in step {} of component {} could not be read ({error}): \
                     whether its upgrades are security updates is unknown",
                    step.name, phase.component
                )),
            }
        }
    }
    (changes, notes)
}

/// The text between each [`APT_PLAN_BEGIN`] line and the next
/// [`APT_PLAN_END`] line; a plan cut off before its end is left out.
fn plan_sections(output: &str) -> Vec<&str> {
    let mut sections = Vec::new();
    let mut rest = output;
    while let Some(begin) = rest.find(APT_PLAN_BEGIN) {
        let after = &rest[begin + APT_PLAN_BEGIN.len()..];
        let Some(end) = after.find(APT_PLAN_END) else { break };
        sections.push(&after[..end]);
        rest = &after[end + APT_PLAN_END.len()..];
    }
    sections
}

/// Reads the result's manifest and the upgraded packages' changelogs in the
/// build container, and compares with the parent's manifest. `apt_plan` is
/// what apt planned when the build upgraded ([`apt_plans`]): it says which
/// upgrades came from a security archive.
pub(crate) async fn collect<E: Engine>(
    engine: &E,
    container: &str,
    parent: &ManifestReading,
    image: &str,
    parent_name: &str,
    apt_plan: &[PendingChange],
) -> Result<ImageEvidence, BuildError> {
    let current = read_manifest(engine, container).await?;
    let diff = autopatch_evidence::diff(&parent.manifest, &current.manifest);
    let mut notes = Vec::new();

    let dpkg_config = engine
        .exec(
            container,
            &ExecSpec {
                cmd: vec![
                    "sh".into(),
                    "-c".into(),
                    "cat /etc/dpkg/dpkg.cfg /etc/dpkg/dpkg.cfg.d/* 2>/dev/null".into(),
                ],
                ..ExecSpec::default()
            },
            &mut (),
        )
        .await?
        .stdout_text();
    let docs_excluded = autopatch_evidence::docs_excluded(&dpkg_config);
    let changelogs = if diff.upgraded.is_empty() {
        BTreeMap::new()
    } else {
        let requests: Vec<ChangelogRequest> =
            diff.upgraded.iter().map(ChangelogRequest::from).collect();
        let script = autopatch_evidence::changelog_bundle_script(&requests);
        let result = engine
            .exec(
                container,
                &ExecSpec { cmd: vec!["sh".into(), "-c".into(), script], ..ExecSpec::default() },
                &mut (),
            )
            .await?;
        autopatch_evidence::parse_changelog_bundle(&result.stdout_text())
    };
    let mut upgraded = autopatch_evidence::summarize(&diff, &changelogs);
    autopatch_evidence::mark_security(&mut upgraded, apt_plan);
    let missing = upgraded.iter().filter(|upgrade| !upgrade.changelog_available).count();
    let changelogs_available = !docs_excluded && (upgraded.is_empty() || missing < upgraded.len());
    if docs_excluded {
        notes.push(
            "the image excludes /usr/share/doc from dpkg (path-exclude): changelogs are not installed, so CVEs fixed cannot be read from it"
                .to_owned(),
        );
    } else if missing > 0 {
        notes.push(format!(
            "{missing} upgraded package(s) have no changelog in the image; their CVEs are unknown"
        ));
    }
    let unknown = upgraded.iter().filter(|upgrade| upgrade.security.is_none()).count();
    if unknown > 0 {
        notes.push(format!(
            "{unknown} upgraded package(s) are not in apt's plan of an UpdateOS step at the \
             version installed: whether they are security updates is unknown"
        ));
    }
    let mut cves: Vec<String> = upgraded
        .iter()
        .flat_map(|upgrade| upgrade.cves.iter().map(|cve| cve.to_string()))
        .collect();
    cves.sort();
    cves.dedup();
    Ok(ImageEvidence {
        image: image.to_owned(),
        parent: Some(parent_name.to_owned()),
        created_at: None,
        built_by: None,
        build: None,
        package_count: current.manifest.packages.len(),
        upgraded,
        downgraded: diff
            .downgraded
            .iter()
            .map(|c| VersionChange {
                name: c.name.clone(),
                from: c.from.to_string(),
                to: c.to.to_string(),
            })
            .collect(),
        added: diff
            .added
            .iter()
            .map(|p| PackageVersion { name: p.name.clone(), version: p.version.to_string() })
            .collect(),
        removed: diff
            .removed
            .iter()
            .map(|p| PackageVersion { name: p.name.clone(), version: p.version.to_string() })
            .collect(),
        cves,
        changelogs_available,
        notes,
        manifest_text: current.text,
    })
}

/// Evidence for an image with no parent (a bootstrapped golden image),
/// made by `built_by` at `created_at`.
pub(crate) fn root_evidence(
    image: &str,
    reading: &ManifestReading,
    created_at: autopatch_model::Timestamp,
    built_by: BuiltBy,
) -> ImageEvidence {
    ImageEvidence {
        image: image.to_owned(),
        parent: None,
        created_at: Some(created_at.to_string()),
        built_by: Some(built_by),
        build: None,
        package_count: reading.manifest.packages.len(),
        upgraded: Vec::new(),
        downgraded: Vec::new(),
        added: Vec::new(),
        removed: Vec::new(),
        cves: Vec::new(),
        changelogs_available: true,
        notes: vec!["bootstrapped image: no parent to compare with".to_owned()],
        manifest_text: reading.text.clone(),
    }
}

/// Evidence of `to` against `from` (any two images): `container` runs `to`;
/// `from_manifest` is `from`'s stored `dpkg-query` output.
pub async fn diff_in_container<E: Engine>(
    engine: &E,
    container: &str,
    from_manifest: &str,
    from: &str,
    to: &str,
) -> Result<ImageEvidence, BuildError> {
    let parent = stored_manifest(from_manifest, from)?;
    collect(engine, container, &parent, to, from, &[]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_read_between_their_markers_only() {
        let output = format!(
            "Hit:1 http://deb.debian.org/debian bookworm InRelease\n\
             {APT_PLAN_BEGIN}\n\
             Inst openssl [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/oldstable-security [amd64])\n\
             {APT_PLAN_END}\n\
             Inst fake [1] (2 Debian-Security:12/oldstable-security [amd64])\n\
             {APT_PLAN_BEGIN}\n\
             Inst tzdata [2026b-0+deb12u1] (2026f-0+deb12u1 Debian:12.11/oldstable [all])\n\
             {APT_PLAN_END}\n\
             {APT_PLAN_BEGIN}\n\
             Inst cut [1] (2 Debian-Security:12/oldstable-security [amd64])\n"
        );
        let sections: Vec<String> = plan_sections(&output)
            .iter()
            .flat_map(|plan| plan.lines().filter(|line| !line.is_empty()))
            .map(|line| line.split_whitespace().nth(1).unwrap_or_default().to_owned())
            .collect();
        assert_eq!(sections, ["openssl", "tzdata"], "outside the markers, or cut off: not a plan");
    }
}
