"""Study level: many pairs' results in one table, pair-level statistics and figures."""
from pipeline.study.table import Study, load_study, run_study

__all__ = ["Study", "load_study", "run_study"]
