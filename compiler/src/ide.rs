//! Editor queries over one `.graph` text: declarations, references, hover, completion and the
//! outline, in byte offsets. `graphc lsp` turns them into the Language Server Protocol.
//!
//! Names are resolved by the checker ([`check::analyze`] records every reference it resolves),
//! so "go to definition" agrees with what compiles; declarations and the outline come from the
//! syntax tree, so they work in a graph that does not check yet. Completion reads only the text
//! before the cursor: a file being typed rarely parses.

use crate::check::{self, Reference, vocabulary};
use crate::diagnostic::Diagnostic;
use crate::ir::{self, NodeKind, Placement};
use crate::source::Span;
use crate::syntax::lexer::{LexError, Token as Lexed};
use crate::syntax::{self, ast};

/// What a name declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolKind {
    /// The graph itself.
    Graph,
    /// `step`
    Step,
    /// `router`
    Router,
    /// `route`, inside a router.
    Route,
    /// `queue`
    Queue,
    /// `record`
    Record,
    /// A record's field.
    Field,
    /// `param`
    Param,
    /// `secret`
    Secret,
    /// `function`
    Function,
    /// `trigger`
    Trigger,
    /// `model`: a model shared by routes.
    Model,
    /// `test`
    Test,
}

impl SymbolKind {
    /// The keyword that declares it.
    pub fn keyword(self) -> &'static str {
        match self {
            SymbolKind::Graph => "graph",
            SymbolKind::Step => "step",
            SymbolKind::Router => "router",
            SymbolKind::Route => "route",
            SymbolKind::Queue => "queue",
            SymbolKind::Record => "record",
            SymbolKind::Field => "field",
            SymbolKind::Param => "param",
            SymbolKind::Secret => "secret",
            SymbolKind::Function => "function",
            SymbolKind::Trigger => "trigger",
            SymbolKind::Model => "model",
            SymbolKind::Test => "test",
        }
    }
}

/// A declaration, with what it contains (a router's routes, a record's fields, the graph's items).
#[derive(Clone, Debug, PartialEq)]
pub struct Symbol {
    /// The declared name.
    pub name: String,
    /// What it declares.
    pub kind: SymbolKind,
    /// Where the name stands.
    pub name_span: Span,
    /// The whole declaration.
    pub span: Span,
    /// Nested declarations.
    pub children: Vec<Symbol>,
}

/// One text, analysed: its diagnostics, and what editors ask about it.
#[derive(Debug, Default)]
pub struct Analysis {
    /// Errors, or the warnings of a graph that checked.
    pub diagnostics: Vec<Diagnostic>,
    /// The graph and what it declares; `None` when the text does not parse.
    pub outline: Option<Symbol>,
    /// The checked graph, when it checked.
    pub graph: Option<ir::Graph>,
    /// Every reference the checker resolved.
    pub references: Vec<Reference>,
}

/// Parses and checks `text`, keeping what editors need.
pub fn analyze(text: &str) -> Analysis {
    let ast = match syntax::parse(text) {
        Ok(ast) => ast,
        Err(diagnostics) => return Analysis { diagnostics, ..Analysis::default() },
    };
    let outline = outline(&ast);
    let check::Analysis { outcome, references } = check::analyze(&ast);
    let (diagnostics, graph) = match outcome {
        Ok(checked) => (checked.warnings, Some(checked.graph)),
        Err(errors) => (errors, None),
    };
    Analysis { diagnostics, outline: Some(outline), graph, references }
}

impl Analysis {
    /// Every declaration, depth first.
    pub fn symbols(&self) -> Vec<&Symbol> {
        fn walk<'s>(symbol: &'s Symbol, out: &mut Vec<&'s Symbol>) {
            out.push(symbol);
            for child in &symbol.children {
                walk(child, out);
            }
        }
        let mut out = Vec::new();
        if let Some(graph) = &self.outline {
            walk(graph, &mut out);
        }
        out
    }

    /// The name at `offset`: where it stands, and where what it names is declared.
    fn name_at(&self, offset: usize) -> Option<Reference> {
        self.references.iter().find(|r| contains(r.at, offset)).copied().or_else(|| {
            let symbol = self.symbols().into_iter().find(|s| contains(s.name_span, offset))?;
            Some(Reference { at: symbol.name_span, declared: symbol.name_span })
        })
    }

    /// The declaration of the name at `offset` (a use or the declaration itself).
    pub fn declaration_at(&self, offset: usize) -> Option<&Symbol> {
        let declared = self.name_at(offset)?.declared;
        self.symbols().into_iter().find(|s| s.name_span == declared)
    }

    /// Where the name at `offset` is declared.
    pub fn definition(&self, offset: usize) -> Option<Span> {
        self.declaration_at(offset).map(|symbol| symbol.name_span)
    }

    /// Every place the name at `offset` stands for the same declaration, the declaration first
    /// when `with_declaration`.
    pub fn references(&self, offset: usize, with_declaration: bool) -> Vec<Span> {
        let Some(symbol) = self.declaration_at(offset) else { return Vec::new() };
        let declared = symbol.name_span;
        let mut spans: Vec<Span> = with_declaration.then_some(declared).into_iter().collect();
        let mut uses: Vec<Span> = self.references.iter().filter(|r| r.declared == declared).map(|r| r.at).collect();
        uses.sort();
        uses.dedup();
        spans.extend(uses);
        spans
    }

    /// The places to rewrite to rename the name at `offset` to `new_name`, or why not.
    pub fn rename(&self, offset: usize, new_name: &str) -> Result<Vec<Span>, RenameError> {
        let symbol = self.declaration_at(offset).ok_or(RenameError::NoName)?;
        if symbol.kind == SymbolKind::Graph {
            return Err(RenameError::GraphName);
        }
        if !is_identifier(new_name) {
            return Err(RenameError::NotAName(new_name.to_string()));
        }
        let taken =
            self.symbols().into_iter().any(|other| other.name == new_name && same_namespace(other.kind, symbol.kind));
        if taken {
            return Err(RenameError::Taken(new_name.to_string()));
        }
        Ok(self.references(offset, true))
    }

    /// What the name at `offset` is, as Markdown, and the span it is about.
    pub fn hover(&self, text: &str, offset: usize) -> Option<(Span, String)> {
        let Reference { at, declared } = self.name_at(offset)?;
        let symbol = self.symbols().into_iter().find(|s| s.name_span == declared)?;
        let mut out = format!("```graph\n{}\n```", first_line(text, symbol.span));
        if let Some(graph) = &self.graph {
            let details = match symbol.kind {
                SymbolKind::Step | SymbolKind::Router | SymbolKind::Queue => graph
                    .node_ids()
                    .find(|&id| graph.node(id).span == symbol.name_span)
                    .map(|id| describe_node(graph, id)),
                SymbolKind::Route => describe_route(graph, symbol.name_span),
                SymbolKind::Param => graph.params.iter().find(|p| p.name == symbol.name).map(|p| {
                    format!("parameter of type `{}`, set with `--param {}=JSON`", graph.type_name(&p.ty), p.name)
                }),
                SymbolKind::Function => Some(format!(
                    "child function: served by `BINARY serve --function {}`; its steps: {}",
                    symbol.name,
                    graph
                        .functions
                        .iter()
                        .find(|f| f.name == symbol.name)
                        .map(|f| names(graph, &f.nodes))
                        .unwrap_or_default()
                )),
                _ => None,
            };
            if let Some(details) = details {
                out.push_str("\n\n");
                out.push_str(&details);
            }
        }
        Some((at, out))
    }

    /// Completions at `offset`, from the text before it.
    pub fn completions(&self, text: &str, offset: usize) -> Vec<Completion> {
        let before = text.get(..offset).unwrap_or(text);
        let context = completion_context(before);
        let mut out: Vec<Completion> = Vec::new();
        let mut words = |words: &[&str], kind: CompletionKind, detail: &str| {
            out.extend(words.iter().map(|w| Completion { label: w.to_string(), kind, detail: detail.to_string() }));
        };
        // A file being typed rarely parses: then the names come from its tokens.
        let declarations: Vec<(SymbolKind, String)> = match &self.outline {
            Some(_) => self.symbols().into_iter().map(|s| (s.kind, s.name.clone())).collect(),
            None => declared_in(text),
        };
        let declared = |kinds: &[SymbolKind]| -> Vec<String> {
            declarations.iter().filter(|(kind, _)| kinds.contains(kind)).map(|(_, name)| name.clone()).collect()
        };
        match context {
            Context::Item => {
                words(ITEM_KEYWORDS, CompletionKind::Keyword, "declaration");
                words(vocabulary::GRAPH_SETTINGS, CompletionKind::Property, "graph setting");
                let nodes = declared(NODES);
                words(&nodes.iter().map(String::as_str).collect::<Vec<_>>(), CompletionKind::Step, "step (wiring)");
            }
            Context::Steps => {
                let nodes = declared(NODES);
                words(&nodes.iter().map(String::as_str).collect::<Vec<_>>(), CompletionKind::Step, "step");
            }
            Context::Functions => {
                let functions = declared(&[SymbolKind::Function]);
                words(
                    &functions.iter().map(String::as_str).collect::<Vec<_>>(),
                    CompletionKind::Step,
                    "child function",
                );
                words(&["*"], CompletionKind::Keyword, "any function");
            }
            Context::StepKinds { route } => {
                if route {
                    words(&["model"], CompletionKind::Function, "a smartcore model");
                }
                words(vocabulary::STEP_BUILTINS, CompletionKind::Function, "built-in step");
                words(&["fn", "new", "choice", "$remote"], CompletionKind::Keyword, "step kind");
            }
            Context::Words(list, detail) => words(list, CompletionKind::Value, detail),
            Context::Arguments(list, detail) => words(list, CompletionKind::Property, detail),
            Context::Options(list, detail) => words(list, CompletionKind::Property, detail),
            Context::RouterItems => {
                words(&["route"], CompletionKind::Keyword, "a route");
                words(vocabulary::ROUTER_OPTIONS, CompletionKind::Property, "router option");
            }
            Context::ModelKinds => {
                let kinds: Vec<&str> = crate::check::model_kind_names().collect();
                words(&kinds, CompletionKind::Value, "model kind");
            }
            Context::Types => {
                words(vocabulary::BUILTIN_TYPES, CompletionKind::Type, "type");
                let records = declared(&[SymbolKind::Record]);
                words(&records.iter().map(String::as_str).collect::<Vec<_>>(), CompletionKind::Type, "record");
            }
            Context::Params => {
                let params = declared(&[SymbolKind::Param]);
                words(&params.iter().map(String::as_str).collect::<Vec<_>>(), CompletionKind::Value, "parameter");
            }
            Context::None => {}
        }
        out
    }
}

/// One completion.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// What is inserted.
    pub label: String,
    /// What it is.
    pub kind: CompletionKind,
    /// A word on what it is.
    pub detail: String,
}

/// What a completion is, for the editor's icon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionKind {
    /// A keyword of the language.
    Keyword,
    /// A setting, option or argument name.
    Property,
    /// A step, router, queue or function.
    Step,
    /// A built-in step or engine.
    Function,
    /// A value of a closed set.
    Value,
    /// A type.
    Type,
}

const NODES: &[SymbolKind] = &[SymbolKind::Step, SymbolKind::Router, SymbolKind::Queue];
const ITEM_KEYWORDS: &[&str] =
    &["step", "router", "queue", "param", "secret", "function", "record", "test", "trigger", "model"];

fn contains(span: Span, offset: usize) -> bool {
    span.start_byte() <= offset && offset <= span.end_byte()
}

/// Steps, routers and queues share one namespace; the others have their own.
fn same_namespace(a: SymbolKind, b: SymbolKind) -> bool {
    a == b || (NODES.contains(&a) && NODES.contains(&b))
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
        && name != "_"
}

fn first_line(text: &str, span: Span) -> String {
    let declaration = text.get(span.range()).unwrap_or_default();
    let line = declaration.lines().next().unwrap_or_default().trim_end();
    if line.len() < declaration.trim_end().len() { format!("{line} ...") } else { line.to_string() }
}

fn names(graph: &ir::Graph, ids: &[ir::NodeId]) -> String {
    let names: Vec<String> = ids.iter().map(|id| graph.node(*id)).map(|n| format!("`{}`", n.name)).collect();
    if names.is_empty() { "none".to_string() } else { names.join(", ") }
}

fn describe_node(graph: &ir::Graph, id: ir::NodeId) -> String {
    let node = graph.node(id);
    let kind = match &node.kind {
        NodeKind::Function(path) if node.streaming => {
            format!("streams the chunks of the Rust function `{path}`, each passed on as it is produced")
        }
        NodeKind::Function(path) => format!("runs the Rust function `{path}`"),
        NodeKind::Collect => "built-in `collect`: the chunks of the streaming step before it, as one array".to_string(),
        NodeKind::Construct(path, _) => format!("runs the Rust type `{path}`, built once"),
        NodeKind::Remote(_) => "calls an HTTP endpoint".to_string(),
        NodeKind::Router(router) => format!("{:?} router of {} routes", router.kind, router.routes.len()),
        NodeKind::Queue(_) if node.kind.is_stream_queue() => "a stream queue (Redis Streams)".to_string(),
        other => format!("built-in `{}`", other.describe()),
    };
    let placement = match &node.placement {
        Placement::Root => format!("the root function `{}`", graph.name),
        Placement::Child(name) => format!("the child function `{name}`"),
        Placement::Any => "the function of its neighbours (`function = *`)".to_string(),
    };
    let mut lines = vec![
        kind,
        format!("input `{}` → output `{}`", graph.type_name(&node.input), graph.type_name(&node.output)),
        format!("runs in {placement}"),
    ];
    if let Some(catcher) = node.catcher.map(|id| graph.node(id)) {
        lines.push(format!("errors go to `{}`", catcher.name));
    }
    if !node.parents.is_empty() {
        lines.push(format!("after {}", names(graph, &node.parents)));
    }
    if !node.children.is_empty() {
        lines.push(format!("then {}", names(graph, &node.children)));
    }
    if let Some(cap) = node.iteration_cap {
        let back: Vec<ir::NodeId> = graph
            .back_edges
            .iter()
            .filter(|edge| edge.from == id || edge.to == id)
            .map(|edge| if edge.from == id { edge.to } else { edge.from })
            .collect();
        let loop_line = format!("on a loop: an event may enter it {cap} times");
        lines.push(if back.is_empty() {
            loop_line
        } else {
            format!("{loop_line} (loop with {})", names(graph, &back))
        });
    }
    if node.answers {
        lines.push("its output answers the request".to_string());
    }
    lines.join("  \n")
}

fn describe_route(graph: &ir::Graph, name_span: Span) -> Option<String> {
    graph.nodes.iter().find_map(|node| {
        let NodeKind::Router(router) = &node.kind else { return None };
        let route = router.routes.iter().find(|route| route.span == name_span)?;
        let served = format!("{}/{}/infer", router.url_prefix.trim_end_matches('/'), route.name);
        let what = match &route.kind {
            ir::RouteKind::Model(model) => {
                let what = match &model.model_path {
                    Some(path) => format!("model `{}` from `{}`", model.describe(), path.path),
                    None => format!("model `{}`", model.describe()),
                };
                match &model.shared {
                    Some(shared) => format!("{what}, the one instance of shared model `{shared}`"),
                    None => what,
                }
            }
            _ => "a step".to_string(),
        };
        Some(format!("route of router `{}`: {what}  \nserved at `{served}`", node.name))
    })
}

// ---- the outline ----

fn outline(graph: &ast::Graph) -> Symbol {
    let symbol = |name: &ast::Ident, kind, span, children| Symbol {
        name: name.name.to_string(),
        kind,
        name_span: name.span,
        span,
        children,
    };
    let children = graph
        .items
        .iter()
        .filter_map(|item| match item {
            ast::Item::Step(step) => Some(symbol(&step.name, SymbolKind::Step, step.span, Vec::new())),
            ast::Item::Router(router) => {
                let routes =
                    router.routes.iter().map(|r| symbol(&r.name, SymbolKind::Route, r.span, Vec::new())).collect();
                Some(symbol(&router.name, SymbolKind::Router, router.span, routes))
            }
            ast::Item::Queue(queue) => Some(symbol(&queue.name, SymbolKind::Queue, queue.span, Vec::new())),
            ast::Item::Record(record) => {
                let fields = record
                    .fields
                    .iter()
                    .map(|(name, ty)| symbol(name, SymbolKind::Field, name.span.to(ty.span()), Vec::new()))
                    .collect();
                Some(symbol(&record.name, SymbolKind::Record, record.span, fields))
            }
            ast::Item::Param(param) => Some(symbol(&param.name, SymbolKind::Param, param.span, Vec::new())),
            ast::Item::Secret(name) => Some(symbol(name, SymbolKind::Secret, name.span, Vec::new())),
            ast::Item::Function(name) => Some(symbol(name, SymbolKind::Function, name.span, Vec::new())),
            ast::Item::Trigger(trigger) => Some(symbol(&trigger.name, SymbolKind::Trigger, trigger.span, Vec::new())),
            ast::Item::Model(model) => Some(symbol(&model.name, SymbolKind::Model, model.span, Vec::new())),
            ast::Item::Test(test) => Some(symbol(&test.name, SymbolKind::Test, test.span, Vec::new())),
            ast::Item::Setting(_) | ast::Item::Wiring(_) => None,
        })
        .collect();
    symbol(&graph.name, SymbolKind::Graph, graph.span, children)
}

// ---- completion ----

/// What may be written at the cursor.
#[derive(Debug, PartialEq)]
enum Context {
    /// A new item of the graph: keywords, settings, or a step to wire.
    Item,
    /// A step, router or queue.
    Steps,
    /// A child function (or `*`).
    Functions,
    /// What a step or route runs.
    StepKinds {
        route: bool,
    },
    /// A value of a closed set.
    Words(&'static [&'static str], &'static str),
    /// An argument's name in a call.
    Arguments(&'static [&'static str], &'static str),
    /// An option in a block.
    Options(&'static [&'static str], &'static str),
    /// A router's block: `route` or a router option.
    RouterItems,
    /// `kind = ` in `model(...)`.
    ModelKinds,
    /// A type.
    Types,
    /// `param.`
    Params,
    None,
}

#[derive(Clone, Debug, PartialEq)]
enum Token<'t> {
    Word(&'t str),
    Punct(&'static str),
    Literal,
}

/// The tokens of `text` that say where the cursor is: words, punctuation, and literals (without
/// their contents), from the one lexer; whitespace, comments and what is not a token skipped.
fn tokens(text: &str) -> Vec<Token<'_>> {
    crate::syntax::lexer::tokens(text)
        .filter_map(|(token, range)| {
            let slice = text.get(range)?;
            // A string still being typed is a literal all the same.
            let token = match token {
                Ok(token) => token,
                Err(LexError::UnterminatedString | LexError::UnterminatedRawString { .. }) => Lexed::Str,
                Err(_) => return None,
            };
            match token {
                Lexed::Word => Some(Token::Word(slice)),
                token if token.is_literal() => Some(Token::Literal),
                token if token.is_trivia() => None,
                _ => PUNCTS.iter().find(|p| **p == slice).map(|p| Token::Punct(p)),
            }
        })
        .collect()
}

/// The punctuation the IDE queries look at.
const PUNCTS: &[&str] =
    &["->", "=>", "::", "==", "!=", "<=", ">=", "{", "}", "(", ")", "[", "]", ";", ",", ":", "=", ".", "$"];

/// The names `text` declares, read from its tokens (`step NAME`, `queue NAME`, ...), in order.
fn declared_in(text: &str) -> Vec<(SymbolKind, String)> {
    let tokens = tokens(text);
    let mut found = Vec::new();
    for pair in tokens.windows(2) {
        let [Token::Word(keyword), Token::Word(name)] = pair else { continue };
        let kind = match *keyword {
            "step" => SymbolKind::Step,
            "router" => SymbolKind::Router,
            "queue" => SymbolKind::Queue,
            "function" => SymbolKind::Function,
            "param" => SymbolKind::Param,
            "record" => SymbolKind::Record,
            _ => continue,
        };
        if !found.iter().any(|(k, n)| *k == kind && n == name) {
            found.push((kind, name.to_string()));
        }
    }
    found
}

/// Where the cursor stands, from the text before it.
#[allow(clippy::indexing_slicing, reason = "the typed word's length is measured on the same string")]
fn completion_context(before: &str) -> Context {
    // The word being typed is not part of the context.
    let typed = before.len() - before.trim_end_matches(|c: char| c == '_' || c.is_alphanumeric()).len();
    let before = &before[..before.len() - typed];
    let tokens = tokens(before);
    // Open brackets, each with the statement that opened it; then the statement the cursor is in.
    let mut frames: Vec<(&'static str, Vec<Token>)> = Vec::new();
    let mut statement: Vec<Token> = Vec::new();
    for token in tokens {
        match token {
            Token::Punct(open @ ("{" | "(" | "[")) => {
                frames.push((open, std::mem::take(&mut statement)));
            }
            Token::Punct(close @ ("}" | ")" | "]")) => {
                if let Some((_, header)) = frames.pop() {
                    statement = header;
                    statement.push(Token::Literal);
                }
                // A closed block ends its statement: `step a = map(x) { respond; }`, `router {}`.
                if close == "}"
                    && frames.last().is_some_and(|(open, _)| *open == "{")
                    && statement.first().is_some_and(
                        |t| matches!(t, Token::Word(w) if ["router", "test", "record", "step", "queue"].contains(w)),
                    )
                    && statement.contains(&Token::Literal)
                {
                    statement.clear();
                }
            }
            Token::Punct(";") => statement.clear(),
            Token::Punct(",") => statement.clear(),
            other => statement.push(other),
        }
    }
    fn word<'t>(token: Option<&Token<'t>>) -> Option<&'t str> {
        match token {
            Some(Token::Word(w)) => Some(w),
            _ => None,
        }
    }
    let last = statement.last().cloned();
    if last == Some(Token::Punct(".")) {
        let base = word(statement.iter().rev().nth(1));
        return match base {
            Some("param") => Context::Params,
            Some("event") => Context::Words(vocabulary::EVENT_FIELDS, "event field"),
            _ => Context::None,
        };
    }
    let Some((open, header)) = frames.last() else { return Context::None };
    let head = word(header.first());
    let first = word(statement.first());
    match *open {
        "(" => {
            // The call's name is the word before the bracket.
            let call = word(header.last());
            let keyword = head;
            if statement.is_empty() {
                return match (call, keyword) {
                    (Some("model"), _) => Context::Arguments(vocabulary::MODEL_ARGS, "model argument"),
                    (Some("batch"), _) => Context::Arguments(vocabulary::BATCH_ARGS, "batch argument"),
                    (Some("remote"), _) => Context::Arguments(vocabulary::REMOTE_ARGS, "$remote argument"),
                    (Some("memory"), _) => Context::Arguments(vocabulary::MEMORY_QUEUE_ARGS, "memory queue argument"),
                    (Some("stream"), Some("queue")) => {
                        Context::Arguments(vocabulary::STREAM_QUEUE_ARGS, "stream queue argument")
                    }
                    (Some("stream"), Some("trigger")) => {
                        Context::Arguments(vocabulary::STREAM_TRIGGER_ARGS, "stream trigger argument")
                    }
                    (Some("schedule"), _) => {
                        Context::Arguments(vocabulary::SCHEDULE_TRIGGER_ARGS, "schedule trigger argument")
                    }
                    _ => Context::None,
                };
            }
            if last == Some(Token::Punct("=")) && first == Some("kind") && call == Some("model") {
                return Context::ModelKinds;
            }
            Context::None
        }
        "[" => {
            if header.contains(&Token::Punct("->")) || header.len() <= 1 && head.is_some() {
                Context::Steps
            } else {
                Context::None
            }
        }
        _ => {
            // Inside a block: the graph's, a router's, an options block, a test, a record.
            let block = match head {
                Some("graph") => Block::Graph,
                Some("router") => Block::Router,
                Some("step") => Block::Options(vocabulary::STEP_OPTIONS, "step option"),
                Some("queue") => Block::Options(vocabulary::QUEUE_OPTIONS, "queue option"),
                Some("test") => Block::Test,
                Some("request") => Block::Options(vocabulary::REQUEST_OPTIONS, "request option"),
                Some("record") => Block::Record,
                _ => return Context::None,
            };
            statement_context(block, &statement)
        }
    }
}

enum Block {
    Graph,
    Router,
    Options(&'static [&'static str], &'static str),
    Test,
    Record,
}

fn statement_context(block: Block, statement: &[Token]) -> Context {
    let words: Vec<Option<&str>> = statement
        .iter()
        .map(|t| match t {
            Token::Word(w) => Some(*w),
            _ => None,
        })
        .collect();
    let word = |i: usize| words.get(i).copied().flatten();
    let last = statement.last();
    if statement.is_empty() {
        return match block {
            Block::Graph => Context::Item,
            Block::Router => Context::RouterItems,
            Block::Options(list, detail) => Context::Options(list, detail),
            Block::Test => Context::Options(&["request", "expect"], "test statement"),
            Block::Record => Context::None,
        };
    }
    if last == Some(&Token::Punct("->")) {
        return Context::Steps;
    }
    if last == Some(&Token::Punct(":")) && (word(0) == Some("param") || matches!(block, Block::Record)) {
        return Context::Types;
    }
    if last == Some(&Token::Punct("->")) || (last == Some(&Token::Punct(":")) && word(0) == Some("step")) {
        return Context::Types;
    }
    if last != Some(&Token::Punct("=")) {
        // `step a: int -> ` is a type; a chain's arrow was handled above.
        return Context::None;
    }
    match (word(0), statement.len()) {
        (Some("step"), _) => Context::StepKinds { route: false },
        (Some("route"), _) => Context::StepKinds { route: true },
        (Some("router"), 3) => Context::Words(vocabulary::ROUTER_KINDS, "router kind"),
        (Some("queue"), 3) => Context::Words(vocabulary::QUEUE_ENGINES, "queue engine"),
        (Some("trigger"), 3) => Context::Words(vocabulary::TRIGGER_KINDS, "trigger kind"),
        (Some("after" | "before" | "on_error"), 2) => Context::Steps,
        (Some("function"), 2) => Context::Functions,
        (Some("topology"), 2) => Context::Words(vocabulary::TOPOLOGIES, "topology"),
        (Some("engine"), 2) => Context::Words(vocabulary::ENGINES, "engine"),
        _ => Context::None,
    }
}

/// Why a rename cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenameError {
    /// The cursor is on no declared name.
    #[error("no declared name here")]
    NoName,
    /// The graph's name names generated code too.
    #[error("the graph's name is its module's and its root function's: rename it by hand")]
    GraphName,
    /// The new name is not an identifier.
    #[error("`{0}` is not a name: names are Rust identifiers (a letter or `_`, then letters, digits or `_`)")]
    NotAName(String),
    /// Something of the same kind already has the new name.
    #[error("`{0}` is already declared")]
    Taken(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRAPH: &str = "graph g {
    topology = flow;
    function worker;
    param limit: int = 3;
    record Order { id: str }
    step parse: Order -> Order = fn h::parse { on_error = catcher; }
    step enrich = extend({ limit: param.limit }) { function = worker; }
    step catcher = fn h::catcher;
    queue q = stream(url = \"redis://localhost:6379/q\");
    parse -> q -> enrich;
}
";

    fn offset_of(text: &str, needle: &str, nth: usize) -> usize {
        text.match_indices(needle).nth(nth).map(|(i, _)| i + 1).unwrap_or_default()
    }

    #[test]
    fn references_resolve_to_declarations_and_back() {
        let analysis = analyze(GRAPH);
        assert!(analysis.graph.is_some(), "{:?}", analysis.diagnostics);
        let chain = offset_of(GRAPH, "parse -> q", 0);
        let declared = analysis.definition(chain).unwrap_or_default();
        assert_eq!(GRAPH.get(declared.range()), Some("parse"));
        assert_eq!(declared.start_byte(), GRAPH.find("parse:").unwrap_or_default());
        let uses = analysis.references(chain, true);
        assert_eq!(uses.len(), 2);
        assert_eq!(GRAPH.get(uses.get(1).copied().unwrap_or_default().range()), Some("parse"));
        // The handler, the function, the record and the parameter are references too.
        for (needle, nth) in [("catcher", 0), ("worker", 1), ("Order", 1), ("limit", 2)] {
            let at = offset_of(GRAPH, needle, nth);
            let declared = analysis.definition(at).unwrap_or_default();
            assert_eq!(GRAPH.get(declared.range()), Some(needle), "{needle}");
            assert!(!contains(declared, at), "{needle}: the declaration, not the use");
        }
    }

    #[test]
    fn rename_rewrites_every_use_and_refuses_a_taken_name() {
        let analysis = analyze(GRAPH);
        let at = offset_of(GRAPH, "catcher", 0);
        assert_eq!(analysis.rename(at, "handler").map(|spans| spans.len()), Ok(2));
        assert_eq!(analysis.rename(at, "enrich"), Err(RenameError::Taken("enrich".to_string())));
        assert!(analysis.rename(at, "not a name").is_err());
    }

    #[test]
    fn hover_tells_kind_types_function_and_handler() {
        let analysis = analyze(GRAPH);
        let (_, text) = analysis.hover(GRAPH, offset_of(GRAPH, "parse -> ", 0)).unwrap_or_default();
        assert!(text.contains("`h::parse`"), "{text}");
        assert!(text.contains("input `Order` → output `Order`"), "{text}");
        assert!(text.contains("runs in the root function `g`"), "{text}");
        assert!(text.contains("errors go to `catcher`"), "{text}");
        let (_, text) = analysis.hover(GRAPH, offset_of(GRAPH, "enrich =", 0)).unwrap_or_default();
        assert!(text.contains("child function `worker`"), "{text}");
    }

    #[test]
    fn a_shared_model_is_declared_outlined_found_renamed_and_hovered_from_its_routes() {
        let text = "graph g { model iris = model(kind = gaussian_nb, model_path = \"m.json\"); \
                    router r = model { route a = iris; route b = iris; } }";
        let analysis = analyze(text);
        let outline = analysis.symbols();
        assert!(outline.iter().any(|s| s.kind == SymbolKind::Model && s.name == "iris"), "{outline:?}");
        let declared = offset_of(text, "iris =", 0);
        let used = offset_of(text, "iris;", 0);
        let definition = analysis.definition(used).unwrap_or_default();
        assert!(contains(definition, declared) && text.get(definition.range()) == Some("iris"), "{definition:?}");
        assert_eq!(analysis.rename(declared, "flowers").map(|spans| spans.len()), Ok(3));
        let (_, hover) = analysis.hover(text, offset_of(text, "b =", 0)).unwrap_or_default();
        assert!(hover.contains("the one instance of shared model `iris`"), "{hover}");
    }

    #[test]
    fn hover_on_a_loop_step_tells_its_cap_and_the_edge_back() {
        let text = "graph g { topology = flow; allow_cycles = true; step start = map({ n: 0 }); \
                    step bump = map({ n: body.n + 1 }) { max_iterations = 7; } \
                    step gate = choice { body.n >= 3 => done, _ => bump }; step done = map(body) { respond; } \
                    start -> bump -> gate; }";
        let analysis = analyze(text);
        let (_, hover) = analysis.hover(text, offset_of(text, "bump =", 0)).unwrap_or_default();
        assert!(hover.contains("on a loop: an event may enter it 7 times (loop with `gate`)"), "{hover}");
        let (_, hover) = analysis.hover(text, offset_of(text, "gate =", 0)).unwrap_or_default();
        assert!(hover.contains("an event may enter it 100 times (loop with `bump`)"), "{hover}");
        let settings = analysis.completions(text, offset_of(text, "allow_cycles", 0));
        assert!(settings.iter().any(|c| c.label == "max_iterations"), "{settings:?}");
    }

    #[test]
    fn completion_knows_where_the_cursor_is() {
        let analysis = analyze(GRAPH);
        let labels = |text: &str| -> Vec<String> {
            let at = text.len();
            let text = format!("{text}\n}}");
            analysis.completions(&text, at).into_iter().map(|c| c.label).collect()
        };
        let graph = GRAPH.trim_end().trim_end_matches('}');
        assert!(labels(&format!("{graph} parse -> ")).contains(&"catcher".to_string()));
        assert!(labels(&format!("{graph} step x = ")).contains(&"map".to_string()));
        assert!(labels(&format!("{graph} router r = model {{ route m = model(")).contains(&"model_path".to_string()));
        assert!(
            labels(&format!("{graph} router r = model {{ route m = model(kind = "))
                .contains(&"knn_classifier".to_string())
        );
        assert!(labels(&format!("{graph} step x = map(body) {{ ")).contains(&"respond".to_string()));
        assert!(labels(&format!("{graph} step x = map(body) {{ function = ")).contains(&"worker".to_string()));
        assert!(labels(&format!("{graph} step x = map(param.")).contains(&"limit".to_string()));
        assert!(labels(&format!("{graph} param p: ")).contains(&"Order".to_string()));
        assert!(labels(&format!("{graph} trigger t = schedule(")).contains(&"cron".to_string()));
        assert!(labels(&format!("{graph} ")).contains(&"trigger".to_string()));
        assert!(labels(&format!("{graph} step x = map(body) {{ respond; }} ")).contains(&"step".to_string()));
    }

    #[test]
    fn the_outline_nests_routes_and_fields() {
        let analysis = analyze(
            "graph g { router r = model { route a = model(kind = knn_classifier, model_path = \"m.json\"); } }",
        );
        let graph = analysis.outline.unwrap_or_else(|| Symbol {
            name: String::new(),
            kind: SymbolKind::Graph,
            name_span: Span::default(),
            span: Span::default(),
            children: Vec::new(),
        });
        assert_eq!(graph.children.len(), 1);
        assert_eq!(graph.children.first().map(|r| r.children.len()), Some(1));
    }
}
