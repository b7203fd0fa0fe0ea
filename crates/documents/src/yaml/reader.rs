//! Typed access to a YAML tree with diagnostics: a [`MappingReader`] for
//! mappings with known keys, and `expect_*` accessors on [`Node`] that report
//! "expected a string, found a sequence" and the like.
//!
//! Readers report and carry on: an accessor returns `None` after reporting,
//! the caller skips what depends on that value and reads everything else, so
//! one pass finds every problem.

use crate::diagnostic::Reporter;
use crate::source::Span;
use crate::yaml::{Node, Value};

/// Reads a mapping whose keys are known: every key asked for (with
/// [`MappingReader::required`], [`MappingReader::optional`]...) is allowed, and
/// [`MappingReader::finish`] reports every other key with the allowed list.
#[derive(Debug)]
pub struct MappingReader<'a> {
    node: &'a Node,
    entries: &'a [(Node, Node)],
    used: Vec<bool>,
    known: Vec<String>,
    unsupported: Vec<(String, String)>,
}

impl<'a> MappingReader<'a> {
    /// A reader for `node`, or `None` after reporting that it is not a mapping.
    pub fn new(node: &'a Node, reporter: &mut Reporter) -> Option<MappingReader<'a>> {
        match node.as_mapping() {
            Some(entries) if node.tag.is_none() => Some(MappingReader {
                node,
                entries,
                used: vec![false; entries.len()],
                known: Vec::new(),
                unsupported: Vec::new(),
            }),
            _ => {
                reporter.error(node.span, format!("expected a mapping, found {}", node.describe()));
                None
            }
        }
    }

    /// The mapping being read.
    pub fn node(&self) -> &'a Node {
        self.node
    }

    pub fn span(&self) -> Span {
        self.node.span
    }

    /// The key and value of `key`, null values included. Marks `key` as allowed.
    pub fn entry(&mut self, key: &str) -> Option<(&'a Node, &'a Node)> {
        if !self.known.iter().any(|known| known == key) {
            self.known.push(key.to_owned());
        }
        let mut found = None;
        for (idx, (candidate, value)) in self.entries.iter().enumerate() {
            if is_key(candidate, key) {
                self.used[idx] = true;
                // Duplicates were reported by the parser; the first one wins.
                found = found.or(Some((candidate, value)));
            }
        }
        found
    }

    /// The value of `key`; `None` when absent or null (`key:` or `key: ~`).
    pub fn optional(&mut self, key: &str) -> Option<&'a Node> {
        self.entry(key).map(|(_, value)| value).filter(|value| !value.is_null())
    }

    /// The value of `key` (possibly null), or `None` after reporting that it
    /// is missing.
    pub fn required(&mut self, key: &str, reporter: &mut Reporter) -> Option<&'a Node> {
        let found = self.entry(key).map(|(_, value)| value);
        if found.is_none() {
            reporter.error(self.node.span, format!("missing required key `{key}`"));
        }
        found
    }

    /// Declares `key` as known but not supported; `finish` reports it, with
    /// `reason`, if present.
    pub fn unsupported(&mut self, key: &str, reason: &str) {
        self.unsupported.push((key.to_owned(), reason.to_owned()));
    }

    /// Reports every key that was not asked for.
    pub fn finish(self, reporter: &mut Reporter) {
        for ((key, _), used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let Some(text) = key.scalar_text().filter(|_| !matches!(key.value, Value::Null)) else {
                reporter
                    .error(key.span, format!("expected a string key, found {}", key.describe()));
                continue;
            };
            if let Some((_, reason)) = self.unsupported.iter().find(|(name, _)| name == text) {
                reporter.error(
                    key.span,
                    format!("found key `{text}`, which is not supported: {reason}"),
                );
            } else if let Some(known) =
                self.known.iter().find(|known| known.eq_ignore_ascii_case(text))
            {
                reporter.error(key.span, format!("unknown key `{text}`, did you mean `{known}`?"));
            } else {
                let allowed: Vec<String> =
                    self.known.iter().map(|known| format!("`{known}`")).collect();
                reporter.error(
                    key.span,
                    format!("unknown key `{text}`; expected one of {}", allowed.join(", ")),
                );
            }
        }
    }
}

fn is_key(candidate: &Node, key: &str) -> bool {
    candidate.tag.is_none()
        && !matches!(candidate.value, Value::Sequence(_) | Value::Mapping(_))
        && candidate.scalar_text() == Some(key)
}

impl Node {
    /// The text of an untagged, non-null scalar: a string, or a number or
    /// boolean read as the string it was written as (as AWSTOE reads YAML);
    /// else `None` after reporting.
    pub fn expect_string(&self, reporter: &mut Reporter) -> Option<&str> {
        match (&self.value, &self.tag) {
            (Value::Null | Value::Sequence(_) | Value::Mapping(_), _) | (_, Some(_)) => {
                reporter.error(self.span, format!("expected a string, found {}", self.describe()));
                None
            }
            _ => self.scalar_text(),
        }
    }

    /// A boolean (`true` or `false`), else `None` after reporting.
    pub fn expect_bool(&self, reporter: &mut Reporter) -> Option<bool> {
        match (&self.value, &self.tag) {
            (Value::Bool(value), None) => Some(*value),
            _ => {
                let found = self.describe();
                reporter
                    .error(self.span, format!("expected a boolean (true or false), found {found}"));
                None
            }
        }
    }

    /// An integer, else `None` after reporting.
    pub fn expect_integer(&self, reporter: &mut Reporter) -> Option<i64> {
        match (&self.value, &self.tag) {
            (Value::Int(value), None) => Some(*value),
            _ => {
                reporter
                    .error(self.span, format!("expected an integer, found {}", self.describe()));
                None
            }
        }
    }

    /// A finite number (integer or not), else `None` after reporting.
    pub fn expect_number(&self, reporter: &mut Reporter) -> Option<f64> {
        match (&self.value, &self.tag) {
            (Value::Int(value), None) => Some(*value as f64),
            (Value::Float(value), None) if value.is_finite() => Some(*value),
            _ => {
                reporter.error(self.span, format!("expected a number, found {}", self.describe()));
                None
            }
        }
    }

    /// The items of a sequence, else `None` after reporting.
    pub fn expect_sequence(&self, reporter: &mut Reporter) -> Option<&[Node]> {
        match (&self.value, &self.tag) {
            (Value::Sequence(items), None) => Some(items),
            _ => {
                reporter
                    .error(self.span, format!("expected a sequence, found {}", self.describe()));
                None
            }
        }
    }

    /// A mapping reader, else `None` after reporting.
    pub fn expect_mapping(&self, reporter: &mut Reporter) -> Option<MappingReader<'_>> {
        MappingReader::new(self, reporter)
    }
}
