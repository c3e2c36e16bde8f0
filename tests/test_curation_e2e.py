"""A curation edit made in the napari plugin's table is used by the next `interbrain run`."""
from __future__ import annotations

import shutil

import numpy as np

import pipeline
from conftest import cli


def test_curation_changes_the_next_run(demo_result, tmp_path):
    from pipeline.napari_plugin.curation import CurationLog
    src, out, _, _ = demo_result
    res = tmp_path / "result"
    shutil.copytree(out, res)
    tree = pipeline.load(res)
    ct = tree["B/celltypes"].to_dataset()
    roi = int(ct["roi_id"].values[0])
    old = str(ct["cell_type"].values[0])
    new = "glutamatergic" if old == "GABAergic" else "GABAergic"
    log = CurationLog(res)
    log.add("B", roi, label=new, is_cell=True)   # what the widget's buttons call
    assert (res / "curation.csv").is_file()
    # the stages that read labels: celltypes (the curation table is its input) and align (the coordinates)
    p = cli("run", str(src / "session.toml"), "--out", str(res), "--quiet", "--no-report",
            "--stages", "motion,extraction,celltypes,align")
    text, _ = p.communicate(timeout=1200)
    assert p.returncode == 0, text
    assert "celltypes   ran" in text and "motion      up to date" in text, text
    after = pipeline.load(res)
    ct2 = after["B/celltypes"].to_dataset()
    i = int(np.flatnonzero(ct2["roi_id"].values == roi)[0])
    assert ct2["cell_type"].values[i] == new and ct2["cell_type_source"].values[i] == "curation"
    act = after["B/activity"]["activity"]
    if roi in act["roi_id"].values:
        assert act.sel(neuron=act["roi_id"] == roi)["cell_type"].values[0] == new
