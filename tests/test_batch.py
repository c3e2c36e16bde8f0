"""A batch of pair sessions on a real dask LocalCluster, one of them broken."""
from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import tomli_w

import pipeline
from pipeline.batch import run_batch

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "pair01"


def _copy(tmp: Path, name: str) -> Path:
    d = tmp / name
    shutil.copytree(SAMPLE, d, ignore=shutil.ignore_patterns("ground_truth"))
    doc = tomllib.loads((d / "session.toml").read_text())
    doc["session"]["name"] = name
    (d / "session.toml").write_text(tomli_w.dumps(doc))
    return d / "session.toml"


def test_batch_isolates_a_broken_session(tmp_path):
    good1, good2, broken = _copy(tmp_path, "pairA"), _copy(tmp_path, "pairB"), _copy(tmp_path, "pairC")
    movie = broken.parent / "A" / "movie.tif"
    movie.write_bytes(movie.read_bytes()[:4096])   # truncated TIFF
    summary = tmp_path / "batch" / "summary.csv"
    summary.parent.mkdir()
    table = run_batch([good1, good2, broken], workers=2, out_root=tmp_path / "batch",
                      stages=["motion", "extraction"], summary_path=summary)
    rows = table.set_index("name")
    assert rows.loc["pairA", "status"] == "ok" and rows.loc["pairB", "status"] == "ok", table.to_string()
    assert rows.loc["pairC", "status"] == "failed"
    assert rows.loc["pairC", "stage"] == "motion"
    assert "movie.tif" in rows.loc["pairC", "error"], rows.loc["pairC", "error"]
    for name in ("pairA", "pairB"):
        tree = pipeline.load(tmp_path / "batch" / name)
        assert tree["A/traces"]["dff"].sizes["neuron"] > 0 and tree["B/traces"]["dff"].sizes["neuron"] > 0
    assert summary.is_file() and "pairC" in summary.read_text()
