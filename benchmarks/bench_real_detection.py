"""Cell detection on real 2p data: the project against suite2p run directly, scored against human labels.

    python benchmarks/bench_real_detection.py [--quick] [--work DIR]

The movie is the shared neurofinder 00.00 top-left quadrant (600 x 256 x 256 px, ~7 Hz, 106
labelled ROIs; `<repo>/../shared/data/neurofinder_00_00_topleft`, skipped when absent). Arms:
- the project: motion (defaults) + extraction (defaults, diameter 10) at fs 7 Hz;
- `suite2p.run_s2p` with its defaults (diameter 10, fs 7), sparsery's spatial scale estimated;
- the same with spatial scale 2 (cells of ~12 px), which the project derives from diameter 10.
Scoring: neurofinder's greedy centroid matching under 5 px. Prints recall, precision and F1 over
all ROIs and over is_cell ROIs, and the project's F1 over each suite2p arm's F1 (target >= 1); for
the project also is_cell at suite2p's threshold 0.5 and without the 2p transient test (same ROIs).
--quick changes nothing (there is one movie); --work keeps and reuses the runs' files there.
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


def _line(name: str, centroid, is_cell, truth, R) -> dict:
    a, c = R.match(truth, centroid), R.match(truth, np.asarray(centroid)[np.asarray(is_cell, bool)])
    print(f"{name:<34} all ROIs: F1 {a['f1']:.3f} (recall {a['recall']:.2f}, precision {a['precision']:.2f}, "
          f"{a['n_found']} ROIs)   is_cell: F1 {c['f1']:.3f} (recall {c['recall']:.2f}, "
          f"precision {c['precision']:.2f}, {c['n_found']} ROIs)", flush=True)
    return {"all": a["f1"], "cell": c["f1"]}


def _cell_variants(e) -> dict:
    """is_cell of the project's ROIs under other rules: {name: (N,) bool}. The transient test is the 2p
    cut on `transient_skew` (docs/imaging.md, "Which ROIs are cells")."""
    prob, sk = e.iscell_prob, e.features["transient_skew"]
    cut = e.settings["min_transient_skew_2p"]
    return {"is_cell threshold 0.5 (suite2p's)": (prob >= 0.5) & (sk > cut),
            "without the transient test": prob >= e.settings["iscell_threshold"]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="accepted for run_all.py; the movie is the same")
    ap.add_argument("--work", default="", help="folder for the runs' files (reused when present); default a temp dir")
    a = ap.parse_args(argv)
    import _realdata as R
    d = R.data_dir()
    if d is None:
        print(f"skipped: no real data at {R.REPO.parent / 'shared' / 'data' / R.NAME}")
        return {}
    truth = R.truth_centroids(d)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.work or tmp)
        out = {}
        t = time.perf_counter()
        motion = R.register(d, work / "project")
        e = R.run_project(motion)
        print(f"project: {time.perf_counter() - t:.0f} s (bin {e.settings['bin_size']} frames)", flush=True)
        out["project"] = _line("project (defaults, diameter 10)", R.result_centroids(e), e.is_cell, truth, R)
        for name, cell in _cell_variants(e).items():     # is_cell rules re-applied to the same ROIs
            _line(f"  {name}", R.result_centroids(e), cell, truth, R)
        for scale, name in ((0, "suite2p defaults"), (2, "suite2p, spatial scale 2")):
            t = time.perf_counter()
            s = R.run_suite2p_direct(d, work / "suite2p_direct", scale)
            print(f"{name}: {time.perf_counter() - t:.0f} s", flush=True)
            out[name] = _line(name, s["centroid"], s["is_cell"], truth, R)
    p = out["project"]
    for name in ("suite2p defaults", "suite2p, spatial scale 2"):
        o = out[name]
        r = [p[k] / o[k] if o[k] > 0 else float("inf") for k in ("all", "cell")]
        print(f"ratio project / {name}: all ROIs {r[0]:.2f}, is_cell {r[1]:.2f} (target >= 1)")
    return out


if __name__ == "__main__":
    main()
