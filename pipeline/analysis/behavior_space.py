"""Self vs partner contributions and the coordinated behaviour space (METHODS.md section 4).

- `variance_explained`, `NonRedundantVariance`: the non-redundant variance of
  each feature group (e.g. self- and partner-behaviour indicators) in neural
  activity, against circular-shift chance levels.
  VE is fitted by least squares WITH an intercept (the reference fits PLS with
  rank(X) components on uncentred X, which equals this only when no set of
  columns of X sums to a constant; one-hot labels including "other" do, so we
  use the intercept form and document it).
- `canoncorr`: MATLAB's canoncorr (column-pivoted QR of each centred matrix,
  then SVD of Q1' Q2).
- `BehaviorCCA`: CCA between the two animals' z-scored behaviour matrices with
  a null of circular shifts of B keeping the first canonical correlation, the
  threshold at 1-based rank round(0.95 n) (1900 of 2000), and K_behaviour =
  the number of observed canonical correlations above it (strict).
"""
from __future__ import annotations

import numpy as np
import scipy.fft as sfft
import scipy.linalg as sla
from sklearn.base import BaseEstimator

from pipeline.analysis.stats import AnalysisInputError, as_matrix, as_rng, draw_shifts, shift_range, threshold_index

__all__ = ["variance_explained", "NonRedundantVariance", "canoncorr", "BehaviorCCA"]


# ----------------------------------------------------------------------------- non-redundant variance

def variance_explained(X: np.ndarray, Y: np.ndarray) -> float:
    """Pooled fraction of the variance of centred Y explained by least squares on [1, X].

    X: (T, p) features; Y: (T, n) targets. Returns 1 - ||residual||_F^2 / ||Y_c||_F^2.
    """
    X = as_matrix(X, "X")
    Y = as_matrix(Y, "Y")
    Yc = Y - Y.mean(0)
    Xc = X - X.mean(0)
    # orthonormal basis of the centred features (intercept absorbed by centring)
    Q, R, _ = sla.qr(Xc, mode="economic", pivoting=True)
    d = np.abs(np.diag(R))
    rank = int((d > d.max() * max(X.shape) * np.finfo(float).eps).sum()) if d.size and d.max() > 0 else 0
    Q = Q[:, :rank]
    tot = float((Yc ** 2).sum())
    if tot == 0:
        raise AnalysisInputError("Y has zero variance: nothing to explain")
    return float(((Q.T @ Yc) ** 2).sum() / tot)


class NonRedundantVariance(BaseEstimator):
    """Non-redundant variance of feature groups (METHODS.md section 4).

    Parameters
    ----------
    n_var_permute : repeats of shifting one group (reference: numVarPermute, no default; 100 here).
    n_shuffle : whole-X shifts per chance estimate (numShuffle; 100 here).
    lag : guard lag of the shift range [1 + floor(lag/2), T - lag + floor(lag/2)] (60 frames).
    random_state : seed or Generator.

    Fitted attributes: ve_ (VE(X)), chance_, full_ (= ve_ - chance_),
    group_records_ {group: (n_var_permute,) VE(X_i) - chance(X_i)},
    non_redundant_ {group: full_ - mean(records)},
    shifts_ {"chance": (n_shuffle,), "groups": {group: (n_var_permute, 1 + n_shuffle)}}: the
    circular shifts (frames) of the whole-X chance, and per repeat the group's own shift
    (column 0) followed by the shifts of that repeat's chance.
    """

    def __init__(self, n_var_permute: int = 100, n_shuffle: int = 100, lag: int = 60, random_state=None):
        self.n_var_permute = n_var_permute
        self.n_shuffle = n_shuffle
        self.lag = lag
        self.random_state = random_state

    @staticmethod
    def _chance(X, Y, shifts):
        return float(np.mean([variance_explained(np.roll(X, k, axis=0), Y) for k in shifts]))

    def _draw(self, names, rng, lo, hi) -> dict:
        """Every shift of a fit, drawn in the order the reference draws them (stable streams)."""
        chance = draw_shifts(rng, lo, hi, self.n_shuffle)
        per_group = {}
        for name in names:
            rec = np.empty((self.n_var_permute, 1 + self.n_shuffle), dtype=np.int64)
            for i in range(self.n_var_permute):
                rec[i, 0] = draw_shifts(rng, lo, hi, 1)[0]
                rec[i, 1:] = draw_shifts(rng, lo, hi, self.n_shuffle)
            per_group[name] = rec
        return {"chance": chance, "groups": per_group}

    def fit(self, groups: dict, Y, shifts=None):
        """groups: {name: (T, p_i) features}; Y: (T, n) neural activity. Returns self.

        shifts: explicit circular shifts in the layout of `shifts_` (see the class doc); None
        draws them from random_state.
        """
        Y = as_matrix(Y, "Y")
        if not groups:
            raise AnalysisInputError("groups: need at least one feature group")
        mats = {k: as_matrix(np.asarray(v, dtype=float).reshape(len(v), -1), f"groups[{k!r}]")
                for k, v in groups.items()}
        T = Y.shape[0]
        for k, v in mats.items():
            if v.shape[0] != T:
                raise AnalysisInputError(f"groups[{k!r}] has {v.shape[0]} time bins, Y has {T}")
        names = list(mats)
        if shifts is None:
            lo, hi = shift_range(T, int(self.lag))
            shifts = self._draw(names, as_rng(self.random_state), lo, hi)
        else:
            shifts = {"chance": np.asarray(shifts["chance"], dtype=np.int64).ravel(),
                      "groups": {k: np.asarray(shifts["groups"][k], dtype=np.int64) for k in names}}
            if any(v.ndim != 2 or v.shape[1] < 1 for v in shifts["groups"].values()):
                raise AnalysisInputError("shifts['groups'][name] must be (repeats, 1 + n_shuffle) per group")
        X = np.column_stack([mats[k] for k in names])
        bounds = np.cumsum([0] + [mats[k].shape[1] for k in names])
        self.shifts_ = shifts
        self.ve_ = variance_explained(X, Y)
        self.chance_ = self._chance(X, Y, shifts["chance"])
        self.full_ = self.ve_ - self.chance_
        self.group_records_, self.non_redundant_ = {}, {}
        for g, name in enumerate(names):
            sh = shifts["groups"][name]
            rec = np.empty(sh.shape[0])
            for i in range(sh.shape[0]):
                Xi = X.copy()
                Xi[:, bounds[g]:bounds[g + 1]] = np.roll(X[:, bounds[g]:bounds[g + 1]], sh[i, 0], axis=0)
                rec[i] = variance_explained(Xi, Y) - self._chance(Xi, Y, sh[i, 1:])
            self.group_records_[name] = rec
            self.non_redundant_[name] = float(self.full_ - rec.mean())
        return self


# ----------------------------------------------------------------------------- canonical correlation

def _qr_rank(X0):
    n = X0.shape[0]
    Q, R, perm = sla.qr(X0, mode="economic", pivoting=True)
    d = np.abs(np.diag(R))
    rank = int((d > np.spacing(d[0]) * max(n, X0.shape[1])).sum()) if d.size and d[0] > 0 else 0
    return Q[:, :rank], R[:rank, :rank], perm, rank


def canoncorr(X, Y):
    """MATLAB canoncorr: returns (A, B, r, U, V).

    X: (n, p1), Y: (n, p2). Columns are centred; each matrix is QR-factorised with column
    pivoting and rank-truncated (MATLAB's tolerance), then [L, D, M] = svd(Q1' Q2);
    A = T11 \\ L sqrt(n-1), B = T22 \\ M sqrt(n-1), put back in the original column order
    with zero rows for dropped columns; r = clip(diag(D), 0, 1); U = X0 A, V = Y0 B.
    """
    X = as_matrix(X, "X")
    Y = as_matrix(Y, "Y")
    n = X.shape[0]
    if Y.shape[0] != n:
        raise AnalysisInputError(f"X has {n} rows and Y has {Y.shape[0]}")
    X0, Y0 = X - X.mean(0), Y - Y.mean(0)
    Q1, T11, perm1, rx = _qr_rank(X0)
    Q2, T22, perm2, ry = _qr_rank(Y0)
    if rx == 0 or ry == 0:
        raise AnalysisInputError("X or Y has rank 0 (all columns constant)")
    d = min(rx, ry)
    L, D, Mt = np.linalg.svd(Q1.T @ Q2, full_matrices=False)
    A = sla.solve_triangular(T11, L[:, :d]) * np.sqrt(n - 1)
    B = sla.solve_triangular(T22, Mt.T[:, :d]) * np.sqrt(n - 1)
    Af = np.zeros((X.shape[1], d))
    Bf = np.zeros((Y.shape[1], d))
    Af[perm1[:rx]] = A
    Bf[perm2[:ry]] = B
    r = np.clip(D[:d], 0.0, 1.0)
    return Af, Bf, r, X0 @ Af, Y0 @ Bf


class BehaviorCCA(BaseEstimator):
    """Coordinated behaviour space of two animals (METHODS.md section 4).

    Parameters: n_surrogates (2000), lag (60 frames, section 2 range), percentile (95: rank
    round(0.95 n) = 1900 of 2000, 1-based), random_state (seed or Generator for the shifts).

    fit(X_A (T, p_A), X_B (T, p_B)) z-scores each behaviour column (ddof=1); columns that
    never vary (e.g. never occur) are dropped and listed in dropped_A_ / dropped_B_.
    Attributes: r_ (d,) canonical correlations; A_, B_ coefficients (on kept columns);
    U_, V_ canonical variates (T, d); null_ (n,) first canonical correlation per shift;
    threshold_; n_coordinated_ (K_behaviour, observed r > threshold, strict);
    uncoordinated_U_, uncoordinated_V_: the remaining canonical variates in canonical order
    (the reference's PCA of them is degenerate: they have identity covariance).
    """

    def __init__(self, n_surrogates: int = 2000, lag: int = 60, percentile: float = 95.0,
                 random_state=None):
        self.n_surrogates = n_surrogates
        self.lag = lag
        self.percentile = percentile
        self.random_state = random_state

    @staticmethod
    def _z(X, name):
        X = as_matrix(np.asarray(X, dtype=float), name)
        sd = X.std(0, ddof=1)
        drop = np.flatnonzero(~(sd > 0))
        keep = np.setdiff1d(np.arange(X.shape[1]), drop)
        if keep.size == 0:
            raise AnalysisInputError(f"{name}: every behaviour column is constant (never occurs)")
        return (X[:, keep] - X[:, keep].mean(0)) / sd[keep], drop, keep

    def fit(self, X_A, X_B, names_A=None, names_B=None, shifts=None):
        """X_A: (T, p_A), X_B: (T, p_B) behaviour indicators; names label their columns.

        shifts: explicit circular shifts of B (n,) in frames; None draws n_surrogates of them
        from random_state. Returns self.
        """
        ZA, self.dropped_A_, self.kept_A_ = self._z(X_A, "X_A")
        ZB, self.dropped_B_, self.kept_B_ = self._z(X_B, "X_B")
        if names_A is not None:
            self.dropped_names_A_ = [list(names_A)[i] for i in self.dropped_A_]
        if names_B is not None:
            self.dropped_names_B_ = [list(names_B)[i] for i in self.dropped_B_]
        T = ZA.shape[0]
        if ZB.shape[0] != T:
            raise AnalysisInputError(f"X_A has {T} time bins and X_B has {ZB.shape[0]}")
        self.A_, self.B_, self.r_, self.U_, self.V_ = canoncorr(ZA, ZB)
        if shifts is not None:
            shifts = np.asarray(shifts, dtype=np.int64).ravel()
        else:
            lo, hi = shift_range(T, int(self.lag))
            shifts = draw_shifts(as_rng(self.random_state), lo, hi, int(self.n_surrogates))
        self.shifts_ = shifts
        # Centring and the QR are row-permutation invariant: roll(Y0) = roll(Q2) T22, so the
        # first canonical correlation of a shift is the top singular value of Q1' roll(Q2, s),
        # and Q1' roll(Q2, s) for every s is a circular cross-correlation (FFT over time).
        Q1, *_ = _qr_rank(ZA - ZA.mean(0))
        Q2, *_ = _qr_rank(ZB - ZB.mean(0))
        F1 = sfft.rfft(Q1.T, axis=-1)
        F2 = sfft.rfft(Q2.T, axis=-1)
        full = sfft.irfft(F1[:, None, :] * F2[None, :, :].conj(), n=T, axis=-1)  # (r1, r2, T)
        M = np.moveaxis(full[:, :, shifts % T], -1, 0)
        s1 = np.linalg.svd(M, compute_uv=False)[:, 0]
        self.null_ = np.clip(s1, 0.0, 1.0)
        self.threshold_ = float(np.sort(self.null_)[threshold_index(self.percentile, self.null_.size)])
        self.n_coordinated_ = int((self.r_ > self.threshold_).sum())
        k = self.n_coordinated_
        self.uncoordinated_U_, self.uncoordinated_V_ = self.U_[:, k:], self.V_[:, k:]
        return self
