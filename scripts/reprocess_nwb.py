"""Reprocess NWB files (local, or a DANDI dandiset) into interbrain results.

    python scripts/reprocess_nwb.py --pairs pairs.csv --out reprocessed/          # pair,nwb_A,nwb_B
    python scripts/reprocess_nwb.py --auto-pair a.nwb b.nwb c.nwb --out reprocessed/
    python scripts/reprocess_nwb.py --dandiset 000xxx --out reprocessed/          # downloads (dandi client)
    python scripts/reprocess_nwb.py --dandiset path/to/000xxx --out reprocessed/  # a local copy, offline

Files recorded together (same session id and start time) are paired with
--auto-pair and --dandiset (a dandiset is laid out sub-*/sub-*_ses-*_ophys.nwb);
files with no partner are listed as skipped. Every pair gets a session folder
and a result; `manifest.csv` records what was processed, skipped or failed and
why, one row per pair and run (appended, never overwritten). Rerunning resumes:
finished stages are skipped. Without network, --dandiset ID exits 2 with one line.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from datetime import datetime, timezone
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


class Offline(RuntimeError):
    """DANDI cannot be reached."""


def download_dandiset(dandiset: str, dest: Path, api_url: str | None = None) -> list[Path]:
    """The dandiset's NWB assets, downloaded through the dandi Python API into dest/<asset path> (existing files
    of the same size are kept). A local folder given as `dandiset` is used as it is."""
    if Path(dandiset).is_dir():
        return sorted(Path(dandiset).rglob("*.nwb"))
    import requests
    from dandi.dandiapi import DandiAPIClient
    api_url = api_url or os.environ.get("INTERBRAIN_DANDI_API") or "https://api.dandiarchive.org/api"
    try:   # one quick probe: the dandi client retries for minutes when there is no network
        requests.get(f"{api_url.rstrip('/')}/info/", timeout=10).raise_for_status()
    except requests.RequestException as exc:
        raise Offline(f"cannot reach DANDI at {api_url} ({type(exc).__name__}); download dandiset {dandiset} "
                      "elsewhere and pass its folder: --dandiset PATH") from None
    out = []
    with DandiAPIClient(api_url=api_url) as client:
        ds = client.get_dandiset(dandiset)
        for asset in ds.get_assets():
            if not asset.path.endswith(".nwb"):
                continue
            target = dest / asset.path
            if not (target.is_file() and target.stat().st_size == asset.size):
                target.parent.mkdir(parents=True, exist_ok=True)
                asset.download(target)
            out.append(target)
    return sorted(out)


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
    src.add_argument("--dandiset", help="DANDI dandiset id (downloads with the dandi client) or a local copy's folder")
    ap.add_argument("--dandi-api", default=None, help=argparse.SUPPRESS)   # another DANDI instance (tests)
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
        try:
            files = ([Path(p) for p in args.auto_pair] if args.auto_pair
                     else download_dandiset(args.dandiset, out / "download", args.dandi_api))
        except Offline as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        pairs, skipped = auto_pairs(files)
    stages = args.stages.split(",") if args.stages else None
    rows = reprocess(pairs, out, stages)
    rows += [{"pair": "", "nwb_A": f, "nwb_B": "", "status": "skipped", "detail": why, "missing": ""}
             for f, why in skipped]
    manifest = pd.DataFrame(rows).drop(columns=["traceback"], errors="ignore")
    manifest.insert(0, "run_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    old = out / "manifest.csv"
    both = pd.concat([pd.read_csv(old, dtype=str, keep_default_na=False), manifest.astype(str)]) if old.is_file() else manifest
    atomic_write_text(old, both.to_csv(index=False))   # appended: earlier runs stay on record
    print(manifest.to_string(index=False))
    return 1 if len(manifest) and (manifest["status"] == "failed").any() else 0


if __name__ == "__main__":
    sys.exit(main())
