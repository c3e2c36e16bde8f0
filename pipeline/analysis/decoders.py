"""Time-resolved linear decoders of behaviour from population activity (METHODS.md section 5).

`TimeResolvedDecoder` trains a linear classifier one time bin at a time on windows
aligned to two sets of events (class a, class b), with leave-one-bout-out
cross-validation that drops from training every bout starting within
`exclusion_s` of the test bout, class balance by random subsampling, a null
that circularly shifts the activity against the event train (default; or
permutes the labels) and a cluster-based permutation test over time bins.

Two classifiers, both with the intercept as a constant feature:

- `mode="lda"` (default): ridge least squares on +-1 labels,
  min_w |y - [X, c] w|^2 + ridge |w|^2 with c = 100 (so the intercept's penalty is
  ridge / 10^4, practically free), whose weight direction is the shrinkage-LDA
  direction (METHODS.md's budget allows closed-form fits). Every
  fold's decision comes from one hat matrix per bin by the block leave-out
  identity (`_decisions_ridge_hat`); `solver="naive"` fits one sklearn `Ridge`
  per (label set, fold, bin) instead, with identical accuracies.
- `mode="svm"`: the template's linear SVM, scikit-learn's `LinearSVC` problem
  (squared hinge loss, L2 penalty, bias feature of 1 penalised like the others):

    min_w  1/2 |w|^2 + C sum_i max(0, 1 - y_i w.[x_i, 1])^2

  Its dual is strictly convex (the squared hinge adds 1/(2C) to the diagonal),
  so the optimum is unique and any exact solver gives the same decision values.
  The fast path (`solver="fast"`) solves that dual for every (time bin, fold)
  at once from per-bin Gram matrices with a batched primal-dual active-set
  Newton method; `solver="naive"` fits one `LinearSVC` per (label set, fold, bin).

`benchmarks/bench_decoders.py` and tests/test_decoders.py check that each fast path
and its naive loop give identical accuracies and AUCs, and that the two modes agree.
See docs/decoders.md for every rule and shortcut.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from pipeline.analysis.stats import as_rng, draw_shifts

NOT_ENOUGH = "not enough bouts"


# ---------------------------------------------------------------- inputs ----

def standardize(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Z-score columns over time (ddof=1, NaN-aware) and set NaN to 0 (the mean).

    X: (time, feature). Returns (Z (time, kept feature), kept (feature,) bool):
    columns with zero variance or no finite value are dropped.
    """
    X = np.asarray(X, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mu = np.nanmean(X, axis=0)
        sd = np.nanstd(X, axis=0, ddof=1)
    kept = np.isfinite(sd) & (sd > 0)
    Z = (X[:, kept] - mu[kept]) / sd[kept]
    return np.nan_to_num(Z, nan=0.0), kept


def window_offsets(window: tuple[float, float], dt: float) -> np.ndarray:
    """Bin offsets k (int) of a window (s) at bin width dt (s): round(w0/dt) .. round(w1/dt)."""
    k0, k1 = int(round(window[0] / dt)), int(round(window[1] / dt))
    if k1 < k0:
        raise ValueError(f"decoding window {window} is empty (start after stop)")
    return np.arange(k0, k1 + 1)


def event_bins(events: np.ndarray, time: np.ndarray, dt: float) -> np.ndarray:
    """Index of the bin containing each event time (s); bin i covers [time[i]-dt/2, time[i]+dt/2)."""
    return np.floor((np.asarray(events, float) - (time[0] - dt / 2)) / dt).astype(int)


def extract_windows(X: np.ndarray, idx: np.ndarray, offsets: np.ndarray):
    """Windows X[idx + k] for every event index and offset.

    X: (time, feature); idx: (event,) bin indices. Events whose window runs off
    the recording are dropped. Returns (W (event_kept, offset, feature), kept (event,) bool).
    """
    T = X.shape[0]
    kept = (idx + offsets[0] >= 0) & (idx + offsets[-1] < T)
    rows = idx[kept][:, None] + offsets[None, :]
    return X[rows], kept


# ------------------------------------------------------------ statistics ----

def auc_score(y: np.ndarray, f: np.ndarray) -> float:
    """Area under the ROC curve of scores f for labels y (1 = positive), ties counted half (Mann-Whitney)."""
    pos, neg = f[y == 1], f[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return np.nan
    d = pos[:, None] - neg[None, :]
    return float(((d > 0).sum() + 0.5 * (d == 0).sum()) / d.size)


def cluster_test(stat: np.ndarray, null: np.ndarray, q: float = 0.95):
    """Cluster-based permutation test over time bins (Maris & Oostenveld 2007), one-sided (stat > null).

    stat: (bin,) observed statistic; null: (surrogate, bin) the same statistic on surrogates.
    Cluster-forming threshold: the per-bin q-quantile of the null. A cluster is a run
    of adjacent bins above it; its mass is the sum of (stat - null mean) over the run.
    Each surrogate is clustered with the same thresholds and contributes its largest
    mass (0 without a cluster); p = (1 + #{max null mass >= mass}) / (n_surrogates + 1).
    Returns (clusters: list of dict(start, stop, mass, p) with bin indices [start, stop),
    threshold (bin,), null max masses (surrogate,)).
    """
    n_s = null.shape[0]
    if n_s == 0 or not np.isfinite(stat).any():
        return [], np.full(stat.shape, np.nan), np.zeros(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        thr = np.nanquantile(null, q, axis=0)
        mu = np.nanmean(null, axis=0)

    def runs(x):
        above = np.nan_to_num(x, nan=-np.inf) > thr
        out, i = [], 0
        while i < len(x):
            if above[i]:
                j = i
                while j < len(x) and above[j]:
                    j += 1
                out.append((i, j, float(np.sum(x[i:j] - mu[i:j]))))
                i = j
            else:
                i += 1
        return out

    null_max = np.array([max([m for _, _, m in runs(s)], default=0.0) for s in null])
    clusters = [dict(start=a, stop=b, mass=m, p=(1 + int(np.sum(null_max >= m))) / (n_s + 1))
                for a, b, m in runs(stat)]
    return clusters, thr, null_max


# ---------------------------------------------------------------- solvers ----

def _train_masks(times: np.ndarray, exclusion_s: float) -> np.ndarray:
    """(test, train) bool: train bout i is usable for test bout j when |t_i - t_j| > exclusion_s and i != j."""
    m = np.abs(times[:, None] - times[None, :]) > exclusion_s
    np.fill_diagonal(m, False)
    return m


def _decisions_naive(W, y, train, C, tol, max_iter):
    """Reference nested loop: one LinearSVC per (fold, bin).

    W: (bout, bin, feature) of the bouts in this label set; y: (bout,) in {0, 1};
    train: (fold=bout, bout) bool. Returns decision values (bin, bout); NaN where a
    fold's training set lacks a class.
    """
    from sklearn.svm import LinearSVC

    def fit_predict(Xb, tr, j):
        clf = LinearSVC(C=C, loss="squared_hinge", dual=True, fit_intercept=True,
                        intercept_scaling=1.0, tol=tol, max_iter=max_iter)
        return clf.fit(Xb[tr], y[tr]).decision_function(Xb[j:j + 1])[0]
    return _naive_loop(W, y, train, fit_predict)


def _naive_loop(W, y, train, fit_predict):
    """The reference loops' folds x bins: f[b, j] = fit_predict(W[:, b], train[j], j), the decision
    value (bin, bout) of bout j from a fit on its fold's training bouts; NaN where a fold's training
    set lacks a class."""
    n, nb, _ = W.shape
    f = np.full((nb, n), np.nan)
    for j in range(n):
        if len(np.unique(y[train[j]])) < 2:
            continue
        for b in range(nb):
            f[b, j] = fit_predict(W[:, b], train[j], j)
    return f


def _removed_coef(H, v, bp, R, chunk=512):
    """Block-downdate coefficients cf (P, n): cf_R = (H_RR)^-1 v_R, zero elsewhere.

    Then x = v - H cf solves M_FF x_F = e_F on the complement F of R, with x_R = 0
    (Schur complement), given H = M^-1 and v = H e. Problems are sorted by |R| and
    solved in chunks padded (with an identity block) to the chunk's largest |R|.
    H: (bin, n, n); v: (bin, n); bp: (P,) bin of each problem; R: (P, n) bool.
    """
    P, n = R.shape
    cf = np.zeros((P, n))
    cnt = R.sum(axis=1)
    order = np.argsort(cnt, kind="stable")
    for c0 in range(0, P, chunk):
        o = order[c0:c0 + chunk]
        k = int(cnt[o].max())
        if k == 0:
            continue
        E = np.argsort(~R[o], axis=1, kind="stable")[:, :k]      # removed indices first
        mask = np.take_along_axis(R[o], E, axis=1)                # (p, k)
        b = bp[o]
        # flat gathers (np.take on raveled arrays is several times faster than 3-D fancy indexing)
        rowE = b[:, None] * n + E                                  # (p, k) rows of H as (bin*n + i)
        HEE = np.take(H.reshape(-1), (rowE * n)[:, :, None] + E[:, None, :])   # (p, k, k)
        HEE = np.where(mask[:, :, None] & mask[:, None, :], HEE, np.eye(k))
        vE = np.where(mask, np.take(v.reshape(-1), rowE), 0.0)
        c = np.linalg.solve(HEE, vE[..., None])[..., 0] * mask
        sub = np.zeros((len(o), n))
        np.put_along_axis(sub, E, c, axis=1)
        cf[o] = sub
    return cf


def _downdate(H, v, bp, R, grid=None):
    """Solutions x (P, n) of M_FF x_F = e_F, x_R = 0 (F = complement of R), from H = M^-1, v = H e.

    H: (bin, n, n); v: (bin, n); bp: (P,) bin of each problem; R: (P, n) bool removed.
    grid=(nb, nf): the problems are the full bin-major grid, so H cf is one batched
    matrix product per bin.
    """
    P, n = R.shape
    cf = _removed_coef(H, v, bp, R)
    if grid is not None:
        nb, nf = grid
        x = (v[:, None, :] - np.matmul(cf.reshape(nb, nf, n), H)).reshape(P, n)   # H symmetric
    else:
        x = np.empty((P, n))
        for c0 in range(0, P, 512):
            sl = slice(c0, c0 + 512)
            x[sl] = v[bp[sl]] - np.einsum("pij,pj->pi", H[bp[sl]], cf[sl])
    x[R] = 0.0
    return x


def _solve_l2svm_dual(Q, H, v, bp, F0, train, tol, max_iter=100, grid=None):
    """Batched exact solution of min_a 1/2 a'Qa - sum(a) s.t. a >= 0, a = 0 outside `train`.

    Primal-dual active-set iterations (Hintermueller et al. 2002): the free set F
    gives a = Q_FF^-1 e on F (by a downdate of the full inverse H), then F is updated
    from the signs of a and of the gradient Q a - 1 until it is stable, when the KKT
    conditions hold exactly. Problems that do not settle (rare) finish by projected
    coordinate descent to `tol`.
    Q, H: (bin, n, n) with H = Q^-1; v: (bin, n) = H e; bp: (P,) bin of each problem;
    F0, train: (P, n) bool; grid=(nb, nf) when the problems form the bin-major grid.
    Returns a (P, n).
    """
    P, n = F0.shape
    a = np.zeros((P, n))
    F = F0 & train
    todo = np.arange(P)
    for _ in range(max_iter):
        if len(todo) == 0:
            break
        whole = grid is not None and len(todo) > P // 4
        t = np.arange(P) if whole else todo
        Ft = F[t]
        x = _downdate(H, v, bp[t], ~Ft, grid if whole else None)
        if whole:
            nb, nf = grid
            g = np.matmul(x.reshape(nb, nf, n), Q).reshape(P, n) - 1.0
        else:
            g = np.einsum("pij,pj->pi", Q[bp[t]], x) - 1.0 if len(t) < 512 else \
                np.concatenate([np.einsum("pij,pj->pi", Q[bp[t[i:i + 512]]], x[i:i + 512]) - 1.0
                                for i in range(0, len(t), 512)])
        new = train[t] & ((Ft & (x > 0)) | (~Ft & (g < 0)))
        moved = (new != Ft).any(axis=1)
        if whole:                        # converged problems are final: do not overwrite
            live = np.zeros(P, bool)
            live[todo] = True
            keep = live
        else:
            keep = np.ones(len(t), bool)
        a[t[keep]] = x[keep]
        F[t[keep]] = new[keep]
        todo = t[keep & moved]
    for p in todo:   # fallback: coordinate descent from the clipped active-set point
        q, m = Q[bp[p]], train[p]
        x = np.clip(a[p], 0, None) * m
        g = q @ x - 1.0
        for _ in range(100000):
            big = 0.0
            for i in np.flatnonzero(m):
                pg = min(g[i], 0.0) if x[i] == 0 else g[i]
                big = max(big, abs(pg))
                if pg != 0:
                    xi = max(x[i] - g[i] / q[i, i], 0.0)
                    g += (xi - x[i]) * q[:, i]
                    x[i] = xi
            if big < tol:
                break
        a[p] = x
    return a


def _decisions_fast(G, y, train, C, tol):
    """All folds and bins at once from Gram matrices.

    G: (bin, bout, bout) Gram matrices x_i.x_j + 1 (bias feature) of the bouts in
    this label set; y: (bout,) in {0, 1}; train: (fold, bout) bool.
    The dual matrix Q is inverted once per bin; every (bin, fold) problem is then an
    active-set iteration on downdates of that inverse, started from the active set of
    the all-bouts solution (usually already right, so one or two steps suffice).
    Returns decision values (bin, bout), NaN where a fold's training set lacks a class.
    """
    nb, n, s, folds, f = _fold_setup(G, y, train)
    if len(folds) == 0:
        return f
    # folds with the same training set (test bouts whose exclusion windows drop the same
    # bouts, e.g. bouts of one cluster in time) are one problem: solved once
    tm, inv = np.unique(train[folds], axis=0, return_inverse=True)
    inv = inv.ravel()
    nf = len(tm)
    Qb = G * (s[:, None] * s[None, :]) + np.eye(n) / (2 * C)
    Hb = np.linalg.inv(Qb)
    vb = Hb.sum(axis=2)
    allm = np.ones((nb, n), bool)
    A = _solve_l2svm_dual(Qb, Hb, vb, np.arange(nb), allm, allm, tol) > 0   # all-bouts active set
    bp = np.repeat(np.arange(nb), nf)
    a = _solve_l2svm_dual(Qb, Hb, vb, bp, A[bp], np.tile(tm, (nb, 1)), tol,
                          grid=(nb, nf)).reshape(nb, nf, n)
    f[:, folds] = np.einsum("bfi,i,bif->bf", a[:, inv], s, G[:, :, folds])
    return f


def _fold_setup(G, y, train):
    """Fold bookkeeping of the SVM path: sizes, +-1 targets, folds whose training set has both classes, NaN decisions."""
    nb, n, _ = G.shape
    s = np.where(y == 1, 1.0, -1.0)
    folds = np.flatnonzero([len(np.unique(y[t])) == 2 for t in train])
    return nb, n, s, folds, np.full((nb, n), np.nan)


def _decisions_ridge_hat(X, y, train, C, bucket=2):
    """Closed-form fast mode, all folds and bins at once by the ridge hat matrix (the default).

    Ridge least-squares classifier on +-1 targets (lambda = 1/C, the bias a constant feature,
    last in X; its weight direction is the shrinkage-LDA direction (S_w + lambda I)^-1
    (mu_a - mu_b)), computed without refitting per fold: with the hat matrix
    H = X (X'X + lambda I)^-1 X' and the all-bouts fit yhat = H s of one bin, the fit that
    leaves out a block R of bouts predicts on R (block leave-out identity for ridge):

        f_R = s_R - (I - H_RR)^-1 (s_R - yhat_R)

    R = the test bout and every bout the exclusion window drops (the complement of the
    fold's training set), so one small |R| x |R| solve per (bin, fold) gives the exact
    decision. H is formed in the primal (d <= bouts: one d x d Cholesky factorisation per
    bin, H = Y'Y with Y = L^-1 X') or else in the dual (H = I - lambda (XX' + lambda I)^-1). Folds are grouped by |R| rounded up to a
    multiple of `bucket` (padded with identity rows, which leaves the solution unchanged);
    each group's systems (I - H_RR is positive definite) are solved by a Cholesky
    factorisation vectorised over (bin, fold).
    X: (bin, bout, d) windows of the label set's bouts with the bias feature (1) last;
    y: (bout,) in {0, 1}; train: (fold=bout, bout) bool. Returns decisions (bin, bout),
    NaN where a fold's training set lacks a class.
    """
    nb, n, d = X.shape
    s = np.where(y == 1, 1.0, -1.0)
    f = np.full((nb, n), np.nan)
    pos1 = y == 1
    folds = np.flatnonzero((train & pos1).any(axis=1) & (train & ~pos1).any(axis=1))
    if len(folds) == 0:
        return f
    lam = 1.0 / C
    Xt = X.transpose(0, 2, 1)
    if d <= n:
        # per bin: X'X + lambda I = L L' (Cholesky), Y = L^-1 X', H = Y'Y (lower triangle only:
        # the solves below read only H_RR's lower triangle), yhat = Y'(Y s)
        from scipy.linalg import blas, lapack
        A = np.matmul(Xt, X) + lam * np.eye(d)
        H = np.empty((nb, n, n))
        yhat = np.empty((nb, n))
        for b in range(nb):
            L, info = lapack.dpotrf(A[b], lower=1)
            Y, info2 = lapack.dtrtrs(L, Xt[b], lower=1)
            if info or info2:
                raise np.linalg.LinAlgError(f"ridge system of bin {b} is not positive definite")
            H[b] = blas.dsyrk(1.0, Y, trans=1, lower=1)
            yhat[b] = Y.T @ (Y @ s)
    else:
        H = np.eye(n) - lam * np.linalg.inv(np.matmul(X, Xt) + lam * np.eye(n))
        yhat = np.einsum("bnm,m->bn", H, s)
    Hf, yf = H.reshape(-1), yhat.reshape(-1)
    R = ~train[folds]                                                            # includes the test bout
    size = -(-R.sum(axis=1) // bucket) * bucket
    for k in np.unique(size):
        g = size == k
        fj = folds[g]
        m = len(fj)
        order = np.argsort(~R[g], axis=1, kind="stable")[:, :k]                  # removed bouts first
        valid = np.take_along_axis(R[g], order, axis=1)                          # (m, k); False = padding
        E = np.where(valid, order, 0)
        pos = np.argmax(E == fj[:, None], axis=1)                                # test bout within E
        # batch-last (k, k, bin, m) gathers: every step of the solve is one vectorised operation
        base = (np.arange(nb) * n)[:, None]                                      # (bin, 1)
        ia, ic = np.tril_indices(k)
        pair = E[:, ia].T * n + E[:, ic].T                                       # (pairs, m)
        M = np.empty((k, k, nb, m))                                             # upper triangle never read
        M[ia, ic] = np.where((valid[:, ia].T & valid[:, ic].T)[:, None, :],
                             -np.take(Hf, base[None] * n + pair[:, None, :]), 0.0)   # lower triangle of -H_RR
        M[np.arange(k), np.arange(k)] += 1.0
        r = np.where(valid.T[:, None, :], s[E].T[:, None, :] - np.take(yf, base[None] + E.T[:, None, :]), 0.0)
        z = _chol_solve(M.reshape(k, k, nb * m), r.reshape(k, nb * m)).reshape(k, nb, m)
        f[:, fj] = s[fj] - z[pos, :, np.arange(m)].T
    return f


def _chol_solve(M, r):
    """Solve M x = r for a batch of symmetric positive-definite systems laid out batch-last.

    M: (k, k, batch), only its lower triangle is read; r: (k, batch). Cholesky M = L L',
    then forward and back substitution, each step one vectorised operation over the batch
    (k is small: the bouts within the exclusion window). Returns x (k, batch).
    """
    k = M.shape[0]
    L = np.zeros_like(M)
    for j in range(k):
        L[j, j] = np.sqrt(M[j, j] - (L[j, :j] ** 2).sum(axis=0)) if j else np.sqrt(M[j, j])
        if j + 1 < k:
            off = M[j + 1:, j] - (L[j + 1:, :j] * L[j, :j][None]).sum(axis=1) if j else M[j + 1:, j]
            L[j + 1:, j] = off / L[j, j]
    zf = np.empty_like(r)
    for j in range(k):
        zf[j] = ((r[j] - (L[j, :j] * zf[:j]).sum(axis=0)) if j else r[j]) / L[j, j]
    x = np.empty_like(r)
    for j in range(k - 1, -1, -1):
        x[j] = ((zf[j] - (L[j + 1:, j] * x[j + 1:]).sum(axis=0)) if j + 1 < k else zf[j]) / L[j, j]
    return x


def _decisions_ridge_naive(W, y, train, C, bias=1.0):
    """Reference loop of the closed-form mode: one scikit-learn `Ridge` per (fold, bin).

    Ridge(alpha = 1/C, no intercept) on [features, bias] with +-1 targets: the bias is a
    penalised feature, as in `_decisions_ridge_hat`. Returns decisions (bin, bout).
    """
    from sklearn.linear_model import Ridge
    s = np.where(y == 1, 1.0, -1.0)

    def fit_predict(Wb, tr, j):
        Xb = np.c_[Wb, np.full(len(Wb), bias)]
        return Ridge(alpha=1.0 / C, fit_intercept=False).fit(Xb[tr], s[tr]).predict(Xb[j:j + 1])[0]
    return _naive_loop(W, y, train, fit_predict)


def _auc_bins(y, f):
    """AUC per row of f (bin, bout) for labels y (1 = positive): Mann-Whitney from average ranks.

    Equals `auc_score` row by row (ties count half in both; the rank sum is a half-integer,
    exact in floating point).
    """
    from scipy.stats import rankdata
    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return np.full(f.shape[0], np.nan)
    r = rankdata(f, axis=1)
    return (r[:, pos].sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)


# ---------------------------------------------------------------- decoder ----

NULLS = ("shift", "permute")
# mode "lda": value of the constant bias feature. Its weight is penalised like the others, so a
# value c makes the intercept's effective penalty ridge / c^2 (1e-4 ridge here): the intercept is
# practically free, and the classes' threshold is not pulled toward 0 when both classes share a
# response (the SVM's bias, feature value 1, is penalised like a neuron)
_LDA_BIAS = 1.0
TOO_SHORT = "too short for the shift null"


@dataclass
class _LabelSet:
    idx: np.ndarray   # bouts used (indices into all kept bouts)
    y: np.ndarray     # their labels in {0, 1} (1 = class a)
    shift: int = 0    # circular shift (bins) of the activity against the events; 0 = observed


class TimeResolvedDecoder(BaseEstimator):
    """Time-resolved linear decoder of two event classes (METHODS.md section 5, template).

    Parameters
    ----------
    window : (float, float)  window around each event, s (default (-3, 3)).
    exclusion_s : float      training drops bouts starting within this time of the test bout, s.
    min_bouts : int          fewest bouts per class; fewer gives status "not enough bouts".
    n_repeats : int          class-balancing subsamples averaged for the observed curve.
    n_surrogates : int       surrogates of the null (each one balanced subsample, no repeats).
    null : "shift" | "permute"  "shift" (default): the activity is circularly shifted against the
                             event train (labels, bout times and their clustering kept);
                             "permute": labels permuted across bouts (holds only when bouts
                             are independent; see docs/decoders.md).
    min_shift_s : float      shifts are uniform on [min_shift_s, duration - min_shift_s], s.
    C : float                mode "svm": LinearSVC's C.
    mode : "lda" | "svm"     "lda" (default): ridge least-squares classifier on +-1 labels (the
                             shrinkage-LDA direction), exact leave-bouts-out from one hat matrix
                             per bin; "svm": the template's linear SVM (squared hinge). Same CV,
                             null and cluster test.
    ridge : float            mode "lda": ridge penalty lambda (lambda I added to X'X of the
                             training bouts' z-scored features and bias).
    alpha : float            family-wise level of the cluster test.
    cluster_q : float        per-bin null quantile that forms clusters.
    standardize : bool       z-score each feature over the session first (ddof=1).
    solver : "fast" | "naive"  batched exact solvers, or the reference loops: one LinearSVC ("svm")
                             or sklearn Ridge ("lda") per (label set, fold, bin).
    tol : float              dual optimality tolerance (naive: LinearSVC tol).
    n_jobs : int             joblib workers over surrogates.
    random_state : int | Generator | None   turned into a Generator at fit time (stats.as_rng).

    Fitted attributes: status_, detail_, time_bins_ (bin,) s, accuracy_, auc_ (bin,),
    null_accuracy_, null_auc_ (surrogate, bin), null_mean_ (bin,), null_band_ (2, bin)
    [2.5, 97.5] percentiles (accuracy), null_shifts_ (surrogate,) shifts in bins (null="shift";
    empty otherwise), cluster_threshold_ (bin,), clusters_ (list of dict: start_s, stop_s,
    start, stop, mass, p, significant), significant_bins_ (bin,) bool, n_bouts_ (a, b) after
    edge drops, n_dropped_edge_ (a, b), nan_fraction_ (bin,) fraction of window samples that
    were NaN, n_features_.
    """

    def __init__(self, window=(-3.0, 3.0), exclusion_s=15.0, min_bouts=4, n_repeats=50,
                 n_surrogates=500, null="shift", min_shift_s=15.0, C=1.0, mode="lda", ridge=100.0,
                 alpha=0.05, cluster_q=0.95, standardize=True, solver="fast", tol=1e-8, n_jobs=1, random_state=None):
        self.window = window
        self.exclusion_s = exclusion_s
        self.min_bouts = min_bouts
        self.n_repeats = n_repeats
        self.n_surrogates = n_surrogates
        self.null = null
        self.min_shift_s = min_shift_s
        self.C = C
        self.mode = mode
        self.ridge = ridge
        self.alpha = alpha
        self.cluster_q = cluster_q
        self.standardize = standardize
        self.solver = solver
        self.tol = tol
        self.n_jobs = n_jobs
        self.random_state = random_state

    # -- helpers
    def _check(self):
        if self.mode not in ("svm", "lda"):
            raise ValueError(f"TimeResolvedDecoder: mode must be 'svm' or 'lda', got {self.mode!r}")
        if self.solver not in ("fast", "naive"):
            raise ValueError(f"TimeResolvedDecoder: solver must be 'fast' or 'naive', got {self.solver!r}")
        if self.null not in NULLS:
            raise ValueError(f"TimeResolvedDecoder: null must be 'shift' or 'permute', got {self.null!r}")
        if self.min_bouts < 2:
            raise ValueError("TimeResolvedDecoder: min_bouts must be >= 2")

    @staticmethod
    def _balanced(rng, labels, n_min, shift=0):
        pa, pb = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
        idx = np.sort(np.r_[rng.choice(pa, n_min, replace=False), rng.choice(pb, n_min, replace=False)])
        return _LabelSet(idx, labels[idx], int(shift))

    def _label_sets(self, rng, n_a, n_b, T, dt, shifts):
        """Observed subsamples (n_repeats), then the surrogates, drawn in a fixed order.

        permute: each surrogate permutes the labels, then draws a balanced subsample.
        shift: the shifts (bins) are drawn first (unless given), then one balanced subsample
        of the true labels per surrogate. Returns (observed, surrogates, shifts) or
        (observed, None, None) when the recording is too short for the shift null.
        """
        n_min = min(n_a, n_b)
        lab = np.r_[np.ones(n_a, int), np.zeros(n_b, int)]
        obs = [self._balanced(rng, lab, n_min) for _ in range(self.n_repeats)]
        if self.null == "permute":
            return obs, [self._balanced(rng, rng.permutation(lab), n_min) for _ in range(self.n_surrogates)], \
                np.zeros(0, int)
        if shifts is None:
            lo = max(1, int(np.ceil(self.min_shift_s / dt)))
            hi = T - lo
            if hi < lo:
                return obs, None, None
            shifts = draw_shifts(rng, lo, hi, int(self.n_surrogates))
        shifts = np.asarray(shifts, int).ravel()
        return obs, [self._balanced(rng, lab, n_min, s) for s in shifts], shifts

    def _decisions(self, ls: _LabelSet, times, W, G, Z, rows):
        train = _train_masks(times[ls.idx], self.exclusion_s)
        if self.mode == "lda":
            # Z carries the bias feature (1) last here; windows (bin, bout, d) of this label set's
            # bouts, re-extracted from the shifted activity for a surrogate
            X1 = Z[(rows[ls.idx].T - ls.shift) % Z.shape[0]]
            if self.solver == "naive":
                return _decisions_ridge_naive(X1[:, :, :-1].transpose(1, 0, 2), ls.y, train, 1.0 / self.ridge,
                                              bias=X1[0, 0, -1])
            return _decisions_ridge_hat(X1, ls.y, train, 1.0 / self.ridge)
        if ls.shift:
            # the activity rolled by `shift` bins against the events: windows wrap around the recording
            W = Z[(rows[ls.idx] - ls.shift) % Z.shape[0]]
            Wt = np.ascontiguousarray(W.transpose(1, 0, 2))
            Gs = np.matmul(Wt, Wt.transpose(0, 2, 1)) + 1.0
            idx = np.arange(len(ls.idx))
        else:
            W, Gs, idx = W[ls.idx], G, ls.idx
        Gs = Gs[:, idx][:, :, idx]
        if self.solver == "naive":
            return _decisions_naive(W, ls.y, train, self.C, self.tol, max_iter=1_000_000)
        return _decisions_fast(Gs, ls.y, train, self.C, self.tol)

    def _score(self, ls, f):
        """Accuracy and AUC per bin of one label set's cross-validated decisions f (bin, bout)."""
        valid = np.isfinite(f[0])
        if not valid.any():
            nb = f.shape[0]
            return np.full(nb, np.nan), np.full(nb, np.nan)
        y, fv = ls.y[valid], f[:, valid]
        acc = ((fv > 0) == (y == 1)).mean(axis=1)
        return acc, _auc_bins(y, fv)

    def _run_sets(self, sets, times, W, G, Z, rows, progress=None):
        key_cache: dict = {}
        out = []
        for ls in sets:
            key = ls.idx.tobytes() + ls.y.tobytes() + str(ls.shift).encode()
            if key not in key_cache:   # identical subsamples (e.g. balanced classes) are fitted once
                key_cache[key] = self._score(ls, self._decisions(ls, times, W, G, Z, rows))
            out.append(key_cache[key])
            if progress is not None:
                progress(1)
        return out

    # -- main
    def fit(self, X, events_a, events_b, time=None, dt=None, shifts=None, progress=None):
        """Fit on activity X (time, feature) and event onset times (s) of class a and class b.

        time: (time,) bin centres in s (default (i + 0.5) * dt); dt: bin width in s
        (default: median diff of `time`). shifts: explicit surrogate schedule for
        null="shift", circular shifts of the activity in bins (one per surrogate; replaces
        n_surrogates and min_shift_s). progress: optional callable(n) told each time n label
        sets (observed repeats or surrogates) are done. Never raises on too few events or a
        short recording: see status_.
        """
        self._check()
        X = np.asarray(X, float)
        if X.ndim != 2:
            raise ValueError(f"TimeResolvedDecoder.fit: X must be 2-D (time, feature), got shape {X.shape}")
        T = X.shape[0]
        if time is None:
            if dt is None:
                raise ValueError("TimeResolvedDecoder.fit: give `time` (bin centres, s) or `dt` (bin width, s)")
            time = (np.arange(T) + 0.5) * dt
        time = np.asarray(time, float)
        if len(time) != T:
            raise ValueError(f"TimeResolvedDecoder.fit: len(time)={len(time)} != X.shape[0]={T}")
        if dt is None:
            dt = float(np.median(np.diff(time))) if T > 1 else 1.0
        if shifts is not None and self.null != "shift":
            raise ValueError("TimeResolvedDecoder.fit: `shifts` is the schedule of null='shift'")
        offsets = window_offsets(tuple(self.window), dt)
        self.time_bins_ = offsets * dt
        nb = len(offsets)
        rng = as_rng(self.random_state)

        ea = np.sort(np.asarray(events_a, float).ravel())
        eb = np.sort(np.asarray(events_b, float).ravel())
        ea, eb = ea[np.isfinite(ea)], eb[np.isfinite(eb)]
        Wa_keep = extract_windows(np.zeros((T, 0)), event_bins(ea, time, dt), offsets)[1]
        Wb_keep = extract_windows(np.zeros((T, 0)), event_bins(eb, time, dt), offsets)[1]
        self.n_dropped_edge_ = (int((~Wa_keep).sum()), int((~Wb_keep).sum()))
        ea, eb = ea[Wa_keep], eb[Wb_keep]
        self.n_bouts_ = (len(ea), len(eb))
        self._nan_result(nb)
        if min(self.n_bouts_) < self.min_bouts:
            self.status_ = NOT_ENOUGH
            self.detail_ = (f"{self.n_bouts_[0]} bouts of class a and {self.n_bouts_[1]} of class b inside the "
                            f"recording (need >= {self.min_bouts} each; {sum(self.n_dropped_edge_)} dropped at the edges)")
            return self

        times = np.r_[ea, eb]
        idx = event_bins(times, time, dt)
        rows = idx[:, None] + offsets[None, :]
        self.nan_fraction_ = np.isnan(X[rows]).mean(axis=(0, 2)) if X.shape[1] else np.zeros(nb)
        if self.standardize:
            Z, kept = standardize(X)
        else:
            Z, kept = np.nan_to_num(X, nan=0.0), np.ones(X.shape[1], bool)
        self.n_features_ = int(kept.sum())
        if self.n_features_ == 0:
            self.status_ = "no features"
            self.detail_ = "no feature with non-zero variance"
            return self
        W = G = None
        if self.mode == "svm":                                   # Gram matrices shared by the SVM's label sets
            W = Z[rows]                                          # (bout, bin, feature)
            Wt = np.ascontiguousarray(W.transpose(1, 0, 2))
            G = np.einsum("bif,bjf->bij", Wt, Wt) + 1.0         # bias as a constant feature of 1
        else:                                                    # the ridge path gathers windows itself
            Z = np.concatenate([Z, np.full((T, 1), _LDA_BIAS)], axis=1)     # bias as a constant feature
        obs_sets, sur_sets, sh = self._label_sets(rng, len(ea), len(eb), T, dt, shifts)
        if sur_sets is None:
            self.status_ = TOO_SHORT
            self.detail_ = (f"{T * dt:.0f} s of recording: shifts of at least min_shift_s = {self.min_shift_s} s "
                            "from both ends leave no room")
            return self
        self.null_shifts_ = sh

        obs = self._run_sets(obs_sets, times, W, G, Z, rows, progress)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            self.accuracy_ = np.nanmean([o[0] for o in obs], axis=0)
            self.auc_ = np.nanmean([o[1] for o in obs], axis=0)
        if sur_sets:
            if self.n_jobs == 1 or len(sur_sets) < 8:
                sur = self._run_sets(sur_sets, times, W, G, Z, rows, progress)
            else:
                from joblib import Parallel, delayed
                chunks = [c for c in np.array_split(np.arange(len(sur_sets)), self.n_jobs * 4) if len(c)]
                parts = Parallel(n_jobs=self.n_jobs, return_as="generator")(
                    delayed(self._run_sets)([sur_sets[i] for i in c], times, W, G, Z, rows) for c in chunks)
                sur = []
                for c, part in zip(chunks, parts):
                    sur += part
                    if progress is not None:
                        progress(len(c))
            self.null_accuracy_ = np.array([s[0] for s in sur])
            self.null_auc_ = np.array([s[1] for s in sur])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                self.null_mean_ = np.nanmean(self.null_accuracy_, axis=0)
                self.null_band_ = np.nanpercentile(self.null_accuracy_, [2.5, 97.5], axis=0)
            clusters, thr, _ = cluster_test(self.accuracy_, self.null_accuracy_, self.cluster_q)
            self.cluster_threshold_ = thr
            self.clusters_ = []
            for c in clusters:
                sig = c["p"] <= self.alpha
                self.clusters_.append(dict(start_s=float(self.time_bins_[c["start"]]),
                                           stop_s=float(self.time_bins_[c["stop"] - 1]),
                                           start=c["start"], stop=c["stop"], mass=c["mass"],
                                           p=c["p"], significant=sig))
                if sig:
                    self.significant_bins_[c["start"]:c["stop"]] = True
        self.status_ = "ok"
        self.detail_ = f"{len(ea)} vs {len(eb)} bouts, {self.n_features_} features"
        return self

    def significant_windows(self) -> list[tuple[float, float]]:
        """(start_s, stop_s) of every significant cluster (bin centres, s relative to the event)."""
        check_is_fitted(self, "status_")
        return [(c["start_s"], c["stop_s"]) for c in self.clusters_ if c["significant"]]

    def _nan_result(self, nb):
        nan = np.full(nb, np.nan)
        self.accuracy_, self.auc_ = nan.copy(), nan.copy()
        self.null_accuracy_ = np.full((0, nb), np.nan)
        self.null_auc_ = np.full((0, nb), np.nan)
        self.null_mean_ = nan.copy()
        self.null_band_ = np.full((2, nb), np.nan)
        self.null_shifts_ = np.zeros(0, int)
        self.cluster_threshold_ = nan.copy()
        self.clusters_ = []
        self.significant_bins_ = np.zeros(nb, bool)
        self.nan_fraction_ = nan.copy()
        self.n_features_ = 0


# ------------------------------------------------------------- contrasts ----

_CONTRAST = re.compile(r"^\s*([A-Za-z]+)\s*:\s*([\w.\-]+)(?:@(start|stop|mid))?\s+vs\s+"
                       r"([A-Za-z]+)\s*:\s*([\w.\-]+)(?:@(start|stop|mid))?\s*$")


@dataclass(frozen=True)
class EventSpec:
    who: str        # "self", "partner", "A" or "B"
    behavior: str
    anchor: str     # "start", "stop" or "mid"

    def animal(self, decoded: str, partner: str) -> str:
        return {"self": decoded, "partner": partner}.get(self.who, self.who)

    def __str__(self):
        return f"{self.who}:{self.behavior}" + ("" if self.anchor == "start" else f"@{self.anchor}")


def parse_contrast(text: str) -> tuple[EventSpec, EventSpec]:
    """Parse 'WHO:BEHAVIOR[@ANCHOR] vs WHO:BEHAVIOR[@ANCHOR]'.

    WHO is self, partner (relative to the decoded animal) or an animal role (A, B);
    ANCHOR is the event time used: start (default), stop or mid of each bout.
    Example: 'self:poke vs partner:poke', 'A:hold@mid vs A:poke'.
    """
    m = _CONTRAST.match(text)
    if not m:
        raise ValueError(f"decoding contrast {text!r}: expected 'WHO:BEHAVIOR[@start|stop|mid] vs "
                         "WHO:BEHAVIOR[@...]' with WHO = self, partner, A or B (e.g. 'self:poke vs partner:poke')")
    wa, ba, aa, wb, bb, ab = m.groups()
    for w in (wa, wb):
        if w not in ("self", "partner", "A", "B"):
            raise ValueError(f"decoding contrast {text!r}: WHO must be self, partner, A or B, got {w!r}")
    return EventSpec(wa, ba, aa or "start"), EventSpec(wb, bb, ab or "start")


def event_times(events, animal: str, spec: EventSpec) -> np.ndarray:
    """Anchor times (s) of one animal's bouts of spec.behavior from an event table.

    events: DataFrame with columns animal, behavior, start, stop (s, master clock).
    """
    sel = events[(events["animal"] == animal) & (events["behavior"] == spec.behavior)]
    st, sp = sel["start"].to_numpy(float), sel["stop"].to_numpy(float)
    t = {"start": st, "stop": sp, "mid": (st + sp) / 2}[spec.anchor]
    return np.sort(t)


def hold_events(events, animal: str, anchor: str = "start", guard_s: float = 1.0) -> np.ndarray:
    """Hold events: anchors of the animal's 'hold' bouts with no own 'poke' within +-guard_s.

    The guard keeps a hold window from being aligned on (almost) the same moment as a
    proceed (poke) event, so 'hold' means waiting, not the run-up to a poke.
    """
    t = event_times(events, animal, EventSpec(animal, "hold", anchor))
    pokes = event_times(events, animal, EventSpec(animal, "poke", "start"))
    if len(pokes) == 0 or len(t) == 0:
        return t
    d = np.abs(t[:, None] - pokes[None, :]).min(axis=1)
    return t[d > guard_s]
