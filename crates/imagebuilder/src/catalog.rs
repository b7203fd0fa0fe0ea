//! The catalog of registered documents (components, recipes, pipelines) and
//! the resolution of references between them, with the operations Image
//! Builder names: CreateComponent, CreateImageRecipe, CreateImagePipeline.
//!
//! Architecture invariant: a document is validated whole, including its
//! references (registered components, the parent image, the recipe), before
//! anything is written; every problem is reported at once with its position.

use std::collections::BTreeMap;
use std::sync::Arc;

use autopatch_documents::{
    ComponentDocument, ParentImage, PartialComponent, PartialPipeline, PartialRecipe,
    PipelineDocument, Position, RecipeDocument, Reporter, SourceFile, Span, VersionFilter,
};
use autopatch_engine::Engine;
use autopatch_model::SemanticVersion;
use autopatch_store::{ComponentRow, ImageRow, PipelineRow, RecipeRow, Store};
use sha2::{Digest, Sha256};

use crate::build::ResolvedParent;
use crate::clock;
use crate::error::RegistryError;
use crate::toe::ComponentRun;

/// What a registration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub kind: &'static str,
    pub name: String,
    pub version: Option<String>,
    pub outcome: Registration,
}

/// How a registration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// The name (and version) was new: it is registered now.
    Created,
    /// A registered pipeline's document was replaced by a different one
    /// (components and recipes are immutable per version).
    Updated,
    /// The same document was registered already: nothing changed.
    Unchanged,
    /// The document asked for a dry run (`dryRun: true`): it was checked
    /// whole, references included, and nothing was written.
    DryRun,
}

impl Registered {
    fn new(
        kind: &'static str,
        name: String,
        version: Option<String>,
        outcome: Registration,
    ) -> Self {
        Registered { kind, name, version, outcome }
    }

    /// Whether the name was new (the `created` of `-o json`).
    pub fn created(&self) -> bool {
        self.outcome == Registration::Created
    }

    /// Whether a registered document was replaced (the `updated` of `-o json`).
    pub fn updated(&self) -> bool {
        self.outcome == Registration::Updated
    }

    /// What happened, for people: `registered`, `updated`, `unchanged
    /// (already registered)` when the same document was registered already,
    /// or `valid (dry run: nothing registered)`.
    pub fn outcome(&self) -> &'static str {
        match self.outcome {
            Registration::DryRun => "valid (dry run: nothing registered)",
            Registration::Created => "registered",
            Registration::Updated => "updated",
            Registration::Unchanged => "unchanged (already registered)",
        }
    }
}

/// Created when the store inserted the row, else unchanged.
fn inserted(created: bool) -> Registration {
    if created { Registration::Created } else { Registration::Unchanged }
}

/// A component document checked as CreateComponent checks it, ready to be
/// registered under its name and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedComponent {
    pub name: String,
    pub version: String,
    pub document: ComponentDocument,
}

/// Checks a component document as [`create_component`] does, without the
/// store: the document's problems, its name's (`name`, default the
/// document's `name:`) and its version's (`version`, default 1.0.0), all
/// reported at once. `component validate` reports these; registering reports
/// them too, and then only what the registry adds (an existing version with
/// a different text).
///
/// # Errors
/// [`RegistryError::Invalid`] with every problem.
pub fn validate_component(
    file: &SourceFile,
    name: Option<&str>,
    version: Option<&str>,
) -> Result<CheckedComponent, RegistryError> {
    let mut reporter = Reporter::new(file.name.clone());
    let (component, parsed) = autopatch_documents::parse_component_lenient(file);
    reporter.extend(parsed);
    let whole_file = Span::at(Position::START);
    let document_name = component.as_ref().and_then(|component| component.name.clone());
    // Component names become file and script names in the build container
    // and the artifact folder: the rule recipe names follow.
    let name = match (name, document_name) {
        (Some(name), _) => {
            if !autopatch_documents::is_name(name) {
                // Not in the file: the name it is registered under was given
                // with it.
                reporter.error(
                    whole_file,
                    format!(
                        "{} (given as the name to register the document under)",
                        autopatch_documents::name_error("component name", name)
                    ),
                );
            }
            name.to_owned()
        }
        (None, Some((name, span))) => {
            if !autopatch_documents::is_name(&name) {
                reporter.error(
                    span,
                    format!(
                        "{}; or register it under another name with --name",
                        autopatch_documents::name_error("component name", &name)
                    ),
                );
            }
            name
        }
        (None, None) => {
            // A document that could not be read at all was reported already.
            if component.is_some() {
                reporter.error(
                    whole_file,
                    "the component has no name: add `name:` to the document or pass --name",
                );
            }
            String::new()
        }
    };
    let version = version.unwrap_or("1.0.0");
    if let Err(error) = version.parse::<SemanticVersion>() {
        reporter.error(
            whole_file,
            format!(
                "found the version {version:?} given to register the document under; expected a semantic version x.y.z: {}",
                error.reason
            ),
        );
    }
    let document = reporter
        .finish_option(component.and_then(PartialComponent::complete))
        .map_err(RegistryError::Invalid)?;
    Ok(CheckedComponent { name, version: version.to_owned(), document })
}

/// Registers a component document under `name` (default: the document's
/// `name`) and `version` (default 1.0.0), after [`validate_component`]'s
/// checks.
pub fn create_component(
    store: &Store,
    file: &SourceFile,
    name: Option<&str>,
    version: Option<&str>,
) -> Result<Registered, RegistryError> {
    let CheckedComponent { name, version, document: _ } = validate_component(file, name, version)?;
    let created = store.put_component(&ComponentRow {
        name: name.clone(),
        version: version.clone(),
        source_name: file.name.clone(),
        document: file.text.clone(),
        sha256: sha256(&file.text),
        created_at: clock::now(),
    })?;
    Ok(Registered::new("component", name, Some(version), inserted(created)))
}

/// Registers an image recipe after checking its components (registered,
/// parameters given) and its parent image (exists). The references that
/// could be read are checked even when the document has problems, and every
/// problem is reported at once.
pub async fn create_recipe<E: Engine>(
    store: &Store,
    engine: &Arc<E>,
    file: &SourceFile,
) -> Result<Registered, RegistryError> {
    let mut reporter = Reporter::new(file.name.clone());
    let (recipe, parsed) = autopatch_documents::parse_recipe_lenient(file);
    reporter.extend(parsed);
    if let Some(recipe) = &recipe {
        if let Some((name, span)) = &recipe.name
            && name.bytes().any(|byte| byte.is_ascii_uppercase())
        {
            // The name becomes the engine repository of every image the
            // recipe publishes, and repository names are lowercase.
            reporter.error(
                *span,
                format!(
                    "found the recipe name {name:?}; expected lowercase letters, digits, `-` and `_` (it names the images' engine repository), like {:?}",
                    name.to_ascii_lowercase()
                ),
            );
        }
        for reference in &recipe.components {
            match resolve_component(store, &reference.name, reference.version) {
                Ok(Some((row, document))) => {
                    if let Some(build) = reference.build
                        && build != COMPONENT_BUILD
                    {
                        reporter.error(reference.reference_span, no_component_build(&row, build));
                    }
                    reporter.extend(autopatch_documents::check_parameter_values(
                        &document, reference, &file.name,
                    ));
                }
                Ok(None) => reporter.error(
                    reference.span,
                    format!(
                        "component {} is not registered; register it with `autopatch component create --file <component.yml>`{}",
                        describe(&reference.name, reference.version),
                        known(store.components()?.iter().map(|c| format!("{}/{}", c.name, c.version)))
                    ),
                ),
                Err(error) => {
                    reporter.error(reference.span, crate::build::error_chain(&error));
                }
            }
        }
        if let Some((parent, span)) = &recipe.parent_image
            && let Err(reason) =
                resolve_parent(store, engine.as_ref(), &parent_text(parent)).await?
        {
            reporter.error(*span, format!("parent {reason}"));
        }
    }
    let recipe = reporter
        .finish_option(recipe.and_then(PartialRecipe::complete))
        .map_err(RegistryError::Invalid)?;
    let version = recipe.semantic_version.to_string();
    if recipe.dry_run {
        return Ok(Registered::new("recipe", recipe.name, Some(version), Registration::DryRun));
    }
    let created = store.put_recipe(&ComponentRow {
        name: recipe.name.clone(),
        version: version.clone(),
        source_name: file.name.clone(),
        document: file.text.clone(),
        sha256: sha256(&file.text),
        created_at: clock::now(),
    })?;
    Ok(Registered::new("recipe", recipe.name, Some(version), inserted(created)))
}

/// Creates or updates an image pipeline after checking its recipe exists;
/// the document's problems and the recipe's are reported together.
pub fn create_pipeline(store: &Store, file: &SourceFile) -> Result<Registered, RegistryError> {
    let mut reporter = Reporter::new(file.name.clone());
    let (pipeline, parsed) = autopatch_documents::parse_pipeline_lenient(file);
    reporter.extend(parsed);
    if let Some((zone, span)) = pipeline.as_ref().and_then(|pipeline| pipeline.timezone.as_ref())
        && let Err(message) = check_time_zone(zone)
    {
        reporter.error(*span, message);
    }
    if let Some(recipe) = pipeline.as_ref().and_then(|pipeline| pipeline.image_recipe.as_ref())
        && resolve_recipe(store, &recipe.name, recipe.version)?.is_none()
    {
        reporter.error(
            recipe.span,
            format!(
                "recipe {} is not registered; register it with `autopatch recipe create --file <recipe.yml>`{}",
                describe(&recipe.name, recipe.version),
                known(store.recipes()?.iter().map(|r| format!("{}/{}", r.name, r.version)))
            ),
        );
    }
    let pipeline = reporter
        .finish_option(pipeline.and_then(PartialPipeline::complete))
        .map_err(RegistryError::Invalid)?;
    if pipeline.dry_run {
        return Ok(Registered::new("pipeline", pipeline.name, None, Registration::DryRun));
    }
    let now = clock::now();
    let digest = sha256(&file.text);
    let previous = store.pipeline(&pipeline.name)?;
    let unchanged = previous.as_ref().is_some_and(|row| row.sha256 == digest);
    if !unchanged {
        store.put_pipeline(&PipelineRow {
            name: pipeline.name.clone(),
            source_name: file.name.clone(),
            document: file.text.clone(),
            sha256: digest,
            created_at: now,
            updated_at: now,
        })?;
    }
    let outcome = match (previous, unchanged) {
        (None, _) => Registration::Created,
        (Some(_), false) => Registration::Updated,
        (Some(_), true) => Registration::Unchanged,
    };
    Ok(Registered::new("pipeline", pipeline.name, None, outcome))
}

/// Where the IANA time zone database is, unless `TZDIR` says (as for the C
/// library).
const ZONEINFO: &str = "/usr/share/zoneinfo";

/// Checks that `zone`, shaped like a time zone name (the documents crate
/// checked that, so it has no `.` and cannot leave the database), is a zone
/// of the host's IANA time zone database: a TZif file under `TZDIR` or
/// `/usr/share/zoneinfo`. `UTC` and `Etc/UTC` are known without one.
fn check_time_zone(zone: &str) -> Result<(), String> {
    if matches!(zone, "UTC" | "Etc/UTC") {
        return Ok(());
    }
    let database = std::env::var_os("TZDIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| std::path::PathBuf::from(ZONEINFO), std::path::PathBuf::from);
    if !database.is_dir() {
        return Err(format!(
            "cannot check the time zone {zone:?}: there is no time zone database in {} (install the tzdata package, or set TZDIR)",
            database.display()
        ));
    }
    let mut magic = [0u8; 4];
    let is_zone = std::fs::File::open(database.join(zone))
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut magic))
        .is_ok_and(|()| &magic == b"TZif");
    if is_zone {
        Ok(())
    } else {
        Err(format!(
            "found the time zone {zone:?}, which is not in the IANA time zone database ({}); expected a zone like Etc/UTC, Europe/Paris or America/Los_Angeles",
            database.display()
        ))
    }
}

/// The build number of every registered component version: a component
/// version is immutable, so it has one build.
pub(crate) const COMPONENT_BUILD: u32 = 1;

/// Why a component reference's build does not exist.
fn no_component_build(row: &ComponentRow, build: u32) -> String {
    format!(
        "component {}/{} has no build {build}: a registered component version has one build, {COMPONENT_BUILD} (versions are immutable)",
        row.name, row.version
    )
}

/// The row of `name` with the highest version `filter` matches, among `rows`.
fn highest_matching(
    rows: Vec<ComponentRow>,
    name: &str,
    filter: VersionFilter,
) -> Option<ComponentRow> {
    rows.into_iter()
        .filter(|row| row.name == name)
        .filter_map(|row| row.version.parse::<SemanticVersion>().ok().map(|v| (v, row)))
        .filter(|(version, _)| filter.matches(*version))
        .max_by_key(|(version, _)| *version)
        .map(|(_, row)| row)
}

/// The registered recipe of `name` with the highest version `version`
/// matches.
fn resolve_recipe(
    store: &Store,
    name: &str,
    version: VersionFilter,
) -> Result<Option<RecipeRow>, RegistryError> {
    Ok(highest_matching(store.recipes()?, name, version))
}

/// The registered component of `name` with the highest version `version`
/// matches, and its parsed document.
pub(crate) fn resolve_component(
    store: &Store,
    name: &str,
    version: VersionFilter,
) -> Result<Option<(ComponentRow, ComponentDocument)>, RegistryError> {
    let Some(row) = highest_matching(store.components()?, name, version) else {
        return Ok(None);
    };
    let document = autopatch_documents::parse_component(&SourceFile::new(
        row.source_name.clone(),
        row.document.clone(),
    ))
    .map_err(RegistryError::Invalid)?;
    Ok(Some((row, document)))
}

/// A pipeline with its recipe and components, parsed, ready to build.
#[derive(Debug, Clone)]
pub struct LoadedPipeline {
    pub pipeline: PipelineDocument,
    pub pipeline_row: PipelineRow,
    pub recipe: RecipeDocument,
    pub recipe_text: (String, String),
    pub components: Vec<ComponentRun>,
    pub component_texts: Vec<(String, String)>,
}

/// Loads a pipeline and everything it refers to.
pub fn load_pipeline(store: &Store, name: &str) -> Result<LoadedPipeline, RegistryError> {
    let Some(pipeline_row) = store.pipeline(name)? else {
        return Err(RegistryError::NotFound {
            kind: "pipeline",
            name: name.to_owned(),
            hint: known(store.pipelines()?.iter().map(|p| p.name.clone())),
        });
    };
    let pipeline = autopatch_documents::parse_pipeline(&SourceFile::new(
        pipeline_row.source_name.clone(),
        pipeline_row.document.clone(),
    ))
    .map_err(RegistryError::Invalid)?;
    let reference = &pipeline.image_recipe;
    let Some(recipe_row) = resolve_recipe(store, &reference.name, reference.version)? else {
        return Err(RegistryError::NotFound {
            kind: "recipe",
            name: describe(&reference.name, reference.version),
            hint: String::new(),
        });
    };
    let recipe = autopatch_documents::parse_recipe(&SourceFile::new(
        recipe_row.source_name.clone(),
        recipe_row.document.clone(),
    ))
    .map_err(RegistryError::Invalid)?;
    let mut components = Vec::new();
    let mut component_texts = Vec::new();
    for reference in &recipe.components {
        let Some((row, document)) = resolve_component(store, &reference.name, reference.version)?
        else {
            return Err(RegistryError::NotFound {
                kind: "component",
                name: describe(&reference.name, reference.version),
                hint: String::new(),
            });
        };
        if let Some(build) = reference.build
            && build != COMPONENT_BUILD
        {
            return Err(RegistryError::NotFound {
                kind: "component",
                name: format!("{}/{}/{build}", row.name, row.version),
                hint: format!(" ({})", no_component_build(&row, build)),
            });
        }
        let mut parameters: BTreeMap<String, String> = document
            .parameters
            .iter()
            .filter_map(|p| p.default.clone().map(|d| (p.name.clone(), d)))
            .collect();
        parameters.extend(reference.parameters.clone());
        // Constants are referenced like parameters; a recipe cannot set them
        // (registration refuses a value for one).
        parameters.extend(document.constants.iter().map(|c| (c.name.clone(), c.value.clone())));
        component_texts
            .push((format!("component-{}-{}.yml", row.name, row.version), row.document.clone()));
        components.push(ComponentRun {
            name: row.name,
            version: row.version,
            document,
            parameters,
        });
    }
    Ok(LoadedPipeline {
        recipe_text: (
            format!("recipe-{}-{}.yml", recipe_row.name, recipe_row.version),
            recipe_row.document,
        ),
        pipeline,
        pipeline_row,
        recipe,
        components,
        component_texts,
    })
}

/// Why an image reference does not resolve. Its text speaks of "image";
/// a recipe's caller says "parent " before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// Not a reference an image can have (a build number that is no number).
    Invalid { reference: String, message: String },
    /// Registered, but the engine no longer has its image.
    Gone { version: String, engine_image_id: String },
    /// Neither a registered image nor one the engine knows.
    Missing { reference: String, registered: Vec<String> },
}

impl Unresolved {
    /// For [`Unresolved::Missing`]: what a reference was expected to name.
    pub fn expected(&self) -> Option<String> {
        let Self::Missing { registered, .. } = self else { return None };
        Some(format!(
            "expected an autopatch image (name, name/x.y.z, a version filter like name/1.x.x, or name/x.y.z/N){} or an image in the container engine",
            known(registered.iter().cloned())
        ))
    }
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid { reference, message } => {
                write!(f, "image reference {reference:?} is invalid: {message}")
            }
            Self::Gone { version, engine_image_id } => write!(
                f,
                "image {version} is registered but its engine image {engine_image_id} is gone from the engine"
            ),
            Self::Missing { reference, .. } => {
                let expected = self.expected().unwrap_or_default();
                write!(f, "image {reference:?} does not exist: {expected}")
            }
        }
    }
}

/// Resolves an image reference: an autopatch image version `name/x.y.z/N`,
/// `name/x.y.z`, a version filter `name/1.2.x`, `name/1.x.x`, `name/x.x.x`, a
/// bare `name` (the latest build of the highest matching version), an image
/// ARN of those, or anything the engine knows (tag or id). The inner `Err`
/// says why it does not resolve.
pub async fn resolve_parent<E: Engine>(
    store: &Store,
    engine: &E,
    reference: &str,
) -> Result<Result<ResolvedParent, Unresolved>, RegistryError> {
    let found = match find_image(store, reference) {
        Ok(found) => found,
        Err(RegistryError::BadReference { reference, message }) => {
            return Ok(Err(Unresolved::Invalid { reference, message }));
        }
        Err(error) => return Err(error),
    };
    if let Some(image) = found {
        return Ok(match engine.image_inspect(&image.engine_image_id).await? {
            Some(info) => Ok(ResolvedParent {
                requested: reference.to_owned(),
                image_version: Some(image.version.clone()),
                engine_reference: image.engine_reference.clone(),
                engine_image_id: info.id,
                cmd: info.cmd,
                entrypoint: info.entrypoint,
                manifest: Some(image.manifest.clone()),
            }),
            None => Err(Unresolved::Gone {
                version: image.version.clone(),
                engine_image_id: image.engine_image_id.clone(),
            }),
        });
    }
    Ok(match engine.image_inspect(reference).await? {
        Some(info) => Ok(ResolvedParent {
            requested: reference.to_owned(),
            image_version: None,
            engine_reference: reference.to_owned(),
            engine_image_id: info.id,
            cmd: info.cmd,
            entrypoint: info.entrypoint,
            manifest: None,
        }),
        None => Err(Unresolved::Missing {
            reference: reference.to_owned(),
            registered: store.images()?.into_iter().map(|image| image.version).collect(),
        }),
    })
}

/// Finds a registered image by version reference (see [`resolve_parent`]):
/// `name/x.y.z/N` is that build or nothing; `name/x.y.z` that version's
/// latest build; a version filter (`name/1.2.x`, `name/1.x.x`, `name/x.x.x`)
/// or a bare name the latest build of the highest version it matches; an
/// image ARN of those the same. A version or build number that is neither is
/// an error; text not shaped like an image reference is `None` (an engine
/// reference).
pub fn find_image(store: &Store, reference: &str) -> Result<Option<ImageRow>, RegistryError> {
    let images = store.images()?;
    if let Some(image) = images.iter().find(|image| image.version == reference) {
        return Ok(Some(image.clone()));
    }
    let wanted = match autopatch_documents::parse_image_reference(reference) {
        Ok(Some(wanted)) => wanted,
        Ok(None) => return Ok(None),
        Err(message) => {
            return Err(RegistryError::BadReference { reference: reference.to_owned(), message });
        }
    };
    // That build, or the highest matching version, then the highest build.
    Ok(images
        .into_iter()
        .filter(|image| image.recipe == wanted.name)
        .filter_map(|image| {
            image.recipe_version.parse::<SemanticVersion>().ok().map(|v| (v, image))
        })
        .filter(|(version, _)| wanted.version.matches(*version))
        .filter(|(_, image)| wanted.build.is_none_or(|build| image.build_number == build))
        .max_by_key(|(version, image)| (*version, image.build_number))
        .map(|(_, image)| image))
}

/// The parent image reference as text, for resolution and messages.
pub(crate) fn parent_text(parent: &ParentImage) -> String {
    match parent {
        ParentImage::Image(version) => version.to_string(),
        ParentImage::Latest { name, version } => format!("{name}/{version}"),
        ParentImage::EngineReference(reference) => reference.clone(),
    }
}

fn describe(name: &str, version: VersionFilter) -> String {
    match version {
        VersionFilter::Any => name.to_owned(),
        version => format!("{name}/{version}"),
    }
}

fn known(names: impl Iterator<Item = String>) -> String {
    let names: Vec<String> = names.collect();
    if names.is_empty() { String::new() } else { format!(" (registered: {})", names.join(", ")) }
}

pub(crate) fn sha256(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}
