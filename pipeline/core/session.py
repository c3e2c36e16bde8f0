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

_TOP_KEYS = {"session", "animals", "annotations", "clocks", "task"} | {s.name for s in STAGE_SECTIONS}


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
        session = SPEC["session"].validate(doc.get("session"), f"{where} [session]")

        animals_doc = doc.get("animals")
        if not isinstance(animals_doc, dict) or set(animals_doc) != set(ANIMALS):
            got = sorted(animals_doc) if isinstance(animals_doc, dict) else animals_doc
            raise ConfigError(f"{where} [animals]: a pair needs exactly [animals.A] and [animals.B]; got {got}")
        animals = {a: SPEC["animal"].validate(animals_doc[a], f"{where} [animals.{a}]") for a in ANIMALS}

        ann_doc = doc.get("annotations", [])
        if not isinstance(ann_doc, list):
            raise ConfigError(f"{where}: 'annotations' must be an array of tables ([[annotations]])")
        annotations = [SPEC["annotations"].validate(t, f"{where} [[annotations]] #{i + 1}")
                       for i, t in enumerate(ann_doc)]

        clocks_doc = doc.get("clocks", {})
        if not isinstance(clocks_doc, dict):
            raise ConfigError(f"{where}: 'clocks' must be a table of [clocks.NAME] tables")
        clocks = {n: SPEC["clock"].validate(t, f"{where} [clocks.{n}]") for n, t in clocks_doc.items()}
        task = SPEC["task"].validate(doc.get("task"), f"{where} [task]")
        params = {s.name: s.validate(doc.get(s.name), f"{where} [{s.name}]") for s in STAGE_SECTIONS}

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

    def _resolve_paths(self) -> None:
        self.session["output_dir"] = self._abs(self.session["output_dir"], "[session] output_dir")
        for name, a in self.animals.items():
            a["raw"] = [self._abs(p, f"[animals.{name}] raw") for p in a["raw"]]
            for k in ("timestamps", "structural", "label_table", "segmentation"):
                a[k] = self._abs(a[k], f"[animals.{name}] {k}")
        for i, t in enumerate(self.annotations):
            t["path"] = self._abs(t["path"], f"[[annotations]] #{i + 1} path")
        for n, c in self.clocks.items():
            for k in ("timestamps", "sync"):
                c[k] = self._abs(c[k], f"[clocks.{n}] {k}")
        self.task["log"] = self._abs(self.task["log"], "[task] log")

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
        for name, a in self.animals.items():
            out += [(f"[animals.{name}] raw", p) for p in a["raw"]]
            out += [(f"[animals.{name}] {k}", a[k]) for k in ("timestamps", "structural", "label_table", "segmentation")
                    if a[k]]
        out += [(f"[[annotations]] #{i + 1} path", t["path"]) for i, t in enumerate(self.annotations)]
        for n, c in self.clocks.items():
            out += [(f"[clocks.{n}] {k}", c[k]) for k in ("timestamps", "sync") if c[k]]
        if self.task["log"]:
            out.append(("[task] log", self.task["log"]))
        return out

    def to_dict(self) -> dict[str, Any]:
        """The validated, resolved session (JSON/TOML-serialisable), for provenance."""
        return {"session": self.session, "animals": self.animals, "annotations": self.annotations,
                "clocks": self.clocks, "task": self.task, **self.params}
