"""Bento / MARS `.annot` files.

Layout (text; Bento writes tabs):

    Bento annotation file
    Movie file(s):  mouse01_top.seq
    Stimulus name:
    Annotation start frame: 1
    Annotation stop frame: 9000
    Annotation framerate: 30
    List of channels:
    Ch1
    List of annotations:
    attack
    sniff

    Ch1----------
    >attack
    Start   Stop    Duration
    91      157     67
    ...

Bouts are in frames: 1-based, Start..Stop inclusive, so frame f covers
[(f-1)/fps, f/fps) s and a bout is [(Start-1)/fps, Stop/fps). Bento also
writes bouts in seconds; like Bento, a file whose bout values hold a decimal
point is read as seconds (values taken as written). `options.units`
("frames"/"seconds"/"auto") overrides that guess. Duration is not used.

Channels map to animals with options.channels {Ch1 = "A"}, else the
`subjects` table, else `animal` for every channel.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .events import AnnotationError, make_events, map_subject, read_text, resolve_overlaps, source_name

OPTIONS = ("channels", "fps", "units")

_CHANNEL_RE = re.compile(r"^(.*?\S)\s*-{3,}\s*$")
_KEY_RE = re.compile(r"^\s*([A-Za-z][A-Za-z ()]*?)\s*:\s*(.*)$")


def read_annot(path, subjects: Mapping[str, str] | None = None, animal: str = "",
               options: Mapping | None = None, clock: str = "video") -> pd.DataFrame:
    """Bento/MARS .annot -> event table (all bouts are 'state' events)."""
    options = dict(options or {})
    repair = bool(options.get("repair", False))
    units = options.get("units", "auto")
    if units not in ("auto", "frames", "seconds"):
        raise AnnotationError(path, f"option 'units' must be 'auto', 'frames' or 'seconds', got {units!r}")
    chan_map = dict(options.get("channels") or subjects or {})
    src = source_name(path)
    lines = read_text(path).splitlines()     # UTF-8, else cp1252/latin-1, like BORIS files

    meta, first_channel = _header(path, lines)
    fps = _framerate(path, meta, options)
    recs = _bout_records(path, lines, first_channel)
    units = _units(path, recs, units, fps)
    out = []
    for line, ch, beh, start, stop, _ in recs:
        a = map_subject(ch, chan_map, animal, path, line, what="channel")
        if units == "frames":
            t0, t1 = (start - 1) / fps, stop / fps
        else:
            t0, t1 = start, stop
        out.append(dict(animal=a, behavior=beh, start=t0, stop=t1, kind="state", source=src, line=line))
    repairs: list[str] = []
    out = resolve_overlaps(out, path, repair, repairs)
    movie = meta.get("movie file(s)", (0, ""))[1] or None
    return make_events(out, clock=clock, repairs=repairs, fps=fps, annot_units=units, movie=movie)


def _header(path, lines: list[str]) -> tuple[dict[str, tuple[int, str]], int]:
    """({lower-case key: (line, value)} of the 'Key: value' lines before the first channel, the
    1-based line of the first channel section)."""
    meta: dict[str, tuple[int, str]] = {}
    for i, raw in enumerate(lines, start=1):
        if _CHANNEL_RE.match(raw.strip()):
            return meta, i
        m = _KEY_RE.match(raw)
        if m:
            meta[m.group(1).strip().lower()] = (i, m.group(2).strip())
    raise AnnotationError(path, "no channel section ('Ch1----------') found; is this a Bento .annot file?")


def _framerate(path, meta: dict, options: dict) -> float | None:
    """options.fps, else the 'Annotation framerate:' line (checked), else None."""
    fps = None
    if "annotation framerate" in meta:
        ln, txt = meta["annotation framerate"]
        try:
            fps = float(txt)
        except ValueError:
            raise AnnotationError(path, f"'Annotation framerate: {txt}' is not a number", ln) from None
        if not (math.isfinite(fps) and fps > 0):
            raise AnnotationError(path, f"'Annotation framerate: {txt}' must be positive", ln)
    if options.get("fps") is not None:
        fps = float(options["fps"])
    return fps


def _bout_records(path, lines: list[str], first_channel: int) -> list[tuple]:
    """The channel sections as (line, channel, behaviour, start, stop, start+stop text) records."""
    recs = []
    channel = behavior = None
    expect_header = False
    for i in range(first_channel, len(lines) + 1):
        s = lines[i - 1].strip()
        if not s:
            continue
        m = _CHANNEL_RE.match(s)
        if m:
            channel, behavior, expect_header = m.group(1), None, False
            continue
        if s.startswith(">"):
            behavior = s[1:].strip()
            if not behavior:
                raise AnnotationError(path, "empty behaviour name after '>'", i)
            expect_header = True
            continue
        if expect_header and s.lower().startswith("start"):
            expect_header = False
            continue
        if behavior is None:
            raise AnnotationError(path, f"{s!r} is outside a behaviour ('>name') block", i)
        recs.append((i, channel, behavior, *_bout(path, s, i)))
    return recs


def _bout(path, s: str, i: int) -> tuple[float, float, str]:
    """(start, stop, start+stop text) of bout row `s` (line i)."""
    parts = s.split()
    if len(parts) < 2:
        raise AnnotationError(path, f"bout row {s!r} needs 'Start Stop Duration'", i)
    try:
        start, stop = float(parts[0]), float(parts[1])
    except ValueError:
        raise AnnotationError(path, f"bout row {s!r}: Start and Stop must be numbers", i) from None
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise AnnotationError(path, f"bout row {s!r}: Start and Stop must be finite", i)
    if stop < start:
        raise AnnotationError(path, f"bout row {s!r}: Stop before Start", i)
    return start, stop, parts[0] + parts[1]


def _units(path, recs: list[tuple], units: str, fps: float | None) -> str:
    """'frames' or 'seconds' ('auto': seconds when a bout value holds a decimal point or exponent);
    frame bouts need a frame rate and whole frames >= 1."""
    if units == "auto":
        units = "seconds" if any(("." in r[5]) or ("e" in r[5].lower()) for r in recs) else "frames"
    if units == "frames":
        if fps is None:
            raise AnnotationError(path, "no 'Annotation framerate:' line; bouts are in frames, so the frame rate is "
                                  "needed (add the line or give options {fps = ...})")
        for r in recs:
            if r[3] != int(r[3]) or r[4] != int(r[4]) or r[3] < 1:
                raise AnnotationError(path, f"bout {r[3]:g} {r[4]:g}: frames must be whole numbers >= 1", r[0])
    return units


def write_annot(events: pd.DataFrame, path, fps: float, channels: Mapping[str, str] | None = None,
                units: str = "frames", movie: str = "video.seq", stop_frame: int | None = None) -> Path:
    """Write state events as a Bento .annot file.

    channels: animal -> channel name (default {'A': 'Ch1', 'B': 'Ch2'}).
    units "frames": times must sit on frame edges (k/fps) and each bout be
    at least one frame long; "seconds": times written exactly.
    """
    channels = dict({"A": "Ch1", "B": "Ch2"}, **(channels or {}))
    if (events["kind"] == "point").any():
        raise ValueError("a .annot file holds bouts only; point events cannot be written")
    behaviors = sorted(events["behavior"].unique())
    used = [a for a in ("A", "B") if (events["animal"] == a).any()] or ["A"]
    if stop_frame is None:
        stop_frame = int(math.ceil(float(events["stop"].max()) * fps)) if len(events) else 1
    out = ["Bento annotation file", f"Movie file(s):  {movie}", "", "Stimulus name: ",
           "Annotation start frame: 1", f"Annotation stop frame: {stop_frame}", f"Annotation framerate: {fps:g}",
           "", "List of channels:", *[channels[a] for a in used], "", "List of annotations:", *behaviors, ""]
    for a in used:
        out.append(f"{channels[a]}----------")
        ev_a = events[events["animal"] == a]
        for beh in behaviors:
            ev = ev_a[ev_a["behavior"] == beh].sort_values("start")
            out += [f">{beh}", "Start\t Stop\t Duration "]
            for e in ev.itertuples(index=False):
                if units == "frames":
                    f0, f1 = e.start * fps, e.stop * fps
                    if abs(f0 - round(f0)) > 1e-6 or abs(f1 - round(f1)) > 1e-6 or round(f1) <= round(f0):
                        raise ValueError(f"bout [{e.start}, {e.stop}] s of {beh!r} is not on frame edges of {fps} Hz "
                                         "(or shorter than a frame); write units='seconds'")
                    s0, s1 = int(round(f0)) + 1, int(round(f1))
                    out.append(f"{s0}\t{s1}\t{s1 - s0 + 1}")
                elif units == "seconds":
                    out.append(f"{float(e.start)!r}\t{float(e.stop)!r}\t{float(e.stop - e.start)!r}")
                else:
                    raise ValueError(f"units must be 'frames' or 'seconds', got {units!r}")
            out.append("")
        out.append("")
    Path(path).write_text("\n".join(out) + "\n", encoding="utf-8")
    return Path(path)
