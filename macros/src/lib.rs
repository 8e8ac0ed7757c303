//! graphc-macros: the `graph!` macro, a thin shell over the graphc compiler. The DSL arrives as
//! Rust tokens, is rebuilt as text with a map back to each token, and goes through the same
//! `graphc::compile` as files do; diagnostics become `compile_error!` at the user's tokens.

use graphc::codegen::CodegenOptions;
use graphc::source::Span;
use graphc::tokens::TokenSource;
use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Spacing, TokenStream, TokenTree};
use quote::quote;

/// Compiles a graph written inline into a module named after the graph:
///
/// ```
/// graphc_macros::graph! {
///     graph doubler {
///         topology = flow;
///         engine = sync;
///         step double = map(body * 2);
///     }
/// }
///
/// let server = doubler::mock(&graphc_runtime::Options::default()).unwrap();
/// assert_eq!(server.test("/", serde_json::json!(21)).json_body(), serde_json::json!(42));
/// ```
#[proc_macro]
pub fn graph(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    expand(input.into()).into()
}

fn expand(input: TokenStream) -> TokenStream {
    let source = graphc::tokens::from_tokens(input);
    let span_of = |span: Span| source.token_spans(span).map_or_else(proc_macro2::Span::call_site, |(first, _)| first);
    match graphc::compile(&source.text, &CodegenOptions { span_of: Some(&span_of) }) {
        Ok(compiled) => compiled.module,
        Err(diagnostics) => {
            let errors = diagnostics.iter().filter(|d| d.is_error()).map(|d| compile_error(&source, d));
            let placeholder = placeholder(&source.text);
            quote!(#(#errors)* #placeholder)
        }
    }
}

/// `compile_error!` spanning the diagnostic's tokens: the macro path carries the first token's
/// span and the braces the last one's, which is how a range is spanned on stable Rust.
fn compile_error(source: &TokenSource, diagnostic: &graphc::Diagnostic) -> TokenStream {
    let (first, last) = source
        .token_spans(diagnostic.primary_span())
        .unwrap_or((proc_macro2::Span::call_site(), proc_macro2::Span::call_site()));
    let mut message = format!("{}: {}", diagnostic.code.as_str(), diagnostic.message);
    if let Some(label) = diagnostic.labels.first().filter(|l| !l.message.is_empty()) {
        message.push_str(&format!("\n  {}", label.message));
    }
    if let Some(help) = &diagnostic.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    let mut tokens = TokenStream::new();
    let mut colon = Punct::new(':', Spacing::Joint);
    colon.set_span(first);
    let mut colon2 = Punct::new(':', Spacing::Alone);
    colon2.set_span(first);
    tokens.extend([TokenTree::Punct(colon.clone()), TokenTree::Punct(colon2.clone())]);
    tokens.extend([TokenTree::Ident(Ident::new("core", first)), TokenTree::Punct(colon), TokenTree::Punct(colon2)]);
    tokens.extend([TokenTree::Ident(Ident::new("compile_error", first))]);
    let mut bang = Punct::new('!', Spacing::Alone);
    bang.set_span(first);
    tokens.extend([TokenTree::Punct(bang)]);
    let mut group = Group::new(Delimiter::Brace, TokenStream::from(TokenTree::Literal(Literal::string(&message))));
    group.set_span(last);
    tokens.extend([TokenTree::Group(group)]);
    tokens
}

/// After errors, a module with the generated API's names, so that code using the graph gets no
/// follow-on errors.
fn placeholder(text: &str) -> TokenStream {
    let name = text
        .split_whitespace()
        .skip_while(|word| *word != "graph")
        .nth(1)
        .map(|word| word.trim_end_matches('{'))
        .filter(|word| {
            !word.is_empty()
                && word.chars().all(|c| c.is_alphanumeric() || c == '_')
                && !word.starts_with(|c: char| c.is_ascii_digit())
        });
    let Some(name) = name else { return TokenStream::new() };
    let name = Ident::new(name, proc_macro2::Span::call_site());
    let rt = quote!(::graphc_runtime::__private);
    quote! {
        #[allow(unused, missing_docs)]
        pub mod #name {
            pub const NAME: &str = "";
            pub const ENGINE: &str = "";
            pub fn context(_: &#rt::Options) -> #rt::Context { ::core::unreachable!() }
            pub fn pipeline(_: &#rt::Options) -> ::core::result::Result<#rt::SyncPipeline<#rt::End>, #rt::StartError> { ::core::unreachable!() }
            pub fn mock(_: &#rt::Options) -> ::core::result::Result<#rt::MockServer<#rt::SyncPipeline<#rt::End>>, #rt::StartError> { ::core::unreachable!() }
            pub fn tests() -> ::std::vec::Vec<#rt::TestCase> { ::core::unreachable!() }
        }
    }
}
