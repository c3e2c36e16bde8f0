"""The whole pipeline on the committed sample pair: demo output, resume after a kill, raw inputs untouched."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

import pipeline
from pipeline.core import orchestrate
from pipeline import stages as pipeline_stages

from conftest import cli as _cli, sha_tree as _sha


def test_demo_output_loads_with_both_animals(demo_result):
    src, out, _, log = demo_result
    tree = pipeline.load(out)
    for a in ("A", "B"):
        act = tree[f"{a}/activity"]["activity"]
        assert act.dims == ("neuron", "time") and act.sizes["neuron"] > 0
        assert set(np.unique(act["cell_type"].values)) <= {"GABAergic", "glutamatergic", "unknown"}
        assert tree[f"{a}/behavior"]["self"].dims == ("behavior", "time")
    assert "K" in tree["subspace"].attrs
    assert (out / "report" / "report.html").is_file()
    statuses = {p.name: (p / "done.json").is_file() for p in (out / "stages").iterdir() if not p.name.startswith(".")}
    assert all(statuses.values()) and set(statuses) >= set(orchestrate.order(pipeline_stages.load_stages()))


def test_raw_inputs_unchanged_after_run(demo_result):
    src, _, before, _ = demo_result
    assert _sha(src) == before


def _arrays(out: Path) -> dict[str, np.ndarray]:
    tree = pipeline.load(out)
    got = {}
    for node in tree.subtree:
        for name, v in node.to_dataset().data_vars.items():
            got[f"{node.path}/{name}"] = v.values
    return got


@pytest.mark.parametrize("kill_in", [pytest.param("extraction", marks=pytest.mark.slow),
                                     pytest.param("subspace", marks=pytest.mark.slow), "encoding"])
def test_killed_run_resumes_to_identical_results(demo_result, tmp_path, kill_in):
    src, ref_out, _, _ = demo_result
    out = tmp_path / "result"
    p = _cli("run", str(src / "session.toml"), "--out", str(out), "--quiet", "--no-report",
             start_new_session=True)
    deadline = time.time() + 900
    while time.time() < deadline:
        if list((out / "stages").glob(f".tmp-{kill_in}-*")):
            break
        if p.poll() is not None:
            pytest.fail(f"run finished before stage {kill_in} started:\n{p.stdout.read()}")
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert not (out / "stages" / kill_in / "done.json").exists()
    r = _cli("run", str(src / "session.toml"), "--out", str(out), "--quiet", "--no-report")
    log, _ = r.communicate(timeout=1200)
    assert r.returncode == 0, log
    assert not [q for q in (out / "stages").iterdir() if q.name.startswith((".tmp", ".old"))]
    ref, got = _arrays(ref_out), _arrays(out)
    assert set(ref) == set(got)
    for k in ref:
        if ref[k].dtype.kind in "fc":
            np.testing.assert_array_equal(ref[k], got[k], err_msg=k)
        else:
            assert (ref[k] == got[k]).all(), k
