//! Write-ahead log segments: one per open shard, `_wal/shard-NNNNNN.wal`.
//!
//! Format: the 8-byte magic `DSTLWAL1`, then records `[u64 LE payload length][u32 LE crc32 of
//! payload][payload]`, the payload being an Arrow IPC stream holding one record batch. A record
//! whose header or payload is cut short, or whose crc does not match, is a torn tail from a
//! crash: it and anything after it are dropped at replay (it was never acknowledged, since an
//! append is acknowledged only after its record is fsync'd).

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

use super::manifest::{corrupt, io_err};
use super::StoreError;

const MAGIC: &[u8; 8] = b"DSTLWAL1";

/// Schema metadata key of a log record naming the execution provider that computed its rows
/// (records written before it existed have none: the manifest's provider applies).
pub(crate) const PROVIDER_KEY: &str = "distill.provider";
const HEADER: usize = 12;

/// The segment file name for shard `index`.
pub(crate) fn segment_name(index: u64) -> String {
    format!("shard-{index:06}.wal")
}

/// Parses a segment file name back into its shard index.
pub(crate) fn segment_index(name: &str) -> Option<u64> {
    name.strip_prefix("shard-")?
        .strip_suffix(".wal")?
        .parse()
        .ok()
}

/// An open segment, appended to by one dataset writer.
pub(crate) struct WalSegment {
    path: PathBuf,
    /// Shared with the group commit, which fsyncs it outside the dataset's lock.
    file: Arc<File>,
    len: u64,
}

impl WalSegment {
    /// Creates a new, empty segment (the magic is written; durable with the first sync).
    pub(crate) fn create(path: PathBuf) -> Result<Self, StoreError> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        file.write_all(MAGIC).map_err(|e| io_err(&path, e))?;
        Ok(Self {
            path,
            file: Arc::new(file),
            len: MAGIC.len() as u64,
        })
    }

    /// The segment's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Current length in bytes (to roll back a failed append).
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The open file, for the group commit's fsync.
    pub(crate) fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Appends one record (not yet durable: call [`Self::sync`] or hand the segment to the
    /// group commit); returns the bytes written.
    pub(crate) fn append(&mut self, batch: &RecordBatch) -> Result<u64, StoreError> {
        // The frame header is reserved up front and filled in after the payload, so the
        // record is encoded straight into the buffer that is written (one copy, not two).
        let mut frame = Vec::with_capacity(HEADER + batch.get_array_memory_size() + 1024);
        frame.resize(HEADER, 0);
        let mut frame = encode_into(frame, batch)?;
        let payload_len = (frame.len() - HEADER) as u64;
        let crc = crc32fast::hash(&frame[HEADER..]);
        frame[..8].copy_from_slice(&payload_len.to_le_bytes());
        frame[8..HEADER].copy_from_slice(&crc.to_le_bytes());
        (&*self.file)
            .write_all(&frame)
            .map_err(|e| io_err(&self.path, e))?;
        self.len += frame.len() as u64;
        Ok(frame.len() as u64)
    }

    /// Makes everything appended so far durable.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        self.file.sync_data().map_err(|e| io_err(&self.path, e))
    }

    /// Cuts the segment back to `len` bytes (undoes appends of a failed call).
    pub(crate) fn truncate(&mut self, len: u64) -> Result<(), StoreError> {
        self.file.set_len(len).map_err(|e| io_err(&self.path, e))?;
        (&*self.file)
            .seek(SeekFrom::Start(len))
            .map_err(|e| io_err(&self.path, e))?;
        self.len = len;
        self.sync()
    }
}

/// Appends the Arrow IPC stream of `batch` to `buf`.
fn encode_into(buf: Vec<u8>, batch: &RecordBatch) -> Result<Vec<u8>, StoreError> {
    let mut w = StreamWriter::try_new(buf, batch.schema_ref())?;
    w.write(batch)?;
    w.finish()?;
    Ok(w.into_inner()?)
}

/// Reads the intact records of a segment one at a time (a segment can hold a whole shard's
/// rows, so they are never all in memory), handing each batch to `each`; a torn tail is
/// dropped. Returns the number of bytes dropped (0 when the segment ended cleanly).
pub(crate) fn read_segment(
    path: &Path,
    mut each: impl FnMut(RecordBatch) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    read_records(path, |batch, _| each(batch))
}

/// Like [`read_segment`], also handing over the byte offset where each batch's record ends.
pub(crate) fn read_records(
    path: &Path,
    mut each: impl FnMut(RecordBatch, u64) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let total = file.metadata().map_err(|e| io_err(path, e))?.len();
    let mut r = BufReader::new(file);
    let mut magic = [0u8; 8];
    if total < MAGIC.len() as u64 {
        // Created but never synced with a record: nothing was acknowledged from it.
        return Ok(total);
    }
    r.read_exact(&mut magic).map_err(|e| io_err(path, e))?;
    if &magic != MAGIC {
        if magic.iter().all(|&b| b == 0) {
            return Ok(total);
        }
        return Err(corrupt(path, "not a distill write-ahead log (bad magic)"));
    }
    let mut pos = MAGIC.len() as u64;
    let mut header = [0u8; HEADER];
    let mut payload = Vec::new();
    while pos + HEADER as u64 <= total {
        r.read_exact(&mut header).map_err(|e| io_err(path, e))?;
        let len = u64::from_le_bytes(header[..8].try_into().unwrap_or([0; 8]));
        let crc = u32::from_le_bytes(header[8..].try_into().unwrap_or([0; 4]));
        // A length running past the end of the file is a torn (or garbled) header.
        if len > total - pos - HEADER as u64 {
            break;
        }
        payload.resize(len as usize, 0);
        r.read_exact(&mut payload).map_err(|e| io_err(path, e))?;
        if crc32fast::hash(&payload) != crc {
            break;
        }
        let reader = StreamReader::try_new(payload.as_slice(), None)
            .map_err(|e| corrupt(path, format!("record at byte {pos}: {e}")))?;
        let end = pos + HEADER as u64 + len;
        for b in reader {
            each(
                b.map_err(|e| corrupt(path, format!("record at byte {pos}: {e}")))?,
                end,
            )?;
        }
        pos += HEADER as u64 + len;
    }
    Ok(total - pos)
}

/// Deletes a segment file.
pub(crate) fn remove_segment(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, e)),
    }
}
