//! The checked graph: names resolved to typed ids, options interpreted, types known, and every
//! decision the back ends need already made (which handler catches each node, which nodes answer
//! the caller, how the graph splits into functions). Codegen and the renderers read only this,
//! and print it: none of them decides what a graph means.

use crate::source::Span;

/// A node's neighbours: most nodes have few, and those are kept inline (no allocation).
pub type Edges = smallvec::SmallVec<[NodeId; 4]>;

/// A name's text: stored inline up to 24 bytes, so that most names cost no allocation.
pub type Name = compact_str::CompactString;

macro_rules! declare_id {
    ($($(#[$meta:meta])* $name:ident;)*) => {$(
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u32);

        impl $name {
            /// The index into the owning vector.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    )*};
}

declare_id! {
    /// A step, router or queue of the graph.
    NodeId;
    /// A record type.
    RecordId;
}

/// A whole checked graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// The graph's name.
    pub name: String,
    /// Free text for `context.root`.
    pub description: Option<String>,
    /// Router or flow.
    pub topology: Topology,
    /// Sync or async.
    pub engine: Engine,
    /// Declared parameters.
    pub params: Vec<Param>,
    /// Declared secret names.
    pub secrets: Vec<String>,
    /// The functions the graph runs as: the root (named after the graph, fed by HTTP) first,
    /// then each child function a stream queue feeds, in declaration order.
    pub functions: Vec<Function>,
    /// How the whole graph, run in one process, answers its caller.
    pub answer: Answer,
    /// The folder of the crate holding the Rust handlers the graph names (`handlers = "...";`),
    /// relative to the graph's file.
    pub handlers: Option<HandlerFolder>,
    /// Declared record types.
    pub records: Vec<Record>,
    /// Every step, router and queue, in declaration order.
    pub nodes: Vec<Node>,
    /// The graph-level error handler.
    pub on_error: Option<NodeId>,
    /// Where failures are recorded.
    pub error_stream: Option<ErrorStream>,
    /// Test blocks for `graphc test`.
    pub tests: Vec<Test>,
    /// What feeds the root function besides HTTP.
    pub triggers: Vec<Trigger>,
    /// How each queue is realised when the whole graph runs in one process (`graphc test`,
    /// and a graph with no child functions).
    pub in_process_queues: Vec<QueuePlan>,
    /// The runtime's optional features the generated code uses.
    pub features: Vec<RuntimeFeature>,
    /// Whether the flow may loop (`allow_cycles = true;`).
    pub allow_cycles: bool,
    /// How many times an event may enter a step on a loop unless the step says (`max_iterations`).
    pub max_iterations: u32,
    /// Models declared once (`model NAME = model(...);`) and shared by the routes that name them.
    pub shared_models: Vec<SharedModel>,
    /// The edges that close a loop: from a step back to one an event passed on its way there,
    /// as a walk from the start steps meets them. Decided by the checker; codegen turns each
    /// into the loop's one indirection, and the diagrams draw them apart.
    pub back_edges: Vec<BackEdge>,
}

/// A model loaded once at start-up and served by every route that names it: one instance in
/// memory, its batching and instances shared.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedModel {
    /// Its name, which routes refer to.
    pub name: String,
    /// Where the name is declared.
    pub span: Span,
    /// Where the model is written.
    pub impl_span: Span,
    /// The model.
    pub model: Model,
}

/// An edge that closes a loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackEdge {
    /// The step the loop leaves from.
    pub from: NodeId,
    /// The earlier step it returns to.
    pub to: NodeId,
}

/// MLRun's safety limit on a loop, per event and per step, unless the graph or the step sets one.
pub const DEFAULT_MAX_ITERATIONS: u32 = 100;

/// What a queue becomes in the code that runs it: decided by the plan, printed by codegen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueRealisation {
    /// Nothing: under the sync engine events pass straight on, on the caller's thread.
    PassThrough,
    /// A bounded in-process queue holding this many events.
    Memory {
        /// Events it holds before applying backpressure.
        capacity: u32,
    },
    /// Records written to the queue's Redis stream: where the queue leaves the function that
    /// runs it, and always when nothing in the graph reads it (an output stream).
    StreamWriter,
}

/// One queue's realisation in a function (or in the whole graph in one process).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuePlan {
    /// The queue.
    pub queue: NodeId,
    /// What it becomes.
    pub realisation: QueueRealisation,
}

/// An optional feature of graphc-runtime that generated code may need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RuntimeFeature {
    /// smartcore models on routes (not a user's own model types).
    Models,
    /// ONNX models on routes, run by tract.
    Onnx,
    /// `$remote` steps: an HTTP client.
    Remote,
    /// Stream queues, stream triggers, answers streams and a Redis error stream.
    Streams,
    /// Cron schedules.
    Schedule,
}

impl RuntimeFeature {
    /// The feature's name in graphc-runtime's Cargo.toml.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeFeature::Models => "models",
            RuntimeFeature::Onnx => "onnx",
            RuntimeFeature::Remote => "remote",
            RuntimeFeature::Streams => "streams",
            RuntimeFeature::Schedule => "schedule",
        }
    }
}

/// `handlers = "...";`: where the crate holding the graph's Rust handlers is.
#[derive(Clone, Debug, PartialEq)]
pub struct HandlerFolder {
    /// The folder, relative to the graph's file.
    pub path: String,
    /// The setting, for diagnostics about the folder.
    pub span: Span,
}

/// A trigger of the root function: events from a stream or a schedule, run by the same
/// pipeline as HTTP requests.
#[derive(Clone, Debug, PartialEq)]
pub struct Trigger {
    /// Its name.
    pub name: String,
    /// Where it is declared.
    pub span: Span,
    /// Where its events come from.
    pub source: TriggerSource,
    /// The stream each event's answer is written to; without it answers are dropped (failures
    /// still go to the error stream).
    pub answers: Option<StreamTarget>,
}

/// Where a trigger's events come from.
#[derive(Clone, Debug, PartialEq)]
pub enum TriggerSource {
    /// Records of a Redis stream, read by a consumer group.
    Stream {
        /// The server.
        url: String,
        /// The stream (with `shards`, the streams `NAME:0` … `NAME:N-1`).
        stream: String,
        /// Shards.
        shards: u32,
        /// The consumer group.
        group: String,
    },
    /// Events made on a schedule.
    Schedule {
        /// When.
        when: Schedule,
        /// Each event's body: a constant (parameters allowed).
        body: Expr,
        /// A firing may start while the previous run is going.
        overlap: bool,
    },
}

/// When a schedule trigger fires.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// A cron expression (checked) read in an IANA time zone.
    Cron {
        /// The expression: 5 fields, or 6 with seconds first.
        expression: String,
        /// The time zone, e.g. `UTC` or `Europe/Paris`.
        timezone: String,
    },
    /// A fixed interval.
    Every {
        /// Milliseconds between firings.
        ms: u64,
    },
}

/// A Redis stream written to.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamTarget {
    /// The server.
    pub url: String,
    /// The stream.
    pub stream: String,
}

impl Graph {
    /// A type as the language writes it: `int`, `[str]?`, a record's name, `{a: int}` for a
    /// known object.
    pub fn type_name(&self, ty: &Type) -> String {
        match ty {
            Type::Json => "json".to_string(),
            Type::Object => "object".to_string(),
            Type::Shape(fields) => {
                let fields: Vec<String> =
                    fields.iter().map(|(name, ty)| format!("{name}: {}", self.type_name(ty))).collect();
                format!("{{{}}}", fields.join(", "))
            }
            Type::Null => "null".to_string(),
            Type::Bool => "bool".to_string(),
            Type::Int => "int".to_string(),
            Type::Float => "float".to_string(),
            Type::Str => "str".to_string(),
            Type::Array(element) => format!("[{}]", self.type_name(element)),
            Type::Optional(inner) => format!("{}?", self.type_name(inner)),
            Type::Record(id) => self.records.get(id.index()).map_or_else(|| "record".to_string(), |r| r.name.clone()),
        }
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> &Node {
        #[allow(clippy::indexing_slicing, reason = "node ids are made only by the checker, as indexes into nodes")]
        &self.nodes[id.index()]
    }

    /// Ids of all nodes.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes.len()).map(|index| NodeId(index as u32))
    }

    /// Where an event enters the graph: every node of a router topology (the router), or the
    /// start steps of a flow.
    pub fn entry_nodes(&self) -> Vec<NodeId> {
        match self.topology {
            Topology::Router => self.node_ids().collect(),
            Topology::Flow => self.start_nodes(),
        }
    }

    /// Whether one of `from`, or a step after them (not past a `collect()`), answers the caller:
    /// whether a streaming step's chunks reach a responder.
    pub fn answers_after(&self, from: &[NodeId]) -> bool {
        let mut seen = std::collections::BTreeSet::new();
        let mut todo: Vec<NodeId> = from.to_vec();
        while let Some(id) = todo.pop() {
            if !seen.insert(id) {
                continue;
            }
            let node = self.node(id);
            if matches!(node.kind, NodeKind::Collect) {
                continue;
            }
            if node.answers {
                return true;
            }
            todo.extend(node.children.iter().copied());
        }
        false
    }

    /// Whether `from -> to` closes a loop.
    pub fn is_back_edge(&self, from: NodeId, to: NodeId) -> bool {
        self.back_edges.iter().any(|edge| edge.from == from && edge.to == to)
    }

    /// A node's parents on the way forward: those whose edge to it does not close a loop.
    pub fn forward_parents(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.node(id).parents.iter().copied().filter(move |&parent| !self.is_back_edge(parent, id))
    }

    /// The steps with no parents that are not error handlers: where an event enters a flow.
    pub fn start_nodes(&self) -> Vec<NodeId> {
        let catchers = self.catchers();
        self.node_ids()
            .filter(|&id| {
                let node = self.node(id);
                node.parents.is_empty() && !catchers.contains(&id) && !matches!(node.kind, NodeKind::Queue(_))
            })
            .collect()
    }

    /// Every node that some step, or the graph, names as its error handler.
    pub fn catchers(&self) -> std::collections::BTreeSet<NodeId> {
        self.nodes.iter().filter_map(|node| node.on_error).chain(self.on_error).collect()
    }

    /// How `queue` is realised in `function`, or in the whole graph in one process (`None`).
    pub fn queue_realisation(&self, function: Option<&Function>, queue: NodeId) -> QueueRealisation {
        let plans = function.map_or(&self.in_process_queues, |function| &function.queues);
        plans.iter().find(|plan| plan.queue == queue).map_or(QueueRealisation::PassThrough, |plan| plan.realisation)
    }

    /// True when the graph runs as several processes, one per function.
    pub fn is_distributed(&self) -> bool {
        self.functions.len() > 1
    }
}

/// One function of the graph: a process of its own when the graph is distributed.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    /// The function's name: the graph's for the root.
    pub name: String,
    /// The stream queue it consumes; `None` for the root, which takes HTTP requests.
    pub reads: Option<NodeId>,
    /// Where events enter it: the root's start nodes, or the steps after the stream it reads.
    pub entries: Vec<NodeId>,
    /// Every node it runs, in id order: what its entries reach without crossing a stream queue,
    /// with the error handlers of what it runs (a handler runs where the failure happened).
    pub nodes: Vec<NodeId>,
    /// How it answers whoever handed it the event.
    pub answer: Answer,
    /// How each queue it runs is realised.
    pub queues: Vec<QueuePlan>,
}

/// How a pipeline answers the caller (an HTTP client, or a stream consumer acknowledging).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The first node that answers (`Node::answers`) gives `200` with its output; an event
    /// dropped before that gives `204`; an unhandled failure its error. Under the sync engine
    /// the end of the chain answers too, when no node did.
    Responder,
    /// `202 {"id"}` at once; the event goes on in the background.
    Accepted,
    /// `202 {"id"}` once every path of the event has finished, or its first unhandled failure:
    /// a function that hands events to a stream, or consumes one.
    WhenDone,
}

/// Router or flow topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// One router with routes.
    Router,
    /// A DAG of steps.
    Flow,
}

/// Sync or async engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Plain calls on the caller's thread; one chain.
    Sync,
    /// Tokio; branches run concurrently.
    Async,
}

/// `param name: ty = default;`
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: Type,
    /// Default value, a constant expression.
    pub default: Option<Expr>,
}

/// A record type.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Name.
    pub name: String,
    /// Fields in order.
    pub fields: Vec<(String, Type)>,
    /// The optional fields through which the record reaches itself: stored behind a `Box`, or
    /// the Rust type would contain itself.
    pub boxed: std::collections::BTreeSet<String>,
    /// Where it is declared.
    pub span: Span,
}

/// A body type.
#[derive(Clone, Debug, PartialEq)]
pub enum Type {
    /// Any JSON value; checked at run time.
    Json,
    /// A JSON object with fields unknown at compile time.
    Object,
    /// A JSON object whose fields are known: what an object literal builds (`map({ ... })`,
    /// `extend`), in the order written.
    Shape(std::sync::Arc<[(Name, Type)]>),
    /// `null`
    Null,
    /// `bool`
    Bool,
    /// `int` (i64)
    Int,
    /// `float` (f64)
    Float,
    /// `str`
    Str,
    /// `[T]`
    Array(Box<Type>),
    /// `T?`
    Optional(Box<Type>),
    /// A declared record.
    Record(RecordId),
}

/// Where a step runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The root function (the default).
    Root,
    /// A declared child function.
    Child(String),
    /// `function = *`: wherever its neighbours run.
    Any,
}

/// A step, router or queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Name.
    pub name: Name,
    /// Where the name is declared.
    pub span: Span,
    /// Where its implementation (the handler's path, the built-in) is written.
    pub impl_span: Span,
    /// What it does.
    pub kind: NodeKind,
    /// The body type it receives (after input_path).
    pub input: Type,
    /// The body type it produces (before result_path).
    pub output: Type,
    /// Receives and returns the whole event.
    pub full_event: bool,
    /// Its handler returns an iterator of chunks, each passed on in turn (`streaming`).
    pub streaming: bool,
    /// Dotted path of its input within the body.
    pub input_path: Option<Box<[String]>>,
    /// Dotted path where its result is written.
    pub result_path: Option<Box<[String]>>,
    /// Where it runs.
    pub placement: Placement,
    /// Marked `respond` in the source (the checker's input; back ends read `answers`).
    pub respond: bool,
    /// Its output answers the caller: the step marked `respond`, the router of a router
    /// topology, and, in a graph with a responder, the last node of an error handler's path
    /// (so that a handled failure answers `200` with the handler's output on both engines).
    pub answers: bool,
    /// Its own error handler, as written.
    pub on_error: Option<NodeId>,
    /// The handler that catches its failures, decided once: its own `on_error`, else the
    /// graph's, except on the error path (the graph's handler does not catch what runs after a
    /// handler, so that a failing handler is an unhandled failure rather than a loop).
    pub catcher: Option<NodeId>,
    /// Steps it runs after, in a stable order.
    pub parents: Edges,
    /// Steps that run after it, in a stable order.
    pub children: Edges,
    /// `max_iterations` as written on the step.
    pub max_iterations: Option<u32>,
    /// For a step on a loop, how many times an event may enter it (its own `max_iterations`,
    /// else the graph's): decided by the checker; `None` off every loop.
    pub iteration_cap: Option<u32>,
}

/// What a node does.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// A Rust function, by path.
    Function(String),
    /// A Rust type built once with named arguments.
    Construct(String, Vec<(String, Expr)>),
    /// An HTTP call. The larger kinds are boxed so that every node is not as large as they are.
    Remote(Box<Remote>),
    /// Merge an object into the body.
    Extend(Expr),
    /// Replace the body.
    Map(Expr),
    /// Drop the event unless true.
    Filter(Expr),
    /// One event per element.
    FlatMap(Expr),
    /// Send to the first outlet whose condition holds; `None` is the `_` arm.
    Choice(Vec<(Option<Expr>, NodeId)>),
    /// The chunks of the streaming step before it, as one array (`collect()`).
    Collect,
    /// Group events.
    Batch {
        /// Events per batch.
        size: u32,
        /// Flush a partial batch after this long.
        timeout_ms: Option<u64>,
    },
    /// A router with routes.
    Router(Box<Router>),
    /// A queue.
    Queue(Box<Queue>),
}

/// Where a step runs under the tokio executor (docs/architecture.md, "Where work runs").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepPlacement {
    /// In the task that carries the event: a built-in, which takes microseconds and never blocks.
    Worker,
    /// On the blocking pool: user code (a handler, a `new` step, a router's models and steps),
    /// which may compute, sleep or wait on I/O of its own.
    BlockingPool,
    /// Not a step: a queue, or a `$remote` call, which awaits without blocking.
    Awaited,
}

impl NodeKind {
    /// Where this node's step runs under the tokio executor.
    pub fn placement(&self) -> StepPlacement {
        match self {
            NodeKind::Function(_) | NodeKind::Construct(..) | NodeKind::Router(_) => StepPlacement::BlockingPool,
            NodeKind::Extend(_)
            | NodeKind::Map(_)
            | NodeKind::Filter(_)
            | NodeKind::FlatMap(_)
            | NodeKind::Choice(_)
            | NodeKind::Collect
            | NodeKind::Batch { .. } => StepPlacement::Worker,
            NodeKind::Remote(_) | NodeKind::Queue(_) => StepPlacement::Awaited,
        }
    }

    /// A queue backed by a stream, where functions split.
    pub fn is_stream_queue(&self) -> bool {
        matches!(self, NodeKind::Queue(queue) if matches!(**queue, Queue::Stream { .. }))
    }

    /// A queue in memory.
    pub fn is_memory_queue(&self) -> bool {
        matches!(self, NodeKind::Queue(queue) if matches!(**queue, Queue::Memory { .. }))
    }

    /// A short name for the kind, for diagrams and messages.
    pub fn describe(&self) -> &'static str {
        match self {
            NodeKind::Function(_) => "function",
            NodeKind::Construct(..) => "class",
            NodeKind::Remote(_) => "$remote",
            NodeKind::Extend(_) => "extend",
            NodeKind::Map(_) => "map",
            NodeKind::Filter(_) => "filter",
            NodeKind::FlatMap(_) => "flat_map",
            NodeKind::Choice(_) => "choice",
            NodeKind::Batch { .. } => "batch",
            NodeKind::Collect => "collect",
            NodeKind::Router(_) => "router",
            NodeKind::Queue(_) => "queue",
        }
    }
}

/// A `$remote` call.
#[derive(Clone, Debug, PartialEq)]
pub struct Remote {
    /// A URL, or a function name resolved through the context.
    pub target: RemoteTarget,
    /// HTTP method.
    pub method: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The caller's headers passed on, by lower-case name (`forward_headers`).
    pub forwarded: Vec<String>,
    /// Per-attempt timeout.
    pub timeout_ms: u64,
    /// Retries after the first attempt.
    pub retries: u32,
    /// First backoff; doubled on each retry, with jitter.
    pub backoff_ms: u64,
}

/// What chooses a runner's routes for each event.
#[derive(Clone, Debug, PartialEq)]
pub enum Selector {
    /// An expression over the event (`select = body.models`).
    Expr(Expr),
    /// A Rust function of the body (`select = fn handlers::choose`), by path, and where the path
    /// is written.
    Function {
        /// The function's path.
        path: String,
        /// Where it is written.
        span: Span,
    },
}

/// A route's weight in an ensemble, as written.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteWeight {
    /// The route's key (`name` or `name:version`).
    pub route: String,
    /// Its weight.
    pub weight: f64,
}

/// Where a remote step sends the event.
#[derive(Clone, Debug, PartialEq)]
pub enum RemoteTarget {
    /// A URL.
    Url(String),
    /// A function name, resolved by `context.get_remote_endpoint`.
    Function(String),
}

/// A router.
#[derive(Clone, Debug, PartialEq)]
pub struct Router {
    /// Model router, ensemble, parallel run or custom.
    pub kind: RouterKind,
    /// Path prefix for model routes.
    pub url_prefix: String,
    /// Path prefix of the health probes (`/live`, `/ready`).
    pub health_prefix: String,
    /// A parallel run merges its outputs into the event's body.
    pub extend_event: bool,
    /// A parallel run's selector (`select = ...`): the routes to run for each event, by name
    /// (a string or an array of strings); `None`: every route.
    pub select: Option<Selector>,
    /// Routes in order; the first is the default.
    pub routes: Vec<Route>,
}

/// The routing logic.
#[derive(Clone, Debug, PartialEq)]
pub enum RouterKind {
    /// Route by path or body key.
    Model,
    /// Run every route and vote.
    Ensemble {
        /// Classification or regression.
        vote: Vote,
        /// One normalised weight per route, in route order.
        weights: Vec<f64>,
        /// The weights as the graph wrote them, listed by `GET /v2/models` as MLRun lists
        /// them; `None` when the graph gave none.
        given_weights: Option<Vec<RouteWeight>>,
    },
    /// Run every route and merge object outputs.
    Parallel,
    /// A user type implementing the router trait.
    Custom(String),
}

/// How an ensemble combines its routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vote {
    /// Weighted majority; ties go to the smallest class.
    Classification,
    /// Weighted mean.
    Regression,
}

/// A route of a router.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// Name, as in `/v2/models/{name}`.
    pub name: String,
    /// Version, as in `/v2/models/{name}/versions/{version}`.
    pub version: Option<String>,
    /// Where the name is declared.
    pub span: Span,
    /// Where what it runs is written.
    pub impl_span: Span,
    /// A model or a step.
    pub kind: RouteKind,
}

impl Route {
    /// The route's key, as MLRun writes it and the runtime's router reads it: `name`, or
    /// `name:version`.
    pub fn key(&self) -> String {
        match &self.version {
            Some(version) => format!("{}:{version}", self.name),
            None => self.name.clone(),
        }
    }
}

/// What a route runs.
#[derive(Clone, Debug, PartialEq)]
pub enum RouteKind {
    /// A model: smartcore's or a type of the user's.
    Model(Model),
    /// Any step.
    Step(Box<NodeKind>),
}

/// A model route: what it serves and the file it loads. Both kinds are loaded the same way at
/// start-up (the runtime's `LoadModel`), smartcore's with the estimator as its one argument.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// What the route serves.
    pub source: ModelSource,
    /// The file it loads, relative to the graph file; a model type of the user's may load none.
    pub model_path: Option<ModelPath>,
    /// Dynamic batching of its predictions, when asked (`batch_size`).
    pub batching: Option<Batching>,
    /// Calls of the model at once (`instances`), each on a thread of the route's own; `None`:
    /// as many as the blocking pool runs (a `Model` is `Sync`, so safe to call concurrently).
    pub instances: Option<u32>,
    /// The shared model (`model NAME = ...`) this route serves, whose one instance it uses;
    /// `None`: the route loads its own.
    pub shared: Option<String>,
}

impl Model {
    /// Whether the route's calls go through a scheduler of their own: batched, or limited to a
    /// number of instances.
    pub fn scheduled(&self) -> bool {
        self.batching.is_some() || self.instances.is_some()
    }
}

/// `model_path = "..."`: the file a model loads, and where the graph names it (what a missing or
/// unreadable file's diagnostic points at).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelPath {
    /// The path as written, relative to the graph file.
    pub path: String,
    /// The string in the source.
    pub span: Span,
}

/// `batch_size = N, batch_delay_ms = D` on a model route: concurrent requests predicted in one
/// call of up to `max_rows` rows, waiting at most `max_delay_ms` to fill one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    /// Rows per call at most.
    pub max_rows: u32,
    /// How long a batch may wait to fill, in milliseconds.
    pub max_delay_ms: u64,
}

impl Batching {
    /// The delay when a route gives a size and no delay.
    pub const DEFAULT_DELAY_MS: u64 = 5;
}

/// What a model route serves.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSource {
    /// A smartcore estimator: `model(kind = ..., model_path = "...")`.
    Smartcore(ModelKind),
    /// An ONNX model file, run by tract: `model(kind = onnx, model_path = "...")`; its signature
    /// is checked against the graph by `graphc check` (`crate::onnx`).
    Onnx,
    /// A model type of the user's: `model(new path::Type(args), ...)`, its arguments checked
    /// constants.
    User {
        /// The type's path, as written.
        path: String,
        /// Its arguments by name.
        args: Vec<(String, Expr)>,
    },
}

impl Model {
    /// What it serves, in a few words: `logistic_regression` or the type's path.
    pub fn describe(&self) -> String {
        match &self.source {
            ModelSource::Smartcore(kind) => kind.name().to_string(),
            ModelSource::Onnx => "onnx".to_string(),
            ModelSource::User { path, .. } => path.clone(),
        }
    }
}

macro_rules! model_kinds {
    ($($variant:ident => $name:literal, $regressor:literal;)*) => {
        /// The smartcore estimators graphc can serve.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ModelKind { $(#[doc = $name] $variant,)* }

        impl ModelKind {
            /// Every kind with its name in the language.
            pub const ALL: &'static [(ModelKind, &'static str)] = &[$((ModelKind::$variant, $name),)*];

            /// The kind's name in the language.
            pub fn name(self) -> &'static str {
                match self { $(ModelKind::$variant => $name,)* }
            }

            /// True for regressors, false for classifiers.
            pub fn is_regressor(self) -> bool {
                match self { $(ModelKind::$variant => $regressor,)* }
            }
        }
    };
}

model_kinds! {
    LogisticRegression => "logistic_regression", false;
    DecisionTreeClassifier => "decision_tree_classifier", false;
    RandomForestClassifier => "random_forest_classifier", false;
    KnnClassifier => "knn_classifier", false;
    GaussianNb => "gaussian_nb", false;
    LinearRegression => "linear_regression", true;
    DecisionTreeRegressor => "decision_tree_regressor", true;
    RandomForestRegressor => "random_forest_regressor", true;
    KnnRegressor => "knn_regressor", true;
}

/// A queue.
#[derive(Clone, Debug, PartialEq)]
pub enum Queue {
    /// Bounded, in-process.
    Memory {
        /// Events it holds before applying backpressure.
        capacity: u32,
    },
    /// Redis Streams.
    Stream {
        /// `redis://host:port`
        url: String,
        /// The stream's name (or prefix, with shards).
        stream: String,
        /// Streams chosen by event key.
        shards: u32,
        /// `key = <expr>`: the event key, computed from the event as it enters the queue.
        key: Option<Expr>,
    },
}

/// Where failures are recorded.
#[derive(Clone, Debug, PartialEq)]
pub enum ErrorStream {
    /// In-process sink.
    Memory,
    /// A Redis stream.
    Stream {
        /// `redis://host:port`
        url: String,
        /// The stream's name.
        stream: String,
    },
}

/// A test block.
#[derive(Clone, Debug, PartialEq)]
pub struct Test {
    /// Name.
    pub name: String,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Request body, a constant expression.
    pub body: Option<Expr>,
    /// Event id to send.
    pub event_id: Option<String>,
    /// Assertions over `status`, `headers` and `body`.
    pub expects: Vec<Expr>,
}

/// A checked expression: names resolved.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// `null`
    Null,
    /// A bool.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// The step's input.
    Body,
    /// A graph parameter.
    Param(Name),
    /// `event.id`, `event.key`, `event.path`, `event.method`, `event.time`.
    EventField(EventField),
    /// `status` in a test.
    Status,
    /// `headers` in a test.
    Headers,
    /// `chunks` in a test: a streamed answer's chunks, `null` for an answer that did not stream.
    Chunks,
    /// `e.field`
    Field(Box<Expr>, Name),
    /// `e[i]`
    Index(Box<Expr>, Box<Expr>),
    /// `-e`, `!e`
    Unary(UnaryOp, Box<Expr>),
    /// `a op b`
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `{k: v}`
    Object(Vec<(Name, Expr)>),
    /// `[a, b]`
    Array(Vec<Expr>),
    /// `len(e)`
    Len(Box<Expr>),
}

/// A field of the event a step can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventField {
    /// The event's id: given by the caller or made on arrival.
    Id,
    /// Its key (`x-event-key`, a stream record's key).
    Key,
    /// The request path.
    Path,
    /// The request method.
    Method,
    /// When the graph took it in, in seconds since the epoch.
    Time,
}

impl EventField {
    /// Every field, in the order help lists them.
    pub const ALL: [EventField; 5] =
        [EventField::Id, EventField::Key, EventField::Path, EventField::Method, EventField::Time];

    /// The field as written after `event.`.
    pub const fn name(self) -> &'static str {
        match self {
            EventField::Id => "id",
            EventField::Key => "key",
            EventField::Path => "path",
            EventField::Method => "method",
            EventField::Time => "time",
        }
    }

    /// The field written `name`, if the event has one.
    pub fn named(name: &str) -> Option<EventField> {
        EventField::ALL.into_iter().find(|field| field.name() == name)
    }
}

/// Prefix operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// `-`
    Neg,
    /// `!`
    Not,
}

/// Infix operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `||`
    Or,
    /// `&&`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
}

impl BinaryOp {
    /// Every infix operator.
    pub const ALL: [BinaryOp; 13] = [
        BinaryOp::Or,
        BinaryOp::And,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Rem,
    ];

    /// How tightly it binds, from 1 (`||`) to 5 (`*`, `/`, `%`); all associate to the left.
    /// The parser's operator table and the formatter's parentheses both read it.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => 3,
            BinaryOp::Add | BinaryOp::Sub => 4,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => 5,
        }
    }

    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }
}
