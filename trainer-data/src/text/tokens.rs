//! Ragged token columns (`List<Int32>` / `List<Int64>`, also `LargeList`): one variable-length
//! row of token ids per sentence, as the teacher server stores `input_ids` and
//! `token_type_ids`. The attention mask is implied by each row's length.
//!
//! Rows are appended to a flat id buffer plus row offsets; every id is checked against the
//! student's vocabulary here, so a bad row is reported with its file, column and row, not deep
//! inside a gather.

use std::path::Path;

use arrow::array::{Array, AsArray, GenericListArray, OffsetSizeTrait, PrimitiveArray};
use arrow::datatypes::{ArrowPrimitiveType, DataType, Int32Type, Int64Type};

use crate::DataError;

fn bad(column: &str, path: &str, message: String) -> DataError {
    DataError::BadColumn {
        column: column.into(),
        source_path: path.into(),
        message,
    }
}

/// Checks that `dt` is a list of 32- or 64-bit integers (a token column).
pub fn check_token_type(column: &str, source: &str, dt: &DataType) -> Result<(), DataError> {
    let item = match dt {
        DataType::List(f) | DataType::LargeList(f) => f.data_type(),
        other => {
            return Err(bad(
                column,
                source,
                format!("expected token ids as List<Int32> or List<Int64>, found {other}"),
            ))
        }
    };
    if matches!(item, DataType::Int32 | DataType::Int64) {
        Ok(())
    } else {
        Err(bad(
            column,
            source,
            format!("expected token ids as List<Int32> or List<Int64>, found List<{item}>"),
        ))
    }
}

/// Ragged rows of token ids: row `i` is `ids[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ragged {
    /// All ids, row after row.
    pub ids: Vec<u32>,
    /// `rows + 1` offsets into `ids`, starting at 0.
    pub offsets: Vec<usize>,
}

impl Ragged {
    /// An empty set of rows.
    pub fn new() -> Self {
        Self {
            ids: Vec::new(),
            offsets: vec![0],
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[u32] {
        &self.ids[self.offsets[i]..self.offsets[i + 1]]
    }

    /// Length of row `i`.
    pub fn len_of(&self, i: usize) -> usize {
        self.offsets[i + 1] - self.offsets[i]
    }

    /// Appends one row.
    pub fn push(&mut self, row: &[u32]) {
        self.ids.extend_from_slice(row);
        self.offsets.push(self.ids.len());
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.ids.len() * 4 + self.offsets.len() * std::mem::size_of::<usize>()
    }
}

/// What a token column's values must satisfy.
#[derive(Debug, Clone, Copy)]
pub struct TokenRule {
    /// Every id must be below this (the student's table rows).
    pub limit: usize,
    /// What the limit is, for messages ("the student's vocabulary").
    pub limit_name: &'static str,
    /// Longest row allowed (the transformer's position table), `usize::MAX` for any.
    pub max_len: usize,
}

/// Appends the rows of a token column (`arr`, a record batch's column from `path`) to `out`.
/// `first_row` is the source row of `arr[0]`, for messages. Nulls, empty rows, negative ids
/// and ids at or beyond `rule.limit` are errors naming the row.
pub fn append_token_rows(
    column: &str,
    path: &Path,
    arr: &dyn Array,
    first_row: usize,
    rule: TokenRule,
    out: &mut Ragged,
) -> Result<(), DataError> {
    let p = path.display().to_string();
    match arr.data_type() {
        DataType::List(_) => append_list(column, &p, arr.as_list::<i32>(), first_row, rule, out),
        DataType::LargeList(_) => {
            append_list(column, &p, arr.as_list::<i64>(), first_row, rule, out)
        }
        other => Err(bad(
            column,
            &p,
            format!("expected token ids as List<Int32> or List<Int64>, found {other}"),
        )),
    }
}

fn append_list<O: OffsetSizeTrait>(
    column: &str,
    path: &str,
    list: &GenericListArray<O>,
    first_row: usize,
    rule: TokenRule,
    out: &mut Ragged,
) -> Result<(), DataError> {
    let values = list.values().as_ref();
    match values.data_type() {
        DataType::Int32 => append_typed::<O, Int32Type>(column, path, list, first_row, rule, out),
        DataType::Int64 => append_typed::<O, Int64Type>(column, path, list, first_row, rule, out),
        other => Err(bad(
            column,
            path,
            format!("expected token ids as List<Int32> or List<Int64>, found List<{other}>"),
        )),
    }
}

fn append_typed<O: OffsetSizeTrait, T: ArrowPrimitiveType>(
    column: &str,
    path: &str,
    list: &GenericListArray<O>,
    first_row: usize,
    rule: TokenRule,
    out: &mut Ragged,
) -> Result<(), DataError>
where
    T::Native: Into<i64>,
{
    let values: &PrimitiveArray<T> = list
        .values()
        .as_primitive_opt()
        .ok_or_else(|| bad(column, path, "token values are not integers".into()))?;
    if values.null_count() > 0 {
        let pos = values.nulls().and_then(|n| n.iter().position(|v| !v));
        let offs = list.value_offsets();
        let row = pos
            .and_then(|p| offs.windows(2).position(|w| w[1].as_usize() > p))
            .unwrap_or(0);
        return Err(bad(
            column,
            path,
            format!("row {}: a null token id", first_row + row),
        ));
    }
    let raw = values.values();
    let offs = list.value_offsets();
    out.ids.reserve(raw.len());
    for i in 0..list.len() {
        let row = first_row + i;
        if list.is_null(i) {
            return Err(DataError::NullValue {
                column: column.into(),
                source_path: path.into(),
                row,
            });
        }
        let (a, b) = (offs[i].as_usize(), offs[i + 1].as_usize());
        if a == b {
            return Err(bad(
                column,
                path,
                format!("row {row} has no tokens (every row needs at least one)"),
            ));
        }
        if b - a > rule.max_len {
            return Err(bad(
                column,
                path,
                format!(
                    "row {row} has {} tokens, more than the student's max_positions {}",
                    b - a,
                    rule.max_len
                ),
            ));
        }
        for &v in &raw[a..b] {
            let v: i64 = v.into();
            if v < 0 || v as u64 >= rule.limit as u64 {
                return Err(bad(
                    column,
                    path,
                    format!(
                        "row {row}: token id {v} is not below {} ({})",
                        rule.limit, rule.limit_name
                    ),
                ));
            }
            out.ids.push(v as u32);
        }
        out.offsets.push(out.ids.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Builder, Int64Builder, ListBuilder};
    use std::path::PathBuf;

    fn rule(limit: usize) -> TokenRule {
        TokenRule {
            limit,
            limit_name: "the student's vocabulary",
            max_len: 4,
        }
    }

    fn i32_list(rows: &[Option<Vec<i32>>]) -> GenericListArray<i32> {
        let mut b = ListBuilder::new(Int32Builder::new());
        for r in rows {
            match r {
                Some(v) => {
                    b.values().append_slice(v);
                    b.append(true);
                }
                None => b.append(false),
            }
        }
        b.finish()
    }

    #[test]
    fn ragged_rows_of_both_widths_append() {
        let path = PathBuf::from("f.parquet");
        let mut out = Ragged::new();
        let a = i32_list(&[Some(vec![101, 5, 102]), Some(vec![101, 102])]);
        append_token_rows("input_ids", &path, &a, 0, rule(200), &mut out).expect("valid rows");
        let mut b = ListBuilder::new(Int64Builder::new());
        b.values().append_slice(&[7]);
        b.append(true);
        append_token_rows("input_ids", &path, &b.finish(), 2, rule(200), &mut out)
            .expect("valid rows");
        assert_eq!(out.rows(), 3);
        assert_eq!(out.row(0), [101, 5, 102]);
        assert_eq!(out.row(1), [101, 102]);
        assert_eq!(out.row(2), [7]);
        assert_eq!(out.len_of(0), 3);
    }

    #[test]
    fn bad_rows_name_the_row_and_the_id() {
        let path = PathBuf::from("f.parquet");
        let cases: [(Vec<Option<Vec<i32>>>, &str); 5] = [
            (
                vec![Some(vec![1]), Some(vec![1, 250])],
                "row 11: token id 250 is not below 200",
            ),
            (vec![Some(vec![1]), Some(vec![])], "row 11 has no tokens"),
            (vec![Some(vec![-3])], "row 10: token id -3"),
            (vec![Some(vec![1]), None], "null value at row 11"),
            (
                vec![Some(vec![1, 2, 3, 4, 5])],
                "row 10 has 5 tokens, more than",
            ),
        ];
        for (rows, want) in cases {
            let a = i32_list(&rows);
            let e = append_token_rows("input_ids", &path, &a, 10, rule(200), &mut Ragged::new())
                .expect_err("bad row");
            let msg = e.to_string();
            assert!(msg.contains(want), "{msg}");
            assert!(
                msg.contains("input_ids") && msg.contains("f.parquet"),
                "{msg}"
            );
        }
    }

    #[test]
    fn non_list_types_are_refused_with_the_type() {
        let e = check_token_type("input_ids", "src", &DataType::Utf8).expect_err("utf8");
        assert!(e.to_string().contains("found Utf8"), "{e}");
        let f = arrow::datatypes::Field::new("item", DataType::Float32, true);
        let e = check_token_type("input_ids", "src", &DataType::List(f.into())).expect_err("f32");
        assert!(e.to_string().contains("List<Float32>"), "{e}");
        let f = arrow::datatypes::Field::new("item", DataType::Int64, true);
        check_token_type("input_ids", "src", &DataType::LargeList(f.into())).expect("i64 ok");
    }
}
