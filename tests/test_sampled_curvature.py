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
from sksoftmax._solvers import (
    _Preconditioned,
    _sample_start,
    _sampled_newton,
    _SampledCurvature,
)

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


def _switches_to_exact_products(monkeypatch):
    """Record, per fit, whether its products became exact."""
    switched = []
    check = _SampledCurvature.check_curvature

    def recording(problem, *args):
        before = problem.exact
        check(problem, *args)
        switched.append(problem.exact and not before)

    monkeypatch.setattr(_SampledCurvature, "check_curvature", recording)
    return switched


def test_nearly_separable_data_get_exact_products(monkeypatch):
    # The curvature sits on the few rows near the class boundaries, which the
    # sample misses: its steps alone took 140 iterations at the default tol.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, 20))
    logits = X @ (rng.normal(size=(20, 4)) * 5)
    y = np.argmax(logits + 0.3 * rng.gumbel(size=logits.shape), axis=1)
    assert _uses_sample(X, y)
    switched = _switches_to_exact_products(monkeypatch)
    before = X.copy()
    default = SoftmaxClassifier(solver="newton-cg", C=100.0).fit(X, y)
    assert any(switched)
    assert default.n_iter_ <= 30
    # tol=1e-10 pins the coefficients only to 1e-10 over the smallest
    # curvature, the penalty's 5e-7 here: fits ending at iteration 20 and
    # 22, both within it, differed by 2.7e-5.
    ours = SoftmaxClassifier(solver="newton-cg", C=100.0, tol=1e-12, max_iter=100)
    ours.fit(X, y)
    theirs = LogisticRegression(solver="newton-cholesky", C=100.0, **TIGHT).fit(X, y)
    coef, intercept = symmetric_from_sklearn(theirs)
    np.testing.assert_allclose(ours.coef_, coef, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.intercept_, intercept, rtol=1e-6, atol=1e-6)
    assert ours.n_iter_ <= 60
    np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_representative_sample_keeps_its_products(monkeypatch, dtype):
    # In float32, tol=1e-8 is beyond reach: the last steps' gradient changes
    # are rounding, which must not pass for a misjudged curvature.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30000, 10)) * rng.uniform(0.1, 10, 10)
    logits = X @ rng.normal(size=(10, 5)) * 0.3
    y = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    weights = rng.uniform(size=y.size)
    weights[: y.size // 2] = 0.0
    X = X.astype(dtype)
    assert _uses_sample(X, y, weights)
    switched = _switches_to_exact_products(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        SoftmaxClassifier(solver="newton-cg", tol=1e-8).fit(X, y, sample_weight=weights)
    assert switched and not any(switched)


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


def _objective(X, y, weights, W, b, l2):
    """Weighted mean cross-entropy plus ``l2 / 2 |W|^2``, and its gradient (float64)."""
    X = np.asarray(X, dtype=np.float64)
    weights = weights / weights.sum()
    logits = X @ W + b
    shift = logits.max(axis=1, keepdims=True)
    log_total = np.log(np.exp(logits - shift).sum(axis=1)) + shift[:, 0]
    value = weights @ (log_total - logits[np.arange(y.size), y])
    residual = np.exp(logits - log_total[:, None])
    residual[np.arange(y.size), y] -= 1.0
    residual *= weights[:, None]
    value += 0.5 * l2 * np.sum(W**2)
    return value, X.T @ residual + l2 * W, residual.sum(axis=0)


def _sampled_problem(C=1.0, fit_intercept=True, sample_weight=None, seed=0):
    X, y = _data(n=12000, d=6, k=4, seed=seed)
    data = training_data(
        X, y, sample_weight, class_weight=None, fit_intercept=fit_intercept
    )
    problem = _SampledCurvature.of(
        data.engine, ElasticNet.from_C(C, 0.0, data.weight_sum)
    )
    assert problem is not None
    return X, y, data, problem


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("C", [np.inf, 0.01])
def test_the_sample_objective_is_the_penalized_loss_on_its_rows(fit_intercept, C):
    weights = np.random.default_rng(6).uniform(0.0, 2.0, size=12000)
    X, y, data, problem = _sampled_problem(C, fit_intercept, weights)
    sample = problem.sample
    rng = np.random.default_rng(7)
    x = rng.normal(size=problem.engine.n_params)
    if not fit_intercept:
        x[-4:] = 0.0
    W_std, b_std = problem.engine.unpack(x)
    # The sample's rows are standardized: its coefficients are W' and b'.
    value, grad_W_std, grad_b = _objective(
        sample.X, sample.y, sample.weights.astype(np.float64), W_std, b_std, 0.0
    )
    l2 = problem.penalty.l2
    value += 0.5 * l2 * np.sum((W_std / problem.std[:, None]) ** 2)
    grad_W_std += l2 * W_std / problem.std[:, None] ** 2
    got_value, got_grad = problem.sample_objective(x)
    got_W, got_b = problem.engine.unpack(got_grad)
    np.testing.assert_allclose(got_value, value, rtol=1e-6)
    scale = np.max(np.abs(grad_W_std))
    np.testing.assert_allclose(got_W, grad_W_std, rtol=0, atol=1e-5 * scale)
    if fit_intercept:
        np.testing.assert_allclose(got_b, grad_b, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_without_coefficients_the_sample_objective_is_the_whole_datas(fit_intercept):
    # Each sampled class keeps its total weight, and at W = 0 the loss of a
    # row depends on its class alone: the start's guard relies on it.
    weights = np.random.default_rng(8).uniform(0.0, 2.0, size=12000)
    X, y, data, problem = _sampled_problem(1.0, fit_intercept, weights)
    params = data.null_params()
    W, b = data.engine.unpack(params)
    expected = _objective(X, y, weights, W, b, 0.0)[0]
    value, _ = problem.sample_objective(problem.from_original(params))
    np.testing.assert_allclose(value, expected, rtol=1e-7)


def test_the_sample_start_lowers_the_whole_objective_and_is_evaluated_once():
    X, y, data, problem = _sampled_problem()
    params0 = data.null_params()
    start, steps = _sample_start(problem, params0)
    assert steps > 0
    W0, b0 = data.engine.unpack(params0)
    W, b = data.engine.unpack(start)
    l2 = problem.penalty.l2
    before = _objective(X, y, np.ones(y.size), W0, b0, l2)[0]
    after = _objective(X, y, np.ones(y.size), W, b, l2)[0]
    # Close to the optimum: within the sample's noise, about n_params / n_sampled.
    optimum = LogisticRegression(C=1.0, **TIGHT).fit(X, y)
    coef, intercept = symmetric_from_sklearn(optimum)
    best = _objective(X, y, np.ones(y.size), coef.T, intercept, l2)[0]
    assert best < after < best + data.engine.n_params / problem.sample.X.shape[0]
    assert after < before
    np.testing.assert_allclose(problem.value, after, rtol=1e-12)


def test_a_sampled_newton_fit_evaluates_every_row_once_per_point(monkeypatch):
    # The whole data's first iterate is the sample start, which the guard
    # evaluated: a round trip through the coordinates must not evaluate it
    # again at a point equal but for rounding.
    X, y = _data(n=12000, d=6, k=4)
    X = X * np.array([1e3, 1.0, 1e-3, 5.0, 0.3, 7.0]) + np.array([10, 0, -4, 1e3, 2, 0])
    assert _uses_sample(X, y)
    points = []
    loss_gradient = NumPyEngine.loss_gradient

    def recording(engine, params):
        if engine.X.shape[0] == y.size:
            points.append(params.copy())
        return loss_gradient(engine, params)

    monkeypatch.setattr(NumPyEngine, "loss_gradient", recording)
    model = SoftmaxClassifier(solver="newton-cg", tol=1e-8).fit(X, y)
    assert 0 < model.n_iter_ < len(points) <= 3 * model.n_iter_
    # The first point is the sample start's, not the intercept-only start.
    assert np.any(points[0][:-4])
    for i, point in enumerate(points):
        for other in points[:i]:
            assert not np.allclose(point, other, rtol=1e-12, atol=0)


def test_a_start_with_coefficients_takes_no_sample_steps():
    _, _, data, problem = _sampled_problem()
    params0 = data.null_params()
    params0[0] = 0.1
    sample_calls = []
    hessian_product = problem.sample.hessian_product
    problem.sample.hessian_product = lambda p: (
        sample_calls.append(p) or hessian_product(p)
    )
    start, steps = _sample_start(problem, params0)
    assert steps == 0 and start is params0 and sample_calls == []


def test_a_sample_whose_optimum_misleads_is_not_kept():
    # The sample's classes renamed in a cycle: its optimum predicts the
    # wrong class, worse on the whole data than the intercept-only start.
    X, y, data, problem = _sampled_problem(C=np.inf)
    sample = problem.sample
    problem.sample = NumPyEngine(
        sample.X, (sample.y + 1) % 4, 4, sample.weights, data.engine.fit_intercept
    )
    params0 = data.null_params()
    start, steps = _sample_start(problem, params0)
    assert steps == 0
    np.testing.assert_array_equal(start, params0)


def test_a_class_the_draw_misses_keeps_a_row_of_its_own():
    # 100 rows of a third class among 2000, with one feature: it would be
    # kept at a rate of 4 %, and this seed's draw keeps none of it.
    rng = np.random.default_rng(75)
    X = rng.normal(size=(2000, 1))
    y = (X[:, 0] + rng.normal(size=2000) > 0).astype(int)
    y[rng.choice(2000, 100, replace=False)] = 2
    data = training_data(X, y, None, class_weight=None, fit_intercept=True)
    problem = _SampledCurvature.of(data.engine, ElasticNet.from_C(1.0, 0.0, 2000.0))
    counts = np.bincount(problem.sample.y, minlength=3)
    assert counts[2] == 1 and counts.min() == 1
    params = data.null_params()
    W, b = data.engine.unpack(params)
    expected = _objective(X, y, np.ones(2000), W, b, 0.0)[0]
    value, _ = problem.sample_objective(problem.from_original(params))
    np.testing.assert_allclose(value, expected, rtol=1e-7)


@pytest.mark.parametrize(
    "solver, n", [("lbfgs", 40000), ("newton-cg", 40000), ("newton-cg", 100)]
)
def test_a_start_at_the_optimum_takes_no_step(solver, n):
    # A constant feature and balanced classes: the intercept-only start is
    # the optimum, its gradient exactly zero. Newton steps on a sample used
    # to run on to max_iter there, their gap estimate having no steps to
    # go by.
    X, y = np.ones((n, 1)), np.arange(n) % 2
    assert _uses_sample(X, y) == (n == 40000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = SoftmaxClassifier(solver=solver, max_iter=50).fit(X, y)
    assert model.n_iter_ == 0
    np.testing.assert_array_equal(model.coef_, 0.0)
    np.testing.assert_array_equal(model.predict_proba(X[:1]), [[0.5, 0.5]])


def test_newton_steps_stop_before_one_that_promises_too_little():
    rng = np.random.default_rng(10)
    A = np.diag([1.0, 3.0, 10.0])
    b = rng.normal(size=3)

    def run(least_gain):
        return _sampled_newton(
            lambda x: 0.5 * x @ A @ x - b @ x,
            np.zeros(3),
            jac=lambda x: A @ x - b,
            hessp=lambda x, v: A @ v,
            callback=lambda _: None,
            maxiter=10,
            least_gain=least_gain,
        )

    # The first step promises b^T A^-1 b / 2, and gets about all of it.
    promised = 0.5 * b @ np.linalg.solve(A, b)
    result = run(1.01 * promised)
    assert result.nit == 0
    np.testing.assert_array_equal(result.x, 0.0)
    result = run(1e-3 * promised)
    assert 1 <= result.nit <= 2
    assert result.fun <= -(1 - 1e-3) * promised
