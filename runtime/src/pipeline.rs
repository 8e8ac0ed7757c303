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
/// stream, does not turn them into events.
fn server_answer(context: &Context, event: &Event) -> Option<Response> {
    if !matches!(&*event.method, "GET" | "HEAD") {
        return None;
    }
    let body = match event.path.trim_end_matches('/') {
        "/v2/health/live" => serde_json::json!({ "live": true }),
        "/v2/health/ready" => serde_json::json!({ "ready": true }),
        "/v2" => serde_json::json!({ "name": context.root, "version": env!("CARGO_PKG_VERSION"), "extensions": [] }),
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
    root: N,
    context: Arc<Context>,
}

impl<N: SyncNode> SyncPipeline<N> {
    /// A pipeline from its root node.
    pub fn new(root: N, context: Context) -> Self {
        SyncPipeline { root, context: Arc::new(context) }
    }

    /// Processes one event.
    pub fn process(&self, mut event: Event) -> Response {
        if let Some(answer) = server_answer(&self.context, &event) {
            return answer;
        }
        let mut run = SyncRun::new(event.id.clone(), &self.context);
        self.root.push_sync(&mut event, &mut run);
        run.into_response()
    }

    /// The pipeline's context.
    pub fn context(&self) -> &Context {
        &self.context
    }
}

impl<N: SyncNode> Handler for SyncPipeline<N> {
    async fn handle(&self, event: Event) -> Response {
        self.process(event)
    }

    async fn drain(&self) {}
}

/// A pipeline on the tokio executor.
pub struct AsyncPipeline<N> {
    root: N,
    context: Arc<Context>,
    responds: bool,
    at_end: bool,
    tracker: Arc<Tracker>,
}

impl<N: Node> AsyncPipeline<N> {
    /// A pipeline from its root node. `responds` says whether some step responds; when none
    /// does, callers are answered `202 {"id": ...}` at once and the event goes on.
    pub fn new(root: N, context: Context, responds: bool) -> Arc<Self> {
        Arc::new(AsyncPipeline {
            root,
            context: Arc::new(context),
            responds,
            at_end: false,
            tracker: Arc::new(Tracker::default()),
        })
    }

    /// A pipeline whose callers are answered when an event's processing here has ended (see
    /// [`Run::answered_at_end`]): what a function that writes to streams, or reads one, runs.
    pub fn answered_at_end(root: N, context: Context) -> Arc<Self> {
        Arc::new(AsyncPipeline {
            root,
            context: Arc::new(context),
            responds: true,
            at_end: true,
            tracker: Arc::new(Tracker::default()),
        })
    }

    /// Processes one event. The caller is answered as soon as the responder has run; work after
    /// it goes on in the background only when it is still running by then.
    pub async fn process(self: &Arc<Self>, event: Event) -> Response {
        if let Some(answer) = server_answer(&self.context, &event) {
            return answer;
        }
        let (id, context, tracker) = (event.id.clone(), Arc::clone(&self.context), Arc::clone(&self.tracker));
        // Every node below a graph that never waits is a step: the event runs to its end here,
        // in one poll, answering into a slot, with no channel, no boxed future and no task; steps
        // after the responder finish before the answer is returned, microseconds later, instead
        // of in the background.
        let (run, receiver) = if !N::WAITS {
            (Run::in_place(id, context, tracker, self.at_end), None)
        } else {
            let (sender, receiver) = oneshot::channel();
            let run = if self.at_end {
                Run::answered_at_end(id, context, tracker, sender)
            } else {
                Run::new(id, context, tracker, sender)
            };
            (run, Some(receiver))
        };
        if !self.responds {
            run.reply(Response::json(202, &json!({ "id": event.id.text() })));
        }
        let Some(mut receiver) = receiver else {
            let mut event = event;
            self.root.push(&mut event, &run).await;
            return run.take_answer();
        };
        let pipeline = Arc::clone(self);
        let mut work = Some(Box::pin(async move {
            let mut event = event;
            pipeline.root.push(&mut event, &run).await;
        }));
        let answer = std::future::poll_fn(|cx| {
            if let Some(future) = work.as_mut()
                && future.as_mut().poll(cx).is_ready()
            {
                work = None;
            }
            Pin::new(&mut receiver).poll(cx)
        })
        .await;
        if let Some(rest) = work {
            tokio::spawn(rest);
        }
        // The run answers before it ends (a 204 at the latest), so the sender is never dropped
        // unanswered; a closed channel would be a bug, answered as one.
        answer.unwrap_or_else(|_| Response::json(500, &json!({ "error": "the pipeline ended without answering" })))
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

impl<N: Node> Handler for Arc<AsyncPipeline<N>> {
    async fn handle(&self, event: Event) -> Response {
        self.process(event).await
    }

    async fn drain(&self) {
        self.wait_for_completion().await;
    }
}
