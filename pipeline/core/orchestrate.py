"""Stage registry and runner: fingerprints, atomic commits, resume.

A stage is a function `run(ctx) -> xarray.DataTree` registered with
`@stage(name, needs=..., params=..., inputs=...)`. Its result is committed to
`OUT/stages/<name>/` (result.nc + done.json) by writing a temporary folder and
renaming it into place, so a killed run never leaves a half-written result.
A stage is skipped when its fingerprint (code version, parameters, seed, raw
input hashes, upstream fingerprints) matches the committed one.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import xarray as xr

from pipeline.core import dataset, provenance
from pipeline.core.session import Session

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


REGISTRY: dict[str, Stage] = {}
# Warnings raised from the project's own packages are collected into provenance and the report.
_OWN_CODE = tuple(str(Path(__file__).resolve().parents[1] / p) for p in ("pipeline", "neuroid", "behavior"))


def stage(name: str, needs: Iterable[str] = (), params: Iterable[str] = (), inputs=None,
          version: str = "1", wants: Iterable[str] = ()):
    """Register a stage function. See docs/design.md.

    needs: stages whose results this one requires; wants: stages it uses when they produced a result
    (a skipped wanted stage, e.g. behaviour of a session without annotations, does not skip this one).
    """
    def deco(func):
        REGISTRY[name] = Stage(name, func, tuple(needs), tuple(params), inputs, version, tuple(wants))
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


def fingerprint(st: Stage, session: Session, input_hashes: dict, upstream_fps: dict) -> str:
    return provenance.hash_json({
        "stage": st.name, "version": st.version,
        "params": {s: session.params[s] for s in st.params},
        "seed": session.seed, "inputs": input_hashes, "upstream": upstream_fps,
        "animals": {a: {k: v for k, v in d.items() if k != "raw"} for a, d in session.animals.items()},
    })


def run(session: Session, out: str | Path | None = None, only: Iterable[str] | None = None,
        force: bool = False, show_progress: bool = True,
        registry: dict[str, Stage] | None = None) -> dict[str, str]:
    """Run (or resume) the pipeline. Returns {stage: 'ran' | 'up to date' | 'skipped: why'}.

    only: run just these stages (their upstream must already be committed or be included).
    force: rerun the selected stages even when up to date (and, as always, what depends on them).
    registry: the stages to run (default: every registered stage; `pipeline.stages.run` registers
    the pipeline's own).
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
        input_files = [str(p) for p in (st.inputs(session, out) if st.inputs else []) if p]
        input_hashes = {p: provenance.hash_file(p, hashes.data) for p in input_files if Path(p).exists()}
        hashes.save()
        used = st.needs + tuple(w for w in st.wants if w in fps)
        fp = fingerprint(st, session, input_hashes, {n: fps[n] for n in used})
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
        ctx = StageContext(session, out, st, {s: session.params[s] for s in st.params},
                           tmp / "work", show_progress=show_progress,
                           registry=stages)
        ctx.workdir.mkdir()
        log.info("stage %s: running", name)
        prov = provenance.record({s: session.params[s] for s in st.params}, input_hashes, session.seed, name, fp)
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
        _commit(tmp, stage_dir(out, name))
        status[name] = result_status if result_status != "done" else "ran"
        if result_status == "done":
            fps[name] = fp
            runs[name] = run_id
    dataset.write_root(out, session)
    return status
