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

from pipeline.core import dataset
from pipeline.io.nwb_in import (NWBInputError, check_nwb, choose_plane, external_files, frame_times,  # noqa: F401
                                imaging_series, open_nwb, raw_status, read_segmentation)

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
            source_script="interbrain (pipeline.io.nwb.export_nwb)", source_script_file_name="pipeline/io/nwb.py",
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
                          ("spikes", "deconvolved activity (a.u.)"),
                          ("C", "")):
            if var in traces:
                desc = desc or traces[var].attrs["description"]   # C: described where it is made
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


# ---------------------------------------------------------------------------------------------- NWB in

def describe_nwb(path: str | Path, plane: str = "") -> dict:
    """What an NWB file offers the pipeline: subject, session, raw series, segmentation, behaviour tables."""
    with open_nwb(path) as nwb:
        raws = imaging_series(nwb)
        raw = None
        if raws:
            s = raws[0]
            kind, detail = raw_status(path, s)
            raw = {"name": s.name, "type": type(s).__name__, "frames": kind, "detail": detail,
                   "shape": tuple(s.data.shape) if s.data is not None else (),
                   "rate": s.rate, "has_timestamps": s.timestamps is not None}
        try:
            ps = choose_plane(path, nwb, plane)
        except NWBInputError:
            ps = "ambiguous"
        intervals = [n for n in (nwb.intervals or {}) if n not in ("trials", "epochs", "invalid_times")]
        subj = nwb.subject
        return {"path": str(path), "session_id": nwb.session_id, "start": nwb.session_start_time.isoformat(),
                "subject_id": subj.subject_id if subj else None, "genotype": (subj.genotype if subj else "") or "",
                "sex": (subj.sex if subj else "U") or "U", "age": (subj.age if subj else "") or "",
                "experimenter": "; ".join(nwb.experimenter or ()), "institution": nwb.institution or "",
                "lab": nwb.lab or "", "raw": raw, "segmentation": ps is not None, "intervals": intervals}


def _plane_meta(path, plane: str) -> dict:
    """Imaging-plane metadata of the chosen segmentation: location, excitation wavelength, indicator."""
    with open_nwb(path) as nwb:
        ps = choose_plane(path, nwb, plane)
        ip = ps.imaging_plane if ps is not None else next(
            (s.imaging_plane for s in imaging_series(nwb)), None)
        if ip is None:
            return {}
        loc = ip.location if ip.location not in (None, "", "unknown", "not recorded") else ""
        return {"location": loc, "excitation_wavelength": ip.excitation_lambda if ip.excitation_lambda and
                np.isfinite(ip.excitation_lambda) and ip.excitation_lambda > 0 else None,
                "indicator": ip.indicator or ""}


def _behaviour_rows(path, a: str) -> list[tuple]:
    """(animal, behavior, start, stop) of every behaviour table in the file: this project's per-animal tables
    (behavior_A/behavior_B, point events in an ndx-events EventsTable) or any other TimeIntervals."""
    other = "B" if a == "A" else "A"
    rows = []
    with open_nwb(path) as nwb:
        for iv in nwb.intervals or {}:
            if iv in ("trials", "epochs", "invalid_times"):
                continue
            df = nwb.intervals[iv].to_dataframe()
            label = next((c for c in ("behavior", "label", "behaviour", "name") if c in df.columns), None)
            for _, row in df.iterrows():
                if "role" in df.columns:      # relative to the file's animal
                    who = a if row["role"] == "self" else other
                elif "animal" in df.columns:
                    who = str(row["animal"])
                else:
                    who = a
                rows.append((who, str(row[label]) if label else iv, float(row["start_time"]), float(row["stop_time"])))
        mod = nwb.processing.get("behavior")
        for name, iface in (mod.data_interfaces.items() if mod is not None else ()):
            if type(iface).__name__ == "EventsTable":
                df = iface.to_dataframe()
                for _, row in df.iterrows():
                    who = a if row.get("role", "self") == "self" else other
                    rows.append((who, str(row.get("behavior", name)), float(row["timestamp"]), float(row["timestamp"])))
    return rows


def _cell_labels(path, plane: str) -> pd.DataFrame:
    """(roi_id, label, confidence) of a PlaneSegmentation's `cell_type` column; empty when there is none."""
    with open_nwb(path) as nwb:
        ps = choose_plane(path, nwb, plane)
        if ps is None or "cell_type" not in ps.colnames:
            return pd.DataFrame(columns=["roi_id", "label"])
        df = pd.DataFrame({"roi_id": np.asarray(ps.id[:], int), "label": [str(v) for v in ps["cell_type"][:]]})
        return df[df["label"].isin(["GABAergic", "glutamatergic"])]


def _structural(path) -> tuple[np.ndarray, str] | None:
    """(image (y, x), population it marks) of the file's structural image (ophys Images 'StructuralImage')."""
    with open_nwb(path) as nwb:
        for mod in nwb.processing.values():
            for iface in mod.data_interfaces.values():
                if type(iface).__name__ == "Images" and "StructuralImage" in iface.images:
                    img = iface.images["StructuralImage"]
                    marks = "glutamatergic" if "glutamatergic" in (img.description or "") else "GABAergic"
                    return np.asarray(img.data[:], np.float32), marks
    return None


def session_from_nwb(nwb_a: str | Path, nwb_b: str | Path, outdir: str | Path, name: str | None = None,
                     planes: dict | None = None) -> tuple[Path, list[str]]:
    """Write a pair session (session.toml + timestamps, behaviour, label and structural files) from two NWB files.

    planes: {animal: PlaneSegmentation name} where a file has several. Returns (session.toml path, what the
    session lacks, one line each naming file and object). Raw frames are read from the NWB files (or the
    files they link); an existing segmentation is used when present (motion and extraction are then skipped).
    Unusable input raises NWBInputError naming the file and object.
    """
    import tifffile
    import tomli_w
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    planes = planes or {}
    missing, animals, beh_rows = [], {}, []
    genotype_known = False
    starts, meta = set(), {}
    for a, path in (("A", nwb_a), ("B", nwb_b)):
        plane = planes.get(a, "")
        problems, notes = check_nwb(path, plane)
        if problems:
            raise NWBInputError(problems[0])
        missing += [f"{a}: {n}" for n in notes]
        info = describe_nwb(path, plane)
        if info["raw"] is not None and info["raw"]["frames"] != "none":
            from pipeline.io.readers import open_movie
            with open_nwb(path) as nwb:
                s = imaging_series(nwb)[0]
                T = s.data.shape[0] if info["raw"]["frames"] == "data" else None
                if T is None:
                    with open_movie([str(p) for p in external_files(path, s)]) as mv:
                        T = len(mv)
                ts = frame_times(path, s, T)
        else:
            ts = read_segmentation(path, plane)[1]["frame_time"].values
        beh_rows += _behaviour_rows(path, a)
        pd.DataFrame({"frame": np.arange(len(ts)), "time_s": ts}).to_csv(outdir / f"{a}_timestamps.csv", index=False)
        sex = info["sex"] if info["sex"] in ("F", "M") else "unknown"
        genotype = "" if info["genotype"] in ("", "pan-neuronal") else info["genotype"]
        pm = _plane_meta(path, plane)
        cfg = {"id": info["subject_id"] or f"animal_{a}", "sex": sex, "genotype": genotype,
               "modality": "1p" if info["raw"] and info["raw"]["type"] == "OnePhotonSeries" else "2p",
               "raw": [str(Path(path).resolve())], "raw_format": "nwb", "timestamps": f"{a}_timestamps.csv"}
        if pm.get("indicator"):
            cfg["indicator"] = pm["indicator"]
        cfg.update({k: v for k, v in (("nwb_plane", plane), ("age", info["age"]), ("location", pm.get("location")),
                                      ("excitation_wavelength", pm.get("excitation_wavelength"))) if v})
        labels = _cell_labels(path, plane) if info["segmentation"] else pd.DataFrame()
        if len(labels):   # the file's own cell-type labels are kept (they override re-derived ones)
            labels.assign(animal=a).to_csv(outdir / f"{a}_cell_types.csv", index=False,
                                            columns=["animal", "roi_id", "label"])
            cfg["label_table"] = f"{a}_cell_types.csv"
        st = _structural(path)
        if st is not None:   # the structural image comes back, so cell types can be derived again
            img, marks = st
            tifffile.imwrite(outdir / f"{a}_structural.tif", np.nan_to_num(img, nan=float(np.nanmin(img))))
            cfg.update(structural=f"{a}_structural.tif", structural_marks=marks)
        animals[a] = cfg
        genotype_known = genotype_known or bool(genotype) or len(labels) > 0 or st is not None
        starts.add(info["start"])
        for k in ("experimenter", "institution", "lab"):
            if info[k]:
                meta[k] = info[k]
    session = {"name": name or Path(outdir).name, "output_dir": "results", **meta}
    if len(starts) == 1:
        session["start_time"] = starts.pop()
    doc = {"session": session, "animals": animals}
    if beh_rows:
        beh = pd.DataFrame(sorted(set(beh_rows)), columns=["animal", "behavior", "start", "stop"])
        beh.to_csv(outdir / "behavior.csv", index=False)
        doc["annotations"] = [{"path": "behavior.csv", "format": "csv", "clock": "nwb",
                               "subjects": {"A": "A", "B": "B"}}]
        doc["clocks"] = {"nwb": {"offset_s": 0.0}}
    else:
        missing.append("behaviour: no TimeIntervals in either file (behaviour-dependent analyses are skipped)")
    if not genotype_known:
        missing.append("cell types: no genotype, cell-type labels or structural image in the NWB files; "
                       "add [animals.X] genotype, structural or label_table")
    path = outdir / "session.toml"
    dataset.atomic_write_text(path, tomli_w.dumps(doc))
    return path, missing


def uses_nwb_segmentation(animal_cfg: dict) -> bool:
    """True when this animal's ROIs and traces come from its NWB file instead of extraction.

    `rois_from = "nwb"` forces it; "auto" uses it when the raw file is an NWB file holding a
    PlaneSegmentation (registering again would misalign someone else's ROIs); "extract" never.
    """
    mode = animal_cfg.get("rois_from", "auto")
    if mode == "extract":
        return False
    raw = animal_cfg["raw"]
    is_nwb = animal_cfg.get("raw_format") == "nwb" or (len(raw) == 1 and str(raw[0]).endswith(".nwb"))
    if mode == "nwb":
        if not is_nwb:
            raise ValueError(f"rois_from = 'nwb' needs an NWB raw file; got {raw}")
        return True
    return is_nwb and len(raw) == 1 and describe_nwb(raw[0], animal_cfg.get("nwb_plane", ""))["segmentation"]
