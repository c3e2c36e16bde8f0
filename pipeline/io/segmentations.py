"""Existing segmentations (suite2p, CaImAn, minian output) read through roiextractors.

A lab that already segmented its movies starts a pair session from those outputs with
`[animals.X] segmentation = "A/suite2p/plane0"` (a suite2p plane folder or the suite2p folder, a CaImAn
HDF5 file, a minian output folder); motion correction and extraction are then skipped for that animal.
`read_tool_segmentation` returns the same (rois, traces) layout as pipeline.io.nwb_in.read_segmentation.
"""
from __future__ import annotations

import contextlib
import tempfile
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


@contextlib.contextmanager
def _minian_group(path: Path):
    """The minian folder as roiextractors opens it: a zarr group.

    minian's `save_minian` writes one `<name>.zarr` store per variable in a plain folder (no `.zgroup`), and
    roiextractors' MinianSegmentationExtractor opens the folder itself as a zarr group, which zarr 2 refuses
    ("nothing found at path"). The raw output stays read-only: roiextractors gets a temporary folder holding a
    `.zgroup` and links to the `.zarr` stores."""
    if (path / ".zgroup").exists() or (path / "zarr.json").exists():
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="minian_group_") as tmp:
        view = Path(tmp) / path.name
        view.mkdir()
        (view / ".zgroup").write_text('{"zarr_format": 2}')
        for store in path.iterdir():
            (view / store.name).symlink_to(store.resolve(), target_is_directory=store.is_dir())
        yield view


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
    path = Path(path)
    fmt = guess_format(path) if fmt == "auto" else fmt
    if fmt == "minian" and path.is_dir():
        with _minian_group(path) as view:
            return _read(path, view, fmt, frame_rate)
    return _read(path, path, fmt, frame_rate)


def _read(path: Path, source: Path, fmt: str, frame_rate: float | None):
    """read_tool_segmentation of `source` (the output itself, or a view of it); messages name `path`."""
    import xarray as xr
    try:
        ext = _extractor(source, fmt, frame_rate)
    except SegmentationError:
        raise
    except Exception as exc:   # roiextractors raises many types for half-written or foreign folders
        raise SegmentationError(f"{path}: not a readable {fmt} output ({type(exc).__name__}: {exc})") from None
    ids = list(ext.get_roi_ids())
    n = len(ids)
    # roiextractors' minian reader names ROIs by minian's unit_id but keys their masks by position 0..n-1
    # (unit ids are not 0..n-1 once minian has merged or dropped units)
    masks = ext.get_roi_image_masks(roi_ids=list(range(n)) if fmt == "minian" else None)
    masks = np.moveaxis(np.asarray(masks, np.float32), -1, 0)       # (roi, y, x)
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
    try:
        timed = hasattr(ext, "has_time_vector") and ext.has_time_vector()
    except (OSError, ValueError):   # roiextractors' minian reader raises when there is no timeStamps.csv
        timed = False
    if timed:
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
