//! Request bodies (JSON or Arrow IPC) decoded into typed tensors and pass-through columns.
//! Shapes are checked against the signature later, in `validate`.

pub mod arrow_ipc;
pub mod json;

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use distill_proto::NamedTensors;

use crate::error::InvalidInput;

/// A decoded `POST /v1/score` body, before validation against the model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodedRequest {
    /// Dataset to store into, if any.
    pub dataset: Option<String>,
    /// Row ids, if given.
    pub ids: Option<Vec<String>>,
    /// Model inputs by name, in the order received.
    pub inputs: NamedTensors,
    /// Pass-through columns by name.
    pub columns: Vec<(String, ArrayRef)>,
    /// Outputs to echo, if given.
    pub return_outputs: Option<Vec<String>>,
    /// The rows' text, for a text teacher (`inputs.text` / a Utf8 `text` column).
    pub text: Option<Vec<String>>,
}

/// Options that change what decoding accepts.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeOptions {
    /// Accept NaN and infinities in float inputs.
    pub allow_non_finite: bool,
    /// Accept a text input ([`crate::text::TEXT_INPUT`]): the server has a tokenizer.
    pub text: bool,
}

/// Builds an Arrow column from JSON values: all integers → Int64, numbers → Float64,
/// strings → Utf8, booleans → Boolean; anything else (or a mix) is refused.
pub fn json_column(name: &str, values: &[serde_json::Value]) -> Result<ArrayRef, InvalidInput> {
    use serde_json::Value;
    let field = format!("columns.{name}");
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() => "int",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let mut kinds: Vec<&str> = values.iter().map(kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mismatch = |expected: &str, i: usize, v: &Value| {
        InvalidInput::new(
            "invalid_column",
            field.clone(),
            format!(
                "a column must hold one type for all rows: expected {expected}, row {i} is {} ({v})",
                kind(v)
            ),
        )
    };
    let array: ArrayRef = match kinds.as_slice() {
        [] | ["int"] => Arc::new(Int64Array::from(
            values
                .iter()
                .map(|v| v.as_i64().unwrap_or_default())
                .collect::<Vec<_>>(),
        )),
        ["float"] | ["float", "int"] => {
            let mut out = Vec::with_capacity(values.len());
            for (i, v) in values.iter().enumerate() {
                // Integers beyond i64 (u64) are still numbers; as_f64 handles every Number.
                out.push(v.as_f64().ok_or_else(|| mismatch("numbers", i, v))?);
            }
            Arc::new(Float64Array::from(out))
        }
        ["string"] => Arc::new(StringArray::from(
            values
                .iter()
                .map(|v| v.as_str().unwrap_or_default())
                .collect::<Vec<_>>(),
        )),
        ["bool"] => Arc::new(BooleanArray::from(
            values
                .iter()
                .map(|v| v.as_bool().unwrap_or_default())
                .collect::<Vec<_>>(),
        )),
        _ => {
            let first = values.first().map(kind).unwrap_or("int");
            let expected = match first {
                "int" | "float" => "numbers",
                "string" => "strings",
                "bool" => "booleans",
                other => {
                    return Err(InvalidInput::new(
                        "invalid_column",
                        field,
                        format!(
                            "column values must be numbers, strings or booleans, row 0 is {other}"
                        ),
                    ))
                }
            };
            let (i, v) = values
                .iter()
                .enumerate()
                .find(|(_, v)| {
                    let k = kind(v);
                    match first {
                        "int" | "float" => k != "int" && k != "float",
                        other => k != other,
                    }
                })
                .unwrap_or((0, &values[0]));
            return Err(mismatch(expected, i, v));
        }
    };
    Ok(array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;
    use serde_json::json;

    fn col(v: serde_json::Value) -> Result<ArrayRef, InvalidInput> {
        json_column("c", v.as_array().unwrap())
    }

    #[test]
    fn column_types_follow_json() {
        assert_eq!(col(json!([1, 2])).unwrap().data_type(), &DataType::Int64);
        assert_eq!(
            col(json!([1, 2.5])).unwrap().data_type(),
            &DataType::Float64
        );
        assert_eq!(col(json!(["a", "b"])).unwrap().data_type(), &DataType::Utf8);
        assert_eq!(
            col(json!([true, false])).unwrap().data_type(),
            &DataType::Boolean
        );
    }

    #[test]
    fn mixed_columns_are_refused() {
        let e = col(json!([1, "a"])).unwrap_err();
        assert_eq!(e.field, "columns.c");
        assert!(e.message.contains("row 1"), "{}", e.message);
        assert!(col(json!([null, 1])).is_err());
        assert!(col(json!([[1], [2]])).is_err());
        assert!(col(json!([true, 1])).is_err());
    }
}
