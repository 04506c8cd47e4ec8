//! BFWLS post-processing (ColorNet): the colorized frame keeps its chroma and a WLS-smoothed luma
//! base, and takes its fine detail from the full-resolution NIR (NIR minus its bilateral/WLS base).

use std::borrow::Cow;

use rayon::prelude::*;

use crate::images::planes::{rgb_to_yuv, yuv_to_rgb, Gray, Rgb};

/// Farbman et al.'s `eps` in `log(I + eps)`: keeps black pixels finite in the log domain.
const LOG_EPS: f32 = 1e-4;
/// Farbman et al.'s `smallNum` in `lambda / (|dL|^alpha + smallNum)`: caps the weight of a
/// perfectly flat link at `lambda * 1e4` instead of infinity.
const WEIGHT_EPS: f32 = 1e-4;

/// The bilateral window reaches `BILATERAL_RADIUS_SIGMAS * sigma_space` pixels: the Gaussian has
/// fallen to exp(-2) = 13% there, and the remaining tail carries too little weight to matter for
/// a detail layer, while a 3-sigma window would cost twice the taps.
const BILATERAL_RADIUS_SIGMAS: f32 = 2.0;
/// The range weight `2^-u` is clamped at u = 100 (weight 8e-31, nothing next to the centre
/// tap's 1) so the exponent built from bits stays a normal float.
const EXP2_MAX: f32 = 100.0;

/// Pixels per parallel work item in the solver's vector kernels. Partial sums are combined in
/// chunk order, so results do not depend on the thread count or on work stealing.
const CHUNK: usize = 1 << 14;

/// ColorNet's BFWLS detail transfer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bfwls {
    /// Bilateral spatial sigma, in pixels.
    pub sigma_space: f32,
    /// Bilateral range sigma, in intensity units (images in [0, 1]).
    pub sigma_range: f32,
    /// WLS smoothness: larger flattens more.
    pub lambda: f32,
    /// WLS edge sensitivity: the exponent on the log-luminance gradient.
    pub alpha: f32,
}

impl Default for Bfwls {
    /// `sigma_space = 2` px and `sigma_range = 0.1`: the detail layer is meant to hold texture a
    /// few pixels across, and 0.1 (about 25 grey levels) smooths sensor noise and low-contrast
    /// texture while edges of 0.3 or more (range weight about 1%) are left alone.
    /// `lambda = 1`, `alpha = 1.2` are the defaults of Farbman et al.'s reference `wlsFilter.m`;
    /// its weights use log-intensity gradients, so they only depend on the intensity scale
    /// through the 1e-4 offsets, which suit [0, 1] data.
    fn default() -> Self {
        Bfwls {
            sigma_space: 2.0,
            sigma_range: 0.1,
            lambda: 1.0,
            alpha: 1.2,
        }
    }
}

impl Bfwls {
    /// The colour with its luma replaced by `WLS(Y) + NIR - (bilateral(NIR) + WLS(NIR)) / 2`;
    /// chroma is kept. The result is clamped to [0, 1] (only where the new luma would leave the
    /// gamut does that touch chroma). Non-finite input values are read as 0.
    ///
    /// Panics if `nir` and `colour` differ in size.
    pub fn apply(&self, nir: &Gray, colour: &Rgb) -> Rgb {
        self.apply_with(nir, colour, &WlsSolver::default())
    }

    /// [`Bfwls::apply`] with explicit WLS solver settings (e.g. a tighter iteration cap for a
    /// real-time budget).
    pub fn apply_with(&self, nir: &Gray, colour: &Rgb, solver: &WlsSolver) -> Rgb {
        assert_eq!(
            (nir.width, nir.height),
            (colour.width, colour.height),
            "Bfwls::apply: NIR is {}x{} but the colour frame is {}x{}; they must match",
            nir.width,
            nir.height,
            colour.width,
            colour.height
        );
        let (w, h) = (nir.width, nir.height);
        let n = w * h;
        check_gray(nir, "Bfwls::apply: nir");
        assert_eq!(
            colour.data.len(),
            3 * n,
            "Bfwls::apply: colour data length must be 3*width*height"
        );
        if n == 0 {
            return colour.clone();
        }

        let nir = Gray::new(w, h, finite(&nir.data).into_owned());
        let colour = finite(&colour.data);
        let (r, rest) = colour.split_at(n);
        let (g, b) = rest.split_at(n);
        let mut y = vec![0.0f32; n];
        let mut u = vec![0.0f32; n];
        let mut v = vec![0.0f32; n];
        for i in 0..n {
            (y[i], u[i], v[i]) = rgb_to_yuv(r[i], g[i], b[i]);
        }
        let y = Gray::new(w, h, y);

        // The three filters are independent; the two WLS solves dominate, so they get a thread
        // each and the bilateral shares with the NIR one.
        let ((nir_bf, nir_wls), y_wls) = rayon::join(
            || {
                rayon::join(
                    || bilateral(&nir, self.sigma_space, self.sigma_range),
                    || wls_solve(&nir, &nir, self.lambda, self.alpha, solver).0,
                )
            },
            || wls_solve(&y, &y, self.lambda, self.alpha, solver).0,
        );

        let mut out = vec![0.0f32; 3 * n];
        let (ro, rest) = out.split_at_mut(n);
        let (go, bo) = rest.split_at_mut(n);
        for i in 0..n {
            let detail = nir.data[i] - 0.5 * (nir_bf.data[i] + nir_wls.data[i]);
            let (rr, gg, bb) = yuv_to_rgb(y_wls.data[i] + detail, u[i], v[i]);
            ro[i] = rr.clamp(0.0, 1.0);
            go[i] = gg.clamp(0.0, 1.0);
            bo[i] = bb.clamp(0.0, 1.0);
        }
        Rgb::new(w, h, out)
    }
}

fn check_gray(img: &Gray, what: &str) {
    assert_eq!(
        img.data.len(),
        img.width * img.height,
        "{what}: data length must be width*height = {}*{}",
        img.width,
        img.height
    );
}

/// One NaN would otherwise spread through the whole WLS solve (every CG step mixes all pixels),
/// so non-finite values are read as 0, the same value `planes::to_u8` gives NaN.
fn finite(data: &[f32]) -> Cow<'_, [f32]> {
    if data.iter().all(|v| v.is_finite()) {
        Cow::Borrowed(data)
    } else {
        Cow::Owned(
            data.iter()
                .map(|&v| if v.is_finite() { v } else { 0.0 })
                .collect(),
        )
    }
}

/// Bilateral filter (Tomasi & Manduchi): Gaussian spatial weight with `sigma_space` pixels,
/// Gaussian range weight with `sigma_range` intensity units, over a square window of radius
/// `ceil(2 * sigma_space)` clipped at the borders (the weights are renormalised there).
///
/// A non-positive sigma disables the filter (the input is returned). Non-finite input values
/// are read as 0. Panics if a sigma is NaN or infinite.
pub fn bilateral(img: &Gray, sigma_space: f32, sigma_range: f32) -> Gray {
    assert!(
        sigma_space.is_finite() && sigma_range.is_finite(),
        "bilateral: sigmas must be finite (got sigma_space={sigma_space}, sigma_range={sigma_range})"
    );
    check_gray(img, "bilateral");
    let (w, h) = (img.width, img.height);
    let src = finite(&img.data);
    let inv_two_ss = 1.0 / (2.0 * sigma_space * sigma_space);
    // exp(-d^2 / (2 sigma_r^2)) = 2^(-d^2 * to_log2).
    let to_log2 = std::f32::consts::LOG2_E / (2.0 * sigma_range * sigma_range);
    // A sigma so small its square underflows is the identity in the limit; computing with the
    // infinities would give 0 * inf = NaN at the centre tap instead.
    let usable =
        sigma_space > 0.0 && sigma_range > 0.0 && inv_two_ss.is_finite() && to_log2.is_finite();
    if w * h == 0 || !usable {
        return Gray::new(w, h, src.into_owned());
    }

    // Past the image's extent a tap can never land, so a huge sigma cannot blow up the kernel.
    let radius = ((BILATERAL_RADIUS_SIGMAS * sigma_space).ceil() as usize)
        .max(1)
        .min(w.max(h));
    let side = 2 * radius + 1;
    let spatial: Vec<f32> = (0..side * side)
        .map(|k| {
            let dy = (k / side) as f32 - radius as f32;
            let dx = (k % side) as f32 - radius as f32;
            (-(dx * dx + dy * dy) * inv_two_ss).exp()
        })
        .collect();

    let mut out = vec![0.0f32; w * h];
    out.par_chunks_mut(w).enumerate().for_each_init(
        || (vec![0.0f32; w], vec![0.0f32; w]),
        |(num, den), (y, out_row)| {
            num.fill(0.0);
            den.fill(0.0);
            let centre = &src[y * w..][..w];
            let y0 = y.saturating_sub(radius);
            let y1 = (y + radius).min(h - 1);
            // Offset-major order: each (dy, dx) is one straight pass over the row, which keeps
            // the border clipping out of the inner loop.
            for sy in y0..=y1 {
                let row = &src[sy * w..][..w];
                let krow = &spatial[(sy + radius - y) * side..][..side];
                for (kx, &ws) in krow.iter().enumerate() {
                    let (x0, x1, off) = if kx >= radius {
                        let d = kx - radius;
                        if d >= w {
                            continue;
                        }
                        (0, w - d, d as isize)
                    } else {
                        let d = radius - kx;
                        if d >= w {
                            continue;
                        }
                        (d, w, -(d as isize))
                    };
                    let taps = &row[(x0 as isize + off) as usize..(x1 as isize + off) as usize];
                    let c = &centre[x0..x1];
                    let nm = &mut num[x0..x1];
                    let dn = &mut den[x0..x1];
                    for (((&t, &c), nm), dn) in taps.iter().zip(c).zip(nm).zip(dn) {
                        let d = t - c;
                        let wgt = ws * exp2_neg((d * d * to_log2).min(EXP2_MAX));
                        *nm += wgt * t;
                        *dn += wgt;
                    }
                }
            }
            // The centre tap has weight 1, so den >= 1.
            for ((o, &nm), &dn) in out_row.iter_mut().zip(num.iter()).zip(den.iter()) {
                *o = nm / dn;
            }
        },
    );
    Gray::new(w, h, out)
}

/// `2^-u` for u in [0, EXP2_MAX], to 3e-6 relative. Written with plain arithmetic and bit
/// casts so the bilateral's inner loop vectorises; `f32::exp` (a libm call) or a table lookup
/// (a gather) would keep it scalar, at several times the cost.
#[inline(always)]
fn exp2_neg(u: f32) -> f32 {
    // u = n + f with n = round(u), f in [-0.5, 0.5]; 2^-u = 2^-n * e^(-f ln 2). Adding 1.5 * 2^23
    // leaves round(u) in the low mantissa bits: a float `as i32` would saturate-check (and
    // `round` would call libm), both of which stop the loop vectorising.
    const SHIFT: f32 = 12_582_912.0;
    let big = u + SHIFT;
    let n = big.to_bits().wrapping_sub(SHIFT.to_bits());
    let g = (u - (big - SHIFT)) * std::f32::consts::LN_2;
    // Degree-5 Taylor series of e^-g for |g| <= 0.35: the error term is |g|^6/720 < 3e-6.
    let e = 1.0 - g * (1.0 - g * (0.5 - g * (1.0 / 6.0 - g * (1.0 / 24.0 - g * (1.0 / 120.0)))));
    e * f32::from_bits((127u32 << 23).wrapping_sub(n << 23))
}

/// Settings for the WLS linear solve (preconditioned conjugate gradient).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WlsSolver {
    /// Stop once the RMS residual is at most this, in intensity units. The system matrix is
    /// `I + (PSD Laplacian)`, so its smallest eigenvalue is >= 1 and the error of a solution is
    /// at most its residual: `tol` bounds the RMS error itself, in the units of the image (in
    /// practice the error lands one to two orders of magnitude below it).
    pub tol: f32,
    /// Give up (returning the current iterate) after this many iterations.
    pub max_iter: usize,
}

impl Default for WlsSolver {
    /// `tol = 1e-3`: a quarter of an 8-bit grey level, below anything the output can show.
    /// `max_iter = 300`: 640x480 frames took 30 to 85 iterations at lambda = 1 (the flat,
    /// noise-free ones the most) and about 140 at lambda = 4, so the cap only bounds the time
    /// on pathological input.
    fn default() -> Self {
        WlsSolver {
            tol: 1e-3,
            max_iter: 300,
        }
    }
}

/// What a WLS solve did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WlsStats {
    pub iterations: usize,
    /// RMS of CG's running residual for the returned `u`. Recomputing `b - A u` from the f32
    /// `u` can give more (a few 1e-4 where noise makes neighbours nearly equal and their weights
    /// approach `lambda * 1e4`): that is the rounding of `u` to f32 magnified by those weights,
    /// not error in `u`.
    pub rms_residual: f32,
    pub converged: bool,
}

/// Farbman et al.'s weighted-least-squares edge-preserving smoothing of `img`, guided by itself,
/// with the default solver settings. See [`wls_solve`].
pub fn wls(img: &Gray, lambda: f32, alpha: f32) -> Gray {
    wls_solve(img, img, lambda, alpha, &WlsSolver::default()).0
}

/// Farbman et al. (2008) WLS smoothing: the `u` minimising
/// `sum_p (u_p - g_p)^2 + lambda * sum_links a_link (u_p - u_q)^2` over 4-neighbour links, with
/// `a = 1 / (|dL|^alpha + 1e-4)` and `L = ln(guide + 1e-4)` (guide clamped at 0). That is the
/// sparse SPD system `(I + L_a) u = g`, solved to `solver.tol` by conjugate gradient with a
/// modified incomplete Cholesky (MIC(0)) preconditioner, starting from `u = g`.
///
/// Why this solver: the separable alternative (exact tridiagonal solves along rows then
/// columns, iterated, as in Min et al.'s fast global smoother) is faster but minimises a
/// different, axis-split energy (streaks along rows and columns are its known artefact); CG
/// solves the real 2-D system to a stated error. Flat regions give links
/// weights up to `lambda * 1e4`, which makes the system stiff: Jacobi-preconditioned CG took
/// about 240 iterations on a 640x480 frame where MIC(0) takes about 40, three times the time
/// even though each MIC iteration costs twice as much.
///
/// `lambda <= 0` returns the input unchanged. Non-finite input values are read as 0. Panics if
/// `lambda` or `alpha` is NaN or infinite, or if `img` and `guide` differ in size.
pub fn wls_solve(
    img: &Gray,
    guide: &Gray,
    lambda: f32,
    alpha: f32,
    solver: &WlsSolver,
) -> (Gray, WlsStats) {
    assert!(
        lambda.is_finite() && alpha.is_finite(),
        "wls: lambda and alpha must be finite (got lambda={lambda}, alpha={alpha})"
    );
    assert_eq!(
        (img.width, img.height),
        (guide.width, guide.height),
        "wls: image is {}x{} but guide is {}x{}; they must match",
        img.width,
        img.height,
        guide.width,
        guide.height
    );
    check_gray(img, "wls: img");
    check_gray(guide, "wls: guide");
    let (w, h) = (img.width, img.height);
    let b = finite(&img.data);
    let idle = WlsStats {
        iterations: 0,
        rms_residual: 0.0,
        converged: true,
    };
    if w * h == 0 || lambda <= 0.0 {
        return (Gray::new(w, h, b.into_owned()), idle);
    }
    let sys = System::new(&finite(&guide.data), w, h, lambda, alpha);
    let (u, stats) = pcg(&sys, &b, solver);
    (Gray::new(w, h, u), stats)
}

/// `A = I + L_a` on a `w x h` grid: `wx[i]` couples pixel i to its right neighbour, `wy[i]` to
/// the one below (0 on the last column/row, so no link wraps around).
struct System {
    w: usize,
    h: usize,
    wx: Vec<f32>,
    wy: Vec<f32>,
}

impl System {
    fn new(guide: &[f32], w: usize, h: usize, lambda: f32, alpha: f32) -> Self {
        let n = w * h;
        let log: Vec<f32> = guide
            .par_iter()
            .map(|&g| (g.max(0.0) + LOG_EPS).ln())
            .collect();
        let weight = |a: f32, b: f32| lambda / ((a - b).abs().powf(alpha) + WEIGHT_EPS);
        let mut wx = vec![0.0f32; n];
        let mut wy = vec![0.0f32; n];
        wx.par_chunks_mut(w)
            .zip(wy.par_chunks_mut(w))
            .enumerate()
            .for_each(|(y, (rx, ry))| {
                let l = &log[y * w..][..w];
                for x in 0..w - 1 {
                    rx[x] = weight(l[x + 1], l[x]);
                }
                if y + 1 < h {
                    let below = &log[(y + 1) * w..][..w];
                    for x in 0..w {
                        ry[x] = weight(below[x], l[x]);
                    }
                }
            });
        System { w, h, wx, wy }
    }

    /// `out = A v` over whole rows, returning `v . A v` (per fixed chunk of rows, summed in
    /// order) for CG's step length.
    fn matvec_dot(&self, v: &[f32], out: &mut [f32]) -> f64 {
        let (w, h) = (self.w, self.h);
        let rows = (CHUNK / w).max(1);
        let parts: Vec<f64> = out
            .par_chunks_mut(rows * w)
            .enumerate()
            .map(|(c, chunk)| {
                let mut acc = 0.0f64;
                for (j, o) in chunk.chunks_mut(w).enumerate() {
                    let y = c * rows + j;
                    let at = y * w;
                    let cur = &v[at..][..w];
                    let wx = &self.wx[at..][..w];
                    // Differences first: with weights up to lambda * 1e4, `diag * v - sum w v`
                    // would cancel away the f32 digits the tolerance needs. The horizontal
                    // links take two one-sided passes, not one scatter to x and x + 1, which
                    // would chain each store to the next load and stay scalar.
                    for x in 0..w - 1 {
                        o[x] = cur[x] + wx[x] * (cur[x] - cur[x + 1]);
                    }
                    o[w - 1] = cur[w - 1];
                    for x in 1..w {
                        o[x] += wx[x - 1] * (cur[x] - cur[x - 1]);
                    }
                    if y > 0 {
                        let up = &v[at - w..][..w];
                        let wy = &self.wy[at - w..][..w];
                        for x in 0..w {
                            o[x] += wy[x] * (cur[x] - up[x]);
                        }
                    }
                    if y + 1 < h {
                        let down = &v[at + w..][..w];
                        let wy = &self.wy[at..][..w];
                        for x in 0..w {
                            o[x] += wy[x] * (cur[x] - down[x]);
                        }
                    }
                    acc += o
                        .iter()
                        .zip(cur)
                        .map(|(&a, &b)| f64::from(a * b))
                        .sum::<f64>();
                }
                acc
            })
            .collect();
        parts.iter().sum()
    }
}

/// MIC(0) preconditioner in the form `M = (E - Lo) E^-1 (E - Lo^T)`, where `Lo` holds A's own
/// (negated) couplings below the diagonal and `E` the modified pivots: on a 5-point stencil the
/// incomplete factor keeps A's off-diagonals, so only the pivots need storing.
struct Mic {
    w: usize,
    /// 1 / pivot.
    inv_e: Vec<f32>,
}

impl Mic {
    /// Full modification (the dropped fill-in is moved onto the diagonal, so `M 1 = A 1`).
    /// Each pivot is accumulated as `1 + wx_i + wy_i + (non-negative terms)`, never as the
    /// difference `diag - eliminated`: that difference cancels badly in f32 once weights reach
    /// `lambda * 1e4`, and written this way the pivots are provably >= 1 (so no breakdown
    /// guard is needed), because `A` is the identity plus a Laplacian.
    fn new(sys: &System) -> Self {
        let (w, n) = (sys.w, sys.wx.len());
        let (wx, wy) = (&sys.wx, &sys.wy);
        let mut inv_e = vec![0.0f32; n];
        // Pivot minus the pixel's own right/down couplings: >= 1, the part the next pivots
        // inherit.
        let mut slack = vec![0.0f32; n];
        // Inherently sequential: each pivot depends on the left and upper ones.
        for i in 0..n {
            let mut s = 1.0f32;
            if i % w > 0 {
                s += wx[i - 1] * slack[i - 1] * inv_e[i - 1];
            }
            if i >= w {
                s += wy[i - w] * slack[i - w] * inv_e[i - w];
            }
            slack[i] = s;
            inv_e[i] = 1.0 / (s + wx[i] + wy[i]);
        }
        Mic { w, inv_e }
    }

    /// `z = M^-1 r`, returning `r . z`. Each row is split into a vectorisable pass (the terms
    /// from the row already done) and a first-order recurrence along the row, so the serial
    /// dependency chain is one multiply-add per pixel.
    fn apply(&self, sys: &System, r: &[f32], z: &mut [f32], scratch: &mut Vec<f32>) -> f64 {
        let w = self.w;
        let n = r.len();
        scratch.resize(w, 0.0);
        let coef = &mut scratch[..w];
        // Forward: (E - Lo) t = r.
        for at in (0..n).step_by(w) {
            let (done, rest) = z.split_at_mut(at);
            let t = &mut rest[..w];
            let ie = &self.inv_e[at..][..w];
            let rr = &r[at..][..w];
            if at >= w {
                let up = &done[at - w..];
                let wy = &sys.wy[at - w..][..w];
                for x in 0..w {
                    t[x] = ie[x] * (rr[x] + wy[x] * up[x]);
                }
            } else {
                for x in 0..w {
                    t[x] = ie[x] * rr[x];
                }
            }
            let wx = &sys.wx[at..][..w];
            for x in 1..w {
                coef[x] = ie[x] * wx[x - 1];
            }
            for x in 1..w {
                t[x] += coef[x] * t[x - 1];
            }
        }
        // Backward: (E - Lo^T) z = E t, i.e. z = t + E^-1 (couplings . z) over right/down.
        let mut rz = 0.0f64;
        for at in (0..n).step_by(w).rev() {
            let (head, next) = z.split_at_mut(at + w);
            let zr = &mut head[at..];
            let ie = &self.inv_e[at..][..w];
            if at + w < n {
                let below = &next[..w];
                let wy = &sys.wy[at..][..w];
                for x in 0..w {
                    zr[x] += ie[x] * wy[x] * below[x];
                }
            }
            let wx = &sys.wx[at..][..w];
            for x in 0..w {
                coef[x] = ie[x] * wx[x];
            }
            for x in (0..w - 1).rev() {
                zr[x] += coef[x] * zr[x + 1];
            }
            rz += zr
                .iter()
                .zip(&r[at..][..w])
                .map(|(&a, &b)| f64::from(a * b))
                .sum::<f64>();
        }
        rz
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    let parts: Vec<f64> = a
        .par_chunks(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .map(|(a, b)| a.iter().zip(b).map(|(&x, &y)| f64::from(x * y)).sum())
        .collect();
    parts.iter().sum()
}

/// Conjugate gradient on `A u = b` from `u = b` (exact when the weights vanish, and close in
/// flat regions). f32 vectors keep memory traffic down; dot products accumulate in f64.
fn pcg(sys: &System, b: &[f32], solver: &WlsSolver) -> (Vec<f32>, WlsStats) {
    let n = b.len();
    let target = f64::from(solver.tol).powi(2) * n as f64;
    let rms = |rr: f64| (rr / n as f64).sqrt() as f32;
    let mut x = b.to_vec();
    let mut r = vec![0.0f32; n];
    sys.matvec_dot(&x, &mut r);
    r.par_iter_mut().zip(b).for_each(|(r, &b)| *r = b - *r);
    let mut rr = dot(&r, &r);
    let mut stats = WlsStats {
        iterations: 0,
        rms_residual: rms(rr),
        converged: rr <= target,
    };
    if stats.converged {
        return (x, stats);
    }
    let pre = Mic::new(sys);
    let mut scratch = Vec::new();
    let mut z = vec![0.0f32; n];
    let mut rz = pre.apply(sys, &r, &mut z, &mut scratch);
    let mut p = z.clone();
    let mut ap = vec![0.0f32; n];
    while stats.iterations < solver.max_iter {
        let pap = sys.matvec_dot(&p, &mut ap);
        // A is SPD, so this only fails once p has underflowed to zero: nothing left to gain.
        if pap <= 0.0 || !pap.is_finite() {
            break;
        }
        let alpha = (rz / pap) as f32;
        let parts: Vec<f64> = x
            .par_chunks_mut(CHUNK)
            .zip(r.par_chunks_mut(CHUNK))
            .zip(p.par_chunks(CHUNK))
            .zip(ap.par_chunks(CHUNK))
            .map(|(((x, r), p), ap)| {
                let mut acc = 0.0f64;
                for i in 0..x.len() {
                    x[i] += alpha * p[i];
                    r[i] -= alpha * ap[i];
                    acc += f64::from(r[i] * r[i]);
                }
                acc
            })
            .collect();
        rr = parts.iter().sum();
        stats.iterations += 1;
        stats.rms_residual = rms(rr);
        if rr <= target {
            stats.converged = true;
            break;
        }
        let rz_new = pre.apply(sys, &r, &mut z, &mut scratch);
        let beta = (rz_new / rz) as f32;
        rz = rz_new;
        p.par_iter_mut()
            .zip(z.par_iter())
            .for_each(|(p, &z)| *p = z + beta * *p);
    }
    (x, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift32: deterministic noise without a dependency.
    struct Noise(u32);

    impl Noise {
        /// Uniform in [-0.5, 0.5).
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            (self.0 >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        }
    }

    fn gray_fn(w: usize, h: usize, f: impl Fn(usize, usize) -> f32) -> Gray {
        Gray::new(w, h, (0..w * h).map(|i| f(i % w, i / w)).collect())
    }

    fn noisy(clean: &Gray, amplitude: f32, seed: u32) -> Gray {
        let mut rng = Noise(seed);
        let data = clean
            .data
            .iter()
            .map(|&v| v + amplitude * rng.next())
            .collect();
        Gray::new(clean.width, clean.height, data)
    }

    fn mean_sq_diff(a: &[f32], b: &[f32]) -> f64 {
        let s: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(x - y).powi(2))
            .sum();
        s / a.len() as f64
    }

    /// Mean of column `x`.
    fn column_mean(img: &Gray, x: usize) -> f32 {
        (0..img.height)
            .map(|y| img.data[y * img.width + x])
            .sum::<f32>()
            / img.height as f32
    }

    /// Box mean over a clipped (2r+1)^2 window.
    fn box_blur(img: &Gray, r: usize) -> Gray {
        let (w, h) = (img.width, img.height);
        gray_fn(w, h, |x, y| {
            let (mut s, mut c) = (0.0, 0.0);
            for yy in y.saturating_sub(r)..=(y + r).min(h - 1) {
                for xx in x.saturating_sub(r)..=(x + r).min(w - 1) {
                    s += img.data[yy * w + xx];
                    c += 1.0;
                }
            }
            s / c
        })
    }

    fn high_pass(img: &Gray) -> Vec<f32> {
        let low = box_blur(img, 2);
        img.data.iter().zip(&low.data).map(|(a, b)| a - b).collect()
    }

    fn correlation(a: &[f32], b: &[f32]) -> f64 {
        let n = a.len() as f64;
        let ma = a.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let mb = b.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
            sab += x * y;
            saa += x * x;
            sbb += y * y;
        }
        sab / (saa * sbb).sqrt()
    }

    fn luma(rgb: &Rgb) -> Gray {
        let n = rgb.width * rgb.height;
        let data = (0..n)
            .map(|i| rgb_to_yuv(rgb.data[i], rgb.data[n + i], rgb.data[2 * n + i]).0)
            .collect();
        Gray::new(rgb.width, rgb.height, data)
    }

    /// The WLS link weights in f64, written out from the paper's formula independently of
    /// `System`: (right, down) per pixel.
    fn weights_f64(g: &Gray, lambda: f64, alpha: f64) -> (Vec<f64>, Vec<f64>) {
        let (w, h) = (g.width, g.height);
        let l: Vec<f64> = g
            .data
            .iter()
            .map(|&v| (f64::from(v).max(0.0) + 1e-4).ln())
            .collect();
        let wt = |a: f64, b: f64| lambda / ((a - b).abs().powf(alpha) + 1e-4);
        let mut wx = vec![0.0; w * h];
        let mut wy = vec![0.0; w * h];
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                if x + 1 < w {
                    wx[i] = wt(l[i + 1], l[i]);
                }
                if y + 1 < h {
                    wy[i] = wt(l[i + w], l[i]);
                }
            }
        }
        (wx, wy)
    }

    /// `(I + L) u` in f64.
    fn system_apply_f64(w: usize, wx: &[f64], wy: &[f64], u: &[f64]) -> Vec<f64> {
        let mut out = u.to_vec();
        for i in 0..u.len() {
            if wx[i] != 0.0 {
                out[i] += wx[i] * (u[i] - u[i + 1]);
                out[i + 1] += wx[i] * (u[i + 1] - u[i]);
            }
            if wy[i] != 0.0 {
                out[i] += wy[i] * (u[i] - u[i + w]);
                out[i + w] += wy[i] * (u[i + w] - u[i]);
            }
        }
        out
    }

    /// The exact WLS solution by dense Gaussian elimination (small images only).
    fn wls_dense(g: &Gray, lambda: f64, alpha: f64) -> Vec<f64> {
        let (w, n) = (g.width, g.data.len());
        let (wx, wy) = weights_f64(g, lambda, alpha);
        let mut a = vec![0.0f64; n * n];
        for i in 0..n {
            let mut e = vec![0.0; n];
            e[i] = 1.0;
            for (j, v) in system_apply_f64(w, &wx, &wy, &e).into_iter().enumerate() {
                a[j * n + i] = v;
            }
        }
        let mut b: Vec<f64> = g.data.iter().map(|&v| f64::from(v)).collect();
        // SPD, so no pivoting is needed.
        for k in 0..n {
            for r in k + 1..n {
                let f = a[r * n + k] / a[k * n + k];
                if f != 0.0 {
                    for c in k..n {
                        a[r * n + c] -= f * a[k * n + c];
                    }
                    b[r] -= f * b[k];
                }
            }
        }
        for k in (0..n).rev() {
            let s: f64 = (k + 1..n).map(|c| a[k * n + c] * b[c]).sum();
            b[k] = (b[k] - s) / a[k * n + k];
        }
        b
    }

    fn tight() -> WlsSolver {
        WlsSolver {
            tol: 1e-6,
            max_iter: 10_000,
        }
    }

    #[test]
    fn yuv_round_trips_and_grey_has_no_chroma() {
        let mut rng = Noise(7);
        for _ in 0..1000 {
            let (r, g, b) = (rng.next() + 0.5, rng.next() + 0.5, rng.next() + 0.5);
            let (y, u, v) = rgb_to_yuv(r, g, b);
            let (r2, g2, b2) = yuv_to_rgb(y, u, v);
            assert!((r - r2).abs() < 1e-6 && (g - g2).abs() < 1e-6 && (b - b2).abs() < 1e-6);
            assert!(u.abs() <= 0.5 + 1e-6 && v.abs() <= 0.5 + 1e-6);
        }
        let (y, u, v) = rgb_to_yuv(0.4, 0.4, 0.4);
        assert!((y - 0.4).abs() < 1e-6 && u.abs() < 1e-7 && v.abs() < 1e-7);
        assert!((rgb_to_yuv(1.0, 1.0, 1.0).0 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn exp2_neg_is_accurate() {
        for k in 0..=10_000 {
            let u = k as f32 * 0.01;
            let want = (-f64::from(u)).exp2();
            let got = f64::from(exp2_neg(u));
            assert!(
                ((got - want) / want).abs() < 5e-6,
                "2^-{u}: {got} vs {want}"
            );
        }
        let tiny = exp2_neg(EXP2_MAX);
        assert!(tiny > 0.0 && tiny.is_normal());
    }

    #[test]
    fn bilateral_of_constant_is_constant() {
        let img = gray_fn(23, 17, |_, _| 0.37);
        let out = bilateral(&img, 2.0, 0.1);
        assert!(out.data.iter().all(|&v| (v - 0.37).abs() < 1e-6));
    }

    #[test]
    fn bilateral_matches_direct_formula() {
        let img = noisy(
            &gray_fn(13, 11, |x, y| 0.1 * x as f32 / 2.0 + 0.02 * y as f32),
            0.4,
            3,
        );
        let (ss, sr) = (1.5f64, 0.2f64);
        let r = (2.0 * ss).ceil() as isize;
        let out = bilateral(&img, ss as f32, sr as f32);
        let (w, h) = (img.width as isize, img.height as isize);
        for y in 0..h {
            for x in 0..w {
                let c = f64::from(img.data[(y * w + x) as usize]);
                let (mut num, mut den) = (0.0, 0.0);
                for yy in (y - r).max(0)..=(y + r).min(h - 1) {
                    for xx in (x - r).max(0)..=(x + r).min(w - 1) {
                        let v = f64::from(img.data[(yy * w + xx) as usize]);
                        let d2 = ((xx - x).pow(2) + (yy - y).pow(2)) as f64;
                        let wt = (-d2 / (2.0 * ss * ss) - (v - c).powi(2) / (2.0 * sr * sr)).exp();
                        num += wt * v;
                        den += wt;
                    }
                }
                let got = f64::from(out.data[(y * w + x) as usize]);
                assert!(
                    (got - num / den).abs() < 1e-5,
                    "({x},{y}): {got} vs {}",
                    num / den
                );
            }
        }
    }

    #[test]
    fn bilateral_keeps_step_sharp_and_smooths_noise() {
        let clean = gray_fn(64, 48, |x, _| if x < 32 { 0.2 } else { 0.8 });
        let img = noisy(&clean, 0.07, 11);
        let out = bilateral(&img, 2.0, 0.1);
        // Noise: the residual against the clean image must drop a lot.
        let before = mean_sq_diff(&img.data, &clean.data);
        let after = mean_sq_diff(&out.data, &clean.data);
        assert!(after < 0.2 * before, "noise power {before} -> {after}");
        // Edge: the columns either side keep their level; a blur would pull them toward 0.5.
        for (x, level) in [(30, 0.2), (31, 0.2), (32, 0.8), (33, 0.8)] {
            let m = column_mean(&out, x);
            assert!((m - level).abs() < 0.01, "column {x}: {m} vs {level}");
        }
        assert!(out
            .data
            .iter()
            .zip(&clean.data)
            .all(|(&o, &c)| (o - c).abs() < 0.05));
    }

    #[test]
    fn bilateral_degenerate_sigmas_stay_finite() {
        let img = noisy(&gray_fn(9, 7, |x, _| 0.5 + 0.03 * x as f32), 0.2, 8);
        // Vanishing sigmas are the identity in the limit.
        for (ss, sr) in [
            (0.0, 0.1),
            (2.0, 0.0),
            (-1.0, 0.1),
            (1e-30, 0.1),
            (2.0, 1e-30),
        ] {
            assert_eq!(bilateral(&img, ss, sr), img, "({ss}, {sr})");
        }
        // Huge ones degrade to a Gaussian or a box mean, but stay finite and in range.
        for (ss, sr) in [(1e30, 0.1), (2.0, 1e30), (1e30, 1e30)] {
            let out = bilateral(&img, ss, sr);
            assert!(
                out.data.iter().all(|v| (0.0..=1.0).contains(v)),
                "({ss}, {sr})"
            );
        }
    }

    #[test]
    fn wls_of_constant_is_constant() {
        for v in [0.0, 0.6, 1.0] {
            let img = gray_fn(19, 13, |_, _| v);
            let (out, stats) = wls_solve(&img, &img, 1.0, 1.2, &WlsSolver::default());
            assert!(out.data.iter().all(|&o| (o - v).abs() < 1e-6));
            assert!(stats.converged);
        }
    }

    #[test]
    fn wls_with_vanishing_lambda_returns_the_input() {
        // Kept inside (0, 1): below 0 the log clamps, and clamped neighbours look flat.
        let img = noisy(
            &gray_fn(31, 17, |x, _| 0.1 + 0.8 * x as f32 / 31.0),
            0.15,
            5,
        );
        assert_eq!(wls(&img, 0.0, 1.2), img);
        let out = wls_solve(&img, &img, 1e-6, 1.2, &tight()).0;
        let worst = out
            .data
            .iter()
            .zip(&img.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "max change {worst}");
    }

    #[test]
    fn wls_matches_dense_solve() {
        // A few shapes, including single rows/columns where the system is tridiagonal.
        for (w, h, seed) in [(7, 6, 1), (9, 1, 2), (1, 8, 3), (5, 5, 4)] {
            let img = noisy(
                &gray_fn(w, h, |x, y| 0.3 + 0.05 * (x + y) as f32),
                0.3,
                seed,
            );
            let want = wls_dense(&img, 1.0, 1.2);
            let (got, stats) = wls_solve(&img, &img, 1.0, 1.2, &tight());
            assert!(stats.converged, "{w}x{h}: {stats:?}");
            for (g, w_) in got.data.iter().zip(&want) {
                assert!((f64::from(*g) - w_).abs() < 1e-5, "{w}x{h}: {g} vs {w_}");
            }
        }
    }

    #[test]
    fn wls_solution_satisfies_the_linear_system() {
        let clean = gray_fn(32, 24, |x, y| {
            if (x / 12 + y / 10) % 2 == 0 {
                0.25
            } else {
                0.7
            }
        });
        let img = noisy(&clean, 0.05, 9);
        let (wx, wy) = weights_f64(&img, 1.0, 1.2);
        let b: Vec<f64> = img.data.iter().map(|&v| f64::from(v)).collect();
        let rms = |v: &mut dyn Iterator<Item = f64>| {
            let (s, n) = v.fold((0.0, 0.0), |(s, n), x| (s + x * x, n + 1.0));
            (s / n).sqrt()
        };
        let residual = |u: &Gray| {
            let u: Vec<f64> = u.data.iter().map(|&v| f64::from(v)).collect();
            let au = system_apply_f64(img.width, &wx, &wy, &u);
            rms(&mut au.iter().zip(&b).map(|(a, b)| a - b))
        };
        // u = b, where the solver starts, is far from solving the system.
        let start = residual(&img);
        assert!(start > 1.0, "starting residual {start}");
        let solver = WlsSolver {
            tol: 1e-5,
            max_iter: 10_000,
        };
        let (u, stats) = wls_solve(&img, &img, 1.0, 1.2, &solver);
        assert!(stats.converged && stats.rms_residual <= 1e-5, "{stats:?}");
        // Recomputed in f64 from the paper's formula. It cannot reach 1e-5: noise makes some
        // neighbours nearly equal, their weights approach 1e4, and rounding u to f32 alone
        // leaves a residual of ~1e4 * 6e-8 there.
        let r = residual(&u);
        assert!(
            r < 1e-3 && r < start * 1e-3,
            "RMS residual {r} (from {start})"
        );
        // What the residual stands for, the error against the exact solution, is tiny; with the
        // default tolerance it stays within the documented bound.
        let exact = wls_dense(&img, 1.0, 1.2);
        let err = |u: &Gray| rms(&mut u.data.iter().zip(&exact).map(|(&a, b)| f64::from(a) - b));
        assert!(err(&u) < 1e-5, "RMS error {}", err(&u));
        let u = wls(&img, 1.0, 1.2);
        assert!(err(&u) <= 1e-3, "RMS error {}", err(&u));
    }

    #[test]
    fn wls_smooths_noise_but_keeps_the_step_unlike_a_box_blur() {
        let (w, h) = (64, 48);
        let clean = gray_fn(w, h, |x, _| if x < 32 { 0.2 } else { 0.8 });
        let img = noisy(&clean, 0.08, 13);
        let out = wls(&img, 1.0, 1.2);
        let blur = box_blur(&img, 3);
        // Noise: high-pass energy away from the step and the borders.
        let interior = |i: usize| {
            let (x, y) = (i % w, i / w);
            (3..h - 3).contains(&y) && ((4..26).contains(&x) || (38..w - 4).contains(&x))
        };
        let energy = |g: &Gray| -> f64 {
            let hp = high_pass(g);
            (0..hp.len())
                .filter(|&i| interior(i))
                .map(|i| f64::from(hp[i]).powi(2))
                .sum()
        };
        let ratio = energy(&out) / energy(&img);
        assert!(ratio < 0.05, "noise energy kept: {ratio}");
        // Step: most of the 0.6 jump stays between the two columns at the edge, where a box
        // blur spreads it over seven.
        let jump = |g: &Gray| column_mean(g, 32) - column_mean(g, 31);
        assert!(jump(&out) > 0.45, "WLS jump {}", jump(&out));
        assert!(jump(&blur) < 0.15, "box blur jump {}", jump(&blur));
        let (err, blur_err) = (
            mean_sq_diff(&out.data, &clean.data),
            mean_sq_diff(&blur.data, &clean.data),
        );
        assert!(err < 0.2 * blur_err, "WLS {err} vs box blur {blur_err}");
    }

    #[test]
    fn filters_are_transpose_symmetric() {
        let row = noisy(&gray_fn(23, 1, |x, _| 0.5 + 0.01 * x as f32), 0.3, 17);
        let col = Gray::new(1, 23, row.data.clone());
        let (a, b) = (
            wls_solve(&row, &row, 1.0, 1.2, &tight()).0,
            wls_solve(&col, &col, 1.0, 1.2, &tight()).0,
        );
        assert!(a
            .data
            .iter()
            .zip(&b.data)
            .all(|(x, y)| (x - y).abs() < 1e-5));
        let (a, b) = (bilateral(&row, 2.0, 0.1), bilateral(&col, 2.0, 0.1));
        assert!(a
            .data
            .iter()
            .zip(&b.data)
            .all(|(x, y)| (x - y).abs() < 1e-6));
    }

    /// A smooth, in-gamut colour frame and a NIR whose fine texture the colour lacks.
    fn scene(w: usize, h: usize) -> (Gray, Rgb) {
        let base = |x: usize, y: usize| 0.35 + 0.3 * (x + y) as f32 / (w + h) as f32;
        let texture = |x: usize, y: usize| {
            0.04 * ((x as f32 * 2.1).sin() * (y as f32 * 1.7).cos()
                + ((x * 7 + y * 3) % 5) as f32 / 5.0
                - 0.4)
        };
        let nir = gray_fn(w, h, |x, y| base(x, y) + texture(x, y));
        let n = w * h;
        let mut data = vec![0.0f32; 3 * n];
        for y in 0..h {
            for x in 0..w {
                let l = base(x, y);
                data[y * w + x] = l + 0.1;
                data[n + y * w + x] = l;
                data[2 * n + y * w + x] = l - 0.1 + 0.05 * (y as f32 / h as f32);
            }
        }
        (nir, Rgb::new(w, h, data))
    }

    #[test]
    fn apply_keeps_chroma() {
        let (nir, colour) = scene(48, 36);
        let out = Bfwls::default().apply(&nir, &colour);
        let n = nir.data.len();
        // Nothing may have clamped, or the chroma check would not be about the method.
        assert!(out.data.iter().all(|&v| v > 0.0 && v < 1.0));
        for i in 0..n {
            let (_, u0, v0) =
                rgb_to_yuv(colour.data[i], colour.data[n + i], colour.data[2 * n + i]);
            let (_, u1, v1) = rgb_to_yuv(out.data[i], out.data[n + i], out.data[2 * n + i]);
            assert!(
                (u0 - u1).abs() < 1e-4 && (v0 - v1).abs() < 1e-4,
                "pixel {i}"
            );
        }
    }

    #[test]
    fn apply_puts_nir_texture_into_luma() {
        let (nir, colour) = scene(64, 48);
        let nir_hp = high_pass(&nir);
        // The colour frame carries none of the texture to begin with...
        let before = correlation(&high_pass(&luma(&colour)), &nir_hp);
        assert!(before.abs() < 0.2, "before: {before}");
        // ...and the output's luma does.
        let out = Bfwls::default().apply(&nir, &colour);
        let after = correlation(&high_pass(&luma(&out)), &nir_hp);
        assert!(after > 0.9, "after: {after}");
    }

    #[test]
    fn apply_handles_tiny_and_odd_sizes() {
        for (w, h) in [
            (1, 1),
            (1, 9),
            (9, 1),
            (2, 2),
            (3, 5),
            (17, 9),
            (0, 0),
            (0, 4),
            (4, 0),
        ] {
            let nir = noisy(
                &gray_fn(w, h, |x, y| 0.5 + 0.02 * (x + 2 * y) as f32),
                0.5,
                21,
            );
            let mut rng = Noise(22);
            let colour = Rgb::new(w, h, (0..3 * w * h).map(|_| rng.next() + 0.5).collect());
            let out = Bfwls::default().apply(&nir, &colour);
            assert_eq!((out.width, out.height, out.data.len()), (w, h, 3 * w * h));
            assert!(out.data.iter().all(|v| (0.0..=1.0).contains(v)), "{w}x{h}");
        }
    }

    #[test]
    fn non_finite_input_gives_finite_output() {
        let (mut nir, mut colour) = scene(16, 12);
        nir.data[5] = f32::NAN;
        nir.data[40] = f32::INFINITY;
        colour.data[7] = f32::NAN;
        colour.data[300] = f32::NEG_INFINITY;
        let out = Bfwls::default().apply(&nir, &colour);
        assert!(out.data.iter().all(|v| v.is_finite()));
        assert!(wls(&nir, 1.0, 1.2).data.iter().all(|v| v.is_finite()));
        assert!(bilateral(&nir, 2.0, 0.1).data.iter().all(|v| v.is_finite()));
    }

    #[test]
    #[should_panic(expected = "must match")]
    fn apply_rejects_mismatched_sizes() {
        let nir = gray_fn(8, 6, |_, _| 0.5);
        let colour = Rgb::new(6, 8, vec![0.5; 3 * 48]);
        Bfwls::default().apply(&nir, &colour);
    }

    #[test]
    fn apply_does_not_depend_on_the_thread_count() {
        // Big enough that the solver's sums span several CHUNKs.
        let (nir, colour) = scene(200, 170);
        assert!(nir.data.len() > 2 * CHUNK);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| Bfwls::default().apply(&nir, &colour))
        };
        assert_eq!(run(1), run(3));
    }
}
