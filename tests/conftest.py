"""Shared fixtures. `demo_result` runs the whole pipeline once per test session on a copy of the sample."""
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# tests/ helpers (fixture builders) import as plain modules
sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "pair01"


def sha_tree(path: Path) -> dict[str, str]:
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


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
