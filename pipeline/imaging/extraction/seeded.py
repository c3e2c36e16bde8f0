"""One-photon (miniscope) ROI detection: background removal, then CNMF-E-style greedy seeding.

Why not suite2p: its detectors (sparsery, sourcery) found ~30% of the simulator's 1p cells
(docs/imaging.md). One-photon movies carry a bright out-of-focus background that fluctuates in
time; CNMF-E/minian remove it per frame before looking for cells. We do the same with a
morphological top-hat (a grey opening with a disk of a cell radius, as minian does),
then seed cells where the local correlation image and the peak-to-noise ratio are both high
(CNMF-E's seeding rule), and grow each footprint by regressing every nearby pixel's trace on
the seed trace. The footprints are handed to suite2p's extraction (ROI and neuropil traces) by
pipeline.imaging.extraction. Measured on the simulator it does NOT yet beat suite2p's sourcery
(docs/imaging.md), so it is not the default.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from pipeline.imaging.correlation import correlation_image


def tophat(frames: np.ndarray, radius: float, sigma_small: float = 0.0) -> np.ndarray:
    """Per-frame morphological top-hat (minian's remove_background): (T, Y, X) -> (T, Y, X) float32.

    Each frame is blurred (Gaussian, `sigma_small` px, against shot noise; 0 = none) and its grey
    opening with a disk of `radius` px is subtracted: structures narrower than the disk (cells)
    stay, the smooth out-of-focus background goes.
    """
    r = max(1, int(round(radius)))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = yy ** 2 + xx ** 2 <= r * r
    out = np.empty(frames.shape, np.float32)
    for t in range(len(frames)):
        f = frames[t].astype(np.float32)
        if sigma_small > 0:
            f = ndimage.gaussian_filter(f, sigma_small)
        out[t] = f - ndimage.grey_opening(f, footprint=disk)
    return out


def remove_background(mov: np.ndarray, sigma_small: float, radius: float) -> np.ndarray:
    """`tophat` of each frame, then each pixel minus its temporal median; (T, Y, X) float32."""
    out = tophat(mov, radius, sigma_small)
    out -= np.median(out, axis=0)[None]
    return out


def detect_1p(mov: np.ndarray, diameter: float, min_corr: float = 0.3, min_pnr: float = 4.0,
              footprint_level: float = 0.1, max_rois: int = 10000, bg_radius: float | None = None,
              max_radius: float | None = None) -> tuple[list[dict], dict]:
    """Find cells in a one-photon movie.

    mov (T, Y, X) float32 raw (binned) frames; diameter: expected cell diameter (px).
    min_corr: least local correlation at a seed; min_pnr: least peak-to-noise ratio of the
    seed's (smoothed, background-removed) trace. footprint_level: footprint support is the
    connected region above this fraction of the footprint's peak, within max_radius px of the
    seed (default 0.7 diameter). bg_radius: top-hat disk radius (default diameter / 2).
    Returns (stat, images): stat is a list of dicts with ypix, xpix (int, frame coordinates of
    `mov`) and lam (float, footprint weights); images holds 'correlation', 'pnr' (Y, X).
    """
    T, Y, X = mov.shape
    cell_sigma = diameter / 4.0
    # a small blur (~0.4 cell sigma) fights shot noise without merging neighbours
    hp = remove_background(mov, max(0.5, cell_sigma / 2.5), diameter / 2 if bg_radius is None else bg_radius)
    noise = np.median(np.abs(np.diff(hp, axis=0)), axis=0) / (0.6745 * np.sqrt(2))
    pnr = hp.max(0) / np.maximum(noise, 1e-12)
    cn = correlation_image(hp)
    score = np.where((cn >= min_corr) & (pnr >= min_pnr), cn * pnr, 0.0)
    r = max(1, int(round(diameter / 2)))
    local_max = (score == ndimage.maximum_filter(score, size=2 * r + 1)) & (score > 0)
    seeds = np.argwhere(local_max)
    seeds = seeds[np.argsort(-score[local_max])]

    w = int(round(1.5 * diameter))
    stat: list[dict] = []
    taken = np.zeros((Y, X), bool)
    for sy, sx in seeds:
        if len(stat) >= max_rois:
            break
        if taken[sy, sx]:
            continue
        y0, y1, x0, x1 = max(0, sy - w), min(Y, sy + w + 1), max(0, sx - w), min(X, sx + w + 1)
        patch = hp[:, y0:y1, x0:x1].reshape(T, -1)
        c = hp[:, max(0, sy - 1):sy + 2, max(0, sx - 1):sx + 2].reshape(T, -1).mean(1)
        c = c - c.mean()
        a = (patch - patch.mean(0)).T @ c / max(float(c @ c), 1e-12)   # regression of each pixel on the seed
        a = a.reshape(y1 - y0, x1 - x0)
        a = ndimage.gaussian_filter(a, 0.5)
        peak = a[sy - y0, sx - x0]
        if peak <= 0:
            continue
        lab, _ = ndimage.label(a > footprint_level * peak)
        mask = lab == lab[sy - y0, sx - x0]
        ry, rx = np.mgrid[y0 - sy:y1 - sy, x0 - sx:x1 - sx]
        mask &= ry ** 2 + rx ** 2 <= (0.7 * diameter if max_radius is None else max_radius) ** 2
        yy, xx = np.nonzero(mask)
        stat.append({"ypix": (yy + y0).astype(np.int32), "xpix": (xx + x0).astype(np.int32),
                     "lam": np.maximum(a[mask], 0).astype(np.float32)})
        # seeds inside the core of this cell (above half its peak) are the same cell
        core = np.zeros((Y, X), bool)
        core[y0:y1, x0:x1] = mask & (a > 0.5 * peak)
        taken |= core
    return stat, {"correlation": cn, "pnr": pnr.astype(np.float32)}
