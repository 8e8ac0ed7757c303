//! No input makes the parser or checker panic: random text, and fixtures with random edits.

use proptest::prelude::*;
use std::path::Path;

fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut texts = Vec::new();
    for kind in ["pass", "fail"] {
        for entry in std::fs::read_dir(root.join(kind)).expect("fixtures") {
            texts.push(std::fs::read_to_string(entry.expect("entry").path()).expect("text"));
        }
    }
    texts.sort();
    texts
}

/// Checks a text and renders whatever it reports, which must not panic either; what checks
/// must generate a module that parses.
fn check_everything(text: &str) {
    let diagnostics = match graphc::check_source(text) {
        Ok(checked) => {
            let _ = graphc::render::to_dot(&checked.graph);
            let _ = graphc::render::to_mermaid(&checked.graph);
            let compiled = graphc::compile(text, &graphc::codegen::CodegenOptions { span_of: None })
                .unwrap_or_else(|d| panic!("checks but does not generate:\n{text}\n{d:#?}"));
            if let Err(error) = compiled.to_file("fuzz.graph") {
                panic!("checks but its module does not parse:\n{text}\n{}", error.message);
            }
            checked.warnings
        }
        Err(diagnostics) => diagnostics,
    };
    let _ = graphc::report::render_human("fuzz.graph", text, &diagnostics, graphc::report::Style::PLAIN);
    let _ = graphc::report::to_json_lines("fuzz.graph", text, &diagnostics);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        check_everything(&text);
    }

    #[test]
    fn edited_fixtures_never_panic(index in 0usize..1000, edits in prop::collection::vec((0usize..10_000, 0usize..8, "[a-z_{}();=>\\-\\[\\]\",.*!0-9 ]{0,6}"), 1..6)) {
        let texts = corpus();
        let mut text = texts[index % texts.len()].clone();
        for (at, remove, insert) in edits {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) { at -= 1; }
            let mut end = (at + remove).min(text.len());
            while !text.is_char_boundary(end) { end += 1; }
            text.replace_range(at..end, &insert);
        }
        check_everything(&text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Very long lines cannot be drawn as snippets (miette pads to at most 65,535 columns): the
    /// report says where, instead of panicking.
    #[test]
    fn diagnostics_on_very_long_lines_render(padding in 60_000usize..90_000, at_end in any::<bool>()) {
        let long = "y".repeat(padding);
        let text = if at_end {
            format!("graph long {{ topology = flow; step a = map({{ x: \"{long}\" }}); a -> nope; }}")
        } else {
            format!("graph long {{ topology = flow; step a = map({{ x: 1 }}); a -> nope; /* {long} */ }}")
        };
        let diagnostics = graphc::check_source(&text).expect_err("an unknown step");
        let rendered = graphc::report::render_human("long.graph", &text, &diagnostics, graphc::report::Style::PLAIN);
        prop_assert!(rendered.contains("unknown step `nope`"), "{}", &rendered[..rendered.len().min(400)]);
    }
}
