//! The `graphc` command line: a thin shell of clap and IO around the compiler library.

mod companion;
mod fmt;
mod project;
mod rustc;

/// The generated binary's flags, from the runtime's own table: `serve`'s are checked here,
/// before anything is built.
#[path = "../../../../runtime/src/flags.rs"]
#[allow(dead_code, reason = "graphc reads only `serve`'s flags and the switches")]
mod runtime_flags;

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

/// How diagnostics are printed: a flag of every command that prints them (and of no other, so
/// that `graphc lsp --help` offers nothing it would ignore).
#[derive(clap::Args, Clone, Copy)]
struct Output {
    /// Colour in diagnostics: `auto` colours a terminal unless NO_COLOR is set.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

/// Whether diagnostics are coloured, decided once from `--color` and the environment.
static COLOR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

#[derive(Subcommand)]
enum Command {
    /// Check graphs and report every problem; exit 1 on any error.
    Check {
        /// The .graph files, or folders of them.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `human` for people; `json` for editors and CI: JSON Lines, one object per diagnostic on
        /// standard output.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// A crate (its directory) holding the Rust handlers the graphs name: their paths are
        /// checked against its source, as `graphc build` would build them.
        #[arg(long)]
        handlers: Option<PathBuf>,
        #[command(flatten)]
        output: Output,
    },
    /// Generate a graph's Rust module and build a binary for it under target/graphc/<name>/.
    Build {
        /// The .graph file.
        file: PathBuf,
        /// `rust`: print the generated module instead of building.
        #[arg(long, value_enum)]
        emit: Option<Emit>,
        /// Write the generated module to this file (with `--emit rust`).
        #[arg(long, requires = "emit")]
        out: Option<PathBuf>,
        /// Fail if the file given with `--out` is not what graphc generates now.
        #[arg(long, requires = "out")]
        check: bool,
        /// A crate (its directory) holding the Rust handlers the graph names.
        #[arg(long)]
        handlers: Option<PathBuf>,
        /// Build with optimisations.
        #[arg(long)]
        release: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Run a graph's test blocks against its generated pipeline's mock server.
    Test {
        /// The .graph file.
        file: PathBuf,
        /// Also write a JUnit XML report here.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// A crate (its directory) holding the Rust handlers the graph names.
        #[arg(long)]
        handlers: Option<PathBuf>,
        #[command(flatten)]
        output: Output,
    },
    /// Build a graph (reusing earlier builds) and serve it over HTTP, or run one of its functions.
    Serve(ServeArgs),
    /// Build a graph and run it over a file of events (JSON Lines), as a batch job: answers in
    /// input order, failures to --errors, a summary, exit 1 if any event failed.
    Run(RunArgs),
    /// Rewrite graphs in the canonical layout (comments kept); `-` or no file: standard input
    /// to standard output. Folders are searched for `.graph` files.
    Fmt {
        /// The .graph files or folders.
        files: Vec<PathBuf>,
        /// Change nothing: print a diff of each file that is not formatted and exit 1.
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        output: Output,
    },
    /// The language server, over standard input and output, for editors (diagnostics, go to
    /// definition, references, rename, hover, completion, outline, formatting): runs
    /// `graphc-lsp`, from beside graphc, else from PATH (`GRAPHC_LSP` names another).
    Lsp,
    /// Write what runs the graph on Kubernetes: per function a Deployment and a
    /// PodDisruptionBudget, the root's Service, a KEDA ScaledObject per stream consumer, a
    /// kustomization and a Dockerfile (`graphc deploy FILE --out DIR [--image NAME] [--namespace
    /// NS] ...`; `graphc deploy --help` lists the flags): runs `graphc-deploy`, from beside graphc,
    /// else from PATH (`GRAPHC_DEPLOY` names another).
    #[command(disable_help_flag = true)]
    Deploy {
        /// The graph file and graphc-deploy's flags.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Print the completion script for a shell: `graphc completions bash > /etc/bash_completion.d/graphc`,
    /// `graphc completions zsh > ~/.zfunc/_graphc`, `graphc completions fish > ~/.config/fish/completions/graphc.fish`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Draw a graph as Graphviz DOT or Mermaid.
    Graph {
        /// The .graph file.
        file: PathBuf,
        /// The diagram language.
        #[arg(long, value_enum, default_value_t = Diagram::Dot)]
        format: Diagram,
        #[command(flatten)]
        output: Output,
    },
}

/// `graphc serve`'s own flags; every other flag is the server's, passed to the built binary as
/// written, so that `graphc serve` and the binary take one flag set (the binary's: run
/// README's Operations section).
#[derive(clap::Args)]
struct ServeArgs {
    /// The .graph file.
    file: PathBuf,
    #[command(flatten)]
    output: Output,
    /// A crate (its directory) holding the Rust handlers the graph names.
    #[arg(long)]
    handlers: Option<PathBuf>,
    /// Build without optimisations (faster to build, slower to serve).
    #[arg(long)]
    debug: bool,
    /// The server's flags: --host, --port, --param NAME=JSON, --secrets-file, --body-limit,
    /// --deadline-ms, --concurrency, --header-timeout-ms, --max-connections, --max-headers,
    /// --max-header-bytes, --shutdown-timeout-ms, --blocking-threads, --blocking-inline-us, --expose-errors,
    /// --log-level, --log-format,
    /// --access-log, --function, --redis, --consumer, --batch, --claim-idle-ms, --metrics-port,
    /// --grpc-port (the Open Inference Protocol over gRPC, built in when given), --tls-cert,
    /// --tls-key, --tls-client-ca (TLS on every port, built in when given), --auth-tokens-file,
    /// --auth-header (access tokens).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "SERVER FLAGS")]
    server: Vec<String>,
}

/// `graphc run`'s flags.
#[derive(clap::Args)]
struct RunArgs {
    /// The .graph file.
    file: PathBuf,
    #[command(flatten)]
    diagnostics: Output,
    /// The events, one JSON body or event (`{"body", "id", "key", "path", "method", "headers"}`)
    /// per line; `-` for standard input.
    #[arg(long, default_value = "-")]
    input: String,
    /// Where the answers go, one per line in input order; `-` for standard output.
    #[arg(long, default_value = "-")]
    output: String,
    /// Where failures go, one per line with the input line's number.
    #[arg(long)]
    errors: Option<PathBuf>,
    /// Events processed at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    concurrency: u64,
    /// Threads that run the graph's handlers, `new` steps and models (the blocking pool).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    blocking_threads: u64,
    /// Work whose recent calls each took under this many microseconds runs in place, not on the
    /// blocking pool (a hand-over would cost more); 0 sends every call to the pool.
    #[arg(long, default_value_t = 50)]
    blocking_inline_us: u64,
    /// A parameter's value, NAME=JSON (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A crate (its directory) holding the Rust handlers the graph names.
    #[arg(long)]
    handlers: Option<PathBuf>,
    /// Build without optimisations.
    #[arg(long)]
    debug: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Emit {
    Rust,
}

impl Command {
    /// The `--color` given to a command that prints diagnostics; `auto` for the others.
    fn color(&self) -> Color {
        match self {
            Command::Check { output, .. }
            | Command::Build { output, .. }
            | Command::Test { output, .. }
            | Command::Fmt { output, .. }
            | Command::Graph { output, .. }
            | Command::Serve(ServeArgs { output, .. })
            | Command::Run(RunArgs { diagnostics: output, .. }) => output.color,
            Command::Lsp | Command::Deploy { .. } | Command::Completions { .. } => Color::Auto,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Diagram {
    Dot,
    Mermaid,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // NO_COLOR (no-color.org) and CLICOLOR=0 turn colour off; CLICOLOR_FORCE turns it on
    // even when standard error is not a terminal, as cargo and ripgrep read them.
    let set = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let no_color = set("NO_COLOR").is_some() || set("CLICOLOR").is_some_and(|value| value == "0");
    let forced = set("CLICOLOR_FORCE").is_some_and(|value| value != "0");
    let color = match cli.command.color() {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => forced || (std::io::stderr().is_terminal() && !no_color),
    };
    let _ = COLOR.set(color);
    match cli.command {
        Command::Check { files, format, handlers, .. } => check(&files, format, handlers.as_deref()),
        Command::Graph { file, format, .. } => graph(&file, format),
        Command::Fmt { files, check, .. } => fmt::run(&files, check, &style()),
        Command::Lsp => companion::LSP.run(&[]),
        Command::Deploy { args } => companion::DEPLOY.run(&args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "graphc", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Build { file, emit, out, check, handlers, release, .. } => match (emit, out) {
            (Some(Emit::Rust), out) => emit_rust(&file, handlers.as_deref(), out.as_deref(), check),
            (None, _) => build(&file, handlers.as_deref(), release, &[]).map_or_else(
                |code| code,
                |binary| {
                    println!("{}", binary.display());
                    ExitCode::SUCCESS
                },
            ),
        },
        Command::Test { file, junit, handlers, .. } => test(&file, junit.as_deref(), handlers.as_deref()),
        Command::Run(run) => {
            let binary = match build(&run.file, run.handlers.as_deref(), !run.debug, &[]) {
                Ok(binary) => binary,
                Err(code) => return code,
            };
            let mut command = std::process::Command::new(binary);
            command.arg("run").arg("--base").arg(graphc::surroundings::graph_dir(&run.file));
            command.args([
                "--input",
                &run.input,
                "--output",
                &run.output,
                "--concurrency",
                &run.concurrency.to_string(),
                "--blocking-threads",
                &run.blocking_threads.to_string(),
                "--blocking-inline-us",
                &run.blocking_inline_us.to_string(),
            ]);
            if let Some(errors) = &run.errors {
                command.arg("--errors").arg(errors);
            }
            for param in &run.params {
                command.args(["--param", param]);
            }
            exec(command)
        }
        Command::Serve(ServeArgs { file, mut handlers, mut debug, server, .. }) => {
            // `--handlers` and `--debug` are graphc's wherever they stand; the rest is the server's.
            let mut passed = Vec::new();
            let mut rest = server.into_iter();
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--debug" => debug = true,
                    "--handlers" => handlers = rest.next().map(PathBuf::from),
                    other => match other.strip_prefix("--handlers=") {
                        Some(dir) => handlers = Some(PathBuf::from(dir)),
                        None => passed.push(arg),
                    },
                }
            }
            if let Err(message) = check_server_flags(&passed) {
                eprintln!("error: {message}");
                return ExitCode::from(2);
            }
            // `--grpc-port` needs the runtime's gRPC server and `--tls-cert` its TLS, each built
            // in only when asked for.
            let given = |flag: &str| passed.iter().any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")));
            let extra: Vec<&'static str> = [("--grpc-port", "grpc"), ("--tls-cert", "tls")]
                .into_iter()
                .filter(|(flag, _)| given(flag))
                .map(|(_, feature)| feature)
                .collect();
            let binary = match build(&file, handlers.as_deref(), !debug, &extra) {
                Ok(binary) => binary,
                Err(code) => return code,
            };
            let mut command = std::process::Command::new(binary);
            command.arg("serve").arg("--base").arg(graphc::surroundings::graph_dir(&file)).args(passed);
            exec(command)
        }
    }
}

/// The server's flags as given to `graphc serve`: each must be one `serve` takes, and take its
/// value, so that a typo is reported at once rather than after a build.
fn check_server_flags(args: &[String]) -> Result<(), String> {
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument `{arg}`: the server's flags start with `--`"));
        };
        let (name, inline_value) = match flag.split_once('=') {
            Some((name, _)) => (name, true),
            None => (flag, false),
        };
        if !runtime_flags::SERVE.contains(&name) {
            let suggestion = runtime_flags::SERVE
                .iter()
                .map(|known| (strsim::levenshtein(known, name), known))
                .filter(|(distance, _)| *distance <= 2)
                .min()
                .map(|(_, known)| format!(" (did you mean `--{known}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "`graphc serve` takes no flag `--{name}`{suggestion}; its own are --handlers and --debug, and the server's: --{}",
                runtime_flags::SERVE.join(", --")
            ));
        }
        if !inline_value && !runtime_flags::SWITCHES.contains(&name) && rest.next().is_none() {
            return Err(format!("`--{name}` takes a value"));
        }
    }
    Ok(())
}

/// A graph file, compiled: its text (for diagnostics) and its generated file.
struct Generated {
    path: PathBuf,
    text: String,
    compiled: graphc::Compiled,
    file: graphc::codegen::GeneratedFile,
    /// The handler crate it is built with, if any.
    handlers: Option<graphc::surroundings::HandlerFolder>,
}

impl Generated {
    fn render(&self, diagnostics: &[graphc::Diagnostic]) -> String {
        report::render_human(&self.path.display().to_string(), &self.text, diagnostics, style())
    }
}

/// The generated module of a file, with what it names on disk checked (`handlers` is
/// `--handlers`), or the exit code after printing why not.
fn generate(path: &PathBuf, handlers: Option<&std::path::Path>) -> Result<Generated, ExitCode> {
    let text = read(path)?;
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let options = graphc::codegen::CodegenOptions { span_of: None };
    let render = |diagnostics: &[graphc::Diagnostic]| {
        report::render_human(&path.display().to_string(), &text, diagnostics, style())
    };
    let compiled = graphc::compile(&text, &options).map_err(|diagnostics| {
        eprint!("{}", render(&diagnostics));
        ExitCode::FAILURE
    })?;
    let surroundings = graphc::surroundings::check(path, &compiled.graph, handlers);
    if !surroundings.diagnostics.is_empty() {
        eprint!("{}", render(&surroundings.diagnostics));
        return Err(ExitCode::FAILURE);
    }
    if !compiled.warnings.is_empty() {
        eprint!("{}", render(&compiled.warnings));
    }
    let file = compiled.to_file(&name).map_err(|diagnostic| {
        eprint!("{}", render(&[diagnostic]));
        ExitCode::from(3)
    })?;
    Ok(Generated { path: path.clone(), text, compiled, file, handlers: surroundings.handlers })
}

fn emit_rust(
    path: &PathBuf,
    handlers: Option<&std::path::Path>,
    out: Option<&std::path::Path>,
    check: bool,
) -> ExitCode {
    let code = match generate(path, handlers) {
        Ok(generated) => generated.file.text,
        Err(exit) => return exit,
    };
    match (out, check) {
        (None, _) => print!("{code}"),
        (Some(out), true) => {
            if std::fs::read_to_string(out).ok().as_deref() != Some(code.as_str()) {
                eprintln!(
                    "error: {} is stale: run `graphc build {} --emit rust --out {}`",
                    out.display(),
                    path.display(),
                    out.display()
                );
                return ExitCode::FAILURE;
            }
        }
        (Some(out), false) => {
            if let Err(error) = std::fs::write(out, code) {
                eprintln!("error: cannot write {}: {error}", out.display());
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}

/// Generates, writes and builds a graph's project; rustc's errors in the generated module are
/// shown at the graph's lines.
/// Builds the graph's binary; `extra_features` are runtime features the command line asks for
/// beyond what the graph uses (`grpc` for `serve --grpc-port`).
fn build(
    path: &PathBuf,
    handlers: Option<&std::path::Path>,
    release: bool,
    extra_features: &[&'static str],
) -> Result<PathBuf, ExitCode> {
    let generated = generate(path, handlers)?;
    let handlers = generated.handlers.as_ref().map(|folder| folder.dir.as_path());
    let crate_name = generated.handlers.as_ref().map(|folder| folder.package.as_str());
    let mut features = graphc::codegen::runtime_features(&generated.compiled.graph);
    features.extend(extra_features.iter().filter(|extra| !features.contains(extra)).collect::<Vec<_>>());
    let graph_dir = graphc::surroundings::graph_dir(path);
    let written =
        project::write(generated.compiled.name(), &generated.file.text, &features, handlers, crate_name, &graph_dir)
            .map_err(|error| {
                eprintln!("error: cannot write the project: {error}");
                ExitCode::from(2)
            })?;
    // rustc reports one handler of the wrong type several times, at the handler's node and at
    // what is built around it (the nodes before it hold its type): shown once, at the first
    // graph line it maps to, and the follow-ons in the generated module only when nothing
    // could be mapped.
    let mut mapped: Vec<graphc::Diagnostic> = Vec::new();
    let mut unmapped = Vec::new();
    let result = project::build(&written, release, |message| match rustc::map(&message, &generated.file) {
        rustc::Mapped::Graph(diagnostic) => {
            let seen = mapped.iter().any(|d| d.message == diagnostic.message);
            if !seen {
                mapped.push(diagnostic);
            }
        }
        rustc::Mapped::Generated(rendered) => unmapped.push(rendered),
        rustc::Mapped::Elsewhere(rendered) => eprint!("{rendered}"),
        rustc::Mapped::Nothing => {}
    });
    if mapped.is_empty() {
        unmapped.iter().for_each(|rendered| eprint!("{rendered}"));
    } else {
        eprint!("{}", generated.render(&mapped));
    }
    result.map_err(|error| {
        eprintln!("error: {error}");
        ExitCode::FAILURE
    })
}

/// Runs the built binary in the foreground: the server's signals go to it, and its exit code is
/// graphc's.
fn exec(mut command: std::process::Command) -> ExitCode {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let error = command.exec();
        eprintln!("error: cannot run the server: {error}");
        ExitCode::from(2)
    }
    #[cfg(not(unix))]
    match command.status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: cannot run the server: {error}");
            ExitCode::from(2)
        }
    }
}

fn test(path: &PathBuf, junit: Option<&std::path::Path>, handlers: Option<&std::path::Path>) -> ExitCode {
    let binary = match build(path, handlers, false, &[]) {
        Ok(binary) => binary,
        Err(code) => return code,
    };
    let mut command = std::process::Command::new(binary);
    command.arg("test").arg("--base").arg(graphc::surroundings::graph_dir(path));
    if let Some(junit) = junit {
        command.arg("--junit").arg(junit);
    }
    match command.status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: cannot run the test binary: {error}");
            ExitCode::from(2)
        }
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
    Style { color: COLOR.get().copied().unwrap_or(false), width }
}

fn check(paths: &[PathBuf], format: Format, handlers: Option<&std::path::Path>) -> ExitCode {
    let mut failed = false;
    // A folder stands for the `.graph` files under it, as for `graphc fmt`.
    let mut files = Vec::new();
    for path in paths {
        if let Err(error) = fmt::collect(path, &mut files) {
            eprintln!("error: cannot read {}: {error}", path.display());
            failed = true;
        }
    }
    for path in &files {
        let name = path.display().to_string();
        // A file that cannot be read is one more diagnostic; the others are still checked.
        let (text, diagnostics) = match std::fs::read_to_string(path) {
            Ok(text) => match graphc::check_source(&text) {
                Ok(checked) => {
                    let surroundings = graphc::surroundings::check(path, &checked.graph, handlers);
                    if surroundings.diagnostics.is_empty() {
                        (text, checked.warnings)
                    } else {
                        failed = true;
                        (text, surroundings.diagnostics)
                    }
                }
                Err(diagnostics) => {
                    failed = true;
                    (text, diagnostics)
                }
            },
            Err(error) => {
                failed = true;
                let unreadable = graphc::Diagnostic::error(
                    graphc::Code::Io,
                    format!("cannot read {name}: {error}"),
                    graphc::source::Span::default(),
                    "",
                )
                .with_help("check the path and its permissions");
                (String::new(), vec![unreadable])
            }
        };
        match format {
            Format::Human => eprint!("{}", report::render_human(&name, &text, &diagnostics, style())),
            Format::Json => print!("{}", report::to_json_lines(&name, &text, &diagnostics)),
        }
    }
    if let Format::Human = format {
        let outcome = if failed { "failed" } else { "ok" };
        let files = match files.len() {
            1 => "1 file".to_string(),
            many => format!("{many} files"),
        };
        eprintln!("checked {files}: {outcome}");
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
