//! Per-row digests of the model inputs: what makes a re-sent id recognisable as "the same
//! row" (idempotent) or "a different row under a used id" (conflict), even when the inputs
//! themselves are not stored.
//!
//! Two algorithms exist, recorded per dataset in [`super::Manifest::input_digest`] so a store
//! written by an older build still opens and keeps recognising its rows:
//! - [`DigestAlgorithm::Sha256`] (`sha256-128`, v1): the first 16 bytes of a SHA-256. Datasets
//!   whose manifest has no `input_digest` field were written with it.
//! - [`DigestAlgorithm::Xxh3`] (`xxh3-128`, v2, new datasets): XXH3-128 over the same
//!   fields, about 10x cheaper per byte than SHA-256 even with SHA instructions.
//!
//! Why a non-cryptographic hash is enough: the digest only decides whether a re-sent id
//! carries the same inputs. A wrong answer needs one id re-sent with *different* inputs whose
//! 128-bit digests are equal; for a hash with XXH3's distribution (it passes SMHasher) that is
//! 2^-128 per such re-send, far below the rate of undetected disk or memory errors. It is not
//! collision resistant against a client that crafts inputs on purpose: such a client could make
//! a conflicting re-send of its own id be skipped as a duplicate instead of answered 409, which
//! harms only its own dataset (it can write there anyway). Stores that need an adversarial
//! guarantee create their datasets with SHA-256
//! ([`super::LabelStore::set_new_dataset_digest`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::Xxh3;

use super::StoreError;
use crate::{NamedTensors, Tensor, TensorData};

/// Bytes of a row digest (16 bytes whatever the algorithm).
pub const DIGEST_LEN: usize = 16;

/// Digest of one row's inputs.
pub type RowDigest = [u8; DIGEST_LEN];

/// How a dataset's `_input_digest` column was computed (recorded in its manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DigestAlgorithm {
    /// v1: the first 16 bytes of SHA-256 (datasets written before `input_digest` existed).
    #[serde(rename = "sha256-128")]
    Sha256,
    /// v2: XXH3-128, little-endian (what new datasets use).
    #[serde(rename = "xxh3-128")]
    Xxh3,
}

impl DigestAlgorithm {
    /// The algorithm new datasets are created with.
    pub const CURRENT: DigestAlgorithm = DigestAlgorithm::Xxh3;

    /// The algorithm of a manifest without an `input_digest` field (written before it existed).
    pub fn legacy() -> Self {
        DigestAlgorithm::Sha256
    }

    /// The name written in manifests.
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256-128",
            DigestAlgorithm::Xxh3 => "xxh3-128",
        }
    }
}

/// Digests each of `rows` rows over all inputs with `algorithm` (see [`row_digests`] for v1,
/// [`row_digests_xxh3`] for v2).
pub fn row_digests_with(
    algorithm: DigestAlgorithm,
    inputs: &NamedTensors,
    rows: usize,
) -> Result<Vec<RowDigest>, StoreError> {
    match algorithm {
        DigestAlgorithm::Sha256 => row_digests(inputs, rows),
        DigestAlgorithm::Xxh3 => row_digests_xxh3(inputs, rows),
    }
}

/// Digests each row of a text teacher's token rows with `algorithm`.
pub fn token_digests_with(algorithm: DigestAlgorithm, tokens: &super::TokenRows) -> Vec<RowDigest> {
    match algorithm {
        DigestAlgorithm::Sha256 => token_digests(tokens),
        DigestAlgorithm::Xxh3 => token_digests_xxh3(tokens),
    }
}

/// Inputs in name order, each checked to hold `rows` rows.
fn sorted_inputs(inputs: &NamedTensors, rows: usize) -> Result<Vec<&(String, Tensor)>, StoreError> {
    let mut sorted: Vec<&(String, Tensor)> = inputs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in &sorted {
        if t.shape().first().copied() != Some(rows) {
            return Err(StoreError::InvalidRows(format!(
                "input {name:?} has shape {:?}, expected {rows} rows on axis 0",
                t.shape()
            )));
        }
    }
    Ok(sorted)
}

/// What v1 and v2 hash ahead of an input's values: name, dtype and row shape.
fn input_header(name: &str, t: &Tensor) -> Vec<u8> {
    let mut h = Vec::with_capacity(64);
    h.extend((name.len() as u64).to_le_bytes());
    h.extend(name.as_bytes());
    h.extend(t.dtype().name().as_bytes());
    let row_shape = &t.shape()[1..];
    h.extend((row_shape.len() as u64).to_le_bytes());
    for d in row_shape {
        h.extend((*d as u64).to_le_bytes());
    }
    h
}

/// Feeds row `r` of `t` to `update` as little-endian bytes (bool as one byte), without a copy
/// on little-endian machines.
fn row_bytes(t: &Tensor, r: usize, buf: &mut Vec<u8>, mut update: impl FnMut(&[u8])) {
    let w = t.row_len();
    let (a, b) = (r * w, (r + 1) * w);
    #[cfg(target_endian = "little")]
    {
        /// The in-memory bytes of a slice of plain numbers, which on a little-endian machine
        /// are their little-endian encodings.
        fn bytes_of<T: Copy>(v: &[T]) -> &[u8] {
            // SAFETY: T is one of f32, f64, i64, i32, half::f16 (plain data, no padding, every
            // byte initialised); the slice covers exactly the memory of `v`.
            unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
        }
        match t.data() {
            TensorData::F32(v) => return update(bytes_of(&v[a..b])),
            TensorData::F16(v) => return update(bytes_of(&v[a..b])),
            TensorData::F64(v) => return update(bytes_of(&v[a..b])),
            TensorData::I64(v) => return update(bytes_of(&v[a..b])),
            TensorData::I32(v) => return update(bytes_of(&v[a..b])),
            TensorData::Bool(_) => {}
        }
    }
    buf.clear();
    match t.data() {
        TensorData::F32(v) => v[a..b].iter().for_each(|x| buf.extend(x.to_le_bytes())),
        TensorData::F16(v) => v[a..b].iter().for_each(|x| buf.extend(x.to_le_bytes())),
        TensorData::F64(v) => v[a..b].iter().for_each(|x| buf.extend(x.to_le_bytes())),
        TensorData::I64(v) => v[a..b].iter().for_each(|x| buf.extend(x.to_le_bytes())),
        TensorData::I32(v) => v[a..b].iter().for_each(|x| buf.extend(x.to_le_bytes())),
        TensorData::Bool(v) => buf.extend(v[a..b].iter().map(|&x| x as u8)),
    }
    update(buf)
}

/// v2 of [`row_digests`]: XXH3-128 over the domain tag `distill.inputs.v2`, then per input (in
/// name order) its name, dtype, row shape and the row's elements as little-endian bytes.
pub fn row_digests_xxh3(inputs: &NamedTensors, rows: usize) -> Result<Vec<RowDigest>, StoreError> {
    let sorted = sorted_inputs(inputs, rows)?;
    let headers: Vec<Vec<u8>> = sorted.iter().map(|(n, t)| input_header(n, t)).collect();
    let mut out = Vec::with_capacity(rows);
    let mut buf = Vec::new();
    let mut h = Xxh3::new();
    for r in 0..rows {
        h.reset();
        h.update(b"distill.inputs.v2");
        for ((_, t), header) in sorted.iter().zip(&headers) {
            h.update(header);
            row_bytes(t, r, &mut buf, |b| h.update(b));
        }
        out.push(h.digest128().to_le_bytes());
    }
    Ok(out)
}

/// v2 of [`token_digests`]: XXH3-128 over the domain tag `distill.tokens.v2` and the ids.
pub fn token_digests_xxh3(tokens: &super::TokenRows) -> Vec<RowDigest> {
    let hash_ids = |h: &mut Xxh3, name: &str, ids: &[u32]| {
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(&(ids.len() as u64).to_le_bytes());
        for id in ids {
            h.update(&id.to_le_bytes());
        }
    };
    let mut h = Xxh3::new();
    (0..tokens.ids.len())
        .map(|r| {
            h.reset();
            h.update(b"distill.tokens.v2");
            hash_ids(&mut h, super::TOKEN_IDS_COLUMN, &tokens.ids[r]);
            if let Some(types) = &tokens.type_ids {
                hash_ids(&mut h, super::TOKEN_TYPE_IDS_COLUMN, &types[r]);
            }
            h.digest128().to_le_bytes()
        })
        .collect()
}

/// v1: digests each of `rows` rows over all inputs (SHA-256, first 16 bytes), in input-name order so the order the inputs
/// were handed in does not matter. Each input contributes its name, dtype, row shape and the
/// row's elements as little-endian bytes.
pub fn row_digests(inputs: &NamedTensors, rows: usize) -> Result<Vec<RowDigest>, StoreError> {
    let mut sorted: Vec<&(String, Tensor)> = inputs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in &sorted {
        if t.shape().first().copied() != Some(rows) {
            return Err(StoreError::InvalidRows(format!(
                "input {name:?} has shape {:?}, expected {rows} rows on axis 0",
                t.shape()
            )));
        }
    }
    let mut out = Vec::with_capacity(rows);
    let mut buf: Vec<u8> = Vec::new();
    for r in 0..rows {
        let mut h = Sha256::new();
        for (name, t) in &sorted {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update(t.dtype().name().as_bytes());
            let row_shape = &t.shape()[1..];
            h.update((row_shape.len() as u64).to_le_bytes());
            for d in row_shape {
                h.update((*d as u64).to_le_bytes());
            }
            let w = t.row_len();
            let (a, b) = (r * w, (r + 1) * w);
            buf.clear();
            match t.data() {
                TensorData::F32(v) => v[a..b].iter().for_each(|x| buf.extend(x.to_le_bytes())),
                TensorData::F16(v) => v[a..b].iter().for_each(|x| buf.extend(x.to_le_bytes())),
                TensorData::F64(v) => v[a..b].iter().for_each(|x| buf.extend(x.to_le_bytes())),
                TensorData::I64(v) => v[a..b].iter().for_each(|x| buf.extend(x.to_le_bytes())),
                TensorData::I32(v) => v[a..b].iter().for_each(|x| buf.extend(x.to_le_bytes())),
                TensorData::Bool(v) => buf.extend(v[a..b].iter().map(|&x| x as u8)),
            }
            h.update(&buf);
        }
        let full = h.finalize();
        let mut d = [0u8; DIGEST_LEN];
        d.copy_from_slice(&full[..DIGEST_LEN]);
        out.push(d);
    }
    Ok(out)
}

/// v1: digests each row of a text teacher's token rows (SHA-256) over its token ids (and type ids): the text
/// is not hashed, so a sentence sent as text and its ids sent directly digest alike.
pub fn token_digests(tokens: &super::TokenRows) -> Vec<RowDigest> {
    let hash_ids = |h: &mut Sha256, name: &str, ids: &[u32]| {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((ids.len() as u64).to_le_bytes());
        for id in ids {
            h.update(id.to_le_bytes());
        }
    };
    (0..tokens.ids.len())
        .map(|r| {
            let mut h = Sha256::new();
            h.update(b"distill.tokens.v1");
            hash_ids(&mut h, super::TOKEN_IDS_COLUMN, &tokens.ids[r]);
            if let Some(types) = &tokens.type_ids {
                hash_ids(&mut h, super::TOKEN_TYPE_IDS_COLUMN, &types[r]);
            }
            let full = h.finalize();
            let mut d = [0u8; DIGEST_LEN];
            d.copy_from_slice(&full[..DIGEST_LEN]);
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TokenRows;

    fn named(v: Vec<(&str, Tensor)>) -> NamedTensors {
        v.into_iter()
            .map(|(n, t)| (n.to_string(), t))
            .collect::<Vec<_>>()
            .into()
    }

    #[test]
    fn xxh3_digest_is_the_documented_byte_string() {
        let x = Tensor::new(
            vec![2, 3],
            TensorData::F32(vec![0.5, -1.0, 2.0, 3.0, 4.0, 5.0]),
        )
        .unwrap();
        let m = Tensor::new(vec![2, 1], TensorData::Bool(vec![true, false])).unwrap();
        let inputs = named(vec![("x", x), ("m", m)]);
        let got = row_digests_xxh3(&inputs, 2).unwrap();
        for (r, (xs, mb)) in [([0.5f32, -1.0, 2.0], 1u8), ([3.0, 4.0, 5.0], 0)]
            .iter()
            .enumerate()
        {
            // Built by hand: tag, then inputs in name order (m before x).
            let mut want = b"distill.inputs.v2".to_vec();
            want.extend(1u64.to_le_bytes());
            want.extend(b"m");
            want.extend(b"bool");
            want.extend(1u64.to_le_bytes());
            want.extend(1u64.to_le_bytes());
            want.push(*mb);
            want.extend(1u64.to_le_bytes());
            want.extend(b"x");
            want.extend(b"f32");
            want.extend(1u64.to_le_bytes());
            want.extend(3u64.to_le_bytes());
            for v in xs {
                want.extend(v.to_le_bytes());
            }
            assert_eq!(
                got[r],
                xxhash_rust::xxh3::xxh3_128(&want).to_le_bytes(),
                "row {r}"
            );
        }
        // Versions differ, and each tells rows apart.
        let v1 = row_digests(&inputs, 2).unwrap();
        assert_ne!(v1, got);
        assert_ne!(got[0], got[1]);
        assert_eq!(
            row_digests_with(DigestAlgorithm::Sha256, &inputs, 2).unwrap(),
            v1
        );
    }

    #[test]
    fn xxh3_token_digests_ignore_the_text_and_see_every_id() {
        let a = TokenRows {
            text: Some(vec!["a b".into(), "c".into()]),
            ids: vec![vec![101, 7, 8, 102], vec![101, 9, 102]],
            type_ids: None,
        };
        let b = TokenRows {
            text: None,
            ..a.clone()
        };
        let d = token_digests_with(DigestAlgorithm::Xxh3, &a);
        assert_eq!(d, token_digests_xxh3(&b));
        assert_ne!(d[0], d[1]);
        assert_ne!(d, token_digests(&a));
        let mut c = a.clone();
        c.ids[1] = vec![101, 9, 9, 102];
        assert_ne!(token_digests_xxh3(&c)[1], d[1]);
    }

    #[test]
    fn algorithm_names_are_the_manifest_values() {
        for a in [DigestAlgorithm::Sha256, DigestAlgorithm::Xxh3] {
            assert_eq!(serde_json::to_value(a).unwrap(), a.name());
        }
        assert_eq!(DigestAlgorithm::legacy(), DigestAlgorithm::Sha256);
    }

    #[test]
    fn token_digests_ignore_the_text_and_see_every_id() {
        let a = TokenRows {
            text: Some(vec!["a b".into(), "c".into()]),
            ids: vec![vec![101, 7, 8, 102], vec![101, 9, 102]],
            type_ids: None,
        };
        let b = TokenRows {
            text: None,
            ..a.clone()
        };
        assert_eq!(token_digests(&a), token_digests(&b));
        let d = token_digests(&a);
        assert_ne!(d[0], d[1]);
        let mut c = a.clone();
        c.ids[1] = vec![101, 9, 9, 102];
        assert_ne!(token_digests(&c)[1], d[1]);
        let with_types = TokenRows {
            type_ids: Some(vec![vec![0; 4], vec![0; 3]]),
            ..a.clone()
        };
        assert_ne!(token_digests(&with_types)[0], d[0]);
    }
}
