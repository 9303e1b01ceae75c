//! Safetensors checkpoints of a `VarMap`: atomic saves and strict loads (every variable present
//! with its exact shape, nothing extra), which `VarMap::save`/`load` do not give.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use candle_nn::VarMap;

use super::ExportError;
use distill_proto::atomic::write_atomic_with;

/// Saves every variable of `varmap` to `path` (safetensors, written atomically).
pub fn save_safetensors(varmap: &VarMap, path: &Path) -> Result<(), ExportError> {
    let tensors: HashMap<String, Tensor> = {
        let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        data.iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    };
    write_atomic_with(path, |tmp| {
        candle_core::safetensors::save(&tensors, tmp).map_err(ExportError::from)
    })
}

/// Loads `path` into the existing variables of `varmap` (build the model first, then load).
/// Fails, changing nothing, if a variable is missing from the file, has another shape, or the
/// file holds tensors the model lacks. Values are converted to each variable's dtype.
pub fn load_safetensors(varmap: &VarMap, path: &Path) -> Result<(), ExportError> {
    let device = {
        let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        match data.values().next() {
            Some(v) => v.device().clone(),
            None => candle_core::Device::Cpu,
        }
    };
    if !path.exists() {
        return Err(ExportError::Io {
            op: "reading checkpoint",
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let mut loaded = candle_core::safetensors::load(path, &device)?;
    let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    // Check everything first so a bad file leaves the weights untouched.
    for name in &names {
        let var = &data[*name];
        match loaded.get(*name) {
            None => {
                let mut present: Vec<&String> = loaded.keys().collect();
                present.sort();
                return Err(ExportError::MissingTensor {
                    path: path.to_path_buf(),
                    name: (*name).clone(),
                    present: present
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            Some(t) if t.dims() != var.dims() => {
                return Err(ExportError::ShapeMismatch {
                    path: path.to_path_buf(),
                    name: (*name).clone(),
                    expected: var.dims().to_vec(),
                    got: t.dims().to_vec(),
                })
            }
            Some(_) => {}
        }
    }
    let mut extra: Vec<&String> = loaded.keys().filter(|k| !data.contains_key(*k)).collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(ExportError::UnexpectedTensors {
            path: path.to_path_buf(),
            names: extra
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    for name in names {
        let var = &data[name];
        if let Some(t) = loaded.remove(name) {
            var.set(&t.to_dtype(var.dtype())?)?;
        }
    }
    Ok(())
}
