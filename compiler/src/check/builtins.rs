//! The built-in steps, routes, routers and queues: their names, arguments and checks.

use super::Checker;
use crate::diagnostic::{Code, Diagnostic, did_you_mean};
use crate::ir::{self, ModelKind, NodeKind};
use crate::source::Span;
use crate::syntax::ast::{self, Arg, Call, ExprKind, Opt, OptValue, StepImpl};

use super::vocabulary::{
    BATCH_ARGS, EXPRESSION_BUILTINS, MEMORY_QUEUE_ARGS, MODEL_ARGS, QUEUE_ENGINES, REMOTE_ARGS, ROUTER_KINDS,
    STEP_BUILTINS, STREAM_QUEUE_ARGS, USER_MODEL_ARGS,
};

impl<'a> Checker<'a> {
    /// The node kind of a step or route implementation. Built-ins with expressions get a
    /// placeholder here; the type pass fills in the checked expression.
    pub(super) fn step_kind(&mut self, implementation: &'a StepImpl, in_route: bool) -> NodeKind {
        match implementation {
            StepImpl::Function(path) => NodeKind::Function(path.to_string()),
            StepImpl::Construct(path, args, _) => NodeKind::Construct(path.to_string(), self.construct_args(args)),
            StepImpl::UserModel(model) => {
                self.report(
                    Diagnostic::error(
                        Code::UnknownBuiltin,
                        "`model(...)` is only a route of a router",
                        model.span,
                        "a model is served by a route",
                    )
                    .with_help("declare it in a router: `router models = model { route m = model(new ...); }`"),
                );
                NodeKind::Function(String::new())
            }
            StepImpl::Remote(args, span) => self
                .remote(args, *span)
                .map_or(NodeKind::Function(String::new()), |remote| NodeKind::Remote(Box::new(remote))),
            StepImpl::Choice(..) => NodeKind::Choice(Vec::new()),
            StepImpl::Call(call) => self.builtin_step(call, in_route),
            // The grammar lets only a route name a shared model; `route_kind` takes it there.
            StepImpl::SharedModel(name) => {
                self.report(
                    Diagnostic::error(
                        Code::UnknownBuiltin,
                        format!("shared model `{}` is served by a route", name.name),
                        name.span,
                        "a model is served by a route",
                    )
                    .with_help(format!("declare a route for it: `route r = {};`", name.name)),
                );
                NodeKind::Function(String::new())
            }
        }
    }

    /// `new Type(name = value, ...)`'s arguments: named constants.
    fn construct_args(&mut self, args: &[ast::Arg]) -> Vec<(String, ir::Expr)> {
        args.iter()
            .enumerate()
            .filter_map(|(index, arg)| match &arg.name {
                Some(name)
                    if args
                        .iter()
                        .take(index)
                        .any(|earlier| earlier.name.as_ref().is_some_and(|e| e.name == name.name)) =>
                {
                    self.report(argument_given_twice(name));
                    None
                }
                Some(name) => Some((name.name.to_string(), self.constant(&arg.value, None))),
                None => {
                    self.report(
                        Diagnostic::error(
                            Code::InvalidValue,
                            "arguments of `new` are named",
                            arg.value.span,
                            "no name",
                        )
                        .with_help("write `new Type(name = value)`"),
                    );
                    None
                }
            })
            .collect()
    }

    fn builtin_step(&mut self, call: &'a Call, in_route: bool) -> NodeKind {
        let name = call.name.name.as_str();
        if EXPRESSION_BUILTINS.contains(&name) {
            match call.args.as_slice() {
                [] => self.report(
                    Diagnostic::error(
                        Code::MissingArgument,
                        format!("`{name}` needs an expression"),
                        call.span,
                        "here",
                    )
                    .with_help(format!("write `{name}(<expression over body>)`")),
                ),
                [_, extra, ..] => self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!("too many arguments: `{name}` takes one expression"),
                        extra.value.span,
                        "an extra argument",
                    )
                    .with_help(format!("combine them into one expression, such as `{name}({{ a: ..., b: ... }})`")),
                ),
                [arg] if arg.name.is_some() => self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!("`{name}` takes an expression, not a named argument"),
                        arg.name.as_ref().map_or(arg.value.span, |n| n.span),
                        "a name",
                    )
                    .with_help(format!("write `{name}(<expression over body>)`")),
                ),
                [_] => {}
            }
            return match name {
                "extend" => NodeKind::Extend(ir::Expr::Null),
                "map" => NodeKind::Map(ir::Expr::Null),
                "filter" => NodeKind::Filter(ir::Expr::Null),
                _ => NodeKind::FlatMap(ir::Expr::Null),
            };
        }
        if name == "batch" {
            let args = self.named_args(call, BATCH_ARGS);
            let size = args.iter().find(|(k, _)| *k == "size").and_then(|(_, e)| self.positive_int(e, "size"));
            let timeout_ms =
                args.iter().find(|(k, _)| *k == "timeout_ms").and_then(|(_, e)| self.positive_int(e, "timeout_ms"));
            if size.is_none() && !args.iter().any(|(k, _)| *k == "size") {
                self.report(
                    Diagnostic::error(Code::MissingArgument, "`batch` needs a size", call.span, "here")
                        .with_help("write `batch(size = 10, timeout_ms = 100)`"),
                );
            }
            return NodeKind::Batch { size: size.unwrap_or(1) as u32, timeout_ms: timeout_ms.map(|t| t as u64) };
        }
        if name == "collect" {
            if let Some(extra) = call.args.first() {
                self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        "`collect` takes no arguments",
                        extra.value.span,
                        "an argument",
                    )
                    .with_help("write `collect()` after a streaming step: it gathers that step's chunks"),
                );
            }
            return NodeKind::Collect;
        }
        let mut known: Vec<&str> = STEP_BUILTINS.to_vec();
        if in_route {
            known.push("model");
        }
        let help = did_you_mean(name, known.iter().copied().chain(["choice"])).unwrap_or_else(|| {
            "built-in steps are extend, map, filter, flat_map, choice, batch and collect; call Rust code with `fn path` or `new Type(...)`".to_string()
        });
        let message = if name == "model" {
            "`model(...)` is only a route of a router".to_string()
        } else {
            format!("unknown built-in step `{name}`")
        };
        self.report(
            Diagnostic::error(Code::UnknownBuiltin, message, call.name.span, "not a built-in step").with_help(help),
        );
        NodeKind::Function(String::new())
    }

    pub(super) fn route_kind(&mut self, route: &'a ast::RouteDecl) -> ir::RouteKind {
        match &route.implementation {
            StepImpl::Call(call) if call.name.name == "model" => {
                ir::RouteKind::Model(self.model(&route.name.name, "model route", call))
            }
            StepImpl::UserModel(model) => ir::RouteKind::Model(self.user_model(model)),
            StepImpl::SharedModel(name) => ir::RouteKind::Model(self.shared_model(name)),
            other => {
                let kind = self.step_kind(other, true);
                if !matches!(kind, NodeKind::Function(_) | NodeKind::Construct(..)) {
                    self.report(
                        Diagnostic::error(
                            Code::RouteKind,
                            format!("route `{}` runs a {} step", route.name.name, kind.describe()),
                            other.span(),
                            "a route runs a model, `fn` or `new` step",
                        )
                        .with_help("route to a `model(...)`, a `fn` or a `new` step; call a remote model with a `$remote` step in a flow"),
                    );
                }
                ir::RouteKind::Step(Box::new(kind))
            }
        }
    }

    /// `model(kind = K, model_path = "...")`: both required, nothing else.
    /// The shared model a route names, as the route serves it.
    fn shared_model(&mut self, name: &ast::Ident) -> ir::Model {
        if let Some(shared) = self.graph.shared_models.iter().find(|shared| shared.name == name.name) {
            let (model, declared) = (shared.model.clone(), shared.span);
            self.refer(name.span, declared);
            return ir::Model { shared: Some(name.name.to_string()), ..model };
        }
        let known: Vec<&str> = self.graph.shared_models.iter().map(|shared| shared.name.as_str()).collect();
        let help = did_you_mean(&name.name, known.iter().copied()).unwrap_or_else(|| {
            format!("declare it in the graph: `model {} = model(kind = ..., model_path = \"...\");`", name.name)
        });
        self.report(
            Diagnostic::error(
                Code::UnknownModel,
                format!("no shared model is named `{}`", name.name),
                name.span,
                "not declared with `model`",
            )
            .with_help(help),
        );
        ir::Model {
            source: ir::ModelSource::Smartcore(ModelKind::LogisticRegression),
            model_path: None,
            batching: None,
            instances: None,
            shared: None,
        }
    }

    /// `model NAME = model(...);`: what it loads, once, for every route that names it.
    pub(super) fn declare_shared_model(&mut self, declared: &'a ast::ModelDecl) {
        let model = match &declared.implementation {
            StepImpl::Call(call) if call.name.name == "model" => self.model(&declared.name.name, "model", call),
            StepImpl::UserModel(model) => self.user_model(model),
            other => {
                self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!("model `{}` is not a model", declared.name.name),
                        other.span(),
                        "expected `model(...)`",
                    )
                    .with_help("write `model NAME = model(kind = ..., model_path = \"...\");` or `model(new my::Model(...), ...)`"),
                );
                return;
            }
        };
        self.graph.shared_models.push(ir::SharedModel {
            name: declared.name.name.to_string(),
            span: declared.name.span,
            impl_span: declared.implementation.span(),
            model,
        });
    }

    fn model(&mut self, owner: &str, what: &str, call: &'a Call) -> ir::Model {
        let before = self.diagnostics.len();
        let args = self.named_args(call, MODEL_ARGS);
        // A misspelt argument is the mistake; that the right one is missing follows from it.
        let arguments_clean = self.diagnostics.len() == before;
        let kind_names = || model_kind_names().collect::<Vec<_>>().join(", ");
        let mut source = None;
        let mut model_path = None;
        let batching = self.batching(&args, call.span);
        let instances = self.instances(&args);
        for (name, value) in args {
            match name {
                "batch_size" | "batch_delay_ms" | "instances" => {}
                "kind" => match &value.kind {
                    ExprKind::Name(ident) if ident.name == ONNX_KIND => source = Some(ir::ModelSource::Onnx),
                    ExprKind::Name(ident) => match ModelKind::ALL.iter().find(|(_, n)| *n == ident.name) {
                        Some((found, _)) => source = Some(ir::ModelSource::Smartcore(*found)),
                        None => {
                            let help = did_you_mean(&ident.name, model_kind_names())
                                .unwrap_or_else(|| format!("one of: {}", kind_names()));
                            self.report(
                                Diagnostic::error(
                                    Code::InvalidValue,
                                    format!("unknown model kind `{}`", ident.name),
                                    ident.span,
                                    "not a kind of model graphc serves",
                                )
                                .with_help(help),
                            );
                            source = Some(ir::ModelSource::Smartcore(ModelKind::LogisticRegression));
                        }
                    },
                    _ => {
                        self.report(
                            Diagnostic::error(
                                Code::InvalidValue,
                                "`kind` takes a model kind name",
                                value.span,
                                "expected a name such as `logistic_regression` or `onnx`",
                            )
                            .with_help(format!("one of: {}", kind_names())),
                        );
                        source = Some(ir::ModelSource::Smartcore(ModelKind::LogisticRegression));
                    }
                },
                _ => model_path = Some(self.model_path(value)),
            }
        }
        if source.is_none() && arguments_clean {
            self.report(
                Diagnostic::error(
                    Code::MissingArgument,
                    format!("{what} `{owner}` has no kind"),
                    call.span,
                    "which estimator is this?",
                )
                .with_help(format!("add `kind = ...`, one of: {}", kind_names())),
            );
        }
        if model_path.is_none() && arguments_clean {
            self.report(
                Diagnostic::error(
                    Code::ModelWithoutPath,
                    format!("{what} `{owner}` has no model_path"),
                    call.span,
                    "which model file should this route load?",
                )
                .with_help("add `model_path = \"models/<file>.json\"`, relative to the graph file"),
            );
        }
        ir::Model {
            source: source.unwrap_or(ir::ModelSource::Smartcore(ModelKind::LogisticRegression)),
            model_path: Some(model_path.unwrap_or(ir::ModelPath { path: String::new(), span: call.span })),
            batching,
            instances,
            shared: None,
        }
    }

    /// `model_path = "..."`: a non-empty string.
    fn model_path(&mut self, value: &ast::Expr) -> ir::ModelPath {
        match &value.kind {
            ExprKind::Str(path) if !path.is_empty() => ir::ModelPath { path: path.clone(), span: value.span },
            _ => {
                self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        "`model_path` takes a non-empty string",
                        value.span,
                        "expected a path",
                    )
                    .with_help("write `model_path = \"models/<file>.json\"`, relative to the graph file"),
                );
                ir::ModelPath { path: String::new(), span: value.span }
            }
        }
    }

    /// `model(new path::Type(args), model_path = "...")`: the type's arguments are named
    /// constants, as `new`'s; the model's are `model_path` (optional: a model may load nothing).
    fn user_model(&mut self, model: &'a ast::UserModel) -> ir::Model {
        let args = self.construct_args(&model.class_args);
        let call = Call {
            name: ast::Ident { name: "model".into(), span: model.span },
            args: model.args.clone(),
            span: model.span,
        };
        let mut model_path = None;
        let model_args = self.named_args(&call, USER_MODEL_ARGS);
        let batching = self.batching(&model_args, model.span);
        let instances = self.instances(&model_args);
        for (name, value) in model_args {
            if matches!(name, "batch_size" | "batch_delay_ms" | "instances") {
                continue;
            }
            if name == "kind" {
                self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        "a model type of yours takes no `kind`",
                        value.span,
                        "`kind` names a smartcore estimator",
                    )
                    .with_help("pass what your type needs as its own arguments: `model(new my::Model(threshold = 0.5), model_path = \"...\")`"),
                );
                continue;
            }
            match &value.kind {
                ExprKind::Str(path) if !path.is_empty() => {
                    model_path = Some(ir::ModelPath { path: path.clone(), span: value.span })
                }
                _ => self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        "`model_path` takes a non-empty string",
                        value.span,
                        "expected a path",
                    )
                    .with_help("write `model_path = \"models/<file>\"`, relative to the graph file; or leave it out"),
                ),
            }
        }
        ir::Model {
            source: ir::ModelSource::User { path: model.path.to_string(), args },
            model_path,
            batching,
            instances,
            shared: None,
        }
    }

    /// `instances = N` (1 or more): calls of the model at once, as Triton's instance groups.
    fn instances(&mut self, args: &[(&str, &ast::Expr)]) -> Option<u32> {
        let (_, value) = args.iter().find(|(key, _)| *key == "instances")?;
        match value.kind {
            ExprKind::Int(n) if n >= 1 => u32::try_from(n).ok().or_else(|| {
                self.report(
                    Diagnostic::error(Code::InvalidValue, "`instances` is too large", value.span, "here")
                        .with_help("a model's instances are threads: a few per core at most"),
                );
                None
            }),
            _ => {
                self.report(
                    Diagnostic::error(Code::InvalidValue, "`instances` must be 1 or more", value.span, "here")
                        .with_help("write `instances = 2`: how many calls of the model may run at once"),
                );
                None
            }
        }
    }

    /// `batch_size = N` (2 or more) turns batching on; `batch_delay_ms = D` (0 or more) bounds
    /// the wait to fill a batch, and means nothing without a size.
    fn batching(&mut self, args: &[(&str, &ast::Expr)], call: Span) -> Option<ir::Batching> {
        let arg = |key: &str| args.iter().find(|(k, _)| *k == key).map(|(_, e)| *e);
        let delay = arg("batch_delay_ms").and_then(|e| self.non_negative_int(e, "batch_delay_ms"));
        let Some(size) = arg("batch_size") else {
            if let Some(delay) = arg("batch_delay_ms") {
                self.report(
                    Diagnostic::error(
                        Code::MissingArgument,
                        "`batch_delay_ms` without `batch_size`",
                        delay.span,
                        "a delay for batches of no size",
                    )
                    .with_help("add `batch_size = 32` (the rows of one call), or remove the delay")
                    .with_label(call, "this model"),
                );
            }
            return None;
        };
        let rows = match size.kind {
            ExprKind::Int(n) if n >= 2 => u32::try_from(n).ok(),
            _ => None,
        };
        let Some(max_rows) = rows else {
            self.report(
                Diagnostic::error(Code::InvalidValue, "`batch_size` must be 2 or more", size.span, "here")
                    .with_help("write `batch_size = 32`: the most rows one call of the model predicts"),
            );
            return None;
        };
        let max_delay_ms = delay.map_or(ir::Batching::DEFAULT_DELAY_MS, |d| d as u64);
        Some(ir::Batching { max_rows, max_delay_ms })
    }

    pub(super) fn router_kind(
        &mut self,
        router: &ast::RouterDecl,
        options: &[&'a Opt],
        routes: &[ir::Route],
    ) -> ir::RouterKind {
        let option = |key: &str| options.iter().find(|o| o.key.name == key).copied();
        let kind_name = match &router.kind {
            ast::RouterKindAst::Custom(path) => {
                self.only_for_ensemble(&option("vote"), &option("weights"));
                return ir::RouterKind::Custom(path.to_string());
            }
            ast::RouterKindAst::Named(ident) => ident,
        };
        match kind_name.name.as_str() {
            "model" | "parallel" => {
                self.only_for_ensemble(&option("vote"), &option("weights"));
                if kind_name.name == "model" { ir::RouterKind::Model } else { ir::RouterKind::Parallel }
            }
            "ensemble" => {
                let vote = match option("vote") {
                    Some(opt) => match &opt.value {
                        Some(OptValue::Expr(ast::Expr { kind: ExprKind::Name(n), .. })) if n.name == "regression" => {
                            ir::Vote::Regression
                        }
                        Some(OptValue::Expr(ast::Expr { kind: ExprKind::Name(n), .. }))
                            if n.name == "classification" =>
                        {
                            ir::Vote::Classification
                        }
                        _ => {
                            self.report(
                                Diagnostic::error(
                                    Code::InvalidValue,
                                    "`vote` is `classification` or `regression`",
                                    opt.span,
                                    "here",
                                )
                                .with_help("write `vote = classification;` (a weighted majority) or `vote = regression;` (a weighted mean)"),
                            );
                            ir::Vote::Classification
                        }
                    },
                    None => ir::Vote::Classification,
                };
                let (weights, given_weights) = self.weights(option("weights"), routes);
                ir::RouterKind::Ensemble { vote, weights, given_weights }
            }
            other => {
                let help = did_you_mean(other, ROUTER_KINDS.iter().copied())
                    .unwrap_or_else(|| "one of: model, ensemble, parallel, custom <path>".to_string());
                self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!("unknown router kind `{other}`"),
                        kind_name.span,
                        "not a router kind",
                    )
                    .with_help(help),
                );
                ir::RouterKind::Model
            }
        }
    }

    fn only_for_ensemble(&mut self, vote: &Option<&Opt>, weights: &Option<&Opt>) {
        for opt in [vote, weights].into_iter().flatten() {
            self.report(
                Diagnostic::error(
                    Code::InvalidValue,
                    format!("`{}` applies only to an ensemble router", opt.key.name),
                    opt.span,
                    "this router does not vote",
                )
                .with_help("declare the router with `= ensemble`"),
            );
        }
    }

    /// Ensemble weights: one per route (1.0 where not given), non-negative, not all zero,
    /// normalised to sum to one; and the weights as written, if any were.
    fn weights(&mut self, option: Option<&'a Opt>, routes: &[ir::Route]) -> (Vec<f64>, Option<Vec<ir::RouteWeight>>) {
        let mut weights = vec![1.0; routes.len()];
        let Some(opt) = option else { return (normalised(weights), None) };
        let Some(OptValue::Expr(ast::Expr { kind: ExprKind::Object(entries), .. })) = &opt.value else {
            self.report(
                Diagnostic::error(
                    Code::InvalidWeights,
                    "`weights` takes an object of route names to numbers",
                    opt.span,
                    "here",
                )
                .with_help("write `weights = { m1: 2.0, m2: 1.0 };`"),
            );
            return (normalised(weights), None);
        };
        let mut valid = true;
        let mut given = Vec::new();
        for (key, value) in entries {
            let number = match value.kind {
                ExprKind::Int(n) => Some(n as f64),
                ExprKind::Float(f) => Some(f),
                ExprKind::Unary(ast::UnaryOp::Neg, ref inner) => match inner.kind {
                    ExprKind::Int(n) => Some(-(n as f64)),
                    ExprKind::Float(f) => Some(-f),
                    _ => None,
                },
                _ => None,
            };
            let Some(number) = number else {
                self.report(
                    Diagnostic::error(Code::InvalidWeights, "a weight must be a number", value.span, "not a number")
                        .with_help("write `weights = { route_a: 2, route_b: 1 };`"),
                );
                valid = false;
                continue;
            };
            if number < 0.0 {
                self.report(
                    Diagnostic::error(
                        Code::InvalidWeights,
                        format!("the weight of route `{}` is negative", key.value),
                        value.span,
                        "negative",
                    )
                    .with_help("weights must be zero or more"),
                );
                valid = false;
            }
            match routes.iter().position(|r| r.key() == key.value) {
                Some(index) => {
                    // A key written as the bare name (not a string, not `name:version`) is a
                    // reference to the route, renamed with it.
                    if let Some(route) = routes.get(index)
                        && route.version.is_none()
                        && key.span.range().len() == key.value.len()
                    {
                        self.refer(key.span, route.span);
                    }
                    if let Some(slot) = weights.get_mut(index) {
                        *slot = number;
                    }
                    given.push(ir::RouteWeight { route: key.value.clone(), weight: number });
                }
                None => {
                    let keys: Vec<String> = routes.iter().map(ir::Route::key).collect();
                    let help = did_you_mean(&key.value, keys.iter().map(String::as_str))
                        .unwrap_or_else(|| "weights name the router's routes".to_string());
                    self.report(
                        Diagnostic::error(
                            Code::InvalidWeights,
                            format!("weight for unknown route `{}`", key.value),
                            key.span,
                            "no route has this name",
                        )
                        .with_help(help),
                    );
                    valid = false;
                }
            }
        }
        if valid && !weights.is_empty() && weights.iter().all(|w| *w == 0.0) {
            self.report(
                Diagnostic::error(
                    Code::InvalidWeights,
                    "all ensemble weights are zero",
                    opt.span,
                    "no route would count",
                )
                .with_help("give at least one route a positive weight"),
            );
        }
        (normalised(weights), Some(given))
    }

    pub(super) fn queue_kind(&mut self, engine: &'a Call) -> Option<ir::Queue> {
        match engine.name.name.as_str() {
            "memory" => {
                let args = self.named_args(engine, MEMORY_QUEUE_ARGS);
                let capacity = match args.iter().find(|(k, _)| *k == "capacity") {
                    Some((_, value)) => self.positive_int(value, "capacity")?,
                    None => 64,
                };
                Some(ir::Queue::Memory { capacity: capacity.min(u32::MAX as i64) as u32 })
            }
            "stream" => {
                let args = self.named_args(engine, STREAM_QUEUE_ARGS);
                let Some((_, url_expr)) = args.iter().find(|(k, _)| *k == "url") else {
                    self.report(
                        Diagnostic::error(Code::InvalidQueue, "a stream queue needs a url", engine.span, "no `url`")
                            .with_help("write `stream(url = \"redis://127.0.0.1:6379/events\")`"),
                    );
                    return None;
                };
                let stream_arg = args.iter().find(|(k, _)| *k == "stream").map(|(_, value)| *value);
                let (server, stream) = self.redis_stream(url_expr, stream_arg, Code::InvalidQueue, "stream queue")?;
                let shards = match args.iter().find(|(k, _)| *k == "shards") {
                    Some((_, value)) => self.positive_int(value, "shards").unwrap_or(1),
                    None => 1,
                };
                Some(ir::Queue::Stream { url: server, stream, shards: shards.min(u32::MAX as i64) as u32, key: None })
            }
            other => {
                let help = did_you_mean(other, QUEUE_ENGINES.iter().copied()).unwrap_or_else(|| {
                    "a queue is `memory(capacity = N)` or `stream(url = \"redis://...\")`".to_string()
                });
                self.report(
                    Diagnostic::error(
                        Code::UnknownBuiltin,
                        format!("unknown queue engine `{other}`"),
                        engine.name.span,
                        "not a queue engine",
                    )
                    .with_help(help),
                );
                None
            }
        }
    }

    fn remote(&mut self, args: &'a [Arg], span: Span) -> Option<ir::Remote> {
        let call = Call { name: ast::Ident { name: "$remote".into(), span }, args: args.to_vec(), span };
        let named = self.named_args(&call, REMOTE_ARGS);
        let get = |key: &str| named.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let target = match (get("url"), get("function")) {
            (Some(url), None) => match &url.kind {
                ExprKind::Str(text) => match super::values::check_url(text, &["http", "https"]) {
                    Ok(()) => ir::RemoteTarget::Url(text.clone()),
                    Err(why) => {
                        self.report(
                            Diagnostic::error(
                                Code::InvalidValue,
                                format!("`$remote` cannot call this URL: {why}"),
                                url.span,
                                "here",
                            )
                            .with_help("write `url = \"http://host:port/path\"` or `url = \"https://host/path\"`"),
                        );
                        return None;
                    }
                },
                _ => {
                    self.report(
                        Diagnostic::error(
                            Code::InvalidValue,
                            "`url` takes an http:// or https:// URL",
                            url.span,
                            "here",
                        )
                        .with_help("write `url = \"http://host:port/path\"`"),
                    );
                    return None;
                }
            },
            (None, Some(function)) => match &function.kind {
                ExprKind::Name(name) => ir::RemoteTarget::Function(name.name.to_string()),
                ExprKind::Str(name) => ir::RemoteTarget::Function(name.clone()),
                _ => {
                    self.report(
                        Diagnostic::error(
                            Code::InvalidValue,
                            "`function` takes a function name",
                            function.span,
                            "here",
                        )
                        .with_help("write `function = scorer`: the endpoint comes from the deployment's function map"),
                    );
                    return None;
                }
            },
            (Some(url), Some(function)) => {
                self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        "`$remote` takes `url` or `function`, not both",
                        function.span,
                        "a second target",
                    )
                    .with_label(url.span, "the first target")
                    .with_help("call a URL with `url = \"http://...\"`, or a function of the deployment with `function = name`: keep one"),
                );
                return None;
            }
            (None, None) => {
                self.report(
                    Diagnostic::error(
                        Code::MissingArgument,
                        "`$remote` needs either `url` or `function`",
                        span,
                        "here",
                    )
                    .with_help("write `$remote(url = \"http://host/path\")`"),
                );
                return None;
            }
        };
        let method = match get("method") {
            Some(ast::Expr { kind: ExprKind::Str(m), .. }) => m.to_ascii_uppercase(),
            Some(ast::Expr { kind: ExprKind::Name(m), .. }) => m.name.to_ascii_uppercase().into_string(),
            Some(other) => {
                self.report(
                    Diagnostic::error(Code::InvalidValue, "`method` takes an HTTP method", other.span, "here")
                        .with_help("one of GET, POST, PUT, PATCH, DELETE"),
                );
                "POST".to_string()
            }
            None => "POST".to_string(),
        };
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
            let method_span = get("method").map_or(span, |e| e.span);
            self.report(
                Diagnostic::error(
                    Code::InvalidValue,
                    format!("unsupported HTTP method `{method}`"),
                    method_span,
                    "here",
                )
                .with_help("use GET, POST, PUT, PATCH or DELETE"),
            );
        }
        let headers = get("headers").map(|h| self.string_map(h)).unwrap_or_default();
        let forwarded = get("forward_headers").map(|h| self.forwarded_headers(h)).unwrap_or_default();
        let timeout_ms = get("timeout_ms").and_then(|e| self.positive_int(e, "timeout_ms")).unwrap_or(10_000) as u64;
        let retries = get("retries").and_then(|e| self.non_negative_int(e, "retries")).unwrap_or(0) as u32;
        let backoff_ms = get("backoff_ms").and_then(|e| self.non_negative_int(e, "backoff_ms")).unwrap_or(100) as u64;
        Some(ir::Remote { target, method, headers, forwarded, timeout_ms, retries, backoff_ms })
    }

    /// A Redis stream named by a `url` argument (`redis://host:port/stream`) and, optionally, a
    /// `stream` argument that overrides the URL's path: the server's URL and the stream.
    pub(super) fn redis_stream(
        &mut self,
        url_expr: &ast::Expr,
        stream_arg: Option<&ast::Expr>,
        code: Code,
        what: &str,
    ) -> Option<(String, String)> {
        let ExprKind::Str(url) = &url_expr.kind else {
            self.report(
                Diagnostic::error(code, "`url` takes a string", url_expr.span, "expected a redis:// URL")
                    .with_help("write `url = \"redis://127.0.0.1:6379/events\"`"),
            );
            return None;
        };
        let (server, mut stream) = match super::resolve::split_redis_url(url) {
            Ok(parts) => parts,
            Err(reason) => {
                self.report(
                    Diagnostic::error(code, format!("invalid stream URL: {reason}"), url_expr.span, "here")
                        .with_help("Redis Streams URLs look like redis://host:port/stream"),
                );
                return None;
            }
        };
        if let Some(name_expr) = stream_arg {
            match &name_expr.kind {
                ExprKind::Str(name) if !name.is_empty() => {
                    if let Err(reason) = super::resolve::check_stream_name(name) {
                        self.report(
                            Diagnostic::error(code, format!("invalid stream name: {reason}"), name_expr.span, "here")
                                .with_help("name the stream without braces, or with one hash tag: `{orders}:in`"),
                        );
                        return None;
                    }
                    stream = name.clone();
                }
                _ => {
                    self.report(
                        Diagnostic::error(code, "`stream` takes a non-empty string", name_expr.span, "here")
                            .with_help("write `stream = \"events\"`, or put the stream's name in the URL's path"),
                    );
                    return None;
                }
            }
        }
        if stream.is_empty() {
            self.report(
                Diagnostic::error(
                    code,
                    format!("the {what} names no stream"),
                    url_expr.span,
                    "no stream after the host",
                )
                .with_help("end the URL with the stream's name: redis://host:port/events"),
            );
            return None;
        }
        Some((server, stream))
    }

    /// Named arguments, reporting positional, unknown and repeated ones.
    pub(super) fn named_args<'c, 'k>(&mut self, call: &'c Call, known: &[&'k str]) -> Vec<(&'k str, &'c ast::Expr)> {
        let mut out: Vec<(&'k str, &'c ast::Expr)> = Vec::new();
        for (name, value) in self.named_args_open(call) {
            match known.iter().find(|k| **k == name).copied() {
                Some(known_name) => out.push((known_name, value)),
                None => {
                    let help = did_you_mean(name, known.iter().copied())
                        .unwrap_or_else(|| format!("`{}` takes: {}", call.name.name, known.join(", ")));
                    let span = call
                        .args
                        .iter()
                        .find_map(|a| a.name.as_ref().filter(|n| n.name == name))
                        .map_or(value.span, |n| n.span);
                    self.report(
                        Diagnostic::error(
                            Code::UnknownSetting,
                            format!("unknown argument `{name}` for `{}`", call.name.name),
                            span,
                            "not recognised",
                        )
                        .with_help(help),
                    );
                }
            }
        }
        out
    }

    fn named_args_open<'c>(&mut self, call: &'c Call) -> Vec<(&'c str, &'c ast::Expr)> {
        let mut out: Vec<(&'c str, &'c ast::Expr)> = Vec::new();
        for arg in &call.args {
            match &arg.name {
                Some(name) if out.iter().any(|(given, _)| *given == name.name.as_str()) => {
                    self.report(argument_given_twice(name))
                }
                Some(name) => out.push((name.name.as_str(), &arg.value)),
                None => {
                    // A URL given first without its name is the `url` it means: told once, and
                    // taken as written so that no "needs a url" follows.
                    let url = match &arg.value.kind {
                        ExprKind::Str(text)
                            if ["stream", "$remote"].contains(&call.name.name.as_str()) && text.contains("://") =>
                        {
                            Some(text)
                        }
                        _ => None,
                    };
                    let help = match url {
                        Some(text) => format!("write `{}(url = \"{text}\")`", call.name.name),
                        None => format!("write `{}(name = value)`", call.name.name),
                    };
                    self.report(
                        Diagnostic::error(
                            Code::InvalidValue,
                            format!("arguments of `{}` are named", call.name.name),
                            arg.value.span,
                            "no name",
                        )
                        .with_help(help),
                    );
                    if url.is_some() && !out.iter().any(|(given, _)| *given == "url") {
                        out.push(("url", &arg.value));
                    }
                }
            }
        }
        out
    }

    pub(super) fn positive_int(&mut self, expr: &ast::Expr, what: &str) -> Option<i64> {
        match expr.kind {
            ExprKind::Int(n) if n > 0 => Some(n),
            _ => {
                self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!("`{what}` must be a positive integer"),
                        expr.span,
                        "here",
                    )
                    .with_help(format!("write `{what} = 1` or more")),
                );
                None
            }
        }
    }

    fn non_negative_int(&mut self, expr: &ast::Expr, what: &str) -> Option<i64> {
        match expr.kind {
            ExprKind::Int(n) if n >= 0 => Some(n),
            _ => {
                self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!("`{what}` must be zero or a positive integer"),
                        expr.span,
                        "here",
                    )
                    .with_help(format!("write `{what} = 0` or more")),
                );
                None
            }
        }
    }

    /// `{ "name": "value", ... }`
    /// `forward_headers = ["authorization", ...]`: the caller's headers a `$remote` step passes on,
    /// lower-cased; never those that describe the connection or that the call sets itself.
    fn forwarded_headers(&mut self, expr: &ast::Expr) -> Vec<String> {
        /// Hop-by-hop headers and those the client writes for each call.
        const NOT_FORWARDED: &[&str] = &[
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "te",
            "trailer",
            "upgrade",
            "host",
            "content-length",
            "content-type",
            "x-event-id",
            "x-event-path",
            "x-request-timeout-ms",
        ];
        let ExprKind::Array(names) = &expr.kind else {
            self.report(
                Diagnostic::error(
                    Code::InvalidValue,
                    "`forward_headers` takes a list of header names",
                    expr.span,
                    "here",
                )
                .with_help("write `forward_headers = [\"authorization\"]`"),
            );
            return Vec::new();
        };
        let mut forwarded = Vec::new();
        for name in names {
            let ExprKind::Str(text) = &name.kind else {
                self.report(
                    Diagnostic::error(Code::InvalidValue, "a forwarded header is named by a string", name.span, "here")
                        .with_help("write `forward_headers = [\"authorization\"]`"),
                );
                continue;
            };
            let lower = text.to_ascii_lowercase();
            let problem = match super::values::check_header_name(text) {
                Err(why) => {
                    Some((format!("not a valid HTTP header: {why}"), "header names are letters, digits and `-`"))
                }
                Ok(()) if NOT_FORWARDED.contains(&lower.as_str()) => Some((
                    format!("`{text}` is not forwarded"),
                    "it describes the connection or is set by the call itself; forward the caller's own headers, such \
                     as `authorization`",
                )),
                Ok(()) if forwarded.contains(&lower) => Some((format!("`{text}` is forwarded twice"), "name it once")),
                Ok(()) => None,
            };
            match problem {
                Some((message, help)) => {
                    self.report(Diagnostic::error(Code::InvalidValue, message, name.span, "here").with_help(help));
                }
                None => forwarded.push(lower),
            }
        }
        forwarded
    }

    pub(super) fn string_map(&mut self, expr: &ast::Expr) -> Vec<(String, String)> {
        let ExprKind::Object(entries) = &expr.kind else {
            self.report(
                Diagnostic::error(Code::InvalidValue, "expected an object of strings", expr.span, "here")
                    .with_help("write `{ \"x-api-key\": \"...\" }`"),
            );
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|(key, value)| match &value.kind {
                ExprKind::Str(text) => {
                    let problem = super::values::check_header_name(&key.value)
                        .map_err(|why| (why, key.span))
                        .and_then(|()| super::values::check_header_value(text).map_err(|why| (why, value.span)));
                    if let Err((why, span)) = problem {
                        self.report(
                            Diagnostic::error(
                                Code::InvalidValue,
                                format!("not a valid HTTP header: {why}"),
                                span,
                                "here",
                            )
                            .with_help("header names are letters, digits and `-`; values are one line of text"),
                        );
                        return None;
                    }
                    Some((key.value.clone(), text.clone()))
                }
                _ => {
                    self.report(
                        Diagnostic::error(
                            Code::InvalidValue,
                            format!("the value of `{}` must be a string", key.value),
                            value.span,
                            "not a string",
                        )
                        .with_help(format!("write `\"{}\": \"value\"`", key.value)),
                    );
                    None
                }
            })
            .collect()
    }
}

/// A named argument written a second time: which value would win is not the reader's guess.
fn argument_given_twice(name: &ast::Ident) -> Diagnostic {
    Diagnostic::error(
        Code::DuplicateSetting,
        format!("argument `{}` is given twice", name.name),
        name.span,
        "given again here",
    )
    .with_help("give each argument once; remove one of them")
}

fn normalised(weights: Vec<f64>) -> Vec<f64> {
    let sum: f64 = weights.iter().sum();
    if sum > 0.0 { weights.iter().map(|w| w / sum).collect() } else { weights }
}

/// `kind = onnx`: a model file run by tract, not a smartcore estimator.
const ONNX_KIND: &str = "onnx";

/// Every name `kind` takes: smartcore's estimators, then `onnx`.
pub(crate) fn model_kind_names() -> impl Iterator<Item = &'static str> {
    ModelKind::ALL.iter().map(|(_, name)| *name).chain([ONNX_KIND])
}
