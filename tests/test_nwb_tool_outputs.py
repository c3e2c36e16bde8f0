"""Existing segmentations written by the tools themselves, read through `[animals.X] segmentation`.

minian: the output folder is written by minian's own `save_minian`, with the arguments of minian's pipeline
notebook (one `<var>.zarr` store per variable in a plain folder, `meta_dict` session/animal), from planted
footprints and traces (the truth). minian's unit ids are not 0..n-1 (it drops and merges units), its background
(b, f) is not a cell, and the folder must stay untouched (raw data are read-only).

CaImAn: not installed here (conda-only; not in the venv), so no CaImAn-written HDF5 file can be made; the test
writes one with CaImAn's own `CNMF.save` where CaImAn is installed and is skipped otherwise.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from pipeline.io.segmentations import read_tool_segmentation
from conftest import run_motion_extraction

ROOT = Path(__file__).resolve().parents[1]
N, T, Y, X, FS = 4, 80, 24, 28, 10.0
UNIT_ID = np.array([3, 7, 8, 15])          # what minian leaves after dropping and merging units


def _truth(seed=0):
    rng = np.random.default_rng(seed)
    A = np.zeros((N, Y, X))
    for i in range(N):
        y, x = 2 + 5 * i, 3 + 6 * i
        A[i, y:y + 4, x:x + 4] = rng.uniform(0.2, 1.0, (4, 4))
    return {"A": A, "C": rng.exponential(1.0, (N, T)), "S": rng.exponential(0.3, (N, T)),
            "b": rng.uniform(0.5, 1.0, (Y, X)), "f": rng.normal(100.0, 1.0, T)}


def _write_minian(dpath: Path, tr: dict) -> None:
    """minian's own writer, as its pipeline notebook calls it (param_save_minian)."""
    import xarray as xr
    from minian.utilities import save_minian
    kw = {"dpath": str(dpath), "meta_dict": {"session": -1, "animal": -2}, "overwrite": True}
    co = {"unit_id": UNIT_ID, "height": np.arange(Y), "width": np.arange(X), "frame": np.arange(T)}

    def da(name, v, dims):
        return xr.DataArray(v, dims=dims, coords={d: co[d] for d in dims}, name=name)
    save_minian(da("A", tr["A"], ("unit_id", "height", "width")), **kw)
    for name in ("C", "S"):
        save_minian(da(name, tr[name], ("unit_id", "frame")), **kw)
    save_minian(da("b0", np.zeros((N, T)), ("unit_id", "frame")), **kw)
    save_minian(da("c0", np.zeros((N, T)), ("unit_id", "frame")), **kw)
    save_minian(da("b", tr["b"], ("height", "width")), **kw)
    save_minian(da("f", tr["f"], ("frame",)), **kw)
    save_minian(da("max_proj", tr["A"].max(0), ("height", "width")), **kw)


def _sha(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def minian_pair(tmp_path_factory):
    pytest.importorskip("minian")
    root = tmp_path_factory.mktemp("mn")
    truth = {}
    for k, a in enumerate("AB"):
        truth[a] = _truth(seed=k)
        (root / a).mkdir()
        _write_minian(root / a / "minian", truth[a])
        movie = np.einsum("nyx,nt->tyx", truth[a]["A"], truth[a]["C"]) * 50 + 200
        tifffile.imwrite(root / a / "movie.tif", movie.astype(np.uint16))
    return root, truth


def test_minian_output_read_through_roiextractors(minian_pair):
    root, truth = minian_pair
    before = _sha(root / "A" / "minian")
    rois, traces = read_tool_segmentation(root / "A" / "minian", frame_rate=FS)
    t = truth["A"]
    assert rois.sizes["neuron"] == N                            # the background component is not a cell
    assert rois["roi_id"].values.tolist() == UNIT_ID.tolist()    # minian's own unit ids
    m = np.zeros((N, Y, X), np.float32)
    m[rois["pix_neuron"].values, rois["pix_y"].values, rois["pix_x"].values] = rois["pix_weight"].values
    np.testing.assert_allclose(m, t["A"], rtol=1e-6)             # footprints where minian put them, (y, x)
    np.testing.assert_allclose(traces["C"].values, t["C"], rtol=1e-6)
    np.testing.assert_allclose(traces["spikes"].values, t["S"], rtol=1e-6)
    np.testing.assert_allclose(traces["frame_time"].values, np.arange(T) / FS)
    assert rois["is_cell"].values.all()                          # minian keeps no rejected units
    assert _sha(root / "A" / "minian") == before                 # read-only


def test_session_from_minian_outputs_skips_motion_and_extraction(minian_pair):
    root, truth = minian_pair
    toml = root / "session.toml"
    toml.write_text('[session]\nname = "mn_pair"\n' + "".join(
        f'[animals.{a}]\nid = "m{a}"\nraw = ["{a}/movie.tif"]\nframe_rate = {FS}\nmodality = "1p"\n'
        f'segmentation = "{a}/minian"\n' for a in "AB"))
    r = subprocess.run([sys.executable, "-m", "pipeline", "validate", str(toml)], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0 and "minian output" in r.stdout, r.stdout + r.stderr
    out = root / "res"
    tree = run_motion_extraction(toml, out)
    for a in "AB":
        assert "motion" not in tree[a].children
        np.testing.assert_allclose(tree[f"{a}/traces"]["C"].values, truth[a]["C"], rtol=1e-6)
        assert tree[f"{a}/rois"]["roi_id"].values.tolist() == UNIT_ID.tolist()


def test_caiman_hdf5_written_by_caiman(tmp_path):
    pytest.importorskip("caiman", reason="CaImAn is not installed (conda-only, not in the venv): no file written "
                                         "by CaImAn's CNMF.save to read; the CaImAn path of `segmentation` is untested")
    import scipy.sparse
    from caiman.source_extraction.cnmf.cnmf import CNMF
    from caiman.source_extraction.cnmf.params import CNMFParams
    t = _truth()
    cnm = CNMF(n_processes=1, params=CNMFParams(params_dict={"data": {"fr": FS, "dims": (Y, X)}}))
    est = cnm.estimates
    est.A = scipy.sparse.csc_matrix(t["A"].reshape(N, -1, order="F").T)   # CaImAn: (pixels, units), Fortran order
    est.C, est.S, est.YrA = t["C"], t["S"], np.zeros((N, T))
    est.b, est.f, est.dims = t["b"].reshape(-1, 1, order="F"), t["f"][None], (Y, X)
    est.idx_components, est.idx_components_bad = np.array([0, 1, 3]), np.array([2])
    path = tmp_path / "caiman_results.hdf5"
    cnm.save(str(path))
    rois, traces = read_tool_segmentation(path)
    assert rois.sizes["neuron"] == N
    np.testing.assert_allclose(traces["C"].values, t["C"], rtol=1e-6)
    assert rois["is_cell"].values.tolist() == [True, True, False, True]
