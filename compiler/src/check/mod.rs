//! The checker: resolve names, build the graph, check it against docs/semantics, type it.
//!
//! Every stage records its problems and carries on, so a file with five mistakes gets five
//! diagnostics. A stage that needs a sound graph (cycle detection before typing) skips only the
//! parts that depend on what failed.

mod builtins;
mod graph;
pub mod handler_crate;
pub mod model_files;
mod names;
mod plan;
mod resolve;
mod triggers;
mod types;
mod values;
pub mod vocabulary;

pub(crate) use builtins::model_kind_names;

use crate::diagnostic::{self, Diagnostic};
use crate::ir::{self, NodeId};
use crate::source::Span;
use crate::syntax::ast;
use std::collections::HashMap;

/// A graph that passed the checker, with its warnings.
#[derive(Debug)]
pub struct Checked {
    /// The checked IR.
    pub graph: ir::Graph,
    /// Problems that do not stop compilation.
    pub warnings: Vec<Diagnostic>,
}

/// A name written where something declared is meant: a step in a chain, a handler, a child
/// function, a record type, a parameter, a route's weight. Editors navigate by these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The name as used.
    pub at: Span,
    /// The declaration's name.
    pub declared: Span,
}

/// What the checker decided about a graph, whether or not it passed: the outcome, and every
/// reference it resolved (as far as it got).
#[derive(Debug)]
pub struct Analysis {
    /// The checked graph, or every error found.
    pub outcome: Result<Checked, Vec<Diagnostic>>,
    /// The references resolved, in the order they were.
    pub references: Vec<Reference>,
}

/// Checks a parsed graph. On failure, every error and warning found, sorted by position.
pub fn check(graph: &ast::Graph) -> Result<Checked, Vec<Diagnostic>> {
    analyze(graph).outcome
}

/// Checks a parsed graph and keeps the references it resolved, for editors.
pub fn analyze(graph: &ast::Graph) -> Analysis {
    let mut checker = Checker::new(graph);
    checker.resolve();
    checker.check_names();
    let acyclic = checker.check_structure();
    if acyclic {
        checker.check_types();
    }
    checker.check_tests();
    if acyclic && !checker.diagnostics.iter().any(Diagnostic::is_error) {
        checker.plan();
        checker.check_triggers();
    }
    let Checker { graph, mut diagnostics, references, .. } = checker;
    diagnostic::sort(&mut diagnostics);
    let outcome = if diagnostics.iter().any(Diagnostic::is_error) {
        // The warnings are about the graph's shape (unreachable steps, no responder, an unused
        // function), which a graph with errors does not have yet: they would be follow-ons.
        diagnostics.retain(Diagnostic::is_error);
        Err(diagnostics)
    } else {
        Ok(Checked { graph, warnings: diagnostics })
    };
    Analysis { outcome, references }
}

/// Every cycle among `count` nodes whose edges `successors` gives, each once (whatever node it
/// was entered at), found by one iterative depth-first walk: no recursion on user input.
fn find_cycles(count: usize, successors: impl Fn(NodeId) -> Vec<NodeId>) -> Vec<Vec<NodeId>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let mut marks = vec![Mark::New; count];
    let mut cycles: Vec<Vec<NodeId>> = Vec::new();
    let mut seen: std::collections::HashSet<Vec<NodeId>> = std::collections::HashSet::new();
    for root in (0..count).map(|index| NodeId(index as u32)) {
        if marks.get(root.index()) != Some(&Mark::New) {
            continue;
        }
        // The stack holds (node, its successors, the next one to visit).
        let mut stack: Vec<(NodeId, Vec<NodeId>, usize)> = vec![(root, successors(root), 0)];
        if let Some(mark) = marks.get_mut(root.index()) {
            *mark = Mark::OnStack;
        }
        while let Some((node, next_nodes, next)) = stack.last_mut() {
            let successor = next_nodes.get(*next).copied();
            *next += 1;
            let Some(successor) = successor else {
                if let Some(mark) = marks.get_mut(node.index()) {
                    *mark = Mark::Done;
                }
                stack.pop();
                continue;
            };
            match marks.get(successor.index()) {
                Some(Mark::New) => {
                    if let Some(mark) = marks.get_mut(successor.index()) {
                        *mark = Mark::OnStack;
                    }
                    stack.push((successor, successors(successor), 0));
                }
                Some(Mark::OnStack) => {
                    let start = stack.iter().position(|(n, _, _)| *n == successor).unwrap_or(0);
                    let cycle: Vec<NodeId> = stack.iter().skip(start).map(|(n, _, _)| *n).collect();
                    let mut key = cycle.clone();
                    key.sort();
                    if seen.insert(key) {
                        cycles.push(cycle);
                    }
                }
                _ => {}
            }
        }
    }
    cycles
}

/// Where things were written, for labels; parallel to `graph.nodes`.
#[derive(Default)]
struct NodeSyntax<'a> {
    decl: Span,
    implementation: Option<&'a ast::StepImpl>,
    signature: Option<&'a (ast::TypeExpr, ast::TypeExpr)>,
    /// The declaration's options, as written.
    options: &'a [ast::Opt],
    option_spans: Vec<(&'a str, Span)>,
    /// `before = x` targets, resolved.
    before: Vec<(NodeId, Span)>,
    /// A stream queue's `key = <expr>`, as written.
    queue_key: Option<&'a ast::Expr>,
    /// A parallel router's `select`, typed with the steps' expressions.
    router_select: Option<&'a ast::Expr>,
}

impl NodeSyntax<'_> {
    fn option_span(&self, key: &str) -> Option<Span> {
        self.option_spans.iter().find(|(k, _)| *k == key).map(|(_, span)| *span)
    }
}

/// The top-level declarations that are not nodes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Declared {
    Function,
    Record,
    Param,
}

struct Checker<'a> {
    ast: &'a ast::Graph,
    graph: ir::Graph,
    syntax: Vec<NodeSyntax<'a>>,
    /// Node ids by name.
    names: HashMap<&'a str, NodeId>,
    /// Where each edge was written.
    edge_spans: HashMap<(NodeId, NodeId), Span>,
    graph_on_error_span: Option<Span>,
    /// Declared child functions, in order.
    functions: Vec<String>,
    /// Some wiring named a node that does not exist: the edges are incomplete, so rules about
    /// the graph's shape (the sync engine's single chain) would report follow-ons.
    wiring_incomplete: bool,
    /// The topology setting was invalid (and reported): its rules would report follow-ons.
    topology_invalid: bool,
    /// Each route's router, by the route's name: for a route wired as if it were a step.
    routers_of_routes: HashMap<&'a str, &'a ast::RouterDecl>,
    topology_span: Option<Span>,
    engine_span: Option<Span>,
    diagnostics: Vec<Diagnostic>,
    references: Vec<Reference>,
    /// Where each child function, record and parameter is first declared, for references to
    /// them: one lookup each, however many steps read a parameter.
    declared: HashMap<(Declared, &'a str), Span>,
}

impl<'a> Checker<'a> {
    fn new(ast: &'a ast::Graph) -> Self {
        Checker {
            ast,
            graph: ir::Graph {
                name: ast.name.name.to_string(),
                description: None,
                topology: ir::Topology::Router,
                engine: ir::Engine::Async,
                params: Vec::new(),
                secrets: Vec::new(),
                functions: Vec::new(),
                answer: ir::Answer::Responder,
                handlers: None,
                records: Vec::new(),
                nodes: Vec::new(),
                on_error: None,
                error_stream: None,
                tests: Vec::new(),
                triggers: Vec::new(),
                in_process_queues: Vec::new(),
                features: Vec::new(),
                allow_cycles: false,
                max_iterations: ir::DEFAULT_MAX_ITERATIONS,
                shared_models: Vec::new(),
                back_edges: Vec::new(),
            },
            syntax: Vec::new(),
            names: HashMap::new(),
            edge_spans: HashMap::new(),
            graph_on_error_span: None,
            functions: Vec::new(),
            wiring_incomplete: false,
            topology_invalid: false,
            routers_of_routes: ast
                .items
                .iter()
                .filter_map(|item| if let ast::Item::Router(router) = item { Some(&**router) } else { None })
                .flat_map(|router| router.routes.iter().map(move |route| (route.name.name.as_str(), router)))
                .collect(),
            topology_span: None,
            engine_span: None,
            diagnostics: Vec::new(),
            references: Vec::new(),
            declared: {
                let mut declared = HashMap::new();
                for item in &ast.items {
                    let (kind, name) = match item {
                        ast::Item::Function(function) => (Declared::Function, function),
                        ast::Item::Record(record) => (Declared::Record, &record.name),
                        ast::Item::Param(param) => (Declared::Param, &param.name),
                        _ => continue,
                    };
                    declared.entry((kind, name.name.as_str())).or_insert(name.span);
                }
                declared
            },
        }
    }

    fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// Records that the name at `at` means what is declared at `declared`.
    fn refer(&mut self, at: Span, declared: Span) {
        self.references.push(Reference { at, declared });
    }

    /// Where the child function, record or parameter `name` is declared.
    fn declaration(&self, kind: Declared, name: &str) -> Option<Span> {
        self.declared.get(&(kind, name)).copied()
    }

    fn node(&self, id: NodeId) -> &ir::Node {
        #[allow(clippy::indexing_slicing, reason = "node ids are made only by the resolver, as indexes into nodes")]
        &self.graph.nodes[id.index()]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut ir::Node {
        #[allow(clippy::indexing_slicing, reason = "node ids are made only by the resolver, as indexes into nodes")]
        &mut self.graph.nodes[id.index()]
    }

    fn syntax_of(&self, id: NodeId) -> &NodeSyntax<'a> {
        #[allow(clippy::indexing_slicing, reason = "syntax is pushed with each node, so the ids match")]
        &self.syntax[id.index()]
    }

    fn node_id(&self, name: &str) -> Option<NodeId> {
        self.names.get(name).copied()
    }

    fn node_names(&self) -> impl Iterator<Item = &str> {
        self.graph.nodes.iter().map(|node| node.name.as_str())
    }

    /// Resolves a reference to a step, router or queue, reporting an unknown name: as a route
    /// of a router, when it is one, or with the closest name.
    fn resolve_node(&mut self, name: &ast::Ident, what: &str) -> Option<NodeId> {
        let found = self.node_id(&name.name);
        if let Some(id) = found {
            self.refer(name.span, self.node(id).span);
        } else {
            self.wiring_incomplete = true;
            let router_of_route = self.routers_of_routes.get(name.name.as_str()).copied();
            let d = match router_of_route {
                Some(router) => Diagnostic::error(
                    crate::diagnostic::Code::UnknownStep,
                    format!("`{}` is a route of router `{}`, not a step", name.name, router.name.name),
                    name.span,
                    format!("a route cannot be wired ({what})"),
                )
                .with_label(router.name.span, "the router it belongs to")
                .with_help(format!(
                    "wire the router instead (`... -> {}`); it sends each event to a route by path (`/v2/models/{}/infer`) or by the body's `model` key",
                    router.name.name, name.name
                )),
                None => {
                    let help = diagnostic::did_you_mean(&name.name, self.node_names());
                    Diagnostic::error(
                        crate::diagnostic::Code::UnknownStep,
                        format!("unknown step `{}`", name.name),
                        name.span,
                        format!("no step, router or queue is named `{}` ({what})", name.name),
                    )
                    .with_optional_help(help.or_else(|| Some("declare it with `step NAME = ...;`".to_string())))
                }
            };
            self.report(d);
        }
        found
    }

    /// Adds an edge once; the first place it was written is kept for labels.
    fn add_edge(&mut self, parent: NodeId, child: NodeId, span: Span) {
        // The span map knows every edge: a lookup, where scanning the parent's children would
        // make a fan-out of N children cost N² (40,000 children: 8 billion instructions).
        if self.edge_spans.contains_key(&(parent, child)) {
            return;
        }
        self.node_mut(parent).children.push(child);
        self.node_mut(child).parents.push(parent);
        self.edge_spans.insert((parent, child), span);
    }

    fn remove_edge(&mut self, parent: NodeId, child: NodeId) {
        self.node_mut(parent).children.retain(|c| *c != child);
        self.node_mut(child).parents.retain(|p| *p != parent);
        self.edge_spans.remove(&(parent, child));
    }

    fn edge_span(&self, parent: NodeId, child: NodeId) -> Span {
        self.edge_spans.get(&(parent, child)).copied().unwrap_or(self.node(child).span)
    }
}
