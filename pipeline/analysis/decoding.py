"""Decoders over a whole pair session: every animal x contrast x condition -> one xarray Dataset.

Conditions (METHODS.md section 5 "beyond" and section 2 "in-silico perturbation"):
- `full`: all neurons.
- `GABAergic`, `glutamatergic`: neuron-count matched (both types subsampled to the
  smaller count, `n_subsamples` draws), so the two curves compare at equal n.
- `shared`: projections Z U_K on the K shared dimensions (/subspace/<animal>/shared_loadings).
- `unique`: projections on the unique subspace (unique_loadings, all N - K dims).
- `shared_removed`: Z - Z U_K U_K^T.
- `random_removed`: Z - Z R R^T with R a random orthonormal N x K basis (`n_subsamples` draws),
  the control for `shared_removed`.
Conditions other than `full` run `condition_surrogates` surrogates in all (split over the
subsamples; subsample nulls are pooled); conditions drawn `n_subsamples` times also split the
`n_repeats` class-balancing repeats over the draws; see docs/decoders.md.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.analysis.decoders import (NOT_ENOUGH, TOO_SHORT, TimeResolvedDecoder, event_times, hold_events, parse_contrast, standardize)
from pipeline.core.animals import ANIMALS
from pipeline.core.parameters.stages import DECODING_CONDITIONS as CONDITIONS  # noqa: F401 (re-exported)

NULL_RULES = {
    "shift": "activity circularly shifted against the event train (labels, bout times and their clustering kept), "
             "shift uniform on [min_shift_s, duration - min_shift_s]; one balanced subsample per surrogate",
    "permute": "labels permuted across bouts (windows kept); one balanced subsample per surrogate"}
FUNCTIONAL_VARIABLES = {"self_poke": ("poke", "self"), "partner_poke": ("poke", "partner"),
                        "hold": ("hold", "self"), "proceed": ("poke", "self"), "reward": ("reward", "self")}


def read_events(tree: xr.DataTree) -> pd.DataFrame:
    """The /behavior event table as a DataFrame (animal, behavior, start, stop); empty when absent."""
    cols = ["animal", "behavior", "start", "stop"]
    try:
        ds = tree["/behavior"].to_dataset()
    except KeyError:
        return pd.DataFrame({c: pd.Series(dtype=object if c in cols[:2] else float) for c in cols})
    if "behavior" not in ds or "event" not in ds.dims:
        return pd.DataFrame({c: pd.Series(dtype=object if c in cols[:2] else float) for c in cols})
    df = pd.DataFrame({c: ds[c].values for c in cols})
    df["animal"] = df["animal"].astype(str)
    df["behavior"] = df["behavior"].astype(str)
    return df


def contrast_events(events: pd.DataFrame, text: str, animal: str, hold_guard_s: float):
    """(times of class a, times of class b) in s for contrast `text` decoded from `animal`.

    `hold` events of the decoded animal get the hold rule (decoders.hold_events).
    """
    partner = "B" if animal == "A" else "A"
    out = []
    for spec in parse_contrast(text):
        who = spec.animal(animal, partner)
        if spec.behavior == "hold":
            out.append(hold_events(events, who, spec.anchor, hold_guard_s))
        else:
            out.append(event_times(events, who, spec))
    return out[0], out[1]


def _orthonormal(rng, n, k):
    q, _ = np.linalg.qr(rng.normal(size=(n, k)))
    return q[:, :k]


def _combine(fits, alpha, cluster_q):
    """Mean curves over subsample fits, pooled surrogate nulls, cluster test on the pooled null."""
    from pipeline.analysis.decoders import cluster_test
    ok = [f for f in fits if f.status_ == "ok"]
    if not ok:
        return fits[0] if fits else None, None
    acc = np.mean([f.accuracy_ for f in ok], axis=0)
    auc = np.mean([f.auc_ for f in ok], axis=0)
    null = np.concatenate([f.null_accuracy_ for f in ok])
    null_auc = np.concatenate([f.null_auc_ for f in ok])
    clusters, _, _ = cluster_test(acc, null, cluster_q) if len(null) else ([], None, None)
    sig = np.zeros(acc.size, bool)
    for c in clusters:
        if c["p"] <= alpha:
            sig[c["start"]:c["stop"]] = True
    return ok[0], dict(accuracy=acc, auc=auc, null=null, null_auc=null_auc, clusters=clusters, significant=sig)


# Bump when a change to the decoders changes results for the same inputs and settings.
CACHE_VERSION = "issue20-2"


def _job_key(a, v, c, seed, feats, ea, eb, time, base, alpha):
    """Hash of everything one (animal, contrast, condition) result depends on."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, a, v, c, int(seed), alpha,
                                   {k: (list(x) if isinstance(x, tuple) else x) for k, x in base.items()
                                    if k != "n_jobs"}]).encode())
    for arr in (ea, eb, time):
        h.update(np.ascontiguousarray(arr, float).tobytes())
    for F, std, n_s, n_rep in feats:
        h.update(f"{F.shape}|{std}|{n_s}|{n_rep}".encode())
        h.update(np.ascontiguousarray(F, float).tobytes())
    return h.hexdigest()


def _cache_get(cache_dir, key):
    if cache_dir is None:
        return None
    try:
        return pickle.loads((Path(cache_dir) / f"{key}.pkl").read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
        return None


def _cache_put(cache_dir, key, value):
    """Write one job's result atomically (temporary file, fsync, rename)."""
    if cache_dir is None:
        return
    d = Path(cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", dir=d)
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, d / f"{key}.pkl")
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def decode_session(tree: xr.DataTree, p: dict, seed=0, warn=print, progress=None, cache_dir=None) -> xr.Dataset:
    """Run every (animal, contrast, condition) decoder. p: the validated [decoding] section.

    Returns the /decoding Dataset: accuracy, auc, null_mean, null_lo, null_hi, significant,
    cluster_p (animal, variable, condition, time_bin); null_accuracy (..., surrogate, time_bin);
    status, n_bouts_a, n_bouts_b, n_dropped_edge (animal, variable, condition); functional
    group sizes when /encoding is present. progress: tqdm-like factory progress(None, desc=, total=)
    returning a bar with .update(n); its unit is one label set (observed repeat or surrogate).
    Each job's random stream is derived from `seed` and the job's names (animal, contrast,
    condition), not its position, so adding or removing a contrast or condition leaves the
    other jobs' results unchanged. cache_dir: folder of per-job results keyed by a hash of
    the job's inputs, settings and seed; a rerun that changes only some jobs recomputes only
    those.
    """
    events = read_events(tree)
    contrasts = list(p["contrasts"])
    for c in contrasts:
        parse_contrast(c)     # fail early with the syntax in the message
    conds = list(p["conditions"])
    window = tuple(p["window_s"])
    if len(window) != 2:
        raise ValueError(f"[decoding] window_s: expected [start, stop] in s, got {p['window_s']!r}")
    results = {}
    time_bins = None
    jobs = [(a, v, c) for a in ANIMALS for v in contrasts for c in conds]
    acts = {}
    for a in ANIMALS:
        try:
            acts[a] = tree[f"/{a}/activity"]["activity"].transpose("time", "neuron")
        except KeyError:
            warn(f"no /{a}/activity: animal {a} not decoded")
    subspace = {}
    for a in ANIMALS:
        try:
            subspace[a] = tree[f"/subspace/{a}"].to_dataset()
        except KeyError:
            pass
    if any(c in conds for c in ("shared", "unique", "shared_removed", "random_removed")) and not subspace:
        warn("no /subspace group: the shared/unique subspace conditions are skipped")

    n_sub = p["n_subsamples"]
    per_sub = max(1, int(np.ceil(p["condition_surrogates"] / n_sub)))
    # conditions drawn n_sub times (cell-type subsamples, random removed dimensions) average
    # n_repeats class-balancing repeats in all, split over the draws, like their surrogates
    rep_sub = max(1, int(np.ceil(p["n_repeats"] / n_sub)))

    def planned(c):
        """Label sets (observed repeats + surrogates) a job fits at most: the progress bar's unit."""
        if c == "full":
            return p["n_repeats"] + p["n_surrogates"]
        if c in ("shared", "unique", "shared_removed"):
            return p["n_repeats"] + per_sub * n_sub
        return n_sub * (rep_sub + per_sub)

    total = sum(planned(c) for a, v, c in jobs if a in acts)
    bar = progress(None, desc="decoders (label sets)", total=total) if progress else None
    tick = bar.update if hasattr(bar, "update") else None
    for a, v, c in jobs:
        if a not in acts:
            continue
        ss = np.random.SeedSequence(seed, spawn_key=(zlib.crc32(f"{a}|{v}|{c}".encode()),))
        done = [0]

        def count(n, done=done):
            done[0] += n
            if tick is not None:
                tick(n)
        rng = np.random.default_rng(ss)
        act = acts[a]
        time = act["time"].values.astype(float)
        X = np.asarray(act.values, float)
        ea, eb = contrast_events(events, v, a, p["hold_guard_s"])
        base = dict(window=window, exclusion_s=p["exclusion_s"], min_bouts=p["min_bouts"],
                    null=p["null"], min_shift_s=p["min_shift_s"], C=p["C"], ridge=p["ridge"],
                    mode=p["mode"], alpha=p["alpha"], n_jobs=p["n_jobs"])
        feats, note = [], ""
        if c == "full":
            feats = [(X, True, p["n_surrogates"], p["n_repeats"])]
        elif c in ("GABAergic", "glutamatergic"):
            ct = act["cell_type"].values.astype(str) if "cell_type" in act.coords else np.full(X.shape[1], "unknown")
            n = min((ct == "GABAergic").sum(), (ct == "glutamatergic").sum())
            idx = np.flatnonzero(ct == c)
            if n < 2:
                note = f"not enough neurons ({(ct == 'GABAergic').sum()} GABAergic, {(ct == 'glutamatergic').sum()} glutamatergic)"
            else:
                feats = [(X[:, np.sort(rng.choice(idx, n, replace=False))], True, per_sub, rep_sub)
                         for _ in range(n_sub)]
                note = f"{n} neurons per type, {n_sub} subsamples"
        else:
            if a not in subspace or "shared_loadings" not in subspace[a]:
                note = "no subspace result"
            elif subspace[a]["shared_loadings"].shape[0] != X.shape[1]:
                note = (f"subspace loadings have {subspace[a]['shared_loadings'].shape[0]} neurons, "
                        f"/{a}/activity {X.shape[1]}")
            else:
                U = subspace[a]["shared_loadings"].values
                Wu = subspace[a]["unique_loadings"].values if "unique_loadings" in subspace[a] else U[:, :0]
                # neurons the subspace stage excluded have NaN loadings
                kept = np.isfinite(U).all(1) & np.isfinite(Wu).all(1)
                if U.shape[1] == 0 and Wu.shape[1] == 0:
                    kept = np.ones(X.shape[1], bool)
                Z, ok = standardize(X[:, kept])
                U = U[kept][ok]
                K = U.shape[1]
                if c == "shared":
                    feats = [(Z @ U, False, per_sub * n_sub, p["n_repeats"])] if K else []
                    note = f"K={K}" if K else "no shared dimensions (K=0)"
                elif c == "unique":
                    W = Wu[kept][ok]
                    feats = [(Z @ W, False, per_sub * n_sub, p["n_repeats"])] if W.shape[1] else []
                    note = f"{W.shape[1]} unique dims" if W.shape[1] else "no unique dimensions"
                elif c == "shared_removed":
                    feats = [(Z - Z @ U @ U.T, False, per_sub * n_sub, p["n_repeats"])]
                    note = f"K={K} removed"
                else:
                    feats = [(Z - Z @ (R := _orthonormal(rng, Z.shape[1], K)) @ R.T, False, per_sub, rep_sub)
                             for _ in range(n_sub)]
                    note = f"{K} random dims removed, {n_sub} draws"
        if not feats:
            results[(a, v, c)] = (None, None, note or "skipped")
            count(planned(c))
            continue
        key = _job_key(a, v, c, seed, feats, ea, eb, time, base, p["alpha"]) if cache_dir is not None else None
        hit = _cache_get(cache_dir, key)
        if hit is not None:
            results[(a, v, c)] = hit
            time_bins = hit[0].time_bins_
            count(planned(c))
            continue
        fits = []
        for F, std, n_s, n_rep in feats:
            d = TimeResolvedDecoder(**base, n_repeats=n_rep, n_surrogates=n_s, standardize=std,
                                    random_state=np.random.default_rng(rng.integers(2**63)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                fits.append(d.fit(F, ea, eb, time=time, progress=count))
        if tick is not None and planned(c) > done[0]:
            tick(planned(c) - done[0])      # label sets not fitted (too few bouts, identical repeats)
        first, comb = _combine(fits, p["alpha"], 0.95)
        time_bins = first.time_bins_
        results[(a, v, c)] = (first, comb, first.detail_ + ("; " + note if note else ""))
        _cache_put(cache_dir, key, results[(a, v, c)])
    if bar is not None and hasattr(bar, "close"):
        bar.close()
    if time_bins is None:
        from pipeline.analysis.decoders import window_offsets
        t = next(iter(acts.values()))["time"].values if acts else np.array([0.0, 1.0])
        time_bins = window_offsets(window, float(np.median(np.diff(t)))) * float(np.median(np.diff(t)))
    return _to_dataset(results, contrasts, conds, time_bins, p, tree)


def _to_dataset(results, contrasts, conds, time_bins, p, tree):
    shape = (len(ANIMALS), len(contrasts), len(conds))
    nb = len(time_bins)
    n_sur = max([len(r[1]["null"]) for r in results.values() if r[1] is not None] + [0])
    arr = {k: np.full(shape + (nb,), np.nan) for k in ("accuracy", "auc", "null_mean", "null_lo", "null_hi", "cluster_p")}
    sig = np.zeros(shape + (nb,), bool)
    null = np.full(shape + (n_sur, nb), np.nan, dtype=np.float32)
    status = np.full(shape, "not run", dtype=object)
    detail = np.full(shape, "", dtype=object)
    nba, nbb, ndrop = (np.zeros(shape, int) for _ in range(3))
    clusters = {}
    for (a, v, c), (first, comb, note) in results.items():
        i = (ANIMALS.index(a), contrasts.index(v), conds.index(c))
        detail[i] = note
        if first is None:
            status[i] = "skipped"
            continue
        status[i] = first.status_
        nba[i], nbb[i] = first.n_bouts_
        ndrop[i] = sum(first.n_dropped_edge_)
        if comb is None:
            continue
        arr["accuracy"][i], arr["auc"][i] = comb["accuracy"], comb["auc"]
        if len(comb["null"]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                arr["null_mean"][i] = np.nanmean(comb["null"], 0)
                arr["null_lo"][i], arr["null_hi"][i] = np.nanpercentile(comb["null"], [2.5, 97.5], axis=0)
            null[i][:len(comb["null"])] = comb["null"]
        for cl in comb["clusters"]:
            arr["cluster_p"][i][cl["start"]:cl["stop"]] = cl["p"]
        sig[i] = comb["significant"]
        clusters[f"{a}|{v}|{c}"] = [dict(start_s=float(time_bins[cl["start"]]), stop_s=float(time_bins[cl["stop"] - 1]),
                                         mass=cl["mass"], p=cl["p"]) for cl in comb["clusters"]]
    dims = ("animal", "variable", "condition")
    tb = ("time_bin",)
    ds = xr.Dataset(
        {"accuracy": (dims + tb, arr["accuracy"], {"long_name": "cross-validated accuracy, mean over repeats"}),
         "auc": (dims + tb, arr["auc"], {"long_name": "cross-validated ROC AUC, mean over repeats"}),
         "null_mean": (dims + tb, arr["null_mean"], {"long_name": "surrogate accuracy mean"}),
         "null_lo": (dims + tb, arr["null_lo"], {"long_name": "surrogate accuracy 2.5th percentile"}),
         "null_hi": (dims + tb, arr["null_hi"], {"long_name": "surrogate accuracy 97.5th percentile"}),
         "significant": (dims + tb, sig, {"long_name": "bin in a cluster with cluster p <= alpha"}),
         "cluster_p": (dims + tb, arr["cluster_p"], {"long_name": "p of the supra-threshold cluster holding the bin"}),
         "null_accuracy": (dims + ("surrogate",) + tb, null),
         "status": (dims, status), "detail": (dims, detail),
         "n_bouts_a": (dims, nba), "n_bouts_b": (dims, nbb), "n_dropped_edge": (dims, ndrop)},
        coords={"animal": list(ANIMALS), "variable": np.array(contrasts, dtype=object),
                "condition": np.array(conds, dtype=object),
                "time_bin": ("time_bin", np.asarray(time_bins, float), {"units": "s", "long_name": "time from event"})},
        attrs={"clusters": json.dumps(clusters), "alpha": p["alpha"], "exclusion_s": p["exclusion_s"],
               "n_repeats": p["n_repeats"], "n_surrogates": p["n_surrogates"], "mode": p["mode"], "ridge": p["ridge"], "C": p["C"],
               "null": p["null"], "min_shift_s": p["min_shift_s"],
               "null_rule": NULL_RULES[p["null"]],
               "status_values": f"ok | {NOT_ENOUGH} | {TOO_SHORT} | no features | skipped | not run"})
    groups = functional_groups(tree, p.get("alpha", 0.05))
    if groups is not None:
        ds = ds.merge(groups)
    return ds


def functional_groups(tree, alpha=0.05):
    """Group sizes of auROC-selective neurons per (animal, cell type, task variable, class) from /encoding.

    Uses the encoding stage's `class` (activated / suppressed / none, its own circular-shift
    null per behaviour). Returns None when /encoding is absent.
    """
    rows = []
    for a in ANIMALS:
        try:
            enc = tree[f"/encoding/{a}"].to_dataset()
        except KeyError:
            continue
        beh = [str(b) for b in enc["behavior"].values]
        ct = enc["cell_type"].values.astype(str) if "cell_type" in enc.coords else np.full(enc.sizes["neuron"], "unknown")
        for var, (b, role) in FUNCTIONAL_VARIABLES.items():
            if b not in beh:
                continue
            cls = enc["class"].sel(behavior=b, role=role).values.astype(str)
            for t in ("GABAergic", "glutamatergic", "unknown"):
                for k in ("activated", "suppressed"):
                    rows.append((a, var, t, k, int(((ct == t) & (cls == k)).sum()), int((ct == t).sum())))
    if not rows:
        return None
    df = pd.DataFrame(rows, columns=["animal", "fg_variable", "cell_type", "fg_class", "n", "n_type"])
    n = df.set_index(["animal", "fg_variable", "cell_type", "fg_class"])["n"].to_xarray().fillna(0).astype(int)
    tot = df.set_index(["animal", "fg_variable", "cell_type", "fg_class"])["n_type"].to_xarray().fillna(0).astype(int)
    return xr.Dataset({"group_size": n, "group_type_size": tot.isel(fg_class=0, drop=True)},
                      attrs={"functional_groups": json.dumps(FUNCTIONAL_VARIABLES)})
