"""Decoders: the speed of the fast path, with the same work and with the work it saves, and the
CPU time of the default decoding stage on the simulator's default preset pair.

Part 1 runs, for each mode, the fast path and the naive nested loop (one sklearn `LinearSVC`,
default tol, or one sklearn `Ridge` per label set x fold x bin) on the same small case with the
same seeds, asserts identical accuracies and AUCs (observed and every surrogate) and prints the
CPU-time ratio for identical work: the algorithmic speed-up.
Part 2 counts the work the defaults save against the naive template (which would average 50
class-balancing repeats for every surrogate too, and fit identical repeats again) and the CPU
time of one label set at session size; it prints the work saved separately.
Part 3 (`--pipeline SESSION.toml --out DIR`) runs the pipeline on a session with the CPU time
(process + waited children, user + sys) of every stage, and compares the decoding stage with
motion + extraction. CPU time, not wall time: the development machine is shared.

    python benchmarks/bench_decoders.py --quick                 # parts 1 and 2, small
    python -m pipeline simulate sim/pair --preset default
    python benchmarks/bench_decoders.py --pipeline sim/pair/session.toml --out sim/out   # part 3
    python benchmarks/bench_decoders.py --pipeline sim/pair/session.toml --out sim/out --only decoding
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import time
from pathlib import Path

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


def cpu() -> float:
    """CPU seconds (user + sys) of this process, its waited-for children and its live child processes.

    Live children matter: joblib's loky workers (n_jobs > 1) outlive a stage and are never
    waited for, so getrusage(RUSAGE_CHILDREN) alone misses them.
    """
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    live = 0.0
    try:
        import psutil
        for ch in psutil.Process().children(recursive=True):
            try:
                t = ch.cpu_times()
                live += t.user + t.system
            except psutil.Error:
                pass
    except ImportError:
        pass
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime + live


def part1(quick, mode):
    """Same work on both sides, defaults on both sides: the algorithmic speed-up of one mode.

    svm: the batched dual solver vs one sklearn `LinearSVC` (default tol) per label set x fold x bin;
    lda: the hat-matrix path vs one sklearn `Ridge` per label set x fold x bin.
    """
    n_per, N, window, rep, sur = (6, 12, (-0.5, 0.5), 2, 2) if quick else (10, 30, (-1.0, 1.0), 2, 3)
    X, tb, ea, eb = session(0, n_per, N, 1 / 15, spacing_s=8.0)
    kw = dict(window=window, n_repeats=rep, n_surrogates=sur, exclusion_s=15.0, mode=mode, random_state=3)
    naive_kw = {}
    if mode == "svm":
        from sklearn.svm import LinearSVC
        naive_kw["tol"] = LinearSVC().tol   # sklearn's default (1e-4): the naive side runs LinearSVC as shipped
    c0 = time.process_time()
    fast = TimeResolvedDecoder(solver="fast", **kw).fit(X, ea, eb[:-1], time=tb)
    t_fast = time.process_time() - c0
    c0 = time.process_time()
    naive = TimeResolvedDecoder(solver="naive", **naive_kw, **kw).fit(X, ea, eb[:-1], time=tb)
    t_naive = time.process_time() - c0
    for att in ("accuracy_", "auc_", "null_accuracy_", "null_auc_"):
        assert np.array_equal(getattr(fast, att), getattr(naive, att)), f"{mode}: fast != naive for {att}"
    n_bins = len(fast.time_bins_)
    n_fits = (rep + sur) * (2 * min(fast.n_bouts_)) * n_bins
    what = f"LinearSVC fits, tol={naive_kw['tol']:g} = sklearn's default" if mode == "svm" else "sklearn Ridge fits"
    print(f"part 1 (same work), mode {mode}: {fast.n_bouts_} bouts, {N} neurons, {n_bins} bins, {rep} repeats + "
          f"{sur} surrogates (<= {n_fits} {what})")
    print("  outputs identical (accuracy, AUC, every surrogate): yes")
    print(f"  naive {t_naive:.2f} s CPU, fast {t_fast:.3f} s CPU: algorithmic ratio {t_naive / t_fast:.0f}x")
    return t_naive / t_fast


def part2(quick, algo_ratio):
    """Work saved by the defaults (not speed): label sets fitted by the template vs by the fast path."""
    dt, N, n_per = 1 / 15, 100, 30
    X, tb, ea, eb = session(1, n_per, N, dt)
    n_sur = 10 if quick else 40
    per = {}
    for mode in ("svm", "lda"):
        c0 = time.process_time()
        d = TimeResolvedDecoder(n_surrogates=n_sur, n_jobs=1, mode=mode, random_state=0).fit(X, ea, eb, time=tb)
        per[mode] = (time.process_time() - c0) / (1 + n_sur)
    per_set = per["lda"]
    template = 50 * (1 + 500)          # 50 balanced repeats for the observed curve and every surrogate
    ours = 1 + 500                     # balanced classes: one observed set; surrogates without repeats
    print(f"part 2 (work saved): {d.n_bouts_} bouts, {N} neurons, {len(d.time_bins_)} bins, shift null")
    print(f"  CPU per label set (all folds x bins, one process): lda (default) {per['lda']:.4f} s, "
          f"svm {per['svm']:.3f} s: lda {per['svm'] / per['lda']:.0f}x less")
    print(f"  label sets per decoder: template {template} (50 repeats x 501), default {ours}: "
          f"work saved {template / ours:.0f}x (identical repeats fitted once; surrogates without repeats)")
    print(f"  same-work speed-up (part 1) x work saved = {algo_ratio * template / ours:.0f}x in all; "
          f"one decoder at the defaults: {ours * per_set:.0f} s CPU")


def part3(session_toml, out, only):
    """CPU time per pipeline stage; decoding vs motion + extraction of the same session."""
    from pipeline import stages as S
    from pipeline.core import orchestrate
    from pipeline.core.session import Session
    out = Path(out)
    rec_path = out / "stage_cpu.json"
    times = json.loads(rec_path.read_text()) if rec_path.exists() else {}

    def wrap(st):
        def f(ctx):
            c0, w0 = cpu(), time.perf_counter()
            try:
                return st.func(ctx)
            finally:
                times[st.name] = dict(cpu_s=round(cpu() - c0, 1), wall_s=round(time.perf_counter() - w0, 1))
                print(f"  stage {st.name}: {times[st.name]['cpu_s']} s CPU ({times[st.name]['wall_s']} s wall)",
                      flush=True)
        return dataclasses.replace(st, func=f)

    reg = {k: wrap(v) for k, v in S.load_stages().items()}
    status = orchestrate.run(Session.load(session_toml), out, only=only, force=bool(only), registry=reg,
                             show_progress=True)
    out.mkdir(parents=True, exist_ok=True)
    rec_path.write_text(json.dumps(times, indent=1))
    print("part 3:", status)
    if all(k in times for k in ("motion", "extraction", "decoding")):
        me = times["motion"]["cpu_s"] + times["extraction"]["cpu_s"]
        dec = times["decoding"]["cpu_s"]
        print(f"  decoding {dec:.0f} s CPU vs motion + extraction {me:.0f} s CPU: ratio {dec / me:.2f} "
              f"({'within' if dec <= me else 'OVER'} the goal <= 1)")


def part3_estimate(out, n_sur=4):
    """Decoding stage CPU estimated from measured CPU per label set on the session's own data.

    For every (animal, contrast) of the default [decoding] section, fits the `full` condition with
    `n_sur` surrogates and 2 repeats at the default settings otherwise and measures CPU per label
    set; the stage's label sets (decoding.decode_session's plan: observed repeats + surrogates of
    every condition) are multiplied by it. Conditions are costed at the `full` rate (their cost
    is set by the number of bouts, not of features, when bouts outnumber features).
    """
    from pipeline.analysis.decoding import CONDITIONS, contrast_events, read_events
    from pipeline.core.dataset import load
    from pipeline.core.parameters import SPEC
    p = SPEC["decoding"].validate({}, "defaults")
    tree = load(out, stages=["align", "celltypes", "behavior"])
    events = read_events(tree)
    n_sub = p["n_subsamples"]
    per_sub = max(1, int(np.ceil(p["condition_surrogates"] / n_sub)))
    rep_sub = max(1, int(np.ceil(p["n_repeats"] / n_sub)))
    total = 0.0
    for a in ("A", "B"):
        act = tree[f"/{a}/activity"]["activity"].transpose("time", "neuron")
        X, t = np.asarray(act.values, float), act["time"].values.astype(float)
        for c in p["contrasts"]:
            ea, eb = contrast_events(events, c, a, p["hold_guard_s"])
            d = TimeResolvedDecoder(window=tuple(p["window_s"]), n_repeats=2, n_surrogates=n_sur, null=p["null"],
                                    min_shift_s=p["min_shift_s"], mode=p["mode"], C=p["C"], ridge=p["ridge"], random_state=0)
            c0 = time.process_time()
            d.fit(X, ea, eb, time=t)
            if d.status_ != "ok":
                print(f"  {a} {c}: {d.status_}")
                continue
            balanced = d.n_bouts_[0] == d.n_bouts_[1]
            per_set = (time.process_time() - c0) / ((1 if balanced else 2) + n_sur)
            rep = 1 if balanced else p["n_repeats"]
            rs = 1 if balanced else rep_sub
            sets = {"full": rep + p["n_surrogates"]}
            for cond in CONDITIONS[1:]:
                sets[cond] = (rep + per_sub * n_sub) if cond in ("shared", "unique", "shared_removed") \
                    else n_sub * (rs + per_sub)
            n_sets = sum(sets[k] for k in p["conditions"])
            total += n_sets * per_set
            print(f"  {a} {c}: {d.n_bouts_} bouts, {X.shape[1]} neurons, {per_set:.2f} s CPU per label set x "
                  f"{n_sets} label sets = {n_sets * per_set:.0f} s CPU")
    print(f"  decoding stage at the defaults, estimated: {total:.0f} s CPU")
    return total


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small part 1 and 2")
    ap.add_argument("--pipeline", metavar="SESSION.toml", help="part 3 only: run the pipeline on this session")
    ap.add_argument("--out", help="part 3: result folder (stage CPU times kept in OUT/stage_cpu.json)")
    ap.add_argument("--only", help="part 3: rerun just these stages (comma-separated), e.g. decoding")
    ap.add_argument("--estimate", action="store_true",
                    help="part 3: estimate the decoding stage from CPU per label set on OUT's aligned data")
    a = ap.parse_args(argv)
    print(f"cores visible: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f} (CPU times below)")
    if a.estimate:
        est = part3_estimate(a.out)
        rec = Path(a.out) / "stage_cpu.json"
        if rec.exists():
            t = json.loads(rec.read_text())
            me = t["motion"]["cpu_s"] + t["extraction"]["cpu_s"]
            print(f"  vs motion + extraction {me:.0f} s CPU (OUT/stage_cpu.json): ratio {est / me:.1f}")
        return
    if a.pipeline:
        part3(a.pipeline, a.out, a.only.split(",") if a.only else None)
        return
    part1(a.quick, "svm")
    ratio = part1(a.quick, "lda")
    part2(a.quick, ratio)


if __name__ == "__main__":
    main()
