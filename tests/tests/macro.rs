//! The `graph!` macro: the DSL as Rust tokens, compiled by the same compiler as files, and the
//! same graph through build.rs and the macro answering identically.

use graphc_runtime::Options;
use serde_json::json;
use std::path::PathBuf;

graphc_macros::graph! {
    /// Doc comments are comments in a graph.
    graph chain_macro {
        topology = flow;
        engine = sync;
        param bonus: int = 10;

        step inc = map({ n: body.n + 1, name: body.name });
        step keep = filter(body.n > 0);
        step scale = map({ n: body.n * 2 + param.bonus, label: "n=" + body.name, size: len(body.name) });
        step tag = extend({ tagged: true, path: event.path });
        inc -> keep -> scale -> tag;

        test computes {
            request POST "/work" { body = { n: 1, name: "abc" }; }
            expect status == 200;
            expect body == { n: 14, label: "n=abc", size: 3, tagged: true, path: "/work" };
        }
    }
}

graphc_macros::graph! {
    graph handlers_macro {
        topology = flow;
        engine = async;
        step echo = fn ::graphc_tests::handlers::echo { respond; }
    }
}

#[test]
fn a_graph_written_inline_runs_its_test_blocks() {
    let server = chain_macro::mock(&Options::default()).unwrap();
    let outcomes = graphc_runtime::generated::run_tests(&server, &chain_macro::tests());
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes.iter().all(|o| o.failure.is_none()), "{outcomes:?}");
    assert_eq!(chain_macro::ENGINE, "sync");
}

#[test]
fn inline_graphs_call_user_handlers_by_path() {
    let server = handlers_macro::mock(&Options::default()).unwrap();
    assert_eq!(server.test("/", json!({ "a": 1 })).json_body(), json!({ "echoed": { "a": 1 } }));
}

#[test]
fn build_rs_and_the_macro_answer_identically() {
    let from_file =
        graphc_tests::run::chain::mock(&Options::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/run")))
            .unwrap();
    let from_macro = chain_macro::mock(&Options::default()).unwrap();
    let requests = [
        ("/", json!({ "n": 1, "name": "abc" })),
        ("/x/y", json!({ "n": 41, "name": "" })),
        ("/", json!({ "n": -3, "name": "dropped" })),
        ("/", json!({ "n": "not a number", "name": "x" })),
        ("/", json!(null)),
    ];
    for (path, body) in requests {
        let a = from_file.request("POST", path).event_id("same").json(&body).send();
        let b = from_macro.request("POST", path).event_id("same").json(&body).send();
        assert_eq!((a.status, a.json_body()), (b.status, b.json_body()), "{path} {body}");
    }
}

#[test]
fn macro_errors_are_compile_errors_at_the_users_tokens() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
