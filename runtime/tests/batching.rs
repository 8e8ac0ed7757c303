//! Dynamic batching of a model route: concurrent requests are predicted in few calls, each gets
//! its own outputs and its own error, and a lone request does not wait for company.

use graphc_runtime::model::{Features, Model};
use graphc_runtime::router::{Mode, Route, Router};
use graphc_runtime::*;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// Sums each row; a call takes 20 ms whatever its size; a negative value fails the call.
#[derive(Default)]
struct Counting {
    calls: AtomicUsize,
    widest: AtomicUsize,
}

impl Model for Counting {
    fn predict(&self, features: Features) -> Result<Vec<Value>, StepError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.widest.fetch_max(features.rows, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        if features.values.iter().any(|v| *v < 0.0) {
            return Err(StepError::invalid_input("negative values"));
        }
        Ok((0..features.rows).map(|r| json!(features.row(r).iter().sum::<f64>())).collect())
    }
}

fn server(model: Arc<Counting>, delay: Duration) -> Arc<MockServer<SyncPipeline<StepNode<Router, End>>>> {
    let model: Arc<dyn Model> = model;
    let route = Route::Model(model).batched(16, delay);
    let router = Router::new("router", "/v2/models", vec![("m".into(), route)], Mode::Model);
    Arc::new(MockServer::new(SyncPipeline::new(StepNode::new("router", router, End).responding(), Context::new("g"))))
}

/// Sends one request per value from its own thread, all at once; the answers in order.
fn concurrently(server: &Arc<MockServer<SyncPipeline<StepNode<Router, End>>>>, values: &[f64]) -> Vec<Response> {
    let barrier = Arc::new(Barrier::new(values.len()));
    let threads: Vec<_> = values
        .iter()
        .map(|value| {
            let (server, barrier, value) = (Arc::clone(server), Arc::clone(&barrier), *value);
            std::thread::spawn(move || {
                barrier.wait();
                server.test("/v2/models/m/infer", json!({ "inputs": [[value, 1.0]] }))
            })
        })
        .collect();
    threads.into_iter().map(|thread| thread.join().expect("a request thread")).collect()
}

#[test]
fn concurrent_requests_share_calls_and_keep_their_own_outputs() {
    let model = Arc::new(Counting::default());
    let server = server(Arc::clone(&model), Duration::from_millis(50));
    let values: Vec<f64> = (0..16).map(f64::from).collect();
    let answers = concurrently(&server, &values);
    for (value, answer) in values.iter().zip(&answers) {
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json_body()["outputs"], json!([value + 1.0]), "each request gets its own row's output");
    }
    let calls = model.calls.load(Ordering::SeqCst);
    assert!(calls < 8, "16 concurrent requests took {calls} calls");
    assert!(model.widest.load(Ordering::SeqCst) > 1, "some call predicted several requests");
}

#[test]
fn a_failing_request_fails_alone() {
    let model = Arc::new(Counting::default());
    let server = server(Arc::clone(&model), Duration::from_millis(50));
    let values = [1.0, 2.0, -5.0, 3.0, 4.0, 5.0, 6.0, 7.0];
    let answers = concurrently(&server, &values);
    for (value, answer) in values.iter().zip(&answers) {
        if *value < 0.0 {
            assert_eq!(answer.status, 422, "{:?}", answer.json_body());
        } else {
            assert_eq!(answer.status, 200, "{value}: {:?}", answer.json_body());
            assert_eq!(answer.json_body()["outputs"], json!([value + 1.0]));
        }
    }
}

#[test]
fn a_lone_request_does_not_wait_for_company() {
    let model = Arc::new(Counting::default());
    // A delay far longer than the test may take: a lone request must not wait for it.
    let server = server(Arc::clone(&model), Duration::from_secs(60));
    for value in 0..3 {
        let answer = server.test("/v2/models/m/infer", json!({ "inputs": [[value, 1]] }));
        assert_eq!(answer.json_body()["outputs"], json!([f64::from(value) + 1.0]));
    }
    assert_eq!(model.calls.load(Ordering::SeqCst), 3);
    assert_eq!(model.widest.load(Ordering::SeqCst), 1);
}

#[test]
fn requests_with_parameters_are_not_batched_with_others() {
    let model = Arc::new(Counting::default());
    let server = server(Arc::clone(&model), Duration::from_millis(10));
    let answer = server.test("/v2/models/m/infer", json!({ "inputs": [[1, 1]], "parameters": { "x": 1 } }));
    assert_eq!(answer.json_body()["outputs"], json!([2.0]));
}
