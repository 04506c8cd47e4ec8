//! The guided filter written with tch operations, so training can back-propagate through the
//! detail transfer the network's output will go through at inference. The same arithmetic as
//! [`crate::detail::GuidedFilter::filter_fast`] (box means clipped to the image, bilinear
//! upsampling with half-pixel centres); a test holds the two together.

use tch::Tensor;

use super::layers::resize;

/// Mean over (2r+1)^2 windows clipped to the image, per channel of (batch, c, h, w).
pub fn box_mean(x: &Tensor, r: i64) -> Tensor {
    let k = 2 * r + 1;
    x.avg_pool2d([k, k], [1, 1], [r, r], false, false, None::<i64>)
}

/// The fast guided filter: coefficients from `guide_low` (batch, 1, h, w) and `input_low`
/// (batch, c, h, w) with radius `r` at the low size, upsampled and applied to `guide_full`
/// (batch, 1, H, W).
pub fn fast_guided(
    guide_full: &Tensor,
    guide_low: &Tensor,
    input_low: &Tensor,
    r: i64,
    eps: f64,
) -> Tensor {
    let mi = box_mean(guide_low, r);
    let mp = box_mean(input_low, r);
    let cov = box_mean(&(guide_low * input_low), r) - &mi * &mp;
    let var = box_mean(&(guide_low * guide_low), r) - &mi * &mi;
    let a = cov / (var + eps);
    let b = mp - &a * mi;
    let s = guide_full.size();
    let ma = resize(&box_mean(&a, r), s[2], s[3]);
    let mb = resize(&box_mean(&b, r), s[2], s[3]);
    ma * guide_full + mb
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detail::GuidedFilter;

    #[test]
    fn matches_the_daemon_filter() {
        let (w, h, lw, lh) = (37usize, 29usize, 19usize, 15usize);
        let pattern = |n: usize, k: f32| -> Vec<f32> {
            (0..n).map(|i| (i as f32 * k).sin() * 0.5 + 0.5).collect()
        };
        let guide = pattern(w * h, 0.37);
        let guide_low = pattern(lw * lh, 0.91);
        let input = pattern(3 * lw * lh, 0.23);
        let gf = GuidedFilter {
            radius: 3,
            eps: 1e-3,
        };
        let ours = gf.filter_fast(&guide, w, h, &guide_low, &input, lw, lh, 3);
        let t = |v: &[f32], c: i64, hh: usize, ww: usize| {
            Tensor::from_slice(v).view([1, c, hh as i64, ww as i64])
        };
        let torch = fast_guided(
            &t(&guide, 1, h, w),
            &t(&guide_low, 1, lh, lw),
            &t(&input, 3, lh, lw),
            3,
            1e-3,
        );
        let torch: Vec<f32> = Vec::try_from(torch.flatten(0, -1)).unwrap();
        let worst = ours
            .iter()
            .zip(&torch)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "tch and detail.rs differ by {worst}");
    }
}
