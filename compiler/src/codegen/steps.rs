//! The code of each node's step: built-ins as closures over the event, Rust handlers through the
//! paths the graph gives them (spanned at the user's tokens), `$remote` steps, routers and their
//! routes.

use super::expr::{self, Scope};
use super::{Generator, choice_outlets, ident, rt, rt_at};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{self, Graph, NodeId, NodeKind, RouteKind, RouterKind, Type};
use crate::source::Span;
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};

impl Generator<'_> {
    /// The step of a node: a user handler, a built-in, or a router.
    pub(super) fn step(&mut self, id: NodeId) -> TokenStream {
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
            NodeKind::Collect => quote!(#rt::Collect),
            NodeKind::Queue(_) => quote!(#rt::End),
        }
    }

    /// A user function as a step: the whole call carries the handler path's span (`rt_at`), so
    /// that rustc reports a handler of the wrong type at the path, and the adapter's bounds are
    /// checked at the call, once.
    pub(super) fn function_step(&self, node: &ir::Node, path: &str, span: proc_macro2::Span) -> TokenStream {
        let rt = rt_at(span);
        let path = self.user_path(path, span);
        // A streaming function's adapters take an iterator of chunks; the checker gives
        // streaming to functions of the body alone.
        let (typed, untyped) = if node.streaming {
            (quote_spanned!(span => typed_chunks), quote_spanned!(span => body_chunks))
        } else {
            (quote_spanned!(span => typed_step), quote_spanned!(span => body_step))
        };
        if node.full_event {
            quote_spanned!(span => #rt::full_event_step(#path))
        } else if node.input != Type::Json || node.output != Type::Json {
            let (input, output) = (rust_type(self.graph, &node.input), rust_type(self.graph, &node.output));
            quote_spanned!(span => #rt::#typed::<#input, #output, _, _>(#path))
        } else {
            quote_spanned!(span => #rt::#untyped(#path))
        }
    }

    /// A user type built once with its arguments.
    pub(super) fn construct_step(
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
    pub(super) fn remote_node(
        &mut self,
        id: NodeId,
        remote: &ir::Remote,
        next: TokenStream,
        catcher: TokenStream,
    ) -> TokenStream {
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
        let forwarded = remote.forwarded.iter().map(|name| {
            let name = Literal::string(name);
            quote!(.forward(#name))
        });
        let (timeout, retries, backoff) = (remote.timeout_ms, remote.retries, remote.backoff_ms);
        let input = optional_str(node.input_path.as_deref());
        let result = optional_str(node.result_path.as_deref());
        let respond = node.answers;
        quote!(#rt::RemoteNode {
            name: #name,
            remote: #rt::Remote::new(#target, #method)
                #(#headers)*
                #(#forwarded)*
                .timeout(::std::time::Duration::from_millis(#timeout))
                .retries(#retries, ::std::time::Duration::from_millis(#backoff)),
            input_path: #input,
            result_path: #result,
            next: #next,
            respond: #respond,
            catcher: #catcher,
        })
    }

    /// A model route's loading and scheduling, under the route's (or the shared model's) name.
    pub(super) fn model_route(&self, name: &str, model: &ir::Model, impl_span: crate::source::Span) -> TokenStream {
        let rt = rt();
        let route_name = Literal::string(name);
        let model_path = match &model.model_path {
            Some(path) => {
                let path = Literal::string(&path.path);
                quote!(::std::option::Option::Some(#path))
            }
            None => quote!(::std::option::Option::None),
        };
        // Both kinds load through `LoadModel`: smartcore's takes its estimator as its one
        // argument; a user's type is named at the user's path, so that a type that is not a
        // model is rustc's error there.
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
            ir::ModelSource::Onnx => quote!(#rt::model_route::<#rt::OnnxModel>(
                options, #route_name, #model_path, ::std::default::Default::default()
            )?),
            ir::ModelSource::User { path, args } => {
                let span = self.user_span(impl_span);
                let (rt, path) = (rt_at(span), self.user_path(path, span));
                let args = object(args, Scope::Build);
                quote_spanned!(span => #rt::model_route::<#path>(options, #route_name, #model_path, #args)?)
            }
        };
        quote!(#route #batched)
    }

    pub(super) fn router(&mut self, id: NodeId, router: &ir::Router) -> TokenStream {
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
        match &router.select {
            Some(ir::Selector::Expr(select)) => {
                let select = expr::value(select, Scope::Step);
                settings.extend(quote!(.with_selector(move |event: &#rt::Event, context: &#rt::Context| {
                    ::core::result::Result::Ok(#select)
                })));
            }
            Some(ir::Selector::Function { path, span }) => {
                // The call carries the path's span: a function of the wrong type is reported there.
                let span = self.user_span(*span);
                let rt_at = rt_at(span);
                let path = self.user_path(path, span);
                settings.extend(quote_spanned!(span => .with_selector(#rt_at::selector(#path))));
            }
            None => {}
        }
        let mut routes = Vec::new();
        for route in &router.routes {
            let route_name = Literal::string(&route.key());
            let built = match &route.kind {
                RouteKind::Model(model) => match &model.shared {
                    Some(shared) => {
                        let binding = shared_model_ident(self.graph, shared);
                        quote!(#binding.clone())
                    }
                    None => self.model_route(&route.key(), model, route.impl_span),
                },
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
            RouterKind::Ensemble { vote, weights, given_weights } => {
                let regression = *vote == ir::Vote::Regression;
                let weights = weights.iter().map(|w| Literal::f64_suffixed(*w));
                if let Some(given) = given_weights {
                    let given = given.iter().map(|ir::RouteWeight { route, weight }| {
                        let (route, weight) = (Literal::string(route), Literal::f64_suffixed(*weight));
                        quote!((#route, #weight))
                    });
                    settings.extend(quote!(.with_given_weights(&[#(#given),*])));
                }
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
    pub(super) fn internal(&mut self, id: NodeId, what: &str) -> TokenStream {
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

    pub(super) fn user_span(&self, span: Span) -> proc_macro2::Span {
        self.options.span_of.map_or_else(proc_macro2::Span::call_site, |span_of| span_of(span))
    }

    /// A user's path, resolved from where the generated module is placed.
    pub(super) fn user_path(&self, path: &str, span: proc_macro2::Span) -> TokenStream {
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
}

/// A built-in step's closure over the event and the context.
pub(super) fn closure(step: TokenStream, body: TokenStream) -> TokenStream {
    let rt = rt();
    quote!(#step(move |event: &#rt::Event, context: &#rt::Context| { ::core::result::Result::Ok(#body) }))
}

/// A JSON object of named constant arguments, evaluated while the pipeline is built.
pub(super) fn object(args: &[(String, ir::Expr)], scope: Scope) -> TokenStream {
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

pub(super) fn optional_str(path: Option<&[String]>) -> TokenStream {
    match path {
        Some(path) => {
            let path = Literal::string(&path.join("."));
            quote!(::core::option::Option::Some(#path))
        }
        None => quote!(::core::option::Option::None),
    }
}

pub(super) fn rust_type(graph: &Graph, ty: &Type) -> TokenStream {
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

pub(super) fn model_kind_variant(kind: ir::ModelKind) -> &'static str {
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

/// The binding of the shared model `name`, built once before the nodes that use it.
pub(super) fn shared_model_ident(graph: &ir::Graph, name: &str) -> proc_macro2::Ident {
    let index = graph.shared_models.iter().position(|shared| shared.name == name).unwrap_or_default();
    format_ident!("shared_model_{}", index)
}
