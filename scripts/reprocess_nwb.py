"""Reprocess NWB files (local, or a DANDI dandiset) into interbrain results.

    python scripts/reprocess_nwb.py --pairs pairs.csv --out reprocessed/          # pair,nwb_A,nwb_B
    python scripts/reprocess_nwb.py --auto-pair a.nwb b.nwb c.nwb --out reprocessed/
    python scripts/reprocess_nwb.py --dandiset 000xxx --out reprocessed/          # needs the network

Files recorded together (same session id and start time) are paired with
--auto-pair; files with no partner are listed as skipped. Every pair gets a
session folder and a result; `manifest.csv` records what was processed,
skipped or failed and why. Rerunning resumes: finished stages are skipped.
"""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

import pandas as pd

from pipeline.core import orchestrate

from pipeline import stages as pipeline_stages
from pipeline.core.dataset import atomic_write_text
from pipeline.io.nwb import describe_nwb, session_from_nwb
from pipeline.core.session import Session


def auto_pairs(paths: list[Path]) -> tuple[list[tuple[str, Path, Path]], list[tuple[str, str]]]:
    """Group files by (session_id, start time): groups of exactly two are pairs."""
    groups: dict[tuple, list[Path]] = {}
    skipped = []
    for p in paths:
        try:
            d = describe_nwb(p)
        except Exception as exc:   # unreadable file: report, go on
            skipped.append((str(p), f"unreadable: {type(exc).__name__}: {exc}"))
            continue
        groups.setdefault((d["session_id"], d["start"]), []).append(p)
    pairs = []
    for (sid, start), files in groups.items():
        if len(files) == 2:
            a, b = sorted(files)
            pairs.append((f"{sid or 'session'}_{Path(a).stem}", a, b))
        else:
            skipped += [(str(f), f"{len(files)} file(s) recorded at {start} (session {sid}); a pair needs exactly 2")
                        for f in files]
    return pairs, skipped


def download_dandiset(dandiset: str, dest: Path) -> list[Path]:
    """Download a dandiset's NWB assets with the dandi client (network needed)."""
    from dandi.download import download
    download(f"DANDI:{dandiset}", dest, existing="skip")
    return sorted(dest.rglob("*.nwb"))


def reprocess(pairs: list[tuple[str, Path, Path]], out: Path, stages: list[str] | None = None) -> list[dict]:
    rows = []
    for name, a, b in pairs:
        sdir = out / "sessions" / name
        try:
            toml, missing = session_from_nwb(a, b, sdir, name=name)
            s = Session.load(toml)
            status = pipeline_stages.run(s, out=out / "results" / name, only=stages, show_progress=False)
            rows.append({"pair": name, "nwb_A": str(a), "nwb_B": str(b), "status": "processed",
                         "detail": "; ".join(f"{k}: {v}" for k, v in status.items() if v != "ran"),
                         "missing": "; ".join(missing)})
        except Exception as exc:
            rows.append({"pair": name, "nwb_A": str(a), "nwb_B": str(b), "status": "failed",
                         "detail": f"{type(exc).__name__}: {exc}", "missing": "",
                         "traceback": traceback.format_exc()[-1500:]})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--pairs", help="CSV with columns pair, nwb_A, nwb_B")
    src.add_argument("--auto-pair", nargs="+", metavar="NWB", help="NWB files to pair by session")
    src.add_argument("--dandiset", help="DANDI dandiset id (downloads with the dandi client)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--stages", default=None, help="comma-separated stages (default: all)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    skipped: list[tuple[str, str]] = []
    if args.pairs:
        t = pd.read_csv(args.pairs)
        pairs = [(r.pair, Path(r.nwb_A), Path(r.nwb_B)) for r in t.itertuples()]
    else:
        files = ([Path(p) for p in args.auto_pair] if args.auto_pair
                 else download_dandiset(args.dandiset, out / "download"))
        pairs, skipped = auto_pairs(files)
    stages = args.stages.split(",") if args.stages else None
    rows = reprocess(pairs, out, stages)
    rows += [{"pair": "", "nwb_A": f, "nwb_B": "", "status": "skipped", "detail": why, "missing": ""}
             for f, why in skipped]
    manifest = pd.DataFrame(rows)
    atomic_write_text(out / "manifest.csv", manifest.drop(columns=["traceback"], errors="ignore").to_csv(index=False))
    print(manifest.drop(columns=["traceback"], errors="ignore").to_string(index=False))
    return 0 if not (manifest["status"] == "failed").any() else 1


if __name__ == "__main__":
    sys.exit(main())
