"""A pair session: one TOML file describing two animals imaged together.

`Session.load(path)` validates the file against the parameter spec
(pipeline.core.parameters) and resolves every path relative to the file.
Errors name the file and the key.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.parameters import SPEC, STAGE_SECTIONS, ConfigError
from pipeline.core.animals import ANIMALS

# the sections of a session file, in validation order; each reads top-level key `key` (see Section.kind)
SECTIONS = tuple(s for s in SPEC.values() if s.file == "session")
_TOP_KEYS = {s.key for s in SECTIONS}


def _resolve(path: str | Path, what: str) -> Path:
    """The absolute path with symbolic links resolved; a symlink loop is a ConfigError naming it."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError) as exc:   # RuntimeError: "Symlink loop from ..." (Python < 3.13)
        raise ConfigError(f"{what} {str(path)!r}: symbolic link loop ({exc})") from None


@dataclass
class Session:
    """A validated pair session. Paths are absolute."""

    path: Path
    session: dict
    animals: dict[str, dict]
    annotations: list[dict]
    clocks: dict[str, dict]
    task: dict
    params: dict[str, dict]
    raw_toml: dict = field(repr=False, default_factory=dict)

    # ------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, check_files: bool = True) -> "Session":
        path = _resolve(path, "session file")
        if not path.is_file():
            raise ConfigError(f"{path}: session file not found")
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                              "TOML files are UTF-8: save the session file as UTF-8") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the session file ({exc.strerror or exc})") from None
        return cls.from_dict(doc, path, check_files=check_files)

    @classmethod
    def from_dict(cls, doc: dict, path: str | Path, check_files: bool = True) -> "Session":
        path = Path(path).resolve()
        where = str(path)
        unknown = sorted(set(doc) - _TOP_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: unknown section(s) {', '.join(repr(u) for u in unknown)}; known sections are "
                + ", ".join(sorted(_TOP_KEYS)))
        v = {s.name: _validate(s, doc.get(s.key), where) for s in SECTIONS}
        session, animals, annotations = v.pop("session"), v.pop("animal"), v.pop("annotations")
        clocks, task = v.pop("clock"), v.pop("task")
        params = {s.name: v[s.name] for s in STAGE_SECTIONS}

        self = cls(path=path, session=session, animals=animals, annotations=annotations,
                   clocks=clocks, task=task, params=params, raw_toml=doc)
        self._resolve_paths()
        self._check_consistency()
        if check_files:
            self.check_files()
        return self

    # ------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def name(self) -> str:
        return self.session["name"]

    @property
    def seed(self) -> int:
        return self.session["seed"]

    @property
    def output_dir(self) -> Path:
        return Path(self.session["output_dir"])

    def _abs(self, p: str, key: str) -> str:
        return str(_resolve(self.root / p, f"{self.path}: {key} =")) if p else p

    def _tables(self):
        """(section, label, table) of every validated table of the session file; label as in messages."""
        yield SPEC["session"], "[session]", self.session
        for name, a in self.animals.items():
            yield SPEC["animal"], f"[animals.{name}]", a
        for i, t in enumerate(self.annotations):
            yield SPEC["annotations"], f"[[annotations]] #{i + 1}", t
        for n, c in self.clocks.items():
            yield SPEC["clock"], f"[clocks.{n}]", c
        yield SPEC["task"], "[task]", self.task
        for sec in STAGE_SECTIONS:
            yield sec, f"[{sec.name}]", self.params[sec.name]

    def _resolve_paths(self) -> None:
        """Every 'path', 'paths' and 'dir' setting made absolute (relative to the session file)."""
        for sec, label, t in self._tables():
            for p in sec.params:
                if p.type in ("path", "dir"):
                    t[p.name] = self._abs(t[p.name], f"{label} {p.name}")
                elif p.type == "paths":
                    t[p.name] = [self._abs(x, f"{label} {p.name}") for x in t[p.name]]

    def _check_consistency(self) -> None:
        where = str(self.path)
        for name, a in self.animals.items():
            if not a["timestamps"] and a["frame_rate"] is None:
                raise ConfigError(f"{where} [animals.{name}]: give 'timestamps' (a CSV of frame times) or 'frame_rate' (Hz)")
        raw_a, raw_b = set(self.animals["A"]["raw"]), set(self.animals["B"]["raw"])
        both = sorted(raw_a & raw_b)
        if both:
            raise ConfigError(f"{where}: the same raw file is given to both animals: {', '.join(both)} ('raw' of [animals.A] and [animals.B])")
        ids = {self.animals[a]["id"] for a in ANIMALS}
        if len(ids) < 2:
            raise ConfigError(f"{where}: [animals.A] and [animals.B] have the same 'id' {self.animals['A']['id']!r}")
        for i, t in enumerate(self.annotations):
            if t["clock"] not in self.clocks:
                raise ConfigError(
                    f"{where} [[annotations]] #{i + 1} ({t['path']}): clock {t['clock']!r} has no [clocks.{t['clock']}] table; "
                    f"defined clocks: {sorted(self.clocks) or 'none'}")
            bad = {k: v for k, v in t["subjects"].items() if v not in ANIMALS}
            if bad:
                raise ConfigError(f"{where} [[annotations]] #{i + 1}: 'subjects' must map names to 'A' or 'B', got {bad}")
            if not t["subjects"] and not t["animal"]:
                raise ConfigError(f"{where} [[annotations]] #{i + 1} ({t['path']}): give 'subjects' (file subject -> A/B) or 'animal'")
        if self.task["log"] and self.task["clock"] not in self.clocks:
            raise ConfigError(f"{where} [task]: clock {self.task['clock']!r} has no [clocks.{self.task['clock']}] table")
        for n, c in self.clocks.items():
            if c["timestamps"] and c["sync"]:
                raise ConfigError(f"{where} [clocks.{n}]: give 'timestamps' or 'sync', not both")

    def check_files(self) -> None:
        """Every referenced file exists (raw files are not opened here)."""
        for key, p in self.files():
            if not Path(p).exists():
                why = "dangling symbolic link" if Path(p).is_symlink() else "file not found"
                raise ConfigError(f"{self.path}: {key} = {p!r}: {why}")

    def files(self) -> list[tuple[str, str]]:
        """(config key, path) of every input file the session names."""
        out = []
        for sec, label, t in self._tables():
            for p in sec.path_params():
                given = t[p.name] if p.type == "paths" else [t[p.name]] if t[p.name] else []
                out += [(f"{label} {p.name}", x) for x in given]
        return out

    def to_dict(self) -> dict[str, Any]:
        """The validated, resolved session (JSON/TOML-serialisable), for provenance."""
        return {"session": self.session, "animals": self.animals, "annotations": self.annotations,
                "clocks": self.clocks, "task": self.task, **self.params}


def _validate(section, doc, where: str):
    """One section of a session file, validated by its kind: a table, one table per animal,
    an array of tables or a table of named tables (see Section.kind)."""
    key = section.key
    if section.kind == "table":
        return section.validate(doc, f"{where} [{key}]")
    if section.kind == "animal":
        if not isinstance(doc, dict) or set(doc) != set(ANIMALS):
            got = sorted(doc) if isinstance(doc, dict) else doc
            raise ConfigError(f"{where} [{key}]: a pair needs exactly "
                              + " and ".join(f"[{key}.{a}]" for a in ANIMALS) + f"; got {got}")
        return {a: section.validate(doc[a], f"{where} [{key}.{a}]") for a in ANIMALS}
    if section.kind == "array":
        doc = [] if doc is None else doc
        if not isinstance(doc, list):
            raise ConfigError(f"{where}: '{key}' must be an array of tables ([[{key}]])")
        return [section.validate(t, f"{where} [[{key}]] #{i + 1}") for i, t in enumerate(doc)]
    doc = {} if doc is None else doc
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: '{key}' must be a table of [{key}.NAME] tables")
    return {n: section.validate(t, f"{where} [{key}.{n}]") for n, t in doc.items()}
