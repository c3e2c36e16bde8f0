"""interbrain: calcium imaging of two interacting animals, in one analysis.

`pipeline.load(DIR)` returns a result folder as one xarray DataTree.
"""
from pipeline.core.dataset import load
from pipeline.core.session import Session

__version__ = "0.1.0"
__all__ = ["load", "Session", "__version__"]
