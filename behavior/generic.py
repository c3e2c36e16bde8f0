"""Generic CSV annotations: intervals, or per-frame labels.

layout "intervals" (default): one row per event, columns (names
configurable through options.columns) `animal`, `behavior`, `start`,
`stop`; an empty `stop` is a point event. `animal` values go through the
`subjects` map (or must be A/B); without an animal column, `animal` is used.
options.time_unit "s" (default), "ms" or "frames" (then options.fps).

layout "frames": one row per video frame (row order = frame 0, 1, ...;
options.frame_column to give explicit frame numbers), either a label
column (options.label_column, default "behavior"; labels in
options.background, default ["", "none", "other"], mean no behaviour) or
one 0/1 column per behaviour (options.behavior_columns). Frame f covers
[f/fps, (f+1)/fps) s.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .events import (AnnotationError, make_events, map_subject, positive_number, read_text, resolve_overlaps,
                     runs_to_bouts, source_name)

OPTIONS = ("layout", "columns", "time_unit", "fps", "label_column", "behavior_columns", "background",
           "frame_column")
_DEFAULT_COLUMNS = {"animal": "animal", "behavior": "behavior", "start": "start", "stop": "stop"}


def _read(path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    text = read_text(path)
    delim = "\t" if text[:4096].count("\t") > text[:4096].count(",") else ","
    reader = csv.reader(text.splitlines(), delimiter=delim)
    rows = [(i, [c.strip() for c in r]) for i, r in enumerate(reader, start=1) if any(c.strip() for c in r)]
    if not rows:
        raise AnnotationError(path, "empty file")
    return rows[0][1], rows[1:]


def read_generic(path, subjects: Mapping[str, str] | None = None, animal: str = "",
                 options: Mapping | None = None, clock: str = "video") -> pd.DataFrame:
    options = dict(options or {})
    layout = options.get("layout", "intervals")
    if layout == "intervals":
        return _intervals(path, subjects, animal, options, clock)
    if layout == "frames":
        return _frames(path, subjects, animal, options, clock)
    raise AnnotationError(path, f"option 'layout' must be 'intervals' or 'frames', got {layout!r}")


def _intervals(path, subjects, animal, options, clock):
    repair = bool(options.get("repair", False))
    names = dict(_DEFAULT_COLUMNS, **(options.get("columns") or {}))
    unit = options.get("time_unit", "s")
    if unit not in ("s", "ms", "frames"):
        raise AnnotationError(path, f"option 'time_unit' must be 's', 'ms' or 'frames', got {unit!r}")
    fps = positive_number(path, options, "fps", required=(unit == "frames"))
    scale = {"s": 1.0, "ms": 1e-3, "frames": 1.0 / fps if fps else None}[unit]
    header, rows = _read(path)
    idx = {h: j for j, h in enumerate(header)}
    for key in ("behavior", "start"):
        if names[key] not in idx:
            raise AnnotationError(path, f"missing column {names[key]!r} ({key}); columns are {header}", 1)
    has_animal, has_stop = names["animal"] in idx, names["stop"] in idx
    if not has_animal and not animal:
        raise AnnotationError(path, f"missing column {names['animal']!r} and no 'animal' given for the file", 1)
    src = source_name(path)
    out = []
    for line, cells in rows:
        if len(cells) < len(header):
            raise AnnotationError(path, f"row is truncated: {len(cells)} fields, header has {len(header)}", line)

        def num(key, allow_empty=False):
            txt = cells[idx[names[key]]]
            if allow_empty and txt in ("", "NA", "nan"):
                return None
            try:
                v = float(txt)
            except ValueError:
                raise AnnotationError(path, f"column {names[key]!r}: {txt!r} is not a number", line) from None
            if not math.isfinite(v):
                raise AnnotationError(path, f"column {names[key]!r}: {txt!r} is not finite", line)
            return v * scale

        beh = cells[idx[names["behavior"]]]
        if not beh:
            raise AnnotationError(path, f"empty {names['behavior']!r}", line)
        start = num("start")
        stop = num("stop", allow_empty=True) if has_stop else None
        if stop is not None and stop < start:
            raise AnnotationError(path, f"stop {stop:g} s is before start {start:g} s", line)
        raw_animal = cells[idx[names["animal"]]] if has_animal else ""
        subj_map = subjects if subjects else ({"A": "A", "B": "B"} if has_animal else {})
        a = map_subject(raw_animal, subj_map, animal if not has_animal else "", path, line, what="animal")
        out.append(dict(animal=a, behavior=beh, start=start, stop=start if stop is None else stop,
                        kind="point" if stop is None else "state", source=src, line=line))
    repairs: list[str] = []
    out = resolve_overlaps(out, path, repair, repairs)
    return make_events(out, clock=clock, repairs=repairs, fps=fps)


def _frames(path, subjects, animal, options, clock):
    fps = positive_number(path, options, "fps")
    if animal not in ("A", "B"):
        raise AnnotationError(path, "per-frame labels describe one animal: give 'animal' in [[annotations]]")
    header, rows = _read(path)
    idx = {h: j for j, h in enumerate(header)}
    for line, cells in rows:
        if len(cells) < len(header):
            raise AnnotationError(path, f"row is truncated: {len(cells)} fields, header has {len(header)}", line)
    n = len(rows)
    frames = np.arange(n)
    fcol = options.get("frame_column")
    if fcol is not None:
        if fcol not in idx:
            raise AnnotationError(path, f"missing column {fcol!r} (frame_column); columns are {header}", 1)
        try:
            frames = np.array([int(c[idx[fcol]]) for _, c in rows])
        except ValueError:
            bad = next(ln for ln, c in rows if not c[idx[fcol]].lstrip("-").isdigit())
            raise AnnotationError(path, f"column {fcol!r} must hold whole frame numbers", bad) from None
        if n and (np.any(np.diff(frames) <= 0) or frames[0] < 0):
            k = int(np.flatnonzero(np.diff(frames) <= 0)[0]) + 1 if np.any(np.diff(frames) <= 0) else 0
            raise AnnotationError(path, "frame numbers must increase from >= 0", rows[k][0])
    length = int(frames[-1]) + 1 if n else 0
    masks: dict[str, np.ndarray] = {}
    bcols = options.get("behavior_columns")
    if bcols:
        for b in bcols:
            if b not in idx:
                raise AnnotationError(path, f"missing column {b!r} (behavior_columns); columns are {header}", 1)
            m = np.zeros(length, bool)
            for (line, cells), f in zip(rows, frames):
                v = cells[idx[b]]
                if v not in ("0", "1", "0.0", "1.0"):
                    raise AnnotationError(path, f"column {b!r}: {v!r} is not 0 or 1", line)
                m[f] = v in ("1", "1.0")
            masks[b] = m
    else:
        lcol = options.get("label_column", "behavior")
        if lcol not in idx:
            raise AnnotationError(path, f"missing column {lcol!r} (label_column); columns are {header}", 1)
        background = set(options.get("background", ["", "none", "other"]))
        for (line, cells), f in zip(rows, frames):
            lab = cells[idx[lcol]]
            if lab in background:
                continue
            masks.setdefault(lab, np.zeros(length, bool))[f] = True
    src = source_name(path)
    out = []
    line_of = {int(f): ln for (ln, _), f in zip(rows, frames)}
    for b, m in masks.items():
        for s, e in runs_to_bouts(m, fps):
            out.append(dict(animal=animal, behavior=b, start=s, stop=e, kind="state", source=src,
                            line=line_of.get(int(round(s * fps)), 0)))
    return make_events(out, clock=clock, fps=fps, n_frames=length)


def write_generic(events: pd.DataFrame, path) -> Path:
    """Write an event table as an intervals CSV (point events get an empty stop)."""
    rows = [["animal", "behavior", "start", "stop"]]
    for e in events.itertuples(index=False):
        rows.append([e.animal, e.behavior, repr(float(e.start)), "" if e.kind == "point" else repr(float(e.stop))])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return Path(path)
