//! What `graphc check` reads of an ONNX file is what the runtime serves: the checker's table of
//! operators is tract's own register, and each example model's signature as the checker reads it
//! is the metadata the served route answers.

use graphc::onnx::{Dim, Port, Signature};
use graphc_runtime::model::{LoadModel, Model, OnnxModel};
use std::path::Path;

#[test]
fn the_checker_accepts_exactly_the_operators_tract_runs() {
    let table: Vec<String> = graphc::onnx::OPERATORS.iter().map(ToString::to_string).collect();
    assert_eq!(table, OnnxModel::operators());
}

#[test]
fn each_example_models_signature_is_what_its_route_serves() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/onnx/models");
    for name in ["logistic", "forest", "boosting", "xgboost", "mlp"] {
        let path = folder.join(format!("{name}.onnx"));
        let checked = Signature::read(&std::fs::read(&path).unwrap()).unwrap();
        let served = OnnxModel::load(Some(&path), Default::default()).unwrap();
        let as_specs = |values: &[graphc::onnx::Value]| -> Vec<(String, String, Vec<i64>)> {
            values
                .iter()
                .map(|value| {
                    let Port::Tensor { element, shape } = &value.port else { panic!("{name}: {value}") };
                    let dims = shape.iter().flatten().enumerate().map(|(index, dim)| match dim {
                        Dim::Fixed(size) if index > 0 => *size as i64,
                        _ => -1,
                    });
                    (value.name.clone(), element.datatype(), dims.collect())
                })
                .collect()
        };
        let specs = |specs: Vec<graphc_runtime::model::TensorSpec>| -> Vec<(String, String, Vec<i64>)> {
            specs.into_iter().map(|spec| (spec.name, spec.datatype, spec.shape)).collect()
        };
        assert_eq!(as_specs(&checked.inputs), specs(served.inputs()), "{name}: inputs");
        assert_eq!(as_specs(&checked.outputs), specs(served.outputs()), "{name}: outputs");
        assert!(checked.unsupported().is_empty(), "{name}");
    }
}
