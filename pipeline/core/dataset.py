"""The result directory as one xarray DataTree.

Each stage commits `stages/<name>/result.nc` (NetCDF4/HDF5 written by
h5netcdf); `load(DIR)` merges them into one tree. See docs/design.md for the
groups and variables.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import xarray as xr

FORMAT_VERSION = 1
ROOT_FILE = "interbrain.json"
ENGINE = "h5netcdf"


class NotAResultError(ValueError):
    """The folder is not an interbrain result (or is from an unsupported format version)."""


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to `path` via a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_stage(tree: xr.DataTree, path: Path, prov: dict) -> None:
    """Write a stage's DataTree to NetCDF with its provenance on every group."""
    if isinstance(tree, dict):
        tree = xr.DataTree.from_dict(tree)
    blob = json.dumps(prov, default=str)
    for node in tree.subtree:
        if node.has_data or node.attrs or node is not tree:
            node.attrs["provenance"] = blob
        node.attrs = _netcdf_attrs(node.attrs)
        for v in node.variables.values():
            v.attrs = _netcdf_attrs(v.attrs)
    tree.to_netcdf(path, engine=ENGINE)


def _netcdf_attrs(attrs: dict) -> dict:
    """NetCDF attributes hold numbers, strings and flat arrays: bools become 0/1, tables become JSON."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, bool) or (hasattr(v, "dtype") and getattr(v, "dtype", None) == bool):
            v = int(v) if isinstance(v, bool) else v.astype("int8")
        elif isinstance(v, (dict, type(None))) or (isinstance(v, (list, tuple)) and any(
                isinstance(x, (dict, list, tuple, type(None), bool)) for x in v)):
            v = json.dumps(v, default=str)
        out[k] = v
    return out


def write_root(out: str | Path, session) -> None:
    atomic_write_text(Path(out) / ROOT_FILE, json.dumps({
        "format": "interbrain-result", "format_version": FORMAT_VERSION,
        "pair": session.name, "session_file": str(session.path),
        "animals": {a: {k: d[k] for k in ("id", "sex", "genotype", "indicator", "modality")}
                    for a, d in session.animals.items()},
    }, indent=1))


def read_root(out: str | Path) -> dict:
    p = Path(out) / ROOT_FILE
    if not p.is_file():
        raise NotAResultError(f"{out}: not an interbrain result folder (no {ROOT_FILE}); run `interbrain run SESSION.toml` first")
    try:
        meta = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise NotAResultError(f"{p}: unreadable ({exc})") from None
    if meta.get("format") != "interbrain-result":
        raise NotAResultError(f"{p}: not an interbrain result file")
    v = meta.get("format_version")
    if v != FORMAT_VERSION:
        raise NotAResultError(
            f"{out}: result format version {v} is not supported by this interbrain (reads version {FORMAT_VERSION}); "
            "rerun `interbrain run` to rebuild it")
    return meta


def stage_files(out: str | Path) -> dict[str, Path]:
    sdir = Path(out) / "stages"
    if not sdir.is_dir():
        return {}
    return {p.name: p / "result.nc" for p in sorted(sdir.iterdir())
            if not p.name.startswith(".") and (p / "result.nc").is_file()}


def load(out: str | Path, stages: list[str] | None = None, lazy: bool = False) -> xr.DataTree:
    """The whole result in `out` as one DataTree (or only the named stages' groups).

    Data are read into memory unless lazy=True (then the files stay open).
    """
    out = Path(out)
    meta = read_root(out) if stages is None else {}
    groups: dict[str, xr.Dataset] = {}
    owner: dict[str, str] = {}
    for name, path in stage_files(out).items():
        if stages is not None and name not in stages:
            continue
        tree = xr.open_datatree(path, engine=ENGINE)
        if not lazy:
            tree = tree.load()
            tree.close()
        for node in tree.subtree:
            ds = node.to_dataset()
            if node.path == "/" and not ds.variables and set(ds.attrs) <= {"provenance"}:
                continue
            if node.path in groups and (ds.variables or groups[node.path].variables):
                if set(ds.variables) & set(groups[node.path].variables):
                    raise ValueError(f"{out}: group {node.path} written by both stage {owner[node.path]} and {name}")
                merged = xr.merge([groups[node.path], ds], combine_attrs="drop_conflicts")
                groups[node.path] = merged
            else:
                groups[node.path] = ds
                owner[node.path] = name
    root = groups.get("/", xr.Dataset())
    if meta:
        root.attrs.update({"format_version": meta["format_version"], "pair": meta["pair"],
                           "animals": json.dumps(meta["animals"])})
    groups["/"] = root
    return xr.DataTree.from_dict(groups)
