"""The curation table `OUT/curation.csv`: manual ROI edits made in napari.

Contract (docs/design.md): columns `animal` (A/B), `roi_id` (int), `label`
(GABAergic / glutamatergic / unknown, or empty to keep the pipeline's),
`is_cell` (true / false, or empty to keep). The last row for an ROI wins.
The celltypes stage reads the file on the next `interbrain run`.

No Qt here: the widget calls this module, and tests use it directly.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.dataset import atomic_write_text
from pipeline.core.animals import ANIMALS

CURATION_FILE = "curation.csv"
COLUMNS = ("animal", "roi_id", "label", "is_cell")
CELL_TYPES = ("GABAergic", "glutamatergic", "unknown")
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


class CurationFileError(ValueError):
    """curation.csv does not follow the contract; the message names the file, row and field."""


@dataclass(frozen=True)
class Edit:
    """One row of the curation table. label/is_cell None means "keep"."""

    animal: str
    roi_id: int
    label: str | None = None
    is_cell: bool | None = None

    def __post_init__(self):
        if self.animal not in ANIMALS:
            raise ValueError(f"curation edit: animal must be one of {ANIMALS}, got {self.animal!r}")
        if self.label is not None and self.label not in CELL_TYPES:
            raise ValueError(f"curation edit: label must be one of {CELL_TYPES} or None, got {self.label!r}")
        if self.label is None and self.is_cell is None:
            raise ValueError("curation edit: give a label, is_cell, or both")

    def row(self) -> list[str]:
        return [self.animal, str(int(self.roi_id)), self.label or "",
                "" if self.is_cell is None else ("true" if self.is_cell else "false")]


def read_curation(path: str | Path) -> list[Edit]:
    """Rows of a curation table, in file order. A missing file is an empty table."""
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text()
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return []
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise CurationFileError(f"{path}: missing column(s) {missing}; expected header {','.join(COLUMNS)}")
    col = {c: header.index(c) for c in COLUMNS}
    edits = []
    for n, rec in enumerate(reader, start=2):
        if not rec or all(not v.strip() for v in rec):
            continue
        get = lambda c: rec[col[c]].strip() if col[c] < len(rec) else ""  # noqa: E731
        where = f"{path} line {n}"
        try:
            roi = int(get("roi_id"))
        except ValueError:
            raise CurationFileError(f"{where}: roi_id must be an integer, got {get('roi_id')!r}") from None
        flag = get("is_cell").lower()
        if flag and flag not in _TRUE | _FALSE:
            raise CurationFileError(f"{where}: is_cell must be true, false or empty, got {get('is_cell')!r}")
        label = get("label") or None
        try:
            edits.append(Edit(get("animal"), roi, label, None if not flag else flag in _TRUE))
        except ValueError as exc:
            raise CurationFileError(f"{where}: {exc}") from None
    return edits


def to_csv(edits: list[Edit]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for e in edits:
        w.writerow(e.row())
    return buf.getvalue()


def apply(edits: list[Edit], animal: str, roi_id: np.ndarray, cell_type: np.ndarray,
          is_cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pipeline's per-ROI labels with the edits applied (the last row for an ROI wins per field).

    roi_id, cell_type, is_cell: (neuron,) arrays. Returns new (cell_type, is_cell) arrays.
    Edits for ROI ids not in `roi_id` are ignored.
    """
    cell_type = np.asarray(cell_type, dtype=object).copy()
    is_cell = np.asarray(is_cell, dtype=bool).copy()
    index = {int(r): i for i, r in enumerate(np.asarray(roi_id))}
    for e in edits:
        i = index.get(e.roi_id) if e.animal == animal else None
        if i is None:
            continue
        if e.label is not None:
            cell_type[i] = e.label
        if e.is_cell is not None:
            is_cell[i] = e.is_cell
    return cell_type, is_cell


class CurationLog:
    """The curation table of one result folder, saved atomically after every edit.

    Rows already in the file are kept; `undo()` removes the last edit made
    through this log (earlier sessions' rows are never dropped).
    """

    def __init__(self, out: str | Path):
        self.path = Path(out) / CURATION_FILE
        self.edits: list[Edit] = read_curation(self.path)
        self._n_loaded = len(self.edits)

    def add(self, animal: str, roi_id: int, label: str | None = None, is_cell: bool | None = None) -> Edit:
        e = Edit(animal, int(roi_id), label, is_cell)
        self.edits.append(e)
        self.save()
        return e

    @property
    def can_undo(self) -> bool:
        return len(self.edits) > self._n_loaded

    def undo(self) -> Edit | None:
        """Drop the last edit of this session and save; None when there is nothing to undo."""
        if not self.can_undo:
            return None
        e = self.edits.pop()
        self.save()
        return e

    def save(self) -> None:
        atomic_write_text(self.path, to_csv(self.edits))

    def apply(self, animal, roi_id, cell_type, is_cell):
        return apply(self.edits, animal, roi_id, cell_type, is_cell)
