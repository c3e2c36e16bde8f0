"""Combine the sources into one label per ROI, with its confidence and provenance.

Precedence (later wins for the ROIs it names): genotype or structural channel
(chosen by `source`) < label table < napari curation.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from pipeline.core.parameters import SPEC, ConfigError

from .footprints import Footprints
from .genotypes import GABA, GLU, UNKNOWN, animal_label
from .structural import ReporterClassifier, load_structural, register_structural, reporter_score
from .table import LabelTable, read_curation, read_label_table

SOURCES = ("genotype", "structural", "table", "curation", "none")
DEFAULTS = SPEC["celltypes"].defaults()   # the one source of defaults (pipeline/core/parameters/stages.py)


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
    lab = _Labels.start(fp, mean_image, roi_id, is_cell)
    _check_choices(source, structural_marks, animal)
    attrs: dict = {"animal": animal, "genotype": genotype, "indicator": indicator,
                   "min_confidence": p["min_confidence"]}
    data_vars: dict = {}

    g_label, g_conf, g_basis = animal_label(genotype, indicator, f"[animals.{animal}]")
    attrs["genotype_basis"] = g_basis
    has_structural = structural is not None and not (isinstance(structural, (str, Path)) and str(structural) == "")
    use_genotype, use_structural = _sources(source, g_label, has_structural, animal, genotype, indicator, g_basis)

    if use_genotype:
        lab.label[:] = g_label if g_conf >= p["min_confidence"] else UNKNOWN
        lab.conf[:] = g_conf
        lab.src[:] = "genotype"
    if has_structural and source != "none":
        # Also scored when the genotype decides: the score is then a cross-check, not the label.
        _score_structural(lab, structural, mean_image, fp, p, structural_marks, use_structural,
                          random_state, animal, warn, attrs, data_vars)
    for kind, tab in (("table", table), ("curation", curation)):
        if not (tab is None or (isinstance(tab, (str, Path)) and str(tab) == "")):
            _apply_table(lab, kind, tab, animal, animal_id, attrs)
    return lab.dataset(attrs, data_vars)


@dataclass
class _Labels:
    """The per-ROI outputs of label_animal while the sources are applied, each (neuron,)."""

    roi_id: np.ndarray
    is_cell: np.ndarray
    label: np.ndarray
    conf: np.ndarray
    src: np.ndarray
    score: np.ndarray

    @classmethod
    def start(cls, fp: Footprints, mean_image: np.ndarray, roi_id, is_cell) -> "_Labels":
        """Every ROI 'unknown' from source 'none'; roi_id and is_cell checked against the footprints."""
        if fp.shape != mean_image.shape:
            raise ValueError(f"footprints are on a {fp.shape} image but the mean image is {mean_image.shape}")
        n = fp.n_neurons
        roi_id = np.arange(n) if roi_id is None else np.asarray(roi_id, np.int64)
        is_cell = np.ones(n, bool) if is_cell is None else np.asarray(is_cell, bool).copy()
        if roi_id.shape != (n,) or is_cell.shape != (n,):
            raise ValueError(f"roi_id and is_cell must have one entry per ROI ({n})")
        return cls(roi_id, is_cell, np.full(n, UNKNOWN, dtype=object), np.zeros(n),
                   np.full(n, "none", dtype=object), np.full(n, np.nan))

    def dataset(self, attrs: dict, data_vars: dict) -> xr.Dataset:
        ds = xr.Dataset(
            {"cell_type": ("neuron", self.label.astype(str), {"values": f"{GABA}, {GLU}, {UNKNOWN}"}),
             "cell_type_confidence": ("neuron", self.conf, {"units": "1", "long_name": "confidence of the best class"}),
             "cell_type_source": ("neuron", self.src.astype(str), {"values": ", ".join(SOURCES)}),
             "cell_type_score": ("neuron", self.score, {"units": "1", "long_name":
                                 "reporter contrast inside / (inside + surround); 0.5 = as bright as the surround"}),
             "is_cell": ("neuron", self.is_cell),
             **data_vars},
            coords={"roi_id": ("neuron", self.roi_id)}, attrs=attrs)
        for k, v in ds.attrs.items():
            if isinstance(v, (list, dict)):
                ds.attrs[k] = json.dumps(v) if isinstance(v, dict) else np.asarray(v)
        return ds


def _check_choices(source: str, structural_marks: str, animal: str) -> None:
    if source not in SPEC["animal"].param("celltype_source").choices:
        raise ConfigError(f"[animals.{animal}] celltype_source = {source!r}; expected auto, genotype, structural or none")
    if structural_marks not in (GABA, GLU):
        raise ConfigError(f"[animals.{animal}] structural_marks = {structural_marks!r}; expected {GABA!r} or {GLU!r}")


def _sources(source: str, g_label, has_structural: bool, animal: str, genotype: str, indicator: str,
             g_basis: str) -> tuple[bool, bool]:
    """(use the genotype's label, use the structural channel's labels) for `source`; an error when
    the requested source cannot label."""
    if source == "genotype" and g_label is None:
        raise ConfigError(f"[animals.{animal}] celltype_source = 'genotype' but genotype {genotype!r} / indicator "
                          f"{indicator!r} name no population-specific line ({g_basis})")
    if source == "structural" and not has_structural:
        raise ConfigError(f"[animals.{animal}] celltype_source = 'structural' but no 'structural' image is given")
    use_genotype = source in ("auto", "genotype") and g_label is not None
    use_structural = has_structural and (source == "structural" or (source == "auto" and not use_genotype))
    return use_genotype, use_structural


def _score_structural(lab: _Labels, structural, mean_image: np.ndarray, fp: Footprints, p: dict,
                      structural_marks: str, use_structural: bool, random_state: int, animal: str, warn,
                      attrs: dict, data_vars: dict) -> None:
    """Register the structural image to the mean image and score every ROI (lab.score); with
    `use_structural`, classify the scores into labels. Fills attrs and data_vars in place."""
    img, name = _structural_image(structural)
    aligned, shift, err = register_structural(img, mean_image, name=name)
    lab.score = reporter_score(aligned - p["dark_level"], fp, surround_px=p["surround_px"])[0]
    data_vars["structural_image"] = (("y", "x"), aligned.astype(np.float32),
                                     {"long_name": "structural channel registered to the mean image"})
    attrs.update(structural_file=name, structural_marks=structural_marks,
                 structural_shift_yx=[float(v) for v in shift], structural_registration_error=err)
    if np.hypot(*shift) > 0.1 * min(mean_image.shape):
        warn(f"animal {animal}: {name} is shifted by {shift.round(2).tolist()} px from the mean image "
             "(over 10% of the field of view); check that it is the same field")
    clf = None
    if use_structural and np.isfinite(lab.score).any():
        try:
            clf = _classify(lab.score, p, random_state)
        except ValueError as exc:
            warn(f"animal {animal}: structural channel not classified ({exc}); labels stay 'unknown'")
    if clf is None:
        return
    if p["method"] == "mixture" and clf.separation_ < 2:
        warn(f"animal {animal}: reporter scores do not split cleanly into two groups (Ashman's D = "
             f"{clf.separation_:.2f} < 2); check cell_type_score and the classifier attrs")
    pm = clf.predict_proba(lab.score)
    ok = np.isfinite(pm)
    best = np.where(pm >= 0.5, structural_marks, _other(structural_marks))
    c = np.where(pm >= 0.5, pm, 1 - pm)
    lab.label[ok] = np.where(c[ok] >= p["min_confidence"], best[ok], UNKNOWN)
    lab.conf[ok] = c[ok]
    lab.src[:] = "structural"
    attrs["classifier"] = json.dumps(clf.summary())


def _apply_table(lab: _Labels, kind: str, tab, animal: str, animal_id: str, attrs: dict) -> None:
    """Labels (and is_cell) of the ROIs a label table or curation file (`kind`) names override the rest."""
    if not isinstance(tab, LabelTable):
        reader = read_label_table if kind == "table" else read_curation
        tab = reader(tab, animal, animal_id)
    tab.check_ids(lab.roi_id)
    index = {int(r): i for i, r in enumerate(lab.roi_id)}
    for rid, label in tab.labels.items():
        i = index[rid]
        lab.label[i], lab.conf[i], lab.src[i] = label, (0.0 if label == UNKNOWN else 1.0), kind
    for rid, v in tab.is_cell.items():
        lab.is_cell[index[rid]] = v
    attrs[f"{kind}_file"] = tab.path


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
