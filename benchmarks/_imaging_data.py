"""Synthetic movies for the imaging benchmarks, written to TIFF in chunks (bounded memory)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def write_movie(path, T: int, Ly: int, Lx: int, seed: int = 0, chunk: int = 250, n_cells: int | None = None) -> None:
    """A (T, Ly, Lx) uint16 TIFF: Gaussian somata with random transients, texture, integer jitter, noise."""
    import tifffile
    rng = np.random.default_rng(seed)
    pad = 8
    H, W = Ly + 2 * pad, Lx + 2 * pad
    n_cells = n_cells or max(5, Ly * Lx // 900)
    cy, cx = rng.uniform(pad, H - pad, n_cells), rng.uniform(pad, W - pad, n_cells)
    img = np.zeros((n_cells, H, W), np.float32)
    yy, xx = np.mgrid[:H, :W]
    for k in range(n_cells):   # sparse footprints: only the 21 x 21 neighbourhood of each soma
        y0, x0 = int(cy[k]) - 10, int(cx[k]) - 10
        sl = (slice(max(y0, 0), y0 + 21), slice(max(x0, 0), x0 + 21))
        img[k][sl] = np.exp(-((yy[sl] - cy[k]) ** 2 + (xx[sl] - cx[k]) ** 2) / 8.0)
    flat = img.reshape(n_cells, -1)
    tex = 300 + 200 * ndimage.gaussian_filter(rng.normal(size=(H, W)), 3).astype(np.float32)
    # a contiguous (T, Y, X) TIFF created up front and filled chunk by chunk
    mm = tifffile.memmap(path, shape=(T, Ly, Lx), dtype=np.uint16, bigtiff=T * Ly * Lx * 2 > 2 ** 31)
    if True:
        for t0 in range(0, T, chunk):
            n = min(chunk, T - t0)
            act = (rng.random((n, n_cells)) < 0.02).astype(np.float32) * 3.0
            fr = tex + (act @ flat).reshape(n, H, W) * 400
            dy, dx = rng.integers(-3, 4, (2, n))
            out = np.stack([np.roll(f, (a, b), (0, 1))[pad:pad + Ly, pad:pad + Lx] for f, a, b in zip(fr, dy, dx)])
            out = rng.poisson(np.clip(out, 0, None)).astype(np.uint16)
            mm[t0:t0 + n] = out
            mm.flush()
    del mm
