"""The aligned activity of one animal, as the analyses read it from a result DataTree."""
from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.analysis.stats import AnalysisInputError


def bin_width(time: np.ndarray) -> float:
    """Bin width (s) of a regular `time` coordinate."""
    if time.size < 2:
        raise AnalysisInputError("activity has fewer than 2 time bins")
    return float(np.median(np.diff(time)))


def fill_nan_bins(X: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN bins per column (edges: nearest finite value). X: (T, N)."""
    X = X.copy()
    t = np.arange(X.shape[0])
    for j in range(X.shape[1]):
        bad = ~np.isfinite(X[:, j])
        if bad.all():
            raise AnalysisInputError(f"neuron column {j} is NaN in every bin")
        if bad.any():
            X[bad, j] = np.interp(t[bad], t[~bad], X[~bad, j])
    return X


def read_activity(tree: xr.DataTree, a: str) -> xr.DataArray:
    try:
        return tree[f"/{a}/activity"]["activity"].transpose("time", "neuron")
    except KeyError:
        raise AnalysisInputError(f"no /{a}/activity: the align stage must run first") from None
