//! Image pipeline files, shaped like Image Builder's `CreateImagePipeline`
//! request: which recipe to build, whether to test, when to run, on what
//! infrastructure.
//!
//! Differences from AWS, on purpose:
//! - the infrastructure configuration is inline (`infrastructureConfiguration`)
//!   instead of a separate resource referenced by ARN;
//! - `schedule.startCondition: always | updates-available` is accepted as a
//!   readable spelling of `pipelineExecutionStartCondition`;
//! - `imageTestsConfiguration.timeoutMinutes` accepts 1 to 1440 (AWS: 60 to 1440);
//! - `infrastructureConfiguration.memoryMiB` is at least [`MIN_MEMORY_MIB`], the
//!   smallest memory limit container engines start a container with;
//! - `imageRecipeArn` takes version filters (`1.x.x`) as component references do;
//! - the keys without a local effect (tags, ARNs of AWS-only resources,
//!   scanning, logging...) are accepted with their shape checked (see the
//!   accepted module); `workflows` may name only Image Builder's default
//!   build and test workflows, and `containerRecipeArn` is refused.
//!
//! The schedule expression's syntax is checked here (`cron(...)` or
//! `rate(...)`, see the schedule module) and the expression kept as written.

use crate::accepted;
use crate::diagnostic::{Diagnostic, Diagnostics, Reporter};
use crate::recipe::resource_name;
use crate::reference::{BuildPart, VersionFilter, parse_reference};
use crate::schedule::check_schedule_expression;
use crate::source::{LineIndex, Position, SourceFile, Span, advance};
use crate::yaml::{MappingReader, Node, ScalarStyle, parse_yaml_reporting};

/// The smallest `memoryMiB` accepted: Docker refuses a memory limit under
/// 6 MiB, and runc fails to start a container whose limit is under what the
/// container uses while it starts.
pub const MIN_MEMORY_MIB: u64 = 6;

/// An image pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineDocument {
    /// Letters, digits, `-` and `_`.
    pub name: String,
    pub description: Option<String>,
    /// From `imageRecipeArn`.
    pub image_recipe: RecipeReference,
    pub image_tests: ImageTestsConfiguration,
    /// `None`: the pipeline runs only when started by hand.
    pub schedule: Option<Schedule>,
    pub infrastructure: InfrastructureConfiguration,
    pub status: PipelineStatus,
    /// `dryRun: true`: the request is checked whole and nothing is
    /// registered.
    pub dry_run: bool,
}

/// The recipe a pipeline builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeReference {
    /// `imageRecipeArn` as written.
    pub reference: String,
    pub name: String,
    /// The version or version filter; [`VersionFilter::Any`] for a bare
    /// name: the highest registered version it matches.
    pub version: VersionFilter,
    /// Where the reference is, to report an unknown recipe there.
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageTestsConfiguration {
    /// Default `true`.
    pub image_tests_enabled: bool,
    /// 1 to 1440, default 720.
    pub timeout_minutes: u32,
}

impl Default for ImageTestsConfiguration {
    fn default() -> ImageTestsConfiguration {
        ImageTestsConfiguration { image_tests_enabled: true, timeout_minutes: 720 }
    }
}

/// When a pipeline runs by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub start_condition: StartCondition,
    /// A `cron(...)` or `rate(...)` expression, as written; its syntax is
    /// checked.
    pub schedule_expression: String,
    /// An IANA time zone name for the expression, as written; `None`: UTC.
    /// Its shape is AWS's (see [`is_time_zone_name`]); whether the zone
    /// exists is checked against the host's time zone database by the
    /// caller, at [`PartialPipeline::timezone`].
    pub timezone: Option<String>,
    /// Where `scheduleExpression`'s value is, to report a bad expression there.
    pub expression_span: Span,
}

/// Whether a scheduled run builds always, or only when something it depends on
/// has updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartCondition {
    /// `EXPRESSION_MATCH_ONLY`, or `always`.
    Always,
    /// `EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE`, or
    /// `updates-available`. The AWS default.
    #[default]
    UpdatesAvailable,
}

impl StartCondition {
    /// The Image Builder name.
    pub fn as_aws_str(self) -> &'static str {
        match self {
            StartCondition::Always => "EXPRESSION_MATCH_ONLY",
            StartCondition::UpdatesAvailable => "EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE",
        }
    }

    /// autopatch's short name.
    pub fn as_str(self) -> &'static str {
        match self {
            StartCondition::Always => "always",
            StartCondition::UpdatesAvailable => "updates-available",
        }
    }
}

/// Where builds and tests run. Every field is optional in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct InfrastructureConfiguration {
    /// Kept for AWS; no local effect.
    pub instance_types: Vec<String>,
    /// A CPU limit for build and test containers; `None`: no limit.
    pub cpus: Option<f64>,
    /// A memory limit for build and test containers, at least
    /// [`MIN_MEMORY_MIB`]; `None`: no limit.
    pub memory_mib: Option<u64>,
    /// The build timeout, default 240.
    pub timeout_minutes: u32,
}

impl Default for InfrastructureConfiguration {
    fn default() -> InfrastructureConfiguration {
        InfrastructureConfiguration {
            instance_types: Vec::new(),
            cpus: None,
            memory_mib: None,
            timeout_minutes: 240,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PipelineStatus {
    #[default]
    Enabled,
    Disabled,
}

impl PipelineStatus {
    /// The Image Builder name: `ENABLED`, `DISABLED`.
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineStatus::Enabled => "ENABLED",
            PipelineStatus::Disabled => "DISABLED",
        }
    }
}

/// A pipeline as far as it could be read, from [`parse_pipeline_lenient`]:
/// what a caller checks against the store (the recipe), including when the
/// document has problems.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialPipeline {
    /// The recipe reference, when it could be read.
    pub image_recipe: Option<RecipeReference>,
    /// `schedule.timezone` and where its value is, when it could be read and
    /// is shaped like a time zone name: registration checks that the zone
    /// exists.
    pub timezone: Option<(String, Span)>,
    /// The whole pipeline, when the document had no problem.
    document: Option<PipelineDocument>,
}

impl PartialPipeline {
    /// The whole pipeline: `Some` exactly when the lenient parse reported no
    /// problem.
    pub fn complete(self) -> Option<PipelineDocument> {
        self.document
    }
}

/// Parses and validates an image pipeline file.
///
/// # Errors
/// Returns every problem found: YAML syntax, unknown or missing keys, wrong
/// types, values out of range, conflicting start conditions, schedule
/// expressions that are not AWS's cron or rate syntax.
pub fn parse_pipeline(file: &SourceFile) -> Result<PipelineDocument, Diagnostics> {
    let (pipeline, reporter) = read_pipeline(file);
    reporter.finish_option(pipeline.and_then(PartialPipeline::complete))
}

/// Like [`parse_pipeline`], for callers that go on checking what could be
/// read (registration checks that the recipe is registered): the pipeline as
/// far as it could be read and every diagnostic, sorted by position. `None`
/// only when nothing could be read (YAML syntax errors, a document that is
/// not a mapping).
pub fn parse_pipeline_lenient(file: &SourceFile) -> (Option<PartialPipeline>, Vec<Diagnostic>) {
    let (pipeline, reporter) = read_pipeline(file);
    (pipeline, reporter.into_diagnostics())
}

fn read_pipeline(file: &SourceFile) -> (Option<PartialPipeline>, Reporter) {
    let mut reporter = Reporter::new(file.name.clone());
    let lines = LineIndex::new(&file.text);
    let pipeline = parse_yaml_reporting(file, &mut reporter)
        .and_then(|root| pipeline(&root, &lines, &mut reporter));
    (pipeline, reporter)
}

fn pipeline(
    root: &Node,
    lines: &LineIndex<'_>,
    reporter: &mut Reporter,
) -> Option<PartialPipeline> {
    let mut map = MappingReader::new(root, reporter)?;
    let name = map
        .required("name", reporter)
        .and_then(|node| resource_name(node, "pipeline name", reporter));
    let description = map
        .optional("description")
        .and_then(|node| accepted::string(node, "description", 1..=1024, reporter));
    let image_recipe =
        map.required("imageRecipeArn", reporter).and_then(|node| recipe_reference(node, reporter));
    let image_tests = match map.optional("imageTestsConfiguration") {
        None => Some(ImageTestsConfiguration::default()),
        Some(node) => image_tests(node, reporter),
    };
    let mut timezone = None;
    let schedule = match map.optional("schedule") {
        None => Some(None),
        Some(node) => schedule(node, lines, &mut timezone, reporter).map(Some),
    };
    let infrastructure = match map.optional("infrastructureConfiguration") {
        None => Some(InfrastructureConfiguration::default()),
        Some(node) => infrastructure(node, reporter),
    };
    let status = match map.optional("status") {
        None => Some(PipelineStatus::default()),
        Some(node) => status(node, reporter),
    };
    let dry_run = match map.optional("dryRun") {
        None => Some(false),
        Some(node) => node.expect_bool(reporter),
    };
    accepted_keys(&mut map, reporter);
    map.finish(reporter);
    // Every part that could not be read was reported: without a diagnostic,
    // the pipeline is whole.
    let document =
        match (name, &image_recipe, image_tests, schedule, infrastructure, status, dry_run) {
            (
                Some(name),
                Some(image_recipe),
                Some(image_tests),
                Some(schedule),
                Some(infrastructure),
                Some(status),
                Some(dry_run),
            ) if !reporter.has_errors() => Some(PipelineDocument {
                name,
                description,
                image_recipe: image_recipe.clone(),
                image_tests,
                schedule,
                infrastructure,
                status,
                dry_run,
            }),
            _ => None,
        };
    Some(PartialPipeline { image_recipe, timezone, document })
}

/// The keys of `CreateImagePipeline` that have no local effect: checked
/// where that is cheap (see the accepted module), then dropped.
fn accepted_keys(map: &mut MappingReader<'_>, reporter: &mut Reporter) {
    if let Some(node) = map.optional("clientToken") {
        accepted::client_token(node, reporter);
    }
    if let Some(node) = map.optional("distributionConfigurationArn") {
        accepted::resource_arn(
            node,
            "distributionConfigurationArn",
            "distribution-configuration",
            reporter,
        );
    }
    if let Some(node) = map.optional("enhancedImageMetadataEnabled") {
        accepted::boolean(node, reporter);
    }
    if let Some(node) = map.optional("executionRole") {
        accepted::execution_role(node, reporter);
    }
    if let Some(node) = map.optional("imageScanningConfiguration") {
        accepted::image_scanning_configuration(node, reporter);
    }
    if let Some(node) = map.optional("imageTags") {
        accepted::tags(node, "imageTags", reporter);
    }
    if let Some(node) = map.optional("infrastructureConfigurationArn") {
        accepted::resource_arn(
            node,
            "infrastructureConfigurationArn",
            "infrastructure-configuration",
            reporter,
        );
    }
    if let Some(node) = map.optional("loggingConfiguration") {
        accepted::logging_configuration(node, reporter);
    }
    if let Some(node) = map.optional("tags") {
        accepted::tags(node, "tags", reporter);
    }
    if let Some(node) = map.optional("workflows") {
        accepted::workflows(node, reporter);
    }
    map.unsupported(
        "containerRecipeArn",
        "autopatch registers image recipes only; name one with `imageRecipeArn`",
    );
}

fn recipe_reference(node: &Node, reporter: &mut Reporter) -> Option<RecipeReference> {
    let text = node.expect_string(reporter)?;
    match parse_reference(text, "image-recipe", BuildPart::Forbidden) {
        Ok(name) => Some(RecipeReference {
            reference: text.to_owned(),
            name: name.name,
            version: name.version,
            span: node.span,
        }),
        Err(message) => {
            reporter.error(node.span, message);
            None
        }
    }
}

fn minutes(node: &Node, key: &str, high: i64, reporter: &mut Reporter) -> Option<u32> {
    let value = accepted::integer(node, key, 1..=high, reporter)?;
    // The range check above keeps the value within u32.
    u32::try_from(value).ok()
}

fn image_tests(node: &Node, reporter: &mut Reporter) -> Option<ImageTestsConfiguration> {
    let mut map = MappingReader::new(node, reporter)?;
    let defaults = ImageTestsConfiguration::default();
    let enabled = match map.optional("imageTestsEnabled") {
        None => Some(defaults.image_tests_enabled),
        Some(node) => node.expect_bool(reporter),
    };
    let timeout = match map.optional("timeoutMinutes") {
        None => Some(defaults.timeout_minutes),
        Some(node) => minutes(node, "timeoutMinutes", 1440, reporter),
    };
    map.finish(reporter);
    Some(ImageTestsConfiguration { image_tests_enabled: enabled?, timeout_minutes: timeout? })
}

/// Reads a schedule; `found_timezone` gets its time zone and where it is,
/// when it is shaped like one, even when the rest has problems.
fn schedule(
    node: &Node,
    lines: &LineIndex<'_>,
    found_timezone: &mut Option<(String, Span)>,
    reporter: &mut Reporter,
) -> Option<Schedule> {
    let mut map = MappingReader::new(node, reporter)?;
    let aws = map.optional("pipelineExecutionStartCondition");
    let short = map.optional("startCondition");
    let expression = map.required("scheduleExpression", reporter);
    let timezone = match map.optional("timezone") {
        None => Some(None),
        Some(node) => time_zone(node, reporter).map(|zone| {
            *found_timezone = Some((zone.clone(), node.span));
            Some(zone)
        }),
    };
    if let Some(node) = map.optional("autoDisablePolicy") {
        accepted::auto_disable_policy(node, reporter);
    }
    map.finish(reporter);
    let start_condition = match (aws, short) {
        (None, None) => Some(StartCondition::default()),
        (Some(node), None) => start_condition(node, true, reporter),
        (None, Some(node)) => start_condition(node, false, reporter),
        (Some(aws), Some(short)) => {
            reporter.error(
                short.span,
                "found both `pipelineExecutionStartCondition` and `startCondition`; expected one",
            );
            // Each value is still checked, so a bad one is reported now
            // rather than once the other is removed.
            start_condition(aws, true, reporter);
            start_condition(short, false, reporter);
            None
        }
    };
    let expression = expression?;
    let schedule_expression = expression.expect_string(reporter)?.to_owned();
    let errors = check_schedule_expression(&schedule_expression);
    for error in &errors {
        let at = scalar_position(lines, expression, &schedule_expression, error.offset);
        reporter.error(Span::at(at), error.message.clone());
    }
    if !errors.is_empty() {
        return None;
    }
    Some(Schedule {
        start_condition: start_condition?,
        schedule_expression,
        timezone: timezone?,
        expression_span: expression.span,
    })
}

/// `schedule.timezone`: a name shaped as AWS documents it.
fn time_zone(node: &Node, reporter: &mut Reporter) -> Option<String> {
    let text = node.expect_string(reporter)?;
    if is_time_zone_name(text) {
        return Some(text.to_owned());
    }
    reporter.error(
        node.span,
        format!(
            "found the time zone {text:?}; expected an IANA time zone name like Etc/UTC or America/Los_Angeles"
        ),
    );
    None
}

/// Whether `text` is shaped like the time zone names Image Builder takes
/// (its `Timezone` type): 3 to 100 characters, a first part of at least two
/// letters or digits, then `/`-separated parts of letters, digits, `_`, `-`
/// and `+` (`Etc/UTC`, `America/Argentina/Buenos_Aires`, `Etc/GMT+5`).
pub fn is_time_zone_name(text: &str) -> bool {
    let mut parts = text.split('/');
    let first = parts.next().unwrap_or_default();
    (3..=100).contains(&text.len())
        && first.len() >= 2
        && first.bytes().all(|b| b.is_ascii_alphanumeric())
        && parts.all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+'))
        })
}

fn start_condition(node: &Node, aws: bool, reporter: &mut Reporter) -> Option<StartCondition> {
    let text = node.expect_string(reporter)?;
    let all = [StartCondition::Always, StartCondition::UpdatesAvailable];
    let name =
        |condition: StartCondition| if aws { condition.as_aws_str() } else { condition.as_str() };
    let found = all.into_iter().find(|condition| name(*condition) == text);
    if found.is_none() {
        let expected = all.map(name).join(" or ");
        reporter
            .error(node.span, format!("found the start condition {text:?}; expected {expected}"));
    }
    found
}

fn infrastructure(node: &Node, reporter: &mut Reporter) -> Option<InfrastructureConfiguration> {
    let mut map = MappingReader::new(node, reporter)?;
    let defaults = InfrastructureConfiguration::default();
    let instance_types = match map.optional("instanceTypes") {
        None => Some(Vec::new()),
        Some(node) => node.expect_sequence(reporter).and_then(|items| {
            let types: Vec<Option<String>> =
                items.iter().map(|item| item.expect_string(reporter).map(str::to_owned)).collect();
            types.into_iter().collect()
        }),
    };
    let cpus = match map.optional("cpus") {
        None => Some(None),
        Some(node) => node.expect_number(reporter).and_then(|cpus| {
            if cpus > 0.0 {
                Some(Some(cpus))
            } else {
                reporter.error(node.span, format!("found cpus {cpus}; expected a positive number"));
                None
            }
        }),
    };
    let memory_mib = match map.optional("memoryMiB") {
        None => Some(None),
        Some(node) => memory_mib(node, reporter).map(Some),
    };
    let timeout = match map.optional("timeoutMinutes") {
        None => Some(defaults.timeout_minutes),
        Some(node) => minutes(node, "timeoutMinutes", i64::from(u32::MAX), reporter),
    };
    map.finish(reporter);
    Some(InfrastructureConfiguration {
        instance_types: instance_types?,
        cpus: cpus?,
        memory_mib: memory_mib?,
        timeout_minutes: timeout?,
    })
}

/// `memoryMiB`: at least [`MIN_MEMORY_MIB`].
fn memory_mib(node: &Node, reporter: &mut Reporter) -> Option<u64> {
    let value = node.expect_integer(reporter)?;
    match u64::try_from(value) {
        Ok(mib) if mib >= MIN_MEMORY_MIB => Some(mib),
        _ => {
            reporter.error(
                node.span,
                format!(
                    "found memoryMiB {value}; expected an integer of at least {MIN_MEMORY_MIB}, the smallest memory limit container engines start a container with (Docker refuses less than 6 MiB)"
                ),
            );
            None
        }
    }
}

/// The source position of byte `offset` of `text`, the string value of the
/// scalar `node`: exact when the source spells the value as it reads (a plain
/// or quoted scalar without escapes), else the scalar's start.
fn scalar_position(lines: &LineIndex<'_>, node: &Node, text: &str, offset: usize) -> Position {
    let start = node.span.start;
    let Some(raw) = lines.slice(node.span) else { return start };
    let Some(prefix) = text.get(..offset) else { return start };
    let quoted = node.scalar.as_ref().is_some_and(|scalar| {
        matches!(scalar.style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted)
    });
    if !quoted && raw == text {
        advance(start, prefix)
    } else if quoted && raw.get(1..raw.len().saturating_sub(1)) == Some(text) {
        advance(advance(start, &raw[..1]), prefix)
    } else {
        start
    }
}

fn status(node: &Node, reporter: &mut Reporter) -> Option<PipelineStatus> {
    let text = node.expect_string(reporter)?;
    match text {
        "ENABLED" => Some(PipelineStatus::Enabled),
        "DISABLED" => Some(PipelineStatus::Disabled),
        _ => {
            reporter.error(
                node.span,
                format!("found the status {text:?}; expected ENABLED or DISABLED"),
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
        let file = SourceFile::new("pipeline.yaml", text);
        let actual = match parse_pipeline(&file) {
            Ok(pipeline) => format!("{pipeline:#?}"),
            Err(diagnostics) => diagnostics.to_string(),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn minimal_pipeline_gets_defaults() {
        check(
            "name: web\nimageRecipeArn: PatchedWebServer\n",
            expect![[r#"
                PipelineDocument {
                    name: "web",
                    description: None,
                    image_recipe: RecipeReference {
                        reference: "PatchedWebServer",
                        name: "PatchedWebServer",
                        version: Any,
                        span: Span {
                            start: Position {
                                line: 2,
                                column: 17,
                            },
                            end: Position {
                                line: 2,
                                column: 33,
                            },
                        },
                    },
                    image_tests: ImageTestsConfiguration {
                        image_tests_enabled: true,
                        timeout_minutes: 720,
                    },
                    schedule: None,
                    infrastructure: InfrastructureConfiguration {
                        instance_types: [],
                        cpus: None,
                        memory_mib: None,
                        timeout_minutes: 240,
                    },
                    status: Enabled,
                    dry_run: false,
                }"#]],
        );
    }

    #[test]
    fn full_pipeline() {
        let file = SourceFile::new(
            "p.yaml",
            r#"
name: web
description: nightly patching
imageRecipeArn: arn:aws:imagebuilder:eu-west-1:123456789012:image-recipe/web/1.0.1
imageTestsConfiguration:
  imageTestsEnabled: false
  timeoutMinutes: 60
schedule:
  scheduleExpression: cron(0 3 * * ? *)
  pipelineExecutionStartCondition: EXPRESSION_MATCH_ONLY
  timezone: Europe/Paris
infrastructureConfiguration:
  instanceTypes: [t3.micro]
  cpus: 1.5
  memoryMiB: 2048
  timeoutMinutes: 30
status: DISABLED
"#,
        );
        let pipeline = parse_pipeline(&file).unwrap();
        let schedule = pipeline.schedule.as_ref().unwrap();
        let actual = format!(
            "{} {:?} {:?} {} {:?} {:?} {:?} {:?}",
            pipeline.image_recipe.name,
            pipeline.image_recipe.version.exact().map(|version| version.to_string()),
            pipeline.image_tests,
            schedule.schedule_expression,
            schedule.start_condition,
            schedule.timezone,
            pipeline.infrastructure,
            pipeline.status,
        );
        expect![[r#"web Some("1.0.1") ImageTestsConfiguration { image_tests_enabled: false, timeout_minutes: 60 } cron(0 3 * * ? *) Always Some("Europe/Paris") InfrastructureConfiguration { instance_types: ["t3.micro"], cpus: Some(1.5), memory_mib: Some(2048), timeout_minutes: 30 } Disabled"#]]
        .assert_eq(&actual);
    }

    /// Every key of `CreateImagePipeline` is accepted, so that the file AWS
    /// takes runs here as it is; those without a local effect are checked
    /// for their documented shape.
    #[test]
    fn every_documented_key_is_accepted() {
        let text = r#"
name: web
description: every key
imageRecipeArn: arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/web/1.0.0
clientToken: token-1
distributionConfigurationArn: arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/dist
dryRun: true
enhancedImageMetadataEnabled: true
executionRole: arn:aws:iam::123456789012:role/ImageBuilderRole
imageScanningConfiguration:
  imageScanningEnabled: false
  ecrConfiguration: { repositoryName: web, containerTags: [a, b] }
imageTags: { Name: web }
imageTestsConfiguration: { imageTestsEnabled: true, timeoutMinutes: 60 }
infrastructureConfigurationArn: arn:aws:imagebuilder:us-east-1:123456789012:infrastructure-configuration/infra
loggingConfiguration: { imageLogGroupName: /aws/imagebuilder/web, pipelineLogGroupName: /aws/imagebuilder/pipeline/web }
schedule:
  scheduleExpression: cron(0 3 ? * SUN *)
  pipelineExecutionStartCondition: EXPRESSION_MATCH_ONLY
  timezone: Etc/UTC
  autoDisablePolicy: { failureCount: 3 }
status: ENABLED
tags: { Name: web }
workflows:
  - workflowArn: arn:aws:imagebuilder:us-east-1:aws:workflow/build/build-image/x.x.x
  - workflowArn: arn:aws:imagebuilder:us-east-1:aws:workflow/test/test-image/1.0.0/1
    onFailure: CONTINUE
    parallelGroup: tests
    parameters: [{ name: p, value: [v] }]
"#;
        let pipeline = parse_pipeline(&SourceFile::new("p.yaml", text)).unwrap();
        assert!(pipeline.dry_run);
        assert!(
            !parse_pipeline(&SourceFile::new("p.yaml", "name: p\nimageRecipeArn: r\n"))
                .unwrap()
                .dry_run
        );

        check(
            r#"
name: web
imageRecipeArn: web
containerRecipeArn: arn:aws:imagebuilder:us-east-1:123456789012:container-recipe/c/1.0.0
distributionConfigurationArn: arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/web/1.0.0
enhancedImageMetadataEnabled: 1
imageScanningConfiguration: { ecrConfiguration: { repository: web } }
infrastructureConfigurationArn: infra
schedule:
  scheduleExpression: rate(1 day)
  autoDisablePolicy: { failureCount: 11 }
workflows:
  - workflowArn: arn:aws:imagebuilder:us-east-1:123456789012:workflow/build/my-build/1.0.0
    onFailure: continue
"#,
            expect![[r#"
                pipeline.yaml:4:1: error: found key `containerRecipeArn`, which is not supported: autopatch registers image recipes only; name one with `imageRecipeArn`
                pipeline.yaml:5:31: error: found the distributionConfigurationArn "arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/web/1.0.0"; expected arn:aws:imagebuilder:<region>:<account>:distribution-configuration/<name> (lowercase)
                pipeline.yaml:6:31: error: expected a boolean (true or false), found the integer 1
                pipeline.yaml:7:51: error: unknown key `repository`; expected one of `repositoryName`, `containerTags`
                pipeline.yaml:8:33: error: found the infrastructureConfigurationArn "infra"; expected arn:aws:imagebuilder:<region>:<account>:infrastructure-configuration/<name> (lowercase)
                pipeline.yaml:11:38: error: found failureCount 11; expected an integer from 1 to 10
                pipeline.yaml:13:18: error: found the workflow "arn:aws:imagebuilder:us-east-1:123456789012:workflow/build/my-build/1.0.0"; expected Image Builder's build-image or test-image workflow (arn:aws:imagebuilder:<region>:aws:workflow/build/build-image/x.x.x): autopatch runs only its default build and test
                pipeline.yaml:14:16: error: found onFailure "continue"; expected one of CONTINUE, ABORT"#]],
        );
    }

    /// `schedule.timezone` has AWS's shape (whether the zone exists is the
    /// registration's check, against the host's time zone database), and the
    /// lenient parse gives it with its position even when other parts fail.
    #[test]
    fn time_zones_have_the_documented_shape() {
        let zone = |value: &str| {
            let text = format!(
                "name: p\nimageRecipeArn: r\nschedule:\n  scheduleExpression: rate(1 day)\n  timezone: {value}\n"
            );
            match parse_pipeline(&SourceFile::new("p.yaml", text)) {
                Ok(pipeline) => format!("{:?}", pipeline.schedule.and_then(|s| s.timezone)),
                Err(diagnostics) => diagnostics.to_string(),
            }
        };
        let actual = [
            "Etc/UTC",
            "UTC",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
            "America/Port-au-Prince",
            "Mars/Olympus",
            "Europe/../../etc/passwd",
            "'Europe Paris'",
            "Z",
            "Europe/",
            "+02:00",
        ]
        .map(zone)
        .join("\n");
        expect![[r#"
            Some("Etc/UTC")
            Some("UTC")
            Some("America/Argentina/Buenos_Aires")
            Some("Etc/GMT+5")
            Some("America/Port-au-Prince")
            Some("Mars/Olympus")
            p.yaml:5:13: error: found the time zone "Europe/../../etc/passwd"; expected an IANA time zone name like Etc/UTC or America/Los_Angeles
            p.yaml:5:13: error: found the time zone "Europe Paris"; expected an IANA time zone name like Etc/UTC or America/Los_Angeles
            p.yaml:5:13: error: found the time zone "Z"; expected an IANA time zone name like Etc/UTC or America/Los_Angeles
            p.yaml:5:13: error: found the time zone "Europe/"; expected an IANA time zone name like Etc/UTC or America/Los_Angeles
            p.yaml:5:13: error: found the time zone "+02:00"; expected an IANA time zone name like Etc/UTC or America/Los_Angeles"#]].assert_eq(&actual);

        let text = "name: p\nimageRecipeArn: r\nbogus: 1\nschedule: {scheduleExpression: every day, timezone: Mars/Olympus}\n";
        let (pipeline, diagnostics) = parse_pipeline_lenient(&SourceFile::new("p.yaml", text));
        assert_eq!(diagnostics.len(), 2, "{diagnostics:?}");
        let (zone, span) = pipeline.expect("a mapping").timezone.expect("a zone name");
        assert_eq!((zone.as_str(), span.start), ("Mars/Olympus", Position::new(4, 53)));
    }

    #[test]
    fn start_condition_spellings() {
        let condition = |entry: &str| {
            let text = format!(
                "name: p\nimageRecipeArn: r/1.0.0\nschedule:\n  scheduleExpression: rate(1 day)\n  {entry}\n"
            );
            match parse_pipeline(&SourceFile::new("p.yaml", text)) {
                Ok(pipeline) => {
                    format!("{:?}", pipeline.schedule.map(|schedule| schedule.start_condition))
                }
                Err(diagnostics) => diagnostics.to_string(),
            }
        };
        let actual = [
            "startCondition: always",
            "startCondition: updates-available",
            "pipelineExecutionStartCondition: EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE",
            "timezone: UTC",
            "startCondition: EXPRESSION_MATCH_ONLY",
            "pipelineExecutionStartCondition: always",
        ]
        .map(condition)
        .join("\n");
        expect![[r#"
            Some(Always)
            Some(UpdatesAvailable)
            Some(UpdatesAvailable)
            Some(UpdatesAvailable)
            p.yaml:5:19: error: found the start condition "EXPRESSION_MATCH_ONLY"; expected always or updates-available
            p.yaml:5:36: error: found the start condition "always"; expected EXPRESSION_MATCH_ONLY or EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE"#]]
        .assert_eq(&actual);
    }

    #[test]
    fn many_problems_at_once() {
        check(
            r#"
name: web
imageRecipeArn: web/1.0.1/2
imageTestsConfiguration:
  imageTestsEnabled: "yes"
  timeoutMinutes: 1441
schedule:
  pipelineExecutionStartCondition: EXPRESSION_MATCH_ONLY
  startCondition: always
infrastructureConfiguration:
  instanceTypes: t3.micro
  cpus: 0
  memoryMiB: 1.5
  timeoutMinutes: 0
  subnetId: subnet-1
status: enabled
"#,
            expect![[r#"
                pipeline.yaml:3:17: error: found "web/1.0.1/2"; expected <name>, <name>/<x.y.z> or an Image Builder image-recipe ARN
                pipeline.yaml:5:22: error: expected a boolean (true or false), found the string "yes"
                pipeline.yaml:6:19: error: found timeoutMinutes 1441; expected an integer from 1 to 1440
                pipeline.yaml:8:3: error: missing required key `scheduleExpression`
                pipeline.yaml:9:19: error: found both `pipelineExecutionStartCondition` and `startCondition`; expected one
                pipeline.yaml:11:18: error: expected a sequence, found the string "t3.micro"
                pipeline.yaml:12:9: error: found cpus 0; expected a positive number
                pipeline.yaml:13:14: error: expected an integer, found the number 1.5
                pipeline.yaml:14:19: error: found timeoutMinutes 0; expected an integer of at least 1
                pipeline.yaml:15:3: error: unknown key `subnetId`; expected one of `instanceTypes`, `cpus`, `memoryMiB`, `timeoutMinutes`
                pipeline.yaml:16:9: error: found the status "enabled"; expected ENABLED or DISABLED"#]],
        );
    }

    #[test]
    fn memory_below_what_engines_accept_is_refused() {
        let memory = |value: &str| {
            let text = format!(
                "name: p\nimageRecipeArn: r\ninfrastructureConfiguration:\n  memoryMiB: {value}\n"
            );
            match parse_pipeline(&SourceFile::new("p.yaml", text)) {
                Ok(pipeline) => format!("{:?}", pipeline.infrastructure.memory_mib),
                Err(diagnostics) => diagnostics.to_string(),
            }
        };
        let actual = ["1", "5", "6", "2048", "-1"].map(memory).join("\n");
        expect![[r#"
            p.yaml:4:14: error: found memoryMiB 1; expected an integer of at least 6, the smallest memory limit container engines start a container with (Docker refuses less than 6 MiB)
            p.yaml:4:14: error: found memoryMiB 5; expected an integer of at least 6, the smallest memory limit container engines start a container with (Docker refuses less than 6 MiB)
            Some(6)
            Some(2048)
            p.yaml:4:14: error: found memoryMiB -1; expected an integer of at least 6, the smallest memory limit container engines start a container with (Docker refuses less than 6 MiB)"#]]
        .assert_eq(&actual);
    }

    #[test]
    fn schedule_expressions_are_checked_where_they_are_wrong() {
        let schedule = |value: &str| {
            let text =
                format!("name: p\nimageRecipeArn: r\nschedule:\n  scheduleExpression: {value}\n");
            match parse_pipeline(&SourceFile::new("p.yaml", text)) {
                Ok(pipeline) => format!("{:?}", pipeline.schedule.map(|s| s.schedule_expression)),
                Err(diagnostics) => diagnostics.to_string(),
            }
        };
        let actual = [
            "cron(0 3 ? * SUN *)",
            "\"rate(12 hours)\"",
            // Five fields, as crontab has: AWS wants six.
            "cron(0 3 * * 1)",
            // At the field: plain and quoted.
            "cron(0 25 ? * SUN *)",
            "'cron(0 3 ? * SUN#9 *)'",
            // Escapes: the value's start.
            "\"cron(0 3 ? * SUN\\x20*) \"",
            "every day",
            "rate(1 days)",
        ]
        .map(schedule)
        .join("\n");
        expect![[r#"
            Some("cron(0 3 ? * SUN *)")
            Some("rate(12 hours)")
            p.yaml:4:28: error: found 5 fields in `cron(0 3 * * 1)`; expected 6: minutes hours day-of-month month day-of-week year, like cron(0 3 ? * SUN *)
            p.yaml:4:30: error: found 25 in the hours field; expected 0-23
            p.yaml:4:41: error: found "9" after `#` in the day-of-week field; expected 1 to 5, the week of the month
            p.yaml:4:23: error: found the schedule expression "cron(0 3 ? * SUN *) "; expected cron(minutes hours day-of-month month day-of-week year) or rate(value unit), like cron(0 3 ? * SUN *) or rate(1 day)
            p.yaml:4:23: error: found the schedule expression "every day"; expected cron(minutes hours day-of-month month day-of-week year) or rate(value unit), like cron(0 3 ? * SUN *) or rate(1 day)
            p.yaml:4:30: error: found `days` after the value 1; expected the singular `day`"#]]
        .assert_eq(&actual);
    }

    #[test]
    fn both_start_conditions_have_their_values_checked_too() {
        check(
            "name: p\nimageRecipeArn: r\nschedule:\n  scheduleExpression: rate(1 day)\n  pipelineExecutionStartCondition: ALWAYS\n  startCondition: sometimes\n",
            expect![[r#"
                pipeline.yaml:5:36: error: found the start condition "ALWAYS"; expected EXPRESSION_MATCH_ONLY or EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE
                pipeline.yaml:6:19: error: found both `pipelineExecutionStartCondition` and `startCondition`; expected one
                pipeline.yaml:6:19: error: found the start condition "sometimes"; expected always or updates-available"#]],
        );
    }

    #[test]
    fn a_lenient_parse_gives_the_recipe_reference_of_a_pipeline_with_problems() {
        let text = "name: p\nimageRecipeArn: web/1.0.0\nbogus: 1\ninfrastructureConfiguration: {memoryMiB: 2}\nschedule: {scheduleExpression: cron(0 3 * * *)}\n";
        let (pipeline, diagnostics) = parse_pipeline_lenient(&SourceFile::new("p.yaml", text));
        let pipeline = pipeline.expect("a mapping");
        let recipe = pipeline.image_recipe.clone().expect("a readable reference");
        assert_eq!((recipe.name.as_str(), recipe.span.start), ("web", Position::new(2, 17)));
        let rendered: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(rendered.len(), 3, "{rendered:?}");
        assert!(rendered[0].starts_with("p.yaml:3:1: error: unknown key `bogus`"), "{rendered:?}");
        assert!(rendered[1].starts_with("p.yaml:4:42: error: found memoryMiB 2"), "{rendered:?}");
        assert!(rendered[2].starts_with("p.yaml:5:37: error: found 5 fields"), "{rendered:?}");
        assert_eq!(pipeline.complete(), None);

        let whole = "name: p\nimageRecipeArn: web\n";
        let (pipeline, diagnostics) = parse_pipeline_lenient(&SourceFile::new("p.yaml", whole));
        assert!(diagnostics.is_empty());
        assert_eq!(
            pipeline.and_then(PartialPipeline::complete).map(|p| p.name).as_deref(),
            Some("p")
        );
        let (nothing, diagnostics) = parse_pipeline_lenient(&SourceFile::new("p.yaml", "a: [\n"));
        assert!(nothing.is_none());
        assert_eq!(diagnostics.len(), 1);
    }
}
