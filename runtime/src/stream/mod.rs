//! Stream queues on Redis Streams: what a record is, which shard an event goes to, and
//! in-memory streams for running one function under the mock server. The connections to one
//! Redis or a Redis Cluster are in `server`, the writing node in `writer`, the consumer loop a
//! child function runs in `consumer`, the error stream on Redis in `errors`.
//!
//! A record is one stream entry: an event's [`crate::envelope::Envelope`] as fields, or a plain
//! field map another producer wrote (its fields all the body's). Nothing here trims a stream: an
//! unread record is never removed.

mod consumer;
#[cfg(feature = "streams")]
mod errors;
#[cfg(feature = "streams")]
mod server;
mod writer;

pub use consumer::{ConsumeOptions, ConsumerStats, StreamSource};
#[cfg(feature = "streams")]
pub use consumer::{consume, consume_with_stats};
#[cfg(feature = "streams")]
pub use errors::RedisErrorStream;
#[cfg(feature = "streams")]
pub use server::{Connection, connection, wait_for_replicas};
pub use writer::{SetKey, StreamWriter};

use crate::error::{ErrorRecord, ErrorStream};
use crate::event::Event;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Where a stream queue lives: a Redis server, a stream name, and how many shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamQueue {
    /// The queue's name in the graph (for errors and logs).
    pub name: String,
    /// `redis://host:port` or `redis+cluster://host:port,host:port`, without the stream.
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
