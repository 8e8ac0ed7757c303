//! Models: the hooks a served model has, and (with the `models` feature) smartcore classifiers
//! and regressors loaded from a file at start-up.

use crate::error::StepError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Rows of features, row-major: what a model predicts on.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    /// The values, row after row.
    pub values: Vec<f64>,
    /// Rows.
    pub rows: usize,
    /// Values per row.
    pub columns: usize,
}

impl Features {
    /// One row after another; every row must have the same length.
    pub fn from_rows(rows: &[Vec<f64>]) -> Result<Self, StepError> {
        let columns = rows.first().map_or(0, Vec::len);
        if let Some((index, row)) = rows.iter().enumerate().find(|(_, row)| row.len() != columns) {
            return Err(StepError::invalid_input(format!(
                "row {index} has {} values, but row 0 has {columns}",
                row.len()
            )));
        }
        Ok(Features { values: rows.concat(), rows: rows.len(), columns })
    }

    /// The row at `index`.
    pub fn row(&self, index: usize) -> &[f64] {
        self.values.get(index * self.columns..(index + 1) * self.columns).unwrap_or(&[])
    }
}

/// A served model: MLRun's V2 model server hooks. Only `predict` is required.
pub trait Model: Send + Sync + 'static {
    /// Adjusts the request body before its inputs are read.
    fn preprocess(&self, body: Value) -> Result<Value, StepError> {
        Ok(body)
    }

    /// Checks the inputs; a failure is answered `422`.
    fn validate(&self, features: &Features) -> Result<(), StepError> {
        if features.rows == 0 {
            return Err(StepError::invalid_input("no input rows"));
        }
        if let Some(expected) = self.input_width()
            && features.columns != expected
        {
            return Err(StepError::invalid_input(format!(
                "each input row must have {expected} values, not {}",
                features.columns
            )));
        }
        Ok(())
    }

    /// One output per input row.
    fn predict(&self, features: Features) -> Result<Vec<Value>, StepError>;

    /// Adjusts the outputs before they are answered.
    fn postprocess(&self, outputs: Vec<Value>) -> Result<Vec<Value>, StepError> {
        Ok(outputs)
    }

    /// Explains a prediction; models that cannot are answered `405`.
    fn explain(&self, _features: &Features) -> Result<Value, StepError> {
        Err(StepError::method_not_allowed("this model does not explain its predictions", ""))
    }

    /// Values per input row, when the model knows.
    fn input_width(&self) -> Option<usize> {
        None
    }

    /// True for regressors (outputs are numbers to average), false for classifiers (classes).
    fn is_regressor(&self) -> bool {
        false
    }

    /// The OIP datatype of the outputs.
    fn output_datatype(&self) -> &'static str {
        if self.is_regressor() { "FP64" } else { "INT64" }
    }
}

/// The smartcore estimators graphc serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Logistic regression (classifier).
    LogisticRegression,
    /// Decision tree classifier.
    DecisionTreeClassifier,
    /// Random forest classifier.
    RandomForestClassifier,
    /// k-nearest neighbours classifier (Euclidean distance).
    KnnClassifier,
    /// Gaussian naive Bayes (classifier).
    GaussianNb,
    /// Ordinary least squares.
    LinearRegression,
    /// Decision tree regressor.
    DecisionTreeRegressor,
    /// Random forest regressor.
    RandomForestRegressor,
    /// k-nearest neighbours regressor (Euclidean distance).
    KnnRegressor,
}

/// Why a model could not be loaded; start-up stops with it.
#[derive(Debug, thiserror::Error)]
#[error("cannot load model `{route}` from {path}: {reason}")]
pub struct LoadError {
    /// The route that serves the model.
    pub route: String,
    /// The file.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

#[cfg(feature = "models")]
mod smartcore;
#[cfg(feature = "models")]
pub use smartcore::{Estimator, SmartcoreModel};
