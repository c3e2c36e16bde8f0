"""Motion stage throughput (frames/s) against suite2p's registration_wrapper on the same movie.

    python benchmarks/bench_motion.py [--quick]

Both run in this process on the same machine: interbrain's register_movie
(TIFF -> int16 binary, suite2p registration, QC pass with the subpixel residual
and phase-correlation peak per frame) and
suite2p.registration.registration_wrapper on an in-memory int16 copy with the
same settings (no file reading or QC). Both arms are warmed up, then run
alternately `--repeats` times in one torch thread; prints the median throughput of each, the
median and range of the per-repeat ratios (target >= 0.9), by CPU time (robust to other
jobs on a shared machine) and by wall time.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="500 frames of 128 x 128 px (default 2000 of 512 x 512)")
    ap.add_argument("--repeats", type=int, default=7, help="alternating runs of each arm; medians are compared")
    a = ap.parse_args(argv)
    T, L = (500, 128) if a.quick else (2000, 512)
    from _imaging_data import write_movie
    from pipeline.imaging.motion import register_movie, suite2p_registration_settings, torch_device
    from pipeline.core.parameters import SPEC
    from pipeline.io.readers import open_movie
    from suite2p.registration import registration_wrapper
    import torch
    torch.set_num_threads(1)   # one thread: CPU time is the work done, and runs vary less
    params = SPEC["motion"].validate({}, "bench")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "movie.tif"
        write_movie(path, T, L, L)
        movie = open_movie(path)
        data = (movie[:] // 2).astype(np.int16) if movie.dtype == np.uint16 else movie[:].astype(np.int16)
        settings = suite2p_registration_settings("2p", params, movie.shape)
        # warm both paths up once (torch/FFT plans), then alternate the arms so machine load hits both alike
        registration_wrapper(data[: min(T, 200)].copy(), settings=settings, device=torch_device())
        t_ours, t_theirs = [], []   # (wall s, CPU s) per run
        for _ in range(a.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            register_movie(movie, Path(d) / "work", "2p", params)
            t_ours.append((time.perf_counter() - t0, time.process_time() - c0))
            t0, c0 = time.perf_counter(), time.process_time()
            registration_wrapper(data.copy(), settings=settings, device=torch_device())
            t_theirs.append((time.perf_counter() - t0, time.process_time() - c0))
        (ours_w, ours_c), (theirs_w, theirs_c) = np.median(t_ours, 0), np.median(t_theirs, 0)
        ours, theirs = T / ours_c, T / theirs_c
        paired = np.array(t_theirs)[:, 1] / np.array(t_ours)[:, 1]    # per repeat: ours / theirs throughput
    ratio = float(np.median(paired))
    print(f"movie {T} x {L} x {L}: interbrain motion stage {ours:.1f} frames per CPU-s ({T / ours_w:.1f} frames/s wall), "
          f"suite2p registration_wrapper {theirs:.1f} frames per CPU-s ({T / theirs_w:.1f} frames/s wall); "
          f"ratio by CPU time: median {ratio:.2f} of {a.repeats} paired repeats (range {paired.min():.2f}-"
          f"{paired.max():.2f}), {theirs_w / ours_w:.2f} by median wall time (target >= 0.9)")
    return {"ours_fps": ours, "suite2p_fps": theirs, "ratio": ratio}


if __name__ == "__main__":
    main()
