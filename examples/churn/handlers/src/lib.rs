//! A model of one's own, served by a graph: a logistic churn scorer whose weights are a JSON
//! file, as MLRun's V2ModelServer subclasses are (load, preprocess, predict, explain, and an
//! operation of its own).

use graphc_runtime::StepError;
use graphc_runtime::model::{Features, LoadModel, Model, TensorSpec};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::path::Path;

/// The model file: a weight per named feature, and a bias.
#[derive(Deserialize)]
struct Weights {
    features: Vec<String>,
    weights: Vec<f64>,
    bias: f64,
}

/// Scores the probability that a customer leaves; answers 1 (leaves) above the threshold.
pub struct Churn {
    weights: Weights,
    threshold: f64,
}

/// The route's arguments: `model(new churn_handlers::Churn(threshold = 0.5), ...)`.
#[derive(Deserialize)]
pub struct ChurnArgs {
    /// The probability above which a customer is said to leave.
    pub threshold: f64,
}

impl LoadModel for Churn {
    type Args = ChurnArgs;

    fn load(model_path: Option<&Path>, args: ChurnArgs) -> Result<Self, graphc_runtime::model::BoxError> {
        let path = model_path.ok_or("the churn model reads its weights from model_path")?;
        let text = std::fs::read_to_string(path)?;
        let weights: Weights = serde_json::from_str(&text).map_err(|error| format!("not a weights file: {error}"))?;
        if weights.weights.len() != weights.features.len() {
            return Err(format!("{} weights for {} features", weights.weights.len(), weights.features.len()).into());
        }
        if !(0.0..=1.0).contains(&args.threshold) {
            return Err(format!("the threshold is a probability, not {}", args.threshold).into());
        }
        Ok(Churn { weights, threshold: args.threshold })
    }
}

impl Churn {
    fn probability(&self, row: &[f64]) -> f64 {
        let z: f64 = self.weights.bias + row.iter().zip(&self.weights.weights).map(|(x, w)| x * w).sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }
}

impl Model for Churn {
    /// Takes customers as records too: `{"customers": [{"tenure_years": 1, ...}]}`.
    fn preprocess(&self, mut body: Value) -> Result<Value, StepError> {
        let Some(customers) = body.get("customers").and_then(Value::as_array) else { return Ok(body) };
        let rows = customers
            .iter()
            .map(|customer| {
                self.weights
                    .features
                    .iter()
                    .map(|feature| {
                        customer
                            .get(feature)
                            .and_then(Value::as_f64)
                            .ok_or_else(|| StepError::invalid_input(format!("a customer has no number `{feature}`")))
                    })
                    .collect::<Result<Vec<f64>, StepError>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        body["inputs"] = json!(rows);
        Ok(body)
    }

    fn predict(&self, features: Features) -> Result<Vec<Value>, StepError> {
        self.predict_with(features, &Map::new())
    }

    /// A request may move the threshold: `"parameters": {"threshold": 0.8}`.
    fn predict_with(&self, features: Features, parameters: &Map<String, Value>) -> Result<Vec<Value>, StepError> {
        let threshold = match parameters.get("threshold") {
            None => self.threshold,
            Some(value) => value
                .as_f64()
                .filter(|t| (0.0..=1.0).contains(t))
                .ok_or_else(|| StepError::invalid_input("the `threshold` parameter is a probability"))?,
        };
        Ok((0..features.rows).map(|i| Value::from(u8::from(self.probability(features.row(i)) > threshold))).collect())
    }

    /// Each feature's share of the score, per row.
    fn explain(&self, features: &Features) -> Result<Value, StepError> {
        let rows: Vec<Value> = (0..features.rows)
            .map(|i| {
                let contributions: Map<String, Value> = self
                    .weights
                    .features
                    .iter()
                    .zip(features.row(i).iter().zip(&self.weights.weights))
                    .map(|(name, (x, w))| (name.clone(), json!(x * w)))
                    .collect();
                json!({ "probability": self.probability(features.row(i)), "contributions": contributions })
            })
            .collect();
        Ok(Value::Array(rows))
    }

    /// `POST /v2/models/churn/importance`: the weights by feature, largest first.
    fn operation(&self, operation: &str, _body: Value) -> Option<Result<Value, StepError>> {
        (operation == "importance").then(|| {
            let mut pairs: Vec<(&String, &f64)> = self.weights.features.iter().zip(&self.weights.weights).collect();
            pairs.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
            Ok(json!(
                pairs
                    .into_iter()
                    .map(|(name, weight)| json!({ "feature": name, "weight": weight }))
                    .collect::<Vec<_>>()
            ))
        })
    }

    fn input_width(&self) -> Option<usize> {
        Some(self.weights.features.len())
    }

    fn inputs(&self) -> Vec<TensorSpec> {
        vec![TensorSpec::new("customers", "FP64", vec![-1, self.weights.features.len() as i64])]
    }

    fn outputs(&self) -> Vec<TensorSpec> {
        vec![TensorSpec::new("churn", "INT64", vec![-1])]
    }
}
