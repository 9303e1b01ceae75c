//! ONNX Runtime from Rust: the process-wide environment (loaded once from a shared library) and
//! [`OnnxClassifier`], which runs an exported student (or any one-input f32 classifier).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use crate::RuntimeError;

/// The environment, once built. Only a success is kept, so a bad path can be retried with a
/// good one; ort allows a single environment per process, hence the global.
static ORT_ENV: Mutex<Option<Environment>> = Mutex::new(None);

/// The ONNX Runtime library to load: `explicit` (e.g. `--ort-lib`), else `$ORT_DYLIB_PATH`.
pub fn resolve_ort_lib(explicit: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => {
                return Err(RuntimeError::OrtInit(
                    "no ONNX Runtime library given: pass --ort-lib PATH or set ORT_DYLIB_PATH \
                     (scripts/fetch_deps.sh puts one at .deps/onnxruntime/libonnxruntime.so.1.31.1)"
                        .to_string(),
                ))
            }
        },
    };
    if !path.is_file() {
        return Err(RuntimeError::OrtInit(format!(
            "ONNX Runtime library {} does not exist (run scripts/fetch_deps.sh to fetch it)",
            path.display()
        )));
    }
    Ok(path)
}

/// The process's ONNX Runtime environment, loading the library on first use (see
/// [`resolve_ort_lib`]). Later calls return the same environment whatever `lib` says.
pub fn ort_environment(lib: Option<&Path>) -> Result<Environment, RuntimeError> {
    let mut slot = ORT_ENV.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(env) = slot.as_ref() {
        return Ok(env.clone());
    }
    let path = resolve_ort_lib(lib)?;
    let env = ort::init_from(&path)
        .map_err(|e| RuntimeError::OrtInit(e.to_string()))?
        .with_name("distill-student")
        .build()
        .map_err(|e| {
            RuntimeError::OrtInit(format!(
                "building the environment from {}: {e} (if this process already made one, \
                 pass it to OnnxClassifier::load_with_env)",
                path.display()
            ))
        })?;
    *slot = Some(env.clone());
    Ok(env)
}

/// One named output of a run: its shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedOutput {
    /// The graph output's name.
    pub name: String,
    /// Its shape in this run.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub data: Vec<f32>,
}

/// A one-input f32 classifier run by ONNX Runtime: `[rows, input_dim]` in, logits out.
pub struct OnnxClassifier {
    session: Session,
    path: PathBuf,
    input_name: String,
    input_dim: Option<usize>,
    logits_name: String,
    output_names: Vec<String>,
}

impl std::fmt::Debug for OnnxClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxClassifier")
            .field("path", &self.path)
            .field("input_name", &self.input_name)
            .field("input_dim", &self.input_dim)
            .field("logits_name", &self.logits_name)
            .field("output_names", &self.output_names)
            .finish()
    }
}

impl OnnxClassifier {
    /// Loads the model at `path`, initialising ONNX Runtime from `ort_lib` or `$ORT_DYLIB_PATH`
    /// if this process has not yet. The logits are the output named `logits`, else the first.
    pub fn load(path: &Path, ort_lib: Option<&Path>) -> Result<Self, RuntimeError> {
        let env = ort_environment(ort_lib)?;
        Self::load_with_env(path, &env)
    }

    /// Loads the model at `path` into an environment the caller already holds.
    pub fn load_with_env(path: &Path, env: &Environment) -> Result<Self, RuntimeError> {
        if !path.is_file() {
            return Err(RuntimeError::Io {
                op: "reading model",
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let ort_err = |e: ort::Error| RuntimeError::Ort {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let session = Session::builder(env)
            .map_err(ort_err)?
            .commit_from_file(path)
            .map_err(ort_err)?;
        let unsupported = |reason: String| RuntimeError::UnsupportedModel {
            path: path.to_path_buf(),
            reason,
        };
        let inputs = session.inputs();
        if inputs.len() != 1 {
            return Err(unsupported(format!(
                "it has {} inputs ({}), a classifier takes exactly one",
                inputs.len(),
                inputs
                    .iter()
                    .map(|i| i.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let input = &inputs[0];
        let input_dim = match input.dtype() {
            ValueType::Tensor { ty, shape, .. }
                if *ty == TensorElementType::Float32 && shape.len() == 2 =>
            {
                // -1 marks a dynamic width: then any width is passed through to the runtime.
                usize::try_from(shape[1]).ok()
            }
            other => {
                return Err(unsupported(format!(
                    "input `{}` is {other:?}, expected a 2-D float32 tensor [rows, features]",
                    input.name()
                )))
            }
        };
        let input_name = input.name().to_string();
        let output_names: Vec<String> = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let logits_name = if output_names.iter().any(|n| n == "logits") {
            "logits".to_string()
        } else {
            match output_names.first() {
                Some(n) => n.clone(),
                None => return Err(unsupported("it has no outputs".to_string())),
            }
        };
        Ok(Self {
            session,
            path: path.to_path_buf(),
            input_name,
            input_dim,
            logits_name,
            output_names,
        })
    }

    /// Chooses which output [`run`](Self::run) returns.
    pub fn with_logits_output(mut self, name: &str) -> Result<Self, RuntimeError> {
        if !self.output_names.iter().any(|n| n == name) {
            return Err(RuntimeError::UnsupportedModel {
                path: self.path.clone(),
                reason: format!(
                    "no output named `{name}` (outputs: {})",
                    self.output_names.join(", ")
                ),
            });
        }
        self.logits_name = name.to_string();
        Ok(self)
    }

    /// The model's input width, if fixed.
    pub fn input_dim(&self) -> Option<usize> {
        self.input_dim
    }

    /// The model's input name.
    pub fn input_name(&self) -> &str {
        &self.input_name
    }

    /// All output names, in graph order.
    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// Runs `rows` rows (`x` is row-major `[rows, input_dim]`) and returns the logits, row-major.
    pub fn run(&mut self, x: &[f32], rows: usize) -> Result<Vec<f32>, RuntimeError> {
        let name = self.logits_name.clone();
        let mut outs = self.run_outputs(x, rows, &[name.as_str()])?;
        Ok(outs.pop().map(|o| o.data).unwrap_or_default())
    }

    /// Runs `rows` rows and returns the outputs named in `names` (all outputs if empty), in
    /// the order asked.
    pub fn run_outputs(
        &mut self,
        x: &[f32],
        rows: usize,
        names: &[&str],
    ) -> Result<Vec<NamedOutput>, RuntimeError> {
        if rows == 0 {
            return Err(RuntimeError::Input("zero rows".to_string()));
        }
        if !x.len().is_multiple_of(rows) {
            return Err(RuntimeError::Input(format!(
                "{} values do not split into {rows} rows",
                x.len()
            )));
        }
        let width = x.len() / rows;
        if let Some(d) = self.input_dim {
            if width != d {
                return Err(RuntimeError::Input(format!(
                    "rows have {width} features, model {} takes {d}",
                    self.path.display()
                )));
            }
        }
        let wanted: Vec<String> = if names.is_empty() {
            self.output_names.clone()
        } else {
            for n in names {
                if !self.output_names.iter().any(|o| o == n) {
                    return Err(RuntimeError::Input(format!(
                        "model {} has no output `{n}` (outputs: {})",
                        self.path.display(),
                        self.output_names.join(", ")
                    )));
                }
            }
            names.iter().map(|s| s.to_string()).collect()
        };
        let path = self.path.clone();
        let ort_err = |e: ort::Error| RuntimeError::Ort {
            path: path.clone(),
            message: e.to_string(),
        };
        let tensor = TensorRef::from_array_view(([rows, width], x)).map_err(ort_err)?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(ort_err)?;
        let mut result = Vec::with_capacity(wanted.len());
        for name in wanted {
            let value = outputs.get(&name).ok_or_else(|| RuntimeError::Ort {
                path: path.clone(),
                message: format!("run returned no output `{name}`"),
            })?;
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(ort_err)?;
            result.push(NamedOutput {
                shape: shape.iter().map(|&d| d.max(0) as usize).collect(),
                data: data.to_vec(),
                name,
            });
        }
        Ok(result)
    }
}
