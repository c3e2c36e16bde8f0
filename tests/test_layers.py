"""The package layout is a stack of layers: imports go downward only (docs/design.md).

Every import statement of every module (including those inside functions) is
checked, so a lazy import cannot hide an upward or sideways dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "neuroid", "behavior")

# Layer of each subpackage, bottom (0) to top. Packages on one layer are siblings and
# do not import each other.
LAYERS = {
    "pipeline.core": 0,
    "pipeline.io": 1,
    "pipeline.imaging": 2, "pipeline.analysis": 2, "pipeline.simulator": 2, "neuroid": 2, "behavior": 2,
    "pipeline.stages": 3, "pipeline.study": 3, "pipeline.report": 3, "pipeline.napari_plugin": 3,
    "pipeline": 4,   # the application modules at the package root: cli, batch
}
# The report and the napari plugin read results only through the dataset API.
READS_RESULTS_ONLY = {"pipeline.report", "pipeline.napari_plugin"}
NOT_FOR_RESULT_READERS = ("pipeline.imaging", "pipeline.analysis", "pipeline.stages", "pipeline.study")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer_of(module: str) -> str | None:
    best = None
    for name in LAYERS:
        if module == name or module.startswith(name + "."):
            if best is None or len(name) > len(best):
                best = name
    return best


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) of every import in the file."""
    mod = _module_name(path)
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            out.append((node.lineno, target, [a.name for a in node.names]))
    return out


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _violations() -> list[str]:
    bad = []
    for path in _sources():
        mod = _module_name(path)
        own = _layer_of(mod)
        for line, target, names in _imports(path):
            if target.split(".")[0] not in PACKAGES:
                continue
            # `from pipeline import stages` names a subpackage: judge it as that subpackage
            targets = [f"{target}.{n}" for n in names if _layer_of(f"{target}.{n}") != _layer_of(target)] or [target]
            for t in targets:
                theirs = _layer_of(t)
                where = f"{path.relative_to(ROOT)}:{line}: {mod} imports {t}"
                if theirs == own:
                    continue
                if LAYERS[theirs] >= LAYERS[own]:
                    bad.append(f"{where} (layer {LAYERS[own]} -> {LAYERS[theirs]}: not downward)")
                elif own in READS_RESULTS_ONLY and t.startswith(NOT_FOR_RESULT_READERS):
                    bad.append(f"{where} (reads results only through pipeline.core.dataset)")
                elif any(part.startswith("_") and not part.startswith("__") for part in t.split(".")) or \
                        any(n.startswith("_") for n in names):
                    bad.append(f"{where} (a private name of another layer)")
    return bad


def test_every_module_has_a_layer():
    assert [str(p) for p in _sources() if _layer_of(_module_name(p)) is None] == []


def test_imports_go_downward_only():
    assert _violations() == []


def _module_graph() -> dict[str, set[str]]:
    mods = {_module_name(p): p for p in _sources()}
    graph = {}
    for m, path in mods.items():
        deps = set()
        for _, target, names in _imports(path):
            for t in [f"{target}.{n}" for n in names] + [target]:
                if t in mods and t != m and not m.startswith(t + "."):   # a package's own __init__ is not a cycle
                    deps.add(t)
                    break
        graph[m] = deps
    return graph


def test_no_import_cycles():
    graph, state, cycles = _module_graph(), {}, []

    def visit(m, stack):
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_the_checker_catches_an_upward_import(tmp_path, monkeypatch):
    """A test that cannot fail is a defect: plant an upward import and see it reported."""
    planted = ROOT / "pipeline" / "core" / "_planted_upward_import.py"
    planted.write_text("from pipeline.analysis import subspace  # noqa\n")
    try:
        found = _violations()
    finally:
        planted.unlink()
    assert any("_planted_upward_import" in v and "not downward" in v for v in found)


@pytest.mark.parametrize("layer", sorted(set(LAYERS) - {"pipeline"}))
def test_each_layer_is_a_package(layer):
    assert (ROOT / Path(*layer.split(".")) / "__init__.py").is_file()
