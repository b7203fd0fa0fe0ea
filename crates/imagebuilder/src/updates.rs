//! Pending updates of an image, without changing it: a throwaway container
//! from the image runs `apt-get update` and `apt-get -s dist-upgrade`.

use std::collections::BTreeMap;

use autopatch_engine::{ContainerSpec, Engine, ExecSpec};
use autopatch_evidence::PendingChange;

use crate::apt::APT_UPDATE_FUNCTION;
use crate::build::{Builder, NETWORK, new_id, ownership_labels};
use crate::error::BuildError;

/// Which package sources the check uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sources {
    /// Only the sources configured in the image: what the image itself would
    /// receive. Pipelines use this for "only if updates are available".
    Image,
    /// The image's sources plus, on Debian, the release's `-security` and
    /// `-updates` archives: what is published for the image's release.
    WithDebianArchives,
}

/// The result of a check.
#[derive(Debug, Clone)]
pub struct PendingUpdates {
    /// The image as the caller named it.
    pub image: String,
    pub updates: Vec<PendingChange>,
    /// False when the image has no apt: nothing could be checked.
    pub supported: bool,
}

impl PendingUpdates {
    pub fn security_count(&self) -> usize {
        self.updates.iter().filter(|update| update.is_security()).count()
    }
}

const NO_APT_MARKER: &str = "@@autopatch-no-apt";

fn check_script(sources: Sources) -> String {
    let archives = match sources {
        Sources::Image => "",
        Sources::WithDebianArchives => {
            r#"if [ -r /etc/os-release ]; then . /etc/os-release; fi
if [ "${ID:-}" = debian ] && [ -n "${VERSION_CODENAME:-}" ]; then
  {
    echo "deb http://deb.debian.org/debian ${VERSION_CODENAME}-updates main"
    echo "deb http://deb.debian.org/debian-security ${VERSION_CODENAME}-security main"
  } > /etc/apt/sources.list.d/autopatch-check.list
fi
"#
        }
    };
    // Every source must answer (see apt.rs): an unreachable mirror is an
    // error here, not "no updates available".
    format!(
        "set -eu\n{APT_UPDATE_FUNCTION}if ! command -v apt-get >/dev/null 2>&1; then echo {NO_APT_MARKER}; exit 0; fi\n{archives}apt_update -qq >&2\napt-get -s -o Debug::NoLocking=1 dist-upgrade\n"
    )
}

/// The role label of update-check containers.
const CHECK_ROLE: &str = "check-updates";

/// Lists the updates pending for `reference` (an engine reference or id);
/// `name` is how the result and errors name the image (its version, or what
/// the user typed), since an engine id means little to a reader.
///
/// The check's container carries [`ownership_labels`] but no state
/// directory: [`Builder::check_updates`] is the same check labelled with
/// its state directory, which that directory's recovery alone removes.
pub async fn check_updates<E: Engine>(
    engine: &E,
    reference: &str,
    name: &str,
    sources: Sources,
) -> Result<PendingUpdates, BuildError> {
    run_check(engine, ownership_labels(CHECK_ROLE), reference, name, sources).await
}

impl<E: Engine + 'static> Builder<E> {
    /// [`check_updates`] in a container labelled with this state
    /// directory ([`Builder::ownership_labels`]): if this process dies during
    /// the check, this state directory's [`Builder::recover`] removes it.
    pub async fn check_updates(
        &self,
        reference: &str,
        name: &str,
        sources: Sources,
    ) -> Result<PendingUpdates, BuildError> {
        let labels = self.ownership_labels(CHECK_ROLE);
        run_check(self.engine.as_ref(), labels, reference, name, sources).await
    }
}

async fn run_check<E: Engine>(
    engine: &E,
    labels: BTreeMap<String, String>,
    reference: &str,
    name: &str,
    sources: Sources,
) -> Result<PendingUpdates, BuildError> {
    engine.network_ensure(NETWORK).await?;
    // Named like build containers (`autopatch-<role>-<id>`), the id a
    // check's own, as no build exists yet.
    let spec = ContainerSpec {
        name: Some(format!("autopatch-{CHECK_ROLE}-{}", new_id("c"))),
        image: reference.to_owned(),
        cmd: vec!["sleep".into(), "infinity".into()],
        network: Some(NETWORK.to_owned()),
        init: true,
        labels,
        ..ContainerSpec::default()
    };
    let container = engine.container_create(&spec).await?;
    let result = async {
        engine.container_start(&container.id).await?;
        let exec = ExecSpec {
            cmd: vec!["sh".into(), "-c".into(), check_script(sources)],
            ..ExecSpec::default()
        };
        let result = engine.exec(&container.id, &exec, &mut ()).await?;
        Ok::<_, BuildError>(result)
    }
    .await;
    // The check container never outlives the check.
    let removed = engine.container_remove(&container.id).await;
    let result = result?;
    removed?;
    let stdout = result.stdout_text();
    if stdout.contains(NO_APT_MARKER) {
        return Ok(PendingUpdates {
            image: name.to_owned(),
            updates: Vec::new(),
            supported: false,
        });
    }
    if result.exit_code != 0 {
        return Err(BuildError::UpdateCheck {
            image: name.to_owned(),
            message: format!(
                "apt-get failed (exit {}): {}",
                result.exit_code,
                result.stderr_text().trim()
            ),
        });
    }
    let updates = autopatch_evidence::parse_apt_simulation(&stdout).map_err(|error| {
        BuildError::UpdateCheck { image: name.to_owned(), message: error.to_string() }
    })?;
    Ok(PendingUpdates { image: name.to_owned(), updates, supported: true })
}
