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
    /// For a 405: the methods allowed, sent as the `Allow` header.
    pub allow: Option<&'static str>,
}

impl StepError {
    /// A failure of the step itself: 500.
    pub fn new(message: impl Into<String>) -> Self {
        StepError { status: 500, kind: "step", message: message.into(), allow: None }
    }

    /// Malformed input: 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        StepError { status: 400, kind: "bad_request", message: message.into(), allow: None }
    }

    /// Unknown route or model: 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        StepError { status: 404, kind: "not_found", message: message.into(), allow: None }
    }

    /// A request body over the server's limit: 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        StepError { status: 413, kind: "too_large", message: message.into(), allow: None }
    }

    /// Wrong method: 405, with the methods `allow`ed (`"POST"`, `"GET, HEAD"`).
    pub fn method_not_allowed(message: impl Into<String>, allow: &'static str) -> Self {
        StepError { status: 405, kind: "method_not_allowed", message: message.into(), allow: Some(allow) }
    }

    /// A service the step needs is unavailable: 503 (the caller may retry).
    pub fn unavailable(message: impl Into<String>) -> Self {
        StepError { status: 503, kind: "unavailable", message: message.into(), allow: None }
    }

    /// What the caller of a failed request is told. A 4xx is about the caller's own request and
    /// says what was wrong; a 5xx says which step failed and where to look, and its cause (a
    /// panic's text, an upstream's body, a broker's error) goes only to the log, under the same
    /// event id, unless `expose` (for development). Credentials in URLs never show.
    pub fn public_message(&self, step: &str, expose: bool) -> String {
        if self.status < 500 || expose {
            return redact_credentials(&self.message).into_owned();
        }
        match self.kind {
            "remote" => format!("the upstream behind step `{step}` failed; the cause is logged under this id"),
            "timeout" => format!("step `{step}` ran past its deadline"),
            "unavailable" => format!("a service step `{step}` needs is unavailable; retry later"),
            _ => format!("step `{step}` failed; the cause is logged under this id"),
        }
    }

    /// Model input that fails validation: 422.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        StepError { status: 422, kind: "validation", message: message.into(), allow: None }
    }

    /// A remote step's non-2xx answer: 502.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        StepError { status: 502, kind: "remote", message: message.into(), allow: None }
    }

    /// A deadline passed: 504.
    pub fn timeout(message: impl Into<String>) -> Self {
        StepError { status: 504, kind: "timeout", message: message.into(), allow: None }
    }

    /// An event that arrived after its deadline (a stream record written with one): 504, kind
    /// `deadline`; it is recorded in the error stream and not run.
    pub fn deadline_passed(message: impl Into<String>) -> Self {
        StepError { status: 504, kind: "deadline", message: message.into(), allow: None }
    }

    /// A step panicked: 500, and the process keeps serving.
    pub fn panicked(payload: &(dyn std::any::Any + Send)) -> Self {
        let text = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a step panicked".to_string());
        StepError { status: 500, kind: "panic", message: format!("step panicked: {text}"), allow: None }
    }
}

/// `text` with the password of every URL in it (`redis://:secret@host`, `https://user:pw@h/`)
/// replaced by `***`: what a log line, an error body or an error-stream record may show.
pub fn redact_credentials(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let authority_start = scheme_end + 3;
        out.push_str(&rest[..authority_start]);
        rest = &rest[authority_start..];
        let authority_end = rest
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '`' || c == '"' || c == '\'')
            .unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _password)) => out.push_str(&format!("{user}:***")),
                    None => out.push_str("***"),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &rest[authority_end..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
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
    /// What kind of failure (the error's `kind`: `invalid_input`, `deadline`, `panic`, ...).
    pub kind: &'static str,
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
            message: redact_credentials(&error.message).into_owned(),
            kind: error.kind,
            time: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
        }
    }

    /// The record in semantics.md's format, with the failure's kind:
    /// `{"function", "source", "event": {"id", "body"}, "message", "kind", "time"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "function": self.function,
            "source": self.source,
            "event": { "id": self.event_id, "body": self.body },
            "message": self.message,
            "kind": self.kind,
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
