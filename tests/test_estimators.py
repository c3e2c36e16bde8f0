"""Every estimator follows one scikit-learn convention (issue 16).

- `sklearn.base.clone` works: parameters are stored unchanged under their own names;
- an unfitted call raises NotFittedError;
- randomness comes from one `random_state` (None, int or Generator): two fits with the same
  seed give identical fitted attributes;
- surrogate shifts can be given explicitly to `fit(..., shifts=)`, and a fit given the shifts a
  seeded fit drew equals that fit.

To add an estimator, append a Case to CASES (TimeResolvedDecoder joins at merge).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from neuroid.structural import ReporterClassifier
from pipeline.analysis.behavior_space import BehaviorCCA, NonRedundantVariance
from pipeline.analysis.encoding import AurocEncoder
from pipeline.analysis.subspace import SharedSubspace
from pipeline.core.rng import as_rng, sklearn_seed


def _pair(seed=0, T=400, NA=8, NB=6):
    rng = np.random.default_rng(seed)
    L = rng.standard_normal((T, 2))
    return (L @ rng.standard_normal((2, NA)) + rng.standard_normal((T, NA)),
            L @ rng.standard_normal((2, NB)) + rng.standard_normal((T, NB)))


def _behaviour(seed=0, T=400, M=3, p=0.15):
    return np.random.default_rng(seed).random((T, M)) < p


def _scores(seed=0):
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(0.5, 0.03, 60), rng.normal(0.75, 0.04, 30), np.nan]


@dataclass
class Case:
    """One estimator: how to make it, what to fit it on, and a method that needs the fit."""
    make: Callable[..., BaseEstimator]       # make(random_state) -> unfitted estimator
    data: Callable[[], tuple]                # () -> positional fit arguments
    use: Callable[[BaseEstimator], object] | None = None   # a post-fit method; None: check_is_fitted only
    has_shifts: bool = True                  # fit(..., shifts=) and a fitted shifts_


CASES = {
    "SharedSubspace": Case(lambda rs: SharedSubspace(n_surrogates=40, lag=20, random_state=rs, null="adaptive"),
                           lambda: _pair(), use=lambda e: e.transform(*_pair())),
    "AurocEncoder": Case(lambda rs: AurocEncoder(n_surrogates=40, min_shift=20, random_state=rs),
                         lambda: (_pair()[0], _behaviour()), use=lambda e: e.classes()),
    "NonRedundantVariance": Case(lambda rs: NonRedundantVariance(n_var_permute=3, n_shuffle=4, lag=20,
                                                                 random_state=rs),
                                 lambda: ({"self": _behaviour(1)[:, :2], "partner": _behaviour(2)[:, :1]},
                                          _pair()[0])),
    "BehaviorCCA": Case(lambda rs: BehaviorCCA(n_surrogates=60, lag=20, random_state=rs),
                        lambda: (_behaviour(3).astype(float), _behaviour(4, M=2).astype(float))),
    "ReporterClassifier": Case(lambda rs: ReporterClassifier(random_state=rs), lambda: (_scores(),),
                               use=lambda e: e.predict_proba(_scores(1)), has_shifts=False),
    # "TimeResolvedDecoder": added with the decoders branch (pipeline/analysis/decoders.py)
}
WITH_SHIFTS = [k for k, c in CASES.items() if c.has_shifts]


def fitted(est) -> dict:
    """The fitted attributes (trailing underscore) of an estimator."""
    return {k: v for k, v in vars(est).items() if k.endswith("_") and not k.startswith("_")}


def assert_same(a, b, path="") -> None:
    """Bit-identical nested structures of arrays, numbers, strings, dicts and lists."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, BaseEstimator):       # a fitted inner scikit-learn model: compare its fit
        assert_same(fitted(a), fitted(b), path)
    elif isinstance(a, (np.ndarray, list, tuple)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=path)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), path
    else:
        assert a == b, path


@pytest.mark.parametrize("name", CASES)
def test_clone_gives_equal_params(name):
    est = CASES[name].make(7)
    assert isinstance(est, BaseEstimator)
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params()
    assert twin.set_params(random_state=3).get_params()["random_state"] == 3
    # a fitted estimator clones to an unfitted one with the same parameters
    est.fit(*CASES[name].data())
    again = clone(est)
    assert again.get_params() == est.get_params() and fitted(again) == {}


@pytest.mark.parametrize("name", CASES)
def test_unfitted_call_raises_not_fitted(name):
    case = CASES[name]
    est = case.make(0)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    if case.use is not None:
        with pytest.raises(NotFittedError):
            case.use(est)
    est.fit(*case.data())
    check_is_fitted(est)
    if case.use is not None:
        case.use(est)


@pytest.mark.parametrize("name", CASES)
def test_same_random_state_gives_identical_fits(name):
    case = CASES[name]
    a = case.make(11).fit(*case.data())
    b = case.make(11).fit(*case.data())
    assert fitted(a)
    assert_same(fitted(a), fitted(b))
    # a Generator is a random_state too: the same stream gives the same fit
    g = case.make(np.random.default_rng(11)).fit(*case.data())
    h = case.make(np.random.default_rng(11)).fit(*case.data())
    assert_same(fitted(g), fitted(h))


@pytest.mark.parametrize("name", WITH_SHIFTS)
def test_explicit_shifts_equal_the_drawn_ones(name):
    case = CASES[name]
    drawn = case.make(5).fit(*case.data())
    given = case.make(None).fit(*case.data(), shifts=drawn.shifts_)
    assert_same(fitted(drawn), fitted(given))
    # and the shifts matter: another seed draws other shifts and another null
    other = case.make(6).fit(*case.data())
    with pytest.raises(AssertionError):
        assert_same(drawn.shifts_, other.shifts_)


@pytest.mark.parametrize("name", WITH_SHIFTS)
def test_shifts_are_a_fit_argument_not_a_parameter(name):
    assert "shifts" not in CASES[name].make(0).get_params()


def test_one_rng_helper():
    g = np.random.default_rng(1)
    assert as_rng(g) is g
    assert as_rng(4).integers(1 << 30) == np.random.default_rng(4).integers(1 << 30)
    assert sklearn_seed(4) == 4 and sklearn_seed(np.int64(4)) == 4
    assert sklearn_seed(np.random.default_rng(2)) == sklearn_seed(np.random.default_rng(2))


def test_auroc_explicit_shifts_with_a_behaviour_too_short_for_the_guard():
    """baseline='other': behaviour 'b' has 60 eligible frames, too few for min_shift 40, and is skipped
    (its shifts_ row is -1) whether the shifts are drawn or given back."""
    rng = np.random.default_rng(3)
    T = 600
    Y = np.zeros((T, 2), bool)
    Y[rng.choice(T, 80, replace=False), 0] = True
    Y[:20, 1] = True
    base = np.zeros((T, 2), bool)
    base[:, 0] = ~Y[:, 0]
    base[20:60, 1] = True
    Z = rng.standard_normal((T, 4))
    drawn = AurocEncoder(n_surrogates=30, min_shift=40, baseline="other", random_state=1).fit(
        Z, Y, ["a", "b"], baseline_frames=base)
    assert "b" in drawn.skipped_ and (drawn.shifts_[1] == -1).all() and (drawn.shifts_[0] > 40).all()
    given = AurocEncoder(n_surrogates=30, min_shift=40, baseline="other").fit(
        Z, Y, ["a", "b"], baseline_frames=base, shifts=drawn.shifts_)
    assert_same(fitted(drawn), fitted(given))
