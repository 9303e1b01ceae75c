//! Random translation of image rows by up to ±N pixels (zero fill), as Hinton et al. used
//! for their MNIST teacher.

use distill_proto::views::{shift, Augment};
use rand::rngs::StdRng;
use rand::Rng;

/// How to read a flat input row as an image, and how far to shift it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jitter {
    /// Maximum shift in pixels, each axis.
    pub pixels: usize,
    /// Channels.
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
}

impl Jitter {
    /// The image layout for `image_shape` (`[H, W]` or `[C, H, W]`), or a square
    /// single-channel image when absent; `None` when `dim` does not fit it.
    pub fn new(pixels: usize, image_shape: Option<&[usize]>, dim: usize) -> Option<Self> {
        let shape = match image_shape {
            Some(s) => Some(chw(s)?),
            None => None,
        };
        let [channels, height, width] = Augment { pixels, shape }.layout(dim).ok()?;
        Some(Self {
            pixels,
            channels,
            height,
            width,
        })
    }

    /// Writes a randomly shifted copy of `src` into `dst` (same length).
    pub fn apply(&self, src: &[f32], dst: &mut [f32], rng: &mut StdRng) {
        let p = self.pixels as i64;
        let dy = rng.random_range(-p..=p);
        let dx = rng.random_range(-p..=p);
        shift(src, dst, [self.channels, self.height, self.width], dy, dx);
    }
}

/// `data.image_shape` (`[H, W]` or `[C, H, W]`) as `[C, H, W]`; `None` for other lengths.
pub fn chw(shape: &[usize]) -> Option<[usize; 3]> {
    match shape {
        [h, w] => Some([1, *h, *w]),
        [c, h, w] => Some([*c, *h, *w]),
        _ => None,
    }
}
