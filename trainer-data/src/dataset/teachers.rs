//! Where each loss term's teacher column comes from (the training rows, an extra teacher
//! dataset joined by `id`, several teachers averaged, the stored views, or the served
//! teacher), and building each distinct target once.

use std::collections::HashMap;

use trainer_core::loss::LossTerm;

use super::target::Target;
use crate::config::DataConfig;
use crate::image::served::ServedTeacher;
use crate::source::ParquetSource;
use crate::table::{
    read_columns, read_count_mismatch, take_floats, take_ids, take_scalars, take_u32, ColumnKind,
    Matrix,
};
use crate::DataError;

/// How a loss term's teacher column is stored in a source.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Layout {
    Dense(String),
    TopK {
        indices: String,
        values: String,
        logsumexp: String,
    },
}

/// Finds a teacher column: the column itself, or its `{col}_topk_*` / `{col}_logsumexp` trio.
pub(super) fn locate(src: &ParquetSource, col: &str) -> Result<Layout, DataError> {
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
pub(super) fn read_target(
    src: &ParquetSource,
    layout: &Layout,
    with_ids: bool,
) -> Result<(Target, Vec<String>), DataError> {
    let mut wants: Vec<(&str, ColumnKind)> = Vec::new();
    match layout {
        Layout::Dense(c) => wants.push((c, ColumnKind::Floats)),
        Layout::TopK {
            indices,
            values,
            logsumexp,
        } => {
            wants.push((indices, ColumnKind::Indices));
            wants.push((values, ColumnKind::Floats));
            wants.push((logsumexp, ColumnKind::Scalars));
        }
    }
    if with_ids {
        wants.push(("id", ColumnKind::Ids));
    }
    let mut accs = read_columns(src, &wants)?.into_iter();
    let rows = src.rows;
    let target = match layout {
        Layout::Dense(_) => Target::Dense(take_floats(
            accs.next().ok_or_else(read_count_mismatch)?,
            rows,
        )),
        Layout::TopK { values, .. } => {
            let indices = take_u32(accs.next().ok_or_else(read_count_mismatch)?);
            let vals = take_floats(accs.next().ok_or_else(read_count_mismatch)?, rows);
            let lse = take_scalars(accs.next().ok_or_else(read_count_mismatch)?);
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
        take_ids(accs.next().ok_or_else(read_count_mismatch)?)
    } else {
        Vec::new()
    };
    Ok((target, ids))
}

/// Where a term's teacher column comes from.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Origin {
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
pub(super) fn join_order(
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
pub(super) struct Sources<'a> {
    pub(super) cfg: &'a DataConfig,
    pub(super) train: ParquetSource,
    pub(super) teachers: Vec<ParquetSource>,
    pub(super) views: Option<ParquetSource>,
}

impl<'a> Sources<'a> {
    pub(super) fn open(cfg: &'a DataConfig) -> Result<Self, DataError> {
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
    pub(super) fn origin(&self, i: usize, term: &LossTerm) -> Result<Option<Origin>, DataError> {
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
    pub(super) fn averaged(
        &self,
        key: &str,
        term: &LossTerm,
        tref: &str,
    ) -> Result<Origin, DataError> {
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
    pub(super) fn train_columns(&self, need_ids: bool) -> Result<TrainColumns, DataError> {
        let cfg = self.cfg;
        let mut wants: Vec<(&str, ColumnKind)> = vec![(cfg.input.as_str(), ColumnKind::Floats)];
        if let Some(l) = &cfg.label {
            wants.push((l.as_str(), ColumnKind::Labels));
        }
        if need_ids {
            wants.push(("id", ColumnKind::Ids));
        }
        let mut accs = read_columns(&self.train, &wants)?.into_iter();
        let input = take_floats(
            accs.next().ok_or_else(read_count_mismatch)?,
            self.train.rows,
        );
        let labels = match &cfg.label {
            Some(_) => Some(take_u32(accs.next().ok_or_else(read_count_mismatch)?)),
            None => None,
        };
        let ids = if need_ids {
            take_ids(accs.next().ok_or_else(read_count_mismatch)?)
        } else {
            Vec::new()
        };
        Ok(TrainColumns { input, labels, ids })
    }
}

/// The training source's own columns.
pub(super) struct TrainColumns {
    pub(super) input: Matrix,
    pub(super) labels: Option<Vec<u32>>,
    /// Row ids, read only when a teacher dataset is joined.
    pub(super) ids: Vec<String>,
}

/// Builds each term's target once, sharing equal ones, with teacher rows joined by id.
pub(super) struct TargetBuilder<'s, 'a> {
    pub(super) sources: &'s Sources<'a>,
    pub(super) train_ids: &'s [String],
    /// For each (row, view) entry, its row in the views dataset.
    pub(super) view_order: &'s [usize],
    pub(super) served: Option<&'s ServedTeacher>,
    pub(super) targets: Vec<Target>,
    pub(super) keys: Vec<String>,
    /// Joined dense columns of single teachers, reused by averages at other temperatures.
    pub(super) joined: HashMap<(usize, String), Matrix>,
}

impl<'s, 'a> TargetBuilder<'s, 'a> {
    pub(super) fn new(
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
    pub(super) fn target_for(
        &mut self,
        term: &LossTerm,
        origin: &Origin,
    ) -> Result<usize, DataError> {
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
                let views = self
                    .sources
                    .views
                    .as_ref()
                    .ok_or_else(read_count_mismatch)?;
                read_target(views, layout, false)?.0.gather(self.view_order)
            }
            Origin::Served(col) => {
                let served = self.served.ok_or_else(read_count_mismatch)?;
                let width = served
                    .outputs
                    .iter()
                    .find(|(o, _)| o == col)
                    .map(|(_, w)| *w)
                    .ok_or_else(read_count_mismatch)?;
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
            return Err(read_count_mismatch());
        }
        self.keys.push(key);
        self.targets.push(target);
        Ok(self.targets.len() - 1)
    }

    pub(super) fn join(&self, teacher: usize, ids: &[String]) -> Result<Vec<usize>, DataError> {
        join_order(
            self.train_ids,
            ids,
            &self.sources.cfg.teachers[teacher].name,
        )
    }

    /// The weighted average of every teacher's `col` at the term's temperature.
    pub(super) fn average(&mut self, term: &LossTerm, col: &str) -> Result<Matrix, DataError> {
        let cfg = self.sources.cfg;
        let mut mats = Vec::with_capacity(self.sources.teachers.len());
        for (j, src) in self.sources.teachers.iter().enumerate() {
            let ck = (j, col.to_string());
            if !self.joined.contains_key(&ck) {
                let (t, ids) = read_target(src, &Layout::Dense(col.to_string()), true)?;
                let Target::Dense(m) = t.gather(&self.join(j, &ids)?) else {
                    return Err(read_count_mismatch());
                };
                self.joined.insert(ck.clone(), m);
            }
            let m = self.joined.get(&ck).ok_or_else(read_count_mismatch)?;
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
            _ => return Err(read_count_mismatch()),
        };
        Ok(average_soft_targets(&mats, t, sigmoid))
    }
}

/// Equal keys mean equal targets: the same column from the same place (and, for averages,
/// the same temperature and link).
pub(super) fn target_key(origin: &Origin, term: &LossTerm) -> String {
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
