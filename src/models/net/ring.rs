//! `ring`: the grayscale-assisted two-stage network. Stage one turns NIR into gray (luminance)
//! with a small U-Net whose bottleneck has a frequency block (FFT, 1x1 convolutions on the real
//! and imaginary parts, inverse FFT, added back); stage two turns gray (with the NIR beside it)
//! into chrominance. Trained with the frequency loss on the output.

use tch::nn::Path;
use tch::Tensor;

use super::layers::{crop, pad_to, up_cat, ycc_to_rgb, Conv, DoubleConv};
use super::{Forward, NetConfig};
use crate::models::rng::Rng;

/// A three-level U-Net: `cin` channels in, `cout` out, optional frequency block at the bottom.
struct SmallUnet {
    d: [DoubleConv; 3],
    u: [DoubleConv; 2],
    fft: Option<(Conv, Conv)>,
    head: Conv,
}

impl SmallUnet {
    fn new(p: &Path, rng: &mut Rng, cin: i64, cout: i64, w: i64, fft: bool) -> SmallUnet {
        SmallUnet {
            d: [
                DoubleConv::new(&(p / "d0"), rng, cin, w),
                DoubleConv::new(&(p / "d1"), rng, w, 2 * w),
                DoubleConv::new(&(p / "d2"), rng, 2 * w, 4 * w),
            ],
            u: [
                DoubleConv::new(&(p / "u1"), rng, 6 * w, 2 * w),
                DoubleConv::new(&(p / "u0"), rng, 3 * w, w),
            ],
            fft: fft.then(|| {
                (
                    Conv::same(&(p / "fft_a"), rng, 8 * w, 8 * w, 1),
                    Conv::new(&(p / "fft_b"), rng, 8 * w, 8 * w, 1, 1, 1, 1, 0.1),
                )
            }),
            head: Conv::new(&(p / "head"), rng, w, cout, 3, 3, 1, 1, 0.1),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let pool = |t: &Tensor| t.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
        let s0 = self.d[0].forward(x);
        let s1 = self.d[1].forward(&pool(&s0));
        let mut b = self.d[2].forward(&pool(&s1));
        if let Some((fa, fb)) = &self.fft {
            let s = b.size();
            let f = b.fft_rfft2(None::<&[i64]>, [-2i64, -1].as_slice(), "ortho");
            let ri = Tensor::cat(&[f.real(), f.imag()], 1);
            let ri = fb.forward(&fa.forward(&ri).relu());
            let c = s[1];
            let f = Tensor::complex(&ri.narrow(1, 0, c), &ri.narrow(1, c, c));
            // Out of place: the FFT's backward needs `b` as it was.
            b = &b + f.fft_irfft2([s[2], s[3]].as_slice(), [-2i64, -1].as_slice(), "ortho");
        }
        let u1 = self.u[0].forward(&up_cat(&b, &s1));
        let u0 = self.u[1].forward(&up_cat(&u1, &s0));
        self.head.forward(&u0)
    }
}

pub struct Ring {
    gray: SmallUnet,
    chroma: SmallUnet,
}

impl Ring {
    pub fn new(p: &Path, rng: &mut Rng, cfg: &NetConfig) -> Ring {
        let (w, cin) = (cfg.width, cfg.in_channels);
        Ring {
            gray: SmallUnet::new(&(p / "gray"), rng, cin, 1, w, true),
            chroma: SmallUnet::new(&(p / "chroma"), rng, cin + 1, 2, w, false),
        }
    }

    pub fn forward(&self, nir: &Tensor) -> Forward {
        let (x, size) = pad_to(nir, 4);
        let base = x.mean_dim([1i64].as_slice(), true, tch::Kind::Float);
        let gray = base + self.gray.forward(&(&x * 2.0 - 1.0));
        let chroma = self
            .chroma
            .forward(&(Tensor::cat(&[&gray, &x], 1) * 2.0 - 1.0));
        let rgb = ycc_to_rgb(&gray, &chroma.narrow(1, 0, 1), &chroma.narrow(1, 1, 1));
        Forward {
            rgb: crop(&rgb, size),
            gray: Some(crop(&gray, size)),
            scale: None,
            chroma_logits: None,
        }
    }
}
