//! `fast`, the default: our real-time design. A small encoder-decoder that sees the NIR at the
//! reduced inference size, halves it four times (one global feature fused back at the bottom, so
//! sky and foliage are told apart by the whole view), and predicts luminance as a correction of
//! the NIR plus two chroma planes (decoupled), or RGB directly (the ablation). The full-resolution
//! NIR restores the detail afterwards through the fast guided filter.

use tch::nn::Path;
use tch::Tensor;

use super::bins::ChromaBins;
use super::layers::{crop, pad_to, up_cat, Conv, Dense, Norm};
use super::{Forward, NetConfig};
use crate::models::rng::Rng;

pub struct Fast {
    stem: Conv,
    e1: Conv,
    d2: Conv,
    e2: Conv,
    d3: Conv,
    e3: Conv,
    d4: Conv,
    e4: Conv,
    g1: Dense,
    g2: Dense,
    u3: Conv,
    u2: Conv,
    u1: Conv,
    u0: Conv,
    head: Conv,
    /// With `NetConfig::chroma_bins`: the chroma distribution, read from the head's features.
    bins: Option<ChromaBins>,
    /// One per convolution before the head, in forward order.
    norms: Vec<Norm>,
    decoupled: bool,
}

impl Fast {
    pub fn new(p: &Path, rng: &mut Rng, cfg: &NetConfig) -> Fast {
        let (w, cin) = (cfg.width, cfg.in_channels);
        let s2 = |p: Path, rng: &mut Rng, a, b| Conv::new(&p, rng, a, b, 3, 3, 2, 1, 2f64.sqrt());
        let widths = [
            w,
            w,
            2 * w,
            2 * w,
            4 * w,
            4 * w,
            6 * w,
            6 * w,
            4 * w,
            2 * w,
            w,
            w,
        ];
        let norms = widths
            .iter()
            .enumerate()
            .map(|(i, &c)| Norm::new(&(p / format!("n{i}")), c, cfg.norm))
            .collect();
        Fast {
            norms,
            stem: s2(p / "stem", rng, cin, w),
            e1: Conv::same(&(p / "e1"), rng, w, w, 3),
            d2: s2(p / "d2", rng, w, 2 * w),
            e2: Conv::same(&(p / "e2"), rng, 2 * w, 2 * w, 3),
            d3: s2(p / "d3", rng, 2 * w, 4 * w),
            e3: Conv::same(&(p / "e3"), rng, 4 * w, 4 * w, 3),
            d4: s2(p / "d4", rng, 4 * w, 6 * w),
            e4: Conv::same(&(p / "e4"), rng, 6 * w, 6 * w, 3),
            g1: Dense::new(&(p / "g1"), rng, 6 * w, 6 * w),
            g2: Dense::new(&(p / "g2"), rng, 6 * w, 6 * w),
            u3: Conv::same(&(p / "u3"), rng, 10 * w, 4 * w, 3),
            u2: Conv::same(&(p / "u2"), rng, 6 * w, 2 * w, 3),
            u1: Conv::same(&(p / "u1"), rng, 3 * w, w, 3),
            u0: Conv::same(&(p / "u0"), rng, w + cin, w, 3),
            head: Conv::new(&(p / "head"), rng, w, 3, 3, 3, 1, 1, 0.1),
            decoupled: cfg.decoupled,
            bins: (cfg.chroma_bins > 0)
                .then(|| ChromaBins::new(p, rng, w, cfg.chroma_bins, cfg.chroma_temperature)),
        }
    }

    pub fn forward(&self, nir: &Tensor, train: bool) -> Forward {
        let (x, size) = pad_to(&(nir * 2.0 - 1.0), 16);
        let n = |i: usize, t: Tensor| self.norms[i].forward(&t, train).relu();
        let e1 = n(1, self.e1.forward(&n(0, self.stem.forward(&x))));
        let e2 = n(3, self.e2.forward(&n(2, self.d2.forward(&e1))));
        let e3 = n(5, self.e3.forward(&n(4, self.d3.forward(&e2))));
        let e4 = n(7, self.e4.forward(&n(6, self.d4.forward(&e3))));
        let g = e4.mean_dim([2i64, 3].as_slice(), false, tch::Kind::Float);
        let g = self.g2.forward(&self.g1.forward(&g).relu());
        let e4 = (e4 + g.unsqueeze(-1).unsqueeze(-1)).relu();
        let u3 = n(8, self.u3.forward(&up_cat(&e4, &e3)));
        let u2 = n(9, self.u2.forward(&up_cat(&u3, &e2)));
        let u1 = n(10, self.u1.forward(&up_cat(&u2, &e1)));
        let u0 = n(11, self.u0.forward(&up_cat(&u1, &x)));
        let out = crop(&self.head.forward(&u0), size);
        let features = crop(&u0, size);
        Forward::from_head(nir, &out, self.decoupled, self.bins.as_ref(), &features)
    }
}
