"""is_cell against truth: the transient skewness test (2p) and the issue's goal on the simulator's default preset."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.parameters import SPEC
from pipeline.imaging.extraction.classifier import is_cell, min_transient_skew, transient_skew


def _traces(rng, n, T, fs, tau, rate):
    """(n, T) calcium: Poisson spikes (rate Hz) through an exponential decay (tau s), each spike 0.5-1.5 dF/F."""
    g = np.exp(-1.0 / (tau * fs))
    s = rng.poisson(rate / fs, (n, T)) * rng.uniform(0.5, 1.5, (n, T))
    c = np.zeros((n, T))
    for t in range(T):
        c[:, t] = (g * c[:, t - 1] if t else 0) + s[:, t]
    return c


def test_transient_skew_separates_transients_from_neuropil_patches():
    """Planted ground truth: neuropil-corrected traces of 40 cells (transients, 0.05-1.5 Hz, tau 1 s) and 40
    neuropil patches (none), both on a slow drift drawn as the simulator draws its neuropil modulation
    (smooth, 15-30 s) at 0.7-6 x the noise SD, with 10% bleaching. Every cell's transient skew is above the
    2p default and every patch's at or below it; the skew of the trace with the drift in it (suite2p's
    `skew` feature) ranks some patches above some cells."""
    from scipy.stats import skew
    from pipeline.simulator.latents import smooth_factors
    rng = np.random.default_rng(7)
    fs, T, n, noise = 15.0, 9000, 40, 5.0
    drift = smooth_factors(rng, 2 * n, T, 1 / fs, (15.0, 30.0))[0] * rng.uniform(0.7, 6.0, (2 * n, 1)) * noise
    calcium = _traces(rng, n, T, fs, 1.0, rng.uniform(0.05, 1.5, (n, 1)))
    Fc = 0.9 ** (np.arange(T) / T) * (100.0 + drift + np.r_[20.0 * calcium, np.zeros((n, T))])
    Fc = Fc + rng.normal(0, noise, Fc.shape)
    truth = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    params = SPEC["extraction"].validate({}, "test")
    sk = transient_skew(Fc, fs, params["tau"])
    cut = min_transient_skew(params)
    assert cut == 0.1 and min_transient_skew({**params, "classifier_file": "lab.npy"}) == -np.inf
    assert sk[truth].min() > cut >= sk[~truth].max(), (sk[truth].min(), sk[~truth].max())
    raw = skew(Fc, axis=1)
    assert raw[~truth].max() > raw[truth].min(), (raw[~truth].max(), raw[truth].min())
    np.testing.assert_array_equal(is_cell(np.full(2 * n, 0.5), sk, params, "2p"), truth)
    assert is_cell(np.full(2 * n, 0.5), sk, params, "1p").all()      # 1p: the probability alone (not measured)
    assert not is_cell(np.full(2 * n, 0.05), sk, params, "2p").any()  # under iscell_threshold 0.1


@pytest.mark.slow
def test_default_preset_cells_kept_with_precision(tmp_path):
    """Issue 19's goal on the simulator's default preset (128 x 128 px, 600 s at 15 Hz, ~55 neurons per animal),
    default parameters, seed 7 (not the seed the is_cell rule was diagnosed on): >= 80% of planted neurons matched
    (IoU >= 0.5, Hungarian) by an is_cell ROI, and >= 90% of is_cell ROIs matched, in each animal."""
    from test_extraction import _run_session, _scores
    res, truth, _ = _run_session(tmp_path, "2p", seed=7, preset="default")
    for a in "AB":
        m = _scores(res, truth, a)
        cell = res[f"/{a}/rois"]["is_cell"].values
        kept = int((m["found"] & cell).sum())
        n_planted = truth[f"/{a}"]["footprint"].shape[0]
        assert kept >= 0.8 * n_planted, (a, kept, n_planted)
        assert kept >= 0.9 * cell.sum(), (a, kept, int(cell.sum()))
