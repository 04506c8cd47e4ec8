//! Least squares for the classical colorizers: per-class normal equations accumulated in f64 over
//! millions of pixels (mergeable across threads), then solved in one batch with libtorch.

use tch::{Device, Kind, Tensor};

/// Normal equations X'X w = X'y of one linear model with `features` inputs and `outputs` outputs.
#[derive(Clone, Debug)]
pub struct NormalEquations {
    pub features: usize,
    pub outputs: usize,
    /// Upper triangle of X'X, row-major, including the diagonal.
    xtx: Vec<f64>,
    xty: Vec<f64>,
    pub count: u64,
}

impl NormalEquations {
    pub fn new(features: usize, outputs: usize) -> Self {
        NormalEquations {
            features,
            outputs,
            xtx: vec![0.0; features * (features + 1) / 2],
            xty: vec![0.0; features * outputs],
            count: 0,
        }
    }

    /// Adds one sample: feature vector `x` and target `y`.
    pub fn add(&mut self, x: &[f64], y: &[f64]) {
        debug_assert_eq!(x.len(), self.features);
        debug_assert_eq!(y.len(), self.outputs);
        let mut k = 0;
        for i in 0..self.features {
            let xi = x[i];
            for &xj in &x[i..] {
                self.xtx[k] += xi * xj;
                k += 1;
            }
            for (o, &yo) in y.iter().enumerate() {
                self.xty[i * self.outputs + o] += xi * yo;
            }
        }
        self.count += 1;
    }

    pub fn merge(&mut self, other: &NormalEquations) {
        self.xtx
            .iter_mut()
            .zip(&other.xtx)
            .for_each(|(a, b)| *a += b);
        self.xty
            .iter_mut()
            .zip(&other.xty)
            .for_each(|(a, b)| *a += b);
        self.count += other.count;
    }

    /// The mean of X'X's diagonal: the scale of the features times the sample count.
    pub fn mean_diagonal(&self) -> f64 {
        let f = self.features;
        // Row i of the packed upper triangle starts at its diagonal element.
        (0..f)
            .map(|i| self.xtx[i * f - i * i.saturating_sub(1) / 2])
            .sum::<f64>()
            / f as f64
    }

    fn full_xtx(&self) -> Vec<f64> {
        let f = self.features;
        let mut m = vec![0.0; f * f];
        let mut k = 0;
        for i in 0..f {
            for j in i..f {
                m[i * f + j] = self.xtx[k];
                m[j * f + i] = self.xtx[k];
                k += 1;
            }
        }
        m
    }
}

/// A solution every system is pulled toward, as if `strength` extra samples' worth of evidence
/// supported it: classes with little data fall back to it instead of to zero.
#[derive(Clone, Copy, Debug)]
pub struct Prior<'a> {
    pub weights: &'a [f64],
    pub strength: f64,
}

/// Solves every system at once with ridge regularisation `ridge` times the mean diagonal of its
/// X'X (scale-free, and it keeps classes with few or collinear samples well posed), shrunk toward
/// `prior` when given. Returns, per system, the `features x outputs` weights row-major.
pub fn solve(systems: &[NormalEquations], ridge: f64, prior: Option<Prior<'_>>) -> Vec<Vec<f64>> {
    if systems.is_empty() {
        return Vec::new();
    }
    let (f, o) = (systems[0].features, systems[0].outputs);
    let mut a = Vec::with_capacity(systems.len() * f * f);
    let mut b = Vec::with_capacity(systems.len() * f * o);
    for s in systems {
        assert_eq!(
            (s.features, s.outputs),
            (f, o),
            "all systems must have one shape"
        );
        let mut m = s.full_xtx();
        let mean_diag = s.mean_diagonal();
        let mut rhs = s.xty.clone();
        let mut lambda = ridge * mean_diag;
        if let Some(p) = prior {
            assert_eq!(p.weights.len(), f * o, "prior must have the systems' shape");
            lambda += p.strength;
            rhs.iter_mut()
                .zip(p.weights)
                .for_each(|(r, w)| *r += p.strength * w);
        }
        // An empty system without a prior still gets an identity so the solve stays defined.
        if lambda <= 0.0 {
            lambda = 1.0;
        }
        for i in 0..f {
            m[i * f + i] += lambda;
        }
        a.extend(m);
        b.extend(rhs);
    }
    let n = systems.len() as i64;
    let a = Tensor::from_slice(&a)
        .reshape([n, f as i64, f as i64])
        .to_kind(Kind::Double)
        .to_device(Device::Cpu);
    let b = Tensor::from_slice(&b).reshape([n, f as i64, o as i64]);
    let w = Tensor::linalg_solve(&a, &b, true).contiguous();
    let flat: Vec<f64> = Vec::<f64>::try_from(w.view([-1])).expect("linalg_solve returns f64");
    flat.chunks_exact(f * o).map(<[f64]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_linear_map() {
        // y = [1 + 2x, 3 - x] sampled without noise.
        let mut ne = NormalEquations::new(2, 2);
        for i in 0..50 {
            let x = i as f64 / 10.0;
            ne.add(&[1.0, x], &[1.0 + 2.0 * x, 3.0 - x]);
        }
        let w = &solve(&[ne], 1e-12, None)[0];
        let want = [1.0, 3.0, 2.0, -1.0];
        for (g, t) in w.iter().zip(want) {
            assert!((g - t).abs() < 1e-6, "{w:?}");
        }
    }

    #[test]
    fn merge_equals_one_pass() {
        let mut all = NormalEquations::new(3, 1);
        let (mut a, mut b) = (NormalEquations::new(3, 1), NormalEquations::new(3, 1));
        for i in 0..20 {
            let x = [1.0, i as f64, (i * i) as f64 * 0.1];
            let y = [i as f64 * 0.5];
            all.add(&x, &y);
            if i % 2 == 0 {
                a.add(&x, &y)
            } else {
                b.add(&x, &y)
            }
        }
        a.merge(&b);
        assert_eq!(a.count, all.count);
        let diag = all.full_xtx();
        let want = (0..3).map(|i| diag[i * 3 + i]).sum::<f64>() / 3.0;
        assert!((all.mean_diagonal() - want).abs() < 1e-9);
        let (wa, wb) = (&solve(&[a], 1e-9, None)[0], &solve(&[all], 1e-9, None)[0]);
        for (p, q) in wa.iter().zip(wb) {
            assert!((p - q).abs() < 1e-9);
        }
    }

    #[test]
    fn an_empty_system_solves_to_zero_or_to_the_prior() {
        let w = &solve(&[NormalEquations::new(4, 3)], 1e-3, None)[0];
        assert!(w.iter().all(|&v| v == 0.0));
        let prior: Vec<f64> = (0..12).map(f64::from).collect();
        let w = &solve(
            &[NormalEquations::new(4, 3)],
            1e-3,
            Some(Prior {
                weights: &prior,
                strength: 5.0,
            }),
        )[0];
        assert!(
            w.iter().zip(&prior).all(|(a, b)| (a - b).abs() < 1e-9),
            "{w:?}"
        );
    }
}
