//! Steps: the trait every node of a graph runs, adapters for user functions, input and result
//! paths, and the built-in steps.

use crate::context::Context;
use crate::error::StepError;
use crate::event::{Event, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::marker::PhantomData;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a step did with the event it changed in place.
#[derive(Debug)]
pub enum Flow {
    /// Pass the event on.
    Next,
    /// Drop the event (a filter, a choice with no matching arm, a partial batch).
    Drop,
    /// Pass each of these events on instead (flat_map, a batch).
    Many(Vec<Event>),
    /// Pass the event to one outlet, by index (choice).
    Outlet(usize),
    /// Answer the caller with this response, sent as is, and stop this path. Boxed: it is rare,
    /// and every step returns a `Flow`, so its size is moved around for every event.
    Reply(Box<Response>),
}

/// What a step may have changed of its event when it fails: what an error handler's copy of
/// the event as it entered the step must keep (a handler gets that event: docs/semantics.md, section 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Nothing: a failing step leaves the event as it entered, and no copy is made.
    Kept,
    /// The body only (a body function takes it): the body is copied.
    Body,
    /// Anything (a full-event function): the whole event is copied.
    Event,
}

/// One step of a graph. Steps are built once and called for every event, from many threads.
/// A step changes the event in place, which keeps large events from being copied around.
pub trait Step: Send + Sync + 'static {
    /// What a failure of this step may have changed (by default, anything).
    fn entry(&self) -> Entry {
        Entry::Event
    }

    /// Whether this step can read the event's arrival time (it is given the whole event, or
    /// evaluates expressions over it). When no step of a graph can, its pipeline reads no clock
    /// per event; true unless a step says otherwise.
    fn reads_time(&self) -> bool {
        true
    }

    /// Processes one event.
    fn process(&self, event: &mut Event, context: &Context) -> Result<Flow, StepError>;

    /// Processes an event whose body, once this step is done, only answers the caller: the
    /// step's output is the response and nothing after it reads the event. A step that can
    /// write that answer straight to bytes returns it as [`Flow::Reply`] (200, JSON, the same
    /// bytes its body would serialise to), with no JSON tree built only to be serialised and
    /// freed; by default, [`Step::process`].
    fn process_last(&self, event: &mut Event, context: &Context) -> Result<Flow, StepError> {
        self.process(event, context)
    }
}

/// What a user's body function may return.
pub trait BodyOutput {
    /// Applies the result to the event.
    fn into_flow(self, event: &mut Event) -> Result<Flow, StepError>;
}

impl BodyOutput for Value {
    #[inline]
    fn into_flow(self, event: &mut Event) -> Result<Flow, StepError> {
        // Callers took the body out, leaving `null`: the check is inline, and only a body that
        // was put back calls the out-of-line drop of a `Value`.
        match std::mem::replace(&mut event.body, self) {
            taken @ Value::Null => std::mem::forget(taken),
            taken => drop(taken),
        }
        Ok(Flow::Next)
    }
}

/// `None` drops the event.
impl BodyOutput for Option<Value> {
    #[inline]
    fn into_flow(self, event: &mut Event) -> Result<Flow, StepError> {
        self.map_or(Ok(Flow::Drop), |body| body.into_flow(event))
    }
}

impl BodyOutput for Response {
    fn into_flow(self, _event: &mut Event) -> Result<Flow, StepError> {
        Ok(Flow::Reply(Box::new(self)))
    }
}

impl<T: BodyOutput, E: Into<StepError>> BodyOutput for Result<T, E> {
    fn into_flow(self, event: &mut Event) -> Result<Flow, StepError> {
        self.map_err(Into::into)?.into_flow(event)
    }
}

impl From<String> for StepError {
    fn from(message: String) -> Self {
        StepError::new(message)
    }
}

impl From<&str> for StepError {
    fn from(message: &str) -> Self {
        StepError::new(message)
    }
}

/// A function of the body: `fn(Value) -> Value`, or returning `Result`, `Option` or a
/// `Response`.
///
/// ```
/// use graphc_runtime::{Body, Context, Event, Flow, Step};
/// let inc = Body(|mut body: serde_json::Value| { body["n"] = (body["n"].as_i64().unwrap_or(0) + 1).into(); body });
/// let mut event = Event::new(serde_json::json!({"n": 1}));
/// assert!(matches!(inc.process(&mut event, &Context::new("g")), Ok(Flow::Next)));
/// assert_eq!(event.body["n"], 2);
/// ```
pub struct Body<F>(pub F);

impl<F, R> Step for Body<F>
where
    F: Fn(Value) -> R + Send + Sync + 'static,
    R: BodyOutput,
{
    fn process(&self, event: &mut Event, _context: &Context) -> Result<Flow, StepError> {
        let body = std::mem::take(&mut event.body);
        (self.0)(body).into_flow(event)
    }

    fn entry(&self) -> Entry {
        Entry::Body
    }

    fn reads_time(&self) -> bool {
        false
    }
}

/// A function of the body and the context.
pub struct BodyWithContext<F>(pub F);

impl<F, R> Step for BodyWithContext<F>
where
    F: Fn(Value, &Context) -> R + Send + Sync + 'static,
    R: BodyOutput,
{
    fn process(&self, event: &mut Event, context: &Context) -> Result<Flow, StepError> {
        let body = std::mem::take(&mut event.body);
        (self.0)(body, context).into_flow(event)
    }

    fn entry(&self) -> Entry {
        Entry::Body
    }

    fn reads_time(&self) -> bool {
        false
    }
}

/// A full-event function: it reads and changes the whole event (key, path, time, ...).
pub struct FullEvent<F>(pub F);

impl<F, R> Step for FullEvent<F>
where
    F: Fn(&mut Event, &Context) -> R + Send + Sync + 'static,
    R: EventOutput,
{
    fn process(&self, event: &mut Event, context: &Context) -> Result<Flow, StepError> {
        (self.0)(event, context).into_flow()
    }
}

/// What a full-event function may return.
pub trait EventOutput {
    /// The flow it means.
    fn into_flow(self) -> Result<Flow, StepError>;
}

impl EventOutput for () {
    fn into_flow(self) -> Result<Flow, StepError> {
        Ok(Flow::Next)
    }
}

/// `false` drops the event.
impl EventOutput for bool {
    fn into_flow(self) -> Result<Flow, StepError> {
        Ok(if self { Flow::Next } else { Flow::Drop })
    }
}

impl EventOutput for Flow {
    fn into_flow(self) -> Result<Flow, StepError> {
        Ok(self)
    }
}

impl<T: EventOutput, E: Into<StepError>> EventOutput for Result<T, E> {
    fn into_flow(self) -> Result<Flow, StepError> {
        self.map_err(Into::into)?.into_flow()
    }
}

/// A typed function: the body is read as `In` (a body that does not fit is 422) and the
/// result written back as JSON.
pub struct Typed<F, In, Out> {
    function: F,
    types: PhantomData<fn(In) -> Out>,
}

impl<F, In, Out> Typed<F, In, Out> {
    /// Wraps `function`.
    pub fn new(function: F) -> Self {
        Typed { function, types: PhantomData }
    }
}

impl<F, In, Out, E> Step for Typed<F, In, Out>
where
    F: Fn(In, &Context) -> Result<Out, E> + Send + Sync + 'static,
    In: DeserializeOwned + 'static,
    Out: Serialize + 'static,
    E: Into<StepError>,
{
    /// The input is read from the body in place, so the body is untouched until the output
    /// replaces it: a failure (or a panic) leaves it as it entered, and an error handler needs
    /// no copy of it.
    fn process(&self, event: &mut Event, context: &Context) -> Result<Flow, StepError> {
        let input = In::deserialize(&event.body).map_err(|error| {
            StepError::invalid_input(format!("the body does not fit the step's input type: {error}"))
        })?;
        let output = (self.function)(input, context).map_err(Into::into)?;
        event.body = serde_json::to_value(output)
            .map_err(|error| StepError::new(format!("cannot write the step's output: {error}")))?;
        Ok(Flow::Next)
    }

    fn entry(&self) -> Entry {
        Entry::Kept
    }

    fn reads_time(&self) -> bool {
        false
    }
}

/// `input_path` and `result_path` around a step: it gets the value at the input path (`null`
/// when missing), and its result is written at the result path of the original body, creating
/// objects on the way.
pub struct WithPaths<S> {
    step: S,
    name: &'static str,
    input_path: Option<Vec<String>>,
    result_path: Option<Vec<String>>,
}

impl<S> WithPaths<S> {
    /// Wraps `step`, named `name` for error messages; paths are dotted (`req.body`).
    pub fn new(name: &'static str, step: S, input_path: Option<&str>, result_path: Option<&str>) -> Self {
        let split = |path: &str| path.split('.').map(str::to_string).collect();
        WithPaths { step, name, input_path: input_path.map(split), result_path: result_path.map(split) }
    }
}

impl<S: Step> Step for WithPaths<S> {
    fn process(&self, event: &mut Event, context: &Context) -> Result<Flow, StepError> {
        let original = std::mem::take(&mut event.body);
        event.body = match &self.input_path {
            Some(path) => value_at(&original, path).cloned().unwrap_or(Value::Null),
            None => original.clone(),
        };
        let flow = self.step.process(event, context);
        let result = std::mem::replace(&mut event.body, original);
        let flow = flow?;
        if let Flow::Next = flow {
            match &self.result_path {
                Some(path) => write_result(self.name, &mut event.body, path, result)?,
                None => event.body = result,
            }
        }
        Ok(flow)
    }

    /// The original body is put back when the step returns a failure, but not when it panics
    /// (the unwinding skips it), and writing at a result path may have created objects on the
    /// way before failing: the body is kept only around a step that keeps it.
    fn entry(&self) -> Entry {
        match (self.step.entry(), &self.result_path) {
            (Entry::Event, _) => Entry::Event,
            (Entry::Kept, None) => Entry::Kept,
            _ => Entry::Body,
        }
    }

    fn reads_time(&self) -> bool {
        self.step.reads_time()
    }
}

/// The value at a dotted path, if every step of it exists.
pub fn value_at<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(value, |current, key| current.get(key.as_str()))
}

/// A result path that runs into something other than an object.
#[derive(Debug, thiserror::Error)]
#[error("`{at}` is not an object")]
pub struct NotAnObject {
    /// The part of the path that holds it (`the body` for the first).
    pub at: String,
}

/// Writes `new` at a dotted path, creating objects on the way. A non-object on the way is an
/// error naming the part of the path that holds it.
pub fn set_at(target: &mut Value, path: &[String], new: Value) -> Result<(), NotAnObject> {
    let Some((last, parents)) = path.split_last() else {
        *target = new;
        return Ok(());
    };
    let mut current = target;
    for (depth, key) in parents.iter().enumerate() {
        if current.is_null() {
            *current = Value::Object(Map::new());
        }
        let object = current.as_object_mut().ok_or_else(|| NotAnObject { at: display_path(path, depth) })?;
        current = object.entry(key.clone()).or_insert(Value::Null);
    }
    if current.is_null() {
        *current = Value::Object(Map::new());
    }
    let object = current.as_object_mut().ok_or_else(|| NotAnObject { at: display_path(path, parents.len()) })?;
    object.insert(last.clone(), new);
    Ok(())
}

/// Writes step `step`'s `result` at its result path in `body`: the failure names the step.
pub(crate) fn write_result(step: &str, body: &mut Value, path: &[String], result: Value) -> Result<(), StepError> {
    set_at(body, path, result).map_err(|error| {
        let message = format!("step `{step}` cannot write its result at `{}`: {error}", path.join("."));
        StepError::new(message).with_source(error)
    })
}

fn display_path(path: &[String], depth: usize) -> String {
    if depth == 0 { "the body".to_string() } else { path.iter().take(depth).cloned().collect::<Vec<_>>().join(".") }
}

/// `extend(object)`: merges an object into the body.
pub struct Extend<F>(pub F);

impl<F> Step for Extend<F>
where
    F: Fn(&Event, &Context) -> Result<Value, StepError> + Send + Sync + 'static,
{
    fn process(&self, event: &mut Event, context: &Context) -> Result<Flow, StepError> {
        let Value::Object(extra) = (self.0)(event, context)? else {
            return Err(StepError::new("extend: the expression is not an object"));
        };
        if event.body.is_null() {
            event.body = Value::Object(Map::new());
        }
        let Some(body) = event.body.as_object_mut() else {
            return Err(StepError::invalid_input("extend: the body is not an object"));
        };
        body.extend(extra);
        Ok(Flow::Next)
    }

    /// The expression is evaluated over the event before anything changes.
    fn entry(&self) -> Entry {
        Entry::Kept
    }
}

/// `map(expr)`: replaces the body.
pub struct MapStep<F>(pub F);

impl<F> Step for MapStep<F>
where
    F: Fn(&Event, &Context) -> Result<Value, StepError> + Send + Sync + 'static,
{
    fn process(&self, event: &mut Event, context: &Context) -> Result<Flow, StepError> {
        event.body = (self.0)(event, context)?;
        Ok(Flow::Next)
    }

    fn entry(&self) -> Entry {
        Entry::Kept
    }
}

/// `filter(condition)`: drops the event unless the condition holds.
pub struct Filter<F>(pub F);

impl<F> Step for Filter<F>
where
    F: Fn(&Event, &Context) -> Result<bool, StepError> + Send + Sync + 'static,
{
    fn process(&self, event: &mut Event, context: &Context) -> Result<Flow, StepError> {
        Ok(if (self.0)(event, context)? { Flow::Next } else { Flow::Drop })
    }

    fn entry(&self) -> Entry {
        Entry::Kept
    }
}

/// `flat_map(expr)`: one event per element of an array; each keeps the event's id and fields.
pub struct FlatMap<F>(pub F);

impl<F> Step for FlatMap<F>
where
    F: Fn(&Event, &Context) -> Result<Value, StepError> + Send + Sync + 'static,
{
    fn process(&self, event: &mut Event, context: &Context) -> Result<Flow, StepError> {
        let Value::Array(items) = (self.0)(event, context)? else {
            return Err(StepError::invalid_input("flat_map: the expression is not an array"));
        };
        // Nothing fails after this point.
        event.body = Value::Null;
        Ok(Flow::Many(
            items
                .into_iter()
                .map(|item| {
                    let mut copy = event.clone();
                    copy.body = item;
                    copy
                })
                .collect(),
        ))
    }

    fn entry(&self) -> Entry {
        Entry::Kept
    }
}

/// `choice { ... }`: the index of the first arm whose condition holds, or `None` to drop.
pub struct Choice<F>(pub F);

impl<F> Step for Choice<F>
where
    F: Fn(&Event, &Context) -> Result<Option<usize>, StepError> + Send + Sync + 'static,
{
    fn process(&self, event: &mut Event, context: &Context) -> Result<Flow, StepError> {
        Ok((self.0)(event, context)?.map_or(Flow::Drop, Flow::Outlet))
    }

    fn entry(&self) -> Entry {
        Entry::Kept
    }
}

/// `batch(size, timeout_ms)`: groups bodies into arrays of `size`. A partial batch is sent when
/// an event arrives after the timeout, or when the pipeline drains (`Batch::flush`).
pub struct Batch {
    size: usize,
    timeout: Option<Duration>,
    pending: Mutex<(Vec<Event>, Option<Instant>)>,
}

impl Batch {
    /// A batch of `size` events, flushed after `timeout`.
    pub fn new(size: usize, timeout: Option<Duration>) -> Self {
        Batch { size: size.max(1), timeout, pending: Mutex::new((Vec::new(), None)) }
    }

    /// Takes the partial batch, if any, as one event.
    pub fn flush(&self) -> Option<Event> {
        let mut pending = self.pending.lock().ok()?;
        let events = std::mem::take(&mut pending.0);
        pending.1 = None;
        combine(events)
    }
}

fn combine(events: Vec<Event>) -> Option<Event> {
    let mut first = events.first()?.clone();
    first.body = Value::Array(events.into_iter().map(|event| event.body).collect());
    Some(first)
}

impl Step for Batch {
    fn process(&self, event: &mut Event, _context: &Context) -> Result<Flow, StepError> {
        let mut pending =
            self.pending.lock().map_err(|_| StepError::new("batch: a previous step panicked while batching"))?;
        let started = *pending.1.get_or_insert_with(Instant::now);
        pending.0.push(event.clone());
        let expired = self.timeout.is_some_and(|timeout| started.elapsed() >= timeout);
        if pending.0.len() >= self.size || expired {
            pending.1 = None;
            let events = std::mem::take(&mut pending.0);
            return Ok(combine(events).map_or(Flow::Drop, |batch| Flow::Many(vec![batch])));
        }
        Ok(Flow::Drop)
    }

    /// A batch carries its first event's time on; it reads none.
    fn reads_time(&self) -> bool {
        false
    }
}

/// A user's handler whose bounds were checked where generated code named it: `call` was made
/// there, for its type. The step's own `Step` impl asks nothing more of the handler, so a
/// handler of the wrong type is one error, at its path, and the pipeline around it raises no
/// second one.
pub struct Checked<F> {
    function: F,
    call: fn(&F, &mut Event, &Context) -> Result<Flow, StepError>,
    entry: Entry,
}

impl<F: Send + Sync + 'static> Step for Checked<F> {
    #[inline]
    fn process(&self, event: &mut Event, context: &Context) -> Result<Flow, StepError> {
        (self.call)(&self.function, event, context)
    }

    fn entry(&self) -> Entry {
        self.entry
    }

    /// Only a full-event handler is given the event, and with it its time.
    fn reads_time(&self) -> bool {
        self.entry == Entry::Event
    }
}

/// Wraps a body function, with its bounds checked where generated code names it, so that a
/// handler of the wrong type is reported at the handler's own path, once.
pub fn body_step<F, R>(function: F) -> Checked<F>
where
    F: Fn(Value) -> R + Send + Sync + 'static,
    R: BodyOutput,
{
    Checked {
        function,
        call: |function, event, _context| {
            let body = std::mem::take(&mut event.body);
            function(body).into_flow(event)
        },
        entry: Entry::Body,
    }
}

/// Wraps a full-event function, with its bounds checked where generated code names it.
pub fn full_event_step<F, R>(function: F) -> Checked<F>
where
    F: Fn(&mut Event, &Context) -> R + Send + Sync + 'static,
    R: EventOutput,
{
    Checked { function, call: |function, event, context| function(event, context).into_flow(), entry: Entry::Event }
}

/// Wraps a typed function `fn(In) -> Result<Out, E>` over the graph's records, with its bounds
/// checked where generated code names it.
pub fn typed_step<In, Out, F, E>(function: F) -> Checked<F>
where
    F: Fn(In) -> Result<Out, E> + Send + Sync + 'static,
    In: DeserializeOwned + 'static,
    Out: Serialize + 'static,
    E: Into<StepError>,
{
    Checked {
        function,
        call: |function, event, _context| {
            let input = In::deserialize(std::mem::take(&mut event.body)).map_err(|error| {
                StepError::invalid_input(format!("the body does not fit the step's input type: {error}"))
            })?;
            let output = function(input).map_err(Into::into)?;
            event.body = serde_json::to_value(output)
                .map_err(|error| StepError::new(format!("cannot write the step's output: {error}")))?;
            Ok(Flow::Next)
        },
        entry: Entry::Body,
    }
}

/// Where a node's step runs on the tokio executor (docs/architecture.md, "Where work runs"): a
/// plain step runs in the task that carries the event, which suits built-ins that take
/// microseconds; a [`Blocking`] one runs on the blocking pool ([`crate::pool`]), so that user
/// code that computes, sleeps or waits on I/O of its own never holds up a worker thread.
pub trait Placed: Send + Sync + 'static {
    /// The step.
    type Step: Step;
    /// Whether the step runs on the blocking pool.
    const BLOCKING: bool;
    /// The step, to call where it is.
    fn step(&self) -> &Self::Step;
    /// The step, to send to the pool: `None` for a step that runs in place.
    fn shared(&self) -> Option<&std::sync::Arc<Self::Step>>;
    /// What the step's recent calls cost, for a step that may run on the pool.
    fn cost(&self) -> Option<&crate::pool::CallCost> {
        None
    }
}

impl<S: Step> Placed for S {
    type Step = S;
    const BLOCKING: bool = false;
    #[inline(always)]
    fn step(&self) -> &S {
        self
    }
    fn shared(&self) -> Option<&std::sync::Arc<S>> {
        None
    }
}

/// A step that runs on the blocking pool under the tokio executor: what generated code wraps
/// every user handler, `new` step and router in. A call that recent calls show to be cheaper than
/// a hand-over runs in place ([`crate::pool::CallCost`]). Under the sync executor it runs in
/// place, as every step does (the sync pipeline moves whole events to the pool instead).
pub struct Blocking<S> {
    step: std::sync::Arc<S>,
    cost: crate::pool::CallCost,
}

impl<S: Step> Blocking<S> {
    /// Runs `step` on the blocking pool.
    pub fn new(step: S) -> Self {
        Blocking { step: std::sync::Arc::new(step), cost: crate::pool::CallCost::new() }
    }
}

impl<S: Step> Placed for Blocking<S> {
    type Step = S;
    const BLOCKING: bool = true;
    #[inline(always)]
    fn step(&self) -> &S {
        &self.step
    }
    fn shared(&self) -> Option<&std::sync::Arc<S>> {
        Some(&self.step)
    }
    fn cost(&self) -> Option<&crate::pool::CallCost> {
        Some(&self.cost)
    }
}
