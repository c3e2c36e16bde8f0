"""napari readers: an interbrain result folder, and the raw movies of a pair session.

A result folder (the one holding `interbrain.json`) opens as, per animal,
side by side (A left, B right, a gap between):

    "A: mean image"          (y, x)  /A/rois/mean_image, else /A/motion/mean_image
    "A: correlation image"   (y, x)  /A/rois/correlation_image (hidden at first), when present
    "A: max projection"      (y, x)  /A/rois/max_projection, when present
    "A: ROIs"                (y, x)  Labels: value = ROI index + 1 (0 background), filled by cell type
    "A: not cell"            (y, x)  Labels: 1-px outlines of the ROIs marked "not cell" (value = label)

The labels layer's `features` table has one row per ROI (`index` = label
value, roi_id, cell_type, confidence, iscell_prob, is_cell, curated) and its
`metadata["interbrain"]` names the result folder and the animal, which is how
the dock widget finds it. Edits already in `OUT/curation.csv` are shown.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.dataset import ROOT_FILE, NotAResultError, load, read_root

from pipeline.napari_plugin import curation
from pipeline.core.animals import ANIMALS

# RGBA per cell type. ROIs marked "not cell" get no fill in the ROIs layer; they are drawn as opaque
# outlines in their own colour on a layer of their own ("A: not cell"), so the curator sees what to rescue.
TYPE_COLORS = {
    "GABAergic": (1.0, 0.25, 0.85, 1.0),
    "glutamatergic": (0.2, 0.9, 0.35, 1.0),
    "unknown": (1.0, 0.8, 0.1, 1.0),
}
NOT_CELL_COLOR = (1.0, 0.3, 0.15, 1.0)       # outline colour of "not cell" ROIs (orange-red)
NO_FILL = (0.0, 0.0, 0.0, 0.0)
TIME_LABEL = "time (s)"                      # napari's label of the movies' time axis (world units: s)
EXTRA_IMAGES = (("correlation_image", "correlation image"), ("max_projection", "max projection"))


# ----------------------------------------------------------------------------- helpers
def _one_path(path) -> str | None:
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    return os.fspath(path)


def _notify_error(msg: str) -> None:
    from napari.utils.notifications import show_error
    show_error(msg)


def _claim_with_error(msg: str):
    """A reader function that shows `msg` in the viewer and adds no layer (napari's [(None,)] sentinel)."""
    def reader(path):
        _notify_error(msg)
        return [(None,)]
    return reader


def _looks_like_interbrain(folder: Path) -> str | None:
    """A hint when `folder` is an interbrain session or an unfinished result, else None."""
    if (folder / "stages").is_dir():
        return (f"{folder}: no {ROOT_FILE} yet: this result was not finished; "
                "run `interbrain run SESSION.toml` to completion, then open the folder again")
    tomls = [p for p in folder.glob("*.toml") if _is_session_toml(p)]
    if tomls:
        return (f"{folder}: this is an interbrain session folder, not a result; run "
                f"`interbrain run {tomls[0].name}` and open its output folder (session.output_dir)")
    return None


def _is_session_toml(path: Path) -> bool:
    import tomllib
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return False
    animals = doc.get("animals")
    return isinstance(animals, dict) and {"A", "B"} <= set(animals)


def animal_offsets(widths: dict[str, int], gap: int | None = None) -> dict[str, int]:
    """x offset (px) of each animal's images, A first, with a gap of ~8% of A's width (>= 8 px)."""
    out, x0 = {}, 0
    for a in ANIMALS:
        if a not in widths:
            continue
        out[a] = x0
        g = gap if gap is not None else max(8, int(round(0.08 * widths[a])))
        x0 += widths[a] + g
    return out


def roi_label_image(shape: tuple[int, int], pix_neuron, pix_y, pix_x, pix_weight) -> np.ndarray:
    """(y, x) int32 label image from COO footprints: ROI index + 1; on overlap the highest weight wins."""
    Y, X = shape
    n = np.asarray(pix_neuron, np.int64)
    y = np.asarray(pix_y, np.int64)
    x = np.asarray(pix_x, np.int64)
    w = np.asarray(pix_weight, np.float64)
    ok = (y >= 0) & (y < Y) & (x >= 0) & (x < X)
    n, y, x, w = n[ok], y[ok], x[ok], w[ok]
    flat = y * X + x
    order = np.lexsort((w, flat))          # by pixel, then weight ascending
    flat, n = flat[order], n[order]
    last = np.r_[flat[1:] != flat[:-1], True] if len(flat) else np.zeros(0, bool)
    out = np.zeros(Y * X, np.int32)
    out[flat[last]] = n[last] + 1
    return out.reshape(Y, X)


def roi_colors(cell_type, is_cell) -> dict:
    """{label: RGBA} for labels 1..N (cells by type, "not cell" unfilled), plus transparent background."""
    colors = {None: NO_FILL, 0: NO_FILL}
    for i, (t, c) in enumerate(zip(cell_type, is_cell)):
        colors[i + 1] = TYPE_COLORS.get(str(t), TYPE_COLORS["unknown"]) if c else NO_FILL
    return colors


def roi_colormap(cell_type, is_cell):
    from napari.utils.colormaps import DirectLabelColormap
    return DirectLabelColormap(color_dict=roi_colors(cell_type, is_cell))


def outline_colormap():
    from napari.utils.colormaps import DirectLabelColormap
    return DirectLabelColormap(color_dict={None: NOT_CELL_COLOR, 0: NO_FILL})


def not_cell_outlines(labels: np.ndarray, is_cell) -> np.ndarray:
    """(y, x) int32: the 1-px inner boundary of every "not cell" ROI (value = its label), 0 elsewhere.

    A pixel is on the boundary when one of its 4 neighbours (or the image edge) has another label.
    """
    lab = np.asarray(labels)
    bad = np.flatnonzero(~np.asarray(is_cell, bool)) + 1
    keep = np.isin(lab, bad)
    p = np.pad(lab, 1, mode="constant", constant_values=-1)
    edge = ((p[1:-1, 1:-1] != p[:-2, 1:-1]) | (p[1:-1, 1:-1] != p[2:, 1:-1]) |
            (p[1:-1, 1:-1] != p[1:-1, :-2]) | (p[1:-1, 1:-1] != p[1:-1, 2:]))
    return np.where(keep & edge, lab, 0).astype(np.int32)


def group(tree, path: str):
    """The Dataset at `path` ("/A/rois") of a DataTree, or None when the group is absent."""
    try:
        return tree[path].to_dataset()
    except KeyError:
        return None


def _contrast(img: np.ndarray) -> tuple[float, float]:
    lo, hi = np.nanpercentile(img, [1, 99.5]) if img.size else (0.0, 1.0)
    return (float(lo), float(hi) if hi > lo else float(lo) + 1.0)


# ----------------------------------------------------------------------------- ROI table
def roi_table(tree, animal: str, edits: list | None = None) -> pd.DataFrame:
    """One row per ROI of `animal`: index (label value), roi_id, cell_type, confidence, iscell_prob,
    is_cell, curated; cell types from /A/celltypes when present, curation.csv edits applied."""
    rois = group(tree, f"/{animal}/rois")
    n = rois.sizes.get("neuron", 0)
    roi_id = rois["roi_id"].values.astype(np.int64) if "roi_id" in rois else np.arange(n)
    iscell_prob = rois["iscell_prob"].values.astype(float) if "iscell_prob" in rois else np.full(n, np.nan)
    is_cell = rois["is_cell"].values.astype(bool) if "is_cell" in rois else np.ones(n, bool)
    cell_type = np.array(["unknown"] * n, dtype=object)
    conf = np.full(n, np.nan)
    ct = group(tree, f"/{animal}/celltypes")
    if ct is not None:
        if "cell_type" in ct and ct.sizes.get("neuron") == n:
            cell_type = ct["cell_type"].values.astype(str).astype(object)
            if "cell_type_confidence" in ct:
                conf = ct["cell_type_confidence"].values.astype(float)
            if "is_cell" in ct:
                is_cell = ct["is_cell"].values.astype(bool)
    edits = [e for e in (edits or []) if e.animal == animal]
    new_type, new_cell = curation.apply(edits, animal, roi_id, cell_type, is_cell)
    # curated = named in curation.csv: after a rerun the pipeline's labels already carry the edits,
    # so comparing with them would lose the mark
    curated = np.isin(roi_id, [e.roi_id for e in edits])
    manual = np.isin(roi_id, [e.roi_id for e in edits if e.label is not None])
    return pd.DataFrame({"index": np.arange(1, n + 1), "roi_id": roi_id, "cell_type": new_type.astype(str),
                         "confidence": np.where(manual, np.nan, conf), "iscell_prob": iscell_prob,
                         "is_cell": new_cell, "curated": curated,
                         "label_source": np.where(manual, "curation", "pipeline")})


# ----------------------------------------------------------------------------- result reader
def result_layers(out: str | Path) -> list[tuple]:
    """LayerData tuples for a result folder (see module docstring). Raises NotAResultError."""
    out = Path(out)
    meta = read_root(out)
    tree = load(out, lazy=True)
    try:
        edits = curation.read_curation(out / curation.CURATION_FILE)
    except curation.CurationFileError as exc:
        _notify_error(f"{exc}; curation edits are not shown")
        edits = []
    images, widths = {}, {}
    for a in ANIMALS:
        for path in (f"/{a}/rois", f"/{a}/motion"):
            ds = group(tree, path)
            if ds is not None and "mean_image" in ds.data_vars:
                images[a] = np.asarray(ds["mean_image"].values, np.float32)
                widths[a] = images[a].shape[1]
                break
    if not images:
        raise NotAResultError(f"{out}: the result has no mean image of either animal yet (no motion or "
                              "extraction stage finished); run `interbrain run` further")
    offsets = animal_offsets(widths)
    animals_meta = meta.get("animals", {})
    layers = []
    for a in ANIMALS:
        if a not in images:
            continue
        tr = (0.0, float(offsets[a]))
        base = {"result": str(out), "animal": a, "pair": meta.get("pair", ""),
                "animal_info": animals_meta.get(a, {})}
        layers.append((images[a], {"name": f"{a}: mean image", "translate": tr, "colormap": "gray",
                                   "contrast_limits": _contrast(images[a]),
                                   "metadata": {"interbrain": dict(base, kind="mean_image")}}, "image"))
        rois = group(tree, f"/{a}/rois")
        if rois is None:
            continue
        for var, label in EXTRA_IMAGES:
            if var in rois.data_vars:
                img = np.asarray(rois[var].values, np.float32)
                layers.append((img, {"name": f"{a}: {label}", "translate": tr, "colormap": "magma",
                                     "visible": False, "contrast_limits": _contrast(img),
                                     "metadata": {"interbrain": dict(base, kind=var)}}, "image"))
        table = roi_table(tree, a, edits)
        lab = roi_label_image(images[a].shape, rois["pix_neuron"].values, rois["pix_y"].values,
                              rois["pix_x"].values, rois["pix_weight"].values)
        layers.append((lab, {"name": f"{a}: ROIs", "translate": tr, "opacity": 0.6, "features": table,
                             "colormap": roi_colormap(table["cell_type"], table["is_cell"]),
                             "metadata": {"interbrain": dict(base, kind="rois", x_offset=offsets[a])}},
                       "labels"))
        layers.append((not_cell_outlines(lab, table["is_cell"]),
                       {"name": f"{a}: not cell", "translate": tr, "opacity": 1.0, "colormap": outline_colormap(),
                        "metadata": {"interbrain": dict(base, kind="not_cell")}}, "labels"))
    # which animal is which: a text label above each field of view
    pos = np.array([[-0.06 * images[a].shape[0] - 2, offsets[a] + images[a].shape[1] / 2] for a in offsets])
    text = [f"{a}: {animals_meta.get(a, {}).get('id', '')} {animals_meta.get(a, {}).get('genotype', '')}".strip()
            for a in offsets]
    layers.append((pos, {"name": "animal names", "features": {"label": text}, "size": 0.5,
                         "face_color": "transparent", "border_width": 0,
                         "text": {"string": "{label}", "color": "white", "size": 11, "anchor": "center"},
                         "metadata": {"interbrain": {"result": str(out), "kind": "names"}}}, "points"))
    return layers


def get_reader(path):
    """npe2 reader command: a function for an interbrain result folder (or its interbrain.json),
    None for anything else.

    A folder with interbrain.json of an unsupported format version, or an
    interbrain session / unfinished result folder, is claimed with a clear
    message in the viewer (and no layers) instead of a traceback.
    """
    path = _one_path(path)
    if path is not None and Path(path).name == ROOT_FILE and os.path.isfile(path):
        path = str(Path(path).parent)         # `napari RESULT/interbrain.json` opens the folder
    if path is None or not os.path.isdir(path):
        return None
    folder = Path(path)
    if (folder / ROOT_FILE).is_file():
        try:
            read_root(folder)
        except NotAResultError as exc:
            return _claim_with_error(str(exc))
        return lambda _p: read_result(str(folder))
    hint = _looks_like_interbrain(folder)
    return _claim_with_error(hint) if hint else None


def read_result(path):
    try:
        return result_layers(_one_path(path))
    except (NotAResultError, OSError, KeyError) as exc:
        _notify_error(f"{_one_path(path)}: cannot open this interbrain result: {exc}")
        return [(None,)]


# ----------------------------------------------------------------------------- raw movies
class _MovieArray:
    """Array-like view of a pipeline.io.readers Movie for dask (shape, dtype, ndim, tuple indexing)."""

    def __init__(self, movie):
        self.movie = movie
        self.shape = tuple(movie.shape)
        self.dtype = np.dtype(movie.dtype)
        self.ndim = 3

    def __getitem__(self, key):
        return np.asarray(self.movie[key])


def lazy_movie(paths, format: str = "auto", hdf5_dataset: str = ""):
    """The raw movie as a (T, Y, X) dask array, one frame per chunk, read on demand (read-only).

    Uses pipeline.io.readers.open_movie; TIFFs fall back to tifffile's zarr store if that is unavailable.
    """
    import dask.array as da
    try:
        from pipeline.io.readers import open_movie
    except ImportError:  # readers module not installed: TIFF only
        import tifffile
        import zarr
        files = [paths] if isinstance(paths, (str, Path)) else list(paths)
        arrs = [da.from_zarr(zarr.open(tifffile.imread(f, aszarr=True), mode="r")) for f in files]
        return da.concatenate(arrs) if len(arrs) > 1 else arrs[0]
    movie = open_movie(paths, format=format, hdf5_dataset=hdf5_dataset)
    T, Y, X = movie.shape
    # lock: Movie readers hold one file handle; napari may slice from a worker thread
    return da.from_array(_MovieArray(movie), chunks=(1, Y, X), lock=True, asarray=True, fancy=False)


def movie_layer(paths, animal: str, frame_time=None, x_offset: float = 0.0, format: str = "auto",
                hdf5_dataset: str = "") -> tuple:
    """LayerData for one animal's raw movie, lazily.

    frame_time: (frame,) s on the master clock; when given the time axis is scaled to seconds
    (median frame period) so both animals' movies and the trace cursor share one time slider.
    """
    data = lazy_movie(paths, format, hdf5_dataset)
    dt, t0 = 1.0, 0.0
    if frame_time is not None and len(frame_time) > 1:
        ft = np.asarray(frame_time, float)
        dt, t0 = float(np.median(np.diff(ft))), float(ft[0])
    sample = np.asarray(data[0])
    # world coordinates of the time axis are seconds: napari's dims point, range and label read in s
    return (data, {"name": f"{animal}: movie", "scale": (dt, 1.0, 1.0), "translate": (t0, 0.0, float(x_offset)),
                   "axis_labels": (TIME_LABEL, "y", "x"), "units": ("s", "pixel", "pixel"),
                   "colormap": "gray", "contrast_limits": _contrast(sample),
                   "metadata": {"interbrain": {"animal": animal, "kind": "movie", "frame_period": dt,
                                               "t0": t0, "sources": [str(p) for p in np.atleast_1d(paths)]}}},
            "image")


def session_movie_layers(session_file: str | Path, animals=ANIMALS) -> list[tuple]:
    """Lazy raw-movie layers of a pair session (side by side, time axis in master-clock seconds)."""
    from pipeline.core.session import Session
    s = Session.load(session_file, check_files=False)
    shapes, specs = {}, {}
    for a in animals:
        d = s.animals[a]
        specs[a] = d
        shapes[a] = lazy_movie(d["raw"], d["raw_format"], d.get("hdf5_dataset", "")).shape
    offsets = animal_offsets({a: sh[2] for a, sh in shapes.items()})
    layers = []
    for a in animals:
        d = specs[a]
        ft = _frame_times(d, shapes[a][0])
        layers.append(movie_layer(d["raw"], a, ft, offsets[a], d["raw_format"], d.get("hdf5_dataset", "")))
    return layers


def _frame_times(animal: dict, n: int) -> np.ndarray | None:
    if animal.get("timestamps") and Path(animal["timestamps"]).is_file():
        t = pd.read_csv(animal["timestamps"])
        if "time_s" in t:
            return t["time_s"].to_numpy(float)[:n]
    if animal.get("frame_rate"):
        return animal.get("start_offset_s", 0.0) + np.arange(n) / float(animal["frame_rate"])
    return None


def get_session_reader(path):
    """npe2 reader command for a pair session TOML: both animals' raw movies, lazily."""
    path = _one_path(path)
    if path is None or not path.endswith(".toml") or not os.path.isfile(path) or not _is_session_toml(Path(path)):
        return None

    def reader(p):
        try:
            return session_movie_layers(_one_path(p))
        except Exception as exc:  # a config or movie error is shown, not raised into the GUI
            _notify_error(f"{path}: cannot open the raw movies: {exc}")
            return [(None,)]
    return reader


__all__ = ["get_reader", "read_result", "result_layers", "roi_label_image", "roi_colormap", "roi_table",
           "movie_layer", "lazy_movie", "session_movie_layers", "get_session_reader", "animal_offsets",
           "not_cell_outlines", "TYPE_COLORS", "NOT_CELL_COLOR", "TIME_LABEL"]
