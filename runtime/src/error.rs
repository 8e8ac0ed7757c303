//! Step failures, their HTTP status, and the error stream every failure is recorded in.

use crate::event::Event;
use serde_json::{Value, json};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// What kind of failure a [`StepError`] is: the one place that decides its HTTP status, its
/// gRPC code, its name on the wire (`kind` in error answers, records and logs) and whether the
/// same request may succeed if retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A failure of the step itself: 500.
    Step,
    /// A step panicked: 500; the process keeps serving.
    Panic,
    /// Malformed input: 400.
    BadRequest,
    /// No credentials, or credentials the server does not take: 401, with the scheme to use
    /// (`WWW-Authenticate`).
    Unauthenticated,
    /// Credentials that may not do what the request asks: 403.
    Forbidden,
    /// Unknown route or model: 404.
    NotFound,
    /// A method the path does not take: 405, with the methods it takes (the `Allow` header).
    MethodNotAllowed {
        /// The methods allowed, as the `Allow` header lists them (`"GET, HEAD"`).
        allow: &'static str,
    },
    /// A body over the server's limit: 413.
    TooLarge,
    /// A body encoding the server does not read: 415.
    UnsupportedEncoding,
    /// Input that fails validation (a model's, a declared type's): 422.
    Validation,
    /// An upstream's failure (`$remote`): 502.
    Remote,
    /// A service the step needs is unavailable: 503.
    Unavailable,
    /// The request's deadline passed while it ran: 504.
    Timeout,
    /// An event that arrived after its deadline (a stream record written with one): 504; it
    /// is recorded and not run.
    Deadline,
    /// An event went round a loop more times than `max_iterations` lets it: 500, a failure of
    /// the step where it would have gone round once more, which its handler receives.
    MaxIterations,
}

impl ErrorKind {
    /// The HTTP status a caller gets for an unhandled failure of this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::Step | ErrorKind::Panic | ErrorKind::MaxIterations => 500,
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed { .. } => 405,
            ErrorKind::TooLarge => 413,
            ErrorKind::UnsupportedEncoding => 415,
            ErrorKind::Validation => 422,
            ErrorKind::Remote => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout | ErrorKind::Deadline => 504,
        }
    }

    /// The kind's name in error answers, error records and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Step => "step",
            ErrorKind::Panic => "panic",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed { .. } => "method_not_allowed",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::UnsupportedEncoding => "unsupported_encoding",
            ErrorKind::Validation => "validation",
            ErrorKind::Remote => "remote",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Deadline => "deadline",
            ErrorKind::MaxIterations => "max_iterations",
        }
    }

    /// The kind an HTTP status stands for, for an answer that arrives as a status only (the
    /// pipeline's answer to a gRPC call): the kind whose [`ErrorKind::status`] it is, a 408 a
    /// timeout, a 429 unavailable, any other 4xx a bad request and any other 5xx the step's.
    pub fn of_status(status: u16) -> ErrorKind {
        match status {
            401 => ErrorKind::Unauthenticated,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            405 => ErrorKind::MethodNotAllowed { allow: "" },
            413 => ErrorKind::TooLarge,
            415 => ErrorKind::UnsupportedEncoding,
            422 => ErrorKind::Validation,
            502 => ErrorKind::Remote,
            429 | 503 => ErrorKind::Unavailable,
            408 | 504 => ErrorKind::Timeout,
            400..=499 => ErrorKind::BadRequest,
            _ => ErrorKind::Step,
        }
    }

    /// The gRPC status code of an unhandled failure of this kind (as `tonic::Code` numbers
    /// them), as Triton answers.
    pub fn grpc_code(self) -> i32 {
        match self {
            ErrorKind::BadRequest | ErrorKind::UnsupportedEncoding | ErrorKind::Validation => 3, // INVALID_ARGUMENT
            ErrorKind::NotFound => 5,                                                            // NOT_FOUND
            ErrorKind::Unauthenticated => 16,                                                    // UNAUTHENTICATED
            ErrorKind::Forbidden => 7,                                                           // PERMISSION_DENIED
            ErrorKind::MethodNotAllowed { .. } => 12,                                            // UNIMPLEMENTED
            ErrorKind::TooLarge => 8,                                                            // RESOURCE_EXHAUSTED
            ErrorKind::Unavailable => 14,                                                        // UNAVAILABLE
            ErrorKind::Timeout | ErrorKind::Deadline => 4,                                       // DEADLINE_EXCEEDED
            ErrorKind::Step | ErrorKind::Panic | ErrorKind::Remote | ErrorKind::MaxIterations => 13, // INTERNAL
        }
    }

    /// Whether the same request may succeed later: the failure was of something the step
    /// needed, not of the request (a stream consumer leaves such a record pending).
    pub fn retryable(self) -> bool {
        matches!(self, ErrorKind::Unavailable)
    }

    /// A 4xx: the caller's own request was wrong, and the answer says how.
    pub fn is_callers(self) -> bool {
        self.status() < 500
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A step failure: its kind (which decides what the caller gets when no handler catches it),
/// what went wrong, and what caused it, if another error did.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What went wrong, in words.
    pub message: String,
    /// The error that caused it, for the log and for callers of the runtime.
    #[source]
    pub source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl PartialEq for StepError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl StepError {
    /// A failure of this kind.
    pub fn of(kind: ErrorKind, message: impl Into<String>) -> Self {
        StepError { kind, message: message.into(), source: None }
    }

    /// A failure of the step itself: 500.
    pub fn new(message: impl Into<String>) -> Self {
        StepError::of(ErrorKind::Step, message)
    }

    /// A failure caused by another error, whose text is the message: 500.
    pub fn caused_by(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StepError { kind: ErrorKind::Step, message: error.to_string(), source: Some(std::sync::Arc::new(error)) }
    }

    /// The same failure, caused by `source`.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(std::sync::Arc::new(source));
        self
    }

    /// The HTTP status for an unhandled failure.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// For a 405: the methods allowed, sent as the `Allow` header.
    pub fn allow(&self) -> Option<&'static str> {
        match self.kind {
            ErrorKind::MethodNotAllowed { allow } => Some(allow),
            _ => None,
        }
    }

    /// Malformed input: 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        StepError::of(ErrorKind::BadRequest, message)
    }

    /// Unknown route or model: 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        StepError::of(ErrorKind::NotFound, message)
    }

    /// A request body over the server's limit: 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        StepError::of(ErrorKind::TooLarge, message)
    }

    /// Wrong method: 405, with the methods `allow`ed (`"POST"`, `"GET, HEAD"`).
    pub fn method_not_allowed(message: impl Into<String>, allow: &'static str) -> Self {
        StepError::of(ErrorKind::MethodNotAllowed { allow }, message)
    }

    /// No credentials the server takes: 401.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        StepError::of(ErrorKind::Unauthenticated, message)
    }

    /// Credentials that may not do this: 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        StepError::of(ErrorKind::Forbidden, message)
    }

    /// A service the step needs is unavailable: 503 (the caller may retry).
    pub fn unavailable(message: impl Into<String>) -> Self {
        StepError::of(ErrorKind::Unavailable, message)
    }

    /// What the caller of a failed request is told. A 4xx is about the caller's own request and
    /// says what was wrong; a 5xx says which step failed and where to look, and its cause (a
    /// panic's text, an upstream's body, a broker's error) goes only to the log, under the same
    /// event id, unless `expose` (for development). Credentials in URLs never show.
    pub fn public_message(&self, step: &str, expose: bool) -> String {
        if self.kind.is_callers() || expose {
            return redact_credentials(&self.message).into_owned();
        }
        match self.kind {
            ErrorKind::Remote => format!("the upstream behind step `{step}` failed; the cause is logged under this id"),
            ErrorKind::Timeout => format!("step `{step}` ran past its deadline"),
            ErrorKind::Unavailable => format!("a service step `{step}` needs is unavailable; retry later"),
            _ => format!("step `{step}` failed; the cause is logged under this id"),
        }
    }

    /// Model input that fails validation: 422.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        StepError::of(ErrorKind::Validation, message)
    }

    /// A remote step's non-2xx answer: 502.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        StepError::of(ErrorKind::Remote, message)
    }

    /// A deadline passed: 504.
    pub fn timeout(message: impl Into<String>) -> Self {
        StepError::of(ErrorKind::Timeout, message)
    }

    /// An event that arrived after its deadline (a stream record written with one): 504, kind
    /// `deadline`; it is recorded in the error stream and not run.
    pub fn deadline_passed(message: impl Into<String>) -> Self {
        StepError::of(ErrorKind::Deadline, message)
    }

    /// An event went round a loop more often than its cap: 500, kind `max_iterations`.
    pub fn max_iterations(message: impl Into<String>) -> Self {
        StepError::of(ErrorKind::MaxIterations, message)
    }

    /// A step panicked: 500, and the process keeps serving.
    pub fn panicked(payload: &(dyn std::any::Any + Send)) -> Self {
        let text = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a step panicked".to_string());
        StepError::of(ErrorKind::Panic, format!("step panicked: {text}"))
    }
}

/// Why a function of a graph could not start, or stopped: what a generated binary prints and
/// exits with. A Redis URL in it is shown with its password redacted.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The graph could not be built (a model, a trigger, a step's arguments).
    #[error(transparent)]
    Start(#[from] crate::generated::StartError),
    /// A port could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A server failed while serving.
    #[error("the {server} server stopped: {source}")]
    Serve {
        /// Which (`HTTP`, `gRPC`).
        server: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A Redis URL that does not parse, or a client that cannot be made for it.
    #[error("cannot use Redis at `{url}`: {source}")]
    Redis {
        /// The URL, its password redacted.
        url: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A trigger task ended by panicking or being cancelled.
    #[error("a trigger stopped: {0}")]
    TriggerStopped(#[source] tokio::task::JoinError),
    /// The triggers ended while the server still ran, so the process stops for a supervisor to
    /// restart it.
    #[error("the triggers stopped")]
    TriggersEnded,
    /// The binary was asked for something its build left out.
    #[error("this build has no {what}: {how}")]
    NotBuiltIn {
        /// What is missing.
        what: &'static str,
        /// How to build it in.
        how: &'static str,
    },
    /// The graph has no such function.
    #[error("the graph has no function `{function}`; its functions are: {functions}")]
    UnknownFunction {
        /// The function asked for.
        function: String,
        /// The graph's functions, comma-separated.
        functions: String,
    },
}

impl RunError {
    /// A Redis error for `url`, which is redacted.
    #[cfg_attr(not(feature = "streams"), allow(dead_code, reason = "only the Redis client makes these"))]
    pub(crate) fn redis(url: &str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> RunError {
        RunError::Redis { url: redact_credentials(url).into_owned(), source: source.into() }
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
    /// What kind of failure (`validation`, `deadline`, `panic`, ...).
    pub kind: ErrorKind,
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

    /// The record in docs/semantics.md's format (section 4), with the failure's kind:
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

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    #[test]
    fn a_status_read_back_is_a_kind_with_that_status_and_the_same_grpc_code() {
        let kinds = [
            ErrorKind::Step,
            ErrorKind::Panic,
            ErrorKind::BadRequest,
            ErrorKind::NotFound,
            ErrorKind::MethodNotAllowed { allow: "GET" },
            ErrorKind::TooLarge,
            ErrorKind::UnsupportedEncoding,
            ErrorKind::Validation,
            ErrorKind::Remote,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::Deadline,
            ErrorKind::MaxIterations,
        ];
        for kind in kinds {
            let read = ErrorKind::of_status(kind.status());
            assert_eq!((read.status(), read.grpc_code()), (kind.status(), kind.grpc_code()), "{kind}");
        }
    }
}
