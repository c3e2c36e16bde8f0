"""Pair-level statistics: planted group differences found, null ones not, pseudo-replication guarded."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.study.stats import compare, compare_paired, neuron_level_p


def _study(seed: int, effect: float, n_pairs: int = 8, n_neurons: int = 40) -> pd.DataFrame:
    """Pairs 0-3 have GABAergic animals, 4-7 glutamatergic; each animal has its own offset (animal
    variability) and neurons scatter around it. Value: a shared-variance fraction per neuron."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_pairs):
        ct = "GABAergic" if p < n_pairs // 2 else "glutamatergic"
        pair_effect = rng.normal(0, 0.03)
        for a in ("A", "B"):
            animal_mean = 0.30 + (effect if ct == "GABAergic" else 0.0) + pair_effect + rng.normal(0, 0.02)
            for v in animal_mean + rng.normal(0, 0.05, n_neurons):
                rows.append({"pair": f"p{p}", "animal": f"p{p}/{a}", "cell_type": ct, "value": v})
    return pd.DataFrame(rows)


def test_planted_difference_detected_at_pair_level():
    hits = 0
    for seed in range(10):
        c = compare(_study(seed, effect=0.25), "value", "cell_type", ("GABAergic", "glutamatergic"))
        assert c.n_units == (4, 4) and c.n_pairs == 8 and c.n_animals == 16
        hits += c.p_permutation <= 0.05 and c.ci[0] > 0 and c.p_mixedlm is not None and c.p_mixedlm < 0.05
    # exact 4-vs-4 permutation: the smallest two-sided p is 2/70; a ~7-SD effect reaches it every time
    assert hits == 10


def test_no_difference_not_detected_in_36_of_40_seeds():
    # Under the null the exact test rejects with probability 2/70; P(>= 5 of 40) < 0.01.
    false = sum(compare(_study(100 + s, effect=0.0), "value", "cell_type",
                        ("GABAergic", "glutamatergic"), n_boot=200).p_permutation <= 0.05 for s in range(40))
    assert false <= 4, false


def test_neuron_level_test_is_fooled_where_pair_level_is_not():
    # With animal-level variability and no group effect, treating neurons as replicates is falsely significant.
    fooled, pair_false = 0, 0
    for s in range(20):
        t = _study(200 + s, effect=0.0)
        fooled += neuron_level_p(t, "value", "cell_type", ("GABAergic", "glutamatergic")) <= 0.05
        pair_false += compare(t, "value", "cell_type", ("GABAergic", "glutamatergic"), n_boot=200).p_permutation <= 0.05
    assert fooled >= 10 and pair_false <= 3, (fooled, pair_false)


def test_missing_values_excluded_and_counted():
    t = _study(0, effect=0.15)
    t.loc[t["pair"] == "p0", "value"] = np.nan
    c = compare(t, "value", "cell_type", ("GABAergic", "glutamatergic"), n_boot=200)
    assert c.n_units == (3, 4) and c.n_pairs == 7


def _units(values_0, values_1, paired=False) -> pd.DataFrame:
    """One row per unit and level (pairs p0.. for level 0, then new pairs for level 1 unless paired)."""
    rows = [{"pair": f"p{i}", "animal": f"p{i}/A", "group": "g0", "value": v} for i, v in enumerate(values_0)]
    off = 0 if paired else len(values_0)
    rows += [{"pair": f"p{off + i}", "animal": f"p{off + i}/A", "group": "g1", "value": v} for i, v in enumerate(values_1)]
    return pd.DataFrame(rows)


def test_exact_permutation_p_values():
    """Few relabelings: every one is enumerated, so fully separated groups give the smallest p exactly."""
    c = compare(_units([5.0, 6, 7, 8], [1.0, 2, 3, 4]), "value", "group", ("g0", "g1"), mixedlm=False)
    assert c.p_permutation == 2 / 70 and c.effect == 4.0          # C(8, 4) = 70; two-sided: both extremes
    d = compare_paired(_units([2.0, 3, 4, 5, 6], [1.0, 1.5, 2, 2.5, 3], paired=True), "value", "group", ("g0", "g1"))
    assert d.p_permutation == 2 / 32 and d.n_units == (5, 5)        # 2^5 sign patterns, all differences > 0
    # a single unit in one level: no test and no interval
    e = compare(_units([5.0], [1.0, 2, 3]), "value", "group", ("g0", "g1"), mixedlm=False)
    assert np.isnan(e.p_permutation) and np.isnan(e.ci).all() and "too few" in e.note


def test_monte_carlo_permutation_and_bootstrap_on_12_vs_12_pairs():
    """C(24, 12) relabelings are too many: n_perm random ones. Under the null the test rejects at its level,
    a planted effect is found, and the 95 % bootstrap interval covers the true unit-level effect."""
    kw = dict(n_perm=999, n_boot=500, mixedlm=False)
    false = covered = found = 0
    for s in range(40):
        null = compare(_study(500 + s, effect=0.0, n_pairs=24, n_neurons=5), "value", "cell_type",
                       ("GABAergic", "glutamatergic"), random_state=s, **kw)
        assert null.n_units == (12, 12) and null.p_permutation >= 1 / 1000      # (count + 1) / (n + 1)
        false += null.p_permutation <= 0.05
        covered += null.ci[0] <= 0.0 <= null.ci[1]
        hit = compare(_study(600 + s, effect=0.08, n_pairs=24, n_neurons=5), "value", "cell_type",
                      ("GABAergic", "glutamatergic"), random_state=s, **kw)
        found += hit.p_permutation <= 0.05
    # P(>= 6 of 40 | 0.05) = 0.014; a percentile interval over 12 units covers ~93 %: P(<= 32 | 0.93) = 0.006;
    # the effect is ~5.6 standard errors, so the power is ~1
    assert false <= 5 and covered >= 33 and found >= 36, (false, covered, found)


def test_same_random_state_gives_the_same_comparison():
    t = _study(7, effect=0.0, n_pairs=24, n_neurons=5)
    a, b = (compare(t, "value", "cell_type", n_perm=500, n_boot=300, mixedlm=False, random_state=3) for _ in range(2))
    assert a == b
