"""The pair-session simulator: files are valid and the ground truth is what the files hold.

Fast tier: one `small` session (shared by the module) plus tiny sessions.
Slow tier: the `default` preset, realistic sizes.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from pipeline.core.session import Session
from pipeline.simulator import PRESETS, SimConfig, load_truth, simulate_session
from pipeline.simulator.activity import calcium_kernel_filter
from pipeline.simulator.files import BORIS_COLUMNS

TINY = dict(preset="small", duration_s=30.0, fov=(24, 24), n_neurons=(5, 4))


# --------------------------------------------------------------------------- helpers

def _common_z(truth, dt=None):
    """Both animals' planted calcium on a common grid, z-scored: (T, N_A), (T, N_B)."""
    ta, tb = truth["A"].frame_time.values, truth["B"].frame_time.values
    dt = dt or 1.0 / min(truth["A"].attrs["frame_rate"], truth["B"].attrs["frame_rate"])
    grid = np.arange(max(ta[0], tb[0]), min(ta[-1], tb[-1]), dt)
    out = []
    for a, tt in (("A", ta), ("B", tb)):
        z = np.stack([np.interp(grid, tt, c) for c in truth[a].calcium.values], 1)
        out.append((z - z.mean(0)) / z.std(0, ddof=1))
    return grid, out[0], out[1]


def _plsc_k(ZA, ZB, n_surr=400, lag=60, seed=0):
    """METHODS.md section 2 (reference rule) with fewer surrogates: number of shared dimensions."""
    T = ZA.shape[0]

    def stats(zb):
        C = ZA.T @ zb / (T - 1)
        U, S, Vt = np.linalg.svd(C)
        k = min(C.shape)
        pa, pb = ZA @ U[:, :k], zb @ Vt.T[:, :k]
        r = np.array([np.corrcoef(pa[:, i], pb[:, i])[0, 1] for i in range(k)])
        return S[:k], r

    cov, r = stats(ZB)
    rng = np.random.default_rng(seed)
    nulls = [stats(np.roll(ZB, rng.integers(1 + lag // 2, T - lag + lag // 2 + 1), 0)) for _ in range(n_surr)]
    idx = int(round(0.975 * n_surr)) - 1
    thc = np.sort([n[0] for n in nulls], 0)[idx]
    thr = np.sort([n[1] for n in nulls], 0)[idx]
    sig = (cov > thc) & (r > thr)
    return int(np.argmin(sig)) if not sig.all() else sig.size


def _shift_estimate(frame, ref):
    """(dy, dx) that moves `ref` onto `frame`: FFT cross-correlation peak + parabolic sub-pixel fit."""
    w = np.outer(np.hanning(frame.shape[0]), np.hanning(frame.shape[1]))  # taper: no edge wrap-around
    a, b = (frame - frame.mean()) * w, (ref - ref.mean()) * w
    shape = tuple(2 * n for n in frame.shape)  # zero padding: linear, not circular, correlation
    cc = np.fft.ifft2(np.fft.fft2(a, shape) * np.conj(np.fft.fft2(b, shape))).real
    Y, X = cc.shape
    py, px = np.unravel_index(np.argmax(cc), cc.shape)
    out = []
    for p, n, line in ((py, Y, cc[:, px]), (px, X, cc[py, :])):
        m, c, q = line[(p - 1) % n], line[p], line[(p + 1) % n]
        out.append((p + n // 2) % n - n // 2 + 0.5 * (m - q) / (m - 2 * c + q))
    return np.array(out)


def _read_task(session_dir):
    log = pd.read_csv(session_dir / "task" / "task_log.csv")
    sync = pd.read_csv(session_dir / "task" / "sync.csv")
    slope, icpt = np.polyfit(sync.local_s, sync.master_s, 1)
    log["master"] = icpt + slope * log.time_s
    return log


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim") / "pair_small"
    toml = simulate_session(d, seed=0, preset="small")
    return d, toml, load_truth(d)


# --------------------------------------------------------------------------- fast tier

def test_session_toml_loads_and_names_every_file(small):
    d, toml, truth = small
    s = Session.load(toml)  # checks that every referenced file exists
    assert s.animals["A"]["genotype"] == "Vgat-Cre" and s.animals["B"]["genotype"] == ""
    assert s.animals["B"]["structural"].endswith("B/structural.tif")
    assert s.annotations[0]["subjects"] == {"mouse_A": "A", "mouse_B": "B"}
    assert s.clocks["task"]["sync"] and s.clocks["video"]["timestamps"] and s.task["log"]
    assert set(truth["A"].cell_type.values) == {"GABAergic"}
    frac = np.mean(truth["B"].cell_type.values == "GABAergic")
    assert 0.2 <= frac <= 0.4


def test_movie_frames_match_timestamps_and_drops(small):
    d, _, truth = small
    cfg = PRESETS["small"]
    for i, a in enumerate("AB"):
        with tifffile.TiffFile(d / a / "movie.tif") as tf:
            shape, dtype = tf.series[0].shape, tf.series[0].dtype
        ts = pd.read_csv(d / a / "timestamps.csv")
        assert list(ts.columns) == ["frame", "time_s"]
        assert shape == (len(ts), *cfg.fov) and dtype == np.uint16
        assert np.allclose(ts.time_s, truth[a].frame_time.values, atol=1e-6)
        dt = np.diff(ts.time_s.to_numpy())
        period = 1.0 / cfg.frame_rate[i]
        gaps = np.flatnonzero(dt > 1.5 * period)
        assert gaps.size == cfg.dropped_frames[i] >= 1
        assert np.allclose(dt[gaps], 2 * period, atol=0.002)
        # the frame after each gap is the dropped index + 1 in the camera's own numbering
        assert np.array_equal(truth[a].frame_original.values[gaps + 1] - 1, np.sort(truth[a].dropped_frames.values))
    rate_a = 1 / np.median(np.diff(truth["A"].frame_time.values))
    rate_b = 1 / np.median(np.diff(truth["B"].frame_time.values))
    assert abs(rate_a - 10.0) < 0.01 and abs(rate_b - 9.98) < 0.01
    assert truth["A"].frame_time.values[0] != truth["B"].frame_time.values[0]


def test_planted_jump_is_recovered_from_the_movie(small):
    """Phase correlation of the movie recovers the recorded rigid shift during the largest jump."""
    d, _, truth = small
    for a in "AB":
        mov = tifffile.imread(d / a / "movie.tif").astype(np.float64)
        shift = truth[a].rigid_shift.values
        still = np.linalg.norm(shift, axis=1) < 0.5
        ref = mov[still].mean(0)
        big = np.argsort(np.linalg.norm(shift, axis=1))[-5:]
        assert np.linalg.norm(shift[big], axis=1).min() > 2.0  # a real jump was planted
        for f in big:
            est = _shift_estimate(mov[f], ref)
            assert np.allclose(est, shift[f], atol=0.6), (a, f, est, shift[f])
        sample = np.arange(0, len(mov), 10)
        err = [np.abs(_shift_estimate(mov[f], ref) - shift[f]).max() for f in sample]
        assert np.median(err) < 0.3  # (nonrigid warp and noise account for the rest)
        assert np.median(np.linalg.norm(shift, axis=1)) < 1.5  # mostly small jitter


def test_truth_reconstructs_a_noise_free_movie(tmp_path):
    """Without noise and motion, every frame = dark + sum F0 (1 + calcium) footprint + neuropil."""
    d = tmp_path / "clean"
    simulate_session(d, seed=3, noise=0.0, motion_px=0.0, jump_rate_per_min=0.0, nonrigid_px=0.0, **TINY)
    t = load_truth(d)
    for a in "AB":
        mov = tifffile.imread(d / a / "movie.tif").astype(np.float64)
        g = t[a]
        cells = np.einsum("nf,nyx->fyx", g.F0.values[:, None] * (1 + g.calcium.values), g.footprint.values)
        resid = mov - g.attrs["dark_offset"] - cells
        # what is left is the neuropil field times its slow modulation: rank one, positive
        np_field = resid / g.neuropil_modulation.values[:, None, None]
        assert np.abs(np_field - np_field.mean(0)).max() < 1.0  # rounding to uint16 only
        assert np_field.min() > 0


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a1, a2, b = tmp_path / "1" / "pair", tmp_path / "2" / "pair", tmp_path / "3" / "pair"
    for d, s in ((a1, 7), (a2, 7), (b, 8)):
        simulate_session(d, seed=s, **TINY)
    h1, h2, hb = _digest(a1), _digest(a2), _digest(b)
    assert len(h1) == 12 and h1 == h2
    assert all(h1[k] != hb[k] for k in ("A/movie.tif", "B/movie.tif", "ground_truth/truth.nc", "task/task_log.csv"))


def test_boris_export_matches_truth_events(small):
    d, _, truth = small
    df = pd.read_csv(d / "behavior" / "boris_events.csv")
    assert list(df.columns) == BORIS_COLUMNS
    assert set(df["Behavior type"]) == {"START", "STOP", "POINT"}
    assert set(df.Subject) == {"mouse_A", "mouse_B"}
    vt = pd.read_csv(d / "behavior" / "video_timestamps.csv")
    fps = float(df.FPS.iloc[0])
    to_master = lambda t: np.interp(np.asarray(t) * fps, vt.frame, vt.time_s)  # noqa: E731
    rows = []
    for (subj, beh), g in df.groupby(["Subject", "Behavior"], sort=False):
        animal = {"mouse_A": "A", "mouse_B": "B"}[subj]
        g = g.sort_values("Time", kind="stable")
        if (g["Behavior type"] == "POINT").all():
            rows += [(animal, beh, to_master(t), to_master(t), "point") for t in g.Time]
            continue
        kinds = g["Behavior type"].tolist()
        assert kinds == ["START", "STOP"] * (len(kinds) // 2), f"unpaired START/STOP for {subj} {beh}"
        tt = g.Time.to_numpy()
        rows += [(animal, beh, to_master(s), to_master(e), "state") for s, e in zip(tt[::2], tt[1::2])]
    got = pd.DataFrame(rows, columns=["animal", "behavior", "start", "stop", "kind"])
    got = got.sort_values(["animal", "behavior", "start"]).reset_index(drop=True)
    ev = truth["events"].to_dataset().to_dataframe()[["animal", "behavior", "start", "stop", "kind"]]
    ev = ev.sort_values(["animal", "behavior", "start"]).reset_index(drop=True)
    assert len(got) == len(ev) > 20
    assert (got[["animal", "behavior", "kind"]].to_numpy() == ev[["animal", "behavior", "kind"]].to_numpy()).all()
    assert np.allclose(got.start, ev.start, atol=2e-3) and np.allclose(got.stop, ev.stop, atol=2e-3)
    assert {"approach", "sniff", "follow"} <= set(ev.behavior)


def test_task_log_coordination_matches_truth(small):
    d, _, truth = small
    log = _read_task(d)
    assert list(log.columns[:3]) == ["time_s", "animal", "event"]
    assert set(log.event) == {"port_entry", "port_exit", "poke", "reward"}
    assert (np.diff(log.time_s) >= 0).all()
    tk = truth["task"]
    w = tk.attrs["coordination_window_s"]
    pokes = log[log.event == "poke"]
    coord = []
    for _, p in pokes.iterrows():
        other = pokes[pokes.animal != p.animal].master.to_numpy()
        coord.append(bool(np.min(np.abs(other - p.master)) <= w))
    truth_pokes = pd.DataFrame({"animal": tk.poke_animal.values, "time": tk.poke_time.values,
                                "coordinated": tk.poke_coordinated.values})
    assert len(pokes) == len(truth_pokes)
    assert np.allclose(np.sort(pokes.master), np.sort(truth_pokes.time), atol=2e-3)
    order = np.argsort(pokes.master.to_numpy(), kind="stable")
    assert np.array_equal(np.array(coord)[order], truth_pokes.sort_values("time", kind="stable").coordinated.to_numpy())
    frac = np.mean(coord)
    assert 0.2 < frac < 0.8  # enough of both classes for the decoders
    assert (log.event == "reward").sum() == 2 * tk.reward_time.size > 0
    # clock: the task computer is offset and drifts (50 ppm)
    sync = pd.read_csv(d / "task" / "sync.csv")
    slope = np.polyfit(sync.local_s, sync.master_s, 1)[0]
    assert abs((slope - 1) * 1e6 - 50) < 5
    holds = (tk.hold_stop - tk.hold_start).values
    assert (holds >= 0.3 - 1e-9).all() and holds.mean() > 1.0


def test_shared_factors_recoverable_by_plsc(small):
    _, _, truth = small
    assert truth["shared"].attrs["n_shared_planted"] == 3
    _, ZA, ZB = _common_z(truth)
    assert ZA.shape[0] > 2000
    assert _plsc_k(ZA, ZB) >= 3


def test_planted_shared_components_of_both_animals_agree(small):
    """The part of each animal's activity that the shared factors explain is the same signal in A and B."""
    _, _, truth = small
    sh = truth["shared"]
    t_fine = sh.time_fine.values
    grid, ZA, ZB = _common_z(truth)
    # factors seen through the calcium kernel, on the common grid
    g = truth["A"].attrs
    zc = calcium_kernel_filter(sh.factors.values.astype(float), t_fine[1] - t_fine[0], g["tau_rise_s"], g["tau_decay_s"])
    zc = np.stack([np.interp(grid, t_fine, z) for z in zc], 1)
    preds = []
    for Z in (ZA, ZB):
        beta, *_ = np.linalg.lstsq(Z, zc - zc.mean(0), rcond=None)
        preds.append(Z @ beta)
    r = [np.corrcoef(preds[0][:, k], preds[1][:, k])[0, 1] for k in range(zc.shape[1])]
    assert min(r) > 0.6, r
    # and private factors do not agree across animals
    za = truth["A"].private_factors.values[0]
    zb = truth["B"].private_factors.values[0]
    assert abs(np.corrcoef(za, zb)[0, 1]) < 0.2


def test_no_shared_factor_means_no_shared_dimension(tmp_path):
    """n_shared = 0: the reference PLSC finds K = 0 in most seeds (independent brains)."""
    ks = []
    for s in range(4):  # P(K > 0) <= 2.5% per seed: >= 2 false positives in 4 has p < 0.5%
        d = tmp_path / f"null{s}"
        simulate_session(d, seed=s, preset="small", duration_s=120.0, n_shared=0, render_movies=False)
        t = load_truth(d)
        assert t["shared"].attrs["n_shared_planted"] == 0
        _, ZA, ZB = _common_z(t)
        ks.append(_plsc_k(ZA, ZB, n_surr=200))
    assert sum(k == 0 for k in ks) >= 3, ks


def test_both_pan_neuronal_with_red_channel_marks_gabaergic_cells(tmp_path):
    d = tmp_path / "red"
    toml = simulate_session(d, seed=5, genotype="", structural=True, gaba_fraction=0.5, **{**TINY, "n_neurons": 8})
    s = Session.load(toml)
    t = load_truth(d)
    for a in "AB":
        assert s.animals[a]["genotype"] == "" and s.animals[a]["structural"]
        red = tifffile.imread(d / a / "structural.tif").astype(float)
        fp = t[a].footprint.values
        inside = (fp * red).sum((1, 2)) / fp.sum((1, 2))
        gaba = t[a].cell_type.values == "GABAergic"
        assert gaba.sum() == 4
        assert inside[gaba].min() > inside[~gaba].max()  # the reporter separates the types


def test_counting_behaviour_that_drives_both_animals():
    from pipeline.simulator.latents import driven_groups
    cfg = PRESETS["small"]
    assert driven_groups(cfg)[1] == 0
    both = cfg.replace(responses=cfg.responses + (("B", "sniff", "partner"),))  # A's sniff now also drives B
    groups, n = driven_groups(both)
    assert n == 1 and groups["sniff:A"] == {"A", "B"}


def test_one_photon_background_dominates(tmp_path):
    d = tmp_path / "onep"
    simulate_session(d, seed=1, modality="1p", **TINY)
    t = load_truth(d)
    mov = tifffile.imread(d / "A" / "movie.tif").astype(float) - t["A"].attrs["dark_offset"]
    cells = (t["A"].F0.values[:, None, None] * t["A"].footprint.values).max(0)
    assert np.median(mov.mean(0)) > 3 * np.median(t["A"].F0.values)  # background several times the cells
    assert cells.max() < mov.mean(0).max()
    assert t["A"].sigma.values.mean() > 2.0


def test_one_photon_optics_stay_on_the_sensor_and_vessels_move_with_the_tissue(tmp_path):
    """1p image model (issue 19): frame = dark + vignette x blur(moved tissue) + glow. Noise-free, cells
    silent, motion only one jump: across the jump's first frame the tissue part (frame minus the truth's
    glow, divided by its vignette) is the previous frame's tissue part moved by the planted shift, while
    the raw frame is not the raw previous frame moved (the glow and vignette stayed put). Vessels are
    dark in the tissue."""
    from scipy import ndimage
    d = tmp_path / "onep_optics"
    simulate_session(d, seed=2, modality="1p", noise=0.0, dff_per_spike=0.0, motion_px=0.0, nonrigid_px=0.0,
                     jump_rate_per_min=3.0, jump_px=(3.0, 4.0), dropped_frames=0, preset="small", duration_s=30.0,
                     fov=(48, 48), n_neurons=(8, 8))
    g = load_truth(d)["A"]
    assert g.attrs["psf_sigma_px"] > 0 and g.glow.values.mean() > np.median(g.F0.values)
    shift = g.rigid_shift.values
    t2 = int(np.flatnonzero(np.linalg.norm(shift, axis=1) > 2.5)[0])
    t1 = t2 - 1
    assert np.allclose(shift[t1], 0.0) and np.linalg.norm(shift[t2]) > 2.5
    mov = tifffile.imread(d / "A" / "movie.tif", key=[t1, t2]).astype(np.float64)
    vig, glow = g.vignette.values, g.glow.values

    def tissue(frame, t):
        return (frame - g.attrs["dark_offset"] - g.glow_modulation.values[t] * glow) / vig

    inner = (slice(8, -8), slice(8, -8))
    want = ndimage.shift(tissue(mov[0], t1), shift[t2], order=3)[inner]
    err_tissue = np.abs(tissue(mov[1], t2)[inner] - want).mean() / want.mean()
    err_raw = np.abs(mov[1] - ndimage.shift(mov[0], shift[t2], order=3))[inner].mean() / mov[1][inner].mean()
    assert err_tissue < 0.01 and err_raw > 5 * err_tissue, (err_tissue, err_raw)
    # vessels hold no fluorophore: darker tissue along them (zero-motion frame t1)
    tis, trans = tissue(mov[0], t1), g.vessel_transmission.values
    assert trans.min() < 0.6
    assert np.median(tis[trans < 0.7]) < 0.8 * np.median(tis[trans > 0.95])


def test_overrides_are_validated(tmp_path):
    with pytest.raises(ValueError, match="n_nuerons"):
        simulate_session(tmp_path / "x", n_nuerons=3)
    with pytest.raises(ValueError, match="preset"):
        simulate_session(tmp_path / "x", preset="huge")
    with pytest.raises(ValueError, match="genotype"):
        SimConfig(genotype=("Foo-Cre", ""))
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "precious.txt").write_text("data")
    with pytest.raises(FileExistsError):
        simulate_session(tmp_path / "keep", **TINY)


# --------------------------------------------------------------------------- slow tier

@pytest.mark.slow
def test_default_preset_session(tmp_path):
    d = tmp_path / "pair_default"
    toml = simulate_session(d, seed=0, preset="default")
    Session.load(toml)
    t = load_truth(d)
    cfg = PRESETS["default"]
    for i, a in enumerate("AB"):
        with tifffile.TiffFile(d / a / "movie.tif") as tf:
            assert tf.series[0].shape == (t[a].frame.size, *cfg.fov)
        assert t[a].neuron.size == cfg.n_neurons[i]
        shift = t[a].rigid_shift.values
        still = np.flatnonzero(np.linalg.norm(shift, axis=1) < 0.5)[::5]  # bounded memory
        ref = tifffile.imread(d / a / "movie.tif", key=still).astype(float).mean(0)
        f = int(np.argmax(np.linalg.norm(shift, axis=1)))
        frame = tifffile.imread(d / a / "movie.tif", key=f).astype(float)
        assert np.linalg.norm(shift[f]) > 2.5
        assert np.allclose(_shift_estimate(frame, ref), shift[f], atol=0.6)
    _, ZA, ZB = _common_z(t)
    assert _plsc_k(ZA, ZB, n_surr=200) >= 3


def test_demo_preset_writes_its_analysis_settings(tmp_path):
    """The `make demo` preset: the default pair, shorter, with its decoding settings in session.toml."""
    from pipeline.core.session import Session
    toml = simulate_session(tmp_path / "d", seed=0, preset="demo", duration_s=10.0, fov=(24, 24),
                            n_neurons=(5, 4), render_movies=False)
    s = Session.load(toml, check_files=False)
    assert s.params["decoding"]["n_surrogates"] == 200 and s.params["decoding"]["condition_surrogates"] == 50
    assert PRESETS["demo"].n_neurons == PRESETS["default"].n_neurons and PRESETS["demo"].duration_s == 400.0
    with pytest.raises(ValueError, match="session_params"):
        SimConfig(session_params=(("extraction", "diameter", 9),))
