//! The words of the language the checker accepts: settings, options, built-ins and their
//! arguments. One list each, read by the checker (what is known, "did you mean") and by editors
//! (completion).

/// Graph-wide settings: `topology = flow;`.
pub const GRAPH_SETTINGS: &[&str] =
    &["topology", "engine", "on_error", "error_stream", "description", "handlers", "allow_cycles", "max_iterations"];
/// `topology = ...`
pub const TOPOLOGIES: &[&str] = &["router", "flow"];
/// `engine = ...`
pub const ENGINES: &[&str] = &["sync", "async"];
/// A step's options: `step a = ... { respond; }`.
pub const STEP_OPTIONS: &[&str] = &[
    "after",
    "before",
    "function",
    "full_event",
    "input_path",
    "result_path",
    "respond",
    "on_error",
    "max_iterations",
    "streaming",
];
/// A router's options, next to its routes.
pub const ROUTER_OPTIONS: &[&str] = &[
    "after",
    "before",
    "function",
    "input_path",
    "result_path",
    "respond",
    "on_error",
    "url_prefix",
    "health_prefix",
    "extend_event",
    "vote",
    "weights",
    "select",
];
/// A queue's options.
pub const QUEUE_OPTIONS: &[&str] = &["after", "before"];
/// Built-in steps: `step a = map(...)`.
pub const STEP_BUILTINS: &[&str] = &["extend", "map", "filter", "flat_map", "batch", "collect"];
/// Built-ins that take one expression.
pub const EXPRESSION_BUILTINS: &[&str] = &["extend", "map", "filter", "flat_map"];
/// `batch(...)`'s arguments.
pub const BATCH_ARGS: &[&str] = &["size", "timeout_ms"];
/// `model(...)`'s arguments, on a route.
pub const MODEL_ARGS: &[&str] = &["kind", "model_path", "batch_size", "batch_delay_ms", "instances"];
/// `model(new Type(...), ...)`'s arguments after the type (`kind` is refused with its reason).
pub const USER_MODEL_ARGS: &[&str] = &["model_path", "batch_size", "batch_delay_ms", "instances", "kind"];
/// `router NAME = KIND { ... }`
pub const ROUTER_KINDS: &[&str] = &["model", "ensemble", "parallel", "custom"];
/// `queue NAME = ENGINE(...)`
pub const QUEUE_ENGINES: &[&str] = &["memory", "stream"];
/// `memory(...)`'s arguments.
pub const MEMORY_QUEUE_ARGS: &[&str] = &["capacity"];
/// A stream queue's arguments.
pub const STREAM_QUEUE_ARGS: &[&str] = &["url", "stream", "shards", "key"];
/// `$remote(...)`'s arguments.
pub const REMOTE_ARGS: &[&str] =
    &["url", "function", "method", "headers", "forward_headers", "timeout_ms", "retries", "backoff_ms"];
/// `trigger NAME = KIND(...)`
pub const TRIGGER_KINDS: &[&str] = &["stream", "schedule"];
/// A stream trigger's arguments.
pub const STREAM_TRIGGER_ARGS: &[&str] = &["url", "stream", "shards", "group", "answers"];
/// A schedule trigger's arguments.
pub const SCHEDULE_TRIGGER_ARGS: &[&str] = &["cron", "every_ms", "timezone", "body", "overlap", "answers"];
/// The built-in types; records add theirs.
pub const BUILTIN_TYPES: &[&str] = &["int", "float", "str", "bool", "json"];
/// The fields of `event` in a step's expressions.
#[allow(clippy::indexing_slicing, reason = "evaluated at compile time, where an index out of range is a build error")]
pub const EVENT_FIELDS: &[&str] = &{
    use crate::ir::EventField;
    let mut names = [""; EventField::ALL.len()];
    let mut index = 0;
    while index < names.len() {
        names[index] = EventField::ALL[index].name();
        index += 1;
    }
    names
};
/// A test request's options.
pub const REQUEST_OPTIONS: &[&str] = &["body", "headers", "event_id"];
