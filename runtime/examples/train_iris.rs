//! Trains every smartcore model graphc serves on smartcore's bundled iris data and writes the
//! model files the examples load: `cargo run --release -p graphc-runtime --example train_iris`.

use graphc_runtime::model::{Estimator, SmartcoreModel};
use smartcore::ensemble::random_forest_classifier::{RandomForestClassifier, RandomForestClassifierParameters};
use smartcore::ensemble::random_forest_regressor::{RandomForestRegressor, RandomForestRegressorParameters};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::linear_regression::{LinearRegression, LinearRegressionParameters};
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};
use smartcore::naive_bayes::gaussian::{GaussianNB, GaussianNBParameters};
use smartcore::neighbors::knn_classifier::{KNNClassifier, KNNClassifierParameters};
use smartcore::neighbors::knn_regressor::{KNNRegressor, KNNRegressorParameters};
use smartcore::tree::decision_tree_classifier::{DecisionTreeClassifier, DecisionTreeClassifierParameters};
use smartcore::tree::decision_tree_regressor::{DecisionTreeRegressor, DecisionTreeRegressorParameters};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("examples/iris/models"));
    std::fs::create_dir_all(&out)?;
    let iris = smartcore::dataset::iris::load_dataset();
    let values: Vec<f64> = iris.data.iter().map(|v| f64::from(*v)).collect();
    let x = DenseMatrix::new(iris.num_samples, iris.num_features, values.clone(), false)?;
    let classes: Vec<u32> = iris.target.clone();
    // The regressors predict petal width (the last feature) from the other three.
    let width_x =
        DenseMatrix::new(iris.num_samples, 3, values.chunks(4).flat_map(|row| row[..3].to_vec()).collect(), false)?;
    let width_y: Vec<f64> = values.chunks(4).map(|row| row[3]).collect();

    let forest = RandomForestClassifierParameters::default().with_n_trees(10).with_max_depth(6).with_seed(7);
    let regression_forest = RandomForestRegressorParameters::default().with_n_trees(10).with_max_depth(6).with_seed(7);
    let models = [
        (
            "logistic_regression",
            4,
            Estimator::LogisticRegression(LogisticRegression::fit(
                &x,
                &classes,
                LogisticRegressionParameters::default(),
            )?),
        ),
        (
            "decision_tree_classifier",
            4,
            Estimator::DecisionTreeClassifier(DecisionTreeClassifier::fit(
                &x,
                &classes,
                DecisionTreeClassifierParameters::default().with_max_depth(5),
            )?),
        ),
        (
            "random_forest_classifier",
            4,
            Estimator::RandomForestClassifier(RandomForestClassifier::fit(&x, &classes, forest)?),
        ),
        (
            "knn_classifier",
            4,
            Estimator::KnnClassifier(KNNClassifier::fit(&x, &classes, KNNClassifierParameters::default().with_k(5))?),
        ),
        ("gaussian_nb", 4, Estimator::GaussianNb(GaussianNB::fit(&x, &classes, GaussianNBParameters::default())?)),
        (
            "linear_regression",
            3,
            Estimator::LinearRegression(LinearRegression::fit(
                &width_x,
                &width_y,
                LinearRegressionParameters::default(),
            )?),
        ),
        (
            "decision_tree_regressor",
            3,
            Estimator::DecisionTreeRegressor(DecisionTreeRegressor::fit(
                &width_x,
                &width_y,
                DecisionTreeRegressorParameters::default().with_max_depth(5),
            )?),
        ),
        (
            "random_forest_regressor",
            3,
            Estimator::RandomForestRegressor(RandomForestRegressor::fit(&width_x, &width_y, regression_forest)?),
        ),
        (
            "knn_regressor",
            3,
            Estimator::KnnRegressor(KNNRegressor::fit(
                &width_x,
                &width_y,
                KNNRegressorParameters::default().with_k(5),
            )?),
        ),
    ];
    for (name, features, estimator) in models {
        let path = out.join(format!("{name}.json"));
        SmartcoreModel { features, estimator }.save(&path)?;
        println!("wrote {} ({} bytes)", path.display(), std::fs::metadata(&path)?.len());
    }
    Ok(())
}
