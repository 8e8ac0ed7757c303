//! Rendering diagnostics for people (miette's graphical report) and for tools (JSON).

use crate::diagnostic::{Diagnostic, Level};
use crate::source::LineIndex;
use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource, Report};

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

/// Renders every diagnostic against its source, one after another.
pub fn render_human(file_name: &str, text: &str, diagnostics: &[Diagnostic], style: Style) -> String {
    let theme = if style.color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(style.width).with_links(false);
    let mut out = String::new();
    for diagnostic in diagnostics {
        let report = Report::new(diagnostic.clone()).with_source_code(NamedSource::new(file_name, text.to_string()));
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, report.as_ref());
        out.push('\n');
    }
    out
}

/// One JSON object per diagnostic, with byte offsets and 1-based lines and columns.
pub fn to_json(file_name: &str, text: &str, diagnostics: &[Diagnostic]) -> serde_json::Value {
    let lines = LineIndex::new(text);
    let items = diagnostics
        .iter()
        .map(|d| {
            let labels: Vec<serde_json::Value> = d
                .labels
                .iter()
                .map(|label| {
                    let (line, column) = lines.line_column(label.span.start);
                    let (end_line, end_column) = lines.line_column(label.span.end);
                    serde_json::json!({
                        "start": label.span.start, "end": label.span.end,
                        "line": line, "column": column, "end_line": end_line, "end_column": end_column,
                        "message": label.message,
                    })
                })
                .collect();
            serde_json::json!({
                "file": file_name,
                "severity": match d.level { Level::Error => "error", Level::Warning => "warning" },
                "code": d.code.as_str(),
                "message": d.message,
                "help": d.help,
                "labels": labels,
            })
        })
        .collect();
    serde_json::Value::Array(items)
}
