//! Per-camera calibration (`calibration/*.toml`): black level, gain or white level, flat field
//! and gamma turn a camera's raw NIR into what the models were trained on; white-balance gains or
//! a 3x3 matrix correct the output colour; detail-filter overrides. Also the fits behind
//! `nircolor calibrate flat|color`.

mod write;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Deserialize;
use toml::Spanned;

use crate::capture::{Backoff, CaptureError, CaptureSettings, CaptureStage};
use crate::detail::{box_mean, resize_bilinear, GuidedFilter};
use crate::images::planes::{Gray, Rgb};
use crate::images::read::{self, ImageFileError};
use crate::models::lstsq::{self, NormalEquations, Prior};
use crate::runtime::toml_file::{read_text, Checker, ConfigError};

pub use write::{update_file, write_color, write_flat_fit, write_flat_image};

/// What can go wrong deriving a calibration (`nircolor calibrate`); mistakes in a calibration
/// file itself are [`ConfigError`]s with its line.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error(transparent)]
    Image(#[from] ImageFileError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("{0} is not a folder; give a folder of frames (PNG, JPEG or TIFF)")]
    NoFolder(PathBuf),
    #[error("{source_name}: no frames to calibrate from; give a folder with images or a source that delivers frames")]
    NoFrames { source_name: String },
    #[error("{path}: {got_w}x{got_h}, but the first frame is {w}x{h}; every frame of a calibration must have one size")]
    SizeMismatch {
        path: PathBuf,
        got_w: usize,
        got_h: usize,
        w: usize,
        h: usize,
    },
    #[error("camera '{camera}' delivered {got} of {wanted} frames in {seconds} s ({why}); check the source or ask for fewer with --frames")]
    TooFewFrames {
        camera: String,
        got: usize,
        wanted: usize,
        seconds: u64,
        why: String,
    },
    #[error("the flat-field frames average {mean:.3} above the black level {black:.3}: too dark to measure a flat field; light the target brighter or lengthen the exposure (aim for about half of full scale)")]
    TooDark { mean: f32, black: f32 },
    #[error("the fitted flat field falls to {falloff:.3} of its peak: that is not a uniformly lit target (or the lens is covered in part); light the whole view evenly")]
    Uneven { falloff: f32 },
    #[error("{percent:.1}% of the flat-field pixels are saturated (at or above 98% of full scale); a clipped target hides the fall-off: lower the exposure or the light")]
    Saturated { percent: f32 },
    #[error("{size}: only {used} pixels are usable for a colour fit (reference neither clipped nor black, output not black); {needed} are needed: use a brighter, unclipped, colourful view")]
    NotEnoughPixels {
        size: String,
        used: usize,
        needed: usize,
    },
    #[error("the NIR frame is {nir_w}x{nir_h} and the reference photo {ref_w}x{ref_h}: their shapes differ, so they cannot be the same view; crop the reference to the camera's field of view")]
    ShapeMismatch {
        nir_w: usize,
        nir_h: usize,
        ref_w: usize,
        ref_h: usize,
    },
    #[error("cannot write {path}: {why}")]
    Write { path: PathBuf, why: String },
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawCalibration {
    black_level: Option<Spanned<f32>>,
    white_level: Option<Spanned<f32>>,
    gain: Option<Spanned<f32>>,
    gamma: Option<Spanned<f32>>,
    flat: Option<RawFlat>,
    color: Option<RawColor>,
    detail: Option<RawDetail>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawFlat {
    image: Option<Spanned<String>>,
    degree: Option<Spanned<u32>>,
    coefficients: Option<Spanned<Vec<f32>>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawColor {
    gains: Option<Spanned<Vec<f32>>>,
    matrix: Option<Spanned<Vec<Vec<f32>>>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawDetail {
    radius: Option<Spanned<usize>>,
    eps: Option<Spanned<f32>>,
}

/// The highest flat-field polynomial degree: beyond it the fit follows the target's texture
/// instead of the lens fall-off.
pub const MAX_FLAT_DEGREE: u32 = 8;

/// A flat field below this fraction of its peak would multiply that corner's noise more than
/// 20 times: such a flat is refused rather than applied.
const MIN_FLAT: f32 = 0.05;

/// The lens and illumination fall-off a camera sees on a uniformly lit target.
#[derive(Clone, Debug, PartialEq)]
pub enum Flat {
    /// `sum c_k x^i y^j` over `i + j <= degree`, with x and y in [-1, 1] across the frame and the
    /// terms in graded order: 1, x, y, x^2, xy, y^2, x^3, ...
    Poly { degree: u32, coefficients: Vec<f32> },
    /// An image of the fall-off, any size (it is stretched to the frame).
    Image { path: PathBuf, image: Gray },
}

/// The number of terms of a flat-field polynomial of `degree`.
pub fn poly_terms(degree: u32) -> usize {
    let d = degree as usize;
    (d + 1) * (d + 2) / 2
}

/// The polynomial's terms at (x, y), in [`Flat::Poly`]'s order.
fn monomials(x: f64, y: f64, degree: u32, out: &mut Vec<f64>) {
    out.clear();
    for d in 0..=degree as i32 {
        for j in 0..=d {
            out.push(x.powi(d - j) * y.powi(j));
        }
    }
}

/// Pixel centre `i` of `n` on the polynomial's [-1, 1] axis.
fn axis(i: usize, n: usize) -> f64 {
    2.0 * (i as f64 + 0.5) / n as f64 - 1.0
}

/// A flat-field polynomial's values at every pixel of `width x height`.
fn evaluate(degree: u32, coefficients: &[f32], width: usize, height: usize) -> Vec<f32> {
    let mut map = vec![0.0f32; width * height];
    map.par_chunks_mut(width.max(1))
        .enumerate()
        .for_each_init(Vec::new, |terms, (y, row)| {
            let fy = axis(y, height);
            for (x, v) in row.iter_mut().enumerate() {
                monomials(axis(x, width), fy, degree, terms);
                *v = terms
                    .iter()
                    .zip(coefficients)
                    .map(|(t, &c)| t * f64::from(c))
                    .sum::<f64>() as f32;
            }
        });
    map
}

impl Flat {
    /// The fall-off at `width x height`, scaled so its brightest pixel is 1.
    pub fn render(&self, width: usize, height: usize) -> Vec<f32> {
        let mut map = match self {
            Flat::Poly {
                degree,
                coefficients,
            } => evaluate(*degree, coefficients, width, height),
            Flat::Image { image, .. } => {
                resize_bilinear(&image.data, image.width, image.height, 1, width, height)
            }
        };
        let peak = map.iter().copied().fold(f32::MIN, f32::max);
        if peak > 0.0 {
            map.iter_mut().for_each(|v| *v /= peak);
        }
        map
    }
}

/// One camera's calibration, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    pub file: PathBuf,
    /// Subtracted first, as a fraction of full scale.
    pub black_level: f32,
    /// Multiplies the NIR after the black level: `gain`, or 1 / (white_level - black_level).
    pub gain: f32,
    /// The NIR becomes `v^(1/gamma)` after the flat field: 2.2 turns a linear sensor's output
    /// into the display-like brightness of the training photos; 1 leaves it.
    pub gamma: f32,
    pub flat: Option<Flat>,
    /// Output colour = matrix x (R, G, B), rows R, G, B; white-balance gains are its diagonal.
    pub color: Option<[[f32; 3]; 3]>,
    /// Detail-filter overrides for this camera.
    pub radius: Option<usize>,
    pub eps: Option<f32>,
}

/// The span of `[name]` (or `name =`) in `text`, for errors about a whole table.
fn table_span(text: &str, name: &str) -> Range<usize> {
    [format!("[{name}]"), format!("{name} ="), format!("{name}=")]
        .iter()
        .find_map(|p| text.find(p.as_str()))
        .map_or(0..0, |i| i..i + 1)
}

impl Calibration {
    /// No correction at all.
    pub fn identity(file: &Path) -> Calibration {
        Calibration {
            file: file.to_path_buf(),
            black_level: 0.0,
            gain: 1.0,
            gamma: 1.0,
            flat: None,
            color: None,
            radius: None,
            eps: None,
        }
    }

    /// Reads and checks `file` (a flat-field image is read too).
    pub fn load(file: &Path) -> Result<Calibration, ConfigError> {
        Calibration::parse(file, &read_text(file, "the calibration file")?)
    }

    /// Checks `text` as if read from `file` (a flat image's path resolves against its folder).
    pub fn parse(file: &Path, text: &str) -> Result<Calibration, ConfigError> {
        let c = Checker { file, text };
        let raw: RawCalibration = c.parse()?;
        let mut cal = Calibration::identity(file);
        if let Some(b) = &raw.black_level {
            cal.black_level = c.range(b, "black_level", 0.0, 0.5)?;
        }
        match (&raw.gain, &raw.white_level) {
            (Some(g), Some(_)) => {
                return Err(c.err(
                    &g.span(),
                    "gain",
                    "give gain or white_level, not both (white_level = w means gain = 1 / (w - black_level))",
                ))
            }
            (Some(g), None) => cal.gain = c.range(g, "gain", 0.1, 16.0)?,
            (None, Some(w)) => {
                let white = c.range(w, "white_level", 0.0, 1.0)?;
                if white < cal.black_level + 0.05 {
                    return Err(c.err(
                        &w.span(),
                        "white_level",
                        format!(
                            "{white} must be at least 0.05 above black_level ({})",
                            cal.black_level
                        ),
                    ));
                }
                cal.gain = 1.0 / (white - cal.black_level);
            }
            (None, None) => {}
        }
        if let Some(g) = &raw.gamma {
            cal.gamma = c.range(g, "gamma", 0.2, 5.0)?;
        }
        if let Some(f) = &raw.flat {
            cal.flat = Some(Self::flat(&c, f)?);
        }
        if let Some(col) = &raw.color {
            cal.color = Some(Self::color(&c, col)?);
        }
        if let Some(d) = &raw.detail {
            if let Some(r) = &d.radius {
                cal.radius = Some(c.range(r, "detail.radius", 1, 64)?);
            }
            if let Some(e) = &d.eps {
                let eps = *e.get_ref();
                if !(eps > 0.0 && eps <= 1.0) {
                    return Err(c.err(
                        &e.span(),
                        "detail.eps",
                        format!("{eps} is out of range; allowed: above 0, at most 1 (1e-5 to 1e-1 are typical)"),
                    ));
                }
                cal.eps = Some(eps);
            }
        }
        Ok(cal)
    }

    fn flat(c: &Checker, f: &RawFlat) -> Result<Flat, ConfigError> {
        match (&f.image, &f.degree, &f.coefficients) {
            (Some(image), None, None) => {
                let path = c.path(image.get_ref());
                let gray = read::read_nir(&path)
                    .map_err(|e| c.err(&image.span(), "flat.image", e.to_string()))?;
                if gray.width < 2 || gray.height < 2 {
                    return Err(c.err(
                        &image.span(),
                        "flat.image",
                        format!(
                            "{} is {}x{}; a flat-field image needs at least 2x2 pixels",
                            path.display(),
                            gray.width,
                            gray.height
                        ),
                    ));
                }
                Ok(Flat::Image { path, image: gray })
            }
            (None, Some(degree), Some(coefficients)) => {
                let d = c.range(degree, "flat.degree", 0, MAX_FLAT_DEGREE)?;
                let k = coefficients.get_ref();
                if k.len() != poly_terms(d) {
                    return Err(c.err(
                        &coefficients.span(),
                        "flat.coefficients",
                        format!(
                            "{} coefficients given; degree {d} has {} terms (1, x, y, x^2, xy, y^2, ...)",
                            k.len(),
                            poly_terms(d)
                        ),
                    ));
                }
                if k.iter().any(|v| !v.is_finite()) {
                    return Err(c.err(
                        &coefficients.span(),
                        "flat.coefficients",
                        "every coefficient must be a finite number",
                    ));
                }
                Ok(Flat::Poly {
                    degree: d,
                    coefficients: k.clone(),
                })
            }
            _ => {
                let span = f
                    .image
                    .as_ref()
                    .map(Spanned::span)
                    .or_else(|| f.degree.as_ref().map(Spanned::span))
                    .or_else(|| f.coefficients.as_ref().map(Spanned::span))
                    .unwrap_or_else(|| table_span(c.text, "flat"));
                Err(c.err(
                    &span,
                    "flat",
                    "give either image = \"FILE\" or degree and coefficients (what `nircolor calibrate flat` writes)",
                ))
            }
        }
    }

    fn color(c: &Checker, col: &RawColor) -> Result<[[f32; 3]; 3], ConfigError> {
        let check = |v: f32, span: &Range<usize>, key: &str, lo: f32| {
            if v.is_finite() && v >= lo && v <= 8.0 {
                Ok(v)
            } else {
                Err(c.err(
                    span,
                    key,
                    format!("{v} is out of range; allowed: {lo} to 8"),
                ))
            }
        };
        match (&col.gains, &col.matrix) {
            (Some(g), None) => {
                let v = g.get_ref();
                if v.len() != 3 {
                    return Err(c.err(
                        &g.span(),
                        "color.gains",
                        format!("{} values given; give 3: [red, green, blue]", v.len()),
                    ));
                }
                let mut m = [[0.0; 3]; 3];
                for i in 0..3 {
                    m[i][i] = check(v[i], &g.span(), "color.gains", 0.0)?;
                }
                Ok(m)
            }
            (None, Some(mat)) => {
                let rows = mat.get_ref();
                if rows.len() != 3 || rows.iter().any(|r| r.len() != 3) {
                    return Err(c.err(
                        &mat.span(),
                        "color.matrix",
                        "give 3 rows of 3 numbers: [[rr, rg, rb], [gr, gg, gb], [br, bg, bb]]",
                    ));
                }
                let mut m = [[0.0; 3]; 3];
                for i in 0..3 {
                    for j in 0..3 {
                        m[i][j] = check(rows[i][j], &mat.span(), "color.matrix", -8.0)?;
                    }
                }
                Ok(m)
            }
            (Some(g), Some(_)) => Err(c.err(
                &g.span(),
                "color",
                "give gains or matrix, not both (gains are a matrix's diagonal)",
            )),
            (None, None) => Err(c.err(
                &table_span(c.text, "color"),
                "color",
                "give gains = [r, g, b] or matrix = [[...], [...], [...]]",
            )),
        }
    }

    /// The calibration made ready for frames of `width x height`: the flat field is rendered
    /// once and checked there.
    pub fn prepare(&self, width: usize, height: usize) -> Result<Corrector, ConfigError> {
        let flat = match &self.flat {
            Some(f) => {
                let map = f.render(width, height);
                let (i, min) = map
                    .iter()
                    .copied()
                    .enumerate()
                    .fold((0, f32::MAX), |a, (i, v)| if v < a.1 { (i, v) } else { a });
                if min.is_nan() || min < MIN_FLAT {
                    return Err(ConfigError {
                        file: self.file.clone(),
                        line: 0,
                        key: "flat".into(),
                        message: format!(
                            "the flat field falls to {min:.3} of its peak at ({}, {}) of a {width}x{height} frame; below {MIN_FLAT} it would amplify noise more than 20x: re-run `nircolor calibrate flat` on this camera",
                            i % width.max(1),
                            i / width.max(1)
                        ),
                    });
                }
                Some(map.iter().map(|v| self.gain / v).collect())
            }
            None => None,
        };
        Ok(Corrector {
            calibration: self.clone(),
            width,
            height,
            flat,
            gamma: (self.gamma != 1.0).then(|| GammaLut::new(self.gamma)),
        })
    }
}

/// `v^(1/gamma)` on [0, 1] by table: a `powf` per pixel costs milliseconds per frame.
#[derive(Clone, Debug)]
struct GammaLut(Vec<f32>);

impl GammaLut {
    /// Entries across [0, 1]; linear interpolation between them is within 2e-3 of `powf` for
    /// gamma up to 5 (the error peaks in the first step, where the curve is steepest).
    const STEPS: usize = 16384;

    fn new(gamma: f32) -> GammaLut {
        let inv = 1.0 / f64::from(gamma);
        GammaLut(
            (0..=Self::STEPS + 1)
                .map(|i| ((i.min(Self::STEPS) as f64 / Self::STEPS as f64).powf(inv)) as f32)
                .collect(),
        )
    }

    fn apply(&self, v: f32) -> f32 {
        let x = v.clamp(0.0, 1.0) * Self::STEPS as f32;
        let i = x as usize;
        let f = x - i as f32;
        self.0[i] + f * (self.0[i + 1] - self.0[i])
    }
}

/// A calibration ready to apply to one camera's frames.
#[derive(Clone, Debug)]
pub struct Corrector {
    calibration: Calibration,
    width: usize,
    height: usize,
    /// gain / flat per pixel at the prepared size.
    flat: Option<Vec<f32>>,
    gamma: Option<GammaLut>,
}

impl Corrector {
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// Corrects a NIR frame in place: black level, gain, flat field, clamp to [0, 1], gamma.
    pub fn nir(&self, nir: &mut Gray) {
        let cal = &self.calibration;
        if cal.black_level == 0.0 && cal.gain == 1.0 && cal.flat.is_none() && self.gamma.is_none() {
            return;
        }
        // Frames come at the camera's configured size; any other size gets its own rendering.
        let resized;
        let flat = match (&self.flat, &cal.flat) {
            (Some(f), _) if (nir.width, nir.height) == (self.width, self.height) => Some(f),
            (_, Some(f)) => {
                resized = f
                    .render(nir.width, nir.height)
                    .iter()
                    .map(|v| cal.gain / v.max(MIN_FLAT))
                    .collect::<Vec<_>>();
                Some(&resized)
            }
            _ => None,
        };
        let (black, gain, gamma) = (cal.black_level, cal.gain, self.gamma.as_ref());
        let width = nir.width.max(1);
        nir.data
            .par_chunks_mut(width)
            .enumerate()
            .for_each(|(y, row)| {
                let scale = flat.map(|f| &f[y * width..][..row.len()]);
                for (x, v) in row.iter_mut().enumerate() {
                    let g = scale.map_or(gain, |s| s[x]);
                    let c = ((*v - black) * g).clamp(0.0, 1.0);
                    *v = gamma.map_or(c, |l| l.apply(c));
                }
            });
    }

    /// Corrects output colour in place with the colour matrix (clamped to [0, 1]).
    pub fn colour(&self, rgb: &mut Rgb) {
        let Some(m) = self.calibration.color else {
            return;
        };
        let n = rgb.width * rgb.height;
        let (r, rest) = rgb.data.split_at_mut(n);
        let (g, b) = rest.split_at_mut(n);
        let chunk = rgb.width.max(1);
        r.par_chunks_mut(chunk)
            .zip(g.par_chunks_mut(chunk))
            .zip(b.par_chunks_mut(chunk))
            .for_each(|((r, g), b)| {
                for i in 0..r.len() {
                    let v = [r[i], g[i], b[i]];
                    let out = m
                        .map(|row| (row[0] * v[0] + row[1] * v[1] + row[2] * v[2]).clamp(0.0, 1.0));
                    (r[i], g[i], b[i]) = (out[0], out[1], out[2]);
                }
            });
    }

    /// The detail filter for this camera: `base` with this calibration's overrides.
    pub fn filter(&self, base: GuidedFilter) -> GuidedFilter {
        GuidedFilter {
            radius: self.calibration.radius.unwrap_or(base.radius),
            eps: self.calibration.eps.unwrap_or(base.eps),
        }
    }
}

/// Reads every image of `folder` (name order) as NIR frames of one size.
pub fn frames_from_folder(folder: &Path) -> Result<Vec<Gray>, CalibrateError> {
    if !folder.is_dir() {
        return Err(CalibrateError::NoFolder(folder.to_path_buf()));
    }
    let mut frames: Vec<Gray> = Vec::new();
    for path in read::list_images(folder)?.values() {
        let frame = read::read_nir(path)?;
        if let Some(first) = frames.first() {
            if (frame.width, frame.height) != (first.width, first.height) {
                return Err(CalibrateError::SizeMismatch {
                    path: path.clone(),
                    got_w: frame.width,
                    got_h: frame.height,
                    w: first.width,
                    h: first.height,
                });
            }
        }
        frames.push(frame);
    }
    if frames.is_empty() {
        return Err(CalibrateError::NoFrames {
            source_name: folder.display().to_string(),
        });
    }
    Ok(frames)
}

/// Captures `count` frames from a camera (after `skip` frames, while its exposure settles).
pub fn frames_from_camera(
    spec: &CaptureSettings,
    count: usize,
    skip: usize,
    timeout: Duration,
) -> Result<Vec<Gray>, CalibrateError> {
    let (tx, rx) = crate::runtime::queue::newest_wins(count + skip + 1);
    let camera = CaptureStage::spawn(spec.clone(), tx, Backoff::default())?;
    let deadline = Instant::now() + timeout;
    let mut frames = Vec::new();
    let mut seen = 0;
    while frames.len() < count {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(f) => {
                seen += 1;
                if seen > skip {
                    frames.push(f.luma);
                }
            }
            Err(_) => break,
        }
    }
    let why = camera
        .status()
        .last_error()
        .unwrap_or_else(|| "no error reported".into());
    camera.stop();
    if frames.len() < count {
        return Err(CalibrateError::TooFewFrames {
            camera: spec.id.clone(),
            got: frames.len(),
            wanted: count,
            seconds: timeout.as_secs(),
            why,
        });
    }
    Ok(frames)
}

/// The per-pixel mean of frames of one size (averaging removes sensor noise from a flat field).
pub fn mean_frame(frames: &[Gray]) -> Gray {
    let first = &frames[0];
    let mut sum = vec![0.0f64; first.data.len()];
    for f in frames {
        sum.iter_mut()
            .zip(&f.data)
            .for_each(|(s, &v)| *s += f64::from(v));
    }
    let n = frames.len() as f64;
    Gray::new(
        first.width,
        first.height,
        sum.iter().map(|s| (s / n) as f32).collect(),
    )
}

/// A fitted flat field and how well it fits.
#[derive(Clone, Debug, PartialEq)]
pub struct FlatFit {
    pub flat: Flat,
    /// RMS of the fit's residual, relative to the mean level.
    pub rms: f32,
    /// The darkest point of the fitted flat relative to its brightest.
    pub falloff: f32,
}

/// Checks that `mean` (minus `black`) is exposed well enough to measure a flat field from.
fn check_exposure(mean: &Gray, black: f32) -> Result<(), CalibrateError> {
    let n = mean.data.len().max(1) as f32;
    let level = mean.data.iter().sum::<f32>() / n - black;
    if level.is_nan() || level < 0.05 {
        return Err(CalibrateError::TooDark { mean: level, black });
    }
    let clipped = mean.data.iter().filter(|&&v| v >= 0.98).count() as f32 / n;
    if clipped > 0.005 {
        return Err(CalibrateError::Saturated {
            percent: clipped * 100.0,
        });
    }
    Ok(())
}

/// Fits a polynomial flat field of `degree` to the mean of frames of a uniformly lit target.
pub fn fit_flat(mean: &Gray, black: f32, degree: u32) -> Result<FlatFit, CalibrateError> {
    check_exposure(mean, black)?;
    let (w, h) = (mean.width, mean.height);
    // About 40k samples on a grid: plenty for at most 45 coefficients, fast at any frame size.
    let step = ((w * h) as f64 / 40_000.0).sqrt().max(1.0) as usize;
    let terms = poly_terms(degree);
    let mut ne = NormalEquations::new(terms, 1);
    let mut t = Vec::with_capacity(terms);
    for y in (0..h).step_by(step) {
        for x in (0..w).step_by(step) {
            monomials(axis(x, w), axis(y, h), degree, &mut t);
            ne.add(&t, &[f64::from(mean.data[y * w + x] - black)]);
        }
    }
    let coefficients: Vec<f32> = lstsq::solve(&[ne], 1e-9, None)[0]
        .iter()
        .map(|&v| v as f32)
        .collect();
    // The residual is measured at the target's level; the flat is stored with peak 1.
    let fitted = evaluate(degree, &coefficients, w, h);
    let peak = fitted.iter().copied().fold(f32::MIN, f32::max);
    let level = mean.data.iter().sum::<f32>() / (w * h) as f32 - black;
    let sq: f64 = fitted
        .iter()
        .zip(&mean.data)
        .map(|(f, v)| f64::from((f - (v - black)) / level).powi(2))
        .sum();
    let falloff = fitted.iter().copied().fold(f32::MAX, f32::min) / peak;
    if !(peak > 0.0 && falloff >= MIN_FLAT) {
        return Err(CalibrateError::Uneven { falloff });
    }
    Ok(FlatFit {
        flat: Flat::Poly {
            degree,
            coefficients: coefficients.iter().map(|c| c / peak).collect(),
        },
        rms: (sq / (w * h) as f64).sqrt() as f32,
        falloff,
    })
}
/// The mean of flat-field frames as a smooth image, peak 1: for fall-off a low-degree
/// polynomial cannot follow (a dirty lens, an off-centre LED ring).
pub fn flat_image(mean: &Gray, black: f32) -> Result<Gray, CalibrateError> {
    check_exposure(mean, black)?;
    // A box blur of 1/40 of the frame irons out sensor noise and target texture but keeps
    // fall-off, which changes over much larger distances.
    let radius = (mean.width.min(mean.height) / 40).max(1);
    let lifted: Vec<f32> = mean.data.iter().map(|v| (v - black).max(0.0)).collect();
    let mut smooth = box_mean(&lifted, mean.width, mean.height, radius);
    let peak = smooth.iter().copied().fold(f32::MIN, f32::max).max(1e-6);
    smooth.iter_mut().for_each(|v| *v /= peak);
    Ok(Gray::new(mean.width, mean.height, smooth))
}

/// A fitted output-colour correction and how much it helped on the fitting pair.
#[derive(Clone, Debug, PartialEq)]
pub struct ColorFit {
    pub matrix: [[f32; 3]; 3],
    /// RMS error on the 0-255 scale over the pixels used, before and after the correction.
    pub rmse_before: f32,
    pub rmse_after: f32,
    pub pixels: usize,
}

/// The fewest usable pixels a colour fit accepts.
pub const MIN_COLOR_PIXELS: usize = 1000;

/// Fits the output colour correction mapping `output` (the model's colour for a NIR frame) onto
/// `reference` (a colour photo of the same view, resized to the output's size if its shape
/// matches): a full 3x3 matrix, or only the diagonal with `gains_only`. The fit is pulled
/// slightly toward the identity so a near-gray output (whose channels are collinear) still gets
/// a well-posed, moderate matrix.
pub fn fit_color(
    output: &Rgb,
    reference: &Rgb,
    gains_only: bool,
) -> Result<ColorFit, CalibrateError> {
    let (w, h) = (output.width, output.height);
    let aspect = |a: usize, b: usize| a as f64 / b.max(1) as f64;
    if (aspect(w, h) / aspect(reference.width, reference.height) - 1.0).abs() > 0.02 {
        return Err(CalibrateError::ShapeMismatch {
            nir_w: w,
            nir_h: h,
            ref_w: reference.width,
            ref_h: reference.height,
        });
    }
    let reference = if (reference.width, reference.height) == (w, h) {
        reference.clone()
    } else {
        Rgb::new(
            w,
            h,
            resize_bilinear(&reference.data, reference.width, reference.height, 3, w, h),
        )
    };
    let n = w * h;
    let px = |img: &Rgb, i: usize| [img.data[i], img.data[n + i], img.data[2 * n + i]];
    let usable: Vec<usize> = (0..n)
        .filter(|&i| {
            let r = px(&reference, i);
            let o = px(output, i);
            r.iter().all(|&v| v > 0.02 && v < 0.98) && o.iter().sum::<f32>() > 0.03
        })
        .collect();
    if usable.len() < MIN_COLOR_PIXELS {
        return Err(CalibrateError::NotEnoughPixels {
            size: format!("{w}x{h}"),
            used: usable.len(),
            needed: MIN_COLOR_PIXELS,
        });
    }
    let mut matrix = [[0.0f32; 3]; 3];
    if gains_only {
        for (c, row) in matrix.iter_mut().enumerate() {
            let (mut or, mut oo) = (0.0f64, 0.0f64);
            for &i in &usable {
                let (o, r) = (f64::from(px(output, i)[c]), f64::from(px(&reference, i)[c]));
                or += o * r;
                oo += o * o;
            }
            let lambda = 1e-3 * oo;
            row[c] = ((or + lambda) / (oo + lambda).max(1e-12)) as f32;
        }
    } else {
        let mut ne = NormalEquations::new(3, 3);
        for &i in &usable {
            let o = px(output, i).map(f64::from);
            let r = px(&reference, i).map(f64::from);
            ne.add(&o, &r);
        }
        let identity = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let strength = 1e-3 * ne.mean_diagonal();
        let wts = &lstsq::solve(
            &[ne],
            0.0,
            Some(Prior {
                weights: &identity,
                strength,
            }),
        )[0];
        // The solve's weights are inputs x outputs; the matrix is outputs x inputs.
        for (row, out) in matrix.iter_mut().enumerate() {
            for (col, v) in out.iter_mut().enumerate() {
                *v = wts[col * 3 + row] as f32;
            }
        }
    }
    let rmse = |m: Option<&[[f32; 3]; 3]>| {
        let mut sq = 0.0f64;
        for &i in &usable {
            let o = px(output, i);
            let r = px(&reference, i);
            for c in 0..3 {
                let v = m.map_or(o[c], |m| {
                    (m[c][0] * o[0] + m[c][1] * o[1] + m[c][2] * o[2]).clamp(0.0, 1.0)
                });
                sq += f64::from((v - r[c]) * 255.0).powi(2);
            }
        }
        (sq / (3 * usable.len()) as f64).sqrt() as f32
    };
    Ok(ColorFit {
        rmse_before: rmse(None),
        rmse_after: rmse(Some(&matrix)),
        matrix,
        pixels: usable.len(),
    })
}

#[cfg(test)]
mod tests;
