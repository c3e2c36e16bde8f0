"""Single-neuron encoding by auROC against circular-shift nulls (METHODS.md section 3).

`AurocEncoder` computes, for every neuron x behaviour, the auROC of the
behaviour's logical vector (labels) against the z-scored trace (score), and a
null of 2000 circular shifts of the trace, with shifts uniform on
[min_shift + 1, L - min_shift] drawn once per behaviour and used for every
neuron. Classification: activated (auROC > 0.5) or suppressed (< 0.5) with
two-sided p = min(1, 2 min(p_hi, p_lo)) <= alpha.

Speed: the auROC is the Mann-Whitney statistic, (R - n1 (n1 + 1) / 2) / (n1 n0),
with R the sum of the trace's midranks over positive frames (ties give 0.5,
as sklearn's roc_auc_score). Ranks of a rolled trace are the rolled ranks, so
R for every shift is one circular cross-correlation of the rank vector with the
label vector: one FFT per neuron and behaviour gives all shifts. R is a sum of
half-integers, so it is rounded back to the exact half-integer after the FFT.
"""
from __future__ import annotations

import numpy as np
import scipy.fft as sfft
from scipy.stats import rankdata
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from pipeline.analysis.stats import AnalysisInputError, as_matrix, as_rng, bh_fdr, draw_shifts, zscore

__all__ = ["AurocEncoder", "other_baseline", "derive"]


def derive(behaviors: np.ndarray, names, derived: dict) -> tuple[np.ndarray, list[str]]:
    """Append derived behaviours (OR of named behaviours) as new columns.

    behaviors: (T, M) bool; derived: {name: [behaviour, ...]}. Unknown members are an error.
    """
    B = np.asarray(behaviors, dtype=bool)
    names = list(names)
    cols = [B]
    for dname, members in derived.items():
        missing = [m for m in members if m not in names]
        if missing:
            raise AnalysisInputError(f"derived behaviour {dname!r}: unknown member(s) {missing}; known {names}")
        cols.append(B[:, [names.index(m) for m in members]].any(axis=1)[:, None])
    return np.concatenate(cols, axis=1), names + list(derived)


def other_baseline(self_beh: np.ndarray, partner_beh: np.ndarray, names, derived_names=(),
                   other_label: str = "other") -> np.ndarray:
    """Frames eligible as negatives for baseline="other": (T, M) bool.

    Plain behaviour: frames where both animals are labelled `other_label`.
    Derived behaviour (name in `derived_names`): frames where neither animal shows any
    derived behaviour. self_beh, partner_beh: (T, M) bool with columns `names`.
    """
    S, P = np.asarray(self_beh, bool), np.asarray(partner_beh, bool)
    names = list(names)
    if S.shape != P.shape or S.shape[1] != len(names):
        raise AnalysisInputError(f"self/partner behaviours must both be (T, {len(names)}), got {S.shape}, {P.shape}")
    dcols = [names.index(d) for d in derived_names if d in names]
    plain_base = None
    if other_label in names:
        o = names.index(other_label)
        plain_base = S[:, o] & P[:, o]
    derived_base = ~(S[:, dcols].any(axis=1) | P[:, dcols].any(axis=1)) if dcols else None
    out = np.zeros_like(S)
    for j, n in enumerate(names):
        if j in dcols:
            out[:, j] = derived_base
        elif plain_base is not None:
            out[:, j] = plain_base
        else:
            raise AnalysisInputError(
                f"baseline='other' needs a behaviour labelled {other_label!r} (behaviour {n!r}); have {names}")
    return out


class AurocEncoder(BaseEstimator):
    """auROC encoding of behaviours by single neurons with a circular-shift null.

    Parameters
    ----------
    n_surrogates : shifts per behaviour (reference 2000).
    min_shift : shifts are uniform on [min_shift + 1, L - min_shift] (reference 60 frames).
    baseline : "all" frames, or "other" (negatives restricted to `baseline_frames` given to fit;
        the analysis runs on the concatenated subset of positive + baseline frames).
    alpha : two-sided p cut-off.
    fdr : classify on Benjamini-Hochberg q (across neurons x behaviours) instead of p.
    store_null : keep the (N, M, n_surrogates) null auROCs in `null_`.
    random_state : seed or Generator; one shift sequence is drawn per behaviour, in column order.

    Fitted attributes
    -----------------
    auroc_, p_, q_ (N, M); activated_, suppressed_ (N, M) bool; shifts_ (M, n) (-1 where skipped);
    n_frames_ (M,) L; fraction_activated_, fraction_suppressed_ (M,) over kept neurons;
    null_fraction_activated_, null_fraction_suppressed_ (M,): the same fractions for the null's
    own surrogates (each tested against the others), i.e. the false-positive rate the shift null
    itself produces (null_rate_activated_, null_rate_suppressed_ (N, M) per neuron); excluded_ zero-variance neurons (NaN rows); skipped_ {behaviour: reason}.
    """

    def __init__(self, n_surrogates: int = 2000, min_shift: int = 60, baseline: str = "all",
                 alpha: float = 0.05, fdr: bool = False, store_null: bool = False, random_state=None):
        self.n_surrogates = n_surrogates
        self.min_shift = min_shift
        self.baseline = baseline
        self.alpha = alpha
        self.fdr = fdr
        self.store_null = store_null
        self.random_state = random_state

    def fit(self, Z, behaviors, names=None, role: str = "self", baseline_frames=None, shifts=None):
        """Z: (T, N) activity; behaviors: (T, M) bool; names: M labels; role: "self" or "partner".

        baseline_frames: (T, M) bool, required for baseline="other" (see `other_baseline`).
        shifts: optional (M, n) explicit shifts in frames (instead of n_surrogates drawn from
        random_state), e.g. another implementation's; a behaviour whose frames leave no shift
        range is skipped either way (its row of `shifts_` is -1). Returns self.
        """
        if self.baseline not in ("all", "other"):
            raise ValueError(f"baseline must be 'all' or 'other', got {self.baseline!r}")
        X = as_matrix(Z, "Z")
        Y = np.asarray(behaviors)
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.shape[0] != X.shape[0]:
            raise AnalysisInputError(f"behaviors has {Y.shape[0]} time bins, Z has {X.shape[0]}")
        if Y.dtype != bool:
            if not np.isin(Y, (0, 1)).all():
                raise AnalysisInputError("behaviors must be a boolean (or 0/1) matrix [time x behaviours]")
            Y = Y.astype(bool)
        T, N = X.shape
        M = Y.shape[1]
        names = [f"b{j}" for j in range(M)] if names is None else [str(n) for n in names]
        if len(names) != M:
            raise AnalysisInputError(f"names has {len(names)} entries for {M} behaviour columns")
        if self.baseline == "other":
            if baseline_frames is None:
                raise AnalysisInputError("baseline='other' needs baseline_frames (T x M bool); see other_baseline()")
            base = np.asarray(baseline_frames, dtype=bool)
            if base.shape != Y.shape:
                raise AnalysisInputError(f"baseline_frames must have shape {Y.shape}, got {base.shape}")
        Zk, excluded = zscore(X, "Z")
        kept = np.setdiff1d(np.arange(N), excluded)
        self.excluded_, self.names_, self.role_ = excluded, names, role
        n = int(self.n_surrogates) if shifts is None else np.asarray(shifts).shape[1]
        rng = as_rng(self.random_state)
        auroc = np.full((N, M), np.nan)
        p = np.full((N, M), np.nan)
        fa0 = np.full(M, np.nan)
        fs0 = np.full(M, np.nan)
        nfa = np.full(M, np.nan)
        nfs = np.full(M, np.nan)
        all_shifts = np.full((M, n), -1, dtype=np.int64)
        n_frames = np.zeros(M, dtype=int)
        null_store = np.full((N, M, n), np.nan) if self.store_null else None
        rate_a = np.full((N, M), np.nan)
        rate_s = np.full((N, M), np.nan)
        skipped = {}
        ranks_all = rankdata(Zk, axis=0) if self.baseline == "all" else None
        for j in range(M):
            sub = np.ones(T, bool) if self.baseline == "all" else (Y[:, j] | base[:, j])
            y = Y[sub, j]
            L = y.size
            n_frames[j] = L
            n1 = int(y.sum())
            n0 = L - n1
            lo, hi = int(self.min_shift) + 1, L - int(self.min_shift)
            if hi < lo:     # too short for the guard, whether the shifts are drawn or given
                skipped[names[j]] = f"{L} frames leave no shift in [{lo}, {hi}]"
                continue
            if shifts is None:
                sh = draw_shifts(rng, lo, hi, n)   # drawn even for one-class behaviours: stable streams
            else:
                sh = np.asarray(shifts)[j].astype(np.int64)
            all_shifts[j] = sh
            if n1 == 0 or n0 == 0:
                skipped[names[j]] = "no positive frames" if n1 == 0 else "no negative frames"
                continue
            ranks = ranks_all if ranks_all is not None else rankdata(Zk[sub], axis=0)
            # 2R is an integer: work in doubled rank sums so comparisons are exact
            R2 = np.rint(2 * (y @ ranks))
            full = sfft.irfft(sfft.rfft(y.astype(float))[None, :] * sfft.rfft(ranks.T, axis=-1).conj(),
                              n=L, axis=-1)
            null2 = np.rint(2 * full[:, sh % L])                         # (N_kept, n)
            norm = 2.0 * n1 * n0
            off = n1 * (n1 + 1)
            obs = (R2 - off) / norm
            nul = (null2 - off) / norm
            p_hi = ((null2 >= R2[:, None]).sum(1) + 1) / (n + 1)
            p_lo = ((null2 <= R2[:, None]).sum(1) + 1) / (n + 1)
            auroc[kept, j] = obs
            p[kept, j] = np.minimum(1.0, 2 * np.minimum(p_hi, p_lo))
            if null_store is not None:
                null_store[kept, j] = nul
            # the null's own false-positive rate: each surrogate against the others
            srt = np.sort(null2, axis=1)
            ge = np.stack([n - np.searchsorted(srt[i], null2[i], "left") for i in range(srt.shape[0])])
            le = np.stack([np.searchsorted(srt[i], null2[i], "right") for i in range(srt.shape[0])])
            pn = np.minimum(1.0, 2 * np.minimum(ge, le) / n)
            rate_a[kept, j] = np.mean((nul > 0.5) & (pn <= self.alpha), axis=1)
            rate_s[kept, j] = np.mean((nul < 0.5) & (pn <= self.alpha), axis=1)
            nfa[j] = rate_a[kept, j].mean()
            nfs[j] = rate_s[kept, j].mean()
        q = bh_fdr(p)
        crit = q if self.fdr else p
        with np.errstate(invalid="ignore"):
            sig = crit <= self.alpha
            self.activated_ = sig & (auroc > 0.5)
            self.suppressed_ = sig & (auroc < 0.5)
        for j in range(M):
            if np.isfinite(auroc[kept, j]).any():
                fa0[j] = self.activated_[kept, j].mean()
                fs0[j] = self.suppressed_[kept, j].mean()
        self.auroc_, self.p_, self.q_ = auroc, p, q
        self.shifts_, self.n_frames_, self.skipped_ = all_shifts, n_frames, skipped
        self.fraction_activated_, self.fraction_suppressed_ = fa0, fs0
        self.null_fraction_activated_, self.null_fraction_suppressed_ = nfa, nfs
        self.null_rate_activated_, self.null_rate_suppressed_ = rate_a, rate_s
        if null_store is not None:
            self.null_ = null_store
        return self

    def classes(self) -> np.ndarray:
        """(N, M) strings: 'activated', 'suppressed' or 'none'."""
        check_is_fitted(self)
        out = np.full(self.auroc_.shape, "none", dtype=object)
        out[self.activated_] = "activated"
        out[self.suppressed_] = "suppressed"
        return out.astype(str)
