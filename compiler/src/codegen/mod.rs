//! Code generation: the checked IR becomes one Rust module whose pipeline is a single concrete
//! type composed from the runtime's nodes. Generated code names the runtime only through
//! `::graphc_runtime::__private`, and user code through the paths the graph gives, resolved
//! from where the module is placed (relative paths get `super::`).

mod expr;
mod format;

pub use format::format_file;

use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{self, Engine, Graph, NodeId, NodeKind, Placement, Queue, RouteKind, RouterKind, Topology, Type};
use crate::source::Span;
use expr::Scope;
use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use std::collections::BTreeSet;

/// How the code generator places user tokens.
pub struct CodegenOptions<'a> {
    /// Maps a source span to the span user tokens should carry, so that rustc reports type
    /// errors in handlers at the user's own tokens (`graph!`). Without it, tokens are unspanned.
    pub span_of: Option<&'a dyn Fn(Span) -> proc_macro2::Span>,
}

/// The runtime's hidden module, by absolute path.
fn rt() -> TokenStream {
    quote!(::graphc_runtime::__private)
}

/// Generates the module for a checked graph.
pub fn generate(graph: &Graph, options: &CodegenOptions<'_>) -> Result<TokenStream, Vec<Diagnostic>> {
    let mut generator = Generator { graph, options, diagnostics: Vec::new(), scope: None };
    let tokens = generator.module();
    if generator.diagnostics.is_empty() { Ok(tokens) } else { Err(generator.diagnostics) }
}

struct Generator<'g> {
    graph: &'g Graph,
    options: &'g CodegenOptions<'g>,
    diagnostics: Vec<Diagnostic>,
    /// While generating one function of a distributed graph: its nodes and entries.
    scope: Option<FunctionScope>,
}

/// One function of a distributed graph: the nodes it runs, where events enter it, and the
/// stream it reads (none for the root function).
#[derive(Clone)]
struct FunctionScope {
    name: String,
    nodes: BTreeSet<NodeId>,
    entries: Vec<NodeId>,
    reads: Option<NodeId>,
}

/// Nodes between boxed futures in a long async chain.
const BOX_EVERY: usize = 8;

fn node_ident(id: NodeId) -> Ident {
    format_ident!("node_{}", id.0)
}

impl Generator<'_> {
    fn module(&mut self) -> TokenStream {
        let rt = rt();
        let name = format_ident!("{}", self.graph.name);
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
        let functions = self.functions();
        let tests = self.tests();
        let engine = match self.graph.engine {
            Engine::Sync => quote!(sync),
            Engine::Async => quote!(async),
        };
        let engine = Literal::string(&engine.to_string());
        quote! {
            #[allow(unused, clippy::all, missing_docs, non_snake_case, non_camel_case_types)]
            pub mod #name {
                /// The graph's name.
                pub const NAME: &str = #graph_name;
                /// The graph's engine: `sync` or `async`.
                pub const ENGINE: &str = #engine;

                #records

                /// The context: the graph's parameters, with the options' values over the defaults.
                pub fn context(options: &#rt::Options) -> #rt::Context {
                    let build = || -> ::core::result::Result<::std::vec::Vec<(&'static str, #rt::Value)>, #rt::StepError> {
                        let context = #rt::Context::new(#graph_name);
                        ::core::result::Result::Ok(::std::vec![#(#params),*])
                    };
                    #rt::context(#graph_name, build().unwrap_or_default(), options)#error_stream
                }

                #pipeline

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
            let name = format_ident!("{}", record.name);
            let fields = record.fields.iter().map(|(field, ty)| {
                let field = format_ident!("{}", field);
                let ty = rust_type(self.graph, ty);
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

    /// The order to bind nodes in: every node after its children and its error handler.
    fn binding_order(&mut self) -> Vec<NodeId> {
        let mut order = Vec::new();
        let mut state = vec![0u8; self.graph.nodes.len()];
        for id in self.graph.node_ids() {
            self.visit(id, &mut state, &mut order);
        }
        if let Some(scope) = &self.scope {
            order.retain(|id| scope.nodes.contains(id));
        }
        order
    }

    fn visit(&mut self, id: NodeId, state: &mut [u8], order: &mut Vec<NodeId>) {
        match state.get(id.index()) {
            Some(2) => return,
            Some(1) => {
                let node = self.graph.node(id);
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::Unsupported,
                        format!("error handlers of `{}` lead back to it", node.name),
                        node.span,
                        "in a loop of error handlers",
                    )
                    .with_help("an error handler cannot, through its own handlers, catch itself"),
                );
                return;
            }
            _ => {}
        }
        if let Some(slot) = state.get_mut(id.index()) {
            *slot = 1;
        }
        let node = self.graph.node(id);
        let mut deps: Vec<NodeId> = node.children.clone();
        deps.extend(self.catcher_of(id));
        for dep in deps {
            self.visit(dep, state, order);
        }
        if let Some(slot) = state.get_mut(id.index()) {
            *slot = 2;
        }
        order.push(id);
    }

    /// Nodes that run after an error handler: the graph-level handler does not catch them, so
    /// that a failing handler is an unhandled failure rather than a loop.
    fn error_path(&self) -> BTreeSet<NodeId> {
        let mut seen = BTreeSet::new();
        let mut work: Vec<NodeId> = self.graph.catchers().into_iter().collect();
        while let Some(id) = work.pop() {
            if seen.insert(id) {
                work.extend(self.graph.node(id).children.iter().copied());
            }
        }
        seen
    }

    fn catcher_of(&self, id: NodeId) -> Option<NodeId> {
        let node = self.graph.node(id);
        node.on_error
            .or_else(|| self.graph.on_error.filter(|&handler| handler != id && !self.error_path().contains(&id)))
    }

    fn pipeline(&mut self) -> TokenStream {
        let rt = rt();
        let (bindings, root) = self.bindings_and_root();
        let responds = self.graph.topology == Topology::Router || self.graph.nodes.iter().any(|n| n.respond);
        // As in a distributed run: with no responder, a graph that writes an output stream
        // answers 202 once the record is there.
        let writes_output = self
            .graph
            .nodes
            .iter()
            .any(|node| matches!(node.kind, NodeKind::Queue(Queue::Stream { .. })) && node.children.is_empty());
        let pipeline = match self.graph.engine {
            Engine::Sync => quote!(#rt::SyncPipeline::new(#root, context)),
            Engine::Async if writes_output && !responds => quote!(#rt::AsyncPipeline::answered_at_end(#root, context)),
            Engine::Async => quote!(#rt::AsyncPipeline::new(#root, context, #responds)),
        };
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

    /// The node bindings, in order, and the root node that enters them.
    fn bindings_and_root(&mut self) -> (Vec<TokenStream>, TokenStream) {
        let rt = rt();
        let order = self.binding_order();
        let catchers = self.graph.catchers();
        let mut bindings = Vec::new();
        // How many nested nodes each node's type holds: every `BOX_EVERY` levels the future is
        // boxed, which keeps long chains within rustc's type nesting limits.
        let mut depth = vec![0usize; self.graph.nodes.len()];
        for &id in &order {
            let below =
                self.graph.node(id).children.iter().filter_map(|c| depth.get(c.index())).max().copied().unwrap_or(0);
            let mut node = self.build_node(id);
            let here = if below + 1 >= BOX_EVERY {
                node = match self.graph.engine {
                    Engine::Async => quote!(#rt::Boxed::new(#node)),
                    Engine::Sync => quote!(#rt::BoxedSync::new(#node)),
                };
                0
            } else {
                below + 1
            };
            if let Some(slot) = depth.get_mut(id.index()) {
                *slot = here;
            }
            let ident = node_ident(id);
            let shared = catchers.contains(&id) || self.graph.node(id).parents.len() > 1;
            bindings.push(if shared {
                quote!(let #ident = #rt::Arc::new(#node);)
            } else {
                quote!(let #ident = #node;)
            });
        }
        let starts = match &self.scope {
            Some(scope) => scope.entries.clone(),
            None => self.graph.entry_nodes(),
        };
        let root = self.fan_out(&starts, false);
        (bindings, root)
    }

    /// The functions of a distributed graph: the root, then each child function.
    fn scopes(&self) -> Vec<FunctionScope> {
        let mut scopes = vec![self.scope_from(self.graph.name.clone(), self.graph.entry_nodes(), None)];
        for function in &self.graph.functions {
            let queue = self.graph.node_ids().find(|&id| {
                matches!(self.graph.node(id).kind, NodeKind::Queue(Queue::Stream { .. }))
                    && self
                        .graph
                        .node(id)
                        .children
                        .iter()
                        .any(|&child| self.graph.node(child).placement == Placement::Child(function.clone()))
            });
            // A function no stream feeds runs nothing (the checker warns); it gets no builder.
            if let Some(queue) = queue {
                let entries = self.graph.node(queue).children.clone();
                scopes.push(self.scope_from(function.clone(), entries, Some(queue)));
            }
        }
        scopes
    }

    /// Everything reachable from `entries` without crossing a stream queue, with the error
    /// handlers of what is reached (a handler runs where the failure happened).
    fn scope_from(&self, name: String, entries: Vec<NodeId>, reads: Option<NodeId>) -> FunctionScope {
        let mut nodes = BTreeSet::new();
        let mut work = entries.clone();
        while let Some(id) = work.pop() {
            if !nodes.insert(id) {
                continue;
            }
            if !matches!(self.graph.node(id).kind, NodeKind::Queue(Queue::Stream { .. })) {
                work.extend(self.graph.node(id).children.iter().copied());
            }
            work.extend(self.catcher_of(id));
        }
        FunctionScope { name, nodes, entries, reads }
    }

    /// `FUNCTIONS`, one builder per function of a distributed graph, and `run`, which starts
    /// one function: the root serves HTTP, a child function consumes its stream.
    fn functions(&mut self) -> TokenStream {
        let rt = rt();
        let graph_name = Literal::string(&self.graph.name);
        let distributed = !self.graph.functions.is_empty();
        // The checker reports child functions under the sync engine; such a graph has only
        // its root here.
        let distributed = distributed && self.graph.engine == Engine::Async;
        if !distributed {
            return quote! {
                /// The graph's functions: the root, which serves HTTP.
                pub const FUNCTIONS: &[&str] = &[#graph_name];

                /// Runs one function of the graph (here only the root, which serves HTTP).
                pub fn run(function: &str, options: &#rt::Options, launch: #rt::Launch) -> #rt::Launched {
                    match function {
                        #graph_name => match pipeline(options) {
                            ::core::result::Result::Ok(handler) => launch.serve(handler),
                            ::core::result::Result::Err(error) => launch.failed(error),
                        },
                        other => launch.unknown(other, FUNCTIONS),
                    }
                }
            };
        }
        let scopes = self.scopes();
        let names: Vec<Literal> = scopes.iter().map(|scope| Literal::string(&scope.name)).collect();
        let mut builders = Vec::new();
        let mut arms = Vec::new();
        for scope in scopes {
            let builder = format_ident!("function_{}", scope.name);
            let name = Literal::string(&scope.name);
            let reads = scope.reads;
            let writes =
                scope.nodes.iter().any(|&id| matches!(self.graph.node(id).kind, NodeKind::Queue(Queue::Stream { .. })));
            let responds = scope.nodes.iter().any(|&id| self.graph.node(id).respond);
            self.scope = Some(scope);
            let (bindings, root) = self.bindings_and_root();
            self.scope = None;
            let pipeline = if reads.is_some() || (writes && !responds) {
                quote!(#rt::AsyncPipeline::answered_at_end(#root, context))
            } else {
                quote!(#rt::AsyncPipeline::new(#root, context, #responds))
            };
            let doc = match reads {
                None => format!(" Builds the root function `{}`: it takes HTTP requests.", self.graph.name),
                Some(_) => format!(
                    " Builds the child function `{}`: it consumes its stream.",
                    name.to_string().trim_matches('"')
                ),
            };
            builders.push(quote! {
                #[doc = #doc]
                pub fn #builder(options: &#rt::Options) -> ::core::result::Result<impl #rt::Handler + use<>, #rt::StartError> {
                    let context = context(options).with_function(#name);
                    #(#bindings)*
                    ::core::result::Result::Ok(#pipeline)
                }
            });
            let start = match reads.map(|queue| self.graph.node(queue)) {
                Some(ir::Node {
                    name: queue,
                    kind: NodeKind::Queue(Queue::Stream { url, stream, shards, .. }),
                    ..
                }) => {
                    let queue = Literal::string(queue);
                    let (url, stream, shards) = (Literal::string(url), Literal::string(stream), *shards);
                    quote!(launch.consume(handler, #rt::stream_source(options, #name, #queue, #url, #stream, #shards)))
                }
                _ => quote!(launch.serve(handler)),
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
            pub const FUNCTIONS: &[&str] = &[#(#names),*];

            #(#builders)*

            /// Runs one function of the graph: the root serves HTTP; a child function consumes
            /// its stream.
            pub fn run(function: &str, options: &#rt::Options, launch: #rt::Launch) -> #rt::Launched {
                match function {
                    #(#arms)*
                    other => launch.unknown(other, FUNCTIONS),
                }
            }
        }
    }

    /// A reference to a bound node, from one of its parents (or from the root).
    fn use_node(&self, id: NodeId) -> TokenStream {
        let rt = rt();
        let ident = node_ident(id);
        if self.graph.catchers().contains(&id) || self.graph.node(id).parents.len() > 1 {
            quote!(#rt::Shared(#ident.clone()))
        } else {
            quote!(#ident)
        }
    }

    /// What follows a node: `End`, one node, every child (`Fork`), or a choice's outlets.
    fn fan_out(&self, children: &[NodeId], outlets: bool) -> TokenStream {
        let rt = rt();
        match children {
            [] => quote!(#rt::End),
            [only] => self.use_node(*only),
            [first, rest @ ..] => {
                let first = self.use_node(*first);
                let rest = self.fan_out(rest, outlets);
                if outlets || self.graph.engine == Engine::Sync {
                    quote!(#rt::Outlets(#first, #rest))
                } else {
                    quote!(#rt::Fork(#first, #rest))
                }
            }
        }
    }

    /// A queue: written to Redis where it leaves a function, and always when nothing in the graph
    /// reads it (an output stream); otherwise, in one process, a memory queue; under the sync
    /// engine, nothing (events pass straight on, on the caller's thread).
    fn queue(&self, node: &ir::Node, queue: &Queue, next: TokenStream) -> TokenStream {
        let rt = rt();
        match (self.graph.engine, queue) {
            (Engine::Sync, _) => next,
            (Engine::Async, Queue::Stream { url, stream, shards, .. })
                if self.scope.is_some() || node.children.is_empty() =>
            {
                let (name, url, stream, shards) =
                    (Literal::string(&node.name), Literal::string(url), Literal::string(stream), *shards);
                quote!(#rt::stream_writer(options, #name, #url, #stream, #shards))
            }
            (Engine::Async, Queue::Memory { capacity }) => {
                let capacity = *capacity as usize;
                quote!(#rt::MemoryQueue::new(#capacity, #next))
            }
            (Engine::Async, Queue::Stream { .. }) => quote!(#rt::MemoryQueue::new(1024usize, #next)),
        }
    }

    fn build_node(&mut self, id: NodeId) -> TokenStream {
        let rt = rt();
        let node = self.graph.node(id);
        let is_choice = matches!(node.kind, NodeKind::Choice(_));
        let children: Vec<NodeId> = match &node.kind {
            // A choice's outlets are in arm order, whatever order the edges were written in.
            NodeKind::Choice(arms) => arms.iter().map(|(_, outlet)| *outlet).collect(),
            _ => node.children.clone(),
        };
        let next = self.fan_out(&children, is_choice);
        if let NodeKind::Queue(queue) = &node.kind {
            let inner = self.queue(node, queue, next);
            return match queue {
                // The key is computed as the event enters the queue, in one process or many.
                Queue::Stream { key: Some(key), .. } => {
                    let name = Literal::string(&node.name);
                    let key = expr::value(key, Scope::Step);
                    quote!(#rt::SetKey::new(#name, move |event: &#rt::Event, context: &#rt::Context| {
                        ::core::result::Result::Ok(#key)
                    }, #inner))
                }
                _ => inner,
            };
        }
        let name = Literal::string(&node.name);
        if let NodeKind::Remote(remote) = &node.kind {
            return self.remote_node(id, remote, next);
        }
        let step = self.step(id);
        let step = if node.input_path.is_some() || node.result_path.is_some() {
            let input = optional_str(node.input_path.as_deref());
            let result = optional_str(node.result_path.as_deref());
            quote!(#rt::WithPaths::new(#name, #step, #input, #result))
        } else {
            step
        };
        // In the router topology the router is the graph, and it answers.
        let respond = node.respond || self.graph.topology == Topology::Router;
        let catcher = match self.catcher_of(id) {
            Some(handler) => {
                let handler = node_ident(handler);
                quote!(#rt::CatchWith(#handler.clone()))
            }
            None => quote!(#rt::NoCatcher),
        };
        quote!(#rt::StepNode::with(#name, #step, #next, #respond, #catcher))
    }

    /// The step of a node: a user handler, a built-in, or a router.
    fn step(&mut self, id: NodeId) -> TokenStream {
        let rt = rt();
        let node = self.graph.node(id);
        let span = self.user_span(node.impl_span);
        match &node.kind {
            NodeKind::Function(path) => {
                let path = self.user_path(path, span);
                if node.full_event {
                    quote_spanned!(span => #rt::full_event_step(#path))
                } else if node.input != Type::Json || node.output != Type::Json {
                    let (input, output) = (rust_type(self.graph, &node.input), rust_type(self.graph, &node.output));
                    quote_spanned!(span => #rt::Typed::<_, #input, #output>::new(|input: #input, _context: &#rt::Context| #path(input)))
                } else {
                    quote_spanned!(span => #rt::body_step(#path))
                }
            }
            NodeKind::Construct(path, args) => {
                let path = self.user_path(path, span);
                let name = Literal::string(&node.name);
                let args = object(args, Scope::Build);
                quote_spanned!(span => #rt::construct::<#path>(#name, #args)?)
            }
            NodeKind::Remote(_) => self.unsupported(id, "`$remote` steps"),
            NodeKind::Extend(e) => closure(quote!(#rt::Extend), expr::value(e, Scope::Step)),
            NodeKind::Map(e) => closure(quote!(#rt::MapStep), expr::value(e, Scope::Step)),
            NodeKind::FlatMap(e) => closure(quote!(#rt::FlatMap), expr::value(e, Scope::Step)),
            NodeKind::Filter(e) => closure(quote!(#rt::Filter), expr::condition(e, Scope::Step)),
            NodeKind::Choice(arms) => {
                let mut chain = quote!(::core::option::Option::None);
                for (index, (condition, _)) in arms.iter().enumerate().rev() {
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

    /// A `$remote` step: a node of its own, since its call is awaited.
    fn remote_node(&mut self, id: NodeId, remote: &ir::Remote, next: TokenStream) -> TokenStream {
        let rt = rt();
        if self.graph.engine == Engine::Sync {
            return self.unsupported(id, "`$remote` steps under `engine = sync` (use `engine = async`)");
        }
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
        let respond = node.respond;
        let catcher = match self.catcher_of(id) {
            Some(handler) => {
                let handler = node_ident(handler);
                quote!(#rt::CatchWith(#handler.clone()))
            }
            None => quote!(#rt::NoCatcher),
        };
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
        let mut routes = Vec::new();
        for route in &router.routes {
            let route_name = Literal::string(&route.name);
            let built = match &route.kind {
                RouteKind::Model(model) => {
                    let path = Literal::string(&model.model_path);
                    let kind = format_ident!("{}", model_kind_variant(model.kind));
                    quote!(#rt::Route::Model(#rt::Arc::new(#rt::load_model(options, #route_name, #path, #rt::ModelKind::#kind)?)))
                }
                RouteKind::Step(kind) => {
                    let step = match kind.as_ref() {
                        NodeKind::Function(path) => {
                            let path = self.user_path(path, proc_macro2::Span::call_site());
                            quote!(#rt::Body(#path))
                        }
                        NodeKind::Construct(path, args) => {
                            let path = self.user_path(path, proc_macro2::Span::call_site());
                            let args = object(args, Scope::Build);
                            quote!(#rt::construct::<#path>(#route_name, #args)?)
                        }
                        _ => self.unsupported(id, "routes other than models, `fn` and `new` steps"),
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
                let path = self.user_path(path, proc_macro2::Span::call_site());
                quote!(#rt::Mode::Custom(#rt::Arc::new(<#path as ::core::default::Default>::default())))
            }
        };
        quote!(#rt::Router::new(#name, #prefix, ::std::vec![#(#routes),*], #mode))
    }

    fn unsupported(&mut self, id: NodeId, what: &str) -> TokenStream {
        let node = self.graph.node(id);
        self.diagnostics.push(
            Diagnostic::error(
                Code::Unsupported,
                format!("{what} cannot be generated yet"),
                node.impl_span,
                "not supported by code generation",
            )
            .with_help("`graphc check` accepts this graph; serving it needs a later graphc"),
        );
        quote!(::core::unimplemented!())
    }

    fn user_span(&self, span: Span) -> proc_macro2::Span {
        self.options.span_of.map_or_else(proc_macro2::Span::call_site, |span_of| span_of(span))
    }

    /// A user's path, resolved from where the generated module is placed.
    fn user_path(&self, path: &str, span: proc_macro2::Span) -> TokenStream {
        let segments: Vec<&str> = path.split("::").collect();
        let anchored = matches!(segments.first(), Some(&"" | &"crate" | &"self" | &"super"));
        let idents = segments.iter().filter(|s| !s.is_empty()).map(|s| Ident::new(s, span));
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
        Type::Json | Type::Object | Type::Null => quote!(#rt::Value),
        Type::Bool => quote!(bool),
        Type::Int => quote!(i64),
        Type::Float => quote!(f64),
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
            let name =
                graph.records.get(id.index()).map_or_else(|| format_ident!("Record"), |r| format_ident!("{}", r.name));
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
        E::EventField(f) => format!("event.{f}"),
        E::Field(base, f) => format!("{}.{f}", describe(base)),
        E::Index(base, i) => format!("{}[{}]", describe(base), describe(i)),
        E::Unary(crate::syntax::ast::UnaryOp::Not, e) => format!("!{}", describe(e)),
        E::Unary(crate::syntax::ast::UnaryOp::Neg, e) => format!("-{}", describe(e)),
        E::Binary(op, a, b) => format!("{} {} {}", describe(a), op.symbol(), describe(b)),
        E::Object(entries) => format!(
            "{{{}}}",
            entries.iter().map(|(k, v)| format!("{k}: {}", describe(v))).collect::<Vec<_>>().join(", ")
        ),
        E::Array(items) => format!("[{}]", items.iter().map(describe).collect::<Vec<_>>().join(", ")),
        E::Len(e) => format!("len({})", describe(e)),
    }
}

/// Placement is not used yet: one process runs every function's steps.
#[allow(dead_code)]
fn placement(_: &Placement) {}
