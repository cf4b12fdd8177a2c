"""newton-cg on data with many rows per parameter: curvature from a row sample.

Values and gradients use every row, so the optimum must be scikit-learn's;
the sample only steers the steps. Checked against LogisticRegression, against
the exact Hessian products, and for what the sample keeps of the data.
"""

import tracemalloc
import warnings

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from sksoftmax import SoftmaxClassifier
from sksoftmax._engines import training_data
from sksoftmax._engines._numpy import NumPyEngine
from sksoftmax._penalty import ElasticNet
from sksoftmax._solvers import _Preconditioned, _sampled_newton, _SampledCurvature

from _reference import symmetric_from_sklearn
from conftest import TIGHT


def _data(n=6000, d=4, k=3, rare=None, seed=0):
    """Overlapping classes; with ``rare``, the last class has that many rows."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    logits = X @ rng.normal(size=(d, k))
    y = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    if rare is not None:
        y[y == k - 1] = 0
        y[rng.choice(n, rare, replace=False)] = k - 1
    return X, y


def _uses_sample(X, y, sample_weight=None, class_weight=None, fit_intercept=True):
    data = training_data(
        X, y, sample_weight, class_weight=class_weight, fit_intercept=fit_intercept
    )
    penalty = ElasticNet.from_C(1.0, 0.0, data.weight_sum)
    return _SampledCurvature.of(data.engine, penalty) is not None


CASES = {
    "plain": dict(),
    "no intercept": dict(fit_intercept=False),
    "weak penalty": dict(C=1e4),
    "strong penalty": dict(C=1e-3),
    "sample weights": dict(sample_weight="random"),
    "balanced rare class": dict(class_weight="balanced", rare=12),
    "five classes": dict(k=5),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sampled_newton_reaches_scikit_learns_optimum(case):
    params = dict(CASES[case])
    X, y = _data(k=params.pop("k", 3), rare=params.pop("rare", None))
    sample_weight = None
    if params.pop("sample_weight", None):
        sample_weight = np.random.default_rng(1).uniform(0.0, 3.0, size=y.size)
        sample_weight[:50] = 0.0
    fit_intercept = params.get("fit_intercept", True)
    class_weight = params.get("class_weight")
    assert _uses_sample(X, y, sample_weight, class_weight, fit_intercept)
    before = X.copy(), y.copy(), None if sample_weight is None else sample_weight.copy()

    ours = SoftmaxClassifier(solver="newton-cg", **params, **TIGHT)
    ours.fit(X, y, sample_weight=sample_weight)
    theirs = LogisticRegression(solver="newton-cg", **params, **TIGHT)
    theirs.fit(X, y, sample_weight=sample_weight)

    coef, intercept = symmetric_from_sklearn(theirs)
    np.testing.assert_allclose(ours.coef_, coef, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ours.intercept_, intercept, rtol=1e-6, atol=1e-7)
    assert ours.n_iter_ < 100
    np.testing.assert_array_equal(X, before[0])
    np.testing.assert_array_equal(y, before[1])
    if sample_weight is not None:
        np.testing.assert_array_equal(sample_weight, before[2])


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_sampled_newton_is_equivariant_to_extreme_feature_scales(scale):
    # The sample is standardized before its float32 cast: columns of 1e150
    # or 1e-150 must neither overflow nor vanish there.
    X, y = _data()
    assert _uses_sample(X * scale, y)
    ours = SoftmaxClassifier(solver="newton-cg", C=np.inf, tol=1e-8)
    with warnings.catch_warnings():
        # Beyond about 1e8 the raw gradient's rounding exceeds tol: warned.
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X * scale, y)
    theirs = LogisticRegression(C=np.inf, **TIGHT).fit(X, y)
    np.testing.assert_allclose(
        ours.predict_proba(X * scale), theirs.predict_proba(X), rtol=1e-6, atol=1e-9
    )


def test_float32_data_reach_the_float64_optimum():
    X, y = _data()
    assert _uses_sample(X.astype(np.float32), y)
    ours = SoftmaxClassifier(solver="newton-cg", tol=1e-5).fit(X.astype(np.float32), y)
    theirs = LogisticRegression(**TIGHT).fit(X.astype(np.float32).astype(np.float64), y)
    coef, intercept = symmetric_from_sklearn(theirs)
    # float32 arithmetic resolves the optimum to about 1e-4.
    np.testing.assert_allclose(ours.coef_, coef, rtol=0, atol=2e-4)
    np.testing.assert_allclose(ours.intercept_, intercept, rtol=0, atol=2e-4)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("C", [np.inf, 0.05])
def test_products_on_a_sample_of_every_row_are_the_exact_ones(fit_intercept, C):
    X, y = _data(n=2000)
    X = X * np.array([1e3, 1.0, 1e-3, 5.0]) + np.array([10.0, 0.0, -4.0, 1e3])
    weights = np.random.default_rng(2).uniform(0.5, 2.0, size=y.size)
    data = training_data(X, y, weights, class_weight=None, fit_intercept=fit_intercept)
    engine = data.engine
    penalty = ElasticNet.from_C(C, 0.0, data.weight_sum)
    sampled = _SampledCurvature(engine, penalty)
    # A "sample" of every row, standardized as the engine's would be.
    standardized = (X - sampled.mean) / sampled.std
    sampled.sample = NumPyEngine(
        standardized.astype(np.float32), engine.y, 3, weights, fit_intercept
    )
    exact = _Preconditioned(engine, penalty, second_order=True)
    rng = np.random.default_rng(3)
    point = rng.normal(size=engine.n_params) * 0.3
    for _ in range(3):
        direction = rng.normal(size=engine.n_params)
        if not fit_intercept:
            direction[-engine.n_classes :] = 0.0
        expected = exact.hessp(point, direction)
        got = sampled.hessp(point, direction)
        scale = np.max(np.abs(expected))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale)


def test_the_sample_keeps_every_class_and_its_total_weight():
    X, y = _data(n=20000, rare=7)
    X[:, 1] *= 1e300
    X[:, 2] *= 1e-300
    weights = np.random.default_rng(4).uniform(0.0, 2.0, size=y.size)
    weights[y == 0] = np.where(np.arange(np.sum(y == 0)) % 3, weights[y == 0], 0.0)
    engine = training_data(X, y, weights, class_weight=None, fit_intercept=True).engine
    # Unpenalized, the standardization is by the columns' own spread.
    problem = _Preconditioned(engine, ElasticNet())
    mean, std = problem.mean, problem.std
    sample = engine.curvature_sample(500, 100, mean, std)
    again = engine.curvature_sample(500, 100, mean, std)
    np.testing.assert_array_equal(sample.X, again.X)
    assert sample.X.dtype == np.float32
    # Standardized: every column of order one, the 1e300 and 1e-300 ones too.
    np.testing.assert_allclose(sample.X.std(axis=0), 1.0, atol=0.2)
    counts = np.bincount(sample.y, minlength=3)
    assert counts[2] == 7  # the rare class, whole
    assert 300 <= sample.X.shape[0] <= 800
    assert np.all(sample.weights > 0)
    np.testing.assert_allclose(
        np.bincount(sample.y, weights=sample.weights, minlength=3),
        np.bincount(engine.y, weights=engine.weights, minlength=3),
        rtol=1e-6,
    )
    before = X.copy()
    assert engine.curvature_sample(20000 // 3, 100, mean, std) is None
    assert engine.curvature_sample(500, 501, mean, std) is None
    np.testing.assert_array_equal(engine.X, before)


def test_small_or_wide_data_keep_exact_products():
    X, y = _data(n=500)
    assert not _uses_sample(X, y)
    X, y = _data(n=6000, d=200)
    assert not _uses_sample(X, y)


def _peak(model, X, y):
    tracemalloc.start()
    try:
        model.fit(X, y)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_sample_costs_at_most_half_the_logits_more_than_lbfgs():
    X, y = _data(n=60000, d=20, k=5)
    assert _uses_sample(X, y)
    unit = X.shape[0] * 5 * X.itemsize
    lbfgs = _peak(SoftmaxClassifier(), X, y)
    sampled = _peak(SoftmaxClassifier(solver="newton-cg"), X, y)
    assert sampled <= lbfgs + 0.5 * unit


def test_gradient_changes_correct_a_wrong_curvature():
    # A quadratic whose Hessian products are off by up to 50%: Newton steps
    # on them alone took 89 steps to a gradient of 1e-10; the secant pairs of
    # exact gradients correct the curvature along the steps (14).
    rng = np.random.default_rng(5)
    basis = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    A = basis @ np.diag([1.0, 2.0, 5.0, 10.0, 20.0]) @ basis.T
    b = rng.normal(size=5)
    wrong = np.diag(np.sqrt([0.6, 0.8, 1.0, 1.3, 1.5]))
    solution = np.linalg.solve(A, b)
    steps = []

    def callback(intermediate_result):
        steps.append(intermediate_result.x)
        if np.max(np.abs(A @ intermediate_result.x - b)) <= 1e-10:
            raise StopIteration

    result = minimize(
        lambda x: (0.5 * x @ A @ x - b @ x, A @ x - b),
        np.zeros(5),
        jac=True,
        method=_sampled_newton,
        hessp=lambda x, v: wrong @ A @ wrong @ v,
        callback=callback,
        options={"maxiter": 100},
    )
    np.testing.assert_allclose(result.x, solution, rtol=1e-9)
    assert len(steps) <= 20
