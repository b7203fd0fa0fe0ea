//! Row types: the store's plain-data view of each table.

use autopatch_model::{ImageState, Timestamp};

/// A registered document (component or recipe) at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentRow {
    pub name: String,
    pub version: String,
    /// Where the document came from, for diagnostics (a path, usually).
    pub source_name: String,
    pub document: String,
    pub sha256: String,
    pub created_at: Timestamp,
}

pub type RecipeRow = ComponentRow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineRow {
    pub name: String,
    pub source_name: String,
    pub document: String,
    pub sha256: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One pipeline execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRow {
    pub id: String,
    pub pipeline: Option<String>,
    pub recipe: String,
    pub recipe_version: String,
    pub build_number: u32,
    pub state: ImageState,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    pub client_token: Option<String>,
    pub parent_image: String,
    pub artifact_dir: String,
    /// The process running the build, to detect builds whose runner died.
    pub owner_pid: Option<u32>,
    pub cancel_requested: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

impl BuildRow {
    /// The image version this build publishes: `recipe/x.y.z/N`.
    pub fn image_version(&self) -> String {
        format!("{}/{}/{}", self.recipe, self.recipe_version, self.build_number)
    }
}

/// One component version a build ran, in its recipe's order: what the
/// recipe's reference (a version or a filter like `1.x.x`) resolved to when
/// the build started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildComponentRow {
    pub name: String,
    pub version: String,
    /// The component version's build (a registered version has one, 1).
    pub build_number: u32,
}

/// A published, immutable image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    /// `recipe/x.y.z/N`.
    pub version: String,
    pub recipe: String,
    pub recipe_version: String,
    pub build_number: u32,
    pub build_id: Option<String>,
    pub pipeline: Option<String>,
    pub engine_image_id: String,
    pub engine_reference: String,
    /// The parent as named by the recipe (image version or engine reference).
    pub parent: Option<String>,
    pub parent_engine_image_id: Option<String>,
    /// The package manifest: `dpkg-query` output as the evidence crate's
    /// `dpkg_query_command` prints it (empty for an image without dpkg).
    pub manifest: String,
    /// The evidence report, JSON.
    pub evidence: String,
    pub created_at: Timestamp,
}

/// An append-only event: a state transition or a notable fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub seq: i64,
    pub at: Timestamp,
    pub subject: String,
    pub kind: String,
    pub detail: String,
}
