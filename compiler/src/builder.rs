//! The build.rs front door, prost-build style: compile `.graph` files into `OUT_DIR`, then
//! `graphc_runtime::include_graph!("name")` where the module should go.
//!
//! ```no_run
//! // in build.rs's main:
//! graphc::Builder::new().compile("pipeline.graph").unwrap();
//! // in the crate: graphc_runtime::include_graph!("pipeline_name");
//! ```

use crate::codegen::{self, CodegenOptions};
use crate::report::{self, Style};
use std::path::{Path, PathBuf};

/// Compiles graphs for a build script.
#[derive(Debug, Default)]
pub struct Builder {
    out_dir: Option<PathBuf>,
}

/// Why a build failed: the rendered diagnostics, or an IO error.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The graph has errors.
    #[error("{rendered}")]
    Diagnostics {
        /// The diagnostics, as the checker made them.
        diagnostics: Vec<crate::Diagnostic>,
        /// The same, rendered against the graph's text, as a terminal shows them.
        rendered: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

impl Builder {
    /// A builder writing into `OUT_DIR`.
    pub fn new() -> Self {
        Builder::default()
    }

    /// Writes into this directory instead of `OUT_DIR`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Compiles one graph file into `<out>/<graph name>.rs`, and tells Cargo to rebuild when it
    /// changes. Returns the written file's path.
    pub fn compile(&self, graph: impl AsRef<Path>) -> Result<PathBuf, BuildError> {
        let graph = graph.as_ref();
        println!("cargo:rerun-if-changed={}", graph.display());
        let text =
            std::fs::read_to_string(graph).map_err(|source| BuildError::Io { path: graph.to_path_buf(), source })?;
        let name = graph.file_name().map_or_else(|| graph.display().to_string(), |n| n.to_string_lossy().into_owned());
        let generated = generate_file(&text, &name)?;
        let dir = graph.parent().map(Path::to_path_buf).unwrap_or_default();
        let missing =
            crate::check::model_files::check_model_files(&generated.graph, &crate::surroundings::GraphFolder(&dir));
        if !missing.is_empty() {
            let rendered = report::render_human(&name, &text, &missing, Style::PLAIN);
            return Err(BuildError::Diagnostics { diagnostics: missing, rendered });
        }
        for warning in &generated.warnings {
            println!("cargo:warning={name}: {}", warning.message);
        }
        let out = self
            .out_dir
            .clone()
            .or_else(|| std::env::var_os("OUT_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("."));
        let path = out.join(format!("{}.rs", generated.graph_name));
        std::fs::write(&path, generated.file.text).map_err(|source| BuildError::Io { path: path.clone(), source })?;
        Ok(path)
    }
}

/// A graph's generated file, as build.rs writes it.
#[derive(Debug)]
pub struct Generated {
    /// The graph's name: the file is `<name>.rs`, the module `<name>`.
    pub graph_name: String,
    /// The checked graph.
    pub graph: crate::ir::Graph,
    /// The formatted module.
    pub file: codegen::GeneratedFile,
    /// Problems that do not stop compilation.
    pub warnings: Vec<crate::Diagnostic>,
}

/// The generated file for a graph's text (`name` is the file's name, for the header and the
/// diagnostics).
pub fn generate_file(text: &str, name: &str) -> Result<Generated, BuildError> {
    let fail = |diagnostics: Vec<crate::Diagnostic>| {
        let rendered = report::render_human(name, text, &diagnostics, Style::PLAIN);
        BuildError::Diagnostics { diagnostics, rendered }
    };
    let compiled = crate::compile(text, &CodegenOptions { span_of: None }).map_err(fail)?;
    let file = compiled.to_file(name).map_err(|d| fail(vec![d]))?;
    Ok(Generated { graph_name: compiled.graph.name.clone(), graph: compiled.graph, file, warnings: compiled.warnings })
}
