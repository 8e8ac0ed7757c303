//! The Cargo project `graphc build` and `graphc test` write for a graph: the generated module, a
//! `main` that runs the graph's test blocks, and the runtime (and the user's handler crate) as
//! path dependencies. Builds share one target directory, so a second build is incremental.

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

/// Writes the project for `graph_name` with the generated `module` text.
pub fn write(graph_name: &str, module: &str, handlers: Option<&Path>) -> std::io::Result<Project> {
    let root = PathBuf::from("target/graphc");
    let dir = root.join(graph_name);
    std::fs::create_dir_all(dir.join("src"))?;
    let binary = format!("graphc-{}", graph_name.replace('_', "-"));
    let runtime = std::fs::canonicalize(runtime_dir())?;
    let mut dependencies =
        format!("graphc-runtime = {{ path = {:?} }}\nserde_json = \"1\"\n", runtime.display().to_string());
    let mut uses = String::new();
    if let Some(handlers) = handlers {
        let handlers = std::fs::canonicalize(handlers)?;
        let manifest = std::fs::read_to_string(handlers.join("Cargo.toml"))?;
        let name = package_name(&manifest)
            .ok_or_else(|| std::io::Error::other(format!("no package name in {}/Cargo.toml", handlers.display())))?;
        dependencies.push_str(&format!("{name} = {{ path = {:?} }}\n", handlers.display().to_string()));
        // Relative handler paths in the graph resolve from the crate root, like `use`d crates.
        uses.push_str(&format!("#[allow(unused_imports)]\nuse {};\n", name.replace('-', "_")));
    }
    let manifest = format!(
        "# Written by graphc for {graph_name}.graph; rebuilt by `graphc build`.\n[package]\nname = \"{binary}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n[workspace]\n\n[dependencies]\n{dependencies}"
    );
    write_if_changed(&dir.join("Cargo.toml"), &manifest)?;
    write_if_changed(&dir.join("src/generated.rs"), module)?;
    let main = format!(
        "//! The binary graphc builds for `{graph_name}`: `serve` it over HTTP (or one of its functions), or `test` its test blocks.\n{uses}\ninclude!(\"generated.rs\");\n\nfn main() -> std::process::ExitCode {{\n    graphc_runtime::cli::main({graph_name}::NAME, {graph_name}::pipeline, {graph_name}::tests, {graph_name}::run)\n}}\n"
    );
    write_if_changed(&dir.join("src/main.rs"), &main)?;
    // Start from the workspace's lock file when there is one, so builds reuse known versions.
    let lock = Path::new("Cargo.lock");
    if lock.exists() && !dir.join("Cargo.lock").exists() {
        std::fs::copy(lock, dir.join("Cargo.lock"))?;
    }
    Ok(Project { target: root.join("target"), dir, binary })
}

/// Builds the project, showing cargo's progress.
pub fn build(project: &Project, release: bool) -> std::io::Result<PathBuf> {
    let target = std::fs::canonicalize(&project.target).or_else(|_| {
        std::fs::create_dir_all(&project.target)?;
        std::fs::canonicalize(&project.target)
    })?;
    eprintln!("== building {} (cargo, in {})", project.binary, project.dir.display());
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    cargo.arg("build").current_dir(&project.dir).env("CARGO_TARGET_DIR", &target);
    if release {
        cargo.arg("--release");
    }
    let status = cargo.status()?;
    if !status.success() {
        return Err(std::io::Error::other(format!("cargo build failed for {}", project.dir.display())));
    }
    Ok(target.join(if release { "release" } else { "debug" }).join(&project.binary))
}

fn write_if_changed(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text)?;
    }
    Ok(())
}

fn package_name(manifest: &str) -> Option<String> {
    let package = manifest.split("[package]").nth(1)?;
    package.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "name").then(|| value.trim().trim_matches('"').to_string())
    })
}
