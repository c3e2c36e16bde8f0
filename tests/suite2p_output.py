"""A real suite2p output folder (suite2p/plane0), made by running suite2p on a small synthetic movie with
planted cells. Shared by the NWB-in and existing-segmentation tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from imaging_synth import synth_movie


def run_suite2p(root: Path, seed: int = 0) -> dict:
    """Run suite2p 1.x on a (400, 64, 64) movie of 12 cells. Returns paths and the planted truth."""
    from suite2p import default_db, default_settings, run_s2p
    root = Path(root)
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    movie, truth = synth_movie(T=400, Ly=64, Lx=64, n_cells=12, seed=seed, max_shift=1.0, fs=10.0, tau=1.0)
    tifffile.imwrite(raw / "movie.tif", movie)
    db = default_db()
    db.update({"data_path": [str(raw)], "save_path0": str(root), "nplanes": 1, "nchannels": 1})
    s = default_settings()
    s["fs"], s["tau"], s["diameter"] = 10.0, 1.0, [8, 8]
    # suite2p 1.1's own NWB export (save_NWB) fails with pynwb 4.2: its external-file TwoPhotonSeries has no
    # num_samples ("num_samples should be set when format='external'"), so NWB files come from neuroconv
    s["io"]["save_NWB"] = False
    s["run"]["do_regmetrics"] = False
    s["registration"]["nonrigid"] = False      # 64 x 64 is too small for suite2p's non-rigid blocks
    s["torch_device"] = "cpu"
    run_s2p(db=db, settings=s)
    return {"movie": raw / "movie.tif", "suite2p": root / "suite2p", "plane0": root / "suite2p" / "plane0",
            "truth": truth, "frames": movie}
