//! Loads the columns a run needs into compact host buffers: the inputs, the hard labels and one
//! teacher target per loss term (dense rows or top-k storage), joining extra teacher datasets
//! by `id` and averaging several teachers' soft targets.
//!
//! What is held in memory: `rows × (input width + target widths)` f32 values plus labels, an
//! 8-byte hash of each row's id (the ids themselves only while loading). MNIST's 60k × 784 inputs are 188 MB. Larger-than-memory sets are not
//! supported by this loader (see the crate report); Parquet is still read file by file and
//! batch by batch, never as a whole.

mod target;
mod teachers;

use std::sync::Arc;

use trainer_core::loss::LossTerm;

use crate::config::DataConfig;
use crate::image::served::ServedTeacher;
use crate::image::views::{self, Views};
use crate::source::ParquetSource;
use crate::table::{read_columns, read_count_mismatch, take_floats, take_u32, ColumnKind, Matrix};
use crate::DataError;
pub use target::Target;
pub use teachers::average_soft_targets;
use teachers::{locate, read_target, Origin, Sources, TargetBuilder, TrainColumns};

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
    /// [`crate::seeds::id_hash`] of each row's `id`, when the source has ids: the epoch order
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
                let (mut views, order) = views::join(src, &train_ids, &input, shape, vc.count)?;
                views.verified =
                    views::verify(src, &cfg.input, &views, &order, &input, &train_ids)?;
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
                .map(|id| crate::seeds::id_hash(id))
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
        let mut accs = read_columns(
            &src,
            &[(input, ColumnKind::Floats), (label, ColumnKind::Labels)],
        )?
        .into_iter();
        let input_m = take_floats(accs.next().ok_or_else(read_count_mismatch)?, src.rows);
        let labels = take_u32(accs.next().ok_or_else(read_count_mismatch)?);
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
