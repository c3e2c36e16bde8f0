"""Pose tracks of the two animals (DeepLabCut, SLEAP): social variables,
identity-swap detection and rule-based behaviours.

Readers
- DeepLabCut .h5 (pandas/PyTables, key 'df_with_missing') or .csv with
  column levels scorer/bodyparts/coords (single animal, 3 header rows) or
  scorer/individuals/bodyparts/coords (multi-animal, 4 header rows); coords
  x, y and optionally likelihood.
- SLEAP analysis .h5: `tracks` (track, 2, node, frame), `node_names`,
  `track_names`, optional `point_scores` (track, node, frame).

Social variables (`pose_features`, one row per frame), lengths in px or,
with px_per_unit, in that unit; speeds per second:
    nose_nose          |nose_A - nose_B|
    nose_tail_A_B      |nose_A - tail_base_B|  (A sniffing B's rear), and B_A
    distance           |centre_A - centre_B|, centre = mean of the body points
    approach_A         velocity of centre_A projected on the unit vector A->B:
                       > 0 when A moves toward B, whatever B does; and _B
    facing_A           angle (deg, 0..180) between A's head direction
                       (head reference point -> nose) and the vector from
                       A's head reference point to centre_B; 0 = facing B; and _B

Identity swaps: at frame t the tracker's labels are compared with frame
t-1 (last seen positions). A swap is flagged where exchanging the two
animals' labels fits t-1 much better than keeping them:
cost_swap < swap_ratio * cost_keep, and cost_keep exceeds jump_factor x
the median frame-to-frame displacement (an implausible jump). With
swaps="repair" labels are exchanged back from each flagged frame to the
next (frames listed in attrs["repairs"] and the report); with "error"
(default unless repair = true) any swap is an error listing the frames.
"""
from __future__ import annotations

import csv

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .events import AnnotationError, make_events, positive_number, runs_to_bouts, source_name

OPTIONS = ("fps", "rules", "nose", "tail_base", "head", "min_likelihood", "px_per_unit", "unit", "swaps",
           "swap_ratio", "jump_factor", "partner_file", "pose_format")


@dataclass
class Pose:
    """Pose tracks.

    xy: (frame, individual, node, 2) float, px; NaN where missing.
    likelihood: (frame, individual, node) in [0, 1], or None.
    """

    xy: np.ndarray
    nodes: list[str]
    individuals: list[str]
    likelihood: np.ndarray | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return self.xy.shape[0]

    def node(self, name: str) -> int:
        if name not in self.nodes:
            raise AnnotationError(self.source, f"no body part {name!r}; body parts in the file: {self.nodes}")
        return self.nodes.index(name)

    def select(self, names: list[str]) -> "Pose":
        idx = [self.individuals.index(n) for n in names]
        lik = None if self.likelihood is None else self.likelihood[:, idx]
        return Pose(self.xy[:, idx], list(self.nodes), list(names), lik, self.source, list(self.notes))


# ---------------------------------------------------------------------------
# readers
def _from_frame(df: pd.DataFrame, path, header_rows: int | None = None) -> Pose:
    """DLC DataFrame with 3- or 4-level columns -> Pose."""
    cols = df.columns
    if not isinstance(cols, pd.MultiIndex) or cols.nlevels not in (3, 4):
        n = cols.nlevels if isinstance(cols, pd.MultiIndex) else 1
        raise AnnotationError(path, f"DeepLabCut columns have {n} level(s); expected scorer/bodyparts/coords "
                              "(3) or scorer/individuals/bodyparts/coords (4)", 1 if header_rows else None)
    if cols.nlevels == 3:
        cols = pd.MultiIndex.from_tuples([(c[0], "individual0", c[1], c[2]) for c in cols])
        df = df.set_axis(cols, axis=1)
    coords = set(cols.get_level_values(3))
    if not {"x", "y"} <= coords or not coords <= {"x", "y", "likelihood"}:
        raise AnnotationError(path, f"DeepLabCut coords level holds {sorted(coords)}; expected x, y[, likelihood]",
                              header_rows or None)
    inds, notes = [], []
    for ind in cols.get_level_values(1):
        if ind not in inds:
            inds.append(ind)
    if "single" in inds and len(inds) > 1:
        inds.remove("single")
        notes.append("DeepLabCut 'single' (unique body parts) ignored")
    nodes = []
    for c in cols:
        if c[1] == inds[0] and c[2] not in nodes:
            nodes.append(c[2])
    vals = df.apply(pd.to_numeric, errors="coerce")
    raw_bad = vals.isna() & df.notna() & (df.astype(str) != "")
    if raw_bad.to_numpy().any():
        i, j = np.argwhere(raw_bad.to_numpy())[0]
        line = (header_rows + i + 1) if header_rows else None
        raise AnnotationError(path, f"column {cols[j]}: {df.iat[i, j]!r} is not a number", line)
    T = len(df)
    xy = np.full((T, len(inds), len(nodes), 2), np.nan)
    lik = np.full((T, len(inds), len(nodes)), np.nan) if "likelihood" in coords else None
    scorer = cols.get_level_values(0)[0]
    for a, ind in enumerate(inds):
        for k, nd in enumerate(nodes):
            for d, cname in enumerate(("x", "y")):
                key = (scorer, ind, nd, cname)
                if key not in vals.columns:
                    raise AnnotationError(path, f"individual {ind!r} has no {nd!r} {cname} column")
                xy[:, a, k, d] = vals[key].to_numpy(float)
            if lik is not None and (scorer, ind, nd, "likelihood") in vals.columns:
                lik[:, a, k] = vals[(scorer, ind, nd, "likelihood")].to_numpy(float)
    return Pose(xy, nodes, inds, lik, str(path), notes)


def _check_row_widths(path) -> None:
    """Every row has as many fields as the first header row (pandas would pad a truncated row with NaN)."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        width = None
        for line, row in enumerate(csv.reader(fh), start=1):
            if not row:
                continue
            if width is None:
                width = len(row)
            elif len(row) != width:
                raise AnnotationError(path, f"row has {len(row)} fields but the header has {width} "
                                      "(truncated or damaged row)", line)


def read_dlc(path) -> Pose:
    """DeepLabCut .h5 or .csv -> Pose."""
    path = Path(path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        try:
            df = pd.read_hdf(path)
        except ImportError:  # pragma: no cover
            raise AnnotationError(path, "reading DeepLabCut .h5 needs PyTables (pip install tables)") from None
        except (ValueError, KeyError, OSError, TypeError) as exc:
            raise AnnotationError(path, f"not a DeepLabCut pose table: {exc}") from None
        return _from_frame(df, path)
    with open(path, encoding="utf-8-sig") as fh:
        head = [next(fh, "").split(",")[0].strip() for _ in range(4)]
    if head[0] != "scorer":
        raise AnnotationError(path, f"first header row starts with {head[0]!r}; a DeepLabCut CSV starts with "
                              "'scorer'", 1)
    if head[1] == "bodyparts" and head[2] == "coords":
        n = 3
    elif head[1] == "individuals" and head[2] == "bodyparts" and head[3] == "coords":
        n = 4
    else:
        expected = ["scorer", "individuals", "bodyparts", "coords"] if head[1] == "individuals" \
            else ["scorer", "bodyparts", "coords"]
        bad = next(i for i, (h, e) in enumerate(zip(head, expected), start=1) if h != e)
        raise AnnotationError(path, f"header row starts with {head[bad - 1]!r}, expected {expected[bad - 1]!r}; a "
                              "DeepLabCut CSV has header rows scorer, bodyparts, coords (single animal) or scorer, "
                              "individuals, bodyparts, coords (multi-animal)", bad)
    _check_row_widths(path)
    try:
        df = pd.read_csv(path, header=list(range(n)), index_col=0, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise AnnotationError(path, f"not a readable DeepLabCut CSV: {exc}") from None
    df = df.replace({"": np.nan, "nan": np.nan, "NaN": np.nan})
    return _from_frame(df, path, header_rows=n)


def read_sleap(path) -> Pose:
    """SLEAP analysis .h5 -> Pose."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise AnnotationError(path, f"not an HDF5 file: {exc}") from None
    with f:
        for k in ("tracks", "node_names"):
            if k not in f:
                raise AnnotationError(path, f"no dataset {k!r}: not a SLEAP analysis file (datasets: {list(f)})")
        tracks = f["tracks"][:]
        if tracks.ndim != 4 or tracks.shape[1] != 2:
            raise AnnotationError(path, f"'tracks' has shape {tracks.shape}; expected (track, 2, node, frame)")
        nodes = [n.decode() if isinstance(n, bytes) else str(n) for n in f["node_names"][:]]
        if "track_names" in f and len(f["track_names"]):
            tracks_n = [n.decode() if isinstance(n, bytes) else str(n) for n in f["track_names"][:]]
        else:
            tracks_n = [f"track_{i}" for i in range(tracks.shape[0])]
        lik = f["point_scores"][:].transpose(2, 0, 1).astype(float) if "point_scores" in f else None
    if tracks.shape[2] != len(nodes) or tracks.shape[0] != len(tracks_n):
        raise AnnotationError(path, f"'tracks' shape {tracks.shape} does not match {len(tracks_n)} track_names and "
                              f"{len(nodes)} node_names")
    xy = tracks.transpose(3, 0, 2, 1).astype(float)  # (frame, track, node, xy)
    return Pose(xy, nodes, tracks_n, lik, str(path))


def read_pose(path, pose_format: str = "auto") -> Pose:
    path = Path(path)
    if pose_format == "auto":
        pose_format = "dlc"
        if path.suffix.lower() in (".h5", ".hdf5", ".slp"):
            import h5py
            try:
                with h5py.File(path, "r") as f:
                    if "tracks" in f and "node_names" in f:
                        pose_format = "sleap"
            except OSError as exc:
                raise AnnotationError(path, f"not an HDF5 file: {exc}") from None
    if pose_format == "sleap":
        return read_sleap(path)
    if pose_format == "dlc":
        return read_dlc(path)
    raise AnnotationError(path, f"option 'pose_format' must be 'auto', 'dlc' or 'sleap', got {pose_format!r}")


def write_dlc(pose: Pose, path, scorer: str = "DLC_resnet50_test") -> Path:
    """Write a Pose as DeepLabCut multi-animal .h5 or .csv (single-animal
    layout when there is one individual)."""
    single = len(pose.individuals) == 1
    data, cols = [], []
    for a, ind in enumerate(pose.individuals):
        for k, nd in enumerate(pose.nodes):
            for d, c in enumerate(("x", "y")):
                cols.append((scorer, nd, c) if single else (scorer, ind, nd, c))
                data.append(pose.xy[:, a, k, d])
            if pose.likelihood is not None:
                cols.append((scorer, nd, "likelihood") if single else (scorer, ind, nd, "likelihood"))
                data.append(pose.likelihood[:, a, k])
    names = ["scorer", "bodyparts", "coords"] if single else ["scorer", "individuals", "bodyparts", "coords"]
    df = pd.DataFrame(np.column_stack(data), columns=pd.MultiIndex.from_tuples(cols, names=names))
    path = Path(path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        df.to_hdf(path, key="df_with_missing", format="table", mode="w")
    else:
        df.to_csv(path)
    return path


def write_sleap(pose: Pose, path) -> Path:
    """Write a Pose as a SLEAP analysis .h5 (tracks stored (track, 2, node, frame))."""
    import h5py

    with h5py.File(path, "w") as f:
        f["tracks"] = pose.xy.transpose(1, 3, 2, 0)
        f["node_names"] = np.array([n.encode() for n in pose.nodes])
        f["track_names"] = np.array([n.encode() for n in pose.individuals])
        if pose.likelihood is not None:
            f["point_scores"] = pose.likelihood.transpose(1, 2, 0)
    return Path(path)


# ---------------------------------------------------------------------------
# identity swaps
def swap_costs(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame cost of keeping vs exchanging the two animals' labels.

    xy: (frame, 2, node, 2). Each frame is compared with the last seen
    positions before it (forward-filled). Cost = mean over body points of
    the point displacement, summed over the two animals. Returns
    (keep, swap), each (frame,); NaN at frame 0 and where nothing is seen.
    """
    T = xy.shape[0]
    flat = pd.DataFrame(xy.reshape(T, -1)).ffill().to_numpy().reshape(xy.shape)
    prev = np.concatenate([np.full_like(flat[:1], np.nan), flat[:-1]])

    def d(a, b):
        with np.errstate(invalid="ignore"):
            return np.nanmean(np.linalg.norm(a - b, axis=-1), axis=-1) if a.size else a

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN frames give NaN costs
        keep = d(xy[:, 0], prev[:, 0]) + d(xy[:, 1], prev[:, 1])
        swap = d(xy[:, 0], prev[:, 1]) + d(xy[:, 1], prev[:, 0])
    return keep, swap


def detect_swaps(xy: np.ndarray, swap_ratio: float = 0.5, jump_factor: float = 5.0) -> np.ndarray:
    """Frames where the tracker exchanged the two identities.

    xy: (frame, 2, node, 2) px. A frame is flagged when cost_swap <
    swap_ratio * cost_keep and cost_keep > jump_factor * median(cost_keep).
    Returns sorted frame indices (int).
    """
    if xy.shape[1] != 2:
        raise ValueError(f"swap detection needs two animals, got xy of shape {xy.shape}")
    keep, swap = swap_costs(xy)
    ok = np.isfinite(keep) & np.isfinite(swap)
    if not ok.any():
        return np.array([], int)
    scale = max(float(np.median(keep[ok])), 1e-9)
    flagged = ok & (swap < swap_ratio * np.where(ok, keep, np.inf)) & (np.where(ok, keep, 0) > jump_factor * scale)
    return np.flatnonzero(flagged)


def repair_swaps(xy: np.ndarray, frames, likelihood: np.ndarray | None = None):
    """Exchange the two animals back from each swap frame to the next one."""
    flip = np.zeros(xy.shape[0], int)
    flip[np.asarray(frames, int)] = 1
    odd = (np.cumsum(flip) % 2).astype(bool)
    xy = xy.copy()
    xy[odd] = xy[odd][:, ::-1]
    if likelihood is not None:
        likelihood = likelihood.copy()
        likelihood[odd] = likelihood[odd][:, ::-1]
    return xy, likelihood


# ---------------------------------------------------------------------------
# social variables
_HEAD_CANDIDATES = ("neck", "head", "head_centre", "head_center", "headcentre", "headcenter")
_EAR_PAIRS = (("left_ear", "right_ear"), ("ear_left", "ear_right"), ("leftear", "rightear"), ("earL", "earR"))


def _head_ref(pose: Pose, head: str | None, tail_base: str) -> tuple[np.ndarray, str]:
    """(frame, 2, 2) head reference point (start of the head-direction vector) and its description."""
    if head:
        return pose.xy[:, :, pose.node(head)], head
    for h in _HEAD_CANDIDATES:
        if h in pose.nodes:
            return pose.xy[:, :, pose.nodes.index(h)], h
    for l, r in _EAR_PAIRS:
        if l in pose.nodes and r in pose.nodes:
            return 0.5 * (pose.xy[:, :, pose.nodes.index(l)] + pose.xy[:, :, pose.nodes.index(r)]), f"mid({l},{r})"
    return pose.xy[:, :, pose.node(tail_base)], tail_base


def pose_features(pose: Pose, fps: float, nose: str = "nose", tail_base: str = "tail_base",
                  head: str | None = None, px_per_unit: float = 1.0, unit: str = "px") -> pd.DataFrame:
    """Per-frame social variables between animals 0 (A) and 1 (B).

    pose.xy: (frame, 2, node, 2) px, identities already checked.
    Returns a DataFrame (frame, variable); attrs["units"] maps each column
    to its unit, attrs["fps"], attrs["head_reference"].
    """
    if pose.xy.shape[1] != 2:
        raise ValueError(f"pose_features needs exactly two animals, got {pose.xy.shape[1]} ({pose.individuals})")
    xy = pose.xy / float(px_per_unit)
    n, t = pose.node(nose), pose.node(tail_base)
    nose_xy, tail_xy = xy[:, :, n], xy[:, :, t]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmean(xy, axis=2)  # (frame, 2, 2)
    href, href_name = _head_ref(pose, head, tail_base)
    href = href / float(px_per_unit)
    out = {
        "nose_nose": np.linalg.norm(nose_xy[:, 0] - nose_xy[:, 1], axis=-1),
        "nose_tail_A_B": np.linalg.norm(nose_xy[:, 0] - tail_xy[:, 1], axis=-1),
        "nose_tail_B_A": np.linalg.norm(nose_xy[:, 1] - tail_xy[:, 0], axis=-1),
        "distance": np.linalg.norm(centre[:, 0] - centre[:, 1], axis=-1),
    }
    T = xy.shape[0]
    vel = np.gradient(centre, 1.0 / fps, axis=0) if T > 1 else np.zeros_like(centre)
    for s, p, name in ((0, 1, "A"), (1, 0, "B")):
        to_p = centre[:, p] - centre[:, s]
        with np.errstate(invalid="ignore", divide="ignore"):
            u = to_p / np.linalg.norm(to_p, axis=-1, keepdims=True)
            out[f"approach_{name}"] = np.sum(vel[:, s] * u, axis=-1)
            hd = nose_xy[:, s] - href[:, s]
            tv = centre[:, p] - href[:, s]
            cos = np.sum(hd * tv, axis=-1) / (np.linalg.norm(hd, axis=-1) * np.linalg.norm(tv, axis=-1))
        out[f"facing_{name}"] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    df = pd.DataFrame(out, index=pd.RangeIndex(T, name="frame"))
    df.attrs["units"] = {c: unit for c in ("nose_nose", "nose_tail_A_B", "nose_tail_B_A", "distance")}
    df.attrs["units"].update({"approach_A": f"{unit}/s", "approach_B": f"{unit}/s", "facing_A": "deg",
                              "facing_B": "deg"})
    df.attrs["fps"] = float(fps)
    df.attrs["head_reference"] = href_name
    return df


# ---------------------------------------------------------------------------
def _rule_events(feats: pd.DataFrame, rules: Mapping, fps: float, path, src: str) -> list[dict]:
    out = []
    if not isinstance(rules, Mapping) or not rules:
        raise AnnotationError(path, "format 'dlc' needs options.rules, e.g. {close = {variable = 'nose_nose', "
                              "below = 20}, approach = {variable = 'approach_{self}', above = 50, min_duration_s = 0.3}}")
    for name, rule in rules.items():
        if not isinstance(rule, Mapping):
            raise AnnotationError(path, f"options.rules.{name} must be a table")
        bad = sorted(set(rule) - {"variable", "below", "above", "min_duration_s", "animal"})
        if bad:
            raise AnnotationError(path, f"options.rules.{name}: unknown key(s) {bad}; allowed: variable, below, above, "
                                  "min_duration_s, animal")
        if ("below" in rule) == ("above" in rule):
            raise AnnotationError(path, f"options.rules.{name}: give exactly one of 'below' or 'above'")
        who = rule.get("animal", "both")
        if who not in ("A", "B", "both"):
            raise AnnotationError(path, f"options.rules.{name}.animal must be 'A', 'B' or 'both', got {who!r}")
        min_frames = max(1, int(math.ceil(float(rule.get("min_duration_s", 0.0)) * fps - 1e-9)))
        for self_ in (("A", "B") if who == "both" else (who,)):
            partner = "B" if self_ == "A" else "A"
            var = str(rule.get("variable", "")).format(self=self_, partner=partner)
            if var not in feats.columns:
                raise AnnotationError(path, f"options.rules.{name}: unknown variable {var!r}; variables: "
                                      f"{list(feats.columns)} ('{{self}}'/'{{partner}}' stand for A/B)")
            v = feats[var].to_numpy(float)
            with np.errstate(invalid="ignore"):
                on = v < float(rule["below"]) if "below" in rule else v > float(rule["above"])
            label = str(name).format(self=self_, partner=partner)
            for s, e in runs_to_bouts(on & np.isfinite(v), fps, min_frames):
                out.append(dict(animal=self_, behavior=label, start=s, stop=e, kind="state", source=src, line=0))
    return out


def load_pair(path, subjects: Mapping[str, str] | None = None, animal: str = "",
              options: Mapping | None = None) -> tuple[Pose, dict]:
    """Read a pose file, pick animals A and B, mask low-likelihood points,
    detect (and with swaps='repair' undo) identity swaps.

    Returns (pose with individuals ['A', 'B'], report dict: identity,
    swap_frames, swaps_repaired, low_likelihood_fraction, notes).
    """
    options = dict(options or {})
    pose = read_pose(path, options.get("pose_format", "auto"))
    report: dict = {"notes": list(pose.notes)}
    subjects = dict(subjects or {})
    if len(pose.individuals) == 1:
        pose, report["identity"] = _with_partner_file(path, pose, animal, options)
    else:
        names = _pair_individuals(path, pose, subjects, report["notes"])
        pose = pose.select(names)
        report["identity"] = {"A": names[0], "B": names[1]}
        pose.individuals = ["A", "B"]
    thr = float(options.get("min_likelihood", 0.6))
    if pose.likelihood is not None:
        low = ~(pose.likelihood >= thr)
        report["low_likelihood_fraction"] = float(low.mean()) if low.size else 0.0
        pose.xy = np.where(low[..., None], np.nan, pose.xy)
    swaps = detect_swaps(pose.xy, float(options.get("swap_ratio", 0.5)), float(options.get("jump_factor", 5.0)))
    report["swap_frames"] = [int(f) for f in swaps]
    mode = options.get("swaps", "repair" if options.get("repair") else "error")
    if mode not in ("repair", "error"):
        raise AnnotationError(path, f"option 'swaps' must be 'repair' or 'error', got {mode!r}")
    report["swaps_repaired"] = False
    if len(swaps):
        if mode == "error":
            raise AnnotationError(path, f"{len(swaps)} identity swap(s) between A and B at frame(s) "
                                  f"{report['swap_frames'][:20]}{' ...' if len(swaps) > 20 else ''}; fix the tracks "
                                  "or pass options {swaps = 'repair'} to exchange them back")
        pose.xy, pose.likelihood = repair_swaps(pose.xy, swaps, pose.likelihood)
        report["swaps_repaired"] = True
    return pose, report


def _with_partner_file(path, pose: Pose, animal: str, options: dict) -> tuple[Pose, dict]:
    """A single-animal pose file (tracking `animal`) joined with options.partner_file (the other
    animal): (pose with individuals ['A', 'B'], {A: file, B: file})."""
    pf = options.get("partner_file")
    if not pf or animal not in ("A", "B"):
        raise AnnotationError(path, "single-animal pose file: give 'animal' (which animal it tracks) and "
                              "options.partner_file (the other animal's pose file)")
    pfile = Path(path).parent / pf
    partner = read_pose(pfile, options.get("pose_format", "auto"))
    if len(partner.individuals) != 1 or partner.nodes != pose.nodes or partner.n_frames != pose.n_frames:
        raise AnnotationError(pfile, f"partner pose file must track one animal with the same body parts "
                              f"{pose.nodes} and {pose.n_frames} frames")
    order = [pose, partner] if animal == "A" else [partner, pose]
    xy = np.concatenate([p.xy for p in order], axis=1)
    lik = None if pose.likelihood is None or partner.likelihood is None else \
        np.concatenate([p.likelihood for p in order], axis=1)
    pose = Pose(xy, pose.nodes, ["A", "B"], lik, str(path), pose.notes)
    return pose, {"A": str(path if animal == "A" else pfile), "B": str(pfile if animal == "A" else path)}


def _pair_individuals(path, pose: Pose, subjects: dict, notes: list[str]) -> list[str]:
    """[individual of A, individual of B] of a multi-animal pose file: from `subjects`, else the
    file order of exactly two individuals (noted in `notes`)."""
    if subjects:
        unknown = [i for i in pose.individuals if i not in subjects]
        if unknown:
            raise AnnotationError(path, f"unknown individual(s) {unknown}; known subjects: {list(subjects)}")
        by_animal = {v: k for k, v in subjects.items() if k in pose.individuals}
        if set(by_animal) != {"A", "B"}:
            raise AnnotationError(path, f"'subjects' must map one individual of the file to A and one to B; "
                                  f"file individuals: {pose.individuals}")
        return [by_animal["A"], by_animal["B"]]
    if len(pose.individuals) == 2:
        names = list(pose.individuals)
        notes.append(f"no 'subjects' given: {names[0]!r} -> A, {names[1]!r} -> B (file order)")
        return names
    raise AnnotationError(path, f"the file tracks {len(pose.individuals)} individuals {pose.individuals}; "
                          "map two of them with 'subjects'")


def read_pose_annotations(path, subjects: Mapping[str, str] | None = None, animal: str = "",
                          options: Mapping | None = None, clock: str = "video") -> pd.DataFrame:
    """Pose file -> rule-based behaviour events (options.rules) of A and B."""
    options = dict(options or {})
    fps = positive_number(path, options, "fps")
    pose, report = load_pair(path, subjects, animal, options)
    feats = pose_features(pose, fps, options.get("nose", "nose"), options.get("tail_base", "tail_base"),
                          options.get("head"), float(options.get("px_per_unit", 1.0)), options.get("unit", "px"))
    src = source_name(path)
    repairs = []
    if report["swaps_repaired"]:
        repairs.append(f"{src}: identity swaps between A and B at frame(s) {report['swap_frames']} exchanged back "
                       "(each until the next swap)")
    out = _rule_events(feats, options.get("rules"), fps, path, src)
    df = make_events(out, clock=clock, repairs=repairs, fps=fps, n_frames=pose.n_frames)
    df.attrs["pose_report"] = report
    return df
