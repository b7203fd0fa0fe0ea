//! StartImagePipelineExecution: load a pipeline and its documents, decide
//! whether its start condition holds, and run the build.

use std::time::Duration;

use autopatch_documents::{PipelineStatus, StartCondition};
use autopatch_engine::Engine;
use autopatch_store::ImageRow;
use tokio_util::sync::CancellationToken;

use crate::build::{BuildOutcome, BuildRequest, Builder, CancelCause};
use crate::catalog;
use crate::decide::{self, BuiltFrom, StartDecision};
use crate::error::{BuildError, RegistryError};
use crate::progress::{BuildEvent, Progress};
use crate::updates::Sources;

#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Idempotency token: starting twice with one token starts one build.
    pub client_token: Option<String>,
    /// Build even when the start condition says there is nothing to do.
    pub force: bool,
    /// Why the caller would cancel the build (set it before cancelling),
    /// for the build's reason when it ends `CANCELLED`.
    pub cancel_cause: CancelCause,
}

#[derive(Debug, Clone)]
#[expect(clippy::large_enum_variant, reason = "one value per pipeline run; boxing buys nothing")]
pub enum StartOutcome {
    Built(BuildOutcome),
    /// "Only if updates are available" and none are: nothing was built.
    Skipped {
        reason: String,
        latest: Box<ImageRow>,
    },
}

/// The start-condition reason of a build `--force` started.
const FORCED: &str = "forced (--force)";

pub async fn start_pipeline<E: Engine + 'static>(
    builder: &Builder<E>,
    name: &str,
    options: &StartOptions,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<StartOutcome, BuildError> {
    for ended in builder.recover().await? {
        progress.event(BuildEvent::Note {
            message: format!("build {ended} had lost its runner: marked FAILED and cleaned up"),
        });
    }
    // A token used before names that start: no update check, no new build
    // (the store's create_build answers the same for two starts at once).
    if let Some(token) = &options.client_token
        && let Some(earlier) = builder.store.build_with_client_token(token)?
    {
        if earlier.pipeline.as_deref() != Some(name) {
            return Err(BuildError::ClientTokenMismatch {
                token: token.clone(),
                pipeline: earlier.pipeline.unwrap_or_else(|| "-".to_owned()),
                build: earlier.id,
                requested: name.to_owned(),
            });
        }
        let image = builder.store.image(&earlier.image_version())?;
        return Ok(StartOutcome::Built(BuildOutcome { build: earlier, image, started: false }));
    }
    let loaded = catalog::load_pipeline(&builder.store, name)?;
    if loaded.pipeline.status == PipelineStatus::Disabled {
        return Err(RegistryError::NotFound {
            kind: "enabled pipeline",
            name: name.to_owned(),
            hint: " (its status is DISABLED)".to_owned(),
        }
        .into());
    }
    let parent = match catalog::resolve_parent(
        &builder.store,
        builder.engine.as_ref(),
        &catalog::parent_text(&loaded.recipe.parent_image),
    )
    .await?
    {
        Ok(parent) => parent,
        Err(reason) => {
            return Err(RegistryError::NotFound {
                kind: "parent image",
                name: catalog::parent_text(&loaded.recipe.parent_image),
                hint: format!(": {reason}"),
            }
            .into());
        }
    };
    let recipe_version = loaded.recipe.semantic_version.to_string();
    // AWS applies the start condition to scheduled runs; autopatch applies
    // it to every run, and a pipeline without a schedule always builds.
    let start_condition =
        loaded.pipeline.schedule.as_ref().map_or(StartCondition::Always, |s| s.start_condition);

    let mut start_reason = None;
    if options.force {
        // Recorded like the start condition's reasons, so a forced rebuild
        // reads as one afterwards.
        let reason = FORCED.to_owned();
        progress.event(BuildEvent::Note { message: format!("building: {reason}") });
        start_reason = Some(reason);
    } else if start_condition == StartCondition::UpdatesAvailable {
        let images = builder.store.images()?;
        let latest = images
            .iter()
            .filter(|image| {
                image.pipeline.as_deref() == Some(name) && image.recipe == loaded.recipe.name
            })
            .max_by_key(|image| image.created_at);
        let latest_components = match latest.and_then(|image| image.build_id.as_deref()) {
            Some(build) => builder.store.build_components(build)?,
            None => Vec::new(),
        };
        let components = crate::build::component_rows(&loaded.components);
        let now = BuiltFrom {
            recipe_version: &recipe_version,
            parent_engine_image_id: Some(&parent.engine_image_id),
            components: Some(&components),
        };
        let latest = latest.map(|image| {
            let built_from = BuiltFrom {
                recipe_version: &image.recipe_version,
                parent_engine_image_id: image.parent_engine_image_id.as_deref(),
                components: (!latest_components.is_empty()).then_some(latest_components.as_slice()),
            };
            (image, built_from)
        });
        match decide::start_decision(latest, now) {
            StartDecision::Build { changes } => {
                let changes: Vec<String> = changes.iter().map(ToString::to_string).collect();
                let reason = changes.join("; ");
                progress.event(BuildEvent::Note { message: format!("building: {reason}") });
                start_reason = Some(reason);
            }
            StartDecision::CheckUpdates { latest } => {
                progress.event(BuildEvent::Note {
                    message: format!("checking {} for pending updates", latest.version),
                });
                let pending = builder
                    .check_updates(&latest.engine_image_id, &latest.version, Sources::Image)
                    .await?;
                if pending.updates.is_empty() {
                    return Ok(StartOutcome::Skipped {
                        reason: format!(
                            "no updates are available for {} (same recipe version, parent image and component versions): nothing built",
                            latest.version
                        ),
                        latest: Box::new(latest.clone()),
                    });
                }
                let reason = format!(
                    "{} update(s) pending ({} security)",
                    pending.updates.len(),
                    pending.security_count()
                );
                progress.event(BuildEvent::Note { message: format!("{reason}: building") });
                start_reason = Some(reason);
            }
        }
    }

    let mut documents = vec![
        (
            format!("pipeline-{}.yml", loaded.pipeline_row.name),
            loaded.pipeline_row.document.clone(),
        ),
        loaded.recipe_text.clone(),
    ];
    documents.extend(loaded.component_texts.clone());
    let infrastructure = &loaded.pipeline.infrastructure;
    let request = BuildRequest {
        pipeline: Some(name.to_owned()),
        recipe_name: loaded.recipe.name.clone(),
        recipe_version,
        documents,
        components: loaded.components.clone(),
        parent,
        tests_enabled: loaded.pipeline.image_tests.image_tests_enabled,
        test_timeout: Duration::from_secs(
            u64::from(loaded.pipeline.image_tests.timeout_minutes) * 60,
        ),
        build_timeout: Duration::from_secs(u64::from(infrastructure.timeout_minutes) * 60),
        cpus: infrastructure.cpus,
        memory_bytes: infrastructure.memory_mib.map(|mib| mib * 1024 * 1024),
        client_token: options.client_token.clone(),
        start_reason,
        built_by: crate::provenance::BuiltBy::current(),
        cancel_cause: options.cancel_cause.clone(),
    };
    Ok(StartOutcome::Built(builder.run(&request, progress, cancel).await?))
}
