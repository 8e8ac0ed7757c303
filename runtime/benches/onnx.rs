//! An ONNX route against tract called by hand, in the same run: each example model (made by
//! examples/onnx/make_models.py) answering a V2 infer of 1 row and of 150 rows through graphc's
//! router (the request's JSON in, the answer's JSON out, as the mock server runs a pipeline),
//! and the same work written by hand over the same tract plan (rows read from the JSON, one
//! tensor, the run, an answer of the label and probabilities as JSON). The result is the ratio
//! graphc / hand-written. onnxruntime's figures for the same files come from
//! examples/onnx/bench_onnxruntime.py (docs/PERFORMANCE.md).

use criterion::{Criterion, criterion_group, criterion_main};
use graphc_runtime::model::{LoadModel, OnnxModel};
use graphc_runtime::router::{Mode, Route, Router};
use graphc_runtime::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tract_onnx::prelude::*;

fn model_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/onnx/models/{name}.onnx"))
}

/// What a hand-written server does: tract's plan for the file, its one input fixed as
/// `[rows, 4]` floats.
fn hand_written_plan(name: &str) -> Arc<TypedSimplePlan> {
    let mut model = tract_onnx::onnx().model_for_path(model_file(name)).expect("the model loads");
    let rows = model.symbols.sym("rows");
    model
        .set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), tvec![TDim::Sym(rows), 4.into()]))
        .expect("an input fact");
    model.into_optimized().and_then(|typed| typed.into_runnable()).expect("tract runs it")
}

/// The hand-written infer: rows from the request's bytes, the run, label and probabilities per
/// row, the answer's bytes (as the mock server reads and writes them for graphc).
fn hand_written_infer(plan: &Arc<TypedSimplePlan>, request: &[u8]) -> Vec<u8> {
    let body: Value = serde_json::from_slice(request).expect("JSON");
    let rows = body["inputs"].as_array().expect("rows");
    let values: Vec<f32> =
        rows.iter().flat_map(|row| row.as_array().expect("a row")).map(|v| v.as_f64().unwrap_or(0.0) as f32).collect();
    let input = Tensor::from_shape(&[rows.len(), 4], &values).expect("a tensor");
    let outputs = plan.run(tvec![input.into()]).expect("a run");
    let labels = outputs[0].cast_to::<i64>().expect("labels");
    let labels = labels.to_plain_array_view::<i64>().expect("a view");
    let probabilities = outputs[1].to_plain_array_view::<f32>().expect("a view");
    let answers: Vec<Value> = (0..rows.len())
        .map(|row| {
            let p: Vec<f64> = (0..3).map(|c| f64::from(probabilities[[row, c]])).collect();
            json!({ "label": labels[row], "probabilities": p })
        })
        .collect();
    serde_json::to_vec(&json!({ "id": "1", "model_name": "m", "outputs": answers })).expect("bytes")
}

type Server = MockServer<SyncPipeline<StepNode<Router, End>>>;

fn graphc_server(name: &str) -> Server {
    let model = OnnxModel::load(Some(&model_file(name)), Default::default()).expect("the model loads");
    let router = Router::new("router", "/v2/models", vec![("m".into(), Route::Model(Arc::new(model)))], Mode::Model);
    MockServer::new(SyncPipeline::new(StepNode::new("router", router, End).responding(), Context::new("g")))
}

fn onnx(c: &mut Criterion) {
    let rows: Vec<Vec<f64>> = {
        let reference: Value = serde_json::from_slice(
            &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/onnx/models/reference.json"))
                .expect("the reference"),
        )
        .expect("JSON");
        serde_json::from_value(reference["rows"].clone()).expect("rows")
    };
    let mut group = c.benchmark_group("onnx");
    // The models without ZipMap: the hand-written baseline runs the file as tract reads it.
    for name in ["forest", "boosting", "xgboost", "mlp"] {
        let server = graphc_server(name);
        let plan = hand_written_plan(name);
        for count in [1usize, 150] {
            let body = json!({ "inputs": rows[..count] });
            assert_eq!(server.test("/v2/models/m/infer", body.clone()).status, 200);
            group.bench_function(format!("{name}_{count}_rows/graphc"), |b| {
                b.iter(|| server.test("/v2/models/m/infer", body.clone()))
            });
            group.bench_function(format!("{name}_{count}_rows/hand_written"), |b| {
                b.iter(|| hand_written_infer(&plan, &serde_json::to_vec(&body).expect("bytes")))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, onnx);
criterion_main!(benches);
