//! Reading named columns of a source into host buffers in one streaming pass: what to read
//! ([`ColumnKind`]), what comes back ([`ColumnValues`]), and the row-major [`Matrix`] the
//! float columns become.

use arrow::datatypes::DataType;

use crate::columns::{
    append_f32_scalars, append_float_rows, append_ids, append_index_rows, append_labels,
    append_u64s, float_list_width, is_int_scalar,
};
use crate::source::ParquetSource;
use crate::DataError;

/// A row-major f32 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Values per row.
    pub cols: usize,
    /// `rows * cols` values.
    pub data: Vec<f32>,
}

impl Matrix {
    /// One row.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// What one column read yields.
pub enum ColumnValues {
    Floats { width: usize, buf: Vec<f32> },
    Labels(Vec<u32>),
    Ids(Vec<String>),
    Indices { k: usize, buf: Vec<u32> },
    Scalars(Vec<f32>),
    U64s(Vec<u64>),
}

/// How to read one column.
pub enum ColumnKind {
    Floats,
    Labels,
    Ids,
    Indices,
    Scalars,
    U64s,
}

/// Reads the named columns of a source in one streaming pass.
pub fn read_columns(
    src: &ParquetSource,
    wants: &[(&str, ColumnKind)],
) -> Result<Vec<ColumnValues>, DataError> {
    let mut accs = Vec::with_capacity(wants.len());
    for (name, want) in wants {
        let dt = src.column_type(name)?;
        let acc = match want {
            ColumnKind::Floats => ColumnValues::Floats {
                width: float_list_width(name, &src.spec, dt)?,
                buf: Vec::new(),
            },
            ColumnKind::Labels => {
                if !is_int_scalar(dt) {
                    return Err(DataError::BadColumn {
                        column: name.to_string(),
                        source_path: src.spec.clone(),
                        message: format!("expected an integer label column, found {dt}"),
                    });
                }
                ColumnValues::Labels(Vec::new())
            }
            ColumnKind::Ids => ColumnValues::Ids(Vec::new()),
            ColumnKind::Indices => match dt {
                DataType::FixedSizeList(item, k) if is_int_scalar(item.data_type()) && *k > 0 => {
                    ColumnValues::Indices {
                        k: *k as usize,
                        buf: Vec::new(),
                    }
                }
                other => {
                    return Err(DataError::BadColumn {
                        column: name.to_string(),
                        source_path: src.spec.clone(),
                        message: format!("expected FixedSizeList<Int32, k>, found {other}"),
                    })
                }
            },
            ColumnKind::Scalars => ColumnValues::Scalars(Vec::new()),
            ColumnKind::U64s => ColumnValues::U64s(Vec::new()),
        };
        accs.push(acc);
    }
    // Reserve the big buffers once (row count is known from the file footers).
    for acc in &mut accs {
        if let ColumnValues::Floats { width, buf } = acc {
            buf.reserve_exact(src.rows * *width);
        }
    }
    let names: Vec<&str> = wants.iter().map(|(n, _)| *n).collect();
    let mut row = 0usize;
    src.for_each_batch(&names, |file, batch| {
        for (i, acc) in accs.iter_mut().enumerate() {
            let col = batch.column(i).as_ref();
            let name = names[i];
            match acc {
                ColumnValues::Floats { width, buf } => {
                    append_float_rows(name, file, col, *width, row, buf)?
                }
                ColumnValues::Labels(buf) => append_labels(name, file, col, row, buf)?,
                ColumnValues::Ids(buf) => append_ids(name, file, col, row, buf)?,
                ColumnValues::Indices { k, buf } => {
                    append_index_rows(name, file, col, *k, row, buf)?
                }
                ColumnValues::Scalars(buf) => append_f32_scalars(name, file, col, row, buf)?,
                ColumnValues::U64s(buf) => append_u64s(name, file, col, row, buf)?,
            }
        }
        row += batch.num_rows();
        Ok(())
    })?;
    Ok(accs)
}

pub fn take_floats(acc: ColumnValues, rows: usize) -> Matrix {
    match acc {
        ColumnValues::Floats { width, buf } => Matrix {
            rows,
            cols: width,
            data: buf,
        },
        _ => Matrix {
            rows,
            cols: 0,
            data: Vec::new(),
        },
    }
}

pub fn take_u32(acc: ColumnValues) -> Vec<u32> {
    match acc {
        ColumnValues::Labels(v) | ColumnValues::Indices { buf: v, .. } => v,
        _ => Vec::new(),
    }
}

pub fn take_scalars(acc: ColumnValues) -> Vec<f32> {
    match acc {
        ColumnValues::Scalars(v) => v,
        _ => Vec::new(),
    }
}

pub fn take_ids(acc: ColumnValues) -> Vec<String> {
    match acc {
        ColumnValues::Ids(v) => v,
        _ => Vec::new(),
    }
}

pub fn take_u64s(acc: ColumnValues) -> Vec<u64> {
    match acc {
        ColumnValues::U64s(v) => v,
        _ => Vec::new(),
    }
}

/// The error for a read that returned fewer columns than were asked for (a bug, not bad data).
pub fn read_count_mismatch() -> DataError {
    DataError::Join {
        message: "read_count_mismatch: column read count mismatch".into(),
    }
}
