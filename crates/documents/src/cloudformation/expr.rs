//! The expression tree of template values: literals, lists and maps, and one
//! variant per intrinsic function, every node with its source span.
//!
//! Short forms (`!Ref X`) and long forms (`{"Ref": "X"}`) give the same tree;
//! how a value was spelled is not kept, only where it was.

use std::fmt;

use crate::source::Span;

/// The pseudo parameters a `Ref` (or a `Fn::Sub` variable) may name.
pub const PSEUDO_PARAMETERS: [&str; 8] = [
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

/// Whether `name` is one of [`PSEUDO_PARAMETERS`].
pub fn is_pseudo_parameter(name: &str) -> bool {
    PSEUDO_PARAMETERS.contains(&name)
}

/// A value with the span it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Spanned<T> {
        Spanned { value, span }
    }
}

/// A template value: a literal, a list, a map or an intrinsic function call.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    /// The whole value, function name and arguments included.
    pub span: Span,
}

/// What an [`Expr`] is; one variant per supported intrinsic function.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Null,
    Bool(bool),
    /// A number literal, as written (`80`, `1.5`): templates pass numbers on
    /// as text, so the spelling is the value.
    Number(String),
    String(String),
    List(Vec<Expr>),
    /// Entries in document order.
    Map(Vec<(Spanned<String>, Expr)>),
    /// `Ref`: a parameter, a resource or a pseudo parameter.
    Ref(Spanned<String>),
    /// `Fn::GetAtt`: an attribute of a resource.
    GetAtt {
        resource: Spanned<String>,
        attribute: Spanned<String>,
    },
    /// `Fn::GetAtt [Resource, !Ref Parameter]`: the attribute named by a
    /// parameter's value.
    GetAttByParameter {
        resource: Spanned<String>,
        parameter: Spanned<String>,
    },
    /// `Fn::Sub`, in either form; `variables` is empty for the string form.
    Sub {
        template: Vec<SubPart>,
        variables: Vec<(Spanned<String>, Expr)>,
    },
    /// `Fn::ImportValue`: the value another stack exported under a name.
    ImportValue(Box<Expr>),
    /// `Fn::Join`: `list` evaluates to a list of strings.
    Join {
        delimiter: String,
        list: Box<Expr>,
    },
    /// `Fn::Select`: the `index`-th item (from 0) of `list`.
    Select {
        index: Box<Expr>,
        list: Box<Expr>,
    },
    /// `Fn::Split`: `source` cut at every `delimiter`.
    Split {
        delimiter: String,
        source: Box<Expr>,
    },
    /// `Fn::If`: `then` when the condition holds, else `otherwise`.
    If {
        condition: Spanned<String>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    Equals(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// Two to ten conditions.
    And(Vec<Expr>),
    /// Two to ten conditions.
    Or(Vec<Expr>),
    Base64(Box<Expr>),
    /// `Fn::GetAZs`: the zones of a region (`""`: the stack's region).
    GetAzs(Box<Expr>),
    /// `Fn::FindInMap`: `Mappings[map][top_key][second_key]`.
    FindInMap {
        map: Box<Expr>,
        top_key: Box<Expr>,
        second_key: Box<Expr>,
    },
    /// `Condition`: the truth of a named condition, inside conditions.
    Condition(Spanned<String>),
    /// `Fn::Cidr`: `count` address blocks of `cidr_bits` host bits each,
    /// carved from `ip_block` in order.
    Cidr {
        ip_block: Box<Expr>,
        count: Box<Expr>,
        cidr_bits: Box<Expr>,
    },
    /// `Fn::Contains` (rules only): whether `list` has `value`.
    Contains {
        list: Box<Expr>,
        value: Box<Expr>,
    },
    /// `Fn::EachMemberEquals` (rules only): whether every item of `list` is
    /// `value`.
    EachMemberEquals {
        list: Box<Expr>,
        value: Box<Expr>,
    },
    /// `Fn::EachMemberIn` (rules only): whether every item of `list` is one
    /// of `allowed`.
    EachMemberIn {
        list: Box<Expr>,
        allowed: Box<Expr>,
    },
}

/// A piece of a `Fn::Sub` template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubPart {
    /// Text copied as is (`${!Name}` is already unescaped to `${Name}` here).
    Literal(String),
    /// `${Name}` or `${Resource.Attribute}`; the span covers `${...}`.
    Variable(Spanned<String>),
}

impl ExprKind {
    /// The long name of the intrinsic function, like `Fn::Join`; `None` for
    /// literals, lists and maps.
    pub fn function_name(&self) -> Option<&'static str> {
        Some(match self {
            ExprKind::Null
            | ExprKind::Bool(_)
            | ExprKind::Number(_)
            | ExprKind::String(_)
            | ExprKind::List(_)
            | ExprKind::Map(_) => return None,
            ExprKind::Ref(_) => "Ref",
            ExprKind::GetAtt { .. } | ExprKind::GetAttByParameter { .. } => "Fn::GetAtt",
            ExprKind::Sub { .. } => "Fn::Sub",
            ExprKind::ImportValue(_) => "Fn::ImportValue",
            ExprKind::Join { .. } => "Fn::Join",
            ExprKind::Select { .. } => "Fn::Select",
            ExprKind::Split { .. } => "Fn::Split",
            ExprKind::If { .. } => "Fn::If",
            ExprKind::Equals(..) => "Fn::Equals",
            ExprKind::Not(_) => "Fn::Not",
            ExprKind::And(_) => "Fn::And",
            ExprKind::Or(_) => "Fn::Or",
            ExprKind::Base64(_) => "Fn::Base64",
            ExprKind::GetAzs(_) => "Fn::GetAZs",
            ExprKind::FindInMap { .. } => "Fn::FindInMap",
            ExprKind::Condition(_) => "Condition",
            ExprKind::Cidr { .. } => "Fn::Cidr",
            ExprKind::Contains { .. } => "Fn::Contains",
            ExprKind::EachMemberEquals { .. } => "Fn::EachMemberEquals",
            ExprKind::EachMemberIn { .. } => "Fn::EachMemberIn",
        })
    }

    /// Whether this is a condition function (`Fn::Equals`, `Fn::And`,
    /// `Fn::Or`, `Fn::Not`, `Condition`), which CloudFormation allows only in
    /// the `Conditions` section (and, with the rule functions, in `Rules`).
    pub fn is_condition_function(&self) -> bool {
        matches!(
            self,
            ExprKind::Equals(..)
                | ExprKind::Not(_)
                | ExprKind::And(_)
                | ExprKind::Or(_)
                | ExprKind::Condition(_)
        )
    }

    /// Whether this is a function of the `Rules` section only.
    pub fn is_rule_function(&self) -> bool {
        matches!(
            self,
            ExprKind::Contains { .. }
                | ExprKind::EachMemberEquals { .. }
                | ExprKind::EachMemberIn { .. }
        )
    }
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }

    /// The string, if this is a string literal.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            ExprKind::String(text) => Some(text),
            _ => None,
        }
    }

    /// The text of a scalar literal (string, number or boolean).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            ExprKind::String(text) | ExprKind::Number(text) => Some(text.clone()),
            ExprKind::Bool(value) => Some(value.to_string()),
            _ => None,
        }
    }

    /// The value of the first entry `key`, if this is a map literal.
    pub fn get(&self, key: &str) -> Option<&Expr> {
        match &self.kind {
            ExprKind::Map(entries) => {
                entries.iter().find(|(name, _)| name.value == key).map(|(_, value)| value)
            }
            _ => None,
        }
    }

    /// The direct sub-expressions, in document order.
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            ExprKind::Null
            | ExprKind::Bool(_)
            | ExprKind::Number(_)
            | ExprKind::String(_)
            | ExprKind::Ref(_)
            | ExprKind::GetAtt { .. }
            | ExprKind::GetAttByParameter { .. }
            | ExprKind::Condition(_) => Vec::new(),
            ExprKind::List(items) | ExprKind::And(items) | ExprKind::Or(items) => {
                items.iter().collect()
            }
            ExprKind::Map(entries) => entries.iter().map(|(_, value)| value).collect(),
            ExprKind::Sub { variables, .. } => variables.iter().map(|(_, value)| value).collect(),
            ExprKind::ImportValue(inner)
            | ExprKind::Not(inner)
            | ExprKind::Base64(inner)
            | ExprKind::GetAzs(inner) => vec![inner],
            ExprKind::Join { list, .. } => vec![list],
            ExprKind::Select { index, list } => vec![index, list],
            ExprKind::Split { source, .. } => vec![source],
            ExprKind::If { then, otherwise, .. } => vec![then, otherwise],
            ExprKind::Equals(left, right) => vec![left, right],
            ExprKind::FindInMap { map, top_key, second_key } => vec![map, top_key, second_key],
            ExprKind::Cidr { ip_block, count, cidr_bits } => vec![ip_block, count, cidr_bits],
            ExprKind::Contains { list, value } | ExprKind::EachMemberEquals { list, value } => {
                vec![list, value]
            }
            ExprKind::EachMemberIn { list, allowed } => vec![list, allowed],
        }
    }

    /// Calls `visit` on this expression and every sub-expression, parents
    /// before children, in document order.
    pub fn walk<'a>(&'a self, visit: &mut dyn FnMut(&'a Expr)) {
        visit(self);
        for child in self.children() {
            child.walk(visit);
        }
    }

    /// Every name this expression refers to, with where: `Ref`s, `GetAtt`
    /// resources and the variables of `Fn::Sub` strings that are not given in
    /// the `Fn::Sub` itself.
    pub fn references(&self) -> Vec<Reference<'_>> {
        let mut found = Vec::new();
        self.walk(&mut |expr| match &expr.kind {
            ExprKind::Ref(name) => found.push(Reference::Ref(name.value.as_str(), name.span)),
            ExprKind::GetAtt { resource, attribute } => found.push(Reference::GetAtt {
                resource: resource.value.as_str(),
                attribute: Some(attribute.value.as_str()),
                span: resource.span,
            }),
            ExprKind::GetAttByParameter { resource, parameter } => {
                found.push(Reference::GetAtt {
                    resource: resource.value.as_str(),
                    attribute: None,
                    span: resource.span,
                });
                found.push(Reference::Ref(parameter.value.as_str(), parameter.span));
            }
            ExprKind::Sub { template, variables } => {
                for part in template {
                    let SubPart::Variable(name) = part else { continue };
                    if variables.iter().any(|(local, _)| local.value == name.value) {
                        continue;
                    }
                    found.push(sub_reference(&name.value, name.span));
                }
            }
            _ => {}
        });
        found
    }
}

/// What a `Fn::Sub` variable that is not given locally stands for.
pub(crate) fn sub_reference(name: &str, span: Span) -> Reference<'_> {
    match name.split_once('.') {
        Some((resource, attribute)) if !name.starts_with("AWS::") => {
            Reference::GetAtt { resource, attribute: Some(attribute), span }
        }
        _ => Reference::Ref(name, span),
    }
}

/// A name an expression refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference<'a> {
    /// A parameter, resource or pseudo parameter.
    Ref(&'a str, Span),
    /// A resource's attribute; `None` when a parameter names it.
    GetAtt { resource: &'a str, attribute: Option<&'a str>, span: Span },
}

impl Reference<'_> {
    /// The parameter, resource or pseudo parameter named.
    pub fn target(&self) -> &str {
        match self {
            Reference::Ref(name, _) => name,
            Reference::GetAtt { resource, .. } => resource,
        }
    }

    pub fn span(&self) -> Span {
        match self {
            Reference::Ref(_, span) | Reference::GetAtt { span, .. } => *span,
        }
    }
}

impl fmt::Display for SubPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubPart::Literal(text) => f.write_str(&text.replace("${", "${!")),
            SubPart::Variable(name) => write!(f, "${{{}}}", name.value),
        }
    }
}
