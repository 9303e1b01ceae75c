//! Test models: the small ones `scripts/make_test_models.py` generates (made once per version
//! of the script and cached under the target dir) and real foreign ones fetched by
//! `scripts/fetch_models.sh`.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::paths::{python_bin, repo_root, test_cache_dir};

/// Folder holding the generated test models (`mlp.onnx`, `tokens.onnx`, `multi_dtype.onnx`).
/// Generated at most once per version of the script: the folder name carries a hash of the
/// script, and a new version is generated into a temporary folder and renamed into place, so
/// concurrent test processes never see a half-written folder.
pub fn test_models_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = repo_root().join("scripts/make_test_models.py");
        let source = std::fs::read(&script).unwrap_or_else(|e| {
            panic!(
                "cannot read {} (it generates the test models): {e}",
                script.display()
            )
        });
        // DefaultHasher::new() uses fixed keys: stable across runs of one toolchain, which
        // is all a cache key needs.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        source.hash(&mut h);
        let dir = test_cache_dir().join(format!("models-{:016x}", h.finish()));
        if dir.join(".complete").is_file() {
            return dir;
        }
        let tmp = test_cache_dir().join(format!("models-tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).expect("cannot create the test-model folder");
        let out = Command::new(python_bin())
            .arg(&script)
            .arg(&tmp)
            .current_dir(repo_root())
            .output()
            .expect("cannot run the venv python");
        assert!(
            out.status.success(),
            "{} failed ({}):\n{}\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(tmp.join(".complete"), b"").expect("cannot mark the test models complete");
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another test process got there first; its folder is complete.
            let _ = std::fs::remove_dir_all(&tmp);
            assert!(
                dir.join(".complete").is_file(),
                "cannot move the test models to {}",
                dir.display()
            );
        }
        dir
    })
}

/// Path of one generated test model, e.g. `test_model("mlp.onnx")`.
pub fn test_model(file: &str) -> PathBuf {
    let p = test_models_dir().join(file);
    assert!(
        p.is_file(),
        "scripts/make_test_models.py did not produce {}",
        p.display()
    );
    p
}

/// Path of a real foreign model fetched by `scripts/fetch_models.sh`
/// (`magika` or `minilm`); panics with the command to run when it is missing.
pub fn foreign_model(name: &str) -> PathBuf {
    let p = repo_root()
        .join(".deps/models")
        .join(name)
        .join("model.onnx");
    assert!(
        p.is_file(),
        "foreign model {} is missing: run scripts/fetch_models.sh",
        p.display()
    );
    p
}
