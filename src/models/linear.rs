//! `linear`: one global least-squares fit of each colour channel as a low-order polynomial of the
//! NIR intensity. The simplest learned baseline: it can only map brightness to a colour cast.

use rayon::prelude::*;

use crate::images::planes::{Gray, Rgb};
use crate::models::colorizer::Colorizer;
use crate::models::lstsq::{self, NormalEquations};
use crate::models::weights::{Weights, WeightsError};
use crate::offline::data::Pair;

pub const ARCH: &str = "linear";

/// The highest polynomial degree a `linear` model may have (training and loading agree).
pub const MAX_DEGREE: usize = 7;

/// `RGB = sum_k coef[k] * nir^k`, k = 0..=degree.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    pub degree: usize,
    /// (degree + 1) x 3, row-major.
    pub coef: Vec<f32>,
}

impl Linear {
    pub fn from_weights(w: &Weights) -> Result<Linear, WeightsError> {
        w.expect_arch(ARCH)?;
        let (shape, coef) = w.tensor("coef", &[None, Some(3)])?;
        if shape[0] == 0 || shape[0] > MAX_DEGREE + 1 {
            return Err(w.invalid(format!(
                "polynomial with {} terms; 1 to {} are allowed",
                shape[0],
                MAX_DEGREE + 1
            )));
        }
        Ok(Linear {
            degree: shape[0] - 1,
            coef: coef.to_vec(),
        })
    }

    pub fn to_weights(&self, card: serde_json::Value) -> Weights {
        let mut w = Weights::new(ARCH, card);
        w.insert("coef", vec![self.degree + 1, 3], self.coef.clone());
        w
    }
}

fn powers(v: f64, degree: usize, out: &mut [f64]) {
    let mut p = 1.0;
    for slot in out.iter_mut().take(degree + 1) {
        *slot = p;
        p *= v;
    }
}

impl Colorizer for Linear {
    fn name(&self) -> String {
        ARCH.into()
    }

    fn colorize(&self, nir: &Gray) -> Rgb {
        let n = nir.data.len();
        let mut data = vec![0.0f32; 3 * n];
        let (r, rest) = data.split_at_mut(n);
        let (g, b) = rest.split_at_mut(n);
        (r, g, b, &nir.data[..])
            .into_par_iter()
            .for_each(|(r, g, b, &v)| {
                let mut acc = [0.0f32; 3];
                let mut p = 1.0f32;
                for k in 0..=self.degree {
                    for (c, a) in acc.iter_mut().enumerate() {
                        *a += self.coef[k * 3 + c] * p;
                    }
                    p *= v;
                }
                (*r, *g, *b) = (acc[0], acc[1], acc[2]);
            });
        Rgb::new(nir.width, nir.height, data)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
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
}
