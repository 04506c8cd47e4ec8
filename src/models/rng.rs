//! The one random source for network initialisation and training (crops, flips, jitter, order):
//! ChaCha8 from a `--seed`, whose whole state is (seed, position), so a checkpoint can store it
//! and `--resume` continues with exactly the numbers the interrupted run would have drawn.

use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Debug)]
pub struct Rng(ChaCha8Rng);

/// Where a generator stands: enough to recreate it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RngState {
    pub seed: u64,
    /// ChaCha's word position, as a decimal string (u128 does not fit JSON numbers).
    pub word_pos: String,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0.gen::<f64>()
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// Uniform integer in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0.gen_range(0..n)
    }

    pub fn coin(&mut self) -> bool {
        self.0.gen::<bool>()
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.next_f64().max(1e-300);
        let v = self.next_f64();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// A Fisher-Yates shuffle of 0..n.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, self.below(i + 1));
        }
        p
    }

    pub fn state(&self, seed: u64) -> RngState {
        RngState {
            seed,
            word_pos: self.0.get_word_pos().to_string(),
        }
    }

    pub fn from_state(state: &RngState) -> Option<Rng> {
        let mut r = ChaCha8Rng::seed_from_u64(state.seed);
        r.set_word_pos(state.word_pos.parse().ok()?);
        Some(Rng(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip_continues_the_same_stream() {
        let mut a = Rng::new(7);
        for _ in 0..13 {
            a.next_f64();
        }
        let mut b = Rng::from_state(&a.state(7)).unwrap();
        let xs: Vec<f64> = (0..5).map(|_| a.next_f64()).collect();
        let ys: Vec<f64> = (0..5).map(|_| b.next_f64()).collect();
        assert_eq!(xs, ys);
    }
}
