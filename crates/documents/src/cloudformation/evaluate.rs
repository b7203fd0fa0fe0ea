//! The evaluator: an [`Expr`] and an [`EvalContext`] (what the stack knows:
//! parameter values, pseudo parameters, conditions, resources, exports) give a
//! JSON-like [`Value`].
//!
//! Design notes:
//! - Pure: the context answers every question about the world, so the same
//!   evaluator serves validation, planning and tests.
//! - One evaluator for run time and validation. The core ([`eval`]) asks a
//!   [`Lookup`]; at run time ([`evaluate`]) every answer is known or an
//!   error; while a request is validated
//!   ([`crate::cloudformation::check_values`]) what only resources will tell
//!   is [`Partial::Unknown`], with the shape it will have, so that what is
//!   wrong with the known part is found before anything is made.
//! - `Ref AWS::NoValue` gives [`Value::NoValue`]; a map entry or list item
//!   with that value is dropped, as CloudFormation removes the property. At
//!   the top (a whole property), the caller drops it.
//! - Scalars become text where a string is needed (`Fn::Join`, `Fn::Sub`...):
//!   numbers keep their spelling, booleans are `true` and `false`.
//! - A value the context says must not be shown (a `NoEcho` parameter's) is
//!   `****` in every error message ([`EvalContext::mask`]).

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
    /// The availability zones of `region`; empty for a region that has none
    /// here (locally: any but the stack's own).
    fn availability_zones(&self, region: &str) -> Vec<String>;
    /// `text` as messages may show it: every value that must not be shown
    /// (a `NoEcho` parameter's) replaced by `****`.
    fn mask(&self, text: &str) -> String;
}

/// What a masked value is shown as.
pub const MASK: &str = "****";

/// An evaluation failed at `span`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {kind}", span.start)]
pub struct EvalError {
    pub span: Span,
    pub kind: EvalErrorKind,
}

/// Why an evaluation failed. Values in the fields are masked as the context
/// says ([`EvalContext::mask`]).
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
    /// `under`: ` under `top`` for a second-level key; `expected` lists the
    /// keys there are and may end with a note.
    #[error(
        "found the key `{key}`, which mapping `{map}` does not have{under}; expected one of {expected}"
    )]
    MissingMapKey { map: String, key: String, under: String, expected: String },
    #[error("found the mapping `{map}`, which is not declared; expected {expected}")]
    UndeclaredMapping { map: String, expected: String },
    #[error(
        "found a reference to the resource `{resource}`, which is not created: its condition `{condition}` is false; expected a resource that is created, or the reference inside Fn::If [{condition}, ...]"
    )]
    NotCreated { resource: String, condition: String },
    #[error(
        "found the attribute `{attribute}` (parameter `{parameter}`) of `{resource}` ({type_name}); expected {}",
        if expected.is_empty() { "none: it has no attributes".to_owned() } else { format!("one of {}", expected.join(", ")) }
    )]
    UnknownAttribute {
        resource: String,
        attribute: String,
        parameter: String,
        type_name: &'static str,
        expected: &'static [&'static str],
    },
    #[error("found {found} in {function}; expected {expected}")]
    WrongType { function: &'static str, expected: &'static str, found: String },
    #[error(
        "found the index {index} in Fn::Select; expected an index below the list's length {len}"
    )]
    IndexOutOfRange { index: String, len: usize },
    #[error("found AWS::NoValue in {function}; it can only remove a property or list item")]
    NoValueNotAllowed { function: &'static str },
    #[error("found {value:?}; expected {expected}")]
    InvalidSetting { value: String, expected: String },
    #[error("the conditions {names} depend on each other")]
    ConditionCycle { names: String },
    #[error(
        "found the region `{region}` in Fn::GetAZs; expected the stack's region{} or \"\": availability zones exist locally for the stack's region only",
        stack_region.as_ref().map(|name| format!(" `{name}`")).unwrap_or_default()
    )]
    OtherRegion { region: String, stack_region: Option<String> },
    #[error("found {found} in Fn::Cidr; expected {expected}")]
    Cidr { found: String, expected: String },
    #[error("found a value that is known only once resources exist")]
    NotKnownYet,
}

impl EvalError {
    pub(crate) fn new(span: Span, kind: EvalErrorKind) -> EvalError {
        EvalError { span, kind }
    }
}

/// A value while it is evaluated: known, or (while validating) known only
/// once resources exist.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Partial {
    Known(Value),
    /// A list whose items are all there, some of them not known yet.
    List(Vec<Partial>),
    /// Not known yet; it will have this shape.
    Unknown(Shape),
}

/// What a value not known yet will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Anything, `AWS::NoValue` included.
    Any,
    String,
    List,
    Map,
    /// A condition's truth.
    Bool,
}

impl Partial {
    /// A list of `items` (`AWS::NoValue` ones already dropped).
    fn list(items: Vec<Partial>) -> Partial {
        if items.iter().all(|item| matches!(item, Partial::Known(_))) {
            return Partial::Known(Value::List(
                items
                    .into_iter()
                    .filter_map(|item| match item {
                        Partial::Known(value) => Some(value),
                        _ => None,
                    })
                    .collect(),
            ));
        }
        // An item that may turn out to be AWS::NoValue leaves the length open.
        if items.iter().any(|item| matches!(item, Partial::Unknown(Shape::Any))) {
            return Partial::Unknown(Shape::List);
        }
        Partial::List(items)
    }

    /// What the value is, for messages; `mask` hides what must not be shown.
    pub(crate) fn describe(&self, mask: &dyn Fn(&str) -> String) -> String {
        match self {
            Partial::Known(value) => describe(value, mask),
            Partial::List(_) | Partial::Unknown(Shape::List) => "a list".to_owned(),
            Partial::Unknown(Shape::String) => "a string".to_owned(),
            Partial::Unknown(Shape::Map) => "a map".to_owned(),
            Partial::Unknown(Shape::Bool) => "a condition's truth value".to_owned(),
            Partial::Unknown(Shape::Any) => "a value".to_owned(),
        }
    }
}

/// [`Value::describe`], with the texts of strings and numbers masked.
pub(crate) fn describe(value: &Value, mask: &dyn Fn(&str) -> String) -> String {
    match value {
        Value::String(text) => format!("the string {:?}", mask(text)),
        Value::Number(text) => format!("the number {}", mask(text)),
        other => other.describe(),
    }
}

/// What the evaluator asks: at run time a stack's [`EvalContext`]
/// ([`Running`]), while validating what is known before anything is made.
pub(crate) trait Lookup {
    /// `Ref` of a parameter, resource or pseudo parameter (not
    /// `AWS::NoValue`).
    fn reference(&self, name: &str, span: Span) -> Result<Partial, EvalError>;
    /// `Fn::GetAtt`; `attribute` is `None` when a parameter names it and its
    /// value is not known; `by_parameter` when a parameter names it.
    fn attribute(
        &self,
        resource: &str,
        attribute: Option<&str>,
        by_parameter: Option<&str>,
        span: Span,
    ) -> Result<Partial, EvalError>;
    /// A condition's truth; `None` while it is not known.
    fn condition(&self, name: &str, span: Span) -> Result<Option<bool>, EvalError>;
    /// `Fn::FindInMap` with its three keys known; `call` is the whole call.
    fn mapping(
        &self,
        map: &str,
        top_key: &str,
        second_key: &str,
        call: &Expr,
    ) -> Result<Partial, EvalError>;
    fn import(&self, name: &str, span: Span) -> Result<Partial, EvalError>;
    /// What `AWS::Region` gives, if known.
    fn region(&self) -> Option<String>;
    fn zones(&self, region: &str) -> Vec<String>;
    /// A thing the evaluator needs is missing: the error at run time, a value
    /// of `shape` not known yet while validating.
    fn missing(&self, error: EvalError, shape: Shape) -> Result<Partial, EvalError>;
    fn mask(&self, text: &str) -> String;
}

/// The lookup of run time: the stack's context answers everything.
pub(crate) struct Running<'a>(pub(crate) &'a dyn EvalContext);

impl Lookup for Running<'_> {
    fn reference(&self, name: &str, span: Span) -> Result<Partial, EvalError> {
        let ctx = self.0;
        let value = if is_pseudo_parameter(name) {
            ctx.pseudo_parameter(name)
        } else {
            ctx.parameter(name).or_else(|| ctx.resource_ref(name))
        };
        value.map(Partial::Known).ok_or_else(|| {
            EvalError::new(span, EvalErrorKind::MissingReference { name: name.to_owned() })
        })
    }

    fn attribute(
        &self,
        resource: &str,
        attribute: Option<&str>,
        _by_parameter: Option<&str>,
        span: Span,
    ) -> Result<Partial, EvalError> {
        let attribute = attribute.unwrap_or_default();
        self.0.resource_attribute(resource, attribute).map(Partial::Known).ok_or_else(|| {
            EvalError::new(
                span,
                EvalErrorKind::MissingAttribute {
                    resource: resource.to_owned(),
                    attribute: self.0.mask(attribute),
                },
            )
        })
    }

    fn condition(&self, name: &str, span: Span) -> Result<Option<bool>, EvalError> {
        match self.0.condition(name) {
            Some(holds) => Ok(Some(holds)),
            None => {
                Err(EvalError::new(span, EvalErrorKind::MissingCondition { name: name.to_owned() }))
            }
        }
    }

    fn mapping(
        &self,
        map: &str,
        top_key: &str,
        second_key: &str,
        call: &Expr,
    ) -> Result<Partial, EvalError> {
        self.0.mapping(map, top_key, second_key).map(Partial::Known).ok_or_else(|| {
            EvalError::new(
                call.span,
                EvalErrorKind::MissingMapping {
                    map: self.0.mask(map),
                    top_key: self.0.mask(top_key),
                    second_key: self.0.mask(second_key),
                },
            )
        })
    }

    fn import(&self, name: &str, span: Span) -> Result<Partial, EvalError> {
        self.0.import(name).map(Partial::Known).ok_or_else(|| {
            EvalError::new(span, EvalErrorKind::MissingImport { name: self.0.mask(name) })
        })
    }

    fn region(&self) -> Option<String> {
        self.0.pseudo_parameter("AWS::Region").and_then(|value| value.as_scalar_text())
    }

    fn zones(&self, region: &str) -> Vec<String> {
        self.0.availability_zones(region)
    }

    fn missing(&self, error: EvalError, _shape: Shape) -> Result<Partial, EvalError> {
        Err(error)
    }

    fn mask(&self, text: &str) -> String {
        self.0.mask(text)
    }
}

/// Evaluates `expr`.
///
/// # Errors
/// Returns the first problem met: a name the context does not know, an
/// argument of the wrong kind, an index out of range. Values the context
/// masks are `****` in the error.
pub fn evaluate(expr: &Expr, ctx: &dyn EvalContext) -> Result<Value, EvalError> {
    match eval(expr, &Running(ctx))? {
        Partial::Known(value) => Ok(value),
        // The run-time lookup knows every value or fails.
        Partial::List(_) | Partial::Unknown(_) => {
            Err(EvalError::new(expr.span, EvalErrorKind::NotKnownYet))
        }
    }
}

/// Evaluates `expr` against `lookup`.
pub(crate) fn eval(expr: &Expr, lookup: &dyn Lookup) -> Result<Partial, EvalError> {
    let span = expr.span;
    let known = Partial::Known;
    Ok(match &expr.kind {
        ExprKind::Null => known(Value::Null),
        ExprKind::Bool(value) => known(Value::Bool(*value)),
        ExprKind::Number(text) => known(Value::Number(text.clone())),
        ExprKind::String(text) => known(Value::String(text.clone())),
        ExprKind::List(items) => {
            let mut values = Vec::new();
            for item in items {
                match eval(item, lookup)? {
                    Partial::Known(Value::NoValue) => {}
                    value => values.push(value),
                }
            }
            Partial::list(values)
        }
        ExprKind::Map(entries) => {
            let mut values = BTreeMap::new();
            let mut all_known = true;
            for (key, value) in entries {
                match eval(value, lookup)? {
                    Partial::Known(Value::NoValue) => {}
                    Partial::Known(value) => {
                        values.entry(key.value.clone()).or_insert(value);
                    }
                    Partial::List(_) | Partial::Unknown(_) => all_known = false,
                }
            }
            if all_known { known(Value::Map(values)) } else { Partial::Unknown(Shape::Map) }
        }
        ExprKind::Ref(name) => reference(Reference::Ref(&name.value, name.span), lookup)?,
        ExprKind::GetAtt { resource, attribute } => {
            lookup.attribute(&resource.value, Some(&attribute.value), None, span)?
        }
        ExprKind::GetAttByParameter { resource, parameter } => {
            let value = lookup.reference(&parameter.value, parameter.span)?;
            let attribute = text(value, parameter.span, "Fn::GetAtt", lookup)?;
            lookup.attribute(&resource.value, attribute.as_deref(), Some(&parameter.value), span)?
        }
        ExprKind::Sub { template, variables } => {
            let mut local = BTreeMap::new();
            for (name, value_expr) in variables {
                let value = eval(value_expr, lookup)?;
                local.insert(name.value.as_str(), text(value, value_expr.span, "Fn::Sub", lookup)?);
            }
            let mut out = Some(String::new());
            for part in template {
                let piece = match part {
                    SubPart::Literal(text) => Some(text.clone()),
                    SubPart::Variable(name) => match local.get(name.value.as_str()) {
                        Some(value) => value.clone(),
                        None => {
                            let value = reference(sub_reference(&name.value, name.span), lookup)?;
                            text(value, name.span, "Fn::Sub", lookup)?
                        }
                    },
                };
                out = out.zip(piece).map(|(out, piece)| out + &piece);
            }
            out.map_or(Partial::Unknown(Shape::String), |out| known(Value::String(out)))
        }
        ExprKind::ImportValue(name) => {
            match text(eval(name, lookup)?, name.span, "Fn::ImportValue", lookup)? {
                Some(name) => lookup.import(&name, span)?,
                None => Partial::Unknown(Shape::String),
            }
        }
        ExprKind::Join { delimiter, list } => {
            match strings(eval(list, lookup)?, list.span, "Fn::Join", lookup)? {
                Some(items) => known(Value::String(items.join(delimiter))),
                None => Partial::Unknown(Shape::String),
            }
        }
        ExprKind::Select { index, list } => {
            let index_value = eval(index, lookup)?;
            let index_number = match index_value {
                Partial::Known(value) => {
                    let number = value.as_scalar_text().and_then(|text| text.parse::<usize>().ok());
                    Some(number.ok_or_else(|| {
                        wrong_type(
                            index.span,
                            "Fn::Select",
                            "a whole number from 0",
                            &Partial::Known(value),
                            lookup,
                        )
                    })?)
                }
                Partial::Unknown(Shape::String | Shape::Any) => None,
                other => {
                    return Err(wrong_type(
                        index.span,
                        "Fn::Select",
                        "a whole number from 0",
                        &other,
                        lookup,
                    ));
                }
            };
            let items = match eval(list, lookup)? {
                Partial::Known(Value::List(values)) => {
                    Some(values.into_iter().map(Partial::Known).collect::<Vec<_>>())
                }
                Partial::List(items) => Some(items),
                Partial::Unknown(Shape::List | Shape::Any) => None,
                other => return Err(wrong_type(list.span, "Fn::Select", "a list", &other, lookup)),
            };
            match (index_number, items) {
                (Some(number), Some(items)) => {
                    let len = items.len();
                    items.into_iter().nth(number).ok_or_else(|| {
                        EvalError::new(
                            span,
                            EvalErrorKind::IndexOutOfRange {
                                index: lookup.mask(&number.to_string()),
                                len,
                            },
                        )
                    })?
                }
                _ => Partial::Unknown(Shape::Any),
            }
        }
        ExprKind::Split { delimiter, source } => {
            match text(eval(source, lookup)?, source.span, "Fn::Split", lookup)? {
                Some(text) => known(Value::strings(text.split(delimiter.as_str()))),
                None => Partial::Unknown(Shape::List),
            }
        }
        ExprKind::If { condition, then, otherwise } => {
            match lookup.condition(&condition.value, condition.span)? {
                Some(true) => eval(then, lookup)?,
                Some(false) => eval(otherwise, lookup)?,
                None => Partial::Unknown(Shape::Any),
            }
        }
        ExprKind::Equals(left, right) => {
            let (left, right) = (eval(left, lookup)?, eval(right, lookup)?);
            match (left, right) {
                (Partial::Known(left), Partial::Known(right)) => {
                    let equal = match (left.as_scalar_text(), right.as_scalar_text()) {
                        (Some(left), Some(right)) => left == right,
                        _ => left == right,
                    };
                    known(Value::Bool(equal))
                }
                _ => Partial::Unknown(Shape::Bool),
            }
        }
        ExprKind::Not(condition) => match truth(condition, lookup, "Fn::Not")? {
            Some(holds) => known(Value::Bool(!holds)),
            None => Partial::Unknown(Shape::Bool),
        },
        ExprKind::And(conditions) | ExprKind::Or(conditions) => {
            let is_and = matches!(expr.kind, ExprKind::And(_));
            let function = if is_and { "Fn::And" } else { "Fn::Or" };
            let mut truths = Vec::new();
            for condition in conditions {
                truths.push(truth(condition, lookup, function)?);
            }
            // And: one false decides; Or: one true does.
            if truths.contains(&Some(!is_and)) {
                known(Value::Bool(!is_and))
            } else if truths.contains(&None) {
                Partial::Unknown(Shape::Bool)
            } else {
                known(Value::Bool(is_and))
            }
        }
        ExprKind::Condition(name) => match lookup.condition(&name.value, name.span)? {
            Some(holds) => known(Value::Bool(holds)),
            None => Partial::Unknown(Shape::Bool),
        },
        ExprKind::Base64(inner) => {
            match text(eval(inner, lookup)?, inner.span, "Fn::Base64", lookup)? {
                Some(text) => {
                    known(Value::String(base64::engine::general_purpose::STANDARD.encode(text)))
                }
                None => Partial::Unknown(Shape::String),
            }
        }
        ExprKind::GetAzs(region) => {
            let Some(mut name) = text(eval(region, lookup)?, region.span, "Fn::GetAZs", lookup)?
            else {
                return Ok(Partial::Unknown(Shape::List));
            };
            let stack_region = lookup.region();
            if name.is_empty() {
                let Some(stack_region) = &stack_region else {
                    let missing =
                        EvalErrorKind::MissingReference { name: "AWS::Region".to_owned() };
                    return lookup.missing(EvalError::new(span, missing), Shape::List);
                };
                name.clone_from(stack_region);
            }
            let zones = lookup.zones(&name);
            if zones.is_empty() {
                return Err(EvalError::new(
                    region.span,
                    EvalErrorKind::OtherRegion { region: lookup.mask(&name), stack_region },
                ));
            }
            known(Value::strings(zones))
        }
        ExprKind::FindInMap { map, top_key, second_key } => {
            let map_name = text(eval(map, lookup)?, map.span, "Fn::FindInMap", lookup)?;
            let top = text(eval(top_key, lookup)?, top_key.span, "Fn::FindInMap", lookup)?;
            let second = text(eval(second_key, lookup)?, second_key.span, "Fn::FindInMap", lookup)?;
            match (map_name, top, second) {
                (Some(map_name), Some(top), Some(second)) => {
                    lookup.mapping(&map_name, &top, &second, expr)?
                }
                _ => Partial::Unknown(Shape::Any),
            }
        }
        ExprKind::Cidr { ip_block, count, cidr_bits } => {
            let block = text(eval(ip_block, lookup)?, ip_block.span, "Fn::Cidr", lookup)?;
            let number = text(eval(count, lookup)?, count.span, "Fn::Cidr", lookup)?;
            let bits = text(eval(cidr_bits, lookup)?, cidr_bits.span, "Fn::Cidr", lookup)?;
            match (block, number, bits) {
                (Some(block), Some(number), Some(bits)) => {
                    let blocks = cidr_blocks(&block, &number, &bits).map_err(|problem| {
                        let at = match problem.argument {
                            0 => ip_block.span,
                            1 => count.span,
                            _ => cidr_bits.span,
                        };
                        EvalError::new(
                            at,
                            EvalErrorKind::Cidr {
                                found: lookup.mask(&problem.found),
                                expected: problem.expected,
                            },
                        )
                    })?;
                    known(Value::strings(blocks))
                }
                _ => Partial::Unknown(Shape::List),
            }
        }
        ExprKind::Contains { list, value } | ExprKind::EachMemberEquals { list, value } => {
            let function = expr.kind.function_name().unwrap_or_default();
            let items = strings(eval(list, lookup)?, list.span, function, lookup)?;
            let value = text(eval(value, lookup)?, value.span, function, lookup)?;
            match (items, value) {
                (Some(items), Some(value)) => {
                    known(Value::Bool(if matches!(expr.kind, ExprKind::Contains { .. }) {
                        items.contains(&value)
                    } else {
                        items.iter().all(|item| *item == value)
                    }))
                }
                _ => Partial::Unknown(Shape::Bool),
            }
        }
        ExprKind::EachMemberIn { list, allowed } => {
            let function = "Fn::EachMemberIn";
            let items = strings(eval(list, lookup)?, list.span, function, lookup)?;
            let allowed = strings(eval(allowed, lookup)?, allowed.span, function, lookup)?;
            match (items, allowed) {
                (Some(items), Some(allowed)) => {
                    known(Value::Bool(items.iter().all(|item| allowed.contains(item))))
                }
                _ => Partial::Unknown(Shape::Bool),
            }
        }
    })
}

fn reference(reference: Reference<'_>, lookup: &dyn Lookup) -> Result<Partial, EvalError> {
    match reference {
        Reference::Ref("AWS::NoValue", _) => Ok(Partial::Known(Value::NoValue)),
        Reference::Ref(name, span) => lookup.reference(name, span),
        Reference::GetAtt { resource, attribute, span } => {
            lookup.attribute(resource, attribute, None, span)
        }
    }
}

fn wrong_type(
    span: Span,
    function: &'static str,
    expected: &'static str,
    found: &Partial,
    lookup: &dyn Lookup,
) -> EvalError {
    EvalError::new(
        span,
        EvalErrorKind::WrongType {
            function,
            expected,
            found: found.describe(&|text| lookup.mask(text)),
        },
    )
}

/// The text of a single value; `None` when it is not known yet.
fn text(
    value: Partial,
    span: Span,
    function: &'static str,
    lookup: &dyn Lookup,
) -> Result<Option<String>, EvalError> {
    match value {
        Partial::Known(Value::NoValue) => {
            Err(EvalError::new(span, EvalErrorKind::NoValueNotAllowed { function }))
        }
        Partial::Known(known) => match known.as_scalar_text() {
            Some(text) => Ok(Some(text)),
            None => Err(wrong_type(span, function, "a string", &Partial::Known(known), lookup)),
        },
        Partial::Unknown(Shape::String | Shape::Any | Shape::Bool) => Ok(None),
        other => Err(wrong_type(span, function, "a string", &other, lookup)),
    }
}

/// The texts of a list of single values; `None` when some are not known yet.
fn strings(
    value: Partial,
    span: Span,
    function: &'static str,
    lookup: &dyn Lookup,
) -> Result<Option<Vec<String>>, EvalError> {
    let items = match value {
        Partial::Known(Value::List(items)) => items.into_iter().map(Partial::Known).collect(),
        Partial::List(items) => items,
        Partial::Unknown(Shape::List | Shape::Any) => return Ok(None),
        other => return Err(wrong_type(span, function, "a list of strings", &other, lookup)),
    };
    let mut texts = Some(Vec::new());
    for item in items {
        let item = text(item, span, function, lookup)?;
        texts = texts.zip(item).map(|(mut texts, item)| {
            texts.push(item);
            texts
        });
    }
    Ok(texts)
}

/// The truth of a condition; `None` while it is not known.
fn truth(
    condition: &Expr,
    lookup: &dyn Lookup,
    function: &'static str,
) -> Result<Option<bool>, EvalError> {
    match eval(condition, lookup)? {
        Partial::Known(Value::Bool(value)) => Ok(Some(value)),
        Partial::Known(Value::String(text)) if text.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Partial::Known(Value::String(text)) if text.eq_ignore_ascii_case("false") => {
            Ok(Some(false))
        }
        Partial::Unknown(Shape::Bool | Shape::Any) => Ok(None),
        other => Err(wrong_type(condition.span, function, "a condition", &other, lookup)),
    }
}

/// Why `Fn::Cidr` cannot make its blocks: which argument (0 to 2), what was
/// found and what was expected.
struct CidrProblem {
    argument: usize,
    found: String,
    expected: String,
}

/// `count` blocks of `bits` host bits each, from the start of `block`
/// (IPv4 or IPv6), in address order.
fn cidr_blocks(block: &str, count: &str, bits: &str) -> Result<Vec<String>, CidrProblem> {
    let problem = |argument: usize, found: &str, expected: &str| CidrProblem {
        argument,
        found: format!("{found:?}"),
        expected: expected.to_owned(),
    };
    let (address, prefix) = block
        .split_once('/')
        .and_then(|(address, prefix)| {
            let address = address.parse::<std::net::IpAddr>().ok()?;
            let prefix = prefix.parse::<u32>().ok()?;
            let width = if address.is_ipv4() { 32 } else { 128 };
            (prefix <= width).then_some((address, prefix))
        })
        .ok_or_else(|| problem(0, block, "an address block like 10.0.0.0/16 or 2001:db8::/56"))?;
    let count = count
        .parse::<u32>()
        .ok()
        .filter(|count| (1..=256).contains(count))
        .ok_or_else(|| problem(1, count, "a count from 1 to 256"))?;
    let width: u32 = if address.is_ipv4() { 32 } else { 128 };
    let bits = bits
        .parse::<u32>()
        .ok()
        .filter(|bits| (1..=width).contains(bits))
        .ok_or_else(|| problem(2, bits, &format!("a number of host bits from 1 to {width}")))?;
    let new_prefix = width - bits;
    if new_prefix < prefix {
        return Err(problem(
            2,
            &bits.to_string(),
            &format!(
                "at most {} host bits: blocks of /{new_prefix} do not fit in a /{prefix}",
                width - prefix
            ),
        ));
    }
    let fits = 1u128.checked_shl(new_prefix - prefix).unwrap_or(u128::MAX);
    if u128::from(count) > fits {
        return Err(problem(
            1,
            &count.to_string(),
            &format!("at most {fits}: a /{prefix} holds {fits} blocks of /{new_prefix}"),
        ));
    }
    let base: u128 = match address {
        std::net::IpAddr::V4(v4) => u128::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => u128::from(v6),
    };
    let host_mask = 1u128.checked_shl(width - prefix).map_or(u128::MAX, |size| size - 1);
    let start = base & !host_mask;
    let step = 1u128.checked_shl(bits).unwrap_or(0);
    Ok((0..u128::from(count))
        .map(|index| {
            let first = start + index * step;
            let address = if width == 32 {
                std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                    u32::try_from(first).unwrap_or(u32::MAX),
                ))
            } else {
                std::net::IpAddr::V6(std::net::Ipv6Addr::from(first))
            };
            format!("{address}/{new_prefix}")
        })
        .collect())
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
    let value = truth(&condition.expr, &Running(&layered), "Conditions")?.ok_or_else(|| {
        EvalError::new(
            condition.expr.span,
            EvalErrorKind::MissingCondition { name: name.to_owned() },
        )
    })?;
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
    fn mask(&self, text: &str) -> String {
        self.inner.mask(text)
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
    /// Values never shown in messages: those of `NoEcho` parameters (the
    /// whole value and, for list types, each item).
    pub hidden: BTreeSet<String>,
}

impl StaticContext {
    /// A context with `template`'s mappings evaluated (they hold literals
    /// only) and parameter values typed by their declarations: list types
    /// are split at commas. The values of `NoEcho` parameters are hidden.
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
            let declared = template.parameters.get(name);
            let is_list = declared.is_some_and(|parameter| parameter.parameter_type.is_list());
            let value = if is_list {
                Value::strings(text.split(',').map(str::trim))
            } else {
                Value::String(text.clone())
            };
            if declared.is_some_and(|parameter| parameter.no_echo) {
                ctx.hidden.insert(text.clone());
                if let Value::List(items) = &value {
                    ctx.hidden.extend(items.iter().filter_map(Value::as_scalar_text));
                }
            }
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
    fn mask(&self, text: &str) -> String {
        mask_values(text, self.hidden.iter().map(String::as_str))
    }
}

/// `text` with every occurrence of each of `hidden` (empty ones aside)
/// replaced by [`MASK`], longest first.
pub fn mask_values<'a>(text: &str, hidden: impl Iterator<Item = &'a str>) -> String {
    let mut hidden: Vec<&str> = hidden.filter(|value| !value.is_empty()).collect();
    hidden.sort_by_key(|value| std::cmp::Reverse(value.len()));
    let mut masked = text.to_owned();
    for value in hidden {
        masked = masked.replace(value, MASK);
    }
    masked
}
