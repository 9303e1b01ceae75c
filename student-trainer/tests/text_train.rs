//! Text students trained from a token column against stored embeddings: the streamed, ragged
//! data path (per-batch padding, bucketing, shuffle windows, order independence, bounded
//! memory), tiny static and transformer runs whose fidelity rises, resume, ONNX parity on a
//! padded mixed-length batch, the bad inputs, and a transformer's self-distillation exits
//! (gradients, truncated ONNX parity, config checks, resume). The store is the one of
//! `data_support::text`.

mod data_support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float32Array, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use data_support::text::{
    rows, run_config, token_list, write_store, Row, COSINE_AND_NCE, EMB, STATIC, TRANSFORMER, VOCAB,
};
use data_support::{fsl, write_config, write_parquet, Rng};
use student_trainer::config::{RunConfig, SelfDistillConfig};
use student_trainer::metrics::Summary;
use student_trainer::train::{self, RunOutcome, TrainOptions};
use trainer_core::model::{Exits, StudentConfig, TextStudent};
use trainer_data::text::loader::{EpochPlan, TextBatch, TextLoader};
use trainer_data::text::rows::{TextColumns, TextTrainData};
use trainer_data::text::tokens::TokenRule;
use trainer_eval::{OnnxTextEncoder, TokenBatch};

fn text_columns(targets: &[&str]) -> TextColumns {
    TextColumns {
        tokens: "input_ids".into(),
        types: Some("token_type_ids".into()),
        targets: targets.iter().map(|s| s.to_string()).collect(),
        token_rule: TokenRule {
            limit: VOCAB,
            limit_name: "the student's vocabulary",
            max_len: 64,
        },
        type_limit: 2,
    }
}

fn epoch_batches(data: Arc<TextTrainData>, plan: EpochPlan) -> (Vec<TextBatch>, usize) {
    let mut loader = TextLoader::epoch(data, plan);
    let batches: Vec<TextBatch> = loader.by_ref().map(|b| b.expect("batch")).collect();
    (batches, loader.finish())
}

fn plan(seed: u64, epoch: usize, bucket: bool) -> EpochPlan {
    EpochPlan {
        batch_size: 16,
        bucket_by_length: bucket,
        seed,
        epoch,
    }
}

fn load(dir: &Path, window: usize, holdout: Option<f64>) -> Arc<TextTrainData> {
    let (d, _) = TextTrainData::load(
        dir.to_str().unwrap(),
        text_columns(&["embedding"]),
        window,
        holdout,
        None,
    )
    .expect("loads");
    Arc::new(d)
}

#[test]
fn batches_are_ragged_rows_padded_per_batch_and_cover_every_row() {
    let tmp = tempfile::tempdir().unwrap();
    let all = rows(200, 1);
    let dir = write_store(&tmp.path().join("store"), &all, 64);
    let by_hash: HashMap<u64, &Row> = all
        .iter()
        .map(|r| (trainer_data::seeds::id_hash(&r.id), r))
        .collect();
    let data = load(&dir, 1 << 20, None);
    assert!(data.resident.is_some());
    let (batches, _) = epoch_batches(data, plan(4, 0, false));
    let mut seen = 0;
    let mut global_max = 0;
    let mut seqs = Vec::new();
    for b in &batches {
        let lens: Vec<usize> = b.hashes.iter().map(|h| by_hash[h].tokens.len()).collect();
        let longest = *lens.iter().max().unwrap();
        assert_eq!(b.seq, longest, "padded to the batch's own longest row");
        global_max = global_max.max(longest);
        seqs.push(b.seq);
        for (r, (h, &len)) in b.hashes.iter().zip(&lens).enumerate() {
            let row = &by_hash[h];
            let ids = &b.ids[r * b.seq..(r + 1) * b.seq];
            let want: Vec<u32> = row.tokens.iter().map(|&t| t as u32).collect();
            assert_eq!(&ids[..len], &want[..]);
            assert!(ids[len..].iter().all(|&i| i == 0));
            let mask = &b.mask[r * b.seq..(r + 1) * b.seq];
            assert_eq!(mask.iter().sum::<f32>() as usize, len);
            assert_eq!(&b.targets[0][r * EMB..(r + 1) * EMB], &row.emb[..]);
        }
        seen += b.rows;
    }
    assert_eq!(seen, 200);
    assert!(
        seqs.iter().any(|&s| s < global_max),
        "some batch is shorter than the global maximum: {seqs:?}"
    );
}

#[test]
fn bucketing_cuts_padding_and_keeps_every_row() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_store(&tmp.path().join("store"), &rows(400, 2), 100);
    let data = load(&dir, 1 << 20, None);
    let eff = |bs: &[TextBatch]| {
        let real: f32 = bs.iter().map(|b| b.mask.iter().sum::<f32>()).sum();
        let padded: usize = bs.iter().map(|b| b.rows * b.seq).sum();
        real as f64 / padded as f64
    };
    let (plain, _) = epoch_batches(data.clone(), plan(4, 0, false));
    let (bucketed, _) = epoch_batches(data, plan(4, 0, true));
    let count = |bs: &[TextBatch]| bs.iter().map(|b| b.rows).sum::<usize>();
    assert_eq!(count(&plain), 400);
    assert_eq!(count(&bucketed), 400);
    let (e_plain, e_bucket) = (eff(&plain), eff(&bucketed));
    assert!(
        e_bucket > 0.9 && e_bucket > e_plain + 0.2,
        "padding efficiency: bucketed {e_bucket:.3}, plain {e_plain:.3}"
    );
}

#[test]
fn streamed_windows_bound_memory_and_are_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_store(&tmp.path().join("store"), &rows(1000, 3), 128);
    let data = load(&dir, 100, None);
    assert!(data.resident.is_none(), "1000 rows > a 100-row window");
    assert_eq!(data.windows(), 10);
    let (a, peak) = epoch_batches(data.clone(), plan(9, 0, true));
    assert!(
        peak <= 150,
        "a window held {peak} rows; the bound is about 100"
    );
    let mut hashes: Vec<u64> = a.iter().flat_map(|b| b.hashes.clone()).collect();
    assert_eq!(hashes.len(), 1000);
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), 1000, "every row exactly once per epoch");
    let (b, _) = epoch_batches(data.clone(), plan(9, 0, true));
    assert_eq!(a, b, "same seed and epoch, same batches");
    let (c, _) = epoch_batches(data.clone(), plan(10, 0, true));
    let (d, _) = epoch_batches(data, plan(9, 1, true));
    assert_ne!(a[0].hashes, c[0].hashes, "another seed shuffles otherwise");
    assert_ne!(a[0].hashes, d[0].hashes, "another epoch shuffles otherwise");
}

#[test]
fn batch_order_does_not_depend_on_the_order_rows_were_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let all = rows(300, 4);
    let mut shuffled = all.clone();
    shuffled.reverse();
    shuffled.rotate_left(77);
    let a = write_store(&tmp.path().join("a"), &all, 300);
    let b = write_store(&tmp.path().join("b"), &shuffled, 64);
    for (window, bucket) in [(1 << 20, false), (1 << 20, true), (50, false), (50, true)] {
        let (ba, _) = epoch_batches(load(&a, window, Some(0.1)), plan(5, 1, bucket));
        let (bb, _) = epoch_batches(load(&b, window, Some(0.1)), plan(5, 1, bucket));
        assert_eq!(ba, bb, "window {window}, bucket {bucket}");
    }
    // The held-out rows are the same set too, in the same order.
    let ea = TextTrainData::load(
        a.to_str().unwrap(),
        text_columns(&["embedding"]),
        1 << 20,
        Some(0.1),
        None,
    )
    .unwrap()
    .1
    .unwrap();
    let eb = TextTrainData::load(
        b.to_str().unwrap(),
        text_columns(&["embedding"]),
        1 << 20,
        Some(0.1),
        None,
    )
    .unwrap()
    .1
    .unwrap();
    assert!(ea.rows() > 10 && ea.rows() < 60, "{} held out", ea.rows());
    assert_eq!(ea, eb);
}

#[test]
fn train_fraction_keeps_the_same_id_subset_resident_or_streamed_and_in_any_order() {
    let tmp = tempfile::tempdir().unwrap();
    let all = rows(400, 3);
    let mut shuffled = all.clone();
    shuffled.reverse();
    let a = write_store(&tmp.path().join("a"), &all, 64);
    let b = write_store(&tmp.path().join("b"), &shuffled, 64);
    let subset = |dir: &Path, window: usize| {
        let (d, eval) = TextTrainData::load(
            dir.to_str().unwrap(),
            text_columns(&["embedding"]),
            window,
            Some(0.1),
            Some(0.25),
        )
        .expect("loads");
        let d = Arc::new(d);
        let (batches, _) = epoch_batches(d.clone(), plan(2, 0, false));
        let mut ids: Vec<u64> = batches.iter().flat_map(|b| b.hashes.clone()).collect();
        ids.sort_unstable();
        (d.rows, ids, eval.map(|e| e.rows()).unwrap_or(0))
    };
    let (rows_a, ids_a, eval_a) = subset(&a, 1 << 20);
    let (rows_b, ids_b, eval_b) = subset(&b, 1 << 20);
    let (rows_s, ids_s, eval_s) = subset(&a, 30);
    // About a quarter of the ~360 training rows, the same ids whichever order or mode.
    assert!(rows_a > 60 && rows_a < 120, "{rows_a} rows kept of 400");
    assert_eq!(ids_a.len(), rows_a);
    assert_eq!((rows_a, &ids_a), (rows_b, &ids_b));
    assert_eq!((rows_a, &ids_a), (rows_s, &ids_s));
    // The held-out rows are not thinned by the training subset.
    assert!(eval_a > 20, "{eval_a} held out");
    assert_eq!((eval_a, eval_b, eval_s), (eval_a, eval_a, eval_a));
    let held: std::collections::HashSet<u64> = all
        .iter()
        .map(|r| trainer_data::seeds::id_hash(&r.id))
        .filter(|&h| trainer_data::seeds::is_held_out(h, 0.1))
        .collect();
    assert!(ids_a.iter().all(|h| !held.contains(h)));
}

#[test]
fn image_batches_do_not_depend_on_the_order_rows_were_stored() {
    use data_support::{columns as image_columns, synth};
    use trainer_data::{Loader, TrainData};
    let tmp = tempfile::tempdir().unwrap();
    let s = synth(90, 1);
    // The same rows, reversed, split over two files.
    let mut r = synth(90, 1);
    r.ids.reverse();
    r.labels.reverse();
    let rev_rows =
        |v: &[f32], w: usize| -> Vec<f32> { v.chunks(w).rev().flatten().copied().collect() };
    r.x = rev_rows(&s.x, s.dim);
    r.logits = rev_rows(&s.logits, s.classes);
    r.emb = rev_rows(&s.emb, data_support::EMB);
    let a = tmp.path().join("a.parquet");
    write_parquet(&a, image_columns(&s));
    let bdir = tmp.path().join("b");
    std::fs::create_dir_all(&bdir).unwrap();
    let part = |from: usize, to: usize| data_support::Synth {
        ids: r.ids[from..to].to_vec(),
        x: r.x[from * s.dim..to * s.dim].to_vec(),
        labels: r.labels[from..to].to_vec(),
        logits: r.logits[from * s.classes..to * s.classes].to_vec(),
        emb: r.emb[from * data_support::EMB..to * data_support::EMB].to_vec(),
        dim: s.dim,
        classes: s.classes,
    };
    write_parquet(&bdir.join("p0.parquet"), image_columns(&part(0, 40)));
    write_parquet(&bdir.join("p1.parquet"), image_columns(&part(40, 90)));
    let batches = |train: &Path| {
        let cfg = data_support::kd_config(train, train, 1, "");
        let cfg = RunConfig::parse(&cfg, Path::new("t.toml")).unwrap();
        let data = Arc::new(TrainData::load(&cfg.data, &cfg.losses).unwrap());
        Loader::epoch(data, 16, 3, 2, None)
            .collect::<Result<Vec<_>, _>>()
            .expect("batches")
    };
    let (ba, bb) = (batches(&a), batches(&bdir));
    assert_eq!(ba.len(), 6);
    assert_eq!(ba, bb);
}

fn train_run(dir: &Path, name: &str, body: &str, opts: TrainOptions) -> Result<Summary, String> {
    let cfg = write_config(dir, &format!("{name}.toml"), body);
    let o = TrainOptions {
        config: Some(cfg),
        out: Some(dir.join(name)),
        quiet: true,
        ..opts
    };
    match train::run(&o).map_err(|e| e.to_string())? {
        RunOutcome::Finished(s) => Ok(s),
        other => Err(format!("not finished: {other:?}")),
    }
}

fn assert_distils(s: &Summary, dir: &Path, min_gain: f64, min_after: f64) {
    let t = s.text.as_ref().expect("text summary");
    let (before, after) = (
        t.initial_eval.as_ref().expect("initial eval"),
        t.final_eval.as_ref().expect("final eval"),
    );
    assert!(
        after.fidelity > before.fidelity + min_gain && after.fidelity > min_after,
        "fidelity {:.3} -> {:.3}",
        before.fidelity,
        after.fidelity
    );
    assert!(
        after.loss < before.loss,
        "eval loss {} -> {}",
        before.loss,
        after.loss
    );
    let epochs = student_trainer::metrics::read_epochs(&dir.join("metrics.jsonl")).unwrap();
    assert!(epochs.len() >= 2);
    let first = epochs.first().unwrap().train_loss;
    let last = epochs.last().unwrap().train_loss;
    assert!(last < first, "train loss {first} -> {last}");
    assert!(epochs.iter().all(|e| e.text_eval.is_some()));
}

#[test]
fn a_static_student_distils_and_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let store = write_store(&tmp.path().join("store"), &rows(600, 5), 256);
    let body = run_config(&store, STATIC, COSINE_AND_NCE, 6, "bucket_by_length = true");
    let s = train_run(
        tmp.path(),
        "static",
        &body,
        TrainOptions {
            export_onnx: true,
            ..Default::default()
        },
    )
    .expect("trains");
    assert_distils(&s, &tmp.path().join("static"), 0.2, 0.8);
    assert!(tmp.path().join("static/student.onnx").is_file());
    assert!(s.files.contains(&"student.safetensors".to_string()));
}

/// Runs the exported ONNX and candle (from `student.safetensors`) on one padded batch of mixed
/// lengths; returns the largest difference over `embedding` and every `hidden{i}`.
fn onnx_vs_candle(run: &Path, cfg: &StudentConfig, token_types: bool) -> f32 {
    onnx_vs_candle_at(run, cfg, None, token_types)
}

/// [`onnx_vs_candle`] for `student.onnx` (`exit` = `None`) or the truncated `exit{L}.onnx` of
/// `(L, its [self_distill] table)`, whose `embedding` is compared with the exit head's output
/// (heads from `exits.safetensors`) and which must have exactly `hidden0..=hidden{L}`.
fn onnx_vs_candle_at(
    run: &Path,
    cfg: &StudentConfig,
    exit: Option<(usize, &SelfDistillConfig)>,
    token_types: bool,
) -> f32 {
    let mut tensors = candle_core::safetensors::load(run.join("student.safetensors"), &Device::Cpu)
        .expect("weights");
    if exit.is_some() {
        tensors.extend(
            candle_core::safetensors::load(run.join("exits.safetensors"), &Device::Cpu)
                .expect("exit weights"),
        );
    }
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let student = TextStudent::new(cfg, vb.clone()).expect("student from its weights");
    let rows: Vec<Vec<u32>> = vec![
        vec![3, 9, 17, 2, 40],
        vec![5],
        vec![11, 12, 13],
        vec![47, 1],
    ];
    let (ids, mask) = trainer_core::model::text::pad_batch(&rows, 0).unwrap();
    let mut out = student.forward(&ids, &mask, None).unwrap();
    let model = match exit {
        None => "student.onnx".to_string(),
        Some((layer, sd)) => {
            // The hint projection is training-only: not in exits.safetensors.
            let sd = SelfDistillConfig {
                exits: vec![layer],
                hint_weight: 0.0,
                ..sd.clone()
            };
            let heads = Exits::for_layers(&sd, &student.feature_dims(), student.output_dim(), &vb)
                .expect("exit head from its weights");
            out.embedding = heads.outputs(&out.hidden).unwrap().remove(0);
            out.hidden.truncate(layer + 1);
            format!("exit{layer}.onnx")
        }
    };
    let ids_i64: Vec<i64> = ids
        .flatten_all()
        .unwrap()
        .to_vec1::<u32>()
        .unwrap()
        .iter()
        .map(|&x| x as i64)
        .collect();
    let mask_i64: Vec<i64> = mask
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&x| x as i64)
        .collect();
    let batch = TokenBatch {
        rows: 4,
        seq: 5,
        token_type_ids: vec![0; ids_i64.len()],
        input_ids: ids_i64,
        attention_mask: mask_i64,
    };
    let lib = distill_tests::ort_lib();
    let mut enc = OnnxTextEncoder::load(&run.join(&model), Some(&lib)).expect("onnx loads");
    assert_eq!(enc.has_token_types(), token_types);
    let got = enc.run(&batch, &[]).expect("onnx runs");
    assert_eq!(
        got.len(),
        out.hidden.len() + 1,
        "{model}: embedding + hidden{{i}}"
    );
    let mut worst = 0f32;
    for o in got {
        let want = if o.name == "embedding" {
            out.embedding.clone()
        } else {
            let i: usize = o
                .name
                .trim_start_matches("hidden")
                .parse()
                .expect("hidden{i}");
            out.hidden[i].clone()
        };
        let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(want.len(), o.data.len(), "{}", o.name);
        for (a, b) in want.iter().zip(&o.data) {
            worst = worst.max((a - b).abs());
        }
    }
    worst
}

#[test]
fn a_transformer_student_distils_with_a_tapped_layer_and_matches_its_onnx() {
    let tmp = tempfile::tempdir().unwrap();
    let store = write_store(&tmp.path().join("store"), &rows(600, 6), 256);
    let losses = format!(
        "{COSINE_AND_NCE}\n[[loss]]\nkind = \"feature\"\nteacher = \"layer3\"\nstudent_layer = 1\nweight = 0.5\n\n[[loss]]\nkind = \"sp\"\nteacher = \"embedding\"\nweight = 0.5\n"
    );
    let body = run_config(
        &store,
        TRANSFORMER,
        &losses,
        12,
        "token_types = \"token_type_ids\"\nbucket_by_length = true",
    );
    let s = train_run(
        tmp.path(),
        "tf",
        &body,
        TrainOptions {
            export_onnx: true,
            ..Default::default()
        },
    )
    .expect("trains");
    assert_distils(&s, &tmp.path().join("tf"), 0.3, 0.6);
    let cfg = RunConfig::parse(&body, Path::new("tf.toml")).unwrap();
    let worst = onnx_vs_candle(&tmp.path().join("tf"), &cfg.student, true);
    assert!(worst < 1e-4, "ONNX vs candle max |diff| {worst}");
    // The layer term has its own projector (16 -> 6), trained but not exported.
    let saved =
        candle_core::safetensors::load(tmp.path().join("tf/student.safetensors"), &Device::Cpu)
            .unwrap();
    assert!(saved.keys().all(|k| !k.starts_with("__proj")));
    let labels = &s.text.unwrap().final_eval.unwrap().terms;
    assert!(labels.contains_key("feature:layer3@hidden1"), "{labels:?}");
}

#[test]
fn resume_gives_the_weights_of_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let store = write_store(&tmp.path().join("store"), &rows(300, 7), 128);
    let body = run_config(
        &store,
        TRANSFORMER,
        COSINE_AND_NCE,
        3,
        "shuffle_window = 100",
    );
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    assert_resume_is_bit_identical(&plain, &body, &["student.safetensors"], 3);
    // With an exit: its head and hint projection are in the checkpoint too; a metrics line
    // per network and epoch.
    let body = body + "\n[self_distill]\nexits = [0]\nhint_weight = 0.1\n";
    let exits = tmp.path().join("exits");
    std::fs::create_dir_all(&exits).unwrap();
    assert_resume_is_bit_identical(
        &exits,
        &body,
        &["student.safetensors", "exits.safetensors"],
        6,
    );
}

/// Trains `body` uninterrupted and as 1 epoch + `--resume`; `files` (safetensors) must be
/// bit-identical and the resumed `metrics.jsonl` must hold `lines` lines.
fn assert_resume_is_bit_identical(dir: &Path, body: &str, files: &[&str], lines: usize) {
    train_run(dir, "whole", body, TrainOptions::default()).expect("uninterrupted");
    let cfg = write_config(dir, "split.toml", body);
    let o = TrainOptions {
        config: Some(cfg),
        out: Some(dir.join("split")),
        quiet: true,
        stop_after: Some(1),
        ..Default::default()
    };
    assert!(matches!(
        train::run(&o),
        Ok(RunOutcome::Paused { epochs: 1 })
    ));
    let o = TrainOptions {
        config: None,
        resume: true,
        stop_after: None,
        ..o
    };
    assert!(matches!(train::run(&o), Ok(RunOutcome::Finished(_))));
    for file in files {
        let load = |name: &str| {
            candle_core::safetensors::load(dir.join(name).join(file), &Device::Cpu).unwrap()
        };
        let (a, b) = (load("whole"), load("split"));
        assert_eq!(a.len(), b.len());
        for (name, t) in &a {
            let u = &b[name];
            let d = t
                .sub(u)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(d, 0.0, "{file}: {name} differs by {d}");
        }
    }
    let m = student_trainer::metrics::read_epochs(&dir.join("split/metrics.jsonl")).unwrap();
    assert_eq!(m.len(), lines);
}

#[test]
fn a_static_student_starts_as_the_teachers_pca_table_mapped_back() {
    let tmp = tempfile::tempdir().unwrap();
    // A source table of width 6 and rank 3: PCA to 3 components loses nothing.
    let mut r = Rng::new(5);
    let basis: Vec<f32> = (0..3 * 6).map(|_| r.next_f32() - 0.5).collect();
    let mut src = Vec::new();
    for _ in 0..VOCAB {
        let c: Vec<f32> = (0..3).map(|_| r.next_f32() * 2.0 - 1.0).collect();
        for j in 0..6 {
            src.push((0..3).map(|k| c[k] * basis[k * 6 + j]).sum::<f32>() + 0.3);
        }
    }
    let table = Tensor::from_vec(src.clone(), (VOCAB, 6), &Device::Cpu).unwrap();
    let path = tmp.path().join("teacher.safetensors");
    let mut m = HashMap::new();
    m.insert("embeddings.word_embeddings.weight".to_string(), table);
    candle_core::safetensors::save(&m, &path).unwrap();
    let cfg: StudentConfig = toml::from_str(&format!(
        "arch = \"static\"\nvocab = {VOCAB}\ndim = 3\nproject_to = 6\ninit = {{ from = \"{}\", pca = true }}",
        path.display()
    ))
    .unwrap();
    let (_vm, s) = TextStudent::build(&cfg).expect("builds");
    let (ids, mask) = trainer_core::model::text::pad_batch(&[vec![4, 9], vec![30]], 0).unwrap();
    let got = s
        .forward(&ids, &mask, None)
        .unwrap()
        .embedding
        .to_vec2::<f32>()
        .unwrap();
    for (row, toks) in got.iter().zip([vec![4usize, 9], vec![30]]) {
        for j in 0..6 {
            let want = toks.iter().map(|&t| src[t * 6 + j]).sum::<f32>() / toks.len() as f32;
            assert!((row[j] - want).abs() < 1e-4, "{} vs {want}", row[j]);
        }
    }
}

/// Writes a one-file store whose columns are given, and returns the config to train on it.
fn bad_store(
    dir: &Path,
    name: &str,
    cols: Vec<(&'static str, ArrayRef)>,
    student: &str,
    losses: &str,
) -> String {
    let store = dir.join(name);
    std::fs::create_dir_all(&store).unwrap();
    write_parquet(&store.join("shard-000000.parquet"), cols);
    run_config(&store, student, losses, 1, "")
}

fn ids(n: usize) -> ArrayRef {
    let mut b = StringBuilder::new();
    for i in 0..n {
        b.append_value(format!("r{i}"));
    }
    Arc::new(b.finish())
}

fn emb(n: usize, w: usize) -> ArrayRef {
    fsl(vec![0.5; n * w], w)
}

#[test]
fn bad_inputs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let n = 40;
    let good_tokens = || token_list(&rows(n, 8), |r| r.tokens.clone());
    let feature = "[[loss]]\nkind = \"feature\"\nteacher = \"embedding\"\n";
    let floats = Arc::new(Float32Array::from(vec![1.0; n])) as ArrayRef;
    let mut over = ListBuilder::new(Int64Builder::new());
    for i in 0..n {
        over.values()
            .append_slice(if i == 13 { &[1, 5000, 2] } else { &[1, 2] });
        over.append(true);
    }
    let mut empty = ListBuilder::new(Int32Builder::new());
    for i in 0..n {
        if i != 21 {
            empty.values().append_slice(&[3, 4]);
        }
        empty.append(true);
    }
    let mut nulls = ListBuilder::new(Int32Builder::new());
    for i in 0..n {
        if i == 5 {
            nulls.append(false);
        } else {
            nulls.values().append_slice(&[3, 4]);
            nulls.append(true);
        }
    }
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "wrong_type",
            bad_store(
                d,
                "wrong_type",
                vec![
                    ("id", ids(n)),
                    ("input_ids", floats),
                    ("embedding", emb(n, EMB)),
                ],
                STATIC,
                feature,
            ),
            vec![
                "input_ids",
                "List<Int32> or List<Int64>",
                "found Float32",
                "wrong_type",
            ],
        ),
        (
            "beyond_vocab",
            bad_store(
                d,
                "beyond_vocab",
                vec![
                    ("id", ids(n)),
                    ("input_ids", Arc::new(over.finish())),
                    ("embedding", emb(n, EMB)),
                ],
                STATIC,
                feature,
            ),
            vec![
                "input_ids",
                "row 13: token id 5000 is not below 48",
                "vocabulary",
                "shard-000000.parquet",
            ],
        ),
        (
            "empty_row",
            bad_store(
                d,
                "empty_row",
                vec![
                    ("id", ids(n)),
                    ("input_ids", Arc::new(empty.finish())),
                    ("embedding", emb(n, EMB)),
                ],
                STATIC,
                feature,
            ),
            vec!["input_ids", "row 21 has no tokens"],
        ),
        (
            "null_row",
            bad_store(
                d,
                "null_row",
                vec![
                    ("id", ids(n)),
                    ("input_ids", Arc::new(nulls.finish())),
                    ("embedding", emb(n, EMB)),
                ],
                STATIC,
                feature,
            ),
            vec!["input_ids", "null value at row 5"],
        ),
        (
            "width",
            bad_store(
                d,
                "width",
                vec![
                    ("id", ids(n)),
                    ("input_ids", good_tokens()),
                    ("embedding", emb(n, 12)),
                ],
                STATIC,
                feature,
            ),
            vec![
                "loss[0]",
                "width 8",
                "\"embedding\" (width 12)",
                "student.project_to = 12",
            ],
        ),
        (
            "missing_column",
            bad_store(
                d,
                "missing_column",
                vec![
                    ("id", ids(n)),
                    ("input_ids", good_tokens()),
                    ("emb", emb(n, EMB)),
                ],
                STATIC,
                feature,
            ),
            vec!["column \"embedding\" not found", "emb"],
        ),
        (
            "no_layers",
            bad_store(
                d,
                "no_layers",
                vec![
                    ("id", ids(n)),
                    ("input_ids", good_tokens()),
                    ("embedding", emb(n, EMB)),
                ],
                STATIC,
                "[[loss]]\nkind = \"sp\"\nteacher = \"embedding\"\nstudent_layer = 0\n",
            ),
            vec!["loss[0].student_layer = 0", "static student has no layers"],
        ),
    ];
    for (name, body, want) in cases {
        let e =
            train_run(d, &format!("run-{name}"), &body, TrainOptions::default()).expect_err(name);
        for w in want {
            assert!(e.contains(w), "{name}: {e:?} lacks {w:?}");
        }
    }
}

#[test]
fn text_config_keys_are_checked() {
    let p = Path::new("t.toml");
    let base = |student: &str, data: &str, losses: &str| {
        run_config(Path::new("x"), student, losses, 1, data)
    };
    let cases = [
        (
            base(
                STATIC,
                "",
                "[[loss]]\nkind = \"kd\"\nteacher = \"embedding\"\ntemperature = 2.0\n",
            ),
            "loss[0].kind",
        ),
        (
            base(STATIC, "token_types = \"token_type_ids\"", COSINE_AND_NCE),
            "data.token_types",
        ),
        (
            base(STATIC, "eval = \"e\"", COSINE_AND_NCE),
            "data.eval_fraction",
        ),
        (
            base(STATIC, "shuffle_window = 0", COSINE_AND_NCE),
            "data.shuffle_window",
        ),
        (
            base(STATIC, "label = \"label\"", COSINE_AND_NCE),
            "data.label",
        ),
    ];
    for (text, key) in cases {
        let e = RunConfig::parse(&text, p).expect_err(key).to_string();
        assert!(e.contains(&format!("key `{key}`")), "{e}");
    }
    let mnist = data_support::kd_config(Path::new("a"), Path::new("b"), 1, "").replace(
        "label = \"label\"",
        "label = \"label\"\nbucket_by_length = true",
    );
    let e = RunConfig::parse(&mnist, p)
        .expect_err("image run")
        .to_string();
    assert!(
        e.contains("data.bucket_by_length") && e.contains("text students only"),
        "{e}"
    );
    RunConfig::parse(
        &base(
            TRANSFORMER,
            "bucket_by_length = true\nshuffle_window = 1000",
            COSINE_AND_NCE,
        ),
        p,
    )
    .expect("a valid text config");
}

#[test]
fn an_eval_source_is_read_whole_and_scored_before_and_after() {
    let tmp = tempfile::tempdir().unwrap();
    let train_store = write_store(&tmp.path().join("train"), &rows(300, 9), 128);
    let eval_store = write_store(&tmp.path().join("eval"), &rows(70, 10), 32);
    let body = run_config(&train_store, STATIC, COSINE_AND_NCE, 3, "").replace(
        "eval_fraction = 0.15",
        &format!("eval = \"{}\"", eval_store.display()),
    );
    let s = train_run(tmp.path(), "with-eval", &body, TrainOptions::default()).expect("trains");
    let t = s.text.as_ref().expect("text summary");
    assert_eq!(s.train_rows, 300, "no row held out of the training source");
    assert_eq!(t.eval_rows, 70);
    let (before, after) = (
        t.initial_eval.as_ref().unwrap(),
        t.final_eval.as_ref().unwrap(),
    );
    assert_eq!((before.rows, after.rows), (70, 70));
    assert!(
        after.fidelity > before.fidelity,
        "{} -> {}",
        before.fidelity,
        after.fidelity
    );
}

/// [`TRANSFORMER`] with three blocks.
fn transformer3() -> String {
    TRANSFORMER.replace("layers = 2", "layers = 3")
}

const EXITS: &str = r#"
[self_distill]
exits = [1, 0]
head_hidden = 8
kd_weight = 0.5
hint_weight = 0.1
"#;

#[test]
fn exit_losses_reach_every_exit_head_and_the_shared_blocks_only() {
    use student_trainer::train::text_exits::TextSelfDistill;
    use student_trainer::train::text_objective::TextObjective;
    let body = run_config(Path::new("x"), &transformer3(), COSINE_AND_NCE, 1, "") + EXITS;
    let cfg = RunConfig::parse(&body, Path::new("t.toml")).expect("parses");
    let vm = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let student = TextStudent::new(&cfg.student, vb.clone()).unwrap();
    let objective =
        TextObjective::new(&cfg.losses, &["embedding".into()], &[EMB], &student, &vb).unwrap();
    let sd = TextSelfDistill::new(cfg.self_distill.as_ref().unwrap(), &student, &vb).unwrap();
    assert_eq!(
        sd.labels(&objective),
        [
            "exit0:feature:embedding",
            "exit0:infonce:embedding",
            "exit0:kd",
            "exit0:hint",
            "exit1:feature:embedding",
            "exit1:infonce:embedding",
            "exit1:kd",
            "exit1:hint"
        ]
    );
    let rs = rows(8, 3);
    let toks: Vec<Vec<u32>> = rs
        .iter()
        .map(|r| r.tokens.iter().map(|&t| t as u32).collect())
        .collect();
    let (ids, mask) = trainer_core::model::text::pad_batch(&toks, 0).unwrap();
    let emb: Vec<f32> = rs.iter().flat_map(|r| r.emb.clone()).collect();
    let target = Tensor::from_vec(emb, (8, EMB), &Device::Cpu).unwrap();
    let out = student.forward(&ids, &mask, None).unwrap();
    let (loss, values) = sd.loss(&out, &[target], &objective).unwrap();
    assert_eq!(values.len(), 8);
    assert!(
        values.iter().all(|v| v.is_finite() && *v > 0.0),
        "{values:?}"
    );
    let grads = loss.backward().unwrap();
    let vars = vm.data().lock().unwrap();
    assert!(vars.keys().any(|k| k == "__exit1.fc.weight"));
    for (name, var) in vars.iter() {
        let g = grads
            .get(var.as_tensor())
            .map(|g| {
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            })
            .unwrap_or(0.0);
        // Softmax ignores a per-query constant, so the key bias gets no gradient anywhere.
        if name.ends_with("attention.self.key.bias") {
            continue;
        }
        let shared = [
            "__exit",
            "embeddings.",
            "encoder.layer.0.",
            "encoder.layer.1.",
        ]
        .iter()
        .any(|p| name.starts_with(p));
        if shared {
            assert!(g > 0.0, "{name}: no gradient from the exits");
        } else {
            // The deepest block and the projector only feed the detached targets.
            assert_eq!(g, 0.0, "{name}: gradient {g} from the exits");
        }
    }
}

#[test]
fn a_linear_exit_head_starts_as_the_students_own_output_map() {
    use student_trainer::train::text_exits::TextSelfDistill;
    use student_trainer::train::text_objective::TextObjective;
    use trainer_core::model::text::TextNetwork;
    let body = run_config(Path::new("x"), &transformer3(), COSINE_AND_NCE, 1, "")
        + "\n[self_distill]\nexits = [0, 1]\n";
    let cfg = RunConfig::parse(&body, Path::new("t.toml")).expect("parses");
    let vm = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let student = TextStudent::new(&cfg.student, vb.clone()).unwrap();
    let objective =
        TextObjective::new(&cfg.losses, &["embedding".into()], &[EMB], &student, &vb).unwrap();
    let sd = TextSelfDistill::new(cfg.self_distill.as_ref().unwrap(), &student, &vb).unwrap();
    sd.init_heads(&student, &vm).unwrap();
    let TextNetwork::Transformer(t) = student.network() else {
        panic!("a transformer")
    };
    let projector = t.projector.as_ref().expect("project_to = 8");
    let (ids, mask) = trainer_core::model::text::pad_batch(&[vec![3, 9, 17], vec![5]], 0).unwrap();
    let out = student.forward(&ids, &mask, None).unwrap();
    let target = Tensor::zeros((2, EMB), DType::F32, &Device::Cpu).unwrap();
    for (l, exit) in sd
        .terms(&out, &[target], &objective)
        .unwrap()
        .iter()
        .enumerate()
    {
        let want = trainer_core::model::linear::linear(projector, &out.hidden[l]).unwrap();
        let d = (&exit.embedding - &want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0, "exit{l} starts {d} away from the truncated student");
    }
}

fn onnx_counts(path: &Path) -> (usize, usize, Vec<String>) {
    let model = distill_proto::onnx::decode_model(&std::fs::read(path).unwrap()).unwrap();
    let g = model.graph.expect("graph");
    let matmuls = g.node.iter().filter(|n| n.op_type == "MatMul").count();
    let floats = g
        .initializer
        .iter()
        .map(|t| t.float_data.len() + t.raw_data.len() / 4)
        .sum();
    let names = g.initializer.iter().map(|t| t.name.clone()).collect();
    (matmuls, floats, names)
}

#[test]
fn transformer_exits_train_log_and_export_truncated_onnx() {
    let tmp = tempfile::tempdir().unwrap();
    let store = write_store(&tmp.path().join("store"), &rows(400, 8), 256);
    let body = run_config(
        &store,
        &transformer3(),
        COSINE_AND_NCE,
        3,
        "token_types = \"token_type_ids\"",
    ) + EXITS;
    let s = train_run(
        tmp.path(),
        "sd",
        &body,
        TrainOptions {
            export_onnx: true,
            ..Default::default()
        },
    )
    .expect("trains");
    let run = tmp.path().join("sd");
    let lines = student_trainer::metrics::read_epochs(&run.join("metrics.jsonl")).unwrap();
    let nets: Vec<&str> = lines.iter().filter_map(|m| m.network.as_deref()).collect();
    assert_eq!(nets, ["student", "exit0", "exit1"].repeat(3));
    for m in lines
        .iter()
        .filter(|m| m.network.as_deref() != Some("student"))
    {
        let name = m.network.clone().unwrap();
        let e = m.text_eval.as_ref().expect("exit eval");
        for k in ["feature:embedding", "infonce:embedding", "kd", "hint"] {
            assert!(e.terms.contains_key(k), "{name}: {:?}", e.terms);
        }
        assert!(e.fidelity.is_finite() && e.loss.is_finite());
        assert!(!m.train_terms.is_empty());
        assert!(m
            .train_terms
            .keys()
            .all(|k| k.starts_with(&format!("{name}:"))));
    }
    let first = lines[1].text_eval.as_ref().unwrap().fidelity;
    let last = lines[7].text_eval.as_ref().unwrap().fidelity;
    assert!(last > first, "exit0 fidelity {first} -> {last}");
    for f in ["exits.safetensors", "exit0.onnx", "exit1.onnx"] {
        assert!(s.files.contains(&f.to_string()), "{:?}", s.files);
    }
    let student_w =
        candle_core::safetensors::load(run.join("student.safetensors"), &Device::Cpu).unwrap();
    assert!(student_w.keys().all(|k| !k.starts_with("__")));
    let exit_w =
        candle_core::safetensors::load(run.join("exits.safetensors"), &Device::Cpu).unwrap();
    assert!(exit_w
        .keys()
        .all(|k| k.starts_with("__exit") && !k.contains(".hint.")));
    assert!(exit_w.contains_key("__exit0.out.weight"));
    let cfg = RunConfig::parse(&body, Path::new("sd.toml")).unwrap();
    let sd = cfg.self_distill.as_ref().unwrap();
    let (full_mm, full_floats, _) = onnx_counts(&run.join("student.onnx"));
    assert_eq!(full_mm, 6);
    for layer in [0usize, 1] {
        let worst = onnx_vs_candle_at(&run, &cfg.student, Some((layer, sd)), true);
        assert!(
            worst < 1e-5,
            "exit{layer}: ONNX vs candle max |diff| {worst}"
        );
        let n = format!("exit{layer}");
        let summary = &s.networks[&n];
        assert_eq!(summary.role, "exit");
        assert_eq!(summary.files, [format!("{n}.onnx")]);
        assert!(summary.text_eval.is_some());
        let (mm, floats, names) = onnx_counts(&run.join(format!("{n}.onnx")));
        assert_eq!(mm, 2 * (layer + 1), "{n}: two attention MatMuls per block");
        assert!(floats < full_floats, "{n}: {floats} vs {full_floats}");
        assert!(summary.param_count < s.param_count);
        for deeper in layer + 1..3 {
            let p = format!("encoder.layer.{deeper}.");
            assert!(names.iter().all(|i| !i.starts_with(&p)), "{n} holds {p}");
        }
        assert!(names.iter().all(|i| !i.starts_with("projector")));
    }
    assert!(onnx_vs_candle(&run, &cfg.student, true) < 1e-4);
}

#[test]
fn text_self_distill_configs_are_checked() {
    let p = Path::new("t.toml");
    let base = |student: &str, sd: &str| {
        run_config(Path::new("x"), student, COSINE_AND_NCE, 1, "") + "\n[self_distill]\n" + sd
    };
    let t3 = transformer3();
    let cases = [
        (TRANSFORMER, "exits = [1]", "self_distill.exits[0]", "0..=0"),
        (
            t3.as_str(),
            "exits = [0, 2]",
            "self_distill.exits[1]",
            "0..=1",
        ),
        (
            t3.as_str(),
            "exits = [1, 1]",
            "self_distill.exits[1]",
            "twice",
        ),
        (
            TRANSFORMER,
            "exits = []",
            "self_distill.exits",
            "at least one",
        ),
        (STATIC, "exits = [0]", "self_distill", "static student"),
        (
            TRANSFORMER,
            "exits = [0]\ntemperature = 2.0",
            "self_distill.temperature",
            "cosine",
        ),
        (
            TRANSFORMER,
            "exits = [0]\nkd_weight = 1.5",
            "self_distill.kd_weight",
            "[0, 1]",
        ),
        (
            TRANSFORMER,
            "exits = [0]\nhead_hidden = 0",
            "self_distill.head_hidden",
            "at least 1",
        ),
    ];
    for (student, sd, key, says) in cases {
        let e = RunConfig::parse(&base(student, sd), p)
            .expect_err(key)
            .to_string();
        assert!(
            e.contains(&format!("key `{key}`")) && e.contains(says),
            "{sd}: {e}"
        );
    }
    RunConfig::parse(&base(TRANSFORMER, "exits = [0]\nhint_weight = 0.1"), p)
        .expect("a valid text self_distill config");
}
