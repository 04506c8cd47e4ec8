//! The training losses, each honouring a validity mask (1 where the pixel counts): the source
//! papers' L1, L2, SSIM (the metric's Gaussian window), frequency loss on FFT amplitude and
//! phase, and gradient loss between NIR and predicted gray with a learned per-pixel scale; and
//! our colourfulness loss against pale output.

use tch::{Kind, Tensor};

/// Mean absolute difference over the masked pixels of every channel.
pub fn l1(pred: &Tensor, target: &Tensor, mask: &Tensor) -> Tensor {
    let c = pred.size()[1] as f64;
    ((pred - target).abs() * mask).sum(Kind::Float) / (mask.sum(Kind::Float) * c + 1e-6)
}

/// Mean squared difference over the masked pixels of every channel.
pub fn l2(pred: &Tensor, target: &Tensor, mask: &Tensor) -> Tensor {
    let c = pred.size()[1] as f64;
    ((pred - target).square() * mask).sum(Kind::Float) / (mask.sum(Kind::Float) * c + 1e-6)
}

/// BT.601 Cb and Cr planes (centred on 0) of RGB (batch, 3, h, w) -> (batch, 2, h, w).
pub fn cbcr(x: &Tensor) -> Tensor {
    let y = super::layers::luma(x);
    let cb = (x.narrow(1, 2, 1) - &y) / 1.772;
    let cr = (x.narrow(1, 0, 1) - &y) / 1.402;
    Tensor::cat(&[cb, cr], 1)
}

/// Luminance L1: mean absolute BT.601 luma difference over the masked pixels.
pub fn luma(pred: &Tensor, target: &Tensor, mask: &Tensor) -> Tensor {
    l1(
        &super::layers::luma(pred),
        &super::layers::luma(target),
        mask,
    )
}

/// Chroma L1: mean absolute Cb/Cr difference over the masked pixels. In an RGB loss the
/// luminance error dominates (it appears in all three channels), so chroma gets little gradient
/// and drifts to gray; this term gives it a weight of its own.
pub fn chroma(pred: &Tensor, target: &Tensor, mask: &Tensor) -> Tensor {
    l1(&cbcr(pred), &cbcr(target), mask)
}

/// Chroma as a distribution (`bins`): the cross-entropy of the logits (batch, k*k, h, w)
/// against the soft bins of the truth's Cb and Cr (`target` RGB at the same size), each pixel
/// weighted by how rare its colour is (`weights`, one per bin, from `bins::rebalance`), over
/// the masked pixels.
pub fn chroma_bins(logits: &Tensor, target: &Tensor, mask: &Tensor, weights: &Tensor) -> Tensor {
    let k2 = logits.size()[1];
    let k = (k2 as f64).sqrt().round() as i64;
    let q = super::bins::soft_targets(k, &cbcr(target));
    let per_bin = [1i64].as_slice();
    let ce = -(&q * logits.log_softmax(1, Kind::Float)).sum_dim_intlist(per_bin, true, Kind::Float);
    let rarity = (q * weights.view([1, k2, 1, 1])).sum_dim_intlist(per_bin, true, Kind::Float);
    (ce * rarity * mask).sum(Kind::Float) / (mask.sum(Kind::Float) + 1e-6)
}

/// Colourfulness: the chroma magnitude (BT.601 Cb, Cr as `layers::ycc_to_rgb` takes them)
/// averaged over 8x8 blocks, compared by L1. It asks for as much colour as the truth has in each
/// block without fixing its hue, which pixel losses cannot do: they pull ambiguous colours
/// toward gray.
pub fn saturation(pred: &Tensor, target: &Tensor, mask: &Tensor) -> Tensor {
    let chroma = |x: &Tensor| {
        (cbcr(x)
            .square()
            .sum_dim_intlist([1i64].as_slice(), true, Kind::Float)
            + 1e-6)
            .sqrt()
    };
    let pool = |x: &Tensor| x.avg_pool2d([8, 8], [8, 8], [0, 0], true, true, None::<i64>);
    let weight = pool(mask);
    let block = |x: &Tensor| pool(&(chroma(x) * mask)) / (&weight + 1e-6);
    let counted = weight.ge(0.999).to_kind(Kind::Float);
    ((block(pred) - block(target)).abs() * &counted).sum(Kind::Float)
        / (counted.sum(Kind::Float) + 1e-6)
}

fn gaussian_window(device: tch::Device) -> Tensor {
    let g: Vec<f32> = (-5i32..=5)
        .map(|i| (-(i * i) as f32 / (2.0 * 1.5 * 1.5)).exp())
        .collect();
    let s: f32 = g.iter().sum();
    let g: Vec<f32> = g.iter().map(|v| v / s).collect();
    Tensor::from_slice(&g).to_device(device)
}

fn blur(x: &Tensor, g: &Tensor) -> Tensor {
    let c = x.size()[1];
    let gx = g.view([1, 1, 1, 11]).repeat([c, 1, 1, 1]);
    let gy = g.view([1, 1, 11, 1]).repeat([c, 1, 1, 1]);
    x.pad([5, 5, 5, 5], "reflect", None)
        .conv2d(&gx, None::<Tensor>, [1, 1], [0, 0], [1, 1], c)
        .conv2d(&gy, None::<Tensor>, [1, 1], [0, 0], [1, 1], c)
}

/// 1 - SSIM (Gaussian sigma 1.5, K1 0.01, K2 0.03, data range 1), averaged over masked pixels.
pub fn ssim(pred: &Tensor, target: &Tensor, mask: &Tensor) -> Tensor {
    let g = gaussian_window(pred.device());
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let mx = blur(pred, &g);
    let my = blur(target, &g);
    let sxx = blur(&(pred * pred), &g) - &mx * &mx;
    let syy = blur(&(target * target), &g) - &my * &my;
    let sxy = blur(&(pred * target), &g) - &mx * &my;
    let map = ((&mx * &my * 2.0 + c1) * (sxy * 2.0 + c2))
        / ((&mx * &mx + &my * &my + c1) * (sxx + syy + c2));
    let c = pred.size()[1] as f64;
    1.0 - (map * mask).sum(Kind::Float) / (mask.sum(Kind::Float) * c + 1e-6)
}

/// L1 between the FFT amplitudes plus the wrapped phase difference weighted by the target's
/// amplitude (so phase counts where there is energy), of the masked images.
pub fn frequency(pred: &Tensor, target: &Tensor, mask: &Tensor) -> Tensor {
    let fp = (pred * mask).fft_rfft2(None::<&[i64]>, [-2i64, -1].as_slice(), "ortho");
    let ft = (target * mask).fft_rfft2(None::<&[i64]>, [-2i64, -1].as_slice(), "ortho");
    let (ap, at) = (fp.abs(), ft.abs());
    let amp = (&ap - &at).abs().mean(Kind::Float);
    let d = fp.angle() - ft.angle();
    let wrapped = d.sin().atan2(&d.cos()).abs();
    let phase = (wrapped * &at).sum(Kind::Float) / (at.sum(Kind::Float) + 1e-6);
    amp + phase * 0.1
}

/// Horizontal and vertical forward differences of (batch, c, h, w).
fn gradients(x: &Tensor) -> (Tensor, Tensor) {
    let s = x.size();
    let dx = x.narrow(3, 1, s[3] - 1) - x.narrow(3, 0, s[3] - 1);
    let dy = x.narrow(2, 1, s[2] - 1) - x.narrow(2, 0, s[2] - 1);
    (dx, dy)
}

/// The two-branch paper's gradient loss: the predicted gray's gradients should be the NIR's
/// scaled per pixel by `scale` (learned), where the mask holds.
pub fn gradient(gray: &Tensor, nir: &Tensor, scale: &Tensor, mask: &Tensor) -> Tensor {
    let (gx, gy) = gradients(gray);
    let (nx, ny) = gradients(nir);
    let s = scale.size();
    let sx = scale.narrow(3, 0, s[3] - 1);
    let sy = scale.narrow(2, 0, s[2] - 1);
    let mx = mask.narrow(3, 0, s[3] - 1);
    let my = mask.narrow(2, 0, s[2] - 1);
    let ex = ((gx - sx * nx).abs() * &mx).sum(Kind::Float) / (mx.sum(Kind::Float) + 1e-6);
    let ey = ((gy - sy * ny).abs() * &my).sum(Kind::Float) / (my.sum(Kind::Float) + 1e-6);
    ex + ey
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(seed: f64) -> Tensor {
        let v: Vec<f32> = (0..3 * 24 * 20)
            .map(|i| ((i as f64 * seed).sin() * 0.5 + 0.5) as f32)
            .collect();
        Tensor::from_slice(&v).view([1, 3, 24, 20])
    }

    #[test]
    fn losses_vanish_on_equal_images_and_grow_with_difference() {
        let (a, b) = (img(0.3), img(0.7));
        let m = Tensor::ones([1, 1, 24, 20], (Kind::Float, tch::Device::Cpu));
        for f in [l1, l2, ssim, frequency, saturation, chroma] {
            let same = f64::try_from(f(&a, &a, &m)).unwrap();
            let diff = f64::try_from(f(&a, &b, &m)).unwrap();
            assert!(same.abs() < 1e-5 && diff > 1e-2, "same {same} diff {diff}");
        }
    }

    #[test]
    fn the_binned_chroma_loss_is_lowest_for_logits_that_put_the_truth_first() {
        let k = 8;
        let m = Tensor::ones([1, 1, 1, 1], (Kind::Float, tch::Device::Cpu));
        let green = Tensor::from_slice(&[0.2f32, 0.6, 0.3]).view([1, 3, 1, 1]);
        let q = super::super::bins::soft_targets(k, &cbcr(&green));
        let right = (&q + 1e-4).log();
        let wrong = right.flip([1i64].as_slice());
        let w = Tensor::ones([k * k], (Kind::Float, tch::Device::Cpu));
        let ce = |l: &Tensor| f64::try_from(chroma_bins(l, &green, &m, &w)).unwrap();
        assert!(
            ce(&right) + 1.0 < ce(&wrong),
            "{} vs {}",
            ce(&right),
            ce(&wrong)
        );
        // Rare colours weigh more.
        let heavy = &w * 3.0;
        let scaled = f64::try_from(chroma_bins(&wrong, &green, &m, &heavy)).unwrap();
        assert!((scaled - 3.0 * ce(&wrong)).abs() < 1e-3 * scaled);
    }

    #[test]
    fn masked_pixels_do_not_count() {
        let (a, b) = (img(0.3), img(0.7));
        let m = Tensor::zeros([1, 1, 24, 20], (Kind::Float, tch::Device::Cpu));
        let _ = m.narrow(3, 0, 10).fill_(1.0);
        // Make the two images agree where the mask holds.
        let mixed = &a * &m + &b * (1.0 - &m);
        assert!(f64::try_from(l1(&mixed, &a, &m)).unwrap() < 1e-6);
        assert!(f64::try_from(l2(&mixed, &a, &m)).unwrap() < 1e-6);
    }
}
