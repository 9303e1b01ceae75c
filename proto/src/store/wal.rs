//! Write-ahead log segments: one per open shard, `wal/shard-NNNNNN.wal`.
//!
//! Format: the 8-byte magic `DSTLWAL1`, then records `[u64 LE payload length][u32 LE crc32 of
//! payload][payload]`, the payload being an Arrow IPC stream holding one record batch. A record
//! whose header or payload is cut short, or whose crc does not match, is a torn tail from a
//! crash: it and anything after it are dropped at replay (it was never acknowledged, since an
//! append is acknowledged only after its record is fsync'd).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

use super::manifest::{corrupt, io_err};
use super::StoreError;

const MAGIC: &[u8; 8] = b"DSTLWAL1";
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
    file: File,
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
            file,
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

    /// Appends one record (not yet durable: call [`Self::sync`]).
    pub(crate) fn append(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
        let payload = encode(batch)?;
        let mut frame = Vec::with_capacity(HEADER + payload.len());
        frame.extend((payload.len() as u64).to_le_bytes());
        frame.extend(crc32fast::hash(&payload).to_le_bytes());
        frame.extend(&payload);
        self.file
            .write_all(&frame)
            .map_err(|e| io_err(&self.path, e))?;
        self.len += frame.len() as u64;
        Ok(())
    }

    /// Makes everything appended so far durable.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        self.file.sync_data().map_err(|e| io_err(&self.path, e))
    }

    /// Cuts the segment back to `len` bytes (undoes appends of a failed call).
    pub(crate) fn truncate(&mut self, len: u64) -> Result<(), StoreError> {
        self.file.set_len(len).map_err(|e| io_err(&self.path, e))?;
        self.file
            .seek(SeekFrom::Start(len))
            .map_err(|e| io_err(&self.path, e))?;
        self.len = len;
        self.sync()
    }
}

fn encode(batch: &RecordBatch) -> Result<Vec<u8>, StoreError> {
    let mut w = StreamWriter::try_new(Vec::new(), batch.schema_ref())?;
    w.write(batch)?;
    w.finish()?;
    Ok(w.into_inner()?)
}

/// What a segment held.
pub(crate) struct Replayed {
    /// The intact records, in order.
    pub batches: Vec<RecordBatch>,
    /// Bytes dropped as a torn tail (0 when the segment ended cleanly).
    pub torn_bytes: u64,
}

/// Reads every intact record of a segment; a torn tail is dropped (reported in `torn_bytes`).
pub(crate) fn read_segment(path: &Path) -> Result<Replayed, StoreError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| io_err(path, e))?;
    if bytes.len() < MAGIC.len() || bytes.iter().all(|&b| b == 0) {
        // Created but never synced with a record: nothing was acknowledged from it.
        return Ok(Replayed {
            batches: Vec::new(),
            torn_bytes: bytes.len() as u64,
        });
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt(path, "not a distill write-ahead log (bad magic)"));
    }
    let mut pos = MAGIC.len();
    let mut batches = Vec::new();
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < HEADER {
            break;
        }
        let len = u64::from_le_bytes(rest[..8].try_into().unwrap_or([0; 8]));
        let crc = u32::from_le_bytes(rest[8..12].try_into().unwrap_or([0; 4]));
        let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(HEADER))
            .filter(|&e| e <= rest.len())
        else {
            break;
        };
        let payload = &rest[HEADER..end];
        if crc32fast::hash(payload) != crc {
            break;
        }
        let reader = StreamReader::try_new(payload, None)
            .map_err(|e| corrupt(path, format!("record at byte {pos}: {e}")))?;
        for b in reader {
            batches.push(b.map_err(|e| corrupt(path, format!("record at byte {pos}: {e}")))?);
        }
        pos += end;
    }
    Ok(Replayed {
        batches,
        torn_bytes: (bytes.len() - pos) as u64,
    })
}

/// Deletes a segment file.
pub(crate) fn remove_segment(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, e)),
    }
}
