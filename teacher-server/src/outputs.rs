//! Which teacher outputs are served and stored, under which names, with which pooling
//! (`--output`, `--tap`, `--pool`, `--mask-input`), resolved once against the signature.

use std::str::FromStr;

use distill_proto::api::{OutputSource, OutputSpec, Pooling, UnknownPooling};
use distill_proto::store::TopK;
use distill_proto::DType;

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

    /// The stored names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.specs.iter().map(|s| s.name.as_str()).collect()
    }
}

/// `NAME=TENSOR`: store the graph output or tap `TENSOR` under the name `NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRole {
    /// Stored name (the role, e.g. `logits`).
    pub name: String,
    /// Graph tensor it comes from.
    pub tensor: String,
}

/// `NAME=mean|cls|none`: how the stored output `NAME` is pooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRule {
    /// Stored output name.
    pub output: String,
    /// The pooling.
    pub pooling: Pooling,
}

/// A `NAME=VALUE` rule that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// No `=`, or an empty side.
    #[error("expected NAME=VALUE, got {0:?}")]
    NotAPair(String),
    /// The value is not a pooling.
    #[error(transparent)]
    Pooling(#[from] UnknownPooling),
}

/// Splits `NAME=VALUE`, both sides trimmed and non-empty.
fn split_pair(s: &str) -> Result<(&str, &str), RuleError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => Ok((k.trim(), v.trim())),
        _ => Err(RuleError::NotAPair(s.to_string())),
    }
}

impl FromStr for OutputRole {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, tensor) = split_pair(s)?;
        Ok(Self {
            name: name.to_string(),
            tensor: tensor.to_string(),
        })
    }
}

impl FromStr for PoolRule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (output, pooling) = split_pair(s)?;
        Ok(Self {
            output: output.to_string(),
            pooling: pooling.parse()?,
        })
    }
}

/// Why the outputs cannot be served as asked; each names the flag and what was available.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A role names a tensor the model does not have.
    #[error("--output {name}={tensor}: the model has no output or tap {tensor:?} (available: {available})")]
    UnknownTensor {
        /// Stored name asked for.
        name: String,
        /// The missing tensor.
        tensor: String,
        /// The graph outputs, comma-separated.
        available: String,
    },
    /// A graph output of an element type the server cannot serve.
    #[error("output tensor {tensor:?} has type {ty}, which cannot be served (f32, f16, f64, i64, i32, bool)")]
    UnsupportedType {
        /// The tensor.
        tensor: String,
        /// Its type as ONNX Runtime names it.
        ty: String,
    },
    /// Nothing left to serve.
    #[error("the model has no output that can be served")]
    NoOutputs,
    /// An output would take the row id's column name.
    #[error("an output cannot be stored as \"id\" (the row id column); rename it with --output")]
    NamedId,
    /// Two outputs under one name.
    #[error("two outputs are stored as {0:?}; give them distinct names with --output")]
    DuplicateName(String),
    /// `--pool` names no stored output.
    #[error("--pool {output}: no stored output of that name (stored: {stored})")]
    UnknownPoolTarget {
        /// The name given.
        output: String,
        /// The stored names, comma-separated.
        stored: String,
    },
    /// Pooling an output that is not `[batch, seq, dim]`.
    #[error(
        "--pool {output}: pooling needs a 3-D output [batch, seq, dim], {tensor:?} has {rank} axes"
    )]
    PoolNeeds3d {
        /// Stored output name.
        output: String,
        /// Its graph tensor.
        tensor: String,
        /// Its rank.
        rank: usize,
    },
    /// Pooling a non-float output.
    #[error("--pool {output}: only float outputs can be pooled, this one is {dtype}")]
    PoolNotFloat {
        /// Stored output name.
        output: String,
        /// Its element type.
        dtype: DType,
    },
    /// `--logits-topk` names an output that is not served.
    #[error("--logits-topk applies to output {0:?}, which is not served (set --topk-output or --output {0}=TENSOR)")]
    TopKNotServed(String),
    /// `--logits-topk` on a non-float output.
    #[error("--logits-topk: output {output:?} is {dtype}, not float")]
    TopKNotFloat {
        /// Stored output name.
        output: String,
        /// Its element type.
        dtype: DType,
    },
    /// `--normalize` names no stored output.
    #[error("--normalize {output}: no stored output of that name (stored: {stored})")]
    UnknownNormalizeTarget {
        /// The name given.
        output: String,
        /// The stored names, comma-separated.
        stored: String,
    },
    /// Normalising a non-float output.
    #[error("--normalize {output}: only float outputs can be normalised, this one is {dtype}")]
    NormalizeNotFloat {
        /// Stored output name.
        output: String,
        /// Its element type.
        dtype: DType,
    },
    /// Mean pooling without the mask input.
    #[error("--pool {output}=mean needs the attention-mask input {mask_input:?}, which the model does not have (set --mask-input)")]
    MissingMask {
        /// Stored output name.
        output: String,
        /// The mask input looked for.
        mask_input: String,
    },
}

/// Resolves the output roles against the signature: which tensors are served under which
/// names, then the pooling of each.
pub fn resolve(
    sig: &Signature,
    tap_names: &[String],
    roles: &[OutputRole],
    pools: &[PoolRule],
    mask_input: &str,
) -> Result<OutputPlan, PlanError> {
    let mut specs = served_outputs(sig, tap_names, roles)?;
    check_names(&specs)?;
    let mask_input = apply_pooling(sig, &mut specs, pools, mask_input)?;
    Ok(OutputPlan { specs, mask_input })
}

/// Marks the `--normalize` outputs: scaled to unit L2 norm after pooling.
pub fn apply_normalize(plan: &mut OutputPlan, names: &[String]) -> Result<(), PlanError> {
    for name in names {
        let stored = plan.names().join(", ");
        let spec = plan
            .specs
            .iter_mut()
            .find(|s| &s.name == name)
            .ok_or_else(|| PlanError::UnknownNormalizeTarget {
                output: name.clone(),
                stored,
            })?;
        if !spec.dtype.is_float() {
            return Err(PlanError::NormalizeNotFloat {
                output: name.clone(),
                dtype: spec.dtype,
            });
        }
        spec.normalize = true;
    }
    Ok(())
}

/// The spec of one served output, `tensor` stored as `name`.
fn output_spec(
    sig: &Signature,
    tap_names: &[String],
    name: &str,
    tensor: &str,
) -> Result<OutputSpec, PlanError> {
    let Some(spec) = sig.output(tensor) else {
        if let Some((_, ty)) = sig.unsupported_outputs.iter().find(|(n, _)| n == tensor) {
            return Err(PlanError::UnsupportedType {
                tensor: tensor.to_string(),
                ty: ty.clone(),
            });
        }
        return Err(PlanError::UnknownTensor {
            name: name.to_string(),
            tensor: tensor.to_string(),
            available: sig
                .outputs
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
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
        normalize: false,
    })
}

/// The roles asked for (default: every graph output under its own name), then every tap not
/// already served.
fn served_outputs(
    sig: &Signature,
    tap_names: &[String],
    roles: &[OutputRole],
) -> Result<Vec<OutputSpec>, PlanError> {
    let mut specs: Vec<OutputSpec> = Vec::new();
    if roles.is_empty() {
        for s in &sig.outputs {
            if !tap_names.contains(&s.name) {
                specs.push(output_spec(sig, tap_names, &s.name, &s.name)?);
            }
        }
    } else {
        for r in roles {
            specs.push(output_spec(sig, tap_names, &r.name, &r.tensor)?);
        }
    }
    for tap in tap_names {
        if !specs.iter().any(|s| &s.tensor == tap) {
            specs.push(output_spec(sig, tap_names, tap, tap)?);
        }
    }
    if specs.is_empty() {
        return Err(PlanError::NoOutputs);
    }
    Ok(specs)
}

/// Stored names must be distinct and leave `id` to the row id.
fn check_names(specs: &[OutputSpec]) -> Result<(), PlanError> {
    for (i, s) in specs.iter().enumerate() {
        if s.name == "id" {
            return Err(PlanError::NamedId);
        }
        if specs[..i].iter().any(|o| o.name == s.name) {
            return Err(PlanError::DuplicateName(s.name.clone()));
        }
    }
    Ok(())
}

/// Sets the pooling of each named output; returns the mask input when some output is
/// mean-pooled.
fn apply_pooling(
    sig: &Signature,
    specs: &mut [OutputSpec],
    pools: &[PoolRule],
    mask_input: &str,
) -> Result<Option<String>, PlanError> {
    let mut mask = None;
    for p in pools {
        let stored = specs
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let spec = specs
            .iter_mut()
            .find(|s| s.name == p.output)
            .ok_or_else(|| PlanError::UnknownPoolTarget {
                output: p.output.clone(),
                stored,
            })?;
        if p.pooling != Pooling::None {
            if spec.shape.len() != 3 {
                return Err(PlanError::PoolNeeds3d {
                    output: p.output.clone(),
                    tensor: spec.tensor.clone(),
                    rank: spec.shape.len(),
                });
            }
            if !spec.dtype.is_float() {
                return Err(PlanError::PoolNotFloat {
                    output: p.output.clone(),
                    dtype: spec.dtype,
                });
            }
        }
        if p.pooling == Pooling::Mean {
            if sig.input(mask_input).is_none() {
                return Err(PlanError::MissingMask {
                    output: p.output.clone(),
                    mask_input: mask_input.to_string(),
                });
            }
            mask = Some(mask_input.to_string());
        }
        spec.pooling = p.pooling;
    }
    Ok(mask)
}

/// Top-K storage of the served float output `output`, when `k` is given.
pub fn topk(plan: &OutputPlan, output: &str, k: Option<usize>) -> Result<Option<TopK>, PlanError> {
    let Some(k) = k else {
        return Ok(None);
    };
    let spec = plan
        .specs
        .iter()
        .find(|s| s.name == output)
        .ok_or_else(|| PlanError::TopKNotServed(output.to_string()))?;
    if !spec.dtype.is_float() {
        return Err(PlanError::TopKNotFloat {
            output: spec.name.clone(),
            dtype: spec.dtype,
        });
    }
    Ok(Some(TopK {
        output: output.to_string(),
        k,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use distill_proto::api::{Dim, TensorSpec};

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

    fn kv(s: &str) -> OutputRole {
        s.parse().unwrap()
    }

    fn pool(s: &str) -> PoolRule {
        s.parse().unwrap()
    }

    /// `resolve`'s error as text, as the server prints it.
    fn err(r: Result<OutputPlan, PlanError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn key_value_parses_and_rejects() {
        let kv: OutputRole = "logits=fc3".parse().unwrap();
        assert_eq!((kv.name.as_str(), kv.tensor.as_str()), ("logits", "fc3"));
        assert!("logits".parse::<OutputRole>().is_err());
        assert!("=fc3".parse::<OutputRole>().is_err());
        assert!("logits=".parse::<OutputRole>().is_err());
        let p: PoolRule = " emb = mean ".parse().unwrap();
        assert_eq!((p.output.as_str(), p.pooling), ("emb", Pooling::Mean));
        assert!("emb".parse::<PoolRule>().is_err());
    }

    #[test]
    fn normalize_marks_float_outputs_by_name() {
        let mut p = resolve(&sig(), &[], &[], &[], "attention_mask").unwrap();
        apply_normalize(&mut p, &["fc3".into()]).unwrap();
        assert!(p.specs[0].normalize && !p.specs[1].normalize);
        let e = apply_normalize(&mut p, &["nope".into()]).unwrap_err();
        assert!(e.to_string().contains("--normalize nope"), "{e}");
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
            &[pool("emb=mean")],
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
        assert!(err(resolve(&s, &[], &[kv("a=nope")], &[], "m")).contains("no output or tap"));
        assert!(err(resolve(&s, &[], &[kv("a=strs")], &[], "m")).contains("cannot be served"));
        assert!(
            err(resolve(&s, &[], &[kv("a=fc3"), kv("a=hidden")], &[], "m")).contains("distinct")
        );
        assert!(err(resolve(&s, &[], &[], &[pool("fc3=mean")], "attention_mask")).contains("3-D"));
        assert!(err(resolve(&s, &[], &[], &[pool("hidden=mean")], "mask")).contains("--mask-input"));
        // A pooling name is refused when the flag is parsed, before resolving.
        assert!("hidden=max"
            .parse::<PoolRule>()
            .unwrap_err()
            .to_string()
            .contains("unknown pooling"));
        assert!(err(resolve(&s, &[], &[], &[pool("zzz=cls")], "mask")).contains("no stored output"));
        assert!(err(resolve(&s, &[], &[kv("id=fc3")], &[], "mask")).contains("\"id\""));
    }

    #[test]
    fn each_step_has_its_own_error() {
        let s = sig();
        assert_eq!(
            served_outputs(&s, &[], &[kv("a=nope")]),
            Err(PlanError::UnknownTensor {
                name: "a".into(),
                tensor: "nope".into(),
                available: "fc3, hidden, tap1".into(),
            })
        );
        let empty = Signature {
            inputs: vec![],
            outputs: vec![],
            unsupported_outputs: vec![],
        };
        assert_eq!(served_outputs(&empty, &[], &[]), Err(PlanError::NoOutputs));
        let specs = served_outputs(&s, &[], &[kv("id=fc3")]).unwrap();
        assert_eq!(check_names(&specs), Err(PlanError::NamedId));
        let int_out = Signature {
            outputs: vec![TensorSpec {
                dtype: DType::I64,
                ..spec("ids3", 3)
            }],
            ..s.clone()
        };
        let mut specs = served_outputs(&int_out, &[], &[]).unwrap();
        assert_eq!(
            apply_pooling(&int_out, &mut specs, &[pool("ids3=cls")], "attention_mask"),
            Err(PlanError::PoolNotFloat {
                output: "ids3".into(),
                dtype: DType::I64
            })
        );
        // `none` is accepted on any output and needs no mask.
        let mut specs = served_outputs(&s, &[], &[]).unwrap();
        assert_eq!(
            apply_pooling(&s, &mut specs, &[pool("fc3=none")], "nope"),
            Ok(None)
        );
        let mut specs = served_outputs(&s, &[], &[]).unwrap();
        assert_eq!(
            apply_pooling(&s, &mut specs, &[pool("hidden=cls")], "nope"),
            Ok(None)
        );
        assert_eq!(specs[1].pooling, Pooling::Cls);
    }

    #[test]
    fn topk_needs_a_served_float_output() {
        let mut p = resolve(&sig(), &[], &[kv("logits=fc3")], &[], "m").unwrap();
        assert_eq!(topk(&p, "logits", None), Ok(None));
        assert_eq!(
            topk(&p, "logits", Some(3)),
            Ok(Some(TopK {
                output: "logits".into(),
                k: 3
            }))
        );
        assert!(topk(&p, "nope", Some(3))
            .unwrap_err()
            .to_string()
            .contains("which is not served"));
        p.specs[0].dtype = DType::I64;
        assert_eq!(
            topk(&p, "logits", Some(3)),
            Err(PlanError::TopKNotFloat {
                output: "logits".into(),
                dtype: DType::I64
            })
        );
    }
}
