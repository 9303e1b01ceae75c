//! Accepted column encodings: f16 teacher logits, Int32 labels, LargeUtf8 ids, a glob of
//! files, and the label store's layout read back the same as plain Parquet.

mod data_support;

use std::sync::Arc;

use arrow::array::{ArrayRef, FixedSizeListArray, Float16Array, Int32Array, LargeStringArray};
use arrow::datatypes::{DataType, Field};
use data_support::{columns, kd_config, synth, write_config, write_parquet, write_sets};
use student_trainer::config::RunConfig;
use trainer_data::{Target, TrainData};

#[test]
fn f16_logits_int32_labels_large_ids_and_globs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, eval) = write_sets(dir.path(), 40, 20);
    for (i, seed) in [11u64, 12].iter().enumerate() {
        let s = synth(25, *seed);
        let mut cols = columns(&s);
        let item = Arc::new(Field::new("item", DataType::Float16, true));
        let halves = Float16Array::from(
            s.logits
                .iter()
                .map(|&v| half::f16::from_f32(v))
                .collect::<Vec<_>>(),
        );
        cols[3] = (
            "logits",
            Arc::new(FixedSizeListArray::try_new(item, 10, Arc::new(halves), None).expect("list"))
                as ArrayRef,
        );
        cols[2] = (
            "label",
            Arc::new(Int32Array::from(
                s.labels.iter().map(|&l| l as i32).collect::<Vec<_>>(),
            )) as ArrayRef,
        );
        cols[0] = (
            "id",
            Arc::new(LargeStringArray::from(s.ids.clone())) as ArrayRef,
        );
        write_parquet(&dir.path().join(format!("part-{i}.parquet")), cols);
    }
    // A non-matching file beside them is ignored by the glob.
    write_parquet(&dir.path().join("other.parquet"), columns(&synth(5, 13)));
    let glob = dir.path().join("part-*.parquet");
    let text = kd_config(&glob, &eval, 1, "");
    let cfg = RunConfig::parse(&text, &dir.path().join("f16.toml")).expect("config");
    let data = TrainData::load(&cfg.data, &cfg.losses).expect("loads");
    assert_eq!(data.rows(), 50);
    assert_eq!(data.num_classes, 10);
    let s = synth(25, 11);
    match &data.targets[0] {
        Target::Dense(m) => {
            for (got, want) in m.data.iter().zip(&s.logits) {
                assert_eq!(*got, half::f16::from_f32(*want).to_f32());
            }
        }
        other => panic!("expected dense logits, got {other:?}"),
    }
    assert_eq!(
        data.labels.as_ref().expect("labels")[..25],
        s.labels.iter().map(|&l| l as u32).collect::<Vec<_>>()[..]
    );
    // And it trains end to end.
    let path = write_config(dir.path(), "f16.toml", &text);
    let o = student_trainer::train::TrainOptions {
        config: Some(path),
        out: Some(dir.path().join("run")),
        quiet: true,
        ..Default::default()
    };
    student_trainer::train::run(&o).expect("trains");
}
