"""Motion + extraction stages on simulated pair sessions: planted ROIs found, planted calcium recovered,
the dataset groups match docs/design.md."""
from __future__ import annotations

import numpy as np
import pytest
import tomli_w
import tomllib

import pipeline
from imaging_synth import match_rois, reference_offset, shift_rmse
from pipeline.core import orchestrate
from pipeline import stages as pipeline_stages
from pipeline.core.session import Session
from pipeline.simulator import load_truth, simulate_session
from pipeline.imaging.traces import dff, neuropil_correct, running_percentile

FAST = dict(preset="small", duration_s=40.0, fov=(64, 64))     # 400 frames of 64 x 64 px per animal


def _run_session(d, modality, seed, extraction=None, **over):
    toml = simulate_session(d / "s", seed=seed, modality=modality, **over)
    if extraction:
        doc = tomllib.loads(toml.read_text())
        doc["extraction"] = {**doc.get("extraction", {}), **extraction}
        toml.write_text(tomli_w.dumps(doc))
    s = Session.load(toml)
    status = pipeline_stages.run(s, d / "out", only=["motion", "extraction"], show_progress=False)
    assert status == {"motion": "ran", "extraction": "ran"}
    return pipeline.load(d / "out"), load_truth(toml), s


def _scores(res, truth, a, trace="F_corrected"):
    mo, rois, tr = res[f"/{a}/motion"], res[f"/{a}/rois"], res[f"/{a}/traces"]
    g = truth[f"/{a}"]
    Y, X = mo["mean_image"].shape
    fp = np.zeros((rois.sizes["neuron"], Y, X))
    fp[rois["pix_neuron"].values, rois["pix_y"].values, rois["pix_x"].values] = rois["pix_weight"].values
    off = reference_offset(mo["rigid_shift"].values, g["rigid_shift"].values)
    return match_rois(g["footprint"].values, fp, g["calcium"].values, tr[trace].values, off)


@pytest.fixture(scope="module")
def run2p(tmp_path_factory):
    # short movies (400 frames) need a higher suite2p threshold than long ones (see docs/imaging.md)
    return _run_session(tmp_path_factory.mktemp("e2p"), "2p", seed=3, extraction={"threshold_scaling": 2.0}, **FAST)


@pytest.fixture(scope="module")
def run1p(tmp_path_factory):
    return _run_session(tmp_path_factory.mktemp("e1p"), "1p", seed=5, **FAST)


@pytest.mark.parametrize("animal", ["A", "B"])
def test_2p_planted_rois_found_and_traces_recovered(run2p, animal):
    res, truth, _ = run2p
    m = _scores(res, truth, animal)
    assert m["f1"] >= 0.8, m
    assert np.median(m["corr"]) >= 0.8, m


def test_2p_no_duplicate_rois(run2p):
    """sparsery's duplicate detections of one soma shared 56-73% of their pixels; max_overlap (0.5 for 2p) drops them."""
    res, _, session = run2p
    assert session.params["extraction"]["max_overlap"] is None     # the modality default is what is tested
    for a in "AB":
        rois = res[f"/{a}/rois"]
        n, Y, X = rois.sizes["neuron"], *res[f"/{a}/motion"]["mean_image"].shape
        count = np.zeros((Y, X), int)
        np.add.at(count, (rois["pix_y"].values, rois["pix_x"].values), 1)
        shared = count[rois["pix_y"].values, rois["pix_x"].values] > 1
        frac = np.bincount(rois["pix_neuron"].values, weights=shared, minlength=n) / np.bincount(
            rois["pix_neuron"].values, minlength=n)
        assert n >= 10 and frac.max() <= 0.5, (a, frac.round(2))


# The one-photon bar (issue 19: F1 >= 0.7 and median matched r >= 0.7 for every animal, default engine) on the
# simulator's realistic 1p movies (optics blur, sensor-fixed vignette and glow, vessels, brain motion). On this
# small, short test movie (64 x 64 px, 400 frames) animal A meets it; animal B does not (F1 0.35-0.40, recall
# 0.31-0.46). Even a detector that knows B's true footprints and thresholds their peak-to-noise ratio reaches
# F1 0.68 on this movie (benchmarks/bench_detectability_1p.py; docs/imaging.md, "Is animal B of the 40 s test
# movie detectable at all?"); detection also merges and misplaces some of B's cells.
# The realistic-size session (test_realistic_1p_session, slow tier) meets it for both animals.
ONE_P_GAP = pytest.mark.xfail(reason="1p F1 of animal B below 0.7 on the 64 x 64 px, 400-frame test movie "
                              "(measured 0.35-0.40): B's cells are at the edge of detectability in 40 s (PNR median "
                              "6.0 against 3.7 between cells; a PNR threshold on the true footprints reaches F1 "
                              "0.68), and detection merges or misplaces several of them", strict=True)


@pytest.mark.parametrize("animal", ["A", pytest.param("B", marks=ONE_P_GAP)])
def test_1p_default_engine_finds_planted_rois(run1p, animal):
    res, truth, _ = run1p
    m = _scores(res, truth, animal)
    assert m["f1"] >= 0.7, m
    assert np.median(m["corr"]) >= 0.7, m


@pytest.mark.parametrize("animal", ["A", pytest.param("B", marks=ONE_P_GAP)])
def test_1p_denoised_calcium_meets_the_trace_bar(run1p, animal):
    """The deconvolution model's C (the CNMF-style denoised trace; minian's engine reports its C) of matched
    ROIs; the same ROIs as the F_corrected test, so animal B misses the F1 part of the bar here too."""
    res, truth, _ = run1p
    m = _scores(res, truth, animal, trace="C")
    assert m["f1"] >= 0.7 and np.median(m["corr"]) >= 0.7, m


def test_denoised_calcium_is_the_deconvolution_model():
    from pipeline.imaging.traces import denoised_calcium
    s = np.zeros((2, 50), np.float32)
    s[0, 10], s[1, [5, 30]] = 2.0, 1.0
    c = denoised_calcium(s, fs=10.0, tau=0.5)
    np.testing.assert_allclose(c[0, 10:20], 2.0 * np.exp(-np.arange(10) / 5.0), rtol=1e-6)
    assert c[0, :10].max() == 0 and c[1, 31] > c[1, 29]


def test_2p_motion_group_matches_truth_and_contract(run2p):
    res, truth, _ = run2p
    for a in "AB":
        mo = res[f"/{a}/motion"]
        assert shift_rmse(mo["rigid_shift"].values, truth[f"/{a}"]["rigid_shift"].values) < 0.2
        assert mo["rigid_shift"].dims == ("frame", "axis") and mo["rigid_shift"].attrs["units"] == "px"
        assert mo["nonrigid_shift"].dims == ("frame", "block", "axis")
        for v in ("frame_corr", "bad_frame"):
            assert mo[v].dims == ("frame",)
        for v in ("reference_image", "mean_image", "mean_image_raw"):
            assert mo[v].dims == ("y", "x")
        assert mo.attrs["crispness_after"] > mo.attrs["crispness_before"]


def test_rois_and_traces_groups_match_the_contract(run2p):
    res, truth, session = run2p
    for a in "AB":
        rois, tr = res[f"/{a}/rois"], res[f"/{a}/traces"]
        for v in ("pix_neuron", "pix_y", "pix_x", "pix_weight"):
            assert rois[v].dims == ("pixel",)
        for v in ("roi_id", "centroid_y", "centroid_x", "iscell_prob", "is_cell", "skew", "npix_norm", "compact",
                  "transient_skew"):
            assert rois[v].dims == ("neuron",)
        assert rois["mean_image"].dims == rois["correlation_image"].dims == ("y", "x")
        n = rois.sizes["neuron"]
        # ROIs under the classifier threshold, or whose trace has no transients (2p), are kept, marked
        thr = session.params["extraction"]["iscell_threshold"]
        thr = 0.1 if thr is None else thr     # the default with suite2p's built-in classifier
        skew_min = session.params["extraction"]["min_transient_skew_2p"]
        skew_min = 0.1 if skew_min is None else skew_min      # the default with suite2p's built-in classifier
        np.testing.assert_array_equal(rois["is_cell"].values, (rois["iscell_prob"].values >= thr)
                                      & (rois["transient_skew"].values > skew_min))
        for v in ("F", "Fneu", "F_corrected", "dff", "spikes", "C"):
            assert tr[v].dims == ("neuron", "frame") and tr[v].shape[0] == n
            assert np.isfinite(tr[v].values).all()
        assert "running 8th percentile over a 60 s" in tr.attrs["baseline_rule"]
        np.testing.assert_allclose(tr["F_corrected"], tr["F"] - 0.7 * tr["Fneu"], rtol=1e-5, atol=1e-3)
        # frame_time is the master clock of the recorded frames: dropped frames are gaps
        t = tr["frame_time"].values
        true_t = truth[f"/{a}"]["frame_time"].values
        np.testing.assert_allclose(t, true_t, atol=1e-6)
        dropped = truth[f"/{a}"]["dropped_frames"].values
        if len(dropped):
            assert np.diff(t).max() > 1.5 * np.median(np.diff(t))
        # deconvolved activity is non-negative and peaks with the calcium of matched ROIs
        assert (tr["spikes"].values >= 0).all()


def test_dff_running_percentile_baseline():
    rng = np.random.default_rng(0)
    T, fs = 3000, 10.0
    base = 100 + 50 * np.linspace(0, 1, T)               # slow drift (bleaching reversed)
    x = base * (1 + 0.02 * rng.normal(size=T))
    x[1000:1020] *= 2.0                                   # a transient of dF/F = 1
    F = x[None].astype(np.float32)
    d = dff(F, F, fs, window_s=60.0, percentile=8.0)[0]
    assert abs(np.median(d[:900])) < 0.05 and abs(np.median(d[2000:])) < 0.05   # drift removed
    assert 0.8 < np.median(d[1002:1018]) < 1.2
    rp = running_percentile(np.arange(100, dtype=float)[None], 11, 50)[0]
    np.testing.assert_allclose(rp[10:90], np.arange(10, 90), atol=0.6)
    np.testing.assert_allclose(neuropil_correct(F, F, 0.7), 0.3 * F, rtol=1e-6)


@pytest.mark.slow
def test_realistic_2p_session(tmp_path):
    """Default simulator preset: 128 x 128 px, 600 s at 15 Hz, ~55 neurons per animal; default parameters."""
    res, truth, _ = _run_session(tmp_path, "2p", seed=31, preset="default")
    for a in "AB":
        m = _scores(res, truth, a)
        assert m["f1"] >= 0.8, (a, m)
        assert np.median(m["corr"]) >= 0.8, (a, m)
        assert shift_rmse(res[f"/{a}/motion"]["rigid_shift"].values, truth[f"/{a}"]["rigid_shift"].values) < 0.2


@pytest.mark.slow
def test_realistic_1p_session(tmp_path):
    """The issue's miniscope movie: 128 x 128 px, 60 s at 20 Hz (1200 frames), 60 and 52 neurons, the simulator's
    1p optics (blur, sensor-fixed vignette and glow, vessels) and brain motion; default parameters. The 1p bars:
    motion < 0.5 px, ROI F1 >= 0.7 and median matched r >= 0.7 for both animals."""
    res, truth, _ = _run_session(tmp_path, "1p", seed=11, preset="default", duration_s=60.0, frame_rate=(20.0, 19.98))
    for a in "AB":
        assert shift_rmse(res[f"/{a}/motion"]["rigid_shift"].values, truth[f"/{a}"]["rigid_shift"].values) < 0.5
        m = _scores(res, truth, a)
        assert m["f1"] >= 0.7, (a, m)
        assert np.median(m["corr"]) >= 0.7, (a, m)


@pytest.mark.parametrize("neighbours", [8, 4])
def test_correlation_image_is_the_mean_neighbour_pearson_r(neighbours):
    """The one correlation image (seeded detector: 8 neighbours; minian engine: 4) against np.corrcoef
    pixel by pixel, on a movie where a planted 3 x 3 patch shares one signal and the rest is noise."""
    from pipeline.imaging.correlation import correlation_image
    rng = np.random.default_rng(0)
    mov = rng.standard_normal((300, 7, 9))
    mov[:, 2:5, 3:6] += 2.0 * rng.standard_normal((300, 1, 1))
    got = correlation_image(mov.astype(np.float32), neighbours)
    want = np.zeros((7, 9))
    steps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0) and
             (neighbours == 8 or dy == 0 or dx == 0)]
    for y in range(7):
        for x in range(9):
            rs = [np.corrcoef(mov[:, y, x], mov[:, y + dy, x + dx])[0, 1] for dy, dx in steps
                  if 0 <= y + dy < 7 and 0 <= x + dx < 9]
            want[y, x] = np.mean(rs)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert got[3, 4] > 0.75 and np.abs(got[0, 0]) < 0.2     # the patch centre vs a noise corner
    with pytest.raises(ValueError, match="4 or 8"):
        correlation_image(mov, 6)


def test_classifier_file_learns_a_labelling_rule(tmp_path):
    """suite2p's classifier fitted from a written file reproduces the rule that labelled its training ROIs."""
    from pipeline.imaging.extraction.classifier import FEATURES, classify, train
    rng = np.random.default_rng(0)

    def rois(n):
        f = {"skew": rng.gamma(2.0, 0.8, n), "npix_norm": rng.lognormal(0, 0.4, n), "compact": 1 + rng.gamma(1, 0.1, n)}
        return f, (f["skew"] > 1.5) & (f["npix_norm"] < 1.5)    # a lab's rule: skewed, not oversized
    f, y = rois(400)
    path = train(f, y, tmp_path / "lab.npy")
    g, truth = rois(400)
    stat = [{k: g[k][i] for k in FEATURES} for i in range(400)]
    got = classify(stat, path) >= 0.5
    assert (got == truth).mean() >= 0.9, (got == truth).mean()
    with pytest.raises(ValueError, match=r"at least 100 ROIs with at least 10 cells and 10 non-cells"):
        train(f, np.ones(400, bool), tmp_path / "x.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match=r"junk\.npy: not a classifier file.*expected a suite2p classifier"):
        classify(stat, tmp_path / "junk.npy")


def test_train_classifier_from_curated_session_and_use_it(run2p, tmp_path):
    """A lab curates a session in napari (curation.csv), trains a classifier with the CLI, names the file in
    the next session's config: that session's is_cell follows the lab's labelling."""
    import shutil
    from pipeline.cli import main
    res, truth, session = run2p
    out = tmp_path / "out"
    shutil.copytree(session.path.parent.parent / "out", out)     # the fixture's result folder, curated here
    rows = ["animal,roi_id,label,is_cell"]
    lab = {}
    for a in "AB":
        r = res[f"/{a}/rois"]
        # the lab's rule, applied by hand in napari: ROIs with a low-skew trace are not cells
        lab[a] = r["skew"].values > np.median(r["skew"].values)
        rows += [f"{a},{i},,{'true' if c else 'false'}" for i, c in zip(r["roi_id"].values, lab[a])]
    (out / "curation.csv").write_text("\n".join(rows) + "\n")
    lab_file = session.path.parent.parent / "lab" / "classifier.npy"     # beside the session folder
    # suite2p's classifier needs >= 100 training ROIs: the folder four times stands in for four curated sessions
    assert main(["train-classifier"] + [str(out)] * 4 + ["--out", str(lab_file)]) == 0
    doc = tomllib.loads(session.path.read_text())
    doc["extraction"] = {**doc.get("extraction", {}), "classifier_file": "../lab/classifier.npy"}   # relative to it
    toml = session.path.parent / "session_lab.toml"
    toml.write_text(tomli_w.dumps(doc))
    s2 = Session.load(toml)
    assert pipeline_stages.run(s2, out, only=["extraction"], force=True, show_progress=False)["extraction"] == "ran"
    res2 = pipeline.load(out)
    agree = np.concatenate([res2[f"/{a}/rois"]["is_cell"].values == lab[a] for a in "AB"])
    assert agree.mean() >= 0.8, agree.mean()
    assert main(["train-classifier", str(tmp_path / "nope"), "--out", str(tmp_path / "x.npy")]) == 2


@pytest.mark.slow
def test_real_2p_movie_detection_beats_suite2p_direct(tmp_path):
    """neurofinder 00.00 top-left (600 x 256 x 256 px, 106 labelled cells), motion + extraction with defaults,
    diameter 10, fs 7; neurofinder's 5 px greedy centroid rule. The bars lie above suite2p.run_s2p's own F1 with
    its defaults on this movie (benchmarks/bench_real_detection.py measures both; docs/imaging.md)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import _realdata as R
    d = R.data_dir()
    if d is None:
        pytest.skip(f"real data absent: {R.REPO.parent / 'shared' / 'data' / R.NAME}")
    e = R.run_project(R.register(d, tmp_path))
    truth, found = R.truth_centroids(d), R.result_centroids(e)
    all_rois, cells = R.match(truth, found), R.match(truth, found[e.is_cell])
    assert all_rois["f1"] >= 0.3 and cells["f1"] >= 0.2, (all_rois["f1"], cells["f1"])
