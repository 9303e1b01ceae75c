//! Safetensors checkpoints: a round trip restores the exact forward, and a checkpoint of another
//! shape or architecture is refused with the offending tensor named, leaving the weights alone.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use trainer_core::export::{load_safetensors, save_safetensors, ExportError};
use trainer_core::model::{Student, StudentConfig};

fn build(cfg: &StudentConfig, input_dim: usize) -> (VarMap, Student) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let s = Student::new(cfg, input_dim, 3, vb).unwrap();
    (vm, s)
}

fn mlp(hidden: Vec<usize>) -> StudentConfig {
    StudentConfig::Mlp {
        hidden,
        dropout: 0.0,
        input_dropout: 0.0,
    }
}

fn logits(s: &Student, x: &Tensor) -> Vec<f32> {
    s.forward(x, false)
        .unwrap()
        .logits
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn round_trip_restores_the_forward_exactly() {
    let cfg = StudentConfig::Cnn {
        channels: vec![3],
        hidden: 8,
        dropout: 0.0,
        input_shape: [1, 6, 6],
    };
    let x = Tensor::rand(-1f32, 1f32, (4, 36), &Device::Cpu).unwrap();
    let (vm_a, a) = build(&cfg, 36);
    let (vm_b, b) = build(&cfg, 36);
    assert_ne!(
        logits(&a, &x),
        logits(&b, &x),
        "two random inits should differ"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    save_safetensors(&vm_a, &path).unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        files,
        vec![std::ffi::OsString::from("ckpt.safetensors")],
        "no temp file left"
    );
    load_safetensors(&vm_b, &path).unwrap();
    assert_eq!(logits(&a, &x), logits(&b, &x));
}

#[test]
fn mismatched_checkpoints_are_refused_without_touching_weights() {
    let dir = tempfile::tempdir().unwrap();
    let x = Tensor::rand(-1f32, 1f32, (2, 5), &Device::Cpu).unwrap();

    let (vm_small, _) = build(&mlp(vec![4]), 5);
    let small = dir.path().join("small.safetensors");
    save_safetensors(&vm_small, &small).unwrap();
    let (vm_deep, _) = build(&mlp(vec![4, 4]), 5);
    let deep = dir.path().join("deep.safetensors");
    save_safetensors(&vm_deep, &deep).unwrap();
    let (vm_wide, _) = build(&mlp(vec![7]), 5);
    let wide = dir.path().join("wide.safetensors");
    save_safetensors(&vm_wide, &wide).unwrap();

    let (vm, s) = build(&mlp(vec![4, 4]), 5);
    let before = logits(&s, &x);

    // The file lacks fc1.*.
    match load_safetensors(&vm, &small) {
        Err(e @ ExportError::MissingTensor { .. }) => {
            assert!(e.to_string().contains("fc1.bias"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // Same names as a 1-hidden model, other shapes.
    let (vm1, _) = build(&mlp(vec![4]), 5);
    match load_safetensors(&vm1, &wide) {
        Err(e @ ExportError::ShapeMismatch { .. }) => {
            assert!(
                e.to_string().contains("[7") && e.to_string().contains("[4"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Extra tensors: a deeper model's checkpoint into a shallower model.
    match load_safetensors(&vm1, &deep) {
        Err(e @ ExportError::UnexpectedTensors { .. }) => {
            assert!(e.to_string().contains("fc1.weight"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let missing = dir.path().join("nope.safetensors");
    let e = load_safetensors(&vm, &missing).unwrap_err();
    assert!(e.to_string().contains("nope.safetensors"), "{e}");
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"garbage").unwrap();
    assert!(load_safetensors(&vm, &junk).is_err());

    assert_eq!(
        logits(&s, &x),
        before,
        "failed loads must not change the weights"
    );
    load_safetensors(&vm, &deep).unwrap();
    assert_ne!(logits(&s, &x), before);
}
