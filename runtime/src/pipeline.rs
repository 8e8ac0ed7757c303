//! Pipelines: a root node with its context, on the sync or the tokio executor, and the
//! `Handler` trait through which servers run them.

use crate::context::Context;
use crate::event::{Event, Response};
use crate::node::{Node, SyncNode};
use crate::run::{Run, SyncRun, Tracker};
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::oneshot;

/// The Open Inference Protocol's server-level paths, answered by every pipeline whatever its
/// graph (so over HTTP and under the mock alike): `GET /v2/health/live`, `/v2/health/ready` and
/// the server metadata `/v2`. A flow, or a distributed root that writes every event into its
/// stream, does not turn them into events. Events are mostly POSTs: the method is looked at in
/// line, the paths out of line.
#[inline]
fn server_answer(context: &Context, event: &Event) -> Option<Response> {
    if !matches!(&*event.method, "GET" | "HEAD") {
        return None;
    }
    server_path_answer(context, event)
}

#[inline(never)]
fn server_path_answer(context: &Context, event: &Event) -> Option<Response> {
    let body = match event.path.trim_end_matches('/') {
        crate::oip::paths::LIVE => serde_json::json!({ "live": true }),
        crate::oip::paths::READY => serde_json::json!({ "ready": true }),
        crate::oip::paths::SERVER => crate::oip::server_metadata(&context.root),
        _ => return None,
    };
    let mut response = Response::json(200, &body);
    response.event_id = Some(event.id.clone());
    Some(response)
}

/// Something that answers events: a pipeline on either executor.
pub trait Handler: Send + Sync + 'static {
    /// Processes one event and returns the caller's answer.
    fn handle(&self, event: Event) -> impl Future<Output = Response> + Send;
    /// Waits until background work (branches after the responder, queues) has drained.
    fn drain(&self) -> impl Future<Output = ()> + Send;
}

/// A pipeline on the sync executor: one chain of plain calls on the caller's thread.
pub struct SyncPipeline<N> {
    /// Shared, so that a server can send an event's whole run to the blocking pool.
    root: Arc<N>,
    context: Arc<Context>,
    /// Some step can read an event's time: each event is stamped as it comes in.
    stamps_time: bool,
    /// What recent events cost, which decides whether a served one runs on the pool.
    cost: crate::pool::CallCost,
}

impl<N: SyncNode> SyncPipeline<N> {
    /// A pipeline from its root node.
    pub fn new(root: N, context: Context) -> Self {
        SyncPipeline {
            stamps_time: root.reads_time(),
            root: Arc::new(root),
            context: Arc::new(context),
            cost: crate::pool::CallCost::new(),
        }
    }

    /// Processes one event, on this thread.
    pub fn process(&self, event: Event) -> Response {
        if let Some(answer) = server_answer(&self.context, &event) {
            return answer;
        }
        run_sync(&*self.root, &self.context, self.stamps_time, event)
    }

    /// The pipeline's context.
    pub fn context(&self) -> &Context {
        &self.context
    }
}

fn run_sync<N: SyncNode>(root: &N, context: &Context, stamps_time: bool, mut event: Event) -> Response {
    if stamps_time {
        event.stamp_arrival();
    }
    let mut run = SyncRun::new(event.id.clone(), context);
    root.push_sync(&mut event, &mut run);
    run.into_response()
}

/// A server's events run on the blocking pool, whole: a sync graph's steps are plain calls of
/// user code, which must not hold up the server's worker threads (health probes answer there).
impl<N: SyncNode> Handler for SyncPipeline<N> {
    async fn handle(&self, event: Event) -> Response {
        if let Some(answer) = server_answer(&self.context, &event) {
            return answer;
        }
        if crate::pool::may_block_here() {
            return run_sync(&*self.root, &self.context, self.stamps_time, event);
        }
        if self.cost.runs_in_place() {
            return crate::pool::run_in_place(&self.cost, || {
                run_sync(&*self.root, &self.context, self.stamps_time, event)
            });
        }
        let (root, context, stamps_time) = (Arc::clone(&self.root), Arc::clone(&self.context), self.stamps_time);
        let id = event.id.clone();
        crate::pool::run_measured(&self.cost, move || run_sync(&*root, &context, stamps_time, event))
            .await
            .unwrap_or_else(|error| pool_failure(&id, &error))
    }

    async fn drain(&self) {}
}

/// An event whose deadline passed before it entered (a stream record that waited too long, or
/// came from a caller that has given up) is not run: it goes to the error stream with kind
/// `deadline`, and its answer is 504.
fn past_deadline(context: &Context, event: &Event) -> Option<Response> {
    let deadline = event.deadline?;
    if deadline > std::time::Instant::now() {
        return None;
    }
    let error = crate::error::StepError::deadline_passed("the event's deadline passed before it was run");
    crate::run::record(context, "deadline", event, &error);
    Some(crate::run::error_response("deadline", &error, &event.id, false))
}

/// The answer to an event the blocking pool could not run.
fn pool_failure(id: &crate::event::EventId, error: &crate::pool::PoolError) -> Response {
    let mut answer = Response::json(503, &json!({ "error": error.to_string(), "id": id.text() }));
    answer.event_id = Some(id.clone());
    answer
}

/// A pipeline on the tokio executor.
pub struct AsyncPipeline<N> {
    root: N,
    context: Arc<Context>,
    responds: bool,
    at_end: bool,
    tracker: Arc<Tracker>,
    /// Some step can read an event's time: each event is stamped as it comes in.
    stamps_time: bool,
    /// What recent events cost, for a graph that never waits but blocks: whether the next one
    /// runs in place or on the pool.
    cost: crate::pool::CallCost,
}

impl<N: Node> AsyncPipeline<N> {
    /// A pipeline from its root node. `responds` says whether some step responds; when none
    /// does, callers are answered `202 {"id": ...}` at once and the event goes on.
    pub fn new(root: N, context: Context, responds: bool) -> Arc<Self> {
        Arc::new(AsyncPipeline {
            context: Arc::new(context),
            responds,
            at_end: false,
            tracker: Arc::new(Tracker::default()),
            stamps_time: root.reads_time(),
            cost: crate::pool::CallCost::new(),
            root,
        })
    }

    /// A pipeline whose callers are answered when an event's processing here has ended (see
    /// [`Run::answered_at_end`]): what a function that writes to streams, or reads one, runs.
    pub fn answered_at_end(root: N, context: Context) -> Arc<Self> {
        Arc::new(AsyncPipeline {
            context: Arc::new(context),
            responds: true,
            at_end: true,
            tracker: Arc::new(Tracker::default()),
            stamps_time: root.reads_time(),
            cost: crate::pool::CallCost::new(),
            root,
        })
    }

    /// Processes one event. The caller is answered as soon as the responder has run; work after
    /// it goes on in the background only when it is still running by then.
    ///
    /// The future returned holds the event until it is first polled, then only what a graph that
    /// waits needs (the caller's channel and the event's boxed work): servers move and box it,
    /// and a graph's nested node futures are kilobytes, so they live on the stack of the poll
    /// that runs them.
    pub fn process(self: &Arc<Self>, event: Event) -> impl Future<Output = Response> + Send + '_ {
        Processing::Start { pipeline: self, event }
    }

    /// The answer a server gives without running the graph (a health probe), or the run for
    /// `event`: `reply` is its channel, unless it runs in place.
    fn start(&self, event: &Event, reply: Option<oneshot::Sender<Response>>) -> Result<Run, Response> {
        if let Some(answer) = server_answer(&self.context, event) {
            return Err(answer);
        }
        if let Some(late) = past_deadline(&self.context, event) {
            return Err(late);
        }
        let (id, context) = (event.id.clone(), Arc::clone(&self.context));
        let run = match reply {
            None => Run::in_place(id, context, self.at_end),
            Some(sender) if self.at_end => Run::answered_at_end(id, context, Arc::clone(&self.tracker), sender),
            Some(sender) => Run::new(id, context, Arc::clone(&self.tracker), sender),
        };
        if !self.responds {
            run.reply(crate::run::accepted(&event.id));
        }
        Ok(run)
    }

    /// Every node below a graph that never waits is a step: the event runs to its end here, in
    /// one poll, with the nodes' futures on this stack, answering into a slot: no channel, no
    /// boxed future and no task. Steps after the responder finish before the answer is
    /// returned, microseconds later, instead of in the background.
    fn process_in_place(&self, event: &mut Event) -> Response {
        let run = match self.start(event, None) {
            Ok(run) => run,
            Err(answer) => return answer,
        };
        let finished = {
            let push = std::pin::pin!(self.root.push(event, &run));
            push.poll(&mut std::task::Context::from_waker(std::task::Waker::noop())).is_ready()
        };
        if !finished {
            // `WAITS` is decided from the node types; a node that says it never waits and does
            // is a bug in that node, answered as one rather than waited for without a waker.
            tracing::error!(event_id = %event.id, "a graph that never waits waited; its event was not finished");
            let error = json!({ "error": "the pipeline waited where it never waits", "id": event.id.text() });
            let mut answer = Response::json(500, &error);
            answer.event_id = Some(event.id.clone());
            return answer;
        }
        run.take_answer()
    }

    /// A graph with a node that may wait: the caller's channel, and the event's work, boxed,
    /// to poll until the caller is answered (then as a task of its own if it still has work).
    fn start_waiting(self: &Arc<Self>, event: Event) -> Result<(oneshot::Receiver<Response>, Work), Response> {
        let (sender, receiver) = oneshot::channel();
        let run = self.start(&event, Some(sender))?;
        let pipeline = Arc::clone(self);
        let work: Work = Box::pin(async move {
            let mut event = event;
            pipeline.root.push(&mut event, &run).await;
        });
        Ok((receiver, work))
    }

    /// Waits until every event has been fully processed.
    pub async fn wait_for_completion(&self) {
        self.tracker.wait_idle().await;
    }

    /// The pipeline's context.
    pub fn context(&self) -> &Context {
        &self.context
    }
}

/// An event's work on a graph that waits.
type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What [`AsyncPipeline::process`] returns.
#[allow(
    clippy::large_enum_variant,
    reason = "the event waits here for the first poll, which runs it in place or takes it; boxing it would allocate per event"
)]
enum Processing<'p, N> {
    /// Not polled yet: a graph that never waits runs the event here; one that waits takes it.
    Start { pipeline: &'p Arc<AsyncPipeline<N>>, event: Event },
    /// A graph that waits, until the caller is answered: the channel, and the event's work
    /// while it runs.
    Waiting { receiver: oneshot::Receiver<Response>, work: Option<Work> },
    /// A graph that never waits but runs blocking steps: the event's whole run, on the pool.
    Pooled(Pin<Box<dyn Future<Output = Response> + Send>>),
    /// Answered.
    Done,
}

impl<N: Node> Future for Processing<'_, N> {
    type Output = Response;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Response> {
        use std::task::Poll;
        let this = &mut *self;
        if let Processing::Start { pipeline, event } = this {
            let pipeline = *pipeline;
            if pipeline.stamps_time {
                event.stamp_arrival();
            }
            if !N::WAITS && (!N::BLOCKS || crate::pool::may_block_here()) {
                // Run where it lies: the event is a few hundred bytes, and moving it out of the
                // future costs a copy per event.
                let answer = pipeline.process_in_place(event);
                *this = Processing::Done;
                return Poll::Ready(answer);
            }
            if !N::WAITS && pipeline.cost.runs_in_place() {
                let answer = crate::pool::run_in_place(&pipeline.cost, || pipeline.process_in_place(event));
                *this = Processing::Done;
                return Poll::Ready(answer);
            }
            if !N::WAITS {
                // One hand-over to the pool for the whole event, not one per blocking step; the
                // server's own paths answer here, without it.
                if let Some(answer) = server_answer(&pipeline.context, event) {
                    *this = Processing::Done;
                    return Poll::Ready(answer);
                }
                let pipeline = Arc::clone(pipeline);
                let mut event = std::mem::replace(event, Event::placeholder());
                let id = event.id.clone();
                *this = Processing::Pooled(Box::pin(async move {
                    let cost = &pipeline.cost;
                    crate::pool::run_measured(cost, {
                        let pipeline = Arc::clone(&pipeline);
                        move || pipeline.process_in_place(&mut event)
                    })
                    .await
                    .unwrap_or_else(|error| pool_failure(&id, &error))
                }));
            }
        }
        if let Processing::Pooled(answer) = this {
            let Poll::Ready(answer) = answer.as_mut().poll(cx) else { return Poll::Pending };
            *this = Processing::Done;
            return Poll::Ready(answer);
        }
        if let Processing::Start { pipeline, event } = this {
            let pipeline = *pipeline;
            let event = std::mem::replace(event, Event::placeholder());
            match pipeline.start_waiting(event) {
                Ok((receiver, work)) => *this = Processing::Waiting { receiver, work: Some(work) },
                Err(answer) => {
                    *this = Processing::Done;
                    return Poll::Ready(answer);
                }
            }
        }
        let Processing::Waiting { receiver, work } = this else {
            panic!("an event's processing was polled after it answered");
        };
        if let Some(future) = work.as_mut()
            && future.as_mut().poll(cx).is_ready()
        {
            *work = None;
        }
        let Poll::Ready(answer) = Pin::new(receiver).poll(cx) else { return Poll::Pending };
        if let Some(rest) = work.take() {
            tokio::spawn(rest);
        }
        *this = Processing::Done;
        // The run answers before it ends (a 204 at the latest), so the sender is never dropped
        // unanswered; a closed channel would be a bug, answered as one.
        Poll::Ready(
            answer.unwrap_or_else(|_| Response::json(500, &json!({ "error": "the pipeline ended without answering" }))),
        )
    }
}

impl<N: Node> Handler for Arc<AsyncPipeline<N>> {
    fn handle(&self, event: Event) -> impl Future<Output = Response> + Send {
        self.process(event)
    }

    async fn drain(&self) {
        self.wait_for_completion().await;
    }
}
