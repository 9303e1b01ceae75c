//! Which teacher outputs are served and stored, under which names, with which pooling
//! (`--output`, `--tap`, `--pool`, `--mask-input`), resolved once against the signature.

use distill_proto::api::{OutputSource, OutputSpec, Pooling};

use crate::config::{parse_pooling, KeyValue};
use crate::teacher::Signature;

/// The resolved outputs and the mask input mean pooling reads.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputPlan {
    /// Served and stored outputs, in order.
    pub specs: Vec<OutputSpec>,
    /// Input used as attention mask, when some output is mean-pooled.
    pub mask_input: Option<String>,
}

impl OutputPlan {
    /// Graph tensors the session must return, without repeats.
    pub fn tensors(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.specs {
            if !out.contains(&s.tensor) {
                out.push(s.tensor.clone());
            }
        }
        out
    }

    /// Whether `name` is a served output.
    pub fn has(&self, name: &str) -> bool {
        self.specs.iter().any(|s| s.name == name)
    }
}

/// Resolves the output roles; errors name the flag and what was available.
pub fn resolve(
    sig: &Signature,
    tap_names: &[String],
    roles: &[KeyValue],
    pools: &[KeyValue],
    mask_input: &str,
) -> Result<OutputPlan, String> {
    let available = || {
        sig.outputs
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let make = |name: &str, tensor: &str| -> Result<OutputSpec, String> {
        let spec = match sig.output(tensor) {
            Some(s) => s,
            None => {
                if let Some((_, ty)) = sig.unsupported_outputs.iter().find(|(n, _)| n == tensor) {
                    return Err(format!(
                        "output tensor {tensor:?} has type {ty}, which cannot be served (f32, f16, f64, i64, i32, bool)"
                    ));
                }
                return Err(format!(
                    "--output {name}={tensor}: the model has no output or tap {tensor:?} (available: {})",
                    available()
                ));
            }
        };
        Ok(OutputSpec {
            name: name.to_string(),
            tensor: tensor.to_string(),
            source: if tap_names.iter().any(|t| t == tensor) {
                OutputSource::Tap
            } else {
                OutputSource::Output
            },
            dtype: spec.dtype,
            shape: spec.shape.clone(),
            pooling: Pooling::None,
        })
    };
    let mut specs: Vec<OutputSpec> = Vec::new();
    if roles.is_empty() {
        for s in &sig.outputs {
            if !tap_names.contains(&s.name) {
                specs.push(make(&s.name, &s.name)?);
            }
        }
    } else {
        for r in roles {
            specs.push(make(&r.key, &r.value)?);
        }
    }
    for tap in tap_names {
        if !specs.iter().any(|s| &s.tensor == tap) {
            specs.push(make(tap, tap)?);
        }
    }
    if specs.is_empty() {
        return Err("the model has no output that can be served".into());
    }
    for (i, s) in specs.iter().enumerate() {
        if s.name == "id" {
            return Err(
                "an output cannot be stored as \"id\" (the row id column); rename it with --output"
                    .into(),
            );
        }
        if specs[..i].iter().any(|o| o.name == s.name) {
            return Err(format!(
                "two outputs are stored as {:?}; give them distinct names with --output",
                s.name
            ));
        }
    }
    let mut mask = None;
    for p in pools {
        let how =
            parse_pooling(&p.value).map_err(|e| format!("--pool {}={}: {e}", p.key, p.value))?;
        let names = specs
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
            .join(", ");
        let spec = specs.iter_mut().find(|s| s.name == p.key).ok_or_else(|| {
            format!(
                "--pool {}: no stored output of that name (stored: {names})",
                p.key
            )
        })?;
        if how != Pooling::None {
            if spec.shape.len() != 3 {
                return Err(format!(
                    "--pool {}: pooling needs a 3-D output [batch, seq, dim], {:?} has {} axes",
                    p.key,
                    spec.tensor,
                    spec.shape.len()
                ));
            }
            if !spec.dtype.is_float() {
                return Err(format!(
                    "--pool {}: only float outputs can be pooled, this one is {}",
                    p.key, spec.dtype
                ));
            }
        }
        if how == Pooling::Mean {
            if sig.input(mask_input).is_none() {
                return Err(format!(
                    "--pool {}=mean needs the attention-mask input {mask_input:?}, which the model does not have (set --mask-input)",
                    p.key
                ));
            }
            mask = Some(mask_input.to_string());
        }
        spec.pooling = how;
    }
    Ok(OutputPlan {
        specs,
        mask_input: mask,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use distill_proto::api::{Dim, TensorSpec};
    use distill_proto::DType;

    fn spec(name: &str, rank: usize) -> TensorSpec {
        let mut shape = vec![Dim::Dynamic("batch".into())];
        shape.extend((1..rank).map(|_| Dim::Fixed(4)));
        TensorSpec {
            name: name.into(),
            dtype: DType::F32,
            shape,
        }
    }

    fn sig() -> Signature {
        Signature {
            inputs: vec![spec("x", 2), spec("attention_mask", 2)],
            outputs: vec![spec("fc3", 2), spec("hidden", 3), spec("tap1", 2)],
            unsupported_outputs: vec![("strs".into(), "String".into())],
        }
    }

    fn kv(s: &str) -> KeyValue {
        s.parse().unwrap()
    }

    #[test]
    fn default_is_all_outputs_then_taps() {
        let p = resolve(&sig(), &["tap1".into()], &[], &[], "attention_mask").unwrap();
        let names: Vec<_> = p.specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["fc3", "hidden", "tap1"]);
        assert_eq!(p.specs[2].source, OutputSource::Tap);
        assert_eq!(p.specs[0].source, OutputSource::Output);
    }

    #[test]
    fn roles_select_and_rename() {
        let p = resolve(
            &sig(),
            &["tap1".into()],
            &[kv("logits=fc3"), kv("feat=tap1"), kv("emb=hidden")],
            &[kv("emb=mean")],
            "attention_mask",
        )
        .unwrap();
        let names: Vec<_> = p
            .specs
            .iter()
            .map(|s| (s.name.as_str(), s.tensor.as_str()))
            .collect();
        assert_eq!(
            names,
            [("logits", "fc3"), ("feat", "tap1"), ("emb", "hidden")]
        );
        assert_eq!(p.specs[2].pooling, Pooling::Mean);
        assert_eq!(p.mask_input.as_deref(), Some("attention_mask"));
        assert_eq!(p.tensors(), ["fc3", "tap1", "hidden"]);
    }

    #[test]
    fn bad_roles_are_explained() {
        let s = sig();
        assert!(resolve(&s, &[], &[kv("a=nope")], &[], "m")
            .unwrap_err()
            .contains("no output or tap"));
        assert!(resolve(&s, &[], &[kv("a=strs")], &[], "m")
            .unwrap_err()
            .contains("cannot be served"));
        assert!(resolve(&s, &[], &[kv("a=fc3"), kv("a=hidden")], &[], "m")
            .unwrap_err()
            .contains("distinct"));
        assert!(resolve(&s, &[], &[], &[kv("fc3=mean")], "attention_mask")
            .unwrap_err()
            .contains("3-D"));
        assert!(resolve(&s, &[], &[], &[kv("hidden=mean")], "mask")
            .unwrap_err()
            .contains("--mask-input"));
        assert!(resolve(&s, &[], &[], &[kv("hidden=max")], "mask")
            .unwrap_err()
            .contains("unknown pooling"));
        assert!(resolve(&s, &[], &[], &[kv("zzz=cls")], "mask")
            .unwrap_err()
            .contains("no stored output"));
        assert!(resolve(&s, &[], &[kv("id=fc3")], &[], "mask")
            .unwrap_err()
            .contains("\"id\""));
    }
}
