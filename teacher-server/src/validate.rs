//! Checks a decoded request against the model signature, the served outputs and the limits,
//! and puts its inputs into signature order. Nothing reaches the teacher or the store before
//! this has passed.

use std::collections::{HashMap, HashSet};

use arrow::array::ArrayRef;
use distill_proto::api::{dims_text, Dim};
use distill_proto::store::validate_dataset_name;
use distill_proto::{Tensor, TensorData};

use crate::decode::DecodedRequest;
use crate::error::ApiError;
use crate::outputs::OutputPlan;
use crate::teacher::Signature;

/// Limits a request must stay within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most rows per request.
    pub max_request_rows: usize,
    /// Accept NaN/Inf in float inputs.
    pub allow_non_finite: bool,
}

/// A request ready to score.
#[derive(Debug, Clone)]
pub struct ScoreJob {
    /// Dataset to store into.
    pub dataset: Option<String>,
    /// Row ids (required with a dataset).
    pub ids: Option<Vec<String>>,
    /// Inputs in signature order.
    pub inputs: Vec<(String, Tensor)>,
    /// Pass-through columns.
    pub columns: Vec<(String, ArrayRef)>,
    /// Outputs to echo back.
    pub return_outputs: Vec<String>,
    /// Rows in the batch.
    pub rows: usize,
}

/// Validates `req`; every failure names the field and what was expected.
pub fn validate(
    req: DecodedRequest,
    sig: &Signature,
    plan: &OutputPlan,
    limits: Limits,
) -> Result<ScoreJob, ApiError> {
    if let Some(name) = &req.dataset {
        validate_dataset_name(name)
            .map_err(|e| ApiError::invalid("invalid_dataset", "dataset", e.to_string()))?;
    }
    // Inputs: every declared one, no other, into signature order.
    let mut given: HashMap<String, Tensor> = HashMap::with_capacity(req.inputs.len());
    for (name, t) in req.inputs {
        if sig.input(&name).is_none() {
            let expected: Vec<_> = sig.inputs.iter().map(|s| s.name.as_str()).collect();
            return Err(ApiError::invalid(
                "unknown_input",
                format!("inputs.{name}"),
                format!("the model has no input {name:?}; its inputs are {expected:?}"),
            ));
        }
        given.insert(name, t);
    }
    let mut inputs = Vec::with_capacity(sig.inputs.len());
    for spec in &sig.inputs {
        let t = given.remove(&spec.name).ok_or_else(|| {
            ApiError::invalid(
                "missing_input",
                format!("inputs.{}", spec.name),
                format!(
                    "missing input {:?} ({} {})",
                    spec.name,
                    spec.dtype,
                    dims_text(&spec.shape)
                ),
            )
        })?;
        inputs.push((spec.name.clone(), t));
    }
    // Shapes: rank, fixed axes, and named dynamic axes that must agree across inputs.
    let mut rows: Option<(usize, &str)> = None;
    let mut symbols: HashMap<&str, (usize, &str)> = HashMap::new();
    for ((name, t), spec) in inputs.iter().zip(&sig.inputs) {
        let field = format!("inputs.{name}");
        if t.dtype() != spec.dtype {
            return Err(ApiError::invalid(
                "invalid_dtype",
                field,
                format!("got {} values, the model expects {}", t.dtype(), spec.dtype),
            ));
        }
        if t.shape().len() != spec.shape.len() {
            return Err(ApiError::invalid(
                "invalid_rank",
                field,
                format!(
                    "got rank {} (shape {:?}), expected rank {} {}",
                    t.shape().len(),
                    t.shape(),
                    spec.shape.len(),
                    dims_text(&spec.shape)
                ),
            ));
        }
        for (axis, (&got, want)) in t.shape().iter().zip(&spec.shape).enumerate() {
            match want {
                Dim::Fixed(n) if *n != got && !(axis == 0 && got == 0) => {
                    return Err(ApiError::invalid(
                        "invalid_shape",
                        field,
                        format!(
                            "axis {axis} has size {got}, expected {n} (shape {:?}, expected {})",
                            t.shape(),
                            dims_text(&spec.shape)
                        ),
                    ));
                }
                Dim::Dynamic(sym) if axis > 0 && sym != "?" && !sym.is_empty() => {
                    match symbols.get(sym.as_str()) {
                        Some(&(n, other)) if n != got => {
                            return Err(ApiError::invalid(
                                "invalid_shape",
                                field,
                                format!("axis {axis} ({sym}) has size {got}, but input {other:?} has {sym} = {n}"),
                            ));
                        }
                        _ => {
                            symbols.insert(sym.as_str(), (got, name.as_str()));
                        }
                    }
                }
                _ => {}
            }
        }
        let r = t.shape().first().copied().unwrap_or(0);
        match rows {
            Some((n, other)) if n != r => {
                return Err(ApiError::invalid(
                    "invalid_shape",
                    field,
                    format!("batch size {r} differs from input {other:?} with {n} rows"),
                ));
            }
            _ => rows = Some((r, name.as_str())),
        }
        if !limits.allow_non_finite {
            check_finite(&field, t.data())?;
        }
    }
    let rows = rows.map(|(n, _)| n).unwrap_or(0);
    if rows == 0 {
        return Err(ApiError::invalid(
            "empty_batch",
            "inputs",
            "the batch has no rows",
        ));
    }
    if rows > limits.max_request_rows {
        return Err(ApiError::TooManyRows {
            rows,
            limit: limits.max_request_rows,
        });
    }
    // Ids.
    match (&req.dataset, &req.ids) {
        (Some(_), None) => {
            return Err(ApiError::invalid(
                "missing_ids",
                "ids",
                "\"ids\" is required when a dataset is given (one per row)",
            ))
        }
        (_, Some(ids)) => {
            if ids.len() != rows {
                return Err(ApiError::invalid(
                    "invalid_ids",
                    "ids",
                    format!("{} ids for a batch of {rows} rows", ids.len()),
                ));
            }
            let mut seen = HashSet::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                if id.is_empty() {
                    return Err(ApiError::invalid(
                        "invalid_ids",
                        "ids",
                        format!("id {i} is empty"),
                    ));
                }
                if !seen.insert(id.as_str()) {
                    return Err(ApiError::invalid(
                        "duplicate_id",
                        "ids",
                        format!("id {id:?} appears more than once in the request"),
                    ));
                }
            }
        }
        (None, None) => {}
    }
    // Pass-through columns.
    for (name, col) in &req.columns {
        let field = format!("columns.{name}");
        if name == "id" || sig.input(name).is_some() || plan.has(name) {
            return Err(ApiError::invalid(
                "invalid_column",
                field,
                format!("column name {name:?} is taken by the id, an input or an output"),
            ));
        }
        if name.is_empty() {
            return Err(ApiError::invalid(
                "invalid_column",
                field,
                "column names cannot be empty",
            ));
        }
        if col.len() != rows {
            return Err(ApiError::invalid(
                "invalid_column",
                field,
                format!("{} values for a batch of {rows} rows", col.len()),
            ));
        }
    }
    // Outputs to echo.
    let return_outputs = match req.return_outputs {
        Some(names) => {
            for n in &names {
                if !plan.has(n) {
                    let served: Vec<_> = plan.specs.iter().map(|s| s.name.as_str()).collect();
                    return Err(ApiError::invalid(
                        "unknown_output",
                        "return",
                        format!("no output {n:?}; served outputs are {served:?}"),
                    ));
                }
            }
            names
        }
        None if req.dataset.is_some() => Vec::new(),
        None => plan.specs.iter().map(|s| s.name.clone()).collect(),
    };
    Ok(ScoreJob {
        dataset: req.dataset,
        ids: req.ids,
        inputs,
        columns: req.columns,
        return_outputs,
        rows,
    })
}

/// Refuses NaN and infinities (Arrow bodies can carry them; JSON ones are checked while parsing).
fn check_finite(field: &str, data: &TensorData) -> Result<(), ApiError> {
    let bad = match data {
        TensorData::F32(v) => v.iter().position(|x| !x.is_finite()),
        TensorData::F64(v) => v.iter().position(|x| !x.is_finite()),
        TensorData::F16(v) => v.iter().position(|x| !x.is_finite()),
        _ => None,
    };
    match bad {
        Some(i) => Err(ApiError::invalid(
            "non_finite",
            field,
            format!("element {i} (flat index) is NaN or infinite; finite values expected"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distill_proto::api::{OutputSource, OutputSpec, Pooling, TensorSpec};
    use distill_proto::DType;

    fn sig() -> Signature {
        let batch = || Dim::Dynamic("batch".into());
        let seq = || Dim::Dynamic("seq".into());
        Signature {
            inputs: vec![
                TensorSpec {
                    name: "ids".into(),
                    dtype: DType::I64,
                    shape: vec![batch(), seq()],
                },
                TensorSpec {
                    name: "mask".into(),
                    dtype: DType::I64,
                    shape: vec![batch(), seq()],
                },
                TensorSpec {
                    name: "x".into(),
                    dtype: DType::F32,
                    shape: vec![batch(), Dim::Fixed(2)],
                },
            ],
            outputs: vec![],
            unsupported_outputs: vec![],
        }
    }

    fn plan() -> OutputPlan {
        OutputPlan {
            specs: vec![OutputSpec {
                name: "logits".into(),
                tensor: "fc".into(),
                source: OutputSource::Output,
                dtype: DType::F32,
                shape: vec![],
                pooling: Pooling::None,
            }],
            mask_input: None,
        }
    }

    fn i64s(shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor::new(shape, TensorData::I64(vec![1; n])).unwrap()
    }

    fn f32s(shape: Vec<usize>, v: f32) -> Tensor {
        let n = shape.iter().product();
        Tensor::new(shape, TensorData::F32(vec![v; n])).unwrap()
    }

    fn req(rows: usize, seq: usize) -> DecodedRequest {
        DecodedRequest {
            inputs: vec![
                ("x".into(), f32s(vec![rows, 2], 0.5)),
                ("mask".into(), i64s(vec![rows, seq])),
                ("ids".into(), i64s(vec![rows, seq])),
            ],
            ..Default::default()
        }
    }

    const LIMITS: Limits = Limits {
        max_request_rows: 4,
        allow_non_finite: false,
    };

    fn code(r: Result<ScoreJob, ApiError>) -> (&'static str, Option<String>) {
        let e = r.unwrap_err();
        let (_, c, f) = e.parts();
        (c, f)
    }

    #[test]
    fn valid_request_is_ordered_and_defaults_return() {
        let job = validate(req(2, 3), &sig(), &plan(), LIMITS).unwrap();
        let names: Vec<_> = job.inputs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["ids", "mask", "x"]);
        assert_eq!(job.rows, 2);
        assert_eq!(job.return_outputs, ["logits"]);
        let mut r = req(2, 3);
        r.dataset = Some("d".into());
        r.ids = Some(vec!["a".into(), "b".into()]);
        assert!(validate(r, &sig(), &plan(), LIMITS)
            .unwrap()
            .return_outputs
            .is_empty());
    }

    #[test]
    fn input_errors() {
        let mut r = req(2, 3);
        r.inputs.pop();
        assert_eq!(
            code(validate(r, &sig(), &plan(), LIMITS)),
            ("missing_input", Some("inputs.ids".into()))
        );
        let mut r = req(2, 3);
        r.inputs[0].1 = f32s(vec![2, 3], 0.0);
        assert_eq!(
            code(validate(r, &sig(), &plan(), LIMITS)).0,
            "invalid_shape"
        );
        let mut r = req(2, 3);
        r.inputs[0].1 = f32s(vec![2], 0.0);
        assert_eq!(code(validate(r, &sig(), &plan(), LIMITS)).0, "invalid_rank");
        let mut r = req(2, 3);
        r.inputs[1].1 = i64s(vec![2, 4]);
        // `ids` comes first in the signature and fixes seq = 3; the mask disagrees.
        assert_eq!(
            code(validate(r, &sig(), &plan(), LIMITS)),
            ("invalid_shape", Some("inputs.mask".into()))
        );
        let mut r = req(2, 3);
        r.inputs[1].1 = i64s(vec![3, 3]);
        assert_eq!(
            code(validate(r, &sig(), &plan(), LIMITS)).0,
            "invalid_shape"
        );
        let mut r = req(2, 3);
        r.inputs[0].1 = f32s(vec![2, 2], f32::NAN);
        assert_eq!(
            code(validate(r, &sig(), &plan(), LIMITS)),
            ("non_finite", Some("inputs.x".into()))
        );
        let mut r = req(2, 3);
        r.inputs[1].1 = f32s(vec![2, 3], 0.0);
        assert_eq!(
            code(validate(r, &sig(), &plan(), LIMITS)).0,
            "invalid_dtype"
        );
        assert_eq!(
            code(validate(req(0, 3), &sig(), &plan(), LIMITS)).0,
            "empty_batch"
        );
        let e = validate(req(5, 3), &sig(), &plan(), LIMITS).unwrap_err();
        assert!(matches!(e, ApiError::TooManyRows { rows: 5, limit: 4 }));
    }

    #[test]
    fn id_dataset_column_and_return_errors() {
        let mut r = req(2, 3);
        r.dataset = Some("d".into());
        assert_eq!(code(validate(r, &sig(), &plan(), LIMITS)).0, "missing_ids");
        let mut r = req(2, 3);
        r.dataset = Some("../x".into());
        assert_eq!(
            code(validate(r, &sig(), &plan(), LIMITS)),
            ("invalid_dataset", Some("dataset".into()))
        );
        let mut r = req(2, 3);
        r.ids = Some(vec!["a".into()]);
        assert_eq!(code(validate(r, &sig(), &plan(), LIMITS)).0, "invalid_ids");
        let mut r = req(2, 3);
        r.ids = Some(vec!["a".into(), "a".into()]);
        assert_eq!(code(validate(r, &sig(), &plan(), LIMITS)).0, "duplicate_id");
        let mut r = req(2, 3);
        r.return_outputs = Some(vec!["nope".into()]);
        assert_eq!(
            code(validate(r, &sig(), &plan(), LIMITS)),
            ("unknown_output", Some("return".into()))
        );
        let mut r = req(2, 3);
        r.columns = vec![(
            "label".into(),
            std::sync::Arc::new(arrow::array::Int64Array::from(vec![1])) as ArrayRef,
        )];
        assert_eq!(
            code(validate(r, &sig(), &plan(), LIMITS)).0,
            "invalid_column"
        );
        let mut r = req(2, 3);
        r.columns = vec![(
            "logits".into(),
            std::sync::Arc::new(arrow::array::Int64Array::from(vec![1, 2])) as ArrayRef,
        )];
        assert_eq!(
            code(validate(r, &sig(), &plan(), LIMITS)).0,
            "invalid_column"
        );
    }
}
