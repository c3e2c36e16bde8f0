"""Stage `subspace`: PLSC shared/unique inter-brain subspaces (pipeline/analysis/subspace.py).

Reads /A/activity, /B/activity (and /A/behavior for regress_behavior); writes
/subspace, /subspace/A, /subspace/B and /subspace/by_cell_type. See docs/subspace.md.
"""
from __future__ import annotations

import json

import numpy as np
import xarray as xr

from pipeline.analysis import subspace as sub
from pipeline.core.orchestrate import stage
from pipeline.analysis.activity import bin_width, fill_nan_bins, read_activity
from pipeline.analysis.stats import AnalysisInputError
from pipeline.core.animals import ANIMALS


def _neuron_coords(da: xr.DataArray) -> dict:
    return {c: ("neuron", da[c].values) for c in ("roi_id", "cell_type") if c in da.coords}


@stage("subspace", needs=("align",), params=("subspace",), version="1", reads=("session.seed",))
def run(ctx):
    p = ctx.params["subspace"]
    tree = ctx.upstream()
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
        ctx.warn(f"{n_nan} of {time.size} time bins have NaN (dropped frames); nan_bins = {p['nan_bins']!r}")
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

    lag = int(round(p["lag_s"] / dt))
    est = sub.SharedSubspace(n_surrogates=p["n_surrogates"], lag=lag, percentile=p["percentile"],
                             random_state=ctx.rng("shifts"), null=p["null"]).fit(X["A"], X["B"])
    K = est.n_shared_
    D = est.cov_.size
    for a, ex in (("A", est.excluded_A_), ("B", est.excluded_B_)):
        if ex.size:
            ctx.warn(f"animal {a}: {ex.size} zero-variance neuron(s) left out of PLSC (indices {ex[:10].tolist()})")

    attrs = {"K": K, "n_surrogates": int(est.shifts_.size), "lag": lag, "lag_s": p["lag_s"],
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
        ctx.warn(f"cross-validated shared correlation skipped: {exc}")
    out = {"/subspace": top}

    proj_A, proj_B = est.transform(X["A"], X["B"])
    for a, W, P in (("A", est.U_, proj_A), ("B", est.V_, proj_B)):
        n_all = act[a].sizes["neuron"]
        kept = getattr(est, f"kept_{a}_")
        N = kept.size

        def full(M, ncol):
            F = np.full((n_all, ncol), np.nan)
            F[kept] = M
            return F
        series = np.full(time.size, np.nan)
        if K:
            series[use] = P[:, 0]
        ul = getattr(est, f"unique_loadings_{a}_")
        excl = np.zeros(n_all, bool)
        excl[getattr(est, f"excluded_{a}_")] = True
        ds = xr.Dataset(
            {"shared_loadings": (("neuron", "shared_dim"), full(W[:, :K], K)),
             "unique_loadings": (("neuron", "unique_dim"), full(ul, ul.shape[1])),
             "unique_coef": (("unique_basis", "unique_dim"), getattr(est, f"unique_coef_{a}_")),
             "unique_variance": ("unique_dim", getattr(est, f"unique_latent_{a}_")),
             "excluded": ("neuron", excl),
             "shared_variance_fraction": ((), est.shared_variance_fraction_[a]),
             "projection": ("time", series, {"long_name": "projection on shared dimension 1 (z units)"})},
            coords={"time": ("time", time, {"units": "s"}), **_neuron_coords(act[a]),
                    "shared_dim": np.arange(1, K + 1), "unique_dim": np.arange(1, ul.shape[1] + 1),
                    "unique_basis": np.arange(K + 1, N + 1)},
            attrs={"animal": a, "K": K})
        out[f"/subspace/{a}"] = ds

    if p["by_cell_type"]:
        types = {a: (act[a]["cell_type"].values.astype(str) if "cell_type" in act[a].coords
                     else np.full(act[a].sizes["neuron"], "unknown")) for a in ANIMALS}
        try:
            cm = sub.count_matched(X["A"], X["B"], types["A"], types["B"], n_subsamples=p["n_subsamples"],
                                   min_neurons=p["min_type_neurons"], random_state=ctx.rng("cell_type"),
                                   n_surrogates=p["cell_type_surrogates"], lag=lag, percentile=p["percentile"])
            types_u = sorted(set(cm.cell_type.tolist()))
            n_draw = max(int((cm.cell_type == t).sum()) for t in types_u)
            pooled = {k: np.full((len(types_u), n_draw), np.nan) for k in ("shared_fraction", "n_shared")}
            for ti, t in enumerate(types_u):
                sel = cm.cell_type == t
                pooled["shared_fraction"][ti, :sel.sum()] = cm.shared_fraction[sel]
                pooled["n_shared"][ti, :sel.sum()] = cm.n_shared[sel]
            out["/subspace/by_cell_type"] = xr.Dataset(
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
        except AnalysisInputError as exc:
            ctx.warn(f"count-matched cell-type comparison skipped: {exc}")
    return xr.DataTree.from_dict(out)
