//! For the `graphc` binary (the `cli` feature): the runtime crate's source and the workspace's
//! lock file, embedded, so that an installed `graphc` builds graphs with the very runtime it
//! generates code for, after the checkout it was built from is moved or deleted and from any
//! folder. The runtime's manifest inherits from the workspace; the embedded one is made
//! standalone here (the workspace's values written in, its tests and benches left out).

#[cfg(feature = "cli")]
use std::fmt::Write;
#[cfg(feature = "cli")]
use std::path::Path;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("runtime_source.rs");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let runtime = manifest_dir.join("../runtime");
    #[cfg(feature = "cli")]
    if runtime.join("Cargo.toml").is_file() {
        std::fs::write(&out, embedded(&manifest_dir.join(".."), &runtime)).expect("write the embedded runtime");
        return;
    }
    let _ = runtime;
    // A compiler built without its checkout (or without the binary): nothing to embed.
    std::fs::write(
        &out,
        "pub const FILES: &[(&str, &[u8])] = &[];\npub const MANIFEST: &str = \"\";\npub const LOCK: &str = \"\";\npub const HASH: &str = \"\";\npub const CHECKOUT: &str = \"\";\npub const CHECKOUT_MANIFESTS: &[(&str, &[u8])] = &[];\n",
    )
    .expect("write the embedded runtime");
}

#[cfg(feature = "cli")]
fn embedded(workspace: &Path, runtime: &Path) -> String {
    let mut files = vec![runtime.join("build.rs")];
    for dir in ["src", "proto"] {
        collect(&runtime.join(dir), &mut files);
        println!("cargo:rerun-if-changed={}", runtime.join(dir).display());
    }
    files.sort();
    let manifest = standalone_manifest(workspace, runtime);
    let lock_path = workspace.join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path).unwrap_or_default();
    for watched in [runtime.join("Cargo.toml"), workspace.join("Cargo.toml"), lock_path, runtime.join("build.rs")] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    // FNV-1a over every name and byte: the cache folder the runtime is unpacked to.
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut mix = |bytes: &[u8]| {
        for byte in bytes {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    mix(manifest.as_bytes());
    mix(lock.as_bytes());
    let mut out = String::from("pub const FILES: &[(&str, &[u8])] = &[\n");
    for file in &files {
        let relative = file.strip_prefix(runtime).expect("inside the runtime").to_string_lossy().replace('\\', "/");
        mix(relative.as_bytes());
        mix(&std::fs::read(file).expect("a runtime file"));
        let absolute = file.canonicalize().expect("a runtime file");
        writeln!(out, "    ({relative:?}, include_bytes!({:?})),", absolute.display().to_string()).expect("write");
    }
    out.push_str("];\n");
    writeln!(out, "pub const MANIFEST: &str = {manifest:?};").expect("write");
    writeln!(
        out,
        "pub const LOCK: &str = include_str!({:?});",
        workspace.join("Cargo.lock").canonicalize().map(|p| p.display().to_string()).unwrap_or_default()
    )
    .expect("write");
    writeln!(out, "pub const HASH: &str = \"{hash:016x}\";").expect("write");
    // The checkout it came from, and the manifests as written there: while the checkout still
    // holds this very source, graphc builds with it in place (no second copy to compile).
    let absolute = |path: &Path| path.canonicalize().map(|p| p.display().to_string()).unwrap_or_default();
    writeln!(out, "pub const CHECKOUT: &str = {:?};", absolute(runtime)).expect("write");
    writeln!(
        out,
        "pub const CHECKOUT_MANIFESTS: &[(&str, &[u8])] = &[({0:?}, include_bytes!({0:?})), ({1:?}, include_bytes!({1:?}))];",
        absolute(&runtime.join("Cargo.toml")),
        absolute(&workspace.join("Cargo.toml"))
    )
    .expect("write");
    out
}

#[cfg(feature = "cli")]
fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}

/// The runtime's manifest with what it inherits from the workspace written in, and without its
/// development-only sections (their files are not embedded).
#[cfg(feature = "cli")]
fn standalone_manifest(workspace: &Path, runtime: &Path) -> String {
    let read = |path: &Path| -> toml::Table {
        std::fs::read_to_string(path).expect("a manifest").parse().expect("a manifest parses")
    };
    let mut manifest = read(&runtime.join("Cargo.toml"));
    let root = read(&workspace.join("Cargo.toml"));
    let inherited = root.get("workspace").and_then(toml::Value::as_table).cloned().unwrap_or_default();
    let package_values = inherited.get("package").and_then(toml::Value::as_table).cloned().unwrap_or_default();
    let dependency_values = inherited.get("dependencies").and_then(toml::Value::as_table).cloned().unwrap_or_default();
    for section in ["dev-dependencies", "test", "bench", "example", "lints"] {
        manifest.remove(section);
    }
    if let Some(toml::Value::Table(package)) = manifest.get_mut("package") {
        for (key, value) in package.iter_mut() {
            if is_inherited(value) {
                *value =
                    package_values.get(key).cloned().unwrap_or_else(|| panic!("the workspace has no package.{key}"));
            }
        }
    }
    for section in ["dependencies", "build-dependencies"] {
        let Some(toml::Value::Table(dependencies)) = manifest.get_mut(section) else { continue };
        for (name, value) in dependencies.iter_mut() {
            if !is_inherited(value) {
                continue;
            }
            let mut merged = match dependency_values.get(name) {
                Some(toml::Value::String(version)) => {
                    let mut table = toml::Table::new();
                    table.insert("version".into(), toml::Value::String(version.clone()));
                    table
                }
                Some(toml::Value::Table(table)) => table.clone(),
                _ => panic!("the workspace has no dependency `{name}`"),
            };
            if let toml::Value::Table(own) = value {
                for (key, own_value) in own.iter() {
                    match (key.as_str(), merged.get_mut("features"), own_value) {
                        ("workspace", _, _) => {}
                        ("features", Some(toml::Value::Array(features)), toml::Value::Array(more)) => {
                            features.extend(more.iter().cloned());
                        }
                        _ => {
                            merged.insert(key.clone(), own_value.clone());
                        }
                    }
                }
            }
            *value = toml::Value::Table(merged);
        }
    }
    format!(
        "# The runtime graphc embeds, unpacked by `graphc build`.\n{}",
        toml::to_string(&manifest).expect("a manifest")
    )
}

#[cfg(feature = "cli")]
fn is_inherited(value: &toml::Value) -> bool {
    value.as_table().and_then(|table| table.get("workspace")).and_then(toml::Value::as_bool) == Some(true)
}
