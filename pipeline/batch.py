"""Batches of pair sessions on dask.distributed.

Each stage of each session is one task; a stage's task depends on the tasks of
the stages it needs and wants (`@stage(needs=..., wants=...)`), so a session's
stages run in the same order as `interbrain run`, independent stages of one
session may run at the same time on different workers, sessions run in
parallel, and a broken session fails alone (its downstream tasks are not run,
the others finish). A LocalCluster is started by default; give a scheduler
address to use an existing cluster (e.g. dask-jobqueue on SLURM, docs/batch.md).

Everything a worker needs is resolved on the client: session files and result
folders are absolute paths, so workers started in another working directory
find them (the files must be on a file system every worker sees).
"""
from __future__ import annotations

import os
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.core.parameters import ConfigError

# Each worker process runs one task at a time with single-threaded BLAS/torch:
# parallelism comes from the workers, not from oversubscribed threads.
_THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}
SUMMARY_COLUMNS = ["session", "name", "status", "stage", "error", "out"]


def pin_threads() -> None:
    """Single-threaded BLAS and torch in this process (called in every task)."""
    os.environ.update(_THREAD_ENV)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:
        pass
    try:
        import torch
        torch.set_num_threads(1)
    except Exception:
        pass


@dataclass
class StageTask:
    session: str   # absolute path of the session TOML
    stage: str
    out: str       # absolute path of the result folder


def _run_stage(task: StageTask, *upstream) -> dict:
    """Run one stage of one session on a worker.

    `upstream` are the results of the tasks of the stages it needs and wants: passing them makes
    dask run this task only after those stages committed (or fail with their error).
    """
    pin_threads()
    from pipeline import stages as pipeline_stages
    from pipeline.core.session import Session
    s = Session.load(task.session)
    status = pipeline_stages.run(s, out=task.out, only=[task.stage], show_progress=False)
    return {"session": task.session, "stage": task.stage, "status": status.get(task.stage, "not run")}


def check_folder_name(name: str, where: str) -> None:
    """Raise ConfigError unless `name` is one plain folder name (it becomes OUT_ROOT/<name>)."""
    seps = {"/", "\\"} | ({os.sep, os.altsep} - {None})
    if (not name.strip() or name in (".", "..") or any(c in name for c in seps)
            or any(ord(c) < 32 for c in name)):
        raise ConfigError(f"{where} [session] name = {name!r}: batch writes each result to OUT_ROOT/<name>, "
                          "so the name must be one folder name (no '/', '\\', '.' or '..', not empty)")


@dataclass
class _Planned:
    path: str      # absolute session file
    name: str
    out: str       # absolute result folder


def plan(sessions: list[str | Path], out_root: str | Path | None) -> tuple[list[_Planned], list[dict]]:
    """Load every session on the client; returns (sessions to run, summary rows of unreadable ones).

    Raises ConfigError when a name is not a plain folder name (with out_root) or when two sessions
    would write to the same result folder: nothing has run then.
    """
    from pipeline.core.session import Session
    root = Path(out_root).resolve() if out_root is not None else None
    planned, failed = [], []
    for given in map(str, sessions):
        path = str(Path(given).resolve())
        try:
            s = Session.load(path)
        except Exception as exc:   # reported in the summary; the other sessions run
            failed.append({"session": path, "name": "", "status": "failed", "stage": "config",
                           "error": f"{type(exc).__name__}: {exc}", "out": ""})
            continue
        if root is not None:
            check_folder_name(s.name, path)
            out = root / s.name
        else:
            out = s.output_dir
        planned.append(_Planned(str(s.path), s.name, str(out)))
    seen: dict[str, _Planned] = {}
    for p in planned:
        # casefold: on macOS and Windows file systems `Pair1` and `pair1` are one folder
        key = os.path.normpath(p.out).casefold()
        if key in seen:
            first = seen[key]
            what = (f"the same [session] name {p.name!r}" if root is not None
                    else f"the same [session] output_dir {p.out!r}")
            raise ConfigError(f"{p.path}: {what} as {first.path}; every session of a batch needs its own "
                              f"result folder (give each a unique [session] name)")
        seen[key] = p
    return planned, failed


def _connect(scheduler: str):
    from dask.distributed import Client
    try:
        return Client(scheduler, timeout="30s")
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"--scheduler {scheduler}: no dask scheduler answered ({exc}); expected the "
                          "address of a running scheduler, e.g. tcp://host:8786") from None


def run_batch(sessions: list[str | Path], scheduler: str | None = None, workers: int = 2,
              out_root: str | Path | None = None, stages: list[str] | None = None,
              summary_path: str | Path | None = None) -> pd.DataFrame:
    """Run many pair sessions; returns one row per session.

    Columns: session (absolute path), name, status ('ok', 'ok (some stages skipped)' or 'failed'),
    stage (the first stage that failed), error, out (result folder), then one column per stage with
    what it did ('ran', 'up to date', 'skipped: why', 'failed', 'not run: ...'), and traceback.

    sessions: session TOML files. scheduler: address of an existing dask scheduler (None: LocalCluster
    with `workers` single-threaded worker processes). out_root: put each result in out_root/<name>
    (default: each session's own output_dir). stages: run only these (default: all).
    summary_path: write the table (without tracebacks) there as CSV, always, even when every session
    failed; its folder is created.
    Raises ConfigError (nothing run) for unknown stages, unsafe or duplicate names.
    """
    from pipeline import stages as pipeline_stages
    from pipeline.core import orchestrate

    registry = pipeline_stages.load_stages()
    order = orchestrate.order(registry)
    unknown = sorted(set(stages or ()) - set(order))
    if unknown:
        raise ConfigError(f"--stages: unknown stage(s) {', '.join(unknown)}; stages are {', '.join(order)}")
    names = [n for n in order if not stages or n in stages]
    planned, rows = plan(sessions, out_root)
    columns = SUMMARY_COLUMNS + names + ["traceback"]
    try:
        if planned:
            rows += _run(planned, names, registry, scheduler, workers)
    except BaseException as exc:
        # The scheduler went away or the user interrupted: say so for every session, then re-raise.
        rows += [{"session": p.path, "name": p.name, "status": "failed", "stage": "",
                  "error": f"batch interrupted: {type(exc).__name__}: {exc}", "out": p.out} for p in planned]
        raise
    finally:
        table = pd.DataFrame(rows, columns=columns).fillna("")
        if summary_path:
            from pipeline.core.dataset import atomic_write_text
            summary_path = Path(summary_path)
            summary_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(summary_path, table.drop(columns="traceback").to_csv(index=False))
    return table


def _run(planned: list[_Planned], names: list[str], registry: dict, scheduler: str | None,
         workers: int) -> list[dict]:
    from dask.distributed import Client, LocalCluster, wait

    if scheduler:
        client, cluster = _connect(scheduler), None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, env=_THREAD_ENV)
        client = Client(cluster)
    batch_id = uuid.uuid4().hex[:8]
    futures: dict[tuple[str, str], object] = {}
    try:
        for p in planned:
            for n in names:
                # needs AND wants: a wanted stage (behaviour, cell types) must have committed before
                # the stage that reads it when present, exactly as in `interbrain run`.
                ups = [futures[(p.path, u)] for u in registry[n].needs + registry[n].wants
                       if (p.path, u) in futures]
                futures[(p.path, n)] = client.submit(_run_stage, StageTask(p.path, n, p.out), *ups,
                                                     key=f"{n}-{p.name}-{batch_id}", pure=False)
        wait(list(futures.values()))
        return [_row(p, names, registry, futures) for p in planned]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _row(p: _Planned, names: list[str], registry: dict, futures: dict) -> dict:
    row = {"session": p.path, "name": p.name, "status": "ok", "stage": "", "error": "", "out": p.out,
           "traceback": ""}
    failed: set[str] = set()
    for n in names:
        f = futures[(p.path, n)]
        ups = [u for u in registry[n].needs + registry[n].wants if u in failed]
        if f.status == "finished":
            st = f.result()["status"]
            row[n] = st
            if st.startswith("skipped") and row["status"] == "ok":
                row["status"] = "ok (some stages skipped)"
            continue
        failed.add(n)
        if ups:
            # dask hands the upstream's error to every downstream task: this stage never ran
            row[n] = f"not run: {', '.join(ups)} failed"
            continue
        row[n] = "failed"
        if row["stage"]:
            continue   # an independent branch failed too; the first failure is the one reported
        if f.status == "error":
            exc = f.exception()
            row.update(status="failed", stage=n, error=f"{type(exc).__name__}: {exc}",
                       traceback="".join(traceback.format_tb(f.traceback()))[-2000:])
        else:
            row.update(status="failed", stage=n, error=str(f.status))
    return row
