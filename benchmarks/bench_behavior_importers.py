"""Speed of the annotation importers, as ratios to a baseline measured in the same run.

- BORIS tabular read (parse, pair START/STOP, validate) vs pandas.read_csv of the same file.
- Identity-swap detection on two-animal pose vs one pass of frame-to-frame displacement (np.diff + norm).

    python benchmarks/bench_behavior_importers.py [--quick]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _best(fn, repeat):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    args = ap.parse_args(argv)
    from behavior.boris import write_boris_tabular
    from behavior.events import make_events
    from behavior.importers import read_annotations
    from behavior.pose import detect_swaps

    n_bouts = 2_000 if args.quick else 40_000
    T = 20_000 if args.quick else 216_000
    repeat = 1 if args.quick else 3
    rng = np.random.default_rng(0)
    rows, t = [], 0.0
    for i in range(n_bouts):
        t += rng.uniform(0, 2)
        d = rng.uniform(0.1, 3)
        rows.append(dict(animal="AB"[i % 2], behavior="sniff", start=t, stop=t + d, kind="state", source="x", line=0))
        t += d
    events = make_events(rows)
    with tempfile.TemporaryDirectory() as tmp:
        p = write_boris_tabular(events, Path(tmp) / "b.csv", subjects={"A": "m1", "B": "m2"})
        base = _best(lambda: pd.read_csv(p), repeat)
        ours = _best(lambda: read_annotations(p, "boris", subjects={"m1": "A", "m2": "B"}), repeat)
    print(f"BORIS read, {2 * n_bouts} rows: {ours:.3f} s; pandas.read_csv {base:.3f} s; ratio {ours / base:.1f}x "
          f"({2 * n_bouts / ours:,.0f} rows/s)")

    xy = np.cumsum(rng.normal(0, 1, (T, 2, 4, 2)), axis=0) + np.array([0, 300.0])[None, :, None, None]
    base = _best(lambda: np.linalg.norm(np.diff(xy, axis=0), axis=-1).mean(), repeat)
    ours = _best(lambda: detect_swaps(xy), repeat)
    print(f"swap detection, {T} frames x 2 animals x 4 points: {ours:.3f} s; displacement pass {base:.3f} s; "
          f"ratio {ours / base:.1f}x ({T / ours:,.0f} frames/s)")


if __name__ == "__main__":
    main()
