//! What a stack request's parameters make of a template, checked before
//! anything is made: [`check_values`].
//!
//! CloudFormation processes a template inside `CreateStack`/`UpdateStack`
//! and refuses it there (a `ValidationError`, no stack made) when an
//! intrinsic function cannot work with the values it is given: an index out
//! of range, a `Fn::Join` of something that is not a list, a mapping key
//! that is not there, a reference to a resource that is not created, an
//! output that is not a string, a rule whose assertion fails. This module
//! evaluates every created resource, every output and every rule with what
//! is known then (parameters, pseudo parameters, mappings, conditions);
//! values made from resources (`Ref` of a resource, `Fn::GetAtt`) are known
//! only once they are made, so they are [`Partial::Unknown`] here and their
//! problems are found at run time, as on AWS.
//!
//! Problems the parse already reported (names that are not declared, keys
//! written literally that a mapping does not have) are not reported again.

use crate::cloudformation::document::{Resource, Template};
use crate::cloudformation::evaluate::{
    EvalContext, EvalError, EvalErrorKind, Lookup, Partial, Shape, Value, eval,
};
use crate::cloudformation::expr::{Expr, ExprKind, is_pseudo_parameter};
use crate::cloudformation::types::resource_type;
use crate::cloudformation::validate::mapping_problem;
use crate::diagnostic::{Diagnostic, Reporter};
use crate::source::Span;

/// Every problem the values known before anything is made cause in
/// `template` (read from the file shown as `file`), each with its position,
/// sorted: intrinsic functions that fail on those values, `Ref`,
/// `Fn::GetAtt` and `DependsOn` of resources whose condition is false,
/// outputs that are not strings, and rules whose assertions fail. `ctx`
/// holds the parameter values (a parameter whose value is not usable is left
/// out of it), pseudo parameters, mappings and the conditions' truths; a
/// resource or output whose condition is not known is not checked.
pub fn check_values(file: &str, template: &Template, ctx: &dyn EvalContext) -> Vec<Diagnostic> {
    let lookup = Validating { template, ctx };
    let mut checker = Checker { lookup: &lookup, reporter: Reporter::new(file) };
    for rule in template.rules.values() {
        let applies = match &rule.condition {
            None => Some(true),
            Some(condition) => checker.truth(condition),
        };
        if applies != Some(true) {
            continue;
        }
        for assertion in &rule.assertions {
            if checker.truth(&assertion.assert) == Some(false) {
                let reason = match &assertion.description {
                    Some(description) => format!(": {description}"),
                    None => " (its assertion is false for them)".to_owned(),
                };
                checker.reporter.error(
                    assertion.assert.span,
                    format!("found parameter values that rule `{}` refuses{reason}", rule.name),
                );
            }
        }
    }
    for resource in template.resources.values() {
        if !lookup.exists(resource) {
            continue;
        }
        for other in &resource.depends_on {
            let Some(target) = template.resources.get(other.value.as_str()) else { continue };
            if let Some(condition) = lookup.false_condition(target) {
                checker.reporter.error(
                    other.span,
                    format!(
                        "found DependsOn `{}`, a resource that is not created: its condition `{condition}` is false; expected a resource that is created",
                        other.value
                    ),
                );
            }
        }
        if let Some(properties) = &resource.properties {
            checker.each_value(properties);
        }
        if let Some(metadata) = &resource.metadata {
            checker.each_value(metadata);
        }
        let holds = |name: &str| ctx.condition(name);
        let creation = match &resource.creation_policy_choice {
            Some(choice) => choice.choose_known(&holds).cloned().flatten(),
            None => resource.creation_policy.clone(),
        };
        let update = match &resource.update_policy_choice {
            Some(choice) => choice.choose_known(&holds).cloned().flatten(),
            None => resource.update_policy.clone(),
        };
        let settings = creation
            .iter()
            .flat_map(|policy| policy.exprs())
            .chain(update.iter().flat_map(|policy| policy.exprs()));
        for setting in settings.collect::<Vec<_>>() {
            checker.value(setting);
        }
    }
    for output in template.outputs.values() {
        if let Some(condition) = &output.condition
            && ctx.condition(&condition.value) != Some(true)
        {
            continue;
        }
        checker.string(
            &output.value,
            &format!("the value of output `{}`", output.name),
            ", as every output's Value must be",
        );
        if let Some(name) = &output.export_name {
            checker.string(name, &format!("the export name of output `{}`", output.name), "");
        }
    }
    checker.reporter.into_diagnostics()
}

struct Checker<'a> {
    lookup: &'a Validating<'a>,
    reporter: Reporter,
}

impl Checker<'_> {
    /// Evaluates `expr`, reporting what fails; `None` then.
    fn value(&mut self, expr: &Expr) -> Option<Partial> {
        match eval(expr, self.lookup) {
            Ok(value) => Some(value),
            Err(error) => {
                self.reporter.error(error.span, error.kind.to_string());
                None
            }
        }
    }

    /// Evaluates `expr`, each entry of a literal map or list on its own, so
    /// that a problem in one does not hide those in the others.
    fn each_value(&mut self, expr: &Expr) {
        match &expr.kind {
            ExprKind::Map(entries) => {
                for (_, value) in entries {
                    self.each_value(value);
                }
            }
            ExprKind::List(items) => {
                for item in items {
                    self.each_value(item);
                }
            }
            _ => {
                self.value(expr);
            }
        }
    }

    /// The truth of a rule's condition or assertion; `None` when it is not
    /// known or did not evaluate (then reported).
    fn truth(&mut self, expr: &Expr) -> Option<bool> {
        match self.value(expr)? {
            Partial::Known(Value::Bool(holds)) => Some(holds),
            Partial::Unknown(Shape::Bool | Shape::Any) => None,
            other => {
                let found = other.describe(&|text| self.lookup.ctx.mask(text));
                self.reporter.error(
                    expr.span,
                    format!(
                        "found {found} in a rule; expected a rule function that is true or false"
                    ),
                );
                None
            }
        }
    }

    /// `expr`, `what` of an output, must be a string (a number or a boolean
    /// written as such is one, as CloudFormation reads it); `why` ends the
    /// message.
    fn string(&mut self, expr: &Expr, what: &str, why: &str) {
        let Some(value) = self.value(expr) else { return };
        let found = match &value {
            Partial::Known(Value::String(_) | Value::Number(_) | Value::Bool(_))
            | Partial::Unknown(Shape::String | Shape::Any | Shape::Bool) => return,
            Partial::Known(Value::NoValue) => "AWS::NoValue".to_owned(),
            other => other.describe(&|text| self.lookup.ctx.mask(text)),
        };
        let hint = if found == "AWS::NoValue" {
            " (an output that may be left out takes a Condition)"
        } else {
            ""
        };
        self.reporter
            .error(expr.span, format!("found {found} as {what}; expected a string{why}{hint}"));
    }
}

/// The lookup of validation: the stack's context before any resource is
/// made, and the template itself.
struct Validating<'a> {
    template: &'a Template,
    ctx: &'a dyn EvalContext,
}

impl Validating<'_> {
    /// Whether `resource` is created: its condition (if any) is known true.
    fn exists(&self, resource: &Resource) -> bool {
        resource
            .condition
            .as_ref()
            .is_none_or(|condition| self.ctx.condition(&condition.value) == Some(true))
    }

    /// The condition of `resource` when it is known false.
    fn false_condition<'r>(&self, resource: &'r Resource) -> Option<&'r str> {
        let condition = resource.condition.as_ref()?;
        (self.ctx.condition(&condition.value) == Some(false)).then_some(condition.value.as_str())
    }

    fn created(&self, resource: &Resource, span: Span) -> Result<(), EvalError> {
        match self.false_condition(resource) {
            Some(condition) => Err(EvalError::new(
                span,
                EvalErrorKind::NotCreated {
                    resource: resource.name.to_string(),
                    condition: condition.to_owned(),
                },
            )),
            None => Ok(()),
        }
    }

    /// `(the key is AWS::Region ...)` when `key` is the stack's region.
    fn region_note(&self, key: &str) -> String {
        match self.region() {
            Some(region) if region == key => {
                format!(" (the key is AWS::Region, which is `{region}` for this stack)")
            }
            _ => String::new(),
        }
    }
}

impl Lookup for Validating<'_> {
    fn reference(&self, name: &str, span: Span) -> Result<Partial, EvalError> {
        let ctx = self.ctx;
        let known_or = |value: Option<Value>, shape: Shape| {
            Ok(value.map_or(Partial::Unknown(shape), Partial::Known))
        };
        if is_pseudo_parameter(name) {
            let shape = if name == "AWS::NotificationARNs" { Shape::List } else { Shape::String };
            return known_or(ctx.pseudo_parameter(name), shape);
        }
        if let Some(parameter) = self.template.parameters.get(name) {
            let shape =
                if parameter.parameter_type.is_list() { Shape::List } else { Shape::String };
            return known_or(ctx.parameter(name), shape);
        }
        if let Some(resource) = self.template.resources.get(name) {
            self.created(resource, span)?;
            return known_or(ctx.resource_ref(name), Shape::String);
        }
        // Not declared: the parse reported it.
        Ok(Partial::Unknown(Shape::Any))
    }

    fn attribute(
        &self,
        resource: &str,
        attribute: Option<&str>,
        by_parameter: Option<&str>,
        span: Span,
    ) -> Result<Partial, EvalError> {
        let Some(declared) = self.template.resources.get(resource) else {
            return Ok(Partial::Unknown(Shape::Any));
        };
        self.created(declared, span)?;
        let Some(attribute) = attribute else { return Ok(Partial::Unknown(Shape::Any)) };
        // An attribute written as such was checked by the parse; one a
        // parameter names is known only now.
        if let Some(parameter) = by_parameter
            && let Some(spec) = resource_type(&declared.resource_type.value)
            && !spec.has_attribute(attribute)
        {
            return Err(EvalError::new(
                span,
                EvalErrorKind::UnknownAttribute {
                    resource: resource.to_owned(),
                    attribute: self.ctx.mask(attribute),
                    parameter: parameter.to_owned(),
                    type_name: spec.name,
                    expected: spec.attributes,
                },
            ));
        }
        Ok(self
            .ctx
            .resource_attribute(resource, attribute)
            .map_or(Partial::Unknown(Shape::Any), Partial::Known))
    }

    fn condition(&self, name: &str, _span: Span) -> Result<Option<bool>, EvalError> {
        Ok(self.ctx.condition(name))
    }

    fn mapping(
        &self,
        map: &str,
        top_key: &str,
        second_key: &str,
        call: &Expr,
    ) -> Result<Partial, EvalError> {
        if let Some(value) = self.ctx.mapping(map, top_key, second_key) {
            return Ok(Partial::Known(value));
        }
        let ExprKind::FindInMap { map: map_expr, top_key: top_expr, second_key: second_expr } =
            &call.kind
        else {
            return Ok(Partial::Unknown(Shape::Any));
        };
        // Names and keys written as such were checked by the parse.
        if mapping_problem(self.template, map_expr, top_expr, second_expr).is_some() {
            return Ok(Partial::Unknown(Shape::Any));
        }
        let mask = |text: &str| self.ctx.mask(text);
        let Some(mapping) = self.template.mappings.get(map) else {
            let declared: Vec<String> =
                self.template.mappings.keys().map(|name| format!("`{name}`")).collect();
            let expected = if declared.is_empty() {
                "a mapping of the Mappings section, which is empty".to_owned()
            } else {
                format!("one of {}", declared.join(", "))
            };
            return Err(EvalError::new(
                map_expr.span,
                EvalErrorKind::UndeclaredMapping { map: mask(map), expected },
            ));
        };
        let keys = |keys: Vec<&String>| {
            keys.into_iter().map(|key| format!("`{key}`")).collect::<Vec<_>>().join(", ")
        };
        let Some(seconds) = mapping.entries.get(top_key) else {
            return Err(EvalError::new(
                top_expr.span,
                EvalErrorKind::MissingMapKey {
                    map: map.to_owned(),
                    key: mask(top_key),
                    under: String::new(),
                    expected: keys(mapping.entries.keys().collect()) + &self.region_note(top_key),
                },
            ));
        };
        if !seconds.contains_key(second_key) {
            return Err(EvalError::new(
                second_expr.span,
                EvalErrorKind::MissingMapKey {
                    map: map.to_owned(),
                    key: mask(second_key),
                    under: format!(" under `{}`", mask(top_key)),
                    expected: keys(seconds.keys().collect()),
                },
            ));
        }
        Ok(Partial::Unknown(Shape::Any))
    }

    fn import(&self, name: &str, _span: Span) -> Result<Partial, EvalError> {
        Ok(self.ctx.import(name).map_or(Partial::Unknown(Shape::String), Partial::Known))
    }

    fn region(&self) -> Option<String> {
        self.ctx.pseudo_parameter("AWS::Region").and_then(|value| value.as_scalar_text())
    }

    fn zones(&self, region: &str) -> Vec<String> {
        self.ctx.availability_zones(region)
    }

    fn missing(&self, _error: EvalError, shape: Shape) -> Result<Partial, EvalError> {
        Ok(Partial::Unknown(shape))
    }

    fn mask(&self, text: &str) -> String {
        self.ctx.mask(text)
    }
}

#[cfg(test)]
mod tests;
