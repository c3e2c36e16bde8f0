"""Movie readers: every format returns the frames that were written, lazily; bad files fail clearly."""
from __future__ import annotations

import hashlib
import os
import stat

import numpy as np
import pytest
import tifffile

from pipeline.io.readers import MovieError, check_timestamps, open_movie, read_timestamps


@pytest.fixture
def frames():
    return np.random.default_rng(0).integers(0, 4000, (23, 16, 20)).astype(np.uint16)


def _sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


@pytest.mark.parametrize("kw", [{}, {"compression": "zlib"}, {"bigtiff": True}])
def test_tiff_roundtrip_and_slicing(tmp_path, frames, kw):
    p = tmp_path / "m.tif"
    tifffile.imwrite(p, frames, **kw)
    before = _sha(p)
    os.chmod(p, stat.S_IRUSR)               # read-only file must open
    with open_movie(p) as m:
        assert m.shape == frames.shape and m.dtype == np.uint16 and len(m) == 23
        np.testing.assert_array_equal(m[5:17], frames[5:17])
        np.testing.assert_array_equal(m[3], frames[3])
        np.testing.assert_array_equal(m[::4], frames[::4])
        got = np.concatenate([c for _, c in m.iter_chunks(7)])
        np.testing.assert_array_equal(got, frames)
        assert [i for i, _ in m.iter_chunks(7)] == [0, 7, 14, 21]
    assert _sha(p) == before


def test_uncompressed_tiff_is_read_by_offset_and_compressed_by_page(tmp_path, frames):
    tifffile.imwrite(tmp_path / "a.tif", frames)
    tifffile.imwrite(tmp_path / "b.tif", frames, compression="zlib")
    tifffile.imwrite(tmp_path / "c.tif", frames.astype(">u2"), byteorder=">")   # big-endian
    assert open_movie(tmp_path / "a.tif")._offsets[0] is not None
    assert open_movie(tmp_path / "b.tif")._offsets[0] is None
    np.testing.assert_array_equal(open_movie(tmp_path / "c.tif")[2:5], frames[2:5])


def test_tiff_written_page_by_page(tmp_path, frames):
    p = tmp_path / "pages.tif"
    with tifffile.TiffWriter(p) as w:     # one series per page, as many acquisition programs write
        for f in frames:
            w.write(f, contiguous=False)
    m = open_movie(p)
    assert m.shape == frames.shape
    np.testing.assert_array_equal(m[4:19], frames[4:19])


@pytest.mark.parametrize("contiguous", [True, False])
def test_bigtiff_written_in_blocks_reads_pages_as_frames(tmp_path, contiguous):
    # as rigs write long movies: one TiffWriter.write per block of frames, the last block short;
    # tifffile reports one (blocks, frames, y, x) series (contiguous) or one series per block
    frames = np.random.default_rng(1).integers(0, 4000, (1100, 6, 5)).astype(np.uint16)
    p = tmp_path / "blocks.tif"
    with tifffile.TiffWriter(p, bigtiff=True) as w:
        for i in range(0, 1000, 500):
            w.write(frames[i:i + 500], contiguous=contiguous)
        w.write(frames[1000:], contiguous=False)
    with open_movie(p) as m:
        assert m.shape == frames.shape
        np.testing.assert_array_equal(m[490:510], frames[490:510])      # across a block boundary
        np.testing.assert_array_equal(np.concatenate([c for _, c in m.iter_chunks(300)]), frames)


def test_folder_of_tiffs_sorted_naturally_and_spanning_reads(tmp_path, frames):
    d = tmp_path / "tifs"
    d.mkdir()
    cuts = [0, 5, 9, 14, 23]
    # names chosen so that lexical order (f10 < f2) would be wrong
    for k, (i, j) in enumerate(zip(cuts[:-1], cuts[1:])):
        tifffile.imwrite(d / f"f{[1, 2, 10, 11][k]}.tif", frames[i:j])
    m = open_movie(d)
    assert [os.path.basename(s) for s in m.source] == ["f1.tif", "f2.tif", "f10.tif", "f11.tif"]
    np.testing.assert_array_equal(m[3:20], frames[3:20])   # crosses three files
    np.testing.assert_array_equal(m[:], frames)


def test_hdf5_dataset_path_and_autodetect(tmp_path, frames):
    import h5py
    p = tmp_path / "m.h5"
    with h5py.File(p, "w") as f:
        f["acq/data"] = frames
        f["meta/scalar"] = 3
    np.testing.assert_array_equal(open_movie(p)[2:9], frames[2:9])           # the only 3D dataset
    np.testing.assert_array_equal(open_movie(p, hdf5_dataset="/acq/data")[0], frames[0])
    with pytest.raises(MovieError, match=r"m\.h5.*no dataset '/nope'.*/acq/data"):
        open_movie(p, hdf5_dataset="/nope")


def test_nwb_two_photon_series(tmp_path, frames):
    pynwb = pytest.importorskip("pynwb")
    from datetime import datetime, timezone
    from pynwb.ophys import OpticalChannel, TwoPhotonSeries
    nwb = pynwb.NWBFile("s", "id", datetime(2024, 1, 1, tzinfo=timezone.utc))
    dev = nwb.create_device("scope")
    plane = nwb.create_imaging_plane(name="plane", optical_channel=OpticalChannel("g", "green", 510.0),
                                     description="pl", device=dev, excitation_lambda=920.0, imaging_rate=10.0,
                                     indicator="GCaMP6f", location="V1")
    nwb.add_acquisition(TwoPhotonSeries(name="TwoPhotonSeries", data=frames, imaging_plane=plane, rate=10.0,
                                        unit="a.u."))
    p = tmp_path / "m.nwb"
    with pynwb.NWBHDF5IO(p, "w") as io:
        io.write(nwb)
    m = open_movie(p)
    assert m.shape == frames.shape
    np.testing.assert_array_equal(m[6:11], frames[6:11])
    m.close()


def _write_avi(path, frames):
    import cv2
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 20, frames.shape[1:][::-1], isColor=False)
    for f in frames:
        w.write(f)
    w.release()


def test_miniscope_folder_numeric_order_and_timestamps(tmp_path):
    fr = np.random.default_rng(1).integers(0, 255, (25, 16, 24)).astype(np.uint8)
    d = tmp_path / "My_V4_Miniscope"
    d.mkdir()
    # files 0..2; 10 frames, 10 frames, 5 frames; '10.avi' absent, numeric sort still needed for >= 10 files
    for k, (i, j) in enumerate([(0, 10), (10, 20), (20, 25)]):
        _write_avi(d / f"{k}.avi", fr[i:j])
    (d / "timeStamps.csv").write_text("Frame Number,Time Stamp (ms),Buffer Index\n"
                                      + "".join(f"{i},{i * 50},0\n" for i in range(25)))
    m = open_movie(d)
    assert m.format == "miniscope" and m.shape == (25, 16, 24)
    np.testing.assert_array_equal(m[7:22], fr[7:22])
    np.testing.assert_array_equal(m[2], fr[2])                  # backward seek
    t = check_timestamps(m, d / "timeStamps.csv")
    np.testing.assert_allclose(t[:3], [0.0, 0.05, 0.1])
    m.close()


def test_isxd_without_isx_says_how_to_install(tmp_path):
    try:
        import isx  # noqa: F401
        pytest.skip("isx is installed")
    except ImportError:
        pass
    p = tmp_path / "m.isxd"
    p.write_bytes(b"x")
    with pytest.raises(MovieError, match=r"m\.isxd.*isx"):
        open_movie(p)


# ---------------------------------------------------------------- errors
def test_corrupt_tiff_names_the_file(tmp_path):
    p = tmp_path / "broken.tif"
    p.write_bytes(b"this is not a tiff" * 50)
    with pytest.raises(MovieError, match=r"broken\.tif: not a readable TIFF"):
        open_movie(p)


@pytest.mark.parametrize("kw", [{}, {"compression": "zlib"}])
def test_truncated_tiff_is_detected_at_open(tmp_path, frames, kw):
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, frames, **kw)
    data = full.read_bytes()
    p = tmp_path / "cut.tif"
    p.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(MovieError, match=r"cut\.tif: TIFF is truncated or corrupt"):
        open_movie(p)


def test_wrong_dims_and_dtype(tmp_path):
    # pages that interleave channels (ImageJ hyperstack, OME) are not frames: split them first
    tifffile.imwrite(tmp_path / "4d.tif", np.zeros((3, 2, 8, 8), np.uint16), imagej=True, metadata={"axes": "TCYX"})
    with pytest.raises(MovieError, match=r"4d\.tif.*4 dims.*expected a 3D \(frames, y, x\)"):
        open_movie(tmp_path / "4d.tif")
    tifffile.imwrite(tmp_path / "4d.ome.tif", np.zeros((3, 2, 8, 8), np.uint16), metadata={"axes": "TZYX"})
    with pytest.raises(MovieError, match=r"4d\.ome\.tif.*4 dims.*expected a 3D \(frames, y, x\)"):
        open_movie(tmp_path / "4d.ome.tif")
    tifffile.imwrite(tmp_path / "cx.tif", np.zeros((3, 8, 8), np.complex64))
    with pytest.raises(MovieError, match=r"cx\.tif: unsupported pixel type complex64"):
        open_movie(tmp_path / "cx.tif")
    with pytest.raises(MovieError, match=r"missing\.tif: raw movie not found"):
        open_movie(tmp_path / "missing.tif")


def test_frame_count_vs_timestamps_mismatch(tmp_path, frames):
    tifffile.imwrite(tmp_path / "m.tif", frames)
    ts = tmp_path / "timestamps.csv"
    ts.write_text("frame,time_s\n" + "".join(f"{i},{i / 10:.3f}\n" for i in range(22)))
    with pytest.raises(MovieError, match=r"timestamps\.csv: 22 timestamps but the movie \(m\.tif\) has 23 frames"):
        check_timestamps(open_movie(tmp_path / "m.tif"), ts)
    ts.write_text("frame,time_s\n" + "".join(f"{i},{i / 10:.3f}\n" for i in range(23)))
    assert len(check_timestamps(open_movie(tmp_path / "m.tif"), ts)) == 23
    bad = tmp_path / "bad.csv"
    bad.write_text("frame,time_s\n0,0.0\n1,0.1\n2,0.1\n")
    with pytest.raises(MovieError, match=r"bad\.csv: frame times must increase"):
        read_timestamps(bad)
