//! In-memory images the stages pass between them: f32, planar, NIR in [0, 1] and colour as three
//! planes (the layout the guided filter and libtorch both want), plus 8-bit conversions.

use image::{GrayImage, RgbImage};

// BT.601 full-range luma weights (JPEG/JFIF YCbCr without the 0.5 chroma offset):
//   Y = 0.299 R + 0.587 G + 0.114 B, U = (B - Y) / 1.772, V = (R - Y) / 1.402,
// where 1.772 = 2 (1 - 0.114) and 1.402 = 2 (1 - 0.299) scale U and V to [-0.5, 0.5] for RGB
// in [0, 1].
const KR: f32 = 0.299;
const KG: f32 = 0.587;
const KB: f32 = 0.114;
const U_SCALE: f32 = 2.0 * (1.0 - KB);
const V_SCALE: f32 = 2.0 * (1.0 - KR);

/// BT.601 full-range (Y, U, V) of an RGB pixel, in the RGB's units.
pub fn rgb_to_yuv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let y = KR * r + KG * g + KB * b;
    (y, (b - y) / U_SCALE, (r - y) / V_SCALE)
}

/// The inverse of [`rgb_to_yuv`].
pub fn yuv_to_rgb(y: f32, u: f32, v: f32) -> (f32, f32, f32) {
    let r = y + V_SCALE * v;
    let b = y + U_SCALE * u;
    let g = (y - KR * r - KB * b) / KG;
    (r, g, b)
}

/// One NIR plane, row-major, nominally in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Gray {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

/// Colour as three planes (R, G, B), row-major, nominally in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Gray {
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Self {
        assert_eq!(
            data.len(),
            width * height,
            "Gray: data length must be width*height"
        );
        Gray {
            width,
            height,
            data,
        }
    }

    pub fn from_luma8(img: &GrayImage) -> Self {
        let data = img.as_raw().iter().map(|&v| f32::from(v) / 255.0).collect();
        Gray::new(img.width() as usize, img.height() as usize, data)
    }

    pub fn to_luma8(&self) -> GrayImage {
        let raw = self.data.iter().map(|&v| to_u8(v)).collect();
        GrayImage::from_raw(self.width as u32, self.height as u32, raw)
            .expect("buffer length matches the size")
    }

    /// Grey replicated to three channels: the `identity` colorizer and the report's NIR column.
    pub fn to_rgb(&self) -> Rgb {
        let mut data = Vec::with_capacity(self.data.len() * 3);
        for _ in 0..3 {
            data.extend_from_slice(&self.data);
        }
        Rgb::new(self.width, self.height, data)
    }
}

impl Rgb {
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Self {
        assert_eq!(
            data.len(),
            3 * width * height,
            "Rgb: data length must be 3*width*height"
        );
        Rgb {
            width,
            height,
            data,
        }
    }

    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.width * self.height;
        &self.data[c * n..(c + 1) * n]
    }

    pub fn from_rgb8(img: &RgbImage) -> Self {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let n = w * h;
        let mut data = vec![0.0f32; 3 * n];
        for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
            for c in 0..3 {
                data[c * n + i] = f32::from(px[c]) / 255.0;
            }
        }
        Rgb::new(w, h, data)
    }

    /// Clamped and rounded to 8-bit sRGB: what metrics and files see.
    pub fn to_rgb8(&self) -> RgbImage {
        let n = self.width * self.height;
        let mut raw = vec![0u8; 3 * n];
        interleave_u8(&self.data, n, &mut raw);
        RgbImage::from_raw(self.width as u32, self.height as u32, raw)
            .expect("buffer length matches the size")
    }
}

/// Planes (R, G, B of `n` each) to interleaved 8-bit pixels. It runs on every pixel of every
/// frame the daemon encodes: rows are converted a plane at a time (a loop that vectorises) and
/// then interleaved, with AVX2 where the CPU has it.
fn interleave_u8(planes: &[f32], n: usize, out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support, the only requirement of the callee, was just checked.
            return unsafe { interleave_u8_avx2(planes, n, out) };
        }
    }
    interleave_u8_impl(planes, n, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn interleave_u8_avx2(planes: &[f32], n: usize, out: &mut [u8]) {
    interleave_u8_impl(planes, n, out)
}

#[inline(always)]
fn interleave_u8_impl(planes: &[f32], n: usize, out: &mut [u8]) {
    const CHUNK: usize = 256;
    let (r, rest) = planes.split_at(n);
    let (g, b) = rest.split_at(n);
    let mut bytes = [[0u8; CHUNK]; 3];
    for (start, px) in (0..n).step_by(CHUNK).zip(out.chunks_mut(3 * CHUNK)) {
        let len = CHUNK.min(n - start);
        for (plane, dst) in [r, g, b].iter().zip(bytes.iter_mut()) {
            for (d, &v) in dst[..len].iter_mut().zip(&plane[start..start + len]) {
                *d = to_u8(v);
            }
        }
        for (i, p) in px.chunks_exact_mut(3).enumerate() {
            p[0] = bytes[0][i];
            p[1] = bytes[1][i];
            p[2] = bytes[2][i];
        }
    }
}

/// Rounds half up by adding 0.5 before the truncating cast (the same as `round` on the clamped
/// range, where nothing is negative): `round` is a library call that keeps the loop scalar, and
/// this conversion runs on every pixel of every frame the daemon encodes.
#[inline(always)]
fn to_u8(v: f32) -> u8 {
    byte(v * 255.0)
}

/// `v` on the 0..=255 scale, clamped and rounded half up to a byte; NaN becomes 0 (rather than
/// poisoning a frame).
#[inline(always)]
#[allow(clippy::manual_clamp)] // `clamp` keeps NaN; `max` returns its other operand.
pub fn byte(v: f32) -> u8 {
    let x = (v + 0.5).max(0.0).min(255.0);
    // SAFETY: x is finite and in [0, 255], so it fits an i32. A checked `as` cast would be
    // converted lane by lane; this one vectorises.
    unsafe { x.to_int_unchecked::<i32>() as u8 }
}

/// `v` clamped to [0, 1], NaN to 0.
#[inline(always)]
#[allow(clippy::manual_clamp)] // `clamp` keeps NaN; `max` returns its other operand.
pub fn unit(v: f32) -> f32 {
    v.max(0.0).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb8_round_trip_is_exact() {
        let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 90, 7]));
        assert_eq!(Rgb::from_rgb8(&img).to_rgb8(), img);
    }

    #[test]
    fn fast_rounding_matches_round_on_a_fine_grid() {
        // Quarter steps of an 8-bit level: exact levels, midpoints (round half up) and between.
        for k in 0..=4 * 255 {
            let v = k as f32 / (4.0 * 255.0);
            assert_eq!(to_u8(v), (v * 255.0).round() as u8, "at {v}");
        }
    }

    #[test]
    fn out_of_range_values_clamp() {
        let rgb = Rgb::new(1, 1, vec![-0.5, 1.7, f32::NAN]);
        assert_eq!(rgb.to_rgb8().as_raw(), &vec![0, 255, 0]);
    }

    #[test]
    fn gray_to_rgb_replicates() {
        let g = Gray::new(2, 1, vec![0.25, 1.0]);
        assert_eq!(g.to_rgb().data, vec![0.25, 1.0, 0.25, 1.0, 0.25, 1.0]);
    }
}
