//! Compiles every tests/fixtures/run/*.graph with graphc into OUT_DIR: each as written, and a
//! single-chain graph also on the other engine (as `<name>_async` or `<name>_sync`), so that the
//! run tests cover both executors. `run_fixtures.rs` includes them all and lists them.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let fixtures = Path::new("fixtures/run");
    println!("cargo:rerun-if-changed={}", fixtures.display());
    let mut files: Vec<_> =
        std::fs::read_dir(fixtures).expect("fixtures/run exists").map(|e| e.expect("entry").path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "graph"));
    files.sort();
    // A long async chain, made here: its future types nest deep enough to need boxing.
    let long_chain = {
        let steps = 40;
        let mut text = String::from("graph long_chain {\n    topology = flow;\n    engine = async;\n");
        for i in 0..steps {
            text.push_str(&format!("    step s{i} = map({{ n: body.n + 1 }});\n"));
        }
        text.push_str(&format!("    step last = map(body) {{ respond; after = s{}; }}\n", steps - 1));
        for i in 1..steps {
            text.push_str(&format!("    s{} -> s{i};\n", i - 1));
        }
        text.push_str(&format!(
            "    test counts {{ request POST \"/\" {{ body = {{ n: 0 }}; }} expect body.n == {steps}; }}\n}}\n"
        ));
        text
    };
    let long_path = Path::new(&out).join("long_chain.graph");
    std::fs::write(&long_path, long_chain).expect("write the long chain");
    files.push(long_path);
    let mut index = String::new();
    let mut registry = String::from(
        "/// Every compiled run fixture: (module name, fixture file, engine, test blocks, mock server).\npub fn all() -> Vec<Fixture> {\n    vec![\n",
    );
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let text = std::fs::read_to_string(file).expect("fixture text");
        let file_name = file.file_name().expect("a name").to_string_lossy().into_owned();
        let checked = graphc::check_source(&text).unwrap_or_else(|d| {
            panic!("{}", graphc::report::render_human(&file_name, &text, &d, graphc::report::Style::PLAIN))
        });
        let mut variants = vec![checked.graph.clone()];
        let single_chain = checked.graph.nodes.iter().all(|n| n.parents.len() <= 1 && n.children.len() <= 1)
            && checked.graph.start_nodes().len() <= 1;
        // An async flow without a responder answers 202 by design, which the sync engine (whose
        // chain end answers) does not mean; such a graph runs on its own engine only.
        let answers_the_same =
            checked.graph.engine == graphc::ir::Engine::Sync || checked.graph.nodes.iter().any(|n| n.respond);
        if checked.graph.topology == graphc::ir::Topology::Router || (single_chain && answers_the_same) {
            let mut other = checked.graph.clone();
            other.engine = match other.engine {
                graphc::ir::Engine::Sync => graphc::ir::Engine::Async,
                graphc::ir::Engine::Async => graphc::ir::Engine::Sync,
            };
            other.name =
                format!("{}_{}", other.name, if other.engine == graphc::ir::Engine::Sync { "sync" } else { "async" });
            // The async engine answers 202 without a responder; the chain's end responds, as under sync.
            let responds = other.nodes.iter().any(|n| n.respond);
            if other.engine == graphc::ir::Engine::Async
                && !responds
                && let Some(last) = other.nodes.iter_mut().find(|n| n.children.is_empty())
            {
                last.respond = true;
            }
            variants.push(other);
        }
        for graph in variants {
            let tokens = graphc::codegen::generate(&graph, &graphc::codegen::CodegenOptions { span_of: None })
                .unwrap_or_else(|d| {
                    panic!("{}", graphc::report::render_human(&file_name, &text, &d, graphc::report::Style::PLAIN))
                });
            let code = graphc::codegen::format_file(tokens, &file_name).expect("generated code parses");
            std::fs::write(Path::new(&out).join(format!("{}.rs", graph.name)), code).expect("write");
            writeln!(index, "include!(concat!(env!(\"OUT_DIR\"), \"/{}.rs\"));", graph.name).unwrap();
            let engine = if graph.engine == graphc::ir::Engine::Sync { "sync" } else { "async" };
            writeln!(registry, "        Fixture {{ module: \"{0}\", file: \"{file_name}\", engine: \"{engine}\", tests: {0}::tests, run: |options| {{ let server = {0}::mock(options).expect(\"starts\"); graphc_runtime::generated::run_tests(&server, &{0}::tests()) }} }},", graph.name).unwrap();
        }
    }
    registry.push_str("    ]\n}\n");
    index.push_str("\n/// A compiled run fixture.\npub struct Fixture {\n    /// The generated module's name.\n    pub module: &'static str,\n    /// The fixture file.\n    pub file: &'static str,\n    /// `sync` or `async`.\n    pub engine: &'static str,\n    /// Its test blocks.\n    pub tests: fn() -> Vec<graphc_runtime::TestCase>,\n    /// Runs its test blocks on its mock server.\n    pub run: fn(&graphc_runtime::Options) -> Vec<graphc_runtime::TestOutcome>,\n}\n\n");
    index.push_str(&registry);
    std::fs::write(Path::new(&out).join("run_fixtures.rs"), index).expect("write the index");
}
