//! Appends Arrow column values to compact host buffers (f32 rows, u32 labels, ids), checking
//! types, widths, nulls and non-finite values on the way; errors name column, file and row.

use std::path::Path;

use arrow::array::{Array, AsArray, PrimitiveArray};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Float32Type, Int16Type, Int32Type, Int64Type, Int8Type,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use distill_proto::arrow_codec::{extend_f32, flatten, string_values, ColumnError, ColumnProblem};

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

/// The trainer's form of a codec error: a null keeps its row (counted from the start of the
/// source, hence `first_row`), anything else names what is wrong.
fn from_column(path: &Path, first_row: usize, e: ColumnError) -> DataError {
    match e.problem {
        ColumnProblem::Null { row, .. } => DataError::NullValue {
            column: e.column,
            source_path: path.display().to_string(),
            row: first_row + row,
        },
        problem => DataError::BadColumn {
            column: e.column,
            source_path: path.display().to_string(),
            message: problem.to_string(),
        },
    }
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
    if !matches!(arr.data_type(), DataType::FixedSizeList(..)) {
        return Err(bad(
            column,
            path,
            format!("expected a FixedSizeList, found {}", arr.data_type()),
        ));
    }
    let flat =
        flatten(column, arr, Some(&[Some(width)])).map_err(|e| from_column(path, first_row, e))?;
    let start = out.len();
    extend_f32(column, flat.values.as_ref(), out).map_err(|e| from_column(path, first_row, e))?;
    if let Some(pos) = out[start..].iter().position(|x| !x.is_finite()) {
        return Err(DataError::NonFinite {
            column: column.into(),
            source_path: path.display().to_string(),
            row: first_row + pos / width.max(1),
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
    let refused = || {
        bad(
            column,
            path,
            format!(
                "expected FixedSizeList<Int32, {k}> without nulls, found {}",
                arr.data_type()
            ),
        )
    };
    if !matches!(arr.data_type(), DataType::FixedSizeList(..)) {
        return Err(refused());
    }
    let flat = flatten(column, arr, Some(&[Some(k)])).map_err(|_| refused())?;
    append_labels(column, path, flat.values.as_ref(), first_row * k, out)
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
    out.extend(string_values(column, arr).map_err(|e| from_column(path, first_row, e))?);
    Ok(())
}

/// Appends a UInt64 column (view seeds) as is; nulls are refused.
pub fn append_u64s(
    column: &str,
    path: &Path,
    arr: &dyn Array,
    first_row: usize,
    out: &mut Vec<u64>,
) -> Result<(), DataError> {
    let a: &PrimitiveArray<UInt64Type> = arr.as_primitive_opt().ok_or_else(|| {
        bad(
            column,
            path,
            format!("expected UInt64, found {}", arr.data_type()),
        )
    })?;
    if let Some(i) = (0..a.len()).find(|&i| a.is_null(i)) {
        return Err(DataError::NullValue {
            column: column.into(),
            source_path: path.display().to_string(),
            row: first_row + i,
        });
    }
    out.extend_from_slice(a.values());
    Ok(())
}
