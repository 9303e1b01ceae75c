//! Self-distillation of a transformer text student: exits after chosen encoder blocks, their
//! loss on a batch, their per-epoch eval and their export as truncated text ONNX models.
//!
//! An exit after block `L` pools block `L`'s states as the student pools its own output
//! (`hidden{L}`, the masked mean) and maps them with its head to the embedding width; a linear
//! head starts as the student's own output map (projector or identity), so the exit starts as
//! the student with the deeper blocks removed. It learns
//! `(1 - kd_weight)·task + kd_weight·kd + hint_weight·hint`, where `task` is the run's
//! `[[loss]]` terms on the pooled embedding (against the same teacher columns; terms with a
//! `student_layer` train the shared blocks once, through the deepest output), `kd` is the
//! cosine distance `mean(1 - cos)` to the deepest embedding (detached) and `hint` the MSE of a
//! learned projection of `hidden{L}` toward the deepest pooled block output (detached). The
//! deepest output learns from the `[[loss]]` terms alone.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::self_distill::{hint, named};
use super::text_objective::TextObjective;
use super::TrainError;
use crate::config::SelfDistillConfig;
use trainer_core::loss::{self, FeatureDistance};
use trainer_core::model::exits::EXIT_PREFIX;
use trainer_core::model::text::TextNetwork;
use trainer_core::model::{ExitHead, Exits, TextOutput, TextStudent};

/// One exit's terms on one forward pass.
pub struct ExitTerms {
    /// The exit's weighted loss.
    pub loss: Tensor,
    /// Each term's unweighted value, in the order of [`TextSelfDistill::term_labels`].
    pub values: Vec<f32>,
    /// The exit's embedding, `[batch, output_dim]`.
    pub embedding: Tensor,
}

/// The exits of a transformer text run and their settings.
pub struct TextSelfDistill {
    cfg: SelfDistillConfig,
    exits: Exits,
}

impl TextSelfDistill {
    /// Creates the exit heads of `cfg` for `student` under `vb`.
    pub fn new(
        cfg: &SelfDistillConfig,
        student: &TextStudent,
        vb: &VarBuilder,
    ) -> Result<Self, TrainError> {
        let dims = student.feature_dims();
        if dims.is_empty() {
            return Err(TrainError::Config(format!(
                "self_distill: the {} student has no blocks to take an exit",
                student.arch_name()
            )));
        }
        Ok(Self {
            cfg: cfg.clone(),
            exits: Exits::for_layers(cfg, &dims, student.output_dim(), vb)?,
        })
    }

    /// Starts each linear head (no `head_hidden`) as the student's own output map, its
    /// projector (the identity without `project_to`), so that exit `L` starts as the student
    /// with the blocks after `L` removed. `varmap` holds the heads' variables.
    pub fn init_heads(&self, student: &TextStudent, varmap: &VarMap) -> Result<(), TrainError> {
        let TextNetwork::Transformer(t) = student.network() else {
            return Ok(());
        };
        let d = t.config().hidden;
        let dev = Device::Cpu;
        let (weight, bias) = match &t.projector {
            Some(p) => (
                p.weight().clone(),
                match p.bias() {
                    Some(b) => b.clone(),
                    None => Tensor::zeros(p.weight().dim(0)?, DType::F32, &dev)?,
                },
            ),
            None => (
                Tensor::eye(d, DType::F32, &dev)?,
                Tensor::zeros(d, DType::F32, &dev)?,
            ),
        };
        let data = varmap
            .data()
            .lock()
            .map_err(|_| TrainError::Config("variable map lock poisoned".into()))?;
        for h in self.heads().iter().filter(|h| h.fc().is_none()) {
            for (part, value) in [("weight", &weight), ("bias", &bias)] {
                let name = format!("{EXIT_PREFIX}{}.out.{part}", h.layer());
                data.get(&name)
                    .ok_or_else(|| TrainError::Config(format!("no exit variable `{name}`")))?
                    .set(value)?;
            }
        }
        Ok(())
    }

    /// The exit heads, shallowest first.
    pub fn heads(&self) -> &[ExitHead] {
        self.exits.heads()
    }

    /// Labels of one exit's terms (without the exit's name): the embedding terms, `kd`, `hint`.
    pub fn term_labels(&self, objective: &TextObjective) -> Vec<String> {
        let mut out = objective.embedding_labels();
        out.push("kd".into());
        if self.cfg.hint_weight > 0.0 {
            out.push("hint".into());
        }
        out
    }

    /// Metric labels of all exits' terms (`exit0:feature:embedding`, `exit0:kd`, …), in the
    /// order [`TextSelfDistill::loss`] gives them.
    pub fn labels(&self, objective: &TextObjective) -> Vec<String> {
        let own = self.term_labels(objective);
        self.heads()
            .iter()
            .flat_map(|h| own.iter().map(move |l| format!("{}:{l}", h.name())))
            .collect()
    }

    /// Each exit's terms on one forward pass `out` (targets as for the objective).
    pub fn terms(
        &self,
        out: &TextOutput,
        targets: &[Tensor],
        objective: &TextObjective,
    ) -> Result<Vec<ExitTerms>, TrainError> {
        let deep = out.embedding.detach();
        let deep_hidden = out.hidden.last().map(Tensor::detach);
        let alpha = self.cfg.kd_weight;
        let mut all = Vec::with_capacity(self.heads().len());
        for (h, z) in self.heads().iter().zip(self.exits.outputs(&out.hidden)?) {
            let (task, mut values) = objective.embedding_loss(&z, targets)?;
            let kd = named(
                format!("{}:kd", h.name()),
                loss::feature(&z, &deep, FeatureDistance::Cosine),
            )?;
            values.push(kd.to_scalar::<f32>()?);
            let mut l = (task.affine(1.0 - alpha, 0.0)? + kd.affine(alpha, 0.0)?)?;
            if self.cfg.hint_weight > 0.0 {
                let hint = hint(h, &out.hidden, deep_hidden.as_ref())?;
                values.push(hint.to_scalar::<f32>()?);
                l = (l + hint.affine(self.cfg.hint_weight, 0.0)?)?;
            }
            all.push(ExitTerms {
                loss: l,
                values,
                embedding: z,
            });
        }
        Ok(all)
    }

    /// The exits' summed loss on one forward pass and each term's unweighted value.
    pub fn loss(
        &self,
        out: &TextOutput,
        targets: &[Tensor],
        objective: &TextObjective,
    ) -> Result<(Tensor, Vec<f32>), TrainError> {
        let mut total: Option<Tensor> = None;
        let mut values = Vec::new();
        for t in self.terms(out, targets, objective)? {
            values.extend(t.values);
            total = Some(match total {
                None => t.loss,
                Some(acc) => (acc + t.loss)?,
            });
        }
        let total = match total {
            Some(t) => t,
            None => Tensor::new(0f32, out.embedding.device())?,
        };
        Ok((total, values))
    }
}
