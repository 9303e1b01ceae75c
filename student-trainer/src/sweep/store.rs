//! The sweep folder on disk, and what makes a killed sweep resumable:
//!
//! - `sweep.json`: what the sweep is (base config, grid, seeds, sample). A rerun with the same
//!   `--out` continues only the same sweep; budgets are not part of it, so a rerun may raise them.
//! - `runs/<id>/`: one ordinary run folder per run (checkpointed every epoch).
//! - `runs/<id>/result.json`: written atomically (`proto::atomic`) only once the run has finished;
//!   a run with it is never trained again, one without it resumes from its checkpoint (or is
//!   redone when it has none).

use std::path::{Path, PathBuf};

use distill_proto::atomic::write_atomic;
use serde::{Deserialize, Serialize};

use super::SweepError;
use crate::metrics::Summary;

/// The sweep's identity file.
pub const SPEC_FILE: &str = "sweep.json";
/// The folder of run folders.
pub const RUNS_DIR: &str = "runs";
/// A finished run's record inside its run folder.
pub const RESULT_FILE: &str = "result.json";

/// What a sweep is; a folder holds one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Spec {
    /// The base config, resolved (absolute data paths), as TOML.
    pub base: String,
    /// Each `--grid` key with its values as TOML text.
    pub grid: Vec<(String, Vec<String>)>,
    /// `--seeds`.
    pub seeds: Vec<u64>,
    /// `--sample`.
    pub sample: Option<usize>,
    /// `--sample-seed`.
    pub sample_seed: u64,
}

/// One finished run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    /// Run folder name.
    pub id: String,
    /// Grid point index; `None` for a scratch baseline.
    pub point: Option<usize>,
    /// Scratch group (value indices of the non-loss keys).
    pub group: Vec<usize>,
    /// `train.seed`.
    pub seed: u64,
    /// `key = value` settings of the run.
    pub settings: Vec<(String, String)>,
    /// The run's `summary.json`.
    pub summary: Summary,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SweepError + '_ {
    move |source| SweepError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Claims `out` for `spec`: a new folder gets `sweep.json`; an existing one must hold the
/// same sweep. Returns whether it already did (a resume).
pub fn claim(out: &Path, spec: &Spec) -> Result<bool, SweepError> {
    let path = out.join(SPEC_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let held: Spec = serde_json::from_str(&text).map_err(|e| SweepError::Folder {
            path: out.to_path_buf(),
            message: format!(
                "{SPEC_FILE} does not parse ({e}); delete the folder or choose another --out"
            ),
        })?;
        if held != *spec {
            let what = if held.base != spec.base {
                "base config"
            } else if held.grid != spec.grid {
                "grid"
            } else if held.seeds != spec.seeds {
                "seeds"
            } else {
                "sample"
            };
            return Err(SweepError::Folder {
                path: out.to_path_buf(),
                message: format!(
                    "holds a different sweep (its {what} differs); choose another --out, or delete the folder to start over"
                ),
            });
        }
        return Ok(true);
    }
    if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(SweepError::Folder {
            path: out.to_path_buf(),
            message: format!("is not empty and holds no {SPEC_FILE}; choose another --out"),
        });
    }
    std::fs::create_dir_all(out.join(RUNS_DIR)).map_err(io(out))?;
    let text = serde_json::to_string_pretty(spec)
        .map_err(|e| SweepError::Internal(format!("writing {SPEC_FILE}: {e}")))?;
    write_atomic(&path, text.as_bytes())?;
    Ok(false)
}

/// The run folder of run `id`.
pub fn run_dir(out: &Path, id: &str) -> PathBuf {
    out.join(RUNS_DIR).join(id)
}

/// The finished record of a run, if it has one.
pub fn read_result(run: &Path) -> Result<Option<RunResult>, SweepError> {
    let path = run.join(RESULT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| SweepError::Folder {
            path: path.clone(),
            message: format!("does not parse ({e}); delete it to train that run again"),
        })
}

/// Records a finished run.
pub fn write_result(run: &Path, r: &RunResult) -> Result<(), SweepError> {
    let text = serde_json::to_string_pretty(r)
        .map_err(|e| SweepError::Internal(format!("writing {RESULT_FILE}: {e}")))?;
    Ok(write_atomic(&run.join(RESULT_FILE), text.as_bytes())?)
}

/// Readies an unfinished run's folder: keeps it when it holds a checkpoint (the run resumes
/// from it), else empties it; writes `config.toml`. Returns whether to resume.
pub fn prepare_run(run: &Path, config_toml: &str) -> Result<bool, SweepError> {
    let resume = crate::train::checkpoint::dir(run)
        .join("state.json")
        .is_file();
    if !resume {
        reset_run(run)?;
    }
    std::fs::create_dir_all(run).map_err(io(run))?;
    let cp = run.join(crate::train::run_folder::CONFIG_FILE);
    std::fs::write(&cp, config_toml).map_err(io(&cp))?;
    Ok(resume)
}

/// Removes whatever an unfinished run left.
pub fn reset_run(run: &Path) -> Result<(), SweepError> {
    if run.exists() {
        std::fs::remove_dir_all(run).map_err(io(run))?;
    }
    Ok(())
}
