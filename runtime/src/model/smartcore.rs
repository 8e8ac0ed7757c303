//! smartcore estimators as served models (the `models` feature): the model file format, loading
//! it at start-up, and predicting and explaining through the [`Model`] hooks.

use super::{Features, LoadError, LoadModel, Model, ModelKind};
use crate::error::StepError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use smartcore::ensemble::random_forest_classifier::RandomForestClassifier;
use smartcore::ensemble::random_forest_regressor::RandomForestRegressor;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::linear_regression::LinearRegression;
use smartcore::linear::logistic_regression::LogisticRegression;
use smartcore::metrics::distance::euclidian::Euclidian;
use smartcore::naive_bayes::gaussian::GaussianNB;
use smartcore::neighbors::knn_classifier::KNNClassifier;
use smartcore::neighbors::knn_regressor::KNNRegressor;
use smartcore::tree::decision_tree_classifier::DecisionTreeClassifier;
use smartcore::tree::decision_tree_regressor::DecisionTreeRegressor;
use std::path::Path;

type X = DenseMatrix<f64>;
type Classes = Vec<u32>;
type Targets = Vec<f64>;

/// A fitted smartcore estimator.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", content = "estimator", rename_all = "snake_case")]
#[allow(missing_docs, reason = "each variant is the estimator its ModelKind names")]
pub enum Estimator {
    LogisticRegression(LogisticRegression<f64, u32, X, Classes>),
    DecisionTreeClassifier(DecisionTreeClassifier<f64, u32, X, Classes>),
    RandomForestClassifier(RandomForestClassifier<f64, u32, X, Classes>),
    KnnClassifier(KNNClassifier<f64, u32, X, Classes, Euclidian<f64>>),
    GaussianNb(GaussianNB<f64, u32, X, Classes>),
    LinearRegression(LinearRegression<f64, f64, X, Targets>),
    DecisionTreeRegressor(DecisionTreeRegressor<f64, f64, X, Targets>),
    RandomForestRegressor(RandomForestRegressor<f64, f64, X, Targets>),
    KnnRegressor(KNNRegressor<f64, f64, X, Targets, Euclidian<f64>>),
}

impl Estimator {
    /// Which estimator this is.
    pub fn kind(&self) -> ModelKind {
        match self {
            Estimator::LogisticRegression(_) => ModelKind::LogisticRegression,
            Estimator::DecisionTreeClassifier(_) => ModelKind::DecisionTreeClassifier,
            Estimator::RandomForestClassifier(_) => ModelKind::RandomForestClassifier,
            Estimator::KnnClassifier(_) => ModelKind::KnnClassifier,
            Estimator::GaussianNb(_) => ModelKind::GaussianNb,
            Estimator::LinearRegression(_) => ModelKind::LinearRegression,
            Estimator::DecisionTreeRegressor(_) => ModelKind::DecisionTreeRegressor,
            Estimator::RandomForestRegressor(_) => ModelKind::RandomForestRegressor,
            Estimator::KnnRegressor(_) => ModelKind::KnnRegressor,
        }
    }
}

/// A model file: the estimator with what serving needs to know about it.
#[derive(Serialize, Deserialize)]
pub struct SmartcoreModel {
    /// Values per input row.
    pub features: usize,
    /// The fitted estimator.
    #[serde(flatten)]
    pub estimator: Estimator,
}

impl SmartcoreModel {
    /// Loads a model file written by [`SmartcoreModel::save`], and checks that it holds the
    /// kind of estimator the graph declares.
    pub fn load(route: &str, path: &Path, kind: ModelKind) -> Result<Self, LoadError> {
        let fail = |reason: String| LoadError { route: route.to_string(), path: path.display().to_string(), reason };
        let bytes = std::fs::read(path).map_err(|error| fail(error.to_string()))?;
        let model: SmartcoreModel =
            serde_json::from_slice(&bytes).map_err(|error| fail(format!("not a graphc model file: {error}")))?;
        if model.estimator.kind() != kind {
            return Err(fail(format!(
                "the file holds a {:?}, but the graph declares a {kind:?}",
                model.estimator.kind()
            )));
        }
        Ok(model)
    }

    /// Writes the model file.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json)
    }
}

fn matrix(features: Features) -> Result<X, StepError> {
    DenseMatrix::new(features.rows, features.columns, features.values, false)
        .map_err(|error| StepError::invalid_input(format!("inputs do not form a matrix: {error}")))
}

fn failed(error: smartcore::error::Failed) -> StepError {
    StepError::new(format!("prediction failed: {error}"))
}

fn classes(labels: Vec<u32>) -> Vec<Value> {
    labels.into_iter().map(Value::from).collect()
}

fn numbers(values: Vec<f64>) -> Vec<Value> {
    values.into_iter().map(|v| json!(v)).collect()
}

/// A smartcore route's one argument: the estimator the file must hold.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct SmartcoreArgs {
    /// The estimator.
    pub kind: ModelKind,
}

/// smartcore's models keep the same contract as a user's: loaded from `model_path` with their
/// kind as the argument.
impl LoadModel for SmartcoreModel {
    type Args = SmartcoreArgs;

    fn load(model_path: Option<&Path>, args: SmartcoreArgs) -> Result<Self, super::BoxError> {
        let path = model_path.ok_or("a smartcore model needs a model_path")?;
        SmartcoreModel::load("", path, args.kind).map_err(|error| error.reason.into())
    }
}

impl Model for SmartcoreModel {
    fn predict(&self, features: Features) -> Result<Vec<Value>, StepError> {
        let x = matrix(features)?;
        Ok(match &self.estimator {
            Estimator::LogisticRegression(m) => classes(m.predict(&x).map_err(failed)?),
            Estimator::DecisionTreeClassifier(m) => classes(m.predict(&x).map_err(failed)?),
            Estimator::RandomForestClassifier(m) => classes(m.predict(&x).map_err(failed)?),
            Estimator::KnnClassifier(m) => classes(m.predict(&x).map_err(failed)?),
            Estimator::GaussianNb(m) => classes(m.predict(&x).map_err(failed)?),
            Estimator::LinearRegression(m) => numbers(m.predict(&x).map_err(failed)?),
            Estimator::DecisionTreeRegressor(m) => numbers(m.predict(&x).map_err(failed)?),
            Estimator::RandomForestRegressor(m) => numbers(m.predict(&x).map_err(failed)?),
            Estimator::KnnRegressor(m) => numbers(m.predict(&x).map_err(failed)?),
        })
    }

    fn input_width(&self) -> Option<usize> {
        Some(self.features)
    }

    fn is_regressor(&self) -> bool {
        matches!(
            self.estimator,
            Estimator::LinearRegression(_)
                | Estimator::DecisionTreeRegressor(_)
                | Estimator::RandomForestRegressor(_)
                | Estimator::KnnRegressor(_)
        )
    }

    fn explain(&self, features: &Features) -> Result<Value, StepError> {
        // Linear models explain themselves by their coefficients; others say so.
        match &self.estimator {
            Estimator::LogisticRegression(m) => Ok(
                json!({ "coefficients": matrix_rows(m.coefficients()), "intercept": matrix_rows(m.intercept()), "rows": features.rows }),
            ),
            Estimator::LinearRegression(m) => Ok(
                json!({ "coefficients": matrix_rows(m.coefficients()), "intercept": m.intercept(), "rows": features.rows }),
            ),
            _ => Err(StepError::not_found("this model does not explain its predictions")),
        }
    }
}

fn matrix_rows(m: &X) -> Value {
    use smartcore::linalg::basic::arrays::Array;
    let (rows, columns) = m.shape();
    Value::Array((0..rows).map(|r| Value::Array((0..columns).map(|c| json!(*m.get((r, c)))).collect())).collect())
}
