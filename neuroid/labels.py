"""Combine the sources into one label per ROI, with its confidence and provenance.

Precedence (later wins for the ROIs it names): genotype or structural channel
(chosen by `source`) < label table < napari curation.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from pipeline.core.parameters import SPEC, ConfigError

from .footprints import Footprints
from .genotypes import GABA, GLU, UNKNOWN, animal_label
from .structural import ReporterClassifier, load_structural, register_structural, reporter_score
from .table import LabelTable, read_curation, read_label_table

SOURCES = ("genotype", "structural", "table", "curation", "none")
DEFAULTS = SPEC["celltypes"].defaults()   # the one source of defaults (pipeline/parameters/stages.py)


def _other(label: str) -> str:
    return GLU if label == GABA else GABA


def label_animal(footprints, mean_image: np.ndarray, *, roi_id=None, is_cell=None,
                 genotype: str = "", indicator: str = "", structural=None,
                 structural_marks: str = GABA, source: str = "auto",
                 table=None, curation=None, animal: str = "A", animal_id: str = "",
                 params: dict | None = None, random_state: int = 0, warn=None) -> xr.Dataset:
    """Cell-type label of every ROI of one animal.

    footprints: (neuron, Y, X) weights, a `neuroid.footprints.Footprints`, or an
        `/A/rois` Dataset (COO pixels).
    mean_image: functional mean image (Y, X), the frame of the footprints.
    roi_id: (neuron,) ids (default 0..n-1); is_cell: (neuron,) bool (default all True).
    genotype, indicator: the animal's metadata (neuroid.genotypes).
    structural: path to a structural image/movie, or a (Y, X) / (T, Y, X) array.
    structural_marks: population the structural reporter marks.
    source: 'auto' (genotype if it gives a label, else structural, else none),
        'genotype', 'structural' or 'none'.
    table, curation: path or LabelTable; override the ROIs they name.
    params: the [celltypes] section (method, threshold, threshold_width,
        surround_px, dark_level, min_confidence); missing keys take their defaults.
    warn: callable(str) for problems a person should see (default warnings.warn).

    Returns a Dataset on dim `neuron` (coord roi_id): cell_type (str),
    cell_type_confidence [0, 1], cell_type_source, cell_type_score (reporter
    contrast, NaN without a structural channel), is_cell; with a structural
    channel also structural_image (y, x) registered to the mean image.
    """
    p = {**DEFAULTS, **(params or {})}
    warn = warn or (lambda msg: warnings.warn(msg, UserWarning, stacklevel=3))
    mean_image = np.asarray(mean_image, np.float64)
    fp = Footprints.coerce(footprints, mean_image.shape)
    if fp.shape != mean_image.shape:
        raise ValueError(f"footprints are on a {fp.shape} image but the mean image is {mean_image.shape}")
    n = fp.n_neurons
    roi_id = np.arange(n) if roi_id is None else np.asarray(roi_id, np.int64)
    is_cell = np.ones(n, bool) if is_cell is None else np.asarray(is_cell, bool).copy()
    if roi_id.shape != (n,) or is_cell.shape != (n,):
        raise ValueError(f"roi_id and is_cell must have one entry per ROI ({n})")
    if source not in ("auto", "genotype", "structural", "none"):
        raise ConfigError(f"[animals.{animal}] celltype_source = {source!r}; expected auto, genotype, structural or none")
    if structural_marks not in (GABA, GLU):
        raise ConfigError(f"[animals.{animal}] structural_marks = {structural_marks!r}; expected {GABA!r} or {GLU!r}")

    label = np.full(n, UNKNOWN, dtype=object)
    conf = np.zeros(n)
    src = np.full(n, "none", dtype=object)
    score = np.full(n, np.nan)
    attrs: dict = {"animal": animal, "genotype": genotype, "indicator": indicator,
                   "min_confidence": p["min_confidence"]}
    data_vars: dict = {}

    g_label, g_conf, g_basis = animal_label(genotype, indicator, f"[animals.{animal}]")
    attrs["genotype_basis"] = g_basis
    if source == "genotype" and g_label is None:
        raise ConfigError(f"[animals.{animal}] celltype_source = 'genotype' but genotype {genotype!r} / indicator "
                          f"{indicator!r} name no population-specific line ({g_basis})")
    has_structural = structural is not None and not (isinstance(structural, (str, Path)) and str(structural) == "")
    if source == "structural" and not has_structural:
        raise ConfigError(f"[animals.{animal}] celltype_source = 'structural' but no 'structural' image is given")
    use_genotype = source in ("auto", "genotype") and g_label is not None
    use_structural = has_structural and (source == "structural" or (source == "auto" and not use_genotype))

    if use_genotype:
        label[:] = g_label if g_conf >= p["min_confidence"] else UNKNOWN
        conf[:] = g_conf
        src[:] = "genotype"
    if has_structural and source != "none":
        # Also scored when the genotype decides: the score is then a cross-check, not the label.
        img, name = _structural_image(structural)
        aligned, shift, err = register_structural(img, mean_image, name=name)
        score = reporter_score(aligned - p["dark_level"], fp, surround_px=p["surround_px"])[0]
        data_vars["structural_image"] = (("y", "x"), aligned.astype(np.float32),
                                         {"long_name": "structural channel registered to the mean image"})
        attrs.update(structural_file=name, structural_marks=structural_marks,
                     structural_shift_yx=[float(v) for v in shift], structural_registration_error=err)
        if np.hypot(*shift) > 0.1 * min(mean_image.shape):
            warn(f"animal {animal}: {name} is shifted by {shift.round(2).tolist()} px from the mean image "
                 "(over 10% of the field of view); check that it is the same field")
        clf = None
        if use_structural and np.isfinite(score).any():
            try:
                clf = _classify(score, p, random_state)
            except ValueError as exc:
                warn(f"animal {animal}: structural channel not classified ({exc}); labels stay 'unknown'")
        if clf is not None:
            if p["method"] == "mixture" and clf.separation_ < 2:
                warn(f"animal {animal}: reporter scores do not split cleanly into two groups (Ashman's D = "
                     f"{clf.separation_:.2f} < 2); check cell_type_score and the classifier attrs")
            pm = clf.predict_proba(score)
            ok = np.isfinite(pm)
            best = np.where(pm >= 0.5, structural_marks, _other(structural_marks))
            c = np.where(pm >= 0.5, pm, 1 - pm)
            label[ok] = np.where(c[ok] >= p["min_confidence"], best[ok], UNKNOWN)
            conf[ok] = c[ok]
            src[:] = "structural"
            attrs["classifier"] = json.dumps(clf.summary())

    for kind, tab in (("table", table), ("curation", curation)):
        if tab is None or (isinstance(tab, (str, Path)) and str(tab) == ""):
            continue
        if not isinstance(tab, LabelTable):
            reader = read_label_table if kind == "table" else read_curation
            tab = reader(tab, animal, animal_id)
        tab.check_ids(roi_id)
        index = {int(r): i for i, r in enumerate(roi_id)}
        for rid, lab in tab.labels.items():
            i = index[rid]
            label[i], conf[i], src[i] = lab, (0.0 if lab == UNKNOWN else 1.0), kind
        for rid, v in tab.is_cell.items():
            is_cell[index[rid]] = v
        attrs[f"{kind}_file"] = tab.path

    ds = xr.Dataset(
        {"cell_type": ("neuron", label.astype(str), {"values": f"{GABA}, {GLU}, {UNKNOWN}"}),
         "cell_type_confidence": ("neuron", conf, {"units": "1", "long_name": "confidence of the best class"}),
         "cell_type_source": ("neuron", src.astype(str), {"values": ", ".join(SOURCES)}),
         "cell_type_score": ("neuron", score, {"units": "1", "long_name":
                             "reporter contrast inside / (inside + surround); 0.5 = as bright as the surround"}),
         "is_cell": ("neuron", is_cell),
         **data_vars},
        coords={"roi_id": ("neuron", roi_id)}, attrs=attrs)
    for k, v in ds.attrs.items():
        if isinstance(v, (list, dict)):
            ds.attrs[k] = json.dumps(v) if isinstance(v, dict) else np.asarray(v)
    return ds


def _structural_image(structural) -> tuple[np.ndarray, str]:
    if isinstance(structural, (str, Path)):
        return load_structural(structural), str(structural)
    arr = np.asarray(structural, np.float64)
    if arr.ndim == 3:
        arr = arr.mean(0)
    return arr, "structural image (array)"


def _classify(score: np.ndarray, p: dict, random_state: int) -> ReporterClassifier:
    clf = ReporterClassifier(method=p["method"], threshold=p["threshold"],
                             threshold_width=p["threshold_width"], random_state=random_state)
    return clf.fit(score)
