"""Stage `motion`: suite2p registration of each animal's movie (pipeline.imaging.motion; docs/imaging.md).

Writes `/A/motion` and `/B/motion`. The registered int16 binaries stay in the
stage's work folder (`OUT/stages/motion/work/<animal>/data.bin`), committed
atomically with the result, for the extraction stage. The two animals are
registered in two processes when the machine has at least two cores.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import xarray as xr

from pipeline.imaging.motion import MotionResult, register_movie
from pipeline.io.nwb import uses_nwb_segmentation
from pipeline.core.orchestrate import stage
from pipeline.io.readers import check_timestamps, open_movie
from pipeline.core.animals import ANIMALS

SIGN_CONVENTION = ("rigid_shift = (dy, dx): frame content = reference content moved by +shift; "
                   "registration moves each frame by -shift (suite2p's convention)")


def raw_inputs(session, out) -> list[str]:
    """Raw movie files (folders expanded) and timestamp files of both animals."""
    files = []
    for a in session.animals.values():
        for p in a["raw"]:
            files += sorted(str(q) for q in Path(p).rglob("*") if q.is_file()) if Path(p).is_dir() else [p]
        if a["timestamps"]:
            files.append(a["timestamps"])
    return files


def _register_animal(animal_cfg: dict, workdir: str, params: dict, progress=None) -> MotionResult:
    movie = open_movie(animal_cfg["raw"], animal_cfg["raw_format"], animal_cfg["hdf5_dataset"])
    with movie:
        if animal_cfg["timestamps"]:
            check_timestamps(movie, animal_cfg["timestamps"])
        return register_movie(movie, workdir, animal_cfg["modality"], params, progress=progress)


def motion_dataset(r: MotionResult, animal_cfg: dict, binary_rel: str) -> xr.Dataset:
    """The /<animal>/motion group from a MotionResult."""
    T, B = r.nonrigid_shift.shape[:2]
    px = {"units": "px"}
    ds = xr.Dataset(
        {
            "rigid_shift": (("frame", "axis"), r.rigid_shift, {**px, "sign": SIGN_CONVENTION}),
            "nonrigid_shift": (("frame", "block", "axis"), r.nonrigid_shift,
                               {**px, "description": "residual block shifts after the rigid step"}),
            "block_center": (("block", "axis"), r.block_center, px),
            "frame_corr": ("frame", r.frame_corr, {"units": "1", "description":
                           "Pearson r of the registered frame with the reference image (1p: high-passed)"}),
            "peak_corr": ("frame", r.peak_corr, {"units": "1", "description":
                          "peak of the whitened phase correlation with the reference"}),
            "bad_frame": ("frame", r.bad_frame, {"description": "peak_corr robust z below -bad_frame_corr_z"}),
            "reference_image": (("y", "x"), r.reference_image, {"units": "binary counts"}),
            "mean_image": (("y", "x"), r.mean_image, {"units": "raw"}),
            "mean_image_raw": (("y", "x"), r.mean_image_raw, {"units": "raw"}),
        },
        coords={"frame": np.arange(T), "axis": ["y", "x"], "block": np.arange(B)},
        attrs={
            "crispness_before": r.crispness_before, "crispness_after": r.crispness_after,
            "crispness": "Frobenius norm of the gradient of the mean image over the valid region",
            "binary": binary_rel, "binary_shape": list(np.asarray([T, *r.mean_image.shape], int).tolist()),
            "binary_scale": r.scale, "valid_y": list(r.valid_yx[0]), "valid_x": list(r.valid_yx[1]),
            "modality": animal_cfg["modality"], "n_bad_frames": int(r.bad_frame.sum()),
            "suite2p_settings": json.dumps(r.settings, default=str),
        },
    )
    return ds


@stage("motion", params=("motion",), inputs=raw_inputs,
       reads=("animal.raw", "animal.raw_format", "animal.hdf5_dataset", "animal.rois_from",
              "animal.modality", "animal.timestamps"))
def run(ctx):
    p = ctx.params["motion"]
    animals = ctx.session.animals
    work = {a: str(ctx.workdir / a) for a in ANIMALS}
    results: dict[str, MotionResult] = {}
    todo = [a for a in ANIMALS if not uses_nwb_segmentation(animals[a])]
    for a in set(ANIMALS) - set(todo):
        ctx.warn(f"animal {a}: ROIs and traces come from the NWB file's segmentation; not registered again")
    # dask workers (interbrain batch) are daemonic processes, which may not start children
    parallel = (os.cpu_count() or 1) >= 2 and not multiprocessing.current_process().daemon
    if len(todo) == 2 and parallel:
        # fork is cheapest and does not re-import the caller's __main__; but torch's thread
        # pools do not survive a fork, so spawn once torch is loaded in this process
        method = "spawn" if "torch" in sys.modules else "fork"
        threads = max(1, (os.cpu_count() or 2) // 2)
        env_before = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        for k, v in env_before.items():
            if v is None:
                os.environ[k] = str(threads)
        try:
            with ProcessPoolExecutor(2, mp_context=get_context(method)) as pool:
                futs = {a: pool.submit(_register_animal, animals[a], work[a], p) for a in todo}
                results = {a: f.result() for a, f in futs.items()}
        finally:
            for k, v in env_before.items():
                if v is None:
                    os.environ.pop(k, None)
    else:
        if len(todo) == 2 and (os.cpu_count() or 1) < 2:
            ctx.warn("one CPU core: registering the two animals one after the other")
        for a in todo:
            results[a] = _register_animal(animals[a], work[a], p, ctx.progress)
    groups = {}
    for a in todo:
        r = results[a]
        if r.bad_frame.mean() > 0.1:
            ctx.warn(f"animal {a}: {int(r.bad_frame.sum())} of {len(r.bad_frame)} frames flagged bad "
                     "(low phase correlation with the reference)")
        if r.crispness_after < r.crispness_before:
            ctx.warn(f"animal {a}: the registered mean image is less crisp than the raw one "
                     f"({r.crispness_after:.3g} < {r.crispness_before:.3g}); check the registration")
        groups[f"/{a}/motion"] = motion_dataset(r, animals[a], f"{a}/data.bin")
    return xr.DataTree.from_dict(groups)
