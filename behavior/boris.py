"""BORIS exports: tabular events (START/STOP/POINT rows) and aggregated events.

Reads CSV, TSV and XLSX (openpyxl). Both the current layout (one header row,
columns "Observation id", ..., "Behavior type", "Time") and older exports
(a block of metadata lines before the column row, state column "Status")
are accepted: the column row is the first one holding "Behavior" and
"Time" (tabular) or "Start (s)" (aggregated). Line numbers in errors are
1-based lines of the file (spreadsheet rows for XLSX).

Documented repairs (options {repair = true}), each recorded in
attrs["repairs"] with its line:
- a STOP with no open START of that subject+behaviour is dropped;
- a second START while one is open is dropped (the state goes on);
- a START never stopped is closed at the media duration when the file
  states it, else at the last time in the file;
- overlapping state bouts (aggregated export) are merged into their union.
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .events import AnnotationError, make_events, map_subject, read_text, resolve_overlaps, source_name

OPTIONS = ("observation",)

_TYPE_COLS = ("Behavior type", "Status")
_DURATION_COLS = ("Media duration (s)", "Total length", "Media total length")


# ---------------------------------------------------------------------------
# raw table access
def read_rows(path) -> list[tuple[int, list[str]]]:
    """(line, cells) of every non-empty row of a CSV/TSV/XLSX file; cells are
    stripped strings."""
    path = Path(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        try:
            import openpyxl
        except ImportError:  # pragma: no cover
            raise AnnotationError(path, "reading XLSX needs openpyxl (pip install openpyxl)") from None
        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds
            raise AnnotationError(path, f"not a readable XLSX workbook: {exc}") from None
        try:
            ws = wb.worksheets[0]
            rows = []
            for i, vals in enumerate(ws.iter_rows(values_only=True), start=1):
                cells = ["" if v is None else (repr(v) if isinstance(v, float) else str(v)).strip() for v in vals]
                while cells and cells[-1] == "":
                    cells.pop()
                if cells:
                    rows.append((i, cells))
        finally:
            wb.close()
        return rows
    text = read_text(path)
    head = text[:65536]
    delim = "\t" if (path.suffix.lower() == ".tsv" or head.count("\t") > head.count(",")) else ","
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    rows, line = [], 1
    for cells in reader:
        cells = [c.strip() for c in cells]
        if any(cells):
            rows.append((line, cells))
        line = reader.line_num + 1
    return rows


def _find_header(path, rows, needed: tuple[str, ...]) -> int:
    for k, (_, cells) in enumerate(rows):
        if all(n in cells for n in needed):
            return k
    raise AnnotationError(path, f"no column row with {' and '.join(repr(n) for n in needed)} found; "
                          "is this a BORIS tabular/aggregated events export?")


def _number(path, line, col, text, allow_empty=False) -> float | None:
    if allow_empty and text in ("", "NA", "nan", "NaN"):
        return None
    try:
        v = float(text)
    except ValueError:
        raise AnnotationError(path, f"column {col!r}: {text!r} is not a number", line) from None
    if not math.isfinite(v):
        raise AnnotationError(path, f"column {col!r}: {text!r} is not a finite number", line)
    return v


def _first_number(text: str) -> float | None:
    """'25', '25.0', '29.97;30' (one value per player) -> first value, or None."""
    for part in str(text).replace(",", ";").split(";"):
        try:
            v = float(part)
        except ValueError:
            continue
        if math.isfinite(v) and v > 0:
            return v
    return None


class _Table:
    """Column access with line-numbered errors."""

    def __init__(self, path, rows, k):
        self.path = path
        self.header_line, self.header = rows[k]
        self.meta = {cells[0]: (cells[1] if len(cells) > 1 else "") for _, cells in rows[:k] if cells}
        self.index = {}
        for j, name in enumerate(self.header):
            self.index.setdefault(name, j)
        self.data = rows[k + 1:]

    def col(self, *names, required=True):
        for n in names:
            if n in self.index:
                return n
        if required:
            raise AnnotationError(self.path, f"missing column {' or '.join(repr(n) for n in names)}; "
                                  f"columns are {self.header}", self.header_line)
        return None

    def get(self, line, cells, name):
        j = self.index[name]
        if j >= len(cells):
            raise AnnotationError(self.path, f"row is truncated: {len(cells)} fields, the column row (line "
                                  f"{self.header_line}) has {len(self.header)}; column {name!r} is missing", line)
        return cells[j]

    def first_value(self, *names):
        n = self.col(*names, required=False)
        if n is None:
            return None
        for _, cells in self.data:
            if self.index[n] < len(cells):
                v = _first_number(cells[self.index[n]])
                if v is not None:
                    return v
        return None


def _select_observation(t: _Table, options):
    """Keep the rows of one observation; several in one file need options.observation."""
    obs_col = t.col("Observation id", required=False)
    wanted = options.get("observation")
    if obs_col is None:
        return t.data, t.meta.get("Observation id") or None
    ids = []
    for line, cells in t.data:
        v = t.get(line, cells, obs_col)
        if v not in ids:
            ids.append(v)
    if wanted is None:
        if len(ids) > 1:
            raise AnnotationError(t.path, f"the file holds {len(ids)} observations {ids}; choose one with "
                                  "options {observation = 'ID'}")
        return t.data, (ids[0] if ids else None)
    if str(wanted) not in ids:
        raise AnnotationError(t.path, f"observation {wanted!r} not found; observations in the file: {ids}")
    return [(ln, c) for ln, c in t.data if t.get(ln, c, obs_col) == str(wanted)], str(wanted)


# ---------------------------------------------------------------------------
def read_boris(path, subjects: Mapping[str, str] | None = None, animal: str = "",
               options: Mapping | None = None, clock: str = "video") -> pd.DataFrame:
    """BORIS tabular events export -> event table (times in seconds as written)."""
    options = dict(options or {})
    repair = bool(options.get("repair", False))
    rows = read_rows(path)
    t = _Table(path, rows, _find_header(path, rows, ("Behavior", "Time")))
    src = source_name(path)
    c_beh, c_time = t.col("Behavior"), t.col("Time")
    c_type = t.col(*_TYPE_COLS)
    c_subj = t.col("Subject", required=False)
    data, obs = _select_observation(t, options)
    fps = t.first_value("FPS", "FPS (frame/s)")
    duration = t.first_value(*_DURATION_COLS)

    repairs: list[str] = []
    out: list[dict] = []
    open_: dict[tuple, dict] = {}
    last_time = 0.0
    for line, cells in data:
        beh = t.get(line, cells, c_beh)
        typ = t.get(line, cells, c_type).upper()
        time = _number(path, line, c_time, t.get(line, cells, c_time))
        subj = t.get(line, cells, c_subj) if c_subj else ""
        if not beh:
            raise AnnotationError(path, "empty 'Behavior'", line)
        if typ not in ("START", "STOP", "POINT"):
            raise AnnotationError(path, f"column {c_type!r}: {typ!r} is not START, STOP or POINT", line)
        a = map_subject(subj, subjects, animal, path, line)
        last_time = max(last_time, time)
        key = (subj, beh)
        if typ == "POINT":
            out.append(dict(animal=a, behavior=beh, start=time, stop=time, kind="point", source=src, line=line))
        elif typ == "START":
            if key in open_:
                msg = (f"START of {beh!r} (subject {subj!r}) while the START at line {open_[key]['line']} "
                       "is still open (no STOP between)")
                if not repair:
                    raise AnnotationError(path, msg + "; fix the file or pass options {repair = true}", line)
                repairs.append(f"{src}, line {line}: dropped duplicate START: {msg}")
                continue
            open_[key] = dict(animal=a, behavior=beh, start=time, stop=None, kind="state", source=src, line=line)
        else:  # STOP
            ev = open_.pop(key, None)
            if ev is None:
                msg = f"STOP of {beh!r} (subject {subj!r}) without a START"
                if not repair:
                    raise AnnotationError(path, msg + "; fix the file or pass options {repair = true}", line)
                repairs.append(f"{src}, line {line}: dropped {msg}")
                continue
            if time < ev["start"]:
                raise AnnotationError(path, f"STOP of {beh!r} at {time:g} s is before its START at "
                                      f"{ev['start']:g} s (line {ev['line']})", line)
            ev["stop"] = time
            out.append(ev)
    out += _close_unpaired(open_.values(), duration, last_time, repair, repairs, path, src)
    out = resolve_overlaps(out, path, repair, repairs)
    return make_events(out, clock=clock, repairs=repairs, fps=fps, media_duration_s=duration, observation=obs)


def _close_unpaired(unpaired, duration: float | None, last_time: float, repair: bool, repairs: list[str],
                    path, src: str) -> list[dict]:
    """State events whose START has no STOP: an error, or with `repair` closed at the media duration
    (else the file's last time), each repair noted in `repairs`."""
    out = []
    for ev in unpaired:
        msg = f"START of {ev['behavior']!r} has no STOP"
        if not repair:
            raise AnnotationError(path, msg + "; fix the file or pass options {repair = true}", ev["line"])
        end = duration if duration is not None and duration >= ev["start"] else last_time
        why = "media duration" if end == duration else "last time in the file"
        repairs.append(f"{src}, line {ev['line']}: {msg}: closed at the {why} ({end:g} s)")
        ev["stop"] = end
        out.append(ev)
    return out


def read_boris_aggregated(path, subjects: Mapping[str, str] | None = None, animal: str = "",
                          options: Mapping | None = None, clock: str = "video") -> pd.DataFrame:
    """BORIS aggregated events export (one row per bout: Start (s), Stop (s))."""
    options = dict(options or {})
    repair = bool(options.get("repair", False))
    rows = read_rows(path)
    t = _Table(path, rows, _find_header(path, rows, ("Behavior", "Start (s)")))
    src = source_name(path)
    c_beh, c_start, c_stop = t.col("Behavior"), t.col("Start (s)"), t.col("Stop (s)")
    c_type = t.col("Behavior type", required=False)
    c_subj = t.col("Subject", required=False)
    data, obs = _select_observation(t, options)
    repairs: list[str] = []
    out = []
    for line, cells in data:
        beh = t.get(line, cells, c_beh)
        typ = t.get(line, cells, c_type).upper() if c_type else "STATE"
        if typ not in ("STATE", "POINT"):
            raise AnnotationError(path, f"column {c_type!r}: {typ!r} is not STATE or POINT", line)
        if not beh:
            raise AnnotationError(path, "empty 'Behavior'", line)
        start = _number(path, line, c_start, t.get(line, cells, c_start))
        stop = _number(path, line, c_stop, t.get(line, cells, c_stop), allow_empty=(typ == "POINT"))
        if typ == "POINT":
            stop = start
        elif stop < start:
            raise AnnotationError(path, f"'Stop (s)' {stop:g} is before 'Start (s)' {start:g}", line)
        a = map_subject(t.get(line, cells, c_subj) if c_subj else "", subjects, animal, path, line)
        out.append(dict(animal=a, behavior=beh, start=start, stop=stop,
                        kind="point" if typ == "POINT" else "state", source=src, line=line))
    out = resolve_overlaps(out, path, repair, repairs)
    return make_events(out, clock=clock, repairs=repairs, fps=t.first_value("FPS", "FPS (frame/s)"),
                       media_duration_s=t.first_value(*_DURATION_COLS), observation=obs)


# ---------------------------------------------------------------------------
# writers (for round trips, the simulator and tests)
_V8_COLUMNS = ["Observation id", "Observation date", "Description", "Observation type", "Source",
               "Time offset (s)", "Media duration (s)", "FPS", "Subject", "Behavior", "Behavioral category",
               "Behavior type", "Time", "Media file name", "Image index", "Image file path", "Comment"]
_OLD_COLUMNS = ["Time", "Media file path", "Total length", "FPS", "Subject", "Behavior",
                "Behavioral category", "Comment", "Status"]


def _names(subjects):
    names = {"A": "A", "B": "B"}
    names.update(subjects or {})
    return names


def _save(path, rows):
    path = Path(path)
    if path.suffix.lower() == ".xlsx":
        import openpyxl
        wb = openpyxl.Workbook()
        ws = wb.active
        for r in rows:
            ws.append(list(r))
        wb.save(path)
        return
    delim = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter=delim, lineterminator="\n").writerows(
            [[repr(v) if isinstance(v, float) else v for v in r] for r in rows])


def write_boris_tabular(events: pd.DataFrame, path, fps: float = 30.0, media_duration_s: float | None = None,
                        subjects: Mapping[str, str] | None = None, observation_id: str = "obs1",
                        media_file: str = "video.mp4", layout: str = "current") -> Path:
    """Write an event table as a BORIS tabular events export.

    subjects: animal -> subject name written in the file (default 'A'/'B').
    layout: "current" (one column row, "Behavior type") or "old" (metadata
    block before the column row, "Status"). .csv, .tsv or .xlsx by suffix.
    Times are written exactly (repr of the float), so a read gives them back.
    """
    names = _names(subjects)
    dur = float(media_duration_s) if media_duration_s is not None else float(events["stop"].max() if len(events) else 0.0)
    recs = []  # (time, rank, seq, type, row)
    for seq, ev in enumerate(events.itertuples(index=False)):
        if ev.kind == "point":
            recs.append((ev.start, 1, seq, "POINT", ev))
        else:
            # at equal times a STOP comes before another bout's START; a zero-length bout keeps START, STOP
            recs.append((ev.start, 2, seq, "START", ev))
            recs.append((ev.stop, 3 if ev.stop == ev.start else 0, seq, "STOP", ev))
    recs.sort(key=lambda r: (r[0], r[1], r[2]))
    rows = []
    if layout == "current":
        rows.append(_V8_COLUMNS)
        for time, _, _, typ, ev in recs:
            rows.append([observation_id, "2024-01-01 00:00:00", "", "Media file(s)", f"player #1:{media_file}",
                         0.0, dur, float(fps), names[ev.animal], ev.behavior, "", typ, float(time), media_file,
                         int(round(time * fps)), "NA", ""])
    elif layout == "old":
        rows += [["Observation id", observation_id], ["Media file(s)"], ["Player #1", media_file],
                 ["Observation date", "2024-01-01 00:00"], ["Description"], ["Time offset (s)", "0"],
                 ["independent variables"], ["variable", "value"], _OLD_COLUMNS]
        for time, _, _, typ, ev in recs:
            rows.append([float(time), media_file, dur, float(fps), names[ev.animal], ev.behavior, "", "", typ])
    else:
        raise ValueError(f"layout must be 'current' or 'old', got {layout!r}")
    _save(path, rows)
    return Path(path)


def write_boris_aggregated(events: pd.DataFrame, path, fps: float = 30.0, media_duration_s: float | None = None,
                           subjects: Mapping[str, str] | None = None, observation_id: str = "obs1",
                           media_file: str = "video.mp4") -> Path:
    """Write an event table as a BORIS aggregated events export."""
    names = _names(subjects)
    dur = float(media_duration_s) if media_duration_s is not None else float(events["stop"].max() if len(events) else 0.0)
    rows = [["Observation id", "Observation date", "Description", "Observation type", "Source", "Time offset (s)",
             "Media duration (s)", "FPS", "Subject", "Behavior", "Behavioral category", "Behavior type",
             "Start (s)", "Stop (s)", "Duration (s)", "Media file name", "Comment start", "Comment stop"]]
    for ev in events.sort_values("start", kind="stable").itertuples(index=False):
        point = ev.kind == "point"
        rows.append([observation_id, "2024-01-01 00:00:00", "", "Media file(s)", f"player #1:{media_file}", 0.0,
                     dur, float(fps), names[ev.animal], ev.behavior, "", "POINT" if point else "STATE",
                     float(ev.start), "NA" if point else float(ev.stop),
                     "NA" if point else float(ev.stop - ev.start), media_file, "", ""])
    _save(path, rows)
    return Path(path)
