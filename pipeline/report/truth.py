"""Truth versus recovered: score a result against the simulator's ground truth.

A simulated session has `ground_truth/truth.nc` next to its session file
(pipeline/simulator/truth.py documents every variable). The result is read
through pipeline.core.dataset; the truth netCDF is opened here directly, so the
report needs nothing from the simulator package.

Scores per animal:
- ROIs: planted somata matched one-to-one to the pipeline's cells (is_cell) by
  footprint IoU (Hungarian, IoU >= 0.5; planted support = pixels above 10% of
  the soma's peak, moved into the registered frame by the median offset between
  estimated and planted rigid shifts). recall = matched / planted,
  precision = matched / found, F1.
- trace r: median Pearson r of matched cells' trace (C, else dff) against the
  planted calcium, frame by frame.
- cell-type accuracy: matched cells whose label equals the planted type,
  over matched cells with a label other than "unknown" (coverage = that share).
- encoding recall: over matched somata and every (behaviour, role) that both
  the truth and the encoding stage have, the share of planted responses
  (behaviour_response != 0) classed activated or suppressed; the
  false-positive rate is the same share of the pairs planted with no response
  (correlated behaviours, e.g. coordinated pokes, can raise it).
And per pair: planted shared dimensions (`n_shared_planted`) against the K found.

Decoders, per animal and contrast (condition `full` of /decoding): a signal is
planted when at least one of the animal's neurons has a different planted gain
(`behavior_response`) for the contrast's two events, e.g. for
"self:approach vs partner:approach" decoded from B, B's gain for its own
approach against its gain for A's approach. Significant = a cluster of time
bins with cluster p <= alpha (/decoding `significant`). Verdicts: found,
missed (planted, not significant), false positive (significant where nothing
was planted), none (neither); n/a when the truth has no gain for an event
(e.g. a derived event such as poke_coordinated) or the decoder did not run.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import xarray as xr

from pipeline.core.animals import ANIMALS

IOU_MIN = 0.5
FP_LEVEL = 0.1


def truth_path(out: str | Path, meta: dict) -> Path | None:
    """ground_truth/truth.nc next to the session file recorded in interbrain.json, or None."""
    sfile = meta.get("session_file") or ""
    if not sfile:
        return None
    p = Path(sfile).parent / "ground_truth" / "truth.nc"
    return p if p.is_file() else None


def load_truth_file(path: str | Path) -> xr.DataTree:
    with xr.open_datatree(path, engine="h5netcdf") as t:
        return t.load()


def _group(tree, path):
    try:
        node = tree[path]
    except KeyError:
        return None
    return node.to_dataset() if node.has_data else None


def match_footprints(true_fp: np.ndarray, est_mask: np.ndarray, offset=(0.0, 0.0)):
    """(planted index, found index, IoU) of the one-to-one matches with IoU >= IOU_MIN.

    true_fp (N, Y, X) planted footprints (tissue frame); est_mask (M, Y, X) bool found footprints (registered
    frame = tissue moved by -offset px).
    """
    from scipy import ndimage
    from scipy.optimize import linear_sum_assignment
    if len(true_fp) == 0 or len(est_mask) == 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    off = np.asarray(offset, float)
    moved = np.stack([ndimage.shift(f, -off, order=1) for f in true_fp]) if np.any(off) else true_fp
    tf = moved > FP_LEVEL * moved.reshape(len(moved), -1).max(1)[:, None, None]
    tf = tf.reshape(len(tf), -1).astype(np.float32)
    ef = est_mask.reshape(len(est_mask), -1).astype(np.float32)
    inter = tf @ ef.T
    iou = inter / (tf.sum(1)[:, None] + ef.sum(1)[None] - inter + 1e-12)
    ri, ci = linear_sum_assignment(-iou)
    ok = iou[ri, ci] >= IOU_MIN
    return ri[ok], ci[ok], iou[ri, ci][ok]


def _found_masks(rois: xr.Dataset, shape) -> np.ndarray:
    n = rois.sizes["neuron"]
    m = np.zeros((n, *shape), bool)
    pn, py, px = (rois[v].values.astype(int) for v in ("pix_neuron", "pix_y", "pix_x"))
    ok = (py >= 0) & (py < shape[0]) & (px >= 0) & (px < shape[1])
    m[pn[ok], py[ok], px[ok]] = True
    return m


def score_animal(tree, truth, a: str) -> dict | None:
    """Scores of one animal (module docstring), or None when the result has no ROIs of it."""
    rois, g = _group(tree, f"/{a}/rois"), _group(truth, f"/{a}")
    if rois is None or g is None:
        return None
    shape = tuple(g["footprint"].shape[1:])
    ct_grp = _group(tree, f"/{a}/celltypes")
    is_cell = rois["is_cell"].values.astype(bool) if "is_cell" in rois else np.ones(rois.sizes["neuron"], bool)
    if ct_grp is not None and "is_cell" in ct_grp:
        is_cell = ct_grp["is_cell"].values.astype(bool)
    cells = np.flatnonzero(is_cell)
    off = np.zeros(2)
    mo = _group(tree, f"/{a}/motion")
    if mo is not None and "rigid_shift" in mo and mo["rigid_shift"].shape == g["rigid_shift"].shape:
        off = np.median(mo["rigid_shift"].values - g["rigid_shift"].values, axis=0)
    ti, fi, iou = match_footprints(g["footprint"].values, _found_masks(rois, shape)[cells], off)
    fi = cells[fi]                                     # index in /A/rois
    n_true, n_found, tp = int(g.sizes["neuron"]), int(len(cells)), int(len(ti))
    prec = tp / n_found if n_found else 0.0
    rec = tp / n_true if n_true else 0.0
    res = {"animal": a, "planted": n_true, "found": n_found, "matched": tp, "recall": rec, "precision": prec,
           "f1": 2 * prec * rec / (prec + rec) if tp else 0.0, "median_iou": float(np.median(iou)) if tp else np.nan}
    # traces
    tr = _group(tree, f"/{a}/traces")
    res["trace_r"], res["trace_var"] = np.nan, ""
    if tr is not None and tp:
        var = "C" if "C" in tr else "dff"
        x = tr[var].transpose("neuron", "frame").values
        cal = g["calcium"].values
        if x.shape[1] == cal.shape[1]:
            r = [np.corrcoef(cal[i], x[j])[0, 1] for i, j in zip(ti, fi)]
            res["trace_r"], res["trace_var"] = float(np.nanmedian(r)), var
    # cell types
    res["type_accuracy"], res["type_coverage"] = np.nan, np.nan
    if ct_grp is not None and "cell_type" in ct_grp and tp:
        found_t = ct_grp["cell_type"].values.astype(str)[fi]
        true_t = g["cell_type"].values.astype(str)[ti]
        labelled = found_t != "unknown"
        res["type_coverage"] = float(labelled.mean())
        if labelled.any():
            res["type_accuracy"] = float((found_t[labelled] == true_t[labelled]).mean())
    # encoding
    res["encoding_recall"], res["encoding_false_positive"], res["responsive_matched"] = np.nan, np.nan, 0
    enc = _group(tree, f"/encoding/{a}")
    if enc is not None and "class" in enc and tp:
        cls = enc["class"].transpose("neuron", "behavior", "role")
        beh = [b for b in g["behavior"].values.astype(str) if b in set(cls["behavior"].values.astype(str))]
        roles = [r for r in g["role"].values.astype(str) if r in set(cls["role"].values.astype(str))]
        # the encoding stage numbers its neurons 0..n-1 over the cells it analysed; its roi_id coordinate
        # says which ROI each row is (fall back to the neuron coordinate when there is none)
        if "roi_id" in cls.coords and "roi_id" in rois:
            pos = {int(r): i for i, r in enumerate(rois["roi_id"].values)}
            row = {pos[int(r)]: k for k, r in enumerate(cls["roi_id"].values) if int(r) in pos}
        else:
            row = {int(n): k for k, n in enumerate(cls["neuron"].values)}
        pairs = [(i, row[int(j)]) for i, j in zip(ti, fi) if int(j) in row]     # matched and analysed
        if pairs and beh and roles:
            ii, kk = (np.array(x) for x in zip(*pairs))
            planted = np.abs(g["behavior_response"].sel(behavior=beh, role=roles).values[ii]) > 0
            found = (cls.sel(behavior=beh, role=roles).values[kk].astype(str) != "none")
            res["responsive_matched"] = int(planted.any((1, 2)).sum())
            if planted.any():
                res["encoding_recall"] = float(found[planted].mean())
            if (~planted).any():
                res["encoding_false_positive"] = float(found[~planted].mean())
    return res


# 'WHO:BEHAVIOR[@ANCHOR] vs WHO:BEHAVIOR[@ANCHOR]' (the decoding stage's contrast syntax)
_CONTRAST = re.compile(r"^\s*(\w+):(\w+)(?:@\w+)?\s+vs\s+(\w+):(\w+)(?:@\w+)?\s*$")


def planted_contrast(truth, animal: str, contrast: str) -> tuple[bool | None, int]:
    """(planted, neurons): whether any neuron of `animal` has a different planted gain for the contrast's
    two events, and how many do; (None, 0) when the truth has no gain for one of the events."""
    m = _CONTRAST.match(contrast)
    g = _group(truth, f"/{animal}")
    if m is None or g is None or "behavior_response" not in g:
        return None, 0
    beta = g["behavior_response"]
    known = set(beta["behavior"].values.astype(str))
    gains = []
    for who, behavior in ((m[1], m[2]), (m[3], m[4])):
        if behavior not in known:
            return None, 0
        role = "self" if who in ("self", animal) else "partner"
        gains.append(beta.sel(behavior=behavior, role=role).values.astype(float))
    n = int(np.sum(np.abs(gains[0] - gains[1]) > 0))
    return n > 0, n


def _verdict(planted, significant) -> str:
    if planted is None or significant is None:
        return "n/a"
    return {(True, True): "found", (True, False): "missed", (False, True): "false positive",
            (False, False): "none"}[(bool(planted), bool(significant))]


def score_decoders(tree, truth) -> list[dict]:
    """Per animal and contrast: planted (bool or None), planted_neurons, significant (bool, None when the
    decoder did not run), p (smallest cluster p), status, verdict (module docstring)."""
    try:
        d = tree["decoding"].to_dataset()
    except KeyError:
        return []
    if "significant" not in d or "variable" not in d.dims:
        return []
    try:
        clusters = json.loads(d.attrs.get("clusters", "{}"))
    except (TypeError, ValueError):
        clusters = {}
    rows = []
    for a in d["animal"].values.astype(str):
        for v in d["variable"].values.astype(str):
            sel = dict(animal=a, variable=v)
            if "condition" in d.dims:
                sel["condition"] = "full"
            status = str(d["status"].sel(sel).values) if "status" in d else "ok"
            sig = bool(d["significant"].sel(sel).values.any()) if status == "ok" else None
            ps = [c.get("p") for c in clusters.get(f"{a}|{v}|full", []) if c.get("p") is not None]
            planted, n = planted_contrast(truth, a, v)
            rows.append({"animal": a, "contrast": v, "planted": planted, "planted_neurons": n, "significant": sig,
                         "p": float(min(ps)) if ps and status == "ok" else np.nan, "status": status,
                         "verdict": _verdict(planted, sig)})
    return rows


def compare(tree, truth) -> dict:
    """{"animals": [score_animal per animal], "K_planted": int, "K_found": int or None, "decoders":
    [score_decoders rows], "preset", "seed"}."""
    animals = [s for s in (score_animal(tree, truth, a) for a in ANIMALS) if s is not None]
    k_found = None
    try:
        sub = tree["subspace"]
        if "K" in sub.attrs:
            k_found = int(sub.attrs["K"])
    except KeyError:
        pass
    attrs = truth.attrs
    k_planted = attrs.get("n_shared_planted")
    if k_planted is None:
        k_planted = truth["shared"].attrs.get("n_shared_planted")
    return {"animals": animals, "K_planted": None if k_planted is None else int(k_planted), "K_found": k_found,
            "decoders": score_decoders(tree, truth), "preset": str(attrs.get("preset", "")), "seed": attrs.get("seed")}


ROWS = (("ROIs planted / found (cells) / matched", lambda s: f"{s['planted']} / {s['found']} / {s['matched']}"),
        ("ROI recall", lambda s: _f(s["recall"])), ("ROI precision", lambda s: _f(s["precision"])),
        ("ROI F1", lambda s: _f(s["f1"])),
        ("trace r (median, matched)", lambda s: _f(s["trace_r"]) + (f" ({s['trace_var']})" if s["trace_var"] else "")),
        ("cell-type accuracy (labelled share)",
         lambda s: f"{_f(s['type_accuracy'])} ({_f(s['type_coverage'])})"),
        ("encoding recall (planted responses)",
         lambda s: f"{_f(s['encoding_recall'])} ({s['responsive_matched']} cells)"),
        ("encoding hits where none planted", lambda s: _f(s["encoding_false_positive"])))


def _f(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.2f}"


def as_text(c: dict) -> str:
    """The comparison as a plain-text table (printed by `interbrain report`)."""
    names = [s["animal"] for s in c["animals"]]
    w = max(len(r[0]) for r in ROWS)
    lines = [f"truth vs recovered (simulator preset {c['preset'] or '?'}, seed {c['seed']}):",
             f"  {'':<{w}}  " + "  ".join(f"{n:>14}" for n in names)]
    for label, fmt in ROWS:
        lines.append(f"  {label:<{w}}  " + "  ".join(f"{fmt(s):>14}" for s in c["animals"]))
    k = "n/a (the subspace stage has not run)" if c["K_found"] is None else str(c["K_found"])
    lines.append(f"  shared dimensions: planted {c['K_planted']}, found K = {k}")
    dec = c.get("decoders") or []
    if dec:
        w = max(len(r["contrast"]) for r in dec)
        lines.append("  decoders (condition full): planted signal vs significant cluster")
        for r in dec:
            lines.append(f"    {r['animal']}  {r['contrast']:<{w}}  planted {planted_text(r):<16}  "
                         f"significant {significant_text(r):<16}  {r['verdict']}")
    else:
        lines.append("  decoders: n/a (the decoding stage has not run)")
    return "\n".join(lines)


def planted_text(r: dict) -> str:
    return "n/a" if r["planted"] is None else (f"yes ({r['planted_neurons']} cells)" if r["planted"] else "no")


def significant_text(r: dict) -> str:
    if r["significant"] is None:
        return f"n/a ({r['status']})"
    p = "" if not np.isfinite(r["p"]) else f" (p = {r['p']:.3f})"
    return ("yes" if r["significant"] else "no") + p


def _plain(x):
    """JSON form of a numpy scalar (a simulator seed is read back as numpy.int64); NaN -> null."""
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, (int, float, str, bool)) or x is None:
        return x
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def as_json(c: dict) -> str:
    """The comparison as JSON (NaN as null)."""
    return json.dumps(_sanitise(c), indent=1)


def _sanitise(x):
    if isinstance(x, dict):
        return {str(k): _sanitise(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_sanitise(v) for v in x]
    return _plain(x)


__all__ = ["truth_path", "load_truth_file", "compare", "score_animal", "score_decoders", "planted_contrast",
           "match_footprints", "as_text"]
