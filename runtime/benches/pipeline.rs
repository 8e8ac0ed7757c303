//! Runtime speed against hand-written Rust doing the same work, in the same run:
//! a flow of three JSON body steps (sync and tokio executors), and one V2 inference of one iris
//! row through the model router.

use criterion::{Criterion, criterion_group, criterion_main};
use graphc_runtime::model::{Features, Model, ModelKind, SmartcoreModel};
use graphc_runtime::router::{Mode, Route, Router};
use graphc_runtime::*;
use serde_json::{Value, json};
use smartcore::linalg::basic::matrix::DenseMatrix;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

fn add_one(mut body: Value) -> Value {
    body["n"] = json!(body["n"].as_i64().unwrap_or(0) + 1);
    body
}

/// What a hand-written service does for one event: a fresh id, three mutations, the answer
/// serialised.
fn hand_written_flow(body: Value) -> (String, Vec<u8>) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let body = add_one(add_one(add_one(body)));
    (id, serde_json::to_vec(&body).unwrap())
}

/// The id as the caller gets it, and the body: the same work the hand-written versions finish with.
fn answered(response: Response) -> (String, Vec<u8>) {
    (response.header("x-event-id").map(|id| id.into_owned()).unwrap_or_default(), response.body)
}

fn flow(c: &mut Criterion) {
    let input = json!({ "n": 0, "name": "event" });
    let mut group = c.benchmark_group("flow_3_steps");
    group.bench_function("hand_written", |b| b.iter(|| hand_written_flow(black_box(input.clone()))));

    let chain = || {
        StepNode::new("s1", Body(add_one), StepNode::new("s2", Body(add_one), StepNode::new("s3", Body(add_one), End)))
    };
    let sync = SyncPipeline::new(chain(), Context::new("bench"));
    assert_eq!(sync.process(Event::new(input.clone())).json_body()["n"], 3);
    group.bench_function("graphc_sync", |b| b.iter(|| answered(sync.process(Event::new(black_box(input.clone()))))));

    // The same flow with a graph-level error handler, as `on_error = catcher;` generates it:
    // every step keeps what the handler would need, should it fail. Nothing else differs (on
    // the sync executor the end answers, as in the flow above).
    let catcher = || CatchWith(Arc::new(StepNode::new("catcher", Body(|body: Value| body), End).responding()));
    let caught = SyncPipeline::new(
        StepNode::new(
            "s1",
            Body(add_one),
            StepNode::new("s2", Body(add_one), StepNode::new("s3", Body(add_one), End).catching(catcher()))
                .catching(catcher()),
        )
        .catching(catcher()),
        Context::new("bench"),
    );
    assert_eq!(caught.process(Event::new(input.clone())).json_body()["n"], 3);
    group.bench_function("graphc_sync_with_catcher", |b| {
        b.iter(|| answered(caught.process(Event::new(black_box(input.clone())))))
    });

    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let chain = StepNode::new(
        "s1",
        Body(add_one),
        StepNode::new("s2", Body(add_one), StepNode::new("s3", Body(add_one), End).responding()),
    );
    let asynchronous = AsyncPipeline::new(chain, Context::new("bench"), true);
    assert_eq!(runtime.block_on(asynchronous.process(Event::new(input.clone()))).json_body()["n"], 3);
    // A server runs many events on one runtime: time a loop inside it, not a runtime entry per event.
    group.bench_function("graphc_tokio", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let start = std::time::Instant::now();
                for _ in 0..iterations {
                    black_box(answered(asynchronous.process(Event::new(black_box(input.clone()))).await));
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/iris/models/logistic_regression.json")
}

/// A hand-written V2 infer: parse the request, predict, write the loose answer.
fn hand_written_infer(
    model: &smartcore::linear::logistic_regression::LogisticRegression<f64, u32, DenseMatrix<f64>, Vec<u32>>,
    request: &[u8],
) -> Vec<u8> {
    let body: Value = serde_json::from_slice(request).unwrap();
    let rows: Vec<Vec<f64>> = serde_json::from_value(body["inputs"].clone()).unwrap();
    let x = DenseMatrix::new(rows.len(), rows[0].len(), rows.concat(), false).unwrap();
    let outputs = model.predict(&x).unwrap();
    let id = uuid::Uuid::new_v4().simple().to_string();
    serde_json::to_vec(&json!({ "id": id, "model_name": "model1", "outputs": outputs })).unwrap()
}

fn infer(c: &mut Criterion) {
    let request = br#"{"inputs": [[5.1, 3.5, 1.4, 0.2]]}"#.to_vec();
    let mut group = c.benchmark_group("router_infer_1_row");

    let file: SmartcoreModel = serde_json::from_slice(&std::fs::read(model_path()).unwrap()).unwrap();
    let graphc_runtime::model::Estimator::LogisticRegression(raw) = file.estimator else {
        panic!("a logistic regression")
    };
    assert_eq!(serde_json::from_slice::<Value>(&hand_written_infer(&raw, &request)).unwrap()["outputs"], json!([0]));
    group.bench_function("hand_written", |b| b.iter(|| hand_written_infer(&raw, black_box(&request))));

    let model: Arc<dyn Model> =
        Arc::new(SmartcoreModel::load("model1", &model_path(), ModelKind::LogisticRegression).unwrap());
    assert_eq!(model.predict(Features::from_rows(&[vec![5.1, 3.5, 1.4, 0.2]]).unwrap()).unwrap(), vec![json!(0)]);
    let router = Router::new("router", "/v2/models", vec![("model1".into(), Route::Model(model))], Mode::Model);
    let pipeline = SyncPipeline::new(StepNode::new("router", router, End).responding(), Context::new("iris"));
    let send = |body: &[u8]| {
        let request = Request {
            method: "POST".into(),
            path: "/v2/models/model1/infer".into(),
            headers: Vec::new(),
            body: body.to_vec(),
        };
        pipeline.process(request.into_event(usize::MAX).unwrap().event)
    };
    assert_eq!(send(&request).json_body()["outputs"], json!([0]));
    group.bench_function("graphc_sync", |b| b.iter(|| answered(send(black_box(&request)))));
    group.finish();
}

criterion_group!(benches, flow, infer);
criterion_main!(benches);
