//! `colornet`: a residual encoder of asymmetric (3x1 then 1x3) blocks, global features (pooled
//! over the whole view) fused with the local ones at the bottom, and a decoder that upsamples
//! bilinearly. Its output suits the BFWLS detail fusion (`--post bfwls`).

use tch::nn::Path;
use tch::Tensor;

use super::layers::{crop, pad_to, resize, Conv, Dense};
use super::{Forward, NetConfig};
use crate::models::rng::Rng;

/// Residual block of asymmetric convolutions.
struct AsymBlock {
    a: Conv,
    b: Conv,
}

impl AsymBlock {
    fn new(p: &Path, rng: &mut Rng, c: i64) -> AsymBlock {
        AsymBlock {
            a: Conv::new(&(p / "a"), rng, c, c, 3, 1, 1, 1, 2f64.sqrt()),
            b: Conv::new(&(p / "b"), rng, c, c, 1, 3, 1, 1, 0.1),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        (x + self.b.forward(&self.a.forward(x).relu())).relu()
    }
}

pub struct ColorNet {
    stem: Conv,
    down: Vec<(Conv, AsymBlock)>,
    global: (Dense, Dense),
    fuse: Conv,
    up: Vec<Conv>,
    head: Conv,
}

impl ColorNet {
    pub fn new(p: &Path, rng: &mut Rng, cfg: &NetConfig) -> ColorNet {
        let w = cfg.width;
        let widths = [w, 2 * w, 4 * w];
        let stem = Conv::same(&(p / "stem"), rng, cfg.in_channels, w, 3);
        let mut down = Vec::new();
        let mut cin = w;
        for (i, &c) in widths.iter().enumerate() {
            let conv = Conv::new(
                &(p / format!("down{i}")),
                rng,
                cin,
                c,
                3,
                3,
                2,
                1,
                2f64.sqrt(),
            );
            down.push((conv, AsymBlock::new(&(p / format!("res{i}")), rng, c)));
            cin = c;
        }
        let top = widths[2];
        let up = (0..3)
            .map(|i| {
                let (a, b) = (widths[2 - i], if i == 2 { w } else { widths[1 - i] });
                Conv::same(&(p / format!("up{i}")), rng, a, b, 3)
            })
            .collect();
        ColorNet {
            stem,
            down,
            global: (
                Dense::new(&(p / "g1"), rng, top, top),
                Dense::new(&(p / "g2"), rng, top, top),
            ),
            fuse: Conv::same(&(p / "fuse"), rng, 2 * top, top, 1),
            up,
            head: Conv::new(&(p / "head"), rng, w + cfg.in_channels, 3, 3, 3, 1, 1, 0.1),
        }
    }

    pub fn forward(&self, nir: &Tensor) -> Forward {
        let (x, size) = pad_to(&(nir * 2.0 - 1.0), 8);
        let mut h = self.stem.forward(&x).relu();
        for (conv, block) in &self.down {
            h = block.forward(&conv.forward(&h).relu());
        }
        let s = h.size();
        let g = h.mean_dim([2i64, 3].as_slice(), false, tch::Kind::Float);
        let g = self.global.1.forward(&self.global.0.forward(&g).relu());
        let g = g
            .view([s[0], s[1], 1, 1])
            .expand([s[0], s[1], s[2], s[3]], false);
        h = self.fuse.forward(&Tensor::cat(&[h, g], 1)).relu();
        for conv in &self.up {
            let s = h.size();
            h = conv.forward(&resize(&h, s[2] * 2, s[3] * 2)).relu();
        }
        let rgb = self.head.forward(&Tensor::cat(&[h, x], 1)) + 0.5;
        Forward {
            rgb: crop(&rgb, size),
            gray: None,
            scale: None,
            chroma_logits: None,
        }
    }
}
