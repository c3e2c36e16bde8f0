"""One user journey through the CLI only, with default settings (issue 17 item 6).

`interbrain simulate` 3 small pairs -> `validate` (`--deep` when the branch has it) -> `batch` on a
dask scheduler and workers started here -> change one annotation setting and `batch` again (exactly
the stages that read it, and their downstream, rerun) -> `study` -> `report`.

The journey runs once (module fixture) and records what each command did; the tests below check it,
so a failure in one step does not hide the others.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import tomli_w

from conftest import downstream
from dask_cluster import ROOT, DaskCluster

pytestmark = pytest.mark.slow   # three full pipeline runs: minutes (see docs/batch.md for the measured time)

PAIRS = ("pair01", "pair02", "pair03")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def interbrain(*args, cwd: Path, timeout: float = 3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def summary(path: Path) -> dict[str, dict]:
    with open(path, newline="") as fh:
        return {r["name"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def journey(tmp_path_factory, request):
    work = tmp_path_factory.mktemp("journey")
    cluster = DaskCluster(work / "dask", n_workers=2)
    request.addfinalizer(cluster.close)
    t0 = time.monotonic()
    rec: dict = {"times": {}}

    def step(key, *args, **kw):
        t = time.monotonic()
        r = interbrain(*args, cwd=work, **kw)
        rec[key] = r
        rec["times"][key] = time.monotonic() - t
        return r

    for i, name in enumerate(PAIRS):
        step(f"simulate {name}", "simulate", f"sessions/{name}", "--seed", i + 1)
    sessions = [f"sessions/{n}/session.toml" for n in PAIRS]
    deep = ["--deep"] if (ROOT / "pipeline" / "validate.py").exists() else []
    for s in sessions:
        step(f"validate {s}", "validate", s, *deep)
    batch = ["batch", *sessions, "--scheduler", cluster.address, "--out-root", "results"]
    step("batch", *batch)
    rec["summary1"] = summary(work / "results" / "batch_summary.csv")
    before = _behavior(work / "results" / "pair01")

    # A user notices the two subjects of pair01's BORIS file were mapped the wrong way round.
    toml = work / "sessions" / "pair01" / "session.toml"
    doc = tomllib.loads(toml.read_text())
    subj = doc["annotations"][0]["subjects"]
    doc["annotations"][0]["subjects"] = {k: {"A": "B", "B": "A"}[v] for k, v in subj.items()}
    toml.write_text(tomli_w.dumps(doc))
    step("rerun", *batch)
    rec["summary2"] = summary(work / "results" / "batch_summary.csv")
    rec["behavior"] = (before, _behavior(work / "results" / "pair01"))

    study = work / "study.toml"
    study.write_text(tomli_w.dumps({
        "study": {"name": "journey", "output_dir": "study_out"},
        "pairs": [{"result": f"results/{n}", "condition": c}
                  for n, c in zip(PAIRS, ("social", "social", "separated"))]}))
    step("study", "study", study)
    rec["study_out"] = work / "study_out"
    for n in PAIRS:
        step(f"report {n}", "report", f"results/{n}")
    rec["work"] = work
    rec["total_s"] = time.monotonic() - t0
    print(f"journey: {rec['total_s']:.0f} s wall; " + ", ".join(f"{k} {v:.0f} s" for k, v in rec["times"].items()))
    return rec


def _behavior(out: Path) -> set[tuple]:
    """The committed BORIS events of a result: {(animal, behaviour, start s, stop s)}."""
    from pipeline.core import dataset
    try:
        ev = dataset.load(out, stages=["behavior"])["behavior"].to_dataset()
    except Exception:
        return set()
    keep = ev["source"].values == "boris_events.csv"
    return set(zip(*(ev[k].values[keep].tolist() for k in ("animal", "behavior", "start", "stop"))))


def _ok(r: subprocess.CompletedProcess) -> str:
    return f"rc {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


def test_simulate_validate_and_batch_with_defaults(journey):
    for n in PAIRS:
        assert journey[f"simulate {n}"].returncode == 0, _ok(journey[f"simulate {n}"])
        r = journey[f"validate sessions/{n}/session.toml"]
        assert r.returncode == 0 and "ok:" in r.stdout, _ok(r)
    assert journey["batch"].returncode == 0, _ok(journey["batch"])
    from pipeline import stages
    every = set(stages.load_stages())
    for n in PAIRS:
        row = journey["summary1"][n]
        assert row["status"] == "ok", row
        assert {s for s in every if row[s] == "ran"} == every, row
    before, _ = journey["behavior"]
    assert {e[0] for e in before} == {"A", "B"}, before


def test_annotation_change_reruns_exactly_the_stages_that_read_it(journey):
    assert journey["rerun"].returncode == 0, _ok(journey["rerun"])
    from pipeline import stages
    every = set(stages.load_stages())
    affected = downstream({"behavior"})
    for n in PAIRS:
        row = journey["summary2"][n]
        ran = {s for s in every if row[s] == "ran"}
        assert ran == (affected if n == "pair01" else set()), (n, row)
        assert {s for s in every if row[s] == "up to date"} == every - ran, (n, row)
    before, after = journey["behavior"]
    # the subjects were swapped: every BORIS event now belongs to the other animal, at the same times
    assert after == {({"A": "B", "B": "A"}[a], b, t0, t1) for a, b, t0, t1 in before}


def test_study_on_results_made_with_defaults(journey):
    r = journey["study"]
    assert r.returncode == 0, _ok(r)
    out = journey["study_out"]
    with open(out / "table.csv", newline="") as fh:
        pairs = {row.get("pair") for row in csv.DictReader(fh)}
    assert set(PAIRS) <= pairs, pairs
    assert (out / "comparisons.csv").is_file()


def test_report_of_each_pair(journey):
    for n in PAIRS:
        r = journey[f"report {n}"]
        assert r.returncode == 0, _ok(r)
        html = journey["work"] / "results" / n / "report" / "report.html"
        assert html.is_file() and html.stat().st_size > 10_000
