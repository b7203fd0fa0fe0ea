//! autopatch's documents: the AWS formats themselves, parsed and validated
//! with exact source positions.
//!
//! - AWSTOE component documents ([`parse_component`]);
//! - image recipes and image pipelines shaped like Image Builder's
//!   `CreateImageRecipe` and `CreateImagePipeline` requests ([`parse_recipe`],
//!   [`parse_pipeline`]); each format also has a lenient parse
//!   ([`parse_recipe_lenient`]...) that gives what could be read with every
//!   diagnostic, so that a caller checking references against a store reports
//!   its problems together with the document's;
//! - CloudFormation templates, their intrinsic functions, parameters and
//!   resource order ([`cloudformation`]);
//! - underneath, a spanned YAML tree ([`yaml`]) that keeps tags such as
//!   CloudFormation's `!Ref`.
//!
//! Architecture invariant: this crate is pure. Callers pass text in and get
//! values or [`Diagnostics`] out; nothing here reads files, clocks or the
//! network. Validation reports every problem at once, each as
//! `file:line:col: error: message`.

#![forbid(unsafe_code)]

mod accepted;
pub mod cloudformation;
mod component;
mod diagnostic;
mod pipeline;
mod recipe;
mod reference;
mod schedule;
mod source;
mod suggest;
mod template;
pub mod yaml;

pub use component::{
    Action, ComponentDocument, ConstantDeclaration, CreateFileInput, DEFAULT_TIMEOUT_SECONDS,
    FileEncoding, OnFailure, ParameterDeclaration, PartialComponent, Phase, PhaseName,
    SCHEMA_VERSION, Stage, Step, check_parameter_values, parse_component, parse_component_lenient,
};
pub use diagnostic::{Diagnostic, Diagnostics, Reporter};
pub use pipeline::{
    ImageTestsConfiguration, InfrastructureConfiguration, MIN_MEMORY_MIB, PartialPipeline,
    PipelineDocument, PipelineStatus, RecipeReference, Schedule, StartCondition, is_time_zone_name,
    parse_pipeline, parse_pipeline_lenient,
};
pub use recipe::{
    ComponentReference, ParentImage, PartialRecipe, RecipeDocument, parse_recipe,
    parse_recipe_lenient,
};
pub use reference::{ImageReference, VersionFilter, is_name, name_error, parse_image_reference};
pub use source::{Position, SourceFile, Span};
pub use template::{RenderError, Segment, Template};
