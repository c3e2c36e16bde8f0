"""The event table every annotation importer returns, and its checks.

An event table is a `pandas.DataFrame` with one row per behaviour bout or
point event (docs/design.md, "Event tables"):

    animal    "A" or "B"
    behavior  str, the label as written in the file
    start     float, seconds on the file's clock
    stop      float, seconds; == start for point events
    kind      "state" or "point"
    source    file name the row came from
    line      int, 1-based line (or spreadsheet row) in the source; 0 when
              the event has no single line (e.g. a bout built from frames)

attrs: `time_unit` ("s"), `clock`, `repairs` (list of str: every change an
importer made to the file's content, with the lines involved),
`media_duration_s` and `fps` when the file states them.

Errors are `AnnotationError`s whose message starts with "FILE, line N:" so a
user can jump to the offending row.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from pipeline.core.animals import ANIMALS

COLUMNS = ("animal", "behavior", "start", "stop", "kind", "source", "line")
KINDS = ("state", "point")


class AnnotationError(ValueError):
    """An annotation file is malformed. The message names the file and, where
    one applies, the line."""

    def __init__(self, path, msg: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        where = f"{self.path}, line {line}" if line else self.path
        super().__init__(f"{where}: {msg}")


def where(path, line: int | None = None) -> str:
    return f"{path}, line {line}" if line else str(path)


# ---------------------------------------------------------------------------
def make_events(rows: Iterable[Mapping], *, clock: str = "video", repairs: list[str] | None = None,
                **attrs) -> pd.DataFrame:
    """Build a sorted event table from dicts with the COLUMNS keys.

    Rows are sorted by (start, animal, behavior, line); extra `attrs` (e.g.
    fps, media_duration_s) are stored in `df.attrs` unless None.
    """
    df = pd.DataFrame(list(rows), columns=list(COLUMNS))
    df = df.astype({"animal": str, "behavior": str, "start": float, "stop": float,
                    "kind": str, "source": str, "line": int})
    df = df.sort_values(["start", "animal", "behavior", "line"], kind="stable").reset_index(drop=True)
    df.attrs["time_unit"] = "s"
    df.attrs["clock"] = clock
    df.attrs["repairs"] = list(repairs or [])
    for k, v in attrs.items():
        if v is not None:
            df.attrs[k] = v
    return df


def validate_events(df: pd.DataFrame, name: str = "events") -> pd.DataFrame:
    """Check an event table against the contract; raise ValueError naming the
    first offending row. Returns df unchanged."""
    missing = [c for c in COLUMNS[:6] if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; an event table has {list(COLUMNS[:6])}")
    bad = ~df["animal"].isin(ANIMALS)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} row {i}: animal {df['animal'].iloc[i]!r} is not 'A' or 'B'")
    bad = ~df["kind"].isin(KINDS)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} row {i}: kind {df['kind'].iloc[i]!r} is not 'state' or 'point'")
    start, stop = df["start"].to_numpy(float), df["stop"].to_numpy(float)
    bad = ~np.isfinite(start) | ~np.isfinite(stop)
    if bad.any():
        raise ValueError(f"{name} row {int(np.flatnonzero(bad)[0])}: start/stop must be finite seconds")
    bad = stop < start
    if bad.any():
        raise ValueError(f"{name} row {int(np.flatnonzero(bad)[0])}: stop before start")
    bad = (df["kind"].to_numpy() == "point") & (stop != start)
    if bad.any():
        raise ValueError(f"{name} row {int(np.flatnonzero(bad)[0])}: a point event needs stop == start")
    return df


# ---------------------------------------------------------------------------
def map_subject(subject: str, subjects: Mapping[str, str] | None, animal: str, path, line: int | None,
                what: str = "subject") -> str:
    """Map a file's subject name to 'A'/'B'.

    `subjects` (file name -> A/B) wins; an empty subject (BORIS "No focal
    subject") or any subject of a file with no `subjects` map goes to
    `animal` when that is set. Anything else is an error naming the file,
    line and the known subjects.
    """
    subjects = dict(subjects or {})
    s = "" if subject is None else str(subject).strip()
    if s in subjects:
        a = subjects[s]
        if a not in ANIMALS:
            raise AnnotationError(path, f"{what} {s!r} maps to {a!r}; map subjects to 'A' or 'B'", line)
        return a
    if animal and (not subjects or s in ("", "No focal subject")):
        return animal
    known = ", ".join(repr(k) for k in subjects) or "none"
    hint = "" if subjects else " (give 'subjects' or 'animal' in [[annotations]])"
    raise AnnotationError(path, f"unknown {what} {s!r}; known {what}s: {known}{hint}", line)


def check_known_behaviors(df: pd.DataFrame, known: Iterable[str] | None, path) -> None:
    """Every label must be in `known` (when given): error names file, line, label."""
    if known is None:
        return
    known = list(known)
    bad = ~df["behavior"].isin(known)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        line = int(df["line"].iloc[i]) if "line" in df else None
        raise AnnotationError(path, f"unknown behaviour {df['behavior'].iloc[i]!r}; allowed behaviours: "
                              + ", ".join(repr(k) for k in known), line or None)


def resolve_overlaps(rows: list[dict], path, repair: bool, repairs: list[str]) -> list[dict]:
    """State events of the same (animal, behaviour) must not overlap.

    Overlap means the next bout starts before the previous one stops
    (touching bouts, next.start == prev.stop, are fine). Without `repair`
    it is an error naming both lines; with `repair` the two are merged into
    their union and the merge is recorded in `repairs`.
    """
    out = [r for r in rows if r["kind"] != "state"]
    states = sorted((r for r in rows if r["kind"] == "state"),
                    key=lambda r: (r["animal"], r["behavior"], r["start"], r["line"]))
    prev = None
    for r in states:
        if prev is not None and (r["animal"], r["behavior"]) == (prev["animal"], prev["behavior"]) \
                and r["start"] < prev["stop"]:
            msg = (f"state events of {r['behavior']!r} for animal {r['animal']} overlap: "
                   f"[{prev['start']:g}, {prev['stop']:g}] s (line {prev['line']}) and "
                   f"[{r['start']:g}, {r['stop']:g}] s (line {r['line']})")
            if not repair:
                raise AnnotationError(path, msg + "; fix the file or pass options {repair = true} to merge them",
                                      r["line"] or None)
            repairs.append(f"{where(path, r['line'])}: merged overlapping {msg}")
            prev["stop"] = max(prev["stop"], r["stop"])
            continue
        prev = dict(r)
        out.append(prev)
    return out


def runs_to_bouts(mask: np.ndarray, fps: float, min_frames: int = 1) -> list[tuple[float, float]]:
    """Runs of True in a per-frame mask -> [(start_s, stop_s)].

    mask: (frame,) bool; frame f covers [f/fps, (f+1)/fps). Runs shorter
    than `min_frames` are dropped.
    """
    m = np.asarray(mask, bool)
    if m.size == 0:
        return []
    d = np.diff(np.concatenate([[0], m.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    keep = (stops - starts) >= max(1, int(min_frames))
    return [(s / fps, e / fps) for s, e in zip(starts[keep], stops[keep])]


def check_options(path, fmt: str, options: Mapping | None, allowed: Iterable[str]) -> dict:
    """Unknown option keys are an error listing the allowed ones."""
    options = dict(options or {})
    allowed = sorted(set(allowed) | {"repair"})
    bad = sorted(set(options) - set(allowed))
    if bad:
        raise AnnotationError(path, f"unknown option(s) {bad} for format {fmt!r}; allowed: {allowed}")
    return options


def positive_number(path, options: Mapping, key: str, required: bool = True, default=None) -> float | None:
    v = options.get(key, default)
    if v is None:
        if required:
            raise AnnotationError(path, f"option {key!r} (a positive number) is required")
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise AnnotationError(path, f"option {key!r} must be a positive number, got {v!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise AnnotationError(path, f"option {key!r} must be a positive number, got {v!r}")
    return v


# Annotation tools on Windows (BORIS, Bento) write the system code page when not UTF-8.
TEXT_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")


def read_text(path) -> str:
    """A text annotation file decoded as UTF-8 (BOM allowed), else Windows cp1252, else latin-1.

    Every byte string decodes as latin-1, so labels are never silently replaced by U+FFFD.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AnnotationError(path, f"cannot read: {exc.strerror or exc}") from None
    for enc in TEXT_ENCODINGS:
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte")   # pragma: no cover


def source_name(path) -> str:
    return Path(path).name
