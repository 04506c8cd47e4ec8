//! Quality metrics exactly as the published protocols compute them, on 8-bit sRGB with an
//! optional mask: PSNR, SSIM (scikit-image's Gaussian variant), RMSE, MAE, angular error, and
//! CIEDE2000 / CIE76 Delta E (colour-science's sRGB -> XYZ -> Lab under D65).

use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::images::planes::{rgb_to_yuv, yuv_to_rgb};

/// All seven metrics of one image (or their mean over images). NaN where nothing was counted
/// (an all-masked image, or an image smaller than SSIM's 11x11 window).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub psnr: f64,
    pub ssim: f64,
    pub ae: f64,
    pub rmse: f64,
    pub mae: f64,
    pub delta_e2000: f64,
    pub delta_e76: f64,
}

impl Metrics {
    pub const NAMES: [&'static str; 7] = [
        "psnr",
        "ssim",
        "ae",
        "rmse",
        "mae",
        "delta_e2000",
        "delta_e76",
    ];

    pub fn values(&self) -> [f64; 7] {
        [
            self.psnr,
            self.ssim,
            self.ae,
            self.rmse,
            self.mae,
            self.delta_e2000,
            self.delta_e76,
        ]
    }

    fn from_values(v: [f64; 7]) -> Self {
        Metrics {
            psnr: v[0],
            ssim: v[1],
            ae: v[2],
            rmse: v[3],
            mae: v[4],
            delta_e2000: v[5],
            delta_e76: v[6],
        }
    }

    /// The mean over images, each metric over the images where it is not NaN.
    pub fn mean(all: &[Metrics]) -> Metrics {
        Metrics::from_values(std::array::from_fn(|k| {
            mean_ignoring_nan(all.iter().map(|m| m.values()[k]))
        }))
    }
}

/// The mean of the values that are not NaN; NaN when there are none.
fn mean_ignoring_nan(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .filter(|v| !v.is_nan())
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// Why two images cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("output is {0}x{1} but the ground truth is {2}x{3}; compare images of one size")]
    SizeMismatch(u32, u32, u32, u32),
    #[error("the mask has {0} pixels but the images have {1}; give a mask of the images' size")]
    MaskSize(usize, usize),
}

/// Every metric of `pred` against `truth`, counting only pixels where `mask` is true.
pub fn compute(
    pred: &RgbImage,
    truth: &RgbImage,
    mask: Option<&[bool]>,
) -> Result<Metrics, MetricsError> {
    if pred.dimensions() != truth.dimensions() {
        return Err(MetricsError::SizeMismatch(
            pred.width(),
            pred.height(),
            truth.width(),
            truth.height(),
        ));
    }
    let n = (pred.width() * pred.height()) as usize;
    if let Some(m) = mask {
        if m.len() != n {
            return Err(MetricsError::MaskSize(m.len(), n));
        }
    }
    let (mse, mae) = mse_mae(pred, truth, mask);
    let (de2000, de76) = delta_e(pred, truth, mask);
    Ok(Metrics {
        psnr: psnr_from_mse(mse),
        ssim: ssim(pred, truth, mask),
        ae: angular_error(pred, truth, mask),
        rmse: mse.sqrt(),
        mae,
        delta_e2000: de2000,
        delta_e76: de76,
    })
}

fn selected(mask: Option<&[bool]>, i: usize) -> bool {
    mask.is_none_or(|m| m[i])
}

/// The (prediction, truth) pixel pairs the mask keeps.
fn counted<'a>(
    pred: &'a RgbImage,
    truth: &'a RgbImage,
    mask: Option<&'a [bool]>,
) -> impl Iterator<Item = ([u8; 3], [u8; 3])> + 'a {
    let px = |p: &[u8]| [p[0], p[1], p[2]];
    pred.as_raw()
        .chunks_exact(3)
        .zip(truth.as_raw().chunks_exact(3))
        .enumerate()
        .filter(move |(i, _)| selected(mask, *i))
        .map(move |(_, (p, t))| (px(p), px(t)))
}

/// Mean squared and mean absolute error over all three channels of the counted pixels.
fn mse_mae(pred: &RgbImage, truth: &RgbImage, mask: Option<&[bool]>) -> (f64, f64) {
    let (mut se, mut ae, mut count) = (0.0f64, 0.0f64, 0usize);
    for (p, t) in counted(pred, truth, mask) {
        for c in 0..3 {
            let d = f64::from(p[c]) - f64::from(t[c]);
            se += d * d;
            ae += d.abs();
        }
        count += 3;
    }
    if count == 0 {
        return (f64::NAN, f64::NAN);
    }
    (se / count as f64, ae / count as f64)
}

/// PSNR in dB for 8-bit data; infinite for identical images, as scikit-image returns.
pub fn psnr_from_mse(mse: f64) -> f64 {
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

const SSIM_SIGMA: f64 = 1.5;
const SSIM_TRUNCATE: f64 = 3.5;

fn gaussian_kernel() -> Vec<f64> {
    // scipy.ndimage.gaussian_filter's kernel: radius int(truncate * sigma + 0.5), normalised.
    let radius = (SSIM_TRUNCATE * SSIM_SIGMA + 0.5) as i64;
    let mut k: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 * (x * x) as f64 / (SSIM_SIGMA * SSIM_SIGMA)).exp())
        .collect();
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    k
}

/// scipy's mode='reflect' (d c b a | a b c d), repeated for windows wider than the image.
fn reflect(i: i64, n: usize) -> usize {
    let n = n as i64;
    let m = i.rem_euclid(2 * n);
    (if m >= n { 2 * n - 1 - m } else { m }) as usize
}

/// Separable Gaussian filter along rows then columns, with scipy's reflect borders.
fn gaussian_filter(src: &[f64], w: usize, h: usize, k: &[f64]) -> Vec<f64> {
    let r = (k.len() / 2) as i64;
    let mut tmp = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                acc += kv * src[reflect(y as i64 + j as i64 - r, h) * w + x];
            }
            tmp[y * w + x] = acc;
        }
    }
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        let row = &tmp[y * w..(y + 1) * w];
        for x in 0..w {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                acc += kv * row[reflect(x as i64 + j as i64 - r, w)];
            }
            out[y * w + x] = acc;
        }
    }
    out
}

/// SSIM as `skimage.metrics.structural_similarity(..., channel_axis=-1, gaussian_weights=True,
/// sigma=1.5, use_sample_covariance=False, data_range=255)`: the per-channel maps averaged, then
/// the mean of the map without its 5-pixel border (and, with a mask, over the mask's pixels).
pub fn ssim(pred: &RgbImage, truth: &RgbImage, mask: Option<&[bool]>) -> f64 {
    let (w, h) = (pred.width() as usize, pred.height() as usize);
    let k = gaussian_kernel();
    let pad = k.len() / 2;
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let channel = |img: &RgbImage, c: usize| -> Vec<f64> {
        img.as_raw()
            .chunks_exact(3)
            .map(|p| f64::from(p[c]))
            .collect()
    };
    let maps: Vec<Vec<f64>> = (0..3usize)
        .into_par_iter()
        .map(|c| {
            let (x, y) = (channel(pred, c), channel(truth, c));
            let prod =
                |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).collect::<Vec<f64>>();
            let ux = gaussian_filter(&x, w, h, &k);
            let uy = gaussian_filter(&y, w, h, &k);
            let uxx = gaussian_filter(&prod(&x, &x), w, h, &k);
            let uyy = gaussian_filter(&prod(&y, &y), w, h, &k);
            let uxy = gaussian_filter(&prod(&x, &y), w, h, &k);
            (0..w * h)
                .map(|i| {
                    let (vx, vy, vxy) = (
                        uxx[i] - ux[i] * ux[i],
                        uyy[i] - uy[i] * uy[i],
                        uxy[i] - ux[i] * uy[i],
                    );
                    let a1 = 2.0 * ux[i] * uy[i] + c1;
                    let a2 = 2.0 * vxy + c2;
                    let b1 = ux[i] * ux[i] + uy[i] * uy[i] + c1;
                    let b2 = vx + vy + c2;
                    (a1 * a2) / (b1 * b2)
                })
                .collect()
        })
        .collect();
    let (mut sum, mut count) = (0.0f64, 0usize);
    for y in pad..h.saturating_sub(pad) {
        for x in pad..w.saturating_sub(pad) {
            let i = y * w + x;
            if selected(mask, i) {
                sum += (maps[0][i] + maps[1][i] + maps[2][i]) / 3.0;
                count += 1;
            }
        }
    }
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

/// Mean angle in degrees between predicted and true RGB vectors, skipping pixels where either
/// vector is zero (the angle is undefined there).
pub fn angular_error(pred: &RgbImage, truth: &RgbImage, mask: Option<&[bool]>) -> f64 {
    let (mut sum, mut count) = (0.0f64, 0usize);
    for (p, t) in counted(pred, truth, mask) {
        let p = [f64::from(p[0]), f64::from(p[1]), f64::from(p[2])];
        let t = [f64::from(t[0]), f64::from(t[1]), f64::from(t[2])];
        let (pp, tt) = (
            p[0] * p[0] + p[1] * p[1] + p[2] * p[2],
            t[0] * t[0] + t[1] * t[1] + t[2] * t[2],
        );
        if pp == 0.0 || tt == 0.0 {
            continue;
        }
        let cos = (p[0] * t[0] + p[1] * t[1] + p[2] * t[2]) / (pp.sqrt() * tt.sqrt());
        sum += cos.clamp(-1.0, 1.0).acos().to_degrees();
        count += 1;
    }
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

/// colour-science's sRGB -> XYZ matrix (IEC 61966-2-1's rounded one, which colour uses).
const SRGB_TO_XYZ: [[f64; 3]; 3] = [
    [0.4124, 0.3576, 0.1805],
    [0.2126, 0.7152, 0.0722],
    [0.0193, 0.1192, 0.9505],
];
/// CIE 1931 2 degree D65 chromaticity.
const D65_XY: (f64, f64) = (0.3127, 0.3290);

/// Lab of every 8-bit value triple is computed through this table of decoded sRGB values.
fn srgb_decode_table() -> [f64; 256] {
    // colour's eotf_sRGB splits at eotf_inverse_sRGB(0.0031308), not at the rounded 0.04045.
    let split = 1.055 * 0.0031308f64.powf(1.0 / 2.4) - 0.055;
    let mut t = [0.0; 256];
    for (v, slot) in t.iter_mut().enumerate() {
        let v = v as f64 / 255.0;
        *slot = if v <= split {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        };
    }
    t
}

/// 8-bit sRGB to CIELAB under D65, as `colour.XYZ_to_Lab(colour.sRGB_to_XYZ(rgb / 255))`.
pub fn srgb8_to_lab(rgb: [u8; 3], table: &[f64; 256]) -> [f64; 3] {
    let lin = [
        table[rgb[0] as usize],
        table[rgb[1] as usize],
        table[rgb[2] as usize],
    ];
    let xyz: Vec<f64> = SRGB_TO_XYZ
        .iter()
        .map(|row| row[0] * lin[0] + row[1] * lin[1] + row[2] * lin[2])
        .collect();
    let (x, y) = D65_XY;
    let white = [x / y, 1.0, (1.0 - x - y) / y];
    let f = |t: f64| {
        if t > (24.0f64 / 116.0).powi(3) {
            t.powf(1.0 / 3.0)
        } else {
            (841.0 / 108.0) * t + 16.0 / 116.0
        }
    };
    let (fx, fy, fz) = (
        f(xyz[0] / white[0]),
        f(xyz[1] / white[1]),
        f(xyz[2] / white[2]),
    );
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// CIEDE2000 colour difference (Sharma, Wu and Dalal's formulation, kL = kC = kH = 1).
pub fn ciede2000(lab1: [f64; 3], lab2: [f64; 3]) -> f64 {
    let [l1, a1, b1] = lab1;
    let [l2, a2, b2] = lab2;
    let c_bar = (a1.hypot(b1) + a2.hypot(b2)) / 2.0;
    let c_bar7 = c_bar.powi(7);
    let g = 0.5 * (1.0 - (c_bar7 / (c_bar7 + 25f64.powi(7))).sqrt());
    let (ap1, ap2) = ((1.0 + g) * a1, (1.0 + g) * a2);
    let (cp1, cp2) = (ap1.hypot(b1), ap2.hypot(b2));
    let hue = |b: f64, ap: f64| {
        if b == 0.0 && ap == 0.0 {
            0.0
        } else {
            b.atan2(ap).to_degrees().rem_euclid(360.0)
        }
    };
    let (hp1, hp2) = (hue(b1, ap1), hue(b2, ap2));
    let dl = l2 - l1;
    let dc = cp2 - cp1;
    let cprod = cp1 * cp2;
    let dh_raw = hp2 - hp1;
    let dh = if cprod == 0.0 {
        0.0
    } else if dh_raw.abs() <= 180.0 {
        dh_raw
    } else if dh_raw > 180.0 {
        dh_raw - 360.0
    } else {
        dh_raw + 360.0
    };
    let d_big_h = 2.0 * cprod.sqrt() * (dh / 2.0).to_radians().sin();
    let l_bar = (l1 + l2) / 2.0;
    let cp_bar = (cp1 + cp2) / 2.0;
    let hsum = hp1 + hp2;
    let h_bar = if cprod == 0.0 {
        hsum
    } else if (hp1 - hp2).abs() <= 180.0 {
        hsum / 2.0
    } else if hsum < 360.0 {
        (hsum + 360.0) / 2.0
    } else {
        (hsum - 360.0) / 2.0
    };
    let t = 1.0 - 0.17 * (h_bar - 30.0).to_radians().cos()
        + 0.24 * (2.0 * h_bar).to_radians().cos()
        + 0.32 * (3.0 * h_bar + 6.0).to_radians().cos()
        - 0.20 * (4.0 * h_bar - 63.0).to_radians().cos();
    let d_theta = 30.0 * (-((h_bar - 275.0) / 25.0).powi(2)).exp();
    let cp_bar7 = cp_bar.powi(7);
    let r_c = 2.0 * (cp_bar7 / (cp_bar7 + 25f64.powi(7))).sqrt();
    let l50 = (l_bar - 50.0).powi(2);
    let s_l = 1.0 + 0.015 * l50 / (20.0 + l50).sqrt();
    let s_c = 1.0 + 0.045 * cp_bar;
    let s_h = 1.0 + 0.015 * cp_bar * t;
    let r_t = -(2.0 * d_theta).to_radians().sin() * r_c;
    let (tl, tc, th) = (dl / s_l, dc / s_c, d_big_h / s_h);
    (tl * tl + tc * tc + th * th + r_t * tc * th).sqrt()
}

/// Where the error of an output lies: PSNR of the output with its luma replaced by the truth's
/// (so only its chroma is wrong) and with its chroma replaced by the truth's (only its luma is
/// wrong), in BT.601 full-range YUV; and how colourful output and truth are (mean of the
/// max - min channel, 0-255), since pixel losses make ambiguous colours pale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub psnr_chroma_only: f64,
    pub psnr_luma_only: f64,
    pub colourfulness: f64,
    pub truth_colourfulness: f64,
}

impl Split {
    /// The mean over images, as [`Metrics::mean`] (NaNs left out).
    pub fn mean(all: &[Split]) -> Split {
        let mean = |f: fn(&Split) -> f64| mean_ignoring_nan(all.iter().map(f));
        Split {
            psnr_chroma_only: mean(|s| s.psnr_chroma_only),
            psnr_luma_only: mean(|s| s.psnr_luma_only),
            colourfulness: mean(|s| s.colourfulness),
            truth_colourfulness: mean(|s| s.truth_colourfulness),
        }
    }
}

fn to_yuv(p: [u8; 3]) -> (f32, f32, f32) {
    let [r, g, b] = p.map(f32::from);
    rgb_to_yuv(r, g, b)
}

/// 8-bit RGB of a YUV triple, clamped and rounded as an image written to disk would be.
fn to_rgb8((y, u, v): (f32, f32, f32)) -> [f64; 3] {
    let (r, g, b) = yuv_to_rgb(y, u, v);
    [r, g, b].map(|c| f64::from(c.clamp(0.0, 255.0).round()))
}

/// The [`Split`] of `pred` against `truth` (images of one size, as [`compute`] checks).
pub fn split(pred: &RgbImage, truth: &RgbImage, mask: Option<&[bool]>) -> Split {
    let (mut se_chroma, mut se_luma, mut col, mut truth_col, mut n) = (0.0, 0.0, 0.0, 0.0, 0usize);
    let spread = |p: [u8; 3]| f64::from(p.iter().max().unwrap() - p.iter().min().unwrap());
    for (p, t) in counted(pred, truth, mask) {
        let (yp, yt) = (to_yuv(p), to_yuv(t));
        let chroma_only = to_rgb8((yt.0, yp.1, yp.2));
        let luma_only = to_rgb8((yp.0, yt.1, yt.2));
        for c in 0..3 {
            let tc = f64::from(t[c]);
            se_chroma += (chroma_only[c] - tc).powi(2);
            se_luma += (luma_only[c] - tc).powi(2);
        }
        col += spread(p);
        truth_col += spread(t);
        n += 1;
    }
    if n == 0 {
        return Split {
            psnr_chroma_only: f64::NAN,
            psnr_luma_only: f64::NAN,
            colourfulness: f64::NAN,
            truth_colourfulness: f64::NAN,
        };
    }
    let count = n as f64;
    Split {
        psnr_chroma_only: psnr_from_mse(se_chroma / (3.0 * count)),
        psnr_luma_only: psnr_from_mse(se_luma / (3.0 * count)),
        colourfulness: col / count,
        truth_colourfulness: truth_col / count,
    }
}

/// Mean CIEDE2000 and CIE76 Delta E over the counted pixels.
pub fn delta_e(pred: &RgbImage, truth: &RgbImage, mask: Option<&[bool]>) -> (f64, f64) {
    let table = srgb_decode_table();
    let (mut s2000, mut s76, mut count) = (0.0f64, 0.0f64, 0usize);
    for (p, t) in counted(pred, truth, mask) {
        let lp = srgb8_to_lab(p, &table);
        let lt = srgb8_to_lab(t, &table);
        s2000 += ciede2000(lt, lp);
        s76 += ((lp[0] - lt[0]).powi(2) + (lp[1] - lt[1]).powi(2) + (lp[2] - lt[2]).powi(2)).sqrt();
        count += 1;
    }
    if count == 0 {
        return (f64::NAN, f64::NAN);
    }
    (s2000 / count as f64, s76 / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_puts_the_error_where_it_is() {
        let truth = RgbImage::from_fn(16, 12, |x, y| {
            image::Rgb([(40 + 9 * x) as u8, (60 + 7 * y) as u8, (150 - 5 * x) as u8])
        });
        // The truth's luma without its colour: all the error is chroma.
        let gray = RgbImage::from_fn(16, 12, |x, y| {
            let y = to_yuv(truth.get_pixel(x, y).0).0.round() as u8;
            image::Rgb([y, y, y])
        });
        let s = split(&gray, &truth, None);
        assert!(s.psnr_luma_only > 45.0, "{s:?}");
        let whole = compute(&gray, &truth, None).unwrap().psnr;
        assert!((s.psnr_chroma_only - whole).abs() < 0.5, "{s:?} vs {whole}");
        assert!(
            s.colourfulness < 1.0 && s.truth_colourfulness > 30.0,
            "{s:?}"
        );
        // The truth 40 levels brighter: all the error is luma.
        let bright = RgbImage::from_fn(16, 12, |x, y| {
            image::Rgb(truth.get_pixel(x, y).0.map(|v| v + 40))
        });
        let s = split(&bright, &truth, None);
        assert!(
            s.psnr_chroma_only > 45.0 && (s.psnr_luma_only - 16.0).abs() < 0.3,
            "{s:?}"
        );
        // Masked out everywhere: nothing to say.
        assert!(split(&bright, &truth, Some(&[false; 192]))
            .psnr_luma_only
            .is_nan());
    }

    #[test]
    fn ciede2000_matches_sharmas_published_pairs() {
        // Rows of Sharma, Wu & Dalal (2005), Table 1: Lab1, Lab2, Delta E 2000.
        let cases = [
            ([50.0, 2.6772, -79.7751], [50.0, 0.0, -82.7485], 2.0425),
            ([50.0, -1.3802, -84.2814], [50.0, 0.0, -82.7485], 1.0000),
            ([50.0, 2.5, 0.0], [50.0, 0.0, -2.5], 4.3065),
            ([50.0, 2.5, 0.0], [73.0, 25.0, -18.0], 27.1492),
            ([50.0, 2.5, 0.0], [50.0, 3.1736, 0.5854], 1.0000),
            (
                [60.2574, -34.0099, 36.2677],
                [60.4626, -34.1751, 39.4387],
                1.2644,
            ),
            (
                [22.7233, 20.0904, -46.6940],
                [23.0331, 14.9730, -42.5619],
                2.0373,
            ),
            (
                [2.0776, 0.0795, -1.1350],
                [0.9033, -0.0636, -0.5514],
                0.9082,
            ),
        ];
        for (a, b, want) in cases {
            let got = ciede2000(a, b);
            assert!((got - want).abs() < 5e-5, "{a:?} {b:?}: {got} != {want}");
            assert!(
                (ciede2000(b, a) - got).abs() < 1e-9,
                "CIEDE2000 must be symmetric"
            );
        }
    }

    #[test]
    fn white_is_lightness_100() {
        let lab = srgb8_to_lab([255, 255, 255], &srgb_decode_table());
        assert!((lab[0] - 100.0).abs() < 1e-9);
    }

    #[test]
    fn identical_images_are_perfect() {
        let img = RgbImage::from_fn(20, 16, |x, y| {
            image::Rgb([(x * 12) as u8, (y * 15) as u8, 90])
        });
        let m = compute(&img, &img, None).unwrap();
        assert!(m.psnr.is_infinite());
        assert!((m.ssim - 1.0).abs() < 1e-12);
        assert_eq!(
            (m.rmse, m.mae, m.delta_e2000, m.delta_e76),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert!(m.ae.abs() < 1e-6);
    }

    #[test]
    fn mask_restricts_the_counted_pixels() {
        let a = RgbImage::from_pixel(4, 1, image::Rgb([100, 100, 100]));
        let mut b = a.clone();
        b.put_pixel(3, 0, image::Rgb([0, 0, 0]));
        let mask = [true, true, true, false];
        let m = compute(&a, &b, Some(&mask)).unwrap();
        assert_eq!(m.mae, 0.0);
        assert_eq!(compute(&a, &b, None).unwrap().mae, 25.0);
    }

    #[test]
    fn angle_skips_black_pixels() {
        let a = RgbImage::from_raw(2, 1, vec![0, 0, 0, 10, 0, 0]).unwrap();
        let b = RgbImage::from_raw(2, 1, vec![5, 5, 5, 0, 10, 0]).unwrap();
        assert!((angular_error(&a, &b, None) - 90.0).abs() < 1e-9);
        let black = RgbImage::new(2, 1);
        assert!(angular_error(&black, &b, None).is_nan());
    }

    #[test]
    fn mismatched_sizes_are_an_error() {
        let err = compute(&RgbImage::new(2, 2), &RgbImage::new(3, 2), None).unwrap_err();
        assert!(err.to_string().contains("2x2") && err.to_string().contains("3x2"));
    }

    #[test]
    fn reflect_matches_scipy() {
        let got: Vec<usize> = (-4..8).map(|i| reflect(i, 3)).collect();
        assert_eq!(got, vec![2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1]);
        assert_eq!(reflect(-7, 1), 0);
    }
}
