"""auROC encoding null: FFT rank cross-correlation vs a per-shift sklearn roc_auc_score loop.

The baseline computes roc_auc_score(labels, np.roll(trace, s)) for every neuron, behaviour
and shift. It is timed on a subset of (neuron, behaviour) cells and extrapolated linearly
(each cell costs the same); on that subset the null auROCs are compared with the fast ones
(|difference| < 1e-10 asserted).

    python benchmarks/bench_encoding.py            # 200 neurons x 10 behaviours x 2000 shifts, T = 18000
    python benchmarks/bench_encoding.py --quick    # 50 x 4 x 300, T = 3000
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from pipeline.analysis.encoding import AurocEncoder


def data(T, N, M, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((T, N))
    Y = np.zeros((T, M), bool)
    for j in range(M):
        for s in rng.integers(0, T - 60, size=T // 200):
            Y[s:s + rng.integers(10, 60), j] = True
    return Z, Y


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    a = ap.parse_args(argv)
    T, N, M, n, cells, shifts_timed = (3000, 50, 4, 300, 2, 100) if a.quick else (18000, 200, 10, 2000, 2, 100)
    Z, Y = data(T, N, M)
    print(f"{N} neurons x {M} behaviours x {n} shifts, T = {T}; baseline: roc_auc_score on {cells} cells x "
          f"{shifts_timed} shifts, extrapolated x{N * M * n / (cells * shifts_timed):g}")
    clocks = (time.process_time, time.perf_counter)
    c0 = [c() for c in clocks]
    enc = AurocEncoder(n_surrogates=n, min_shift=60, random_state=0, store_null=True).fit(Z, Y)
    t_fast = [c() - s for c, s in zip(clocks, c0)]
    Zs = (Z - Z.mean(0)) / Z.std(0, ddof=1)
    err = 0.0
    c0 = [c() for c in clocks]
    for i, j in [(0, 0), (N - 1, M - 1)][:cells]:
        for k, s in enumerate(enc.shifts_[j][:shifts_timed]):
            err = max(err, abs(roc_auc_score(Y[:, j], np.roll(Zs[:, i], s)) - enc.null_[i, j, k]))
    t_base = [(c() - s) * N * M * n / (cells * shifts_timed) for c, s in zip(clocks, c0)]
    print(f"max |fast - sklearn| = {err:.2e}")
    assert err < 1e-10
    print("                          CPU s    wall s")
    print(f"sklearn loop (extrap.): {t_base[0]:9.1f} {t_base[1]:9.1f}")
    print(f"FFT ranks:              {t_fast[0]:9.2f} {t_fast[1]:9.2f}   ratio {t_base[0] / t_fast[0]:.0f}x (CPU), "
          f"{t_base[1] / t_fast[1]:.0f}x (wall)")


if __name__ == "__main__":
    main()
