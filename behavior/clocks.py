"""Clocks: map a stream's local times or frame indices onto the master clock.

Every stream of a pair session (the two imaging movies, the behaviour video,
the task computer) keeps its own time. A `Clock` turns that stream's times
into master-clock seconds, in one of three ways (docs/alignment.md):

- **timestamps**: a CSV (columns `frame`, `time_s`) giving each recorded
  frame's master time. Row k is frame k of the file (a file lacks the frames
  a camera dropped, so a drop shows as a long interval, not a missing row).
  Local seconds (e.g. BORIS, which counts video time as frame / fps) become a
  fractional frame index (local_s * fps) and are interpolated between rows.
- **sync**: pulses seen on both clocks (columns `local_s`, `master_s`),
  fitted by least squares: master = offset + slope * local. `drift_ppm` is
  (slope - 1) * 1e6; a residual above the tolerance is an error.
- **rate**: a nominal frame rate and an offset: master = offset + local_s,
  frame k at offset + k / rate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

#: An interval longer than this multiple of the median is a gap (dropped frames).
DROP_FACTOR = 1.5


class ClockError(ValueError):
    """A clock file is malformed or inconsistent. The message names the file."""


def _read_csv(path: str | Path, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise ClockError(f"{path}: {what} file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ClockError(f"{path}: cannot read {what} CSV ({exc}); expected columns {', '.join(columns)}") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ClockError(f"{path}: {what} CSV lacks column(s) {missing}; expected columns {', '.join(columns)}, "
                         f"got {list(df.columns)}")
    for c in columns:
        vals = pd.to_numeric(df[c], errors="coerce")
        bad = np.flatnonzero(vals.isna().to_numpy())
        if bad.size:
            r = int(bad[0])
            raise ClockError(f"{path}: line {r + 2}: column '{c}' = {df[c].iloc[r]!r} is not a number "
                             f"({bad.size} such row(s))")
        df[c] = vals.astype(float)
    return df


def _check_increasing(t: np.ndarray, where: str, column: str) -> None:
    d = np.diff(t)
    bad = np.flatnonzero(d <= 0)
    if bad.size:
        r = int(bad[0]) + 1          # 0-based data row of the offending value
        raise ClockError(
            f"{where}: timestamps are not strictly increasing: data row {r} (line {r + 2}) has {column} = "
            f"{t[r]!r} after {t[r - 1]!r}; {bad.size} such row(s)")


def frame_interval_report(times: np.ndarray, nominal_rate: float | None = None) -> dict:
    """Dropped frames, drift and jitter of a sequence of frame times.

    times: (n_frames,) master seconds, strictly increasing.
    Returns a dict: n_frames, median_interval_s, dropped_frames (frames missing
    inside gaps > 1.5 x median interval), n_gaps, max_gap_s, fitted_rate_hz
    (least squares of time vs the ideal frame number, i.e. counting dropped
    frames), nominal_rate_hz, drift_ppm (fitted vs nominal interval; NaN
    without a nominal rate), jitter_s (largest fit residual), start, stop.
    """
    t = np.asarray(times, float)
    n = t.size
    rep = {"n_frames": int(n), "start": float(t[0]) if n else math.nan,
           "stop": float(t[-1]) if n else math.nan, "nominal_rate_hz": nominal_rate or math.nan}
    if n < 2:
        return rep | {"median_interval_s": math.nan, "dropped_frames": 0, "n_gaps": 0, "max_gap_s": 0.0,
                      "fitted_rate_hz": math.nan, "drift_ppm": math.nan, "jitter_s": 0.0}
    d = np.diff(t)
    med = float(np.median(d))
    gaps = d > DROP_FACTOR * med
    steps = np.maximum(np.rint(d / med), 1.0)
    ideal = np.concatenate([[0.0], np.cumsum(steps)])   # frame number had nothing been dropped
    slope, icpt = np.polyfit(ideal, t, 1)
    resid = t - (icpt + slope * ideal)
    drift = (slope * nominal_rate - 1.0) * 1e6 if nominal_rate else math.nan
    return rep | {"median_interval_s": med, "dropped_frames": int((steps[gaps] - 1).sum()),
                  "n_gaps": int(gaps.sum()), "max_gap_s": float(d.max()),
                  "fitted_rate_hz": float(1.0 / slope), "drift_ppm": float(drift),
                  "jitter_s": float(np.abs(resid).max())}


@dataclass
class Clock:
    """Map one stream's local seconds or frame indices onto the master clock (s).

    kind: "timestamps" (per-frame master times), "sync" (linear fit to
    pulses) or "rate" (frame_rate + offset).
    times: (n_frames,) master s of each frame (timestamps clocks only).
    rate: nominal frames per second (local seconds <-> frame index).
    offset, slope: master = offset + slope * local_s (sync and rate clocks).
    report: dropped frames, drift, residuals (see frame_interval_report, fit_sync).
    """

    name: str
    kind: str
    source: str = ""
    times: np.ndarray | None = None
    rate: float | None = None
    offset: float = 0.0
    slope: float = 1.0
    report: dict = field(default_factory=dict)

    # -- constructors ------------------------------------------------------
    @classmethod
    def from_frame_times(cls, times, name: str, source: str = "", rate: float | None = None) -> "Clock":
        """A clock from per-frame master times (n_frames,) s; rate: nominal Hz if known."""
        t = np.asarray(times, float)
        if t.ndim != 1 or t.size == 0:
            raise ClockError(f"{source or name}: frame times must be a non-empty 1-D array, got shape {t.shape}")
        if not np.all(np.isfinite(t)):
            r = int(np.flatnonzero(~np.isfinite(t))[0])
            raise ClockError(f"{source or name}: frame time of frame {r} is {t[r]} (not finite)")
        _check_increasing(t, source or name, "time_s")
        rep = frame_interval_report(t, rate)
        if rate is None and t.size > 1:
            rate = 1.0 / rep["median_interval_s"]   # only converts local seconds to frames
        return cls(name, "timestamps", source, t, rate, report={"kind": "timestamps", "source": source, **rep})

    @classmethod
    def from_timestamps_csv(cls, path: str | Path, name: str, rate: float | None = None) -> "Clock":
        """Read a (frame, time_s) CSV; row k is frame k of the recording."""
        df = _read_csv(path, ("time_s",), "timestamps")
        t = df["time_s"].to_numpy(float)
        _check_increasing(t, str(path), "time_s")
        clk = cls.from_frame_times(t, name, str(path), rate)
        if "frame" in df.columns:
            f = pd.to_numeric(df["frame"], errors="coerce").to_numpy(float)
            if np.all(np.isfinite(f)) and f.size > 1:
                _check_increasing(f, str(path), "frame")
                clk.report["frame_counter_gaps"] = int((np.diff(f) > 1).sum())
        return clk

    @classmethod
    def from_sync(cls, local_s, master_s, name: str, tolerance_s: float, source: str = "",
                  rate: float | None = None) -> "Clock":
        """Least-squares fit master = offset + slope * local over sync pulses (n_pulses,) s."""
        x, y = np.asarray(local_s, float), np.asarray(master_s, float)
        where = source or name
        if x.size < 2:
            raise ClockError(f"{where}: need at least 2 sync pulses for a linear fit, got {x.size}")
        _check_increasing(x, where, "local_s")
        _check_increasing(y, where, "master_s")
        slope, offset = np.polyfit(x, y, 1)
        resid = y - (offset + slope * x)
        worst = int(np.argmax(np.abs(resid)))
        if abs(resid[worst]) > tolerance_s:
            raise ClockError(
                f"{where}: sync pulses do not fit one linear clock map: pulse {worst} (line {worst + 2}, "
                f"local_s = {x[worst]}) is {resid[worst]:+.4f} s off the fit (tolerance {tolerance_s} s); "
                "check for a missed or extra pulse")
        rep = {"kind": "sync", "source": source, "n_pulses": int(x.size), "offset_s": float(offset),
               "slope": float(slope), "drift_ppm": float((slope - 1.0) * 1e6),
               "residual_max_s": float(np.abs(resid).max()), "residual_rms_s": float(np.sqrt(np.mean(resid ** 2))),
               "start": float(y[0]), "stop": float(y[-1]), "dropped_frames": 0}
        return cls(name, "sync", source, None, rate, float(offset), float(slope), rep)

    @classmethod
    def from_sync_csv(cls, path: str | Path, name: str, tolerance_s: float, rate: float | None = None) -> "Clock":
        df = _read_csv(path, ("local_s", "master_s"), "sync")
        return cls.from_sync(df["local_s"].to_numpy(), df["master_s"].to_numpy(), name, tolerance_s,
                             str(path), rate)

    @classmethod
    def from_rate(cls, name: str, rate: float | None, offset_s: float = 0.0) -> "Clock":
        rep = {"kind": "rate", "source": "", "offset_s": float(offset_s), "nominal_rate_hz": rate or math.nan,
               "drift_ppm": 0.0, "dropped_frames": 0, "start": math.nan, "stop": math.nan}
        return cls(name, "rate", "", None, rate, float(offset_s), 1.0, rep)

    # -- mapping -----------------------------------------------------------
    @property
    def n_frames(self) -> int | None:
        return None if self.times is None else int(self.times.size)

    @property
    def span(self) -> tuple[float, float] | None:
        """(first, last) master time the clock is known on, or None (rate clocks)."""
        if self.times is not None:
            return float(self.times[0]), float(self.times[-1])
        if self.kind == "sync":
            return self.report["start"], self.report["stop"]
        return None

    def frames_to_master(self, frames) -> np.ndarray:
        """Frame indices (any shape, may be fractional) -> master seconds (same shape)."""
        f = np.asarray(frames, float)
        if self.times is not None:
            return self._interp_frames(f)
        if not self.rate:
            raise ClockError(f"clock {self.name!r}: frame indices need a frame_rate ([clocks.{self.name}] frame_rate)")
        return self.offset + self.slope * (f / self.rate)

    def local_to_master(self, local_s, fps: float | None = None) -> np.ndarray:
        """Local seconds of the stream (any shape) -> master seconds.

        fps: frames per second of the file that gave the local times (e.g. the
        media FPS a BORIS export states); default the clock's nominal rate.
        """
        x = np.asarray(local_s, float)
        if self.times is not None:
            r = fps or self.rate
            return self._interp_frames(x * r)
        return self.offset + self.slope * x

    def local_duration(self, fps: float | None = None) -> float | None:
        """Duration of the recording in local seconds (n_frames / fps), if the clock knows its frames."""
        if self.times is None:
            return None
        return self.times.size / (fps or self.rate)

    def _interp_frames(self, f: np.ndarray) -> np.ndarray:
        t = self.times
        n = t.size
        if n == 1:
            return np.full(f.shape, t[0]) + f / (self.rate or 1.0)
        out = np.interp(f, np.arange(n), t)
        # Outside the recorded frames extrapolate with the fitted interval (e.g. BORIS's media end = frame n).
        dt = 1.0 / self.report.get("fitted_rate_hz", self.rate or 1.0)
        lo, hi = f < 0, f > n - 1
        out = np.where(lo, t[0] + f * dt, out)
        out = np.where(hi, t[-1] + (f - (n - 1)) * dt, out)
        return out


def clock_from_config(name: str, cfg: dict, sync_tolerance_s: float) -> Clock:
    """A [clocks.NAME] table (validated by pipeline.core.parameters CLOCK) -> Clock."""
    if cfg.get("timestamps"):
        return Clock.from_timestamps_csv(cfg["timestamps"], name, cfg.get("frame_rate"))
    if cfg.get("sync"):
        return Clock.from_sync_csv(cfg["sync"], name, sync_tolerance_s, cfg.get("frame_rate"))
    return Clock.from_rate(name, cfg.get("frame_rate"), cfg.get("offset_s", 0.0))


def imaging_clock(animal: str, cfg: dict, n_frames: int | None = None) -> Clock:
    """The clock of animal `animal`'s imaging movie from its [animals.X] table.

    timestamps: one row per movie frame (the movie lacks dropped frames, so
    rows == movie frames; a mismatch with n_frames is an error). Otherwise
    frame_rate + start_offset_s.
    """
    if cfg.get("timestamps"):
        clk = Clock.from_timestamps_csv(cfg["timestamps"], animal, cfg.get("frame_rate"))
        if n_frames is not None and clk.n_frames != n_frames:
            raise ClockError(f"{cfg['timestamps']}: {clk.n_frames} timestamp rows but the movie of animal {animal} "
                             f"has {n_frames} frames; rows must match movie frames (dropped frames have no row)")
        return clk
    if not cfg.get("frame_rate"):
        raise ClockError(f"[animals.{animal}]: give 'timestamps' or 'frame_rate'")
    if n_frames is None:
        return Clock.from_rate(animal, cfg["frame_rate"], cfg.get("start_offset_s", 0.0))
    t = cfg.get("start_offset_s", 0.0) + np.arange(n_frames) / cfg["frame_rate"]
    return Clock.from_frame_times(t, animal, f"[animals.{animal}] frame_rate", cfg["frame_rate"])


def events_to_master(events: pd.DataFrame, clock: Clock, fps: float | None = None) -> pd.DataFrame:
    """An event table on a stream's clock -> a copy on the master clock.

    Times are local seconds (attrs time_unit "s", the default) or frame
    indices (time_unit "frame"); fps: the file's frames per second (e.g. the
    media FPS of a BORIS export), default the clock's nominal rate.
    """
    out = events.copy()
    unit = events.attrs.get("time_unit", "s")
    for col in ("start", "stop"):
        x = events[col].to_numpy(float)
        out[col] = clock.frames_to_master(x) if unit == "frame" else clock.local_to_master(x, fps)
    out.attrs = dict(events.attrs, time_unit="s", clock="master", stream_clock=clock.name)
    return out
