"""Motion accuracy on real 2p frames with planted shifts: the project's motion stage vs suite2p direct.

    python benchmarks/bench_real_motion.py [--quick] [--frames N]

The shared real movie (neurofinder 00.00, top-left quadrant, 600 x 256 x 256; benchmarks/_realdata.py)
gets planted rigid shifts: a smooth random walk (SD 1.5 px per axis, clipped at 4 px, seed 0) applied to
every frame by cubic-spline interpolation (edges reflected), then 8 px are cropped from each edge
(600 x 240 x 240 frames). The movie has its own residual jitter (it was registered by its authors, about
0.3 px SD), so each method registers both the planted and the unshifted crop, and its error is
    estimate(planted) - estimate(unshifted) - planted   (mean removed; RMS over frames and both axes, px).
Arms, on the same frames:
  - suite2p: `suite2p.registration.registration_wrapper` with `suite2p.default_settings()["registration"]`
    (its defaults: 128 px blocks), shift = integer rigid shift + mean nonrigid block shift;
  - project: `pipeline.imaging.motion.register_movie` with the [motion] defaults (`rigid_shift`, the shift
    applied to the frames; 128 px blocks, so rigid with the applied subpixel residual on these 240 px frames);
  - with --explain, also the former default (64 px nonrigid blocks, with and without the residual pass).
Prints each error and the ratio project / suite2p (goal <= 1). Skipped (exit 0) without the data.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

CROP = 8


def planted_movie(raw: np.ndarray, seed: int = 0, sd: float = 1.5, max_shift: float = 4.0):
    """(planted (T, Y-16, X-16) float32, unshifted crop, planted shifts (T, 2) px in the motion convention)."""
    from scipy import ndimage
    rng = np.random.default_rng(seed)
    T = len(raw)
    s = ndimage.gaussian_filter1d(rng.normal(0, 1, (T, 2)), 2, axis=0)
    s = np.clip(sd * s / s.std(0), -max_shift, max_shift).astype(np.float32)
    # content at (y, x) of the unshifted frame appears at (y + dy, x + dx): ndimage.shift by +s
    planted = np.stack([ndimage.shift(f.astype(np.float32), d, order=3, mode="reflect") for f, d in zip(raw, s)])
    c = (slice(None), slice(CROP, -CROP), slice(CROP, -CROP))
    return planted[c], raw[c].astype(np.float32), s


def to_uint16(mov: np.ndarray) -> np.ndarray:
    return np.clip(np.round(mov), 0, 65535).astype(np.uint16)   # spline overshoot below 0 is clipped


def suite2p_direct(mov: np.ndarray) -> np.ndarray:
    """suite2p's registration with its defaults; (T, 2) px = integer rigid + mean nonrigid block shift."""
    import suite2p
    from suite2p.registration.register import registration_wrapper
    from pipeline.imaging.motion import torch_device
    data = (to_uint16(mov) // 2).astype(np.int16)     # as suite2p stores uint16 data
    out = registration_wrapper(data, settings=dict(suite2p.default_settings()["registration"]),
                               device=torch_device())
    y, x = np.asarray(out["yoff"], np.float64), np.asarray(out["xoff"], np.float64)
    if out.get("yoff1") is not None:
        y, x = y + np.asarray(out["yoff1"]).mean(1), x + np.asarray(out["xoff1"]).mean(1)
    return np.c_[y, x]


def project(mov: np.ndarray, **over) -> np.ndarray:
    from pipeline.core.parameters import SPEC
    from pipeline.imaging.motion import register_movie
    from pipeline.io.readers import ArrayMovie
    with tempfile.TemporaryDirectory() as d:
        r = register_movie(ArrayMovie(to_uint16(mov)), d, "2p", SPEC["motion"].validate(over, "bench"))
    return r.rigid_shift.astype(np.float64)


def error(est_planted, est_unshifted, planted) -> float:
    d = np.asarray(est_planted) - np.asarray(est_unshifted) - np.asarray(planted)
    d = d - d.mean(0)
    return float(np.sqrt((d ** 2).mean()))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the first 300 frames (default: all 600)")
    ap.add_argument("--frames", type=int, default=0, help="use the first N frames")
    ap.add_argument("--explain", action="store_true", help="also the former default, 64 px nonrigid blocks, with "
                    "and without the subpixel residual pass (locates the gap)")
    a = ap.parse_args(argv)
    from _realdata import data_dir
    d = data_dir()
    if d is None:
        print("bench_real_motion: no real data beside the repository (../shared/data/neurofinder_00_00_topleft); skipped")
        return {}
    import tifffile
    import torch
    torch.set_num_threads(1)
    raw = tifffile.imread(d / "movie.tif")
    n = a.frames or (300 if a.quick else len(raw))
    planted, unshifted, s = planted_movie(raw[:n])
    arms = {"suite2p direct (defaults)": suite2p_direct,
            "project (defaults)": project}
    if a.explain:
        # (subpixel_residual is on by default for 2p: the first arm turns it off)
        arms["project, 64 px blocks, no residual"] = lambda m: project(m, block_size=[64, 64], subpixel_residual=False)
        arms["project, 64 px blocks + residual"] = lambda m: project(m, block_size=[64, 64])
    res = {}
    for name, f in arms.items():
        t = time.perf_counter()
        e0 = f(unshifted)
        res[name] = error(f(planted), e0, s)
        print(f"{name:36s} error {res[name]:.3f} px RMS (own jitter SD {e0.std(0).mean():.2f} px; "
              f"{time.perf_counter() - t:.0f} s)", flush=True)
    base = res["suite2p direct (defaults)"]
    print(f"movie {n} x {planted.shape[1]} x {planted.shape[2]} (planted SD {s.std(0).mean():.2f} px): "
          f"project / suite2p error ratio {res['project (defaults)'] / base:.2f} (goal <= 1)")
    return res


if __name__ == "__main__":
    main()
