"""NWB in: ROIs, traces and raw-series facts of NWB files written by any tool (pynwb, neuroconv, suite2p).

Read with pynwb only (the format's own reader); nothing here depends on this project's exporter.
What the NWB ecosystem writes and this module accepts:

* ROIs: a PlaneSegmentation (image_mask (roi, y, x) or pixel_mask rows of (x, y, weight)) in any
  processing module (in an ImageSegmentation or directly). Several PlaneSegmentations: `[animals.X] nwb_plane` names one
  (its name or object path); a PlaneSegmentation whose name says "background" (neuroconv's
  BackgroundPlaneSegmentation) holds background components, never cells.
* Traces: every RoiResponseSeries (in Fluorescence or DfOverF) whose `rois` region points into the chosen
  PlaneSegmentation; each series covers only the rows of its own region. Data may be (time, rois), as the
  schema says, or (rois, time), as some writers store it. Series named "...background..." are background.
* Cell flags: `is_cell`, suite2p's `iscell` (1 or 2 columns: flag, probability), `Accepted` or neuroconv's
  `is_accepted` / `is_rejected`.
* Frame times: `timestamps`, or `starting_time + k / rate`; rate 0 with no timestamps is an error that
  names the series (set `frame_rate` in the session instead).

Errors are `NWBInputError` (a ValueError, so the CLI exits 2): "FILE: /object/path: what is wrong; what to do".
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np

#: RoiResponseSeries names written by suite2p/neuroconv/CaImAn/this project -> /A/traces variables
TRACE_NAMES = {"roiresponseseries": "F", "raw": "F", "f": "F", "fluorescence": "F",
               "neuropil": "Fneu", "fneu": "Fneu",
               "deconvolved": "spikes", "spikes": "spikes", "spks": "spikes",
               "denoised": "C", "c": "C", "dff": "dff", "dfoverf": "dff"}


class NWBInputError(ValueError):
    """An NWB file lacks something the pipeline needs, or holds it in an unusable form. Names file and object."""


@contextmanager
def open_nwb(path: str | Path):
    """pynwb NWBFile of `path`, read-only (extension namespaces cached in the file are loaded)."""
    from pynwb import NWBHDF5IO
    try:
        io = NWBHDF5IO(str(path), "r", load_namespaces=True)
        nwb = io.read()
    except Exception as exc:
        raise NWBInputError(f"{path}: not a readable NWB file ({type(exc).__name__}: {exc})") from None
    try:
        yield nwb
    finally:
        io.close()


def object_path(obj) -> str:
    """HDF5 path of an NWB object ('/processing/ophys/ImageSegmentation/PlaneSegmentation')."""
    names = []
    while obj is not None and type(obj).__name__ != "NWBFile":
        names.append(obj.name)
        parent = obj.parent
        if parent is not None and type(parent).__name__ == "NWBFile":
            kind = type(obj).__name__
            names.append("processing" if kind == "ProcessingModule" else
                         "intervals" if kind == "TimeIntervals" else "acquisition")
        obj = parent
    return "/" + "/".join(reversed(names))


def _is_background(name: str) -> bool:
    return "background" in name.lower()


def plane_segmentations(nwb) -> list:
    """Every PlaneSegmentation in the file's processing modules (cells and background ones), inside an
    ImageSegmentation or, as pynwb's mock helpers put it, directly in the module."""
    out = []
    for mod in nwb.processing.values():
        for iface in mod.data_interfaces.values():
            if type(iface).__name__ == "ImageSegmentation":
                out += list(iface.plane_segmentations.values())
            elif type(iface).__name__ == "PlaneSegmentation":
                out.append(iface)
    return out


def choose_plane(path, nwb, plane: str = ""):
    """The PlaneSegmentation of cells to use, or None when the file has none.

    plane: its name or object path (`[animals.X] nwb_plane`); '' takes the only non-background one and
    explains the choice when there are several.
    """
    cells = [ps for ps in plane_segmentations(nwb) if not _is_background(ps.name)]
    if plane:
        hit = [ps for ps in plane_segmentations(nwb) if plane in (ps.name, object_path(ps))]
        if len(hit) != 1:
            listing = ", ".join(object_path(ps) for ps in cells) or "none"
            raise NWBInputError(f"{path}: nwb_plane = {plane!r} matches {len(hit)} PlaneSegmentations; "
                                f"the file has {listing}")
        return hit[0]
    if len(cells) > 1:
        listing = "; ".join(f"{object_path(ps)} ({len(ps)} ROIs, imaging plane {ps.imaging_plane.name!r})"
                            for ps in cells)
        raise NWBInputError(f"{path}: {len(cells)} PlaneSegmentations of cells ({listing}); the pipeline analyses "
                            f"one plane per animal: set [animals.X] nwb_plane = '{cells[0].name}' (or another name)")
    return cells[0] if cells else None


def series_of(nwb, ps) -> list[tuple[str, object]]:
    """(container type, RoiResponseSeries) whose `rois` region points into `ps` (or its background twin)."""
    out = []
    for mod in nwb.processing.values():
        for iface in mod.data_interfaces.values():
            kind = type(iface).__name__
            if kind in ("Fluorescence", "DfOverF"):
                out += [(kind, s) for s in iface.roi_response_series.values() if s.rois.table is ps]
    return out


def frame_times(path, s, n_frames: int, frame_rate: float | None = None) -> np.ndarray:
    """(n_frames,) s of a TimeSeries: its timestamps, else starting_time + k / rate, else `frame_rate`."""
    where = f"{path}: {object_path(s)}"
    if s.timestamps is not None:
        ts = np.asarray(s.timestamps[:], float)
        if len(ts) != n_frames:
            raise NWBInputError(f"{where}: {len(ts)} timestamps for {n_frames} frames; expected one per frame")
        return ts
    rate = s.rate
    if not rate or not np.isfinite(rate) or rate <= 0:
        if frame_rate:
            rate = float(frame_rate)
        else:
            raise NWBInputError(f"{where}: rate is {rate} and there are no timestamps, so frame times are unknown; "
                                "set [animals.X] frame_rate (Hz) or a timestamps CSV")
    return float(s.starting_time or 0.0) + np.arange(n_frames) / float(rate)


def _orient(path, s, n_roi: int) -> np.ndarray:
    """(time, roi) float32 data of a RoiResponseSeries stored as (time, rois) or (rois, time)."""
    arr = np.asarray(s.data[:], np.float32)
    if arr.ndim == 1 and n_roi == 1:
        arr = arr[:, None]
    n_ts = len(s.timestamps) if s.timestamps is not None else None
    if arr.ndim == 2:
        if arr.shape[1] == n_roi and (arr.shape[0] != n_roi or n_ts in (None, arr.shape[0])):
            return arr
        if arr.shape[0] == n_roi and (n_ts is None or n_ts == arr.shape[1]):
            return arr.T          # (rois, time), as pynwb warns about: accept it
    raise NWBInputError(f"{path}: {object_path(s)}: data shape {arr.shape} does not match its rois region of "
                        f"{n_roi} ROIs; expected (time, {n_roi}) or ({n_roi}, time)")


def _masks(path, ps, shape_hint: tuple | None) -> np.ndarray:
    """(roi, y, x) float32 masks from image_mask or pixel_mask (x, y, weight)."""
    cols = set(ps.colnames)
    if "image_mask" in cols:
        masks = np.stack([np.asarray(m) for m in ps["image_mask"][:]]).astype(np.float32)
        if masks.ndim != 3:
            raise NWBInputError(f"{path}: {object_path(ps)}: image_mask has shape {masks.shape}; expected (roi, y, x)")
        return masks
    if "pixel_mask" in cols:
        pix = [np.asarray([tuple(p) for p in m], float).reshape(-1, 3) for m in ps["pixel_mask"][:]]
        allp = np.concatenate(pix) if pix else np.zeros((0, 3))
        need = (int(allp[:, 1].max()) + 1, int(allp[:, 0].max()) + 1) if len(allp) else (1, 1)
        # Masks are built in the frame the file stores its images in (pynwb/suite2p: (y, x); neuroconv: images
        # transposed to (x, y) with pixel masks written (row, column)): masks and summary images stay aligned.
        cands = [shape_hint, shape_hint[::-1]] if shape_hint else []
        Y, X = next((c for c in cands if c[0] >= need[0] and c[1] >= need[1]), need)
        masks = np.zeros((len(pix), Y, X), np.float32)
        for i, p in enumerate(pix):
            masks[i, p[:, 1].astype(int), p[:, 0].astype(int)] = p[:, 2]
        return masks
    if "voxel_mask" in cols:
        raise NWBInputError(f"{path}: {object_path(ps)}: 3-D ROIs (voxel_mask) are not supported; the pipeline "
                            "analyses one plane per animal")
    raise NWBInputError(f"{path}: {object_path(ps)}: neither image_mask nor pixel_mask; no ROI footprints")


def _cell_flags(ps, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(is_cell (n,) bool, probability (n,), column used) from is_cell / iscell / accepted / is_rejected."""
    cols = {c.lower(): c for c in ps.colnames}
    prob = np.full(n, np.nan)
    for c in ("iscell_prob", "probability", "cell_probability"):
        if c in cols:
            prob = np.asarray(ps[cols[c]][:], float).reshape(n)
    for c in ("is_cell", "iscell", "accepted", "is_accepted", "is_rejected"):
        if c in cols:
            v = np.asarray(ps[cols[c]][:], float).reshape(n, -1)
            if v.shape[1] == 2:             # suite2p iscell.npy layout: (flag, probability)
                prob = v[:, 1]
            flag = (v[:, 0] > 0.5) != (c == "is_rejected")
            return flag, np.where(np.isnan(prob), flag.astype(float), prob), cols[c]
    return np.ones(n, bool), np.where(np.isnan(prob), 1.0, prob), ""


def _summary_image(nwb, shape: tuple) -> np.ndarray | None:
    """A mean (or, failing that, any) summary image of the FOV's shape from the file's Images containers."""
    found = []
    for mod in nwb.processing.values():
        for iface in mod.data_interfaces.values():
            if type(iface).__name__ == "Images":
                for name, img in iface.images.items():
                    arr = np.asarray(img.data[:])
                    if arr.shape == tuple(shape) and "structural" not in name.lower():
                        found.append((0 if "mean" in name.lower() else 1, name, arr))
    return np.asarray(sorted(found, key=lambda t: t[:2])[0][2], np.float32) if found else None


def _fov_shape(nwb) -> tuple | None:
    """(y, x) of the field of view from a summary image or a raw series, for pixel masks; None if unknown."""
    for mod in nwb.processing.values():
        for iface in mod.data_interfaces.values():
            if type(iface).__name__ == "Images":
                for img in iface.images.values():
                    if len(img.data.shape) == 2:
                        return tuple(int(v) for v in img.data.shape)
    for s in imaging_series(nwb):
        if s.data is not None and len(s.data.shape) == 3 and 0 not in s.data.shape:
            return tuple(int(v) for v in s.data.shape[1:])
    return None


def read_segmentation(path: str | Path, plane: str = "", frame_rate: float | None = None):
    """Existing ROIs and traces of an NWB file in the dataset's layout, or None when it has no ROIs.

    Returns (rois, traces): rois as `/A/rois` (COO footprint pixels, roi_id, iscell_prob, is_cell, centroids,
    mean_image (y, x)); traces as `/A/traces`: F, Fneu, dff, spikes, C (neuron, frame) where present, and
    `background` (background, frame) for background components kept apart from the cells; frame_time in s.
    """
    import xarray as xr
    with open_nwb(path) as nwb:
        ps = choose_plane(path, nwb, plane)
        if ps is None:
            return None
        where = f"{path}: {object_path(ps)}"
        bg_ps = [p for p in plane_segmentations(nwb) if _is_background(p.name) and p.imaging_plane is ps.imaging_plane]
        series = series_of(nwb, ps) + [s for b in bg_ps for s in series_of(nwb, b)]
        if not series:
            raise NWBInputError(f"{where}: {len(ps)} ROIs but no RoiResponseSeries (Fluorescence/DfOverF) points "
                                "to them; the pipeline needs traces or the raw movie (set rois_from = 'extract')")
        n = len(ps)
        masks = _masks(path, ps, _fov_shape(nwb))
        mean = _summary_image(nwb, masks.shape[1:])
        if mean is None and masks.shape[1] != masks.shape[2]:   # stored (x, y), as neuroconv writes images
            mean = _summary_image(nwb, masks.shape[:0:-1])
            mean = None if mean is None else mean.T
        is_cell, prob, flag_col = _cell_flags(ps, n)
        roi_id = np.asarray(ps.id[:], np.int64)
        data, bg, T, first = {}, {}, None, None
        bg_rows: set[int] = set()
        fg_rows: set[int] = set()
        for kind, s in series:
            region = np.asarray(s.rois.data[:], int)
            arr = _orient(path, s, len(region))
            if T is None:
                T, first = arr.shape[0], s
            elif arr.shape[0] != T:
                raise NWBInputError(f"{path}: {object_path(s)}: {arr.shape[0]} frames, but {object_path(first)} has "
                                    f"{T}; the series of one plane must share their frames")
            is_bg = s.rois.table is not ps or _is_background(s.name)
            if is_bg:
                bg[s.name] = (s.rois.table.name, region, arr)
                if s.rois.table is ps:
                    bg_rows |= set(region.tolist())
                continue
            fg_rows |= set(region.tolist())
            var = "dff" if kind == "DfOverF" else TRACE_NAMES.get(s.name.lower(), re.sub(r"\W", "_", s.name))
            full = data.setdefault(var, np.full((n, T), np.nan, np.float32))
            full[region] = arr.T
        cells = np.array(sorted(set(range(n)) - (bg_rows - fg_rows)), int)
        ft = frame_times(path, first, T, frame_rate)
        masks, is_cell, prob, roi_id = masks[cells], is_cell[cells], prob[cells], roi_id[cells]
        nz = np.nonzero(masks)
        w = [m[m > 0] for m in masks]
        cy = np.array([np.average(np.nonzero(m > 0)[0], weights=ww) if ww.size else np.nan for m, ww in zip(masks, w)])
        cx = np.array([np.average(np.nonzero(m > 0)[1], weights=ww) if ww.size else np.nan for m, ww in zip(masks, w)])
        name = Path(path).name
        rois = xr.Dataset({"pix_neuron": ("pixel", nz[0].astype(np.int32)), "pix_y": ("pixel", nz[1].astype(np.int32)),
                           "pix_x": ("pixel", nz[2].astype(np.int32)), "pix_weight": ("pixel", masks[nz]),
                           "roi_id": ("neuron", roi_id), "iscell_prob": ("neuron", prob),
                           "is_cell": ("neuron", is_cell), "centroid_y": ("neuron", cy), "centroid_x": ("neuron", cx),
                           "mean_image": (("y", "x"), mean if mean is not None else masks.max(0))},
                          attrs={"source": f"NWB segmentation {object_path(ps)} of {name}",
                                 "is_cell_column": flag_col or "none (every ROI kept as a cell)",
                                 "mean_image_source": "NWB summary image" if mean is not None else
                                 "maximum of the ROI masks (the file has no mean image)"})
        traces = xr.Dataset({v: (("neuron", "frame"), a[cells]) for v, a in data.items()},
                            coords={"frame_time": ("frame", ft, {"units": "s"})},
                            attrs={"source": f"NWB traces of {name}: " + ", ".join(object_path(s) for _, s in series)})
        if bg:
            rows = [a.T for _, (_, _, a) in bg.items()]
            traces["background"] = (("background", "frame"), np.concatenate(rows).astype(np.float32))
            traces["background"].attrs["description"] = ("background components kept apart from the cells: "
                                                         + ", ".join(f"{k} ({v[0]}, {len(v[1])})" for k, v in bg.items()))
        return rois, traces


# ---------------------------------------------------------------------------------------------- raw series

def imaging_series(nwb) -> list:
    """TwoPhotonSeries / OnePhotonSeries in acquisition."""
    return [s for s in nwb.acquisition.values() if type(s).__name__ in ("TwoPhotonSeries", "OnePhotonSeries")]


def external_files(path, s) -> list[Path]:
    """The raw files an ImageSeries links to (`external_file`), resolved relative to the NWB file."""
    ext = getattr(s, "external_file", None)
    if ext is None:
        return []
    names = [e.decode() if isinstance(e, bytes) else str(e) for e in ext[:]]
    return [(Path(path).parent / n).resolve() for n in names]


def raw_status(path, s) -> tuple[str, str]:
    """('data' | 'external' | 'none', detail): where the frames of a raw imaging series are."""
    where = f"{path}: {object_path(s)}"
    ext = external_files(path, s)
    if ext:
        gone = [str(p) for p in ext if not p.exists()]
        if gone:
            return "none", f"{where}: external_file {', '.join(gone)} not found (paths are relative to the NWB file)"
        return "external", f"{where}: frames in {len(ext)} external file(s): {', '.join(p.name for p in ext)}"
    shape = tuple(s.data.shape) if s.data is not None else ()
    if len(shape) < 3 or 0 in shape:
        return "none", f"{where}: no frames stored (data shape {shape}, no external_file)"
    return "data", f"{where}: {shape[0]} frames of {shape[1]} x {shape[2]}"


def check_nwb(path: str | Path, plane: str = "", frame_rate: float | None = None) -> tuple[list[str], list[str]]:
    """What keeps an NWB file from being analysed (problems) and what it lacks but can do without (notes).

    Each line names the file and the object path. Used by `interbrain validate` and session_from_nwb.
    """
    problems, notes = [], []
    try:
        with open_nwb(path) as nwb:
            raws = imaging_series(nwb)
            usable = []
            for s in raws:
                kind, detail = raw_status(path, s)
                (usable.append(s) if kind != "none" else notes.append(detail))
                if kind != "none":
                    try:
                        frame_times(path, s, 1, frame_rate)
                    except NWBInputError as exc:
                        problems.append(str(exc))
            try:
                ps = choose_plane(path, nwb, plane)
            except NWBInputError as exc:
                problems.append(str(exc))
                ps = None
            if not usable:
                notes.append(f"{path}: /acquisition: no raw TwoPhotonSeries/OnePhotonSeries frames"
                             + ("; ROIs and traces only (motion correction and extraction are skipped)"
                                if ps is not None else ""))
                if ps is None and not problems:
                    problems.append(f"{path}: neither raw imaging frames in /acquisition nor a PlaneSegmentation "
                                    "in /processing: nothing to analyse")
            if len(usable) > 1:
                notes.append(f"{path}: /acquisition: {len(usable)} raw imaging series "
                             f"({', '.join(s.name for s in usable)}); raw frames are read only when exactly one")
    except NWBInputError as exc:
        return [str(exc)], []
    if ps is not None:
        try:
            read_segmentation(path, plane, frame_rate)
        except NWBInputError as exc:
            problems.append(str(exc))
    return problems, notes
