"""Stage `behavior`: annotations + task log -> one event table on the master clock (/behavior).

Reads every [[annotations]] file with behavior.importers, maps its times
through its [clocks.NAME] clock, derives the task events from the [task] log
(behavior.task), and adds the [behavior] derived behaviours. Also records,
per source file and per clock, what alignment needs to check later (media
duration, clock span, drift, dropped frames).
"""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from behavior import align as balign
from behavior import clocks as bclocks
from behavior import task as btask
from pipeline.core.orchestrate import StageSkipped, stage

CLOCK_FIELDS = ("kind", "n_frames", "dropped_frames", "drift_ppm", "start", "stop")


def _inputs(session, out):
    files = [t["path"] for t in session.annotations]
    if session.task["log"]:
        files.append(session.task["log"])
    for c in session.clocks.values():
        files += [c[k] for k in ("timestamps", "sync") if c[k]]
    return files


def _read_annotations(t: dict, p: dict) -> pd.DataFrame:
    from behavior.importers import read_annotations
    options = dict(t["options"])
    if p["repair_unpaired"]:
        options.setdefault("repair", True)
    known = p["behaviors"] or None
    return read_annotations(t["path"], t["format"], t["subjects"], t["animal"], options, known, clock=t["clock"])


def build_events(session, p: dict, warn=None) -> tuple[pd.DataFrame, list[dict], dict[str, bclocks.Clock], list[str]]:
    """(events on the master clock, per-source rows, clocks used, repairs); warn(msg) reports oddities."""
    warn = warn or (lambda msg: warnings.warn(msg, UserWarning, stacklevel=2))
    used = {t["clock"] for t in session.annotations}
    if session.task["log"]:
        used.add(session.task["clock"])
    clocks = {n: bclocks.clock_from_config(n, session.clocks[n], p["sync_tolerance_s"]) for n in sorted(used)}
    tables, sources, repairs = [], [], []
    for t in session.annotations:
        df = _read_annotations(t, p)
        clk = clocks[t["clock"]]
        fps = df.attrs.get("fps")
        mapped = bclocks.events_to_master(df, clk, fps)
        tables.append(mapped[list(balign.EVENT_COLUMNS)])
        repairs += [str(r) for r in df.attrs.get("repairs", [])]
        media = df.attrs.get("media_duration_s")
        span = clk.span
        if span is None and media:
            span = tuple(float(x) for x in clk.local_to_master(np.array([0.0, media]), fps))
        sources.append({"file": t["path"], "clock": clk.name, "kind": "annotations",
                        "media_duration_s": float(media) if media else math.nan,
                        "clock_duration_s": clk.local_duration(fps) or math.nan,
                        "span_start": span[0] if span else math.nan, "span_stop": span[1] if span else math.nan,
                        "n_events": int(len(df))})
    if session.task["log"]:
        ids = {session.animals[a]["id"]: a for a in btask.ANIMALS}
        log = btask.read_task_log(session.task["log"], ids)
        clk = clocks[session.task["clock"]]
        log["time_s"] = clk.local_to_master(log["time_s"].to_numpy(float))
        ev = btask.derive_task_events(log, p["coordination_window_s"], p["min_hold_s"])
        tables.append(ev)
        lo, hi = float(log["time_s"].min()), float(log["time_s"].max())
        if clk.span:
            lo, hi = min(lo, clk.span[0]), max(hi, clk.span[1])
        sources.append({"file": session.task["log"], "clock": clk.name, "kind": "task_log",
                        "media_duration_s": math.nan, "clock_duration_s": math.nan,
                        "span_start": lo, "span_stop": hi, "n_events": int(len(log))})
    events = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(balign.EVENT_COLUMNS))
    present = set(events["behavior"])
    for name, members in p["derived"].items():
        missing = [m for m in members if m not in present] if isinstance(members, list) else []
        if missing:
            warn(f"[behavior] derived {name!r}: {missing} never occur in this session")
    events = balign.add_derived(events, p["derived"])
    events = events.sort_values(["animal", "start", "behavior"], kind="stable").reset_index(drop=True)
    return events, sources, clocks, repairs


@stage("behavior", params=("behavior",), inputs=_inputs,
       reads=("annotations", "clock", "task", "animal.id"))
def run(ctx):
    s, p = ctx.session, ctx.params["behavior"]
    if not s.annotations and not s.task["log"]:
        raise StageSkipped("no behaviour sources")
    events, sources, clocks, repairs = build_events(s, p, ctx.warn)
    for r in repairs:
        ctx.warn(f"repaired: {r}")
    ds = balign.events_to_dataset(events)
    src = pd.DataFrame(sources)
    for c in src.columns:
        v = src[c].to_numpy()
        ds[f"input_{c}"] = ("input", v.astype(float) if v.dtype.kind in "fi" else np.asarray(v, dtype=object))
    names = list(clocks)
    for f in CLOCK_FIELDS:
        vals = [clocks[n].report.get(f, math.nan) for n in names]
        ds[f"clock_{f}"] = ("clock", np.asarray(vals, dtype=object if f == "kind" else float))
    ds = ds.assign_coords(clock=np.asarray(names, dtype=object))
    ds.attrs.update({
        "clock": "master", "time_unit": "s",
        "repairs": json.dumps(repairs),
        "task_rules": json.dumps({k: p[k] for k in ("coordination_window_s", "min_hold_s")}),
        "clock_reports": json.dumps({n: c.report for n, c in clocks.items()}, default=float),
    })
    return xr.DataTree.from_dict({"/behavior": ds})
