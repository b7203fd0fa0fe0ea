//! The evaluator: an [`Expr`] and an [`EvalContext`] (what the stack knows:
//! parameter values, pseudo parameters, conditions, resources, exports) give a
//! JSON-like [`Value`].
//!
//! Design notes:
//! - Pure: the context answers every question about the world, so the same
//!   evaluator serves validation, planning and tests.
//! - `Ref AWS::NoValue` gives [`Value::NoValue`]; a map entry or list item
//!   with that value is dropped, as CloudFormation removes the property. At
//!   the top (a whole property), the caller drops it.
//! - Scalars become text where a string is needed (`Fn::Join`, `Fn::Sub`...):
//!   numbers keep their spelling, booleans are `true` and `false`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine as _;

use crate::cloudformation::document::Template;
use crate::cloudformation::expr::Reference;
use crate::cloudformation::expr::{Expr, ExprKind, SubPart, is_pseudo_parameter, sub_reference};
use crate::source::Span;

/// An evaluated template value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    /// A number, as written or computed (`80`, `1.5`).
    Number(String),
    Bool(bool),
    /// `null` in the template.
    Null,
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
    /// `Ref AWS::NoValue`: the property or item is removed.
    NoValue,
}

impl Value {
    /// The text of a string, number or boolean.
    pub fn as_scalar_text(&self) -> Option<String> {
        match self {
            Value::String(text) | Value::Number(text) => Some(text.clone()),
            Value::Bool(value) => Some(value.to_string()),
            Value::Null | Value::List(_) | Value::Map(_) | Value::NoValue => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// What the value is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Value::String(text) => format!("the string {text:?}"),
            Value::Number(text) => format!("the number {text}"),
            Value::Bool(value) => format!("the boolean {value}"),
            Value::Null => "null".to_owned(),
            Value::List(_) => "a list".to_owned(),
            Value::Map(_) => "a map".to_owned(),
            Value::NoValue => "AWS::NoValue".to_owned(),
        }
    }

    /// A list of strings.
    pub fn strings<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Value {
        Value::List(items.into_iter().map(|item| Value::String(item.into())).collect())
    }
}

impl fmt::Display for Value {
    /// JSON, with numbers unquoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(text) => write!(f, "{text:?}"),
            Value::Number(text) => f.write_str(text),
            Value::Bool(value) => write!(f, "{value}"),
            Value::Null => f.write_str("null"),
            Value::NoValue => f.write_str("<AWS::NoValue>"),
            Value::List(items) => {
                f.write_str("[")?;
                for (idx, item) in items.iter().enumerate() {
                    if idx > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (idx, (key, value)) in entries.iter().enumerate() {
                    if idx > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{key:?}: {value}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// What the evaluator asks the stack. Each answer is `None` when there is no
/// such thing (yet); the evaluator turns that into an [`EvalError`].
pub trait EvalContext {
    /// A parameter's value: a string, or a list for list types.
    fn parameter(&self, name: &str) -> Option<Value>;
    /// A pseudo parameter such as `AWS::Region`, except `AWS::NoValue`.
    fn pseudo_parameter(&self, name: &str) -> Option<Value>;
    /// Whether a condition of the template holds.
    fn condition(&self, name: &str) -> Option<bool>;
    /// `Mappings[map][top_key][second_key]`.
    fn mapping(&self, map: &str, top_key: &str, second_key: &str) -> Option<Value>;
    /// What `Ref` gives for a resource (its physical id).
    fn resource_ref(&self, resource: &str) -> Option<Value>;
    /// What `Fn::GetAtt` gives for a resource's attribute.
    fn resource_attribute(&self, resource: &str, attribute: &str) -> Option<Value>;
    /// The value another stack exported under `name`.
    fn import(&self, name: &str) -> Option<Value>;
    /// The availability zones of `region`.
    fn availability_zones(&self, region: &str) -> Vec<String>;
}

/// An evaluation failed at `span`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {kind}", span.start)]
pub struct EvalError {
    pub span: Span,
    pub kind: EvalErrorKind,
}

/// Why an evaluation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalErrorKind {
    #[error("no export named `{name}` to import; expected a name exported by another stack")]
    MissingImport { name: String },
    #[error("no value for `{name}`; expected a parameter, resource or pseudo parameter")]
    MissingReference { name: String },
    #[error("no attribute `{attribute}` of resource `{resource}`")]
    MissingAttribute { resource: String, attribute: String },
    #[error("no truth value for the condition `{name}`")]
    MissingCondition { name: String },
    #[error("no value for [{top_key}][{second_key}] in the mapping `{map}`")]
    MissingMapping { map: String, top_key: String, second_key: String },
    #[error("found {found} in {function}; expected {expected}")]
    WrongType { function: &'static str, expected: &'static str, found: String },
    #[error(
        "found the index {index} in Fn::Select; expected an index below the list's length {len}"
    )]
    IndexOutOfRange { index: usize, len: usize },
    #[error("found AWS::NoValue in {function}; it can only remove a property or list item")]
    NoValueNotAllowed { function: &'static str },
    #[error("found {value:?}; expected {expected}")]
    InvalidSetting { value: String, expected: String },
    #[error("the conditions {names} depend on each other")]
    ConditionCycle { names: String },
}

impl EvalError {
    fn new(span: Span, kind: EvalErrorKind) -> EvalError {
        EvalError { span, kind }
    }

    fn wrong_type(
        span: Span,
        function: &'static str,
        expected: &'static str,
        found: &Value,
    ) -> EvalError {
        EvalError::new(
            span,
            EvalErrorKind::WrongType { function, expected, found: found.describe() },
        )
    }
}

/// Evaluates `expr`.
///
/// # Errors
/// Returns the first problem met: a name the context does not know, an
/// argument of the wrong kind, an index out of range.
pub fn evaluate(expr: &Expr, ctx: &dyn EvalContext) -> Result<Value, EvalError> {
    let span = expr.span;
    Ok(match &expr.kind {
        ExprKind::Null => Value::Null,
        ExprKind::Bool(value) => Value::Bool(*value),
        ExprKind::Number(text) => Value::Number(text.clone()),
        ExprKind::String(text) => Value::String(text.clone()),
        ExprKind::List(items) => {
            let mut values = Vec::new();
            for item in items {
                match evaluate(item, ctx)? {
                    Value::NoValue => {}
                    value => values.push(value),
                }
            }
            Value::List(values)
        }
        ExprKind::Map(entries) => {
            let mut values = BTreeMap::new();
            for (key, value) in entries {
                match evaluate(value, ctx)? {
                    Value::NoValue => {}
                    value => {
                        values.entry(key.value.clone()).or_insert(value);
                    }
                }
            }
            Value::Map(values)
        }
        ExprKind::Ref(name) => reference(Reference::Ref(&name.value, name.span), ctx)?,
        ExprKind::GetAtt { resource, attribute } => reference(
            Reference::GetAtt { resource: &resource.value, attribute: &attribute.value, span },
            ctx,
        )?,
        ExprKind::Sub { template, variables } => {
            let mut local = BTreeMap::new();
            for (name, value_expr) in variables {
                let value = evaluate(value_expr, ctx)?;
                local.insert(name.value.as_str(), string(&value, value_expr.span, "Fn::Sub")?);
            }
            let mut out = String::new();
            for part in template {
                match part {
                    SubPart::Literal(text) => out.push_str(text),
                    SubPart::Variable(name) => {
                        if let Some(value) = local.get(name.value.as_str()) {
                            out.push_str(value);
                        } else {
                            let value = reference(sub_reference(&name.value, name.span), ctx)?;
                            out.push_str(&string(&value, name.span, "Fn::Sub")?);
                        }
                    }
                }
            }
            Value::String(out)
        }
        ExprKind::ImportValue(name) => {
            let name = string(&evaluate(name, ctx)?, name.span, "Fn::ImportValue")?;
            ctx.import(&name)
                .ok_or_else(|| EvalError::new(span, EvalErrorKind::MissingImport { name }))?
        }
        ExprKind::Join { delimiter, list } => {
            let items = list_of_strings(&evaluate(list, ctx)?, list.span, "Fn::Join")?;
            Value::String(items.join(delimiter))
        }
        ExprKind::Select { index, list } => {
            let index_value = evaluate(index, ctx)?;
            let index_number = index_value
                .as_scalar_text()
                .and_then(|text| text.parse::<usize>().ok())
                .ok_or_else(|| {
                    EvalError::wrong_type(
                        index.span,
                        "Fn::Select",
                        "a whole number from 0",
                        &index_value,
                    )
                })?;
            match evaluate(list, ctx)? {
                Value::List(items) => {
                    let len = items.len();
                    items.into_iter().nth(index_number).ok_or_else(|| {
                        EvalError::new(
                            span,
                            EvalErrorKind::IndexOutOfRange { index: index_number, len },
                        )
                    })?
                }
                other => {
                    return Err(EvalError::wrong_type(list.span, "Fn::Select", "a list", &other));
                }
            }
        }
        ExprKind::Split { delimiter, source } => {
            let text = string(&evaluate(source, ctx)?, source.span, "Fn::Split")?;
            Value::strings(text.split(delimiter.as_str()))
        }
        ExprKind::If { condition, then, otherwise } => {
            let holds = ctx.condition(&condition.value).ok_or_else(|| {
                EvalError::new(
                    condition.span,
                    EvalErrorKind::MissingCondition { name: condition.value.clone() },
                )
            })?;
            evaluate(if holds { then } else { otherwise }, ctx)?
        }
        ExprKind::Equals(left, right) => {
            let (left, right) = (evaluate(left, ctx)?, evaluate(right, ctx)?);
            let equal = match (left.as_scalar_text(), right.as_scalar_text()) {
                (Some(left), Some(right)) => left == right,
                _ => left == right,
            };
            Value::Bool(equal)
        }
        ExprKind::Not(condition) => Value::Bool(!truth(condition, ctx, "Fn::Not")?),
        ExprKind::And(conditions) => {
            let mut all = true;
            for condition in conditions {
                all &= truth(condition, ctx, "Fn::And")?;
            }
            Value::Bool(all)
        }
        ExprKind::Or(conditions) => {
            let mut any = false;
            for condition in conditions {
                any |= truth(condition, ctx, "Fn::Or")?;
            }
            Value::Bool(any)
        }
        ExprKind::Condition(name) => Value::Bool(ctx.condition(&name.value).ok_or_else(|| {
            EvalError::new(name.span, EvalErrorKind::MissingCondition { name: name.value.clone() })
        })?),
        ExprKind::Base64(inner) => {
            let text = string(&evaluate(inner, ctx)?, inner.span, "Fn::Base64")?;
            Value::String(base64::engine::general_purpose::STANDARD.encode(text))
        }
        ExprKind::GetAzs(region) => {
            let mut region_name = string(&evaluate(region, ctx)?, region.span, "Fn::GetAZs")?;
            if region_name.is_empty() {
                region_name = ctx
                    .pseudo_parameter("AWS::Region")
                    .and_then(|value| value.as_scalar_text())
                    .ok_or_else(|| {
                        EvalError::new(
                            span,
                            EvalErrorKind::MissingReference { name: "AWS::Region".to_owned() },
                        )
                    })?;
            }
            Value::strings(ctx.availability_zones(&region_name))
        }
        ExprKind::FindInMap { map, top_key, second_key } => {
            let map = string(&evaluate(map, ctx)?, map.span, "Fn::FindInMap")?;
            let top_key = string(&evaluate(top_key, ctx)?, top_key.span, "Fn::FindInMap")?;
            let second_key = string(&evaluate(second_key, ctx)?, second_key.span, "Fn::FindInMap")?;
            match ctx.mapping(&map, &top_key, &second_key) {
                Some(value) => value,
                None => {
                    return Err(EvalError::new(
                        span,
                        EvalErrorKind::MissingMapping { map, top_key, second_key },
                    ));
                }
            }
        }
    })
}

fn reference(reference: Reference<'_>, ctx: &dyn EvalContext) -> Result<Value, EvalError> {
    let span = reference.span();
    match reference {
        Reference::Ref("AWS::NoValue", _) => Ok(Value::NoValue),
        Reference::Ref(name, _) => {
            let value = if is_pseudo_parameter(name) {
                ctx.pseudo_parameter(name)
            } else {
                ctx.parameter(name).or_else(|| ctx.resource_ref(name))
            };
            value.ok_or_else(|| {
                EvalError::new(span, EvalErrorKind::MissingReference { name: name.to_owned() })
            })
        }
        Reference::GetAtt { resource, attribute, .. } => {
            ctx.resource_attribute(resource, attribute).ok_or_else(|| {
                EvalError::new(
                    span,
                    EvalErrorKind::MissingAttribute {
                        resource: resource.to_owned(),
                        attribute: attribute.to_owned(),
                    },
                )
            })
        }
    }
}

fn string(value: &Value, span: Span, function: &'static str) -> Result<String, EvalError> {
    if *value == Value::NoValue {
        return Err(EvalError::new(span, EvalErrorKind::NoValueNotAllowed { function }));
    }
    value.as_scalar_text().ok_or_else(|| EvalError::wrong_type(span, function, "a string", value))
}

fn list_of_strings(
    value: &Value,
    span: Span,
    function: &'static str,
) -> Result<Vec<String>, EvalError> {
    match value {
        Value::List(items) => items.iter().map(|item| string(item, span, function)).collect(),
        other => Err(EvalError::wrong_type(span, function, "a list of strings", other)),
    }
}

fn truth(
    condition: &Expr,
    ctx: &dyn EvalContext,
    function: &'static str,
) -> Result<bool, EvalError> {
    match evaluate(condition, ctx)? {
        Value::Bool(value) => Ok(value),
        Value::String(text) if text == "true" => Ok(true),
        Value::String(text) if text == "false" => Ok(false),
        other => Err(EvalError::wrong_type(condition.span, function, "a condition", &other)),
    }
}

/// Evaluates every condition of `template`, each after the conditions it
/// names; `ctx.condition` is not asked.
///
/// # Errors
/// Returns the first evaluation error, or a cycle among conditions (which
/// [`crate::cloudformation::parse_template`] already refuses).
pub fn evaluate_conditions(
    template: &Template,
    ctx: &dyn EvalContext,
) -> Result<BTreeMap<String, bool>, EvalError> {
    let mut done = BTreeMap::new();
    for name in template.conditions.keys() {
        let mut visiting = BTreeSet::new();
        condition_truth(template, ctx, name, &mut done, &mut visiting)?;
    }
    Ok(done)
}

fn condition_truth(
    template: &Template,
    ctx: &dyn EvalContext,
    name: &str,
    done: &mut BTreeMap<String, bool>,
    visiting: &mut BTreeSet<String>,
) -> Result<(), EvalError> {
    if done.contains_key(name) {
        return Ok(());
    }
    let Some(condition) = template.conditions.get(name) else { return Ok(()) };
    if !visiting.insert(name.to_owned()) {
        let names: Vec<&str> = visiting.iter().map(String::as_str).collect();
        return Err(EvalError::new(
            condition.span,
            EvalErrorKind::ConditionCycle { names: names.join(", ") },
        ));
    }
    let mut named = Vec::new();
    condition.expr.walk(&mut |expr| {
        if let ExprKind::Condition(other) = &expr.kind {
            named.push(other.value.clone());
        }
    });
    for other in named {
        condition_truth(template, ctx, &other, done, visiting)?;
    }
    let layered = WithConditions { inner: ctx, conditions: done };
    let value = truth(&condition.expr, &layered, "Conditions")?;
    visiting.remove(name);
    done.insert(name.to_owned(), value);
    Ok(())
}

/// A context whose conditions come from `conditions`.
struct WithConditions<'a> {
    inner: &'a dyn EvalContext,
    conditions: &'a BTreeMap<String, bool>,
}

impl EvalContext for WithConditions<'_> {
    fn parameter(&self, name: &str) -> Option<Value> {
        self.inner.parameter(name)
    }
    fn pseudo_parameter(&self, name: &str) -> Option<Value> {
        self.inner.pseudo_parameter(name)
    }
    fn condition(&self, name: &str) -> Option<bool> {
        self.conditions.get(name).copied()
    }
    fn mapping(&self, map: &str, top_key: &str, second_key: &str) -> Option<Value> {
        self.inner.mapping(map, top_key, second_key)
    }
    fn resource_ref(&self, resource: &str) -> Option<Value> {
        self.inner.resource_ref(resource)
    }
    fn resource_attribute(&self, resource: &str, attribute: &str) -> Option<Value> {
        self.inner.resource_attribute(resource, attribute)
    }
    fn import(&self, name: &str) -> Option<Value> {
        self.inner.import(name)
    }
    fn availability_zones(&self, region: &str) -> Vec<String> {
        self.inner.availability_zones(region)
    }
}

/// An [`EvalContext`] made of plain maps, for callers that have everything at
/// hand, and for tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StaticContext {
    pub parameters: BTreeMap<String, Value>,
    /// Keyed by full name, like `AWS::Region`.
    pub pseudo_parameters: BTreeMap<String, Value>,
    pub conditions: BTreeMap<String, bool>,
    /// `map -> top key -> second key -> value`.
    pub mappings: BTreeMap<String, BTreeMap<String, BTreeMap<String, Value>>>,
    pub resource_refs: BTreeMap<String, Value>,
    /// Keyed by `(resource, attribute)`.
    pub resource_attributes: BTreeMap<(String, String), Value>,
    pub imports: BTreeMap<String, Value>,
    /// Keyed by region.
    pub availability_zones: BTreeMap<String, Vec<String>>,
}

impl StaticContext {
    /// A context with `template`'s mappings evaluated (they hold literals
    /// only) and parameter values typed by their declarations: list types
    /// are split at commas.
    pub fn for_template(
        template: &Template,
        parameter_values: &BTreeMap<String, String>,
    ) -> StaticContext {
        let empty = StaticContext::default();
        let mut ctx = StaticContext::default();
        for (name, mapping) in &template.mappings {
            let mut tops = BTreeMap::new();
            for (top_key, entries) in &mapping.entries {
                let mut seconds = BTreeMap::new();
                for (second_key, expr) in entries {
                    if let Ok(value) = evaluate(expr, &empty) {
                        seconds.insert(second_key.clone(), value);
                    }
                }
                tops.insert(top_key.clone(), seconds);
            }
            ctx.mappings.insert(name.clone(), tops);
        }
        for (name, text) in parameter_values {
            let value = match template.parameters.get(name) {
                Some(parameter) if parameter.parameter_type.is_list() => {
                    Value::strings(text.split(',').map(str::trim))
                }
                _ => Value::String(text.clone()),
            };
            ctx.parameters.insert(name.clone(), value);
        }
        ctx
    }
}

impl EvalContext for StaticContext {
    fn parameter(&self, name: &str) -> Option<Value> {
        self.parameters.get(name).cloned()
    }
    fn pseudo_parameter(&self, name: &str) -> Option<Value> {
        self.pseudo_parameters.get(name).cloned()
    }
    fn condition(&self, name: &str) -> Option<bool> {
        self.conditions.get(name).copied()
    }
    fn mapping(&self, map: &str, top_key: &str, second_key: &str) -> Option<Value> {
        self.mappings.get(map)?.get(top_key)?.get(second_key).cloned()
    }
    fn resource_ref(&self, resource: &str) -> Option<Value> {
        self.resource_refs.get(resource).cloned()
    }
    fn resource_attribute(&self, resource: &str, attribute: &str) -> Option<Value> {
        self.resource_attributes.get(&(resource.to_owned(), attribute.to_owned())).cloned()
    }
    fn import(&self, name: &str) -> Option<Value> {
        self.imports.get(name).cloned()
    }
    fn availability_zones(&self, region: &str) -> Vec<String> {
        self.availability_zones.get(region).cloned().unwrap_or_default()
    }
}
