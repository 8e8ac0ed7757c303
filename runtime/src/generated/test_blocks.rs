//! A graph's test blocks, run against its pipeline under the mock server, and their report as
//! `graphc test` prints it.

use crate::error::StepError;
use crate::event::Response;
use crate::mock::MockServer;
use crate::pipeline::Handler;
use serde_json::Value;

/// One expectation of a test block: its source text and its check.
pub struct Expectation {
    /// The expression as written.
    pub source: &'static str,
    /// Evaluates it over `status`, `headers`, `body` and `chunks` (a streamed answer's, else
    /// `null`).
    pub check: fn(&Value, &Value, &Value, &Value) -> Result<bool, StepError>,
}

/// A test block.
pub struct TestCase {
    /// Its name.
    pub name: &'static str,
    /// The request method.
    pub method: &'static str,
    /// The request path.
    pub path: &'static str,
    /// Request headers.
    pub headers: Vec<(&'static str, &'static str)>,
    /// The request body.
    pub body: Option<Value>,
    /// The event id to send.
    pub event_id: Option<&'static str>,
    /// What the response must meet.
    pub expects: Vec<Expectation>,
}

/// The outcome of one test block.
#[derive(Debug)]
pub struct TestOutcome {
    /// The test's name.
    pub name: String,
    /// `None` when it passed; else what failed.
    pub failure: Option<String>,
    /// How long it took.
    pub seconds: f64,
}

/// Runs test blocks against a pipeline's mock server.
pub fn run_tests<H: Handler>(server: &MockServer<H>, cases: &[TestCase]) -> Vec<TestOutcome> {
    cases
        .iter()
        .map(|case| {
            let started = std::time::Instant::now();
            let mut request = server.request(case.method, case.path);
            for (name, value) in &case.headers {
                request = request.header(name, value);
            }
            if let Some(id) = case.event_id {
                request = request.event_id(id);
            }
            if let Some(body) = &case.body {
                request = request.json(body);
            }
            let response = request.send();
            let failure = check(&response, &case.expects);
            TestOutcome { name: case.name.to_string(), failure, seconds: started.elapsed().as_secs_f64() }
        })
        .collect()
}

fn check(response: &Response, expects: &[Expectation]) -> Option<String> {
    let status = Value::from(response.status);
    let headers = Value::Object(response.all_headers().into_iter().map(|(k, v)| (k, Value::String(v))).collect());
    let body = response.json_body();
    let chunks = response.chunk_bodies().map_or(Value::Null, Value::Array);
    for expect in expects {
        match (expect.check)(&status, &headers, &body, &chunks) {
            Ok(true) => {}
            Ok(false) => {
                return Some(format!(
                    "expected {}\n    status: {}\n    body: {}",
                    expect.source,
                    response.status,
                    String::from_utf8_lossy(&response.body)
                ));
            }
            Err(error) => return Some(format!("cannot evaluate {}: {error}", expect.source)),
        }
    }
    None
}

/// `N passed, N failed` and one line per test, as `graphc test` prints them.
pub fn report(outcomes: &[TestOutcome]) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        match &outcome.failure {
            None => out.push_str(&format!("test {} ... ok\n", outcome.name)),
            Some(failure) => out.push_str(&format!("test {} ... FAILED\n    {failure}\n", outcome.name)),
        }
    }
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    out.push_str(&format!("{} passed, {failed} failed\n", outcomes.len() - failed));
    out
}
