//! The writing side of a stream queue, and the node that sets an event's key on the way in.

#[cfg(feature = "streams")]
use super::connection;
use super::{Sink, StreamQueue};
use crate::context::Context;
use crate::error::StepError;
use crate::event::Event;
use crate::node::Node;
use crate::run::Run;
use serde_json::Value;
#[cfg(feature = "streams")]
use std::time::Duration;

/// The writing side of a stream queue: the last node of its function's path. The event goes
/// into the stream chosen by its key; if Redis cannot take it after a few tries, the event
/// fails with `503` (answered to the caller, or left unacknowledged by a consumer, so that it
/// is retried), recorded in the error stream and logged. Nothing is dropped silently.
pub struct StreamWriter {
    queue: StreamQueue,
    sink: Sink,
    #[cfg_attr(
        not(feature = "streams"),
        allow(dead_code, reason = "Redis writes are retried; memory ones never fail")
    )]
    attempts: u32,
    /// The process's connection to the queue's Redis, found once rather than in the shared
    /// table (a lock and a lookup by URL) for every event.
    #[cfg(feature = "streams")]
    connection: std::sync::OnceLock<super::Connection>,
}

impl StreamWriter {
    /// A writer for `queue` into `sink`.
    pub fn new(queue: StreamQueue, sink: Sink) -> Self {
        StreamWriter {
            queue,
            sink,
            attempts: 4,
            #[cfg(feature = "streams")]
            connection: std::sync::OnceLock::new(),
        }
    }

    /// Writes one event; the stream entry's id on success.
    pub async fn write(&self, event: &Event) -> Result<String, StepError> {
        let stream = self.queue.stream_for(event);
        match &self.sink {
            Sink::Memory(streams) => {
                streams.append(stream, event.clone());
                Ok(String::new())
            }
            #[cfg(feature = "streams")]
            Sink::Redis => self.write_to_redis(stream, event).await,
            #[cfg(not(feature = "streams"))]
            Sink::Redis => Err(unavailable(format!(
                "queue `{}` writes to Redis, but this build has no Redis client (graphc-runtime's `streams` feature)",
                self.queue.name
            ))),
        }
    }

    /// XADD, retried with backoff: a Redis that is restarting is waited for, a little.
    #[cfg(feature = "streams")]
    async fn write_to_redis(&self, stream: String, event: &Event) -> Result<String, StepError> {
        let connection = match self.connection.get() {
            Some(connection) => connection,
            None => {
                let found = connection(&self.queue.url)
                    .map_err(|error| StepError::unavailable(error.to_string()).with_source(error))?;
                self.connection.get_or_init(|| found)
            }
        };
        let fields = crate::envelope::Envelope::of(event).record_fields();
        // Read from the same Redis by a consumer: written with its acknowledgement, at once.
        let Some(fields) = super::consumer::defer(&self.queue.url, &stream, fields) else {
            return Ok(String::new());
        };
        let mut command = redis::cmd("XADD");
        command.arg(&stream).arg("*");
        for (field, value) in fields {
            command.arg(field).arg(value);
        }
        let mut delay = Duration::from_millis(50);
        let mut attempt = 1;
        // Once the entry is in, a retry only waits for the replicas again: it is not written twice.
        let mut written_entry: Option<String> = None;
        let started = tokio::time::Instant::now();
        loop {
            let round = async {
                let entry = match written_entry.take() {
                    Some(entry) => entry,
                    None => command.query_async::<String>(&mut connection.clone()).await?,
                };
                written_entry = Some(entry.clone());
                connection.wait_for_replicas(&stream).await?;
                Ok::<_, redis::RedisError>(entry)
            };
            // However the client retries inside, the caller hears within the budget.
            let budget = WRITE_BUDGET.saturating_sub(started.elapsed());
            let written = match tokio::time::timeout(budget, round).await {
                Ok(written) => written,
                Err(_) => Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out"))),
            };
            if written.is_err() && started.elapsed() >= WRITE_BUDGET {
                attempt = self.attempts;
            }
            match written {
                Ok(entry) => return Ok(entry),
                Err(error) if attempt >= self.attempts => {
                    return Err(unavailable(format!(
                        "queue `{}` could not write to stream `{stream}` at {}: {error}",
                        self.queue.name,
                        crate::error::redact_credentials(&self.queue.url)
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

/// How long one write may take, retries included, before the event fails with 503.
#[cfg(feature = "streams")]
const WRITE_BUDGET: Duration = Duration::from_secs(10);

fn unavailable(message: impl Into<String>) -> StepError {
    StepError::unavailable(message)
}

impl Node for StreamWriter {
    /// A record carries the event's arrival time to the functions after it, which may read it:
    /// the event is stamped as it comes in, so that a step reading `event.time` downstream sees
    /// the time the graph took the event in, as it does in one process.
    fn reads_time(&self) -> bool {
        true
    }
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
    F: Fn(&Event, &Context) -> Result<Value, StepError> + Send + Sync + 'static,
{
    /// A key for the queue `queue`, in front of `next`.
    pub fn new(queue: &'static str, key: F, next: N) -> Self {
        SetKey { queue, key, next }
    }

    fn apply(&self, event: &mut Event, context: &Context) -> Result<(), StepError> {
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
    F: Fn(&Event, &Context) -> Result<Value, StepError> + Send + Sync + 'static,
    N: Node,
{
    const WAITS: bool = N::WAITS;
    const BLOCKS: bool = N::BLOCKS;
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
