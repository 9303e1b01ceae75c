//! Tensor <-> Arrow column conversions: every dtype, nesting, f16 storage, dynamic axes, errors.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float32Array, ListArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use distill_proto::store::{
    array_to_tensor, array_to_tensor_dyn, column_to_tensor, tensor_to_array, tensor_to_column,
    FeatureDType,
};
use distill_proto::{DType, Tensor, TensorData};
use half::f16;

fn data(dtype: DType, n: usize) -> TensorData {
    match dtype {
        DType::F32 => TensorData::F32((0..n).map(|i| i as f32 * 0.5 - 3.0).collect()),
        DType::F16 => TensorData::F16((0..n).map(|i| f16::from_f32(i as f32 * 0.25)).collect()),
        DType::F64 => TensorData::F64((0..n).map(|i| i as f64 / 3.0).collect()),
        DType::I64 => TensorData::I64((0..n).map(|i| i as i64 * 1_000_000_007 - 5).collect()),
        DType::I32 => TensorData::I32((0..n).map(|i| i as i32 - 7).collect()),
        DType::Bool => TensorData::Bool((0..n).map(|i| i % 3 == 0).collect()),
    }
}

const ALL: [DType; 6] = [
    DType::F32,
    DType::F16,
    DType::F64,
    DType::I64,
    DType::I32,
    DType::Bool,
];

#[test]
fn every_dtype_round_trips_for_scalar_vector_and_matrix_rows() {
    for dtype in ALL {
        for shape in [vec![5], vec![5, 3], vec![2, 3, 4]] {
            let n: usize = shape.iter().product();
            let t = Tensor::new(shape.clone(), data(dtype, n)).unwrap();
            // Stored in its own dtype (as inputs are).
            let a = tensor_to_column("c", &t, dtype, &[]).unwrap();
            assert_eq!(a.len(), shape[0]);
            let back = array_to_tensor(a.as_ref(), dtype, &shape[1..]).unwrap();
            assert_eq!(back, t, "{dtype} {shape:?}");
            let back = array_to_tensor_dyn(a.as_ref(), dtype).unwrap();
            assert_eq!(back, t, "{dtype} {shape:?} (inferred shape)");
        }
    }
}

#[test]
fn nesting_follows_the_row_shape() {
    let t = Tensor::new(vec![2, 3, 4], data(DType::F32, 24)).unwrap();
    let a = tensor_to_array(&t, FeatureDType::F32).unwrap();
    let DataType::FixedSizeList(outer, 3) = a.data_type() else {
        panic!("{}", a.data_type())
    };
    assert!(
        matches!(outer.data_type(), DataType::FixedSizeList(inner, 4) if inner.data_type() == &DataType::Float32)
    );
    let t = Tensor::new(vec![4], data(DType::I64, 4)).unwrap();
    assert_eq!(
        tensor_to_array(&t, FeatureDType::F16).unwrap().data_type(),
        &DataType::Int64
    );
}

#[test]
fn float_features_are_stored_as_f16_on_request() {
    let t = Tensor::new(
        vec![3, 2],
        TensorData::F32(vec![0.1, -2.5, 1e-3, 65504.0, 2.71, -0.0]),
    )
    .unwrap();
    let a = tensor_to_array(&t, FeatureDType::F16).unwrap();
    let DataType::FixedSizeList(f, 2) = a.data_type() else {
        panic!()
    };
    assert_eq!(f.data_type(), &DataType::Float16);
    // Read back as f32: each value is the f16 rounding of the original.
    let back = array_to_tensor(a.as_ref(), DType::F32, &[2]).unwrap();
    let TensorData::F32(v) = back.data() else {
        panic!()
    };
    let TensorData::F32(orig) = t.data() else {
        panic!()
    };
    for (x, y) in orig.iter().zip(v) {
        assert_eq!(f16::from_f32(*x).to_f32(), *y);
        assert!((x - y).abs() <= x.abs() * 1e-3 + 1e-4, "{x} vs {y}");
    }
    // f64 features become f32 under FeatureDType::F32.
    let t = Tensor::new(vec![2], TensorData::F64(vec![1.0 / 3.0, 2.0])).unwrap();
    let a = tensor_to_array(&t, FeatureDType::F32).unwrap();
    assert_eq!(a.data_type(), &DataType::Float32);
}

#[test]
fn dynamic_axes_become_lists_and_ragged_rows_are_refused() {
    let t = Tensor::new(vec![2, 5, 3], data(DType::I64, 30)).unwrap();
    let a = tensor_to_column("ids", &t, DType::I64, &[true, false]).unwrap();
    assert!(
        matches!(a.data_type(), DataType::List(f) if matches!(f.data_type(), DataType::FixedSizeList(_, 3)))
    );
    assert_eq!(array_to_tensor(a.as_ref(), DType::I64, &[5, 3]).unwrap(), t);
    assert_eq!(array_to_tensor_dyn(a.as_ref(), DType::I64).unwrap(), t);
    let err = array_to_tensor(a.as_ref(), DType::I64, &[4, 3])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("row 0 has 5 values on axis 1, expected 4"),
        "{err}"
    );

    // A ragged List column (rows of 2, 2 and 3 values) built by hand.
    let values: ArrayRef = Arc::new(Float32Array::from(vec![1.0f32; 7]));
    let field = Arc::new(Field::new_list_field(DataType::Float32, false));
    let offsets = arrow::buffer::OffsetBuffer::from_lengths([2, 2, 3]);
    let ragged: ArrayRef = Arc::new(ListArray::try_new(field, offsets, values, None).unwrap());
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "seq",
            ragged.data_type().clone(),
            false,
        )])),
        vec![ragged],
    )
    .unwrap();
    let err = column_to_tensor(&batch, "seq", DType::F32)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"seq\"") && err.contains("row 2 has 3 values on axis 1"),
        "{err}"
    );
    // Sliced reads (non-zero offsets) still work.
    let sliced = batch.column(0).slice(0, 2);
    let t = array_to_tensor(sliced.as_ref(), DType::F32, &[2]).unwrap();
    assert_eq!(t.shape(), &[2, 2]);
}

#[test]
fn errors_name_the_column_and_what_was_expected() {
    let t = Tensor::new(vec![2, 3], data(DType::F32, 6)).unwrap();
    let a = tensor_to_column("logits", &t, DType::F32, &[]).unwrap();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "logits",
            a.data_type().clone(),
            false,
        )])),
        vec![a.clone()],
    )
    .unwrap();
    let err = column_to_tensor(&batch, "logits", DType::I64)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"logits\"") && err.contains("Float32") && err.contains("i64"),
        "{err}"
    );
    let err = column_to_tensor(&batch, "nope", DType::F32)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"nope\"") && err.contains("logits"), "{err}");
    let err = array_to_tensor(a.as_ref(), DType::F32, &[4])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("width 3") && err.contains("expected 4"),
        "{err}"
    );
    let err = array_to_tensor(a.as_ref(), DType::F32, &[3, 1])
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected row shape with 2 axes"), "{err}");
    let err = tensor_to_column(
        "b",
        &Tensor::new(vec![2], data(DType::Bool, 2)).unwrap(),
        DType::F32,
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("\"b\"") && err.contains("bool tensor cannot be stored as f32"),
        "{err}"
    );
    let zero = Tensor::new(vec![2, 0], TensorData::F32(vec![])).unwrap();
    assert!(tensor_to_array(&zero, FeatureDType::F32).is_err());
}
