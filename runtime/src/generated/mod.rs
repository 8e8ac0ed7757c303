//! What generated pipelines are built with: their options, model loading, `new` steps built
//! from their arguments; how a function starts (`launch`), and test blocks with their runner
//! (`test_blocks`) and their JUnit report (`junit`).

mod junit;
mod launch;
mod test_blocks;

pub use junit::junit;
pub use launch::{Launch, Launched};
pub use test_blocks::{Expectation, TestCase, TestOutcome, report, run_tests};

use crate::context::Context;
use crate::error::{ErrorStream, MemoryErrorStream};
#[cfg(feature = "models")]
use crate::model::ModelKind;
use crate::model::{LoadError, LoadModel};
#[cfg(feature = "streams")]
use crate::stream::RedisErrorStream;
use crate::stream::{MemoryStreams, Sink, StreamQueue, StreamSource, StreamWriter};
use crate::trigger::{ScheduleTrigger, StreamTrigger, Trigger, When};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
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
    when: Result<When, crate::trigger::ScheduleError>,
    body: Value,
    overlap: bool,
    answers: Option<(&str, &str)>,
) -> Result<Trigger, StartError> {
    let when = when.map_err(|error| StartError::Trigger { trigger: name.to_string(), reason: error.to_string() })?;
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

/// The graph file's directory, from a path given to `Options`.
pub fn directory_of(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}
