//! Compiles every tests/fixtures/run/*.graph with graphc into OUT_DIR: each as written, and a
//! single-chain graph also on the other engine (as `<name>_async` or `<name>_sync`), so that the
//! run tests cover both executors. `run_fixtures.rs` includes them all and lists them.

#[path = "src/random.rs"]
mod random;
#[path = "src/shapes.rs"]
mod shapes;

/// How many random graphs are compiled and run.
const RANDOM_GRAPHS: u64 = 60;

use std::fmt::Write;
use std::path::Path;

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let fixtures = Path::new("fixtures/run");
    println!("cargo:rerun-if-changed={}", fixtures.display());
    println!("cargo:rerun-if-changed=src/random.rs");
    println!("cargo:rerun-if-changed=src/shapes.rs");
    let mut files: Vec<_> =
        std::fs::read_dir(fixtures).expect("fixtures/run exists").map(|e| e.expect("entry").path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "graph"));
    files.sort();
    // Examples whose test blocks need no handler crate run here too, on both engines where they
    // can, rather than each through a crate of its own.
    const EXAMPLES: &[&str] = &["../examples/loop/loop.graph"];
    for example in EXAMPLES {
        println!("cargo:rerun-if-changed={example}");
        files.push(Path::new(example).to_path_buf());
    }
    // Shapes that stress code generation, made here: any graph that checks must build.
    let shapes = [
        ("long_chain", shapes::long_chain("long_chain", "async", 40)),
        ("chain_of_1000", shapes::long_chain("chain_of_1000", "sync", 1000)),
        ("wide_choice", shapes::wide_choice("wide_choice", 200, 4)),
        ("lattice", shapes::lattice("lattice", 13, 20)),
    ];
    // Random graphs from every construct, compiled by rustc here and run by the tests: each
    // must answer one of the statuses the semantics allow.
    let random = (0..RANDOM_GRAPHS).map(|seed| {
        let name = format!("random_{seed}");
        let text = random::graph(&name, seed, random::Limits::new(1 + seed as usize % 10));
        (name, text)
    });
    for (name, text) in shapes.into_iter().map(|(name, text)| (name.to_string(), text)).chain(random) {
        let path = Path::new(&out).join(format!("{name}.graph"));
        std::fs::write(&path, text).expect("write a generated graph");
        files.push(path);
    }
    let mut index = String::new();
    let mut registry = String::from(
        "/// Every compiled run fixture: (module name, fixture file, engine, test blocks, mock server).\npub fn all() -> ::std::vec::Vec<Fixture> {\n    ::std::vec![\n",
    );
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let text = std::fs::read_to_string(file).expect("fixture text");
        let file_name = file.file_name().expect("a name").to_string_lossy().into_owned();
        let compile = |text: &str| {
            let compiled =
                graphc::compile(text, &graphc::codegen::CodegenOptions { span_of: None }).unwrap_or_else(|d| {
                    panic!("{}", graphc::report::render_human(&file_name, text, &d, graphc::report::Style::PLAIN))
                });
            let file = compiled.to_file(&file_name).expect("generated code parses");
            (compiled.graph, file.text)
        };
        let (graph, code) = compile(&text);
        let mut variants = vec![(graph.clone(), code)];
        // One chain per event: no joins (an edge back round a loop is not one), and no branches
        // but a choice's, which sends each event one way.
        let single_chain = graph.node_ids().all(|id| {
            let node = graph.node(id);
            graph.forward_parents(id).count() <= 1
                && (node.children.len() <= 1 || matches!(node.kind, graphc::ir::NodeKind::Choice(_)))
        }) && graph.start_nodes().len() <= 1;
        // The same graph on the other engine, through the checker like any graph: a single
        // chain whose answers do not depend on the engine (a router, or a marked responder).
        let answers_the_same = graph.nodes.iter().any(|n| n.respond);
        // Typed handlers name the fixture's own records, by module: no second module.
        let untyped = graph.records.is_empty();
        // Streams, child functions and streaming steps need the async engine.
        let one_process =
            graph.functions.len() <= 1 && !graph.nodes.iter().any(|n| n.kind.is_stream_queue() || n.streaming);
        if untyped
            && one_process
            && (graph.topology == graphc::ir::Topology::Router || (single_chain && answers_the_same))
        {
            let (engine, other) = match graph.engine {
                graphc::ir::Engine::Sync => ("sync", "async"),
                graphc::ir::Engine::Async => ("async", "sync"),
            };
            let header = format!("graph {} {{", graph.name);
            let renamed = text.replacen(&header, &format!("graph {}_{other} {{\n    engine = {other};", graph.name), 1);
            // A router fixture leaves the engine at its default: then there is none to remove.
            let renamed = renamed.replacen(&format!("engine = {engine};"), "", 1);
            variants.push(compile(&renamed));
        }
        for (graph, code) in variants {
            std::fs::write(Path::new(&out).join(format!("{}.rs", graph.name)), code).expect("write");
            writeln!(index, "include!(concat!(env!(\"OUT_DIR\"), \"/{}.rs\"));", graph.name).unwrap();
            let engine = if graph.engine == graphc::ir::Engine::Sync { "sync" } else { "async" };
            // `self::` and `::graphc_runtime`: a fixture may be named `std` or `match`.
            let module = graphc::codegen::ident(&graph.name, proc_macro2::Span::call_site());
            writeln!(registry, "        Fixture {{ module: \"{name}\", file: \"{file_name}\", engine: \"{engine}\", tests: self::{module}::tests, run: |options| {{ let server = self::{module}::mock(options).expect(\"starts\"); ::graphc_runtime::generated::run_tests(&server, &self::{module}::tests()) }} }},", name = graph.name).unwrap();
        }
    }
    registry.push_str("    ]\n}\n");
    index.push_str("\n/// A compiled run fixture.\npub struct Fixture {\n    /// The generated module's name.\n    pub module: &'static str,\n    /// The fixture file.\n    pub file: &'static str,\n    /// `sync` or `async`.\n    pub engine: &'static str,\n    /// Its test blocks.\n    pub tests: fn() -> ::std::vec::Vec<::graphc_runtime::TestCase>,\n    /// Runs its test blocks on its mock server.\n    pub run: fn(&::graphc_runtime::Options) -> ::std::vec::Vec<::graphc_runtime::TestOutcome>,\n}\n\n");
    index.push_str(&registry);
    std::fs::write(Path::new(&out).join("run_fixtures.rs"), index).expect("write the index");
}
