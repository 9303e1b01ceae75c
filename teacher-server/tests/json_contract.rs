//! The streaming JSON decoder and serde agree on `ScoreRequest`: any request serialised by
//! serde decodes through `decode::json` to exactly what serde itself reads back (as tensors),
//! and both refuse the same unknown or missing fields. Requests come from a small seeded
//! generator, so a failure names the seed that reproduces it.

use std::collections::BTreeMap;

use distill_proto::api::{Dim, ScoreRequest, TensorSpec};
use distill_proto::{DType, NamedTensors, Tensor, TensorData};
use half::f16;
use serde_json::{json, Value};
use teacher_server::decode::json::decode;
use teacher_server::decode::{json_column, DecodeOptions, DecodedRequest};
use teacher_server::teacher::Signature;

/// SplitMix64: small, seeded, good enough to spread test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `(-scale, scale)`.
    fn signed(&mut self, scale: f64) -> f64 {
        let x = self.unit() * scale;
        if self.coin() {
            -x
        } else {
            x
        }
    }
}

const DTYPES: [DType; 6] = [
    DType::F32,
    DType::F16,
    DType::F64,
    DType::I64,
    DType::I32,
    DType::Bool,
];

/// One JSON element an input of `dtype` accepts: integers and floats of every magnitude
/// the type holds (floats as serde writes them, integers as JSON integers).
fn element(rng: &mut Rng, dtype: DType) -> Value {
    match dtype {
        DType::Bool => json!(rng.coin()),
        DType::I64 => json!(rng.next() as i64 >> rng.below(63)),
        DType::I32 => json!((rng.next() as i32) >> rng.below(31)),
        DType::F16 => match rng.below(3) {
            0 => json!(rng.below(2049) as i64 - 1024),
            _ => json!(rng.signed(60000.0)),
        },
        DType::F32 => match rng.below(4) {
            0 => json!(rng.next() as i64 >> rng.below(63)),
            1 => json!(rng.signed(3.0e38)),
            2 => json!(rng.signed(1e-30)),
            _ => json!(rng.signed(1.0)),
        },
        DType::F64 => match rng.below(4) {
            0 => json!(rng.next() >> rng.below(64)),
            1 => json!(rng.signed(1e308)),
            2 => json!(rng.signed(1e-300)),
            _ => json!(rng.signed(1e3)),
        },
    }
}

/// A nested array of `shape` filled with elements of `dtype`.
fn nested(rng: &mut Rng, dtype: DType, shape: &[usize]) -> Value {
    match shape.split_first() {
        None => element(rng, dtype),
        Some((&n, rest)) => Value::Array((0..n).map(|_| nested(rng, dtype, rest)).collect()),
    }
}

/// `rows` values of one JSON type, as a pass-through column takes them.
fn column(rng: &mut Rng, rows: usize) -> Vec<Value> {
    let kind = rng.below(4);
    (0..rows)
        .map(|i| match kind {
            0 => json!(rng.next() as i64 >> 3),
            1 if rng.coin() => json!(i),
            1 => json!(rng.unit() * 100.0),
            2 => json!(format!("s{}-\u{e9}\"{}", i, rng.below(9))),
            _ => json!(rng.coin()),
        })
        .collect()
}

/// A model signature and a request that fits its dtypes and ranks.
fn case(seed: u64) -> (Signature, ScoreRequest) {
    let mut rng = Rng(seed);
    let names = ["x", "input_ids", "attention_mask", "pixels"];
    let n_inputs = 1 + rng.below(3);
    let rows = 1 + rng.below(4);
    let mut specs = Vec::new();
    let mut inputs = BTreeMap::new();
    for name in names.iter().take(n_inputs) {
        let dtype = DTYPES[rng.below(DTYPES.len())];
        let rank = 1 + rng.below(3);
        let mut shape = vec![rows];
        shape.extend((1..rank).map(|_| 1 + rng.below(3)));
        specs.push(TensorSpec {
            name: name.to_string(),
            dtype,
            shape: std::iter::once(Dim::Dynamic("batch".into()))
                .chain(shape[1..].iter().map(|&d| Dim::Fixed(d)))
                .collect(),
        });
        inputs.insert(name.to_string(), nested(&mut rng, dtype, &shape));
    }
    let dataset = rng.coin().then(|| format!("set-{}", rng.below(100)));
    let ids = rng
        .coin()
        .then(|| (0..rows).map(|i| format!("id-{i}")).collect());
    let columns = (0..rng.below(3))
        .map(|c| (format!("col{c}"), column(&mut rng, rows)))
        .collect();
    let return_outputs = rng
        .coin()
        .then(|| (0..rng.below(3)).map(|i| format!("out{i}")).collect());
    let sig = Signature {
        inputs: specs,
        outputs: vec![],
        unsupported_outputs: vec![],
    };
    let req = ScoreRequest {
        dataset,
        ids,
        inputs,
        columns,
        return_outputs,
    };
    (sig, req)
}

/// Shape of a nested array, from the first element of each level.
fn shape_of(v: &Value, rank: usize) -> Vec<usize> {
    let mut shape = Vec::with_capacity(rank);
    let mut cur = v;
    for _ in 0..rank {
        let items = cur.as_array().expect("generated arrays are regular");
        shape.push(items.len());
        match items.first() {
            Some(first) => cur = first,
            None => break,
        }
    }
    shape
}

fn leaves<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| leaves(i, out)),
        other => out.push(other),
    }
}

/// What serde's reading of the request means as tensors: the reference the streaming
/// decoder must match, element for element.
fn reference(sig: &Signature, req: ScoreRequest) -> DecodedRequest {
    let mut inputs = NamedTensors::new();
    for (name, value) in &req.inputs {
        let spec = sig.input(name).expect("generated inputs are declared");
        let mut flat = Vec::new();
        leaves(value, &mut flat);
        let num = |v: &Value| v.as_f64().expect("a number");
        let data = match spec.dtype {
            DType::F32 => TensorData::F32(flat.iter().map(|v| num(v) as f32).collect()),
            DType::F16 => TensorData::F16(flat.iter().map(|v| f16::from_f64(num(v))).collect()),
            DType::F64 => TensorData::F64(flat.iter().map(|v| num(v)).collect()),
            DType::I64 => TensorData::I64(flat.iter().map(|v| v.as_i64().unwrap()).collect()),
            DType::I32 => TensorData::I32(
                flat.iter()
                    .map(|v| i32::try_from(v.as_i64().unwrap()).unwrap())
                    .collect(),
            ),
            DType::Bool => TensorData::Bool(flat.iter().map(|v| v.as_bool().unwrap()).collect()),
        };
        let t = Tensor::new(shape_of(value, spec.shape.len()), data).unwrap();
        inputs.push(name.clone(), t);
    }
    DecodedRequest {
        dataset: req.dataset,
        ids: req.ids,
        inputs,
        columns: req
            .columns
            .iter()
            .map(|(n, v)| (n.clone(), json_column(n, v).unwrap()))
            .collect(),
        return_outputs: req.return_outputs,
        text: None,
    }
}

#[test]
fn every_serialised_request_decodes_as_serde_reads_it() {
    for seed in 0..400u64 {
        let (sig, req) = case(seed);
        let body = if seed % 3 == 0 {
            serde_json::to_vec_pretty(&req).unwrap()
        } else {
            serde_json::to_vec(&req).unwrap()
        };
        // The reference is serde's reading of the same bytes (not `req` itself: serde_json's
        // default float parsing may land one ulp off the value it wrote).
        let by_serde: ScoreRequest = serde_json::from_slice(&body).unwrap();
        let streamed = decode(&body, &sig, DecodeOptions::default())
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", String::from_utf8_lossy(&body)));
        assert_eq!(
            streamed,
            reference(&sig, by_serde),
            "seed {seed}\n{}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[test]
fn both_refuse_unknown_fields_and_a_missing_inputs_object() {
    let (sig, req) = case(7);
    let base = serde_json::to_value(&req).unwrap();
    for extra in ["bogus", "input", "Inputs", "returns", "id"] {
        let mut v = base.clone();
        v[extra] = json!(1);
        let body = serde_json::to_vec(&v).unwrap();
        assert!(
            serde_json::from_slice::<ScoreRequest>(&body).is_err(),
            "serde accepts {extra:?}"
        );
        let e = decode(&body, &sig, DecodeOptions::default()).unwrap_err();
        assert_eq!((e.code, e.field.as_str()), ("unknown_field", extra));
    }
    let mut v = base.clone();
    v.as_object_mut()
        .unwrap()
        .remove(ScoreRequest::FIELD_INPUTS);
    let body = serde_json::to_vec(&v).unwrap();
    assert!(serde_json::from_slice::<ScoreRequest>(&body).is_err());
    let e = decode(&body, &sig, DecodeOptions::default()).unwrap_err();
    assert_eq!(
        (e.code, e.field.as_str()),
        ("missing_field", ScoreRequest::FIELD_INPUTS)
    );
    // Every optional field may be left out, by both.
    for field in ScoreRequest::FIELDS {
        if field == ScoreRequest::FIELD_INPUTS {
            continue;
        }
        let mut v = base.clone();
        v.as_object_mut().unwrap().remove(field);
        let body = serde_json::to_vec(&v).unwrap();
        let by_serde: ScoreRequest = serde_json::from_slice(&body).unwrap();
        let streamed = decode(&body, &sig, DecodeOptions::default()).unwrap();
        assert_eq!(streamed, reference(&sig, by_serde), "without {field}");
    }
}
