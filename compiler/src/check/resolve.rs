//! Name resolution: declarations become nodes with ids, settings and options are interpreted,
//! and wiring (chains, `after`, `before`, choice outlets) becomes edges.

use super::{Checker, NodeSyntax};
use crate::diagnostic::{Code, Diagnostic, did_you_mean};
use crate::ir::{self, NodeId, NodeKind, Placement, Type};
use crate::source::Span;
use crate::syntax::ast::{self, ExprKind, Item, Opt, OptValue};
use std::collections::HashMap;

use super::vocabulary::{ENGINES, GRAPH_SETTINGS, QUEUE_OPTIONS, ROUTER_OPTIONS, STEP_OPTIONS, TOPOLOGIES};

impl<'a> Checker<'a> {
    pub(super) fn resolve(&mut self) {
        self.declare_names();
        self.resolve_settings();
        self.resolve_records();
        self.resolve_params();
        // Before the routers, which may name them wherever they are declared.
        for item in &self.ast.items {
            if let Item::Model(model) = item {
                self.declare_shared_model(model);
            }
        }
        for item in &self.ast.items {
            match item {
                Item::Step(step) => self.resolve_step(step),
                Item::Router(router) => self.resolve_router(router),
                Item::Queue(queue) => self.resolve_queue(queue),
                Item::Trigger(trigger) => self.resolve_trigger(trigger),
                _ => {}
            }
        }
        self.resolve_wiring();
    }

    /// Declares every name first, so that references may come before declarations.
    fn declare_names(&mut self) {
        let mut seen: HashMap<(&str, &str), Span> = HashMap::new();
        // One node per step, router or queue: room for exactly those, not twice as many.
        let declared = self
            .ast
            .items
            .iter()
            .filter(|item| matches!(item, Item::Step(_) | Item::Router(_) | Item::Queue(_)))
            .count();
        self.graph.nodes.reserve_exact(declared);
        self.syntax.reserve_exact(declared);
        for item in &self.ast.items {
            let (namespace, ident) = match item {
                Item::Step(step) => ("step", &step.name),
                Item::Router(router) => ("step", &router.name),
                Item::Queue(queue) => ("step", &queue.name),
                Item::Param(param) => ("parameter", &param.name),
                Item::Secret(secret) => ("secret", secret),
                Item::Function(function) => ("function", function),
                Item::Record(record) => ("record", &record.name),
                Item::Test(test) => ("test", &test.name),
                Item::Trigger(trigger) => ("trigger", &trigger.name),
                Item::Model(model) => ("model", &model.name),
                Item::Setting(_) | Item::Wiring(_) => continue,
            };
            if let Some(&first) = seen.get(&(namespace, ident.name.as_str())) {
                self.report(
                    Diagnostic::error(
                        Code::DuplicateName,
                        format!("the {namespace} name `{}` is declared twice", ident.name),
                        ident.span,
                        "declared again here",
                    )
                    .with_label(first, "first declared here")
                    .with_help("names must be unique within a graph; rename one of them"),
                );
                continue;
            }
            seen.insert((namespace, &ident.name), ident.span);
            match item {
                Item::Step(_) | Item::Router(_) | Item::Queue(_) => {
                    let options = match item {
                        Item::Step(step) => step.options.as_slice(),
                        Item::Router(router) => router.options.as_slice(),
                        Item::Queue(queue) => queue.options.as_slice(),
                        _ => &[],
                    };
                    self.names.insert(&ident.name, NodeId(self.graph.nodes.len() as u32));
                    self.graph.nodes.push(placeholder_node(&ident.name, ident.span));
                    self.syntax.push(NodeSyntax { options, ..NodeSyntax::default() });
                }
                Item::Secret(secret) => self.graph.secrets.push(secret.name.to_string()),
                Item::Function(function) => self.functions.push(function.name.to_string()),
                Item::Record(record) => self.graph.records.push(ir::Record {
                    name: record.name.name.to_string(),
                    fields: Vec::new(),
                    boxed: Default::default(),
                    span: record.span,
                }),
                _ => {}
            }
        }
    }

    fn resolve_settings(&mut self) {
        let settings: Vec<&'a Opt> = self
            .ast
            .items
            .iter()
            .filter_map(|item| if let Item::Setting(opt) = item { Some(&**opt) } else { None })
            .collect();
        // A misspelt `topology` leaves the default (router) in place: its rules would then
        // report the flow's steps as follow-ons of the one misspelling.
        if settings.iter().any(|opt| opt.key.name != "topology" && did_you_mean(&opt.key.name, ["topology"]).is_some())
        {
            self.topology_invalid = true;
        }
        let settings = self.known_options(&settings, GRAPH_SETTINGS, "graph setting");
        for opt in settings {
            match opt.key.name.as_str() {
                "topology" => {
                    self.topology_span = Some(opt.span);
                    match self.word(opt, TOPOLOGIES) {
                        Some("flow") => self.graph.topology = ir::Topology::Flow,
                        Some(_) => self.graph.topology = ir::Topology::Router,
                        None => self.topology_invalid = true,
                    }
                }
                "engine" => {
                    self.engine_span = Some(opt.span);
                    match self.word(opt, ENGINES) {
                        Some("sync") => self.graph.engine = ir::Engine::Sync,
                        Some(_) => self.graph.engine = ir::Engine::Async,
                        None => {}
                    }
                }
                "description" => self.graph.description = self.string(opt),
                "handlers" => {
                    self.graph.handlers =
                        self.string(opt).map(|path| ir::HandlerFolder { path, span: opt_value_span(opt) })
                }
                "error_stream" => self.graph.error_stream = self.error_stream(opt),
                "allow_cycles" => self.graph.allow_cycles = self.flag(opt),
                "max_iterations" => {
                    if let Some(cap) = self.iteration_cap(opt) {
                        self.graph.max_iterations = cap;
                    }
                }
                _ => {} // "on_error" needs the nodes; see resolve_wiring.
            }
        }
    }

    fn error_stream(&mut self, opt: &Opt) -> Option<ir::ErrorStream> {
        match &opt.value {
            Some(OptValue::Expr(ast::Expr { kind: ExprKind::Name(name), .. })) if name.name == "memory" => {
                Some(ir::ErrorStream::Memory)
            }
            Some(OptValue::Expr(ast::Expr { kind: ExprKind::Str(url), span })) => match split_redis_url(url) {
                Ok((url, stream)) => Some(ir::ErrorStream::Stream { url, stream }),
                Err(reason) => {
                    self.report(
                        Diagnostic::error(
                            Code::InvalidValue,
                            format!("invalid error stream URL: {reason}"),
                            *span,
                            "here",
                        )
                        .with_help("write `error_stream = memory;` or `error_stream = \"redis://host:port/stream\";`"),
                    );
                    None
                }
            },
            _ => {
                self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        "invalid error stream",
                        opt.span,
                        "expected `memory` or a redis:// URL",
                    )
                    .with_help("write `error_stream = memory;` or `error_stream = \"redis://host:port/stream\";`"),
                );
                None
            }
        }
    }

    fn resolve_records(&mut self) {
        for item in &self.ast.items {
            let Item::Record(record) = item else { continue };
            let Some(index) = self.graph.records.iter().position(|r| r.span == record.span) else { continue };
            let mut fields: Vec<(String, Type)> = Vec::new();
            let mut seen: Vec<&ast::Ident> = Vec::new();
            for (name, ty) in &record.fields {
                if let Some(first) = seen.iter().find(|f| f.name == name.name) {
                    self.report(
                        Diagnostic::error(
                            Code::DuplicateName,
                            format!("record `{}` has two fields named `{}`", record.name.name, name.name),
                            name.span,
                            "declared again here",
                        )
                        .with_label(first.span, "first declared here")
                        .with_help("a record's fields have distinct names; rename or remove one"),
                    );
                    continue;
                }
                seen.push(name);
                let ty = self.resolve_type(ty);
                fields.push((name.name.to_string(), ty));
            }
            if let Some(slot) = self.graph.records.get_mut(index) {
                slot.fields = fields;
            }
        }
        self.check_recursive_records();
    }

    /// A record that holds itself, directly or through other records: through an optional field
    /// the field is boxed; through required fields only it would be infinitely large, and is
    /// refused. (A list holds its elements on the heap already.)
    fn check_recursive_records(&mut self) {
        /// The record a field holds in place, and whether it may be absent.
        fn held(ty: &Type) -> Option<(ir::RecordId, bool)> {
            match ty {
                Type::Record(id) => Some((*id, false)),
                Type::Optional(inner) => held(inner).map(|(id, _)| (id, true)),
                _ => None,
            }
        }
        let records = &self.graph.records;
        let reaches = |from: ir::RecordId, to: ir::RecordId, required_only: bool| {
            let mut seen = vec![false; records.len()];
            let mut stack = vec![from];
            while let Some(id) = stack.pop() {
                if id == to {
                    return true;
                }
                if std::mem::replace(seen.get_mut(id.index()).unwrap_or(&mut true), true) {
                    continue;
                }
                let fields = records.get(id.index()).map_or(&[][..], |r| r.fields.as_slice());
                stack.extend(
                    fields
                        .iter()
                        .filter_map(|(_, ty)| held(ty))
                        .filter(|(_, optional)| !*optional || !required_only)
                        .map(|(id, _)| id),
                );
            }
            false
        };
        let mut boxed: Vec<(usize, String)> = Vec::new();
        let mut infinite: Vec<(usize, String)> = Vec::new();
        for (index, record) in records.iter().enumerate() {
            let this = ir::RecordId(index as u32);
            for (field, ty) in &record.fields {
                let Some((held_id, optional)) = held(ty) else { continue };
                if optional && reaches(held_id, this, false) {
                    boxed.push((index, field.clone()));
                } else if !optional && reaches(held_id, this, true) {
                    infinite.push((index, field.clone()));
                }
            }
        }
        for (index, field) in boxed {
            if let Some(record) = self.graph.records.get_mut(index) {
                record.boxed.insert(field);
            }
        }
        for (index, field) in infinite {
            let Some(record) = self.graph.records.get(index) else { continue };
            let span = self
                .ast
                .items
                .iter()
                .find_map(|item| match item {
                    Item::Record(decl) if decl.span == record.span => decl
                        .fields
                        .iter()
                        .find(|(name, _)| name.name == field)
                        .map(|(name, ty)| name.span.to(ty.span())),
                    _ => None,
                })
                .unwrap_or(record.span);
            let name = record.name.clone();
            self.report(
                Diagnostic::error(
                    Code::RecursiveRecord,
                    format!("record `{name}` holds itself through `{field}`, so it would be infinitely large"),
                    span,
                    "always present, so never ending",
                )
                .with_help("make the field optional (`T?`), which may end the chain, or a list (`[T]`)"),
            );
        }
    }

    fn resolve_params(&mut self) {
        for item in &self.ast.items {
            let Item::Param(param) = item else { continue };
            if self.graph.params.iter().any(|p| p.name == param.name.name) {
                continue; // reported as a duplicate
            }
            let ty = self.resolve_type(&param.ty);
            let default = param.default.as_ref().map(|default| self.constant(default, Some(&ty)));
            self.graph.params.push(ir::Param { name: param.name.name.to_string(), ty, default });
        }
    }

    fn resolve_step(&mut self, step: &'a ast::StepDecl) {
        let Some(id) = self.own_id(&step.name) else { return };
        let options = self.known_options(&step.options.iter().collect::<Vec<_>>(), STEP_OPTIONS, "step option");
        let kind = self.step_kind(&step.implementation, false);
        self.apply_node_options(id, &options);
        let syntax = self.syntax_mut(id);
        syntax.decl = step.span;
        syntax.implementation = Some(&step.implementation);
        let impl_span = step.implementation.span();
        syntax.signature = step.signature.as_ref();
        if let Some((input, output)) = &step.signature {
            let input = self.resolve_type(input);
            let output = self.resolve_type(output);
            let node = self.node_mut(id);
            node.input = input;
            node.output = output;
        }
        let node = self.node_mut(id);
        node.kind = kind;
        node.impl_span = impl_span;
    }

    fn resolve_router(&mut self, router: &'a ast::RouterDecl) {
        let Some(id) = self.own_id(&router.name) else { return };
        let options = self.known_options(&router.options.iter().collect::<Vec<_>>(), ROUTER_OPTIONS, "router option");
        self.apply_node_options(id, &options);
        self.syntax_mut(id).decl = router.span;
        self.node_mut(id).impl_span = match &router.kind {
            ast::RouterKindAst::Custom(path) => path.span,
            ast::RouterKindAst::Named(kind) => kind.span,
        };
        let mut routes: Vec<ir::Route> = Vec::new();
        for route in &router.routes {
            let version = route.version.as_ref().map(|version| version.name.to_string());
            if let Some(first) = routes.iter().find(|r| r.name == route.name.name && r.version == version) {
                let first = first.span;
                let named = match &version {
                    Some(version) => format!("`{}:{version}`", route.name.name),
                    None => format!("`{}`", route.name.name),
                };
                self.report(
                    Diagnostic::error(
                        Code::DuplicateName,
                        format!("router `{}` has two routes named {named}", router.name.name),
                        route.name.span,
                        "declared again here",
                    )
                    .with_label(first, "first declared here")
                    .with_help(
                        "a route's name is its path (`/v2/models/NAME`): give each route its own, or versions (`route m:v2 = ...`)",
                    ),
                );
                continue;
            }
            let kind = self.route_kind(route);
            routes.push(ir::Route {
                name: route.name.name.to_string(),
                version,
                span: route.name.span,
                impl_span: route.implementation.span(),
                kind,
            });
        }
        if routes.is_empty() && router.routes.is_empty() {
            self.report(
                Diagnostic::error(
                    Code::RouterWithoutRoutes,
                    format!("router `{}` has no routes", router.name.name),
                    router.name.span,
                    "this router has nothing to route to",
                )
                .with_help("add a route: `route m1 = model(kind = logistic_regression, model_path = \"model.json\");`"),
            );
        }
        let url_prefix = self.path_prefix(&options, "url_prefix", "/v2/models");
        let health_prefix = self.path_prefix(&options, "health_prefix", "/v2/health");
        let kind = self.router_kind(router, &options, &routes);
        let extend_event = match options.iter().find(|o| o.key.name == "extend_event") {
            None => false,
            Some(opt) if kind == ir::RouterKind::Parallel => self.flag(opt),
            Some(opt) => {
                self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        "`extend_event` applies only to a parallel router",
                        opt.span,
                        "this router does not merge outputs",
                    )
                    .with_help("declare the router with `= parallel`, or remove `extend_event`"),
                );
                false
            }
        };
        let mut select = None;
        if let Some(opt) = options.iter().find(|o| o.key.name == "select") {
            match &opt.value {
                Some(OptValue::Expr(expr)) if kind == ir::RouterKind::Parallel => {
                    self.syntax_mut(id).router_select = Some(expr);
                }
                Some(OptValue::Function(path)) if kind == ir::RouterKind::Parallel => {
                    select = Some(ir::Selector::Function { path: path.to_string(), span: path.span });
                }
                _ => {
                    let (message, label) = if kind == ir::RouterKind::Parallel {
                        ("`select` takes an expression or a Rust function", "write the routes to run")
                    } else {
                        ("`select` applies only to a parallel router", "this router runs one route, or all to vote")
                    };
                    self.report(Diagnostic::error(Code::InvalidValue, message, opt.span, label).with_help(
                        "declare the router with `= parallel` and give the routes to run for each event: \
                             `select = body.models;` or `select = fn handlers::choose;`",
                    ));
                }
            }
        }
        self.node_mut(id).kind =
            NodeKind::Router(Box::new(ir::Router { kind, url_prefix, health_prefix, extend_event, select, routes }));
    }

    /// A router's path option (`url_prefix`, `health_prefix`): a string starting with `/`.
    fn path_prefix(&mut self, options: &[&'a Opt], key: &str, default: &str) -> String {
        let Some(opt) = options.iter().find(|o| o.key.name == key) else { return default.to_string() };
        let prefix = self.string(opt).unwrap_or_else(|| default.to_string());
        if !prefix.starts_with('/') {
            self.report(
                Diagnostic::error(Code::InvalidValue, format!("{key} must start with `/`"), opt.span, "here")
                    .with_help(format!("write `{key} = \"/{prefix}\";`")),
            );
        }
        prefix
    }

    fn resolve_queue(&mut self, queue: &'a ast::QueueDecl) {
        let Some(id) = self.own_id(&queue.name) else { return };
        let options = self.known_options(&queue.options.iter().collect::<Vec<_>>(), QUEUE_OPTIONS, "queue option");
        self.apply_node_options(id, &options);
        self.syntax_mut(id).decl = queue.span;
        // A queue whose arguments were wrong keeps its engine, so that placement checks
        // treat it as what the user meant and do not report follow-on errors.
        let kind = self.queue_kind(&queue.engine).unwrap_or(match queue.engine.name.name.as_str() {
            "stream" => ir::Queue::Stream { url: String::new(), stream: String::new(), shards: 1, key: None },
            _ => ir::Queue::Memory { capacity: 64 },
        });
        self.node_mut(id).kind = NodeKind::Queue(Box::new(kind));
        // The key is an expression over the event: typed with the steps' expressions.
        if queue.engine.name.name == "stream" {
            self.syntax_mut(id).queue_key = queue
                .engine
                .args
                .iter()
                .find(|arg| arg.name.as_ref().is_some_and(|n| n.name == "key"))
                .map(|arg| &arg.value);
        }
    }

    /// The node id of a declaration, unless it lost to an earlier one of the same name.
    fn own_id(&self, name: &ast::Ident) -> Option<NodeId> {
        self.node_id(&name.name).filter(|&id| self.node(id).span == name.span)
    }

    fn syntax_mut(&mut self, id: NodeId) -> &mut NodeSyntax<'a> {
        #[allow(clippy::indexing_slicing, reason = "syntax is pushed with each node, so the ids match")]
        &mut self.syntax[id.index()]
    }

    fn apply_node_options(&mut self, id: NodeId, options: &[&'a Opt]) {
        for opt in options {
            self.syntax_mut(id).option_spans.push((opt.key.name.as_str(), opt.span));
            match opt.key.name.as_str() {
                "full_event" => self.node_mut(id).full_event = self.flag(opt),
                "streaming" => self.node_mut(id).streaming = self.flag(opt),
                "respond" => self.node_mut(id).respond = self.flag(opt),
                "input_path" => self.node_mut(id).input_path = self.dotted_path(opt).map(Vec::into_boxed_slice),
                "result_path" => self.node_mut(id).result_path = self.dotted_path(opt).map(Vec::into_boxed_slice),
                "function" => self.node_mut(id).placement = self.placement(opt),
                "max_iterations" => self.node_mut(id).max_iterations = self.iteration_cap(opt),
                _ => {} // wiring and routing options are read later
            }
        }
    }

    /// `max_iterations = N`: a positive number of entries, at most a million (a loop that needs
    /// more is a batch job, and a cap that high bounds nothing).
    fn iteration_cap(&mut self, opt: &Opt) -> Option<u32> {
        match &opt.value {
            Some(OptValue::Expr(ast::Expr { kind: ExprKind::Int(n), .. })) if (1..=1_000_000).contains(n) => {
                u32::try_from(*n).ok()
            }
            _ => {
                self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        "`max_iterations` takes a number from 1 to 1000000",
                        opt_value_span(opt),
                        "here",
                    )
                    .with_help(format!(
                        "how many times an event may enter a step of a loop; the default is {}",
                        ir::DEFAULT_MAX_ITERATIONS
                    )),
                );
                None
            }
        }
    }

    fn placement(&mut self, opt: &Opt) -> Placement {
        match &opt.value {
            Some(OptValue::Star(_)) => Placement::Any,
            Some(OptValue::Expr(ast::Expr { kind: ExprKind::Name(name), .. })) => {
                if self.functions.iter().any(|function| *function == name.name) {
                    if let Some(declared) = self.declaration(super::Declared::Function, &name.name) {
                        self.refer(name.span, declared);
                    }
                    return Placement::Child(name.name.to_string());
                }
                let help = did_you_mean(&name.name, self.functions.iter().map(String::as_str))
                    .unwrap_or_else(|| format!("declare it with `function {};`", name.name));
                self.report(
                    Diagnostic::error(
                        Code::UnknownFunction,
                        format!("unknown child function `{}`", name.name),
                        name.span,
                        "not declared in this graph",
                    )
                    .with_help(help),
                );
                // `Any` keeps the placement checks quiet about a name already reported.
                Placement::Any
            }
            _ => {
                self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        "`function` takes a child function's name or `*`",
                        opt.span,
                        "here",
                    )
                    .with_help("write `function = worker;` (declared with `function worker;`), or `function = *;`"),
                );
                Placement::Root
            }
        }
    }

    fn resolve_wiring(&mut self) {
        for item in &self.ast.items {
            match item {
                Item::Wiring(wiring) => self.resolve_chain(wiring),
                Item::Setting(opt) if opt.key.name == "on_error" => {
                    self.graph_on_error_span = Some(opt.span);
                    self.graph.on_error = self.handler_reference(opt);
                }
                _ => {}
            }
        }
        for id in self.graph.node_ids().collect::<Vec<_>>() {
            let decl_options = self.syntax_of(id).options;
            for opt in decl_options {
                match opt.key.name.as_str() {
                    "after" => {
                        for name in self.name_list(opt) {
                            if let Some(parent) = self.resolve_node(name, "in `after`") {
                                self.add_edge(parent, id, name.span);
                            }
                        }
                    }
                    "before" => {
                        for target in self.name_list(opt) {
                            if let Some(target) = self.resolve_node(target, "in `before`") {
                                self.syntax_mut(id).before.push((target, opt.span));
                            }
                        }
                    }
                    "on_error" => {
                        let handler = self.handler_reference(opt);
                        if handler == Some(id) {
                            self.report(
                                Diagnostic::error(
                                    Code::SelfHandler,
                                    format!("step `{}` is its own error handler", self.node(id).name),
                                    opt.span,
                                    "names the step it belongs to",
                                )
                                .with_help("an error handler must be another step"),
                            );
                            continue;
                        }
                        self.node_mut(id).on_error = handler;
                    }
                    _ => {}
                }
            }
            if let NodeKind::Choice(_) = self.node(id).kind {
                self.resolve_choice_outlets(id);
            }
        }
        self.apply_before();
    }

    /// `a -> [b, c] -> d;` adds an edge from every name of a stage to every name of the next.
    fn resolve_chain(&mut self, wiring: &ast::Wiring) {
        let stages: Vec<Vec<(NodeId, Span)>> = wiring
            .stages
            .iter()
            .map(|stage| {
                stage
                    .iter()
                    .filter_map(|name| self.resolve_node(name, "in this chain").map(|id| (id, name.span)))
                    .collect()
            })
            .collect();
        for pair in stages.windows(2) {
            let [parents, children] = pair else { continue };
            for &(parent, parent_span) in parents {
                for &(child, child_span) in children {
                    self.add_edge(parent, child, parent_span.to(child_span));
                }
            }
        }
    }

    /// `before = x` inserts the step between `x` and `x`'s parents; on an error handler it only
    /// adds the edge, since a handler's input comes from failures, not from `x`'s parents.
    fn apply_before(&mut self) {
        let catchers = self.graph.catchers();
        for id in self.graph.node_ids().collect::<Vec<_>>() {
            let befores = std::mem::take(&mut self.syntax_mut(id).before);
            for &(target, span) in &befores {
                if self.graph.on_error == Some(id) {
                    let graph_span = self.graph_on_error_span.unwrap_or(span);
                    self.report(
                        Diagnostic::error(
                            Code::GraphHandlerWithBefore,
                            "the graph-level error handler cannot have `before`",
                            span,
                            "`before` given here",
                        )
                        .with_label(graph_span, "made the graph's error handler here")
                        .with_help("wire what follows the handler with a chain instead: `catcher -> next;`"),
                    );
                    continue;
                }
                if target == id {
                    continue; // reported as a cycle
                }
                if !catchers.contains(&id) {
                    for parent in self.node(target).parents.clone() {
                        if parent != id {
                            let edge_span = self.edge_span(parent, target);
                            self.remove_edge(parent, target);
                            self.add_edge(parent, id, edge_span);
                        }
                    }
                }
                self.add_edge(id, target, span);
            }
            self.syntax_mut(id).before = befores;
        }
    }

    fn resolve_choice_outlets(&mut self, id: NodeId) {
        let Some(ast::StepImpl::Choice(arms, _)) = self.syntax_of(id).implementation else { return };
        for arm in arms {
            if let Some(outlet) = self.resolve_node(&arm.outlet, "as a choice outlet") {
                self.add_edge(id, outlet, arm.outlet.span);
            }
        }
    }

    fn handler_reference(&mut self, opt: &'a Opt) -> Option<NodeId> {
        let names = self.name_list(opt);
        let [name] = names.as_slice() else {
            self.report(
                Diagnostic::error(Code::InvalidValue, "`on_error` takes one step name", opt.span, "here")
                    .with_help("write `on_error = catcher;`: one step handles the failures"),
            );
            return None;
        };
        let found = self.node_id(&name.name);
        if let Some(id) = found {
            self.refer(name.span, self.node(id).span);
        }
        if let Some(queue) = found.filter(|&id| matches!(self.node(id).kind, NodeKind::Queue(_))) {
            self.report(
                Diagnostic::error(
                    Code::UnknownHandler,
                    format!("queue `{}` cannot handle errors", name.name),
                    name.span,
                    "a queue, not a step",
                )
                .with_label(self.node(queue).span, "declared as a queue here")
                .with_help("name a step as the handler; to send failed events on to a queue, wire the handler to it: `catcher -> queue`"),
            );
            return None;
        }
        if found.is_none() {
            let help = did_you_mean(&name.name, self.node_names())
                .unwrap_or_else(|| "declare the handler as a step".to_string());
            self.report(
                Diagnostic::error(
                    Code::UnknownHandler,
                    format!("unknown error handler `{}`", name.name),
                    name.span,
                    "no step has this name",
                )
                .with_help(help),
            );
        }
        found
    }

    // ---- option values ----

    /// Drops and reports unknown and repeated options; returns the rest.
    fn known_options(&mut self, options: &[&'a Opt], known: &[&str], what: &str) -> Vec<&'a Opt> {
        let mut kept: Vec<&'a Opt> = Vec::new();
        for opt in options {
            if !known.contains(&opt.key.name.as_str()) {
                let help = did_you_mean(&opt.key.name, known.iter().copied())
                    .unwrap_or_else(|| format!("known: {}", known.join(", ")));
                self.report(
                    Diagnostic::error(
                        Code::UnknownSetting,
                        format!("unknown {what} `{}`", opt.key.name),
                        opt.key.span,
                        "not recognised",
                    )
                    .with_help(help),
                );
            } else if let Some(first) = kept.iter().find(|k| k.key.name == opt.key.name) {
                self.report(
                    Diagnostic::error(
                        Code::DuplicateSetting,
                        format!("`{}` is given twice", opt.key.name),
                        opt.span,
                        "given again here",
                    )
                    .with_label(first.span, "first given here")
                    .with_help("give each setting or option once; remove one of them"),
                );
            } else {
                kept.push(opt);
            }
        }
        kept
    }

    pub(super) fn flag(&mut self, opt: &Opt) -> bool {
        match &opt.value {
            None => true,
            Some(OptValue::Expr(ast::Expr { kind: ExprKind::Bool(value), .. })) => *value,
            _ => {
                self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!("`{}` is a flag", opt.key.name),
                        opt.span,
                        "expected `true` or `false`",
                    )
                    .with_help(format!("write `{};` to set it", opt.key.name)),
                );
                false
            }
        }
    }

    pub(super) fn string(&mut self, opt: &Opt) -> Option<String> {
        match &opt.value {
            Some(OptValue::Expr(ast::Expr { kind: ExprKind::Str(value), .. })) => Some(value.clone()),
            _ => {
                self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!("`{}` takes a string", opt.key.name),
                        opt.span,
                        "expected a string literal",
                    )
                    .with_help(format!("write `{} = \"...\";`", opt.key.name)),
                );
                None
            }
        }
    }

    fn word(&mut self, opt: &Opt, words: &[&'static str]) -> Option<&'static str> {
        if let Some(OptValue::Expr(ast::Expr { kind: ExprKind::Name(name), .. })) = &opt.value {
            if let Some(word) = words.iter().find(|w| **w == name.name) {
                return Some(word);
            }
            let help = did_you_mean(&name.name, words.iter().copied())
                .unwrap_or_else(|| format!("one of: {}", words.join(", ")));
            self.report(
                Diagnostic::error(
                    Code::InvalidValue,
                    format!("unknown {} `{}`", opt.key.name, name.name),
                    name.span,
                    "not recognised",
                )
                .with_help(help),
            );
            return None;
        }
        self.report(
            Diagnostic::error(
                Code::InvalidValue,
                format!("`{}` takes one of: {}", opt.key.name, words.join(", ")),
                opt.span,
                "here",
            )
            .with_help(format!(
                "write `{} = {};`",
                opt.key.name,
                words.first().copied().unwrap_or_default()
            )),
        );
        None
    }

    fn dotted_path(&mut self, opt: &Opt) -> Option<Vec<String>> {
        let path = self.string(opt)?;
        let segments: Vec<String> = path.split('.').map(str::to_string).collect();
        if segments.iter().any(String::is_empty) {
            self.report(
                Diagnostic::error(
                    Code::InvalidValue,
                    format!("`{}` is not a dotted path", path),
                    opt.span,
                    "has an empty segment",
                )
                .with_help("write it as `field.subfield`"),
            );
            return None;
        }
        Some(segments)
    }

    /// `x` or `[x, y]`.
    fn name_list(&mut self, opt: &'a Opt) -> Vec<&'a ast::Ident> {
        let items: Vec<&ast::Expr> = match &opt.value {
            Some(OptValue::Expr(ast::Expr { kind: ExprKind::Array(items), .. })) => items.iter().collect(),
            Some(OptValue::Expr(expr)) => vec![expr],
            _ => Vec::new(),
        };
        let mut names = Vec::new();
        for item in items {
            match &item.kind {
                ExprKind::Name(name) => names.push(name),
                _ => self.report(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!("`{}` takes step names", opt.key.name),
                        item.span,
                        "expected a name",
                    )
                    .with_help(format!("write `{} = step;` or `{} = [a, b];`", opt.key.name, opt.key.name)),
                ),
            }
        }
        if opt.value.is_none() {
            self.report(
                Diagnostic::error(
                    Code::InvalidValue,
                    format!("`{}` needs a value", opt.key.name),
                    opt.span,
                    "expected `= name` or `= [a, b]`",
                )
                .with_help(format!("write `{} = step;` or `{} = [a, b];`", opt.key.name, opt.key.name)),
            );
        }
        names
    }
}

fn placeholder_node(name: &ir::Name, span: Span) -> ir::Node {
    ir::Node {
        name: name.clone(),
        span,
        impl_span: span,
        kind: NodeKind::Function(String::new()),
        input: Type::Json,
        output: Type::Json,
        full_event: false,
        streaming: false,
        input_path: None,
        result_path: None,
        placement: Placement::Root,
        respond: false,
        answers: false,
        on_error: None,
        catcher: None,
        parents: ir::Edges::new(),
        children: ir::Edges::new(),
        max_iterations: None,
        iteration_cap: None,
    }
}

/// Splits `redis://host:port/stream` (or `rediss://`, over TLS; or a Redis Cluster,
/// `redis+cluster://host:port,host:port/stream`, `rediss+cluster://`) into the server URL and the
/// stream name.
pub(super) fn split_redis_url(url: &str) -> Result<(String, String), String> {
    const SCHEMES: [&str; 4] = ["redis", "rediss", "redis+cluster", "rediss+cluster"];
    let (scheme, rest) = url.split_once("://").filter(|(scheme, _)| SCHEMES.contains(scheme)).ok_or_else(|| {
        format!("`{url}` does not start with redis:// (rediss:// over TLS, redis+cluster:// for a Redis Cluster)")
    })?;
    let (authority, stream) = rest.split_once('/').unwrap_or((rest, ""));
    if scheme.ends_with("+cluster") {
        // Every node as a URL of its own, with the credentials they share.
        let (credentials, nodes) = authority.rsplit_once('@').map_or(("", authority), |(c, n)| (c, n));
        if nodes.split(',').all(|node| node.trim().is_empty()) {
            return Err(format!("`{url}` names no node: write {scheme}://HOST:PORT,HOST:PORT/STREAM"));
        }
        for node in nodes.split(',') {
            let at = if credentials.is_empty() { String::new() } else { format!("{credentials}@") };
            super::values::check_url(&format!("redis://{at}{}", node.trim()), &["redis"])
                .map_err(|reason| format!("node `{}` of {reason}", node.trim()))?;
        }
    } else {
        super::values::check_url(url, &["redis", "rediss"])?;
    }
    check_stream_name(stream)?;
    Ok((format!("{scheme}://{authority}"), stream.to_string()))
}

/// A stream name may hold braces only as a Redis Cluster hash tag, `{TAG}`: graphc puts its own
/// keys for the stream (the marks of what was processed) in the stream's slot by its tag, and a
/// stray brace would put them elsewhere.
pub(super) fn check_stream_name(stream: &str) -> Result<(), String> {
    let Some(open) = stream.find(['{', '}']) else { return Ok(()) };
    let tag_closes = stream
        .get(open..)
        .filter(|from| from.starts_with('{'))
        .and_then(|from| from.get(1..))
        .and_then(|after| after.find('}'))
        .is_some_and(|length| length > 0);
    if tag_closes {
        Ok(())
    } else {
        Err(format!(
            "stream `{stream}` holds a brace that is not a hash tag: braces in a stream name enclose a Redis Cluster hash tag, `{{TAG}}`"
        ))
    }
}

/// Where an option's value is written, or the option when it has none.
fn opt_value_span(opt: &Opt) -> Span {
    match &opt.value {
        Some(OptValue::Expr(expr)) => expr.span,
        Some(OptValue::Star(span)) => *span,
        Some(OptValue::Function(path)) => path.span,
        None => opt.span,
    }
}
