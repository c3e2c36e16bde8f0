"""Stage `subspace`: PLSC shared/unique inter-brain subspaces (pipeline/analysis/subspace_session.py).

Reads /A/activity, /B/activity (and /A/behavior for regress_behavior); writes
/subspace, /subspace/A, /subspace/B and /subspace/by_cell_type. See docs/subspace.md.
"""
from __future__ import annotations

import xarray as xr

from pipeline.analysis.subspace_session import subspace_session
from pipeline.core.orchestrate import stage


@stage("subspace", needs=("align",), params=("subspace",), version="1", reads=("session.seed",))
def run(ctx):
    return xr.DataTree.from_dict(subspace_session(ctx.upstream(), ctx.params["subspace"], rng=ctx.rng, warn=ctx.warn))
