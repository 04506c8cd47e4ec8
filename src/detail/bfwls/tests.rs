//! Unit tests of `bfwls`.

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
        let (_, u0, v0) = rgb_to_yuv(colour.data[i], colour.data[n + i], colour.data[2 * n + i]);
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
