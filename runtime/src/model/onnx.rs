//! ONNX models as served models (the `onnx` feature): a model file exported from scikit-learn,
//! XGBoost or PyTorch, run by tract (pure Rust), behind the same [`Model`] hooks as smartcore's
//! and a user's models, so that batching, instances, deadlines and every door apply to it.
//!
//! The file says what the model takes and gives; the route serves exactly that. Each input's
//! first dimension is the rows and the rest is fixed, so a request's rows are read side by side
//! into one row of features (the inputs' widths in the file's order) and split back into one
//! tensor per input. Each output's first dimension is the rows too: a row's answer is the
//! output's row, or, for a model of several outputs (a classifier's label and probabilities),
//! an object of them by name. scikit-learn's `ZipMap` (probabilities as a list of maps, which
//! tract cannot hold) is served as the tensor it wraps, `[rows, classes]`, under its own name.
//! `graphc check` reads the same file and refuses, at `model_path`, what this module would fail
//! to load (docs/semantics.md, "ONNX routes").

use super::{Features, LoadModel, Model, TensorSpec};
use crate::error::StepError;
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::Arc;
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::prelude::*;

/// A loaded ONNX model: tract's optimised plan and the signature read from the file.
pub struct OnnxModel {
    plan: Arc<TypedSimplePlan>,
    /// Run states kept between calls: a state holds the buffers of every step of the plan, and
    /// making one per call cost more than a small model's run. One per call at once, at most as
    /// many as ran together.
    states: std::sync::Mutex<Vec<TypedSimpleState>>,
    /// A file that is one tree ensemble classifier, evaluated by graphc (`super::trees`) rather
    /// than by the plan, which is still built: a file loads, or is refused, as tract reads it.
    forest: Option<NativeForest>,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
}

/// A tree ensemble classifier and what each of the model's outputs is of it.
struct NativeForest {
    forest: super::trees::Forest,
    outputs: Vec<ForestOutput>,
}

/// One of a tree ensemble classifier's two outputs.
#[derive(Clone, Copy, PartialEq)]
enum ForestOutput {
    Label,
    Scores,
}

/// The forest of a graph that is one `TreeEnsembleClassifier` on one input of floats, and
/// `Identity` nodes (a `ZipMap` became one) naming its outputs; else `None`.
fn native_forest(graph: &pb::GraphProto, inputs: &[Port]) -> Option<NativeForest> {
    let [input] = inputs else { return None };
    if !matches!(input.datum, DatumType::F32 | DatumType::F64) {
        return None;
    }
    let mut ensemble = None;
    let mut aliases: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for node in &graph.node {
        match node.op_type.as_str() {
            "TreeEnsembleClassifier" if ensemble.is_none() => ensemble = Some(node),
            "Identity" => {
                let (output, source) = (node.output.first()?, node.input.first()?);
                if aliases.insert(output.as_str(), source.as_str()).is_some() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    let ensemble = ensemble?;
    if ensemble.input.first() != Some(&input.name) {
        return None;
    }
    let forest = super::trees::Forest::of(ensemble)?;
    if forest.features > input.width() {
        return None;
    }
    let outputs = graph
        .output
        .iter()
        .map(|output| {
            let mut name = output.name.as_str();
            for _ in 0..=aliases.len() {
                match aliases.get(name) {
                    Some(source) => name = source,
                    None => break,
                }
            }
            match ensemble.output.iter().position(|o| o == name) {
                Some(0) => Some(ForestOutput::Label),
                Some(1) => Some(ForestOutput::Scores),
                _ => None,
            }
        })
        .collect::<Option<Vec<_>>>()?;
    Some(NativeForest { forest, outputs })
}

/// One input or output of the model, as its file declares it.
#[derive(Clone, Debug)]
struct Port {
    name: String,
    datum: DatumType,
    /// The dimensions after the rows: fixed for an input; `None` where an output's varies.
    inner: Vec<Option<usize>>,
}

/// Which side of the model a value is on: an input's dimensions must all be fixed, as a request's
/// rows are split by them; an output's are read from what the model answers.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Input,
    Output,
}

impl Port {
    /// Values per row (of an input, whose dimensions are fixed).
    fn width(&self) -> usize {
        self.fixed().product()
    }

    /// The dimensions after the rows (of an input, all fixed).
    fn fixed(&self) -> impl Iterator<Item = usize> + '_ {
        self.inner.iter().map(|dim| dim.unwrap_or(1))
    }

    fn spec(&self) -> TensorSpec {
        let inner = self.inner.iter().map(|dim| dim.and_then(|d| i64::try_from(d).ok()).unwrap_or(-1));
        TensorSpec::new(self.name.clone(), datatype(self.datum), std::iter::once(-1).chain(inner).collect())
    }
}

/// The Open Inference Protocol's name of a tensor element type (its spelling is the protocol
/// module's); text is BYTES.
fn datatype(datum: DatumType) -> &'static str {
    use crate::oip::Datatype;
    let datatype = match datum {
        DatumType::Bool => Datatype::Bool,
        DatumType::U8 => Datatype::Uint8,
        DatumType::U16 => Datatype::Uint16,
        DatumType::U32 => Datatype::Uint32,
        DatumType::U64 => Datatype::Uint64,
        DatumType::I8 => Datatype::Int8,
        DatumType::I16 => Datatype::Int16,
        DatumType::I32 => Datatype::Int32,
        DatumType::I64 => Datatype::Int64,
        DatumType::F16 => Datatype::Fp16,
        DatumType::F32 => Datatype::Fp32,
        DatumType::F64 => Datatype::Fp64,
        _ => Datatype::Bytes,
    };
    datatype.as_str()
}

/// Why a model file cannot be served: what start-up reports, naming the route.
fn refuse(reason: impl Into<String>) -> super::BoxError {
    reason.into().into()
}

impl LoadModel for OnnxModel {
    /// An ONNX route takes no arguments besides its file.
    type Args = Map<String, Value>;

    fn load(model_path: Option<&Path>, _args: Map<String, Value>) -> Result<Self, super::BoxError> {
        let path = model_path.ok_or("an ONNX model needs a model_path")?;
        let bytes = std::fs::read(path)?;
        OnnxModel::from_bytes(&bytes)
    }
}

impl OnnxModel {
    /// Reads a model from the bytes of its file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, super::BoxError> {
        OnnxModel::read(bytes, false)
    }

    /// The same model run by tract alone, even where graphc evaluates it itself: what the tests
    /// and benchmarks hold graphc's own evaluation to.
    #[doc(hidden)]
    pub fn from_bytes_with_tract_only(bytes: &[u8]) -> Result<Self, super::BoxError> {
        OnnxModel::read(bytes, true)
    }

    /// Whether graphc evaluates this model itself rather than through tract.
    #[doc(hidden)]
    pub fn is_evaluated_natively(&self) -> bool {
        self.forest.is_some()
    }

    fn read(bytes: &[u8], tract_only: bool) -> Result<Self, super::BoxError> {
        let framework = tract_onnx::onnx();
        let mut proto = framework
            .proto_model_for_read(&mut &bytes[..])
            .map_err(|error| refuse(format!("not an ONNX model: {error}")))?;
        let graph = proto.graph.as_mut().ok_or("the ONNX file holds no graph")?;
        unwrap_zip_maps(graph)?;
        let initialised: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs = graph
            .input
            .iter()
            .filter(|input| !initialised.contains(input.name.as_str()))
            .map(|value| port(value, Role::Input))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = graph.output.iter().map(|value| port(value, Role::Output)).collect::<Result<Vec<_>, _>>()?;
        if let Some(text) = inputs.iter().find(|input| input.datum == DatumType::String) {
            return Err(refuse(format!("input `{}` is a tensor of strings; a model route takes numbers", text.name)));
        }
        let forest = if tract_only { None } else { native_forest(graph, &inputs) };
        let mut model = framework.model_for_proto_model(&proto).map_err(|error| refuse(format!("{error:#}")))?;
        let rows = model.symbols.sym("rows");
        for (index, input) in inputs.iter().enumerate() {
            let shape: TVec<TDim> =
                std::iter::once(TDim::Sym(rows.clone())).chain(input.fixed().map(TDim::from)).collect();
            model
                .set_input_fact(index, InferenceFact::dt_shape(input.datum, shape))
                .map_err(|error| refuse(format!("{error:#}")))?;
        }
        let plan = model
            .into_optimized()
            .and_then(|typed| typed.into_runnable())
            .map_err(|error| refuse(format!("tract cannot run it: {error:#}")))?;
        Ok(OnnxModel { plan, states: std::sync::Mutex::new(Vec::new()), forest, inputs, outputs })
    }

    /// Each input's tensor from the rows of features, its columns taken in the file's order.
    fn tensors(&self, features: &Features) -> Result<TVec<TValue>, StepError> {
        let mut offset = 0;
        let mut tensors = TVec::with_capacity(self.inputs.len());
        for input in &self.inputs {
            let width = input.width();
            let mut values = Vec::with_capacity(features.rows * width);
            for row in 0..features.rows {
                values.extend_from_slice(features.row(row).get(offset..offset + width).unwrap_or(&[]));
            }
            offset += width;
            let shape: Vec<usize> = std::iter::once(features.rows).chain(input.fixed()).collect();
            tensors.push(tensor_of(input, &shape, &values)?.into());
        }
        Ok(tensors)
    }
}

/// A tensor of `input`'s type; a fraction for an integer input is refused (422), as the
/// request, not the model, is wrong.
fn tensor_of(input: &Port, shape: &[usize], values: &[f64]) -> Result<Tensor, StepError> {
    let whole = || {
        values.iter().find(|v| v.fract() != 0.0).map_or(Ok(()), |v| {
            Err(StepError::invalid_input(format!("input `{}` takes {}, not {v}", input.name, datatype(input.datum))))
        })
    };
    let made = match input.datum {
        DatumType::F32 => Tensor::from_shape(shape, &values.iter().map(|&v| v as f32).collect::<Vec<_>>()),
        DatumType::F64 => Tensor::from_shape(shape, values),
        DatumType::Bool => Tensor::from_shape(shape, &values.iter().map(|&v| v != 0.0).collect::<Vec<_>>()),
        _ => {
            whole()?;
            Tensor::from_shape(shape, &values.iter().map(|&v| v as i64).collect::<Vec<_>>())
                .and_then(|tensor| tensor.cast_to_dt(input.datum).map(|cast| cast.into_owned()))
        }
    };
    made.map_err(|error| StepError::invalid_input(format!("input `{}`: {error}", input.name)))
}

/// Serves each `ZipMap` (scikit-learn's probabilities as one map per row, a sequence tract
/// cannot hold) as the tensor of probabilities it wraps: an `Identity` in its place, its output
/// declared `[rows, classes]` of floats.
fn unwrap_zip_maps(graph: &mut pb::GraphProto) -> Result<(), super::BoxError> {
    for node in graph.node.iter_mut().filter(|node| node.op_type == "ZipMap") {
        let classes = node
            .attribute
            .iter()
            .find(|a| a.name == "classlabels_int64s" || a.name == "classlabels_strings")
            .map(|a| a.ints.len().max(a.strings.len()))
            .ok_or("a ZipMap without class labels")?;
        let output = node.output.first().cloned().unwrap_or_default();
        node.op_type = "Identity".to_string();
        node.domain = String::new();
        node.attribute.clear();
        if let Some(declared) = graph.output.iter_mut().find(|o| o.name == output) {
            declared.r#type = Some(tensor_type(DataType::Float, classes));
        }
    }
    Ok(())
}

fn tensor_type(element: DataType, columns: usize) -> pb::TypeProto {
    use pb::tensor_shape_proto::{Dimension, dimension};
    let dim = |value| Dimension { denotation: String::new(), value };
    pb::TypeProto {
        denotation: String::new(),
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type: element as i32,
            shape: Some(pb::TensorShapeProto {
                dim: vec![
                    dim(Some(dimension::Value::DimParam("rows".to_string()))),
                    dim(Some(dimension::Value::DimValue(i64::try_from(columns).unwrap_or(0)))),
                ],
            }),
        })),
    }
}

/// An input or output as declared: a tensor whose first dimension is the rows, an input's other
/// dimensions fixed. What `graphc check` refuses at `model_path` (compiler/src/check/model_files.rs)
/// is refused here too, for a file changed after it was checked.
fn port(value: &pb::ValueInfoProto, role: Role) -> Result<Port, super::BoxError> {
    use pb::tensor_shape_proto::dimension::Value as Dim;
    let name = value.name.clone();
    let Some(pb::type_proto::Value::TensorType(tensor)) = value.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(refuse(format!("`{name}` is not a tensor (a sequence or a map); graphc serves tensors")));
    };
    let element =
        DataType::try_from(tensor.elem_type).map_err(|_| refuse(format!("`{name}` has an unknown element type")))?;
    let datum = DatumType::try_from(element).map_err(|error| refuse(format!("`{name}`: {error}")))?;
    let Some(shape) = tensor.shape.as_ref() else {
        return match role {
            Role::Input => Err(refuse(format!("input `{name}` declares no shape"))),
            // Its rows and dimensions are read from each answer.
            Role::Output => Ok(Port { name, datum, inner: Vec::new() }),
        };
    };
    if shape.dim.is_empty() {
        return Err(refuse(format!("`{name}` is a scalar, with no rows; graphc serves tensors of rows")));
    }
    let inner: Vec<Option<usize>> = shape
        .dim
        .iter()
        .skip(1)
        .map(|dim| match dim.value {
            Some(Dim::DimValue(size)) if size > 0 => usize::try_from(size).ok(),
            _ => None,
        })
        .collect();
    if role == Role::Input && inner.contains(&None) {
        return Err(refuse(format!("input `{name}` varies in a dimension after the rows; graphc serves fixed rows")));
    }
    Ok(Port { name, datum, inner })
}

/// An output tensor's rows, each as JSON: a number, a bool, a string, or arrays of them for an
/// output of more than one dimension.
fn rows_of(output: &Port, tensor: &Tensor, rows: usize) -> Result<Vec<Value>, StepError> {
    let flat: Vec<Value> = match tensor.datum_type() {
        DatumType::Bool => view::<bool>(tensor)?.iter().map(|&b| Value::Bool(b)).collect(),
        DatumType::String => view::<String>(tensor)?.iter().map(|s| Value::String(s.clone())).collect(),
        datum if datum.is_float() => {
            let cast = tensor.cast_to::<f64>().map_err(failed)?;
            view::<f64>(&cast)?.iter().map(|&v| Value::from(v)).collect()
        }
        _ => {
            let cast = tensor.cast_to::<i64>().map_err(failed)?;
            view::<i64>(&cast)?.iter().map(|&v| Value::from(v)).collect()
        }
    };
    let shape = tensor.shape();
    if shape.first() != Some(&rows) {
        return Err(StepError::new(format!(
            "output `{}` has shape {shape:?}, not one row per input row ({rows})",
            output.name
        )));
    }
    let inner: &[usize] = shape.get(1..).unwrap_or_default();
    let width: usize = inner.iter().product();
    Ok((0..rows).map(|row| nest(&flat[row * width..(row + 1) * width], inner)).collect())
}

/// A row's values in its dimensions: a scalar for none, arrays in arrays for more.
fn nest(values: &[Value], dims: &[usize]) -> Value {
    match dims.split_first() {
        None => values.first().cloned().unwrap_or(Value::Null),
        Some((_, rest)) => {
            let step: usize = rest.iter().product();
            Value::Array(values.chunks(step.max(1)).map(|chunk| nest(chunk, rest)).collect())
        }
    }
}

fn view<D: Datum + Clone>(tensor: &Tensor) -> Result<Vec<D>, StepError> {
    tensor.to_plain_array_view::<D>().map(|view| view.iter().cloned().collect()).map_err(failed)
}

fn failed(error: impl std::fmt::Display) -> StepError {
    StepError::new(format!("the model failed: {error}"))
}

impl Model for OnnxModel {
    /// A request in tensors is checked against the model's inputs by name (each present,
    /// numbers, as wide as the model takes), and put in the model's order, so that the features
    /// read from it split back into the right inputs.
    fn preprocess(&self, mut body: Value) -> Result<Value, StepError> {
        let Some(Value::Array(tensors)) = body.get_mut("inputs") else { return Ok(body) };
        if !tensors.first().is_some_and(Value::is_object) {
            return Ok(body);
        }
        let mut ordered = Vec::with_capacity(self.inputs.len());
        for input in &self.inputs {
            let position = tensors.iter().position(|t| t.get("name").and_then(Value::as_str) == Some(&input.name));
            let Some(position) = position else {
                return Err(StepError::invalid_input(format!(
                    "the request has no input `{}`; this model takes {}",
                    input.name,
                    self.describe_inputs()
                )));
            };
            let tensor = tensors.swap_remove(position);
            let shape: Vec<u64> = tensor
                .get("shape")
                .and_then(Value::as_array)
                .map(|dims| dims.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            let width: u64 = shape.iter().skip(1).product();
            if shape.len() >= 2 && width != input.width() as u64 {
                return Err(StepError::invalid_input(format!(
                    "input `{}` has shape {shape:?}; this model takes {}",
                    input.name,
                    self.describe_inputs()
                )));
            }
            ordered.push(tensor);
        }
        if let Some(unknown) = tensors.first() {
            return Err(StepError::invalid_input(format!(
                "unknown input `{}`; this model takes {}",
                unknown.get("name").and_then(Value::as_str).unwrap_or_default(),
                self.describe_inputs()
            )));
        }
        *tensors = ordered;
        Ok(body)
    }

    /// Rows as wide as the model's inputs side by side, the refusal naming them.
    fn validate(&self, features: &Features) -> Result<(), StepError> {
        let width: usize = self.inputs.iter().map(Port::width).sum();
        if features.rows == 0 {
            return Err(StepError::invalid_input(format!(
                "no input rows; this model takes {}",
                self.describe_inputs()
            )));
        }
        if features.columns != width {
            return Err(StepError::invalid_input(format!(
                "each input row must have {width} values, not {}: this model takes {}",
                features.columns,
                self.describe_inputs()
            )));
        }
        Ok(())
    }

    fn predict(&self, features: Features) -> Result<Vec<Value>, StepError> {
        let rows = features.rows;
        let mut columns = match &self.forest {
            Some(native) => forest_columns(native, &features),
            None => self.run_plan(features)?,
        };
        if let [only] = columns.as_mut_slice() {
            return Ok(std::mem::take(only));
        }
        // Row by row, each output's value moved (not copied) into the row's object.
        let mut columns: Vec<std::vec::IntoIter<Value>> = columns.into_iter().map(Vec::into_iter).collect();
        Ok((0..rows)
            .map(|_| {
                let fields = self
                    .outputs
                    .iter()
                    .zip(columns.iter_mut())
                    .map(|(output, column)| (output.name.clone(), column.next().unwrap_or(Value::Null)));
                Value::Object(fields.collect())
            })
            .collect())
    }

    fn inputs(&self) -> Vec<TensorSpec> {
        self.inputs.iter().map(Port::spec).collect()
    }

    fn outputs(&self) -> Vec<TensorSpec> {
        self.outputs.iter().map(Port::spec).collect()
    }

    fn input_width(&self) -> Option<usize> {
        Some(self.inputs.iter().map(Port::width).sum())
    }

    fn output_datatype(&self) -> &'static str {
        self.outputs.first().map_or("BYTES", |output| datatype(output.datum))
    }
}

impl OnnxModel {
    /// `features` (FP32 [-1, 4])`, ...: what a request must send.
    fn describe_inputs(&self) -> String {
        let described: Vec<String> =
            self.inputs().iter().map(|spec| format!("`{}` ({} {:?})", spec.name, spec.datatype, spec.shape)).collect();
        described.join(", ")
    }

    /// The ONNX operators this build of tract runs, by name (`op_type`), sorted: what
    /// `graphc check` holds a model's operators against.
    pub fn operators() -> Vec<String> {
        let mut names: Vec<String> = tract_onnx::onnx().op_register.0.into_keys().collect();
        names.sort();
        names
    }

    /// Each output's rows, as tract's plan answers them.
    fn run_plan(&self, features: Features) -> Result<Vec<Vec<Value>>, StepError> {
        let rows = features.rows;
        let tensors = self.tensors(&features)?;
        let kept = self.states.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let mut state = match kept {
            Some(state) => state,
            None => self.plan.spawn().map_err(failed)?,
        };
        let answered = state.run(tensors).map_err(failed)?;
        self.states.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(state);
        let mut columns = Vec::with_capacity(self.outputs.len());
        for (output, tensor) in self.outputs.iter().zip(answered.iter()) {
            columns.push(rows_of(output, tensor, rows)?);
        }
        Ok(columns)
    }
}

/// Each output's rows from graphc's own evaluation of a tree ensemble: the label, and the
/// scores as f32 (as tract answers them), row by row.
fn forest_columns(native: &NativeForest, features: &Features) -> Vec<Vec<Value>> {
    let mut columns: Vec<Vec<Value>> = native.outputs.iter().map(|_| Vec::with_capacity(features.rows)).collect();
    let mut row32 = Vec::with_capacity(features.columns);
    for row in 0..features.rows {
        row32.clear();
        row32.extend(features.row(row).iter().map(|&v| v as f32));
        let scores = native.forest.scores(&row32);
        for (output, column) in native.outputs.iter().zip(columns.iter_mut()) {
            column.push(match output {
                ForestOutput::Label => native.forest.labels.get(super::trees::Forest::winner(&scores)),
                ForestOutput::Scores => Value::Array(scores.iter().map(|&s| Value::from(f64::from(s))).collect()),
            });
        }
    }
    columns
}
