//! Rust handlers the run fixtures call by path, one of each kind a graph can name.

use graphc_runtime::StepError;
use serde::Deserialize;
use serde_json::{Value, json};

pub use fixture_handlers::{Scale, echo, fallback, record_failure, stamp, upper, words};

/// A typed function over the record types the graph declares (generated in its module).
pub fn price(order: crate::run::handlers::Order) -> Result<crate::run::handlers::Priced, StepError> {
    Ok(crate::run::handlers::Priced { id: order.id, total: order.qty as f64 * order.price })
}

/// A typed handler named by a keyword (`fn crate::handlers::async` in a graph), over a record
/// named `type` whose fields are keywords.
pub fn r#async(input: crate::run::r#match::r#type) -> Result<crate::run::r#match::r#type, StepError> {
    Ok(crate::run::r#match::r#type { r#fn: input.r#fn, r#match: input.r#match + 1 })
}

/// A typed handler over records named `f64` and `String`, in a graph named `std`.
pub fn describe_f64(input: crate::run::std::f64) -> Result<crate::run::std::String, StepError> {
    let option = input.Option.map_or_else(|| "none".to_string(), |n| n.to_string());
    Ok(crate::run::std::String { name: format!("{}/{option}", input.usize) })
}

/// A model of the user's for the run fixtures: the sum of each row times a factor, as a number
/// (a regressor), with preprocess, parameters, postprocess and operations of its own.
pub struct Summer {
    factor: f64,
    offset: f64,
}

/// `model(new crate::handlers::Summer(factor = 2.0), model_path = "models/offset.json")`.
#[derive(Deserialize)]
pub struct SummerArgs {
    /// Multiplies each row's sum.
    pub factor: f64,
}

impl graphc_runtime::model::LoadModel for Summer {
    type Args = SummerArgs;

    fn load(model_path: Option<&std::path::Path>, args: SummerArgs) -> Result<Self, graphc_runtime::model::BoxError> {
        // The file, when given, holds an offset added to every output.
        let offset = match model_path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                value.get("offset").and_then(Value::as_f64).ok_or("no `offset` in the file")?
            }
            None => 0.0,
        };
        Ok(Summer { factor: args.factor, offset })
    }
}

impl graphc_runtime::model::Model for Summer {
    /// `{"values": [..]}` is one row.
    fn preprocess(&self, mut body: Value) -> Result<Value, StepError> {
        if let Some(values) = body.get("values").cloned() {
            body["inputs"] = json!([values]);
        }
        Ok(body)
    }

    fn predict(&self, features: graphc_runtime::model::Features) -> Result<Vec<Value>, StepError> {
        Ok((0..features.rows).map(|i| json!(features.row(i).iter().sum::<f64>() * self.factor + self.offset)).collect())
    }

    /// Rounds to whole numbers when asked: `"parameters": {"round": true}`.
    fn predict_with(
        &self,
        features: graphc_runtime::model::Features,
        parameters: &serde_json::Map<String, Value>,
    ) -> Result<Vec<Value>, StepError> {
        let outputs = self.predict(features)?;
        if parameters.get("round") == Some(&Value::Bool(true)) {
            return Ok(outputs.into_iter().map(|v| json!(v.as_f64().unwrap_or_default().round())).collect());
        }
        Ok(outputs)
    }

    /// Negative outputs become 0, so that tests see the hook ran last.
    fn postprocess(&self, outputs: Vec<Value>) -> Result<Vec<Value>, StepError> {
        Ok(outputs.into_iter().map(|v| json!(v.as_f64().unwrap_or_default().max(0.0))).collect())
    }

    fn operation(&self, operation: &str, body: Value) -> Option<Result<Value, StepError>> {
        match operation {
            "factor" => Some(Ok(json!({ "factor": self.factor, "offset": self.offset }))),
            "echo" => Some(Ok(body)),
            _ => None,
        }
    }

    fn is_regressor(&self) -> bool {
        true
    }
}

/// Answers each row with the serial number of its instance: loads are numbered in the order
/// they happen, so two routes that answer alike share one instance.
pub struct Instance {
    serial: usize,
}

/// `model(new crate::handlers::Instance())`: no arguments.
#[derive(Deserialize)]
pub struct InstanceArgs {}

static LOADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl graphc_runtime::model::LoadModel for Instance {
    type Args = InstanceArgs;

    fn load(_: Option<&std::path::Path>, _: InstanceArgs) -> Result<Self, graphc_runtime::model::BoxError> {
        Ok(Instance { serial: LOADS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) })
    }
}

impl graphc_runtime::model::Model for Instance {
    fn predict(&self, features: graphc_runtime::model::Features) -> Result<Vec<Value>, StepError> {
        Ok((0..features.rows).map(|_| json!(self.serial)).collect())
    }
}

/// A typed streaming function over the records of the `streaming` run fixture: one `Letter` per
/// character of a `Word`.
pub fn letters(word: crate::run::streaming::Word) -> impl Iterator<Item = crate::run::streaming::Letter> + Send {
    let chars: Vec<char> = word.text.chars().collect();
    chars
        .into_iter()
        .enumerate()
        .map(|(at, letter)| crate::run::streaming::Letter { letter: letter.to_string(), at: at as i64 })
}

/// A runner's selector written in Rust: the cheap model alone for a small input, both
/// otherwise.
pub fn choose(body: &serde_json::Value) -> Vec<&'static str> {
    let small = body["inputs"][0]
        .as_array()
        .is_some_and(|row| row.iter().filter_map(serde_json::Value::as_f64).sum::<f64>() < 10.0);
    if small { vec!["double"] } else { vec!["double", "triple"] }
}
