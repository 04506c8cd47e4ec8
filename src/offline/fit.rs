//! Fitting the least-squares models on training pairs: `linear` (a polynomial of the NIR per
//! channel) and `l3` (a filter per class of local features). The models themselves, and how
//! they colour, are in [`crate::models`].

use rayon::prelude::*;

use crate::models::l3::{features, patch, quantile_edges, Features, L3Config, L3};
use crate::models::linear::{powers, Linear};
use crate::models::lstsq::{self, NormalEquations, Prior};
use crate::offline::data::Pair;

/// Accumulates the fit over training pairs; mergeable so pairs can be added in parallel.
#[derive(Clone, Debug)]
pub struct LinearFit {
    degree: usize,
    ne: NormalEquations,
}

impl LinearFit {
    pub fn new(degree: usize) -> Self {
        LinearFit {
            degree,
            ne: NormalEquations::new(degree + 1, 3),
        }
    }

    /// Adds every `stride`-th pixel in x and y of `pair` that its mask keeps.
    pub fn add(&mut self, pair: &Pair, stride: usize) {
        let w = pair.nir.width;
        let rgb = pair.rgb.as_raw();
        let mut x = vec![0.0; self.degree + 1];
        for py in (0..pair.nir.height).step_by(stride) {
            for px in (0..w).step_by(stride) {
                let i = py * w + px;
                if pair.mask.as_ref().is_some_and(|m| !m[i]) {
                    continue;
                }
                powers(f64::from(pair.nir.data[i]), self.degree, &mut x);
                let y = [0, 1, 2].map(|c| f64::from(rgb[3 * i + c]) / 255.0);
                self.ne.add(&x, &y);
            }
        }
    }

    pub fn merge(mut self, other: LinearFit) -> Self {
        self.ne.merge(&other.ne);
        self
    }

    pub fn samples(&self) -> u64 {
        self.ne.count
    }

    pub fn finish(self) -> Linear {
        let w = lstsq::solve(&[self.ne], 1e-9, None).remove(0);
        Linear {
            degree: self.degree,
            coef: w.iter().map(|&v| v as f32).collect(),
        }
    }
}

/// Fits an L3 model: class edges from the training data's feature quantiles, then one ridge
/// least-squares filter per class, shrunk toward one global filter so rare classes stay sane.
pub fn l3(
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
    use crate::images::planes::Gray;
    use crate::models::colorizer::Colorizer;
    use crate::models::weights::Weights;
    use image::RgbImage;

    #[test]
    fn fits_a_known_polynomial_and_round_trips() {
        // Truth: R = nir, G = nir^2, B = 1 - nir, exactly representable in degree 2.
        let w = 32;
        let nir: Vec<f32> = (0..w * w).map(|i| (i % 97) as f32 / 96.0).collect();
        let rgb = RgbImage::from_fn(w as u32, w as u32, |x, y| {
            let v = nir[y as usize * w + x as usize];
            image::Rgb([v, v * v, 1.0 - v].map(|c| (c * 255.0).round() as u8))
        });
        let pair = Pair {
            name: "t".into(),
            nir: Gray::new(w, w, nir.clone()),
            rgb,
            mask: None,
        };
        let mut fit = LinearFit::new(2);
        fit.add(&pair, 1);
        let model = fit.finish();
        let out = model.colorize(&pair.nir).to_rgb8();
        let diff = out
            .as_raw()
            .iter()
            .zip(pair.rgb.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(diff <= 1, "max diff {diff}");
        let back = Linear::from_weights(
            &Weights::from_bytes(&model.to_weights(serde_json::json!({})).to_bytes(), "m").unwrap(),
        )
        .unwrap();
        assert_eq!(back, model);
    }

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
        let (model, samples) = l3(&pairs, cfg, 1, |_, _| {});
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
        let (model, _) = l3(&[synthetic_pair(3)], L3Config::default(), 2, |_, _| {});
        for (w, h) in [(1, 1), (1, 9), (9, 1), (3, 2)] {
            let rgb = model.colorize(&Gray::new(w, h, vec![0.4; w * h]));
            assert_eq!(rgb.data.len(), 3 * w * h);
            assert!(rgb.data.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn radii_beyond_what_training_allows_are_rejected() {
        let (model, _) = l3(&[synthetic_pair(3)], L3Config::default(), 2, |_, _| {});
        let mut w = model.to_weights(serde_json::json!({}));
        w.insert(
            "radii",
            vec![2],
            vec![(crate::models::l3::MAX_PATCH_RADIUS + 1) as f32, 16.0],
        );
        let err = L3::from_weights(&w).unwrap_err().to_string();
        assert!(err.contains("patch radius"), "{err}");
    }

    #[test]
    fn unsorted_edges_are_rejected() {
        let (model, _) = l3(&[synthetic_pair(3)], L3Config::default(), 2, |_, _| {});
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
