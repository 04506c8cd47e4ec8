"""Time OpenCV's guided filter (cv2.ximgproc.guidedFilter) on the images `nircolor bench filter` writes.

usage: python scripts/bench_guided_opencv.py DIR   (run by `nircolor bench filter`)

DIR holds sizes.json ({"radius", "eps", "iterations", "sizes": [[w, h], ...]}) and, per size,
guide_WxH.f32 (raw little-endian f32, H*W) and input_WxH.f32 (raw f32, H*W*3 interleaved HWC,
the layout OpenCV wants). For each size this writes OpenCV's result to opencv_out_WxH.f32 as
planar CHW f32, and if DIR also holds ours_WxH.f32 (planar CHW) it reports the max abs
difference over pixels at least 2*radius from the border: OpenCV's box filter reflects at the
edges while ours clips the window, so only that interior is comparable.

Prints one JSON line to stdout.
"""

import json
import os
import sys
import time

import cv2
import numpy as np


def load(path, shape):
    data = np.fromfile(path, dtype="<f4")
    if data.size != int(np.prod(shape)):
        raise SystemExit(f"{path}: expected {np.prod(shape)} floats, found {data.size}")
    return data.reshape(shape)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = sys.argv[1]
    with open(os.path.join(root, "sizes.json")) as f:
        cfg = json.load(f)
    radius, eps, iterations = int(cfg["radius"]), float(cfg["eps"]), int(cfg["iterations"])
    cv2.setNumThreads(2)

    results = []
    overall = None
    for w, h in cfg["sizes"]:
        tag = f"{w}x{h}"
        guide = load(os.path.join(root, f"guide_{tag}.f32"), (h, w))
        src = load(os.path.join(root, f"input_{tag}.f32"), (h, w, 3))

        for _ in range(3):
            out = cv2.ximgproc.guidedFilter(guide, src, radius, eps)
        times = []
        for _ in range(iterations):
            t0 = time.perf_counter()
            out = cv2.ximgproc.guidedFilter(guide, src, radius, eps)
            times.append(time.perf_counter() - t0)
        median_ms = float(np.median(times)) * 1e3

        planar = np.ascontiguousarray(out.transpose(2, 0, 1), dtype="<f4")
        planar.tofile(os.path.join(root, f"opencv_out_{tag}.f32"))

        entry = {
            "width": w,
            "height": h,
            "median_ms": median_ms,
            "min_ms": float(np.min(times)) * 1e3,
            "max_ms": float(np.max(times)) * 1e3,
            "mpix_per_s": w * h / (median_ms * 1e3),
        }
        ours_path = os.path.join(root, f"ours_{tag}.f32")
        m = 2 * radius
        if os.path.exists(ours_path) and w > 2 * m and h > 2 * m:
            ours = load(ours_path, (3, h, w)).astype(np.float64)
            diff = np.abs(ours - planar.astype(np.float64))[:, m : h - m, m : w - m]
            entry["interior_max_abs_diff"] = float(diff.max())
            overall = max(overall or 0.0, entry["interior_max_abs_diff"])
        results.append(entry)

    print(
        json.dumps(
            {"opencv": cv2.__version__, "results": results, "interior_max_abs_diff": overall}
        )
    )


if __name__ == "__main__":
    main()
