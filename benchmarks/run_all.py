"""Run every benchmark script (each prints ratios against a baseline measured in the same run).

    python benchmarks/run_all.py           # quick sizes (minutes)
    python benchmarks/run_all.py --full    # the documented sizes (long: see docs/performance.md)
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    full = "--full" in (argv or sys.argv[1:])
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"=== {script.name} ({'full' if full else '--quick'})", flush=True)
        t = time.perf_counter()
        r = subprocess.run([sys.executable, str(script)] + ([] if full else ["--quick"]))
        print(f"=== {script.name}: exit {r.returncode} in {time.perf_counter() - t:.0f} s", flush=True)
        if r.returncode:
            failed.append(script.name)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
