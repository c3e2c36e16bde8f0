"""Batches of pair sessions on dask.distributed.

Each stage of each session is one task; a stage's task depends on its
upstream stages' tasks, so sessions run in parallel and a broken session
fails alone (its downstream tasks are cancelled, the others finish). A
LocalCluster is started by default; give a scheduler address to use an
existing cluster (e.g. dask-jobqueue on SLURM, docs/batch.md).
"""
from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

# Each worker process runs one task at a time with single-threaded BLAS/torch:
# parallelism comes from the workers, not from oversubscribed threads.
_THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}


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
    session: str
    stage: str
    out: str | None


def _run_stage(task: StageTask, *upstream) -> dict:
    """Run one stage of one session (its upstream results are committed by the tasks it depends on)."""
    pin_threads()
    from pipeline import stages as pipeline_stages
    from pipeline.core.session import Session
    s = Session.load(task.session)
    status = pipeline_stages.run(s, out=task.out, only=[task.stage], show_progress=False)
    return {"session": task.session, "stage": task.stage, "status": status.get(task.stage, "not run")}


def _validate(path: str) -> dict:
    from pipeline.core.session import Session
    s = Session.load(path)
    return {"session": path, "name": s.name, "out": str(s.output_dir)}


def run_batch(sessions: list[str | Path], scheduler: str | None = None, workers: int = 2,
              out_root: str | Path | None = None, stages: list[str] | None = None,
              summary_path: str | Path | None = None) -> pd.DataFrame:
    """Run many pair sessions; returns one row per session: name, status, failed stage, error, result dir.

    sessions: session TOML files. scheduler: address of an existing dask scheduler (None: LocalCluster
    with `workers` single-threaded worker processes). out_root: put each result in out_root/<name>
    (default: each session's own output_dir). A session whose file is invalid, or whose stage fails,
    is reported with its error; the others finish.
    """
    from dask.distributed import Client, LocalCluster, wait

    from pipeline import stages as pipeline_stages
    from pipeline.core import orchestrate

    registry = pipeline_stages.load_stages()
    names = [n for n in orchestrate.order(registry) if not stages or n in stages]
    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, env=_THREAD_ENV)
        client = Client(cluster)
    rows = []
    try:
        # Stage tasks of every session, wired by stage dependencies.
        futures: dict[tuple[str, str], object] = {}
        per_session: dict[str, dict] = {}
        for path in map(str, sessions):
            try:
                info = _validate(path)
            except Exception as exc:
                rows.append({"session": path, "name": "", "status": "failed", "stage": "config",
                             "error": f"{type(exc).__name__}: {exc}", "out": ""})
                continue
            out = str(Path(out_root) / info["name"]) if out_root else info["out"]
            per_session[path] = {**info, "out": out}
            for n in names:
                ups = [futures[(path, u)] for u in registry[n].needs if (path, u) in futures]
                futures[(path, n)] = client.submit(_run_stage, StageTask(path, n, out), *ups,
                                                   key=f"{info['name']}-{n}-{abs(hash(path)) % 10**8}", pure=False)
        wait(list(futures.values()))
        for path, info in per_session.items():
            row = {"session": path, "name": info["name"], "status": "ok", "stage": "", "error": "", "out": info["out"]}
            for n in names:
                f = futures[(path, n)]
                if f.status == "error":
                    exc = f.exception()
                    # a dependency's failure surfaces on every downstream task: report the first stage that failed
                    row.update(status="failed", stage=n, error=f"{type(exc).__name__}: {exc}",
                               traceback="".join(traceback.format_tb(f.traceback()))[-2000:])
                    break
                if f.status == "cancelled":
                    row.update(status="failed", stage=n, error="cancelled")
                    break
                res = f.result()
                if res["status"].startswith("skipped"):
                    row["status"] = "ok (some stages skipped)"
            rows.append(row)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    table = pd.DataFrame(rows, columns=["session", "name", "status", "stage", "error", "out", "traceback"])
    if summary_path:
        from pipeline.core.dataset import atomic_write_text
        atomic_write_text(summary_path, table.drop(columns="traceback").to_csv(index=False))
    return table
