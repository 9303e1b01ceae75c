//! `distill-label label --views K --augment jitter=P`: each source batch becomes K seeded
//! augmented views of every row, so the teacher scores (and the store keeps) the inputs the
//! student will train on. See [`distill_proto::views`] for the ids, columns and seeds.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int32Array, StringArray, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Float32Type, Schema};
use arrow::record_batch::RecordBatch;
use distill_proto::arrow_codec::tensor_to_column;
use distill_proto::views::{
    id_hash, view_id, view_seed, Augment, AUGMENT_COLUMN, VIEW_COLUMN, VIEW_OF_COLUMN,
    VIEW_SEED_COLUMN,
};
use distill_proto::{DType, Tensor, TensorData};

/// How many views of each row to label, and how they are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewOptions {
    /// Views per row (K ≥ 1).
    pub count: u32,
    /// The augmentation of every view.
    pub augment: Augment,
    /// Base seed of the view seeds.
    pub seed: u64,
}

/// Why a batch cannot be expanded into views.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The source or options do not allow views.
    #[error("--views: {0}")]
    Setup(String),
    /// Arrow refused to build the expanded batch.
    #[error("building the views batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// The names taken by the view columns, which no pass-through column may use.
pub const VIEW_COLUMNS: [&str; 4] = [
    VIEW_OF_COLUMN,
    VIEW_COLUMN,
    VIEW_SEED_COLUMN,
    AUGMENT_COLUMN,
];

/// Checks that batches of `schema` (`id`, inputs, pass-through columns) can be expanded: one
/// model input, a FixedSizeList of Float32 whose width fits the augmentation's image layout,
/// and no pass-through column named like a view column. Returns the layout.
pub fn check(schema: &Schema, inputs: usize, views: &ViewOptions) -> Result<[usize; 3], ViewError> {
    if views.count == 0 {
        return Err(ViewError::Setup("K must be at least 1".into()));
    }
    if inputs != 1 {
        return Err(ViewError::Setup(format!(
            "augmented views need a teacher with one image input, this run sends {inputs} inputs"
        )));
    }
    let field = schema.field(1);
    let width = match field.data_type() {
        DataType::FixedSizeList(item, w) if item.data_type() == &DataType::Float32 => *w as usize,
        other => {
            return Err(ViewError::Setup(format!(
                "input {:?} is {other}; augmented views need a FixedSizeList<Float32> image column",
                field.name()
            )))
        }
    };
    for f in schema.fields().iter().skip(2) {
        if VIEW_COLUMNS.contains(&f.name().as_str()) {
            return Err(ViewError::Setup(format!(
                "pass-through column {:?} is named like a view column ({})",
                f.name(),
                VIEW_COLUMNS.join(", ")
            )));
        }
    }
    views
        .augment
        .layout(width)
        .map_err(|e| ViewError::Setup(e.to_string()))
}

/// Row `r`'s K views as rows `r*K .. r*K+K` of a new batch: view ids, augmented inputs, the
/// pass-through columns repeated, then `view_of`, `view`, `view_seed` and `augment`.
pub fn expand(
    batch: &RecordBatch,
    views: &ViewOptions,
    layout: [usize; 3],
) -> Result<RecordBatch, ViewError> {
    let k = views.count as usize;
    let rows = batch.num_rows();
    let ids = batch
        .column(0)
        .as_string_opt::<i32>()
        .ok_or_else(|| ViewError::Setup("the id column is not Utf8".into()))?;
    let input = batch
        .column(1)
        .as_fixed_size_list_opt()
        .ok_or_else(|| ViewError::Setup("the input column is not a FixedSizeList".into()))?;
    let width = input.value_length() as usize;
    let values = input
        .values()
        .as_primitive_opt::<Float32Type>()
        .ok_or_else(|| ViewError::Setup("the input column is not Float32".into()))?;
    let src = values.values();
    let start = input.offset() * width;

    let mut view_ids = Vec::with_capacity(rows * k);
    let mut view_of = Vec::with_capacity(rows * k);
    let mut view_index = Vec::with_capacity(rows * k);
    let mut seeds = Vec::with_capacity(rows * k);
    let mut pixels = vec![0f32; rows * k * width];
    for r in 0..rows {
        if ids.is_null(r) || input.is_null(r) {
            return Err(ViewError::Setup(format!(
                "row {r} of the batch has a null id or input"
            )));
        }
        let id = ids.value(r);
        let row = &src[start + r * width..start + (r + 1) * width];
        let h = id_hash(id);
        for v in 0..views.count {
            let seed = view_seed(views.seed, h, v);
            let i = r * k + v as usize;
            views
                .augment
                .apply(layout, seed, row, &mut pixels[i * width..(i + 1) * width]);
            view_ids.push(view_id(id, v));
            view_of.push(id);
            view_index.push(v as i32);
            seeds.push(seed);
        }
    }
    let schema = batch.schema();
    let augmented = Tensor::new(vec![rows * k, width], TensorData::F32(pixels))
        .map_err(|e| ViewError::Setup(e.to_string()))
        .and_then(|t| {
            tensor_to_column(schema.field(1).name(), &t, DType::F32, &[])
                .map_err(|e| ViewError::Setup(e.to_string()))
        })?;
    let input_type = augmented.data_type().clone();
    let repeat =
        UInt32Array::from_iter_values((0..rows as u32).flat_map(|r| std::iter::repeat_n(r, k)));
    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(view_ids)), augmented];
    for c in batch.columns().iter().skip(2) {
        columns.push(arrow::compute::take(c.as_ref(), &repeat, None)?);
    }
    let spec = views.augment.to_string();
    columns.push(Arc::new(StringArray::from(view_of)));
    columns.push(Arc::new(Int32Array::from(view_index)));
    columns.push(Arc::new(UInt64Array::from(seeds)));
    columns.push(Arc::new(StringArray::from(vec![spec.as_str(); rows * k])));
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[1] = Field::new(fields[1].name(), input_type, false);
    fields.push(Field::new(VIEW_OF_COLUMN, DataType::Utf8, false));
    fields.push(Field::new(VIEW_COLUMN, DataType::Int32, false));
    fields.push(Field::new(VIEW_SEED_COLUMN, DataType::UInt64, false));
    fields.push(Field::new(AUGMENT_COLUMN, DataType::Utf8, false));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{FixedSizeListArray, Float32Array};

    fn batch() -> RecordBatch {
        let ids = StringArray::from(vec!["a", "b"]);
        let px: Vec<f32> = (0..32).map(|v| v as f32).collect();
        let x = FixedSizeListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Float32, true)),
            16,
            Arc::new(Float32Array::from(px)),
            None,
        )
        .unwrap();
        let label = arrow::array::Int64Array::from(vec![3, 5]);
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("x", x.data_type().clone(), true),
            Field::new("label", DataType::Int64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(ids), Arc::new(x), Arc::new(label)],
        )
        .unwrap()
    }

    #[test]
    fn each_row_becomes_k_seeded_views() {
        let b = batch();
        let opts = ViewOptions {
            count: 3,
            augment: "jitter=1".parse().unwrap(),
            seed: 9,
        };
        let layout = check(&b.schema(), 1, &opts).unwrap();
        assert_eq!(layout, [1, 4, 4]);
        let out = expand(&b, &opts, layout).unwrap();
        assert_eq!(out.num_rows(), 6);
        let ids = out.column(0).as_string::<i32>();
        assert_eq!(ids.value(0), "a#v0");
        assert_eq!(ids.value(5), "b#v2");
        let labels = out.column(2).as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(labels.values().to_vec(), vec![3, 3, 3, 5, 5, 5]);
        let seeds = out
            .column_by_name(VIEW_SEED_COLUMN)
            .unwrap()
            .as_primitive::<arrow::datatypes::UInt64Type>();
        let x = out.column(1).as_fixed_size_list();
        for i in 0..6 {
            let r = i / 3;
            let src: Vec<f32> = (r * 16..r * 16 + 16).map(|v| v as f32).collect();
            let mut want = vec![0f32; 16];
            opts.augment.apply(layout, seeds.value(i), &src, &mut want);
            let got = x.value(i);
            let got = got.as_primitive::<Float32Type>().values().to_vec();
            assert_eq!(got, want, "view row {i}");
            let h = id_hash(["a", "b"][r]);
            assert_eq!(seeds.value(i), view_seed(9, h, (i % 3) as u32));
        }
        assert_eq!(
            out.column_by_name(AUGMENT_COLUMN)
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "jitter=1"
        );
    }

    #[test]
    fn unusable_sources_are_refused_with_the_reason() {
        let b = batch();
        let ok = ViewOptions {
            count: 2,
            augment: "jitter=1".parse().unwrap(),
            seed: 0,
        };
        let e = check(&b.schema(), 2, &ok).unwrap_err().to_string();
        assert!(e.contains("one image input"), "{e}");
        let zero = ViewOptions { count: 0, ..ok };
        assert!(check(&b.schema(), 1, &zero).is_err());
        let wrong = ViewOptions {
            augment: "jitter=1,shape=3x3".parse().unwrap(),
            ..ok
        };
        let e = check(&b.schema(), 1, &wrong).unwrap_err().to_string();
        assert!(e.contains("does not hold rows of 16"), "{e}");
        let mut fields: Vec<Field> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields[2] = Field::new("view", DataType::Int64, false);
        let e = check(&Schema::new(fields), 1, &ok).unwrap_err().to_string();
        assert!(e.contains("named like a view column"), "{e}");
    }
}
