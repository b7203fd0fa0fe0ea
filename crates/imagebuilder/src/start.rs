//! StartImagePipelineExecution: load a pipeline and its documents, decide
//! whether its start condition holds, and run the build.

use std::time::Duration;

use autopatch_documents::{PipelineStatus, StartCondition};
use autopatch_engine::Engine;
use autopatch_store::ImageRow;
use tokio_util::sync::CancellationToken;

use crate::build::{BuildOutcome, BuildRequest, Builder};
use crate::catalog;
use crate::error::{BuildError, RegistryError};
use crate::progress::{BuildEvent, Progress};
use crate::updates::Sources;

#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Idempotency token: starting twice with one token starts one build.
    pub client_token: Option<String>,
    /// Build even when the start condition says there is nothing to do.
    pub force: bool,
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

/// The pure part of the start condition: given the pipeline's latest image
/// (if any) and what it would build from now, must it check for updates, or
/// build at once? `None` means build.
pub(crate) fn needs_update_check<'a>(
    latest: Option<&'a ImageRow>,
    recipe_version: &str,
    parent_engine_image_id: &str,
) -> Option<&'a ImageRow> {
    let latest = latest?;
    let same_recipe = latest.recipe_version == recipe_version;
    let same_parent = latest.parent_engine_image_id.as_deref() == Some(parent_engine_image_id);
    (same_recipe && same_parent).then_some(latest)
}

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

    if start_condition == StartCondition::UpdatesAvailable && !options.force {
        let images = builder.store.images()?;
        let latest = images
            .iter()
            .filter(|image| {
                image.pipeline.as_deref() == Some(name) && image.recipe == loaded.recipe.name
            })
            .max_by_key(|image| image.created_at);
        if let Some(latest) = needs_update_check(latest, &recipe_version, &parent.engine_image_id) {
            progress.event(BuildEvent::Note {
                message: format!("checking {} for pending updates", latest.version),
            });
            let pending = builder
                .check_updates(&latest.engine_image_id, &latest.version, Sources::Image)
                .await?;
            if pending.updates.is_empty() {
                return Ok(StartOutcome::Skipped {
                    reason: format!(
                        "no updates are available for {} (same recipe version and parent): nothing built",
                        latest.version
                    ),
                    latest: Box::new(latest.clone()),
                });
            }
            progress.event(BuildEvent::Note {
                message: format!(
                    "{} update(s) pending ({} security): building",
                    pending.updates.len(),
                    pending.security_count()
                ),
            });
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
    };
    Ok(StartOutcome::Built(builder.run(&request, progress, cancel).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use autopatch_model::Timestamp;

    fn image(recipe_version: &str, parent: &str) -> ImageRow {
        ImageRow {
            version: format!("webapp/{recipe_version}/1"),
            recipe: "webapp".into(),
            recipe_version: recipe_version.into(),
            build_number: 1,
            build_id: None,
            pipeline: Some("webapp".into()),
            engine_image_id: "sha256:image".into(),
            engine_reference: "localhost/autopatch/webapp:1.0.0-1".into(),
            parent: None,
            parent_engine_image_id: Some(parent.into()),
            manifest: String::new(),
            evidence: String::new(),
            created_at: Timestamp(0),
        }
    }

    #[test]
    fn start_condition_checks_only_when_nothing_else_changed() {
        let latest = image("1.0.0", "sha256:parent");
        assert!(
            needs_update_check(None, "1.0.0", "sha256:parent").is_none(),
            "first build always builds"
        );
        assert!(needs_update_check(Some(&latest), "1.0.0", "sha256:parent").is_some());
        assert!(
            needs_update_check(Some(&latest), "1.1.0", "sha256:parent").is_none(),
            "a new recipe version builds"
        );
        assert!(
            needs_update_check(Some(&latest), "1.0.0", "sha256:newparent").is_none(),
            "a new parent builds"
        );
    }
}
