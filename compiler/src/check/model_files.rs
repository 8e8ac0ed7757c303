//! The files a graph's models load, checked where the caller finds them (the core does no IO:
//! the CLI, build.rs and the language server answer [`ModelFiles`] from the graph's folder). A
//! missing file is `graphc::model_not_found`; an ONNX model's file is read, and what the runtime
//! could not serve (an operator tract does not run, a signature that is not tensors of rows) or
//! what the graph would send it that it does not take is reported at the route, before anything
//! is built (docs/semantics.md, "ONNX routes").

use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{self, Expr, ModelSource, NodeKind, Type};
use crate::onnx::{Port, Signature};
use crate::source::Span;
use std::collections::HashMap;

/// Where a model file was looked for, and why it could not be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// The path as resolved, which the diagnostic shows.
    pub resolved: String,
    /// Why: "does not exist", or the read's error.
    pub reason: String,
}

/// The folder a graph's model files are in, as the caller reads it.
pub trait ModelFiles {
    /// Whether the file at `model_path` (relative to the graph's file) is there.
    fn exists(&self, model_path: &str) -> Result<(), Missing>;
    /// The file's bytes.
    fn read(&self, model_path: &str) -> Result<Vec<u8>, Missing>;
}

/// One model a graph loads: a shared model's declaration or a route's own.
struct Loaded<'g> {
    owner: String,
    model: &'g ir::Model,
    path: &'g ir::ModelPath,
}

/// Checks every model file the checked `graph` names: there, and for an ONNX model, one the
/// runtime serves and that takes what the graph sends it.
pub fn check_model_files(graph: &ir::Graph, files: &dyn ModelFiles) -> Vec<Diagnostic> {
    // A shared model's file is looked for once, at its declaration, not at each route naming it.
    let shared = graph.shared_models.iter().map(|shared| (format!("model `{}`", shared.name), &shared.model));
    let routes = graph.nodes.iter().filter_map(|node| match &node.kind {
        NodeKind::Router(router) => Some(router.routes.iter()),
        _ => None,
    });
    let own = routes.flatten().filter_map(|route| match &route.kind {
        ir::RouteKind::Model(model) if model.shared.is_none() => Some((format!("route `{}`", route.name), model)),
        _ => None,
    });
    let loaded = shared.chain(own).filter_map(|(owner, model)| {
        let path = model.model_path.as_ref().filter(|path| !path.path.is_empty())?;
        Some(Loaded { owner, model, path })
    });
    let mut diagnostics = Vec::new();
    let mut signatures: HashMap<&str, Signature> = HashMap::new();
    for Loaded { owner, model, path } in loaded {
        let found = match model.source {
            ModelSource::Onnx => files.read(&path.path).map(Some),
            _ => files.exists(&path.path).map(|()| None),
        };
        match found {
            Err(Missing { resolved, reason }) => diagnostics.push(
                Diagnostic::error(
                    Code::ModelNotFound,
                    format!("model file `{}` of {owner} {reason}", path.path),
                    path.span,
                    format!("looked for {resolved}"),
                )
                .with_help(
                    "model_path is relative to the graph's file; train and save the model there, or fix the path",
                ),
            ),
            Ok(None) => {}
            Ok(Some(bytes)) => match Signature::read(&bytes) {
                Err(error) => diagnostics.push(
                    Diagnostic::error(
                        Code::OnnxUnreadable,
                        format!("model file `{}` of {owner}: {error}", path.path),
                        path.span,
                        "`kind = onnx` reads an ONNX model file",
                    )
                    .with_help("export the model to ONNX (skl2onnx, onnxmltools, torch.onnx.export), or give its kind"),
                ),
                Ok(signature) => {
                    let before = diagnostics.len();
                    diagnostics.extend(unservable(&owner, path, &signature));
                    // A file graphc cannot serve has nothing more worth saying about it.
                    if diagnostics.len() == before {
                        signatures.insert(&path.path, signature);
                    }
                }
            },
        }
    }
    diagnostics.extend(fed_what_it_does_not_take(graph, &signatures));
    diagnostics
}

/// What in a model file the runtime could not serve: operators tract does not run, inputs that
/// are not numbers, values that are not tensors of rows.
fn unservable(owner: &str, path: &ir::ModelPath, signature: &Signature) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let unsupported = signature.unsupported();
    if !unsupported.is_empty() {
        let names: Vec<String> = unsupported
            .iter()
            .map(|op| match op.domain.as_str() {
                "" | "ai.onnx" => format!("`{}`", op.op_type),
                domain => format!("`{}` ({domain})", op.op_type),
            })
            .collect();
        let some = if names.len() == 1 { "an operator" } else { "operators" };
        diagnostics.push(
            Diagnostic::error(
                Code::OnnxOperator,
                format!("model file `{}` of {owner} uses {some} graphc cannot run: {}", path.path, names.join(", ")),
                path.span,
                format!("{} not run by tract", names.join(", ")),
            )
            .with_help(
                "export the model with operators tract runs (docs/language.md, \"ONNX models\", lists them), or serve it from a model type of yours",
            ),
        );
    }
    let problem = |what: String| {
        Diagnostic::error(
            Code::OnnxSignature,
            format!("model file `{}` of {owner}: {what}", path.path),
            path.span,
            "graphc serves tensors of rows",
        )
        .with_help("a model route takes and gives tensors whose first dimension is the rows and whose other dimensions are fixed; inputs are numbers")
    };
    for (role, value) in
        signature.inputs.iter().map(|v| ("input", v)).chain(signature.outputs.iter().map(|v| ("output", v)))
    {
        match &value.port {
            Port::Other => {
                diagnostics.push(problem(format!("{role} `{}` is a sequence or a map, not a tensor", value.name)))
            }
            Port::Tensor { element, .. } if role == "input" && !element.is_number() => {
                diagnostics.push(problem(format!("input `{}` is {}, not numbers", value.name, element.datatype())))
            }
            Port::Tensor { shape: Some(shape), .. } if shape.is_empty() => {
                diagnostics.push(problem(format!("{role} `{}` is a scalar, with no rows", value.name)))
            }
            Port::Tensor { shape: None, .. } if role == "input" => {
                diagnostics.push(problem(format!("input `{}` declares no shape", value.name)))
            }
            Port::Tensor { shape: Some(_), .. } if role == "input" && value.width().is_none() => {
                diagnostics.push(problem(format!("input {value} varies in a dimension after the rows")))
            }
            Port::Tensor { .. } => {}
        }
    }
    if signature.inputs.is_empty() {
        diagnostics.push(problem("the model takes no input".to_string()));
    }
    diagnostics
}

/// Each ONNX route against what its router receives: the body's type where the checker knows
/// it, and the rows a preceding `map` writes where it writes them literally.
fn fed_what_it_does_not_take(graph: &ir::Graph, signatures: &HashMap<&str, Signature>) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for node in &graph.nodes {
        let NodeKind::Router(router) = &node.kind else { continue };
        for route in &router.routes {
            let ir::RouteKind::Model(model) = &route.kind else { continue };
            if model.source != ModelSource::Onnx {
                continue;
            }
            let Some(path) = &model.model_path else { continue };
            let Some(signature) = signatures.get(path.path.as_str()) else { continue };
            let mismatch = |message: String, span: Span, label: String| {
                Diagnostic::error(Code::ModelInputMismatch, message, span, label)
                    .with_label(path.span, format!("takes {}", signature.describe_inputs()))
                    .with_help(format!(
                        "send {{\"inputs\": [[...], ...]}} with rows of {} numbers, or OIP tensors named as the model's inputs",
                        signature.width().unwrap_or(0)
                    ))
            };
            if let Some(problem) = body_problem(graph, &node.input) {
                diagnostics.push(mismatch(
                    format!("route `{}` serves an ONNX model, but its router receives {problem}", route.name),
                    node.span,
                    "receives it here".to_string(),
                ));
                continue;
            }
            let (Some(width), [parent]) = (signature.width(), node.parents.as_slice()) else { continue };
            let Some(parent) = graph.nodes.get(parent.0 as usize) else { continue };
            if let NodeKind::Map(body) = &parent.kind
                && let Some(wrong) = literal_rows(body).into_iter().find(|&columns| columns as u64 != width)
            {
                diagnostics.push(mismatch(
                    format!(
                        "step `{}` sends route `{}` rows of {wrong} values, but its model takes {width}",
                        parent.name, route.name
                    ),
                    parent.impl_span,
                    format!("a row of {wrong} values"),
                ));
            }
        }
    }
    diagnostics
}

/// Why a body of type `ty` is no inference request, when the checker knows it is not: not an
/// object, an object without `inputs`, or `inputs` that are not rows of numbers or tensors.
fn body_problem(graph: &ir::Graph, ty: &Type) -> Option<String> {
    let inputs = match ty {
        Type::Json | Type::Object => return None,
        Type::Shape(fields) => fields.iter().find(|(name, _)| name == "inputs").map(|(_, ty)| ty),
        Type::Record(id) => graph
            .records
            .get(id.0 as usize)
            .and_then(|record| record.fields.iter().find(|(name, _)| name == "inputs").map(|(_, ty)| ty)),
        other => return Some(format!("{}, not an inference request", describe(graph, other))),
    };
    let Some(inputs) = inputs else {
        return Some(format!("{}, which has no `inputs`", describe(graph, ty)));
    };
    let number = |ty: &Type| matches!(ty, Type::Int | Type::Float | Type::Bool | Type::Json);
    let fits = match inputs {
        Type::Json => true,
        Type::Array(item) => match &**item {
            Type::Array(value) => number(value),
            Type::Json | Type::Object | Type::Shape(_) | Type::Record(_) => true,
            value => number(value),
        },
        _ => false,
    };
    (!fits).then(|| format!("`inputs` of type {}, not rows of numbers", describe(graph, inputs)))
}

/// A type as the language writes it.
fn describe(graph: &ir::Graph, ty: &Type) -> String {
    match ty {
        Type::Json => "json".into(),
        Type::Object | Type::Shape(_) => "an object".into(),
        Type::Null => "null".into(),
        Type::Bool => "bool".into(),
        Type::Int => "int".into(),
        Type::Float => "float".into(),
        Type::Str => "str".into(),
        Type::Array(item) => format!("[{}]", describe(graph, item)),
        Type::Optional(item) => format!("{}?", describe(graph, item)),
        Type::Record(id) => graph.records.get(id.0 as usize).map_or_else(|| "a record".into(), |r| r.name.clone()),
    }
}

/// The widths of the rows a `map` writes as literals: `map({inputs: [[a, b], [c, d]]})`.
fn literal_rows(body: &Expr) -> Vec<usize> {
    let Expr::Object(fields) = body else { return Vec::new() };
    let Some((_, Expr::Array(rows))) = fields.iter().find(|(name, _)| name == "inputs") else { return Vec::new() };
    rows.iter()
        .filter_map(|row| match row {
            Expr::Array(values) => Some(values.len()),
            _ => None,
        })
        .collect()
}
