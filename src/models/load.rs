//! Loading a colorizer by name or file: the built-in models compiled into the binary, and
//! safetensors weight files dispatched on the architecture their card names.

use std::path::Path;

use crate::models::colorizer::{Colorizer, Identity};
use crate::models::net::colorize::NetColorizer;
use crate::models::net::{Model, NetArch, NetConfig};
use crate::models::weights::{Weights, WeightsError};
use crate::models::{l3::L3, linear::Linear};

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ColorizerError {
    #[error("'{0}' is neither a built-in colorizer ({list}) nor an existing weights file", list = BUILTIN.join(", "))]
    Unknown(String),
    #[error(transparent)]
    Weights(#[from] WeightsError),
}

/// Names accepted by [`load`] without a file; `default` (the real-time network), `hq` (the
/// quality network), `linear` and `l3` use the weights shipped in `models/`, compiled into the
/// binary so it runs from anywhere.
pub const BUILTIN: [&str; 5] = ["default", "hq", "identity", "linear", "l3"];

const SHIPPED_LINEAR: &[u8] = include_bytes!("../../models/linear.safetensors");
const SHIPPED_L3: &[u8] = include_bytes!("../../models/l3.safetensors");
const SHIPPED_DEFAULT: &[u8] = include_bytes!("../../models/default.safetensors");
/// The best `hq` so far: the best PSNR on the published models' 15 pairs and the most colour
/// (models/README.md).
const SHIPPED_HQ: &[u8] = include_bytes!("../../models/hq-bins-chroma.safetensors");

fn shipped(spec: &str) -> Option<Result<Weights, WeightsError>> {
    let (bytes, origin) = match spec {
        "linear" => (SHIPPED_LINEAR, "built-in models/linear.safetensors"),
        "l3" => (SHIPPED_L3, "built-in models/l3.safetensors"),
        "default" => (SHIPPED_DEFAULT, "built-in models/default.safetensors"),
        "hq" => (SHIPPED_HQ, "built-in models/hq-bins-chroma.safetensors"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::planes::Gray;

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
}
