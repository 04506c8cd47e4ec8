//! `twobranch`: one shared encoder over N NIR bands (a multi-band camera stacks 780/850/940 nm as
//! channels), a gray decoder that also predicts the per-pixel scale between NIR and gray
//! gradients, and an RGB decoder. Trained with the SSIM cross-branch loss, the structure loss and
//! the gradient loss on top of L1.

use tch::nn::Path;
use tch::Tensor;

use super::layers::{crop, pad_to, up_cat, Conv, DoubleConv};
use super::{Forward, NetConfig};
use crate::models::rng::Rng;

struct Decoder {
    u: [DoubleConv; 2],
    head: Conv,
}

impl Decoder {
    fn new(p: &Path, rng: &mut Rng, w: i64, cout: i64) -> Decoder {
        Decoder {
            u: [
                DoubleConv::new(&(p / "u1"), rng, 6 * w, 2 * w),
                DoubleConv::new(&(p / "u0"), rng, 3 * w, w),
            ],
            head: Conv::new(&(p / "head"), rng, w, cout, 3, 3, 1, 1, 0.1),
        }
    }

    fn forward(&self, b: &Tensor, s1: &Tensor, s0: &Tensor) -> Tensor {
        let u1 = self.u[0].forward(&up_cat(b, s1));
        self.head.forward(&self.u[1].forward(&up_cat(&u1, s0)))
    }
}

pub struct TwoBranch {
    enc: [DoubleConv; 3],
    gray: Decoder,
    rgb: Decoder,
}

impl TwoBranch {
    pub fn new(p: &Path, rng: &mut Rng, cfg: &NetConfig) -> TwoBranch {
        let (w, cin) = (cfg.width, cfg.in_channels);
        TwoBranch {
            enc: [
                DoubleConv::new(&(p / "e0"), rng, cin, w),
                DoubleConv::new(&(p / "e1"), rng, w, 2 * w),
                DoubleConv::new(&(p / "e2"), rng, 2 * w, 4 * w),
            ],
            gray: Decoder::new(&(p / "gray"), rng, w, 2),
            rgb: Decoder::new(&(p / "rgb"), rng, w, 3),
        }
    }

    pub fn forward(&self, nir: &Tensor) -> Forward {
        let (x, size) = pad_to(nir, 4);
        let pool = |t: &Tensor| t.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
        let s0 = self.enc[0].forward(&(&x * 2.0 - 1.0));
        let s1 = self.enc[1].forward(&pool(&s0));
        let b = self.enc[2].forward(&pool(&s1));
        let base = x.mean_dim([1i64].as_slice(), true, tch::Kind::Float);
        let g = self.gray.forward(&b, &s1, &s0);
        let gray = base + g.narrow(1, 0, 1);
        // exp keeps the scale positive and starts it at 1 (the head starts near zero).
        let scale = g.narrow(1, 1, 1).exp();
        let rgb = self.rgb.forward(&b, &s1, &s0) + 0.5;
        Forward {
            rgb: crop(&rgb, size),
            gray: Some(crop(&gray, size)),
            scale: Some(crop(&scale, size)),
            chroma_logits: None,
        }
    }
}
