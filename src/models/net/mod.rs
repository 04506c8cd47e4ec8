//! The neural colorizers, written with tch (libtorch): the real-time default `fast` and the
//! source papers' networks (`unet`, `ring`, `twobranch`, `colornet`), scaled down in width to
//! train on a CPU. A [`Model`] owns the weights and runs the whole path training optimises:
//! shrink to the inference size, the network, then the detail transfer back to full size.

pub mod bins;
pub mod colorize;
pub mod colornet;
pub mod dct;
pub mod fast;
pub mod guided;
pub mod hq;
pub mod layers;
pub mod loss;
pub mod ring;
pub mod twobranch;
pub mod unet;

use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::models::rng::Rng;
use crate::models::weights::{Weights, WeightsError};

/// The real-time default's inference size cap: 160x120, what fits 20 ms per 640x480 frame on
/// two CPU cores.
pub const FAST_MAX_PIXELS: usize = 160 * 120;

/// The quality model's cap: 320x240, four times the default's pixels (half of 640x480).
pub const HQ_MAX_PIXELS: usize = 320 * 240;

/// The network architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetArch {
    Fast,
    Unet,
    Ring,
    Twobranch,
    Colornet,
    Hq,
    Dct,
}

impl NetArch {
    pub const ALL: [NetArch; 7] = [
        NetArch::Fast,
        NetArch::Unet,
        NetArch::Ring,
        NetArch::Twobranch,
        NetArch::Colornet,
        NetArch::Hq,
        NetArch::Dct,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NetArch::Fast => "fast",
            NetArch::Unet => "unet",
            NetArch::Ring => "ring",
            NetArch::Twobranch => "twobranch",
            NetArch::Colornet => "colornet",
            NetArch::Hq => "hq",
            NetArch::Dct => "dct",
        }
    }

    pub fn from_name(name: &str) -> Option<NetArch> {
        NetArch::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The defaults each architecture trains with.
    pub fn default_config(self) -> NetConfig {
        let (width, scale) = match self {
            NetArch::Fast => (16, 0.5),
            NetArch::Unet => (12, 1.0),
            NetArch::Ring => (12, 1.0),
            NetArch::Twobranch => (12, 1.0),
            NetArch::Colornet => (16, 1.0),
            NetArch::Hq => (24, 0.5),
            // Full size: the DCT already works at a quarter of the resolution.
            NetArch::Dct => (64, 1.0),
        };
        NetConfig {
            arch: self,
            width,
            in_channels: 1,
            // dct predicts RGB coefficients as a residual on the NIR's, not luma + chroma.
            decoupled: self != NetArch::Dct,
            scale,
            norm: self == NetArch::Hq,
            max_pixels: match self {
                NetArch::Fast => FAST_MAX_PIXELS,
                NetArch::Hq | NetArch::Dct => HQ_MAX_PIXELS,
                _ => 0,
            },
            guided: true,
            detail_radius: crate::detail::NET_RADIUS,
            detail_eps: crate::detail::NET_EPS,
            chroma_bins: 0,
            chroma_temperature: bins::DEFAULT_TEMPERATURE,
            groups: dct::GROUPS,
            blocks: dct::BLOCKS,
        }
    }
}

/// A network configuration out of range (from a model card or the training options).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NetConfigError(pub String);

/// Why a `--device` / `model.device` choice cannot be used here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("--device cuda, but no CUDA device is usable: {why}")]
    NoCuda { why: String },
    #[error("device '{0}' is not one of auto, cpu, cuda")]
    Unknown(String),
}

/// Everything that fixes a network's shape and how it is run; stored in the model card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    pub arch: NetArch,
    /// Channels of the first level; deeper levels are multiples.
    pub width: i64,
    /// NIR bands stacked as channels (1 for an ordinary NIR camera).
    pub in_channels: i64,
    /// `fast`: luminance as a correction of the NIR plus two chroma planes (true), or RGB
    /// directly (false).
    pub decoupled: bool,
    /// The network sees the frame shrunk by this factor, in (0, 1].
    pub scale: f64,
    /// `fast`: batch normalisation after each convolution.
    #[serde(default)]
    pub norm: bool,
    /// A cap on the inference size in pixels (0: none): larger frames are shrunk further, so
    /// a 640x480 frame reaches the network as 160x120 whatever `scale` says.
    #[serde(default)]
    pub max_pixels: usize,
    /// Below full size: restore with the fast guided filter (true) or bilinear upsampling.
    pub guided: bool,
    /// Guided filter radius in full-resolution pixels, and its eps (on [0, 1] data).
    pub detail_radius: usize,
    pub detail_eps: f64,
    /// `fast` and `hq`: chroma as a distribution over a `chroma_bins` x `chroma_bins` grid of
    /// Cb, Cr (`bins`), 0 for two regressed planes.
    #[serde(default)]
    pub chroma_bins: i64,
    /// The annealed-mean temperature that turns the bins into one colour (`bins`).
    #[serde(default = "default_chroma_temperature")]
    pub chroma_temperature: f64,
    /// `dct`: residual groups, and channel-attention blocks per group (the depth). Cards
    /// written before the depth was configurable hold neither: they are 4 x 8.
    #[serde(default = "default_groups")]
    pub groups: usize,
    #[serde(default = "default_blocks")]
    pub blocks: usize,
}

fn default_groups() -> usize {
    dct::GROUPS
}

fn default_blocks() -> usize {
    dct::BLOCKS
}

/// Fewer bins than 4x4 cannot tell green from brown; more than 24x24 (576 logits a pixel) costs
/// more than the rest of `fast` and spreads the data too thin to learn each bin.
const MIN_CHROMA_BINS: i64 = 4;
const MAX_CHROMA_BINS: i64 = 24;

fn default_chroma_temperature() -> f64 {
    bins::DEFAULT_TEMPERATURE
}

impl NetConfig {
    /// What is wrong with this configuration, if anything.
    pub fn validate(&self) -> Result<(), NetConfigError> {
        self.problem()
            .map_or(Ok(()), |why| Err(NetConfigError(why)))
    }

    fn problem(&self) -> Option<String> {
        if !(1..=256).contains(&self.width) {
            return Some(format!("width {} is outside 1..=256", self.width));
        }
        if !(1..=16).contains(&self.in_channels) {
            return Some(format!(
                "in_channels {} is outside 1..=16",
                self.in_channels
            ));
        }
        if !(self.scale > 0.0 && self.scale <= 1.0) {
            return Some(format!("scale {} is outside (0, 1]", self.scale));
        }
        if self.max_pixels > 0 && self.max_pixels < 64 {
            return Some(format!(
                "max_pixels {} is below 64 (0 turns the cap off)",
                self.max_pixels
            ));
        }
        if !(self.detail_eps > 0.0 && self.detail_eps.is_finite()) || self.detail_radius > 64 {
            return Some(format!(
                "detail radius {} / eps {} out of range (radius <= 64, eps > 0)",
                self.detail_radius, self.detail_eps
            ));
        }
        if self.chroma_bins != 0 {
            if !(MIN_CHROMA_BINS..=MAX_CHROMA_BINS).contains(&self.chroma_bins) {
                return Some(format!(
                    "chroma_bins {} is outside {MIN_CHROMA_BINS}..={MAX_CHROMA_BINS} (0 regresses the chroma instead)",
                    self.chroma_bins
                ));
            }
            if !matches!(self.arch, NetArch::Fast | NetArch::Hq) || !self.decoupled {
                return Some(format!(
                    "chroma_bins needs the decoupled output of fast or hq, not {}{}",
                    self.arch.name(),
                    if self.decoupled { "" } else { " with --direct" }
                ));
            }
        }
        if !(1..=dct::MAX_GROUPS).contains(&self.groups)
            || !(1..=dct::MAX_BLOCKS).contains(&self.blocks)
        {
            return Some(format!(
                "{} groups x {} blocks is outside 1..={} x 1..={}",
                self.groups,
                self.blocks,
                dct::MAX_GROUPS,
                dct::MAX_BLOCKS
            ));
        }
        if !(self.chroma_temperature > 0.0 && self.chroma_temperature <= 1.0) {
            return Some(format!(
                "chroma_temperature {} is outside (0, 1]",
                self.chroma_temperature
            ));
        }
        None
    }

    /// The size the network sees for a `width` x `height` frame: `scale` times it, shrunk
    /// further to `max_pixels` when set.
    pub fn inference_size(&self, width: usize, height: usize) -> (usize, usize) {
        crate::detail::lowres::inference_size(width, height, self.scale, self.max_pixels)
    }

    /// The guided filter radius at the inference size for a frame `width` wide (at least 1).
    pub fn low_radius(&self, width: usize, low_width: usize) -> usize {
        ((self.detail_radius as f64 * low_width as f64 / width.max(1) as f64).round() as usize)
            .max(1)
    }
}

/// What a network returns at the size it was given: RGB, and where the architecture has them,
/// its gray (luminance) branch and the learned NIR-to-gray gradient scale.
pub struct Forward {
    pub rgb: Tensor,
    pub gray: Option<Tensor>,
    pub scale: Option<Tensor>,
    /// With `NetConfig::chroma_bins`, when gradients are recorded: the logits of the chroma
    /// distribution, for its loss (inference decodes the chroma without keeping them).
    pub chroma_logits: Option<Tensor>,
}

// One network per model, built once: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Net {
    Fast(fast::Fast),
    Unet(unet::Unet),
    Ring(ring::Ring),
    TwoBranch(twobranch::TwoBranch),
    ColorNet(colornet::ColorNet),
    Hq(hq::Hq),
    Dct(dct::Dct),
}

impl Forward {
    /// The output of a three-channel head: luminance as a correction of the NIR plus two chroma
    /// planes (`decoupled`), or RGB directly around mid-gray. With `bins`, the chroma comes
    /// from the binned distribution read from `features` (the head's input, cropped like
    /// `out`) instead of the head's last two channels.
    pub fn from_head(
        nir: &Tensor,
        out: &Tensor,
        decoupled: bool,
        bins: Option<&bins::ChromaBins>,
        features: &Tensor,
    ) -> Forward {
        // The head's output and the chroma distribution in f32 (bf16 logits lose the small
        // differences that pick a colour).
        let out = &out.to_kind(Kind::Float);
        let features = &features.to_kind(Kind::Float);
        layers::with_compute(Kind::Float, || {
            Forward::from_f32_head(nir, out, decoupled, bins, features)
        })
    }

    fn from_f32_head(
        nir: &Tensor,
        out: &Tensor,
        decoupled: bool,
        bins: Option<&bins::ChromaBins>,
        features: &Tensor,
    ) -> Forward {
        if decoupled {
            let base = nir.mean_dim([1i64].as_slice(), true, Kind::Float);
            let y = base + out.narrow(1, 0, 1);
            let (chroma, chroma_logits) = match bins {
                // Training: the loss needs the logits.
                Some(b) if features.requires_grad() => {
                    let logits = b.logits(features);
                    (b.chroma(&logits), Some(logits))
                }
                Some(b) => (b.chroma_of_features(features), None),
                None => (out.narrow(1, 1, 2), None),
            };
            let rgb = layers::ycc_to_rgb(&y, &chroma.narrow(1, 0, 1), &chroma.narrow(1, 1, 1));
            Forward {
                rgb,
                gray: Some(y),
                scale: None,
                chroma_logits,
            }
        } else {
            Forward {
                rgb: out + 0.5,
                gray: None,
                scale: None,
                chroma_logits: None,
            }
        }
    }
}

/// A network with its weights.
pub struct Model {
    pub cfg: NetConfig,
    pub vs: VarStore,
    net: Net,
    /// Training mode (batch statistics) or inference (running statistics).
    training: std::cell::Cell<bool>,
    /// What the layers compute in: f32, or bf16 with f32 weights ([`layers::with_compute`]).
    compute: std::cell::Cell<Kind>,
}

/// The output of [`Model::run`]: full-size RGB, and the network's own outputs at the inference
/// size (for the auxiliary losses).
pub struct Run {
    pub rgb: Tensor,
    pub low_nir: Tensor,
    pub net: Forward,
}

impl Model {
    /// A freshly initialised network; `seed` fixes every initial weight.
    pub fn new(cfg: NetConfig, device: Device, seed: u64) -> Model {
        let vs = VarStore::new(device);
        let mut rng = Rng::new(seed);
        let p = vs.root() / cfg.arch.name();
        let net = match cfg.arch {
            NetArch::Fast => Net::Fast(fast::Fast::new(&p, &mut rng, &cfg)),
            NetArch::Unet => Net::Unet(unet::Unet::new(&p, &mut rng, &cfg)),
            NetArch::Ring => Net::Ring(ring::Ring::new(&p, &mut rng, &cfg)),
            NetArch::Twobranch => Net::TwoBranch(twobranch::TwoBranch::new(&p, &mut rng, &cfg)),
            NetArch::Colornet => Net::ColorNet(colornet::ColorNet::new(&p, &mut rng, &cfg)),
            NetArch::Hq => Net::Hq(hq::Hq::new(&p, &mut rng, &cfg)),
            NetArch::Dct => Net::Dct(dct::Dct::new(&p, &mut rng, &cfg)),
        };
        Model {
            cfg,
            vs,
            net,
            training: std::cell::Cell::new(false),
            compute: std::cell::Cell::new(Kind::Float),
        }
    }

    /// The network alone on NIR (batch, bands, h, w) in [0, 1], at the size given.
    pub fn forward(&self, nir: &Tensor) -> Forward {
        let f = layers::with_compute(self.compute.get(), || match &self.net {
            Net::Fast(n) => n.forward(nir, self.training.get()),
            Net::Unet(n) => n.forward(nir),
            Net::Ring(n) => n.forward(nir),
            Net::TwoBranch(n) => n.forward(nir),
            Net::ColorNet(n) => n.forward(nir),
            Net::Hq(n) => n.forward(nir, self.training.get()),
            Net::Dct(n) => n.forward(nir),
        });
        // Losses, the guided filter and the output are f32 whatever the layers computed in.
        let float = |t: Tensor| {
            if t.kind() == Kind::Float {
                t
            } else {
                t.to_kind(Kind::Float)
            }
        };
        Forward {
            rgb: float(f.rgb),
            gray: f.gray.map(float),
            scale: f.scale.map(float),
            chroma_logits: f.chroma_logits.map(float),
        }
    }

    /// Makes the layers compute in bf16 (`true`; the weights stay f32) or f32.
    pub fn set_bf16(&self, on: bool) {
        self.compute
            .set(if on { Kind::BFloat16 } else { Kind::Float });
    }

    /// Whether the layers compute in bf16.
    pub fn bf16(&self) -> bool {
        self.compute.get() == Kind::BFloat16
    }

    /// Switches between training (batch statistics, running statistics updated) and inference.
    pub fn set_training(&self, on: bool) {
        self.training.set(on);
    }

    /// The whole path on full-size NIR (batch, bands, H, W): shrink to the inference size (area
    /// average), the network, then the detail transfer (or bilinear upsampling) back to H x W.
    pub fn run(&self, nir: &Tensor) -> Run {
        let s = nir.size();
        let (lw, lh) = self.cfg.inference_size(s[3] as usize, s[2] as usize);
        if (lw as i64, lh as i64) == (s[3], s[2]) {
            let net = self.forward(nir);
            return Run {
                rgb: net.rgb.shallow_clone(),
                low_nir: nir.shallow_clone(),
                net,
            };
        }
        let low = nir.adaptive_avg_pool2d([lh as i64, lw as i64]);
        let net = self.forward(&low);
        let rgb = if self.cfg.guided {
            let gf = |t: &Tensor| t.mean_dim([1i64].as_slice(), true, Kind::Float);
            guided::fast_guided(
                &gf(nir),
                &gf(&low),
                &net.rgb,
                self.cfg.low_radius(s[3] as usize, lw) as i64,
                self.cfg.detail_eps,
            )
        } else {
            layers::resize(&net.rgb, s[2], s[3])
        };
        Run {
            rgb,
            low_nir: low,
            net,
        }
    }

    /// Trainable parameters.
    pub fn parameters(&self) -> usize {
        self.vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel())
            .sum()
    }

    /// Giga floating-point operations (2 per multiply-add) of the network for one
    /// `width` x `height` frame at this model's inference size.
    pub fn gflops(&self, width: usize, height: usize) -> f64 {
        let (lw, lh) = self.cfg.inference_size(width, height);
        let x = Tensor::zeros(
            [1, self.cfg.in_channels, lh as i64, lw as i64],
            (Kind::Float, self.vs.device()),
        );
        let macs = layers::count_macs(|| {
            let _guard = tch::no_grad_guard();
            let _ = self.forward(&x);
        });
        2.0 * macs as f64 / 1e9
    }

    /// Every variable, sorted by name, as f32 host data.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut vars: Vec<_> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars.into_iter()
            .map(|(name, t)| {
                let shape = t.size().iter().map(|&d| d as usize).collect();
                let data = Vec::<f32>::try_from(t.to_device(Device::Cpu).flatten(0, -1))
                    .expect("f32 variables");
                (name, shape, data)
            })
            .collect()
    }

    /// Weights with this model's tensors and `card` (the config is added under `net`).
    pub fn to_weights(&self, mut card: serde_json::Value) -> Weights {
        card["net"] = serde_json::to_value(&self.cfg).expect("config serialises");
        let mut w = Weights::new(self.cfg.arch.name(), card);
        for (name, shape, data) in self.tensors() {
            w.insert(&name, shape, data);
        }
        w
    }

    /// Copies `src`'s tensors into this model's variables, checking every name and shape.
    pub fn load_tensors(&mut self, src: &Weights) -> Result<(), WeightsError> {
        self.copy_tensors(src, false).map(|_| ())
    }

    /// Like `load_tensors`, but the variables `src` lacks (a part added to a trained network,
    /// such as the chroma bins) keep their initial values; returns their names.
    pub fn load_tensors_partial(&mut self, src: &Weights) -> Result<Vec<String>, WeightsError> {
        self.copy_tensors(src, true)
    }

    fn copy_tensors(&mut self, src: &Weights, partial: bool) -> Result<Vec<String>, WeightsError> {
        let vars = self.vs.variables();
        let extra: Vec<&str> = src.names().filter(|n| !vars.contains_key(*n)).collect();
        if let Some(name) = extra.first() {
            return Err(src.invalid(format!(
                "tensor '{name}' has no place in a {} network of this configuration; the file is from another version or configuration",
                self.cfg.arch.name()
            )));
        }
        let _guard = tch::no_grad_guard();
        let mut missing = Vec::new();
        let present: std::collections::HashSet<&str> = src.names().collect();
        for (name, mut var) in vars {
            if partial && !present.contains(name.as_str()) {
                missing.push(name);
                continue;
            }
            let shape: Vec<Option<usize>> = var.size().iter().map(|&d| Some(d as usize)).collect();
            let (_, data) = src.tensor(&name, &shape)?;
            var.copy_(&Tensor::from_slice(data).view(var.size().as_slice()));
        }
        missing.sort();
        Ok(missing)
    }

    /// Rebuilds a model from weights: arch and config from the card, then every tensor checked.
    pub fn from_weights(w: &Weights, device: Device) -> Result<Model, WeightsError> {
        let arch = NetArch::from_name(&w.arch).ok_or_else(|| WeightsError::UnknownArch {
            file: w.origin.clone(),
            arch: w.arch.clone(),
            known: NetArch::ALL.map(NetArch::name).join(", "),
        })?;
        let cfg: NetConfig = serde_json::from_value(w.card["net"].clone())
            .map_err(|e| w.invalid(format!("model card has no valid `net` configuration ({e})")))?;
        if cfg.arch != arch {
            return Err(w.invalid(format!(
                "metadata says arch '{}' but the card's configuration says '{}'",
                w.arch,
                cfg.arch.name()
            )));
        }
        cfg.validate().map_err(|e| w.invalid(e.0))?;
        let mut m = Model::new(cfg, device, 0);
        m.load_tensors(w)?;
        Ok(m)
    }
}

/// Whether networks colour in bf16 (`[model] bf16`, `--bf16`): process-wide, because the
/// daemon's models and the CLI's are loaded in many places and one switch is what a user sets.
static BF16_INFERENCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every network colour with its layers in bf16 (weights, output and the guided filter
/// stay f32), or in f32 again. Training is not affected: it has `TrainOptions::bf16`.
pub fn set_bf16_inference(on: bool) {
    BF16_INFERENCE.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether networks colour in bf16 (see [`set_bf16_inference`]).
pub fn bf16_inference() -> bool {
    BF16_INFERENCE.load(std::sync::atomic::Ordering::Relaxed)
}

/// The device a `--device auto|cpu|cuda` choice means here.
pub fn pick_device(choice: &str) -> Result<Device, DeviceError> {
    match choice {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            if crate::runtime::cuda::available() {
                Ok(Device::Cuda(0))
            } else {
                Err(DeviceError::NoCuda {
                    why: crate::runtime::cuda::why_not(),
                })
            }
        }
        "auto" => Ok(if crate::runtime::cuda::available() {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
        other => Err(DeviceError::Unknown(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(arch: NetArch) -> NetConfig {
        NetConfig {
            width: 4,
            ..arch.default_config()
        }
    }

    fn ramp(n: i64, c: i64, h: i64, w: i64) -> Tensor {
        Tensor::arange(n * c * h * w, (Kind::Float, Device::Cpu))
            .view([n, c, h, w])
            .remainder(97.0)
            / 97.0
    }

    #[test]
    fn every_arch_runs_on_odd_sizes() {
        for arch in NetArch::ALL {
            let m = Model::new(small(arch), Device::Cpu, 3);
            for (h, w) in [(1, 1), (17, 23), (33, 9)] {
                let f = m.forward(&ramp(2, 1, h, w));
                assert_eq!(f.rgb.size(), [2, 3, h, w], "{arch:?} at {w}x{h}");
                assert!(bool::try_from(f.rgb.isfinite().all()).unwrap());
                let r = m.run(&ramp(1, 1, 2 * h + 1, 2 * w + 1));
                assert_eq!(r.rgb.size(), [1, 3, 2 * h + 1, 2 * w + 1], "{arch:?} run");
            }
        }
    }

    #[test]
    fn save_and_reload_is_bit_exact() {
        for arch in NetArch::ALL {
            let m = Model::new(small(arch), Device::Cpu, 5);
            let bytes = m.to_weights(serde_json::json!({})).to_bytes();
            let back = Model::from_weights(&Weights::from_bytes(&bytes, "x").unwrap(), Device::Cpu)
                .unwrap();
            assert_eq!(back.cfg, m.cfg);
            assert_eq!(back.tensors(), m.tensors(), "{arch:?}");
            let x = ramp(1, 1, 21, 30);
            let (a, b) = (m.forward(&x).rgb, back.forward(&x).rgb);
            assert!(a.equal(&b), "{arch:?}: outputs differ after reload");
        }
    }

    #[test]
    fn seed_fixes_the_initial_weights() {
        // Every arch, and `fast` with batch normalisation: libtorch's own (unseeded) generator
        // must draw none of them, or the same seed trains differently in another process.
        let norm = NetConfig {
            norm: true,
            ..small(NetArch::Fast)
        };
        for cfg in NetArch::ALL.map(small).into_iter().chain([norm]) {
            let a = Model::new(cfg.clone(), Device::Cpu, 9).tensors();
            let b = Model::new(cfg.clone(), Device::Cpu, 9).tensors();
            let c = Model::new(cfg.clone(), Device::Cpu, 10).tensors();
            assert_eq!(a, b, "{:?}", cfg.arch);
            assert_ne!(a, c, "{:?}", cfg.arch);
        }
    }

    #[test]
    fn dct_depth_is_configurable_and_recorded_in_the_card() {
        let cfg = NetConfig {
            groups: 2,
            blocks: 3,
            ..small(NetArch::Dct)
        };
        let m = Model::new(cfg.clone(), Device::Cpu, 1);
        let names: Vec<String> = m.tensors().into_iter().map(|(n, _, _)| n).collect();
        assert!(names.iter().any(|n| n.contains("g1_b2")), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("g2_") || n.contains("_b3")));
        let w =
            Weights::from_bytes(&m.to_weights(serde_json::json!({})).to_bytes(), "d.st").unwrap();
        assert_eq!(Model::from_weights(&w, Device::Cpu).unwrap().cfg, cfg);
        // A card from before the depth was configurable is the 4 x 8 default.
        let old = Model::new(small(NetArch::Dct), Device::Cpu, 1);
        let mut w =
            Weights::from_bytes(&old.to_weights(serde_json::json!({})).to_bytes(), "o.st").unwrap();
        let net = w.card["net"].as_object_mut().unwrap();
        net.remove("groups");
        net.remove("blocks");
        let loaded = Model::from_weights(&w, Device::Cpu).unwrap().cfg;
        assert_eq!((loaded.groups, loaded.blocks), (dct::GROUPS, dct::BLOCKS));
        for (groups, blocks) in [(0, 8), (4, 0), (dct::MAX_GROUPS + 1, 8)] {
            let bad = NetConfig {
                groups,
                blocks,
                ..cfg.clone()
            };
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains("groups") && e.contains("blocks"), "{e}");
        }
    }

    #[test]
    fn twobranch_takes_several_bands() {
        // No multi-band NIR data exists here: three synthetic bands exercise the N-channel path.
        let cfg = NetConfig {
            in_channels: 3,
            ..small(NetArch::Twobranch)
        };
        let m = Model::new(cfg, Device::Cpu, 1);
        let f = m.forward(&ramp(2, 3, 19, 26));
        assert_eq!(f.rgb.size(), [2, 3, 19, 26]);
        assert_eq!(f.gray.unwrap().size(), [2, 1, 19, 26]);
        assert_eq!(f.scale.unwrap().size(), [2, 1, 19, 26]);
    }

    #[test]
    fn mismatched_files_are_errors_naming_what_is_wrong() {
        let m = Model::new(small(NetArch::Fast), Device::Cpu, 1);
        let w =
            Weights::from_bytes(&m.to_weights(serde_json::json!({})).to_bytes(), "f.st").unwrap();
        // Another width: shapes no longer fit.
        let mut wider = w.clone();
        wider.card["net"]["width"] = serde_json::json!(5);
        let err = Model::from_weights(&wider, Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("f.st") && err.contains("shape"), "{err}");
        // Metadata and card disagree on the arch.
        let mut other = w.clone();
        other.arch = "unet".into();
        let err = Model::from_weights(&other, Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("fast") && err.contains("unet"), "{err}");
        // No configuration at all.
        let mut bare = w.clone();
        bare.card = serde_json::json!({});
        let err = Model::from_weights(&bare, Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("net"), "{err}");
        // A tensor the network does not have.
        let mut extra = w.clone();
        extra.insert("fast.bogus.w", vec![1], vec![0.0]);
        let err = Model::from_weights(&extra, Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn inference_size_follows_scale_and_cap() {
        let cfg = NetArch::Fast.default_config();
        assert_eq!(cfg.inference_size(256, 256), (128, 128));
        assert_eq!(cfg.inference_size(640, 480), (160, 120));
        let (w, h) = cfg.inference_size(1280, 720);
        assert!(w * h <= 160 * 120 + 200 && (w as f64 / h as f64 - 16.0 / 9.0).abs() < 0.02);
        assert_eq!(cfg.inference_size(1, 1), (1, 1));
    }

    #[test]
    fn gflops_count_the_convolutions() {
        let m = Model::new(NetArch::Fast.default_config(), Device::Cpu, 1);
        let g = m.gflops(640, 480);
        assert!(g > 0.1 && g < 2.0, "{g}");
        // Four times the pixels at full size: about four times the work.
        let full = Model::new(
            NetConfig {
                scale: 1.0,
                max_pixels: 0,
                ..m.cfg.clone()
            },
            Device::Cpu,
            1,
        );
        let ratio = full.gflops(320, 240) / m.gflops(640, 480);
        assert!((ratio - 4.0).abs() < 0.3, "{ratio}");
    }
}
