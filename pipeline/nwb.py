"""NWB out (and back in) with pynwb.

`export_nwb(RESULT, OUTDIR)` writes one file per animal, cross-referenced by
the pair's session id and each other's file name, with: ROI masks
(PlaneSegmentation, cell types as columns), F / Fneu (Fluorescence), dF/F
(DfOverF), deconvolved activity, frame timestamps on the master clock,
behaviour intervals of both animals (self and partner), and the pair-level
analyses (subspace statistics) in a processing module; provenance goes in
`notes` and `source_script`. `read_nwb_animal(path)` reads one back.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from . import dataset

SPECIES = "Mus musculus"


def _dense_masks(rois) -> np.ndarray:
    """(neuron, y, x) float32 image masks from the COO footprint pixels."""
    n = rois.sizes["neuron"]
    Y, X = rois["mean_image"].shape
    masks = np.zeros((n, Y, X), np.float32)
    masks[rois["pix_neuron"].values.astype(int), rois["pix_y"].values.astype(int),
          rois["pix_x"].values.astype(int)] = rois["pix_weight"].values
    return masks


def _start_time(out: Path) -> datetime:
    rec = json.loads((out / "stages" / "extraction" / "done.json").read_text())
    try:
        return datetime.strptime(rec["time"], "%Y-%m-%dT%H:%M:%S%z")
    except (KeyError, ValueError):
        return datetime(1970, 1, 1, tzinfo=timezone.utc)


def export_nwb(result: str | Path, outdir: str | Path) -> dict[str, Path]:
    """Write RESULT as NWB files OUTDIR/<pair>_<animal>.nwb. Returns {animal: path}."""
    from hdmf.backends.hdf5 import H5DataIO  # noqa: F401  (pynwb dependency)
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.file import Subject
    from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, OpticalChannel

    out, outdir = Path(result), Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    meta = dataset.read_root(out)
    tree = dataset.load(out)
    pair = meta["pair"]
    names = {a: f"{pair}_{a}.nwb" for a in ("A", "B")}
    events = tree["behavior"].to_dataset().to_dataframe() if "behavior" in tree.children else pd.DataFrame()
    paths = {}
    for a, info in meta["animals"].items():
        other = "B" if a == "A" else "A"
        rois, traces = tree[f"{a}/rois"].to_dataset(), tree[f"{a}/traces"].to_dataset()
        prov = {n: json.loads((out / "stages" / n / "done.json").read_text()).get("fingerprint")
                for n in dataset.stage_files(out)}
        nwb = NWBFile(
            session_description=f"interbrain pair {pair}: animal {a} ({info['id']}) imaged with {info['id']} "
                                f"and partner {meta['animals'][other]['id']}",
            identifier=f"{pair}-{a}", session_start_time=_start_time(out), session_id=pair,
            experiment_description=f"Paired recording; partner animal {other} is in {names[other]}.",
            notes=json.dumps({"interbrain_animal": a, "partner_file": names[other], "stage_fingerprints": prov}),
            source_script="interbrain (pipeline.nwb.export_nwb)", source_script_file_name="pipeline/nwb.py",
            keywords=["interbrain", "paired recording", "calcium imaging"])
        nwb.subject = Subject(subject_id=info["id"], species=SPECIES, sex=info.get("sex", "U")[:1].upper()
                              if info.get("sex") in ("F", "M") else "U",
                              genotype=info.get("genotype") or "pan-neuronal", description=f"animal {a} of the pair",
                              age="P90D/")
        device = nwb.create_device(name="Microscope", description=f"{info['modality']} imaging")
        rate = float(1.0 / np.median(np.diff(traces["frame_time"].values)))
        plane = nwb.create_imaging_plane(
            name="ImagingPlane", optical_channel=OpticalChannel(name="Green", description="calcium indicator", emission_lambda=510.0),
            description="functional plane", device=device, excitation_lambda=920.0 if info["modality"] == "2p" else 470.0,
            imaging_rate=rate, indicator=info.get("indicator", "GCaMP"), location="unknown")
        ophys = nwb.create_processing_module("ophys", "interbrain extraction: ROIs and traces")
        seg = ImageSegmentation()
        ophys.add(seg)
        ps = seg.create_plane_segmentation("interbrain ROIs", plane, "PlaneSegmentation")
        ct = tree[f"{a}/celltypes"].to_dataset() if "celltypes" in tree[a].children else None
        ps.add_column("roi_id", "ROI id in the interbrain result")
        ps.add_column("iscell_prob", "classifier probability of being a cell")
        ps.add_column("is_cell", "kept as a cell (classifier threshold or curation)")
        ps.add_column("cell_type", "GABAergic, glutamatergic or unknown")
        ps.add_column("cell_type_confidence", "confidence of the cell-type label in [0, 1]")
        ps.add_column("cell_type_source", "where the label came from (genotype, structural, table, curation)")
        masks = _dense_masks(rois)
        for i in range(rois.sizes["neuron"]):
            ps.add_roi(image_mask=masks[i], roi_id=int(rois["roi_id"].values[i]),
                       iscell_prob=float(rois["iscell_prob"].values[i]),
                       is_cell=bool(ct["is_cell"].values[i] if ct is not None and "is_cell" in ct
                                    else rois["is_cell"].values[i]),
                       cell_type=str(ct["cell_type"].values[i]) if ct is not None else "unknown",
                       cell_type_confidence=float(ct["cell_type_confidence"].values[i]) if ct is not None else 0.0,
                       cell_type_source=str(ct["cell_type_source"].values[i]) if ct is not None else "none")
        region = ps.create_roi_table_region("all ROIs", region=list(range(rois.sizes["neuron"])))
        ts = traces["frame_time"].values.astype(float)
        fl = Fluorescence(name="Fluorescence")
        for var, desc in (("F", "raw ROI fluorescence"), ("Fneu", "neuropil fluorescence"),
                          ("spikes", "deconvolved activity (a.u.)")):
            if var in traces:
                fl.create_roi_response_series(name=var, data=traces[var].values.T.astype(np.float32), rois=region,
                                              unit="a.u.", timestamps=ts, description=desc)
        ophys.add(fl)
        if "dff" in traces:
            d = DfOverF(name="DfOverF")
            d.create_roi_response_series(name="dff", data=traces["dff"].values.T.astype(np.float32), rois=region,
                                         unit="n.a.", timestamps=ts,
                                         description=f"dF/F; baseline: {traces.attrs.get('baseline', '')}")
            ophys.add(d)
        if len(events):
            from pynwb.epoch import TimeIntervals
            ti = TimeIntervals(name="behavior", description="behaviour bouts of both animals on the master clock; "
                                                            "role is relative to this file's animal")
            for col, desc in (("behavior", "behaviour label"), ("animal", "pair animal (A/B)"),
                              ("role", "self or partner"), ("kind", "state or point"), ("source", "source file")):
                ti.add_column(col, desc)
            for _, e in events.iterrows():
                ti.add_interval(start_time=float(e["start"]), stop_time=float(e["stop"]), behavior=str(e["behavior"]),
                                animal=str(e["animal"]), role="self" if e["animal"] == a else "partner",
                                kind=str(e.get("kind", "state")), source=str(e.get("source", "")))
            nwb.add_time_intervals(ti)
        if "subspace" in tree.children:
            from hdmf.common import DynamicTable, VectorData
            s = tree["subspace"].to_dataset()
            cols = [VectorData(name=v, description=f"subspace {v} per dimension", data=s[v].values.astype(float))
                    for v in ("cov", "r", "cov_threshold", "r_threshold") if v in s]
            if cols:
                pairmod = nwb.create_processing_module("interbrain_pair", "pair-level analyses (both animals)")
                pairmod.add(DynamicTable(name="shared_subspace",
                                         description=f"PLSC per dimension; K = {s.attrs.get('K', '')}", columns=cols))
        path = outdir / names[a]
        tmp = path.with_name(f".{path.stem}.tmp.nwb")   # renamed into place: no half-written file
        with NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwb)
        tmp.replace(path)
        paths[a] = path
    return paths


def read_nwb_animal(path: str | Path) -> dict:
    """One exported animal back: masks (neuron, y, x), traces {name: (neuron, frame)}, frame_time, ROI table,
    behaviour intervals (DataFrame)."""
    from pynwb import NWBHDF5IO
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        ophys = nwb.processing["ophys"]
        ps = ophys["ImageSegmentation"]["PlaneSegmentation"]
        table = ps.to_dataframe()
        masks = np.stack(table["image_mask"].to_list()).astype(np.float32)
        traces = {n: np.asarray(s.data[:]).T for n, s in ophys["Fluorescence"].roi_response_series.items()}
        if "DfOverF" in ophys.data_interfaces:
            traces.update({n: np.asarray(s.data[:]).T for n, s in ophys["DfOverF"].roi_response_series.items()})
        frame_time = np.asarray(next(iter(ophys["Fluorescence"].roi_response_series.values())).timestamps[:])
        beh = nwb.intervals["behavior"].to_dataframe() if nwb.intervals and "behavior" in nwb.intervals else pd.DataFrame()
        return {"masks": masks, "traces": traces, "frame_time": frame_time,
                "rois": table.drop(columns="image_mask"), "behavior": beh, "notes": json.loads(nwb.notes),
                "subject": {"id": nwb.subject.subject_id, "genotype": nwb.subject.genotype}}
