//! A parsed CloudFormation template: its sections as typed values, template
//! values as [`Expr`] trees, every part with its source span.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;

use crate::cloudformation::expr::{Expr, Spanned};
use crate::cloudformation::policy::{Chosen, CreationPolicy, UpdatePolicy};
use crate::source::Span;

/// A resource's logical id, like `Pattern3ALB`: letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceName(pub String);

impl ResourceName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for ResourceName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ResourceName {
    fn from(name: &str) -> ResourceName {
        ResourceName(name.to_owned())
    }
}

/// A whole template. Sections are keyed by logical name; document order is
/// in the spans.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// `AWSTemplateFormatVersion`; only `2010-09-09` exists.
    pub format_version: Option<String>,
    pub description: Option<String>,
    pub metadata: Option<Expr>,
    pub parameters: BTreeMap<String, Parameter>,
    pub mappings: BTreeMap<String, Mapping>,
    pub conditions: BTreeMap<String, Condition>,
    /// `Rules`: assertions on the parameter values, checked before anything
    /// is made ([`crate::cloudformation::check_values`]).
    pub rules: BTreeMap<String, Rule>,
    /// Never empty: a template declares at least one resource.
    pub resources: BTreeMap<ResourceName, Resource>,
    pub outputs: BTreeMap<String, Output>,
}

/// A declared parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    pub name: String,
    /// The parameter's key.
    pub span: Span,
    pub parameter_type: ParameterType,
    pub default: Option<String>,
    pub allowed_values: Vec<String>,
    /// As written; matched against the whole value.
    pub allowed_pattern: Option<String>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    /// The value is masked wherever it is shown.
    pub no_echo: bool,
    pub description: Option<String>,
    /// Shown instead of the generic message when a constraint fails.
    pub constraint_description: Option<String>,
}

/// A parameter's `Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterType {
    String,
    Number,
    /// `List<Number>`.
    NumberList,
    CommaDelimitedList,
    /// An AWS-specific type such as `AWS::EC2::VPC::Id` or
    /// `List<AWS::EC2::Subnet::Id>`, as written; the value is taken as given
    /// (a list for the `List<...>` ones), not looked up.
    AwsSpecific(String),
    /// `AWS::SSM::Parameter::Value<...>`, as written; locally the value is
    /// the given string itself, not an SSM lookup.
    SsmParameterValue(String),
}

impl ParameterType {
    /// Whether `Ref` gives a list of strings, split at commas.
    pub fn is_list(&self) -> bool {
        match self {
            ParameterType::NumberList | ParameterType::CommaDelimitedList => true,
            ParameterType::String | ParameterType::Number => false,
            ParameterType::AwsSpecific(name) | ParameterType::SsmParameterValue(name) => {
                name.starts_with("List<")
                    || name.starts_with("AWS::SSM::Parameter::Value<List<")
                    || name == "AWS::SSM::Parameter::Value<CommaDelimitedList>"
            }
        }
    }

    /// The type as written in a template.
    pub fn name(&self) -> &str {
        match self {
            ParameterType::String => "String",
            ParameterType::Number => "Number",
            ParameterType::NumberList => "List<Number>",
            ParameterType::CommaDelimitedList => "CommaDelimitedList",
            ParameterType::AwsSpecific(name) | ParameterType::SsmParameterValue(name) => name,
        }
    }
}

/// A named map of maps: `Mappings[name][top][second]` is a string or a list
/// of strings.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub name: String,
    pub span: Span,
    pub entries: BTreeMap<String, BTreeMap<String, Expr>>,
}

/// A named condition of the `Conditions` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub name: String,
    /// The condition's key.
    pub span: Span,
    /// A condition function: `Fn::Equals`, `Fn::And`, `Fn::Or`, `Fn::Not`
    /// or `Condition`.
    pub expr: Expr,
}

/// A rule of the `Rules` section: when `condition` holds (or is absent),
/// every assertion must.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    /// The rule's key.
    pub span: Span,
    /// `RuleCondition`.
    pub condition: Option<Expr>,
    pub assertions: Vec<Assertion>,
}

/// One of a rule's `Assertions`.
#[derive(Debug, Clone, PartialEq)]
pub struct Assertion {
    /// `Assert`: a rule function that must be true.
    pub assert: Expr,
    /// `AssertDescription`: what the refusal says.
    pub description: Option<String>,
}

/// A declared resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub name: ResourceName,
    /// The resource's key.
    pub span: Span,
    /// `Type`, like `AWS::EC2::VPC`.
    pub resource_type: Spanned<String>,
    /// `Properties`: a map literal, or a `Fn::If` choosing one; `None` when
    /// absent.
    pub properties: Option<Expr>,
    /// Resources that must be created first, besides those referred to.
    pub depends_on: Vec<Spanned<String>>,
    /// The condition that decides whether the resource exists.
    pub condition: Option<Spanned<String>>,
    /// The `CreationPolicy` that applies. A policy written with `Fn::If`
    /// is in `creation_policy_choice` and applies only once
    /// [`Template::choose_policies`] has chosen it under the stack's
    /// conditions; until then this is `None`.
    pub creation_policy: Option<CreationPolicy>,
    /// The `UpdatePolicy` that applies; like `creation_policy`.
    pub update_policy: Option<UpdatePolicy>,
    /// A `CreationPolicy` written with `Fn::If` (as a whole or in part).
    pub creation_policy_choice: Option<Chosen<Option<CreationPolicy>>>,
    /// An `UpdatePolicy` written with `Fn::If` (as a whole or in part).
    pub update_policy_choice: Option<Chosen<Option<UpdatePolicy>>>,
    pub deletion_policy: Option<Spanned<DeletionPolicy>>,
    pub update_replace_policy: Option<Spanned<DeletionPolicy>>,
    pub metadata: Option<Expr>,
}

impl Resource {
    /// The value of property `name` as written, if `Properties` is a map
    /// literal that has it.
    pub fn property(&self, name: &str) -> Option<&Expr> {
        self.properties.as_ref()?.get(name)
    }
}

impl Template {
    /// Makes the policies written with `Fn::If` the resources'
    /// `creation_policy` and `update_policy`, as `conditions` choose them.
    /// A condition `conditions` does not have counts as false.
    pub fn choose_policies(&mut self, conditions: &BTreeMap<String, bool>) {
        let holds = |name: &str| conditions.get(name).copied().unwrap_or(false);
        for resource in self.resources.values_mut() {
            if let Some(choice) = &resource.creation_policy_choice {
                resource.creation_policy = choice.choose(&holds).clone();
            }
            if let Some(choice) = &resource.update_policy_choice {
                resource.update_policy = choice.choose(&holds).clone();
            }
        }
    }
}

/// What happens to a resource's physical thing when the resource is deleted
/// (`DeletionPolicy`) or replaced (`UpdateReplacePolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionPolicy {
    Delete,
    Retain,
    RetainExceptOnCreate,
    Snapshot,
}

impl DeletionPolicy {
    pub const ALL: [DeletionPolicy; 4] = [
        DeletionPolicy::Delete,
        DeletionPolicy::Retain,
        DeletionPolicy::RetainExceptOnCreate,
        DeletionPolicy::Snapshot,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeletionPolicy::Delete => "Delete",
            DeletionPolicy::Retain => "Retain",
            DeletionPolicy::RetainExceptOnCreate => "RetainExceptOnCreate",
            DeletionPolicy::Snapshot => "Snapshot",
        }
    }
}

/// A declared output.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub name: String,
    /// The output's key.
    pub span: Span,
    pub value: Expr,
    pub description: Option<String>,
    /// `Export.Name`: other stacks import the value under this name.
    pub export_name: Option<Expr>,
    pub condition: Option<Spanned<String>>,
}
