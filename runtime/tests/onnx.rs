//! ONNX models run by tract against onnxruntime's answers: the example's models (scikit-learn,
//! XGBoost and a hand-written network, made by examples/onnx/make_models.py with onnxruntime's
//! answers beside them) predict every iris row as onnxruntime did, one row at a time and all at
//! once; their signature is the file's; requests that do not fit it are refused by name.

use graphc_runtime::model::{Features, LoadModel, Model, OnnxModel};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/onnx/models")
}

fn reference() -> Value {
    serde_json::from_slice(&std::fs::read(models().join("reference.json")).unwrap()).unwrap()
}

fn load(name: &str) -> OnnxModel {
    OnnxModel::load(Some(&models().join(format!("{name}.onnx"))), serde_json::Map::new())
        .unwrap_or_else(|error| panic!("{name}: {error}"))
}

const MODELS: [&str; 5] = ["logistic", "forest", "boosting", "xgboost", "mlp"];

fn assert_same(name: &str, row: usize, answer: &Value, expected: &Value) {
    let label = expected["label"][row].as_i64().unwrap();
    let probabilities: Vec<f64> =
        expected["probabilities"][row].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect();
    let (got_label, got_probabilities) = match answer {
        Value::Object(fields) => {
            let mut values = fields.values();
            (values.next().unwrap().clone(), values.next().unwrap().clone())
        }
        other => panic!("{name} row {row}: {other}"),
    };
    assert_eq!(got_label.as_i64(), Some(label), "{name} row {row}: {answer}");
    let got: Vec<f64> = got_probabilities.as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect();
    assert_eq!(got.len(), probabilities.len(), "{name} row {row}");
    for (g, e) in got.iter().zip(&probabilities) {
        assert!((g - e).abs() <= 1e-5, "{name} row {row}: {got:?} against onnxruntime's {probabilities:?}");
    }
}

#[test]
fn every_model_answers_every_row_as_onnxruntime_does() {
    let reference = reference();
    let rows: Vec<Vec<f64>> = serde_json::from_value(reference["rows"].clone()).unwrap();
    for name in MODELS {
        let model = load(name);
        let expected = &reference["models"][name];
        let all = model.predict(Features::from_rows(&rows).unwrap()).unwrap();
        assert_eq!(all.len(), rows.len());
        for (row, answer) in all.iter().enumerate() {
            assert_same(name, row, answer, expected);
        }
        for (row, values) in rows.iter().enumerate().step_by(7) {
            let one = model.predict(Features::from_rows(std::slice::from_ref(values)).unwrap()).unwrap();
            assert_same(name, row, &one[0], expected);
        }
    }
}

#[test]
fn the_signature_is_the_files() {
    let model = load("logistic");
    let inputs = serde_json::to_value(model.inputs()).unwrap();
    assert_eq!(inputs, json!([{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]));
    let outputs = serde_json::to_value(model.outputs()).unwrap();
    assert_eq!(
        outputs,
        json!([
            {"name": "output_label", "datatype": "INT64", "shape": [-1]},
            {"name": "output_probability", "datatype": "FP32", "shape": [-1, 3]},
        ]),
        "ZipMap's probabilities are served as the tensor it wraps"
    );
    assert_eq!(model.input_width(), Some(4));
}

type Server = graphc_runtime::MockServer<
    graphc_runtime::SyncPipeline<graphc_runtime::StepNode<graphc_runtime::router::Router, graphc_runtime::End>>,
>;

/// An ONNX route behind a model router, as a generated pipeline serves it.
fn served(name: &str) -> Server {
    use graphc_runtime::router::{Mode, Route, Router};
    use graphc_runtime::{Context, End, MockServer, StepNode, SyncPipeline};
    let route = Route::Model(std::sync::Arc::new(load(name)));
    let router = Router::new("router", "/v2/models", vec![(name.to_string(), route)], Mode::Model);
    MockServer::new(SyncPipeline::new(StepNode::new("router", router, End).responding(), Context::new("g")))
}

#[test]
fn a_tensor_request_is_answered_with_a_tensor_per_output() {
    let server = served("forest");
    let rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]];
    let body = json!({"id": "r1", "inputs": [{"name": "features", "shape": [2, 4], "datatype": "FP32", "data": rows}]});
    let answer = server.test("/v2/models/forest/infer", body);
    assert_eq!(answer.status, 200, "{:?}", answer.json_body());
    let answer = answer.json_body();
    assert_eq!(answer["id"], "r1");
    let outputs = answer["outputs"].as_array().unwrap();
    assert_eq!(outputs[0]["name"], "label");
    assert_eq!(outputs[0]["datatype"], "INT64");
    assert_eq!(outputs[0]["shape"], json!([2]));
    assert_eq!(outputs[0]["data"], json!([0, 2]));
    assert_eq!(outputs[1]["name"], "probabilities");
    assert_eq!(outputs[1]["datatype"], "FP32");
    assert_eq!(outputs[1]["shape"], json!([2, 3]));
    assert_eq!(outputs[1]["data"].as_array().unwrap().len(), 6, "flattened, row by row");
}

#[test]
fn requests_that_do_not_fit_the_signature_are_refused_naming_the_input() {
    let server = served("mlp");
    let takes = "this model takes `features` (FP32 [-1, 4])";
    for (body, expected) in [
        (json!({"inputs": [[1.0, 2.0, 3.0]]}), format!("each input row must have 4 values, not 3: {takes}")),
        (
            json!({"inputs": [{"name": "pixels", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}),
            format!("the request has no input `features`; {takes}"),
        ),
        (
            json!({"inputs": [{"name": "features", "shape": [1, 5], "datatype": "FP32", "data": [1, 2, 3, 4, 5]}]}),
            format!("input `features` has shape [1, 5]; {takes}"),
        ),
        (
            json!({"inputs": [
                {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
                {"name": "extra", "shape": [1, 1], "datatype": "FP32", "data": [1]}
            ]}),
            format!("unknown input `extra`; {takes}"),
        ),
        (json!({"inputs": []}), format!("no input rows; {takes}")),
    ] {
        let answer = server.test("/v2/models/mlp/infer", body.clone());
        assert_eq!(answer.status, 422, "{body}");
        assert_eq!(answer.json_body()["error"], expected, "{body}");
    }
    let metadata = server.request("GET", "/v2/models/mlp").send().json_body();
    assert_eq!(metadata["inputs"], json!([{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]));
}

/// A model of one `Identity` from `x` (`[rows, 2]` floats) to `y`, declared as `output`.
/// A float tensor's declaration, of `shape` (none: undeclared).
fn float_tensor(name: &str, shape: Option<tract_onnx::pb::TensorShapeProto>) -> tract_onnx::pb::ValueInfoProto {
    use tract_onnx::pb;
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape,
            })),
        }),
        doc_string: String::new(),
    }
}

fn identity_file(output: tract_onnx::pb::ValueInfoProto) -> Vec<u8> {
    use prost::Message;
    use tract_onnx::pb;
    let dim = |value| pb::tensor_shape_proto::Dimension { denotation: String::new(), value: Some(value) };
    let input = float_tensor(
        "x",
        Some(pb::TensorShapeProto {
            dim: vec![
                dim(pb::tensor_shape_proto::dimension::Value::DimParam("N".into())),
                dim(pb::tensor_shape_proto::dimension::Value::DimValue(2)),
            ],
        }),
    );
    let node = pb::NodeProto {
        input: vec!["x".into()],
        output: vec!["y".into()],
        op_type: "Identity".into(),
        ..Default::default()
    };
    let graph = pb::GraphProto { node: vec![node], input: vec![input], output: vec![output], ..Default::default() };
    let opset = pb::OperatorSetIdProto { domain: String::new(), version: 17 };
    pb::ModelProto { ir_version: 8, graph: Some(graph), opset_import: vec![opset], ..Default::default() }
        .encode_to_vec()
}

#[test]
fn an_output_declared_without_fixed_dimensions_is_read_from_each_answer() {
    // No shape at all: `graphc check` takes it, and so does the runtime, reading the rows from
    // what the model answers.
    let no_shape = float_tensor("y", None);
    let model = OnnxModel::from_bytes(&identity_file(no_shape)).expect("loads");
    assert_eq!(
        serde_json::to_value(model.outputs()).unwrap(),
        json!([{"name": "y", "datatype": "FP32", "shape": [-1]}])
    );
    let answer = model.predict(Features::from_rows(&[vec![1.0, 2.0], vec![3.0, 4.0]]).unwrap()).unwrap();
    assert_eq!(answer, vec![json!([1.0, 2.0]), json!([3.0, 4.0])]);
}

#[test]
fn tree_ensembles_are_evaluated_by_graphc_as_tract_evaluates_them() {
    let rows: Vec<Vec<f64>> = serde_json::from_value(reference()["rows"].clone()).unwrap();
    for name in MODELS {
        let bytes = std::fs::read(models().join(format!("{name}.onnx"))).unwrap();
        let native = OnnxModel::from_bytes(&bytes).unwrap();
        let tract = OnnxModel::from_bytes_with_tract_only(&bytes).unwrap();
        let trees = matches!(name, "forest" | "boosting" | "xgboost");
        assert_eq!(native.is_evaluated_natively(), trees, "{name}");
        assert!(!tract.is_evaluated_natively());
        let ours = native.predict(Features::from_rows(&rows).unwrap()).unwrap();
        let theirs = tract.predict(Features::from_rows(&rows).unwrap()).unwrap();
        for (row, (ours, theirs)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(
                ours.as_object().map(|o| o.keys().collect::<Vec<_>>()),
                theirs.as_object().map(|o| o.keys().collect())
            );
            let (ours, theirs) = (ours.as_object().unwrap(), theirs.as_object().unwrap());
            let mut fields = ours.values().zip(theirs.values());
            let (label, tract_label) = fields.next().unwrap();
            assert_eq!(label, tract_label, "{name} row {row}");
            let (scores, tract_scores) = fields.next().unwrap();
            for (a, b) in scores.as_array().unwrap().iter().zip(tract_scores.as_array().unwrap()) {
                assert!(
                    (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= 1e-6,
                    "{name} row {row}: {scores} vs {tract_scores}"
                );
            }
        }
    }
}
