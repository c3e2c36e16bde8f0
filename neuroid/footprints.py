"""ROI footprints as COO pixels (the layout of `/A/rois`), from any of the usual forms."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Footprints:
    """Footprints of `n_neurons` ROIs on a (Y, X) image, as COO pixels.

    neuron, y, x: (pixel,) int; weight: (pixel,) float. Pixels of ROI k are
    those with neuron == k (k = 0..n_neurons-1, the order of `/A/rois`).
    """

    neuron: np.ndarray
    y: np.ndarray
    x: np.ndarray
    weight: np.ndarray
    n_neurons: int
    shape: tuple[int, int]

    def __post_init__(self):
        self.neuron = np.asarray(self.neuron, np.int64)
        self.y = np.asarray(self.y, np.int64)
        self.x = np.asarray(self.x, np.int64)
        self.weight = np.asarray(self.weight, np.float64)
        if not (self.neuron.shape == self.y.shape == self.x.shape == self.weight.shape):
            raise ValueError("footprint pixel arrays (neuron, y, x, weight) must have the same length")
        Y, X = self.shape
        bad = (self.y < 0) | (self.y >= Y) | (self.x < 0) | (self.x >= X)
        if bad.any():
            raise ValueError(f"{int(bad.sum())} footprint pixels lie outside the {Y} x {X} image")
        if self.neuron.size and (self.neuron.min() < 0 or self.neuron.max() >= self.n_neurons):
            raise ValueError(f"footprint neuron index outside 0..{self.n_neurons - 1}")
        order = np.argsort(self.neuron, kind="stable")
        self.neuron, self.y, self.x, self.weight = (a[order] for a in (self.neuron, self.y, self.x, self.weight))
        self._start = np.searchsorted(self.neuron, np.arange(self.n_neurons + 1))

    @classmethod
    def from_dense(cls, masks: np.ndarray) -> "Footprints":
        """From (neuron, Y, X) weights (0 outside the ROI)."""
        masks = np.asarray(masks)
        if masks.ndim != 3:
            raise ValueError(f"dense footprints must be (neuron, y, x), got shape {masks.shape}")
        k, y, x = np.nonzero(masks)
        return cls(k, y, x, masks[k, y, x], masks.shape[0], masks.shape[1:])

    @classmethod
    def from_rois(cls, rois, shape: tuple[int, int] | None = None) -> "Footprints":
        """From an `/A/rois` Dataset (pix_neuron, pix_y, pix_x, pix_weight; dim neuron)."""
        missing = [v for v in ("pix_neuron", "pix_y", "pix_x") if v not in rois.variables]
        if missing:
            raise ValueError(f"/rois lacks footprint variable(s) {missing}; expected COO pixels "
                             "pix_neuron, pix_y, pix_x, pix_weight (see docs/design.md)")
        w = rois["pix_weight"].values if "pix_weight" in rois.variables else np.ones(rois["pix_y"].size)
        if shape is None:
            shape = rois["mean_image"].shape
        return cls(rois["pix_neuron"].values, rois["pix_y"].values, rois["pix_x"].values, w,
                   int(rois.sizes["neuron"]), tuple(shape))

    @classmethod
    def coerce(cls, footprints, shape: tuple[int, int] | None = None) -> "Footprints":
        """Footprints, a dense (neuron, Y, X) array, or an `/A/rois`-like Dataset."""
        if isinstance(footprints, cls):
            return footprints
        if hasattr(footprints, "variables"):
            return cls.from_rois(footprints, shape)
        return cls.from_dense(footprints)

    def pixels(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(y, x, weight) of ROI k."""
        s, e = self._start[k], self._start[k + 1]
        return self.y[s:e], self.x[s:e], self.weight[s:e]

    def union_mask(self) -> np.ndarray:
        """(Y, X) bool: pixels belonging to any ROI."""
        m = np.zeros(self.shape, bool)
        m[self.y, self.x] = True
        return m
