//! Seeded augmented views of input rows: how `distill-label label --views K` augments each row
//! before the teacher scores it, and how the trainer replays exactly that augmentation.
//!
//! View `v` of the row with id `ID` is stored under the id `ID#vV` ([`view_id`]), with the
//! source id, the view index, its seed and the augmentation spec as pass-through columns
//! ([`VIEW_OF_COLUMN`], [`VIEW_COLUMN`], [`VIEW_SEED_COLUMN`], [`AUGMENT_COLUMN`]). The seed
//! is a pure function of (base seed, id, view) ([`view_seed`]) and the augmentation a pure
//! function of (seed, input) ([`Augment::apply`]), written so that numpy can redo both
//! (`tests/tests/views.rs` does).

use std::fmt;
use std::str::FromStr;

/// Pass-through column holding the source row's id.
pub const VIEW_OF_COLUMN: &str = "view_of";
/// Pass-through column holding the view index (Int32, 0-based).
pub const VIEW_COLUMN: &str = "view";
/// Pass-through column holding the view's seed (UInt64).
pub const VIEW_SEED_COLUMN: &str = "view_seed";
/// Pass-through column holding the augmentation spec ([`Augment`]'s text form).
pub const AUGMENT_COLUMN: &str = "augment";

/// Stream id of the id hash in [`mix_seed`] (the trainer's other streams are disjoint).
const ID_STREAM: u64 = 11;
/// Stream id of view seeds in [`mix_seed`].
const VIEW_STREAM: u64 = 16;

/// SplitMix64 finaliser: a well-mixed 64-bit value from `(seed, a, b)`.
pub fn mix_seed(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed
        .wrapping_add(a.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(b.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 64-bit identity of a row: FNV-1a of the id's bytes, finalised by SplitMix64.
pub fn id_hash(id: &str) -> u64 {
    let fnv = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    });
    mix_seed(fnv, ID_STREAM, 0)
}

/// The seed of view `view` of the row whose [`id_hash`] is `row`, under base seed `base`.
pub fn view_seed(base: u64, row: u64, view: u32) -> u64 {
    mix_seed(mix_seed(base, VIEW_STREAM, row), view as u64, 0)
}

/// The stored id of view `view` of row `id`.
pub fn view_id(id: &str, view: u32) -> String {
    format!("{id}#v{view}")
}

/// An augmentation of image rows, with the image layout it reads the flat row as.
///
/// Text form: `jitter=P` (a square single-channel image is assumed from the row width) or
/// `jitter=P,shape=HxW` / `jitter=P,shape=CxHxW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Augment {
    /// Maximum shift in pixels on each axis (zero fill).
    pub pixels: usize,
    /// `[channels, height, width]`, when given; else inferred by [`Augment::layout`].
    pub shape: Option<[usize; 3]>,
}

/// A spec that does not parse or does not fit the rows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("augmentation {spec:?}: {message}")]
pub struct AugmentError {
    /// The spec as written.
    pub spec: String,
    /// What is wrong with it.
    pub message: String,
}

impl Augment {
    /// `[C, H, W]` of rows of `width` values: the given shape, or a square single-channel
    /// image; an error when neither fits.
    pub fn layout(&self, width: usize) -> Result<[usize; 3], AugmentError> {
        let err = |message: String| AugmentError {
            spec: self.to_string(),
            message,
        };
        let shape = match self.shape {
            Some(s) => s,
            None => {
                let side = (width as f64).sqrt().round() as usize;
                if side * side != width {
                    return Err(err(format!(
                        "rows of {width} values are not a square image; give shape=HxW or CxHxW"
                    )));
                }
                [1, side, side]
            }
        };
        if shape.iter().product::<usize>() != width || width == 0 {
            return Err(err(format!(
                "shape {}x{}x{} does not hold rows of {width} values",
                shape[0], shape[1], shape[2]
            )));
        }
        Ok(shape)
    }

    /// The shift `(dy, dx)` of the view with `seed`: with `n = 2P + 1`,
    /// `dy = seed mod n - P` and `dx = (seed div n) mod n - P`.
    pub fn offsets(&self, seed: u64) -> (i64, i64) {
        let n = 2 * self.pixels as u64 + 1;
        let p = self.pixels as i64;
        ((seed % n) as i64 - p, ((seed / n) % n) as i64 - p)
    }

    /// Writes the view with `seed` of `src` (laid out as `layout`) into `dst`.
    pub fn apply(&self, layout: [usize; 3], seed: u64, src: &[f32], dst: &mut [f32]) {
        let (dy, dx) = self.offsets(seed);
        shift(src, dst, layout, dy, dx);
    }
}

impl fmt::Display for Augment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "jitter={}", self.pixels)?;
        if let Some([c, h, w]) = self.shape {
            if c == 1 {
                write!(f, ",shape={h}x{w}")?;
            } else {
                write!(f, ",shape={c}x{h}x{w}")?;
            }
        }
        Ok(())
    }
}

impl TryFrom<String> for Augment {
    type Error = AugmentError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Augment> for String {
    fn from(a: Augment) -> String {
        a.to_string()
    }
}

impl FromStr for Augment {
    type Err = AugmentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |message: &str| AugmentError {
            spec: s.to_string(),
            message: message.to_string(),
        };
        let mut pixels = None;
        let mut shape = None;
        for part in s.split(',').map(str::trim) {
            match part.split_once('=') {
                Some(("jitter", p)) => {
                    let p: usize = p
                        .trim()
                        .parse()
                        .map_err(|_| err("jitter=P needs a whole number of pixels"))?;
                    if p == 0 || p > 64 {
                        return Err(err("jitter must be 1 to 64 pixels"));
                    }
                    pixels = Some(p);
                }
                Some(("shape", dims)) => {
                    let dims: Vec<usize> = dims
                        .split('x')
                        .map(|d| d.trim().parse::<usize>())
                        .collect::<Result<_, _>>()
                        .map_err(|_| err("shape must be HxW or CxHxW, whole numbers"))?;
                    shape = Some(match dims[..] {
                        [h, w] => [1, h, w],
                        [c, h, w] => [c, h, w],
                        _ => return Err(err("shape must be HxW or CxHxW")),
                    });
                }
                _ => {
                    return Err(err(
                        "expected jitter=P or jitter=P,shape=HxW (the only augmentation so far)",
                    ))
                }
            }
        }
        let pixels = pixels.ok_or_else(|| err("jitter=P is missing"))?;
        Ok(Self { pixels, shape })
    }
}

/// `dst[c, y, x] = src[c, y - dy, x - dx]`, zero outside the image.
pub fn shift(src: &[f32], dst: &mut [f32], layout: [usize; 3], dy: i64, dx: i64) {
    let [c, h, w] = layout;
    dst.fill(0.0);
    let (hi, wi) = (h as i64, w as i64);
    for ch in 0..c {
        let base = ch * h * w;
        for y in 0..hi {
            let sy = y - dy;
            if sy < 0 || sy >= hi {
                continue;
            }
            // Overlapping x range of the shifted row.
            let x0 = dx.max(0);
            let x1 = (wi + dx).min(wi);
            if x0 >= x1 {
                continue;
            }
            let d = base + (y * wi) as usize;
            let s = base + (sy * wi) as usize;
            let len = (x1 - x0) as usize;
            let (dxs, sxs) = (x0 as usize, (x0 - dx) as usize);
            dst[d + dxs..d + dxs + len].copy_from_slice(&src[s + sxs..s + sxs + len]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_moves_pixels_and_zero_fills() {
        // 3x3 image 1..9
        let src: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut dst = vec![0.0; 9];
        shift(&src, &mut dst, [1, 3, 3], 1, 0); // down by one
        assert_eq!(dst, vec![0., 0., 0., 1., 2., 3., 4., 5., 6.]);
        shift(&src, &mut dst, [1, 3, 3], 0, -1); // left by one
        assert_eq!(dst, vec![2., 3., 0., 5., 6., 0., 8., 9., 0.]);
        shift(&src, &mut dst, [1, 3, 3], 0, 0);
        assert_eq!(dst, src);
    }

    #[test]
    fn specs_round_trip_and_bad_ones_name_the_problem() {
        for s in ["jitter=2", "jitter=1,shape=4x4", "jitter=3,shape=3x32x32"] {
            let a: Augment = s.parse().expect(s);
            assert_eq!(a.to_string(), s);
        }
        assert_eq!(
            "jitter=2,shape=1x28x28".parse::<Augment>().map(|a| a.shape),
            Ok(Some([1, 28, 28]))
        );
        for (bad, says) in [
            ("", "expected jitter"),
            ("jitter=0", "1 to 64"),
            ("jitter=x", "whole number"),
            ("crop=2", "expected jitter"),
            ("jitter=2,shape=28", "HxW"),
            ("shape=2x2", "missing"),
        ] {
            let e = bad.parse::<Augment>().expect_err(bad).to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn layouts_are_checked_against_the_row_width() {
        let a: Augment = "jitter=2".parse().unwrap();
        assert_eq!(a.layout(784), Ok([1, 28, 28]));
        assert!(a.layout(785).unwrap_err().message.contains("not a square"));
        let b: Augment = "jitter=2,shape=3x4x4".parse().unwrap();
        assert_eq!(b.layout(48), Ok([3, 4, 4]));
        assert!(b.layout(16).is_err());
    }

    #[test]
    fn offsets_cover_every_shift_and_seeds_differ_per_row_and_view() {
        let a = Augment {
            pixels: 2,
            shape: None,
        };
        let mut seen = std::collections::HashSet::new();
        for v in 0..500 {
            let (dy, dx) = a.offsets(view_seed(0, id_hash("img-7"), v));
            assert!((-2..=2).contains(&dy) && (-2..=2).contains(&dx));
            seen.insert((dy, dx));
        }
        assert_eq!(seen.len(), 25, "every one of the 5x5 shifts occurs");
        assert_ne!(view_seed(0, id_hash("a"), 0), view_seed(0, id_hash("b"), 0));
        assert_ne!(view_seed(0, id_hash("a"), 0), view_seed(1, id_hash("a"), 0));
        assert_eq!(view_id("img-7", 3), "img-7#v3");
        // The formula numpy redoes in tests/tests/views.rs.
        assert_eq!(a.offsets(5 * 3 + 4), (2, 1));
    }
}
