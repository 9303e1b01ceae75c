//! Resolving the config and the run folder of a `train` call: a fresh run writes the resolved
//! `config.toml`; `--resume` reads it back (and refuses a different `--config`).

use std::path::{Path, PathBuf};

use super::{checkpoint, TrainError, TrainOptions};
use crate::config::RunConfig;

/// The run's config file inside its folder.
pub const CONFIG_FILE: &str = "config.toml";

fn folder_err(path: &Path, message: impl Into<String>) -> TrainError {
    TrainError::RunFolder {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Resolves the config and the run folder; writes `config.toml` for a fresh run.
pub fn prepare(opts: &TrainOptions) -> Result<(RunConfig, PathBuf), TrainError> {
    let cwd = std::env::current_dir().map_err(io_err(Path::new(".")))?;
    let given = match &opts.config {
        Some(p) => {
            let mut c = RunConfig::load(p)?;
            c.resolve_paths(&cwd);
            Some(c)
        }
        None => None,
    };
    let out = out_dir(opts.out.as_deref(), opts.config.as_deref())?;
    if opts.resume {
        let saved = resume_config(&out, given)?;
        return Ok((saved, out));
    }
    let cfg =
        given.ok_or_else(|| TrainError::Config("--config is required unless --resume".into()))?;
    start_fresh(&out, &cfg)?;
    Ok((cfg, out))
}

/// `--out`, else `runs/<config file stem>`.
pub fn out_dir(out: Option<&Path>, config: Option<&Path>) -> Result<PathBuf, TrainError> {
    match (out, config) {
        (Some(o), _) => Ok(o.to_path_buf()),
        (None, Some(c)) => {
            let stem = c
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into());
            Ok(PathBuf::from("runs").join(stem))
        }
        (None, None) => Err(TrainError::Config(
            "give --config, or --out with --resume".into(),
        )),
    }
}

/// The saved config of a run to resume; a given `--config` must equal it.
fn resume_config(out: &Path, given: Option<RunConfig>) -> Result<RunConfig, TrainError> {
    let saved = RunConfig::load(&out.join(CONFIG_FILE)).map_err(|source| TrainError::Resume {
        path: out.to_path_buf(),
        source,
    })?;
    if given.is_some_and(|g| g != saved) {
        return Err(folder_err(
            out,
            "the given --config differs from the run's config.toml; resume without --config or start a new run",
        ));
    }
    Ok(saved)
}

/// Claims `out` for a new run: refuses a folder holding one, writes `config.toml`.
fn start_fresh(out: &Path, cfg: &RunConfig) -> Result<(), TrainError> {
    if checkpoint::dir(out).join("state.json").exists() || out.join("summary.json").exists() {
        return Err(folder_err(
            out,
            "already holds a run; pass --resume to continue it or choose another --out",
        ));
    }
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let saved_path = out.join(CONFIG_FILE);
    std::fs::write(&saved_path, cfg.to_toml()?).map_err(io_err(&saved_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_dir_defaults_to_runs_and_the_config_stem() {
        let o = out_dir(None, Some(Path::new("examples/mnist-kd.toml"))).expect("dir");
        assert_eq!(o, PathBuf::from("runs/mnist-kd"));
        let o = out_dir(Some(Path::new("x")), Some(Path::new("a.toml"))).expect("dir");
        assert_eq!(o, PathBuf::from("x"));
        let e = out_dir(None, None).expect_err("nothing to go on");
        assert!(e.to_string().contains("--out with --resume"), "{e}");
    }
}
