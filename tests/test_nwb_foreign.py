"""NWB in, from files written by other tools' writers (pynwb's mock ophys helpers, neuroconv + roiextractors).

Each file plants known masks, traces and frame times; the reader must recover them exactly, keep background
components apart from cells, and name the file and object path of whatever is missing or unusable.
"""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import tifffile

from pipeline.io.nwb import describe_nwb, session_from_nwb
from pipeline.io.nwb_in import NWBInputError, check_nwb, read_segmentation
from pipeline.io.readers import open_movie

ROOT = Path(__file__).resolve().parents[1]
T, Y, X = 60, 16, 20


def _nwbfile(**kw):
    from pynwb import NWBFile
    from pynwb.file import Subject
    nwb = NWBFile(session_description="foreign test file", identifier=kw.pop("identifier", "id"),
                  session_start_time=datetime(2024, 3, 1, 10, 30, tzinfo=timezone.utc), session_id="s1", **kw)
    nwb.subject = Subject(subject_id="m9", species="Mus musculus", sex="F", age="P70D")
    return nwb


def _write(nwb, path):
    from pynwb import NWBHDF5IO
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def _masks(n, seed=0):
    """(n, Y, X) disjoint square masks with distinct weights."""
    rng = np.random.default_rng(seed)
    m = np.zeros((n, Y, X), np.float32)
    for i in range(n):
        y, x = 1 + 5 * (i // 3), 1 + 6 * (i % 3)
        m[i, y:y + 3, x:x + 3] = rng.uniform(0.2, 1.0, (3, 3))
    return m


def _mock_plane(nwb, masks, name="PlaneSegmentation", mask_type="image_mask", plane=None, **cols):
    """A PlaneSegmentation filled with `masks` through pynwb's mock helpers (imaging plane, device, module)."""
    from pynwb.testing.mock.ophys import mock_ImagingPlane, mock_PlaneSegmentation
    plane = plane or mock_ImagingPlane(nwbfile=nwb)
    ps = mock_PlaneSegmentation(name=name, imaging_plane=plane, n_rois=0, nwbfile=nwb)
    for c in cols:
        ps.add_column(c, f"{c} column")
    for i, m in enumerate(masks):
        extra = {c: v[i] for c, v in cols.items()}
        if mask_type == "image_mask":
            ps.add_roi(image_mask=m, **extra)
        else:
            yy, xx = np.nonzero(m)
            ps.add_roi(pixel_mask=[(int(x), int(y), float(m[y, x])) for y, x in zip(yy, xx)], **extra)
    return ps, plane


def _series(nwb, ps, name, data, region, container="Fluorescence", **time):
    from pynwb.ophys import DfOverF, Fluorescence, RoiResponseSeries
    ophys = nwb.processing["ophys"]
    if container not in ophys.data_interfaces:
        ophys.add((Fluorescence if container == "Fluorescence" else DfOverF)(name=container))
    rr = ps.create_roi_table_region(description=f"{name} rois", region=list(region))
    time = time or {"rate": 10.0, "starting_time": 2.0}
    ophys[container].add_roi_response_series(RoiResponseSeries(name=name, data=data, rois=rr, unit="a.u.", **time))


def test_rois_time_orientation_background_apart_and_iscell(tmp_path):
    """The issue's file: 4 cells + 2 background components in one PlaneSegmentation, each series with its own
    region, F stored (rois, time); suite2p's `iscell` column (flag, probability)."""
    rng = np.random.default_rng(1)
    nwb = _nwbfile()
    masks = _masks(6)
    iscell = np.array([[1, .9], [0, .2], [1, .8], [1, .7], [0, 0], [0, 0]])
    ps, _ = _mock_plane(nwb, masks, iscell=iscell.tolist())
    F = rng.normal(100, 5, (4, T)).astype(np.float32)        # (rois, time): pynwb warns, the reader copes
    bg = rng.normal(50, 1, (T, 2)).astype(np.float32)
    dff = rng.normal(0, 1, (T, 4)).astype(np.float32)
    _series(nwb, ps, "RoiResponseSeries", F, range(4))
    _series(nwb, ps, "Background", bg, (4, 5))
    _series(nwb, ps, "dff", dff, range(4), container="DfOverF")
    path = _write(nwb, tmp_path / "f.nwb")
    rois, traces = read_segmentation(path)
    assert rois.sizes["neuron"] == 4 and traces.sizes["frame"] == T
    np.testing.assert_array_equal(traces["F"].values, F)
    np.testing.assert_array_equal(traces["dff"].values, dff.T)
    np.testing.assert_array_equal(traces["background"].values, bg.T)
    assert rois["is_cell"].values.tolist() == [True, False, True, True]
    np.testing.assert_allclose(rois["iscell_prob"].values, [.9, .2, .8, .7])
    np.testing.assert_allclose(traces["frame_time"].values, 2.0 + np.arange(T) / 10.0)
    dense = np.zeros((4, Y, X), np.float32)
    dense[rois["pix_neuron"].values, rois["pix_y"].values, rois["pix_x"].values] = rois["pix_weight"].values
    np.testing.assert_array_equal(dense, masks[:4])


def test_pixel_masks_timestamps_and_own_regions(tmp_path):
    """pixel_mask ROIs; two series cover different rows (each its own region); irregular timestamps."""
    rng = np.random.default_rng(2)
    nwb = _nwbfile()
    masks = _masks(5)
    ps, _ = _mock_plane(nwb, masks, mask_type="pixel_mask", is_cell=[True, True, False, True, True])
    ts = np.cumsum(rng.uniform(0.09, 0.11, T))
    a = rng.normal(size=(T, 3)).astype(np.float32)
    b = rng.normal(size=(T, 2)).astype(np.float32)
    _series(nwb, ps, "RoiResponseSeries", a, (0, 2, 4), timestamps=ts)
    _series(nwb, ps, "Neuropil", rng.normal(size=(T, 5)).astype(np.float32), range(5), timestamps=ts)
    _series(nwb, ps, "Deconvolved", b, (1, 3), timestamps=ts)
    rois, traces = read_segmentation(_write(nwb, tmp_path / "p.nwb"))
    F = traces["F"].values
    np.testing.assert_array_equal(F[[0, 2, 4]], a.T)
    assert np.isnan(F[[1, 3]]).all()                 # rows a series does not cover stay empty
    np.testing.assert_array_equal(traces["spikes"].values[[1, 3]], b.T)
    np.testing.assert_array_equal(traces["frame_time"].values, ts)
    assert rois["is_cell"].values.tolist() == [True, True, False, True, True]
    # no image or raw series gives the FOV size: it ends at the last ROI pixel
    y, x = rois["pix_y"].values, rois["pix_x"].values
    dense = np.zeros((5, Y, X), np.float32)
    dense[rois["pix_neuron"].values, y, x] = rois["pix_weight"].values
    np.testing.assert_allclose(dense, masks, rtol=1e-6)
    assert (rois.sizes["y"], rois.sizes["x"]) == (y.max() + 1, x.max() + 1)


def test_rate_zero_without_timestamps_names_the_series(tmp_path):
    nwb = _nwbfile()
    ps, _ = _mock_plane(nwb, _masks(3))
    _series(nwb, ps, "RoiResponseSeries", np.ones((T, 3), np.float32), range(3), rate=0.0)
    path = _write(nwb, tmp_path / "r0.nwb")
    with pytest.raises(NWBInputError, match=r"r0.nwb: /processing/ophys/Fluorescence/RoiResponseSeries: rate is 0"):
        read_segmentation(path)
    rois, traces = read_segmentation(path, frame_rate=5.0)    # a session frame_rate rescues it
    np.testing.assert_allclose(np.diff(traces["frame_time"].values), 0.2)


def test_several_planes_need_a_choice(tmp_path):
    from pynwb.testing.mock.ophys import mock_ImagingPlane
    nwb = _nwbfile()
    ps1, _ = _mock_plane(nwb, _masks(3), name="PlaneSegmentation0", plane=mock_ImagingPlane(name="Plane0", nwbfile=nwb))
    ps2, _ = _mock_plane(nwb, _masks(4, 1), name="PlaneSegmentation1", plane=mock_ImagingPlane(name="Plane1", nwbfile=nwb))
    _series(nwb, ps1, "RoiResponseSeries0", np.ones((T, 3), np.float32), range(3))
    _series(nwb, ps2, "RoiResponseSeries1", np.full((T, 4), 2, np.float32), range(4))
    path = _write(nwb, tmp_path / "two.nwb")
    with pytest.raises(NWBInputError, match=r"2 PlaneSegmentations.*PlaneSegmentation0.*PlaneSegmentation1.*nwb_plane"):
        read_segmentation(path)
    rois, traces = read_segmentation(path, plane="PlaneSegmentation1")
    assert rois.sizes["neuron"] == 4 and (traces["RoiResponseSeries1"].values == 2).all()
    rois, _ = read_segmentation(path, plane="/processing/ophys/PlaneSegmentation0")
    assert rois.sizes["neuron"] == 3


def _raw_file(tmp_path, kind="TwoPhotonSeries", external=False, empty=False):
    """A raw-only NWB file: frames inside, in an external TIFF (relative path), or none at all."""
    from pynwb.testing.mock.ophys import mock_OnePhotonSeries, mock_TwoPhotonSeries
    rng = np.random.default_rng(3)
    movie = rng.integers(0, 1000, (T, Y, X)).astype(np.uint16)
    nwb = _nwbfile()
    mk = mock_TwoPhotonSeries if kind == "TwoPhotonSeries" else mock_OnePhotonSeries
    if external:
        (tmp_path / "raw").mkdir(exist_ok=True)
        tifffile.imwrite(tmp_path / "raw" / "movie.tif", movie)
        from pynwb.ophys import OnePhotonSeries, TwoPhotonSeries
        from pynwb.testing.mock.ophys import mock_ImagingPlane
        cls = TwoPhotonSeries if kind == "TwoPhotonSeries" else OnePhotonSeries
        nwb.add_acquisition(cls(name="raw", imaging_plane=mock_ImagingPlane(nwbfile=nwb), external_file=["raw/movie.tif"],
                                format="external", starting_frame=[0], rate=8.0, num_samples=T, unit="n.a."))
    elif empty:
        mk(name="raw", nwbfile=nwb, data=np.zeros((0, 0, 0), np.uint16), rate=8.0)
    else:
        mk(name="raw", nwbfile=nwb, data=movie, rate=8.0)
    return _write(nwb, tmp_path / f"{kind}_{external}_{empty}.nwb"), movie


@pytest.mark.parametrize("kind", ["TwoPhotonSeries", "OnePhotonSeries"])
def test_raw_series_inside_or_in_linked_tiff(tmp_path, kind):
    for external in (False, True):
        path, movie = _raw_file(tmp_path, kind, external=external)
        with open_movie(path, format="nwb") as mv:
            assert mv.shape == (T, Y, X)
            np.testing.assert_array_equal(mv[5:9], movie[5:9])
    out = tmp_path / "sess"
    a, _ = _raw_file(tmp_path, kind, external=True)
    (tmp_path / "other").mkdir()
    b, _ = _raw_file(tmp_path / "other", kind)
    toml, missing = session_from_nwb(a, b, out)
    ts = np.loadtxt(out / "A_timestamps.csv", delimiter=",", skiprows=1)
    assert len(ts) == T and np.allclose(np.diff(ts[:, 1]), 1 / 8.0)
    text = toml.read_text()
    assert ('modality = "1p"' in text) == (kind == "OnePhotonSeries")
    assert 'start_time = "2024-03-01T10:30:00+00:00"' in text and 'age = "P70D"' in text


def test_no_raw_frames_is_named_and_validate_exits_2(tmp_path):
    """A raw series with no frames and no external file: ROIs-only is said so; nothing at all is an error."""
    path, _ = _raw_file(tmp_path, empty=True)
    problems, notes = check_nwb(path)
    assert any("/acquisition/raw: no frames stored" in n for n in notes)
    assert problems and "nothing to analyse" in problems[0] and path.name in problems[0]
    assert describe_nwb(path)["raw"]["frames"] == "none"
    # through the CLI: exit 2, one line naming the file
    (tmp_path / "o").mkdir()
    other, _ = _raw_file(tmp_path / "o")
    toml = tmp_path / "session.toml"
    toml.write_text(f'[session]\nname = "x"\n[animals.A]\nid = "a"\nraw = ["{path}"]\nframe_rate = 8.0\n'
                    f'[animals.B]\nid = "b"\nraw = ["{other}"]\nframe_rate = 8.0\n')
    r = subprocess.run([sys.executable, "-m", "pipeline", "validate", str(toml)], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "[animals.A]" in err[0] and path.name in err[0] and "Traceback" not in r.stderr


def test_neuroconv_roiextractors_file_with_background_plane(tmp_path):
    """neuroconv's writer on a roiextractors segmentation: pixel masks, is_accepted, images stored (x, y),
    a BackgroundPlaneSegmentation whose traces stay apart from the cells.

    neuroconv stores images transposed, (x, y), and pixel masks as (row, column): the reader keeps the file's
    frame, so masks and mean image come back aligned with each other, both transposed against roiextractors."""
    from neuroconv.tools.roiextractors import add_segmentation_to_nwbfile
    from roiextractors.testing import generate_dummy_segmentation_extractor
    seg = generate_dummy_segmentation_extractor(num_rois=6, num_rows=Y, num_columns=X, num_samples=T,
                                                rejected_list=["roi_1", "roi_4"], mask_type="pixel")
    nwb = _nwbfile()
    add_segmentation_to_nwbfile(seg, nwb, include_background_segmentation=True, include_roi_acceptance=True,
                                mask_type="pixel")
    path = _write(nwb, tmp_path / "neuroconv.nwb")
    rois, traces = read_segmentation(path)
    assert rois.sizes["neuron"] == 6 and rois["mean_image"].shape == (X, Y)
    assert rois["is_cell"].values.tolist() == [True, False, True, True, False, True]
    raw = seg.get_traces(name="raw")                          # (time, roi) in roiextractors
    np.testing.assert_allclose(traces["F"].values, raw.T, rtol=1e-6)
    np.testing.assert_allclose(traces["Fneu"].values, seg.get_traces(name="neuropil").T, rtol=1e-6)
    np.testing.assert_allclose(traces["dff"].values, seg.get_traces(name="dff").T, rtol=1e-6)
    for i, roi_id in enumerate(seg.get_roi_ids()):
        want = seg.get_roi_image_masks(roi_ids=[roi_id])[..., 0]    # (rows, columns) = (y, x)
        got = np.zeros((X, Y), np.float32)
        k = rois["pix_neuron"].values == i
        got[rois["pix_y"].values[k], rois["pix_x"].values[k]] = rois["pix_weight"].values[k]
        np.testing.assert_allclose(got, want.T, rtol=1e-6)
    np.testing.assert_allclose(rois["mean_image"].values, seg.get_image("mean").T, rtol=1e-6)


def test_validate_names_a_segmentation_that_is_not_one(tmp_path):
    """`segmentation` pointing at a folder no tool wrote: exit 2, one line naming the key and the folder."""
    for a in "AB":
        (tmp_path / a / "seg").mkdir(parents=True)
        tifffile.imwrite(tmp_path / a / "movie.tif", np.zeros((5, Y, X), np.uint16))
    toml = tmp_path / "session.toml"
    toml.write_text('[session]\nname = "x"\n' + "".join(
        f'[animals.{a}]\nid = "m{a}"\nraw = ["{a}/movie.tif"]\nframe_rate = 8.0\nsegmentation = "{a}/seg"\n' for a in "AB"))
    r = subprocess.run([sys.executable, "-m", "pipeline", "validate", str(toml)], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "[animals.A] segmentation" in err[0] and "A/seg" in err[0] and "stat.npy" in err[0]
