"""A real dask.distributed cluster for tests: `dask scheduler` and `dask worker` processes on 127.0.0.1.

The scheduler picks a free port itself (--port 0) and writes its address to a scheduler file; the
workers are separate processes started in their own working directory (not the client's), with
the repository on PYTHONPATH, as on a cluster whose nodes mount the same code and data.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREADS_1 = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


class DaskCluster:
    """`dask scheduler` + n `dask worker` processes (each one single-threaded worker under a nanny)."""

    def __init__(self, tmp: Path, n_workers: int = 2):
        self.tmp = Path(tmp)
        self.procs: list[subprocess.Popen] = []
        self.scheduler_file = self.tmp / "scheduler.json"
        self.worker_dir = self.tmp / "worker_cwd"
        self.worker_dir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, **THREADS_1,
                    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        try:
            self._launch(n_workers)
        except BaseException:
            self.close()
            raise

    def _launch(self, n_workers: int) -> None:
        self._start([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--no-dashboard", "--scheduler-file", str(self.scheduler_file)], "scheduler")
        self.address = self._wait_scheduler()
        for i in range(n_workers):
            self._start([sys.executable, "-m", "dask", "worker", "--scheduler-file", str(self.scheduler_file),
                         "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                         "--local-directory", str(self.tmp / f"scratch{i}"), "--name", f"w{i}"], f"worker{i}")
        with self.client() as c:
            c.wait_for_workers(n_workers, timeout=180)

    def _start(self, cmd: list[str], name: str) -> None:
        log = open(self.tmp / f"{name}.log", "w")
        # own process group: teardown kills the nanny and its worker process together
        self.procs.append(subprocess.Popen(cmd, cwd=self.worker_dir, env=self.env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True))

    def _wait_scheduler(self, timeout: float = 120) -> str:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.procs[0].poll() is not None:
                raise RuntimeError("dask scheduler exited: " + (self.tmp / "scheduler.log").read_text()[-2000:])
            try:
                return json.loads(self.scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.2)
        raise RuntimeError("dask scheduler did not start: " + (self.tmp / "scheduler.log").read_text()[-2000:])

    def client(self):
        from dask.distributed import Client
        return Client(self.address, timeout="60s")

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in reversed(self.procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
