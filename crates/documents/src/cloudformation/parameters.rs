//! Parameter values for a stack: given values, previous values and defaults,
//! checked against each parameter's constraints.
//!
//! Design note: a parameter that is neither given nor marked
//! `UsePreviousValue` keeps its previous value when there is one, and only
//! then falls back to the default. CloudFormation resets it to the default,
//! which silently undoes earlier choices (the lab's `UpdateStack` call does
//! exactly that); keeping the previous value is the deliberate difference.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::cloudformation::document::{Parameter, ParameterType, Template};

/// A parameter value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{parameter}`: {problem}")]
pub struct ParameterError {
    pub parameter: String,
    pub problem: ParameterProblem,
}

/// What is wrong with a parameter value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParameterProblem {
    #[error("no value given and no default; expected a value")]
    Missing,
    #[error(
        "found a value for a parameter the template does not declare; expected one of {}",
        names(declared)
    )]
    Unknown { declared: Vec<String> },
    #[error("asked to use the previous value, but there is none; expected a value")]
    NoPreviousValue,
    #[error("found both a value and a request to use the previous value; expected one of them")]
    ValueAndPrevious,
    #[error("{0}")]
    Invalid(ValueProblem),
}

/// Why a value does not fit its parameter's declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueProblem {
    /// What was found and what was expected.
    pub message: String,
    /// The parameter's `ConstraintDescription`, if any.
    pub constraint_description: Option<String>,
}

impl fmt::Display for ValueProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(description) = &self.constraint_description {
            write!(f, " ({description})")?;
        }
        Ok(())
    }
}

fn names(names: &[String]) -> String {
    if names.is_empty() {
        return "none (the template declares no parameters)".to_owned();
    }
    names.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
}

/// The value of every parameter of `template`: the `given` value; else the
/// `previous` one (required when named in `use_previous`); else the default.
///
/// # Errors
/// Returns every problem: unknown names, missing values, and values outside
/// `AllowedValues`, `AllowedPattern`, `MinValue`/`MaxValue`,
/// `MinLength`/`MaxLength`, or not numbers for `Number` parameters.
pub fn resolve_parameters(
    template: &Template,
    given: &BTreeMap<String, String>,
    previous: Option<&BTreeMap<String, String>>,
    use_previous: &BTreeSet<String>,
) -> Result<BTreeMap<String, String>, Vec<ParameterError>> {
    let mut errors = Vec::new();
    let declared: Vec<String> = template.parameters.keys().cloned().collect();
    for name in given.keys().chain(use_previous.iter()) {
        if !template.parameters.contains_key(name)
            && !errors.iter().any(|error: &ParameterError| &error.parameter == name)
        {
            errors.push(ParameterError {
                parameter: name.clone(),
                problem: ParameterProblem::Unknown { declared: declared.clone() },
            });
        }
    }
    let mut values = BTreeMap::new();
    for (name, parameter) in &template.parameters {
        let previous_value = previous.and_then(|previous| previous.get(name));
        let value = match (given.get(name), use_previous.contains(name)) {
            (Some(_), true) => Err(ParameterProblem::ValueAndPrevious),
            (Some(value), false) => Ok(value.clone()),
            (None, true) => previous_value.cloned().ok_or(ParameterProblem::NoPreviousValue),
            (None, false) => previous_value
                .or(parameter.default.as_ref())
                .cloned()
                .ok_or(ParameterProblem::Missing),
        };
        let value =
            value.and_then(|value| match check_value(parameter, &value).into_iter().next() {
                Some(problem) => Err(ParameterProblem::Invalid(problem)),
                None => Ok(value),
            });
        match value {
            Ok(value) => {
                values.insert(name.clone(), value);
            }
            Err(problem) => errors.push(ParameterError { parameter: name.clone(), problem }),
        }
    }
    if errors.is_empty() { Ok(values) } else { Err(errors) }
}

/// Every way `value` does not fit `parameter`'s constraints. List types
/// are checked item by item.
pub fn check_value(parameter: &Parameter, value: &str) -> Vec<ValueProblem> {
    let items: Vec<&str> = if parameter.parameter_type.is_list() {
        value.split(',').map(str::trim).collect()
    } else {
        vec![value]
    };
    let mut messages = Vec::new();
    let is_number =
        matches!(parameter.parameter_type, ParameterType::Number | ParameterType::NumberList);
    // A NoEcho value is never repeated back.
    let shown = |item: &str| {
        if parameter.no_echo { "a hidden value".to_owned() } else { format!("{item:?}") }
    };
    for item in items {
        if !parameter.allowed_values.is_empty()
            && !parameter.allowed_values.iter().any(|allowed| allowed == item)
        {
            let allowed: Vec<String> =
                parameter.allowed_values.iter().map(|allowed| format!("{allowed:?}")).collect();
            messages.push(format!(
                "found {}; expected one of the allowed values {}",
                shown(item),
                allowed.join(", ")
            ));
        }
        if let Some(pattern) = &parameter.allowed_pattern
            && let Ok(regex) = regex::Regex::new(&format!("^(?:{pattern})$"))
            && !regex.is_match(item)
        {
            messages.push(format!(
                "found {}; expected a value matching the pattern {pattern:?}",
                shown(item)
            ));
        }
        if is_number {
            match item.parse::<f64>() {
                Ok(number) if number.is_finite() => {
                    if let Some(min) = parameter.min_value
                        && number < min
                    {
                        messages.push(format!("found {}; expected at least {min}", shown(item)));
                    }
                    if let Some(max) = parameter.max_value
                        && number > max
                    {
                        messages.push(format!("found {}; expected at most {max}", shown(item)));
                    }
                }
                _ => messages.push(format!("found {}; expected a number", shown(item))),
            }
        }
    }
    let length = value.chars().count() as u64;
    if let Some(min) = parameter.min_length
        && length < min
    {
        messages.push(format!("found {length} characters; expected at least {min}"));
    }
    if let Some(max) = parameter.max_length
        && length > max
    {
        messages.push(format!("found {length} characters; expected at most {max}"));
    }
    messages
        .into_iter()
        .map(|message| ValueProblem {
            message,
            constraint_description: parameter.constraint_description.clone(),
        })
        .collect()
}
