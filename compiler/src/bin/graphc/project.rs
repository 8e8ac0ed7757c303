//! The Cargo project `graphc build` and `graphc test` write for a graph: the generated module, a
//! `main` that runs the graph's test blocks, and the runtime (and the user's handler crate) as
//! path dependencies. Projects live in `target/graphc/<graph name>/`; builds share one target
//! directory, `target/graphc/.target` (a name no graph can take; `GRAPHC_TARGET_DIR` moves it),
//! so a second build is incremental. The runtime is the one embedded in the binary, unpacked to
//! a cache folder, unless `GRAPHC_RUNTIME` or the handler crate names another.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The runtime's source, embedded when graphc was built (compiler/build.rs).
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/runtime_source.rs"));
}

/// Where the runtime crate is, in this order: `GRAPHC_RUNTIME` (a folder, or `embedded` for
/// the binary's own copy); the runtime the handler crate depends on by path, so that a build
/// has one runtime (a handler crate in graphc's own checkout, or in a user's clone of it); the
/// checkout graphc was built from, while it holds the very source embedded; else the embedded
/// runtime, unpacked once to a cache folder. An installed graphc therefore builds graphs from
/// any folder, after its checkout is moved, changed or deleted.
fn runtime_dir(handlers: Option<&Path>) -> std::io::Result<PathBuf> {
    match std::env::var_os("GRAPHC_RUNTIME") {
        Some(choice) if choice == "embedded" => return unpacked_runtime(),
        Some(dir) => return Ok(PathBuf::from(dir)),
        None => {}
    }
    if let Some(dir) = handlers.and_then(handlers_runtime) {
        return Ok(dir);
    }
    if checkout_holds_the_embedded_source() {
        return Ok(PathBuf::from(embedded::CHECKOUT));
    }
    unpacked_runtime()
}

/// Whether the checkout graphc was built from still has the runtime's source as embedded,
/// byte for byte (its manifests included).
fn checkout_holds_the_embedded_source() -> bool {
    let checkout = Path::new(embedded::CHECKOUT);
    !embedded::FILES.is_empty()
        && embedded::FILES
            .iter()
            .all(|(relative, bytes)| std::fs::read(checkout.join(relative)).is_ok_and(|on_disk| on_disk == *bytes))
        && embedded::CHECKOUT_MANIFESTS
            .iter()
            .all(|(path, bytes)| std::fs::read(path).is_ok_and(|on_disk| on_disk == *bytes))
}

/// The path of the `graphc-runtime` dependency in the handler crate's manifest, as cargo
/// resolves it (workspace inheritance included); `None` when it has none, or not by path.
fn handlers_runtime(handlers: &Path) -> Option<PathBuf> {
    let manifest = std::fs::canonicalize(handlers.join("Cargo.toml")).ok()?;
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
        .args(["metadata", "--no-deps", "--format-version", "1", "--manifest-path"])
        .arg(&manifest)
        .output()
        .ok()?;
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let package = metadata["packages"]
        .as_array()?
        .iter()
        .find(|package| package["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path()))?;
    let dependency = package["dependencies"].as_array()?.iter().find(|d| d["name"] == "graphc-runtime")?;
    dependency["path"].as_str().map(PathBuf::from)
}

/// The embedded runtime, written once to `<cache>/graphc/runtime-<version>-<hash>` (the cache
/// is `GRAPHC_CACHE_DIR`, else `$XDG_CACHE_HOME`, else `~/.cache`). Written to a folder of its
/// own first and renamed into place, so that builds started at once never see half of it.
fn unpacked_runtime() -> std::io::Result<PathBuf> {
    if embedded::FILES.is_empty() {
        return Err(std::io::Error::other(
            "this graphc was built without the runtime's source: set GRAPHC_RUNTIME to the runtime crate's folder",
        ));
    }
    let cache = std::env::var_os("GRAPHC_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|dir| PathBuf::from(dir).join("graphc")))
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/graphc")))
        .unwrap_or_else(|| std::env::temp_dir().join("graphc-cache"));
    let dir = cache.join(format!("runtime-{}-{}", env!("CARGO_PKG_VERSION"), embedded::HASH));
    if dir.join("Cargo.toml").is_file() {
        return Ok(dir);
    }
    let staging = cache.join(format!(".runtime-{}-{}", embedded::HASH, std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    for (relative, bytes) in embedded::FILES {
        let path = staging.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)?;
    }
    std::fs::write(staging.join("Cargo.toml"), embedded::MANIFEST)?;
    // Another graphc may have put it in place meanwhile: then its copy is used, and this one
    // is dropped.
    if std::fs::rename(&staging, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
        if !dir.join("Cargo.toml").is_file() {
            return Err(std::io::Error::other(format!("cannot write the runtime to {}", dir.display())));
        }
    }
    Ok(dir)
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

/// A debug build (`graphc test`, `serve --debug`, `run --debug`) is made to run test blocks and
/// try a graph: line tables for the graph's own crate, so that a backtrace names its lines, and
/// no debug info for the runtime and its dependencies. With cargo's default (full debug info
/// everywhere) each binary took 40 to 140 MB, most of it the names of monomorphized steps, and
/// a machine's disk filled with them.
const DEV_PROFILE: &str =
    "\n[profile.dev]\ndebug = \"line-tables-only\"\n\n[profile.dev.package.\"*\"]\ndebug = false\n";

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
    graph_dir: &Path,
) -> std::io::Result<Project> {
    let root = PathBuf::from("target/graphc");
    let dir = root.join(graph_name);
    std::fs::create_dir_all(dir.join("src"))?;
    let binary = binary_name(graph_name);
    let runtime = std::fs::canonicalize(runtime_dir(handlers)?)?;
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
        "# Written by graphc for {graph_name}.graph; rebuilt by `graphc build`.\n[package]\nname = \"{binary}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n[workspace]\n\n[dependencies]\n{dependencies}{DEV_PROFILE}{profile}"
    );
    write_if_changed(&dir.join("Cargo.toml"), &manifest)?;
    write_if_changed(&dir.join("src/generated.rs"), module)?;
    // Absolute paths throughout: the graph's module may be named `std` or `graphc_runtime`.
    let module_name = graphc::codegen::ident(graph_name, proc_macro2::Span::call_site());
    // Model files are found from the graph's folder wherever the binary starts (`--base` wins).
    let graph_dir = std::fs::canonicalize(graph_dir).unwrap_or_else(|_| graph_dir.to_path_buf());
    let graph_dir = graph_dir.display().to_string();
    let main = format!(
        "//! The binary graphc builds for `{graph_name}`: `serve` it over HTTP (or one of its functions), or `test` its test blocks.\n{uses}\ninclude!(\"generated.rs\");\n\nfn main() -> ::std::process::ExitCode {{\n    ::graphc_runtime::cli::main_in({graph_dir:?}, self::{module_name}::NAME, self::{module_name}::pipeline, self::{module_name}::tests, self::{module_name}::run)\n}}\n"
    );
    write_if_changed(&dir.join("src/main.rs"), &main)?;
    // Start from the lock file the runtime was tested with, so builds take known versions
    // (some held back for build time: tests/tests/build_cost.rs).
    if !dir.join("Cargo.lock").exists() {
        if embedded::LOCK.is_empty() {
            let lock = Path::new("Cargo.lock");
            if lock.exists() {
                std::fs::copy(lock, dir.join("Cargo.lock"))?;
            }
        } else {
            std::fs::write(dir.join("Cargo.lock"), embedded::LOCK)?;
        }
    }
    // `GRAPHC_TARGET_DIR` shares compiled dependencies across folders (a CI cache, or many
    // graph folders on one machine).
    let target = std::env::var_os("GRAPHC_TARGET_DIR").map_or_else(|| root.join(".target"), PathBuf::from);
    Ok(Project { target, dir, binary })
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
