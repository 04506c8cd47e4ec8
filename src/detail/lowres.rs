//! The inference size and the way there and back: frames are colorized shrunk (area average),
//! and the fast guided filter restores full resolution from the full-size NIR.

use crate::detail::{resize_area, GuidedFilter};
use crate::images::planes::{Gray, Rgb};

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

/// `filter` (radius in full-resolution pixels) for images shrunk by `scale`: the radius scaled
/// and rounded, at least 1.
pub fn low_resolution(filter: GuidedFilter, scale: f32) -> GuidedFilter {
    GuidedFilter {
        radius: ((filter.radius as f32 * scale).round() as usize).max(1),
        eps: filter.eps,
    }
}

/// Full-resolution colour from colour computed on `low` (`nir` shrunk by `scale`): the fast
/// guided filter's coefficients at the low size, applied to the full-resolution NIR, so the
/// output gets the NIR's edges and texture. `filter.radius` is in full-resolution pixels.
pub fn restore(filter: GuidedFilter, scale: f32, nir: &Gray, low: &Gray, colour: &Rgb) -> Rgb {
    let data = low_resolution(filter, scale).filter_fast(
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
