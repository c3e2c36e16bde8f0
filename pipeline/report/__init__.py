"""The session report: one self-contained HTML page with figures, read from a result folder."""
from pipeline.report.html import truth_text, write_report

__all__ = ["write_report", "truth_text"]
