//! IDX parsing errors and the MNIST import round trip on tiny synthetic IDX files.

use std::fs::File;
use std::path::Path;

use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::{DataType, Float32Type};
use label_client::import::idx::{
    encode_images, encode_labels, parse_images, parse_labels, IdxError, IdxImages,
};
use label_client::import::mnist::{import_mnist, ImportError};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn images(count: usize, rows: usize, cols: usize) -> IdxImages {
    // Known grey levels, including both ends 0 and 255.
    let mut pixels: Vec<u8> = (0..count * rows * cols)
        .map(|i| (i * 37 % 256) as u8)
        .collect();
    if let Some(p) = pixels.get_mut(1) {
        *p = 255;
    }
    IdxImages {
        count,
        rows,
        cols,
        pixels,
    }
}

#[test]
fn bad_magic_is_named() {
    let mut bytes = encode_images(&images(2, 2, 2));
    bytes[3] = 0x01; // 0x00000801: a labels file, not images
    let err = parse_images(&bytes, Path::new("x-images")).unwrap_err();
    assert!(
        matches!(
            err,
            IdxError::BadMagic {
                found: 0x801,
                expected: 0x803,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("x-images") && msg.contains("0x00000801"),
        "{msg}"
    );

    let labels = encode_images(&images(1, 1, 1));
    let err = parse_labels(&labels, Path::new("y-labels")).unwrap_err();
    assert!(
        matches!(
            err,
            IdxError::BadMagic {
                expected: 0x801,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn truncated_files_are_rejected_with_sizes() {
    let bytes = encode_images(&images(3, 4, 4));
    let err = parse_images(&bytes[..bytes.len() - 1], Path::new("imgs")).unwrap_err();
    match &err {
        IdxError::WrongSize {
            expected, found, ..
        } => {
            assert_eq!(*expected, 16 + 48);
            assert_eq!(*found, 16 + 47);
        }
        other => panic!("expected WrongSize, got {other:?}"),
    }
    // Shorter than the header itself.
    let err = parse_images(&bytes[..10], Path::new("imgs")).unwrap_err();
    assert!(
        matches!(err, IdxError::WrongSize { found: 10, .. }),
        "{err:?}"
    );
    // Trailing garbage is as wrong as missing bytes.
    let mut long = encode_labels(&[1, 2, 3]);
    long.push(0);
    let err = parse_labels(&long, Path::new("labs")).unwrap_err();
    assert!(
        matches!(
            err,
            IdxError::WrongSize {
                expected: 11,
                found: 12,
                ..
            }
        ),
        "{err:?}"
    );
    // Empty file.
    assert!(matches!(
        parse_labels(&[], Path::new("labs")).unwrap_err(),
        IdxError::WrongSize { found: 0, .. }
    ));
}

#[test]
fn labels_outside_digits_and_empty_images_are_rejected() {
    let err = parse_labels(&encode_labels(&[3, 10, 1]), Path::new("labs")).unwrap_err();
    assert!(
        matches!(
            err,
            IdxError::BadLabel {
                index: 1,
                value: 10,
                ..
            }
        ),
        "{err:?}"
    );
    let err = parse_images(&encode_images(&images(0, 0, 5)), Path::new("imgs")).unwrap_err();
    assert!(matches!(err, IdxError::BadHeader { .. }), "{err:?}");
}

#[test]
fn valid_files_parse_to_their_contents() {
    let img = images(3, 2, 5);
    assert_eq!(
        parse_images(&encode_images(&img), Path::new("i")).unwrap(),
        img
    );
    assert_eq!(
        parse_labels(&encode_labels(&[0, 9, 4]), Path::new("l")).unwrap(),
        vec![0, 9, 4]
    );
}

fn write_split(dir: &Path, prefix: &str, img: &IdxImages, labels: &[u8]) {
    std::fs::write(
        dir.join(format!("{prefix}-images-idx3-ubyte")),
        encode_images(img),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{prefix}-labels-idx1-ubyte")),
        encode_labels(labels),
    )
    .unwrap();
}

#[test]
fn import_round_trip_is_exact_and_idempotent() {
    let idx = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let train = images(5, 3, 4);
    let train_labels = [5u8, 0, 4, 1, 9];
    let test = images(2, 3, 4);
    write_split(idx.path(), "train", &train, &train_labels);
    write_split(idx.path(), "t10k", &test, &[7, 2]);

    let done = import_mnist(idx.path(), out.path(), false).unwrap();
    assert_eq!(done.len(), 2);
    assert!(done.iter().all(|f| f.written));
    assert_eq!((done[0].rows, done[1].rows), (5, 2));

    let path = out.path().join("mnist-train.parquet");
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
    let schema = builder.schema().clone();
    assert_eq!(schema.field(0).name(), "id");
    assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
    assert!(
        matches!(schema.field(1).data_type(), DataType::FixedSizeList(f, 12) if f.data_type() == &DataType::Float32)
    );
    assert_eq!(schema.field(2).data_type(), &DataType::Int64);
    let batches: Vec<_> = builder.build().unwrap().map(|b| b.unwrap()).collect();
    let batch = arrow::compute::concat_batches(&schema, &batches).unwrap();
    assert_eq!(batch.num_rows(), 5);
    let ids = batch.column(0).as_string::<i32>();
    assert_eq!(
        (0..5).map(|i| ids.value(i)).collect::<Vec<_>>(),
        ["train-0", "train-1", "train-2", "train-3", "train-4"]
    );
    let pixels = batch.column(1).as_fixed_size_list();
    let values = pixels.values().as_primitive::<Float32Type>();
    let expected: Vec<f32> = train.pixels.iter().map(|&p| p as f32 / 255.0).collect();
    assert_eq!(values.values().to_vec(), expected);
    assert!(values.values().contains(&1.0) && values.values().contains(&0.0));
    let labels: &Int64Array = batch.column(2).as_primitive();
    assert_eq!(labels.values().to_vec(), vec![5, 0, 4, 1, 9]);

    let compression = builder_compression(&path);
    assert!(compression.starts_with("ZSTD"), "{compression}");
    // No temporary file left behind.
    let names: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| n.ends_with(".parquet")), "{names:?}");

    // A second run keeps the files; --force rewrites them.
    let again = import_mnist(idx.path(), out.path(), false).unwrap();
    assert!(again.iter().all(|f| !f.written));
    assert_eq!(again[0].rows, 5);
    let forced = import_mnist(idx.path(), out.path(), true).unwrap();
    assert!(forced.iter().all(|f| f.written));
}

fn builder_compression(path: &Path) -> String {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    format!(
        "{:?}",
        builder.metadata().row_group(0).column(1).compression()
    )
}

#[test]
fn import_reports_missing_and_mismatched_files() {
    let idx = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = import_mnist(idx.path(), out.path(), false).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");

    write_split(idx.path(), "train", &images(3, 2, 2), &[1, 2]);
    let err = import_mnist(idx.path(), out.path(), false).unwrap_err();
    assert!(
        matches!(
            err,
            ImportError::CountMismatch {
                image_count: 3,
                label_count: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!out.path().join("mnist-train.parquet").exists());
}
