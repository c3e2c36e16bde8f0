"""Alignment speed: behavior.align resampling vs a per-neuron np.interp loop (baseline, same run).

    python benchmarks/bench_alignment.py [--quick]

Prints, for a session of N neurons x T frames (15 Hz imaging, one dropped
frame), the time of resample_continuous / resample_sum / events_to_bins and of
a naive baseline, and their ratios. The baseline is what one would write
first: np.interp or np.bincount one neuron at a time, gaps masked bin by bin,
and a per-bin overlap scan for state events.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from behavior import align as ba


def _timeit(f, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def naive_continuous(x, t, tb, max_gap):
    out = np.empty((x.shape[0], tb.n))
    for k in range(x.shape[0]):
        out[k] = np.interp(tb.centres, t, x[k])
    for i, c in enumerate(tb.centres):
        j = np.searchsorted(t, c, side="right") - 1
        if t[j + 1] - t[j] > max_gap:
            out[:, i] = np.nan
    return out


def naive_sum(x, t, tb, max_gap):
    b = tb.bin_of(t)
    keep = b >= 0
    out = np.stack([np.bincount(b[keep], weights=x[k, keep], minlength=tb.n) for k in range(x.shape[0])])
    out[:, ba.gap_bins(t, tb, max_gap)] = np.nan
    return out


def naive_states(ev, tb):
    out = np.zeros(tb.n, bool)
    e = tb.edges
    for i in range(tb.n):
        ov = np.minimum(e[i + 1], ev.stop.to_numpy()) - np.maximum(e[i], ev.start.to_numpy())
        out[i] = (ov >= tb.dt / 2).any()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small session (seconds)")
    a = ap.parse_args(argv)
    n, minutes = (100, 5) if a.quick else (200, 60)
    rng = np.random.default_rng(0)
    tA = np.delete(np.arange(int(minutes * 60 * 15)) / 15.0, 100)
    tB = 0.013 + np.arange(int(minutes * 60 * 30)) / 30.0
    tb = ba.make_time_base({"A": tA, "B": tB})
    x = rng.normal(size=(n, tB.size))
    starts = np.sort(rng.uniform(0, tB[-1] - 10, 400))
    ev = pd.DataFrame({"animal": "A", "behavior": "x", "kind": "state", "source": "b",
                       "start": starts, "stop": starts + rng.uniform(0.2, 8, starts.size)})
    gap = 1.5 / 30
    rows = []
    t_fast, y = _timeit(lambda: ba.resample_continuous(x, tB, tb, gap))
    t_slow, y0 = _timeit(lambda: naive_continuous(x, tB, tb, gap), repeat=1)
    assert np.allclose(y, y0, equal_nan=True)
    rows.append(("interpolate (neuron x time)", t_fast, t_slow))
    t_sum, z = _timeit(lambda: ba.resample_sum(x, tB, tb, gap))
    t_sum0, z0 = _timeit(lambda: naive_sum(x, tB, tb, gap), repeat=1)
    assert np.allclose(z, z0, equal_nan=True)
    rows.append(("sum spikes (neuron x time)", t_sum, t_sum0))
    t_ev, m = _timeit(lambda: ba.events_to_bins(ev, tb, ["x"])[0])
    t_ev0, m0 = _timeit(lambda: naive_states(ev, tb), repeat=1)
    assert (m == m0).all()
    rows.append(("state events -> bins", t_ev, t_ev0))
    print(f"neurons={n} frames={tB.size} bins={tb.n} events={len(ev)}")
    for name, f, s in rows:
        print(f"{name:32s} {f * 1e3:9.1f} ms   baseline {s * 1e3:9.1f} ms   speed-up x{s / f:7.1f}")


if __name__ == "__main__":
    main()
