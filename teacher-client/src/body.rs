//! Request bodies: a record batch as an Arrow IPC stream, or as the JSON `ScoreRequest`
//! (the JSON form is used by the benchmark to compare the two encodings on the same rows).

use std::collections::BTreeMap;

use arrow::array::{
    Array, AsArray, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int32Array,
    Int64Array,
};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type};
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use distill_proto::api::ScoreRequest;
use serde_json::Value;

/// Errors turning a batch into a request body.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Arrow IPC encoding failed.
    #[error("encoding Arrow IPC: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A column type the JSON encoding does not cover.
    #[error("column {column:?} of type {data_type} cannot be sent as JSON")]
    Unsupported {
        /// The column that has no JSON form.
        column: String,
        /// Its type.
        data_type: String,
    },
    /// The batch has no `id` Utf8 column first.
    #[error("batch has no Utf8 `id` column")]
    NoIds,
    /// Serialising JSON failed.
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Encodes one batch as an Arrow IPC stream (schema message, one batch, end marker).
pub fn arrow_ipc_body(batch: &RecordBatch) -> Result<Vec<u8>, BodyError> {
    let mut writer = StreamWriter::try_new(Vec::new(), &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    Ok(writer.into_inner()?)
}

/// Encodes one batch as a JSON `ScoreRequest`: column 0 is `id`, the columns named in
/// `inputs` are model inputs (nested arrays `[batch, n]`), all others are pass-through columns.
/// Floats are written in their shortest round-trip form (as Python's `json` would write
/// `float32` values), so the JSON is no bigger than it has to be.
pub fn json_body(
    batch: &RecordBatch,
    inputs: &[String],
    dataset: Option<&str>,
) -> Result<Vec<u8>, BodyError> {
    let schema = batch.schema();
    let mut ids: Option<Vec<String>> = None;
    let mut input_json: BTreeMap<String, String> = BTreeMap::new();
    let mut columns: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let name = field.name();
        if name == "id" {
            let s = array.as_string_opt::<i32>().ok_or(BodyError::NoIds)?;
            ids = Some((0..s.len()).map(|i| s.value(i).to_string()).collect());
        } else if inputs.iter().any(|i| i == name) {
            input_json.insert(name.clone(), nested_rows(name, array.as_ref())?);
        } else {
            columns.insert(name.clone(), scalar_values(name, array.as_ref())?);
        }
    }
    let ids = ids.ok_or(BodyError::NoIds)?;
    // Written by hand rather than through `ScoreRequest` so the float arrays need no
    // intermediate `serde_json::Value` tree; the field names are `ScoreRequest`'s constants.
    let key = |out: &mut String, name: &str| {
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
    };
    let mut out = String::with_capacity(input_json.values().map(String::len).sum::<usize>() + 64);
    out.push('{');
    if let Some(d) = dataset {
        key(&mut out, ScoreRequest::FIELD_DATASET);
        out.push_str(&serde_json::to_string(d)?);
        out.push(',');
    }
    key(&mut out, ScoreRequest::FIELD_IDS);
    out.push_str(&serde_json::to_string(&ids)?);
    out.push(',');
    key(&mut out, ScoreRequest::FIELD_INPUTS);
    out.push('{');
    for (i, (name, json)) in input_json.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(name)?);
        out.push(':');
        out.push_str(json);
    }
    out.push('}');
    if !columns.is_empty() {
        out.push(',');
        key(&mut out, ScoreRequest::FIELD_COLUMNS);
        out.push_str(&serde_json::to_string(&columns)?);
    }
    out.push('}');
    Ok(out.into_bytes())
}

/// Writes one float in its shortest round-trip decimal form, integral values with a `.0`
/// (Rust's `Debug` form, e.g. `5.0`, `0.1`, `1e-8`); JSON has no NaN/inf (`null`).
fn push_float<T: std::fmt::Debug>(out: &mut String, v: T, finite: bool) {
    use std::fmt::Write;
    if finite {
        let _ = write!(out, "{v:?}");
    } else {
        out.push_str("null");
    }
}

/// A FixedSizeList column as the JSON text `[[v, ...], ...]`; a Utf8 (text input) column as
/// `["sentence", ...]`.
fn nested_rows(column: &str, array: &dyn Array) -> Result<String, BodyError> {
    if let Some(text) = array.as_string_opt::<i32>() {
        return text_rows(column, text);
    }
    let list: &FixedSizeListArray = array
        .as_fixed_size_list_opt()
        .ok_or_else(|| unsupported(column, array))?;
    let n = list.value_length() as usize;
    let values = list.values().slice(list.offset() * n, list.len() * n);
    let mut out = String::with_capacity(values.len() * 12 + 2);
    out.push('[');
    for row in 0..list.len() {
        if row > 0 {
            out.push(',');
        }
        out.push('[');
        for j in 0..n {
            if j > 0 {
                out.push(',');
            }
            let k = row * n + j;
            match values.data_type() {
                DataType::Float32 => {
                    let v = values.as_primitive::<Float32Type>().value(k);
                    push_float(&mut out, v, v.is_finite());
                }
                DataType::Float64 => {
                    let v = values.as_primitive::<Float64Type>().value(k);
                    push_float(&mut out, v, v.is_finite());
                }
                DataType::Int64 => {
                    let v = values.as_primitive::<Int64Type>().value(k);
                    out.push_str(&v.to_string());
                }
                DataType::Int32 => {
                    let v = values.as_primitive::<Int32Type>().value(k);
                    out.push_str(&v.to_string());
                }
                DataType::Boolean => {
                    let v = values.as_boolean().value(k);
                    out.push_str(if v { "true" } else { "false" });
                }
                _ => return Err(unsupported(column, array)),
            }
        }
        out.push(']');
    }
    out.push(']');
    Ok(out)
}

/// A text input column as a JSON list of strings (a null cannot be a sentence).
fn text_rows(column: &str, text: &arrow::array::StringArray) -> Result<String, BodyError> {
    if text.null_count() > 0 {
        return Err(BodyError::Unsupported {
            column: column.to_string(),
            data_type: "Utf8 with nulls".to_string(),
        });
    }
    let sentences: Vec<&str> = text.iter().flatten().collect();
    Ok(serde_json::to_string(&sentences)?)
}

fn unsupported(column: &str, array: &dyn Array) -> BodyError {
    BodyError::Unsupported {
        column: column.to_string(),
        data_type: array.data_type().to_string(),
    }
}

/// A primitive or string column as one JSON value per row.
fn scalar_values(column: &str, array: &dyn Array) -> Result<Vec<Value>, BodyError> {
    fn collect<T, F: Fn(T) -> Value>(it: impl Iterator<Item = Option<T>>, f: F) -> Vec<Value> {
        it.map(|v| v.map(&f).unwrap_or(Value::Null)).collect()
    }
    Ok(match array.data_type() {
        DataType::Float32 => {
            let a: &Float32Array = array.as_primitive::<Float32Type>();
            collect(a.iter(), |v| {
                serde_json::Number::from_f64(v as f64).map_or(Value::Null, Value::Number)
            })
        }
        DataType::Float64 => {
            let a: &Float64Array = array.as_primitive::<Float64Type>();
            collect(a.iter(), |v| {
                serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
            })
        }
        DataType::Int64 => {
            let a: &Int64Array = array.as_primitive::<Int64Type>();
            collect(a.iter(), Value::from)
        }
        DataType::Int32 => {
            let a: &Int32Array = array.as_primitive::<Int32Type>();
            collect(a.iter(), Value::from)
        }
        DataType::Boolean => {
            let a: &BooleanArray = array.as_boolean();
            collect(a.iter(), Value::from)
        }
        DataType::Utf8 => collect(array.as_string::<i32>().iter(), Value::from),
        _ => return Err(unsupported(column, array)),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn json_body_is_a_score_request() {
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let x: ArrayRef = Arc::new(FixedSizeListArray::new(
            item,
            2,
            Arc::new(Float32Array::from(vec![0.5, 1.0, -2.0, 0.1])),
            None,
        ));
        let ids: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        let label: ArrayRef = Arc::new(Int64Array::from(vec![3, 4]));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("x", x.data_type().clone(), false),
            Field::new("label", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(schema, vec![ids, x, label]).unwrap();
        let body = json_body(&batch, &["x".to_string()], Some("d")).unwrap();
        // deny_unknown_fields: every key the body has is one of the request's.
        let req: ScoreRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(req.dataset.as_deref(), Some("d"));
        assert_eq!(req.ids, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(
            req.inputs["x"],
            serde_json::json!([[0.5, 1.0], [-2.0, 0.1]])
        );
        assert_eq!(
            req.columns["label"],
            vec![serde_json::json!(3), serde_json::json!(4)]
        );
        assert_eq!(req.return_outputs, None);
        let plain = json_body(&batch, &["x".to_string()], None).unwrap();
        let req: ScoreRequest = serde_json::from_slice(&plain).unwrap();
        assert_eq!(req.dataset, None);
    }
}
