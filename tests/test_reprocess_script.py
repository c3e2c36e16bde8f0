"""scripts/reprocess_nwb.py offline: local NWB files and a local folder laid out like a dandiset
(sub-*/sub-*_ses-*_ophys.nwb); pairs found, processed, manifest appended, resumable; no network: exit 2."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from napari_fixtures import make_result
from pipeline.io.nwb import export_nwb

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "scripts" / "reprocess_nwb.py")
STAGES = "motion,extraction,celltypes,behavior,align"


def _dandiset(tmp_path) -> Path:
    """A local dandiset: the exported pair under sub-<id>/, plus an unreadable file with no partner."""
    make_result(tmp_path / "res", with_events=True)
    files = export_nwb(tmp_path / "res", tmp_path / "nwb", metadata={a: {"age": "P90D"} for a in "AB"})
    root = tmp_path / "000123"
    for a, f in files.items():
        d = root / f"sub-{a}"
        d.mkdir(parents=True)
        shutil.copy(f, d / f"sub-{a}_ses-pair_ophys.nwb")
    (root / "sub-C").mkdir()
    (root / "sub-C" / "sub-C_ses-x_ophys.nwb").write_bytes(b"not an nwb file")
    return root


def test_reprocess_local_dandiset_offline(tmp_path):
    root = _dandiset(tmp_path)
    out = tmp_path / "reprocessed"
    cmd = [sys.executable, SCRIPT, "--dandiset", str(root), "--out", str(out), "--stages", STAGES]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    m = pd.read_csv(out / "manifest.csv")
    processed, skipped = m[m["status"] == "processed"], m[m["status"] == "skipped"]
    assert len(processed) == 1 and len(skipped) == 1, m.to_string()
    assert "unreadable" in skipped["detail"].iloc[0] and "sub-C" in skipped["nwb_A"].iloc[0]
    assert "sub-A" in processed["nwb_A"].iloc[0] and "sub-B" in processed["nwb_B"].iloc[0]
    import pipeline
    tree = pipeline.load(out / "results" / processed["pair"].iloc[0])
    assert tree["A/activity"]["activity"].sizes["neuron"] > 0 and tree["B/activity"]["activity"].sizes["neuron"] > 0
    # a rerun resumes (every stage up to date) and appends to the manifest
    r2 = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    m2 = pd.read_csv(out / "manifest.csv")
    assert len(m2) == 2 * len(m) and m2["run_at"].nunique() >= 1
    assert m2.loc[m2["status"] == "processed", "detail"].iloc[-1].count("up to date") == 5


def test_dandiset_without_network_exits_2_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, SCRIPT, "--dandiset", "000123", "--out", str(tmp_path / "o"),
                        "--dandi-api", "http://127.0.0.1:9/api"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach DANDI") and "--dandiset PATH" in lines[0]
    assert not (tmp_path / "o" / "manifest.csv").exists()
