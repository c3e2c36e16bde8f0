"""The common time base of a pair and resampling onto it (METHODS.md section 7).

- Bins of width dt (default: the slower imaging frame interval). Bin i covers
  [t0 + i*dt, t0 + (i+1)*dt); t0 is the start of the overlap of the two
  imaging streams, and the last bin ends at or before the overlap's end. The
  `time` coordinate holds bin centres (s, master clock).
- Continuous traces (dF/F, F_corrected, C) are linearly interpolated at bin
  centres; event-like activity (deconvolved spikes) is summed over the frames
  whose time falls in the bin.
- A bin whose centre lies inside a gap between consecutive frames longer than
  `max_gap_s` (dropped frames) is NaN for every trace of that animal, summed
  or interpolated, so all traces share one missing-data mask.
- A state behaviour marks every bin its [start, stop) interval overlaps by at
  least half a bin; a point event marks the bin that contains it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

# Relative tolerance on bin boundaries: a frame time or overlap within
# 1e-9 bins of an edge is treated as on it (timestamps are round-tripped decimals).
_EPS = 1e-9


class AlignmentError(ValueError):
    """Streams cannot be put on one time base. The message names the streams and their ranges."""


@dataclass(frozen=True)
class TimeBase:
    """n bins of width dt (s) from t0 (s, master clock)."""

    t0: float
    dt: float
    n: int

    @property
    def edges(self) -> np.ndarray:
        """(n + 1,) bin edges, s."""
        return self.t0 + self.dt * np.arange(self.n + 1)

    @property
    def centres(self) -> np.ndarray:
        """(n,) bin centres, s."""
        return self.t0 + self.dt * (np.arange(self.n) + 0.5)

    @property
    def stop(self) -> float:
        return self.t0 + self.n * self.dt

    def coord(self) -> xr.DataArray:
        return xr.DataArray(self.centres, dims="time",
                            attrs={"units": "s", "long_name": "bin centre on the master clock",
                                   "bin_s": self.dt, "t0": self.t0})

    def bin_of(self, t) -> np.ndarray:
        """Index of the bin containing each time (any shape); -1 outside the base."""
        x = (np.asarray(t, float) - self.t0) / self.dt
        i = np.floor(x + _EPS).astype(int)
        return np.where((i >= 0) & (i < self.n), i, -1)


def _fmt_range(span) -> str:
    return f"[{span[0]:.3f}, {span[1]:.3f}] s"


def median_interval(frame_times: np.ndarray) -> float:
    d = np.diff(np.asarray(frame_times, float))
    if d.size == 0:
        raise AlignmentError("a stream with fewer than 2 frames has no frame interval")
    return float(np.median(d))


def make_time_base(streams: dict[str, np.ndarray], bin_s: float | None = None,
                   min_overlap_fraction: float = 0.9) -> TimeBase:
    """The common bins of the imaging streams.

    streams: name -> (n_frames,) master-clock frame times, s.
    bin_s: bin width, s; default the largest median frame interval.
    Raises AlignmentError when the overlap is under `min_overlap_fraction` of
    any stream's span, naming every stream and its range.
    """
    for k, v in streams.items():
        bad = np.flatnonzero(~(np.diff(np.asarray(v, float)) > 0))
        if bad.size:
            i = int(bad[0]) + 1
            raise AlignmentError(f"stream {k}: frame times must increase; frame {i} is at {v[i]!r} s after "
                                 f"{v[i - 1]!r} s")
    spans = {k: (float(v[0]), float(v[-1])) for k, v in streams.items()}
    lo = max(s[0] for s in spans.values())
    hi = min(s[1] for s in spans.values())
    desc = "; ".join(f"{k} {_fmt_range(s)}" for k, s in spans.items())
    if hi <= lo:
        raise AlignmentError(f"imaging streams do not overlap: {desc}")
    for k, s in spans.items():
        frac = (hi - lo) / max(s[1] - s[0], 1e-12)
        if frac < min_overlap_fraction:
            raise AlignmentError(
                f"imaging streams overlap over {_fmt_range((lo, hi))}, only {frac:.1%} of stream {k}'s span "
                f"(min_overlap_fraction = {min_overlap_fraction}); streams: {desc}")
    dt = bin_s or max(median_interval(v) for v in streams.values())
    n = int(math.floor((hi - lo) / dt + _EPS))
    if n < 1:
        raise AlignmentError(f"the overlap {_fmt_range((lo, hi))} is shorter than one bin ({dt} s); streams: {desc}")
    return TimeBase(lo, float(dt), n)


def check_coverage(name: str, span: tuple[float, float], tb: TimeBase, min_fraction: float) -> float:
    """Fraction of the time base covered by a behaviour stream's span; error if below min_fraction."""
    cov = max(0.0, min(span[1], tb.stop) - max(span[0], tb.t0)) / (tb.stop - tb.t0)
    if cov < min_fraction:
        raise AlignmentError(
            f"behaviour stream {name} covers {_fmt_range(span)}, only {cov:.1%} of the imaging overlap "
            f"{_fmt_range((tb.t0, tb.stop))} (min_overlap_fraction = {min_fraction})")
    return cov


def check_media_duration(source: str, media_duration_s: float, clock_duration_s: float, tolerance_s: float) -> None:
    """An annotation file's stated media duration must match its video clock (n_frames / fps) within tolerance."""
    if media_duration_s is None or clock_duration_s is None:
        return
    if not (np.isfinite(media_duration_s) and np.isfinite(clock_duration_s)):
        return
    if abs(media_duration_s - clock_duration_s) > tolerance_s:
        raise AlignmentError(
            f"{source}: media duration {media_duration_s:.3f} s disagrees with its video clock "
            f"({clock_duration_s:.3f} s = frames / fps) by {media_duration_s - clock_duration_s:+.3f} s "
            f"(media_duration_tolerance_s = {tolerance_s}); wrong video or wrong timestamps file?")


def gap_bins(frame_times: np.ndarray, tb: TimeBase, max_gap_s: float) -> np.ndarray:
    """(n_bins,) bool: bin centre inside a gap longer than max_gap_s, or outside the stream."""
    t = np.asarray(frame_times, float)
    c = tb.centres
    j = np.searchsorted(t, c, side="right") - 1          # last frame at or before the centre
    outside = (j < 0) | (j >= t.size - 1) & (c > t[-1])
    jj = np.clip(j, 0, t.size - 2)
    in_gap = (t[jj + 1] - t[jj]) > max_gap_s
    return outside | (in_gap & ~outside)


def resample_continuous(values: np.ndarray, frame_times: np.ndarray, tb: TimeBase,
                        max_gap_s: float) -> np.ndarray:
    """Linear interpolation of (neuron, frame) traces at bin centres -> (neuron, time); gaps -> NaN."""
    v = np.asarray(values, float)
    t = np.asarray(frame_times, float)
    c = tb.centres
    j = np.clip(np.searchsorted(t, c, side="right") - 1, 0, t.size - 2)
    w = (c - t[j]) / (t[j + 1] - t[j])
    out = v[:, j] * (1.0 - w) + v[:, j + 1] * w
    out[:, gap_bins(t, tb, max_gap_s)] = np.nan
    return out


def resample_sum(values: np.ndarray, frame_times: np.ndarray, tb: TimeBase, max_gap_s: float) -> np.ndarray:
    """Sum of (neuron, frame) event-like activity over the frames in each bin -> (neuron, time); gaps -> NaN.

    Frames outside [t0, t0 + n*dt) are not counted.
    """
    v = np.asarray(values, float)
    b = tb.bin_of(frame_times)
    out = np.zeros((v.shape[0], tb.n))
    idx = np.flatnonzero(b >= 0)
    if idx.size:
        # frame times increase, so the frames in the base are one slice and each bin's frames one run
        lo, hi = idx[0], idx[-1] + 1
        bk = b[lo:hi]
        first = np.flatnonzero(np.r_[True, np.diff(bk) != 0])
        cols = bk[first]
        for k in range(v.shape[0]):     # row by row: reduceat over axis 1 of a 2-D array is far slower
            out[k, cols] = np.add.reduceat(v[k, lo:hi], first)
    out[:, gap_bins(frame_times, tb, max_gap_s)] = np.nan
    return out


def stream_report(name: str, frame_times: np.ndarray, tb: TimeBase, max_gap_s: float) -> dict:
    """Per-stream numbers for /clock: frames, gaps, NaN bins, samples used."""
    t = np.asarray(frame_times, float)
    d = np.diff(t)
    med = float(np.median(d))
    gaps = d > max_gap_s
    nan = gap_bins(t, tb, max_gap_s)
    inside = (t >= tb.t0) & (t < tb.stop)
    return {"stream": name, "n_frames": int(t.size), "start": float(t[0]), "stop": float(t[-1]),
            "median_interval_s": med, "n_gaps": int(gaps.sum()),
            "dropped_frames": int((np.maximum(np.rint(d[gaps] / med), 1) - 1).sum()),
            "nan_bins": int(nan.sum()), "samples_interpolated": int((~nan).sum()),
            "frames_in_base": int(inside.sum()), "frames_outside_base": int((~inside).sum()),
            "overlap_fraction": float((tb.stop - tb.t0) / max(t[-1] - t[0], 1e-12))}


def events_to_bins(events: pd.DataFrame, tb: TimeBase, behaviors: list[str]) -> np.ndarray:
    """(behavior, time) bool from an event table (behavior, start, stop, kind) on the master clock.

    state: every bin whose overlap with [start, stop) is >= dt/2.
    point: the bin containing `start`. Events outside the base are dropped.
    """
    out = np.zeros((len(behaviors), tb.n), bool)
    index = {b: i for i, b in enumerate(behaviors)}
    half = 0.5 * tb.dt * (1 - 1e-6)
    for beh, start, stop, kind in zip(events["behavior"], events["start"], events["stop"], events["kind"]):
        r = index.get(beh)
        if r is None:
            continue
        if kind == "point" or stop <= start:
            i = int(tb.bin_of(start))
            if i >= 0:
                out[r, i] = True
            continue
        i0 = max(int(math.floor((start - tb.t0) / tb.dt)), 0)
        i1 = min(int(math.floor((stop - tb.t0) / tb.dt)), tb.n - 1)
        if i1 < i0:
            continue
        e = tb.t0 + tb.dt * np.arange(i0, i1 + 2)
        ov = np.minimum(e[1:], stop) - np.maximum(e[:-1], start)
        out[r, i0:i1 + 1] |= ov >= half
    return out


def behavior_arrays(events: pd.DataFrame, tb: TimeBase, animals=("A", "B"),
                    behaviors: list[str] | None = None) -> dict[str, xr.Dataset]:
    """Per animal X a Dataset with `self` and `partner` (behavior, time) bool.

    self = X's own events; partner = the other animal's events (for A,
    partner rows are B's behaviours). Both animals share one `behavior` list.
    """
    if behaviors is None:
        behaviors = sorted(set(events["behavior"])) if len(events) else []
    own = {a: events_to_bins(events[events["animal"] == a], tb, behaviors) for a in animals}
    time = tb.coord()
    out = {}
    for a in animals:
        other = [b for b in animals if b != a][0]
        out[a] = xr.Dataset(
            {"self": (("behavior", "time"), own[a], {"long_name": f"behaviour of {a} itself"}),
             "partner": (("behavior", "time"), own[other], {"long_name": f"behaviour of {a}'s partner {other}"})},
            coords={"behavior": np.array(behaviors, dtype=object), "time": time},
            attrs={"animal": a, "partner": other,
                   "rule": "state: bins overlapped by >= half a bin; point: the bin containing it"})
    return out


EVENT_COLUMNS = ("animal", "behavior", "start", "stop", "kind", "source")


def add_derived(events: pd.DataFrame, derived: dict[str, list[str]]) -> pd.DataFrame:
    """Append derived behaviours: name -> behaviours OR-ed, per animal.

    State members are merged into the union of their intervals (overlapping
    or touching bouts join); point members stay point events of the new name.
    """
    if not derived:
        return events
    rows = []
    for name, members in derived.items():
        if not isinstance(members, (list, tuple)) or not all(isinstance(m, str) for m in members):
            raise ValueError(f"[behavior] derived: {name!r} must be a list of behaviour names, got {members!r}")
        if name in set(events["behavior"]):
            raise ValueError(f"[behavior] derived: {name!r} is already a behaviour in the events; pick another name")
        sel = events[events["behavior"].isin(list(members))]
        for a, g in sel.groupby("animal", sort=True):
            for _, r in g[g["kind"] == "point"].iterrows():
                rows.append((a, name, r.start, r.stop, "point", "derived"))
            st = g[g["kind"] == "state"].sort_values("start")
            cur = None
            for s, e in zip(st["start"], st["stop"]):
                if cur and s <= cur[1]:
                    cur[1] = max(cur[1], e)
                else:
                    if cur:
                        rows.append((a, name, cur[0], cur[1], "state", "derived"))
                    cur = [s, e]
            if cur:
                rows.append((a, name, cur[0], cur[1], "state", "derived"))
    extra = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    out = pd.concat([events, extra], ignore_index=True) if len(extra) else events
    out.attrs = dict(events.attrs)
    return out


def events_to_dataset(events: pd.DataFrame) -> xr.Dataset:
    """Event table -> Dataset on dim `event` (strings as object arrays, times in s)."""
    data = {}
    for c in EVENT_COLUMNS:
        v = events[c].to_numpy()
        if c in ("start", "stop"):
            data[c] = ("event", v.astype(float), {"units": "s", "clock": "master"})
        else:
            data[c] = ("event", np.asarray([str(x) for x in v], dtype=object))
    return xr.Dataset(data)


def dataset_to_events(ds: xr.Dataset) -> pd.DataFrame:
    """Inverse of events_to_dataset (an empty table when ds has no `event` variables)."""
    if "behavior" not in ds or "event" not in ds.dims:
        return pd.DataFrame({c: pd.Series(dtype=float if c in ("start", "stop") else object) for c in EVENT_COLUMNS})
    df = pd.DataFrame({c: ds[c].values for c in EVENT_COLUMNS})
    for c in ("animal", "behavior", "kind", "source"):
        df[c] = df[c].astype(str)
    return df
