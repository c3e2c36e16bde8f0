"""Open every input a session names, without running imaging: `interbrain validate --deep`.

`deep_check(session)` opens the raw movies (shape, pixel type, frame count against the
timestamps file), timestamps, structural images, label tables, every annotation file through
its importer, every clock (timestamps / sync fit), the task log, and then builds the behaviour
event table as the behaviour stage would. It reports every problem found, not just the first:
`InputProblems` (a ConfigError: exit code 2) lists one line per problem, each naming the file.

`interbrain run` calls `deep_check(session, movies=False)` (seconds) before motion correction,
so a bad BORIS file is reported before hours of imaging; `check_output_dir` checks `--out`.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pipeline.core.animals import ANIMALS
from pipeline.core.parameters import ConfigError


class InputProblems(ConfigError):
    """One or more inputs cannot be used; `problems` holds one line per problem."""

    def __init__(self, session_path, problems: list[str]):
        self.problems = problems
        super().__init__(f"{session_path}: {len(problems)} input problem(s):\n"
                         + "\n".join(f"  {p}" for p in problems))


def _line(key: str, path: str, exc: BaseException) -> str:
    """`key: message`, the message naming `path` (readers usually do; otherwise it is added)."""
    msg = str(exc).strip() or type(exc).__name__
    if path and str(path) not in msg:
        msg = f"{path}: {msg}"
    return f"{key}: {msg}"


class _Checks:
    def __init__(self):
        self.ok: list[str] = []
        self.problems: list[str] = []

    def run(self, key: str, path: str, fn) -> object:
        """fn() -> a description for the ok line; any exception becomes a problem line."""
        try:
            what = fn()
        except Exception as exc:   # a validator reports every failure, whatever its kind
            self.problems.append(_line(key, path, exc))
            return None
        self.ok.append(": ".join(x for x in (f"ok: {key}", Path(path).name if path else "", what) if x))
        return what


def _check_movie(cfg: dict) -> str:
    from pipeline.io.nwb import uses_nwb_segmentation
    from pipeline.io.readers import check_timestamps, open_movie
    if uses_nwb_segmentation(cfg):
        return "ROIs and traces from the NWB file's segmentation"
    movie = open_movie(cfg["raw"], cfg["raw_format"], cfg["hdf5_dataset"])
    with movie:
        T, Y, X = movie.shape
        if cfg["timestamps"]:
            check_timestamps(movie, cfg["timestamps"])
        return f"{T} frames of {Y} x {X} px, {movie.dtype}" + (", one timestamp each" if cfg["timestamps"] else "")


def _check_timestamps(path: str) -> str:
    from pipeline.io.readers import read_timestamps
    t = read_timestamps(path)
    return f"{len(t)} frame times"


def _check_structural(path: str) -> str:
    from neuroid.structural import load_structural
    img = load_structural(path)
    return f"{img.shape[0]} x {img.shape[1]} px"


def _check_label_table(path: str, animal: str, animal_id: str) -> str:
    from neuroid.table import read_label_table
    return f"{len(read_label_table(path, animal, animal_id).labels)} labels for this animal"


def _check_annotations(t: dict, p: dict) -> str:
    from behavior.importers import read_annotations
    options = dict(t["options"])
    if p["repair_unpaired"]:
        options.setdefault("repair", True)
    df = read_annotations(t["path"], t["format"], t["subjects"], t["animal"], options, p["behaviors"] or None,
                          clock=t["clock"])
    return f"{len(df)} events ({t['format']})"


def _check_clock(name: str, cfg: dict, tol: float) -> str:
    from behavior.clocks import clock_from_config
    clk = clock_from_config(name, cfg, tol)
    return str(clk.report.get("kind", ""))


def _check_task_log(session) -> str:
    from behavior.task import read_task_log
    log = read_task_log(session.task["log"], {session.animals[a]["id"]: a for a in ANIMALS})
    return f"{len(log)} task events"


def deep_check(session, movies: bool = True, behavior: bool = True, celltypes: bool = True) -> list[str]:
    """Open every input of `session`; the 'ok: ...' lines, or InputProblems listing every problem.

    movies: also open the raw movies (header and frame count; no frame is registered).
    behavior / celltypes: check the inputs of those stages (annotations, clocks, task log /
    structural images, label tables).
    """
    c = _Checks()
    for a in ANIMALS:
        cfg = session.animals[a]
        if movies:
            c.run(f"[animals.{a}] raw", ", ".join(cfg["raw"]), lambda cfg=cfg: _check_movie(cfg))
        elif cfg["timestamps"]:
            c.run(f"[animals.{a}] timestamps", cfg["timestamps"], lambda p=cfg["timestamps"]: _check_timestamps(p))
        if celltypes and cfg["structural"]:
            c.run(f"[animals.{a}] structural", cfg["structural"], lambda p=cfg["structural"]: _check_structural(p))
        if celltypes and cfg["label_table"]:
            c.run(f"[animals.{a}] label_table", cfg["label_table"],
                  lambda p=cfg["label_table"], a=a, i=cfg["id"]: _check_label_table(p, a, i))
    if behavior:
        p = session.params["behavior"]
        for i, t in enumerate(session.annotations):
            c.run(f"[[annotations]] #{i + 1}", t["path"], lambda t=t: _check_annotations(t, p))
        for name, cfg in session.clocks.items():
            c.run(f"[clocks.{name}]", cfg["timestamps"] or cfg["sync"],
                  lambda n=name, cfg=cfg: _check_clock(n, cfg, p["sync_tolerance_s"]))
        if session.task["log"]:
            c.run("[task] log", session.task["log"], lambda: _check_task_log(session))
        if not c.problems and (session.annotations or session.task["log"]):
            # every file reads on its own: now map them all to the master clock, as the stage does
            from pipeline.stages.behavior import build_events
            c.run("[behavior] events", "", lambda: f"{len(build_events(session, p, warn=lambda m: None)[0])} "
                                                   "events on the master clock")
    if c.problems:
        raise InputProblems(session.path, c.problems)
    return c.ok


def check_output_dir(out: str | Path) -> Path:
    """Create `out` (and parents) and check a file can be written there; ConfigError naming it if not."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise ConfigError(f"--out {out}: exists and is not a folder") from None
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(out) else ""
        raise ConfigError(f"--out {out}: cannot write a result there: {exc.strerror or exc}{where}") from None
    return out
