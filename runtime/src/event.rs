//! The event that flows through a graph, and the response a caller gets.

pub use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

/// An event's id: taken from the `x-event-id` header, or a fresh UUID v4 written as 32 lowercase
/// hex characters (MLRun's form). A fresh id is formatted only when someone reads it.
#[derive(Clone, PartialEq, Eq)]
pub enum EventId {
    /// Generated on arrival.
    Fresh(uuid::Uuid),
    /// Given by the caller.
    Given(String),
}

impl EventId {
    /// A new random id.
    #[inline]
    pub fn fresh() -> Self {
        EventId::Fresh(uuid::Uuid::new_v4())
    }

    /// The id as text: what `to_string` gives, without the formatting machinery (ids are
    /// written into every answer, header and record).
    pub fn text(&self) -> String {
        match self {
            // `to_owned`, not `to_string`: the encoder gives `&mut str`, which `to_string` would
            // format through `Display`.
            EventId::Fresh(uuid) => uuid.simple().encode_lower(&mut uuid::Uuid::encode_buffer()).to_owned(),
            EventId::Given(id) => id.clone(),
        }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventId::Fresh(uuid) => f.write_str(uuid.simple().encode_lower(&mut uuid::Uuid::encode_buffer())),
            EventId::Given(id) => f.write_str(id),
        }
    }
}

/// An id serialises as its text, written straight into the output.
impl serde::Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Why a step failed, as a handler sees it on the error path.
#[derive(Clone, Debug, PartialEq)]
pub struct EventError {
    /// The message.
    pub message: String,
    /// What kind of failure (`validation`, `panic`, ...).
    pub kind: crate::error::ErrorKind,
}

/// One event: a request, a stream record, or a copy of either on a branch.
#[derive(Clone, Debug)]
pub struct Event {
    /// The payload; JSON unless a step declares a type.
    pub body: Value,
    /// The event's id; it follows the event across processes.
    pub id: EventId,
    /// The record key; empty unless set by a step or a stream record.
    pub key: String,
    /// Arrival time, unless a step sets it. The pipeline that takes the event in stamps it,
    /// and only when a step of its graph can read it (see [`crate::Step::reads_time`]): until
    /// then it is `UNIX_EPOCH`, and a time set before is kept.
    pub time: SystemTime,
    /// The request path (default `/`).
    pub path: Cow<'static, str>,
    /// The request method (default `POST`).
    pub method: Cow<'static, str>,
    /// Request headers (names match without regard to case; a name may repeat).
    pub headers: HeaderMap,
    /// The request's content type (JSON's own is borrowed, not allocated per event).
    pub content_type: Option<Cow<'static, str>>,
    /// On the error path: the name of the step that failed.
    pub origin_state: Option<String>,
    /// On the error path: why it failed (boxed: rare, and events are moved often).
    pub error: Option<Box<EventError>>,
    /// When the caller stops waiting (`--deadline-ms`, `x-request-timeout-ms`, gRPC's
    /// `grpc-timeout`, or a stream record's own): what waits for a model or an upstream waits
    /// until then at most. `None`: no deadline.
    pub deadline: Option<Instant>,
    /// How often the event has entered each step of a loop on its path (`max_iterations`).
    pub iterations: Iterations,
}

/// How often an event has entered the steps of loops: counted per event and per step, and
/// copied with the event onto each branch, so that a branch counts its own way round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Iterations {
    entered: Vec<Entered>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entered {
    step: &'static str,
    times: u32,
}

impl Iterations {
    /// Counts one more entry into `step`: how many times it has been entered now.
    pub fn enter(&mut self, step: &'static str) -> u32 {
        match self.entered.iter_mut().find(|entered| entered.step == step) {
            Some(entered) => {
                entered.times = entered.times.saturating_add(1);
                entered.times
            }
            None => {
                self.entered.push(Entered { step, times: 1 });
                1
            }
        }
    }

    /// How many times `step` has been entered.
    pub fn of(&self, step: &str) -> u32 {
        self.entered.iter().find(|entered| entered.step == step).map_or(0, |entered| entered.times)
    }
}

impl Event {
    /// A new event with this body, a fresh id, path `/` and method `POST`.
    #[inline]
    pub fn new(body: Value) -> Self {
        Event::arrived(body, EventId::fresh())
    }

    /// An event with this body and id (a request's or a record's): no fresh id is made only to
    /// be replaced. Its time is stamped when a pipeline takes it in.
    #[inline]
    pub fn arrived(body: Value, id: EventId) -> Self {
        // Every field named: `..Event::placeholder()` would make a `null` body and an empty id
        // only to drop them.
        Event {
            body,
            id,
            key: String::new(),
            time: SystemTime::UNIX_EPOCH,
            path: Cow::Borrowed("/"),
            method: Cow::Borrowed("POST"),
            headers: HeaderMap::new(),
            content_type: None,
            origin_state: None,
            error: None,
            deadline: None,
            iterations: Iterations::default(),
        }
    }

    /// Sets the time to now, unless it is already set: what a pipeline does as it takes in an
    /// event that a step of its graph may ask the time of.
    #[inline]
    pub fn stamp_arrival(&mut self) {
        if self.time == SystemTime::UNIX_EPOCH {
            self.time = SystemTime::now();
        }
    }

    /// Gives an event a step made from another that one's arrival time, unless it has a time:
    /// it arrived when the event it came from did.
    #[inline]
    pub(crate) fn inherit_arrival(&mut self, arrived: SystemTime) {
        if self.time == SystemTime::UNIX_EPOCH {
            self.time = arrived;
        }
    }

    /// The time left until the deadline, if there is one (zero once it has passed).
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    /// Shortens the deadline to `deadline`; a later one leaves it as it is.
    pub fn limit_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(self.deadline.map_or(deadline, |current| current.min(deadline)));
    }

    /// An empty event left behind where an event was moved out; costs no id and no clock read.
    #[inline]
    pub fn placeholder() -> Self {
        Event::arrived(Value::Null, EventId::Given(String::new()))
    }

    /// Sets the path.
    pub fn with_path(mut self, path: impl Into<Cow<'static, str>>) -> Self {
        self.path = path.into();
        self
    }

    /// Sets the method.
    pub fn with_method(mut self, method: impl Into<Cow<'static, str>>) -> Self {
        self.method = method.into();
        self
    }

    /// Sets the id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = EventId::Given(id.into());
        self
    }

    /// The first header with this name (case-insensitive), if its value is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Adds a header; a name or value HTTP does not allow is left out.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            self.headers.append(name, value);
        }
        self
    }
}

/// An HTTP response, as the caller gets it.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers besides the content type and `x-event-id`.
    pub headers: Vec<(String, String)>,
    /// The content type.
    pub content_type: Cow<'static, str>,
    /// The body bytes.
    pub body: Vec<u8>,
    /// The event's id, sent as `x-event-id`; written out only when read.
    pub event_id: Option<EventId>,
    /// A streamed answer's chunks, sent as they come after the head (the body is then empty);
    /// `None` for a whole answer.
    pub chunks: Option<crate::streaming::Chunks>,
}

impl Response {
    /// A JSON response: a `Value`, or anything that serialises as JSON object keys allow.
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, body: &T) -> Self {
        Response {
            status,
            headers: Vec::new(),
            content_type: Cow::Borrowed("application/json"),
            // Serialising to memory fails only for a map whose keys are not strings or numbers,
            // which a `Value` never has.
            body: serde_json::to_vec(body).unwrap_or_default(),
            event_id: None,
            chunks: None,
        }
    }

    /// The head of a streamed answer (200, JSON lines until the request's form says otherwise)
    /// whose chunks follow.
    pub fn streamed(chunks: crate::streaming::Chunks) -> Self {
        Response {
            status: 200,
            headers: Vec::new(),
            content_type: Cow::Borrowed(crate::streaming::LINES),
            body: Vec::new(),
            event_id: None,
            chunks: Some(chunks),
        }
    }

    /// The chunks of a streamed answer that has been read whole (as the mock server reads one),
    /// each as JSON; `None` for an answer that was not streamed.
    pub fn chunk_bodies(&self) -> Option<Vec<Value>> {
        crate::streaming::ChunkFormat::of_content_type(&self.content_type).map(|format| format.parse(&self.body))
    }

    /// An explicit response, sent as is: status, headers, body and content type.
    pub fn new(status: u16, content_type: impl Into<Cow<'static, str>>, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            content_type: content_type.into(),
            body: body.into(),
            event_id: None,
            chunks: None,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The body parsed as JSON, or `null` when it is not JSON.
    pub fn json_body(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The first header with this name (case-insensitive), the content type and `x-event-id`
    /// included.
    pub fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        if name.eq_ignore_ascii_case("content-type") {
            return Some(Cow::Borrowed(&self.content_type));
        }
        if let Some((_, value)) = self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)) {
            return Some(Cow::Borrowed(value));
        }
        if name.eq_ignore_ascii_case("x-event-id") {
            return self.event_id.as_ref().map(|id| Cow::Owned(id.text()));
        }
        None
    }

    /// Every header as sent over HTTP: the content type, `x-event-id`, then the others.
    pub fn all_headers(&self) -> Vec<(String, String)> {
        let mut all = vec![("content-type".to_string(), self.content_type.to_string())];
        if let Some(id) = &self.event_id
            && !self.headers.iter().any(|(key, _)| key.eq_ignore_ascii_case("x-event-id"))
        {
            all.push(("x-event-id".to_string(), id.text()));
        }
        all.extend(self.headers.iter().cloned());
        all
    }
}
