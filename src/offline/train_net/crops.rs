//! What the network trains on: the pairs held in memory as planes, and the random crops cut
//! from them (multi-scale, flipped, NIR exposure jitter) stacked into batches.

use rayon::prelude::*;
use tch::{Device, Tensor};

use super::TrainOptions;
use crate::detail::resize_area;
use crate::models::net::bins;
use crate::models::rng::Rng;
use crate::offline::data::Pair;

/// One training pair in memory: NIR, RGB planes in [0, 1] and the validity mask (1 = counts).
pub(super) struct Sample {
    pub(super) w: usize,
    pub(super) h: usize,
    pub(super) nir: Vec<f32>,
    pub(super) rgb: Vec<f32>,
    pub(super) mask: Vec<f32>,
}

impl Sample {
    pub(super) fn from_pair(p: &Pair) -> Sample {
        let (w, h) = (p.nir.width, p.nir.height);
        let mut rgb = vec![0f32; 3 * w * h];
        for (i, px) in p.rgb.pixels().enumerate() {
            for c in 0..3 {
                rgb[c * w * h + i] = f32::from(px[c]) / 255.0;
            }
        }
        let mask = match &p.mask {
            Some(m) => m.iter().map(|&v| if v { 1.0 } else { 0.0 }).collect(),
            None => vec![1.0; w * h],
        };
        Sample {
            w,
            h,
            nir: p.nir.data.clone(),
            rgb,
            mask,
        }
    }
}

/// Where a crop comes from and how it is altered; drawn from the run's generator so a
/// resumed run draws the same.
pub(super) struct CropPlan {
    pub(super) index: usize,
    pub(super) x: usize,
    pub(super) y: usize,
    pub(super) side: usize,
    pub(super) flip: bool,
    pub(super) gain: f32,
    pub(super) gamma: f32,
    pub(super) noise: f32,
    pub(super) noise_seed: u64,
}

pub(super) fn plan_crop(
    rng: &mut Rng,
    samples: &[Sample],
    index: usize,
    o: &TrainOptions,
) -> CropPlan {
    let s = &samples[index];
    let short = s.w.min(s.h);
    // Log-uniform zoom: a region of crop/zoom pixels resampled to crop x crop.
    let min_zoom = o.min_zoom.max(o.crop as f64 / short as f64).min(1.0);
    let zoom = (rng.uniform(min_zoom.ln(), 0.0)).exp();
    let side = ((o.crop as f64 / zoom).round() as usize).clamp(1, short);
    CropPlan {
        index,
        x: rng.below(s.w - side + 1),
        y: rng.below(s.h - side + 1),
        side,
        flip: rng.coin(),
        gain: rng.uniform(1.0 - o.jitter_gain, 1.0 + o.jitter_gain) as f32,
        gamma: (rng.uniform(-1.0, 1.0) * (1.0 + o.jitter_gamma).ln()).exp() as f32,
        noise: rng.uniform(0.0, o.jitter_noise) as f32,
        noise_seed: rng.below(usize::MAX) as u64,
    }
}

/// Cuts, resamples, flips and jitters one crop: (nir, rgb, mask) planes of crop x crop.
pub(super) fn make_crop(samples: &[Sample], p: &CropPlan, crop: usize) -> Crop {
    let s = &samples[p.index];
    let cut = |src: &[f32], channels: usize| -> Vec<f32> {
        let mut out = Vec::with_capacity(channels * crop * crop);
        for c in 0..channels {
            let plane = &src[c * s.w * s.h..(c + 1) * s.w * s.h];
            let mut region = Vec::with_capacity(p.side * p.side);
            for y in p.y..p.y + p.side {
                let row = &plane[y * s.w + p.x..y * s.w + p.x + p.side];
                if p.flip {
                    region.extend(row.iter().rev());
                } else {
                    region.extend_from_slice(row);
                }
            }
            out.extend(resize_area(&region, p.side, p.side, 1, crop, crop));
        }
        out
    };
    let mut nir = cut(&s.nir, 1);
    let rgb = cut(&s.rgb, 3);
    // A resampled mask is fractional at the border of the valid area; only full pixels count.
    let mask = cut(&s.mask, 1)
        .into_iter()
        .map(|m| if m > 0.999 { 1.0 } else { 0.0 })
        .collect();
    let mut noise = Rng::new(p.noise_seed);
    for v in &mut nir {
        let x = (v.max(0.0) * p.gain).min(1.0).powf(p.gamma);
        *v = (x + p.noise * noise.normal() as f32).clamp(0.0, 1.0);
    }
    (nir, rgb, mask)
}

/// One crop's (nir, rgb, mask) planes.
pub(super) type Crop = (Vec<f32>, Vec<f32>, Vec<f32>);

/// A batch as tensors (nir, rgb, mask), each (batch, c, crop, crop).
pub(super) fn make_batch(
    samples: &[Sample],
    plans: &[CropPlan],
    crop: usize,
    dev: Device,
) -> [Tensor; 3] {
    let crops: Vec<_> = plans
        .par_iter()
        .map(|p| make_crop(samples, p, crop))
        .collect();
    let n = plans.len() as i64;
    let c = crop as i64;
    let stack = |pick: &dyn Fn(&Crop) -> &Vec<f32>, ch: i64| {
        let flat: Vec<f32> = crops.iter().flat_map(|t| pick(t).iter().copied()).collect();
        Tensor::from_slice(&flat).view([n, ch, c, c]).to_device(dev)
    };
    [
        stack(&|t| &t.0, 1),
        stack(&|t| &t.1, 3),
        stack(&|t| &t.2, 1),
    ]
}

/// The binned chroma's loss looks at every `CHROMA_LOSS_STRIDE`-th pixel in x and y.
pub(super) const CHROMA_LOSS_STRIDE: i64 = 2;

/// How often each chroma bin holds a training pixel (every 4th pixel in x and y, masks
/// honoured): the prior that class rebalancing inverts.
pub(super) fn chroma_histogram(samples: &[Sample], k: i64) -> Vec<f64> {
    /// Neighbouring pixels share their colour; a sparse grid counts the same histogram 16x faster.
    const EVERY: usize = 4;
    let mut counts = vec![0.0; (k * k) as usize];
    for s in samples {
        let n = s.w * s.h;
        for y in (0..s.h).step_by(EVERY) {
            for x in (0..s.w).step_by(EVERY) {
                let i = y * s.w + x;
                if s.mask[i] < 0.5 {
                    continue;
                }
                let (r, g, b) = (s.rgb[i], s.rgb[n + i], s.rgb[2 * n + i]);
                let luma = 0.299 * r + 0.587 * g + 0.114 * b;
                counts[bins::nearest(k, (b - luma) / 1.772, (r - luma) / 1.402)] += 1.0;
            }
        }
    }
    counts
}
