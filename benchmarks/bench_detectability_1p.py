"""Is a planted 1p cell detectable at all? Peak-to-noise of each cell's true-footprint trace against the same
statistic between cells, and the F1 of a detector that knows the true footprints and thresholds it.

    python benchmarks/bench_detectability_1p.py [--seeds 5 3 6 7] [--duration 40] [--cells] [--quick]

For each seed: simulate a 1p pair session (preset 'small', 64 x 64 px, as tests/test_extraction.py; --duration
sets its length), run the motion stage once, then per animal:
- the registered movie's top-hat (pipeline.imaging.extraction.seeded.tophat, disk of one diameter, as the
  default 1p detection movie);
- PNR of a footprint-weighted trace: (max - median) of the trace binned as the 1p detection bin
  (ceil(tau fs / 4) frames) over the robust frame-to-frame noise (MAD of differences / sqrt 2, / sqrt(bin));
- for every planted cell its true footprint (moved into registered coordinates), and as the null the same
  footprint shapes placed at 200 random points >= 10 px from every planted centre and from the frame edge;
- r(trace, calcium): correlation of the true-footprint trace with the planted calcium (signal is there);
- the oracle F1: best over thresholds of TP = cells above it, FP = (cell-sized places between cells) x
  (fraction of the null above it). It is a reference for a detector driven by this one statistic, not a
  bound on every method (detectors also use spatial correlation);
- with --cells, the default engine's best IoU per planted cell (found = IoU >= 0.5), per cell.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def pnr(trace: np.ndarray, bin_size: int) -> float:
    """(max - median) of the binned trace over its robust noise (MAD of frame differences / sqrt 2 / sqrt bin)."""
    n = len(trace) // bin_size * bin_size
    tb = trace[:n].reshape(-1, bin_size).mean(1)
    d = np.diff(trace)
    noise = np.median(np.abs(d - np.median(d))) * 1.4826 / np.sqrt(2) / np.sqrt(bin_size)
    return float((tb.max() - np.median(tb)) / max(noise, 1e-9))


def detectability(mov: np.ndarray, moved_fp: np.ndarray, calcium: np.ndarray, bin_size: int, diameter: float,
                  n_null: int = 200, margin: int = 10, seed: int = 0) -> dict:
    """mov (T, Y, X) registered frames; moved_fp (N, Y, X) planted footprints in registered coordinates;
    calcium (N, T). Returns per-cell pnr and r, the null pnr, and the oracle threshold F1."""
    from pipeline.imaging.extraction.seeded import tophat
    th = tophat(mov, diameter, 0.7)
    N, Y, X = moved_fp.shape
    w = moved_fp / moved_fp.sum((1, 2), keepdims=True)
    tr = np.einsum("nyx,tyx->nt", w, th)
    p = np.array([pnr(t, bin_size) for t in tr])
    r = np.array([np.corrcoef(tr[k], calcium[k])[0, 1] for k in range(N)])
    rng = np.random.default_rng(seed)
    cen = np.array([np.unravel_index(f.argmax(), f.shape) for f in moved_fp])
    null = []
    for _ in range(50 * n_null):
        if len(null) == n_null:
            break
        y, x = rng.integers(margin, Y - margin), rng.integers(margin, X - margin)
        if np.min(np.hypot(cen[:, 0] - y, cen[:, 1] - x)) < diameter:
            continue
        k = rng.integers(N)
        null.append(pnr(np.einsum("yx,tyx->t", np.roll(w[k], (y - cen[k, 0], x - cen[k, 1]), (0, 1)), th), bin_size))
    null = np.array(null)
    support = moved_fp > 0.1 * moved_fp.reshape(N, -1).max(1)[:, None, None]
    sites = (Y * X - support.any(0).sum()) / support.sum((1, 2)).mean()    # cell-sized places between cells
    best = dict(f1=0.0, threshold=np.nan, tp=0, fp=0.0)
    for t in np.unique(np.concatenate([p, null])):
        tp, fp = int((p >= t).sum()), sites * float((null >= t).mean())
        f1 = 2 * tp / (2 * tp + fp + (N - tp))
        if f1 > best["f1"]:
            best = dict(f1=f1, threshold=float(t), tp=tp, fp=fp)
    return dict(pnr=p, r=r, null=null, sites=sites, oracle=best)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[5, 3, 6, 7])
    ap.add_argument("--duration", type=float, default=40.0)
    ap.add_argument("--cells", action="store_true", help="also run the default engine and print a per-cell table")
    ap.add_argument("--quick", action="store_true", help="seed 5 only (the fast test's session; make bench)")
    a = ap.parse_args(argv)
    if a.quick:
        a.seeds = [5]
    import pipeline
    from imaging_synth import match_rois, reference_offset
    from pipeline import stages as pipeline_stages
    from pipeline.core import orchestrate
    from pipeline.core.session import Session
    from pipeline.imaging.extraction import extract
    from pipeline.imaging.extraction.dispatch import detection_bin
    from pipeline.io.binary import ChunkedBinary
    from pipeline.simulator import load_truth, simulate_session
    from pipeline.stages.extraction import frame_rate, frame_times
    rows = []
    for seed in a.seeds:
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            toml = simulate_session(d / "s", seed=seed, modality="1p", preset="small", duration_s=a.duration,
                                    fov=(64, 64))
            s = Session.load(toml)
            assert pipeline_stages.run(s, d / "out", only=["motion"], show_progress=False) == {"motion": "ran"}
            tree, truth = pipeline.load(d / "out"), load_truth(toml)
            work = orchestrate.stage_dir(d / "out", "motion") / "work"
            for animal in "AB":
                mo, g = tree[f"/{animal}/motion"], truth[f"/{animal}"]
                shape = tuple(int(v) for v in mo.attrs["binary_shape"])
                fs = frame_rate(frame_times(s.animals[animal], shape[0]))
                p = s.params["extraction"]
                bad = mo["bad_frame"].values
                b = ChunkedBinary(str(work / mo.attrs["binary"]), shape)
                mov = np.asarray(b[:], np.float32)[~bad]
                b.close()
                off = reference_offset(mo["rigid_shift"].values, g["rigid_shift"].values)
                moved = np.stack([ndimage.shift(f, -np.asarray(off), order=1) for f in g["footprint"].values])
                res = detectability(mov, moved, g["calcium"].values[:, ~bad], detection_bin(shape[0], fs, p, "1p"),
                                    float(p["diameter"]))
                o, n = res["oracle"], len(moved)
                row = dict(seed=seed, animal=animal, cells=n, pnr_median=float(np.median(res["pnr"])),
                           null_median=float(np.median(res["null"])), null_p95=float(np.percentile(res["null"], 95)),
                           r_ge_07=int((res["r"] >= 0.7).sum()), oracle_f1=o["f1"])
                line = (f"seed {seed} {animal}: {n} cells, PNR median {row['pnr_median']:.1f} (null median "
                        f"{row['null_median']:.1f}, 95th pct {row['null_p95']:.1f}), true-footprint trace r >= 0.7: "
                        f"{row['r_ge_07']}; oracle F1 {o['f1']:.2f} (PNR >= {o['threshold']:.1f}: TP {o['tp']}, "
                        f"FP {o['fp']:.1f} of {res['sites']:.0f} places)")
                if a.cells:
                    e = extract(str(work / mo.attrs["binary"]), shape, fs, p, "1p", bad_frame=bad,
                                valid_yx=(tuple(mo.attrs["valid_y"]), tuple(mo.attrs["valid_x"])),
                                scale=float(mo.attrs["binary_scale"]), mean_image=mo["mean_image"].values)
                    fp = e.footprints(mo["mean_image"].shape)
                    m = match_rois(g["footprint"].values, fp, g["calcium"].values, e.F_corrected, off)
                    tf = (moved > 0.1 * moved.reshape(n, -1).max(1)[:, None, None]).astype(float)
                    ef = (fp > 0).astype(float)
                    inter = np.einsum("iyx,jyx->ij", tf, ef)
                    iou = inter / (tf.sum((1, 2))[:, None] + ef.sum((1, 2))[None] - inter)
                    best = iou.max(1) if iou.shape[1] else np.zeros(n)
                    row["f1"] = m["f1"]
                    line += f"; default engine F1 {m['f1']:.2f}\n  cell    F0 spikes   PNR  r(trace,calcium) best IoU"
                    for k in np.argsort(-res["pnr"]):
                        line += (f"\n  {k:4d} {g['F0'].values[k]:5.0f} {int(g['spikes'].values[k].sum()):6d} "
                                 f"{res['pnr'][k]:5.1f} {res['r'][k]:17.2f} {best[k]:8.2f}"
                                 f" {'found' if best[k] >= 0.5 else 'missed'}")
                print(line, flush=True)
                rows.append(row)
    return rows


if __name__ == "__main__":
    main()
