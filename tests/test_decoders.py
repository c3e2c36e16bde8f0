"""Decoders (pipeline/analysis/decoders.py, pipeline/analysis/decoding.py): planted decodability, null
calibration, leakage across neighbouring bouts, degenerate inputs, fast path == naive loop.

Fast tests use few neurons, coarse bins (0.2 s), and fewer repeats/surrogates than the
defaults (50/500): they test the method, not the defaults. The slow test runs the defaults.
"""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from scipy.signal import lfilter
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from pipeline.analysis.decoders import (NOT_ENOUGH, TOO_SHORT, TimeResolvedDecoder, _auc_bins, _decisions_naive, _decisions_ridge_hat, _train_masks, auc_score, cluster_test, hold_events, parse_contrast)


def calcium(drive, dt, tau):
    """Causal exponential smoothing (calcium-like) of drive (time, neuron) with time constant tau (s)."""
    a = np.exp(-dt / tau)
    out = np.empty_like(drive)
    acc = np.zeros(drive.shape[1])
    for t in range(drive.shape[0]):
        acc = a * acc + drive[t]
        out[t] = acc
    return out * (1 - a)


def simulate(seed, n_per_class=10, N=12, dt=0.2, spacing_s=20.0, amp=3.0, planted=(0.2, 1.0),
             n_coding=4, tau=0.5, noise=1.0):
    """Activity (time, neuron) with class a / class b events; neurons 0..n_coding-1 respond
    +amp (class a) or -amp (class b) during `planted` s after the event, then calcium smoothing.
    Returns X, time (bin centres, s), events_a, events_b."""
    rng = np.random.default_rng(seed)
    n = 2 * n_per_class
    times = 10.0 + np.cumsum(spacing_s + rng.uniform(0, 5, n))
    lab = rng.permutation(np.r_[np.ones(n_per_class), np.zeros(n_per_class)]).astype(bool)
    T = int((times[-1] + 15) / dt)
    time = (np.arange(T) + 0.5) * dt
    drive = rng.normal(0, noise, (T, N)) * np.sqrt(2 * tau / dt)
    for t, isa in zip(times, lab):
        i0, i1 = int((t + planted[0]) / dt), int((t + planted[1]) / dt)
        drive[i0:i1, :n_coding] += amp if isa else -amp
    return calcium(drive, dt, tau), time, times[lab], times[~lab]


FAST = dict(window=(-1.0, 1.6), n_repeats=5, n_surrogates=100, exclusion_s=15.0)


def test_estimator_follows_scikit_learn():
    d = TimeResolvedDecoder(window=(-0.6, 0.6), n_repeats=2, n_surrogates=20, random_state=3)
    c = clone(d)
    assert c.get_params() == d.get_params() and c is not d
    with pytest.raises(NotFittedError):
        d.significant_windows()
    X, time, ea, eb = simulate(0)
    r1 = d.fit(X, ea, eb, time=time)
    r2 = clone(d).fit(X, ea, eb, time=time)
    for att in ("accuracy_", "auc_", "null_accuracy_", "null_shifts_"):
        assert np.array_equal(getattr(r1, att), getattr(r2, att)), att
    assert r1.null_shifts_.shape == (20,) and r1.null_shifts_.min() >= 15.0 / 0.2
    r3 = clone(d).set_params(random_state=4).fit(X, ea, eb, time=time)
    assert not np.array_equal(r1.null_shifts_, r3.null_shifts_)
    assert r1.significant_windows() and r1.significant_windows()[0][0] <= 0.4
    # an explicit surrogate schedule (fit keyword) replaces n_surrogates
    r4 = clone(d).fit(X, ea, eb, time=time, shifts=[200, 400, 600])
    assert list(r4.null_shifts_) == [200, 400, 600] and r4.null_accuracy_.shape[0] == 3
    with pytest.raises(ValueError, match="shift"):
        TimeResolvedDecoder(null="permute").fit(X, ea, eb, time=time, shifts=[200])
    # a recording too short for the shifts reports it, never raises
    short = TimeResolvedDecoder(window=(-0.6, 0.6), n_repeats=1, n_surrogates=5, min_shift_s=1e4).fit(X, ea, eb, time=time)
    assert short.status_ == TOO_SHORT and np.isnan(short.accuracy_).all()


def test_planted_window_is_a_significant_cluster():
    X, time, ea, eb = simulate(0)
    d = TimeResolvedDecoder(**FAST, random_state=0).fit(X, ea, eb, time=time)
    assert d.status_ == "ok"
    tb = d.time_bins_
    core = (tb >= 0.4) & (tb <= 1.0)
    assert d.significant_bins_[core].all(), (d.accuracy_, d.clusters_)
    assert not d.significant_bins_[tb <= -0.4].any()
    assert d.accuracy_[core].min() >= 0.8
    assert d.auc_[core].min() >= 0.85
    assert np.all(d.null_mean_ < 0.6)
    sig = [c for c in d.clusters_ if c["significant"]]
    assert sig and sig[0]["start_s"] <= 0.4 and sig[0]["stop_s"] >= 1.0


def test_shuffled_labels_give_no_significant_cluster_in_36_of_40_seeds():
    # FWER 0.05 per seed: P(more than 4 of 40 false positives) < 0.05 for a calibrated test;
    # the surrogates run without repeats (wider null), so the test is conservative.
    # 50 surrogates (smallest p 1/51) and 2 repeats keep this under ~30 s on a loaded machine.
    n_false = 0
    for seed in range(40):
        X, time, ea, eb = simulate(100 + seed, n_per_class=8, N=8)
        ev = np.r_[ea, eb]
        rng = np.random.default_rng(seed)
        lab = rng.permutation(len(ev)) < len(ea)
        d = TimeResolvedDecoder(window=(-0.6, 0.6), n_repeats=2, n_surrogates=50, random_state=seed).fit(
            X, ev[lab], ev[~lab], time=time)
        n_false += bool(d.significant_bins_.any())
    assert n_false <= 4, n_false


def leaky_session(seed=0, dt=0.2, N=60, blocks=12, per_block=4):
    """Labels in temporal blocks (4 bouts 2 s apart, blocks 40 s apart, alternating class)
    plus a slow shared drift per neuron
    (10 s moving sum of white noise: correlation 0.8 at 2 s, 0 beyond 10 s), more neurons than
    bouts (so the SVM can memorise neighbours) and no event-locked signal: only leakage between neighbouring bouts can decode."""
    rng = np.random.default_rng(seed)
    starts = 20.0 + 40.0 * np.arange(blocks)
    times = (starts[:, None] + 2.0 * np.arange(per_block)[None]).ravel()
    lab = np.repeat(np.arange(blocks) % 2 == 0, per_block)
    T = int((times[-1] + 30) / dt)
    time = (np.arange(T) + 0.5) * dt
    k = int(10.0 / dt)
    slow = np.cumsum(rng.normal(size=(T + k, N)), axis=0)
    slow = slow[k:] - slow[:-k]
    X = 3.0 * slow / slow.std(0) + rng.normal(size=(T, N))
    return X, time, times[lab], times[~lab]


def clustered_session(seed, N=60, dt=0.1, tau=5.0, blocks=12, per_block=5, gap_s=2.5, spacing_s=40.0,
                      amp=0.0, n_coding=8):
    """Issue 20's clustered case: AR(1) activity (time constant tau, unit variance) of N neurons and
    events in blocks of `per_block` events `gap_s` apart, blocks `spacing_s` apart, one class per block
    (half the blocks each, random order). amp > 0 plants +amp (class a) / -amp (class b) on
    n_coding neurons during [0.2, 1.0] s after each event. Returns X, time, events_a, events_b."""
    rng = np.random.default_rng(seed)
    starts = 20.0 + spacing_s * np.arange(blocks) + rng.uniform(0, 5, blocks)
    times = (starts[:, None] + gap_s * np.arange(per_block)[None]).ravel()
    lab = np.repeat(rng.permutation(np.arange(blocks) % 2 == 0), per_block)
    T = int((times[-1] + 20) / dt)
    a = np.exp(-dt / tau)
    X = lfilter([np.sqrt(1 - a * a)], [1, -a], rng.normal(size=(T, N)), axis=0)
    for t, isa in zip(times, lab if amp else []):
        X[int((t + 0.2) / dt):int((t + 1.0) / dt), :n_coding] += amp if isa else -amp
    return X, (np.arange(T) + 0.5) * dt, times[lab], times[~lab]


def _false_positives(n_seeds, null, n_surrogates, amp=0.0, first_seed=500, mode="lda", **sim):
    """Seeds (of n_seeds) with a significant cluster, window (-1, 1) s, 15 s exclusion (defaults otherwise)."""
    hits = 0
    for seed in range(n_seeds):
        X, time, ea, eb = clustered_session(first_seed + seed, amp=amp, **sim)
        d = TimeResolvedDecoder(window=(-1.0, 1.0), n_surrogates=n_surrogates, null=null, mode=mode,
                                random_state=seed).fit(X, ea, eb, time=time)
        hits += bool(d.significant_bins_.any())
    return hits


# Binomial 95% bound at alpha = 0.05: P(X >= 5 | n = 40, p = 0.05) = 0.048, so a calibrated
# test gives at most 4 of 40 false positives (95% of the time).
@pytest.mark.parametrize("mode", ["lda", "svm"])
def test_shift_null_holds_its_level_when_bouts_cluster_in_time_fast(mode):
    """The clustered case at reduced size (20 neurons, 4 Hz bins, 40 surrogates), 40 seeds; planted power beside it."""
    small = dict(N=20, dt=0.25, blocks=10, mode=mode)
    assert _false_positives(40, "shift", 40, **small) <= 4
    assert _false_positives(10, "shift", 40, amp=1.0, **small) >= 9


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["lda", "svm"])
def test_shift_null_holds_its_level_when_bouts_cluster_in_time(mode):
    """Issue 20's clustered case as filed (60 neurons, tau 5 s, 10 Hz, 100 surrogates), 40 seeds:
    the shift null stays within the binomial bound where label permutation does not; planted power beside it."""
    assert _false_positives(40, "shift", 100, first_seed=1000, mode=mode) <= 4
    assert _false_positives(40, "permute", 100, first_seed=1000, mode=mode) > 4
    assert _false_positives(20, "shift", 100, amp=0.8, first_seed=1000, mode=mode) >= 18


def test_default_lda_has_the_power_of_the_svm_and_its_accuracy_curve():
    """The default closed-form mode (ridge 100) beside the template SVM on the same sessions, seeds and
    surrogates: issue 20's clustered case at reduced size (as the fast calibration test, which holds
    the level of both modes) with a weak planted signal (amplitude 0.5 on 8 of 20 neurons), seeds
    900-919. The ridge default was chosen among 10, 100 and 1000 on seeds 500-539 and 700-719, so
    these sessions did not take part in the choice.
    Power: the lda detects the planted window in at least as many sessions as the SVM.
    Curves agree within the noise of one bin's accuracy (binomial SD at 50 test bouts:
    sqrt(0.25 / 50) = 0.071; two classifiers err on partly different bouts): per session the mean
    absolute difference over bins is at most 2 SD (0.14), over all sessions at most 1.2 SD (0.085),
    and the mean signed difference (no systematic offset) at most 0.05."""
    small = dict(N=20, dt=0.25, blocks=10)
    hits = {"lda": 0, "svm": 0}
    diff, signed = [], []
    for seed in range(20):
        X, time, ea, eb = clustered_session(900 + seed, amp=0.5, **small)
        acc = {}
        for mode in hits:
            d = TimeResolvedDecoder(window=(-1.0, 1.0), n_surrogates=40, mode=mode, random_state=seed).fit(
                X, ea, eb, time=time)
            hits[mode] += bool(d.significant_bins_.any())
            acc[mode] = d.accuracy_
        diff.append(np.abs(acc["lda"] - acc["svm"]).mean())
        signed.append((acc["lda"] - acc["svm"]).mean())
    assert hits["svm"] < 20                       # not saturated: the comparison can fail
    assert hits["lda"] >= hits["svm"], hits
    assert max(diff) <= 0.14 and np.mean(diff) <= 0.085, diff
    assert abs(np.mean(signed)) <= 0.05, signed


def test_exclusion_removes_leakage_from_neighbouring_bouts():
    X, time, ea, eb = leaky_session()
    # the label-permutation null isolates what the exclusion rule does (the shift null alone also
    # keeps the leak in its surrogates)
    kw = dict(window=(-0.6, 0.6), n_repeats=2, n_surrogates=50, null="permute", random_state=1)
    leaky = TimeResolvedDecoder(exclusion_s=0.0, **kw).fit(X, ea, eb, time=time)
    safe = TimeResolvedDecoder(exclusion_s=15.0, **kw).fit(X, ea, eb, time=time)
    assert leaky.accuracy_.mean() > 0.75 and leaky.significant_bins_.all()
    assert not safe.significant_bins_.any()
    assert abs(safe.accuracy_.mean() - 0.5) < 0.15


def test_too_few_bouts_one_class_and_edges_never_crash():
    X, time, ea, eb = simulate(3, n_per_class=6)
    d = TimeResolvedDecoder(**FAST).fit(X, ea[:3], eb, time=time)
    assert d.status_ == NOT_ENOUGH and np.isnan(d.accuracy_).all() and not d.significant_bins_.any()
    d = TimeResolvedDecoder(**FAST).fit(X, ea, [], time=time)
    assert d.status_ == NOT_ENOUGH and d.n_bouts_ == (6, 0)
    # events whose window runs off the recording are dropped and counted
    edge = np.r_[ea[:4], 0.1, time[-1] - 0.1, -50.0, time[-1] + 50]
    d = TimeResolvedDecoder(**FAST).fit(X, edge, eb, time=time)
    assert d.n_dropped_edge_ == (4, 0) and d.n_bouts_ == (4, 6) and d.status_ == "ok"
    d = TimeResolvedDecoder(**FAST).fit(X, [0.1, 0.2, 0.3, 0.4], eb, time=time)
    assert d.status_ == NOT_ENOUGH and "dropped at the edges" in d.detail_
    # NaN bins (dropped frames) are imputed with the session mean and reported
    Xn = X.copy()
    i = int(ea[0] / 0.2)
    Xn[i - 2:i + 3] = np.nan
    d = TimeResolvedDecoder(**FAST, random_state=0).fit(Xn, ea, eb, time=time)
    assert d.status_ == "ok" and np.isfinite(d.accuracy_).all() and d.nan_fraction_.max() > 0
    # no usable feature
    d = TimeResolvedDecoder(**FAST).fit(np.ones_like(X), ea, eb, time=time)
    assert d.status_ == "no features"
    with pytest.raises(ValueError, match="time"):
        TimeResolvedDecoder().fit(X, ea, eb)


def _fast_equals_naive(mode, n_repeats, n_surrogates):
    """Fit the fast path and the naive loop (one estimator per label set x fold x bin) on the same small
    case; every accuracy and AUC, observed and surrogate, must be identical."""
    X, time, ea, eb = simulate(7, n_per_class=7, N=6, spacing_s=6.0, amp=1.0)
    kw = dict(window=(-0.2, 0.6), n_repeats=n_repeats, n_surrogates=n_surrogates, exclusion_s=10.0, mode=mode,
              random_state=5)
    fast = TimeResolvedDecoder(solver="fast", **kw).fit(X, ea, eb[:6], time=time)
    naive = TimeResolvedDecoder(solver="naive", **kw).fit(X, ea, eb[:6], time=time)
    for att in ("accuracy_", "auc_", "null_accuracy_", "null_auc_"):
        assert np.array_equal(getattr(fast, att), getattr(naive, att)), att
    assert fast.accuracy_.std() > 0      # a non-trivial case


def test_fast_path_equals_naive_loop_exactly():
    _fast_equals_naive("svm", n_repeats=1, n_surrogates=2)


def test_ridge_mode_matches_direct_solve_and_agrees_with_svm():
    rng = np.random.default_rng(0)
    n, nb, p = 12, 3, 5
    W = rng.normal(size=(n, nb, p))
    y = np.r_[np.ones(6, int), np.zeros(6, int)]
    times = np.arange(n) * 5.0
    train = _train_masks(times, 6.0)
    f = _decisions_ridge_hat(np.concatenate([W.transpose(1, 0, 2), np.ones((nb, n, 1))], axis=2), y, train, C=2.0)
    s = np.where(y == 1, 1.0, -1.0)
    for j in range(n):
        t = train[j]
        Xa = np.c_[W[t, 1], np.ones(t.sum())]
        w = np.linalg.solve(Xa.T @ Xa + np.eye(p + 1) / 2.0, Xa.T @ s[t])
        assert np.isclose(f[1, j], np.r_[W[j, 1], 1.0] @ w)
    X, time, ea, eb = simulate(0)
    svm = TimeResolvedDecoder(**FAST, mode="svm", random_state=0).fit(X, ea, eb, time=time)
    lda = TimeResolvedDecoder(**FAST, mode="lda", random_state=0).fit(X, ea, eb, time=time)
    core = (svm.time_bins_ >= 0.4) & (svm.time_bins_ <= 1.0)
    assert lda.significant_bins_[core].all()
    assert np.abs(lda.accuracy_ - svm.accuracy_).mean() < 0.1


@pytest.mark.parametrize("p", [5, 30])          # primal (features + 1 <= bouts) and dual hat matrix
def test_ridge_hat_matrix_equals_refitting_every_fold(p):
    """The closed-form path (one hat matrix per bin, block leave-out identity) gives the decisions
    of refitting ridge on every fold's training set, with exclusion windows of varied size."""
    rng = np.random.default_rng(p)
    n, nb = 24, 4
    W = rng.normal(size=(n, nb, p))
    y = (rng.permutation(n) < 11).astype(int)
    times = np.sort(rng.uniform(0, 120, n))
    train = _train_masks(times, 9.0)
    assert len(np.unique((~train).sum(1))) >= 3           # several block sizes
    f = _decisions_ridge_hat(np.concatenate([W.transpose(1, 0, 2), np.ones((nb, n, 1))], axis=2), y, train, C=0.5)
    s = np.where(y == 1, 1.0, -1.0)
    for j in range(n):
        t = train[j]
        for b in range(nb):
            Xa = np.c_[W[t, b], np.ones(t.sum())]
            w = np.linalg.solve(Xa.T @ Xa + 2.0 * np.eye(p + 1), Xa.T @ s[t])
            assert np.isclose(f[b, j], np.r_[W[j, b], 1.0] @ w, rtol=1e-9, atol=1e-12)


def test_ridge_fast_path_equals_sklearn_ridge_loop_exactly():
    """Estimator level: the closed-form path and one sklearn Ridge per (label set, fold, bin) give
    identical accuracies and AUCs, observed and every surrogate; the rank AUC equals the pairwise one."""
    _fast_equals_naive("lda", n_repeats=2, n_surrogates=3)
    f = np.round(np.random.default_rng(0).normal(size=(5, 14)), 1)    # ties
    y = np.r_[np.ones(6, int), np.zeros(8, int)]
    assert np.array_equal(_auc_bins(y, f), [auc_score(y, r) for r in f])


def test_naive_fold_without_both_classes_is_skipped():
    W = np.random.default_rng(0).normal(size=(4, 2, 3))
    y = np.array([1, 1, 0, 0])
    train = _train_masks(np.array([0.0, 1.0, 100.0, 101.0]), 10.0)
    f = _decisions_naive(W, y, train, 1.0, 1e-8, 10000)
    assert np.isnan(f).all()


def test_cluster_test_finds_planted_run_and_respects_null():
    rng = np.random.default_rng(0)
    null = rng.normal(0.5, 0.05, (200, 30))
    stat = np.full(30, 0.5)
    stat[10:16] = 0.8
    clusters, thr, _ = cluster_test(stat, null)
    assert len(clusters) == 1 and clusters[0]["start"] == 10 and clusters[0]["stop"] == 16
    assert clusters[0]["p"] == 1 / 201


def test_contrast_syntax_and_hold_rule():
    a, b = parse_contrast("self:poke vs partner:approach@mid")
    assert (a.who, a.behavior, a.anchor) == ("self", "poke", "start")
    assert (b.who, b.behavior, b.anchor) == ("partner", "approach", "mid")
    assert b.animal("A", "B") == "B"
    for bad in ("self poke vs partner poke", "me:poke vs partner:poke", "self:poke vs"):
        with pytest.raises(ValueError, match="contrast"):
            parse_contrast(bad)
    ev = pd.DataFrame({"animal": ["A"] * 4, "behavior": ["hold", "poke", "hold", "poke"],
                       "start": [10.0, 10.5, 30.0, 40.0], "stop": [10.5, 10.5, 32.0, 40.0]})
    assert list(hold_events(ev, "A", "start", 1.0)) == [30.0]      # 10.0 is 0.5 s before a poke
    assert list(hold_events(ev, "A", "mid", 1.0)) == [31.0]


def _tree(seed=0, with_subspace=True, N=12):
    X, time, ea, eb = simulate(seed, n_per_class=8, N=N)
    XB = np.random.default_rng(seed + 1).normal(size=X.shape)
    ct = np.array(["GABAergic"] * 6 + ["glutamatergic"] * 6)
    def act(M):
        return xr.Dataset({"activity": (("neuron", "time"), M.T)},
                          coords={"time": ("time", time, {"units": "s"}), "cell_type": ("neuron", ct)})
    rows = [("A", "poke", t, t) for t in ea] + [("B", "poke", t, t) for t in eb]
    ev = xr.Dataset({"animal": ("event", np.array([r[0] for r in rows], object)),
                     "behavior": ("event", np.array([r[1] for r in rows], object)),
                     "start": ("event", np.array([r[2] for r in rows])), "stop": ("event", np.array([r[3] for r in rows]))})
    d = {"/A/activity": act(X), "/B/activity": act(XB), "/behavior": ev}
    if with_subspace:
        for a in "AB":
            q, _ = np.linalg.qr(np.random.default_rng(9).normal(size=(N, N)))
            d[f"/subspace/{a}"] = xr.Dataset({"shared_loadings": (("neuron", "shared_dim"), q[:, :2]),
                                              "unique_loadings": (("neuron", "unique_dim"), q[:, 2:])})
    return xr.DataTree.from_dict(d)


def test_decode_session_dataset_layout_and_statuses(tmp_path):
    from pipeline.analysis.decoding import decode_session
    from pipeline.core.parameters import SPEC
    p = SPEC["decoding"].validate({"n_repeats": 2, "n_surrogates": 40, "condition_surrogates": 20,
                                   "n_subsamples": 2, "n_jobs": 1, "window_s": [-0.4, 1.2],
                                   "contrasts": ["self:poke vs partner:poke", "self:hold vs self:poke"]}, "test")
    ds = decode_session(_tree(), p, seed=0, warn=lambda m: None)
    assert dict(ds["accuracy"].sizes) == {"animal": 2, "variable": 2, "condition": 7, "time_bin": 9}
    assert ds["time_bin"].attrs["units"] == "s"
    st = ds["status"]
    assert (st.sel(variable="self:poke vs partner:poke") == "ok").all()
    assert (st.sel(variable="self:hold vs self:poke") == NOT_ENOUGH).all()     # no hold events at all
    full = ds.sel(animal="A", variable="self:poke vs partner:poke", condition="full")
    core = (ds["time_bin"] >= 0.4) & (ds["time_bin"] <= 1.0)
    assert bool(full["significant"][core].all())
    assert ds["null_accuracy"].sizes["surrogate"] == 40
    warned = []
    ds2 = decode_session(_tree(with_subspace=False), p, seed=0, warn=warned.append)
    assert any("subspace" in w for w in warned)
    assert ds2["status"].sel(condition="shared").values.tolist() == [["skipped"] * 2] * 2
    # deterministic given the seed, and the per-job cache gives the same result
    cache = tmp_path / "cache"
    xr.testing.assert_identical(ds, decode_session(_tree(), p, seed=0, warn=lambda m: None, cache_dir=cache))
    assert len(list(cache.glob("*.pkl"))) == 2 * 2 * 7      # one per job
    # dropping a contrast and most conditions leaves the other jobs' results unchanged (seeded by
    # name), from the cache, and is computed at all only for what changed
    p2 = dict(p, contrasts=["self:poke vs partner:poke"], conditions=["shared_removed", "full"])
    calls = []
    ds3 = decode_session(_tree(), p2, seed=0, warn=lambda m: None, cache_dir=cache,
                         progress=lambda it, desc="", total=None: calls.append(total))
    for v in ("accuracy", "null_accuracy", "significant", "status"):
        xr.testing.assert_identical(ds3[v].sel(condition="full"), ds[v].sel(condition="full", variable=["self:poke vs partner:poke"]))
    assert len(list(cache.glob("*.pkl"))) == 2 * 2 * 7
    assert calls and calls[0] == 2 * (2 + 40) + 2 * (2 + 20)   # the progress bar counts label sets


@pytest.mark.slow
def test_defaults_on_a_realistic_session():
    """Defaults (50 repeats, 500 surrogates, +-3 s at 15 Hz, 15 s exclusion), 80 neurons, 25 bouts/class."""
    X, time, ea, eb = simulate(11, n_per_class=25, N=80, dt=1 / 15, amp=1.5, n_coding=8, noise=1.0)
    d = TimeResolvedDecoder(random_state=0, n_jobs=2).fit(X, ea, eb, time=time)
    tb = d.time_bins_
    core = (tb >= 0.4) & (tb <= 1.0)
    assert d.significant_bins_[core].all()
    assert not d.significant_bins_[tb <= -0.5].any()
    assert d.null_accuracy_.shape == (500, 91)


def test_decoding_stage_runs_in_the_orchestrator(tmp_path):
    """The stage adapter end to end: fake align/subspace/encoding results -> /decoding on disk."""
    import tomli_w
    from pipeline.core import orchestrate
    from pipeline import stages as pipeline_stages
    from pipeline.core.orchestrate import Stage
    from pipeline.core.session import Session

    tree = _tree()
    align = xr.DataTree.from_dict({k: tree[k].to_dataset() for k in ("/A/activity", "/B/activity", "/behavior")})
    sub = xr.DataTree.from_dict({k: tree[k].to_dataset() for k in ("/subspace/A", "/subspace/B")})
    ct = tree["/A/activity"]["cell_type"].values
    cls = np.full((12, 1, 2), "none", dtype=object)
    cls[:3, 0, 0] = "activated"
    enc = xr.DataTree.from_dict({"/encoding/A": xr.Dataset(
        {"class": (("neuron", "behavior", "role"), cls)},
        coords={"behavior": np.array(["poke"], object), "role": np.array(["self", "partner"], object),
                "cell_type": ("neuron", ct)})})
    stages = pipeline_stages.load_stages()
    reg = {"align": Stage("align", lambda ctx: align), "subspace": Stage("subspace", lambda ctx: sub, needs=("align",)),
           "encoding": Stage("encoding", lambda ctx: enc, needs=("align",)), "decoding": stages["decoding"]}
    doc = {"session": {"name": "toy", "seed": 0},
           "animals": {a: {"id": a.lower(), "raw": [f"{a}/movie.tif"], "frame_rate": 5.0} for a in "AB"},
           "decoding": {"n_repeats": 2, "n_surrogates": 30, "condition_surrogates": 10, "n_subsamples": 1,
                        "n_jobs": 1, "window_s": [-0.4, 1.2], "contrasts": ["self:poke vs partner:poke"],
                        "conditions": ["full", "shared_removed"]}}
    for a in "AB":
        (tmp_path / a).mkdir()
        (tmp_path / a / "movie.tif").write_bytes(b"x")
    (tmp_path / "session.toml").write_text(tomli_w.dumps(doc))
    status = orchestrate.run(Session.load(tmp_path / "session.toml"), tmp_path / "out", registry=reg,
                             show_progress=False)
    assert status["decoding"] == "ran"
    res = orchestrate.dataset.load(tmp_path / "out")["/decoding"]
    assert (res["status"].values == "ok").all()
    assert res["accuracy"].sizes == {"animal": 2, "variable": 1, "condition": 2, "time_bin": 9}
    assert bool(res["significant"].sel(animal="A", condition="full").any())
    gs = res["group_size"].sel(animal="A", fg_variable="self_poke", fg_class="activated")
    assert int(gs.sel(cell_type="GABAergic")) == 3 and int(gs.sel(cell_type="glutamatergic")) == 0
