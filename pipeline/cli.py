"""`interbrain` command line: simulate, init, validate, run, report, export-nwb, info, params, train-classifier."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pipeline.core.parameters import SPEC, ConfigError

EXIT_BAD_INPUT = 2


def _cmd_simulate(args) -> int:
    from pipeline.simulator import simulate_session
    overrides = {}
    if args.duration is not None:
        overrides["duration_s"] = args.duration
    path = simulate_session(args.outdir, seed=args.seed, modality=args.modality, preset=args.preset, **overrides)
    print(f"wrote {path}")
    return 0


def _cmd_init(args) -> int:
    from pipeline.core.parameters.render import template
    p = Path(args.session)
    if p.exists() and not args.force:
        print(f"error: {p} exists (use --force to overwrite)", file=sys.stderr)
        return EXIT_BAD_INPUT
    p.write_text(template())
    print(f"wrote {p}: edit the paths and ids, then `interbrain validate {p}`")
    return 0


def _nwb_notes(s) -> list[str]:
    """What the session's NWB raw files and existing segmentations lack or mean (notes); the first unusable one
    raises (exit 2, file and object)."""
    from pipeline.io.nwb_in import NWBInputError, check_nwb
    from pipeline.io.segmentations import guess_format
    notes = []
    for a in ("A", "B"):
        cfg = s.animals[a]
        raw = cfg["raw"]
        if cfg["segmentation"]:
            fmt = cfg["segmentation_format"]
            try:
                fmt = guess_format(cfg["segmentation"]) if fmt == "auto" else fmt
            except NWBInputError as exc:
                raise NWBInputError(f"[animals.{a}] segmentation: {exc}") from None
            notes.append(f"[animals.{a}] ROIs and traces from the {fmt} output {cfg['segmentation']} "
                         "(motion correction and extraction skipped)")
            continue
        if cfg["raw_format"] == "nwb" or (len(raw) == 1 and raw[0].endswith(".nwb")):
            for path in raw:
                problems, lacks = check_nwb(path, cfg["nwb_plane"], cfg["frame_rate"])
                if problems:
                    raise NWBInputError(f"[animals.{a}] raw: {problems[0]}")
                notes += [f"[animals.{a}] {n}" for n in lacks]
    return notes


def _cmd_validate(args) -> int:
    from pipeline.core.session import Session
    s = Session.load(args.session)
    if args.deep:   # first: it lists every problem found (InputProblems, exit 2), NWB files' too
        from pipeline.validate import deep_check
        for line in deep_check(s):
            print(line)
    for line in _nwb_notes(s):
        print(f"note: {line}")
    print(f"ok: {s.path} (pair {s.name!r}: A={s.animals['A']['id']}, B={s.animals['B']['id']}, "
          f"{len(s.annotations)} annotation file(s))")
    return 0


def _cmd_run(args) -> int:
    from pipeline import stages
    from pipeline.core.session import Session
    from pipeline.validate import check_output_dir, deep_check
    s = Session.load(args.session)
    only = [x.strip() for x in args.stages.split(",") if x.strip()] if args.stages else None
    out = check_output_dir(args.out or s.output_dir)
    # the cheap part of `validate --deep` (no movie opened): a bad annotation file fails in seconds,
    # not after motion correction
    deep_check(s, movies=False, behavior=not only or "behavior" in only, celltypes=not only or "celltypes" in only)
    status = stages.run(s, out=out, only=only, force=args.force, show_progress=not args.quiet)
    w = max(len(k) for k in status) if status else 0
    for name, st in status.items():
        print(f"  {name:<{w}}  {st}")
    print(f"result: {out}")
    if not args.no_report:
        from pipeline.report import write_report
        from pipeline.report import truth_text
        path = write_report(out, fmt=s.params['report']['format'], dpi=s.params['report']['dpi'])
        text = truth_text(out)
        if text:
            print(text)
        print(f"report: {path}")
    return 0


def training_rois(result: str | Path):
    """(features {name: (n,)}, is_cell (n,) bool) of every ROI of both animals in a result folder.

    Labels: is_cell after curation (the celltypes stage's copy, which applies OUT/curation.csv,
    with any edits made since applied too).
    """
    import numpy as np
    import pipeline
    from pipeline.imaging.extraction.classifier import FEATURES
    from pipeline.napari_plugin import curation
    from pipeline.core.animals import ANIMALS
    result = Path(result)
    tree = pipeline.load(result)
    cur = result / curation.CURATION_FILE
    edits = curation.read_curation(cur) if cur.is_file() else []
    feats, labels = {k: [] for k in FEATURES}, []
    for a in ANIMALS:
        try:
            rois = tree[f"/{a}/rois"].to_dataset()
        except KeyError:
            continue
        missing = [k for k in FEATURES if k not in rois]
        if missing:
            raise ValueError(f"{result}: /{a}/rois has no classifier inputs {missing}; rerun its extraction stage "
                             "(interbrain run --force --stages extraction)")
        is_cell = rois["is_cell"].values.astype(bool)
        try:
            ct = tree[f"/{a}/celltypes"].to_dataset()
            if "is_cell" in ct and ct.sizes.get("neuron") == len(is_cell):
                is_cell = ct["is_cell"].values.astype(bool)
        except KeyError:
            pass
        _, is_cell = curation.apply(edits, a, rois["roi_id"].values, np.array(["unknown"] * len(is_cell), object),
                                    is_cell)
        for k in FEATURES:
            feats[k].append(rois[k].values)
        labels.append(is_cell)
    if not labels:
        raise ValueError(f"{result}: no /A/rois or /B/rois group; expected an interbrain result folder")
    return {k: np.concatenate(v) for k, v in feats.items()}, np.concatenate(labels)


def _cmd_train_classifier(args) -> int:
    import numpy as np
    from pipeline.imaging.extraction.classifier import FEATURES, train
    feats, labels = {k: [] for k in FEATURES}, []
    for r in args.results:
        f, y = training_rois(r)
        for k in FEATURES:
            feats[k].append(f[k])
        labels.append(y)
        print(f"{r}: {len(y)} ROIs, {int(y.sum())} cells")
    y = np.concatenate(labels)
    out = train({k: np.concatenate(v) for k, v in feats.items()}, y, args.out)
    print(f"wrote {out} ({len(y)} ROIs, {int(y.sum())} cells); use it with [extraction] classifier_file = \"{out}\"")
    return 0


def _cmd_batch(args) -> int:
    from pipeline.batch import SUMMARY_COLUMNS, run_batch
    stages = [x.strip() for x in args.stages.split(",") if x.strip()] if args.stages else None
    summary = Path(args.summary) if args.summary else Path(args.out_root or ".") / "batch_summary.csv"
    table = run_batch(args.sessions, scheduler=args.scheduler, workers=args.workers, out_root=args.out_root,
                      stages=stages, summary_path=summary)
    print(table[SUMMARY_COLUMNS].to_string(index=False))
    print(f"summary: {summary.resolve()} (one column per stage: ran, up to date, skipped, failed)")
    return 0 if (table["status"].str.startswith("ok")).all() else 1


def _cmd_report(args) -> int:
    from pipeline.report import write_report
    from pipeline.report import truth_text
    path = write_report(args.result)
    text = truth_text(args.result)
    if text:
        print(text)
    print(f"report: {path}")
    return 0


def _cmd_view(args) -> int:
    from pipeline.core.dataset import read_root
    read_root(Path(args.result))           # not a result: NotAResultError (a ValueError) -> exit 2, one line
    import napari
    from pipeline.napari_plugin import view
    view(args.result)
    napari.run()
    return 0


def _add_export_nwb(sub) -> None:
    """`interbrain export-nwb RESULT OUT_DIR`: one NWB file per animal (pipeline.io.nwb.export_nwb)."""
    def run(args) -> int:
        from pipeline.core.dataset import read_root
        from pipeline.io.nwb import export_nwb
        read_root(Path(args.result))       # not a result: NotAResultError (a ValueError) -> exit 2, one line
        out = Path(args.out_dir)
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(20, "exists and is not a folder; expected a folder for the NWB files", str(out))
        for a, path in export_nwb(args.result, out).items():
            print(f"wrote {path} (animal {a})")
        print(f"check it as DANDI does: nwbinspector {out} --config dandi")
        return 0

    q = sub.add_parser("export-nwb", help="write a result folder as NWB files, one per animal (for DANDI)")
    q.add_argument("result", help="result folder of `interbrain run`")
    q.add_argument("out_dir", help="folder for <pair>_A.nwb and <pair>_B.nwb (created; existing files are replaced)")
    q.set_defaults(func=run)


def _cmd_info(args) -> int:
    from pipeline.core.dataset import load
    print(load(args.result))
    return 0


def _cmd_params(args) -> int:
    from pipeline.core.parameters.render import help_text
    if args.section and args.section not in SPEC:
        print(f"error: unknown section {args.section!r}; sections: {', '.join(SPEC)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(help_text(args.section))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="interbrain", description="interbrain: calcium imaging of two interacting animals, two brains in one analysis.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    sub = p.add_subparsers(dest="cmd", required=True)

    q = sub.add_parser("simulate", help="write a simulated pair session with ground truth")
    q.add_argument("outdir")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--modality", choices=("2p", "1p"), default="2p")
    q.add_argument("--duration", type=float, default=None, help="seconds (default: the preset's)")
    q.add_argument("--preset", default="small",
                   help="small (default: 40 x 40 px, 15/13 neurons, 240 s: fast, too small to show the "
                        "shared subspace) | sample (the committed pair) | demo (`make demo`: K, decoding and "
                        "encoding recovered in minutes) | default (128 x 128 px, 600 s) | large")
    q.set_defaults(func=_cmd_simulate)

    q = sub.add_parser("init", help="write a commented session-file template")
    q.add_argument("session")
    q.add_argument("--force", action="store_true")
    q.set_defaults(func=_cmd_init)

    q = sub.add_parser("validate", help="check a session file: keys, types, ranges, files (exit 2 on error)")
    q.add_argument("session")
    q.add_argument("--deep", action="store_true",
                   help="also open every input (movies: shape, pixel type, frame count vs timestamps; structural "
                        "images; label tables; annotation files; clocks; task log) and report every problem")
    q.set_defaults(func=_cmd_validate)

    q = sub.add_parser("run", help="run or resume the pipeline on a session")
    q.add_argument("session")
    q.add_argument("--out", default=None, help="result folder (default: [session] output_dir)")
    q.add_argument("--stages", default=None, help="comma-separated stages to run (default: all)")
    q.add_argument("--force", action="store_true", help="rerun the selected stages even when up to date")
    q.add_argument("--quiet", action="store_true", help="no progress bars and no line per stage on stderr")
    q.add_argument("--no-report", action="store_true", help="do not write the HTML report at the end")
    q.set_defaults(func=_cmd_run)

    q = sub.add_parser("batch", help="run many pair sessions on dask.distributed (local cluster or --scheduler)")
    q.add_argument("sessions", nargs="+", help="session TOML files")
    q.add_argument("--scheduler", default=None, help="address of an existing dask scheduler, e.g. tcp://host:8786")
    q.add_argument("--workers", type=int, default=2, help="local workers (single-threaded each) when no --scheduler")
    q.add_argument("--out-root", default=None, help="write each result to OUT_ROOT/<session name> (names must be "
                   "unique folder names; default: each session's output_dir)")
    q.add_argument("--stages", default=None, help="comma-separated stages (default: all)")
    q.add_argument("--summary", default=None, help="summary CSV, one row per session and one column per stage, "
                   "written even when every session fails (default: OUT_ROOT/batch_summary.csv)")
    q.set_defaults(func=_cmd_batch)

    q = sub.add_parser("train-classifier", help="write a cell classifier file from curated result folders")
    q.add_argument("results", nargs="+", help="result folders; labels are is_cell after napari curation")
    q.add_argument("--out", required=True, help="classifier file to write (.npy), for [extraction] classifier_file")
    q.set_defaults(func=_cmd_train_classifier)

    from pipeline.study.table import add_study_parser
    add_study_parser(sub)

    q = sub.add_parser("report", help="write the HTML report of a result folder")
    q.add_argument("result")
    q.set_defaults(func=_cmd_report)

    q = sub.add_parser("view", help="open a result folder in napari: both animals' ROIs, traces, curation")
    q.add_argument("result")
    q.set_defaults(func=_cmd_view)

    _add_export_nwb(sub)

    q = sub.add_parser("info", help="print the result DataTree")
    q.add_argument("result")
    q.set_defaults(func=_cmd_info)

    q = sub.add_parser("params", help="list every parameter (default, type, range, unit)")
    q.add_argument("section", nargs="?", default=None, help="one of: " + ", ".join(SPEC))
    q.set_defaults(func=_cmd_params)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (OSError, ValueError) as exc:
        # Readers and importers raise ValueError subclasses that name the file and field; OSError
        # (unreadable file, read-only or full disk, symlink loop) names its file in exc.filename.
        if args.verbose:
            raise
        msg = str(exc)
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in msg:
            msg = f"{exc.filename}: {msg}"
        print(f"error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
