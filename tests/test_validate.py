"""Fail early, with a clear message (issue 17, item 4): `interbrain validate --deep`, and bad inputs
given to `validate` / `run` exit 2 with one line per problem naming the file, and no traceback."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest
import tomli_w

from behavior.events import AnnotationError
from behavior.importers import read_annotations
from behavior.pose import read_dlc, write_dlc, Pose
from pipeline.simulator import simulate_session

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _bad_input(r: subprocess.CompletedProcess, *names: str) -> str:
    """Exit 2, no traceback, and every name in stderr."""
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    for n in names:
        assert n in r.stderr, (n, r.stderr)
    return r.stderr


@pytest.fixture(scope="module")
def sim_src(tmp_path_factory) -> Path:
    return Path(simulate_session(tmp_path_factory.mktemp("sim") / "pair", seed=5, preset="small")).parent


@pytest.fixture
def pair(sim_src, tmp_path) -> Path:
    """A fresh copy of the simulated session folder; returns its session.toml."""
    shutil.copytree(sim_src, tmp_path / "pair")
    return tmp_path / "pair" / "session.toml"


def _edit(session: Path, fn) -> None:
    doc = tomllib.loads(session.read_text())
    fn(doc)
    session.write_text(tomli_w.dumps(doc))


def test_deep_check_passes_on_a_good_session_and_names_every_input(pair):
    r = _cli("validate", "--deep", str(pair))
    assert r.returncode == 0, r.stderr
    for key in ("[animals.A] raw", "[animals.B] raw", "[animals.B] structural", "[[annotations]] #1",
                "[clocks.video]", "[clocks.task]", "[task] log"):
        assert f"ok: {key}" in r.stdout, (key, r.stdout)
    assert "2399 frames" in r.stdout or "frames of 40 x 40 px" in r.stdout


def test_deep_check_reports_every_problem_not_just_the_first(pair):
    root = pair.parent
    # 1. a raw file given as NWB that is not HDF5 at all; 2. one that is HDF5 but not NWB
    (root / "A" / "movie.nwb").write_text("not an nwb file\n")
    with h5py.File(root / "B" / "movie.nwb", "w") as f:
        f["data"] = np.zeros((3, 4, 4), np.uint16)
    # 3. a structural .npy holding Python objects
    np.save(root / "B" / "structural.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    # 4. a BORIS file with a cut-off row; 5. a task log whose animal is unknown
    boris = root / "behavior" / "boris_events.csv"
    lines = boris.read_text().splitlines()
    boris.write_text("\n".join(lines[:-1] + [lines[-1].split(",")[0]]) + "\n")
    task = root / "task" / "task_log.csv"
    tl = task.read_text().splitlines()
    task.write_text("\n".join(tl[:2] + ["10.0191,Z,port_exit"] + tl[3:]) + "\n")

    def change(doc):
        doc["animals"]["A"].update(raw=["A/movie.nwb"], raw_format="nwb")
        doc["animals"]["B"].update(raw=["B/movie.nwb"], raw_format="nwb", structural="B/structural.npy")
    _edit(pair, change)
    err = _bad_input(_cli("validate", "--deep", str(pair)),
                     "A/movie.nwb", "B/movie.nwb", "structural.npy", "boris_events.csv", "task_log.csv")
    assert "5 input problem(s)" in err, err
    # `interbrain run` checks the cheap part (no movie opened) before motion correction
    err = _bad_input(_cli("run", str(pair), "--out", str(pair.parent / "out"), "--quiet", "--no-report"),
                     "structural.npy", "boris_events.csv", "task_log.csv")
    assert "3 input problem(s)" in err and not (pair.parent / "out" / "stages").exists()


def test_run_on_a_raw_file_that_is_not_nwb_exits_2(pair):
    (pair.parent / "A" / "movie.nwb").write_text("not an nwb file\n")
    _edit(pair, lambda doc: doc["animals"]["A"].update(raw=["A/movie.nwb"], raw_format="nwb"))
    _bad_input(_cli("run", str(pair), "--out", str(pair.parent / "out"), "--quiet", "--no-report",
                    "--stages", "motion"), "A/movie.nwb")


def test_symlink_loop_in_a_path_exits_2(pair):
    root = pair.parent
    os.symlink("loop_b", root / "loop_a")
    os.symlink("loop_a", root / "loop_b")
    _edit(pair, lambda doc: doc["animals"]["A"].update(timestamps="loop_a/timestamps.csv"))
    _bad_input(_cli("validate", str(pair)), "[animals.A] timestamps", "symbolic link loop", "loop_a")
    os.symlink("y.toml", root / "x.toml")      # the session file itself
    os.symlink("x.toml", root / "y.toml")
    _bad_input(_cli("validate", str(root / "x.toml")), "x.toml", "symbolic link loop")


def test_session_toml_not_utf8_exits_2(pair):
    pair.write_bytes(b"# s\xe9ance du lundi (cp1252)\n" + pair.read_bytes())
    _bad_input(_cli("validate", str(pair)), str(pair.resolve()), "not UTF-8")


def test_out_under_a_regular_file_or_unwritable_exits_2(pair, tmp_path):
    (tmp_path / "afile").write_text("x")
    _bad_input(_cli("run", str(pair), "--out", str(tmp_path / "afile" / "result"), "--quiet", "--no-report"),
               str(tmp_path / "afile"))
    if os.geteuid() == 0:   # root ignores permission bits: use a file system that refuses new folders
        ro = Path("/sys/interbrain-result")
    else:
        (tmp_path / "ro").mkdir()
        os.chmod(tmp_path / "ro", 0o555)
        ro = tmp_path / "ro" / "result"
    _bad_input(_cli("run", str(pair), "--out", str(ro), "--quiet", "--no-report"), "--out", str(ro))


# ----------------------------------------------------------------------------- importers

ANNOT = """Bento annotation file
Movie file(s):  m.seq
Annotation start frame: 1
Annotation stop frame: 300
Annotation framerate: 30
List of channels:
Ch1
List of annotations:
{label}

Ch1----------
>{label}
Start\tStop\tDuration
10\t20\t11
"""


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_annot_in_windows_encoding_decoded_not_mangled(tmp_path, encoding):
    label = "reniflement_\u00e9vit\u00e9"      # "reniflement_évité"
    p = tmp_path / "x.annot"
    p.write_bytes(ANNOT.format(label=label).encode(encoding))
    df = read_annotations(p, "annot", {}, "A", {}, None)
    assert set(df["behavior"]) == {label}


def test_dlc_csv_with_a_truncated_row_names_file_and_line(tmp_path):
    rng = np.random.default_rng(0)
    pose = Pose(rng.normal(size=(6, 1, 2, 2)) * 10 + 50, ["nose", "tail_base"], ["single"],
                rng.uniform(0.5, 1, (6, 1, 2)), "x", [])
    p = write_dlc(pose, tmp_path / "poseDLC.csv")
    lines = p.read_text().splitlines()
    n_header = next(i for i, ln in enumerate(lines) if ln.split(",")[0] == "coords") + 1
    cut = n_header + 3                                  # 0-based index of the 4th data row
    lines[cut] = ",".join(lines[cut].split(",")[:3])    # the row ends early
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnotationError, match=rf"poseDLC.csv.*\b{cut + 1}\b.*truncated"):
        read_dlc(p)
