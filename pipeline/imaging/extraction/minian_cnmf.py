"""One-photon extraction with minian's CNMF (engine_1p = 'minian').

`cnmf(binary_path, shape, fs, params)` runs minian's reference pipeline (its notebook
pipeline.ipynb) on the registered int16 binary, without motion correction (the movie is
already registered): per-frame median denoise and morphological top-hat background removal,
seeds (rolling max projections -> local maxima -> peak-to-noise refinement -> merge; the
Kolmogorov-Smirnov refinement is left out, see `cnmf`), initA / initC, unit merge, background (b, f) and noise estimates, then two
rounds of spatial update, background update and temporal update (AR(1) deconvolution), with a
unit merge between them. `extract_minian(...)` turns that into a pipeline.imaging.extraction.ExtractionResult.

minian's sizes are scaled with the session's cell diameter d (px): top-hat disk radius d,
local-maximum window d, seed merge distance d, initA window d, least footprint area
pi (d/2)^2 / 4. Intensity thresholds are in units of the movie's noise (see `cnmf`).

Runtime notes: minian works on dask arrays on the default (threaded) scheduler here; no
dask.distributed client is needed (get_noise_fft falls back to one FFT thread without one).
Some of its functions write intermediate zarr stores to $MINIAN_INTERMEDIATE (seeds_init,
update_background); `cnmf` points it at a temporary folder that is deleted afterwards, and
silences minian's progress prints.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass

import numpy as np

from pipeline.imaging.correlation import correlation_image
from pipeline.io.binary import ChunkedBinary

log = logging.getLogger("interbrain.extraction")


@dataclass
class MinianCNMF:
    """minian's CNMF result. Shapes: N units, T frames, (Y, X) frame.

    A: (N, Y, X) non-negative spatial footprints (minian's normalisation, dimensionless).
    C: (N, T) denoised calcium (AR(1) model), in preprocessed-movie units per unit of A.
    S: (N, T) deconvolved activity (non-negative, same units as C per frame).
    YrA: (N, T) the unit's raw trace: background-removed movie projected on A minus the other units
        (C + residual), same units as C.
    b0, c0: (N, T) baseline and initial-decay terms of the temporal model (C + b0 + c0 fits YrA).
    F: (N, T) footprint-weighted (weights A / sum A) mean of the raw registered movie, raw units.
    scale: (N,) sum(A^2) / sum(A): C * scale is the unit's contribution to F (raw units).
    """

    A: np.ndarray
    C: np.ndarray
    S: np.ndarray
    YrA: np.ndarray
    b0: np.ndarray
    c0: np.ndarray
    F: np.ndarray
    scale: np.ndarray
    correlation_image: np.ndarray   # (Y, X) mean r of each pixel with its 4 neighbours (background-removed movie)
    seconds: float
    settings: dict


@contextlib.contextmanager
def _intermediate_dir():
    """A temporary $MINIAN_INTERMEDIATE (minian's zarr scratch), removed and the variable restored on exit."""
    old = os.environ.get("MINIAN_INTERMEDIATE")
    with tempfile.TemporaryDirectory(prefix="minian_") as d:
        os.environ["MINIAN_INTERMEDIATE"] = d
        try:
            yield d
        finally:
            if old is None:
                os.environ.pop("MINIAN_INTERMEDIATE", None)
            else:
                os.environ["MINIAN_INTERMEDIATE"] = old


def _settings(params: dict, fs: float) -> dict:
    """minian's parameters (pipeline.ipynb defaults) with sizes scaled to the cell diameter."""
    d = float(params["diameter"])
    r = max(2, int(round(d)))
    return {
        "denoise": {"method": "median", "ksize": 3 if d < 8 else 5},   # float32: cv2 median takes 3 or 5
        "background": {"method": "tophat", "wnd": r},
        "seeds_init": {"wnd_size": 1000, "method": "rolling", "stp_size": 500, "max_wnd": r,
                       "diff_thres_noise": 3.0},
        "pnr_refine": {"noise_freq": 0.06, "thres": float(params["minian_pnr_1p"])},
        "seeds_merge": {"thres_dist": max(2, int(round(d / 2))), "thres_corr": 0.8, "noise_freq": 0.06},
        "initA": {"thres_corr": 0.8, "wnd": r, "noise_freq": 0.06},
        "merge": {"thres_corr": 0.8},
        "noise": {"noise_range": (0.06, 0.5)},
        "spatial": {"dl_wnd": r, "sparse_penal": 0.01,
                    "size_thres": (max(4, int(np.pi * (d / 2) ** 2 / 4)), None)},
        "temporal": {"noise_freq": 0.06, "sparse_penal": 1.0,
                     "p": 1, "add_lag": 20},
        "jac_thres": (0.2, 0.4),
    }


def _load(binary_path, shape, bad_frame, scale, batch=500) -> np.ndarray:
    """The registered movie (T, Y, X) float32 in raw units; bad frames replaced by the nearest good frame."""
    T, Ly, Lx = shape
    mov = np.empty((T, Ly, Lx), np.float32)
    b = ChunkedBinary(binary_path, shape)
    for i, fr in b.iter_chunks(batch):
        mov[i:i + len(fr)] = fr.astype(np.float32) * scale
    b.close()
    if bad_frame is not None and np.any(bad_frame) and not np.all(bad_frame):
        good = np.flatnonzero(~np.asarray(bad_frame, bool))
        bad = np.flatnonzero(np.asarray(bad_frame, bool))
        nearest = good[np.clip(np.searchsorted(good, bad), 0, len(good) - 1)]
        mov[bad] = mov[nearest]
    return mov


def _noise_sd(Y: np.ndarray) -> float:
    """Robust per-frame noise of a movie (T, Y, X): median over pixels of the MAD of frame differences / sqrt 2."""
    d = np.diff(Y[: min(len(Y), 2000)], axis=0)
    mad = np.median(np.abs(d - np.median(d, axis=0)), axis=0) * 1.4826 / np.sqrt(2)
    return float(max(np.median(mad), 1e-6))


def _flicker_edges(raw: np.ndarray, valid_yx=None, factor: float = 1.5):
    """((y0, y1), (x0, x1)): the frame without its registration-filled edge rows/columns.

    Edge rows (columns) up to the innermost one whose median over pixels of the 90th percentile of
    |frame-to-frame change| exceeds `factor` x that of the whole frame, searched only within the
    motion stage's invalid border (pixels some shift filled from outside), which is usually much
    wider than the strip that actually flickers.
    """
    T, Ly, Lx = raw.shape
    q = np.percentile(np.abs(np.diff(raw[: min(T, 1000)], axis=0)), 90, axis=0)
    thr = factor * np.median(q)
    (vy0, vy1), (vx0, vx1) = valid_yx if valid_yx is not None else ((Ly // 4, Ly - Ly // 4), (Lx // 4, Lx - Lx // 4))
    rows, cols = np.median(q, 1), np.median(q, 0)

    def inward(prof, limit):
        hot = np.flatnonzero(prof[:limit] > thr)
        return int(hot.max()) + 1 if len(hot) else 0
    return ((inward(rows, vy0), Ly - inward(rows[::-1], Ly - vy1)),
            (inward(cols, vx0), Lx - inward(cols[::-1], Lx - vx1)))


def _merge(A, C, **kw):
    """minian's unit_merge; (A, C) unchanged when no pair of units overlaps (minian raises then)."""
    from minian.cnmf import unit_merge
    try:
        return unit_merge(A, C, **kw)
    except ValueError:
        return A, C


def cnmf(binary_path: str, shape: tuple[int, int, int], fs: float, params: dict,
         bad_frame: np.ndarray | None = None, scale: float = 1.0, valid_yx=None) -> MinianCNMF:
    """minian's CNMF on the registered int16 binary (T, Y, X) at `fs` Hz; raw units = counts x `scale`.

    params: the validated [extraction] section (diameter, minian_pnr_1p).
    valid_yx: the motion stage's valid region; registration-filled edge strips are searched within its border.
    Memory: the movie is held in memory (float32: raw, padded copy during preprocessing, background-removed
    frame- and pixel-chunked copies), ~4 x 4 x T x Y x X bytes; fine for 1p FOVs of a few hundred px.
    The seeds' local-maximum threshold (minian's diff_thres, in intensity units of 8-bit movies) is
    3 x the noise sd of the background-removed movie.
    Steps: _preprocess, _seeds, _initialise, _cnmf_rounds; no unit left at any step gives an empty result.
    """
    import dask
    import xarray as xr

    t0 = time.perf_counter()
    T, Ly, Lx = shape
    st = _settings(params, fs)
    raw = _load(binary_path, shape, bad_frame, scale)
    coords = {"frame": np.arange(T), "height": np.arange(Ly), "width": np.arange(Lx)}
    dims = ("frame", "height", "width")
    fchunk = max(1, min(T, 500))
    info = {}

    with _intermediate_dir(), dask.config.set(scheduler="threads"), \
            contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Y, edges = _preprocess(raw, st, valid_yx, dims, fchunk)
        Y_fm = xr.DataArray(Y, dims=dims, coords=coords, name="Y").chunk({"frame": fchunk, "height": -1, "width": -1})
        Y_fm = Y_fm.persist()
        Y_hw = Y_fm.chunk({"frame": -1, "height": min(Ly, 64), "width": min(Lx, 64)}).persist()
        sd = _noise_sd(Y)
        corr = correlation_image(Y, neighbours=4)
        del Y
        units = None
        seeds = _seeds(Y_fm, Y_hw, st, sd, edges, info, t0)
        AC = _initialise(Y_fm, Y_hw, seeds, st, info, t0) if seeds is not None else None
        if AC is not None:
            units = _cnmf_rounds(Y_fm, Y_hw, *AC, st, fchunk, info, t0)
    if units is None:
        z = np.zeros((0, T), np.float32)
        st["info"] = info
        return MinianCNMF(np.zeros((0, Ly, Lx), np.float32), z, z, z, z, z, z, np.zeros(0, np.float32),
                          corr, time.perf_counter() - t0, st)
    A, C, S, YrA, b0, c0 = units
    keep = A.reshape(len(A), -1).sum(1) > 0
    A, C, S, YrA, b0, c0 = A[keep], C[keep], S[keep], YrA[keep], b0[keep], c0[keep]
    asum = A.reshape(len(A), -1).sum(1)
    w = A.reshape(len(A), -1) / asum[:, None]
    F = (w @ raw.reshape(T, -1).T).astype(np.float32)
    sc = ((A.reshape(len(A), -1) ** 2).sum(1) / asum).astype(np.float32)
    st["noise_sd"] = sd
    st["info"] = info
    return MinianCNMF(A, C, S, YrA, b0, c0, F, sc, corr, time.perf_counter() - t0, st)


def _preprocess(raw: np.ndarray, st: dict, valid_yx, dims: tuple, fchunk: int):
    """(Y, edges): minian's median denoise and top-hat background removal of the raw movie (T, Y, X),
    as float32 (T, Y, X), with the registration-filled edge strips `edges` ((y0, y1), (x0, x1)) zeroed."""
    import xarray as xr
    from minian.preprocessing import denoise, remove_background
    _, Ly, Lx = raw.shape
    # minian's denoise and top-hat work per frame, with OpenCV's border rule (pixels outside the frame
    # ignored), which left false units along the frame edges: the frames are mirror-padded by the
    # top-hat radius first and cropped back after; the movie is non-negative after the top-hat
    pad = st["background"]["wnd"]
    padded = np.pad(raw, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    varr = xr.DataArray(padded, dims=dims, name="varr").chunk({"frame": fchunk, "height": -1, "width": -1})
    Y = remove_background(denoise(varr, **st["denoise"]), **st["background"])
    Y = Y.astype(np.float32).compute().values[:, pad:pad + Ly, pad:pad + Lx]
    # frame edges filled by registration flicker (content wrapped in from the opposite edge, or fill
    # values, changing with each frame's shift) and minian takes them for active cells: those rows and
    # columns are zeroed in the background-removed movie and hold no seeds
    edges = _flicker_edges(raw, valid_yx)
    (y0, y1), (x0, x1) = edges
    Y[:, :y0] = 0
    Y[:, y1:] = 0
    Y[:, :, :x0] = 0
    Y[:, :, x1:] = 0
    return Y, edges


def _seeds(Y_fm, Y_hw, st: dict, sd: float, edges, info: dict, t0: float):
    """minian's seeds (a DataFrame of height, width), refined by peak-to-noise ratio, kept off the
    flickering edges and merged; None when none is left. Y_fm / Y_hw: the background-removed movie
    chunked by frame / by pixel; sd: its noise sd."""
    from minian.initialization import pnr_refine, seeds_init, seeds_merge
    max_proj = Y_fm.max("frame").compute()
    si = dict(st["seeds_init"])
    diff = si.pop("diff_thres_noise") * sd
    seeds = seeds_init(Y_fm, diff_thres=diff, **si)
    info.update(seeds=len(seeds), t_pre=time.perf_counter() - t0, edges=[list(map(int, e)) for e in edges])
    if len(seeds) == 0:
        return None
    seeds, _, _ = pnr_refine(Y_hw, seeds, **st["pnr_refine"])
    # minian's ks_refine (seed trace not normal, p < 0.05) is left out: on the simulator's 40 s movies it
    # rejected most planted cells (seed 6: F1 A 0.43 -> 0.64, B 0.27 -> 0.43 without it)
    seeds["mask_ks"] = True
    (y0, y1), (x0, x1) = edges
    seeds["mask_ks"] &= seeds["height"].between(y0, y1 - 1) & seeds["width"].between(x0, x1 - 1)
    info.update(pnr=int(seeds["mask_pnr"].sum()), seeds_kept=int((seeds["mask_ks"] & seeds["mask_pnr"]).sum()))
    seeds = seeds[seeds["mask_ks"] & seeds["mask_pnr"]].reset_index(drop=True)
    if len(seeds) == 0:
        return None
    try:
        seeds = seeds_merge(Y_hw, max_proj, seeds, **st["seeds_merge"])
        seeds = seeds[seeds["mask_mrg"]]
    except ValueError:     # minian fails when no two seeds are within thres_dist: nothing to merge
        pass
    info.update(merged=len(seeds), t_seeds=time.perf_counter() - t0)
    return seeds


def _initialise(Y_fm, Y_hw, seeds, st: dict, info: dict, t0: float):
    """(A, C): minian's initial footprints and traces from the seeds, overlapping units merged; None
    when no unit is left."""
    from minian.initialization import initA, initC
    A = initA(Y_hw, seeds, **st["initA"]).persist()
    info.update(init=A.sizes["unit_id"], t_init=time.perf_counter() - t0)
    if A.sizes["unit_id"] == 0:
        return None
    C = initC(Y_fm, A).persist()
    A, C = _merge(A, C, **st["merge"])
    return A.persist(), C.persist()


def _cnmf_rounds(Y_fm, Y_hw, A, C, st: dict, fchunk: int, info: dict, t0: float):
    """Two rounds of spatial, background and temporal update (a unit merge after the first), as minian's
    pipeline.ipynb. Returns (A (N, Y, X), C, S, YrA, b0, c0 (N, T)) float32 arrays, or None when no
    unit is left."""
    from minian.cnmf import compute_trace, get_noise_fft, update_background, update_spatial, update_temporal
    sn = get_noise_fft(Y_hw, **st["noise"]).persist()
    b, f = update_background(Y_fm, A, C.chunk({"unit_id": -1, "frame": fchunk}))
    b0 = c0 = S = YrA = None
    for k, jac in enumerate(st["jac_thres"]):
        info[f"t_round{k}"] = time.perf_counter() - t0
        info[f"units{k}"] = A.sizes["unit_id"]
        A_new, mask, norm = update_spatial(Y_hw, A, C, sn, in_memory=True, **st["spatial"])
        if A_new.sizes["unit_id"] == 0:
            return None
        A = A_new.persist()
        C = (C.sel(unit_id=mask) * norm).persist()
        C_chk = C.chunk({"unit_id": -1, "frame": fchunk})
        b, f = update_background(Y_fm, A, C_chk)
        YrA = compute_trace(Y_fm, A, b, C_chk, f).chunk({"unit_id": 1, "frame": -1}).persist()
        C, S, b0, c0, g, mask = update_temporal(A, C, YrA=YrA, jac_thres=jac, **st["temporal"])
        if C.sizes["unit_id"] == 0:
            return None
        # update_temporal drops and reorders units: realign A, YrA by unit_id
        A = A.sel(unit_id=C.coords["unit_id"]).persist()
        C, S, b0, c0 = C.persist(), S.persist(), b0.persist(), c0.persist()
        YrA = YrA.sel(unit_id=C.coords["unit_id"])
        if k == 0:
            A, C = _merge(A, C, **st["merge"])
            A, C = A.persist(), C.persist()
    ids = A.coords["unit_id"]
    A = A.transpose("unit_id", "height", "width").values.astype(np.float32)
    C, S, YrA, b0, c0 = (v.sel(unit_id=ids).transpose("unit_id", "frame").values.astype(np.float32)
                         for v in (C, S, YrA, b0, c0))
    return A, C, S, YrA, b0, c0


FOOTPRINT_LEVEL = 0.1   # output footprints: the connected part of A above this fraction of its peak, around the peak


def extract_minian(binary_path: str, shape: tuple[int, int, int], fs: float, params: dict,
                   bad_frame: np.ndarray | None = None, valid_yx=None, scale: float = 1.0,
                   mean_image: np.ndarray | None = None):
    """engine_1p = 'minian': `cnmf` turned into a pipeline.imaging.extraction.ExtractionResult.

    Footprints: minian's A cut to its connected part above FOOTPRINT_LEVEL x its peak (A has faint
    tails over the whole dilation window), weights summing to 1; units larger than max_area_1p
    cell areas (background patches, as for the suite2p engine) or smaller than a quarter cell area
    (noise specks) are dropped.
    Traces (N, T), raw units: F = footprint-weighted mean of the registered movie (weights A / sum A);
    F_corrected = minian's denoised calcium C x sum(A^2)/sum(A) (the unit's share of F; CNMF models
    background and neighbours, so no neuropil subtraction); Fneu = F - F_corrected (background,
    neuropil, noise; for this engine F_corrected = F - 1 x Fneu, whatever neuropil_coefficient says);
    spikes = minian's deconvolved S, same scale; dff = pipeline.imaging.traces.dff(F_corrected, F).
    iscell_prob = 1 for every unit: minian has no classifier, and its units already passed its
    peak-to-noise and Kolmogorov-Smirnov seed tests and survived the spatial/temporal updates
    (suite2p's classifier is trained on suite2p's ROI statistics of 2p data, not meaningful here).
    """
    from scipy import ndimage
    from pipeline.imaging import traces
    from pipeline.imaging.extraction.result import ExtractionResult
    T, Ly, Lx = shape
    r = cnmf(binary_path, shape, fs, params, bad_frame=bad_frame, scale=scale, valid_yx=valid_yx)
    d = float(params["diameter"])
    max_npix = float(params["max_area_1p"]) * np.pi * (d / 2) ** 2
    min_npix = np.pi * (d / 2) ** 2 / 4       # minian's own size_thres (update_spatial), on the cut footprint
    fps, keep = [], []
    for k, a in enumerate(r.A):
        lab, _ = ndimage.label(a > FOOTPRINT_LEVEL * a.max())
        m = lab == lab[np.unravel_index(a.argmax(), a.shape)]
        if min_npix <= m.sum() <= max_npix:
            fps.append(np.where(m, a, 0))
            keep.append(k)
    keep = np.array(keep, int)
    N = len(keep)
    F = r.F[keep]
    Fc = (r.C[keep] * r.scale[keep, None]).astype(np.float32)
    spikes = np.maximum(r.S[keep] * r.scale[keep, None], 0).astype(np.float32)
    Fneu = (F - Fc).astype(np.float32)
    dff = traces.dff(Fc, F, fs, params["baseline_window_s"], params["baseline_percentile"])
    pn, py, px, pw, cen = [], [], [], [], []
    for k, a in enumerate(fps):
        yy, xx = np.nonzero(a)
        w = a[yy, xx] / a[yy, xx].sum()
        pn.append(np.full(len(yy), k))
        py.append(yy)
        px.append(xx)
        pw.append(w)
        cen.append([np.average(yy, weights=w), np.average(xx, weights=w)])
    cat = (lambda v, dt: np.concatenate(v).astype(dt) if v else np.zeros(0, dt))
    prob = np.ones(N, np.float32)
    st = dict(r.settings)
    st.update(footprint_level=FOOTPRINT_LEVEL, n_units_cnmf=len(r.A), seconds=r.seconds)
    return ExtractionResult(
        pix_neuron=cat(pn, np.int32), pix_y=cat(py, np.int32), pix_x=cat(px, np.int32),
        pix_weight=cat(pw, np.float32), centroid=np.array(cen, np.float32).reshape(N, 2), iscell_prob=prob,
        is_cell=prob >= (params.get("iscell_threshold") or 0.0), F=F, Fneu=Fneu, F_corrected=Fc, dff=dff, spikes=spikes,
        mean_image=np.zeros((Ly, Lx), np.float32) if mean_image is None else mean_image.astype(np.float32),
        correlation_image=r.correlation_image, engine="minian", settings=st, C=Fc)

