//! Source text and positions in it: what a diagnostic points at.
//!
//! Positions are 1-based lines and columns, columns counted in characters
//! (Unicode scalar values), as editors and `file:line:col` conventions expect.

use std::fmt;

/// A document's text, as given by the caller, with the name shown to the user
/// (usually the path it was read from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        SourceFile { name: name.into(), text: text.into() }
    }
}

/// A place in a source file: 1-based line, 1-based column in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl Position {
    /// The first character of a file.
    pub const START: Position = Position { line: 1, column: 1 };

    pub const fn new(line: u32, column: u32) -> Position {
        Position { line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A range of a source file; `end` is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub start: Position,
    pub end: Position,
}

impl Span {
    pub const fn new(start: Position, end: Position) -> Span {
        Span { start, end }
    }

    /// An empty span at `position`.
    pub const fn at(position: Position) -> Span {
        Span { start: position, end: position }
    }
}

/// Maps positions back to byte offsets in the text, to look inside a scalar's
/// source (for example to find where a `{{` reference starts).
#[derive(Debug)]
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of the start of each line; `line_starts[0]` is line 1.
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> LineIndex<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(offset, _)| offset + 1));
        LineIndex { text, line_starts }
    }

    /// The byte offset of `position`, or `None` if it is outside the text.
    pub(crate) fn byte_offset(&self, position: Position) -> Option<usize> {
        let line_idx = usize::try_from(position.line).ok()?.checked_sub(1)?;
        let line_start = *self.line_starts.get(line_idx)?;
        let skip = usize::try_from(position.column).ok()?.checked_sub(1)?;
        let rest = &self.text[line_start..];
        if skip == 0 {
            return Some(line_start);
        }
        match rest.char_indices().nth(skip) {
            Some((offset, _)) => Some(line_start + offset),
            // The position just past the last character of the text.
            None if rest.chars().count() == skip => Some(self.text.len()),
            None => None,
        }
    }

    /// The text between two positions, if both are inside the text.
    pub(crate) fn slice(&self, span: Span) -> Option<&'a str> {
        let start = self.byte_offset(span.start)?;
        let end = self.byte_offset(span.end)?;
        self.text.get(start..end)
    }
}

/// The position reached after walking over `text` from `start`.
pub(crate) fn advance(start: Position, text: &str) -> Position {
    let mut position = start;
    for character in text.chars() {
        if character == '\n' {
            position.line += 1;
            position.column = 1;
        } else {
            position.column += 1;
        }
    }
    position
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_offsets_count_characters() {
        let index = LineIndex::new("ab\né x\n");
        assert_eq!(index.byte_offset(Position::new(1, 1)), Some(0));
        assert_eq!(index.byte_offset(Position::new(2, 1)), Some(3));
        assert_eq!(index.byte_offset(Position::new(2, 2)), Some(5), "é is two bytes");
        assert_eq!(index.byte_offset(Position::new(3, 1)), Some(8));
        assert_eq!(index.byte_offset(Position::new(4, 1)), None);
        assert_eq!(index.slice(Span::new(Position::new(2, 1), Position::new(2, 4))), Some("é x"));
        assert_eq!(advance(Position::new(1, 3), "x\nyz"), Position::new(2, 3));
    }
}
