"""Peak resident memory of motion + extraction at two movie lengths (4x apart): it must not grow with length.

    python benchmarks/bench_memory.py [--quick]

Each length runs in its own subprocess (fresh interpreter); the child reports
its own peak RSS (resource.getrusage ru_maxrss). Bounded by: reading the raw
movie in batch_size chunks (pread, no memory map), the int16 binary read/written
with pread/pwrite (no memory map), suite2p registration in batches, and the
binned detection movie capped at max_binned_frames.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

WRITER = r"""
import sys
sys.path[:0] = [{root!r}, {here!r}]
from _imaging_data import write_movie
write_movie({d!r} + "/movie.tif", {T}, {L}, {L})
"""

CHILD = r"""
import json, resource, sys, time
sys.path[:0] = [{root!r}, {here!r}]
from pipeline.imaging.motion import register_movie
from pipeline.imaging.extraction import extract
from pipeline.core.parameters import SPEC
from pipeline.io.readers import open_movie
T, L, d, nb, bs = {T}, {L}, {d!r}, {nb}, {bs}
t0 = time.time()
m = open_movie(d + "/movie.tif")
r = register_movie(m, d + "/work", "2p", SPEC["motion"].validate({{"batch_size": bs}}, "bench"))
p = SPEC["extraction"].validate({{"max_binned_frames": nb, "diameter": 6, "batch_size": bs}}, "bench")
e = extract(r.binary, m.shape, 15.0, p, "2p", r.bad_frame, r.valid_yx, r.scale)
print(json.dumps({{"T": T, "L": L, "rois": int(e.n_rois), "seconds": time.time() - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def measure(T: int, L: int, max_binned: int, batch_size: int = 100) -> dict:
    with tempfile.TemporaryDirectory() as d:
        w = subprocess.run([sys.executable, "-c", WRITER.format(root=str(ROOT), here=str(HERE), T=T, L=L, d=d)],
                           capture_output=True, text=True)   # written in its own process: not measured
        if w.returncode:
            raise RuntimeError(w.stderr[-3000:])
        code = CHILD.format(root=str(ROOT), here=str(HERE), T=T, L=L, d=d, nb=max_binned, bs=batch_size)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(out.stderr[-3000:])
        return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="128 x 128 px, 1000 and 4000 frames (default 512 x 512, 2000 and 8000)")
    ap.add_argument("--max-binned", type=int, help="max_binned_frames (default 500 quick, 1000 full)")
    ap.add_argument("--batch-size", type=int, default=100, help="[motion] and [extraction] batch_size (default 100, the parameter default)")
    ap.add_argument("--frames", type=int, help="frames of the shorter movie (default 1000 quick, 2000 full)")
    ap.add_argument("--short-only", action="store_true", help="only the shorter movie (to see how peak RSS "
                    "depends on --max-binned)")
    a = ap.parse_args(argv)
    L, T1 = (128, 1000) if a.quick else (512, 2000)
    T1 = a.frames or T1
    nb = a.max_binned or (500 if a.quick else 1000)
    rows = []
    for T in ((T1,) if a.short_only else (T1, 4 * T1)):   # printed as each finishes: the long one takes hours
        r = measure(T, L, nb, a.batch_size)
        rows.append(r)
        print(f"{r['T']} frames of {r['L']} x {r['L']} px ({r['T'] * r['L'] ** 2 * 2 / 1e9:.2f} GB uint16): "
              f"peak RSS {r['peak_rss_mb']:.0f} MB, {r['seconds']:.0f} s, {r['rois']} ROIs", flush=True)
    if len(rows) == 1:
        return rows
    ratio = rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    print(f"peak RSS ratio (4x longer / shorter) = {ratio:.2f} (bounded: ~1; max_binned_frames = {nb}, "
          f"batch_size = {a.batch_size})")
    return rows


if __name__ == "__main__":
    main()
