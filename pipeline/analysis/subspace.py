"""Shared and unique inter-brain subspaces by PLSC (METHODS.md section 2).

`SharedSubspace` reproduces the reference exactly: full SVD of the
cross-covariance of the two animals' z-scored activity, per-dimension
covariance and correlation, 2000 circular-shift surrogates of animal B,
thresholds at the 1-based rank round(0.975 * n) of each dimension's sorted
null, strict inequalities, a run-length count K, and a centred PCA of the
unique subspace with MATLAB's sign rule.

The null is computed fast and exactly (to floating point):
- the cross-covariance of A with B circularly shifted by s is a circular
  cross-correlation over time, so every shift comes from FFTs over time
  (`_shifted_crosscov`, blocked over neurons of A so memory stays bounded);
- r_k = S_kk / sqrt(u_k' Sigma_A u_k * v_k' Sigma_B v_k) needs no projections
  of length T, and Sigma_B does not change under a circular shift;
- with null="adaptive" only the leading singular triplets needed to decide K
  are computed (a subset eigendecomposition of C C' on the smaller side),
  extended by doubling while every computed dimension is significant.

Beyond the reference (options, documented in docs/subspace.md): shared-variance
fractions, neuron-count-matched comparison per cell type, cross-validated
shared correlation on held-out time blocks, a pseudo-pair null, detrending and
behaviour regression before PLSC, and removal of the shared subspace.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from scipy.ndimage import uniform_filter1d
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from pipeline.analysis.stats import (AnalysisInputError, as_matrix, as_rng, draw_shifts, run_length, shift_range, surrogate_threshold, zscore)

__all__ = ["SharedSubspace", "remove_shared", "matlab_pca", "detrend", "regress_out",
           "cross_validated_r", "count_matched", "pseudo_pair_null"]


# ----------------------------------------------------------------------------- helpers

def matlab_pca(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centred PCA as MATLAB `pca` returns it.

    P: (T, p). Returns (coeff (p, d), latent (d,)) with d = min(T - 1, p),
    components ordered by variance, and each column's largest-|coef| entry positive
    (MATLAB's sign rule).
    """
    T, p = P.shape
    if p == 0:
        return np.zeros((0, 0)), np.zeros(0)
    Pc = P - P.mean(axis=0)
    _, s, Vt = np.linalg.svd(Pc, full_matrices=False)
    d = min(T - 1, p)
    coeff = Vt[:d].T.copy()
    latent = s[:d] ** 2 / (T - 1)
    big = np.argmax(np.abs(coeff), axis=0)
    sign = np.sign(coeff[big, np.arange(coeff.shape[1])])
    sign[sign == 0] = 1.0
    return coeff * sign, latent


def remove_shared(Z: np.ndarray, loadings: np.ndarray) -> np.ndarray:
    """In-silico removal of a subspace: Z - Z U_K U_K^T.

    Z: (T, N) activity; loadings: (N, K) orthonormal columns (e.g. `shared_loadings_A_`).
    """
    Z = as_matrix(Z, "Z")
    U = np.asarray(loadings, dtype=float)
    if U.ndim != 2 or U.shape[0] != Z.shape[1]:
        raise AnalysisInputError(f"loadings: expected shape ({Z.shape[1]}, K), got {U.shape}")
    return Z - (Z @ U) @ U.T


def detrend(X: np.ndarray, window: int) -> np.ndarray:
    """High-pass: subtract a centred running mean of `window` bins (edges: nearest value).

    X: (T, N). window <= 1 returns X unchanged.
    """
    X = as_matrix(X, "X")
    if window <= 1:
        return X
    return X - uniform_filter1d(X, size=int(window), axis=0, mode="nearest")


def regress_out(X: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    """Residuals of X after least squares on [1, covariates].

    X: (T, N); covariates: (T, M) (e.g. both animals' behaviour indicators).
    """
    X = as_matrix(X, "X")
    D = as_matrix(covariates, "covariates")
    if D.shape[0] != X.shape[0]:
        raise AnalysisInputError(f"covariates: {D.shape[0]} time bins, activity has {X.shape[0]}")
    D = np.column_stack([np.ones(X.shape[0]), D])
    beta, *_ = np.linalg.lstsq(D, X, rcond=None)
    return X - D @ beta


def _shifted_crosscov(ZA: np.ndarray, ZB: np.ndarray, shifts: np.ndarray,
                      block_bytes: int = 128 * 2**20, FA=None, FB=None) -> np.ndarray:
    """C_s = ZA' roll(ZB, s, axis=0) / (T - 1) for every s: (n_shifts, N_A, N_B).

    Uses C_s[i, j] = irfft(FA_i * conj(FB_j))[s]; blocks of A's neurons keep the
    temporary (block, N_B, T) arrays under `block_bytes`.
    """
    T, NA = ZA.shape
    NB = ZB.shape[1]
    if FA is None:
        FA = np.fft.rfft(ZA.T, axis=-1)
    if FB is None:
        FB = np.fft.rfft(ZB.T, axis=-1)
    FBc = FB.conj()
    shifts = np.asarray(shifts, dtype=np.intp) % T
    out = np.empty((shifts.size, NA, NB))
    bi = max(1, int(block_bytes // (NB * T * 24)))
    for i0 in range(0, NA, bi):
        i1 = min(NA, i0 + bi)
        # numpy's pocketfft measured ~25 % faster than scipy.fft here for batched length-T inverses
        full = np.fft.irfft(FA[i0:i1, None, :] * FBc[None, :, :], n=T, axis=-1)
        out[:, i0:i1, :] = np.moveaxis(full[:, :, shifts], -1, 0)
    out /= T - 1
    return out


def _stats_full(C: np.ndarray, SA: np.ndarray, SB: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All min(N_A, N_B) (cov, r) of a stack of cross-covariances C (n, N_A, N_B), by batched SVD."""
    U, s, Vt = np.linalg.svd(C, full_matrices=False)
    qa = np.einsum("nik,nik->nk", SA @ U, U)
    V = np.swapaxes(Vt, -1, -2)
    qb = np.einsum("nik,nik->nk", SB @ V, V)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = s / np.sqrt(qa * qb)
    return s, r


def _stats_top(C: np.ndarray, SA: np.ndarray, SB: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Leading m (cov, r) of each C (n, N_A, N_B): subset eigendecomposition of C C' (smaller side).

    The singular values are sqrt of the top eigenvalues; the other side's vector is
    C' u / s. Accurate to rounding for the leading dimensions (error ~ eps s_1^2 / s_k).
    """
    n, NA, NB = C.shape
    small_a = NA <= NB
    d = NA if small_a else NB
    Ct = np.swapaxes(C, -1, -2)
    if d <= 64:
        # small matrices: one batched LAPACK call beats a Python loop of subset solvers
        M = C @ Ct if small_a else Ct @ C
        w, X = np.linalg.eigh(M)
        w, X = w[:, ::-1][:, :m], X[:, :, ::-1][:, :, :m]
    else:
        w = np.empty((n, m))
        X = np.empty((n, d, m))
        for i in range(n):
            c = C[i]
            Mi = c @ c.T if small_a else c.T @ c
            wi, Xi = sla.eigh(Mi, subset_by_index=[d - m, d - 1], driver="evr", check_finite=False)
            w[i], X[i] = wi[::-1], Xi[:, ::-1]
    s = np.sqrt(np.maximum(w, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        Y = ((Ct @ X) if small_a else (C @ X)) / s[:, None, :]
    u, v = (X, Y) if small_a else (Y, X)
    qa = np.einsum("nik,nik->nk", SA @ u, u)
    qb = np.einsum("nik,nik->nk", SB @ v, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = s / np.sqrt(qa * qb)
    cov = s
    return cov, r


# ----------------------------------------------------------------------------- estimator

class SharedSubspace(BaseEstimator):
    """PLSC shared/unique subspaces of two animals (METHODS.md section 2).

    Parameters
    ----------
    n_surrogates : circular-shift surrogates of animal B (reference 2000).
    lag : guard lag in frames; shifts are uniform on
        [1 + floor(lag/2), T - lag + floor(lag/2)] inclusive (reference 60 at 15 Hz).
    percentile : threshold rank round(percentile/100 * n_surrogates), 1-based (reference 97.5).
    random_state : seed or Generator for the shifts.
    null : "full" (every dimension's null, as the reference) or "adaptive" (only the
        leading dimensions needed to decide K; thresholds beyond are NaN).
    n_dims_initial : first number of null dimensions tried by null="adaptive" (doubled as needed).
    max_memory_mb : bound on the stored stack of shifted cross-covariances; above it
        the shifts are processed in chunks.

    Fitted attributes (A and B alike)
    ---------------------------------
    excluded_A_ : indices of zero-variance neurons left out; kept_A_ the others.
    cov_, r_ : (D,), D = min(N_A, N_B): S_kk and the correlation of the k-th projections.
    cov_null_, r_null_ : (n_surrogates, D) surrogate statistics (NaN beyond `n_null_dims_`).
    cov_threshold_, r_threshold_ : (D,); significant_ : (D,) bool; n_shared_ : K.
    shifts_ : (n_surrogates,) shifts used (drawn from random_state, or those given to fit).
    U_ (N_A, N_A), S_ (D,), V_ (N_B, N_B) : full SVD of C = Z_A' Z_B / (T - 1).
    shared_loadings_A_ : U[:, :K]; unique_coef_A_ : PCA coefficients in the U[:, K:] basis;
    unique_loadings_A_ : U[:, K:] @ unique_coef_A_; unique_latent_A_ : their variances.
    shared_variance_fraction_ : {"A": f_A, "B": f_B}, fraction of total variance in span(U[:, :K]).
    """

    def __init__(self, n_surrogates: int = 2000, lag: int = 60, percentile: float = 97.5,
                 random_state=None, null: str = "full", n_dims_initial: int = 8,
                 max_memory_mb: float = 1024.0):
        self.n_surrogates = n_surrogates
        self.lag = lag
        self.percentile = percentile
        self.random_state = random_state
        self.null = null
        self.n_dims_initial = n_dims_initial
        self.max_memory_mb = max_memory_mb

    # -- fitting
    def _prepare(self, Z_A, Z_B):
        """Z-score both animals (ddof=1) and store what `zscore_like_fit` needs."""
        XA = as_matrix(Z_A, "Z_A")
        XB = as_matrix(Z_B, "Z_B")
        if XA.shape[0] != XB.shape[0]:
            raise AnalysisInputError(
                f"Z_A has {XA.shape[0]} time bins and Z_B has {XB.shape[0]}: both must be on the same time base")
        ZA, exA = zscore(XA, "Z_A")
        ZB, exB = zscore(XB, "Z_B")
        if ZA.shape[1] == 0 or ZB.shape[1] == 0:
            raise AnalysisInputError("Z_A or Z_B has no neuron with non-zero variance")
        self.excluded_A_, self.excluded_B_ = exA, exB
        self.kept_A_ = np.setdiff1d(np.arange(XA.shape[1]), exA)
        self.kept_B_ = np.setdiff1d(np.arange(XB.shape[1]), exB)
        self.mean_A_, self.std_A_ = XA[:, self.kept_A_].mean(0), XA[:, self.kept_A_].std(0, ddof=1)
        self.mean_B_, self.std_B_ = XB[:, self.kept_B_].mean(0), XB[:, self.kept_B_].std(0, ddof=1)
        return ZA, ZB

    def fit(self, Z_A, Z_B, shifts=None):
        """Z_A: (T, N_A), Z_B: (T, N_B) activity on a common time base (z-scored here, ddof=1).

        shifts: explicit circular shifts of B (n,) in bins, e.g. another implementation's; None
        draws n_surrogates of them from random_state. Returns self.
        """
        if self.null not in ("full", "adaptive"):
            raise ValueError(f"null must be 'full' or 'adaptive', got {self.null!r}")
        ZA, ZB = self._prepare(Z_A, Z_B)
        T, NA = ZA.shape
        NB = ZB.shape[1]
        D = min(NA, NB)
        self.n_time_ = T
        C = ZA.T @ ZB / (T - 1)
        U, S, Vt = np.linalg.svd(C, full_matrices=True)
        V = Vt.T
        SA = ZA.T @ ZA / (T - 1)
        SB = ZB.T @ ZB / (T - 1)
        qa = np.einsum("ik,ik->k", SA @ U[:, :D], U[:, :D])
        qb = np.einsum("ik,ik->k", SB @ V[:, :D], V[:, :D])
        with np.errstate(invalid="ignore", divide="ignore"):
            r = S / np.sqrt(qa * qb)
        self.U_, self.S_, self.V_ = U, S, V
        self.cov_, self.r_ = S.copy(), r

        if shifts is not None:
            shifts = np.asarray(shifts, dtype=np.intp).ravel()
        else:
            lo, hi = shift_range(T, int(self.lag))
            shifts = draw_shifts(as_rng(self.random_state), lo, hi, int(self.n_surrogates))
        if shifts.size < 1:
            raise AnalysisInputError("need at least one surrogate shift")
        self.shifts_ = shifts
        self._null(ZA, ZB, SA, SB, D)

        K = self.n_shared_
        self.shared_loadings_A_ = U[:, :K]
        self.shared_loadings_B_ = V[:, :K]
        self.unique_coef_A_, self.unique_latent_A_ = matlab_pca(ZA @ U[:, K:])
        self.unique_loadings_A_ = U[:, K:] @ self.unique_coef_A_
        self.unique_coef_B_, self.unique_latent_B_ = matlab_pca(ZB @ V[:, K:])
        self.unique_loadings_B_ = V[:, K:] @ self.unique_coef_B_
        # z-scored data: total variance = N; shared variance = sum_k u_k' Sigma u_k
        self.shared_variance_fraction_ = {"A": float(qa[:K].sum() / NA), "B": float(qb[:K].sum() / NB)}
        return self

    def _null(self, ZA, ZB, SA, SB, D):
        shifts = self.shifts_
        n = shifts.size
        T, NA = ZA.shape
        NB = ZB.shape[1]
        FA = np.fft.rfft(ZA.T, axis=-1)
        FB = np.fft.rfft(ZB.T, axis=-1)
        per_shift = NA * NB * 8
        chunk = max(1, min(n, int(self.max_memory_mb * 2**20 // per_shift)))
        cached = None
        if chunk >= n:
            cached = _shifted_crosscov(ZA, ZB, shifts, FA=FA, FB=FB)

        def stacks():
            if cached is not None:
                yield 0, cached
            else:
                for c0 in range(0, n, chunk):
                    yield c0, _shifted_crosscov(ZA, ZB, shifts[c0:c0 + chunk], FA=FA, FB=FB)

        cov_null = np.full((n, D), np.nan)
        r_null = np.full((n, D), np.nan)
        if self.null == "full":
            for c0, C in stacks():
                for b0 in range(0, C.shape[0], 64):   # batched SVD, bounded temporaries
                    cs, rs = _stats_full(C[b0:b0 + 64], SA, SB)
                    cov_null[c0 + b0:c0 + b0 + cs.shape[0]] = cs
                    r_null[c0 + b0:c0 + b0 + cs.shape[0]] = rs
            m = D
        else:
            m = min(max(1, int(self.n_dims_initial)), D)
            done = 0
            while True:
                for c0, C in stacks():
                    cs, rs = _stats_top(C, SA, SB, m)
                    cov_null[c0:c0 + C.shape[0], :m] = cs
                    r_null[c0:c0 + C.shape[0], :m] = rs
                done = m
                K = run_length(self._significant(cov_null[:, :m], r_null[:, :m]))
                if K < m or m == D:
                    break
                m = min(2 * m, D)
            m = done
        self.n_null_dims_ = m
        self.cov_null_, self.r_null_ = cov_null, r_null
        self.cov_threshold_ = np.full(D, np.nan)
        self.r_threshold_ = np.full(D, np.nan)
        self.cov_threshold_[:m] = surrogate_threshold(cov_null[:, :m], self.percentile)
        self.r_threshold_[:m] = surrogate_threshold(r_null[:, :m], self.percentile)
        sig = np.zeros(D, dtype=bool)
        sig[:m] = self._significant(cov_null[:, :m], r_null[:, :m])
        self.significant_ = sig
        self.n_shared_ = run_length(sig[:m])

    def _significant(self, cov_null, r_null):
        m = cov_null.shape[1]
        ct = surrogate_threshold(cov_null, self.percentile)
        rt = surrogate_threshold(r_null, self.percentile)
        return (self.cov_[:m] > ct) & (self.r_[:m] > rt)

    # -- use
    def side(self, animal: str) -> dict:
        """The fitted attributes of one animal ("A" or "B") without their suffix.

        {"kept", "excluded", "mean", "std", "loadings" (U or V, all dims), "shared_loadings",
        "unique_coef", "unique_latent", "unique_loadings", "shared_variance_fraction"}.
        """
        check_is_fitted(self)
        if animal == "A":
            return {"kept": self.kept_A_, "excluded": self.excluded_A_, "mean": self.mean_A_, "std": self.std_A_,
                    "loadings": self.U_, "shared_loadings": self.shared_loadings_A_,
                    "unique_coef": self.unique_coef_A_, "unique_latent": self.unique_latent_A_,
                    "unique_loadings": self.unique_loadings_A_,
                    "shared_variance_fraction": self.shared_variance_fraction_["A"]}
        if animal == "B":
            return {"kept": self.kept_B_, "excluded": self.excluded_B_, "mean": self.mean_B_, "std": self.std_B_,
                    "loadings": self.V_, "shared_loadings": self.shared_loadings_B_,
                    "unique_coef": self.unique_coef_B_, "unique_latent": self.unique_latent_B_,
                    "unique_loadings": self.unique_loadings_B_,
                    "shared_variance_fraction": self.shared_variance_fraction_["B"]}
        raise ValueError(f"animal must be 'A' or 'B', got {animal!r}")

    def zscore_like_fit(self, X, side: str) -> np.ndarray:
        """New (T', N) data z-scored with the fit's mean/SD, excluded neurons dropped."""
        s = self.side(side)
        X = as_matrix(X, f"Z_{side}")
        keep, mu, sd = s["kept"], s["mean"], s["std"]
        n_in = keep.size + s["excluded"].size
        if X.shape[1] != n_in:
            raise AnalysisInputError(f"Z_{side}: expected {n_in} neurons (as in fit), got {X.shape[1]}")
        return (X[:, keep] - mu) / sd

    def transform(self, Z_A, Z_B) -> tuple[np.ndarray, np.ndarray]:
        """Projections P_A = Z_A U (T, N_A) and P_B = Z_B V (T, N_B), inputs z-scored as in fit."""
        check_is_fitted(self)
        ZA = self.zscore_like_fit(Z_A, "A")
        ZB = self.zscore_like_fit(Z_B, "B")
        return ZA @ self.U_, ZB @ self.V_


# ----------------------------------------------------------------------------- beyond

def cross_validated_r(Z_A, Z_B, n_folds: int = 5, block: int = 450) -> np.ndarray:
    """Held-out shared correlation: (n_folds, D).

    Time is cut into contiguous blocks of `block` bins (>= 30 s recommended) that are
    dealt to folds in turn (blocked k-fold). U, V are fitted on the training bins
    (z-scored over the session) and the correlation of the k-th projections is
    measured on the held-out bins, so autocorrelation does not leak across folds.
    """
    ZA, _ = zscore(as_matrix(Z_A, "Z_A"), "Z_A")
    ZB, _ = zscore(as_matrix(Z_B, "Z_B"), "Z_B")
    if ZA.shape[0] != ZB.shape[0]:
        raise AnalysisInputError("Z_A and Z_B must have the same number of time bins")
    T = ZA.shape[0]
    n_blocks = T // block
    if n_blocks < n_folds:
        raise AnalysisInputError(
            f"{T} time bins give {n_blocks} blocks of {block} bins, fewer than {n_folds} folds")
    block_id = np.minimum(np.arange(T) // block, n_blocks - 1)
    fold = block_id % n_folds
    D = min(ZA.shape[1], ZB.shape[1])
    out = np.full((n_folds, D), np.nan)
    for f in range(n_folds):
        tr, te = fold != f, fold == f
        U, _, Vt = np.linalg.svd(ZA[tr].T @ ZB[tr], full_matrices=False)
        pa, pb = ZA[te] @ U[:, :D], ZB[te] @ Vt[:D].T
        pa -= pa.mean(0)
        pb -= pb.mean(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f] = (pa * pb).sum(0) / np.sqrt((pa**2).sum(0) * (pb**2).sum(0))
    return out


@dataclass
class CountMatched:
    """Distributions from neuron-count-matched subsampling, one row per (animal, cell_type, repeat)."""
    animal: np.ndarray
    cell_type: np.ndarray
    repeat: np.ndarray
    n_shared: np.ndarray
    shared_fraction: np.ndarray
    n_neurons: int
    n_time: int


def count_matched(Z_A, Z_B, types_A, types_B, n_subsamples: int = 20, n_neurons: int | None = None,
                  n_time: int | None = None, min_neurons: int = 5, random_state=None,
                  **estimator_kw) -> CountMatched:
    """Per-cell-type K and shared-variance fraction at a matched neuron count.

    For each animal X in (A, B) and each cell type c of X with >= `min_neurons` neurons:
    subsample n neurons of type c from X and n neurons (any type) from the partner,
    trim both to the first `n_time` bins, fit `SharedSubspace(**estimator_kw)` and keep
    K and X's shared-variance fraction. n defaults to the smallest qualifying group
    (and the partner's size), so every population is compared at the same size and T.
    """
    rng = as_rng(random_state)
    XA, XB = as_matrix(Z_A, "Z_A"), as_matrix(Z_B, "Z_B")
    tA, tB = np.asarray(types_A).astype(str), np.asarray(types_B).astype(str)
    if tA.size != XA.shape[1] or tB.size != XB.shape[1]:
        raise AnalysisInputError("types_A/types_B must label every neuron of Z_A/Z_B")
    T = XA.shape[0] if n_time is None else min(int(n_time), XA.shape[0])
    groups = []
    for side, t, other in (("A", tA, XB), ("B", tB, XA)):
        for c in sorted(set(t.tolist())):
            idx = np.flatnonzero(t == c)
            if idx.size >= min_neurons:
                groups.append((side, c, idx, other.shape[1]))
    if not groups:
        raise AnalysisInputError(f"no cell type has >= {min_neurons} neurons")
    n = min(min(g[2].size for g in groups), min(g[3] for g in groups)) if n_neurons is None else int(n_neurons)
    rows = {"animal": [], "cell_type": [], "repeat": [], "n_shared": [], "shared_fraction": []}
    for side, c, idx, n_other in groups:
        own = XA if side == "A" else XB
        other = XB if side == "A" else XA
        for rep in range(n_subsamples):
            pick = rng.choice(idx, size=min(n, idx.size), replace=False)
            pick_o = rng.choice(n_other, size=min(n, n_other), replace=False)
            a, b = own[:T, pick], other[:T, pick_o]
            est = SharedSubspace(random_state=rng, **{"null": "adaptive", **estimator_kw})
            est.fit(a, b)
            rows["animal"].append(side)
            rows["cell_type"].append(c)
            rows["repeat"].append(rep)
            rows["n_shared"].append(est.n_shared_)
            rows["shared_fraction"].append(est.shared_variance_fraction_["A"])
    return CountMatched(*(np.asarray(rows[k]) for k in rows), n_neurons=n, n_time=T)


def pseudo_pair_null(pairs, **estimator_kw) -> dict:
    """PLSC of A from one pair with B from another (all ordered i != j), trimmed to equal length.

    pairs: sequence of (Z_A (T_i, N_A_i), Z_B (T_i, N_B_i)). Returns {"pair_A": i, "pair_B": j,
    "n_shared": K, "cov": list of cov_ arrays, "r": list of r_ arrays}: the distribution of
    "shared" structure expected between animals that never interacted.
    """
    if len(pairs) < 2:
        raise AnalysisInputError("pseudo-pair null needs at least two pairs")
    out = {"pair_A": [], "pair_B": [], "n_shared": [], "cov": [], "r": []}
    for i, (a, _) in enumerate(pairs):
        for j, (_, b) in enumerate(pairs):
            if i == j:
                continue
            T = min(len(a), len(b))
            est = SharedSubspace(**{"null": "adaptive", **estimator_kw}).fit(np.asarray(a)[:T], np.asarray(b)[:T])
            out["pair_A"].append(i)
            out["pair_B"].append(j)
            out["n_shared"].append(est.n_shared_)
            out["cov"].append(est.cov_)
            out["r"].append(est.r_)
    return out
