//! Any graph the checker accepts generates a module that parses, the same through the file door
//! and the `graph!` door: random graphs from every construct (tests/src/random.rs). A few dozen
//! of them are also compiled by rustc and run (build.rs; `every_run_fixture_passes_its_test_blocks`).

use graphc::codegen::CodegenOptions;
use graphc_tests::random::{self, Limits};
use proptest::prelude::*;
use std::str::FromStr;

fn compile(name: &str, text: &str) -> graphc::Compiled {
    graphc::compile(text, &CodegenOptions { span_of: None }).unwrap_or_else(|diagnostics| {
        panic!(
            "the generator writes only valid graphs, and what checks must generate:\n{text}\n{}",
            graphc::report::render_human(name, text, &diagnostics, graphc::report::Style::PLAIN)
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn a_random_graph_checks_generates_and_parses(seed in any::<u64>(), size in 1usize..14) {
        let text = random::graph("random", seed, Limits { remote: true, ..Limits::new(size) });
        let compiled = compile("random.graph", &text);
        let file = compiled.to_file("random.graph").unwrap_or_else(|d| panic!("{text}\n{}", d.message));
        prop_assert!(syn::parse_file(&file.text).is_ok());
        // The same text as Rust tokens (the `graph!` door) means the same module.
        let tokens = proc_macro2::TokenStream::from_str(&text).expect("a graph lexes as Rust tokens");
        let rebuilt = graphc::tokens::from_tokens(tokens);
        let via_tokens = compile("graph!", &rebuilt.text);
        prop_assert_eq!(via_tokens.module.to_string(), compiled.module.to_string());
    }
}

#[test]
fn the_generator_covers_every_construct() {
    let texts: Vec<String> =
        (0..300).map(|seed| random::graph("g", seed, Limits { remote: true, ..Limits::new(8) })).collect();
    for construct in [
        "topology = flow",
        "engine = sync",
        "engine = async",
        "ensemble",
        "parallel",
        "= model {",
        "choice {",
        "memory(",
        "stream(",
        "function worker",
        "on_error = caught",
        "on_error = catch_all",
        "input_path",
        "full_event",
        "new crate::handlers::Scale",
        "$remote",
        "flat_map",
        "filter(",
        "extend(",
        "record Shape",
        "record Tree",
        ": json -> json = map(",
        "body.k < 0 =>",
        "param bonus",
        "error_stream",
        "respond;",
        "test answers",
    ] {
        assert!(texts.iter().any(|text| text.contains(construct)), "no random graph has `{construct}`");
    }
}
