//! Code generation: the checked IR becomes one Rust module whose pipeline is a single concrete
//! type composed from the runtime's nodes. It prints what the checker decided (catchers,
//! responders, functions) and decides nothing about meaning. Generated code names the runtime
//! only through `::graphc_runtime::__private`, and user code through the paths the graph gives,
//! resolved from where the module is placed (relative paths get `super::`).

mod expr;
mod format;

pub use format::{GeneratedFile, format_file};

use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{self, Answer, Engine, Graph, NodeId, NodeKind, Queue, RouteKind, RouterKind, Type};
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
    let mut shared: Vec<bool> = graph.nodes.iter().map(|node| node.parents.len() > 1).collect();
    for catcher in graph.nodes.iter().filter_map(|node| node.catcher) {
        if let Some(slot) = shared.get_mut(catcher.index()) {
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
        for dep in node.children.iter().copied().chain(node.catcher) {
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
        for &id in &order {
            let (node, depth) = self.build_node(id);
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
        }
        let starts = match self.scope {
            Some(scope) => scope.entries.clone(),
            None => self.graph.entry_nodes(),
        };
        let (root, _) = self.fan_out(&starts, false);
        (bindings, root)
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

    /// `FUNCTIONS`, one builder per function of a distributed graph, and `run`, which starts
    /// one function: the root serves HTTP, a child function consumes its stream.
    fn functions(&mut self) -> TokenStream {
        let rt = rt();
        let graph_name = Literal::string(&self.graph.name);
        if !self.graph.is_distributed() {
            return quote! {
                /// The graph's functions: the root, which serves HTTP.
                pub const FUNCTIONS: &[&::core::primitive::str] = &[#graph_name];

                /// Runs one function of the graph (here only the root, which serves HTTP and runs
                /// the triggers); `*` is the whole graph, the same here.
                pub fn run(function: &::core::primitive::str, options: &#rt::Options, launch: #rt::Launch) -> #rt::Launched {
                    match function {
                        #graph_name | "*" => match pipeline(options).and_then(|handler| ::core::result::Result::Ok((handler, triggers(options)?))) {
                            ::core::result::Result::Ok((handler, triggers)) => launch.serve(handler, triggers),
                            ::core::result::Result::Err(error) => launch.failed(error),
                        },
                        other => launch.unknown(other, FUNCTIONS),
                    }
                }
            };
        }
        let graph = self.graph;
        let names: Vec<Literal> = graph.functions.iter().map(|function| Literal::string(&function.name)).collect();
        let mut builders = Vec::new();
        let mut arms = Vec::new();
        for function in &graph.functions {
            // Prefixed, a function's name is a plain identifier even when it is a keyword; the
            // checker keeps child functions from taking the graph's (the root's) name.
            let builder = format_ident!("function_{}", function.name);
            let name = Literal::string(&function.name);
            self.scope = Some(function);
            let (bindings, root) = self.bindings_and_root();
            self.scope = None;
            let pipeline = self.answered(function.answer, root);
            let doc = match function.reads {
                None => format!(" Builds the root function `{}`: it takes HTTP requests.", function.name),
                Some(_) => format!(" Builds the child function `{}`: it consumes its stream.", function.name),
            };
            builders.push(quote! {
                #[doc = #doc]
                pub fn #builder(options: &#rt::Options) -> ::core::result::Result<impl #rt::Handler + use<>, #rt::StartError> {
                    let context = context(options).with_function(#name);
                    #(#bindings)*
                    ::core::result::Result::Ok(#pipeline)
                }
            });
            let reads = function.reads.map(|queue| graph.node(queue));
            let stream = reads.and_then(|node| match &node.kind {
                NodeKind::Queue(queue) => match &**queue {
                    Queue::Stream { url, stream, shards, .. } => Some((&node.name, url, stream, shards)),
                    Queue::Memory { .. } => None,
                },
                _ => None,
            });
            let start = match stream {
                Some((queue, url, stream, shards)) => {
                    let queue = Literal::string(queue);
                    let (url, stream, shards) = (Literal::string(url), Literal::string(stream), *shards);
                    quote!(launch.consume(handler, #rt::stream_source(options, #name, #queue, #url, #stream, #shards)))
                }
                _ => quote!(match triggers(options) {
                    ::core::result::Result::Ok(triggers) => launch.serve(handler, triggers),
                    ::core::result::Result::Err(error) => launch.failed(error),
                }),
            };
            arms.push(quote! {
                #name => match #builder(options) {
                    ::core::result::Result::Ok(handler) => #start,
                    ::core::result::Result::Err(error) => launch.failed(error),
                },
            });
        }
        quote! {
            /// The graph's functions: the root (it serves HTTP), then the child functions.
            pub const FUNCTIONS: &[&::core::primitive::str] = &[#(#names),*];

            #(#builders)*

            /// Runs one function of the graph: the root serves HTTP and runs the triggers; a
            /// child function consumes its stream; `*` is the whole graph in this process.
            pub fn run(function: &::core::primitive::str, options: &#rt::Options, launch: #rt::Launch) -> #rt::Launched {
                match function {
                    "*" => match pipeline(options).and_then(|handler| ::core::result::Result::Ok((handler, triggers(options)?))) {
                        ::core::result::Result::Ok((handler, triggers)) => launch.serve(handler, triggers),
                        ::core::result::Result::Err(error) => launch.failed(error),
                    },
                    #(#arms)*
                    other => launch.unknown(other, FUNCTIONS),
                }
            }
        }
    }

    /// `triggers`: the root's stream and schedule triggers, as the graph declares them.
    fn triggers(&self) -> TokenStream {
        let rt = rt();
        let answers = |answers: &Option<ir::StreamTarget>| match answers {
            Some(target) => {
                let (url, stream) = (Literal::string(&target.url), Literal::string(&target.stream));
                quote!(::core::option::Option::Some((#url, #stream)))
            }
            None => quote!(::core::option::Option::None),
        };
        let triggers = self.graph.triggers.iter().map(|trigger| {
            let name = Literal::string(&trigger.name);
            let answers = answers(&trigger.answers);
            match &trigger.source {
                ir::TriggerSource::Stream { url, stream, shards, group } => {
                    let (url, stream, group) = (Literal::string(url), Literal::string(stream), Literal::string(group));
                    quote!(#rt::stream_trigger(options, #name, #url, #stream, #shards, #group, #answers))
                }
                ir::TriggerSource::Schedule { when, body, overlap } => {
                    let when = match when {
                        ir::Schedule::Cron { expression, timezone } => {
                            let (expression, timezone) = (Literal::string(expression), Literal::string(timezone));
                            quote!(#rt::When::cron(#expression, #timezone))
                        }
                        ir::Schedule::Every { ms } => {
                            quote!(::core::result::Result::Ok(#rt::When::Every(::std::time::Duration::from_millis(#ms))))
                        }
                    };
                    let body = expr::value(body, Scope::Build);
                    quote!(#rt::schedule_trigger(options, #name, #when, (|| -> ::core::result::Result<#rt::Value, #rt::StepError> { ::core::result::Result::Ok(#body) })().unwrap_or_default(), #overlap, #answers)?)
                }
            }
        });
        quote! {
            /// The root's triggers besides HTTP: streams it consumes and schedules it fires on.
            pub fn triggers(options: &#rt::Options) -> ::core::result::Result<::std::vec::Vec<#rt::Trigger>, #rt::StartError> {
                let context = context(options);
                ::core::result::Result::Ok(::std::vec![#(#triggers),*])
            }
        }
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

    /// What follows a node: `End`, one node, every child (`Fork`), or a choice's outlets; each
    /// further child nests one level deeper, so a wide fan-out is erased in slices.
    fn fan_out(&self, children: &[NodeId], outlets: bool) -> (TokenStream, usize) {
        let rt = rt();
        match children {
            [] => (quote!(#rt::End), 0),
            [only] => self.use_node(*only),
            [first, rest @ ..] => {
                let (first, first_depth) = self.use_node(*first);
                let (rest, rest_depth) = self.fan_out(rest, outlets);
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
        let is_choice = matches!(node.kind, NodeKind::Choice(_));
        let children: Vec<NodeId> = match &node.kind {
            // A choice's outlets are in arm order, whatever order the edges were written in.
            NodeKind::Choice(arms) => choice_outlets(arms).0,
            _ => node.children.to_vec(),
        };
        let (next, next_depth) = self.fan_out(&children, is_choice);
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

    /// The step of a node: a user handler, a built-in, or a router.
    fn step(&mut self, id: NodeId) -> TokenStream {
        let rt = rt();
        let node = self.graph.node(id);
        let span = self.user_span(node.impl_span);
        match &node.kind {
            NodeKind::Function(path) => self.function_step(node, path, span),
            NodeKind::Construct(path, args) => self.construct_step(&node.name, path, args, span),
            NodeKind::Remote(_) => self.internal(id, "a `$remote` step is a node, not a step"),
            NodeKind::Extend(e) => closure(quote!(#rt::Extend), expr::value(e, Scope::Step)),
            NodeKind::Map(e) => closure(quote!(#rt::MapStep), expr::value(e, Scope::Step)),
            NodeKind::FlatMap(e) => closure(quote!(#rt::FlatMap), expr::value(e, Scope::Step)),
            NodeKind::Filter(e) => closure(quote!(#rt::Filter), expr::condition(e, Scope::Step)),
            NodeKind::Choice(arms) => {
                let outlet_of_arm = choice_outlets(arms).1;
                let mut chain = quote!(::core::option::Option::None);
                for ((condition, _), index) in arms.iter().zip(outlet_of_arm).rev() {
                    chain = match condition {
                        Some(condition) => {
                            let condition = expr::condition(condition, Scope::Step);
                            quote!(if #condition { ::core::option::Option::Some(#index) } else { #chain })
                        }
                        None => quote!(::core::option::Option::Some(#index)),
                    };
                }
                closure(quote!(#rt::Choice), chain)
            }
            NodeKind::Batch { size, timeout_ms } => {
                let size = *size as usize;
                let timeout = match timeout_ms {
                    Some(ms) => quote!(::core::option::Option::Some(::std::time::Duration::from_millis(#ms))),
                    None => quote!(::core::option::Option::None),
                };
                quote!(#rt::Batch::new(#size, #timeout))
            }
            NodeKind::Router(router) => self.router(id, router),
            NodeKind::Queue(_) => quote!(#rt::End),
        }
    }

    /// A user function as a step: the whole call carries the handler path's span (`rt_at`), so
    /// that rustc reports a handler of the wrong type at the path, and the adapter's bounds are
    /// checked at the call, once.
    fn function_step(&self, node: &ir::Node, path: &str, span: proc_macro2::Span) -> TokenStream {
        let rt = rt_at(span);
        let path = self.user_path(path, span);
        if node.full_event {
            quote_spanned!(span => #rt::full_event_step(#path))
        } else if node.input != Type::Json || node.output != Type::Json {
            let (input, output) = (rust_type(self.graph, &node.input), rust_type(self.graph, &node.output));
            quote_spanned!(span => #rt::typed_step::<#input, #output, _, _>(#path))
        } else {
            quote_spanned!(span => #rt::body_step(#path))
        }
    }

    /// A user type built once with its arguments.
    fn construct_step(
        &self,
        name: &str,
        path: &str,
        args: &[(String, ir::Expr)],
        span: proc_macro2::Span,
    ) -> TokenStream {
        let rt = rt_at(span);
        let path = self.user_path(path, span);
        let name = Literal::string(name);
        let args = object(args, Scope::Build);
        quote_spanned!(span => #rt::construct::<#path>(#name, #args)?)
    }

    /// A `$remote` step: a node of its own, since its call is awaited.
    fn remote_node(&mut self, id: NodeId, remote: &ir::Remote, next: TokenStream, catcher: TokenStream) -> TokenStream {
        let rt = rt();
        let node = self.graph.node(id);
        let name = Literal::string(&node.name);
        let target = match &remote.target {
            ir::RemoteTarget::Url(url) => {
                let url = Literal::string(url);
                quote!(#rt::Target::Url(::std::string::String::from(#url)))
            }
            ir::RemoteTarget::Function(function) => {
                let function = Literal::string(function);
                quote!(#rt::Target::Function(::std::string::String::from(#function)))
            }
        };
        let method = Literal::string(&remote.method);
        let headers = remote.headers.iter().map(|(k, v)| {
            let (k, v) = (Literal::string(k), Literal::string(v));
            quote!(.header(#k, #v))
        });
        let (timeout, retries, backoff) = (remote.timeout_ms, remote.retries, remote.backoff_ms);
        let input = optional_str(node.input_path.as_deref());
        let result = optional_str(node.result_path.as_deref());
        let respond = node.answers;
        quote!(#rt::RemoteNode {
            name: #name,
            remote: #rt::Remote::new(#target, #method)
                #(#headers)*
                .timeout(::std::time::Duration::from_millis(#timeout))
                .retries(#retries, ::std::time::Duration::from_millis(#backoff)),
            input_path: #input,
            result_path: #result,
            next: #next,
            respond: #respond,
            catcher: #catcher,
        })
    }

    fn router(&mut self, id: NodeId, router: &ir::Router) -> TokenStream {
        let rt = rt();
        let name = Literal::string(&self.graph.node(id).name);
        let prefix = Literal::string(&router.url_prefix);
        let mut settings = TokenStream::new();
        if router.health_prefix != "/v2/health" {
            let health = Literal::string(&router.health_prefix);
            settings.extend(quote!(.with_health_prefix(#health)));
        }
        if router.extend_event {
            settings.extend(quote!(.with_extend_event()));
        }
        let mut routes = Vec::new();
        for route in &router.routes {
            let route_name = Literal::string(&route.key());
            let built = match &route.kind {
                RouteKind::Model(model) => {
                    let model_path = match &model.model_path {
                        Some(path) => {
                            let path = Literal::string(path);
                            quote!(::std::option::Option::Some(#path))
                        }
                        None => quote!(::std::option::Option::None),
                    };
                    // Both kinds load through `LoadModel`: smartcore's takes its estimator as its
                    // one argument; a user's type is named at the user's path, so that a type
                    // that is not a model is rustc's error there.
                    let batched = model.scheduled().then(|| {
                        let (rows, delay) = model.batching.map_or((1, 0), |b| (b.max_rows as usize, b.max_delay_ms));
                        let (rows, delay) = (Literal::usize_unsuffixed(rows), Literal::u64_unsuffixed(delay));
                        let instances = Literal::usize_unsuffixed(model.instances.unwrap_or(1) as usize);
                        quote!(.scheduled(#rt::Schedule {
                            batch_size: #rows,
                            batch_delay: ::std::time::Duration::from_millis(#delay),
                            instances: #instances,
                        }))
                    });
                    let route = match &model.source {
                        ir::ModelSource::Smartcore(kind) => {
                            let kind = format_ident!("{}", model_kind_variant(*kind));
                            quote!(#rt::model_route::<#rt::SmartcoreModel>(
                                options, #route_name, #model_path, #rt::smartcore_args(#rt::ModelKind::#kind)
                            )?)
                        }
                        ir::ModelSource::User { path, args } => {
                            let span = self.user_span(route.impl_span);
                            let (rt, path) = (rt_at(span), self.user_path(path, span));
                            let args = object(args, Scope::Build);
                            quote_spanned!(span => #rt::model_route::<#path>(options, #route_name, #model_path, #args)?)
                        }
                    };
                    quote!(#route #batched)
                }
                RouteKind::Step(kind) => {
                    let span = self.user_span(route.impl_span);
                    let step = match kind.as_ref() {
                        NodeKind::Function(path) => {
                            let (rt, path) = (rt_at(span), self.user_path(path, span));
                            quote_spanned!(span => #rt::body_step(#path))
                        }
                        NodeKind::Construct(path, args) => self.construct_step(&route.name, path, args, span),
                        _ => self.internal(id, "the checker lets routes run only models, `fn` and `new` steps"),
                    };
                    quote!(#rt::Route::Step(#rt::Arc::new(#step)))
                }
            };
            routes.push(quote!((::std::string::String::from(#route_name), #built)));
        }
        let mode = match &router.kind {
            RouterKind::Model => quote!(#rt::Mode::Model),
            RouterKind::Parallel => quote!(#rt::Mode::Parallel),
            RouterKind::Ensemble { vote, weights } => {
                let regression = *vote == ir::Vote::Regression;
                let weights = weights.iter().map(|w| Literal::f64_suffixed(*w));
                quote!(#rt::Mode::Ensemble { regression: #regression, weights: ::std::vec![#(#weights),*] })
            }
            RouterKind::Custom(path) => {
                let path = self.user_path(path, self.user_span(self.graph.node(id).impl_span));
                quote!(#rt::Mode::Custom(#rt::Arc::new(<#path as ::core::default::Default>::default())))
            }
        };
        quote!(#rt::Router::new(#name, #prefix, ::std::vec![#(#routes),*], #mode)#settings)
    }

    /// What the checker should have made impossible: a graphc bug, reported as such.
    fn internal(&mut self, id: NodeId, what: &str) -> TokenStream {
        let node = self.graph.node(id);
        self.diagnostics.push(
            Diagnostic::error(
                Code::Internal,
                format!("internal error (a graphc bug): {what}"),
                node.impl_span,
                "while generating this node",
            )
            .with_help("`graphc check` accepted this graph, so it must build: please report it with the graph"),
        );
        quote!(::core::unreachable!())
    }

    fn user_span(&self, span: Span) -> proc_macro2::Span {
        self.options.span_of.map_or_else(proc_macro2::Span::call_site, |span_of| span_of(span))
    }

    /// A user's path, resolved from where the generated module is placed.
    fn user_path(&self, path: &str, span: proc_macro2::Span) -> TokenStream {
        let segments: Vec<&str> = path.split("::").collect();
        let anchored = matches!(segments.first(), Some(&"" | &"crate" | &"self" | &"super"));
        let idents = segments.iter().filter(|s| !s.is_empty()).map(|s| ident(s, span));
        let leading = if segments.first() == Some(&"") {
            quote_spanned!(span => ::)
        } else if anchored {
            quote!()
        } else {
            quote_spanned!(span => super::)
        };
        quote_spanned!(span => #leading #(#idents)::*)
    }

    fn tests(&self) -> TokenStream {
        let rt = rt();
        let cases = self.graph.tests.iter().map(|test| {
            let name = Literal::string(&test.name);
            let method = Literal::string(&test.method);
            let path = Literal::string(&test.path);
            let headers = test.headers.iter().map(|(k, v)| {
                let (k, v) = (Literal::string(k), Literal::string(v));
                quote!((#k, #v))
            });
            let body = match &test.body {
                Some(body) => {
                    let body = expr::value(body, Scope::Build);
                    quote!((|| -> ::core::result::Result<#rt::Value, #rt::StepError> { ::core::result::Result::Ok(#body) })().ok())
                }
                None => quote!(::core::option::Option::None),
            };
            let event_id = match &test.event_id {
                Some(id) => {
                    let id = Literal::string(id);
                    quote!(::core::option::Option::Some(#id))
                }
                None => quote!(::core::option::Option::None),
            };
            let expects = test.expects.iter().map(|expect| {
                let source = Literal::string(&describe(expect));
                let check = expr::condition(expect, Scope::Test);
                quote!(#rt::Expectation {
                    source: #source,
                    check: |status: &#rt::Value, headers: &#rt::Value, body: &#rt::Value| -> ::core::result::Result<bool, #rt::StepError> {
                        ::core::result::Result::Ok(#check)
                    },
                })
            });
            quote!(#rt::TestCase {
                name: #name,
                method: #method,
                path: #path,
                headers: ::std::vec![#(#headers),*],
                body: #body,
                event_id: #event_id,
                expects: ::std::vec![#(#expects),*],
            })
        });
        quote! {
            /// The graph's test blocks.
            pub fn tests() -> ::std::vec::Vec<#rt::TestCase> {
                let context = context(&#rt::Options::default());
                ::std::vec![#(#cases),*]
            }
        }
    }
}

/// A built-in step's closure over the event and the context.
fn closure(step: TokenStream, body: TokenStream) -> TokenStream {
    let rt = rt();
    quote!(#step(move |event: &#rt::Event, context: &#rt::Context| { ::core::result::Result::Ok(#body) }))
}

/// A JSON object of named constant arguments, evaluated while the pipeline is built.
fn object(args: &[(String, ir::Expr)], scope: Scope) -> TokenStream {
    let rt = rt();
    let keys = args.iter().map(|(k, _)| Literal::string(k));
    let values = args.iter().map(|(_, v)| expr::value(v, scope));
    quote!({
        let build = || -> ::core::result::Result<#rt::Map<::std::string::String, #rt::Value>, #rt::StepError> {
            let mut object = #rt::Map::new();
            #( object.insert(::std::string::String::from(#keys), #values); )*
            ::core::result::Result::Ok(object)
        };
        build().map_err(|error| #rt::StartError::Step { step: ::std::string::String::from("arguments"), reason: error.to_string() })?
    })
}

fn optional_str(path: Option<&[String]>) -> TokenStream {
    match path {
        Some(path) => {
            let path = Literal::string(&path.join("."));
            quote!(::core::option::Option::Some(#path))
        }
        None => quote!(::core::option::Option::None),
    }
}

fn rust_type(graph: &Graph, ty: &Type) -> TokenStream {
    let rt = rt();
    match ty {
        Type::Json | Type::Object | Type::Shape(_) | Type::Null => quote!(#rt::Value),
        // Through `core::primitive`: a record may be named `bool`.
        Type::Bool => quote!(::core::primitive::bool),
        Type::Int => quote!(::core::primitive::i64),
        Type::Float => quote!(::core::primitive::f64),
        Type::Str => quote!(::std::string::String),
        Type::Array(element) => {
            let element = rust_type(graph, element);
            quote!(::std::vec::Vec<#element>)
        }
        Type::Optional(inner) => {
            let inner = rust_type(graph, inner);
            quote!(::core::option::Option<#inner>)
        }
        Type::Record(id) => {
            let name = graph
                .records
                .get(id.index())
                .map_or_else(|| format_ident!("Record"), |r| ident(&r.name, proc_macro2::Span::call_site()));
            quote!(#name)
        }
    }
}

fn model_kind_variant(kind: ir::ModelKind) -> &'static str {
    match kind {
        ir::ModelKind::LogisticRegression => "LogisticRegression",
        ir::ModelKind::DecisionTreeClassifier => "DecisionTreeClassifier",
        ir::ModelKind::RandomForestClassifier => "RandomForestClassifier",
        ir::ModelKind::KnnClassifier => "KnnClassifier",
        ir::ModelKind::GaussianNb => "GaussianNb",
        ir::ModelKind::LinearRegression => "LinearRegression",
        ir::ModelKind::DecisionTreeRegressor => "DecisionTreeRegressor",
        ir::ModelKind::RandomForestRegressor => "RandomForestRegressor",
        ir::ModelKind::KnnRegressor => "KnnRegressor",
    }
}

/// An expectation as the test report shows it.
fn describe(expr: &ir::Expr) -> String {
    use ir::Expr as E;
    match expr {
        E::Null => "null".into(),
        E::Bool(b) => b.to_string(),
        E::Int(i) => i.to_string(),
        E::Float(f) => f.to_string(),
        E::Str(s) => format!("{s:?}"),
        E::Body => "body".into(),
        E::Status => "status".into(),
        E::Headers => "headers".into(),
        E::Param(p) => format!("param.{p}"),
        E::EventField(f) => format!("event.{}", f.name()),
        E::Field(base, f) => format!("{}.{f}", describe(base)),
        E::Index(base, i) => format!("{}[{}]", describe(base), describe(i)),
        E::Unary(ir::UnaryOp::Not, e) => format!("!{}", describe(e)),
        E::Unary(ir::UnaryOp::Neg, e) => format!("-{}", describe(e)),
        E::Binary(op, a, b) => format!("{} {} {}", describe(a), op.symbol(), describe(b)),
        E::Object(entries) => format!(
            "{{{}}}",
            entries.iter().map(|(k, v)| format!("{k}: {}", describe(v))).collect::<Vec<_>>().join(", ")
        ),
        E::Array(items) => format!("[{}]", items.iter().map(describe).collect::<Vec<_>>().join(", ")),
        E::Len(e) => format!("len({})", describe(e)),
    }
}
