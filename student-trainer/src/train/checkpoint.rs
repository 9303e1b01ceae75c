//! Per-epoch checkpoints: all variables (student and projectors), optimizer state and the
//! loop state, written so that a kill at any moment leaves the previous checkpoint usable.
//!
//! Layout under `RUN/checkpoint/`: `epoch-NNNN.safetensors` (tensors `var.NAME`,
//! `opt.m.NAME`, `opt.v.NAME`) and `state.json`, which names the tensor file and is replaced
//! (atomically, `proto::atomic`) only after that file is complete. Randomness needs no saved generator
//! state: shuffling, jitter and dropout are re-seeded from `(seed, epoch)` each epoch.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use distill_proto::atomic::{write_atomic, write_atomic_with, AtomicWriteError};
use serde::{Deserialize, Serialize};

use super::{BoxError, TrainError};
use trainer_core::optim::Optimizer;

/// Early-stopping bookkeeping.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct BestState {
    /// Best value of the watched metric so far.
    pub value: f64,
    /// Epoch (1-based) that reached it.
    pub epoch: usize,
}

/// `state.json`: where the loop stood after an epoch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckpointState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer updates completed.
    pub optimizer_steps: u64,
    /// Tensor file of this checkpoint, inside the checkpoint folder.
    pub tensors: String,
    /// Best watched metric so far (early stopping).
    pub best: Option<BestState>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Wall time so far, over all sessions.
    pub wall_s: f64,
    /// Rows trained on so far.
    pub train_samples: u64,
    /// Seconds spent in training steps so far.
    pub train_s: f64,
    /// Online runs: optimizer updates of each network beside the `[student]` (whose count is
    /// `optimizer_steps`), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub network_steps: BTreeMap<String, u64>,
    /// Text runs: the data figures their summary reports over all sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextProgress>,
}

/// What a text run's batches looked like so far, kept so that a resumed run's summary is a
/// straight run's.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct TextProgress {
    /// The most rows a window held in memory.
    pub window_rows: usize,
    /// Real token slots of the last epoch's batches.
    pub tokens: u64,
    /// All token slots (padding included) of the last epoch's batches.
    pub padded: u64,
}

impl CheckpointState {
    /// The state before the first epoch.
    pub fn fresh() -> Self {
        Self {
            epoch: 0,
            optimizer_steps: 0,
            tensors: String::new(),
            best: None,
            stopped_early: false,
            wall_s: 0.0,
            train_samples: 0,
            train_s: 0.0,
            network_steps: BTreeMap::new(),
            text: None,
        }
    }
}

fn ck_err(path: &Path, e: impl Into<BoxError>) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// The checkpoint folder of a run folder.
pub fn dir(run: &Path) -> PathBuf {
    run.join("checkpoint")
}

/// Writes a checkpoint after `state.epoch` epochs.
pub fn save(
    run: &Path,
    vars: &VarMap,
    opt: &Optimizer,
    state: CheckpointState,
) -> Result<(), TrainError> {
    save_all(run, vars, &[opt], state)
}

/// Writes a checkpoint of `vars` and several optimizers over disjoint subsets of them (an
/// online run's networks); the step counts travel in `state`.
pub fn save_all(
    run: &Path,
    vars: &VarMap,
    opts: &[&Optimizer],
    mut state: CheckpointState,
) -> Result<(), TrainError> {
    let d = dir(run);
    std::fs::create_dir_all(&d).map_err(|e| ck_err(&d, e))?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for opt in opts {
        tensors.extend(opt.state_tensors()?);
    }
    {
        let data = vars
            .data()
            .lock()
            .map_err(|_| ck_err(&d, "variable map lock poisoned"))?;
        for (name, var) in data.iter() {
            tensors.insert(format!("var.{name}"), var.as_tensor().clone());
        }
    }
    let file = format!("epoch-{:04}.safetensors", state.epoch);
    save_tensors(&tensors, &d.join(&file))?;
    state.tensors = file.clone();
    let json = serde_json::to_string_pretty(&state).map_err(|e| ck_err(&d, e))?;
    let sp = d.join("state.json");
    write_atomic(&sp, json.as_bytes()).map_err(|e| ck_err(&sp, e))?;
    // Older tensor files are no longer referenced.
    if let Ok(entries) = std::fs::read_dir(&d) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("epoch-") && name != file {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// Reads `state.json`, if the run has a checkpoint.
pub fn load_state(run: &Path) -> Result<Option<CheckpointState>, TrainError> {
    let sp = dir(run).join("state.json");
    match std::fs::read_to_string(&sp) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ck_err(&sp, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ck_err(&sp, e)),
    }
}

/// Restores variables and optimizer state from the checkpoint `state` names.
pub fn restore(
    run: &Path,
    state: &CheckpointState,
    vars: &VarMap,
    opt: &mut Optimizer,
) -> Result<(), TrainError> {
    restore_all(run, state, vars, &mut [(opt, state.optimizer_steps)])
}

/// Restores variables and several optimizers (each with its step count) from the checkpoint
/// `state` names.
pub fn restore_all(
    run: &Path,
    state: &CheckpointState,
    vars: &VarMap,
    opts: &mut [(&mut Optimizer, u64)],
) -> Result<(), TrainError> {
    let path = dir(run).join(&state.tensors);
    let tensors =
        candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| ck_err(&path, e))?;
    let data = vars
        .data()
        .lock()
        .map_err(|_| ck_err(&path, "variable map lock poisoned"))?;
    for (name, var) in data.iter() {
        let t = tensors
            .get(&format!("var.{name}"))
            .ok_or_else(|| ck_err(&path, format!("missing variable {name}")))?;
        if t.shape() != var.shape() {
            return Err(ck_err(
                &path,
                format!(
                    "variable {name} has shape {:?}, the model {:?}",
                    t.shape(),
                    var.shape()
                ),
            ));
        }
        var.set(t).map_err(|e| ck_err(&path, e))?;
    }
    drop(data);
    for (opt, steps) in opts.iter_mut() {
        opt.load_state(&tensors, *steps)
            .map_err(|e| ck_err(&path, e))?;
    }
    Ok(())
}

/// Saves the named variables (those passing `keep`) as a safetensors file.
pub fn save_vars(
    vars: &VarMap,
    path: &Path,
    keep: impl Fn(&str) -> bool,
) -> Result<(), TrainError> {
    save_vars_renamed(vars, path, |n| keep(n).then(|| n.to_string()))
}

/// Saves the variables `name` maps to `Some(new name)` as a safetensors file, under the new
/// names (an online run's other networks lose their `online.NAME.` prefix).
pub fn save_vars_renamed(
    vars: &VarMap,
    path: &Path,
    rename: impl Fn(&str) -> Option<String>,
) -> Result<(), TrainError> {
    let data = vars
        .data()
        .lock()
        .map_err(|_| ck_err(path, "variable map lock poisoned"))?;
    let tensors: HashMap<String, Tensor> = data
        .iter()
        .filter_map(|(n, v)| rename(n).map(|m| (m, v.as_tensor().clone())))
        .collect();
    drop(data);
    save_tensors(&tensors, path)
}

/// Writes `tensors` to the safetensors file `path` atomically.
fn save_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<(), TrainError> {
    write_atomic_with(path, |tmp| {
        candle_core::safetensors::save(tensors, tmp).map_err(|e| AtomicWriteError {
            op: "writing",
            path: tmp.to_path_buf(),
            source: std::io::Error::other(e),
        })
    })
    .map_err(|e| ck_err(path, e))
}

/// Loads a safetensors file into the variables it names (others are left alone).
pub fn load_vars(vars: &VarMap, path: &Path) -> Result<(), TrainError> {
    let tensors =
        candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| ck_err(path, e))?;
    let data = vars
        .data()
        .lock()
        .map_err(|_| ck_err(path, "variable map lock poisoned"))?;
    for (name, t) in &tensors {
        if let Some(var) = data.get(name) {
            var.set(t).map_err(|e| ck_err(path, e))?;
        }
    }
    Ok(())
}
