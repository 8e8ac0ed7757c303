//! The run fixtures, compiled by build.rs, on each engine they run on: every test block passes
//! through the generated pipeline's mock server.

use graphc_runtime::Options;
use std::path::PathBuf;

fn options() -> Options {
    Options::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/run"))
}

#[test]
fn every_run_fixture_passes_its_test_blocks() {
    let fixtures = graphc_tests::run::all();
    assert!(fixtures.len() >= 8, "{} compiled fixtures", fixtures.len());
    let mut failures = Vec::new();
    let mut ran = 0;
    for fixture in &fixtures {
        let outcomes = (fixture.run)(&options());
        assert_eq!(outcomes.len(), (fixture.tests)().len());
        ran += outcomes.len();
        for outcome in outcomes {
            if let Some(failure) = outcome.failure {
                failures.push(format!(
                    "{} ({}, {}): {}: {failure}",
                    fixture.module, fixture.file, fixture.engine, outcome.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(ran >= 20, "{ran} test blocks ran");
}

#[test]
fn single_chains_run_on_both_engines() {
    let fixtures = graphc_tests::run::all();
    for module in ["chain", "paths", "catchers", "loops", "evaluator"] {
        let engines: Vec<&str> = fixtures.iter().filter(|f| f.module.starts_with(module)).map(|f| f.engine).collect();
        assert!(engines.contains(&"sync") && engines.contains(&"async"), "{module}: {engines:?}");
    }
}

#[test]
fn graphs_of_any_width_and_depth_build_and_run() {
    // Made by build.rs from tests/src/shapes.rs; each runs its own test blocks above too.
    let fixtures = graphc_tests::run::all();
    for (module, engine) in [
        ("chain_of_1000", "sync"),
        ("chain_of_1000_async", "async"),
        ("wide_choice", "async"),
        ("lattice", "async"),
        ("long_chain", "async"),
    ] {
        let fixture = fixtures.iter().find(|f| f.module == module).unwrap_or_else(|| panic!("{module} is compiled"));
        assert_eq!(fixture.engine, engine);
        let outcomes = (fixture.run)(&options());
        assert!(
            !outcomes.is_empty() && outcomes.iter().all(|o| o.failure.is_none()),
            "{module}: {:?}",
            outcomes.iter().map(|o| &o.failure).collect::<Vec<_>>()
        );
    }
}

#[test]
fn random_graphs_compiled_by_rustc_answer_only_allowed_statuses() {
    let fixtures = graphc_tests::run::all();
    let random: Vec<_> = fixtures.iter().filter(|f| f.module.starts_with("random_")).collect();
    assert!(random.len() >= 50, "{} random graphs compiled", random.len());
    for fixture in random {
        // Each one's test block sends the same body and asserts the status is allowed.
        let outcomes = (fixture.run)(&options());
        assert_eq!(outcomes.len(), 1, "{}", fixture.module);
        assert!(outcomes[0].failure.is_none(), "{} ({}): {:?}", fixture.module, fixture.engine, outcomes[0].failure);
    }
}

#[test]
fn a_failing_expectation_is_reported_with_the_response() {
    use graphc_runtime::generated::{Expectation, TestCase, run_tests};
    let server = graphc_tests::run::chain::mock(&options()).unwrap();
    let case = TestCase {
        name: "wrong",
        method: "POST",
        path: "/",
        headers: vec![],
        body: Some(serde_json::json!({ "n": 1, "name": "a" })),
        event_id: None,
        expects: vec![Expectation {
            source: "status == 201",
            check: |status, _, _, _| Ok(status == &serde_json::json!(201)),
        }],
    };
    let outcome = run_tests(&server, &[case]).remove(0);
    let failure = outcome.failure.expect("fails");
    assert!(failure.contains("status == 201") && failure.contains("status: 200"), "{failure}");
}

#[test]
fn the_seed_flow_catches_failures_with_the_full_event() {
    let server = graphc_tests::run::seed_flow::mock(&options()).unwrap();
    let response = server.test("/v2/models/m1/infer", serde_json::json!({ "rows": [] }));
    assert_eq!(response.status, 202);
    server.wait_for_completion();
}

#[test]
fn a_distributed_graph_runs_whole_in_one_process_and_each_function_alone() {
    use graphc_runtime::stream::MemoryStreams;
    use graphc_tests::run::distributed;
    use serde_json::json;
    assert_eq!(distributed::FUNCTIONS, ["distributed", "enricher", "scorer"]);
    let streams = MemoryStreams::new();
    let options = Options { memory_streams: Some(streams.clone()), ..options() };

    // The whole graph: inner streams are memory queues; the output stream is written.
    let whole = distributed::mock(&options).unwrap();
    let response = whole.request("POST", "/").header("x-event-id", "w1").json(&json!({"n": 1, "text": "hello"})).send();
    assert_eq!(response.status, 202);
    // As when split: the 202 comes once the output stream has the record.
    let out = streams.events("scored");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].id.to_string(), "w1");
    assert_eq!(out[0].body, json!({"n": 1, "text": "hello", "enriched": true, "score": 5}));
    assert_eq!(out[0].key, "hello", "the queue's `key = body.text` set the event key");

    // The root alone: 202 once the record is in its stream, on the shard its key picks.
    let root = graphc_runtime::MockServer::new(distributed::function_distributed(&options).unwrap());
    let response = root.request("POST", "/").header("x-event-id", "r1").json(&json!({"n": 2, "text": "x"})).send();
    assert_eq!((response.status, response.json_body()), (202, json!({"id": "r1"})));
    let sharded: Vec<_> = ["incoming:0", "incoming:1"].iter().flat_map(|s| streams.events(s)).collect();
    assert_eq!(sharded.len(), 1);
    assert_eq!((sharded[0].key.as_str(), &sharded[0].body), ("x", &json!({"n": 2, "text": "x"})));
    // One key, one shard: every event keyed "x" is in the stream the first one went to.
    let first_shard = ["incoming:0", "incoming:1"].into_iter().find(|s| !streams.events(s).is_empty()).unwrap();
    for n in 0..5 {
        root.request("POST", "/").json(&json!({"n": n, "text": "x"})).send();
    }
    assert_eq!(streams.events(first_shard).len(), 6);
    // A key that cannot be computed fails the event at the queue, answered and recorded.
    let keyless = root.request("POST", "/").header("x-event-id", "k0").json(&json!({"n": 9})).send();
    assert_eq!(keyless.status, 422, "{:?}", keyless.json_body());
    assert_eq!(keyless.json_body()["step"], "incoming");

    // A child alone: the event enters where its stream would deliver it.
    let enricher = graphc_runtime::MockServer::new(distributed::function_enricher(&options).unwrap());
    assert_eq!(enricher.request("POST", "/").json(&json!({"n": 3})).send().status, 202);
    assert_eq!(streams.events("enriched").last().map(|e| e.body.clone()), Some(json!({"n": 3, "enriched": true})));

    // A failure in the scorer is answered (the consumer acknowledges it) and recorded in the
    // error stream, with the function and step it happened in.
    let scorer = graphc_runtime::MockServer::new(distributed::function_scorer(&options).unwrap());
    let failed = scorer.request("POST", "/").header("x-event-id", "bad").json(&json!({"n": 4})).send();
    assert_eq!(failed.status, 422, "{:?}", failed.json_body());
    let errors = streams.errors();
    let seen: Vec<(&str, &str, &str)> =
        errors.iter().map(|e| (e.function.as_str(), e.source.as_str(), e.event_id.as_str())).collect();
    assert_eq!(seen, [("distributed", "incoming", "k0"), ("scorer", "score", "bad")]);
}

#[test]
fn routes_that_share_a_model_serve_one_instance() {
    let server = graphc_tests::run::shared_models::mock(&options()).expect("starts");
    let serial = |route: &str| {
        let answer = server.test(&format!("/v2/models/{route}/infer"), serde_json::json!({ "inputs": [[1]] }));
        assert_eq!(answer.status, 200, "{route}: {}", answer.json_body());
        answer.json_body()["outputs"][0].clone()
    };
    assert_eq!(serial("a"), serial("b"), "one instance behind both routes");
    assert_ne!(serial("a"), serial("own"), "a route with its own model loads another");
}
