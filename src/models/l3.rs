//! `l3`, Local Linear Learned: each pixel is classified by local NIR features (intensity level x
//! local contrast x surrounding context level), and each class applies its own learned linear
//! filter over a small NIR patch, fitted by least squares. Tiny, fast and classical.

use rayon::prelude::*;

use crate::detail::box_mean;
use crate::images::planes::{Gray, Rgb};
use crate::models::colorizer::Colorizer;
use crate::models::weights::{Weights, WeightsError};

pub const ARCH: &str = "l3";

/// Limits of an L3 model's shape, the same for training and loading.
pub const MAX_PATCH_RADIUS: usize = 5;
pub const MAX_CONTEXT_RADIUS: usize = 64;
/// Classes along each axis (levels, contrasts, contexts).
pub const MAX_BINS: usize = 64;

/// The shape of an L3 model, chosen before fitting.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct L3Config {
    /// Intensity-level classes (patch mean), split at training-data quantiles.
    pub levels: usize,
    /// Local-contrast classes (patch standard deviation).
    pub contrasts: usize,
    /// Context classes (mean over a wide window): tells e.g. bright foliage from bright sky.
    pub contexts: usize,
    /// The linear filter covers a (2r+1)^2 patch; the level and contrast use the same window.
    pub patch_radius: usize,
    pub context_radius: usize,
}

impl Default for L3Config {
    fn default() -> Self {
        L3Config {
            levels: 8,
            contrasts: 4,
            contexts: 2,
            patch_radius: 2,
            context_radius: 16,
        }
    }
}

impl L3Config {
    pub fn classes(&self) -> usize {
        self.levels * self.contrasts * self.contexts
    }
    /// Bias plus one weight per patch pixel.
    pub fn features(&self) -> usize {
        (2 * self.patch_radius + 1).pow(2) + 1
    }
}

/// A fitted L3 model.
#[derive(Clone, Debug, PartialEq)]
pub struct L3 {
    pub config: L3Config,
    pub level_edges: Vec<f32>,
    pub contrast_edges: Vec<f32>,
    pub context_edges: Vec<f32>,
    /// classes x features x 3, row-major.
    pub weights: Vec<f32>,
}

/// The per-pixel classification features of one image.
pub(crate) struct Features {
    pub(crate) level: Vec<f32>,
    pub(crate) contrast: Vec<f32>,
    pub(crate) context: Vec<f32>,
}

pub(crate) fn features(nir: &Gray, cfg: &L3Config) -> Features {
    let (w, h) = (nir.width, nir.height);
    let level = box_mean(&nir.data, w, h, cfg.patch_radius);
    let squares: Vec<f32> = nir.data.iter().map(|v| v * v).collect();
    let mean_sq = box_mean(&squares, w, h, cfg.patch_radius);
    let contrast = level
        .iter()
        .zip(&mean_sq)
        .map(|(m, s)| (s - m * m).max(0.0).sqrt())
        .collect();
    let context = box_mean(&nir.data, w, h, cfg.context_radius);
    Features {
        level,
        contrast,
        context,
    }
}

fn bin(v: f32, edges: &[f32]) -> usize {
    edges.partition_point(|&e| e <= v)
}

/// Edges at the 1/bins, 2/bins, ... quantiles of `values` (which it sorts).
pub(crate) fn quantile_edges(values: &mut [f32], bins: usize) -> Vec<f32> {
    values.sort_unstable_by(f32::total_cmp);
    if values.is_empty() {
        return (1..bins).map(|i| i as f32 / bins as f32).collect();
    }
    (1..bins)
        .map(|i| values[(i * values.len() / bins).min(values.len() - 1)])
        .collect()
}

/// The patch around (x, y), edge pixels repeated, after a leading 1 for the bias.
pub(crate) fn patch(nir: &Gray, x: usize, y: usize, r: usize, out: &mut [f64]) {
    out[0] = 1.0;
    let mut k = 1;
    for dy in 0..=2 * r {
        let row = (y + dy).saturating_sub(r).min(nir.height - 1) * nir.width;
        for dx in 0..=2 * r {
            let col = (x + dx).saturating_sub(r).min(nir.width - 1);
            out[k] = f64::from(nir.data[row + col]);
            k += 1;
        }
    }
}

impl L3 {
    pub(crate) fn class(&self, f: &Features, i: usize) -> usize {
        let c = &self.config;
        (bin(f.level[i], &self.level_edges) * c.contrasts
            + bin(f.contrast[i], &self.contrast_edges))
            * c.contexts
            + bin(f.context[i], &self.context_edges)
    }

    pub fn from_weights(w: &Weights) -> Result<L3, WeightsError> {
        w.expect_arch(ARCH)?;
        let (_, radii) = w.tensor("radii", &[Some(2)])?;
        let whole_within = |r: f32, max: usize| (0.0..=max as f32).contains(&r) && r.fract() == 0.0;
        if !whole_within(radii[0], MAX_PATCH_RADIUS) || !whole_within(radii[1], MAX_CONTEXT_RADIUS)
        {
            return Err(w.invalid(format!(
                "radii {radii:?}: the patch radius must be a whole number from 0 to {MAX_PATCH_RADIUS}, \
                 the context radius from 0 to {MAX_CONTEXT_RADIUS}"
            )));
        }
        let edges = |name| -> Result<Vec<f32>, WeightsError> {
            let (_, e) = w.tensor(name, &[None])?;
            if e.len() >= MAX_BINS {
                return Err(w.invalid(format!(
                    "'{name}' has {} edges; at most {} are allowed",
                    e.len(),
                    MAX_BINS - 1
                )));
            }
            if e.windows(2).any(|p| p[0] > p[1]) {
                return Err(w.invalid(format!("'{name}' is not sorted")));
            }
            Ok(e.to_vec())
        };
        let (level_edges, contrast_edges, context_edges) = (
            edges("level_edges")?,
            edges("contrast_edges")?,
            edges("context_edges")?,
        );
        let config = L3Config {
            levels: level_edges.len() + 1,
            contrasts: contrast_edges.len() + 1,
            contexts: context_edges.len() + 1,
            patch_radius: radii[0] as usize,
            context_radius: radii[1] as usize,
        };
        let (_, weights) = w.tensor(
            "weights",
            &[Some(config.classes()), Some(config.features()), Some(3)],
        )?;
        Ok(L3 {
            config,
            level_edges,
            contrast_edges,
            context_edges,
            weights: weights.to_vec(),
        })
    }

    pub fn to_weights(&self, card: serde_json::Value) -> Weights {
        let c = &self.config;
        let mut w = Weights::new(ARCH, card);
        w.insert(
            "radii",
            vec![2],
            vec![c.patch_radius as f32, c.context_radius as f32],
        );
        w.insert(
            "level_edges",
            vec![self.level_edges.len()],
            self.level_edges.clone(),
        );
        w.insert(
            "contrast_edges",
            vec![self.contrast_edges.len()],
            self.contrast_edges.clone(),
        );
        w.insert(
            "context_edges",
            vec![self.context_edges.len()],
            self.context_edges.clone(),
        );
        w.insert(
            "weights",
            vec![c.classes(), c.features(), 3],
            self.weights.clone(),
        );
        w
    }
}

impl Colorizer for L3 {
    fn name(&self) -> String {
        ARCH.into()
    }

    fn colorize(&self, nir: &Gray) -> Rgb {
        let (w, h) = (nir.width, nir.height);
        if w == 0 || h == 0 {
            return Rgb::new(w, h, Vec::new());
        }
        let f = features(nir, &self.config);
        let nf = self.config.features();
        let r = self.config.patch_radius;
        // Edge-repeating column lookup, so the tap loop has no clamping branches.
        let cols: Vec<usize> = (0..w + 2 * r)
            .map(|t| t.saturating_sub(r).min(w - 1))
            .collect();
        let n = w * h;
        let mut data = vec![0.0f32; 3 * n];
        let (red, rest) = data.split_at_mut(n);
        let (green, blue) = rest.split_at_mut(n);
        red.par_chunks_mut(w)
            .zip(green.par_chunks_mut(w))
            .zip(blue.par_chunks_mut(w))
            .enumerate()
            .for_each(|(y, ((out_r, out_g), out_b))| {
                let rows: Vec<&[f32]> = (0..=2 * r)
                    .map(|dy| {
                        let yy = (y + dy).saturating_sub(r).min(h - 1);
                        &nir.data[yy * w..(yy + 1) * w]
                    })
                    .collect();
                for x in 0..w {
                    let k = self.class(&f, y * w + x);
                    let wk = &self.weights[k * nf * 3..(k + 1) * nf * 3];
                    let mut acc = [wk[0], wk[1], wk[2]];
                    let mut j = 3;
                    for row in &rows {
                        for &col in &cols[x..=x + 2 * r] {
                            let v = row[col];
                            acc[0] += v * wk[j];
                            acc[1] += v * wk[j + 1];
                            acc[2] += v * wk[j + 2];
                            j += 3;
                        }
                    }
                    (out_r[x], out_g[x], out_b[x]) = (acc[0], acc[1], acc[2]);
                }
            });
        Rgb::new(w, h, data)
    }
}
