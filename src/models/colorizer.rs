//! The one interface every colorizer implements (the classical models, the networks; the daemon
//! drives them all), the identity floor, and the optional post-processing after any colorizer.

use crate::detail::bfwls::Bfwls;
use crate::detail::lowres::{restore, shrink};
use crate::detail::GuidedFilter;
use crate::images::planes::{Gray, Rgb};

/// Turns one NIR plane in [0, 1] into RGB planes of the same size (values may leave [0, 1]; they
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

/// A post-processing option out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PostError {
    #[error("--eps {0} must be a positive number (1e-5 .. 1e-1 are typical)")]
    Eps(f32),
    #[error("--scale {0} must be in (0, 1], e.g. 0.5 or 0.25")]
    Scale(f32),
}

/// Checks the guided filter's `eps` and the fast guided filter's `scale` before a model loads.
pub fn validate_post(eps: f32, scale: f32) -> Result<(), PostError> {
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(PostError::Eps(eps));
    }
    if !(scale > 0.0 && scale <= 1.0) {
        return Err(PostError::Scale(scale));
    }
    Ok(())
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
