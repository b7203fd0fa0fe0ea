//! Reads template values from the YAML tree into [`Expr`] trees: literals,
//! and intrinsic functions in their short (`!Join`) and long (`Fn::Join`)
//! forms, with their arguments checked for shape.
//!
//! Design notes:
//! - A short-form tag applies to the node it is on: the function's argument
//!   is that node without its tag (a copy; templates are small).
//! - A mapping with a single `Ref`, `Fn::*` key is a function call; any other
//!   `Fn::` key is reported as an unknown function. `{"Condition": "X"}` is a
//!   function only where a condition is expected (inside `Fn::And`, `Fn::Or`,
//!   `Fn::Not` and the `Conditions` section); elsewhere it is an ordinary map.
//! - `Fn::Sub` strings are split into parts here, and each `${...}` located in
//!   the source so that an unknown variable is reported where it is written.
//! - The rule functions (`Fn::Contains`, `Fn::EachMemberEquals`,
//!   `Fn::EachMemberIn`) are read only in the `Rules` section
//!   ([`ExprReader::in_rules`]); elsewhere they are refused by name, as are
//!   the rule functions that need AWS's account data (`Fn::RefAll`,
//!   `Fn::ValueOf`, `Fn::ValueOfAll`) everywhere.

use crate::cloudformation::expr::{Expr, ExprKind, Spanned, SubPart};
use crate::diagnostic::Reporter;
use crate::source::{LineIndex, Position, Span, advance};
use crate::yaml::{Node, Value};

/// The intrinsic functions understood, by long name, with the short-form tag
/// of each.
pub(crate) const FUNCTIONS: [(&str, &str); 17] = [
    ("Ref", "!Ref"),
    ("Fn::Base64", "!Base64"),
    ("Fn::Cidr", "!Cidr"),
    ("Fn::FindInMap", "!FindInMap"),
    ("Fn::GetAZs", "!GetAZs"),
    ("Fn::GetAtt", "!GetAtt"),
    ("Fn::ImportValue", "!ImportValue"),
    ("Fn::Join", "!Join"),
    ("Fn::Select", "!Select"),
    ("Fn::Split", "!Split"),
    ("Fn::Sub", "!Sub"),
    ("Fn::If", "!If"),
    ("Fn::Equals", "!Equals"),
    ("Fn::Not", "!Not"),
    ("Fn::And", "!And"),
    ("Fn::Or", "!Or"),
    ("Condition", "!Condition"),
];

/// The functions of the `Rules` section only, with their short forms.
pub(crate) const RULE_FUNCTIONS: [(&str, &str); 3] = [
    ("Fn::Contains", "!Contains"),
    ("Fn::EachMemberEquals", "!EachMemberEquals"),
    ("Fn::EachMemberIn", "!EachMemberIn"),
];

/// Rule functions that ask AWS about the account's resources, which local
/// stacks cannot answer.
const ACCOUNT_RULE_FUNCTIONS: [(&str, &str); 3] =
    [("Fn::RefAll", "!RefAll"), ("Fn::ValueOf", "!ValueOf"), ("Fn::ValueOfAll", "!ValueOfAll")];

/// Reads expressions and reports what is malformed.
pub(crate) struct ExprReader<'a> {
    pub(crate) reporter: Reporter,
    lines: LineIndex<'a>,
    /// Reading the `Rules` section: the rule functions are known.
    pub(crate) in_rules: bool,
}

impl<'a> ExprReader<'a> {
    pub(crate) fn new(reporter: Reporter, text: &'a str) -> ExprReader<'a> {
        ExprReader { reporter, lines: LineIndex::new(text), in_rules: false }
    }

    /// The rule function `name` (long or short form), refused with the reason
    /// when it cannot be used here; `None` when `name` is no rule function.
    fn rule_function(&mut self, name: &str, span: Span) -> Option<Result<&'static str, ()>> {
        if let Some((long, _)) =
            ACCOUNT_RULE_FUNCTIONS.iter().find(|(long, short)| *long == name || *short == name)
        {
            self.reporter.error(
                span,
                format!("found {long}, which asks AWS about the account's resources: local stacks cannot answer it; expected Fn::Contains, Fn::EachMemberEquals, Fn::EachMemberIn, Fn::Equals, Fn::And, Fn::Or or Fn::Not"),
            );
            return Some(Err(()));
        }
        let (long, _) =
            RULE_FUNCTIONS.iter().find(|(long, short)| *long == name || *short == name)?;
        if !self.in_rules {
            self.reporter.error(
                span,
                format!("found {long} outside the Rules section; expected rule functions only in the assertions and conditions of Rules"),
            );
            return Some(Err(()));
        }
        Some(Ok(long))
    }

    /// Reads any template value; `None` after reporting.
    pub(crate) fn expr(&mut self, node: &Node) -> Option<Expr> {
        if let Some(tag) = &node.tag {
            if let Some(rule) = self.rule_function(tag, node.span) {
                let name = rule.ok()?;
                let argument = Node { tag: None, ..node.clone() };
                return self.function(name, &argument, node.span);
            }
            let Some((name, _)) = FUNCTIONS.iter().find(|(_, short)| short == tag) else {
                let known: Vec<&str> = FUNCTIONS.iter().map(|(_, short)| *short).collect();
                self.reporter.error(
                    node.span,
                    format!(
                        "found the unknown intrinsic function tag {tag}; expected one of {}",
                        known.join(" ")
                    ),
                );
                return None;
            };
            // The tag is the function's; its argument is the node itself.
            let argument = Node { tag: None, ..node.clone() };
            return self.function(name, &argument, node.span);
        }
        match &node.value {
            Value::Null => Some(Expr::new(ExprKind::Null, node.span)),
            Value::Bool(value) => Some(Expr::new(ExprKind::Bool(*value), node.span)),
            Value::Int(_) | Value::Float(_) => Some(Expr::new(
                ExprKind::Number(node.scalar_text().unwrap_or_default().to_owned()),
                node.span,
            )),
            Value::String(text) => Some(Expr::new(ExprKind::String(text.clone()), node.span)),
            Value::Sequence(items) => {
                let items: Vec<Option<Expr>> = items.iter().map(|item| self.expr(item)).collect();
                Some(Expr::new(
                    ExprKind::List(items.into_iter().collect::<Option<_>>()?),
                    node.span,
                ))
            }
            Value::Mapping(entries) => {
                if let [(key, argument)] = entries.as_slice()
                    && let Some(name) = key.as_str().filter(|_| key.tag.is_none())
                    && (name == "Ref" || name.starts_with("Fn::"))
                {
                    if let Some(rule) = self.rule_function(name, key.span) {
                        let name = rule.ok()?;
                        return self.function(name, argument, node.span);
                    }
                    if !FUNCTIONS.iter().any(|(known, _)| *known == name) {
                        let known: Vec<&str> = FUNCTIONS.iter().map(|(long, _)| *long).collect();
                        self.reporter.error(
                            key.span,
                            format!(
                                "found the unknown intrinsic function `{name}`; expected one of {}",
                                known.join(", ")
                            ),
                        );
                        return None;
                    }
                    return self.function(name, argument, node.span);
                }
                self.map(node, entries)
            }
        }
    }

    fn map(&mut self, node: &Node, entries: &[(Node, Node)]) -> Option<Expr> {
        let mut ok = true;
        let mut read = Vec::new();
        for (key, value) in entries {
            let key_text = match (&key.value, &key.tag) {
                (Value::Sequence(_) | Value::Mapping(_) | Value::Null, _) | (_, Some(_)) => {
                    self.reporter.error(
                        key.span,
                        format!("expected a string key, found {}", key.describe()),
                    );
                    ok = false;
                    continue;
                }
                _ => key.scalar_text().unwrap_or_default().to_owned(),
            };
            match self.expr(value) {
                Some(value) => read.push((Spanned::new(key_text, key.span), value)),
                None => ok = false,
            }
        }
        ok.then(|| Expr::new(ExprKind::Map(read), node.span))
    }

    /// Reads a condition: like [`ExprReader::expr`], but a single-key map
    /// `{Condition: Name}` is the `Condition` function.
    pub(crate) fn condition(&mut self, node: &Node) -> Option<Expr> {
        if node.tag.is_none()
            && let Some([(key, argument)]) = node.as_mapping()
            && key.tag.is_none()
            && key.as_str() == Some("Condition")
        {
            return self.function("Condition", argument, node.span);
        }
        self.expr(node)
    }

    /// Reads the call of function `name` (long form) with `argument`; `span`
    /// covers the whole call.
    fn function(&mut self, name: &str, argument: &Node, span: Span) -> Option<Expr> {
        let kind = match name {
            "Ref" => ExprKind::Ref(self.name(name, argument)?),
            "Condition" => ExprKind::Condition(self.name(name, argument)?),
            "Fn::GetAtt" => self.get_att(argument)?,
            "Fn::Sub" => self.sub(argument)?,
            "Fn::ImportValue" => ExprKind::ImportValue(Box::new(self.expr(argument)?)),
            "Fn::Base64" => ExprKind::Base64(Box::new(self.expr(argument)?)),
            "Fn::Cidr" => {
                let [ip_block, count, cidr_bits] =
                    self.arguments(name, argument, "[ip block, count, cidr bits]")?;
                let (ip_block, count, cidr_bits) =
                    (self.expr(ip_block), self.expr(count), self.expr(cidr_bits));
                ExprKind::Cidr {
                    ip_block: Box::new(ip_block?),
                    count: Box::new(count?),
                    cidr_bits: Box::new(cidr_bits?),
                }
            }
            "Fn::Contains" | "Fn::EachMemberEquals" => {
                let [list, value] = self.arguments(name, argument, "[list of strings, string]")?;
                let (list, value) = (self.expr(list), self.expr(value));
                let (list, value) = (Box::new(list?), Box::new(value?));
                if name == "Fn::Contains" {
                    ExprKind::Contains { list, value }
                } else {
                    ExprKind::EachMemberEquals { list, value }
                }
            }
            "Fn::EachMemberIn" => {
                let [list, allowed] = self.arguments(
                    name,
                    argument,
                    "[list of strings to check, list of strings to match]",
                )?;
                let (list, allowed) = (self.expr(list), self.expr(allowed));
                ExprKind::EachMemberIn { list: Box::new(list?), allowed: Box::new(allowed?) }
            }
            "Fn::GetAZs" => ExprKind::GetAzs(Box::new(self.expr(argument)?)),
            "Fn::Join" => {
                let [delimiter, list] = self.arguments(name, argument, "[delimiter, list]")?;
                let delimiter = self.literal_string(name, "delimiter", delimiter)?;
                ExprKind::Join { delimiter, list: Box::new(self.expr(list)?) }
            }
            "Fn::Split" => {
                let [delimiter, source] =
                    self.arguments(name, argument, "[delimiter, source string]")?;
                let delimiter = self.literal_string(name, "delimiter", delimiter)?;
                if delimiter.is_empty() {
                    self.reporter.error(
                        delimiter_span(argument),
                        "found an empty delimiter in Fn::Split; expected at least one character",
                    );
                    return None;
                }
                ExprKind::Split { delimiter, source: Box::new(self.expr(source)?) }
            }
            "Fn::Select" => {
                let [index, list] = self.arguments(name, argument, "[index, list]")?;
                let (index, list) = (self.expr(index), self.expr(list));
                ExprKind::Select { index: Box::new(index?), list: Box::new(list?) }
            }
            "Fn::If" => {
                let [condition, then, otherwise] = self.arguments(
                    name,
                    argument,
                    "[condition name, value if true, value if false]",
                )?;
                let condition = self.name(name, condition);
                let (then, otherwise) = (self.expr(then), self.expr(otherwise));
                ExprKind::If {
                    condition: condition?,
                    then: Box::new(then?),
                    otherwise: Box::new(otherwise?),
                }
            }
            "Fn::Equals" => {
                let [left, right] = self.arguments(name, argument, "[value, value]")?;
                let (left, right) = (self.expr(left), self.expr(right));
                ExprKind::Equals(Box::new(left?), Box::new(right?))
            }
            "Fn::Not" => {
                let [condition] = self.arguments(name, argument, "[condition]")?;
                ExprKind::Not(Box::new(self.condition(condition)?))
            }
            "Fn::And" | "Fn::Or" => {
                let items = self.list_argument(name, argument, "a list of 2 to 10 conditions")?;
                if !(2..=10).contains(&items.len()) {
                    self.reporter.error(
                        argument.span,
                        format!("found {} conditions in {name}; expected 2 to 10", items.len()),
                    );
                    return None;
                }
                let conditions: Vec<Option<Expr>> =
                    items.iter().map(|item| self.condition(item)).collect();
                let conditions = conditions.into_iter().collect::<Option<Vec<_>>>()?;
                if name == "Fn::And" { ExprKind::And(conditions) } else { ExprKind::Or(conditions) }
            }
            "Fn::FindInMap" => {
                let [map, top_key, second_key] =
                    self.arguments(name, argument, "[map name, top-level key, second-level key]")?;
                let (map, top_key, second_key) =
                    (self.expr(map), self.expr(top_key), self.expr(second_key));
                ExprKind::FindInMap {
                    map: Box::new(map?),
                    top_key: Box::new(top_key?),
                    second_key: Box::new(second_key?),
                }
            }
            other => {
                self.reporter.error(span, format!("internal error: no reader for {other}"));
                return None;
            }
        };
        Some(Expr::new(kind, span))
    }

    /// A name argument: a non-empty string scalar.
    fn name(&mut self, function: &str, argument: &Node) -> Option<Spanned<String>> {
        match (&argument.value, &argument.tag) {
            (Value::String(text), None) if !text.is_empty() => {
                Some(Spanned::new(text.clone(), argument.span))
            }
            _ => {
                let found = argument.describe();
                self.reporter.error(
                    argument.span,
                    format!("expected a name as the argument of {function}, found {found}"),
                );
                None
            }
        }
    }

    fn literal_string(&mut self, function: &str, what: &str, node: &Node) -> Option<String> {
        match (&node.value, &node.tag) {
            (Value::String(text), None) => Some(text.clone()),
            (Value::Int(_) | Value::Float(_) | Value::Bool(_), None) => {
                node.scalar_text().map(str::to_owned)
            }
            _ => {
                self.reporter.error(
                    node.span,
                    format!(
                        "expected a string as the {what} of {function}, found {}",
                        node.describe()
                    ),
                );
                None
            }
        }
    }

    fn list_argument<'n>(
        &mut self,
        function: &str,
        argument: &'n Node,
        expected: &str,
    ) -> Option<&'n [Node]> {
        match argument.as_sequence().filter(|_| argument.tag.is_none()) {
            Some(items) => Some(items),
            None => {
                let found = argument.describe();
                self.reporter.error(
                    argument.span,
                    format!("expected {expected} as the argument of {function}, found {found}"),
                );
                None
            }
        }
    }

    /// Exactly `N` list items.
    fn arguments<'n, const N: usize>(
        &mut self,
        function: &str,
        argument: &'n Node,
        expected: &str,
    ) -> Option<&'n [Node; N]> {
        let items = self.list_argument(function, argument, &format!("a list {expected}"))?;
        match <&[Node; N]>::try_from(items) {
            Ok(items) => Some(items),
            Err(_) => {
                self.reporter.error(
                    argument.span,
                    format!(
                        "found {} arguments to {function}; expected {N}: {expected}",
                        items.len()
                    ),
                );
                None
            }
        }
    }

    fn get_att(&mut self, argument: &Node) -> Option<ExprKind> {
        const EXPECTED: &str =
            "`Resource.Attribute` or a list [resource, attribute] as the argument of Fn::GetAtt";
        if let (Value::String(text), None) = (&argument.value, &argument.tag) {
            let Some((resource, attribute)) =
                text.split_once('.').filter(|(r, a)| !r.is_empty() && !a.is_empty())
            else {
                self.reporter.error(
                    argument.span,
                    format!("expected {EXPECTED}, found the string {text:?}"),
                );
                return None;
            };
            return Some(ExprKind::GetAtt {
                resource: Spanned::new(resource.to_owned(), argument.span),
                attribute: Spanned::new(attribute.to_owned(), argument.span),
            });
        }
        match argument.as_sequence().filter(|_| argument.tag.is_none()) {
            Some([resource, attribute]) => {
                let resource = self.name("Fn::GetAtt", resource);
                // CloudFormation allows `Ref` (of a parameter) for the
                // attribute's name.
                if let Some(parameter) = self.expr_if_ref(attribute) {
                    return Some(ExprKind::GetAttByParameter {
                        resource: resource?,
                        parameter: parameter?,
                    });
                }
                let attribute = self.name("Fn::GetAtt", attribute);
                Some(ExprKind::GetAtt { resource: resource?, attribute: attribute? })
            }
            _ => {
                let found = argument.describe();
                self.reporter.error(argument.span, format!("expected {EXPECTED}, found {found}"));
                None
            }
        }
    }

    /// When `node` is a `Ref` (either form): its name, or `None` inside after
    /// reporting a malformed one; `None` when `node` is something else.
    fn expr_if_ref(&mut self, node: &Node) -> Option<Option<Spanned<String>>> {
        let is_ref = match (&node.tag, &node.value) {
            (Some(tag), _) => tag == "!Ref",
            (None, Value::Mapping(entries)) => matches!(
                entries.as_slice(),
                [(key, _)] if key.tag.is_none() && key.as_str() == Some("Ref")
            ),
            _ => false,
        };
        if !is_ref {
            return None;
        }
        Some(self.expr(node).and_then(|expr| match expr.kind {
            ExprKind::Ref(name) => Some(name),
            _ => None,
        }))
    }

    fn sub(&mut self, argument: &Node) -> Option<ExprKind> {
        if let (Value::String(text), None) = (&argument.value, &argument.tag) {
            let template = self.sub_template(argument, text)?;
            return Some(ExprKind::Sub { template, variables: Vec::new() });
        }
        let found = argument.describe();
        let expected = "a string or a list [string, {variables}] as the argument of Fn::Sub";
        let Some([text_node, variables_node]) =
            argument.as_sequence().filter(|_| argument.tag.is_none())
        else {
            self.reporter.error(argument.span, format!("expected {expected}, found {found}"));
            return None;
        };
        let template = match (&text_node.value, &text_node.tag) {
            (Value::String(text), None) => self.sub_template(text_node, text),
            _ => {
                self.reporter.error(
                    text_node.span,
                    format!(
                        "expected a string as the template of Fn::Sub, found {}",
                        text_node.describe()
                    ),
                );
                None
            }
        };
        let variables = match (variables_node.as_mapping(), &variables_node.tag) {
            (Some(entries), None) => {
                let mut variables = Vec::new();
                let mut ok = true;
                for (key, value) in entries {
                    let Some(name) = key.as_str().filter(|_| key.tag.is_none()) else {
                        self.reporter.error(
                            key.span,
                            format!("expected a variable name, found {}", key.describe()),
                        );
                        ok = false;
                        continue;
                    };
                    match self.expr(value) {
                        Some(value) => {
                            variables.push((Spanned::new(name.to_owned(), key.span), value))
                        }
                        None => ok = false,
                    }
                }
                ok.then_some(variables)
            }
            _ => {
                self.reporter.error(
                    variables_node.span,
                    format!(
                        "expected a mapping of variables as the second argument of Fn::Sub, found {}",
                        variables_node.describe()
                    ),
                );
                None
            }
        };
        Some(ExprKind::Sub { template: template?, variables: variables? })
    }

    /// Splits a `Fn::Sub` string written at `node` into parts.
    fn sub_template(&mut self, node: &Node, text: &str) -> Option<Vec<SubPart>> {
        let parsed = split_sub(text);
        let raw = self.lines.slice(node.span);
        let locate = |offset: usize| -> Position {
            // The n-th `${` of the decoded text is the n-th one of the source,
            // unless escapes changed the text; then point at the scalar.
            let ordinal = text[..offset].matches("${").count();
            match raw.and_then(|raw| raw.match_indices("${").nth(ordinal).map(|(at, _)| (raw, at)))
            {
                Some((raw, at)) if raw.matches("${").count() == text.matches("${").count() => {
                    advance(node.span.start, &raw[..at])
                }
                _ => node.span.start,
            }
        };
        let mut parts = Vec::new();
        let mut ok = true;
        for piece in parsed {
            match piece {
                SubPiece::Literal(text) => match parts.last_mut() {
                    Some(SubPart::Literal(previous)) => previous.push_str(&text),
                    _ => parts.push(SubPart::Literal(text)),
                },
                SubPiece::Variable { name, offset, len } => {
                    let start = locate(offset);
                    let end = advance(start, &text[offset..offset + len]);
                    parts.push(SubPart::Variable(Spanned::new(name, Span::new(start, end))));
                }
                SubPiece::Error { message, offset } => {
                    self.reporter.error(Span::at(locate(offset)), message);
                    ok = false;
                }
            }
        }
        ok.then_some(parts)
    }
}

/// The span of a function's first list item, or of the argument.
fn delimiter_span(argument: &Node) -> Span {
    argument.as_sequence().and_then(|items| items.first()).map_or(argument.span, |item| item.span)
}

/// A piece of a `Fn::Sub` string, with byte offsets in the decoded text.
#[derive(Debug)]
enum SubPiece {
    Literal(String),
    Variable { name: String, offset: usize, len: usize },
    Error { message: String, offset: usize },
}

/// Splits a `Fn::Sub` string: `${Name}` and `${Resource.Attribute}` are
/// variables, `${!Text}` is the literal `${Text}`.
fn split_sub(text: &str) -> Vec<SubPiece> {
    let mut pieces = Vec::new();
    let mut rest_start = 0;
    let mut search_from = 0;
    while let Some(found) = text[search_from..].find("${") {
        let offset = search_from + found;
        let after = &text[offset + 2..];
        if after.starts_with('!') {
            pieces.push(SubPiece::Literal(format!("{}${{", &text[rest_start..offset])));
            rest_start = offset + 3;
            search_from = rest_start;
            continue;
        }
        if offset > rest_start {
            pieces.push(SubPiece::Literal(text[rest_start..offset].to_owned()));
        }
        let Some(close) = after.find('}') else {
            pieces.push(SubPiece::Error {
                message: "found `${` without a closing `}` in Fn::Sub; expected `${Name}`, or `${!` for a literal `${`".to_owned(),
                offset,
            });
            return pieces;
        };
        let name = &after[..close];
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-'));
        if valid {
            pieces.push(SubPiece::Variable { name: name.to_owned(), offset, len: close + 3 });
        } else {
            pieces.push(SubPiece::Error {
                message: format!(
                    "found the variable `${{{name}}}` in Fn::Sub; expected a parameter, resource, `Resource.Attribute` or pseudo parameter name"
                ),
                offset,
            });
        }
        rest_start = offset + close + 3;
        search_from = rest_start;
    }
    if rest_start < text.len() {
        pieces.push(SubPiece::Literal(text[rest_start..].to_owned()));
    }
    pieces
}
