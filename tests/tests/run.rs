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
    for module in ["chain", "paths"] {
        let engines: Vec<&str> = fixtures.iter().filter(|f| f.module.starts_with(module)).map(|f| f.engine).collect();
        assert!(engines.contains(&"sync") && engines.contains(&"async"), "{module}: {engines:?}");
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
            check: |status, _, _| Ok(status == &serde_json::json!(201)),
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
