//! Online distillation (mutual learning, teacher-student) and self-distillation on the small
//! synthetic set: gradients reach every network, runs are deterministic, `--resume` ends
//! bit-identical to an uninterrupted run, every network and exit is evaluated and exported,
//! and a truncated exit model matches the full network's exit in ONNX Runtime.

mod data_support;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use data_support::{finished, numbers, pixel_data, write_config, write_sets};
use distill_tests::paths::ort_lib;
use student_trainer::config::{RunConfig, SelfDistillConfig};
use student_trainer::metrics::Summary;
use student_trainer::train::epoch::batch_tensors;
use student_trainer::train::online::OnlineNets;
use student_trainer::train::setup::Setup;
use student_trainer::train::{run, RunOutcome, TrainOptions};
use trainer_core::export::export_exit_onnx;
use trainer_core::model::{Exits, Student, StudentConfig};
use trainer_data::{EvalData, Loader};
use trainer_eval::OnnxClassifier;

fn base(train: &Path, eval: &Path, epochs: usize, student: &str, extra: &str) -> String {
    format!(
        r#"
{data}eval_teacher = "logits"

[student]
{student}

[[loss]]
kind = "ce"

[train]
epochs = {epochs}
batch_size = 32
lr = 0.01
seed = 5
jitter = 0

{extra}
"#,
        data = pixel_data(train, eval)
    )
}

const MLP: &str = "arch = \"mlp\"\nhidden = [32, 24]\ndropout = 0.1";

const MUTUAL: &str = r#"
[online]
mode = "mutual"
temperature = 2.0
[online.peers.peer]
arch = "mlp"
hidden = [32, 24]
dropout = 0.1
[online.peers.wide]
arch = "mlp"
hidden = [48]
"#;

const TEACHER_STUDENT: &str = r#"
[online]
mode = "teacher_student"
temperature = 3.0
warmup_epochs = 1
teacher_weight = 0.5
[online.teacher]
arch = "mlp"
hidden = [64, 64]
"#;

const SELF_DISTILL: &str = r#"
[self_distill]
exits = [0]
head_hidden = 16
temperature = 3.0
kd_weight = 0.5
hint_weight = 0.1
"#;

fn opts(config: Option<&Path>, out: &Path) -> TrainOptions {
    TrainOptions {
        config: config.map(Path::to_path_buf),
        out: Some(out.to_path_buf()),
        resume: false,
        quiet: true,
        stop_after: None,
        export_onnx: true,
        plot: false,
    }
}

fn setup(dir: &Path, extra: &str, student: &str) -> (RunConfig, Setup) {
    let (train, eval) = write_sets(dir, 200, 50);
    let text = base(&train, &eval, 2, student, extra);
    let cfg = RunConfig::parse(&text, Path::new("modes.toml")).expect("config");
    let s = Setup::build(&cfg, true).expect("setup");
    (cfg, s)
}

/// The absolute gradient sum of every variable, by name (`None` = no gradient).
fn gradient_norms(setup: &Setup, loss: &Tensor) -> Vec<(String, Option<f32>)> {
    let grads = loss.backward().expect("backward");
    let mut out: Vec<(String, Option<f32>)> = setup
        .vars()
        .expect("vars")
        .into_iter()
        .map(|(n, v)| {
            let g = grads.get(v.as_tensor()).map(|g| {
                g.abs()
                    .and_then(|a| a.sum_all())
                    .and_then(|s| s.to_scalar::<f32>())
                    .expect("grad norm")
            });
            (n, g)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn first_batch(
    setup: &Setup,
) -> (
    Tensor,
    Option<Tensor>,
    Vec<student_trainer::train::objective::TargetTensors>,
) {
    let batch = Loader::epoch(setup.data.clone(), 32, 5, 0, None)
        .next()
        .expect("a batch")
        .expect("batch assembled");
    batch_tensors(batch, setup.input_dim, &Device::Cpu).expect("tensors")
}

#[test]
fn mutual_learning_gradients_reach_every_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, setup) = setup(dir.path(), MUTUAL, MLP);
    let nets = OnlineNets::new(&cfg, &setup).expect("networks");
    assert_eq!(nets.names(), ["student", "peer", "wide"]);
    let (x, y, t) = first_batch(&setup);
    let l = nets.loss(&setup, &x, y.as_ref(), &t, 0).expect("loss");
    assert_eq!(l.active, [true, true, true]);
    assert_eq!(l.values.len(), nets.labels(&setup).len());
    let norms = gradient_norms(&setup, &l.total);
    // 3 networks: student 2 hidden + head, peer the same, wide 1 hidden + head; 2 vars each.
    assert_eq!(norms.len(), 6 + 6 + 4, "{norms:?}");
    for (name, g) in &norms {
        let g = g.unwrap_or_else(|| panic!("no gradient reaches {name}"));
        assert!(g > 0.0 && g.is_finite(), "{name}: gradient sum {g}");
    }
    for prefix in ["online.peer.", "online.wide."] {
        assert!(norms.iter().any(|(n, _)| n.starts_with(prefix)), "{prefix}");
    }
}

#[test]
fn teacher_student_warms_up_the_teacher_and_detaches_targets() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No dropout: the student's loss is recomputed below and must see the same forward pass.
    let (cfg, setup) = setup(
        dir.path(),
        TEACHER_STUDENT,
        "arch = \"mlp\"\nhidden = [32, 24]",
    );
    let nets = OnlineNets::new(&cfg, &setup).expect("networks");
    let (x, y, t) = first_batch(&setup);

    // Warm-up epoch: only the teacher trains; the student gets no gradient at all.
    let l = nets.loss(&setup, &x, y.as_ref(), &t, 0).expect("loss");
    assert_eq!(l.active, [false, true]);
    for (name, g) in gradient_norms(&setup, &l.total) {
        if name.starts_with("online.teacher.") {
            assert!(
                g.is_some_and(|g| g > 0.0),
                "{name} gets no gradient in warm-up"
            );
        } else {
            assert!(
                g.is_none(),
                "{name} gets a gradient during the teacher's warm-up"
            );
        }
    }

    // Joint epoch: both networks train, and each gets exactly the gradient of its own loss
    // (the other's outputs are detached): the student's gradient equals that of the student's
    // loss alone.
    let l = nets.loss(&setup, &x, y.as_ref(), &t, 1).expect("loss");
    assert_eq!(l.active, [true, true]);
    let joint = gradient_norms(&setup, &l.total);
    for (name, g) in &joint {
        assert!(g.is_some_and(|g| g > 0.0), "no gradient reaches {name}");
    }
    let student_out = setup.student.forward(&x, true).expect("forward");
    let teacher_out = nets.others()[0].student.forward(&x, true).expect("forward");
    let own = (trainer_core::loss::ce(&student_out.logits, y.as_ref().expect("labels"))
        .expect("ce")
        + trainer_core::loss::kd(&student_out.logits, &teacher_out.logits.detach(), 3.0)
            .expect("kd"))
    .expect("sum");
    let alone = gradient_norms(&setup, &own);
    for ((n, a), (_, b)) in joint.iter().zip(&alone) {
        if !n.starts_with("online.") {
            let (a, b) = (a.expect("joint"), b.expect("alone"));
            assert!(
                (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                "{n}: joint {a} vs own loss {b}"
            );
        } else {
            assert!(b.is_none(), "the student's loss reaches the teacher's {n}");
        }
    }
}

#[test]
fn exit_losses_train_the_exits_and_the_shared_layers_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_cfg, setup) = setup(
        dir.path(),
        SELF_DISTILL,
        "arch = \"mlp\"\nhidden = [32, 24]",
    );
    let sd = setup.self_distill.as_ref().expect("exits");
    assert_eq!(sd.labels(), ["exit0:ce", "exit0:kd", "exit0:hint"]);
    let (x, y, _) = first_batch(&setup);
    let out = setup.student.forward(&x, true).expect("forward");
    let (loss, values) = sd
        .loss(&out, y.as_ref().expect("labels"))
        .expect("exit loss");
    assert_eq!(values.len(), 3);
    for (name, g) in gradient_norms(&setup, &loss) {
        // The exit after layer 0 reaches layer 0 and its own head (and hint projection); the
        // deepest exit's logits and features are detached targets, so deeper layers and the
        // network's own head get nothing from it.
        let reaches = name.starts_with("fc0.") || name.starts_with("__exit0.");
        if reaches {
            assert!(g.is_some_and(|g| g > 0.0), "no gradient reaches {name}");
        } else {
            assert!(g.is_none(), "the exit loss reaches {name}");
        }
    }
}

fn write_run(
    dir: &Path,
    name: &str,
    extra: &str,
    student: &str,
    epochs: usize,
) -> (PathBuf, PathBuf) {
    let (train, eval) = write_sets(dir, 300, 80);
    (
        write_config(dir, name, &base(&train, &eval, epochs, student, extra)),
        eval,
    )
}

/// A run, the same run again (identical numbers and weights), and the run paused after
/// `pause` epochs and resumed (identical too). Returns the first run's folder, its summary and
/// the eval set.
fn check_deterministic_and_resumable(
    dir: &Path,
    extra: &str,
    epochs: usize,
    pause: usize,
    files: &[&str],
) -> (PathBuf, Summary, EvalData) {
    let (cfg, eval) = write_run(dir, "mode.toml", extra, MLP, epochs);
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    let sa = finished(run(&opts(Some(&cfg), &a)).expect("run a"));
    finished(run(&opts(Some(&cfg), &b)).expect("run b"));
    assert_eq!(
        numbers(&a),
        numbers(&b),
        "same config and seed, other numbers"
    );

    let mut o = opts(Some(&cfg), &c);
    o.stop_after = Some(pause);
    assert_eq!(
        run(&o).expect("paused run"),
        RunOutcome::Paused { epochs: pause }
    );
    let mut o = opts(None, &c);
    o.resume = true;
    finished(run(&o).expect("resumed run"));
    assert_eq!(numbers(&a), numbers(&c), "resumed run's metrics differ");
    for f in files {
        let fa = std::fs::read(a.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(
            fa,
            std::fs::read(b.join(f)).expect("b"),
            "{f} differs between identical runs"
        );
        assert_eq!(
            fa,
            std::fs::read(c.join(f)).expect("c"),
            "{f} differs after resume"
        );
    }
    let eval = EvalData::load(
        &eval.display().to_string(),
        "pixels",
        "label",
        None,
        false,
        None,
        None,
    )
    .expect("eval set");
    (a, sa, eval)
}

#[test]
fn mutual_run_logs_evaluates_and_exports_every_network_and_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, s, eval) = check_deterministic_and_resumable(
        dir.path(),
        MUTUAL,
        3,
        1,
        &[
            "student.safetensors",
            "peer.safetensors",
            "wide.safetensors",
            "student.onnx",
            "peer.onnx",
            "wide.onnx",
        ],
    );
    let m = numbers(&out);
    assert_eq!(m.len(), 3 * 3, "a line per network per epoch");
    for (i, line) in m.iter().enumerate() {
        assert_eq!(line.epoch, i / 3 + 1);
        assert_eq!(
            line.network.as_deref(),
            Some(["student", "peer", "wide"][i % 3])
        );
        assert!(line.eval.is_some(), "every network is evaluated each epoch");
        assert!(
            line.train_terms.contains_key("online_kd"),
            "{:?}",
            line.train_terms
        );
    }
    assert_eq!(s.networks.len(), 2);
    assert_eq!(s.networks["peer"].role, "peer");
    // Each exported network runs in ONNX Runtime and scores what the trainer reported.
    for name in ["peer", "wide"] {
        let errors = ort_errors(&out.join(format!("{name}.onnx")), &eval);
        assert_eq!(Some(errors), s.networks[name].test_errors, "{name}");
    }
    assert_eq!(
        Some(ort_errors(&out.join("student.onnx"), &eval)),
        s.test_errors
    );
    // The peers' weights load as plain students.
    let st =
        candle_core::safetensors::load(out.join("wide.safetensors"), &Device::Cpu).expect("load");
    let mut names: Vec<_> = st.keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["fc0.bias", "fc0.weight", "out.bias", "out.weight"]);
    // `plot` redraws the [student]'s curves from a metrics file holding every network's lines.
    let png = student_trainer::cli::plot(&out).expect("plot");
    assert!(png.is_file());
}

#[test]
fn teacher_student_run_resumes_across_the_warm_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, s, _) = check_deterministic_and_resumable(
        dir.path(),
        TEACHER_STUDENT,
        2,
        1,
        &["student.safetensors", "teacher.safetensors", "teacher.onnx"],
    );
    let m = numbers(&out);
    // 1 warm-up epoch + 2 joint epochs, two networks each.
    assert_eq!(m.len(), 6);
    let student: Vec<_> = m
        .iter()
        .filter(|l| l.network.as_deref() == Some("student"))
        .collect();
    let teacher: Vec<_> = m
        .iter()
        .filter(|l| l.network.as_deref() == Some("teacher"))
        .collect();
    assert_eq!(
        student[0].steps, 0,
        "the student does not train during warm-up"
    );
    assert_eq!(teacher[2].steps, 3 * teacher[0].steps);
    assert_eq!(student[2].steps, 2 * teacher[0].steps);
    assert_eq!(s.epochs, 3);
    assert_eq!(s.networks["teacher"].role, "teacher");
}

#[test]
fn self_distill_run_logs_each_exit_and_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, s, eval) = check_deterministic_and_resumable(
        dir.path(),
        SELF_DISTILL,
        3,
        2,
        &[
            "student.safetensors",
            "exits.safetensors",
            "exit0.onnx",
            "student.onnx",
        ],
    );
    let m = numbers(&out);
    assert_eq!(m.len(), 3 * 2);
    assert_eq!(m[1].network.as_deref(), Some("exit0"));
    assert!(
        m[1].train_terms.contains_key("exit0:hint"),
        "{:?}",
        m[1].train_terms
    );
    let exit = &s.networks["exit0"];
    assert_eq!(exit.role, "exit");
    // 64→32 backbone + 32→16→10 head.
    assert_eq!(exit.param_count, 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10);
    // The student's own weights carry no exit heads.
    let st = candle_core::safetensors::load(out.join("student.safetensors"), &Device::Cpu)
        .expect("load");
    assert!(st.keys().all(|k| !k.starts_with("__")), "{:?}", st.keys());
    // The truncated exit model scores in ONNX Runtime what the trainer reported for the exit.
    assert_eq!(
        Some(ort_errors(&out.join("exit0.onnx"), &eval)),
        exit.test_errors
    );
}

#[test]
fn cnn_self_distill_run_exports_a_truncated_exit_that_scores_as_trained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cnn = "arch = \"cnn\"\nchannels = [4, 6]\nhidden = 16\ninput_shape = [1, 8, 8]";
    let (cfg, eval) = write_run(
        dir.path(),
        "cnn.toml",
        &SELF_DISTILL.replace("exits = [0]", "exits = [0, 1]"),
        cnn,
        2,
    );
    let out = dir.path().join("run");
    let s = finished(run(&opts(Some(&cfg), &out)).expect("cnn run"));
    let eval = EvalData::load(
        &eval.display().to_string(),
        "pixels",
        "label",
        None,
        false,
        None,
        None,
    )
    .expect("eval set");
    for name in ["exit0", "exit1"] {
        let errors = ort_errors(&out.join(format!("{name}.onnx")), &eval);
        assert_eq!(Some(errors), s.networks[name].test_errors, "{name}");
    }
    // exit0: conv0 (1→4) + head on the 4x4x4 map (64→16→10).
    let exit0 = &s.networks["exit0"];
    assert_eq!(exit0.param_count, 4 * 9 + 4 + 64 * 16 + 16 + 16 * 10 + 10);
    assert_eq!(
        numbers(&out).len(),
        2 * 3,
        "student, exit0, exit1 per epoch"
    );
}

fn ort_errors(model: &Path, eval: &EvalData) -> usize {
    let mut clf = OnnxClassifier::load(model, Some(&ort_lib())).expect("ort load");
    let rows = eval.labels.len();
    let logits = clf.run(&eval.input.data, rows).expect("ort run");
    let classes = logits.len() / rows;
    (0..rows)
        .filter(|&r| {
            let row = &logits[r * classes..(r + 1) * classes];
            let arg = (0..classes)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(0);
            arg as u32 != eval.labels[r]
        })
        .count()
}

/// Random student + exits, one exit exported truncated; ONNX Runtime on it vs candle's full
/// forward pass followed by the exit head.
fn check_exit_parity(
    cfg: &StudentConfig,
    sd: &SelfDistillConfig,
    input_dim: usize,
    deeper: &[&str],
) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let student = Student::new(cfg, input_dim, 7, vb.clone()).expect("student");
    let exits = Exits::new(sd, &student, &vb).expect("exits");
    for v in vm.data().lock().expect("lock").values() {
        // Non-zero biases, so a dropped bias would show.
        if v.rank() == 1 {
            let n = v.elem_count();
            let b: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) / 10.0)
                .collect();
            v.set(&Tensor::from_vec(b, n, &Device::Cpu).expect("bias"))
                .expect("set");
        }
    }
    let rows = 9;
    let x: Vec<f32> = (0..rows * input_dim)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    let xt = Tensor::from_vec(x.clone(), (rows, input_dim), &Device::Cpu).expect("x");
    let full = student.forward(&xt, false).expect("forward");
    let exit_logits = exits.logits(&full).expect("exit logits");
    let dir = tempfile::tempdir().expect("tempdir");
    for (head, want) in exits.heads().iter().zip(exit_logits) {
        let path = dir.path().join(format!("{}.onnx", head.name()));
        export_exit_onnx(&student, head, "pixels", "logits", &path).expect("export");
        let mut clf = OnnxClassifier::load(&path, Some(&ort_lib())).expect("ort load");
        let got = clf.run(&x, rows).expect("ort run");
        let want: Vec<f32> = want.flatten_all().and_then(|t| t.to_vec1()).expect("vec");
        assert_eq!(got.len(), want.len());
        let d = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            d <= 1e-5,
            "{}: ORT vs candle exit logits differ by {d}",
            head.name()
        );
        // Truncated for real: none of the deeper layers' weights are in the file.
        let model = distill_proto::onnx::decode_model(&std::fs::read(&path).expect("read"))
            .expect("decode");
        let inits: Vec<String> = model
            .graph
            .expect("graph")
            .initializer
            .iter()
            .map(|t| t.name.clone())
            .collect();
        if head.layer() == 0 {
            for d in deeper {
                assert!(
                    !inits.iter().any(|n| n == d),
                    "{d} is in the truncated graph: {inits:?}"
                );
            }
        }
    }
}

#[test]
fn truncated_mlp_exits_match_the_full_model_in_onnx_runtime() {
    let cfg = StudentConfig::Mlp {
        hidden: vec![20, 16, 12],
        dropout: 0.0,
        input_dropout: 0.0,
    };
    for head_hidden in [None, Some(8)] {
        let sd = SelfDistillConfig {
            exits: vec![1, 0],
            head_hidden,
            temperature: Some(3.0),
            kd_weight: 0.5,
            hint_weight: 0.1,
        };
        check_exit_parity(&cfg, &sd, 30, &["fc1.weight", "fc2.weight", "out.weight"]);
    }
}

#[test]
fn truncated_cnn_exits_match_the_full_model_in_onnx_runtime() {
    let cfg = StudentConfig::Cnn {
        channels: vec![4, 6],
        hidden: 16,
        dropout: 0.0,
        input_shape: [1, 12, 10],
    };
    let sd = SelfDistillConfig {
        exits: vec![0, 1],
        head_hidden: Some(8),
        temperature: Some(3.0),
        kd_weight: 0.5,
        hint_weight: 0.0,
    };
    check_exit_parity(&cfg, &sd, 120, &["conv1.weight", "fc.weight", "out.weight"]);
}

fn config_error(student: &str, extra: &str, label: bool, early: bool) -> String {
    let mut text = base(Path::new("t"), Path::new("e"), 2, student, extra);
    if !label {
        text = text.replace("label = \"label\"\n", "");
        text = text.replace(
            "[[loss]]\nkind = \"ce\"",
            "[[loss]]\nkind = \"kd\"\nteacher = \"logits\"\ntemperature = 2.0",
        );
    }
    if early {
        text = text.replace(
            "jitter = 0",
            "jitter = 0\nearly_stopping = { patience = 2, metric = \"eval_error\" }",
        );
    }
    RunConfig::parse(&text, Path::new("runs/bad.toml"))
        .expect_err("config must be rejected")
        .to_string()
}

#[test]
fn bad_mode_configs_are_clear_errors() {
    let cases: Vec<(String, String, bool, bool, &[&str])> = vec![
        (
            MLP.into(),
            "[online]\nmode = \"mutual\"\npeers = {}".to_string(),
            true,
            false,
            &["online.peers", "at least one peer"],
        ),
        (
            MLP.into(),
            "[online]\nmode = \"mutal\"\npeers = {}".to_string(),
            true,
            false,
            &["online", "mutal"],
        ),
        (
            MLP.into(),
            TEACHER_STUDENT.replace("warmup_epochs = 1", "warmup = 1"),
            true,
            false,
            &["warmup"],
        ),
        (
            MLP.into(),
            MUTUAL.replace("temperature = 2.0", "temperature = 0.0"),
            true,
            false,
            &["online.temperature", "positive"],
        ),
        (
            MLP.into(),
            MUTUAL.replace("[online.peers.peer]", "[online.peers.student]"),
            true,
            false,
            &["online.peers.student", "not \"student\""],
        ),
        (
            MLP.into(),
            MUTUAL.to_string(),
            false,
            false,
            &["online", "data.label"],
        ),
        (
            MLP.into(),
            MUTUAL.to_string(),
            true,
            true,
            &["train.early_stopping", "[online]"],
        ),
        (
            MLP.into(),
            format!("{MUTUAL}\n{SELF_DISTILL}"),
            true,
            false,
            &["not both"],
        ),
        (
            MLP.into(),
            SELF_DISTILL.replace("exits = [0]", "exits = [1]"),
            true,
            false,
            &["self_distill.exits[0]", "0..=0"],
        ),
        (
            MLP.into(),
            SELF_DISTILL.replace("exits = [0]", "exits = []"),
            true,
            false,
            &["self_distill.exits", "at least one"],
        ),
        (
            MLP.into(),
            SELF_DISTILL.replace("exits = [0]", "exits = [0, 0]"),
            true,
            false,
            &["self_distill.exits[1]", "twice"],
        ),
        (
            MLP.into(),
            SELF_DISTILL.replace("kd_weight = 0.5", "kd_weight = 1.5"),
            true,
            false,
            &["self_distill.kd_weight", "[0, 1]"],
        ),
        (
            MLP.into(),
            SELF_DISTILL.replace("hint_weight = 0.1", "hint = 0.1"),
            true,
            false,
            &["self_distill", "hint"],
        ),
        (
            "arch = \"cnn\"\nchannels = [4]\nhidden = 8\ninput_shape = [1, 8, 8]".into(),
            SELF_DISTILL.replace("exits = [0]", "exits = [1]"),
            true,
            false,
            &["self_distill.exits[0]", "conv blocks"],
        ),
    ];
    for (student, extra, label, early, want) in cases {
        let e = config_error(&student, &extra, label, early);
        assert!(e.contains("runs/bad.toml"), "{e}");
        for w in want {
            assert!(e.contains(w), "error for {extra:?} lacks {w:?}: {e}");
        }
    }
}
