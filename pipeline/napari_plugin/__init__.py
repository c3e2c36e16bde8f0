"""napari plugin (npe2): open an interbrain result, inspect and curate the ROIs of both animals.

Manifest: napari.yaml (entry point `napari.manifest` in pyproject.toml).
Readers: `get_reader` (result folder), `get_session_reader` (session TOML -> raw movies, lazily).
Widget: `RoiInspector` (ROI list, traces with behaviour, time cursor, curation to OUT/curation.csv).
Qt is imported only by the widget module, so the readers and `curation` work without a display.
"""
from pipeline.napari_plugin._reader import get_reader, get_session_reader, result_layers

__all__ = ["get_reader", "get_session_reader", "result_layers", "RoiInspector", "view"]


def view(result, viewer=None):
    """Open a result folder in napari with the interbrain reader and dock the ROI inspector.

    `interbrain view RESULT` calls this. napari's `viewer.open(path)` uses napari's own reader unless
    `plugin=` is given, and `napari FOLDER` asks which reader to use for any folder, so this names ours.
    Returns (viewer, widget).
    """
    import napari
    viewer = viewer or napari.Viewer()
    viewer.open(str(result), plugin="interbrain")
    _, widget = viewer.window.add_plugin_dock_widget("interbrain", "ROI inspector")
    return viewer, widget


def __getattr__(name):
    if name == "RoiInspector":
        from pipeline.napari_plugin._widget import RoiInspector
        return RoiInspector
    raise AttributeError(name)
