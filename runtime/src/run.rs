//! One event's run through a pipeline: how it answers its caller, exactly once, and how the
//! pipeline knows when background work has drained.

use crate::context::Context;
use crate::error::{ErrorRecord, StepError};
use crate::event::{Event, EventId, Response};
use crate::streaming::{Chunk, Chunks};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, mpsc, oneshot};

/// Counts events still being processed whose work may outlive the call that started them (not
/// an event run in place), so that `wait_for_completion` can drain them.
#[derive(Default)]
pub struct Tracker {
    in_flight: AtomicUsize,
    idle: Notify,
}

impl Tracker {
    /// Waits until no event is in flight.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Events in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn enter(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    fn leave(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

/// An event's run on the tokio executor. Branches hold clones; when the last clone is dropped
/// the run is over, and a caller still waiting is answered `204` (the event was dropped before
/// reaching the responder), so no caller ever hangs.
pub struct Run(Held);

/// Where a run's state lives.
enum Held {
    /// Shared with the branches and queue workers that hold clones of the run.
    Shared(Arc<RunInner>),
    /// On the stack of the call that runs the event in place (a graph that never waits): no
    /// allocation per event, since nothing outlives that call.
    InPlace(RunInner),
}

impl Clone for Run {
    fn clone(&self) -> Self {
        match &self.0 {
            Held::Shared(inner) => Run(Held::Shared(Arc::clone(inner))),
            // Only a node that waits (a queue) keeps a run, and a graph with such a node never
            // runs in place. Should that ever change, the clone is a run of its own that answers
            // no one, and the error is logged rather than the process stopped.
            Held::InPlace(inner) => {
                tracing::error!(event_id = %inner.id, "a run in place was kept by a node that waits");
                debug_assert!(false, "a run in place was kept by a node that waits");
                Run::start(Reply::Given, inner.id.clone(), Arc::clone(&inner.context), None, inner.at_end)
            }
        }
    }
}

struct RunInner {
    reply: Mutex<Reply>,
    id: EventId,
    context: Arc<Context>,
    /// What counts the run in flight; none for a run in place, which ends before the call that
    /// runs it returns, so that nothing waiting for background work needs to count it.
    tracker: Option<Arc<Tracker>>,
    at_end: bool,
    /// Streaming steps of the event still producing chunks: while there are any, what a
    /// responder answers is the next chunk of a streamed answer.
    streams: AtomicUsize,
}

/// Where a run's answer goes.
enum Reply {
    /// To a caller waiting on this channel.
    Channel(oneshot::Sender<Response>),
    /// Into this slot, taken by the pipeline when the run is over: an event run in place, with
    /// the caller still on the stack (see [`Run::in_place`]).
    Slot(Option<Response>),
    /// As the chunks of a streamed answer, whose head the caller has. A chunk that finds the
    /// channel full waits in `overflow` (a responder cannot wait), in order, until the
    /// streaming step makes room before its next chunk.
    Chunks { sender: mpsc::Sender<Chunk>, overflow: VecDeque<Chunk> },
    /// Already sent, or taken.
    Given,
}

impl Reply {
    /// Adds a chunk to a streamed answer, in order.
    fn push_chunk(&mut self, chunk: Chunk) {
        if let Reply::Chunks { sender, overflow } = self {
            if !overflow.is_empty() {
                overflow.push_back(chunk);
            } else if let Err(mpsc::error::TrySendError::Full(chunk)) = sender.try_send(chunk) {
                overflow.push_back(chunk);
            }
        }
    }

    /// Ends a streamed answer: the chunks still waiting are sent on, in the background when the
    /// caller reads slower than they came.
    fn close_chunks(&mut self) {
        let Reply::Chunks { .. } = self else { return };
        let Reply::Chunks { sender, mut overflow } = std::mem::replace(self, Reply::Given) else { return };
        while let Some(chunk) = overflow.pop_front() {
            if let Err(mpsc::error::TrySendError::Full(chunk)) = sender.try_send(chunk)
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                overflow.push_front(chunk);
                runtime.spawn(async move {
                    for chunk in overflow {
                        if sender.send(chunk).await.is_err() {
                            return;
                        }
                    }
                });
                return;
            }
        }
    }
}

impl Run {
    /// A run for the event with this id, answering through `reply`.
    pub fn new(id: EventId, context: Arc<Context>, tracker: Arc<Tracker>, reply: oneshot::Sender<Response>) -> Self {
        Run::start(Reply::Channel(reply), id, context, Some(tracker), false)
    }

    /// A run whose answer the pipeline takes with [`Run::take_answer`] once every node has
    /// returned: for a graph that never waits, which runs each event to its end in one poll,
    /// so no channel is needed between the nodes and the caller. `at_end` as in
    /// [`Run::answered_at_end`].
    pub(crate) fn in_place(id: EventId, context: Arc<Context>, at_end: bool) -> Self {
        Run(Held::InPlace(RunInner {
            reply: Mutex::new(Reply::Slot(None)),
            id,
            context,
            tracker: None,
            at_end,
            streams: AtomicUsize::new(0),
        }))
    }

    /// A run counted in flight by `tracker`, if any, until its last clone is dropped.
    fn start(reply: Reply, id: EventId, context: Arc<Context>, tracker: Option<Arc<Tracker>>, at_end: bool) -> Self {
        if let Some(tracker) = &tracker {
            tracker.enter();
        }
        Run(Held::Shared(Arc::new(RunInner {
            reply: Mutex::new(reply),
            id,
            context,
            tracker,
            at_end,
            streams: AtomicUsize::new(0),
        })))
    }

    fn inner(&self) -> &RunInner {
        match &self.0 {
            Held::Shared(inner) => inner,
            Held::InPlace(inner) => inner,
        }
    }

    /// The answer of a run made [`Run::in_place`], once its nodes have returned: what a node
    /// answered, else what the end of the run answers (`204`, or `202` at the end).
    pub(crate) fn take_answer(self) -> Response {
        let inner = self.inner();
        let given = inner.reply.lock().ok().map(|mut slot| std::mem::replace(&mut *slot, Reply::Given));
        match given {
            Some(Reply::Slot(Some(response))) => response,
            _ => end_answer(&inner.id, inner.at_end),
        }
    }

    /// A run answered only when it ends: `202 {"id"}` once every path has finished, or the first
    /// unhandled failure. Responders do not answer. A function that hands events to a stream
    /// answers this way, so that a `202` means the record is in the stream; a stream consumer
    /// runs this way, so that it acknowledges a record only after its steps are done.
    pub fn answered_at_end(
        id: EventId,
        context: Arc<Context>,
        tracker: Arc<Tracker>,
        reply: oneshot::Sender<Response>,
    ) -> Self {
        Run::start(Reply::Channel(reply), id, context, Some(tracker), true)
    }

    /// The pipeline's context.
    pub fn context(&self) -> &Context {
        &self.inner().context
    }

    /// The graph's context, to send where the run's borrow does not reach (the blocking pool).
    pub(crate) fn shared_context(&self) -> Arc<Context> {
        Arc::clone(&self.inner().context)
    }

    /// Answers the caller, unless someone already did.
    pub fn reply(&self, response: Response) {
        self.reply_with(|| response);
    }

    /// Answers with what `make` builds, building it only if the caller still waits.
    fn reply_with(&self, make: impl FnOnce() -> Response) {
        let inner = self.inner();
        let Ok(mut reply) = inner.reply.lock() else { return };
        match &mut *reply {
            Reply::Slot(slot @ None) => *slot = Some(with_event_id(make(), &inner.id)),
            Reply::Channel(_) => {
                if let Reply::Channel(sender) = std::mem::replace(&mut *reply, Reply::Given) {
                    drop(reply);
                    let _ = sender.send(with_event_id(make(), &inner.id));
                }
            }
            Reply::Slot(Some(_)) | Reply::Chunks { .. } | Reply::Given => {}
        }
    }

    /// True while the caller still waits.
    pub fn pending(&self) -> bool {
        self.inner().reply.lock().map(|reply| matches!(*reply, Reply::Channel(_) | Reply::Slot(None))).unwrap_or(false)
    }

    /// A streaming step begins: until the hold is let go, responders answer with chunks.
    pub(crate) fn begin_stream(&self) -> StreamHold<'_> {
        self.inner().streams.fetch_add(1, Ordering::AcqRel);
        StreamHold(Some(self))
    }

    /// Whether the caller has the head of a streamed answer.
    pub(crate) fn is_streaming(&self) -> bool {
        self.inner().reply.lock().is_ok_and(|reply| matches!(*reply, Reply::Chunks { .. }))
    }

    /// Gives a caller still waiting the head of a streamed answer (of no chunks so far): what a
    /// streaming step whose chunks answer does when it ends, so that a stream none of whose
    /// chunks reached a responder answers `200` with no chunks rather than `204`.
    pub(crate) fn open_chunks(&self) {
        let inner = self.inner();
        let Ok(mut reply) = inner.reply.lock() else { return };
        open(&mut reply, &inner.id);
    }

    /// Whether the caller of a streamed answer, or of one not begun, has gone away.
    pub(crate) fn caller_gone(&self) -> bool {
        self.inner().reply.lock().is_ok_and(|reply| match &*reply {
            Reply::Channel(sender) => sender.is_closed(),
            Reply::Chunks { sender, .. } => sender.is_closed(),
            Reply::Slot(_) | Reply::Given => false,
        })
    }

    /// Waits until the streamed answer can take another chunk: the chunks that overflowed are
    /// sent first. What keeps a fast producer from running ahead of a slow caller.
    pub(crate) async fn chunk_room(&self) {
        let (sender, waiting) = {
            let Ok(mut reply) = self.inner().reply.lock() else { return };
            let Reply::Chunks { sender, overflow } = &mut *reply else { return };
            (sender.clone(), std::mem::take(overflow))
        };
        for chunk in waiting {
            if sender.send(chunk).await.is_err() {
                return;
            }
        }
        drop(sender.reserve().await);
    }

    fn end_stream(&self) {
        let inner = self.inner();
        if inner.streams.fetch_sub(1, Ordering::AcqRel) == 1
            && let Ok(mut reply) = inner.reply.lock()
        {
            reply.close_chunks();
        }
    }

    /// Whether a responder's output answers the caller: false for a run answered at its end.
    pub fn takes_responses(&self) -> bool {
        !self.inner().at_end
    }

    /// Answers with this body as JSON (status 200), or, while a streaming step produces, as the
    /// next chunk of a streamed answer.
    pub fn respond(&self, body: &Value) {
        let inner = self.inner();
        if inner.at_end {
            return;
        }
        if inner.streams.load(Ordering::Acquire) > 0 {
            let Ok(mut reply) = inner.reply.lock() else { return };
            open(&mut reply, &inner.id);
            reply.push_chunk(Chunk::Data(body.clone()));
            return;
        }
        self.reply_with(|| Response::json(200, body));
    }

    /// An unhandled failure: logged, and answered with its status and a JSON error if the
    /// caller still waits; a streamed answer ends with it as its last chunk.
    pub fn fail(&self, step: &str, error: &StepError) {
        let inner = self.inner();
        log_failure(&inner.id, step, error, &inner.context);
        if let Ok(mut reply) = inner.reply.lock()
            && let Reply::Chunks { .. } = &*reply
        {
            let message = error.public_message(step, inner.context.expose_errors);
            let failure = json!({
                "error": message,
                "id": inner.id.text(),
                "step": step,
                "status": error.status(),
                "kind": error.kind.as_str(),
            });
            reply.push_chunk(Chunk::Failed(failure));
            reply.close_chunks();
            return;
        }
        self.reply(error_response(step, error, &inner.id, inner.context.expose_errors));
    }

    /// Records a failure in the error stream, if there is one.
    pub fn record(&self, step: &str, event: &Event, error: &StepError) {
        record(self.context(), step, event, error);
    }
}

impl Drop for RunInner {
    fn drop(&mut self) {
        let reply = self.reply.get_mut().ok().map(|reply| std::mem::replace(reply, Reply::Given));
        match reply {
            Some(Reply::Channel(sender)) => {
                let _ = sender.send(end_answer(&self.id, self.at_end));
            }
            Some(mut chunks @ Reply::Chunks { .. }) => chunks.close_chunks(),
            _ => {}
        }
        if let Some(tracker) = &self.tracker {
            tracker.leave();
        }
    }
}

/// A streaming step's hold on its run: while any is held, responders answer with chunks; the
/// last one let go ends the streamed answer.
pub(crate) struct StreamHold<'r>(Option<&'r Run>);

impl StreamHold<'_> {
    /// Lets go now.
    pub(crate) fn release(mut self) {
        if let Some(run) = self.0.take() {
            run.end_stream();
        }
    }
}

impl Drop for StreamHold<'_> {
    fn drop(&mut self) {
        if let Some(run) = self.0.take() {
            run.end_stream();
        }
    }
}

/// Gives a caller still waiting the head of a streamed answer; later chunks go to it.
fn open(reply: &mut Reply, id: &EventId) {
    if !matches!(reply, Reply::Channel(_)) {
        return;
    }
    let (sender, chunks) = Chunks::channel();
    if let Reply::Channel(caller) = std::mem::replace(reply, Reply::Chunks { sender, overflow: VecDeque::new() }) {
        let mut head = Response::streamed(chunks);
        head.event_id = Some(id.clone());
        // A caller that has gone drops the head, and with it the stream's receiver: the closed
        // sender left behind tells the streaming step so.
        let _ = caller.send(head);
    }
}

/// What a caller gets when a run ends with no answer given: `202 {"id"}` for a run answered at
/// its end, else `204` (the event was dropped before the responder).
fn end_answer(id: &EventId, at_end: bool) -> Response {
    let end = if at_end { accepted(id) } else { Response::new(204, "application/json", Vec::new()) };
    with_event_id(end, id)
}

/// `202 {"id": ...}`: taken in, with no answer from the graph to wait for. Every event of a
/// stream consumer ends with one, so it is written without building a JSON map first.
pub(crate) fn accepted(id: &EventId) -> Response {
    #[derive(serde::Serialize)]
    struct Accepted<'i> {
        id: &'i EventId,
    }
    Response::json(202, &Accepted { id })
}

/// An event's run on the sync executor: plain fields, one thread.
pub struct SyncRun<'c> {
    context: &'c Context,
    id: EventId,
    answer: Option<Response>,
}

impl<'c> SyncRun<'c> {
    /// A run for the event with this id.
    #[inline]
    pub fn new(id: EventId, context: &'c Context) -> Self {
        SyncRun { context, id, answer: None }
    }

    /// The pipeline's context.
    #[inline]
    pub fn context(&self) -> &Context {
        self.context
    }

    /// True while no answer is set.
    pub fn pending(&self) -> bool {
        self.answer.is_none()
    }

    /// The responder's output, unless an answer is set.
    #[inline]
    pub fn respond(&mut self, body: &Value) {
        if self.answer.is_none() {
            self.answer = Some(Response::json(200, body));
        }
    }

    /// The end of the chain: its body answers unless a responder did (the sync engine's rule).
    #[inline]
    pub fn finish(&mut self, body: &Value) {
        self.respond(body);
    }

    /// An explicit response.
    pub fn reply(&mut self, response: Response) {
        if self.answer.is_none() {
            self.answer = Some(response);
        }
    }

    /// An unhandled failure.
    pub fn fail(&mut self, step: &str, error: &StepError) {
        log_failure(&self.id, step, error, self.context);
        let response = error_response(step, error, &self.id, self.context.expose_errors);
        self.reply(response);
    }

    /// Records a failure in the error stream, if there is one.
    pub fn record(&self, step: &str, event: &Event, error: &StepError) {
        record(self.context, step, event, error);
    }

    /// The caller's answer: the responder's body, an explicit response, or `204` when the event
    /// was dropped.
    #[inline]
    pub fn into_response(self) -> Response {
        let mut response = self.answer.unwrap_or_else(|| Response::new(204, "application/json", Vec::new()));
        // The run's own id, moved: `with_event_id` would clone it.
        if response.event_id.is_none() {
            response.event_id = Some(self.id);
        }
        response
    }
}

pub(crate) fn record(context: &Context, step: &str, event: &Event, error: &StepError) {
    if let Some(stream) = context.error_stream() {
        stream.append(ErrorRecord::new(context.function_name(), step, event, error));
    }
}

/// An unhandled failure, with its cause, in the log. A 5xx is one `error` line with the event
/// id, step, status and cause (credentials and declared secrets redacted): the first of each
/// cause always, repeats a few a second for each step, so that a flood cannot flood the log nor
/// hide a new cause. A 4xx is the caller's own mistake, answered with its reason: a `debug`
/// line, never counted against the step's lines.
fn log_failure(id: &EventId, step: &str, error: &StepError, context: &Context) {
    if error.status() < 500 {
        tracing::debug!(event_id = %id, step, status = error.status(), kind = error.kind.as_str(), "refused: {}", context.redact(&error.message));
        return;
    }
    if crate::logging::allow(step, &error.message) {
        let cause = context.redact(&error.message);
        tracing::error!(event_id = %id, step, status = error.status(), kind = error.kind.as_str(), "unhandled failure: {cause}");
    }
}

/// `{"error", "id", "step"}` with the failure's status: the cause of a 5xx only when `expose`
/// (see [`StepError::public_message`]); `Allow` on a 405, `Retry-After` on a 503.
pub fn error_response(step: &str, error: &StepError, id: &EventId, expose: bool) -> Response {
    let message = error.public_message(step, expose);
    let mut response = Response::json(error.status(), &json!({ "error": message, "id": id.text(), "step": step }));
    if let Some(allow) = error.allow() {
        response.headers.push(("allow".to_string(), allow.to_string()));
    }
    if error.kind.retryable() {
        response.headers.push(("retry-after".to_string(), "1".to_string()));
    }
    if error.kind == crate::error::ErrorKind::Unauthenticated {
        response.headers.push(("www-authenticate".to_string(), "Bearer realm=\"graphc\"".to_string()));
    }
    response.event_id = Some(id.clone());
    response
}

#[inline]
fn with_event_id(mut response: Response, id: &EventId) -> Response {
    if response.event_id.is_none() {
        response.event_id = Some(id.clone());
    }
    response
}
