"""Imaging: motion correction, cell extraction engines, traces."""
