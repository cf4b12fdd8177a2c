"""Elastic net (l1_ratio > 0): same optimum as saga and proximal gradient."""

import numpy as np
import pytest
from scipy import sparse
from sklearn.datasets import load_digits, load_iris, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from sksoftmax import SoftmaxClassifier

from _reference import objective
from conftest import TIGHT_ELASTIC_NET


def elastic_net_objective(X, y, coef, intercept, C, l1_ratio, sample_weight=None):
    classes, codes = np.unique(y, return_inverse=True)
    sw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
    value = objective(X, codes, coef, intercept, sw, np.inf)
    penalty = (1 - l1_ratio) / 2 * np.sum(coef**2) + l1_ratio * np.sum(np.abs(coef))
    return value + penalty / (C * sw.sum())


def proximal_gradient(X, y, C, l1_ratio, n_iter=20000):
    """FISTA on the elastic-net objective: the L1 part by soft thresholding."""
    classes, codes = np.unique(y, return_inverse=True)
    n, d = X.shape
    k = len(classes)
    Y = np.eye(k)[codes]
    l1, l2 = l1_ratio / (C * n), (1 - l1_ratio) / (C * n)
    Xb = np.hstack([X, np.ones((n, 1))])
    step = 1.0 / (0.5 * np.linalg.norm(Xb, 2) ** 2 / n + l2)
    theta = np.zeros((d + 1, k))
    momentum, previous, t = theta.copy(), theta.copy(), 1.0
    for _ in range(n_iter):
        logits = Xb @ momentum
        proba = np.exp(logits - logits.max(axis=1, keepdims=True))
        proba /= proba.sum(axis=1, keepdims=True)
        grad = Xb.T @ (proba - Y) / n
        grad[:d] += l2 * momentum[:d]
        theta = momentum - step * grad
        theta[:d] = np.sign(theta[:d]) * np.maximum(np.abs(theta[:d]) - step * l1, 0.0)
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        momentum = theta + (t - 1) / t_next * (theta - previous)
        previous, t = theta, t_next
    return theta[:d].T, theta[d]


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize("l1_ratio", [0.5, 1.0])
@pytest.mark.parametrize("C", [0.05, 1.0])
def test_matches_proximal_gradient_reference(wine, C, l1_ratio):
    X, y = wine
    ours = SoftmaxClassifier(C=C, l1_ratio=l1_ratio, **TIGHT_ELASTIC_NET).fit(X, y)
    coef, intercept = proximal_gradient(X, y, C, l1_ratio)
    ours_f = elastic_net_objective(X, y, ours.coef_, ours.intercept_, C, l1_ratio)
    ref_f = elastic_net_objective(X, y, coef, intercept, C, l1_ratio)
    assert ours_f <= ref_f + 1e-10
    np.testing.assert_allclose(ours.coef_, coef, atol=1e-5)
    np.testing.assert_array_equal(ours.coef_ == 0, np.abs(coef) < 1e-12)


@pytest.mark.parametrize(
    "name, C",
    [
        ("wine", 0.1),
        ("wine", 1.0),
        pytest.param("digits", 0.1, marks=pytest.mark.slow),
        pytest.param("digits", 1.0, marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("l1_ratio", [0.5, 1.0])
def test_at_least_as_good_and_sparse_as_saga(name, C, l1_ratio, wine):
    if name == "wine":
        X, y = wine
    else:
        X, y = load_digits(return_X_y=True)
        X = X / 16
    ours = SoftmaxClassifier(C=C, l1_ratio=l1_ratio, **TIGHT_ELASTIC_NET).fit(X, y)
    saga = LogisticRegression(
        C=C, l1_ratio=l1_ratio, solver="saga", tol=1e-9, max_iter=20000
    ).fit(X, y)
    ours_f = elastic_net_objective(X, y, ours.coef_, ours.intercept_, C, l1_ratio)
    saga_f = elastic_net_objective(X, y, saga.coef_, saga.intercept_, C, l1_ratio)
    assert ours_f <= saga_f + 1e-12
    assert np.sum(ours.coef_ == 0) >= np.sum(saga.coef_ == 0)
    np.testing.assert_allclose(ours.predict_proba(X), saga.predict_proba(X), atol=1e-5)


def test_l1_ratio_zero_is_the_l2_fit(wine):
    X, y = wine
    a = SoftmaxClassifier(**TIGHT_ELASTIC_NET).fit(X, y)
    b = SoftmaxClassifier(l1_ratio=0.0, **TIGHT_ELASTIC_NET).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_stronger_penalty_gives_more_zeros(wine):
    X, y = wine
    zeros = [
        np.sum(SoftmaxClassifier(C=C, l1_ratio=1.0).fit(X, y).coef_ == 0)
        for C in [10.0, 0.3, 0.03]
    ]
    assert zeros[0] < zeros[1] < zeros[2]


def test_infinite_C_ignores_l1_ratio():
    X, y = load_iris(return_X_y=True)
    y = (y == 2).astype(int)  # not separable: the unpenalized fit exists
    a = SoftmaxClassifier(C=np.inf, l1_ratio=1.0, **TIGHT_ELASTIC_NET).fit(X, y)
    b = SoftmaxClassifier(C=np.inf, **TIGHT_ELASTIC_NET).fit(X, y)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-6)


def test_weights_float32_and_sparse(wine):
    X, y = wine
    rng = np.random.default_rng(0)
    sw = rng.integers(1, 4, size=len(y))
    params = dict(C=0.5, l1_ratio=0.7, class_weight="balanced")
    weighted = SoftmaxClassifier(**params, **TIGHT_ELASTIC_NET).fit(
        X, y, sample_weight=sw
    )
    repeated = SoftmaxClassifier(**params, **TIGHT_ELASTIC_NET).fit(
        np.repeat(X, sw, axis=0), np.repeat(y, sw)
    )
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, atol=1e-6)
    np.testing.assert_array_equal(weighted.coef_ == 0, repeated.coef_ == 0)

    X_sparse = sparse.csr_matrix(np.where(np.abs(X) < 0.5, 0.0, X))
    dense = SoftmaxClassifier(**params, **TIGHT_ELASTIC_NET).fit(X_sparse.toarray(), y)
    from_sparse = SoftmaxClassifier(**params, **TIGHT_ELASTIC_NET).fit(X_sparse, y)
    np.testing.assert_allclose(from_sparse.coef_, dense.coef_, atol=1e-6)

    c32 = SoftmaxClassifier(**params, tol=1e-6).fit(X.astype(np.float32), y)
    c64 = SoftmaxClassifier(**params, **TIGHT_ELASTIC_NET).fit(X, y)
    assert c32.coef_.dtype == np.float32
    np.testing.assert_allclose(c32.coef_, c64.coef_, atol=1e-3)


def test_warm_start_resumes(wine):
    X, y = wine
    clf = SoftmaxClassifier(C=0.2, l1_ratio=0.5, warm_start=True, tol=1e-8).fit(X, y)
    coef = clf.coef_.copy()
    clf.fit(X, y)
    assert clf.n_iter_ <= 2
    np.testing.assert_allclose(clf.coef_, coef, atol=1e-6)


def test_tol_bounds_the_subgradient(wine):
    X, y = wine
    C, l1_ratio = 0.3, 0.8
    clf = SoftmaxClassifier(C=C, l1_ratio=l1_ratio, tol=1e-6).fit(X, y)
    eps = 1e-7
    f = lambda coef, b: elastic_net_objective(X, y, coef, b, C, l1_ratio)  # noqa: E731
    for k, j in [(0, 0), (1, 3), (2, 7)]:
        plus, minus = clf.coef_.copy(), clf.coef_.copy()
        plus[k, j] += eps
        minus[k, j] -= eps
        # One-sided slopes of the objective at the fit bound the subgradient:
        # neither direction may descend faster than tol.
        assert (f(plus, clf.intercept_) - f(clf.coef_, clf.intercept_)) / eps > -2e-6
        assert (f(minus, clf.intercept_) - f(clf.coef_, clf.intercept_)) / eps > -2e-6


def test_newton_cg_refuses_l1(wine):
    X, y = wine
    with pytest.raises(ValueError, match="l1_ratio=0.5 needs solver='lbfgs'"):
        SoftmaxClassifier(l1_ratio=0.5, solver="newton-cg").fit(X, y)


@pytest.mark.parametrize("l1_ratio", [-0.1, 1.5, "half"])
def test_bad_l1_ratio(l1_ratio, wine):
    with pytest.raises(ValueError, match="'l1_ratio' parameter"):
        SoftmaxClassifier(l1_ratio=l1_ratio).fit(*wine)
