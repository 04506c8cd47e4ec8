//! `l3`, Local Linear Learned: each pixel is classified by local NIR features (intensity level x
//! local contrast x surrounding context level), and each class applies its own learned linear
//! filter over a small NIR patch, fitted by least squares. Tiny, fast and classical.

use rayon::prelude::*;

use crate::detail::box_mean;
use crate::images::planes::{Gray, Rgb};
use crate::models::colorizer::Colorizer;
use crate::models::lstsq::{self, NormalEquations, Prior};
use crate::models::weights::{Weights, WeightsError};
use crate::offline::data::Pair;

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
struct Features {
    level: Vec<f32>,
    contrast: Vec<f32>,
    context: Vec<f32>,
}

fn features(nir: &Gray, cfg: &L3Config) -> Features {
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
fn quantile_edges(values: &mut [f32], bins: usize) -> Vec<f32> {
    values.sort_unstable_by(f32::total_cmp);
    if values.is_empty() {
        return (1..bins).map(|i| i as f32 / bins as f32).collect();
    }
    (1..bins)
        .map(|i| values[(i * values.len() / bins).min(values.len() - 1)])
        .collect()
}

/// The patch around (x, y), edge pixels repeated, after a leading 1 for the bias.
fn patch(nir: &Gray, x: usize, y: usize, r: usize, out: &mut [f64]) {
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
    fn class(&self, f: &Features, i: usize) -> usize {
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

/// Fits an L3 model: class edges from the training data's feature quantiles, then one ridge
/// least-squares filter per class, shrunk toward one global filter so rare classes stay sane.
pub fn fit(
    pairs: &[Pair],
    config: L3Config,
    stride: usize,
    mut progress: impl FnMut(&str, usize) + Send,
) -> (L3, u64) {
    let stride = stride.max(1);
    let feats: Vec<Features> = pairs
        .par_iter()
        .map(|p| features(&p.nir, &config))
        .collect();
    let sampled = |p: &Pair, i: usize| p.mask.as_ref().is_none_or(|m| m[i]);
    let collect = |pick: fn(&Features) -> &Vec<f32>| -> Vec<f32> {
        pairs
            .iter()
            .zip(&feats)
            .flat_map(|(p, f)| {
                let v = pick(f);
                (0..v.len())
                    .step_by(7 * stride)
                    .filter(move |&i| sampled(p, i))
                    .map(move |i| v[i])
            })
            .collect()
    };
    let mut model = L3 {
        config,
        level_edges: quantile_edges(&mut collect(|f| &f.level), config.levels),
        contrast_edges: quantile_edges(&mut collect(|f| &f.contrast), config.contrasts),
        context_edges: quantile_edges(&mut collect(|f| &f.context), config.contexts),
        weights: Vec::new(),
    };
    progress("edges", 0);

    let (nf, classes) = (config.features(), config.classes());
    let done = std::sync::atomic::AtomicUsize::new(0);
    let progress = std::sync::Mutex::new(&mut progress);
    let per_class = pairs
        .par_iter()
        .zip(&feats)
        .fold(
            || vec![NormalEquations::new(nf, 3); classes],
            |mut acc, (pair, f)| {
                let mut x = vec![0.0f64; nf];
                let rgb = pair.rgb.as_raw();
                for py in (0..pair.nir.height).step_by(stride) {
                    for px in (0..pair.nir.width).step_by(stride) {
                        let i = py * pair.nir.width + px;
                        if !sampled(pair, i) {
                            continue;
                        }
                        patch(&pair.nir, px, py, config.patch_radius, &mut x);
                        let y = [0, 1, 2].map(|c| f64::from(rgb[3 * i + c]) / 255.0);
                        acc[model.class(f, i)].add(&x, &y);
                    }
                }
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                (progress.lock().expect("progress callback panicked"))("pairs", n);
                acc
            },
        )
        .reduce(
            || vec![NormalEquations::new(nf, 3); classes],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| x.merge(y));
                a
            },
        );
    let mut global = NormalEquations::new(nf, 3);
    per_class.iter().for_each(|c| global.merge(c));
    let samples = global.count;
    let global_w = lstsq::solve(std::slice::from_ref(&global), 1e-6, None).remove(0);
    // The prior weighs like a few hundred average samples: it decides only for sparse classes.
    let strength = 200.0 * global.mean_diagonal() / samples.max(1) as f64;
    let solved = lstsq::solve(
        &per_class,
        1e-6,
        Some(Prior {
            weights: &global_w,
            strength,
        }),
    );
    model.weights = solved.into_iter().flatten().map(|v| v as f32).collect();
    (model, samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    fn synthetic_pair(seed: u32) -> Pair {
        // Bright and textured areas are green, dark areas blue: a map L3 can learn exactly.
        let (w, h) = (48usize, 40usize);
        let mut s = seed.wrapping_mul(2654435761).max(1);
        let nir: Vec<f32> = (0..w * h)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let base = if (i % w) < w / 2 { 0.2 } else { 0.7 };
                base + (s % 100) as f32 / 1000.0
            })
            .collect();
        let rgb = RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let v = nir[y as usize * w + x as usize];
            let g = (v * 255.0) as u8;
            image::Rgb(if v > 0.5 {
                [g / 3, g, g / 4]
            } else {
                [g / 2, g / 2, g.saturating_mul(2)]
            })
        });
        Pair {
            name: format!("s{seed}"),
            nir: Gray::new(w, h, nir),
            rgb,
            mask: None,
        }
    }

    #[test]
    fn learns_a_level_dependent_colour_and_round_trips() {
        let pairs: Vec<Pair> = (1..5).map(synthetic_pair).collect();
        let cfg = L3Config {
            levels: 4,
            contrasts: 2,
            contexts: 2,
            patch_radius: 1,
            context_radius: 4,
        };
        let (model, samples) = fit(&pairs, cfg, 1, |_, _| {});
        assert_eq!(samples, 4 * 48 * 40);
        let test = synthetic_pair(9);
        let out = model.colorize(&test.nir).to_rgb8();
        let m = crate::offline::metrics::compute(&out, &test.rgb, None).unwrap();
        assert!(m.psnr > 30.0, "psnr {}", m.psnr);
        let back = L3::from_weights(
            &Weights::from_bytes(&model.to_weights(serde_json::json!({})).to_bytes(), "m").unwrap(),
        )
        .unwrap();
        assert_eq!(back, model);
    }

    #[test]
    fn tiny_and_thin_images_colorize() {
        let (model, _) = fit(&[synthetic_pair(3)], L3Config::default(), 2, |_, _| {});
        for (w, h) in [(1, 1), (1, 9), (9, 1), (3, 2)] {
            let rgb = model.colorize(&Gray::new(w, h, vec![0.4; w * h]));
            assert_eq!(rgb.data.len(), 3 * w * h);
            assert!(rgb.data.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn radii_beyond_what_training_allows_are_rejected() {
        let (model, _) = fit(&[synthetic_pair(3)], L3Config::default(), 2, |_, _| {});
        let mut w = model.to_weights(serde_json::json!({}));
        w.insert("radii", vec![2], vec![(MAX_PATCH_RADIUS + 1) as f32, 16.0]);
        let err = L3::from_weights(&w).unwrap_err().to_string();
        assert!(err.contains("patch radius"), "{err}");
    }

    #[test]
    fn unsorted_edges_are_rejected() {
        let (model, _) = fit(&[synthetic_pair(3)], L3Config::default(), 2, |_, _| {});
        let mut w = model.to_weights(serde_json::json!({}));
        w.insert(
            "level_edges",
            vec![model.level_edges.len()],
            model.level_edges.iter().rev().copied().collect(),
        );
        let err = L3::from_weights(&w).unwrap_err().to_string();
        assert!(err.contains("not sorted"), "{err}");
    }
}
