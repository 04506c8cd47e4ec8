//! The one interface every colorizer implements (classical ones here, networks later, the daemon
//! drives them all), the built-in models, and the optional guided-filter post-processing.

use std::path::Path;

use crate::detail::bfwls::Bfwls;
use crate::detail::{resize_area, GuidedFilter};
use crate::images::planes::{Gray, Rgb};
use crate::models::net::colorize::NetColorizer;
use crate::models::net::{Model, NetArch, NetConfig};
use crate::models::weights::{Weights, WeightsError};
use crate::models::{l3::L3, linear::Linear};

/// Turns one NIR plane in [0,1] into RGB planes of the same size (values may leave [0,1]; they
/// are clamped when written as 8-bit). `Send` but not `Sync`: one thread owns a colorizer (the
/// daemon's inference thread), which lets libtorch-backed models implement it directly.
pub trait Colorizer: Send {
    /// A short name for tables and reports.
    fn name(&self) -> String;
    fn colorize(&self, nir: &Gray) -> Rgb;
    /// Several frames at once (the daemon batches across cameras); networks override this to
    /// run one batched forward pass.
    fn colorize_batch(&self, nirs: &[Gray]) -> Vec<Rgb> {
        nirs.iter().map(|n| self.colorize(n)).collect()
    }
}

/// NIR replicated to R, G and B: the floor every colorizer must clear.
pub struct Identity;

impl Colorizer for Identity {
    fn name(&self) -> String {
        "identity".into()
    }
    fn colorize(&self, nir: &Gray) -> Rgb {
        nir.to_rgb()
    }
}

/// A colorizer followed by the guided filter with the NIR as guide, which pulls the output's
/// edges and texture onto the NIR's.
pub struct Guided {
    pub inner: Box<dyn Colorizer>,
    pub filter: GuidedFilter,
}

impl Colorizer for Guided {
    fn name(&self) -> String {
        format!(
            "{}+guided(r={},eps={:e})",
            self.inner.name(),
            self.filter.radius,
            self.filter.eps
        )
    }
    fn colorize(&self, nir: &Gray) -> Rgb {
        let rgb = self.inner.colorize(nir);
        let data = self
            .filter
            .filter(&nir.data, nir.width, nir.height, &rgb.data, 3);
        Rgb::new(nir.width, nir.height, data)
    }
}

/// A colorizer followed by ColorNet's BFWLS fusion ([`Bfwls`]): the NIR's detail on the WLS
/// base of the output's luma, chroma kept.
pub struct WithBfwls {
    pub inner: Box<dyn Colorizer>,
    pub fusion: Bfwls,
}

impl Colorizer for WithBfwls {
    fn name(&self) -> String {
        format!("{}+bfwls", self.inner.name())
    }
    fn colorize(&self, nir: &Gray) -> Rgb {
        self.fusion.apply(nir, &self.inner.colorize(nir))
    }
}

/// The NIR at the inference size: `scale` times the frame (at least 1x1), area-averaged.
pub fn shrink(nir: &Gray, scale: f32) -> Gray {
    let side = |n: usize| ((n as f32 * scale).round() as usize).clamp(1, n.max(1));
    shrink_to(nir, side(nir.width), side(nir.height))
}

/// The size a `width` x `height` frame is colorized at: `scale` times it, shrunk further to at
/// most `max_pixels` pixels when that is not 0; never below 1x1.
pub fn inference_size(
    width: usize,
    height: usize,
    scale: f64,
    max_pixels: usize,
) -> (usize, usize) {
    let mut f = scale;
    let area = (width * height) as f64 * f * f;
    if max_pixels > 0 && area > max_pixels as f64 {
        f *= (max_pixels as f64 / area).sqrt();
    }
    let side = |n: usize| ((n as f64 * f).round() as usize).clamp(1, n.max(1));
    (side(width), side(height))
}

/// The NIR area-averaged to `lw` x `lh`.
pub fn shrink_to(nir: &Gray, lw: usize, lh: usize) -> Gray {
    Gray::new(
        lw,
        lh,
        resize_area(&nir.data, nir.width, nir.height, 1, lw, lh),
    )
}

/// Full-resolution colour from colour computed on `low` (`nir` shrunk by `scale`): the fast
/// guided filter's coefficients at the low size, applied to the full-resolution NIR, so the
/// output gets the NIR's edges and texture. `filter.radius` is in full-resolution pixels.
pub fn restore(filter: GuidedFilter, scale: f32, nir: &Gray, low: &Gray, colour: &Rgb) -> Rgb {
    let radius = ((filter.radius as f32 * scale).round() as usize).max(1);
    let fast = GuidedFilter {
        radius,
        eps: filter.eps,
    };
    let data = fast.filter_fast(
        &nir.data,
        nir.width,
        nir.height,
        &low.data,
        &colour.data,
        low.width,
        low.height,
        3,
    );
    Rgb::new(nir.width, nir.height, data)
}

/// The daemon's detail stage around any colorizer, for single images: [`shrink`] by `scale`,
/// colorize, [`restore`].
pub struct LowRes {
    pub inner: Box<dyn Colorizer>,
    pub scale: f32,
    pub filter: GuidedFilter,
}

impl Colorizer for LowRes {
    fn name(&self) -> String {
        format!(
            "{}@{}+fast-guided(r={},eps={:e})",
            self.inner.name(),
            self.scale,
            self.filter.radius,
            self.filter.eps
        )
    }
    fn colorize(&self, nir: &Gray) -> Rgb {
        let low = shrink(nir, self.scale);
        restore(
            self.filter,
            self.scale,
            nir,
            &low,
            &self.inner.colorize(&low),
        )
    }
}

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ColorizerError {
    #[error("'{0}' is neither a built-in colorizer ({list}) nor an existing weights file", list = BUILTIN.join(", "))]
    Unknown(String),
    #[error(transparent)]
    Weights(#[from] WeightsError),
}

/// Names accepted by [`load`] without a file; `default` (the real-time network), `linear` and
/// `l3` use the weights shipped in `models/`, compiled into the binary so it runs from anywhere.
pub const BUILTIN: [&str; 4] = ["default", "identity", "linear", "l3"];

const SHIPPED_LINEAR: &[u8] = include_bytes!("../../models/linear.safetensors");
const SHIPPED_L3: &[u8] = include_bytes!("../../models/l3.safetensors");
const SHIPPED_DEFAULT: &[u8] = include_bytes!("../../models/default.safetensors");

fn shipped(spec: &str) -> Option<Result<Weights, WeightsError>> {
    let (bytes, origin) = match spec {
        "linear" => (SHIPPED_LINEAR, "built-in models/linear.safetensors"),
        "l3" => (SHIPPED_L3, "built-in models/l3.safetensors"),
        "default" => (SHIPPED_DEFAULT, "built-in models/default.safetensors"),
        _ => return None,
    };
    Some(Weights::from_bytes(bytes, origin))
}

/// Loads a built-in colorizer by name, or a weights file by path.
pub fn load(spec: &str) -> Result<Box<dyn Colorizer>, ColorizerError> {
    match spec {
        "identity" => Ok(Box::new(Identity)),
        name if shipped(name).is_some() => {
            from_weights(&shipped(name).expect("checked just above")?)
        }
        path if Path::new(path).is_file() => from_weights(&Weights::load(Path::new(path))?),
        other => Err(ColorizerError::Unknown(other.to_string())),
    }
}

/// Builds the colorizer a weights file describes, dispatching on its architecture. Networks
/// come with the whole path they were trained for (shrink, network, detail transfer).
pub fn from_weights(w: &Weights) -> Result<Box<dyn Colorizer>, ColorizerError> {
    let device = crate::models::net::pick_device("auto").unwrap_or(tch::Device::Cpu);
    Ok(build(w, true, device)?.0)
}

/// Like [`load`], but a network comes bare: it colorizes at the size it is handed, for the
/// daemon's inference stage, which shrinks and restores frames itself. Also returns the
/// network's configuration (its inference scale and detail filter), when it is one.
pub fn load_bare(
    spec: &str,
    device: tch::Device,
) -> Result<(Box<dyn Colorizer>, Option<NetConfig>), ColorizerError> {
    let file = Path::new(spec).is_file() && !BUILTIN.contains(&spec);
    if !file && shipped(spec).is_none() {
        return Ok((load(spec)?, None));
    }
    let w = match shipped(spec) {
        Some(w) => w?,
        None => Weights::load(Path::new(spec))?,
    };
    build(&w, false, device)
}

fn file_name(origin: &str) -> String {
    Path::new(origin)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The colorizer `w` describes, and a network's configuration; networks run on `device`, bare
/// or with their whole path (`full_path`).
fn build(
    w: &Weights,
    full_path: bool,
    device: tch::Device,
) -> Result<(Box<dyn Colorizer>, Option<NetConfig>), ColorizerError> {
    match w.arch.as_str() {
        "linear" => Ok((Box::new(Linear::from_weights(w)?), None)),
        "l3" => Ok((Box::new(L3::from_weights(w)?), None)),
        arch if NetArch::from_name(arch).is_some() => {
            // A training checkpoint also holds the optimiser's moments; the network is the rest.
            let model = Model::from_weights(&w.without_prefix("adam."), device)?;
            let cfg = model.cfg.clone();
            let name = format!("{arch}({})", file_name(&w.origin));
            let net = if full_path {
                NetColorizer::full(model, name)
            } else {
                NetColorizer::bare(model, name)
            };
            Ok((Box::new(net), Some(cfg)))
        }
        arch => Err(WeightsError::UnknownArch {
            file: w.origin.clone(),
            arch: arch.into(),
            known: format!("linear, l3, {}", NetArch::ALL.map(NetArch::name).join(", ")),
        }
        .into()),
    }
}

/// What follows a colorizer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Post {
    None,
    /// The guided filter at full resolution.
    Guided(GuidedFilter),
    /// Colorize at `scale` times the size, then the fast guided filter ([`LowRes`]).
    FastGuided {
        filter: GuidedFilter,
        scale: f32,
    },
    /// ColorNet's bilateral + WLS detail fusion at full resolution.
    Bfwls(Bfwls),
}

/// Wraps `inner` in its post-processing.
pub fn with_post(inner: Box<dyn Colorizer>, post: Post) -> Box<dyn Colorizer> {
    match post {
        Post::None => inner,
        Post::Guided(filter) => Box::new(Guided { inner, filter }),
        Post::FastGuided { filter, scale } => Box::new(LowRes {
            inner,
            scale,
            filter,
        }),
        Post::Bfwls(fusion) => Box::new(WithBfwls { inner, fusion }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_loads_and_keeps_the_size() {
        let nir = Gray::new(7, 5, (0..35).map(|v| v as f32 / 35.0).collect());
        for name in BUILTIN {
            let c = load(name).unwrap();
            let rgb = c.colorize(&nir);
            assert_eq!(
                (rgb.width, rgb.height, rgb.data.len()),
                (7, 5, 105),
                "{name}"
            );
            assert!(rgb.data.iter().all(|v| v.is_finite()), "{name}");
        }
    }

    #[test]
    fn unknown_model_names_the_builtins() {
        let err = load("no-such-model").err().unwrap().to_string();
        assert!(err.contains("no-such-model") && err.contains("l3"), "{err}");
    }

    #[test]
    fn bfwls_post_puts_the_nir_detail_into_any_colorizer() {
        // A linear colorizer's flat output gains the NIR's stripes through the fusion.
        let nir = Gray::new(
            32,
            16,
            (0..512)
                .map(|i| if (i % 32) % 4 < 2 { 0.3 } else { 0.7 })
                .collect(),
        );
        struct Flat;
        impl Colorizer for Flat {
            fn name(&self) -> String {
                "flat".into()
            }
            fn colorize(&self, nir: &Gray) -> Rgb {
                Rgb::new(nir.width, nir.height, vec![0.5; 3 * nir.width * nir.height])
            }
        }
        let c = with_post(Box::new(Flat), Post::Bfwls(Bfwls::default()));
        assert_eq!(c.name(), "flat+bfwls");
        let rgb = c.colorize(&nir);
        let (a, b) = (rgb.data[16 * 8], rgb.data[16 * 8 + 2]);
        assert!(b - a > 0.08, "stripes {a} {b}");
    }

    #[test]
    fn guided_post_keeps_a_flat_image_flat() {
        let nir = Gray::new(9, 9, vec![0.5; 81]);
        let filter = GuidedFilter {
            radius: 2,
            eps: 1e-4,
        };
        let c = with_post(Box::new(Identity), Post::Guided(filter));
        assert!(c.colorize(&nir).data.iter().all(|v| (v - 0.5).abs() < 1e-5));
        assert!(c.name().starts_with("identity+guided"));
    }

    #[test]
    fn low_res_post_restores_full_resolution_detail() {
        // identity colour is a linear function of the NIR, so colorizing at a quarter of the
        // size and transferring the detail back must give the full-resolution NIR again.
        let (w, h) = (67, 45);
        let data = (0..w * h)
            .map(|i| ((i % w) as f32 * 0.37).sin() * 0.3 + 0.5 + (i / w) as f32 * 0.002)
            .collect();
        let nir = Gray::new(w, h, data);
        let filter = GuidedFilter {
            radius: 4,
            eps: 1e-6,
        };
        let c = with_post(
            Box::new(Identity),
            Post::FastGuided {
                filter,
                scale: 0.25,
            },
        );
        let out = c.colorize(&nir);
        assert_eq!((out.width, out.height), (w, h));
        let err = out
            .plane(1)
            .iter()
            .zip(&nir.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 2e-2, "max error {err}");
        assert!(c.name().contains("@0.25+fast-guided"));
        let tiny = c.colorize(&Gray::new(1, 3, vec![0.2, 0.4, 0.6]));
        assert_eq!(tiny.data.len(), 9);
    }
}
