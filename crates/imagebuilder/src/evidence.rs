//! Evidence for an image: its package manifest, what changed against its
//! parent, and the CVEs each upgrade fixes, read from the Debian changelogs
//! inside the image. Gathered with a few `exec`s in the build container.

use std::collections::BTreeMap;

use autopatch_engine::{Engine, ExecSpec};
use autopatch_evidence::{ChangelogRequest, Manifest, UpgradeEvidence};
use serde::{Deserialize, Serialize};

use crate::error::BuildError;

/// The evidence report stored with every image (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageEvidence {
    pub image: String,
    pub parent: Option<String>,
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

/// Reads the result's manifest and the upgraded packages' changelogs in the
/// build container, and compares with the parent's manifest.
pub(crate) async fn collect<E: Engine>(
    engine: &E,
    container: &str,
    parent: &ManifestReading,
    image: &str,
    parent_name: &str,
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
    let upgraded = autopatch_evidence::summarize(&diff, &changelogs);
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
    let mut cves: Vec<String> = upgraded
        .iter()
        .flat_map(|upgrade| upgrade.cves.iter().map(|cve| cve.to_string()))
        .collect();
    cves.sort();
    cves.dedup();
    Ok(ImageEvidence {
        image: image.to_owned(),
        parent: Some(parent_name.to_owned()),
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

/// Evidence for an image with no parent (a bootstrapped golden image).
pub(crate) fn root_evidence(image: &str, reading: &ManifestReading) -> ImageEvidence {
    ImageEvidence {
        image: image.to_owned(),
        parent: None,
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
    collect(engine, container, &parent, to, from).await
}
