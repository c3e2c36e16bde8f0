"""Generated docs match the code, and the docs site builds without warnings."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_pages_are_current():
    sys.path.insert(0, str(ROOT / "scripts"))
    import gen_docs
    from pipeline.core.parameters.render import markdown
    assert (ROOT / "docs/parameters.md").read_text() == markdown(), "run `python scripts/gen_docs.py`"
    assert (ROOT / "docs/cli.md").read_text() == gen_docs.cli_reference(), "run `python scripts/gen_docs.py`"


def test_docs_build_strict(tmp_path):
    mk = str(Path(sys.executable).parent / "mkdocs")
    r = subprocess.run([mk, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # self-contained, like the report: no script, stylesheet or image is fetched from another host
    import re
    pages = list((tmp_path / "site").rglob("*.html"))
    assert pages
    for page in pages:
        remote = re.findall(r"<(?:script|link|img)\b[^>]*(?:src|href)=[\"']((?:https?:)?//[^\"']+)", page.read_text())
        assert not remote, (page.name, remote)
    # code is still highlighted, offline: Pygments spans and the local stylesheet
    index = (tmp_path / "site" / "getting_started" / "index.html").read_text()
    assert "codehilite" in index and "css/pygments.css" in index
