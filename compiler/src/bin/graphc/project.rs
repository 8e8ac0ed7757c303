//! The Cargo project `graphc build` and `graphc test` write for a graph: the generated module, a
//! `main` that runs the graph's test blocks, and the runtime (and the user's handler crate) as
//! path dependencies. Projects live in `target/graphc/<graph name>/`; builds share one target
//! directory, `target/graphc/.target` (a name no graph can take), so a second build is
//! incremental.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the runtime crate is: `GRAPHC_RUNTIME`, else beside the compiler that built graphc.
fn runtime_dir() -> PathBuf {
    std::env::var_os("GRAPHC_RUNTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime"))
}

/// A written project.
pub struct Project {
    /// The project's directory.
    pub dir: PathBuf,
    /// The shared target directory.
    pub target: PathBuf,
    /// The binary's name.
    pub binary: String,
}

/// With the runtime's `models`: smartcore links the `num` crates' big integers, rationals and
/// complex numbers, which serving a model never calls. Unoptimised, they compile in a quarter of
/// the time (num-bigint: 3.1 s to 0.8 s of a cold build's CPU). Written only when they are in
/// the build (cargo warns of a profile for a package it does not build) and no handler crate is:
/// a user's own code may do its arithmetic with them.
const MODELS_PROFILE: &str = "\n[profile.release.package.num-bigint]\nopt-level = 0\n\n[profile.release.package.num-rational]\nopt-level = 0\n\n[profile.release.package.num-complex]\nopt-level = 0\n";

/// Writes the project for `graph_name` with the generated `module` text, building the runtime
/// with only `features`; `handlers` is the handler crate's folder and `crate_name` its package
/// name.
pub fn write(
    graph_name: &str,
    module: &str,
    features: &[&str],
    handlers: Option<&Path>,
    crate_name: Option<&str>,
) -> std::io::Result<Project> {
    let root = PathBuf::from("target/graphc");
    let dir = root.join(graph_name);
    std::fs::create_dir_all(dir.join("src"))?;
    let binary = binary_name(graph_name);
    let runtime = std::fs::canonicalize(runtime_dir())?;
    let profile = if features.contains(&"models") && handlers.is_none() { MODELS_PROFILE } else { "" };
    let features: Vec<String> = features.iter().map(|feature| format!("{feature:?}")).collect();
    let mut dependencies = format!(
        "graphc-runtime = {{ path = {:?}, default-features = false, features = [{}] }}\nserde_json = \"1\"\n",
        runtime.display().to_string(),
        features.join(", ")
    );
    let mut uses = String::new();
    if let (Some(handlers), Some(name)) = (handlers, crate_name) {
        let handlers = std::fs::canonicalize(handlers)?;
        dependencies.push_str(&format!("{name} = {{ path = {:?} }}\n", handlers.display().to_string()));
        // Relative handler paths in the graph resolve from the crate root, like `use`d crates.
        uses.push_str(&format!("#[allow(unused_imports)]\nuse {};\n", name.replace('-', "_")));
    }
    let manifest = format!(
        "# Written by graphc for {graph_name}.graph; rebuilt by `graphc build`.\n[package]\nname = \"{binary}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n[workspace]\n\n[dependencies]\n{dependencies}{profile}"
    );
    write_if_changed(&dir.join("Cargo.toml"), &manifest)?;
    write_if_changed(&dir.join("src/generated.rs"), module)?;
    // Absolute paths throughout: the graph's module may be named `std` or `graphc_runtime`.
    let module_name = graphc::codegen::ident(graph_name, proc_macro2::Span::call_site());
    let main = format!(
        "//! The binary graphc builds for `{graph_name}`: `serve` it over HTTP (or one of its functions), or `test` its test blocks.\n{uses}\ninclude!(\"generated.rs\");\n\nfn main() -> ::std::process::ExitCode {{\n    ::graphc_runtime::cli::main(self::{module_name}::NAME, self::{module_name}::pipeline, self::{module_name}::tests, self::{module_name}::run)\n}}\n"
    );
    write_if_changed(&dir.join("src/main.rs"), &main)?;
    // Start from the workspace's lock file when there is one, so builds reuse known versions.
    let lock = Path::new("Cargo.lock");
    if lock.exists() && !dir.join("Cargo.lock").exists() {
        std::fs::copy(lock, dir.join("Cargo.lock"))?;
    }
    Ok(Project { target: root.join(".target"), dir, binary })
}

/// Builds the project, showing cargo's progress; rustc's messages go to `on_message`, one at
/// a time, as cargo prints them.
pub fn build(
    project: &Project,
    release: bool,
    mut on_message: impl FnMut(crate::rustc::Message),
) -> std::io::Result<PathBuf> {
    let target = std::fs::canonicalize(&project.target).or_else(|_| {
        std::fs::create_dir_all(&project.target)?;
        std::fs::canonicalize(&project.target)
    })?;
    eprintln!("== building {} (cargo, in {})", project.binary, project.dir.display());
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    cargo
        .args(["build", "--message-format=json"])
        .current_dir(&project.dir)
        .env("CARGO_TARGET_DIR", &target)
        .stdout(std::process::Stdio::piped());
    if release {
        cargo.arg("--release");
    }
    let mut child = cargo.spawn()?;
    if let Some(stdout) = child.stdout.take() {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if let Ok(message) = serde_json::from_str(&line?) {
                on_message(crate::rustc::Message(message));
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(std::io::Error::other(format!("cargo build failed for {}", project.dir.display())));
    }
    Ok(target.join(if release { "release" } else { "debug" }).join(&project.binary))
}

/// The package and binary name for a graph: Cargo takes only ASCII letters, digits, `-` and `_`,
/// and graph names are Rust identifiers, which may be Unicode (`naïve` becomes `graphc-na-ef-ve`).
fn binary_name(graph_name: &str) -> String {
    let mut name = String::from("graphc-");
    for c in graph_name.chars() {
        match c {
            '_' => name.push('-'),
            c if c.is_ascii_alphanumeric() => name.push(c),
            c => name.push_str(&format!("-{:x}-", u32::from(c))),
        }
    }
    name
}

fn write_if_changed(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text)?;
    }
    Ok(())
}
