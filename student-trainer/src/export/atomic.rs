//! Atomic file writes: the bytes go to a temporary file beside the target, are synced, and the
//! temporary file is renamed over the target, so a crash leaves the old file or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::ExportError;

/// `PATH.tmp.<pid>` beside `path` (same directory, so the rename stays on one filesystem).
pub fn temp_path_for(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp.{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `path` atomically through `write`, which gets the temporary path to fill.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let tmp = temp_path_for(path);
    let result = write(&tmp).and_then(|()| {
        // Sync the data before the rename makes it visible under the real name.
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|source| ExportError::Io {
                op: "syncing",
                path: tmp.clone(),
                source,
            })?;
        std::fs::rename(&tmp, path).map_err(|source| ExportError::Io {
            op: "renaming temporary file to",
            path: path.to_path_buf(),
            source,
        })
    });
    if result.is_err() {
        // Best effort: the temporary file is garbage now, and the error above is what matters.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    write_atomic_with(path, |tmp| {
        let io = |source| ExportError::Io {
            op: "writing",
            path: tmp.to_path_buf(),
            source,
        };
        let mut f = std::fs::File::create(tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)
    })
}
