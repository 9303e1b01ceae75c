//! The one Arrow <-> tensor codec: dense [`Tensor`]s (axis 0 = rows) to and from Arrow columns
//! (one value per row), used by the label store, the server's Arrow IPC decoder and the
//! trainer's Parquet reader.
//!
//! Convention: a row of shape `[]` is a primitive column, `[d]` is `FixedSizeList<T, d>`,
//! `[a, b]` is `FixedSizeList<FixedSizeList<T, b>, a>`, and an axis that is dynamic in the model
//! signature (e.g. the sequence length) becomes a `List` at its level instead. Reading takes
//! `FixedSizeList`, `List` and `LargeList` at any level. Written list children are named `item`
//! and are not nullable.
//!
//! Policies, the same for every caller:
//! - nulls, at any level, are refused (a tensor has no holes), naming the axis and the row;
//! - ragged rows (variable lists whose lengths differ) are refused, naming the first row that
//!   differs; every row of one column must have the same shape;
//! - element types are read exactly ([`Cast::Exact`]) or converted float <-> float and
//!   i32 -> i64 ([`Cast::Convert`]); nothing else is converted.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, Float16Array, Float32Array,
    Float64Array, Int32Array, Int64Array, ListArray, OffsetSizeTrait,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{
    DataType, Field, Float16Type, Float32Type, Float64Type, Int32Type, Int64Type,
};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use half::f16;

use crate::api::{dims_text, Dim};
use crate::{DType, Tensor, TensorData, TensorError};

/// Label used in errors when a conversion is called without a column name.
const UNNAMED: &str = "<array>";

/// A column that does not convert: which column, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("column {column:?}: {problem}")]
pub struct ColumnError {
    /// The column (or request field) at fault, as the caller named it.
    pub column: String,
    /// What is wrong, with the axis and row where that applies.
    pub problem: ColumnProblem,
}

impl ColumnError {
    /// Builds the error of `column`.
    pub fn new(column: impl Into<String>, problem: ColumnProblem) -> Self {
        Self {
            column: column.into(),
            problem,
        }
    }
}

/// What is wrong with a column. Axes count from 1 (axis 0 is the rows); rows from 0.
#[derive(Debug, thiserror::Error)]
pub enum ColumnProblem {
    /// The batch has no column of that name.
    #[error("not in the batch (columns: {})", available.join(", "))]
    Missing {
        /// The columns the batch has.
        available: Vec<String>,
    },
    /// A null at some level; tensor columns must not hold any.
    #[error("holds a null in row {row} (axis {axis}); nulls are refused")]
    Null {
        /// The list level of the first null (0 = the rows themselves).
        axis: usize,
        /// The row the first null belongs to.
        row: usize,
    },
    /// Variable-length lists whose lengths differ, with no expected width to compare to.
    #[error("row {row} has {len} values on axis {axis}, unlike row 0 ({first}): ragged rows cannot form a tensor")]
    Ragged {
        /// The first row that differs.
        row: usize,
        /// The axis whose lengths differ.
        axis: usize,
        /// That row's length on the axis.
        len: usize,
        /// Row 0's length on the axis.
        first: usize,
    },
    /// A variable-length list of another length than the expected one.
    #[error("row {row} has {len} values on axis {axis}, expected {expected} (ragged rows cannot form a tensor)")]
    RowWidth {
        /// The first row that differs.
        row: usize,
        /// The axis of the wrong length.
        axis: usize,
        /// That row's length on the axis.
        len: usize,
        /// The length the caller asked for.
        expected: usize,
    },
    /// A fixed-size list of another width than the expected one.
    #[error("rows have width {width} on axis {axis}, expected {expected}")]
    Width {
        /// The axis of the wrong width.
        axis: usize,
        /// The column's fixed width on the axis.
        width: usize,
        /// The width the caller asked for.
        expected: usize,
    },
    /// Another number of list levels than the row shape has axes.
    #[error("rows have {} axes {shape:?}, expected row shape with {expected} axes", shape.len())]
    Rank {
        /// The row shape the column has.
        shape: Vec<usize>,
        /// How many row axes were expected.
        expected: usize,
    },
    /// One flat list per row whose length cannot be split into the expected row shape.
    #[error("{width} values per row do not fit the row shape {dims}")]
    FlatMismatch {
        /// Values per row.
        width: usize,
        /// The expected row shape, as text.
        dims: String,
    },
    /// One flat list per row, but the row shape has more than one dynamic axis to infer.
    #[error(
        "a flat list of {width} values per row cannot be shaped into {dims}: send nested lists"
    )]
    FlatAmbiguous {
        /// Values per row.
        width: usize,
        /// The expected row shape, as text.
        dims: String,
    },
    /// The leaves are not as many as the shape needs (a malformed array).
    #[error("holds {found} values, expected {expected}")]
    ValueCount {
        /// Leaf values present.
        found: usize,
        /// Leaf values the shape needs.
        expected: usize,
    },
    /// Leaf values of a type that does not read as the wanted element type.
    #[error("elements are {found}, cannot be read as {expected}")]
    ElementType {
        /// The Arrow type of the leaves.
        found: DataType,
        /// The element type the caller asked for.
        expected: DType,
    },
    /// A column that should hold strings.
    #[error("must hold Utf8 strings, found {found}")]
    NotStrings {
        /// The column's Arrow type.
        found: DataType,
    },
    /// A tensor of rank 0 has no rows to become column values.
    #[error("a scalar tensor has no rows: expected shape [rows, ...]")]
    Scalar,
    /// A tensor whose rows have another number of axes than the column layout describes.
    #[error("rows have {} axes {row_shape:?}, expected {expected}", row_shape.len())]
    Axes {
        /// The tensor's row shape.
        row_shape: Vec<usize>,
        /// Axes the layout describes.
        expected: usize,
    },
    /// A row axis of size 0, which no list type stores faithfully.
    #[error("row axis {axis} has size 0 (shape {shape:?})")]
    EmptyAxis {
        /// The row axis of size 0.
        axis: usize,
        /// The tensor's full shape.
        shape: Vec<usize>,
    },
    /// A tensor past Arrow's i32 offsets.
    #[error("tensor of shape {shape:?} is too large for one Arrow column")]
    TooLarge {
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// A tensor dtype that cannot be stored as the wanted element type.
    #[error("{from} tensor cannot be stored as {to}")]
    Unstorable {
        /// The tensor's dtype.
        from: DType,
        /// The element type of the column to build.
        to: DType,
    },
    /// Arrow refused to build the column.
    #[error("arrow: {0}")]
    Arrow(#[source] ArrowError),
    /// The values do not form a tensor of the shape.
    #[error("{0}")]
    Tensor(#[source] TensorError),
}

/// How leaf values may differ from the wanted element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cast {
    /// The leaves must be of the wanted type (a request's inputs).
    Exact,
    /// Floats convert among f16/f32/f64 and i32 widens to i64 (stored columns read back).
    Convert,
}

/// A column's list levels walked down: the row shape found and the leaf values.
#[derive(Debug, Clone)]
pub struct Flat {
    /// `[rows, row axes...]`.
    pub shape: Vec<usize>,
    /// The primitive leaves, `shape.iter().product()` of them, row-major.
    pub values: ArrayRef,
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

/// Converts a tensor `[rows, ...]` into the column `column`, stored as element type `stored`
/// (float <-> float conversions only), with row axis `i` a `List` where `dynamic[i]` is true.
pub fn tensor_to_column(
    column: &str,
    t: &Tensor,
    stored: DType,
    dynamic: &[bool],
) -> Result<ArrayRef, ColumnError> {
    check_column_shape(column, t.shape(), t.data().len(), dynamic)?;
    let arr = convert_elements(t.data(), stored).map_err(|p| ColumnError::new(column, p))?;
    nest_rows(column, arr, t.shape(), dynamic)
}

/// [`tensor_to_column`] taking the tensor by value: when `stored` is the tensor's own element
/// type its buffer becomes the column's without a copy.
pub fn tensor_into_column(
    column: &str,
    t: Tensor,
    stored: DType,
    dynamic: &[bool],
) -> Result<ArrayRef, ColumnError> {
    check_column_shape(column, t.shape(), t.data().len(), dynamic)?;
    let (shape, data) = t.into_parts();
    let arr: ArrayRef = match (data, stored) {
        (TensorData::F32(v), DType::F32) => Arc::new(Float32Array::from(v)),
        (TensorData::F16(v), DType::F16) => Arc::new(Float16Array::from(v)),
        (TensorData::F64(v), DType::F64) => Arc::new(Float64Array::from(v)),
        (TensorData::I64(v), DType::I64) => Arc::new(Int64Array::from(v)),
        (TensorData::I32(v), DType::I32) => Arc::new(Int32Array::from(v)),
        (d, stored) => convert_elements(&d, stored).map_err(|p| ColumnError::new(column, p))?,
    };
    nest_rows(column, arr, &shape, dynamic)
}

/// The checks [`tensor_to_column`] makes before converting: a batch axis, `dynamic` matching
/// the row axes, no empty axis, sizes within Arrow's i32 offsets.
fn check_column_shape(
    column: &str,
    shape: &[usize],
    elements: usize,
    dynamic: &[bool],
) -> Result<(), ColumnError> {
    let err = |p| ColumnError::new(column, p);
    let Some((_, row_shape)) = shape.split_first() else {
        return Err(err(ColumnProblem::Scalar));
    };
    if !dynamic.is_empty() && dynamic.len() != row_shape.len() {
        return Err(err(ColumnProblem::Axes {
            row_shape: row_shape.to_vec(),
            expected: dynamic.len(),
        }));
    }
    if let Some(i) = row_shape.iter().position(|&d| d == 0) {
        return Err(err(ColumnProblem::EmptyAxis {
            axis: i + 1,
            shape: shape.to_vec(),
        }));
    }
    if elements > i32::MAX as usize || row_shape.iter().any(|&d| d > i32::MAX as usize) {
        return Err(err(ColumnProblem::TooLarge {
            shape: shape.to_vec(),
        }));
    }
    Ok(())
}

/// Wraps the flat elements of a tensor of `shape` in one list level per row axis, innermost
/// first (shape already checked by [`check_column_shape`]).
fn nest_rows(
    column: &str,
    mut arr: ArrayRef,
    shape: &[usize],
    dynamic: &[bool],
) -> Result<ArrayRef, ColumnError> {
    let err = |p| ColumnError::new(column, p);
    let (rows, row_shape) = (shape[0], &shape[1..]);
    for (j, &d) in row_shape.iter().enumerate().rev() {
        let outer: usize = rows * row_shape[..j].iter().product::<usize>();
        let field = Arc::new(Field::new_list_field(arr.data_type().clone(), false));
        arr = if dynamic.get(j).copied().unwrap_or(false) {
            let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(d, outer));
            Arc::new(
                ListArray::try_new(field, offsets, arr, None)
                    .map_err(|e| err(ColumnProblem::Arrow(e)))?,
            )
        } else {
            Arc::new(
                FixedSizeListArray::try_new(field, d as i32, arr, None)
                    .map_err(|e| err(ColumnProblem::Arrow(e)))?,
            )
        };
    }
    Ok(arr)
}

/// Converts a column back into a tensor `[rows, row_shape...]` of element type `dtype`
/// ([`Cast::Convert`]). Every row must have exactly `row_shape` (for `List` axes, pass the
/// actual lengths, or use [`array_to_tensor_dyn`] to infer them).
pub fn array_to_tensor(
    a: &dyn Array,
    dtype: DType,
    row_shape: &[usize],
) -> Result<Tensor, ColumnError> {
    column_array_to_tensor(UNNAMED, a, dtype, row_shape)
}

/// Like [`array_to_tensor`], inferring the row shape from the data; rows of different
/// lengths (ragged `List` columns) are an error naming the first row that differs.
pub fn array_to_tensor_dyn(a: &dyn Array, dtype: DType) -> Result<Tensor, ColumnError> {
    let flat = flatten(UNNAMED, a, None)?;
    flat_to_tensor(UNNAMED, flat, dtype, Cast::Convert)
}

/// Reads the column `column` of a record batch as a tensor of element type `dtype`, inferring
/// the row shape (see [`array_to_tensor_dyn`]); errors name the column.
pub fn column_to_tensor(
    batch: &RecordBatch,
    column: &str,
    dtype: DType,
) -> Result<Tensor, ColumnError> {
    let a = batch.column_by_name(column).ok_or_else(|| {
        ColumnError::new(
            column,
            ColumnProblem::Missing {
                available: batch
                    .schema_ref()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect(),
            },
        )
    })?;
    let flat = flatten(column, a.as_ref(), None)?;
    flat_to_tensor(column, flat, dtype, Cast::Convert)
}

/// Like [`array_to_tensor`] with the column name in errors.
pub fn column_array_to_tensor(
    column: &str,
    a: &dyn Array,
    dtype: DType,
    row_shape: &[usize],
) -> Result<Tensor, ColumnError> {
    let expected: Vec<Option<usize>> = row_shape.iter().map(|&d| Some(d)).collect();
    let flat = flatten(column, a, Some(&expected))?;
    flat_to_tensor(column, flat, dtype, Cast::Convert)
}

/// Reads a column whose rows should take the signature axes `row_dims` (a model input's shape
/// after the batch axis): nested lists giving every row axis, or, for two or more row axes,
/// one flat list per row whose axes follow from the fixed dims (at most one dynamic axis can
/// be inferred). Nested widths are taken as they are: checking them against fixed dims is the
/// caller's (it knows how to say so).
pub fn column_to_tensor_shaped(
    column: &str,
    a: &dyn Array,
    dtype: DType,
    row_dims: &[Dim],
    cast: Cast,
) -> Result<Tensor, ColumnError> {
    let err = |p| ColumnError::new(column, p);
    let mut flat = flatten(column, a, None)?;
    let found = &flat.shape[1..];
    if found.len() == 1 && row_dims.len() > 1 {
        let width = found[0];
        let fixed: usize = row_dims
            .iter()
            .filter_map(|d| match d {
                Dim::Fixed(n) => Some(*n),
                Dim::Dynamic(_) => None,
            })
            .product();
        let dynamic = row_dims
            .iter()
            .filter(|d| matches!(d, Dim::Dynamic(_)))
            .count();
        let inferred = match dynamic {
            0 => 0,
            1 if fixed > 0 && width.checked_rem(fixed) == Some(0) => width / fixed,
            _ => {
                return Err(err(ColumnProblem::FlatAmbiguous {
                    width,
                    dims: dims_text(row_dims),
                }))
            }
        };
        let shape: Vec<usize> = row_dims
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => *n,
                Dim::Dynamic(_) => inferred,
            })
            .collect();
        if shape.iter().product::<usize>() != width {
            return Err(err(ColumnProblem::FlatMismatch {
                width,
                dims: dims_text(row_dims),
            }));
        }
        flat.shape.truncate(1);
        flat.shape.extend(shape);
    } else if found.len() != row_dims.len() {
        return Err(err(ColumnProblem::Rank {
            shape: found.to_vec(),
            expected: row_dims.len(),
        }));
    }
    flat_to_tensor(column, flat, dtype, cast)
}

/// Reads a string column (Utf8, LargeUtf8 or Utf8View); nulls are refused, naming the row.
pub fn string_values(column: &str, a: &dyn Array) -> Result<Vec<String>, ColumnError> {
    let err = |p| ColumnError::new(column, p);
    let strings: Box<dyn Iterator<Item = Option<&str>>> = match a.data_type() {
        DataType::Utf8 => Box::new(a.as_string::<i32>().iter()),
        DataType::LargeUtf8 => Box::new(a.as_string::<i64>().iter()),
        DataType::Utf8View => Box::new(a.as_string_view().iter()),
        other => {
            return Err(err(ColumnProblem::NotStrings {
                found: other.clone(),
            }))
        }
    };
    strings
        .enumerate()
        .map(|(row, s)| {
            s.map(str::to_string)
                .ok_or_else(|| err(ColumnProblem::Null { axis: 0, row }))
        })
        .collect()
}

/// Walks the list levels down to the primitive values, checking that every row has the same
/// shape, and each axis the width in `expected` where it gives one (`expected` also fixes the
/// number of axes). Zero-copy: the leaves are a slice of the column's buffers.
pub fn flatten(
    column: &str,
    a: &dyn Array,
    expected: Option<&[Option<usize>]>,
) -> Result<Flat, ColumnError> {
    let err = |p| ColumnError::new(column, p);
    let rows = a.len();
    let mut shape = vec![rows];
    let mut cur: ArrayRef = a.slice(0, a.len());
    // Items at the current level; `per_row` of them belong to one row.
    let mut items = rows;
    let mut per_row = 1usize;
    let mut level = 0usize;
    loop {
        if let Some(nulls) = cur.logical_nulls().filter(|n| n.null_count() > 0) {
            let first = nulls.iter().position(|valid| !valid).unwrap_or(0);
            return Err(err(ColumnProblem::Null {
                axis: level,
                row: first / per_row,
            }));
        }
        let want = expected.and_then(|e| e.get(level).copied().flatten());
        let (width, child): (usize, ArrayRef) = match cur.data_type() {
            DataType::FixedSizeList(_, w) => {
                let width = usize::try_from(*w).unwrap_or(0);
                if let Some(expected) = want.filter(|&x| x != width) {
                    return Err(err(ColumnProblem::Width {
                        axis: level + 1,
                        width,
                        expected,
                    }));
                }
                (width, cur.as_fixed_size_list().values().clone())
            }
            DataType::List(_) => {
                list_level(cur.as_list::<i32>(), want, per_row, level).map_err(err)?
            }
            DataType::LargeList(_) => {
                list_level(cur.as_list::<i64>(), want, per_row, level).map_err(err)?
            }
            _ => break,
        };
        shape.push(width);
        items *= width;
        per_row *= width;
        cur = if child.len() > items {
            child.slice(0, items)
        } else {
            child
        };
        level += 1;
    }
    if let Some(e) = expected {
        if e.len() != level {
            return Err(err(ColumnProblem::Rank {
                shape: shape[1..].to_vec(),
                expected: e.len(),
            }));
        }
    }
    if cur.len() != items {
        return Err(err(ColumnProblem::ValueCount {
            found: cur.len(),
            expected: items,
        }));
    }
    Ok(Flat { shape, values: cur })
}

/// The common length of one variable-size list level (`want` if given) and its child values.
fn list_level<O: OffsetSizeTrait>(
    l: &arrow::array::GenericListArray<O>,
    want: Option<usize>,
    per_row: usize,
    level: usize,
) -> Result<(usize, ArrayRef), ColumnProblem> {
    let offs = l.value_offsets();
    let at = |i: usize| offs.get(i).map_or(0, |o| o.as_usize());
    let (first, last) = (at(0), at(offs.len().saturating_sub(1)));
    let mut width = want;
    for (i, w) in offs.windows(2).enumerate() {
        let len = w[1].as_usize().saturating_sub(w[0].as_usize());
        match (width, want) {
            (None, _) => width = Some(len),
            (Some(x), Some(expected)) if x != len => {
                return Err(ColumnProblem::RowWidth {
                    row: i / per_row.max(1),
                    axis: level + 1,
                    len,
                    expected,
                })
            }
            (Some(x), None) if x != len => {
                return Err(ColumnProblem::Ragged {
                    row: i / per_row.max(1),
                    axis: level + 1,
                    len,
                    first: x,
                })
            }
            _ => {}
        }
    }
    Ok((
        width.unwrap_or(0),
        l.values().slice(first, last.saturating_sub(first)),
    ))
}

/// A walked column as a tensor of element type `dtype`.
pub fn flat_to_tensor(
    column: &str,
    flat: Flat,
    dtype: DType,
    cast: Cast,
) -> Result<Tensor, ColumnError> {
    let data = read_values(column, flat.values.as_ref(), dtype, cast)?;
    Tensor::new(flat.shape, data).map_err(|e| ColumnError::new(column, ColumnProblem::Tensor(e)))
}

/// Copies primitive leaf values as `dtype`, converting as `cast` allows.
pub fn read_values(
    column: &str,
    a: &dyn Array,
    dtype: DType,
    cast: Cast,
) -> Result<TensorData, ColumnError> {
    let found = a.data_type();
    let bad = || {
        ColumnError::new(
            column,
            ColumnProblem::ElementType {
                found: found.clone(),
                expected: dtype,
            },
        )
    };
    if cast == Cast::Exact && found != &element_arrow_type(dtype) {
        return Err(bad());
    }
    let data = match (found, dtype) {
        (DataType::Float32, DType::F32) => TensorData::F32(
            a.as_primitive_opt::<Float32Type>()
                .ok_or_else(bad)?
                .values()
                .to_vec(),
        ),
        (DataType::Float32, DType::F16) => TensorData::F16(
            a.as_primitive_opt::<Float32Type>()
                .ok_or_else(bad)?
                .values()
                .iter()
                .map(|&x| f16::from_f32(x))
                .collect(),
        ),
        (DataType::Float32, DType::F64) => TensorData::F64(
            a.as_primitive_opt::<Float32Type>()
                .ok_or_else(bad)?
                .values()
                .iter()
                .map(|&x| x as f64)
                .collect(),
        ),
        (DataType::Float16, DType::F16) => TensorData::F16(
            a.as_primitive_opt::<Float16Type>()
                .ok_or_else(bad)?
                .values()
                .to_vec(),
        ),
        (DataType::Float16, DType::F32) => TensorData::F32(
            a.as_primitive_opt::<Float16Type>()
                .ok_or_else(bad)?
                .values()
                .iter()
                .map(|x| x.to_f32())
                .collect(),
        ),
        (DataType::Float16, DType::F64) => TensorData::F64(
            a.as_primitive_opt::<Float16Type>()
                .ok_or_else(bad)?
                .values()
                .iter()
                .map(|x| x.to_f64())
                .collect(),
        ),
        (DataType::Float64, DType::F64) => TensorData::F64(
            a.as_primitive_opt::<Float64Type>()
                .ok_or_else(bad)?
                .values()
                .to_vec(),
        ),
        (DataType::Float64, DType::F32) => TensorData::F32(
            a.as_primitive_opt::<Float64Type>()
                .ok_or_else(bad)?
                .values()
                .iter()
                .map(|&x| x as f32)
                .collect(),
        ),
        (DataType::Float64, DType::F16) => TensorData::F16(
            a.as_primitive_opt::<Float64Type>()
                .ok_or_else(bad)?
                .values()
                .iter()
                .map(|&x| f16::from_f64(x))
                .collect(),
        ),
        (DataType::Int64, DType::I64) => TensorData::I64(
            a.as_primitive_opt::<Int64Type>()
                .ok_or_else(bad)?
                .values()
                .to_vec(),
        ),
        (DataType::Int32, DType::I32) => TensorData::I32(
            a.as_primitive_opt::<Int32Type>()
                .ok_or_else(bad)?
                .values()
                .to_vec(),
        ),
        (DataType::Int32, DType::I64) => TensorData::I64(
            a.as_primitive_opt::<Int32Type>()
                .ok_or_else(bad)?
                .values()
                .iter()
                .map(|&x| x as i64)
                .collect(),
        ),
        (DataType::Boolean, DType::Bool) => TensorData::Bool(
            a.as_boolean_opt()
                .ok_or_else(bad)?
                .values()
                .iter()
                .collect(),
        ),
        _ => return Err(bad()),
    };
    Ok(data)
}

/// Appends float leaf values (f16, f32 or f64) to `out` as f32, without an intermediate copy
/// (the trainer's host buffers).
pub fn extend_f32(column: &str, a: &dyn Array, out: &mut Vec<f32>) -> Result<(), ColumnError> {
    let bad = || {
        ColumnError::new(
            column,
            ColumnProblem::ElementType {
                found: a.data_type().clone(),
                expected: DType::F32,
            },
        )
    };
    match a.data_type() {
        DataType::Float32 => out.extend_from_slice(
            a.as_primitive_opt::<Float32Type>()
                .ok_or_else(bad)?
                .values(),
        ),
        DataType::Float16 => out.extend(
            a.as_primitive_opt::<Float16Type>()
                .ok_or_else(bad)?
                .values()
                .iter()
                .map(|x| x.to_f32()),
        ),
        DataType::Float64 => out.extend(
            a.as_primitive_opt::<Float64Type>()
                .ok_or_else(bad)?
                .values()
                .iter()
                .map(|&x| x as f32),
        ),
        _ => return Err(bad()),
    }
    Ok(())
}

/// Converts tensor elements into a primitive Arrow array of element type `stored`.
fn convert_elements(d: &TensorData, stored: DType) -> Result<ArrayRef, ColumnProblem> {
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
            return Err(ColumnProblem::Unstorable {
                from: d.dtype(),
                to: stored,
            })
        }
    };
    Ok(arr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{LargeListArray, StringArray};
    use arrow::buffer::NullBuffer;
    use arrow::datatypes::Schema;

    fn f32s(n: usize) -> ArrayRef {
        Arc::new(Float32Array::from(
            (0..n).map(|i| i as f32).collect::<Vec<_>>(),
        ))
    }

    fn fixed(values: ArrayRef, width: i32) -> ArrayRef {
        let item = Arc::new(Field::new_list_field(values.data_type().clone(), false));
        Arc::new(FixedSizeListArray::try_new(item, width, values, None).unwrap())
    }

    fn list(values: ArrayRef, lengths: &[usize]) -> ArrayRef {
        let item = Arc::new(Field::new_list_field(values.data_type().clone(), false));
        let offsets = OffsetBuffer::from_lengths(lengths.iter().copied());
        Arc::new(ListArray::try_new(item, offsets, values, None).unwrap())
    }

    fn large_list(values: ArrayRef, lengths: &[usize]) -> ArrayRef {
        let item = Arc::new(Field::new_list_field(values.data_type().clone(), false));
        let offsets = OffsetBuffer::<i64>::from_lengths(lengths.iter().copied());
        Arc::new(LargeListArray::try_new(item, offsets, values, None).unwrap())
    }

    fn problem<T: std::fmt::Debug>(r: Result<T, ColumnError>) -> ColumnProblem {
        let e = r.unwrap_err();
        assert_eq!(e.column, "c", "{e}");
        e.problem
    }

    fn dims(d: &[Option<usize>]) -> Vec<Dim> {
        d.iter()
            .map(|d| match d {
                Some(n) => Dim::Fixed(*n),
                None => Dim::Dynamic("seq".into()),
            })
            .collect()
    }

    #[test]
    fn every_list_kind_reads_to_the_same_tensor() {
        let want = Tensor::new(
            vec![2, 3],
            TensorData::F32((0..6).map(|i| i as f32).collect()),
        )
        .unwrap();
        for a in [
            fixed(f32s(6), 3),
            list(f32s(6), &[3, 3]),
            large_list(f32s(6), &[3, 3]),
        ] {
            let t = column_array_to_tensor("c", a.as_ref(), DType::F32, &[3]).unwrap();
            assert_eq!(t, want, "{}", a.data_type());
            assert_eq!(array_to_tensor_dyn(a.as_ref(), DType::F32).unwrap(), want);
        }
        // Mixed nesting: List<FixedSizeList<_, 2>> and LargeList<List<_>>.
        let want = Tensor::new(
            vec![2, 2, 2],
            TensorData::F32((0..8).map(|i| i as f32).collect()),
        )
        .unwrap();
        let a = list(fixed(f32s(8), 2), &[2, 2]);
        assert_eq!(array_to_tensor_dyn(a.as_ref(), DType::F32).unwrap(), want);
        let a = large_list(list(f32s(8), &[2, 2, 2, 2]), &[2, 2]);
        assert_eq!(array_to_tensor_dyn(a.as_ref(), DType::F32).unwrap(), want);
    }

    #[test]
    fn sliced_columns_read_only_their_rows() {
        for a in [
            fixed(f32s(8), 2),
            list(f32s(8), &[2, 2, 2, 2]),
            large_list(f32s(8), &[2, 2, 2, 2]),
        ] {
            let t = array_to_tensor_dyn(a.slice(1, 2).as_ref(), DType::F32).unwrap();
            assert_eq!(t.data(), &TensorData::F32(vec![2.0, 3.0, 4.0, 5.0]));
        }
    }

    #[test]
    fn nulls_are_refused_with_axis_and_row() {
        let values: ArrayRef = Arc::new(Float32Array::from(vec![
            Some(0.0),
            Some(1.0),
            Some(2.0),
            None,
        ]));
        let item = Arc::new(Field::new_list_field(DataType::Float32, true));
        let a: ArrayRef =
            Arc::new(FixedSizeListArray::try_new(item.clone(), 2, values, None).unwrap());
        let p = problem(column_array_to_tensor("c", a.as_ref(), DType::F32, &[2]));
        assert!(matches!(p, ColumnProblem::Null { axis: 1, row: 1 }), "{p}");
        let nulls = NullBuffer::from(vec![true, false, true]);
        let a: ArrayRef =
            Arc::new(FixedSizeListArray::try_new(item, 1, f32s(3), Some(nulls)).unwrap());
        let p = problem(column_array_to_tensor("c", a.as_ref(), DType::F32, &[1]));
        assert!(matches!(p, ColumnProblem::Null { axis: 0, row: 1 }), "{p}");
        assert!(p.to_string().contains("row 1"), "{p}");
    }

    #[test]
    fn ragged_and_wrong_widths_name_the_row_and_axis() {
        let a = list(f32s(7), &[2, 2, 3]);
        let p = problem(column_to_tensor_shaped(
            "c",
            a.as_ref(),
            DType::F32,
            &dims(&[None]),
            Cast::Exact,
        ));
        assert!(
            matches!(
                p,
                ColumnProblem::Ragged {
                    row: 2,
                    axis: 1,
                    len: 3,
                    first: 2
                }
            ),
            "{p}"
        );
        let a = large_list(f32s(6), &[3, 3]);
        let p = problem(column_array_to_tensor("c", a.as_ref(), DType::F32, &[2]));
        assert!(
            matches!(
                p,
                ColumnProblem::RowWidth {
                    row: 0,
                    axis: 1,
                    len: 3,
                    expected: 2
                }
            ),
            "{p}"
        );
        let a = list(fixed(f32s(12), 3), &[2, 2]);
        let p = problem(column_array_to_tensor("c", a.as_ref(), DType::F32, &[2, 2]));
        assert!(
            matches!(
                p,
                ColumnProblem::Width {
                    axis: 2,
                    width: 3,
                    expected: 2
                }
            ),
            "{p}"
        );
        let p = problem(column_array_to_tensor("c", a.as_ref(), DType::F32, &[2]));
        assert!(
            matches!(&p, ColumnProblem::Rank { shape, expected: 1 } if shape == &[2, 3]),
            "{p}"
        );
    }

    #[test]
    fn flat_rows_take_the_signature_shape_or_say_why_not() {
        let a = fixed(f32s(12), 6);
        let t = column_to_tensor_shaped(
            "c",
            a.as_ref(),
            DType::F32,
            &dims(&[None, Some(3)]),
            Cast::Exact,
        )
        .unwrap();
        assert_eq!(t.shape(), &[2, 2, 3]);
        let p = problem(column_to_tensor_shaped(
            "c",
            a.as_ref(),
            DType::F32,
            &dims(&[Some(4), Some(2)]),
            Cast::Exact,
        ));
        assert!(
            matches!(&p, ColumnProblem::FlatMismatch { width: 6, dims } if dims == "[4, 2]"),
            "{p}"
        );
        let p = problem(column_to_tensor_shaped(
            "c",
            a.as_ref(),
            DType::F32,
            &dims(&[None, None]),
            Cast::Exact,
        ));
        assert!(
            matches!(p, ColumnProblem::FlatAmbiguous { width: 6, .. }),
            "{p}"
        );
        let p = problem(column_to_tensor_shaped(
            "c",
            f32s(2).as_ref(),
            DType::F32,
            &dims(&[Some(2)]),
            Cast::Exact,
        ));
        assert!(matches!(p, ColumnProblem::Rank { expected: 1, .. }), "{p}");
    }

    #[test]
    fn element_types_follow_the_cast() {
        let a = fixed(f32s(4), 2);
        let t = column_array_to_tensor("c", a.as_ref(), DType::F64, &[2]).unwrap();
        assert_eq!(t.data(), &TensorData::F64(vec![0.0, 1.0, 2.0, 3.0]));
        let p = problem(column_to_tensor_shaped(
            "c",
            a.as_ref(),
            DType::F64,
            &dims(&[Some(2)]),
            Cast::Exact,
        ));
        assert!(
            matches!(
                p,
                ColumnProblem::ElementType {
                    found: DataType::Float32,
                    expected: DType::F64
                }
            ),
            "{p}"
        );
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![1, -2]));
        let t = array_to_tensor_dyn(ints.as_ref(), DType::I64).unwrap();
        assert_eq!(t.data(), &TensorData::I64(vec![1, -2]));
        let p = problem(column_array_to_tensor("c", ints.as_ref(), DType::F32, &[]));
        assert!(matches!(p, ColumnProblem::ElementType { .. }), "{p}");
        let mut out = vec![9.0];
        extend_f32("c", f32s(2).as_ref(), &mut out).unwrap();
        assert_eq!(out, [9.0, 0.0, 1.0]);
        assert!(matches!(
            problem(extend_f32("c", ints.as_ref(), &mut out)),
            ColumnProblem::ElementType { .. }
        ));
    }

    #[test]
    fn strings_and_missing_columns() {
        let s: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None]));
        assert!(matches!(
            problem(string_values("c", s.as_ref())),
            ColumnProblem::Null { axis: 0, row: 1 }
        ));
        let s: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        assert_eq!(string_values("c", s.as_ref()).unwrap(), ["a", "b"]);
        assert!(matches!(
            problem(string_values("c", f32s(1).as_ref())),
            ColumnProblem::NotStrings { .. }
        ));
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Float32, false)])),
            vec![f32s(1)],
        )
        .unwrap();
        let p = problem(column_to_tensor(&batch, "c", DType::F32));
        assert!(matches!(&p, ColumnProblem::Missing { available } if available == &["x"]));
    }

    #[test]
    fn writing_refuses_what_no_column_can_hold() {
        let t = |shape: Vec<usize>, data| Tensor::new(shape, data).unwrap();
        let scalar = t(vec![], TensorData::F32(vec![1.0]));
        assert!(matches!(
            problem(tensor_to_column("c", &scalar, DType::F32, &[])),
            ColumnProblem::Scalar
        ));
        let m = t(vec![2, 2], TensorData::F32(vec![0.0; 4]));
        assert!(matches!(
            problem(tensor_to_column("c", &m, DType::F32, &[true, false])),
            ColumnProblem::Axes { expected: 2, .. }
        ));
        let empty = t(vec![2, 0], TensorData::F32(vec![]));
        assert!(matches!(
            problem(tensor_to_column("c", &empty, DType::F32, &[])),
            ColumnProblem::EmptyAxis { axis: 1, .. }
        ));
        assert!(matches!(
            problem(tensor_to_column("c", &m, DType::I64, &[])),
            ColumnProblem::Unstorable {
                from: DType::F32,
                to: DType::I64
            }
        ));
        // Every other problem is reachable only from a malformed array or a tensor past i32
        // offsets; their messages still name the column.
        let e = ColumnError::new("c", ColumnProblem::TooLarge { shape: vec![1] });
        assert!(
            e.to_string()
                .starts_with("column \"c\": tensor of shape [1]"),
            "{e}"
        );
        // A written column reads back; List axes where asked.
        let a = tensor_to_column("c", &m, DType::F16, &[true]).unwrap();
        assert!(matches!(a.data_type(), DataType::List(_)));
        assert_eq!(
            array_to_tensor(a.as_ref(), DType::F32, &[2]).unwrap(),
            t(vec![2, 2], TensorData::F32(vec![0.0; 4]))
        );
    }
}
