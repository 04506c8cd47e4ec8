//! The guided filter that carries the NIR's full-resolution detail into the colour output.
//! Images are planar f32: a gray guide is `width*height` row-major, multi-channel data is CHW.

pub mod bfwls;
mod coefficients;
pub mod lowres;
mod resize;

pub use coefficients::Coefficients;
pub use resize::{resize_area, resize_bilinear};

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// The daemon's `[detail]` defaults. Live frames carry sensor noise and compression blocks: an
/// eps of 1e-3 (a local NIR variance of about 0.03 in [0, 1] units) treats flatter texture as
/// noise and keeps it out of the colour; the radius of 8 pixels spans a few blocks at 640x480.
pub const DAEMON_RADIUS: usize = 8;
pub const DAEMON_EPS: f32 = 1e-3;

/// `--post guided|fast-guided` defaults for still images (clean, full detail): an eps of 1e-5
/// transfers nearly every NIR edge, and a radius of 5 keeps halos small on 256-1024 px images.
pub const STILL_RADIUS: usize = 5;
pub const STILL_EPS: f32 = 1e-5;

/// What the networks train through (their card's `detail_radius`/`detail_eps`): between the
/// two, since training crops are clean stills but the model is meant for video.
pub const NET_RADIUS: usize = 8;
pub const NET_EPS: f64 = 1e-4;

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
    /// full size, then q = mean_a * guide_full + mean_b at full resolution. The two halves are
    /// [`coefficients`](Self::coefficients) and [`Coefficients::apply`].
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
        self.coefficients(guide_low, input_low, low_w, low_h, channels)
            .apply(guide_full, width, height)
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

#[cfg(test)]
mod tests;
