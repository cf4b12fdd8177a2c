"""Properties of the loss and of the fit, on data drawn by hypothesis (float64).

Examples are few and small so the suite stays fast; derandomized so that a
failure reproduces.
"""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sksoftmax import SoftmaxClassifier
from sksoftmax._engines._numpy import NumPyEngine
from sksoftmax._penalty import ElasticNet

from _reference import objective
from conftest import TIGHT

FEW = settings(max_examples=30, deadline=None, derandomize=True, database=None)
FEWER = settings(max_examples=15, deadline=None, derandomize=True, database=None)


def _floats(low, high):
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


@st.composite
def problems(draw, max_samples=12, integer_weights=False):
    """``(X, y_codes, sample_weight, n_classes)``; every class has weight.

    The first ``n_classes`` rows carry one label each, so every class is
    present with a positive weight and each fit has a unique optimum.
    """
    n_classes = draw(st.integers(2, 4))
    n_samples = draw(st.integers(n_classes, max_samples))
    n_features = draw(st.integers(1, 4))
    X = draw(hnp.arrays(np.float64, (n_samples, n_features), elements=_floats(-4, 4)))
    y = np.concatenate(
        [
            np.arange(n_classes),
            draw(
                hnp.arrays(
                    np.intp,
                    n_samples - n_classes,
                    elements=st.integers(0, n_classes - 1),
                )
            ),
        ]
    )
    if integer_weights:
        weights = st.integers(0, 3)
        first = st.integers(1, 3)
    else:
        weights = _floats(0.0, 3.0)
        first = _floats(0.1, 3.0)
    sample_weight = np.concatenate(
        [
            draw(hnp.arrays(np.float64, n_classes, elements=first)),
            draw(hnp.arrays(np.float64, n_samples - n_classes, elements=weights)),
        ]
    )
    return X, y, sample_weight, n_classes


def _loss_at_random_point(draw, fit_intercept):
    X, y, sample_weight, n_classes = draw(problems())
    l2 = draw(st.sampled_from([0.0, 0.5]))
    loss = _Penalized(
        NumPyEngine(X, y, n_classes, sample_weight, fit_intercept), ElasticNet(l2=l2)
    )
    params = draw(hnp.arrays(np.float64, loss.n_params, elements=_floats(-3, 3)))
    if not fit_intercept:
        params[-n_classes:] = 0.0
    return loss, params, l2


class _Penalized:
    """An engine's data term plus a penalty, as the solvers add them."""

    def __init__(self, engine, penalty):
        self.engine, self.penalty = engine, penalty
        self.X, self.y, self.weights = engine.X, engine.y, engine.weights
        self.n_params, self.n_classes = engine.n_params, engine.n_classes
        self.unpack = engine.unpack

    def loss_gradient(self, params):
        value, grad = self.engine.loss_gradient(params)
        W, _ = self.unpack(params)
        return self.penalty.add_smooth(W, value, self.unpack(grad)[0]), grad

    def hessian_product(self, params):
        value, grad, hessp = self.engine.hessian_product(params)
        W, _ = self.unpack(params)
        value = self.penalty.add_smooth(W, value, self.unpack(grad)[0])

        def product(direction):
            result = hessp(direction)
            self.penalty.add_smooth_hessp(
                self.unpack(direction)[0], self.unpack(result)[0]
            )
            return result

        return value, grad, product


def _central_differences(function, params, directions, eps):
    return np.array(
        [
            (function(params + eps * v) - function(params - eps * v)) / (2 * eps)
            for v in directions
        ]
    )


@FEW
@given(data=st.data(), fit_intercept=st.booleans())
def test_gradient_matches_finite_differences(data, fit_intercept):
    loss, params, l2 = _loss_at_random_point(data.draw, fit_intercept)

    def reference(p):
        W, b = loss.unpack(p)
        value = objective(loss.X, loss.y, W.T, b, loss.weights, np.inf)
        return value + 0.5 * l2 * np.sum(W**2)

    directions = np.eye(loss.n_params)
    if not fit_intercept:
        directions = directions[: -loss.n_classes]
    value, grad = loss.loss_gradient(params)
    assert value == pytest.approx(reference(params), rel=1e-12, abs=1e-14)
    numeric = _central_differences(reference, params, directions, 1e-6)
    np.testing.assert_allclose(grad[: len(numeric)], numeric, rtol=1e-6, atol=1e-8)
    if not fit_intercept:
        np.testing.assert_array_equal(grad[-loss.n_classes :], 0.0)


@FEW
@given(data=st.data(), fit_intercept=st.booleans())
def test_hessian_product_matches_finite_differences_of_gradient(data, fit_intercept):
    loss, params, _ = _loss_at_random_point(data.draw, fit_intercept)
    direction = data.draw(
        hnp.arrays(np.float64, loss.n_params, elements=_floats(-1, 1))
    )
    if not fit_intercept:
        direction[-loss.n_classes :] = 0.0
    value, grad, hessp = loss.hessian_product(params)
    same_value, same_grad = loss.loss_gradient(params)
    assert value == same_value
    np.testing.assert_array_equal(grad, same_grad)
    numeric = _central_differences(
        lambda p: loss.loss_gradient(p)[1], params, [direction], 1e-6
    )[0]
    np.testing.assert_allclose(hessp(direction), numeric, rtol=1e-6, atol=1e-8)


@FEW
@given(data=st.data(), shift=_floats(-100, 100))
def test_shifting_every_logit_leaves_probabilities_unchanged(data, shift):
    X, y, sample_weight, n_classes = data.draw(problems())
    loss = NumPyEngine(X, y, n_classes, sample_weight, True)
    params = data.draw(hnp.arrays(np.float64, loss.n_params, elements=_floats(-3, 3)))
    shifted = params.copy()
    shifted[-n_classes:] += shift
    value, grad = loss.loss_gradient(params)
    value_shifted, grad_shifted = loss.loss_gradient(shifted)
    assert value_shifted == pytest.approx(value, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(grad_shifted, grad, rtol=1e-9, atol=1e-12)

    clf = SoftmaxClassifier().fit(X, y, sample_weight=sample_weight)
    moved = copy.deepcopy(clf)
    moved.intercept_ = clf.intercept_ + shift
    np.testing.assert_allclose(moved.predict_proba(X), clf.predict_proba(X), rtol=1e-9)
    np.testing.assert_allclose(
        moved.predict_log_proba(X), clf.predict_log_proba(X), rtol=1e-9, atol=1e-11
    )


@FEWER
@given(data=st.data())
def test_permuting_classes_permutes_coefficients(data):
    X, y, sample_weight, n_classes = data.draw(problems(max_samples=20))
    permutation = np.array(data.draw(st.permutations(range(n_classes))))
    original = SoftmaxClassifier(**TIGHT).fit(X, y, sample_weight=sample_weight)
    permuted = SoftmaxClassifier(**TIGHT).fit(
        X, permutation[y], sample_weight=sample_weight
    )
    # Class k is now labelled permutation[k], the row of that label.
    np.testing.assert_allclose(permuted.coef_[permutation], original.coef_, atol=1e-6)
    np.testing.assert_allclose(
        permuted.intercept_[permutation], original.intercept_, atol=1e-6
    )


@FEWER
@given(data=st.data(), factor=_floats(1e-2, 1e2))
def test_scaling_sample_weights_equals_scaling_C(data, factor):
    # The objective divides the penalty by C * sum(sample_weight): scaling the
    # weights by a factor is scaling C by it, and changes nothing at C=inf.
    X, y, sample_weight, _ = data.draw(problems(max_samples=20))
    C = data.draw(st.sampled_from([0.5, 1.0]))
    scaled = SoftmaxClassifier(C=C, **TIGHT).fit(
        X, y, sample_weight=factor * sample_weight
    )
    reference = SoftmaxClassifier(C=C * factor, **TIGHT).fit(
        X, y, sample_weight=sample_weight
    )
    # At C up to 100 on a few samples the optimum is flat: a gradient of 1e-10
    # leaves coefficients uncertain to about 1e-6.
    np.testing.assert_allclose(scaled.coef_, reference.coef_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        scaled.intercept_, reference.intercept_, rtol=1e-5, atol=1e-5
    )

    # Each row with every label overlaps the classes, so the unpenalized
    # optimum exists; its probabilities are unique even where X is degenerate.
    n_classes = np.unique(y).shape[0]
    X_all = np.repeat(X, n_classes, axis=0)
    y_all = np.tile(np.arange(n_classes), len(X))
    weight_all = np.repeat(sample_weight, n_classes) + 0.1
    plain = SoftmaxClassifier(C=np.inf, **TIGHT).fit(
        X_all, y_all, sample_weight=weight_all
    )
    unpenalized = SoftmaxClassifier(C=np.inf, **TIGHT).fit(
        X_all, y_all, sample_weight=factor * weight_all
    )
    np.testing.assert_allclose(
        unpenalized.predict_proba(X), plain.predict_proba(X), atol=1e-6
    )


@FEWER
@given(data=st.data())
def test_integer_weights_equal_duplicated_rows(data):
    X, y, sample_weight, _ = data.draw(problems(max_samples=20, integer_weights=True))
    counts = sample_weight.astype(np.intp)
    weighted = SoftmaxClassifier(**TIGHT).fit(X, y, sample_weight=sample_weight)
    repeated = SoftmaxClassifier(**TIGHT).fit(
        np.repeat(X, counts, axis=0), np.repeat(y, counts)
    )
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, atol=1e-6)
    np.testing.assert_allclose(weighted.intercept_, repeated.intercept_, atol=1e-6)
