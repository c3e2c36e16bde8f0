"""NWB export: round trip of masks, traces, labels and behaviour; nwbinspector finds nothing critical."""
from __future__ import annotations

import numpy as np
import pytest

from napari_fixtures import ANIMALS, EVENTS, make_result
from pipeline.io.nwb import _dense_masks, export_nwb, read_nwb_animal


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    res = tmp_path_factory.mktemp("res")
    truth = make_result(res)
    return res, truth, export_nwb(res, tmp_path_factory.mktemp("nwb"))


def test_round_trip_exact(exported):
    import pipeline
    res, truth, paths = exported
    tree = pipeline.load(res)
    for a, path in paths.items():
        back = read_nwb_animal(path)
        rois = tree[f"{a}/rois"].to_dataset()
        np.testing.assert_array_equal(back["masks"], _dense_masks(rois))
        np.testing.assert_array_equal(back["traces"]["dff"], truth[a]["dff"])
        np.testing.assert_array_equal(back["traces"]["spikes"], truth[a]["spikes"])
        np.testing.assert_array_equal(back["frame_time"], truth[a]["frame_time"])
        assert back["rois"]["roi_id"].tolist() == ANIMALS[a]["roi_id"]
        assert back["rois"]["cell_type"].tolist() == ANIMALS[a]["cell_type"]
        assert back["rois"]["is_cell"].tolist() == ANIMALS[a]["is_cell"]
        b = back["behavior"]
        assert len(b) == len(EVENTS)
        for (animal, beh, start, stop, kind), (_, row) in zip(EVENTS, b.iterrows()):
            assert (row["animal"], row["behavior"], row["start_time"], row["stop_time"], row["kind"]) == \
                (animal, beh, start, stop, kind)
            assert row["role"] == ("self" if animal == a else "partner")
        other = "B" if a == "A" else "A"
        assert back["notes"]["partner_file"] == paths[other].name


def test_nwbinspector_no_critical_issues(exported):
    from nwbinspector import Importance, inspect_nwbfile
    _, _, paths = exported
    for path in paths.values():
        msgs = list(inspect_nwbfile(nwbfile_path=str(path)))
        bad = [m for m in msgs if m.importance in (Importance.CRITICAL, Importance.ERROR)]
        assert not bad, [m.message for m in bad]
