//! Unit tests of the guided filter, box means and resizing.

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
