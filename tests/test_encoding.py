"""Single-neuron auROC encoding (pipeline/analysis/encoding.py): exactness vs sklearn, recovery, chance, bad input, stage."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.core import orchestrate

from pipeline import stages as pipeline_stages
from pipeline.analysis.encoding import AurocEncoder, derive, other_baseline
from pipeline.core.orchestrate import Stage
from pipeline.analysis.stats import AnalysisInputError, bh_fdr


def bouts(rng, T, n_bouts=30, length=(10, 40)):
    y = np.zeros(T, bool)
    for _ in range(n_bouts):
        s = rng.integers(0, T - length[1])
        y[s:s + rng.integers(*length)] = True
    return y


def smooth_noise(rng, T, N, rho=0.8):
    e = rng.standard_normal((T, N))
    x = np.empty_like(e)
    x[0] = e[0]
    for t in range(1, T):
        x[t] = rho * x[t - 1] + np.sqrt(1 - rho**2) * e[t]
    return x


def reference_p(obs, null):
    n = null.size
    p_hi = ((null >= obs).sum() + 1) / (n + 1)
    p_lo = ((null <= obs).sum() + 1) / (n + 1)
    return min(1.0, 2 * min(p_hi, p_lo))


# ----------------------------------------------------------------------------- exactness

@pytest.mark.parametrize("baseline", ["all", "other"])
def test_matches_sklearn_per_shift(baseline):
    rng = np.random.default_rng(0)
    T, N = 500, 3
    Z = np.round(rng.standard_normal((T, N)), 1)        # ties: midranks, as roc_auc_score
    Y = np.column_stack([bouts(rng, T, 10), bouts(rng, T, 6)])
    base = np.column_stack([~Y[:, 0] & (rng.random(T) < 0.6), ~Y[:, 1] & (rng.random(T) < 0.5)])
    enc = AurocEncoder(n_surrogates=30, min_shift=20, baseline=baseline, random_state=1, store_null=True)
    enc.fit(Z, Y, ["x", "y"], baseline_frames=base if baseline == "other" else None)
    Zs = (Z - Z.mean(0)) / Z.std(0, ddof=1)
    for j in range(2):
        sub = np.ones(T, bool) if baseline == "all" else Y[:, j] | base[:, j]
        L = int(sub.sum())
        assert enc.n_frames_[j] == L
        sh = enc.shifts_[j]
        assert sh.min() >= 21 and sh.max() <= L - 20
        for i in range(N):
            z, y = Zs[sub, i], Y[sub, j]
            assert enc.auroc_[i, j] == pytest.approx(roc_auc_score(y, z), abs=1e-12)
            null = np.array([roc_auc_score(y, np.roll(z, s)) for s in sh])
            np.testing.assert_allclose(enc.null_[i, j], null, atol=1e-12)
            assert enc.p_[i, j] == pytest.approx(reference_p(roc_auc_score(y, z), null), abs=1e-12)


def test_shift_range_reference_and_shared_across_neurons():
    rng = np.random.default_rng(1)
    T = 300
    enc = AurocEncoder(n_surrogates=2000, min_shift=60, random_state=0).fit(rng.standard_normal((T, 3)),
                                                                              bouts(rng, T, 8)[:, None])
    assert enc.shifts_.shape == (1, 2000)
    assert enc.shifts_.min() == 61 and enc.shifts_.max() == T - 60     # the whole range is drawn


def test_one_class_behaviour_gives_nan_not_error():
    rng = np.random.default_rng(2)
    Y = np.column_stack([np.zeros(400, bool), np.ones(400, bool), bouts(rng, 400, 8)])
    enc = AurocEncoder(n_surrogates=50, min_shift=10, random_state=0).fit(rng.standard_normal((400, 5)), Y)
    assert np.isnan(enc.auroc_[:, :2]).all() and np.isfinite(enc.auroc_[:, 2]).all()
    assert set(enc.skipped_) == {"b0", "b1"}
    assert (enc.classes()[:, :2] == "none").all()


def test_bh_fdr_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests
    p = np.random.default_rng(0).random(50) ** 2
    np.testing.assert_allclose(bh_fdr(p), multipletests(p, method="fdr_bh")[1], atol=1e-12)
    pn = p.copy()
    pn[3] = np.nan
    q = bh_fdr(pn)
    assert np.isnan(q[3]) and np.isfinite(np.delete(q, 3)).all()


# ----------------------------------------------------------------------------- recovery and chance

def test_planted_partner_neurons_are_partner_encoding():
    rng = np.random.default_rng(3)
    T, N = 3000, 30
    own, partner = bouts(rng, T, 40), bouts(rng, T, 40)
    Z = smooth_noise(rng, T, N)
    kern = np.exp(-np.arange(30) / 8.0)
    drive = np.convolve(partner.astype(float), kern)[:T]
    Z[:, :5] += 1.0 * drive[:, None]          # activated by the partner's behaviour
    Z[:, 5:10] -= 1.0 * drive[:, None]        # suppressed by it
    kw = dict(n_surrogates=300, min_shift=60)
    part = AurocEncoder(random_state=0, **kw).fit(Z, partner[:, None], ["sniff"], role="partner")
    selfe = AurocEncoder(random_state=1, **kw).fit(Z, own[:, None], ["sniff"], role="self")
    assert part.activated_[:5, 0].all() and part.suppressed_[5:10, 0].all()
    assert part.activated_[10:, 0].sum() + part.suppressed_[10:, 0].sum() <= 4      # binomial(20, .05): P(>4) < 0.003
    assert selfe.activated_[:, 0].sum() + selfe.suppressed_[:, 0].sum() <= 6       # own behaviour independent of all


def test_shuffled_behaviour_false_positive_rate_near_alpha():
    """Independent traces and behaviours: P(p <= 0.05) ~ 0.05 per test.

    200 neurons x 4 behaviours = 800 tests; the 2-99.99 % binomial band for p = 0.05 is
    well inside [0.02, 0.085]. The null's own false-positive fraction is near 0.05 too.
    """
    rng = np.random.default_rng(4)
    T, N, M = 3000, 200, 4
    Z = smooth_noise(rng, T, N)
    Y = np.column_stack([bouts(rng, T, 40) for _ in range(M)])
    enc = AurocEncoder(n_surrogates=200, min_shift=60, random_state=0).fit(Z, Y)
    fp = (enc.activated_ | enc.suppressed_).mean()
    assert 0.02 <= fp <= 0.085, fp
    nf = enc.null_fraction_activated_ + enc.null_fraction_suppressed_
    assert np.all((nf > 0.03) & (nf < 0.07)), nf
    fdr = AurocEncoder(n_surrogates=200, min_shift=60, random_state=0, fdr=True).fit(Z, Y)
    assert (fdr.activated_ | fdr.suppressed_).mean() <= 0.01


def test_other_baseline_masks():
    names = ["attack", "chase", "other", "aggression"]
    S = np.array([[1, 0, 0, 1], [0, 0, 1, 0], [0, 0, 1, 0], [0, 1, 0, 1]], bool)
    P = np.array([[0, 0, 1, 0], [0, 0, 1, 0], [1, 0, 0, 1], [0, 0, 1, 0]], bool)
    base = other_baseline(S, P, names, derived_names=["aggression"])
    assert base[:, 0].tolist() == [False, True, False, False]        # both "other" only in frame 1
    assert base[:, 3].tolist() == [False, True, False, False]        # neither aggressive: frame 1
    D, dn = derive(S[:, :3], names[:3], {"aggression": ["attack", "chase"]})
    assert dn[-1] == "aggression" and D[:, -1].tolist() == [True, False, False, True]
    with pytest.raises(AnalysisInputError, match="other"):
        other_baseline(S[:, :2], P[:, :2], names[:2])


def test_bad_input():
    rng = np.random.default_rng(5)
    Z = rng.standard_normal((200, 3))
    Y = bouts(rng, 200, 5)[:, None]
    with pytest.raises(AnalysisInputError, match="time bins"):
        AurocEncoder(n_surrogates=10, min_shift=5).fit(Z, Y[:-1])
    with pytest.raises(AnalysisInputError, match="baseline_frames"):
        AurocEncoder(n_surrogates=10, min_shift=5, baseline="other").fit(Z, Y)
    with pytest.raises(AnalysisInputError, match="boolean"):
        AurocEncoder(n_surrogates=10, min_shift=5).fit(Z, Y * 2.5)
    Zn = Z.copy()
    Zn[3, 1] = np.nan
    with pytest.raises(AnalysisInputError, match="NaN"):
        AurocEncoder(n_surrogates=10, min_shift=5).fit(Zn, Y)
    Zc = Z.copy()
    Zc[:, 1] = 2.0
    enc = AurocEncoder(n_surrogates=10, min_shift=5, random_state=0).fit(Zc, Y)
    assert enc.excluded_.tolist() == [1] and np.isnan(enc.auroc_[1]).all() and np.isfinite(enc.auroc_[0]).all()
    short = AurocEncoder(n_surrogates=10, min_shift=150).fit(Z, Y)
    assert np.isnan(short.auroc_).all() and "no shift" in short.skipped_["b0"]


# ----------------------------------------------------------------------------- stage

def test_encoding_stage_writes_groups(tmp_path):
    from test_subspace import _session, fake_align_tree
    stages = pipeline_stages.load_stages()
    tree, _ = fake_align_tree(seed=1)
    reg = {"align": Stage("align", lambda ctx: tree), "encoding": stages["encoding"]}
    s = _session(tmp_path, encoding={"n_surrogates": 100, "min_shift_s": 2.0})
    assert orchestrate.run(s, tmp_path / "out", registry=reg, show_progress=False)["encoding"] == "ran"
    res = orchestrate.dataset.load(tmp_path / "out")
    ea = res["/encoding/A"]
    assert ea["auroc"].dims == ("neuron", "behavior", "role") and ea["auroc"].shape == (14, 3, 2)
    assert set(np.unique(ea["class"].values)) <= {"activated", "suppressed", "none"}
    assert ea.attrs["n_dropped_bins"] == 3 and ea.attrs["min_shift"] == 20
    assert list(ea["cell_type_group"].values) == ["GABAergic", "glutamatergic"]
    assert ea["null_fraction_activated"].shape == (2, 3, 2)


# ----------------------------------------------------------------------------- slow tier

@pytest.mark.slow
def test_reference_sizes_partner_encoding():
    """T = 18000 (20 min at 15 Hz), 200 neurons, 10 behaviours, 2000 shifts."""
    rng = np.random.default_rng(6)
    T, N, M = 18000, 200, 10
    Y = np.column_stack([bouts(rng, T, 150, (15, 90)) for _ in range(M)])
    Z = smooth_noise(rng, T, N, rho=0.9)
    drive = np.convolve(Y[:, 0].astype(float), np.exp(-np.arange(45) / 10.0))[:T]
    Z[:, :10] += 0.3 * drive[:, None]
    enc = AurocEncoder(n_surrogates=2000, min_shift=60, random_state=0).fit(Z, Y, role="partner")
    assert enc.activated_[:10, 0].all()
    fp = (enc.activated_[10:] | enc.suppressed_[10:])[:, 1:].mean()
    assert 0.03 <= fp <= 0.07
