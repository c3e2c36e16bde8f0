"""Pair-level statistics: planted group differences found, null ones not, pseudo-replication guarded."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.study.stats import compare, neuron_level_p


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
