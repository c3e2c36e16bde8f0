"""The local correlation image of a movie: how much each pixel's time course agrees with its neighbours'.

Used by the seeded one-photon detector (8 neighbours, to find seeds) and shown for the
minian engine (4 neighbours, as minian computes it).
"""
from __future__ import annotations

import numpy as np

__all__ = ["correlation_image"]

# neighbour offsets (dy, dx), in the order their correlations are summed
_OFFSETS = {8: tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)),
            4: ((1, 0), (-1, 0), (0, 1), (0, -1))}


def correlation_image(mov: np.ndarray, neighbours: int = 8) -> np.ndarray:
    """Mean Pearson r of each pixel's trace with its 8 (or 4) neighbours'; mov (T, Y, X) -> (Y, X) float32.

    Edge pixels average over the neighbours they have. A constant pixel has r = 0.
    The sums are accumulated in float64.
    """
    if neighbours not in _OFFSETS:
        raise ValueError(f"neighbours must be 4 or 8, got {neighbours!r}")
    z = mov - mov.mean(0)
    z /= np.maximum(z.std(0), 1e-12)
    T, Y, X = z.shape
    acc = np.zeros((Y, X), np.float64)
    cnt = np.zeros((Y, X), np.float64)
    for dy, dx in _OFFSETS[neighbours]:
        ys, yd = (slice(0, Y - dy), slice(dy, Y)) if dy >= 0 else (slice(-dy, Y), slice(0, Y + dy))
        xs, xd = (slice(0, X - dx), slice(dx, X)) if dx >= 0 else (slice(-dx, X), slice(0, X + dx))
        acc[ys, xs] += (z[:, ys, xs] * z[:, yd, xd]).mean(0)
        cnt[ys, xs] += 1
    return (acc / np.maximum(cnt, 1)).astype(np.float32)
