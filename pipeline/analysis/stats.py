"""Shared statistics helpers for the subspace, encoding and behaviour-space analyses.

Rules follow ../shared/METHODS.md: z-scoring with the sample SD (ddof=1)
excluding zero-variance neurons, circular-shift ranges, surrogate thresholds
at a MATLAB-rounded 1-based rank, and Benjamini-Hochberg FDR.
"""
from __future__ import annotations

import math

import numpy as np

from pipeline.core.rng import as_rng  # noqa: F401  (the one helper, re-exported for the estimators)


class AnalysisInputError(ValueError):
    """Input arrays of the wrong shape or content; the message says what was expected."""


def as_matrix(X, name: str, ndim: int = 2) -> np.ndarray:
    """X as a float64 array of `ndim` dims, or AnalysisInputError naming `name`."""
    X = np.asarray(X, dtype=float)
    if X.ndim != ndim:
        raise AnalysisInputError(f"{name}: expected a {ndim}-D array [time x neurons], got shape {X.shape}")
    return X


def zscore(X: np.ndarray, name: str = "X", ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Z-score each column over time (METHODS.md section 1).

    X: (T, N). Returns (Z (T, N_kept), excluded) where `excluded` are the
    column indices with zero (or non-finite) variance, which cannot be z-scored.
    NaN is an error: the caller decides how to drop or fill missing bins.
    """
    X = as_matrix(X, name)
    if X.shape[0] < 3:
        raise AnalysisInputError(f"{name}: need at least 3 time bins, got {X.shape[0]}")
    if not np.isfinite(X).all():
        bad = np.unique(np.nonzero(~np.isfinite(X))[1])
        raise AnalysisInputError(
            f"{name}: contains NaN/inf in neuron column(s) {bad[:10].tolist()}; drop or interpolate those time bins first")
    mu = X.mean(axis=0)
    sd = X.std(axis=0, ddof=ddof)
    # Relative test: a column that is constant up to rounding has sd ~ 1e-16 * |mu|.
    const = ~(sd > 1e-12 * np.maximum(1.0, np.abs(mu)))
    excluded = np.flatnonzero(const)
    keep = ~const
    Z = (X[:, keep] - mu[keep]) / sd[keep]
    return Z, excluded


def matlab_round(x: float) -> int:
    """MATLAB round (half away from zero), robust to x = 1949.9999999 from 0.975*2000."""
    x = round(x, 9)
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def threshold_index(percentile: float, n: int) -> int:
    """0-based index of the threshold in an ascending sort of n surrogates.

    Reference: 1-based position round(p/100 * n), e.g. 1950 of 2000 for 97.5 -> index 1949.
    """
    pos = matlab_round(percentile / 100.0 * n)
    return min(max(pos, 1), n) - 1


def surrogate_threshold(null: np.ndarray, percentile: float) -> np.ndarray:
    """Per-column threshold of a (surrogate, ...) null at the reference rank."""
    null = np.asarray(null, dtype=float)
    idx = threshold_index(percentile, null.shape[0])
    return np.sort(null, axis=0)[idx]


def shift_range(T: int, lag: int) -> tuple[int, int]:
    """Inclusive shift range [1 + floor(lag/2), T - lag + floor(lag/2)] of METHODS.md section 2."""
    lo, hi = 1 + lag // 2, T - lag + lag // 2
    if hi < lo:
        raise AnalysisInputError(f"time series of {T} bins is too short for a guard lag of {lag} bins")
    return lo, hi


def draw_shifts(rng: np.random.Generator, lo: int, hi: int, n: int) -> np.ndarray:
    """n integer shifts uniform on [lo, hi] inclusive."""
    if hi < lo:
        raise AnalysisInputError(f"empty shift range [{lo}, {hi}]: the series is too short for this guard")
    return rng.integers(lo, hi + 1, size=n)


def run_length(significant: np.ndarray) -> int:
    """Number of consecutive True values from the start (METHODS.md section 2 step 6)."""
    sig = np.asarray(significant, dtype=bool)
    bad = np.flatnonzero(~sig)
    return int(bad[0]) if bad.size else int(sig.size)


def bh_fdr(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q), NaN kept as NaN; any shape."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    flat = p.ravel()
    ok = np.flatnonzero(np.isfinite(flat))
    m = ok.size
    if m == 0:
        return q
    order = np.argsort(flat[ok])
    ranked = flat[ok][order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    qf = q.ravel()
    qf[ok] = out
    return qf.reshape(p.shape)
