"""`interbrain export-nwb` as a user runs it: a simulated session (its recording metadata is simulated too) run with
default settings, exported, and checked the way DANDI checks (nwbinspector's dandi config); bad input exits 2
with one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from napari_fixtures import make_result

ROOT = Path(__file__).resolve().parents[1]
BAD = ("CRITICAL", "ERROR", "BEST_PRACTICE_VIOLATION")


def _cli(*args, timeout=1800):
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def _dandi_problems(path):
    from nwbinspector import inspect_nwbfile, load_config
    return [f"{m.importance.name} {m.check_function_name} {m.location}: {m.message}"
            for m in inspect_nwbfile(nwbfile_path=str(path), config=load_config("dandi")) if m.importance.name in BAD]


def test_export_nwb_command_writes_one_file_per_animal(tmp_path):
    truth = make_result(tmp_path / "res")
    r = _cli("export-nwb", tmp_path / "res", tmp_path / "nwb")
    assert r.returncode == 0, r.stdout + r.stderr
    files = sorted(p.name for p in (tmp_path / "nwb").glob("*.nwb"))
    assert len(files) == 2 and files[0].endswith("_A.nwb") and files[1].endswith("_B.nwb"), files
    assert all(f in r.stdout for f in files) and "nwbinspector" in r.stdout
    from pipeline.io.nwb import read_nwb_animal
    import numpy as np
    for a in "AB":
        back = read_nwb_animal(next((tmp_path / "nwb").glob(f"*_{a}.nwb")))
        np.testing.assert_array_equal(back["traces"]["dff"], truth[a]["dff"])


@pytest.mark.parametrize("case", ["not_a_result", "out_is_a_file", "missing"])
def test_export_nwb_bad_input_exits_2_with_one_line(tmp_path, case):
    (tmp_path / "plain").mkdir()
    (tmp_path / "file.nwb").write_text("x")
    if case == "out_is_a_file":
        make_result(tmp_path / "res")
        args, named = (tmp_path / "res", tmp_path / "file.nwb"), tmp_path / "file.nwb"
    else:
        src = tmp_path / ("plain" if case == "not_a_result" else "nowhere")
        args, named = (src, tmp_path / "out"), src
    r = _cli("export-nwb", *args)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(named) in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_simulate_run_export_passes_nwbinspector_dandi(tmp_path):
    """The whole user path with defaults: simulate (preset small) -> run -> export-nwb -> nwbinspector --config dandi:
    no CRITICAL, ERROR or BEST_PRACTICE_VIOLATION, and the simulated recording metadata is in the files."""
    from pynwb import NWBHDF5IO
    sess, res, nwb = tmp_path / "pair", tmp_path / "res", tmp_path / "nwb"
    for args in (("simulate", sess, "--preset", "small", "--seed", "1"),
                 ("run", sess / "session.toml", "--out", res, "--quiet", "--no-report"),
                 ("export-nwb", res, nwb)):
        r = _cli(*args)
        assert r.returncode == 0, (args, r.stdout + r.stderr)
    files = sorted(nwb.glob("*.nwb"))
    assert len(files) == 2
    for f in files:
        assert not _dandi_problems(f), _dandi_problems(f)
        with NWBHDF5IO(str(f), "r") as io:
            n = io.read()
            assert n.subject.age == "P90D" and n.subject.species == "Mus musculus" and n.subject.sex in ("F", "M")
            plane = n.imaging_planes["ImagingPlane"]
            assert plane.location == "ACAd" and plane.excitation_lambda == 920.0
            assert n.session_start_time.isoformat() == "2026-01-15T10:00:00+00:00"
            assert "simulated" in n.institution
