//! Rendering diagnostics for people (miette's graphical report) and for tools (JSON Lines, one
//! object per diagnostic, as rustc's `--error-format=json` prints them).

use crate::diagnostic::{Diagnostic, Level};
use crate::source::{LineIndex, Span};
use miette::{
    GraphicalReportHandler, GraphicalTheme, MietteError, MietteSpanContents, Report, SourceCode, SourceSpan,
    SpanContents,
};
use std::sync::Arc;

/// How human-readable diagnostics are drawn.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// ANSI colours.
    pub color: bool,
    /// Wrap width in columns.
    pub width: usize,
}

impl Style {
    /// No colour, 80 columns: stable output for snapshots and logs.
    pub const PLAIN: Style = Style { color: false, width: 80 };
}

/// Lines longer than this are not drawn as snippets: a terminal cannot show them, and miette
/// cannot pad past 65,535 columns.
const LONGEST_DRAWN_LINE: usize = 2_000;

/// Renders every diagnostic against its source, one after another. The source is indexed once,
/// so printing N diagnostics costs O(N) snippets, not N passes over the text.
pub fn render_human(file_name: &str, text: &str, diagnostics: &[Diagnostic], style: Style) -> String {
    let theme = if style.color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(style.width).with_links(false);
    let source = Arc::new(IndexedSource::new(file_name, text));
    let mut out = String::new();
    for diagnostic in diagnostics {
        if diagnostic.labels.iter().any(|label| source.line_length_at(label.span.start_byte()) > LONGEST_DRAWN_LINE) {
            out.push_str(&render_without_snippet(&source, diagnostic));
            out.push('\n');
            continue;
        }
        let report = Report::new(diagnostic.clone()).with_source_code(Arc::clone(&source));
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, report.as_ref());
        out.push('\n');
    }
    out
}

/// A diagnostic whose lines are too long to draw: its places as `file:line:column`.
fn render_without_snippet(source: &IndexedSource, diagnostic: &Diagnostic) -> String {
    let mut out = format!("{}\n\n  × {}\n", diagnostic.code, diagnostic.message);
    for label in &diagnostic.labels {
        let (line, column) = source.lines.line_column(label.span.start_byte());
        out.push_str(&format!("   ╭─[{}:{line}:{column}]\n", source.name));
        let text = source.text.get(label.span.range()).unwrap_or_default();
        let shown: String = text.chars().take(80).collect();
        let more = if shown.len() < text.len() { "…" } else { "" };
        out.push_str(&format!("   · `{shown}{more}`: {}\n", label.message));
    }
    out.push_str(&format!(
        "   ╰──── (the line is too long to show: {} characters)\n",
        source.line_length_at(diagnostic.primary_span().start_byte())
    ));
    if let Some(help) = &diagnostic.help {
        out.push_str(&format!("  help: {help}\n"));
    }
    out
}

/// The source text with its line starts, read by miette: a snippet is cut out by binary search
/// rather than by scanning the text from its start.
struct IndexedSource {
    name: String,
    text: Arc<str>,
    lines: LineIndex<'static>,
}

impl IndexedSource {
    fn new(name: &str, text: &str) -> Self {
        let text: Arc<str> = Arc::from(text);
        IndexedSource { name: name.to_string(), lines: LineIndex::new_owned(Arc::clone(&text)), text }
    }

    fn line_length_at(&self, offset: usize) -> usize {
        let line = self.lines.line_of(offset);
        let start = self.lines.line_start(line).unwrap_or(0);
        let end = self.lines.line_start(line + 1).unwrap_or(self.text.len());
        end - start
    }
}

impl SourceCode for IndexedSource {
    /// The same contents miette's own `str` source gives (the lines around the span, with the
    /// same line and column numbers), found through the line index.
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let text = self.text.as_bytes();
        let (offset, length) = (span.offset(), span.len());
        if offset + length > text.len() {
            return Err(MietteError::OutOfBounds);
        }
        let span_line = self.lines.line_of(offset);
        let first_line = span_line.saturating_sub(context_lines_before);
        let (data_start, column) = if context_lines_before == 0 {
            (offset, offset - self.lines.line_start(span_line).unwrap_or(0))
        } else {
            (self.lines.line_start(first_line).unwrap_or(0), 0)
        };
        // Where miette stops: right after the span without context after it, else after the
        // newline ending the last context line (the span's own line ending first).
        let last = (offset + length).saturating_sub(1);
        let data_end = if context_lines_after == 0 {
            (last + 1).min(text.len())
        } else {
            let next = self.lines.first_line_starting_after(last + 1);
            self.lines.line_start(next + context_lines_after).unwrap_or(text.len())
        };
        let data_end = data_end.max(data_start);
        let line_count = self.lines.line_of(data_end);
        let data = text.get(data_start..data_end).unwrap_or_default();
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            data,
            (data_start, data_end - data_start).into(),
            first_line,
            column,
            line_count,
        )))
    }
}

/// One JSON object per diagnostic (JSON Lines). Every place is given as bytes (`byte_start`,
/// `byte_end`, UTF-8, for rdjson and slicing), and as 1-based lines with columns in three
/// units: `column_*` counts characters (as rustc does), `column_*_bytes` UTF-8 bytes, and
/// `column_*_utf16` UTF-16 code units from 0 (LSP's `character`). A "did you mean" comes as a
/// `suggestion` to replace the primary place with.
pub fn to_json_lines(file_name: &str, text: &str, diagnostics: &[Diagnostic]) -> String {
    let lines = LineIndex::new(text);
    let mut out = String::new();
    for diagnostic in diagnostics {
        out.push_str(&to_json(file_name, text, &lines, diagnostic).to_string());
        out.push('\n');
    }
    out
}

fn to_json(file_name: &str, text: &str, lines: &LineIndex<'_>, diagnostic: &Diagnostic) -> serde_json::Value {
    let place = |span: Span| {
        let start = lines.position(span.start_byte());
        let end = lines.position(span.end_byte());
        let mut place = serde_json::Map::new();
        for (key, value) in [
            ("byte_start", span.start_byte()),
            ("byte_end", span.end_byte()),
            ("line_start", start.line),
            ("line_end", end.line),
            ("column_start", start.column_chars),
            ("column_end", end.column_chars),
            ("column_start_bytes", start.column_bytes),
            ("column_end_bytes", end.column_bytes),
            ("column_start_utf16", start.column_utf16),
            ("column_end_utf16", end.column_utf16),
        ] {
            place.insert(key.to_string(), serde_json::Value::from(value));
        }
        place
    };
    let spans: Vec<serde_json::Value> = diagnostic
        .labels
        .iter()
        .enumerate()
        .map(|(index, label)| {
            let mut span = place(label.span);
            span.insert("is_primary".to_string(), serde_json::Value::Bool(index == 0));
            span.insert("label".to_string(), serde_json::Value::String(label.message.clone()));
            serde_json::Value::Object(span)
        })
        .collect();
    let suggestion = diagnostic.suggestion(text).map(|(span, replacement)| {
        let mut at = place(span);
        at.insert("replacement".to_string(), serde_json::Value::String(replacement));
        serde_json::Value::Object(at)
    });
    serde_json::json!({
        "file": file_name,
        "severity": match diagnostic.level { Level::Error => "error", Level::Warning => "warning" },
        "code": diagnostic.code.as_str(),
        "message": diagnostic.message,
        "spans": spans,
        "help": diagnostic.help,
        "suggestion": suggestion,
    })
}
