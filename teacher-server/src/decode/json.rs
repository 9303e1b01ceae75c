//! The JSON body of `POST /v1/score`, parsed in one pass straight into typed flat buffers:
//! nested arrays are never built as `serde_json::Value`, and each input is read with the
//! element type the model declares, so a wrong type, a ragged array or a non-finite float is
//! caught at the element that holds it. The field names are those of
//! [`ScoreRequest`] (its `FIELD_*` constants); a test holds the two decoders equal.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use distill_proto::api::{ScoreRequest, TensorSpec};
use distill_proto::{DType, NamedTensors, Tensor, TensorData};
use half::f16;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{json_column, DecodeOptions, DecodedRequest};
use crate::error::InvalidInput;
use crate::teacher::Signature;
use crate::text::TEXT_INPUT;

/// Shared parse state: the first structured error wins over serde's generic message.
struct Ctx<'a> {
    sig: &'a Signature,
    opts: DecodeOptions,
    error: RefCell<Option<InvalidInput>>,
    field: RefCell<String>,
}

impl Ctx<'_> {
    /// Records a structured error and returns serde's error to unwind with.
    fn fail<E: de::Error>(&self, e: InvalidInput) -> E {
        let msg = e.message.clone();
        let mut slot = self.error.borrow_mut();
        if slot.is_none() {
            *slot = Some(e);
        }
        E::custom(msg)
    }

    fn set_field(&self, f: &str) {
        let mut cur = self.field.borrow_mut();
        cur.clear();
        cur.push_str(f);
    }
}

/// Decodes a JSON score request, reading inputs with the dtypes of `sig`.
pub fn decode(
    body: &[u8],
    sig: &Signature,
    opts: DecodeOptions,
) -> Result<DecodedRequest, InvalidInput> {
    let ctx = Ctx {
        sig,
        opts,
        error: RefCell::new(None),
        field: RefCell::new("body".into()),
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = RequestSeed { ctx: &ctx }
        .deserialize(&mut de)
        .and_then(|r| de.end().map(|()| r));
    match parsed {
        Ok(raw) => raw.finish(),
        Err(e) => Err(ctx.error.borrow_mut().take().unwrap_or_else(|| {
            InvalidInput::new(
                "invalid_json",
                ctx.field.borrow().clone(),
                format!("malformed JSON: {e}"),
            )
        })),
    }
}

/// The request's fields as parsed, before columns become Arrow arrays.
#[derive(Default)]
struct RawRequest {
    dataset: Option<String>,
    ids: Option<Vec<String>>,
    inputs: Option<(NamedTensors, Option<Vec<String>>)>,
    columns: BTreeMap<String, Vec<serde_json::Value>>,
    return_outputs: Option<Vec<String>>,
}

impl RawRequest {
    fn finish(self) -> Result<DecodedRequest, InvalidInput> {
        let (inputs, text) = self.inputs.ok_or_else(|| {
            InvalidInput::new(
                "missing_field",
                ScoreRequest::FIELD_INPUTS,
                format!(
                    "the request has no {:?} object (one nested array per model input)",
                    ScoreRequest::FIELD_INPUTS
                ),
            )
        })?;
        let mut columns = Vec::with_capacity(self.columns.len());
        for (name, values) in &self.columns {
            columns.push((name.clone(), json_column(name, values)?));
        }
        Ok(DecodedRequest {
            dataset: self.dataset,
            ids: self.ids,
            inputs,
            columns,
            return_outputs: self.return_outputs,
            text,
        })
    }
}

struct RequestSeed<'c, 'a> {
    ctx: &'c Ctx<'a>,
}

impl<'de> DeserializeSeed<'de> for RequestSeed<'_, '_> {
    type Value = RawRequest;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawRequest, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RequestSeed<'_, '_> {
    type Value = RawRequest;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object with \"inputs\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRequest, A::Error> {
        let ctx = self.ctx;
        let mut req = RawRequest::default();
        let mut seen: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let key = key.into_owned();
            if seen.contains(&key) {
                return Err(ctx.fail(InvalidInput::new(
                    "duplicate_field",
                    key.clone(),
                    format!("field {key:?} appears twice"),
                )));
            }
            ctx.set_field(&key);
            match key.as_str() {
                ScoreRequest::FIELD_DATASET => req.dataset = map.next_value()?,
                ScoreRequest::FIELD_IDS => req.ids = map.next_value()?,
                ScoreRequest::FIELD_INPUTS => {
                    req.inputs = Some(map.next_value_seed(InputsSeed { ctx })?)
                }
                ScoreRequest::FIELD_COLUMNS => {
                    req.columns = map
                        .next_value::<Option<BTreeMap<String, Vec<serde_json::Value>>>>()?
                        .unwrap_or_default()
                }
                ScoreRequest::FIELD_RETURN => req.return_outputs = map.next_value()?,
                other => {
                    return Err(ctx.fail(InvalidInput::new(
                        "unknown_field",
                        other,
                        format!("unknown field {other:?}; expected {}", expected_fields()),
                    )))
                }
            }
            seen.push(key);
        }
        ctx.set_field("body");
        Ok(req)
    }
}

/// `dataset, ids, inputs, columns or return`.
fn expected_fields() -> String {
    let fields = ScoreRequest::FIELDS;
    match fields.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => fields.join(", "),
    }
}

struct InputsSeed<'c, 'a> {
    ctx: &'c Ctx<'a>,
}

impl<'de> DeserializeSeed<'de> for InputsSeed<'_, '_> {
    type Value = (NamedTensors, Option<Vec<String>>);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for InputsSeed<'_, '_> {
    type Value = (NamedTensors, Option<Vec<String>>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object mapping input names to nested arrays")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        let mut out = NamedTensors::new();
        let mut text = None;
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let name = name.into_owned();
            let field = format!("{}.{name}", ScoreRequest::FIELD_INPUTS);
            if ctx.opts.text && name == TEXT_INPUT {
                if text.is_some() {
                    return Err(ctx.fail(InvalidInput::new(
                        "duplicate_field",
                        field,
                        format!("input {name:?} appears twice"),
                    )));
                }
                ctx.set_field(&field);
                text = Some(map.next_value_seed(TextSeed { ctx, field: &field })?);
                continue;
            }
            let Some(spec) = ctx.sig.input(&name) else {
                let expected: Vec<_> = ctx.sig.inputs.iter().map(|s| s.name.as_str()).collect();
                return Err(ctx.fail(InvalidInput::new(
                    "unknown_input",
                    field,
                    format!("the model has no input {name:?}; its inputs are {expected:?}"),
                )));
            };
            if out.contains(&name) {
                return Err(ctx.fail(InvalidInput::new(
                    "duplicate_field",
                    field,
                    format!("input {name:?} appears twice"),
                )));
            }
            ctx.set_field(&field);
            let t = map.next_value_seed(TensorSeed {
                ctx,
                spec,
                field: &field,
            })?;
            out.push(name, t);
        }
        Ok((out, text))
    }
}

/// Reads a text teacher's `inputs.text`: a list of strings, one per row.
struct TextSeed<'c, 'a, 's> {
    ctx: &'c Ctx<'a>,
    field: &'s str,
}

impl<'de> DeserializeSeed<'de> for TextSeed<'_, '_, '_> {
    type Value = Vec<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextSeed<'_, '_, '_> {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of strings, one per row")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element::<serde_json::Value>()? {
            match v {
                serde_json::Value::String(s) => out.push(s),
                other => {
                    return Err(self.ctx.fail(InvalidInput::new(
                        "invalid_text",
                        self.field,
                        format!(
                            "row {} is {other}, expected a string (one text per row)",
                            out.len()
                        ),
                    )))
                }
            }
        }
        Ok(out)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(self.ctx.fail(InvalidInput::new(
            "invalid_text",
            self.field,
            "expected a list of strings, one per row, got a single string (wrap it in [ ])",
        )))
    }
}

/// Reads one nested array of the input's rank and dtype into a flat buffer.
struct TensorSeed<'c, 'a, 's> {
    ctx: &'c Ctx<'a>,
    spec: &'s TensorSpec,
    field: &'s str,
}

/// Running state of one tensor parse.
struct State<'c, 'a, 's> {
    ctx: &'c Ctx<'a>,
    field: &'s str,
    rank: usize,
    dtype: DType,
    /// Length of each axis, fixed by the first array met at that depth.
    shape: Vec<Option<usize>>,
    /// Index path of the element being read (for error messages).
    pos: Vec<usize>,
    data: TensorData,
}

impl State<'_, '_, '_> {
    fn at(&self) -> String {
        self.pos.iter().map(|i| format!("[{i}]")).collect()
    }

    fn fail<E: de::Error>(&self, code: &'static str, message: String) -> E {
        self.ctx.fail(InvalidInput::new(code, self.field, message))
    }

    fn wrong_type<E: de::Error>(&self, got: &str) -> E {
        let what = match self.dtype {
            DType::Bool => "true or false".to_string(),
            DType::I64 | DType::I32 => format!("an integer ({})", self.dtype),
            _ => format!("a finite number ({})", self.dtype),
        };
        self.fail(
            "invalid_dtype",
            format!("element {} is {got}, expected {what}", self.at()),
        )
    }

    fn push_f64<E: de::Error>(&mut self, x: f64, literal: &dyn fmt::Display) -> Result<(), E> {
        let finite_ok = self.ctx.opts.allow_non_finite;
        let overflow = |s: &Self| -> E {
            s.fail(
                "non_finite",
                format!(
                    "element {} = {literal} is not a finite {} value",
                    s.at(),
                    s.dtype
                ),
            )
        };
        match &mut self.data {
            TensorData::F32(v) => {
                let y = x as f32;
                if !y.is_finite() && !finite_ok {
                    return Err(overflow(self));
                }
                v.push(y);
            }
            TensorData::F64(v) => {
                if !x.is_finite() && !finite_ok {
                    return Err(overflow(self));
                }
                v.push(x);
            }
            TensorData::F16(v) => {
                let y = f16::from_f64(x);
                if !y.is_finite() && !finite_ok {
                    return Err(overflow(self));
                }
                v.push(y);
            }
            TensorData::I64(_) | TensorData::I32(_) => {
                return Err(self.wrong_type(&format!("the non-integer number {literal}")))
            }
            TensorData::Bool(_) => return Err(self.wrong_type(&format!("the number {literal}"))),
        }
        Ok(())
    }

    fn push_int<E: de::Error>(&mut self, x: i128) -> Result<(), E> {
        match &mut self.data {
            TensorData::I64(v) => match i64::try_from(x) {
                Ok(y) => v.push(y),
                Err(_) => {
                    return Err(self.fail(
                        "invalid_dtype",
                        format!("element {} = {x} does not fit i64", self.at()),
                    ))
                }
            },
            TensorData::I32(v) => match i32::try_from(x) {
                Ok(y) => v.push(y),
                Err(_) => {
                    return Err(self.fail(
                        "invalid_dtype",
                        format!("element {} = {x} does not fit i32", self.at()),
                    ))
                }
            },
            TensorData::Bool(_) => return Err(self.wrong_type(&format!("the number {x}"))),
            _ => return self.push_f64(x as f64, &x),
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for TensorSeed<'_, '_, '_> {
    type Value = Tensor;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Tensor, D::Error> {
        let rank = self.spec.shape.len();
        if rank == 0 {
            return Err(self.ctx.fail(InvalidInput::new(
                "invalid_rank",
                self.field,
                "the model declares this input as a scalar, which cannot be batched",
            )));
        }
        let mut st = State {
            ctx: self.ctx,
            field: self.field,
            rank,
            dtype: self.spec.dtype,
            shape: vec![None; rank],
            pos: Vec::with_capacity(rank),
            data: TensorData::with_capacity(self.spec.dtype, 0),
        };
        NestedSeed {
            st: &mut st,
            depth: 0,
        }
        .deserialize(d)?;
        let shape: Vec<usize> = st.shape.iter().map(|d| d.unwrap_or(0)).collect();
        Tensor::new(shape, st.data).map_err(|e| {
            self.ctx.fail(InvalidInput::new(
                "ragged_array",
                self.field,
                format!("the nested arrays do not form a tensor: {e}"),
            ))
        })
    }
}

/// An array at `depth` (axis `depth` of the tensor).
struct NestedSeed<'t, 'c, 'a, 's> {
    st: &'t mut State<'c, 'a, 's>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for NestedSeed<'_, '_, '_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl NestedSeed<'_, '_, '_, '_> {
    fn not_array<E: de::Error>(self, got: &str) -> E {
        let st = &*self.st;
        let msg = if self.depth == 0 {
            format!(
                "expected a nested array of rank {} ([batch, ...]), got {got}",
                st.rank
            )
        } else {
            format!(
                "element {} is {got}, but the input has rank {}: expected an array there",
                st.at(),
                st.rank
            )
        };
        st.fail("invalid_rank", msg)
    }
}

impl<'de> Visitor<'de> for NestedSeed<'_, '_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a nested array of rank {}", self.st.rank)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.depth;
        let st = self.st;
        let mut count = 0usize;
        st.pos.push(0);
        if depth + 1 == st.rank {
            while seq
                .next_element_seed(ScalarSeed { st: &mut *st })?
                .is_some()
            {
                count += 1;
                if let Some(p) = st.pos.last_mut() {
                    *p = count;
                }
            }
        } else {
            while seq
                .next_element_seed(NestedSeed {
                    st: &mut *st,
                    depth: depth + 1,
                })?
                .is_some()
            {
                count += 1;
                if let Some(p) = st.pos.last_mut() {
                    *p = count;
                }
            }
        }
        st.pos.pop();
        match st.shape[depth] {
            None => st.shape[depth] = Some(count),
            Some(n) if n != count => {
                let msg = format!(
                    "ragged array: axis {depth} has length {n} elsewhere but {count} at {}",
                    if st.pos.is_empty() {
                        "the top".to_string()
                    } else {
                        format!("element {}", st.at())
                    }
                );
                return Err(st.fail("ragged_array", msg));
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        Err(self.not_array(&format!("the boolean {v}")))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        Err(self.not_array(&format!("the number {v}")))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        Err(self.not_array(&format!("the number {v}")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        Err(self.not_array(&format!("the number {v}")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        Err(self.not_array(&format!("the string {v:?}")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_array("null"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        Err(self.not_array("an object"))
    }
}

/// One element of the innermost axis.
struct ScalarSeed<'t, 'c, 'a, 's> {
    st: &'t mut State<'c, 'a, 's>,
}

impl<'de> DeserializeSeed<'de> for ScalarSeed<'_, '_, '_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed<'_, '_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a {} value", self.st.dtype)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        match &mut self.st.data {
            TensorData::Bool(b) => {
                b.push(v);
                Ok(())
            }
            _ => Err(self.st.wrong_type(&format!("the boolean {v}"))),
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.st.push_int(v as i128)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.st.push_int(v as i128)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.st.push_f64(v, &v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        Err(self.st.wrong_type(&format!("the string {v:?}")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.st.wrong_type("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<(), A::Error> {
        let st = &*self.st;
        Err(st.fail(
            "invalid_rank",
            format!(
                "element {} is an array, but the input has rank {}: expected a {} value there",
                st.at(),
                st.rank,
                st.dtype
            ),
        ))
    }
    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        Err(self.st.wrong_type("an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distill_proto::api::Dim;

    fn sig(dtype: DType, rank: usize) -> Signature {
        let mut shape = vec![Dim::Dynamic("batch".into())];
        shape.extend((1..rank).map(|_| Dim::Dynamic("?".into())));
        Signature {
            inputs: vec![TensorSpec {
                name: "x".into(),
                dtype,
                shape,
            }],
            outputs: vec![],
            unsupported_outputs: vec![],
        }
    }

    fn dec(dtype: DType, rank: usize, body: &str) -> Result<DecodedRequest, InvalidInput> {
        decode(body.as_bytes(), &sig(dtype, rank), DecodeOptions::default())
    }

    fn tensor(dtype: DType, rank: usize, inputs: &str) -> Result<Tensor, InvalidInput> {
        let r = dec(dtype, rank, &format!(r#"{{"inputs": {{"x": {inputs}}}}}"#))?;
        Ok(r.inputs.into_iter().next().unwrap().1)
    }

    #[test]
    fn every_dtype_decodes() {
        let t = tensor(DType::F32, 2, "[[1, 2.5], [-3, 4e2]]").unwrap();
        assert_eq!(t.shape(), &[2, 2]);
        assert_eq!(t.data(), &TensorData::F32(vec![1.0, 2.5, -3.0, 400.0]));
        let t = tensor(DType::F64, 1, "[0.1, 2]").unwrap();
        assert_eq!(t.data(), &TensorData::F64(vec![0.1, 2.0]));
        let t = tensor(DType::F16, 1, "[0.5, 2]").unwrap();
        assert_eq!(
            t.data(),
            &TensorData::F16(vec![f16::from_f32(0.5), f16::from_f32(2.0)])
        );
        let t = tensor(DType::I64, 2, "[[1, -2, 9007199254740993]]").unwrap();
        assert_eq!(t.data(), &TensorData::I64(vec![1, -2, 9007199254740993]));
        let t = tensor(DType::I32, 1, "[7, -8]").unwrap();
        assert_eq!(t.data(), &TensorData::I32(vec![7, -8]));
        let t = tensor(DType::Bool, 2, "[[true], [false]]").unwrap();
        assert_eq!(t.shape(), &[2, 1]);
        assert_eq!(t.data(), &TensorData::Bool(vec![true, false]));
        let t = tensor(DType::F32, 3, "[[[1], [2]], [[3], [4]]]").unwrap();
        assert_eq!(t.shape(), &[2, 2, 1]);
    }

    #[test]
    fn wrong_dtypes_are_named() {
        let e = tensor(DType::I64, 1, "[1, 2.5]").unwrap_err();
        assert_eq!((e.code, e.field.as_str()), ("invalid_dtype", "inputs.x"));
        assert!(
            e.message.contains("[1]") && e.message.contains("i64"),
            "{}",
            e.message
        );
        assert_eq!(
            tensor(DType::I64, 1, "[1.0]").unwrap_err().code,
            "invalid_dtype"
        );
        assert_eq!(
            tensor(DType::I32, 1, "[3000000000]").unwrap_err().code,
            "invalid_dtype"
        );
        assert_eq!(
            tensor(DType::I64, 1, "[18446744073709551615]")
                .unwrap_err()
                .code,
            "invalid_dtype"
        );
        assert_eq!(
            tensor(DType::Bool, 1, "[1]").unwrap_err().code,
            "invalid_dtype"
        );
        assert_eq!(
            tensor(DType::F32, 1, "[true]").unwrap_err().code,
            "invalid_dtype"
        );
        assert_eq!(
            tensor(DType::F32, 1, "[null]").unwrap_err().code,
            "invalid_dtype"
        );
        let e = tensor(DType::F32, 1, r#"[1, "NaN"]"#).unwrap_err();
        assert_eq!(e.code, "invalid_dtype");
        assert!(e.message.contains("\"NaN\""));
    }

    #[test]
    fn non_finite_floats_are_refused() {
        let e = tensor(DType::F32, 1, "[1e39]").unwrap_err();
        assert_eq!((e.code, e.field.as_str()), ("non_finite", "inputs.x"));
        assert_eq!(
            tensor(DType::F16, 1, "[70000]").unwrap_err().code,
            "non_finite"
        );
        // 1e999 overflows f64: serde_json refuses it; the error still names the input.
        let e = tensor(DType::F64, 1, "[1e999]").unwrap_err();
        assert_eq!(e.field, "inputs.x");
        let allow = DecodeOptions {
            allow_non_finite: true,
            ..DecodeOptions::default()
        };
        let r = decode(br#"{"inputs": {"x": [1e39]}}"#, &sig(DType::F32, 1), allow).unwrap();
        assert_eq!(r.inputs[0].1.data(), &TensorData::F32(vec![f32::INFINITY]));
    }

    #[test]
    fn ragged_and_rank_errors() {
        let e = tensor(DType::F32, 2, "[[1, 2], [3]]").unwrap_err();
        assert_eq!(e.code, "ragged_array");
        assert!(e.message.contains("axis 1"), "{}", e.message);
        assert_eq!(
            tensor(DType::F32, 2, "[[1, 2], []]").unwrap_err().code,
            "ragged_array"
        );
        assert_eq!(
            tensor(DType::F32, 3, "[[[1]], [[1], [2]]]")
                .unwrap_err()
                .code,
            "ragged_array"
        );
        assert_eq!(
            tensor(DType::F32, 2, "[1, 2]").unwrap_err().code,
            "invalid_rank"
        );
        assert_eq!(
            tensor(DType::F32, 2, "[[[1]]]").unwrap_err().code,
            "invalid_rank"
        );
        assert_eq!(tensor(DType::F32, 1, "5").unwrap_err().code, "invalid_rank");
        assert_eq!(
            tensor(DType::F32, 2, "[[1], 2]").unwrap_err().code,
            "invalid_rank"
        );
        assert_eq!(
            tensor(DType::F32, 1, "{}").unwrap_err().code,
            "invalid_rank"
        );
        let t = tensor(DType::F32, 2, "[]").unwrap();
        assert_eq!(t.shape(), &[0, 0]);
    }

    #[test]
    fn request_level_errors() {
        let e = dec(DType::F32, 1, r#"{"inputs": {"y": [1]}}"#).unwrap_err();
        assert_eq!((e.code, e.field.as_str()), ("unknown_input", "inputs.y"));
        let e = dec(DType::F32, 1, r#"{"inputs": {"x": [1]}, "bogus": 1}"#).unwrap_err();
        assert_eq!((e.code, e.field.as_str()), ("unknown_field", "bogus"));
        let e = dec(DType::F32, 1, r#"{"inputs": {"x": [1]"#).unwrap_err();
        assert_eq!(e.code, "invalid_json");
        let e = dec(DType::F32, 1, r#"{"dataset": "d"}"#).unwrap_err();
        assert_eq!((e.code, e.field.as_str()), ("missing_field", "inputs"));
        let e = dec(DType::F32, 1, r#"{"inputs": {"x": [1]}, "ids": [1]}"#).unwrap_err();
        assert_eq!((e.code, e.field.as_str()), ("invalid_json", "ids"));
        let e = dec(DType::F32, 1, r#"{"inputs": {"x": [1], "x": [2]}}"#).unwrap_err();
        assert_eq!(e.code, "duplicate_field");
        assert_eq!(dec(DType::F32, 1, "[]").unwrap_err().code, "invalid_json");
        assert_eq!(
            dec(DType::F32, 1, r#"{"inputs": {"x": [1]}} x"#)
                .unwrap_err()
                .code,
            "invalid_json"
        );
    }

    #[test]
    fn unknown_field_message_lists_the_request_fields() {
        assert_eq!(expected_fields(), "dataset, ids, inputs, columns or return");
    }

    #[test]
    fn full_request_decodes() {
        let r = dec(
            DType::F32,
            2,
            r#"{"dataset": "d", "ids": ["a", "b"], "inputs": {"x": [[1], [2]]},
                "columns": {"label": [5, 6]}, "return": ["logits"]}"#,
        )
        .unwrap();
        assert_eq!(r.dataset.as_deref(), Some("d"));
        assert_eq!(r.ids.unwrap(), ["a", "b"]);
        assert_eq!(r.columns.len(), 1);
        assert_eq!(r.return_outputs.unwrap(), ["logits"]);
    }
}
