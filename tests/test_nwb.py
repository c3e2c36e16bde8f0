"""NWB export: round trip of masks, traces, labels and behaviour (each event once, per animal);
nwbinspector (DANDI config) finds nothing critical on the demo export; metadata never invented."""
from __future__ import annotations

import numpy as np
import pytest

from napari_fixtures import ANIMALS, EVENTS, make_result
from pipeline.io.nwb import _dense_masks, export_nwb, read_nwb_animal


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    res = tmp_path_factory.mktemp("res")
    truth = make_result(res)
    return res, truth, export_nwb(res, tmp_path_factory.mktemp("nwb"), metadata={a: {"age": "P90D"} for a in "AB"})


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
        assert len(b) == len(EVENTS)                      # each event once
        got = sorted((r.animal, r.behavior, r.start_time, r.stop_time, r.kind) for r in b.itertuples())
        assert got == sorted(EVENTS)
        assert (b["role"] == np.where(b["animal"] == a, "self", "partner")).all()
        other = "B" if a == "A" else "A"
        assert back["notes"]["partner_file"] == paths[other].name


def test_nwbinspector_no_critical_issues(exported):
    from nwbinspector import Importance, inspect_nwbfile
    _, _, paths = exported
    for path in paths.values():
        msgs = list(inspect_nwbfile(nwbfile_path=str(path)))
        bad = [m for m in msgs if m.importance in (Importance.CRITICAL, Importance.ERROR)]
        assert not bad, [m.message for m in bad]


def test_behaviour_tables_per_animal_and_point_events_apart(exported):
    """One labelled table per animal and behaviour (pynapple / DANDI viewers keep labels and animals); instants are
    an EventsTable, so no interval has stop == start."""
    from pynwb import NWBHDF5IO
    _, _, paths = exported
    with NWBHDF5IO(str(paths["A"]), "r") as io:
        nwb = io.read()
        assert sorted(nwb.intervals) == ["behavior_A_approach", "behavior_A_follow", "behavior_B_approach",
                                         "behavior_B_sniff"]
        a = nwb.intervals["behavior_A_approach"].to_dataframe()
        assert a["behavior"].tolist() == ["approach"] and (a["stop_time"] > a["start_time"]).all()
        assert set(a["role"]) == {"self"} and set(nwb.intervals["behavior_B_sniff"].to_dataframe()["role"]) == {"partner"}
        ev = nwb.events["behavior_events_A"].to_dataframe()
        assert ev["timestamp"].tolist() == [15.0] and ev["behavior"].tolist() == ["reward"]


@pytest.fixture(scope="module")
def demo_export(demo_result, tmp_path_factory):
    _, out, _, _ = demo_result
    plain = export_nwb(out, tmp_path_factory.mktemp("plain"))
    md = {"session": {"start_time": "2024-03-01T10:30:00+01:00", "experimenter": "Doe, Jane", "institution": "Lab U"},
          "A": {"age": "P90D", "location": "ACAd", "excitation_wavelength": 920.0},
          "B": {"age": "P12W/P14W", "location": "ACAd", "excitation_wavelength": 920.0}}
    return out, plain, export_nwb(out, tmp_path_factory.mktemp("full"), metadata=md)


def _dandi_messages(path):
    from nwbinspector import inspect_nwbfile, load_config
    return list(inspect_nwbfile(nwbfile_path=str(path), config=load_config("dandi")))


def test_demo_export_passes_nwbinspector_dandi(demo_export):
    from nwbinspector import Importance
    _, _, full = demo_export
    for path in full.values():
        bad = [f"{m.importance.name} {m.check_function_name} {m.location}: {m.message}" for m in _dandi_messages(path)
               if m.importance in (Importance.CRITICAL, Importance.ERROR, Importance.BEST_PRACTICE_VIOLATION)]
        assert not bad, bad


def test_unknown_metadata_is_left_out_not_invented(demo_export):
    """Without the optional session keys: no age is written, location and wavelength are marked not recorded, the
    start time says it was not recorded; DANDI's complaints name exactly what the user must add (age, location)."""
    from nwbinspector import Importance
    from pynwb import NWBHDF5IO
    out, plain, full = demo_export
    for path in plain.values():
        with NWBHDF5IO(str(path), "r") as io:
            nwb = io.read()
            plane = nwb.imaging_planes["ImagingPlane"]
            assert nwb.subject.age is None and plane.location == "not recorded" and np.isnan(plane.excitation_lambda)
            assert "not recorded" in nwb.notes and not nwb.experimenter and nwb.institution is None
        bad = {m.check_function_name for m in _dandi_messages(path)
               if m.importance in (Importance.CRITICAL, Importance.ERROR, Importance.BEST_PRACTICE_VIOLATION)}
        assert bad == {"check_subject_age", "check_imaging_plane_location_allen_ccf"}, bad
    with NWBHDF5IO(str(full["B"]), "r") as io:
        nwb = io.read()
        assert nwb.session_start_time.isoformat() == "2024-03-01T10:30:00+01:00"
        assert nwb.subject.age == "P12W/P14W" and nwb.imaging_planes["ImagingPlane"].location == "ACAd"
        assert nwb.experimenter == ("Doe, Jane",) and nwb.institution == "Lab U"


def test_demo_export_events_once_and_structural_image(demo_export):
    import pipeline
    out, _, full = demo_export
    tree = pipeline.load(out)
    ev = tree["behavior"].to_dataset()
    n_events = ev.sizes["event"]
    for a, path in full.items():
        back = read_nwb_animal(path)
        assert len(back["behavior"]) == n_events             # not multiplied by the input/clock tables
        want = sorted(zip(ev["animal"].values.tolist(), ev["behavior"].values.tolist(), ev["start"].values.tolist()))
        assert sorted(zip(back["behavior"]["animal"], back["behavior"]["behavior"], back["behavior"]["start_time"])) == want
        np.testing.assert_array_equal(back["images"]["mean_image"], tree[f"{a}/rois"]["mean_image"].values)
    back = read_nwb_animal(full["B"])                          # B's cell types come from its structural channel
    np.testing.assert_array_equal(back["images"]["StructuralImage"], tree["B/celltypes"]["structural_image"].values)


def test_behaviour_tables_read_by_pynapple_as_separate_labelled_interval_sets(demo_export):
    """What pynapple's NWB loader (pynapple.io.interface_nwb) does with our files, step by step with pynwb (pynapple
    is not installed here): every TimeIntervals object becomes one IntervalSet keyed by its name, built from
    `to_dataframe()` with start_time/stop_time renamed start/end and every other column kept as metadata. The
    IntervalSet keeps that metadata only when starts and ends both strictly increase and no interval starts before
    the previous one ends; otherwise it joins intervals and drops the labels. The demo pair's bouts of different
    behaviours overlap (at_port and hold start together), hence one table per animal and behaviour."""
    import pipeline
    from pynwb import NWBHDF5IO
    from pynwb.epoch import TimeIntervals
    out, _, full = demo_export
    ev = pipeline.load(out)["behavior"].to_dataset()
    truth = sorted((str(w), str(b), float(s), float(e)) for w, b, s, e, k in zip(
        ev["animal"].values, ev["behavior"].values, ev["start"].values, ev["stop"].values, ev["kind"].values)
        if k != "point")
    for a, path in full.items():
        with NWBHDF5IO(str(path), "r") as io:
            nwb = io.read()
            tables = {o.name: o for o in nwb.objects.values() if isinstance(o, TimeIntervals)}
            got = []
            for name, table in tables.items():
                iset = table.to_dataframe().rename(columns={"start_time": "start", "stop_time": "end"})
                assert {"start", "end", "behavior", "role", "source"} <= set(iset.columns), name
                s, e = iset["start"].values, iset["end"].values
                assert (np.diff(s) > 0).all() and (np.diff(e) > 0).all() and (s[1:] >= e[:-1]).all(), name
                who = name.split("_")[1]
                assert set(iset["role"]) == {"self" if who == a else "partner"}, name
                got += [(who, b, float(x), float(y)) for b, x, y in zip(iset["behavior"], s, e)]
            assert len(tables) > 2 and sorted(got) == truth          # every bout once, with animal and label


def test_simulated_sessions_carry_recording_metadata_for_every_preset(tmp_path):
    """The simulator's session.toml holds the NWB metadata keys (plausible, marked simulated) for every preset and
    both modalities, and they pass the parameter spec."""
    import tomllib

    from pipeline.core.parameters import SPEC
    from pipeline.simulator import PRESETS
    from pipeline.simulator.config import resolve_config
    from pipeline.simulator.files import write_session_toml
    animal = {p.name: p for p in SPEC["animal"].params}
    for preset in PRESETS:
        for modality in ("2p", "1p"):
            path = tmp_path / f"{preset}_{modality}.toml"
            write_session_toml(path, resolve_config(preset, modality=modality), "p", 0, 2.0)
            text = path.read_text()
            doc = tomllib.loads(text)
            assert "simulated" in text.split("[session]")[0]
            s = doc["session"]
            assert s["start_time"] and s["experimenter"] and "simulated" in s["institution"]
            for a in "AB":
                an = doc["animals"][a]
                assert an["sex"] in animal["sex"].choices and an["species"] == "Mus musculus" and an["age"]
                lo, hi = animal["excitation_wavelength"].range
                assert an["location"] and lo <= an["excitation_wavelength"] <= hi
                assert an["excitation_wavelength"] == (920.0 if modality == "2p" else 470.0)


def test_export_names_a_bad_start_time(tmp_path):
    from napari_fixtures import make_result
    make_result(tmp_path / "res")
    with pytest.raises(ValueError, match=r"\[session\] start_time = 'yesterday'; expected ISO 8601"):
        export_nwb(tmp_path / "res", tmp_path / "nwb", metadata={"session": {"start_time": "yesterday"}})
    assert not list(tmp_path.rglob("*.nwb"))       # nothing half-written


def test_simulator_metadata_passes_nwbinspector_dandi(demo_result, tmp_path):
    """Fast variant of tests/test_nwb_cli.py's slow user path: the recording metadata the simulator writes into the
    `demo` preset's session.toml (what `make demo` runs), applied to the committed sample's result, leaves nothing
    for DANDI to reject."""
    import tomllib

    from nwbinspector import Importance
    from pipeline.simulator.config import resolve_config
    from pipeline.simulator.files import write_session_toml
    _, out, _, _ = demo_result
    write_session_toml(tmp_path / "session.toml", resolve_config("demo"), "demo_pair", 0, 2.0)
    doc = tomllib.loads((tmp_path / "session.toml").read_text())
    md = {"session": doc["session"], **{a: doc["animals"][a] for a in "AB"}}
    for path in export_nwb(out, tmp_path / "nwb", metadata=md).values():
        bad = [f"{m.importance.name} {m.check_function_name}: {m.message}" for m in _dandi_messages(path)
               if m.importance in (Importance.CRITICAL, Importance.ERROR, Importance.BEST_PRACTICE_VIOLATION)]
        assert not bad, bad
