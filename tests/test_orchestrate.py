"""Stage registry semantics on small real stages: skip, rerun on change, atomic commit, recovery."""
from __future__ import annotations

import re
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tomli_w
import xarray as xr

from pipeline.core import dataset, orchestrate
from pipeline.core.orchestrate import Stage
from pipeline.core.session import Session


def _session(tmp: Path, seed=0, **params) -> Session:
    for f in ("A/movie.tif", "B/movie.tif"):
        (tmp / f).parent.mkdir(parents=True, exist_ok=True)
        if not (tmp / f).exists():
            (tmp / f).write_bytes(b"raw-" + f.encode())
    doc = {"session": {"name": "toy", "seed": seed},
           "animals": {"A": {"id": "a", "raw": ["A/movie.tif"], "frame_rate": 10.0},
                       "B": {"id": "b", "raw": ["B/movie.tif"], "frame_rate": 10.0}}, **params}
    (tmp / "session.toml").write_text(tomli_w.dumps(doc))
    return Session.load(tmp / "session.toml")


CALLS: list[str] = []


def _registry():
    def first(ctx):
        CALLS.append("first")
        raw = Path(ctx.session.animals["A"]["raw"][0]).read_bytes()
        x = ctx.rng("x").normal(size=50) + len(raw) * ctx.params["subspace"]["n_surrogates"]
        return xr.DataTree.from_dict({"/A/first": xr.Dataset({"x": ("time", x)})})

    def second(ctx):
        CALLS.append("second")
        up = ctx.upstream()
        return xr.DataTree.from_dict({"/second": xr.Dataset({"y": ("time", up["A/first"]["x"].values * 2)})})

    return {"first": Stage("first", first, (), ("subspace",), lambda s, out: s.animals["A"]["raw"]),
            "second": Stage("second", second, ("first",), ())}


def test_skip_when_unchanged_and_rerun_downstream_on_change(tmp_path):
    CALLS.clear()
    s = _session(tmp_path)
    reg = _registry()
    out = tmp_path / "out"
    assert orchestrate.run(s, out, registry=reg, show_progress=False) == {"first": "ran", "second": "ran"}
    assert orchestrate.run(s, out, registry=reg, show_progress=False) == {"first": "up to date", "second": "up to date"}
    assert CALLS == ["first", "second"]
    tree = dataset.load(out)
    np.testing.assert_allclose(tree["second"]["y"].values, 2 * tree["A/first"]["x"].values)
    prov = json.loads(tree["A/first"].attrs["provenance"])
    assert prov["seed"] == 0 and "numpy" in prov["versions"] and prov["inputs"]
    assert list(prov["inputs"].values())[0].startswith("sha256:")

    # a parameter change reruns the stage and everything downstream
    s2 = _session(tmp_path, subspace={"n_surrogates": 7})
    assert orchestrate.run(s2, out, registry=reg, show_progress=False) == {"first": "ran", "second": "ran"}
    # a raw input change reruns too
    (tmp_path / "A/movie.tif").write_bytes(b"changed")
    assert orchestrate.run(s2, out, registry=reg, show_progress=False)["first"] == "ran"
    # --force on the first stage reruns it, and the second because its input was recommitted
    st = orchestrate.run(s2, out, registry=reg, only=["first", "second"], force=False, show_progress=False)
    assert st == {"first": "up to date", "second": "up to date"}
    st = orchestrate.run(s2, out, registry=reg, only=["first"], force=True, show_progress=False)
    assert st == {"first": "ran"}
    assert orchestrate.run(s2, out, registry=reg, show_progress=False)["second"] == "ran"


def test_failing_stage_leaves_previous_result_and_no_temp(tmp_path):
    s = _session(tmp_path)
    reg = _registry()
    out = tmp_path / "out"
    orchestrate.run(s, out, registry=reg, show_progress=False)
    before = (out / "stages/first/result.nc").read_bytes()

    def boom(ctx):
        raise RuntimeError("engine crashed")
    reg["first"] = Stage("first", boom, (), ("subspace",), version="2")
    with pytest.raises(RuntimeError, match="engine crashed"):
        orchestrate.run(s, out, registry=reg, show_progress=False)
    assert (out / "stages/first/result.nc").read_bytes() == before
    assert not [p for p in (out / "stages").iterdir() if p.name.startswith(".tmp")]


def test_recover_after_kill_between_renames(tmp_path):
    s = _session(tmp_path)
    out = tmp_path / "out"
    orchestrate.run(s, out, registry=_registry(), show_progress=False)
    sdir = out / "stages"
    # simulate a kill after the old result was moved aside, before the new one landed
    os.replace(sdir / "first", sdir / ".old-first")
    (sdir / ".tmp-first-x").mkdir()
    orchestrate._recover(out)
    assert (sdir / "first/result.nc").is_file()
    assert not [p for p in sdir.iterdir() if p.name.startswith((".tmp", ".old"))]


def test_running_one_stage_keeps_another_stages_work_in_progress(tmp_path):
    """A batch runs independent stages of one session side by side: a stage's start must not
    delete the temporary folder (or mid-commit result) of another stage being written."""
    s = _session(tmp_path)
    out = tmp_path / "out"
    reg = _registry()
    orchestrate.run(s, out, registry=reg, show_progress=False)
    sdir = out / "stages"
    other = sdir / ".tmp-first-inflight"
    other.mkdir()
    (other / "result.nc").write_bytes(b"being written")
    os.replace(sdir / "first", sdir / ".old-first")   # `first` is between the two renames of its commit
    (sdir / ".tmp-second-killed").mkdir()              # a killed run of `second` left this
    orchestrate._recover(out, ["second"])
    assert (other / "result.nc").read_bytes() == b"being written"
    assert (sdir / ".old-first").is_dir() and not (sdir / "first").exists()
    assert not (sdir / ".tmp-second-killed").exists()
    # once `first` runs (or recovers) itself, its own leftovers are handled
    orchestrate._recover(out, ["first"])
    assert (sdir / "first/result.nc").is_file()
    assert not [p for p in sdir.iterdir() if p.name.startswith((".tmp", ".old"))]


def test_stage_run_recovers_only_its_own_leftovers(tmp_path):
    s = _session(tmp_path)
    out = tmp_path / "out"
    reg = _registry()
    orchestrate.run(s, out, registry=reg, show_progress=False)
    sdir = out / "stages"
    (sdir / ".tmp-first-inflight").mkdir()
    (sdir / ".tmp-second-killed").mkdir()
    assert orchestrate.run(s, out, only=["second"], registry=reg, show_progress=False) == {"second": "up to date"}
    assert (sdir / ".tmp-first-inflight").is_dir() and not (sdir / ".tmp-second-killed").exists()


def test_raw_inputs_opened_read_only_and_unchanged(tmp_path):
    s = _session(tmp_path)
    raw = tmp_path / "A/movie.tif"
    os.chmod(raw, 0o444)   # a read-only raw file must be enough
    digest = raw.read_bytes()
    orchestrate.run(s, tmp_path / "out", registry=_registry(), show_progress=False)
    assert raw.read_bytes() == digest


def test_load_rejects_non_result_and_old_version(tmp_path):
    with pytest.raises(dataset.NotAResultError, match="not an interbrain result"):
        dataset.load(tmp_path)
    (tmp_path / "interbrain.json").write_text(json.dumps({"format": "interbrain-result", "format_version": 0}))
    with pytest.raises(dataset.NotAResultError, match="format version 0"):
        dataset.load(tmp_path)


def test_wanted_stage_skipped_does_not_skip_dependent(tmp_path):
    s = _session(tmp_path)

    def maybe(ctx):
        raise orchestrate.StageSkipped("no behaviour sources")

    def last(ctx):
        up = ctx.upstream()
        assert "A" in up.children and "behavior" not in up.children
        return xr.DataTree.from_dict({"/last": xr.Dataset({"z": ("time", up["A/first"]["x"].values)})})

    reg = _registry()
    reg["maybe"] = Stage("maybe", maybe)
    reg["last"] = Stage("last", last, ("first",), wants=("maybe",))
    st = orchestrate.run(s, tmp_path / "out", registry=reg, show_progress=False)
    assert st["maybe"].startswith("skipped") and st["last"] == "ran"
    st = orchestrate.run(s, tmp_path / "out", registry=reg, show_progress=False)
    assert st["maybe"].startswith("skipped") and st["last"] == "up to date"


def test_each_stage_that_runs_says_so_on_stderr(tmp_path, capsys):
    """Stages in worker processes draw no bar of their own: the runner names each stage as it starts and
    ends, and says nothing of up-to-date stages or when asked to be quiet (`--quiet`)."""
    s = _session(tmp_path)
    reg = _registry()
    out = tmp_path / "out"
    orchestrate.run(s, out, registry=reg, only=["first"], show_progress=True)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "first: running (stage 1 of 1) ..."
    assert re.fullmatch(r"first: ran in \d+ s", err[1]) and len(err) == 2, err
    orchestrate.run(s, out, registry=reg, show_progress=True)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "second: running (stage 2 of 2) ..." and len(err) == 2, err
    orchestrate.run(s, out, registry=reg, force=True, show_progress=False)
    assert capsys.readouterr().err == ""
