//! Loads the columns a run needs into compact host buffers: the inputs, the hard labels and one
//! teacher target per loss term (dense rows or top-k storage), joining extra teacher datasets
//! by `id` and averaging several teachers' soft targets.
//!
//! What is held in memory: `rows × (input width + target widths)` f32 values plus labels, an
//! 8-byte hash of each row's id (the ids themselves only while loading). MNIST's 60k × 784 inputs are 188 MB. Larger-than-memory sets are not
//! supported by this loader (see the crate report); Parquet is still read file by file and
//! batch by batch, never as a whole.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::DataType;

use super::columns::{
    append_f32_scalars, append_float_rows, append_ids, append_index_rows, append_labels,
    append_u64s, float_list_width, is_int_scalar,
};
use super::served::ServedTeacher;
use super::source::ParquetSource;
use super::views::Views;
use super::DataError;
use crate::config::{DataConfig, LossTerm};

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

/// A teacher target of one loss term.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Full rows (logits or features).
    Dense(Matrix),
    /// Top-k logit storage.
    TopK {
        /// Class indices, `rows × k`.
        indices: Vec<u32>,
        /// Logit values of those classes, `rows × k`.
        values: Matrix,
        /// Log-sum-exp of all logits, one per row.
        logsumexp: Vec<f32>,
    },
    /// Asked of a running teacher-server for every batch (`[data.served]`).
    Served {
        /// The server's output name.
        output: String,
        /// Values per row.
        width: usize,
    },
}

impl Target {
    /// Values per row (k for top-k).
    pub fn width(&self) -> usize {
        match self {
            Target::Dense(m) => m.cols,
            Target::TopK { values, .. } => values.cols,
            Target::Served { width, .. } => *width,
        }
    }

    /// Rows held (`None` when served per batch).
    fn rows(&self) -> Option<usize> {
        match self {
            Target::Dense(m) => Some(m.rows),
            Target::TopK { values, .. } => Some(values.rows),
            Target::Served { .. } => None,
        }
    }

    /// Reorders rows: row `i` of the result is row `order[i]` of `self`.
    fn gather(&self, order: &[usize]) -> Target {
        let gather_m = |m: &Matrix| {
            let mut data = Vec::with_capacity(order.len() * m.cols);
            for &r in order {
                data.extend_from_slice(m.row(r));
            }
            Matrix {
                rows: order.len(),
                cols: m.cols,
                data,
            }
        };
        match self {
            Target::Dense(m) => Target::Dense(gather_m(m)),
            Target::TopK {
                indices,
                values,
                logsumexp,
            } => {
                let k = values.cols;
                let mut idx = Vec::with_capacity(order.len() * k);
                for &r in order {
                    idx.extend_from_slice(&indices[r * k..(r + 1) * k]);
                }
                Target::TopK {
                    indices: idx,
                    values: gather_m(values),
                    logsumexp: order.iter().map(|&r| logsumexp[r]).collect(),
                }
            }
            Target::Served { .. } => self.clone(),
        }
    }
}

/// The training rows a run needs, in memory.
#[derive(Debug, Clone)]
pub struct TrainData {
    /// Input rows.
    pub input: Matrix,
    /// Hard labels, when `data.label` is set.
    pub labels: Option<Vec<u32>>,
    /// Distinct teacher targets.
    pub targets: Vec<Target>,
    /// For each loss term, the index of its target in `targets` (None for `ce`).
    pub term_target: Vec<Option<usize>>,
    /// Number of classes (logit width).
    pub num_classes: usize,
    /// [`super::text::id_hash`] of each row's `id`, when the source has ids: the epoch order
    /// sorts by a seeded key of these, so it does not depend on the order rows were stored in.
    pub row_hashes: Option<Vec<u64>>,
    /// Stored augmented views (`[data.views]`): the targets hold `rows × K` entries.
    pub views: Option<Views>,
    /// The teacher asked per batch (`[data.served]`).
    pub served: Option<Arc<ServedTeacher>>,
}

/// The held-out rows evaluated each epoch.
#[derive(Debug, Clone)]
pub struct EvalData {
    /// Input rows.
    pub input: Matrix,
    /// Hard labels.
    pub labels: Vec<u32>,
    /// Teacher logits (dense or top-k) for agreement and eval KD, when present.
    pub teacher: Option<(String, Target)>,
}

/// What one column read yields.
pub(super) enum Acc {
    Floats { width: usize, buf: Vec<f32> },
    Labels(Vec<u32>),
    Ids(Vec<String>),
    Indices { k: usize, buf: Vec<u32> },
    Scalars(Vec<f32>),
    U64s(Vec<u64>),
}

/// How to read one column.
pub(super) enum Want {
    Floats,
    Labels,
    Ids,
    Indices,
    Scalars,
    U64s,
}

/// Reads the named columns of a source in one streaming pass.
pub(super) fn read_columns(
    src: &ParquetSource,
    wants: &[(&str, Want)],
) -> Result<Vec<Acc>, DataError> {
    let mut accs = Vec::with_capacity(wants.len());
    for (name, want) in wants {
        let dt = src.column_type(name)?;
        let acc = match want {
            Want::Floats => Acc::Floats {
                width: float_list_width(name, &src.spec, dt)?,
                buf: Vec::new(),
            },
            Want::Labels => {
                if !is_int_scalar(dt) {
                    return Err(DataError::BadColumn {
                        column: name.to_string(),
                        source_path: src.spec.clone(),
                        message: format!("expected an integer label column, found {dt}"),
                    });
                }
                Acc::Labels(Vec::new())
            }
            Want::Ids => Acc::Ids(Vec::new()),
            Want::Indices => match dt {
                DataType::FixedSizeList(item, k) if is_int_scalar(item.data_type()) && *k > 0 => {
                    Acc::Indices {
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
            Want::Scalars => Acc::Scalars(Vec::new()),
            Want::U64s => Acc::U64s(Vec::new()),
        };
        accs.push(acc);
    }
    // Reserve the big buffers once (row count is known from the file footers).
    for acc in &mut accs {
        if let Acc::Floats { width, buf } = acc {
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
                Acc::Floats { width, buf } => append_float_rows(name, file, col, *width, row, buf)?,
                Acc::Labels(buf) => append_labels(name, file, col, row, buf)?,
                Acc::Ids(buf) => append_ids(name, file, col, row, buf)?,
                Acc::Indices { k, buf } => append_index_rows(name, file, col, *k, row, buf)?,
                Acc::Scalars(buf) => append_f32_scalars(name, file, col, row, buf)?,
                Acc::U64s(buf) => append_u64s(name, file, col, row, buf)?,
            }
        }
        row += batch.num_rows();
        Ok(())
    })?;
    Ok(accs)
}

fn take_floats(acc: Acc, rows: usize) -> Matrix {
    match acc {
        Acc::Floats { width, buf } => Matrix {
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

pub(super) fn take_u32(acc: Acc) -> Vec<u32> {
    match acc {
        Acc::Labels(v) | Acc::Indices { buf: v, .. } => v,
        _ => Vec::new(),
    }
}

fn take_scalars(acc: Acc) -> Vec<f32> {
    match acc {
        Acc::Scalars(v) => v,
        _ => Vec::new(),
    }
}

pub(super) fn take_ids(acc: Acc) -> Vec<String> {
    match acc {
        Acc::Ids(v) => v,
        _ => Vec::new(),
    }
}

/// How a loss term's teacher column is stored in a source.
#[derive(Debug, Clone, PartialEq)]
enum Layout {
    Dense(String),
    TopK {
        indices: String,
        values: String,
        logsumexp: String,
    },
}

/// Finds a teacher column: the column itself, or its `{col}_topk_*` / `{col}_logsumexp` trio.
fn locate(src: &ParquetSource, col: &str) -> Result<Layout, DataError> {
    if src.has_column(col) {
        return Ok(Layout::Dense(col.to_string()));
    }
    let (i, v, l) = (
        format!("{col}_topk_indices"),
        format!("{col}_topk_values"),
        format!("{col}_logsumexp"),
    );
    if src.has_column(&i) && src.has_column(&v) && src.has_column(&l) {
        return Ok(Layout::TopK {
            indices: i,
            values: v,
            logsumexp: l,
        });
    }
    // Report the plain column as missing, listing what exists.
    src.column_type(col).map(|_| Layout::Dense(col.into()))
}

/// Reads one target (dense or top-k) from a source, and ids when `with_ids`.
fn read_target(
    src: &ParquetSource,
    layout: &Layout,
    with_ids: bool,
) -> Result<(Target, Vec<String>), DataError> {
    let mut wants: Vec<(&str, Want)> = Vec::new();
    match layout {
        Layout::Dense(c) => wants.push((c, Want::Floats)),
        Layout::TopK {
            indices,
            values,
            logsumexp,
        } => {
            wants.push((indices, Want::Indices));
            wants.push((values, Want::Floats));
            wants.push((logsumexp, Want::Scalars));
        }
    }
    if with_ids {
        wants.push(("id", Want::Ids));
    }
    let mut accs = read_columns(src, &wants)?.into_iter();
    let rows = src.rows;
    let target = match layout {
        Layout::Dense(_) => Target::Dense(take_floats(accs.next().ok_or_else(internal)?, rows)),
        Layout::TopK { values, .. } => {
            let indices = take_u32(accs.next().ok_or_else(internal)?);
            let vals = take_floats(accs.next().ok_or_else(internal)?, rows);
            let lse = take_scalars(accs.next().ok_or_else(internal)?);
            if indices.len() != vals.data.len() {
                return Err(DataError::BadColumn {
                    column: values.clone(),
                    source_path: src.spec.clone(),
                    message: format!(
                        "top-k values have width {} but the indices column has another width",
                        vals.cols
                    ),
                });
            }
            Target::TopK {
                indices,
                values: vals,
                logsumexp: lse,
            }
        }
    };
    let ids = if with_ids {
        take_ids(accs.next().ok_or_else(internal)?)
    } else {
        Vec::new()
    };
    Ok((target, ids))
}

pub(super) fn take_u64s(acc: Acc) -> Vec<u64> {
    match acc {
        Acc::U64s(v) => v,
        _ => Vec::new(),
    }
}

pub(super) fn internal() -> DataError {
    DataError::Join {
        message: "internal: column read count mismatch".into(),
    }
}

/// Where a term's teacher column comes from.
#[derive(Debug, Clone, PartialEq)]
enum Origin {
    Train(Layout),
    Teacher(usize, Layout),
    /// All extra teachers, averaged (kd / soft_bce only).
    Average(String),
    /// The stored views, one entry per (row, view).
    Views(Layout),
    /// The served teacher's output of that name.
    Served(String),
}

/// Row order that brings `teacher_ids` into the order of `train_ids`.
fn join_order(
    train_ids: &[String],
    teacher_ids: &[String],
    teacher: &str,
) -> Result<Vec<usize>, DataError> {
    let mut pos: HashMap<&str, usize> = HashMap::with_capacity(teacher_ids.len());
    for (i, id) in teacher_ids.iter().enumerate() {
        if pos.insert(id.as_str(), i).is_some() {
            return Err(DataError::Join {
                message: format!("teacher {teacher:?} holds id {id:?} twice"),
            });
        }
    }
    train_ids
        .iter()
        .map(|id| {
            pos.get(id.as_str())
                .copied()
                .ok_or_else(|| DataError::Join {
                    message: format!("training row id {id:?} is missing from teacher {teacher:?}"),
                })
        })
        .collect()
}

/// Weighted average of several teachers' soft targets, returned as logits whose
/// softmax (kd) or sigmoid (soft_bce) at `temperature` equals the averaged probabilities.
pub fn average_soft_targets(mats: &[(f64, Matrix)], temperature: f64, sigmoid: bool) -> Matrix {
    let (rows, cols) = (mats[0].1.rows, mats[0].1.cols);
    let wsum: f64 = mats.iter().map(|(w, _)| *w).sum();
    let mut out = vec![0f32; rows * cols];
    let mut p = vec![0f64; cols];
    let mut acc = vec![0f64; cols];
    for r in 0..rows {
        acc.iter_mut().for_each(|a| *a = 0.0);
        for (w, m) in mats {
            let z = m.row(r);
            if sigmoid {
                for (a, &zi) in acc.iter_mut().zip(z) {
                    *a += w / wsum / (1.0 + (-(zi as f64) / temperature).exp());
                }
            } else {
                let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let mut s = 0.0;
                for (pi, &zi) in p.iter_mut().zip(z) {
                    *pi = ((zi as f64 - max) / temperature).exp();
                    s += *pi;
                }
                for (a, pi) in acc.iter_mut().zip(&p) {
                    *a += w / wsum * pi / s;
                }
            }
        }
        let row = &mut out[r * cols..(r + 1) * cols];
        for (o, &a) in row.iter_mut().zip(&acc) {
            *o = if sigmoid {
                let a = a.clamp(1e-7, 1.0 - 1e-7);
                (temperature * (a / (1.0 - a)).ln()) as f32
            } else {
                (temperature * a.max(1e-30).ln()) as f32
            };
        }
    }
    Matrix {
        rows,
        cols,
        data: out,
    }
}

/// The sources a run reads: the training rows, the extra teacher datasets, the stored views.
struct Sources<'a> {
    cfg: &'a DataConfig,
    train: ParquetSource,
    teachers: Vec<ParquetSource>,
    views: Option<ParquetSource>,
}

impl<'a> Sources<'a> {
    fn open(cfg: &'a DataConfig) -> Result<Self, DataError> {
        Ok(Self {
            cfg,
            train: ParquetSource::open(&cfg.train)?,
            teachers: cfg
                .teachers
                .iter()
                .map(|t| ParquetSource::open(&t.path))
                .collect::<Result<_, _>>()?,
            views: cfg
                .views
                .as_ref()
                .map(|v| ParquetSource::open(&v.path))
                .transpose()?,
        })
    }

    /// Where loss term `i`'s teacher column lives (`None` for `ce`).
    fn origin(&self, i: usize, term: &LossTerm) -> Result<Option<Origin>, DataError> {
        let Some(tref) = term.teacher() else {
            return Ok(None);
        };
        let key = || format!("loss[{i}].teacher");
        let teachers = &self.teachers;
        let origin = if let Some(views) = &self.views {
            Origin::Views(locate(views, tref)?)
        } else if self.cfg.served.is_some() {
            Origin::Served(tref.to_string())
        } else if let Some((name, col)) = tref.split_once(':') {
            let j = self
                .cfg
                .teachers
                .iter()
                .position(|t| t.name == name)
                .ok_or_else(|| DataError::Config {
                    key: key(),
                    message: format!(
                        "{tref:?} names teacher {name:?}, but data.teachers has no such name"
                    ),
                })?;
            Origin::Teacher(j, locate(&teachers[j], col)?)
        } else if !teachers.is_empty() && teachers.iter().all(|t| locate(t, tref).is_ok()) {
            if teachers.len() == 1 {
                Origin::Teacher(0, locate(&teachers[0], tref)?)
            } else {
                self.averaged(&key(), term, tref)?
            }
        } else {
            Origin::Train(locate(&self.train, tref)?)
        };
        if let Origin::Train(Layout::TopK { .. })
        | Origin::Teacher(_, Layout::TopK { .. })
        | Origin::Views(Layout::TopK { .. }) = &origin
        {
            if !matches!(term, LossTerm::Kd { .. }) {
                return Err(DataError::Config {
                    key: key(),
                    message: format!(
                        "column {tref:?} is stored as top-k only, which a {} term cannot use (only kd can)",
                        term.kind()
                    ),
                });
            }
        }
        Ok(Some(origin))
    }

    /// A column every extra teacher holds: averaged, for the terms that can average.
    fn averaged(&self, key: &str, term: &LossTerm, tref: &str) -> Result<Origin, DataError> {
        if !matches!(term, LossTerm::Kd { .. } | LossTerm::SoftBce { .. }) {
            return Err(DataError::Config {
                key: key.into(),
                message: format!(
                    "column {tref:?} exists in several teachers; a {} term reads one teacher: write \"NAME:{tref}\"",
                    term.kind()
                ),
            });
        }
        for (j, t) in self.teachers.iter().enumerate() {
            if !matches!(locate(t, tref)?, Layout::Dense(_)) {
                return Err(DataError::Config {
                    key: key.into(),
                    message: format!(
                        "averaging several teachers needs full logits, but teacher {:?} stores only top-k of {tref:?}",
                        self.cfg.teachers[j].name
                    ),
                });
            }
        }
        Ok(Origin::Average(tref.to_string()))
    }

    /// Inputs, labels and (when joining) ids of the training rows, in one pass.
    fn train_columns(&self, need_ids: bool) -> Result<TrainColumns, DataError> {
        let cfg = self.cfg;
        let mut wants: Vec<(&str, Want)> = vec![(cfg.input.as_str(), Want::Floats)];
        if let Some(l) = &cfg.label {
            wants.push((l.as_str(), Want::Labels));
        }
        if need_ids {
            wants.push(("id", Want::Ids));
        }
        let mut accs = read_columns(&self.train, &wants)?.into_iter();
        let input = take_floats(accs.next().ok_or_else(internal)?, self.train.rows);
        let labels = match &cfg.label {
            Some(_) => Some(take_u32(accs.next().ok_or_else(internal)?)),
            None => None,
        };
        let ids = if need_ids {
            take_ids(accs.next().ok_or_else(internal)?)
        } else {
            Vec::new()
        };
        Ok(TrainColumns { input, labels, ids })
    }
}

/// The training source's own columns.
struct TrainColumns {
    input: Matrix,
    labels: Option<Vec<u32>>,
    /// Row ids, read only when a teacher dataset is joined.
    ids: Vec<String>,
}

/// Builds each term's target once, sharing equal ones, with teacher rows joined by id.
struct TargetBuilder<'s, 'a> {
    sources: &'s Sources<'a>,
    train_ids: &'s [String],
    /// For each (row, view) entry, its row in the views dataset.
    view_order: &'s [usize],
    served: Option<&'s ServedTeacher>,
    targets: Vec<Target>,
    keys: Vec<String>,
    /// Joined dense columns of single teachers, reused by averages at other temperatures.
    joined: HashMap<(usize, String), Matrix>,
}

impl<'s, 'a> TargetBuilder<'s, 'a> {
    fn new(
        sources: &'s Sources<'a>,
        train_ids: &'s [String],
        view_order: &'s [usize],
        served: Option<&'s ServedTeacher>,
    ) -> Self {
        Self {
            sources,
            train_ids,
            view_order,
            served,
            targets: Vec::new(),
            keys: Vec::new(),
            joined: HashMap::new(),
        }
    }

    /// The index of `term`'s target, reading it unless an equal one exists.
    fn target_for(&mut self, term: &LossTerm, origin: &Origin) -> Result<usize, DataError> {
        let key = target_key(origin, term);
        if let Some(k) = self.keys.iter().position(|k| *k == key) {
            return Ok(k);
        }
        let target = match origin {
            Origin::Train(layout) => read_target(&self.sources.train, layout, false)?.0,
            Origin::Teacher(j, layout) => {
                let (t, ids) = read_target(&self.sources.teachers[*j], layout, true)?;
                t.gather(&self.join(*j, &ids)?)
            }
            Origin::Average(col) => Target::Dense(self.average(term, col)?),
            Origin::Views(layout) => {
                let views = self.sources.views.as_ref().ok_or_else(internal)?;
                read_target(views, layout, false)?.0.gather(self.view_order)
            }
            Origin::Served(col) => {
                let served = self.served.ok_or_else(internal)?;
                let width = served
                    .outputs
                    .iter()
                    .find(|(o, _)| o == col)
                    .map(|(_, w)| *w)
                    .ok_or_else(internal)?;
                Target::Served {
                    output: col.clone(),
                    width,
                }
            }
        };
        let entries = if self.sources.views.is_some() {
            self.view_order.len()
        } else {
            self.sources.train.rows
        };
        if target.rows().is_some_and(|n| n != entries) {
            return Err(internal());
        }
        self.keys.push(key);
        self.targets.push(target);
        Ok(self.targets.len() - 1)
    }

    fn join(&self, teacher: usize, ids: &[String]) -> Result<Vec<usize>, DataError> {
        join_order(
            self.train_ids,
            ids,
            &self.sources.cfg.teachers[teacher].name,
        )
    }

    /// The weighted average of every teacher's `col` at the term's temperature.
    fn average(&mut self, term: &LossTerm, col: &str) -> Result<Matrix, DataError> {
        let cfg = self.sources.cfg;
        let mut mats = Vec::with_capacity(self.sources.teachers.len());
        for (j, src) in self.sources.teachers.iter().enumerate() {
            let ck = (j, col.to_string());
            if !self.joined.contains_key(&ck) {
                let (t, ids) = read_target(src, &Layout::Dense(col.to_string()), true)?;
                let Target::Dense(m) = t.gather(&self.join(j, &ids)?) else {
                    return Err(internal());
                };
                self.joined.insert(ck.clone(), m);
            }
            let m = self.joined.get(&ck).ok_or_else(internal)?;
            mats.push((cfg.teachers[j].weight, m.clone()));
        }
        let widths: Vec<usize> = mats.iter().map(|(_, m)| m.cols).collect();
        if widths.iter().any(|&w| w != widths[0]) {
            return Err(DataError::Join {
                message: format!("teachers disagree on the width of {col:?}: {widths:?}"),
            });
        }
        let (t, sigmoid) = match term {
            LossTerm::SoftBce { temperature, .. } => (*temperature, true),
            LossTerm::Kd { temperature, .. } => (*temperature, false),
            _ => return Err(internal()),
        };
        Ok(average_soft_targets(&mats, t, sigmoid))
    }
}

/// Equal keys mean equal targets: the same column from the same place (and, for averages,
/// the same temperature and link).
fn target_key(origin: &Origin, term: &LossTerm) -> String {
    match (origin, term) {
        (Origin::Average(c), LossTerm::Kd { temperature, .. }) => {
            format!("avg-kd:{c}:{temperature}")
        }
        (Origin::Average(c), LossTerm::SoftBce { temperature, .. }) => {
            format!("avg-bce:{c}:{temperature}")
        }
        _ => format!("{origin:?}"),
    }
}

impl TrainData {
    /// Reads the training rows for `losses` as configured in `cfg`.
    pub fn load(cfg: &DataConfig, losses: &[LossTerm]) -> Result<Self, DataError> {
        let sources = Sources::open(cfg)?;
        let origins = losses
            .iter()
            .enumerate()
            .map(|(i, term)| sources.origin(i, term))
            .collect::<Result<Vec<_>, _>>()?;
        // Joining needs ids (so do view seeds); they also fix the epoch order when the source
        // has them.
        let need_ids = sources.train.has_column("id")
            || cfg.views.is_some()
            || cfg.served.is_some()
            || origins
                .iter()
                .any(|o| matches!(o, Some(Origin::Teacher(..)) | Some(Origin::Average(_))));
        let TrainColumns {
            input,
            labels,
            ids: train_ids,
        } = sources.train_columns(need_ids)?;

        let (views, view_order) = match (&sources.views, &cfg.views) {
            (Some(src), Some(vc)) => {
                let shape = cfg.image_shape.as_deref();
                let (mut views, order) =
                    super::views::join(src, &train_ids, &input, shape, vc.count)?;
                views.verified =
                    super::views::verify(src, &cfg.input, &views, &order, &input, &train_ids)?;
                (Some(views), order)
            }
            _ => (None, Vec::new()),
        };
        let served = match &cfg.served {
            Some(sc) => {
                let mut outputs: Vec<String> = Vec::new();
                for o in origins.iter().flatten() {
                    if let Origin::Served(col) = o {
                        if !outputs.contains(col) {
                            outputs.push(col.clone());
                        }
                    }
                }
                let probe = input
                    .data
                    .get(..input.cols)
                    .ok_or_else(|| DataError::Empty {
                        source_path: sources.train.spec.clone(),
                        message: "no training rows to send the served teacher".into(),
                    })?;
                let shape = cfg.image_shape.as_deref();
                Some(Arc::new(ServedTeacher::connect(
                    sc, &cfg.input, probe, shape, &outputs,
                )?))
            }
            None => None,
        };

        let mut builder = TargetBuilder::new(&sources, &train_ids, &view_order, served.as_deref());
        let term_target = losses
            .iter()
            .zip(&origins)
            .map(|(term, origin)| {
                origin
                    .as_ref()
                    .map(|o| builder.target_for(term, o))
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let targets = builder.targets;

        let num_classes =
            decide_num_classes(cfg, losses, &term_target, &targets, labels.as_deref())?;
        let row_hashes = need_ids.then(|| {
            train_ids
                .iter()
                .map(|id| super::text::id_hash(id))
                .collect()
        });
        let data = TrainData {
            input,
            labels,
            targets,
            term_target,
            num_classes,
            row_hashes,
            views,
            served,
        };
        data.check_classes(cfg, losses, &sources.train.spec)?;
        Ok(data)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.input.rows
    }

    /// Bytes of the host buffers (inputs, labels, targets).
    pub fn host_bytes(&self) -> usize {
        let targets: usize = self
            .targets
            .iter()
            .map(|t| match t {
                Target::Dense(m) => m.data.len() * 4,
                Target::TopK {
                    indices,
                    values,
                    logsumexp,
                } => (indices.len() + values.data.len() + logsumexp.len()) * 4,
                Target::Served { .. } => 0,
            })
            .sum();
        self.input.data.len() * 4 + self.labels.as_ref().map_or(0, |l| l.len() * 4) + targets
    }

    fn check_classes(
        &self,
        cfg: &DataConfig,
        losses: &[LossTerm],
        spec: &str,
    ) -> Result<(), DataError> {
        if let (Some(labels), Some(col)) = (&self.labels, &cfg.label) {
            check_labels(labels, self.num_classes, col, spec)?;
        }
        for (term, t) in losses.iter().zip(&self.term_target) {
            let Some(t) = t else { continue };
            let col = term.teacher().unwrap_or_default();
            match (&self.targets[*t], term) {
                (
                    Target::Dense(Matrix { cols, .. }) | Target::Served { width: cols, .. },
                    LossTerm::Kd { .. } | LossTerm::SoftBce { .. },
                ) if *cols != self.num_classes => {
                    return Err(DataError::BadColumn {
                        column: col.into(),
                        source_path: spec.into(),
                        message: format!(
                            "teacher logits have width {} but the student has {} classes",
                            cols, self.num_classes
                        ),
                    });
                }
                (
                    Target::TopK {
                        indices, values, ..
                    },
                    _,
                ) => {
                    if values.cols > self.num_classes {
                        return Err(DataError::BadColumn {
                            column: format!("{col}_topk_values"),
                            source_path: spec.into(),
                            message: format!(
                                "k = {} exceeds the {} classes",
                                values.cols, self.num_classes
                            ),
                        });
                    }
                    if let Some(pos) = indices.iter().position(|&i| i as usize >= self.num_classes)
                    {
                        return Err(DataError::BadColumn {
                            column: format!("{col}_topk_indices"),
                            source_path: spec.into(),
                            message: format!(
                                "row {}: class index {} is not below the {} classes",
                                pos / values.cols,
                                indices[pos],
                                self.num_classes
                            ),
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn check_labels(labels: &[u32], classes: usize, col: &str, spec: &str) -> Result<(), DataError> {
    if let Some(pos) = labels.iter().position(|&l| l as usize >= classes) {
        return Err(DataError::BadColumn {
            column: col.into(),
            source_path: spec.into(),
            message: format!(
                "row {pos}: label {} is not below the {classes} classes",
                labels[pos]
            ),
        });
    }
    Ok(())
}

fn decide_num_classes(
    cfg: &DataConfig,
    losses: &[LossTerm],
    term_target: &[Option<usize>],
    targets: &[Target],
    labels: Option<&[u32]>,
) -> Result<usize, DataError> {
    if let Some(n) = cfg.num_classes {
        return Ok(n);
    }
    for (term, t) in losses.iter().zip(term_target) {
        if let (LossTerm::Kd { .. } | LossTerm::SoftBce { .. }, Some(t)) = (term, t) {
            match &targets[*t] {
                Target::Dense(m) => return Ok(m.cols),
                Target::Served { width, .. } => return Ok(*width),
                Target::TopK { .. } => {}
            }
        }
    }
    if let Some(labels) = labels {
        if let Some(max) = labels.iter().max() {
            return Ok(*max as usize + 1);
        }
    }
    Err(DataError::Config {
        key: "data.num_classes".into(),
        message: "cannot tell the number of classes (no full teacher logits, no labels); set it"
            .into(),
    })
}

impl EvalData {
    /// Reads the eval set: inputs under `input`, labels under `label`, and the teacher
    /// logits column `teacher` (dense or top-k) when given and present.
    pub fn load(
        path: &str,
        input: &str,
        label: &str,
        teacher: Option<&str>,
        required_teacher: bool,
        expect_width: Option<usize>,
        num_classes: Option<usize>,
    ) -> Result<Self, DataError> {
        let src = ParquetSource::open(path)?;
        let mut accs =
            read_columns(&src, &[(input, Want::Floats), (label, Want::Labels)])?.into_iter();
        let input_m = take_floats(accs.next().ok_or_else(internal)?, src.rows);
        let labels = take_u32(accs.next().ok_or_else(internal)?);
        if let Some(w) = expect_width {
            if input_m.cols != w {
                return Err(DataError::BadColumn {
                    column: input.into(),
                    source_path: src.spec.clone(),
                    message: format!(
                        "eval inputs have width {} but the student takes {w}",
                        input_m.cols
                    ),
                });
            }
        }
        if let Some(c) = num_classes {
            check_labels(&labels, c, label, &src.spec)?;
        }
        let teacher = match teacher {
            Some(col) => match locate(&src, col) {
                Ok(layout) => {
                    let (t, _) = read_target(&src, &layout, false)?;
                    if let (Target::Dense(m), Some(c)) = (&t, num_classes) {
                        if m.cols != c {
                            return Err(DataError::BadColumn {
                                column: col.into(),
                                source_path: src.spec.clone(),
                                message: format!(
                                    "teacher logits have width {} but there are {c} classes",
                                    m.cols
                                ),
                            });
                        }
                    }
                    Some((col.to_string(), t))
                }
                Err(e) if required_teacher => return Err(e),
                Err(_) => None,
            },
            None => None,
        };
        Ok(Self {
            input: input_m,
            labels,
            teacher,
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.input.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kd(temperature: f64) -> LossTerm {
        LossTerm::Kd {
            teacher: "logits".into(),
            temperature,
            weight: 1.0,
        }
    }

    #[test]
    fn equal_targets_share_a_key() {
        let dense = |c: &str| Layout::Dense(c.into());
        let cases = [
            // Same column, same place: shared whatever the temperature.
            (
                Origin::Train(dense("logits")),
                kd(2.0),
                Origin::Train(dense("logits")),
                kd(4.0),
                true,
            ),
            // Same column in the training rows and in a teacher: different data.
            (
                Origin::Train(dense("logits")),
                kd(2.0),
                Origin::Teacher(0, dense("logits")),
                kd(2.0),
                false,
            ),
            (
                Origin::Teacher(0, dense("logits")),
                kd(2.0),
                Origin::Teacher(1, dense("logits")),
                kd(2.0),
                false,
            ),
            // An average depends on the temperature it was taken at.
            (
                Origin::Average("logits".into()),
                kd(2.0),
                Origin::Average("logits".into()),
                kd(2.0),
                true,
            ),
            (
                Origin::Average("logits".into()),
                kd(2.0),
                Origin::Average("logits".into()),
                kd(4.0),
                false,
            ),
        ];
        for (oa, ta, ob, tb, same) in cases {
            assert_eq!(
                target_key(&oa, &ta) == target_key(&ob, &tb),
                same,
                "{oa:?} / {ob:?}"
            );
        }
    }

    #[test]
    fn join_order_maps_teacher_rows_onto_training_rows() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let order = join_order(&ids(&["b", "a", "c"]), &ids(&["a", "b", "c", "d"]), "t")
            .expect("every id present");
        assert_eq!(order, [1, 0, 2]);
        let e = join_order(&ids(&["a", "x"]), &ids(&["a"]), "t").expect_err("x missing");
        assert!(
            e.to_string()
                .contains("\"x\" is missing from teacher \"t\""),
            "{e}"
        );
        let e = join_order(&ids(&["a"]), &ids(&["a", "a"]), "t").expect_err("duplicate");
        assert!(e.to_string().contains("holds id \"a\" twice"), "{e}");
    }
}
