//! graphc: parse, check and compile serving and event-processing graphs.
//!
//! The pipeline, in order: [`syntax::parse`] (text to spanned AST), [`check::check`] (names,
//! wiring, placement and types, to the checked [`ir::Graph`]), then the back ends that read only
//! the IR ([`render`] for diagrams). [`check_source`] runs the front half; the CLI, build.rs and
//! the `graph!` macro all go through it. The core does no IO and never panics on user input.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![warn(missing_docs)]

pub mod builder;
pub mod check;
pub mod codegen;
pub mod diagnostic;
pub mod ir;
pub mod render;
pub mod report;
pub mod source;
pub mod syntax;
pub mod tokens;

pub use builder::Builder;
pub use check::Checked;
pub use diagnostic::{Code, Diagnostic, Level};

/// Parses, checks and generates the Rust module of one graph: the function every front door
/// calls. `Ok` carries the module's tokens and the warnings.
pub fn compile(
    text: &str,
    options: &codegen::CodegenOptions<'_>,
) -> Result<(proc_macro2::TokenStream, Vec<Diagnostic>), Vec<Diagnostic>> {
    let checked = check_source(text)?;
    let tokens = codegen::generate(&checked.graph, options)?;
    Ok((tokens, checked.warnings))
}

/// Parses and checks one graph. `Ok` carries the IR and any warnings; `Err` carries every error
/// and warning found, sorted by position.
pub fn check_source(text: &str) -> Result<Checked, Vec<Diagnostic>> {
    let graph = syntax::parse(text)?;
    check::check(&graph)
}
