"""Cooperation-task log -> per-animal task events (METHODS.md section 5, Variables).

The log (docs/design.md, "Task log layout") has one row per event:
`time_s` (task clock), `animal` (A or B, or the animal's id), `event` in
{port_entry, port_exit, poke, reward}, sorted by time.

Derived events, per animal X (rules in docs/alignment.md; every window is a
parameter of the `behavior` section):

- `poke` (point): each poke of X.
- `poke_coordinated` / `poke_uncoordinated` (point): a poke of X is
  coordinated when the partner pokes within `coordination_window_s` of it,
  before or after (|t_partner - t| <= window); otherwise uncoordinated.
- `hold` (state): the wait at the port before a poke. It starts at X's
  port_entry, or at X's previous poke if that came later within the same
  port visit, and ends at the poke. Kept if it lasts >= `min_hold_s`. A poke
  made while X is not in the port (no entry since the last exit) has no hold.
- `at_port` (state): port_entry to the next port_exit (open visits end at the
  last log time).
- `port_entry`, `port_exit`, `reward` (point): X's own rows.
- `partner_arrival` (point): the partner's port entries.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pipeline.core.animals import ANIMALS

EVENTS = ("port_entry", "port_exit", "poke", "reward")
COLUMNS = ("animal", "behavior", "start", "stop", "kind", "source")


class TaskLogError(ValueError):
    """The task log is malformed. The message names the file and line."""


def read_task_log(path: str | Path, ids: dict[str, str] | None = None) -> pd.DataFrame:
    """Read and validate a task log.

    ids: optional map from animal ids used in the file (e.g. 'm123') to roles A/B.
    Returns a DataFrame (time_s float on the task clock, animal in {A, B},
    event str) with attrs source (file name) and line (1-based CSV line of each row).
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype={"animal": str, "event": str})
    except FileNotFoundError:
        raise TaskLogError(f"{path}: task log not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TaskLogError(f"{path}: cannot read task log CSV ({exc}); expected columns time_s, animal, event") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in ("time_s", "animal", "event") if c not in df.columns]
    if missing:
        raise TaskLogError(f"{path}: task log lacks column(s) {missing}; expected columns time_s, animal, event "
                           f"(got {list(df.columns)})")
    return validate_task_log(df[["time_s", "animal", "event"]].copy(), str(path), ids)


def validate_task_log(df: pd.DataFrame, source: str = "task log", ids: dict[str, str] | None = None) -> pd.DataFrame:
    """Check a (time_s, animal, event) table; errors name `source` and the CSV line (header = line 1)."""
    ids = dict(ids or {})
    ids.update({a: a for a in ANIMALS})
    line = lambda i: i + 2  # noqa: E731  (row i of the data is line i + 2 of the file)
    t = pd.to_numeric(df["time_s"], errors="coerce")
    bad = np.flatnonzero(~np.isfinite(t.to_numpy(float)))
    if bad.size:
        i = int(bad[0])
        raise TaskLogError(f"{source}: line {line(i)}: time_s = {df['time_s'].iloc[i]!r} is not a number")
    animal = df["animal"].astype(str).str.strip()
    bad = np.flatnonzero(~animal.isin(list(ids)).to_numpy())
    if bad.size:
        i = int(bad[0])
        raise TaskLogError(f"{source}: line {line(i)}: unknown animal {animal.iloc[i]!r}; expected one of "
                           f"{sorted(ids)}")
    event = df["event"].astype(str).str.strip()
    bad = np.flatnonzero(~event.isin(EVENTS).to_numpy())
    if bad.size:
        i = int(bad[0])
        raise TaskLogError(f"{source}: line {line(i)}: unknown event {event.iloc[i]!r}; expected one of "
                           f"{', '.join(EVENTS)}")
    tv = t.to_numpy(float)
    bad = np.flatnonzero(np.diff(tv) < 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise TaskLogError(f"{source}: line {line(i)}: time_s = {tv[i]} is earlier than the previous row "
                           f"({tv[i - 1]}); the log must be sorted by time")
    out = pd.DataFrame({"time_s": tv, "animal": animal.map(ids).to_numpy(), "event": event.to_numpy()})
    out.attrs["source"] = Path(source).name
    return out


def _points(animal, behavior, times, source) -> list[tuple]:
    return [(animal, behavior, float(t), float(t), "point", source) for t in times]


def derive_task_events(log: pd.DataFrame, coordination_window_s: float = 0.75, min_hold_s: float = 0.5,
                       source: str | None = None) -> pd.DataFrame:
    """Per-animal task events from a validated log whose time_s is on the master clock.

    log: (time_s, animal, event) rows sorted by time (see validate_task_log).
    Returns an event table (columns animal, behavior, start, stop, kind,
    source; seconds) with the rules of this module's docstring.
    """
    source = source or log.attrs.get("source", "task log")
    rows: list[tuple] = []
    t_end = float(log["time_s"].max()) if len(log) else 0.0
    by = {a: log[log["animal"] == a] for a in ANIMALS}
    pokes = {a: by[a].loc[by[a]["event"] == "poke", "time_s"].to_numpy(float) for a in ANIMALS}
    for a in ANIMALS:
        partner = "B" if a == "A" else "A"
        mine = by[a]
        p, q = pokes[a], pokes[partner]
        rows += _points(a, "poke", p, source)
        if q.size:
            # nearest partner poke on either side
            j = np.searchsorted(q, p)
            near = np.minimum(np.abs(p - q[np.clip(j - 1, 0, q.size - 1)]), np.abs(q[np.clip(j, 0, q.size - 1)] - p))
            coord = near <= coordination_window_s + 1e-9
        else:
            coord = np.zeros(p.size, bool)
        rows += _points(a, "poke_coordinated", p[coord], source)
        rows += _points(a, "poke_uncoordinated", p[~coord], source)
        for ev in ("port_entry", "port_exit", "reward"):
            rows += _points(a, ev, mine.loc[mine["event"] == ev, "time_s"], source)
        rows += _points(a, "partner_arrival", by[partner].loc[by[partner]["event"] == "port_entry", "time_s"], source)
        # walk X's own rows for port visits and hold bouts
        in_port, since = False, None
        for t, ev in zip(mine["time_s"].to_numpy(float), mine["event"].to_numpy()):
            if ev == "port_entry":
                if in_port:   # a second entry without an exit: close the visit there
                    rows.append((a, "at_port", visit, t, "state", source))
                in_port, since, visit = True, t, t
            elif ev == "port_exit":
                if in_port:
                    rows.append((a, "at_port", visit, t, "state", source))
                in_port, since = False, None
            elif ev == "poke":
                if in_port and t - since >= min_hold_s - 1e-9:
                    rows.append((a, "hold", since, t, "state", source))
                if in_port:
                    since = t
        if in_port:
            rows.append((a, "at_port", visit, t_end, "state", source))
    out = pd.DataFrame(rows, columns=list(COLUMNS))
    out = out.sort_values(["animal", "start", "behavior"], kind="stable").reset_index(drop=True)
    out.attrs.update({"time_unit": "s", "clock": "master",
                      "rules": {"coordination_window_s": coordination_window_s, "min_hold_s": min_hold_s}})
    return out
