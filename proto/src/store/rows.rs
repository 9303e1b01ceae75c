//! Turns one request's [`LabelRows`] into the record batch that is stored, validating
//! everything (ids, lengths, names, shapes, dtypes) before any byte is written.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeBinaryArray, FixedSizeListArray, Float32Array, Int32Array, ListArray,
    StringArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use super::columns::stored_dtype;
use super::digest::{row_digests_with, token_digests_with, DigestAlgorithm, RowDigest, DIGEST_LEN};
use super::topk::topk_rows;
use super::{
    ColumnInfo, LabelRows, StoreError, TeacherFingerprint, TokenRows, DIGEST_COLUMN, TEXT_COLUMN,
    TOKEN_IDS_COLUMN, TOKEN_TYPE_IDS_COLUMN,
};
use crate::api::{Dim, Pooling, TensorSpec};
use crate::arrow_codec::tensor_into_column;
use crate::{DType, NamedTensors, Tensor};

/// Longest id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 1024;

/// A validated request, ready to be checked against a dataset and written.
pub(crate) struct Prepared {
    /// All columns, in stored order.
    pub batch: RecordBatch,
    /// What the columns are.
    pub columns: Vec<ColumnInfo>,
    /// Row ids.
    pub ids: Vec<String>,
    /// Row input digests.
    pub digests: Vec<RowDigest>,
    /// Time spent computing the digests (for the per-stage metrics).
    pub digest_time: std::time::Duration,
    /// The algorithm the digests were computed with.
    pub digest_algorithm: DigestAlgorithm,
}

fn invalid(msg: String) -> StoreError {
    StoreError::InvalidRows(msg)
}

/// Row axes of a signature (all but axis 0): `Some(n)` fixed, `None` dynamic.
fn row_axes(shape: &[Dim]) -> Vec<Option<usize>> {
    shape
        .iter()
        .skip(1)
        .map(|d| match d {
            Dim::Fixed(n) => Some(*n),
            Dim::Dynamic(_) => None,
        })
        .collect()
}

/// Checks a tensor against the row axes it should have; returns the dynamic-axis flags.
fn check_shape(
    what: &str,
    t: &Tensor,
    rows: usize,
    axes: Option<&[Option<usize>]>,
) -> Result<Vec<bool>, StoreError> {
    let shape = t.shape();
    if shape.first().copied() != Some(rows) {
        return Err(invalid(format!(
            "{what} has shape {shape:?}, expected {rows} rows (one per id) on axis 0"
        )));
    }
    let row = &shape[1..];
    let Some(axes) = axes else {
        return Ok(vec![false; row.len()]);
    };
    let expect = || {
        let dims: Vec<String> = axes
            .iter()
            .map(|a| a.map_or("?".to_string(), |n| n.to_string()))
            .collect();
        format!("[{rows}, {}]", dims.join(", "))
    };
    if row.len() != axes.len() {
        return Err(invalid(format!(
            "{what} has shape {shape:?}, expected {}",
            expect()
        )));
    }
    for (d, a) in row.iter().zip(axes) {
        if let Some(n) = a {
            if d != n {
                return Err(invalid(format!(
                    "{what} has shape {shape:?}, expected {}",
                    expect()
                )));
            }
        }
    }
    Ok(axes.iter().map(|a| a.is_none()).collect())
}

fn info(
    name: &str,
    kind: &str,
    dt: &DataType,
    row: &[usize],
    dynamic: &[bool],
    dtype: Option<DType>,
) -> ColumnInfo {
    ColumnInfo {
        name: name.to_string(),
        kind: kind.to_string(),
        arrow_type: dt.to_string(),
        row_shape: row
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                if dynamic.get(i).copied().unwrap_or(false) {
                    0
                } else {
                    d
                }
            })
            .collect(),
        dtype,
    }
}

fn check_names(kind: &str, given: &NamedTensors, specs: &[&str]) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for n in given.names() {
        if !seen.insert(n) {
            return Err(invalid(format!("{kind} {n:?} is given twice")));
        }
        if !specs.contains(&n) {
            return Err(invalid(format!(
                "{kind} {n:?} is not one of the teacher's {kind}s ({})",
                specs.join(", ")
            )));
        }
    }
    for s in specs {
        if !seen.contains(s) {
            return Err(invalid(format!("{kind} {s:?} is missing")));
        }
    }
    Ok(())
}

/// Validates `rows` against the teacher and builds the stored batch, digesting the inputs
/// with the dataset's `algorithm`.
pub(crate) fn prepare(
    teacher: &TeacherFingerprint,
    mut rows: LabelRows,
    algorithm: DigestAlgorithm,
) -> Result<Prepared, StoreError> {
    let n = rows.ids.len();
    if n == 0 {
        return Err(invalid("no rows: ids is empty".into()));
    }
    let mut seen = std::collections::HashMap::with_capacity(n);
    for (i, id) in rows.ids.iter().enumerate() {
        if id.is_empty() || id.len() > MAX_ID_BYTES {
            return Err(invalid(format!(
                "id at row {i} must be 1 to {MAX_ID_BYTES} bytes, got {}",
                id.len()
            )));
        }
        if let Some(j) = seen.insert(id.as_str(), i) {
            return Err(invalid(format!(
                "id {id:?} appears twice (rows {j} and {i})"
            )));
        }
    }
    drop(seen);
    let in_names: Vec<&str> = match teacher.tokenizer {
        // A text teacher's inputs arrive as token rows, not tensors.
        Some(_) => Vec::new(),
        None => teacher.inputs.iter().map(|s| s.name.as_str()).collect(),
    };
    let out_names: Vec<&str> = teacher.outputs.iter().map(|s| s.name.as_str()).collect();
    check_names("input", &rows.inputs, &in_names)?;
    check_names("output", &rows.outputs, &out_names)?;

    let mut cols = Cols::default();

    cols.push(
        "id",
        Arc::new(StringArray::from(rows.ids.clone())),
        false,
        info("id", "id", &DataType::Utf8, &[], &[], None),
    );

    let (digests, digest_time) = match (&teacher.tokenizer, &rows.tokens) {
        (Some(_), Some(tokens)) => {
            check_token_rows(tokens, n)?;
            if teacher.store_inputs {
                push_token_columns(&mut cols, tokens, n)?;
            }
            let t0 = std::time::Instant::now();
            let d = token_digests_with(algorithm, tokens);
            (d, t0.elapsed())
        }
        (Some(_), None) => {
            return Err(invalid(
                "a text teacher's rows need their token rows".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "token rows were given, but the dataset's teacher has no tokenizer".into(),
            ))
        }
        (None, None) => {
            let dynamic = check_inputs(teacher, &rows.inputs, n)?;
            let t0 = std::time::Instant::now();
            let d = row_digests_with(algorithm, &rows.inputs, n)?;
            let took = t0.elapsed();
            if teacher.store_inputs {
                // Digested first, so the tensors can be moved (not copied) into their columns.
                push_input_columns(&mut cols, teacher, &mut rows.inputs, &dynamic)?;
            }
            (d, took)
        }
    };

    for spec in &teacher.outputs {
        let t = rows
            .outputs
            .remove(&spec.name)
            .ok_or_else(|| invalid(format!("output {:?} is missing", spec.name)))?;
        let what = format!("output {:?}", spec.name);
        if t.dtype() != spec.dtype {
            return Err(invalid(format!(
                "{what} is {}, expected {}",
                t.dtype(),
                spec.dtype
            )));
        }
        let axes = if spec.shape.is_empty() {
            None
        } else {
            let mut shape = spec.shape.clone();
            if spec.pooling != Pooling::None && shape.len() >= 2 {
                shape.remove(1);
            }
            Some(row_axes(&shape))
        };
        let dynamic = check_shape(&what, &t, n, axes.as_deref())?;
        match &teacher.logits_topk {
            Some(tk) if tk.output == spec.name => {
                let k = tk.k;
                let r = topk_rows(&spec.name, &t, k)?;
                let item = |dt: DataType| Arc::new(Field::new_list_field(dt, false));
                let idx: ArrayRef = Arc::new(FixedSizeListArray::try_new(
                    item(DataType::Int32),
                    k as i32,
                    Arc::new(Int32Array::from(r.indices)),
                    None,
                )?);
                let val: ArrayRef = Arc::new(FixedSizeListArray::try_new(
                    item(DataType::Float32),
                    k as i32,
                    Arc::new(Float32Array::from(r.values)),
                    None,
                )?);
                let lse: ArrayRef = Arc::new(Float32Array::from(r.logsumexp));
                let (ni, nv, nl) = topk_column_names(&spec.name);
                let ci = info(
                    &ni,
                    "topk_indices",
                    idx.data_type(),
                    &[k],
                    &[],
                    Some(DType::I32),
                );
                cols.push(&ni, idx, false, ci);
                let ci = info(
                    &nv,
                    "topk_values",
                    val.data_type(),
                    &[k],
                    &[],
                    Some(DType::F32),
                );
                cols.push(&nv, val, false, ci);
                let ci = info(
                    &nl,
                    "logsumexp",
                    &DataType::Float32,
                    &[],
                    &[],
                    Some(DType::F32),
                );
                cols.push(&nl, lse, false, ci);
            }
            _ => {
                let stored = stored_dtype(t.dtype(), teacher.feature_dtype);
                let row_shape = t.shape()[1..].to_vec();
                let a = tensor_into_column(&spec.name, t, stored, &dynamic)?;
                let ci = info(
                    &spec.name,
                    "output",
                    a.data_type(),
                    &row_shape,
                    &dynamic,
                    Some(stored),
                );
                cols.push(&spec.name, a, false, ci);
            }
        }
    }

    let cols_names: Vec<String> = cols.columns.iter().map(|c| c.name.clone()).collect();
    let mut pass_seen = HashSet::new();
    for (name, a) in &rows.columns {
        if !pass_seen.insert(name.as_str()) {
            return Err(invalid(format!("column {name:?} is given twice")));
        }
        if name.is_empty() {
            return Err(invalid("a pass-through column has an empty name".into()));
        }
        if cols_names.iter().any(|c| c == name) || name == DIGEST_COLUMN {
            return Err(invalid(format!(
                "pass-through column {name:?} collides with a stored column of the same name"
            )));
        }
        if a.len() != n {
            return Err(invalid(format!(
                "pass-through column {name:?} has {} values, expected {n} (one per id)",
                a.len()
            )));
        }
        let ci = info(name, "passthrough", a.data_type(), &[], &[], None);
        cols.push(name, a.clone(), true, ci);
    }

    let digest_arr = FixedSizeBinaryArray::try_from_iter(digests.iter())?;
    let ci = info(
        DIGEST_COLUMN,
        "digest",
        &DataType::FixedSizeBinary(DIGEST_LEN as i32),
        &[],
        &[],
        None,
    );
    cols.push(DIGEST_COLUMN, Arc::new(digest_arr), false, ci);

    let schema = Arc::new(Schema::new(cols.fields));
    let batch = RecordBatch::try_new(schema, cols.arrays)?;
    Ok(Prepared {
        batch,
        columns: cols.columns,
        ids: rows.ids,
        digests,
        digest_time,
        digest_algorithm: algorithm,
    })
}

/// Columns being assembled, in stored order.
#[derive(Default)]
struct Cols {
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
    columns: Vec<ColumnInfo>,
}

impl Cols {
    fn push(&mut self, name: &str, a: ArrayRef, nullable: bool, ci: ColumnInfo) {
        self.fields
            .push(Field::new(name, a.data_type().clone(), nullable));
        self.arrays.push(a);
        self.columns.push(ci);
    }
}

fn spec_axes(spec: &TensorSpec) -> Option<Vec<Option<usize>>> {
    if spec.shape.is_empty() {
        None
    } else {
        Some(row_axes(&spec.shape))
    }
}

/// The three column names that replace output `name` under top-k storage:
/// `{name}_topk_indices`, `{name}_topk_values`, `{name}_logsumexp`.
pub fn topk_column_names(name: &str) -> (String, String, String) {
    (
        format!("{name}_topk_indices"),
        format!("{name}_topk_values"),
        format!("{name}_logsumexp"),
    )
}

/// Checks every input tensor against the teacher's signature; returns each input's
/// dynamic-axis flags, in signature order.
fn check_inputs(
    teacher: &TeacherFingerprint,
    inputs: &NamedTensors,
    n: usize,
) -> Result<Vec<Vec<bool>>, StoreError> {
    let mut out = Vec::with_capacity(teacher.inputs.len());
    for spec in &teacher.inputs {
        let t = inputs
            .get(&spec.name)
            .ok_or_else(|| invalid(format!("input {:?} is missing", spec.name)))?;
        let what = format!("input {:?}", spec.name);
        if t.dtype() != spec.dtype {
            return Err(invalid(format!(
                "{what} is {}, expected {}",
                t.dtype(),
                spec.dtype
            )));
        }
        out.push(check_shape(&what, t, n, spec_axes(spec).as_deref())?);
    }
    Ok(out)
}

/// Moves the (checked) input tensors into their stored columns.
fn push_input_columns(
    cols: &mut Cols,
    teacher: &TeacherFingerprint,
    inputs: &mut NamedTensors,
    dynamic: &[Vec<bool>],
) -> Result<(), StoreError> {
    for (spec, dynamic) in teacher.inputs.iter().zip(dynamic) {
        let t = inputs
            .remove(&spec.name)
            .ok_or_else(|| invalid(format!("input {:?} is missing", spec.name)))?;
        let row_shape = t.shape()[1..].to_vec();
        let a = tensor_into_column(&spec.name, t, spec.dtype, dynamic)?;
        let ci = info(
            &spec.name,
            "input",
            a.data_type(),
            &row_shape,
            dynamic,
            Some(spec.dtype),
        );
        cols.push(&spec.name, a, false, ci);
    }
    Ok(())
}

/// Token rows must hold one entry per id, in every part.
fn check_token_rows(tokens: &TokenRows, n: usize) -> Result<(), StoreError> {
    let parts = [
        ("token ids", Some(tokens.ids.len())),
        ("texts", tokens.text.as_ref().map(Vec::len)),
        ("token type ids", tokens.type_ids.as_ref().map(Vec::len)),
    ];
    for (what, len) in parts {
        if let Some(len) = len.filter(|&l| l != n) {
            return Err(invalid(format!(
                "{len} rows of {what}, expected {n} (one per id)"
            )));
        }
    }
    if let Some(types) = &tokens.type_ids {
        for (r, (ids, t)) in tokens.ids.iter().zip(types).enumerate() {
            if ids.len() != t.len() {
                return Err(invalid(format!(
                    "row {r} has {} token ids but {} token type ids",
                    ids.len(),
                    t.len()
                )));
            }
        }
    }
    Ok(())
}

/// `text`, `input_ids` and (when given) `token_type_ids` of a text teacher.
fn push_token_columns(cols: &mut Cols, tokens: &TokenRows, n: usize) -> Result<(), StoreError> {
    let text: ArrayRef = Arc::new(match &tokens.text {
        Some(t) => StringArray::from_iter(t.iter().map(Some)),
        None => StringArray::new_null(n),
    });
    let ci = info(TEXT_COLUMN, "text", &DataType::Utf8, &[], &[], None);
    cols.push(TEXT_COLUMN, text, true, ci);
    let mut lists = vec![(TOKEN_IDS_COLUMN, &tokens.ids)];
    if let Some(types) = &tokens.type_ids {
        lists.push((TOKEN_TYPE_IDS_COLUMN, types));
    }
    for (name, rows) in lists {
        let a = ragged_i32(name, rows)?;
        let ci = info(
            name,
            "tokens",
            a.data_type(),
            &[0],
            &[true],
            Some(DType::I32),
        );
        cols.push(name, a, false, ci);
    }
    Ok(())
}

/// A `List<Int32>` column (items named `item`, not nullable) of ragged id rows.
fn ragged_i32(name: &str, rows: &[Vec<u32>]) -> Result<ArrayRef, StoreError> {
    let mut offsets = Vec::with_capacity(rows.len() + 1);
    offsets.push(0i32);
    let mut values = Vec::with_capacity(rows.iter().map(Vec::len).sum());
    for (r, row) in rows.iter().enumerate() {
        for &id in row {
            values.push(i32::try_from(id).map_err(|_| {
                invalid(format!(
                    "{name} row {r}: token id {id} does not fit an Int32"
                ))
            })?);
        }
        let end = i32::try_from(values.len())
            .map_err(|_| invalid(format!("{name}: more than 2^31 tokens in one request")))?;
        offsets.push(end);
    }
    let field = Arc::new(Field::new_list_field(DataType::Int32, false));
    Ok(Arc::new(ListArray::try_new(
        field,
        OffsetBuffer::new(offsets.into()),
        Arc::new(Int32Array::from(values)),
        None,
    )?))
}
