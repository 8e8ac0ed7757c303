//! A graph over a file of events (JSON Lines), as MLRun's `execute_graph` does, with
//! a bounded number in flight, the answers written in input order, failures to an error file,
//! progress on a terminal and a closing summary. `graphc run` and the generated binary's `run`
//! command call [`run`]; Rust callers may too.

use crate::event::{Event, EventId, Response};
use crate::pipeline::Handler;
use crate::streaming::Chunk;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a batch runs.
#[derive(Clone, Debug)]
pub struct JsonlOptions {
    /// Events processed at once.
    pub concurrency: usize,
    /// Show progress (events done, rate, time left) on standard error.
    pub progress: bool,
}

impl Default for JsonlOptions {
    fn default() -> Self {
        JsonlOptions { concurrency: 64, progress: false }
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

/// An input line as an event: a JSON envelope in its reserved form ([`crate::envelope`]: a
/// `body` and only envelope fields) is an event; any other JSON value is a body, whole.
pub fn event_from_line(line: &str) -> Result<Event, serde_json::Error> {
    let value: Value = serde_json::from_str(line)?;
    Ok(crate::envelope::Envelope::from_json(value).into_event())
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

/// Lines on their way to a worker: the place of the first among the events (answers are written
/// in this order), then each line with its 1-based line number in the file (failures name it).
struct Work {
    first: usize,
    lines: Vec<(usize, Result<String, LineError>)>,
}

/// Why a line is not an event: answered `400` with this as its error.
#[derive(Debug, thiserror::Error)]
enum LineError {
    #[error("not UTF-8: {0}")]
    NotUtf8(std::str::Utf8Error),
    #[error("not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
}

/// Writes a streamed answer's lines: one per chunk, `{"id", "status", "chunk", "body"}` (a
/// failure that ended the stream with its own status), or `{"id", "status": 200, "chunks": 0}`
/// for a stream of none. Returns the failure, if one ended it.
fn write_chunks(output: &mut impl Write, id: &str, chunks: &[Chunk]) -> std::io::Result<Option<(u16, Value)>> {
    if chunks.is_empty() {
        return writeln!(output, "{}", json!({ "id": id, "status": 200, "chunks": 0 })).map(|()| None);
    }
    let mut failure = None;
    for (index, chunk) in chunks.iter().enumerate() {
        let (status, body) = match chunk {
            Chunk::Data(body) => (200, body),
            Chunk::Failed(error) => {
                let status = chunk.failure_status().unwrap_or(500);
                failure = Some((status, error.clone()));
                (status, error)
            }
        };
        writeln!(output, "{}", json!({ "id": id, "status": status, "chunk": index, "body": body }))?;
    }
    Ok(failure)
}

/// What became of one line.
enum Outcome {
    Answered(Response),
    /// A streamed answer, read to its end.
    Streamed(Response, Vec<Chunk>),
    /// Not an event (not UTF-8, not JSON): answered 400 with this reason, the graph not run.
    Refused(LineError),
}

/// Lines handed to a worker at once: as many as take about this long, so that cheap events do
/// not pay a hand-over each and a slow one holds no line behind it.
const WORK_PER_HAND_OVER: Duration = Duration::from_micros(200);
const MOST_LINES_PER_HAND_OVER: usize = 64;

/// Runs every line of `input` through `handler`, at most `options.concurrency` events at once,
/// writing one answer line per event to `output` in input order, and one line per failure (with
/// its 1-based input line) to `errors`. Blank lines are skipped; a line that is not UTF-8 or not
/// JSON fails alone. Background work is drained before the summary is returned.
///
/// `concurrency` workers each take the next lines as soon as they are free: one line at a time
/// while events are slow, a few dozen when they take microseconds (measured as they run). Answers
/// that finish early wait for the ones before them, at most `window` events ahead of the oldest
/// unwritten one, which bounds memory whatever one event does.
pub async fn run<H: Handler>(
    handler: Arc<H>,
    input: impl BufRead,
    total: Option<usize>,
    mut output: impl Write,
    mut errors: impl Write,
    options: &JsonlOptions,
) -> std::io::Result<Summary> {
    let started = Instant::now();
    let concurrency = options.concurrency.max(1);
    let window = (concurrency * 64).max(1_024);
    let (work_sender, work) = tokio::sync::mpsc::channel::<Work>(concurrency * 2);
    let (answer_sender, mut answers) = tokio::sync::mpsc::unbounded_channel::<(usize, Vec<(usize, Outcome)>)>();
    let work = Arc::new(tokio::sync::Mutex::new(work));
    let cost = Arc::new(crate::pool::CallCost::new());
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (work, answer_sender, handler) = (Arc::clone(&work), answer_sender.clone(), Arc::clone(&handler));
        let cost = Arc::clone(&cost);
        workers.spawn(async move {
            loop {
                let Some(next) = work.lock().await.recv().await else { return };
                let began = Instant::now();
                let mut outcomes = Vec::with_capacity(next.lines.len());
                for (line_number, line) in next.lines {
                    outcomes.push((
                        line_number,
                        match line.and_then(|line| Ok(event_from_line(&line)?)) {
                            Ok(event) => {
                                let mut response = handler.handle(event).await;
                                match response.chunks.take() {
                                    Some(chunks) => Outcome::Streamed(response, chunks.collect().await),
                                    None => Outcome::Answered(response),
                                }
                            }
                            Err(reason) => Outcome::Refused(reason),
                        },
                    ));
                }
                cost.record(began.elapsed() / outcomes.len().max(1) as u32);
                if answer_sender.send((next.first, outcomes)).is_err() {
                    return;
                }
            }
        });
    }
    drop(answer_sender);
    let mut summary = Summary::default();
    let mut work_sender = Some(work_sender);
    let mut ready: BTreeMap<usize, Vec<(usize, Outcome)>> = BTreeMap::new();
    let (mut next_index, mut written, mut line_number) = (0usize, 0usize, 0usize);
    let mut last_progress = Instant::now();
    let mut exhausted = false;
    let mut lines = input.split(b'\n');
    loop {
        while let Some(sender) = work_sender.as_ref().filter(|_| next_index - written < window) {
            let Ok(permit) = sender.try_reserve() else { break };
            let per_hand_over = cost.estimate().map_or(1, |each| {
                (WORK_PER_HAND_OVER.as_nanos() / each.as_nanos().max(1)).clamp(1, MOST_LINES_PER_HAND_OVER as u128)
                    as usize
            });
            let mut chunk = Vec::with_capacity(per_hand_over);
            while chunk.len() < per_hand_over {
                let Some(bytes) = lines.next() else {
                    exhausted = true;
                    break;
                };
                line_number += 1;
                let line = match String::from_utf8(bytes?) {
                    Ok(mut line) => {
                        if line.ends_with('\r') {
                            line.pop();
                        }
                        if line_number == 1 && line.starts_with('\u{feff}') {
                            line.remove(0);
                        }
                        if line.trim().is_empty() {
                            continue;
                        }
                        Ok(line)
                    }
                    Err(error) => Err(LineError::NotUtf8(error.utf8_error())),
                };
                chunk.push((line_number, line));
            }
            if chunk.is_empty() {
                break;
            }
            let first = next_index;
            next_index += chunk.len();
            permit.send(Work { first, lines: chunk });
            if exhausted {
                break;
            }
        }
        if exhausted {
            // Closing the queue lets each worker end once it is empty.
            work_sender = None;
        }
        if work_sender.is_none() && written == next_index {
            break;
        }
        let Some((first, outcomes)) = answers.recv().await else { break };
        ready.insert(first, outcomes);
        while let Some(outcomes) = ready.remove(&written) {
            for (line, outcome) in outcomes {
                written += 1;
                summary.events += 1;
                match outcome {
                    Outcome::Answered(response) => {
                        write_answer(&mut output, &response)?;
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
                                json!({ "line": line, "id": id, "status": response.status, "error": body })
                            )?;
                        }
                    }
                    Outcome::Streamed(response, chunks) => {
                        let id = response.event_id.as_ref().map(EventId::text).unwrap_or_default();
                        match write_chunks(&mut output, &id, &chunks)? {
                            None => summary.succeeded += 1,
                            Some((status, error)) => {
                                summary.failed += 1;
                                writeln!(
                                    errors,
                                    "{}",
                                    json!({ "line": line, "id": id, "status": status, "error": error })
                                )?;
                            }
                        }
                    }
                    Outcome::Refused(reason) => {
                        summary.failed += 1;
                        let error = json!({ "error": reason.to_string() });
                        writeln!(output, "{}", json!({ "id": Value::Null, "status": 400, "body": error }))?;
                        writeln!(errors, "{}", json!({ "line": line, "status": 400, "error": error }))?;
                    }
                }
            }
        }
        if options.progress && last_progress.elapsed() >= Duration::from_millis(200) {
            last_progress = Instant::now();
            crate::logging::show_progress(&progress(written, total, started.elapsed()));
        }
    }
    while let Some(joined) = workers.join_next().await {
        joined.map_err(std::io::Error::other)?;
    }
    handler.drain().await;
    output.flush()?;
    errors.flush()?;
    if options.progress {
        crate::logging::end_progress(&progress(written, total, started.elapsed()));
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
