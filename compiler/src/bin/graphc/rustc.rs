//! rustc's messages from `cargo build --message-format=json`: those whose place is the
//! generated module are shown at the graph's own lines, through the generated file's source map.

use graphc::codegen::GeneratedFile;
use graphc::{Code, Diagnostic};
use serde_json::Value;

/// One line of cargo's JSON output.
pub struct Message(pub Value);

impl Message {
    /// rustc's diagnostic, for a `compiler-message`.
    fn diagnostic(&self) -> Option<&Value> {
        (self.0.get("reason")?.as_str()? == "compiler-message").then(|| self.0.get("message")).flatten()
    }

    /// The message as rustc would print it.
    pub fn rendered(&self) -> Option<&str> {
        self.diagnostic()?.get("rendered")?.as_str()
    }
}

/// The generated module's file inside the project graphc writes.
const GENERATED: &str = "src/generated.rs";

/// Where a message of cargo's belongs.
pub enum Mapped {
    /// A rustc error in the generated module, at the graph line it was generated from.
    Graph(Diagnostic),
    /// A rustc message in the generated module that no graph line explains (as rendered).
    Generated(String),
    /// A message about other code (as rendered): passed through.
    Elsewhere(String),
    /// Not a compiler message.
    Nothing,
}

/// Maps one of cargo's messages.
pub fn map(message: &Message, file: &GeneratedFile) -> Mapped {
    let Some(rendered) = message.rendered() else { return Mapped::Nothing };
    match to_graph(message, file) {
        Some(diagnostic) => Mapped::Graph(diagnostic),
        // A summary with no place ("aborting due to ...") belongs with the errors it sums up.
        None if mentions_generated(message) || !has_spans(message) => Mapped::Generated(rendered.to_string()),
        None => Mapped::Elsewhere(rendered.to_string()),
    }
}

fn has_spans(message: &Message) -> bool {
    message.diagnostic().and_then(|d| d.get("spans")).and_then(Value::as_array).is_some_and(|spans| !spans.is_empty())
}

fn mentions_generated(message: &Message) -> bool {
    message
        .diagnostic()
        .and_then(|d| d.get("spans"))
        .and_then(Value::as_array)
        .is_some_and(|spans| spans.iter().any(|span| span.get("file_name").and_then(Value::as_str) == Some(GENERATED)))
}

/// A rustc error whose primary place (or, failing that, any place) is in the generated module,
/// as a diagnostic at the graph line it was generated from, keeping rustc's message and code.
fn to_graph(message: &Message, file: &GeneratedFile) -> Option<Diagnostic> {
    let diagnostic = message.diagnostic()?;
    if diagnostic.get("level")?.as_str()? != "error" {
        return None;
    }
    let spans = diagnostic.get("spans")?.as_array()?;
    let in_generated = |span: &&Value| span.get("file_name").and_then(Value::as_str) == Some(GENERATED);
    let primary = spans
        .iter()
        .filter(in_generated)
        .find(|span| span.get("is_primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| spans.iter().find(in_generated))?;
    let line = primary.get("line_start")?.as_u64()? as usize;
    let at = file.source_of(line)?;
    let text = diagnostic.get("message")?.as_str()?;
    let code = diagnostic.get("code").and_then(|c| c.get("code")).and_then(Value::as_str);
    let headline = match code {
        Some(code) => format!("{text} (rustc {code})"),
        None => text.to_string(),
    };
    let label = primary.get("label").and_then(Value::as_str).unwrap_or("in the Rust generated for this");
    let notes: Vec<String> = diagnostic
        .get("children")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|child| {
            let level = child.get("level")?.as_str()?;
            let text = child.get("message")?.as_str()?;
            // miette prints the first line as `help:`; the others keep rustc's own level.
            (!text.is_empty()).then(|| if level == "help" { text.to_string() } else { format!("{level}: {text}") })
        })
        .collect();
    let mut mapped = Diagnostic::error(Code::Rustc, headline, at, label);
    mapped = mapped.with_help(if notes.is_empty() {
        format!("rustc reports this in the generated module ({GENERATED}:{line}); check the handler's types")
    } else {
        notes.join("\n")
    });
    Some(mapped)
}
