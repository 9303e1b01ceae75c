//! Everything a run builds from its config before the first epoch: the data in memory, the
//! eval set, jitter, the seeded student, its loss terms, self-distillation exits and their
//! variables.

use std::sync::Arc;

use candle_core::{Device, Var};
use candle_nn::VarMap;

use super::{init, objective::Objective, self_distill::SelfDistill, TrainError};
use crate::config::{LossTerm, RunConfig};
use trainer_core::model::Student;
use trainer_data::image::jitter::Jitter;
use trainer_data::{EvalData, TrainData};

/// A run's data, student and objective.
pub struct Setup {
    /// Training rows.
    pub data: Arc<TrainData>,
    /// Input width.
    pub input_dim: usize,
    /// Held-out rows, when `data.eval` is set (shared by the runs of a sweep).
    pub eval: Option<Arc<EvalData>>,
    /// Image jitter, when `train.jitter > 0`.
    pub jitter: Option<Jitter>,
    /// The student.
    pub student: Student,
    /// The loss terms (with projectors).
    pub objective: Objective,
    /// Self-distillation exits, when `[self_distill]` is set.
    pub self_distill: Option<SelfDistill>,
    /// All variables: student and projectors.
    pub varmap: VarMap,
}

impl Setup {
    /// Loads the data and builds the seeded student and objective.
    pub fn build(cfg: &RunConfig, quiet: bool) -> Result<Self, TrainError> {
        let data = Arc::new(TrainData::load(&cfg.data, &cfg.losses)?);
        let input_dim = data.input.cols;
        if !quiet {
            eprintln!(
                "loaded {} training rows × {input_dim} inputs, {} classes; {:.1} MB held in memory",
                data.rows(),
                data.num_classes,
                data.host_bytes() as f64 / 1e6
            );
            if let Some(v) = &data.views {
                let checked = match v.verified {
                    Some(n) => format!("{n} stored view inputs equal their replay"),
                    None => "the dataset stores no inputs to check the replay against".into(),
                };
                eprintln!(
                    "views: {} per row ({}), epoch e trains on view e mod {}; {checked}",
                    v.count, v.augment, v.count
                );
            }
            if let Some(s) = &data.served {
                eprintln!("served teacher: {s}; epoch e sends view e of each row");
            }
        }
        let eval = load_eval(cfg, &data)?.map(Arc::new);
        Self::with_data(cfg, data, eval)
    }

    /// Builds the seeded student and objective on data already in memory (a sweep loads its
    /// data once for all runs). `data` must hold the targets of `cfg.losses`, as
    /// [`TrainData::load`] with `cfg`'s losses (or losses reading the same columns) gives.
    pub fn with_data(
        cfg: &RunConfig,
        data: Arc<TrainData>,
        eval: Option<Arc<EvalData>>,
    ) -> Result<Self, TrainError> {
        let input_dim = data.input.cols;
        let jitter = jitter(cfg, input_dim)?;
        let varmap = VarMap::new();
        let vb = init::seeded_var_builder(&varmap, cfg.train.seed, &Device::Cpu);
        let student = Student::new(&cfg.student, input_dim, data.num_classes, vb.clone())?;
        let objective = Objective::new(&cfg.losses, &data, &student, &vb)?;
        let self_distill = cfg
            .self_distill
            .as_ref()
            .map(|sd| SelfDistill::new(sd, &student, &vb))
            .transpose()?;
        Ok(Self {
            data,
            input_dim,
            eval,
            jitter,
            student,
            objective,
            self_distill,
            varmap,
        })
    }

    /// Metric labels of every loss term of a step: the `[[loss]]` terms, then the exits'.
    pub fn labels(&self) -> Vec<String> {
        let mut l = self.objective.labels();
        if let Some(sd) = &self.self_distill {
            l.extend(sd.labels());
        }
        l
    }

    /// The variables, named, for the optimizer.
    pub fn vars(&self) -> Result<Vec<(String, Var)>, TrainError> {
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| TrainError::Config("variable map lock poisoned".into()))?;
        Ok(data.iter().map(|(n, v)| (n.clone(), v.clone())).collect())
    }
}

/// Reads `data.eval` (when set) with the teacher column of [`eval_teacher`], checked against
/// the training rows' width and classes.
pub fn load_eval(cfg: &RunConfig, data: &TrainData) -> Result<Option<EvalData>, TrainError> {
    let Some(path) = &cfg.data.eval else {
        return Ok(None);
    };
    let (teacher_col, teacher_required) = eval_teacher(cfg);
    Ok(Some(EvalData::load(
        path,
        &cfg.data.input,
        cfg.data.label.as_deref().unwrap_or("label"),
        teacher_col.as_deref(),
        teacher_required,
        Some(data.input.cols),
        Some(data.num_classes),
    )?))
}

/// The eval set's teacher column and whether the config demanded it.
pub fn eval_teacher(cfg: &RunConfig) -> (Option<String>, bool) {
    if let Some(t) = &cfg.data.eval_teacher {
        return (Some(t.clone()), true);
    }
    let first_kd = cfg.losses.iter().find_map(|t| match t {
        LossTerm::Kd { teacher, .. } if !teacher.contains(':') => Some(teacher.clone()),
        _ => None,
    });
    (first_kd, false)
}

fn jitter(cfg: &RunConfig, input_dim: usize) -> Result<Option<Jitter>, TrainError> {
    if cfg.train.jitter == 0 {
        return Ok(None);
    }
    Jitter::new(cfg.train.jitter, cfg.data.image_shape.as_deref(), input_dim)
        .map(Some)
        .ok_or_else(|| {
            TrainError::Config(format!(
                "train.jitter needs the image layout: inputs have width {input_dim}, which data.image_shape {:?} does not describe (set data.image_shape = [C, H, W])",
                cfg.data.image_shape
            ))
        })
}
