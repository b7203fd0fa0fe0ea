//! Whole-template checks, after reading: every name referred to exists,
//! resource types and properties are supported, conditions and resources do
//! not depend on themselves. Every problem is reported, each where it is
//! written.

use std::collections::{BTreeMap, BTreeSet};

use crate::cloudformation::document::{ResourceName, Template};
use crate::cloudformation::expr::{Expr, ExprKind, Reference, is_pseudo_parameter};
use crate::cloudformation::order::{resource_dependencies, resource_exprs, topological_order};
use crate::cloudformation::reader::{Broken, Runner};
use crate::cloudformation::types::{resource_type, resource_types};
use crate::diagnostic::Reporter;
use crate::source::Span;
use crate::suggest::edit_distance;

/// Where an expression is: what it may refer to depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The `Conditions` section: parameters and pseudo parameters only.
    Conditions,
    /// The `Rules` section: parameters and pseudo parameters only.
    Rules,
    /// Resources and outputs: anything declared.
    Anywhere,
}

impl Place {
    /// `in a condition`, `in a rule`.
    fn name(self) -> &'static str {
        match self {
            Place::Conditions => "in a condition",
            Place::Rules => "in a rule",
            Place::Anywhere => "here",
        }
    }
}

pub(crate) fn validate(
    template: &Template,
    broken: &Broken,
    runner: Option<&Runner<'_>>,
    reporter: &mut Reporter,
) {
    let checker = Checker { template, broken, runner };
    for resource in template.resources.values() {
        if let Some(parameter) = template.parameters.get(resource.name.as_str()) {
            reporter.error(
                resource.span,
                format!(
                    "found the resource `{}`, whose name is also a parameter's (at {}); expected names unique across parameters and resources",
                    resource.name, parameter.span.start
                ),
            );
        }
    }
    for condition in template.conditions.values() {
        checker.expr(&condition.expr, Place::Conditions, reporter);
        condition_shape(&condition.expr, Place::Conditions, reporter);
    }
    for rule in template.rules.values() {
        for expr in rule.condition.iter().chain(rule.assertions.iter().map(|a| &a.assert)) {
            checker.expr(expr, Place::Rules, reporter);
            condition_shape(expr, Place::Rules, reporter);
        }
    }
    for resource in template.resources.values() {
        checker.resource_type_and_properties(resource, reporter);
        for expr in resource_exprs(resource) {
            checker.expr(expr, Place::Anywhere, reporter);
            no_condition_functions(expr, reporter);
        }
        let chosen = resource.creation_policy_choice.iter().flat_map(|choice| choice.conditions());
        let chosen = chosen
            .chain(resource.update_policy_choice.iter().flat_map(|choice| choice.conditions()));
        for condition in chosen.collect::<Vec<_>>() {
            checker.condition_name(&condition.value, condition.span, reporter);
        }
        for other in &resource.depends_on {
            if other.value == resource.name.as_str() {
                reporter.error(
                    other.span,
                    format!(
                        "found `{}` depending on itself; expected another resource",
                        other.value
                    ),
                );
            } else if !template.resources.contains_key(other.value.as_str())
                && !broken.names.contains(&other.value)
            {
                reporter.error(
                    other.span,
                    format!("found DependsOn `{}`, which is not a resource of this template; expected a resource{}", other.value, checker.suggest_resource(&other.value)),
                );
            }
        }
        if let Some(condition) = &resource.condition {
            checker.condition_name(&condition.value, condition.span, reporter);
        }
    }
    for output in template.outputs.values() {
        checker.expr(&output.value, Place::Anywhere, reporter);
        no_condition_functions(&output.value, reporter);
        if let Some(export_name) = &output.export_name {
            checker.expr(export_name, Place::Anywhere, reporter);
            no_condition_functions(export_name, reporter);
        }
        if let Some(condition) = &output.condition {
            checker.condition_name(&condition.value, condition.span, reporter);
        }
    }
    condition_cycles(template, reporter);
    resource_cycles(template, reporter);
}

struct Checker<'a> {
    template: &'a Template,
    broken: &'a Broken,
    /// Who runs the template, when fewer types than the table's.
    runner: Option<&'a Runner<'a>>,
}

impl Checker<'_> {
    fn expr(&self, expr: &Expr, place: Place, reporter: &mut Reporter) {
        for reference in expr.references() {
            self.reference(reference, place, reporter);
        }
        expr.walk(&mut |expr| match &expr.kind {
            ExprKind::If { condition, .. } | ExprKind::Condition(condition) => {
                self.condition_name(&condition.value, condition.span, reporter);
            }
            ExprKind::FindInMap { map, top_key, second_key } => {
                self.find_in_map(map, top_key, second_key, reporter);
            }
            ExprKind::GetAttByParameter { parameter, .. }
                if self.template.resources.contains_key(parameter.value.as_str()) =>
            {
                reporter.error(parameter.span, format!("found a reference to the resource `{}` as the attribute name of Fn::GetAtt; expected a parameter", parameter.value));
            }
            ExprKind::ImportValue(name) => {
                for reference in name.references() {
                    if self.template.resources.contains_key(reference.target()) {
                        reporter.error(reference.span(), format!("found the resource `{}` in the name of Fn::ImportValue; expected a name made of parameters and pseudo parameters only", reference.target()));
                    }
                }
            }
            _ => {}
        });
    }

    fn reference(&self, reference: Reference<'_>, place: Place, reporter: &mut Reporter) {
        let template = self.template;
        let target = reference.target();
        if self.broken.names.contains(target) {
            return;
        }
        match reference {
            Reference::Ref(name, span) => {
                let is_resource = template.resources.contains_key(name);
                if is_pseudo_parameter(name) || template.parameters.contains_key(name) {
                    return;
                }
                if is_resource && place != Place::Anywhere {
                    reporter.error(span, format!("found a reference to the resource `{name}` {}; expected a parameter or pseudo parameter", place.name()));
                } else if !is_resource {
                    let hint = if name.starts_with("AWS::") {
                        format!(
                            " (pseudo parameters: {})",
                            crate::cloudformation::expr::PSEUDO_PARAMETERS.join(", ")
                        )
                    } else {
                        self.suggest_any(name)
                    };
                    reporter.error(span, format!("found a reference to `{name}`, which is not declared; expected a parameter, a resource or a pseudo parameter{hint}"));
                }
            }
            Reference::GetAtt { resource, attribute, span } => {
                let shown = attribute.unwrap_or("(a parameter's value)");
                if place != Place::Anywhere {
                    reporter.error(span, format!("found the attribute `{resource}.{shown}` {}; expected a parameter or pseudo parameter", place.name()));
                    return;
                }
                let Some(declared) = template.resources.get(resource) else {
                    let what = if template.parameters.contains_key(resource) {
                        " (it is a parameter)".to_owned()
                    } else {
                        self.suggest_resource(resource)
                    };
                    reporter.error(span, format!("found the attribute `{resource}.{shown}` of `{resource}`, which is not a resource of this template; expected a resource{what}"));
                    return;
                };
                let Some(spec) = resource_type(&declared.resource_type.value) else { return };
                // An attribute a parameter names is checked with its value.
                let Some(attribute) = attribute else { return };
                if !spec.has_attribute(attribute) {
                    let expected = if spec.attributes.is_empty() {
                        format!("{} has no attributes", spec.name)
                    } else {
                        format!("expected one of {}", spec.attributes.join(", "))
                    };
                    reporter.error(
                        span,
                        format!(
                            "found the attribute `{attribute}` of `{resource}` ({}); {expected}",
                            spec.name
                        ),
                    );
                }
            }
        }
    }

    fn condition_name(&self, name: &str, span: Span, reporter: &mut Reporter) {
        if self.template.conditions.contains_key(name) || self.broken.names.contains(name) {
            return;
        }
        let declared: Vec<&str> = self.template.conditions.keys().map(String::as_str).collect();
        let expected = if declared.is_empty() {
            "expected a condition of the Conditions section, which is empty".to_owned()
        } else {
            format!("expected one of {}", declared.join(", "))
        };
        reporter.error(
            span,
            format!("found the condition `{name}`, which is not declared; {expected}"),
        );
    }

    fn find_in_map(&self, map: &Expr, top_key: &Expr, second_key: &Expr, reporter: &mut Reporter) {
        if map.as_str().is_some_and(|name| self.broken.names.contains(name)) {
            return;
        }
        if let Some((span, message)) = mapping_problem(self.template, map, top_key, second_key) {
            reporter.error(span, message);
        }
    }

    fn resource_type_and_properties(
        &self,
        resource: &crate::cloudformation::document::Resource,
        reporter: &mut Reporter,
    ) {
        let type_name = &resource.resource_type;
        let known = resource_type(&type_name.value);
        let runs =
            self.runner.is_none_or(|runner| runner.types.contains(&type_name.value.as_str()));
        if known.is_none() || !runs {
            let message = match self.runner {
                None => {
                    let supported: Vec<&str> =
                        resource_types().iter().map(|spec| spec.name).collect();
                    format!(
                        "found the unsupported resource type `{}`; expected one of the supported types: {}",
                        type_name.value,
                        supported.join(", ")
                    )
                }
                Some(runner) => {
                    let mut types = runner.types.to_vec();
                    types.sort_unstable();
                    format!(
                        "found the resource type `{}`, which {} do not run; expected one of {}",
                        type_name.value,
                        runner.name,
                        types.join(", ")
                    )
                }
            };
            reporter.error(type_name.span, message);
        }
        // A type the table knows has its properties checked all the same.
        let Some(spec) = known else { return };
        if !spec.accepts_policies {
            let creation =
                resource.creation_policy.as_ref().map(|policy| policy.span).or_else(|| {
                    let choice = resource.creation_policy_choice.as_ref()?;
                    choice.values().into_iter().flatten().map(|policy| policy.span).next()
                });
            if let Some(span) = creation {
                reporter.error(span, format!("found a CreationPolicy on {}; expected it only on AWS::AutoScaling::AutoScalingGroup", spec.name));
            }
            let update = resource.update_policy.as_ref().map(|policy| policy.span).or_else(|| {
                let choice = resource.update_policy_choice.as_ref()?;
                choice.values().into_iter().flatten().map(|policy| policy.span).next()
            });
            if let Some(span) = update {
                reporter.error(span, format!("found an UpdatePolicy on {}; expected it only on AWS::AutoScaling::AutoScalingGroup", spec.name));
            }
        }
        let given = match &resource.properties {
            None => Vec::new(),
            Some(properties) => match &properties.kind {
                ExprKind::Map(entries) => entries.iter().map(|(name, _)| name).collect(),
                // `Fn::If` choosing between property maps: checked when evaluated.
                ExprKind::If { .. } => return,
                _ => {
                    reporter.error(properties.span, "expected a mapping of properties");
                    return;
                }
            },
        };
        for name in &given {
            if !spec.has_property(&name.value) {
                let suggestion = spec
                    .properties
                    .iter()
                    .find(|known| known.eq_ignore_ascii_case(&name.value))
                    .map(|known| format!("did you mean `{known}`? "))
                    .unwrap_or_default();
                reporter.error(
                    name.span,
                    format!("found the property `{}`, which {} does not have; {suggestion}expected one of {}", name.value, spec.name, spec.properties.join(", ")),
                );
            }
        }
        for required in spec.required {
            if !given.iter().any(|name| name.value == *required) {
                let at = resource
                    .properties
                    .as_ref()
                    .map_or(resource.span, |properties| properties.span);
                reporter.error(
                    at,
                    format!("missing the required property `{required}` of {}", spec.name),
                );
            }
        }
    }

    fn suggest_resource(&self, name: &str) -> String {
        suggest(name, self.template.resources.keys().map(ResourceName::as_str))
    }

    fn suggest_any(&self, name: &str) -> String {
        suggest(
            name,
            self.template
                .resources
                .keys()
                .map(ResourceName::as_str)
                .chain(self.template.parameters.keys().map(String::as_str)),
        )
    }
}

/// What the parse can say about a `Fn::FindInMap` whose names are written
/// as such: a mapping that is not declared, a key it does not have.
pub(crate) fn mapping_problem(
    template: &Template,
    map: &Expr,
    top_key: &Expr,
    second_key: &Expr,
) -> Option<(Span, String)> {
    let map_name = map.as_str()?;
    let Some(mapping) = template.mappings.get(map_name) else {
        let declared: Vec<&str> = template.mappings.keys().map(String::as_str).collect();
        let expected = if declared.is_empty() {
            "expected a mapping of the Mappings section, which is empty".to_owned()
        } else {
            format!("expected one of {}", declared.join(", "))
        };
        return Some((
            map.span,
            format!("found the mapping `{map_name}`, which is not declared; {expected}"),
        ));
    };
    let top = top_key.scalar_text()?;
    let Some(seconds) = mapping.entries.get(&top) else {
        return Some((
            top_key.span,
            format!(
                "found the key `{top}`, which mapping `{map_name}` does not have; expected one of {}",
                keys(mapping.entries.keys())
            ),
        ));
    };
    let second = second_key.scalar_text()?;
    (!seconds.contains_key(&second)).then(|| {
        (second_key.span, format!("found the key `{second}`, which mapping `{map_name}` does not have under `{top}`; expected one of {}", keys(seconds.keys())))
    })
}

/// Condition functions are CloudFormation's for `Conditions` (and `Rules`)
/// only: elsewhere a condition is used by name (`Fn::If`, `Condition`).
fn no_condition_functions(expr: &Expr, reporter: &mut Reporter) {
    if let Some(function) = expr.kind.function_name()
        && expr.kind.is_condition_function()
    {
        reporter.error(
            expr.span,
            format!("found {function} outside the Conditions section; expected condition functions only in Conditions (elsewhere, name a condition in Fn::If)"),
        );
        return;
    }
    for child in expr.children() {
        no_condition_functions(child, reporter);
    }
}

/// A condition (or a rule's condition or assertion) is a function that is
/// true or false (or a literal `true` or `false`), made of others of its
/// kind; `Fn::Equals` compares two single values.
fn condition_shape(expr: &Expr, place: Place, reporter: &mut Reporter) {
    let is_rule_function = place == Place::Rules && expr.kind.is_rule_function();
    // A literal truth is one too, as cfn-lint reads CloudFormation's schema.
    let is_truth = match &expr.kind {
        ExprKind::Bool(_) => true,
        ExprKind::String(text) => {
            text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false")
        }
        _ => false,
    };
    if !expr.kind.is_condition_function() && !is_rule_function && !is_truth {
        let found = expr
            .kind
            .function_name()
            .map_or_else(|| describe_literal(expr), |name| name.to_owned());
        let expected = if place == Place::Rules {
            "a rule function: Fn::Equals, Fn::And, Fn::Or, Fn::Not, Fn::Contains, Fn::EachMemberEquals or Fn::EachMemberIn"
        } else {
            "a condition function: Fn::Equals, Fn::And, Fn::Or, Fn::Not or Condition"
        };
        reporter.error(expr.span, format!("found {found} {}; expected {expected}", place.name()));
        return;
    }
    match &expr.kind {
        ExprKind::Not(inner) => condition_shape(inner, place, reporter),
        ExprKind::And(items) | ExprKind::Or(items) => {
            for item in items {
                condition_shape(item, place, reporter);
            }
        }
        ExprKind::Equals(left, right) => {
            for side in [left, right] {
                let found = match &side.kind {
                    ExprKind::List(_) => Some("a list".to_owned()),
                    ExprKind::Map(_) => Some("a map".to_owned()),
                    kind if kind.is_condition_function() || kind.is_rule_function() => {
                        kind.function_name().map(str::to_owned)
                    }
                    _ => None,
                };
                if let Some(found) = found {
                    reporter.error(
                        side.span,
                        format!("found {found} in Fn::Equals; expected a single value: a string, or a function that gives one"),
                    );
                }
            }
        }
        _ => {}
    }
}

/// A literal, for messages.
fn describe_literal(expr: &Expr) -> String {
    match &expr.kind {
        ExprKind::List(_) => "a list".to_owned(),
        ExprKind::Map(_) => "a map".to_owned(),
        ExprKind::Null => "null".to_owned(),
        _ => match expr.scalar_text() {
            Some(text) => format!("{text:?}"),
            None => "a value".to_owned(),
        },
    }
}

fn keys<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    keys.map(|key| format!("`{key}`")).collect::<Vec<_>>().join(", ")
}

/// ` (did you mean `X`?)` when a declared name differs only in case or by
/// one character.
fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    candidates
        .filter(|candidate| close(name, candidate))
        .min()
        .map(|candidate| format!(" (did you mean `{candidate}`?)"))
        .unwrap_or_default()
}

fn close(left: &str, right: &str) -> bool {
    left.eq_ignore_ascii_case(right) || edit_distance(left, right) <= 1
}

fn condition_cycles(template: &Template, reporter: &mut Reporter) {
    // Conditions are resources here only to reuse the ordering.
    let mut dependencies: BTreeMap<ResourceName, BTreeSet<ResourceName>> = BTreeMap::new();
    for (name, condition) in &template.conditions {
        let mut needs = BTreeSet::new();
        condition.expr.walk(&mut |expr| {
            if let ExprKind::Condition(other) = &expr.kind
                && template.conditions.contains_key(&other.value)
            {
                needs.insert(ResourceName(other.value.clone()));
            }
        });
        dependencies.insert(ResourceName(name.clone()), needs);
    }
    if let Err(cycle) = topological_order(&dependencies) {
        let names: Vec<&str> = cycle.cycle.iter().map(ResourceName::as_str).collect();
        let at = cycle.cycle.first().and_then(|first| template.conditions.get(first.as_str()));
        if let Some(first) = at {
            reporter.error(
                first.span,
                format!("found a circular dependency between conditions: {}", names.join(" -> ")),
            );
        }
    }
}

fn resource_cycles(template: &Template, reporter: &mut Reporter) {
    if let Err(cycle) = topological_order(&resource_dependencies(template)) {
        let at = cycle.cycle.first().and_then(|first| template.resources.get(first));
        if let Some(first) = at {
            reporter.error(first.span, cycle.to_string());
        }
    }
}
