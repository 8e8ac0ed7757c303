//! The Open Inference Protocol's binary tensor extension, as Triton's clients speak it: a
//! request whose JSON head (`Inference-Header-Content-Length` bytes) is followed by the raw
//! data of the inputs that say `binary_data_size`, and answers whose outputs come the same way
//! when asked (`binary_data` on an output, or `binary_data_output` on the request). A binary
//! request is read into the JSON form, so the rest of the server sees one kind of request.

use super::Datatype;
use super::infer::InferResponse;
use crate::error::StepError;
use serde_json::{Value, json};

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
            let name = || input.get("name").and_then(Value::as_str).unwrap_or("");
            let datatype: Datatype = input
                .get("datatype")
                .and_then(Value::as_str)
                .unwrap_or("")
                .parse()
                .map_err(|unknown| StepError::bad_request(format!("input `{}`: {unknown}", name())))?;
            let values = decode(datatype, data)
                .map_err(|reason| StepError::bad_request(format!("input `{}`: {reason}", name())))?;
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
/// answer (its JSON bytes) has no tensor outputs of a type that can be written.
pub fn write_answer(answer: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut answer = InferResponse::from_slice(answer)?;
    let mut data = Vec::new();
    for output in &mut answer.outputs {
        let start = data.len();
        encode(output.datatype, output.data.as_deref()?, &mut data)?;
        output.data = None;
        output.parameters.insert("binary_data_size".to_string(), json!(data.len() - start));
    }
    let mut body = serde_json::to_vec(&answer).ok()?;
    let head_length = body.len();
    body.extend_from_slice(&data);
    Some((body, head_length))
}

/// Why binary data could not be read as its datatype.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DataError {
    /// The bytes do not divide into values of the type's width.
    #[error("{length} bytes is not a whole number of {width}-byte values")]
    Ragged { length: usize, width: usize },
    /// A BYTES element's length or content runs past the data.
    #[error("a BYTES element is cut short")]
    CutShort,
}

/// Little-endian values of `datatype` as JSON numbers (BYTES as strings).
pub(crate) fn decode(datatype: Datatype, data: &[u8]) -> Result<Vec<Value>, DataError> {
    fn fixed<const N: usize>(data: &[u8], read: impl Fn([u8; N]) -> Value) -> Result<Vec<Value>, DataError> {
        if !data.len().is_multiple_of(N) {
            return Err(DataError::Ragged { length: data.len(), width: N });
        }
        Ok(data.chunks_exact(N).map(|chunk| read(chunk.try_into().unwrap_or([0; N]))).collect())
    }
    match datatype {
        Datatype::Bool => fixed::<1>(data, |[b]| json!(b != 0)),
        Datatype::Uint8 => fixed::<1>(data, |[b]| json!(b)),
        Datatype::Int8 => fixed::<1>(data, |b| json!(i8::from_le_bytes(b))),
        Datatype::Uint16 => fixed::<2>(data, |b| json!(u16::from_le_bytes(b))),
        Datatype::Int16 => fixed::<2>(data, |b| json!(i16::from_le_bytes(b))),
        Datatype::Fp16 => fixed::<2>(data, |b| json!(f16_to_f32(u16::from_le_bytes(b)))),
        Datatype::Uint32 => fixed::<4>(data, |b| json!(u32::from_le_bytes(b))),
        Datatype::Int32 => fixed::<4>(data, |b| json!(i32::from_le_bytes(b))),
        Datatype::Fp32 => fixed::<4>(data, |b| json!(f32::from_le_bytes(b))),
        Datatype::Uint64 => fixed::<8>(data, |b| json!(u64::from_le_bytes(b))),
        Datatype::Int64 => fixed::<8>(data, |b| json!(i64::from_le_bytes(b))),
        Datatype::Fp64 => fixed::<8>(data, |b| json!(f64::from_le_bytes(b))),
        Datatype::Bytes => {
            // Each element: a 4-byte little-endian length, then that many bytes.
            let mut values = Vec::new();
            let mut rest = data;
            while !rest.is_empty() {
                let (length, after) = rest.split_at_checked(4).ok_or(DataError::CutShort)?;
                let length = u32::from_le_bytes(length.try_into().unwrap_or([0; 4])) as usize;
                let (element, after) = after.split_at_checked(length).ok_or(DataError::CutShort)?;
                values.push(Value::String(String::from_utf8_lossy(element).into_owned()));
                rest = after;
            }
            Ok(values)
        }
    }
}

/// JSON values as little-endian `datatype`; `None` for a value the type cannot hold (and for
/// FP16, which answers are not written in).
pub(crate) fn encode(datatype: Datatype, values: &[Value], out: &mut Vec<u8>) -> Option<()> {
    fn int<T: TryFrom<i64>>(value: &Value) -> Option<T> {
        T::try_from(value.as_i64()?).ok()
    }
    for value in values {
        match datatype {
            Datatype::Bool => out.push(u8::from(value.as_bool()?)),
            Datatype::Int8 => out.extend_from_slice(&int::<i8>(value)?.to_le_bytes()),
            Datatype::Int16 => out.extend_from_slice(&int::<i16>(value)?.to_le_bytes()),
            Datatype::Int32 => out.extend_from_slice(&int::<i32>(value)?.to_le_bytes()),
            Datatype::Int64 => out.extend_from_slice(&value.as_i64()?.to_le_bytes()),
            Datatype::Uint8 => out.extend_from_slice(&int::<u8>(value)?.to_le_bytes()),
            Datatype::Uint16 => out.extend_from_slice(&int::<u16>(value)?.to_le_bytes()),
            Datatype::Uint32 => out.extend_from_slice(&int::<u32>(value)?.to_le_bytes()),
            Datatype::Uint64 => out.extend_from_slice(&value.as_u64()?.to_le_bytes()),
            Datatype::Fp64 => out.extend_from_slice(&value.as_f64()?.to_le_bytes()),
            Datatype::Fp32 => out.extend_from_slice(&(value.as_f64()? as f32).to_le_bytes()),
            Datatype::Fp16 => return None,
            Datatype::Bytes => {
                let text = match value {
                    Value::String(text) => std::borrow::Cow::Borrowed(text.as_str()),
                    other => std::borrow::Cow::Owned(other.to_string()),
                };
                out.extend_from_slice(&u32::try_from(text.len()).ok()?.to_le_bytes());
                out.extend_from_slice(text.as_bytes());
            }
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
        let (body, answer_head) = write_answer(&serde_json::to_vec(&answer).unwrap()).unwrap();
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
