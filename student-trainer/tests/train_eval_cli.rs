//! `student-trainer eval` on a trained run's outputs: the safetensors student scores exactly
//! as the training-time eval did, and the exported ONNX student (through ONNX Runtime) agrees.

mod data_support;

use data_support::{kd_config, write_config, write_sets};
use distill_tests::paths::ort_lib;
use student_trainer::cli::{eval, report, EvalArgs, ReportArgs};
use student_trainer::train::{run, RunOutcome, TrainOptions};

#[test]
fn eval_of_safetensors_and_onnx_matches_training_eval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval_set) = write_sets(dir.path(), 600, 200);
    let cfg = write_config(dir.path(), "run.toml", &kd_config(&train, &eval_set, 2, ""));
    let out = dir.path().join("run");
    let o = TrainOptions {
        config: Some(cfg.clone()),
        out: Some(out.clone()),
        quiet: true,
        export_onnx: true,
        ..Default::default()
    };
    let RunOutcome::Finished(summary) = run(&o).expect("train") else {
        panic!("run did not finish")
    };
    let trained = summary.eval.expect("training-time eval");

    let mut args = EvalArgs {
        model: out.join("student.safetensors"),
        data: eval_set.display().to_string(),
        config: Some(out.join("config.toml")),
        input: None,
        label: None,
        teacher_column: Some("logits".into()),
        temperature: 4.0,
        ort_lib: Some(ort_lib()),
        batch_rows: 1024, // the training-time eval chunk, so the sums are identical
        json: false,
        timing_rounds: 0,
    };
    let st = eval(&args).expect("safetensors eval");
    assert_eq!(st.errors, trained.errors);
    assert_eq!(st.rows, 200);
    assert_eq!(st.agreement, trained.agreement);
    assert!((st.kd.expect("kd") - trained.kd.expect("kd")).abs() < 1e-9);

    args.model = out.join("student.onnx");
    args.config = None;
    let ox = eval(&args).expect("onnx eval");
    assert!(
        ox.errors.abs_diff(st.errors) <= 1,
        "onnx {} vs candle {} errors",
        ox.errors,
        st.errors
    );
    assert!(
        (ox.ce - st.ce).abs() < 1e-4,
        "onnx ce {} vs candle {}",
        ox.ce,
        st.ce
    );
    assert!(ox.agreement.expect("agreement") > 0.8);

    // A safetensors model without --config is refused with a clear message.
    args.model = out.join("student.safetensors");
    let e = eval(&args).expect_err("needs config").to_string();
    assert!(e.contains("--config"), "{e}");
    // A teacher column the data lacks is named.
    args.model = out.join("student.onnx");
    args.teacher_column = Some("nope".into());
    let e = eval(&args).expect_err("missing column").to_string();
    assert!(e.contains("\"nope\""), "{e}");

    // The report re-scores the run's ONNX on the same set and tabulates it.
    let r = report(&ReportArgs {
        title: "test report".into(),
        runs: vec![format!("kd student={}", out.display())],
        eval: eval_set.display().to_string(),
        teacher_column: Some("logits".into()),
        temperature: 4.0,
        elapsed_s: Some(1.0),
        ort_lib: Some(ort_lib()),
        out: None,
        html: None,
        charts: None,
        references: Vec::new(),
        reference_source: String::new(),
    })
    .expect("report");
    assert!(
        r.contains("# test report") && r.contains("| kd student | 2410 | 2 |"),
        "{r}"
    );
    assert!(r.contains(&format!("| {} / 200 |", ox.errors)), "{r}");
    let e = report(&ReportArgs {
        title: "x".into(),
        runs: vec!["no-equals-sign".into()],
        eval: eval_set.display().to_string(),
        teacher_column: None,
        temperature: 1.0,
        elapsed_s: None,
        ort_lib: None,
        out: None,
        html: None,
        charts: None,
        references: Vec::new(),
        reference_source: String::new(),
    })
    .expect_err("bad --run");
    assert!(e.to_string().contains("NAME=RUN_FOLDER"), "{e}");
}
