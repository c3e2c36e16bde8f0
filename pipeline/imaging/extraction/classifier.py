"""ROI classification (is_cell) with suite2p's classifier, built in or trained by a lab.

suite2p's classifier is a naive-Bayes-like model on a few ROI statistics, fitted at load time from a
file holding training ROIs: `{"stats": (n, k) float, "iscell": (n,) bool, "keys": [k names]}`.
`classify` applies the built-in file (suite2p's ~14000 hand-labelled ROIs) or a lab's file;
`train` writes such a file from a lab's curated ROIs (features from `/A/rois`, labels from
is_cell after curation), so later sessions name it in `[extraction] classifier_file`.
`is_cell` combines the classifier's probability with a test suite2p's classifier lacks (2p): a cell's
trace, slow drift removed, is right-skewed by its calcium transients (`transient_skew`,
`min_transient_skew_2p`).
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


#: transient_skew's high-pass: F_corrected minus its running median over this many indicator decay times
HIGHPASS_TAUS = 10.0


def transient_skew(F_corrected: np.ndarray, fs: float, tau: float) -> np.ndarray:
    """Skewness (N,) of each ROI's neuropil-corrected trace (N, T) after its slow drift is removed: the trace
    minus its running median over HIGHPASS_TAUS x tau s (10 s for tau 1 s).

    A calcium transient rises within a frame or two and decays with tau, so a cell's high-passed trace is
    right-skewed. sparsery also returns patches of neuropil; their trace is a slow drift (seconds to
    minutes) plus noise, and once the drift is gone it is symmetric noise, skew ~0 whatever the drift's
    size or sign. suite2p's `skew` feature is taken on F - 0.7 Fneu with the drift in it, and the
    built-in classifier gave such patches probabilities up to 0.8 on the simulator (docs/imaging.md,
    "Which ROIs are cells"). The window is long against a transient (a sparse cell's median is its
    baseline) and short against the simulator's neuropil drift (15-30 s).
    """
    from scipy.stats import skew
    from pipeline.imaging.traces import running_percentile
    Fc = np.asarray(F_corrected, np.float32)
    if Fc.ndim != 2 or Fc.shape[0] == 0 or Fc.shape[1] < 3:
        return np.zeros(len(Fc), np.float32)
    hp = Fc - running_percentile(Fc, int(round(HIGHPASS_TAUS * tau * fs)), 50.0)
    return np.nan_to_num(skew(hp, axis=1), nan=0.0).astype(np.float32)


def min_transient_skew(params: dict) -> float:
    """The 2p cut on transient_skew: the set value, else 0.1 with suite2p's built-in classifier (trained on
    other recordings, it calls neuropil patches cells; docs/imaging.md) and off (-inf) with a lab's own
    classifier_file, whose labels the lab curated with the traces in view: is_cell then follows it alone."""
    v = params.get("min_transient_skew_2p")
    if v is not None:
        return float(v)
    return -np.inf if params.get("classifier_file") else 0.1


def is_cell(prob: np.ndarray, skew_hp: np.ndarray, params: dict, modality: str = "2p") -> np.ndarray:
    """(N,) bool: the classifier probability at or above iscell_threshold(params) and, for 2p, the transient
    skewness (transient_skew) above min_transient_skew(params): a trace without transients is not a cell,
    whatever the ROI's shape."""
    keep = np.asarray(prob) >= iscell_threshold(params)
    if modality == "2p":
        keep &= np.asarray(skew_hp) > min_transient_skew(params)
    return keep


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
