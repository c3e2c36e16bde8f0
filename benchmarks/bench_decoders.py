"""Decoders: fast path (Gram matrices + batched exact dual active-set solver with downdates)
vs the naive nested loop (one sklearn LinearSVC per label set x fold x bin), same process.

Part 1 runs both on the same small case with the same seeds, asserts identical accuracies
and AUCs (observed and every surrogate) and prints the time ratio for identical work.
Part 2 times the full default analysis of a session (two animals x two variables,
+-3 s at 15 Hz, 50 repeats, 500 surrogates, 15 s exclusion, n_jobs=2) with the fast path,
and prints the implied ratio against the naive template (50 repeats for every one of the
501 label sets, each fit at the naive per-fit time measured in part 1).

    python benchmarks/bench_decoders.py            # part 2 at the defaults
    python benchmarks/bench_decoders.py --quick    # smaller part 1; part 2 with 50 surrogates, extrapolated
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from pipeline.analysis.decoders import TimeResolvedDecoder


def session(seed, n_per_class, N, dt, amp=0.8, spacing_s=20.0, tau=0.5):
    """Activity (time, neuron) at bin dt with class a/b events; 8 neurons respond in [0.2, 1] s."""
    rng = np.random.default_rng(seed)
    n = 2 * n_per_class
    times = 10.0 + np.cumsum(spacing_s + rng.uniform(0, 5, n))
    lab = rng.permutation(np.r_[np.ones(n_per_class), np.zeros(n_per_class)]).astype(bool)
    T = int((times[-1] + 15) / dt)
    drive = rng.normal(size=(T, N))
    for t, isa in zip(times, lab):
        drive[int((t + 0.2) / dt):int((t + 1.0) / dt), :8] += amp if isa else -amp
    a = np.exp(-dt / tau)
    from scipy.signal import lfilter
    X = lfilter([1 - a], [1, -a], drive, axis=0)
    return X, (np.arange(T) + 0.5) * dt, times[lab], times[~lab]


def part1(quick):
    n_per, N, window, rep, sur = (6, 12, (-0.5, 0.5), 2, 2) if quick else (10, 30, (-1.0, 1.0), 2, 3)
    X, tb, ea, eb = session(0, n_per, N, 1 / 15, spacing_s=8.0)
    kw = dict(window=window, n_repeats=rep, n_surrogates=sur, exclusion_s=15.0, random_state=3)
    t0 = time.perf_counter()
    fast = TimeResolvedDecoder(solver="fast", **kw).fit(X, ea, eb[:-1], time=tb)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive = TimeResolvedDecoder(solver="naive", **kw).fit(X, ea, eb[:-1], time=tb)
    t_naive = time.perf_counter() - t0
    for att in ("accuracy_", "auc_", "null_accuracy_", "null_auc_"):
        assert np.array_equal(getattr(fast, att), getattr(naive, att)), f"fast != naive for {att}"
    n_bins = len(fast.time_bins_)
    n_sets = rep + sur
    n_fits = n_sets * (2 * min(fast.n_bouts_)) * n_bins
    print(f"part 1: {fast.n_bouts_} bouts, {N} neurons, {n_bins} bins, {rep} repeats + {sur} surrogates "
          f"(<= {n_fits} LinearSVC fits)")
    print("  outputs identical (accuracy, AUC, every surrogate): yes")
    print(f"  naive {t_naive:.2f} s, fast {t_fast:.3f} s, ratio {t_naive / t_fast:.0f}x (same work)")
    return t_naive / n_fits


def part2(quick, per_fit_naive):
    n_sur = 50 if quick else 500
    dt, N, n_per = 1 / 15, 100, 30
    total, fits_template = 0.0, 0
    for animal in ("A", "B"):
        for var in ("hold vs proceed", "self vs partner poke"):
            X, tb, ea, eb = session(sum(map(ord, animal + var)), n_per, N, dt)
            t0 = time.perf_counter()
            d = TimeResolvedDecoder(n_surrogates=n_sur, n_jobs=2, random_state=0).fit(X, ea, eb, time=tb)
            el = time.perf_counter() - t0
            sig = [(round(c["start_s"], 2), round(c["stop_s"], 2)) for c in d.clusters_ if c["significant"]]
            print(f"  {animal} {var}: {d.n_bouts_} bouts, {len(d.time_bins_)} bins, {el:.1f} s; significant {sig}")
            total += el
            fits_template += (2 * min(d.n_bouts_)) * len(d.time_bins_) * 50 * 501
    # classes are balanced (30 vs 30), so the 50 observed repeats are one label set (fitted once):
    # time scales with 1 + n_surrogates
    est = total if not quick else total * (1 + 500) / (1 + n_sur)
    print(f"part 2: full default analysis (2 animals x 2 variables, 100 neurons, 30 vs 30 bouts, "
          f"{n_sur} surrogates{' -> extrapolated to 500' if quick else ''}): {est:.0f} s on 2 workers")
    # load-independent view: CPU time of one process per label set (the machine may be shared)
    X, tb, ea, eb = session(1, n_per, N, dt)
    c0 = time.process_time()
    TimeResolvedDecoder(n_surrogates=10, n_jobs=1, random_state=0).fit(X, ea, eb, time=tb)
    per_set = (time.process_time() - c0) / 11
    print(f"  CPU time per label set (one process): {per_set:.2f} s -> full default analysis "
          f"4 x 501 label sets = {4 * 501 * per_set / 2:.0f} s on 2 unloaded cores")
    naive_est = fits_template * per_fit_naive
    print(f"  naive template (50 repeats x 501 label sets, {fits_template:.2e} fits at {per_fit_naive * 1e3:.1f} ms): "
          f"~{naive_est / 3600:.0f} h; ratio ~{naive_est / est:.0f}x")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small part 1; part 2 with 50 surrogates")
    a = ap.parse_args(argv)
    print(f"cores visible: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    per_fit = part1(a.quick)
    part2(a.quick, per_fit)


if __name__ == "__main__":
    main()
