//! The weighted sum of the configured loss terms for one batch, including the learned
//! linear projectors (FitNets) that map a student layer to a teacher feature's width.

use candle_core::{Device, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::{TermError, TrainError};
use crate::config::LossTerm;
use trainer_core::loss::{self, BceTarget};
use trainer_core::model::{Student, StudentOutput};
use trainer_data::{BatchTarget, Target, TrainData};

/// Variable-name prefix of projectors; they train with the student but are not exported.
pub const PROJECTOR_PREFIX: &str = "__proj";

/// A batch's teacher target as tensors.
pub enum TargetTensors {
    /// `[b, width]`.
    Dense(Tensor),
    /// Top-k storage: indices `[b, k]` u32, values `[b, k]`, log-sum-exp `[b]`.
    TopK(Tensor, Tensor, Tensor),
}

impl TargetTensors {
    /// Moves a host batch target onto `dev` (the host buffers are taken, not copied).
    pub fn from_batch(t: BatchTarget, rows: usize, dev: &Device) -> candle_core::Result<Self> {
        Ok(match t {
            BatchTarget::Dense { width, data } => {
                TargetTensors::Dense(Tensor::from_vec(data, (rows, width), dev)?)
            }
            BatchTarget::TopK {
                k,
                indices,
                values,
                logsumexp,
            } => TargetTensors::TopK(
                Tensor::from_vec(indices, (rows, k), dev)?,
                Tensor::from_vec(values, (rows, k), dev)?,
                Tensor::from_vec(logsumexp, rows, dev)?,
            ),
        })
    }

    fn dense(&self) -> Option<&Tensor> {
        match self {
            TargetTensors::Dense(t) => Some(t),
            TargetTensors::TopK(..) => None,
        }
    }
}

struct Term {
    term: LossTerm,
    label: String,
    target: Option<usize>,
    layer: Option<usize>,
    projector: Option<Linear>,
}

/// The configured loss terms, ready to evaluate on student outputs.
pub struct Objective {
    terms: Vec<Term>,
}

impl Objective {
    /// Checks each term against the student and the data, and creates projectors under `vb`.
    pub fn new(
        losses: &[LossTerm],
        data: &TrainData,
        student: &Student,
        vb: &VarBuilder,
    ) -> Result<Self, TrainError> {
        let dims = student.feature_dims();
        let mut terms = Vec::with_capacity(losses.len());
        for (i, term) in losses.iter().enumerate() {
            let target = data.term_target.get(i).copied().flatten();
            let mut layer = None;
            let mut projector = None;
            if let Some(requested) = term.student_layer() {
                if dims.is_empty() {
                    return Err(TrainError::Config(format!(
                        "loss[{i}] ({}) reads a student hidden layer, but the student has none",
                        term.kind()
                    )));
                }
                let l = requested.unwrap_or(dims.len() - 1);
                if l >= dims.len() {
                    return Err(TrainError::Config(format!(
                        "loss[{i}].student_layer = {l}, but the student has {} hidden layers (0..{})",
                        dims.len(),
                        dims.len() - 1
                    )));
                }
                layer = Some(l);
                let tw = target.map(|t| data.targets[t].width()).unwrap_or(0);
                let needs_same_width =
                    matches!(term, LossTerm::Feature { .. } | LossTerm::Infonce { .. });
                if needs_same_width && dims[l] != tw {
                    let p = candle_nn::linear(dims[l], tw, vb.pp(format!("{PROJECTOR_PREFIX}{i}")))
                        .map_err(TrainError::Candle)?;
                    projector = Some(p);
                }
            }
            if let (LossTerm::Kd { .. } | LossTerm::SoftBce { .. }, Some(t)) = (term, target) {
                if let Target::Dense(m) = &data.targets[t] {
                    if m.cols != data.num_classes {
                        return Err(TrainError::Config(format!(
                            "loss[{i}]: teacher column {:?} has width {}, the student {} classes",
                            term.teacher().unwrap_or_default(),
                            m.cols,
                            data.num_classes
                        )));
                    }
                }
            }
            terms.push(Term {
                term: term.clone(),
                label: term.label(),
                target,
                layer,
                projector,
            });
        }
        Ok(Self { terms })
    }

    /// Metric labels of the terms, in order.
    pub fn labels(&self) -> Vec<String> {
        self.terms.iter().map(|t| t.label.clone()).collect()
    }

    /// The weighted total loss and each term's unweighted value.
    pub fn loss(
        &self,
        out: &StudentOutput,
        labels: Option<&Tensor>,
        targets: &[TargetTensors],
    ) -> Result<(Tensor, Vec<f32>), TrainError> {
        let mut total: Option<Tensor> = None;
        let mut values = Vec::with_capacity(self.terms.len());
        for t in &self.terms {
            let value =
                self.term_value(t, out, labels, targets)
                    .map_err(|source| TrainError::Loss {
                        term: t.label.clone(),
                        source: Box::new(source),
                    })?;
            values.push(value.to_scalar::<f32>().map_err(TrainError::Candle)?);
            let w = t.term.weight();
            if w == 0.0 {
                continue;
            }
            let weighted = if w == 1.0 {
                value
            } else {
                value.affine(w, 0.0).map_err(TrainError::Candle)?
            };
            total = Some(match total {
                None => weighted,
                Some(acc) => (acc + weighted).map_err(TrainError::Candle)?,
            });
        }
        let total = match total {
            Some(t) => t,
            None => Tensor::new(0f32, out.logits.device()).map_err(TrainError::Candle)?,
        };
        Ok((total, values))
    }

    fn term_value(
        &self,
        t: &Term,
        out: &StudentOutput,
        labels: Option<&Tensor>,
        targets: &[TargetTensors],
    ) -> Result<Tensor, TermError> {
        let target = t.target.and_then(|i| targets.get(i));
        let need_dense = || {
            target
                .and_then(|x| x.dense())
                .ok_or(TermError::Missing("missing teacher target"))
        };
        let hidden = || -> Result<Tensor, TermError> {
            let l = t.layer.ok_or(TermError::Missing("no student layer"))?;
            let h = out.hidden.get(l).ok_or(TermError::Missing(
                "student layer missing from forward output",
            ))?;
            Ok(match &t.projector {
                Some(p) => trainer_core::model::linear::linear(p, h)?,
                None => h.clone(),
            })
        };
        Ok(match &t.term {
            LossTerm::Ce { .. } => {
                let labels = labels.ok_or(TermError::Missing("no label column (data.label)"))?;
                loss::ce(&out.logits, labels)?
            }
            LossTerm::Kd { temperature, .. } => match target {
                Some(TargetTensors::Dense(tl)) => loss::kd(&out.logits, tl, *temperature)?,
                Some(TargetTensors::TopK(i, v, l)) => {
                    loss::kd_topk(&out.logits, i, v, l, *temperature)?
                }
                None => return Err(TermError::Missing("missing teacher target")),
            },
            LossTerm::SoftBce { temperature, .. } => loss::soft_bce(
                &out.logits,
                BceTarget::Logits {
                    logits: need_dense()?,
                    temperature: *temperature,
                },
            )?,
            LossTerm::Feature { distance, .. } => {
                loss::feature(&hidden()?, need_dense()?, (*distance).into())?
            }
            LossTerm::Rkd {
                distance_weight,
                angle_weight,
                ..
            } => {
                // Small last batches contribute zero instead of failing (see loss::rkd).
                let (h, tt) = (hidden()?, need_dense()?);
                loss::rkd(&h, tt, *distance_weight, *angle_weight)?
            }
            LossTerm::Sp { .. } => loss::sp(&hidden()?, need_dense()?)?,
            LossTerm::Infonce { temperature, .. } => {
                loss::infonce(&hidden()?, need_dense()?, *temperature)?
            }
        })
    }
}
