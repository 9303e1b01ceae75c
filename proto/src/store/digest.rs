//! Per-row digests of the model inputs: what makes a re-sent id recognisable as "the same
//! row" (idempotent) or "a different row under a used id" (conflict), even when the inputs
//! themselves are not stored.

use sha2::{Digest, Sha256};

use super::StoreError;
use crate::{NamedTensors, Tensor, TensorData};

/// Bytes of a row digest (the first 16 bytes of a SHA-256).
pub const DIGEST_LEN: usize = 16;

/// Digest of one row's inputs.
pub type RowDigest = [u8; DIGEST_LEN];

/// Digests each of `rows` rows over all inputs, in input-name order so the order the inputs
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

/// Digests each row of a text teacher's token rows over its token ids (and type ids): the text
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
