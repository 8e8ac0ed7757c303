//! What generated pipelines are built with: their options, model loading, `new` steps built
//! from their arguments, and test blocks with their runner.

use crate::context::Context;
use crate::error::StepError;
use crate::error::{ErrorStream, MemoryErrorStream};
use crate::event::Response;
use crate::http::{Connections, ServeOptions, bind, serve_probes, serve_sharing, shutdown_signal};
use crate::mock::MockServer;
#[cfg(feature = "models")]
use crate::model::ModelKind;
use crate::model::{LoadError, LoadModel};
use crate::pipeline::Handler;
use crate::stream::{ConsumeOptions, ConsumerStats, MemoryStreams, Sink, StreamQueue, StreamSource, StreamWriter};
#[cfg(feature = "streams")]
use crate::stream::{RedisErrorStream, consume_with_stats};
use crate::trigger::{ScheduleTrigger, SharedHandler, StreamTrigger, Trigger, When};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

/// How a generated pipeline is built at start-up.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Where relative model paths start: the directory of the `.graph` file.
    pub base_dir: PathBuf,
    /// Parameter values that replace the graph's defaults.
    pub params: Vec<(String, Value)>,
    /// A file of `NAME=value` secrets, read after the environment.
    pub secrets_file: Option<PathBuf>,
    /// Endpoints of other functions, for `$remote(function = ...)`.
    pub endpoints: Vec<(String, String)>,
    /// The Redis server every stream queue and the error stream use instead of the graph's
    /// (`--redis URL`, `GRAPHC_REDIS_URL`): the same graph in another deployment.
    pub redis_url: Option<String>,
    /// When set, stream queues and the error stream write here instead of Redis: one function
    /// run alone under the mock server, or `graphc test`.
    pub memory_streams: Option<Arc<MemoryStreams>>,
    /// A 5xx failure's cause goes to the caller too, not only to the log (`--expose-errors`;
    /// `graphc test` sets it, so that test blocks can look at causes).
    pub expose_errors: bool,
}

impl Options {
    /// Options with model paths relative to `base_dir`.
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        Options { base_dir: base_dir.into(), ..Options::default() }
    }

    /// Sets a parameter.
    pub fn param(mut self, name: impl Into<String>, value: Value) -> Self {
        self.params.push((name.into(), value));
        self
    }

    /// Maps a function name to its HTTP endpoint.
    pub fn endpoint(mut self, function: impl Into<String>, url: impl Into<String>) -> Self {
        self.endpoints.push((function.into(), url.into()));
        self
    }
}

/// The options with streams and the error stream in memory: the options' own memory streams,
/// or new ones.
pub fn in_memory(options: &Options) -> Options {
    let mut options = options.clone();
    options.memory_streams.get_or_insert_with(MemoryStreams::new);
    options
}

/// The writing side of a stream queue, on the options' Redis server or in their memory streams.
pub fn stream_writer(options: &Options, queue: &str, url: &str, stream: &str, shards: u32) -> StreamWriter {
    let queue = StreamQueue::new(queue, url, stream, shards).on_server(options.redis_url.as_deref());
    match &options.memory_streams {
        Some(streams) => StreamWriter::new(queue, Sink::Memory(Arc::clone(streams))),
        None => StreamWriter::new(queue, Sink::Redis),
    }
}

/// The stream a child function reads; its consumer group is the function's name.
pub fn stream_source(
    options: &Options,
    function: &str,
    queue: &str,
    url: &str,
    stream: &str,
    shards: u32,
) -> StreamSource {
    StreamSource {
        queue: StreamQueue::new(queue, url, stream, shards).on_server(options.redis_url.as_deref()),
        group: function.to_string(),
    }
}

/// A stream trigger of the root: its group is the graph's name unless the graph names one.
#[allow(clippy::too_many_arguments, reason = "generated code passes the trigger as the graph declares it")]
pub fn stream_trigger(
    options: &Options,
    name: &str,
    url: &str,
    stream: &str,
    shards: u32,
    group: &str,
    answers: Option<(&str, &str)>,
) -> Trigger {
    Trigger::Stream(StreamTrigger {
        name: name.to_string(),
        source: StreamSource {
            queue: StreamQueue::new(name, url, stream, shards).on_server(options.redis_url.as_deref()),
            group: group.to_string(),
        },
        answers: answers.map(|(url, stream)| stream_writer(options, name, url, stream, 1)),
    })
}

/// A schedule trigger of the root.
pub fn schedule_trigger(
    options: &Options,
    name: &str,
    when: Result<When, String>,
    body: Value,
    overlap: bool,
    answers: Option<(&str, &str)>,
) -> Result<Trigger, StartError> {
    let when = when.map_err(|reason| StartError::Trigger { trigger: name.to_string(), reason })?;
    Ok(Trigger::Schedule(ScheduleTrigger {
        name: name.to_string(),
        when,
        body,
        overlap,
        answers: answers.map(|(url, stream)| stream_writer(options, name, url, stream, 1)),
        stats: Arc::default(),
    }))
}

/// The graph's error stream: Redis (`redis` gives the URL and stream) unless the options keep
/// streams in memory; in memory when the graph says `error_stream = memory`.
pub fn error_stream(options: &Options, redis: Option<(&str, &str)>) -> Arc<dyn ErrorStream> {
    match (&options.memory_streams, redis) {
        (Some(streams), _) => Arc::clone(streams) as Arc<dyn ErrorStream>,
        #[cfg(feature = "streams")]
        (None, Some((url, stream))) => {
            let url = options.redis_url.as_deref().unwrap_or(url);
            Arc::new(RedisErrorStream::new(url, stream))
        }
        #[cfg(not(feature = "streams"))]
        (None, Some(_)) => {
            tracing::error!(
                "the error stream is on Redis, but this build has no Redis client: failures are kept in memory"
            );
            Arc::new(MemoryErrorStream::new())
        }
        (None, None) => Arc::new(MemoryErrorStream::new()),
    }
}

/// A function of a graph, started: it runs until a shutdown signal.
pub type Launched = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// How a generated `run` starts a function: the HTTP settings for the root, the consumer
/// settings for a child function.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// The graph's name, for what the process prints.
    pub graph: String,
    /// The root function's server.
    pub serve: ServeOptions,
    /// A child function's consumer.
    pub consume: ConsumeOptions,
    /// Where a child function serves `/metrics` and its health probes (`--metrics-port`).
    pub probes: Option<std::net::SocketAddr>,
    /// Where the root function also serves the Open Inference Protocol over gRPC
    /// (`--grpc-port`; the `grpc` feature).
    pub grpc: Option<std::net::SocketAddr>,
}

impl Launch {
    /// Serves the root function over HTTP, and runs its triggers, until SIGINT or SIGTERM; one
    /// pipeline takes both.
    pub fn serve<H: Handler>(self, handler: H, triggers: Vec<Trigger>) -> Launched {
        Box::pin(async move {
            let listener =
                bind(&self.serve).await.map_err(|error| format!("cannot listen on {}: {error}", self.serve.addr))?;
            let addr = listener.local_addr().map_err(|error| error.to_string())?;
            eprintln!("serving {} on http://{addr}", self.graph);
            let handler = SharedHandler::new(handler);
            // One cap on open connections for both ports: a flood on one cannot use up the
            // file descriptors the other needs.
            let connections = Connections::new(self.serve.max_connections);
            let grpc = self.grpc_server(handler.clone(), Arc::clone(&connections)).await?;
            let has_triggers = !triggers.is_empty();
            // Triggers that end because the process is stopping are not a failure, even when
            // they end before the server has drained.
            let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let signalled = Arc::clone(&stopping);
            let trigger_shutdown = async move {
                shutdown_signal().await;
                signalled.store(true, std::sync::atomic::Ordering::SeqCst);
            };
            let mut triggered =
                tokio::spawn(crate::trigger::run(handler.clone(), triggers, self.consume.clone(), trigger_shutdown));
            let serving = serve_sharing(listener, handler, self.serve, connections, shutdown_signal());
            tokio::pin!(serving);
            let joined = |finished: Result<Result<(), String>, tokio::task::JoinError>| {
                finished.map_err(|error| format!("the triggers stopped: {error}")).and_then(|result| result)
            };
            let served = tokio::select! {
                served = &mut serving => {
                    let served = served.map_err(|error| error.to_string());
                    served.and(joined(triggered.await))
                }
                // Triggers end before the server only when one failed (or there are none):
                // then the process stops, so that a supervisor restarts it.
                finished = &mut triggered => match joined(finished) {
                    Ok(()) if !has_triggers || stopping.load(std::sync::atomic::Ordering::SeqCst) => {
                        serving.await.map_err(|error| error.to_string())
                    }
                    Ok(()) => Err("the triggers stopped".to_string()),
                    Err(message) => Err(message),
                },
            };
            match grpc {
                Some(grpc) => served.and(
                    grpc.await
                        .map_err(|error| format!("the gRPC server stopped: {error}"))?
                        .map_err(|error| format!("the gRPC server stopped: {error}")),
                ),
                None => served,
            }
        })
    }

    /// Starts the gRPC server when `--grpc-port` asks for it, on the same pipeline as HTTP.
    #[cfg(feature = "grpc")]
    async fn grpc_server<H: Handler>(
        &self,
        handler: SharedHandler<H>,
        connections: Arc<Connections>,
    ) -> Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>, String> {
        let Some(addr) = self.grpc else { return Ok(None) };
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|error| format!("cannot listen on {addr}: {error}"))?;
        let local = listener.local_addr().map_err(|error| error.to_string())?;
        eprintln!("serving {} over gRPC on {local}", self.graph);
        let options = ServeOptions { addr: local, ..self.serve.clone() };
        Ok(Some(tokio::spawn(crate::oip::grpc::serve(listener, handler, options, connections, shutdown_signal()))))
    }

    /// Without the `grpc` feature, `--grpc-port` is refused at start-up, saying how to build it in.
    #[cfg(not(feature = "grpc"))]
    async fn grpc_server<H: Handler>(
        &self,
        _handler: SharedHandler<H>,
        _connections: Arc<Connections>,
    ) -> Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>, String> {
        match self.grpc {
            None => Ok(None),
            Some(_) => Err("this binary was built without gRPC: `graphc serve FILE --grpc-port PORT` builds it in \
                 (or enable graphc-runtime's `grpc` feature)"
                .to_string()),
        }
    }

    /// Consumes a child function's stream until SIGINT or SIGTERM.
    pub fn consume<H: Handler>(self, handler: H, source: StreamSource) -> Launched {
        Box::pin(async move {
            let stats = Arc::new(ConsumerStats::default());
            if let Some(addr) = self.probes {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|error| format!("cannot listen on {addr}: {error}"))?;
                let local = listener.local_addr().map_err(|error| error.to_string())?;
                eprintln!("metrics and health on http://{local}");
                tokio::spawn(serve_probes(listener, Arc::clone(&stats), source.group.clone(), shutdown_signal()));
            }
            eprintln!(
                "function {} consuming {} at {} as {}",
                source.group,
                source.queue.streams().join(", "),
                crate::error::redact_credentials(&source.queue.url),
                self.consume.consumer
            );
            #[cfg(feature = "streams")]
            return consume_with_stats(handler, source, self.consume, stats, shutdown_signal()).await;
            #[cfg(not(feature = "streams"))]
            {
                let _ = (handler, stats);
                Err("this build has no Redis client (graphc-runtime's `streams` feature)".to_string())
            }
        })
    }

    /// A function that could not be built.
    pub fn failed(self, error: StartError) -> Launched {
        Box::pin(async move { Err(error.to_string()) })
    }

    /// A function the graph does not have.
    pub fn unknown(self, function: &str, functions: &[&str]) -> Launched {
        let message = format!("the graph has no function `{function}`; its functions are: {}", functions.join(", "));
        Box::pin(async move { Err(message) })
    }
}

/// Why a pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A model did not load.
    #[error(transparent)]
    Model(#[from] LoadError),
    /// A trigger could not be set up.
    #[error("cannot set up trigger `{trigger}`: {reason}")]
    Trigger {
        /// The trigger.
        trigger: String,
        /// Why.
        reason: String,
    },
    /// A `new` step's arguments did not build it.
    #[error("cannot build step `{step}`: {reason}")]
    Step {
        /// The step.
        step: String,
        /// Why.
        reason: String,
    },
}

/// Builds a model route, once: the model's arguments deserialised into the type's
/// `LoadModel::Args`, its `model_path` relative to the graph's directory. smartcore's models and
/// a user's types load alike; a type that is not a model is one rustc error, at its path.
pub fn model_route<M: LoadModel>(
    options: &Options,
    route: &str,
    model_path: Option<&str>,
    args: Map<String, Value>,
) -> Result<crate::router::Route, StartError> {
    let path = model_path.map(|path| options.base_dir.join(path));
    let fail = |reason: String| LoadError {
        route: route.to_string(),
        path: path.as_ref().map_or_else(|| "(no model_path)".to_string(), |p| p.display().to_string()),
        reason,
    };
    let args = serde_json::from_value::<M::Args>(Value::Object(args))
        .map_err(|error| fail(format!("its arguments do not fit the model type: {error}")))?;
    let model = M::load(path.as_deref(), args).map_err(|error: crate::model::BoxError| {
        // The whole chain: a user's error often wraps the I/O or parse error that says why.
        let mut reason = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            reason.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        fail(reason)
    })?;
    Ok(crate::router::Route::Model(std::sync::Arc::new(model)))
}

/// A smartcore route's arguments: its estimator.
#[cfg(feature = "models")]
pub fn smartcore_args(kind: ModelKind) -> Map<String, Value> {
    let mut args = Map::new();
    args.insert("kind".to_string(), serde_json::to_value(kind).unwrap_or(Value::Null));
    args
}

/// Builds a `new Type(args)` step: its arguments, as a JSON object, deserialised into the type.
pub fn construct<T: crate::Step + DeserializeOwned>(
    step: &str,
    args: Map<String, Value>,
) -> Result<impl crate::Step + use<T>, StartError> {
    serde_json::from_value::<T>(Value::Object(args))
        .map_err(|error| StartError::Step { step: step.to_string(), reason: error.to_string() })
}

/// The context with the graph's parameters, defaults first, then the options' values.
pub fn context(graph: &str, defaults: Vec<(&str, Value)>, options: &Options) -> Context {
    let mut context = Context::new(graph);
    for (name, value) in defaults {
        context = context.with_param(name, value);
    }
    for (name, value) in &options.params {
        context = context.with_param(name.clone(), value.clone());
    }
    for (function, url) in &options.endpoints {
        context = context.with_endpoint(function.clone(), url.clone());
    }
    let mut context = match &options.secrets_file {
        // The command line checks that the file reads before building; a file that has gone
        // since is logged, and the environment still answers.
        Some(file) if std::fs::metadata(file).is_ok() => context.with_secrets_file(file).unwrap_or_else(|error| {
            tracing::error!(file = %file.display(), "cannot read the secrets file: {error}");
            Context::new(graph)
        }),
        Some(file) => {
            tracing::error!(file = %file.display(), "the secrets file is missing");
            context
        }
        None => context,
    };
    context.expose_errors = options.expose_errors;
    context
}

/// One expectation of a test block: its source text and its check.
pub struct Expectation {
    /// The expression as written.
    pub source: &'static str,
    /// Evaluates it over `status`, `headers` and `body`.
    pub check: fn(&Value, &Value, &Value) -> Result<bool, StepError>,
}

/// A test block.
pub struct TestCase {
    /// Its name.
    pub name: &'static str,
    /// The request method.
    pub method: &'static str,
    /// The request path.
    pub path: &'static str,
    /// Request headers.
    pub headers: Vec<(&'static str, &'static str)>,
    /// The request body.
    pub body: Option<Value>,
    /// The event id to send.
    pub event_id: Option<&'static str>,
    /// What the response must meet.
    pub expects: Vec<Expectation>,
}

/// The outcome of one test block.
#[derive(Debug)]
pub struct TestOutcome {
    /// The test's name.
    pub name: String,
    /// `None` when it passed; else what failed.
    pub failure: Option<String>,
    /// How long it took.
    pub seconds: f64,
}

/// Runs test blocks against a pipeline's mock server.
pub fn run_tests<H: Handler>(server: &MockServer<H>, cases: &[TestCase]) -> Vec<TestOutcome> {
    cases
        .iter()
        .map(|case| {
            let started = std::time::Instant::now();
            let mut request = server.request(case.method, case.path);
            for (name, value) in &case.headers {
                request = request.header(name, value);
            }
            if let Some(id) = case.event_id {
                request = request.event_id(id);
            }
            if let Some(body) = &case.body {
                request = request.json(body);
            }
            let response = request.send();
            let failure = check(&response, &case.expects);
            TestOutcome { name: case.name.to_string(), failure, seconds: started.elapsed().as_secs_f64() }
        })
        .collect()
}

fn check(response: &Response, expects: &[Expectation]) -> Option<String> {
    let status = Value::from(response.status);
    let headers = Value::Object(response.all_headers().into_iter().map(|(k, v)| (k, Value::String(v))).collect());
    let body = response.json_body();
    for expect in expects {
        match (expect.check)(&status, &headers, &body) {
            Ok(true) => {}
            Ok(false) => {
                return Some(format!(
                    "expected {}\n    status: {}\n    body: {}",
                    expect.source,
                    response.status,
                    String::from_utf8_lossy(&response.body)
                ));
            }
            Err(error) => return Some(format!("cannot evaluate {}: {error}", expect.source)),
        }
    }
    None
}

/// `N passed, N failed` and one line per test, as `graphc test` prints them.
pub fn report(outcomes: &[TestOutcome]) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        match &outcome.failure {
            None => out.push_str(&format!("test {} ... ok\n", outcome.name)),
            Some(failure) => out.push_str(&format!("test {} ... FAILED\n    {failure}\n", outcome.name)),
        }
    }
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    out.push_str(&format!("{} passed, {failed} failed\n", outcomes.len() - failed));
    out
}

/// JUnit XML for CI systems.
pub fn junit(suite: &str, outcomes: &[TestOutcome]) -> String {
    let escape =
        |text: &str| text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"0\" time=\"{:.6}\">\n",
        escape(suite),
        outcomes.len(),
        outcomes.iter().map(|o| o.seconds).sum::<f64>()
    );
    for outcome in outcomes {
        out.push_str(&format!(
            "  <testcase name=\"{}\" classname=\"{}\" time=\"{:.6}\"",
            escape(&outcome.name),
            escape(suite),
            outcome.seconds
        ));
        match &outcome.failure {
            None => out.push_str("/>\n"),
            Some(failure) => {
                out.push_str(&format!(">\n    <failure message=\"{}\"/>\n  </testcase>\n", escape(failure)))
            }
        }
    }
    out.push_str("</testsuite>\n");
    out
}

/// The graph file's directory, from a path given to `Options`.
pub fn directory_of(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}
