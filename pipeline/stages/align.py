"""Stage `align`: both animals' activity and all behaviour on one common time base.

Reads /A/traces, /A/rois, /A/celltypes (and B's) and /behavior; writes
/A/activity, /A/behavior, /B/activity, /B/behavior and /clock. The rules are
in behavior/align.py and docs/alignment.md.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from behavior import align as balign
from behavior.clocks import frame_interval_report
from pipeline.core.orchestrate import stage
from pipeline.core.parameters import ConfigError
from pipeline.core.animals import ANIMALS

SUMMED = ("spikes",)     # event-like traces: summed within bins; all others are interpolated


def _group(tree: xr.DataTree, path: str) -> xr.Dataset | None:
    try:
        return tree[path].to_dataset()
    except KeyError:
        return None


def _neuron_table(tree, a: str, n: int) -> pd.DataFrame:
    """Per-ROI labels: roi_id, is_cell (celltypes' curated value wins), cell_type, cell_type_confidence."""
    rois = _group(tree, f"/{a}/rois")
    ct = _group(tree, f"/{a}/celltypes")
    tab = pd.DataFrame({"roi_id": np.arange(n), "is_cell": np.ones(n, bool),
                        "cell_type": np.full(n, "unknown", dtype=object), "cell_type_confidence": np.zeros(n)})
    if rois is not None:
        for c in ("roi_id", "is_cell"):
            if c in rois:
                tab[c] = rois[c].values
    if ct is not None:
        for c in ("is_cell", "cell_type", "cell_type_confidence"):
            if c in ct:
                tab[c] = ct[c].values
    tab["is_cell"] = tab["is_cell"].astype(bool)
    tab["cell_type"] = tab["cell_type"].astype(str)
    return tab


@stage("align", needs=("extraction",), wants=("celltypes", "behavior"), params=("align",),
       reads=("animal.frame_rate",))
def run(ctx):
    p = ctx.params["align"]
    tree = ctx.upstream()
    traces = {a: _traces(tree, a, p["trace"]) for a in ANIMALS}
    times = {a: np.asarray(traces[a]["frame_time"].values, float) for a in ANIMALS}
    tb = balign.make_time_base(times, p["bin_s"], p["min_overlap_fraction"])

    out, reports = {}, []
    for a in ANIMALS:
        nominal = ctx.session.animals[a].get("frame_rate") if getattr(ctx, "session", None) else None
        out[f"/{a}/activity"], rep = _activity(tree, a, traces[a], times[a], tb, p, nominal)
        reports.append(rep)

    beh = _group(tree, "/behavior")
    events = balign.dataset_to_events(beh) if beh is not None else balign.dataset_to_events(xr.Dataset())
    if beh is not None:
        reports += _behavior_reports(beh, tb, p)
    for a, ds in balign.behavior_arrays(events, tb, ANIMALS).items():
        out[f"/{a}/behavior"] = ds
    out["/clock"] = _clock(reports, events, tb, p["trace"])
    return xr.DataTree.from_dict(out)


def _traces(tree, a: str, trace: str) -> xr.Dataset:
    """/A/traces, checked to hold the configured trace."""
    tr = _group(tree, f"/{a}/traces")
    if tr is None:
        raise ValueError(f"align: no /{a}/traces group; the extraction stage must run first")
    if trace not in tr:
        raise ConfigError(f"[align] trace = {trace!r}: /{a}/traces has no such variable; it has "
                          f"{sorted(v for v in tr.data_vars if 'frame' in tr[v].dims)}")
    return tr


def _activity(tree, a: str, tr: xr.Dataset, t: np.ndarray, tb, p: dict, nominal: float | None):
    """(/A/activity (neuron, time) on the common time base, the animal's stream report).
    t: frame times (s); nominal: the configured frame rate (Hz) or None."""
    max_gap = p["max_gap_s"] or 1.5 * balign.median_interval(t)
    x = tr[p["trace"]].transpose("neuron", "frame").values
    tab = _neuron_table(tree, a, x.shape[0])
    keep = np.ones(len(tab), bool) if p["include_non_cells"] else tab["is_cell"].to_numpy()
    x, tab = x[keep], tab[keep].reset_index(drop=True)
    index = np.flatnonzero(keep)     # neuron index in /A/rois and /A/traces
    if p["trace"] in SUMMED:
        y = balign.resample_sum(x, t, tb, max_gap)
    else:
        y = balign.resample_continuous(x, t, tb, max_gap)
    rule = "summed within bins" if p["trace"] in SUMMED else "linear interpolation at bin centres"
    act = xr.DataArray(
        y, dims=("neuron", "time"),
        coords={"time": tb.coord(), "neuron": index, "roi_id": ("neuron", tab["roi_id"].to_numpy()),
                "is_cell": ("neuron", tab["is_cell"].to_numpy()),
                "cell_type": ("neuron", tab["cell_type"].to_numpy(dtype=object)),
                "cell_type_confidence": ("neuron", tab["cell_type_confidence"].to_numpy(float))},
        attrs={"trace": p["trace"], "resampling": rule, "max_gap_s": max_gap,
               "nan_rule": "bins whose centre lies in a gap > max_gap_s are NaN for every neuron",
               "units": tr[p["trace"]].attrs.get("units", "")})
    ds = xr.Dataset({"activity": act}, attrs={"animal": a, "bin_s": tb.dt, "t0": tb.t0})
    rep = balign.stream_report(a, t, tb, max_gap)
    rep.update(kind="imaging", coverage=1.0, neurons_kept=int(keep.sum()), neurons_excluded=int((~keep).sum()),
               drift_ppm=frame_interval_report(t, nominal)["drift_ppm"])
    return ds, rep


def _behavior_reports(beh: xr.Dataset, tb, p: dict) -> list[dict]:
    """One report per behaviour input file (media duration and coverage checked) and per clock."""
    reports = []
    if "input_file" in beh:
        for i in range(beh.sizes["input"]):
            f = str(beh["input_file"].values[i])
            balign.check_media_duration(f, float(beh["input_media_duration_s"].values[i]),
                                        float(beh["input_clock_duration_s"].values[i]),
                                        p["media_duration_tolerance_s"])
            span = (float(beh["input_span_start"].values[i]), float(beh["input_span_stop"].values[i]))
            cov = math.nan
            if np.all(np.isfinite(span)):
                cov = balign.check_coverage(f, span, tb, p["min_overlap_fraction"])
            reports.append({"stream": f, "kind": str(beh["input_kind"].values[i]), "start": span[0],
                            "stop": span[1], "coverage": cov})
    if "clock" in beh.dims:
        for i, name in enumerate(beh["clock"].values):
            reports.append({"stream": f"clock:{name}", "kind": str(beh["clock_kind"].values[i]),
                            **{k: float(beh[f"clock_{k}"].values[i])
                               for k in ("n_frames", "dropped_frames", "drift_ppm", "start", "stop")}})
    return reports


def _clock(reports: list[dict], events, tb, trace: str) -> xr.Dataset:
    """/clock: one row per stream (imaging, behaviour files, clocks) and the time base in attrs."""
    rep = pd.DataFrame(reports)
    clock = xr.Dataset(coords={"stream": rep["stream"].to_numpy(dtype=object)})
    for c in rep.columns:
        if c == "stream":
            continue
        v = rep[c]
        clock[c] = ("stream", v.to_numpy(dtype=object).astype(str) if c == "kind" else v.to_numpy(dtype=float))
    in_base = ((events["stop"] >= tb.t0) & (events["start"] < tb.stop)).sum() if len(events) else 0
    clock.attrs.update({"t0": tb.t0, "bin_s": tb.dt, "n_bins": tb.n, "stop": tb.stop,
                        "events_total": int(len(events)), "events_outside_base": int(len(events) - in_base),
                        "trace": trace})
    return clock
