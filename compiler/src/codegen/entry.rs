//! How a generated module is entered: its functions (the root serving HTTP, each child
//! consuming its stream) and how each starts, its triggers, and its test blocks.

use super::expr::{self, Scope};
use super::{Generator, rt};
use crate::ir::{self, NodeKind, Queue};
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

impl Generator<'_> {
    /// `FUNCTIONS`, one builder per function of a distributed graph, and `run`, which starts
    /// one function: the root serves HTTP, a child function consumes its stream.
    pub(super) fn functions(&mut self) -> TokenStream {
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
    pub(super) fn triggers(&self) -> TokenStream {
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

    pub(super) fn tests(&self) -> TokenStream {
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
                    check: |status: &#rt::Value, headers: &#rt::Value, body: &#rt::Value, chunks: &#rt::Value| -> ::core::result::Result<bool, #rt::StepError> {
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
        E::Chunks => "chunks".into(),
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
