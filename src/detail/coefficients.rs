//! The fast guided filter in two halves: the local linear model (a slope and an offset per
//! channel) fitted at low resolution, and its application to a full-resolution guide. The video
//! path fits the model when the network refreshes a camera and applies it to every frame.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::resize::{upsample_band, LerpTable, Upsample};
use super::{
    filled_vec, guided_band, scale_rows, split_planes, GuidedFilter, Window, BANDS_PER_THREAD,
};

/// The box-averaged guided-filter coefficients of a `channels`-plane image at low resolution:
/// full-resolution channel c is `a_c * guide + b_c`, with `a_c` and `b_c` upsampled bilinearly.
#[derive(Clone, Debug, PartialEq)]
pub struct Coefficients {
    /// Laid out `[y][a_0..a_{C-1}, b_0..b_{C-1}][x]`, so one low row of every quantity is
    /// contiguous for the upsampler.
    means: Vec<f32>,
    channels: usize,
    width: usize,
    height: usize,
}

impl GuidedFilter {
    /// Fits the filter's local linear model at low resolution: `guide_low` is the guide resized
    /// to `low_w` x `low_h`, `input_low` holds `channels` planes of that size, and `self.radius`
    /// is in low-resolution pixels.
    pub fn coefficients(
        &self,
        guide_low: &[f32],
        input_low: &[f32],
        low_w: usize,
        low_h: usize,
        channels: usize,
    ) -> Coefficients {
        let low_plane = low_w * low_h;
        assert_eq!(
            guide_low.len(),
            low_plane,
            "guide_low must hold low_w*low_h = {low_w}*{low_h} values"
        );
        assert_eq!(
            input_low.len(),
            channels * low_plane,
            "input_low must hold channels*low_w*low_h = {channels}*{low_w}*{low_h} values"
        );
        let empty = Coefficients {
            means: Vec::new(),
            channels,
            width: low_w,
            height: low_h,
        };
        if low_plane == 0 || channels == 0 {
            return empty;
        }
        let win = Window::new(low_w, low_h, self.radius);
        let low_stride = 2 * channels * low_w;
        let low_rows = win.rows_per_band();
        let fill_means = |means: &mut [MaybeUninit<f32>]| {
            means
                .par_chunks_mut(low_rows * low_stride)
                .enumerate()
                .for_each(|(band, chunk)| {
                    let y0 = band * low_rows;
                    let y1 = y0 + chunk.len() / low_stride;
                    guided_band(
                        guide_low,
                        input_low,
                        &win,
                        channels,
                        self.eps,
                        y0..y1,
                        |y, sums, inv| {
                            let dst = &mut chunk[(y - y0) * low_stride..][..low_stride];
                            scale_rows(dst, sums, inv);
                        },
                    );
                });
        };
        // SAFETY: the chunks tile all rows and `guided_band` emits each row of its chunk once,
        // where `scale_rows` writes all of it.
        let means = unsafe { filled_vec(low_h * low_stride, fill_means) };
        Coefficients { means, ..empty }
    }
}

impl Coefficients {
    /// The model that copies the guide into every channel (a = 1, b = 0): the gray picture a
    /// camera shows before its first colour arrives.
    pub fn identity(width: usize, height: usize, channels: usize) -> Coefficients {
        let mut means = Vec::with_capacity(2 * channels * width * height);
        for _ in 0..height {
            means.extend(std::iter::repeat_n(1.0, channels * width));
            means.extend(std::iter::repeat_n(0.0, channels * width));
        }
        Coefficients {
            means,
            channels,
            width,
            height,
        }
    }

    /// The low-resolution size the model was fitted at.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The values, laid out `[y][a_0..a_{C-1}, b_0..b_{C-1}][x]` at the low resolution.
    pub fn values(&self) -> &[f32] {
        &self.means
    }

    /// The filter's output for a full-resolution `guide` of `width` x `height`: `channels`
    /// planes of that size.
    pub fn apply(&self, guide: &[f32], width: usize, height: usize) -> Vec<f32> {
        let plane = width * height;
        assert_eq!(
            guide.len(),
            plane,
            "guide must hold width*height = {width}*{height} values"
        );
        let channels = self.channels;
        if plane == 0 || channels == 0 {
            return Vec::new();
        }
        assert!(
            self.width * self.height > 0,
            "low-resolution size {}x{} is empty but the full size {width}x{height} is not",
            self.width,
            self.height
        );
        let up = Upsample {
            means: &self.means,
            k: 2 * channels,
            low_w: self.width,
            xs: LerpTable::new(self.width, width),
            ys: LerpTable::new(self.height, height),
        };
        let rows = height
            .div_ceil(rayon::current_num_threads().max(1) * BANDS_PER_THREAD)
            .max(1);
        let fill = |out: &mut [MaybeUninit<f32>]| {
            split_planes(out, plane, rows * width)
                .into_par_iter()
                .enumerate()
                .for_each(|(band, mut planes)| {
                    upsample_band(&up, guide, width, band * rows, &mut planes)
                });
        };
        // SAFETY: the bands tile all rows of every plane and `upsample_band` writes every
        // value of each of its rows.
        unsafe { filled_vec(channels * plane, fill) }
    }

    /// Moves every low-resolution pixel's coefficients the fraction `weights[y * width + x]`
    /// (0: keep, 1: take the target's) of the way to `target`'s.
    pub fn blend(&mut self, target: &Coefficients, weights: &[f32]) {
        assert_eq!(
            (self.size(), self.channels),
            (target.size(), target.channels),
            "blending coefficients of different shapes"
        );
        assert_eq!(
            weights.len(),
            self.width * self.height,
            "one blend weight per low-resolution pixel"
        );
        let stride = 2 * self.channels * self.width;
        if stride == 0 {
            return;
        }
        for ((row, goal), w) in self
            .means
            .chunks_exact_mut(stride)
            .zip(target.means.chunks_exact(stride))
            .zip(weights.chunks_exact(self.width))
        {
            for (m, t) in row
                .chunks_exact_mut(self.width)
                .zip(goal.chunks_exact(self.width))
            {
                for ((m, &t), &w) in m.iter_mut().zip(t).zip(w) {
                    // A full step lands exactly on the target (m + (t - m) may round off it).
                    *m = if w >= 1.0 { t } else { *m + (t - *m) * w };
                }
            }
        }
    }
}
