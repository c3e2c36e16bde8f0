"""Cell extraction engines behind one dispatcher.

`extract` picks the engine from the modality and `[extraction]` settings;
every engine returns an `ExtractionResult`.
"""
from pipeline.imaging.extraction.dispatch import extract, suite2p_settings
from pipeline.imaging.extraction.result import ExtractionResult

__all__ = ["ExtractionResult", "extract", "suite2p_settings"]
