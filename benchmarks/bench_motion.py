"""Motion stage throughput (frames/s) against suite2p's registration_wrapper on the same movie.

    python benchmarks/bench_motion.py [--quick]

Both run in this process on the same machine: first interbrain's register_movie
(TIFF -> int16 binary, suite2p registration, subpixel residual/QC pass), then
suite2p.registration.registration_wrapper on an in-memory int16 copy with the
same settings (no file reading or QC). Prints frames/s of each and the ratio
(target >= 0.9).
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
    a = ap.parse_args(argv)
    T, L = (500, 128) if a.quick else (2000, 512)
    from _imaging_data import write_movie
    from pipeline.motion import register_movie, suite2p_registration_settings, torch_device
    from pipeline.parameters import SPEC
    from pipeline.readers import open_movie
    from suite2p.registration import registration_wrapper
    params = SPEC["motion"].validate({}, "bench")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "movie.tif"
        write_movie(path, T, L, L)
        movie = open_movie(path)
        t0 = time.perf_counter()
        register_movie(movie, Path(d) / "work", "2p", params)
        ours = T / (time.perf_counter() - t0)
        data = (movie[:] // 2).astype(np.int16) if movie.dtype == np.uint16 else movie[:].astype(np.int16)
        settings = suite2p_registration_settings("2p", params, movie.shape)
        t0 = time.perf_counter()
        registration_wrapper(data, settings=settings, device=torch_device())
        theirs = T / (time.perf_counter() - t0)
    ratio = ours / theirs
    print(f"movie {T} x {L} x {L}: interbrain motion stage {ours:.1f} frames/s, "
          f"suite2p registration_wrapper {theirs:.1f} frames/s, ratio {ratio:.2f} (target >= 0.9)")
    return {"ours_fps": ours, "suite2p_fps": theirs, "ratio": ratio}


if __name__ == "__main__":
    main()
