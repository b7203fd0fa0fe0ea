//! What built an image, as its evidence and its build's detailed output
//! record it: the build (id, pipeline, recipe version, parent), the
//! component versions it ran, the checks that ran and how they ended, and
//! who ran it.
//!
//! "Who" is the local account on the host that ran the build (its user name
//! and uid), the host's name and autopatch's version: what a local build
//! can truthfully say. It is not an AWS identity (no IAM principal exists
//! here), and it is what the process ran as, not who asked for it.

use serde::{Deserialize, Serialize};

use crate::toe::PhaseRecord;

/// Who ran a build or a bootstrap: the local account and host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltBy {
    /// The host's name (`/proc/sys/kernel/hostname`), when it can be read.
    pub host: Option<String>,
    /// The name of the account `uid` is (`/etc/passwd`), when it has one.
    pub user: Option<String>,
    /// The real user id of the process that ran the build.
    pub uid: u32,
    /// autopatch's version.
    pub autopatch: String,
}

impl BuiltBy {
    /// This process's account and host.
    pub fn current() -> BuiltBy {
        let uid = rustix::process::getuid().as_raw();
        let passwd = fs_err::read_to_string("/etc/passwd").unwrap_or_default();
        let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .filter_map(|path| fs_err::read_to_string(path).ok())
            .map(|text| text.trim().to_owned())
            .find(|name| !name.is_empty());
        BuiltBy {
            host,
            user: user_name(&passwd, uid),
            uid,
            autopatch: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

impl std::fmt::Display for BuiltBy {
    /// `alice (uid 1000) on host build-1, autopatch 0.1.0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.user {
            Some(user) => write!(f, "{user} (uid {})", self.uid)?,
            None => write!(f, "uid {}", self.uid)?,
        }
        if let Some(host) = &self.host {
            write!(f, " on host {host}")?;
        }
        write!(f, ", autopatch {}", self.autopatch)
    }
}

/// The name `/etc/passwd` (its text) gives the account `uid`.
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse::<u32>().ok() == Some(uid) && !name.is_empty()).then(|| name.to_owned())
    })
}

/// One component version a build ran: what the recipe's reference resolved
/// to when the build started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentVersion {
    pub name: String,
    pub version: String,
    /// The component version's build number (a registered version has one, 1).
    pub build: u32,
}

/// One step of a `validate` or `test` phase, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStep {
    /// `validate` (in the build container) or `test` (in the test container).
    pub phase: String,
    pub component: String,
    pub step: String,
    /// `success`, `failed`, `ignored`, `cancelled`, ... (detailedoutput.json's step status).
    pub status: String,
}

/// The checks that ran on an image before it was published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checks {
    /// Every step of the components' `validate` and `test` phases, in the order they ran.
    pub steps: Vec<CheckStep>,
    /// Why the test stage did not run (`image tests are disabled`, `no component has a test
    /// phase`); null when it ran.
    pub test_stage_skipped: Option<String>,
}

impl Checks {
    /// The `validate` and `test` steps of `phases`.
    pub(crate) fn from_phases(phases: &[PhaseRecord], test_stage_skipped: Option<&str>) -> Checks {
        let steps = phases
            .iter()
            .filter(|phase| matches!(phase.phase, "validate" | "test"))
            .flat_map(|phase| {
                phase.steps.iter().map(|step| CheckStep {
                    phase: phase.phase.to_owned(),
                    component: phase.component.clone(),
                    step: step.name.clone(),
                    status: step.status.to_owned(),
                })
            })
            .collect();
        Checks { steps, test_stage_skipped: test_stage_skipped.map(str::to_owned) }
    }
}

/// The build that made an image, as its evidence records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildProvenance {
    /// The build id (`b-...`): `autopatch build show <id>`, and the artifact folder's name.
    pub id: String,
    pub pipeline: Option<String>,
    pub recipe: String,
    pub recipe_version: String,
    /// The parent as the recipe names it (`webapp`, an engine reference); the resolved parent
    /// is the evidence's `parent`.
    pub parent_image: String,
    /// The engine's id of the parent the build ran on.
    pub parent_engine_image_id: String,
    /// The engine's id of the published image.
    pub engine_image_id: String,
    /// When the build started (RFC 3339).
    pub started_at: String,
    pub components: Vec<ComponentVersion>,
    pub checks: Checks,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_name_is_the_passwd_entry_of_the_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      # a comment\n\
                      broken\n\
                      alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n";
        assert_eq!(user_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_name(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(user_name(passwd, 1001), None, "an account without an entry has no name");
        assert_eq!(user_name("", 0), None);
    }

    #[test]
    fn built_by_reads_as_account_host_and_version() {
        let mut built_by = BuiltBy {
            host: Some("build-1".into()),
            user: Some("alice".into()),
            uid: 1000,
            autopatch: "0.1.0".into(),
        };
        assert_eq!(built_by.to_string(), "alice (uid 1000) on host build-1, autopatch 0.1.0");
        built_by.user = None;
        built_by.host = None;
        assert_eq!(built_by.to_string(), "uid 1000, autopatch 0.1.0");
    }

    #[test]
    fn the_current_process_is_described_by_its_real_uid() {
        let built_by = BuiltBy::current();
        assert_eq!(built_by.uid, rustix::process::getuid().as_raw());
        assert_eq!(built_by.autopatch, env!("CARGO_PKG_VERSION"));
    }
}
