"""Same optimum as scikit-learn's LogisticRegression, at tight tolerance."""

import numpy as np
import pytest
from scipy import sparse
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_iris,
    load_wine,
    make_classification,
)
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from sksoftmax import SoftmaxClassifier

from _reference import effective_weights, objective, symmetric_from_sklearn
from conftest import TIGHT

# scikit-learn's Newton solver reaches a tight tolerance in a few steps; its
# objective is the same for every solver.
REFERENCE = dict(solver="newton-cholesky", **TIGHT)
SOLVERS = ["lbfgs", "newton-cg"]

# tol=1e-10 is at the resolution of float64 on some of these problems, where
# a solver may stop just above it; the assertions check the optimum itself.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _standardized(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


DATASETS = {
    "iris": lambda: load_iris(return_X_y=True),
    "wine": lambda: _standardized(load_wine),
    "digits": lambda: (load_digits(return_X_y=True)[0] / 16, load_digits().target),
    "breast_cancer": lambda: _standardized(load_breast_cancer),
    "synthetic": lambda: make_classification(
        n_samples=400, n_features=12, n_informative=6, n_classes=4, random_state=0
    ),
}


def assert_same_optimum(
    X, y, C, sample_weight=None, class_weight=None, solver="lbfgs", **params
):
    ours = SoftmaxClassifier(
        C=C, class_weight=class_weight, solver=solver, **TIGHT, **params
    )
    ours.fit(X, y, sample_weight=sample_weight)
    binary = len(np.unique(y)) == 2
    # A binary LogisticRegression penalizes one row v; the symmetric softmax
    # penalizes (-v/2, v/2), i.e. half as much: the same problem at 2C.
    theirs = LogisticRegression(
        C=2 * C if binary else C, class_weight=class_weight, **REFERENCE, **params
    )
    theirs.fit(X, y, sample_weight=sample_weight)

    proba_gap = np.max(np.abs(ours.predict_proba(X) - theirs.predict_proba(X)))
    assert proba_gap <= 1e-5

    codes, sw = effective_weights(y, sample_weight, class_weight)
    ours_f = objective(X, codes, ours.coef_, ours.intercept_, sw, C)
    theirs_f = objective(X, codes, *symmetric_from_sklearn(theirs), sw, C)
    assert ours_f <= theirs_f + 1e-8
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    return ours, theirs


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("name", sorted(DATASETS))
@pytest.mark.parametrize("C", [0.05, 1.0, pytest.param(20.0, marks=pytest.mark.slow)])
def test_matches_logistic_regression(name, C, solver):
    X, y = DATASETS[name]()
    assert_same_optimum(X, y, C, solver=solver)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("class_weight", ["balanced", {0: 3.0, 1: 0.5, 2: 1.0}])
def test_matches_with_class_weight(class_weight, solver):
    X, y = _standardized(load_wine)
    assert_same_optimum(X, y, 1.0, class_weight=class_weight, solver=solver)


@pytest.mark.parametrize("solver", SOLVERS)
def test_matches_with_sample_weight_and_balanced_classes(solver):
    X, y = DATASETS["synthetic"]()
    sample_weight = np.random.default_rng(0).uniform(0.1, 3.0, size=len(y))
    assert_same_optimum(X, y, 0.5, sample_weight=sample_weight, solver=solver)
    assert_same_optimum(
        X, y, 0.5, sample_weight=sample_weight, class_weight="balanced", solver=solver
    )


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_matches_on_sparse_input(fmt, solver):
    X, y = make_classification(
        n_samples=300, n_features=40, n_informative=10, n_classes=3, random_state=1
    )
    X[np.abs(X) < 1.0] = 0.0
    ours, _ = assert_same_optimum(
        sparse.csr_matrix(X).asformat(fmt), y, 2.0, solver=solver
    )
    dense = SoftmaxClassifier(C=2.0, **TIGHT).fit(X, y)
    np.testing.assert_allclose(ours.coef_, dense.coef_, atol=1e-5)


@pytest.mark.parametrize("solver", SOLVERS)
def test_matches_without_intercept(solver):
    X, y = DATASETS["iris"]()
    assert_same_optimum(X, y, 1.0, fit_intercept=False, solver=solver)


@pytest.mark.parametrize("solver", SOLVERS)
def test_matches_unpenalized_on_overlapping_classes(solver):
    X, y = make_classification(
        n_samples=500,
        n_features=5,
        n_informative=3,
        n_redundant=0,
        n_classes=3,
        flip_y=0.3,
        random_state=3,
    )
    assert_same_optimum(X, y, np.inf, solver=solver)


@pytest.mark.parametrize("solver", SOLVERS)
def test_default_settings_converge_on_unscaled_data(solver):
    X, y = load_wine(return_X_y=True)
    ours = SoftmaxClassifier(solver=solver).fit(X, y)
    theirs = LogisticRegression(**REFERENCE).fit(X, y)
    codes, sw = effective_weights(y)
    gap = objective(X, codes, ours.coef_, ours.intercept_, sw, 1.0) - objective(
        X, codes, *symmetric_from_sklearn(theirs), sw, 1.0
    )
    assert gap < 1e-4
