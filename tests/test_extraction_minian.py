"""engine_1p = 'minian' (pipeline.imaging.extraction.minian_cnmf): minian's CNMF on a small simulated 1p pair session,
and on a movie without cells."""
from __future__ import annotations

import numpy as np
import pytest

from test_extraction import FAST, _run_session, _scores

pytest.importorskip("minian")


@pytest.fixture(scope="module")
def run_minian(tmp_path_factory):
    return _run_session(tmp_path_factory.mktemp("mn1p"), "1p", seed=5, extraction={"engine_1p": "minian"}, **FAST)


# The bar (F1 >= 0.7 and r >= 0.7 per animal) on the realistic 1p simulator (optics blur, sensor-fixed
# vignette and glow, vessels): met by A (F1 0.77, r 0.88), not by B's F1 (0.64, r 0.70). A detector that knows
# B's true footprints and thresholds their peak-to-noise ratio reaches F1 0.68 on this 40 s movie
# (benchmarks/bench_detectability_1p.py; docs/imaging.md).
MINIAN_GAP = pytest.mark.xfail(reason="minian 1p F1 of animal B below 0.7 on the simulator's realistic 1p test movie "
                               "(measured 0.64): B's cells are at the edge of detectability in 40 s (a PNR threshold "
                               "on the true footprints reaches F1 0.68)", strict=True)


@pytest.mark.parametrize("animal", ["A", pytest.param("B", marks=MINIAN_GAP)])
def test_minian_meets_the_1p_bar(run_minian, animal):
    res, truth, _ = run_minian
    m = _scores(res, truth, animal)
    assert m["f1"] >= 0.7, m
    assert np.median(m["corr"]) >= 0.7, m


def test_minian_finds_planted_cells_and_recovers_calcium(run_minian):
    """What the minian engine reaches today, with margin for run-to-run variation."""
    res, truth, _ = run_minian
    ms = [_scores(res, truth, a) for a in "AB"]
    assert np.mean([m["f1"] for m in ms]) >= 0.45, ms
    for m in ms:
        assert m["f1"] >= 0.35, m
        assert np.median(m["corr"]) >= 0.65, m


def test_minian_rois_and_traces_contract(run_minian):
    res, _, _ = run_minian
    for a in "AB":
        rois, tr = res[f"/{a}/rois"], res[f"/{a}/traces"]
        assert rois.attrs["engine"] == "minian"
        n = rois.sizes["neuron"]
        assert n > 0
        np.testing.assert_array_equal(rois["iscell_prob"].values, 1.0)
        w = np.bincount(rois["pix_neuron"].values, rois["pix_weight"].values, minlength=n)
        np.testing.assert_allclose(w, 1.0, rtol=1e-4)
        for v in ("F", "Fneu", "F_corrected", "dff", "spikes"):
            assert tr[v].shape[0] == n and np.isfinite(tr[v].values).all()
        np.testing.assert_allclose(tr["F_corrected"], tr["F"] - tr["Fneu"], rtol=1e-4, atol=1e-2)
        assert (tr["spikes"].values >= 0).all()


def test_minian_on_a_movie_without_cells(tmp_path):
    """Smooth drifting background + noise only: no (or very few) units, no crash."""
    from pipeline.imaging.extraction import extract
    from pipeline.io.binary import ChunkedBinary
    from pipeline.core.parameters import SPEC
    rng = np.random.default_rng(0)
    T, L = 200, 48
    yy, xx = np.mgrid[:L, :L]
    bg = 800 + 400 * np.exp(-((yy - 30) ** 2 + (xx - 15) ** 2) / (2 * 15.0 ** 2))
    drift = 1 + 0.05 * np.sin(np.arange(T) / 20.0)
    mov = bg[None] * drift[:, None, None] + rng.normal(0, 20, (T, L, L))
    path = tmp_path / "noise.bin"
    b = ChunkedBinary(path, (T, L, L), write=True)
    b[:] = np.clip(mov, 0, 32767).astype(np.int16)
    b.close()
    p = SPEC["extraction"].validate({"engine_1p": "minian", "diameter": 10}, "test")
    e = extract(str(path), (T, L, L), 10.0, p, "1p")
    assert e.engine == "minian"
    assert e.n_rois <= 2, e.n_rois
    assert e.F.shape == (e.n_rois, T) and e.spikes.shape == (e.n_rois, T)
