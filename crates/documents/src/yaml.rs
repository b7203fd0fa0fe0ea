//! A small spanned YAML tree, built from `saphyr-parser` events.
//!
//! Every node keeps its source span, its tag (`!Ref`, `!Sub`, `!GetAtt`... for
//! CloudFormation short forms) and, for scalars, the original text and style,
//! so `"1.0"` stays a string and `1.0` keeps its spelling.
//!
//! Design notes:
//! - Scalars resolve with the YAML 1.2 core schema: `true`/`false`, `null`/`~`
//!   and numbers; plain `yes`/`no`/`on`/`off` are strings.
//! - JSON is YAML, so JSON documents parse here too.
//! - One document per file; a second one is reported.
//! - Aliases (`*name`) are refused: CloudFormation refuses them as well, and
//!   refusing them rules out "billion laughs" expansions. Anchors alone are
//!   harmless and ignored.
//! - Duplicate mapping keys are reported; the tree keeps every entry, readers
//!   use the first.
//! - Core-schema tags (`!!str`, `!!int`...) are applied and dropped; any other
//!   tag is kept as written and the value resolved as if it were untagged.

mod reader;

pub use reader::MappingReader;

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScanError, StrInput, Tag};

use crate::diagnostic::{Diagnostics, Reporter};
use crate::source::{Position, SourceFile, Span};

/// Collections nested deeper than this are refused, to bound recursion.
const MAX_DEPTH: usize = 128;

/// A YAML node with its source span.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
    /// An application tag as written, like `!Ref`; `None` when untagged or
    /// when the tag was a core-schema one (already applied to `value`).
    pub tag: Option<String>,
    /// For scalars, the text and style as written; `None` for collections.
    pub scalar: Option<Scalar>,
}

/// A node's value, resolved with the YAML 1.2 core schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Sequence(Vec<Node>),
    /// Entries in document order, duplicates included (they are reported).
    Mapping(Vec<(Node, Node)>),
}

/// A scalar's text and style as written (after YAML unescaping and folding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar {
    pub text: String,
    pub style: ScalarStyle,
}

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarStyle {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    /// A `|` block.
    Literal,
    /// A `>` block.
    Folded,
}

impl ScalarStyle {
    pub fn is_quoted(self) -> bool {
        matches!(self, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted)
    }
}

impl Node {
    /// The scalar's text as written, for any scalar (including numbers, booleans
    /// and null); `None` for collections.
    pub fn scalar_text(&self) -> Option<&str> {
        self.scalar.as_ref().map(|scalar| scalar.text.as_str())
    }

    /// The string, if the node is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The entries, if the node is a mapping.
    pub fn as_mapping(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Mapping(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items, if the node is a sequence.
    pub fn as_sequence(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Sequence(items) => Some(items),
            _ => None,
        }
    }

    /// The value of the first entry whose key is the scalar `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_mapping()?
            .iter()
            .find(|(candidate, _)| candidate.scalar_text() == Some(key))
            .map(|(_, value)| value)
    }

    /// What the node is, for messages: "a sequence", "the string \"abc\"",
    /// "the integer 5", "an empty value"...
    pub fn describe(&self) -> String {
        let text = self.scalar_text().unwrap_or_default();
        let description = match &self.value {
            Value::Null if text.is_empty() => "an empty value".to_owned(),
            Value::Null => "null".to_owned(),
            Value::Bool(value) => format!("the boolean {value}"),
            Value::Int(_) => format!("the integer {text}"),
            Value::Float(_) => format!("the number {text}"),
            Value::String(value) => format!("the string {:?}", shorten(value)),
            Value::Sequence(_) => "a sequence".to_owned(),
            Value::Mapping(_) => "a mapping".to_owned(),
        };
        match &self.tag {
            Some(tag) => format!("{description} tagged {tag}"),
            None => description,
        }
    }
}

/// At most 40 characters of `text`, with an ellipsis when cut.
fn shorten(text: &str) -> String {
    const LIMIT: usize = 40;
    if text.chars().count() <= LIMIT {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(LIMIT).collect();
        short.push('…');
        short
    }
}

/// Parses one YAML (or JSON) document.
///
/// # Errors
/// Returns every diagnostic: a syntax error (only the first, with its
/// position), duplicate keys, aliases, bad core-schema tags, a second document.
pub fn parse_yaml(file: &SourceFile) -> Result<Node, Diagnostics> {
    let mut reporter = Reporter::new(file.name.clone());
    let node = parse_yaml_reporting(file, &mut reporter);
    reporter.finish_option(node)
}

/// Parses one YAML (or JSON) document, reporting problems to `reporter`.
///
/// Returns `None` only after a syntax error; other problems (duplicate keys,
/// aliases...) are reported and the tree is still returned, so that readers
/// can report their own problems too.
pub fn parse_yaml_reporting(file: &SourceFile, reporter: &mut Reporter) -> Option<Node> {
    let language = if looks_like_json(file) { "JSON" } else { "YAML" };
    let mut builder = TreeBuilder { parser: Parser::new_from_str(&file.text), reporter, language };
    builder.stream().ok()
}

/// Whether `file` is meant as JSON: named `.json`, or an object whose first
/// key is quoted (`{"...`), as JSON's are and YAML's flow mappings seldom.
/// Its syntax errors then say "invalid JSON".
fn looks_like_json(file: &SourceFile) -> bool {
    if file.name.to_ascii_lowercase().ends_with(".json") {
        return true;
    }
    let text = file.text.trim_start_matches('\u{feff}').trim_start();
    text.strip_prefix('{').is_some_and(|rest| {
        let rest = rest.trim_start();
        rest.starts_with('"') || rest.starts_with('}')
    })
}

/// A syntax error was reported; building stops.
struct Stopped;

struct TreeBuilder<'input, 'r> {
    parser: Parser<'input, StrInput<'input>>,
    reporter: &'r mut Reporter,
    /// What syntax errors call the text: `YAML`, or `JSON` for a JSON file.
    language: &'static str,
}

fn position(marker: Marker) -> Position {
    let saturate = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Position { line: saturate(marker.line()), column: saturate(marker.col()).saturating_add(1) }
}

fn span(span: saphyr_parser::Span) -> Span {
    Span { start: position(span.start), end: position(span.end) }
}

impl<'input> TreeBuilder<'input, '_> {
    fn next(&mut self) -> Result<(Event<'input>, Span), Stopped> {
        match self.parser.next_event() {
            Some(Ok((event, event_span))) => Ok((event, span(event_span))),
            Some(Err(error)) => Err(self.syntax_error(&error)),
            None => {
                self.reporter.error(Span::at(Position::START), "unexpected end of the YAML stream");
                Err(Stopped)
            }
        }
    }

    fn syntax_error(&mut self, error: &ScanError) -> Stopped {
        let at = position(*error.marker());
        self.reporter.error(Span::at(at), format!("invalid {}: {}", self.language, error.info()));
        Stopped
    }

    fn unexpected(&mut self, event: &Event<'_>, at: Span) -> Stopped {
        self.reporter.error(at, format!("internal error: unexpected YAML event {event:?}"));
        Stopped
    }

    fn stream(&mut self) -> Result<Node, Stopped> {
        let (event, at) = self.next()?;
        if event != Event::StreamStart {
            return Err(self.unexpected(&event, at));
        }
        let (event, at) = self.next()?;
        let root = match event {
            Event::StreamEnd => {
                return Ok(Node {
                    value: Value::Null,
                    span: Span::at(Position::START),
                    tag: None,
                    scalar: Some(Scalar { text: String::new(), style: ScalarStyle::Plain }),
                });
            }
            Event::DocumentStart(_) => {
                let (event, at) = self.next()?;
                self.node(event, at, 0)?
            }
            event => return Err(self.unexpected(&event, at)),
        };
        let (event, at) = self.next()?;
        if event != Event::DocumentEnd {
            return Err(self.unexpected(&event, at));
        }
        let (event, at) = self.next()?;
        match event {
            Event::StreamEnd => {}
            Event::DocumentStart(_) => {
                self.reporter.error(at, "found a second YAML document; expected a single document");
            }
            event => return Err(self.unexpected(&event, at)),
        }
        Ok(root)
    }

    fn node(&mut self, event: Event<'input>, at: Span, depth: usize) -> Result<Node, Stopped> {
        match event {
            Event::Scalar(text, style, _anchor, tag) => {
                let style = match style {
                    saphyr_parser::ScalarStyle::Plain => ScalarStyle::Plain,
                    saphyr_parser::ScalarStyle::SingleQuoted => ScalarStyle::SingleQuoted,
                    saphyr_parser::ScalarStyle::DoubleQuoted => ScalarStyle::DoubleQuoted,
                    saphyr_parser::ScalarStyle::Literal => ScalarStyle::Literal,
                    saphyr_parser::ScalarStyle::Folded => ScalarStyle::Folded,
                };
                let (value, tag) = match resolve_scalar(&text, style, tag.as_deref()) {
                    Ok(resolved) => resolved,
                    Err(message) => {
                        self.reporter.error(at, message);
                        (Value::String(text.to_string()), None)
                    }
                };
                Ok(Node {
                    value,
                    span: at,
                    tag,
                    scalar: Some(Scalar { text: text.into_owned(), style }),
                })
            }
            Event::SequenceStart(_anchor, tag) => {
                if depth >= MAX_DEPTH {
                    return self.too_deep(at);
                }
                let tag = self.collection_tag(tag.as_deref(), "seq", at);
                let mut items = Vec::new();
                loop {
                    let (event, event_at) = self.next()?;
                    if event == Event::SequenceEnd {
                        let span = Span::new(at.start, event_at.end);
                        return Ok(Node { value: Value::Sequence(items), span, tag, scalar: None });
                    }
                    items.push(self.node(event, event_at, depth + 1)?);
                }
            }
            Event::MappingStart(_anchor, tag) => {
                if depth >= MAX_DEPTH {
                    return self.too_deep(at);
                }
                let tag = self.collection_tag(tag.as_deref(), "map", at);
                let mut entries: Vec<(Node, Node)> = Vec::new();
                let mut first_seen: HashMap<(&'static str, String), Position> = HashMap::new();
                loop {
                    let (event, event_at) = self.next()?;
                    if event == Event::MappingEnd {
                        let span = Span::new(at.start, event_at.end);
                        return Ok(Node {
                            value: Value::Mapping(entries),
                            span,
                            tag,
                            scalar: None,
                        });
                    }
                    let key = self.node(event, event_at, depth + 1)?;
                    let (event, event_at) = self.next()?;
                    let value = self.node(event, event_at, depth + 1)?;
                    if let Some(identity) = key_identity(&key) {
                        let text = identity.1.clone();
                        if let Some(first) = first_seen.get(&identity) {
                            self.reporter.error(
                                key.span,
                                format!("duplicate key `{text}`, first given at {first}"),
                            );
                        } else {
                            first_seen.insert(identity, key.span.start);
                        }
                    }
                    entries.push((key, value));
                }
            }
            Event::Alias(_) => {
                self.reporter.error(
                    at,
                    "found an alias; aliases (`*name`) are not supported, write the value out",
                );
                Ok(Node {
                    value: Value::Null,
                    span: at,
                    tag: None,
                    scalar: Some(Scalar { text: String::new(), style: ScalarStyle::Plain }),
                })
            }
            event => Err(self.unexpected(&event, at)),
        }
    }

    fn too_deep(&mut self, at: Span) -> Result<Node, Stopped> {
        self.reporter.error(
            at,
            format!("found collections nested deeper than {MAX_DEPTH} levels; expected shallower nesting"),
        );
        Err(Stopped)
    }

    /// The tag to keep on a collection; core-schema tags must match the kind.
    fn collection_tag(&mut self, tag: Option<&Tag>, kind: &str, at: Span) -> Option<String> {
        let tag = tag?;
        if tag.is_yaml_core_schema() {
            if tag.suffix != kind {
                self.reporter.error(
                    at,
                    format!(
                        "found the tag !!{} on a collection; expected !!{kind} or no tag",
                        tag.suffix
                    ),
                );
            }
            return None;
        }
        Some(tag.to_string())
    }
}

/// What makes two mapping keys the same: their kind and their text.
fn key_identity(key: &Node) -> Option<(&'static str, String)> {
    let kind = match key.value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::String(_) => "string",
        Value::Sequence(_) | Value::Mapping(_) => return None,
    };
    Some((kind, key.scalar_text()?.to_owned()))
}

/// Resolves a scalar to a value and the tag to keep.
fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
) -> Result<(Value, Option<String>), String> {
    let Some(tag) = tag else {
        return Ok((resolve_untagged(text, style), None));
    };
    if tag.is_yaml_core_schema() {
        let value = match tag.suffix.as_str() {
            "str" => Some(Value::String(text.to_owned())),
            "int" => parse_int(text).map(Value::Int),
            "float" => {
                parse_int(text).map(|n| n as f64).or_else(|| parse_float(text)).map(Value::Float)
            }
            "bool" => parse_bool(text).map(Value::Bool),
            "null" => is_null(text).then_some(Value::Null),
            other => {
                return Err(format!(
                    "found the tag !!{other}; expected one of !!str, !!int, !!float, !!bool, !!null"
                ));
            }
        };
        return match value {
            Some(value) => Ok((value, None)),
            None => Err(format!(
                "found {text:?} tagged !!{}; expected a valid {}",
                tag.suffix, tag.suffix
            )),
        };
    }
    // The non-specific tag `!` makes a scalar a string.
    let non_specific = (tag.handle.is_empty() && tag.suffix == "!")
        || (tag.handle == "!" && tag.suffix.is_empty());
    if non_specific {
        return Ok((Value::String(text.to_owned()), None));
    }
    Ok((resolve_untagged(text, style), Some(tag.to_string())))
}

fn resolve_untagged(text: &str, style: ScalarStyle) -> Value {
    if style != ScalarStyle::Plain {
        return Value::String(text.to_owned());
    }
    if is_null(text) {
        Value::Null
    } else if let Some(value) = parse_bool(text) {
        Value::Bool(value)
    } else if let Some(value) = parse_int(text) {
        Value::Int(value)
    } else if let Some(value) = parse_float(text) {
        Value::Float(value)
    } else if looks_like_int(text) {
        // An integer too large for i64 is still a number, not a string.
        Value::Float(text.parse().unwrap_or(f64::NAN))
    } else {
        Value::String(text.to_owned())
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn looks_like_int(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Core-schema integers: `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`.
fn parse_int(text: &str) -> Option<i64> {
    if let Some(octal) = text.strip_prefix("0o") {
        return (!octal.is_empty() && octal.bytes().all(|b| (b'0'..=b'7').contains(&b)))
            .then(|| i64::from_str_radix(octal, 8).ok())
            .flatten();
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return (!hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| i64::from_str_radix(hex, 16).ok())
            .flatten();
    }
    if !looks_like_int(text) {
        return None;
    }
    text.parse().ok()
}

/// Core-schema floats:
/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, `[-+]?\.inf`, `\.nan`.
fn parse_float(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let negative = text.starts_with('-');
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return Some(if negative { f64::NEG_INFINITY } else { f64::INFINITY });
    }
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return Some(f64::NAN);
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(idx) => (&unsigned[..idx], Some(&unsigned[idx + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match fraction {
        None => !whole.is_empty() && all_digits(whole),
        Some(fraction) if whole.is_empty() => !fraction.is_empty() && all_digits(fraction),
        Some(fraction) => all_digits(whole) && all_digits(fraction),
    };
    let exponent_ok = exponent.is_none_or(|exponent| {
        let digits = exponent.strip_prefix(['-', '+']).unwrap_or(exponent);
        !digits.is_empty() && all_digits(digits)
    });
    if !(mantissa_ok && exponent_ok) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests;
