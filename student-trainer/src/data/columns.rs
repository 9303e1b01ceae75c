//! Appends Arrow column values to compact host buffers (f32 rows, u32 labels, ids), checking
//! types, widths, nulls and non-finite values on the way; errors name column, file and row.

use std::path::Path;

use arrow::array::{
    Array, AsArray, FixedSizeListArray, Float16Array, Float32Array, Float64Array, PrimitiveArray,
};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Float32Type, Int16Type, Int32Type, Int64Type, Int8Type,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};

use super::DataError;

fn bad(column: &str, path: &Path, message: String) -> DataError {
    DataError::BadColumn {
        column: column.into(),
        source_path: path.display().to_string(),
        message,
    }
}

/// Width of a FixedSizeList column of floats, or an error naming the column.
pub fn float_list_width(column: &str, source: &str, dt: &DataType) -> Result<usize, DataError> {
    match dt {
        DataType::FixedSizeList(item, n)
            if matches!(
                item.data_type(),
                DataType::Float32 | DataType::Float16 | DataType::Float64
            ) && *n > 0 =>
        {
            Ok(*n as usize)
        }
        other => Err(DataError::BadColumn {
            column: column.into(),
            source_path: source.into(),
            message: format!("expected FixedSizeList<Float32|Float16|Float64, d>, found {other}"),
        }),
    }
}

/// Whether a type is an integer scalar (labels).
pub fn is_int_scalar(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// Appends a FixedSizeList<float, width> column to `out`, row-major, as f32.
pub fn append_float_rows(
    column: &str,
    path: &Path,
    arr: &dyn Array,
    width: usize,
    first_row: usize,
    out: &mut Vec<f32>,
) -> Result<(), DataError> {
    let list: &FixedSizeListArray = arr.as_fixed_size_list_opt().ok_or_else(|| {
        bad(
            column,
            path,
            format!("expected a FixedSizeList, found {}", arr.data_type()),
        )
    })?;
    if list.value_length() as usize != width {
        return Err(bad(
            column,
            path,
            format!("width {} differs from {width}", list.value_length()),
        ));
    }
    if let Some(row) = (0..list.len()).find(|&i| list.is_null(i)) {
        return Err(DataError::NullValue {
            column: column.into(),
            source_path: path.display().to_string(),
            row: first_row + row,
        });
    }
    let values = list.values();
    if values.null_count() > 0 {
        let pos = (0..values.len()).find(|&i| values.is_null(i)).unwrap_or(0);
        return Err(DataError::NullValue {
            column: column.into(),
            source_path: path.display().to_string(),
            row: first_row + pos / width,
        });
    }
    let start = out.len();
    match values.data_type() {
        DataType::Float32 => {
            let v: &Float32Array = values.as_primitive();
            out.extend_from_slice(v.values());
        }
        DataType::Float16 => {
            let v: &Float16Array = values.as_primitive();
            out.extend(v.values().iter().map(|x| x.to_f32()));
        }
        DataType::Float64 => {
            let v: &Float64Array = values.as_primitive();
            out.extend(v.values().iter().map(|&x| x as f32));
        }
        other => {
            return Err(bad(
                column,
                path,
                format!("expected float elements, found {other}"),
            ))
        }
    }
    if let Some(pos) = out[start..].iter().position(|x| !x.is_finite()) {
        return Err(DataError::NonFinite {
            column: column.into(),
            source_path: path.display().to_string(),
            row: first_row + pos / width,
        });
    }
    Ok(())
}

fn append_ints<T: ArrowPrimitiveType>(
    column: &str,
    path: &Path,
    arr: &dyn Array,
    first_row: usize,
    out: &mut Vec<u32>,
) -> Result<(), DataError>
where
    T::Native: TryInto<u32> + std::fmt::Display + Copy,
{
    let a: &PrimitiveArray<T> = arr
        .as_primitive_opt()
        .ok_or_else(|| bad(column, path, "unexpected array type".into()))?;
    for (i, v) in a.iter().enumerate() {
        let v = v.ok_or_else(|| DataError::NullValue {
            column: column.into(),
            source_path: path.display().to_string(),
            row: first_row + i,
        })?;
        let u: u32 = v.try_into().map_err(|_| {
            bad(
                column,
                path,
                format!("row {}: label {v} is not a class index", first_row + i),
            )
        })?;
        out.push(u);
    }
    Ok(())
}

/// Appends an integer scalar column (class labels) as u32; negatives are errors.
pub fn append_labels(
    column: &str,
    path: &Path,
    arr: &dyn Array,
    first_row: usize,
    out: &mut Vec<u32>,
) -> Result<(), DataError> {
    match arr.data_type() {
        DataType::Int8 => append_ints::<Int8Type>(column, path, arr, first_row, out),
        DataType::Int16 => append_ints::<Int16Type>(column, path, arr, first_row, out),
        DataType::Int32 => append_ints::<Int32Type>(column, path, arr, first_row, out),
        DataType::Int64 => append_ints::<Int64Type>(column, path, arr, first_row, out),
        DataType::UInt8 => append_ints::<UInt8Type>(column, path, arr, first_row, out),
        DataType::UInt16 => append_ints::<UInt16Type>(column, path, arr, first_row, out),
        DataType::UInt32 => append_ints::<UInt32Type>(column, path, arr, first_row, out),
        DataType::UInt64 => append_ints::<UInt64Type>(column, path, arr, first_row, out),
        other => Err(bad(
            column,
            path,
            format!("expected an integer label column, found {other}"),
        )),
    }
}

/// Appends a FixedSizeList<Int32, k> column of top-k class indices as u32.
pub fn append_index_rows(
    column: &str,
    path: &Path,
    arr: &dyn Array,
    k: usize,
    first_row: usize,
    out: &mut Vec<u32>,
) -> Result<(), DataError> {
    let list: &FixedSizeListArray = arr.as_fixed_size_list_opt().ok_or_else(|| {
        bad(
            column,
            path,
            format!(
                "expected FixedSizeList<Int32, k>, found {}",
                arr.data_type()
            ),
        )
    })?;
    if list.value_length() as usize != k || list.null_count() > 0 {
        return Err(bad(
            column,
            path,
            format!(
                "expected FixedSizeList<Int32, {k}> without nulls, found {}",
                arr.data_type()
            ),
        ));
    }
    let start = out.len();
    append_labels(column, path, list.values().as_ref(), first_row * k, out)?;
    debug_assert_eq!(out.len() - start, list.len() * k);
    Ok(())
}

/// Appends a Float32 scalar column (log-sum-exp of top-k storage).
pub fn append_f32_scalars(
    column: &str,
    path: &Path,
    arr: &dyn Array,
    first_row: usize,
    out: &mut Vec<f32>,
) -> Result<(), DataError> {
    let a: &PrimitiveArray<Float32Type> = arr.as_primitive_opt().ok_or_else(|| {
        bad(
            column,
            path,
            format!("expected Float32, found {}", arr.data_type()),
        )
    })?;
    for (i, v) in a.iter().enumerate() {
        match v {
            Some(x) if x.is_finite() => out.push(x),
            Some(_) => {
                return Err(DataError::NonFinite {
                    column: column.into(),
                    source_path: path.display().to_string(),
                    row: first_row + i,
                })
            }
            None => {
                return Err(DataError::NullValue {
                    column: column.into(),
                    source_path: path.display().to_string(),
                    row: first_row + i,
                })
            }
        }
    }
    Ok(())
}

/// Appends a utf8 id column.
pub fn append_ids(
    column: &str,
    path: &Path,
    arr: &dyn Array,
    first_row: usize,
    out: &mut Vec<String>,
) -> Result<(), DataError> {
    let push = |i: usize, v: Option<&str>, out: &mut Vec<String>| match v {
        Some(s) => {
            out.push(s.to_string());
            Ok(())
        }
        None => Err(DataError::NullValue {
            column: column.into(),
            source_path: path.display().to_string(),
            row: first_row + i,
        }),
    };
    match arr.data_type() {
        DataType::Utf8 => {
            for (i, v) in arr.as_string::<i32>().iter().enumerate() {
                push(i, v, out)?;
            }
        }
        DataType::LargeUtf8 => {
            for (i, v) in arr.as_string::<i64>().iter().enumerate() {
                push(i, v, out)?;
            }
        }
        DataType::Utf8View => {
            for (i, v) in arr.as_string_view().iter().enumerate() {
                push(i, v, out)?;
            }
        }
        other => {
            return Err(bad(
                column,
                path,
                format!("expected a utf8 id column, found {other}"),
            ))
        }
    }
    Ok(())
}
