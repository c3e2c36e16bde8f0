"""Stage `decoding`: time-resolved decoders per animal, contrast and condition (pipeline/analysis/decoders.py).

Reads /A/activity, /B/activity, /behavior (events), /subspace/A|B (loadings, optional)
and /encoding/A|B (functional groups, optional); writes /decoding and per-job results to
OUT/cache/decoding/ (reused by reruns whose job inputs, settings and seed match). See docs/decoders.md.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.analysis.decoding import decode_session
from pipeline.core.orchestrate import stage


@stage("decoding", needs=("align",), wants=("subspace", "encoding"), params=("decoding",), version="2",
       reads=("session.seed",))
def run(ctx):
    p = ctx.params["decoding"]
    tree = ctx.upstream()
    seed = int(ctx.rng("decoding").integers(2**63))
    # per-job results cached beside the stage results: a rerun that changes only some
    # contrasts or conditions (or a resumed, killed run) recomputes only those jobs
    ds = decode_session(tree, p, seed=seed, warn=ctx.warn,
                        progress=lambda it, desc="", total=None: ctx.progress(it, desc, total),
                        cache_dir=ctx.out / "cache" / "decoding")
    bad = ds["status"].values
    n_nb = int(np.sum(bad == "not enough bouts"))
    if n_nb:
        ctx.warn(f"{n_nb} decoder(s) reported 'not enough bouts' (see /decoding status and detail)")
    return xr.DataTree.from_dict({"/decoding": ds})
