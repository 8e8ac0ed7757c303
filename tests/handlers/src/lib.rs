//! The untyped Rust handlers random graphs and run fixtures name, one of each kind a graph can
//! name: a body function, a fallible one, full-event functions and a type built from arguments.
//! The test crate re-exports them (`crate::handlers::echo`); the CLI's tests give this folder as
//! the handler crate (`fixture_handlers::echo`), so that one graph builds through both doors.

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
    event.body = json!({
        "failed_at": event.origin_state.clone(),
        "error": event.error.as_ref().map(|e| e.message.clone()),
        "kind": event.error.as_ref().map(|e| e.kind.as_str()),
    });
}

/// A step-level error handler's body function.
pub fn fallback(_body: Value) -> Value {
    json!({ "fallback": true, "failed_at": "scale" })
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

/// A streaming function: `{"text"}` as one chunk per word, `{"word", "at"}`, produced one at a
/// time; a word `"fail"` fails the stream there, an empty text before any chunk.
pub fn words(body: Value) -> Box<dyn Iterator<Item = Result<Value, StepError>> + Send> {
    let text = body["text"].as_str().unwrap_or_default().to_string();
    if text.trim().is_empty() {
        return Box::new(std::iter::once(Err(StepError::invalid_input("`text` has no words"))));
    }
    let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    Box::new(words.into_iter().enumerate().map(|(at, word)| match word.as_str() {
        "fail" => Err(StepError::new(format!("word {at} failed"))),
        _ => Ok(json!({ "word": word, "at": at })),
    }))
}
