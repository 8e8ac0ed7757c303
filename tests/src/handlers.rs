//! Rust handlers the run fixtures call by path, one of each kind a graph can name.

use graphc_runtime::{Context, Event, Flow, Step, StepError};
use serde::Deserialize;
use serde_json::{Value, json};

/// A body function.
pub fn echo(body: Value) -> Value {
    json!({ "echoed": body })
}

/// A fallible body function: upper-cases a string.
pub fn upper(body: Value) -> Result<Value, StepError> {
    body.as_str()
        .map(|s| Value::String(s.to_uppercase()))
        .ok_or_else(|| StepError::new("upper: the input is not a string"))
}

/// A full-event function.
pub fn stamp(event: &mut Event, _context: &Context) {
    event.body = json!({ "id": event.id.to_string(), "path": event.path.to_string() });
}

/// An error handler taking the full event: records what failed.
pub fn record_failure(event: &mut Event, _context: &Context) {
    event.body =
        json!({ "failed_at": event.origin_state.clone(), "error": event.error.as_ref().map(|e| e.message.clone()) });
}

/// A step-level error handler's body function.
pub fn fallback(_body: Value) -> Value {
    json!({ "fallback": true, "failed_at": "scale" })
}

/// A typed function over the record types the graph declares (generated in its module).
pub fn price(order: crate::run::handlers::Order) -> Result<crate::run::handlers::Priced, StepError> {
    Ok(crate::run::handlers::Priced { id: order.id, total: order.qty as f64 * order.price })
}

/// A type built once from the graph's arguments (`new Scale(factor = ..., field = ...)`).
#[derive(Deserialize)]
pub struct Scale {
    factor: f64,
    field: String,
}

impl Step for Scale {
    fn process(&self, event: &mut Event, _context: &Context) -> Result<Flow, StepError> {
        let value = event.body[&self.field]
            .as_f64()
            .ok_or_else(|| StepError::new(format!("`{}` is not a number", self.field)))?;
        if value < 0.0 {
            return Err(StepError::new("negative totals cannot be scaled"));
        }
        event.body[&self.field] = json!(value * self.factor);
        Ok(Flow::Next)
    }
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
