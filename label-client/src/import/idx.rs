//! Parsing of the raw IDX files MNIST ships in (`*-images-idx3-ubyte`, `*-labels-idx1-ubyte`).
//!
//! Format: a big-endian `u32` magic (`0x0000_0803` for 3-D unsigned-byte images,
//! `0x0000_0801` for 1-D unsigned-byte labels), one big-endian `u32` per dimension, then the
//! bytes. Every size is checked against the header so a truncated or wrong file names itself.

use std::path::{Path, PathBuf};

/// Magic number of an unsigned-byte 3-D IDX file (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an unsigned-byte 1-D IDX file (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Errors reading an IDX file; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    /// The file could not be read.
    #[error("cannot read IDX file {path}: {source}")]
    Io {
        /// The IDX file that could not be read.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The first four bytes are not the expected magic number.
    #[error("{path}: bad IDX magic number 0x{found:08x}, expected 0x{expected:08x} ({what})")]
    BadMagic {
        /// The IDX file whose magic number is wrong.
        path: PathBuf,
        /// The magic number expected.
        expected: u32,
        /// The magic number found.
        found: u32,
        /// What the file should hold.
        what: &'static str,
    },
    /// The file is shorter (or longer) than its header says.
    #[error(
        "{path}: IDX file is {found} bytes, but its header promises {expected} bytes ({what})"
    )]
    WrongSize {
        /// The IDX file whose size disagrees with its header.
        path: PathBuf,
        /// Bytes the header implies.
        expected: u64,
        /// Bytes present.
        found: u64,
        /// What the file holds.
        what: &'static str,
    },
    /// A header field makes no sense (zero-sized image, overflow).
    #[error("{path}: invalid IDX header: {message}")]
    BadHeader {
        /// The IDX file whose header is invalid.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A label byte outside 0..=9.
    #[error("{path}: label {value} at index {index} is not a digit 0-9")]
    BadLabel {
        /// The IDX label file holding the byte.
        path: PathBuf,
        /// Row index.
        index: usize,
        /// The label byte, outside 0..=9.
        value: u8,
    },
}

/// The images of one IDX3 file: `count` images of `rows × cols` bytes, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// `count * rows * cols` grey levels 0-255.
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// Pixels per image.
    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }
}

/// Reads a whole file, naming it in the error.
fn read_file(path: &Path) -> Result<Vec<u8>, IdxError> {
    std::fs::read(path).map_err(|source| IdxError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Big-endian `u32` at `offset`, or a size error when the file is too short for its header.
fn be_u32(
    bytes: &[u8],
    offset: usize,
    header_len: usize,
    path: &Path,
    what: &'static str,
) -> Result<u32, IdxError> {
    match bytes.get(offset..offset + 4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(IdxError::WrongSize {
            path: path.to_path_buf(),
            expected: header_len as u64,
            found: bytes.len() as u64,
            what,
        }),
    }
}

/// Checks the leading magic number against `expected`, so a file of the wrong kind names itself.
fn check_magic(
    bytes: &[u8],
    expected: u32,
    header_len: usize,
    path: &Path,
    what: &'static str,
) -> Result<(), IdxError> {
    let found = be_u32(bytes, 0, header_len, path, what)?;
    if found != expected {
        return Err(IdxError::BadMagic {
            path: path.to_path_buf(),
            expected,
            found,
            what,
        });
    }
    Ok(())
}

/// Checks the file holds exactly the `expected` bytes its header implies (no truncation, no tail).
fn check_size(
    bytes: &[u8],
    expected: u64,
    path: &Path,
    what: &'static str,
) -> Result<(), IdxError> {
    if bytes.len() as u64 != expected {
        return Err(IdxError::WrongSize {
            path: path.to_path_buf(),
            expected,
            found: bytes.len() as u64,
            what,
        });
    }
    Ok(())
}

/// Parses the bytes of an IDX3 unsigned-byte images file; `path` only names it in errors.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<IdxImages, IdxError> {
    const WHAT: &str = "3-D unsigned-byte images";
    const HEADER: usize = 16;
    check_magic(bytes, IMAGES_MAGIC, HEADER, path, WHAT)?;
    let count = be_u32(bytes, 4, HEADER, path, WHAT)? as usize;
    let rows = be_u32(bytes, 8, HEADER, path, WHAT)? as usize;
    let cols = be_u32(bytes, 12, HEADER, path, WHAT)? as usize;
    if rows == 0 || cols == 0 {
        return Err(IdxError::BadHeader {
            path: path.to_path_buf(),
            message: format!("image size {rows}x{cols} has no pixels"),
        });
    }
    let body = count
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(cols))
        .ok_or_else(|| IdxError::BadHeader {
            path: path.to_path_buf(),
            message: format!("{count} images of {rows}x{cols} overflow the address space"),
        })?;
    let expected = HEADER as u64 + body as u64;
    check_size(bytes, expected, path, WHAT)?;
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels: bytes[HEADER..].to_vec(),
    })
}

/// Parses the bytes of an IDX1 unsigned-byte labels file, checking every label is 0-9.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>, IdxError> {
    const WHAT: &str = "1-D unsigned-byte labels";
    const HEADER: usize = 8;
    check_magic(bytes, LABELS_MAGIC, HEADER, path, WHAT)?;
    let count = be_u32(bytes, 4, HEADER, path, WHAT)? as u64;
    let expected = HEADER as u64 + count;
    check_size(bytes, expected, path, WHAT)?;
    let labels = bytes[HEADER..].to_vec();
    if let Some((index, &value)) = labels.iter().enumerate().find(|(_, &v)| v > 9) {
        return Err(IdxError::BadLabel {
            path: path.to_path_buf(),
            index,
            value,
        });
    }
    Ok(labels)
}

/// Reads and parses an IDX3 images file.
pub fn read_images(path: &Path) -> Result<IdxImages, IdxError> {
    parse_images(&read_file(path)?, path)
}

/// Reads and parses an IDX1 labels file.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, IdxError> {
    parse_labels(&read_file(path)?, path)
}

/// Encodes images as an IDX3 file (used to make small synthetic fixtures in tests).
pub fn encode_images(images: &IdxImages) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + images.pixels.len());
    for v in [
        IMAGES_MAGIC,
        images.count as u32,
        images.rows as u32,
        images.cols as u32,
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&images.pixels);
    out
}

/// Encodes labels as an IDX1 file (used to make small synthetic fixtures in tests).
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}
