//! The seed's two examples, composed by hand and driven through the mock server: the router
//! topology serving an iris classifier, and the flow (enrich, then a router, with a catcher).

use graphc_runtime::model::{Model, ModelKind, SmartcoreModel};
use graphc_runtime::router::{Mode, Route, Router};
use graphc_runtime::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

fn model_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/iris/models").join(format!("{name}.json"))
}

fn iris() -> (Vec<Vec<f64>>, Vec<u32>) {
    let data = smartcore::dataset::iris::load_dataset();
    let rows = data.data.chunks(4).map(|row| row.iter().map(|v| f64::from(*v)).collect()).collect();
    (rows, data.target)
}

fn model1() -> Route {
    let model: Arc<dyn Model> = Arc::new(
        SmartcoreModel::load("model1", &model_path("logistic_regression"), ModelKind::LogisticRegression)
            .expect("the committed model loads"),
    );
    Route::Model(model)
}

#[test]
fn router_topology_classifies_all_150_iris_rows() {
    let router = Router::new("router", "/v2/models", vec![("model1".into(), model1())], Mode::Model);
    let server =
        MockServer::new(SyncPipeline::new(StepNode::new("router", router, End).responding(), Context::new("iris")));
    let (rows, truth) = iris();
    let response = server.test("/v2/models/model1/infer", json!({ "inputs": rows }));
    assert_eq!(response.status, 200);
    let body = response.json_body();
    assert_eq!(body["model_name"], "model1");
    assert_eq!(body["id"].as_str().map(str::len), Some(32));
    let outputs: Vec<u64> = body["outputs"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(outputs.len(), 150, "a class per row");
    let correct = outputs.iter().zip(&truth).filter(|(p, t)| **p == u64::from(**t)).count();
    assert!(correct >= 143, "at least 95% right: {correct}/150");
}

#[test]
fn flow_enriches_routes_to_m1_and_catches_failures() {
    let seen = Arc::new(Mutex::new(Vec::<Value>::new()));
    let enriched = Arc::new(Mutex::new(Vec::<Value>::new()));
    let caught = Arc::clone(&seen);
    let catcher = StepNode::new(
        "catcher",
        FullEvent(move |event: &mut Event, _: &Context| {
            caught.lock().unwrap().push(
                json!({ "origin_state": event.origin_state.clone(), "error": event.error.as_ref().map(|e| e.kind) }),
            );
        }),
        End,
    );
    let catch = CatchWith(Arc::new(catcher));
    let router = Router::new("router", "/v2/models", vec![("m1".into(), model1())], Mode::Model);
    let record = Arc::clone(&enriched);
    let graph = StepNode::new(
        "enrich",
        Extend(|_: &Event, _: &Context| Ok(json!({ "tag": "something" }))),
        StepNode::new(
            "router",
            router,
            StepNode::new(
                "after",
                Body(move |b: Value| {
                    record.lock().unwrap().push(b.clone());
                    b
                }),
                End,
            ),
        )
        .catching(catch.clone()),
    )
    .catching(catch);
    let server = MockServer::new(AsyncPipeline::new(graph, Context::new("flow"), false));

    let (rows, _) = iris();
    let response = server.test("/v2/models/m1/infer", json!({ "inputs": rows }));
    assert_eq!(response.status, 202, "no responder: the seed's {{'id': ...}}");
    assert_eq!(response.json_body()["id"].as_str().map(str::len), Some(32));
    server.wait_for_completion();
    let results = enriched.lock().unwrap().clone();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["outputs"].as_array().map(Vec::len), Some(150));
    assert!(seen.lock().unwrap().is_empty());

    // A request the model cannot serve goes to the catcher, with the failed step's name.
    server.test("/v2/models/m1/infer", json!({ "rows": [] }));
    server.wait_for_completion();
    assert_eq!(seen.lock().unwrap().clone(), vec![json!({ "origin_state": "router", "error": "validation" })]);
}
