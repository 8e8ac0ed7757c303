//! The committed iris models: each kind loads from its file and predicts well; a model that
//! cannot load stops start-up with the path and the reason.

use graphc_runtime::model::{Features, Model, ModelKind, SmartcoreModel};
use std::path::PathBuf;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/iris/models").join(format!("{name}.json"))
}

fn iris() -> (Vec<Vec<f64>>, Vec<u32>) {
    let data = smartcore::dataset::iris::load_dataset();
    (data.data.chunks(4).map(|row| row.iter().map(|v| f64::from(*v)).collect()).collect(), data.target)
}

#[test]
fn every_classifier_is_right_on_at_least_90_percent_of_iris() {
    let (rows, truth) = iris();
    let features = Features::from_rows(&rows).unwrap();
    for (name, kind) in [
        ("logistic_regression", ModelKind::LogisticRegression),
        ("decision_tree_classifier", ModelKind::DecisionTreeClassifier),
        ("random_forest_classifier", ModelKind::RandomForestClassifier),
        ("knn_classifier", ModelKind::KnnClassifier),
        ("gaussian_nb", ModelKind::GaussianNb),
    ] {
        let model = SmartcoreModel::load(name, &path(name), kind).unwrap();
        assert!(!model.is_regressor());
        model.validate(&features).unwrap();
        let predictions = model.predict(features.clone()).unwrap();
        let correct = predictions.iter().zip(&truth).filter(|(p, t)| p.as_u64() == Some(u64::from(**t))).count();
        assert!(correct >= 135, "{name}: {correct}/150");
    }
}

#[test]
fn every_regressor_predicts_petal_width_within_a_quarter_centimetre_on_average() {
    let (rows, _) = iris();
    let inputs: Vec<Vec<f64>> = rows.iter().map(|r| r[..3].to_vec()).collect();
    let features = Features::from_rows(&inputs).unwrap();
    for (name, kind) in [
        ("linear_regression", ModelKind::LinearRegression),
        ("decision_tree_regressor", ModelKind::DecisionTreeRegressor),
        ("random_forest_regressor", ModelKind::RandomForestRegressor),
        ("knn_regressor", ModelKind::KnnRegressor),
    ] {
        let model = SmartcoreModel::load(name, &path(name), kind).unwrap();
        assert!(model.is_regressor());
        let predictions = model.predict(features.clone()).unwrap();
        let error: f64 =
            predictions.iter().zip(&rows).map(|(p, r)| (p.as_f64().unwrap() - r[3]).abs()).sum::<f64>() / 150.0;
        assert!(error < 0.25, "{name}: mean absolute error {error}");
    }
}

#[test]
fn a_model_that_cannot_load_says_which_file_and_why() {
    let missing = SmartcoreModel::load("m1", &path("no_such_model"), ModelKind::GaussianNb).err().unwrap();
    assert!(missing.to_string().contains("no_such_model.json"), "{missing}");
    assert!(missing.to_string().contains("m1"), "{missing}");
    let wrong_kind = SmartcoreModel::load("m1", &path("gaussian_nb"), ModelKind::LogisticRegression).err().unwrap();
    assert!(
        wrong_kind.reason.contains("GaussianNb") && wrong_kind.reason.contains("LogisticRegression"),
        "{wrong_kind}"
    );
    let not_a_model = SmartcoreModel::load(
        "m1",
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"),
        ModelKind::GaussianNb,
    )
    .err()
    .unwrap();
    assert!(not_a_model.reason.contains("not a graphc model file"), "{not_a_model}");
}

#[test]
fn linear_models_explain_themselves() {
    let model = SmartcoreModel::load("lr", &path("logistic_regression"), ModelKind::LogisticRegression).unwrap();
    let explained = model.explain(&Features::from_rows(&[vec![5.1, 3.5, 1.4, 0.2]]).unwrap()).unwrap();
    assert!(explained["coefficients"].as_array().is_some_and(|c| !c.is_empty()));
    let tree = SmartcoreModel::load("t", &path("decision_tree_classifier"), ModelKind::DecisionTreeClassifier).unwrap();
    assert_eq!(tree.explain(&Features::from_rows(&[vec![1.0; 4]]).unwrap()).unwrap_err().status(), 404);
}
