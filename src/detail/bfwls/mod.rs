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
mod tests;
