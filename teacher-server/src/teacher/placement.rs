//! Which execution provider ONNX Runtime placed each node on, read from the session's
//! profile: ONNX Runtime writes one `Node` event per kernel run, whose `args.provider` names
//! the provider that ran it. Registering CUDA does not mean the graph runs there (ONNX
//! Runtime assigns nodes without a CUDA kernel to the CPU), so this is what is measured.

use std::collections::BTreeMap;

use distill_proto::api::{Dim, NodePlacement, Placement, TensorSpec};
use distill_proto::{DType, NamedTensors, Tensor, TensorData};

/// ONNX Runtime's name of the CUDA execution provider.
pub const CUDA_PROVIDER: &str = "CUDAExecutionProvider";

/// An unmeasured placement saying why.
pub fn unmeasured(error: impl Into<String>) -> Placement {
    Placement {
        measured: false,
        error: Some(error.into()),
        ..Placement::default()
    }
}

/// Zero-filled inputs for one warm-up run: one row, every other dynamic axis 1.
pub fn warmup_inputs(inputs: &[TensorSpec]) -> Result<NamedTensors, String> {
    let mut out = NamedTensors::with_capacity(inputs.len());
    for spec in inputs {
        let shape: Vec<usize> = spec
            .shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => *n,
                Dim::Dynamic(_) => 1,
            })
            .collect();
        let n: usize = shape.iter().product();
        let data = match spec.dtype {
            DType::F32 => TensorData::F32(vec![0.0; n]),
            DType::F16 => TensorData::F16(vec![half::f16::ZERO; n]),
            DType::F64 => TensorData::F64(vec![0.0; n]),
            DType::I64 => TensorData::I64(vec![0; n]),
            DType::I32 => TensorData::I32(vec![0; n]),
            DType::Bool => TensorData::Bool(vec![false; n]),
        };
        let t = Tensor::new(shape, data).map_err(|e| format!("input {:?}: {e}", spec.name))?;
        out.push(spec.name.clone(), t);
    }
    Ok(out)
}

/// The placement of every node in an ONNX Runtime profile (a JSON array of trace events).
pub fn parse_profile(json: &[u8]) -> Result<Placement, String> {
    let events: Vec<serde_json::Value> = serde_json::from_slice(json)
        .map_err(|e| format!("the profile is not a JSON array: {e}"))?;
    let mut nodes = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for e in &events {
        if e.get("cat").and_then(|c| c.as_str()) != Some("Node") {
            continue;
        }
        // Each kernel run is `<node>_kernel_time`; older versions add `_fence_before/after`.
        let Some(node) = e
            .get("name")
            .and_then(|n| n.as_str())
            .and_then(|n| n.strip_suffix("_kernel_time"))
        else {
            continue;
        };
        let args = e.get("args");
        let field = |k: &str| {
            args.and_then(|a| a.get(k))
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let provider = field("provider");
        if provider.is_empty() || !seen.insert(node.to_string()) {
            continue;
        }
        nodes.push(NodePlacement {
            node: node.to_string(),
            op: field("op_name"),
            provider,
        });
    }
    if nodes.is_empty() {
        return Err("the profile lists no node runs".into());
    }
    let mut providers = BTreeMap::new();
    for n in &nodes {
        *providers.entry(n.provider.clone()).or_insert(0) += 1;
    }
    Ok(Placement {
        measured: true,
        error: None,
        providers,
        nodes,
    })
}

/// The provider that computed the rows, as recorded with them: `cuda` when CUDA was
/// registered and (where measured) ran at least one node, else `cpu`.
pub fn computing_provider(registered: &str, placement: &Placement) -> &'static str {
    match registered {
        "cuda" if !placement.measured || placement.providers.contains_key(CUDA_PROVIDER) => "cuda",
        _ => "cpu",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shape of ONNX Runtime 1.31's profile (trimmed): session events, then one event per node.
    const PROFILE: &str = r#"[
      {"cat":"Session","name":"model_loading_uri","args":{}},
      {"cat":"Node","name":"fused fc1_kernel_time","args":{"op_name":"FusedGemm","provider":"CPUExecutionProvider"}},
      {"cat":"Node","name":"fc2_kernel_time","args":{"op_name":"Gemm","provider":"CUDAExecutionProvider"}},
      {"cat":"Node","name":"fc2_kernel_time","args":{"op_name":"Gemm","provider":"CUDAExecutionProvider"}},
      {"cat":"Session","name":"model_run","args":{}}
    ]"#;

    #[test]
    fn nodes_and_counts_come_from_the_node_events() {
        let p = parse_profile(PROFILE.as_bytes()).unwrap();
        assert!(p.measured);
        assert_eq!(
            p.nodes
                .iter()
                .map(|n| (n.node.as_str(), n.op.as_str(), n.provider.as_str()))
                .collect::<Vec<_>>(),
            [
                ("fused fc1", "FusedGemm", "CPUExecutionProvider"),
                ("fc2", "Gemm", CUDA_PROVIDER)
            ]
        );
        assert_eq!(p.providers["CPUExecutionProvider"], 1);
        assert_eq!(p.providers[CUDA_PROVIDER], 1);
        assert_eq!(computing_provider("cuda", &p), "cuda");
    }

    #[test]
    fn cuda_registered_but_unused_is_recorded_as_cpu() {
        let p = parse_profile(
            PROFILE
                .replace(CUDA_PROVIDER, "CPUExecutionProvider")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(computing_provider("cuda", &p), "cpu");
        assert_eq!(computing_provider("cuda", &unmeasured("x")), "cuda");
        assert_eq!(computing_provider("cpu", &p), "cpu");
    }

    #[test]
    fn a_profile_without_nodes_is_an_error() {
        assert!(parse_profile(b"[]").unwrap_err().contains("no node"));
        assert!(parse_profile(b"{")
            .unwrap_err()
            .contains("not a JSON array"));
    }

    #[test]
    fn warmup_inputs_take_one_row_and_fixed_dims() {
        let spec = TensorSpec {
            name: "ids".into(),
            dtype: DType::I64,
            shape: vec![
                Dim::Dynamic("batch".into()),
                Dim::Dynamic("seq".into()),
                Dim::Fixed(3),
            ],
        };
        let t = warmup_inputs(&[spec]).unwrap();
        assert_eq!(t.get("ids").unwrap().shape(), &[1, 1, 3]);
    }
}
