"""PLSC shared/unique subspaces (pipeline/analysis/subspace.py): reference exactness, recovery, bad input, stage."""
from __future__ import annotations

import numpy as np
import pytest
import tomli_w
import xarray as xr

from pipeline.core import orchestrate

from pipeline import stages as pipeline_stages
from pipeline.core.orchestrate import Stage
from pipeline.core.session import Session
from pipeline.analysis.stats import AnalysisInputError, matlab_round, shift_range, threshold_index
from pipeline.analysis.subspace import (SharedSubspace, count_matched, cross_validated_r, matlab_pca, pseudo_pair_null, remove_shared)


# ----------------------------------------------------------------------------- generators

def ar1(rng, T, n, rho=0.9):
    """n smooth unit-variance AR(1) series, (T, n)."""
    e = rng.standard_normal((T, n))
    x = np.empty_like(e)
    x[0] = e[0]
    for t in range(1, T):
        x[t] = rho * x[t - 1] + np.sqrt(1 - rho**2) * e[t]
    return x


def planted_pair(seed, T=2000, NA=30, NB=25, n_shared=3, shared_gain=(1.2, 1.0, 0.8), n_private=3, noise=1.0,
                 gain_A=None):
    """Two animals driven by n_shared common latents + private latents + noise.

    gain_A: optional (NA,) per-neuron multiplier of the shared drive in A.
    """
    rng = np.random.default_rng(seed)
    S = ar1(rng, T, n_shared) * np.asarray(shared_gain[:n_shared])
    WA = rng.standard_normal((n_shared, NA))
    if gain_A is not None:
        WA = WA * gain_A
    A = S @ WA + ar1(rng, T, n_private) @ rng.standard_normal((n_private, NA)) + noise * rng.standard_normal((T, NA))
    B = S @ rng.standard_normal((n_shared, NB)) + ar1(rng, T, n_private) @ rng.standard_normal((n_private, NB)) \
        + noise * rng.standard_normal((T, NB))
    return A, B


def reference_plsc(A, B, shifts, percentile=97.5):
    """Plain transcription of METHODS.md section 2: roll + full SVD + projections + corrcoef."""
    ZA = (A - A.mean(0)) / A.std(0, ddof=1)
    ZB = (B - B.mean(0)) / B.std(0, ddof=1)
    T = ZA.shape[0]
    D = min(ZA.shape[1], ZB.shape[1])

    def stats(Zb):
        U, S, Vt = np.linalg.svd(ZA.T @ Zb / (T - 1))
        PA, PB = ZA @ U, Zb @ Vt.T
        return S[:D], np.array([np.corrcoef(PA[:, k], PB[:, k])[0, 1] for k in range(D)]), U, S, Vt.T
    cov, r, U, S, V = stats(ZB)
    cn = np.empty((len(shifts), D))
    rn = np.empty((len(shifts), D))
    for i, s in enumerate(shifts):
        cn[i], rn[i], *_ = stats(np.roll(ZB, s, axis=0))
    pos = int(np.floor(percentile / 100 * len(shifts) + 0.5))     # 1-based, MATLAB round
    ct = np.sort(cn, axis=0)[pos - 1]
    rt = np.sort(rn, axis=0)[pos - 1]
    sig = (cov > ct) & (r > rt)
    K = 0
    while K < D and sig[K]:
        K += 1
    return dict(cov=cov, r=r, cn=cn, rn=rn, ct=ct, rt=rt, sig=sig, K=K, U=U, V=V, ZA=ZA, ZB=ZB)


def reference_pca(P):
    """MATLAB pca via the eigendecomposition of the covariance, with its sign rule."""
    w, E = np.linalg.eigh(np.cov(P, rowvar=False))
    E = E[:, np.argsort(w)[::-1]]
    idx = np.argmax(np.abs(E), axis=0)
    return E * np.sign(E[idx, np.arange(E.shape[1])])


# ----------------------------------------------------------------------------- exactness

def test_reference_rules():
    assert threshold_index(97.5, 2000) == 1949
    assert threshold_index(95.0, 2000) == 1899
    assert threshold_index(97.5, 200) == 194
    assert matlab_round(0.975 * 2000) == 1950 and matlab_round(2.5) == 3
    assert shift_range(18000, 60) == (31, 17970)


@pytest.mark.parametrize("NA,NB,null,n", [(9, 7, "full", 2000), (6, 10, "full", 300), (9, 7, "adaptive", 300), (6, 10, "adaptive", 300)])
def test_matches_direct_reference(NA, NB, null, n):
    """Same shift sequence -> every statistic equals the plain transcription (2000: index 1949)."""
    A, B = planted_pair(1, T=400, NA=NA, NB=NB, n_shared=2, shared_gain=(1.5, 1.2))
    est = SharedSubspace(n_surrogates=n, lag=60, random_state=3, null=null, n_dims_initial=1).fit(A, B)
    assert est.shifts_.min() >= 31 and est.shifts_.max() <= 400 - 30
    ref = reference_plsc(A, B, est.shifts_)
    m = est.n_null_dims_
    np.testing.assert_allclose(est.cov_, ref["cov"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(est.r_, ref["r"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(est.cov_null_[:, :m], ref["cn"][:, :m], rtol=0, atol=1e-10)
    np.testing.assert_allclose(est.r_null_[:, :m], ref["rn"][:, :m], rtol=0, atol=1e-10)
    np.testing.assert_allclose(est.cov_threshold_[:m], ref["ct"][:m], atol=1e-10)
    np.testing.assert_allclose(est.r_threshold_[:m], ref["rt"][:m], atol=1e-10)
    assert est.n_shared_ == ref["K"] >= 2
    np.testing.assert_array_equal(est.significant_[:m], ref["sig"][:m])
    if null == "adaptive":      # 1 -> 2 -> 4 ... dims, stops at the first power of two above K
        assert m > est.n_shared_ and m in (2, 4, 6, 7) and np.isnan(est.cov_threshold_[m:]).all()
    # shapes of the full SVD and the unique subspace
    K = est.n_shared_
    assert est.U_.shape == (NA, NA) and est.V_.shape == (NB, NB)
    np.testing.assert_allclose(np.abs(est.shared_loadings_A_), np.abs(ref["U"][:, :K]), atol=1e-8)
    for side, Z, W, N in (("A", ref["ZA"], est.U_, NA), ("B", ref["ZB"], est.V_, NB)):
        coef = getattr(est, f"unique_coef_{side}_")
        assert coef.shape == (N - K, N - K)
        np.testing.assert_allclose(coef, reference_pca(Z @ W[:, K:]), atol=1e-8)
        big = np.abs(coef).argmax(0)
        assert (coef[big, np.arange(coef.shape[1])] > 0).all()
        np.testing.assert_allclose(getattr(est, f"unique_loadings_{side}_"), W[:, K:] @ coef, atol=1e-12)
    # shared-variance fraction = variance of Z U_K over total variance
    fa = (ref["ZA"] @ est.U_[:, :K]).var(0, ddof=1).sum() / NA
    assert est.shared_variance_fraction_["A"] == pytest.approx(fa, abs=1e-12)


def test_run_length_count():
    from pipeline.analysis.stats import run_length
    assert run_length(np.array([True, True, False, True])) == 2
    assert run_length(np.array([False, True])) == 0
    assert run_length(np.array([True, True])) == 2


def test_pca_matches_matlab_sign_rule():
    rng = np.random.default_rng(0)
    P = rng.standard_normal((100, 4)) @ rng.standard_normal((4, 4))
    coef, latent = matlab_pca(P)
    np.testing.assert_allclose(coef, reference_pca(P), atol=1e-10)
    assert np.all(np.diff(latent) <= 0)


# ----------------------------------------------------------------------------- recovery

def test_recovers_planted_number_of_shared_dimensions():
    """Shared smooth latents + independent noise: K equals the planted number.

    (With slow, low-rank PRIVATE latents the reference's unconditional per-dimension null
    over-counts by one in about 30 % of seeds; see docs/subspace.md, Limits.)
    """
    for seed, k in ((0, 3), (1, 2), (2, 1), (3, 4)):
        A, B = planted_pair(seed, T=2500, n_shared=k, shared_gain=(1.2, 1.0, 0.8, 0.6), n_private=0)
        est = SharedSubspace(n_surrogates=200, lag=60, random_state=seed, null="adaptive").fit(A, B)
        assert est.n_shared_ == k, (seed, k, est.r_[:5], est.r_threshold_[:5])


def test_independent_animals_give_K0_in_36_of_40_seeds():
    """No shared drive: per seed P(K > 0) <= P(dim 1 beats its 97.5 % null) ~ 0.025.

    N = 20, T = 1500, 200 surrogates (threshold rank round(0.975 * 200) = 195). With p = 0.025,
    P(more than 4 of 40 seeds with K > 0) < 0.002.
    """
    k0 = 0
    for seed in range(40):
        A, B = planted_pair(100 + seed, T=1500, NA=20, NB=20, n_shared=0, shared_gain=(), n_private=3)
        k0 += SharedSubspace(n_surrogates=200, lag=60, random_state=seed, null="adaptive").fit(A, B).n_shared_ == 0
    assert k0 >= 36


def test_count_matched_prefers_population_with_larger_shared_gain():
    NA = 40
    types_A = np.array(["GABAergic"] * 20 + ["glutamatergic"] * 20)
    gain = np.where(types_A == "GABAergic", 1.0, 0.25)
    A, B = planted_pair(5, T=1500, NA=NA, NB=20, n_shared=2, shared_gain=(1.0, 0.8), gain_A=gain)
    cm = count_matched(A, B, types_A, np.full(20, "unknown"), n_subsamples=4, n_surrogates=100,
                       random_state=0, min_neurons=5)
    assert cm.n_neurons == 20
    fa = {c: cm.shared_fraction[(cm.animal == "A") & (cm.cell_type == c)] for c in ("GABAergic", "glutamatergic")}
    assert fa["GABAergic"].min() > fa["glutamatergic"].max()
    assert set(cm.animal) == {"A", "B"}


def test_cross_validated_r_and_pseudo_pairs():
    A, B = planted_pair(7, T=2500, n_shared=2)
    cv = cross_validated_r(A, B, n_folds=5, block=300)
    assert cv.shape == (5, 25) and cv[:, 0].min() > 0.5
    A2, B2 = planted_pair(8, T=2500, n_shared=2)
    indep = cross_validated_r(A, B2, n_folds=5, block=300)
    assert abs(indep[:, 0].mean()) < 0.2
    null = pseudo_pair_null([(A, B), (A2, B2)], n_surrogates=100, random_state=0)
    assert null["pair_A"] == [0, 1] and max(null["n_shared"]) <= 1


def test_remove_shared_and_transform():
    A, B = planted_pair(3, T=800, NA=12, NB=10, n_shared=2)
    est = SharedSubspace(n_surrogates=100, random_state=0).fit(A, B)
    PA, PB = est.transform(A, B)
    ZA = (A - A.mean(0)) / A.std(0, ddof=1)
    np.testing.assert_allclose(PA, ZA @ est.U_, atol=1e-10)
    R = remove_shared(ZA, est.shared_loadings_A_)
    np.testing.assert_allclose(R @ est.shared_loadings_A_, 0, atol=1e-10)
    with pytest.raises(AnalysisInputError):
        remove_shared(ZA, np.ones((3, 1)))


# ----------------------------------------------------------------------------- bad input

def test_bad_input():
    A, B = planted_pair(4, T=300, NA=5, NB=4, n_shared=1)
    with pytest.raises(AnalysisInputError, match="same time base"):
        SharedSubspace(n_surrogates=10).fit(A, B[:-1])
    An = A.copy()
    An[10, 2] = np.nan
    with pytest.raises(AnalysisInputError, match="NaN"):
        SharedSubspace(n_surrogates=10).fit(An, B)
    with pytest.raises(AnalysisInputError, match="too short"):
        SharedSubspace(n_surrogates=10, lag=400).fit(A, B)
    with pytest.raises(AnalysisInputError, match="2-D"):
        SharedSubspace(n_surrogates=10).fit(A[:, 0], B)
    with pytest.raises(ValueError, match="null"):
        SharedSubspace(null="fast").fit(A, B)


def test_constant_neuron_is_excluded_and_listed():
    A, B = planted_pair(4, T=300, NA=5, NB=4, n_shared=1)
    Ac = np.column_stack([A[:, :2], np.full(300, 3.0), A[:, 2:]])
    e1 = SharedSubspace(n_surrogates=30, random_state=1).fit(Ac, B)
    e0 = SharedSubspace(n_surrogates=30, random_state=1).fit(A, B)
    assert e1.excluded_A_.tolist() == [2] and e1.excluded_B_.size == 0
    np.testing.assert_allclose(e1.cov_, e0.cov_, atol=1e-12)
    assert e1.U_.shape == (5, 5)


def test_fewer_neurons_than_dimensions():
    """N_A = 2 < N_B = 8: two shared candidates; B's unique space keeps the other 8 - K columns."""
    A, B = planted_pair(6, T=600, NA=2, NB=8, n_shared=1, shared_gain=(1.5,))
    est = SharedSubspace(n_surrogates=100, random_state=0).fit(A, B)
    assert est.cov_.shape == (2,) and est.V_.shape == (8, 8)
    assert est.unique_loadings_B_.shape == (8, 8 - est.n_shared_)
    one = SharedSubspace(n_surrogates=50, random_state=0).fit(A[:, :1], B)
    assert one.cov_.shape == (1,)


# ----------------------------------------------------------------------------- stage

def _session(tmp, **params):
    doc = {"session": {"name": "toy", "seed": 0},
           "animals": {a: {"id": a.lower(), "raw": [f"{a}/movie.tif"], "frame_rate": 10.0} for a in "AB"},
           **params}
    for a in "AB":
        (tmp / a).mkdir(exist_ok=True)
        (tmp / a / "movie.tif").write_bytes(b"x")
    (tmp / "session.toml").write_text(tomli_w.dumps(doc))
    return Session.load(tmp / "session.toml")


def fake_align_tree(seed=0, T=1200, NA=14, NB=12, dt=0.1, n_shared=2):
    """What the align stage writes: activity (neuron, time) with NaN bins, cell types, behaviour."""
    A, B = planted_pair(seed, T=T, NA=NA, NB=NB, n_shared=n_shared, n_private=0)
    rng = np.random.default_rng(seed)
    A[100:103] = np.nan                      # a dropped-frame gap in A
    time = np.arange(T) * dt + dt / 2
    names = ["approach", "sniff", "other"]
    self_b = np.zeros((3, T), bool)
    for k in range(40):
        s = rng.integers(0, T - 20)
        self_b[rng.integers(0, 2), s:s + 15] = True
    self_b[2] = ~self_b[:2].any(0)
    part_b = np.roll(self_b, 333, axis=1)
    out = {}
    for a, X, sb, pb in (("A", A, self_b, part_b), ("B", B, part_b, self_b)):
        N = X.shape[1]
        ct = np.array(["GABAergic"] * (N // 2) + ["glutamatergic"] * (N - N // 2), dtype=object)
        act = xr.DataArray(X.T, dims=("neuron", "time"),
                           coords={"time": ("time", time, {"units": "s"}), "roi_id": ("neuron", np.arange(N)),
                                   "cell_type": ("neuron", ct)})
        out[f"/{a}/activity"] = xr.Dataset({"activity": act})
        out[f"/{a}/behavior"] = xr.Dataset({"self": (("behavior", "time"), sb), "partner": (("behavior", "time"), pb)},
                                           coords={"behavior": np.array(names, dtype=object), "time": time})
    return xr.DataTree.from_dict(out), (A, B)


def test_subspace_stage_writes_groups(tmp_path):
    stages = pipeline_stages.load_stages()
    tree, _ = fake_align_tree()
    reg = {"align": Stage("align", lambda ctx: tree), "subspace": stages["subspace"]}
    s = _session(tmp_path, subspace={"n_surrogates": 100, "n_subsamples": 2, "cell_type_surrogates": 50,
                                     "lag_s": 6.0, "cv_block_s": 30.0, "cv_folds": 3})
    status = orchestrate.run(s, tmp_path / "out", registry=reg, show_progress=False)
    assert status["subspace"] == "ran"
    res = orchestrate.dataset.load(tmp_path / "out")
    top = res["/subspace"]
    assert top.attrs["K"] == 2 and top.attrs["lag"] == 60 and top.attrs["n_nan_bins"] == 3
    assert top["cov_null"].shape == (100, 12) and top["significant"].values[:2].all()
    assert res["/subspace/A"]["shared_loadings"].shape == (14, 2)
    assert np.isnan(res["/subspace/A"]["projection"].values[100:103]).all()
    assert np.isfinite(res["/subspace/A"]["projection"].values[:100]).all()
    bct = res["/subspace/by_cell_type"]
    assert set(bct["population"].values) == {"GABAergic", "glutamatergic"} and bct.sizes["sample"] == 2 * 2 * 2
    assert bct["shared_fraction"].dims == ("cell_type", "draw") and np.isfinite(bct["shared_fraction"]).sum() == 8


# ----------------------------------------------------------------------------- slow tier

@pytest.mark.slow
def test_recovers_K_on_simulator_ground_truth(tmp_path):
    from pipeline.simulator import load_truth, simulate_session
    simulate_session(tmp_path / "sim", seed=3, preset="small", duration_s=900.0)
    truth = load_truth(tmp_path / "sim")
    ca = {a: truth[f"/{a}"].to_dataset() for a in "AB"}
    tA = ca["A"]["frame_time"].values
    XA = ca["A"]["calcium"].transpose("frame", "neuron").values
    XB = np.column_stack([np.interp(tA, ca["B"]["frame_time"].values, c) for c in ca["B"]["calcium"].values])
    lag = int(round(4.0 * 10.0))
    est = SharedSubspace(n_surrogates=2000, lag=lag, random_state=0, null="adaptive").fit(XA, XB)
    assert est.n_shared_ == truth["/shared"].attrs["n_shared_planted"]


def test_confound_controls_remove_drift_and_behaviour_driven_sharing():
    """A common slow drift, or a shared behaviour response, looks 'shared' until removed."""
    from pipeline.analysis.subspace import detrend, regress_out
    rng = np.random.default_rng(9)
    T = 2000
    A, B = planted_pair(9, T=T, NA=12, NB=10, n_shared=0, shared_gain=(), n_private=0)
    drift = np.linspace(-1, 1, T)[:, None] ** 2 * 3
    Ad, Bd = A + drift * rng.uniform(0.5, 1, 12), B + drift * rng.uniform(0.5, 1, 10)
    kw = dict(n_surrogates=200, random_state=0, null="adaptive")
    assert SharedSubspace(**kw).fit(Ad, Bd).n_shared_ >= 1
    assert SharedSubspace(**kw).fit(detrend(Ad, 200), detrend(Bd, 200)).n_shared_ == 0
    beh = np.zeros((T, 1))
    for s in rng.integers(0, T - 30, 25):
        beh[s:s + 25] = 1.0
    Ab, Bb = A + 2 * beh * rng.uniform(0.5, 1, 12), B + 2 * beh * rng.uniform(0.5, 1, 10)
    assert SharedSubspace(**kw).fit(Ab, Bb).n_shared_ >= 1
    assert SharedSubspace(**kw).fit(regress_out(Ab, beh), regress_out(Bb, beh)).n_shared_ == 0


def test_memory_bounded_chunks_give_identical_null():
    """Stacked cross-covariances over the memory bound are processed in chunks of shifts: same numbers."""
    A, B = planted_pair(10, T=600, NA=10, NB=8, n_shared=2)
    big = SharedSubspace(n_surrogates=120, random_state=0, null="adaptive", n_dims_initial=1).fit(A, B)
    small = SharedSubspace(n_surrogates=120, random_state=0, null="adaptive", n_dims_initial=1,
                           max_memory_mb=10 * 8 * 8 * 25 / 2**20).fit(A, B)     # 25 shifts per chunk
    np.testing.assert_array_equal(big.shifts_, small.shifts_)
    np.testing.assert_allclose(small.cov_null_, big.cov_null_, atol=1e-13, equal_nan=True)
    assert small.n_shared_ == big.n_shared_ and small.n_null_dims_ == big.n_null_dims_
