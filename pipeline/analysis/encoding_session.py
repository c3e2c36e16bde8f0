"""Single-neuron auROC encoding over a whole pair session (docs/encoding.md).

`encoding_session(tree, params, derived, rng, warn)` reads /<animal>/activity and
/<animal>/behavior from a result DataTree and fits one `AurocEncoder` per animal and role
(self, partner behaviour), returning /encoding/A and /encoding/B on dims
(`neuron`, `behavior`, `role`) and the per-cell-type fractions on `cell_type_group`.
"""
from __future__ import annotations

import json
from typing import Callable

import numpy as np
import xarray as xr

from pipeline.analysis.activity import bin_width, read_activity
from pipeline.analysis.encoding import AurocEncoder, other_baseline
from pipeline.analysis.stats import AnalysisInputError
from pipeline.core.animals import ANIMALS

__all__ = ["ROLES", "encoding_session"]

ROLES = ("self", "partner")
FRACTIONS = ("fraction_activated", "fraction_suppressed", "null_fraction_activated", "null_fraction_suppressed")


def _fit_roles(X: np.ndarray, Y: dict, names: list[str], p: dict, min_shift: int, base, rng, a: str) -> dict:
    """{role: fitted AurocEncoder} for one animal; rng(f"{a}/{role}") seeds each role's shifts."""
    return {r: AurocEncoder(n_surrogates=p["n_surrogates"], min_shift=min_shift, baseline=p["baseline"],
                            alpha=p["alpha"], fdr=p["fdr"], random_state=rng(f"{a}/{r}")).fit(
                X, Y[r], names, role=r, baseline_frames=base) for r in ROLES}


def _type_fractions(res: dict, ct: np.ndarray, n_behaviors: int) -> tuple[list[str], np.ndarray, dict]:
    """Per cell type: (types, neurons per type (kept ones), {fraction name: (type, behavior, role)})."""
    types = sorted(set(ct.tolist()))
    frac = {k: np.full((len(types), n_behaviors, 2), np.nan) for k in FRACTIONS}
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
    return types, n_type, frac


def _animal(tree: xr.DataTree, a: str, p: dict, derived: list[str], rng, warn) -> xr.Dataset | None:
    """/encoding/<a>, or None when animal `a` has no behaviour to encode."""
    act = read_activity(tree, a)
    try:
        beh = tree[f"/{a}/behavior"].to_dataset()
    except KeyError:
        raise AnalysisInputError(f"no /{a}/behavior: the align stage wrote no behaviour for animal {a}") from None
    names = [str(n) for n in beh["behavior"].values]
    if not names:
        warn(f"animal {a}: no behaviours to encode")
        return None
    dt = bin_width(act["time"].values)
    X = np.asarray(act.values, float)
    # Bins with NaN (dropped frames) are removed and the rest concatenated, as for the "other" subset.
    good = np.isfinite(X).all(1)
    if (~good).any():
        warn(f"animal {a}: {int((~good).sum())} time bins with NaN activity dropped before auROC")
    Y = {r: beh[r].transpose("time", "behavior").values.astype(bool)[good] for r in ROLES}
    X = X[good]
    base = None
    if p["baseline"] == "other":
        base = other_baseline(Y["self"], Y["partner"], names, [d for d in derived if d in names],
                              other_label=p["other_label"])
    min_shift = int(round(p["min_shift_s"] / dt))
    res = _fit_roles(X, Y, names, p, min_shift, base, rng, a)
    stack = lambda attr: np.stack([getattr(res[r], attr) for r in ROLES], axis=-1)   # noqa: E731
    cls = np.stack([res[r].classes() for r in ROLES], axis=-1)
    ct = act["cell_type"].values.astype(str) if "cell_type" in act.coords else np.full(act.sizes["neuron"], "unknown")
    types, n_type, frac = _type_fractions(res, ct, len(names))
    nc = {c: ("neuron", act[c].values) for c in ("roi_id", "cell_type") if c in act.coords}
    return xr.Dataset(
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


def encoding_session(tree: xr.DataTree, params: dict, derived, rng: Callable[[str], np.random.Generator],
                     warn: Callable[[str], None] | None = None) -> dict[str, xr.Dataset]:
    """The /encoding groups of one pair session: {"/encoding/A": ..., "/encoding/B": ...}.

    tree: a result DataTree with /<animal>/activity (neuron, time) and /<animal>/behavior
        (self, partner: (behavior, time) bool).
    params: the validated [encoding] section; derived: names of the derived behaviours
        (their baseline="other" rule differs, see `other_baseline`).
    rng: named random streams, rng(name) -> numpy Generator; "<animal>/<role>" draws that
        encoder's shifts (the stage passes StageContext.rng).
    warn: called with one line per recoverable problem.
    With no behaviour at all the result is one empty /encoding group saying so.
    """
    warn = warn or (lambda msg: None)
    out = {}
    for a in ANIMALS:
        ds = _animal(tree, a, params, list(derived), rng, warn)
        if ds is not None:
            out[f"/encoding/{a}"] = ds
    if not out:    # an empty result, not a skip, so that stages needing this one still run
        out["/encoding"] = xr.Dataset(attrs={"note": "no behaviours annotated: nothing to encode"})
    return out
