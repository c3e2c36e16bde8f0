"""Cell type from a structural second channel (METHODS.md section 6, second source).

A red reporter (e.g. tdTomato in Vgat-Cre cells) is imaged beside a
pan-neuronal indicator. Steps:

1. `load_structural`: the image, or the mean of a short movie, (Y, X).
2. `register_structural`: subpixel phase correlation against the functional
   mean image (both high-passed, so the different contrasts of the two
   channels share their cell-sized structure), then shift the structural image
   into the functional frame. Pixels shifted in from outside become NaN.
3. `reporter_score`: per ROI, the reporter contrast of the footprint against a
   local surround ring that excludes every ROI's pixels, as suite2p defines it
   for its red-cell detection (`chan2detect.intensity_ratio`):
   score = in / (in + ring), in = weighted mean inside the footprint, ring =
   median of the ring. 0.5 = as bright as the surround; a marked cell 3x
   brighter than the neuropil scores 0.75. suite2p's default cut is 0.65.
   The image is assumed offset-free (dark level ~ 0), as in suite2p; an offset
   pulls every score towards 0.5, which the mixture absorbs but a fixed
   threshold does not.
4. `ReporterClassifier`: two-component Gaussian mixture on the score (or a
   fixed threshold), giving P(marked) per ROI.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from pipeline.core.rng import sklearn_seed

from .footprints import Footprints


class StructuralError(ValueError):
    """The structural image cannot be used. The message names the file."""


def load_structural(path: str | Path) -> np.ndarray:
    """The structural image (Y, X) float64: a 2D image, or the mean of a (T, Y, X) movie.

    Any format pipeline.io.readers reads (TIFF, HDF5, NWB, ...), or a .npy array.
    The file is opened read-only.
    """
    path = Path(path)
    if not path.exists():
        raise StructuralError(f"{path}: structural image not found")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:   # object arrays need pickle, which is never allowed
            raise StructuralError(f"{path}: not a numeric .npy array ({exc}); expected a numeric (Y, X) "
                                  "or (frames, Y, X) array") from None
        if arr.dtype.kind not in "biuf":
            raise StructuralError(f"{path}: structural image has dtype {arr.dtype}; expected numbers")
        if arr.ndim not in (2, 3):
            raise StructuralError(f"{path}: structural image has shape {arr.shape}; expected (Y, X) or (frames, Y, X)")
        return np.asarray(arr, dtype=np.float64) if arr.ndim == 2 else np.asarray(arr, np.float64).mean(0)
    from pipeline.io.readers import MovieError, open_movie
    try:
        movie = open_movie([str(path)])
    except MovieError as exc:
        raise StructuralError(f"structural image: {exc}") from None
    total = np.zeros(movie.shape[1:], np.float64)
    with movie:
        for _, chunk in movie.iter_chunks(200):
            total += np.asarray(chunk, np.float64).sum(0)
    return total / movie.shape[0]


def _highpass(img: np.ndarray, sigma: float) -> np.ndarray:
    img = np.nan_to_num(np.asarray(img, np.float64), nan=float(np.nanmedian(img)))
    hp = img - ndimage.gaussian_filter(img, sigma)
    return hp / (hp.std() + 1e-12)


def register_structural(structural: np.ndarray, reference: np.ndarray, *, upsample_factor: int = 20,
                        highpass_px: float = 8.0, name: str = "structural image",
                        ref_name: str = "functional mean image") -> tuple[np.ndarray, np.ndarray, float]:
    """Align `structural` (Y, X) to `reference` (Y, X).

    Returns (aligned image (Y, X) with NaN where no data, shift (dy, dx) px
    applied to the structural image, registration error from phase correlation).
    Raises StructuralError naming both shapes when they differ.
    """
    from skimage.registration import phase_cross_correlation

    structural = np.asarray(structural, np.float64)
    reference = np.asarray(reference, np.float64)
    if structural.ndim != 2 or structural.shape != reference.shape:
        raise StructuralError(f"{name}: shape {structural.shape} does not match the {ref_name} "
                              f"{reference.shape}; expected the same (Y, X) field of view")
    shift, error, _ = phase_cross_correlation(_highpass(reference, highpass_px), _highpass(structural, highpass_px),
                                              upsample_factor=upsample_factor, normalization="phase")
    aligned = ndimage.shift(structural, shift, order=1, mode="constant", cval=np.nan)
    return aligned, np.asarray(shift, np.float64), float(error)


def reporter_score(image: np.ndarray, fp: Footprints, surround_px: int = 6,
                   gap_px: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reporter contrast of each ROI against its local surround.

    image: registered structural image (Y, X), NaN where unknown.
    fp: footprints in the same (Y, X) frame.
    surround_px: ring width beyond a `gap_px` guard band around the footprint (px).
    Returns (score in [0, 1] (neuron,), weighted mean inside (neuron,), median of ring (neuron,));
    NaN for an ROI whose footprint or ring holds no valid pixel.
    """
    img = np.asarray(image, np.float64)
    Y, X = img.shape
    valid = np.isfinite(img)
    occupied = fp.union_mask()
    struct = ndimage.generate_binary_structure(2, 1)
    n = fp.n_neurons
    inside, ring = np.full(n, np.nan), np.full(n, np.nan)
    pad = surround_px + gap_px + 1
    for k in range(n):
        ys, xs, w = fp.pixels(k)
        if ys.size == 0:
            continue
        ok = valid[ys, xs]
        if ok.any():
            ww = np.clip(w[ok], 0, None)
            inside[k] = np.average(img[ys[ok], xs[ok]], weights=ww if ww.sum() > 0 else None)
        # ring in a local window: dilate footprint by gap (guard) and by gap+surround
        y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, Y)
        x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, X)
        m = np.zeros((y1 - y0, x1 - x0), bool)
        m[ys - y0, xs - x0] = True
        inner = ndimage.binary_dilation(m, struct, iterations=gap_px) if gap_px > 0 else m
        outer = ndimage.binary_dilation(m, struct, iterations=gap_px + surround_px)
        r = outer & ~inner & ~occupied[y0:y1, x0:x1] & valid[y0:y1, x0:x1]
        if r.any():
            ring[k] = float(np.median(img[y0:y1, x0:x1][r]))
    # Clip as suite2p does, so a dark footprint scores ~0 rather than dividing by ~0.
    eps = 1e-3 * (float(np.nanmedian(np.abs(img))) if valid.any() else 1.0) + 1e-12
    with np.errstate(invalid="ignore"):
        i, r = np.maximum(inside, eps), np.maximum(ring, eps)
        score = i / (i + r)
    return score, inside, ring


class ReporterClassifier(BaseEstimator):
    """P(reporter-marked) from the reporter score, a scikit-learn estimator.

    method: "mixture" fits a two-component 1-D Gaussian mixture (the component
    with the higher mean is the marked one); "threshold" calls scores above
    `threshold` marked with a logistic confidence of width `threshold_width`.
    The mixture posterior is made non-decreasing in the score (a wide
    component would otherwise also "win" far below the narrow one).
    random_state: an int seed of the mixture's initialisations (passed unchanged to
    scikit-learn), or None / a Generator from which one seed is drawn.

    Fitted attributes: means_, sds_, weights_ (marked component last),
    separation_ (Ashman's D; > 2 is a clean split), n_scores_, fit_scores_ (the finite
    scores fitted, sorted for "mixture"), gmm_ and order_ (component order, marked last)
    for "mixture".
    """

    def __init__(self, method: str = "mixture", threshold: float = 0.65, threshold_width: float = 0.03,
                 random_state=0):
        self.method = method
        self.threshold = threshold
        self.threshold_width = threshold_width
        self.random_state = random_state

    def fit(self, scores: np.ndarray) -> "ReporterClassifier":
        """scores: (n,) reporter scores (NaN ignored). Returns self."""
        s = np.asarray(scores, np.float64)
        s = s[np.isfinite(s)]
        self.n_scores_ = int(s.size)
        if self.method == "threshold":
            self.means_ = self.sds_ = self.weights_ = None
            self.separation_ = float("nan")
            self.fit_scores_ = s
            return self
        if self.method != "mixture":
            raise ValueError(f"method must be 'mixture' or 'threshold', got {self.method!r}")
        if s.size < 4 or np.ptp(s) == 0:
            raise ValueError(f"a two-component mixture needs at least 4 distinct finite scores, got {s.size}; "
                             "use method = 'threshold'")
        from sklearn.mixture import GaussianMixture
        gm = GaussianMixture(2, covariance_type="full", n_init=3, random_state=sklearn_seed(self.random_state),
                             reg_covar=1e-6 * float(np.var(s)) + 1e-12)
        gm.fit(s[:, None])
        order = np.argsort(gm.means_.ravel())
        self.gmm_ = gm
        self.order_ = order
        self.means_ = gm.means_.ravel()[order]
        self.sds_ = np.sqrt(gm.covariances_.ravel()[order])
        self.weights_ = gm.weights_[order]
        self.separation_ = float(np.sqrt(2) * abs(np.diff(self.means_))[0] / np.sqrt((self.sds_ ** 2).sum()))
        self.fit_scores_ = np.sort(s)
        return self

    def _raw_proba(self, s: np.ndarray) -> np.ndarray:
        if self.method == "threshold":
            return 1.0 / (1.0 + np.exp(-(s - self.threshold) / self.threshold_width))
        return self.gmm_.predict_proba(s[:, None])[:, self.order_[1]]

    def predict_proba(self, scores: np.ndarray) -> np.ndarray:
        """P(marked) per score (n,); NaN where the score is NaN."""
        check_is_fitted(self)
        s = np.asarray(scores, np.float64)
        out = np.full(s.shape, np.nan)
        ok = np.isfinite(s)
        if not ok.any():
            return out
        if self.method == "threshold":
            out[ok] = self._raw_proba(s[ok])
            return out
        # Monotone: P(s) = min over s' >= s of raw P(s'), on the fitted scores plus these ones.
        grid = np.union1d(self.fit_scores_, s[ok])
        p = self._raw_proba(grid)
        p = np.minimum.accumulate(p[::-1])[::-1]
        out[ok] = p[np.searchsorted(grid, s[ok])]
        return out

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """True where marked (P >= 0.5)."""
        return self.predict_proba(scores) >= 0.5

    def summary(self) -> dict:
        """Fitted parameters as plain numbers, for the result's attrs."""
        check_is_fitted(self)
        d = {"method": self.method, "n_scores": self.n_scores_}
        if self.method == "mixture":
            d.update(means=[float(v) for v in self.means_], sds=[float(v) for v in self.sds_],
                     weights=[float(v) for v in self.weights_], separation_ashman_d=self.separation_)
        else:
            d.update(threshold=self.threshold, threshold_width=self.threshold_width)
        return d
