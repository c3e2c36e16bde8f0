"""neuroid: cell-type labels from genotype, a structural channel, and tables (docs/celltypes.md).

Ground truth: (1) a synthetic animal built here (cells of varying size, a red
reporter whose brightness varies cell to cell, green bleed-through into red,
a dark offset, shot-like noise, the red image shifted by a known subpixel
amount); (2) the pipeline simulator's footprints, cell types and red image.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import xarray as xr
from scipy import ndimage
from sklearn.metrics import balanced_accuracy_score

import neuroid
import neuroid.labels
from neuroid import GABA, GLU, UNKNOWN, Footprints, label_animal
from neuroid.structural import ReporterClassifier, StructuralError, register_structural
from pipeline.core.parameters import ConfigError


# ---------------------------------------------------------------------------
# synthetic animal with known truth
def synthetic_animal(seed=0, shape=(128, 128), n=60, frac_marked=0.3, shift=(3.4, -2.7), noise=0.05,
                     bleed=0.15, red_gain=1.0, dark=0.5):
    """Footprints (n, Y, X), green mean image, red image shifted by `shift` px, truth labels."""
    rng = np.random.default_rng(seed)
    Y, X = shape
    yy, xx = np.mgrid[:Y, :X]
    centers = []
    while len(centers) < n:
        c = rng.uniform(6, [Y - 6, X - 6])
        if all(np.hypot(*(c - d)) > 9 for d in centers):
            centers.append(c)
    radius = rng.uniform(3.5, 5.5, n)
    masks = np.zeros((n, Y, X))
    for k, (c, r) in enumerate(zip(centers, radius)):
        d2 = (yy - c[0]) ** 2 + (xx - c[1]) ** 2
        masks[k] = np.where(d2 <= r ** 2, np.exp(-d2 / (2 * r ** 2)), 0)
    marked = rng.random(n) < frac_marked
    marked[:2] = [True, False]                       # both classes present
    green_np = 0.3 + 2.0 * ndimage.gaussian_filter(rng.standard_normal(shape), 10)
    green_cells = np.tensordot(rng.lognormal(0, 0.3, n), masks, 1)
    green = dark + green_np + green_cells + noise * rng.standard_normal(shape)
    red_b = np.where(marked, red_gain * rng.lognormal(0, 0.5, n), 0.0)    # reporter varies cell to cell
    red_np = 0.2 + 1.0 * ndimage.gaussian_filter(rng.standard_normal(shape), 10)
    red_true = red_np + np.tensordot(red_b, masks, 1) + bleed * green_cells
    red = dark + ndimage.shift(red_true, (-shift[0], -shift[1]), order=3, mode="nearest") \
        + noise * rng.standard_normal(shape)
    truth = np.where(marked, GABA, GLU)
    return dict(masks=masks, green=green, red=red, truth=truth, shift=np.asarray(shift))


def bal_acc(truth, pred):
    """Balanced accuracy over the two true classes; 'unknown' counts as wrong."""
    return float(np.mean([np.mean(pred[truth == c] == c) for c in (GABA, GLU)]))


# ---------------------------------------------------------------------------
# structural channel
@pytest.mark.parametrize("seed", range(4))
def test_structural_channel_reaches_planted_accuracy(seed):
    d = synthetic_animal(seed)
    ds = label_animal(d["masks"], d["green"], structural=d["red"], structural_marks=GABA)
    pred = ds.cell_type.values
    assert set(pred) >= {GABA, GLU}, "both classes must be predicted"
    assert bal_acc(d["truth"], pred) >= 0.9
    assert (ds.cell_type_source.values == "structural").all()
    conf = ds.cell_type_confidence.values
    assert ((conf >= 0) & (conf <= 1)).all()
    # labelled ROIs are confident; scores of the marked class sit above the rest
    assert (conf[pred != UNKNOWN] >= 0.8).all()
    s = ds.cell_type_score.values
    assert np.median(s[d["truth"] == GABA]) > np.median(s[d["truth"] == GLU]) + 0.05
    clf = json.loads(ds.attrs["classifier"])
    assert clf["method"] == "mixture" and clf["separation_ashman_d"] > 2


def test_marks_glutamatergic_flips_labels():
    d = synthetic_animal(1)
    ds = label_animal(d["masks"], d["green"], structural=d["red"], structural_marks=GLU)
    flipped = np.where(d["truth"] == GABA, GLU, GABA)
    assert bal_acc(flipped, ds.cell_type.values) >= 0.9


def test_constant_classifier_is_caught(monkeypatch):
    """The accuracy check above is sensitive: a constant classifier gives 0.5 and one class only."""
    d = synthetic_animal(0)

    class Constant(ReporterClassifier):
        def predict_proba(self, scores):
            return np.ones(np.shape(scores))

    monkeypatch.setattr(neuroid.labels, "_classify", lambda score, p, rs: Constant().fit(score))
    pred = label_animal(d["masks"], d["green"], structural=d["red"]).cell_type.values
    assert bal_acc(d["truth"], pred) == pytest.approx(0.5)
    assert set(pred) == {GABA}


def test_threshold_method_with_dark_level():
    d = synthetic_animal(2, dark=0.5)
    p = {"method": "threshold", "threshold": 0.72, "threshold_width": 0.02, "dark_level": 0.5}
    ds = label_animal(d["masks"], d["green"], structural=d["red"], params=p)
    s, ct = ds.cell_type_score.values, ds.cell_type.values
    margin = 0.02 * np.log(0.8 / 0.2)           # logistic confidence reaches 0.8 this far from the cut
    assert (ct[s >= 0.72 + margin + 1e-9] == GABA).all() and (ct[s <= 0.72 - margin - 1e-9] == GLU).all()
    assert bal_acc(d["truth"], ct) >= 0.9
    assert json.loads(ds.attrs["classifier"])["method"] == "threshold"
    # the offset pulls every score towards 0.5 when it is not subtracted
    s0 = label_animal(d["masks"], d["green"], structural=d["red"], params={**p, "dark_level": 0.0}).cell_type_score
    assert np.abs(s0.values - 0.5).mean() < np.abs(s - 0.5).mean()


def test_min_confidence_makes_unknown():
    d = synthetic_animal(3)
    ds = label_animal(d["masks"], d["green"], structural=d["red"], params={"min_confidence": 1.0})
    conf = ds.cell_type_confidence.values
    assert (ds.cell_type.values[conf < 1.0] == UNKNOWN).all()


@pytest.mark.parametrize("shift", [(3.4, -2.7), (-5.25, 1.6), (0.3, 0.0)])
def test_registration_recovers_shift(shift):
    d = synthetic_animal(5, shift=shift)
    aligned, est, _ = register_structural(d["red"], d["green"])
    assert np.abs(est - np.asarray(shift)).max() < 0.5
    assert np.isnan(aligned).any()       # pixels shifted in from outside are marked, not invented


def test_wrong_shape_structural_is_named(tmp_path):
    d = synthetic_animal(0)
    path = tmp_path / "red.tif"
    tifffile.imwrite(path, d["red"][:100, :120].astype(np.float32))
    with pytest.raises(StructuralError) as exc:
        label_animal(d["masks"], d["green"], structural=str(path))
    msg = str(exc.value)
    assert str(path) in msg and "(100, 120)" in msg and "(128, 128)" in msg


def test_structural_movie_is_averaged(tmp_path):
    d = synthetic_animal(4)
    rng = np.random.default_rng(0)
    movie = d["red"][None] + 0.2 * rng.standard_normal((8, *d["red"].shape))
    path = tmp_path / "red_movie.tif"
    tifffile.imwrite(path, movie.astype(np.float32))
    assert np.allclose(neuroid.load_structural(path), movie.mean(0), atol=1e-5)
    ds = label_animal(d["masks"], d["green"], structural=str(path))
    assert bal_acc(d["truth"], ds.cell_type.values) >= 0.9
    assert ds.attrs["structural_file"] == str(path)


def test_coo_footprints_give_the_same_labels():
    d = synthetic_animal(6)
    fp = Footprints.from_dense(d["masks"])
    rois = xr.Dataset({"pix_neuron": ("pixel", fp.neuron), "pix_y": ("pixel", fp.y), "pix_x": ("pixel", fp.x),
                       "pix_weight": ("pixel", fp.weight), "roi_id": ("neuron", np.arange(60) + 100),
                       "mean_image": (("y", "x"), d["green"])})
    a = label_animal(d["masks"], d["green"], structural=d["red"])
    b = label_animal(rois, d["green"], roi_id=rois.roi_id.values, structural=d["red"])
    assert (a.cell_type.values == b.cell_type.values).all()
    assert (b.roi_id.values == np.arange(60) + 100).all()


# ---------------------------------------------------------------------------
# genotype / indicator
@pytest.mark.parametrize("genotype,label", [
    ("Vgat-Cre", GABA), ("VGAT-IRES-Cre", GABA), ("slc32a1 cre", GABA), ("Gad2-IRES-Cre x Ai14", GABA),
    ("Dlx5/6-Cre", GABA), ("PV-Cre", GABA), ("Sst-IRES-Cre", GABA), ("VIP-Cre", GABA),
    ("Vglut2-IRES-Cre", GLU), ("Slc17a7-IRES2-Cre; Ai162", GLU), ("CaMKIIa-Cre", GLU), ("Emx1-IRES-Cre", GLU),
    ("Rbp4-Cre_KL100", GLU), ("  camk2a  ", GLU),
    ("", None), ("hSyn", None), ("C57BL/6J", None), ("wild type", None),
])
def test_genotype_mapping(genotype, label):
    assert neuroid.line_label(genotype)[0] == label


def test_thy1_is_glutamatergic_with_reduced_confidence():
    label, conf, basis = neuroid.line_label("Thy1-GCaMP6s GP4.3")
    assert label == GLU and conf == 0.9 and "Thy1" in basis


def test_indicator_promoter_and_conflict():
    assert neuroid.animal_label("", "AAV9-mDlx-GCaMP6f")[0] == GABA
    assert neuroid.animal_label("", "AAV1-CaMKII-GCaMP6s")[0] == GLU
    assert neuroid.animal_label("", "jGCaMP8m")[0] is None
    with pytest.raises(ConfigError, match="promoter"):
        neuroid.animal_label("Vgat-Cre", "AAV-CaMKII-GCaMP6f", "[animals.A]")


def test_unknown_line_lists_known_lines():
    with pytest.raises(ConfigError) as exc:
        neuroid.animal_label("Tac1-Cre", "", "[animals.B]")
    msg = str(exc.value)
    assert "[animals.B] genotype" in msg and "'Tac1-Cre'" in msg
    assert "Vgat-Cre" in msg and "Vglut2-Cre" in msg and "CaMKIIa" in msg


def test_lines_of_both_populations_are_an_error():
    with pytest.raises(ConfigError, match="both populations"):
        neuroid.line_label("Vgat-Cre x Vglut2-Flp")


def test_genotype_labels_every_roi():
    d = synthetic_animal(0)
    ds = label_animal(d["masks"], d["green"], genotype="Vgat-IRES-Cre", animal="A")
    assert (ds.cell_type.values == GABA).all()
    assert (ds.cell_type_confidence.values == 1.0).all()
    assert (ds.cell_type_source.values == "genotype").all()
    assert np.isnan(ds.cell_type_score.values).all()
    # with a red channel as well: the genotype decides, the score is kept as a cross-check
    ds = label_animal(d["masks"], d["green"], genotype="Vglut2-Cre", structural=d["red"])
    assert (ds.cell_type.values == GLU).all() and np.isfinite(ds.cell_type_score.values).all()


def test_pan_neuronal_without_structural_is_unknown():
    d = synthetic_animal(0, n=10)
    ds = label_animal(d["masks"], d["green"], genotype="")
    assert (ds.cell_type.values == UNKNOWN).all() and (ds.cell_type_source.values == "none").all()
    assert (ds.cell_type_confidence.values == 0).all()
    with pytest.raises(ConfigError, match="celltype_source = 'genotype'"):
        label_animal(d["masks"], d["green"], genotype="hSyn", source="genotype")
    with pytest.raises(ConfigError, match="no 'structural'"):
        label_animal(d["masks"], d["green"], source="structural")


# ---------------------------------------------------------------------------
# tables
def _write(path, text):
    path.write_text(text)
    return path


def test_label_table_overrides(tmp_path):
    d = synthetic_animal(0, n=20)
    tab = _write(tmp_path / "histo.csv", "animal,roi_id,label\nA,3,glutamatergic\nB,4,GABAergic\nA,5,gaba\nA,6,Unknown\n")
    ds = label_animal(d["masks"], d["green"], genotype="Vgat-Cre", table=tab, animal="A")
    ct, src = ds.cell_type.values, ds.cell_type_source.values
    assert ct[3] == GLU and src[3] == "table" and ds.cell_type_confidence.values[3] == 1.0
    assert ct[5] == GABA and src[5] == "table"
    assert ct[6] == UNKNOWN and src[6] == "table"
    assert ct[4] == GABA and src[4] == "genotype"          # the B row is not this animal's
    assert (src == "table").sum() == 3


def test_label_table_unknown_roi_ids_listed(tmp_path):
    d = synthetic_animal(0, n=10)
    tab = _write(tmp_path / "t.csv", "roi_id,label\n2,GABAergic\n17,GABAergic\n99,glutamatergic\n")
    with pytest.raises(ConfigError) as exc:
        label_animal(d["masks"], d["green"], table=tab)
    msg = str(exc.value)
    assert str(tab) in msg and "17 (line 3)" in msg and "99 (line 4)" in msg and "2 (" not in msg


def test_label_table_bad_label_names_file_and_line(tmp_path):
    d = synthetic_animal(0, n=10)
    tab = _write(tmp_path / "t.csv", "animal,roi_id,label\nA,1,GABAergic\nA,2,pyramidal-ish\n")
    with pytest.raises(ConfigError, match=rf"{tab}:3: label 'pyramidal-ish'"):
        label_animal(d["masks"], d["green"], table=tab)
    bad = _write(tmp_path / "nocol.csv", "roi,label\n1,GABAergic\n")
    with pytest.raises(ConfigError, match="missing column"):
        label_animal(d["masks"], d["green"], table=bad)


def test_curation_last_row_wins_and_sets_is_cell(tmp_path):
    d = synthetic_animal(0, n=10)
    tab = _write(tmp_path / "t.csv", "roi_id,label\n1,GABAergic\n2,GABAergic\n")
    cur = _write(tmp_path / "curation.csv",
                 "animal,roi_id,label,is_cell\n"
                 "m07,1,glutamatergic,\n"        # animal id works as well as the role
                 "A,2,GABAergic,false\n"
                 "A,2,,\n"                        # empty keeps
                 "A,3,glutamatergic,\n"
                 "A,3,GABAergic,true\n"           # last row wins
                 "B,4,glutamatergic,false\n")     # other animal
    ds = label_animal(d["masks"], d["green"], genotype="CaMKII", table=tab, curation=cur,
                      animal="A", animal_id="m07", is_cell=np.r_[True, True, True, False, True, True, True, True, True, True])
    ct, src, ic = ds.cell_type.values, ds.cell_type_source.values, ds.is_cell.values
    assert ct[1] == GLU and src[1] == "curation"          # curation beats the table
    assert ct[2] == GABA and src[2] == "curation" and not ic[2]
    assert ct[3] == GABA and src[3] == "curation" and ic[3]
    assert ct[4] == GLU and src[4] == "genotype" and ic[4]
    with pytest.raises(ConfigError, match="is_cell 'maybe'"):
        label_animal(d["masks"], d["green"], curation=_write(tmp_path / "c2.csv", "animal,roi_id,label,is_cell\nA,1,,maybe\n"))


# ---------------------------------------------------------------------------
# simulator ground truth
@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from pipeline.simulator import load_truth, simulate_session
    out = tmp_path_factory.mktemp("sim") / "pair"
    toml = simulate_session(out, seed=3, preset="small", n_neurons=(12, 60), fov=(80, 80), duration_s=10.0)
    truth = load_truth(out)
    movie = tifffile.imread(out / "B" / "movie.tif").astype(np.float64)
    return dict(dir=out, toml=toml, truth=truth, mean_B=movie.mean(0),
                mean_A=tifffile.imread(out / "A" / "movie.tif").astype(np.float64).mean(0))


def _sim_footprints(truth, animal):
    fp = truth[f"/{animal}"]["footprint"].values
    return np.where(fp > 0.2, fp, 0.0)      # cut like a detected ROI, not the full Gaussian


def test_simulator_red_channel_accuracy(sim):
    t = sim["truth"]["/B"]
    ds = label_animal(_sim_footprints(sim["truth"], "B"), sim["mean_B"],
                      structural=str(sim["dir"] / "B" / "structural.tif"), structural_marks=GABA)
    truth, pred = t["cell_type"].values, ds.cell_type.values
    assert set(pred) >= {GABA, GLU}
    assert balanced_accuracy_score(truth, np.where(pred == UNKNOWN, "x", pred)) >= 0.9


def test_simulator_shifted_red_image_registered(sim):
    red = tifffile.imread(sim["dir"] / "B" / "structural.tif").astype(np.float64)
    shifted = ndimage.shift(red, (2.6, -3.3), order=3, mode="nearest")
    _, est0, _ = register_structural(red, sim["mean_B"])
    _, est, _ = register_structural(shifted, sim["mean_B"])
    assert np.abs((est - est0) - np.array([-2.6, 3.3])).max() < 0.5
    ds = label_animal(_sim_footprints(sim["truth"], "B"), sim["mean_B"], structural=shifted)
    assert bal_acc(sim["truth"]["/B"]["cell_type"].values, ds.cell_type.values) >= 0.9


# ---------------------------------------------------------------------------
# the stage, on real data through the real function
def _commit_extraction(out, sim):
    """Commit an `extraction` result built from the simulator's truth footprints, as extraction would."""
    from pipeline.core import dataset
    groups = {}
    for a in "AB":
        fp = Footprints.from_dense(_sim_footprints(sim["truth"], a))
        n = fp.n_neurons
        groups[f"/{a}/rois"] = xr.Dataset(
            {"pix_neuron": ("pixel", fp.neuron), "pix_y": ("pixel", fp.y), "pix_x": ("pixel", fp.x),
             "pix_weight": ("pixel", fp.weight), "roi_id": ("neuron", np.arange(n)),
             "is_cell": ("neuron", np.arange(n) != 0), "mean_image": (("y", "x"), sim[f"mean_{a}"])})
    d = out / "stages" / "extraction"
    d.mkdir(parents=True)
    dataset.write_stage(xr.DataTree.from_dict(groups), d / "result.nc", {"stage": "extraction"})
    (d / "done.json").write_text(json.dumps({"fingerprint": "test-extraction", "status": "done"}))


def test_stage_celltypes(sim, tmp_path):
    """The real runner (fingerprint, commit, resume) on a committed extraction result."""
    from pipeline import stages as pipeline_stages
    from pipeline.core import dataset, orchestrate
    from pipeline.core.session import Session

    session = Session.load(sim["toml"])
    out = tmp_path / "results"
    _commit_extraction(out, sim)
    stages = pipeline_stages.load_stages()
    st = stages["celltypes"]
    assert st.needs == ("extraction",) and st.params == ("celltypes",)
    assert str(out / "curation.csv") in st.inputs(session, out)
    assert str(sim["dir"] / "B" / "structural.tif") in st.inputs(session, out)

    def not_run(ctx):
        raise AssertionError("extraction is committed; the runner must not rerun it")
    # only these two stages: extraction is committed above and never rerun (only=["celltypes"])
    registry = {"extraction": orchestrate.Stage("extraction", not_run, needs=()), "celltypes": st}
    run = lambda: orchestrate.run(session, out, only=["celltypes"], show_progress=False, registry=registry)  # noqa: E731

    assert run()["celltypes"] == "ran"
    tree = dataset.load(out)
    A, B = tree["/A/celltypes"].to_dataset(), tree["/B/celltypes"].to_dataset()
    assert A.sizes["neuron"] == 12 and B.sizes["neuron"] == 60
    assert (A.cell_type.values == GABA).all() and (A.cell_type_source.values == "genotype").all()   # Vgat-Cre
    assert bal_acc(sim["truth"]["/B"]["cell_type"].values, B.cell_type.values) >= 0.9
    assert (B.cell_type_source.values == "structural").all()
    assert not B.is_cell.values[0] and B.is_cell.values[1:].all()          # extraction's is_cell kept
    assert (B.roi_id.values == np.arange(60)).all()
    assert "structural_image" in B and "provenance" in B.attrs
    assert run()["celltypes"] == "up to date"

    # curation from napari overrides labels and is_cell, and reruns the stage
    (out / "curation.csv").write_text("animal,roi_id,label,is_cell\nB,5,glutamatergic,\nB,0,,true\nA,2,glutamatergic,\n")
    assert run()["celltypes"] == "ran"
    tree = dataset.load(out)
    A, B = tree["/A/celltypes"].to_dataset(), tree["/B/celltypes"].to_dataset()
    assert B.cell_type.values[5] == GLU and B.cell_type_source.values[5] == "curation"
    assert B.is_cell.values[0]
    assert A.cell_type.values[2] == GLU and A.cell_type_source.values[2] == "curation"


# ---------------------------------------------------------------------------
# slow tier: realistic sizes and a dimmer, noisier reporter
@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_structural_realistic_size(seed):
    d = synthetic_animal(seed, shape=(384, 384), n=500, noise=0.15, red_gain=0.6, bleed=0.25,
                         shift=(6.3, -4.8))
    ds = label_animal(d["masks"], d["green"], structural=d["red"])
    assert np.abs(np.asarray(ds.attrs["structural_shift_yx"]) - d["shift"]).max() < 0.5
    assert bal_acc(d["truth"], ds.cell_type.values) >= 0.9


@pytest.mark.slow
def test_simulator_default_preset_accuracy(tmp_path):
    from pipeline.simulator import load_truth, simulate_session
    simulate_session(tmp_path / "p", seed=11, preset="default", duration_s=30.0)
    truth = load_truth(tmp_path / "p")
    mean = tifffile.imread(tmp_path / "p" / "B" / "movie.tif").astype(np.float64).mean(0)
    ds = label_animal(_sim_footprints(truth, "B"), mean, structural=str(tmp_path / "p" / "B" / "structural.tif"))
    assert bal_acc(truth["/B"]["cell_type"].values, ds.cell_type.values) >= 0.9
