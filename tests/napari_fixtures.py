"""A small interbrain result folder with known contents, written by the real writers.

`make_result(out)` writes `out/stages/<stage>/result.nc` + `done.json` with
`pipeline.core.dataset.write_stage` and `out/interbrain.json`, with the groups of
docs/design.md: /A/motion, /A/rois, /A/traces, /A/celltypes, /behavior (and
/A/behavior from align when `with_align=True`). The returned dict is the
ground truth the tests compare against.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.core import dataset

# Per animal: image shape, frame count, frame rate, ROI ids, centres, amplitudes, types, is_cell.
ANIMALS = {
    "A": dict(shape=(48, 64), n_frames=300, rate=10.0,
              roi_id=[3, 7, 8, 12, 20, 21],
              centre=[(12, 12), (12, 17), (30, 40), (36, 12), (20, 52), (40, 52)],
              amp=[1.0, 2.0, 1.0, 1.5, 1.0, 0.8],
              cell_type=["GABAergic", "glutamatergic", "unknown", "glutamatergic", "GABAergic", "glutamatergic"],
              is_cell=[True, True, True, False, True, True]),
    "B": dict(shape=(40, 56), n_frames=250, rate=8.0,
              roi_id=[0, 1, 2, 5, 9],
              centre=[(10, 10), (10, 40), (25, 25), (32, 8), (30, 46)],
              amp=[1.0, 1.0, 1.2, 1.0, 1.0],
              cell_type=["glutamatergic", "GABAergic", "glutamatergic", "unknown", "GABAergic"],
              is_cell=[True, True, False, True, True]),
}
RADIUS = 4
# (animal, behavior, start, stop, kind) on the master clock, seconds
EVENTS = [("A", "approach", 2.0, 5.0, "state"), ("B", "approach", 3.0, 4.5, "state"),
          ("B", "sniff", 10.0, 14.0, "state"), ("A", "follow", 20.0, 22.5, "state"),
          ("A", "reward", 15.0, 15.0, "point")]


def _footprints(spec):
    """COO footprints: discs of RADIUS with a Gaussian weight profile scaled by amp."""
    Y, X = spec["shape"]
    yy, xx = np.mgrid[:Y, :X]
    pn, py, px, pw = [], [], [], []
    for i, ((cy, cx), a) in enumerate(zip(spec["centre"], spec["amp"])):
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        m = d2 <= RADIUS ** 2
        pn.append(np.full(m.sum(), i))
        py.append(yy[m])
        px.append(xx[m])
        pw.append(a * np.exp(-d2[m] / (2 * 2.0 ** 2)))
    return [np.concatenate(v) for v in (pn, py, px, pw)]


def expected_labels(spec) -> np.ndarray:
    """(y, x) int32 label image: ROI index+1, the highest-weight ROI winning overlaps."""
    n, y, x, w = _footprints(spec)
    out = np.zeros(spec["shape"], np.int32)
    best = np.full(spec["shape"], -np.inf)
    for ni, yi, xi, wi in zip(n, y, x, w):
        if wi > best[yi, xi]:
            best[yi, xi], out[yi, xi] = wi, ni + 1
    return out


def _traces(spec, animal):
    rng = np.random.default_rng(0 if animal == "A" else 1)
    n, T = len(spec["roi_id"]), spec["n_frames"]
    t = np.arange(T) / spec["rate"]
    # each ROI a sinusoid of its own frequency, so rows are distinguishable
    dff = np.stack([np.sin(2 * np.pi * (0.05 + 0.03 * i) * t) + 0.1 * i for i in range(n)])
    spikes = np.clip(rng.normal(0, 1, (n, T)), 0, None)
    return t, dff.astype(np.float32), spikes.astype(np.float32)


def _write(out: Path, name: str, groups: dict) -> None:
    d = out / "stages" / name
    d.mkdir(parents=True, exist_ok=True)
    prov = {"stage": name, "seed": 0, "time": "test"}
    dataset.write_stage(xr.DataTree.from_dict(groups), d / "result.nc", prov)
    (d / "done.json").write_text(json.dumps({"fingerprint": f"test-{name}", "status": "done", **prov}))


def make_result(out: str | Path, format_version: int = dataset.FORMAT_VERSION, with_align: bool = False,
                with_events: bool = True) -> dict:
    """Write the result folder; return {animal: {..., 'labels', 'dff', 'spikes', 'frame_time'}}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    truth = {}
    motion, extraction, celltypes, align = {}, {}, {}, {}
    for a, spec in ANIMALS.items():
        Y, X = spec["shape"]
        rng = np.random.default_rng(10 if a == "A" else 11)
        lab = expected_labels(spec)
        mean = (100 + 20 * rng.random((Y, X)) + 200 * (lab > 0)).astype(np.float32)
        corr = (0.1 * rng.random((Y, X)) + 0.8 * (lab > 0)).astype(np.float32)
        n, y, x, w = _footprints(spec)
        t, dff, spikes = _traces(spec, a)
        nroi = len(spec["roi_id"])
        motion[f"/{a}/motion"] = xr.Dataset({"mean_image": (("y", "x"), mean)})
        extraction[f"/{a}/rois"] = xr.Dataset({
            "pix_neuron": ("pixel", n.astype(np.int32)), "pix_y": ("pixel", y.astype(np.int32)),
            "pix_x": ("pixel", x.astype(np.int32)), "pix_weight": ("pixel", w.astype(np.float32)),
            "roi_id": ("neuron", np.array(spec["roi_id"], np.int64)),
            "centroid_y": ("neuron", np.array([c[0] for c in spec["centre"]], float)),
            "centroid_x": ("neuron", np.array([c[1] for c in spec["centre"]], float)),
            "iscell_prob": ("neuron", np.linspace(0.55, 0.95, nroi)),
            "is_cell": ("neuron", np.array(spec["is_cell"])),
            "mean_image": (("y", "x"), mean), "correlation_image": (("y", "x"), corr)})
        ft = xr.DataArray(t, dims="frame", attrs={"units": "s"})
        extraction[f"/{a}/traces"] = xr.Dataset(
            {"dff": (("neuron", "frame"), dff), "spikes": (("neuron", "frame"), spikes),
             "F": (("neuron", "frame"), dff + 1), "Fneu": (("neuron", "frame"), 0.5 * np.ones_like(dff))},
            coords={"frame_time": ft}, attrs={"baseline": "test"})
        celltypes[f"/{a}/celltypes"] = xr.Dataset({
            "cell_type": ("neuron", np.array(spec["cell_type"], dtype=object)),
            "cell_type_confidence": ("neuron", np.linspace(0.5, 0.9, nroi)),
            "cell_type_source": ("neuron", np.array(["test"] * nroi, dtype=object)),
            "is_cell": ("neuron", np.array(spec["is_cell"]))})
        if with_align:
            tb = np.arange(0.05, 25, 0.1)
            names = ["approach", "follow", "sniff"]
            other = "B" if a == "A" else "A"
            def grid(who):
                return np.array([[any(e[0] == who and e[1] == b and e[2] <= tt < e[3] for e in EVENTS) for tt in tb]
                                 for b in names])
            align[f"/{a}/behavior"] = xr.Dataset({"self": (("behavior", "time"), grid(a)),
                                                  "partner": (("behavior", "time"), grid(other))},
                                                 coords={"behavior": names, "time": ("time", tb, {"units": "s"})})
        truth[a] = dict(spec, labels=lab, dff=dff, spikes=spikes, frame_time=t, mean_image=mean)
    _write(out, "motion", motion)
    _write(out, "extraction", extraction)
    _write(out, "celltypes", celltypes)
    if with_events:
        ev = pd.DataFrame(EVENTS, columns=["animal", "behavior", "start", "stop", "kind"])
        ev["source"] = "test.csv"
        _write(out, "behavior", {"/behavior": xr.Dataset(
            {c: ("event", ev[c].to_numpy(dtype=float if c in ("start", "stop") else object)) for c in ev.columns})})
    if with_align:
        _write(out, "align", align)
    (out / dataset.ROOT_FILE).write_text(json.dumps({
        "format": "interbrain-result", "format_version": format_version, "pair": "pair_test",
        "session_file": "", "animals": {a: {"id": f"m{a}", "sex": "F", "genotype": "Vgat-Cre",
                                            "indicator": "GCaMP6f", "modality": "2p"} for a in ANIMALS}}))
    return truth


def make_large_result(out: str | Path, n_roi: int = 400, shape=(512, 512), n_frames: int = 9000,
                      rate: float = 15.0) -> dict:
    """A realistic-size result (both animals alike): ROIs of radius 6 on a jittered grid (none fully hidden),
    dF/F and deconvolved traces of n_frames. Returns {animal: {'dff', 'n_roi'}}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    Y, X = shape
    side = int(np.ceil(np.sqrt(n_roi)))
    step = min(Y, X) // (side + 1)
    dy, dx = np.mgrid[-6:7, -6:7]
    disc = dy ** 2 + dx ** 2 <= 36
    ext, tr, ct = {}, {}, {}
    truth = {}
    for k, a in enumerate(ANIMALS):
        rng = np.random.default_rng(100 + k)
        gy, gx = np.divmod(np.arange(n_roi), side)
        cy = (gy + 1) * step + rng.integers(-2, 3, n_roi)
        cx = (gx + 1) * step + rng.integers(-2, 3, n_roi)
        pn = np.repeat(np.arange(n_roi), disc.sum())
        py = (cy[:, None] + dy[disc][None]).ravel()
        px = (cx[:, None] + dx[disc][None]).ravel()
        pw = np.tile(np.exp(-(dy[disc] ** 2 + dx[disc] ** 2) / 8.0), n_roi).astype(np.float32)
        dff = rng.normal(0, 1, (n_roi, n_frames)).astype(np.float32)
        types = rng.choice(["GABAergic", "glutamatergic", "unknown"], n_roi).astype(object)
        ext[f"/{a}/rois"] = xr.Dataset({
            "pix_neuron": ("pixel", pn.astype(np.int32)), "pix_y": ("pixel", py.astype(np.int32)),
            "pix_x": ("pixel", px.astype(np.int32)), "pix_weight": ("pixel", pw),
            "roi_id": ("neuron", np.arange(n_roi)), "is_cell": ("neuron", np.ones(n_roi, bool)),
            "iscell_prob": ("neuron", rng.random(n_roi)),
            "mean_image": (("y", "x"), rng.random(shape).astype(np.float32)),
            "correlation_image": (("y", "x"), rng.random(shape).astype(np.float32))})
        ext[f"/{a}/traces"] = xr.Dataset(
            {"dff": (("neuron", "frame"), dff), "spikes": (("neuron", "frame"), np.clip(dff, 0, None))},
            coords={"frame_time": ("frame", np.arange(n_frames) / rate, {"units": "s"})})
        ct[f"/{a}/celltypes"] = xr.Dataset({"cell_type": ("neuron", types)})
        truth[a] = {"dff": dff, "n_roi": n_roi, "cell_type": types}
    _write(out, "extraction", ext)
    _write(out, "celltypes", ct)
    ev = pd.DataFrame([(a, b, s, s + 3.0, "state", "x.csv") for s in np.arange(5, n_frames / rate, 40.0)
                       for a, b in (("A", "approach"), ("B", "sniff"))],
                      columns=["animal", "behavior", "start", "stop", "kind", "source"])
    _write(out, "behavior", {"/behavior": xr.Dataset(
        {c: ("event", ev[c].to_numpy(dtype=float if c in ("start", "stop") else object)) for c in ev.columns})})
    (out / dataset.ROOT_FILE).write_text(json.dumps({
        "format": "interbrain-result", "format_version": dataset.FORMAT_VERSION, "pair": "large",
        "session_file": "", "animals": {a: {"id": f"m{a}"} for a in ANIMALS}}))
    return truth
