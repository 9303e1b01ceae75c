//! Conversions between [`Tensor`]s (axis 0 = rows) and Arrow columns (one value per row).
//!
//! Convention: a row of shape `[]` is a primitive column, `[d]` is `FixedSizeList<T, d>`,
//! `[a, b]` is `FixedSizeList<FixedSizeList<T, b>, a>`, and an axis that is dynamic in the model
//! signature (e.g. the sequence length) becomes a `List` at its level instead. List children are
//! named `item` and are not nullable; stored tensor columns never hold nulls.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, FixedSizeListArray, Float16Array, Float32Array, Float64Array,
    Int32Array, Int64Array, ListArray, PrimitiveArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{ArrowPrimitiveType, DataType, Field};
use arrow::record_batch::RecordBatch;
use half::f16;

use super::{FeatureDType, StoreError};
use crate::{DType, Tensor, TensorData};

/// Label used in errors when a conversion is called without a column name.
const UNNAMED: &str = "<array>";

/// The element type a tensor of `dtype` is stored as: floats follow `feature`, others stay.
pub fn stored_dtype(dtype: DType, feature: FeatureDType) -> DType {
    if dtype.is_float() {
        match feature {
            FeatureDType::F32 => DType::F32,
            FeatureDType::F16 => DType::F16,
        }
    } else {
        dtype
    }
}

/// The Arrow type of one element of `dtype`.
pub fn element_arrow_type(dtype: DType) -> DataType {
    match dtype {
        DType::F32 => DataType::Float32,
        DType::F16 => DataType::Float16,
        DType::F64 => DataType::Float64,
        DType::I64 => DataType::Int64,
        DType::I32 => DataType::Int32,
        DType::Bool => DataType::Boolean,
    }
}

/// The Arrow type of a column whose rows have `row_shape`; `dynamic[i]` makes row axis `i` a
/// `List` (an empty `dynamic` means all axes are fixed).
pub fn column_arrow_type(dtype: DType, row_shape: &[usize], dynamic: &[bool]) -> DataType {
    let mut dt = element_arrow_type(dtype);
    for (i, &d) in row_shape.iter().enumerate().rev() {
        let field = Arc::new(Field::new_list_field(dt, false));
        dt = if dynamic.get(i).copied().unwrap_or(false) {
            DataType::List(field)
        } else {
            DataType::FixedSizeList(field, d as i32)
        };
    }
    dt
}

/// Converts a tensor `[rows, ...]` into a column of `rows` values, all row axes fixed; float
/// tensors are stored as `feature` (f32 or f16), other dtypes as they are.
pub fn tensor_to_array(t: &Tensor, feature: FeatureDType) -> Result<ArrayRef, StoreError> {
    tensor_to_column(UNNAMED, t, stored_dtype(t.dtype(), feature), &[])
}

/// Converts a tensor `[rows, ...]` into the column `column`, stored as element type `stored`
/// (float <-> float conversions only), with row axis `i` a `List` where `dynamic[i]` is true.
pub fn tensor_to_column(
    column: &str,
    t: &Tensor,
    stored: DType,
    dynamic: &[bool],
) -> Result<ArrayRef, StoreError> {
    let shape = t.shape();
    let Some((&rows, row_shape)) = shape.split_first() else {
        return Err(invalid(
            column,
            "a scalar tensor has no rows: expected shape [rows, ...]",
        ));
    };
    if !dynamic.is_empty() && dynamic.len() != row_shape.len() {
        return Err(invalid(
            column,
            &format!(
                "rows have {} axes {:?}, expected {}",
                row_shape.len(),
                row_shape,
                dynamic.len()
            ),
        ));
    }
    if let Some(i) = row_shape.iter().position(|&d| d == 0) {
        return Err(invalid(
            column,
            &format!("row axis {} has size 0 (shape {:?})", i + 1, shape),
        ));
    }
    if t.data().len() > i32::MAX as usize || row_shape.iter().any(|&d| d > i32::MAX as usize) {
        return Err(invalid(
            column,
            &format!("tensor of shape {shape:?} is too large for one Arrow column"),
        ));
    }
    let mut arr = convert_elements(column, t.data(), stored)?;
    for (j, &d) in row_shape.iter().enumerate().rev() {
        let outer: usize = rows * row_shape[..j].iter().product::<usize>();
        let field = Arc::new(Field::new_list_field(arr.data_type().clone(), false));
        arr = if dynamic.get(j).copied().unwrap_or(false) {
            let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(d, outer));
            Arc::new(ListArray::try_new(field, offsets, arr, None)?)
        } else {
            Arc::new(FixedSizeListArray::try_new(field, d as i32, arr, None)?)
        };
    }
    Ok(arr)
}

/// Converts a column back into a tensor `[rows, row_shape...]` of element type `dtype`.
/// Every row must have exactly `row_shape` (for `List` axes, pass the actual lengths, or use
/// [`array_to_tensor_dyn`] to infer them).
pub fn array_to_tensor(
    a: &dyn Array,
    dtype: DType,
    row_shape: &[usize],
) -> Result<Tensor, StoreError> {
    let expected: Vec<Option<usize>> = row_shape.iter().map(|&d| Some(d)).collect();
    flatten(UNNAMED, a, dtype, Some(&expected))
}

/// Like [`array_to_tensor`], inferring the row shape from the data; rows of different
/// lengths (ragged `List` columns) are an error naming the first row that differs.
pub fn array_to_tensor_dyn(a: &dyn Array, dtype: DType) -> Result<Tensor, StoreError> {
    flatten(UNNAMED, a, dtype, None)
}

/// Reads the column `column` of a record batch as a tensor of element type `dtype`, inferring
/// the row shape (see [`array_to_tensor_dyn`]); errors name the column.
pub fn column_to_tensor(
    batch: &RecordBatch,
    column: &str,
    dtype: DType,
) -> Result<Tensor, StoreError> {
    let a = batch.column_by_name(column).ok_or_else(|| {
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        StoreError::InvalidRows(format!(
            "no column {column:?} in the batch (columns: {})",
            names.join(", ")
        ))
    })?;
    flatten(column, a.as_ref(), dtype, None)
}

/// Like [`array_to_tensor`] with the column name in errors.
pub fn column_array_to_tensor(
    column: &str,
    a: &dyn Array,
    dtype: DType,
    row_shape: &[usize],
) -> Result<Tensor, StoreError> {
    let expected: Vec<Option<usize>> = row_shape.iter().map(|&d| Some(d)).collect();
    flatten(column, a, dtype, Some(&expected))
}

fn invalid(column: &str, msg: &str) -> StoreError {
    StoreError::InvalidRows(format!("column {column:?}: {msg}"))
}

/// Walks the list levels down to the primitive values, checking widths (or inferring them).
fn flatten(
    column: &str,
    a: &dyn Array,
    dtype: DType,
    expected: Option<&[Option<usize>]>,
) -> Result<Tensor, StoreError> {
    let rows = a.len();
    let mut shape = vec![rows];
    let mut cur: ArrayRef = a.slice(0, a.len());
    // Items at the current level; `per_row` of them belong to one row.
    let mut items = rows;
    let mut per_row = 1usize;
    let mut level = 0usize;
    loop {
        if cur.null_count() > 0 {
            return Err(invalid(
                column,
                &format!("holds nulls at axis {level}; stored tensor columns must not"),
            ));
        }
        let want = expected.and_then(|e| e.get(level).copied().flatten());
        let (width, child): (usize, ArrayRef) = match cur.data_type() {
            DataType::FixedSizeList(_, w) => {
                let l = cur
                    .as_any()
                    .downcast_ref::<FixedSizeListArray>()
                    .ok_or_else(|| invalid(column, "not a FixedSizeList array"))?;
                (*w as usize, l.values().clone())
            }
            DataType::List(_) => {
                let l = cur
                    .as_any()
                    .downcast_ref::<ListArray>()
                    .ok_or_else(|| invalid(column, "not a List array"))?;
                let offs = l.value_offsets();
                let first = offs.first().copied().unwrap_or(0) as usize;
                let last = offs.last().copied().unwrap_or(0) as usize;
                let mut width = want;
                for (i, w) in offs.windows(2).enumerate() {
                    let len = (w[1] - w[0]) as usize;
                    match width {
                        None => width = Some(len),
                        Some(x) if x != len => {
                            let what = match want {
                                Some(_) => format!("expected {x}"),
                                None => "unlike the first row".to_string(),
                            };
                            return Err(invalid(
                                column,
                                &format!(
                                    "row {} has {len} values on axis {}, {what} (ragged rows cannot form a tensor)",
                                    i / per_row.max(1),
                                    level + 1
                                ),
                            ));
                        }
                        Some(_) => {}
                    }
                }
                (width.unwrap_or(0), l.values().slice(first, last - first))
            }
            _ => break,
        };
        if let Some(w) = want {
            if w != width {
                return Err(invalid(
                    column,
                    &format!(
                        "rows have width {width} on axis {}, expected {w}",
                        level + 1
                    ),
                ));
            }
        }
        shape.push(width);
        items *= width;
        per_row *= width;
        cur = child;
        level += 1;
    }
    if let Some(e) = expected {
        if e.len() != level {
            return Err(invalid(
                column,
                &format!(
                    "rows have {level} axes ({:?}), expected row shape with {} axes {:?}",
                    &shape[1..],
                    e.len(),
                    e.iter().map(|d| d.unwrap_or(0)).collect::<Vec<_>>()
                ),
            ));
        }
    }
    if cur.len() != items {
        return Err(invalid(
            column,
            &format!("holds {} values, expected {items}", cur.len()),
        ));
    }
    let data = read_elements(column, cur.as_ref(), dtype)?;
    Tensor::new(shape, data).map_err(|e| invalid(column, &e.to_string()))
}

fn prim<T: ArrowPrimitiveType>(a: &dyn Array) -> Option<&[T::Native]> {
    a.as_any()
        .downcast_ref::<PrimitiveArray<T>>()
        .map(|p| p.values().as_ref())
}

/// Reads primitive values as `dtype` (float <-> float, i32 -> i64 widening, or exact).
fn read_elements(column: &str, a: &dyn Array, dtype: DType) -> Result<TensorData, StoreError> {
    use arrow::datatypes::{Float16Type, Float32Type, Float64Type, Int32Type, Int64Type};
    let bad = || {
        invalid(
            column,
            &format!("elements are {}, cannot be read as {dtype}", a.data_type()),
        )
    };
    let data = match (a.data_type(), dtype) {
        (DataType::Float32, _) | (DataType::Float16, _) | (DataType::Float64, _)
            if dtype.is_float() =>
        {
            match a.data_type() {
                DataType::Float32 => {
                    let v = prim::<Float32Type>(a).ok_or_else(bad)?;
                    float_from(v.iter().map(|&x| x as f64), v.len(), dtype, Some(v), None)
                }
                DataType::Float16 => {
                    let v = prim::<Float16Type>(a).ok_or_else(bad)?;
                    float_from(v.iter().map(|x| x.to_f64()), v.len(), dtype, None, Some(v))
                }
                _ => {
                    let v = prim::<Float64Type>(a).ok_or_else(bad)?;
                    float_from(v.iter().copied(), v.len(), dtype, None, None)
                }
            }
        }
        (DataType::Int64, DType::I64) => {
            TensorData::I64(prim::<Int64Type>(a).ok_or_else(bad)?.to_vec())
        }
        (DataType::Int32, DType::I32) => {
            TensorData::I32(prim::<Int32Type>(a).ok_or_else(bad)?.to_vec())
        }
        (DataType::Int32, DType::I64) => TensorData::I64(
            prim::<Int32Type>(a)
                .ok_or_else(bad)?
                .iter()
                .map(|&x| x as i64)
                .collect(),
        ),
        (DataType::Boolean, DType::Bool) => {
            let b = a.as_any().downcast_ref::<BooleanArray>().ok_or_else(bad)?;
            TensorData::Bool(b.values().iter().collect())
        }
        _ => return Err(bad()),
    };
    Ok(data)
}

/// Builds float tensor data of `dtype`, copying directly when the source already matches.
fn float_from(
    it: impl Iterator<Item = f64>,
    len: usize,
    dtype: DType,
    src_f32: Option<&[f32]>,
    src_f16: Option<&[f16]>,
) -> TensorData {
    match dtype {
        DType::F32 => match (src_f32, src_f16) {
            (Some(v), _) => TensorData::F32(v.to_vec()),
            (_, Some(v)) => TensorData::F32(v.iter().map(|x| x.to_f32()).collect()),
            _ => TensorData::F32(it.map(|x| x as f32).collect()),
        },
        DType::F16 => match (src_f16, src_f32) {
            (Some(v), _) => TensorData::F16(v.to_vec()),
            (_, Some(v)) => TensorData::F16(v.iter().map(|&x| f16::from_f32(x)).collect()),
            _ => TensorData::F16(it.map(f16::from_f64).collect()),
        },
        _ => {
            let mut out = Vec::with_capacity(len);
            out.extend(it);
            TensorData::F64(out)
        }
    }
}

/// Converts tensor elements into a primitive Arrow array of element type `stored`.
fn convert_elements(column: &str, d: &TensorData, stored: DType) -> Result<ArrayRef, StoreError> {
    let arr: ArrayRef = match (d, stored) {
        (TensorData::F32(v), DType::F32) => Arc::new(Float32Array::from(v.clone())),
        (TensorData::F32(v), DType::F16) => Arc::new(Float16Array::from(
            v.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>(),
        )),
        (TensorData::F32(v), DType::F64) => Arc::new(Float64Array::from(
            v.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        )),
        (TensorData::F16(v), DType::F16) => Arc::new(Float16Array::from(v.clone())),
        (TensorData::F16(v), DType::F32) => Arc::new(Float32Array::from(
            v.iter().map(|x| x.to_f32()).collect::<Vec<_>>(),
        )),
        (TensorData::F16(v), DType::F64) => Arc::new(Float64Array::from(
            v.iter().map(|x| x.to_f64()).collect::<Vec<_>>(),
        )),
        (TensorData::F64(v), DType::F64) => Arc::new(Float64Array::from(v.clone())),
        (TensorData::F64(v), DType::F32) => Arc::new(Float32Array::from(
            v.iter().map(|&x| x as f32).collect::<Vec<_>>(),
        )),
        (TensorData::F64(v), DType::F16) => Arc::new(Float16Array::from(
            v.iter().map(|&x| f16::from_f64(x)).collect::<Vec<_>>(),
        )),
        (TensorData::I64(v), DType::I64) => Arc::new(Int64Array::from(v.clone())),
        (TensorData::I32(v), DType::I32) => Arc::new(Int32Array::from(v.clone())),
        (TensorData::Bool(v), DType::Bool) => Arc::new(BooleanArray::from(v.clone())),
        _ => {
            return Err(invalid(
                column,
                &format!("{} tensor cannot be stored as {stored}", d.dtype()),
            ))
        }
    };
    Ok(arr)
}
