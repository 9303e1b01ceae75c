//! Self-distillation (Zhang et al. 2019, "Be Your Own Teacher"): the exits' loss terms on a
//! batch, their per-epoch eval, and their export as truncated ONNX models.
//!
//! Each exit learns `(1 - kd_weight)·ce + kd_weight·KD(deepest logits, T) + hint_weight·
//! MSE(projected exit features, deepest hidden representation)`; the deepest exit's outputs
//! are detached, so the exits learn from the network's head and never pull it toward them.
//! The deepest exit (the network's own head) learns from the `[[loss]]` terms.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;

use super::TrainError;
use crate::config::SelfDistillConfig;
use crate::metrics::{score_logits, EvalMetrics, NetworkSummary};
use trainer_core::loss::{self, FeatureDistance};
use trainer_core::model::{exits::truncated_param_count, ExitHead, Exits, Student, StudentOutput};
use trainer_data::EvalData;

/// The exits of a run and their settings.
pub struct SelfDistill {
    cfg: SelfDistillConfig,
    exits: Exits,
}

/// A loss term's value, its failure labelled `label`.
pub(crate) fn named(
    label: String,
    r: Result<Tensor, loss::LossError>,
) -> Result<Tensor, TrainError> {
    r.map_err(|source| TrainError::Loss {
        term: label,
        source: Box::new(source.into()),
    })
}

/// Exit `h`'s feature hint: the MSE of its projection of `hidden[h.layer()]` toward `target`
/// (the deepest representation, detached).
pub(crate) fn hint(
    h: &ExitHead,
    hidden: &[Tensor],
    target: Option<&Tensor>,
) -> Result<Tensor, TrainError> {
    let n = h.name();
    let (Some(target), Some(proj)) = (target, hidden.get(h.layer()).and_then(|a| h.hint(a))) else {
        return Err(TrainError::Config(format!(
            "{n}: the feature hint needs a layer output and its projection"
        )));
    };
    named(
        format!("{n}:hint"),
        loss::feature(&proj?, target, FeatureDistance::Mse),
    )
}

impl SelfDistill {
    /// Creates the exit heads of `cfg` for `student` under `vb`.
    pub fn new(
        cfg: &SelfDistillConfig,
        student: &Student,
        vb: &VarBuilder,
    ) -> Result<Self, TrainError> {
        Ok(Self {
            cfg: cfg.clone(),
            exits: Exits::new(cfg, student, vb)?,
        })
    }

    /// The exit heads.
    pub fn exits(&self) -> &Exits {
        &self.exits
    }

    /// Metric labels of the exit terms, in the order [`SelfDistill::loss`] gives them.
    pub fn labels(&self) -> Vec<String> {
        let mut out = Vec::new();
        for h in self.exits.heads() {
            let n = h.name();
            out.push(format!("{n}:ce"));
            out.push(format!("{n}:kd"));
            if self.cfg.hint_weight > 0.0 {
                out.push(format!("{n}:hint"));
            }
        }
        out
    }

    /// The exits' weighted loss on one forward pass and each term's unweighted value.
    pub fn loss(
        &self,
        out: &StudentOutput,
        labels: &Tensor,
    ) -> Result<(Tensor, Vec<f32>), TrainError> {
        let deep_logits = out.logits.detach();
        let deep_features = out.hidden.last().map(|h| h.detach());
        let alpha = self.cfg.kd_weight;
        let mut total: Option<Tensor> = None;
        let mut values = Vec::new();
        for (h, z) in self.exits.heads().iter().zip(self.exits.logits(out)?) {
            let n = h.name();
            let ce = named(format!("{n}:ce"), loss::ce(&z, labels))?;
            let kd = named(
                format!("{n}:kd"),
                loss::kd(&z, &deep_logits, self.cfg.temperature()),
            )?;
            values.push(ce.to_scalar::<f32>()?);
            values.push(kd.to_scalar::<f32>()?);
            let mut l = (ce.affine(1.0 - alpha, 0.0)? + kd.affine(alpha, 0.0)?)?;
            if self.cfg.hint_weight > 0.0 {
                let hint = hint(h, &out.hidden, deep_features.as_ref())?;
                values.push(hint.to_scalar::<f32>()?);
                l = (l + hint.affine(self.cfg.hint_weight, 0.0)?)?;
            }
            total = Some(match total {
                None => l,
                Some(acc) => (acc + l)?,
            });
        }
        let total = match total {
            Some(t) => t,
            None => Tensor::new(0f32, out.logits.device())?,
        };
        Ok((total, values))
    }

    /// Each exit's eval-mode metrics on `eval`, by exit name.
    pub fn evaluate(
        &self,
        student: &Student,
        eval: &EvalData,
        chunk_rows: usize,
        kd_temperature: f64,
    ) -> Result<Vec<(String, EvalMetrics)>, TrainError> {
        let logits = self.exit_logits(student, &eval.input.data, eval.input.cols, chunk_rows)?;
        Ok(self
            .exits
            .heads()
            .iter()
            .zip(logits)
            .map(|(h, l)| {
                let m = score_logits(
                    &l,
                    student.num_classes(),
                    &eval.labels,
                    eval.teacher.as_ref().map(|(_, t)| t),
                    kd_temperature,
                );
                (h.name(), m)
            })
            .collect())
    }

    /// Each exit's eval-mode logits for all rows of `x` (row-major), from the full forward pass.
    pub fn exit_logits(
        &self,
        student: &Student,
        x: &[f32],
        dim: usize,
        chunk_rows: usize,
    ) -> Result<Vec<Vec<f32>>, TrainError> {
        let rows = x.len() / dim.max(1);
        let mut out = vec![Vec::new(); self.exits.heads().len()];
        for start in (0..rows).step_by(chunk_rows.max(1)) {
            let end = (start + chunk_rows).min(rows);
            let t =
                Tensor::from_slice(&x[start * dim..end * dim], (end - start, dim), &Device::Cpu)?;
            let o = student.forward(&t, false)?;
            for (acc, z) in out.iter_mut().zip(self.exits.logits(&o)?) {
                acc.extend(z.flatten_all()?.to_vec1::<f32>()?);
            }
        }
        Ok(out)
    }

    /// Writes `exit{L}.onnx` (truncated at each exit) into `out` and returns the exits'
    /// summaries (metrics from `evals`, by name).
    pub fn export(
        &self,
        student: &Student,
        input_name: &str,
        out: &Path,
        onnx: bool,
        evals: &[(String, EvalMetrics)],
    ) -> Result<BTreeMap<String, NetworkSummary>, TrainError> {
        let mut map = BTreeMap::new();
        for h in self.exits.heads() {
            let name = h.name();
            let mut files = Vec::new();
            if onnx {
                let file = format!("{name}.onnx");
                trainer_core::export::export_exit_onnx(
                    student,
                    h,
                    input_name,
                    "logits",
                    &out.join(&file),
                )?;
                files.push(file);
            }
            let eval = evals
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, m)| m.clone());
            map.insert(
                name,
                NetworkSummary {
                    text_eval: None,
                    role: "exit".into(),
                    test_errors: eval.as_ref().map(|e| e.errors),
                    eval,
                    param_count: truncated_param_count(student, h),
                    files,
                },
            );
        }
        Ok(map)
    }
}
