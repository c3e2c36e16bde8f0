"""Ground truth of a simulated session: ground_truth/truth.nc (DataTree, h5netcdf) and its README."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.simulator.config import SimConfig

README = """# Ground truth of a simulated pair session

Written by `pipeline.simulator.simulate_session`; read with
`pipeline.simulator.load_truth(session_dir)` (an `xarray.DataTree`).
Times are seconds on the **master clock** unless stated. Pixel coordinates are
(y, x) in the movie's field of view, origin at the top-left pixel centre.

## `/` attrs
`seed`, `preset`, `config` (JSON of every SimConfig field), `master_clock` note.

## `/A`, `/B` (one per animal; dims `neuron`, `frame`, `y`, `x`)
| variable | dims | units | meaning |
| --- | --- | --- | --- |
| `footprint` | neuron, y, x | 0-1 | soma shape (elliptical Gaussian, peak 1, cut at 3 SD) in the zero-motion reference frame, before the optics blur (`psf_sigma_px` attr) |
| `centroid` | neuron, axis | px | soma centre (y, x) |
| `sigma` | neuron, axis2 | px | SD along major/minor axis |
| `F0` | neuron | counts | baseline peak brightness above the dark offset |
| `cell_type` | neuron | str | GABAergic / glutamatergic |
| `base_rate` | neuron | Hz | baseline firing rate |
| `spikes` | neuron, frame | count | spikes in [frame_time, frame_time + 1/frame_rate) |
| `calcium` | neuron, frame | dF/F | planted fluorescence change of each soma at the frame time, before motion and noise: F = F0 (1 + calcium) |
| `frame_time` | frame | s | master-clock time of each movie frame (= timestamps.csv) |
| `frame_original` | frame | index | frame index before drops |
| `dropped_frames` | dropped | index | original frame indices the camera dropped (absent from movie and timestamps) |
| `rigid_shift` | frame, axis | px | applied translation (dy, dx): frame content = reference content moved by +shift; correct by -shift |
| `nonrigid_amplitude` | frame | px | largest nonrigid displacement in the frame |
| `nonrigid_field` | component, axis, y, x | px | smooth displacement bases; the warp of frame t is sum_k nonrigid_coef[t, k] * field[k] |
| `nonrigid_coef` | frame, component | 1 | coefficients of the nonrigid bases |
| `jumps` | jump, jump_field | s, s, px | large transient displacements (start, stop, amplitude) |
| `neuropil_modulation` | frame | 1 | slow gain on the neuropil field |
| `vessel_transmission` | y, x | 0-1 | light the tissue lets through (1 = no vessel), zero-motion reference frame: vessels move with the tissue |
| `vignette` | y, x | 0-1 | illumination gain, sensor coordinates (fixed: does not move with the tissue) |
| `glow` | y, x | counts | additive stray light, sensor coordinates (fixed; 0 for 2p) |
| `glow_modulation` | frame | 1 | slow gain on the glow |
| `shared_loading` | neuron, factor | fraction of base rate per unit factor | weight w of each shared factor: rate = base * max(0, 1 + w.z + v.q + sum beta x) |
| `private_loading` | neuron, private | fraction of base rate | weights v of this animal's private factors |
| `private_factors` | private, time_fine | z | private latents (unit variance) |
| `behavior_response` | neuron, behavior, role | fraction of base rate | gain beta of each behaviour indicator x (1 inside a state bout, 1 for `point_response_s` after a poke/reward); role self: the animal's own behaviour, partner: the partner's; reward has role self only |
| `structural_image` | y, x | counts | noise-free red reporter image (only for animals with a structural channel) |

attrs: `frame_rate` (Hz, nominal), `start_offset_s`, `genotype`, `modality`,
`dark_offset`, `photon_gain`, `read_noise`, `dff_per_spike`, `tau_rise_s`, `tau_decay_s`,
`psf_sigma_px` (Gaussian SD of the optics blur applied in sensor coordinates).

Image model of a frame t (counts): dark + vignette x bleach_t x blur(warp_t(tissue_t)) +
glow_modulation_t x glow + noise, where tissue_t = sum F0 (1 + calcium_t) footprint +
vessel_transmission x (neuropil_modulation_t x neuropil + 1p out-of-focus background).

## `/shared`
`factors` (factor, time_fine): the shared latent factors (unit variance) on the
fine grid `time_fine` (s, spacing `fine_dt`); `timescale` (factor) s.
attrs: `n_shared_planted` = number of independent signals that drive neurons
in BOTH animals = n_shared latent factors + behaviour/task sources that reach
both animals (listed in `drive_map`, JSON {source: [animals]}); with the
default response map every behaviour source drives one animal only, so
`n_shared_planted == n_shared`.

## `/events` (dim `event`)
Annotated behaviour (what behavior/boris_events.csv holds): `animal` (A/B),
`behavior`, `start`, `stop` (s, master clock; point events have stop == start),
`kind` (state/point). Times sit on behaviour-video frames.

## `/task`
`poke_animal`, `poke_time` (s), `poke_coordinated` (dim `poke`): the partner
poked within `coordination_window_s` (attr, s) either side.
`hold_animal`, `hold_start`, `hold_stop` (dim `hold`): port entry -> poke.
`exit_time` (dim `hold`): port exit. `reward_time` (dim `reward`): rewards
(both animals). attrs: `task_offset_s`, `task_drift_ppm`
(master = offset + (1 + drift) * task_local).
"""


def _animal_ds(cfg: SimConfig, i: int, d: dict, t_fine: np.ndarray) -> xr.Dataset:
    a = "AB"[i]
    sc, nr = d["scene"], d["neurons"]
    p = sc.pad
    Y, X = cfg.fov
    n = nr.base_rate.size
    coords = {"neuron": np.arange(n), "frame": np.arange(d["times"].size), "y": np.arange(Y), "x": np.arange(X),
              "axis": ["y", "x"], "factor": np.arange(cfg.n_shared), "private": np.arange(cfg.n_private),
              "behavior": list(nr.behaviors), "role": ["self", "partner"], "component": [0, 1],
              "time_fine": t_fine}
    ds = xr.Dataset(coords=coords)
    ds["footprint"] = (("neuron", "y", "x"), sc.footprints[:, p:p + Y, p:p + X])
    ds["centroid"] = (("neuron", "axis"), sc.centers)
    ds["sigma"] = (("neuron", "axis2"), sc.sigmas)
    ds["F0"] = ("neuron", sc.F0, {"units": "counts"})
    ds["cell_type"] = ("neuron", nr.cell_type.astype(str))
    ds["base_rate"] = ("neuron", nr.base_rate, {"units": "Hz"})
    ds["spikes"] = (("neuron", "frame"), d["spikes"], {"units": "count"})
    ds["calcium"] = (("neuron", "frame"), d["dff"], {"units": "dF/F"})
    ds["frame_time"] = ("frame", d["times"], {"units": "s"})
    ds["frame_original"] = ("frame", d["kept"])
    ds["dropped_frames"] = ("dropped", d["dropped"])
    ds["rigid_shift"] = (("frame", "axis"), d["motion"]["rigid"], {"units": "px"})
    ds["nonrigid_amplitude"] = ("frame", d["warp_amp"], {"units": "px"})
    ds["nonrigid_field"] = (("component", "axis", "y", "x"), d["fields"], {"units": "px"})
    ds["nonrigid_coef"] = (("frame", "component"), d["motion"]["nonrigid_coef"])
    ds["jumps"] = (("jump", "jump_field"), d["motion"]["jumps"], {"columns": "start_s, stop_s, amplitude_px"})
    ds["neuropil_modulation"] = ("frame", d["neuropil_mod"])
    ds["vessel_transmission"] = (("y", "x"), sc.vessels[p:p + Y, p:p + X])
    ds["vignette"] = (("y", "x"), sc.vignette)
    ds["glow"] = (("y", "x"), sc.glow, {"units": "counts"})
    ds["glow_modulation"] = ("frame", d["glow_mod"])
    ds["shared_loading"] = (("neuron", "factor"), nr.shared_loading)
    ds["private_loading"] = (("neuron", "private"), nr.private_loading)
    ds["private_factors"] = (("private", "time_fine"), d["private"].astype(np.float32))
    ds["behavior_response"] = (("neuron", "behavior", "role"), nr.behavior_response)
    if d["structural"] is not None:
        ds["structural_image"] = (("y", "x"), d["structural"], {"units": "counts"})
    ds.coords["time_fine"].attrs["units"] = "s"
    ds.attrs.update(frame_rate=cfg.frame_rate[i], start_offset_s=cfg.start_offset_s[i], genotype=cfg.genotype[i],
                    modality=cfg.modality, dark_offset=cfg.dark_offset, photon_gain=cfg.photon_gain,
                    read_noise=cfg.read_noise * cfg.noise, dff_per_spike=cfg.dff_amplitude,
                    tau_rise_s=cfg.tau_rise_s, tau_decay_s=cfg.tau_decay_s, animal=a, psf_sigma_px=cfg.psf_sigma,
                    structural=int(bool(cfg.structural[i])))
    return ds


def write_truth(gt_dir: Path, cfg: SimConfig, seed: int, preset: str, t_fine, shared, taus, private, per_animal,
                events: pd.DataFrame, task: dict, groups: dict, n_shared_planted: int) -> None:
    for a in "AB":
        per_animal[a]["private"] = private[a]
    shared_ds = xr.Dataset(
        {"factors": (("factor", "time_fine"), shared.astype(np.float32)), "timescale": ("factor", taus, {"units": "s"})},
        coords={"factor": np.arange(cfg.n_shared), "time_fine": ("time_fine", t_fine, {"units": "s"})},
        attrs={"n_shared_planted": int(n_shared_planted), "n_shared_factors": int(cfg.n_shared),
               "fine_dt": cfg.fine_dt, "drive_map": json.dumps({k: sorted(v) for k, v in sorted(groups.items())})})
    ev = xr.Dataset({k: ("event", events[k].to_numpy().astype(str if k in ("animal", "behavior", "kind") else float))
                     for k in ("animal", "behavior", "start", "stop", "kind")}, coords={"event": np.arange(len(events))},
                    attrs={"clock": "master", "time_unit": "s"})
    pk, vs = task["pokes"], task["visits"]
    tk = xr.Dataset({
        "poke_animal": ("poke", pk.animal.to_numpy().astype(str)), "poke_time": ("poke", pk.time.to_numpy(float)),
        "poke_coordinated": ("poke", pk.coordinated.to_numpy(bool)),
        "hold_animal": ("hold", vs.animal.to_numpy().astype(str)), "hold_start": ("hold", vs.entry.to_numpy(float)),
        "hold_stop": ("hold", vs.poke.to_numpy(float)), "exit_time": ("hold", vs.exit.to_numpy(float)),
        "reward_time": ("reward", task["rewards"].time.to_numpy(float))},
        attrs={"coordination_window_s": cfg.coordination_window_s, "task_offset_s": cfg.task_offset_s,
               "task_drift_ppm": cfg.task_drift_ppm, "clock": "master"})
    root = xr.Dataset(attrs={"seed": int(seed), "preset": preset, "config": json.dumps(cfg.to_dict(), default=str),
                             "master_clock": "all times in s on the master clock unless stated",
                             "n_shared_planted": int(n_shared_planted)})
    tree = xr.DataTree.from_dict({"/": root, "/A": _animal_ds(cfg, 0, per_animal["A"], t_fine),
                                  "/B": _animal_ds(cfg, 1, per_animal["B"], t_fine), "/shared": shared_ds,
                                  "/events": ev, "/task": tk})
    enc = {}
    for path, node in tree.subtree_with_keys:
        grp = "/" if path == "." else "/" + path
        enc[grp] = {k: {"compression": "gzip", "compression_opts": 4} for k, v in node.ds.data_vars.items()
                    if v.dtype.kind in "fiub" and v.size > 1000}
    tree.to_netcdf(gt_dir / "truth.nc", engine="h5netcdf", encoding=enc)
    (gt_dir / "README.md").write_text(README)
