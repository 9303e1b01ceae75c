//! Crash-safe file replacement for every crate: the bytes go to a `.tmp` sibling, are fsync'd,
//! the sibling is renamed over the target and the folder is fsync'd, so after a crash the
//! target holds the old content or the new, and a rename that was reported done stays done.
//!
//! Three doors to the same steps: [`write_atomic`] for bytes in memory, [`write_atomic_with`]
//! for a writer that wants a path, and [`AtomicFile`] for a large file written incrementally.

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
        Ok(publish(&tmp, path)?)
    });
    if result.is_err() {
        // Best effort: the temporary file is garbage now, and the error above is what matters.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Renames the synced `tmp` over `path` and makes the rename durable.
fn publish(tmp: &Path, path: &Path) -> Result<(), AtomicWriteError> {
    fs::rename(tmp, path)
        .map_err(|e| AtomicWriteError::new("renaming temporary file to", path, e))?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => Ok(()),
    }
}

/// A file being written under its temporary name, for output too large to hold in memory
/// (e.g. the sink of a Parquet writer): write to it, then [`AtomicFile::commit`] it. Dropped
/// uncommitted (an error on the way, a panic), it removes its temporary file and the target
/// stays as it was.
#[derive(Debug)]
pub struct AtomicFile {
    /// `None` once committed.
    file: Option<File>,
    tmp: PathBuf,
    path: PathBuf,
}

impl AtomicFile {
    /// Creates (or truncates) the temporary sibling of `path`.
    pub fn create(path: &Path) -> Result<Self, AtomicWriteError> {
        let tmp = temp_path_for(path);
        let file = File::create(&tmp).map_err(|e| AtomicWriteError::new("writing", &tmp, e))?;
        Ok(Self {
            file: Some(file),
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// Syncs the bytes written, renames the file over its target and syncs the folder.
    pub fn commit(mut self) -> Result<(), AtomicWriteError> {
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        let result = file
            .flush()
            .and_then(|()| file.sync_all())
            .map_err(|e| AtomicWriteError::new("syncing", &self.tmp, e));
        drop(file);
        let result = result.and_then(|()| publish(&self.tmp, &self.path));
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        result
    }

    fn file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("atomic file already committed"))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file()?.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
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

    #[test]
    fn an_atomic_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.parquet");
        write_atomic(&p, b"old").unwrap();
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"new ").unwrap();
        f.write_all(b"content").unwrap();
        assert_eq!(
            fs::read(&p).unwrap(),
            b"old",
            "not visible before the commit"
        );
        assert!(temp_path_for(&p).exists());
        f.commit().unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new content");
        assert!(!temp_path_for(&p).exists());
    }

    #[test]
    fn an_uncommitted_atomic_file_leaves_the_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.parquet");
        write_atomic(&p, b"old").unwrap();
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"half").unwrap();
        assert!(temp_path_for(&p).exists());
        drop(f);
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert!(!temp_path_for(&p).exists());
        let e = AtomicFile::create(&dir.path().join("no-such-dir").join("f")).unwrap_err();
        assert_eq!(e.op, "writing");
    }
}
