//! Dense row-major tensors of the element types ONNX models exchange.

use half::f16;
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;

/// Element type of a tensor, named as in the HTTP API and the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// 64-bit float.
    F64,
    /// 64-bit signed integer (token ids).
    I64,
    /// 32-bit signed integer.
    I32,
    /// Boolean.
    Bool,
}

impl DType {
    /// The name used in the API, the manifest and error messages.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::Bool => "bool",
        }
    }

    /// Whether values of this type can be NaN or infinite.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::F64)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The elements of a tensor, one variant per [`DType`].
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// f32 elements.
    F32(Vec<f32>),
    /// f16 elements.
    F16(Vec<f16>),
    /// f64 elements.
    F64(Vec<f64>),
    /// i64 elements.
    I64(Vec<i64>),
    /// i32 elements.
    I32(Vec<i32>),
    /// bool elements.
    Bool(Vec<bool>),
}

impl TensorData {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F16(_) => DType::F16,
            TensorData::F64(_) => DType::F64,
            TensorData::I64(_) => DType::I64,
            TensorData::I32(_) => DType::I32,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F16(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty buffer of the given type with room for `capacity` elements.
    pub fn with_capacity(dtype: DType, capacity: usize) -> Self {
        match dtype {
            DType::F32 => TensorData::F32(Vec::with_capacity(capacity)),
            DType::F16 => TensorData::F16(Vec::with_capacity(capacity)),
            DType::F64 => TensorData::F64(Vec::with_capacity(capacity)),
            DType::I64 => TensorData::I64(Vec::with_capacity(capacity)),
            DType::I32 => TensorData::I32(Vec::with_capacity(capacity)),
            DType::Bool => TensorData::Bool(Vec::with_capacity(capacity)),
        }
    }
}

/// Errors building or combining tensors.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TensorError {
    /// The element count does not match the product of the shape.
    #[error("shape {shape:?} needs {expected} elements, got {got}")]
    ShapeMismatch {
        /// The shape given.
        shape: Vec<usize>,
        /// Product of the shape.
        expected: usize,
        /// Elements supplied.
        got: usize,
    },
    /// Tensors to be concatenated or split disagree.
    #[error("{0}")]
    Incompatible(String),
}

/// A dense row-major tensor; axis 0 is the batch axis wherever batches are involved.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

impl Tensor {
    /// Builds a tensor, checking that the element count fits the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Self, TensorError> {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(TensorError::ShapeMismatch {
                shape,
                expected,
                got: data.len(),
            });
        }
        Ok(Self { shape, data })
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// Takes the elements out.
    pub fn into_parts(self) -> (Vec<usize>, TensorData) {
        (self.shape, self.data)
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Rows along axis 0 (1 for a scalar).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Elements per row: the product of all axes but the first.
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Concatenates tensors along axis 0; all other axes and the dtype must agree. Takes
    /// tensors or references to them, so callers need not clone the parts first.
    pub fn concat_rows<T: std::borrow::Borrow<Tensor>>(parts: &[T]) -> Result<Tensor, TensorError> {
        let first = parts
            .first()
            .map(Borrow::borrow)
            .ok_or_else(|| TensorError::Incompatible("nothing to concatenate".into()))?;
        let tail = &first.shape[1.min(first.shape.len())..];
        let mut rows = 0;
        for p in parts {
            let p: &Tensor = p.borrow();
            if p.dtype() != first.dtype() || p.shape.is_empty() || &p.shape[1..] != tail {
                return Err(TensorError::Incompatible(format!(
                    "cannot concatenate {} {:?} with {} {:?}",
                    first.dtype(),
                    first.shape,
                    p.dtype(),
                    p.shape
                )));
            }
            rows += p.shape[0];
        }
        let total: usize = parts.iter().map(|p| p.borrow().data.len()).sum();
        let mut data = TensorData::with_capacity(first.dtype(), total);
        for p in parts {
            match (&mut data, &p.borrow().data) {
                (TensorData::F32(d), TensorData::F32(s)) => d.extend_from_slice(s),
                (TensorData::F16(d), TensorData::F16(s)) => d.extend_from_slice(s),
                (TensorData::F64(d), TensorData::F64(s)) => d.extend_from_slice(s),
                (TensorData::I64(d), TensorData::I64(s)) => d.extend_from_slice(s),
                (TensorData::I32(d), TensorData::I32(s)) => d.extend_from_slice(s),
                (TensorData::Bool(d), TensorData::Bool(s)) => d.extend_from_slice(s),
                _ => unreachable!("dtypes checked above"),
            }
        }
        let mut shape = first.shape.clone();
        shape[0] = rows;
        Tensor::new(shape, data)
    }

    /// Rows `start..start + len` along axis 0, copied.
    pub fn slice_rows(&self, start: usize, len: usize) -> Result<Tensor, TensorError> {
        if self.shape.is_empty() || start + len > self.shape[0] {
            return Err(TensorError::Incompatible(format!(
                "rows {start}..{} out of range for shape {:?}",
                start + len,
                self.shape
            )));
        }
        let w = self.row_len();
        let (a, b) = (start * w, (start + len) * w);
        let data = match &self.data {
            TensorData::F32(v) => TensorData::F32(v[a..b].to_vec()),
            TensorData::F16(v) => TensorData::F16(v[a..b].to_vec()),
            TensorData::F64(v) => TensorData::F64(v[a..b].to_vec()),
            TensorData::I64(v) => TensorData::I64(v[a..b].to_vec()),
            TensorData::I32(v) => TensorData::I32(v[a..b].to_vec()),
            TensorData::Bool(v) => TensorData::Bool(v[a..b].to_vec()),
        };
        let mut shape = self.shape.clone();
        shape[0] = len;
        Tensor::new(shape, data)
    }
}

/// Tensors by name in a fixed order (a model's inputs in signature order, a teacher's outputs
/// in plan order). Small enough that lookups scan; names are expected to be unique, which the
/// decoders and the store check on what they are handed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NamedTensors(Vec<(String, Tensor)>);

impl NamedTensors {
    /// An empty list.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// An empty list with room for `capacity` tensors.
    pub fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// Appends `tensor` under `name`, after the ones already there.
    pub fn push(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.0.push((name.into(), tensor));
    }

    /// The first tensor of that name.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The first tensor of that name, to change in place.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Tensor> {
        self.0.iter_mut().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Whether a tensor of that name is held.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Takes the first tensor of that name out, keeping the order of the others.
    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        let pos = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(pos).1)
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// `(name, tensor)` pairs, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, (String, Tensor)> {
        self.0.iter()
    }

    /// How many tensors are held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps only the pairs for which `keep` is true, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &Tensor) -> bool) {
        self.0.retain(|(n, t)| keep(n, t));
    }
}

/// Positional access: the order is part of the value (signature or plan order).
impl std::ops::Index<usize> for NamedTensors {
    type Output = (String, Tensor);

    fn index(&self, i: usize) -> &Self::Output {
        &self.0[i]
    }
}

impl std::ops::IndexMut<usize> for NamedTensors {
    fn index_mut(&mut self, i: usize) -> &mut Self::Output {
        &mut self.0[i]
    }
}

impl From<Vec<(String, Tensor)>> for NamedTensors {
    fn from(v: Vec<(String, Tensor)>) -> Self {
        Self(v)
    }
}

impl FromIterator<(String, Tensor)> for NamedTensors {
    fn from_iter<I: IntoIterator<Item = (String, Tensor)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl IntoIterator for NamedTensors {
    type Item = (String, Tensor);
    type IntoIter = std::vec::IntoIter<(String, Tensor)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a NamedTensors {
    type Item = &'a (String, Tensor);
    type IntoIter = std::slice::Iter<'a, (String, Tensor)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_tensors_keep_order_and_find_by_name() {
        let t = |v: f32| Tensor::new(vec![1, 1], TensorData::F32(vec![v])).unwrap();
        let mut n: NamedTensors = vec![("b".to_string(), t(1.0))].into();
        n.push("a", t(2.0));
        n.push("c", t(3.0));
        assert_eq!(n.names().collect::<Vec<_>>(), ["b", "a", "c"]);
        assert_eq!(n.get("a"), Some(&t(2.0)));
        assert_eq!(n.get("z"), None);
        assert!(n.contains("c") && !n.contains("z"));
        assert_eq!(n[2].0, "c");
        *n.get_mut("b").unwrap() = t(9.0);
        assert_eq!(n[0].1, t(9.0));
        assert_eq!(n.remove("a"), Some(t(2.0)));
        assert_eq!(n.remove("a"), None);
        assert_eq!(n.names().collect::<Vec<_>>(), ["b", "c"]);
        n.retain(|name, _| name != "b");
        assert_eq!(n.len(), 1);
        let pairs: Vec<(String, Tensor)> = n.into_iter().collect();
        assert_eq!(pairs, [("c".to_string(), t(3.0))]);
    }

    #[test]
    fn concat_then_slice_round_trips() {
        let a = Tensor::new(vec![2, 2], TensorData::F32(vec![1., 2., 3., 4.])).unwrap();
        let b = Tensor::new(vec![1, 2], TensorData::F32(vec![5., 6.])).unwrap();
        let c = Tensor::concat_rows(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(c.shape(), &[3, 2]);
        assert_eq!(c.slice_rows(0, 2).unwrap(), a);
        assert_eq!(c.slice_rows(2, 1).unwrap(), b);
        assert!(c.slice_rows(2, 2).is_err());
    }

    #[test]
    fn shape_must_match_data() {
        let err = Tensor::new(vec![2, 3], TensorData::I64(vec![1; 5])).unwrap_err();
        assert!(err.to_string().contains("needs 6 elements, got 5"));
    }

    #[test]
    fn concat_rejects_mixed_dtypes() {
        let a = Tensor::new(vec![1, 1], TensorData::F32(vec![1.])).unwrap();
        let b = Tensor::new(vec![1, 1], TensorData::I64(vec![1])).unwrap();
        assert!(Tensor::concat_rows(&[a, b]).is_err());
    }
}
