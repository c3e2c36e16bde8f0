"""Stage `extraction`: ROIs and traces of each animal (pipeline.imaging.extraction; docs/imaging.md).

Reads `/A/motion` (and B) and the registered binaries in the motion stage's
work folder; writes `/A/rois` and `/A/traces` (and B). `frame_time` is on the
master clock: the animal's timestamps file (dropped frames are gaps), or
`start_offset_s + frame / frame_rate`.
"""
from __future__ import annotations

import json

import numpy as np
import xarray as xr

from pipeline.core import orchestrate
from pipeline.imaging.extraction import ExtractionResult, extract
from pipeline.io.nwb import read_segmentation, uses_nwb_segmentation
from pipeline.io.segmentations import read_tool_segmentation
from pipeline.core.orchestrate import stage
from pipeline.io.readers import read_timestamps
from pipeline.imaging.traces import BASELINE_RULE, C_DESCRIPTION
from pipeline.core.animals import ANIMALS


def _inputs(session, out) -> list[str]:
    """Raw files read besides the movie: timestamps, and a lab's classifier file (its contents decide is_cell)."""
    files = [a["timestamps"] for a in session.animals.values() if a["timestamps"]]
    return files + [session.params["extraction"]["classifier_file"]] * bool(session.params["extraction"]["classifier_file"])


def frame_times(animal_cfg: dict, n_frames: int) -> np.ndarray:
    """(T,) s on the master clock for each recorded frame."""
    if animal_cfg["timestamps"]:
        t = read_timestamps(animal_cfg["timestamps"])
        if len(t) != n_frames:
            raise ValueError(f"{animal_cfg['timestamps']}: {len(t)} timestamps for {n_frames} registered frames")
        return t
    return animal_cfg["start_offset_s"] + np.arange(n_frames) / animal_cfg["frame_rate"]


def frame_rate(times: np.ndarray) -> float:
    """Nominal rate (Hz) from the median frame interval (robust to dropped frames)."""
    return float(1.0 / np.median(np.diff(times))) if len(times) > 1 else 1.0


def rois_dataset(e: ExtractionResult) -> xr.Dataset:
    N = e.n_rois
    return xr.Dataset(
        {
            "pix_neuron": ("pixel", e.pix_neuron), "pix_y": ("pixel", e.pix_y), "pix_x": ("pixel", e.pix_x),
            "pix_weight": ("pixel", e.pix_weight, {"description": "suite2p lam, normalised to sum 1 per ROI"}),
            "roi_id": ("neuron", np.arange(N)),
            "centroid_y": ("neuron", e.centroid[:, 0], {"units": "px"}),
            "centroid_x": ("neuron", e.centroid[:, 1], {"units": "px"}),
            "iscell_prob": ("neuron", e.iscell_prob, {"description": "suite2p built-in classifier probability"}),
            "is_cell": ("neuron", e.is_cell),
            **{k: ("neuron", np.asarray(v, np.float32), {"description": "classifier input (suite2p ROI statistic)"})
               for k, v in e.features.items()},
            "mean_image": (("y", "x"), e.mean_image, {"units": "raw"}),
            "correlation_image": (("y", "x"), e.correlation_image),
        },
        coords={"neuron": np.arange(N)},
        attrs={"engine": e.engine, "settings": json.dumps(e.settings, default=str)},
    )


def traces_dataset(e: ExtractionResult, times: np.ndarray, params: dict) -> xr.Dataset:
    dims = ("neuron", "frame")
    raw = {"units": "raw"}
    return xr.Dataset(
        {"F": (dims, e.F, raw), "Fneu": (dims, e.Fneu, raw), "F_corrected": (dims, e.F_corrected, raw),
         "dff": (dims, e.dff, {"units": "1"}), "spikes": (dims, e.spikes, {"units": "a.u."}),
         "C": (dims, e.C, {**raw, "description": C_DESCRIPTION})},
        coords={"neuron": np.arange(e.n_rois), "frame": np.arange(len(times)),
                "frame_time": ("frame", times, {"units": "s", "clock": "master"})},
        attrs=_trace_attrs(e.engine, params),
    )


def _trace_attrs(engine: str, params: dict) -> dict:
    rule = BASELINE_RULE.format(p=params["baseline_percentile"], w=params["baseline_window_s"],
                                c=params["neuropil_coefficient"])
    if engine == "minian":   # CNMF models background and neighbours itself: F_corrected is its denoised C
        return {"baseline_rule": rule.split("; F_corrected")[0] + "; F_corrected = minian CNMF C (raw units), "
                "Fneu = F - F_corrected", "deconvolution": "minian CNMF S (AR(1) model)"}
    return {"baseline_rule": rule, "deconvolution": f"suite2p OASIS, tau = {params['tau']} s; C = its model "
            "fluorescence, c[t] = exp(-1 / (tau fs)) c[t-1] + spikes[t]"}


@stage("extraction", needs=("motion",), params=("extraction",), inputs=_inputs,
       reads=("animal.raw", "animal.raw_format", "animal.rois_from", "animal.modality", "animal.timestamps",
              "animal.frame_rate", "animal.start_offset_s", "animal.segmentation", "animal.segmentation_format",
              "animal.nwb_plane"))
def run(ctx):
    tree = ctx.upstream()
    p = dict(ctx.params["extraction"])
    work = orchestrate.stage_dir(ctx.out, "motion") / "work"
    groups = {}
    for a in ANIMALS:
        cfg = ctx.session.animals[a]
        if cfg.get("segmentation") or uses_nwb_segmentation(cfg):
            groups.update(_from_nwb(ctx, a, cfg))
            continue
        try:   # `"/A/motion" in tree` tests child names only, not paths
            mo = tree[f"/{a}/motion"].to_dataset()
        except KeyError:
            raise ValueError(f"extraction: the upstream result has no /{a}/motion group (motion stage output)") from None
        shape = tuple(int(s) for s in mo.attrs["binary_shape"])
        binary = work / mo.attrs["binary"]
        if not binary.is_file():
            raise FileNotFoundError(f"{binary}: registered movie of animal {a} is missing; rerun the motion stage "
                                    "(interbrain run --force --only motion)")
        times = frame_times(cfg, shape[0])
        fs = frame_rate(times)
        e = extract(str(binary), shape, fs, p, cfg["modality"], bad_frame=mo["bad_frame"].values,
                    valid_yx=(tuple(mo.attrs["valid_y"]), tuple(mo.attrs["valid_x"])),
                    scale=float(mo.attrs["binary_scale"]), mean_image=mo["mean_image"].values)
        if e.n_rois == 0:
            ctx.warn(f"animal {a}: no ROIs found")
        elif not e.is_cell.any():
            ctx.warn(f"animal {a}: no ROI passed iscell_threshold = {e.settings.get('iscell_threshold')}")
        groups[f"/{a}/rois"] = rois_dataset(e)
        groups[f"/{a}/traces"] = traces_dataset(e, times, p)
    return xr.DataTree.from_dict(groups)


def _from_nwb(ctx, a: str, cfg: dict) -> dict:
    """ROIs and traces of animal `a` from an existing segmentation: the `segmentation` key (suite2p, CaImAn,
    minian output, through roiextractors) or its NWB file's PlaneSegmentation (extraction skipped)."""
    if cfg.get("segmentation"):
        path = cfg["segmentation"]
        got = read_tool_segmentation(path, cfg["segmentation_format"], cfg["frame_rate"])
    else:
        path = cfg["raw"][0]
        got = read_segmentation(path, cfg.get("nwb_plane", ""), cfg["frame_rate"])
    if got is None:
        raise ValueError(f"{path}: rois_from = 'nwb' but the file has no PlaneSegmentation in /processing")
    rois, traces = got
    n_frames = traces.sizes["frame"]
    if cfg["timestamps"] or cfg["frame_rate"]:
        traces = traces.assign_coords(frame_time=("frame", frame_times(cfg, n_frames), {"units": "s", "clock": "master"}))
    traces = traces.assign_coords(neuron=np.arange(rois.sizes["neuron"]), frame=np.arange(n_frames))
    if "F_corrected" not in traces and {"F", "Fneu"} <= set(traces):
        c = ctx.params["extraction"]["neuropil_coefficient"]
        traces["F_corrected"] = traces["F"] - c * traces["Fneu"]
    if "dff" not in traces and "F" in traces:   # e.g. suite2p output: dF/F by this pipeline's baseline rule
        from pipeline.imaging.traces import dff
        p = ctx.params["extraction"]
        fc = traces["F_corrected"] if "F_corrected" in traces else traces["F"]
        fs = float(1.0 / np.median(np.diff(traces["frame_time"].values)))
        traces["dff"] = (("neuron", "frame"), dff(fc.values, traces["F"].values, fs, p["baseline_window_s"],
                                                  p["baseline_percentile"]))
    ctx.warn(f"animal {a}: extraction skipped; {rois.sizes['neuron']} ROIs and their traces read from {path}")
    return {f"/{a}/rois": rois.assign_coords(neuron=np.arange(rois.sizes["neuron"])), f"/{a}/traces": traces}
