//! The Arrow IPC stream body of `POST /v1/score`: an `id` column, one column per model input
//! (FixedSizeList / List of the input's element type, nested or flattened per row, or a plain
//! column for 1-D inputs), any other column passed through to the store as it is.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::buffer::Buffer;
use arrow::compute::concat;
use arrow::datatypes::{DataType, Float16Type, Float32Type, Float64Type, Int32Type, Int64Type};
use arrow::ipc::reader::StreamDecoder;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use distill_proto::api::{Dim, TensorSpec};
use distill_proto::{DType, NamedTensors, Tensor, TensorData};

use super::DecodedRequest;
use crate::error::InvalidInput;
use crate::teacher::Signature;
use crate::validate::dims_text;

/// Query parameters that travel beside an Arrow body (defined with the API types).
pub use distill_proto::api::ScoreQuery as ArrowQuery;

/// Decodes an Arrow IPC stream body. The record batches point into `body` itself (no copy of
/// the body; only misaligned buffers are copied), and are validated by the decoder.
pub fn decode(
    body: Bytes,
    sig: &Signature,
    query: ArrowQuery,
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
    for (i, field) in schema.fields().iter().enumerate() {
        let name = field.name();
        let parts: Vec<ArrayRef> = batches.iter().map(|b| b.column(i).clone()).collect();
        if name == "id" {
            let mut all = Vec::new();
            for a in &parts {
                all.extend(id_values(a.as_ref())?);
            }
            ids = Some(all);
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
    })
}

/// The `id` column as strings; nulls are refused.
fn id_values(a: &dyn Array) -> Result<Vec<String>, InvalidInput> {
    let err = |m: String| InvalidInput::new("invalid_ids", "ids", m);
    if a.null_count() > 0 {
        return Err(err("the id column holds nulls".into()));
    }
    let out: Vec<String> = match a.data_type() {
        DataType::Utf8 => a
            .as_string::<i32>()
            .iter()
            .map(|s| s.unwrap_or_default().to_string())
            .collect(),
        DataType::LargeUtf8 => a
            .as_string::<i64>()
            .iter()
            .map(|s| s.unwrap_or_default().to_string())
            .collect(),
        DataType::Utf8View => a
            .as_string_view()
            .iter()
            .map(|s| s.unwrap_or_default().to_string())
            .collect(),
        other => {
            return Err(err(format!(
                "the id column must be Utf8 strings, got {other}"
            )))
        }
    };
    Ok(out)
}

/// One input column as a tensor `[rows, ...]`.
fn input_tensor(spec: &TensorSpec, a: &dyn Array) -> Result<Tensor, InvalidInput> {
    let field = format!("inputs.{}", spec.name);
    let err = |code: &'static str, m: String| InvalidInput::new(code, field.clone(), m);
    let rank = spec.shape.len();
    if rank == 0 {
        return Err(err(
            "invalid_rank",
            "the model declares this input as a scalar, which cannot be batched".into(),
        ));
    }
    let rows = a.len();
    let mut dims: Vec<usize> = Vec::new();
    let mut cur: ArrayRef = arrow::array::make_array(a.to_data());
    loop {
        if cur.null_count() > 0 {
            return Err(err("invalid_arrow", "the column holds nulls".into()));
        }
        let outer = cur.len();
        let next: ArrayRef = match cur.data_type() {
            DataType::FixedSizeList(_, size) => {
                let l = cur.as_fixed_size_list();
                let size = usize::try_from(*size).unwrap_or(0);
                dims.push(size);
                l.values().slice(l.offset() * size, outer * size)
            }
            DataType::List(_) => {
                let l = cur.as_list::<i32>();
                let offsets: Vec<usize> = l
                    .value_offsets()
                    .iter()
                    .map(|&o| o.max(0) as usize)
                    .collect();
                dims.push(list_width(&offsets).map_err(|m| err("ragged_array", m))?);
                let (first, last) = (
                    offsets.first().copied().unwrap_or(0),
                    offsets.last().copied().unwrap_or(0),
                );
                l.values().slice(first, last - first)
            }
            DataType::LargeList(_) => {
                let l = cur.as_list::<i64>();
                let offsets: Vec<usize> = l
                    .value_offsets()
                    .iter()
                    .map(|&o| o.max(0) as usize)
                    .collect();
                dims.push(list_width(&offsets).map_err(|m| err("ragged_array", m))?);
                let (first, last) = (
                    offsets.first().copied().unwrap_or(0),
                    offsets.last().copied().unwrap_or(0),
                );
                l.values().slice(first, last - first)
            }
            _ => break,
        };
        cur = next;
    }
    // Rows may carry the nested row shape, or one flat list whose other axes follow from the
    // model's fixed dims (at most one dynamic axis can be inferred).
    let row_rank = rank - 1;
    let row_shape: Vec<usize> = if dims.len() == row_rank {
        dims
    } else if dims.len() == 1 && row_rank > 1 {
        let width = dims[0];
        let tail = &spec.shape[1..];
        let fixed: usize = tail
            .iter()
            .filter_map(|d| {
                if let Dim::Fixed(n) = d {
                    Some(*n)
                } else {
                    None
                }
            })
            .product();
        let dynamic = tail.iter().filter(|d| matches!(d, Dim::Dynamic(_))).count();
        let inferred = match dynamic {
            0 => None,
            1 if fixed > 0 && width.checked_rem(fixed) == Some(0) => Some(width / fixed),
            _ => {
                return Err(err(
                    "invalid_shape",
                    format!("a flat list of {width} values per row cannot be shaped into {}: send nested lists", dims_text(tail)),
                ))
            }
        };
        let shape: Vec<usize> = tail
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => *n,
                Dim::Dynamic(_) => inferred.unwrap_or(0),
            })
            .collect();
        if shape.iter().product::<usize>() != width {
            return Err(err(
                "invalid_shape",
                format!(
                    "{width} values per row do not fit the input's row shape {}",
                    dims_text(tail)
                ),
            ));
        }
        shape
    } else {
        return Err(err(
            "invalid_rank",
            format!(
                "the column nests {} list levels, but the input has rank {rank} ({} per row expected)",
                dims.len(),
                row_rank
            ),
        ));
    };
    let data = leaf_values(spec.dtype, cur.as_ref()).map_err(|m| err("invalid_dtype", m))?;
    let mut shape = vec![rows];
    shape.extend(row_shape);
    Tensor::new(shape, data).map_err(|e| err("invalid_shape", e.to_string()))
}

/// The common length of variable-size lists; unequal lengths are a ragged input.
fn list_width(offsets: &[usize]) -> Result<usize, String> {
    let mut width = None;
    for (row, w) in offsets.windows(2).enumerate() {
        let n = w[1].saturating_sub(w[0]);
        match width {
            None => width = Some(n),
            Some(m) if m != n => {
                return Err(format!(
                    "ragged lists: row 0 has {m} values, row {row} has {n}"
                ))
            }
            _ => {}
        }
    }
    Ok(width.unwrap_or(0))
}

/// Copies the leaf values, which must be of the input's element type.
fn leaf_values(dtype: DType, a: &dyn Array) -> Result<TensorData, String> {
    let mismatch = || {
        format!(
            "values are Arrow {}, the model expects {dtype}",
            a.data_type()
        )
    };
    Ok(match dtype {
        DType::F32 => TensorData::F32(
            a.as_primitive_opt::<Float32Type>()
                .ok_or_else(mismatch)?
                .values()
                .to_vec(),
        ),
        DType::F16 => TensorData::F16(
            a.as_primitive_opt::<Float16Type>()
                .ok_or_else(mismatch)?
                .values()
                .to_vec(),
        ),
        DType::F64 => TensorData::F64(
            a.as_primitive_opt::<Float64Type>()
                .ok_or_else(mismatch)?
                .values()
                .to_vec(),
        ),
        DType::I64 => TensorData::I64(
            a.as_primitive_opt::<Int64Type>()
                .ok_or_else(mismatch)?
                .values()
                .to_vec(),
        ),
        DType::I32 => TensorData::I32(
            a.as_primitive_opt::<Int32Type>()
                .ok_or_else(mismatch)?
                .values()
                .to_vec(),
        ),
        DType::Bool => TensorData::Bool(
            a.as_boolean_opt()
                .ok_or_else(mismatch)?
                .values()
                .iter()
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{FixedSizeListArray, Float32Array, Int64Array, ListArray, StringArray};
    use arrow::datatypes::{Field, Schema};
    use arrow::ipc::writer::StreamWriter;

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
        };
        let r = decode(body.clone().into(), &sig(), q).unwrap();
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
        let e = decode(body.clone().into(), &sig(), ArrowQuery::default()).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_str()),
            ("ragged_array", "inputs.tokens")
        );
        let body = stream(vec![("pixels", pixels(vec![0.0; 6], 3))]);
        let e = decode(body.clone().into(), &sig(), ArrowQuery::default()).unwrap_err();
        assert_eq!(e.code, "invalid_shape");
        let body = stream(vec![(
            "tokens",
            Arc::new(Float32Array::from(vec![1.0])) as ArrayRef,
        )]);
        let e = decode(body.clone().into(), &sig(), ArrowQuery::default()).unwrap_err();
        assert_eq!(e.code, "invalid_rank");
        let floats: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(vec![
            Some(vec![Some(1.0f32)]),
        ]));
        let body = stream(vec![("tokens", floats)]);
        let e = decode(body.clone().into(), &sig(), ArrowQuery::default()).unwrap_err();
        assert_eq!(e.code, "invalid_dtype");
        assert!(e.message.contains("i64"), "{}", e.message);
        let body = stream(vec![("tokens", tokens(&[&[1, 2], &[3, 4]]))]);
        let cut = Bytes::from(body[..body.len() - 12].to_vec());
        let e = decode(cut, &sig(), ArrowQuery::default()).unwrap_err();
        assert_eq!(e.code, "invalid_arrow");
        let e = decode(
            Bytes::from_static(b"not arrow"),
            &sig(),
            ArrowQuery::default(),
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_arrow");
    }
}
