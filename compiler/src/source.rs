//! Byte-range spans into one source text; lines and columns exist only for printing.

use std::ops::Range;

/// A byte range in the source text handed to the compiler.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    /// First byte. Offsets are 32-bit because a span sits in every AST and IR node: sources
    /// are limited to 4 GiB (`syntax::parse` says so), and a 100,000-step graph is 16 bytes per
    /// span smaller.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span from `start` to `end` (bytes).
    pub fn new(start: usize, end: usize) -> Self {
        Span { start: offset(start), end: offset(end) }
    }

    /// First byte, as an index into the text.
    pub fn start_byte(self) -> usize {
        self.start as usize
    }

    /// One past the last byte, as an index into the text.
    pub fn end_byte(self) -> usize {
        self.end as usize
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    /// The byte range, for slicing and for miette.
    pub fn range(self) -> Range<usize> {
        self.start_byte()..self.end_byte()
    }
}

/// The largest source `syntax::parse` accepts, in bytes: spans count in 32 bits.
pub const MAX_SOURCE_BYTES: usize = u32::MAX as usize;

/// A byte offset in 32 bits; the parser refuses longer sources, so this never saturates there.
fn offset(byte: usize) -> u32 {
    u32::try_from(byte).unwrap_or(u32::MAX)
}

impl std::fmt::Debug for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

impl From<pest::Span<'_>> for Span {
    fn from(span: pest::Span<'_>) -> Self {
        Span::new(span.start(), span.end())
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> Self {
        (span.start_byte(), span.end_byte() - span.start_byte()).into()
    }
}

/// Converts byte offsets to 1-based lines and columns.
pub struct LineIndex<'a> {
    text: Text<'a>,
    line_starts: Vec<usize>,
}

/// The indexed text: borrowed, or shared with whoever else holds it.
enum Text<'a> {
    Borrowed(&'a str),
    Shared(std::sync::Arc<str>),
}

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Text::Borrowed(text) => text,
            Text::Shared(text) => text,
        }
    }
}

/// A place in the text, in every unit an editor or a tool may count in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters (Unicode scalar values), as rustc counts.
    pub column_chars: usize,
    /// 1-based column, in UTF-8 bytes.
    pub column_bytes: usize,
    /// 0-based column, in UTF-16 code units: LSP's `character`.
    pub column_utf16: usize,
}

impl<'a> LineIndex<'a> {
    /// Indexes the line starts of `text`.
    pub fn new(text: &'a str) -> Self {
        LineIndex { line_starts: line_starts(text), text: Text::Borrowed(text) }
    }

    /// Indexes a shared text, keeping it alive.
    pub fn new_owned(text: std::sync::Arc<str>) -> LineIndex<'static> {
        LineIndex { line_starts: line_starts(&text), text: Text::Shared(text) }
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let position = self.position(offset);
        (position.line, position.column_chars)
    }

    /// Where a byte offset is, in every unit.
    pub fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let line = self.line_of(offset);
        let line_start = self.line_start(line).unwrap_or(0);
        let prefix = self.text.get(line_start..offset).unwrap_or_default();
        Position {
            line: line + 1,
            column_chars: prefix.chars().count() + 1,
            column_bytes: prefix.len() + 1,
            column_utf16: prefix.encode_utf16().count(),
        }
    }

    /// The 0-based line holding a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset).saturating_sub(1)
    }

    /// Where a 0-based line starts, if the text has it.
    pub fn line_start(&self, line: usize) -> Option<usize> {
        self.line_starts.get(line).copied()
    }

    /// The byte offset of a 0-based line and a 0-based column in UTF-16 code units (an LSP
    /// position), clamped to the line's end and the text's.
    pub fn offset(&self, line: usize, column_utf16: usize) -> usize {
        let Some(start) = self.line_start(line) else { return self.text.len() };
        // The line's text, without its terminator (`\n`, `\r\n` or `\r`).
        let next = self.line_start(line + 1).unwrap_or(self.text.len());
        let content = self.text.get(start..next).unwrap_or_default().trim_end_matches(['\n', '\r']);
        let end = start + content.len();
        let mut units = 0;
        for (index, c) in self.text.get(start..end).unwrap_or_default().char_indices() {
            if units >= column_utf16 {
                return start + index;
            }
            units += c.len_utf16();
        }
        end
    }

    /// The first line starting after `offset`.
    pub fn first_line_starting_after(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }
}

/// Where each line starts. A line ends at `\n`, `\r\n` or a lone `\r`, as the Language Server
/// Protocol counts them, so that a file with old Mac line endings is not one long line.
fn line_starts(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut starts = vec![0];
    for (index, byte) in bytes.iter().enumerate() {
        match byte {
            b'\n' => starts.push(index + 1),
            b'\r' if bytes.get(index + 1) != Some(&b'\n') => starts.push(index + 1),
            _ => {}
        }
    }
    starts
}

#[cfg(test)]
mod tests {
    use super::LineIndex;

    #[test]
    fn lines_end_at_a_line_feed_a_crlf_and_a_lone_carriage_return() {
        let index = LineIndex::new("a\rbc\r\nd\ne");
        assert_eq!(index.line_column(2), (2, 1));
        assert_eq!(index.line_column(6), (3, 1));
        assert_eq!(index.line_column(8), (4, 1));
        // An LSP position past a line's end stops before its terminator.
        assert_eq!(index.offset(1, 9), 4);
        assert_eq!(index.offset(0, 9), 1);
    }

    #[test]
    fn a_file_with_carriage_returns_only_checks_line_by_line() {
        let text = "graph g {\r    // a comment ends at the carriage return\r    topology = flow;\r    step a = map(body) { respond; }\r}\r";
        assert!(crate::check_source(text).is_ok());
        let broken = "graph g {\r    topology = flow;\r    step a = map(nothing_here) { respond; }\r}\r";
        let diagnostics = crate::check_source(broken).err().unwrap_or_default();
        let index = LineIndex::new(broken);
        let lines: Vec<usize> = diagnostics
            .iter()
            .filter_map(|d| d.labels.first())
            .map(|l| index.line_column(l.span.start as usize).0)
            .collect();
        assert_eq!(lines, [3], "{diagnostics:?}");
    }
}
