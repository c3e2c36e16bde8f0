"""The report of the demo pair: every section drawn from the dataset, images decode, numbers follow the data."""
from __future__ import annotations

import base64
import io
import re
import shutil

import numpy as np
from PIL import Image

import pipeline
from pipeline.report import write_report

SECTIONS = ("Motion", "ROIs and cell types", "Activity and behaviour", "Shared subspace", "Encoding", "Decoders",
            "Provenance and warnings")


def _images(html: str) -> dict[str, bytes]:
    return {alt: base64.b64decode(b64) for alt, b64 in
            re.findall(r"<img alt='([^']+)' src='data:image/png;base64,([^']+)'", html)}


def test_report_has_every_section_and_images_decode(demo_result):
    _, out, _, _ = demo_result
    html = (out / "report" / "report.html").read_text()
    for s in SECTIONS:
        assert f"<h2>{s}</h2>" in html, s
    assert "could not be drawn" not in html
    assert "has not run" not in html
    imgs = _images(html)
    assert {"motion", "rois", "activity", "subspace", "encoding", "decoding"} <= set(imgs)
    for name, data in imgs.items():
        im = Image.open(io.BytesIO(data))
        im.load()
        assert im.size[0] > 100 and im.size[1] > 100, name
        assert (out / "report" / "figures" / f"{name}.png").read_bytes() == data
    assert "http://" not in html and "https://" not in html   # self-contained


def test_report_follows_the_dataset(demo_result, tmp_path):
    _, out, _, _ = demo_result
    copy = tmp_path / "result"
    shutil.copytree(out, copy)
    before = _images((copy / "report" / "report.html").read_text()) if (copy / "report").exists() else {}
    before = _images(write_report(copy).read_text())
    # change the planted K in the subspace result and redraw
    path = copy / "stages" / "subspace" / "result.nc"
    tree = pipeline.load(copy)
    import xarray as xr
    t = xr.open_datatree(path, engine="h5netcdf").load()
    t["subspace"].attrs["K"] = int(tree["subspace"].attrs["K"]) + 3
    t.to_netcdf(path.with_suffix(".tmp.nc"), engine="h5netcdf")
    path.with_suffix(".tmp.nc").replace(path)
    html = write_report(copy).read_text()
    after = _images(html)
    assert after["subspace"] != before["subspace"]
    assert after["motion"] == before["motion"]


def test_sections_without_a_stage_get_a_note(tmp_path):
    from napari_fixtures import make_result
    make_result(tmp_path / "r")
    html = write_report(tmp_path / "r").read_text()
    assert "The subspace stage has not run." in html and "The decoding stage has not run." in html
    assert "<h2>ROIs and cell types</h2>" in html and "rois" in _images(html)
