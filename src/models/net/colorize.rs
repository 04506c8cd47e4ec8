//! A network as a [`Colorizer`]: bare (at whatever size it is handed, the daemon's inference
//! stage does its own shrinking and detail transfer), or the whole path the model was trained
//! for (shrink, network, guided filter or bilinear upsampling) for `eval` and `colorize`.

use std::collections::BTreeMap;

use tch::{Kind, Tensor};

use super::Model;
use crate::detail::lowres::{restore, shrink_to};
use crate::detail::{resize_bilinear, GuidedFilter};
use crate::images::planes::{Gray, Rgb};
use crate::models::colorizer::Colorizer;

pub struct NetColorizer {
    model: Model,
    name: String,
    full_path: bool,
}

impl NetColorizer {
    /// The network alone, at the size it is given.
    pub fn bare(model: Model, name: String) -> NetColorizer {
        NetColorizer {
            model,
            name,
            full_path: false,
        }
    }

    /// Shrink, network, detail transfer: what training optimised.
    pub fn full(model: Model, name: String) -> NetColorizer {
        NetColorizer {
            model,
            name,
            full_path: true,
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The network on frames of one size, as one batch.
    fn forward_same_size(&self, nirs: &[&Gray]) -> Vec<Rgb> {
        let _guard = tch::no_grad_guard();
        self.model.set_bf16(super::bf16_inference());
        let (w, h) = (nirs[0].width, nirs[0].height);
        let flat: Vec<f32> = nirs.iter().flat_map(|n| n.data.iter().copied()).collect();
        let x = Tensor::from_slice(&flat)
            .view([nirs.len() as i64, 1, h as i64, w as i64])
            .to_device(self.model.vs.device());
        let rgb = self
            .model
            .forward(&x)
            .rgb
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous();
        let all = Vec::<f32>::try_from(rgb.flatten(0, -1)).expect("f32 output");
        all.chunks_exact(3 * w * h)
            .map(|c| Rgb::new(w, h, c.to_vec()))
            .collect()
    }

    /// The network on any frames: frames of equal size share one forward pass.
    fn forward_batch(&self, nirs: &[&Gray]) -> Vec<Rgb> {
        let mut groups: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        for (i, n) in nirs.iter().enumerate() {
            groups.entry((n.width, n.height)).or_default().push(i);
        }
        let mut out: Vec<Option<Rgb>> = vec![None; nirs.len()];
        for idx in groups.values() {
            let batch: Vec<&Gray> = idx.iter().map(|&i| nirs[i]).collect();
            for (i, rgb) in idx.iter().zip(self.forward_same_size(&batch)) {
                out[*i] = Some(rgb);
            }
        }
        out.into_iter()
            .map(|o| o.expect("every frame ran"))
            .collect()
    }

    fn finish(&self, nir: &Gray, low: &Gray, colour: Rgb) -> Rgb {
        let cfg = &self.model.cfg;
        if (low.width, low.height) == (nir.width, nir.height) {
            colour
        } else if cfg.guided {
            let filter = GuidedFilter {
                radius: cfg.detail_radius,
                eps: cfg.detail_eps as f32,
            };
            restore(
                filter,
                low.width as f32 / nir.width as f32,
                nir,
                low,
                &colour,
            )
        } else {
            let data = resize_bilinear(
                &colour.data,
                low.width,
                low.height,
                3,
                nir.width,
                nir.height,
            );
            Rgb::new(nir.width, nir.height, data)
        }
    }
}

impl Colorizer for NetColorizer {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn colorize(&self, nir: &Gray) -> Rgb {
        self.colorize_batch(std::slice::from_ref(nir))
            .pop()
            .expect("one frame in, one out")
    }

    fn colorize_batch(&self, nirs: &[Gray]) -> Vec<Rgb> {
        if !self.full_path {
            return self.forward_batch(&nirs.iter().collect::<Vec<_>>());
        }
        let lows: Vec<Gray> = nirs
            .iter()
            .map(|n| {
                let (w, h) = self.model.cfg.inference_size(n.width, n.height);
                shrink_to(n, w, h)
            })
            .collect();
        let colours = self.forward_batch(&lows.iter().collect::<Vec<_>>());
        nirs.iter()
            .zip(&lows)
            .zip(colours)
            .map(|((n, l), c)| self.finish(n, l, c))
            .collect()
    }
}
