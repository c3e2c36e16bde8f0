"""napari plugin: reader layers, ROI selection -> traces, curation file, messages, time cursor.

napari runs for real (pytest-qt + pytest-xvfb, `make_napari_viewer`). The
result folder is written by the real writers (tests/napari_fixtures.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from napari_fixtures import ANIMALS, EVENTS, expected_labels, make_large_result, make_result  # noqa: E402

from pipeline.napari_plugin import curation  # noqa: E402
from pipeline.napari_plugin._reader import (NOT_CELL_COLOR, TYPE_COLORS, animal_offsets, get_reader,  # noqa: E402
                                            roi_label_image)

pytestmark = pytest.mark.filterwarnings("ignore:You are writing invalid netcdf")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def result(tmp_path):
    out = tmp_path / "result"
    return out, make_result(out)


def _errors():
    """Collect napari error/warning notifications emitted while the test runs."""
    from napari.utils.notifications import notification_manager
    got = []
    notification_manager.notification_ready.connect(got.append)
    return got


def _open(viewer, out):
    return viewer.open(str(out), plugin="interbrain")


def _widget(viewer):
    _, w = viewer.window.add_plugin_dock_widget("interbrain", "ROI inspector")
    return w


def _color(layer, label):
    return tuple(np.round(np.asarray(layer.colormap.color_dict[label], float), 3))


# --------------------------------------------------------------------------- no display needed
def test_label_image_highest_weight_wins():
    spec = ANIMALS["A"]
    from napari_fixtures import _footprints
    n, y, x, w = _footprints(spec)
    lab = roi_label_image(spec["shape"], n, y, x, w)
    np.testing.assert_array_equal(lab, expected_labels(spec))
    # ROIs 0 and 1 overlap; ROI 1 has twice the amplitude, so it owns pixels nearer to its centre
    both = set(zip(y[n == 0], x[n == 0])) & set(zip(y[n == 1], x[n == 1]))
    assert both and all(lab[p] in (1, 2) for p in both) and any(lab[p] == 2 for p in both)
    assert sorted(np.unique(lab[lab > 0])) == list(range(1, len(spec["roi_id"]) + 1))
    # shuffling the pixel order does not change the winner
    perm = np.random.default_rng(0).permutation(len(n))
    np.testing.assert_array_equal(roi_label_image(spec["shape"], n[perm], y[perm], x[perm], w[perm]), lab)


def test_offsets_put_animals_side_by_side_with_a_gap():
    off = animal_offsets({"A": 64, "B": 56})
    assert off["A"] == 0 and off["B"] > 64


def test_curation_log_writes_atomically_and_undoes(tmp_path):
    (tmp_path / "curation.csv").write_text("animal,roi_id,label,is_cell\nB,5,,false\n")
    log = curation.CurationLog(tmp_path)
    assert log.edits == [curation.Edit("B", 5, None, False)] and not log.can_undo
    before = open(tmp_path / "curation.csv")                     # a reader holding the old file
    log.add("A", 7, label="GABAergic")
    log.add("A", 7, is_cell=False)
    # replaced by a rename, not rewritten in place: the open reader still sees the complete old table
    assert os.fstat(before.fileno()).st_ino != os.stat(tmp_path / "curation.csv").st_ino
    assert before.read() == "animal,roi_id,label,is_cell\nB,5,,false\n"
    before.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curation.csv"]   # no temp file left
    assert (tmp_path / "curation.csv").read_text().splitlines() == [
        "animal,roi_id,label,is_cell", "B,5,,false", "A,7,GABAergic,", "A,7,,false"]
    assert log.undo() == curation.Edit("A", 7, None, False)
    assert curation.read_curation(tmp_path / "curation.csv") == [curation.Edit("B", 5, None, False),
                                                                 curation.Edit("A", 7, "GABAergic", None)]
    assert log.undo() is not None and log.undo() is None          # the earlier session's row stays
    assert curation.read_curation(tmp_path / "curation.csv") == [curation.Edit("B", 5, None, False)]


def test_curation_apply_last_row_wins_per_field():
    edits = [curation.Edit("A", 7, "GABAergic"), curation.Edit("A", 7, None, False),
             curation.Edit("A", 7, "unknown"), curation.Edit("B", 3, "GABAergic"), curation.Edit("A", 99, None, True)]
    ct, ic = curation.apply(edits, "A", np.array([3, 7]), np.array(["glutamatergic", "glutamatergic"]),
                            np.array([True, True]))
    assert list(ct) == ["glutamatergic", "unknown"] and list(ic) == [True, False]


@pytest.mark.parametrize("text, field", [("animal,roi_id,label\nA,1,unknown\n", "is_cell"),
                                         ("animal,roi_id,label,is_cell\nA,x,,\n", "roi_id"),
                                         ("animal,roi_id,label,is_cell\nA,1,,maybe\n", "is_cell"),
                                         ("animal,roi_id,label,is_cell\nA,1,pyramidal,\n", "label"),
                                         ("animal,roi_id,label,is_cell\nC,1,,true\n", "animal")])
def test_bad_curation_file_is_named(tmp_path, text, field):
    p = tmp_path / "curation.csv"
    p.write_text(text)
    with pytest.raises(curation.CurationFileError, match=field) as exc:
        curation.read_curation(p)
    assert str(p) in str(exc.value)


def test_reader_declines_other_paths(tmp_path, result):
    out, _ = result
    (tmp_path / "plain").mkdir()
    (tmp_path / "image.tif").write_bytes(b"")
    assert get_reader(str(tmp_path / "plain")) is None
    assert get_reader(str(tmp_path / "image.tif")) is None
    assert get_reader([str(out), str(out)]) is None
    assert callable(get_reader(str(out))) and callable(get_reader([str(out)]))


def _assert_not_cell_outlines(layer, labels, is_cell):
    """The outline layer holds exactly the boundary pixels of the "not cell" ROIs, drawn opaque."""
    from scipy import ndimage
    want = np.zeros_like(labels)
    for i, c in enumerate(is_cell):
        if not c:
            m = labels == i + 1
            edge = m & ~ndimage.binary_erosion(m, structure=ndimage.generate_binary_structure(2, 1),
                                               border_value=0)
            want[edge] = i + 1
    np.testing.assert_array_equal(layer.data, want)
    assert layer.visible and layer.opacity == 1.0
    for v in np.unique(want[want > 0]):
        rgba = np.asarray(layer.colormap.map(np.array([v])))[0]
        np.testing.assert_allclose(rgba, NOT_CELL_COLOR, atol=1e-3)


# --------------------------------------------------------------------------- napari, for real
@pytest.mark.gui
def test_reader_layers(make_napari_viewer, result):
    out, truth = result
    viewer = make_napari_viewer()
    _open(viewer, out)
    names = [layer.name for layer in viewer.layers]
    assert names == ["A: mean image", "A: correlation image", "A: ROIs", "A: not cell",
                     "B: mean image", "B: correlation image", "B: ROIs", "B: not cell", "animal names"]
    assert list(viewer.layers["animal names"].features["label"]) == ["A: mA Vgat-Cre", "B: mB Vgat-Cre"]
    for a in "AB":
        img, rois = viewer.layers[f"{a}: mean image"], viewer.layers[f"{a}: ROIs"]
        assert img.data.shape == rois.data.shape == ANIMALS[a]["shape"]
        np.testing.assert_allclose(img.data, truth[a]["mean_image"])
        np.testing.assert_array_equal(rois.data, truth[a]["labels"])
        assert len(np.unique(rois.data[rois.data > 0])) == len(ANIMALS[a]["roi_id"])
        f = rois.features
        assert list(f["roi_id"]) == ANIMALS[a]["roi_id"] and list(f["cell_type"]) == ANIMALS[a]["cell_type"]
        assert list(f["is_cell"]) == ANIMALS[a]["is_cell"]
        assert {"confidence", "iscell_prob"} <= set(f.columns)
        for i, (t, c) in enumerate(zip(ANIMALS[a]["cell_type"], ANIMALS[a]["is_cell"])):
            want = TYPE_COLORS[t] if c else (0.0, 0.0, 0.0, 0.0)          # not cell: no fill, an outline
            assert _color(rois, i + 1) == tuple(np.round(want, 3)), (a, i)
        _assert_not_cell_outlines(viewer.layers[f"{a}: not cell"], truth[a]["labels"], ANIMALS[a]["is_cell"])
    # B sits to the right of A, not on top of it
    assert viewer.layers["B: ROIs"].translate[1] > ANIMALS["A"]["shape"][1]
    # the status bar reports an ROI's features under the cursor (the features table is indexed by label)
    rois = viewer.layers["A: ROIs"]
    assert rois._label_index[3] == 2
    # clicking an ROI of B (through napari's real mouse-callback dispatch) selects it in the dock widget
    from napari.utils._test_utils import read_only_mouse_event
    from napari.utils.interactions import mouse_press_callbacks
    w = _widget(viewer)
    layer = viewer.layers["B: ROIs"]
    cy, cx = ANIMALS["B"]["centre"][4]
    mouse_press_callbacks(layer, read_only_mouse_event(type="mouse_press", position=(cy, cx + layer.translate[1])))
    assert (w.animal, w.index) == ("B", 4)
    np.testing.assert_allclose(w.dff_line.get_ydata(), truth["B"]["dff"][4], rtol=1e-6)
    assert layer.selected_label == 5


@pytest.mark.gui
def test_non_result_and_old_version_give_a_message(make_napari_viewer, tmp_path):
    old = tmp_path / "old"
    make_result(old, format_version=0)
    session_dir = tmp_path / "session"
    session_dir.mkdir()
    (session_dir / "session.toml").write_text("[session]\nname='p'\n[animals.A]\nid='a'\n[animals.B]\nid='b'\n")
    viewer = make_napari_viewer()
    got = _errors()
    _open(viewer, old)                       # as File > Open Folder with the interbrain reader
    _open(viewer, session_dir)
    assert len(viewer.layers) == 0
    msgs = [str(n.message) for n in got]
    assert any("format version 0 is not supported" in m and "rerun `interbrain run`" in m for m in msgs), msgs
    assert any("session folder, not a result" in m for m in msgs), msgs


@pytest.mark.gui
def test_select_roi_plots_traces_behaviour_and_time_cursor(make_napari_viewer, result, tmp_path):
    import tifffile
    out, truth = result
    viewer = make_napari_viewer()
    _open(viewer, out)
    w = _widget(viewer)
    assert w.animal == "A" and w.index == 0 and w.roi_list.count() == len(ANIMALS["A"]["roi_id"])
    np.testing.assert_allclose(w.dff_line.get_ydata(), truth["A"]["dff"][0], rtol=1e-6)
    w.animal_box.setCurrentText("B")
    w.roi_list.setCurrentRow(3)
    assert (w.animal, w.index) == ("B", 3)
    np.testing.assert_allclose(w.dff_line.get_ydata(), truth["B"]["dff"][3], rtol=1e-6)
    np.testing.assert_allclose(w.spk_line.get_ydata(), truth["B"]["spikes"][3], rtol=1e-6)
    np.testing.assert_allclose(w.dff_line.get_xdata(), truth["B"]["frame_time"])
    assert "ROI 5" in w.ax_dff.get_title()
    # ethogram: one row per state behaviour (own and partner halves) and one row of point events
    ticks = [t.get_text() for t in w.ax_beh.get_yticklabels()]
    assert ticks == ["approach", "follow", "sniff", "events"]
    # every piece of plot text (titles, axis and tick labels, ethogram rows) is >= 9 pt (issue 21: 6-8 pt)
    from matplotlib.text import Text
    w.canvas.draw()
    sizes = {t.get_text(): t.get_fontsize() for t in w.figure.findobj(Text) if t.get_text() and t.get_visible()}
    assert {"dF/F", "approach", "events"} <= set(sizes) and min(sizes.values()) >= 9, sizes
    # shading behind the traces, relative to B: own bouts solid, the partner's (A's) hatched
    def spans():
        got = [(round(s0, 3), round(s1, 3), role) for s0, s1, role in w.shaded_spans()]
        assert got == [(round(s0, 3), round(s1, 3), role) for s0, s1, role in w.shaded_spans(w.ax_spk)]
        return got
    assert w.shade_box.currentText() == "approach"
    assert spans() == [(2.0, 5.0, "partner"), (3.0, 4.5, "self")]
    hatched = {str(c.get_label()).split(":")[0]: bool(c.get_hatch()) for c in w.ax_dff.collections
               if ":" in str(c.get_label())}
    assert hatched == {"self": False, "partner": True}
    w.shade_box.setCurrentText("sniff")
    assert spans() == [(10.0, 14.0, "self")]
    w.shade_box.setCurrentText("follow")
    assert spans() == [(20.0, 22.5, "partner")]
    w.select("A", 0)
    # without a movie: the widget's slider drives the cursor
    w.slider.setValue(50)
    assert w.time == pytest.approx(truth["A"]["frame_time"][50])
    assert w.cursors[0].get_xdata()[0] == pytest.approx(w.time)
    # with raw movies: the viewer's time axis (master-clock seconds) and the cursor move together
    (tmp_path / "s").mkdir()
    for a in "AB":
        T, (Y, X) = ANIMALS[a]["n_frames"], ANIMALS[a]["shape"]
        movie = (np.arange(T, dtype=np.uint16)[:, None, None] * np.ones((1, Y, X), np.uint16))  # frame k == k
        tifffile.imwrite(tmp_path / "s" / f"{a}.tif", movie)
    (tmp_path / "s" / "session.toml").write_text("[session]\nname = 'pair_test'\n" + "".join(
        f"[animals.{a}]\nid = 'm{a}'\nraw = ['{a}.tif']\nframe_rate = {ANIMALS[a]['rate']}\n" for a in "AB"))
    meta = json.loads((out / "interbrain.json").read_text())
    (out / "interbrain.json").write_text(json.dumps(dict(meta, session_file=str(tmp_path / "s" / "session.toml"))))
    w.movie_btn.click()                     # raw movies from the session file recorded in interbrain.json
    assert viewer.layers["B: movie"].translate[2] == viewer.layers["B: ROIs"].translate[1]
    names = [lyr.name for lyr in viewer.layers]
    for a in "AB":   # the movie is drawn over the animal's opaque still images and under its ROIs
        assert names.index(f"{a}: mean image") < names.index(f"{a}: movie") < names.index(f"{a}: ROIs")
        assert names.index(f"{a}: correlation image") < names.index(f"{a}: movie")
    assert viewer.dims.axis_labels[0] == "time (s)"
    assert type(viewer.layers["A: movie"].data).__module__.startswith("dask")
    w.set_time(12.3)
    assert viewer.dims.point[0] == pytest.approx(12.3)
    assert w.slider.value() == 123                                  # A's frame at 10 Hz
    viewer.dims.set_point(0, 20.0)
    assert w.time == pytest.approx(20.0) and w.cursors[2].get_xdata()[0] == pytest.approx(20.0)
    assert w.slider.value() == 200
    for a, rate in (("A", 10.0), ("B", 8.0)):
        shown = np.asarray(viewer.layers[f"{a}: movie"]._slice.image.raw)
        assert shown.ravel()[0] == round(20.0 * rate), a             # the frame at t = 20 s


@pytest.mark.gui
def test_curation_edit_saved_recoloured_and_undone(make_napari_viewer, result):
    out, _ = result
    viewer = make_napari_viewer()
    _open(viewer, out)
    w = _widget(viewer)
    layer = viewer.layers["A: ROIs"]
    w.select("A", 2)                               # roi_id 8, 'unknown'
    assert _color(layer, 3) == tuple(np.round(TYPE_COLORS["unknown"], 3))
    w.type_box.setCurrentText("GABAergic")
    w.type_btn.click()
    assert _color(layer, 3) == tuple(np.round(TYPE_COLORS["GABAergic"], 3))
    assert layer.features["cell_type"][2] == "GABAergic" and layer.features["curated"][2]
    w.notcell_btn.click()
    assert _color(layer, 3) == (0.0, 0.0, 0.0, 0.0)
    is_cell = list(ANIMALS["A"]["is_cell"])
    is_cell[2] = False
    _assert_not_cell_outlines(viewer.layers["A: not cell"], layer.data, is_cell)
    assert "(manual)" in w.roi_list.item(2).text() and w.roi_list.item(2).text().endswith("*")
    w.notcell_box.setChecked(False)
    assert not viewer.layers["A: not cell"].visible and not viewer.layers["B: not cell"].visible
    w.notcell_box.setChecked(True)
    assert curation.read_curation(out / "curation.csv") == [curation.Edit("A", 8, "GABAergic", None),
                                                            curation.Edit("A", 8, None, False)]
    # the pipeline's reader of the file (neuroid, used by the celltypes stage) sees the same edits
    import neuroid
    cur = neuroid.read_curation(out / "curation.csv", "A")
    assert cur.labels == {8: "GABAergic"} and cur.is_cell == {8: False}
    assert neuroid.read_curation(out / "curation.csv", "B").labels == {}
    w.undo_btn.click()
    assert _color(layer, 3) == tuple(np.round(TYPE_COLORS["GABAergic"], 3))
    _assert_not_cell_outlines(viewer.layers["A: not cell"], layer.data, ANIMALS["A"]["is_cell"])
    assert curation.read_curation(out / "curation.csv") == [curation.Edit("A", 8, "GABAergic", None)]
    cur = neuroid.read_curation(out / "curation.csv", "A")
    assert cur.labels == {8: "GABAergic"} and cur.is_cell == {}
    # opening the result again shows the saved edit
    from pipeline.napari_plugin import result_layers
    _, kw, _ = [ld for ld in result_layers(out) if ld[1]["name"] == "A: ROIs"][0]
    assert kw["features"]["cell_type"][2] == "GABAergic" and kw["features"]["curated"][2]
    np.testing.assert_allclose(kw["colormap"].color_dict[3], TYPE_COLORS["GABAergic"], atol=1e-3)


def test_session_reader_opens_raw_movies_lazily(tmp_path):
    import tifffile
    from pipeline.napari_plugin import get_session_reader
    movie = np.random.default_rng(0).integers(0, 1000, (40, 16, 20)).astype(np.uint16)
    for a in "AB":
        tifffile.imwrite(tmp_path / f"{a}.tif", movie[::-1] if a == "B" else movie)
    (tmp_path / "session.toml").write_text("[session]\nname = 'p'\n" + "".join(
        f"[animals.{a}]\nid = 'm{a}'\nraw = ['{a}.tif']\nframe_rate = 20.0\nstart_offset_s = 5.0\n" for a in "AB"))
    (tmp_path / "other.toml").write_text("[tool.black]\nline-length = 100\n")
    assert get_session_reader(str(tmp_path / "other.toml")) is None
    layers = get_session_reader(str(tmp_path / "session.toml"))(str(tmp_path / "session.toml"))
    (a, ka, _), (b, kb, _) = layers
    assert type(a).__module__.startswith("dask") and a.chunks[0] == (1,) * 40
    np.testing.assert_array_equal(np.asarray(a[7]), movie[7])
    np.testing.assert_array_equal(np.asarray(b[7]), movie[32])
    assert ka["scale"][0] == pytest.approx(0.05) and ka["translate"][0] == pytest.approx(5.0)
    assert kb["translate"][2] > 20


@pytest.mark.gui
def test_time_axis_reads_in_seconds(make_napari_viewer, tmp_path):
    """napari's time axis is in master-clock seconds: label, unit, range, the point a slider step gives."""
    import pint
    import tifffile
    movie = (np.arange(40, dtype=np.uint16)[:, None, None] * np.ones((1, 16, 20), np.uint16))  # frame k == k
    for a in "AB":
        tifffile.imwrite(tmp_path / f"{a}.tif", movie)
    (tmp_path / "session.toml").write_text("[session]\nname = 'p'\n" + "".join(
        f"[animals.{a}]\nid = 'm{a}'\nraw = ['{a}.tif']\nframe_rate = 20.0\nstart_offset_s = 5.0\n" for a in "AB"))
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "session.toml"), plugin="interbrain")
    dims = viewer.dims
    assert dims.axis_labels[0] == "time (s)" and dims.units[0] == pint.get_application_registry().second
    start, stop, step = dims.range[0]
    assert start == pytest.approx(5.0) and step == pytest.approx(0.05) and stop == pytest.approx(5.0 + 39 * 0.05)
    dims.set_current_step(0, 13)                            # one slider position ...
    assert dims.point[0] == pytest.approx(5.0 + 13 * 0.05)  # ... is a time in seconds
    shown = np.asarray(viewer.layers["A: movie"]._slice.image.raw)
    assert shown.ravel()[0] == 13                           # and shows the frame recorded then
    dims.set_point(0, 6.0)                                  # a time in seconds selects its frame
    assert dims.current_step[0] == 20 and np.asarray(viewer.layers["B: movie"]._slice.image.raw).ravel()[0] == 20


@pytest.mark.gui
def test_time_readout_in_seconds_for_two_clocks(make_napari_viewer, tmp_path):
    """Moving napari's own time slider shows "t = ... s (A frame i, B frame j)" in the dock and on the canvas.

    The animals run at different rates on different clocks (A: 20 Hz from 5 s, B: 8 Hz from 3 s), so one
    slider step is not one frame of each: the readout must name the frame each movie really shows (read
    back from napari's slice of a movie whose frame k holds the value k), recorded within half a frame
    period of the time shown. napari's slider box itself shows only the step number.
    """
    import re
    import tifffile
    clocks = {"A": (20.0, 5.0, 40), "B": (8.0, 3.0, 30)}          # rate (Hz), first frame (s), frames
    for a, (_, _, T) in clocks.items():
        movie = np.arange(T, dtype=np.uint16)[:, None, None] * np.ones((1, 16, 20), np.uint16)   # frame k == k
        tifffile.imwrite(tmp_path / f"{a}.tif", movie)
    (tmp_path / "session.toml").write_text("[session]\nname = 'p'\n" + "".join(
        f"[animals.{a}]\nid = 'm{a}'\nraw = ['{a}.tif']\nframe_rate = {r}\nstart_offset_s = {t0}\n"
        for a, (r, t0, _) in clocks.items()))
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "session.toml"), plugin="interbrain")
    w = _widget(viewer)
    start, _, step = viewer.dims.range[0]
    assert start == pytest.approx(3.0) and step == pytest.approx(0.05)   # napari steps by the finer period
    slider = viewer.window._qt_viewer.dims.slider_widgets[0].slider      # the slider the user drags
    overlay = viewer.canvas.overlays.text
    seen = set()
    for k in (0, 33, 47, 61, 75):
        slider.setValue(k)
        t = 3.0 + k * 0.05
        assert viewer.dims.point[0] == pytest.approx(t)
        m = re.fullmatch(r"t = ([\d.]+) s \(A frame (\d+|-), B frame (\d+|-)\)", w.time_label.text())
        assert m, w.time_label.text()
        assert float(m.group(1)) == pytest.approx(t, abs=0.005)
        assert overlay.visible and overlay.text == w.time_label.text()                   # on the canvas too
        assert w.time == pytest.approx(t) and w.cursors[0].get_xdata()[0] == pytest.approx(t)   # plot cursor
        for a, got in zip("AB", m.groups()[1:]):
            rate, t0, T = clocks[a]
            if got == "-":                                           # before its first / after its last frame
                assert t < t0 - 0.5 / rate or t > t0 + (T - 0.5) / rate
                seen.add((a, "-"))
                continue
            shown = int(np.asarray(viewer.layers[f"{a}: movie"]._slice.image.raw).ravel()[0])
            assert int(got) == shown, (k, a)                         # the frame napari draws
            assert abs(t0 + shown / rate - t) <= 0.5 / rate + 1e-9   # recorded at the time shown
            seen.add((a, "frame"))
    assert seen == {("A", "-"), ("A", "frame"), ("B", "frame"), ("B", "-")}
    for a in "AB":                                                   # movies closed: the overlay goes
        viewer.layers.remove(f"{a}: movie")
    assert not overlay.visible


def test_behaviour_from_align_grids_matches_event_table(tmp_path):
    from pipeline import load
    from pipeline.napari_plugin._widget import behaviour_bouts
    out = tmp_path / "r"
    make_result(out, with_align=True, with_events=False)
    bouts = behaviour_bouts(load(out, lazy=True), "A")
    got = sorted((r.role, r.behavior, round(r.start, 3), round(r.stop, 3)) for r in bouts.itertuples())
    want = sorted(("self" if a == "A" else "partner", b, s, e) for a, b, s, e, k in EVENTS if k == "state")
    assert got == want


# --------------------------------------------------------------------------- slow tier
@pytest.mark.slow
@pytest.mark.gui
def test_screenshot_script(result, tmp_path):
    out, _ = result
    png = tmp_path / "shot.png"
    env = dict(os.environ, MPLBACKEND="Agg")
    cmd = [sys.executable, str(ROOT / "scripts" / "napari_screenshot.py"), str(out), str(png)]
    if not os.environ.get("DISPLAY"):
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24"] + cmd
    subprocess.run(cmd, check=True, env=env, timeout=300)
    import imageio.v3 as iio
    img = iio.imread(png)
    assert img.shape[0] > 400 and img.shape[1] > 800 and img[..., :3].std() > 10


@pytest.mark.slow
def test_realistic_size_labels_exact_and_fast():
    """512 x 512 FOVs with ~800 ROIs each: labels built exactly, one ROI plotted."""
    import time
    rng = np.random.default_rng(0)
    Y = X = 512
    n_roi, r = 800, 6
    cy, cx = rng.integers(r, Y - r, n_roi), rng.integers(r, X - r, n_roi)
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    m = dy ** 2 + dx ** 2 <= r * r
    pn = np.repeat(np.arange(n_roi), m.sum())
    py = (cy[:, None] + dy[m][None]).ravel()
    px = (cx[:, None] + dx[m][None]).ravel()
    pw = rng.random(len(pn))
    t0 = time.perf_counter()
    lab = roi_label_image((Y, X), pn, py, px, pw)
    assert time.perf_counter() - t0 < 2.0
    best = np.full((Y, X), -1.0)
    ref = np.zeros((Y, X), np.int32)
    for n, y, x, w in zip(pn, py, px, pw):
        if w > best[y, x]:
            best[y, x], ref[y, x] = w, n + 1
    np.testing.assert_array_equal(lab, ref)


@pytest.mark.slow
@pytest.mark.gui
def test_realistic_size_result_in_napari(make_napari_viewer, tmp_path):
    """512 x 512 FOVs, 400 ROIs and 9000 frames per animal: every ROI labelled and coloured, traces plotted."""
    import time
    truth = make_large_result(tmp_path / "big")
    viewer = make_napari_viewer()
    t0 = time.perf_counter()
    _open(viewer, tmp_path / "big")
    w = _widget(viewer)
    t_open = time.perf_counter() - t0
    for a in "AB":
        layer = viewer.layers[f"{a}: ROIs"]
        assert len(np.unique(layer.data[layer.data > 0])) == truth[a]["n_roi"]
        want = [TYPE_COLORS[t] for t in truth[a]["cell_type"]]
        got = [layer.colormap.color_dict[i + 1] for i in range(truth[a]["n_roi"])]
        np.testing.assert_allclose(got, want, atol=1e-3)
    t0 = time.perf_counter()
    w.select("B", 321)
    t_select = time.perf_counter() - t0
    # 9000 frames are drawn as a min/max envelope: every extreme of the trace is on the line
    y, row = w.dff_line.get_ydata(), truth["B"]["dff"][321]
    assert len(y) <= 2000 and y.max() == row.max() and y.min() == row.min() and set(y) <= set(row)
    print(f"open + dock widget {t_open:.1f} s, select one ROI {t_select * 1000:.0f} ms")
    assert t_select < 2.0


@pytest.mark.gui
def test_switching_animal_is_fast_at_demo_size(make_napari_viewer, tmp_path):
    """Switching the selection to the other animal on a 128 x 128 px, 65-ROI, 9000-frame result.

    Issue 21 saw 3 s per switch. The bound is on the work done, which a loaded machine does not
    inflate much: each switch redraws the plot once, runs no layout pass, and uses < 0.5 s of this
    process's CPU (Qt, napari's software rendering and matplotlib all run in it). Wall time is bounded
    only generously (2.5 s), because on a shared 2-core machine at load 10 it is several times the CPU
    time; see docs/napari.md for measured figures.
    """
    import time
    from qtpy.QtWidgets import QApplication
    truth = make_large_result(tmp_path / "r", n_roi=65, shape=(128, 128), n_frames=9000)
    viewer = make_napari_viewer()
    _open(viewer, tmp_path / "r")
    w = _widget(viewer)
    app = QApplication.instance()
    draws = []
    w.canvas.mpl_connect("draw_event", lambda e: draws.append(1))

    def switch(animal, index):
        n0, l0 = len(draws), w.n_layouts
        t0, c0 = time.perf_counter(), time.process_time()
        w.select(animal, index)
        while len(draws) == n0 and time.perf_counter() - t0 < 30:   # until the plot is drawn on screen
            app.processEvents()
        return time.perf_counter() - t0, time.process_time() - c0, len(draws) - n0, w.n_layouts - l0

    switch("B", 0), switch("A", 0)                           # first draws (fonts, caches) are not timed
    runs = [switch(a, i) for i in (5, 17, 40) for a in ("B", "A")]
    wall, cpu = np.median([r[0] for r in runs]), np.median([r[1] for r in runs])
    print(f"switch animal: median wall {wall * 1000:.0f} ms, CPU {cpu * 1000:.0f} ms over {len(runs)} switches")
    assert all(r[2] == 1 and r[3] == 0 for r in runs), runs  # one draw, no layout pass per switch
    assert cpu < 0.5 and wall < 2.5, runs
    # and the switch shows the right ROI: trace extremes and outline position
    assert (w.animal, w.index) == ("A", 40)
    y = w.dff_line.get_ydata()
    assert y.max() == truth["A"]["dff"][40].max() and y.min() == truth["A"]["dff"][40].min()
    sel = viewer.layers["selected ROI"].data
    np.testing.assert_array_equal(sel[:128, :128] > 0, viewer.layers["A: ROIs"].data == 41)
    assert not sel[:, 128:].any()


# --------------------------------------------------------------------------- opening without plugin=
def test_reader_patterns_claim_the_result_not_every_file(make_napari_viewer, result, tmp_path):
    """npe2 offers our reader for RESULT/interbrain.json alone, and no longer for every file ("*")."""
    from napari.plugins import _npe2
    out, _ = result
    make_napari_viewer()                                    # initialises the plugin manager
    assert list(_npe2.get_readers(str(out / "interbrain.json"))) == ["interbrain"]
    (tmp_path / "movie.tif").write_bytes(b"")
    assert "interbrain" not in _npe2.get_readers(str(tmp_path / "movie.tif"))
    assert "interbrain" in _npe2.get_readers(str(out))     # folders: every reader that accepts folders


@pytest.mark.gui
def test_open_result_without_plugin_argument(make_napari_viewer, result):
    """`napari RESULT/interbrain.json` (the CLI's path: plugin=None) and `interbrain view RESULT`."""
    out, truth = result
    viewer = make_napari_viewer()
    viewer._window._qt_viewer._qt_open([str(out / "interbrain.json")], stack=False, plugin=None)
    np.testing.assert_array_equal(viewer.layers["B: ROIs"].data, truth["B"]["labels"])
    from pipeline.napari_plugin import view
    viewer2 = make_napari_viewer()
    _, w = view(out, viewer2)
    assert [lyr.name for lyr in viewer2.layers][:3] == ["A: mean image", "A: correlation image", "A: ROIs"]
    assert w.out == out and (w.animal, w.index) == ("A", 0)


@pytest.mark.gui
@pytest.mark.xfail(strict=True, reason="napari 0.9 gap: viewer.open(FOLDER) defaults to plugin='napari', whose "
                   "folder reader fails on a result, and no npe2 manifest field or reader setting changes that "
                   "default (docs/napari.md, 'Open a result')")
def test_viewer_open_folder_without_plugin_argument(make_napari_viewer, result):
    out, truth = result
    viewer = make_napari_viewer()
    viewer.open(str(out))
    np.testing.assert_array_equal(viewer.layers["B: ROIs"].data, truth["B"]["labels"])


@pytest.mark.gui
def test_napari_folder_with_a_preferred_reader_setting(make_napari_viewer, tmp_path):
    """`napari FOLDER` (plugin=None) opens every result folder without asking once napari's preferred-reader
    setting maps the folder pattern docs/napari.md gives ("*_results/") to interbrain."""
    from napari.plugins import _npe2
    from napari.settings import get_settings
    truth = {name: make_result(tmp_path / name) for name in ("demo_results", "pair2_results")}
    viewer = make_napari_viewer()
    # Preferences > Plugins offers no reader for a folder pattern, hence the Python recipe in the docs
    assert _npe2.get_readers("*_results/") == {}
    plugins = get_settings().plugins
    before = dict(plugins.extension2reader)
    try:
        plugins.extension2reader = {**before, "*_results/": "interbrain"}
        for name in truth:
            viewer.layers.clear()
            viewer._window._qt_viewer._qt_open([str(tmp_path / name)], stack=False, plugin=None)
            np.testing.assert_array_equal(viewer.layers["B: ROIs"].data, truth[name]["B"]["labels"])
    finally:
        plugins.extension2reader = before


def _answer_reader_dialog(choice: str | None, remember: bool, seen: list):
    """Answer napari's "Choose reader" dialog when it opens (modal, so from a timer): record what it offers
    (reader names, the "remember" text, the reader chosen by default), pick `choice` or cancel (None)."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication
    from napari._qt.dialogs.qt_reader_dialog import QtReaderDialog

    def poll(tries=[0]):
        dlg = QApplication.activeModalWidget()
        if not isinstance(dlg, QtReaderDialog):
            tries[0] += 1
            if tries[0] < 300:
                QTimer.singleShot(20, poll)
            return
        buttons = dlg.reader_btn_group.buttons()
        seen.append({"readers": [b.text() for b in buttons], "default": dlg._get_plugin_choice(),
                     "remember": dlg.persist_checkbox.text(), "remember_checked": dlg.persist_checkbox.isChecked()})
        if choice is None:
            dlg.reject()
            return
        next(b for b in buttons if b.text() == choice).setChecked(True)
        dlg.persist_checkbox.setChecked(remember)
        dlg.accept()
    QTimer.singleShot(0, poll)


@pytest.mark.gui
def test_napari_folder_reader_dialog_and_remember(make_napari_viewer, tmp_path):
    """Plain `napari RESULT` (plugin=None, as napari's CLI and File > Open Folder do): what the reader dialog
    offers, and what its "remember" box stores: the one folder's absolute path, not every result folder."""
    from napari.settings import get_settings
    out1, out2 = tmp_path / "r1", tmp_path / "r2"
    truth = make_result(out1)
    make_result(out2)
    viewer = make_napari_viewer()
    plugins = get_settings().plugins
    before = dict(plugins.extension2reader)
    qt_open = viewer._window._qt_viewer._qt_open
    seen: list = []
    try:
        _answer_reader_dialog("interbrain", True, seen)
        qt_open([str(out1)], stack=False, plugin=None)
        assert len(seen) == 1, seen
        d = seen[0]
        # two readers accept a folder: interbrain (chosen by default: first in name order) and napari's own
        assert "interbrain" in d["readers"] and len(d["readers"]) == 2 and d["default"] == "interbrain", d
        assert not d["remember_checked"] and str(out1.resolve()) + os.sep in d["remember"], d
        np.testing.assert_array_equal(viewer.layers["B: ROIs"].data, truth["B"]["labels"])
        added = {k: v for k, v in plugins.extension2reader.items() if k not in before}
        assert added == {str(out1.resolve()) + os.sep: "interbrain"}          # this folder only
        # the same folder again: no dialog
        viewer.layers.clear()
        _answer_reader_dialog(None, False, seen)
        qt_open([str(out1)], stack=False, plugin=None)
        assert len(seen) == 1 and "B: ROIs" in [lyr.name for lyr in viewer.layers]
        viewer.layers.clear()
        # another result folder: napari asks again (cancelled here: nothing opens)
        qt_open([str(out2)], stack=False, plugin=None)
        assert len(seen) == 2 and len(viewer.layers) == 0
    finally:
        plugins.extension2reader = before


def test_view_command_names_a_folder_that_is_not_a_result(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pipeline", "view", str(tmp_path)], capture_output=True, text=True,
                       cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(tmp_path) in r.stderr and "interbrain.json" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.gui
def test_selected_roi_is_outlined_and_centred(make_napari_viewer, result):
    out, truth = result
    viewer = make_napari_viewer()
    _open(viewer, out)
    w = _widget(viewer)
    w.animal_box.setCurrentText("B")
    w.roi_list.setCurrentRow(3)                              # "ROI 5" of B, chosen in the list
    sel = viewer.layers["selected ROI"]
    rois = viewer.layers["B: ROIs"]
    # the outline layer spans both fields of view (world = its pixels): B's ROI sits at B's offset
    x0 = int(rois.translate[1])
    (H, W), outline = ANIMALS["B"]["shape"], np.zeros(sel.data.shape, bool)
    outline[:H, x0:x0 + W] = truth["B"]["labels"] == 4
    np.testing.assert_array_equal(sel.data > 0, outline)
    assert sel.visible and sel.contour > 0 and not np.any(sel.translate)
    cy, cx = ANIMALS["B"]["centre"][3]
    centre = viewer.camera.center[-2:]
    assert abs(centre[0] - cy) < 2 and abs(centre[1] - (cx + rois.translate[1])) < 2
    assert viewer.layers.selection.active is rois or w.index == 3
    w.select("A", 1)                                         # back to A: the outline moves to A's ROI
    (H, W), outline = ANIMALS["A"]["shape"], np.zeros(sel.data.shape, bool)
    outline[:H, :W] = truth["A"]["labels"] == 2
    np.testing.assert_array_equal(sel.data > 0, outline)


def test_curated_mark_survives_a_rerun(tmp_path):
    """After `interbrain run` applies curation.csv, the pipeline's labels equal the edits; still marked curated."""
    from pipeline import load
    from pipeline.napari_plugin._reader import roi_table
    out = tmp_path / "r"
    make_result(out)
    edits = [curation.Edit("A", 8, "GABAergic", None), curation.Edit("A", 12, None, True)]
    t = roi_table(load(out, lazy=True), "A", edits)
    # roi 8 was 'unknown' (an edit that changes it), roi 12 is set to 'cell' (an edit that changes it)
    assert list(t["curated"]) == [False, False, True, True, False, False]
    assert t["label_source"][2] == "curation" and not np.isfinite(t["confidence"][2])
    assert t["label_source"][3] == "pipeline" and np.isfinite(t["confidence"][3])
    # the rerun: the celltypes stage wrote the edited values; the edits are still in curation.csv
    import xarray as xr
    p = out / "stages" / "celltypes" / "result.nc"
    tree = xr.open_datatree(p, engine="h5netcdf").load()
    ds = tree["A/celltypes"].to_dataset()
    ct, ic = ds["cell_type"].values.astype(str).astype(object), ds["is_cell"].values.copy()
    ct[2], ic[3] = "GABAergic", True
    tree["A/celltypes"] = xr.DataTree(ds.assign(cell_type=("neuron", ct), is_cell=("neuron", ic)))
    tree.to_netcdf(p.with_suffix(".tmp.nc"), engine="h5netcdf")
    p.with_suffix(".tmp.nc").replace(p)
    t2 = roi_table(load(out, lazy=True), "A", edits)
    assert list(t2["curated"]) == [False, False, True, True, False, False]
    assert list(t2["cell_type"]) == list(t["cell_type"]) and list(t2["is_cell"]) == list(t["is_cell"])


def test_viewers_do_not_release_references_to_none(make_napari_viewer, result):
    """With PySide6 6.12 every viewer that showed a result and the ROI inspector released references to None
    it never took, some with every ROI selection (docs/napari.md, "Which Qt binding"); Python 3.11's None is
    not immortal, so a long curation session (or this test suite) aborted with 'none_dealloc'. The dev
    binding is PyQt6, where the count does not fall. Fails under QT_API=pyside6."""
    import gc
    import sys
    from qtpy.QtWidgets import QApplication
    out, _ = result

    def one_viewer(n_select):
        viewer = make_napari_viewer()
        _open(viewer, out)
        w = _widget(viewer)
        QApplication.processEvents()
        for i in range(n_select):
            w.roi_list.setCurrentRow(i % w.roi_list.count())
            QApplication.processEvents()
        viewer.close()
        gc.collect()
        QApplication.processEvents()

    one_viewer(2)                                           # first viewer: napari's one-off caches
    before = sys.getrefcount(None)
    one_viewer(40)
    assert before - sys.getrefcount(None) < 500, "None's reference count fell over one viewer's life"
