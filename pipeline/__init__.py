"""interbrain: calcium imaging of two interacting animals, in one analysis.

`pipeline.load(DIR)` returns a result folder as one xarray DataTree.
"""
import logging as _logging


def _drop_cpdino_notice(record) -> bool:
    # suite2p imports cellpose, which warns (once per logger, in every process) that its optional
    # CPDINO model needs dinov3. interbrain never uses that model, so the user cannot act on it.
    return "CPDINO" not in record.getMessage()


for _name in ("cellpose.vit", "cellpose.models"):
    _logging.getLogger(_name).addFilter(_drop_cpdino_notice)

from pipeline.core.dataset import load  # noqa: E402
from pipeline.core.session import Session  # noqa: E402

__version__ = "0.1.0"
__all__ = ["load", "Session", "__version__"]
