"""One entry point for every annotation format: `read_annotations`.

    events = read_annotations("behavior/boris_events.csv", "boris",
                              subjects={"mouse1": "A", "mouse2": "B"})

returns the event table of docs/design.md (see behavior/events.py), times
in seconds on the file's own clock. The formats and their options are
described in docs/behavior_formats.md.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from pipeline.core.parameters.session import ANNOTATION_FORMATS

from . import annot, boris, generic, pose, simba
from .events import AnnotationError, check_known_behaviors, check_options, validate_events

# format -> (reader, allowed option keys); one per format of the spec's [[annotations]] format choices
READERS = {
    "boris": (boris.read_boris, boris.OPTIONS),
    "boris_aggregated": (boris.read_boris_aggregated, boris.OPTIONS),
    "annot": (annot.read_annot, annot.OPTIONS),
    "simba": (simba.read_simba, simba.OPTIONS),
    "dlc": (pose.read_pose_annotations, pose.OPTIONS),
    "csv": (generic.read_generic, generic.OPTIONS),
}
FORMATS = ANNOTATION_FORMATS


def read_annotations(path, format: str = "boris", subjects: Mapping[str, str] | None = None, animal: str = "",
                     options: Mapping | None = None, known_behaviors: Iterable[str] | None = None,
                     clock: str = "video") -> pd.DataFrame:
    """Read one annotation file into an event table.

    path: the file (opened read-only). format: one of FORMATS.
    subjects: the file's subject/individual/channel names -> 'A'/'B'.
    animal: the animal of a single-animal file ('' if none).
    options: format-specific settings; {repair = true} turns documented
    repairs on (each listed in attrs["repairs"]) instead of errors.
    known_behaviors: when given, any other label is an error.
    clock: the clock name stored in attrs["clock"].

    Returns a DataFrame with columns animal, behavior, start, stop (s),
    kind, source, line, sorted by start.
    """
    if format not in READERS:
        raise AnnotationError(path, f"unknown annotation format {format!r}; formats: {', '.join(FORMATS)}")
    if animal not in ("", "A", "B"):
        raise AnnotationError(path, f"'animal' must be 'A', 'B' or empty, got {animal!r}")
    bad = {k: v for k, v in (subjects or {}).items() if v not in ("A", "B")}
    if bad:
        raise AnnotationError(path, f"'subjects' must map names to 'A' or 'B', got {bad}")
    if not Path(path).is_file():
        raise AnnotationError(path, "annotation file not found")
    reader, allowed = READERS[format]
    opts = check_options(path, format, options, allowed)
    df = reader(path, subjects=dict(subjects or {}), animal=animal, options=opts, clock=clock)
    check_known_behaviors(df, known_behaviors, path)
    validate_events(df, str(path))
    df.attrs["format"] = format
    return df
