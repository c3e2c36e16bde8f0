"""PLSC surrogate null: fast (FFT cross-covariances + leading triplets) vs a direct transcription.

The baseline is the reference loop written plainly: for each shift, np.roll of Z_B,
cross-covariance, full SVD, projections Z_A U and Z_B V, and np.corrcoef per dimension.
It is timed on a subset of the shifts and extrapolated linearly to all of them (each
shift costs the same), and its statistics on that subset are compared with the fast
ones: |difference| < 1e-8 for every reported dimension is asserted.

    python benchmarks/bench_subspace.py            # N_A = N_B = 200, T = 18000, 2000 shifts
    python benchmarks/bench_subspace.py --quick    # N = 60, T = 3000, 300 shifts
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.signal import lfilter

from pipeline.analysis.subspace import SharedSubspace


def planted(T, NA, NB, n_shared=5, seed=0):
    """Smooth shared latents (AR(1), rho 0.95) + white noise; returns (Z_A, Z_B) z-scored."""
    rng = np.random.default_rng(seed)
    ar = lambda n: lfilter([np.sqrt(1 - 0.95**2)], [1, -0.95], rng.standard_normal((T, n)), axis=0)  # noqa: E731
    S = ar(n_shared) * np.linspace(1.0, 0.5, n_shared)
    A = S @ rng.standard_normal((n_shared, NA)) + 1.5 * rng.standard_normal((T, NA))
    B = S @ rng.standard_normal((n_shared, NB)) + 1.5 * rng.standard_normal((T, NB))
    z = lambda X: (X - X.mean(0)) / X.std(0, ddof=1)  # noqa: E731
    return z(A), z(B)


def direct(ZA, ZB, shifts):
    """The reference loop (METHODS.md section 2 steps 1-4), one shift at a time."""
    T = ZA.shape[0]
    D = min(ZA.shape[1], ZB.shape[1])
    cov = np.empty((len(shifts), D))
    r = np.empty((len(shifts), D))
    for i, s in enumerate(shifts):
        Bs = np.roll(ZB, s, axis=0)
        U, S, Vt = np.linalg.svd(ZA.T @ Bs / (T - 1))
        PA, PB = ZA @ U, Bs @ Vt.T
        cov[i] = S[:D]
        r[i] = [np.corrcoef(PA[:, k], PB[:, k])[0, 1] for k in range(D)]
    return cov, r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    ap.add_argument("--baseline-shifts", type=int, default=None, help="shifts timed for the baseline")
    a = ap.parse_args(argv)
    if a.quick:
        T, N, n, nb = 3000, 60, 300, 30
    else:
        T, N, n, nb = 18000, 200, 2000, 20
    nb = a.baseline_shifts or nb
    ZA, ZB = planted(T, N, N)
    print(f"N_A = N_B = {N}, T = {T}, {n} shifts; baseline timed on {nb} shifts and extrapolated x{n / nb:g}")

    clocks = (time.process_time, time.perf_counter)    # CPU time (robust on a shared machine), wall
    c0 = [c() for c in clocks]
    fast = SharedSubspace(n_surrogates=n, lag=60, random_state=0, null="adaptive").fit(ZA, ZB)
    t_adapt = [c() - s for c, s in zip(clocks, c0)]
    c0 = [c() for c in clocks]
    full = SharedSubspace(n_surrogates=n, lag=60, random_state=0, null="full").fit(ZA, ZB)
    t_full = [c() - s for c, s in zip(clocks, c0)]
    sub = fast.shifts_[:nb]
    c0 = [c() for c in clocks]
    cov_d, r_d = direct(ZA, ZB, sub)
    t_direct = [(c() - s) / nb * n for c, s in zip(clocks, c0)]

    m = fast.n_null_dims_
    err_a = max(np.abs(fast.cov_null_[:nb, :m] - cov_d[:, :m]).max(), np.abs(fast.r_null_[:nb, :m] - r_d[:, :m]).max())
    err_f = max(np.abs(full.cov_null_[:nb] - cov_d).max(), np.abs(full.r_null_[:nb] - r_d).max())
    print(f"K = {fast.n_shared_} (full: {full.n_shared_}); adaptive null computed {m} dims")
    print(f"max |fast - direct|: adaptive {err_a:.2e} (dims 1..{m}), full {err_f:.2e} (all {cov_d.shape[1]} dims)")
    assert err_a < 1e-8 and err_f < 1e-8 and fast.n_shared_ == full.n_shared_
    print("                        CPU s    wall s   ratio (CPU)  ratio (wall)")
    print(f"direct (extrapolated): {t_direct[0]:8.1f}  {t_direct[1]:8.1f}")
    for name, t in (("adaptive null (K):", t_adapt), ("full-spectrum null:", t_full)):
        print(f"{name:22s} {t[0]:8.1f}  {t[1]:8.1f}   {t_direct[0] / t[0]:8.1f}x   {t_direct[1] / t[1]:8.1f}x")


if __name__ == "__main__":
    main()
