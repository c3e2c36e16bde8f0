"""Self/partner non-redundant variance and the CCA behaviour space (pipeline/analysis/behavior_space.py)."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.analysis.behavior_space import BehaviorCCA, NonRedundantVariance, canoncorr, variance_explained
from pipeline.analysis.stats import AnalysisInputError


def bouts(rng, T, n_bouts=25, length=(10, 40)):
    y = np.zeros(T, bool)
    for _ in range(n_bouts):
        s = rng.integers(0, T - length[1])
        y[s:s + rng.integers(*length)] = True
    return y


def plain_canoncorr_r(X, Y):
    """Textbook CCA: QR of each centred matrix (no pivoting), singular values of Q1' Q2."""
    Q1, _ = np.linalg.qr(X - X.mean(0))
    Q2, _ = np.linalg.qr(Y - Y.mean(0))
    return np.clip(np.linalg.svd(Q1.T @ Q2, compute_uv=False), 0, 1)


def coordinated_pair(seed, T=1500, p=5, n_coord=2, copy=0.85):
    """A's behaviours; B copies the first n_coord of them (each frame kept with prob. `copy`)."""
    rng = np.random.default_rng(seed)
    A = np.column_stack([bouts(rng, T) for _ in range(p)])
    B = np.column_stack([bouts(rng, T) for _ in range(p)])
    for k in range(n_coord):
        B[:, k] = A[:, k] & (rng.random(T) < copy)
    return A.astype(float), B.astype(float)


def test_canoncorr_matches_plain_qr_svd():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    Y = X[:, :2] @ rng.standard_normal((2, 3)) + rng.standard_normal((300, 3))
    A, B, r, U, V = canoncorr(X, Y)
    np.testing.assert_allclose(r, plain_canoncorr_r(X, Y), atol=1e-12)
    # canonical variates: unit variance, uncorrelated, corr(U_k, V_k) = r_k (MATLAB's scaling)
    np.testing.assert_allclose(np.cov(U, rowvar=False), np.eye(3), atol=1e-10)
    np.testing.assert_allclose([np.corrcoef(U[:, k], V[:, k])[0, 1] for k in range(3)], r, atol=1e-10)
    # a rank-deficient X (duplicate column) keeps MATLAB's zero coefficient rows
    A2, _, r2, *_ = canoncorr(np.column_stack([X, X[:, 0]]), Y)
    np.testing.assert_allclose(r2, r, atol=1e-10)
    assert A2.shape == (5, 3) and (np.abs(A2).sum(1) == 0).sum() == 1


def test_cca_null_matches_direct_loop_and_threshold_rank():
    A, B = coordinated_pair(1, T=300, p=3, n_coord=1)
    est = BehaviorCCA(n_surrogates=2000, lag=60, random_state=0).fit(A, B)
    assert est.shifts_.min() >= 31 and est.shifts_.max() <= 270
    z = lambda M: (M - M.mean(0)) / M.std(0, ddof=1)   # noqa: E731
    direct = np.array([canoncorr(z(A), np.roll(z(B), s, axis=0))[2][0] for s in est.shifts_])
    np.testing.assert_allclose(est.null_, direct, atol=1e-10)
    assert est.threshold_ == pytest.approx(np.sort(direct)[1899], abs=1e-10)
    assert est.n_coordinated_ == int((est.r_ > np.sort(direct)[1899]).sum())


def test_planted_coordination_counted():
    for seed, k in ((2, 2), (3, 1), (4, 3)):
        A, B = coordinated_pair(seed, n_coord=k)
        est = BehaviorCCA(n_surrogates=300, random_state=seed).fit(A, B)
        assert est.n_coordinated_ == k, (seed, est.r_, est.threshold_)
        assert est.uncoordinated_U_.shape[1] == est.r_.size - k


def test_independent_behaviour_rarely_coordinated():
    """No coupling: K_behaviour > 0 needs r_1 above the 95 % point of its own null -> ~5 % of seeds."""
    hits = sum(BehaviorCCA(n_surrogates=200, random_state=s).fit(*coordinated_pair(50 + s, T=1000, n_coord=0))
               .n_coordinated_ > 0 for s in range(30))
    assert hits <= 5                      # binomial(30, 0.05): P(> 5) < 0.01


def test_never_occurring_column_dropped_and_reported():
    A, B = coordinated_pair(5, T=800)
    A[:, 3] = 0.0
    est = BehaviorCCA(n_surrogates=50, random_state=0).fit(A, B, names_A=list("abcde"))
    assert est.dropped_A_.tolist() == [3] and est.dropped_names_A_ == ["d"]
    assert est.A_.shape[0] == 4
    with pytest.raises(AnalysisInputError, match="constant"):
        BehaviorCCA(n_surrogates=5).fit(np.zeros((100, 2)), B[:100])
    with pytest.raises(AnalysisInputError, match="time bins"):
        BehaviorCCA(n_surrogates=5).fit(A, B[:-1])


def test_variance_explained_is_least_squares_with_intercept():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((400, 3)) + 5
    Y = X @ rng.standard_normal((3, 4)) + rng.standard_normal((400, 4))
    D = np.column_stack([np.ones(400), X])
    res = Y - D @ np.linalg.lstsq(D, Y, rcond=None)[0]
    Yc = Y - Y.mean(0)
    assert variance_explained(X, Y) == pytest.approx(1 - (res**2).sum() / (Yc**2).sum(), abs=1e-12)
    onehot = np.eye(3)[rng.integers(0, 3, 400)]          # columns sum to 1: rank handled
    assert 0 <= variance_explained(onehot, Y) < 1


def test_non_redundant_variance_separates_self_from_partner():
    rng = np.random.default_rng(7)
    T = 2000
    own = np.column_stack([bouts(rng, T) for _ in range(3)]).astype(float)
    partner = np.column_stack([bouts(rng, T) for _ in range(3)]).astype(float)
    Y = own @ rng.standard_normal((3, 10)) + 0.8 * rng.standard_normal((T, 10))
    nrv = NonRedundantVariance(n_var_permute=10, n_shuffle=10, random_state=0).fit(
        {"self": own, "partner": partner}, Y)
    assert nrv.non_redundant_["self"] > 0.2
    assert abs(nrv.non_redundant_["partner"]) < 0.02
    assert nrv.full_ == pytest.approx(nrv.ve_ - nrv.chance_)
    with pytest.raises(AnalysisInputError, match="time bins"):
        NonRedundantVariance(n_var_permute=2, n_shuffle=2).fit({"self": own[:-1]}, Y)
