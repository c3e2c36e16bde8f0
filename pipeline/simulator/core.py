"""simulate_session: write a complete pair session directory with its ground truth."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import xarray as xr

from pipeline.simulator import activity, files, latents, movie
from pipeline.simulator.config import SimConfig, resolve_config
from pipeline.simulator.truth import write_truth


def _rng(seed: int, name: str) -> np.random.Generator:
    """Independent named stream: changing one component's draws leaves the others unchanged."""
    key = [int(b) for b in name.encode()]
    return np.random.default_rng(np.random.SeedSequence([int(seed), *key]))


def _frame_times(cfg: SimConfig, i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kept frame times, dropped original indices, kept original indices) of camera i on the master clock."""
    rate = cfg.frame_rate[i]
    n = int(np.floor(cfg.duration_s * rate))
    t = cfg.start_offset_s[i] + np.arange(n) / rate + rng.normal(0, cfg.timestamp_jitter_s, n)
    nd = cfg.dropped_frames[i]
    dropped = np.zeros(0, int)
    if nd:
        # spread over the middle 80%, never adjacent, so each drop is one 2-interval gap
        cand = np.arange(int(0.1 * n), int(0.9 * n))
        while True:
            dropped = np.sort(rng.choice(cand, size=nd, replace=False))
            if nd == 1 or np.min(np.diff(dropped)) > 2:
                break
    keep = np.setdiff1d(np.arange(n), dropped)
    return t[keep], dropped, keep


def simulate_session(outdir: str | Path, seed: int = 0, modality: str = "2p", duration_s: float | None = None,
                     preset: str = "default", **overrides: Any) -> Path:
    """Simulate a pair session (two animals imaged together) and write it to `outdir`.

    Parameters
    ----------
    outdir : folder to create (replaced if it holds a previous simulation).
    seed : every random draw derives from it; the same seed gives bit-identical files.
    modality : "2p" or "1p" (1p: strong smooth background, vignetting, bigger cells, lower SNR).
    duration_s : imaging duration (s); None keeps the preset's.
    preset : "sample" | "small" | "default" | "large" (see PRESETS).
    **overrides : any SimConfig field (e.g. n_neurons=(20, 12), n_shared=2, noise=0).

    Returns the path of the written session.toml. Layout: see docs/simulator.md.
    """
    if duration_s is not None:
        overrides["duration_s"] = float(duration_s)
    cfg = resolve_config(preset, modality=modality, **overrides)
    out = _fresh_folder(Path(outdir))

    # master clock: everything happens within [0, t_end)
    cams = [_frame_times(cfg, i, _rng(seed, f"frames{i}")) for i in range(2)]
    t_end = max(c[0][-1] for c in cams) + 2.0
    dt = cfg.fine_dt
    n_t = int(np.ceil(t_end / dt)) + 1
    t_fine = np.arange(n_t) * dt

    lat_seed = seed if cfg.latent_seed is None else cfg.latent_seed
    shared, taus = latents.smooth_factors(_rng(lat_seed, "shared"), cfg.n_shared, n_t, dt, cfg.shared_tau_s)
    private = {}
    for a in "AB":
        private[a], _ = latents.smooth_factors(_rng(seed, f"private{a}"), cfg.n_private, n_t, dt, cfg.shared_tau_s)
    video_t = cfg.video_offset_s + np.arange(int(np.floor((t_end - cfg.video_offset_s) * cfg.video_fps))) / cfg.video_fps
    events = latents.simulate_behavior(cfg, _rng(seed, "behavior"), video_t[0] + 1.0, video_t[-1] - 1.0)
    task = latents.simulate_task(cfg, _rng(seed, "task"), 0.0, t_end)
    traces = latents.variable_traces(cfg, t_fine, events, task)
    groups, n_both = latents.driven_groups(cfg)

    max_shift = cfg.motion_px * 4 + cfg.jump_px[1] * (cfg.jump_rate_per_min > 0) + cfg.nonrigid_px
    pad = int(np.ceil(max_shift)) + 4
    per_animal = {a: _simulate_animal(cfg, seed, i, cams[i], pad, shared, private[a], traces, t_fine, out / a)
                  for i, a in enumerate("AB")}

    files.write_timestamps(out / "behavior" / "video_timestamps.csv", video_t)
    files.write_boris(out / "behavior" / "boris_events.csv", cfg, events, obs_id=out.name,
                      video_duration=video_t.size / cfg.video_fps)
    files.write_task(out / "task", cfg, task, t_end, _rng(seed, "sync"))
    mean_sigma = float(np.mean(np.concatenate([per_animal[a]["scene"].sigmas.ravel() for a in "AB"])))
    files.write_session_toml(out / "session.toml", cfg, out.name, seed, mean_sigma)
    write_truth(out / "ground_truth", cfg, seed, preset, t_fine, shared, taus, private, per_animal, events, task,
                groups, cfg.n_shared + n_both)
    return out / "session.toml"


def _fresh_folder(out: Path) -> Path:
    """`out` emptied (only a previous simulation may be replaced) with its A, B, behavior, task and
    ground_truth folders."""
    if out.exists():
        if not (out / "ground_truth").is_dir() and any(out.iterdir()):
            raise FileExistsError(f"{out}: exists and is not a simulated session; refusing to overwrite it")
        shutil.rmtree(out)
    for d in ("A", "B", "behavior", "task", "ground_truth"):
        (out / d).mkdir(parents=True, exist_ok=True)
    return out


def _simulate_animal(cfg: SimConfig, seed: int, i: int, cam: tuple, pad: int, shared: np.ndarray,
                     private: np.ndarray, traces, t_fine: np.ndarray, folder: Path) -> dict:
    """Animal i (0 = A, 1 = B): neurons, activity, scene, motion; writes its movie, frame times and
    structural image into `folder`; returns its ground truth (see write_truth)."""
    a = "AB"[i]
    n_t, dt = t_fine.size, cfg.fine_dt
    times, dropped, kept = cam
    period = 1.0 / cfg.frame_rate[i]
    neurons = activity.make_neurons(cfg, _rng(seed, f"neurons{a}"), a)
    spikes, dff = activity.simulate_activity(cfg, _rng(seed, f"spikes{a}"), neurons, a, shared, private,
                                             traces, times, period)
    scene = movie.make_scene(cfg, _rng(seed, f"scene{a}"), cfg.n_neurons[i], pad)
    rng_m = _rng(seed, f"motion{a}")
    mot = movie.make_motion(cfg, rng_m, times)
    limit = pad - 2 - cfg.nonrigid_px
    mot["rigid"] = np.clip(mot["rigid"], -limit, limit)
    fields_ = movie.nonrigid_fields(cfg, rng_m)
    one_p = cfg.modality == "1p"
    slow = latents.smooth_factors(_rng(seed, f"slow{a}"), 1 + (5 if one_p else 0), n_t, dt, (15.0, 30.0))[0]
    slow_f = np.stack([np.interp(times, t_fine, s) for s in slow])
    neuropil_mod = 1.0 + 0.15 * slow_f[0]
    bg_mod = (1.0 + 0.08 * slow_f[1:5]).T if one_p else np.zeros((times.size, 0))
    glow_mod = 1.0 + 0.05 * slow_f[5] if one_p else np.ones(times.size)    # slow drift of the stray light
    bleach = (1.0 - cfg.bleach_fraction) ** ((times - times[0]) / max(times[-1] - times[0], 1e-9))
    if cfg.render_movies:
        movie.write_movie(folder / "movie.tif", cfg, scene, dff, times, mot, fields_, neuropil_mod, bg_mod,
                          bleach, _rng(seed, f"noise{a}"), glow_mod=glow_mod)
    files.write_timestamps(folder / "timestamps.csv", times)
    red = None
    if cfg.structural[i]:
        red = movie.structural_image(cfg, _rng(seed, f"red{a}"), scene, neurons.cell_type)
        rng_r = _rng(seed, f"rednoise{a}")
        noisy = movie.add_noise(red, cfg, rng_r)
        if cfg.render_movies:
            tifffile.imwrite(folder / "structural.tif", noisy, photometric="minisblack", compression=cfg.compression)
    warp_amp = np.array([np.abs(np.tensordot(c, fields_, axes=(0, 0))).max() for c in mot["nonrigid_coef"]])
    return dict(times=times, dropped=dropped, kept=kept, neurons=neurons, spikes=spikes, dff=dff,
                scene=scene, motion=mot, fields=fields_, warp_amp=warp_amp, structural=red,
                neuropil_mod=neuropil_mod, bleach=bleach, glow_mod=glow_mod)


def load_truth(session_dir: str | Path) -> xr.DataTree:
    """Ground truth of a simulated session (session folder or its session.toml), loaded into memory."""
    p = Path(session_dir)
    if p.is_file():
        p = p.parent
    f = p / "ground_truth" / "truth.nc"
    if not f.is_file():
        raise FileNotFoundError(f"{f}: no ground truth here; is {p} a simulated session (pipeline.simulator)?")
    with xr.open_datatree(f, engine="h5netcdf") as t:
        return t.load()


__all__ = ["simulate_session", "load_truth"]
