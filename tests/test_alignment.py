"""Clocks and the common time base (behavior/clocks.py, behavior/align.py) on planted clocks.

Every stream runs on its own clock (different rates, offsets, drift on the
task clock, dropped frames). Events are planted on the master clock at known
bins, written out in each stream's local time, and must come back on exactly
those bins.
"""
from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from behavior import align as ba
from behavior.clocks import Clock, ClockError, events_to_master
from behavior.task import TaskLogError, read_task_log

# -- planted streams ----------------------------------------------------------
RATE_A, OFF_A = 15.0, 0.30          # imaging A: 15 Hz, frame 40 dropped
RATE_B, OFF_B = 20.0, 0.05          # imaging B: 20 Hz
VID_FPS, VID_OFF = 30.0, 1.234      # behaviour video: 30 fps, frames 300-301 dropped
TASK_OFF, TASK_DRIFT = 3.217, 50e-6  # task clock: master = 3.217 + (1 + 50 ppm) * local
DUR = 60.0


def _imaging_times():
    a = OFF_A + np.arange(int(DUR * RATE_A)) / RATE_A
    a = np.delete(a, 40)
    b = OFF_B + np.arange(int(DUR * RATE_B)) / RATE_B
    return a, b


def _video_times():
    v = VID_OFF + np.arange(int(DUR * VID_FPS)) / VID_FPS
    return np.delete(v, [300, 301])


def _csv(path, df):
    df.to_csv(path, index=False, float_format="%.9f")
    return path


@pytest.fixture()
def planted(tmp_path):
    a, b = _imaging_times()
    tb = ba.make_time_base({"A": a, "B": b})
    rng = np.random.default_rng(0)
    # states: bins [i0, i1], start/stop 0.3 bin inside the outer bins' edges so outer bins overlap 0.7 bin
    states = []
    for i0 in sorted(rng.choice(np.arange(25, tb.n - 40), 25, replace=False)):
        i1 = i0 + int(rng.integers(1, 30))
        states.append((i0, i1, tb.t0 + (i0 + 0.3) * tb.dt, tb.t0 + (i1 + 0.7) * tb.dt))
    points = [(i, tb.t0 + (i + rng.uniform(0.05, 0.95)) * tb.dt) for i in rng.choice(tb.n, 40, replace=False)]
    vt = _video_times()
    ts = _csv(tmp_path / "video_timestamps.csv", pd.DataFrame({"frame": np.arange(vt.size), "time_s": vt}))
    # master -> video-local seconds (BORIS counts frame / fps): invert the timestamps
    to_local = lambda m: np.interp(m, vt, np.arange(vt.size)) / VID_FPS  # noqa: E731
    boris = pd.DataFrame({"animal": "A", "behavior": "sniff", "kind": "state", "source": "boris.csv",
                          "start": to_local(np.array([s[2] for s in states])),
                          "stop": to_local(np.array([s[3] for s in states]))})
    boris.attrs = {"time_unit": "s", "clock": "video", "fps": VID_FPS}
    pulses_local = np.arange(0, DUR, 1.0)
    pulses_master = TASK_OFF + (1 + TASK_DRIFT) * pulses_local + rng.normal(0, 1e-4, pulses_local.size)
    sync = _csv(tmp_path / "sync.csv", pd.DataFrame({"local_s": pulses_local, "master_s": pulses_master}))
    task_local = (np.array([p[1] for p in points]) - TASK_OFF) / (1 + TASK_DRIFT)
    return types.SimpleNamespace(a=a, b=b, tb=tb, states=states, points=points, boris=boris, ts=ts,
                                 sync=sync, task_local=task_local, tmp=tmp_path)


# -- exactness ----------------------------------------------------------------
def test_time_base_from_the_slower_stream(planted):
    tb = planted.tb
    assert tb.t0 == pytest.approx(OFF_A)                         # overlap starts at A's first frame
    assert tb.dt == pytest.approx(1 / RATE_A)                     # slower imaging rate
    assert tb.stop <= min(planted.a[-1], planted.b[-1]) + 1e-9
    assert tb.n == int(np.floor((min(planted.a[-1], planted.b[-1]) - OFF_A) * RATE_A + 1e-9))
    np.testing.assert_allclose(tb.coord().values, OFF_A + (np.arange(tb.n) + 0.5) / RATE_A)
    assert tb.coord().attrs["units"] == "s"


def test_planted_video_states_land_on_their_bins(planted):
    clk = Clock.from_timestamps_csv(planted.ts, "video")
    assert clk.report["dropped_frames"] == 2 and clk.report["n_gaps"] == 1
    ev = events_to_master(planted.boris, clk, planted.boris.attrs["fps"])
    got = ba.events_to_bins(ev, planted.tb, ["sniff"])[0]
    want = np.zeros(planted.tb.n, bool)
    for i0, i1, *_ in planted.states:
        want[i0:i1 + 1] = True
    assert (got != want).sum() == 0


def test_planted_task_points_land_in_their_bins_through_a_drifting_sync_clock(planted):
    clk = Clock.from_sync_csv(planted.sync, "task", tolerance_s=0.01)
    assert clk.report["drift_ppm"] == pytest.approx(TASK_DRIFT * 1e6, abs=5)
    assert clk.offset == pytest.approx(TASK_OFF, abs=1e-3)
    master = clk.local_to_master(planted.task_local)
    ev = pd.DataFrame({"animal": "B", "behavior": "poke", "start": master, "stop": master, "kind": "point",
                       "source": "task"})
    arrays = ba.behavior_arrays(ev, planted.tb)
    want = np.zeros(planted.tb.n, bool)
    want[[p[0] for p in planted.points]] = True
    assert (arrays["B"]["self"].sel(behavior="poke").values != want).sum() == 0
    # B's pokes are A's partner events, and A has none of its own
    assert (arrays["A"]["partner"].sel(behavior="poke").values == want).all()
    assert not arrays["A"]["self"].values.any()


def test_without_drift_correction_points_would_land_wrong(planted):
    """Control: ignoring the 50 ppm drift and offset error moves events; the planted test can fail."""
    naive = TASK_OFF + 0.02 + planted.task_local   # 20 ms offset error
    bins = planted.tb.bin_of(naive)
    assert (bins != np.array([p[0] for p in planted.points])).sum() > 0


def test_half_bin_rule_for_states():
    tb = ba.TimeBase(0.0, 1.0, 10)
    ev = pd.DataFrame({"animal": "A", "behavior": "x", "kind": "state", "source": "s",
                       "start": [0.5, 4.6, 8.2], "stop": [2.4, 5.5, 8.4]})
    got = ba.events_to_bins(ev, tb, ["x"])[0]
    # [0.5, 2.4): bin 0 overlap 0.5 (yes), bin 1 full, bin 2 0.4 (no); [4.6, 5.5): 0.4 and 0.5 -> bin 5 only;
    # [8.2, 8.4) shorter than half a bin -> nothing
    assert np.flatnonzero(got).tolist() == [0, 1, 5]


# -- resampling -------------------------------------------------------------------
def test_linear_ramp_interpolates_exactly_and_gaps_become_nan(planted):
    a, b = planted.a, planted.b
    tb = planted.tb
    ramp = np.vstack([2.0 * a + 1.0, -a])
    out = ba.resample_continuous(ramp, a, tb, max_gap_s=1.5 / RATE_A)
    c = tb.centres
    gap = (c > a[39]) & (c < a[40])             # frame 40 was dropped: A's frames 39 and 41 are 2 intervals apart
    assert gap.sum() >= 1
    assert np.isnan(out[:, gap]).all() and not np.isnan(out[:, ~gap]).any()
    np.testing.assert_allclose(out[0, ~gap], 2.0 * c[~gap] + 1.0, atol=1e-9)
    np.testing.assert_allclose(out[1, ~gap], -c[~gap], atol=1e-9)
    # jittered, faster stream B: still exact for a ramp
    bj = b + np.random.default_rng(1).uniform(-0.01, 0.01, b.size)
    outb = ba.resample_continuous((3.0 * bj)[None], bj, tb, max_gap_s=1.5 / RATE_B)
    assert not np.isnan(outb).any()
    np.testing.assert_allclose(outb[0], 3.0 * c, atol=1e-9)


def test_spike_sums_conserve_counts(planted):
    b, tb = planted.b, planted.tb
    x = np.random.default_rng(2).poisson(0.7, (5, b.size)).astype(float)
    out = ba.resample_sum(x, b, tb, max_gap_s=1.5 / RATE_B)
    assert not np.isnan(out).any()
    inside = (b >= tb.t0) & (b < tb.stop)
    np.testing.assert_array_equal(out.sum(1), x[:, inside].sum(1))
    # each bin: brute force over frames
    for i in (0, 17, tb.n - 1):
        sel = (b >= tb.edges[i]) & (b < tb.edges[i + 1])
        np.testing.assert_array_equal(out[:, i], x[:, sel].sum(1))


def test_stream_report_counts_dropped_frames(planted):
    rep = ba.stream_report("A", planted.a, planted.tb, 1.5 / RATE_A)
    assert rep["dropped_frames"] == 1 and rep["n_gaps"] == 1
    assert rep["nan_bins"] >= 1 and rep["nan_bins"] + rep["samples_interpolated"] == planted.tb.n


def test_timestamps_clock_reports_drift_and_drops():
    t = np.arange(3000) / 30.0 * (1 + 100e-6)
    t = np.delete(t, [10, 500, 501, 502])
    clk = Clock.from_frame_times(t, "cam", rate=30.0)
    assert clk.report["dropped_frames"] == 4 and clk.report["n_gaps"] == 2
    assert clk.report["drift_ppm"] == pytest.approx(100, abs=0.5)


# -- errors -----------------------------------------------------------------------
def test_non_monotonic_timestamps_name_file_and_row(tmp_path):
    f = tmp_path / "A_timestamps.csv"
    f.write_text("frame,time_s\n0,0.0\n1,0.1\n2,0.2\n3,0.15\n4,0.4\n")
    with pytest.raises(ClockError, match=r"A_timestamps.csv: timestamps are not strictly increasing: "
                                         r"data row 3 \(line 5\)"):
        Clock.from_timestamps_csv(f, "A")


def test_insufficient_overlap_names_streams_and_ranges():
    a = np.arange(0, 100, 0.1)
    b = np.arange(50, 150, 0.1)
    with pytest.raises(ba.AlignmentError, match=r"only 49\.9% of stream A's span .*A \[0\.000, 99\.900\] s; "
                                                r"B \[50\.000, 149\.900\] s"):
        ba.make_time_base({"A": a, "B": b}, min_overlap_fraction=0.9)
    ba.make_time_base({"A": a, "B": b}, min_overlap_fraction=0.4)    # allowed when the user says so


def test_behaviour_stream_coverage_error_names_it():
    tb = ba.TimeBase(0.0, 0.1, 1000)
    with pytest.raises(ba.AlignmentError, match=r"behaviour stream boris.csv covers \[60\.000, 200\.000\] s, only 40\.0%"):
        ba.check_coverage("boris.csv", (60.0, 200.0), tb, 0.9)


def test_media_duration_mismatch_names_file():
    ba.check_media_duration("boris.csv", 100.4, 100.0, 1.0)
    with pytest.raises(ba.AlignmentError, match=r"boris.csv: media duration 103.000 s disagrees"):
        ba.check_media_duration("boris.csv", 103.0, 100.0, 1.0)


def test_sync_outlier_is_an_error_naming_the_pulse(tmp_path):
    local = np.arange(20.0)
    master = 5 + local
    master[7] += 0.3                      # an extra/missed pulse shifts one row
    f = _csv(tmp_path / "sync.csv", pd.DataFrame({"local_s": local, "master_s": master}))
    with pytest.raises(ClockError, match=r"sync.csv: sync pulses do not fit .* pulse 7 \(line 9"):
        Clock.from_sync_csv(f, "task", tolerance_s=0.05)


def test_unknown_task_event_names_file_and_line(tmp_path):
    f = tmp_path / "task_log.csv"
    f.write_text("time_s,animal,event\n0.1,A,poke\n0.2,B,lever\n")
    with pytest.raises(TaskLogError, match=r"task_log.csv: line 3: unknown event 'lever'"):
        read_task_log(f)


# -- simulator session: task truth, the behavior stage, the align stage ------------------
@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from pipeline import stages as pipeline_stages
    from pipeline.core import dataset, orchestrate
    from pipeline.core.session import Session
    from pipeline.simulator import load_truth, simulate_session

    root = tmp_path_factory.mktemp("sim")
    toml = simulate_session(root / "pair", seed=3, preset="small", duration_s=150.0)
    session = Session.load(toml)
    out = root / "out"
    reg = pipeline_stages.load_stages()
    status = pipeline_stages.run(session, out, only=["behavior"], show_progress=False)
    tree = dataset.load(out, stages=["behavior"])
    return types.SimpleNamespace(session=session, out=out, status=status, tree=tree, truth=load_truth(toml),
                                 reg=reg)


def _near(got, want, atol):
    """Each `want` time matched by a `got` time within atol, one to one."""
    got, want = np.sort(np.asarray(got, float)), np.sort(np.asarray(want, float))
    return got.size == want.size and bool(np.all(np.abs(got - want) <= atol))


def test_behavior_stage_reproduces_simulated_task_truth(sim):
    assert sim.status == {"behavior": "ran"}
    ev = ba.dataset_to_events(sim.tree["/behavior"].to_dataset())
    tk = sim.truth["/task"].to_dataset()
    window = float(tk.attrs["coordination_window_s"])
    min_hold = sim.session.params["behavior"]["min_hold_s"]
    # The log is written with 0.1 ms resolution on a drifting clock: 2 ms is far below any event spacing.
    atol = 2e-3
    for a in "AB":
        mine = ev[ev.animal == a]
        sel = tk.poke_animal.values == a
        t, coord = tk.poke_time.values[sel], tk.poke_coordinated.values[sel]
        assert _near(mine.start[mine.behavior == "poke"], t, atol)
        assert coord.any() and (~coord).any()
        assert _near(mine.start[mine.behavior == "poke_coordinated"], t[coord], atol)
        assert _near(mine.start[mine.behavior == "poke_uncoordinated"], t[~coord], atol)
        hs = tk.hold_animal.values == a
        start, stop = tk.hold_start.values[hs], tk.hold_stop.values[hs]
        long = stop - start >= min_hold
        holds = mine[mine.behavior == "hold"]
        assert _near(holds.start, start[long], atol) and _near(holds.stop, stop[long], atol)
        other = "B" if a == "A" else "A"
        arrivals = tk.hold_start.values[tk.hold_animal.values == other]   # partner's port entries
        assert _near(mine.start[mine.behavior == "partner_arrival"], arrivals, atol)
        assert _near(mine.start[mine.behavior == "reward"], tk.reward_time.values, atol)
    assert window == sim.session.params["behavior"]["coordination_window_s"]


def test_behavior_stage_maps_boris_annotations_onto_the_master_clock(sim):
    ev = ba.dataset_to_events(sim.tree["/behavior"].to_dataset())
    truth = sim.truth["/events"].to_dataset()
    for a in "AB":
        for beh in sorted(set(truth.behavior.values)):
            sel = (truth.animal.values == a) & (truth.behavior.values == beh)
            mine = ev[(ev.animal == a) & (ev.behavior == beh)]
            # BORIS times are rounded to 1 ms of video time
            assert _near(mine.start, truth.start.values[sel], 2e-3), (a, beh)
            assert _near(mine.stop, truth.stop.values[sel], 2e-3), (a, beh)


def test_behavior_stage_skips_without_sources(tmp_path, sim):
    from pipeline.core import orchestrate
    from pipeline import stages as pipeline_stages
    from pipeline.core.session import Session

    import copy

    import tomli_w
    doc = {k: copy.deepcopy(v) for k, v in sim.session.raw_toml.items() if k not in ("annotations", "task")}
    root = sim.session.root
    for a in "AB":   # paths are relative to the session file
        for k in ("raw", "timestamps", "structural"):
            v = doc["animals"][a].get(k)
            if v:
                doc["animals"][a][k] = [str(root / x) for x in v] if isinstance(v, list) else str(root / v)
    doc["clocks"] = {n: {k: str(root / v) if k in ("timestamps", "sync") else v for k, v in c.items()}
                     for n, c in doc["clocks"].items()}
    (tmp_path / "s.toml").write_text(tomli_w.dumps(doc))
    s = Session.load(tmp_path / "s.toml")
    status = pipeline_stages.run(s, tmp_path / "out", only=["behavior"], show_progress=False)
    assert status == {"behavior": "skipped: no behaviour sources"}


def _upstream_from_truth(sim, drop_cells=()):
    """The groups extraction/celltypes would write, built from the planted truth (no suite2p)."""
    groups = {"/behavior": sim.tree["/behavior"].to_dataset()}
    for a in "AB":
        t = sim.truth[f"/{a}"].to_dataset()
        n = t.sizes["neuron"]
        ft = xr.DataArray(t.frame_time.values, dims="frame", attrs={"units": "s"})
        groups[f"/{a}/traces"] = xr.Dataset(
            {"dff": (("neuron", "frame"), t.calcium.values), "spikes": (("neuron", "frame"), t.spikes.values.astype(float)),
             "F_corrected": (("neuron", "frame"), 100 * (1 + t.calcium.values))}, coords={"frame_time": ft})
        is_cell = np.ones(n, bool)
        is_cell[list(drop_cells)] = False
        groups[f"/{a}/rois"] = xr.Dataset({"roi_id": ("neuron", np.arange(n) + 100), "is_cell": ("neuron", is_cell)})
        groups[f"/{a}/celltypes"] = xr.Dataset({"cell_type": ("neuron", t.cell_type.values.astype(object)),
                                                "cell_type_confidence": ("neuron", np.ones(n)),
                                                "is_cell": ("neuron", is_cell)})
    return xr.DataTree.from_dict(groups)


def _run_align(sim, **params):
    from pipeline.core.parameters import SPEC
    tree = _upstream_from_truth(sim, params.pop("drop_cells", ()))
    ctx = types.SimpleNamespace(params={"align": SPEC["align"].validate(params, "test [align]")},
                                upstream=lambda: tree, warn=lambda m: None, session=sim.session)
    return sim.reg["align"].func(ctx), tree


def test_align_stage_on_simulated_session(sim):
    res, up = _run_align(sim, drop_cells=(2,))
    act_a, beh_a, beh_b = res["/A/activity"].to_dataset(), res["/A/behavior"].to_dataset(), res["/B/behavior"].to_dataset()
    clock = res["/clock"].to_dataset()
    tA, tB = (up[f"/{a}/traces"]["frame_time"].values for a in "AB")
    dt = max(np.median(np.diff(tA)), np.median(np.diff(tB)))
    assert act_a.attrs["bin_s"] == pytest.approx(dt)
    assert act_a.time.values[0] == pytest.approx(max(tA[0], tB[0]) + dt / 2)
    assert act_a.sizes["neuron"] == sim.truth["/A"].sizes["neuron"] - 1 and 102 not in act_a.roi_id.values
    assert set(act_a.cell_type.values) <= {"GABAergic", "glutamatergic", "unknown"}
    # the simulator dropped a frame of A: NaN bins exactly where a bin centre falls in that gap
    c = act_a.time.values
    gaps = np.flatnonzero(np.diff(tA) > 1.5 * np.median(np.diff(tA)))
    assert gaps.size >= 1
    in_gap = np.zeros(c.size, bool)
    for g in gaps:
        in_gap |= (c > tA[g]) & (c < tA[g + 1])
    assert (np.isnan(act_a.activity.values).all(0) == in_gap).all()
    assert int(clock.nan_bins.sel(stream="A")) == in_gap.sum()
    assert int(clock.dropped_frames.sel(stream="A")) == sim.truth["/A"].sizes["dropped"]
    # behaviour: A's partner rows are B's self rows, and planted bouts land on their bins
    np.testing.assert_array_equal(beh_a.partner.values, beh_b.self.values)
    truth = sim.truth["/events"].to_dataset()
    tb = ba.TimeBase(float(clock.attrs["t0"]), float(clock.attrs["bin_s"]), int(clock.attrs["n_bins"]))
    for beh in ("sniff", "approach"):
        sel = (truth.animal.values == "A") & (truth.behavior.values == beh)
        got = beh_a.self.sel(behavior=beh).values
        want = np.zeros(tb.n, bool)
        for s, e in zip(truth.start.values[sel], truth.stop.values[sel]):
            ov = np.minimum(tb.edges[1:], e) - np.maximum(tb.edges[:-1], s)
            want |= ov >= tb.dt / 2
        off = np.flatnonzero(got != want)
        # only bins whose true overlap is within the annotation's 1 ms rounding of half a bin may differ
        for i in off:
            ovs = [min(tb.edges[i + 1], e) - max(tb.edges[i], s)
                   for s, e in zip(truth.start.values[sel], truth.stop.values[sel])]
            assert min(abs(o - tb.dt / 2) for o in ovs) < 2e-3, (beh, i)
        assert want.sum() > 20
    pokes = beh_a.self.sel(behavior="poke").values
    assert pokes.sum() == (sim.truth["/task"].poke_animal.values == "A").sum()


def test_align_spikes_are_summed_and_conserved(sim):
    res, up = _run_align(sim, trace="spikes")
    act = res["/B/activity"].to_dataset()
    tB = up["/B/traces"]["frame_time"].values
    x = up["/B/traces"]["spikes"].values
    t0, stop = act.attrs["t0"], act.attrs["t0"] + act.sizes["time"] * act.attrs["bin_s"]
    inside = (tB >= t0) & (tB < stop)
    y = act.activity.values
    nan = np.isnan(y).all(0)
    assert np.isnan(y).any(0).sum() == nan.sum() < 0.01 * nan.size      # one mask for all neurons, few bins
    b = np.floor((tB - t0) / act.attrs["bin_s"] + 1e-9).astype(int)
    counted = inside & ~nan[np.clip(b, 0, nan.size - 1)]
    assert counted.sum() > 0.95 * tB.size
    np.testing.assert_allclose(y[:, ~nan].sum(1), x[:, counted].sum(1))


def test_align_stage_errors_on_media_duration_mismatch(sim):
    tree = sim.tree["/behavior"].to_dataset()
    i = int(np.flatnonzero(tree.input_kind.values == "annotations")[0])
    bad = tree.copy(deep=True)
    bad["input_media_duration_s"].values[i] += 5.0
    from pipeline.core.parameters import SPEC
    up = _upstream_from_truth(sim)
    up["/behavior"] = xr.DataTree(bad)
    ctx = types.SimpleNamespace(params={"align": SPEC["align"].validate({}, "t")}, upstream=lambda: up,
                                warn=lambda m: None, session=sim.session)
    with pytest.raises(ba.AlignmentError, match=r"boris_events.csv: media duration .* disagrees"):
        sim.reg["align"].func(ctx)


# -- slow tier: a one-hour session at realistic rates, drops and drift ------------------
@pytest.mark.slow
def test_one_hour_session_exact_bins_and_resampling():
    rng = np.random.default_rng(7)
    dur = 3600.0

    def camera(rate, offset, drift_ppm, p_drop):
        t = offset + np.arange(int(dur * rate)) / rate * (1 + drift_ppm * 1e-6)
        t = t + rng.normal(0, 0.0005, t.size)                    # 0.5 ms timestamp jitter
        return t[rng.random(t.size) > p_drop]                    # ~0.2 % dropped frames

    a, b = camera(15.0, 0.7, 30, 0.002), camera(30.0, 0.2, -20, 0.002)
    tb = ba.make_time_base({"A": a, "B": b})
    # realistic dF/F-sized ramp traces and Poisson spikes for 300 neurons
    x = (np.arange(300)[:, None] * 1e-3) * a[None, :] + 1.0
    y = ba.resample_continuous(x, a, tb, 1.5 / 15.0)
    nan = np.isnan(y[0])
    assert 0 < nan.sum() < 0.01 * tb.n
    np.testing.assert_allclose(y[:, ~nan], (np.arange(300)[:, None] * 1e-3) * tb.centres[None, ~nan] + 1.0, atol=1e-9)
    s = rng.poisson(0.2, (300, b.size)).astype(float)
    z = ba.resample_sum(s, b, tb, 1.5 / 30.0)
    nz = np.isnan(z[0])
    bins = tb.bin_of(b)
    counted = (bins >= 0) & ~nz[np.clip(bins, 0, tb.n - 1)]
    np.testing.assert_allclose(z[:, ~nz].sum(1), s[:, counted].sum(1))
    # 2000 state bouts through a video clock with drops, 3000 points through a 100 ppm sync clock
    vt = camera(30.0, 1.9, 10, 0.002)
    vt = np.maximum.accumulate(vt) + np.arange(vt.size) * 1e-9  # keep jittered times increasing
    clk = Clock.from_frame_times(vt, "video", rate=30.0)
    i0 = np.sort(rng.choice(np.arange(50, tb.n - 200), 2000, replace=False))
    i1 = i0 + rng.integers(1, 150, i0.size)
    st, en = tb.t0 + (i0 + 0.3) * tb.dt, tb.t0 + (i1 + 0.7) * tb.dt
    local = lambda m: np.interp(m, vt, np.arange(vt.size)) / 30.0  # noqa: E731
    ev = pd.DataFrame({"animal": "A", "behavior": "x", "kind": "state", "source": "f",
                       "start": local(st), "stop": local(en)})
    m = events_to_master(ev, clk, 30.0)
    got = ba.events_to_bins(m, tb, ["x"])[0]
    want = np.zeros(tb.n, bool)
    for p, q in zip(i0, i1):
        want[p:q + 1] = True
    assert (got != want).sum() == 0
    pl = np.arange(0, dur + 10, 1.0)
    sync = Clock.from_sync(pl, -2.5 + (1 + 1e-4) * pl + rng.normal(0, 1e-4, pl.size), "task", 0.01)
    pi = rng.choice(tb.n, 3000, replace=False)
    pm = tb.t0 + (pi + rng.uniform(0.05, 0.95, pi.size)) * tb.dt
    back = sync.local_to_master((pm + 2.5) / (1 + 1e-4))
    assert (tb.bin_of(back) != pi).sum() == 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12])
def test_task_derivation_on_longer_simulated_sessions(tmp_path, seed):
    from pipeline.core.session import Session
    from pipeline.simulator import load_truth, simulate_session
    from pipeline.stages.behavior import build_events

    toml = simulate_session(tmp_path / "pair", seed=seed, preset="small", duration_s=600.0)
    s = Session.load(toml)
    ev, *_ = build_events(s, s.params["behavior"])
    tk = load_truth(toml)["/task"].to_dataset()
    for a in "AB":
        sel = tk.poke_animal.values == a
        t, coord = tk.poke_time.values[sel], tk.poke_coordinated.values[sel]
        mine = ev[ev.animal == a]
        assert _near(mine.start[mine.behavior == "poke_coordinated"], t[coord], 2e-3)
        assert _near(mine.start[mine.behavior == "poke_uncoordinated"], t[~coord], 2e-3)
        hs = tk.hold_animal.values == a
        long = tk.hold_stop.values[hs] - tk.hold_start.values[hs] >= s.params["behavior"]["min_hold_s"]
        holds = mine[mine.behavior == "hold"]
        assert _near(holds.start, tk.hold_start.values[hs][long], 2e-3)


def test_imaging_clock_from_rate_and_row_count_check(tmp_path):
    from behavior.clocks import imaging_clock
    clk = imaging_clock("A", {"timestamps": "", "frame_rate": 15.0, "start_offset_s": 2.0}, n_frames=30)
    np.testing.assert_allclose(clk.times, 2.0 + np.arange(30) / 15.0)
    f = _csv(tmp_path / "ts.csv", pd.DataFrame({"frame": np.arange(10), "time_s": np.arange(10) / 10.0}))
    with pytest.raises(ClockError, match=r"ts.csv: 10 timestamp rows but the movie of animal B has 11 frames"):
        imaging_clock("B", {"timestamps": str(f), "frame_rate": None}, n_frames=11)


def test_derived_behaviours_are_unions_per_animal_and_roundtrip():
    ev = pd.DataFrame({"animal": ["A", "A", "A", "B", "A"], "behavior": ["sniff", "follow", "sniff", "sniff", "poke"],
                       "start": [1.0, 1.5, 5.0, 2.0, 7.0], "stop": [2.0, 3.0, 6.0, 4.0, 7.0],
                       "kind": ["state"] * 4 + ["point"], "source": "f"})
    out = ba.add_derived(ev, {"social": ["sniff", "follow"], "any_poke": ["poke"]})
    soc = out[out.behavior == "social"]
    assert [(r.animal, r.start, r.stop) for r in soc.itertuples()] == [("A", 1.0, 3.0), ("A", 5.0, 6.0), ("B", 2.0, 4.0)]
    assert out[out.behavior == "any_poke"].kind.tolist() == ["point"]
    back = ba.dataset_to_events(ba.events_to_dataset(out))
    pd.testing.assert_frame_equal(back.reset_index(drop=True), out[list(ba.EVENT_COLUMNS)].reset_index(drop=True),
                                  check_dtype=False)
    with pytest.raises(ValueError, match="derived: 'sniff' is already a behaviour"):
        ba.add_derived(ev, {"sniff": ["follow"]})
