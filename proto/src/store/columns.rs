//! The store's column policy over [`crate::arrow_codec`]: float features are stored as f32 or
//! f16 ([`FeatureDType`]), other dtypes as they are.

use arrow::array::ArrayRef;

use super::FeatureDType;
use crate::arrow_codec::{tensor_to_column, ColumnError};
use crate::{DType, Tensor};

/// The element type a tensor of `dtype` is stored as: floats follow `feature`, others stay.
pub fn stored_dtype(dtype: DType, feature: FeatureDType) -> DType {
    if dtype.is_float() {
        match feature {
            FeatureDType::F32 => DType::F32,
            FeatureDType::F16 => DType::F16,
        }
    } else {
        dtype
    }
}

/// Converts a tensor `[rows, ...]` into a column of `rows` values, all row axes fixed; float
/// tensors are stored as `feature` (f32 or f16), other dtypes as they are.
pub fn tensor_to_array(t: &Tensor, feature: FeatureDType) -> Result<ArrayRef, ColumnError> {
    tensor_to_column("<array>", t, stored_dtype(t.dtype(), feature), &[])
}
