"""Reference metrics with scikit-image and colour-science, for tests/metrics_reference.rs.

Usage: python metrics.py CASES.json  ->  prints {name: {metric: value}} as JSON.
CASES.json lists {"name", "pred", "truth", "mask" (path or null)}; images are 8-bit PNGs.
With a mask, per-pixel metrics use only its pixels, and SSIM is the mean of scikit-image's full
map (channels averaged, 5-pixel border cropped) over the mask's pixels.
"""
import json
import sys
import warnings

import numpy as np
from skimage import io
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

warnings.filterwarnings("ignore")
import colour  # noqa: E402  (imported after silencing its optional-dependency warnings)

PAD = 5  # (11 - 1) // 2: the Gaussian window's half width at sigma 1.5, truncate 3.5


def lab(rgb8):
    return colour.XYZ_to_Lab(colour.sRGB_to_XYZ(rgb8.astype(np.float64) / 255.0))


def metrics(pred, truth, mask):
    p, t = pred.astype(np.float64), truth.astype(np.float64)
    sel = np.ones(p.shape[:2], bool) if mask is None else mask
    d = (p - t)[sel]
    mse = np.mean(d**2)
    if mask is None:
        psnr = peak_signal_noise_ratio(truth, pred, data_range=255)
    else:
        psnr = 10 * np.log10(255.0**2 / mse) if mse > 0 else np.inf
    mssim, smap = structural_similarity(
        truth, pred, channel_axis=-1, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=255, full=True)
    cropped = smap.mean(axis=-1)[PAD:-PAD, PAD:-PAD]
    masked_ssim = cropped[sel[PAD:-PAD, PAD:-PAD]].mean()
    if mask is None:
        # The masked definition must reduce to scikit-image's own number without a mask.
        assert abs(masked_ssim - mssim) < 1e-12, (masked_ssim, mssim)
        ssim = mssim
    else:
        ssim = masked_ssim
    pv, tv = p[sel], t[sel]
    npv, ntv = np.linalg.norm(pv, axis=1), np.linalg.norm(tv, axis=1)
    ok = (npv > 0) & (ntv > 0)
    cos = np.sum(pv[ok] * tv[ok], axis=1) / (npv[ok] * ntv[ok])
    ae = np.degrees(np.arccos(np.clip(cos, -1, 1))).mean() if ok.any() else None
    lp, lt = lab(pred)[sel], lab(truth)[sel]
    return {
        "psnr": None if np.isinf(psnr) else float(psnr),
        "psnr_is_inf": bool(np.isinf(psnr)),
        "ssim": float(ssim),
        "ae": None if ae is None else float(ae),
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.mean(np.abs(d))),
        "delta_e2000": float(np.mean(colour.delta_E(lt, lp, method="CIE 2000"))),
        "delta_e76": float(np.mean(colour.delta_E(lt, lp, method="CIE 1976"))),
    }


def main():
    cases = json.load(open(sys.argv[1]))
    out = {}
    for c in cases:
        pred, truth = io.imread(c["pred"]), io.imread(c["truth"])
        mask = io.imread(c["mask"]) > 127 if c.get("mask") else None
        out[c["name"]] = metrics(pred[..., :3], truth[..., :3], mask)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
