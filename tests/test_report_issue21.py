"""Issue 21 points that no other test covered: what `interbrain simulate --help` says of its presets, and
whether `interbrain run` shows progress for every stage."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_simulate_help_names_the_default_preset_and_its_size():
    """`interbrain simulate` defaults to the small preset; its help says so, lists every preset, and the
    small preset's size in the help is the preset's own (field of view, neurons per animal, duration)."""
    from pipeline.simulator import PRESETS
    r = subprocess.run([sys.executable, "-m", "pipeline", "simulate", "--help"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())                         # argparse wraps the help text
    m = re.search(r"--preset PRESET (.*?)(?: -{1,2}\w|$)", text)
    assert m, text
    preset_help = m.group(1)
    assert all(name in preset_help for name in PRESETS), preset_help
    small = PRESETS["small"]
    size = (f"small (default: {small.fov[0]} x {small.fov[1]} px, {small.n_neurons[0]}/{small.n_neurons[1]} "
            f"neurons, {small.duration_s:.0f} s")
    assert size in preset_help, preset_help
    d = PRESETS["default"]
    assert f"default ({d.fov[0]} x {d.fov[1]} px, {d.duration_s:.0f} s)" in preset_help, preset_help
    from pipeline.cli import build_parser
    sim = build_parser()._subparsers._group_actions[0].choices["simulate"]
    assert sim.get_default("preset") == "small"


def test_run_shows_progress_of_every_stage(tmp_path):
    """`interbrain run --stages motion,extraction` on a copy of the committed sample, as a user runs it (no
    --quiet): something names each stage while it runs, before the final status table."""
    import shutil
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import SAMPLE, cli
    src = tmp_path / "pair01"
    shutil.copytree(SAMPLE, src)
    p = cli("run", str(src / "session.toml"), "--out", str(tmp_path / "out"), "--stages", "motion,extraction",
            "--no-report")
    log, _ = p.communicate(timeout=900)
    assert p.returncode == 0, log
    before_table = re.split(r"^\s+motion\s+ran\s*$", log, flags=re.M)[0]
    lines = before_table.splitlines()
    for i, stage in enumerate(("motion", "extraction")):
        start = lines.index(f"{stage}: running (stage {i + 1} of 2) ...")
        assert re.fullmatch(rf"{stage}: ran in \d+ s", lines[start + 1]), log
