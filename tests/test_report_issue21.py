"""Issue 21 points that no other test covered: what `interbrain simulate --help` says of its presets."""
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
