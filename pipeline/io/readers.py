"""Lazy movie readers: one interface over TIFF, HDF5, NWB, Miniscope AVI and Inscopix files.

`open_movie(paths)` returns a `Movie`: `.shape` is (T, Y, X), `movie[i:j]` reads
only frames i..j-1 as a numpy array (n, Y, X), `iter_chunks(n)` walks the movie
in bounded pieces. Files are opened read-only and never modified. Bad files
raise `MovieError` (a ValueError) naming the file and what was expected.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from pipeline.core.parameters.session import RAW_FORMATS

#: pixel types the pipeline accepts (suite2p converts them to int16 on registration)
SUPPORTED_DTYPES = tuple(np.dtype(t) for t in ("uint8", "int8", "uint16", "int16", "uint32", "int32",
                                               "float32", "float64"))
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".mat")
FORMATS = RAW_FORMATS


class MovieError(ValueError):
    """A raw movie cannot be read as a (T, Y, X) movie. The message names the file."""


def natural_key(s: str | Path) -> list:
    """Sort key that orders 'f2' before 'f10'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(s))]


def _check_dtype(dtype, where: str) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in SUPPORTED_DTYPES:
        raise MovieError(f"{where}: unsupported pixel type {dtype}; expected one of "
                         + ", ".join(str(d) for d in SUPPORTED_DTYPES))
    return dtype


def _check_3d(shape: tuple, where: str, what: str = "movie") -> tuple[int, int, int]:
    if len(shape) == 2:           # a single image is a one-frame movie
        return (1, *shape)
    if len(shape) != 3:
        raise MovieError(f"{where}: {what} has shape {tuple(shape)} ({len(shape)} dims); expected a 3D "
                         "(frames, y, x) movie of one channel and one plane (split channels/planes first)")
    return tuple(int(s) for s in shape)


class Movie:
    """A lazily read (T, Y, X) movie made of one or more parts (files) in order.

    Subclasses implement `_part_shapes` (list of (T, Y, X)) and `_read(part, i, j)`.
    """

    format = "?"

    def __init__(self, sources: Sequence[str]):
        self.source = [str(s) for s in sources]
        self._parts: list[tuple[int, int, int]] = []
        self._dtype = np.dtype("uint16")

    # -- geometry ---------------------------------------------------------
    def _finish_index(self) -> None:
        if not self._parts:
            raise MovieError(f"{', '.join(self.source) or '(no files)'}: no frames found")
        yx = {p[1:] for p in self._parts}
        if len(yx) > 1:
            raise MovieError(f"{', '.join(self.source)}: parts have different frame sizes {sorted(yx)}; "
                             "expected one (y, x) size for the whole movie")
        self._starts = np.concatenate([[0], np.cumsum([p[0] for p in self._parts])]).astype(int)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(self._starts[-1]), *self._parts[0][1:])

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.shape} {self.dtype} from {len(self.source)} file(s)>"

    # -- reading ----------------------------------------------------------
    def __getitem__(self, key) -> np.ndarray:
        """movie[i] -> (Y, X); movie[i:j] (step 1 or more) -> (n, Y, X), read part by part."""
        T = len(self)
        if isinstance(key, (int, np.integer)):
            i = int(key) + (T if key < 0 else 0)
            if not 0 <= i < T:
                raise IndexError(f"frame {key} out of range for a movie of {T} frames")
            return self._read_range(i, i + 1)[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(T)
            if step == 1:
                return self._read_range(start, stop)
            idx = np.arange(start, stop, step)
            return self.take(idx)
        if isinstance(key, tuple):
            return self[key[0]][(slice(None),) + tuple(key[1:])] if not isinstance(key[0], (int, np.integer)) \
                else self[key[0]][tuple(key[1:])]
        return self.take(np.asarray(key))

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Frames at the given indices, (n, Y, X)."""
        idx = np.asarray(idx, dtype=int)
        out = np.empty((len(idx), *self.shape[1:]), self.dtype)
        for k, i in enumerate(idx):
            out[k] = self[int(i)]
        return out

    def _read_range(self, i: int, j: int) -> np.ndarray:
        out = np.empty((max(j - i, 0), *self.shape[1:]), self.dtype)
        pos = i
        while pos < j:
            p = int(np.searchsorted(self._starts, pos, side="right") - 1)
            a = pos - self._starts[p]
            b = min(j, self._starts[p + 1]) - self._starts[p]
            out[pos - i: pos - i + (b - a)] = self._read(p, int(a), int(b))
            pos += b - a
        return out

    def _read(self, part: int, i: int, j: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def iter_chunks(self, n: int = 500) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first frame index, frames (<=n, Y, X)) over the whole movie."""
        n = max(int(n), 1)
        for i in range(0, len(self), n):
            yield i, self[i: i + n]

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
class TiffMovie(Movie):
    """Multi-page TIFF / BigTIFF / ScanImage TIFF files (or a folder of them), in order.

    Uncompressed contiguous files are read by byte offset (pread: no memory map, so resident
    memory stays bounded by the chunk size); others are read page by page.
    """

    format = "tiff"

    def __init__(self, paths: Sequence[str]):
        super().__init__(paths)
        import tifffile
        self._files, self._offsets, self._byteorder = [], [], []
        dtypes = set()
        self._pagewise = []
        for path in self.source:
            try:
                tf = tifffile.TiffFile(path)
            except Exception as exc:  # tifffile raises several types for broken headers
                raise MovieError(f"{path}: not a readable TIFF file ({type(exc).__name__}: {exc})") from None
            try:
                series = tf.series[0]
                pagewise = self._pages_are_frames(tf)
                if pagewise:   # frames written in blocks or one page at a time: every page is a frame
                    shape = (len(tf.pages), *series.shape[-2:])
                else:
                    shape = series.shape
                    if len(shape) == 3 and shape[-1] in (3, 4) and series.axes.endswith("S"):
                        raise MovieError(f"{path}: RGB(A) TIFF of shape {shape}; expected a single-channel "
                                         "(frames, y, x) movie")
                shape = _check_3d(shape, path, "TIFF series 0")
                dtypes.add(_check_dtype(series.dtype, path))
                self._check_complete(tf, series, path, pagewise)
            except MovieError:
                tf.close()
                raise
            offset = None
            if not pagewise and getattr(series, "dataoffset", None) is not None:
                offset = int(series.dataoffset)   # contiguous, uncompressed: read by byte offset
            self._files.append(tf)
            self._offsets.append(offset)
            self._byteorder.append(tf.byteorder)
            self._pagewise.append(pagewise)
            self._parts.append(shape)
        if len(dtypes) > 1:
            raise MovieError(f"{', '.join(self.source)}: files have different pixel types {sorted(map(str, dtypes))}")
        self._dtype = dtypes.pop()
        self._finish_index()

    @staticmethod
    def _pages_are_frames(tf) -> bool:
        """True when the pages are the frames in order, though series 0 alone is not a (T, Y, X) movie.

        Rigs and tifffile's TiffWriter write long movies in blocks (one `write` call per block of
        frames): tifffile then reports several series, or one series of shape (blocks, frames, Y, X)
        with axes of unknown meaning ('Q'). Every page is one 2-D frame of the same shape and dtype,
        so the pages are read as frames in order (as suite2p does). Files whose axes name channels,
        planes or samples (ScanImage, ImageJ hyperstacks, OME, RGB) are not: their pages interleave
        channels/planes, which need splitting first.
        """
        s = tf.series
        if len(s) == 1 and len(s[0].shape) <= 3:
            return False   # already (T, Y, X) or one frame
        if tf.is_scanimage or tf.is_imagej or tf.is_ome:
            return False
        first = s[0]
        if not all(len(x.shape) >= 2 and x.shape[-2:] == first.shape[-2:] and x.dtype == first.dtype
                   and set(x.axes[:-2]) <= set("QTI") and x.axes[-2:] == "YX" for x in s):
            return False
        # every page belongs to exactly one frame (no thumbnails or pyramid levels besides the frames)
        return sum(int(np.prod(x.shape[:-2])) for x in s) == len(tf.pages)

    @staticmethod
    def _check_complete(tf, series, path: str, pagewise: bool) -> None:
        """A truncated file (copy cut short) has frame data past the end of the file."""
        size = os.path.getsize(path)
        meta = tf.shaped_metadata if tf.is_shaped else None
        if meta and "shape" in meta[0] and not pagewise and tuple(meta[0]["shape"]) != tuple(series.shape):
            raise MovieError(f"{path}: TIFF is truncated or corrupt: its header promises shape "
                             f"{tuple(meta[0]['shape'])} but only {tuple(series.shape)} can be read")
        if not pagewise and getattr(series, "dataoffset", None) is not None:
            end = series.dataoffset + series.nbytes
        else:
            try:
                last = tf.pages[-1] if pagewise else series.pages[-1]
                last = tf.pages[last.index] if not hasattr(last, "dataoffsets") else last
                end = max(o + c for o, c in zip(last.dataoffsets, last.databytecounts))
            except Exception as exc:
                raise MovieError(f"{path}: TIFF is corrupt: cannot locate the last frame ({exc})") from None
        if end > size:
            raise MovieError(f"{path}: TIFF is truncated or corrupt: frame data end at byte {end} "
                             f"but the file has {size} bytes (incomplete copy?)")

    def _read(self, part: int, i: int, j: int) -> np.ndarray:
        off = self._offsets[part]
        if off is not None:
            _, Y, X = self._parts[part]
            dt = self._dtype.newbyteorder(self._byteorder[part])
            fb = Y * X * dt.itemsize
            fh = self._files[part].filehandle
            with fh.lock:
                fh.seek(off + i * fb)
                buf = fh.read((j - i) * fb)
            if len(buf) != (j - i) * fb:
                raise MovieError(f"{self.source[part]}: file ends inside frame {i + len(buf) // fb} (truncated TIFF)")
            return np.frombuffer(buf, dt).reshape(j - i, Y, X).astype(self._dtype)
        tf = self._files[part]
        try:
            if self._pagewise[part]:
                return tf.asarray(key=slice(i, j)).reshape(j - i, *self._parts[part][1:])
            if len(tf.series[0].shape) == 2:
                return tf.series[0].asarray()[None]
            return tf.series[0].asarray(key=slice(i, j)).reshape(j - i, *self._parts[part][1:])
        except Exception as exc:
            raise MovieError(f"{self.source[part]}: cannot read frames {i}..{j - 1} "
                             f"(corrupt TIFF? {type(exc).__name__}: {exc})") from None

    def close(self) -> None:
        for tf in self._files:
            tf.close()


class HDF5Movie(Movie):
    """One 3D dataset per HDF5 file (path from `hdf5_dataset`, or the only 3D dataset)."""

    format = "hdf5"

    def __init__(self, paths: Sequence[str], dataset: str = ""):
        super().__init__(paths)
        import h5py
        self._h5, self._dsets = [], []
        dtypes = set()
        for path in self.source:
            try:
                f = h5py.File(path, "r")
            except Exception as exc:
                raise MovieError(f"{path}: not a readable HDF5 file ({exc})") from None
            name = dataset or self._only_3d(f, path)
            if name not in f or not isinstance(f[name], h5py.Dataset):
                cands = self._list_3d(f)
                f.close()
                raise MovieError(f"{path}: no dataset {name!r} (set 'hdf5_dataset'); 3D datasets in the file: "
                                 f"{cands or 'none'}")
            d = f[name]
            self._parts.append(_check_3d(d.shape, f"{path}:{name}", "dataset"))
            dtypes.add(_check_dtype(d.dtype, f"{path}:{name}"))
            self._h5.append(f)
            self._dsets.append(d)
        if len(dtypes) > 1:
            raise MovieError(f"{', '.join(self.source)}: datasets have different pixel types")
        self._dtype = dtypes.pop()
        self._finish_index()

    @staticmethod
    def _list_3d(f) -> list[str]:
        import h5py
        out = []
        f.visititems(lambda n, o: out.append("/" + n) if isinstance(o, h5py.Dataset) and o.ndim == 3 else None)
        return out

    def _only_3d(self, f, path) -> str:
        cands = self._list_3d(f)
        if len(cands) != 1:
            f.close()
            raise MovieError(f"{path}: set 'hdf5_dataset' to the movie's dataset path; "
                             f"3D datasets in the file: {cands or 'none'}")
        return cands[0]

    def _read(self, part, i, j):
        return self._dsets[part][i:j]

    def close(self):
        for f in self._h5:
            f.close()


class NWBMovie(Movie):
    """A TwoPhotonSeries or OnePhotonSeries in an NWB file's acquisition (read lazily)."""

    format = "nwb"

    def __init__(self, paths: Sequence[str], series_name: str = ""):
        super().__init__(paths)
        try:
            import pynwb
        except ImportError:
            raise MovieError(f"{self.source[0]}: reading NWB needs pynwb (pip install pynwb)") from None
        self._ios, self._data, self.rate, self.timestamps = [], [], None, None
        dtypes = set()
        for path in self.source:
            try:
                io = pynwb.NWBHDF5IO(path, "r", load_namespaces=True)
                nwb = io.read()
            except Exception as exc:
                raise MovieError(f"{path}: not a readable NWB file ({exc})") from None
            series = [s for s in nwb.acquisition.values()
                      if type(s).__name__ in ("TwoPhotonSeries", "OnePhotonSeries")]
            if series_name:
                series = [s for s in series if s.name == series_name]
            if len(series) != 1:
                io.close()
                raise MovieError(f"{path}: expected exactly one TwoPhotonSeries/OnePhotonSeries in acquisition"
                                 f"{' named ' + repr(series_name) if series_name else ''}; found "
                                 f"{[s.name for s in nwb.acquisition.values()]}")
            s = series[0]
            ext = [e.decode() if isinstance(e, bytes) else str(e) for e in (s.external_file or [])]
            if ext:   # frames live in linked files (e.g. TIFFs), named relative to the NWB file
                files = [str((Path(path).parent / e).resolve()) for e in ext]
                gone = [f for f in files if not Path(f).exists()]
                if gone:
                    io.close()
                    raise MovieError(f"{path}: {s.name}.external_file names {', '.join(gone)}: not found "
                                     "(paths are relative to the NWB file)")
                movie = open_movie(files)
                io.close()
                self._parts.append(movie.shape)
                dtypes.add(movie.dtype)
                self._data.append(movie)
            else:
                shape = tuple(s.data.shape) if s.data is not None else ()
                if len(shape) == 3 and 0 in shape:
                    io.close()
                    raise MovieError(f"{path}: /acquisition/{s.name} stores no frames (shape {shape}) and links no "
                                     "external_file; use the file's ROIs and traces (rois_from = 'nwb') or give the raw movie")
                self._parts.append(_check_3d(shape, f"{path}:{s.name}", "imaging series"))
                dtypes.add(_check_dtype(s.data.dtype, f"{path}:{s.name}"))
                self._ios.append(io)
                self._data.append(s.data)
            self.rate = s.rate
        self._dtype = dtypes.pop()
        self._finish_index()

    def _read(self, part, i, j):
        return np.asarray(self._data[part][i:j])

    def close(self):
        for io in self._ios:
            io.close()
        for d in self._data:
            if isinstance(d, Movie):
                d.close()


class MiniscopeMovie(Movie):
    """UCLA Miniscope v4 folder: 0.avi, 1.avi, ... (numeric order) and timeStamps.csv.

    Frames are read with OpenCV (or imageio) and reduced to one channel (they are grey).
    """

    format = "miniscope"

    def __init__(self, folder: str):
        folder = Path(folder)
        avis = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".avi" and p.stem.isdigit()),
                      key=lambda p: int(p.stem))
        if not avis:
            raise MovieError(f"{folder}: no numbered AVI files (0.avi, 1.avi, ...) in the Miniscope folder")
        super().__init__(avis)
        self.timestamps_file = str(folder / "timeStamps.csv") if (folder / "timeStamps.csv").is_file() else ""
        self._caps, self._pos = [], []
        for p in self.source:
            n, y, x = self._probe(p)
            self._parts.append((n, y, x))
            self._caps.append(None)
            self._pos.append(0)
        self._dtype = np.dtype("uint8")
        self._finish_index()

    @staticmethod
    def _open(path):
        import cv2
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            raise MovieError(f"{path}: cannot open AVI (unsupported codec or corrupt file)")
        return cap

    def _probe(self, path):
        import cv2
        cap = self._open(path)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, fr = cap.read()
        cap.release()
        if not ok or n <= 0:
            raise MovieError(f"{path}: AVI has no readable frames")
        return n, fr.shape[0], fr.shape[1]

    def _read(self, part, i, j):
        import cv2
        cap = self._caps[part]
        if cap is None:
            cap = self._caps[part] = self._open(self.source[part])
            self._pos[part] = 0
        if self._pos[part] != i:   # seek only when not reading sequentially
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        out = np.empty((j - i, *self._parts[part][1:]), np.uint8)
        for k in range(j - i):
            ok, fr = cap.read()
            if not ok:
                raise MovieError(f"{self.source[part]}: AVI ends at frame {i + k}; its header says "
                                 f"{self._parts[part][0]} frames (truncated file?)")
            out[k] = fr[..., 0] if fr.ndim == 3 else fr
        self._pos[part] = j
        return out

    def close(self):
        for c in self._caps:
            if c is not None:
                c.release()
        self._caps = [None] * len(self._caps)


class IsxdMovie(Movie):
    """Inscopix .isxd movie via Inscopix's `isx` package."""

    format = "isxd"

    def __init__(self, paths: Sequence[str]):
        super().__init__(paths)
        try:
            import isx
        except ImportError:
            raise MovieError(f"{self.source[0]}: reading Inscopix .isxd files needs Inscopix's 'isx' Python "
                             "package (pip install isx, or the Inscopix Data Processing software); "
                             "or export the movie to TIFF") from None
        self._movies = []
        for path in self.source:
            m = isx.Movie.read(path)
            n = m.timing.num_samples
            y, x = m.spacing.num_pixels
            self._parts.append((n, y, x))
            self._movies.append(m)
        self._dtype = _check_dtype(np.dtype(self._movies[0].data_type), self.source[0])
        self._finish_index()

    def _read(self, part, i, j):
        m = self._movies[part]
        return np.stack([m.get_frame_data(k) for k in range(i, j)])


class ArrayMovie(Movie):
    """An in-memory (T, Y, X) array behind the Movie interface (tests, simulators)."""

    format = "array"

    def __init__(self, data: np.ndarray, name: str = "<array>"):
        super().__init__([name])
        data = np.asarray(data)
        self._parts.append(_check_3d(data.shape, name, "array"))
        self._data = data.reshape(self._parts[0])
        self._dtype = _check_dtype(data.dtype, name)
        self._finish_index()

    def _read(self, part, i, j):
        return np.array(self._data[i:j])


# ---------------------------------------------------------------------------
def _expand(paths: Sequence[str]) -> list[Path]:
    out = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise MovieError(f"{p}: raw movie not found")
        out.append(p)
    return out


def detect_format(paths: Sequence[str | Path]) -> str:
    """Guess the reader from the file names (folders: Miniscope AVIs or TIFFs)."""
    p = Path(paths[0])
    if p.is_dir():
        names = [q.name.lower() for q in p.iterdir()]
        if any(n.endswith(".avi") for n in names):
            return "miniscope"
        if any(n.endswith(TIFF_SUFFIXES) for n in names):
            return "tiff"
        raise MovieError(f"{p}: folder holds neither TIFFs nor Miniscope AVIs")
    suf = p.suffix.lower()
    if suf in TIFF_SUFFIXES:
        return "tiff"
    if suf == ".nwb":
        return "nwb"
    if suf in HDF5_SUFFIXES:
        return "hdf5"
    if suf == ".isxd":
        return "isxd"
    if suf == ".avi":
        return "miniscope"
    raise MovieError(f"{p}: unknown movie format {suf!r}; set 'raw_format' to one of {', '.join(FORMATS[1:])}")


def open_movie(paths: str | Path | Sequence[str | Path], format: str = "auto", hdf5_dataset: str = "") -> Movie:
    """Open raw movie file(s) lazily and read-only.

    paths: a file, a folder (TIFFs sorted naturally, or a Miniscope folder) or a list of files in order.
    format: one of 'auto', 'tiff', 'hdf5', 'nwb', 'miniscope', 'isxd'.
    Returns a Movie with shape (T, Y, X).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = _expand(paths)
    if format not in FORMATS:
        raise MovieError(f"{paths[0]}: unknown raw_format {format!r}; expected one of {', '.join(FORMATS)}")
    fmt = detect_format(paths) if format == "auto" else format
    if fmt == "miniscope":
        if len(paths) != 1 or not paths[0].is_dir():
            raise MovieError(f"{paths[0]}: a Miniscope recording is given as its folder (with 0.avi, 1.avi, ...)")
        return MiniscopeMovie(str(paths[0]))
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted((q for q in p.iterdir() if q.suffix.lower() in (TIFF_SUFFIXES if fmt == "tiff" else (q.suffix.lower(),))
                            and q.is_file() and not q.name.startswith(".")), key=natural_key)
            if not found:
                raise MovieError(f"{p}: folder holds no {fmt} files")
            files += found
        else:
            files.append(p)
    names = [str(f) for f in files]
    if fmt == "tiff":
        return TiffMovie(names)
    if fmt == "hdf5":
        return HDF5Movie(names, hdf5_dataset)
    if fmt == "nwb":
        return NWBMovie(names)
    if fmt == "isxd":
        return IsxdMovie(names)
    raise MovieError(f"{paths[0]}: unsupported format {fmt!r}")


# ---------------------------------------------------------------------------
def read_timestamps(path: str | Path) -> np.ndarray:
    """Frame times (s) from a timestamps CSV.

    Accepts the interbrain layout (columns frame, time_s; frame = raw frame index, so
    gaps in `frame` are dropped frames) and Miniscope's timeStamps.csv
    ('Frame Number', 'Time Stamp (ms)'). Returns (n_rows,) float seconds, in file order.
    """
    import pandas as pd
    try:
        df = pd.read_csv(path)
    except Exception as exc:
        raise MovieError(f"{path}: not a readable CSV ({exc})") from None
    cols = {c.strip().lower(): c for c in df.columns}
    if "time_s" in cols:
        t = df[cols["time_s"]].to_numpy(float)
    elif "time stamp (ms)" in cols:
        t = df[cols["time stamp (ms)"]].to_numpy(float) / 1000.0
    else:
        raise MovieError(f"{path}: timestamps need columns 'frame, time_s' (or Miniscope's 'Frame Number, "
                         f"Time Stamp (ms)'); found {list(df.columns)}")
    if np.isnan(t).any():
        raise MovieError(f"{path}: 'time_s' has empty or non-numeric values (row {int(np.argmax(np.isnan(t))) + 2})")
    if np.any(np.diff(t) <= 0):
        k = int(np.argmax(np.diff(t) <= 0))
        raise MovieError(f"{path}: frame times must increase; row {k + 3} ({t[k + 1]} s) is not after row {k + 2} ({t[k]} s)")
    return t


def check_timestamps(movie: Movie, timestamps_csv: str | Path) -> np.ndarray:
    """Frame times (T,) s for `movie`; raises MovieError if the CSV's row count differs from the frame count."""
    t = read_timestamps(timestamps_csv)
    if len(t) != len(movie):
        raise MovieError(f"{timestamps_csv}: {len(t)} timestamps but the movie "
                         f"({', '.join(Path(s).name for s in movie.source[:3])}{' ...' if len(movie.source) > 3 else ''}) "
                         f"has {len(movie)} frames; expected one row per recorded frame")
    return t
