//! Fitting models from paired folders: `nircolor train --arch linear|l3`. Loads the pairs once
//! (in parallel), fits, and returns weights whose model card records how they were made.

use rayon::prelude::*;
use serde_json::json;

use crate::models::l3::{self, L3Config};
use crate::models::linear;
use crate::models::weights::Weights;
use crate::offline::data::{DataError, Dataset, Pair};
use crate::offline::fit::{self, LinearFit};

/// The architectures `nircolor train` can fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Linear,
    L3,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Linear => crate::models::linear::ARCH,
            Arch::L3 => l3::ARCH,
        }
    }
}

/// Hyper-parameters of the classical fits.
#[derive(Clone, Copy, Debug)]
pub struct ClassicalOptions {
    /// Polynomial degree of `linear`.
    pub degree: usize,
    pub l3: L3Config,
    /// Fit on every `stride`-th pixel in x and y (neighbouring pixels add little information).
    pub stride: usize,
}

/// A training option outside what the trainer, or the weights loader that will read the result,
/// accepts: the command-line option and what it allows. Checked before minutes of fitting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{option} must be {allowed}")]
pub struct OptionError {
    pub option: &'static str,
    pub allowed: String,
}

impl OptionError {
    pub fn new(option: &'static str, allowed: impl Into<String>) -> OptionError {
        OptionError {
            option,
            allowed: allowed.into(),
        }
    }
}

/// The first failed check: `checks` pairs a condition that must hold with its error.
pub(crate) fn first_failure(
    checks: impl IntoIterator<Item = (bool, OptionError)>,
) -> Result<(), OptionError> {
    match checks.into_iter().find(|(ok, _)| !ok) {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

impl ClassicalOptions {
    /// The bounds the `linear` and `l3` weights loaders enforce.
    pub fn validate(&self) -> Result<(), OptionError> {
        let bins = 1..=l3::MAX_BINS;
        let bins_allowed = format!("from 1 to {}", l3::MAX_BINS);
        let l = &self.l3;
        first_failure([
            (self.stride >= 1, OptionError::new("--stride", "at least 1")),
            (
                self.degree <= linear::MAX_DEGREE,
                OptionError::new("--degree", format!("from 0 to {}", linear::MAX_DEGREE)),
            ),
            (
                bins.contains(&l.levels),
                OptionError::new("--levels", bins_allowed.clone()),
            ),
            (
                bins.contains(&l.contrasts),
                OptionError::new("--contrasts", bins_allowed.clone()),
            ),
            (
                bins.contains(&l.contexts),
                OptionError::new("--contexts", bins_allowed),
            ),
            (
                l.patch_radius <= l3::MAX_PATCH_RADIUS,
                OptionError::new(
                    "--patch-radius",
                    format!("from 0 to {}", l3::MAX_PATCH_RADIUS),
                ),
            ),
            (
                l.context_radius <= l3::MAX_CONTEXT_RADIUS,
                OptionError::new(
                    "--context-radius",
                    format!("from 0 to {}", l3::MAX_CONTEXT_RADIUS),
                ),
            ),
        ])
    }
}

impl Default for ClassicalOptions {
    fn default() -> Self {
        ClassicalOptions {
            degree: 3,
            l3: L3Config::default(),
            stride: 2,
        }
    }
}

/// Loads every pair of every dataset, in parallel, calling `tick` after each.
pub fn load_pairs(datasets: &[Dataset], tick: impl Fn() + Sync) -> Result<Vec<Pair>, DataError> {
    let jobs: Vec<(&Dataset, usize)> = datasets
        .iter()
        .flat_map(|d| (0..d.len()).map(move |i| (d, i)))
        .collect();
    jobs.par_iter()
        .map(|(d, i)| {
            let pair = d.load(*i);
            tick();
            pair
        })
        .collect()
}

/// The training data as a model card records it: each folder and its pair count.
pub fn data_card(datasets: &[Dataset]) -> serde_json::Value {
    datasets
        .iter()
        .map(|d| json!({"folder": d.root.display().to_string(), "pairs": d.len()}))
        .collect()
}

/// Fits `arch` on `pairs`; `tick` is called as pairs are processed. `datasets` is recorded in
/// the model card.
pub fn fit_classical(
    arch: Arch,
    pairs: &[Pair],
    datasets: &[Dataset],
    opts: &ClassicalOptions,
    tick: impl Fn() + Sync + Send,
) -> Weights {
    let data = data_card(datasets);
    let mut card = json!({
        "arch": arch.name(),
        "nircolor_version": env!("CARGO_PKG_VERSION"),
        "input": "NIR in [0,1]: 8-bit / 255, 16-bit / 65535, full resolution",
        "output": "sRGB in [0,1], same size as the input",
        "training_data": data,
        "stride": opts.stride,
    });
    match arch {
        Arch::Linear => {
            let fit = pairs
                .par_iter()
                .fold(
                    || LinearFit::new(opts.degree),
                    |mut f, p| {
                        f.add(p, opts.stride);
                        tick();
                        f
                    },
                )
                .reduce(|| LinearFit::new(opts.degree), LinearFit::merge);
            card["samples"] = json!(fit.samples());
            card["hyper_parameters"] = json!({"degree": opts.degree});
            let model = fit.finish();
            card["parameters"] = json!(model.coef.len());
            model.to_weights(card)
        }
        Arch::L3 => {
            let (model, samples) = fit::l3(pairs, opts.l3, opts.stride, |stage, _| {
                if stage == "pairs" {
                    tick();
                }
            });
            card["samples"] = json!(samples);
            card["hyper_parameters"] = json!(opts.l3);
            card["classes"] = json!(opts.l3.classes());
            card["parameters"] = json!(model.weights.len());
            model.to_weights(card)
        }
    }
}
