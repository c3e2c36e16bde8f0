#!/usr/bin/env python
"""Save a screenshot of napari showing an interbrain result with the ROI inspector docked.

    python scripts/napari_screenshot.py RESULT_DIR OUT.png [--animal A] [--roi 0] [--time 12.5]
    python scripts/napari_screenshot.py --fixture OUT.png     # the small test result (tests/napari_fixtures.py)

`make docs` runs it to regenerate docs/images/napari_fixture.png (and napari_demo.png from the
`make demo` result when there is one), so the pictures in docs/napari.md never go stale.

Needs a display; on a headless machine run it under `xvfb-run -a`.
Exit status 1 with a message when RESULT_DIR is not an interbrain result.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", type=Path, nargs="+", metavar="RESULT_DIR OUT.png",
                    help="interbrain result folder (holds interbrain.json) and the PNG file to write; "
                         "with --fixture only the PNG")
    ap.add_argument("--fixture", action="store_true", help="screenshot the test fixture result (built in a temp dir)")
    ap.add_argument("--animal", default="A", choices=("A", "B"), help="animal whose ROI is selected")
    ap.add_argument("--roi", type=int, default=0, help="position of the selected ROI in the animal's ROI list")
    ap.add_argument("--time", type=float, default=None, help="cursor time (s, master clock); default 40%% in")
    ap.add_argument("--size", default="1600x950", help="window size WxH in pixels")
    args = ap.parse_args(argv)
    if len(args.paths) != (1 if args.fixture else 2):
        ap.error("give RESULT_DIR OUT.png, or --fixture OUT.png")
    if args.fixture:
        import tempfile
        root = Path(__file__).resolve().parents[1]
        sys.path.insert(0, str(root / "tests"))
        from napari_fixtures import make_result
        args.result, args.out = Path(tempfile.mkdtemp()) / "result", args.paths[0]
        make_result(args.result)
    else:
        args.result, args.out = args.paths

    from pipeline.core.dataset import NotAResultError, read_root
    try:
        read_root(args.result)
    except NotAResultError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True, title=f"interbrain: {args.result.name}")
    w, h = (int(v) for v in args.size.lower().split("x"))
    viewer.window.resize(w, h)
    viewer.open(str(args.result), plugin="interbrain")
    _, widget = viewer.window.add_plugin_dock_widget("interbrain", "ROI inspector")
    widget.select(args.animal, args.roi)
    viewer.layers.selection.active = viewer.layers[f"{args.animal}: ROIs"]
    ft = widget.data[args.animal].frame_time
    if len(ft):
        widget.set_time(args.time if args.time is not None else float(ft[0] + 0.4 * (ft[-1] - ft[0])))
    for _ in range(5):                       # let the dock widget take its space, then fit the canvas
        QApplication.processEvents()
    viewer.reset_view()
    for _ in range(5):
        QApplication.processEvents()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(path=str(args.out), canvas_only=False, flash=False)
    viewer.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
