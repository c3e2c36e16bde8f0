"""Trace processing: neuropil correction, dF/F with a running-percentile baseline, deconvolution.

All functions take (neuron, frame) arrays. See docs/imaging.md for the rules.
"""
from __future__ import annotations

import numpy as np
from scipy import interpolate

BASELINE_RULE = ("dff = (F_corrected - B(F_corrected)) / B(F), B = running {p:g}th percentile over a "
                 "{w:g} s centred window (evaluated every window/10 and linearly interpolated); "
                 "F_corrected = F - {c:g} * Fneu")
C_DESCRIPTION = "denoised calcium above baseline (deconvolution model)"


def neuropil_correct(F: np.ndarray, Fneu: np.ndarray, coefficient: float = 0.7) -> np.ndarray:
    """F - coefficient * Fneu; (neuron, frame), same units as F."""
    return (F - coefficient * Fneu).astype(np.float32)


def running_percentile(x: np.ndarray, window: int, percentile: float) -> np.ndarray:
    """Running percentile along the last axis of x (neuron, frame) over a centred window of `window` frames.

    Evaluated at every max(window // 10, 1) frames and linearly interpolated, so the
    cost is O(T * 10) per neuron instead of O(T * window); the baseline is slow by
    construction, so the interpolation error is negligible.
    """
    x = np.atleast_2d(np.asarray(x, np.float32))
    T = x.shape[1]
    window = int(max(3, min(window, T)))
    step = max(window // 10, 1)
    centers = np.unique(np.r_[np.arange(0, T, step), T - 1])
    half = window // 2
    vals = np.empty((x.shape[0], len(centers)), np.float32)
    for k, c in enumerate(centers):
        lo, hi = max(0, c - half), min(T, c + half + 1)
        vals[:, k] = np.percentile(x[:, lo:hi], percentile, axis=1)
    if len(centers) == 1:
        return np.repeat(vals, T, axis=1)
    return interpolate.interp1d(centers, vals, axis=1, assume_sorted=True)(np.arange(T)).astype(np.float32)


def dff(F_corrected: np.ndarray, F: np.ndarray, fs: float, window_s: float = 60.0,
        percentile: float = 8.0) -> np.ndarray:
    """dF/F (neuron, frame), dimensionless.

    The numerator baseline is the running percentile of F_corrected; the
    denominator is the running percentile of the raw ROI trace F, which stays
    positive when neuropil subtraction brings F_corrected near zero.
    """
    w = int(round(window_s * fs))
    b_num = running_percentile(F_corrected, w, percentile)
    b_den = running_percentile(F, w, percentile)
    floor = max(float(np.median(np.abs(b_den))) * 1e-3, 1e-6)
    return ((F_corrected - b_num) / np.maximum(b_den, floor)).astype(np.float32)


def deconvolve(F_corrected: np.ndarray, fs: float, tau: float, window_s: float = 60.0,
               percentile: float = 8.0, batch_size: int = 500, device=None) -> np.ndarray:
    """Deconvolved activity (neuron, frame), arbitrary units, by suite2p's OASIS.

    suite2p's preprocessing (maximin baseline over window_s) runs first, as in suite2p's pipeline.
    """
    from suite2p import extraction as s2p_ext
    import torch
    device = device or torch.device("cpu")
    if F_corrected.shape[0] == 0:
        return np.zeros_like(F_corrected, np.float32)
    x = s2p_ext.preprocess(F=F_corrected.astype(np.float32).copy(), baseline="maximin", win_baseline=window_s,
                           sig_baseline=10.0, fs=fs, prctile_baseline=percentile,
                           batch_size=batch_size, device=device)
    return s2p_ext.oasis(F=x, batch_size=batch_size, tau=tau, fs=fs).astype(np.float32)


def denoised_calcium(spikes: np.ndarray, fs: float, tau: float) -> np.ndarray:
    """OASIS's model fluorescence C (neuron, frame): c[t] = g c[t-1] + s[t], g = exp(-1 / (tau fs)).

    spikes: (neuron, frame) from `deconvolve`; fs in Hz, tau in s. C is the denoised trace above
    baseline, in the units of F_corrected (the CNMF "C" of CaImAn and minian).
    """
    from scipy.signal import lfilter
    if spikes.shape[0] == 0:
        return np.zeros_like(spikes, np.float32)
    g = float(np.exp(-1.0 / (tau * fs)))
    return lfilter([1.0], [1.0, -g], np.asarray(spikes, np.float64), axis=1).astype(np.float32)
