"""`interbrain batch` on real dask clusters: separate `dask scheduler`/`dask worker` processes and a LocalCluster.

The batch result of a session must equal a one-by-one `interbrain run` array for array, also after a
worker is killed mid-stage and the batch is run again.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w

import pipeline
from pipeline.core import dataset
from pipeline.batch import plan, run_batch
from pipeline.core.parameters import ConfigError
from dask_cluster import ROOT, DaskCluster

SAMPLE = ROOT / "sample_data" / "pair01"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def batch_cli(*args, cwd: Path, **kw) -> subprocess.Popen:
    """`interbrain batch ...` from `cwd` (the client's working directory, not the workers')."""
    return subprocess.Popen([sys.executable, "-m", "pipeline", "batch", *map(str, args)], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finish(p: subprocess.Popen, timeout: float = 1800) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def read_summary(path: Path) -> dict[str, dict]:
    with open(path, newline="") as fh:
        return {r["name"] or r["session"]: r for r in csv.DictReader(fh)}


def arrays(out: Path, stages: list[str] | None = None) -> dict[str, np.ndarray]:
    tree = pipeline.load(out) if stages is None else dataset.load(out, stages=stages)
    return {f"{node.path}/{k}": v.values for node in tree.subtree for k, v in node.to_dataset().data_vars.items()}


def assert_same_arrays(ref_out: Path, out: Path, stages: list[str] | None = None) -> None:
    ref, got = arrays(ref_out, stages), arrays(out, stages)
    assert ref and set(ref) == set(got)
    for k in ref:
        if ref[k].dtype.kind in "fc":
            np.testing.assert_array_equal(ref[k], got[k], err_msg=k)
        else:
            assert ref[k].shape == got[k].shape and (ref[k] == got[k]).all(), k


def _copy(tmp: Path, name: str) -> Path:
    d = tmp / name
    shutil.copytree(SAMPLE, d, ignore=shutil.ignore_patterns("ground_truth"))
    doc = tomllib.loads((d / "session.toml").read_text())
    doc["session"]["name"] = name
    (d / "session.toml").write_text(tomli_w.dumps(doc))
    return d / "session.toml"


def _variant(session: Path, file: str, **session_keys) -> Path:
    """Another session file next to `session` (same raw files) with [session] keys changed."""
    doc = tomllib.loads(session.read_text())
    doc["session"].update(session_keys)
    p = session.parent / file
    p.write_text(tomli_w.dumps(doc))
    return p


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request):
    """A `dask scheduler` and two `dask worker` processes on 127.0.0.1, torn down after the module."""
    c = DaskCluster(tmp_path_factory.mktemp("dask"), n_workers=2)
    request.addfinalizer(c.close)
    return c


def test_batch_refuses_a_name_that_is_not_one_folder(tmp_path):
    good = _copy(tmp_path, "pairA")
    bad = _variant(good, "bad.toml", name="../escape")
    rc, out, err = finish(batch_cli(good, bad, "--out-root", tmp_path / "root", cwd=tmp_path))
    assert rc == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert str(bad) in err and "[session] name" in err and "one folder name" in err
    assert not (tmp_path / "escape").exists() and not (tmp_path / "root").exists()   # nothing ran
    for name in ("a/b", "a\\b", "..", ".", "", " "):
        _variant(good, "bad.toml", name=name)
        with pytest.raises(ConfigError, match=r"\[session\] name"):
            plan([bad], tmp_path / "root")
    assert plan([_variant(good, "ok.toml", name="pair 01.day-3")], tmp_path / "root")[0][0].out == \
        str((tmp_path / "root" / "pair 01.day-3").resolve())


def test_batch_refuses_two_sessions_writing_one_folder(tmp_path):
    a = _copy(tmp_path, "pairA")
    twin = _variant(a, "twin.toml")   # same name
    rc, _, err = finish(batch_cli(a, twin, "--out-root", tmp_path / "root", cwd=tmp_path))
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert str(a) in err and str(twin) in err and "unique [session] name" in err
    # without --out-root, each session's own output_dir is the folder: the same one is refused too
    other = _variant(a, "other.toml", name="other")
    with pytest.raises(ConfigError, match="output_dir"):
        run_batch([a, other])
    with pytest.raises(ConfigError, match="nonsense"):
        run_batch([a], stages=["motion", "nonsense"])
    assert not (tmp_path / "root").exists() and not (tmp_path / "pairA" / "results").exists()


def test_summary_written_when_every_session_fails(tmp_path, cluster):
    broken = _copy(tmp_path, "pairC")
    movie = broken.parent / "A" / "movie.tif"
    movie.write_bytes(movie.read_bytes()[:4096])   # truncated TIFF: motion fails on a worker
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    rc, out, err = finish(batch_cli(os.path.relpath(broken, client_dir), "../missing/session.toml",
                                    "--scheduler", cluster.address, "--out-root", "new/root",
                                    "--stages", "motion", cwd=client_dir))
    assert rc == 1, (out, err)
    rows = read_summary(client_dir / "new/root/batch_summary.csv")
    assert rows["pairC"]["status"] == "failed" and rows["pairC"]["stage"] == "motion"
    assert "movie.tif" in rows["pairC"]["error"], rows["pairC"]
    missing = rows[str((tmp_path / "missing/session.toml").resolve())]
    assert missing["status"] == "failed" and missing["stage"] == "config" and "not found" in missing["error"]


def test_batch_isolates_a_broken_session_on_a_local_cluster(tmp_path):
    good, broken = _copy(tmp_path, "pairA"), _copy(tmp_path, "pairC")
    movie = broken.parent / "A" / "movie.tif"
    movie.write_bytes(movie.read_bytes()[:4096])   # truncated TIFF
    rc, out, err = finish(batch_cli(good, broken, "--workers", "2", "--out-root", tmp_path / "batch",
                                    "--stages", "motion,extraction", cwd=tmp_path))
    assert rc == 1, (out, err)
    rows = read_summary(tmp_path / "batch" / "batch_summary.csv")
    assert rows["pairA"]["status"] == "ok" and rows["pairA"]["extraction"] == "ran", rows
    assert rows["pairC"]["status"] == "failed" and rows["pairC"]["stage"] == "motion"
    assert rows["pairC"]["extraction"] == "not run: motion failed"
    assert "movie.tif" in rows["pairC"]["error"], rows["pairC"]["error"]
    tree = pipeline.load(tmp_path / "batch" / "pairA")
    assert tree["A/traces"]["dff"].sizes["neuron"] > 0 and tree["B/traces"]["dff"].sizes["neuron"] > 0


def _wait_for(pred, timeout: float, what: str, proc: subprocess.Popen):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = pred()
        if got:
            return got
        if proc.poll() is not None:
            pytest.fail(f"batch ended before {what}:\n{proc.stdout.read()}\n{proc.stderr.read()}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


# Everything up to `align`: both imaging engines, the two independent branches that may run side by side
# (cell types and behaviour) and the stage that wants both. subspace/encoding/decoding only add minutes.
THROUGH_ALIGN = ["motion", "extraction", "celltypes", "behavior", "align"]


def test_batch_on_separate_workers_equals_run_and_resumes_after_a_worker_is_killed(demo_result, cluster, tmp_path):
    """The sample pair through `align` on two `dask worker` processes started in another working
    directory, one worker SIGKILLed in the middle of extraction; a second batch resumes. The result
    equals `interbrain run` of the same session (demo_result) array for array."""
    src, ref_out, _, _ = demo_result
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    session = os.path.relpath(src / "session.toml", client_dir)   # relative to the client only
    out = client_dir / "results" / "pair01"
    args = (session, "--scheduler", cluster.address, "--out-root", "results", "--stages", ",".join(THROUGH_ALIGN))
    p = batch_cli(*args, cwd=client_dir, start_new_session=True)
    with cluster.client() as c:
        def extraction_worker():
            if not list((out / "stages").glob(".tmp-extraction-*")):
                return None
            busy = [w for w, keys in c.processing().items() if any(str(k).startswith("extraction-") for k in keys)]
            return busy[0] if busy else None
        addr = _wait_for(extraction_worker, 1200, "extraction started", p)
        time.sleep(1.0)   # well inside the stage: suite2p is running
        pid = c.run(os.getpid, workers=[addr])[addr]
        os.kill(pid, signal.SIGKILL)
    rc1, log1, err1 = finish(p)
    # dask reschedules the killed task on the other worker; either way a second batch completes it
    assert rc1 in (0, 1), (log1, err1)
    first = read_summary(client_dir / "results" / "batch_summary.csv")["pair01"]
    rc2, log2, err2 = finish(batch_cli(*args, cwd=client_dir))
    assert rc2 == 0, (log2, err2)
    second = read_summary(client_dir / "results" / "batch_summary.csv")["pair01"]
    assert second["status"] == "ok" and second["session"] == str((src / "session.toml").resolve())
    for stage in THROUGH_ALIGN:
        if first[stage] == "ran":
            assert second[stage] == "up to date", (stage, first, second)   # resumed, not redone
    assert not [q for q in (out / "stages").iterdir() if q.name.startswith((".tmp", ".old"))]
    # `align` wants behaviour and cell types: it ran after both and used their committed results
    rec = {n: json.loads((out / "stages" / n / "done.json").read_text()) for n in ("align", "behavior", "celltypes")}
    assert rec["align"]["upstream_runs"]["behavior"] == rec["behavior"]["run_id"]
    assert rec["align"]["upstream_runs"]["celltypes"] == rec["celltypes"]["run_id"]
    assert_same_arrays(ref_out, out, THROUGH_ALIGN)
