"""napari plugin (npe2): open an interbrain result, inspect and curate the ROIs of both animals.

Manifest: napari.yaml (entry point `napari.manifest` in pyproject.toml).
Readers: `get_reader` (result folder), `get_session_reader` (session TOML -> raw movies, lazily).
Widget: `RoiInspector` (ROI list, traces with behaviour, time cursor, curation to OUT/curation.csv).
Qt is imported only by the widget module, so the readers and `curation` work without a display.
"""
from pipeline.napari_plugin._reader import get_reader, get_session_reader, result_layers

__all__ = ["get_reader", "get_session_reader", "result_layers", "RoiInspector"]


def __getattr__(name):
    if name == "RoiInspector":
        from pipeline.napari_plugin._widget import RoiInspector
        return RoiInspector
    raise AttributeError(name)
