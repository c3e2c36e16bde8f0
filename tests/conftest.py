"""Shared fixtures. `demo_result` runs the whole pipeline once per test session on a copy of the sample."""
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# tests/ helpers (fixture builders) import as plain modules
sys.path.insert(0, str(Path(__file__).parent))


def _headless_qt() -> str:
    """How the GUI tests get a display, decided before Qt is imported.

    A display (DISPLAY/WAYLAND_DISPLAY) or Xvfb (pytest-xvfb starts it; `.ci/run` installs it):
    Qt's default platform. Neither: Qt's default xcb platform would abort the whole pytest process
    ("Fatal Python error: Aborted" in pytest-qt's qapp), so Qt runs on its offscreen platform.
    """
    if os.environ.get("QT_QPA_PLATFORM"):
        return f"QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']} (set by the caller)"
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return "the caller's display"
    if shutil.which("Xvfb"):
        return "Xvfb (pytest-xvfb)"
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    return "no display and no Xvfb: Qt's offscreen platform (QT_QPA_PLATFORM=offscreen)"


GUI_DISPLAY = _headless_qt()
# napari (through qtpy) and pytest-qt must drive the same binding; PyQt6 is the dev extra's (pyproject.toml)
os.environ.setdefault("QT_API", "pyqt6")


def pytest_report_header(config):
    return f"GUI tests: {GUI_DISPLAY}"


def pytest_collection_modifyitems(config, items):
    """On the offscreen platform napari's canvas has no OpenGL: its tests are skipped, with the reason."""
    if os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        return
    skip = pytest.mark.skip(reason="napari viewer needs OpenGL, which Qt's offscreen platform lacks (no display, "
                                   "no Xvfb): install Xvfb (`.ci/run` does) or run under a display")
    for item in items:
        if "gui" in item.keywords or "make_napari_viewer" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "pair01"


def sha_tree(path: Path) -> dict[str, str]:
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def run_motion_extraction(toml: Path, out: Path):
    """`interbrain run TOML --out OUT --stages motion,extraction` as a user types it; asserts exit 0 and
    returns the loaded result (a pair whose `segmentation` names another tool's output)."""
    import pipeline
    r = subprocess.run([sys.executable, "-m", "pipeline", "run", str(toml), "--out", str(out), "--stages",
                        "motion,extraction", "--quiet", "--no-report"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    return pipeline.load(out)


def downstream(names) -> set[str]:
    """The stages `names` and every stage that needs or wants one of them, transitively (stage registry)."""
    from pipeline import stages
    reg = stages.load_stages()
    out, grew = set(names), True
    while grew:
        grew = False
        for n, st in reg.items():
            if n not in out and out & set(st.needs + st.wants):
                out.add(n)
                grew = True
    return out


@pytest.fixture(scope="session")
def demo_result(tmp_path_factory):
    """`interbrain run` on the committed sample (what `make demo` runs), on a copy of the raw data.

    Returns (session folder, result folder, raw checksums before the run, log).
    """
    src = tmp_path_factory.mktemp("sample") / "pair01"
    shutil.copytree(SAMPLE, src)
    before = sha_tree(src)
    out = tmp_path_factory.mktemp("demo") / "result"
    p = cli("run", str(src / "session.toml"), "--out", str(out), "--quiet")
    log, _ = p.communicate(timeout=1800)
    assert p.returncode == 0, log
    return src, out, before, log
