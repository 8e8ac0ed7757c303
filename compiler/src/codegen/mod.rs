//! Code generation: the checked IR becomes one Rust module whose pipeline is a single concrete
//! type composed from the runtime's nodes. It prints what the checker decided (catchers,
//! responders, functions) and decides nothing about meaning. Generated code names the runtime
//! only through `::graphc_runtime::__private`, and user code through the paths the graph gives,
//! resolved from where the module is placed (relative paths get `super::`).

mod entry;
mod expr;
mod file;
mod steps;

pub use file::{GeneratedFile, format_file};
use steps::{optional_str, rust_type};

use crate::diagnostic::Diagnostic;
use crate::ir::{self, Answer, Engine, Graph, NodeId, NodeKind, Queue, Type};
use crate::rust_names::{self, RustName};
use crate::source::Span;
use expr::Scope;
use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};

/// The names of the graphc-runtime features the generated code of `graph` uses, as the plan
/// decided them (`Graph::features`).
pub fn runtime_features(graph: &Graph) -> Vec<&'static str> {
    graph.features.iter().map(|feature| feature.name()).collect()
}

/// How the code generator places user tokens.
pub struct CodegenOptions<'a> {
    /// Maps a source span to the span user tokens should carry, so that rustc reports type
    /// errors in handlers at the user's own tokens (`graph!`). Without it, tokens are unspanned.
    pub span_of: Option<&'a dyn Fn(Span) -> proc_macro2::Span>,
}

/// A choice's outlets, each once, in the order of the first arm that names it; and for each arm,
/// the index of its outlet among them (several arms may name one target).
fn choice_outlets(arms: &[(Option<ir::Expr>, NodeId)]) -> (Vec<NodeId>, Vec<usize>) {
    let mut outlets: Vec<NodeId> = Vec::new();
    let outlet_of_arm = arms
        .iter()
        .map(|(_, outlet)| match outlets.iter().position(|known| known == outlet) {
            Some(index) => index,
            None => {
                outlets.push(*outlet);
                outlets.len() - 1
            }
        })
        .collect();
    (outlets, outlet_of_arm)
}

/// The runtime's hidden module, by absolute path.
fn rt() -> TokenStream {
    quote!(::graphc_runtime::__private)
}

/// The same path spanned at a user's tokens, so that a call around a user's handler is the
/// user's span as a whole and rustc reports the handler's type errors there.
fn rt_at(span: proc_macro2::Span) -> TokenStream {
    quote_spanned!(span => ::graphc_runtime::__private)
}

/// A graph name as a Rust identifier: keywords are written raw (`r#match`); the checker has
/// refused what Rust cannot spell.
pub fn ident(name: &str, span: proc_macro2::Span) -> Ident {
    match rust_names::classify(name) {
        RustName::Keyword => Ident::new_raw(name, span),
        RustName::Plain | RustName::Reserved => Ident::new(name, span),
    }
}

/// Generates the module for a checked graph.
pub fn generate(graph: &Graph, options: &CodegenOptions<'_>) -> Result<TokenStream, Vec<Diagnostic>> {
    // Error handlers and nodes with several parents are bound once, behind an `Arc`.
    // So are the steps a loop returns to: the edge back holds a weak reference to that `Arc`.
    let mut shared: Vec<bool> = graph.nodes.iter().map(|node| node.parents.len() > 1).collect();
    for id in graph.nodes.iter().filter_map(|node| node.catcher).chain(graph.back_edges.iter().map(|edge| edge.to)) {
        if let Some(slot) = shared.get_mut(id.index()) {
            *slot = true;
        }
    }
    let mut generator = Generator { graph, options, diagnostics: Vec::new(), scope: None, depth: Vec::new(), shared };
    let tokens = generator.module();
    if generator.diagnostics.is_empty() { Ok(tokens) } else { Err(generator.diagnostics) }
}

struct Generator<'g> {
    graph: &'g Graph,
    options: &'g CodegenOptions<'g>,
    diagnostics: Vec<Diagnostic>,
    /// While generating one function of a distributed graph: that function.
    scope: Option<&'g ir::Function>,
    /// How deeply each bound node's type nests other nodes' types (see `MAX_DEPTH`).
    depth: Vec<usize>,
    /// Which nodes are bound behind an `Arc` (see `is_shared`).
    shared: Vec<bool>,
}

/// How deeply node types may nest before one is erased behind a box. A node's type holds the
/// types of everything after it (its children, the right-nested `Fork`s and `Outlets` of a
/// fan-out, its error handler), and rustc's trait solver overflows past about a hundred levels
/// of futures; erasing every few levels keeps any width and depth within its limits at the cost
/// of one indirect call per erased node.
const MAX_DEPTH: usize = 8;

/// Whether a node is being visited in `binding_order`.
#[derive(Clone, Copy, PartialEq)]
enum Visit {
    New,
    Open,
    Done,
}

fn node_ident(id: NodeId) -> Ident {
    format_ident!("node_{}", id.0)
}

/// The slot an edge back to `id` goes through.
fn loop_slot(id: NodeId) -> Ident {
    format_ident!("loop_{}", id.0)
}

impl Generator<'_> {
    fn module(&mut self) -> TokenStream {
        let rt = rt();
        let name = ident(&self.graph.name, proc_macro2::Span::call_site());
        let graph_name = Literal::string(&self.graph.name);
        let records = self.records();
        let params = self.graph.params.iter().map(|param| {
            let name = Literal::string(&param.name);
            let value = param.default.as_ref().map_or(quote!(#rt::Value::Null), |d| expr::value(d, Scope::Build));
            quote!((#name, #value))
        });
        let error_stream = match &self.graph.error_stream {
            None => quote!(),
            Some(ir::ErrorStream::Memory) => {
                quote!(.with_error_stream(#rt::error_stream(options, ::core::option::Option::None)))
            }
            Some(ir::ErrorStream::Stream { url, stream }) => {
                let (url, stream) = (Literal::string(url), Literal::string(stream));
                quote!(.with_error_stream(#rt::error_stream(options, ::core::option::Option::Some((#url, #stream)))))
            }
        };
        let pipeline = self.pipeline();
        let triggers = self.triggers();
        let functions = self.functions();
        let tests = self.tests();
        let engine = match self.graph.engine {
            Engine::Sync => quote!(sync),
            Engine::Async => quote!(async),
        };
        let engine = Literal::string(&engine.to_string());
        let features = self.graph.features.iter().map(|feature| {
            let require = format_ident!("require_{}", feature.name());
            quote!(#rt::#require!();)
        });
        quote! {
            #[allow(unused, clippy::all, missing_docs, non_snake_case, non_camel_case_types)]
            pub mod #name {
                #(#features)*

                /// The graph's name.
                pub const NAME: &::core::primitive::str = #graph_name;
                /// The graph's engine: `sync` or `async`.
                pub const ENGINE: &::core::primitive::str = #engine;

                #records

                /// The context: the graph's parameters, with the options' values over the defaults.
                pub fn context(options: &#rt::Options) -> #rt::Context {
                    let build = || -> ::core::result::Result<::std::vec::Vec<(&'static ::core::primitive::str, #rt::Value)>, #rt::StepError> {
                        let context = #rt::Context::new(#graph_name);
                        ::core::result::Result::Ok(::std::vec![#(#params),*])
                    };
                    #rt::context(#graph_name, build().unwrap_or_default(), options)#error_stream
                }

                #pipeline

                #triggers

                #functions

                /// The pipeline behind the mock server, for tests: no network, so streams and the
                /// error stream are in memory (the options' own, when they have some).
                pub fn mock(options: &#rt::Options) -> ::core::result::Result<#rt::MockServer<impl #rt::Handler + use<>>, #rt::StartError> {
                    ::core::result::Result::Ok(#rt::MockServer::new(pipeline(&#rt::in_memory(options))?))
                }

                #tests
            }
        }
    }

    fn records(&self) -> TokenStream {
        let rt = rt();
        let records = self.graph.records.iter().map(|record| {
            let name = ident(&record.name, proc_macro2::Span::call_site());
            let fields = record.fields.iter().map(|(field, ty)| {
                let boxed = record.boxed.contains(field);
                let field = ident(field, proc_macro2::Span::call_site());
                let ty = match ty {
                    Type::Optional(inner) if boxed => {
                        let inner = rust_type(self.graph, inner);
                        quote!(::core::option::Option<::std::boxed::Box<#inner>>)
                    }
                    ty => rust_type(self.graph, ty),
                };
                quote!(pub #field: #ty)
            });
            quote! {
                #[derive(Clone, Debug, PartialEq, #rt::serde::Serialize, #rt::serde::Deserialize)]
                #[serde(crate = "::graphc_runtime::__private::serde")]
                pub struct #name { #(#fields),* }
            }
        });
        quote!(#(#records)*)
    }

    /// The order to bind nodes in: every node after its children and its error handler (the
    /// checker has refused loops of handlers, so there is one). Only nodes an event can reach
    /// are bound: an unreachable step (after a queue nothing writes to) would be built and never
    /// used, and its closures would have no type to take.
    fn binding_order(&mut self) -> Vec<NodeId> {
        let mut order = Vec::new();
        let mut state = vec![Visit::New; self.graph.nodes.len()];
        let mut entries = self.graph.entry_nodes();
        // Each function's own entries too: a child function's first steps are reached from the
        // root only through its stream, and the root may be unreachable itself.
        entries.extend(self.graph.functions.iter().flat_map(|function| function.entries.iter().copied()));
        for id in entries {
            self.visit(id, &mut state, &mut order);
        }
        if let Some(scope) = self.scope {
            order.retain(|id| scope.nodes.contains(id));
        }
        order
    }

    fn visit(&mut self, id: NodeId, state: &mut [Visit], order: &mut Vec<NodeId>) {
        match state.get(id.index()) {
            Some(Visit::Done) => return,
            Some(Visit::Open) => {
                self.internal(id, "its error handlers lead back to it");
                return;
            }
            _ => {}
        }
        if let Some(slot) = state.get_mut(id.index()) {
            *slot = Visit::Open;
        }
        let node = self.graph.node(id);
        // An edge back to an earlier step is bound through its loop slot, not by nesting.
        let forward = node.children.iter().copied().filter(|&child| !self.graph.is_back_edge(id, child));
        for dep in forward.chain(node.catcher).collect::<Vec<_>>() {
            self.visit(dep, state, order);
        }
        if let Some(slot) = state.get_mut(id.index()) {
            *slot = Visit::Done;
        }
        order.push(id);
    }

    fn pipeline(&mut self) -> TokenStream {
        let rt = rt();
        let (bindings, root) = self.bindings_and_root();
        let pipeline = self.answered(self.graph.answer, root);
        quote! {
            /// Builds the pipeline: loads models, builds `new` steps, composes the nodes. Every
            /// function of the graph runs in this one process; stream queues read by a function
            /// are memory queues here, and output streams are written.
            pub fn pipeline(options: &#rt::Options) -> ::core::result::Result<impl #rt::Handler + use<>, #rt::StartError> {
                let context = context(options);
                #(#bindings)*
                ::core::result::Result::Ok(#pipeline)
            }
        }
    }

    /// The executor around a root node, answering as the IR says.
    fn answered(&self, answer: Answer, root: TokenStream) -> TokenStream {
        let rt = rt();
        match (self.graph.engine, answer) {
            (Engine::Sync, _) => quote!(#rt::SyncPipeline::new(#root, context)),
            (Engine::Async, Answer::Responder) => quote!(#rt::AsyncPipeline::new(#root, context, true)),
            (Engine::Async, Answer::Accepted) => quote!(#rt::AsyncPipeline::new(#root, context, false)),
            (Engine::Async, Answer::WhenDone) => quote!(#rt::AsyncPipeline::answered_at_end(#root, context)),
        }
    }

    /// The node bindings, in order, and the root node that enters them.
    fn bindings_and_root(&mut self) -> (Vec<TokenStream>, TokenStream) {
        let order = self.binding_order();
        self.depth = vec![0; self.graph.nodes.len()];
        let mut bindings = Vec::new();
        // Each shared model a router here serves is loaded once, before the routers.
        for shared in &self.graph.shared_models {
            let used = order.iter().any(|&id| match &self.graph.node(id).kind {
                NodeKind::Router(router) => router.routes.iter().any(|route| {
                    matches!(&route.kind, ir::RouteKind::Model(model) if model.shared.as_deref() == Some(shared.name.as_str()))
                }),
                _ => false,
            });
            if used {
                let binding = steps::shared_model_ident(self.graph, &shared.name);
                let model = self.model_route(&shared.name, &shared.model, shared.impl_span);
                bindings.push(quote!(let #binding = #model;));
            }
        }
        let loop_targets: Vec<NodeId> = order.iter().copied().filter(|&id| self.is_loop_target(id)).collect();
        for &id in &loop_targets {
            let (slot, rt) = (loop_slot(id), rt());
            bindings.push(match self.graph.engine {
                Engine::Async => quote!(let #slot = #rt::LoopSlot::new();),
                Engine::Sync => quote!(let #slot = #rt::LoopSlotSync::new();),
            });
        }
        for &id in &order {
            let (node, depth) = self.build_node(id);
            let (node, depth) = self.iterated(id, node, depth);
            let (node, depth) = self.erase_if_deep(node, depth);
            if let Some(slot) = self.depth.get_mut(id.index()) {
                *slot = depth;
            }
            // A node that runs a user's handler is bound at the handler's span: rustc checks the
            // binding's type there, so a handler of the wrong type is reported at its path only.
            let span = match self.graph.node(id).kind {
                NodeKind::Function(_) | NodeKind::Construct(..) => self.user_span(self.graph.node(id).impl_span),
                _ => proc_macro2::Span::call_site(),
            };
            let ident = Ident::new(&node_ident(id).to_string(), span);
            bindings.push(if self.is_shared(id) {
                quote_spanned!(span => let #ident = ::graphc_runtime::__private::Arc::new(#node);)
            } else {
                quote_spanned!(span => let #ident = #node;)
            });
            if loop_targets.contains(&id) {
                let slot = loop_slot(id);
                bindings.push(quote!(#slot.bind(&#ident);));
            }
        }
        let starts = match self.scope {
            Some(scope) => scope.entries.clone(),
            None => self.graph.entry_nodes(),
        };
        let (root, _) = self.fan_out(None, &starts, false);
        (bindings, root)
    }

    /// Whether an edge back from a later step returns to this one.
    fn is_loop_target(&self, id: NodeId) -> bool {
        self.graph.back_edges.iter().any(|edge| edge.to == id)
    }

    /// A step on a loop, counted as it is entered (the checker decided its cap).
    fn iterated(&self, id: NodeId, node: TokenStream, depth: usize) -> (TokenStream, usize) {
        let Some(cap) = self.graph.node(id).iteration_cap else { return (node, depth) };
        let rt = rt();
        let name = Literal::string(&self.graph.node(id).name);
        let (catcher, catcher_depth) = self.catcher(id);
        (quote!(#rt::Iterated::new(#name, #cap, #node, #catcher)), 1 + depth.max(catcher_depth))
    }

    /// A node type nested deeper than `MAX_DEPTH`, erased: the depth starts again from zero.
    fn erase_if_deep(&self, node: TokenStream, depth: usize) -> (TokenStream, usize) {
        if depth < MAX_DEPTH {
            return (node, depth);
        }
        let rt = rt();
        let erased = match self.graph.engine {
            Engine::Async => quote!(#rt::Boxed::new(#node)),
            Engine::Sync => quote!(#rt::BoxedSync::new(#node)),
        };
        (erased, 0)
    }

    /// Error handlers and nodes with several parents are bound once, behind an `Arc`.
    fn is_shared(&self, id: NodeId) -> bool {
        self.shared.get(id.index()).copied().unwrap_or(false)
    }

    fn depth_of(&self, id: NodeId) -> usize {
        self.depth.get(id.index()).copied().unwrap_or(0)
    }

    /// A reference to a bound node, from one of its parents (or from the root), with the depth
    /// of its type.
    fn use_node(&self, id: NodeId) -> (TokenStream, usize) {
        let rt = rt();
        let ident = node_ident(id);
        if self.is_shared(id) {
            (quote!(#rt::Shared(#ident.clone())), self.depth_of(id) + 1)
        } else {
            (quote!(#ident), self.depth_of(id))
        }
    }

    /// What follows a node (`from`; `None` for the root): `End`, one node, every child
    /// (`Fork`), or a choice's outlets; each further child nests one level deeper, so a wide
    /// fan-out is erased in slices. An edge that closes a loop goes through the loop's slot.
    fn fan_out(&self, from: Option<NodeId>, children: &[NodeId], outlets: bool) -> (TokenStream, usize) {
        let rt = rt();
        let follow = |child: NodeId| match from {
            Some(from) if self.graph.is_back_edge(from, child) => {
                let slot = loop_slot(child);
                match self.graph.engine {
                    Engine::Async => (quote!(#rt::LoopBack::to(&#slot)), 0),
                    Engine::Sync => (quote!(#rt::LoopBackSync::to(&#slot)), 0),
                }
            }
            _ => self.use_node(child),
        };
        match children {
            [] => (quote!(#rt::End), 0),
            [only] => follow(*only),
            [first, rest @ ..] => {
                let (first, first_depth) = follow(*first);
                let (rest, rest_depth) = self.fan_out(from, rest, outlets);
                let (rest, rest_depth) = self.erase_if_deep(rest, rest_depth);
                let both = if outlets || self.graph.engine == Engine::Sync {
                    quote!(#rt::Outlets(#first, #rest))
                } else {
                    quote!(#rt::Fork(#first, #rest))
                };
                (both, 1 + first_depth.max(rest_depth))
            }
        }
    }

    /// A queue, as the plan realised it in the function being generated (`ir::QueueRealisation`).
    fn queue(&self, id: NodeId, node: &ir::Node, queue: &Queue, next: TokenStream) -> TokenStream {
        let rt = rt();
        match (self.graph.queue_realisation(self.scope, id), queue) {
            (ir::QueueRealisation::StreamWriter, Queue::Stream { url, stream, shards, .. }) => {
                let (name, url, stream, shards) =
                    (Literal::string(&node.name), Literal::string(url), Literal::string(stream), *shards);
                quote!(#rt::stream_writer(options, #name, #url, #stream, #shards))
            }
            (ir::QueueRealisation::Memory { capacity }, _) => {
                let capacity = capacity as usize;
                quote!(#rt::MemoryQueue::new(#capacity, #next))
            }
            (ir::QueueRealisation::PassThrough | ir::QueueRealisation::StreamWriter, _) => next,
        }
    }

    /// A streaming step (docs/semantics.md, "Streamed answers"): each chunk to the steps after
    /// it, their array to the `collect()` steps after it.
    fn stream_node(&mut self, id: NodeId) -> (TokenStream, usize) {
        let rt = rt();
        let node = self.graph.node(id);
        let (per_chunk, collecting): (Vec<NodeId>, Vec<NodeId>) =
            node.children.iter().partition(|&&child| !matches!(self.graph.node(child).kind, NodeKind::Collect));
        let (next, next_depth) = self.fan_out(Some(id), &per_chunk, false);
        let (whole, whole_depth) = self.fan_out(Some(id), &collecting, false);
        let (catcher, catcher_depth) = self.catcher(id);
        let name = Literal::string(&node.name);
        let respond = node.answers;
        let answers = self.graph.answers_after(&per_chunk);
        let NodeKind::Function(path) = &node.kind else {
            return (self.internal(id, "only a function streams"), 1);
        };
        let step = self.function_step(node, path, self.user_span(node.impl_span));
        let built = quote!(#rt::StreamNode::with(#name, #step, #next, #whole, #respond, #answers, #catcher));
        (built, 1 + next_depth.max(whole_depth).max(catcher_depth))
    }

    /// The node's handler, and the depth its type adds.
    fn catcher(&self, id: NodeId) -> (TokenStream, usize) {
        let rt = rt();
        match self.graph.node(id).catcher {
            Some(handler) => {
                let depth = self.depth_of(handler) + 1;
                let handler = node_ident(handler);
                (quote!(#rt::CatchWith(#handler.clone())), depth)
            }
            None => (quote!(#rt::NoCatcher), 0),
        }
    }

    /// A node's construction, and how deeply its type nests.
    fn build_node(&mut self, id: NodeId) -> (TokenStream, usize) {
        let rt = rt();
        let node = self.graph.node(id);
        if node.streaming {
            return self.stream_node(id);
        }
        let is_choice = matches!(node.kind, NodeKind::Choice(_));
        let children: Vec<NodeId> = match &node.kind {
            // A choice's outlets are in arm order, whatever order the edges were written in.
            NodeKind::Choice(arms) => choice_outlets(arms).0,
            _ => node.children.to_vec(),
        };
        let (next, next_depth) = self.fan_out(Some(id), &children, is_choice);
        let (catcher, catcher_depth) = self.catcher(id);
        let depth = 1 + next_depth.max(catcher_depth);
        if let NodeKind::Queue(queue) = &node.kind {
            let inner = self.queue(id, node, queue, next);
            return match &**queue {
                // The key is computed as the event enters the queue, in one process or many.
                Queue::Stream { key: Some(key), .. } => {
                    let name = Literal::string(&node.name);
                    let key = expr::value(key, Scope::Step);
                    let keyed = quote!(#rt::SetKey::new(#name, move |event: &#rt::Event, context: &#rt::Context| {
                        ::core::result::Result::Ok(#key)
                    }, #inner));
                    (keyed, depth + 1)
                }
                _ => (inner, depth),
            };
        }
        let name = Literal::string(&node.name);
        let answers = node.answers;
        if let NodeKind::Remote(remote) = &node.kind {
            return (self.remote_node(id, remote, next, catcher), depth);
        }
        let step = self.step(id);
        let step = if node.input_path.is_some() || node.result_path.is_some() {
            let input = optional_str(node.input_path.as_deref());
            let result = optional_str(node.result_path.as_deref());
            quote!(#rt::WithPaths::new(#name, #step, #input, #result))
        } else {
            step
        };
        // The sync engine runs every step in place, its whole events on the pool.
        let step = match node.kind.placement() {
            ir::StepPlacement::BlockingPool if self.graph.engine == Engine::Async => quote!(#rt::Blocking::new(#step)),
            _ => step,
        };
        (quote!(#rt::StepNode::with(#name, #step, #next, #answers, #catcher)), depth)
    }
}
