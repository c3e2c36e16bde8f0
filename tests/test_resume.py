"""Resume sees every setting a stage reads (issue 17, item 1).

1. Generated from the parameter spec: every key of every section/table, changed to another valid
   value, gives a new fingerprint to exactly the stages that declare they read it and their
   downstream stages (a new key is covered without editing this test).
2. Ground truth for "reads": a real run of a small simulated session records every session key
   each stage accesses; each must be declared.
3. The issue's cases through the CLI: swapping `subjects`, `[clocks.video] frame_rate` 30 -> 25,
   `format = "annot"` on a BORIS file rerun behaviour (and downstream) or fail clearly.
"""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from pipeline import stages as pipeline_stages
from pipeline.core import orchestrate
from pipeline.core.parameters import SPEC, ConfigError
from pipeline.core.session import Session
from pipeline.simulator import simulate_session

from conftest import downstream

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = pipeline_stages.load_stages()


# Fewer surrogates and decoders than the defaults: which stages rerun does not depend on them, and
# the default decoding stage alone takes minutes per run.
CHEAP = {"subspace": {"n_surrogates": 100, "n_subsamples": 2, "cell_type_surrogates": 20},
         "encoding": {"n_surrogates": 100},
         "decoding": {"n_repeats": 5, "n_surrogates": 20, "conditions": ["full"], "condition_surrogates": 0,
                      "n_jobs": 1}}


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    """A small simulated pair session (annotations, two clocks, task log): its session.toml."""
    path = Path(simulate_session(tmp_path_factory.mktemp("sim") / "pair", seed=3, preset="small"))
    doc = tomllib.loads(path.read_text())
    for sec, kv in CHEAP.items():
        doc.setdefault(sec, {}).update(kv)
    path.write_text(tomli_w.dumps(doc))
    return path


# ----------------------------------------------------------------------------- spec-generated

def _where(doc: dict, sec: str) -> list[dict]:
    """The tables of spec section `sec` in a session document (created empty when absent)."""
    kind = SPEC[sec].kind
    if kind == "animal":
        return [doc["animals"]["A"], doc["animals"]["B"]]
    if kind == "array":
        return doc[sec]
    if kind == "named":
        return list(doc["clocks"].values())
    return [doc.setdefault(sec, {})]


def _candidates(param, current, doc: dict) -> list:
    """Other values for `param`, most plausible first; the caller keeps the first valid one."""
    t, cur = param.type, current
    if t is bool:
        return [not cur]
    if param.choices is not None and t is str:
        return [c for c in param.choices if c != cur]
    if t in (int, float):
        lo, hi = param.range or (None, None)
        base = cur if cur is not None else (lo if lo is not None else 1)
        vals = [base + 1, base * 2, base / 2, lo, hi, (lo + hi) / 2 if None not in (lo, hi) else None]
        return [t(v) if t is int else float(v) for v in vals if v is not None]
    if t == "path":
        return ["elsewhere/other.csv"]
    if t == "dir":
        return ["elsewhere/results"]
    if t == "paths":
        return [["elsewhere/other.tif"]]
    if t is str:   # free strings; names of other tables (e.g. clocks) first
        return [n for n in doc.get("clocks", {}) if n != cur] + [f"{cur}_changed"]
    if t is list:
        if param.choices is not None:
            return [cur[:-1], list(param.choices[:1])]
        item = {str: "x", int: 3, float: 0.5}.get(param.item_type, "x")
        return [list(cur) + [item], [item] * max(1, len(cur)), list(reversed(cur))]
    if t is dict:
        swapped = dict(zip(cur, reversed(list(cur.values()))))
        return [swapped, {"key": "A"}, {"key": ["x"]}, {"key": 1.0}]
    raise AssertionError(f"no candidate values for type {t!r} of {param.name!r}: extend _candidates")


def _readers(sec: str, key: str) -> set[str]:
    return {n for n, st in REGISTRY.items() if key in st.read_keys().get(sec, ())}


ALL_KEYS = [(sec.name, p.name) for sec in SPEC.values() if sec.file == "session" for p in sec.params]


def _changed_session(sim: Path, sec: str, key: str) -> Session:
    """The simulated session with `sec.key` changed to another valid value in one of its tables."""
    base = tomllib.loads(sim.read_text())
    param = SPEC[sec].param(key)
    tried = []
    for i in range(len(_where(base, sec))):
        current = SPEC[sec].validate(_where(copy.deepcopy(base), sec)[i], "x")[key]
        for value in _candidates(param, current, base):
            if value == current:
                continue
            doc = copy.deepcopy(base)
            _where(doc, sec)[i][key] = value
            try:
                s = Session.from_dict(doc, sim, check_files=False)
            except ConfigError as exc:
                tried.append(f"{value!r}: {exc}")
                continue
            return s
    raise AssertionError(f"[{sec}] {key}: no valid other value found; tried {tried}")


HASHES: dict = {}   # raw-file hash memo shared by the tests below (the files do not change)


@pytest.fixture(scope="module")
def base_plan(sim) -> dict[str, str]:
    return orchestrate.plan(Session.load(sim), REGISTRY, sim.parent / "results", HASHES)


@pytest.mark.parametrize("sec,key", ALL_KEYS, ids=[f"{s}.{k}" for s, k in ALL_KEYS])
def test_each_setting_reruns_exactly_its_readers_and_downstream(sim, base_plan, sec, key):
    param = SPEC[sec].param(key)
    if param.choices is not None and len(param.choices) == 1 and param.type is str:
        pytest.skip(f"[{sec}] {key} has one allowed value, {param.choices[0]!r}: it cannot change")
    before = base_plan
    after = orchestrate.plan(_changed_session(sim, sec, key), REGISTRY, sim.parent / "results", HASHES)
    changed = {n for n in REGISTRY if before[n] != after[n]}
    assert changed == downstream(_readers(sec, key)), f"[{sec}] {key}"


def test_declarations_name_spec_keys():
    with pytest.raises(ValueError, match=r"section 'animal' has no key 'nope'"):
        orchestrate.Stage("x", lambda ctx: None, reads=("animal.nope",))
    with pytest.raises(ValueError, match=r"no section 'animals'"):
        orchestrate.Stage("x", lambda ctx: None, reads=("animals",))


# ----------------------------------------------------------------------------- ground truth: a real run

@pytest.fixture(scope="module")
def tracked_run(sim, tmp_path_factory):
    """One real run of the simulated session, recording every session key each stage reads.

    One CPU core is reported so that motion registers in this process, where reads are seen.
    """
    out = tmp_path_factory.mktemp("tracked") / "result"
    reads: dict[str, set] = {}
    mp = pytest.MonkeyPatch()
    mp.setattr(os, "cpu_count", lambda: 1)
    try:
        status = orchestrate.run(Session.load(sim), out, registry=REGISTRY, show_progress=False, track_reads=reads)
    finally:
        mp.undo()
    return out, status, reads


def test_every_key_read_in_a_real_run_is_declared(tracked_run):
    out, status, reads = tracked_run
    assert set(status.values()) == {"ran"}, status
    for name, got in reads.items():
        declared = {(sec, k) for sec, keys in REGISTRY[name].read_keys().items() for k in keys}
        undeclared = sorted(got - declared)
        assert not undeclared, f"stage {name} reads {undeclared} without declaring them (resume would miss a change)"
    # the recorder sees what the stages do read (a recorder that saw nothing would pass the check above)
    assert {("annotations", "subjects"), ("clock", "timestamps"), ("task", "log")} <= reads["behavior"]
    assert ("animal", "raw") in reads["motion"] and ("session", "seed") in reads["subspace"]


# ----------------------------------------------------------------------------- the issue's cases, CLI

def _cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)


def _status(stdout: str) -> dict[str, str]:
    rows = [ln.split(None, 1) for ln in stdout.splitlines() if ln.startswith("  ")]
    return {r[0]: r[1].strip() for r in rows if len(r) == 2}


def _edit(session: Path, fn) -> None:
    doc = tomllib.loads(session.read_text())
    fn(doc)
    session.write_text(tomli_w.dumps(doc))


BEHAVIOR_AND_DOWNSTREAM = {"behavior", "align", "subspace", "encoding", "decoding"}


def test_cli_issue_cases_rerun_behavior_and_downstream_or_fail(tracked_run, sim, tmp_path):
    """On a copy of the session folder and its result (a copy is no change: all up to date),
    `interbrain run` after each of the issue's edits reruns behaviour and what depends on it, or
    fails naming the file; never "up to date" on the old behaviour table."""
    src, _, _ = tracked_run
    session = tmp_path / "pair" / "session.toml"
    shutil.copytree(sim.parent, session.parent)
    out = tmp_path / "result"
    shutil.copytree(src, out)
    run = lambda: _cli("run", str(session), "--out", str(out), "--quiet", "--no-report")   # noqa: E731
    r = run()
    assert r.returncode == 0, r.stderr
    assert set(_status(r.stdout).values()) == {"up to date"}, r.stdout

    def swap_subjects(doc):
        assert doc["annotations"][0]["subjects"] == {"mouse_A": "A", "mouse_B": "B"}
        doc["annotations"][0]["subjects"] = {"mouse_A": "B", "mouse_B": "A"}

    def video_frame_rate(doc):
        assert doc["clocks"]["video"]["frame_rate"] == 30.0
        doc["clocks"]["video"]["frame_rate"] = 25.0

    for change in (swap_subjects, video_frame_rate):
        _edit(session, change)
        r = run()
        assert r.returncode == 0, r.stderr
        st = _status(r.stdout)
        assert {n for n, v in st.items() if v == "ran"} == BEHAVIOR_AND_DOWNSTREAM, (change.__name__, r.stdout)
        assert {n for n, v in st.items() if v == "up to date"} == {"motion", "extraction", "celltypes"}, r.stdout

    _edit(session, lambda doc: doc["annotations"][0].update(format="annot"))   # a BORIS file
    r = run()
    assert r.returncode == 2, r.stdout + r.stderr
    assert "boris_events.csv" in r.stderr and "Traceback" not in r.stderr
    assert "up to date" not in r.stdout


def test_tracker_sees_an_undeclared_read(sim, tmp_path):
    """The ground-truth recorder catches a stage that reads a setting it did not declare."""
    import xarray as xr

    def sneaky(ctx):
        _ = ctx.session.task["log"], ctx.session.animals["A"]["id"], ctx.seed
        return xr.DataTree.from_dict({"/x": xr.Dataset({"v": ("t", [1.0])})})
    reg = {"sneaky": orchestrate.Stage("sneaky", sneaky, reads=("animal.id",))}
    reads: dict[str, set] = {}
    orchestrate.run(Session.load(sim), tmp_path / "out", registry=reg, show_progress=False, track_reads=reads)
    declared = {("animal", "id")}
    assert reads["sneaky"] - declared == {("task", "log"), ("session", "seed")}
