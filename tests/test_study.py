"""Study level: result folders of many simulated pairs -> tidy table, pseudo-pairs, pair-level comparisons.

Result folders are written with the real writers (pipeline.core.dataset.write_stage, done.json,
interbrain.json) holding /A/activity and /B/activity from a latent-factor simulation; the REAL
subspace (and encoding) stage functions fill /subspace and /encoding. GABAergic-genotype pairs
are planted with more shared factors than glutamatergic ones.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.core import dataset
from pipeline.core.parameters import SPEC, ConfigError
from pipeline.stages import encoding as encoding_stage
from pipeline.stages import subspace as subspace_stage
from pipeline.study.table import (PairEntry, StudyWarning, add_study_parser, load_study, pair_rows, plan_comparisons, run_study)
from pipeline.study.stats import compare
from pipeline.analysis.subspace import SharedSubspace

DT = 0.2          # s per bin
GENOTYPE = {"GABAergic": "Vgat-Cre", "glutamatergic": "CaMKIIa-Cre"}
BEHAVIORS = ("approach", "sniff")


def _ar1(rng, T, k, tau_s=1.0):
    """k smooth unit-variance AR(1) factors, (T, k)."""
    phi = np.exp(-DT / tau_s)
    e = rng.normal(0, np.sqrt(1 - phi ** 2), (T, k))
    x = np.empty((T, k))
    x[0] = rng.normal(0, 1, k)
    for t in range(1, T):
        x[t] = phi * x[t - 1] + e[t]
    return x


def simulate_pair(seed: int, n_shared: int, T: int = 900, n: int = 24, load: float = 0.6):
    """Activity (T, n) of A and B: `n_shared` common factors, 3 private factors each, unit noise."""
    rng = np.random.default_rng(seed)
    S = _ar1(rng, T, n_shared)
    out = {}
    for a in ("A", "B"):
        P = _ar1(rng, T, 3)
        out[a] = S @ rng.normal(0, load, (n_shared, n)) + P @ rng.normal(0, load, (3, n)) + rng.normal(0, 1, (T, n))
    beh = {a: (_ar1(rng, T, len(BEHAVIORS), tau_s=3.0) > 1.0) for a in ("A", "B")}
    return out, beh


def _align_groups(X: dict, beh: dict, cell_type: str) -> dict:
    T = X["A"].shape[0]
    time = (np.arange(T) + 0.5) * DT
    g = {}
    for a, o in (("A", "B"), ("B", "A")):
        n = X[a].shape[1]
        g[f"/{a}/activity"] = xr.Dataset(
            {"activity": (("neuron", "time"), X[a].T)},
            coords={"time": ("time", time, {"units": "s"}), "roi_id": ("neuron", np.arange(n)),
                    "cell_type": ("neuron", np.array([cell_type] * n, dtype=object)),
                    "is_cell": ("neuron", np.ones(n, bool))})
        g[f"/{a}/behavior"] = xr.Dataset(
            {"self": (("behavior", "time"), beh[a].T), "partner": (("behavior", "time"), beh[o].T)},
            coords={"behavior": list(BEHAVIORS), "time": ("time", time, {"units": "s"})})
    return g


class Ctx:
    """What a stage function uses of StageContext, for a tree held in memory or in a result folder."""

    def __init__(self, params: dict, tree_or_dir, seed: int = 0):
        self.params, self._src, self.seed, self.warnings = params, tree_or_dir, seed, []

    def upstream(self):
        return self._src if isinstance(self._src, xr.DataTree) else dataset.load(self._src, stages=["align"])

    def rng(self, name=""):
        return np.random.default_rng([self.seed] + [ord(c) for c in name])

    def warn(self, msg):
        self.warnings.append(msg)


def subspace_params(**kw):
    """Fewer surrogates than the defaults; by_cell_type stays on (the default), as in `interbrain run`."""
    return SPEC["subspace"].validate({"n_surrogates": 60, "null": "adaptive", "n_subsamples": 2,
                                      "cell_type_surrogates": 20, **kw}, "test")


def encoding_params():
    return {"encoding": SPEC["encoding"].validate({"n_surrogates": 30}, "test"), "behavior": {"derived": {}}}


def _write(out: Path, name: str, groups) -> None:
    d = out / "stages" / name
    d.mkdir(parents=True, exist_ok=True)
    prov = {"stage": name, "seed": 0, "time": "test"}
    tree = groups if isinstance(groups, xr.DataTree) else xr.DataTree.from_dict(groups)
    dataset.write_stage(tree, d / "result.nc", prov)
    (d / "done.json").write_text(json.dumps({"fingerprint": f"test-{name}", "status": "done", **prov}))


def _root(out: Path, pair: str, cell_type: str) -> dict:
    animals = {a: {"id": f"{pair}{a}", "sex": "F", "genotype": GENOTYPE[cell_type], "indicator": "GCaMP6f",
                   "modality": "2p"} for a in ("A", "B")}
    (out / dataset.ROOT_FILE).write_text(json.dumps({"format": "interbrain-result", "format_version":
                                                     dataset.FORMAT_VERSION, "pair": pair, "session_file": "",
                                                     "animals": animals}))
    return animals


def make_result(out: Path, pair: str, seed: int, cell_type: str, n_shared: int, encoding: bool = True) -> None:
    """A result folder: align (activity, behaviour) + the real subspace and encoding stages."""
    out.mkdir(parents=True, exist_ok=True)
    X, beh = simulate_pair(seed, n_shared)
    _write(out, "align", _align_groups(X, beh, cell_type))
    _write(out, "subspace", subspace_stage.run(Ctx({"subspace": subspace_params()}, out, seed)))
    if encoding:
        _write(out, "encoding", encoding_stage.run(Ctx(encoding_params(), out, seed)))
    _root(out, pair, cell_type)


def write_study(root: Path, pairs: list[dict], **study) -> Path:
    lines = ["[study]", f'name = "{study.pop("name", "test")}"', 'output_dir = "study_out"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in study.items()]
    for p in pairs:
        lines.append("[[pairs]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in p.items()]
    path = root / "study.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


PLAN = [("GABAergic", 4) if i < 4 else ("glutamatergic", 1) for i in range(8)]


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    pairs = []
    for i, (ct, k) in enumerate(PLAN):
        make_result(root / f"pair{i}", f"pair{i}", 1000 + i, ct, k, encoding=i in (0, 1, 4, 5))
        pairs.append({"result": f"pair{i}", "condition": "social" if i % 2 == 0 else "separated",
                      "cohort": i % 2, "day": 1 + i // 4, "box": f"b{i}"})
    return root, pairs


@pytest.fixture(scope="module")
def study_run(study_dir):
    root, pairs = study_dir
    path = write_study(root, pairs, n_surrogates=40, n_matched=2, n_boot=300)
    with pytest.warns(StudyWarning):   # pairs 2, 3, 6, 7 have no encoding stage: reported, not silent
        res = run_study(load_study(path))
    return res


# ----------------------------------------------------------------------------- end to end

def test_gaba_gt_glu_detected_at_pair_level(study_run):
    c = study_run.comparisons.set_index("comparison")
    row = c.loc["gaba_vs_glu__shared_fraction"]
    assert row.unit == "pair" and (row.n_units_0, row.n_units_1) == (4, 4)
    assert row.n_pairs == 8 and row.n_animals == 16
    # exact 4-vs-4 permutation: complete separation gives the smallest p, 2/70
    assert row.effect > 0 and row.ci_0 > 0 and row.p_permutation <= 2 / 70 + 1e-9
    assert c.loc["gaba_vs_glu__K", "effect"] > 0
    # the count- and T-matched refit across the study sees it too
    assert c.loc["gaba_vs_glu__shared_fraction_study_matched", "p_permutation"] <= 0.05


def test_real_pairs_exceed_pseudo_pairs(study_run):
    c = study_run.comparisons.set_index("comparison").loc["real_vs_pseudo__shared_fraction"]
    assert c.design.startswith("paired") and c.n_units_0 == 8
    # every real pair shares planted factors, no pseudo-pair does: exact sign-flip p = 2/256
    assert c.effect > 0 and c.p_permutation <= 2 / 256 + 1e-9
    ps = study_run.pseudo
    assert (ps.kind == "pseudo").sum() == 8 * 7 and set(ps.n_time) == {900} and set(ps.n_neurons) == {24}
    assert (ps.loc[ps.kind == "pseudo", "K"] == 0).mean() >= 0.9
    assert (ps.loc[ps.kind == "real", "K"] >= 1).all()


def test_table_contents_and_files(study_run):
    t, out = study_run.table, study_run.out
    assert set(t.pair) == {f"pair{i}" for i in range(8)} and t.animal.nunique() == 16
    k = t[t.measure == "K"].set_index("animal")["value"]
    assert (k[[f"pair{i}/A" for i in range(4)]] >= 3).all()      # 4 planted shared factors
    assert set(t.loc[t.measure == "K", "genotype_type"]) == {"GABAergic", "glutamatergic"}
    assert {"cv_r1", "enc_activated", "enc_suppressed", "K_study_matched", "pseudo_shared_fraction"} <= set(t.measure)
    assert (t.box.astype(str).str.startswith("b")).all() and set(t.condition) == {"social", "separated"}
    enc = t[(t.measure == "enc_activated") & (t.pair == "pair0")]
    assert set(enc.role) == {"self", "partner"} and set(enc.behavior) == set(BEHAVIORS) and enc.null.notna().all()
    miss = t[(t.measure == "enc_activated") & (t.pair == "pair2")]
    assert miss.value.isna().all() and miss.missing.str.contains("stage encoding").all()
    for f in ("table.csv", "table.nc", "comparisons.csv", "pseudo_pairs.csv", "study.json"):
        assert (out / f).is_file(), f
    assert len(pd.read_csv(out / "table.csv")) == len(t)
    ds = xr.load_dataset(out / "table.nc", engine="h5netcdf")
    assert ds.sizes["row"] == len(t) and "value" in ds
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert "gaba_vs_glu__shared_fraction.png" in figs and "real_vs_pseudo__shared_fraction.png" in figs
    assert any(f.startswith("social_vs_separated__enc_activated") for f in figs)
    # the encoding comparison names the 4 pairs it left out
    c = study_run.comparisons.set_index("comparison").loc["social_vs_separated__enc_activated_partner"]
    assert c.n_pairs == 4 and "pair2" in c.excluded


def test_cli_missing_stage_reported_and_excluded_with_warning(study_dir, tmp_path, capsys):
    """`interbrain study` (the subparser the CLI adds) over the study with pair3's subspace stage gone."""
    root, pairs = study_dir
    broken = tmp_path / "pair3"
    shutil.copytree(root / "pair3", broken)
    shutil.rmtree(broken / "stages" / "subspace")
    pairs = [dict(p, result=str(root / p["result"])) for p in pairs]
    pairs[3]["result"] = str(broken)
    path = write_study(tmp_path, pairs, n_surrogates=30, n_matched=1, pseudo_pairs=False, n_boot=200)
    parser = argparse.ArgumentParser()
    add_study_parser(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["study", str(path), "--out", str(tmp_path / "o")])
    with pytest.warns(StudyWarning, match=r"gaba_vs_glu__shared_fraction: 1 pair\(s\) excluded \(pair3: stage subspace"):
        assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "gaba_vs_glu__shared_fraction" in out and "8 pairs, 16 animals" in out and "warning: " in out
    t = pd.read_csv(tmp_path / "o" / "table.csv")
    row = t[(t.pair == "pair3") & (t.measure == "shared_fraction")]
    assert len(row) == 2 and row.value.isna().all() and row.missing.str.contains("no committed result").all()
    cmp = pd.read_csv(tmp_path / "o" / "comparisons.csv").set_index("comparison")
    c = cmp.loc["gaba_vs_glu__shared_fraction"]
    assert c.n_pairs == 7 and (c.n_units_0, c.n_units_1) == (3, 4) and "pair3" in c.excluded
    assert any("pair3" in w for w in json.loads((tmp_path / "o" / "study.json").read_text())["warnings"])
    assert not any(n.startswith("real_vs_pseudo") for n in cmp.index)   # pseudo_pairs = false


# ----------------------------------------------------------------------------- results of `interbrain run`

@pytest.fixture(scope="module")
def default_study(demo_result, tmp_path_factory):
    """`interbrain study` over two results of `interbrain run` with default settings (the sample
    pair's, run once per test session by conftest's demo_result, and a copy of it)."""
    _, out, _, _ = demo_result
    root = tmp_path_factory.mktemp("default_study")
    shutil.copytree(out, root / "copy")
    path = write_study(root, [{"result": str(out), "name": "pair01", "condition": "social"},
                              {"result": str(root / "copy"), "name": "pair01b", "condition": "separated"}],
                       n_surrogates=20, n_matched=1, n_boot=100, n_perm=200)
    r = subprocess.run([sys.executable, "-m", "pipeline", "study", str(path), "--out", str(root / "o")],
                       cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=900,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    return out, r, root / "o"


def test_study_over_default_run_results_has_the_count_matched_rows(default_study):
    """Default `[subspace] by_cell_type = true`: the per-(animal, cell type) rows equal the means of
    the result's own /subspace/by_cell_type samples (this crashed with IndexError in pair_rows)."""
    out, r, study_out = default_study
    assert r.returncode == 0, r.stdout + r.stderr
    cm = dataset.load(out)["subspace/by_cell_type"].to_dataset()
    t = pd.read_csv(study_out / "table.csv")
    t = t[t.pair == "pair01"]
    animal, pop = cm["animal"].values.astype(str), cm["population"].values.astype(str)
    groups = sorted(set(zip(animal, pop)))
    assert groups, "the default run made no count-matched cell-type samples"
    for a, c in groups:
        sel = (animal == a) & (pop == c)
        for measure, var in (("K_type_matched", "n_shared_sample"),
                             ("shared_fraction_type_matched", "shared_fraction_sample")):
            row = t[(t.side == a) & (t.cell_type == c) & (t.measure == measure)]
            assert len(row) == 1, (a, c, measure)
            assert row.value.iloc[0] == pytest.approx(float(cm[var].values[sel].mean())), (a, c, measure)
    # rows only for the groups the result holds
    got = t[t.measure == "K_type_matched"]
    assert sorted(zip(got.side, got.cell_type)) == groups


# ----------------------------------------------------------------------------- STUDY.toml errors

def test_study_file_errors(study_dir, tmp_path):
    root, pairs = study_dir
    abs_pairs = [dict(p, result=str(root / p["result"])) for p in pairs[:2]]
    with pytest.raises(ConfigError, match=r"\[\[pairs\]\] #2 result: folder .*nope not found"):
        load_study(write_study(tmp_path, [abs_pairs[0], dict(abs_pairs[1], result=str(tmp_path / "nope"))]))
    with pytest.raises(ConfigError, match=r"#2: result folder .* listed twice"):
        load_study(write_study(tmp_path, [abs_pairs[0], dict(abs_pairs[0], condition="x")]))
    with pytest.raises(ConfigError, match=r"#2: pair name 'pair0' is used twice"):
        load_study(write_study(tmp_path, [abs_pairs[0], dict(abs_pairs[1], name="pair0")]))
    with pytest.raises(ConfigError, match=r"#1: give exactly one of result"):
        load_study(write_study(tmp_path, [{"condition": "social"}]))
    with pytest.raises(ConfigError, match=r"study.toml \[study\]: 'n_surrogates' must be int in \[1, inf\], got str"):
        load_study(write_study(tmp_path, abs_pairs, n_surrogates="many"))
    with pytest.raises(ConfigError, match=r"\[study\]: 'conditions' must be two condition names"):
        load_study(write_study(tmp_path, abs_pairs, conditions=["social", "separated", "toy"]))
    with pytest.raises(ConfigError, match=r"\[study\]: unknown key\(s\) 'n_surogates'"):
        load_study(write_study(tmp_path, abs_pairs, n_surogates=10))
    with pytest.raises(ConfigError, match=r"\[study\]: 'n_boot' = 0 is out of range"):
        load_study(write_study(tmp_path, abs_pairs, n_boot=0))
    st = load_study(write_study(tmp_path, abs_pairs, n_perm=500))
    defaults = {k: v for k, v in SPEC["study"].defaults().items() if k not in ("name", "output_dir")}
    assert st.params == {**defaults, "n_perm": 500} and st.output_dir == tmp_path / "study_out"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"#1: .*not an interbrain result folder"):
        load_study(write_study(tmp_path, [{"result": str(tmp_path / "empty")}]))


# ----------------------------------------------------------------------------- null, through the table path

def _subspace_tree(X: dict) -> xr.DataTree:
    """The variables of /subspace the study reads, from the real estimator (SharedSubspace)."""
    est = SharedSubspace(n_surrogates=20, lag=10, null="adaptive", random_state=0).fit(X["A"], X["B"])
    g = {"/subspace": xr.Dataset(attrs={"K": est.n_shared_, "n_time": est.n_time_, "lag": 10, "percentile": 97.5})}
    for a in ("A", "B"):
        g[f"/subspace/{a}"] = xr.Dataset({"shared_variance_fraction": ((), est.shared_variance_fraction_[a]),
                                          "excluded": ("neuron", np.zeros(X[a].shape[1], bool))})
    return xr.DataTree.from_dict(g)


def test_no_planted_difference_not_detected_in_36_of_40_seeds():
    """Same generative model for every pair, half of them GABAergic by genotype: the real estimator
    on each pair, the study's row builder and comparison planner, the exact pair-level test.
    Under the null the exact 4-vs-4 test rejects with probability 2/70; P(>= 5 of 40) < 0.01."""
    false = 0
    for s in range(40):
        rows = []
        for i in range(8):
            ct = "GABAergic" if i < 4 else "glutamatergic"
            X, _ = simulate_pair(10_000 + 100 * s + i, n_shared=2, T=500, n=10)
            animals = {a: {"genotype": GENOTYPE[ct]} for a in ("A", "B")}
            rows += pair_rows(_subspace_tree(X), animals, PairEntry(f"p{i}", Path("."), {}, "test"))
        table = pd.DataFrame(rows)
        pl = next(p for p in plan_comparisons(table) if p.name == "gaba_vs_glu__shared_fraction")
        c = compare(pl.table, "value", pl.factor, pl.levels, unit=pl.unit, n_boot=50, mixedlm=False)
        assert c.n_units == (4, 4) and c.n_pairs == 8
        false += c.p_permutation <= 0.05
    assert false <= 4, false


# ----------------------------------------------------------------------------- slow: the full pipeline

@pytest.mark.slow
def test_study_over_full_pipeline_runs(tmp_path):
    from pipeline.core import orchestrate
    from pipeline import stages as pipeline_stages
    from pipeline.core.session import Session
    from pipeline.simulator import simulate_session
    pairs = []
    for i in range(2):
        sess = simulate_session(tmp_path / f"s{i}", seed=i, preset="small")
        s = Session.load(sess)
        pipeline_stages.run(s, show_progress=False)
        pairs.append({"session": str(sess), "name": f"sim{i}", "condition": "social" if i else "separated"})
    path = write_study(tmp_path, pairs, n_surrogates=50, n_matched=1, n_boot=200)
    res = run_study(load_study(path))
    t = res.table
    assert t.pair.nunique() == 2 and t.animal.nunique() == 4
    assert t.loc[t.measure == "shared_fraction", "value"].notna().all()
    assert (res.pseudo.kind == "pseudo").sum() == 2
    assert (res.out / "table.csv").is_file() and (res.out / "comparisons.csv").is_file()
