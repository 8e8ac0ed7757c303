//! Step failures, their HTTP status, and the error stream every failure is recorded in.

use crate::event::Event;
use serde_json::{Value, json};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// A step failure. The status is what the caller gets when no handler catches it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    /// The HTTP status for an unhandled failure.
    pub status: u16,
    /// A machine-readable kind.
    pub kind: &'static str,
    /// What went wrong.
    pub message: String,
}

impl StepError {
    /// A failure of the step itself: 500.
    pub fn new(message: impl Into<String>) -> Self {
        StepError { status: 500, kind: "step", message: message.into() }
    }

    /// Malformed input: 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        StepError { status: 400, kind: "bad_request", message: message.into() }
    }

    /// Unknown route or model: 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        StepError { status: 404, kind: "not_found", message: message.into() }
    }

    /// Wrong method: 405.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        StepError { status: 405, kind: "method_not_allowed", message: message.into() }
    }

    /// Model input that fails validation: 422.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        StepError { status: 422, kind: "validation", message: message.into() }
    }

    /// A remote step's non-2xx answer: 502.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        StepError { status: 502, kind: "remote", message: message.into() }
    }

    /// A deadline passed: 504.
    pub fn timeout(message: impl Into<String>) -> Self {
        StepError { status: 504, kind: "timeout", message: message.into() }
    }

    /// A step panicked: 500, and the process keeps serving.
    pub fn panicked(payload: &(dyn std::any::Any + Send)) -> Self {
        let text = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a step panicked".to_string());
        StepError { status: 500, kind: "panic", message: format!("step panicked: {text}") }
    }
}

impl From<serde_json::Error> for StepError {
    fn from(error: serde_json::Error) -> Self {
        StepError::bad_request(error.to_string())
    }
}

/// One failure, as recorded in the error stream.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorRecord {
    /// The function the failure happened in.
    pub function: String,
    /// The step that failed.
    pub source: String,
    /// The event's id.
    pub event_id: String,
    /// The body as it entered the failed step.
    pub body: Value,
    /// The message.
    pub message: String,
    /// When, in seconds since the Unix epoch.
    pub time: f64,
}

impl ErrorRecord {
    /// The record for a failure of `step` on `event`.
    pub fn new(function: &str, step: &str, event: &Event, error: &StepError) -> Self {
        ErrorRecord {
            function: function.to_string(),
            source: step.to_string(),
            event_id: event.id.text(),
            body: event.body.clone(),
            message: error.message.clone(),
            time: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
        }
    }

    /// The record in semantics.md's format:
    /// `{"function", "source", "event": {"id", "body"}, "message", "time"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "function": self.function,
            "source": self.source,
            "event": { "id": self.event_id, "body": self.body },
            "message": self.message,
            "time": self.time,
        })
    }
}

/// Where failures are recorded. Writing must never fail the request, so `append` returns
/// nothing: an implementation logs its own trouble.
pub trait ErrorStream: Send + Sync + 'static {
    /// Records one failure.
    fn append(&self, record: ErrorRecord);
}

/// An in-memory error stream, for tests and the mock server.
#[derive(Default)]
pub struct MemoryErrorStream {
    records: Mutex<Vec<ErrorRecord>>,
}

impl MemoryErrorStream {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every record so far.
    pub fn records(&self) -> Vec<ErrorRecord> {
        self.records.lock().map(|records| records.clone()).unwrap_or_default()
    }
}

impl ErrorStream for MemoryErrorStream {
    fn append(&self, record: ErrorRecord) {
        if let Ok(mut records) = self.records.lock() {
            records.push(record);
        }
    }
}
