//! `hq`, the quality model: for offline work and as the teacher of the real-time default. The
//! same decoupled output and guided-filter detail as `fast`, but it sees the frame at 4x the
//! pixels (320x240 for 640x480), and every level carries normalised residual blocks with 2-4x
//! the channels, plus a global context vector that gates the bottom features (sky, foliage and
//! walls are told apart by the whole view, not by a 3x3 patch).

use tch::nn::Path;
use tch::Tensor;

use super::bins::ChromaBins;
use super::layers::{crop, pad_to, up_cat, Conv, Dense, Norm};
use super::{Forward, NetConfig};
use crate::models::rng::Rng;

/// Blocks per encoder level, shallow to deep: the deep levels are small, so depth is cheap there.
const BLOCKS: [usize; 4] = [1, 1, 2, 2];

/// Channel multiples of `width` per encoder level.
const MULT: [i64; 4] = [1, 2, 4, 8];

/// conv-norm-relu-conv-norm, added to the input, relu. The second conv starts small (gain 0.1)
/// so a deep stack begins close to identity and trains stably.
struct Block {
    a: Conv,
    na: Norm,
    b: Conv,
    nb: Norm,
}

impl Block {
    fn new(p: &Path, rng: &mut Rng, c: i64, norm: bool) -> Block {
        Block {
            a: Conv::same(&(p / "a"), rng, c, c, 3),
            na: Norm::new(&(p / "na"), c, norm),
            b: Conv::new(&(p / "b"), rng, c, c, 3, 3, 1, 1, 0.1),
            nb: Norm::new(&(p / "nb"), c, norm),
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.na.forward(&self.a.forward(x), train).relu();
        (x + self.nb.forward(&self.b.forward(&h), train)).relu()
    }
}

/// A convolution followed by optional normalisation and ReLU.
struct Unit {
    conv: Conv,
    norm: Norm,
}

impl Unit {
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.norm.forward(&self.conv.forward(x), train).relu()
    }
}

pub struct Hq {
    /// Stride-2 convolutions entering each level (the first takes the NIR).
    down: Vec<Unit>,
    blocks: Vec<Vec<Block>>,
    g1: Dense,
    g2: Dense,
    /// Decoder, deep to shallow: fuse the upsampled features with the skip of each level.
    up: Vec<(Unit, Block)>,
    /// At the inference size, with the NIR itself concatenated.
    last: Unit,
    head: Conv,
    /// With `NetConfig::chroma_bins`: the chroma distribution, read from the head's features.
    bins: Option<ChromaBins>,
    decoupled: bool,
}

impl Hq {
    pub fn new(p: &Path, rng: &mut Rng, cfg: &NetConfig) -> Hq {
        let (w, cin, norm) = (cfg.width, cfg.in_channels, cfg.norm);
        let unit = |p: Path, rng: &mut Rng, a: i64, b: i64, stride: i64| Unit {
            conv: Conv::new(&p, rng, a, b, 3, 3, stride, 1, 2f64.sqrt()),
            norm: Norm::new(&(&p / "n"), b, norm),
        };
        let mut down = Vec::new();
        let mut blocks = Vec::new();
        let mut prev = cin;
        for (level, (&m, &n)) in MULT.iter().zip(&BLOCKS).enumerate() {
            let c = m * w;
            down.push(unit(p / format!("down{level}"), rng, prev, c, 2));
            blocks.push(
                (0..n)
                    .map(|i| Block::new(&(p / format!("res{level}_{i}")), rng, c, norm))
                    .collect(),
            );
            prev = c;
        }
        let deep = MULT[3] * w;
        let mut up = Vec::new();
        for level in (0..3).rev() {
            let c = MULT[level] * w;
            let from = MULT[level + 1] * w;
            up.push((
                unit(p / format!("up{level}"), rng, from + c, c, 1),
                Block::new(&(p / format!("upres{level}")), rng, c, norm),
            ));
        }
        Hq {
            down,
            blocks,
            g1: Dense::new(&(p / "g1"), rng, deep, deep),
            g2: Dense::new(&(p / "g2"), rng, deep, deep),
            up,
            last: unit(p / "last", rng, w + cin, w, 1),
            head: Conv::new(&(p / "head"), rng, w, 3, 3, 3, 1, 1, 0.1),
            decoupled: cfg.decoupled,
            bins: (cfg.chroma_bins > 0)
                .then(|| ChromaBins::new(p, rng, w, cfg.chroma_bins, cfg.chroma_temperature)),
        }
    }

    pub fn forward(&self, nir: &Tensor, train: bool) -> Forward {
        let (x, size) = pad_to(&(nir * 2.0 - 1.0), 16);
        let mut skips = Vec::with_capacity(4);
        let mut h = x.shallow_clone();
        for (down, blocks) in self.down.iter().zip(&self.blocks) {
            h = down.forward(&h, train);
            for b in blocks {
                h = b.forward(&h, train);
            }
            skips.push(h.shallow_clone());
        }
        // Global context: a per-channel gate and offset from the whole view.
        let g = h.mean_dim([2i64, 3].as_slice(), false, tch::Kind::Float);
        let g = self.g2.forward(&self.g1.forward(&g).relu());
        let mut h = (h + g.unsqueeze(-1).unsqueeze(-1)).relu();
        for (i, (fuse, block)) in self.up.iter().enumerate() {
            let skip = &skips[2 - i];
            h = block.forward(&fuse.forward(&up_cat(&h, skip), train), train);
        }
        let h = self.last.forward(&up_cat(&h, &x), train);
        let out = crop(&self.head.forward(&h), size);
        let features = crop(&h, size);
        Forward::from_head(nir, &out, self.decoupled, self.bins.as_ref(), &features)
    }
}
