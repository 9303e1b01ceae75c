//! Random translation of image rows by up to ±N pixels (zero fill), as Hinton et al. used
//! for their MNIST teacher.

use distill_proto::views::shift;
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
        let (channels, height, width) = match image_shape {
            Some([h, w]) => (1, *h, *w),
            Some([c, h, w]) => (*c, *h, *w),
            Some(_) => return None,
            None => {
                let side = (dim as f64).sqrt().round() as usize;
                (1, side, side)
            }
        };
        (channels * height * width == dim && dim > 0).then_some(Self {
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
