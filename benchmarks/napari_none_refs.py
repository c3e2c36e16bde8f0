"""References to None a napari session releases without taking them, per Qt binding (docs/napari.md).

Opens three viewers in a row on a small fixture result with the ROI inspector docked, selects 40 ROIs in
each, and prints the change of sys.getrefcount(None) per selection and over each viewer's life. Run under
a display or Xvfb, once per binding:

    QT_API=pyqt6 xvfb-run -a python benchmarks/napari_none_refs.py
    QT_API=pyside6 xvfb-run -a python benchmarks/napari_none_refs.py
"""
import gc
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def one_viewer(result: str, n_select: int) -> tuple[int, int]:
    """A viewer with the result and the ROI inspector, n_select ROI selections, closed.
    Returns sys.getrefcount(None) before and after the selections."""
    import napari
    from qtpy.QtWidgets import QApplication
    viewer = napari.Viewer(show=False)
    viewer.open(result, plugin="interbrain")
    _, w = viewer.window.add_plugin_dock_widget("interbrain", "ROI inspector")
    QApplication.processEvents()
    r0 = sys.getrefcount(None)
    for i in range(n_select):
        w.roi_list.setCurrentRow(i % max(1, w.roi_list.count()))
        QApplication.processEvents()
    r1 = sys.getrefcount(None)
    viewer.close()
    gc.collect()
    QApplication.processEvents()
    return r0, r1


def main(n_select: int = 40, n_viewers: int = 3) -> None:
    import qtpy
    from napari_fixtures import make_result
    result = os.path.join(tempfile.mkdtemp(), "result")
    make_result(result)
    print("binding", qtpy.API_NAME, qtpy.QT_VERSION)
    one_viewer(result, 5)                     # the first viewer fills napari's one-off caches
    before = sys.getrefcount(None)
    for k in range(n_viewers):
        r0, r1 = one_viewer(result, n_select)
        after = sys.getrefcount(None)
        print(f"viewer {k}: per selection {(r1 - r0) / n_select:+.1f}; over the viewer's life {after - before:+d}")
        before = after


if __name__ == "__main__":
    main()
