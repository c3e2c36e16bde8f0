"""Session-file validation: bad configs are rejected with a message naming the key or file."""
from __future__ import annotations

import copy
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from pipeline.core.parameters import SPEC, ConfigError
from pipeline.core.parameters.render import markdown, template
from pipeline.core.session import Session


def _good(tmp: Path) -> dict:
    for f in ("A/movie.tif", "B/movie.tif", "A/ts.csv", "behavior/boris.csv", "behavior/video_ts.csv"):
        (tmp / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp / f).write_text("x")
    return {
        "session": {"name": "p1", "seed": 3},
        "animals": {
            "A": {"id": "m1", "raw": ["A/movie.tif"], "timestamps": "A/ts.csv", "genotype": "Vgat-Cre"},
            "B": {"id": "m2", "raw": ["B/movie.tif"], "frame_rate": 15.0, "modality": "1p"},
        },
        "annotations": [{"path": "behavior/boris.csv", "format": "boris", "clock": "video",
                         "subjects": {"mouse1": "A", "mouse2": "B"}}],
        "clocks": {"video": {"timestamps": "behavior/video_ts.csv"}},
        "subspace": {"n_surrogates": 500},
    }


def _load(tmp: Path, doc: dict) -> Session:
    p = tmp / "session.toml"
    p.write_text(tomli_w.dumps(doc))
    return Session.load(p)


def test_good_config_loads_with_defaults_and_absolute_paths(tmp_path):
    s = _load(tmp_path, _good(tmp_path))
    assert s.params["subspace"]["n_surrogates"] == 500
    assert s.params["subspace"]["percentile"] == 97.5          # reference default filled in
    assert s.params["encoding"]["n_surrogates"] == 2000
    assert s.animals["B"]["raw"] == [str((tmp_path / "B/movie.tif").resolve())]
    assert s.seed == 3 and s.name == "p1"


BAD = [
    # (mutation, substring the message must contain)
    (lambda d: d["session"].update(bogus=1), "'bogus'"),
    (lambda d: d["session"].pop("name"), "'name' is required"),
    (lambda d: d["session"].update(seed="zero"), "'seed'"),
    (lambda d: d["animals"]["A"].update(modality="3p"), "'modality'"),
    (lambda d: d["animals"].pop("B"), "[animals.A] and [animals.B]"),
    (lambda d: d["animals"]["B"].update(raw=["A/movie.tif"]), "same raw file is given to both animals"),
    (lambda d: d["animals"]["B"].update(raw=["B/missing.tif"]), "missing.tif"),
    (lambda d: d["animals"]["B"].pop("frame_rate"), "[animals.B]"),
    (lambda d: d["animals"]["B"].update(frame_rate=-5.0), "'frame_rate' = -5.0 is out of range"),
    (lambda d: d["subspace"].update(n_surrogates=0), "[subspace]"),
    (lambda d: d["subspace"].update(percentile=120.0), "'percentile'"),
    (lambda d: d.update(motoin={}), "'motoin'"),
    (lambda d: d["annotations"][0].update(clock="vidoe"), "clock 'vidoe'"),
    (lambda d: d["annotations"][0].update(format="excel"), "'format'"),
    (lambda d: d["annotations"][0].update(subjects={"mouse1": "C"}), "'subjects'"),
    (lambda d: d["animals"]["B"].update(id="m1"), "same 'id'"),
    (lambda d: d["decoding"] if d.update(decoding={"window_s": [-3.0, "x"]}) else None, "'window_s'"),
    (lambda d: d["animals"]["A"].update(sex=True), "'sex'"),
]


@pytest.mark.parametrize("mutate,needle", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_config_rejected_naming_key(tmp_path, mutate, needle):
    doc = _good(tmp_path)
    mutate(doc)
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, doc)
    msg = str(exc.value)
    assert needle in msg, msg
    assert "session.toml" in msg, msg


def test_invalid_toml_names_file(tmp_path):
    p = tmp_path / "session.toml"
    p.write_text("[session\nname = 1")
    with pytest.raises(ConfigError, match="session.toml: not valid TOML"):
        Session.load(p)


def test_template_is_valid_toml_covering_every_section():
    doc = tomllib.loads(template())
    assert set(doc) >= {"session", "animals", "annotations", "clocks"}
    text = template()
    for sec in (s for s in SPEC.values() if s.file == "session"):
        for p in sec.params:
            assert p.name in text, (sec.name, p.name)


def test_template_validates_once_files_exist(tmp_path):
    doc = tomllib.loads(template())
    for a in ("A", "B"):
        for f in doc["animals"][a]["raw"]:
            (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / f).write_text("x")
    for f in ("behavior/boris_events.csv", "behavior/video_timestamps.csv"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("x")
    _load(tmp_path, doc)


def test_docs_table_lists_every_param():
    md = markdown()
    for sec in SPEC.values():
        for p in sec.params:
            assert f"`{p.name}`" in md


def test_cli_validate_exit_codes(tmp_path):
    doc = _good(tmp_path)
    p = tmp_path / "session.toml"
    p.write_text(tomli_w.dumps(doc))
    ok = subprocess.run([sys.executable, "-m", "pipeline.cli", "validate", str(p)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = copy.deepcopy(doc)
    bad["motion"] = {"batch_size": 1}
    p.write_text(tomli_w.dumps(bad))
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "validate", str(p)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "[motion]" in r.stderr and "'batch_size'" in r.stderr and "session.toml" in r.stderr


def test_modality_defaults_are_a_property_of_their_param():
    """An unset modality-dependent setting takes its Param's value for the animal's modality;
    a set one wins; docs, `interbrain params` and the template show both defaults."""
    from pipeline.core.parameters.render import help_text
    sec = SPEC["motion"]
    p = sec.param("smooth_sigma")
    unset = sec.validate({}, "t")
    assert unset["smooth_sigma"] is None
    assert sec.resolve(unset, "2p")["smooth_sigma"] == 1.15 and sec.resolve(unset, "1p")["smooth_sigma"] == 2.0
    assert sec.resolve(sec.validate({"smooth_sigma": 3.0}, "t"), "1p")["smooth_sigma"] == 3.0
    assert unset["smooth_sigma"] is None                         # resolve returns a copy
    with pytest.raises(ValueError, match="modality"):
        sec.resolve(unset, "3p")
    for text in (markdown(), help_text("motion"), template()):
        assert re.search(r"1\.15`? \(2p\), `?2\.0`? \(1p\)", text), text[:200]
    assert p.default_for("1p") == 2.0 and SPEC["motion"].param("nonrigid").default_for("1p") is True
    with pytest.raises(ValueError, match="by_modality"):
        type(p)("x", 1.0, float, "d", by_modality={"2p": 1.0, "1p": 2.0})      # a default beside them
    with pytest.raises(ValueError, match="by_modality"):
        type(p)("x", None, float, "d", by_modality={"2p": 1.0})              # a modality missing


def test_every_path_setting_is_resolved_and_checked(tmp_path):
    """Each 'path'/'paths' Param of the spec names an input file: made absolute and checked to exist."""
    from pipeline.core.session import SECTIONS
    doc = _good(tmp_path)
    doc["task"] = {"log": "task.csv", "clock": "video"}
    (tmp_path / "task.csv").write_text("x")
    table = {"animal": lambda d: d["animals"]["A"], "annotations": lambda d: d["annotations"][0],
             "clock": lambda d: d["clocks"]["video"], "task": lambda d: d["task"],
             "extraction": lambda d: d.setdefault("extraction", {})}
    assert {s.name for s in SECTIONS if s.path_params()} == set(table)
    checked = 0
    for sec in SECTIONS:
        for p in sec.path_params():
            bad = copy.deepcopy(doc)
            t = table[sec.name](bad)
            t[p.name] = ["missing.bin"] if p.type == "paths" else "missing.bin"
            if sec.name == "clock":
                t.pop("timestamps" if p.name == "sync" else "sync", None)   # one of the two
            with pytest.raises(ConfigError, match=rf" {p.name} = '{tmp_path}/missing.bin': file not found"):
                _load(tmp_path, bad)
            checked += 1
    assert checked == 10    # raw, timestamps, structural, label_table, segmentation; path; timestamps, sync; log;
    #                         [extraction] classifier_file
    s = _load(tmp_path, doc)
    assert s.task["log"] == str(tmp_path / "task.csv") and s.output_dir == tmp_path / "results"


def test_parameter_help_carries_no_measurements():
    """Help says what a setting does; benchmark results belong in docs/ (imaging.md, performance.md)."""
    measured = re.compile(r"\d\s*->\s*\d|\bF1\b|RMSE|\d\s*%|\b(rose|raised|lowered|fell)\b|peak RSS|simulated animals")
    bad = [(s.name, p.name) for s in SPEC.values() for p in s.params if measured.search(p.description)]
    assert not bad
