"""Speed of the structural-channel cell typing (neuroid), against a naive baseline in the same run.

Baseline: the same reporter score with the surround ring built by dilating each
ROI's mask over the whole image (what a first implementation does). neuroid
dilates in a window around each ROI. Also reports end-to-end label_animal time
(registration + score + mixture) and balanced accuracy on a synthetic animal.

    python benchmarks/bench_celltypes.py --quick
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def naive_score(img, fp, surround_px=6, gap_px=1):
    occupied = fp.union_mask() | ~np.isfinite(img)
    struct = ndimage.generate_binary_structure(2, 1)
    out = np.full(fp.n_neurons, np.nan)
    for k in range(fp.n_neurons):
        ys, xs, w = fp.pixels(k)
        m = np.zeros(img.shape, bool)
        m[ys, xs] = True
        inner = ndimage.binary_dilation(m, struct, iterations=gap_px)
        outer = ndimage.binary_dilation(m, struct, iterations=gap_px + surround_px)
        ring = np.median(img[outer & ~inner & ~occupied])
        ok = np.isfinite(img[ys, xs])
        inside = np.average(img[ys, xs][ok], weights=w[ok])
        out[k] = inside / (inside + ring)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small field of view (seconds)")
    args = ap.parse_args(argv)
    from test_neuroid import bal_acc, synthetic_animal

    from neuroid import Footprints, label_animal
    from neuroid.structural import register_structural, reporter_score

    sizes = [((128, 128), 60)] if args.quick else [((256, 256), 200), ((320, 320), 300)]
    for shape, n in sizes:
        d = synthetic_animal(0, shape=shape, n=n)
        fp = Footprints.from_dense(d["masks"])
        aligned, _, _ = register_structural(d["red"], d["green"])
        t0 = time.perf_counter()
        base = naive_score(aligned, fp)
        t_base = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours = reporter_score(aligned, fp)[0]
        t_ours = time.perf_counter() - t0
        assert np.allclose(base, ours, equal_nan=True), "windowed score differs from the baseline"
        t0 = time.perf_counter()
        ds = label_animal(fp, d["green"], structural=d["red"])
        t_all = time.perf_counter() - t0
        print(f"{shape[0]}x{shape[1]}, {n} ROIs: score {t_ours:.3f} s vs naive {t_base:.3f} s "
              f"(speed-up x{t_base / t_ours:.1f}); label_animal {t_all:.2f} s; "
              f"balanced accuracy {bal_acc(d['truth'], ds.cell_type.values):.3f}")


if __name__ == "__main__":
    main()
