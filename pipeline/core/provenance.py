"""Provenance: what produced a result (config, input hashes, versions, seed, time)."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

_PACKAGES = ("interbrain", "numpy", "scipy", "xarray", "h5netcdf", "suite2p", "torch", "scikit-learn",
             "pandas", "tifffile", "pynwb", "dask", "napari")
_CHUNK = 1 << 22


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def hash_file(path: str | Path, cache: dict | None = None) -> str:
    """sha256 of a file, or of every file under a folder (sorted), as 'sha256:<hex>'.

    `cache` maps (path, size, mtime_ns) keys to digests so unchanged multi-GB
    raw files are hashed once per result folder.
    """
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        key = f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        digest = cache.get(key) if cache is not None else None
        if digest is None:
            fh_hash = hashlib.sha256()
            with open(f, "rb") as fh:  # read-only: raw data is never modified
                while chunk := fh.read(_CHUNK):
                    fh_hash.update(chunk)
            digest = fh_hash.hexdigest()
            if cache is not None:
                cache[key] = digest
        h.update(f.name.encode() if path.is_dir() else b"")
        h.update(digest.encode())
    return "sha256:" + h.hexdigest()


def hash_json(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def record(config: dict, inputs: dict[str, str], seed: int, stage: str, fingerprint: str) -> dict:
    return {
        "stage": stage,
        "fingerprint": fingerprint,
        "config": config,
        "inputs": inputs,
        "seed": seed,
        "versions": package_versions(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "pid": os.getpid(),
    }
