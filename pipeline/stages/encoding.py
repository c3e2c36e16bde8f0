"""Stage `encoding`: single-neuron auROC encoding of self and partner behaviour (pipeline/analysis/encoding.py).

Reads /A/activity, /A/behavior (and B's); writes /encoding/A and /encoding/B.
See docs/encoding.md.
"""
from __future__ import annotations

import json

import numpy as np
import xarray as xr

from pipeline.analysis.encoding import AurocEncoder, other_baseline
from pipeline.core.orchestrate import stage
from pipeline.analysis.activity import bin_width, read_activity
from pipeline.analysis.stats import AnalysisInputError
from pipeline.core.animals import ANIMALS

ROLES = ("self", "partner")


@stage("encoding", needs=("align",), params=("encoding", "behavior"), version="1", reads=("session.seed",))
def run(ctx):
    p = ctx.params["encoding"]
    derived = list((ctx.params.get("behavior") or {}).get("derived", {}) or {})
    tree = ctx.upstream()
    out = {}
    for a in ANIMALS:
        act = read_activity(tree, a)
        try:
            beh = tree[f"/{a}/behavior"].to_dataset()
        except KeyError:
            raise AnalysisInputError(f"no /{a}/behavior: the align stage wrote no behaviour for animal {a}") from None
        names = [str(n) for n in beh["behavior"].values]
        if not names:
            ctx.warn(f"animal {a}: no behaviours to encode")
            continue
        time = act["time"].values
        dt = bin_width(time)
        X = np.asarray(act.values, float)
        # Bins with NaN (dropped frames) are removed and the rest concatenated, as for the "other" subset.
        good = np.isfinite(X).all(1)
        if (~good).any():
            ctx.warn(f"animal {a}: {int((~good).sum())} time bins with NaN activity dropped before auROC")
        Y = {r: beh[r].transpose("time", "behavior").values.astype(bool)[good] for r in ROLES}
        X = X[good]
        base = None
        if p["baseline"] == "other":
            base = other_baseline(Y["self"], Y["partner"], names, [d for d in derived if d in names],
                                  other_label=p["other_label"])
        min_shift = int(round(p["min_shift_s"] / dt))
        res = {}
        for r in ROLES:
            res[r] = AurocEncoder(n_surrogates=p["n_surrogates"], min_shift=min_shift, baseline=p["baseline"],
                                  alpha=p["alpha"], fdr=p["fdr"], random_state=ctx.rng(f"{a}/{r}")).fit(
                X, Y[r], names, role=r, baseline_frames=base)
        stack = lambda attr: np.stack([getattr(res[r], attr) for r in ROLES], axis=-1)   # noqa: E731
        cls = np.stack([res[r].classes() for r in ROLES], axis=-1)
        ct = act["cell_type"].values.astype(str) if "cell_type" in act.coords else np.full(act.sizes["neuron"], "unknown")
        types = sorted(set(ct.tolist()))
        frac = {k: np.full((len(types), len(names), 2), np.nan) for k in
                ("fraction_activated", "fraction_suppressed", "null_fraction_activated", "null_fraction_suppressed")}
        n_type = np.zeros(len(types), int)
        for ti, t in enumerate(types):
            sel = (ct == t)
            sel[res["self"].excluded_] = False
            n_type[ti] = int(sel.sum())
            if not sel.any():
                continue
            for ri, r in enumerate(ROLES):
                e = res[r]
                ok = np.isfinite(e.auroc_[sel]).any(0)
                frac["fraction_activated"][ti, ok, ri] = e.activated_[sel][:, ok].mean(0)
                frac["fraction_suppressed"][ti, ok, ri] = e.suppressed_[sel][:, ok].mean(0)
                frac["null_fraction_activated"][ti, ok, ri] = np.nanmean(e.null_rate_activated_[sel][:, ok], 0)
                frac["null_fraction_suppressed"][ti, ok, ri] = np.nanmean(e.null_rate_suppressed_[sel][:, ok], 0)
        nc = {c: ("neuron", act[c].values) for c in ("roi_id", "cell_type") if c in act.coords}
        ds = xr.Dataset(
            {"auroc": (("neuron", "behavior", "role"), stack("auroc_")),
             "p": (("neuron", "behavior", "role"), stack("p_"), {"rule": "min(1, 2 min(p_hi, p_lo)), (#+1)/(n+1)"}),
             "q": (("neuron", "behavior", "role"), stack("q_"), {"rule": "Benjamini-Hochberg across neurons x behaviours"}),
             "class": (("neuron", "behavior", "role"), cls),
             "n_frames": (("behavior", "role"), stack("n_frames_")),
             "fraction_activated_all": (("behavior", "role"), stack("fraction_activated_")),
             "fraction_suppressed_all": (("behavior", "role"), stack("fraction_suppressed_")),
             "null_fraction_activated_all": (("behavior", "role"), stack("null_fraction_activated_")),
             "null_fraction_suppressed_all": (("behavior", "role"), stack("null_fraction_suppressed_")),
             "n_neurons_type": ("cell_type_group", n_type),
             **{k: (("cell_type_group", "behavior", "role"), v) for k, v in frac.items()}},
            coords={"behavior": np.array(names, dtype=object), "role": np.array(ROLES, dtype=object),
                    "cell_type_group": np.array(types, dtype=object), **nc},
            attrs={"animal": a, "n_surrogates": p["n_surrogates"], "min_shift": min_shift,
                   "min_shift_s": p["min_shift_s"], "baseline": p["baseline"], "alpha": p["alpha"],
                   "fdr": int(p["fdr"]), "n_dropped_bins": int((~good).sum()),
                   "excluded_neurons": json.dumps(res["self"].excluded_.tolist()),
                   "skipped": json.dumps({r: res[r].skipped_ for r in ROLES}),
                   "null_fraction_rule": "each surrogate tested against the other surrogates of its neuron"})
        out[f"/encoding/{a}"] = ds
    if not out:    # an empty result, not a skip, so that stages needing this one still run
        out["/encoding"] = xr.Dataset(attrs={"note": "no behaviours annotated: nothing to encode"})
    return xr.DataTree.from_dict(out)
