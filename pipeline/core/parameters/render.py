"""Render the spec: the commented session template, Markdown docs and CLI help."""
from __future__ import annotations

import json

from pipeline.core.parameters import SPEC, STAGE_SECTIONS
from pipeline.core.parameters.spec import Param, Section


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def _by_modality(p: Param, fmt) -> str:
    """'1.15 (2p), 4.0 (1p)': the per-modality defaults of `p`, each value formatted by `fmt`."""
    return ", ".join(f"{fmt(v)} ({m})" for m, v in p.by_modality.items())


def _comment(p: Param) -> str:
    bits = [p.description, f"[{p.expected()}]"]
    if p.required:
        bits.append("REQUIRED")
    if p.by_modality is not None:
        bits.append("default " + _by_modality(p, _toml_value))
    return "# " + " ".join(bits)


def _lines(section: Section, values: dict | None = None, commented_defaults: bool = True) -> list[str]:
    out = []
    for p in section.params:
        out.append(_comment(p))
        v = (values or {}).get(p.name, p.default)
        if v is None:
            out.append(f"# {p.name} = ")
        elif values is not None and p.name in values or not commented_defaults:
            out.append(f"{p.name} = {_toml_value(v)}")
        else:
            out.append(f"# {p.name} = {_toml_value(v)}")
    return out


def template() -> str:
    """A commented session file for `interbrain init`: required keys filled with placeholders."""
    L = ["# interbrain pair session. Paths are relative to this file.",
         "# Every key is documented in docs/parameters.md; commented keys show their defaults.", ""]
    L += ["[session]"] + _lines(SPEC["session"], {"name": "pair01", "output_dir": "results"}) + [""]
    for a, placeholder in (("A", "m001"), ("B", "m002")):
        L += [f"[animals.{a}]"] + _lines(SPEC["animal"], {"id": placeholder, "raw": [f"{a}/movie.tif"],
                                                         "frame_rate": 15.0}) + [""]
    L += ["# One [[annotations]] table per behaviour file.", "[[annotations]]"]
    L += _lines(SPEC["annotations"], {"path": "behavior/boris_events.csv", "format": "boris", "clock": "video",
                                       "subjects": {"mouse1": "A", "mouse2": "B"}}) + [""]
    L += ["# One [clocks.NAME] table per non-imaging stream (the video, the task computer).", "[clocks.video]"]
    L += _lines(SPEC["clock"], {"timestamps": "behavior/video_timestamps.csv"}) + [""]
    L += ["# The cooperation-task log (optional).", "# [task]"] + ["# " + x if not x.startswith("#") else x
                                                               for x in _lines(SPEC["task"])] + [""]
    L += ["# ---- stage settings: defaults reproduce the reference analyses (METHODS.md) ----", ""]
    for s in STAGE_SECTIONS:
        L += [f"# [{s.name}]  {s.description}"] + ["#   " + x.lstrip("# ") if x.startswith("# ") and "=" not in x
                                                   else x for x in _lines(s)] + [""]
    return "\n".join(L) + "\n"


def markdown() -> str:
    """docs/parameters.md: one table per section."""
    L = ["# Parameters", "",
         "Generated from `pipeline/core/parameters/` by `scripts/gen_docs.py`; do not edit by hand.",
         "Every key below can be set in the session file; stage settings live in a table named after the stage.",
         "The last section, `[study]`, belongs to a study file (`interbrain study`).", ""]
    for s in SPEC.values():
        L += [f"## `{s.heading()}`", "", s.description, "",
              "| key | default | type / range | unit | description |", "| --- | --- | --- | --- | --- |"]
        for p in s.params:
            rng = p.type_name()
            if p.range:
                rng += " " + p.range_text()
            if p.choices:
                rng += ": " + ", ".join(f"`{c}`" for c in p.choices if c != "")
            default = ("required" if p.required else _by_modality(p, lambda v: f"`{_toml_value(v)}`")
                       if p.by_modality is not None else f"`{_toml_value(p.default)}`" if p.default is not None
                       else "unset")
            L.append(f"| `{p.name}` | {default} | {rng} | {p.unit} | {p.description} |")
        L.append("")
    return "\n".join(L)


def help_text(section: str | None = None) -> str:
    secs = [SPEC[section]] if section else list(SPEC.values())
    L = []
    for s in secs:
        L.append(f"[{s.name}] {s.description}")
        for p in s.params:
            d = ("required" if p.required else "default " + _by_modality(p, _toml_value) if p.by_modality is not None
                 else f"default {_toml_value(p.default)}" if p.default is not None else "unset")
            L.append(f"  {p.name:<26} {p.expected():<40} {d}")
            L.append(f"      {p.description}")
    return "\n".join(L)
