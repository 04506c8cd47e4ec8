//! `linear`: one global least-squares fit of each colour channel as a low-order polynomial of the
//! NIR intensity. The simplest learned baseline: it can only map brightness to a colour cast.

use rayon::prelude::*;

use crate::images::planes::{Gray, Rgb};
use crate::models::colorizer::Colorizer;
use crate::models::weights::{Weights, WeightsError};

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

pub(crate) fn powers(v: f64, degree: usize, out: &mut [f64]) {
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
