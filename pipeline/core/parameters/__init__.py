"""The one parameter spec of interbrain.

`SPEC` maps a section name to its `Section`: those of a pair session file and the
[study] table of a study file (Section.file). Session and study files are validated
by it; `interbrain init`, the CLI help and docs/parameters.md are derived from it.
"""
from pipeline.core.parameters.spec import MODALITIES, ConfigError, Param, Section
from pipeline.core.parameters.session import ANIMAL, ANNOTATIONS, CLOCK, SESSION, TASK
from pipeline.core.parameters.stages import (ALIGN, BEHAVIOR, CELLTYPES, DECODING, ENCODING, EXTRACTION, MOTION, REPORT, SUBSPACE)
from pipeline.core.parameters.study import STUDY

STAGE_SECTIONS = (MOTION, EXTRACTION, CELLTYPES, BEHAVIOR, ALIGN, SUBSPACE, ENCODING, DECODING, REPORT)
SPEC: dict[str, Section] = {s.name: s for s in (SESSION, ANIMAL, ANNOTATIONS, CLOCK, TASK, *STAGE_SECTIONS, STUDY)}

__all__ = ["MODALITIES", "SPEC", "STAGE_SECTIONS", "ConfigError", "Param", "Section"]
