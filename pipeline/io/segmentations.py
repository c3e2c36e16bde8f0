"""Existing segmentations (suite2p, CaImAn, minian output) read through roiextractors.

A lab that already segmented its movies starts a pair session from those outputs with
`[animals.X] segmentation = "A/suite2p/plane0"` (a suite2p plane folder or the suite2p folder, a CaImAn
HDF5 file, a minian output folder); motion correction and extraction are then skipped for that animal.
`read_tool_segmentation` returns the same (rois, traces) layout as pipeline.io.nwb_in.read_segmentation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.io.nwb_in import NWBInputError

#: roiextractors trace names -> /A/traces variables
_TRACES = {"raw": "F", "neuropil": "Fneu", "deconvolved": "spikes", "denoised": "C", "dff": "dff"}


class SegmentationError(NWBInputError):
    """An existing segmentation cannot be read. Names the path and what was expected."""


def guess_format(path: str | Path) -> str:
    """'suite2p' (stat.npy in the folder or a plane folder below), 'caiman' (.hdf5/.h5 file) or 'minian'
    (A.zarr / C.zarr folders)."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() in (".hdf5", ".h5"):
        return "caiman"
    if p.is_dir():
        if (p / "stat.npy").exists() or any(p.glob("plane*/stat.npy")):
            return "suite2p"
        if (p / "A.zarr").exists() or (p / "C.zarr").exists():
            return "minian"
    raise SegmentationError(f"{p}: not a suite2p folder (stat.npy), CaImAn HDF5 file or minian folder (A.zarr); "
                            "set [animals.X] segmentation_format or check the path")


def _extractor(path: Path, fmt: str, frame_rate: float | None):
    if fmt == "suite2p":
        from roiextractors import Suite2pSegmentationExtractor
        if (path / "stat.npy").exists():        # a plane folder: roiextractors takes the suite2p folder + plane
            return Suite2pSegmentationExtractor(folder_path=str(path.parent), plane_name=path.name)
        return Suite2pSegmentationExtractor(folder_path=str(path))
    if fmt == "caiman":
        from roiextractors import CaimanSegmentationExtractor
        return CaimanSegmentationExtractor(file_path=str(path))
    from roiextractors import MinianSegmentationExtractor
    return MinianSegmentationExtractor(folder_path=str(path), sampling_frequency=frame_rate)


def read_tool_segmentation(path: str | Path, fmt: str = "auto", frame_rate: float | None = None):
    """(rois, traces) of a suite2p/CaImAn/minian output, in the dataset's `/A/rois` and `/A/traces` layout.

    Every ROI of the output is kept; `is_cell` is the tool's own classification (suite2p iscell, CaImAn
    accepted components). Frame times: the tool's timestamps, else k / sampling rate (`frame_rate` when the
    output has none). Traces are (neuron, frame) float32.
    """
    import xarray as xr
    path = Path(path)
    fmt = guess_format(path) if fmt == "auto" else fmt
    try:
        ext = _extractor(path, fmt, frame_rate)
    except SegmentationError:
        raise
    except Exception as exc:   # roiextractors raises many types for half-written or foreign folders
        raise SegmentationError(f"{path}: not a readable {fmt} output ({type(exc).__name__}: {exc})") from None
    ids = list(ext.get_roi_ids())
    n = len(ids)
    masks = np.moveaxis(np.asarray(ext.get_roi_image_masks(), np.float32), -1, 0)       # (roi, y, x)
    data = {}
    for name, arr in ext.get_traces_dict().items():
        if arr is not None and name in _TRACES:
            arr = np.asarray(arr, np.float32)
            data[_TRACES[name]] = arr.T if arr.shape[-1] == n else arr
    if not data:
        raise SegmentationError(f"{path}: {fmt} output has ROIs but no traces")
    T = next(iter(data.values())).shape[1]
    keys = ext.get_property_keys() if hasattr(ext, "get_property_keys") else []
    is_cell = np.ones(n, bool)
    for k in ("iscell", "accepted", "is_accepted"):
        if k in keys:
            is_cell = np.asarray(ext.get_property(k, ids), float) > 0.5
            break
    if hasattr(ext, "has_time_vector") and ext.has_time_vector():
        ft = np.asarray(ext.get_timestamps(), float)[:T]
    else:
        fs = ext.get_sampling_frequency() or frame_rate
        if not fs:
            raise SegmentationError(f"{path}: the {fmt} output gives no sampling rate; set [animals.X] frame_rate")
        ft = np.arange(T) / float(fs)
    images = ext.get_images_dict() if hasattr(ext, "get_images_dict") else {}
    mean = images.get("mean")
    mean = np.asarray(mean, np.float32) if mean is not None and np.shape(mean) == masks.shape[1:] else masks.max(0)
    nz = np.nonzero(masks)
    cy = np.array([np.average(np.nonzero(m > 0)[0], weights=m[m > 0]) for m in masks])
    cx = np.array([np.average(np.nonzero(m > 0)[1], weights=m[m > 0]) for m in masks])
    roi_id = np.array([int(i) if str(i).lstrip("-").isdigit() else k for k, i in enumerate(ids)], np.int64)
    rois = xr.Dataset({"pix_neuron": ("pixel", nz[0].astype(np.int32)), "pix_y": ("pixel", nz[1].astype(np.int32)),
                       "pix_x": ("pixel", nz[2].astype(np.int32)), "pix_weight": ("pixel", masks[nz]),
                       "roi_id": ("neuron", roi_id), "iscell_prob": ("neuron", is_cell.astype(float)),
                       "is_cell": ("neuron", is_cell), "centroid_y": ("neuron", cy), "centroid_x": ("neuron", cx),
                       "mean_image": (("y", "x"), mean)},
                      attrs={"source": f"{fmt} segmentation {path} (read with roiextractors)"})
    traces = xr.Dataset({v: (("neuron", "frame"), a) for v, a in data.items()},
                        coords={"frame_time": ("frame", ft, {"units": "s"})},
                        attrs={"source": f"{fmt} traces of {path}"})
    return rois, traces


def has_existing_rois(animal_cfg: dict) -> bool:
    """True when this animal's ROIs and traces come from an existing segmentation (the `segmentation` key or its
    NWB file's PlaneSegmentation): motion correction and extraction are skipped for it."""
    from pipeline.io.nwb import uses_nwb_segmentation
    return bool(animal_cfg.get("segmentation")) or uses_nwb_segmentation(animal_cfg)
