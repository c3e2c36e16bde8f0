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

def read_segmentation(path: str | Path) -> tuple | None:
    """Existing ROIs and traces of an NWB file, in the dataset's layout, or None when it has none.

    Returns (rois, traces): rois as `/A/rois` (COO footprint pixels, roi_id, iscell_prob, is_cell, mean_image),
    traces as `/A/traces` (F, Fneu, dff, spikes (neuron, frame) where present; frame_time in s).
    """
    import xarray as xr
    from pynwb import NWBHDF5IO
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        ps = None
        for mod in nwb.processing.values():
            for iface in mod.data_interfaces.values():
                if type(iface).__name__ == "ImageSegmentation" and iface.plane_segmentations:
                    ps = next(iter(iface.plane_segmentations.values()))
        if ps is None:
            return None
        if "image_mask" in ps.colnames:
            masks = np.stack([np.asarray(m) for m in ps["image_mask"][:]]).astype(np.float32)
        elif "pixel_mask" in ps.colnames:
            raise ValueError(f"{path}: PlaneSegmentation uses pixel_mask; give image_mask (dense) for now")
        else:
            raise ValueError(f"{path}: PlaneSegmentation has neither image_mask nor pixel_mask")
        n, Y, X = masks.shape
        nz = np.nonzero(masks)
        cols = set(ps.colnames)
        roi_id = np.asarray(ps["roi_id"][:]) if "roi_id" in cols else np.arange(n)
        prob = np.asarray(ps["iscell_prob"][:], float) if "iscell_prob" in cols else np.ones(n)
        is_cell = np.asarray(ps["is_cell"][:], bool) if "is_cell" in cols else np.ones(n, bool)
        series = {}
        for mod in nwb.processing.values():
            for iface in mod.data_interfaces.values():
                if type(iface).__name__ in ("Fluorescence", "DfOverF"):
                    for name, s in iface.roi_response_series.items():
                        series[name] = s
        if not series:
            raise ValueError(f"{path}: has ROIs but no Fluorescence or DfOverF traces")
        first = next(iter(series.values()))
        T = first.data.shape[0]
        ft = (np.asarray(first.timestamps[:]) if first.timestamps is not None
              else first.starting_time + np.arange(T) / first.rate)
        rename = {"RoiResponseSeries": "F", "Deconvolved": "spikes", "DfOverF": "dff"}
        data = {}
        for name, s in series.items():
            arr = np.asarray(s.data[:], np.float32)
            if arr.shape != (T, n):
                raise ValueError(f"{path}: series {name!r} has shape {arr.shape}; expected (frames={T}, rois={n})")
            data[rename.get(name, name)] = (("neuron", "frame"), arr.T)
        mean = masks.max(0)
        rois = xr.Dataset({"pix_neuron": ("pixel", nz[0].astype(np.int32)), "pix_y": ("pixel", nz[1].astype(np.int32)),
                           "pix_x": ("pixel", nz[2].astype(np.int32)), "pix_weight": ("pixel", masks[nz]),
                           "roi_id": ("neuron", roi_id.astype(np.int64)), "iscell_prob": ("neuron", prob),
                           "is_cell": ("neuron", is_cell),
                           "centroid_y": ("neuron", np.array([np.average(np.nonzero(m)[0], weights=m[m > 0]) for m in masks])),
                           "centroid_x": ("neuron", np.array([np.average(np.nonzero(m)[1], weights=m[m > 0]) for m in masks])),
                           "mean_image": (("y", "x"), mean)}, attrs={"source": f"NWB segmentation of {Path(path).name}"})
        traces = xr.Dataset(data, coords={"frame_time": ("frame", ft, {"units": "s"})},
                            attrs={"source": f"NWB traces of {Path(path).name}"})
        return rois, traces


def _imaging_series(nwb):
    for s in nwb.acquisition.values():
        if type(s).__name__ in ("TwoPhotonSeries", "OnePhotonSeries"):
            return s
    return None


def describe_nwb(path: str | Path) -> dict:
    """What an NWB file offers the pipeline: subject, raw series, segmentation, behaviour, timestamps."""
    from pynwb import NWBHDF5IO
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        raw = _imaging_series(nwb)
        seg = any(type(i).__name__ == "ImageSegmentation" for m in nwb.processing.values()
                  for i in m.data_interfaces.values())
        intervals = [n for n in (nwb.intervals or {}) if n not in ("trials", "epochs", "invalid_times")]
        subj = nwb.subject
        return {"path": str(path), "session_id": nwb.session_id, "start": nwb.session_start_time.isoformat(),
                "subject_id": subj.subject_id if subj else None, "genotype": (subj.genotype if subj else "") or "",
                "sex": (subj.sex if subj else "U") or "U",
                "raw": None if raw is None else {"name": raw.name, "type": type(raw).__name__,
                                                 "shape": tuple(raw.data.shape),
                                                 "rate": raw.rate, "has_timestamps": raw.timestamps is not None},
                "segmentation": seg, "intervals": intervals}


def session_from_nwb(nwb_a: str | Path, nwb_b: str | Path, outdir: str | Path, name: str | None = None) -> tuple[Path, list[str]]:
    """Write a pair session (session.toml + timestamps and behaviour CSVs) from two NWB files.

    Returns (session.toml path, list of what the session still lacks). Raw series are read lazily from the
    NWB files; existing segmentation is used when present (extraction is then skipped).
    """
    import tomli_w
    from pynwb import NWBHDF5IO
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    missing, animals, beh_rows = [], {}, []
    genotype_known = None
    for a, path in (("A", nwb_a), ("B", nwb_b)):
        info = describe_nwb(path)
        with NWBHDF5IO(str(path), "r") as io:
            nwb = io.read()
            raw = _imaging_series(nwb)
            if raw is not None:
                T = raw.data.shape[0]
                ts = (np.asarray(raw.timestamps[:]) if raw.timestamps is not None
                      else (raw.starting_time or 0.0) + np.arange(T) / raw.rate)
            elif info["segmentation"]:
                rois_traces = read_segmentation(path)
                ts = rois_traces[1]["frame_time"].values
            else:
                raise ValueError(f"{path}: no TwoPhotonSeries/OnePhotonSeries in acquisition and no "
                                 "ImageSegmentation: nothing to analyse")
            for iv in info["intervals"]:
                df = nwb.intervals[iv].to_dataframe()
                label_col = next((c for c in ("behavior", "label", "behaviour", "name") if c in df.columns), None)
                for _, row in df.iterrows():
                    who = row.get("animal", a) if "role" not in df.columns else (
                        a if row["role"] == "self" else ("B" if a == "A" else "A"))
                    beh_rows.append((who, str(row[label_col]) if label_col else iv,
                                     float(row["start_time"]), float(row["stop_time"])))
        pd.DataFrame({"frame": np.arange(len(ts)), "time_s": ts}).to_csv(outdir / f"{a}_timestamps.csv", index=False)
        sex = info["sex"] if info["sex"] in ("F", "M") else "unknown"
        genotype = "" if info["genotype"] in ("", "pan-neuronal") else info["genotype"]
        animals[a] = {"id": info["subject_id"] or f"animal_{a}", "sex": sex, "genotype": genotype,
                      "modality": "1p" if info["raw"] and info["raw"]["type"] == "OnePhotonSeries" else "2p",
                      "raw": [str(Path(path).resolve())], "raw_format": "nwb", "timestamps": f"{a}_timestamps.csv"}
        if info["raw"] is None:
            missing.append(f"{a}: no raw imaging series (using the file's segmentation and traces)")
        if not info["segmentation"] and info["raw"] is None:
            missing.append(f"{a}: neither raw movie nor ROIs")
        genotype_known = genotype_known or bool(genotype)
    doc = {"session": {"name": name or Path(outdir).name, "output_dir": "results"}, "animals": animals}
    if beh_rows:
        beh = pd.DataFrame(sorted(set(beh_rows)), columns=["animal", "behavior", "start", "stop"])
        beh.to_csv(outdir / "behavior.csv", index=False)
        doc["annotations"] = [{"path": "behavior.csv", "format": "csv", "clock": "nwb",
                               "subjects": {"A": "A", "B": "B"}}]
        doc["clocks"] = {"nwb": {"offset_s": 0.0}}
    else:
        missing.append("behaviour: no TimeIntervals in either file (behaviour-dependent analyses are skipped)")
    if not genotype_known:
        missing.append("cell types: no genotype in the NWB subjects; add [animals.X] genotype or structural")
    path = outdir / "session.toml"
    dataset.atomic_write_text(path, tomli_w.dumps(doc))
    return path, missing


class NWBFileError(ValueError):
    """An input given as NWB cannot be read as NWB. The message names the file."""


def uses_nwb_segmentation(animal_cfg: dict) -> bool:
    """True when this animal's ROIs and traces come from its NWB file instead of extraction.

    `rois_from = "nwb"` forces it; "auto" uses it when the raw file is an NWB file holding an
    ImageSegmentation (registering again would misalign someone else's ROIs); "extract" never.
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
    if not (is_nwb and len(raw) == 1):
        return False
    try:
        return describe_nwb(raw[0])["segmentation"]
    except Exception as exc:   # h5py/pynwb raise OSError, ValueError, KeyError... on a file that is not NWB
        raise NWBFileError(f"{raw[0]}: not a readable NWB (HDF5) file ({type(exc).__name__}: {exc})") from None
