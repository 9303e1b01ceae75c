//! [`OnnxTextEncoder`]: runs a text encoder ONNX (an exported text student, the exported f32
//! teacher, or a foreign BERT-style model) in ONNX Runtime on a padded token batch.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::{Tensor as OrtTensor, TensorElementType, ValueType};

use crate::ort_runtime::{ort_environment, NamedOutput};
use crate::RuntimeError;

/// A padded batch of token rows, row-major `[rows, seq]` int64.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Rows in the batch.
    pub rows: usize,
    /// Padded length.
    pub seq: usize,
    /// Token ids.
    pub input_ids: Vec<i64>,
    /// 1 for a token, 0 for padding.
    pub attention_mask: Vec<i64>,
    /// Segment ids (zeros if the caller has none).
    pub token_type_ids: Vec<i64>,
}

/// A text encoder ONNX with int64 `input_ids` and `attention_mask` (and, if the model has
/// it, `token_type_ids`) inputs.
pub struct OnnxTextEncoder {
    session: Session,
    path: PathBuf,
    has_token_types: bool,
    output_names: Vec<String>,
}

impl std::fmt::Debug for OnnxTextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxTextEncoder")
            .field("path", &self.path)
            .field("has_token_types", &self.has_token_types)
            .field("output_names", &self.output_names)
            .finish()
    }
}

impl OnnxTextEncoder {
    /// Loads the model at `path` (ONNX Runtime from `ort_lib` or `$ORT_DYLIB_PATH`) and checks
    /// its inputs.
    pub fn load(path: &Path, ort_lib: Option<&Path>) -> Result<Self, RuntimeError> {
        Self::load_with_threads(path, ort_lib, None)
    }

    /// [`OnnxTextEncoder::load`] with ONNX Runtime's intra-op thread count set (`None`: its
    /// default), so that timings can state the threads they used.
    pub fn load_with_threads(
        path: &Path,
        ort_lib: Option<&Path>,
        intra_threads: Option<usize>,
    ) -> Result<Self, RuntimeError> {
        let env = ort_environment(ort_lib)?;
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
        let mut builder = Session::builder(&env).map_err(ort_err)?;
        if let Some(n) = intra_threads {
            builder = builder
                .with_intra_threads(n)
                .map_err(|e| ort_err(e.into()))?;
        }
        let session = builder.commit_from_file(path).map_err(ort_err)?;
        let unsupported = |reason: String| RuntimeError::UnsupportedModel {
            path: path.to_path_buf(),
            reason,
        };
        let mut has_token_types = false;
        let mut seen = Vec::new();
        for input in session.inputs() {
            let name = input.name();
            match name {
                "input_ids" | "attention_mask" | "token_type_ids" => {}
                other => {
                    return Err(unsupported(format!(
                        "input `{other}` is not one of input_ids, attention_mask, token_type_ids"
                    )))
                }
            }
            match input.dtype() {
                ValueType::Tensor { ty, shape, .. }
                    if *ty == TensorElementType::Int64 && shape.len() == 2 => {}
                other => {
                    return Err(unsupported(format!(
                        "input `{name}` is {other:?}, expected a 2-D int64 tensor [batch, sequence]"
                    )))
                }
            }
            has_token_types |= name == "token_type_ids";
            seen.push(name.to_string());
        }
        for needed in ["input_ids", "attention_mask"] {
            if !seen.iter().any(|s| s == needed) {
                return Err(unsupported(format!("it has no `{needed}` input")));
            }
        }
        let output_names = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        Ok(Self {
            session,
            path: path.to_path_buf(),
            has_token_types,
            output_names,
        })
    }

    /// All output names, in graph order.
    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// Whether the model takes `token_type_ids`.
    pub fn has_token_types(&self) -> bool {
        self.has_token_types
    }

    /// Runs `batch` and returns the outputs named in `names` (all if empty), in that order.
    pub fn run(
        &mut self,
        batch: &TokenBatch,
        names: &[&str],
    ) -> Result<Vec<NamedOutput>, RuntimeError> {
        let n = batch.rows * batch.seq;
        if n == 0
            || batch.input_ids.len() != n
            || batch.attention_mask.len() != n
            || batch.token_type_ids.len() != n
        {
            return Err(RuntimeError::Input(format!(
                "token batch of {} x {} needs {n} ids, mask and type values; got {}, {}, {}",
                batch.rows,
                batch.seq,
                batch.input_ids.len(),
                batch.attention_mask.len(),
                batch.token_type_ids.len()
            )));
        }
        for name in names {
            if !self.output_names.iter().any(|o| o == name) {
                return Err(RuntimeError::Input(format!(
                    "model {} has no output `{name}` (outputs: {})",
                    self.path.display(),
                    self.output_names.join(", ")
                )));
            }
        }
        let wanted: Vec<String> = if names.is_empty() {
            self.output_names.clone()
        } else {
            names.iter().map(|s| s.to_string()).collect()
        };
        let path = self.path.clone();
        let ort_err = |e: ort::Error| RuntimeError::Ort {
            path: path.clone(),
            message: e.to_string(),
        };
        let shape = [batch.rows, batch.seq];
        let tensor = |v: &[i64]| OrtTensor::from_array((shape, v.to_vec())).map_err(ort_err);
        let mut inputs = vec![
            ("input_ids", tensor(&batch.input_ids)?.into_dyn()),
            ("attention_mask", tensor(&batch.attention_mask)?.into_dyn()),
        ];
        if self.has_token_types {
            inputs.push(("token_type_ids", tensor(&batch.token_type_ids)?.into_dyn()));
        }
        let outputs = self.session.run(inputs).map_err(ort_err)?;
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
