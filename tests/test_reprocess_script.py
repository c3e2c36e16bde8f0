"""scripts/reprocess_nwb.py on local NWB files, offline: pairs found, processed, manifest written, resumable."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from napari_fixtures import make_result
from pipeline.io.nwb import export_nwb

ROOT = Path(__file__).resolve().parents[1]


def test_reprocess_local_nwb_offline(tmp_path):
    make_result(tmp_path / "res", with_events=True)
    files = export_nwb(tmp_path / "res", tmp_path / "nwb")
    lonely = tmp_path / "nwb" / "lonely.nwb"
    lonely.write_bytes(b"not an nwb file")
    out = tmp_path / "reprocessed"
    cmd = [sys.executable, str(ROOT / "scripts" / "reprocess_nwb.py"), "--auto-pair",
           str(files["A"]), str(files["B"]), str(lonely), "--out", str(out),
           "--stages", "motion,extraction,celltypes,behavior,align"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    m = pd.read_csv(out / "manifest.csv")
    processed = m[m["status"] == "processed"]
    skipped = m[m["status"] == "skipped"]
    assert len(processed) == 1 and len(skipped) == 1, m.to_string()
    assert "unreadable" in skipped["detail"].iloc[0] and "lonely.nwb" in skipped["nwb_A"].iloc[0]
    import pipeline
    pair = processed["pair"].iloc[0]
    tree = pipeline.load(out / "results" / pair)
    assert tree["A/activity"]["activity"].sizes["neuron"] > 0 and tree["B/activity"]["activity"].sizes["neuron"] > 0
    # a rerun resumes: every stage is up to date
    r2 = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    m2 = pd.read_csv(out / "manifest.csv")
    assert m2.loc[m2["status"] == "processed", "detail"].iloc[0].count("up to date") == 5
