"""Stage `encoding`: single-neuron auROC encoding of self and partner behaviour (pipeline/analysis/encoding_session.py).

Reads /A/activity, /A/behavior (and B's); writes /encoding/A and /encoding/B.
See docs/encoding.md.
"""
from __future__ import annotations

import xarray as xr

from pipeline.analysis.encoding_session import encoding_session
from pipeline.core.orchestrate import stage


@stage("encoding", needs=("align",), params=("encoding", "behavior"), version="1", reads=("session.seed",))
def run(ctx):
    derived = list((ctx.params.get("behavior") or {}).get("derived", {}) or {})
    return xr.DataTree.from_dict(encoding_session(ctx.upstream(), ctx.params["encoding"], derived,
                                                  rng=ctx.rng, warn=ctx.warn))
