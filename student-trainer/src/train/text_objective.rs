//! The loss terms of a text run: `feature`, `infonce`, `rkd` and `sp` between a student output
//! (the pooled `embedding`, or layer `hidden{i}` with `student_layer = i`) and a stored
//! teacher column (the pooled embedding or a tapped layer), in any weighted mix.
//!
//! Widths: relation terms compare within-batch geometry and take any widths. `feature` and
//! `infonce` need equal widths: a hidden layer gets a learned projector (`__proj{i}`, trained
//! but not exported, FitNets style); the pooled embedding does not, because the exported
//! student's `embedding` must live in the teacher's space — its width is fixed by
//! `student.project_to` (an exported projector), and a mismatch is a config error.

use candle_core::Tensor;
use candle_nn::{Linear, VarBuilder};

use super::objective::PROJECTOR_PREFIX;
use super::{TermError, TrainError};
use crate::config::LossTerm;
use trainer_core::loss;
use trainer_core::model::{TextOutput, TextStudent};

struct Term {
    term: LossTerm,
    label: String,
    /// Index into the target columns.
    target: usize,
    /// `None`: the pooled embedding; `Some(i)`: `hidden{i}`.
    layer: Option<usize>,
    projector: Option<Linear>,
}

/// The configured terms, ready to evaluate on a text student's outputs.
pub struct TextObjective {
    terms: Vec<Term>,
}

/// Where a term's teacher column sits among the run's target columns.
pub fn target_index(columns: &[String], term: &LossTerm) -> Option<usize> {
    let t = term.teacher()?;
    columns.iter().position(|c| c == t)
}

impl TextObjective {
    /// Checks each term against the student and the target widths (`columns[j]` has
    /// `widths[j]` values per row); creates projectors for hidden layers under `vb`.
    pub fn new(
        losses: &[LossTerm],
        columns: &[String],
        widths: &[usize],
        student: &TextStudent,
        vb: &VarBuilder,
    ) -> Result<Self, TrainError> {
        let dims = student.feature_dims();
        let mut terms = Vec::with_capacity(losses.len());
        for (i, term) in losses.iter().enumerate() {
            let col = term.teacher().unwrap_or_default();
            let target = target_index(columns, term).ok_or_else(|| {
                TrainError::Config(format!(
                    "loss[{i}] ({}) needs a teacher column; {col:?} is not read",
                    term.kind()
                ))
            })?;
            let tw = widths[target];
            let layer = term.student_layer().flatten();
            let sw = match layer {
                None => student.output_dim(),
                Some(l) if l < dims.len() => dims[l],
                Some(l) => {
                    return Err(TrainError::Config(if dims.is_empty() {
                        format!(
                            "loss[{i}].student_layer = {l}, but the {} student has no layers (leave student_layer out to use its embedding)",
                            student.arch_name()
                        )
                    } else {
                        format!(
                            "loss[{i}].student_layer = {l}, but the student has {} layers (0..{})",
                            dims.len(),
                            dims.len() - 1
                        )
                    }));
                }
            };
            let same_width = matches!(term, LossTerm::Feature { .. } | LossTerm::Infonce { .. });
            let mut projector = None;
            if same_width && sw != tw {
                match layer {
                    None => {
                        return Err(TrainError::Config(format!(
                            "loss[{i}] ({}) compares the student's embedding (width {sw}) with teacher column {col:?} (width {tw}); no exported projector maps them: set student.project_to = {tw}",
                            term.kind()
                        )))
                    }
                    Some(_) => {
                        projector = Some(
                            candle_nn::linear(sw, tw, vb.pp(format!("{PROJECTOR_PREFIX}{i}")))
                                .map_err(TrainError::Candle)?,
                        );
                    }
                }
            }
            terms.push(Term {
                term: term.clone(),
                label: match layer {
                    Some(l) => format!("{}@hidden{l}", term.label()),
                    None => term.label(),
                },
                target,
                layer,
                projector,
            });
        }
        Ok(Self { terms })
    }

    /// Metric labels of the terms, in order (`feature:embedding`, `sp:hidden3@hidden1`).
    pub fn labels(&self) -> Vec<String> {
        self.terms.iter().map(|t| t.label.clone()).collect()
    }

    /// Labels of the terms on the pooled embedding (those a self-distillation exit learns).
    pub fn embedding_labels(&self) -> Vec<String> {
        self.embedding_terms().map(|t| t.label.clone()).collect()
    }

    fn embedding_terms(&self) -> impl Iterator<Item = &Term> {
        self.terms.iter().filter(|t| t.layer.is_none())
    }

    /// The weighted total loss and each term's unweighted value; `targets[j]` is
    /// `[batch, widths[j]]`.
    pub fn loss(
        &self,
        out: &TextOutput,
        targets: &[Tensor],
    ) -> Result<(Tensor, Vec<f32>), TrainError> {
        weighted(self.terms.iter(), out, targets)
    }

    /// [`TextObjective::loss`] of the terms on the pooled embedding only, with `embedding` in
    /// the student's place (a self-distillation exit's output).
    pub fn embedding_loss(
        &self,
        embedding: &Tensor,
        targets: &[Tensor],
    ) -> Result<(Tensor, Vec<f32>), TrainError> {
        let out = TextOutput {
            embedding: embedding.clone(),
            hidden: Vec::new(),
            tokens: Vec::new(),
        };
        weighted(self.embedding_terms(), &out, targets)
    }
}

/// The weighted sum of `terms` on `out` and each term's unweighted value.
fn weighted<'a>(
    terms: impl Iterator<Item = &'a Term>,
    out: &TextOutput,
    targets: &[Tensor],
) -> Result<(Tensor, Vec<f32>), TrainError> {
    let mut total: Option<Tensor> = None;
    let mut values = Vec::new();
    for t in terms {
        let value = term_value(t, out, targets).map_err(|source| TrainError::Loss {
            term: t.label.clone(),
            source: Box::new(source),
        })?;
        values.push(value.to_scalar::<f32>()?);
        let w = t.term.weight();
        if w == 0.0 {
            continue;
        }
        let weighted = if w == 1.0 {
            value
        } else {
            value.affine(w, 0.0)?
        };
        total = Some(match total {
            None => weighted,
            Some(acc) => (acc + weighted)?,
        });
    }
    let total = match total {
        Some(t) => t,
        None => Tensor::new(0f32, out.embedding.device())?,
    };
    Ok((total, values))
}

fn term_value(t: &Term, out: &TextOutput, targets: &[Tensor]) -> Result<Tensor, TermError> {
    let teacher = targets
        .get(t.target)
        .ok_or(TermError::Missing("missing teacher target"))?;
    let raw = match t.layer {
        None => &out.embedding,
        Some(l) => out.hidden.get(l).ok_or(TermError::Missing(
            "student layer missing from forward output",
        ))?,
    };
    let h = match &t.projector {
        Some(p) => trainer_core::model::linear::linear(p, raw)?,
        None => raw.clone(),
    };
    Ok(match &t.term {
        LossTerm::Feature { distance, .. } => loss::feature(&h, teacher, (*distance).into())?,
        LossTerm::Rkd {
            distance_weight,
            angle_weight,
            ..
        } => {
            let d = loss::rkd_distance(&h, teacher)?.affine(*distance_weight, 0.0)?;
            let a = loss::rkd_angle(&h, teacher)?.affine(*angle_weight, 0.0)?;
            (d + a)?
        }
        LossTerm::Sp { .. } => loss::sp(&h, teacher)?,
        LossTerm::Infonce { temperature, .. } => loss::infonce(&h, teacher, *temperature)?,
        LossTerm::Ce { .. } | LossTerm::Kd { .. } | LossTerm::SoftBce { .. } => {
            return Err(TermError::Missing(
                "logit terms (ce, kd, soft_bce) do not apply to text students",
            ))
        }
    })
}
