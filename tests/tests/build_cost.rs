//! Guards on what the README's main job compiles from a cold start: dependency versions the lock
//! file holds back because a newer one costs build time and gives graphc nothing, and the
//! language server's dependencies kept out of the compiler
//! (docs/performance-log.md, "Building a generated crate").

/// The packages in the workspace's lock file, by name.
fn locked_packages() -> Vec<String> {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).expect("the lock file");
    lock.lines()
        .filter_map(|line| line.strip_prefix("name = \""))
        .map(|name| name.trim_end_matches('"').to_string())
        .collect()
}

#[test]
fn miette_wraps_text_without_icu() {
    // textwrap 0.16.3 and later find line breaks with ICU's segmenter: 23 crates and 15 s of CPU
    // in graphc's cold build, for the same wrapped diagnostics.
    let packages = locked_packages();
    assert!(packages.iter().any(|name| name == "textwrap"), "miette's textwrap is in the lock file");
    assert!(
        !packages.iter().any(|name| name.starts_with("icu_segmenter")),
        "textwrap moved past 0.16.2 and brought ICU back: `cargo update -p textwrap --precise 0.16.2`, \
         or measure the cold build again and update docs/PERFORMANCE.md"
    );
}

#[test]
fn stack_growth_builds_without_an_archive_writer() {
    // psm 0.1.28 and later write their archive with `ar_archive_writer` and `object`: 3 s of CPU
    // in each half of the main job, for the same assembly.
    let packages = locked_packages();
    assert!(packages.iter().any(|name| name == "psm"), "stacker's psm is in the lock file");
    assert!(
        !packages.iter().any(|name| name == "ar_archive_writer"),
        "psm moved past 0.1.27: `cargo update -p psm --precise 0.1.27`, \
         or measure the cold build again and update docs/PERFORMANCE.md"
    );
}

#[test]
fn the_compiler_builds_without_the_language_servers_protocol() {
    // lsp-types and lsp-server were 12 s of CPU in a cold build of graphc, the first half of the
    // main job; the server is the `graphc-lsp` package, which `graphc lsp` runs.
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../compiler/Cargo.toml")).expect("the manifest");
    let named: Vec<&str> = manifest
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter(|line| line.contains("lsp-types") || line.contains("lsp-server"))
        .collect();
    assert!(
        named.is_empty(),
        "graphc depends on {named:?}: the language server's dependencies belong to lsp/Cargo.toml; \
         or measure the main job's cold start again (scripts/bench-cold-start) and update docs/PERFORMANCE.md"
    );
}
