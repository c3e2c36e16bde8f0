"""suite2p-style int16 binary movies, read and written by frame ranges."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class ChunkedBinary:
    """A suite2p-style int16 binary (T, Y, X) read and written with pread/pwrite, not mmap.

    suite2p's BinaryFile memory-maps the file, so every page it touches counts
    toward the process's resident memory; this class reads only the frames asked
    for, which keeps peak RSS independent of the movie length. It supports what
    suite2p's registration/detection/extraction use: `.shape`, slices, index
    arrays and slice assignment.
    """

    def __init__(self, path: str | Path, shape: tuple[int, int, int] | None = None, Ly: int | None = None,
                 Lx: int | None = None, write: bool = False):
        self.filename = str(path)
        if shape is not None:
            self.n_frames, self.Ly, self.Lx = (int(s) for s in shape)
            if write and not os.path.exists(self.filename):
                with open(self.filename, "wb") as fh:
                    fh.truncate(self.n_frames * self.Ly * self.Lx * 2)
        else:
            self.Ly, self.Lx = int(Ly), int(Lx)
            self.n_frames = os.path.getsize(self.filename) // (2 * self.Ly * self.Lx)
        self._fd = os.open(self.filename, os.O_RDWR if write else os.O_RDONLY)
        self.dtype = np.dtype("int16")

    @property
    def shape(self):
        return (self.n_frames, self.Ly, self.Lx)

    def __len__(self):
        return self.n_frames

    @property
    def _fbytes(self):
        return self.Ly * self.Lx * 2

    def _read(self, i, j):
        buf = os.pread(self._fd, (j - i) * self._fbytes, i * self._fbytes)
        return np.frombuffer(buf, np.int16).reshape(j - i, self.Ly, self.Lx).copy()

    def __getitem__(self, key):
        if isinstance(key, tuple):
            return self[key[0]][(slice(None),) + key[1:]] if not np.isscalar(key[0]) else self[key[0]][key[1:]]
        if isinstance(key, (int, np.integer)):
            k = int(key) % self.n_frames
            return self._read(k, k + 1)[0]
        if isinstance(key, slice):
            i, j, s = key.indices(self.n_frames)
            return self._read(i, max(i, j)) if s == 1 else self[np.arange(i, j, s)]
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.nonzero(idx)[0]
        return np.stack([self._read(int(k), int(k) + 1)[0] for k in idx]) if len(idx) else \
            np.empty((0, self.Ly, self.Lx), np.int16)

    def __setitem__(self, key, value):
        if not isinstance(key, slice):
            raise TypeError("ChunkedBinary supports slice assignment only")
        i, j, s = key.indices(self.n_frames)
        if s != 1:
            raise TypeError("ChunkedBinary supports contiguous slices only")
        arr = np.ascontiguousarray(np.clip(np.asarray(value), -32768, 32767).astype(np.int16))
        if arr.shape != (j - i, self.Ly, self.Lx):
            arr = np.broadcast_to(arr, (j - i, self.Ly, self.Lx)).copy()
        os.pwrite(self._fd, arr.tobytes(), i * self._fbytes)

    def iter_chunks(self, n=500):
        for i in range(0, self.n_frames, n):
            yield i, self[i: i + n]

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
