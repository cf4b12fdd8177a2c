"""Behaviour of SoftmaxClassifier beyond agreement with scikit-learn."""

import contextlib
import copy
import io
import pickle
import re
import warnings

import numpy as np
import pytest
from scipy import sparse
from scipy.special import softmax
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_iris,
    load_wine,
    make_classification,
)
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sksoftmax import PerfectSeparationWarning, SoftmaxClassifier, SoftmaxClassifierCV
from sksoftmax._engines._numpy import NumPyEngine
from sksoftmax._penalty import ElasticNet

from _reference import objective, symmetric_from_sklearn
from conftest import PREDICT_METHODS, TIGHT


def test_probabilities_finite_for_huge_features(iris):
    X, y = iris
    clf = SoftmaxClassifier().fit(X, y)
    for scale in [1e3, 1e6, 1e12]:
        proba = clf.predict_proba(X * scale)
        assert np.all(np.isfinite(proba))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
        assert np.all(np.isfinite(clf.predict_log_proba(X * scale)))
    big = SoftmaxClassifier().fit(X * 1e12, y)
    assert np.all(np.isfinite(big.coef_))
    assert np.all(np.isfinite(big.predict_proba(X * 1e12)))


def test_log_proba_is_exact_in_the_tails(iris):
    X, y = iris
    clf = SoftmaxClassifier(C=1e4).fit(X, y)
    far = X[:1] * 1e3
    log_proba = clf.predict_log_proba(far)
    assert np.all(np.isfinite(log_proba))
    assert log_proba.min() < -745  # exp underflows to 0 there: log(proba) is -inf
    np.testing.assert_allclose(np.exp(log_proba), clf.predict_proba(far), atol=1e-300)


def test_permuting_labels_permutes_coefficient_rows(iris):
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])
    renamed = np.array(["c", "a", "b"])  # sorts to a different class order
    a = SoftmaxClassifier(**TIGHT).fit(X, names[y])
    b = SoftmaxClassifier(**TIGHT).fit(X, renamed[y])
    order = [1, 2, 0]  # rows of b for a, b, c -> versicolor, virginica, setosa
    np.testing.assert_allclose(b.coef_, a.coef_[order], atol=1e-6)
    np.testing.assert_allclose(b.intercept_, a.intercept_[order], atol=1e-6)
    np.testing.assert_array_equal(b.classes_, ["a", "b", "c"])


@pytest.mark.parametrize("as_sparse", [False, True])
def test_float32_stays_float32_and_agrees_with_float64(as_sparse):
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    X32 = X.astype(np.float32)
    if as_sparse:
        X, X32 = sparse.csr_matrix(X), sparse.csr_matrix(X32)
    c64 = SoftmaxClassifier(tol=1e-8).fit(X, y)
    c32 = SoftmaxClassifier(tol=1e-6).fit(X32, y)
    assert c32.coef_.dtype == np.float32 and c32.intercept_.dtype == np.float32
    for method in ["predict_proba", "predict_log_proba", "decision_function"]:
        assert getattr(c32, method)(X32).dtype == np.float32
    # float32 objective values stop resolving progress once the gradient is
    # near 1e-6 here (2e-6 measured in float64); through the inverse Hessian
    # that leaves coefficients within about 2e-4, and where the run stops
    # depends on rounding in the preconditioner.
    np.testing.assert_allclose(c32.coef_, c64.coef_, rtol=3e-4, atol=3e-4)
    np.testing.assert_allclose(c32.predict_proba(X32), c64.predict_proba(X), atol=1e-4)


def test_other_dtypes_become_float64(iris):
    X, y = iris
    clf = SoftmaxClassifier().fit(X.astype(np.int64), y)
    assert clf.coef_.dtype == np.float64
    assert clf.predict_proba(X.astype(np.float16)).dtype == np.float64


def test_binary_decision_function_is_the_margin():
    X, y = make_classification(n_samples=100, n_features=4, random_state=0)
    labels = np.array(["no", "yes"])[y]
    clf = SoftmaxClassifier().fit(X, labels)
    margin = clf.decision_function(X)
    assert margin.shape == (100,)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(margin, np.log(proba[:, 1] / proba[:, 0]), rtol=1e-9)
    np.testing.assert_array_equal(clf.predict(X), np.where(margin > 0, "yes", "no"))
    assert clf.coef_.shape == (2, 4)


def test_boolean_labels():
    X, y = make_classification(
        n_samples=80, n_features=3, n_informative=2, n_redundant=0, random_state=0
    )
    clf = SoftmaxClassifier().fit(X, y.astype(bool))
    assert clf.predict(X).dtype == bool
    assert clf.score(X, y.astype(bool)) > 0.8


def test_convergence_warning_says_what_to_do(iris):
    X, y = iris
    with pytest.warns(
        ConvergenceWarning, match="Increase max_iter, scale the features"
    ) as record:
        clf = SoftmaxClassifier(max_iter=2).fit(X, y)
    assert clf.n_iter_ == 2
    # Points at the caller, not into the package or scikit-learn.
    assert record[0].filename == __file__


@pytest.mark.parametrize("l1_ratio", [0.0, 0.5])
def test_max_iter_is_a_budget_no_newton_steps_after_it(iris, monkeypatch, l1_ratio):
    # Newton steps are for a solver that stalled above tol; one stopped by
    # max_iter must stop there (at 300 classes they took 18x the fit).
    def refuse(self, params):
        raise AssertionError("Hessian products after max_iter")

    monkeypatch.setattr(NumPyEngine, "hessian_product", refuse)
    X, y = iris
    with pytest.warns(ConvergenceWarning, match="Increase max_iter"):
        clf = SoftmaxClassifier(l1_ratio=l1_ratio, tol=0.0, max_iter=3).fit(X, y)
    assert clf.n_iter_ == 3


def test_tol_bounds_the_final_gradient(iris):
    X, y = iris
    for tol in [1e-3, 1e-6]:
        clf = SoftmaxClassifier(tol=tol).fit(X, y)
        engine = NumPyEngine(X, y, 3, np.ones(len(y)), True)
        params = np.concatenate([clf.coef_.T.ravel(), clf.intercept_])
        _, grad = engine.loss_gradient(params)
        ElasticNet.from_C(1.0, 0.0, len(y)).add_smooth(
            clf.coef_.T, 0.0, engine.unpack(grad)[0]
        )
        assert np.max(np.abs(grad)) <= tol


def test_the_estimated_gap_is_exact_on_an_isotropic_quadratic():
    from sksoftmax._solvers import _GapEstimate

    # f(x) = c |x|^2 / 2: H^-1 = I / c, so f - f* = |g|^2 / (2 c) exactly,
    # up to the rounding of the pairs, which are kept in float32.
    c, rng = 3.0, np.random.default_rng(0)
    gap = _GapEstimate(memory=3)
    for x in rng.normal(size=(5, 4)):
        gap.update(x, c * x, c * x @ x / 2)
    assert gap.estimate(c * x) == pytest.approx(c * x @ x / 2, rel=1e-6)


def test_the_estimated_gap_skips_steps_beyond_float32():
    from sksoftmax._solvers import _GapEstimate

    gap = _GapEstimate()
    gap.update(np.zeros(3), np.zeros(3), 0.0)
    # A step of 1e39 is infinite in float32: no pair, so no estimate yet.
    gap.update(np.full(3, 1e39), np.full(3, 1e39), 1.5e78)
    assert gap.estimate(np.full(3, 1e39)) == np.inf
    x = np.full(3, 1e39 + 1e24)
    gap.update(x, x, x @ x / 2)
    assert gap.estimate(x) == pytest.approx(x @ x / 2, rel=1e-6)


def test_the_estimated_gap_continues_the_objectives_recent_fall():
    from sksoftmax._solvers import _GapEstimate

    # Unit curvature, so the pairs are valid; at a zero gradient the model
    # says nothing is left, and the values say what is: a fall that halves
    # every step has as much left as its last value.
    gap = _GapEstimate(window=2)
    for k in range(6):
        gap.update(np.array([float(k)]), np.array([float(k)]), 2.0**-k)
    assert gap.estimate(np.zeros(1)) == pytest.approx(2.0**-5)
    gap.update(np.array([6.0]), np.array([6.0]), 2.0**-5 - 1.0)
    assert gap.estimate(np.zeros(1)) == np.inf  # a fall that grows
    for k in range(7, 11):
        gap.update(np.array([float(k)]), np.array([float(k)]), 2.0**-5 - 1.0)
    assert gap.estimate(np.zeros(1)) == 0.0  # no fall beyond rounding
    newton = _GapEstimate()
    for k in range(6):
        newton.update(np.array([float(k)]), np.array([float(k)]), 2.0**-k)
    assert newton.estimate(np.zeros(1)) == 0.0


def _near_separation(seed, n=None):
    """Classes far apart: logits of scale 30 or more, drawn as when found."""
    rng = np.random.default_rng(seed)
    if n is None:
        n, d = int(rng.integers(300, 2500)), int(rng.integers(5, 25))
        K = int(rng.integers(2, 6))
        X = rng.standard_normal((n, d))
        W = 30 * rng.standard_normal((K, d)) / np.sqrt(d)
        y = np.array([rng.choice(K, p=p) for p in softmax(X @ W.T, axis=1)])
    else:
        d, K = int(rng.integers(4, 15)), int(rng.integers(2, 5))
        X = rng.standard_normal((n, d))
        W = float(rng.choice([30, 100])) * rng.standard_normal((K, d)) / np.sqrt(d)
        y = np.argmax(X @ W.T + rng.gumbel(size=(n, K)), axis=1)
    return X, y


@pytest.mark.parametrize(
    "solver, seed, n, C",
    [
        ("lbfgs", 37, 20000, 1e4),
        ("newton-cg", 37, 20000, 1e4),
        ("newton-cg", 35, None, 1e6),
        ("lbfgs", 35, None, 1e6),
        ("lbfgs", 62, None, 1e6),
    ],
)
def test_a_default_fit_near_separation_stops_near_the_optimum(solver, seed, n, C):
    # The objective falls along flat directions for many steps after the
    # gradient rule holds. lbfgs stopped at a relative gap of 1.8e-2 here,
    # its quadratic model estimating 3e-6 of the 4.4e-4 left; newton-cg on
    # exact products stopped at a step its trust region rejected, twice the
    # optimum's objective. At C=1e6 lbfgs stopped at relative gaps of 2.5e-2
    # (seed 35) and 2.0e-2 (seed 62), its estimates 1e3 and 1e2 times too low,
    # before the Newton decrement checked them.
    X, y = _near_separation(seed, n)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = SoftmaxClassifier(C=C, solver=solver).fit(X, y)
    assert _relative_gap(X, y, clf, C) <= 1e-4


@pytest.mark.parametrize(
    "solver, seed", [("lbfgs", 62), ("lbfgs", 41), ("newton-cg", 1)]
)
def test_a_warm_start_near_separation_stops_near_the_optimum(solver, seed):
    # From the optimum at C=1e4 the gradient at C=1e6 met tol at the start,
    # and two iterations later the gap estimates were 1e3 to 1e4 times too
    # low: lbfgs stopped at relative gaps of 0.43 (seed 62) and 1.2 (seed
    # 41), newton-cg at 2.6e-3, none with a warning. A product along the
    # coefficients bounds the Newton decrement above the gap rule there.
    X, y = _near_separation(seed)
    clf = SoftmaxClassifier(C=1e4, solver=solver, warm_start=True).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.set_params(C=1e6).fit(X, y)
    assert _relative_gap(X, y, clf, 1e6) <= 1e-4


def test_separated_classes_without_a_penalty_are_not_handed_to_newton_steps(capsys):
    # The objective falls towards 0, so the gap rule, relative to it, never
    # holds: the check proved a gain at every stop and Newton steps ran until
    # the objective underflowed, 1827 products and 11 times the fit's time.
    X, y = load_iris(return_X_y=True)
    X, y = X[y != 2], y[y != 2]
    with pytest.warns(PerfectSeparationWarning):
        SoftmaxClassifier(C=np.inf, verbose=1).fit(X, y)
    assert "Newton steps on exact curvature follow" not in capsys.readouterr().out


def _relative_gap(X, y, model, C):
    """``model``'s objective above scikit-learn's newton-cholesky optimum, relative."""
    reference = LogisticRegression(C=C, solver="newton-cholesky", **TIGHT).fit(X, y)
    ones = np.ones(y.shape[0])
    f_star = objective(X, y, reference.coef_, reference.intercept_, ones, C)
    return (objective(X, y, model.coef_, model.intercept_, ones, C) - f_star) / f_star


def test_max_iter_ending_a_fit_whose_objective_still_falls_warns():
    # Near separation with a weak penalty, lbfgs's gradient met tol long
    # before its objective stopped falling: at max_iter it reported
    # convergence 0.1 above the optimum's objective, without a warning.
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    ones = np.ones(y.shape[0])
    reference = SoftmaxClassifier(C=1e6, solver="newton-cg", **TIGHT).fit(X, y)
    f_star = objective(X, y, reference.coef_, reference.intercept_, ones, 1e6)
    with pytest.warns(ConvergenceWarning, match="within tol.*still falling"):
        clf = SoftmaxClassifier(C=1e6, max_iter=1000).fit(X, y)
    gap = objective(X, y, clf.coef_, clf.intercept_, ones, 1e6) - f_star
    assert gap > 1e-2 * f_star


def test_the_newton_decrement_check_gives_a_lower_bound():
    from sksoftmax._solvers import _decrement_above, _Preconditioned

    X, y = load_wine(return_X_y=True)
    engine = NumPyEngine(X, y, 3, np.ones(len(y)), True)
    penalty = ElasticNet.from_C(1.0, 0.0, len(y))
    x = np.random.default_rng(0).normal(size=engine.n_params) * 0.1
    second = _Preconditioned(engine, penalty, second_order=True)
    grad = second(x)[1]
    hessian = np.column_stack([second.hessp(x, e) for e in np.eye(x.size)])
    decrement = 0.5 * grad @ np.linalg.lstsq(hessian, grad, rcond=None)[0]
    along_x = 0.5 * (grad @ x) ** 2 / (x @ hessian @ x)
    W = engine.unpack(second.to_original(x))[0]
    # What the penalty's curvature alone would let a step along x gain.
    penalty_room = 0.5 * (grad @ x) ** 2 / (penalty.l2 * np.sum(W * W))
    assert along_x < penalty_room

    passes = []
    ray_curvature = engine.ray_curvature
    engine.ray_curvature = lambda params: passes.append(1) or ray_curvature(params)

    def bound(at, max_products):
        passes.clear()
        problem = _Preconditioned(engine, penalty)
        found = _decrement_above(problem, x, at, max_products)
        return found, len(passes), problem.n_products

    lower, _, _ = bound(0.5 * decrement, x.size)
    assert 0.5 * decrement < lower <= decrement * (1 + 1e-8)
    assert bound(1.01 * decrement, 4 * x.size)[0] is None
    # Along x alone: one pass over the data and no product; no pass where
    # the penalty leaves no room.
    lower, n_passes, products = bound(0.99 * along_x, 0)
    assert lower == pytest.approx(along_x, rel=1e-8)
    assert (n_passes, products) == (1, 0)
    assert bound(1.01 * along_x, 0) == (None, 1, 0)
    assert bound(penalty_room, 0) == (None, 0, 0)


@pytest.fixture(scope="module")
def newton_steps_after_lbfgs():
    """Seed 35 at C=1e6, where lbfgs's decrement check hands the fit over to
    Newton steps on exact curvature: the data, the last lbfgs iteration and
    the iteration the Newton steps end at. Read from the fit, since rounding
    moves them (516 and 525, then 520 and 532, as the engines changed).
    """
    X, y = _near_separation(35)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        clf = SoftmaxClassifier(C=1e6, verbose=1).fit(X, y)
    before, handed, _ = buffer.getvalue().partition(
        "Newton steps on exact curvature follow"
    )
    assert handed
    last_lbfgs = int(re.findall(r"iter\s+(\d+)", before)[-1])
    assert clf.n_iter_ >= last_lbfgs + 3
    return X, y, last_lbfgs, clf.n_iter_


def test_max_iter_ending_the_newton_steps_after_lbfgs_warns(newton_steps_after_lbfgs):
    X, y, last_lbfgs, end = newton_steps_after_lbfgs
    with pytest.warns(ConvergenceWarning, match="within tol.*still gaining"):
        SoftmaxClassifier(C=1e6, max_iter=(last_lbfgs + end) // 2).fit(X, y)


def test_newton_steps_whose_last_allowed_step_meets_their_rule_do_not_warn(
    newton_steps_after_lbfgs,
):
    # With max_iter where the fit ends anyway, the Newton steps' rule was not
    # looked at after the last allowed step, and the fit warned that the
    # steps were still gaining.
    X, y, _, end = newton_steps_after_lbfgs
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = SoftmaxClassifier(C=1e6, max_iter=end).fit(X, y)
    assert clf.n_iter_ == end


def test_lbfgs_stopping_itself_above_the_gap_rule_checks_the_decrement():
    # In float32, L-BFGS-B's line search failed 1.4e-2 above the optimum,
    # with the gradient within tol and its gap estimate at 3e-2: the fit
    # ended there as converged.
    X, y = _near_separation(35)
    clf = SoftmaxClassifier(C=1e6).fit(X.astype(np.float32), y)
    # 1.3e-5 now.
    assert _relative_gap(X, y, clf, 1e6) <= 1e-4


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_float32_fits_near_separation_count_losses_below_its_rounding(solver):
    # Digits at C=1e8: near the optimum most rows' loss is below float32's
    # rounding of 1 (6e-8). Computed as log(total) it was 0, and so was the
    # own class's gradient entry p - 1: the fits ended without a warning
    # 7.2e-2 (lbfgs) and 5.3e-2 (newton-cg) above the optimum.
    X, y = load_digits(return_X_y=True)
    X = X / 16
    clf = SoftmaxClassifier(C=1e8, solver=solver).fit(X.astype(np.float32), y)
    # Now below the reference, whose own accuracy at C=1e8 is about 1e-4.
    assert _relative_gap(X, y, clf, 1e8) <= 2e-3


def test_a_step_lbfgs_does_not_take_ends_its_fit():
    # L-BFGS-B reports an unmoved iterate where its line search found
    # nothing; a first-order fit has no Hessian products to judge it by.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 4))
    X[:, 0] += 40 * np.sign(X[:, 0])
    y = (X[:, 0] > 0).astype(int)
    clf = SoftmaxClassifier(C=1e12).fit(X.astype(np.float32), y)
    assert np.all(np.isfinite(clf.coef_))


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_a_loose_tol_still_stops_near_the_optimum_on_rare_features(solver):
    # 0.5% non-zeros: most gradient entries are small however far off their
    # coefficients are, and the gradient rule alone stopped at a relative
    # gap of 6e-3 here (newton-cg, on exact products: 3e-2).
    rng = np.random.default_rng(0)
    X = sparse.random(2000, 1000, density=0.005, format="csr", random_state=0)
    X.data = rng.normal(size=X.data.shape)
    W = rng.normal(size=(1000, 10)) * 4 / np.sqrt(1000) * np.sqrt(200)
    y = np.argmax(X @ W + rng.gumbel(size=(2000, 10)), axis=1)
    reference = LogisticRegression(solver="newton-cg", tol=1e-10, max_iter=1000)
    reference.fit(X, y)
    ones = np.ones(y.shape[0])
    f_star = objective(X, y, reference.coef_, reference.intercept_, ones, 1.0)
    tol = 1e-2
    clf = SoftmaxClassifier(solver=solver, tol=tol).fit(X, y)
    gap = objective(X, y, clf.coef_, clf.intercept_, ones, 1.0) - f_star
    # The rule asks for an estimated gap of at most 0.03 tol (objective > 1);
    # the estimate may be several times too low.
    assert 0 <= gap <= 0.2 * tol * max(1.0, f_star)


def test_verbose_prints_one_line_per_iteration(iris, capsys):
    X, y = iris
    clf = SoftmaxClassifier(verbose=1).fit(X, y)
    *lines, summary = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == clf.n_iter_
    pattern = (
        r"iter\s+(\d+)\s+objective (\S+)\s+max\|grad\| (\S+) \(tol 0.0001\)\s+"
        r"gap~(\S+)\s+\d+\.\d\ds"
    )
    parsed = [re.fullmatch(pattern, line) for line in lines]
    assert all(parsed)
    assert [int(m[1]) for m in parsed] == list(range(1, clf.n_iter_ + 1))
    objectives = [float(m[2]) for m in parsed]
    assert objectives == sorted(objectives, reverse=True)
    assert float(parsed[-1][3]) <= clf.tol
    assert re.fullmatch(
        rf"converged: max\|grad\| \S+ <= tol 0.0001 after {clf.n_iter_} "
        r"iterations in \d+\.\d\ds",
        summary,
    )
    SoftmaxClassifier().fit(X, y)
    assert capsys.readouterr().out == ""


def test_verbose_two_counts_newton_cg_hessian_products(iris, capsys):
    X, y = iris
    SoftmaxClassifier(solver="newton-cg", verbose=2).fit(X, y)
    lines = capsys.readouterr().out.strip().splitlines()[:-1]
    assert lines and all(re.search(r"Hessian products \d+$", line) for line in lines)


def test_penalty_keyword_points_to_l1_ratio():
    with pytest.raises(TypeError, match="l1_ratio.*C=np.inf"):
        SoftmaxClassifier(penalty="l1")
    with pytest.raises(TypeError, match="l1_ratio"):
        SoftmaxClassifierCV(penalty="elasticnet")


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_warm_start_resumes_from_the_previous_solution(iris, solver):
    # newton-cg's trust region rejects steps at the optimum, where rounding
    # eats the gain its model promises: that must end the fit, though no
    # step informs the gap estimate (14 iterations at first).
    X, y = iris
    coef, _ = symmetric_from_sklearn(LogisticRegression(**TIGHT).fit(X, y))
    clf = SoftmaxClassifier(solver=solver, warm_start=True, tol=1e-6).fit(X, y)
    for _ in range(2):
        clf.fit(X, y)
        assert clf.n_iter_ <= 2
        np.testing.assert_allclose(clf.coef_, coef, atol=3e-5)
    cold = SoftmaxClassifier(solver=solver, tol=1e-6).fit(X, y)
    cold.fit(X, y)
    assert cold.n_iter_ > 5


def test_a_float32_warm_start_at_the_optimum_ends_at_once(iris):
    # In float32 the gain that trust-ncg's rejected steps promise there is
    # below the evaluation's rounding, not float64's: refits took 21 steps.
    X, y = iris
    X = X.astype(np.float32)
    clf = SoftmaxClassifier(solver="newton-cg", C=1e4, warm_start=True).fit(X, y)
    for _ in range(2):
        clf.fit(X, y)
        assert clf.n_iter_ <= 3


def test_pipeline_and_grid_search(iris):
    X, y = iris
    search = GridSearchCV(
        make_pipeline(StandardScaler(), SoftmaxClassifier()),
        {"softmaxclassifier__C": [0.01, 1.0]},
        cv=3,
    ).fit(X, y)
    assert search.best_params_["softmaxclassifier__C"] == 1.0
    assert search.predict_proba(X).shape == (150, 3)


@pytest.mark.parametrize(
    "round_trip",
    [
        lambda clf: pickle.loads(pickle.dumps(clf)),
        copy.deepcopy,
    ],
    ids=["pickle", "deepcopy"],
)
def test_round_trips_keep_predictions_identical(iris, round_trip):
    X, y = iris
    clf = SoftmaxClassifier().fit(X, y)
    clone = round_trip(clf)
    for method in PREDICT_METHODS:
        np.testing.assert_array_equal(
            getattr(clone, method)(X), getattr(clf, method)(X)
        )
    assert clone.get_params() == clf.get_params()


# --- bad input: each fails before any optimization with a message naming it ---


@pytest.fixture
def no_optimization(monkeypatch):
    """Make any evaluation of the objective fail the test."""

    def evaluated(*args, **kwargs):
        raise AssertionError("the objective was evaluated before the input was checked")

    monkeypatch.setattr(NumPyEngine, "loss_gradient", evaluated)
    monkeypatch.setattr(NumPyEngine, "hessian_product", evaluated)


def _fit(X, y, **kwargs):
    return SoftmaxClassifier().fit(X, y, **kwargs)


_OBJECTS = np.array([[0.0, 1.0], [1.0, "x"]], dtype=object)


@pytest.mark.parametrize(
    "X, y, kwargs, error, match",
    [
        ([[0.0, np.nan], [1.0, 2.0]], [0, 1], {}, ValueError, "NaN"),
        ([[0.0, np.inf], [1.0, 2.0]], [0, 1], {}, ValueError, "infinity"),
        ([[0.0], [1.0], [2.0]], [1, 1, 1], {}, ValueError, "only one class"),
        ([[0.0], [1.0], [2.0]], [0.1, 0.5, 0.7], {}, ValueError, "continuous"),
        (np.empty((0, 2)), [], {}, ValueError, "0 sample"),
        (np.zeros((3, 2, 2)), [0, 1, 0], {}, ValueError, "dim 3"),
        ([[0.0], [1.0], [2.0]], [0, 1], {}, ValueError, "inconsistent numbers"),
        ([["a"], ["b"]], [0, 1], {}, ValueError, "could not convert string"),
        (
            [[0.0], [1.0]],
            [0, 1],
            {"sample_weight": [1.0, -1.0]},
            ValueError,
            "Negative values in data passed to `sample_weight`",
        ),
        (
            [[0.0], [1.0]],
            [0, 1],
            {"sample_weight": [0.0, 0.0]},
            ValueError,
            "at least one non-zero",
        ),
        (
            [[0.0], [1.0]],
            [0, 1],
            {"sample_weight": [1.0]},
            ValueError,
            r"sample_weight.shape == \(1,\), expected \(2,\)",
        ),
        (
            [[0.0], [1.0]],
            [0, 1],
            {"sample_weight": [1.0, np.nan]},
            ValueError,
            "sample_weight contains NaN",
        ),
        (
            [[0.0], [1.0]],
            [0, 1],
            {"sample_weight": np.nan},
            ValueError,
            "sample_weight contains NaN",
        ),
        (
            [[0.0], [1.0]],
            [0, 1],
            {"sample_weight": [np.inf, 1.0]},
            ValueError,
            "sample_weight contains infinity",
        ),
        (
            [[0.0], [1.0]],
            [0, 1],
            {"sample_weight": np.inf},
            ValueError,
            "sample_weight contains infinity",
        ),
        (
            [[0.0], [1.0]],
            [0, 1],
            {"sample_weight": [1e308, 1e308]},
            ValueError,
            "sum to infinity",
        ),
        (
            [[0.0], [1.0]],
            [0, 1],
            {"sample_weight": [1e-320, 1e-320]},
            ValueError,
            "too small for the penalty strength",
        ),
        (
            [[0.0], [1.0], [2.0]],
            [0, 1, 1],
            {"sample_weight": [0.0, 1.0, 1.0]},
            ValueError,
            "samples of class 0 have zero total weight",
        ),
        (
            [[0.0], [1.0], [2.0]],
            ["a", "b", "c"],
            {"sample_weight": [1.0, 0.0, 0.0]},
            ValueError,
            r"samples of classes \['b', 'c'\] have zero total weight",
        ),
        (
            [[0.0], [1.0], [2.0]],
            [0.0, np.nan, 1.0],
            {},
            ValueError,
            "y has 1 missing label.*index 1",
        ),
        (
            [[0.0], [1.0], [2.0]],
            np.array(["a", np.nan, "b"], dtype=object),
            {},
            ValueError,
            "y has 1 missing label.*index 1",
        ),
        (
            np.array([[0.0, 1j], [1.0, 2.0]]),
            [0, 1],
            {},
            ValueError,
            "Complex data not supported",
        ),
        ([[0.0, 1j], [1.0, 2.0]], [0, 1], {}, TypeError, "not 'complex'"),
        (_OBJECTS, [0, 1], {}, ValueError, "could not convert string to float: 'x'"),
        (
            np.where(_OBJECTS == "x", {}, _OBJECTS),
            [0, 1],
            {},
            TypeError,
            "must be a string or a real number, not 'dict'",
        ),
        (
            np.where(_OBJECTS == "x", None, _OBJECTS),
            [0, 1],
            {},
            ValueError,
            "Input X contains NaN",
        ),
    ],
)
def test_bad_input_raises_a_clear_error(X, y, kwargs, error, match, no_optimization):
    with pytest.raises(error, match=match):
        _fit(X, y, **kwargs)


@pytest.mark.parametrize("C", [0, -1.0, np.nan, "strong", None])
def test_bad_C_is_rejected(C, iris, no_optimization):
    with pytest.raises(ValueError, match="'C' parameter"):
        SoftmaxClassifier(C=C).fit(*iris)


@pytest.mark.parametrize(
    "class_weight, sample_weight, match",
    [
        ({0: 0.0, 1: 0.0, 2: 0.0}, None, "sum to zero"),
        ({0: 1.0, 7: 2.0}, None, r"class_weight has keys \[7\]"),
        ({0: 1.0, "0": 2.0}, None, r"class_weight has keys \['0'\]"),
        ({0: np.nan, 1: 1.0}, None, r"finite non-negative numbers; got \{0: nan\}"),
        ({0: 1.0, 1: np.inf}, None, r"finite non-negative numbers; got \{1: inf\}"),
        ({0: 1.0, 2: -0.5}, None, r"finite non-negative numbers; got \{2: -0.5\}"),
        ({1: "heavy"}, None, r"finite non-negative numbers; got \{1: 'heavy'\}"),
        ({1: 0.0}, None, r"class 1 have zero total weight \(sample_weight times"),
        (
            "balanced",
            np.repeat([1.0, 0.0, 1.0], 50),
            r"class 1 have zero total weight \(sample_weight\)",
        ),
    ],
)
def test_bad_class_weight_is_named(
    iris, class_weight, sample_weight, match, no_optimization
):
    X, y = iris
    with pytest.raises(ValueError, match=match):
        SoftmaxClassifier(class_weight=class_weight).fit(
            X, y, sample_weight=sample_weight
        )


def test_predict_before_fit_and_wrong_width(iris):
    X, y = iris
    with pytest.raises(NotFittedError):
        SoftmaxClassifier().predict(X)
    clf = SoftmaxClassifier().fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features"):
        clf.predict_proba(X[:, :3])


def test_concurrent_fits_leave_blas_thread_counts_unchanged(iris):
    import threading

    from threadpoolctl import threadpool_info

    def counts():
        return sorted(
            (lib["filepath"], lib["num_threads"]) for lib in threadpool_info()
        )

    X, y = iris
    before = counts()
    threads = [
        threading.Thread(target=SoftmaxClassifier().fit, args=(X, y)) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts() == before


def test_a_feature_of_1e300_fits_without_overflow_warnings(iris):
    X, y = iris
    X = X.copy()
    X[:, 0] *= 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = SoftmaxClassifier().fit(X, y)
    assert np.all(np.isfinite(clf.coef_)) and np.all(np.isfinite(clf.intercept_))
    np.testing.assert_array_equal(X[:, 1:], iris[0][:, 1:])
