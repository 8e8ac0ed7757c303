//! One queue hop between two processes, for scripts/bench-stream: a producer writes N events
//! into a Redis stream and a consumer in another process reads and acknowledges them, either
//! through graphc (`StreamWriter`, and `consume` running a one-step pipeline) or by hand with
//! the same client library (XADD; XREADGROUP batches and XACK). Same records, same batch size,
//! same number of writes in flight.
//!
//! `cargo run --release -p graphc-runtime --example stream_hop -- MODE URL STREAM N`
//! with MODE one of produce-graphc, consume-graphc, consume-graphc-at-least-once, produce-raw,
//! consume-raw.

use graphc_runtime::stream::{ConsumeOptions, Sink, StreamQueue, StreamSource, StreamWriter, connection, consume};
use graphc_runtime::{AsyncPipeline, Context, End, Event, Extend, StepError, StepNode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const IN_FLIGHT: usize = 64;
const BATCH: usize = 64;

/// Event `n` of a run: ids differ from stream to stream, so that a consumer deduplicating by
/// event id never takes one round's events for another's.
fn event(stream: &str, n: usize) -> Event {
    Event::new(json!({"n": n, "text": "an event of about the size a small JSON request has"}))
        .with_id(format!("{stream}-e{n}"))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, url, stream, count] = args.as_slice() else {
        return Err("usage: stream_hop MODE URL STREAM N".to_string());
    };
    let count: usize = count.parse().map_err(|_| "N is a number")?;
    let started = Instant::now();
    match mode.as_str() {
        "produce-graphc" => {
            let writer = Arc::new(StreamWriter::new(StreamQueue::new("hop", url, stream, 1), Sink::Redis));
            let stream = stream.clone();
            produce(count, move |n| {
                let writer = Arc::clone(&writer);
                let event = event(&stream, n);
                async move { writer.write(&event).await.map(drop).map_err(|e| e.message) }
            })
            .await?;
        }
        "produce-raw" => {
            let connection = connection(url).map_err(|e| e.to_string())?;
            let stream = stream.clone();
            produce(count, move |n| {
                let (mut connection, stream) = (connection.clone(), stream.clone());
                async move {
                    let mut command = redis::cmd("XADD");
                    command.arg(&stream).arg("*");
                    for (field, value) in graphc_runtime::Envelope::of(&event(&stream, n)).record_fields() {
                        command.arg(field).arg(value);
                    }
                    command.query_async::<String>(&mut connection).await.map(drop).map_err(|e| e.to_string())
                }
            })
            .await?;
        }
        // graphc's default: each event id is marked processed (a SET with expiry) and a batch's
        // ids are looked up (an MGET), so that a retried record is not run twice.
        // `consume-graphc-at-least-once` turns that off (`--dedupe-window-ms 0`): the raw
        // consumer's guarantee.
        "consume-graphc" | "consume-graphc-at-least-once" => {
            let seen = Arc::new(AtomicUsize::new(0));
            let done = Arc::new(tokio::sync::Notify::new());
            let step = Extend({
                let (seen, done) = (Arc::clone(&seen), Arc::clone(&done));
                move |_: &Event, _: &Context| {
                    if seen.fetch_add(1, Ordering::SeqCst) + 1 == count {
                        done.notify_one();
                    }
                    Ok::<Value, StepError>(json!({"seen": true}))
                }
            });
            let pipeline = AsyncPipeline::answered_at_end(StepNode::new("count", step, End), Context::new("hop"));
            let source = StreamSource { queue: StreamQueue::new("hop", url, stream, 1), group: "hop".to_string() };
            let mut options = ConsumeOptions { consumer: "c1".to_string(), batch: BATCH, ..ConsumeOptions::default() };
            if mode == "consume-graphc-at-least-once" {
                options.dedupe_window = Duration::ZERO;
            }
            consume(pipeline, source, options, async move { done.notified().await })
                .await
                .map_err(|e| e.to_string())?;
        }
        "consume-raw" => consume_raw(url, stream, count).await.map_err(|e| e.to_string())?,
        other => return Err(format!("unknown mode `{other}`")),
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("{mode}: {count} events in {seconds:.3} s, {:.0} events/s", count as f64 / seconds);
    Ok(())
}

/// Runs `write(n)` for n in 0..count, `IN_FLIGHT` at a time.
async fn produce<F, Fut>(count: usize, write: F) -> Result<(), String>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let write = Arc::new(write);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (write, next) = (Arc::clone(&write), Arc::clone(&next));
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= count {
                    return Ok::<(), String>(());
                }
                write(n).await?;
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// XREADGROUP in batches and XACK each batch, decoding nothing: the floor.
async fn consume_raw(url: &str, stream: &str, count: usize) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg("raw")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut connection)
        .await;
    if let Err(error) = created
        && error.code() != Some("BUSYGROUP")
    {
        return Err(error);
    }
    let mut seen = 0;
    while seen < count {
        let reply: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("raw")
            .arg("r1")
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(Duration::from_millis(500).as_millis() as u64)
            .arg("STREAMS")
            .arg(stream)
            .arg(">")
            .query_async(&mut connection)
            .await?;
        let ids = entry_ids(reply);
        if ids.is_empty() {
            continue;
        }
        seen += ids.len();
        redis::cmd("XACK").arg(stream).arg("raw").arg(&ids).query_async::<()>(&mut connection).await?;
    }
    Ok(())
}

fn entry_ids(reply: redis::Value) -> Vec<String> {
    let list = |value: redis::Value| match value {
        redis::Value::Array(items) => items,
        redis::Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    };
    let mut ids = Vec::new();
    for stream in list(reply) {
        let mut parts = list(stream).into_iter().skip(1);
        for entry in parts.next().map(list).unwrap_or_default() {
            if let Some(redis::Value::BulkString(id)) = list(entry).into_iter().next() {
                ids.push(String::from_utf8_lossy(&id).into_owned());
            }
        }
    }
    ids
}
