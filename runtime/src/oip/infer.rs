//! The inference request a model route reads and the answer it writes, as the protocol defines
//! them: inputs in MLRun's loose form (`{"inputs": [[...], ...]}`) or as OIP tensors, read into
//! rows of features; the answer in the form the request came in. REST's JSON, the binary
//! extension and gRPC all arrive here as the same JSON body, and leave from the same answer.

use super::Datatype;
use crate::error::StepError;
use crate::event::Event;
use crate::model::{Features, TensorSpec};
use serde_json::{Map, Value};

/// An inference request, read from a route's body (after the model's `preprocess`).
pub(crate) struct InferRequest<'b> {
    /// The inputs as rows of numbers.
    pub features: Features,
    /// The form the request came in, which its answer takes.
    pub form: Form,
    /// The request's `parameters`, handed to the model's predict.
    pub parameters: &'b Map<String, Value>,
}

/// The form of an inference request, mirrored in its answer.
pub(crate) enum Form {
    /// MLRun's `{"inputs": [[...], ...]}`; the request's `id`, if any, is echoed.
    Loose { request_id: Option<Value> },
    /// OIP tensors; the request's id and tensor name are echoed.
    Tensor { request_id: Option<Value> },
}

/// What a request without parameters borrows.
static NO_PARAMETERS: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

impl<'b> InferRequest<'b> {
    /// Reads `body`. Requested `outputs` must name outputs the model has (`outputs`, 400);
    /// inputs that are not numbers, or tensors whose shapes and data disagree, are 422.
    pub fn read(body: &'b Value, outputs: impl FnOnce() -> Vec<TensorSpec>) -> Result<InferRequest<'b>, StepError> {
        let (features, form) = read_inputs(body)?;
        if let Some(requested) = body.get("outputs") {
            let requested = requested
                .as_array()
                .ok_or_else(|| StepError::bad_request("`outputs` must be an array of {\"name\": ...} objects"))?;
            let outputs = outputs();
            for output in requested {
                let name = output.get("name").and_then(Value::as_str).unwrap_or_default();
                if !outputs.iter().any(|o| o.name == name) {
                    let names: Vec<String> = outputs.iter().map(|o| format!("`{}`", o.name)).collect();
                    return Err(StepError::bad_request(format!(
                        "unknown output `{name}`: this model's outputs are {}",
                        names.join(", ")
                    )));
                }
            }
        }
        let parameters = match body.get("parameters") {
            None | Some(Value::Null) => &*NO_PARAMETERS,
            Some(Value::Object(parameters)) => parameters,
            Some(_) => return Err(StepError::bad_request("`parameters` must be an object")),
        };
        Ok(InferRequest { features, form, parameters })
    }
}

/// Reads `inputs` in either form: rows of numbers, or OIP tensors.
pub(crate) fn read_inputs(body: &Value) -> Result<(Features, Form), StepError> {
    let inputs = body.get("inputs").ok_or_else(|| {
        StepError::invalid_input("the request has no `inputs`: send {\"inputs\": [[...], ...]} or OIP tensors {\"inputs\": [{\"name\", \"shape\", \"datatype\", \"data\"}]}")
    })?;
    let Value::Array(items) = inputs else {
        return Err(StepError::invalid_input("`inputs` must be an array"));
    };
    match items.first() {
        Some(Value::Object(_)) => read_tensors(body, items),
        _ => {
            let mut values = Vec::new();
            let mut columns = None;
            for (i, row) in items.iter().enumerate() {
                let before = values.len();
                match row {
                    Value::Array(row) => {
                        row.iter().try_for_each(|v| number(v, || format!("inputs[{i}]")).map(|v| values.push(v)))?
                    }
                    other => {
                        values.push(number(other, || "inputs".into()).map_err(|_| {
                            StepError::invalid_input(format!("inputs[{i}] must be an array of numbers"))
                        })?)
                    }
                }
                let width = values.len() - before;
                if *columns.get_or_insert(width) != width && !row.is_number() {
                    return Err(StepError::invalid_input(format!(
                        "row {i} has {width} values, but row 0 has {}",
                        columns.unwrap_or(0)
                    )));
                }
            }
            // A flat list of numbers is one row.
            let (rows, columns) = if items.iter().all(Value::is_number) {
                (usize::from(!items.is_empty()), values.len())
            } else {
                (items.len(), columns.unwrap_or(0))
            };
            Ok((Features { values, rows, columns }, Form::Loose { request_id: body.get("id").cloned() }))
        }
    }
}

/// OIP tensors: every input tensor, each `[rows]` or `[rows, columns]`, side by side (row `i`
/// of the features is row `i` of each tensor, in order). BOOL is read as 0 and 1; BYTES and
/// other types a model of numbers cannot take are refused (422).
fn read_tensors(body: &Value, items: &[Value]) -> Result<(Features, Form), StepError> {
    let mut tensors = Vec::with_capacity(items.len());
    for (index, tensor) in items.iter().enumerate() {
        tensors.push(read_tensor(index, tensor)?);
    }
    let rows = tensors.first().map_or(0, |tensor| tensor.rows);
    if let Some(other) = tensors.iter().find(|tensor| tensor.rows != rows) {
        return Err(StepError::invalid_input(format!(
            "input `{}` has {} rows, but input `{}` has {rows}: inputs are read side by side, row by row",
            other.name,
            other.rows,
            tensors.first().map_or("", |tensor| tensor.name.as_str())
        )));
    }
    let columns: usize = tensors.iter().map(|tensor| tensor.columns).sum();
    let values = if tensors.len() == 1 {
        tensors.pop().map(|tensor| tensor.values).unwrap_or_default()
    } else {
        let mut values = Vec::with_capacity(rows * columns);
        for row in 0..rows {
            for tensor in &tensors {
                values.extend_from_slice(
                    tensor.values.get(row * tensor.columns..(row + 1) * tensor.columns).unwrap_or(&[]),
                );
            }
        }
        values
    };
    Ok((Features { values, rows, columns }, Form::Tensor { request_id: body.get("id").cloned() }))
}

/// One input tensor, read.
struct InputTensor {
    name: String,
    rows: usize,
    columns: usize,
    values: Vec<f64>,
}

fn read_tensor(index: usize, tensor: &Value) -> Result<InputTensor, StepError> {
    let field = |key: &str| {
        tensor.get(key).ok_or_else(|| StepError::invalid_input(format!("input tensor {index} has no `{key}`")))
    };
    let name = field("name")?
        .as_str()
        .ok_or_else(|| StepError::invalid_input(format!("input tensor {index}'s `name` must be a string")))?
        .to_string();
    let shape: Vec<usize> = field("shape")?
        .as_array()
        .ok_or_else(|| StepError::invalid_input(format!("`shape` of input `{name}` must be an array of sizes")))?
        .iter()
        .map(|d| {
            d.as_u64().map(|d| d as usize).ok_or_else(|| {
                StepError::invalid_input(format!("`shape` of input `{name}` holds a size that is not a whole number"))
            })
        })
        .collect::<Result<_, _>>()?;
    let datatype: Datatype = field("datatype")?
        .as_str()
        .unwrap_or("")
        .parse()
        .map_err(|unknown| StepError::invalid_input(format!("input `{name}`: {unknown}")))?;
    let mut values = Vec::new();
    match datatype {
        Datatype::Bool => flatten_bools(field("data")?, &mut values)?,
        Datatype::Bytes => {
            return Err(StepError::invalid_input(format!(
                "input `{name}` is BYTES, but this model takes numbers: send FP32, FP64, an integer type or BOOL"
            )));
        }
        _ => flatten(field("data")?, &mut values)?,
    }
    let (rows, columns) = match shape.as_slice() {
        [columns] => (1, *columns),
        [rows, columns] => (*rows, *columns),
        _ => {
            return Err(StepError::invalid_input(format!(
                "shape {shape:?} of input `{name}` must have one or two dimensions"
            )));
        }
    };
    if rows.checked_mul(columns) != Some(values.len()) {
        return Err(StepError::invalid_input(format!(
            "shape {shape:?} of input `{name}` expects {} values, but `data` has {}",
            rows.saturating_mul(columns),
            values.len()
        )));
    }
    Ok(InputTensor { name, rows, columns, values })
}

fn flatten_bools(value: &Value, out: &mut Vec<f64>) -> Result<(), StepError> {
    match value {
        Value::Array(items) => items.iter().try_for_each(|item| flatten_bools(item, out)),
        Value::Bool(flag) => {
            out.push(f64::from(u8::from(*flag)));
            Ok(())
        }
        other => Err(StepError::invalid_input(format!("a BOOL tensor holds `{other}`, not true or false"))),
    }
}

fn flatten(value: &Value, out: &mut Vec<f64>) -> Result<(), StepError> {
    match value {
        Value::Array(items) => items.iter().try_for_each(|item| flatten(item, out)),
        other => number(other, || "data".into()).map(|v| out.push(v)),
    }
}

/// `at` names the value's place for the error message; it is built only on failure.
fn number(value: &Value, at: impl FnOnce() -> String) -> Result<f64, StepError> {
    value
        .as_f64()
        .filter(|v| v.is_finite())
        .ok_or_else(|| StepError::invalid_input(format!("{} holds `{value}`, not a number", at())))
}

/// A model's answer in the request's form. Its fields are declared in the order a JSON object
/// of them prints (sorted), so that the bytes written from it and from the body made of it are
/// the same.
#[derive(serde::Serialize)]
pub(crate) struct InferAnswer<'r> {
    id: Value,
    model_name: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_version: Option<String>,
    outputs: Outputs<'r>,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum Outputs<'r> {
    /// One prediction per row, as MLRun answers `{"inputs": [...]}`.
    Loose(Vec<Value>),
    /// A tensor per output, as the protocol answers tensors.
    Tensor(Vec<TensorOutput<'r>>),
}

#[derive(serde::Serialize)]
struct TensorOutput<'r> {
    data: Vec<Value>,
    datatype: Datatype,
    name: &'r str,
    shape: Vec<usize>,
}

/// Whether `value` is an element of a `datatype` tensor, as the codecs write one.
fn fits(datatype: Datatype, value: &Value) -> bool {
    let int = |low: i64, high: i64| value.as_i64().is_some_and(|v| (low..=high).contains(&v));
    let uint = |high: u64| value.as_u64().is_some_and(|v| v <= high);
    match datatype {
        Datatype::Bool => value.is_boolean(),
        Datatype::Int8 => int(i8::MIN.into(), i8::MAX.into()),
        Datatype::Int16 => int(i16::MIN.into(), i16::MAX.into()),
        Datatype::Int32 => int(i32::MIN.into(), i32::MAX.into()),
        Datatype::Int64 => value.is_i64(),
        Datatype::Uint8 => uint(u8::MAX.into()),
        Datatype::Uint16 => uint(u16::MAX.into()),
        Datatype::Uint32 => uint(u32::MAX.into()),
        Datatype::Uint64 => value.is_u64(),
        Datatype::Fp16 | Datatype::Fp32 | Datatype::Fp64 => value.is_number(),
        Datatype::Bytes => value.is_string(),
    }
}

/// The datatype that holds every one of `values`: BOOL, INT64, FP64, else BYTES (text, which
/// any value can be written as).
fn datatype_of(values: &[Value]) -> Datatype {
    [Datatype::Bool, Datatype::Int64, Datatype::Fp64]
        .into_iter()
        .find(|datatype| values.iter().all(|value| fits(*datatype, value)))
        .unwrap_or(Datatype::Bytes)
}

/// The datatype a tensor answer says: the declared one when every output fits it; else what
/// the outputs are, and a warning (rate-limited per model) that the declaration is wrong. A
/// client decodes by the answer's datatype, so the answer must say what its data is.
fn answered_datatype(model: &str, output: &str, declared: &str, outputs: &[Value]) -> Datatype {
    if let Some(declared) = Datatype::parse(declared)
        && outputs.iter().all(|value| fits(declared, value))
    {
        return declared;
    }
    let actual = datatype_of(outputs);
    if crate::logging::allow(model, "declared datatype") {
        tracing::warn!(
            model,
            output,
            declared,
            answered = actual.as_str(),
            "the model's outputs are not {declared}, as it declares: answered as {actual}; declare the output's \
             datatype in Model::outputs (or output_datatype)"
        );
    }
    actual
}

/// Who answers, and as which outputs.
pub(crate) struct Answerer<'r> {
    /// The model's name.
    pub name: &'r str,
    /// The version answered, if any.
    pub version: Option<String>,
    /// The model's outputs as it declares them: one answers with each row's value; several
    /// with each row an object of them by name.
    pub outputs: &'r [TensorSpec],
}

/// What a model that declares no output answers as.
static UNDECLARED: std::sync::LazyLock<[TensorSpec; 1]> =
    std::sync::LazyLock::new(|| [TensorSpec::new(crate::model::DEFAULT_OUTPUT, "BYTES", vec![-1])]);

impl<'r> InferAnswer<'r> {
    /// `outputs`, one per row of the request, in the request's form: the request's `id` echoed
    /// (else the event's); for a tensor request, a tensor per declared output of `[rows, ...]`
    /// (each row's value's own dimensions after the rows, its data flattened, as the protocol
    /// writes tensors).
    pub fn new(event: &Event, answerer: Answerer<'r>, outputs: Vec<Value>, form: Form, rows: usize) -> Self {
        let declared = if answerer.outputs.is_empty() { &UNDECLARED[..] } else { answerer.outputs };
        let (request_id, outputs) = match form {
            Form::Loose { request_id } => (request_id, Outputs::Loose(outputs)),
            Form::Tensor { request_id } => {
                let tensor = |spec: &'r TensorSpec, values: Vec<Value>| {
                    let (shape, data) = tensor_of(values, rows);
                    let datatype = answered_datatype(answerer.name, &spec.name, &spec.datatype, &data);
                    TensorOutput { data, datatype, name: &spec.name, shape }
                };
                let split = declared.len() > 1 && outputs.iter().all(Value::is_object);
                let tensors = match declared {
                    [first, ..] if !split => vec![tensor(first, outputs)],
                    _ => {
                        let mut rows: Vec<Map<String, Value>> = outputs
                            .into_iter()
                            .map(|row| match row {
                                Value::Object(fields) => fields,
                                _ => Map::new(),
                            })
                            .collect();
                        declared
                            .iter()
                            .map(|spec| {
                                let column = rows.iter_mut().map(|row| row.remove(&spec.name).unwrap_or(Value::Null));
                                tensor(spec, column.collect())
                            })
                            .collect()
                    }
                };
                (request_id, Outputs::Tensor(tensors))
            }
        };
        InferAnswer {
            id: request_id.unwrap_or_else(|| Value::String(event.id.text())),
            model_name: answerer.name,
            model_version: answerer.version,
            outputs,
        }
    }
}

/// A tensor's shape and flat data from its rows: `[rows]` and the rows as they are, or, when
/// every row is an array of the same dimensions, `[rows, ...]` and every element in row-major
/// order.
fn tensor_of(values: Vec<Value>, rows: usize) -> (Vec<usize>, Vec<Value>) {
    fn dims(value: &Value) -> Option<Vec<usize>> {
        match value {
            Value::Array(items) => {
                let inner = match items.first() {
                    Some(first) => dims(first)?,
                    None => Vec::new(),
                };
                if items.iter().skip(1).any(|item| dims(item).as_ref() != Some(&inner)) {
                    return None;
                }
                Some(std::iter::once(items.len()).chain(inner).collect())
            }
            Value::Object(_) => None,
            _ => Some(Vec::new()),
        }
    }
    fn flatten(value: Value, out: &mut Vec<Value>) {
        match value {
            Value::Array(items) => items.into_iter().for_each(|item| flatten(item, out)),
            other => out.push(other),
        }
    }
    let inner =
        values.first().and_then(dims).filter(|inner| values.iter().skip(1).all(|v| dims(v).as_ref() == Some(inner)));
    match inner {
        Some(inner) if !inner.is_empty() => {
            let mut data = Vec::with_capacity(rows * inner.iter().product::<usize>());
            values.into_iter().for_each(|value| flatten(value, &mut data));
            (std::iter::once(rows).chain(inner).collect(), data)
        }
        _ => (vec![rows], values),
    }
}

/// An inference answer as it left the pipeline, read back by the codecs that write it in
/// another form (binary outputs, a gRPC reply). Fields a route added besides the protocol's are
/// kept in `rest`, so that the binary form's JSON head says what the JSON answer said.
#[derive(serde::Deserialize, serde::Serialize)]
pub(crate) struct InferResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    #[serde(default)]
    pub model_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    pub outputs: Vec<OutputTensor>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One output tensor of an answer.
#[derive(serde::Deserialize, serde::Serialize)]
pub(crate) struct OutputTensor {
    pub name: String,
    pub datatype: Datatype,
    pub shape: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
}

impl InferResponse {
    /// The answer in `bytes`, if it is an inference answer with tensor outputs.
    pub fn from_slice(bytes: &[u8]) -> Option<InferResponse> {
        serde_json::from_slice(bytes).ok()
    }

    /// The same, from an answer already read.
    #[cfg_attr(not(feature = "grpc"), allow(dead_code, reason = "the gRPC service reads answers already read"))]
    pub fn from_value(answer: &Value) -> Option<InferResponse> {
        serde::Deserialize::deserialize(answer).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tensors_are_read_side_by_side_row_by_row() {
        let body = json!({"inputs": [
            {"name": "a", "shape": [2, 1], "datatype": "FP32", "data": [1, 2]},
            {"name": "b", "shape": [2, 2], "datatype": "BOOL", "data": [[true, false], [false, true]]},
        ]});
        let request = InferRequest::read(&body, Vec::new).unwrap();
        assert_eq!(request.features.values, [1.0, 1.0, 0.0, 2.0, 0.0, 1.0]);
        assert_eq!((request.features.rows, request.features.columns), (2, 3));
        assert!(matches!(request.form, Form::Tensor { request_id: None }));
    }

    #[test]
    fn an_unknown_datatype_is_named_with_the_ones_the_protocol_has() {
        let body = json!({"inputs": [{"name": "a", "shape": [1], "datatype": "FLOAT", "data": [1]}]});
        let error = InferRequest::read(&body, Vec::new).err().unwrap();
        assert_eq!(error.status(), 422);
        assert!(error.message.contains("input `a`: the datatype `FLOAT`"), "{}", error.message);
    }

    #[test]
    fn a_tensor_answer_says_what_its_data_is_when_the_declaration_is_wrong() {
        let event = Event::new(json!(null));
        let answer = |declared: &'static str, outputs: Vec<Value>| {
            let spec = [TensorSpec::new("predict", declared, vec![-1])];
            let answerer = Answerer { name: "m", version: None, outputs: &spec };
            let form = Form::Tensor { request_id: None };
            let rows = outputs.len();
            serde_json::to_value(InferAnswer::new(&event, answerer, outputs, form, rows)).unwrap()["outputs"][0]
                ["datatype"]
                .clone()
        };
        assert_eq!(answer("INT64", vec![json!(1), json!(2)]), "INT64");
        assert_eq!(answer("FP32", vec![json!(1), json!(2.5)]), "FP32", "integers fit a float tensor");
        assert_eq!(answer("INT64", vec![json!("stays"), json!("leaves")]), "BYTES");
        assert_eq!(answer("INT64", vec![json!(0.25)]), "FP64");
        assert_eq!(answer("INT8", vec![json!(300)]), "INT64", "300 is no INT8");
        assert_eq!(answer("BOOL", vec![json!(true)]), "BOOL");
        assert_eq!(answer("NOT A TYPE", vec![json!(true)]), "BOOL");
    }

    #[test]
    fn an_answer_keeps_the_fields_a_route_added() {
        let answer = json!({"id": "1", "model_name": "m", "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [1], "data": [2]}
        ], "extra": true});
        let read = InferResponse::from_value(&answer).unwrap();
        assert_eq!(read.outputs[0].datatype, Datatype::Int64);
        assert_eq!(serde_json::to_value(&read).unwrap(), answer);
    }
}
