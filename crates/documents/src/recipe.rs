//! Image recipe files, shaped like Image Builder's `CreateImageRecipe`
//! request: a name and version, a parent image and the components to run on
//! it, in order.
//!
//! Only the shape is checked here. Whether the parent image exists and the
//! components are registered is checked against the store by the caller, at
//! the spans kept for that purpose; [`parse_recipe_lenient`] gives the caller
//! those references even when the document has problems, so that the
//! document's problems and the references' are reported together.

use std::collections::BTreeMap;

use autopatch_model::{ImageVersion, SemanticVersion};

use crate::accepted;
use crate::diagnostic::{Diagnostic, Diagnostics, Reporter};
use crate::reference::{
    BuildPart, VersionFilter, is_name, name_error, parse_image_reference, parse_reference,
};
use crate::source::{SourceFile, Span};
use crate::yaml::{MappingReader, Node, parse_yaml_reporting};

/// An image recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeDocument {
    /// Letters, digits, `-` and `_`.
    pub name: String,
    /// From `semanticVersion` (or its alias `version`).
    pub semantic_version: SemanticVersion,
    pub description: Option<String>,
    pub parent_image: ParentImage,
    /// Where `parentImage`'s value is, to report a missing parent there.
    pub parent_image_span: Span,
    /// Never empty; in run order.
    pub components: Vec<ComponentReference>,
    /// An absolute path in the build container; no local effect.
    pub working_directory: Option<String>,
    /// `dryRun: true`: the request is checked whole and nothing is
    /// registered.
    pub dry_run: bool,
}

/// The image a recipe builds on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentImage {
    /// An image autopatch built, that build: `name/x.y.z/N`, or an Image
    /// Builder image ARN
    /// `arn:aws:imagebuilder:<region>:<account>:image/<name>/<x.y.z>/<N>`.
    Image(ImageVersion),
    /// The latest build of the highest registered version the filter
    /// matches: `name/1.2.3`, `name/1.2.x`, `name/1.x.x`, `name/x.x.x`, or an
    /// image ARN ending with one of those.
    Latest { name: String, version: VersionFilter },
    /// As written: the name of a registered image (its latest), else an image
    /// the container engine can pull or already has, like
    /// `docker.io/library/debian:12`.
    EngineReference(String),
}

/// A component entry of a recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentReference {
    /// `componentArn` as written.
    pub reference: String,
    /// The registered component's name.
    pub name: String,
    /// The version or version filter; [`VersionFilter::Any`] for a bare
    /// name: the highest registered version it matches.
    pub version: VersionFilter,
    /// A build number, when the reference gives one (after an exact version).
    pub build: Option<u32>,
    /// Parameter values, by name.
    pub parameters: BTreeMap<String, String>,
    /// Where each parameter given is named (its `name:` value), to report an
    /// undeclared one there; includes the parameters whose value could not
    /// be read.
    pub parameter_spans: BTreeMap<String, Span>,
    /// False when a parameter entry's name could not be read (a diagnostic
    /// says why): a parameter may then be absent from `parameter_spans` only
    /// because it could not be read. Always true in a recipe without problems.
    pub parameters_complete: bool,
    /// The entry's mapping, to report an unregistered component or a
    /// missing parameter there.
    pub span: Span,
    /// Where `componentArn`'s value is, to report a build that does not
    /// exist there.
    pub reference_span: Span,
}

/// A recipe as far as it could be read, from [`parse_recipe_lenient`]: what a
/// caller checks against the store (its name, parent image and components),
/// including when the document has problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialRecipe {
    /// The name and where its value is, when it could be read.
    pub name: Option<(String, Span)>,
    /// The parent image and where its value is, when it could be read.
    pub parent_image: Option<(ParentImage, Span)>,
    /// The component entries whose `componentArn` could be read, in order.
    pub components: Vec<ComponentReference>,
    /// The whole recipe, when the document had no problem.
    document: Option<RecipeDocument>,
}

impl PartialRecipe {
    /// The whole recipe: `Some` exactly when the lenient parse reported no
    /// problem.
    pub fn complete(self) -> Option<RecipeDocument> {
        self.document
    }
}

/// Parses and validates an image recipe file.
///
/// # Errors
/// Returns every problem found: YAML syntax, unknown or missing keys, wrong
/// types, bad names, versions and references.
pub fn parse_recipe(file: &SourceFile) -> Result<RecipeDocument, Diagnostics> {
    let (recipe, reporter) = read_recipe(file);
    reporter.finish_option(recipe.and_then(PartialRecipe::complete))
}

/// Like [`parse_recipe`], for callers that go on checking what could be read
/// (registration checks the components and the parent image against the
/// store): the recipe as far as it could be read and every diagnostic, sorted
/// by position. `None` only when nothing could be read (YAML syntax errors, a
/// document that is not a mapping).
pub fn parse_recipe_lenient(file: &SourceFile) -> (Option<PartialRecipe>, Vec<Diagnostic>) {
    let (recipe, reporter) = read_recipe(file);
    (recipe, reporter.into_diagnostics())
}

fn read_recipe(file: &SourceFile) -> (Option<PartialRecipe>, Reporter) {
    let mut reporter = Reporter::new(file.name.clone());
    let recipe =
        parse_yaml_reporting(file, &mut reporter).and_then(|root| recipe(&root, &mut reporter));
    (recipe, reporter)
}

fn recipe(root: &Node, reporter: &mut Reporter) -> Option<PartialRecipe> {
    let mut map = MappingReader::new(root, reporter)?;
    let name = map.required("name", reporter).and_then(|node| {
        resource_name(node, "recipe name", reporter).map(|name| (name, node.span))
    });
    let semantic_version = semantic_version(&mut map, reporter);
    let description = map
        .optional("description")
        .and_then(|node| accepted::string(node, "description", 1..=1024, reporter));
    let parent_image = map
        .required("parentImage", reporter)
        .and_then(|node| parent_image(node, reporter).map(|parent| (parent, node.span)));
    let components = map.required("components", reporter).map(|node| components(node, reporter));
    let working_directory = map.optional("workingDirectory").and_then(|node| {
        let text = node.expect_string(reporter)?;
        if !text.starts_with('/') {
            reporter.error(
                node.span,
                format!("found the working directory {text:?}; expected an absolute path"),
            );
            return None;
        }
        Some(text.to_owned())
    });
    let dry_run = match map.optional("dryRun") {
        None => Some(false),
        Some(node) => node.expect_bool(reporter),
    };
    accepted_keys(&mut map, reporter);
    map.finish(reporter);
    // Every part that could not be read was reported: without a diagnostic,
    // the recipe is whole.
    let document = match (&name, semantic_version, &parent_image, &components, dry_run) {
        (
            Some((name, _)),
            Some(semantic_version),
            Some((parent, parent_span)),
            Some(components),
            Some(dry_run),
        ) if !reporter.has_errors() => Some(RecipeDocument {
            name: name.clone(),
            semantic_version,
            description,
            parent_image: parent.clone(),
            parent_image_span: *parent_span,
            components: components.clone(),
            working_directory,
            dry_run,
        }),
        _ => None,
    };
    Some(PartialRecipe { name, parent_image, components: components.unwrap_or_default(), document })
}

/// The keys of `CreateImageRecipe` that have no local effect: checked where
/// that is cheap (see the accepted module), then dropped.
fn accepted_keys(map: &mut MappingReader<'_>, reporter: &mut Reporter) {
    if let Some(node) = map.optional("additionalInstanceConfiguration") {
        accepted::additional_instance_configuration(node, reporter);
    }
    if let Some(node) = map.optional("amiTags") {
        accepted::tags(node, "amiTags", reporter);
    }
    if let Some(node) = map.optional("amiWatermarks") {
        accepted::ami_watermarks(node, reporter);
    }
    if let Some(node) = map.optional("blockDeviceMappings") {
        accepted::block_device_mappings(node, reporter);
    }
    if let Some(node) = map.optional("clientToken") {
        accepted::client_token(node, reporter);
    }
    if let Some(node) = map.optional("tags") {
        accepted::tags(node, "tags", reporter);
    }
}

/// A resource name (letters, digits, `-`, `_`), else `None` after reporting.
pub(crate) fn resource_name(node: &Node, what: &str, reporter: &mut Reporter) -> Option<String> {
    let text = node.expect_string(reporter)?;
    if !is_name(text) {
        reporter.error(node.span, name_error(what, text));
        return None;
    }
    Some(text.to_owned())
}

/// `semanticVersion`, or its alias `version`, exactly one of them. When both
/// are given, each value is still checked, so that a bad one is reported now
/// rather than once the other is removed.
fn semantic_version(
    map: &mut MappingReader<'_>,
    reporter: &mut Reporter,
) -> Option<SemanticVersion> {
    let canonical = map.entry("semanticVersion");
    let alias = map.entry("version");
    match (canonical, alias) {
        (Some((_, node)), None) | (None, Some((_, node))) => version_value(node, reporter),
        (Some((_, canonical)), Some((alias_key, alias))) => {
            reporter.error(
                alias_key.span,
                "found both `semanticVersion` and its alias `version`; expected one",
            );
            version_value(canonical, reporter);
            version_value(alias, reporter);
            None
        }
        (None, None) => {
            reporter.error(map.span(), "missing required key `semanticVersion`");
            None
        }
    }
}

fn version_value(node: &Node, reporter: &mut Reporter) -> Option<SemanticVersion> {
    let text = node.expect_string(reporter)?;
    match text.parse::<SemanticVersion>() {
        Ok(version) => Some(version),
        Err(error) => {
            reporter.error(
                node.span,
                format!(
                    "found the version {text:?}; expected a semantic version x.y.z: {}",
                    error.reason
                ),
            );
            None
        }
    }
}

fn parent_image(node: &Node, reporter: &mut Reporter) -> Option<ParentImage> {
    let text = node.expect_string(reporter)?;
    let mut error = |message: String| {
        reporter.error(node.span, message);
        None
    };
    match parse_image_reference(text) {
        Err(message) => error(message),
        Ok(Some(image)) => match image.image_version() {
            Some(version) => Some(ParentImage::Image(version)),
            // A bare name may also be an engine image: resolved by its text.
            None if !text.contains('/') => Some(ParentImage::EngineReference(text.to_owned())),
            None => Some(ParentImage::Latest { name: image.name, version: image.version }),
        },
        Ok(None)
            if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            error(format!(
                "found the parent image {text:?}; expected an image version like golden/1.0.0/1 or an engine reference like docker.io/library/debian:12"
            ))
        }
        Ok(None) => Some(ParentImage::EngineReference(text.to_owned())),
    }
}

/// The entries whose `componentArn` could be read; every problem is reported.
fn components(node: &Node, reporter: &mut Reporter) -> Vec<ComponentReference> {
    let Some(items) = node.expect_sequence(reporter) else { return Vec::new() };
    if items.is_empty() {
        reporter.error(node.span, "expected at least one component, found an empty sequence");
    }
    items.iter().filter_map(|item| component(item, reporter)).collect()
}

fn component(item: &Node, reporter: &mut Reporter) -> Option<ComponentReference> {
    let mut map = MappingReader::new(item, reporter)?;
    let reference = map.required("componentArn", reporter).and_then(|node| {
        let text = node.expect_string(reporter)?;
        match parse_reference(text, "component", BuildPart::Optional) {
            Ok(name) => Some((text.to_owned(), name, node.span)),
            Err(message) => {
                reporter.error(node.span, message);
                None
            }
        }
    });
    let parameters = match map.optional("parameters") {
        None => GivenParameters { complete: true, ..GivenParameters::default() },
        Some(node) => component_parameters(node, reporter),
    };
    map.finish(reporter);
    let (reference, name, reference_span) = reference?;
    Some(ComponentReference {
        reference,
        name: name.name,
        version: name.version,
        build: name.build,
        parameters: parameters.values,
        parameter_spans: parameters.spans,
        parameters_complete: parameters.complete,
        span: item.span,
        reference_span,
    })
}

/// The parameters of a component entry, as far as they could be read.
#[derive(Debug, Default)]
struct GivenParameters {
    values: BTreeMap<String, String>,
    spans: BTreeMap<String, Span>,
    /// Whether every entry's name could be read.
    complete: bool,
}

/// `[ { name: N, value: [V] } ]`; a scalar `value` is taken as `[value]`.
fn component_parameters(node: &Node, reporter: &mut Reporter) -> GivenParameters {
    let mut given = GivenParameters::default();
    let Some(items) = node.expect_sequence(reporter) else { return given };
    given.complete = true;
    for item in items {
        let Some(mut map) = MappingReader::new(item, reporter) else {
            given.complete = false;
            continue;
        };
        let name_node = map.required("name", reporter);
        let name = name_node.and_then(|node| node.expect_string(reporter));
        let value =
            map.required("value", reporter).and_then(|node| parameter_value(node, reporter));
        map.finish(reporter);
        let (Some(name_node), Some(name)) = (name_node, name) else {
            given.complete = false;
            continue;
        };
        if let Some(first) = given.spans.get(name) {
            reporter.error(
                name_node.span,
                format!("duplicate parameter `{name}`, first given at {}", first.start),
            );
            continue;
        }
        given.spans.insert(name.to_owned(), name_node.span);
        if let Some(value) = value {
            given.values.insert(name.to_owned(), value);
        }
    }
    given
}

/// A parameter's value: a string (numbers and booleans as written), or a
/// sequence of exactly one; anything else is reported at the value.
fn parameter_value(node: &Node, reporter: &mut Reporter) -> Option<String> {
    let Some(items) = node.as_sequence().filter(|_| node.tag.is_none()) else {
        return node.expect_string(reporter).map(str::to_owned);
    };
    match items {
        [single] => single.expect_string(reporter).map(str::to_owned),
        _ => {
            reporter.error(
                node.span,
                format!(
                    "found {} values; expected exactly one value, like `value: [\"x\"]`",
                    items.len()
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(text: &str, expect: Expect) {
        let file = SourceFile::new("recipe.yaml", text);
        let actual = match parse_recipe(&file) {
            Ok(recipe) => format!("{recipe:#?}"),
            Err(diagnostics) => diagnostics.to_string(),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn lab_recipe() {
        check(
            r#"
name: PatchedWebServer
version: 1.0.1
description: the lab's recipe
parentImage: golden/1.0.0/3
components:
  - componentArn: ConfigureOS
  - componentArn: arn:aws:imagebuilder:eu-west-1:123456789012:component/configure-web/2.0.0/1
    parameters:
      - name: Greeting
        value: ["Welcome to Re:Invent 2020"]
      - name: Port
        value: 8080
workingDirectory: /tmp
"#,
            expect![[r#"
                RecipeDocument {
                    name: "PatchedWebServer",
                    semantic_version: SemanticVersion {
                        major: 1,
                        minor: 0,
                        patch: 1,
                    },
                    description: Some(
                        "the lab's recipe",
                    ),
                    parent_image: Image(
                        ImageVersion {
                            recipe: "golden",
                            version: SemanticVersion {
                                major: 1,
                                minor: 0,
                                patch: 0,
                            },
                            build: 3,
                        },
                    ),
                    parent_image_span: Span {
                        start: Position {
                            line: 5,
                            column: 14,
                        },
                        end: Position {
                            line: 5,
                            column: 28,
                        },
                    },
                    components: [
                        ComponentReference {
                            reference: "ConfigureOS",
                            name: "ConfigureOS",
                            version: Any,
                            build: None,
                            parameters: {},
                            parameter_spans: {},
                            parameters_complete: true,
                            span: Span {
                                start: Position {
                                    line: 7,
                                    column: 5,
                                },
                                end: Position {
                                    line: 8,
                                    column: 3,
                                },
                            },
                            reference_span: Span {
                                start: Position {
                                    line: 7,
                                    column: 19,
                                },
                                end: Position {
                                    line: 7,
                                    column: 30,
                                },
                            },
                        },
                        ComponentReference {
                            reference: "arn:aws:imagebuilder:eu-west-1:123456789012:component/configure-web/2.0.0/1",
                            name: "configure-web",
                            version: Exact(
                                SemanticVersion {
                                    major: 2,
                                    minor: 0,
                                    patch: 0,
                                },
                            ),
                            build: Some(
                                1,
                            ),
                            parameters: {
                                "Greeting": "Welcome to Re:Invent 2020",
                                "Port": "8080",
                            },
                            parameter_spans: {
                                "Greeting": Span {
                                    start: Position {
                                        line: 10,
                                        column: 15,
                                    },
                                    end: Position {
                                        line: 10,
                                        column: 23,
                                    },
                                },
                                "Port": Span {
                                    start: Position {
                                        line: 12,
                                        column: 15,
                                    },
                                    end: Position {
                                        line: 12,
                                        column: 19,
                                    },
                                },
                            },
                            parameters_complete: true,
                            span: Span {
                                start: Position {
                                    line: 8,
                                    column: 5,
                                },
                                end: Position {
                                    line: 14,
                                    column: 1,
                                },
                            },
                            reference_span: Span {
                                start: Position {
                                    line: 8,
                                    column: 19,
                                },
                                end: Position {
                                    line: 8,
                                    column: 94,
                                },
                            },
                        },
                    ],
                    working_directory: Some(
                        "/tmp",
                    ),
                    dry_run: false,
                }"#]],
        );
    }

    #[test]
    fn parent_images() {
        let parent = |text: &str| match parse_recipe(&SourceFile::new(
            "r.yaml",
            format!(
                "name: r\nsemanticVersion: 1.0.0\nparentImage: {text}\ncomponents: [{{componentArn: c}}]\n"
            ),
        )) {
            Ok(recipe) => format!("{:?}", recipe.parent_image),
            Err(diagnostics) => diagnostics.to_string(),
        };
        let actual = [
            "docker.io/library/debian:12",
            "debian",
            "localhost/autopatch/golden:1.0.0-1",
            "golden/1.0.0/1",
            "arn:aws:imagebuilder:us-east-1:123456789012:image/golden/1.2.3/4",
            "golden/1.0/1",
            "arn:aws:imagebuilder:us-east-1:123456789012:image/golden/x.x.x",
            "golden/1.x.x",
            "golden/1.2.3",
            "arn:aws:imagebuilder:us-east-1:123456789012:image/golden/1.2.x",
            "golden/x.2.x",
            "golden/1.x.x/3",
            "'with space'",
            "''",
        ]
        .map(parent)
        .join("\n");
        expect![[r#"
            EngineReference("docker.io/library/debian:12")
            EngineReference("debian")
            EngineReference("localhost/autopatch/golden:1.0.0-1")
            Image(ImageVersion { recipe: "golden", version: SemanticVersion { major: 1, minor: 0, patch: 0 }, build: 1 })
            Image(ImageVersion { recipe: "golden", version: SemanticVersion { major: 1, minor: 2, patch: 3 }, build: 4 })
            r.yaml:3:14: error: found the version "1.0" in "golden/1.0/1"; expected x.y.z or a version filter x.x.x, 1.x.x or 1.2.x: expected three numbers separated by dots, like 1.0.0
            Latest { name: "golden", version: Any }
            Latest { name: "golden", version: Major(1) }
            Latest { name: "golden", version: Exact(SemanticVersion { major: 1, minor: 2, patch: 3 }) }
            Latest { name: "golden", version: Minor(1, 2) }
            r.yaml:3:14: error: found the version "x.2.x" in "golden/x.2.x"; expected x.y.z or a version filter x.x.x, 1.x.x or 1.2.x: every part after the first x must be x too: x.x.x, 1.x.x or 1.2.x
            r.yaml:3:14: error: found a build number after the version filter 1.x.x in "golden/1.x.x/3"; expected a build number only after a version x.y.z
            r.yaml:3:14: error: found the parent image "with space"; expected an image version like golden/1.0.0/1 or an engine reference like docker.io/library/debian:12
            r.yaml:3:14: error: found the parent image ""; expected an image version like golden/1.0.0/1 or an engine reference like docker.io/library/debian:12"#]]
        .assert_eq(&actual);
    }

    /// Every key of `CreateImageRecipe` is accepted, so that the file AWS
    /// takes runs here as it is; those without a local effect are checked
    /// for their documented shape.
    #[test]
    fn every_documented_key_is_accepted() {
        let text = r#"
name: web
semanticVersion: 1.0.0
description: every key
parentImage: arn:aws:imagebuilder:us-east-1:aws:image/golden/x.x.x
components:
  - componentArn: update-os
additionalInstanceConfiguration:
  systemsManagerAgent: { uninstallAfterBuild: true }
  userDataOverride: IyEvYmluL2Jhc2gKZWNobyBoaQo=
amiTags: { Team: patching }
amiWatermarks: [lineage]
blockDeviceMappings:
  - deviceName: /dev/xvda
    ebs: { deleteOnTermination: true, encrypted: false, iops: 3000, kmsKeyId: k, snapshotId: snap-1, throughput: 125, volumeSize: 30, volumeType: gp3 }
    noDevice: ""
    virtualName: ephemeral0
clientToken: 2f8b8a0e-3c1f-4f0e-9d55-0c6c1d3a1b2c
dryRun: true
tags: { Name: web, "cost-center": "42" }
workingDirectory: /tmp
"#;
        let recipe = parse_recipe(&SourceFile::new("r.yaml", text)).unwrap();
        assert!(recipe.dry_run);
        let plain = "name: r\nsemanticVersion: 1.0.0\nparentImage: debian\ncomponents: [{componentArn: c}]\n";
        assert!(!parse_recipe(&SourceFile::new("r.yaml", plain)).unwrap().dry_run);

        check(
            r#"
name: web
semanticVersion: 1.0.0
parentImage: debian
components: [{componentArn: c}]
additionalInstanceConfiguration:
  systemsManagerAgent: { uninstallAfterBuild: "yes" }
  userDataOverride: "not base64!"
amiTags: [a]
amiWatermarks: []
blockDeviceMappings:
  - deviceName: /dev/xvda
    ebs: { iops: 5, volumeType: fast, size: 3 }
clientToken: ""
dryRun: maybe
tags: { "aws:owner": me }
containerTags: x
"#,
            expect![[r#"
                recipe.yaml:7:47: error: expected a boolean (true or false), found the string "yes"
                recipe.yaml:8:21: error: found userDataOverride that is not base64; expected the user data encoded in base64, as AWS requires
                recipe.yaml:9:10: error: expected a mapping of tag names to values, found a sequence
                recipe.yaml:10:16: error: found 0 items in amiWatermarks; expected 1 to 5
                recipe.yaml:13:18: error: found iops 5; expected an integer from 100 to 64000
                recipe.yaml:13:33: error: found volumeType "fast"; expected one of standard, io1, io2, gp2, gp3, sc1, st1
                recipe.yaml:13:39: error: unknown key `size`; expected one of `deleteOnTermination`, `encrypted`, `iops`, `kmsKeyId`, `snapshotId`, `throughput`, `volumeSize`, `volumeType`
                recipe.yaml:14:14: error: found clientToken of 0 characters; expected 1 to 36 characters
                recipe.yaml:15:9: error: expected a boolean (true or false), found the string "maybe"
                recipe.yaml:16:9: error: found the tag name "aws:owner"; expected a name that does not start with `aws:`, which AWS keeps for itself
                recipe.yaml:17:1: error: unknown key `containerTags`; expected one of `name`, `semanticVersion`, `version`, `description`, `parentImage`, `components`, `workingDirectory`, `dryRun`, `additionalInstanceConfiguration`, `amiTags`, `amiWatermarks`, `blockDeviceMappings`, `clientToken`, `tags`"#]],
        );
    }

    #[test]
    fn missing_keys() {
        check(
            "description: nothing else\n",
            expect![[r#"
                recipe.yaml:1:1: error: missing required key `name`
                recipe.yaml:1:1: error: missing required key `semanticVersion`
                recipe.yaml:1:1: error: missing required key `parentImage`
                recipe.yaml:1:1: error: missing required key `components`"#]],
        );
    }

    #[test]
    fn many_problems_at_once() {
        check(
            r#"
name: my recipe
semanticVersion: 1.0
version: 1.0.0
parentImage: [debian]
components:
  - componentArn: UpdateOS/1.0
  - componentArn: arn:aws:imagebuilder:eu-west-1:1:image-recipe/x/1.0.0
  - componentArn: ok
    parameters:
      - name: A
        value: [a, b]
      - name: B
        value: b
      - name: B
        value: c
      - value: d
  - component: UpdateOS
  - ConfigureOS
workingDirectory: tmp
tags: {}
"#,
            expect![[r#"
                recipe.yaml:2:7: error: found the recipe name "my recipe"; expected a name made of letters, digits, `-` and `_`
                recipe.yaml:3:18: error: found the version "1.0"; expected a semantic version x.y.z: expected three numbers separated by dots, like 1.0.0
                recipe.yaml:4:1: error: found both `semanticVersion` and its alias `version`; expected one
                recipe.yaml:5:14: error: expected a string, found a sequence
                recipe.yaml:7:19: error: found the version "1.0" in "UpdateOS/1.0"; expected x.y.z or a version filter x.x.x, 1.x.x or 1.2.x: expected three numbers separated by dots, like 1.0.0
                recipe.yaml:8:19: error: found the ARN "arn:aws:imagebuilder:eu-west-1:1:image-recipe/x/1.0.0"; expected arn:aws:imagebuilder:<region>:<account>:component/<name>/<x.y.z>[/<build>]
                recipe.yaml:12:16: error: found 2 values; expected exactly one value, like `value: ["x"]`
                recipe.yaml:15:15: error: duplicate parameter `B`, first given at 13:15
                recipe.yaml:17:9: error: missing required key `name`
                recipe.yaml:18:5: error: missing required key `componentArn`
                recipe.yaml:18:5: error: unknown key `component`; expected one of `componentArn`, `parameters`
                recipe.yaml:19:5: error: expected a mapping, found the string "ConfigureOS"
                recipe.yaml:20:19: error: found the working directory "tmp"; expected an absolute path"#]],
        );
    }

    #[test]
    fn bad_version_and_empty_components() {
        check(
            "name: r\nsemanticVersion: 1.0.0.0\nparentImage: debian\ncomponents: []\n",
            expect![[r#"
                recipe.yaml:2:18: error: found the version "1.0.0.0"; expected a semantic version x.y.z: expected three numbers separated by dots, like 1.0.0
                recipe.yaml:4:13: error: expected at least one component, found an empty sequence"#]],
        );
    }

    #[test]
    fn a_lenient_parse_gives_the_references_of_a_recipe_with_problems() {
        // No name, a bad version, an unknown key and an unreadable entry:
        // every problem is reported, and what registration checks against
        // the store (the parent, the readable entries) is still given.
        let text = "semanticVersion: 1.0\nparentImage: golden/1.0.0/1\nbogus: 1\ncomponents:\n  - componentArn: update-os\n  - componentArn: webapp\n    parameters:\n      - name: Greeting\n        value: [hi]\n  - componentArn: bad/1.0\n";
        let (recipe, diagnostics) = parse_recipe_lenient(&SourceFile::new("r.yaml", text));
        let rendered: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        expect![[r#"
            [
                "r.yaml:1:1: error: missing required key `name`",
                "r.yaml:1:18: error: found the version \"1.0\"; expected a semantic version x.y.z: expected three numbers separated by dots, like 1.0.0",
                "r.yaml:3:1: error: unknown key `bogus`; expected one of `name`, `semanticVersion`, `version`, `description`, `parentImage`, `components`, `workingDirectory`, `dryRun`, `additionalInstanceConfiguration`, `amiTags`, `amiWatermarks`, `blockDeviceMappings`, `clientToken`, `tags`",
                "r.yaml:10:19: error: found the version \"1.0\" in \"bad/1.0\"; expected x.y.z or a version filter x.x.x, 1.x.x or 1.2.x: expected three numbers separated by dots, like 1.0.0",
            ]
        "#]]
        .assert_debug_eq(&rendered);
        let recipe = recipe.expect("a mapping");
        assert_eq!(recipe.name, None);
        let (parent, span) = recipe.parent_image.clone().expect("a readable parent");
        assert_eq!(parent_text(&parent), "golden/1.0.0/1");
        assert_eq!(span.start, crate::Position::new(2, 14));
        let entries: Vec<(&str, Vec<(&String, crate::Position)>)> = recipe
            .components
            .iter()
            .map(|entry| {
                let names = entry.parameter_spans.iter().map(|(n, s)| (n, s.start)).collect();
                (entry.name.as_str(), names)
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("update-os", vec![]),
                ("webapp", vec![(&"Greeting".to_owned(), crate::Position::new(8, 15))])
            ]
        );
        assert_eq!(recipe.complete(), None);

        let whole = "name: r\nsemanticVersion: 1.0.0\nparentImage: debian\ncomponents: [{componentArn: c}]\n";
        let (recipe, diagnostics) = parse_recipe_lenient(&SourceFile::new("r.yaml", whole));
        assert!(diagnostics.is_empty());
        assert_eq!(recipe.and_then(PartialRecipe::complete).map(|r| r.name).as_deref(), Some("r"));
        let (nothing, diagnostics) = parse_recipe_lenient(&SourceFile::new("r.yaml", "[a, b]"));
        assert!(nothing.is_none());
        assert_eq!(diagnostics.len(), 1);
    }

    fn parent_text(parent: &ParentImage) -> String {
        match parent {
            ParentImage::Image(image) => image.to_string(),
            ParentImage::Latest { name, version } => format!("{name}/{version}"),
            ParentImage::EngineReference(reference) => reference.clone(),
        }
    }
}
