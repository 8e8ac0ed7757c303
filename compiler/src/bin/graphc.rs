//! The `graphc` command line: a thin shell of clap and IO around the compiler library.

use clap::{Parser, Subcommand, ValueEnum};
use graphc::report::{self, Style};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "graphc", version, about = "Check and compile serving and event-processing graphs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check graphs and report every problem; exit 1 on any error.
    Check {
        /// The .graph files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `human` for people, `json` for editors and CI.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Draw a graph as Graphviz DOT or Mermaid.
    Graph {
        /// The .graph file.
        file: PathBuf,
        /// The diagram language.
        #[arg(long, value_enum, default_value_t = Diagram::Dot)]
        format: Diagram,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Diagram {
    Dot,
    Mermaid,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { files, format } => check(&files, format),
        Command::Graph { file, format } => graph(&file, format),
    }
}

fn read(path: &PathBuf) -> Result<String, ExitCode> {
    std::fs::read_to_string(path).map_err(|error| {
        eprintln!("error: cannot read {}: {error}", path.display());
        ExitCode::from(2)
    })
}

fn style() -> Style {
    let width = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(100);
    Style { color: std::io::stderr().is_terminal(), width }
}

fn check(files: &[PathBuf], format: Format) -> ExitCode {
    let mut failed = false;
    let mut json = Vec::new();
    for path in files {
        let text = match read(path) {
            Ok(text) => text,
            Err(code) => return code,
        };
        let name = path.display().to_string();
        let diagnostics = match graphc::check_source(&text) {
            Ok(checked) => checked.warnings,
            Err(diagnostics) => {
                failed = true;
                diagnostics
            }
        };
        match format {
            Format::Human => eprint!("{}", report::render_human(&name, &text, &diagnostics, style())),
            Format::Json => {
                json.extend(report::to_json(&name, &text, &diagnostics).as_array().cloned().unwrap_or_default())
            }
        }
    }
    if let Format::Json = format {
        println!("{}", serde_json::Value::Array(json));
    } else {
        let outcome = if failed { "failed" } else { "ok" };
        eprintln!("checked {} file(s): {outcome}", files.len());
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn graph(path: &PathBuf, format: Diagram) -> ExitCode {
    let text = match read(path) {
        Ok(text) => text,
        Err(code) => return code,
    };
    match graphc::check_source(&text) {
        Ok(checked) => {
            let out = match format {
                Diagram::Dot => graphc::render::to_dot(&checked.graph),
                Diagram::Mermaid => graphc::render::to_mermaid(&checked.graph),
            };
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            eprint!("{}", report::render_human(&path.display().to_string(), &text, &diagnostics, style()));
            ExitCode::FAILURE
        }
    }
}
