"""Stage `decoding`: time-resolved decoders per animal, contrast and condition (pipeline/analysis/decoders.py).

Reads /A/activity, /B/activity, /behavior (events), /subspace/A|B (loadings, optional)
and /encoding/A|B (functional groups, optional); writes /decoding. See docs/decoders.md.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.analysis.decoding import decode_session
from pipeline.core.orchestrate import stage


@stage("decoding", needs=("align",), wants=("subspace", "encoding"), params=("decoding",), version="1",
       reads=("session.seed",))
def run(ctx):
    p = ctx.params["decoding"]
    tree = ctx.upstream()
    seed = int(ctx.rng("decoding").integers(2**63))
    ds = decode_session(tree, p, seed=seed, warn=ctx.warn,
                        progress=lambda it, desc="", total=None: ctx.progress(it, desc, total))
    bad = ds["status"].values
    n_nb = int(np.sum(bad == "not enough bouts"))
    if n_nb:
        ctx.warn(f"{n_nb} decoder(s) reported 'not enough bouts' (see /decoding status and detail)")
    return xr.DataTree.from_dict({"/decoding": ds})
