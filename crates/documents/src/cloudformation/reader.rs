//! Reads a template's sections from the YAML tree into a [`Template`], then
//! validates the whole of it; [`parse_template`] is the entry point.

use std::collections::{BTreeMap, BTreeSet};

use crate::cloudformation::document::{
    Assertion, Condition, DeletionPolicy, Mapping, Output, Parameter, ParameterType, Resource,
    ResourceName, Rule, Template,
};
use crate::cloudformation::expr::{Expr, ExprKind, Spanned};
use crate::cloudformation::intrinsic::ExprReader;
use crate::cloudformation::parameters::check_value;
use crate::cloudformation::policy::{Chosen, creation_policy, update_policy};
use crate::cloudformation::validate::validate;
use crate::diagnostic::{Diagnostic, Diagnostics, Reporter};
use crate::source::SourceFile;
use crate::yaml::{MappingReader, Node, Value, parse_yaml_reporting};

/// The only template format version there is.
pub const FORMAT_VERSION: &str = "2010-09-09";

/// CloudFormation's template quotas, checked when a template is read: the
/// most resources, outputs, parameters and mappings a template may declare,
/// the longest `Description` (bytes) and the largest template (bytes: 1 MB,
/// CloudFormation's limit for a template read from S3, counted as cfn-lint
/// does; a `TemplateBody` sent inline to AWS may have only 51,200).
pub mod quota {
    pub const RESOURCES: usize = 500;
    pub const OUTPUTS: usize = 200;
    pub const PARAMETERS: usize = 200;
    pub const MAPPINGS: usize = 200;
    pub const DESCRIPTION_BYTES: usize = 1024;
    pub const TEMPLATE_BYTES: usize = 1_000_000;
}

/// The AWS-specific parameter types accepted (their values are taken as
/// given); each also exists as `List<...>`, except the SSM parameter name.
pub const AWS_SPECIFIC_PARAMETER_TYPES: [&str; 11] = [
    "AWS::EC2::AvailabilityZone::Name",
    "AWS::EC2::Image::Id",
    "AWS::EC2::Instance::Id",
    "AWS::EC2::KeyPair::KeyName",
    "AWS::EC2::SecurityGroup::GroupName",
    "AWS::EC2::SecurityGroup::Id",
    "AWS::EC2::Subnet::Id",
    "AWS::EC2::VPC::Id",
    "AWS::EC2::Volume::Id",
    "AWS::Route53::HostedZone::Id",
    "AWS::SSM::Parameter::Name",
];

/// Parses and validates a CloudFormation template, in YAML (with short-form
/// tags) or JSON.
///
/// # Errors
/// Returns every problem found, each with its position: YAML syntax, unknown
/// sections and keys, malformed intrinsic functions, references to nothing,
/// circular dependencies, unsupported resource types and properties.
pub fn parse_template(file: &SourceFile) -> Result<Template, Diagnostics> {
    let (template, reporter) = read_and_validate(file, None);
    reporter.finish_option(template)
}

/// Like [`parse_template`], for callers that go on checking what could be
/// read (a stack request checks its parameters and imports too): the
/// template as far as it could be read, declarations that could not be read
/// left out, and every diagnostic, sorted by position. The template is
/// `None` only when nothing could be read (YAML syntax errors, a document
/// that is not a mapping); it is complete when there is no diagnostic.
pub fn parse_template_lenient(file: &SourceFile) -> (Option<Template>, Vec<Diagnostic>) {
    let (template, reporter) = read_and_validate(file, None);
    (template, reporter.into_diagnostics())
}

/// Who runs a template, when that is fewer resource types than
/// [`crate::cloudformation::resource_types`] knows: local stacks run some of
/// them only.
#[derive(Debug, Clone, Copy)]
pub struct Runner<'a> {
    /// Who runs templates, as messages name it, like `local stacks`.
    pub name: &'a str,
    /// The resource types it runs.
    pub types: &'a [&'a str],
}

/// Like [`parse_template_lenient`], for a template `runner` is to run: a
/// resource type it does not run is one problem, which names the types it
/// does run (whether or not the table knows the type; when it does, the
/// resource's properties are checked all the same).
pub fn parse_template_lenient_for(
    file: &SourceFile,
    runner: &Runner<'_>,
) -> (Option<Template>, Vec<Diagnostic>) {
    let (template, reporter) = read_and_validate(file, Some(runner));
    (template, reporter.into_diagnostics())
}

fn read_and_validate(
    file: &SourceFile,
    runner: Option<&Runner<'_>>,
) -> (Option<Template>, Reporter) {
    let mut reporter = Reporter::new(file.name.clone());
    if file.text.len() > quota::TEMPLATE_BYTES {
        reporter.error(
            crate::source::Span::at(crate::source::Position::START),
            format!(
                "found a template of {} bytes; expected at most {} bytes (CloudFormation's quota for a template)",
                file.text.len(),
                quota::TEMPLATE_BYTES
            ),
        );
    }
    let Some(root) = parse_yaml_reporting(file, &mut reporter) else {
        return (None, reporter);
    };
    let mut reader = ExprReader::new(reporter, &file.text);
    let template = read_template(&root, &mut reader);
    let mut reporter = reader.reporter;
    if let Some((template, broken)) = &template {
        validate(template, broken, runner, &mut reporter);
    }
    (template.map(|(template, _)| template), reporter)
}

/// Names declared in the template whose declaration could not be read; no
/// reference to them is reported, since the declaration already was.
#[derive(Debug, Default)]
pub(crate) struct Broken {
    pub(crate) names: BTreeSet<String>,
}

fn read_template(root: &Node, reader: &mut ExprReader<'_>) -> Option<(Template, Broken)> {
    let mut map = MappingReader::new(root, &mut reader.reporter)?;
    let mut broken = Broken::default();
    let format_version = map.optional("AWSTemplateFormatVersion").and_then(|node| {
        let text = node.expect_string(&mut reader.reporter)?;
        if text != FORMAT_VERSION {
            reader.reporter.error(
                node.span,
                format!("found the format version {text:?}; expected {FORMAT_VERSION:?}"),
            );
        }
        Some(text.to_owned())
    });
    let description = map.optional("Description").and_then(|node| {
        let text = node.expect_string(&mut reader.reporter)?;
        if text.len() > quota::DESCRIPTION_BYTES {
            reader.reporter.error(
                node.span,
                format!(
                    "found a description of {} bytes; expected at most {} (CloudFormation's quota)",
                    text.len(),
                    quota::DESCRIPTION_BYTES
                ),
            );
        }
        Some(text.to_owned())
    });
    let metadata = map.optional("Metadata").and_then(|node| reader.expr(node));
    let parameters_node = map.optional("Parameters");
    let parameters = section(parameters_node, reader, &mut broken, parameter);
    let mappings_node = map.optional("Mappings");
    let mappings = section(mappings_node, reader, &mut broken, mapping);
    let conditions =
        section(map.optional("Conditions"), reader, &mut broken, |name, node, reader| {
            let expr = reader.condition(node)?;
            Some(Condition { name: name.value.clone(), span: name.span, expr })
        });
    let rules = map.optional("Rules").map(|node| {
        reader.in_rules = true;
        let rules = section(Some(node), reader, &mut broken, rule);
        reader.in_rules = false;
        rules
    });
    let resources_node = map.required("Resources", &mut reader.reporter);
    let resources = section(resources_node, reader, &mut broken, resource);
    if let Some(node) = resources_node
        && node.as_mapping().is_some_and(<[_]>::is_empty)
    {
        reader.reporter.error(node.span, "found no resources; expected at least one");
    }
    let outputs_node = map.optional("Outputs");
    let outputs = section(outputs_node, reader, &mut broken, output);
    map.unsupported("Transform", "macros and transforms are not supported; expand them first");
    map.finish(&mut reader.reporter);
    for (node, what, most) in [
        (resources_node, "resources", quota::RESOURCES),
        (outputs_node, "outputs", quota::OUTPUTS),
        (parameters_node, "parameters", quota::PARAMETERS),
        (mappings_node, "mappings", quota::MAPPINGS),
    ] {
        let Some(entries) = node.and_then(Node::as_mapping) else { continue };
        if let Some((first_over, _)) = entries.get(most) {
            reader.reporter.error(
                first_over.span,
                format!(
                    "found {} {what}; expected at most {most} (CloudFormation's quota)",
                    entries.len()
                ),
            );
        }
    }
    let template = Template {
        format_version,
        description,
        metadata,
        parameters,
        mappings,
        conditions,
        rules: rules.unwrap_or_default(),
        resources: resources.into_iter().map(|(name, value)| (ResourceName(name), value)).collect(),
        outputs,
    };
    Some((template, broken))
}

/// Reads a section whose entries are named: every entry with `read`.
fn section<T>(
    node: Option<&Node>,
    reader: &mut ExprReader<'_>,
    broken: &mut Broken,
    read: impl Fn(&Spanned<String>, &Node, &mut ExprReader<'_>) -> Option<T>,
) -> BTreeMap<String, T> {
    let mut read_entries = BTreeMap::new();
    let Some(node) = node else { return read_entries };
    let Some(entries) = node.as_mapping().filter(|_| node.tag.is_none()) else {
        reader.reporter.error(node.span, format!("expected a mapping, found {}", node.describe()));
        return read_entries;
    };
    for (key, value) in entries {
        let name = match (&key.value, &key.tag) {
            (Value::String(name), None) if is_logical_id(name) => name.clone(),
            _ => {
                let found = match key.scalar_text() {
                    Some(text) if key.tag.is_none() => format!("the name `{text}`"),
                    _ => key.describe(),
                };
                reader.reporter.error(
                    key.span,
                    format!("found {found}; expected a name of letters and digits only"),
                );
                if let Some(text) = key.scalar_text() {
                    broken.names.insert(text.to_owned());
                }
                continue;
            }
        };
        if read_entries.contains_key(&name) || broken.names.contains(&name) {
            // The YAML reader reported the duplicate key.
            continue;
        }
        match read(&Spanned::new(name.clone(), key.span), value, reader) {
            Some(read) => {
                read_entries.insert(name, read);
            }
            None => {
                broken.names.insert(name);
            }
        }
    }
    read_entries
}

fn is_logical_id(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric())
}

fn parameter_type(node: &Node, reader: &mut ExprReader<'_>) -> Option<ParameterType> {
    let name = node.expect_string(&mut reader.reporter)?;
    let aws_specific = |name: &str| {
        AWS_SPECIFIC_PARAMETER_TYPES.contains(&name)
            || name.strip_prefix("List<").and_then(|inner| inner.strip_suffix('>')).is_some_and(
                |inner| {
                    inner != "AWS::SSM::Parameter::Name"
                        && AWS_SPECIFIC_PARAMETER_TYPES.contains(&inner)
                },
            )
    };
    let parsed = match name {
        "String" => Some(ParameterType::String),
        "Number" => Some(ParameterType::Number),
        "List<Number>" => Some(ParameterType::NumberList),
        "CommaDelimitedList" => Some(ParameterType::CommaDelimitedList),
        name if aws_specific(name) => Some(ParameterType::AwsSpecific(name.to_owned())),
        name => name
            .strip_prefix("AWS::SSM::Parameter::Value<")
            .and_then(|inner| inner.strip_suffix('>'))
            .filter(|inner| {
                matches!(*inner, "String" | "List<String>" | "CommaDelimitedList")
                    || aws_specific(inner)
            })
            .map(|_| ParameterType::SsmParameterValue(name.to_owned())),
    };
    if parsed.is_none() {
        reader.reporter.error(
            node.span,
            format!(
                "found the parameter type {name:?}; expected String, Number, List<Number>, CommaDelimitedList, an AWS-specific type like AWS::EC2::VPC::Id or List<AWS::EC2::Subnet::Id>, or AWS::SSM::Parameter::Value<...>"
            ),
        );
    }
    parsed
}

/// The text of a scalar (string, number or boolean), else `None` after
/// reporting.
fn scalar(node: &Node, reader: &mut ExprReader<'_>) -> Option<String> {
    node.expect_string(&mut reader.reporter).map(str::to_owned)
}

fn number(node: &Node, reader: &mut ExprReader<'_>) -> Option<f64> {
    let text = scalar(node, reader)?;
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Some(value),
        _ => {
            reader.reporter.error(node.span, format!("found {text:?}; expected a number"));
            None
        }
    }
}

fn length(node: &Node, reader: &mut ExprReader<'_>) -> Option<u64> {
    let text = scalar(node, reader)?;
    match text.parse::<u64>() {
        Ok(value) => Some(value),
        Err(_) => {
            reader
                .reporter
                .error(node.span, format!("found {text:?}; expected a whole number from 0"));
            None
        }
    }
}

fn parameter(
    name: &Spanned<String>,
    node: &Node,
    reader: &mut ExprReader<'_>,
) -> Option<Parameter> {
    let mut map = MappingReader::new(node, &mut reader.reporter)?;
    let parameter_type =
        map.required("Type", &mut reader.reporter).and_then(|node| parameter_type(node, reader));
    let default = map.entry("Default").map(|(_, node)| (node, scalar(node, reader)));
    let allowed_values = map.optional("AllowedValues").map(|node| {
        let items = node.expect_sequence(&mut reader.reporter)?;
        if items.is_empty() {
            reader.reporter.error(node.span, "found no allowed values; expected at least one");
            return None;
        }
        items.iter().map(|item| scalar(item, reader)).collect::<Option<Vec<_>>>()
    });
    let allowed_pattern = map.optional("AllowedPattern").and_then(|node| {
        let pattern = scalar(node, reader)?;
        if let Err(error) = regex::Regex::new(&format!("^(?:{pattern})$")) {
            let first_line = error.to_string();
            let first_line = first_line.lines().last().unwrap_or_default().trim().to_owned();
            reader.reporter.error(
                node.span,
                format!("found the pattern {pattern:?}, which is not a valid regular expression ({first_line}); expected a valid one"),
            );
            return None;
        }
        Some(pattern)
    });
    let min_value = map.optional("MinValue").map(|node| (node, number(node, reader)));
    let max_value = map.optional("MaxValue").map(|node| (node, number(node, reader)));
    let min_length = map.optional("MinLength").map(|node| (node, length(node, reader)));
    let max_length = map.optional("MaxLength").map(|node| (node, length(node, reader)));
    let no_echo = map.optional("NoEcho").and_then(|node| {
        let text = scalar(node, reader)?;
        match text.as_str() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => {
                reader.reporter.error(node.span, format!("found {text:?}; expected true or false"));
                None
            }
        }
    });
    let description = map.optional("Description").and_then(|node| scalar(node, reader));
    let constraint_description =
        map.optional("ConstraintDescription").and_then(|node| scalar(node, reader));
    map.finish(&mut reader.reporter);

    let parameter_type = parameter_type?;
    let is_number = matches!(parameter_type, ParameterType::Number | ParameterType::NumberList);
    for (key, bound) in [("MinValue", &min_value), ("MaxValue", &max_value)] {
        if let Some((node, _)) = bound
            && !is_number
        {
            reader.reporter.error(
                node.span,
                format!("found {key} on a {} parameter; expected it only on Number and List<Number> parameters", parameter_type.name()),
            );
        }
    }
    for (key, bound) in [("MinLength", &min_length), ("MaxLength", &max_length)] {
        if let Some((node, _)) = bound
            && is_number
        {
            reader.reporter.error(
                node.span,
                format!("found {key} on a {} parameter; expected it only on parameters that are not numbers", parameter_type.name()),
            );
        }
    }
    let (default_node, default) = match default {
        Some((node, Some(value))) => (Some(node), Some(value)),
        Some((_, None)) => return None,
        None => (None, None),
    };
    let parameter = Parameter {
        name: name.value.clone(),
        span: name.span,
        parameter_type,
        default,
        allowed_values: match allowed_values {
            Some(values) => values?,
            None => Vec::new(),
        },
        allowed_pattern,
        min_value: unwrap_bound(min_value).ok()?,
        max_value: unwrap_bound(max_value).ok()?,
        min_length: unwrap_bound(min_length).ok()?,
        max_length: unwrap_bound(max_length).ok()?,
        no_echo: no_echo.unwrap_or(false),
        description,
        constraint_description,
    };
    if let (Some(node), Some(default)) = (default_node, &parameter.default) {
        for problem in check_value(&parameter, default) {
            reader.reporter.error(node.span, format!("the default value does not fit: {problem}"));
        }
    }
    Some(parameter)
}

fn mapping(name: &Spanned<String>, node: &Node, reader: &mut ExprReader<'_>) -> Option<Mapping> {
    let mut entries = BTreeMap::new();
    let mut ok = true;
    let Some(tops) = node.as_mapping().filter(|_| node.tag.is_none()) else {
        reader
            .reporter
            .error(node.span, format!("expected a mapping of mappings, found {}", node.describe()));
        return None;
    };
    for (top_key, seconds_node) in tops {
        let Some(top) = scalar(top_key, reader) else {
            ok = false;
            continue;
        };
        let Some(seconds) = seconds_node.as_mapping().filter(|_| seconds_node.tag.is_none()) else {
            reader.reporter.error(
                seconds_node.span,
                format!(
                    "expected a mapping of second-level keys to values, found {}",
                    seconds_node.describe()
                ),
            );
            ok = false;
            continue;
        };
        let mut values = BTreeMap::new();
        for (second_key, value) in seconds {
            let Some(second) = scalar(second_key, reader) else {
                ok = false;
                continue;
            };
            let Some(expr) = reader.expr(value) else {
                ok = false;
                continue;
            };
            if !is_literal(&expr) {
                reader.reporter.error(
                    value.span,
                    "found an intrinsic function in Mappings; expected a string, a number or a list of them",
                );
                ok = false;
                continue;
            }
            values.entry(second).or_insert(expr);
        }
        entries.entry(top).or_insert(values);
    }
    ok.then(|| Mapping { name: name.value.clone(), span: name.span, entries })
}

fn is_literal(expr: &Expr) -> bool {
    match &expr.kind {
        ExprKind::Null | ExprKind::Bool(_) | ExprKind::Number(_) | ExprKind::String(_) => true,
        ExprKind::List(items) => items.iter().all(is_literal),
        ExprKind::Map(entries) => entries.iter().all(|(_, value)| is_literal(value)),
        _ => false,
    }
}

fn name_value(node: &Node, reader: &mut ExprReader<'_>) -> Option<Spanned<String>> {
    match (&node.value, &node.tag) {
        (Value::String(name), None) if !name.is_empty() => {
            Some(Spanned::new(name.clone(), node.span))
        }
        _ => {
            reader.reporter.error(node.span, format!("expected a name, found {}", node.describe()));
            None
        }
    }
}

/// A bound read from an optional key: `Err` when present but unreadable.
fn unwrap_bound<T>(bound: Option<(&Node, Option<T>)>) -> Result<Option<T>, ()> {
    match bound {
        Some((_, None)) => Err(()),
        Some((_, Some(value))) => Ok(Some(value)),
        None => Ok(None),
    }
}

fn read_deletion_policy(
    node: &Node,
    reader: &mut ExprReader<'_>,
) -> Option<Spanned<DeletionPolicy>> {
    let text = node.expect_string(&mut reader.reporter)?;
    match DeletionPolicy::ALL.into_iter().find(|policy| policy.as_str() == text) {
        Some(policy) => Some(Spanned::new(policy, node.span)),
        None => {
            let names: Vec<&str> =
                DeletionPolicy::ALL.iter().map(|policy| policy.as_str()).collect();
            reader.reporter.error(
                node.span,
                format!("found the policy {text:?}; expected one of {}", names.join(", ")),
            );
            None
        }
    }
}

fn resource(name: &Spanned<String>, node: &Node, reader: &mut ExprReader<'_>) -> Option<Resource> {
    let mut map = MappingReader::new(node, &mut reader.reporter)?;
    let resource_type = map.required("Type", &mut reader.reporter).and_then(|node| {
        Some(Spanned::new(node.expect_string(&mut reader.reporter)?.to_owned(), node.span))
    });
    let properties = map.optional("Properties").map(|node| reader.expr(node));
    let depends_on = map.optional("DependsOn").map(|node| {
        match node.as_sequence().filter(|_| node.tag.is_none()) {
            Some(items) => {
                items.iter().map(|item| name_value(item, reader)).collect::<Option<Vec<_>>>()
            }
            None => name_value(node, reader).map(|name| vec![name]),
        }
    });
    let condition = map.optional("Condition").map(|node| name_value(node, reader));
    let creation_policy = map.optional("CreationPolicy").map(|node| creation_policy(node, reader));
    let update_policy = map.optional("UpdatePolicy").map(|node| update_policy(node, reader));
    let deletion_policy =
        map.optional("DeletionPolicy").map(|node| read_deletion_policy(node, reader));
    let update_replace_policy =
        map.optional("UpdateReplacePolicy").map(|node| read_deletion_policy(node, reader));
    let metadata = map.optional("Metadata").map(|node| reader.expr(node));
    map.finish(&mut reader.reporter);
    let (creation_policy, creation_policy_choice) =
        unconditional(creation_policy.transpose_read()?);
    let (update_policy, update_policy_choice) = unconditional(update_policy.transpose_read()?);
    Some(Resource {
        name: ResourceName(name.value.clone()),
        span: name.span,
        resource_type: resource_type?,
        properties: properties.transpose_read()?,
        depends_on: depends_on.transpose_read()?.unwrap_or_default(),
        condition: condition.transpose_read()?,
        creation_policy,
        update_policy,
        creation_policy_choice,
        update_policy_choice,
        deletion_policy: deletion_policy.transpose_read()?,
        update_replace_policy: update_replace_policy.transpose_read()?,
        metadata: metadata.transpose_read()?,
    })
}

/// A policy as read: the one that applies when it was written without
/// `Fn::If`, else the choice.
fn unconditional<T>(read: Option<Chosen<Option<T>>>) -> (Option<T>, Option<Chosen<Option<T>>>) {
    match read {
        None => (None, None),
        Some(Chosen::Value(policy)) => (policy, None),
        Some(choice) => (None, Some(choice)),
    }
}

/// A rule of the `Rules` section.
fn rule(name: &Spanned<String>, node: &Node, reader: &mut ExprReader<'_>) -> Option<Rule> {
    let mut map = MappingReader::new(node, &mut reader.reporter)?;
    let condition = map.optional("RuleCondition").map(|node| reader.condition(node));
    let assertions = map.required("Assertions", &mut reader.reporter).and_then(|node| {
        let items = node.expect_sequence(&mut reader.reporter)?;
        let mut assertions = Vec::new();
        let mut ok = true;
        for item in items {
            let Some(mut assertion) = MappingReader::new(item, &mut reader.reporter) else {
                ok = false;
                continue;
            };
            let assert = assertion
                .required("Assert", &mut reader.reporter)
                .and_then(|node| reader.condition(node));
            let description =
                assertion.optional("AssertDescription").map(|node| scalar(node, reader));
            assertion.finish(&mut reader.reporter);
            match (assert, description.transpose_read()) {
                (Some(assert), Some(description)) => {
                    assertions.push(Assertion { assert, description });
                }
                _ => ok = false,
            }
        }
        ok.then_some(assertions)
    });
    map.finish(&mut reader.reporter);
    Some(Rule {
        name: name.value.clone(),
        span: name.span,
        condition: condition.transpose_read()?,
        assertions: assertions?,
    })
}

/// `Option<Option<T>>` of an optional key read: absent is fine (`Some(None)`),
/// present but unreadable is not (`None`).
trait TransposeRead<T> {
    fn transpose_read(self) -> Option<Option<T>>;
}

impl<T> TransposeRead<T> for Option<Option<T>> {
    fn transpose_read(self) -> Option<Option<T>> {
        match self {
            None => Some(None),
            Some(None) => None,
            Some(Some(value)) => Some(Some(value)),
        }
    }
}

fn output(name: &Spanned<String>, node: &Node, reader: &mut ExprReader<'_>) -> Option<Output> {
    let mut map = MappingReader::new(node, &mut reader.reporter)?;
    let value = map.required("Value", &mut reader.reporter).map(|node| reader.expr(node));
    let description = map.optional("Description").map(|node| scalar(node, reader));
    let export_name = map.optional("Export").map(|node| {
        let mut export = MappingReader::new(node, &mut reader.reporter)?;
        let name = export.required("Name", &mut reader.reporter).and_then(|node| reader.expr(node));
        export.finish(&mut reader.reporter);
        name
    });
    let condition = map.optional("Condition").map(|node| name_value(node, reader));
    map.finish(&mut reader.reporter);
    Some(Output {
        name: name.value.clone(),
        span: name.span,
        value: value??,
        description: description.transpose_read()?,
        export_name: export_name.transpose_read()?,
        condition: condition.transpose_read()?,
    })
}
