//! Where things are: the repository, built binaries, the ONNX Runtime library, the venv.

use std::path::PathBuf;

/// Root of the repository (the workspace).
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// Path of a binary built by `cargo build --workspace --bins` in the same profile as the
/// running test (derived from the test executable: `target/<profile>/deps/<test>`).
/// Panics with a clear message when it has not been built.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("cannot locate the running test executable");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable is not under target/<profile>/deps");
    let bin = profile_dir.join(name);
    assert!(
        bin.is_file(),
        "binary {} is missing: build it first with `cargo build --workspace --bins` (or `make test`)",
        bin.display()
    );
    bin
}

/// The ONNX Runtime shared library: `ORT_DYLIB_PATH`, else the one `scripts/fetch_deps.sh`
/// unpacks. Panics with a clear message when neither exists.
pub fn ort_lib() -> PathBuf {
    let lib = match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
    };
    assert!(
        lib.is_file(),
        "ONNX Runtime library {} is missing: run scripts/fetch_deps.sh or set ORT_DYLIB_PATH",
        lib.display()
    );
    lib
}

/// The venv python with numpy, onnx, onnxruntime and pyarrow (made by `scripts/fetch_deps.sh`).
pub fn python_bin() -> PathBuf {
    let py = repo_root().join(".venv/bin/python");
    assert!(
        py.is_file(),
        "{} is missing: run scripts/fetch_deps.sh",
        py.display()
    );
    py
}

/// A folder under the target dir for files the tests cache between runs.
pub fn test_cache_dir() -> PathBuf {
    let dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t),
        None => repo_root().join("target"),
    }
    .join("distill-tests");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}
