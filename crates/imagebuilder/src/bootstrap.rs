//! Golden images from Debian packages: `mmdebstrap` builds a root filesystem
//! from the release's main archive only (the point release, none of the
//! security updates since), the engine imports it, and it is registered as
//! an image with its package manifest.

use std::path::PathBuf;
use std::sync::Arc;

use autopatch_engine::{ContainerSpec, Engine};
use autopatch_store::{ImageRow, Store};
use tokio::process::Command;

use crate::build::{engine_reference, ownership_labels};
use crate::clock;
use crate::error::BuildError;
use crate::evidence;
use crate::progress::{BuildEvent, Progress};

#[derive(Debug, Clone)]
pub struct BootstrapRequest {
    /// The Debian codename, e.g. `bookworm`.
    pub suite: String,
    pub mirror: String,
    /// The image name (recipe name of the version), e.g. `golden`.
    pub name: String,
    pub version: String,
    /// Extra packages to include.
    pub include: Vec<String>,
    /// Where the temporary root filesystem tarball goes.
    pub work_dir: PathBuf,
}

/// Why a bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(
        "mmdebstrap is not installed; install it with `apt-get install mmdebstrap` (or run scripts/setup-host.sh)"
    )]
    MissingTool,
    #[error("mmdebstrap failed (exit {code}); its last output:\n{output}")]
    Mmdebstrap { code: i32, output: String },
    #[error("failed to run mmdebstrap")]
    Spawn(#[source] std::io::Error),
    #[error(transparent)]
    Build(#[from] BuildError),
}

impl From<autopatch_engine::EngineError> for BootstrapError {
    fn from(error: autopatch_engine::EngineError) -> BootstrapError {
        BootstrapError::Build(BuildError::Engine(error))
    }
}

impl From<autopatch_store::StoreError> for BootstrapError {
    fn from(error: autopatch_store::StoreError) -> BootstrapError {
        BootstrapError::Build(BuildError::Store(error))
    }
}

/// Builds, imports and registers a golden image. Returns its image row.
pub async fn bootstrap<E: Engine>(
    engine: &Arc<E>,
    store: &Arc<Store>,
    request: &BootstrapRequest,
    progress: &dyn Progress,
) -> Result<ImageRow, BootstrapError> {
    fs_err::create_dir_all(&request.work_dir).map_err(|source| BuildError::Artifacts { source })?;
    let tarball = request.work_dir.join(format!("{}-{}.tar", request.name, std::process::id()));
    let started = tokio::time::Instant::now();
    progress.event(BuildEvent::Note {
        message: format!("mmdebstrap {} from {} (main only)", request.suite, request.mirror),
    });
    let mut command = Command::new("mmdebstrap");
    command.arg("--variant=minbase").arg("--quiet");
    if !request.include.is_empty() {
        command.arg(format!("--include={}", request.include.join(",")));
    }
    command
        .arg(&request.suite)
        .arg(&tarball)
        .arg(format!("deb {} {} main", request.mirror, request.suite));
    let output = match command.output().await {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(BootstrapError::MissingTool);
        }
        Err(error) => return Err(BootstrapError::Spawn(error)),
    };
    if !output.status.success() {
        let _ = fs_err::remove_file(&tarball);
        let text = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        return Err(BootstrapError::Mmdebstrap {
            code: output.status.code().unwrap_or(-1),
            output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    progress.event(BuildEvent::Timing {
        what: "mmdebstrap".into(),
        duration_ms: crate::toe::millis(started.elapsed()),
    });

    let build_number = store
        .images()?
        .iter()
        .filter(|image| image.recipe == request.name && image.recipe_version == request.version)
        .map(|image| image.build_number)
        .max()
        .unwrap_or(0)
        + 1;
    let version = format!("{}/{}/{build_number}", request.name, request.version);
    let reference =
        engine_reference(store.engine_namespace(), &request.name, &request.version, build_number);
    let started = tokio::time::Instant::now();
    let changes = vec![
        r#"CMD ["/bin/bash"]"#.to_owned(),
        format!("LABEL autopatch.image-version={version}"),
        format!("LABEL autopatch.bootstrap={}", request.suite),
    ];
    let imported = engine.image_import(&tarball, &reference, &changes).await;
    let _ = fs_err::remove_file(&tarball);
    let imported = imported?;
    progress.event(BuildEvent::Timing {
        what: "import".into(),
        duration_ms: crate::toe::millis(started.elapsed()),
    });

    // Read the manifest in a throwaway container.
    let mut spec = ContainerSpec {
        image: imported.id.clone(),
        cmd: vec!["sleep".into(), "infinity".into()],
        init: true,
        ..ContainerSpec::default()
    };
    spec.labels = ownership_labels("bootstrap");
    let container = engine.container_create(&spec).await?;
    let reading = async {
        engine.container_start(&container.id).await?;
        evidence::read_manifest(engine.as_ref(), &container.id).await
    }
    .await;
    engine.container_remove(&container.id).await?;
    let reading = match reading {
        Ok(reading) => reading,
        Err(error) => {
            engine.image_remove(&reference).await?;
            return Err(error.into());
        }
    };
    let image_evidence = evidence::root_evidence(&version, &reading);
    let row = ImageRow {
        version,
        recipe: request.name.clone(),
        recipe_version: request.version.clone(),
        build_number,
        build_id: None,
        pipeline: None,
        engine_image_id: imported.id,
        engine_reference: reference,
        parent: None,
        parent_engine_image_id: None,
        manifest: reading.text,
        evidence: serde_json::to_string(&image_evidence).unwrap_or_else(|_| "{}".into()),
        created_at: clock::now(),
    };
    store.insert_image(&row)?;
    Ok(row)
}
