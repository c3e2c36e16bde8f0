"""ROI classification (is_cell) with suite2p's classifier, built in or trained by a lab.

suite2p's classifier is a naive-Bayes-like model on a few ROI statistics, fitted at load time from a
file holding training ROIs: `{"stats": (n, k) float, "iscell": (n,) bool, "keys": [k names]}`.
`classify` applies the built-in file (suite2p's ~14000 hand-labelled ROIs) or a lab's file;
`train` writes such a file from a lab's curated ROIs (features from `/A/rois`, labels from
is_cell after curation), so later sessions name it in `[extraction] classifier_file`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

#: ROI statistics the classifier uses (suite2p's default keys), stored per ROI in /A/rois
FEATURES = ("skew", "npix_norm", "compact")
#: suite2p's classifier bins each statistic at 100 quantiles of the training ROIs; fewer ROIs leave empty bins
MIN_ROIS = 100


def iscell_threshold(params: dict) -> float:
    """The is_cell cut on the classifier probability: the set value, else 0.1 for suite2p's built-in
    classifier (it gives true cells low probabilities on the simulator and on real data; docs/imaging.md)
    and 0.5 for a lab's own classifier_file (trained on the lab's labels, so 0.5 is its decision point)."""
    v = params.get("iscell_threshold")
    if v is not None:
        return float(v)
    return 0.5 if params.get("classifier_file") else 0.1


def features(stat) -> dict[str, np.ndarray]:
    """{name: (N,) float} of FEATURES from suite2p stat entries (after roi_stats and the trace skew)."""
    return {k: np.array([float(st[k]) for st in stat], np.float64) for k in FEATURES}


def check_file(path: str | Path, where: str = "classifier_file") -> dict:
    """Load and check a classifier file; returns its dict. Raises ValueError naming the file and the form."""
    path = Path(path)
    form = ("a suite2p classifier .npy file: a dict with 'stats' (n ROIs x k), 'iscell' (n,) and 'keys' "
            f"(k names from {', '.join(FEATURES)}), e.g. written by `interbrain train-classifier`")
    if not path.is_file():
        raise ValueError(f"{path}: {where} not found; expected {form}")
    try:
        model = np.load(path, allow_pickle=True).item()
        stats, iscell, keys = np.asarray(model["stats"], float), np.asarray(model["iscell"]), list(model["keys"])
    except Exception as exc:   # numpy raises several types for a wrong file
        raise ValueError(f"{path}: not a classifier file ({type(exc).__name__}); expected {form}") from None
    if stats.ndim != 2 or stats.shape != (len(iscell), len(keys)) or not set(keys) <= set(FEATURES):
        raise ValueError(f"{path}: 'stats' {stats.shape}, 'iscell' ({len(iscell)},), keys {keys}; expected {form}")
    if len(set(np.asarray(iscell, bool).tolist())) < 2:
        raise ValueError(f"{path}: all training ROIs have one label; expected cells and non-cells")
    if len(iscell) < MIN_ROIS:
        raise ValueError(f"{path}: {len(iscell)} training ROIs; expected at least {MIN_ROIS}")
    return model


def classify(stat, classifier_file: str | Path | None = None) -> np.ndarray:
    """Cell probability (N,) of each ROI; suite2p's built-in classifier when classifier_file is empty."""
    from suite2p import classification
    if not len(stat):
        return np.zeros(0, np.float32)
    if classifier_file:
        check_file(classifier_file)
        path = str(classifier_file)
    else:
        path = classification.builtin_classfile
    return classification.classify(stat=stat, classfile=path)[:, 1].astype(np.float32)


def train(feats: dict[str, np.ndarray], is_cell: np.ndarray, out: str | Path) -> Path:
    """Write a classifier file from labelled ROIs: feats {name: (n,)} of FEATURES, is_cell (n,) bool.

    The file is suite2p's format (also loadable in suite2p's GUI and run_s2p's classifier_path).
    Needs at least MIN_ROIS ROIs, 10 of each label (the classifier estimates each statistic's
    distribution per class on a 100-quantile grid). Written atomically (temp file + fsync + rename).
    """
    import os
    is_cell = np.asarray(is_cell, bool)
    stats = np.stack([np.asarray(feats[k], float) for k in FEATURES], 1)
    ok = np.isfinite(stats).all(1)
    stats, is_cell = stats[ok], is_cell[ok]
    n_cell, n_not = int(is_cell.sum()), int((~is_cell).sum())
    if min(n_cell, n_not) < 10 or n_cell + n_not < MIN_ROIS:
        raise ValueError(f"{out}: training needs at least {MIN_ROIS} ROIs with at least 10 cells and 10 non-cells; "
                         f"got {n_cell} cells and {n_not} non-cells (curate more sessions)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npy")
    with open(tmp, "wb") as fh:
        np.save(fh, {"stats": stats, "iscell": is_cell, "keys": list(FEATURES)}, allow_pickle=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out)
    return out
