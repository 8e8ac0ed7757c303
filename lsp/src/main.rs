//! `graphc-lsp`: the language server for `.graph` files, over standard input and output (what
//! `graphc lsp` runs).
//!
//! A thin shell: rust-analyzer's `lsp-server` carries the protocol (initialize, shutdown) over
//! a stdio transport of our own (`transport`: framing that survives a malformed message), and
//! every answer comes from the compiler's `ide` queries on the document's latest
//! text. Documents are synchronised whole (a `.graph` file is small, and re-checking is
//! milliseconds even at 10,000 steps); positions are converted in UTF-16, as LSP counts.

use graphc::diagnostic::{Diagnostic, Level};
use graphc::ide::{self, Analysis, CompletionKind, SymbolKind};
use graphc::source::{LineIndex, Span};
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types as lsp;
use lsp_types::notification::Notification as _;
use lsp_types::request::Request as _;
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

mod transport;

/// Serves until the client shuts the server down.
fn main() -> ExitCode {
    let (connection, io_threads) = transport::stdio();
    let capabilities = match serde_json::to_value(capabilities()) {
        Ok(capabilities) => capabilities,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = connection.initialize(capabilities) {
        eprintln!("error: the client did not initialize: {error}");
        return ExitCode::FAILURE;
    }
    let mut server = Server { connection: &connection, documents: HashMap::new() };
    let outcome = server.serve();
    drop(connection);
    let joined = io_threads.join();
    match outcome.and(joined.map_err(Failure::from)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn capabilities() -> lsp::ServerCapabilities {
    lsp::ServerCapabilities {
        text_document_sync: Some(lsp::TextDocumentSyncCapability::Kind(lsp::TextDocumentSyncKind::FULL)),
        definition_provider: Some(lsp::OneOf::Left(true)),
        references_provider: Some(lsp::OneOf::Left(true)),
        rename_provider: Some(lsp::OneOf::Left(true)),
        hover_provider: Some(lsp::HoverProviderCapability::Simple(true)),
        completion_provider: Some(lsp::CompletionOptions {
            trigger_characters: Some(vec![">".into(), ".".into(), "(".into(), "=".into(), "{".into()]),
            ..Default::default()
        }),
        document_symbol_provider: Some(lsp::OneOf::Left(true)),
        document_formatting_provider: Some(lsp::OneOf::Left(true)),
        code_action_provider: Some(lsp::CodeActionProviderCapability::Simple(true)),
        ..Default::default()
    }
}

/// An open document: its text, its line index and what the compiler made of it.
struct Document {
    text: Arc<str>,
    lines: LineIndex<'static>,
    analysis: Analysis,
}

impl Document {
    /// A document's analysis: the compiler's, then, for a file on disk that checked, what
    /// `graphc check` also reads beside it (model files, the handler crate), by the same code.
    fn new(uri: &lsp::Uri, text: String) -> Self {
        let text: Arc<str> = text.into();
        let mut analysis = ide::analyze(&text);
        if let (Some(graph), Some(path)) = (&analysis.graph, file_path(uri)) {
            let surroundings = graphc::surroundings::check(&path, graph, None);
            if !surroundings.diagnostics.is_empty() {
                analysis.diagnostics.extend(surroundings.diagnostics);
                graphc::diagnostic::sort(&mut analysis.diagnostics);
            }
        }
        Document { lines: LineIndex::new_owned(text.clone()), text, analysis }
    }

    fn offset(&self, position: lsp::Position) -> usize {
        self.lines.offset(position.line as usize, position.character as usize)
    }

    fn position(&self, offset: usize) -> lsp::Position {
        let position = self.lines.position(offset);
        lsp::Position { line: to_u32(position.line.saturating_sub(1)), character: to_u32(position.column_utf16) }
    }

    fn range(&self, span: Span) -> lsp::Range {
        lsp::Range { start: self.position(span.start_byte()), end: self.position(span.end_byte()) }
    }
}

/// The file a `file://` URI names, its percent-escapes decoded; `None` for any other URI.
fn file_path(uri: &lsp::Uri) -> Option<std::path::PathBuf> {
    let encoded = uri.as_str().strip_prefix("file://")?.as_bytes();
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some((&byte, tail)) = rest.split_first() {
        let escaped = (byte == b'%')
            .then(|| tail.get(..2))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(decoded) => {
                bytes.push(decoded);
                rest = tail.get(2..).unwrap_or_default();
            }
            None => {
                bytes.push(byte);
                rest = tail;
            }
        }
    }
    String::from_utf8(bytes).ok().map(std::path::PathBuf::from)
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

struct Server<'c> {
    connection: &'c Connection,
    documents: HashMap<lsp::Uri, Document>,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

impl Server<'_> {
    fn serve(&mut self) -> Result<(), Failure> {
        for message in &self.connection.receiver {
            match message {
                Message::Request(request) => {
                    if self.connection.handle_shutdown(&request)? {
                        return Ok(());
                    }
                    let response = self.request(request);
                    self.connection.sender.send(Message::Response(response))?;
                }
                Message::Notification(notification) => {
                    let method = notification.method.clone();
                    match self.notification(notification) {
                        Ok(()) => {}
                        // A notification has no answer: one the server cannot read is said in
                        // the editor's log, and the server goes on with the next message.
                        Err(failure) if failure.is::<serde_json::Error>() => {
                            self.log(&format!("graphc-lsp ignored a malformed `{method}`: {failure}"))?;
                        }
                        Err(failure) => return Err(failure),
                    }
                }
                Message::Response(_) => {}
            }
        }
        Ok(())
    }

    fn notification(&mut self, notification: Notification) -> Result<(), Failure> {
        let uri = match notification.method.as_str() {
            lsp::notification::DidOpenTextDocument::METHOD => {
                let params: lsp::DidOpenTextDocumentParams = serde_json::from_value(notification.params)?;
                let uri = params.text_document.uri;
                self.documents.insert(uri.clone(), Document::new(&uri, params.text_document.text));
                uri
            }
            lsp::notification::DidChangeTextDocument::METHOD => {
                let params: lsp::DidChangeTextDocumentParams = serde_json::from_value(notification.params)?;
                // Whole-document sync: the last change is the text.
                let Some(change) = params.content_changes.into_iter().last() else { return Ok(()) };
                let uri = params.text_document.uri;
                self.documents.insert(uri.clone(), Document::new(&uri, change.text));
                uri
            }
            lsp::notification::DidCloseTextDocument::METHOD => {
                let params: lsp::DidCloseTextDocumentParams = serde_json::from_value(notification.params)?;
                self.documents.remove(&params.text_document.uri);
                // Closed: its problems leave the editor's list.
                return self.publish(params.text_document.uri, Vec::new());
            }
            _ => return Ok(()),
        };
        let diagnostics = self.documents.get(&uri).map(|doc| diagnostics(&uri, doc)).unwrap_or_default();
        self.publish(uri, diagnostics)
    }

    /// A line in the editor's log for the server (`window/logMessage`, as a warning).
    fn log(&self, message: &str) -> Result<(), Failure> {
        let params = lsp::LogMessageParams { typ: lsp::MessageType::WARNING, message: message.to_string() };
        let notification = Notification::new(lsp::notification::LogMessage::METHOD.to_string(), params);
        self.connection.sender.send(Message::Notification(notification))?;
        Ok(())
    }

    fn publish(&self, uri: lsp::Uri, diagnostics: Vec<lsp::Diagnostic>) -> Result<(), Failure> {
        let params = lsp::PublishDiagnosticsParams { uri, diagnostics, version: None };
        let notification = Notification::new(lsp::notification::PublishDiagnostics::METHOD.to_string(), params);
        self.connection.sender.send(Message::Notification(notification))?;
        Ok(())
    }

    fn request(&self, request: Request) -> Response {
        let id = request.id.clone();
        match self.answer(request) {
            Ok(value) => Response::new_ok(id, value),
            Err(Refusal { code, message }) => Response::new_err(id, code as i32, message),
        }
    }

    fn answer(&self, request: Request) -> Result<serde_json::Value, Refusal> {
        use lsp::request as r;
        match request.method.as_str() {
            r::GotoDefinition::METHOD => {
                let (params, doc) =
                    self.params::<lsp::GotoDefinitionParams>(&request, |p| &p.text_document_position_params)?;
                let uri = params.text_document_position_params.text_document.uri.clone();
                let offset = doc.offset(params.text_document_position_params.position);
                let location =
                    doc.analysis.definition(offset).map(|span| lsp::Location { uri, range: doc.range(span) });
                json(&location.map(lsp::GotoDefinitionResponse::Scalar))
            }
            r::References::METHOD => {
                let (params, doc) = self.params::<lsp::ReferenceParams>(&request, |p| &p.text_document_position)?;
                let uri = &params.text_document_position.text_document.uri;
                let offset = doc.offset(params.text_document_position.position);
                let spans = doc.analysis.references(offset, params.context.include_declaration);
                let locations: Vec<lsp::Location> =
                    spans.into_iter().map(|span| lsp::Location { uri: uri.clone(), range: doc.range(span) }).collect();
                json(&locations)
            }
            r::Rename::METHOD => {
                let (params, doc) = self.params::<lsp::RenameParams>(&request, |p| &p.text_document_position)?;
                let uri = params.text_document_position.text_document.uri.clone();
                let offset = doc.offset(params.text_document_position.position);
                let spans = doc
                    .analysis
                    .rename(offset, &params.new_name)
                    .map_err(|error| Refusal { code: ErrorCode::RequestFailed, message: error.to_string() })?;
                let edits = spans
                    .into_iter()
                    .map(|span| lsp::TextEdit { range: doc.range(span), new_text: params.new_name.clone() })
                    .collect();
                json(&lsp::WorkspaceEdit { changes: Some(HashMap::from([(uri, edits)])), ..Default::default() })
            }
            r::HoverRequest::METHOD => {
                let (params, doc) = self.params::<lsp::HoverParams>(&request, |p| &p.text_document_position_params)?;
                let offset = doc.offset(params.text_document_position_params.position);
                let hover = doc.analysis.hover(&doc.text, offset).map(|(span, markdown)| lsp::Hover {
                    contents: lsp::HoverContents::Markup(lsp::MarkupContent {
                        kind: lsp::MarkupKind::Markdown,
                        value: markdown,
                    }),
                    range: Some(doc.range(span)),
                });
                json(&hover)
            }
            r::Completion::METHOD => {
                let (params, doc) = self.params::<lsp::CompletionParams>(&request, |p| &p.text_document_position)?;
                let offset = doc.offset(params.text_document_position.position);
                let items: Vec<lsp::CompletionItem> = doc
                    .analysis
                    .completions(&doc.text, offset)
                    .into_iter()
                    .map(|completion| lsp::CompletionItem {
                        label: completion.label,
                        kind: Some(completion_kind(completion.kind)),
                        detail: Some(completion.detail),
                        ..Default::default()
                    })
                    .collect();
                json(&lsp::CompletionResponse::Array(items))
            }
            r::DocumentSymbolRequest::METHOD => {
                let (_, doc): (lsp::DocumentSymbolParams, _) = self.document(&request)?;
                let symbols: Vec<lsp::DocumentSymbol> =
                    doc.analysis.outline.iter().map(|graph| document_symbol(doc, graph)).collect();
                json(&lsp::DocumentSymbolResponse::Nested(symbols))
            }
            r::Formatting::METHOD => {
                let (_, doc): (lsp::DocumentFormattingParams, _) = self.document(&request)?;
                // A file that does not parse is left as it is; its diagnostics say why.
                let edits: Vec<lsp::TextEdit> = match graphc::format::format_source(&doc.text) {
                    Ok(formatted) if formatted.as_str() != &*doc.text => {
                        vec![lsp::TextEdit { range: doc.range(Span::new(0, doc.text.len())), new_text: formatted }]
                    }
                    _ => Vec::new(),
                };
                json(&edits)
            }
            r::CodeActionRequest::METHOD => {
                let (params, doc): (lsp::CodeActionParams, _) = self.document(&request)?;
                let uri = params.text_document.uri.clone();
                let wanted = Span::new(doc.offset(params.range.start), doc.offset(params.range.end));
                let actions: Vec<lsp::CodeActionOrCommand> = doc
                    .analysis
                    .diagnostics
                    .iter()
                    .filter_map(|diagnostic| {
                        let (span, replacement) = diagnostic.suggestion(&doc.text)?;
                        let overlaps = span.start_byte() <= wanted.end_byte() && wanted.start_byte() <= span.end_byte();
                        overlaps.then(|| {
                            let edit = lsp::TextEdit { range: doc.range(span), new_text: replacement.clone() };
                            lsp::CodeActionOrCommand::CodeAction(lsp::CodeAction {
                                title: format!("Replace with `{replacement}`"),
                                kind: Some(lsp::CodeActionKind::QUICKFIX),
                                diagnostics: Some(vec![to_lsp(&uri, doc, diagnostic)]),
                                edit: Some(lsp::WorkspaceEdit {
                                    changes: Some(HashMap::from([(uri.clone(), vec![edit])])),
                                    ..Default::default()
                                }),
                                is_preferred: Some(true),
                                ..Default::default()
                            })
                        })
                    })
                    .collect();
                json(&actions)
            }
            other => Err(Refusal { code: ErrorCode::MethodNotFound, message: format!("`{other}` is not served") }),
        }
    }

    /// A request's parameters and the document its position is in.
    fn params<P: serde::de::DeserializeOwned>(
        &self,
        request: &Request,
        position: impl Fn(&P) -> &lsp::TextDocumentPositionParams,
    ) -> Result<(P, &Document), Refusal> {
        let params: P = serde_json::from_value(request.params.clone()).map_err(Refusal::invalid)?;
        let uri = &position(&params).text_document.uri;
        let doc = self.documents.get(uri).ok_or_else(|| Refusal::unknown(uri))?;
        Ok((params, doc))
    }

    /// A request's parameters and the document it names.
    fn document<P: serde::de::DeserializeOwned + HasDocument>(
        &self,
        request: &Request,
    ) -> Result<(P, &Document), Refusal> {
        let params: P = serde_json::from_value(request.params.clone()).map_err(Refusal::invalid)?;
        let doc = self.documents.get(params.uri()).ok_or_else(|| Refusal::unknown(params.uri()))?;
        Ok((params, doc))
    }
}

/// Requests about a whole document.
trait HasDocument {
    fn uri(&self) -> &lsp::Uri;
}

impl HasDocument for lsp::DocumentSymbolParams {
    fn uri(&self) -> &lsp::Uri {
        &self.text_document.uri
    }
}

impl HasDocument for lsp::DocumentFormattingParams {
    fn uri(&self) -> &lsp::Uri {
        &self.text_document.uri
    }
}

impl HasDocument for lsp::CodeActionParams {
    fn uri(&self) -> &lsp::Uri {
        &self.text_document.uri
    }
}

/// Why a request got an error answer.
struct Refusal {
    code: ErrorCode,
    message: String,
}

impl Refusal {
    fn invalid(error: serde_json::Error) -> Self {
        Refusal { code: ErrorCode::InvalidParams, message: error.to_string() }
    }

    fn unknown(uri: &lsp::Uri) -> Self {
        Refusal { code: ErrorCode::InvalidParams, message: format!("{} is not open", uri.as_str()) }
    }
}

fn json(value: &impl serde::Serialize) -> Result<serde_json::Value, Refusal> {
    serde_json::to_value(value).map_err(|error| Refusal { code: ErrorCode::InternalError, message: error.to_string() })
}

fn diagnostics(uri: &lsp::Uri, doc: &Document) -> Vec<lsp::Diagnostic> {
    doc.analysis.diagnostics.iter().map(|diagnostic| to_lsp(uri, doc, diagnostic)).collect()
}

/// A compiler diagnostic as LSP's: the primary place, the others as related information, the
/// help after the message.
fn to_lsp(uri: &lsp::Uri, doc: &Document, diagnostic: &Diagnostic) -> lsp::Diagnostic {
    let mut labels = diagnostic.labels.iter();
    let primary = labels.next();
    let mut message = diagnostic.message.clone();
    if let Some(label) = primary.filter(|label| !label.message.is_empty()) {
        message = format!("{message}: {}", label.message);
    }
    if let Some(help) = &diagnostic.help {
        message = format!("{message}\nhelp: {help}");
    }
    let related: Vec<lsp::DiagnosticRelatedInformation> = labels
        .map(|label| lsp::DiagnosticRelatedInformation {
            location: lsp::Location { uri: uri.clone(), range: doc.range(label.span) },
            message: if label.message.is_empty() { "here".to_string() } else { label.message.clone() },
        })
        .collect();
    lsp::Diagnostic {
        range: doc.range(diagnostic.primary_span()),
        severity: Some(match diagnostic.level {
            Level::Error => lsp::DiagnosticSeverity::ERROR,
            Level::Warning => lsp::DiagnosticSeverity::WARNING,
        }),
        code: Some(lsp::NumberOrString::String(diagnostic.code.as_str().to_string())),
        source: Some("graphc".to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..Default::default()
    }
}

fn completion_kind(kind: CompletionKind) -> lsp::CompletionItemKind {
    match kind {
        CompletionKind::Keyword => lsp::CompletionItemKind::KEYWORD,
        CompletionKind::Property => lsp::CompletionItemKind::PROPERTY,
        CompletionKind::Step => lsp::CompletionItemKind::VARIABLE,
        CompletionKind::Function => lsp::CompletionItemKind::FUNCTION,
        CompletionKind::Value => lsp::CompletionItemKind::ENUM_MEMBER,
        CompletionKind::Type => lsp::CompletionItemKind::STRUCT,
    }
}

#[allow(deprecated, reason = "DocumentSymbol's `deprecated` field must be written, as None")]
fn document_symbol(doc: &Document, symbol: &ide::Symbol) -> lsp::DocumentSymbol {
    let kind = match symbol.kind {
        SymbolKind::Graph => lsp::SymbolKind::MODULE,
        SymbolKind::Step => lsp::SymbolKind::FUNCTION,
        SymbolKind::Router => lsp::SymbolKind::CLASS,
        SymbolKind::Route => lsp::SymbolKind::METHOD,
        SymbolKind::Queue => lsp::SymbolKind::EVENT,
        SymbolKind::Record => lsp::SymbolKind::STRUCT,
        SymbolKind::Field => lsp::SymbolKind::FIELD,
        SymbolKind::Param => lsp::SymbolKind::CONSTANT,
        SymbolKind::Secret => lsp::SymbolKind::KEY,
        SymbolKind::Function => lsp::SymbolKind::NAMESPACE,
        SymbolKind::Trigger => lsp::SymbolKind::EVENT,
        SymbolKind::Model => lsp::SymbolKind::OBJECT,
        SymbolKind::Test => lsp::SymbolKind::METHOD,
    };
    lsp::DocumentSymbol {
        name: symbol.name.clone(),
        detail: Some(symbol.kind.keyword().to_string()),
        kind,
        tags: None,
        deprecated: None,
        range: doc.range(symbol.span),
        selection_range: doc.range(symbol.name_span),
        children: (!symbol.children.is_empty())
            .then(|| symbol.children.iter().map(|child| document_symbol(doc, child)).collect()),
    }
}
