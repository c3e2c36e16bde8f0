"""neuroid: cell-type labels (GABAergic / glutamatergic / unknown) with confidence and provenance.

Sources (METHODS.md section 6): genotype or promoter metadata
(`neuroid.genotypes`), a structural second channel (`neuroid.structural`),
and label/curation tables (`neuroid.table`), combined by
`neuroid.label_animal` (`neuroid.labels`). See docs/celltypes.md.
"""
from .footprints import Footprints
from .genotypes import GABA, GLU, KNOWN_LINES, LABELS, UNKNOWN, Line, animal_label, line_label
from .labels import label_animal
from .structural import ReporterClassifier, StructuralError, load_structural, register_structural, reporter_score
from .table import LabelTable, read_curation, read_label_table

__all__ = ["Footprints", "GABA", "GLU", "UNKNOWN", "LABELS", "KNOWN_LINES", "Line", "animal_label", "line_label",
           "label_animal", "ReporterClassifier", "StructuralError", "load_structural", "register_structural",
           "reporter_score", "LabelTable", "read_curation", "read_label_table"]
