//! Measures what the compression of the stored *input* column costs: encodes MNIST rows as a
//! label-store shard would hold them (`id`, `pixels` FixedSizeList<Float32, 784> written plain,
//! `logits` FixedSizeList<Float32, 10> with byte-stream-split + zstd, `label`, `_input_digest`)
//! into an in-memory Parquet file, once per codec of the `pixels` column, and prints the
//! encoder's CPU time per row (this thread's CPU clock, best of `--repeat`) and the file's bytes
//! per row. The other columns keep the store's settings, so the differences are the input
//! column's. The table in docs/results/bench.md ("Input column codec") comes from this.
//!
//! Usage: cargo run --release -p distill-proto --example input_codecs -- IDX_IMAGES [ROWS] [REPEAT]
//! (IDX_IMAGES: `.deps/mnist/train-images-idx3-ubyte`; default 20000 rows, best of 3).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeBinaryArray, FixedSizeListArray, Float32Array, Int64Array, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn batches(pixels: &[u8], rows: usize, batch_rows: usize) -> Vec<RecordBatch> {
    let item = |dt| Arc::new(Field::new("item", dt, false));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new(
            "pixels",
            DataType::FixedSizeList(item(DataType::Float32), 784),
            false,
        ),
        Field::new(
            "logits",
            DataType::FixedSizeList(item(DataType::Float32), 10),
            false,
        ),
        Field::new("label", DataType::Int64, true),
        Field::new("_input_digest", DataType::FixedSizeBinary(16), false),
    ]));
    let mut out = Vec::new();
    let mut start = 0;
    // A cheap deterministic stand-in for logits and digests (their bytes are not under test).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    while start < rows {
        let n = batch_rows.min(rows - start);
        let ids: StringArray = (start..start + n)
            .map(|i| Some(format!("train-{i}")))
            .collect();
        let px: Float32Array = pixels[start * 784..(start + n) * 784]
            .iter()
            .map(|&p| p as f32 / 255.0)
            .collect();
        let logits: Float32Array = (0..n * 10)
            .map(|_| (next() % 20_000) as f32 / 1000.0 - 10.0)
            .collect();
        let label: Int64Array = (0..n).map(|_| Some((next() % 10) as i64)).collect();
        let digests: Vec<[u8; 16]> = (0..n)
            .map(|_| {
                let mut d = [0u8; 16];
                d[..8].copy_from_slice(&next().to_le_bytes());
                d[8..].copy_from_slice(&next().to_le_bytes());
                d
            })
            .collect();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(ids),
            Arc::new(
                FixedSizeListArray::try_new(item(DataType::Float32), 784, Arc::new(px), None)
                    .expect("pixels"),
            ),
            Arc::new(
                FixedSizeListArray::try_new(item(DataType::Float32), 10, Arc::new(logits), None)
                    .expect("logits"),
            ),
            Arc::new(label),
            Arc::new(FixedSizeBinaryArray::try_from_iter(digests.iter()).expect("digests")),
        ];
        out.push(RecordBatch::try_new(schema.clone(), cols).expect("batch"));
        start += n;
    }
    out
}

fn properties(
    schema: &Schema,
    input: Compression,
    input_stats: bool,
    dict: bool,
) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(8192));
    // Leaf paths as the store names them (a list's leaf is `name.list.item`, not `name.item`).
    let descr = ArrowSchemaConverter::new().convert(schema).expect("schema");
    for col in descr.columns() {
        let path = col.path().clone();
        match col.path().parts().first().map(String::as_str) {
            Some("pixels") => {
                b = b
                    .set_column_dictionary_enabled(path.clone(), dict)
                    .set_column_compression(path.clone(), input);
                if !input_stats {
                    b = b.set_column_statistics_enabled(path, EnabledStatistics::None);
                }
            }
            Some("logits") => {
                b = b
                    .set_column_dictionary_enabled(path.clone(), false)
                    .set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT);
            }
            Some("id") | Some("_input_digest") => {
                b = b.set_column_dictionary_enabled(path, false);
            }
            _ => {}
        }
    }
    b.build()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: input_codecs IDX_IMAGES [ROWS] [REPEAT]");
        std::process::exit(2);
    };
    let rows: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let repeat: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        eprintln!("reading {path}: {e}");
        std::process::exit(1);
    });
    let pixels = &bytes[16..];
    if pixels.len() < rows * 784 {
        eprintln!("{path} holds fewer than {rows} images");
        std::process::exit(1);
    }
    let data = batches(pixels, rows, 256);
    let zstd = |l| Compression::ZSTD(ZstdLevel::try_new(l).expect("zstd level"));
    let mut variants: Vec<(String, Compression, bool, bool)> = vec![
        ("plain, zstd(1) (before)".into(), zstd(1), true, false),
        (
            "plain, zstd(1), no statistics".into(),
            zstd(1),
            false,
            false,
        ),
        (
            "plain, zstd(3), no statistics".into(),
            zstd(3),
            false,
            false,
        ),
        (
            "plain, zstd(-3), no statistics".into(),
            zstd(-3),
            false,
            false,
        ),
        (
            "plain, snappy, no statistics".into(),
            Compression::SNAPPY,
            false,
            false,
        ),
        (
            "plain, none, no statistics".into(),
            Compression::UNCOMPRESSED,
            false,
            false,
        ),
        (
            "dictionary, zstd(1), no statistics".into(),
            zstd(1),
            false,
            true,
        ),
        (
            "dictionary, snappy, no statistics".into(),
            Compression::SNAPPY,
            false,
            true,
        ),
        (
            "dictionary, none, no statistics".into(),
            Compression::UNCOMPRESSED,
            false,
            true,
        ),
    ];
    if std::env::var_os("INPUT_CODECS_LZ4").is_some() {
        variants.push((
            "plain, lz4_raw, no statistics".into(),
            Compression::LZ4_RAW,
            false,
            false,
        ));
    }
    println!("rows {rows}, batches of 256, row groups of 8192, best of {repeat}");
    println!("| pixels codec | encode CPU µs/row (whole shard) | file bytes/row |");
    println!("|---|---:|---:|");
    for (name, codec, stats, dict) in variants {
        let mut best = f64::INFINITY;
        let mut size = 0usize;
        for _ in 0..repeat {
            let t0 = thread_cpu_seconds();
            let mut w = ArrowWriter::try_new(
                Vec::with_capacity(rows * 4000),
                data[0].schema(),
                Some(properties(&data[0].schema(), codec, stats, dict)),
            )
            .expect("writer");
            for b in &data {
                w.write(b).expect("write");
            }
            let buf = w.into_inner().expect("finish");
            best = best.min(thread_cpu_seconds() - t0);
            size = buf.len();
        }
        println!(
            "| {name} | {:.2} | {:.1} |",
            best / rows as f64 * 1e6,
            size as f64 / rows as f64
        );
    }
}
