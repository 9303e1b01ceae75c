//! The Arrow IPC stream body of `POST /v1/score`: an `id` column, one column per model input
//! (FixedSizeList / List of the input's element type, nested or flattened per row, or a plain
//! column for 1-D inputs), any other column passed through to the store as it is.

use arrow::array::{Array, ArrayRef};
use arrow::buffer::Buffer;
use arrow::compute::concat;
use arrow::ipc::reader::StreamDecoder;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use distill_proto::api::TensorSpec;
use distill_proto::arrow_codec::{column_to_tensor_shaped, string_values, Cast};
use distill_proto::{NamedTensors, Tensor, TensorData};

use super::{DecodeOptions, DecodedRequest};
use crate::error::InvalidInput;
use crate::teacher::Signature;
use crate::text::TEXT_INPUT;

/// Query parameters that travel beside an Arrow body (defined with the API types).
pub use distill_proto::api::ScoreQuery as ArrowQuery;

/// Decodes an Arrow IPC stream body. The record batches point into `body` itself (no copy of
/// the body; only misaligned buffers are copied), and are validated by the decoder. arrow-rs
/// 60 panics on some malformed streams (buffer slices out of bounds: ~5% of mutated streams
/// in `tests/decode_fuzz.rs`); such a panic is a malformed body, answered 400, not a 500.
pub fn decode(
    body: Bytes,
    sig: &Signature,
    query: ArrowQuery,
    opts: DecodeOptions,
) -> Result<DecodedRequest, InvalidInput> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_stream(body, sig, query, opts)
    }))
    .unwrap_or_else(|_| {
        Err(InvalidInput::new(
            "invalid_arrow",
            "body",
            "the Arrow IPC stream is malformed (its buffers do not match its metadata)",
        ))
    })
}

fn decode_stream(
    body: Bytes,
    sig: &Signature,
    query: ArrowQuery,
    opts: DecodeOptions,
) -> Result<DecodedRequest, InvalidInput> {
    let bad = |m: String| InvalidInput::new("invalid_arrow", "body", m);
    let mut buf = Buffer::from(body);
    let mut decoder = StreamDecoder::new();
    let mut batches: Vec<RecordBatch> = Vec::new();
    while !buf.is_empty() {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(batch)) => batches.push(batch),
            Ok(None) if buf.len() == before => break,
            Ok(None) => {}
            Err(e) => return Err(bad(format!("not a valid Arrow IPC stream: {e}"))),
        }
    }
    decoder
        .finish()
        .map_err(|e| bad(format!("the Arrow IPC stream is cut short: {e}")))?;
    let schema = decoder
        .schema()
        .ok_or_else(|| bad("the Arrow IPC stream has no schema message".into()))?;
    let mut ids: Option<Vec<String>> = None;
    let mut inputs = NamedTensors::new();
    let mut columns: Vec<(String, ArrayRef)> = Vec::new();
    let mut text: Option<Vec<String>> = None;
    for (i, field) in schema.fields().iter().enumerate() {
        let name = field.name();
        let parts: Vec<ArrayRef> = batches.iter().map(|b| b.column(i).clone()).collect();
        if name == "id" {
            let mut all = Vec::new();
            for a in &parts {
                all.extend(id_values(a.as_ref())?);
            }
            ids = Some(all);
        } else if opts.text && name == TEXT_INPUT {
            let mut all = Vec::new();
            for a in &parts {
                all.extend(string_values(TEXT_INPUT, a.as_ref()).map_err(|e| {
                    InvalidInput::new(
                        "invalid_text",
                        "inputs.text",
                        format!("the text column {}", e.problem),
                    )
                })?);
            }
            text = Some(all);
        } else if let Some(spec) = sig.input(name) {
            let mut tensors = Vec::with_capacity(parts.len());
            for a in &parts {
                tensors.push(input_tensor(spec, a.as_ref())?);
            }
            let t = if tensors.len() == 1 {
                tensors.pop().unwrap_or_else(|| unreachable!("one tensor"))
            } else if tensors.is_empty() {
                Tensor::new(
                    vec![0; spec.shape.len().max(1)],
                    TensorData::with_capacity(spec.dtype, 0),
                )
                .map_err(|e| bad(e.to_string()))?
            } else {
                Tensor::concat_rows(&tensors).map_err(|e| {
                    InvalidInput::new(
                        "ragged_array",
                        format!("inputs.{name}"),
                        format!("record batches disagree: {e}"),
                    )
                })?
            };
            inputs.push(name.clone(), t);
        } else {
            let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            let col = if refs.len() == 1 {
                parts[0].clone()
            } else if refs.is_empty() {
                arrow::array::new_empty_array(field.data_type())
            } else {
                concat(&refs).map_err(|e| bad(format!("column {name:?}: {e}")))?
            };
            columns.push((name.clone(), col));
        }
    }
    let return_outputs = query.return_outputs.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    });
    Ok(DecodedRequest {
        dataset: query.dataset,
        ids,
        inputs,
        columns,
        return_outputs,
        text,
    })
}

/// The `id` column as strings; nulls are refused.
fn id_values(a: &dyn Array) -> Result<Vec<String>, InvalidInput> {
    string_values("id", a).map_err(|e| {
        InvalidInput::new("invalid_ids", "ids", format!("the id column {}", e.problem))
    })
}

/// One input column as a tensor `[rows, ...]`: nested lists, or one flat list per row shaped
/// by the model's fixed dims.
fn input_tensor(spec: &TensorSpec, a: &dyn Array) -> Result<Tensor, InvalidInput> {
    let field = format!("inputs.{}", spec.name);
    let Some((_, row_dims)) = spec.shape.split_first() else {
        return Err(InvalidInput::new(
            "invalid_rank",
            field,
            "the model declares this input as a scalar, which cannot be batched",
        ));
    };
    Ok(column_to_tensor_shaped(
        &field,
        a,
        spec.dtype,
        row_dims,
        Cast::Exact,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{FixedSizeListArray, Float32Array, Int64Array, ListArray, StringArray};
    use arrow::datatypes::{DataType, Field, Float32Type, Int64Type, Schema};
    use arrow::ipc::writer::StreamWriter;
    use distill_proto::api::Dim;
    use distill_proto::DType;

    fn sig() -> Signature {
        Signature {
            inputs: vec![
                TensorSpec {
                    name: "pixels".into(),
                    dtype: DType::F32,
                    shape: vec![Dim::Dynamic("batch".into()), Dim::Fixed(2), Dim::Fixed(2)],
                },
                TensorSpec {
                    name: "tokens".into(),
                    dtype: DType::I64,
                    shape: vec![Dim::Dynamic("batch".into()), Dim::Dynamic("seq".into())],
                },
            ],
            outputs: vec![],
            unsupported_outputs: vec![],
        }
    }

    fn stream(cols: Vec<(&str, ArrayRef)>) -> Vec<u8> {
        let fields: Vec<Field> = cols
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let batch =
            RecordBatch::try_new(schema.clone(), cols.into_iter().map(|(_, a)| a).collect())
                .unwrap();
        let mut buf = Vec::new();
        let mut w = StreamWriter::try_new(&mut buf, &schema).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
        drop(w);
        buf
    }

    fn pixels(values: Vec<f32>, width: i32) -> ArrayRef {
        let field = Arc::new(Field::new("item", DataType::Float32, false));
        Arc::new(FixedSizeListArray::new(
            field,
            width,
            Arc::new(Float32Array::from(values)),
            None,
        ))
    }

    fn tokens(rows: &[&[i64]]) -> ArrayRef {
        Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
            rows.iter().map(|r| Some(r.iter().map(|&x| Some(x)))),
        ))
    }

    #[test]
    fn flat_rows_take_the_model_shape() {
        let body = stream(vec![
            (
                "id",
                Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
            ),
            ("pixels", pixels((0..8).map(|x| x as f32).collect(), 4)),
            ("tokens", tokens(&[&[1, 2, 3], &[4, 5, 6]])),
            ("label", Arc::new(Int64Array::from(vec![3, 4])) as ArrayRef),
        ]);
        let q = ArrowQuery {
            dataset: Some("d".into()),
            return_outputs: Some("logits, emb".into()),
            truncate: None,
        };
        let r = decode(body.clone().into(), &sig(), q, DecodeOptions::default()).unwrap();
        assert_eq!(r.ids.unwrap(), ["a", "b"]);
        assert_eq!(r.inputs[0].1.shape(), &[2, 2, 2]);
        assert_eq!(r.inputs[1].1.shape(), &[2, 3]);
        assert_eq!(
            r.inputs[1].1.data(),
            &TensorData::I64(vec![1, 2, 3, 4, 5, 6])
        );
        assert_eq!(r.columns.len(), 1);
        assert_eq!(r.return_outputs.unwrap(), ["logits", "emb"]);
    }

    #[test]
    fn bad_columns_are_named() {
        let body = stream(vec![("tokens", tokens(&[&[1, 2], &[3]]))]);
        let e = decode(
            body.clone().into(),
            &sig(),
            ArrowQuery::default(),
            DecodeOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.field.as_str()),
            ("ragged_array", "inputs.tokens")
        );
        let body = stream(vec![("pixels", pixels(vec![0.0; 6], 3))]);
        let e = decode(
            body.clone().into(),
            &sig(),
            ArrowQuery::default(),
            DecodeOptions::default(),
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_shape");
        let body = stream(vec![(
            "tokens",
            Arc::new(Float32Array::from(vec![1.0])) as ArrayRef,
        )]);
        let e = decode(
            body.clone().into(),
            &sig(),
            ArrowQuery::default(),
            DecodeOptions::default(),
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_rank");
        let floats: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(vec![
            Some(vec![Some(1.0f32)]),
        ]));
        let body = stream(vec![("tokens", floats)]);
        let e = decode(
            body.clone().into(),
            &sig(),
            ArrowQuery::default(),
            DecodeOptions::default(),
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_dtype");
        assert!(e.message.contains("i64"), "{}", e.message);
        let body = stream(vec![("tokens", tokens(&[&[1, 2], &[3, 4]]))]);
        let cut = Bytes::from(body[..body.len() - 12].to_vec());
        let e = decode(cut, &sig(), ArrowQuery::default(), DecodeOptions::default()).unwrap_err();
        assert_eq!(e.code, "invalid_arrow");
        let e = decode(
            Bytes::from_static(b"not arrow"),
            &sig(),
            ArrowQuery::default(),
            DecodeOptions::default(),
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_arrow");
    }
}
