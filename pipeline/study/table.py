"""Study level: many pairs, one tidy table, pair-level comparisons (METHODS.md section 8).

`interbrain study STUDY.toml [--out DIR]` reads the result folders of many
pairs (or their session files), and writes under the study output folder:

- `table.csv` (+ `table.parquet` when pyarrow is installed) and `table.nc`
  (the same rows as an xarray Dataset, dim `row`): one row per
  pair x animal x cell type x measure (x behaviour x role for encoding), with
  the pair's metadata (condition, cohort, day, free keys), the animal's
  genotype and genotype-derived cell type, the value, its null, and a
  `missing` reason where the result is absent;
- `pseudo_pairs.csv`: A of one pair with B of every other pair, trimmed to a
  common length and neuron count, fitted with the same estimator as the real
  pairs (`pipeline.analysis.subspace.SharedSubspace`);
- `comparisons.csv`: GABAergic vs glutamatergic, social vs separated, real vs
  pseudo-pairs, with the pair or animal as the unit (pipeline.study.stats);
- `figures/<comparison>.png`, `study.json` (inputs, parameters, warnings).

See docs/study.md for the units, columns and figures.
"""
from __future__ import annotations

import json
import os
import tempfile
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.core import dataset
from pipeline.core.parameters import SPEC, ConfigError
from pipeline.study.stats import Comparison, compare, compare_paired, unit_means
from pipeline.core.animals import ANIMALS
from pipeline.core.rng import as_rng

PAIR_KEYS = ("result", "session", "name")
BASE_META = ("condition", "cohort", "day")
STAGES = ("celltypes", "align", "subspace", "encoding", "decoding")
GABA, GLU = "GABAergic", "glutamatergic"


class StudyWarning(UserWarning):
    """A pair or value left out of a study model (the reason is in the message and the table)."""


# ----------------------------------------------------------------------------- STUDY.toml

@dataclass
class PairEntry:
    name: str
    result: Path
    meta: dict
    where: str          # "STUDY.toml [[pairs]] #3", for messages


@dataclass
class Study:
    path: Path
    name: str
    output_dir: Path
    pairs: list[PairEntry]
    params: dict = field(default_factory=dict)


def load_study(path: str | Path) -> Study:
    """Read and validate STUDY.toml. Relative paths are relative to the file.

    [study]: validated by the spec's `study` Section (pipeline/core/parameters/study.py;
    docs/parameters.md). [[pairs]]: `result` (a result folder) or `session` (a session
    TOML; its output_dir is used), optional `name`, and metadata: condition, cohort, day, free keys.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"{path}: study file not found")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"study", "pairs"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; a study file has [study] and [[pairs]]")
    st = doc.get("study")
    if not isinstance(st, dict):
        raise ConfigError(f"{path}: missing [study] table (with at least name = '...')")
    st = SPEC["study"].validate(st, f"{path} [study]")
    if not st["name"].strip():
        raise ConfigError(f"{path} [study]: 'name' must be a non-empty string")
    if len(st["conditions"]) != 2:
        raise ConfigError(f"{path} [study]: 'conditions' must be two condition names, got {st['conditions']!r}")
    params = {k: v for k, v in st.items() if k not in ("name", "output_dir")}
    out = Path(st["output_dir"] or f"study_{st['name']}")
    out = out if out.is_absolute() else (path.parent / out).resolve()

    raw = doc.get("pairs")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path}: no [[pairs]]; list each pair's result folder as [[pairs]] result = 'DIR'")
    pairs, seen_dir, seen_name = [], {}, {}
    for i, p in enumerate(raw):
        entry = _pair_entry(p, f"{path} [[pairs]] #{i + 1}", path.parent)
        res, name, where = entry.result, entry.name, entry.where
        if res in seen_dir:
            raise ConfigError(f"{where}: result folder {res} is listed twice (also {seen_dir[res]})")
        if name in seen_name:
            raise ConfigError(f"{where}: pair name {name!r} is used twice (also {seen_name[name]}); "
                              "give each pair a distinct name = '...'")
        seen_dir[res], seen_name[name] = where, where
        pairs.append(entry)
    return Study(path, st["name"], out, pairs, params)


def _pair_entry(p, where: str, root: Path) -> PairEntry:
    """One [[pairs]] table (`where` names it in messages): its result folder, found directly or through
    a session file (paths relative to `root`), the pair name and the metadata."""
    if not isinstance(p, dict):
        raise ConfigError(f"{where}: expected a table")
    if ("result" in p) == ("session" in p):
        raise ConfigError(f"{where}: give exactly one of result = 'RESULT_DIR' or session = 'SESSION.toml'")
    for k, v in p.items():
        if k not in ("result", "session") and not isinstance(v, (str, int, float, bool)):
            raise ConfigError(f"{where} {k}: metadata must be a string, number or boolean, got {v!r}")
    if "result" in p:
        res = Path(p["result"])
        res = res if res.is_absolute() else (root / res).resolve()
        if not res.is_dir():
            raise ConfigError(f"{where} result: folder {res} not found")
    else:
        from pipeline.core.session import Session
        sp = Path(p["session"])
        sp = sp if sp.is_absolute() else (root / sp).resolve()
        try:
            res = Session.load(sp, check_files=False).output_dir
        except ConfigError as exc:
            raise ConfigError(f"{where} session: {exc}") from None
        if not res.is_dir():
            raise ConfigError(f"{where} session: its output_dir {res} does not exist; run `interbrain run {sp}`")
    try:
        root_attrs = dataset.read_root(res)
    except dataset.NotAResultError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    name = str(p.get("name") or root_attrs.get("pair") or res.name)
    meta = {k: v for k, v in p.items() if k not in PAIR_KEYS}
    return PairEntry(name, res, meta, where)


# ----------------------------------------------------------------------------- per-pair rows

def _group(tree: xr.DataTree, path: str) -> xr.Dataset | None:
    try:
        node = tree[path]
    except KeyError:
        return None
    ds = node.to_dataset()
    return ds if (ds.variables or ds.attrs) else None


def stage_status(result: Path, name: str) -> str:
    """'' when the stage committed a result, else the reason (for the table's `missing` column)."""
    d = Path(result) / "stages" / name
    if not (d / "result.nc").is_file():
        try:
            rec = json.loads((d / "done.json").read_text())
            return f"stage {name}: {rec.get('status', 'no result')}"
        except (OSError, json.JSONDecodeError):
            return f"stage {name}: no committed result (failed or not run)"
    return ""


def genotype_type(animal: dict) -> str:
    """GABAergic / glutamatergic from the animal's genotype (and indicator); 'none' if they give no label."""
    from neuroid.genotypes import animal_label
    try:
        lab = animal_label(animal.get("genotype", "") or "", animal.get("indicator", "") or "")[0]
    except ValueError:
        return "none"
    return lab or "none"


def pair_rows(tree: xr.DataTree, animals: dict, entry: PairEntry, status: dict[str, str] | None = None) -> list[dict]:
    """Tidy rows of one pair's result tree.

    animals: the result's interbrain.json `animals` ({A: {genotype, ...}, B: ...}).
    status: {stage: reason} for stages without a result (see `stage_status`); absent groups
    without a reason get 'group /... absent'.
    """
    status = status or {}
    rows = []
    top = _group(tree, "/subspace")
    cm = _group(tree, "/subspace/by_cell_type")
    for a in ANIMALS:
        base = _base_row(entry, a, animals.get(a, {}))
        add = _row_adder(rows, base)
        _celltype_rows(add, _group(tree, f"/{a}/celltypes"))
        _subspace_rows(add, a, top, _group(tree, f"/subspace/{a}"), cm, status.get("subspace"))
        _encoding_rows(add, _group(tree, f"/encoding/{a}"), status.get("encoding"))
        rows += _decoding_rows(_group(tree, "/decoding"), a, base, status.get("decoding"))
    return rows


def _base_row(entry: PairEntry, a: str, info: dict) -> dict:
    """The columns every row of animal `a` shares: pair, animal, metadata, genotype."""
    return {"pair": entry.name, "animal": f"{entry.name}/{a}", "side": a,
            **{k: entry.meta.get(k, "") for k in BASE_META},
            **{k: v for k, v in entry.meta.items() if k not in BASE_META},
            "animal_id": str(info.get("id", "")), "genotype": str(info.get("genotype", "")),
            "genotype_type": genotype_type(info)}


def _row_adder(rows: list, base: dict):
    """add(measure, value, ...): append one row of `base`'s animal to `rows` (keywords override columns)."""
    def add(measure, value, cell_type="all", null=np.nan, missing="", **kw):
        rows.append({**base, "cell_type": cell_type, "measure": measure, "behavior": "", "role": "",
                     "value": float(value), "null": float(null), "p_null": np.nan, "n_neurons": np.nan,
                     "n_time": np.nan, "missing": missing, **kw})
    return add


def _celltype_rows(add, ct: xr.Dataset | None) -> None:
    """n_cells per cell type (ROIs marked is_cell only)."""
    if ct is not None and "cell_type" in ct:
        keep = ct["is_cell"].values.astype(bool) if "is_cell" in ct else np.ones(ct.sizes["neuron"], bool)
        for t, n in pd.Series(ct["cell_type"].values.astype(str)[keep]).value_counts().sort_index().items():
            add("n_cells", n, cell_type=t)


def _subspace_rows(add, a: str, top: xr.Dataset | None, sa: xr.Dataset | None, cm: xr.Dataset | None,
                   why: str | None) -> None:
    """K, shared_fraction, cv_r1 and the count-matched per-type K / shared fraction of animal `a`;
    missing rows (reason `why`) without a subspace result."""
    if top is None or sa is None:
        why = why or "group /subspace absent"
        for m in ("K", "shared_fraction"):
            add(m, np.nan, missing=why)
        return
    n_n = int((~sa["excluded"].values.astype(bool)).sum()) if "excluded" in sa else np.nan
    kw = dict(n_neurons=n_n, n_time=top.attrs.get("n_time", np.nan))
    add("K", top.attrs.get("K", np.nan), **kw)
    add("shared_fraction", sa["shared_variance_fraction"].item(), **kw)
    if "cv_r" in top:
        add("cv_r1", top["cv_r"].values[0] if top["cv_r"].size else np.nan, **kw)
    if cm is not None:
        # one entry per (animal, cell type, repeat) on dim `sample`; the (cell_type, draw)
        # arrays pool both animals, so they cannot be split by animal
        sel = cm["animal"].values.astype(str) == a
        tys = cm["population"].values.astype(str)
        for t in sorted(set(tys[sel].tolist())):
            s = sel & (tys == t)
            kw2 = dict(n_neurons=cm.attrs.get("n_neurons", np.nan), n_time=cm.attrs.get("n_time", np.nan))
            add("K_type_matched", cm["n_shared_sample"].values[s].mean(), cell_type=t, **kw2)
            add("shared_fraction_type_matched", cm["shared_fraction_sample"].values[s].mean(),
                cell_type=t, **kw2)


def _encoding_rows(add, enc: xr.Dataset | None, why: str | None) -> None:
    """Fractions of activated / suppressed neurons per behaviour x role (all neurons, then per cell-type
    group) with their nulls; missing rows (reason `why`) without an encoding result."""
    if enc is None:
        why = why or "group /encoding absent"
        for m in ("enc_activated", "enc_suppressed"):
            add(m, np.nan, missing=why)
        return
    behs = enc["behavior"].values.astype(str)
    roles = enc["role"].values.astype(str)
    for kind in ("activated", "suppressed"):
        allv = enc[f"fraction_{kind}_all"].transpose("behavior", "role").values
        alln = enc[f"null_fraction_{kind}_all"].transpose("behavior", "role").values
        for bi, b in enumerate(behs):
            for ri, r in enumerate(roles):
                add(f"enc_{kind}", allv[bi, ri], null=alln[bi, ri], behavior=b, role=r)
        if f"fraction_{kind}" in enc:
            v = enc[f"fraction_{kind}"].transpose("cell_type_group", "behavior", "role").values
            nv = enc[f"null_fraction_{kind}"].transpose("cell_type_group", "behavior", "role").values
            for ti, t in enumerate(enc["cell_type_group"].values.astype(str)):
                nn = enc["n_neurons_type"].values[ti] if "n_neurons_type" in enc else np.nan
                for bi, b in enumerate(behs):
                    for ri, r in enumerate(roles):
                        add(f"enc_{kind}", v[ti, bi, ri], cell_type=t, null=nv[ti, bi, ri], n_neurons=nn,
                            behavior=b, role=r)


def _decoding_rows(dec: xr.Dataset | None, a: str, base: dict, why: str | None) -> list[dict]:
    """Peak accuracy / AUC over time bins (with the null's mean at that bin) and the smallest cluster p.

    Reads every variable of /decoding named accuracy* / auc* (not *null*) that has an `animal`
    dim; dims other than animal and the time-bin dim become the `behavior` label (variable,
    condition). Cluster p-values: variables containing 'cluster' and ending in 'p'.
    """
    def row(measure, value, null=np.nan, behavior="", missing=""):
        return {**base, "cell_type": "all", "measure": measure, "behavior": behavior, "role": "",
                "value": float(value), "null": float(null), "p_null": np.nan, "n_neurons": np.nan,
                "n_time": np.nan, "missing": missing}
    if dec is None:
        return [row("dec_accuracy_peak", np.nan, missing=why or "group /decoding absent")]
    out = []
    for name, da in dec.data_vars.items():
        low = name.lower()
        if "animal" not in da.dims or "null" in low:
            continue
        if "animal" in dec.coords and a not in dec["animal"].values.astype(str):
            continue
        da = da.sel(animal=a) if "animal" in dec.coords else da.isel(animal=ANIMALS.index(a))
        tdim = next((d for d in da.dims if "time" in d), None)
        other = [d for d in da.dims if d != tdim]
        if (low.startswith("accuracy") or low.startswith("auc")) and tdim and np.issubdtype(da.dtype, np.number):
            # the decoding stage's null mean per bin is `null_mean` (for accuracy); `null_accuracy` holds
            # every surrogate curve and is not a per-bin summary
            names = (f"{name}_null_mean", "null_mean" if low.startswith("accuracy") else "", f"{name}_null")
            null = next((dec[n] for n in names if n and n in dec and "surrogate" not in dec[n].dims), None)
            stacked = da.stack(_k=other) if other else da.expand_dims(_k=[0])
            for k in range(stacked.sizes["_k"]):
                s = stacked.isel(_k=k)
                lab = "/".join(str(s[d].item()) for d in other if d in s.coords) if other else ""
                vals = s.values.astype(float)
                if not np.isfinite(vals).any():
                    out.append(row(f"dec_{low.split('_')[0]}_peak", np.nan, behavior=lab, missing="not enough bouts"))
                    continue
                i = int(np.nanargmax(vals))
                nv = np.nan
                if null is not None and "animal" in null.dims:
                    nsel = null.sel(animal=a) if "animal" in null.coords else null.isel(animal=ANIMALS.index(a))
                    nsel = nsel.isel({tdim: i}) if tdim in nsel.dims else nsel
                    for d in other:
                        if d in nsel.dims and d in s.coords:
                            nsel = nsel.sel({d: s[d].item()})
                    nv = float(np.nanmean(nsel.values))
                out.append(row(f"dec_{low.split('_')[0]}_peak", vals[i], null=nv, behavior=lab))
        elif "cluster" in low and low.endswith("p") and np.issubdtype(da.dtype, np.number):
            out.append(row("dec_cluster_min_p", np.nanmin(da.values) if np.isfinite(da.values).any() else np.nan))
    return out


# ----------------------------------------------------------------------------- activity, matched fits, pseudo-pairs

def pair_activity(tree: xr.DataTree) -> dict | None:
    """{'A': (T, N_A), 'B': (T, N_B), 'lag': frames, 'percentile', 'bin_s'} prepared as the subspace stage
    does (NaN bins dropped, detrend applied); None when /A/activity or /B/activity is absent."""
    from pipeline.analysis.activity import bin_width
    from pipeline.analysis.subspace import detrend
    acts = {}
    for a in ANIMALS:
        g = _group(tree, f"/{a}/activity")
        if g is None or "activity" not in g:
            return None
        acts[a] = g["activity"].transpose("time", "neuron")
    dt = bin_width(acts["A"]["time"].values)
    X = {a: np.asarray(acts[a].values, float) for a in ANIMALS}
    good = np.isfinite(X["A"]).all(1) & np.isfinite(X["B"]).all(1)
    X = {a: X[a][good] for a in ANIMALS}
    top = _group(tree, "/subspace")
    at = top.attrs if top is not None else {}
    det = float(at.get("detrend_s", 0.0))
    if det > 0:
        X = {a: detrend(X[a], int(round(det / dt))) for a in ANIMALS}
    lag = int(at["lag"]) if "lag" in at else int(round(4.0 / dt))   # spec default lag_s = 4 s
    return {**X, "lag": lag, "percentile": float(at.get("percentile", 97.5)), "bin_s": dt}


def matched_fits(acts: dict[str, dict], n_surrogates: int = 200, n_matched: int = 3, pseudo: bool = True,
                 random_state: int = 0) -> tuple[pd.DataFrame, int, int]:
    """Count- and T-matched PLSC of every real pair and every pseudo-pair (A_i, B_j), i != j.

    acts: {pair: pair_activity(...)}. Every fit uses the study's smallest neuron count N
    (random subsample without replacement, per animal) and the first T bins (the shortest
    pair), with `SharedSubspace(n_surrogates, lag of the A pair, percentile, null='adaptive')`.
    Real pairs: `n_matched` subsamples, averaged; pseudo-pairs: one subsample each.
    Returns (rows: kind real/pseudo, pair_A, pair_B, repeat, K, fraction_A, fraction_B; N; T).
    """
    from pipeline.analysis.subspace import SharedSubspace
    rng = as_rng(random_state)
    names = list(acts)
    T = min(acts[p]["A"].shape[0] for p in names)
    N = min(min(acts[p][a].shape[1] for a in ANIMALS) for p in names)
    rows = []

    def fit(kind, i, j, rep):
        XA, XB = acts[i]["A"], acts[j]["B"]
        pa = rng.choice(XA.shape[1], N, replace=False)
        pb = rng.choice(XB.shape[1], N, replace=False)
        est = SharedSubspace(n_surrogates=n_surrogates, lag=acts[i]["lag"], percentile=acts[i]["percentile"],
                             null="adaptive", random_state=rng).fit(XA[:T, pa], XB[:T, pb])
        f = est.shared_variance_fraction_
        rows.append({"kind": kind, "pair_A": i, "pair_B": j, "repeat": rep, "K": est.n_shared_,
                     "fraction_A": f["A"], "fraction_B": f["B"], "n_neurons": N, "n_time": T})
    for i in names:
        for rep in range(n_matched):
            fit("real", i, i, rep)
    if pseudo:
        for i in names:
            for j in names:
                if i != j:
                    fit("pseudo", i, j, 0)
    return pd.DataFrame(rows), N, T


def matched_rows(fits: pd.DataFrame, table: pd.DataFrame) -> list[dict]:
    """Rows K_study_matched / shared_fraction_study_matched per animal, with the pseudo-pair mean as
    `null` and p_null = (1 + #pseudo >= real) / (n_pseudo + 1); plus pseudo_K / pseudo_shared_fraction."""
    out = []
    base = table.drop_duplicates("animal").set_index("animal")
    meta_cols = [c for c in table.columns if c not in ("cell_type", "measure", "behavior", "role", "value",
                                                       "null", "p_null", "n_neurons", "n_time", "missing")]
    real, pseudo = fits[fits.kind == "real"], fits[fits.kind == "pseudo"]
    for animal in base.index:
        pair, side = animal.rsplit("/", 1)
        r = real[real.pair_A == pair]
        ps = pseudo[pseudo.pair_A == pair] if side == "A" else pseudo[pseudo.pair_B == pair]
        fcol = f"fraction_{side}"
        meta = {c: base.loc[animal, c] for c in meta_cols if c != "animal"}
        common = dict(cell_type="all", behavior="", role="", n_neurons=float(fits.n_neurons.iloc[0]),
                      n_time=float(fits.n_time.iloc[0]),
                      missing="" if len(r) else "no /A/activity or /B/activity (stage align)")
        for m, col in (("K", "K"), ("shared_fraction", fcol)):
            rv = float(r[col].mean()) if len(r) else np.nan
            pv = ps[col].to_numpy(float)
            p = (1 + np.sum(pv >= rv)) / (len(pv) + 1) if len(pv) and np.isfinite(rv) else np.nan
            out.append({**meta, "animal": animal, **common, "measure": f"{m}_study_matched", "value": rv,
                        "null": float(pv.mean()) if len(pv) else np.nan, "p_null": p})
            if len(pseudo):
                out.append({**meta, "animal": animal, **common, "measure": f"pseudo_{m}",
                            "value": float(pv.mean()) if len(pv) else np.nan, "null": np.nan, "p_null": np.nan,
                            "missing": "" if len(pv) else "no pseudo-pair (no activity)"})
    return out


# ----------------------------------------------------------------------------- comparisons

@dataclass
class Planned:
    name: str
    table: pd.DataFrame      # columns pair, animal, <factor>, value
    factor: str
    levels: tuple[str, str]
    unit: str
    paired: bool
    excluded: str = ""


def _select(table, measure, cell_type="all", role=None):
    t = table[(table.measure == measure) & (table.cell_type == cell_type)]
    if role is not None:   # a missing result has no role: keep it so its exclusion is reported
        t = t[(t.role == role) | (t.missing.astype(str) != "")]
    return t


def _excluded(t: pd.DataFrame, name: str) -> str:
    """Pairs whose value is missing: warned about, never dropped silently."""
    bad = t[t.value.isna()]
    if bad.empty:
        return ""
    why = bad.groupby("pair")["missing"].first()
    msg = "; ".join(f"{p}: {w or 'value is NaN'}" for p, w in why.items())
    warnings.warn(f"study comparison {name}: {len(why)} pair(s) excluded ({msg})", StudyWarning, stacklevel=3)
    return msg


def plan_comparisons(table: pd.DataFrame, conditions=("social", "separated")) -> list[Planned]:
    """The comparisons the data allow (see docs/study.md for the unit of each)."""
    plans = []
    gt = table.drop_duplicates("animal").set_index("animal")["genotype_type"]
    if {GABA, GLU} <= set(gt.values):
        # labels from genotype label whole animals: a between-animal (or between-pair) comparison
        per_pair = table.drop_duplicates("animal").groupby("pair")["genotype_type"].nunique()
        unit = "pair" if (per_pair == 1).all() else "animal"
        for m in ("shared_fraction", "K", "shared_fraction_study_matched"):
            t = _select(table, m)
            if len(t):
                plans.append(Planned(f"gaba_vs_glu__{m}", t, "genotype_type", (GABA, GLU), unit, False,
                                     _excluded(t, f"gaba_vs_glu__{m}")))
    t = _select(table, "shared_fraction_type_matched", GABA)
    t = pd.concat([t, _select(table, "shared_fraction_type_matched", GLU)])
    if len(t) and t.groupby("animal")["cell_type"].nunique().max() == 2:
        # labels within each animal (structural channel): both populations of one animal, paired
        plans.append(Planned("gaba_vs_glu_within_animal__shared_fraction_type_matched", t, "cell_type",
                             (GABA, GLU), "animal", True, _excluded(t, "gaba_vs_glu_within_animal")))
    conds = tuple(conditions)
    if set(conds) <= set(table["condition"].astype(str)):
        for m, role in (("shared_fraction", None), ("K", None), ("enc_activated", "partner"),
                        ("enc_suppressed", "partner")):
            t = _select(table, m, role=role)
            t = t[t.condition.astype(str).isin(conds)]
            if len(t) and t.value.notna().any():
                nm = f"{conds[0]}_vs_{conds[1]}__{m}" + (f"_{role}" if role else "")
                plans.append(Planned(nm, t, "condition", conds, "pair", False, _excluded(t, nm)))
    for m in ("shared_fraction", "K"):
        r = _select(table, f"{m}_study_matched")
        ps = _select(table, f"pseudo_{m}")
        if len(r) and len(ps) and ps.value.notna().any():
            t = pd.concat([r.assign(kind="real"), ps.assign(kind="pseudo")])
            plans.append(Planned(f"real_vs_pseudo__{m}", t, "kind", ("real", "pseudo"), "pair", True,
                                 _excluded(t, f"real_vs_pseudo__{m}")))
    return plans


def run_comparisons(table: pd.DataFrame, conditions=("social", "separated"), n_perm: int = 10000,
                    n_boot: int = 2000, random_state: int = 0) -> tuple[pd.DataFrame, list]:
    """Plan and run every comparison. Returns (comparisons table, [(Planned, Comparison)])."""
    done, rows = [], []
    for pl in plan_comparisons(table, conditions):
        f = compare_paired if pl.paired else compare
        c = f(pl.table, "value", pl.factor, pl.levels, unit=pl.unit, n_perm=n_perm, n_boot=n_boot,
              random_state=random_state)
        done.append((pl, c))
        rows.append({"comparison": pl.name, "design": "paired (sign-flip)" if pl.paired else "between (permutation)",
                     **c.as_row(), "excluded": pl.excluded})
        rows[-1]["value"] = pl.name.split("__")[-1]   # the measure compared (study_stats saw it as 'value')
    return pd.DataFrame(rows), done


# ----------------------------------------------------------------------------- figures

def plot_comparison(pl: Planned, c: Comparison, path: Path, n_boot: int = 2000, random_state: int = 0) -> None:
    """Per-unit points (paired units joined by lines), each group's mean with a 95% bootstrap interval."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rng = as_rng(random_state)
    um = unit_means(pl.table, "value", pl.factor, pl.unit)
    fig, ax = plt.subplots(figsize=(3.6, 3.4), dpi=100)
    pts = {}
    for i, lv in enumerate(pl.levels):
        g = um[um[pl.factor] == lv].set_index(pl.unit)["value"]
        x = i + rng.uniform(-0.08, 0.08, len(g))
        pts[lv] = dict(zip(g.index, zip(x, g.values)))
        ax.plot(x, g.values, "o", color=f"C{i}", alpha=0.7, ms=5)
        if len(g):
            b = [rng.choice(g.values, len(g)).mean() for _ in range(n_boot)]
            lo, hi = np.percentile(b, [2.5, 97.5])
            ax.errorbar(i + 0.25, g.mean(), yerr=[[g.mean() - lo], [hi - g.mean()]], fmt="s", color="k", capsize=4)
    if pl.paired:
        for u, (x0, y0) in pts[pl.levels[0]].items():
            if u in pts[pl.levels[1]]:
                x1, y1 = pts[pl.levels[1]][u]
                ax.plot([x0, x1], [y0, y1], "-", color="0.7", lw=0.8, zorder=0)
    ax.set_xticks([0, 1], [f"{lv}\n(n={n})" for lv, n in zip(pl.levels, c.n_units)])
    ax.set_xlim(-0.5, 1.6)
    ax.set_ylabel(pl.name.split("__")[-1])
    ax.set_title(f"{pl.name.split('__')[0]} ({pl.unit}s)\nΔ={c.effect:.3g} [{c.ci[0]:.3g}, {c.ci[1]:.3g}], "
                 f"p={c.p_permutation:.3g}\n{c.n_pairs} pairs, {c.n_animals} animals", fontsize=8)
    fig.tight_layout()
    _atomic(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)


# ----------------------------------------------------------------------------- run

def _atomic(path: Path, writer) -> None:
    """writer(tmp_path) then rename onto `path`: a killed study leaves no half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def table_to_xarray(table: pd.DataFrame) -> xr.Dataset:
    """The tidy table as a Dataset with dim `row` (strings as str, numbers as float)."""
    data = {}
    for c in table.columns:
        col = table[c]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            data[c] = ("row", col.to_numpy(float))
        else:
            data[c] = ("row", col.astype(str).to_numpy(dtype=str))
    return xr.Dataset(data, coords={"row": np.arange(len(table))},
                      attrs={"description": "interbrain study table: one row per pair x animal x cell type x "
                                            "measure (x behaviour x role); see docs/study.md"})


@dataclass
class StudyResult:
    out: Path
    table: pd.DataFrame
    pseudo: pd.DataFrame
    comparisons: pd.DataFrame
    warnings: list[str]


def collect(study: Study) -> tuple[pd.DataFrame, dict, list[str]]:
    """(tidy table, {pair: activity}, warnings) from every pair's result folder."""
    rows, acts, notes = [], {}, []
    for e in study.pairs:
        root = dataset.read_root(e.result)
        status = {s: stage_status(e.result, s) for s in STAGES}
        tree = dataset.load(e.result, stages=[s for s in STAGES if not status[s]])
        rows += pair_rows(tree, root.get("animals", {}), e, status)
        act = pair_activity(tree)
        if act is None:
            notes.append(f"pair {e.name}: no /A/activity or /B/activity ({status['align'] or 'group absent'}); "
                         "left out of the matched fits and pseudo-pairs")
        else:
            acts[e.name] = act
    table = pd.DataFrame(rows)
    return table, acts, notes


def run_study(study: Study, out: str | Path | None = None) -> StudyResult:
    """Build the table, the matched and pseudo-pair fits, the comparisons and the figures."""
    out = Path(out) if out else study.output_dir
    out.mkdir(parents=True, exist_ok=True)
    p = study.params
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StudyWarning)
        table, acts, notes = collect(study)
        for n in notes:
            warnings.warn(n, StudyWarning)
        fits = pd.DataFrame()
        if len(acts) >= 1:
            bins = {round(a["bin_s"], 6) for a in acts.values()}
            if len(bins) > 1:
                warnings.warn(f"pairs have different bin widths {sorted(bins)} s: matched fits and pseudo-pairs "
                              "compare equal numbers of bins, not equal durations", StudyWarning)
            fits, N, T = matched_fits(acts, p["n_surrogates"], p["n_matched"], p["pseudo_pairs"] and len(acts) > 1,
                                      p["random_state"])
            table = pd.concat([table, pd.DataFrame(matched_rows(fits, table))], ignore_index=True)
        cmp_table, done = run_comparisons(table, p["conditions"], p["n_perm"], p["n_boot"], p["random_state"])
    mine = [w for w in caught if issubclass(w.category, StudyWarning)]
    msgs = [str(w.message) for w in mine]
    for w in mine:   # re-emit so callers (and pytest) see them
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    _atomic(out / "table.csv", lambda t: table.to_csv(t, index=False))
    try:
        import pyarrow  # noqa: F401
        _atomic(out / "table.parquet", lambda t: table.to_parquet(t, index=False))
    except ImportError:
        pass
    _atomic(out / "table.nc", lambda t: table_to_xarray(table).to_netcdf(t, engine=dataset.ENGINE))
    _atomic(out / "pseudo_pairs.csv", lambda t: fits.to_csv(t, index=False))
    _atomic(out / "comparisons.csv", lambda t: cmp_table.to_csv(t, index=False))
    for pl, c in done:
        plot_comparison(pl, c, out / "figures" / f"{pl.name}.png", n_boot=min(p["n_boot"], 1000),
                        random_state=p["random_state"])
    dataset.atomic_write_text(out / "study.json", json.dumps({
        "study": study.name, "file": str(study.path), "params": p,
        "pairs": [{"name": e.name, "result": str(e.result), **e.meta} for e in study.pairs],
        "n_pairs": len(study.pairs), "n_animals": 2 * len(study.pairs), "warnings": msgs}, indent=1, default=str))
    return StudyResult(out, table, fits, cmp_table, msgs)


# ----------------------------------------------------------------------------- CLI

def _cmd_study(args) -> int:
    st = load_study(args.study)
    res = run_study(st, args.out)
    cols = ["comparison", "unit", "n_units_0", "n_units_1", "effect", "ci_0", "ci_1", "p_permutation"]
    if len(res.comparisons):
        with pd.option_context("display.width", 160, "display.max_colwidth", 60):
            print(res.comparisons[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    else:
        print("no comparison possible (see docs/study.md for what each needs)")
    for w in res.warnings:
        print(f"warning: {w}")
    print(f"study: {res.out} ({len(st.pairs)} pairs, {res.table.animal.nunique()} animals)")
    return 0


def add_study_parser(subparsers) -> None:
    """Add `interbrain study STUDY.toml [--out DIR]` to the CLI's subparsers."""
    q = subparsers.add_parser("study", help="pair-level statistics over many result folders (STUDY.toml)")
    q.add_argument("study", help="study file: [study] name, output_dir; [[pairs]] result or session + metadata")
    q.add_argument("--out", default=None, help="study output folder (default: [study] output_dir)")
    q.set_defaults(func=_cmd_study)
