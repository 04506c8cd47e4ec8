//! The guided filter that carries the NIR's full-resolution detail into the colour output.
//! Images are planar f32: a gray guide is `width*height` row-major, multi-channel data is CHW.

pub mod bfwls;
pub mod lowres;

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Bands per worker thread: more than one so work stealing can even out a shared, noisy
/// machine, few enough that each band's start-up (priming sums, recomputing the coefficient
/// rows that overlap its neighbours) stays a small share of the work.
const BANDS_PER_THREAD: usize = 2;

/// He et al.'s guided filter: `radius` is the half-width of the (2r+1)^2 box window, `eps` the
/// regulariser added to the guide's local variance (in squared intensity units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuidedFilter {
    pub radius: usize,
    pub eps: f32,
}

impl GuidedFilter {
    /// He et al.'s guided filter with a gray guide, any number of input channels (3 typical).
    ///
    /// `guide` is `width*height`, `input` is `channels` planes of `width*height`; the output has
    /// the input's layout.
    pub fn filter(
        &self,
        guide: &[f32],
        width: usize,
        height: usize,
        input: &[f32],
        channels: usize,
    ) -> Vec<f32> {
        let plane = width * height;
        assert_eq!(
            guide.len(),
            plane,
            "guide must hold width*height = {width}*{height} values"
        );
        assert_eq!(
            input.len(),
            channels * plane,
            "input must hold channels*width*height = {channels}*{width}*{height} values"
        );
        if plane == 0 || channels == 0 {
            return Vec::new();
        }
        let win = Window::new(width, height, self.radius);
        let rows = win.rows_per_band();
        let fill = |out: &mut [MaybeUninit<f32>]| {
            split_planes(out, plane, rows * width)
                .into_par_iter()
                .enumerate()
                .for_each(|(band, mut planes)| {
                    let y0 = band * rows;
                    let y1 = y0 + planes[0].len() / width;
                    guided_band(
                        guide,
                        input,
                        &win,
                        channels,
                        self.eps,
                        y0..y1,
                        |y, sums, inv| {
                            let g = &guide[y * width..][..width];
                            let at = (y - y0) * width;
                            let inv = &inv[..width];
                            for (c, q) in planes.iter_mut().enumerate() {
                                let q = &mut q[at..at + width];
                                let sa = &sums[c * width..][..width];
                                let sb = &sums[(channels + c) * width..][..width];
                                for x in 0..width {
                                    q[x].write(sa[x] * inv[x] * g[x] + sb[x] * inv[x]);
                                }
                            }
                        },
                    );
                });
        };
        // SAFETY: the bands tile all rows of every plane and `guided_band` emits each row of
        // its band once, where every value of that row is written.
        unsafe { filled_vec(channels * plane, fill) }
    }

    /// Fast guided filter (He & Sun 2015): coefficients a,b computed at the LOW resolution from
    /// guide_low (the guide resized to low_w x low_h) and input_low (channels planes at low res),
    /// with `self.radius` interpreted at low resolution; mean_a/mean_b upsampled bilinearly to the
    /// full size, then q = mean_a * guide_full + mean_b at full resolution.
    #[allow(clippy::too_many_arguments)]
    pub fn filter_fast(
        &self,
        guide_full: &[f32],
        width: usize,
        height: usize,
        guide_low: &[f32],
        input_low: &[f32],
        low_w: usize,
        low_h: usize,
        channels: usize,
    ) -> Vec<f32> {
        let plane = width * height;
        let low_plane = low_w * low_h;
        assert_eq!(
            guide_full.len(),
            plane,
            "guide_full must hold width*height = {width}*{height} values"
        );
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
        if plane == 0 || channels == 0 {
            return Vec::new();
        }
        assert!(
            low_plane > 0,
            "low-resolution size {low_w}x{low_h} is empty but the full size {width}x{height} is not"
        );

        // mean_a, mean_b at low resolution, laid out [y][a_0..a_{C-1}, b_0..b_{C-1}][x].
        let win = Window::new(low_w, low_h, self.radius);
        let k = 2 * channels;
        let low_stride = k * low_w;
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

        let up = Upsample {
            means: &means,
            k,
            low_w,
            xs: LerpTable::new(low_w, width),
            ys: LerpTable::new(low_h, height),
        };
        let rows = height
            .div_ceil(rayon::current_num_threads().max(1) * BANDS_PER_THREAD)
            .max(1);
        let fill = |out: &mut [MaybeUninit<f32>]| {
            split_planes(out, plane, rows * width)
                .into_par_iter()
                .enumerate()
                .for_each(|(band, mut planes)| {
                    upsample_band(&up, guide_full, width, band * rows, &mut planes)
                });
        };
        // SAFETY: the bands tile all rows of every plane and `upsample_band` writes every
        // value of each of its rows.
        unsafe { filled_vec(channels * plane, fill) }
    }
}

/// Box mean over (2r+1)^2 windows clipped to the image, divided by the number of pixels inside the
/// window (He's reference normalisation). O(N) regardless of r.
pub fn box_mean(src: &[f32], width: usize, height: usize, radius: usize) -> Vec<f32> {
    assert_eq!(
        src.len(),
        width * height,
        "src must hold width*height = {width}*{height} values"
    );
    if src.is_empty() {
        return Vec::new();
    }
    let win = Window::new(width, height, radius);
    let rows = win.rows_per_band();
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(rows * width)
            .enumerate()
            .for_each(|(band, chunk)| box_band(src, &win, band * rows, chunk));
    };
    // SAFETY: the chunks tile the image and `box_band` writes every row of its chunk.
    unsafe { filled_vec(width * height, fill) }
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
    assert_eq!(
        src.len(),
        channels * width * height,
        "src must hold channels*width*height = {channels}*{width}*{height} values"
    );
    let out_len = channels * new_w * new_h;
    if out_len == 0 {
        return Vec::new();
    }
    assert!(
        width > 0 && height > 0,
        "cannot resize an empty {width}x{height} image to {new_w}x{new_h}"
    );
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
    assert_eq!(
        src.len(),
        channels * width * height,
        "src must hold channels*width*height = {channels}*{width}*{height} values"
    );
    let out_len = channels * new_w * new_h;
    if out_len == 0 {
        return Vec::new();
    }
    assert!(
        width > 0 && height > 0,
        "cannot resize an empty {width}x{height} image to {new_w}x{new_h}"
    );
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

/// Window geometry shared by every box pass over one image size.
struct Window {
    width: usize,
    height: usize,
    rx: usize,
    ry: usize,
    inv_cx: Vec<f32>,
}

impl Window {
    fn new(width: usize, height: usize, radius: usize) -> Self {
        // A window reaching past both borders covers the whole row/column either way; clipping
        // the radius keeps the padded buffers proportional to the image, not to the radius.
        let rx = radius.min(width.saturating_sub(1));
        let ry = radius.min(height.saturating_sub(1));
        let inv_cx = (0..width)
            .map(|x| 1.0 / clipped_count(x, rx, width) as f32)
            .collect();
        Window {
            width,
            height,
            rx,
            ry,
            inv_cx,
        }
    }

    fn inv_cy(&self, y: usize) -> f32 {
        1.0 / clipped_count(y, self.ry, self.height) as f32
    }

    fn rows_per_band(&self) -> usize {
        let bands = rayon::current_num_threads().max(1) * BANDS_PER_THREAD;
        // A band redoes about 2*ry rows of its neighbours' work; bands several times taller
        // keep that overhead small on small images.
        self.height
            .div_ceil(bands)
            .max(4 * (2 * self.ry + 1))
            .clamp(1, self.height)
    }
}

fn clipped_count(i: usize, r: usize, n: usize) -> usize {
    (i + r).min(n - 1) - i.saturating_sub(r) + 1
}

/// Vertical running sums for `k` quantities, one padded row each. The `rx` zeros on both sides
/// let every horizontal window have the same length; the zeros add nothing to clipped windows.
struct Columns {
    data: Vec<f32>,
    stride: usize,
    offset: usize,
    width: usize,
}

impl Columns {
    #[inline(always)]
    fn row(&mut self, q: usize) -> &mut [f32] {
        let start = q * self.stride + self.offset;
        &mut self.data[start..start + self.width]
    }

    #[inline(always)]
    fn padded(&self, q: usize) -> &[f32] {
        &self.data[q * self.stride..(q + 1) * self.stride]
    }
}

/// Row-by-row box sums of `k` quantities over consecutive rows, fed by a `Slide`. After `advance(y)`, `sums` holds the `k` window sums of row y (`k*width`) and
/// `inv_row` the reciprocal window counts. Working a row at a time keeps every buffer in cache
/// and lets the caller consume the sums at once instead of storing full-image temporaries.
struct BoxStream {
    cols: Columns,
    sums: Vec<f32>,
    inv_row: Vec<f32>,
    t1: Vec<f32>,
    t2: Vec<f32>,
    k: usize,
    last: Option<usize>,
}

impl BoxStream {
    fn new(win: &Window, k: usize) -> Self {
        let padded = win.width + 2 * win.rx;
        BoxStream {
            cols: Columns {
                data: vec![0.0; k * padded],
                stride: padded,
                offset: win.rx,
                width: win.width,
            },
            sums: vec![0.0; k * win.width],
            inv_row: vec![0.0; win.width],
            t1: vec![0.0; padded],
            t2: vec![0.0; padded],
            k,
            last: None,
        }
    }

    #[inline(always)]
    fn advance<S: Slide>(&mut self, win: &Window, y: usize, slide: &S) {
        let (w, h, ry) = (win.width, win.height, win.ry);
        match self.last {
            Some(prev) => {
                debug_assert_eq!(y, prev + 1, "BoxStream rows must be consecutive");
                let entering = (y + ry < h).then_some(y + ry);
                let leaving = (y > ry).then(|| y - ry - 1);
                slide.slide(entering, leaving, &mut self.cols);
            }
            // Each stream primes its own sums, so the f32 drift of adding and subtracting rows
            // is bounded by a band's height rather than the image's.
            None => {
                for yy in y.saturating_sub(ry)..=(y + ry).min(h - 1) {
                    slide.slide(Some(yy), None, &mut self.cols);
                }
            }
        }
        self.last = Some(y);
        let n = 2 * win.rx + 1;
        for q in 0..self.k {
            window_sum(
                self.cols.padded(q),
                n,
                &mut self.sums[q * w..(q + 1) * w],
                &mut self.t1,
                &mut self.t2,
            );
        }
        let inv_cy = win.inv_cy(y);
        for (o, &i) in self.inv_row.iter_mut().zip(&win.inv_cx) {
            *o = i * inv_cy;
        }
    }
}

/// `out[x] = src[x] + ... + src[x+n-1]` for odd `n`, built from power-of-two partial sums
/// following the binary digits of `n`: O(log n) passes that vectorise across x, and unlike a
/// running sum no rounding error accumulates along the row. The lowest and highest digits are
/// folded into one final pass (for r = 8: three doublings and one final pass).
#[inline(always)]
fn window_sum(src: &[f32], n: usize, out: &mut [f32], t1: &mut [f32], t2: &mut [f32]) {
    let w = out.len();
    debug_assert!(n % 2 == 1 && src.len() == w + n - 1);
    if n == 1 {
        out.copy_from_slice(&src[..w]);
        return;
    }
    // n = 1 + (middle digits of m) + top, where m = n - 1 is even and top its highest digit;
    // the top part is two halves of the last level built.
    let m = n - 1;
    let top = 1usize << (usize::BITS - 1 - m.leading_zeros());
    let half = top / 2;
    if half == 1 {
        finish_window(out, src, &src[1..], &src[2..], false);
        return;
    }
    let mut offset = 1;
    let mut have_middle = false;
    let mut len = src.len() - 1;
    pair_sum(src, 1, &mut t1[..len]);
    let (mut cur, mut next): (&mut [f32], &mut [f32]) = (t1, t2);
    let mut size = 2;
    loop {
        if m & size != 0 {
            let part = &cur[offset..offset + w];
            if have_middle {
                for (o, &p) in out.iter_mut().zip(part) {
                    *o += p;
                }
            } else {
                out.copy_from_slice(part);
                have_middle = true;
            }
            offset += size;
        }
        if size == half {
            break;
        }
        pair_sum(&cur[..len], size, &mut next[..len - size]);
        len -= size;
        std::mem::swap(&mut cur, &mut next);
        size *= 2;
    }
    finish_window(out, src, &cur[offset..], &cur[offset + half..], have_middle);
}

/// `out (+)= a + b + c`, elementwise over `out`.
#[inline(always)]
fn finish_window(out: &mut [f32], a: &[f32], b: &[f32], c: &[f32], accumulate: bool) {
    let w = out.len();
    let (a, b, c) = (&a[..w], &b[..w], &c[..w]);
    if accumulate {
        for x in 0..w {
            out[x] += a[x] + b[x] + c[x];
        }
    } else {
        for x in 0..w {
            out[x] = a[x] + b[x] + c[x];
        }
    }
}

#[inline(always)]
fn pair_sum(src: &[f32], shift: usize, dst: &mut [f32]) {
    for ((d, &a), &b) in dst.iter_mut().zip(src).zip(&src[shift..]) {
        *d = a + b;
    }
}

/// `dst = sums * inv` for each `inv.len()`-long row of `sums`: window sums to means.
#[inline(always)]
fn scale_rows(dst: &mut [MaybeUninit<f32>], sums: &[f32], inv: &[f32]) {
    for (d, s) in dst
        .chunks_exact_mut(inv.len())
        .zip(sums.chunks_exact(inv.len()))
    {
        for ((d, &s), &i) in d.iter_mut().zip(s).zip(inv) {
            d.write(s * i);
        }
    }
}

#[inline(always)]
fn slide_plain(col: &mut [f32], entering: Option<&[f32]>, leaving: Option<&[f32]>) {
    match (entering, leaving) {
        (Some(i), Some(o)) => {
            for ((c, &a), &b) in col.iter_mut().zip(i).zip(o) {
                *c += a - b;
            }
        }
        (Some(i), None) => {
            for (c, &a) in col.iter_mut().zip(i) {
                *c += a;
            }
        }
        (None, Some(o)) => {
            for (c, &b) in col.iter_mut().zip(o) {
                *c -= b;
            }
        }
        (None, None) => {}
    }
}

type RowPair<'a> = (&'a [f32], &'a [f32]);

/// Like `slide_plain` for the product of two rows, formed on the fly: recomputing the leaving
/// row's product is cheaper than keeping 2r+1 rows of products around.
#[inline(always)]
fn slide_product(col: &mut [f32], entering: Option<RowPair>, leaving: Option<RowPair>) {
    match (entering, leaving) {
        (Some((ia, ib)), Some((oa, ob))) => {
            for ((((c, &ia), &ib), &oa), &ob) in col.iter_mut().zip(ia).zip(ib).zip(oa).zip(ob) {
                *c += ia * ib - oa * ob;
            }
        }
        (Some((ia, ib)), None) => {
            for ((c, &a), &b) in col.iter_mut().zip(ia).zip(ib) {
                *c += a * b;
            }
        }
        (None, Some((oa, ob))) => {
            for ((c, &a), &b) in col.iter_mut().zip(oa).zip(ob) {
                *c -= a * b;
            }
        }
        (None, None) => {}
    }
}

/// A source of rows for `BoxStream`: adds the quantities of row `entering` to the column sums
/// and subtracts those of row `leaving`.
trait Slide {
    fn slide(&self, entering: Option<usize>, leaving: Option<usize>, cols: &mut Columns);
}

/// One plane, one quantity.
struct PlaneRows<'a> {
    src: &'a [f32],
    width: usize,
}

impl Slide for PlaneRows<'_> {
    #[inline(always)]
    fn slide(&self, entering: Option<usize>, leaving: Option<usize>, cols: &mut Columns) {
        let row = |y: usize| &self.src[y * self.width..][..self.width];
        slide_plain(cols.row(0), entering.map(row), leaving.map(row));
    }
}

/// The guided filter's statistics, gathered in one pass: 0 = I, 1 = I*I, 2.. = p_c,
/// 2+C.. = I*p_c.
struct Statistics<'a> {
    guide: &'a [f32],
    input: &'a [f32],
    width: usize,
    channels: usize,
}

impl Slide for Statistics<'_> {
    #[inline(always)]
    fn slide(&self, entering: Option<usize>, leaving: Option<usize>, cols: &mut Columns) {
        let (w, channels) = (self.width, self.channels);
        let plane = self.guide.len();
        let gi = entering.map(|y| &self.guide[y * w..][..w]);
        let go = leaving.map(|y| &self.guide[y * w..][..w]);
        slide_plain(cols.row(0), gi, go);
        slide_product(cols.row(1), gi.map(|g| (g, g)), go.map(|g| (g, g)));
        for c in 0..channels {
            let p = &self.input[c * plane..][..plane];
            let pi = entering.map(|y| &p[y * w..][..w]);
            let po = leaving.map(|y| &p[y * w..][..w]);
            slide_plain(cols.row(2 + c), pi, po);
            slide_product(cols.row(2 + channels + c), gi.zip(pi), go.zip(po));
        }
    }
}

/// `k` quantities per row, rows kept in a ring of `ring_rows` (row y in slot y % ring_rows).
struct RingRows<'a> {
    ring: &'a [f32],
    ring_rows: usize,
    k: usize,
    width: usize,
}

impl Slide for RingRows<'_> {
    #[inline(always)]
    fn slide(&self, entering: Option<usize>, leaving: Option<usize>, cols: &mut Columns) {
        let w = self.width;
        for q in 0..self.k {
            let row = |y: usize| &self.ring[((y % self.ring_rows) * self.k + q) * w..][..w];
            slide_plain(cols.row(q), entering.map(row), leaving.map(row));
        }
    }
}

/// Box means of rows `y0..` of `src` into `out` (whole rows).
fn box_band(src: &[f32], win: &Window, y0: usize, out: &mut [MaybeUninit<f32>]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support, the only requirement of the callee, was just checked.
            return unsafe { box_band_avx2(src, win, y0, out) };
        }
    }
    box_band_impl(src, win, y0, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn box_band_avx2(src: &[f32], win: &Window, y0: usize, out: &mut [MaybeUninit<f32>]) {
    box_band_impl(src, win, y0, out)
}

#[inline(always)]
fn box_band_impl(src: &[f32], win: &Window, y0: usize, out: &mut [MaybeUninit<f32>]) {
    let w = win.width;
    let slide = PlaneRows { src, width: w };
    let mut stream = BoxStream::new(win, 1);
    for (i, dst) in out.chunks_exact_mut(w).enumerate() {
        stream.advance(win, y0 + i, &slide);
        scale_rows(dst, &stream.sums, &stream.inv_row);
    }
}

/// Both box passes of the guided filter for output rows `rows`; see `guided_band_impl`.
///
/// On x86-64 CPUs with AVX2 the work runs in a copy compiled for AVX2, so the row loops run
/// 8 lanes wide instead of the baseline's 4 without asking the build for `-C target-cpu`;
/// everything hot below is `#[inline(always)]` so that it is compiled inside that copy.
#[allow(clippy::too_many_arguments)]
fn guided_band<E>(
    guide: &[f32],
    input: &[f32],
    win: &Window,
    channels: usize,
    eps: f32,
    rows: std::ops::Range<usize>,
    emit: E,
) where
    E: FnMut(usize, &[f32], &[f32]),
{
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support, the only requirement of the callee, was just checked.
            return unsafe { guided_band_avx2(guide, input, win, channels, eps, rows, emit) };
        }
    }
    guided_band_impl(guide, input, win, channels, eps, rows, emit)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn guided_band_avx2<E>(
    guide: &[f32],
    input: &[f32],
    win: &Window,
    channels: usize,
    eps: f32,
    rows: std::ops::Range<usize>,
    emit: E,
) where
    E: FnMut(usize, &[f32], &[f32]),
{
    guided_band_impl(guide, input, win, channels, eps, rows, emit)
}

/// Both box passes of the guided filter for output rows `rows`: `emit(y, sums, inv)` receives,
/// row by row in order, the window sums of a_0..a_{C-1}, b_0..b_{C-1} (`2*C*width`) and the
/// reciprocal window counts. Coefficient rows live in a ring of 2ry+2 rows, so no full-image
/// temporaries are needed (their page faults cost more than the arithmetic); the price is
/// recomputing the ry coefficient rows on either side of the band.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn guided_band_impl<E>(
    guide: &[f32],
    input: &[f32],
    win: &Window,
    channels: usize,
    eps: f32,
    rows: std::ops::Range<usize>,
    mut emit: E,
) where
    E: FnMut(usize, &[f32], &[f32]),
{
    let (w, h, ry) = (win.width, win.height, win.ry);
    let k = 2 * channels;
    let stride = k * w;
    let ring_rows = 2 * ry + 2;
    let mut ring = vec![0.0f32; ring_rows * stride];
    let mut stats = BoxStream::new(win, 2 + k);
    let mut coeffs = BoxStream::new(win, k);
    let mut mean_i = vec![0.0f32; w];
    let mut inv_var = vec![0.0f32; w];

    let stats_slide = Statistics {
        guide,
        input,
        width: w,
        channels,
    };

    let mut next = rows.start;
    for j in rows.start.saturating_sub(ry)..(rows.end + ry).min(h) {
        stats.advance(win, j, &stats_slide);
        let slot = &mut ring[(j % ring_rows) * stride..][..stride];
        coefficient_row(
            &stats.sums,
            &stats.inv_row,
            channels,
            eps,
            &mut mean_i,
            &mut inv_var,
            slot,
        );
        // Output row y needs coefficient rows up to y + ry (clipped at the bottom edge).
        while next < rows.end && (next + ry).min(h - 1) <= j {
            let ring_slide = RingRows {
                ring: &ring,
                ring_rows,
                k,
                width: w,
            };
            coeffs.advance(win, next, &ring_slide);
            emit(next, &coeffs.sums, &coeffs.inv_row);
            next += 1;
        }
    }
    // Callers rely on every row being emitted to initialise their output.
    assert_eq!(
        next, rows.end,
        "guided_band must emit every row of its band"
    );
}

/// He's per-pixel linear model for one row, from the window sums of I, I*I, p_c, I*p_c:
/// writes a_0..a_{C-1} then b_0..b_{C-1}, each `width` long, into `out`.
#[inline(always)]
fn coefficient_row(
    sums: &[f32],
    inv: &[f32],
    channels: usize,
    eps: f32,
    mean_i: &mut [f32],
    inv_var: &mut [f32],
    out: &mut [f32],
) {
    let w = inv.len();
    let (s_i, rest) = sums.split_at(w);
    let (s_ii, rest) = rest.split_at(w);
    let (s_p, s_ip) = rest.split_at(channels * w);
    let (mean_i, inv_var) = (&mut mean_i[..w], &mut inv_var[..w]);
    for x in 0..w {
        let m = s_i[x] * inv[x];
        // Rounding can push E[I^2] - E[I]^2 slightly negative in flat areas, where a tiny eps
        // would otherwise flip or blow up the slope.
        let var = (s_ii[x] * inv[x] - m * m).max(0.0);
        mean_i[x] = m;
        inv_var[x] = 1.0 / (var + eps);
    }
    let (a_out, b_out) = out.split_at_mut(channels * w);
    for c in 0..channels {
        let a_row = &mut a_out[c * w..][..w];
        let b_row = &mut b_out[c * w..][..w];
        let sp = &s_p[c * w..][..w];
        let sip = &s_ip[c * w..][..w];
        for x in 0..w {
            let mp = sp[x] * inv[x];
            let cov = sip[x] * inv[x] - mean_i[x] * mp;
            let a = cov * inv_var[x];
            a_row[x] = a;
            b_row[x] = mp - a * mean_i[x];
        }
    }
}

/// Splits consecutive planes of `plane_len` into per-band pieces of `chunk` values, so each
/// band can write its rows of every channel without sharing mutable state.
fn split_planes<T>(out: &mut [T], plane_len: usize, chunk: usize) -> Vec<Vec<&mut [T]>> {
    let bands = plane_len.div_ceil(chunk);
    let mut per_band: Vec<Vec<&mut [T]>> = (0..bands).map(|_| Vec::new()).collect();
    for plane in out.chunks_mut(plane_len) {
        for (band, piece) in plane.chunks_mut(chunk).enumerate() {
            per_band[band].push(piece);
        }
    }
    per_band
}

/// Allocates `len` values and lets `fill` write them, skipping the zero-fill that `vec![0.0; n]`
/// would do: for a full-size output that is a serial pass over memory which, on two threads,
/// costs a sizeable fraction of the parallel filter itself.
///
/// # Safety
/// `fill` must initialise every element of the slice it is given (or panic).
unsafe fn filled_vec(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: the caller guarantees that `fill` initialised all `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// Bilinear taps along one axis with half-pixel centres: output d samples source position
/// (d + 0.5) * src/dst - 0.5, clamped to the edge pixels; `f` weighs `i1` against `i0`.
/// `i0` never decreases with d, so the outputs sharing one `i0 = j` form the run
/// `runs[j]..runs[j + 1]`.
struct LerpTable {
    i0: Vec<usize>,
    i1: Vec<usize>,
    f: Vec<f32>,
    runs: Vec<usize>,
}

impl LerpTable {
    fn new(src: usize, dst: usize) -> Self {
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
    fn apply<T: WriteF32>(&self, src: &[f32], dst: &mut [T]) {
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
fn lerp_rows(dst: &mut [f32], r0: &[f32], r1: &[f32], f: f32) {
    for ((d, &a), &b) in dst.iter_mut().zip(r0).zip(r1) {
        *d = a + (b - a) * f;
    }
}

/// Lets row helpers write both initialised scratch rows and uninitialised outputs.
trait WriteF32 {
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
struct Upsample<'a> {
    means: &'a [f32],
    k: usize,
    low_w: usize,
    xs: LerpTable,
    ys: LerpTable,
}

impl Upsample<'_> {
    /// Widens low row `y` (all `k` quantities) to full width into `dst`.
    #[inline(always)]
    fn widen(&self, y: usize, dst: &mut [f32]) {
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
fn upsample_band(
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
fn upsample_band_avx2(
    up: &Upsample,
    guide: &[f32],
    width: usize,
    y0: usize,
    planes: &mut [&mut [MaybeUninit<f32>]],
) {
    upsample_band_impl(up, guide, width, y0, planes)
}

#[inline(always)]
fn upsample_band_impl(
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
struct AreaTaps {
    first: Vec<usize>,
    weights: Vec<f32>,
    taps: usize,
}

impl AreaTaps {
    fn new(src: usize, dst: usize) -> Self {
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
    fn taps(&self, i: usize) -> (usize, &[f32]) {
        (
            self.first[i],
            &self.weights[i * self.taps..(i + 1) * self.taps],
        )
    }

    /// Resamples one row; common tap counts get a fixed-size inner loop.
    fn apply(&self, src: &[f32], dst: &mut [MaybeUninit<f32>]) {
        match self.taps {
            1 => self.apply_fixed::<1>(src, dst),
            2 => self.apply_fixed::<2>(src, dst),
            3 => self.apply_fixed::<3>(src, dst),
            4 => self.apply_fixed::<4>(src, dst),
            _ => self.apply_any(src, dst),
        }
    }

    fn apply_fixed<const N: usize>(&self, src: &[f32], dst: &mut [MaybeUninit<f32>]) {
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

    fn apply_any(&self, src: &[f32], dst: &mut [MaybeUninit<f32>]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic test data without a dependency.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Self {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        fn next_f32(&mut self) -> f32 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
            (v >> 40) as f32 / (1u64 << 24) as f32
        }
        fn image(&mut self, len: usize) -> Vec<f32> {
            (0..len).map(|_| self.next_f32()).collect()
        }
    }

    fn ref_box(src: &[f64], w: usize, h: usize, r: usize) -> Vec<f64> {
        let mut out = vec![0.0; w * h];
        for y in 0..h {
            for x in 0..w {
                let (y0, y1) = (y.saturating_sub(r), (y + r).min(h - 1));
                let (x0, x1) = (x.saturating_sub(r), (x + r).min(w - 1));
                let mut s = 0.0;
                for yy in y0..=y1 {
                    for xx in x0..=x1 {
                        s += src[yy * w + xx];
                    }
                }
                out[y * w + x] = s / ((y1 - y0 + 1) * (x1 - x0 + 1)) as f64;
            }
        }
        out
    }

    fn to_f64(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&x| x as f64).collect()
    }

    fn mul(a: &[f64], b: &[f64]) -> Vec<f64> {
        a.iter().zip(b).map(|(x, y)| x * y).collect()
    }

    /// Per channel (a, b) from He's formulas, straight from window loops.
    #[allow(clippy::type_complexity)]
    fn ref_coeffs(
        guide: &[f32],
        w: usize,
        h: usize,
        input: &[f32],
        channels: usize,
        r: usize,
        eps: f64,
    ) -> Vec<(Vec<f64>, Vec<f64>)> {
        let n = w * h;
        let g = to_f64(guide);
        let mean_i = ref_box(&g, w, h, r);
        let mean_ii = ref_box(&mul(&g, &g), w, h, r);
        (0..channels)
            .map(|c| {
                let p = to_f64(&input[c * n..(c + 1) * n]);
                let mean_p = ref_box(&p, w, h, r);
                let mean_ip = ref_box(&mul(&g, &p), w, h, r);
                let mut a = vec![0.0; n];
                let mut b = vec![0.0; n];
                for i in 0..n {
                    let var = mean_ii[i] - mean_i[i] * mean_i[i];
                    a[i] = (mean_ip[i] - mean_i[i] * mean_p[i]) / (var + eps);
                    b[i] = mean_p[i] - a[i] * mean_i[i];
                }
                (a, b)
            })
            .collect()
    }

    fn ref_guided(
        guide: &[f32],
        w: usize,
        h: usize,
        input: &[f32],
        channels: usize,
        r: usize,
        eps: f64,
    ) -> Vec<f64> {
        let mut out = Vec::with_capacity(channels * w * h);
        for (a, b) in ref_coeffs(guide, w, h, input, channels, r, eps) {
            let ma = ref_box(&a, w, h, r);
            let mb = ref_box(&b, w, h, r);
            out.extend((0..w * h).map(|i| ma[i] * guide[i] as f64 + mb[i]));
        }
        out
    }

    /// Bilinear sample with half-pixel centres, written per pixel independently of the module.
    fn ref_bilinear(src: &[f64], w: usize, h: usize, nw: usize, nh: usize) -> Vec<f64> {
        let coord = |d: usize, n: usize, nn: usize| {
            let s = ((d as f64 + 0.5) * n as f64 / nn as f64 - 0.5).clamp(0.0, (n - 1) as f64);
            let i0 = s.floor() as usize;
            let i1 = (i0 + 1).min(n - 1);
            (i0, i1, s - i0 as f64)
        };
        let mut out = vec![0.0; nw * nh];
        for y in 0..nh {
            let (y0, y1, fy) = coord(y, h, nh);
            for x in 0..nw {
                let (x0, x1, fx) = coord(x, w, nw);
                let top = src[y0 * w + x0] * (1.0 - fx) + src[y0 * w + x1] * fx;
                let bot = src[y1 * w + x0] * (1.0 - fx) + src[y1 * w + x1] * fx;
                out[y * nw + x] = top * (1.0 - fy) + bot * fy;
            }
        }
        out
    }

    fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (x as f64 - y).abs())
            .fold(0.0, f64::max)
    }

    const SHAPES: [(usize, usize); 7] = [
        (1, 1),
        (1, 7),
        (9, 1),
        (5, 3),
        (17, 13),
        (64, 48),
        (100, 37),
    ];
    const RADII: [usize; 4] = [0, 1, 3, 150];

    #[test]
    fn box_mean_matches_reference() {
        let mut rng = Rng::new(1);
        for &(w, h) in &SHAPES {
            let src = rng.image(w * h);
            for &r in &RADII {
                let got = box_mean(&src, w, h, r);
                let want = ref_box(&to_f64(&src), w, h, r);
                let err = max_abs_diff(&got, &want);
                assert!(err < 1e-5, "{w}x{h} r={r}: err {err}");
            }
        }
    }

    #[test]
    fn box_mean_handles_tall_images_and_many_bands() {
        // Tall enough for several bands at any thread count, so band seams are exercised.
        let (w, h) = (23, 700);
        let src = Rng::new(2).image(w * h);
        for r in [2, 8] {
            let err = max_abs_diff(&box_mean(&src, w, h, r), &ref_box(&to_f64(&src), w, h, r));
            assert!(err < 1e-5, "r={r}: err {err}");
        }
    }

    #[test]
    fn filter_matches_reference() {
        let mut rng = Rng::new(3);
        for &(w, h) in &SHAPES {
            for channels in [1, 3] {
                let guide = rng.image(w * h);
                let input = rng.image(channels * w * h);
                for &r in &RADII {
                    for eps in [1e-3f32, 1e-2] {
                        let gf = GuidedFilter { radius: r, eps };
                        let got = gf.filter(&guide, w, h, &input, channels);
                        let want = ref_guided(&guide, w, h, &input, channels, r, eps as f64);
                        let err = max_abs_diff(&got, &want);
                        assert!(err < 1e-4, "{w}x{h}x{channels} r={r} eps={eps}: err {err}");
                    }
                }
            }
        }
    }

    #[test]
    fn filter_matches_reference_across_bands() {
        let (w, h, channels) = (31, 400, 3);
        let mut rng = Rng::new(4);
        let guide = rng.image(w * h);
        let input = rng.image(channels * w * h);
        let gf = GuidedFilter {
            radius: 5,
            eps: 1e-3,
        };
        let want = ref_guided(&guide, w, h, &input, channels, 5, 1e-3);
        // Band count follows the pool size, so different pools move the band seams.
        for threads in [1, 3, 7] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let got = pool.install(|| gf.filter(&guide, w, h, &input, channels));
            let err = max_abs_diff(&got, &want);
            assert!(err < 1e-4, "{threads} threads: err {err}");
        }
    }

    #[test]
    fn filter_preserves_linear_structure() {
        let (w, h) = (64, 48);
        let guide = Rng::new(5).image(w * h);
        let mut input: Vec<f32> = guide.iter().map(|&g| 0.3 * g + 0.1).collect();
        input.extend(guide.iter().map(|&g| -0.5 * g + 0.7));
        let gf = GuidedFilter {
            radius: 4,
            eps: 1e-7,
        };
        let out = gf.filter(&guide, w, h, &input, 2);
        let err = max_abs_diff(&out, &to_f64(&input));
        assert!(err < 1e-3, "err {err}");
    }

    #[test]
    fn empty_images_give_empty_output() {
        let gf = GuidedFilter {
            radius: 2,
            eps: 1e-3,
        };
        assert!(gf.filter(&[], 0, 5, &[], 3).is_empty());
        assert!(gf.filter(&[], 4, 0, &[], 3).is_empty());
        assert!(gf.filter(&[0.5; 6], 3, 2, &[], 0).is_empty());
        assert!(gf.filter_fast(&[], 0, 0, &[], &[], 0, 0, 3).is_empty());
        assert!(box_mean(&[], 0, 3, 1).is_empty());
        assert!(resize_area(&[1.0; 4], 2, 2, 1, 0, 3).is_empty());
        assert!(resize_bilinear(&[1.0; 4], 2, 2, 1, 3, 0).is_empty());
    }

    #[test]
    #[should_panic(expected = "input must hold")]
    fn mismatched_input_length_panics() {
        let gf = GuidedFilter {
            radius: 1,
            eps: 1e-3,
        };
        gf.filter(&[0.0; 6], 3, 2, &[0.0; 17], 3);
    }

    #[test]
    fn filter_fast_equals_filter_at_equal_sizes() {
        let mut rng = Rng::new(6);
        for &(w, h) in &[(1, 1), (9, 1), (17, 13), (100, 37)] {
            let guide = rng.image(w * h);
            let input = rng.image(3 * w * h);
            for r in [0, 2, 40] {
                let gf = GuidedFilter {
                    radius: r,
                    eps: 1e-3,
                };
                let full = gf.filter(&guide, w, h, &input, 3);
                let fast = gf.filter_fast(&guide, w, h, &guide, &input, w, h, 3);
                let err = max_abs_diff(&fast, &to_f64(&full));
                assert!(err < 1e-5, "{w}x{h} r={r}: err {err}");
            }
        }
    }

    #[test]
    fn filter_fast_matches_reference() {
        let mut rng = Rng::new(7);
        let cases = [
            // (full w, h, low w, h, radius, channels)
            (37, 23, 13, 9, 2, 3),
            (33, 21, 7, 5, 1, 1),
            (50, 31, 25, 16, 3, 3),
            (19, 1, 6, 1, 2, 3),
            (1, 15, 1, 4, 9, 1),
            (11, 7, 11, 7, 1, 3),
        ];
        for &(w, h, lw, lh, r, channels) in &cases {
            let guide = rng.image(w * h);
            let guide_low = resize_area(&guide, w, h, 1, lw, lh);
            let input_low = rng.image(channels * lw * lh);
            let eps = 1e-3;
            let gf = GuidedFilter { radius: r, eps };
            let got = gf.filter_fast(&guide, w, h, &guide_low, &input_low, lw, lh, channels);
            let mut want = Vec::new();
            for (a, b) in ref_coeffs(&guide_low, lw, lh, &input_low, channels, r, eps as f64) {
                let ma = ref_bilinear(&ref_box(&a, lw, lh, r), lw, lh, w, h);
                let mb = ref_bilinear(&ref_box(&b, lw, lh, r), lw, lh, w, h);
                want.extend((0..w * h).map(|i| ma[i] * guide[i] as f64 + mb[i]));
            }
            let err = max_abs_diff(&got, &want);
            assert!(err < 1e-4, "{w}x{h} from {lw}x{lh} r={r}: err {err}");
        }
    }

    #[test]
    fn resize_area_keeps_constants() {
        let src = vec![0.37f32; 2 * 13 * 11];
        for &(nw, nh) in &[(5, 4), (13, 11), (26, 30), (1, 1), (7, 11)] {
            let out = resize_area(&src, 13, 11, 2, nw, nh);
            assert_eq!(out.len(), 2 * nw * nh);
            assert!(out.iter().all(|&v| (v - 0.37).abs() < 1e-6), "{nw}x{nh}");
        }
    }

    #[test]
    fn resize_area_integer_shrink_is_block_mean() {
        let (w, h) = (10, 6);
        let src = Rng::new(8).image(3 * w * h);
        let out = resize_area(&src, w, h, 3, w / 2, h / 2);
        for c in 0..3 {
            for y in 0..h / 2 {
                for x in 0..w / 2 {
                    let at = |xx: usize, yy: usize| src[c * w * h + yy * w + xx];
                    let mean = (at(2 * x, 2 * y)
                        + at(2 * x + 1, 2 * y)
                        + at(2 * x, 2 * y + 1)
                        + at(2 * x + 1, 2 * y + 1))
                        / 4.0;
                    let got = out[c * (w / 2) * (h / 2) + y * (w / 2) + x];
                    assert!((got - mean).abs() < 1e-6, "c={c} ({x},{y})");
                }
            }
        }
    }

    #[test]
    fn resize_area_preserves_mean_for_fractional_ratios() {
        let (w, h) = (37, 29);
        let src = Rng::new(9).image(w * h);
        let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        for &(nw, nh) in &[(10, 7), (15, 13), (36, 28), (50, 41), (3, 1)] {
            let out = resize_area(&src, w, h, 1, nw, nh);
            assert!((mean(&out) - mean(&src)).abs() < 1e-5, "{nw}x{nh}");
        }
    }

    #[test]
    fn resize_bilinear_identity_and_constants() {
        let (w, h) = (13, 7);
        let src = Rng::new(10).image(2 * w * h);
        assert_eq!(resize_bilinear(&src, w, h, 2, w, h), src);
        let flat = vec![0.61f32; w * h];
        for &(nw, nh) in &[(4, 3), (26, 14), (1, 1), (40, 2)] {
            let out = resize_bilinear(&flat, w, h, 1, nw, nh);
            assert!(out.iter().all(|&v| (v - 0.61).abs() < 1e-6), "{nw}x{nh}");
        }
    }

    #[test]
    fn resize_bilinear_hand_computed() {
        // 2 -> 4: source centres at 0.5 and 1.5 in output-pixel units of 0.5; the outer
        // samples clamp to the edge pixels.
        assert_eq!(
            resize_bilinear(&[0.0, 1.0], 2, 1, 1, 4, 1),
            vec![0.0, 0.25, 0.75, 1.0]
        );
        // 3 -> 2: samples at source x = 0.25 and 1.75.
        assert_eq!(
            resize_bilinear(&[0.0, 4.0, 8.0], 3, 1, 1, 2, 1),
            vec![1.0, 7.0]
        );
        // 2x2 -> 4x4, row 1 (source y = 0.25) and column 2 (source x = 0.75).
        let out = resize_bilinear(&[0.0, 1.0, 2.0, 3.0], 2, 2, 1, 4, 4);
        let want = 0.75 + 0.25 * 2.0;
        assert!((out[4 + 2] - want).abs() < 1e-6);
        let random = Rng::new(11).image(5 * 4);
        let err = max_abs_diff(
            &resize_bilinear(&random, 5, 4, 1, 9, 7),
            &ref_bilinear(&to_f64(&random), 5, 4, 9, 7),
        );
        assert!(err < 1e-6, "err {err}");
    }
}
