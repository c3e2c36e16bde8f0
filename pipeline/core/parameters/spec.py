"""Parameter spec machinery: one `Param` per setting, grouped in `Section`s.

The spec is the single source of every default, type, range, unit and
description. It validates session files, writes the `interbrain init`
template, feeds the CLI help and generates docs/parameters.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pipeline.core.animals import ANIMALS


class ConfigError(ValueError):
    """A session or parameter file is wrong. The message names file and key."""


# imaging modalities: two-photon and one-photon (miniscope); the choices of [animals.X] modality
MODALITIES = ("2p", "1p")
# how a Section appears in its file (see Section)
KINDS = ("table", "animal", "array", "named")

_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "table"}


@dataclass(frozen=True)
class Param:
    """One setting.

    type: bool, int, float, str, "path" (an input file), "paths" (list of input files),
    "dir" (an output folder), list or dict.
    range: (lo, hi) inclusive for numbers; None ends are open.
    choices: the allowed values, for strings (or lists of strings).
    default: `None` means "not set"; `required=True` means the user must set it.
    by_modality: the default per imaging modality ('2p', '1p') for a setting left
    unset (default None); `Section.resolve` fills it in for one animal's modality.
    """

    name: str
    default: Any
    type: Any
    description: str
    unit: str = ""
    range: tuple | None = None
    choices: tuple | None = None
    required: bool = False
    item_type: Any = None  # element type for lists
    by_modality: dict | None = None

    def __post_init__(self):
        if self.by_modality is not None:
            if self.default is not None or set(self.by_modality) != set(MODALITIES):
                raise ValueError(f"param {self.name}: by_modality needs default None and one value per "
                                 f"modality {MODALITIES}, got {self.by_modality}")
            for m, v in self.by_modality.items():
                self.check(v, f"param {self.name} by_modality[{m!r}]")

    def default_for(self, modality: str) -> Any:
        """The default for an animal of `modality` ('2p' or '1p')."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(repr(m) for m in MODALITIES)}, got {modality!r}")
        return self.default if self.by_modality is None else self.by_modality[modality]

    def type_name(self) -> str:
        if isinstance(self.type, str):
            return self.type
        name = _TYPE_NAMES.get(self.type, getattr(self.type, "__name__", str(self.type)))
        if self.type is list and self.item_type is not None:
            name = f"list[{_TYPE_NAMES.get(self.item_type, self.item_type)}]"
        return name

    def range_text(self) -> str:
        """'in [lo, hi]' (open ends as -inf / inf), or '' without a range."""
        if self.range is None:
            return ""
        lo, hi = self.range
        return f"in [{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"

    def expected(self) -> str:
        """Human description of the expected form, for error messages."""
        parts = [self.type_name()]
        if self.range is not None:
            parts.append(self.range_text())
        if self.choices is not None:
            parts.append("one of " + ", ".join(repr(c) for c in self.choices))
        if self.unit:
            parts.append(f"({self.unit})")
        return " ".join(parts)

    def check(self, value: Any, where: str) -> Any:
        """Return the value coerced to the declared type, or raise ConfigError."""
        if value is None:
            if self.required:
                raise ConfigError(f"{where}: '{self.name}' is required ({self.expected()})")
            return None
        t = self.type
        if t in ("path", "dir"):
            t = str
        if t == "paths":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: '{self.name}' must be a path or list of paths, got {value!r}")
            return value
        if t is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if t is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if t is bool and not isinstance(value, bool):
            raise ConfigError(f"{where}: '{self.name}' must be true or false, got {value!r}")
        if t in (int, float) and isinstance(value, bool):
            raise ConfigError(f"{where}: '{self.name}' must be {self.expected()}, got {value!r}")
        if isinstance(t, type) and not isinstance(value, t):
            raise ConfigError(
                f"{where}: '{self.name}' must be {self.expected()}, got {type(value).__name__} {value!r}")
        if t is list and self.item_type is not None:
            it = self.item_type
            for v in value:
                ok = isinstance(v, it) or (it is float and isinstance(v, int) and not isinstance(v, bool))
                if not ok:
                    raise ConfigError(
                        f"{where}: '{self.name}' must be {self.expected()}, got element {v!r}")
        if self.range is not None and t in (int, float):
            lo, hi = self.range
            if isinstance(value, float) and math.isnan(value):
                raise ConfigError(f"{where}: '{self.name}' is NaN; expected {self.expected()}")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise ConfigError(f"{where}: '{self.name}' = {value!r} is out of range; expected {self.expected()}")
        if self.choices is not None:
            vals = value if isinstance(value, list) else [value]
            bad = [v for v in vals if v not in self.choices]
            if bad:
                raise ConfigError(
                    f"{where}: '{self.name}' = {value!r} is not allowed; expected one of "
                    + ", ".join(repr(c) for c in self.choices))
        return value


@dataclass(frozen=True)
class Section:
    """A named group of Params, e.g. the settings of one stage.

    kind: how the section appears in its file, under the top-level key `key`
    (default: the name): "table" ([key]), "animal" ([key.A] and [key.B], one per
    animal of the pair), "array" ([[key]], a list of tables) or "named"
    ([key.NAME], tables named by the user).
    file: the file the section belongs to: "session" (a pair session) or "study".
    """

    name: str
    description: str
    params: tuple[Param, ...]
    kind: str = "table"
    key: str = ""
    file: str = "session"

    def __post_init__(self):
        names = [p.name for p in self.params]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"section {self.name}: duplicate params {sorted(dup)}")
        if self.kind not in KINDS or self.file not in ("session", "study"):
            raise ValueError(f"section {self.name}: kind {self.kind!r} / file {self.file!r}")
        if not self.key:
            object.__setattr__(self, "key", self.name)

    def heading(self) -> str:
        """How the section is written in its file, e.g. '[animals.A] / [animals.B]'."""
        return {"table": f"[{self.key}]", "animal": " / ".join(f"[{self.key}.{a}]" for a in ANIMALS),
                "array": f"[[{self.key}]]", "named": f"[{self.key}.NAME]"}[self.kind]

    def path_params(self) -> tuple[Param, ...]:
        """The settings that name input files ('path' or 'paths'), in spec order."""
        return tuple(p for p in self.params if p.type in ("path", "paths"))

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def validate(self, table: dict | None, where: str) -> dict:
        """Defaults filled in, types checked, unknown keys rejected."""
        table = {} if table is None else table
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table, got {type(table).__name__}")
        known = {p.name for p in self.params}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(repr(u) for u in unknown)}; known keys are "
                + ", ".join(sorted(known)))
        return {p.name: p.check(table.get(p.name, p.default), where) for p in self.params}

    def resolve(self, params: dict, modality: str) -> dict:
        """A copy of validated `params` with each unset modality-dependent setting
        (Param.by_modality) set to its default for `modality` ('2p' or '1p')."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(repr(m) for m in MODALITIES)}, got {modality!r}")
        out = dict(params)
        for p in self.params:
            if p.by_modality is not None and out.get(p.name) is None:
                out[p.name] = p.default_for(modality)
        return out
