//! graphc: parse, check and compile serving and event-processing graphs.
//!
//! The pipeline, in order: [`syntax::parse`] (text to spanned AST), [`check::check`] (names,
//! wiring, placement and types, to the checked [`ir::Graph`], with every decision the back ends
//! need), then the back ends that only print the IR ([`codegen`], [`render`] for diagrams).
//! [`compile`] runs it all; the CLI, build.rs and the `graph!` macro all go through it. The core
//! (everything but [`builder`], the build.rs door, [`surroundings`], what a graph names on disk,
//! and the binary) does no IO and never panics on user input.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![warn(missing_docs)]

pub mod builder;
pub mod check;
pub mod codegen;
pub mod diagnostic;
pub mod format;
pub mod ide;
pub mod ir;
pub mod onnx;
pub mod render;
pub mod report;
pub mod rust_names;
pub mod source;
pub mod surroundings;
pub mod syntax;
pub mod tokens;

pub use builder::Builder;
pub use check::Checked;
pub use diagnostic::{Code, Diagnostic, Level};

/// A compiled graph: what every front door gets from [`compile`].
#[derive(Debug)]
pub struct Compiled {
    /// The checked graph, which the module prints.
    pub graph: ir::Graph,
    /// The generated module, `pub mod <graph name> { ... }`.
    pub module: proc_macro2::TokenStream,
    /// Problems that do not stop compilation.
    pub warnings: Vec<Diagnostic>,
}

impl Compiled {
    /// The graph's name: its module's, and its root function's.
    pub fn name(&self) -> &str {
        &self.graph.name
    }

    /// The module as a formatted Rust file (`source` names the graph file in its header), with
    /// the map from its lines back to the graph's source.
    pub fn to_file(&self, source: &str) -> Result<codegen::GeneratedFile, Diagnostic> {
        codegen::GeneratedFile::new(&self.graph, self.module.clone(), source)
    }
}

/// Parses, checks and generates the Rust module of one graph: the function every front door
/// calls. `Err` carries every error and warning found, sorted by position.
pub fn compile(text: &str, options: &codegen::CodegenOptions<'_>) -> Result<Compiled, Vec<Diagnostic>> {
    let checked = check_source(text)?;
    let module = codegen::generate(&checked.graph, options)?;
    Ok(Compiled { graph: checked.graph, module, warnings: checked.warnings })
}

/// Parses and checks one graph. `Ok` carries the IR and any warnings; `Err` carries every error
/// and warning found, sorted by position.
pub fn check_source(text: &str) -> Result<Checked, Vec<Diagnostic>> {
    let graph = syntax::parse(text)?;
    check::check(&graph)
}
