//! Checks a decoded request against the model signature, the served outputs and the limits,
//! and puts its inputs into signature order. Nothing reaches the teacher or the store before
//! this has passed.

use std::collections::{HashMap, HashSet};

use arrow::array::ArrayRef;
use distill_proto::api::{dims_text, Dim, TensorSpec};
use distill_proto::store::{validate_dataset_name, TokenRows, MAX_ID_BYTES};
use distill_proto::{NamedTensors, Tensor, TensorData};

use crate::decode::DecodedRequest;
use crate::error::ApiError;
use crate::outputs::OutputPlan;
use crate::teacher::Signature;
use crate::text::{TextFront, TEXT_INPUT};

/// Limits a request must stay within.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most rows per request.
    pub max_request_rows: usize,
    /// Accept NaN/Inf in float inputs.
    pub allow_non_finite: bool,
    /// Most input elements per request, summed over its inputs (a text request: its padded
    /// token grid).
    pub max_request_elements: usize,
    /// Largest size of each capped dynamic axis, by symbol (`--max-dim`).
    pub max_dims: Vec<(String, usize)>,
}

impl Limits {
    /// The cap on the dynamic axis `symbol`, if any.
    fn dim_cap(&self, symbol: &str) -> Option<usize> {
        self.max_dims
            .iter()
            .find(|(s, _)| s == symbol)
            .map(|&(_, n)| n)
    }
}

/// A request ready to score.
#[derive(Debug, Clone)]
pub struct ScoreJob {
    /// Dataset to store into.
    pub dataset: Option<String>,
    /// Row ids (required with a dataset).
    pub ids: Option<Vec<String>>,
    /// Inputs in signature order.
    pub inputs: NamedTensors,
    /// Pass-through columns.
    pub columns: Vec<(String, ArrayRef)>,
    /// Outputs to echo back.
    pub return_outputs: Vec<String>,
    /// Rows in the batch.
    pub rows: usize,
    /// A text teacher's token rows (then `inputs` is empty).
    pub tokens: Option<TokenRows>,
}

/// Validates `req`; every failure names the field and what was expected. The steps run in
/// this order, so a request with several faults is told about the first one.
pub fn validate(
    req: DecodedRequest,
    sig: &Signature,
    plan: &OutputPlan,
    limits: &Limits,
) -> Result<ScoreJob, ApiError> {
    if let Some(name) = &req.dataset {
        check_dataset(name)?;
    }
    let inputs = order_inputs(req.inputs, sig)?;
    let rows = check_shapes(&inputs, sig, limits)?;
    check_ids(req.dataset.is_some(), req.ids.as_deref(), rows)?;
    check_columns(&req.columns, sig, plan, rows)?;
    let return_outputs = outputs_to_return(req.return_outputs, req.dataset.is_some(), plan)?;
    Ok(ScoreJob {
        dataset: req.dataset,
        ids: req.ids,
        inputs,
        columns: req.columns,
        return_outputs,
        rows,
        tokens: None,
    })
}

/// Validates a text teacher's request: its text (tokenized here) or the token ids it sent
/// instead (checked against the signature as in [`validate`], padding stripped), then ids,
/// columns and outputs as in [`validate`]. With `truncate`, token ids sent over the length in
/// force are cut to it instead of refused.
pub fn validate_text(
    req: DecodedRequest,
    front: &TextFront,
    sig: &Signature,
    plan: &OutputPlan,
    limits: &Limits,
    truncate: bool,
) -> Result<ScoreJob, ApiError> {
    if let Some(name) = &req.dataset {
        check_dataset(name)?;
    }
    let tokens = match req.text {
        Some(_) if !req.inputs.is_empty() => {
            return Err(ApiError::invalid(
                "ambiguous_inputs",
                "inputs",
                format!(
                    "send either {TEXT_INPUT:?} or the token inputs ({:?}), not both",
                    req.inputs.names().collect::<Vec<_>>()
                ),
            ))
        }
        Some(text) => {
            check_rows(text.len(), limits)?;
            front.encode(text)?
        }
        None => {
            let inputs = order_inputs(req.inputs, sig)?;
            check_shapes(&inputs, sig, limits)?;
            front.rows_from_tensors(&inputs, truncate)?
        }
    };
    check_token_grid(&tokens, token_symbol(front, sig), limits)?;
    let rows = tokens.len();
    check_ids(req.dataset.is_some(), req.ids.as_deref(), rows)?;
    check_columns(&req.columns, sig, plan, rows)?;
    let return_outputs = outputs_to_return(req.return_outputs, req.dataset.is_some(), plan)?;
    Ok(ScoreJob {
        dataset: req.dataset,
        ids: req.ids,
        inputs: NamedTensors::new(),
        columns: req.columns,
        return_outputs,
        rows,
        tokens: Some(tokens),
    })
}

/// The symbol of the token axis of a text teacher's ids input (`[batch, SYMBOL]`), if named.
fn token_symbol<'a>(front: &TextFront, sig: &'a Signature) -> Option<&'a str> {
    match sig.input(&front.layout.ids)?.shape.get(1)? {
        Dim::Dynamic(s) if s != "?" && !s.is_empty() => Some(s.as_str()),
        _ => None,
    }
}

/// A text request's token rows (after truncation) within the token axis' cap and the
/// element limit: the batcher pads a run to its longest row, so the grid is rows x longest.
pub fn check_token_grid(
    tokens: &TokenRows,
    symbol: Option<&str>,
    limits: &Limits,
) -> Result<(), ApiError> {
    let longest = tokens.ids.iter().map(Vec::len).max().unwrap_or(0);
    if let Some((sym, cap)) = symbol.and_then(|s| limits.dim_cap(s).map(|c| (s, c))) {
        if let Some(row) = tokens.ids.iter().position(|r| r.len() > cap) {
            return Err(ApiError::DimTooLarge {
                field: "inputs".into(),
                message: format!(
                    "row {row} has {} tokens after truncation, more than --max-dim {sym}={cap} (lower --max-seq-len or send shorter text)",
                    tokens.ids[row].len()
                ),
            });
        }
    }
    check_elements(tokens.len().saturating_mul(longest), limits)
}

/// At most `--max-request-elements` input elements.
fn check_elements(elements: usize, limits: &Limits) -> Result<(), ApiError> {
    if elements > limits.max_request_elements {
        return Err(ApiError::TooManyElements {
            elements,
            limit: limits.max_request_elements,
        });
    }
    Ok(())
}

/// The dataset name is one the store can hold.
fn check_dataset(name: &str) -> Result<(), ApiError> {
    validate_dataset_name(name)
        .map_err(|e| ApiError::invalid("invalid_dataset", "dataset", e.to_string()))
}

/// Every declared input, no other, put into signature order.
fn order_inputs(given: NamedTensors, sig: &Signature) -> Result<NamedTensors, ApiError> {
    let mut given: HashMap<String, Tensor> = given
        .into_iter()
        .map(|(name, t)| {
            if sig.input(&name).is_none() {
                let expected: Vec<_> = sig.inputs.iter().map(|s| s.name.as_str()).collect();
                return Err(ApiError::invalid(
                    "unknown_input",
                    format!("inputs.{name}"),
                    format!("the model has no input {name:?}; its inputs are {expected:?}"),
                ));
            }
            Ok((name, t))
        })
        .collect::<Result<_, _>>()?;
    let mut inputs = NamedTensors::with_capacity(sig.inputs.len());
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
        inputs.push(spec.name.clone(), t);
    }
    Ok(inputs)
}

/// Sizes of named dynamic axes seen so far: symbol → (size, input that fixed it).
type Symbols<'a> = HashMap<&'a str, (usize, &'a str)>;

/// Checks each input (in signature order) against its spec, then the batch size against the
/// limits; returns the batch size.
fn check_shapes(
    inputs: &NamedTensors,
    sig: &Signature,
    limits: &Limits,
) -> Result<usize, ApiError> {
    let mut rows: Option<(usize, &str)> = None;
    let mut symbols = Symbols::new();
    let mut elements = 0usize;
    for ((name, t), spec) in inputs.iter().zip(&sig.inputs) {
        let field = format!("inputs.{name}");
        check_dtype(&field, t, spec)?;
        check_rank(&field, t, spec)?;
        check_axes(&field, name, t, spec, &mut symbols)?;
        check_dim_caps(&field, t, spec, limits)?;
        rows = Some(check_batch(&field, name, t, rows)?);
        elements = elements.saturating_add(t.shape().iter().product::<usize>());
        if !limits.allow_non_finite {
            check_finite(&field, t.data())?;
        }
    }
    let rows = rows.map(|(n, _)| n).unwrap_or(0);
    check_rows(rows, limits)?;
    check_elements(elements, limits)?;
    Ok(rows)
}

/// Every capped dynamic axis (`--max-dim SYMBOL=N`) within its cap, the batch axis included.
fn check_dim_caps(
    field: &str,
    t: &Tensor,
    spec: &TensorSpec,
    limits: &Limits,
) -> Result<(), ApiError> {
    for (axis, (&got, want)) in t.shape().iter().zip(&spec.shape).enumerate() {
        if let Dim::Dynamic(sym) = want {
            if let Some(cap) = limits.dim_cap(sym) {
                if got > cap {
                    return Err(ApiError::DimTooLarge {
                        field: field.to_string(),
                        message: format!(
                            "axis {axis} ({sym}) has size {got}, more than --max-dim {sym}={cap}"
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The element type is the one the model declares.
fn check_dtype(field: &str, t: &Tensor, spec: &TensorSpec) -> Result<(), ApiError> {
    if t.dtype() != spec.dtype {
        return Err(ApiError::invalid(
            "invalid_dtype",
            field,
            format!("got {} values, the model expects {}", t.dtype(), spec.dtype),
        ));
    }
    Ok(())
}

/// The rank is the one the model declares.
fn check_rank(field: &str, t: &Tensor, spec: &TensorSpec) -> Result<(), ApiError> {
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
    Ok(())
}

/// Fixed axes have their size (an empty batch aside), and a named dynamic axis past the
/// batch axis has the same size in every input that shares the name.
fn check_axes<'a>(
    field: &str,
    name: &'a str,
    t: &Tensor,
    spec: &'a TensorSpec,
    symbols: &mut Symbols<'a>,
) -> Result<(), ApiError> {
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
                        symbols.insert(sym.as_str(), (got, name));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The batch size of this input agrees with the inputs before it; returns it with this
/// input's name, for the next one's message.
fn check_batch<'a>(
    field: &str,
    name: &'a str,
    t: &Tensor,
    before: Option<(usize, &'a str)>,
) -> Result<(usize, &'a str), ApiError> {
    let r = t.shape().first().copied().unwrap_or(0);
    match before {
        Some((n, other)) if n != r => Err(ApiError::invalid(
            "invalid_shape",
            field,
            format!("batch size {r} differs from input {other:?} with {n} rows"),
        )),
        _ => Ok((r, name)),
    }
}

/// At least one row, at most the request limit.
fn check_rows(rows: usize, limits: &Limits) -> Result<(), ApiError> {
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
    Ok(())
}

/// Ids are required with a dataset; when given, one non-empty, unique id per row.
fn check_ids(has_dataset: bool, ids: Option<&[String]>, rows: usize) -> Result<(), ApiError> {
    let Some(ids) = ids else {
        if has_dataset {
            return Err(ApiError::invalid(
                "missing_ids",
                "ids",
                "\"ids\" is required when a dataset is given (one per row)",
            ));
        }
        return Ok(());
    };
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
        // The store refuses these too, but only after inference has been spent on them.
        if id.len() > MAX_ID_BYTES {
            return Err(ApiError::invalid(
                "invalid_ids",
                "ids",
                format!(
                    "id {i} is {} bytes long, at most {MAX_ID_BYTES} allowed",
                    id.len()
                ),
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
    Ok(())
}

/// Pass-through columns have free, non-empty names and one value per row.
fn check_columns(
    columns: &[(String, ArrayRef)],
    sig: &Signature,
    plan: &OutputPlan,
    rows: usize,
) -> Result<(), ApiError> {
    for (name, col) in columns {
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
    Ok(())
}

/// The outputs to echo: those asked for (each must be served), else none when storing and
/// all otherwise.
fn outputs_to_return(
    asked: Option<Vec<String>>,
    has_dataset: bool,
    plan: &OutputPlan,
) -> Result<Vec<String>, ApiError> {
    match asked {
        Some(names) => {
            if let Some(n) = names.iter().find(|n| !plan.has(n)) {
                return Err(ApiError::invalid(
                    "unknown_output",
                    "return",
                    format!("no output {n:?}; served outputs are {:?}", plan.names()),
                ));
            }
            Ok(names)
        }
        None if has_dataset => Ok(Vec::new()),
        None => Ok(plan.specs.iter().map(|s| s.name.clone()).collect()),
    }
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
                normalize: false,
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
            ]
            .into(),
            ..Default::default()
        }
    }

    const LIMITS: Limits = Limits {
        max_request_rows: 4,
        allow_non_finite: false,
        max_request_elements: 1 << 20,
        max_dims: Vec::new(),
    };

    fn code(r: Result<ScoreJob, ApiError>) -> (&'static str, Option<String>) {
        let e = r.unwrap_err();
        let (_, c, f) = e.parts();
        (c, f)
    }

    #[test]
    fn valid_request_is_ordered_and_defaults_return() {
        let job = validate(req(2, 3), &sig(), &plan(), &LIMITS).unwrap();
        let names: Vec<_> = job.inputs.names().collect();
        assert_eq!(names, ["ids", "mask", "x"]);
        assert_eq!(job.rows, 2);
        assert_eq!(job.return_outputs, ["logits"]);
        let mut r = req(2, 3);
        r.dataset = Some("d".into());
        r.ids = Some(vec!["a".into(), "b".into()]);
        assert!(validate(r, &sig(), &plan(), &LIMITS)
            .unwrap()
            .return_outputs
            .is_empty());
    }

    #[test]
    fn input_errors() {
        let mut r = req(2, 3);
        r.inputs.remove("ids");
        assert_eq!(
            code(validate(r, &sig(), &plan(), &LIMITS)),
            ("missing_input", Some("inputs.ids".into()))
        );
        let mut r = req(2, 3);
        r.inputs[0].1 = f32s(vec![2, 3], 0.0);
        assert_eq!(
            code(validate(r, &sig(), &plan(), &LIMITS)).0,
            "invalid_shape"
        );
        let mut r = req(2, 3);
        r.inputs[0].1 = f32s(vec![2], 0.0);
        assert_eq!(
            code(validate(r, &sig(), &plan(), &LIMITS)).0,
            "invalid_rank"
        );
        let mut r = req(2, 3);
        r.inputs[1].1 = i64s(vec![2, 4]);
        // `ids` comes first in the signature and fixes seq = 3; the mask disagrees.
        assert_eq!(
            code(validate(r, &sig(), &plan(), &LIMITS)),
            ("invalid_shape", Some("inputs.mask".into()))
        );
        let mut r = req(2, 3);
        r.inputs[1].1 = i64s(vec![3, 3]);
        assert_eq!(
            code(validate(r, &sig(), &plan(), &LIMITS)).0,
            "invalid_shape"
        );
        let mut r = req(2, 3);
        r.inputs[0].1 = f32s(vec![2, 2], f32::NAN);
        assert_eq!(
            code(validate(r, &sig(), &plan(), &LIMITS)),
            ("non_finite", Some("inputs.x".into()))
        );
        let mut r = req(2, 3);
        r.inputs[1].1 = f32s(vec![2, 3], 0.0);
        assert_eq!(
            code(validate(r, &sig(), &plan(), &LIMITS)).0,
            "invalid_dtype"
        );
        assert_eq!(
            code(validate(req(0, 3), &sig(), &plan(), &LIMITS)).0,
            "empty_batch"
        );
        let e = validate(req(5, 3), &sig(), &plan(), &LIMITS).unwrap_err();
        assert!(matches!(e, ApiError::TooManyRows { rows: 5, limit: 4 }));
    }

    #[test]
    fn id_dataset_column_and_return_errors() {
        let mut r = req(2, 3);
        r.dataset = Some("d".into());
        assert_eq!(code(validate(r, &sig(), &plan(), &LIMITS)).0, "missing_ids");
        let mut r = req(2, 3);
        r.dataset = Some("../x".into());
        assert_eq!(
            code(validate(r, &sig(), &plan(), &LIMITS)),
            ("invalid_dataset", Some("dataset".into()))
        );
        let mut r = req(2, 3);
        r.ids = Some(vec!["a".into()]);
        assert_eq!(code(validate(r, &sig(), &plan(), &LIMITS)).0, "invalid_ids");
        let mut r = req(2, 3);
        r.ids = Some(vec!["a".into(), "a".into()]);
        assert_eq!(
            code(validate(r, &sig(), &plan(), &LIMITS)).0,
            "duplicate_id"
        );
        let mut r = req(2, 3);
        r.return_outputs = Some(vec!["nope".into()]);
        assert_eq!(
            code(validate(r, &sig(), &plan(), &LIMITS)),
            ("unknown_output", Some("return".into()))
        );
        let mut r = req(2, 3);
        r.columns = vec![(
            "label".into(),
            std::sync::Arc::new(arrow::array::Int64Array::from(vec![1])) as ArrayRef,
        )];
        assert_eq!(
            code(validate(r, &sig(), &plan(), &LIMITS)).0,
            "invalid_column"
        );
        let mut r = req(2, 3);
        r.columns = vec![(
            "logits".into(),
            std::sync::Arc::new(arrow::array::Int64Array::from(vec![1, 2])) as ArrayRef,
        )];
        assert_eq!(
            code(validate(r, &sig(), &plan(), &LIMITS)).0,
            "invalid_column"
        );
    }

    fn err_code(r: Result<impl std::fmt::Debug, ApiError>) -> (&'static str, Option<String>) {
        let e = r.unwrap_err();
        let (_, c, f) = e.parts();
        (c, f)
    }

    #[test]
    fn order_step_sorts_and_names_strays() {
        let ordered = order_inputs(req(1, 2).inputs, &sig()).unwrap();
        assert_eq!(ordered.names().collect::<Vec<_>>(), ["ids", "mask", "x"]);
        let mut stray = req(1, 2).inputs;
        stray.push("extra", f32s(vec![1, 2], 0.0));
        assert_eq!(
            err_code(order_inputs(stray, &sig())),
            ("unknown_input", Some("inputs.extra".into()))
        );
        let mut short = req(1, 2).inputs;
        short.remove("mask");
        let e = order_inputs(short, &sig()).unwrap_err();
        assert!(e.to_string().contains("[batch, seq]"), "{e}");
    }

    #[test]
    fn shape_steps_one_by_one() {
        let s = sig();
        let x = &s.inputs[2];
        assert!(check_dtype("f", &f32s(vec![1, 2], 0.0), x).is_ok());
        assert_eq!(
            err_code(check_dtype("f", &i64s(vec![1, 2]), x)).0,
            "invalid_dtype"
        );
        assert_eq!(
            err_code(check_rank("f", &f32s(vec![1], 0.0), x)).0,
            "invalid_rank"
        );
        // A fixed axis must match, except an empty batch on axis 0.
        let mut symbols = Symbols::new();
        assert_eq!(
            err_code(check_axes(
                "f",
                "x",
                &f32s(vec![1, 3], 0.0),
                x,
                &mut symbols
            ))
            .0,
            "invalid_shape"
        );
        assert!(check_axes("f", "x", &f32s(vec![0, 2], 0.0), x, &mut symbols).is_ok());
        // A named dynamic axis is fixed by the first input that has it.
        let (ids, mask) = (&s.inputs[0], &s.inputs[1]);
        assert!(check_axes("f", "ids", &i64s(vec![2, 5]), ids, &mut symbols).is_ok());
        assert_eq!(symbols.get("seq"), Some(&(5, "ids")));
        let e =
            check_axes("inputs.mask", "mask", &i64s(vec![2, 4]), mask, &mut symbols).unwrap_err();
        assert!(e.to_string().contains("input \"ids\" has seq = 5"), "{e}");
        // The batch axis is not a shared symbol here: rows are checked separately.
        assert_eq!(
            check_batch("f", "a", &i64s(vec![3, 1]), None).unwrap(),
            (3, "a")
        );
        assert_eq!(
            check_batch("f", "b", &i64s(vec![3, 1]), Some((3, "a"))).unwrap(),
            (3, "b")
        );
        let e = check_batch("f", "c", &i64s(vec![2, 1]), Some((3, "b"))).unwrap_err();
        assert!(
            e.to_string()
                .contains("differs from input \"b\" with 3 rows"),
            "{e}"
        );
        assert!(check_rows(4, &LIMITS).is_ok());
        assert_eq!(err_code(check_rows(0, &LIMITS)).0, "empty_batch");
        assert!(matches!(
            check_rows(5, &LIMITS),
            Err(ApiError::TooManyRows { rows: 5, limit: 4 })
        ));
        assert_eq!(
            err_code(check_finite(
                "f",
                &TensorData::F16(vec![half::f16::INFINITY])
            ))
            .0,
            "non_finite"
        );
        assert!(check_finite("f", &TensorData::I64(vec![i64::MAX])).is_ok());
    }

    #[test]
    fn id_step() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_ids(false, None, 3).is_ok());
        assert_eq!(err_code(check_ids(true, None, 3)).0, "missing_ids");
        assert!(check_ids(true, Some(&ids(&["a", "b"])), 2).is_ok());
        assert_eq!(
            err_code(check_ids(false, Some(&ids(&["a"])), 2)).0,
            "invalid_ids"
        );
        assert_eq!(
            err_code(check_ids(false, Some(&ids(&["a", ""])), 2)).0,
            "invalid_ids"
        );
        assert_eq!(
            err_code(check_ids(false, Some(&ids(&["a", "a"])), 2)).0,
            "duplicate_id"
        );
    }

    #[test]
    fn column_step() {
        let col = |name: &str, n: usize| {
            (
                name.to_string(),
                std::sync::Arc::new(arrow::array::Int64Array::from(vec![0; n])) as ArrayRef,
            )
        };
        assert!(check_columns(&[col("label", 2)], &sig(), &plan(), 2).is_ok());
        for taken in ["id", "mask", "logits", ""] {
            assert_eq!(
                err_code(check_columns(&[col(taken, 2)], &sig(), &plan(), 2)),
                ("invalid_column", Some(format!("columns.{taken}"))),
                "{taken:?}"
            );
        }
        assert_eq!(
            err_code(check_columns(&[col("label", 1)], &sig(), &plan(), 2)).0,
            "invalid_column"
        );
    }

    #[test]
    fn return_step() {
        let p = plan();
        assert_eq!(outputs_to_return(None, false, &p).unwrap(), ["logits"]);
        assert!(outputs_to_return(None, true, &p).unwrap().is_empty());
        assert_eq!(
            outputs_to_return(Some(vec!["logits".into()]), true, &p).unwrap(),
            ["logits"]
        );
        let e =
            outputs_to_return(Some(vec!["logits".into(), "nope".into()]), false, &p).unwrap_err();
        assert!(
            e.to_string().contains("served outputs are [\"logits\"]"),
            "{e}"
        );
    }

    #[test]
    fn elements_and_dim_caps_are_refused_before_the_queue() {
        // 2 rows x (3 + 3 + 2) elements = 16.
        let mut l = LIMITS;
        l.max_request_elements = 16;
        assert!(validate(req(2, 3), &sig(), &plan(), &l).is_ok());
        l.max_request_elements = 15;
        let e = validate(req(2, 3), &sig(), &plan(), &l).unwrap_err();
        assert!(
            matches!(
                e,
                ApiError::TooManyElements {
                    elements: 16,
                    limit: 15
                }
            ),
            "{e}"
        );
        assert_eq!(e.parts().0.as_u16(), 413);
        let mut l = LIMITS;
        l.max_dims = vec![("seq".into(), 3)];
        assert!(validate(req(2, 3), &sig(), &plan(), &l).is_ok());
        let e = validate(req(2, 4), &sig(), &plan(), &l).unwrap_err();
        assert_eq!(e.parts().1, "dim_too_large");
        assert_eq!(e.parts().2.as_deref(), Some("inputs.ids"));
        assert!(e.to_string().contains("--max-dim seq=3"), "{e}");
    }

    #[test]
    fn token_grids_are_capped_after_truncation() {
        let rows = |lens: &[usize]| TokenRows {
            text: None,
            ids: lens.iter().map(|&n| vec![1u32; n]).collect(),
            type_ids: None,
        };
        let mut l = LIMITS;
        l.max_request_elements = 12;
        l.max_dims = vec![("seq".into(), 5)];
        // 3 rows padded to 4 = 12 elements.
        assert!(check_token_grid(&rows(&[1, 4, 2]), Some("seq"), &l).is_ok());
        let e = check_token_grid(&rows(&[1, 5, 2]), Some("seq"), &l).unwrap_err();
        assert!(
            matches!(e, ApiError::TooManyElements { elements: 15, .. }),
            "{e}"
        );
        let e = check_token_grid(&rows(&[6]), Some("seq"), &l).unwrap_err();
        assert_eq!(e.parts().1, "dim_too_large");
        assert!(e.to_string().contains("row 0 has 6 tokens"), "{e}");
        // Without a named token axis only the element limit applies.
        assert!(check_token_grid(&rows(&[6]), None, &l).is_ok());
    }

    #[test]
    fn ids_over_the_store_limit_are_refused_here() {
        let long = "x".repeat(MAX_ID_BYTES + 1);
        let e = check_ids(true, Some(&[long]), 1).unwrap_err();
        assert_eq!(e.parts().1, "invalid_ids");
        assert!(e.to_string().contains("at most 1024"), "{e}");
        assert!(check_ids(true, Some(&["x".repeat(MAX_ID_BYTES)]), 1).is_ok());
    }
}
