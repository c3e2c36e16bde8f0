"""A tiny calcium-imaging movie with known footprints, calcium traces and rigid shifts.

Used by the imaging tests (test_readers/test_motion/test_extraction) so they do
not depend on the full simulator. Shift convention as pipeline.imaging.motion: content
at (y, x) of the reference appears at (y + dy, x + dx) in frame t.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def synth_movie(T=400, Ly=64, Lx=64, n_cells=12, modality="2p", seed=0, max_shift=3.0, diameter=8,
                noise=None, fs=10.0, tau=1.0):
    """Returns (movie (T, Y, X) uint16, truth dict with footprint (N, Y, X), calcium (N, T), rigid_shift (T, 2))."""
    rng = np.random.default_rng(seed)
    pad = int(np.ceil(max_shift)) + 4
    H, W = Ly + 2 * pad, Lx + 2 * pad
    yy, xx = np.mgrid[:H, :W]
    r = diameter / 2
    centers = []
    while len(centers) < n_cells:   # well separated cells so ground truth is unambiguous
        c = rng.uniform([pad + r + 2, pad + r + 2], [pad + Ly - r - 2, pad + Lx - r - 2])
        if all(np.hypot(*(c - d)) > 2.2 * r for d in centers):
            centers.append(c)
    fp = np.zeros((n_cells, H, W), np.float32)
    for k, (cy, cx) in enumerate(centers):
        d2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / r ** 2
        fp[k] = np.where(d2 <= 1.0, np.exp(-d2), 0.0)
    # calcium: Poisson spikes convolved with an exponential kernel
    spikes = rng.random((n_cells, T)) < 0.03
    kern = np.exp(-np.arange(int(5 * tau * fs)) / (tau * fs))
    calcium = np.stack([np.convolve(s.astype(float), kern)[:T] for s in spikes]).astype(np.float32)
    # background: a smooth anatomical texture (neuropil) plus, for 1p, a strong broad glow
    tex = ndimage.gaussian_filter(rng.normal(size=(H, W)), 3)
    tex = (tex - tex.min()) / np.ptp(tex)
    base = 200 + 300 * tex
    if modality == "1p":
        base = base + 2500 * np.exp(-(((yy - H / 2) / (0.6 * H)) ** 2 + ((xx - W / 2) / (0.6 * W)) ** 2))
        noise = 25.0 if noise is None else noise
        brightness = 350.0
    else:
        noise = 30.0 if noise is None else noise
        brightness = 600.0
    shifts = np.cumsum(rng.normal(0, 0.4, (T, 2)), 0)
    shifts = shifts - shifts.mean(0)
    shifts = np.clip(shifts, -max_shift, max_shift).astype(np.float32)
    mov = np.empty((T, Ly, Lx), np.uint16)
    for t in range(T):
        clean = base + brightness * np.tensordot(0.3 + calcium[:, t], fp, 1)
        if modality == "1p":   # slow global fluctuation of the out-of-focus glow
            clean = clean * (1 + 0.05 * np.sin(t / 20))
        moved = ndimage.shift(clean, shifts[t], order=3, mode="nearest")[pad:pad + Ly, pad:pad + Lx]
        mov[t] = np.clip(rng.normal(moved, noise), 0, 65535).astype(np.uint16)
    truth = {"footprint": fp[:, pad:pad + Ly, pad:pad + Lx], "calcium": calcium, "rigid_shift": shifts,
             "fs": fs}
    return mov, truth


def reference_offset(est_shift, true_shift):
    """Constant c with est = true + c (the reference image defines zero); (2,) px."""
    return np.median(np.asarray(est_shift) - np.asarray(true_shift), axis=0)


def shift_rmse(est_shift, true_shift):
    """RMSE (px, over frames and both axes) of estimated vs true shifts, up to the constant offset."""
    d = np.asarray(est_shift) - np.asarray(true_shift)
    d = d - d.mean(0)
    return float(np.sqrt((d ** 2).mean()))


def match_rois(true_fp, est_fp, true_calcium, est_traces, offset=(0.0, 0.0), iou_min=0.5, fp_level=0.1):
    """Hungarian matching of planted and found footprints by IoU.

    true_fp (N, Y, X) planted footprints (support: > fp_level x peak) in tissue coordinates; est_fp (M, Y, X) found
    ones in registered coordinates, which are tissue coordinates moved by -offset.
    Returns dict(f1, precision, recall, iou (matched), corr (matched trace r), found (M,) bool: found ROIs
    matched to a planted one).
    """
    from scipy.optimize import linear_sum_assignment
    moved = np.stack([ndimage.shift(f, -np.asarray(offset), order=1) for f in true_fp]) if len(true_fp) else true_fp
    # planted footprint support: above fp_level of each cell's peak
    tf = (moved > fp_level * moved.reshape(len(moved), -1).max(1)[:, None, None]).astype(float)
    ef = (np.asarray(est_fp) > 0).astype(float)
    if len(ef) == 0:
        return {"f1": 0.0, "precision": 0.0, "recall": 0.0, "iou": np.zeros(0), "corr": np.zeros(0),
                "found": np.zeros(0, bool)}
    inter = np.einsum("iyx,jyx->ij", tf, ef)
    iou = inter / (tf.sum((1, 2))[:, None] + ef.sum((1, 2))[None] - inter)
    ri, ci = linear_sum_assignment(-iou)
    ok = iou[ri, ci] >= iou_min
    tp = int(ok.sum())
    prec, rec = tp / len(ef), tp / len(tf)
    f1 = 2 * prec * rec / (prec + rec) if tp else 0.0
    corr = np.array([np.corrcoef(true_calcium[i], est_traces[j])[0, 1] for i, j in zip(ri[ok], ci[ok])])
    found = np.zeros(len(ef), bool)
    found[ci[ok]] = True
    return {"f1": f1, "precision": prec, "recall": rec, "iou": iou[ri, ci][ok], "corr": corr, "found": found}


def sensor_background_1p_movie(T=600, Ly=96, Lx=96, seed=0, max_shift=4.0, n_cells=25, diameter=10,
                               optics_sigma=1.5, noise=12.0, contrast=0.25, glow=600.0, glow_sigma=0.15,
                               vignetting=0.45):
    """A one-photon movie whose tissue moves with planted rigid shifts while the background is fixed to the
    sensor, as on a miniscope: a vignette (illumination and collection fall-off) multiplies the moving
    tissue, and an off-centre stray-light glow is added after it.

    The tissue (tissue coordinates, padded): smooth neuropil texture, dark vessels (a few curved bands
    of 4-6 px), Gaussian somata with transients; optics blur (Gaussian, optics_sigma px) is applied after
    the motion. Shifts: a slow random walk (brain motion, up to max_shift px) plus occasional jumps.
    Returns (movie (T, Y, X) uint16, truth dict with rigid_shift (T, 2) px in the convention of
    pipeline.imaging.motion, vignette (Y, X), glow (Y, X) counts).
    """
    rng = np.random.default_rng(seed)
    pad = int(np.ceil(max_shift)) + 6
    H, W = Ly + 2 * pad, Lx + 2 * pad
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    tex = ndimage.gaussian_filter(rng.normal(size=(H, W)), 4)
    tissue = 1.0 + contrast * tex / tex.std()
    for _ in range(3):   # vessels: dark curved bands through the field
        y0, k, a, ph = rng.uniform(0, H), rng.uniform(-0.6, 0.6), rng.uniform(3, 10), rng.uniform(0, 6.3)
        dist = np.abs(yy - (y0 + k * (xx - W / 2) + a * np.sin(xx / 15 + ph))) / np.sqrt(1 + k * k)
        tissue *= 1 - 0.35 * np.exp(-(dist / rng.uniform(2, 3)) ** 2)
    r = diameter / 2
    cy, cx = rng.uniform(pad, H - pad, n_cells), rng.uniform(pad, W - pad, n_cells)
    fp = np.stack([np.exp(-((yy - a) ** 2 + (xx - b) ** 2) / (2 * (r / 1.5) ** 2)) for a, b in zip(cy, cx)])
    spikes = rng.random((n_cells, T)) < 0.02
    kern = np.exp(-np.arange(40) / 8.0)
    calcium = np.stack([np.convolve(s.astype(float), kern)[:T] for s in spikes]).astype(np.float32)
    # planted motion: a smooth random walk plus a few jumps, recentred, clipped to max_shift
    walk = ndimage.gaussian_filter1d(np.cumsum(rng.normal(0, 0.15, (T, 2)), 0), 3, axis=0)
    jumps = np.cumsum((rng.random((T, 1)) < 0.01) * rng.normal(0, 1.5, (T, 2)), 0)
    shifts = walk + jumps
    shifts = np.clip(shifts - np.median(shifts, 0), -max_shift, max_shift).astype(np.float32)
    # sensor-fixed background (sensor coordinates)
    sy, sx = np.mgrid[:Ly, :Lx].astype(np.float32)
    r2 = ((sy - Ly / 2) / (Ly / 2)) ** 2 + ((sx - Lx / 2) / (Lx / 2)) ** 2
    vignette = (1.0 - vignetting * r2).clip(0.2, 1.0)
    gy, gx = rng.uniform(0.25, 0.75) * Ly, rng.uniform(0.25, 0.75) * Lx
    glow_img = glow * np.exp(-((sy - gy) ** 2 + (sx - gx) ** 2) / (2 * (glow_sigma * Lx) ** 2)) \
        + 0.5 * glow * np.exp(-((sy - Ly * 0.1) ** 2) / (2 * (0.3 * Ly) ** 2))
    mov = np.empty((T, Ly, Lx), np.uint16)
    for t in range(T):
        scene = 1500 * tissue + 900 * np.tensordot(calcium[:, t], fp, 1) * tissue
        moved = ndimage.shift(scene, shifts[t], order=3, mode="nearest")
        moved = ndimage.gaussian_filter(moved, optics_sigma)[pad:pad + Ly, pad:pad + Lx]
        mov[t] = np.clip(rng.normal(moved * vignette + glow_img + 200, noise), 0, 65535).astype(np.uint16)
    return mov, {"rigid_shift": shifts, "vignette": vignette, "glow": glow_img}


def shift_slope(est_shift, true_shift):
    """Least-squares slope of the estimated on the true shifts (both axes pooled, each centred); 1 = no
    shrinkage."""
    e, t = np.asarray(est_shift, float), np.asarray(true_shift, float)
    e, t = e - e.mean(0), t - t.mean(0)
    return float((e * t).sum() / (t * t).sum())
