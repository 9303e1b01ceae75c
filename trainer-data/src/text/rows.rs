//! Text training data: ragged token rows with their teacher targets (pooled embeddings and
//! tapped layers, `FixedSizeList<float>` columns), read from a label store in passes.
//!
//! **Row identity.** Every row is known by a 64-bit hash of its `id` ([`id_hash`]). The epoch
//! order, the shuffle windows and the held-out split all derive from that hash and the seed,
//! never from the row's position in the files, so relabelling the same rows in another order
//! (concurrent requests append in arrival order) gives the same batches for a seed. (Rows
//! sharing one id — the label store does not write those — keep their stored relative order.)
//!
//! **Memory.** Each pass streams the source one Parquet record batch (8192 rows) at a time and
//! keeps only the rows it routes somewhere ([`Route`]). A run holds:
//! - the eval rows (`data.eval`, or the `data.eval_fraction` held out by id hash), always;
//! - when the training rows fit in one shuffle window (`data.shuffle_window`, default
//!   [`DEFAULT_SHUFFLE_WINDOW`] rows), all of them, read once ("resident");
//! - otherwise one window at a time: each epoch splits the training rows into
//!   `W = ceil(rows / shuffle_window)` windows by a seeded hash of the id and streams the
//!   source `W` times, each pass keeping the rows of one window (about `rows / W`, a hash
//!   partition: within a few percent for large windows);
//! - plus the loader's queue of prepared batches ([`super::loader`]).
//!
//! Per row that is `4 × tokens` bytes of ids (twice with token types), `4 × width` per target
//! column, and 8 bytes of hash.

use std::path::Path;

use super::tokens::{append_token_rows, check_token_type, Ragged, TokenRule};
use crate::columns::{append_float_rows, float_list_width};
use crate::seeds::{id_hash, in_subset, is_held_out, order_key};
use crate::source::ParquetSource;
use crate::{DataError, Matrix};
use distill_proto::arrow_codec::string_values;

/// Default `data.shuffle_window`: rows held per shuffle window.
pub const DEFAULT_SHUFFLE_WINDOW: usize = 262_144;

/// The id column every label-store row has.
pub const ID_COLUMN: &str = "id";

/// Which columns a text run reads, and the limits their values must respect.
#[derive(Debug, Clone)]
pub struct TextColumns {
    /// The token id column (`data.input`).
    pub tokens: String,
    /// The token type column (`data.token_types`), for students that use it.
    pub types: Option<String>,
    /// Distinct teacher target columns, in the order loss terms first name them.
    pub targets: Vec<String>,
    /// Token ids must respect this (the student's vocabulary and positions).
    pub token_rule: TokenRule,
    /// Token type ids must be below this (the student's type table rows).
    pub type_limit: usize,
}

/// Rows held in memory: token ids, token types, targets, id hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct TextRows {
    /// [`id_hash`] of each row's id.
    pub hashes: Vec<u64>,
    /// Token ids.
    pub tokens: Ragged,
    /// Token types (same lengths as `tokens`), when read.
    pub types: Option<Ragged>,
    /// One matrix per [`TextColumns::targets`] entry.
    pub targets: Vec<Matrix>,
}

impl TextRows {
    /// No rows, shaped for `cols` with target widths `widths`.
    pub fn empty(cols: &TextColumns, widths: &[usize]) -> Self {
        Self {
            hashes: Vec::new(),
            tokens: Ragged::new(),
            types: cols.types.as_ref().map(|_| Ragged::new()),
            targets: widths
                .iter()
                .map(|&w| Matrix {
                    rows: 0,
                    cols: w,
                    data: Vec::new(),
                })
                .collect(),
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.hashes.len()
    }

    /// Bytes of the host buffers.
    pub fn bytes(&self) -> usize {
        self.hashes.len() * 8
            + self.tokens.bytes()
            + self.types.as_ref().map_or(0, Ragged::bytes)
            + self.targets.iter().map(|m| m.data.len() * 4).sum::<usize>()
    }

    /// Appends row `i` of `from`.
    fn push_row(&mut self, from: &TextRows, i: usize) {
        self.hashes.push(from.hashes[i]);
        self.tokens.push(from.tokens.row(i));
        if let (Some(dst), Some(src)) = (self.types.as_mut(), from.types.as_ref()) {
            dst.push(src.row(i));
        }
        for (dst, src) in self.targets.iter_mut().zip(&from.targets) {
            dst.data.extend_from_slice(src.row(i));
            dst.rows += 1;
        }
    }

    /// The rows reordered by id hash: the same content gives the same order however it was
    /// stored.
    pub fn sorted_by_hash(&self) -> TextRows {
        let mut order: Vec<usize> = (0..self.rows()).collect();
        order.sort_by_key(|&i| self.hashes[i]);
        let widths: Vec<usize> = self.targets.iter().map(|m| m.cols).collect();
        let mut out = TextRows {
            hashes: Vec::with_capacity(self.rows()),
            tokens: Ragged::new(),
            types: self.types.as_ref().map(|_| Ragged::new()),
            targets: widths
                .iter()
                .map(|&w| Matrix {
                    rows: 0,
                    cols: w,
                    data: Vec::with_capacity(self.rows() * w),
                })
                .collect(),
        };
        for i in order {
            out.push_row(self, i);
        }
        out
    }
}

/// Where a pass sends a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Into the first output (training rows).
    Keep,
    /// Into the second output (eval rows).
    Eval,
    /// Nowhere (counted only).
    Skip,
    /// Nowhere, not counted: outside the training subset.
    Drop,
}

/// Checks the column types of `src` for `cols` and returns the target widths.
pub fn check_columns(src: &ParquetSource, cols: &TextColumns) -> Result<Vec<usize>, DataError> {
    let id_type = src.column_type(ID_COLUMN)?;
    if !matches!(
        id_type,
        arrow::datatypes::DataType::Utf8
            | arrow::datatypes::DataType::LargeUtf8
            | arrow::datatypes::DataType::Utf8View
    ) {
        return Err(DataError::BadColumn {
            column: ID_COLUMN.into(),
            source_path: src.spec.clone(),
            message: format!("expected string ids, found {id_type}"),
        });
    }
    check_token_type(&cols.tokens, &src.spec, src.column_type(&cols.tokens)?)?;
    if let Some(t) = &cols.types {
        check_token_type(t, &src.spec, src.column_type(t)?)?;
    }
    cols.targets
        .iter()
        .map(|c| float_list_width(c, &src.spec, src.column_type(c)?))
        .collect()
}

/// One streaming pass over `src`: decodes every row (checking tokens against the rules) and
/// sends it where `route(id hash)` says. Returns the kept rows, the eval rows and the number
/// of rows `route` skipped.
pub fn read_pass(
    src: &ParquetSource,
    cols: &TextColumns,
    widths: &[usize],
    mut route: impl FnMut(u64) -> Route,
) -> Result<(TextRows, TextRows, usize), DataError> {
    let mut names: Vec<&str> = vec![ID_COLUMN, cols.tokens.as_str()];
    if let Some(t) = &cols.types {
        names.push(t);
    }
    for t in &cols.targets {
        names.push(t);
    }
    let mut kept = TextRows::empty(cols, widths);
    let mut eval = TextRows::empty(cols, widths);
    let mut skipped = 0usize;
    let mut row0 = 0usize;
    let type_rule = TokenRule {
        limit: cols.type_limit,
        limit_name: "the student's token-type table",
        max_len: usize::MAX,
    };
    src.for_each_batch(&names, |file, batch| {
        let decoded = decode_batch(file, batch, cols, widths, row0, type_rule)?;
        for i in 0..decoded.rows() {
            match route(decoded.hashes[i]) {
                Route::Keep => kept.push_row(&decoded, i),
                Route::Eval => eval.push_row(&decoded, i),
                Route::Skip => skipped += 1,
                Route::Drop => {}
            }
        }
        row0 += batch.num_rows();
        Ok(())
    })?;
    Ok((kept, eval, skipped))
}

/// Decodes one record batch (columns in [`read_pass`]'s order) into rows.
fn decode_batch(
    file: &Path,
    batch: &arrow::record_batch::RecordBatch,
    cols: &TextColumns,
    widths: &[usize],
    row0: usize,
    type_rule: TokenRule,
) -> Result<TextRows, DataError> {
    let fname = file.display().to_string();
    let ids =
        string_values(ID_COLUMN, batch.column(0).as_ref()).map_err(|e| DataError::BadColumn {
            column: ID_COLUMN.into(),
            source_path: fname.clone(),
            message: format!("{} (rows from {row0})", e.problem),
        })?;
    let mut tokens = Ragged::new();
    append_token_rows(
        &cols.tokens,
        file,
        batch.column(1).as_ref(),
        row0,
        cols.token_rule,
        &mut tokens,
    )?;
    let mut next = 2;
    let types = match &cols.types {
        Some(name) => {
            let mut t = Ragged::new();
            append_token_rows(
                name,
                file,
                batch.column(next).as_ref(),
                row0,
                type_rule,
                &mut t,
            )?;
            next += 1;
            if let Some(i) = (0..tokens.rows()).find(|&i| t.len_of(i) != tokens.len_of(i)) {
                return Err(DataError::BadColumn {
                    column: name.clone(),
                    source_path: fname,
                    message: format!(
                        "row {}: {} token types for {} tokens in {:?}",
                        row0 + i,
                        t.len_of(i),
                        tokens.len_of(i),
                        cols.tokens
                    ),
                });
            }
            Some(t)
        }
        None => None,
    };
    let mut targets = Vec::with_capacity(widths.len());
    for (name, &w) in cols.targets.iter().zip(widths) {
        let arr = batch.column(next).as_ref();
        next += 1;
        if arr.null_count() > 0 {
            let row = (0..arr.len()).find(|&i| arr.is_null(i)).unwrap_or(0);
            return Err(DataError::NullValue {
                column: name.clone(),
                source_path: fname,
                row: row0 + row,
            });
        }
        let mut buf = Vec::with_capacity(arr.len() * w);
        append_float_rows(name, file, arr, w, row0, &mut buf)?;
        targets.push(Matrix {
            rows: arr.len(),
            cols: w,
            data: buf,
        });
    }
    Ok(TextRows {
        hashes: ids.iter().map(|s| id_hash(s)).collect(),
        tokens,
        types,
        targets,
    })
}

/// The training side of a text run: the source and how its rows are held.
#[derive(Debug)]
pub struct TextTrainData {
    /// The training source.
    pub source: ParquetSource,
    /// What is read.
    pub columns: TextColumns,
    /// Width of each target column.
    pub widths: Vec<usize>,
    /// Training rows (the held-out ones excluded).
    pub rows: usize,
    /// `data.shuffle_window`.
    pub window: usize,
    /// The held-out fraction removed from training, if any.
    pub holdout: Option<f64>,
    /// `data.train_fraction`: the training subset kept, if any.
    pub subset: Option<f64>,
    /// All training rows, when they fit in one window.
    pub resident: Option<std::sync::Arc<TextRows>>,
}

impl TextTrainData {
    /// Opens the source, checks its columns, and reads it once: keeping the training rows if
    /// they fit in one window, and the held-out rows when `holdout` is set (returned as the
    /// eval set, ordered by id hash). `subset` keeps only that fraction of the training rows.
    pub fn load(
        spec: &str,
        columns: TextColumns,
        window: usize,
        holdout: Option<f64>,
        subset: Option<f64>,
    ) -> Result<(Self, Option<TextRows>), DataError> {
        let source = ParquetSource::open(spec)?;
        let widths = check_columns(&source, &columns)?;
        let expected = (source.rows as f64 * subset.unwrap_or(1.0)).ceil() as usize;
        let resident = expected <= window;
        let (kept, eval, skipped) = read_pass(&source, &columns, &widths, |h| {
            if holdout.is_some_and(|f| is_held_out(h, f)) {
                Route::Eval
            } else if subset.is_some_and(|f| !in_subset(h, f)) {
                Route::Drop
            } else if resident {
                Route::Keep
            } else {
                Route::Skip
            }
        })?;
        let rows = if resident { kept.rows() } else { skipped };
        if rows == 0 {
            return Err(DataError::Empty {
                source_path: spec.into(),
                message: "no training rows are left after data.eval_fraction / data.train_fraction"
                    .into(),
            });
        }
        let eval = holdout.map(|_| eval.sorted_by_hash());
        if eval.as_ref().is_some_and(|e| e.rows() == 0) {
            return Err(DataError::Config {
                key: "data.eval_fraction".into(),
                message: format!("holds out no row of the {rows} in {spec}; raise it"),
            });
        }
        Ok((
            Self {
                source,
                columns,
                widths,
                rows,
                window,
                holdout,
                subset,
                resident: resident.then(|| std::sync::Arc::new(kept)),
            },
            eval,
        ))
    }

    /// Shuffle windows per epoch (1 when resident).
    pub fn windows(&self) -> usize {
        if self.resident.is_some() {
            1
        } else {
            self.rows.div_ceil(self.window.max(1))
        }
    }

    /// The rows of window `w` of `epoch`, streamed from the source (one pass).
    pub fn read_window(&self, seed: u64, epoch: usize, w: usize) -> Result<TextRows, DataError> {
        let windows = self.windows() as u64;
        let (holdout, subset) = (self.holdout, self.subset);
        let (kept, _, _) = read_pass(&self.source, &self.columns, &self.widths, |h| {
            if holdout.is_some_and(|f| is_held_out(h, f))
                || subset.is_some_and(|f| !in_subset(h, f))
            {
                Route::Skip
            } else if order_key(seed, epoch, h) % windows == w as u64 {
                Route::Keep
            } else {
                Route::Skip
            }
        })?;
        Ok(kept)
    }
}

/// Reads a whole eval source (`data.eval`), ordered by id hash.
pub fn load_eval(spec: &str, columns: &TextColumns) -> Result<TextRows, DataError> {
    let source = ParquetSource::open(spec)?;
    let widths = check_columns(&source, columns)?;
    let (kept, _, _) = read_pass(&source, columns, &widths, |_| Route::Keep)?;
    Ok(kept.sorted_by_hash())
}
