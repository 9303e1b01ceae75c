//! The `[student]` table: parsing, defaults, and clear errors for bad configs.

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use trainer_core::model::{ModelError, Student, StudentConfig};

fn parse(s: &str) -> Result<StudentConfig, toml::de::Error> {
    toml::from_str(s)
}

fn build(cfg: &StudentConfig, input_dim: usize, classes: usize) -> Result<Student, ModelError> {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    Student::new(cfg, input_dim, classes, vb)
}

#[test]
fn mlp_parses_with_default_dropouts() {
    let cfg = parse("arch = \"mlp\"\nhidden = [800, 800]\n").unwrap();
    assert_eq!(
        cfg,
        StudentConfig::Mlp {
            hidden: vec![800, 800],
            dropout: 0.0,
            input_dropout: 0.0
        }
    );
    let cfg = parse("arch = \"mlp\"\nhidden = []\ndropout = 0.5\ninput_dropout = 0.2\n").unwrap();
    assert_eq!(
        cfg,
        StudentConfig::Mlp {
            hidden: vec![],
            dropout: 0.5,
            input_dropout: 0.2
        }
    );
}

#[test]
fn cnn_parses_with_default_input_shape() {
    let cfg = parse("arch = \"cnn\"\nchannels = [8, 16]\nhidden = 64\ndropout = 0.1\n").unwrap();
    assert_eq!(
        cfg,
        StudentConfig::Cnn {
            channels: vec![8, 16],
            hidden: 64,
            dropout: 0.1,
            input_shape: [1, 28, 28]
        }
    );
    let cfg =
        parse("arch = \"cnn\"\nchannels = [4]\nhidden = 8\ninput_shape = [3, 8, 8]\n").unwrap();
    assert!(
        matches!(cfg, StudentConfig::Cnn { input_shape: [3, 8, 8], dropout, .. } if dropout == 0.0)
    );
}

#[test]
fn config_round_trips_through_toml() {
    let cfg = StudentConfig::Cnn {
        channels: vec![4, 8],
        hidden: 32,
        dropout: 0.25,
        input_shape: [1, 12, 10],
    };
    let text = toml::to_string(&cfg).unwrap();
    assert_eq!(parse(&text).unwrap(), cfg);
}

#[test]
fn unknown_key_is_named_in_the_error() {
    let err = parse("arch = \"mlp\"\nhidden = [8]\nhiden_size = 3\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("hiden_size"), "{msg}");
}

#[test]
fn bad_or_missing_arch_is_a_clear_error() {
    // `transformer` became a real arch (issue 10); `rnn` is still unknown.
    let msg = parse("arch = \"rnn\"\nhidden = [8]\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("rnn"), "{msg}");
    assert!(
        msg.contains("mlp") && msg.contains("cnn"),
        "should list the known archs: {msg}"
    );

    let msg = parse("hidden = [8]\n").unwrap_err().to_string();
    assert!(msg.contains("arch"), "{msg}");
}

#[test]
fn wrong_types_and_missing_fields_are_errors() {
    let msg = parse("arch = \"mlp\"\nhidden = 8\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("hidden") || msg.contains("sequence"), "{msg}");
    let msg = parse("arch = \"cnn\"\nchannels = [8]\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("hidden"), "{msg}");
    let msg = parse("arch = \"cnn\"\nchannels = [8]\nhidden = 4\ninput_shape = [28, 28]\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("input_shape") || msg.contains("3"), "{msg}");
}

fn config_error(cfg: &StudentConfig, input_dim: usize, classes: usize) -> String {
    match build(cfg, input_dim, classes) {
        Err(e @ ModelError::Config(_)) => e.to_string(),
        Err(other) => panic!("expected a config error, got {other:?}"),
        Ok(_) => panic!("config {cfg:?} with input {input_dim} was accepted"),
    }
}

#[test]
fn invalid_sizes_are_rejected_with_the_field_named() {
    let mlp = |hidden: Vec<usize>, dropout: f32, input_dropout: f32| StudentConfig::Mlp {
        hidden,
        dropout,
        input_dropout,
    };
    let msg = config_error(&mlp(vec![8, 0], 0.0, 0.0), 4, 3);
    assert!(msg.contains("hidden[1]"), "{msg}");
    let msg = config_error(&mlp(vec![8], 1.0, 0.0), 4, 3);
    assert!(msg.contains("student.dropout"), "{msg}");
    let msg = config_error(&mlp(vec![8], 0.0, -0.1), 4, 3);
    assert!(msg.contains("input_dropout"), "{msg}");
    let msg = config_error(&mlp(vec![8], f32::NAN, 0.0), 4, 3);
    assert!(msg.contains("dropout"), "{msg}");
    let msg = config_error(&mlp(vec![8], 0.0, 0.0), 0, 3);
    assert!(msg.contains("input width"), "{msg}");
    let msg = config_error(&mlp(vec![8], 0.0, 0.0), 4, 0);
    assert!(msg.contains("classes"), "{msg}");

    let cnn = |channels: Vec<usize>, hidden: usize, input_shape: [usize; 3]| StudentConfig::Cnn {
        channels,
        hidden,
        dropout: 0.0,
        input_shape,
    };
    // MNIST-shaped CNN fed 10-feature rows.
    let msg = config_error(&cnn(vec![4], 8, [1, 28, 28]), 10, 3);
    assert!(
        msg.contains("input_shape") && msg.contains("784") && msg.contains("10"),
        "{msg}"
    );
    // 4x4 image: two pools fit (4→2→1), a third does not.
    assert!(build(&cnn(vec![2, 2], 8, [1, 4, 4]), 16, 3).is_ok());
    let msg = config_error(&cnn(vec![2, 2, 2], 8, [1, 4, 4]), 16, 3);
    assert!(
        msg.contains("too small") && msg.contains("block 2"),
        "{msg}"
    );
    let msg = config_error(&cnn(vec![2, 0], 8, [1, 4, 4]), 16, 3);
    assert!(msg.contains("channels[1]"), "{msg}");
    let msg = config_error(&cnn(vec![2], 0, [1, 4, 4]), 16, 3);
    assert!(msg.contains("student.hidden"), "{msg}");
    let msg = config_error(&cnn(vec![2], 4, [0, 4, 4]), 0, 3);
    assert!(msg.contains("input"), "{msg}");
}
