//! Write-ahead log segments: one per open shard, `_wal/shard-NNNNNN.wal`.
//!
//! Format: the 8-byte magic `DSTLWAL1`, then records `[u64 LE payload length][u32 LE crc32 of
//! payload][payload]`, the payload being an Arrow IPC stream holding one record batch. A record
//! whose header or payload is cut short, or whose crc does not match, is a torn tail from a
//! crash: it and anything after it are dropped at replay (it was never acknowledged, since an
//! append is acknowledged only after its record is fsync'd).

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamEncoder;
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
        // The payload is the batch's own Arrow buffers framed as an IPC stream (the encoder
        // shares them rather than copying), written with one vectored write: the bytes go
        // from the decoded request's buffers to the page cache with no copy in between.
        let mut encoder = StreamEncoder::try_new(batch.schema_ref())?;
        let mut parts = encoder.encode(batch)?;
        parts.extend(encoder.finish()?);
        let mut crc = crc32fast::Hasher::new();
        let mut payload_len = 0u64;
        for p in &parts {
            crc.update(p.as_slice());
            payload_len += p.len() as u64;
        }
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(&payload_len.to_le_bytes());
        header[8..].copy_from_slice(&crc.finalize().to_le_bytes());
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len() + 1);
        slices.push(IoSlice::new(&header));
        slices.extend(parts.iter().map(|p| IoSlice::new(p.as_slice())));
        write_all_vectored(&self.file, &mut slices).map_err(|e| io_err(&self.path, e))?;
        let written = HEADER as u64 + payload_len;
        self.len += written;
        Ok(written)
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

/// Most slices handed to one `writev` (the kernel refuses more than `IOV_MAX`, 1024 on Linux).
const MAX_SLICES: usize = 512;

/// Writes every slice, in order, retrying short writes (`Write::write_all_vectored` is not
/// stable yet).
fn write_all_vectored(mut file: &File, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let n = slices.len().min(MAX_SLICES);
        match file.write_vectored(&slices[..n]) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "failed to write the whole log record",
                ))
            }
            Ok(written) => IoSlice::advance_slices(&mut slices, written),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::ipc::writer::StreamWriter;

    fn batch(columns: usize, rows: usize) -> RecordBatch {
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let mut fields = vec![Field::new("id", DataType::Utf8, false)];
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from(
            (0..rows).map(|i| format!("row-{i}")).collect::<Vec<_>>(),
        ))];
        for c in 0..columns {
            fields.push(Field::new(
                format!("c{c}"),
                DataType::FixedSizeList(item.clone(), 3),
                false,
            ));
            let values =
                Float32Array::from((0..rows * 3).map(|v| (v + c) as f32).collect::<Vec<_>>());
            arrays.push(Arc::new(
                FixedSizeListArray::try_new(item.clone(), 3, Arc::new(values), None).unwrap(),
            ));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
    }

    /// The payload of every record in a segment, in order.
    fn payloads(path: &Path) -> Vec<Vec<u8>> {
        let bytes = fs::read(path).unwrap();
        assert_eq!(&bytes[..8], MAGIC);
        let mut pos = 8;
        let mut out = Vec::new();
        while pos < bytes.len() {
            let len = u64::from_le_bytes(bytes[pos..pos + 8].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
            let payload = bytes[pos + HEADER..pos + HEADER + len].to_vec();
            assert_eq!(crc32fast::hash(&payload), crc);
            out.push(payload);
            pos += HEADER + len;
        }
        out
    }

    fn stream_writer_bytes(b: &RecordBatch) -> Vec<u8> {
        let mut w = StreamWriter::try_new(Vec::new(), b.schema_ref()).unwrap();
        w.write(b).unwrap();
        w.finish().unwrap();
        w.into_inner().unwrap()
    }

    /// A record written from the batch's own buffers is byte for byte the IPC stream
    /// `StreamWriter` writes (what logs written before this change hold), for whole and sliced
    /// batches and for a batch with more buffers than one `writev` takes; replay reads it back.
    #[test]
    fn records_are_the_ipc_stream_of_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_name(0));
        let mut seg = WalSegment::create(path.clone()).unwrap();
        let whole = batch(2, 5);
        let sliced = whole.slice(2, 3);
        let wide = batch(400, 4);
        let mut lens = 0;
        for b in [&whole, &sliced, &wide] {
            lens += seg.append(b).unwrap();
        }
        assert_eq!(seg.len(), MAGIC.len() as u64 + lens);
        let got = payloads(&path);
        assert_eq!(got.len(), 3);
        for (p, b) in got.iter().zip([&whole, &sliced, &wide]) {
            assert_eq!(p, &stream_writer_bytes(b));
        }
        let mut back = Vec::new();
        assert_eq!(
            read_segment(&path, |b| {
                back.push(b);
                Ok(())
            })
            .unwrap(),
            0
        );
        assert_eq!(back, vec![whole, sliced, wide]);
    }
}
