//! Tensors written back as nested JSON arrays `[batch, ...]`, serialized straight from the flat
//! buffer (no intermediate `serde_json::Value`).

use distill_proto::{Tensor, TensorData};
use serde::ser::{Serialize, SerializeSeq, Serializer};

/// A tensor that serializes as nested arrays; f16 as its f32 value, NaN/Inf as `null`.
pub struct NestedTensor<'a>(pub &'a Tensor);

impl Serialize for NestedTensor<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Elements {
            data: self.0.data(),
            start: 0,
            shape: self.0.shape(),
        }
        .serialize(s)
    }
}

/// The sub-array at flat offset `start` with the given shape.
struct Elements<'a> {
    data: &'a TensorData,
    start: usize,
    shape: &'a [usize],
}

fn finite_or_none(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl Serialize for Elements<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some((&n, rest)) = self.shape.split_first() else {
            let i = self.start;
            return match self.data {
                TensorData::F32(v) => finite_or_none(v[i] as f64).map(|_| v[i]).serialize(s),
                TensorData::F16(v) => finite_or_none(v[i].to_f64())
                    .map(|_| v[i].to_f32())
                    .serialize(s),
                TensorData::F64(v) => finite_or_none(v[i]).serialize(s),
                TensorData::I64(v) => v[i].serialize(s),
                TensorData::I32(v) => v[i].serialize(s),
                TensorData::Bool(v) => v[i].serialize(s),
            };
        };
        let stride: usize = rest.iter().product();
        let mut seq = s.serialize_seq(Some(n))?;
        for k in 0..n {
            seq.serialize_element(&Elements {
                data: self.data,
                start: self.start + k * stride,
                shape: rest,
            })?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    fn json(t: &Tensor) -> String {
        serde_json::to_string(&NestedTensor(t)).unwrap()
    }

    #[test]
    fn nests_by_shape() {
        let t = Tensor::new(vec![2, 3], TensorData::F32(vec![1., 2., 3., 4., 5., 6.5])).unwrap();
        assert_eq!(json(&t), "[[1.0,2.0,3.0],[4.0,5.0,6.5]]");
        let t = Tensor::new(vec![2, 1, 2], TensorData::I64(vec![1, 2, 3, 4])).unwrap();
        assert_eq!(json(&t), "[[[1,2]],[[3,4]]]");
        let t = Tensor::new(vec![2], TensorData::Bool(vec![true, false])).unwrap();
        assert_eq!(json(&t), "[true,false]");
        let t = Tensor::new(
            vec![1, 2],
            TensorData::F16(vec![f16::from_f32(0.5), f16::INFINITY]),
        )
        .unwrap();
        assert_eq!(json(&t), "[[0.5,null]]");
        let t = Tensor::new(vec![2, 0], TensorData::F64(vec![])).unwrap();
        assert_eq!(json(&t), "[[],[]]");
    }
}
