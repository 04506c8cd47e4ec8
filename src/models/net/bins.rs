//! Chroma as a distribution over bins (Zhang, Isola and Efros, "Colorful Image Colorization",
//! 2016), the remedy for pale output: a regression loss on chroma predicts the mean of the
//! colours a patch may have, which is gray when grass may be green or brown; a distribution keeps
//! the modes apart, and its annealed mean (a softmax at a temperature below 1) picks a vivid one.
//!
//! The bins form a `k` x `k` grid over BT.601 Cb and Cr in [-CHROMA_RANGE, CHROMA_RANGE], the
//! planes `layers::ycc_to_rgb` takes. Training weighs each pixel's cross-entropy by how rare its
//! colour is in the training data (class rebalancing), so the few saturated pixels are not
//! outvoted by the many grayish ones.

use tch::nn::Path;
use tch::{Kind, Tensor};

use super::layers::{self, Conv};
use crate::models::rng::Rng;

/// Half the side of the chroma grid. Cb and Cr of sRGB in [0, 1] lie in [-0.5, 0.5]; 0.4 covers
/// every colour of the training sets but a few saturated lights, which clamp to the edge bins.
pub const CHROMA_RANGE: f64 = 0.4;

/// The paper's annealed-mean temperature: 1 gives the mean (pale), near 0 the mode (noisy); 0.38
/// is where it found the best trade-off, and what a card gets unless it says otherwise.
pub const DEFAULT_TEMPERATURE: f64 = 0.38;

/// Width of the soft target around the truth's colour, in bins: the truth spreads over its
/// neighbours so that near misses are not counted as wrong as far ones.
const TARGET_SIGMA_BINS: f64 = 0.5;

/// How far class rebalancing goes: the weights are 1 / ((1 - LAMBDA) * prior + LAMBDA / bins),
/// so half the prior is replaced by a uniform one (the paper's choice), which bounds the weight
/// of a colour never seen at twice the bin count.
const REBALANCE_LAMBDA: f64 = 0.5;

/// Smoothing of the colour histogram before rebalancing, in bins (the paper's sigma 5 in Lab
/// units of 10 per bin).
const PRIOR_SIGMA_BINS: f64 = 0.5;

/// Pixels decoded at a time on the inference path. Their logits (4 MB at 16x16 bins) stay in
/// the CPU's cache; the whole frame's (79 MB at 320x240) went through memory once per step of
/// head, temperature, softmax and decoding. Measured here at 320x240 and 16x16 bins: 34 ms
/// against 200 ms, with 1,024 and 16,384 pixels at 59 and 50 ms.
const CHUNK_PIXELS: i64 = 4096;

/// The side of one bin.
fn step(k: i64) -> f64 {
    2.0 * CHROMA_RANGE / k as f64
}

/// The bin centres, `k * k` rows of (Cb, Cr), Cb-major.
pub fn centres(k: i64) -> Vec<[f32; 2]> {
    let step = step(k);
    let c = |i: i64| (-CHROMA_RANGE + step * (i as f64 + 0.5)) as f32;
    (0..k)
        .flat_map(|i| (0..k).map(move |j| [c(i), c(j)]))
        .collect()
}

/// The index of the bin nearest to (cb, cr).
pub fn nearest(k: i64, cb: f32, cr: f32) -> usize {
    let step = step(k);
    let i = |v: f32| (((v as f64 + CHROMA_RANGE) / step).floor() as i64).clamp(0, k - 1);
    (i(cb) * k + i(cr)) as usize
}

/// A 1x1 convolution from the network's last features to the bins' logits, and the decoding of
/// those logits into Cb and Cr.
pub struct ChromaBins {
    head: Conv,
    /// (2, k*k, 1, 1): a 1x1 convolution that takes probabilities to their expected (Cb, Cr).
    decode: Tensor,
    temperature: f64,
}

/// The centres as a (2, k*k, 1, 1) tensor: Cb of every bin, then Cr.
fn centre_planes(k: i64, device: tch::Device) -> Tensor {
    let c = centres(k);
    let flat: Vec<f32> = c
        .iter()
        .map(|v| v[0])
        .chain(c.iter().map(|v| v[1]))
        .collect();
    Tensor::from_slice(&flat)
        .view([2, k * k, 1, 1])
        .to_device(device)
}

impl ChromaBins {
    pub fn new(p: &Path, rng: &mut Rng, features: i64, k: i64, temperature: f64) -> ChromaBins {
        ChromaBins {
            head: Conv::new(&(p / "bins"), rng, features, k * k, 1, 1, 1, 1, 0.1),
            decode: centre_planes(k, p.device()),
            temperature,
        }
    }

    /// The logits, (batch, k*k, h, w), of the features (batch, features, h, w).
    pub fn logits(&self, features: &Tensor) -> Tensor {
        self.head.forward(features)
    }

    /// Cb and Cr, (batch, 2, h, w): the annealed mean of the distribution.
    pub fn chroma(&self, logits: &Tensor) -> Tensor {
        let p = (logits / self.temperature).softmax(1, Kind::Float);
        p.conv2d(&self.decode, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)
    }

    /// `chroma(&logits(features))` without keeping the logits, a few thousand pixels at a time:
    /// the inference path (nothing to differentiate, so no logits for a loss).
    pub fn chroma_of_features(&self, features: &Tensor) -> Tensor {
        let (w, b) = self.head.weight_and_bias();
        let (n, c, h, wd) = features
            .size4()
            .expect("features are (batch, channels, h, w)");
        let bins = w.size()[0];
        layers::add_macs((n * h * wd * bins * c) as u64);
        // The temperature folded into the head: softmax(W x / T + b / T).
        let head_t = (w.view([bins, c]) / self.temperature).transpose(0, 1);
        let bias_t = b / self.temperature;
        let decode = self.decode.view([2, bins]).transpose(0, 1).contiguous();
        let pixels = features.permute([0, 2, 3, 1]).reshape([-1, c]);
        let total = pixels.size()[0];
        // A GPU gains nothing from chunks, only more kernel launches.
        let chunk = if features.device().is_cuda() {
            total.max(1)
        } else {
            CHUNK_PIXELS
        };
        let parts: Vec<Tensor> = (0..total)
            .step_by(chunk as usize)
            .map(|start| {
                let rows = pixels.narrow(0, start, chunk.min(total - start));
                bias_t
                    .addmm(&rows, &head_t)
                    .softmax(-1, Kind::Float)
                    .matmul(&decode)
            })
            .collect();
        Tensor::cat(&parts, 0)
            .view([n, h, wd, 2])
            .permute([0, 3, 1, 2])
            .contiguous()
    }
}

/// The soft target distribution, (batch, k*k, h, w), of the truth's Cb and Cr (batch, 2, h, w):
/// a Gaussian around it over the bin centres, normalised per pixel.
pub fn soft_targets(k: i64, cbcr: &Tensor) -> Tensor {
    let step = step(k);
    let lim = CHROMA_RANGE - step / 2.0;
    let planes = centre_planes(k, cbcr.device());
    let (ccb, ccr) = (
        planes.narrow(0, 0, 1).view([1, k * k, 1, 1]),
        planes.narrow(0, 1, 1).view([1, k * k, 1, 1]),
    );
    let cb = cbcr.narrow(1, 0, 1).clamp(-lim, lim);
    let cr = cbcr.narrow(1, 1, 1).clamp(-lim, lim);
    let d2 = (cb - ccb).square() + (cr - ccr).square();
    let s = TARGET_SIGMA_BINS * step;
    (d2 / (-2.0 * s * s)).softmax(1, Kind::Float)
}

/// Class-rebalancing weights per bin from a histogram of the training colours (counts per bin,
/// `k * k` of them): smoothed, mixed with a uniform prior, inverted, and scaled so that their
/// expectation under the data is 1 (the loss keeps its scale).
pub fn rebalance(k: usize, counts: &[f64]) -> Vec<f32> {
    assert_eq!(counts.len(), k * k, "one count per bin");
    let total: f64 = counts.iter().sum::<f64>().max(1.0);
    let r = (3.0 * PRIOR_SIGMA_BINS).ceil() as isize;
    let g: Vec<f64> = (-r..=r)
        .map(|d| (-((d * d) as f64) / (2.0 * PRIOR_SIGMA_BINS * PRIOR_SIGMA_BINS)).exp())
        .collect();
    let blur = |src: &[f64], along_rows: bool| -> Vec<f64> {
        let mut out = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..k {
                let (mut s, mut n) = (0.0, 0.0);
                for (t, w) in (-r..=r).zip(&g) {
                    let (a, b) = if along_rows {
                        (i as isize + t, j as isize)
                    } else {
                        (i as isize, j as isize + t)
                    };
                    if (0..k as isize).contains(&a) && (0..k as isize).contains(&b) {
                        s += w * src[a as usize * k + b as usize];
                        n += w;
                    }
                }
                out[i * k + j] = s / n;
            }
        }
        out
    };
    let prior: Vec<f64> = counts.iter().map(|c| c / total).collect();
    let smooth = blur(&blur(&prior, true), false);
    let sum: f64 = smooth.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let uniform = 1.0 / (k * k) as f64;
    let w: Vec<f64> = smooth
        .iter()
        .map(|p| 1.0 / ((1.0 - REBALANCE_LAMBDA) * p / sum + REBALANCE_LAMBDA * uniform))
        .collect();
    let expectation: f64 = w.iter().zip(&prior).map(|(w, p)| w * p).sum();
    let norm = if expectation > 0.0 { expectation } else { 1.0 };
    w.iter().map(|w| (w / norm) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::VarStore;
    use tch::Device;

    #[test]
    fn centres_and_nearest_agree() {
        let k = 16;
        for (idx, c) in centres(k).iter().enumerate() {
            assert_eq!(nearest(k, c[0], c[1]), idx);
        }
        // Beyond the grid, the edge bins.
        assert_eq!(nearest(k, -0.5, -0.5), 0);
        assert_eq!(nearest(k, 0.5, 0.5), (k * k - 1) as usize);
    }

    #[test]
    fn soft_targets_peak_at_the_truth_and_decode_back_to_it() {
        let vs = VarStore::new(Device::Cpu);
        let bins = ChromaBins::new(&vs.root(), &mut Rng::new(1), 4, 16, 1.0);
        let truth = [0.13f32, -0.21];
        let cbcr = Tensor::from_slice(&truth).view([1, 2, 1, 1]);
        let q = soft_targets(16, &cbcr);
        let sum = f64::try_from(q.sum(Kind::Float)).unwrap();
        assert!((sum - 1.0).abs() < 1e-5, "{sum}");
        let best = i64::try_from(q.view([-1]).argmax(0, false)).unwrap();
        assert_eq!(best as usize, nearest(16, truth[0], truth[1]));
        // Logits that are the log of the target decode (at temperature 1) near the truth.
        let back = bins.chroma(&q.log());
        let back: Vec<f32> = Vec::try_from(back.view([-1])).unwrap();
        for (b, t) in back.iter().zip(truth) {
            assert!((b - t).abs() < 0.02, "{back:?} vs {truth:?}");
        }
    }

    #[test]
    fn the_inference_path_decodes_what_the_training_path_does() {
        let vs = VarStore::new(Device::Cpu);
        let bins = ChromaBins::new(&vs.root(), &mut Rng::new(3), 6, 12, 0.38);
        // 2 x 70 x 90 pixels: three chunks, the last one partial.
        let features = Tensor::randn([2, 6, 70, 90], (Kind::Float, Device::Cpu)) * 3.0;
        let _guard = tch::no_grad_guard();
        let slow = bins.chroma(&bins.logits(&features));
        let fast = bins.chroma_of_features(&features);
        assert_eq!(fast.size(), [2, 2, 70, 90]);
        let diff = f64::try_from((slow - fast).abs().max()).unwrap();
        assert!(diff < 1e-5, "max difference {diff}");
    }

    #[test]
    fn a_lower_temperature_gives_more_colour_from_the_same_logits() {
        let vs = VarStore::new(Device::Cpu);
        let root = vs.root();
        let pale = ChromaBins::new(&(&root / "a"), &mut Rng::new(1), 4, 8, 1.0);
        let vivid = ChromaBins::new(&(&root / "b"), &mut Rng::new(1), 4, 8, DEFAULT_TEMPERATURE);
        // Two modes, green-ish and magenta-ish, the green one a little likelier.
        let mut l = vec![-10.0f32; 64];
        l[nearest(8, -0.2, -0.2)] = 1.2;
        l[nearest(8, 0.2, 0.2)] = 1.0;
        let logits = Tensor::from_slice(&l).view([1, 64, 1, 1]);
        let norm = |t: Tensor| f64::try_from(t.square().sum(Kind::Float).sqrt()).unwrap();
        let (p, v) = (norm(pale.chroma(&logits)), norm(vivid.chroma(&logits)));
        assert!(v > 2.0 * p, "annealed {v} against mean {p}");
    }

    #[test]
    fn rebalancing_favours_rare_colours_and_keeps_the_expected_weight_at_one() {
        let k = 8;
        let mut counts = vec![0.0; k * k];
        let gray = nearest(k as i64, 0.0, 0.0);
        let green = nearest(k as i64, -0.2, -0.2);
        counts[gray] = 9000.0;
        counts[green] = 100.0;
        let w = rebalance(k, &counts);
        assert!(
            w[green] > 5.0 * w[gray],
            "green {} gray {}",
            w[green],
            w[gray]
        );
        let total: f64 = counts.iter().sum();
        let e: f64 = w
            .iter()
            .zip(&counts)
            .map(|(w, c)| *w as f64 * c / total)
            .sum();
        assert!((e - 1.0).abs() < 1e-4, "{e}");
        assert!(w.iter().all(|w| w.is_finite() && *w > 0.0));
    }
}
