"""Round trip: export -> session_from_nwb -> `interbrain run` reproduces traces, cell types and behaviour events;
extraction is skipped (the files' own ROIs are used) and the analyses run."""
from __future__ import annotations

import tomllib

import numpy as np
import tomli_w

import pipeline
from pipeline.core import orchestrate
from pipeline import stages as pipeline_stages
from pipeline.io.nwb import export_nwb, session_from_nwb
from pipeline.core.session import Session


def test_pair_from_nwb_segmentation_runs_the_analyses(demo_result, tmp_path):
    _, out, _, _ = demo_result
    files = export_nwb(out, tmp_path / "nwb")
    toml, missing = session_from_nwb(files["A"], files["B"], tmp_path / "session", name="from_nwb")
    assert any("no raw TwoPhotonSeries/OnePhotonSeries frames" in m for m in missing), missing
    doc = tomllib.loads(toml.read_text())
    # lighter nulls: this test is about the data path, not the statistics
    doc["subspace"] = {"n_surrogates": 200, "by_cell_type": False}
    doc["encoding"] = {"n_surrogates": 200}
    doc["decoding"] = {"n_surrogates": 20, "n_repeats": 2, "conditions": ["full"]}
    toml.write_text(tomli_w.dumps(doc))
    res = tmp_path / "result"
    status = pipeline_stages.run(Session.load(toml), res, show_progress=False)
    assert status["extraction"] == "ran" and status["subspace"] == "ran" and status["decoding"] == "ran", status
    src, new = pipeline.load(out), pipeline.load(res)
    for a in ("A", "B"):
        assert "motion" not in new[a].children          # nothing was registered again
        np.testing.assert_array_equal(new[f"{a}/traces"]["dff"].values, src[f"{a}/traces"]["dff"].values)
        assert new[f"{a}/rois"]["roi_id"].values.tolist() == src[f"{a}/rois"]["roi_id"].values.tolist()
        assert new[f"{a}/activity"]["activity"].sizes["neuron"] > 0
    assert "K" in new["subspace"].attrs
    for a in ("A", "B"):                                     # cell types of both animals come back
        assert new[f"{a}/celltypes"]["cell_type"].values.tolist() == src[f"{a}/celltypes"]["cell_type"].values.tolist()
    assert (tmp_path / "session" / "B_structural.tif").is_file() and doc["animals"]["B"]["structural"]

    def events(tree):
        ev = tree["behavior"].to_dataset()
        return sorted(zip(ev["animal"].values.tolist(), ev["behavior"].values.tolist(),
                          np.round(ev["start"].values, 9).tolist(), np.round(ev["stop"].values, 9).tolist(),
                          ev["kind"].values.tolist()))
    assert events(new) == events(src)                        # each behaviour event once, same times and kinds
