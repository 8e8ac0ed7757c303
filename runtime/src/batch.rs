//! Batch runs: a graph over a file of events (JSON Lines), as MLRun's `execute_graph` does, with
//! a bounded number in flight, the answers written in input order, failures to an error file,
//! progress on a terminal and a closing summary. `graphc run` and the generated binary's `run`
//! command call [`run`]; Rust callers may too.

use crate::event::{Event, EventId, Response};
use crate::pipeline::Handler;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a batch runs.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// Events processed at once.
    pub concurrency: usize,
    /// Show progress (events done, rate, time left) on standard error.
    pub progress: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions { concurrency: 64, progress: false }
    }
}

/// What a batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Events read.
    pub events: usize,
    /// Events answered with a 2xx status.
    pub succeeded: usize,
    /// Events that failed: a status of 400 or more, or a line that is not JSON.
    pub failed: usize,
}

/// An input line as an event: a JSON object with a `body` and only event fields (`id`, `key`,
/// `path`, `method`, `headers`) is an event; any other JSON value is a body.
pub fn event_from_line(line: &str) -> Result<Event, String> {
    let value: Value = serde_json::from_str(line).map_err(|error| format!("not JSON: {error}"))?;
    const EVENT_FIELDS: &[&str] = &["body", "id", "key", "path", "method", "headers"];
    let Value::Object(fields) = &value else { return Ok(Event::new(value)) };
    if !fields.contains_key("body") || fields.keys().any(|key| !EVENT_FIELDS.contains(&key.as_str())) {
        return Ok(Event::new(value));
    }
    let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_string);
    let id = text("id").filter(|id| !id.is_empty()).map_or_else(EventId::fresh, EventId::Given);
    let mut event = Event::arrived(fields.get("body").cloned().unwrap_or(Value::Null), id);
    if let Some(key) = text("key") {
        event.key = key;
    }
    if let Some(path) = text("path") {
        event.path = path.into();
    }
    if let Some(method) = text("method") {
        event.method = method.into();
    }
    if let Some(Value::Object(headers)) = fields.get("headers") {
        for (name, value) in headers {
            if let Some(value) = value.as_str() {
                event = event.with_header(name, value);
            }
        }
    }
    Ok(event)
}

/// Writes one answer line, `{"id", "status", "body"}`: a JSON body is written as it came, any
/// other as a string.
fn write_answer(output: &mut impl Write, response: &Response) -> std::io::Result<()> {
    let id = response.event_id.as_ref().map(EventId::text).unwrap_or_default();
    write!(output, "{{\"id\":{},\"status\":{},\"body\":", Value::String(id), response.status)?;
    if response.content_type.starts_with("application/json")
        && serde_json::from_slice::<serde::de::IgnoredAny>(&response.body).is_ok()
    {
        output.write_all(&response.body)?;
    } else {
        write!(output, "{}", Value::String(String::from_utf8_lossy(&response.body).into_owned()))?;
    }
    writeln!(output, "}}")
}

/// Lines handed to one task: a task per event would cost more than a small step does.
const CHUNK: usize = 32;

/// Runs every line of `input` through `handler`, at most `options.concurrency` events at once,
/// writing one answer line per event to `output` in input order, and one line per failure (with
/// its 1-based input line) to `errors`. Background work is drained before the summary is
/// returned.
pub async fn run<H: Handler>(
    handler: Arc<H>,
    input: impl BufRead,
    total: Option<usize>,
    mut output: impl Write,
    mut errors: impl Write,
    options: &BatchOptions,
) -> std::io::Result<Summary> {
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut in_flight = tokio::task::JoinSet::new();
    // Chunks that finished before an earlier one: held until they can be written in order.
    let mut ready: BTreeMap<usize, Vec<Result<Response, String>>> = BTreeMap::new();
    let (mut next_chunk, mut next_to_write, mut written) = (0usize, 0usize, 0usize);
    let mut last_progress = Instant::now();
    let mut lines = input.lines();
    let mut exhausted = false;
    // Each chunk's events run one after another in their task; chunks run concurrently.
    let chunks_in_flight = options.concurrency.max(1);
    loop {
        while !exhausted && in_flight.len() < chunks_in_flight {
            let mut chunk = Vec::with_capacity(CHUNK);
            for line in lines.by_ref().take(CHUNK) {
                chunk.push(line?);
            }
            if chunk.len() < CHUNK {
                exhausted = true;
            }
            if chunk.is_empty() {
                break;
            }
            summary.events += chunk.len();
            let handler = Arc::clone(&handler);
            let index = next_chunk;
            next_chunk += 1;
            in_flight.spawn(async move {
                let mut answers = Vec::with_capacity(chunk.len());
                for line in chunk {
                    answers.push(match event_from_line(&line) {
                        Ok(event) => Ok(handler.handle(event).await),
                        Err(reason) => Err(reason),
                    });
                }
                (index, answers)
            });
        }
        let Some(joined) = in_flight.join_next().await else { break };
        let (index, answers) = joined.map_err(std::io::Error::other)?;
        ready.insert(index, answers);
        while let Some(answers) = ready.remove(&next_to_write) {
            for answer in answers {
                written += 1;
                match &answer {
                    Ok(response) => {
                        write_answer(&mut output, response)?;
                        if response.status < 400 {
                            summary.succeeded += 1;
                        } else {
                            summary.failed += 1;
                            let id = response.event_id.as_ref().map(EventId::text).unwrap_or_default();
                            let body = serde_json::from_slice::<Value>(&response.body).unwrap_or_else(|_| {
                                Value::String(String::from_utf8_lossy(&response.body).into_owned())
                            });
                            writeln!(
                                errors,
                                "{}",
                                json!({ "line": written, "id": id, "status": response.status, "error": body })
                            )?;
                        }
                    }
                    Err(reason) => {
                        summary.failed += 1;
                        writeln!(
                            output,
                            "{}",
                            json!({ "id": Value::Null, "status": 400, "body": { "error": reason } })
                        )?;
                        writeln!(errors, "{}", json!({ "line": written, "status": 400, "error": reason }))?;
                    }
                }
            }
            next_to_write += 1;
        }
        if options.progress && last_progress.elapsed() >= Duration::from_millis(200) {
            last_progress = Instant::now();
            eprint!("\r{}", progress(written, total, started.elapsed()));
        }
    }
    handler.drain().await;
    output.flush()?;
    errors.flush()?;
    if options.progress {
        eprintln!("\r{}", progress(written, total, started.elapsed()));
    }
    Ok(summary)
}

/// `1200/5000 events, 3400/s, 1 s left`.
fn progress(done: usize, total: Option<usize>, elapsed: Duration) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
    match total {
        Some(total) => {
            let left = (total.saturating_sub(done)) as f64 / rate.max(1e-9);
            format!("{done}/{total} events, {rate:.0}/s, {left:.0} s left   ")
        }
        None => format!("{done} events, {rate:.0}/s   "),
    }
}
