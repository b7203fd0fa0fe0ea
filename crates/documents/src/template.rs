//! Interpolated strings of AWSTOE component documents: `{{ Name }}` names a
//! document parameter, `{{ phase.Step.outputs.stdout }}` an earlier step's
//! standard output.
//!
//! Parsing here only checks the syntax; whether a parameter is declared and a
//! step runs earlier is the component reader's business, since it knows the
//! whole document.

use std::fmt;

use crate::component::PhaseName;
use crate::reference::is_name;

/// A string with references, split into segments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pub segments: Vec<Segment>,
}

/// A piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    /// `{{ Name }}`: the value of a document parameter.
    Parameter(String),
    /// `{{ phase.Step.outputs.stdout }}`: what an earlier step printed.
    StepOutput {
        phase: PhaseName,
        step: String,
    },
}

/// A reference had no value when a template was rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no value for the reference {reference}")]
pub struct RenderError {
    /// The reference as written canonically, like `{{ Name }}`.
    pub reference: String,
}

impl Template {
    /// A template without references.
    pub fn literal(text: impl Into<String>) -> Template {
        let text = text.into();
        if text.is_empty() {
            Template::default()
        } else {
            Template { segments: vec![Segment::Literal(text)] }
        }
    }

    /// Parses `text`, checking only the syntax of its references.
    ///
    /// # Errors
    /// Returns the message of every malformed or unterminated `{{`.
    pub fn parse(text: &str) -> Result<Template, Vec<String>> {
        let parsed = parse_template(text);
        if parsed.errors.is_empty() {
            Ok(parsed.template)
        } else {
            Err(parsed.errors.into_iter().map(|error| error.message).collect())
        }
    }

    /// The text, if the template has no references.
    pub fn as_literal(&self) -> Option<String> {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The references, in order.
    pub fn references(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter().filter(|segment| !matches!(segment, Segment::Literal(_)))
    }

    /// The string with every reference replaced by `resolve`'s answer.
    ///
    /// # Errors
    /// Returns the first reference `resolve` has no value for.
    pub fn render(
        &self,
        resolve: &impl Fn(&Segment) -> Option<String>,
    ) -> Result<String, RenderError> {
        let mut rendered = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => rendered.push_str(text),
                reference => match resolve(reference) {
                    Some(value) => rendered.push_str(&value),
                    None => return Err(RenderError { reference: reference.to_string() }),
                },
            }
        }
        Ok(rendered)
    }
}

/// Writes the template back, with references in canonical form `{{ X }}`.
impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.segments.iter().try_for_each(|segment| write!(f, "{segment}"))
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Literal(text) => f.write_str(text),
            Segment::Parameter(name) => write!(f, "{{{{ {name} }}}}"),
            Segment::StepOutput { phase, step } => {
                write!(f, "{{{{ {}.{step}.outputs.stdout }}}}", phase.as_str())
            }
        }
    }
}

/// A template with where its references and errors are, as byte offsets of
/// their `{{` in the text.
#[derive(Debug)]
pub(crate) struct ParsedTemplate {
    pub(crate) template: Template,
    /// `(offset of the {{, index of the segment)` for each reference.
    pub(crate) references: Vec<(usize, usize)>,
    pub(crate) errors: Vec<TemplateError>,
}

#[derive(Debug)]
pub(crate) struct TemplateError {
    /// Byte offset of the `{{` at fault.
    pub(crate) offset: usize,
    pub(crate) message: String,
}

pub(crate) fn parse_template(text: &str) -> ParsedTemplate {
    let mut segments = Vec::new();
    let mut references = Vec::new();
    let mut errors = Vec::new();
    let mut literal = String::new();
    let mut rest_start = 0;
    while let Some(found) = text[rest_start..].find("{{") {
        let open = rest_start + found;
        literal.push_str(&text[rest_start..open]);
        let Some(close_found) = text[open + 2..].find("}}") else {
            errors.push(TemplateError {
                offset: open,
                message: "found `{{` without a closing `}}`".to_owned(),
            });
            literal.push_str(&text[open..]);
            rest_start = text.len();
            break;
        };
        let close = open + 2 + close_found;
        let inner = &text[open + 2..close];
        match parse_reference(inner) {
            Ok(segment) => {
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                references.push((open, segments.len()));
                segments.push(segment);
            }
            Err(message) => {
                errors.push(TemplateError { offset: open, message });
                literal.push_str(&text[open..close + 2]);
            }
        }
        rest_start = close + 2;
    }
    literal.push_str(&text[rest_start..]);
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal));
    }
    ParsedTemplate { template: Template { segments }, references, errors }
}

fn parse_reference(inner: &str) -> Result<Segment, String> {
    let trimmed = inner.trim_matches([' ', '\t']);
    let expected = "expected `{{ ParameterName }}` or `{{ phase.StepName.outputs.stdout }}`";
    if !trimmed.contains('.') {
        if is_name(trimmed) {
            return Ok(Segment::Parameter(trimmed.to_owned()));
        }
        return Err(format!("found the reference `{{{{{inner}}}}}`; {expected}"));
    }
    let parts: Vec<&str> = trimmed.split('.').collect();
    if let [phase, step, "outputs", "stdout"] = parts[..] {
        let Some(phase) = PhaseName::from_name(phase) else {
            return Err(format!(
                "found the phase `{phase}` in `{{{{{inner}}}}}`; expected build, validate or test"
            ));
        };
        if is_name(step) {
            return Ok(Segment::StepOutput { phase, step: step.to_owned() });
        }
    }
    Err(format!("found the reference `{{{{{inner}}}}}`; {expected}"))
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(text: &str, expect: Expect) {
        let parsed = parse_template(text);
        let mut out = String::new();
        for segment in &parsed.template.segments {
            out.push_str(&format!("{segment:?}\n"));
        }
        for (offset, idx) in &parsed.references {
            out.push_str(&format!("reference at {offset}: segment {idx}\n"));
        }
        for error in &parsed.errors {
            out.push_str(&format!("error at {}: {}\n", error.offset, error.message));
        }
        expect.assert_eq(&out);
    }

    #[test]
    fn literal_only() {
        check(
            "echo hello",
            expect![[r#"
            Literal("echo hello")
        "#]],
        );
        check("", expect![""]);
    }

    #[test]
    fn references_with_and_without_spaces() {
        check(
            "a {{Name}} b {{ build.Step-1.outputs.stdout }}{{\tx_y }}",
            expect![[r#"
            Literal("a ")
            Parameter("Name")
            Literal(" b ")
            StepOutput { phase: Build, step: "Step-1" }
            Parameter("x_y")
            reference at 2: segment 1
            reference at 13: segment 3
            reference at 46: segment 4
        "#]],
        );
    }

    #[test]
    fn malformed_references() {
        check(
            "docker inspect --format '{{.Id}}' {{ }} {{ deploy.S.outputs.stdout }} {{ a.b }}",
            expect![[r#"
            Literal("docker inspect --format '{{.Id}}' {{ }} {{ deploy.S.outputs.stdout }} {{ a.b }}")
            error at 25: found the reference `{{.Id}}`; expected `{{ ParameterName }}` or `{{ phase.StepName.outputs.stdout }}`
            error at 34: found the reference `{{ }}`; expected `{{ ParameterName }}` or `{{ phase.StepName.outputs.stdout }}`
            error at 40: found the phase `deploy` in `{{ deploy.S.outputs.stdout }}`; expected build, validate or test
            error at 70: found the reference `{{ a.b }}`; expected `{{ ParameterName }}` or `{{ phase.StepName.outputs.stdout }}`
        "#]],
        );
    }

    #[test]
    fn unterminated() {
        check(
            "x {{ A }} y {{ B",
            expect![[r#"
            Literal("x ")
            Parameter("A")
            Literal(" y {{ B")
            reference at 2: segment 1
            error at 12: found `{{` without a closing `}}`
        "#]],
        );
    }

    #[test]
    fn renders_and_displays() {
        let template = Template::parse("cp {{ Source }} {{build.Fetch.outputs.stdout}}/x").unwrap();
        assert_eq!(template.to_string(), "cp {{ Source }} {{ build.Fetch.outputs.stdout }}/x");
        assert_eq!(template.as_literal(), None);
        let rendered = template.render(&|segment: &Segment| match segment {
            Segment::Parameter(name) => Some(format!("<{name}>")),
            Segment::StepOutput { step, .. } => Some(step.clone()),
            Segment::Literal(_) => None,
        });
        assert_eq!(rendered.unwrap(), "cp <Source> Fetch/x");
        let error = template.render(&|_: &Segment| None).unwrap_err();
        expect!["no value for the reference {{ Source }}"].assert_eq(&error.to_string());
        assert_eq!(Template::literal("a").as_literal().as_deref(), Some("a"));
        assert_eq!(Template::literal("").as_literal().as_deref(), Some(""));
    }
}
