//! Stream queues on Redis Streams: what a record is, which shard an event goes to, the shared
//! connections, and in-memory streams for running one function under the mock server. The
//! writing node is in `writer`, the consumer loop a child function runs in `consumer`, the
//! error stream on Redis in `errors`.
//!
//! A record is one stream entry with the fields `id`, `key`, `path`, `body` (JSON) and
//! `headers` (a JSON object); any may be missing when another producer wrote it. Nothing here
//! trims a stream: an unread record is never removed.

mod consumer;
#[cfg(feature = "streams")]
mod errors;
mod writer;

pub use consumer::{ConsumeOptions, ConsumerStats, StreamSource};
#[cfg(feature = "streams")]
pub use consumer::{consume, consume_with_stats};
#[cfg(feature = "streams")]
pub use errors::RedisErrorStream;
pub use writer::{SetKey, StreamWriter};

use crate::error::{ErrorRecord, ErrorStream};
use crate::event::{Event, EventId, HeaderName, HeaderValue};
#[cfg(feature = "streams")]
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
#[cfg(feature = "streams")]
use std::sync::OnceLock;
use std::sync::{Arc, Mutex};
#[cfg(feature = "streams")]
use std::time::Duration;

/// Where a stream queue lives: a Redis server, a stream name, and how many shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamQueue {
    /// The queue's name in the graph (for errors and logs).
    pub name: String,
    /// `redis://host:port`, without the stream.
    pub url: String,
    /// The stream's name; with shards, the streams are `NAME:0` to `NAME:N-1`.
    pub stream: String,
    /// Streams the records are spread over, by event key.
    pub shards: u32,
}

impl StreamQueue {
    /// A queue, as the graph declares it.
    pub fn new(name: &str, url: &str, stream: &str, shards: u32) -> Self {
        StreamQueue { name: name.to_string(), url: url.to_string(), stream: stream.to_string(), shards: shards.max(1) }
    }

    /// The same queue on another Redis server (`--redis URL` or `GRAPHC_REDIS_URL`).
    pub fn on_server(mut self, url: Option<&str>) -> Self {
        if let Some(url) = url {
            self.url = url.trim_end_matches('/').to_string();
        }
        self
    }

    /// Every stream of the queue.
    pub fn streams(&self) -> Vec<String> {
        if self.shards <= 1 {
            vec![self.stream.clone()]
        } else {
            (0..self.shards).map(|shard| format!("{}:{shard}", self.stream)).collect()
        }
    }

    /// The stream an event goes to: chosen by its key, or by its id when it has no key, with a
    /// hash every process computes alike (FNV-1a), so that one key always lands on one shard.
    pub fn stream_for(&self, event: &Event) -> String {
        if self.shards <= 1 {
            return self.stream.clone();
        }
        let id;
        let key = if event.key.is_empty() {
            id = event.id.text();
            id.as_str()
        } else {
            event.key.as_str()
        };
        let hash = key
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
        format!("{}:{}", self.stream, hash % u64::from(self.shards))
    }
}

/// An event as a stream record's fields.
pub fn record_fields(event: &Event) -> Vec<(&'static str, String)> {
    let mut headers = Map::new();
    for (name, value) in &event.headers {
        // The request's length says nothing about the record.
        if name == http::header::CONTENT_LENGTH {
            continue;
        }
        if let Ok(value) = value.to_str() {
            match headers.get_mut(name.as_str()) {
                // Repeated headers are combined, as HTTP allows.
                Some(Value::String(earlier)) => {
                    earlier.push_str(", ");
                    earlier.push_str(value);
                }
                _ => {
                    headers.insert(name.as_str().to_string(), Value::String(value.to_string()));
                }
            }
        }
    }
    let mut fields = vec![
        ("id", event.id.text()),
        ("key", event.key.clone()),
        ("path", event.path.to_string()),
        ("body", event.body.to_string()),
        ("headers", Value::Object(headers).to_string()),
    ];
    // The deadline crosses processes as wall-clock time: milliseconds since the Unix epoch.
    if let Some(left) = event.time_left() {
        let at = std::time::SystemTime::now() + left;
        if let Ok(since_epoch) = at.duration_since(std::time::UNIX_EPOCH) {
            fields.push(("deadline", since_epoch.as_millis().to_string()));
        }
    }
    fields
}

/// A record's `deadline` (milliseconds since the Unix epoch) as an instant of this process.
fn deadline_from_epoch_millis(text: &[u8]) -> Option<std::time::Instant> {
    let millis: u64 = std::str::from_utf8(text).ok()?.trim().parse().ok()?;
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis);
    let now = std::time::Instant::now();
    Some(match at.duration_since(std::time::SystemTime::now()) {
        Ok(left) => now + left,
        // Passed already: now is as good as any earlier instant.
        Err(_) => now,
    })
}

/// An event from a stream record's fields. A record written by another producer may leave out
/// any field; a body that is not JSON is taken as a string. A record without a `body` field is
/// a plain field map (`XADD orders * user 7 amount 3.5`, as other systems write): its body is
/// the object of its fields, each value a string.
pub fn event_from_record(mut fields: Vec<(String, Vec<u8>)>) -> Result<Event, String> {
    let body_given = fields.iter().any(|(key, _)| key == "body");
    let body = match fields.iter().find(|(key, _)| key == "body") {
        None => Value::Object(
            fields
                .iter()
                .map(|(name, value)| (name.clone(), Value::String(String::from_utf8_lossy(value).into_owned())))
                .collect(),
        ),
        Some((_, bytes)) => {
            serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
        }
    };
    // The id, key and path are moved out of the record, not copied.
    let mut text = |name: &str| -> Result<Option<String>, String> {
        fields
            .iter_mut()
            .find(|(key, _)| key == name)
            .map(|(_, bytes)| {
                String::from_utf8(std::mem::take(bytes)).map_err(|_| format!("the record's `{name}` is not UTF-8"))
            })
            .transpose()
    };
    // A fresh id only for a record that carries none.
    let id = text("id")?.filter(|id| !id.is_empty()).map_or_else(EventId::fresh, EventId::Given);
    let mut event = Event::arrived(body, id);
    event.key = text("key")?.unwrap_or_default();
    if let Some(path) = text("path")?.filter(|path| !path.is_empty()) {
        event.path = path.into();
    }
    if let Some((_, headers)) = fields.iter().find(|(key, _)| key == "headers") {
        let headers: Map<String, Value> = serde_json::from_slice(headers)
            .map_err(|error| format!("the record's `headers` is not a JSON object: {error}"))?;
        for (name, value) in headers {
            let value = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str()))
            {
                event.headers.append(name, value);
            }
        }
    }
    // Only an envelope (a record with a `body`) carries a deadline: a plain field map's fields
    // are all its body's.
    if body_given && let Some((_, deadline)) = fields.iter().find(|(key, _)| key == "deadline") {
        event.deadline = deadline_from_epoch_millis(deadline);
    }
    event.content_type = Some(std::borrow::Cow::Borrowed("application/json"));
    Ok(event)
}

#[cfg(feature = "streams")]
/// A connection to the Redis server at `url`, shared by everything in the process that talks to
/// it. It connects on first use and reconnects after the server went away.
pub fn connection(url: &str) -> Result<ConnectionManager, String> {
    static CONNECTIONS: OnceLock<Mutex<BTreeMap<String, ConnectionManager>>> = OnceLock::new();
    let mut connections =
        CONNECTIONS.get_or_init(Default::default).lock().map_err(|_| "the connection table is poisoned")?;
    if let Some(connection) = connections.get(url) {
        return Ok(connection.clone());
    }
    let connection = open(url, Duration::from_secs(5))?;
    connections.insert(url.to_string(), connection.clone());
    Ok(connection)
}

#[cfg(feature = "streams")]
/// A connection of its own, for blocking reads: a blocked XREADGROUP would hold up every
/// other command on a shared connection. `timeout` must be longer than the blocking time.
pub(crate) fn open(url: &str, timeout: Duration) -> Result<ConnectionManager, String> {
    let shown = crate::error::redact_credentials(url);
    let client = redis::Client::open(url).map_err(|error| format!("bad Redis URL `{shown}`: {error}"))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|error| format!("cannot use Redis at `{shown}`: {error}"))
}

/// In-memory streams: where stream queues write when one function runs alone under the mock
/// server, so that a test sees what it would have handed on.
#[derive(Debug, Default)]
pub struct MemoryStreams {
    streams: Mutex<BTreeMap<String, Vec<Event>>>,
    errors: Mutex<Vec<ErrorRecord>>,
}

impl MemoryStreams {
    /// Empty streams.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// The events written to `stream` so far (all shards of a sharded queue are its streams
    /// `NAME:0`, `NAME:1`, ...).
    pub fn events(&self, stream: &str) -> Vec<Event> {
        self.streams.lock().map(|streams| streams.get(stream).cloned().unwrap_or_default()).unwrap_or_default()
    }

    /// The error stream's records so far.
    pub fn errors(&self) -> Vec<ErrorRecord> {
        self.errors.lock().map(|errors| errors.clone()).unwrap_or_default()
    }

    fn append(&self, stream: String, event: Event) {
        if let Ok(mut streams) = self.streams.lock() {
            streams.entry(stream).or_default().push(event);
        }
    }
}

impl ErrorStream for MemoryStreams {
    fn append(&self, record: ErrorRecord) {
        if let Ok(mut errors) = self.errors.lock() {
            errors.push(record);
        }
    }
}

/// Where a stream queue's writer puts records.
#[derive(Clone, Debug)]
pub enum Sink {
    /// Redis Streams.
    Redis,
    /// In-memory streams (one function under the mock server).
    Memory(Arc<MemoryStreams>),
}
