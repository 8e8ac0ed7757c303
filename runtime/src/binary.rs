//! The Open Inference Protocol's binary tensor extension, as Triton's clients speak it: a
//! request whose JSON head (`Inference-Header-Content-Length` bytes) is followed by the raw
//! data of the inputs that say `binary_data_size`, and answers whose outputs come the same way
//! when asked (`binary_data` on an output, or `binary_data_output` on the request). A binary
//! request is read into the JSON form, so the rest of the server sees one kind of request.

use crate::error::StepError;
use serde_json::{Map, Value, json};

/// The header carrying the length of the JSON head.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// A request of JSON head and binary data, as the JSON request it stands for: each binary
/// input's `data` read from the bytes after the head, in input order, little-endian.
pub fn read_request(bytes: &[u8], head_length: usize) -> Result<Value, StepError> {
    let (head, mut rest) = bytes.split_at_checked(head_length).ok_or_else(|| {
        StepError::bad_request(format!("{HEADER_LENGTH} is {head_length}, but the body has only {} bytes", bytes.len()))
    })?;
    let mut request: Value = serde_json::from_slice(head)
        .map_err(|error| StepError::bad_request(format!("the request's JSON head is malformed: {error}")))?;
    if let Some(inputs) = request.get_mut("inputs").and_then(Value::as_array_mut) {
        for input in inputs {
            let Some(size) = input.pointer("/parameters/binary_data_size").and_then(Value::as_u64) else {
                continue;
            };
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            let (data, after) = rest.split_at_checked(size).ok_or_else(|| {
                StepError::bad_request(format!(
                    "input `{}` says {size} bytes of binary data, but {} are left",
                    input.get("name").and_then(Value::as_str).unwrap_or(""),
                    rest.len()
                ))
            })?;
            rest = after;
            let datatype = input.get("datatype").and_then(Value::as_str).unwrap_or("").to_string();
            let values = decode(&datatype, data).map_err(|reason| {
                StepError::bad_request(format!(
                    "input `{}`: {reason}",
                    input.get("name").and_then(Value::as_str).unwrap_or("")
                ))
            })?;
            if let Some(fields) = input.as_object_mut() {
                fields.insert("data".to_string(), Value::Array(values));
                if let Some(Value::Object(parameters)) = fields.get_mut("parameters") {
                    parameters.remove("binary_data_size");
                }
            }
        }
    }
    if !rest.is_empty() {
        return Err(StepError::bad_request(format!(
            "{} bytes of binary data follow the head that no input claims (`binary_data_size`)",
            rest.len()
        )));
    }
    Ok(request)
}

/// Whether a request asks for its outputs in binary.
pub fn wants_binary(request: &Value) -> bool {
    // Keys looked up directly: a JSON pointer would parse its text and allocate per request.
    let parameter =
        |value: &Value, name: &str| value.get("parameters").and_then(|p| p.get(name)).and_then(Value::as_bool);
    parameter(request, "binary_data_output") == Some(true)
        || request
            .get("outputs")
            .and_then(Value::as_array)
            .is_some_and(|outputs| outputs.iter().any(|output| parameter(output, "binary_data") == Some(true)))
}

/// An answer's outputs in binary: the JSON head (each output's `data` replaced by its
/// `binary_data_size`) and the head's length, then the data, in output order. `None` when the
/// answer has no tensor outputs of a type that can be written.
pub fn write_answer(answer: &Value) -> Option<(Vec<u8>, usize)> {
    let mut head = answer.clone();
    let mut data = Vec::new();
    let outputs = head.get_mut("outputs")?.as_array_mut()?;
    for output in outputs {
        let datatype = output.get("datatype").and_then(Value::as_str)?.to_string();
        let values = output.get("data")?.as_array()?;
        let start = data.len();
        encode(&datatype, values, &mut data)?;
        let fields = output.as_object_mut()?;
        fields.remove("data");
        let parameters = fields.entry("parameters").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(parameters) = parameters {
            parameters.insert("binary_data_size".to_string(), json!(data.len() - start));
        }
    }
    let mut body = serde_json::to_vec(&head).ok()?;
    let head_length = body.len();
    body.extend_from_slice(&data);
    Some((body, head_length))
}

/// Little-endian values of `datatype` as JSON numbers (BYTES as strings).
pub(crate) fn decode(datatype: &str, data: &[u8]) -> Result<Vec<Value>, String> {
    fn fixed<const N: usize>(data: &[u8], read: impl Fn([u8; N]) -> Value) -> Result<Vec<Value>, String> {
        if !data.len().is_multiple_of(N) {
            return Err(format!("{} bytes is not a whole number of {N}-byte values", data.len()));
        }
        Ok(data.chunks_exact(N).map(|chunk| read(chunk.try_into().unwrap_or([0; N]))).collect())
    }
    match datatype {
        "BOOL" => fixed::<1>(data, |[b]| json!(b != 0)),
        "UINT8" => fixed::<1>(data, |[b]| json!(b)),
        "INT8" => fixed::<1>(data, |b| json!(i8::from_le_bytes(b))),
        "UINT16" => fixed::<2>(data, |b| json!(u16::from_le_bytes(b))),
        "INT16" => fixed::<2>(data, |b| json!(i16::from_le_bytes(b))),
        "FP16" => fixed::<2>(data, |b| json!(f16_to_f32(u16::from_le_bytes(b)))),
        "UINT32" => fixed::<4>(data, |b| json!(u32::from_le_bytes(b))),
        "INT32" => fixed::<4>(data, |b| json!(i32::from_le_bytes(b))),
        "FP32" => fixed::<4>(data, |b| json!(f32::from_le_bytes(b))),
        "UINT64" => fixed::<8>(data, |b| json!(u64::from_le_bytes(b))),
        "INT64" => fixed::<8>(data, |b| json!(i64::from_le_bytes(b))),
        "FP64" => fixed::<8>(data, |b| json!(f64::from_le_bytes(b))),
        "BYTES" => {
            // Each element: a 4-byte little-endian length, then that many bytes.
            let mut values = Vec::new();
            let mut rest = data;
            while !rest.is_empty() {
                let (length, after) = rest.split_at_checked(4).ok_or("a BYTES element's length is cut short")?;
                let length = u32::from_le_bytes(length.try_into().unwrap_or([0; 4])) as usize;
                let (element, after) = after.split_at_checked(length).ok_or("a BYTES element is cut short")?;
                values.push(Value::String(String::from_utf8_lossy(element).into_owned()));
                rest = after;
            }
            Ok(values)
        }
        other => Err(format!("binary data of datatype `{other}`, which the protocol does not define")),
    }
}

/// JSON values as little-endian `datatype`; `None` for a value or a datatype that cannot be.
pub(crate) fn encode(datatype: &str, values: &[Value], out: &mut Vec<u8>) -> Option<()> {
    for value in values {
        match datatype {
            "BOOL" => out.push(u8::from(value.as_bool()?)),
            "INT64" => out.extend_from_slice(&value.as_i64()?.to_le_bytes()),
            "INT32" => out.extend_from_slice(&i32::try_from(value.as_i64()?).ok()?.to_le_bytes()),
            "UINT64" => out.extend_from_slice(&value.as_u64()?.to_le_bytes()),
            "FP64" => out.extend_from_slice(&value.as_f64()?.to_le_bytes()),
            "FP32" => out.extend_from_slice(&(value.as_f64()? as f32).to_le_bytes()),
            "BYTES" => {
                let text = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                out.extend_from_slice(&u32::try_from(text.len()).ok()?.to_le_bytes());
                out.extend_from_slice(text.as_bytes());
            }
            _ => return None,
        }
    }
    Some(())
}

/// IEEE 754 half precision to single: numpy's `float16`, as clients send it.
fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let bits = match (exponent, mantissa) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalise the mantissa.
            let shift = mantissa.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | (((mantissa << shift) & 0x3ff) << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (mantissa << 13),
        _ => sign | ((exponent + 112) << 23) | (mantissa << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_values_convert_exactly() {
        for (bits, value) in
            [(0x3c00, 1.0f32), (0xc000, -2.0), (0x3555, 0.333_251_95), (0x0001, 5.960_464_5e-8), (0x7bff, 65504.0)]
        {
            assert_eq!(f16_to_f32(bits), value, "{bits:#06x}");
        }
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn binary_answers_round_trip_through_a_request_reader() {
        let answer = json!({ "model_name": "m", "outputs": [
            { "name": "predict", "datatype": "INT64", "shape": [2], "data": [0, 2] },
            { "name": "labels", "datatype": "BYTES", "shape": [2], "data": ["setosa", "virginica"] }
        ] });
        let (body, answer_head) = write_answer(&answer).unwrap();
        // Read back as a request would be: the outputs stand in for inputs.
        let as_request = String::from_utf8(body[..answer_head].to_vec()).unwrap().replace("\"outputs\"", "\"inputs\"");
        let mut bytes = as_request.into_bytes();
        let request_head = bytes.len();
        bytes.extend_from_slice(&body[answer_head..]);
        let read = read_request(&bytes, request_head).unwrap();
        assert_eq!(read["inputs"][0]["data"], json!([0, 2]));
        assert_eq!(read["inputs"][1]["data"], json!(["setosa", "virginica"]));
    }
}
