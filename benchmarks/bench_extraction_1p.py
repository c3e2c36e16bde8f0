"""One-photon extraction engines on simulator ground truth: suite2p (default) against minian's CNMF.

    python benchmarks/bench_extraction_1p.py [--seeds 5 6 7] [--engines suite2p minian] [--quick]

For each seed: simulate a 1p pair session (preset 'small', 40 s, 64 x 64 px, as tests/test_extraction.py),
run the motion stage once, then pipeline.imaging.extraction.extract on the same registered movie with each
engine_1p, and score each animal as tests/test_extraction.py does (tests/imaging_synth.match_rois:
Hungarian matching at IoU >= 0.5, F1 / precision / recall, median correlation of matched F_corrected with
the planted calcium). r(F) is the same median over the same matches with
the footprint-weighted raw F instead of F_corrected (the trace choice).
Prints one row per seed x animal x engine; seconds = extraction wall time of that animal.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

FAST = dict(preset="small", duration_s=40.0, fov=(64, 64))


def score(e, mo, g):
    """match_rois of an ExtractionResult against one animal's truth (tests/test_extraction.py _scores)."""
    from imaging_synth import match_rois, reference_offset
    Y, X = mo["mean_image"].shape
    fp = e.footprints((Y, X))
    off = reference_offset(mo["rigid_shift"].values, g["rigid_shift"].values)
    return match_rois(g["footprint"].values, fp, g["calcium"].values, e.F_corrected, off), (fp, off)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[5, 6, 7])
    ap.add_argument("--engines", nargs="+", default=["suite2p", "minian"])
    ap.add_argument("--quick", action="store_true", help="seed 5, engine suite2p only (make bench)")
    a = ap.parse_args(argv)
    if a.quick:
        a.seeds, a.engines = [5], ["suite2p"]
    import pipeline
    from imaging_synth import match_rois
    from pipeline.core import orchestrate
    from pipeline import stages as pipeline_stages
    from pipeline.imaging.extraction import extract
    from pipeline.core.session import Session
    from pipeline.simulator import load_truth, simulate_session
    from pipeline.stages.extraction import frame_rate, frame_times
    rows = []
    print(f"{'seed':>4} {'animal':>6} {'engine':>8} {'n':>3} {'true':>4} {'F1':>5} {'prec':>5} {'recall':>6} "
          f"{'med r':>5} {'r(F)':>5} {'seconds':>7}", flush=True)
    for seed in a.seeds:
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            toml = simulate_session(d / "s", seed=seed, modality="1p", **FAST)
            s = Session.load(toml)
            assert pipeline_stages.run(s, d / "out", only=["motion"], show_progress=False) == {"motion": "ran"}
            tree, truth = pipeline.load(d / "out"), load_truth(toml)
            work = orchestrate.stage_dir(d / "out", "motion") / "work"
            for animal in "AB":
                mo = tree[f"/{animal}/motion"]
                g = truth[f"/{animal}"]
                shape = tuple(int(v) for v in mo.attrs["binary_shape"])
                fs = frame_rate(frame_times(s.animals[animal], shape[0]))
                for engine in a.engines:
                    p = dict(s.params["extraction"], engine_1p=engine)
                    t0 = time.perf_counter()
                    e = extract(str(work / mo.attrs["binary"]), shape, fs, p, "1p", bad_frame=mo["bad_frame"].values,
                                valid_yx=(tuple(mo.attrs["valid_y"]), tuple(mo.attrs["valid_x"])),
                                scale=float(mo.attrs["binary_scale"]), mean_image=mo["mean_image"].values)
                    sec = time.perf_counter() - t0
                    m, (fp, off) = score(e, mo, g)
                    med = float(np.median(m["corr"])) if len(m["corr"]) else float("nan")
                    mm = match_rois(g["footprint"].values, fp, g["calcium"].values, e.F, off)
                    r_f = float(np.median(mm["corr"])) if len(mm["corr"]) else float("nan")
                    row = dict(seed=seed, animal=animal, engine=engine, n=e.n_rois, true=g.sizes["neuron"],
                               f1=m["f1"], precision=m["precision"], recall=m["recall"], median_r=med,
                               r_F=r_f, seconds=sec)
                    rows.append(row)
                    print(f"{seed:>4} {animal:>6} {engine:>8} {row['n']:>3} {row['true']:>4} {m['f1']:>5.2f} "
                          f"{m['precision']:>5.2f} {m['recall']:>6.2f} {med:>5.2f} {r_f:>5.2f} "
                          f"{sec:>7.1f}", flush=True)
    for engine in a.engines:
        r = [x for x in rows if x["engine"] == engine]
        print(f"mean {engine}: F1 {np.mean([x['f1'] for x in r]):.2f}, median r {np.nanmean([x['median_r'] for x in r]):.2f}, "
              f"{np.mean([x['seconds'] for x in r]):.1f} s per animal")
    return rows


if __name__ == "__main__":
    main()
