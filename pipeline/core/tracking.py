"""Record which session settings a stage reads: the ground truth for `@stage(reads=...)`.

`tracked_session(session, log, sections)` returns a copy of a Session whose tables are
read-only mappings that add `(spec section, key)` to `log` on every key read (`t[k]`,
`t.get(k)`, `dict(t)`, iteration over items). Used by tests (orchestrate.run(track_reads=...))
to check that every setting a real run reads is declared, so resume sees it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Iterator


class TrackedTable(Mapping):
    """A read-only view of one settings table that logs every key read."""

    def __init__(self, data: dict, section: str, log: set):
        self._data, self._section, self._log = data, section, log

    def __getitem__(self, key: str) -> Any:
        self._log.add((self._section, key))
        return self._data[key]

    def __iter__(self) -> Iterator[str]:      # listing keys reads no value
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"TrackedTable({self._section}, {self._data!r})"


def tracked_session(session, log: set, params: tuple[str, ...] = ()):
    """(session copy with tracked tables, {section: tracked table} of the `params` sections)."""
    view = dataclasses.replace(
        session,
        session=TrackedTable(session.session, "session", log),
        animals={a: TrackedTable(d, "animal", log) for a, d in session.animals.items()},
        annotations=[TrackedTable(t, "annotations", log) for t in session.annotations],
        clocks={n: TrackedTable(c, "clock", log) for n, c in session.clocks.items()},
        task=TrackedTable(session.task, "task", log),
        params={s: TrackedTable(p, s, log) for s, p in session.params.items()},
    )
    return view, {s: view.params[s] for s in params}
