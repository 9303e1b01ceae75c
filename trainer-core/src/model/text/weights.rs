//! Starting weights for text students from BERT-family safetensors (Hugging Face names):
//! a subset of a teacher's layers for the transformer (DistilBERT style), the teacher's word
//! embeddings (optionally PCA-reduced) for the static student.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

use super::config::{StaticConfig, StaticInit, TransformerConfig, TransformerInit};
use super::pca::pca_reduce;
use crate::model::ModelError;

/// All tensors of a safetensors file, on the CPU.
pub fn read_safetensors(path: &Path) -> Result<HashMap<String, Tensor>, ModelError> {
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|source| ModelError::ReadWeights {
        path: path.to_path_buf(),
        source,
    })
}

/// The tensor `name` of the file at `path` as f32, checked against `shape`.
fn take(
    tensors: &HashMap<String, Tensor>,
    path: &Path,
    name: &str,
    shape: &[usize],
) -> Result<Tensor, ModelError> {
    let t = tensors.get(name).ok_or_else(|| ModelError::MissingTensor {
        path: path.to_path_buf(),
        name: name.to_string(),
    })?;
    if t.dims() != shape {
        return Err(ModelError::TensorShape {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: shape.to_vec(),
            got: t.dims().to_vec(),
        });
    }
    Ok(t.to_dtype(DType::F32)?)
}

/// Number of `encoder.layer.N.` blocks in a file (one more than the largest N).
pub fn source_layer_count(tensors: &HashMap<String, Tensor>) -> usize {
    tensors
        .keys()
        .filter_map(|k| {
            k.strip_prefix("encoder.layer.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .map(|n| n + 1)
        .max()
        .unwrap_or(0)
}

/// Sets every variable of a transformer student (except the projector, which no BERT file
/// has) from `init.from`: embeddings as they are (the position table's first
/// `max_positions` rows), student block `j` from source block `init.layers[j]`.
pub fn init_transformer(
    vm: &VarMap,
    cfg: &TransformerConfig,
    init: &TransformerInit,
) -> Result<(), ModelError> {
    let path = init.from.as_path();
    let tensors = read_safetensors(path)?;
    let available = source_layer_count(&tensors);
    let layers: Vec<usize> = init
        .layers
        .clone()
        .unwrap_or_else(|| (0..cfg.layers).collect());
    if let Some(&bad) = layers.iter().find(|&&l| l >= available) {
        return Err(ModelError::NoSuchLayer {
            path: path.to_path_buf(),
            layer: bad,
            available,
        });
    }
    let data = vm.data().lock().unwrap_or_else(|e| e.into_inner());
    for (name, var) in data.iter() {
        let source = match name.strip_prefix("encoder.layer.") {
            Some(rest) => {
                let (j, tail) = rest.split_once('.').unwrap_or((rest, ""));
                let j: usize = j.parse().map_err(|_| {
                    ModelError::Config(format!("unexpected student weight name `{name}`"))
                })?;
                match layers.get(j) {
                    Some(src) => format!("encoder.layer.{src}.{tail}"),
                    None => {
                        return Err(ModelError::Config(format!(
                            "student weight `{name}` has no source layer in {layers:?}"
                        )))
                    }
                }
            }
            None if name.starts_with("projector.") => continue,
            None => name.clone(),
        };
        let t = if source == "embeddings.position_embeddings.weight" {
            position_rows(&tensors, path, &source, var.dims())?
        } else {
            take(&tensors, path, &source, var.dims())?
        };
        var.set(&t)?;
    }
    Ok(())
}

/// The first `want[0]` rows of the source position table (a student may handle shorter
/// sequences than its teacher).
fn position_rows(
    tensors: &HashMap<String, Tensor>,
    path: &Path,
    name: &str,
    want: &[usize],
) -> Result<Tensor, ModelError> {
    let t = tensors.get(name).ok_or_else(|| ModelError::MissingTensor {
        path: path.to_path_buf(),
        name: name.to_string(),
    })?;
    let dims = t.dims();
    if dims.len() != 2 || dims[1] != want[1] || dims[0] < want[0] {
        return Err(ModelError::TensorShape {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: want.to_vec(),
            got: dims.to_vec(),
        });
    }
    Ok(t.narrow(0, 0, want[0])?
        .to_dtype(DType::F32)?
        .contiguous()?)
}

/// Sets a static student's table from `init.tensor` of `init.from`: as it is when its width
/// is `dim`, reduced to `dim` by PCA when `init.pca`.
pub fn init_static(vm: &VarMap, cfg: &StaticConfig, init: &StaticInit) -> Result<(), ModelError> {
    let path = init.from.as_path();
    let tensors = read_safetensors(path)?;
    let t = tensors
        .get(&init.tensor)
        .ok_or_else(|| ModelError::MissingTensor {
            path: path.to_path_buf(),
            name: init.tensor.clone(),
        })?;
    let shape_err = || ModelError::TensorShape {
        path: path.to_path_buf(),
        name: init.tensor.clone(),
        expected: vec![cfg.vocab, cfg.dim],
        got: t.dims().to_vec(),
    };
    let (rows, cols) = t.dims2().map_err(|_| shape_err())?;
    if rows != cfg.vocab || cols < cfg.dim || (cols != cfg.dim && !init.pca) {
        return Err(shape_err());
    }
    let table = t.to_dtype(DType::F32)?;
    let table = if init.pca {
        pca_reduce(&table, cfg.dim)?
    } else {
        table
    };
    let data = vm.data().lock().unwrap_or_else(|e| e.into_inner());
    let var = data.get("embeddings.weight").ok_or_else(|| {
        ModelError::Config("static student has no `embeddings.weight` variable".into())
    })?;
    var.set(&table)?;
    if cfg.project_to == Some(cols) {
        // The projector maps back into the source's space: the least-squares inverse of the
        // reduction (for PCA: components and mean; without PCA: the identity). The student then
        // starts as the teacher's own token average, truncated to `dim` components.
        let (weight, bias) = if init.pca {
            let source = t.to_dtype(DType::F32)?;
            let mean = source.mean_keepdim(0)?;
            let centred = source.broadcast_sub(&mean)?;
            // reduced = centred · B with orthonormal B, so Bᵀ = (reducedᵀ centred) / |reduced
            // columns|² (the normal equations are diagonal) and rows come back as
            // reduced · Bᵀ + mean.
            let norms = table.sqr()?.sum(0)?.clamp(1e-12f32, f32::MAX)?;
            let bt = table
                .t()?
                .matmul(&centred)?
                .broadcast_div(&norms.unsqueeze(1)?)?;
            (bt.t()?.contiguous()?, mean.squeeze(0)?)
        } else {
            let dev = table.device();
            (
                Tensor::eye(cols, DType::F32, dev)?,
                Tensor::zeros(cols, DType::F32, dev)?,
            )
        };
        let get = |n: &str| {
            data.get(n)
                .ok_or_else(|| ModelError::Config(format!("static student has no `{n}` variable")))
        };
        get("projector.weight")?.set(&weight)?;
        get("projector.bias")?.set(&bias)?;
    }
    Ok(())
}
