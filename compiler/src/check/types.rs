//! Types: record and step types, types across edges, input and result paths, and the
//! expressions of built-in steps, parameters and tests.

use super::Checker;
use crate::diagnostic::{Code, Diagnostic, did_you_mean};
use crate::ir::{self, NodeId, NodeKind, RecordId, Type};
use crate::source::Span;
use crate::syntax::ast::{self, BinaryOp, ExprKind, StepImpl, UnaryOp};

/// What names an expression may use.
#[derive(Clone, Copy)]
pub(super) enum Scope<'t> {
    /// A step's expression: `body`, `param`, `event`.
    Step(&'t Type),
    /// A constant: literals and `param` only.
    Constant,
    /// A test assertion: `status`, `headers`, `body`.
    Test,
}

use super::vocabulary::{BUILTIN_TYPES, EVENT_FIELDS, REQUEST_OPTIONS};

impl Checker<'_> {
    pub(super) fn resolve_type(&mut self, ty: &ast::TypeExpr) -> Type {
        match ty {
            ast::TypeExpr::Array(element, _) => Type::Array(Box::new(self.resolve_type(element))),
            ast::TypeExpr::Optional(inner, _) => Type::Optional(Box::new(self.resolve_type(inner))),
            ast::TypeExpr::Named(name) => match name.name.as_str() {
                "int" => Type::Int,
                "float" => Type::Float,
                "str" => Type::Str,
                "bool" => Type::Bool,
                "json" => Type::Json,
                other => match self.graph.records.iter().position(|r| r.name == other) {
                    Some(index) => {
                        if let Some(declared) = self.declaration(super::Declared::Record, other) {
                            self.refer(name.span, declared);
                        }
                        Type::Record(RecordId(index as u32))
                    }
                    None => {
                        let candidates: Vec<&str> = BUILTIN_TYPES
                            .iter()
                            .copied()
                            .chain(self.graph.records.iter().map(|r| r.name.as_str()))
                            .collect();
                        let help = did_you_mean(other, candidates).unwrap_or_else(|| {
                            "types are int, float, str, bool, json, [T], T? and declared records".to_string()
                        });
                        self.report(
                            Diagnostic::error(
                                Code::UnknownType,
                                format!("unknown type `{other}`"),
                                name.span,
                                "not a type",
                            )
                            .with_help(help),
                        );
                        Type::Json
                    }
                },
            },
        }
    }

    pub(super) fn type_name(&self, ty: &Type) -> String {
        self.graph.type_name(ty)
    }

    /// The fields of a known object or a record.
    fn fields_of(&self, ty: &Type) -> Option<Vec<(ir::Name, Type)>> {
        match ty {
            Type::Shape(fields) => Some(fields.to_vec()),
            Type::Record(id) => {
                Some(self.record_fields(*id).iter().map(|(name, ty)| (name.as_str().into(), ty.clone())).collect())
            }
            _ => None,
        }
    }

    fn record_fields(&self, id: RecordId) -> &[(String, Type)] {
        self.graph.records.get(id.index()).map_or(&[], |r| r.fields.as_slice())
    }

    /// A constant expression (a parameter default, a `new` argument, a model argument).
    pub(super) fn constant(&mut self, expr: &ast::Expr, expected: Option<&Type>) -> ir::Expr {
        let (value, ty) = self.expr(expr, Scope::Constant);
        if let Some(expected) = expected
            && !assignable(&ty, expected)
        {
            let d = Diagnostic::error(
                Code::ExprType,
                format!("expected `{}`, found `{}`", self.type_name(expected), self.type_name(&ty)),
                expr.span,
                format!("this is `{}`", self.type_name(&ty)),
            )
            .with_help(format!("give a value of type `{}` here", self.type_name(expected)));
            self.report(d);
        } else if let Some(expected) = expected {
            // A list or object literal typed as a whole may hold an element of another type
            // (`[1, "a"]` is a `[json]`): each element against what it must be.
            self.check_literal_elements(expr, expected);
        }
        value
    }

    /// The elements of a list or object literal against the type the whole must have; the first
    /// that does not fit is reported where it is written.
    fn check_literal_elements(&mut self, expr: &ast::Expr, expected: &Type) {
        let expected = match expected {
            Type::Optional(inner) => inner.as_ref(),
            other => other,
        };
        let items: Vec<(&ast::Expr, Type)> = match (&expr.kind, expected) {
            (ExprKind::Array(items), Type::Array(element)) => {
                items.iter().map(|item| (item, (**element).clone())).collect()
            }
            (ExprKind::Object(entries), Type::Record(_) | Type::Shape(_)) => {
                let fields = self.fields_of(expected).unwrap_or_default();
                entries
                    .iter()
                    .filter_map(|(key, value)| {
                        fields.iter().find(|(name, _)| name.as_str() == key.value).map(|(_, ty)| (value, ty.clone()))
                    })
                    .collect()
            }
            _ => return,
        };
        for (item, wanted) in items {
            let (_, ty) = self.expr(item, Scope::Constant);
            if !assignable(&ty, &wanted) {
                let d = Diagnostic::error(
                    Code::ExprType,
                    format!("expected `{}`, found `{}`", self.type_name(&wanted), self.type_name(&ty)),
                    item.span,
                    format!("this is `{}`", self.type_name(&ty)),
                )
                .with_help(format!("every element here is a `{}`", self.type_name(&wanted)));
                self.report(d);
                return;
            }
            self.check_literal_elements(item, &wanted);
        }
    }

    /// Walks the flow in order, giving each node its input and output types and its checked
    /// expressions, and checking every edge.
    pub(super) fn check_types(&mut self) {
        let order = self.topological_order();
        // What each node sends; `None` until typed (the far end of a loop's edge back, on the
        // first pass).
        let mut emitted: Vec<Option<Type>> = vec![None; self.graph.nodes.len()];
        if self.graph.back_edges.is_empty() {
            self.type_pass(&order, &mut emitted);
            return;
        }
        // Round a loop, what comes back joins what entered, which may change what comes back:
        // type again until nothing changes (a join only forgets, so this ends), keeping only
        // the last pass's findings.
        for pass in 1..=MAX_LOOP_PASSES {
            let (diagnostics, references) = (self.diagnostics.len(), self.references.len());
            let before = emitted.clone();
            self.type_pass(&order, &mut emitted);
            if emitted == before || pass == MAX_LOOP_PASSES {
                return;
            }
            self.diagnostics.truncate(diagnostics);
            self.references.truncate(references);
        }
    }

    fn type_pass(&mut self, order: &[NodeId], emitted: &mut [Option<Type>]) {
        for &id in order {
            let node = self.node(id);
            let parents = node.parents.clone();
            // After a join, the body is what every parent can send; round a loop, what entered
            // it and what comes back.
            let arriving = parents
                .iter()
                .filter_map(|p| emitted.get(p.index()).cloned().flatten())
                .reduce(|a, b| join(&a, &b))
                .unwrap_or(Type::Json);
            let body = if node.full_event { Type::Json } else { arriving.clone() };
            let value_in = match node.input_path.clone() {
                Some(path) => self.path_type(id, &body, &path, "input_path"),
                None => body.clone(),
            };
            if let Some((declared_in, declared_out)) = self.syntax_of(id).signature {
                let expected = self.node(id).input.clone();
                for &parent in &parents {
                    let Some(sent) = emitted.get(parent.index()).cloned().flatten() else { continue };
                    let sent = match self.node(id).input_path.clone() {
                        Some(path) => self.path_type_quiet(&sent, &path),
                        None => sent,
                    };
                    if !assignable(&sent, &expected) {
                        let d = Diagnostic::error(
                            Code::TypeMismatch,
                            format!(
                                "`{}` sends `{}` but `{}` takes `{}`",
                                self.node(parent).name,
                                self.type_name(&sent),
                                self.node(id).name,
                                self.type_name(&expected)
                            ),
                            self.edge_span(parent, id),
                            format!("`{}` flows here", self.type_name(&sent)),
                        )
                        .with_label(declared_in.span(), format!("`{}` expected here", self.type_name(&expected)))
                        .with_help(
                            "make the types agree, or declare the step's input as `json` to check it at run time",
                        );
                        self.report(d);
                    }
                }
                self.check_declared_builtin(id, declared_out.span());
            } else {
                self.infer_node(id, &value_in);
            }
            let output = self.node(id).output.clone();
            let out = match self.node(id).result_path.clone() {
                // A result written into a known object adds a field: its fields are no longer
                // all known.
                Some(_) if matches!(body, Type::Shape(_)) => Type::Object,
                Some(path) => {
                    self.check_result_path(id, &body, &path, &output);
                    body
                }
                None => output,
            };
            if let Some(slot) = emitted.get_mut(id.index()) {
                *slot = Some(out);
            }
        }
    }

    /// A step with a declared signature: a built-in's expression is typed against the declared
    /// input and compiled, as an undeclared one is, and what it builds must be the declared
    /// output. The step keeps its declared types: they are what its neighbours see.
    fn check_declared_builtin(&mut self, id: NodeId, declared_out_span: Span) {
        let (declared_in, declared_out) = (self.node(id).input.clone(), self.node(id).output.clone());
        self.infer_node(id, &declared_in);
        let inferred = std::mem::replace(&mut self.node_mut(id).output, declared_out.clone());
        self.node_mut(id).input = declared_in;
        let builds = match &self.node(id).kind {
            NodeKind::Map(_) | NodeKind::Extend(_) | NodeKind::FlatMap(_) => "builds",
            NodeKind::Filter(_) | NodeKind::Batch { .. } | NodeKind::Collect => "passes on",
            _ => return,
        };
        let Some(difference) = self.output_difference(&inferred, &declared_out) else { return };
        let expression = match self.syntax_of(id).implementation {
            Some(StepImpl::Call(call)) => call.args.first().map_or(call.span, |arg| arg.value.span),
            _ => self.node(id).impl_span,
        };
        let d = Diagnostic::error(
            Code::ExprType,
            format!(
                "`{}` is declared to give `{}`, but it {builds} `{}`: {difference}",
                self.node(id).name,
                self.type_name(&declared_out),
                self.type_name(&inferred)
            ),
            expression,
            format!("this is `{}`", self.type_name(&inferred)),
        )
        .with_label(declared_out_span, format!("`{}` declared here", self.type_name(&declared_out)))
        .with_help("make the expression build the declared type, or declare the output as `json`");
        self.report(d);
    }

    /// Why a value of type `inferred` is not a `declared`, naming the field that differs; `None`
    /// when it is one. An object built field by field must have every field of a record (an
    /// optional one may be left out) with a type that fits.
    fn output_difference(&self, inferred: &Type, declared: &Type) -> Option<String> {
        let (path, found, wanted) = self.first_difference(inferred, declared)?;
        let path = path.join(".");
        Some(match found {
            None => format!("it has no field `{path}`"),
            Some(found) if path.is_empty() => {
                format!("`{}` is not `{}`", self.type_name(&found), self.type_name(&wanted))
            }
            Some(found) => {
                format!("field `{path}` is `{}`, not `{}`", self.type_name(&found), self.type_name(&wanted))
            }
        })
    }

    /// The first place where `inferred` does not fit `declared`: the path of fields to it, the
    /// type found there (`None` for a missing field) and the type wanted.
    fn first_difference(&self, inferred: &Type, declared: &Type) -> Option<(Vec<String>, Option<Type>, Type)> {
        match (inferred, declared) {
            (Type::Shape(fields), Type::Record(_) | Type::Shape(_)) => {
                let wanted = self.fields_of(declared).unwrap_or_default();
                wanted.into_iter().find_map(|(name, wanted_ty)| match fields.iter().find(|(field, _)| *field == name) {
                    None if matches!(wanted_ty, Type::Optional(_) | Type::Json) => None,
                    None => Some((vec![name.to_string()], None, wanted_ty)),
                    Some((_, ty)) => self.first_difference(ty, &wanted_ty).map(|(mut path, found, wanted)| {
                        path.insert(0, name.to_string());
                        (path, found, wanted)
                    }),
                })
            }
            (Type::Array(inner), Type::Array(wanted)) if !assignable(inferred, declared) => self
                .first_difference(inner, wanted)
                .or_else(|| Some((Vec::new(), Some(inferred.clone()), declared.clone()))),
            (from, Type::Optional(inner)) if !matches!(from, Type::Optional(_) | Type::Null) => {
                self.first_difference(from, inner)
            }
            (from, to) if assignable(from, to) => None,
            (from, to) => Some((Vec::new(), Some(from.clone()), to.clone())),
        }
    }

    /// A body written in the graph (a test's request, a schedule's firing) against each start
    /// step of a flow that declares its input: a body that cannot fit fails on every run.
    pub(super) fn check_entry_body(&mut self, body: &Type, span: Span, code: Code, what: &str) {
        if self.graph.topology != ir::Topology::Flow {
            return;
        }
        for start in self.graph.start_nodes() {
            let node = self.node(start);
            if node.full_event || node.input_path.is_some() {
                continue;
            }
            let Some((declared_in, _)) = self.syntax_of(start).signature else { continue };
            let declared = node.input.clone();
            let Some(difference) = self.output_difference(body, &declared) else { continue };
            let d = Diagnostic::error(
                code,
                format!(
                    "{what} does not fit `{}`, which takes `{}`: {difference}",
                    self.node(start).name,
                    self.type_name(&declared)
                ),
                span,
                format!("this is `{}`", self.type_name(body)),
            )
            .with_label(declared_in.span(), format!("`{}` declared here", self.type_name(&declared)))
            .with_help(format!("give a body of type `{}`", self.type_name(&declared)));
            self.report(d);
        }
    }

    /// Built-in steps: their expressions are typed against what arrives; other nodes pass
    /// JSON or what arrives.
    fn infer_node(&mut self, id: NodeId, value_in: &Type) {
        let implementation = self.syntax_of(id).implementation;
        let kind = self.node(id).kind.clone();
        let (input, output, kind) = match (kind, implementation) {
            (NodeKind::Extend(_), Some(StepImpl::Call(call))) => {
                let (expr, ty) = self.single_arg(call, value_in);
                if !matches!(ty, Type::Object | Type::Shape(_) | Type::Json | Type::Record(_)) {
                    self.expr_error(
                        call.span,
                        format!(
                            "`extend` merges an object into the body, but its expression is `{}`",
                            self.type_name(&ty)
                        ),
                        "write an object literal: `extend({ tag: \"x\" })`; to replace the body, use `map`",
                    );
                }
                if !matches!(value_in, Type::Object | Type::Shape(_) | Type::Json | Type::Record(_)) {
                    self.expr_error(
                        call.span,
                        format!("`extend` needs an object body, but `{}` arrives", self.type_name(value_in)),
                        "use `map({ value: body, ... })` to build an object from this body",
                    );
                }
                let output = match (self.fields_of(value_in), self.fields_of(&ty)) {
                    (Some(mut fields), Some(extra)) => {
                        for (name, ty) in extra {
                            match fields.iter_mut().find(|(existing, _)| *existing == name) {
                                Some(slot) => slot.1 = ty,
                                None => fields.push((name, ty)),
                            }
                        }
                        Type::Shape(fields.into())
                    }
                    _ => Type::Object,
                };
                (value_in.clone(), output, NodeKind::Extend(expr))
            }
            (NodeKind::Map(_), Some(StepImpl::Call(call))) => {
                let (expr, ty) = self.single_arg(call, value_in);
                (value_in.clone(), ty, NodeKind::Map(expr))
            }
            (NodeKind::Filter(_), Some(StepImpl::Call(call))) => {
                let (expr, ty) = self.single_arg(call, value_in);
                self.expect_bool(&ty, call.span, "a filter condition");
                (value_in.clone(), value_in.clone(), NodeKind::Filter(expr))
            }
            (NodeKind::FlatMap(_), Some(StepImpl::Call(call))) => {
                let (expr, ty) = self.single_arg(call, value_in);
                let element = match ty {
                    Type::Array(element) => *element,
                    Type::Json => Type::Json,
                    other => {
                        self.expr_error(
                            call.span,
                            format!("`flat_map` needs an array, but its expression is `{}`", self.type_name(&other)),
                            "give it an array, such as `flat_map(body.items)` or `flat_map([body, body])`",
                        );
                        Type::Json
                    }
                };
                (value_in.clone(), element, NodeKind::FlatMap(expr))
            }
            (NodeKind::Choice(_), Some(StepImpl::Choice(arms, _))) => {
                let mut checked = Vec::new();
                for arm in arms {
                    let condition = arm.condition.as_ref().map(|condition| {
                        let (expr, ty) = self.expr(condition, Scope::Step(value_in));
                        self.expect_bool(&ty, condition.span, "a choice condition");
                        expr
                    });
                    if let Some(outlet) = self.node_id(&arm.outlet.name) {
                        checked.push((condition, outlet));
                    }
                }
                (value_in.clone(), value_in.clone(), NodeKind::Choice(checked))
            }
            (NodeKind::Queue(mut queue), _) => {
                // The key is typed with the steps' expressions; a memory queue has none.
                if let ir::Queue::Stream { key, .. } = &mut *queue {
                    *key = self.syntax_of(id).queue_key.map(|key| {
                        let (expr, ty) = self.expr(key, Scope::Step(value_in));
                        if matches!(
                            ty,
                            Type::Null
                                | Type::Object
                                | Type::Shape(_)
                                | Type::Array(_)
                                | Type::Record(_)
                                | Type::Optional(_)
                        ) {
                            self.expr_error(
                                key.span,
                                format!(
                                    "a queue's key must be a string, number or bool, but this is `{}`",
                                    self.type_name(&ty)
                                ),
                                "key by one field: `key = body.user_id`",
                            );
                        }
                        expr
                    });
                }
                (value_in.clone(), value_in.clone(), NodeKind::Queue(queue))
            }
            (NodeKind::Router(mut router), _) if self.syntax_of(id).router_select.is_some() => {
                if let Some(select) = self.syntax_of(id).router_select {
                    let (expr, ty) = self.expr(select, Scope::Step(value_in));
                    let names = matches!(&ty, Type::Str | Type::Json)
                        || matches!(&ty, Type::Array(element) if matches!(**element, Type::Str | Type::Json));
                    if !names {
                        self.expr_error(
                            select.span,
                            format!(
                                "`select` gives the names of the routes to run, but this is `{}`",
                                self.type_name(&ty)
                            ),
                            "give a route's name or an array of them: `select = body.models;`",
                        );
                    }
                    router.select = Some(ir::Selector::Expr(expr));
                }
                (value_in.clone(), Type::Json, NodeKind::Router(router))
            }
            // A router receives what flows in (which an ONNX route's model is checked against,
            // check/model_files.rs) and answers JSON.
            (NodeKind::Router(router), _) => (value_in.clone(), Type::Json, NodeKind::Router(router)),
            (NodeKind::Batch { .. } | NodeKind::Collect, _) => {
                (value_in.clone(), Type::Array(Box::new(value_in.clone())), self.node(id).kind.clone())
            }
            (kind, _) => (Type::Json, Type::Json, kind),
        };
        let node = self.node_mut(id);
        node.input = input;
        node.output = output;
        node.kind = kind;
    }

    fn single_arg(&mut self, call: &ast::Call, body: &Type) -> (ir::Expr, Type) {
        match call.args.first() {
            Some(arg) => self.expr(&arg.value, Scope::Step(body)),
            None => (ir::Expr::Null, Type::Json),
        }
    }

    fn expect_bool(&mut self, ty: &Type, span: Span, what: &str) {
        if !matches!(ty, Type::Bool | Type::Json) {
            self.expr_error(
                span,
                format!("{what} must be `bool`, but this is `{}`", self.type_name(ty)),
                "compare it to get a bool: `body.n > 0`, `body.name == \"x\"`",
            );
        }
    }

    fn expr_error(&mut self, span: Span, message: String, help: &str) {
        self.report(Diagnostic::error(Code::ExprType, message, span, "here").with_help(help));
    }

    /// The type at a dotted path; reports a path that cannot exist on a known type.
    fn path_type(&mut self, id: NodeId, body: &Type, path: &[String], key: &str) -> Type {
        match self.walk_path(body, path) {
            Ok(ty) => ty,
            Err(message) => {
                let span = self.syntax_of(id).option_span(key).unwrap_or(self.node(id).span);
                let help = self.path_help(body, path);
                self.report(
                    Diagnostic::error(Code::InvalidPath, message, span, format!("`{key}` of `{}`", self.node(id).name))
                        .with_optional_help(help),
                );
                Type::Json
            }
        }
    }

    fn path_type_quiet(&self, body: &Type, path: &[String]) -> Type {
        self.walk_path(body, path).unwrap_or(Type::Json)
    }

    fn walk_path(&self, body: &Type, path: &[String]) -> Result<Type, String> {
        let mut current = body.clone();
        for segment in path {
            current = match current {
                Type::Json | Type::Object => Type::Json,
                Type::Shape(fields) => match fields.iter().find(|(name, _)| name == segment) {
                    Some((_, ty)) => ty.clone(),
                    None => return Err(format!("the body has no field `{segment}`")),
                },
                Type::Optional(inner) => match *inner {
                    Type::Record(_) | Type::Json | Type::Object => {
                        self.walk_path(&inner, std::slice::from_ref(segment))?
                    }
                    other => return Err(format!("`{}` has no field `{segment}`", self.type_name(&other))),
                },
                Type::Record(record) => match self.record_fields(record).iter().find(|(name, _)| name == segment) {
                    Some((_, ty)) => ty.clone(),
                    None => {
                        return Err(format!(
                            "record `{}` has no field `{segment}`",
                            self.type_name(&Type::Record(record))
                        ));
                    }
                },
                other => return Err(format!("`{}` has no field `{segment}`", self.type_name(&other))),
            };
        }
        Ok(current)
    }

    fn path_help(&self, body: &Type, path: &[String]) -> Option<String> {
        let mut current = body.clone();
        for segment in path {
            let Type::Record(record) = current else { return None };
            let fields = self.record_fields(record);
            match fields.iter().find(|(name, _)| name == segment) {
                Some((_, ty)) => current = ty.clone(),
                None => {
                    return did_you_mean(segment, fields.iter().map(|(n, _)| n.as_str())).or_else(|| {
                        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
                        Some(format!("its fields are: {}", names.join(", ")))
                    });
                }
            }
        }
        None
    }

    fn check_result_path(&mut self, id: NodeId, body: &Type, path: &[String], output: &Type) {
        if matches!(body, Type::Json | Type::Object | Type::Shape(_)) {
            return;
        }
        let span = self.syntax_of(id).option_span("result_path").unwrap_or(self.node(id).span);
        match self.walk_path(body, path) {
            Ok(slot) if assignable(output, &slot) => {}
            Ok(slot) => {
                let d = Diagnostic::error(
                    Code::InvalidPath,
                    format!(
                        "`{}` produces `{}` but `{}` holds `{}`",
                        self.node(id).name,
                        self.type_name(output),
                        path.join("."),
                        self.type_name(&slot)
                    ),
                    span,
                    "result written here",
                )
                .with_help("write the result at a path of its type, or declare the field as `json`");
                self.report(d);
            }
            Err(message) => {
                let help = self.path_help(body, path).unwrap_or_else(|| {
                    "a record's fields are fixed: write the result into a field it declares".to_string()
                });
                self.report(
                    Diagnostic::error(
                        Code::InvalidPath,
                        message,
                        span,
                        format!("`result_path` of `{}`", self.node(id).name),
                    )
                    .with_help(help),
                );
            }
        }
    }

    /// Every node after its parents, the edges that close loops aside.
    fn topological_order(&self) -> Vec<NodeId> {
        let mut remaining: Vec<usize> =
            self.graph.node_ids().map(|id| self.graph.forward_parents(id).count()).collect();
        let mut ready: Vec<NodeId> = self.graph.node_ids().filter(|id| remaining.get(id.index()) == Some(&0)).collect();
        ready.reverse();
        let mut order = Vec::with_capacity(remaining.len());
        while let Some(id) = ready.pop() {
            order.push(id);
            for &child in self.node(id).children.iter().rev() {
                if self.graph.is_back_edge(id, child) {
                    continue;
                }
                if let Some(count) = remaining.get_mut(child.index()) {
                    *count -= 1;
                    if *count == 0 {
                        ready.push(child);
                    }
                }
            }
        }
        order
    }

    pub(super) fn check_tests(&mut self) {
        for item in &self.ast.items {
            let ast::Item::Test(test) = item else { continue };
            let Some(request) = test.requests.first() else {
                self.report(
                    Diagnostic::error(
                        Code::InvalidTest,
                        format!("test `{}` sends no request", test.name.name),
                        test.name.span,
                        "no `request`",
                    )
                    .with_help("add `request POST \"/path\" { body = ...; }`"),
                );
                continue;
            };
            for extra in test.requests.iter().skip(1) {
                self.report(
                    Diagnostic::error(
                        Code::InvalidTest,
                        format!("test `{}` sends more than one request", test.name.name),
                        extra.span,
                        "second request",
                    )
                    .with_help("write one test per request"),
                );
            }
            let method =
                request.method.as_ref().map_or("POST".to_string(), |m| m.name.to_ascii_uppercase().into_string());
            if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].contains(&method.as_str()) {
                let span = request.method.as_ref().map_or(request.span, |m| m.span);
                self.report(
                    Diagnostic::error(Code::InvalidTest, format!("unknown HTTP method `{method}`"), span, "here")
                        .with_help("one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS"),
                );
            }
            if !request.path.value.starts_with('/') {
                self.report(
                    Diagnostic::error(Code::InvalidTest, "a request path starts with `/`", request.path.span, "here")
                        .with_help(format!("write \"/{}\"", request.path.value)),
                );
            }
            let options = request.options.iter().collect::<Vec<_>>();
            let mut body = None;
            let mut headers = Vec::new();
            let mut event_id = None;
            for opt in options {
                match (opt.key.name.as_str(), &opt.value) {
                    ("body", Some(ast::OptValue::Expr(expr))) => {
                        let (value, ty) = self.expr(expr, Scope::Constant);
                        self.check_entry_body(&ty, expr.span, Code::InvalidTest, "this test's body");
                        body = Some(value);
                    }
                    ("headers", Some(ast::OptValue::Expr(expr))) => headers = self.string_map(expr),
                    ("event_id", _) => event_id = self.string(opt),
                    (key, _) => {
                        let help = did_you_mean(key, REQUEST_OPTIONS.iter().copied())
                            .unwrap_or_else(|| "a request takes body, headers and event_id".to_string());
                        self.report(
                            Diagnostic::error(
                                Code::UnknownSetting,
                                format!("unknown request option `{key}`"),
                                opt.key.span,
                                "not recognised",
                            )
                            .with_help(help),
                        );
                    }
                }
            }
            let mut expects = Vec::new();
            for expect in &test.expects {
                let (expr, ty) = self.expr(expect, Scope::Test);
                self.expect_bool(&ty, expect.span, "an expectation");
                expects.push(expr);
            }
            if test.expects.is_empty() {
                self.report(
                    Diagnostic::error(
                        Code::InvalidTest,
                        format!("test `{}` expects nothing", test.name.name),
                        test.name.span,
                        "no `expect`",
                    )
                    .with_help("add `expect status == 200;`"),
                );
            }
            self.graph.tests.push(ir::Test {
                name: test.name.name.to_string(),
                method,
                path: request.path.value.clone(),
                headers,
                body,
                event_id,
                expects,
            });
        }
    }

    /// Types and resolves an expression. Errors are reported; the result is then `json` so that
    /// one mistake gives one diagnostic.
    pub(super) fn expr(&mut self, expr: &ast::Expr, scope: Scope<'_>) -> (ir::Expr, Type) {
        match &expr.kind {
            ExprKind::Null => (ir::Expr::Null, Type::Null),
            ExprKind::Bool(b) => (ir::Expr::Bool(*b), Type::Bool),
            ExprKind::Int(n) => (ir::Expr::Int(*n), Type::Int),
            ExprKind::Float(f) => (ir::Expr::Float(*f), Type::Float),
            ExprKind::Str(s) => (ir::Expr::Str(s.clone()), Type::Str),
            ExprKind::Name(name) => self.name_expr(name, scope),
            ExprKind::Field(base, field) => self.field_expr(base, field, scope),
            ExprKind::Index(base, index) => {
                let (base_expr, base_ty) = self.expr(base, scope);
                let (index_expr, index_ty) = self.expr(index, scope);
                let ty = match (strip_optional(&base_ty), &index_ty) {
                    (Type::Array(element), Type::Int | Type::Json) => (**element).clone(),
                    (Type::Json, _) | (Type::Object | Type::Shape(_), Type::Str | Type::Json) => Type::Json,
                    (base_ty, index_ty) => {
                        self.expr_error(
                            expr.span,
                            format!("cannot index `{}` with `{}`", self.type_name(base_ty), self.type_name(index_ty)),
                            "index arrays with an `int` (`body.items[0]`) and objects with a `str` (`body[\"key\"]`)",
                        );
                        Type::Json
                    }
                };
                (ir::Expr::Index(Box::new(base_expr), Box::new(index_expr)), ty)
            }
            ExprKind::Unary(op, operand) => {
                let (inner, ty) = self.expr(operand, scope);
                let result = match (op, &ty) {
                    (UnaryOp::Not, Type::Bool | Type::Json) => Type::Bool,
                    (UnaryOp::Neg, Type::Int | Type::Float | Type::Json) => ty.clone(),
                    (op, ty) => {
                        let symbol = if *op == UnaryOp::Not { "!" } else { "-" };
                        self.expr_error(
                            expr.span,
                            format!("cannot apply `{symbol}` to `{}`", self.type_name(ty)),
                            "`!` takes a `bool`, `-` an `int` or `float`",
                        );
                        Type::Json
                    }
                };
                (ir::Expr::Unary(*op, Box::new(inner)), result)
            }
            ExprKind::Binary(op, left, right) => {
                let (left_expr, left_ty) = self.expr(left, scope);
                let (right_expr, right_ty) = self.expr(right, scope);
                let ty = self.binary_type(*op, &left_ty, &right_ty, expr.span);
                (ir::Expr::Binary(*op, Box::new(left_expr), Box::new(right_expr)), ty)
            }
            ExprKind::Object(entries) => {
                let mut out: Vec<(ir::Name, ir::Expr)> = Vec::with_capacity(entries.len());
                let mut shape: Vec<(ir::Name, Type)> = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    if out.iter().any(|(k, _)| *k == key.value) {
                        self.report(
                            Diagnostic::error(
                                Code::DuplicateSetting,
                                format!("key `{}` appears twice in this object", key.value),
                                key.span,
                                "again here",
                            )
                            .with_help("an object's keys are distinct: remove or rename one"),
                        );
                    }
                    let (expr, ty) = self.expr(value, scope);
                    out.push((key.value.as_str().into(), expr));
                    shape.push((key.value.as_str().into(), ty));
                }
                (ir::Expr::Object(out), Type::Shape(shape.into()))
            }
            ExprKind::Array(items) => {
                let typed: Vec<(ir::Expr, Type)> = items.iter().map(|item| self.expr(item, scope)).collect();
                let element = match typed.first() {
                    Some((_, first)) if typed.iter().all(|(_, ty)| ty == first) => first.clone(),
                    _ => Type::Json,
                };
                (ir::Expr::Array(typed.into_iter().map(|(e, _)| e).collect()), Type::Array(Box::new(element)))
            }
            ExprKind::Call(call) => self.call_expr(call, scope),
        }
    }

    fn name_expr(&mut self, name: &ast::Ident, scope: Scope<'_>) -> (ir::Expr, Type) {
        match (name.name.as_str(), scope) {
            ("body", Scope::Step(body)) => (ir::Expr::Body, body.clone()),
            ("body", Scope::Test) => (ir::Expr::Body, Type::Json),
            ("status", Scope::Test) => (ir::Expr::Status, Type::Int),
            ("headers", Scope::Test) => (ir::Expr::Headers, Type::Object),
            ("chunks", Scope::Test) => (ir::Expr::Chunks, Type::Json),
            (other, _) => {
                let names: &[&str] = match scope {
                    Scope::Step(_) => &["body", "param", "event"],
                    Scope::Constant => &["param"],
                    Scope::Test => &["status", "headers", "body", "chunks"],
                };
                let help = if ["param", "event"].contains(&other) {
                    format!("write `{other}.<name>`")
                } else {
                    did_you_mean(other, names.iter().copied())
                        .unwrap_or_else(|| format!("this expression may use: {}", names.join(", ")))
                };
                self.report(
                    Diagnostic::error(
                        Code::ExprType,
                        format!("unknown name `{other}` in this expression"),
                        name.span,
                        "not defined here",
                    )
                    .with_help(help),
                );
                (ir::Expr::Null, Type::Json)
            }
        }
    }

    fn field_expr(&mut self, base: &ast::Expr, field: &ast::Ident, scope: Scope<'_>) -> (ir::Expr, Type) {
        if let ExprKind::Name(root) = &base.kind {
            if root.name == "param" {
                let found = self.graph.params.iter().find(|p| p.name == field.name).map(|p| p.ty.clone());
                return match found {
                    Some(ty) => {
                        if let Some(declared) = self.declaration(super::Declared::Param, &field.name) {
                            self.refer(field.span, declared);
                        }
                        (ir::Expr::Param(field.name.as_str().into()), ty)
                    }
                    None => {
                        let help = did_you_mean(&field.name, self.graph.params.iter().map(|p| p.name.as_str()))
                            .unwrap_or_else(|| format!("declare it with `param {}: <type> = <default>;`", field.name));
                        self.report(
                            Diagnostic::error(
                                Code::UnknownParam,
                                format!("unknown parameter `{}`", field.name),
                                field.span,
                                "not declared",
                            )
                            .with_help(help),
                        );
                        (ir::Expr::Null, Type::Json)
                    }
                };
            }
            if root.name == "event" && matches!(scope, Scope::Step(_)) {
                let Some(known) = ir::EventField::named(&field.name) else {
                    let help = did_you_mean(&field.name, EVENT_FIELDS.iter().copied())
                        .unwrap_or_else(|| format!("event fields: {}", EVENT_FIELDS.join(", ")));
                    self.report(
                        Diagnostic::error(
                            Code::ExprType,
                            format!("the event has no field `{}`", field.name),
                            field.span,
                            "unknown field",
                        )
                        .with_help(help),
                    );
                    return (ir::Expr::Null, Type::Json);
                };
                // `event.time` is seconds since the epoch, as the runtime gives it; the others are text.
                let ty = if known == ir::EventField::Time { Type::Float } else { Type::Str };
                return (ir::Expr::EventField(known), ty);
            }
        }
        let (base_expr, base_ty) = self.expr(base, scope);
        let ty = match strip_optional(&base_ty) {
            Type::Json | Type::Object => Type::Json,
            Type::Shape(fields) => match fields.iter().find(|(n, _)| *n == field.name) {
                Some((_, ty)) => ty.clone(),
                None => {
                    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
                    let help = did_you_mean(&field.name, names.iter().copied())
                        .unwrap_or_else(|| format!("its fields are: {}", names.join(", ")));
                    self.report(
                        Diagnostic::error(
                            Code::ExprType,
                            format!("the body has no field `{}`", field.name),
                            field.span,
                            format!("the body here is `{}`", self.type_name(&base_ty)),
                        )
                        .with_help(help),
                    );
                    Type::Json
                }
            },
            Type::Record(record) => match self.record_fields(*record).iter().find(|(n, _)| *n == field.name) {
                Some((_, ty)) => ty.clone(),
                None => {
                    let help = did_you_mean(&field.name, self.record_fields(*record).iter().map(|(n, _)| n.as_str()));
                    let name = self.type_name(&base_ty);
                    self.report(
                        Diagnostic::error(
                            Code::ExprType,
                            format!("record `{name}` has no field `{}`", field.name),
                            field.span,
                            "unknown field",
                        )
                        .with_optional_help(help),
                    );
                    Type::Json
                }
            },
            other => {
                self.expr_error(
                    field.span,
                    format!("`{}` has no fields", self.type_name(other)),
                    "only objects and records have fields; remove `.field`, or check the step before",
                );
                Type::Json
            }
        };
        (ir::Expr::Field(Box::new(base_expr), field.name.clone()), ty)
    }

    fn call_expr(&mut self, call: &ast::Call, scope: Scope<'_>) -> (ir::Expr, Type) {
        if call.name.name != "len" {
            let help =
                did_you_mean(&call.name.name, ["len"]).unwrap_or_else(|| "expressions may call `len(x)`".to_string());
            self.report(
                Diagnostic::error(
                    Code::UnknownBuiltin,
                    format!("unknown function `{}`", call.name.name),
                    call.name.span,
                    "not a built-in function",
                )
                .with_help(help),
            );
            return (ir::Expr::Null, Type::Json);
        }
        let [arg] = call.args.as_slice() else {
            self.expr_error(call.span, "`len` takes one argument".to_string(), "write `len(body.items)`");
            return (ir::Expr::Null, Type::Int);
        };
        let (inner, ty) = self.expr(&arg.value, scope);
        if !matches!(strip_optional(&ty), Type::Str | Type::Array(_) | Type::Json | Type::Object | Type::Shape(_)) {
            self.expr_error(
                arg.value.span,
                format!("`len` takes a string, array or object, not `{}`", self.type_name(&ty)),
                "give `len` a string, array or object",
            );
        }
        (ir::Expr::Len(Box::new(inner)), Type::Int)
    }

    fn binary_type(&mut self, op: BinaryOp, left: &Type, right: &Type, span: Span) -> Type {
        use Type::{Bool, Float, Int, Json, Str};
        let numeric = |t: &Type| matches!(t, Int | Float);
        let result = match op {
            BinaryOp::Or | BinaryOp::And => {
                matches!(left, Bool | Json).then_some(Bool).filter(|_| matches!(right, Bool | Json))
            }
            BinaryOp::Eq | BinaryOp::Ne => comparable(left, right).then_some(Bool),
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                let ok = (numeric(left) && numeric(right))
                    || (left == &Str && right == &Str)
                    || left == &Json
                    || right == &Json;
                ok.then_some(Bool)
            }
            BinaryOp::Add if left == &Str && right == &Str => Some(Str),
            _ => match (left, right) {
                (Json, Json | Int | Float) | (Int | Float, Json) => Some(Json),
                (Int, Int) => Some(Int),
                (Int | Float, Int | Float) => Some(Float),
                (Str, Json) | (Json, Str) if op == BinaryOp::Add => Some(Json),
                _ => None,
            },
        };
        result.unwrap_or_else(|| {
            let message = if matches!(op, BinaryOp::Eq | BinaryOp::Ne) {
                format!(
                    "comparing `{}` with `{}` is always {}",
                    self.type_name(left),
                    self.type_name(right),
                    if op == BinaryOp::Eq { "false" } else { "true" }
                )
            } else {
                format!("cannot apply `{}` to `{}` and `{}`", op.symbol(), self.type_name(left), self.type_name(right))
            };
            self.expr_error(
                span,
                message,
                "operands must agree: numbers with numbers, strings with `+` and `==`, bools with `&&` and `||`",
            );
            Json
        })
    }
}

fn strip_optional(ty: &Type) -> &Type {
    match ty {
        Type::Optional(inner) => inner,
        other => other,
    }
}

/// How many times a graph with loops is typed at most before its types settle; each pass can
/// only forget fields, so real graphs settle in two or three.
const MAX_LOOP_PASSES: usize = 8;

/// What a step after a join receives: the type every parent sends, field by field for known
/// objects (a field only some parents send is not known to be there).
fn join(a: &Type, b: &Type) -> Type {
    match (a, b) {
        _ if a == b => a.clone(),
        (Type::Shape(left), Type::Shape(right)) => Type::Shape(
            left.iter()
                .filter_map(|(name, ty)| {
                    right
                        .iter()
                        .find(|(other, _)| other == name)
                        .map(|(_, other)| (name.clone(), if ty == other { ty.clone() } else { Type::Json }))
                })
                .collect(),
        ),
        (Type::Shape(_) | Type::Object | Type::Record(_), Type::Shape(_) | Type::Object | Type::Record(_)) => {
            Type::Object
        }
        _ => Type::Json,
    }
}

fn comparable(left: &Type, right: &Type) -> bool {
    let (left, right) = (strip_optional(left), strip_optional(right));
    matches!(left, Type::Json | Type::Null)
        || matches!(right, Type::Json | Type::Null)
        || assignable(left, right)
        || assignable(right, left)
}

/// Whether a value of type `from` may flow where `to` is expected. `json` defers the check to
/// run time; an int widens to a float.
pub(super) fn assignable(from: &Type, to: &Type) -> bool {
    match (from, to) {
        (Type::Json, _) | (_, Type::Json) => true,
        (Type::Object, Type::Record(_)) | (Type::Record(_), Type::Object) => true,
        // A known object fits an unknown one, and a record (whose fields are checked when the
        // body is read as the record); another known object when it has every field.
        (Type::Shape(_), Type::Object | Type::Record(_)) | (Type::Object, Type::Shape(_)) => true,
        (Type::Shape(from), Type::Shape(to)) => {
            to.iter().all(|(name, ty)| from.iter().any(|(other, other_ty)| other == name && assignable(other_ty, ty)))
        }
        (Type::Int, Type::Float) => true,
        (Type::Null, Type::Optional(_)) => true,
        (Type::Optional(a), Type::Optional(b)) => assignable(a, b),
        (from, Type::Optional(inner)) => assignable(from, inner),
        (Type::Array(a), Type::Array(b)) => assignable(a, b),
        (a, b) => a == b,
    }
}
