//! Streamed answers (docs/semantics.md, "Streamed answers"): a step whose handler returns an
//! iterator of chunks, each passed on in turn as it is produced, and the answer that carries
//! them to the caller as they come (JSON lines, or server-sent events for a caller that accepts
//! `text/event-stream`).
//!
//! The handler's iterator runs on the blocking pool, since producing a chunk may take as long as
//! the user's code likes (an LLM's next token); it hands each chunk to the event's task through
//! a small bounded channel, so that a slow caller slows the producer instead of filling memory.
//! A caller that goes away, or a deadline that passes, closes that channel: the producer stops
//! at its next chunk and its iterator is dropped.

use crate::context::Context;
use crate::error::StepError;
use crate::event::Event;
use crate::node::{Catcher, NoCatcher, Node, SyncNode, entry_copy, fail_or_catch};
use crate::run::{Run, SyncRun};
use crate::step::Entry;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// One piece of a streamed answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Chunk {
    /// A chunk's body.
    Data(Value),
    /// A failure after the answer began, when its status can no longer be sent: the stream's
    /// last chunk, `{"error", "id", "step", "status", "kind"}`.
    Failed(Value),
}

impl Chunk {
    /// A failure's status (500 unless it carries one); `None` for a chunk's body.
    pub fn failure_status(&self) -> Option<u16> {
        let Chunk::Failed(error) = self else { return None };
        Some(error.get("status").and_then(Value::as_u64).and_then(|status| u16::try_from(status).ok()).unwrap_or(500))
    }
}

/// How a streamed answer is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChunkFormat {
    /// One JSON value per line (`application/x-ndjson`): what a caller gets unless it asks for
    /// events.
    #[default]
    Lines,
    /// Server-sent events (`text/event-stream`): `data: JSON` per chunk, and a failure as
    /// `event: error`.
    Events,
}

/// The content type of a streamed answer written as JSON lines.
pub const LINES: &str = "application/x-ndjson";
/// The content type of a streamed answer written as server-sent events.
pub const EVENTS: &str = "text/event-stream";

impl ChunkFormat {
    /// The format a caller's `Accept` header asks for: events when it names `text/event-stream`.
    pub fn accepted(accept: Option<&str>) -> ChunkFormat {
        let wants_events = accept.is_some_and(|accept| {
            accept.split(',').any(|range| range.split(';').next().is_some_and(|media| media.trim() == EVENTS))
        });
        if wants_events { ChunkFormat::Events } else { ChunkFormat::Lines }
    }

    /// The format of an answer with this content type, if it is a streamed one.
    pub fn of_content_type(content_type: &str) -> Option<ChunkFormat> {
        match content_type {
            LINES => Some(ChunkFormat::Lines),
            EVENTS => Some(ChunkFormat::Events),
            _ => None,
        }
    }

    /// The content type it is sent with.
    pub fn content_type(self) -> &'static str {
        match self {
            ChunkFormat::Lines => LINES,
            ChunkFormat::Events => EVENTS,
        }
    }

    /// A chunk as its bytes on the wire.
    pub fn render(self, chunk: &Chunk) -> Vec<u8> {
        let (value, failed) = match chunk {
            Chunk::Data(value) => (value, false),
            Chunk::Failed(value) => (value, true),
        };
        // A `Value` always serialises.
        let json = serde_json::to_vec(value).unwrap_or_default();
        match self {
            ChunkFormat::Lines => {
                let mut line = json;
                line.push(b'\n');
                line
            }
            ChunkFormat::Events => {
                let mut event = Vec::with_capacity(json.len() + 24);
                if failed {
                    event.extend_from_slice(b"event: error\n");
                }
                event.extend_from_slice(b"data: ");
                event.extend_from_slice(&json);
                event.extend_from_slice(b"\n\n");
                event
            }
        }
    }

    /// The chunks of a whole answer written in this format, parsed back: what a test reads.
    pub fn parse(self, body: &[u8]) -> Vec<Value> {
        let text = String::from_utf8_lossy(body);
        match self {
            ChunkFormat::Lines => text.lines().filter(|line| !line.is_empty()).map(parse_json).collect(),
            ChunkFormat::Events => text
                .split("\n\n")
                .filter_map(|event| event.lines().find_map(|line| line.strip_prefix("data: ")))
                .map(parse_json)
                .collect(),
        }
    }
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Chunks the answer buffers for a caller that reads slower than they are produced, before
/// the producer waits.
pub(crate) const ANSWER_AHEAD: usize = 64;

/// Chunks a producer runs ahead of the steps that take them.
const PRODUCED_AHEAD: usize = 4;

/// The chunks of a streamed answer, as they come. A response is cloned rarely (a test keeps
/// one): clones share the chunks, which only one of them can take.
#[derive(Clone)]
pub struct Chunks {
    receiver: Arc<Mutex<Option<ChunkReceiver>>>,
}

impl Chunks {
    /// A new stream of chunks and the sender that feeds it.
    pub(crate) fn channel() -> (mpsc::Sender<Chunk>, Chunks) {
        let (sender, chunks) = mpsc::channel(ANSWER_AHEAD);
        (sender, Chunks { receiver: Arc::new(Mutex::new(Some(ChunkReceiver { chunks, guard: None }))) })
    }

    /// The receiving end, once, with what must live as long as it.
    pub fn take(&self) -> Option<ChunkReceiver> {
        self.receiver.lock().ok()?.take()
    }

    /// Keeps `guard` (the server's concurrency slot for the request) until the stream has been
    /// read or dropped.
    pub fn hold(&self, guard: impl Send + 'static) {
        if let Ok(mut receiver) = self.receiver.lock()
            && let Some(receiver) = receiver.as_mut()
        {
            receiver.guard = Some(Box::new(guard));
        }
    }

    /// Every chunk, until the stream ends.
    pub async fn collect(&self) -> Vec<Chunk> {
        let mut chunks = Vec::new();
        if let Some(mut receiver) = self.take() {
            while let Some(chunk) = receiver.chunks.recv().await {
                chunks.push(chunk);
            }
        }
        chunks
    }
}

/// A streamed answer's chunks as they come, and what must live as long as they do (the
/// request's concurrency slot).
pub struct ChunkReceiver {
    /// The chunks.
    pub chunks: mpsc::Receiver<Chunk>,
    /// Dropped when the stream has been read or dropped.
    pub guard: Option<Box<dyn Send>>,
}

impl std::fmt::Debug for Chunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Chunks")
    }
}

impl PartialEq for Chunks {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.receiver, &other.receiver)
    }
}

/// What a streaming handler's iterator yields: a chunk's body, or a failure that ends the
/// stream.
pub trait ChunkOutput {
    /// The chunk's body.
    fn into_chunk(self) -> Result<Value, StepError>;
}

impl ChunkOutput for Value {
    fn into_chunk(self) -> Result<Value, StepError> {
        Ok(self)
    }
}

impl<E: Into<StepError>> ChunkOutput for Result<Value, E> {
    fn into_chunk(self) -> Result<Value, StepError> {
        self.map_err(Into::into)
    }
}

/// What a typed streaming handler's iterator yields: a record of the graph, or a failure.
pub trait TypedChunk<Out> {
    /// The chunk's body.
    fn into_chunk(self) -> Result<Value, StepError>;
}

fn write_chunk(output: impl Serialize) -> Result<Value, StepError> {
    serde_json::to_value(output).map_err(|error| StepError::new(format!("cannot write the step's chunk: {error}")))
}

impl<Out: Serialize> TypedChunk<Out> for Out {
    fn into_chunk(self) -> Result<Value, StepError> {
        write_chunk(self)
    }
}

impl<Out: Serialize, E: Into<StepError>> TypedChunk<Out> for Result<Out, E> {
    fn into_chunk(self) -> Result<Value, StepError> {
        write_chunk(self.map_err(Into::into)?)
    }
}

/// The chunks of one event, as the handler's iterator yields them.
pub type ChunkIter = Box<dyn Iterator<Item = Result<Value, StepError>> + Send>;

/// A step that answers each event with chunks: a user's function returning an iterator.
pub trait ChunkStep: Send + Sync + 'static {
    /// Starts the chunks of one event's body: a failure here (an input that does not fit) is
    /// the step's failure, before any chunk.
    fn start(&self, body: Value, context: &Context) -> Result<ChunkIter, StepError>;
}

/// A user's streaming function, its bounds checked where generated code names it (as
/// [`crate::step::Checked`] is for other handlers).
pub struct StreamingFn<F> {
    function: F,
    start: fn(&F, Value) -> Result<ChunkIter, StepError>,
}

impl<F: Send + Sync + 'static> ChunkStep for StreamingFn<F> {
    fn start(&self, body: Value, _context: &Context) -> Result<ChunkIter, StepError> {
        (self.start)(&self.function, body)
    }
}

/// Wraps `fn(Value) -> impl IntoIterator<Item = Value or Result<Value, E>>`.
pub fn body_chunks<F, I>(function: F) -> StreamingFn<F>
where
    F: Fn(Value) -> I + Send + Sync + 'static,
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: ChunkOutput + 'static,
{
    StreamingFn {
        function,
        start: |function, body| Ok(Box::new(function(body).into_iter().map(ChunkOutput::into_chunk))),
    }
}

/// Wraps a typed `fn(In) -> impl IntoIterator<Item = Out or Result<Out, E>>` over the graph's
/// records: a body that does not fit `In` is 422, before any chunk.
pub fn typed_chunks<In, Out, F, I>(function: F) -> StreamingFn<F>
where
    F: Fn(In) -> I + Send + Sync + 'static,
    In: DeserializeOwned + 'static,
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: TypedChunk<Out> + 'static,
    Out: 'static,
{
    StreamingFn {
        function,
        start: |function, body| {
            let input = In::deserialize(body).map_err(|error| {
                StepError::invalid_input(format!("the body does not fit the step's input type: {error}"))
            })?;
            Ok(Box::new(function(input).into_iter().map(TypedChunk::<Out>::into_chunk)))
        },
    }
}

/// A streaming step, what follows each of its chunks, what follows their collected whole
/// (`collect()`), and its error handler.
pub struct StreamNode<S, N, W, C = NoCatcher> {
    name: &'static str,
    step: Arc<S>,
    next: N,
    whole: W,
    respond: bool,
    /// Some step that receives its chunks answers the caller: the answer streams, and ends
    /// when the caller goes away.
    answers: bool,
    catcher: C,
}

impl<S, N, W, C> StreamNode<S, N, W, C> {
    /// A streaming step with every part given: what generated code builds. `respond`: its own
    /// chunks answer; `answers`: they, or what some step after it makes of them, do.
    pub fn with(name: &'static str, step: S, next: N, whole: W, respond: bool, answers: bool, catcher: C) -> Self {
        StreamNode { name, step: Arc::new(step), next, whole, respond, answers: answers || respond, catcher }
    }
}

impl<S: ChunkStep, N: Node, W: Node, C: Catcher> Node for StreamNode<S, N, W, C> {
    const WAITS: bool = true;
    const BLOCKS: bool = true;

    fn reads_time(&self) -> bool {
        self.next.reads_time() || self.whole.reads_time() || self.catcher.reads_time()
    }

    async fn push(&self, event: &mut Event, run: &Run) {
        let copy = entry_copy::<C>(Entry::Body, event, run.context());
        let body = std::mem::take(&mut event.body);
        let (sender, mut produced) = mpsc::channel::<Result<Value, StepError>>(PRODUCED_AHEAD);
        let step = Arc::clone(&self.step);
        let context = run.shared_context();
        let producer = crate::pool::run(move || produce(&*step, body, &context, &sender));
        let stream = run.begin_stream();
        let deadline = event.deadline.map(tokio::time::Instant::from_std);
        let source: &Event = event;
        // The receiver moves in: when the consumer stops, a producer still running stops too.
        let consumer = async move {
            let mut collected = Vec::new();
            loop {
                let next = match deadline {
                    Some(deadline) => match tokio::time::timeout_at(deadline, produced.recv()).await {
                        Ok(next) => next,
                        Err(_) => {
                            break Err(StepError::timeout(
                                "the event's deadline passed while its chunks were produced",
                            ));
                        }
                    },
                    None => produced.recv().await,
                };
                let chunk = match next {
                    None => break Ok(collected),
                    Some(Err(error)) => break Err(error),
                    Some(Ok(chunk)) => chunk,
                };
                if W::ENDS {
                    self.pass_on(source, chunk, run).await;
                } else {
                    self.pass_on(source, chunk.clone(), run).await;
                    collected.push(chunk);
                }
                // Nothing left to stream to: the producer stops at its next chunk.
                if self.answers && run.caller_gone() {
                    break Ok(Vec::new());
                }
                run.chunk_room().await;
            }
        };
        let (produced, consumed) = tokio::join!(producer, consumer);
        let outcome = match (produced, consumed) {
            (Err(pool), _) => Err(StepError::unavailable(format!("step `{}` could not run: {pool}", self.name))),
            (Ok(()), outcome) => outcome,
        };
        match outcome {
            Ok(collected) => {
                if self.answers {
                    run.open_chunks();
                }
                // The collected whole is one event, answered as one.
                stream.release();
                if !(W::ENDS || self.answers && run.caller_gone()) {
                    let mut whole = event.clone();
                    whole.body = Value::Array(collected);
                    self.whole.push(&mut whole, run).await;
                }
            }
            Err(error) => {
                // A failure before the answer began is answered with its status; after, it is
                // the streamed answer's last chunk.
                if !run.is_streaming() {
                    stream.release();
                }
                event.body = Value::Null;
                let entry = copy.map(|copy| copy.into_entry(event));
                fail_or_catch(self.name, entry, &error, &self.catcher, run).await;
            }
        }
    }
}

/// On the sync executor (a pipeline composed by hand: the checker gives streaming steps the
/// async engine only) the chunks run down the chain in turn, on the caller's thread, and the
/// first that reaches the end answers, as the sync engine's rule is.
impl<S: ChunkStep, N: SyncNode, W: SyncNode, C: Catcher> SyncNode for StreamNode<S, N, W, C> {
    fn reads_time(&self) -> bool {
        SyncNode::reads_time(&self.next) || SyncNode::reads_time(&self.whole) || self.catcher.reads_time()
    }

    fn push_sync(&self, event: &mut Event, run: &mut SyncRun<'_>) {
        let copy = entry_copy::<C>(Entry::Body, event, run.context());
        let body = std::mem::take(&mut event.body);
        let mut collected = Vec::new();
        let started = crate::logging::guarded(|| self.step.start(body, run.context()))
            .unwrap_or_else(|payload| Err(StepError::panicked(&*payload)));
        let failure = match started {
            Err(error) => Some(error),
            Ok(mut chunks) => loop {
                let next = crate::logging::guarded(|| chunks.next())
                    .unwrap_or_else(|payload| Some(Err(StepError::panicked(&*payload))));
                match next {
                    None => break None,
                    Some(Err(error)) => break Some(error),
                    Some(Ok(chunk)) => {
                        let mut piece = piece_of(event, chunk);
                        if !W::ENDS {
                            collected.push(piece.body.clone());
                        }
                        if self.respond {
                            run.respond(&piece.body);
                        }
                        self.next.push_sync(&mut piece, run);
                    }
                }
            },
        };
        match failure {
            None if !W::ENDS => {
                let mut whole = event.clone();
                whole.body = Value::Array(collected);
                self.whole.push_sync(&mut whole, run);
            }
            None => {}
            Some(error) => crate::node::fail_or_catch_sync(self.name, copy, &error, &self.catcher, event, run),
        }
    }
}

impl<S, N: Node, W, C> StreamNode<S, N, W, C> {
    /// One chunk, as an event of its own (the event's id, headers and deadline, the chunk as its
    /// body), to the steps after this one.
    async fn pass_on(&self, event: &Event, chunk: Value, run: &Run) {
        let mut piece = piece_of(event, chunk);
        if self.respond {
            run.respond(&piece.body);
        }
        self.next.push(&mut piece, run).await;
    }
}

/// One chunk as an event of its own: the event's id, headers and deadline, the chunk as its body
/// (the event's body was taken by the step, so the copy does not copy it).
fn piece_of(event: &Event, chunk: Value) -> Event {
    let mut piece = event.clone();
    piece.body = chunk;
    piece
}

/// Runs the handler's iterator on a thread of the pool, each chunk into `sender`, until it ends,
/// fails, or no one takes its chunks any more.
fn produce<S: ChunkStep>(step: &S, body: Value, context: &Context, sender: &mpsc::Sender<Result<Value, StepError>>) {
    let chunks = match crate::logging::guarded(|| step.start(body, context)) {
        Ok(Ok(chunks)) => chunks,
        Ok(Err(error)) => {
            let _ = sender.blocking_send(Err(error));
            return;
        }
        Err(payload) => {
            let _ = sender.blocking_send(Err(StepError::panicked(&*payload)));
            return;
        }
    };
    let mut chunks = chunks;
    loop {
        let next = match crate::logging::guarded(|| chunks.next()) {
            Ok(next) => next,
            Err(payload) => Some(Err(StepError::panicked(&*payload))),
        };
        let Some(next) = next else { return };
        let failed = next.is_err();
        if sender.blocking_send(next).is_err() || failed {
            return;
        }
    }
}

/// `collect()`: what the streaming step before it produced, as one array, passed on as it is
/// (the streaming step's node gathers it).
#[derive(Clone, Copy, Debug, Default)]
pub struct Collect;

impl crate::step::Step for Collect {
    fn entry(&self) -> Entry {
        Entry::Kept
    }

    fn reads_time(&self) -> bool {
        false
    }

    fn process(&self, _event: &mut Event, _context: &Context) -> Result<crate::step::Flow, StepError> {
        Ok(crate::step::Flow::Next)
    }
}
