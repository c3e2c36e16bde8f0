"""Pair-level statistics for a study (METHODS.md section 8).

The unit of replication is the pair (and the animal nested in it), never the
neuron. `compare(table, value, factor)` aggregates to one number per unit,
then tests the factor by an exact/Monte-Carlo permutation across units
(`scipy.stats.permutation_test`), and, when units repeat within pairs, a
mixed-effects model (statsmodels MixedLM, pair as a random intercept). Effect
sizes come with percentile bootstrap intervals over units (`scipy.stats.bootstrap`),
and every result carries the number of pairs and animals behind it.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.core.rng import as_rng


@dataclass
class Comparison:
    value: str
    factor: str
    levels: tuple[str, str]
    unit: str
    n_units: tuple[int, int]
    n_pairs: int
    n_animals: int
    mean: tuple[float, float]
    effect: float               # mean(level 0) - mean(level 1), on unit means
    ci: tuple[float, float]     # 95% bootstrap interval of the effect over units
    hedges_g: float
    p_permutation: float
    p_mixedlm: float | None
    note: str = ""

    def as_row(self) -> dict:
        d = asdict(self)
        for k in ("levels", "n_units", "mean", "ci"):
            a, b = d.pop(k)
            d[f"{k}_0"], d[f"{k}_1"] = a, b
        return d


def unit_means(table: pd.DataFrame, value: str, factor: str, unit: str) -> pd.DataFrame:
    """One row per (unit, factor level): the mean of `value` (NaN rows dropped)."""
    t = table.dropna(subset=[value])
    keys = [unit, factor] + (["pair"] if unit != "pair" and "pair" in t.columns else [])
    return t.groupby(keys, as_index=False)[value].mean()


def _abs_mean_difference(x, y, axis=-1):
    return np.abs(np.mean(x, axis=axis) - np.mean(y, axis=axis))


def _abs_mean(d, axis=-1):
    return np.abs(np.mean(d, axis=axis))


def _mean_difference(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _mean(d, axis=-1):
    return np.mean(d, axis=axis)


def _perm_p(x: np.ndarray, y: np.ndarray, n_perm: int, rng: np.random.Generator) -> float:
    """Two-sided permutation p of the difference of means: P(|null| >= |observed|).

    Exact (every relabeling, p = count / C(n, k)) when C(n, k) <= n_perm, else n_perm random
    relabelings with p = (count + 1) / (n_perm + 1).
    """
    res = stats.permutation_test((x, y), _abs_mean_difference, permutation_type="independent",
                                 vectorized=True, n_resamples=n_perm, alternative="greater", rng=rng)
    return float(res.pvalue)


def _bootstrap_ci(samples: tuple, statistic, n_boot: int, rng: np.random.Generator) -> tuple[float, float]:
    """95 % percentile bootstrap interval of `statistic` over units (each sample resampled on its own);
    NaN when a sample has fewer than 2 units (nothing to resample)."""
    if any(len(s) < 2 for s in samples):
        return float("nan"), float("nan")
    res = stats.bootstrap(samples, statistic, n_resamples=n_boot, vectorized=True, method="percentile",
                          confidence_level=0.95, rng=rng)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _hedges_g(x, y) -> float:
    nx, ny = len(x), len(y)
    if nx < 2 or ny < 2:
        return float("nan")
    s = np.sqrt(((nx - 1) * x.var(ddof=1) + (ny - 1) * y.var(ddof=1)) / (nx + ny - 2))
    d = (x.mean() - y.mean()) / s if s > 0 else float("nan")
    return float(d * (1 - 3 / (4 * (nx + ny) - 9)))


def _mixedlm_p(table: pd.DataFrame, value: str, factor: str, levels) -> float | None:
    """p of the factor in value ~ factor + (1 | pair) over animal means; None when it cannot be fit."""
    import statsmodels.formula.api as smf
    t = table.dropna(subset=[value])
    t = t[t[factor].isin(levels)].copy()
    if t["pair"].nunique() < 3 or t.groupby("pair").size().max() < 2:
        return None
    t["_x"] = (t[factor] == levels[0]).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = smf.mixedlm(f"Q('{value}') ~ _x", t, groups=t["pair"]).fit(reml=True)
            return float(fit.pvalues["_x"])
        except Exception:
            return None


def compare(table: pd.DataFrame, value: str, factor: str, levels: tuple[str, str] | None = None,
            unit: str = "pair", n_perm: int = 10000, n_boot: int = 2000, random_state: int = 0,
            mixedlm: bool = True) -> Comparison:
    """Compare `value` between two levels of `factor` with `unit` ('pair' or 'animal') as the replicate.

    table: tidy, one row per measurement, with columns `pair`, `animal` (unique within the study, e.g.
    'pair03/A'), `factor` and `value`. Rows are first averaged within unit x level.
    mixedlm=False skips the mixed model (p_mixedlm None), e.g. inside a calibration loop.
    """
    rng = as_rng(random_state)
    if levels is None:
        lv = sorted(table[factor].dropna().unique())
        if len(lv) != 2:
            raise ValueError(f"factor {factor!r} has levels {lv}; give exactly two with levels=")
        levels = (lv[0], lv[1])
    um = unit_means(table, value, factor, unit)
    x = um.loc[um[factor] == levels[0], value].to_numpy(float)
    y = um.loc[um[factor] == levels[1], value].to_numpy(float)
    note = ""
    if len(x) < 2 or len(y) < 2:
        note = f"too few {unit}s for a test ({len(x)} vs {len(y)})"
        p = float("nan")
    else:
        p = _perm_p(x, y, n_perm, rng)
    ci = _bootstrap_ci((x, y), _mean_difference, n_boot, rng)
    sub = table[table[factor].isin(levels)].dropna(subset=[value])
    return Comparison(
        value=value, factor=factor, levels=tuple(levels), unit=unit, n_units=(len(x), len(y)),
        n_pairs=int(sub["pair"].nunique()), n_animals=int(sub["animal"].nunique()) if "animal" in sub else 0,
        mean=(float(x.mean()) if len(x) else np.nan, float(y.mean()) if len(y) else np.nan),
        effect=float(x.mean() - y.mean()) if len(x) and len(y) else np.nan,
        ci=ci, hedges_g=_hedges_g(x, y), p_permutation=p, note=note,
        # animals (not neurons) are the rows of the mixed model; pair is the random intercept
        p_mixedlm=_mixedlm_p(unit_means(table, value, factor, "animal") if "animal" in table else table,
                             value, factor, levels) if mixedlm else None)


def neuron_level_p(table: pd.DataFrame, value: str, factor: str, levels: tuple[str, str]) -> float:
    """The pseudo-replicated test a study must not use: Mann-Whitney over neurons. Kept to show the contrast."""
    from scipy.stats import mannwhitneyu
    t = table.dropna(subset=[value])
    a = t.loc[t[factor] == levels[0], value]
    b = t.loc[t[factor] == levels[1], value]
    return float(mannwhitneyu(a, b).pvalue)


def _signflip_p(d: np.ndarray, n_perm: int, rng: np.random.Generator) -> float:
    """Two-sided sign-flip permutation p of mean(d) = 0: P(|null| >= |observed|).

    Exact (all 2^n sign patterns) when 2^n <= n_perm, else n_perm random flips with (count + 1) / (n_perm + 1).
    """
    res = stats.permutation_test((d,), _abs_mean, permutation_type="samples", vectorized=True,
                                 n_resamples=n_perm, alternative="greater", rng=rng)
    return float(res.pvalue)


def compare_paired(table: pd.DataFrame, value: str, factor: str, levels: tuple[str, str],
                   unit: str = "pair", n_perm: int = 10000, n_boot: int = 2000,
                   random_state: int = 0) -> Comparison:
    """Within-unit comparison: both levels are measured on the same unit (e.g. a pair and its
    pseudo-pairs, or the GABAergic and glutamatergic neurons of one animal).

    The unit's difference d = mean(level 0) - mean(level 1) is tested by a sign-flip permutation
    across units (exact when 2^n_units <= n_perm); the effect is mean(d) with a bootstrap interval
    over units and Hedges' g_z = mean(d)/sd(d) with the small-sample correction. Units with only
    one level are left out and counted in `note`. `p_mixedlm` is None (the paired test is the model).
    """
    rng = as_rng(random_state)
    um = unit_means(table, value, factor, unit)
    um = um[um[factor].isin(levels)]
    wide = um.pivot_table(index=unit, columns=factor, values=value, aggfunc="mean")
    for lv in levels:
        if lv not in wide.columns:
            wide[lv] = np.nan
    both = wide.dropna(subset=list(levels))
    d = (both[levels[0]] - both[levels[1]]).to_numpy(float)
    n = len(d)
    dropped = len(wide) - n
    note = f"{dropped} {unit}(s) with one level only left out" if dropped else ""
    if n < 2:
        note = (note + "; " if note else "") + f"too few {unit}s for a test ({n})"
        p = float("nan")
    else:
        p = _signflip_p(d, n_perm, rng)
    ci = _bootstrap_ci((d,), _mean, n_boot, rng)
    sd = d.std(ddof=1) if n > 1 else np.nan
    gz = float(d.mean() / sd * (1 - 3 / (4 * (n - 1) - 1))) if n > 2 and sd > 0 else float("nan")
    units = set(both.index)
    sub = table[table[unit].isin(units) & table[factor].isin(levels)].dropna(subset=[value])
    return Comparison(
        value=value, factor=factor, levels=tuple(levels), unit=unit, n_units=(n, n),
        n_pairs=int(sub["pair"].nunique()), n_animals=int(sub["animal"].nunique()) if "animal" in sub else 0,
        mean=(float(both[levels[0]].mean()) if n else np.nan, float(both[levels[1]].mean()) if n else np.nan),
        effect=float(d.mean()) if n else np.nan,
        ci=ci, hedges_g=gz, p_permutation=p, p_mixedlm=None, note=note)
