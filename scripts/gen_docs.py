"""Generate the docs pages that come from code: parameters and CLI reference.

Run by `make docs` before mkdocs, so these pages cannot drift from the code.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli import build_parser
from pipeline.core.parameters.render import markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def cli_reference() -> str:
    parser = build_parser()
    L = ["# Command-line reference", "", "Generated from `pipeline/cli.py` by `scripts/gen_docs.py`.", "",
         "```", parser.format_help().rstrip(), "```", ""]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        L += [f"## `interbrain {name}`", "", "```", p.format_help().rstrip(), "```", ""]
    return "\n".join(L)


def main() -> None:
    (DOCS / "parameters.md").write_text(markdown())
    (DOCS / "cli.md").write_text(cli_reference())
    print(f"wrote {DOCS / 'parameters.md'} and {DOCS / 'cli.md'}")


if __name__ == "__main__":
    main()
