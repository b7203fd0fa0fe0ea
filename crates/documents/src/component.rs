//! AWSTOE component documents (`schemaVersion: 1.0`): parameters, phases,
//! steps and the actions autopatch runs (`ExecuteBash`, `UpdateOS`,
//! `CreateFile`).
//!
//! Design notes:
//! - Phases run in stages: the build stage runs `build` then `validate` in the
//!   build container, the test stage runs `test` in a test container. A step
//!   may read the stdout of an earlier step of its own stage only, so every
//!   `{{ phase.Step.outputs.stdout }}` is checked against execution order,
//!   not document order.
//! - References are checked after the whole document is read, so a reference
//!   to a parameter declared further down is fine and every problem is found
//!   in one pass.
//! - A reference is reported at its `{{`: the reader finds the n-th `{{` of
//!   the decoded string in the scalar's source text. When escapes make the two
//!   disagree (a `\x7b` in a double-quoted string), it falls back to the
//!   scalar's start.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::diagnostic::{Diagnostic, Diagnostics, Reporter};
use crate::recipe::ComponentReference;
use crate::reference::{is_name, name_error};
use crate::source::{LineIndex, Position, SourceFile, Span, advance};
use crate::suggest::closest;
use crate::template::{Segment, Template, parse_template};
use crate::yaml::{MappingReader, Node, parse_yaml_reporting};

/// The only component schema version AWSTOE defines.
pub const SCHEMA_VERSION: &str = "1.0";

/// The default step timeout of AWSTOE, in seconds.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 7200;

/// An AWSTOE component document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentDocument {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Always [`SCHEMA_VERSION`] once parsed.
    pub schema_version: String,
    pub parameters: Vec<ParameterDeclaration>,
    /// Values steps reference as `{{ Name }}`, like parameters, that a
    /// recipe cannot set.
    pub constants: Vec<ConstantDeclaration>,
    /// In document order; each phase name at most once. Run them in stage
    /// order with [`ComponentDocument::phases_of`].
    pub phases: Vec<Phase>,
}

impl ComponentDocument {
    pub fn phase(&self, name: PhaseName) -> Option<&Phase> {
        self.phases.iter().find(|phase| phase.name == name)
    }

    pub fn parameter(&self, name: &str) -> Option<&ParameterDeclaration> {
        self.parameters.iter().find(|parameter| parameter.name == name)
    }

    /// The phases of `stage` present in the document, in execution order.
    pub fn phases_of(&self, stage: Stage) -> impl Iterator<Item = &Phase> {
        stage.phases().iter().filter_map(|name| self.phase(*name))
    }
}

/// A document parameter: `- Name: { type: string, default: ..., description: ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterDeclaration {
    pub name: String,
    pub default: Option<String>,
    pub description: Option<String>,
    /// Where the parameter is declared.
    pub span: Span,
}

/// A document constant: `- Name: { type: string, value: ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstantDeclaration {
    pub name: String,
    pub value: String,
    /// Where the constant is declared.
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    pub name: PhaseName,
    pub steps: Vec<Step>,
    pub span: Span,
}

/// The AWSTOE phases, named as in documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PhaseName {
    Build,
    Validate,
    Test,
}

impl PhaseName {
    pub const ALL: [PhaseName; 3] = [PhaseName::Build, PhaseName::Validate, PhaseName::Test];

    /// The name as written in documents: `build`, `validate`, `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseName::Build => "build",
            PhaseName::Validate => "validate",
            PhaseName::Test => "test",
        }
    }

    /// The phase named `name` (exact, lowercase).
    pub fn from_name(name: &str) -> Option<PhaseName> {
        PhaseName::ALL.into_iter().find(|phase| phase.as_str() == name)
    }

    /// The stage the phase runs in.
    pub fn stage(self) -> Stage {
        match self {
            PhaseName::Build | PhaseName::Validate => Stage::Build,
            PhaseName::Test => Stage::Test,
        }
    }

    /// The phase's place in its stage's run order.
    fn rank(self) -> usize {
        match self {
            PhaseName::Build | PhaseName::Test => 0,
            PhaseName::Validate => 1,
        }
    }
}

impl fmt::Display for PhaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where phases run: the build stage (phases build, then validate) in the
/// build container, the test stage (phase test) in a test container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Build,
    Test,
}

impl Stage {
    /// The stage's phases in run order.
    pub fn phases(self) -> &'static [PhaseName] {
        match self {
            Stage::Build => &[PhaseName::Build, PhaseName::Validate],
            Stage::Test => &[PhaseName::Test],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Build => "build",
            Stage::Test => "test",
        }
    }
}

/// A step of a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Unique within its phase.
    pub name: String,
    pub action: Action,
    /// `None`: no timeout (`timeoutSeconds: -1`). Default 7200.
    pub timeout_seconds: Option<u64>,
    pub on_failure: OnFailure,
    /// At least 1. Default 1.
    pub max_attempts: u32,
    /// The step's mapping in the document.
    pub span: Span,
}

/// What happens when a step fails (after its attempts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Stop the phase and fail the document.
    #[default]
    Abort,
    /// Mark the step failed and carry on with the next one.
    Continue,
    /// Mark the step ignored and carry on.
    Ignore,
}

impl OnFailure {
    pub const ALL: [OnFailure; 3] = [OnFailure::Abort, OnFailure::Continue, OnFailure::Ignore];

    /// The AWSTOE name: `Abort`, `Continue`, `Ignore`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Abort => "Abort",
            OnFailure::Continue => "Continue",
            OnFailure::Ignore => "Ignore",
        }
    }
}

/// The actions autopatch runs, with their inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Runs the commands as one bash script; never empty.
    ExecuteBash { commands: Vec<Template> },
    /// Upgrades the installed packages (only `include` if given, never `exclude`).
    UpdateOs { include: Vec<Template>, exclude: Vec<Template> },
    /// Writes files; never empty.
    CreateFile { files: Vec<CreateFileInput> },
}

impl Action {
    /// The AWSTOE names of the supported actions, sorted.
    pub const SUPPORTED: [&str; 3] = ["CreateFile", "ExecuteBash", "UpdateOS"];

    /// The AWSTOE name of the action.
    pub fn name(&self) -> &'static str {
        match self {
            Action::ExecuteBash { .. } => "ExecuteBash",
            Action::UpdateOs { .. } => "UpdateOS",
            Action::CreateFile { .. } => "CreateFile",
        }
    }
}

/// AWSTOE actions autopatch knows of but does not run (yet).
const UNSUPPORTED_ACTIONS: [&str; 25] = [
    "AppendFile",
    "Assert",
    "CopyFile",
    "CopyFolder",
    "CreateFolder",
    "CreateSymlink",
    "DeleteFile",
    "DeleteFolder",
    "ExecuteBinary",
    "ExecuteDocument",
    "ExecutePowerShell",
    "InstallMSI",
    "ListFiles",
    "MoveFile",
    "MoveFolder",
    "ReadFile",
    "Reboot",
    "S3Download",
    "S3Upload",
    "SetFileEncoding",
    "SetFileOwner",
    "SetFolderOwner",
    "SetFilePermissions",
    "SetFolderPermissions",
    "WebDownload",
];

/// One file of a `CreateFile` step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateFileInput {
    pub path: Template,
    /// `None`: an empty file.
    pub content: Option<Template>,
    /// How `content` is encoded. Base64 content without references is
    /// checked when the document is read; with references, when rendered.
    pub encoding: FileEncoding,
    /// The mode, from an octal string like `"0644"`.
    pub permissions: Option<u32>,
    pub owner: Option<Template>,
    pub group: Option<Template>,
    /// Whether an existing file is replaced (default `true`); if `false`, an
    /// existing file fails the step.
    pub overwrite: bool,
    /// The file's mapping in the document.
    pub span: Span,
}

/// The encoding of a `CreateFile` content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileEncoding {
    #[default]
    Utf8,
    Base64,
}

impl FileEncoding {
    /// The AWSTOE name: `utf8`, `base64`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileEncoding::Utf8 => "utf8",
            FileEncoding::Base64 => "base64",
        }
    }
}

/// A component document as far as it could be read, from
/// [`parse_component_lenient`]: what registration checks besides the document
/// itself (its name), including when the document has problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialComponent {
    /// The document's `name` and where its value is, when given and readable.
    pub name: Option<(String, Span)>,
    /// The whole document, when it had no problem.
    document: Option<ComponentDocument>,
}

impl PartialComponent {
    /// The whole document: `Some` exactly when the lenient parse reported no
    /// problem.
    pub fn complete(self) -> Option<ComponentDocument> {
        self.document
    }
}

/// Parses and validates an AWSTOE component document.
///
/// # Errors
/// Returns every problem found: YAML syntax, unknown or missing keys, wrong
/// types, unsupported actions, duplicate names, undefined or out-of-order
/// references, relative `CreateFile` paths and content that is not the
/// base64 it is declared to be.
pub fn parse_component(file: &SourceFile) -> Result<ComponentDocument, Diagnostics> {
    let (component, reporter) = read_component(file);
    reporter.finish_option(component.and_then(PartialComponent::complete))
}

/// Like [`parse_component`], for callers that go on checking what could be
/// read (registration checks the name): the document as far as it could be
/// read and every diagnostic, sorted by position. `None` only when nothing
/// could be read (YAML syntax errors, a document that is not a mapping).
pub fn parse_component_lenient(file: &SourceFile) -> (Option<PartialComponent>, Vec<Diagnostic>) {
    let (component, reporter) = read_component(file);
    (component, reporter.into_diagnostics())
}

fn read_component(file: &SourceFile) -> (Option<PartialComponent>, Reporter) {
    let mut reporter = Reporter::new(file.name.clone());
    let Some(root) = parse_yaml_reporting(file, &mut reporter) else {
        return (None, reporter);
    };
    let mut reader = ComponentReader {
        lines: LineIndex::new(&file.text),
        reporter,
        pending: Vec::new(),
        declared: None,
        step_names: BTreeMap::new(),
    };
    let mut component = reader.document(&root);
    // Even when the document is incomplete: every problem is reported.
    reader.check_references();
    let reporter = reader.reporter;
    if let Some(component) = &mut component
        && reporter.has_errors()
    {
        component.document = None;
    }
    (component, reporter)
}

/// Checks the parameter values a recipe's component entry gives for this
/// document: every parameter without a default needs a value (reported at
/// the entry), and every parameter given must be declared (reported at its
/// `name`). The diagnostics are for `file`, the recipe.
pub fn check_parameter_values(
    doc: &ComponentDocument,
    reference: &ComponentReference,
    file: &str,
) -> Vec<Diagnostic> {
    let mut reporter = Reporter::new(file);
    // A parameter whose entry could not be read was reported already; it
    // may be the one that looks missing.
    if reference.parameters_complete {
        for parameter in &doc.parameters {
            if parameter.default.is_none()
                && !reference.parameter_spans.contains_key(&parameter.name)
            {
                reporter.error(
                    reference.span,
                    format!(
                        "missing a value for the parameter `{}`, which has no default",
                        parameter.name
                    ),
                );
            }
        }
    }
    for (name, span) in &reference.parameter_spans {
        if doc.parameter(name).is_some() {
            continue;
        }
        if doc.constants.iter().any(|constant| constant.name == *name) {
            reporter.error(
                *span,
                format!(
                    "found a value for `{name}`, a constant of the component; expected a parameter (a constant cannot be set)"
                ),
            );
            continue;
        }
        let declared = doc.parameters.iter().map(|p| p.name.as_str());
        let message = match closest(name, declared.clone()) {
            Some(known) => {
                format!(
                    "found a value for the undeclared parameter `{name}`, did you mean `{known}`?"
                )
            }
            None => format!(
                "found a value for the undeclared parameter `{name}`; {}",
                declared_parameters(declared)
            ),
        };
        reporter.error(*span, message);
    }
    reporter.into_diagnostics()
}

/// "expected one of the declared parameters: A, B" or "the document declares no parameters".
fn declared_parameters<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|name| format!("`{name}`")).collect();
    if names.is_empty() {
        "the document declares no parameters".to_owned()
    } else {
        format!("expected one of the declared parameters: {}", names.join(", "))
    }
}

/// A reference waiting for the whole document to be read.
#[derive(Debug)]
struct PendingReference {
    segment: Segment,
    at: Position,
    phase: PhaseName,
    /// The index of the referring step in its phase's `steps` sequence.
    step_idx: usize,
    step_name: String,
}

/// The step a template belongs to.
#[derive(Debug, Clone)]
struct StepContext {
    /// `None` for the steps of a phase with a bad or duplicate name: their
    /// references are not checked.
    phase: Option<PhaseName>,
    step_idx: usize,
    step_name: String,
}

struct ComponentReader<'a> {
    lines: LineIndex<'a>,
    reporter: Reporter,
    pending: Vec<PendingReference>,
    /// The declared parameter names; `None` when `parameters` is not a
    /// sequence (then parameter references are not checked).
    declared: Option<BTreeSet<String>>,
    /// Per phase, the name and sequence index of every named step, first of
    /// each name only.
    step_names: BTreeMap<PhaseName, Vec<(String, usize, Position)>>,
}

/// A parameter's or constant's entry, read up to the keys particular to it
/// (see `ComponentReader::declaration`).
struct Declaration<'n> {
    name: &'n str,
    /// Whether `name` is a valid name (a bad one was reported).
    valid_name: bool,
    /// Where the name is.
    span: Span,
    map: MappingReader<'n>,
}

impl ComponentReader<'_> {
    /// The document as far as it could be read; `None` when the root is not
    /// a mapping.
    fn document(&mut self, root: &Node) -> Option<PartialComponent> {
        let mut map = MappingReader::new(root, &mut self.reporter)?;
        let name =
            map.optional("name").and_then(|node| self.string(node).map(|name| (name, node.span)));
        let description = map.optional("description").and_then(|node| self.string(node));
        let schema_version = map
            .required("schemaVersion", &mut self.reporter)
            .and_then(|node| self.schema_version(node));
        let parameters = match map.optional("parameters") {
            Some(node) => self.parameters(node),
            None => Some(Vec::new()),
        };
        let constants = match map.optional("constants") {
            Some(node) => self.constants(node, parameters.as_deref().unwrap_or_default()),
            None => Some(Vec::new()),
        };
        // References name parameters and constants alike.
        self.declared = match (&parameters, &constants) {
            (Some(parameters), Some(constants)) => Some(
                parameters
                    .iter()
                    .map(|p| p.name.clone())
                    .chain(constants.iter().map(|c| c.name.clone()))
                    .collect(),
            ),
            _ => None,
        };
        let phases = map.required("phases", &mut self.reporter).and_then(|node| self.phases(node));
        map.finish(&mut self.reporter);
        let document = match (schema_version, parameters, constants, phases) {
            (Some(schema_version), Some(parameters), Some(constants), Some(phases)) => {
                Some(ComponentDocument {
                    name: name.as_ref().map(|(name, _)| name.clone()),
                    description,
                    schema_version,
                    parameters,
                    constants,
                    phases,
                })
            }
            _ => None,
        };
        Some(PartialComponent { name, document })
    }

    fn string(&mut self, node: &Node) -> Option<String> {
        node.expect_string(&mut self.reporter).map(str::to_owned)
    }

    fn schema_version(&mut self, node: &Node) -> Option<String> {
        // `schemaVersion: 1.0` is a float in YAML; AWS documents write it so,
        // and AWSTOE reads it as the string it is written as: `1.0` or
        // `"1.0"`, not `1.00`.
        let text = node.expect_string(&mut self.reporter)?;
        if text == SCHEMA_VERSION {
            Some(text.to_owned())
        } else {
            self.reporter.error(
                node.span,
                format!("found the schema version {text:?}; expected {SCHEMA_VERSION}"),
            );
            None
        }
    }

    fn parameters(&mut self, node: &Node) -> Option<Vec<ParameterDeclaration>> {
        let items = node.expect_sequence(&mut self.reporter)?;
        let mut parameters: Vec<ParameterDeclaration> = Vec::new();
        for item in items {
            let Some(parameter) = self.parameter(item) else { continue };
            if let Some(first) = parameters.iter().find(|p| p.name == parameter.name) {
                self.reporter.error(
                    parameter.span,
                    format!(
                        "duplicate parameter `{}`, first declared at {}",
                        parameter.name, first.span.start
                    ),
                );
                continue;
            }
            parameters.push(parameter);
        }
        Some(parameters)
    }

    fn parameter(&mut self, item: &Node) -> Option<ParameterDeclaration> {
        let Declaration { name, span, mut map, .. } =
            self.declaration(item, "parameter", "- Name: { type: string }")?;
        let default = map.optional("default").and_then(|node| self.string(node));
        let description = map.optional("description").and_then(|node| self.string(node));
        map.finish(&mut self.reporter);
        Some(ParameterDeclaration { name: name.to_owned(), default, description, span })
    }

    /// An entry of `parameters` or `constants` (`what`): a mapping of one
    /// name to its declaration, like `like`. Reports another shape, a bad
    /// name and a `type` other than `string`; gives the name and a reader of
    /// the declaration's other keys.
    fn declaration<'n>(
        &mut self,
        item: &'n Node,
        what: &str,
        like: &str,
    ) -> Option<Declaration<'n>> {
        let single = match item.as_mapping() {
            Some([single]) if item.tag.is_none() => Some(single),
            _ => None,
        };
        let Some((key, value)) = single else {
            let found = match item.as_mapping() {
                Some(entries) => format!("a mapping with {} keys", entries.len()),
                None => item.describe(),
            };
            self.reporter
                .error(item.span, format!("expected a {what} like `{like}`, found {found}"));
            return None;
        };
        let name = key.expect_string(&mut self.reporter)?;
        let valid_name = is_name(name);
        if !valid_name {
            self.reporter.error(key.span, name_error(&format!("{what} name"), name));
        }
        let mut map = MappingReader::new(value, &mut self.reporter)?;
        if let Some(kind) = map.required("type", &mut self.reporter)
            && let Some(text) = kind.expect_string(&mut self.reporter)
            && text != "string"
        {
            self.reporter
                .error(kind.span, format!("found the {what} type {text:?}; expected string"));
        }
        Some(Declaration { name, valid_name, span: key.span, map })
    }

    /// The `constants` section, its readable entries (every problem is
    /// reported); a name must differ from every parameter's and every other
    /// constant's (AWSTOE's rule).
    fn constants(
        &mut self,
        node: &Node,
        parameters: &[ParameterDeclaration],
    ) -> Option<Vec<ConstantDeclaration>> {
        let items = node.expect_sequence(&mut self.reporter)?;
        let mut constants: Vec<ConstantDeclaration> = Vec::new();
        for item in items {
            let Some(constant) = self.constant(item) else { continue };
            let first = parameters
                .iter()
                .find(|p| p.name == constant.name)
                .map(|p| ("parameter", p.span))
                .or_else(|| {
                    constants.iter().find(|c| c.name == constant.name).map(|c| ("constant", c.span))
                });
            if let Some((kind, span)) = first {
                self.reporter.error(
                    constant.span,
                    format!(
                        "duplicate name `{}`: a {kind} of that name is declared at {}",
                        constant.name, span.start
                    ),
                );
                continue;
            }
            constants.push(constant);
        }
        Some(constants)
    }

    fn constant(&mut self, item: &Node) -> Option<ConstantDeclaration> {
        let Declaration { name, valid_name, span, mut map } =
            self.declaration(item, "constant", "- Name: { type: string, value: x }")?;
        let value = map.required("value", &mut self.reporter).and_then(|node| self.string(node));
        map.finish(&mut self.reporter);
        Some(ConstantDeclaration { name: name.to_owned(), value: value?, span })
            .filter(|_| valid_name)
    }

    fn phases(&mut self, node: &Node) -> Option<Vec<Phase>> {
        let items = node.expect_sequence(&mut self.reporter)?;
        if items.is_empty() {
            self.reporter.error(node.span, "expected at least one phase, found an empty sequence");
            return None;
        }
        let mut phases = Vec::new();
        let mut seen: Vec<(PhaseName, Position)> = Vec::new();
        let mut complete = true;
        for item in items {
            match self.phase(item, &mut seen) {
                Some(phase) => phases.push(phase),
                None => complete = false,
            }
        }
        complete.then_some(phases)
    }

    /// Reads a phase. Its steps are read even when its name is bad or taken,
    /// to report their problems too, but then they are detached: their names
    /// and references are not checked against the rest of the document.
    fn phase(&mut self, item: &Node, seen: &mut Vec<(PhaseName, Position)>) -> Option<Phase> {
        let mut map = MappingReader::new(item, &mut self.reporter)?;
        let name_node = map.required("name", &mut self.reporter);
        let steps_node = map.required("steps", &mut self.reporter);
        map.finish(&mut self.reporter);
        let name = name_node.and_then(|node| self.phase_name(node, seen));
        let steps_node = steps_node?;
        let items = steps_node.expect_sequence(&mut self.reporter)?;
        if items.is_empty() {
            self.reporter
                .error(steps_node.span, "expected at least one step, found an empty sequence");
            return None;
        }
        let mut steps = Vec::new();
        let mut complete = true;
        for (step_idx, item) in items.iter().enumerate() {
            match self.step(item, name, step_idx) {
                Some(step) => steps.push(step),
                None => complete = false,
            }
        }
        let name = name?;
        complete.then_some(Phase { name, steps, span: item.span })
    }

    fn phase_name(
        &mut self,
        node: &Node,
        seen: &mut Vec<(PhaseName, Position)>,
    ) -> Option<PhaseName> {
        let text = node.expect_string(&mut self.reporter)?;
        let Some(name) = PhaseName::from_name(text) else {
            self.reporter.error(
                node.span,
                format!("found the phase name {text:?}; expected build, validate or test"),
            );
            return None;
        };
        if let Some((_, first)) = seen.iter().find(|(seen_name, _)| *seen_name == name) {
            self.reporter
                .error(node.span, format!("duplicate phase `{name}`, first given at {first}"));
            return None;
        }
        seen.push((name, node.span.start));
        Some(name)
    }

    /// Reads a step of `phase` (`None`: a detached step, see [`Self::phase`]).
    fn step(&mut self, item: &Node, phase: Option<PhaseName>, step_idx: usize) -> Option<Step> {
        let mut map = MappingReader::new(item, &mut self.reporter)?;
        let name = map
            .required("name", &mut self.reporter)
            .and_then(|node| self.step_name(node, phase, step_idx));
        let action_node = map.required("action", &mut self.reporter);
        let inputs = map.entry("inputs").map(|(_, value)| value).filter(|value| !value.is_null());
        let timeout_seconds = match map.optional("timeoutSeconds") {
            None => Some(Some(DEFAULT_TIMEOUT_SECONDS)),
            Some(node) => self.timeout(node),
        };
        let on_failure = match map.optional("onFailure") {
            None => Some(OnFailure::default()),
            Some(node) => self.on_failure(node),
        };
        let max_attempts = match map.optional("maxAttempts") {
            None => Some(1),
            Some(node) => self.max_attempts(node),
        };
        map.unsupported("loop", "AWSTOE step loops are not supported yet");
        map.unsupported("if", "AWSTOE conditional steps are not supported yet");
        map.finish(&mut self.reporter);

        let context = StepContext { phase, step_idx, step_name: name.clone().unwrap_or_default() };
        let action = action_node.and_then(|node| self.action(node, inputs, item, &context));
        Some(Step {
            name: name?,
            action: action?,
            timeout_seconds: timeout_seconds?,
            on_failure: on_failure?,
            max_attempts: max_attempts?,
            span: item.span,
        })
    }

    fn step_name(
        &mut self,
        node: &Node,
        phase: Option<PhaseName>,
        step_idx: usize,
    ) -> Option<String> {
        let name = node.expect_string(&mut self.reporter)?;
        if !is_name(name) {
            self.reporter.error(node.span, name_error("step name", name));
            return None;
        }
        let Some(phase) = phase else { return Some(name.to_owned()) };
        let known = self.step_names.entry(phase).or_default();
        if let Some((_, _, first)) = known.iter().find(|(known, _, _)| known == name) {
            let message =
                format!("duplicate step name `{name}` in phase {phase}, first given at {first}");
            self.reporter.error(node.span, message);
            return None;
        }
        known.push((name.to_owned(), step_idx, node.span.start));
        Some(name.to_owned())
    }

    fn timeout(&mut self, node: &Node) -> Option<Option<u64>> {
        let seconds = node.expect_integer(&mut self.reporter)?;
        match seconds {
            -1 => Some(None),
            1.. => Some(Some(seconds.unsigned_abs())),
            _ => {
                self.reporter.error(
                    node.span,
                    format!(
                        "found timeoutSeconds {seconds}; expected a positive number of seconds, or -1 for no timeout"
                    ),
                );
                None
            }
        }
    }

    fn on_failure(&mut self, node: &Node) -> Option<OnFailure> {
        let text = node.expect_string(&mut self.reporter)?;
        let found = OnFailure::ALL.into_iter().find(|value| value.as_str() == text);
        if found.is_none() {
            self.reporter.error(
                node.span,
                format!("found onFailure {text:?}; expected Abort, Continue or Ignore"),
            );
        }
        found
    }

    fn max_attempts(&mut self, node: &Node) -> Option<u32> {
        let attempts = node.expect_integer(&mut self.reporter)?;
        match u32::try_from(attempts) {
            Ok(attempts) if attempts >= 1 => Some(attempts),
            _ => {
                self.reporter.error(
                    node.span,
                    format!("found maxAttempts {attempts}; expected an integer of at least 1"),
                );
                None
            }
        }
    }

    fn action(
        &mut self,
        node: &Node,
        inputs: Option<&Node>,
        step: &Node,
        context: &StepContext,
    ) -> Option<Action> {
        let text = node.expect_string(&mut self.reporter)?;
        match text {
            "ExecuteBash" => self.execute_bash(inputs, step, context),
            "UpdateOS" => self.update_os(inputs, context),
            "CreateFile" => self.create_file(inputs, step, context),
            _ => {
                let supported = Action::SUPPORTED.join(", ");
                let message = if let Some(known) =
                    Action::SUPPORTED.iter().find(|known| known.eq_ignore_ascii_case(text))
                {
                    format!("found the unknown action `{text}`, did you mean `{known}`?")
                } else if UNSUPPORTED_ACTIONS.contains(&text) {
                    format!(
                        "found the AWSTOE action `{text}`, which autopatch does not support; expected one of {supported}"
                    )
                } else {
                    format!("found the unknown action `{text}`; expected one of {supported}")
                };
                self.reporter.error(node.span, message);
                None
            }
        }
    }

    fn required_inputs<'n>(
        &mut self,
        inputs: Option<&'n Node>,
        step: &Node,
        action: &str,
    ) -> Option<&'n Node> {
        if inputs.is_none() {
            self.reporter
                .error(step.span, format!("missing required key `inputs` for the action {action}"));
        }
        inputs
    }

    fn execute_bash(
        &mut self,
        inputs: Option<&Node>,
        step: &Node,
        context: &StepContext,
    ) -> Option<Action> {
        let inputs = self.required_inputs(inputs, step, "ExecuteBash")?;
        let mut map = MappingReader::new(inputs, &mut self.reporter)?;
        let commands = map.required("commands", &mut self.reporter);
        map.finish(&mut self.reporter);
        let commands = commands?;
        let items = commands.expect_sequence(&mut self.reporter)?;
        if items.is_empty() {
            self.reporter
                .error(commands.span, "expected at least one command, found an empty sequence");
            return None;
        }
        let commands = self.templates(items, context)?;
        Some(Action::ExecuteBash { commands })
    }

    fn update_os(&mut self, inputs: Option<&Node>, context: &StepContext) -> Option<Action> {
        let Some(inputs) = inputs else {
            return Some(Action::UpdateOs { include: Vec::new(), exclude: Vec::new() });
        };
        let mut map = MappingReader::new(inputs, &mut self.reporter)?;
        let include = map.optional("include");
        let exclude = map.optional("exclude");
        map.finish(&mut self.reporter);
        let mut list = |node: Option<&Node>| match node {
            None => Some(Vec::new()),
            Some(node) => {
                let items = node.expect_sequence(&mut self.reporter)?;
                self.templates(items, context)
            }
        };
        let include = list(include);
        let exclude = list(exclude);
        Some(Action::UpdateOs { include: include?, exclude: exclude? })
    }

    fn create_file(
        &mut self,
        inputs: Option<&Node>,
        step: &Node,
        context: &StepContext,
    ) -> Option<Action> {
        let inputs = self.required_inputs(inputs, step, "CreateFile")?;
        let items = inputs.expect_sequence(&mut self.reporter)?;
        if items.is_empty() {
            self.reporter.error(inputs.span, "expected at least one file, found an empty sequence");
            return None;
        }
        let mut files = Vec::new();
        let mut complete = true;
        for item in items {
            match self.create_file_input(item, context) {
                Some(file) => files.push(file),
                None => complete = false,
            }
        }
        complete.then_some(Action::CreateFile { files })
    }

    fn create_file_input(&mut self, item: &Node, context: &StepContext) -> Option<CreateFileInput> {
        let mut map = MappingReader::new(item, &mut self.reporter)?;
        let path = map.required("path", &mut self.reporter).map(|node| self.path(node, context));
        let content_node = map.optional("content");
        let content = content_node.map(|node| self.template(node, context));
        let encoding = match map.optional("encoding") {
            None => Some(FileEncoding::default()),
            Some(node) => self.encoding(node),
        };
        // Literal content is checked now; content with references only
        // once rendered, when the step runs.
        if let (Some(FileEncoding::Base64), Some(node), Some(Some(content))) =
            (encoding, content_node, &content)
            && let Some(text) = content.as_literal()
        {
            self.base64_content(node, &text);
        }
        let permissions = map.optional("permissions").map(|node| self.permissions(node));
        let owner = map.optional("owner").map(|node| self.template(node, context));
        let group = map.optional("group").map(|node| self.template(node, context));
        let overwrite = match map.optional("overwrite") {
            None => Some(true),
            Some(node) => node.expect_bool(&mut self.reporter),
        };
        map.finish(&mut self.reporter);
        Some(CreateFileInput {
            path: path??,
            content: present(content)?,
            encoding: encoding?,
            permissions: present(permissions)?,
            owner: present(owner)?,
            group: present(group)?,
            overwrite: overwrite?,
            span: item.span,
        })
    }

    /// A `CreateFile` path: absolute, as AWSTOE requires. A path that starts
    /// with a reference is checked once rendered, when the step runs.
    fn path(&mut self, node: &Node, context: &StepContext) -> Option<Template> {
        let path = self.template(node, context)?;
        let message = match path.segments.first() {
            None => "found an empty path; expected an absolute path, starting with `/`".to_owned(),
            Some(Segment::Literal(text)) if !text.starts_with('/') => format!(
                "found the relative path {:?}; expected an absolute path, starting with `/` (AWSTOE writes files at absolute paths only)",
                path.to_string()
            ),
            Some(_) => return Some(path),
        };
        self.reporter.error(node.span, message);
        None
    }

    /// Reports `text` unless it decodes as the executor decodes it: standard
    /// base64 with padding, whitespace (line breaks) ignored.
    fn base64_content(&mut self, node: &Node, text: &str) {
        use base64::Engine as _;
        use base64::engine::general_purpose::STANDARD;
        let compact: String = text.split_whitespace().collect();
        let Err(error) = STANDARD.decode(&compact) else { return };
        let character = |offset: usize| compact.get(offset..).and_then(|rest| rest.chars().next());
        let reason = match error {
            base64::DecodeError::InvalidByte(offset, _) => match character(offset) {
                Some('=') => "`=` padding before its end".to_owned(),
                Some(found) => format!("the character {found:?}, which base64 does not use"),
                None => "a character base64 does not use".to_owned(),
            },
            base64::DecodeError::InvalidLastSymbol(offset, _) => format!(
                "a last character {:?} that no encoder writes there (cut short or altered?)",
                character(offset).unwrap_or('?')
            ),
            base64::DecodeError::InvalidLength(length) => {
                format!("{length} base64 characters, a length no encoder writes")
            }
            base64::DecodeError::InvalidPadding => format!(
                "{} characters besides whitespace, not a multiple of 4 padded with `=`",
                compact.chars().count()
            ),
        };
        self.reporter.error(
            node.span,
            format!("found content that is not valid base64 ({reason}); expected base64, as `encoding: base64` says"),
        );
    }

    fn encoding(&mut self, node: &Node) -> Option<FileEncoding> {
        let text = node.expect_string(&mut self.reporter)?;
        match text {
            "utf8" => Some(FileEncoding::Utf8),
            "base64" => Some(FileEncoding::Base64),
            _ => {
                self.reporter.error(
                    node.span,
                    format!("found the encoding {text:?}; expected utf8 or base64"),
                );
                None
            }
        }
    }

    fn permissions(&mut self, node: &Node) -> Option<u32> {
        let text = node.expect_string(&mut self.reporter)?;
        let valid =
            (3..=4).contains(&text.len()) && text.bytes().all(|b| (b'0'..=b'7').contains(&b));
        match u32::from_str_radix(text, 8) {
            Ok(mode) if valid => Some(mode),
            _ => {
                self.reporter.error(
                    node.span,
                    format!("found the permissions {text:?}; expected an octal mode like \"0644\""),
                );
                None
            }
        }
    }

    fn templates(&mut self, items: &[Node], context: &StepContext) -> Option<Vec<Template>> {
        let templates: Vec<Option<Template>> =
            items.iter().map(|item| self.template(item, context)).collect();
        templates.into_iter().collect()
    }

    /// Reads a string with references; references are queued for checking.
    fn template(&mut self, node: &Node, context: &StepContext) -> Option<Template> {
        let text = node.expect_string(&mut self.reporter)?;
        let parsed = parse_template(text);
        for error in &parsed.errors {
            let at = self.locate(node, text, error.offset);
            self.reporter.error(Span::at(at), error.message.clone());
        }
        for (offset, segment_idx) in &parsed.references {
            let Some(phase) = context.phase else { break };
            let at = self.locate(node, text, *offset);
            self.pending.push(PendingReference {
                segment: parsed.template.segments[*segment_idx].clone(),
                at,
                phase,
                step_idx: context.step_idx,
                step_name: context.step_name.clone(),
            });
        }
        parsed.errors.is_empty().then_some(parsed.template)
    }

    /// The source position of the `{{` at byte `offset` of the decoded `text`
    /// of `node`, or the scalar's start when the source does not match.
    fn locate(&self, node: &Node, text: &str, offset: usize) -> Position {
        let decoded = openings(text);
        let Some(ordinal) = decoded.iter().rposition(|&opening| opening <= offset) else {
            return node.span.start;
        };
        let Some(raw) = self.lines.slice(node.span) else { return node.span.start };
        let raw_openings = openings(raw);
        if raw_openings.len() != decoded.len() {
            return node.span.start;
        }
        advance(node.span.start, &raw[..raw_openings[ordinal]])
    }

    fn check_references(&mut self) {
        for pending in std::mem::take(&mut self.pending) {
            let message = match &pending.segment {
                Segment::Literal(_) => None,
                Segment::Parameter(name) => match &self.declared {
                    Some(declared) if !declared.contains(name) => Some(format!(
                        "found the undefined parameter `{name}` in `{}`; {}",
                        pending.segment,
                        declared_parameters(declared.iter().map(String::as_str))
                    )),
                    _ => None,
                },
                Segment::StepOutput { phase, step } => {
                    self.check_step_output(&pending, *phase, step)
                }
            };
            if let Some(message) = message {
                self.reporter.error(Span::at(pending.at), message);
            }
        }
    }

    fn check_step_output(
        &self,
        pending: &PendingReference,
        phase: PhaseName,
        step: &str,
    ) -> Option<String> {
        let reference = &pending.segment;
        let stage = pending.phase.stage();
        if phase.stage() != stage {
            let phases = match stage {
                Stage::Build => "phases build and validate",
                Stage::Test => "phase test",
            };
            return Some(format!(
                "found `{reference}` in phase {}, which runs in the {} stage; expected an earlier step of the same stage ({phases})",
                pending.phase,
                stage.as_str(),
            ));
        }
        let target = self
            .step_names
            .get(&phase)
            .and_then(|steps| steps.iter().find(|(name, _, _)| name == step));
        let Some((_, target_idx, _)) = target else {
            return Some(format!(
                "found `{reference}`, but phase {phase} has no step named `{step}`; expected an earlier step of the same stage"
            ));
        };
        let target_order = (phase.rank(), *target_idx);
        let current_order = (pending.phase.rank(), pending.step_idx);
        if target_order == current_order {
            Some(format!("found `{reference}` in step `{step}` itself; expected an earlier step"))
        } else if target_order > current_order {
            Some(format!(
                "found `{reference}` in step `{}`, which runs before step `{step}`; expected an earlier step",
                pending.step_name
            ))
        } else {
            None
        }
    }
}

/// An optional value that was read: `Some(None)` if absent, `None` if present
/// but invalid (already reported).
fn present<T>(value: Option<Option<T>>) -> Option<Option<T>> {
    value.map_or(Some(None), |inner| inner.map(Some))
}

/// Byte offsets of the non-overlapping `{{` in `text`, left to right.
fn openings(text: &str) -> Vec<usize> {
    text.match_indices("{{").map(|(offset, _)| offset).collect()
}

#[cfg(test)]
mod tests;
