"""Stage `celltypes`: a cell-type label per ROI of each animal (neuroid; docs/celltypes.md).

Reads `/A/rois` and `/B/rois` (extraction), the animals' genotype/indicator,
structural images and label tables, and `OUT/curation.csv` (napari), and
writes `/A/celltypes` and `/B/celltypes` on dim `neuron` (the order of `/A/rois`).
"""
from __future__ import annotations

from pathlib import Path

import xarray as xr

from neuroid.labels import label_animal
from pipeline.core.orchestrate import stage

CURATION_FILE = "curation.csv"


def _inputs(session, out) -> list[str]:
    files = [a[k] for a in session.animals.values() for k in ("structural", "label_table") if a[k]]
    return files + [str(Path(out) / CURATION_FILE)]     # hashed only when it exists


def _group(tree: xr.DataTree, path: str) -> xr.Dataset | None:
    try:
        return tree[path].to_dataset()
    except KeyError:
        return None


def label_session(tree: xr.DataTree, session, params: dict, out: str | Path, seed: int = 0,
                  warn=None) -> dict[str, xr.Dataset]:
    """{'/A/celltypes': Dataset, '/B/celltypes': Dataset} from the extraction groups in `tree`."""
    curation = Path(out) / CURATION_FILE
    result = {}
    for name, a in session.animals.items():
        rois = _group(tree, f"/{name}/rois")
        if rois is None:
            raise ValueError(f"celltypes: the upstream result has no /{name}/rois group (extraction output)")
        motion = _group(tree, f"/{name}/motion")
        if "mean_image" in rois:
            mean_image = rois["mean_image"].values
        elif motion is not None and "mean_image" in motion:
            mean_image = motion["mean_image"].values
        else:
            raise ValueError(f"celltypes: neither /{name}/rois nor /{name}/motion has a mean_image")
        roi_id = rois["roi_id"].values if "roi_id" in rois.variables else None
        is_cell = rois["is_cell"].values.astype(bool) if "is_cell" in rois.variables else None
        ds = label_animal(
            rois, mean_image, roi_id=roi_id, is_cell=is_cell,
            genotype=a["genotype"], indicator=a["indicator"],
            structural=a["structural"] or None, structural_marks=a["structural_marks"],
            source=a["celltype_source"], table=a["label_table"] or None,
            curation=curation if curation.is_file() else None,
            animal=name, animal_id=a["id"], params=params, random_state=seed, warn=warn)
        result[f"/{name}/celltypes"] = ds
    return result


@stage("celltypes", needs=("extraction",), params=("celltypes",), inputs=_inputs,
       reads=("animal.id", "animal.genotype", "animal.indicator", "animal.structural", "animal.structural_marks",
              "animal.celltype_source", "animal.label_table", "session.seed"))
def run(ctx):
    tree = ctx.upstream()
    return xr.DataTree.from_dict(label_session(tree, ctx.session, ctx.params["celltypes"], ctx.out,
                                               seed=ctx.seed, warn=ctx.warn))
