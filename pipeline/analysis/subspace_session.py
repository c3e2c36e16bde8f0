"""PLSC shared/unique subspaces over a whole pair session (docs/subspace.md).

`subspace_session(tree, params, rng, warn)` reads /A/activity and /B/activity (and
/A/behavior for regress_behavior) from a result DataTree, applies the NaN-bin rule and
the confound controls, fits `SharedSubspace`, and returns the /subspace groups:

- /subspace: per-dimension cov, r, thresholds, significance and the surrogate nulls
  (dims `dim`, `surrogate`), with the cross-validated shared correlation;
- /subspace/A, /subspace/B: loadings on dims (`neuron`, `shared_dim` | `unique_dim`) and the
  projection on shared dimension 1 over `time` (s);
- /subspace/by_cell_type: the neuron-count-matched comparison of cell types (optional).
"""
from __future__ import annotations

import json
from typing import Callable

import numpy as np
import xarray as xr

from pipeline.analysis import subspace as sub
from pipeline.analysis.activity import bin_width, fill_nan_bins, read_activity
from pipeline.analysis.stats import AnalysisInputError
from pipeline.core.animals import ANIMALS

__all__ = ["subspace_session"]


def _neuron_coords(da: xr.DataArray) -> dict:
    return {c: ("neuron", da[c].values) for c in ("roi_id", "cell_type") if c in da.coords}


def _activity(tree: xr.DataTree, p: dict, warn) -> tuple[dict, np.ndarray, dict, np.ndarray, int]:
    """(activity DataArrays, time (T,) s, {animal: (T_used, N) float}, used bins (T,) bool, number of NaN bins).

    NaN bins (dropped frames in either animal) are dropped or interpolated (`nan_bins`); then
    behaviour is regressed out and slow drift removed when asked.
    """
    act = {a: read_activity(tree, a) for a in ANIMALS}
    time = act["A"]["time"].values
    if act["B"].sizes["time"] != time.size:
        raise AnalysisInputError(f"/A/activity has {time.size} bins and /B/activity {act['B'].sizes['time']}")
    dt = bin_width(time)
    X = {a: np.asarray(act[a].values, float) for a in ANIMALS}
    finite = np.isfinite(X["A"]).all(1) & np.isfinite(X["B"]).all(1)
    n_nan = int((~finite).sum())
    if p["nan_bins"] == "drop":
        use = finite
        X = {a: X[a][use] for a in ANIMALS}
    else:
        use = np.ones(time.size, bool)
        X = {a: fill_nan_bins(X[a]) for a in ANIMALS}
    if n_nan:
        warn(f"{n_nan} of {time.size} time bins have NaN (dropped frames); nan_bins = {p['nan_bins']!r}")
    if p["regress_behavior"]:
        try:
            beh = tree["/A/behavior"].to_dataset()
            cov = np.concatenate([beh["self"].values, beh["partner"].values], 0).T.astype(float)[use]
        except KeyError:
            raise AnalysisInputError("regress_behavior = true but there is no /A/behavior group") from None
        cov = cov[:, cov.std(0) > 0]
        X = {a: sub.regress_out(X[a], cov) for a in ANIMALS}
    if p["detrend_s"] > 0:
        X = {a: sub.detrend(X[a], int(round(p["detrend_s"] / dt))) for a in ANIMALS}
    return act, time, X, use, n_nan


def _summary(est: sub.SharedSubspace, X: dict, p: dict, lag: int, dt: float, n_nan: int, warn) -> xr.Dataset:
    """/subspace: the per-dimension statistics, nulls and the cross-validated correlation."""
    D = est.cov_.size
    attrs = {"K": est.n_shared_, "n_surrogates": int(est.shifts_.size), "lag": lag, "lag_s": p["lag_s"],
             "percentile": p["percentile"], "null": p["null"], "n_null_dims": int(est.n_null_dims_),
             "n_time": int(est.n_time_), "n_nan_bins": n_nan, "bin_s": dt,
             "nan_rule": ("time bins with NaN in any neuron of either animal are dropped and the rest "
                          "concatenated" if p["nan_bins"] == "drop" else "NaN bins linearly interpolated"),
             "detrend_s": p["detrend_s"], "regress_behavior": int(p["regress_behavior"])}
    top = xr.Dataset(
        {"cov": ("dim", est.cov_), "r": ("dim", est.r_),
         "cov_threshold": ("dim", est.cov_threshold_), "r_threshold": ("dim", est.r_threshold_),
         "significant": ("dim", est.significant_),
         "cov_null": (("surrogate", "dim"), est.cov_null_), "r_null": (("surrogate", "dim"), est.r_null_),
         "shift": ("surrogate", est.shifts_)},
        coords={"dim": np.arange(1, D + 1)}, attrs=attrs)
    block = int(round(p["cv_block_s"] / dt))
    try:
        cv = sub.cross_validated_r(X["A"], X["B"], n_folds=p["cv_folds"], block=block)
        top["cv_r"] = ("dim", np.nanmean(cv, 0)[:D])
        top.attrs["cv_rule"] = f"blocked {p['cv_folds']}-fold, blocks of {block} bins ({p['cv_block_s']} s)"
    except AnalysisInputError as exc:
        warn(f"cross-validated shared correlation skipped: {exc}")
    return top


def _animal(est: sub.SharedSubspace, a: str, act: xr.DataArray, time: np.ndarray, use: np.ndarray,
            projection: np.ndarray) -> xr.Dataset:
    """/subspace/<a>: loadings on every neuron of `act` (NaN rows for excluded ones) and the projection."""
    s = est.side(a)
    K = est.n_shared_
    n_all = act.sizes["neuron"]
    kept = s["kept"]
    N = kept.size

    def full(M, ncol):
        F = np.full((n_all, ncol), np.nan)
        F[kept] = M
        return F
    series = np.full(time.size, np.nan)
    if K:
        series[use] = projection[:, 0]
    ul = s["unique_loadings"]
    excl = np.zeros(n_all, bool)
    excl[s["excluded"]] = True
    return xr.Dataset(
        {"shared_loadings": (("neuron", "shared_dim"), full(s["loadings"][:, :K], K)),
         "unique_loadings": (("neuron", "unique_dim"), full(ul, ul.shape[1])),
         "unique_coef": (("unique_basis", "unique_dim"), s["unique_coef"]),
         "unique_variance": ("unique_dim", s["unique_latent"]),
         "excluded": ("neuron", excl),
         "shared_variance_fraction": ((), s["shared_variance_fraction"]),
         "projection": ("time", series, {"long_name": "projection on shared dimension 1 (z units)"})},
        coords={"time": ("time", time, {"units": "s"}), **_neuron_coords(act),
                "shared_dim": np.arange(1, K + 1), "unique_dim": np.arange(1, ul.shape[1] + 1),
                "unique_basis": np.arange(K + 1, N + 1)},
        attrs={"animal": a, "K": K})


def _by_cell_type(act: dict, X: dict, p: dict, lag: int, random_state) -> xr.Dataset:
    """/subspace/by_cell_type: count-matched K and shared fraction per (animal, cell type)."""
    types = {a: (act[a]["cell_type"].values.astype(str) if "cell_type" in act[a].coords
                 else np.full(act[a].sizes["neuron"], "unknown")) for a in ANIMALS}
    cm = sub.count_matched(X["A"], X["B"], types["A"], types["B"], n_subsamples=p["n_subsamples"],
                           min_neurons=p["min_type_neurons"], random_state=random_state,
                           n_surrogates=p["cell_type_surrogates"], lag=lag, percentile=p["percentile"])
    types_u = sorted(set(cm.cell_type.tolist()))
    n_draw = max(int((cm.cell_type == t).sum()) for t in types_u)
    pooled = {k: np.full((len(types_u), n_draw), np.nan) for k in ("shared_fraction", "n_shared")}
    for ti, t in enumerate(types_u):
        sel = cm.cell_type == t
        pooled["shared_fraction"][ti, :sel.sum()] = cm.shared_fraction[sel]
        pooled["n_shared"][ti, :sel.sum()] = cm.n_shared[sel]
    return xr.Dataset(
        {"animal": ("sample", cm.animal.astype(str)), "population": ("sample", cm.cell_type.astype(str)),
         "repeat": ("sample", cm.repeat), "n_shared_sample": ("sample", cm.n_shared),
         "shared_fraction_sample": ("sample", cm.shared_fraction),
         "shared_fraction": (("cell_type", "draw"), pooled["shared_fraction"],
                             {"long_name": "count-matched shared-variance fraction, pooled over animals"}),
         "n_shared": (("cell_type", "draw"), pooled["n_shared"])},
        coords={"cell_type": np.array(types_u, dtype=object)},
        attrs={"n_neurons": cm.n_neurons, "n_time": cm.n_time, "n_surrogates": p["cell_type_surrogates"],
               "rule": "per (animal, cell type): n neurons of that type vs n neurons of the partner, "
                       "repeated subsampling, same T; K and the animal's shared-variance fraction; "
                       "(cell_type, draw) arrays pool both animals, NaN-padded",
               "groups": json.dumps(sorted({f"{a}:{c}" for a, c in zip(cm.animal, cm.cell_type)}))})


def subspace_session(tree: xr.DataTree, params: dict, rng: Callable[[str], np.random.Generator],
                     warn: Callable[[str], None] | None = None) -> dict[str, xr.Dataset]:
    """The /subspace groups of one pair session: {"/subspace": ..., "/subspace/A": ..., ...}.

    tree: a result DataTree with /A/activity and /B/activity (neuron, time) on one time base.
    params: the validated [subspace] section.
    rng: named random streams, rng(name) -> numpy Generator: "shifts" draws the surrogate
        shifts, "cell_type" the count-matched subsamples (the stage passes StageContext.rng).
    warn: called with one line per recoverable problem (NaN bins, excluded neurons, skipped parts).
    """
    warn = warn or (lambda msg: None)
    p = params
    act, time, X, use, n_nan = _activity(tree, p, warn)
    dt = bin_width(time)
    lag = int(round(p["lag_s"] / dt))
    est = sub.SharedSubspace(n_surrogates=p["n_surrogates"], lag=lag, percentile=p["percentile"],
                             random_state=rng("shifts"), null=p["null"]).fit(X["A"], X["B"])
    for a in ANIMALS:
        ex = est.side(a)["excluded"]
        if ex.size:
            warn(f"animal {a}: {ex.size} zero-variance neuron(s) left out of PLSC (indices {ex[:10].tolist()})")
    out = {"/subspace": _summary(est, X, p, lag, dt, n_nan, warn)}
    proj = dict(zip(ANIMALS, est.transform(X["A"], X["B"])))
    for a in ANIMALS:
        out[f"/subspace/{a}"] = _animal(est, a, act[a], time, use, proj[a])
    if p["by_cell_type"]:
        try:
            out["/subspace/by_cell_type"] = _by_cell_type(act, X, p, lag, rng("cell_type"))
        except AnalysisInputError as exc:
            warn(f"count-matched cell-type comparison skipped: {exc}")
    return out
