"""Simulator speed and peak memory: chunked movie writing vs one block (the baseline, same run).

    python benchmarks/bench_simulator.py --quick    # small preset, 60 s
    python benchmarks/bench_simulator.py            # default preset, 120 s

Prints seconds per simulated session and per movie frame, and the peak traced
memory of chunked writing (chunk_frames=100) as a ratio of writing the whole
movie as one block (chunk_frames = all frames). numpy registers its buffers
with tracemalloc, so the peak covers the arrays.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path


def _run(outdir: Path, preset: str, duration: float, chunk: int) -> tuple[float, float, int]:
    from pipeline.simulator import load_truth, simulate_session

    tracemalloc.start()
    t0 = time.perf_counter()
    simulate_session(outdir, seed=0, preset=preset, duration_s=duration, chunk_frames=chunk)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t = load_truth(outdir)
    return dt, peak / 2**20, int(t["A"].frame.size + t["B"].frame.size)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small preset, 60 s")
    a = ap.parse_args(argv)
    preset, duration = ("small", 60.0) if a.quick else ("default", 120.0)
    with tempfile.TemporaryDirectory() as tmp:
        base_s, base_mb, nf = _run(Path(tmp) / "one_block", preset, duration, chunk=10**7)
        s, mb, _ = _run(Path(tmp) / "chunked", preset, duration, chunk=100)
    print(f"preset={preset} duration={duration:.0f}s frames(A+B)={nf}")
    print(f"one block : {base_s:7.2f} s  ({1e3 * base_s / nf:.2f} ms/frame)  peak {base_mb:8.1f} MiB")
    print(f"chunk=100 : {s:7.2f} s  ({1e3 * s / nf:.2f} ms/frame)  peak {mb:8.1f} MiB")
    print(f"ratio chunked/one-block: time {s / base_s:.2f}  peak memory {mb / base_mb:.2f}")


if __name__ == "__main__":
    main()
