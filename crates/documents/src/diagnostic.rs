//! Diagnostics: what is wrong with a document, and where.
//!
//! Validation never stops at the first problem: a [`Reporter`] collects every
//! diagnostic while a document is read, and the caller gets them all at once
//! as [`Diagnostics`], sorted by position.

use std::fmt;

use crate::source::Span;

/// One problem in a document.
///
/// The message is a lowercase fragment without a trailing period that says
/// what was found and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file's name as shown to the user ([`crate::SourceFile::name`]).
    pub file: String,
    pub span: Span,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: error: {}", self.file, self.span.start, self.message)
    }
}

/// Every problem found in a document, sorted by position; never empty when
/// returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (idx, diagnostic) in self.0.iter().enumerate() {
            if idx > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostics {
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Collects the diagnostics of one file while it is read.
#[derive(Debug)]
pub struct Reporter {
    file: String,
    diagnostics: Vec<Diagnostic>,
}

impl Reporter {
    /// A reporter for the file shown to the user as `file`.
    pub fn new(file: impl Into<String>) -> Reporter {
        Reporter { file: file.into(), diagnostics: Vec::new() }
    }

    /// The file's name as shown to the user.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Records a problem at `span`.
    pub fn error(&mut self, span: Span, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            file: self.file.clone(),
            span,
            message: message.into(),
        });
    }

    /// Records problems found elsewhere in the same file: a lenient parse's,
    /// or a caller's own checks (registered references, for example), so
    /// that they are reported together with the rest, in position order.
    pub fn extend(&mut self, diagnostics: impl IntoIterator<Item = Diagnostic>) {
        self.diagnostics.extend(diagnostics);
    }

    pub fn has_errors(&self) -> bool {
        !self.diagnostics.is_empty()
    }

    /// The diagnostics so far, sorted by position (stable: problems at the
    /// same place keep the order they were found in).
    pub fn into_diagnostics(mut self) -> Vec<Diagnostic> {
        self.diagnostics.sort_by_key(|diagnostic| diagnostic.span.start);
        self.diagnostics
    }

    /// `value` if nothing was reported, else every diagnostic.
    ///
    /// # Errors
    /// Returns the diagnostics when at least one was reported.
    pub fn finish<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.has_errors() { Err(Diagnostics(self.into_diagnostics())) } else { Ok(value) }
    }

    /// Like [`Reporter::finish`] for readers that give up on a value only
    /// after reporting why.
    ///
    /// # Errors
    /// Returns the diagnostics when at least one was reported, or when there
    /// is no value (then with an internal error, since a reader dropped a value
    /// without saying why).
    pub fn finish_option<T>(mut self, value: Option<T>) -> Result<T, Diagnostics> {
        match value {
            Some(value) => self.finish(value),
            None => {
                if !self.has_errors() {
                    let start = crate::source::Position::START;
                    self.error(
                        Span::at(start),
                        "internal error: the document was rejected without a diagnostic",
                    );
                }
                Err(Diagnostics(self.into_diagnostics()))
            }
        }
    }
}
