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
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core import dataset
from pipeline.io.nwb_in import (NWBInputError, check_nwb, choose_plane, external_files, frame_times,  # noqa: F401
                                imaging_series, open_nwb, raw_status, read_segmentation)

SPECIES = "Mus musculus"
NOT_RECORDED = "not recorded"


def _dense_masks(rois) -> np.ndarray:
    """(neuron, y, x) float32 image masks from the COO footprint pixels."""
    n = rois.sizes["neuron"]
    Y, X = rois["mean_image"].shape
    masks = np.zeros((n, Y, X), np.float32)
    masks[rois["pix_neuron"].values.astype(int), rois["pix_y"].values.astype(int),
          rois["pix_x"].values.astype(int)] = rois["pix_weight"].values
    return masks


def session_metadata(out: Path, overrides: dict | None = None) -> dict:
    """Recording metadata for the export: the result's session file ([session] start_time, experimenter,
    institution, lab; [animals.X] sex, species, age, location, excitation_wavelength), then `overrides` (same layout:
    {"session": {...}, "A": {...}, "B": {...}}). Unknown values are absent, never guessed."""
    import tomllib
    meta = dataset.read_root(out)
    md = {"session": {}, "A": {}, "B": {}}
    try:
        doc = tomllib.loads(Path(meta["session_file"]).read_text())
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        doc = {}
    md["session"] = {k: v for k, v in doc.get("session", {}).items()
                     if k in ("start_time", "experimenter", "institution", "lab") and v not in ("", None)}
    for a in ("A", "B"):
        md[a] = {k: v for k, v in doc.get("animals", {}).get(a, {}).items()
                 if k in ("sex", "species", "age", "location", "excitation_wavelength") and v not in ("", None, "unknown")}
    for k, v in (overrides or {}).items():
        md.setdefault(k, {}).update({kk: vv for kk, vv in v.items() if vv not in ("", None)})
    if md["session"].get("start_time"):
        try:
            datetime.fromisoformat(str(md["session"]["start_time"]))
        except ValueError:
            raise ValueError(f"{meta.get('session_file', out)}: [session] start_time = {md['session']['start_time']!r}; "
                             "expected ISO 8601 with time zone, e.g. '2024-03-01T10:30:00+01:00'") from None
    return md


def _start_time(out: Path, md: dict) -> tuple[datetime, bool]:
    """(session_start_time, recorded?): the session's start_time, else when the extraction result was made."""
    if md["session"].get("start_time"):
        t = datetime.fromisoformat(str(md["session"]["start_time"]))
        return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)), True
    rec = json.loads((out / "stages" / "extraction" / "done.json").read_text())
    try:
        return datetime.strptime(rec["time"], "%Y-%m-%dT%H:%M:%S%z"), False
    except (KeyError, ValueError):
        return datetime(1970, 1, 1, tzinfo=timezone.utc), False


def _event_table(tree) -> pd.DataFrame:
    """One row per behaviour event (animal, behavior, start, stop, kind, source): only the `event` variables,
    so the per-input and per-clock tables of /behavior do not multiply the rows."""
    if "behavior" not in tree.children:
        return pd.DataFrame()
    ds = tree["behavior"].to_dataset()
    ev = [v for v in ds.data_vars if ds[v].dims == ("event",)]
    if not ev:
        return pd.DataFrame()
    return ds[ev].to_dataframe().reset_index(drop=True).sort_values(["start", "stop"], kind="stable")


def _add_behaviour_columns(table, what: str) -> None:
    """The label columns of a behaviour table (TimeIntervals of bouts or EventsTable of instants): behavior, role,
    source. The same names in both, so readers (pynapple, behaviour_frame) find the label either way."""
    table.add_column("behavior", "behaviour label")
    table.add_column("role", "self or partner (relative to this file's animal)")
    table.add_column("source", f"annotation file the {what} came from")


def _bout_table_name(animal: str, label: str, taken) -> str:
    """`behavior_<animal>_<label>` with the label reduced to letters, digits and _ (NWB object names), unique."""
    base = f"behavior_{animal}_" + ("".join(c if c.isalnum() else "_" for c in label).strip("_") or "unlabelled")
    name, k = base, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


def export_nwb(result: str | Path, outdir: str | Path, metadata: dict | None = None) -> dict[str, Path]:
    """Write RESULT as NWB files OUTDIR/<pair>_<animal>.nwb. Returns {animal: path}.

    metadata: overrides of the session's recording metadata (see `session_metadata`), e.g.
    {"A": {"age": "P90D"}}. The session start time, subject age, imaging location and excitation
    wavelength are written only when known.
    """
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.base import Images
    from pynwb.event import EventsTable
    from pynwb.epoch import TimeIntervals
    from pynwb.file import Subject
    from pynwb.image import GrayscaleImage
    from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, OpticalChannel

    out, outdir = Path(result), Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    meta = dataset.read_root(out)
    md = session_metadata(out, metadata)
    tree = dataset.load(out)
    pair = meta["pair"]
    names = {a: f"{pair}_{a}.nwb" for a in ("A", "B")}
    events = _event_table(tree)
    start, recorded = _start_time(out, md)
    paths = {}
    for a, info in meta["animals"].items():
        other = "B" if a == "A" else "A"
        am = md.get(a, {})
        rois, traces = tree[f"{a}/rois"].to_dataset(), tree[f"{a}/traces"].to_dataset()
        prov = {n: json.loads((out / "stages" / n / "done.json").read_text()).get("fingerprint")
                for n in dataset.stage_files(out)}
        notes = {"interbrain_animal": a, "partner_file": names[other], "stage_fingerprints": prov}
        if not recorded:
            notes["session_start_time"] = ("not recorded: set [session] start_time; the file's session_start_time "
                                           "is when the extraction result was made")
        nwb = NWBFile(
            session_description=f"interbrain pair {pair}: animal {a} ({info['id']}) imaged together with partner "
                                f"{meta['animals'][other]['id']}",
            identifier=f"{pair}-{a}", session_start_time=start, session_id=pair,
            experiment_description=f"Paired recording; partner animal {other} is in {names[other]}.",
            notes=json.dumps(notes), source_script="interbrain (pipeline.io.nwb.export_nwb)",
            source_script_file_name="pipeline/io/nwb.py", keywords=["interbrain", "paired recording", "calcium imaging"],
            experimenter=[e.strip() for e in str(md["session"]["experimenter"]).split(";")]
            if md["session"].get("experimenter") else None,
            institution=md["session"].get("institution"), lab=md["session"].get("lab"))
        nwb.subject = Subject(subject_id=info["id"], species=am.get("species", SPECIES),
                              sex={"F": "F", "M": "M"}.get(am.get("sex") or info.get("sex"), "U"),
                              genotype=info.get("genotype") or "pan-neuronal (no Cre line)",
                              description=f"animal {a} of the pair", age=am.get("age"))
        device = nwb.create_device(name="Microscope", description=f"{info['modality']} imaging")
        rate = float(1.0 / np.median(np.diff(traces["frame_time"].values)))
        plane = nwb.create_imaging_plane(
            name="ImagingPlane", optical_channel=OpticalChannel(name="Green", description="calcium indicator",
                                                                emission_lambda=510.0),
            description="functional plane", device=device,
            # required by the schema: NaN / "not recorded" when the session does not say (never a guess)
            excitation_lambda=float(am.get("excitation_wavelength") or np.nan),
            imaging_rate=rate, indicator=info.get("indicator", "GCaMP"), location=am.get("location") or NOT_RECORDED)
        ophys = nwb.create_processing_module("ophys", "interbrain extraction: ROIs and traces")
        imgs = [GrayscaleImage(name="mean_image", data=rois["mean_image"].values.astype(np.float32),
                               description="mean of the registered movie (y, x)")]
        ct = tree[f"{a}/celltypes"].to_dataset() if "celltypes" in tree[a].children else None
        if ct is not None and "structural_image" in ct:
            imgs.append(GrayscaleImage(name="StructuralImage", data=ct["structural_image"].values.astype(np.float32),
                                       description="structural channel registered to the functional field of view "
                                       f"(y, x; NaN outside it); marks {ct.attrs.get('structural_marks', 'GABAergic')} cells"))
        ophys.add(Images(name="SummaryImages", images=imgs, description="field-of-view images of this plane"))
        seg = ImageSegmentation()
        ophys.add(seg)
        ps = seg.create_plane_segmentation("interbrain ROIs", plane, "PlaneSegmentation")
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
        # behaviour: one table per animal, so labels and animals survive in pynapple and the DANDI viewers;
        # bouts (state events) as TimeIntervals, instants (point events) as an EventsTable (no stop == start)
        for who in ("A", "B"):
            ev = events[events["animal"] == who] if len(events) else events
            role = "self" if who == a else "partner"
            kind = ev["kind"] if "kind" in ev else pd.Series("state", index=ev.index)
            states, points = ev[kind != "point"], ev[kind == "point"]
            # one table per animal and behaviour: an animal's bouts of different behaviours overlap (at_port and
            # hold start together), and pynapple joins overlapping intervals of a table and drops its labels
            for label, bouts in states.groupby("behavior", sort=True):
                ti = TimeIntervals(name=_bout_table_name(who, str(label), nwb.intervals or {}),
                                   description=f"'{label}' bouts of animal {who} ({meta['animals'][who]['id']}, "
                                   f"{role} of this file) on the master clock")
                _add_behaviour_columns(ti, "bout")
                for e in bouts.sort_values(["start", "stop"], kind="stable").itertuples():
                    ti.add_interval(start_time=float(e.start), stop_time=float(e.stop), behavior=str(e.behavior),
                                    role=role, source=str(getattr(e, "source", "")))
                nwb.add_time_intervals(ti)
            if len(points):
                et = EventsTable(name=f"behavior_events_{who}", description=f"point behaviour events of animal {who} "
                                 f"({meta['animals'][who]['id']}, {role} of this file) on the master clock")
                _add_behaviour_columns(et, "event")
                for e in points.itertuples():
                    et.add_row(timestamp=float(e.start), behavior=str(e.behavior), role=role,
                               source=str(getattr(e, "source", "")))
                nwb.add_events_table(et)
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
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        tmp.replace(path)
        paths[a] = path
    return paths


def behaviour_frame(nwb, a: str) -> pd.DataFrame:
    """Behaviour of both animals in an open NWB file: animal, behavior, start_time, stop_time, kind (state or
    point), role. Reads this project's tables (TimeIntervals behavior_<animal>_<label>, EventsTable
    behavior_events_A/B) and any other TimeIntervals (label column behavior/label/name, else the table name)."""
    other = "B" if a == "A" else "A"
    rows = []
    for iv in nwb.intervals or {}:
        if iv in ("trials", "epochs", "invalid_times"):
            continue
        df = nwb.intervals[iv].to_dataframe()
        label = next((c for c in ("behavior", "label", "behaviour", "name") if c in df.columns), None)
        for _, row in df.iterrows():
            if "role" in df.columns:          # relative to the file's animal
                who = a if row["role"] == "self" else other
            else:
                who = str(row["animal"]) if "animal" in df.columns else a
            rows.append((who, str(row[label]) if label else iv, float(row["start_time"]), float(row["stop_time"]),
                         "state"))
    for name in (getattr(nwb, "events", None) or {}):
        df = nwb.events[name].to_dataframe()
        label = next((c for c in ("behavior", "label", "annotation") if c in df.columns), None)
        for _, row in df.iterrows():
            who = (a if row["role"] == "self" else other) if "role" in df.columns else a
            t = float(row["timestamp"])
            rows.append((who, str(row[label]) if label else name, t, t, "point"))
    out = pd.DataFrame(rows, columns=["animal", "behavior", "start_time", "stop_time", "kind"])
    out["role"] = np.where(out["animal"] == a, "self", "partner")
    return out.sort_values(["start_time", "stop_time", "animal", "behavior"], kind="stable").reset_index(drop=True)


def read_nwb_animal(path: str | Path) -> dict:
    """One exported animal back: masks (neuron, y, x), traces {name: (neuron, frame)}, frame_time, ROI table,
    behaviour of both animals (DataFrame, see `behaviour_frame`), summary images {name: (y, x)}, subject."""
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
        notes = json.loads(nwb.notes)
        images = ({n: np.asarray(i.data[:]) for n, i in ophys["SummaryImages"].images.items()}
                  if "SummaryImages" in ophys.data_interfaces else {})
        return {"masks": masks, "traces": traces, "frame_time": frame_time, "images": images,
                "rois": table.drop(columns="image_mask"), "behavior": behaviour_frame(nwb, notes["interbrain_animal"]),
                "notes": notes, "subject": {"id": nwb.subject.subject_id, "genotype": nwb.subject.genotype,
                                            "age": nwb.subject.age}}


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
                "species": (subj.species if subj else "") or "",
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
    """(animal, behavior, start, stop) of every behaviour table in the file (see `behaviour_frame`); stop is NaN
    for point events (an empty stop in the behaviour CSV)."""
    with open_nwb(path) as nwb:
        df = behaviour_frame(nwb, a)
    return [(r.animal, r.behavior, r.start_time, np.nan if r.kind == "point" else r.stop_time) for r in df.itertuples()]


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
        cfg.update({k: v for k, v in (("nwb_plane", plane), ("species", info["species"]), ("age", info["age"]),
                                      ("location", pm.get("location")),
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
        # both files hold both animals' events: each once (NaN != NaN, so dedupe on the text form)
        uniq = {repr(r): r for r in beh_rows}
        beh = pd.DataFrame(sorted(uniq.values(), key=lambda r: (r[2], r[0], r[1])),
                           columns=["animal", "behavior", "start", "stop"])
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


class NWBFileError(ValueError):
    """An input given as NWB cannot be read as NWB. The message names the file."""


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
    if not (is_nwb and len(raw) == 1):
        return False
    try:
        return describe_nwb(raw[0], animal_cfg.get("nwb_plane", ""))["segmentation"]
    except Exception as exc:   # h5py/pynwb raise OSError, ValueError, KeyError... on a file that is not NWB
        raise NWBFileError(f"{raw[0]}: not a readable NWB (HDF5) file ({type(exc).__name__}: {exc})") from None
