//! Resizing planar f32 images: area averaging (shrinking frames to the inference size) and
//! bilinear interpolation with half-pixel centres (the fast guided filter's upsampling), both in
//! bands across threads with the same AVX2 dispatch as the box filter.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::*;

/// The output's length for a resize of `src`, or `None` when it is empty; panics on a `src`
/// that does not hold `channels` planes of `width` x `height`, or on an empty source.
fn output_len(
    src: &[f32],
    width: usize,
    height: usize,
    channels: usize,
    new_w: usize,
    new_h: usize,
) -> Option<usize> {
    assert_eq!(
        src.len(),
        channels * width * height,
        "src must hold channels*width*height = {channels}*{width}*{height} values"
    );
    let out_len = channels * new_w * new_h;
    if out_len == 0 {
        return None;
    }
    assert!(
        width > 0 && height > 0,
        "cannot resize an empty {width}x{height} image to {new_w}x{new_h}"
    );
    Some(out_len)
}

/// Area-average resize (like OpenCV INTER_AREA, exact for any ratio when shrinking), planar
/// channels. Each output pixel averages the source over its footprint, weighting partially
/// covered source pixels by the covered fraction; when enlarging this blends at cell borders.
pub fn resize_area(
    src: &[f32],
    width: usize,
    height: usize,
    channels: usize,
    new_w: usize,
    new_h: usize,
) -> Vec<f32> {
    let Some(out_len) = output_len(src, width, height, channels, new_w, new_h) else {
        return Vec::new();
    };
    let xs = AreaTaps::new(width, new_w);
    let ys = AreaTaps::new(height, new_h);
    let plane = width * height;
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(new_w).enumerate().for_each_init(
            || vec![0.0f32; width],
            |tmp, (i, row)| {
                let (c, y) = (i / new_h, i % new_h);
                let src = &src[c * plane..][..plane];
                let (first, weights) = ys.taps(y);
                tmp.fill(0.0);
                for (j, &wy) in weights.iter().enumerate() {
                    // Padding taps weigh nothing; skipping them saves a pass over the row.
                    if wy != 0.0 {
                        let line = &src[(first + j) * width..][..width];
                        for (t, &s) in tmp.iter_mut().zip(line) {
                            *t += wy * s;
                        }
                    }
                }
                xs.apply(tmp, row);
            },
        );
    };
    // SAFETY: every output row is one chunk, and `AreaTaps::apply` writes all of it.
    unsafe { filled_vec(out_len, fill) }
}

/// Bilinear resize with half-pixel centres (align_corners = false, like OpenCV INTER_LINEAR /
/// torch interpolate), edges clamped, planar channels.
pub fn resize_bilinear(
    src: &[f32],
    width: usize,
    height: usize,
    channels: usize,
    new_w: usize,
    new_h: usize,
) -> Vec<f32> {
    let Some(out_len) = output_len(src, width, height, channels, new_w, new_h) else {
        return Vec::new();
    };
    let xs = LerpTable::new(width, new_w);
    let ys = LerpTable::new(height, new_h);
    let plane = width * height;
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(new_w).enumerate().for_each_init(
            || vec![0.0f32; width],
            |tmp, (i, row)| {
                let (c, y) = (i / new_h, i % new_h);
                let src = &src[c * plane..][..plane];
                let (i0, i1, f) = (ys.i0[y], ys.i1[y], ys.f[y]);
                lerp_rows(
                    tmp,
                    &src[i0 * width..][..width],
                    &src[i1 * width..][..width],
                    f,
                );
                xs.apply(tmp, row);
            },
        );
    };
    // SAFETY: every output row is one chunk, and `LerpTable::apply` writes all of it.
    unsafe { filled_vec(out_len, fill) }
}

/// Bilinear taps along one axis with half-pixel centres: output d samples source position
/// (d + 0.5) * src/dst - 0.5, clamped to the edge pixels; `f` weighs `i1` against `i0`.
/// `i0` never decreases with d, so the outputs sharing one `i0 = j` form the run
/// `runs[j]..runs[j + 1]`.
pub(super) struct LerpTable {
    pub(super) i0: Vec<usize>,
    pub(super) i1: Vec<usize>,
    pub(super) f: Vec<f32>,
    pub(super) runs: Vec<usize>,
}

impl LerpTable {
    pub(super) fn new(src: usize, dst: usize) -> Self {
        let scale = src as f64 / dst as f64;
        let mut table = LerpTable {
            i0: Vec::with_capacity(dst),
            i1: Vec::with_capacity(dst),
            f: Vec::with_capacity(dst),
            runs: vec![0; src + 1],
        };
        for d in 0..dst {
            let s = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(src - 1);
            let i1 = (i0 + 1).min(src - 1);
            table.i0.push(i0);
            table.i1.push(i1);
            table.f.push(if i1 == i0 {
                0.0
            } else {
                (s - i0 as f64) as f32
            });
            table.runs[i0 + 1] += 1;
        }
        for j in 0..src {
            table.runs[j + 1] += table.runs[j];
        }
        table
    }

    /// Resamples one row. Walking the runs hoists the two source loads out of the per-pixel
    /// loop, which is then a gather-free multiply-add over `f`.
    #[inline(always)]
    pub(super) fn apply<T: WriteF32>(&self, src: &[f32], dst: &mut [T]) {
        let n = src.len();
        for j in 0..n {
            let (a, b) = (src[j], src[(j + 1).min(n - 1)]);
            let (start, end) = (self.runs[j], self.runs[j + 1]);
            for (d, &f) in dst[start..end].iter_mut().zip(&self.f[start..end]) {
                d.set(a + (b - a) * f);
            }
        }
    }
}

/// `v0 + (v1 - v0) * f` rather than `v0*(1-f) + v1*f`: constants and f = 0 come out exact.
#[inline(always)]
pub(super) fn lerp_rows(dst: &mut [f32], r0: &[f32], r1: &[f32], f: f32) {
    for ((d, &a), &b) in dst.iter_mut().zip(r0).zip(r1) {
        *d = a + (b - a) * f;
    }
}

/// Lets row helpers write both initialised scratch rows and uninitialised outputs.
pub(super) trait WriteF32 {
    fn set(&mut self, v: f32);
}

impl WriteF32 for f32 {
    #[inline(always)]
    fn set(&mut self, v: f32) {
        *self = v;
    }
}

impl WriteF32 for MaybeUninit<f32> {
    #[inline(always)]
    fn set(&mut self, v: f32) {
        self.write(v);
    }
}

/// Upsampling of the low-resolution mean_a/mean_b rows (`k` quantities of `low_w` per row).
pub(super) struct Upsample<'a> {
    pub(super) means: &'a [f32],
    pub(super) k: usize,
    pub(super) low_w: usize,
    pub(super) xs: LerpTable,
    pub(super) ys: LerpTable,
}

impl Upsample<'_> {
    /// Widens low row `y` (all `k` quantities) to full width into `dst`.
    #[inline(always)]
    pub(super) fn widen(&self, y: usize, dst: &mut [f32]) {
        let stride = self.k * self.low_w;
        let row = &self.means[y * stride..][..stride];
        let width = self.xs.f.len();
        for (src, dst) in row
            .chunks_exact(self.low_w)
            .zip(dst.chunks_exact_mut(width))
        {
            self.xs.apply(src, dst);
        }
    }
}

/// Writes full-resolution rows `y0..` of the fast guided filter, q = mean_a * I + mean_b, into
/// `planes` (one piece per channel). Each low row is widened once per band and kept while the
/// output rows between it and the next low row are blended vertically, so the gathers happen
/// at low height and the per-pixel work at full resolution is contiguous and vectorises.
pub(super) fn upsample_band(
    up: &Upsample,
    guide: &[f32],
    width: usize,
    y0: usize,
    planes: &mut [&mut [MaybeUninit<f32>]],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support, the only requirement of the callee, was just checked.
            return unsafe { upsample_band_avx2(up, guide, width, y0, planes) };
        }
    }
    upsample_band_impl(up, guide, width, y0, planes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(super) fn upsample_band_avx2(
    up: &Upsample,
    guide: &[f32],
    width: usize,
    y0: usize,
    planes: &mut [&mut [MaybeUninit<f32>]],
) {
    upsample_band_impl(up, guide, width, y0, planes)
}

#[inline(always)]
pub(super) fn upsample_band_impl(
    up: &Upsample,
    guide: &[f32],
    width: usize,
    y0: usize,
    planes: &mut [&mut [MaybeUninit<f32>]],
) {
    let channels = planes.len();
    let y1 = y0 + planes[0].len() / width;
    let mut top = vec![0.0f32; up.k * width];
    let mut bottom = vec![0.0f32; up.k * width];
    let (mut top_row, mut bottom_row) = (usize::MAX, usize::MAX);
    for y in y0..y1 {
        let (i0, i1, fy) = (up.ys.i0[y], up.ys.i1[y], up.ys.f[y]);
        if i0 != top_row {
            if i0 == bottom_row {
                std::mem::swap(&mut top, &mut bottom);
                bottom_row = usize::MAX;
            } else {
                up.widen(i0, &mut top);
            }
            top_row = i0;
        }
        if i1 != bottom_row {
            up.widen(i1, &mut bottom);
            bottom_row = i1;
        }
        let g = &guide[y * width..][..width];
        let at = (y - y0) * width;
        for (c, q) in planes.iter_mut().enumerate() {
            let q = &mut q[at..at + width];
            let (a0, a1) = (&top[c * width..][..width], &bottom[c * width..][..width]);
            let b_at = (channels + c) * width;
            let (b0, b1) = (&top[b_at..][..width], &bottom[b_at..][..width]);
            for x in 0..width {
                let a = a0[x] + (a1[x] - a0[x]) * fy;
                let b = b0[x] + (b1[x] - b0[x]) * fy;
                q[x].write(a * g[x] + b);
            }
        }
    }
}

/// Area-resize taps along one axis: per output index, `taps` consecutive source indices from
/// `first` with the fractions of the output footprint they cover (summing to 1). A fixed tap
/// count (zero weights pad the short ones) keeps the inner loop free of per-pixel slicing.
pub(super) struct AreaTaps {
    pub(super) first: Vec<usize>,
    pub(super) weights: Vec<f32>,
    pub(super) taps: usize,
}

impl AreaTaps {
    pub(super) fn new(src: usize, dst: usize) -> Self {
        let scale = src as f64 / dst as f64;
        // Integer products keep footprint ends exact, so integer ratios give exact weights.
        let span = |i: usize| {
            let start = (i * src) as f64 / dst as f64;
            let end = ((i + 1) * src) as f64 / dst as f64;
            let j0 = (start.floor() as usize).min(src - 1);
            let j1 = (end.ceil() as usize).clamp(j0 + 1, src);
            (start, end, j0, j1)
        };
        let taps = (0..dst)
            .map(|i| {
                let (_, _, j0, j1) = span(i);
                j1 - j0
            })
            .max()
            .unwrap_or(1);
        let mut first = Vec::with_capacity(dst);
        let mut weights = vec![0.0f32; dst * taps];
        for i in 0..dst {
            let (start, end, j0, j1) = span(i);
            // Padding taps must still index inside the source: start earlier near the end.
            let base = j0.min(src - taps);
            first.push(base);
            for j in j0..j1 {
                let covered = end.min((j + 1) as f64) - start.max(j as f64);
                weights[i * taps + (j - base)] = (covered.max(0.0) / scale) as f32;
            }
        }
        AreaTaps {
            first,
            weights,
            taps,
        }
    }

    /// The first source index and the weights of output `i`'s taps.
    pub(super) fn taps(&self, i: usize) -> (usize, &[f32]) {
        (
            self.first[i],
            &self.weights[i * self.taps..(i + 1) * self.taps],
        )
    }

    /// Resamples one row; common tap counts get a fixed-size inner loop.
    pub(super) fn apply(&self, src: &[f32], dst: &mut [MaybeUninit<f32>]) {
        match self.taps {
            1 => self.apply_fixed::<1>(src, dst),
            2 => self.apply_fixed::<2>(src, dst),
            3 => self.apply_fixed::<3>(src, dst),
            4 => self.apply_fixed::<4>(src, dst),
            _ => self.apply_any(src, dst),
        }
    }

    pub(super) fn apply_fixed<const N: usize>(&self, src: &[f32], dst: &mut [MaybeUninit<f32>]) {
        for ((d, &first), weights) in dst
            .iter_mut()
            .zip(&self.first)
            .zip(self.weights.chunks_exact(N))
        {
            let window: &[f32; N] = src[first..first + N].try_into().unwrap();
            let weights: &[f32; N] = weights.try_into().unwrap();
            let mut acc = 0.0;
            for t in 0..N {
                acc += weights[t] * window[t];
            }
            d.write(acc);
        }
    }

    pub(super) fn apply_any(&self, src: &[f32], dst: &mut [MaybeUninit<f32>]) {
        for ((d, &first), weights) in dst
            .iter_mut()
            .zip(&self.first)
            .zip(self.weights.chunks_exact(self.taps))
        {
            let window = &src[first..first + self.taps];
            let mut acc = 0.0;
            for (&w, &s) in weights.iter().zip(window) {
                acc += w * s;
            }
            d.write(acc);
        }
    }
}
