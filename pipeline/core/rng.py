"""Randomness as every estimator takes it: one `random_state` argument, one helper.

`random_state` is None (fresh entropy), an int seed or a numpy Generator (used as
is, so a caller can share one stream across several fits). `as_rng` makes the
Generator at fit time; `sklearn_seed` turns the same argument into the int seed a
scikit-learn estimator inside ours expects.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["as_rng", "sklearn_seed"]


def as_rng(random_state) -> np.random.Generator:
    """A numpy Generator from None, an int seed or a Generator (returned unchanged)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def sklearn_seed(random_state) -> int:
    """An int `random_state` for a scikit-learn estimator.

    An int passes unchanged (the same seed gives the same fit as scikit-learn's own
    convention); None or a Generator give one seed drawn from `as_rng(random_state)`.
    """
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return int(as_rng(random_state).integers(2**32 - 1))
