"""Cell-type labels from tables: a histology/curation label table and the napari curation file.

Label table (`[animals.X] label_table`): CSV with columns `roi_id`, `label`
and optionally `animal` (A/B or the animal's id; rows of the other animal are
ignored). Labels are case-insensitive: GABAergic (also 'GABA', 'inhibitory'),
glutamatergic ('glu', 'glutamate', 'excitatory'), unknown.

Curation table (`OUT/curation.csv`, written by the napari plugin): columns
`animal`, `roi_id`, `label` (empty = keep), `is_cell` (true/false, empty = keep);
the last row for an ROI wins (docs/design.md).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.parameters import ConfigError

from .genotypes import GABA, GLU, UNKNOWN

_LABEL_ALIASES = {
    "gabaergic": GABA, "gaba": GABA, "inhibitory": GABA, "interneuron": GABA, "inh": GABA,
    "glutamatergic": GLU, "glu": GLU, "glut": GLU, "glutamate": GLU, "excitatory": GLU, "exc": GLU,
    "unknown": UNKNOWN, "unk": UNKNOWN, "?": UNKNOWN,
}
_BOOL = {"true": True, "1": True, "yes": True, "y": True, "t": True,
         "false": False, "0": False, "no": False, "n": False, "f": False}


@dataclass
class LabelTable:
    """Rows that apply to one animal: roi_id -> label / is_cell, and where each came from (file:line)."""

    path: str
    labels: dict[int, str] = field(default_factory=dict)
    is_cell: dict[int, bool] = field(default_factory=dict)
    where: dict[int, str] = field(default_factory=dict)

    def check_ids(self, roi_ids) -> None:
        """Raise ConfigError listing the table's roi ids that are not ROIs of the animal."""
        known = {int(r) for r in roi_ids}
        bad = sorted((set(self.labels) | set(self.is_cell)) - known)
        if bad:
            show = ", ".join(f"{r} ({self.where[r]})" for r in bad[:20]) + (" ..." if len(bad) > 20 else "")
            raise ConfigError(f"{self.path}: {len(bad)} roi_id(s) are not ROIs of this animal: {show}; "
                              f"the animal's roi ids are {min(known) if known else '-'}..{max(known) if known else '-'} "
                              f"({len(known)} ROIs)")


def parse_label(text: str, where: str) -> str:
    key = text.strip().lower()
    if key not in _LABEL_ALIASES:
        raise ConfigError(f"{where}: label {text!r} is not one of GABAergic, glutamatergic, unknown "
                          "(case-insensitive; also GABA/inhibitory, glu/excitatory)")
    return _LABEL_ALIASES[key]


def _read(path: str | Path, required: tuple[str, ...]) -> tuple[list[str], list[tuple[int, dict]]]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: label table not found")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip().lower() for c in (reader.fieldnames or [])]
        missing = [c for c in required if c not in cols]
        if missing:
            raise ConfigError(f"{path}: missing column(s) {missing}; expected a CSV header with "
                              f"{', '.join(required)} (found {cols or 'no header'})")
        rows = []
        for i, row in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
            if not any(row.values()):
                continue
            rows.append((i, row))
    return cols, rows


def _roi_id(text: str, where: str) -> int:
    try:
        f = float(text)
        if f != int(f):
            raise ValueError
        return int(f)
    except ValueError:
        raise ConfigError(f"{where}: roi_id {text!r} is not an integer") from None


def _mine(row: dict, names: set[str], has_animal: bool) -> bool:
    return not has_animal or row.get("animal", "") in names


def read_label_table(path: str | Path, animal: str = "A", animal_id: str = "") -> LabelTable:
    """Rows of `path` for `animal` (role A/B, or its id). Bad labels/ids raise ConfigError with file:line."""
    cols, rows = _read(path, ("roi_id", "label"))
    has_animal = "animal" in cols
    names = {animal, animal_id} - {""}
    out = LabelTable(str(path))
    for line, row in rows:
        if not _mine(row, names, has_animal):
            continue
        where = f"{path}:{line}"
        rid = _roi_id(row["roi_id"], where)
        out.labels[rid] = parse_label(row["label"], where)
        out.where[rid] = f"line {line}"
    return out


def read_curation(path: str | Path, animal: str = "A", animal_id: str = "") -> LabelTable:
    """The napari curation rows for `animal`: empty label/is_cell keep; the last row per ROI wins."""
    cols, rows = _read(path, ("animal", "roi_id", "label", "is_cell"))
    names = {animal, animal_id} - {""}
    out = LabelTable(str(path))
    for line, row in rows:
        if row["animal"] not in names:
            continue
        where = f"{path}:{line}"
        rid = _roi_id(row["roi_id"], where)
        out.where[rid] = f"line {line}"
        if row["label"]:
            out.labels[rid] = parse_label(row["label"], where)
        if row["is_cell"]:
            v = _BOOL.get(row["is_cell"].lower())
            if v is None:
                raise ConfigError(f"{where}: is_cell {row['is_cell']!r} must be true or false (or empty to keep)")
            out.is_cell[rid] = v
    return out
