"""Batch throughput: N small pairs on a 2-worker dask LocalCluster vs one by one, in the same run.

Both arms pin BLAS and torch to one thread per process, so the ratio measures
parallelism over sessions, not thread oversubscription. Target: >= 1.7x with
8 pairs on 2 workers.

    python benchmarks/bench_batch.py            # 8 pairs, motion + extraction + analyses
    python benchmarks/bench_batch.py --quick    # 4 pairs, motion + extraction
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import tomli_w

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "pair01"


def make_pairs(tmp: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        d = tmp / f"pair{i:02d}"
        shutil.copytree(SAMPLE, d, ignore=shutil.ignore_patterns("ground_truth"))
        doc = tomllib.loads((d / "session.toml").read_text())
        doc["session"].update(name=f"pair{i:02d}", seed=i)
        (d / "session.toml").write_text(tomli_w.dumps(doc))
        out.append(d / "session.toml")
    return out


def one_by_one(sessions: list[Path], out_root: Path, stages: list[str]) -> float:
    """All sessions in turn in one process (imports paid once, as each dask worker pays them once)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    code = ("from pipeline.batch import pin_threads; pin_threads()\n"
            "from pipeline import stages as pipeline_stages\nfrom pipeline.core.session import Session\n"
            f"for s in {[str(s) for s in sessions]!r}:\n"
            f"    name = s.split('/')[-2]\n"
            f"    pipeline_stages.run(Session.load(s), out={str(out_root)!r} + '/' + name, only={stages!r}, "
            "show_progress=False)\n")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - t


def batched(sessions: list[Path], out_root: Path, stages: list[str], workers: int) -> float:
    from pipeline.batch import run_batch
    t = time.perf_counter()
    table = run_batch(sessions, workers=workers, out_root=out_root, stages=stages)
    dt = time.perf_counter() - t
    bad = table[table["status"] != "ok"]
    if len(bad):
        raise SystemExit(f"batch failures:\n{bad.to_string()}")
    return dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pairs", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    n = args.pairs or (4 if args.quick else 8)
    stages = ["motion", "extraction"] if args.quick else \
        ["motion", "extraction", "celltypes", "behavior", "align", "subspace", "encoding"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sessions = make_pairs(tmp / "in", n)
        t_seq = one_by_one(sessions, tmp / "seq", stages)
        t_par = batched(sessions, tmp / "par", stages, args.workers)
    print(f"pairs={n} stages={','.join(stages)} workers={args.workers} cores={os.cpu_count()}")
    print(f"one by one: {t_seq:.1f} s   dask LocalCluster: {t_par:.1f} s   speed-up: {t_seq / t_par:.2f}x "
          f"(target >= 1.7x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
