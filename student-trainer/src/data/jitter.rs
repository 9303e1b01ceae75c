//! Random translation of image rows by up to ±N pixels (zero fill), as Hinton et al. used
//! for their MNIST teacher.

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
        shift(src, dst, self.channels, self.height, self.width, dy, dx);
    }
}

/// `dst[c, y, x] = src[c, y - dy, x - dx]`, zero outside the image.
pub fn shift(src: &[f32], dst: &mut [f32], c: usize, h: usize, w: usize, dy: i64, dx: i64) {
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
    use super::shift;

    #[test]
    fn shift_moves_pixels_and_zero_fills() {
        // 3x3 image 1..9
        let src: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut dst = vec![0.0; 9];
        shift(&src, &mut dst, 1, 3, 3, 1, 0); // down by one
        assert_eq!(dst, vec![0., 0., 0., 1., 2., 3., 4., 5., 6.]);
        shift(&src, &mut dst, 1, 3, 3, 0, -1); // left by one
        assert_eq!(dst, vec![2., 3., 0., 5., 6., 0., 8., 9., 0.]);
        shift(&src, &mut dst, 1, 3, 3, 0, 0);
        assert_eq!(dst, src);
    }
}
