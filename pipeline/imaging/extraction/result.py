"""What every extraction engine returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ExtractionResult:
    """Shapes: N ROIs, T frames, P footprint pixels (all ROIs), (Y, X) frame."""

    pix_neuron: np.ndarray     # (P,) ROI index of each footprint pixel
    pix_y: np.ndarray          # (P,)
    pix_x: np.ndarray          # (P,)
    pix_weight: np.ndarray     # (P,) suite2p lam, sums to 1 per ROI
    centroid: np.ndarray       # (N, 2) px (y, x)
    iscell_prob: np.ndarray    # (N,)
    is_cell: np.ndarray        # (N,) bool
    F: np.ndarray              # (N, T) raw units
    Fneu: np.ndarray           # (N, T)
    F_corrected: np.ndarray    # (N, T)
    dff: np.ndarray            # (N, T)
    spikes: np.ndarray         # (N, T)
    C: np.ndarray              # (N, T) denoised calcium, units of F_corrected (traces.denoised_calcium)
    mean_image: np.ndarray     # (Y, X)
    correlation_image: np.ndarray   # (Y, X)
    engine: str = "suite2p"
    features: dict = field(default_factory=dict)   # {name: (N,)} classifier inputs (classifier.FEATURES)
    settings: dict = field(default_factory=dict)

    @property
    def n_rois(self) -> int:
        return len(self.iscell_prob)

    def footprints(self, shape) -> np.ndarray:
        """Dense footprints (N, Y, X) (for small movies and tests)."""
        out = np.zeros((self.n_rois, *shape), np.float32)
        out[self.pix_neuron, self.pix_y, self.pix_x] = self.pix_weight
        return out
