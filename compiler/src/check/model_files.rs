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
            Port::Tensor { element: element @ crate::onnx::Element::Other(_), .. } => diagnostics.push(problem(
                format!("{role} `{}` is of {}, which graphc does not serve", value.name, element.datatype()),
            )),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::*;
    use prost::Message;

    /// A tensor value of `elem_type` with dimensions (`None`: a named size that varies).
    fn tensor(name: &str, elem_type: i32, dims: &[Option<i64>]) -> ValueInfoProto {
        let dim = dims
            .iter()
            .map(|d| match d {
                Some(size) => Dimension { dim_value: Some(*size), dim_param: None },
                None => Dimension { dim_value: None, dim_param: Some("N".into()) },
            })
            .collect();
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                tensor_type: Some(TensorTypeProto { elem_type, shape: Some(TensorShapeProto { dim }) }),
                ..Default::default()
            }),
        }
    }

    fn node(op_type: &str, domain: &str) -> NodeProto {
        NodeProto { op_type: op_type.into(), domain: domain.into(), ..Default::default() }
    }

    /// A model file of these operators, inputs and outputs.
    fn file(nodes: Vec<NodeProto>, input: Vec<ValueInfoProto>, output: Vec<ValueInfoProto>) -> Vec<u8> {
        ModelProto {
            ir_version: 8,
            producer_name: "test".into(),
            graph: Some(GraphProto { node: nodes, input, output, ..Default::default() }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn classifier() -> Vec<u8> {
        file(
            vec![node("TreeEnsembleClassifier", "ai.onnx.ml")],
            vec![tensor("features", 1, &[None, Some(4)])],
            vec![tensor("label", 7, &[None]), tensor("probabilities", 1, &[None, Some(3)])],
        )
    }

    /// A folder of files by path.
    struct Files(Vec<(&'static str, Vec<u8>)>);

    impl ModelFiles for Files {
        fn exists(&self, model_path: &str) -> Result<(), Missing> {
            self.read(model_path).map(|_| ())
        }
        fn read(&self, model_path: &str) -> Result<Vec<u8>, Missing> {
            self.0
                .iter()
                .find(|(path, _)| *path == model_path)
                .map(|(_, bytes)| bytes.clone())
                .ok_or_else(|| Missing { resolved: format!("/graphs/{model_path}"), reason: "does not exist".into() })
        }
    }

    fn codes(graph: &str, files: Files) -> Vec<(Code, String)> {
        match crate::check_source(graph) {
            Ok(checked) => check_model_files(&checked.graph, &files).into_iter().map(|d| (d.code, d.message)).collect(),
            Err(diagnostics) => diagnostics.into_iter().map(|d| (d.code, d.message)).collect(),
        }
    }

    /// The one diagnostic's message, which must be of `code`.
    fn only(found: &[(Code, String)], code: Code) -> &str {
        assert!(matches!(found, [(found, _)] if *found == code), "{found:?}");
        found.first().map_or("", |(_, message)| message.as_str())
    }

    fn router(route: &str) -> String {
        format!("graph g {{ topology = router; router r = model {{ {route} }} }}")
    }

    #[test]
    fn a_signature_is_read_from_the_file() {
        let signature = Signature::read(&classifier());
        assert!(signature.is_ok(), "{signature:?}");
        let Ok(signature) = signature else { return };
        assert_eq!(signature.describe_inputs(), "`features` (FP32 [-1, 4])");
        assert_eq!(signature.width(), Some(4));
        let probabilities = signature.outputs.get(1).map(ToString::to_string);
        assert_eq!(probabilities.as_deref(), Some("`probabilities` (FP32 [-1, 3])"));
        assert!(signature.unsupported().is_empty());
        assert_eq!(signature.producer.as_deref(), Some("test"));
    }

    #[test]
    fn the_operator_table_is_sorted_for_its_search() {
        assert!(crate::onnx::OPERATORS.iter().zip(crate::onnx::OPERATORS.iter().skip(1)).all(|(a, b)| a < b));
    }

    #[test]
    fn a_file_that_is_not_onnx_is_said_so() {
        assert!(Signature::read(b"{\"kind\": \"logistic_regression\"}").is_err());
        let found = codes(
            &router("route m = model(kind = onnx, model_path = \"m.onnx\");"),
            Files(vec![("m.onnx", b"not a model".to_vec())]),
        );
        assert!(matches!(found.as_slice(), [(Code::OnnxUnreadable, _)]), "{found:?}");
    }

    #[test]
    fn a_servable_model_fed_rows_of_its_width_passes() {
        let graph = "graph g { router r = model { route m = model(kind = onnx, model_path = \"m.onnx\"); } }";
        assert_eq!(codes(graph, Files(vec![("m.onnx", classifier())])), []);
    }

    #[test]
    fn operators_tract_does_not_run_are_named() {
        let bytes = file(
            vec![node("TreeEnsembleRegressor", "ai.onnx.ml"), node("Add", ""), node("NoSuchOp", "")],
            vec![tensor("x", 1, &[None, Some(2)])],
            vec![tensor("y", 1, &[None, Some(1)])],
        );
        let found =
            codes(&router("route m = model(kind = onnx, model_path = \"m.onnx\");"), Files(vec![("m.onnx", bytes)]));
        let message = only(&found, Code::OnnxOperator);
        assert!(
            message.ends_with("uses operators graphc cannot run: `TreeEnsembleRegressor` (ai.onnx.ml), `NoSuchOp`"),
            "{message}"
        );
    }

    #[test]
    fn inputs_of_text_and_values_that_are_not_tensors_of_rows_are_refused() {
        let text = file(vec![], vec![tensor("words", 8, &[None, Some(1)])], vec![tensor("y", 7, &[None])]);
        let varying = file(vec![], vec![tensor("image", 1, &[None, None])], vec![tensor("y", 7, &[None])]);
        let mut sequence = tensor("probabilities", 1, &[]);
        sequence.r#type = Some(TypeProto { sequence_type: Some(Nothing {}), ..Default::default() });
        let sequence = file(vec![], vec![tensor("x", 1, &[None, Some(2)])], vec![sequence]);
        for (bytes, expected) in [
            (text, "input `words` is BYTES, not numbers"),
            (varying, "input `image` (FP32 [-1, -1]) varies in a dimension after the rows"),
            (sequence, "output `probabilities` is a sequence or a map, not a tensor"),
        ] {
            let found = codes(
                &router("route m = model(kind = onnx, model_path = \"m.onnx\");"),
                Files(vec![("m.onnx", bytes)]),
            );
            let message = only(&found, Code::OnnxSignature);
            assert!(message.ends_with(expected), "{message}");
        }
    }

    #[test]
    fn a_zip_map_is_read_as_the_probabilities_it_wraps() {
        let mut zip_map = node("ZipMap", "ai.onnx.ml");
        zip_map.output = vec!["output_probability".into()];
        zip_map.attribute =
            vec![AttributeProto { name: "classlabels_int64s".into(), ints: vec![0, 1, 2], ..Default::default() }];
        let mut sequence = tensor("output_probability", 1, &[]);
        sequence.r#type = Some(TypeProto { sequence_type: Some(Nothing {}), ..Default::default() });
        let bytes = file(
            vec![node("LinearClassifier", "ai.onnx.ml"), zip_map],
            vec![tensor("x", 1, &[None, Some(4)])],
            vec![sequence],
        );
        let signature = Signature::read(&bytes).ok();
        let probabilities = signature.as_ref().and_then(|s| s.outputs.first()).map(ToString::to_string);
        assert_eq!(probabilities.as_deref(), Some("`output_probability` (FP32 [-1, 3])"));
        assert!(signature.is_some_and(|s| s.unsupported().is_empty()));
    }

    #[test]
    fn a_body_that_is_no_inference_request_is_refused_at_the_route() {
        let graph = "graph g {
            topology = flow;
            record Order { id: str, amount: float }
            step parse: json -> Order = fn h::parse;
            router r = model { route m = model(kind = onnx, model_path = \"m.onnx\"); }
            step done = map(body) { respond; }
            parse -> r -> done;
        }";
        let found = codes(graph, Files(vec![("m.onnx", classifier())]));
        let message = only(&found, Code::ModelInputMismatch);
        assert_eq!(message, "route `m` serves an ONNX model, but its router receives Order, which has no `inputs`");
    }

    #[test]
    fn literal_rows_of_the_wrong_width_are_refused_at_the_step_that_writes_them() {
        let graph = "graph g {
            topology = flow;
            step rows = map({ inputs: [[body.a, body.b, body.c]] });
            router r = model { route m = model(kind = onnx, model_path = \"m.onnx\"); }
            step done = map(body) { respond; }
            rows -> r -> done;
        }";
        let found = codes(graph, Files(vec![("m.onnx", classifier())]));
        let message = only(&found, Code::ModelInputMismatch);
        assert_eq!(message, "step `rows` sends route `m` rows of 3 values, but its model takes 4");
        let right = graph.replace("body.c]", "body.c, body.d]");
        assert_eq!(codes(&right, Files(vec![("m.onnx", classifier())])), []);
    }

    #[test]
    fn a_shared_onnx_model_is_read_once_and_checked_at_each_route() {
        let graph = "graph g {
            topology = flow;
            model shared = model(kind = onnx, model_path = \"m.onnx\");
            step rows = map({ inputs: [[1.0, 2.0]] });
            router r = model { route a = shared; }
            step done = map(body) { respond; }
            rows -> r -> done;
        }";
        let found = codes(graph, Files(vec![("m.onnx", classifier())]));
        assert!(matches!(found.as_slice(), [(Code::ModelInputMismatch, _)]), "{found:?}");
        let missing = codes(graph, Files(vec![]));
        assert!(
            matches!(missing.as_slice(), [(Code::ModelNotFound, m)] if m.contains("of model `shared`")),
            "{missing:?}"
        );
    }
}
