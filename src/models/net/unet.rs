//! `unet`: the plain U-Net baseline of the multi-band paper at full resolution (four halvings,
//! two 3x3 convolutions per level, bilinear upsampling), scaled down in width.

use tch::nn::Path;
use tch::Tensor;

use super::layers::{crop, pad_to, up_cat, Conv, DoubleConv};
use super::{Forward, NetConfig};
use crate::models::rng::Rng;

pub struct Unet {
    down: Vec<DoubleConv>,
    up: Vec<DoubleConv>,
    head: Conv,
}

impl Unet {
    pub fn new(p: &Path, rng: &mut Rng, cfg: &NetConfig) -> Unet {
        let w = cfg.width;
        let widths = [w, 2 * w, 4 * w, 8 * w, 16 * w];
        let mut down = Vec::new();
        let mut cin = cfg.in_channels;
        for (i, &c) in widths.iter().enumerate() {
            down.push(DoubleConv::new(&(p / format!("down{i}")), rng, cin, c));
            cin = c;
        }
        let mut up = Vec::new();
        for i in (0..4).rev() {
            up.push(DoubleConv::new(
                &(p / format!("up{i}")),
                rng,
                cin + widths[i],
                widths[i],
            ));
            cin = widths[i];
        }
        Unet {
            down,
            up,
            head: Conv::new(&(p / "head"), rng, w, 3, 1, 1, 1, 1, 0.1),
        }
    }

    pub fn forward(&self, nir: &Tensor) -> Forward {
        let (x, size) = pad_to(&(nir * 2.0 - 1.0), 16);
        let mut skips = Vec::new();
        let mut h = x;
        for (i, d) in self.down.iter().enumerate() {
            if i > 0 {
                h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
            h = d.forward(&h);
            skips.push(h.shallow_clone());
        }
        skips.pop();
        for u in &self.up {
            let skip = skips.pop().expect("one skip per level");
            h = u.forward(&up_cat(&h, &skip));
        }
        Forward {
            rgb: crop(&self.head.forward(&h), size) + 0.5,
            gray: None,
            scale: None,
            chroma_logits: None,
        }
    }
}
