//! Image pipeline files, shaped like Image Builder's `CreateImagePipeline`
//! request: which recipe to build, whether to test, when to run, on what
//! infrastructure.
//!
//! Differences from AWS, on purpose:
//! - the infrastructure configuration is inline (`infrastructureConfiguration`)
//!   instead of a separate resource referenced by ARN;
//! - `schedule.startCondition: always | updates-available` is accepted as a
//!   readable spelling of `pipelineExecutionStartCondition`;
//! - `imageTestsConfiguration.timeoutMinutes` accepts 1 to 1440 (AWS: 60 to 1440).
//!
//! The schedule expression is kept as written; the scheduler parses it.

use autopatch_model::SemanticVersion;

use crate::diagnostic::{Diagnostics, Reporter};
use crate::recipe::resource_name;
use crate::reference::{BuildPart, parse_reference};
use crate::source::{SourceFile, Span};
use crate::yaml::{MappingReader, Node, parse_yaml_reporting};

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
}

/// The recipe a pipeline builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeReference {
    /// `imageRecipeArn` as written.
    pub reference: String,
    pub name: String,
    /// `None`: the latest version (a bare name, or `x.x.x` in an ARN).
    pub version: Option<SemanticVersion>,
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
    /// A `cron(...)` or `rate(...)` expression, not validated here.
    pub schedule_expression: String,
    /// An IANA time zone name for the expression, as written; `None`: UTC.
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
    /// A memory limit for build and test containers; `None`: no limit.
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

/// Parses and validates an image pipeline file.
///
/// # Errors
/// Returns every problem found: YAML syntax, unknown or missing keys, wrong
/// types, values out of range, conflicting start conditions.
pub fn parse_pipeline(file: &SourceFile) -> Result<PipelineDocument, Diagnostics> {
    let mut reporter = Reporter::new(file.name.clone());
    let Some(root) = parse_yaml_reporting(file, &mut reporter) else {
        return reporter.finish_option(None);
    };
    let pipeline = pipeline(&root, &mut reporter);
    reporter.finish_option(pipeline)
}

fn pipeline(root: &Node, reporter: &mut Reporter) -> Option<PipelineDocument> {
    let mut map = MappingReader::new(root, reporter)?;
    let name = map
        .required("name", reporter)
        .and_then(|node| resource_name(node, "pipeline name", reporter));
    let description = map
        .optional("description")
        .and_then(|node| node.expect_string(reporter))
        .map(str::to_owned);
    let image_recipe =
        map.required("imageRecipeArn", reporter).and_then(|node| recipe_reference(node, reporter));
    let image_tests = match map.optional("imageTestsConfiguration") {
        None => Some(ImageTestsConfiguration::default()),
        Some(node) => image_tests(node, reporter),
    };
    let schedule = match map.optional("schedule") {
        None => Some(None),
        Some(node) => schedule(node, reporter).map(Some),
    };
    let infrastructure = match map.optional("infrastructureConfiguration") {
        None => Some(InfrastructureConfiguration::default()),
        Some(node) => infrastructure(node, reporter),
    };
    let status = match map.optional("status") {
        None => Some(PipelineStatus::default()),
        Some(node) => status(node, reporter),
    };
    map.finish(reporter);
    Some(PipelineDocument {
        name: name?,
        description,
        image_recipe: image_recipe?,
        image_tests: image_tests?,
        schedule: schedule?,
        infrastructure: infrastructure?,
        status: status?,
    })
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

/// An integer in `range`, else `None` after reporting.
fn integer_in(
    node: &Node,
    key: &str,
    range: std::ops::RangeInclusive<i64>,
    reporter: &mut Reporter,
) -> Option<i64> {
    let value = node.expect_integer(reporter)?;
    if range.contains(&value) {
        Some(value)
    } else {
        let (low, high) = (range.start(), range.end());
        let expected = if *high >= i64::from(u32::MAX) {
            format!("an integer of at least {low}")
        } else {
            format!("an integer from {low} to {high}")
        };
        reporter.error(node.span, format!("found {key} {value}; expected {expected}"));
        None
    }
}

fn minutes(node: &Node, key: &str, high: i64, reporter: &mut Reporter) -> Option<u32> {
    let value = integer_in(node, key, 1..=high, reporter)?;
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

fn schedule(node: &Node, reporter: &mut Reporter) -> Option<Schedule> {
    let mut map = MappingReader::new(node, reporter)?;
    let aws = map.optional("pipelineExecutionStartCondition");
    let short = map.optional("startCondition");
    let expression = map.required("scheduleExpression", reporter);
    let timezone =
        map.optional("timezone").and_then(|node| node.expect_string(reporter)).map(str::to_owned);
    map.finish(reporter);
    let start_condition = match (aws, short) {
        (None, None) => Some(StartCondition::default()),
        (Some(node), None) => start_condition(node, true, reporter),
        (None, Some(node)) => start_condition(node, false, reporter),
        (Some(_), Some(node)) => {
            reporter.error(
                node.span,
                "found both `pipelineExecutionStartCondition` and `startCondition`; expected one",
            );
            None
        }
    };
    let expression = expression?;
    let schedule_expression = expression.expect_string(reporter)?.to_owned();
    Some(Schedule {
        start_condition: start_condition?,
        schedule_expression,
        timezone,
        expression_span: expression.span,
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
        Some(node) => integer_in(node, "memoryMiB", 1..=i64::MAX, reporter)
            .map(|value| Some(value.unsigned_abs())),
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
                        version: None,
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
            pipeline.image_recipe.version.map(|version| version.to_string()),
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
}
