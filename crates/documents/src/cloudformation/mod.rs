//! CloudFormation templates: the frontend of stacks.
//!
//! [`parse_template`] reads a template (YAML with short-form tags, or JSON)
//! into a [`Template`] whose values are [`Expr`] trees, and validates the whole
//! of it. [`resolve_parameters`] gives a stack's parameter values,
//! [`check_values`] checks what those values make of the template before
//! anything is made, [`evaluate`] computes values against an
//! [`EvalContext`], and [`dependency_order`] gives the order to create
//! resources in. The supported resource types are data, in
//! [`resource_type`].
//!
//! Everything here is pure: the caller supplies what the world knows.

mod check;
mod document;
mod evaluate;
mod expr;
mod intrinsic;
mod order;
mod parameters;
mod policy;
mod reader;
mod types;
mod validate;

pub use check::check_values;
pub use document::{
    Assertion, Condition, DeletionPolicy, Mapping, Output, Parameter, ParameterType, Resource,
    ResourceName, Rule, Template,
};
pub use evaluate::{
    EvalContext, EvalError, EvalErrorKind, MASK, StaticContext, Value, evaluate,
    evaluate_conditions, mask_values,
};
pub use expr::{
    Expr, ExprKind, PSEUDO_PARAMETERS, Reference, Spanned, SubPart, is_pseudo_parameter,
};
pub use order::{CycleError, dependency_order, resource_dependencies};
pub use parameters::{
    ParameterError, ParameterProblem, ValueProblem, check_value, resolve_parameters,
};
pub use policy::{
    AutoScalingCreationPolicy, Chosen, CreationPolicy, IsoDuration, ReplacingUpdate,
    ResourceSignal, RollingUpdate, SCALING_PROCESSES, ScheduledActionPolicy, Setting, SettingValue,
    UpdatePolicy, parse_iso_duration,
};
pub use reader::{
    AWS_SPECIFIC_PARAMETER_TYPES, FORMAT_VERSION, Runner, parse_template, parse_template_lenient,
    parse_template_lenient_for, quota,
};
pub use types::{ResourceTypeSpec, resource_type, resource_types};

#[cfg(test)]
mod tests;
