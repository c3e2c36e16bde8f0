"""Stage registry and runner: fingerprints, atomic commits, resume.

A stage is a function `run(ctx) -> xarray.DataTree` registered with
`@stage(name, needs=..., params=..., reads=..., inputs=...)`. Its result is committed to
`OUT/stages/<name>/` (result.nc + done.json) by writing a temporary folder (files and
folder fsynced) and renaming it into place, so a killed run never leaves a half-written result.
A stage is skipped when its fingerprint matches the committed one: code version, the resolved
values of every setting it declares it reads (`params` sections and `reads` keys, checked
against the parameter spec), the content hashes of its raw input files, and its upstream
fingerprints.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import xarray as xr

from pipeline.core import dataset, provenance
from pipeline.core.animals import ANIMALS
from pipeline.core.parameters import SPEC
from pipeline.core.session import Session
from pipeline.core.tracking import tracked_session

log = logging.getLogger("interbrain")


@dataclass
class Stage:
    name: str
    func: Callable
    needs: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    inputs: Callable[[Session, Path], list[str]] | None = None  # (session, out) -> raw files read
    version: str = "1"
    wants: tuple[str, ...] = ()   # soft dependencies: used when they ran, not required (e.g. behaviour)
    reads: tuple[str, ...] = ()   # session settings read: "SECTION" (every key) or "SECTION.key"

    def __post_init__(self):
        self.read_keys()   # an unknown section or key is a bug: fail at registration

    def read_keys(self) -> dict[str, tuple[str, ...]]:
        """{spec section: keys} of every setting this stage reads, expanded from the spec.

        The `params` sections (passed to the stage as ctx.params) are read whole.
        """
        out: dict[str, list[str]] = {}
        for sel in tuple(self.params) + tuple(self.reads):
            sec, _, key = sel.partition(".")
            if sec not in SPEC:
                raise ValueError(f"stage {self.name!r} reads {sel!r}: no section {sec!r} in the parameter spec "
                                 f"(sections: {', '.join(SPEC)})")
            known = [p.name for p in SPEC[sec].params]
            if key and key not in known:
                raise ValueError(f"stage {self.name!r} reads {sel!r}: section {sec!r} has no key {key!r} "
                                 f"(keys: {', '.join(known)})")
            keys = out.setdefault(sec, [])
            keys += [k for k in (known if not key else [key]) if k not in keys]
        return {sec: tuple(k for k in (p.name for p in SPEC[sec].params) if k in keys) for sec, keys in out.items()}


REGISTRY: dict[str, Stage] = {}
# Warnings raised from the project's own packages are collected into provenance and the report.
_OWN_CODE = tuple(str(Path(__file__).resolve().parents[1] / p) for p in ("pipeline", "neuroid", "behavior"))


def stage(name: str, needs: Iterable[str] = (), params: Iterable[str] = (), inputs=None,
          version: str = "1", wants: Iterable[str] = (), reads: Iterable[str] = ()):
    """Register a stage function. See docs/design.md.

    needs: stages whose results this one requires; wants: stages it uses when they produced a result
    (a skipped wanted stage, e.g. behaviour of a session without annotations, does not skip this one).
    params: parameter sections passed whole as ctx.params. reads: every other session setting the
    stage (or code it calls) reads, as "SECTION" or "SECTION.key" with spec section names, e.g.
    "animal.timestamps", "annotations", "clock", "task", "session.seed" (ctx.seed and ctx.rng read it).
    A setting read but not declared is invisible to resume: tests/test_resume.py records every read
    of a real run and checks it is declared. inputs: (session, out) -> raw files, hashed by content.
    """
    def deco(func):
        REGISTRY[name] = Stage(name, func, tuple(needs), tuple(params), inputs, version, tuple(wants), tuple(reads))
        return func
    return deco


def order(stages: dict[str, Stage]) -> list[str]:
    """Topological order, ties broken by registration order."""
    done, out = set(), []
    names = list(stages)

    def visit(n, path=()):
        if n in done:
            return
        if n in path:
            raise RuntimeError(f"stage cycle: {' -> '.join(path + (n,))}")
        if n not in stages:
            raise RuntimeError(f"stage {path[-1] if path else '?'} needs unknown stage {n!r}")
        for m in stages[n].needs + tuple(w for w in stages[n].wants if w in stages):
            visit(m, path + (n,))
        done.add(n)
        out.append(n)

    for n in names:
        visit(n)
    return out


class StageSkipped(Exception):
    """Raised by a stage that has nothing to do (e.g. no annotations given); recorded, not an error."""


@dataclass
class StageContext:
    session: Session
    out: Path
    stage: Stage
    params: dict
    workdir: Path
    warnings: list[str] = field(default_factory=list)
    show_progress: bool = True

    @property
    def seed(self) -> int:
        return self.session.seed

    def rng(self, name: str = "") -> np.random.Generator:
        """A generator derived from the session seed, the stage and `name` (stable across runs)."""
        key = [self.session.seed] + [ord(c) for c in f"{self.stage.name}/{name}"]
        return np.random.default_rng(key)

    registry: dict = field(default_factory=dict)

    def upstream(self) -> xr.DataTree:
        """Merged DataTree of every committed stage this one depends on (transitively)."""
        return dataset.load(self.out, stages=_ancestors(self.registry or REGISTRY, self.stage.name))

    def progress(self, iterable, desc: str = "", total: int | None = None):
        from tqdm.auto import tqdm
        return tqdm(iterable, desc=f"{self.stage.name}: {desc}", total=total,
                    disable=not self.show_progress, leave=False)

    def warn(self, msg: str) -> None:
        log.warning("%s: %s", self.stage.name, msg)
        self.warnings.append(msg)


def _ancestors(stages: dict[str, Stage], name: str) -> list[str]:
    out, todo = [], list(stages[name].needs + stages[name].wants)
    while todo:
        n = todo.pop()
        if n not in out and n in stages:
            out.append(n)
            todo += list(stages[n].needs + stages[n].wants)
    return out


def stage_dir(out: Path, name: str) -> Path:
    return Path(out) / "stages" / name


def read_record(out: Path, name: str) -> dict | None:
    p = stage_dir(out, name) / "done.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _recover(out: Path, stages: Iterable[str] | None = None) -> None:
    """Undo the effects of a run of `stages` (None: every stage) killed mid-commit; drop their temp folders.

    Only each named stage's own `.tmp-<stage>-*` and `.old-<stage>` are touched: in a batch, other
    stages of the same session may be running (or committing) at the same time in other processes.
    """
    sdir = Path(out) / "stages"
    if not sdir.is_dir():
        return
    wanted = None if stages is None else set(stages)
    for p in sdir.iterdir():
        if p.name.startswith(".old-"):
            name = p.name[len(".old-"):]
            if wanted is not None and name not in wanted:
                continue
            if not (sdir / name).exists():
                p.rename(sdir / name)   # the new result never landed: keep the previous one
            else:
                shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(".tmp-"):
            # mkdtemp names them .tmp-<stage>-<random>; stage names hold no '-'
            name = p.name[len(".tmp-"):].rsplit("-", 1)[0]
            if wanted is None or name in wanted:
                shutil.rmtree(p, ignore_errors=True)


def _commit(tmp: Path, final: Path) -> None:
    """Atomically replace `final` with `tmp` (two renames; _recover handles a kill in between)."""
    old = final.parent / f".old-{final.name}"
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


class _HashCache:
    def __init__(self, out: Path):
        self.path = Path(out) / "stages" / ".hashes.json"
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            self.data = {}

    def save(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        dataset.atomic_write_text(self.path, json.dumps(self.data, indent=0))


def _section_tables(session: Session, sec: str):
    """The resolved tables of spec section `sec` in `session`: a dict, or a list/dict of dicts."""
    kind = SPEC[sec].kind
    if kind == "animal":
        return {a: session.animals[a] for a in ANIMALS}
    if kind == "array":
        return getattr(session, sec)
    if kind == "named":
        return session.clocks
    return session.params[sec] if sec in session.params else getattr(session, sec)


def _hashable(session: Session, sec: str, key: str, value):
    """Paths are hashed relative to the session file (moving a whole session folder is no change;
    the files' contents are hashed separately as raw inputs)."""
    typ = SPEC[sec].param(key).type
    rel = lambda v: os.path.relpath(v, session.root) if v else v   # noqa: E731
    if typ in ("path", "dir"):
        return rel(value)
    if typ == "paths":
        return [rel(v) for v in value]
    return value


def read_values(st: Stage, session: Session) -> dict:
    """The resolved values of every setting `st` declares it reads, by spec section.

    Tables of kind animal/named give {name: {key: value}}, arrays [{key: value}, ...].
    """
    out = {}
    for sec, keys in st.read_keys().items():
        tables = _section_tables(session, sec)
        pick = lambda t: {k: _hashable(session, sec, k, t[k]) for k in keys}   # noqa: E731
        if isinstance(tables, list):
            out[sec] = [pick(t) for t in tables]
        elif SPEC[sec].kind in ("animal", "named"):
            out[sec] = {n: pick(t) for n, t in tables.items()}
        else:
            out[sec] = pick(tables)
    return out


def _input_key(path: str, session: Session, out: Path) -> str:
    """A raw input's name in the fingerprint: relative to the result folder (files the user puts
    there, e.g. curation.csv) or to the session file, so that moving or copying a session folder
    with its result is no change (contents are hashed)."""
    p = Path(path)
    try:
        return "OUT/" + p.relative_to(Path(out).resolve()).as_posix()
    except ValueError:
        return os.path.relpath(p, session.root)


def fingerprint(st: Stage, session: Session, input_hashes: dict, upstream_fps: dict,
                out: str | Path | None = None) -> str:
    out = Path(out or session.output_dir)
    return provenance.hash_json({
        "stage": st.name, "version": st.version, "reads": read_values(st, session),
        "inputs": {_input_key(p, session, out): h for p, h in sorted(input_hashes.items())},
        "upstream": upstream_fps,
    })


def input_hashes(st: Stage, session: Session, out: Path, cache: dict) -> dict[str, str]:
    """{path: content hash} of the raw files `st` reads that exist (cache: path -> stat/hash memo)."""
    files = [str(p) for p in (st.inputs(session, out) if st.inputs else []) if p]
    return {p: provenance.hash_file(p, cache) for p in files if Path(p).exists()}


def plan(session: Session, registry: dict[str, Stage], out: str | Path | None = None,
         cache: dict | None = None) -> dict[str, str]:
    """{stage: fingerprint} every stage would have if all of them ran (nothing is run or written).

    Two sessions give a stage different fingerprints exactly when a run of one on the other's
    result would rerun it. cache: file-hash memo shared between calls (see provenance.hash_file).
    """
    out = Path(out or session.output_dir)
    cache = {} if cache is None else cache
    fps: dict[str, str] = {}
    for name in order(registry):
        st = registry[name]
        used = st.needs + tuple(w for w in st.wants if w in registry)
        fps[name] = fingerprint(st, session, input_hashes(st, session, out, cache), {n: fps[n] for n in used}, out)
    return fps


def _fsync_path(path: Path) -> None:
    """Flush a file's or folder's data and metadata to disk (a folder: its entries)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every file and folder under `root`, and `root` itself: a commit renames only durable data."""
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            _fsync_path(Path(dirpath) / f)
        _fsync_path(Path(dirpath))


def _say(line: str) -> None:
    """One progress line on stderr, printed above any tqdm bar rather than through it."""
    from tqdm.auto import tqdm
    tqdm.write(line, file=sys.stderr)


def run(session: Session, out: str | Path | None = None, only: Iterable[str] | None = None,
        force: bool = False, show_progress: bool = True,
        registry: dict[str, Stage] | None = None, track_reads: dict[str, set] | None = None) -> dict[str, str]:
    """Run (or resume) the pipeline. Returns {stage: 'ran' | 'up to date' | 'skipped: why'}.

    only: run just these stages (their upstream must already be committed or be included).
    force: rerun the selected stages even when up to date (and, as always, what depends on them).
    registry: the stages to run (default: every registered stage; `pipeline.stages.run` registers
    the pipeline's own).
    track_reads: when a dict, each stage that runs sees a session whose tables record every key
    read, as track_reads[stage] = {(spec section, key)} (the ground truth for `reads`; see tracked_session).
    A failing stage raises; the stages committed before it stay committed.
    """
    stages = registry if registry is not None else REGISTRY
    if not stages:
        raise RuntimeError("no stages registered: import pipeline.stages (or call pipeline.stages.run)")
    out = Path(out or session.output_dir)
    (out / "stages").mkdir(parents=True, exist_ok=True)
    names = order(stages)
    selected = set(names) if not only else set(only)
    unknown = selected - set(names)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}; stages are {names}")
    _recover(out, selected)   # only the stages this run may write (batch runs stages side by side)
    forced = selected if force else set()
    todo = [n for n in names if n in selected]
    hashes = _HashCache(out)
    fps: dict[str, str] = {}
    runs: dict[str, str] = {}   # run_id of each committed upstream result
    status: dict[str, str] = {}
    for name in names:
        st = stages[name]
        rec = read_record(out, name)
        if name not in selected:
            if rec and rec.get("status", "done") == "done":
                fps[name] = rec["fingerprint"]
                runs[name] = rec.get("run_id", "")
            continue
        missing = [n for n in st.needs if n not in fps]
        if missing:
            skipped_up = [n for n in missing if status.get(n, "").startswith("skipped")]
            if skipped_up:
                status[name] = f"skipped: upstream {skipped_up} skipped"
                continue
            raise RuntimeError(f"stage {name!r} needs {missing}, which have no committed result in {out}")
        in_hashes = input_hashes(st, session, out, hashes.data)
        hashes.save()
        used = st.needs + tuple(w for w in st.wants if w in fps)
        fp = fingerprint(st, session, in_hashes, {n: fps[n] for n in used}, out)
        upstream_runs = {n: runs[n] for n in used}
        # Up to date: same inputs and parameters, and no upstream result recommitted since.
        if (rec and rec.get("fingerprint") == fp and rec.get("upstream_runs", {}) == upstream_runs
                and name not in forced):
            if rec.get("status", "done") == "done":
                runs[name] = rec.get("run_id", "")
                fps[name] = fp
                status[name] = "up to date"
            else:
                status[name] = rec["status"]
            continue
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=out / "stages"))
        view, params = session, {s: session.params[s] for s in st.params}
        if track_reads is not None:
            view, params = tracked_session(session, track_reads.setdefault(name, set()), st.params)
        ctx = StageContext(view, out, st, params, tmp / "work", show_progress=show_progress, registry=stages)
        ctx.workdir.mkdir()
        log.info("stage %s: running", name)
        t_start = time.perf_counter()
        if show_progress:
            # stages that run in worker processes (motion, extraction) draw no bar of their own:
            # this line is what the user sees during the longest minutes of a run
            _say(f"{name}: running (stage {todo.index(name) + 1} of {len(todo)}) ...")
        prov = provenance.record({s: session.params[s] for s in st.params}, in_hashes, session.seed, name, fp)
        prov["session"] = session.to_dict()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("default")
                try:
                    tree = st.func(ctx)
                    result_status = "done"
                except StageSkipped as exc:
                    tree, result_status = None, f"skipped: {exc}"
            for w in caught:
                if issubclass(w.category, UserWarning) and str(w.filename).startswith(_OWN_CODE):
                    ctx.warnings.append(str(w.message))
            prov["warnings"] = ctx.warnings
            prov["status"] = result_status
            if tree is not None:
                dataset.write_stage(tree, tmp / "result.nc", prov)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)   # the previous result, if any, stays committed
            raise
        if not any(ctx.workdir.iterdir()):
            ctx.workdir.rmdir()
        run_id = uuid.uuid4().hex
        (tmp / "done.json").write_text(json.dumps({"fingerprint": fp, "status": result_status, "run_id": run_id,
                                                   "upstream_runs": upstream_runs, **prov}, indent=1, default=str))
        _fsync_tree(tmp)                      # result.nc, done.json, work files and their folders
        _commit(tmp, stage_dir(out, name))
        _fsync_path(out / "stages")           # the renames themselves
        status[name] = result_status if result_status != "done" else "ran"
        if show_progress:
            _say(f"{name}: {status[name]} in {time.perf_counter() - t_start:.0f} s")
        if result_status == "done":
            fps[name] = fp
            runs[name] = run_id
    dataset.write_root(out, session)
    return status
