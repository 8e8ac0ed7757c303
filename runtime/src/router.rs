//! Routers: the model router (MLRun's path rules and the Open Inference Protocol V2), the
//! voting ensemble, parallel run, and custom routing.

use crate::context::Context;
use crate::error::StepError;
use crate::event::{Event, Response};
use crate::model::{DEFAULT_OUTPUT, Model, TensorSpec};
use crate::oip::infer::{Answerer, Form, InferAnswer, InferRequest, read_inputs};
use crate::oip::paths;
use crate::step::{Flow, Step};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::sync::Arc;

/// What a route serves.
#[derive(Clone)]
pub enum Route {
    /// A model, through its hooks.
    Model(Arc<dyn Model>),
    /// Any step: its output is the answer.
    Step(Arc<dyn Step>),
}

/// Chooses a route for an event, for `custom` routers.
pub trait CustomRouter: Send + Sync + 'static {
    /// The index of the route to run, among `routes` (their names, in order).
    fn select(&self, event: &Event, routes: &[&str]) -> Result<usize, StepError>;
}

/// How a router combines its routes.
#[derive(Clone)]
pub enum Mode {
    /// One route per request, by path or body key.
    Model,
    /// Every route runs concurrently; a weighted vote decides.
    Ensemble {
        /// Weighted mean of numbers instead of a weighted majority of classes.
        regression: bool,
        /// One weight per route, in route order, normalised.
        weights: Vec<f64>,
    },
    /// Every route runs concurrently; object outputs are merged.
    Parallel,
    /// A user type chooses the route.
    Custom(Arc<dyn CustomRouter>),
}

/// A router: named routes behind a URL prefix.
///
/// ```
/// use graphc_runtime::router::{Router, Route, Mode};
/// use graphc_runtime::{Body, Context, End, MockServer, StepNode, SyncPipeline};
/// use std::sync::Arc;
/// let echo: Arc<dyn graphc_runtime::Step> = Arc::new(Body(|body: serde_json::Value| body));
/// let router = Router::new("router", "/v2/models", vec![("echo".into(), Route::Step(echo))], Mode::Model);
/// let server = MockServer::new(SyncPipeline::new(StepNode::new("router", router, End), Context::new("g")));
/// assert_eq!(server.request("GET", "/v2/models").send().json_body(), serde_json::json!({"models": ["echo"]}));
/// ```
pub struct Router {
    name: String,
    prefix: String,
    routes: Vec<(String, Route)>,
    /// One per route, in the same order.
    meters: Vec<crate::metrics::Meter>,
    /// Each model route's outputs (names and datatypes), asked of the model once rather than
    /// per request; none for a step.
    answers_with: Vec<Vec<TensorSpec>>,

    mode: Mode,
    /// `{health_prefix}/live` and `/ready`, answered without a route.
    health: [String; 2],
    /// A parallel run merges its routes' outputs into the request's body (MLRun's
    /// `extend_event`), not into a new object.
    extend_event: bool,
    /// An ensemble's weights as the graph wrote them, for the model list.
    given_weights: Option<Map<String, Value>>,
    /// A parallel run's selector: the names of the routes to run for an event.
    selector: Option<Box<Selector>>,
}

/// What an ensemble answers with, its vote: classes (INT64), or averaged numbers (FP64) for a
/// regression.
static VOTES: std::sync::LazyLock<[[TensorSpec; 1]; 2]> = std::sync::LazyLock::new(|| {
    [[TensorSpec::new(DEFAULT_OUTPUT, "INT64", vec![-1])], [TensorSpec::new(DEFAULT_OUTPUT, "FP64", vec![-1])]]
});

/// What chooses a parallel run's routes per event: a route's name or an array of them.
type Selector = dyn Fn(&Event, &Context) -> Result<Value, StepError> + Send + Sync;

/// The operations a model path may end with.
const OPERATIONS: &[&str] = &["infer", "predict", "explain", "ready"];

/// What a request asks a router to do.
#[derive(Debug, PartialEq)]
enum Operation {
    Infer,
    Explain,
    Ready,
    Metadata,
    /// A model's own operation (MLRun's `op_<name>`).
    Custom(String),
}

impl Route {
    /// The route with its model's predictions batched: concurrent requests predicted in one
    /// call of up to `max_rows` rows, waiting at most `max_delay` to fill one (a step route is
    /// left as it is).
    pub fn batched(self, max_rows: usize, max_delay: std::time::Duration) -> Route {
        self.scheduled(crate::model::Schedule { batch_size: max_rows, batch_delay: max_delay, instances: 1 })
    }

    /// The route with its model's calls scheduled: batched, and run by `instances` threads of
    /// its own (see [`crate::model::Batched`]); a step route is left as it is.
    pub fn scheduled(self, schedule: crate::model::Schedule) -> Route {
        match self {
            Route::Model(model) => Route::Model(Arc::new(crate::model::Batched::scheduled(model, schedule))),
            step => step,
        }
    }
}

impl Router {
    /// A router named `name` (the ensemble's model name), serving `routes` under `prefix`.
    pub fn new(name: impl Into<String>, prefix: impl Into<String>, routes: Vec<(String, Route)>, mode: Mode) -> Self {
        let prefix = prefix.into().trim_end_matches('/').to_string();
        Router {
            name: name.into(),
            prefix,
            meters: routes.iter().map(|_| Default::default()).collect(),
            answers_with: routes
                .iter()
                .map(|(_, route)| match route {
                    Route::Model(model) => model.outputs(),
                    Route::Step(_) => Vec::new(),
                })
                .collect(),

            routes,
            mode,
            health: paths::health(paths::HEALTH),
            extend_event: false,
            given_weights: None,
            selector: None,
        }
    }

    /// A parallel run runs, for each event, only the routes `select` names (a name or an array
    /// of names), as MLRun's ModelRunnerStep selects its models; their outputs are merged under
    /// their names.
    pub fn with_selector<F>(mut self, select: F) -> Self
    where
        F: Fn(&Event, &Context) -> Result<Value, StepError> + Send + Sync + 'static,
    {
        self.selector = Some(Box::new(select));
        self
    }

    /// The routes to run for `event`: those the selector names, in route order, else all.
    fn selected(&self, event: &Event, context: &Context) -> Result<Vec<usize>, StepError> {
        let Some(select) = &self.selector else { return Ok((0..self.routes.len()).collect()) };
        let chosen = select(event, context)?;
        let names: Vec<&str> = match &chosen {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) if names.iter().all(Value::is_string) => {
                names.iter().filter_map(Value::as_str).collect()
            }
            other => {
                return Err(StepError::bad_request(format!(
                    "`select` gave {other}, not the name of a route or an array of them"
                )));
            }
        };
        if let Some(unknown) = names.iter().find(|name| !self.routes.iter().any(|(route, _)| route == *name)) {
            return Err(StepError::bad_request(format!(
                "`select` named `{unknown}`, which is not a route; the routes are {}",
                self.names().join(", ")
            )));
        }
        Ok(self
            .routes
            .iter()
            .enumerate()
            .filter(|(_, (route, _))| names.contains(&route.as_str()))
            .map(|(i, _)| i)
            .collect())
    }

    /// The weights an ensemble's graph wrote, by route, which the model list shows as given.
    pub fn with_given_weights(mut self, weights: &[(&str, f64)]) -> Self {
        self.given_weights = Some(weights.iter().map(|(route, weight)| (route.to_string(), json!(weight))).collect());
        self
    }

    /// Answers the health probes under `prefix` (`{prefix}/live`, `{prefix}/ready`) rather than
    /// under `/v2/health`, as MLRun's `health_prefix`.
    pub fn with_health_prefix(mut self, prefix: &str) -> Self {
        self.health = paths::health(prefix);
        self
    }

    /// A parallel run answers the request's body with its routes' outputs merged in.
    pub fn with_extend_event(mut self) -> Self {
        self.extend_event = true;
        self
    }

    fn names(&self) -> Vec<&str> {
        self.routes.iter().map(|(name, _)| name.as_str()).collect()
    }

    /// `GET /v2/models`: the routes; an ensemble is a model too, listed after them with the
    /// weights as its graph gave them (`null` when it gave none), as MLRun's VotingEnsemble
    /// lists itself.
    fn model_list(&self) -> Value {
        match &self.mode {
            Mode::Ensemble { .. } => {
                let mut models = self.names();
                models.push(self.name.as_str());
                let weights = self.given_weights.clone().map_or(Value::Null, Value::Object);
                json!({ "models": models, "weights": weights })
            }
            _ => {
                // A version is not a model: `churn:strict` is the model `churn` at `strict`.
                let mut models: Vec<&str> = Vec::new();
                let mut versions = Map::new();
                for (key, _) in &self.routes {
                    let (model, version) = split_key(key);
                    if !models.contains(&model) {
                        models.push(model);
                    }
                    if let Some(version) = version {
                        let listed = versions.entry(model.to_string()).or_insert_with(|| json!([]));
                        if let Value::Array(listed) = listed {
                            listed.push(json!(version));
                        }
                    }
                }
                if versions.is_empty() {
                    json!({ "models": models })
                } else {
                    json!({ "models": models, "versions": versions })
                }
            }
        }
    }

    /// Whether some route serves the model `name` (any version).
    fn has_model(&self, name: &str) -> bool {
        self.routes.iter().any(|(key, _)| key == name || split_key(key).0 == name)
    }

    /// The route of model `name` at `version`: a route key `name:version`, as MLRun writes them
    /// (a key given whole, `m3:v1`, names its route). Without a version, the model's route
    /// without one, else the one declared last. A version the model does not have is 404.
    fn find(&self, name: &str, version: Option<&str>) -> Result<usize, StepError> {
        if version.is_none()
            && let Some(index) = self.routes.iter().position(|(key, _)| key == name)
        {
            return Ok(index);
        }
        let versions: Vec<(usize, Option<&str>)> = self
            .routes
            .iter()
            .enumerate()
            .filter_map(|(index, (key, _))| {
                let (model, version) = split_key(key);
                (model == name).then_some((index, version))
            })
            .collect();
        let Some(&(last, _)) = versions.last() else {
            return Err(self.unknown_model(name));
        };
        match version {
            None => Ok(versions.iter().find(|(_, version)| version.is_none()).map_or(last, |(index, _)| *index)),
            Some(wanted) => {
                versions.iter().find(|(_, version)| *version == Some(wanted)).map(|(index, _)| *index).ok_or_else(
                    || {
                        let known: Vec<&str> = versions.iter().filter_map(|(_, version)| *version).collect();
                        let known = if known.is_empty() {
                            "it has no versions".to_string()
                        } else {
                            format!("its versions: {}", known.join(", "))
                        };
                        StepError::not_found(format!("model `{name}` has no version `{wanted}`; {known}"))
                    },
                )
            }
        }
    }

    fn is_voting(&self) -> bool {
        matches!(self.mode, Mode::Ensemble { .. } | Mode::Parallel)
    }

    fn unknown_model(&self, name: &str) -> StepError {
        let mut available = self.names();
        if self.is_voting() {
            available.insert(0, &self.name);
        }
        StepError::not_found(format!("model `{name}` not found; available models: {}", available.join(", ")))
    }

    /// Server-level answers (health, server metadata, the model list) that need no route.
    fn server_answer(&self, event: &Event) -> Option<Result<Value, StepError>> {
        let path = event.path.trim_end_matches('/');
        let get_only = |value: Value| {
            if !matches!(&*event.method, "GET" | "HEAD") {
                return Err(StepError::method_not_allowed(format!("{} takes GET or HEAD", event.path), "GET, HEAD"));
            }
            Ok(value)
        };
        match path {
            _ if path == self.health[0] => Some(get_only(json!({ "live": true }))),
            _ if path == self.health[1] => Some(get_only(json!({ "ready": true }))),
            paths::SERVER => Some(get_only(crate::oip::server_metadata(&self.name))),
            _ if path == self.prefix => Some(get_only(self.model_list())),
            // MLRun answers any path under the prefix with the router's description, so a
            // misspelt probe passes forever; here it is told what the probes are
            // (docs/semantics.md, section 5).
            _ if self.health[0].rsplit_once('/').is_some_and(|(prefix, _)| {
                path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }) =>
            {
                Some(Err(StepError::not_found(format!(
                    "`{path}` is not a probe: the probes are {} and {}",
                    self.health[0], self.health[1]
                ))))
            }
            _ => None,
        }
    }

    /// Resolves the target (a route index, or `None` for the ensemble itself), the version and
    /// the operation from the path, else from the body's `model` and `operation` keys.
    fn resolve(&self, event: &Event) -> Result<(Option<usize>, Option<String>, Operation), StepError> {
        let path = event.path.trim_end_matches('/');
        // Borrowed from the event: a request allocates nothing to find its route.
        let body_key = |key: &str| event.body.get(key).and_then(Value::as_str);
        // Each segment percent-decoded on its own (`my%20model` is `my model`), so that an
        // encoded `/` stays inside its segment; most paths have no `%` and borrow.
        let decoded: [Option<Cow<'_, str>>; 5] = match path.strip_prefix(&self.prefix).and_then(|r| r.strip_prefix('/'))
        {
            Some(rest) => {
                let mut split = rest.split('/').map(|segment| percent_decode_str(segment).decode_utf8_lossy());
                std::array::from_fn(|_| split.next())
            }
            None => Default::default(),
        };
        let (model, version, op) = if path.is_empty() {
            (body_key("model"), None, body_key("operation"))
        } else if decoded[0].is_some() {
            let segments: [Option<&str>; 5] = std::array::from_fn(|i| decoded[i].as_deref());
            match segments {
                // `/v2/models/infer`: an operation on the default model (the ensemble itself,
                // or the first route), unless a route has that name.
                [Some(op), None, ..] if OPERATIONS.contains(&op) && !self.has_model(op) => {
                    (body_key("model"), None, Some(op))
                }
                [Some(model), None, ..] => (Some(model), None, None),
                [Some(model), Some(op), None, ..] => (Some(model), None, Some(op)),
                [Some(model), Some("versions"), Some(version), None, _] => (Some(model), Some(version), None),
                [Some(model), Some("versions"), Some(version), Some(op), None] => {
                    (Some(model), Some(version), Some(op))
                }
                _ => return Err(StepError::not_found(format!("no route for path {}", event.path))),
            }
        } else {
            return Err(StepError::not_found(format!(
                "no route for path {}; models are served under {}",
                event.path, self.prefix
            )));
        };
        let is_get = matches!(&*event.method, "GET" | "HEAD");
        let operation = match op {
            None if is_get => Operation::Metadata,
            None | Some("infer") | Some("predict") => Operation::Infer,
            Some("explain") => Operation::Explain,
            Some("ready") => Operation::Ready,
            Some(other) => Operation::Custom(other.to_string()),
        };
        match (&operation, &*event.method) {
            (Operation::Infer | Operation::Explain, "POST")
            | (Operation::Ready | Operation::Metadata, "GET" | "HEAD")
            | (Operation::Custom(_), "POST" | "GET") => {}
            (Operation::Custom(_), _) => {
                return Err(StepError::method_not_allowed("an operation takes POST or GET", "POST, GET"));
            }
            (Operation::Infer | Operation::Explain, _) => {
                return Err(StepError::method_not_allowed("inference takes POST", "POST"));
            }
            (Operation::Ready | Operation::Metadata, _) => {
                return Err(StepError::method_not_allowed("ready and metadata take GET or HEAD", "GET, HEAD"));
            }
        }
        let target = match model {
            None if self.is_voting() => None,
            None => Some(0),
            Some(name) if self.is_voting() && name == self.name => None,
            Some(name) => Some(self.find(name, version)?),
        };
        if self.routes.is_empty() {
            return Err(StepError::not_found("this router has no routes"));
        }
        Ok((target, version.map(str::to_string), operation))
    }

    /// The model name and version a target answers as: its route key split at `:`.
    fn route_name(&self, target: Option<usize>) -> (&str, Option<&str>) {
        target.and_then(|i| self.routes.get(i)).map_or((self.name.as_str(), None), |(key, _)| split_key(key))
    }

    fn answer(&self, event: &mut Event, context: &Context) -> Result<Answer<'_>, StepError> {
        if let Some(answer) = self.server_answer(event) {
            return answer.map(Answer::Json);
        }
        let (mut target, version, operation) = self.resolve(event)?;
        if let (Mode::Custom(chooser), None | Some(0)) = (&self.mode, target) {
            let index = chooser.select(event, &self.names())?;
            if index >= self.routes.len() {
                return Err(StepError::new(format!(
                    "the custom router chose route {index}, but there are {}",
                    self.routes.len()
                )));
            }
            target = Some(index);
        }
        let (name, route_version) = self.route_name(target);
        // The version answered is the route's own, or what the path asked of a versionless one.
        let version = route_version.map(str::to_string).or(version);
        match operation {
            Operation::Ready => Ok(Answer::Json(json!({ "name": name, "ready": true }))),
            Operation::Metadata => Ok(Answer::Json(self.metadata(target, name, version.as_deref()))),
            Operation::Explain => {
                let Some(Route::Model(model)) = target.and_then(|i| self.routes.get(i)).map(|(_, route)| route) else {
                    return Err(StepError::not_found(format!("`{name}` does not explain its predictions")));
                };
                let body = model.preprocess(event.body.clone())?;
                let (features, _) = read_inputs(&body)?;
                model.validate(&features)?;
                let outputs = model.explain(&features)?;
                Ok(Answer::Json(json!({ "id": event.id.text(), "model_name": name, "outputs": outputs })))
            }
            Operation::Infer => self.infer(event, context, target, name, version),
            Operation::Custom(operation) => {
                let model = match target.and_then(|i| self.routes.get(i)).map(|(_, route)| route) {
                    Some(Route::Model(model)) => Some(model),
                    _ => None,
                };
                let body = if event.method.as_ref() == "GET" { Value::Null } else { std::mem::take(&mut event.body) };
                match model.and_then(|model| model.operation(&operation, body)) {
                    Some(answer) => answer.map(Answer::Json),
                    None => Err(StepError::not_found(format!(
                        "unknown operation `{operation}` of `{name}`; use infer, predict, explain, ready, or an operation the model defines"
                    ))),
                }
            }
        }
    }

    /// What infer takes and returns, as it does: the output is named `predict`, as in infer's
    /// tensor answers, with the datatype infer returns (a vote's for an ensemble).
    fn metadata(&self, target: Option<usize>, name: &str, version: Option<&str>) -> Value {
        let model_of = |index: usize| {
            self.routes.get(index).and_then(|(_, route)| match route {
                Route::Model(model) => Some(model),
                Route::Step(_) => None,
            })
        };
        let any_width =
            |width: Option<usize>| vec![TensorSpec::new("inputs", "FP32", vec![-1, width.map_or(-1, |w| w as i64)])];
        let (inputs, outputs) = match (target, &self.mode) {
            (Some(index), _) => match model_of(index) {
                Some(model) => (model.inputs(), model.outputs()),
                None => (any_width(None), vec![TensorSpec::new(DEFAULT_OUTPUT, "BYTES", vec![-1])]),
            },
            (None, Mode::Ensemble { regression, .. }) => {
                let width = (0..self.routes.len()).find_map(|index| model_of(index).and_then(|m| m.input_width()));
                let datatype = if *regression { "FP64" } else { "INT64" };
                (any_width(width), vec![TensorSpec::new(DEFAULT_OUTPUT, datatype, vec![-1])])
            }
            (None, _) => (any_width(None), vec![TensorSpec::new(DEFAULT_OUTPUT, "BYTES", vec![-1])]),
        };
        let versions: Vec<&str> = self
            .routes
            .iter()
            .map(|(key, _)| split_key(key))
            .filter(|(model, _)| *model == name)
            .filter_map(|(_, v)| v)
            .collect();
        let mut metadata = json!({
            "name": name,
            "versions": versions,
            "platform": "graphc",
            "inputs": inputs,
            "outputs": outputs,
        });
        // The version this metadata describes, when one was asked for or the route has one.
        if let Some(version) = version {
            metadata["version"] = json!(version);
        }
        metadata
    }

    fn infer<'r>(
        &'r self,
        event: &mut Event,
        context: &Context,
        target: Option<usize>,
        name: &'r str,
        version: Option<String>,
    ) -> Result<Answer<'r>, StepError> {
        match (target, &self.mode) {
            (Some(index), _) => {
                let (route_name, route) = self.routes.get(index).ok_or_else(|| self.unknown_model(name))?;
                let started = crate::metrics::enabled().then(std::time::Instant::now);
                let answer = match route {
                    Route::Step(step) => step_output(step.as_ref(), event, context).map(Answer::Json),
                    Route::Model(model) => {
                        // The body moves into the model's hooks; the answer replaces it.
                        let deadline = event.deadline;
                        let (outputs, form, width) =
                            predict(model.as_ref(), std::mem::take(&mut event.body), deadline)?;
                        let outputs_declared = self.answers_with.get(index).map_or(&[][..], Vec::as_slice);
                        let answerer = Answerer { name, version, outputs: outputs_declared };
                        Ok(Answer::Infer(InferAnswer::new(event, answerer, outputs, form, width)))
                    }
                };
                if let Some(started) = started
                    && let Some(meter) = self.meters.get(index)
                {
                    meter.route(route_name, started.elapsed(), answer.is_err());
                }
                answer
            }
            (None, Mode::Ensemble { regression, weights }) => {
                let every: Vec<usize> = (0..self.routes.len()).collect();
                let results = self.run_all(event, context, &every)?;
                let mut form = Form::Loose { request_id: None };
                let mut predictions = Vec::with_capacity(results.len());
                for result in results {
                    let RouteResult::Predictions(outputs, route_form) = result else {
                        return Err(StepError::new("an ensemble's routes must be models"));
                    };
                    form = route_form;
                    predictions.push(outputs);
                }
                let outputs = vote(&predictions, weights, *regression)?;
                let answerer = Answerer { name, version, outputs: &VOTES[usize::from(*regression)] };
                let rows = outputs.len();
                Ok(Answer::Infer(InferAnswer::new(event, answerer, outputs, form, rows)))
            }
            (None, _) => {
                let mut merged = match &event.body {
                    Value::Object(fields) if self.extend_event => fields.clone(),
                    _ => Map::new(),
                };
                let selected = self.selected(event, context)?;
                let names = selected.iter().filter_map(|&index| self.routes.get(index).map(|(name, _)| name));
                for (route, result) in names.zip(self.run_all(event, context, &selected)?) {
                    match result {
                        RouteResult::Output(Value::Object(fields)) => merged.extend(fields),
                        RouteResult::Output(other) => {
                            merged.insert(route.clone(), other);
                        }
                        RouteResult::Predictions(outputs, _) => {
                            merged.insert(route.clone(), Value::Array(outputs));
                        }
                    }
                }
                Ok(Answer::Json(Value::Object(merged)))
            }
        }
    }

    /// Runs the routes at `indices` on the event, concurrently on scoped threads; a route's
    /// failure names the route.
    fn run_all(&self, event: &Event, context: &Context, indices: &[usize]) -> Result<Vec<RouteResult>, StepError> {
        let run = |(name, route): &(String, Route)| -> Result<RouteResult, StepError> {
            let result = match route {
                Route::Model(model) => predict(model.as_ref(), event.body.clone(), event.deadline)
                    .map(|(outputs, form, _)| RouteResult::Predictions(outputs, form)),
                Route::Step(step) => step_output(step.as_ref(), event, context).map(RouteResult::Output),
            };
            result.map_err(|error| StepError { message: format!("route `{name}`: {}", error.message), ..error })
        };
        let routes: Vec<&(String, Route)> = indices.iter().filter_map(|&index| self.routes.get(index)).collect();
        let Some((first, rest)) = routes.split_first() else { return Ok(Vec::new()) };
        std::thread::scope(|scope| {
            let handles: Vec<_> =
                rest.iter().map(|route| scope.spawn(|| crate::logging::guarded(|| run(route)))).collect();
            let mut results = vec![run(first)?];
            for handle in handles {
                let joined = handle.join().and_then(|guarded| guarded);
                results.push(joined.map_err(|payload| StepError::panicked(&*payload))??);
            }
            Ok(results)
        })
    }
}

enum RouteResult {
    Predictions(Vec<Value>, Form),
    Output(Value),
}

fn step_output(step: &dyn Step, event: &Event, context: &Context) -> Result<Value, StepError> {
    let mut event = event.clone();
    match step.process(&mut event, context)? {
        Flow::Next | Flow::Outlet(_) => Ok(event.body),
        Flow::Many(events) => Ok(Value::Array(events.into_iter().map(|e| e.body).collect())),
        Flow::Drop => Ok(Value::Null),
        Flow::Reply(response) => Ok(response.json_body()),
    }
}

/// A model's hooks in order: preprocess, read the request (its inputs, requested outputs and
/// `parameters`), validate, predict, postprocess.
fn predict(
    model: &dyn Model,
    body: Value,
    deadline: Option<std::time::Instant>,
) -> Result<(Vec<Value>, Form, usize), StepError> {
    let body = model.preprocess(body)?;
    let InferRequest { features, form, parameters } = InferRequest::read(&body, || model.outputs())?;
    model.validate(&features)?;
    let rows = features.rows;
    let outputs = model.postprocess(model.predict_within(features, parameters, deadline)?)?;
    if outputs.len() != rows {
        return Err(StepError::new(format!("the model gave {} outputs for {rows} rows", outputs.len())));
    }
    Ok((outputs, form, rows))
}

/// A route key split into its model name and version: `m3:v1` is version `v1` of `m3`.
fn split_key(key: &str) -> (&str, Option<&str>) {
    match key.split_once(':') {
        Some((model, version)) => (model, Some(version)),
        None => (key, None),
    }
}

/// What a router answers: a model's V2 answer kept in its parts, so that a router whose answer
/// only goes to the caller writes it out without building a JSON tree to serialise and free;
/// anything else already as JSON.
enum Answer<'r> {
    Infer(InferAnswer<'r>),
    Json(Value),
}

impl Answer<'_> {
    /// The answer as the event's body, for what follows the router: a model's answer through
    /// the same `Serialize` that writes it as bytes, so both say the same.
    fn into_body(self) -> Value {
        match self {
            // A struct of strings, numbers and JSON values always converts.
            Answer::Infer(answer) => serde_json::to_value(&answer).unwrap_or(Value::Null),
            Answer::Json(body) => body,
        }
    }
}

/// Combines each route's predictions row by row: a weighted majority of classes (ties to the
/// smallest class) or a weighted mean.
pub fn vote(predictions: &[Vec<Value>], weights: &[f64], regression: bool) -> Result<Vec<Value>, StepError> {
    let rows = predictions.first().map_or(0, Vec::len);
    if predictions.iter().any(|p| p.len() != rows) {
        return Err(StepError::new("the ensemble's routes gave different numbers of outputs"));
    }
    (0..rows)
        .map(|row| {
            // A model of several outputs votes with the first by name (a classifier's `label`
            // before its `probabilities`).
            let first = |value: &Value| match value {
                Value::Object(fields) => fields.values().next().and_then(Value::as_f64),
                other => other.as_f64(),
            };
            let votes = predictions.iter().zip(weights).map(|(p, w)| (p.get(row).and_then(first), *w));
            if regression {
                let (sum, total) = votes.fold((0.0, 0.0), |(sum, total), (value, weight)| {
                    (sum + value.unwrap_or(0.0) * weight, total + weight)
                });
                Ok(json!(if total > 0.0 { sum / total } else { 0.0 }))
            } else {
                let mut tally: Vec<(i64, f64)> = Vec::new();
                for (value, weight) in votes {
                    let class = value
                        .ok_or_else(|| StepError::new("a classifier in the ensemble gave a non-numeric class"))?
                        as i64;
                    match tally.iter_mut().find(|(c, _)| *c == class) {
                        Some((_, w)) => *w += weight,
                        None => tally.push((class, weight)),
                    }
                }
                tally.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                Ok(json!(tally.first().map_or(0, |(class, _)| *class)))
            }
        })
        .collect()
}

impl Step for Router {
    fn process(&self, event: &mut Event, context: &Context) -> Result<Flow, StepError> {
        event.body = self.answer(event, context)?.into_body();
        Ok(Flow::Next)
    }

    /// A model's answer goes to the caller as bytes, written from its parts.
    fn process_last(&self, event: &mut Event, context: &Context) -> Result<Flow, StepError> {
        match self.answer(event, context)? {
            Answer::Infer(answer) => Ok(Flow::Reply(Box::new(Response::json(200, &answer)))),
            Answer::Json(body) => {
                event.body = body;
                Ok(Flow::Next)
            }
        }
    }

    /// A model route takes the body into its hooks.
    fn entry(&self) -> crate::step::Entry {
        crate::step::Entry::Body
    }

    /// A model's hooks get the body only; a custom router and a step route get the event.
    fn reads_time(&self) -> bool {
        matches!(self.mode, Mode::Custom(_))
            || self.routes.iter().any(|(_, route)| matches!(route, Route::Step(step) if step.reads_time()))
    }
}

/// A runner's selector written in Rust (`select = fn path`): a function of the body giving the
/// name of the route to run, or their names (`&str`, `String`, `Vec<&str>`, a JSON value), run
/// under the panic guard so that a selector that panics fails the event, not the process.
///
/// ```
/// use graphc_runtime::router::selector;
/// let choose = selector(|body: &serde_json::Value| if body["fast"] == true { vec!["small"] } else { vec!["small", "large"] });
/// let event = graphc_runtime::Event::new(serde_json::json!({ "fast": true }));
/// assert_eq!(choose(&event, &graphc_runtime::Context::new("g")).unwrap(), serde_json::json!(["small"]));
/// ```
pub fn selector<F, R>(function: F) -> impl Fn(&Event, &Context) -> Result<Value, StepError> + Send + Sync + 'static
where
    F: Fn(&Value) -> R + Send + Sync + 'static,
    R: serde::Serialize,
{
    move |event: &Event, _context: &Context| {
        let chosen =
            crate::logging::guarded(|| function(&event.body)).map_err(|payload| StepError::panicked(&*payload))?;
        serde_json::to_value(chosen)
            .map_err(|error| StepError::new(format!("the selector's choice is not JSON: {error}")))
    }
}
