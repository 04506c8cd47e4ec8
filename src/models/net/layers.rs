//! The building blocks every network shares: convolutions whose weights come from our own seeded
//! generator (so `--seed` alone fixes a run) and which count their multiply-adds when asked, so
//! a model card can state GFLOPs without a profiler.

use std::cell::Cell;

use tch::nn::Path;
use tch::{Kind, Tensor};

use crate::models::rng::Rng;

thread_local! {
    static MACS: Cell<Option<u64>> = const { Cell::new(None) };
    static COMPUTE: Cell<Kind> = const { Cell::new(Kind::Float) };
}

/// Runs `f` with the convolutions and linear layers computing in `kind` (`Kind::BFloat16`:
/// twice fp32's speed on this CPU's AVX-512 BF16). The weights stay f32 (the master copy the
/// optimiser updates) and are cast on the way in, so gradients reach them in f32; what the
/// layers return is in `kind`, and the networks return f32 (`Model::forward`).
pub fn with_compute<R>(kind: Kind, f: impl FnOnce() -> R) -> R {
    let before = COMPUTE.with(|c| c.replace(kind));
    let out = f();
    COMPUTE.with(|c| c.set(before));
    out
}

/// The kind the layers compute in (see [`with_compute`]).
pub fn compute_kind() -> Kind {
    COMPUTE.with(Cell::get)
}

/// `t` in the compute kind (a no-op in f32).
fn in_compute(t: &Tensor) -> Tensor {
    let k = compute_kind();
    if t.kind() == k {
        t.shallow_clone()
    } else {
        t.to_kind(k)
    }
}

/// Runs `f` and returns the multiply-adds the convolutions and linear layers in it performed.
pub fn count_macs(f: impl FnOnce()) -> u64 {
    MACS.with(|m| m.set(Some(0)));
    f();
    MACS.with(|m| m.replace(None)).unwrap_or(0)
}

pub(super) fn add_macs(n: u64) {
    MACS.with(|m| {
        if let Some(v) = m.get() {
            m.set(Some(v + n));
        }
    });
}

/// He-uniform weights for a layer with `fan_in` inputs per output.
fn he_uniform(rng: &mut Rng, shape: &[i64], fan_in: i64, gain: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    let bound = gain * (3.0 / fan_in as f64).sqrt();
    let data: Vec<f32> = (0..n)
        .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
        .collect();
    Tensor::from_slice(&data).reshape(shape)
}

/// A 2-D convolution with "same" padding (for odd kernels) and an optional stride.
#[derive(Debug)]
pub struct Conv {
    w: Tensor,
    b: Tensor,
    stride: i64,
    pad: [i64; 2],
    groups: i64,
}

impl Conv {
    /// `kh` x `kw` kernel; `gain` scales the initial weights (small for the last layer of a
    /// residual branch so every block starts close to identity).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        p: &Path,
        rng: &mut Rng,
        cin: i64,
        cout: i64,
        kh: i64,
        kw: i64,
        stride: i64,
        groups: i64,
        gain: f64,
    ) -> Conv {
        let fan_in = cin / groups * kh * kw;
        let w = p.add(
            "w",
            he_uniform(rng, &[cout, cin / groups, kh, kw], fan_in, gain).to_device(p.device()),
            true,
        );
        let b = p.add("b", Tensor::zeros([cout], (Kind::Float, p.device())), true);
        Conv {
            w,
            b,
            stride,
            pad: [kh / 2, kw / 2],
            groups,
        }
    }

    /// The kernel (cout, cin / groups, kh, kw) and the bias (cout).
    pub fn weight_and_bias(&self) -> (&Tensor, &Tensor) {
        (&self.w, &self.b)
    }

    /// k x k, stride 1.
    pub fn same(p: &Path, rng: &mut Rng, cin: i64, cout: i64, k: i64) -> Conv {
        Conv::new(p, rng, cin, cout, k, k, 1, 1, 2f64.sqrt())
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let y = in_compute(x).conv2d(
            &in_compute(&self.w),
            Some(&in_compute(&self.b)),
            [self.stride, self.stride],
            self.pad,
            [1, 1],
            self.groups,
        );
        let s = self.w.size();
        let out: i64 = y.size().iter().product();
        add_macs((out * s[1] * s[2] * s[3]) as u64);
        y
    }
}

/// A fully connected layer on (batch, features).
#[derive(Debug)]
pub struct Dense {
    w: Tensor,
    b: Tensor,
}

impl Dense {
    pub fn new(p: &Path, rng: &mut Rng, cin: i64, cout: i64) -> Dense {
        let w = p.add(
            "w",
            he_uniform(rng, &[cout, cin], cin, 2f64.sqrt()).to_device(p.device()),
            true,
        );
        let b = p.add("b", Tensor::zeros([cout], (Kind::Float, p.device())), true);
        Dense { w, b }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let s = self.w.size();
        add_macs((x.size()[0] * s[0] * s[1]) as u64);
        in_compute(x).linear(&in_compute(&self.w), Some(&in_compute(&self.b)))
    }
}

/// Two 3x3 convolutions with a skip: conv-relu-conv, added to the input, relu.
#[derive(Debug)]
pub struct ResBlock {
    a: Conv,
    b: Conv,
}

impl ResBlock {
    pub fn new(p: &Path, rng: &mut Rng, c: i64) -> ResBlock {
        ResBlock {
            a: Conv::same(&(p / "a"), rng, c, c, 3),
            b: Conv::new(&(p / "b"), rng, c, c, 3, 3, 1, 1, 0.1),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        (x + self.b.forward(&self.a.forward(x).relu())).relu()
    }
}

/// Two 3x3 conv + ReLU layers: the U-Net's unit.
#[derive(Debug)]
pub struct DoubleConv {
    a: Conv,
    b: Conv,
}

impl DoubleConv {
    pub fn new(p: &Path, rng: &mut Rng, cin: i64, cout: i64) -> DoubleConv {
        DoubleConv {
            a: Conv::same(&(p / "a"), rng, cin, cout, 3),
            b: Conv::same(&(p / "b"), rng, cout, cout, 3),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.b.forward(&self.a.forward(x).relu()).relu()
    }
}

/// Bilinear resize to `h` x `w` (half-pixel centres, as the guided filter's upsampling).
pub fn resize(x: &Tensor, h: i64, w: i64) -> Tensor {
    x.upsample_bilinear2d([h, w], false, None, None)
}

/// Upsamples `x` to the size of `like` and concatenates them along channels.
pub fn up_cat(x: &Tensor, like: &Tensor) -> Tensor {
    let s = like.size();
    Tensor::cat(&[resize(x, s[2], s[3]), like.shallow_clone()], 1)
}

/// Replicate-pads (batch, c, h, w) so h and w are multiples of `m`; returns the padded tensor
/// and the original size to crop back to. Networks that halve the size several times need it
/// for odd frame sizes.
pub fn pad_to(x: &Tensor, m: i64) -> (Tensor, (i64, i64)) {
    let s = x.size();
    let (h, w) = (s[2], s[3]);
    let ph = (m - h % m) % m;
    let pw = (m - w % m) % m;
    if ph == 0 && pw == 0 {
        return (x.shallow_clone(), (h, w));
    }
    (x.pad([0, pw, 0, ph], "replicate", None), (h, w))
}

/// Crops (batch, c, h', w') back to `h` x `w`.
pub fn crop(x: &Tensor, (h, w): (i64, i64)) -> Tensor {
    x.narrow(2, 0, h).narrow(3, 0, w)
}

/// BT.601 full-range luma of RGB planes (batch, 3, h, w) -> (batch, 1, h, w).
pub fn luma(rgb: &Tensor) -> Tensor {
    let w = Tensor::from_slice(&[0.299f32, 0.587, 0.114])
        .to_device(rgb.device())
        .view([1, 3, 1, 1]);
    (rgb * w).sum_dim_intlist([1i64].as_slice(), true, Kind::Float)
}

/// RGB from luma and two chroma channels (BT.601 full range, Cb/Cr centred on 0).
pub fn ycc_to_rgb(y: &Tensor, cb: &Tensor, cr: &Tensor) -> Tensor {
    let r = y + cr * 1.402;
    let g = y - cb * 0.344136 - cr * 0.714136;
    let b = y + cb * 1.772;
    Tensor::cat(&[r, g, b], 1)
}

/// Optional batch normalisation after a convolution (`fast` with `norm = true`): it speeds up
/// training; at inference it is a fixed per-channel affine map from the running statistics.
#[derive(Debug)]
pub struct Norm(Option<tch::nn::BatchNorm>);

impl Norm {
    pub fn new(p: &Path, c: i64, on: bool) -> Norm {
        // Scale 1, shift 0: the usual start, and a seeded one. tch's default draws the scales
        // uniformly from [0, 1) with libtorch's unseeded generator, which made two `hq` models
        // built with the same seed differ by 4 % in their first output.
        let config = tch::nn::BatchNormConfig {
            ws_init: tch::nn::Init::Const(1.0),
            bs_init: tch::nn::Init::Const(0.0),
            ..Default::default()
        };
        Norm(on.then(|| tch::nn::batch_norm2d(p, c, config)))
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        match &self.0 {
            Some(bn) => {
                use tch::nn::ModuleT;
                // The statistics in f32 whatever the layers compute in: a bf16 variance of
                // small activations loses most of its digits.
                bn.forward_t(&x.to_kind(Kind::Float), train)
                    .to_kind(x.kind())
            }
            None => x.shallow_clone(),
        }
    }
}
