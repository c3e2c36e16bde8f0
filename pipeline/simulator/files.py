"""Writers for the lab-facing files of a simulated session (everything but the movies and the truth)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.simulator.config import SimConfig

# BORIS (v8) "tabular events" export, one media file, no modifiers or independent variables.
BORIS_COLUMNS = ["Observation id", "Observation date", "Description", "Observation duration", "Observation type",
                 "Source", "Time offset (s)", "Media duration (s)", "FPS", "Subject", "Behavior",
                 "Behavioral category", "Behavior type", "Time", "Media file name", "Image index",
                 "Image file path", "Comment"]


def write_timestamps(path: Path, times: np.ndarray) -> None:
    """CSV frame,time_s (master clock, s); `frame` is the index in the movie file."""
    pd.DataFrame({"frame": np.arange(times.size), "time_s": times}).to_csv(path, index=False, float_format="%.6f")


def write_boris(path: Path, cfg: SimConfig, events: pd.DataFrame, obs_id: str, video_duration: float) -> pd.DataFrame:
    """BORIS tabular-events CSV of both subjects, times in video-local seconds.

    State bouts become START/STOP rows, point events POINT rows; rows are
    sorted by time like BORIS. Returns the rows written.
    """
    subj = dict(zip(("A", "B"), cfg.subject_names))
    rows = []
    for _, e in events.iterrows():
        local = [(e.start, "START"), (e.stop, "STOP")] if e.kind == "state" else [(e.start, "POINT")]
        for t, status in local:
            lt = round(t - cfg.video_offset_s, 3)
            rows.append((lt, subj[e.animal], e.behavior, status, int(round(lt * cfg.video_fps))))
    rows.sort(key=lambda r: (r[0], r[3] != "STOP"))
    times = [r[0] for r in rows]
    duration = (max(times) - min(times)) if times else 0.0
    media = "behavior/video.mp4"
    out = pd.DataFrame([{
        "Observation id": obs_id, "Observation date": "2026-01-15 10:00:00", "Description": "simulated pair session",
        "Observation duration": f"{duration:.3f}", "Observation type": "Media file(s)",
        "Source": f"player #1:{media}", "Time offset (s)": "0.000", "Media duration (s)": f"{video_duration:.3f}",
        "FPS": f"{cfg.video_fps:.3f}", "Subject": s, "Behavior": b, "Behavioral category": "social" if b in cfg.behaviors else "",
        "Behavior type": status, "Time": f"{t:.3f}", "Media file name": media, "Image index": idx,
        "Image file path": "NA", "Comment": ""} for t, s, b, status, idx in rows], columns=BORIS_COLUMNS)
    out.to_csv(path, index=False)
    return out


def master_to_task(cfg: SimConfig, t: np.ndarray) -> np.ndarray:
    """Task-computer clock from master clock: master = offset + (1 + drift) * local."""
    return (np.asarray(t) - cfg.task_offset_s) / (1.0 + cfg.task_drift_ppm * 1e-6)


def write_task(task_dir: Path, cfg: SimConfig, task: dict, t_end: float, rng: np.random.Generator) -> None:
    """task_log.csv (time_s on the task clock, animal, event) and sync.csv (local_s, master_s)."""
    v = task["visits"]
    rows = []
    for _, r in v.iterrows():
        rows += [(r.entry, r.animal, "port_entry"), (r.poke, r.animal, "poke"), (r.exit, r.animal, "port_exit")]
    for t in task["rewards"].time:
        rows += [(t, "A", "reward"), (t, "B", "reward")]
    log = pd.DataFrame(rows, columns=["master", "animal", "event"]).sort_values(["master", "animal"], kind="stable")
    log.insert(0, "time_s", np.round(master_to_task(cfg, log.pop("master").to_numpy()), 4))
    log.to_csv(task_dir / "task_log.csv", index=False, float_format="%.4f")
    pulses = np.arange(0.5, t_end, cfg.sync_interval_s)
    pulses = pulses + rng.uniform(-0.05, 0.05, pulses.size)  # TTL generator is not perfectly periodic
    local = master_to_task(cfg, pulses) + rng.normal(0, 1e-4, pulses.size)  # 0.1 ms detection jitter
    pd.DataFrame({"local_s": local, "master_s": pulses}).to_csv(task_dir / "sync.csv", index=False, float_format="%.6f")


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


# Recording metadata of a simulated session (NWB export keys): plausible values, marked as simulated where the
# field is free text. The start time is the BORIS file's observation date; wavelengths are the usual ones for
# GCaMP (2p: 920 nm, 1p: 470 nm).
SIM_SESSION_METADATA = {"start_time": "2026-01-15T10:00:00+00:00", "experimenter": "Simulator, Interbrain",
                        "institution": "none (simulated session, interbrain pipeline.simulator)"}
SIM_ANIMAL_METADATA = {"species": "Mus musculus", "age": "P90D", "location": "ACAd"}
SIM_SEX = ("F", "M")
SIM_EXCITATION_NM = {"2p": 920.0, "1p": 470.0}


def write_session_toml(path: Path, cfg: SimConfig, name: str, seed: int, mean_sigma: float) -> None:
    """session.toml with relative paths (valid for pipeline.core.session.Session.load)."""
    lines = ["# Simulated pair session (pipeline.simulator); ground truth in ground_truth/.",
             "# Recording metadata (start_time, experimenter, institution, sex, species, age, location,",
             "# excitation_wavelength) is simulated too: plausible values for the NWB export, not a real recording.", "",
             "[session]", f"name = {_toml_value(name)}", 'output_dir = "results"', f"seed = {seed}",
             f"condition = {_toml_value(cfg.condition)}",
             *(f"{k} = {_toml_value(v)}" for k, v in SIM_SESSION_METADATA.items()), ""]
    for i, a in enumerate("AB"):
        lines += [f"[animals.{a}]", f"id = {_toml_value(cfg.animal_id[i])}",
                  f"genotype = {_toml_value(cfg.genotype[i])}", 'indicator = "GCaMP6f"',
                  f"modality = {_toml_value(cfg.modality)}", f'raw = ["{a}/movie.tif"]', 'raw_format = "tiff"',
                  f"frame_rate = {cfg.frame_rate[i]!r}", f'timestamps = "{a}/timestamps.csv"',
                  f"sex = {_toml_value(SIM_SEX[i])}", *(f"{k} = {_toml_value(v)}" for k, v in SIM_ANIMAL_METADATA.items()),
                  f"excitation_wavelength = {SIM_EXCITATION_NM.get(cfg.modality, 920.0)!r}"]
        if cfg.structural[i]:
            lines += [f'structural = "{a}/structural.tif"', f"structural_marks = {_toml_value(cfg.structural_marks)}"]
        lines.append("")
    lines += ["[[annotations]]", 'path = "behavior/boris_events.csv"', 'format = "boris"', 'clock = "video"',
              f"subjects = {_toml_value({cfg.subject_names[0]: 'A', cfg.subject_names[1]: 'B'})}", "",
              "[clocks.video]", 'timestamps = "behavior/video_timestamps.csv"', f"frame_rate = {cfg.video_fps!r}", "",
              "[clocks.task]", 'sync = "task/sync.csv"', "",
              "[task]", 'log = "task/task_log.csv"', 'clock = "task"', "",
              "[extraction]", f"diameter = {max(2, int(round(4 * mean_sigma)))}", f"tau = {cfg.tau_decay_s!r}",
              *(["detect_full_frame_2p = true"] if cfg.detect_full_frame else []), "",
              "[behavior]", f"coordination_window_s = {cfg.coordination_window_s!r}", ""]
    for section in dict.fromkeys(e[0] for e in cfg.session_params):
        lines += [f"[{section}]"] + [f"{k} = {_toml_value(v)}" for sec, k, v in cfg.session_params
                                     if sec == section] + [""]
    block = max(16, min(cfg.fov) // 2)
    lines[lines.index("[extraction]"):lines.index("[extraction]")] = ["[motion]", f"block_size = [{block}, {block}]", ""]
    path.write_text("\n".join(lines))
