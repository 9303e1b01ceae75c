//! Crash-safe file replacement for every crate: the bytes go to a `.tmp` sibling, are fsync'd,
//! the sibling is renamed over the target and the folder is fsync'd, so after a crash the
//! target holds the old content or the new, and a rename that was reported done stays done.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A step of an atomic write that failed: what was being done, to which file, and why.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct AtomicWriteError {
    /// The step (`writing`, `syncing`, `renaming temporary file to`, `syncing folder`).
    pub op: &'static str,
    /// The file or folder of that step.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl AtomicWriteError {
    fn new(op: &'static str, path: &Path, source: io::Error) -> Self {
        Self {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `PATH.tmp` beside `path` (same folder, so the rename stays on one filesystem).
pub fn temp_path_for(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// fsyncs a folder so renames and creations inside it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), AtomicWriteError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| AtomicWriteError::new("syncing folder", dir, e))
}

/// Writes `path` atomically through `write`, which gets the temporary path to fill; on any
/// failure the temporary file is removed and the target is left as it was.
pub fn write_atomic_with<E: From<AtomicWriteError>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let tmp = temp_path_for(path);
    let result = write(&tmp).and_then(|()| {
        // The data must be on disk before the rename makes it visible under the real name.
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| AtomicWriteError::new("syncing", &tmp, e))?;
        fs::rename(&tmp, path)
            .map_err(|e| AtomicWriteError::new("renaming temporary file to", path, e))?;
        Ok(())
    });
    if result.is_err() {
        // Best effort: the temporary file is garbage now, and the error above is what matters.
        let _ = fs::remove_file(&tmp);
        return result;
    }
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => Ok(sync_dir(dir)?),
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` atomically (see [`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    write_atomic_with(path, |tmp| {
        let mut f = File::create(tmp).map_err(|e| AtomicWriteError::new("writing", tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| AtomicWriteError::new("writing", tmp, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_target_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert!(!temp_path_for(&p).exists());
    }

    #[test]
    fn a_failed_write_keeps_the_old_content_and_removes_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"old").unwrap();
        let r: Result<(), AtomicWriteError> = write_atomic_with(&p, |tmp| {
            fs::write(tmp, b"half").unwrap();
            Err(AtomicWriteError::new(
                "writing",
                tmp,
                io::Error::other("disk full"),
            ))
        });
        let e = r.unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert!(!temp_path_for(&p).exists());
        let missing = dir.path().join("no-such-dir").join("f");
        let e = write_atomic(&missing, b"x").unwrap_err();
        assert_eq!(e.op, "writing");
    }
}
