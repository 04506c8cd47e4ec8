//! `dct`, the reproduction of the published DCT-domain residual networks (DCT-RCAN and its
//! kin): a fixed orthonormal 4x4 DCT turns the NIR into 16 coefficient planes at a quarter of
//! the resolution, residual groups of residual blocks with channel attention work there, and
//! the network predicts each RGB channel's coefficients as a residual on the NIR's, which the
//! inverse DCT (the same basis, transposed) turns back into pixels.
//!
//! Sized for this CPU by default (`GROUPS` x `BLOCKS`, see below); the card records the depth,
//! so a GPU can train the published 10 x 20.

use tch::nn::Path;
use tch::{Kind, Tensor};

use super::layers::{add_macs, crop, pad_to, Conv, Dense};
use super::{Forward, NetConfig};
use crate::models::rng::Rng;

/// The DCT block: 4x4 pixels become 16 coefficients, so the network works at a quarter of the
/// resolution (16x fewer positions), where a 3x3 convolution sees 12x12 pixels.
pub const BLOCK: i64 = 4;

/// The default residual groups and channel-attention blocks per group (`--groups`,
/// `--blocks`). The published RCAN has 10 x 20 at 64 channels (about 0.1 TFLOP per 256x256
/// image); 4 x 8 at 64 channels is about a sixth of it, so 300 epochs over the ~560 training
/// samples fit about 12 hours of bf16 on this CPU (issue 22). A GPU trains the published depth.
pub const GROUPS: usize = 4;
pub const BLOCKS: usize = 8;
/// Twice the published depth in each direction: deeper than that is untested here.
pub const MAX_GROUPS: usize = 20;
pub const MAX_BLOCKS: usize = 40;

/// Channel attention squeezes `width` channels by this factor (RCAN's choice).
const REDUCTION: i64 = 16;

/// The orthonormal DCT-II basis of `n` points: row k is the k-th cosine.
fn dct_matrix(n: usize) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    for k in 0..n {
        let scale = if k == 0 {
            (1.0 / n as f64).sqrt()
        } else {
            (2.0 / n as f64).sqrt()
        };
        for i in 0..n {
            m[k * n + i] = scale
                * (std::f64::consts::PI * (2 * i + 1) as f64 * k as f64 / (2 * n) as f64).cos();
        }
    }
    m
}

/// The 2-D basis as a convolution kernel (16, 1, 4, 4): output channel (u * 4 + v) is the
/// coefficient of vertical frequency u and horizontal frequency v.
pub fn dct_kernel(device: tch::Device) -> Tensor {
    let n = BLOCK as usize;
    let m = dct_matrix(n);
    let mut k = Vec::with_capacity(n.pow(4));
    for u in 0..n {
        for v in 0..n {
            for y in 0..n {
                for x in 0..n {
                    k.push((m[u * n + y] * m[v * n + x]) as f32);
                }
            }
        }
    }
    Tensor::from_slice(&k)
        .view([BLOCK * BLOCK, 1, BLOCK, BLOCK])
        .to_device(device)
}

/// Forward DCT of every 4x4 block: (b, c, H, W) with H, W multiples of 4 -> (b, 16c, H/4, W/4).
pub fn dct(x: &Tensor, kernel: &Tensor) -> Tensor {
    let s = x.size();
    let flat = x.reshape([s[0] * s[1], 1, s[2], s[3]]);
    let y = flat.conv2d(kernel, None::<Tensor>, [BLOCK, BLOCK], [0, 0], [1, 1], 1);
    let ys = y.size();
    y.reshape([s[0], s[1] * BLOCK * BLOCK, ys[2], ys[3]])
}

/// Inverse of [`dct`]: the basis is orthonormal, so its transpose (a transposed convolution
/// with the same kernel) inverts it exactly.
pub fn idct(x: &Tensor, kernel: &Tensor) -> Tensor {
    let s = x.size();
    let c = s[1] / (BLOCK * BLOCK);
    let flat = x.reshape([s[0] * c, BLOCK * BLOCK, s[2], s[3]]);
    let y = flat.conv_transpose2d(
        &kernel.to_kind(flat.kind()),
        None::<Tensor>,
        [BLOCK, BLOCK],
        [0, 0],
        [0, 0],
        1,
        [1, 1],
    );
    let ys = y.size();
    y.reshape([s[0], c, ys[2], ys[3]])
}

/// conv-relu-conv, scaled by a per-channel gate from the block's mean (channel attention),
/// added to the input.
struct Rcab {
    a: Conv,
    b: Conv,
    squeeze: Dense,
    excite: Dense,
}

impl Rcab {
    fn new(p: &Path, rng: &mut Rng, c: i64) -> Rcab {
        let r = (c / REDUCTION).max(1);
        Rcab {
            a: Conv::same(&(p / "a"), rng, c, c, 3),
            // Small: every block starts close to identity, so a deep stack trains from the start.
            b: Conv::new(&(p / "b"), rng, c, c, 3, 3, 1, 1, 0.1),
            squeeze: Dense::new(&(p / "sq"), rng, c, r),
            excite: Dense::new(&(p / "ex"), rng, r, c),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.b.forward(&self.a.forward(x).relu());
        let g = h.mean_dim([2i64, 3].as_slice(), false, h.kind());
        let g = self
            .excite
            .forward(&self.squeeze.forward(&g).relu())
            .sigmoid();
        x + h * g.unsqueeze(-1).unsqueeze(-1)
    }
}

/// Blocks, a closing convolution, and a skip over the group.
struct Group {
    blocks: Vec<Rcab>,
    close: Conv,
}

impl Group {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for b in &self.blocks {
            h = b.forward(&h);
        }
        x + self.close.forward(&h)
    }
}

pub struct Dct {
    kernel: Tensor,
    head: Conv,
    groups: Vec<Group>,
    close: Conv,
    tail: Conv,
    cin: i64,
}

impl Dct {
    pub fn new(p: &Path, rng: &mut Rng, cfg: &NetConfig) -> Dct {
        let (w, cin) = (cfg.width, cfg.in_channels);
        let coeffs = BLOCK * BLOCK;
        let groups = (0..cfg.groups)
            .map(|g| Group {
                blocks: (0..cfg.blocks)
                    .map(|i| Rcab::new(&(p / format!("g{g}_b{i}")), rng, w))
                    .collect(),
                close: Conv::new(&(p / format!("g{g}_close")), rng, w, w, 3, 3, 1, 1, 0.1),
            })
            .collect();
        Dct {
            kernel: dct_kernel(p.device()),
            head: Conv::same(&(p / "head"), rng, cin * coeffs, w, 3),
            groups,
            close: Conv::new(&(p / "close"), rng, w, w, 3, 3, 1, 1, 0.1),
            // Starts near zero: the first output is the NIR's coefficients in every channel.
            tail: Conv::new(&(p / "tail"), rng, w, 3 * coeffs, 3, 3, 1, 1, 0.1),
            cin,
        }
    }

    pub fn forward(&self, nir: &Tensor) -> Forward {
        let (x, size) = pad_to(nir, BLOCK);
        // The transforms are exact in f32 whatever the layers compute in.
        let x = x.to_kind(Kind::Float);
        let coeffs = dct(&(&x * 2.0 - 1.0), &self.kernel);
        let s = coeffs.size();
        add_macs((s[0] * s[1] * s[2] * s[3] * BLOCK * BLOCK) as u64);
        let shallow = self.head.forward(&coeffs);
        let mut h = shallow.shallow_clone();
        for g in &self.groups {
            h = g.forward(&h);
        }
        let h = &shallow + self.close.forward(&h);
        let out = self.tail.forward(&h).to_kind(Kind::Float);
        // Residual on the NIR's coefficients (the mean band for several bands), per channel.
        let base = if self.cin == 1 {
            coeffs
        } else {
            let n = BLOCK * BLOCK;
            coeffs.view([s[0], self.cin, n, s[2], s[3]]).mean_dim(
                [1i64].as_slice(),
                false,
                Kind::Float,
            )
        };
        let rgb = idct(&(out + base.repeat([1, 3, 1, 1])), &self.kernel);
        add_macs((s[0] * 3 * BLOCK * BLOCK * s[2] * s[3] * BLOCK * BLOCK) as u64);
        Forward {
            rgb: crop(&((rgb + 1.0) * 0.5), size),
            gray: None,
            scale: None,
            chroma_logits: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn the_basis_is_orthonormal_and_the_inverse_is_exact() {
        let k = dct_kernel(Device::Cpu).view([16, 16]);
        let gram = k.matmul(&k.tr());
        let eye = Tensor::eye(16, (Kind::Float, Device::Cpu));
        let err = f64::try_from((gram - eye).abs().max()).unwrap();
        assert!(err < 1e-6, "{err}");
        let kernel = dct_kernel(Device::Cpu);
        let x = Tensor::rand([2, 3, 12, 20], (Kind::Float, Device::Cpu));
        let c = dct(&x, &kernel);
        assert_eq!(c.size(), [2, 48, 3, 5]);
        let back = idct(&c, &kernel);
        let err = f64::try_from((back - &x).abs().max()).unwrap();
        assert!(err < 1e-5, "{err}");
    }

    #[test]
    fn the_first_coefficient_is_the_block_mean_times_four() {
        let kernel = dct_kernel(Device::Cpu);
        let x = Tensor::rand([1, 1, 8, 8], (Kind::Float, Device::Cpu));
        let c = dct(&x, &kernel);
        let dc = c.narrow(1, 0, 1);
        let mean = x.avg_pool2d([4, 4], [4, 4], [0, 0], false, true, None) * 4.0;
        let err = f64::try_from((dc - mean).abs().max()).unwrap();
        assert!(err < 1e-5, "{err}");
    }
}
