//! Nodes: steps wired to what follows them, composed statically. A graph is one concrete type
//! built from `StepNode`, `Fork`, `Shared`, `MemoryQueue` and `End`; the sync executor calls
//! `push_sync` down a chain, the tokio executor awaits `push`, and no step is boxed.

use crate::context::Context;
use crate::error::StepError;
use crate::event::{Event, EventError};
use crate::run::{Run, SyncRun};
use crate::snapshot::BodySnapshot;
use crate::step::{Entry, Flow, Placed, Step};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;

/// A node on the tokio executor.
pub trait Node: Send + Sync + 'static {
    /// Whether pushing an event may wait (a remote call, a queue, a stream): false when every
    /// node below is a step, so that the tokio executor runs the event to its end in place,
    /// without a task or a boxed future. True unless a node says otherwise.
    const WAITS: bool = true;

    /// True only for [`End`]: nothing after this node reads the event.
    const ENDS: bool = false;

    /// Whether a step here or below runs on the blocking pool (see [`crate::step::Blocking`]): a graph that
    /// never waits but has such a step runs each event on the pool whole, in one hand-over,
    /// rather than once per step. True unless a node says otherwise.
    const BLOCKS: bool = true;

    /// Whether a step here or after can read the event's arrival time (see
    /// [`Step::reads_time`]); true unless a node says otherwise.
    fn reads_time(&self) -> bool {
        true
    }

    /// Processes an event and passes it on.
    fn push(&self, event: &mut Event, run: &Run) -> impl Future<Output = ()> + Send;

    /// Passes an event to one outlet (a choice's arm); a single node is outlet 0.
    fn push_to(&self, outlet: usize, event: &mut Event, run: &Run) -> impl Future<Output = ()> + Send {
        async move {
            if outlet == 0 {
                self.push(event, run).await;
            }
        }
    }
}

/// A node on the sync executor: plain calls down one chain.
pub trait SyncNode: Send + Sync + 'static {
    /// True only for [`End`]: nothing after this node reads the event but the answer, which
    /// the sync executor takes from the body that reaches the end.
    const ENDS: bool = false;

    /// Whether a step here or after can read the event's arrival time (see
    /// [`crate::Step::reads_time`]); true unless a node says otherwise.
    fn reads_time(&self) -> bool {
        true
    }

    /// Processes an event and passes it on.
    fn push_sync(&self, event: &mut Event, run: &mut SyncRun<'_>);

    /// Passes an event to one outlet; a single node is outlet 0.
    fn push_sync_to(&self, outlet: usize, event: &mut Event, run: &mut SyncRun<'_>) {
        if outlet == 0 {
            self.push_sync(event, run);
        }
    }
}

/// The end of a path. Under the sync engine, the body that reaches it answers the caller
/// unless a responder did.
#[derive(Clone, Copy, Default)]
pub struct End;

impl Node for End {
    const WAITS: bool = false;
    const ENDS: bool = true;
    const BLOCKS: bool = false;
    fn reads_time(&self) -> bool {
        false
    }
    async fn push(&self, _event: &mut Event, _run: &Run) {}
}

impl SyncNode for End {
    const ENDS: bool = true;
    fn reads_time(&self) -> bool {
        false
    }
    fn push_sync(&self, event: &mut Event, run: &mut SyncRun<'_>) {
        run.finish(&event.body);
    }
}

/// Where a step's failures go.
pub trait Catcher: Send + Sync + 'static {
    /// False for `NoCatcher`: the event is then not copied before the step runs.
    const CATCHES: bool;
    /// Whether handling a failure may wait (see [`Node::WAITS`]).
    const WAITS: bool;
    /// Whether the handler's path runs a step on the blocking pool (see [`Node::BLOCKS`]).
    const BLOCKS: bool;
    /// Whether the handler's path can read the event's arrival time.
    fn reads_time(&self) -> bool;
    /// Handles a failed event, with `origin_state` and `error` set.
    fn catch(&self, event: &mut Event, run: &Run) -> impl Future<Output = ()> + Send;
    /// The same, on the sync executor.
    fn catch_sync(&self, event: &mut Event, run: &mut SyncRun<'_>);
}

/// No error handler: failures are unhandled.
#[derive(Clone, Copy, Default)]
pub struct NoCatcher;

impl Catcher for NoCatcher {
    const CATCHES: bool = false;
    const WAITS: bool = false;
    const BLOCKS: bool = false;
    fn reads_time(&self) -> bool {
        false
    }
    async fn catch(&self, _event: &mut Event, _run: &Run) {}
    fn catch_sync(&self, _event: &mut Event, _run: &mut SyncRun<'_>) {}
}

/// An error handler: a node (shared, since several steps may name it) and what follows it.
pub struct CatchWith<N>(pub Arc<N>);

impl<N> Clone for CatchWith<N> {
    fn clone(&self) -> Self {
        CatchWith(Arc::clone(&self.0))
    }
}

impl<N: Node + SyncNode> Catcher for CatchWith<N> {
    const CATCHES: bool = true;
    const WAITS: bool = N::WAITS;
    const BLOCKS: bool = N::BLOCKS;
    fn reads_time(&self) -> bool {
        Node::reads_time(&*self.0) || SyncNode::reads_time(&*self.0)
    }
    async fn catch(&self, event: &mut Event, run: &Run) {
        self.0.push(event, run).await;
    }
    fn catch_sync(&self, event: &mut Event, run: &mut SyncRun<'_>) {
        self.0.push_sync(event, run);
    }
}

/// A step, what follows it, whether it responds, and its error handler.
pub struct StepNode<S, N, C = NoCatcher> {
    /// The step's name, for errors and logs.
    pub name: &'static str,
    /// What it runs.
    pub step: S,
    /// What follows it.
    pub next: N,
    /// Its output answers the caller.
    pub respond: bool,
    /// Where its failures go.
    pub catcher: C,
    meter: crate::metrics::Meter,
}

impl<S, N> StepNode<S, N> {
    /// A step with no error handler that does not respond.
    pub fn new(name: &'static str, step: S, next: N) -> Self {
        StepNode::with(name, step, next, false, NoCatcher)
    }
}

impl<S, N, C> StepNode<S, N, C> {
    /// A step with every part given: what generated code builds.
    pub fn with(name: &'static str, step: S, next: N, respond: bool, catcher: C) -> Self {
        StepNode { name, step, next, respond, catcher, meter: crate::metrics::Meter::default() }
    }
}

impl<S, N, C> StepNode<S, N, C> {
    /// Marks the step as the responder.
    pub fn responding(mut self) -> Self {
        self.respond = true;
        self
    }

    /// Sets the error handler.
    pub fn catching<C2>(self, catcher: C2) -> StepNode<S, N, C2> {
        StepNode::with(self.name, self.step, self.next, self.respond, catcher)
    }
}

/// Runs a step, turning a panic into a failure so that the process keeps serving, timed when
/// metrics are on.
#[inline(always)]
fn run_step<S: Step>(
    name: &'static str,
    step: &S,
    meter: &crate::metrics::Meter,
    event: &mut Event,
    context: &Context,
    last: bool,
) -> Result<Flow, StepError> {
    let started = crate::metrics::enabled().then(std::time::Instant::now);
    let result = call_step(name, step, event, context, last);
    if let Some(started) = started {
        meter.step(name, started.elapsed(), counts_as_failure(&result));
    }
    result
}

/// A caller's mistake (a 4xx, such as an unknown model) is not the step's error.
fn counts_as_failure(result: &Result<Flow, StepError>) -> bool {
    result.as_ref().is_err_and(|error| error.status() >= 500)
}

/// The step, under the panic guard. It runs inside a debug-level tracing span with its name and
/// the event's id, so that at `debug` whatever it logs carries both; under the server's default
/// `info` filter the span costs one comparison (an info span would be built, with its fields
/// formatted, for every step of every request), and the span's path is out of line.
#[inline(always)]
fn call_step<S: Step>(
    name: &'static str,
    step: &S,
    event: &mut Event,
    context: &Context,
    last: bool,
) -> Result<Flow, StepError> {
    let debug = tracing::Level::DEBUG <= tracing::level_filters::STATIC_MAX_LEVEL
        && tracing::Level::DEBUG <= tracing::level_filters::LevelFilter::current();
    if debug {
        return call_step_in_span(name, step, event, context, last);
    }
    call_guarded(step, event, context, last)
}

/// The same call inside the step's span. It repeats `call_step`'s parameters: passing it a
/// closure over `call_guarded` instead made every step slower (a few instructions more, a larger
/// frame).
#[cold]
#[inline(never)]
fn call_step_in_span<S: Step>(
    name: &'static str,
    step: &S,
    event: &mut Event,
    context: &Context,
    last: bool,
) -> Result<Flow, StepError> {
    let _span = tracing::debug_span!("step", step = name, event_id = %event.id).entered();
    call_guarded(step, event, context, last)
}

#[inline(always)]
fn call_guarded<S: Step>(step: &S, event: &mut Event, context: &Context, last: bool) -> Result<Flow, StepError> {
    let process = || if last { step.process_last(event, context) } else { step.process(event, context) };
    crate::logging::guarded(process).unwrap_or_else(|payload| Err(StepError::panicked(&*payload)))
}

/// Runs a [`crate::step::Blocking`] step on the blocking pool: the event moves to a thread of the pool and
/// back. Dropped while it waits for a thread (its caller's deadline passed), the step never
/// runs; dropped while the step runs, the step finishes there and its result is thrown away.
#[inline(never)]
async fn offload<P: Placed>(
    name: &'static str,
    placed: &P,
    meter: &crate::metrics::Meter,
    event: &mut Event,
    run: &Run,
    last: bool,
) -> Result<Flow, StepError> {
    let (Some(step), Some(cost)) = (placed.shared(), placed.cost()) else {
        return run_step(name, placed.step(), meter, event, run.context(), last);
    };
    let step = Arc::clone(step);
    let context = run.shared_context();
    let mut moved = std::mem::replace(event, Event { id: event.id.clone(), ..Event::placeholder() });
    let timed = crate::metrics::enabled();
    let ran = crate::pool::run_measured(cost, move || {
        let started = timed.then(std::time::Instant::now);
        let result = call_step(name, &*step, &mut moved, &context, last);
        (moved, result, started.map(|started| started.elapsed()))
    })
    .await;
    match ran {
        Ok((back, result, elapsed)) => {
            *event = back;
            if let Some(elapsed) = elapsed {
                meter.step(name, elapsed, counts_as_failure(&result));
            }
            result
        }
        Err(error) => Err(StepError::unavailable(format!("step `{name}` could not run: {error}"))),
    }
}

fn failed(mut event: Event, name: &str, error: &StepError) -> Event {
    event.origin_state = Some(name.to_string());
    event.error = Some(Box::new(EventError { message: error.message.clone(), kind: error.kind }));
    event
}

/// What is kept of the event as it entered a step, for a handler or the error stream: nothing
/// when neither will need it, else as much as the step may change when it fails.
pub(crate) enum EntryCopy {
    /// The step leaves the event as it was: the event itself is the entry.
    Kept,
    /// The step takes the body: the body as it entered.
    Body(BodySnapshot),
    /// The step may change anything. Boxed: the copy of a whole event allocates anyway, and
    /// the enum stays a few words, so that a step taking the body (the common case) does not
    /// move a few hundred bytes in and out of its copy.
    Event(Box<Event>),
}

/// Drops an entry copy before the event goes on: a body's copy gives its buffer back to the
/// thread for the next step's. Taken by value, so that nothing is left to drop (not even a
/// `None`) when the step's scope ends.
#[inline]
fn release(copy: Option<EntryCopy>) {
    drop(copy);
}

pub(crate) fn entry_copy<C: Catcher>(entry: Entry, event: &Event, context: &Context) -> Option<EntryCopy> {
    (C::CATCHES || context.error_stream().is_some()).then(|| match entry {
        Entry::Kept => EntryCopy::Kept,
        Entry::Body => EntryCopy::Body(BodySnapshot::of(&event.body)),
        Entry::Event => EntryCopy::Event(Box::new(event.clone())),
    })
}

impl EntryCopy {
    /// The event as it entered the failed step, taken from what is left of it (the path stops
    /// here; what stays behind keeps only the id).
    pub(crate) fn into_entry(self, event: &mut Event) -> Event {
        let mut take = || std::mem::replace(event, Event { id: event.id.clone(), ..Event::placeholder() });
        match self {
            EntryCopy::Event(entry) => *entry,
            EntryCopy::Kept => take(),
            EntryCopy::Body(snapshot) => {
                let mut entry = take();
                entry.body = snapshot.restore();
                entry
            }
        }
    }
}

/// A failure: recorded in the error stream, then given to the handler, or answered as
/// unhandled.
pub(crate) async fn fail_or_catch<C: Catcher>(
    name: &'static str,
    copy: Option<Event>,
    error: &StepError,
    catcher: &C,
    run: &Run,
) {
    if let Some(copy) = &copy {
        run.record(name, copy, error);
    }
    match copy {
        Some(copy) if C::CATCHES => catcher.catch(&mut failed(copy, name, error), run).await,
        _ => run.fail(name, error),
    }
}

impl<S: Placed, N: Node, C: Catcher> Node for StepNode<S, N, C> {
    const WAITS: bool = N::WAITS || C::WAITS;
    const BLOCKS: bool = S::BLOCKING || N::BLOCKS || C::BLOCKS;
    fn reads_time(&self) -> bool {
        self.step.step().reads_time() || self.next.reads_time() || self.catcher.reads_time()
    }
    async fn push(&self, event: &mut Event, run: &Run) {
        let copy = entry_copy::<C>(self.step.step().entry(), event, run.context());
        // The responder's output is only the answer when nothing follows it and the run takes
        // a responder's answer (a run answered at its end does not).
        let last = N::ENDS && self.respond && run.takes_responses();
        // On a thread of the pool already (a graph that never waits runs whole events there),
        // a blocking step runs in place too.
        let result = match self.step.cost() {
            Some(cost) if S::BLOCKING && !crate::pool::in_place(cost) => {
                offload(self.name, &self.step, &self.meter, event, run, last).await
            }
            Some(cost) if S::BLOCKING && !crate::pool::may_block_here() => crate::pool::run_in_place(cost, || {
                run_step(self.name, self.step.step(), &self.meter, event, run.context(), last)
            }),
            _ => run_step(self.name, self.step.step(), &self.meter, event, run.context(), last),
        };
        let flow = match result {
            Ok(flow) => {
                // Released before the event goes on: what follows takes its own.
                release(copy);
                flow
            }
            Err(error) => {
                let entry = copy.map(|copy| copy.into_entry(event));
                return fail_or_catch(self.name, entry, &error, &self.catcher, run).await;
            }
        };
        match flow {
            Flow::Next => {
                if self.respond {
                    run.respond(&event.body);
                }
                self.next.push(event, run).await;
            }
            Flow::Drop => {}
            Flow::Many(events) => {
                let arrived = event.time;
                for mut event in events {
                    event.inherit_arrival(arrived);
                    if self.respond {
                        run.respond(&event.body);
                    }
                    self.next.push(&mut event, run).await;
                }
            }
            Flow::Outlet(outlet) => self.next.push_to(outlet, event, run).await,
            Flow::Reply(response) => run.reply(*response),
        }
    }
}

/// The same rule as `fail_or_catch`, on the sync executor: out of line, so that a step's own
/// path keeps only what a step that succeeds needs.
#[cold]
#[inline(never)]
pub(crate) fn fail_or_catch_sync<C: Catcher>(
    name: &'static str,
    copy: Option<EntryCopy>,
    error: &StepError,
    catcher: &C,
    event: &mut Event,
    run: &mut SyncRun<'_>,
) {
    let copy = copy.map(|copy| copy.into_entry(event));
    if let Some(copy) = &copy {
        run.record(name, copy, error);
    }
    match copy {
        Some(copy) if C::CATCHES => catcher.catch_sync(&mut failed(copy, name, error), run),
        _ => run.fail(name, error),
    }
}

impl<S: Placed, N: SyncNode, C: Catcher> SyncNode for StepNode<S, N, C> {
    fn reads_time(&self) -> bool {
        self.step.step().reads_time() || self.next.reads_time() || self.catcher.reads_time()
    }
    fn push_sync(&self, event: &mut Event, run: &mut SyncRun<'_>) {
        let copy = entry_copy::<C>(self.step.step().entry(), event, run.context());
        // On the sync executor the body that reaches the end answers, responder or not.
        let result = run_step(self.name, self.step.step(), &self.meter, event, run.context(), N::ENDS);
        let flow = match result {
            Ok(flow) => {
                // Released before the event goes on: what follows takes its own.
                release(copy);
                flow
            }
            Err(error) => return fail_or_catch_sync(self.name, copy, &error, &self.catcher, event, run),
        };
        match flow {
            Flow::Next => {
                if self.respond {
                    run.respond(&event.body);
                }
                self.next.push_sync(event, run);
            }
            Flow::Drop => {}
            Flow::Many(events) => {
                let arrived = event.time;
                for mut event in events {
                    event.inherit_arrival(arrived);
                    if self.respond {
                        run.respond(&event.body);
                    }
                    self.next.push_sync(&mut event, run);
                }
            }
            Flow::Outlet(outlet) => self.next.push_sync_to(outlet, event, run),
            Flow::Reply(response) => run.reply(*response),
        }
    }
}

/// Two branches: each gets its own copy of the event, and they run concurrently. Nest forks
/// for more (`Fork(a, Fork(b, c))`); outlets count from the left.
pub struct Fork<A, B>(pub A, pub B);

impl<A: Node, B: Node> Node for Fork<A, B> {
    const WAITS: bool = A::WAITS || B::WAITS;
    const BLOCKS: bool = A::BLOCKS || B::BLOCKS;
    fn reads_time(&self) -> bool {
        self.0.reads_time() || self.1.reads_time()
    }
    async fn push(&self, event: &mut Event, run: &Run) {
        let mut copy = event.clone();
        tokio::join!(self.0.push(event, run), self.1.push(&mut copy, run));
    }

    async fn push_to(&self, outlet: usize, event: &mut Event, run: &Run) {
        match outlet {
            0 => self.0.push(event, run).await,
            _ => self.1.push_to(outlet - 1, event, run).await,
        }
    }
}

/// Outlets without fan-out: a choice's arms, one of which gets each event. Usable on both
/// executors, since only one branch runs.
pub struct Outlets<A, B>(pub A, pub B);

impl<A: Node, B: Node> Node for Outlets<A, B> {
    const WAITS: bool = A::WAITS || B::WAITS;
    const BLOCKS: bool = A::BLOCKS || B::BLOCKS;
    fn reads_time(&self) -> bool {
        self.0.reads_time() || self.1.reads_time()
    }
    async fn push(&self, event: &mut Event, run: &Run) {
        self.0.push(event, run).await;
    }

    async fn push_to(&self, outlet: usize, event: &mut Event, run: &Run) {
        match outlet {
            0 => self.0.push(event, run).await,
            _ => self.1.push_to(outlet - 1, event, run).await,
        }
    }
}

impl<A: SyncNode, B: SyncNode> SyncNode for Outlets<A, B> {
    fn reads_time(&self) -> bool {
        self.0.reads_time() || self.1.reads_time()
    }
    fn push_sync(&self, event: &mut Event, run: &mut SyncRun<'_>) {
        self.0.push_sync(event, run);
    }

    fn push_sync_to(&self, outlet: usize, event: &mut Event, run: &mut SyncRun<'_>) {
        match outlet {
            0 => self.0.push_sync(event, run),
            _ => self.1.push_sync_to(outlet - 1, event, run),
        }
    }
}

/// A node with several parents: each parent holds a clone, and the node runs once per
/// arriving event (a union, as in MLRun).
pub struct Shared<N>(pub Arc<N>);

impl<N> Clone for Shared<N> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<N: Node> Node for Shared<N> {
    const WAITS: bool = N::WAITS;
    const BLOCKS: bool = N::BLOCKS;
    fn reads_time(&self) -> bool {
        self.0.reads_time()
    }
    async fn push(&self, event: &mut Event, run: &Run) {
        self.0.push(event, run).await;
    }
}

impl<N: SyncNode> SyncNode for Shared<N> {
    fn reads_time(&self) -> bool {
        self.0.reads_time()
    }
    fn push_sync(&self, event: &mut Event, run: &mut SyncRun<'_>) {
        self.0.push_sync(event, run);
    }
}

/// A bounded in-memory queue: a full queue makes its producers wait (backpressure) and never
/// drops. One consumer task passes events on in order.
pub struct MemoryQueue<N> {
    next: Arc<N>,
    capacity: usize,
    sender: OnceLock<mpsc::Sender<(Event, Run)>>,
}

impl<N: Node> MemoryQueue<N> {
    /// A queue of `capacity` events in front of `next`.
    pub fn new(capacity: usize, next: N) -> Self {
        MemoryQueue { next: Arc::new(next), capacity: capacity.max(1), sender: OnceLock::new() }
    }

    /// The consumer starts with the first event, on the runtime that runs the pipeline.
    fn sender(&self) -> &mpsc::Sender<(Event, Run)> {
        self.sender.get_or_init(|| {
            let (sender, mut receiver) = mpsc::channel::<(Event, Run)>(self.capacity);
            let next = Arc::clone(&self.next);
            tokio::spawn(async move {
                while let Some((mut event, run)) = receiver.recv().await {
                    next.push(&mut event, &run).await;
                }
            });
            sender
        })
    }
}

impl<N: Node> Node for MemoryQueue<N> {
    fn reads_time(&self) -> bool {
        self.next.reads_time()
    }
    async fn push(&self, event: &mut Event, run: &Run) {
        // The run travels with the event, so the caller's answer and the drain count follow it.
        let event = std::mem::replace(event, Event::placeholder());
        if let Err(error) = self.sender().send((event, run.clone())).await {
            let (event, run) = error.0;
            let failure = StepError::new("the queue's consumer has stopped");
            run.record("queue", &event, &failure);
            run.fail("queue", &failure);
        }
    }
}

pub(crate) type BoxFuture<'a> = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Below this much stack left, an erased node continues on a new stack segment.
pub(crate) const RED_ZONE: usize = 256 * 1024;
/// The size of each new segment.
pub(crate) const STACK_SEGMENT: usize = 4 * 1024 * 1024;

/// A node behind a trait object, on the tokio executor. Generated code puts one every few
/// levels of a deep or wide graph: a node's type nests every node after it, and past about a
/// hundred levels rustc's trait solver overflows. One indirect call and one boxed future per
/// event per boxed node, not per step. Since each node calls the next, a long chain recurses
/// as deep as it is long: here, at every erased node, the stack grows on demand (`stacker`),
/// so no length of chain overflows a thread's stack.
pub struct Boxed {
    node: Box<dyn ErasedNode>,
    reads_time: bool,
}

impl Boxed {
    /// Erases the type of `node` (and of everything after it).
    pub fn new<N: Node>(node: N) -> Self {
        Boxed { reads_time: node.reads_time(), node: Box::new(node) }
    }
}

pub(crate) trait ErasedNode: Send + Sync + 'static {
    fn push_boxed<'a>(&'a self, event: &'a mut Event, run: &'a Run) -> BoxFuture<'a>;
    fn push_to_boxed<'a>(&'a self, outlet: usize, event: &'a mut Event, run: &'a Run) -> BoxFuture<'a>;
}

impl<N: Node> ErasedNode for N {
    fn push_boxed<'a>(&'a self, event: &'a mut Event, run: &'a Run) -> BoxFuture<'a> {
        Box::pin(self.push(event, run))
    }

    fn push_to_boxed<'a>(&'a self, outlet: usize, event: &'a mut Event, run: &'a Run) -> BoxFuture<'a> {
        Box::pin(self.push_to(outlet, event, run))
    }
}

/// Polls a future with room on the stack for what it nests.
pub(crate) async fn with_stack(mut future: BoxFuture<'_>) {
    std::future::poll_fn(|cx| stacker::maybe_grow(RED_ZONE, STACK_SEGMENT, || future.as_mut().poll(cx))).await;
}

impl Node for Boxed {
    fn reads_time(&self) -> bool {
        self.reads_time
    }
    async fn push(&self, event: &mut Event, run: &Run) {
        with_stack(self.node.push_boxed(event, run)).await;
    }

    async fn push_to(&self, outlet: usize, event: &mut Event, run: &Run) {
        with_stack(self.node.push_to_boxed(outlet, event, run)).await;
    }
}

/// A node behind a trait object, on the sync executor; see [`Boxed`].
pub struct BoxedSync {
    node: Box<dyn ErasedSyncNode>,
    reads_time: bool,
}

impl BoxedSync {
    /// Erases the type of `node` (and of everything after it).
    pub fn new<N: SyncNode>(node: N) -> Self {
        BoxedSync { reads_time: node.reads_time(), node: Box::new(node) }
    }
}

pub(crate) trait ErasedSyncNode: Send + Sync + 'static {
    fn push_erased(&self, event: &mut Event, run: &mut SyncRun<'_>);
    fn push_to_erased(&self, outlet: usize, event: &mut Event, run: &mut SyncRun<'_>);
}

impl<N: SyncNode> ErasedSyncNode for N {
    fn push_erased(&self, event: &mut Event, run: &mut SyncRun<'_>) {
        self.push_sync(event, run);
    }

    fn push_to_erased(&self, outlet: usize, event: &mut Event, run: &mut SyncRun<'_>) {
        self.push_sync_to(outlet, event, run);
    }
}

impl SyncNode for BoxedSync {
    fn reads_time(&self) -> bool {
        self.reads_time
    }
    fn push_sync(&self, event: &mut Event, run: &mut SyncRun<'_>) {
        stacker::maybe_grow(RED_ZONE, STACK_SEGMENT, || self.node.push_erased(event, run));
    }

    fn push_sync_to(&self, outlet: usize, event: &mut Event, run: &mut SyncRun<'_>) {
        stacker::maybe_grow(RED_ZONE, STACK_SEGMENT, || self.node.push_to_erased(outlet, event, run));
    }
}
