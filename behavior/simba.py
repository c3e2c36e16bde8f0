"""SimBA machine-results CSV (project_folder/csv/machine_results/*.csv).

One row per video frame (the first, unnamed column is the frame index),
pose and feature columns, then per classifier `<clf>` (0/1, SimBA's own
thresholded call) and `Probability_<clf>` (0..1).

A behaviour is on in frame f when Probability_<clf> >= options.thresholds[clf]
if a threshold is given, else when the 0/1 column `<clf>` is 1. Runs of on
frames become state bouts, frame f covering [f/fps, (f+1)/fps) s (f counted
from the first row, 0-based). Bouts shorter than options.min_bout_s are
dropped (SimBA's minimum bout length).

Options: fps (required), behaviors (list; default every Probability_* column),
thresholds {clf = p}, min_bout_s, animals {clf = "A"} (default: `animal`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .events import AnnotationError, make_events, positive_number, runs_to_bouts, source_name

OPTIONS = ("fps", "behaviors", "thresholds", "min_bout_s", "animals")
_PREFIX = "Probability_"


def read_simba(path, subjects: Mapping[str, str] | None = None, animal: str = "",
               options: Mapping | None = None, clock: str = "video") -> pd.DataFrame:
    options = dict(options or {})
    fps = positive_number(path, options, "fps")
    try:
        df = pd.read_csv(path, skip_blank_lines=False, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AnnotationError(path, f"not a readable CSV: {exc}") from None
    cols = [str(c) for c in df.columns]
    found = [c[len(_PREFIX):] for c in cols if c.startswith(_PREFIX)]
    behaviors = list(options.get("behaviors") or found)
    if not behaviors:
        raise AnnotationError(path, f"no '{_PREFIX}<behaviour>' column: not a SimBA machine-results file", 1)
    thresholds = dict(options.get("thresholds") or {})
    unknown_thr = sorted(set(thresholds) - set(behaviors))
    if unknown_thr:
        raise AnnotationError(path, f"options.thresholds names {unknown_thr}, not among the behaviours {behaviors}")
    min_bout_s = float(options.get("min_bout_s", 0.0) or 0.0)
    animals = dict(options.get("animals") or {})
    src = source_name(path)
    out = []
    for clf in behaviors:
        pcol = _PREFIX + clf
        if pcol not in cols:
            raise AnnotationError(path, f"missing column {pcol!r} for behaviour {clf!r}; columns with "
                                  f"probabilities: {[_PREFIX + b for b in found] or 'none'}", 1)
        if clf in thresholds:
            thr = float(thresholds[clf])
            if not 0.0 <= thr <= 1.0:
                raise AnnotationError(path, f"options.thresholds[{clf!r}] = {thr} is not in [0, 1]")
            p = pd.to_numeric(df[pcol], errors="coerce").to_numpy(float)
            bad = ~np.isfinite(p) | (p < 0) | (p > 1)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise AnnotationError(path, f"column {pcol!r}: {df[pcol].iloc[i]!r} is not a probability in [0, 1]",
                                      i + 2)
            on = p >= thr
        else:
            if clf not in cols:
                raise AnnotationError(path, f"no 0/1 column {clf!r} and no options.thresholds[{clf!r}] to apply to "
                                      f"{pcol!r}", 1)
            v = pd.to_numeric(df[clf], errors="coerce").to_numpy(float)
            bad = ~np.isin(v, (0.0, 1.0))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise AnnotationError(path, f"column {clf!r}: {df[clf].iloc[i]!r} is not 0 or 1", i + 2)
            on = v == 1.0
        a = animals.get(clf, animal)
        if a not in ("A", "B"):
            raise AnnotationError(path, f"behaviour {clf!r} has no animal: give 'animal' in [[annotations]] or "
                                  "options {animals = {" + f"{clf} = 'A'" + "}}")
        min_frames = max(1, int(math.ceil(min_bout_s * fps - 1e-9)))
        for s, e in runs_to_bouts(on, fps, min_frames):
            out.append(dict(animal=a, behavior=clf, start=s, stop=e, kind="state", source=src,
                            line=int(round(s * fps)) + 2))
    return make_events(out, clock=clock, fps=fps, n_frames=len(df))


def write_simba(events: pd.DataFrame, path, fps: float, n_frames: int, seed: int = 0) -> pd.DataFrame:
    """Write state events as a SimBA machine-results CSV (for tests).

    Frames inside a bout get probability in [0.6, 1], others [0, 0.4].
    """
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"Nose_1_x": rng.uniform(0, 500, n_frames), "Nose_1_y": rng.uniform(0, 500, n_frames),
                       "Nose_1_p": rng.uniform(0.9, 1, n_frames)})
    for beh in sorted(events["behavior"].unique()):
        on = np.zeros(n_frames, bool)
        for e in events[events["behavior"] == beh].itertuples(index=False):
            on[int(round(e.start * fps)):int(round(e.stop * fps))] = True
        df[_PREFIX + beh] = np.where(on, rng.uniform(0.6, 1, n_frames), rng.uniform(0, 0.4, n_frames)).round(4)
        df[beh] = on.astype(int)
    df.to_csv(path)
    return df
