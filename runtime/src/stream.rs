//! Stream queues on Redis Streams: the node that writes an event into a stream, the consumer
//! loop a child function runs (consumer groups, batches, acknowledgement after the steps have
//! finished, records of dead consumers reclaimed with XAUTOCLAIM), shards chosen by event key,
//! the error stream on Redis, and in-memory streams for running one function under the mock
//! server.
//!
//! A record is one stream entry with the fields `id`, `key`, `path`, `body` (JSON) and
//! `headers` (a JSON object); any may be missing when another producer wrote it. Nothing here
//! trims a stream: an unread record is never removed.

use crate::error::{ErrorRecord, ErrorStream, StepError};
use crate::event::{Event, EventId, HeaderName, HeaderValue};
use crate::node::Node;
use crate::pipeline::Handler;
use crate::run::Run;
use redis::Value as Reply;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
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
            id = event.id.to_string();
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
        if name == axum::http::header::CONTENT_LENGTH {
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
    vec![
        ("id", event.id.to_string()),
        ("key", event.key.clone()),
        ("path", event.path.to_string()),
        ("body", event.body.to_string()),
        ("headers", Value::Object(headers).to_string()),
    ]
}

/// An event from a stream record's fields. A record written by another producer may leave out
/// any field; a body that is not JSON is taken as a string.
pub fn event_from_record(fields: &[(String, Vec<u8>)]) -> Result<Event, String> {
    let field = |name: &str| fields.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_slice());
    let text = |name: &str| -> Result<Option<String>, String> {
        field(name)
            .map(|bytes| String::from_utf8(bytes.to_vec()).map_err(|_| format!("the record's `{name}` is not UTF-8")))
            .transpose()
    };
    let body = match field("body") {
        None => Value::Null,
        Some(bytes) => {
            serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
        }
    };
    let mut event = Event::new(body);
    if let Some(id) = text("id")?.filter(|id| !id.is_empty()) {
        event.id = EventId::Given(id);
    }
    event.key = text("key")?.unwrap_or_default();
    if let Some(path) = text("path")?.filter(|path| !path.is_empty()) {
        event.path = path.into();
    }
    if let Some(headers) = field("headers") {
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
    event.content_type = Some("application/json".to_string());
    Ok(event)
}

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

/// A connection of its own, for blocking reads: a blocked XREADGROUP would hold up every
/// other command on a shared connection. `timeout` must be longer than the blocking time.
fn open(url: &str, timeout: Duration) -> Result<ConnectionManager, String> {
    let client = redis::Client::open(url).map_err(|error| format!("bad Redis URL `{url}`: {error}"))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|error| format!("cannot use Redis at `{url}`: {error}"))
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

/// The writing side of a stream queue: the last node of its function's path. The event goes
/// into the stream chosen by its key; if Redis cannot take it after a few tries, the event
/// fails with `503` (answered to the caller, or left unacknowledged by a consumer, so that it
/// is retried), recorded in the error stream and logged. Nothing is dropped silently.
pub struct StreamWriter {
    queue: StreamQueue,
    sink: Sink,
    attempts: u32,
}

impl StreamWriter {
    /// A writer for `queue` into `sink`.
    pub fn new(queue: StreamQueue, sink: Sink) -> Self {
        StreamWriter { queue, sink, attempts: 4 }
    }

    /// Writes one event; the stream entry's id on success.
    pub async fn write(&self, event: &Event) -> Result<String, StepError> {
        let stream = self.queue.stream_for(event);
        let connection = match &self.sink {
            Sink::Memory(streams) => {
                streams.append(stream, event.clone());
                return Ok(String::new());
            }
            Sink::Redis => connection(&self.queue.url).map_err(unavailable)?,
        };
        let mut command = redis::cmd("XADD");
        command.arg(&stream).arg("*");
        for (field, value) in record_fields(event) {
            command.arg(field).arg(value);
        }
        let mut delay = Duration::from_millis(50);
        let mut attempt = 1;
        loop {
            let mut connection = connection.clone();
            match command.query_async::<String>(&mut connection).await {
                Ok(entry) => return Ok(entry),
                Err(error) if attempt >= self.attempts => {
                    return Err(unavailable(format!(
                        "queue `{}` could not write to stream `{stream}` at {}: {error}",
                        self.queue.name, self.queue.url
                    )));
                }
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
            }
        }
    }
}

fn unavailable(message: impl Into<String>) -> StepError {
    StepError { status: 503, kind: "unavailable", message: message.into() }
}

impl Node for StreamWriter {
    async fn push(&self, event: &mut Event, run: &Run) {
        if let Err(failure) = self.write(event).await {
            tracing::error!(event_id = %event.id, queue = %self.queue.name, "{}", failure.message);
            run.record(&self.queue.name, event, &failure);
            run.fail(&self.queue.name, &failure);
        }
    }
}

/// Sets the event key from the queue's `key = <expr>` as the event enters a stream queue, so
/// that the key picks the shard and travels in the record. A key that cannot be computed fails
/// the event at the queue.
pub struct SetKey<F, N> {
    queue: &'static str,
    key: F,
    next: N,
}

impl<F, N> SetKey<F, N>
where
    F: Fn(&Event, &crate::Context) -> Result<Value, StepError> + Send + Sync + 'static,
{
    /// A key for the queue `queue`, in front of `next`.
    pub fn new(queue: &'static str, key: F, next: N) -> Self {
        SetKey { queue, key, next }
    }

    fn apply(&self, event: &mut Event, context: &crate::Context) -> Result<(), StepError> {
        event.key = match (self.key)(event, context)? {
            Value::String(text) => text,
            Value::Null => return Err(StepError::invalid_input(format!("the key of queue `{}` is null", self.queue))),
            other => other.to_string(),
        };
        Ok(())
    }
}

impl<F, N> Node for SetKey<F, N>
where
    F: Fn(&Event, &crate::Context) -> Result<Value, StepError> + Send + Sync + 'static,
    N: Node,
{
    async fn push(&self, event: &mut Event, run: &Run) {
        match self.apply(event, run.context()) {
            Ok(()) => self.next.push(event, run).await,
            Err(failure) => {
                run.record(self.queue, event, &failure);
                run.fail(self.queue, &failure);
            }
        }
    }
}

impl<F, N> crate::node::SyncNode for SetKey<F, N>
where
    F: Fn(&Event, &crate::Context) -> Result<Value, StepError> + Send + Sync + 'static,
    N: crate::node::SyncNode,
{
    fn push_sync(&self, event: &mut Event, run: &mut crate::run::SyncRun<'_>) {
        match self.apply(event, run.context()) {
            Ok(()) => self.next.push_sync(event, run),
            Err(failure) => {
                run.record(self.queue, event, &failure);
                run.fail(self.queue, &failure);
            }
        }
    }
}

/// How a consumer reads its stream.
#[derive(Clone, Debug)]
pub struct ConsumeOptions {
    /// The consumer's name in its group; unique per process (default: host and process id).
    pub consumer: String,
    /// Records read at once; they are processed concurrently.
    pub batch: usize,
    /// How long one read waits for records.
    pub block: Duration,
    /// A record pending this long with another consumer is taken over (its consumer is
    /// presumed dead).
    pub claim_idle: Duration,
    /// How often to look for such records.
    pub claim_every: Duration,
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string());
        ConsumeOptions {
            consumer: format!("{}-{}", host.unwrap_or_else(|_| "host".to_string()), std::process::id()),
            batch: 64,
            block: Duration::from_millis(500),
            claim_idle: Duration::from_secs(30),
            claim_every: Duration::from_secs(5),
        }
    }
}

/// What a consumer has done, for `/metrics` and the readiness probe of a child function.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    read: std::sync::atomic::AtomicU64,
    acknowledged: std::sync::atomic::AtomicU64,
    retried: std::sync::atomic::AtomicU64,
    claimed: std::sync::atomic::AtomicU64,
    unreadable: std::sync::atomic::AtomicU64,
    redis_errors: std::sync::atomic::AtomicU64,
    ready: std::sync::atomic::AtomicBool,
}

impl ConsumerStats {
    /// True once the consumer's groups exist and its last round with Redis succeeded.
    pub fn ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records acknowledged so far.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn add(counter: &std::sync::atomic::AtomicU64, count: usize) {
        counter.fetch_add(count as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// The counters in Prometheus' text format, labelled with the group.
    pub fn render(&self, group: &str) -> String {
        let group = group.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::new();
        for (name, help, counter) in [
            ("graphc_stream_records_read_total", "Records read from the function's stream.", &self.read),
            (
                "graphc_stream_records_acknowledged_total",
                "Records acknowledged after their steps finished.",
                &self.acknowledged,
            ),
            ("graphc_stream_records_retried_total", "Records left pending for a retry (503).", &self.retried),
            ("graphc_stream_records_claimed_total", "Records taken over from stopped consumers.", &self.claimed),
            (
                "graphc_stream_records_unreadable_total",
                "Records no event could be made of (logged, acknowledged).",
                &self.unreadable,
            ),
            (
                "graphc_stream_redis_errors_total",
                "Failed rounds with Redis (retried with backoff).",
                &self.redis_errors,
            ),
        ] {
            let value = counter.load(std::sync::atomic::Ordering::Relaxed);
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{group=\"{group}\"}} {value}\n"
            ));
        }
        out
    }
}

/// The stream a child function reads, and its consumer group (the function's name).
#[derive(Clone, Debug)]
pub struct StreamSource {
    /// The queue.
    pub queue: StreamQueue,
    /// The consumer group: the reading function's name.
    pub group: String,
}

/// A record's fields, as Redis returns them.
type Fields = Vec<(String, Vec<u8>)>;

/// A record read: its stream, its entry id, its fields.
type Entry = (String, String, Fields);

/// Reads `source` with `handler` until `shutdown` resolves: every record is processed by the
/// function's steps and acknowledged once they have finished. A record whose processing failed
/// for want of a stream (`503`) stays pending and is retried; other failures were answered to
/// the error stream and are acknowledged, so one bad record cannot block a stream. On shutdown
/// the records being processed finish first.
pub async fn consume<H: Handler>(
    handler: H,
    source: StreamSource,
    options: ConsumeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), String> {
    consume_with_stats(handler, source, options, Arc::default(), shutdown).await
}

/// [`consume`], counting what it does in `stats`.
pub async fn consume_with_stats<H: Handler>(
    handler: H,
    source: StreamSource,
    options: ConsumeOptions,
    stats: Arc<ConsumerStats>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), String> {
    let streams = source.queue.streams();
    let commands = connection(&source.queue.url)?;
    let reads = open(&source.queue.url, options.block + Duration::from_secs(5))?;
    let consumer = Consumer { handler, source, options, streams, commands, reads, stats };
    let result = consumer.run(shutdown).await;
    consumer.handler.drain().await;
    result
}

impl<H: Handler> Consumer<H> {
    /// Groups first; then this consumer's own pending records (left by an earlier run under the
    /// same name); then new records, with a look for abandoned ones every `claim_every`. Only a
    /// read waiting for records is cut short by the shutdown; records being processed finish
    /// and are acknowledged first.
    async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<(), String> {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(100);
        let mut ready = false;
        let mut own_pending = true;
        // The first look is at start-up: a consumer that replaces a dead one takes over its
        // records as soon as they have been idle long enough.
        let mut next_claim = tokio::time::Instant::now();
        loop {
            let round: Result<(), redis::RedisError> = async {
                if !ready {
                    self.create_groups().await?;
                    ready = true;
                    self.stats.ready.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                if tokio::time::Instant::now() >= next_claim {
                    self.claim().await?;
                    next_claim = tokio::time::Instant::now() + self.options.claim_every;
                }
                Ok(())
            }
            .await;
            let entries = match round {
                Ok(()) => {
                    tokio::select! {
                        biased;
                        () = &mut shutdown => return Ok(()),
                        entries = self.read(if own_pending { "0" } else { ">" }) => entries,
                    }
                }
                Err(error) => Err(error),
            };
            let processed = match entries {
                Ok(entries) => {
                    if own_pending && entries.is_empty() {
                        own_pending = false;
                    }
                    self.process(entries).await
                }
                Err(error) => Err(error),
            };
            self.stats.ready.store(processed.is_ok(), std::sync::atomic::Ordering::Relaxed);
            match processed {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(error) => {
                    ConsumerStats::add(&self.stats.redis_errors, 1);
                    tracing::warn!(group = %self.source.group, "stream read failed, retrying in {backoff:?}: {error}");
                    eprintln!("{}: Redis unavailable, retrying in {backoff:?}: {error}", self.source.group);
                    tokio::select! {
                        biased;
                        () = &mut shutdown => return Ok(()),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

struct Consumer<H> {
    handler: H,
    source: StreamSource,
    options: ConsumeOptions,
    streams: Vec<String>,
    commands: ConnectionManager,
    reads: ConnectionManager,
    stats: Arc<ConsumerStats>,
}

impl<H: Handler> Consumer<H> {
    async fn create_groups(&self) -> Result<(), redis::RedisError> {
        for stream in &self.streams {
            let created = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(&self.source.group)
                .arg("0")
                .arg("MKSTREAM")
                .query_async::<()>(&mut self.commands.clone())
                .await;
            match created {
                Err(error) if error.code() == Some("BUSYGROUP") => {}
                other => other?,
            }
        }
        Ok(())
    }

    async fn read(&self, from: &str) -> Result<Vec<Entry>, redis::RedisError> {
        let mut command = redis::cmd("XREADGROUP");
        command.arg("GROUP").arg(&self.source.group).arg(&self.options.consumer).arg("COUNT").arg(self.options.batch);
        if from == ">" {
            command.arg("BLOCK").arg(self.options.block.as_millis() as u64);
        }
        command.arg("STREAMS").arg(&self.streams);
        for _ in &self.streams {
            command.arg(from);
        }
        let reply = command.query_async::<Reply>(&mut self.reads.clone()).await?;
        let mut entries = Vec::new();
        for (stream, stream_entries) in pairs(reply) {
            let stream = text(&stream);
            for entry in items(stream_entries) {
                if let Some((id, fields)) = entry_of(entry) {
                    entries.push((stream.clone(), id, fields));
                }
            }
        }
        Ok(entries)
    }

    /// Takes over records another consumer left pending for longer than `claim_idle`.
    async fn claim(&self) -> Result<(), redis::RedisError> {
        for stream in &self.streams {
            let mut cursor = "0-0".to_string();
            loop {
                let reply = redis::cmd("XAUTOCLAIM")
                    .arg(stream)
                    .arg(&self.source.group)
                    .arg(&self.options.consumer)
                    .arg(self.options.claim_idle.as_millis() as u64)
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(self.options.batch)
                    .query_async::<Reply>(&mut self.commands.clone())
                    .await?;
                let mut parts = items(reply).into_iter();
                let next = parts.next().map(|next| text(&next)).unwrap_or_else(|| "0-0".to_string());
                let claimed: Vec<Entry> = parts
                    .next()
                    .map(items)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(entry_of)
                    .map(|(id, fields)| (stream.clone(), id, fields))
                    .collect();
                ConsumerStats::add(&self.stats.claimed, claimed.len());
                if !claimed.is_empty() {
                    tracing::info!(stream = %stream, count = claimed.len(), "took over records of a stopped consumer");
                }
                self.process(claimed).await?;
                if next == "0-0" {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// Runs a batch concurrently, then acknowledges what finished.
    async fn process(&self, entries: Vec<Entry>) -> Result<(), redis::RedisError> {
        if entries.is_empty() {
            return Ok(());
        }
        ConsumerStats::add(&self.stats.read, entries.len());
        let runs = entries.into_iter().map(|(stream, id, fields)| async move {
            let done = match event_from_record(&fields) {
                Ok(event) => {
                    let response = self.handler.handle(event).await;
                    if response.status == 503 {
                        ConsumerStats::add(&self.stats.retried, 1);
                    }
                    response.status != 503
                }
                Err(reason) => {
                    ConsumerStats::add(&self.stats.unreadable, 1);
                    // A record no event can be made of: logged and acknowledged, never retried.
                    tracing::error!(stream = %stream, entry = %id, "unreadable record: {reason}");
                    true
                }
            };
            (stream, id, done)
        });
        let outcomes = futures_join_all(runs).await;
        let mut acks: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (stream, id, done) in &outcomes {
            if *done {
                acks.entry(stream.as_str()).or_default().push(id.as_str());
            }
        }
        for (stream, ids) in acks {
            redis::cmd("XACK")
                .arg(stream)
                .arg(&self.source.group)
                .arg(&ids)
                .query_async::<()>(&mut self.commands.clone())
                .await?;
            ConsumerStats::add(&self.stats.acknowledged, ids.len());
        }
        Ok(())
    }
}

/// Awaits every future, concurrently, on the current task.
async fn futures_join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(|future| Some(Box::pin(future))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => waiting = true,
                }
            }
        }
        if waiting { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

fn items(reply: Reply) -> Vec<Reply> {
    match reply {
        Reply::Array(items) | Reply::Set(items) => items,
        Reply::Map(pairs) => pairs.into_iter().flat_map(|(key, value)| [key, value]).collect(),
        _ => Vec::new(),
    }
}

/// `[[name, value], ...]` (RESP2) or a map (RESP3), as pairs.
fn pairs(reply: Reply) -> Vec<(Reply, Reply)> {
    match reply {
        Reply::Map(pairs) => pairs,
        other => items(other)
            .into_iter()
            .filter_map(|pair| {
                let mut pair = items(pair).into_iter();
                Some((pair.next()?, pair.next()?))
            })
            .collect(),
    }
}

fn text(reply: &Reply) -> String {
    match reply {
        Reply::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Reply::SimpleString(text) => text.clone(),
        Reply::Int(number) => number.to_string(),
        _ => String::new(),
    }
}

/// `[id, [field, value, ...]]`; a claimed record deleted meanwhile has no fields and is skipped.
fn entry_of(entry: Reply) -> Option<(String, Fields)> {
    let mut parts = items(entry).into_iter();
    let id = text(&parts.next()?);
    let mut fields = Vec::new();
    let mut flat = items(parts.next()?).into_iter();
    while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
        let value = match value {
            Reply::BulkString(bytes) => bytes,
            other => text(&other).into_bytes(),
        };
        fields.push((text(&name), value));
    }
    Some((id, fields))
}

/// The error stream on Redis: records are appended in the background, in order, retried while
/// Redis is away. Appending never fails or slows a request; if the backlog is full, the record
/// is logged in full instead.
pub struct RedisErrorStream {
    url: String,
    stream: String,
    sender: OnceLock<tokio::sync::mpsc::Sender<ErrorRecord>>,
}

impl RedisErrorStream {
    /// Records failures in `stream` at `url`.
    pub fn new(url: &str, stream: &str) -> Self {
        RedisErrorStream { url: url.to_string(), stream: stream.to_string(), sender: OnceLock::new() }
    }

    fn sender(&self) -> Option<&tokio::sync::mpsc::Sender<ErrorRecord>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(self.sender.get_or_init(|| {
            let (sender, mut receiver) = tokio::sync::mpsc::channel::<ErrorRecord>(10_000);
            let (url, stream) = (self.url.clone(), self.stream.clone());
            runtime.spawn(async move {
                while let Some(record) = receiver.recv().await {
                    let mut delay = Duration::from_millis(100);
                    loop {
                        match append_error(&url, &stream, &record).await {
                            Ok(()) => break,
                            Err(error) => {
                                tracing::warn!(stream = %stream, "cannot append to the error stream, retrying: {error}");
                                tokio::time::sleep(delay).await;
                                delay = (delay * 2).min(Duration::from_secs(5));
                            }
                        }
                    }
                }
            });
            sender
        }))
    }
}

async fn append_error(url: &str, stream: &str, record: &ErrorRecord) -> Result<(), String> {
    let mut connection = connection(url)?;
    redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg("function")
        .arg(&record.function)
        .arg("source")
        .arg(&record.source)
        .arg("event")
        .arg(json!({ "id": record.event_id, "body": record.body }).to_string())
        .arg("message")
        .arg(&record.message)
        .arg("time")
        .arg(record.time)
        .query_async::<String>(&mut connection)
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

impl ErrorStream for RedisErrorStream {
    fn append(&self, record: ErrorRecord) {
        let kept = match self.sender() {
            Some(sender) => sender.try_send(record).map_err(|error| match error {
                tokio::sync::mpsc::error::TrySendError::Full(record)
                | tokio::sync::mpsc::error::TrySendError::Closed(record) => record,
            }),
            None => Err(record),
        };
        if let Err(record) = kept {
            tracing::error!(stream = %self.stream, record = %record.to_json(), "error stream backlog full; the record is logged here instead");
        }
    }
}
