//! Models: the contract a served model keeps (`Model`'s hooks, and `LoadModel` to build it from
//! its route at start-up), and (with the `models` feature) smartcore's classifiers and
//! regressors as implementations of it.

use crate::error::StepError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::Path;

/// The name of a model's output when it does not name its own: what infer returns and the
/// metadata lists.
pub const DEFAULT_OUTPUT: &str = "predict";

/// One input or output of a model, as the Open Inference Protocol's metadata lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Its name: an output's is the name infer answers with.
    pub name: String,
    /// An OIP datatype: `FP32`, `INT64`, `BYTES`, ...
    pub datatype: String,
    /// Its shape, `-1` for a size that varies (the rows).
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// A tensor of `datatype` with this shape.
    pub fn new(name: impl Into<String>, datatype: impl Into<String>, shape: Vec<i64>) -> Self {
        TensorSpec { name: name.into(), datatype: datatype.into(), shape }
    }
}

/// A model built by its route at start-up: `route m = model(new my::Model(threshold = 0.5),
/// model_path = "models/m.bin")`. The route's arguments are deserialised into `Args` (a struct
/// deriving `Deserialize`, or `serde_json::Value`), and `model_path`, when the route gives one,
/// is resolved against the graph's folder. A failure stops start-up with the route's name.
///
/// ```
/// use graphc_runtime::model::{Features, LoadModel, Model};
/// use graphc_runtime::StepError;
/// use serde_json::Value;
///
/// /// Answers 1 for a row whose sum passes the threshold.
/// struct Threshold { limit: f64 }
///
/// #[derive(serde::Deserialize)]
/// struct Args { limit: f64 }
///
/// impl Model for Threshold {
///     fn predict(&self, features: Features) -> Result<Vec<Value>, StepError> {
///         Ok((0..features.rows).map(|i| Value::from(u8::from(features.row(i).iter().sum::<f64>() > self.limit))).collect())
///     }
/// }
///
/// impl LoadModel for Threshold {
///     type Args = Args;
///     fn load(_model_path: Option<&std::path::Path>, args: Args) -> Result<Self, graphc_runtime::model::BoxError> {
///         Ok(Threshold { limit: args.limit })
///     }
/// }
/// ```
pub trait LoadModel: Model + Sized {
    /// The route's arguments.
    type Args: DeserializeOwned;

    /// Builds the model, once. `Err` says why (any error: `?` on an I/O or parse error, or a
    /// message: `Err("no offset".into())`), and start-up stops with it, naming the route.
    fn load(model_path: Option<&Path>, args: Self::Args) -> Result<Self, BoxError>;
}

/// Any error a user's hook may return, with its source chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

    /// One output per input row, with the request's `parameters` (the Open Inference Protocol's
    /// object of request-wide settings, empty when the request has none). By default, `predict`.
    fn predict_with(&self, features: Features, parameters: &Map<String, Value>) -> Result<Vec<Value>, StepError> {
        let _ = parameters;
        self.predict(features)
    }

    /// One output per input row, for a caller who waits until `deadline` at most: a model that
    /// can bound its own work may use it. By default, `predict_with`; a route with batching or
    /// instances answers 504 to a request whose deadline passes while it waits for the model.
    fn predict_within(
        &self,
        features: Features,
        parameters: &Map<String, Value>,
        deadline: Option<std::time::Instant>,
    ) -> Result<Vec<Value>, StepError> {
        let _ = deadline;
        self.predict_with(features, parameters)
    }

    /// A custom operation, MLRun's `op_<name>`: `POST /v2/models/{model}/{operation}` (or GET,
    /// with a null body) runs it with the request's body and answers what it returns. `None`:
    /// the model has no such operation (404).
    fn operation(&self, operation: &str, body: Value) -> Option<Result<Value, StepError>> {
        let _ = (operation, body);
        None
    }

    /// The inputs, for the metadata endpoint. By default one FP32 tensor `inputs` of
    /// `[-1, input_width]`.
    fn inputs(&self) -> Vec<TensorSpec> {
        let width = self.input_width().map_or(-1, |w| i64::try_from(w).unwrap_or(-1));
        vec![TensorSpec::new("inputs", "FP32", vec![-1, width])]
    }

    /// The outputs, for the metadata endpoint; the first one's name is the name infer answers
    /// with. By default one tensor `predict` of `[-1]` in `output_datatype`.
    fn outputs(&self) -> Vec<TensorSpec> {
        vec![TensorSpec::new(DEFAULT_OUTPUT, self.output_datatype(), vec![-1])]
    }

    /// Adjusts the outputs before they are answered.
    fn postprocess(&self, outputs: Vec<Value>) -> Result<Vec<Value>, StepError> {
        Ok(outputs)
    }

    /// Explains a prediction; models that cannot are answered `404`: the model has no
    /// explainer, whatever the method (a `405` would have to name methods that work).
    fn explain(&self, _features: &Features) -> Result<Value, StepError> {
        Err(StepError::not_found("this model does not explain its predictions"))
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

mod batching;
pub use batching::{Batched, Schedule};

#[cfg(feature = "models")]
mod smartcore;
#[cfg(feature = "models")]
pub use smartcore::{Estimator, SmartcoreArgs, SmartcoreModel};

#[cfg(feature = "onnx")]
mod onnx;
#[cfg(feature = "onnx")]
mod trees;
#[cfg(feature = "onnx")]
pub use onnx::OnnxModel;
